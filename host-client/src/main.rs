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
//! never contain keys or chat text), `securecom-host` (key files, clock, RNG,
//! passphrases, certificate files), `rustyline-async` (the interactive line
//! editor: output above the input line, history), `zeroize` (passphrases).

#![forbid(unsafe_code)]

mod cli;
mod command;
mod daemon;
mod errors;
mod known_peers;
mod output;
mod session;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Parser;
use securecom_core::StaticSecret;
use securecom_host::keyfile::{self, Kind};
use securecom_host::passphrase;
use securecom_host::{os_rng, public_key_hex};
use tracing_subscriber::EnvFilter;
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, ConfigFile, KeygenArgs, PasswdArgs};
use crate::output::Ui;
use crate::session::{EXIT_OK, EXIT_USAGE};

fn main() {
    let cli = Cli::parse();
    // The line editor owns the terminal: log lines on the same terminal would
    // cut through the input line, so by default it logs nothing there
    // (what matters is shown in the interface; -v or RUST_LOG still log).
    let line_editor = matches!(&cli.command, Command::Chat(a) if !a.script)
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    init_logging(cli.verbose, if line_editor { "off" } else { "warn" });
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

fn init_logging(verbose: u8, default: &str) {
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
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
        Command::Keygen(args) => {
            let path = cli::resolve_key(args.key.key.clone(), &file)?;
            keygen(path, &args)
        }
        Command::Pubkey(args) => {
            let sources = args.passphrase.sources();
            pubkey(cli::resolve_key(args.key, &file)?, &sources)
        }
        Command::Passwd(args) => {
            let path = cli::resolve_key(args.key.key.clone(), &file)?;
            passwd(path, &args)
        }
        Command::Chat(args) => {
            let settings = cli::resolve_chat(args, file)?;
            let ui = Ui::new(settings.script);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            Ok(rt.block_on(session::chat(settings, ui)))
        }
    }
}

fn keygen(path: PathBuf, args: &KeygenArgs) -> Result<i32, String> {
    if path.exists() {
        return Err(format!(
            "{}: exists already (refusing to overwrite a key)",
            path.display()
        ));
    }
    let sources = args.key.passphrase.sources();
    let what = format!("{}", path.display());
    let passphrase = passphrase::for_new_key(args.no_passphrase, &sources, &what)?;
    let key = StaticSecret::generate(&mut os_rng());
    let secret = Zeroizing::new(key.to_bytes());
    keyfile::write_secret(
        &path,
        Kind::Identity,
        &secret,
        passphrase.as_deref().map(|s| s.as_str()),
    )
    .map_err(|e| e.to_string())?;
    let public = key.public_key();
    println!("{}", public_key_hex(&public));
    println!("fingerprint: {}", public.fingerprint());
    Ok(EXIT_OK)
}

fn pubkey(path: PathBuf, sources: &passphrase::Sources) -> Result<i32, String> {
    let key = read_key(&path, sources)?;
    println!("{}", public_key_hex(&key.public_key()));
    Ok(EXIT_OK)
}

/// Reads our key, asking for its passphrase if it is protected.
pub fn read_key(
    path: &std::path::Path,
    sources: &passphrase::Sources,
) -> Result<StaticSecret, String> {
    keyfile::read_with(path, &mut || {
        sources.get(&format!("Passphrase for {}: ", path.display()))
    })
    .map_err(|e| e.to_string())
}

fn passwd(path: PathBuf, args: &PasswdArgs) -> Result<i32, String> {
    let old = args.key.passphrase.sources();
    let new = if args.no_passphrase {
        None
    } else {
        let new_sources = passphrase::Sources {
            file: args.new_passphrase_file.clone(),
            ..passphrase::Sources::default()
        };
        Some(new_sources.get_new(&format!("{}", path.display()))?)
    };
    keyfile::change_passphrase(
        &path,
        Kind::Identity,
        &mut || old.get(&format!("Current passphrase for {}: ", path.display())),
        new.as_deref().map(|s| s.as_str()),
        securecom_host::age::DEFAULT_WORK_FACTOR,
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "{}: {}",
        path.display(),
        if args.no_passphrase {
            "the key is now UNPROTECTED"
        } else {
            "passphrase changed"
        }
    );
    Ok(EXIT_OK)
}
