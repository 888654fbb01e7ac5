#![doc = include_str!("../README.md")]
//!
//! # Code map
//! - `cli`: flags, environment, config file and their precedence;
//! - `command`: the line commands (`/users`, `/chat NAME`, ...);
//! - `output`: the events and their JSON / readable forms;
//! - `session`: the driver around `securecom_core::Client` (reader, writer,
//!   main loop, timers);
//! - `daemon`: the request-channel listener and its links;
//! - `errors`: core errors in words.
//!
//! Dependencies and why: `tokio` (sockets, timers, signals), `clap` (the
//! command line, with environment variables), `toml` + `serde` (the config
//! file), `serde_json` (script-mode events), `tracing` (logs on stderr that
//! never contain keys or chat text), `securecom-host` (key files, clock, RNG).

#![forbid(unsafe_code)]

mod cli;
mod command;
mod daemon;
mod errors;
mod output;
mod session;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Parser;
use securecom_core::StaticSecret;
use securecom_host::{keyfile, os_rng, public_key_hex};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, ConfigFile};
use crate::output::Ui;
use crate::session::{EXIT_OK, EXIT_USAGE};

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let code = match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("securecom-client: {msg}");
            EXIT_USAGE
        }
    };
    let _ = std::io::stdout().flush();
    // Exit at once: the thread blocked reading stdin must not hold the process.
    std::process::exit(code);
}

fn init_logging(verbose: u8) {
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("info"),
        2 => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<i32, String> {
    let file = ConfigFile::load(cli.config.as_deref())?;
    match cli.command {
        Command::Keygen(args) => keygen(cli::resolve_key(args.key, &file)?),
        Command::Pubkey(args) => pubkey(cli::resolve_key(args.key, &file)?),
        Command::Chat(args) => {
            let settings = cli::resolve_chat(args, file)?;
            let ui = Ui {
                script: settings.script,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            Ok(rt.block_on(session::chat(settings, ui)))
        }
    }
}

fn keygen(path: PathBuf) -> Result<i32, String> {
    let key = StaticSecret::generate(&mut os_rng());
    keyfile::write(&path, &key).map_err(|e| e.to_string())?;
    let public = key.public_key();
    println!("{}", public_key_hex(&public));
    println!("fingerprint: {}", public.fingerprint());
    Ok(EXIT_OK)
}

fn pubkey(path: PathBuf) -> Result<i32, String> {
    let key = keyfile::read(&path).map_err(|e| e.to_string())?;
    println!("{}", public_key_hex(&key.public_key()));
    Ok(EXIT_OK)
}
