//! `securecom-server`: the secureCom server.
//!
//! A thin tokio driver around `securecom-core`: one task per client owns
//! both of that client's sockets and the core's `ServerSession`; presence
//! and routing go through per-task mailboxes (see `presence`).
//!
//! Dependencies and why: `tokio` (sockets, timers, signals), `clap` (the
//! command line), `tracing` (structured logs that never contain secrets or
//! chat text), `anyhow` (errors at the edges of the program).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

mod ca;
mod keys;
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
use securecom_host::passphrase::Sources;
use securecom_host::{parse_public_key, public_key_hex};

/// The secureCom server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory with the server key (`server.key`) and the registry (`users`).
    /// Default: $SECURECOM_SERVER_DIR, else ~/.local/share/securecom-server.
    #[arg(long, env = "SECURECOM_SERVER_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Read the passphrase of a protected key (server or CA) from this file's
    /// first line (for unattended starts). Also: $SECURECOM_SERVER_PASSPHRASE,
    /// or the systemd credential `securecom-server-passphrase`.
    #[arg(
        long,
        env = "SECURECOM_SERVER_PASSPHRASE_FILE",
        global = true,
        value_name = "FILE"
    )]
    passphrase_file: Option<PathBuf>,
    /// Read that passphrase from this open file descriptor's first line.
    #[arg(long, global = true, value_name = "FD")]
    passphrase_fd: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the server key if it does not exist; print its public key.
    Init {
        /// Protect the new key with a passphrase (asked twice, or from the passphrase sources).
        #[arg(long)]
        protect: bool,
    },
    /// Change the server key's passphrase (or protect an unprotected key).
    Passwd {
        /// Remove the protection instead.
        #[arg(long)]
        no_passphrase: bool,
        /// Read the new passphrase from this file (default: asked twice on the terminal).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// The certificate authority: keys, certificates, revocation lists.
    Ca(ca::CaArgs),
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
    /// The CA's certificate of this server's key, sent in the handshake to
    /// clients that trust the CA. Default: `server.cert` in the data
    /// directory, if it exists.
    #[arg(long, env = "SECURECOM_SERVER_CERTIFICATE", value_name = "FILE")]
    pub certificate: Option<PathBuf>,
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

/// Loads the server key, creating it (unprotected, or with `protect`) on first use.
fn load_or_create_key(dir: &Path, protect: bool, pass: &Sources) -> Result<StaticSecret> {
    let path = key_path(dir);
    if !path.exists() {
        keys::create(&path, protect, pass)?;
    }
    keys::read(&path, pass)
}

/// The server's public key, creating the key on first use.
fn init_key(dir: &Path, protect: bool, pass: &Sources) -> Result<securecom_core::PublicKey> {
    let path = key_path(dir);
    if !path.exists() {
        keys::create(&path, protect, pass)?;
    } else if protect && !securecom_host::keyfile::is_protected(&path)? {
        bail!(
            "{} exists already, unprotected: use `securecom-server passwd` to protect it",
            path.display()
        );
    }
    keys::public(&path, pass)
}

/// Loads the certificate to send, and checks that it certifies `key`.
fn load_certificate(
    dir: &Path,
    arg: &Option<PathBuf>,
    key: &StaticSecret,
) -> Result<Option<Vec<u8>>> {
    let path = match arg {
        Some(p) => p.clone(),
        None => {
            let p = dir.join("server.cert");
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let bytes = securecom_host::certfile::read_certificate(&path).map_err(anyhow::Error::msg)?;
    let body =
        securecom_core::cert::decode_certificate(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    if body.static_key != key.public_key() {
        bail!(
            "{}: the certificate is for another key ({}), not this server's ({})",
            path.display(),
            body.static_key.fingerprint(),
            key.public_key().fingerprint()
        );
    }
    let now = securecom_host::certfile::unix_now();
    let until = securecom_host::certfile::format_time(body.not_after);
    if now > body.not_after {
        tracing::warn!(path = %path.display(), %until, "the certificate has EXPIRED: clients that trust the CA will refuse this server");
    } else if now < body.not_before {
        tracing::warn!(path = %path.display(), "the certificate is not valid yet");
    }
    tracing::info!(name = body.server_name, serial = body.serial, %until, "sending certificate");
    Ok(Some(bytes))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let dir = data_dir(&cli)?;
    let pass = Sources {
        fd: cli.passphrase_fd,
        file: cli.passphrase_file.clone(),
        env_var: Some(keys::PASSPHRASE_ENV),
        credential: Some(keys::CREDENTIAL),
    };
    match &cli.command {
        Command::Init { protect } => {
            let key = init_key(&dir, *protect, &pass)?;
            println!("public key: {}", public_key_hex(&key));
            println!("fingerprint: {}", key.fingerprint());
        }
        Command::Passwd {
            no_passphrase,
            new_passphrase_file,
        } => {
            keys::passwd(
                &key_path(&dir),
                &pass,
                *no_passphrase,
                new_passphrase_file.as_deref(),
            )?;
            println!(
                "{}: {}",
                key_path(&dir).display(),
                if *no_passphrase {
                    "now unprotected"
                } else {
                    "passphrase changed"
                }
            );
        }
        Command::Ca(args) => ca::run(args, &pass)?,
        Command::Pubkey => {
            let key = existing_public(&dir, &pass)?;
            println!("{}", public_key_hex(&key));
        }
        Command::Fingerprint => {
            let key = existing_public(&dir, &pass)?;
            println!("{}", key.fingerprint());
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
        Command::Run(args) => run(&dir, args.clone(), &pass)?,
    }
    Ok(())
}

fn existing_public(dir: &Path, pass: &Sources) -> Result<securecom_core::PublicKey> {
    let path = key_path(dir);
    if !path.exists() {
        bail!("no server key yet: run `securecom-server init`");
    }
    keys::public(&path, pass)
}

fn run(dir: &Path, args: RunArgs, pass: &Sources) -> Result<()> {
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
    let key = load_or_create_key(dir, false, pass)?;
    let certificate = load_certificate(dir, &args.certificate, &key)?;
    let registry = registry::Registry::open(users_path(dir))?;
    let limits = Limits {
        max_messages: args.max_messages,
        max_session_age: securecom_core::Duration::from_secs(
            args.max_session_hours
                .checked_mul(3600)
                .context("--max-session-hours is too large")?,
        ),
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
        certificate,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(listener::serve(shared, args, |addr| {
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
    }))
}
