//! `securecom-server`: the secureCom server.
//!
//! A thin tokio driver around `securecom-core`: one task per client owns
//! both of that client's sockets and the core's `ServerSession`; presence
//! and routing go through per-task mailboxes (see `presence`).
//!
//! Dependencies and why: `tokio` (sockets, timers, signals), `clap` (the
//! command line), `tracing` (structured logs that never contain secrets or
//! chat text), `anyhow` (errors at the edges of the program).

mod listener;
mod presence;
mod registry;
mod session;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use securecom_core::message::valid_user_name;
use securecom_core::{Limits, ServerConfig, StaticSecret};
use securecom_host::{keyfile, os_rng, parse_public_key, public_key_hex};

/// The secureCom server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory with the server key (`server.key`) and the registry (`users`).
    /// Default: $SECURECOM_SERVER_DIR, else ~/.local/share/securecom-server.
    #[arg(long, env = "SECURECOM_SERVER_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the server key if it does not exist; print its public key.
    Init,
    /// Print the server's public key (64 hex digits) for clients to pin.
    Pubkey,
    /// Print the server key's fingerprint.
    Fingerprint,
    /// Register a user with their public key (64 hex digits).
    AddUser { name: String, public_key: String },
    /// Remove a user.
    RemoveUser { name: String },
    /// List registered users.
    ListUsers,
    /// Run the server.
    Run(RunArgs),
}

/// Options of `run`; every limit has a safe default.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "0.0.0.0:7300")]
    pub listen: SocketAddr,
    /// Log filter (overrides RUST_LOG), e.g. `info` or `securecom_server=debug`.
    #[arg(long)]
    pub log: Option<String>,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 20_000)]
    pub max_connections: usize,
    /// New connections per second allowed from one source address (burst: twice that).
    #[arg(long, default_value_t = 20.0)]
    pub conn_rate_per_ip: f64,
    /// Handshakes in progress allowed from one source address.
    #[arg(long, default_value_t = 16)]
    pub handshakes_per_ip: usize,
    /// Seconds a handshake may take.
    #[arg(long, default_value_t = 10)]
    pub handshake_timeout: u64,
    /// Seconds of silence after which a client is dropped.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
    /// Hours a session may last before the client must log in again.
    #[arg(long, default_value_t = 24)]
    pub max_session_hours: u64,
    /// Messages per direction per session before it must be renewed.
    #[arg(long, default_value_t = 1 << 32)]
    pub max_messages: u64,
        /// Largest frame accepted from a client, in bytes, header included (128 to
    /// the protocol's 1026; the longest chat message needs about 560). A
    /// client that announces a longer frame is dropped.
    #[arg(long, default_value_t = securecom_core::MAX_FRAME)]
    pub max_frame: usize,
    /// Seconds allowed for a write to a client before it is dropped.
    #[arg(long, default_value_t = 10)]
    pub write_timeout: u64,
}

fn data_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(d) = &cli.data_dir {
        return Ok(d.clone());
    }
    let home = std::env::var_os("HOME").context("no --data-dir and no $HOME")?;
    Ok(PathBuf::from(home).join(".local/share/securecom-server"))
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("server.key")
}

fn users_path(dir: &Path) -> PathBuf {
    dir.join("users")
}

/// Loads the server key, creating it on first use.
fn load_or_create_key(dir: &Path) -> Result<StaticSecret> {
    let path = key_path(dir);
    if !path.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        keyfile::write(&path, &StaticSecret::generate(&mut os_rng()))?;
    }
    Ok(keyfile::read(&path)?)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let dir = data_dir(&cli)?;
    match &cli.command {
        Command::Init => {
            let key = load_or_create_key(&dir)?;
            println!("public key: {}", public_key_hex(&key.public_key()));
            println!("fingerprint: {}", key.public_key().fingerprint());
        }
        Command::Pubkey => {
            let key = keyfile::read(&key_path(&dir))
                .context("no server key yet: run `securecom-server init`")?;
            println!("{}", public_key_hex(&key.public_key()));
        }
        Command::Fingerprint => {
            let key = keyfile::read(&key_path(&dir))
                .context("no server key yet: run `securecom-server init`")?;
            println!("{}", key.public_key().fingerprint());
        }
        Command::AddUser { name, public_key } => {
            if !valid_user_name(name) {
                bail!("invalid user name '{name}': 1 to 32 of a-z 0-9 _ . -");
            }
            let key = parse_public_key(public_key)?;
            std::fs::create_dir_all(&dir)?;
            let mut users = registry::load(&users_path(&dir))?;
            if let Some(old) = users.insert(name.clone(), key) {
                eprintln!(
                    "note: replacing the key of '{name}' (was {})",
                    old.fingerprint()
                );
            }
            registry::save(&users_path(&dir), &users)?;
            println!("added {name} ({})", key.fingerprint());
        }
        Command::RemoveUser { name } => {
            let mut users = registry::load(&users_path(&dir))?;
            if users.remove(name).is_none() {
                bail!("no user '{name}'");
            }
            registry::save(&users_path(&dir), &users)?;
            println!("removed {name}");
        }
        Command::ListUsers => {
            for (name, key) in registry::load(&users_path(&dir))?.iter() {
                println!("{name} {} {}", public_key_hex(key), key.fingerprint());
            }
        }
        Command::Run(args) => run(&dir, args.clone())?,
    }
    Ok(())
}

fn run(dir: &Path, args: RunArgs) -> Result<()> {
    let filter = match &args.log {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if args.max_frame < 128 || args.max_frame > securecom_core::MAX_FRAME {
        bail!(
            "--max-frame must be between 128 and {} (the longest chat message needs about 560)",
            securecom_core::MAX_FRAME
        );
    }
    let key = load_or_create_key(dir)?;
    let registry = registry::Registry::open(users_path(dir))?;
    let limits = Limits {
        max_messages: args.max_messages,
        max_session_age: securecom_core::Duration::from_secs(args.max_session_hours * 3600),
        handshake_timeout: securecom_core::Duration::from_secs(args.handshake_timeout),
        idle_timeout: securecom_core::Duration::from_secs(args.idle_timeout),
    };
    let shared = Arc::new(session::Shared {
        key,
        config: ServerConfig { limits },
        registry,
        presence: presence::Presence::default(),
        write_timeout: Duration::from_secs(args.write_timeout),
                dial_timeout: Duration::from_secs(5),
        max_frame: args.max_frame,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(listener::serve(shared, args, |addr| {
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
    }))
}
