//! `securecom-loadgen peers`: secureCom next to the TLS relays one would
//! pick instead, in one run, all driven by the same load generator.
//!
//! # The systems
//!
//! - **mosquitto** (the Debian package, 2.0.11 on Debian 12), started with
//!   a generated configuration: one TLS listener on 127.0.0.1 (a free
//!   port), `tls_version tlsv1.3`, `require_certificate true` and
//!   `use_identity_as_username true` (the client certificate's common name
//!   is the user; `allow_anonymous false`), persistence off, only errors
//!   logged, `connection_messages false`, `sys_interval 0` (no `$SYS`
//!   publishing), `set_tcp_nodelay true` (the other servers set TCP_NODELAY
//!   too) and `max_queued_messages 0` (no QoS 0 message is dropped for a
//!   queue limit: the generator bounds what is in flight). Its clients are
//!   a minimal MQTT 3.1.1 client over tokio-rustls (`mqtt.rs`): CONNECT
//!   with a clean session, SUBSCRIBE `chat/<own name>` at QoS 0, PUBLISH
//!   QoS 0 to `chat/<peer>`.
//! - **rustls mTLS relay**: `peer-relay` (src/bin/peer-relay.rs): tokio,
//!   tokio-rustls, rustls 0.23 with aws-lc-rs (the same aws-lc-rs build as
//!   host-common's), TLS 1.3 only, client certificates required and
//!   verified against the generated CA (`WebPkiClientVerifier`); the name a
//!   client gives in its hello must be a DNS name of its certificate. Then
//!   it relays length-prefixed frames to the peer named in the hello: one
//!   task per connection, each read's whole frames handed on as one buffer
//!   (a bounded channel), all that is queued for a connection written at
//!   once.
//! - **plain TCP relay**: `peer-relay --plain`, the same code without TLS
//!   and without authentication: the floor of what relaying costs.
//! - **secureCom**: the release `securecom-server`, started as the other
//!   subcommands start it (`Server::start`, the per-source limits lifted),
//!   with the core's clients of main.rs (`Peer`, `open_pair`): a login is a
//!   Noise XX handshake and the login exchange; a message is a chat
//!   message the server opens and seals again for the peer.
//! - **secureCom, server on RustCrypto (before)**: the same server with
//!   `--crypto rustcrypto`, the portable provider it ran before the host
//!   provider (and the device runs); the generator's clients are the same.
//!
//! # Fairness
//!
//! - One generator for all: the same logins (`--logins`, by `--concurrency`
//!   users at once, each logging in and out in turn: connection, handshake,
//!   login; closed at once), the same K pairs, the same 256-byte payload
//!   (its first 20 bytes the send time), the same window of messages in
//!   flight per pair (`--window`, with bursts of 16 messages per write as
//!   main.rs's `blast`), the same pacing (each of the K pairs at rate / K,
//!   their schedules spread over one interval; one message per write), the
//!   same latency (receive time minus the stamp, over every message sent
//!   after the warm-up) and the same checks (every message sent arrives,
//!   intact, or the run fails).
//! - The same TLS for both TLS systems from the client side: TLS 1.3,
//!   X25519 only (rustls would otherwise offer its post-quantum hybrid to
//!   the rustls relay and not to mosquitto's OpenSSL), ECDSA P-256
//!   certificates both ways, no session resumption (every login is a full
//!   handshake, as secureCom's); the cipher suite is each server's choice
//!   and is printed.
//! - The same core for every server: each is started by a thread pinned
//!   to core 0, so it inherits that single core from its first instruction
//!   (checked in /proc/<pid>/status). securecom-server and peer-relay use
//!   the same runtime, tokio's multi-threaded one at its default size, so
//!   each runs one worker thread on that core; mosquitto is single-threaded.
//!   The generator (every thread of this process) runs on core 1, on a
//!   current-thread tokio runtime.
//! - The server's CPU is its utime + stime, from its CPU-time clock
//!   (`clock_getcpuclockid`: nanoseconds, all its threads; /proc/<pid>/stat
//!   in clock ticks if that fails) across the measured part of each phase;
//!   per login it is that over the logins, per message over the messages
//!   relayed. Next to each figure: the generator's CPU time over the wall
//!   time (getrusage), which shows whether it, not the server, was the limit
//!   (near 100 %: it was), and the server's.
//! - The latency stamp is the time a message is written, not its scheduled
//!   time: a system that falls behind the offered rate shows it first in
//!   the relayed rate (printed next to the CPU figure).
//!
//! Usage: `securecom-loadgen peers [--seconds 5] [--logins 2000]
//! [--concurrency 16] [--ks 1,8,64] [--rates 20000,50000] [--rate-chats 8]
//! [--window 64] [--only mosquitto,rustls,tcp,securecom]`.

mod certs;
mod drive;
pub(crate) mod measure;
mod mqtt;
mod systems;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use securecom_core::StaticSecret;
use securecom_host::os_rng;

use drive::{Logins, Pace, Phase};
use systems::{Cred, Kind, Target};

/// The payload of every message.
const SIZE: usize = 256;
/// The window of a paced run (per pair): only a system that falls behind reaches it.
const PACED_WINDOW: usize = 1000;

/// The TLS clients' crypto: aws-lc-rs, X25519 only (as the relay's).
pub(crate) fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    Arc::new(p)
}

struct Opts {
    seconds: f64,
    logins: usize,
    concurrency: usize,
    ks: Vec<usize>,
    rates: Vec<f64>,
    rate_chats: usize,
    window: usize,
    only: Vec<Kind>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let get = |flag: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    fn list<T: std::str::FromStr>(s: &str, flag: &str) -> Result<Vec<T>> {
        s.split(',')
            .map(|v| {
                v.trim()
                    .parse()
                    .ok()
                    .with_context(|| format!("{flag}: bad value {v}"))
            })
            .collect()
    }
    fn one<T: std::str::FromStr>(v: Option<&str>, flag: &str, default: T) -> Result<T> {
        match v {
            None => Ok(default),
            Some(v) => v
                .parse()
                .ok()
                .with_context(|| format!("{flag}: bad value {v}")),
        }
    }
    let only = match get("--only") {
        None => Kind::ALL.to_vec(),
        Some(s) => s
            .split(',')
            .map(|k| {
                Kind::ALL
                    .into_iter()
                    .find(|x| x.key() == k.trim())
                    .with_context(|| {
                        format!("--only: unknown system {k} (mosquitto, rustls, tcp, securecom-rustcrypto, securecom)")
                    })
            })
            .collect::<Result<_>>()?,
    };
    let o = Opts {
        seconds: one(get("--seconds"), "--seconds", 5.0)?,
        logins: one(get("--logins"), "--logins", 2000)?,
        concurrency: one(get("--concurrency"), "--concurrency", 16)?,
        ks: list(get("--ks").unwrap_or("1,8,64"), "--ks")?,
        rates: list(get("--rates").unwrap_or("20000,50000"), "--rates")?,
        rate_chats: one(get("--rate-chats"), "--rate-chats", 8)?,
        window: one(get("--window"), "--window", 64)?,
        only,
    };
    if o.seconds <= 0.0
        || o.concurrency == 0
        || o.logins < o.concurrency
        || o.window == 0
        || o.rate_chats == 0
    {
        bail!("--seconds, --window and --rate-chats must be positive and --logins at least --concurrency");
    }
    if o.ks.contains(&0) || o.rates.iter().any(|r| *r <= 0.0) {
        bail!("--ks and --rates must be positive");
    }
    Ok(o)
}

pub(crate) async fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    measure::check_cores()?;
    // Fail before anything runs if a system cannot start.
    let mosquitto = if o.only.contains(&Kind::Mosquitto) {
        Some(systems::mosquitto_version()?)
    } else {
        None
    };
    let bins = systems::bin_dir()?;
    for (kinds, bin, build) in [
        (
            &[Kind::Securecom, Kind::SecurecomRustCrypto][..],
            "securecom-server",
            "securecom-server",
        ),
        (
            &[Kind::Rustls, Kind::Tcp][..],
            "peer-relay",
            "securecom-loadgen",
        ),
    ] {
        if kinds.iter().any(|k| o.only.contains(k)) && !bins.join(bin).exists() {
            bail!(
                "{} not found: cargo build --release -p {build}",
                bins.join(bin).display()
            );
        }
    }
    // Every thread of this process to the generator's core, and the
    // generator on a thread of its own with a current-thread runtime.
    measure::pin_self(measure::GENERATOR_CORE)?;
    let generator = std::thread::Builder::new()
        .name("peers-generator".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(generate(o, mosquitto))
        })?;
    tokio::task::spawn_blocking(move || generator.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the generator panicked"))?
}

/// What one system did.
struct Figures {
    kind: Kind,
    logins: Logins,
    max: Vec<(usize, Phase)>,
    paced: Vec<(f64, Phase)>,
}

async fn generate(o: Opts, mosquitto: Option<String>) -> Result<()> {
    // Users: the login users, then for each phase its own a and b users
    // (a name is never reused, so no server has to be done closing it).
    let mut phases: Vec<usize> = o.ks.clone();
    phases.extend(std::iter::repeat_n(o.rate_chats, o.rates.len()));
    let mut names: Vec<String> = (0..o.concurrency).map(|i| format!("l{i}")).collect();
    for (p, &k) in phases.iter().enumerate() {
        for side in ["a", "b"] {
            names.extend((0..k).map(|i| format!("p{p}{side}{i}")));
        }
    }
    let dir = tempfile::tempdir()?;
    let pki = certs::generate(dir.path(), &names)?;
    let mut rng = os_rng();
    let creds: Vec<Arc<Cred>> = names
        .iter()
        .map(|n| {
            Arc::new(Cred {
                sc: (n.clone(), StaticSecret::generate(&mut rng)),
                tls: pki.clients[n].clone(),
            })
        })
        .collect();
    let sc_users: Vec<_> = creds
        .iter()
        .map(|c| (c.sc.0.clone(), c.sc.1.public_key()))
        .collect();
    let login_users = &creds[..o.concurrency];
    // Each phase's users: (a, b).
    let mut at = o.concurrency;
    let phase_users: Vec<(drive::Users, drive::Users)> = phases
        .iter()
        .map(|&k| {
            let a = &creds[at..at + k];
            let b = &creds[at + k..at + 2 * k];
            at += 2 * k;
            (a, b)
        })
        .collect();
    let seconds = Duration::from_secs_f64(o.seconds);
    let warmup = Duration::from_secs_f64((o.seconds / 5.0).min(1.0));
    println!(
        "peers: {} logins ({} users at once); K = {:?} pairs at the maximum (window {} per pair); {:?} msg/s offered over {} pairs; {SIZE} B messages; {:.1} s per phase after a {:.1} s warm-up; server on core {}, generator on core {}",
        o.logins,
        o.concurrency,
        o.ks,
        o.window,
        o.rates,
        o.rate_chats,
        o.seconds,
        warmup.as_secs_f64(),
        measure::SERVER_CORE,
        measure::GENERATOR_CORE
    );
    let mut all = Vec::new();
    for &kind in Kind::ALL.iter().filter(|k| o.only.contains(k)) {
        let mut t = Target::start(kind, dir.path(), &pki, &sc_users)?;
        let version = match kind {
            Kind::Mosquitto => format!(" ({})", mosquitto.as_deref().unwrap_or("")),
            _ => String::new(),
        };
        println!("{}{version}: {}", kind.title(), t.describe());
        let logins = drive::logins(&t, login_users, o.logins)
            .await
            .with_context(|| format!("{}: logins", kind.key()))?;
        println!(
            "  logins: {} in {:.2} s = {:.0}/s; server CPU {:.1} µs per login; generator CPU {:.0} %{}",
            logins.count,
            logins.span.wall,
            logins.count as f64 / logins.span.wall,
            1e6 * logins.span.server / logins.count as f64,
            100.0 * logins.span.generator_share(),
            logins.suite.as_ref().map(|s| format!("; {s}")).unwrap_or_default()
        );
        let mut f = Figures {
            kind,
            logins,
            max: Vec::new(),
            paced: Vec::new(),
        };
        let mut p = 0;
        for &k in &o.ks {
            let users = phase_users[p];
            p += 1;
            let r = drive::phase(
                &t,
                users,
                k,
                Pace::Max { window: o.window },
                SIZE,
                warmup,
                seconds,
            )
            .await?;
            println!(
                "  K={k} at the maximum: {} messages ({} with the warm-up), {:.0} msg/s; server CPU {:.2} µs per message; generator CPU {:.0} %, server {:.0} %",
                r.measured,
                r.total,
                r.rate(),
                r.server_us_per_message(),
                100.0 * r.span.generator_share(),
                100.0 * r.span.server_share()
            );
            f.max.push((k, r));
            t.check_alive()?;
        }
        for &rate in &o.rates {
            let users = phase_users[p];
            p += 1;
            let pace = Pace::Rate {
                total: rate,
                window: PACED_WINDOW,
            };
            let r = drive::phase(&t, users, o.rate_chats, pace, SIZE, warmup, seconds).await?;
            println!(
                "  offered {rate:.0} msg/s: {} messages, {:.0} msg/s; server CPU {:.2} µs per message; latency p50 {} µs, p99 {} µs; generator CPU {:.0} %, server {:.0} %",
                r.measured,
                r.rate(),
                r.server_us_per_message(),
                r.percentile(0.5),
                r.percentile(0.99),
                100.0 * r.span.generator_share(),
                100.0 * r.span.server_share()
            );
            f.paced.push((rate, r));
            t.check_alive()?;
        }
        drop(t);
        all.push(f);
    }
    print!("{}", table(&all, &o));
    Ok(())
}

/// `v` and its ratio to the rustls column's `base`.
fn with_ratio(v: f64, base: Option<f64>, digits: usize) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{v:.digits$} ({:.2}×)", v / b),
        _ => format!("{v:.digits$}"),
    }
}

fn shares(s: &drive::Phase) -> String {
    let g = s.span.generator_share();
    format!(
        "gen {:.0} %{}, srv {:.0} %",
        100.0 * g,
        if g > 0.9 { " (!)" } else { "" },
        100.0 * s.span.server_share()
    )
}

fn table(all: &[Figures], o: &Opts) -> String {
    let base = all.iter().find(|f| f.kind == Kind::Rustls);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n| figure (same run) |{}",
        all.iter()
            .map(|f| format!(" {} |", f.kind.title()))
            .collect::<String>()
    );
    let _ = writeln!(t, "|---|{}", "---|".repeat(all.len()));
    let row =
        |t: &mut String, label: String, cell: &dyn Fn(&Figures, Option<&Figures>) -> String| {
            let _ = writeln!(
                t,
                "| {label} |{}",
                all.iter()
                    .map(|f| format!(" {} |", cell(f, base)))
                    .collect::<String>()
            );
        };
    let per_login = |f: &Figures| 1e6 * f.logins.span.server / f.logins.count as f64;
    row(&mut t, "server CPU per login (µs)".into(), &|f, b| {
        let g = f.logins.span.generator_share();
        format!(
            "{}; gen {:.0} %{}, srv {:.0} %",
            with_ratio(per_login(f), b.map(per_login), 1),
            100.0 * g,
            if g > 0.9 { " (!)" } else { "" },
            100.0 * f.logins.span.server_share()
        )
    });
    for (i, &k) in o.ks.iter().enumerate() {
        row(
            &mut t,
            format!("server CPU per relayed message (µs), K={k}, at the generator's maximum"),
            &|f, b| {
                let p = &f.max[i].1;
                format!(
                    "{}; {}",
                    with_ratio(
                        p.server_us_per_message(),
                        b.map(|b| b.max[i].1.server_us_per_message()),
                        2
                    ),
                    shares(p)
                )
            },
        );
        row(&mut t, format!("throughput (msg/s), K={k}"), &|f, b| {
            with_ratio(f.max[i].1.rate(), b.map(|b| b.max[i].1.rate()), 0)
        });
    }
    for (i, &rate) in o.rates.iter().enumerate() {
        row(&mut t, format!("server CPU per relayed message (µs) at offered {rate:.0} msg/s ({} pairs; relayed msg/s)", o.rate_chats), &|f, b| {
            let p = &f.paced[i].1;
            format!(
                "{}; {:.0} msg/s; {}",
                with_ratio(p.server_us_per_message(), b.map(|b| b.paced[i].1.server_us_per_message()), 2),
                p.rate(),
                shares(p)
            )
        });
        row(
            &mut t,
            format!("p50 / p99 latency (µs) at offered {rate:.0} msg/s"),
            &|f, b| {
                let p = &f.paced[i].1;
                let (p50, p99) = (p.percentile(0.5), p.percentile(0.99));
                match b {
                    Some(b) => {
                        let bp = &b.paced[i].1;
                        format!(
                            "{p50} / {p99} ({:.2}× / {:.2}×)",
                            p50 as f64 / bp.percentile(0.5).max(1) as f64,
                            p99 as f64 / bp.percentile(0.99).max(1) as f64
                        )
                    }
                    None => format!("{p50} / {p99}"),
                }
            },
        );
    }
    let _ = writeln!(
        t,
        "\nRatios are to the rustls column. gen: the load generator's CPU time over wall time on its core ((!) over 90 %: the generator, not the server, may be the limit); srv: the server's, on its core."
    );
    t
}
