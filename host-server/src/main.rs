//! `securecom-server`: the secureCom server.
//!
//! A thin tokio driver around `securecom-core`: one task per client owns
//! both of that client's sockets and the core's `ServerSession`; presence
//! and routing go through per-task mailboxes (see `presence`). With
//! `--nats`, several such processes (nodes) on one NATS bus form one
//! cluster (see `cluster`: the subjects and messages, and why NATS).
//!
//! Dependencies and why: `tokio` (sockets, timers, signals), `clap` (the
//! command line), `tracing` (structured logs that never contain secrets or
//! chat text), `anyhow` (errors at the edges of the program), `async-nats`
//! (the official tokio client of NATS, for the cluster; with aws-lc-rs for
//! its TLS, the provider the server already uses), `futures-util` (to
//! read its subscriptions as streams) and `nkeys` (NATS's key format, to
//! make a node's nkey: `nats-nkey`).
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
mod cluster;
mod keys;
mod listener;
mod presence;
#[cfg(test)]
mod presence_model;
mod registry;
mod session;
mod telemetry;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use securecom_core::message::valid_user_name;
use securecom_core::{AbuseLimits, Limits, ServerConfig, StaticSecret};
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
    /// or the systemd credential `securecom-server-passphrase`
    /// ($CREDENTIALS_DIRECTORY; `LoadCredential=` or `LoadCredentialEncrypted=`).
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
    /// Create a NATS user nkey for the cluster's nodes: its seed goes to a
    /// new file (mode 0600, for `run --nats-nkey-file`), its public key
    /// (`U…`, for the NATS server's `authorization`) is printed.
    NatsNkey {
        /// The new seed file.
        #[arg(long, value_name = "FILE")]
        seed_file: PathBuf,
    },
    /// Run the server.
    Run(Box<RunArgs>),
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
    /// Log format (on stderr).
    #[arg(long, value_enum, default_value_t = telemetry::LogFormat::Text)]
    pub log_format: telemetry::LogFormat,
    /// Serve `/metrics` (Prometheus text), `/healthz` and `/readyz` over
    /// HTTP on this address, e.g. 127.0.0.1:9464 (off by default). No
    /// authentication, no TLS: bind it to loopback or a private network.
    /// At most 8 connections, one request each, a 2 KiB request head read
    /// within 2 s (docs/SECURITY.md).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 20_000)]
    pub max_connections: usize,
    /// New connections per second allowed from one source (burst: twice
    /// that). A source is an IPv4 address or an IPv6 prefix (see
    /// --ipv6-source-prefix).
    #[arg(long, default_value_t = 20.0)]
    pub conn_rate_per_ip: f64,
    /// Handshakes in progress allowed from one source (an IPv4 address or an
    /// IPv6 prefix); more are dropped at accept.
    #[arg(long, default_value_t = 16)]
    pub handshakes_per_ip: usize,
    /// Handshakes in progress allowed in all (connections not logged in yet,
    /// silent ones included; at least 1). When all are taken, the oldest
    /// is closed to admit the new one.
    #[arg(long, default_value_t = 512)]
    pub max_handshakes: usize,
    /// Length of the IPv6 prefix that counts as one source for the
    /// per-source limits (0 to 128; 64: one customer network). IPv4 and
    /// IPv4-mapped IPv6 sources are single IPv4 addresses.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u8).range(0..=128))]
    pub ipv6_source_prefix: u8,
    /// Seconds a handshake may take; a new connection also has that long
    /// to send its first bytes (nothing is allocated for it before).
    #[arg(long, default_value_t = 10)]
    pub handshake_timeout: u64,
    /// Seconds of silence after which a client is dropped.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
    /// Seconds after which the server re-keys a request channel in place
    /// (1 to 120, the protocol's maximum; clients re-key the standard
    /// channel and their chats themselves, and a client whose keys are
    /// older than 150 s is closed).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub rekey_after: u64,
    /// Messages either way after which the server re-keys a request
    /// channel (at least 1).
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
    pub rekey_after_messages: u64,
    /// Seconds between keep-alives on an idle request channel (1 to 25):
    /// they keep NAT and firewall mappings open; a channel silent for three
    /// of them counts as broken.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=25))]
    pub request_keepalive: u64,
    /// Hours a session may last before the client must log in again.
    #[arg(long, default_value_t = 24)]
    pub max_session_hours: u64,
    /// Messages per direction per session before it must be renewed.
    #[arg(long, default_value_t = 1 << 32)]
    pub max_messages: u64,
    /// Largest frame accepted from a client, in bytes, header included (1242,
    /// the longest frame a client sends: a chat's first post-quantum
    /// handshake message relayed, to the protocol's 1538). A client that
    /// announces a longer frame is dropped.
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
    /// How often the registry file's content is checked for changes, in ms
    /// (a revoked user's session is closed within this, plus a moment).
    #[arg(long, default_value_t = 250)]
    pub registry_poll_ms: u64,
    /// Lowest daemon port the server dials (`AnnounceDaemon`).
    #[arg(long, default_value_t = 1024)]
    pub daemon_min_port: u16,
    /// Dial daemons on loopback addresses. Default: only when the server
    /// itself listens on loopback. The server must see clients' real
    /// addresses: behind a reverse proxy or tunnel on its own host every
    /// client would look local.
    #[arg(long)]
    pub allow_loopback_daemons: bool,
    /// Output a session may have waiting for its client, in bytes, before the
    /// server stops reading from it.
    #[arg(long, default_value_t = 64 * 1024)]
    pub output_soft_cap: usize,
    /// Output waiting for a client beyond which it is dropped (`Bye { RateLimited }`).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub output_hard_cap: usize,
    /// `RequestChat` per session: PER_MINUTE:BURST (0: no limit).
    #[arg(long, default_value = "30:10", value_parser = parse_rate)]
    pub rate_requests: securecom_core::Rate,
    /// `LeaveChat` per session: PER_MINUTE:BURST.
    #[arg(long, default_value = "60:20", value_parser = parse_rate)]
    pub rate_leaves: securecom_core::Rate,
    /// `ListUsers` per session: PER_MINUTE:BURST.
    #[arg(long, default_value = "30:10", value_parser = parse_rate)]
    pub rate_listings: securecom_core::Rate,
    /// `AnnounceDaemon` per session: PER_MINUTE:BURST.
    #[arg(long, default_value = "6:3", value_parser = parse_rate)]
    pub rate_announces: securecom_core::Rate,
    /// `Ping` per session: PER_MINUTE:BURST.
    #[arg(long, default_value = "60:10", value_parser = parse_rate)]
    pub rate_pings: securecom_core::Rate,
    /// Re-keys a client begins on its standard channel: PER_MINUTE:BURST;
    /// beyond them the session is closed with `Bye { RateLimited }` (an
    /// honest client re-keys every 2 minutes, or every 65 536 messages).
    #[arg(long, default_value = "60:10", value_parser = parse_rate)]
    pub rate_rekeys: securecom_core::Rate,
    /// `Error { SlowDown }` answers per session: PER_MINUTE:BURST; a session
    /// that goes on past them is dropped with `Bye { RateLimited }`.
    #[arg(long, default_value = "6:20", value_parser = parse_rate)]
    pub rate_strikes: securecom_core::Rate,
    /// Seconds an unanswered chat request waits before it is withdrawn.
    #[arg(long, default_value_t = 60)]
    pub request_timeout: u64,
    /// Seconds during which a user who declined (or did not answer) cannot
    /// be asked again by the same requester.
    #[arg(long, default_value_t = 30)]
    pub refuse_cooldown: u64,
    /// The crypto provider under the protocol: `aws-lc` (AWS-LC's X25519 and
    /// ChaCha20-Poly1305, the fastest here) or `rustcrypto` (the portable
    /// one the device runs). Both put the same bytes on the wire; the
    /// choice exists to compare them in one benchmark run.
    #[arg(long, value_enum, default_value_t = Crypto::AwsLc)]
    pub crypto: Crypto,
    /// The cluster (`--nats` and its options).
    #[command(flatten)]
    pub cluster: cluster::nats::NatsArgs,
}

/// `--crypto`; shown in the log by its option value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Crypto {
    /// `securecom_host::crypto::AwsLc` (the default).
    AwsLc,
    /// `securecom_core::RustCrypto`.
    Rustcrypto,
}

impl std::fmt::Display for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Crypto::AwsLc => "aws-lc",
            Crypto::Rustcrypto => "rustcrypto",
        })
    }
}

fn parse_rate(s: &str) -> std::result::Result<securecom_core::Rate, String> {
    let (per_minute, burst) = s.split_once(':').unwrap_or((s, "1"));
    let per_minute: u32 = per_minute
        .parse()
        .map_err(|_| format!("'{s}': expected PER_MINUTE:BURST, e.g. 30:10"))?;
    let burst: u32 = burst
        .parse()
        .map_err(|_| format!("'{s}': expected PER_MINUTE:BURST, e.g. 30:10"))?;
    if per_minute > 60_000 {
        return Err(format!("'{s}': at most 60000 a minute (0: no limit)"));
    }
    Ok(securecom_core::Rate::new(per_minute, burst.max(1)))
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
            if let Some((other, _)) = users.iter().find(|(n, k)| **k == key && *n != name) {
                bail!("'{other}' already has this key: one key, one user");
            }
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
        Command::NatsNkey { seed_file } => {
            println!("{}", cluster::nats::create_nkey(seed_file)?);
        }
        Command::Run(args) => run(&dir, (**args).clone(), &pass)?,
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
    telemetry::init_logs(args.log.as_deref(), args.log_format);
    if args.max_frame < securecom_core::MIN_MAX_FRAME || args.max_frame > securecom_core::MAX_FRAME
    {
        bail!(
            "--max-frame must be between {} (the longest frame a client sends: a chat's \
             post-quantum handshake message) and {}",
            securecom_core::MIN_MAX_FRAME,
            securecom_core::MAX_FRAME
        );
    }
    let key = load_or_create_key(dir, false, pass)?;
    let certificate = load_certificate(dir, &args.certificate, &key)?;
    let registry = Arc::new(registry::Registry::open(users_path(dir))?);
    telemetry::registry_loaded();
    let limits = Limits {
        max_messages: args.max_messages,
        max_session_age: securecom_core::Duration::from_secs(
            args.max_session_hours
                .checked_mul(3600)
                .context("--max-session-hours is too large")?,
        ),
        handshake_timeout: securecom_core::Duration::from_secs(args.handshake_timeout),
        idle_timeout: securecom_core::Duration::from_secs(args.idle_timeout),
        rekey_after: securecom_core::Duration::from_secs(args.rekey_after),
        rekey_after_messages: args.rekey_after_messages,
    };
    let abuse = AbuseLimits {
        requests: args.rate_requests,
        leaves: args.rate_leaves,
        listings: args.rate_listings,
        announces: args.rate_announces,
        pings: args.rate_pings,
        rekeys: args.rate_rekeys,
        strike_rate: args.rate_strikes,
        request_timeout: securecom_core::Duration::from_secs(args.request_timeout),
        refuse_cooldown: securecom_core::Duration::from_secs(args.refuse_cooldown),
    };
    if args.output_soft_cap < 2 * securecom_core::MAX_FRAME
        || args.output_hard_cap < args.output_soft_cap
    {
        bail!(
            "--output-soft-cap must be at least 2052 and --output-hard-cap at least the soft cap"
        );
    }
    // A cluster member: a random node id, its outbound queue, the shared list.
    let cluster = match &args.cluster.nats {
        None => None,
        Some(_) => {
            let settings = args.cluster.settings()?;
            let node = loop {
                let id = rand_core::RngCore::next_u64(&mut securecom_host::thread_rng());
                if id != 0 {
                    break id;
                }
            };
            // Ready only while the link to NATS is up (`/readyz`).
            telemetry::nats_configured();
            Some(cluster::Cluster::new(settings, node))
        }
    };
    let presence = match &cluster {
        Some((c, _)) => presence::Presence::clustered(c.clone()),
        None => presence::Presence::default(),
    };
    let shared = Arc::new(session::Shared {
        key,
        config: ServerConfig {
            limits,
            abuse,
            request_keepalive: securecom_core::Duration::from_secs(args.request_keepalive),
        },
        tickets: session::Tickets::default(),
        registry: registry.clone(),
        dial_policy: session::DialPolicy {
            min_port: args.daemon_min_port,
            allow_loopback: args.allow_loopback_daemons || args.listen.ip().is_loopback(),
        },
        output_soft_cap: args.output_soft_cap,
        output_hard_cap: args.output_hard_cap,
        presence,
        write_timeout: Duration::from_secs(args.write_timeout),
        dial_timeout: Duration::from_secs(5),
        max_frame: args.max_frame,
        certificate,
        crypto: args.crypto,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let poll = Duration::from_millis(args.registry_poll_ms.max(10));
    rt.spawn(registry::watch_file(registry, poll));
    telemetry::start_endpoint(&rt, args.metrics_listen)?;
    let link = match cluster {
        Some((c, out)) => {
            Some(rt.block_on(cluster::nats::start(&args.cluster, shared.clone(), c, out))?)
        }
        None => None,
    };
    let served = rt.block_on(listener::serve(shared, args, |addr| {
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
    }));
    // The sessions have ended: their logouts and `PeerLeft`s go out.
    if let Some(link) = link {
        rt.block_on(link.drain(Duration::from_secs(2)));
    }
    served
}
