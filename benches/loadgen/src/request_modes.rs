//! `securecom-loadgen request-modes`: what a request channel costs per login,
//! opened either way (docs/PROTOCOL.md section 2, 7.2), next to a login
//! without one, all against one release server in one run:
//!
//! - (c) `login`: login only, no request channel (the anchor);
//! - (a) `server-dials`: login, then the server dials the client's daemon
//!   (`RequestMode::Listen`, `AnnounceDaemon`);
//! - (b) `client-dials`: login, then the client connects its request channel
//!   to the server (`RequestMode::Dial`, `DialRequestChannel` and the 35-byte
//!   request hello).
//!
//! `--concurrency` workers (default 16) each log in as their own user, one
//! login after the other: connect, log in, bring the request channel up
//! (until `DaemonStatus { reachable: true }`), close both connections. The
//! `--n` logins per mode (default 2000: the server's CPU time comes in 10 ms
//! ticks, 5 µs per login) are split into `--rounds` rounds (default 4);
//! every round runs the three modes, in an order rotated from round to
//! round, so that the machine's drift falls on all three alike. A warm-up
//! of one login per worker and mode comes first, not counted.
//!
//! Per mode: logins per second of wall-clock time; the server's CPU time
//! (utime + stime of `/proc/PID/stat`, all threads, 10 ms ticks; stime
//! also shown alone) from just before a mode's logins to 200 ms after the
//! last one (its sessions' teardown included), divided by the logins; the
//! load generator's own CPU time over the logins as a share of the
//! machine's cores; the time from the TCP connect of the standard channel to
//! `DaemonStatus { reachable: true }` (to `LoggedIn` for the anchor): p50,
//! p90, p99, max, mean, and the share of logins that took 20 ms or more;
//! then (a) and (b) as ratios to (c), and (b) to (a). Announces are not
//! rate-limited in this run (`--rate-announces 0:0`): every worker logs in
//! again and again as the same user.
//!
//! Usage: `securecom-loadgen request-modes [--n N] [--concurrency C] [--rounds R]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use securecom_core::{ClientEvent, CryptoProvider as _, PublicKey, RequestMode, StaticSecret};
use securecom_host::now;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{connect_from, cores, registry, users, x25519_costs, Peer, Server, LIFTED_LIMITS};

/// CPU seconds (user, system; all threads, dead ones included) of
/// `/proc/{who}/stat`, in ticks of USER_HZ = 100 on Linux.
fn cpu_secs(who: &str) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{who}/stat")) else {
        return (0.0, 0.0);
    };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After the command name: field 3 (state) is index 0, utime (14) 11, stime (15) 12.
    let tick = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / 100.0;
    (tick(11), tick(12))
}

fn total((user, sys): (f64, f64)) -> f64 {
    user + sys
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// (c) Login only.
    Login,
    /// (a) The server dials the client's daemon.
    ServerDials,
    /// (b) The client dials its request channel.
    ClientDials,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Login, Mode::ServerDials, Mode::ClientDials];

    fn label(self) -> &'static str {
        match self {
            Mode::Login => "(c) login only (anchor)",
            Mode::ServerDials => "(a) login + server dials the daemon",
            Mode::ClientDials => "(b) login + client dials (RequestMode::Dial)",
        }
    }

    /// Round trips from the TCP connect of the standard channel to the
    /// client's `DaemonStatus { reachable: true }` (to `LoggedIn` for the
    /// anchor), counted from docs/PROTOCOL.md 7.1 and 7.2 (TCP's SYN /
    /// SYN-ACK counted as one round trip; the last ACK travels with data).
    fn round_trips(self) -> &'static str {
        match self {
            Mode::Login => "3 (TCP, XX 1/2, XX 3/LoginOk)",
            Mode::ServerDials => {
                "6 = 3 + 3 (AnnounceDaemon ->, server's SYN <- / SYN-ACK ->, NN 1 <- / NN 2 ->, Ready + DaemonStatus <-)"
            }
            Mode::ClientDials => {
                "6 = 3 + 3 (DialRequestChannel and SYN -> together / SYN-ACK <-, hello ->, NN 1 <- / NN 2 ->, Ready + DaemonStatus <-)"
            }
        }
    }
}

/// What one mode added up to over all rounds.
#[derive(Default)]
struct Totals {
    logins: usize,
    wall: f64,
    server_cpu: f64,
    server_sys: f64,
    me_cpu: f64,
    lat_us: Vec<u64>,
}

impl Totals {
    fn rate(&self) -> f64 {
        self.logins as f64 / self.wall
    }
    fn server_us(&self) -> f64 {
        self.server_cpu * 1e6 / self.logins as f64
    }
    fn server_sys_us(&self) -> f64 {
        self.server_sys * 1e6 / self.logins as f64
    }
    fn me_share(&self) -> f64 {
        self.me_cpu / (self.wall * cores() as f64)
    }
    fn mean_ms(&self) -> f64 {
        self.lat_us.iter().sum::<u64>() as f64 / self.lat_us.len() as f64 / 1000.0
    }
    /// The share of logins that took `ms` or more.
    fn over(&self, ms: u64) -> f64 {
        self.lat_us.iter().filter(|&&us| us >= ms * 1000).count() as f64 / self.lat_us.len() as f64
    }
    fn pct(&self, p: f64) -> u64 {
        let mut v = self.lat_us.clone();
        v.sort_unstable();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    }
}

/// Runs a request link over `stream` until the client reports its request
/// channel up; returns the link's socket (drop it after the standard one).
async fn run_link(p: &mut Peer, stream: TcpStream) -> Result<TcpStream> {
    let mut stream = stream;
    let mut link =
        p.c.new_request_link(now(), &mut p.rng)
            .map_err(|e| anyhow!("{e}"))?;
    let mut buf = [0u8; 4096];
    let mut out = [0u8; 4096];
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        if p.events
            .iter()
            .any(|e| matches!(e, ClientEvent::DaemonStatus { reachable: true }))
        {
            return Ok(stream);
        }
        if let Some(e) = p
            .events
            .iter()
            .find(|e| matches!(e, ClientEvent::DaemonStatus { reachable: false }))
        {
            bail!("request channel failed: {e:?}");
        }
        tokio::select! {
            _ = &mut deadline => bail!("request channel timed out"),
            r = stream.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    bail!("the server closed the request channel");
                }
                let mut at = 0;
                while at < n {
                    at += p
                        .c
                        .handle_request_input(&mut link, now(), &buf[at..n], &mut securecom_host::thread_rng())
                        .map_err(|e| anyhow!("{e}"))?;
                }
                while let Some(e) = p.c.poll_event() {
                    p.events.push_back(e);
                }
                loop {
                    let m = p.c.poll_request_transmit(&mut link, now(), &mut out);
                    if m == 0 {
                        break;
                    }
                    stream.write_all(&out[..m]).await?;
                }
            }
            r = p.read_once() => r?,
        }
    }
}

/// One login in `mode`; returns the µs from the TCP connect to the request
/// channel being up (to `LoggedIn` for the anchor).
async fn one_login(
    mode: Mode,
    addr: SocketAddr,
    key: PublicKey,
    (name, secret): &(String, StaticSecret),
    daemon: &TcpListener,
) -> Result<u64> {
    let t0 = Instant::now();
    let port = (mode == Mode::ServerDials)
        .then(|| daemon.local_addr().map(|a| a.port()))
        .transpose()?;
    let mut p = Peer::connect(addr, key, name, secret, port).await?;
    p.c.set_request_mode(match mode {
        Mode::ClientDials => RequestMode::Dial,
        _ => RequestMode::Listen,
    });
    let link = match mode {
        Mode::Login => {
            p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
                .await?;
            None
        }
        Mode::ServerDials => {
            // Reading LoginOk sends the announce; then the server dials.
            p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
                .await?;
            let (s, _) = tokio::time::timeout(Duration::from_secs(30), daemon.accept())
                .await
                .map_err(|_| anyhow!("the server did not dial the daemon"))??;
            s.set_nodelay(true)?;
            Some(run_link(&mut p, s).await?)
        }
        Mode::ClientDials => {
            // Reading LoginOk sends DialRequestChannel and asks us to connect.
            let ev = p
                .wait("ConnectRequestChannel", |e| {
                    matches!(e, ClientEvent::ConnectRequestChannel(_))
                })
                .await?;
            let ClientEvent::ConnectRequestChannel(hello) = ev else {
                bail!("unexpected event {ev:?}");
            };
            let mut s = connect_from(None, addr).await?;
            s.write_all(&hello.0).await?;
            Some(run_link(&mut p, s).await?)
        }
    };
    let us = t0.elapsed().as_micros() as u64;
    // The standard channel first: the session ends, then its request channel.
    drop(p);
    drop(link);
    Ok(us)
}

/// `count` logins in `mode` spread over the workers; adds to `totals`.
async fn phase(
    mode: Mode,
    count: usize,
    server: &Server,
    all: &Arc<Vec<(String, StaticSecret)>>,
    daemons: &[Arc<TcpListener>],
    totals: &mut Totals,
) -> Result<()> {
    let workers = all.len();
    let pid = server.pid().to_string();
    let (addr, key) = (server.addr, server.key);
    let (s0, m0) = (cpu_secs(&pid), cpu_secs("self"));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..workers {
        let (all, daemon) = (all.clone(), daemons[i].clone());
        let mine = count / workers + usize::from(i < count % workers);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(mine);
            for _ in 0..mine {
                lat.push(one_login(mode, addr, key, &all[i], &daemon).await?);
            }
            anyhow::Ok(lat)
        }));
    }
    for task in tasks {
        totals.lat_us.extend(task.await??);
    }
    let wall = t.elapsed().as_secs_f64();
    let m1 = cpu_secs("self");
    // The server closes the last sessions (and their request channels).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s1 = cpu_secs(&pid);
    totals.logins += count;
    totals.wall += wall;
    totals.me_cpu += total(m1) - total(m0);
    totals.server_cpu += total(s1) - total(s0);
    totals.server_sys += s1.1 - s0.1;
    Ok(())
}

pub async fn run(n: usize, concurrency: usize, rounds: usize) -> Result<()> {
    let (concurrency, rounds) = (concurrency.max(1), rounds.max(1));
    let all = users("r", concurrency);
    let server = Server::start_with(
        &registry(&all),
        // Every worker announces at each of its logins, as the same user.
        &[LIFTED_LIMITS, &["--rate-announces", "0:0"]].concat(),
        false,
    )?;
    let all = Arc::new(all);
    let mut daemons = Vec::new();
    for _ in 0..concurrency {
        daemons.push(Arc::new(TcpListener::bind("127.0.0.1:0").await?));
    }
    // The server at rest, for scale.
    let pid = server.pid().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle0 = total(cpu_secs(&pid));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = total(cpu_secs(&pid)) - idle0;
    // Warm-up, not counted: one login per worker and mode.
    let mut scratch = Totals::default();
    for mode in Mode::ALL {
        phase(mode, concurrency, &server, &all, &daemons, &mut scratch).await?;
    }
    let mut totals: [Totals; 3] = Default::default();
    for r in 0..rounds {
        let count = n * (r + 1) / rounds - n * r / rounds;
        for k in 0..3 {
            let m = (r + k) % 3;
            phase(Mode::ALL[m], count, &server, &all, &daemons, &mut totals[m]).await?;
        }
    }
    let (keygen, dh) = x25519_costs();
    drop(server);

    println!(
        "request-modes: {n} logins per mode, {concurrency} concurrent workers, {rounds} rounds (mode order rotated), {} cores; server idle: {:.0} ms CPU per s",
        cores(),
        idle * 1000.0
    );
    println!("| mode | logins/s | server CPU per login (of it system) | loadgen CPU share | connect → up p50 / p90 / p99 / max (mean) | ≥ 20 ms | round trips (analytical) |");
    println!("|---|---|---|---|---|---|---|");
    let ms = |us: u64| us as f64 / 1000.0;
    for (m, t) in Mode::ALL.iter().zip(&totals) {
        println!(
            "| {} | {:.0} | {:.0} µs ({:.0} µs) | {:.0} % | {:.2} / {:.2} / {:.2} / {:.1} ms ({:.2} ms) | {:.1} % | {} |",
            m.label(),
            t.rate(),
            t.server_us(),
            t.server_sys_us(),
            t.me_share() * 100.0,
            ms(t.pct(0.5)),
            ms(t.pct(0.9)),
            ms(t.pct(0.99)),
            ms(t.pct(1.0)),
            t.mean_ms(),
            t.over(20) * 100.0,
            m.round_trips()
        );
    }
    let [c, a, b] = &totals;
    let ratio = |x: &Totals, y: &Totals, what: &str| {
        println!(
            "  {what}: rate {:.2}, server CPU per login {:.2} ({:+.0} µs), p50 {:.2}, p99 {:.2}",
            x.rate() / y.rate(),
            x.server_us() / y.server_us(),
            x.server_us() - y.server_us(),
            x.pct(0.5) as f64 / y.pct(0.5) as f64,
            x.pct(0.99) as f64 / y.pct(0.99) as f64
        )
    };
    println!("ratios (same run):");
    ratio(a, c, "(a)/(c)");
    ratio(b, c, "(b)/(c)");
    ratio(b, a, "(b)/(a)");
    println!(
        "  X25519 ({}) on one core: key generation {:.1} µs, DH {:.1} µs; the request channel's NNpsk0 costs the server 1 key generation + 1 DH = {:.0} µs in either mode",
        securecom_host::HostCrypto::NAME,
        keygen * 1e6,
        dh * 1e6,
        (keygen + dh) * 1e6
    );
    println!(
        "  server CPU resolution: 10 ms / {n} logins = {:.0} µs per login",
        10_000.0 / n as f64
    );
    Ok(())
}
