//! `securecom-loadgen abuse`: what each abuse case of docs/PROTOCOL.md 9.1
//! costs the legitimate users, and the server's memory per attacking session.
//!
//! For each attack a fresh release server is started with its own defaults
//! (the per-source limits included: the legitimate chat pair connects from
//! 127.0.0.1, the legitimate logins from 127.0.9.1-4 in turn, every
//! attacker from its own loopback addresses), then:
//!
//! 1. "without": a legitimate user logs in `--logins` times (default 200),
//!    one login every `--secs / --logins` seconds, while a legitimate pair
//!    exchanges 256-byte timestamped messages at `--rate` per second
//!    (default 50) for `--secs` (default 6);
//! 2. the attack starts (the server's RSS just before is the baseline; a
//!    thread polls its VmRSS every 10 ms from then on), runs for a second;
//! 3. "with": the same measurement while the attack goes on; the load
//!    generator's and the server's CPU time over this phase are read from
//!    `/proc/PID/stat`.
//!
//! The attackers run on a runtime of their own (one thread at nice +10,
//! `--attacker-nice`), the legitimate clients on the main runtime.
//!
//! Memory growth per attacking session = (peak RSS during the attack −
//! baseline) / the most attacking connections (attacker logins, from their
//! TCP connect on, or answered stalled handshakes) open at once.
//!
//! Usage: `securecom-loadgen abuse [--only listusers|requests|handshakes|announces]
//! [--logins N] [--rate R] [--secs S] [--attackers K] [--stalled N] [--attacker-nice N]`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand_core::RngCore;
use securecom_core::channel::{Incoming, Scratch, StandardChannel};
use securecom_core::message::{
    decode, encode, ChatId, ClientHello, ClientMsg, CloseReason, ErrorCode, RefuseReason, ServerMsg,
};
use securecom_core::noise::{Handshake, RemoteCheck};
use securecom_core::{
    ClientEvent, Limits, PublicKey, RequestLink, StaticSecret, DAEMON_SECRET_LEN,
    MAX_NOISE_MESSAGE, PROTOCOL_VERSION,
};
use securecom_host::{now, os_rng, HostCrypto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::{connect_from, cores, open_pair, registry, rss_kib, users, Daemon, Peer, Server};

/// Parameters of the run (`--logins N --rate R --secs S --only ATTACK`).
#[derive(Clone)]
struct Opts {
    logins: usize,
    rate: f64,
    secs: f64,
    /// Attacker accounts of the request and announce floods.
    attackers: usize,
    /// Stalled handshakes the handshake flood keeps open (a multiple of 16).
    stalled: usize,
    /// The attackers' runtime (its own thread, at a lower priority).
    attack: tokio::runtime::Handle,
}

const MSG_SIZE: usize = 256;
const WARMUP: Duration = Duration::from_secs(1);
/// The server's default `--max-handshakes` (not overridden).
const MAX_HANDSHAKES: usize = 512;
/// The server's default `--handshakes-per-ip`.
const HANDSHAKES_PER_IP: usize = 16;

pub(crate) async fn run(args: &[String]) -> Result<()> {
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |flag: &str, default: f64| -> f64 {
        get(flag).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    // The attackers run on their own runtime, one thread at `nice` +N, so
    // that on this small machine they take the CPU the server and the
    // legitimate clients (on the main runtime) leave, as attackers on
    // other machines would, rather than delay the legitimate clients' tasks.
    let nice = num("--attacker-nice", 10.0) as i32;
    let attack_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("attacker")
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .build()?;
    let o = Opts {
        logins: num("--logins", 200.0) as usize,
        rate: num("--rate", 50.0),
        secs: num("--secs", 6.0),
        attackers: num("--attackers", 16.0) as usize,
        stalled: num("--stalled", (3 * MAX_HANDSHAKES) as f64) as usize,
        attack: attack_rt.handle().clone(),
    };
    let only = get("--only");
    println!(
        "abuse: per attack a fresh server (its defaults); {} logins spread over {} s and {} msg/s of {MSG_SIZE} B in one chat, without then with the attack ({} s after it started); attackers on 1 thread at nice +{nice}",
        o.logins,
        o.secs,
        o.rate,
        WARMUP.as_secs()
    );
    let mut rows = Vec::new();
    let all = [
        "control",
        "listusers",
        "requests",
        "handshakes",
        "announces",
    ];
    for name in all {
        if only.as_deref().is_some_and(|x| x != name) {
            continue;
        }
        let row = match name {
            "control" => control(&o).await?,
            "listusers" => list_users_attack(&o).await?,
            "requests" => request_flood(&o).await?,
            "handshakes" => handshake_flood(&o).await?,
            _ => announce_flood(&o).await?,
        };
        rows.push(row);
    }
    print_table(&rows);
    attack_rt.shutdown_background();
    Ok(())
}

/// Lowers the calling thread's priority (Linux: `setpriority` on thread 0
/// applies to the calling thread only).
fn lower_priority(nice: i32) {
    // SAFETY: a plain system call with no pointers.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
}

// ------------------------------------------------------------------ measuring

/// Latencies of one phase, in µs.
struct Figures {
    login: Vec<u64>,
    login_failures: usize,
    msg: Vec<u64>,
}

fn pct(v: &[u64], p: f64) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(((s.len() as f64 * p) as usize).min(s.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// The server with the legitimate users every attack shares.
struct Bench {
    server: Server,
    sampler: Sampler,
    login: (String, StaticSecret),
    pair: (Peer, Peer, Daemon),
    opts: Opts,
}

impl Bench {
    async fn start(extra: &[(String, PublicKey)], opts: &Opts) -> Result<Bench> {
        let legit = users("legit", 3);
        let mut reg = registry(&legit);
        reg.extend_from_slice(extra);
        let server = Server::start_with(&reg, &[], true)?;
        let pair = open_pair(server.addr, server.key, &legit[0], &legit[1]).await?;
        let sampler = Sampler::start(server.pid());
        Ok(Bench {
            server,
            sampler,
            login: (legit[2].0.clone(), legit[2].1.clone()),
            pair,
            opts: opts.clone(),
        })
    }

    /// One phase: spaced logins and the paced chat, at the same time.
    async fn measure(&mut self) -> Result<Figures> {
        let (addr, key) = (self.server.addr, self.server.key);
        let n = self.opts.logins.max(1);
        let gap = Duration::from_secs_f64(self.opts.secs / n as f64);
        let (name, secret) = (&self.login.0, &self.login.1);
        let logins = async {
            let start = tokio::time::Instant::now();
            let mut lat = Vec::new();
            let mut failures = 0;
            for i in 0..n {
                tokio::time::sleep_until(start + gap * i as u32).await;
                let t = Instant::now();
                let r = async {
                    // From 4 addresses in turn: within the server's
                    // 20 connections a second per source.
                    let from = Some(ip(9, 0, 1 + (i % 4) as u8));
                    let mut p = Peer::connect_from(from, addr, key, name, secret, None).await?;
                    p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
                        .await?;
                    anyhow::Ok(p)
                };
                match tokio::time::timeout(Duration::from_secs(15), r).await {
                    Ok(Ok(mut p)) => {
                        lat.push(t.elapsed().as_micros() as u64);
                        let _ = p.c.logout(now());
                        let _ = p.flush().await;
                    }
                    _ => failures += 1,
                }
            }
            (lat, failures)
        };
        let count = (self.opts.rate * self.opts.secs) as usize;
        let (a, b, _) = &mut self.pair;
        let msgs = chat_latency(a, b, self.opts.rate, count);
        let ((login, login_failures), msg) = tokio::join!(logins, msgs);
        Ok(Figures {
            login,
            login_failures,
            msg: msg?,
        })
    }
}

/// `count` messages from `a` to `b` at `rate` per second; latencies in µs.
async fn chat_latency(a: &mut Peer, b: &mut Peer, rate: f64, count: usize) -> Result<Vec<u64>> {
    let origin = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = tokio::time::Instant::now();
    let (mut sent, mut got) = (0usize, 0usize);
    let mut lat = Vec::with_capacity(count);
    let filler = "x".repeat(MSG_SIZE);
    while got < count {
        if sent < count && tokio::time::Instant::now() >= next {
            let stamp = format!("{:020}", origin.elapsed().as_micros());
            let text = format!("{stamp}{}", &filler[..MSG_SIZE - stamp.len()]);
            a.c.send_text(now(), &text).map_err(|e| anyhow!("{e}"))?;
            a.flush().await?;
            sent += 1;
            next += interval;
            continue;
        }
        let wake = (sent < count).then_some(next);
        tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(20), b.read_once()) => {
                r.map_err(|_| anyhow!("no chat message for 20 s"))??
            }
            _ = async { match wake { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
        }
        while let Some(e) = b.events.pop_front() {
            if let ClientEvent::ChatMessage { text, .. } = e {
                got += 1;
                let sent_at: u64 = text
                    .get(..20)
                    .and_then(|s| s.parse().ok())
                    .context("stamp")?;
                lat.push(origin.elapsed().as_micros() as u64 - sent_at);
            } else if let ClientEvent::ChatEnded { .. } | ClientEvent::Closed(_) = e {
                bail!("the legitimate chat ended: {e:?}");
            }
        }
    }
    Ok(lat)
}

/// Polls a process's VmRSS every 10 ms and keeps the peak.
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Relaxed) {
                if let Ok(r) = rss_kib(pid) {
                    p.fetch_max(r, Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Sampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn reset(&self, to: u64) {
        self.peak.store(to, Relaxed);
    }

    fn peak(&self) -> u64 {
        self.peak.load(Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU seconds (user + system, all threads) of `/proc/{who}/stat`.
fn cpu_secs(who: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{who}/stat")) else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After the command name: field 3 (state) is index 0, utime (14) 11, stime (15) 12;
    // in clock ticks of USER_HZ = 100 on Linux.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// CPU shares of the load generator and the server over a stretch of time.
struct CpuMark {
    t: Instant,
    me: f64,
    server: f64,
    pid: String,
}

impl CpuMark {
    fn now(pid: u32) -> CpuMark {
        let pid = pid.to_string();
        CpuMark {
            t: Instant::now(),
            me: cpu_secs("self"),
            server: cpu_secs(&pid),
            pid,
        }
    }

    /// (load generator, server) as fractions of the machine's cores.
    fn shares(&self) -> (f64, f64) {
        let wall = self.t.elapsed().as_secs_f64() * cores() as f64;
        (
            (cpu_secs("self") - self.me) / wall,
            (cpu_secs(&self.pid) - self.server) / wall,
        )
    }
}

/// What each attack counts (shared by its tasks).
#[derive(Default)]
struct Counters {
    sessions: AtomicU64,
    login_failures: AtomicU64,
    frames: AtomicU64,
    slow_down: AtomicU64,
    too_soon: AtomicU64,
    busy: AtomicU64,
    pending: AtomicU64,
    listings: AtomicU64,
    bye_rate_limited: AtomicU64,
    bye_other: AtomicU64,
    closed_without_bye: AtomicU64,
    live: AtomicU64,
    max_live: AtomicU64,
    dials: AtomicU64,
    dials_live: AtomicU64,
    dials_max_live: AtomicU64,
    refused: AtomicU64,
    read_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, e: impl std::fmt::Display) {
        self.read_errors.fetch_add(1, Relaxed);
        if let Ok(mut g) = self.first_error.lock() {
            g.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Counts one live thing while it exists.
struct Live<'a>(&'a AtomicU64);

impl<'a> Live<'a> {
    fn new(live: &'a AtomicU64, max: &'a AtomicU64) -> Live<'a> {
        let n = live.fetch_add(1, Relaxed) + 1;
        max.fetch_max(n, Relaxed);
        Live(live)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}

impl Bench {
    /// The server's log lines, counted by level and message (values dropped).
    fn log_summary(&self) -> String {
        let Some(text) = self.server.log_text() else {
            return "no log".into();
        };
        let mut counts: Vec<(String, usize)> = Vec::new();
        for line in text.lines() {
            // Drop the colours, the time stamp, and the fields (`name=value`).
            let mut plain = String::new();
            let mut esc = false;
            for ch in line.chars() {
                match (esc, ch) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => plain.push(c),
                }
            }
            let msg: Vec<&str> = plain
                .split_whitespace()
                .skip(1)
                .take_while(|w| !w.contains('='))
                .collect();
            let msg = msg.join(" ");
            match counts.iter_mut().find(|(m, _)| *m == msg) {
                Some((_, n)) => *n += 1,
                None => counts.push((msg, 1)),
            }
        }
        if counts.is_empty() {
            return "nothing".into();
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
            .iter()
            .map(|(m, n)| format!("{n} x \"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One result row.
struct Row {
    attack: String,
    without: Figures,
    with: Figures,
    before_kib: u64,
    peak_kib: u64,
    attacking: u64,
    cpu: (f64, f64),
    notes: Vec<String>,
}

/// The common course of one attack: "without", then the attack started by
/// `attack` (its tasks go into the set), the warm-up, "with"; then `during`
/// runs alongside "with" (the third user of the request flood).
async fn course<D, F>(
    b: &mut Bench,
    attack: impl FnOnce(&mut JoinSet<()>),
    during: D,
) -> Result<(
    Figures,
    Figures,
    u64,
    u64,
    (f64, f64),
    F::Output,
    JoinSet<()>,
)>
where
    D: FnOnce() -> F,
    F: std::future::Future,
{
    tokio::time::sleep(Duration::from_millis(300)).await;
    let without = b.measure().await?;
    let before = b.server.rss_kib()?;
    b.sampler.reset(before);
    let mut set = JoinSet::new();
    attack(&mut set);
    tokio::time::sleep(WARMUP).await;
    let cpu = CpuMark::now(b.server.pid());
    let extra = during();
    let (with, extra) = tokio::join!(b.measure(), extra);
    let shares = cpu.shares();
    let peak = b.sampler.peak();
    Ok((without, with?, before, peak, shares, extra, set))
}

// ------------------------------------------------------------------ raw attacker client

/// A logged-in standard channel driven by hand, so that it can send what
/// the reference client never would (4 000 listings unread, announce after
/// announce).
struct Raw {
    ch: StandardChannel,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: Vec<u8>,
    out: Vec<u8>,
}

fn core_err<E: core::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("{e:?}")
}

impl Raw {
    async fn login(
        from: IpAddr,
        to: SocketAddr,
        server_key: PublicKey,
        name: &str,
        key: &StaticSecret,
    ) -> Result<Raw> {
        let stream = connect_from(Some(from), to).await?;
        let (rd, wr) = stream.into_split();
        let mut rng = os_rng();
        let hs = Handshake::standard(true, key, RemoteCheck::Exactly(server_key), &mut rng)
            .map_err(core_err)?;
        let mut r = Raw {
            ch: StandardChannel::new(hs, Limits::DEFAULT, now(), &mut rng).map_err(core_err)?,
            rd,
            wr,
            buf: vec![0; 16 * 1024],
            out: Vec::new(),
        };
        r.ch.send_handshake(now(), &[]).map_err(core_err)?;
        r.drain();
        r.write_out().await?;
        let work = async {
            loop {
                let n = r.rd.read(&mut r.buf).await?;
                if n == 0 {
                    bail!("closed during login");
                }
                let mut at = 0;
                let mut done = false;
                while at < n {
                    let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
                    let (used, inc) =
                        r.ch.read(
                            now(),
                            &r.buf[at..n],
                            &mut scratch,
                            &mut securecom_host::thread_rng(),
                        )
                        .map_err(core_err)?;
                    at += used;
                    match inc {
                        // The layer's answer: the verdict follows.
                        Incoming::Handshake { finished: true, .. } => {}
                        Incoming::Handshake { .. } => {
                            let mut hello = [0u8; 64];
                            let m = encode(
                                &ClientHello {
                                    version: PROTOCOL_VERSION,
                                    user: name,
                                },
                                &mut hello,
                            )
                            .map_err(core_err)?;
                            r.ch.send_handshake(now(), &hello[..m]).map_err(core_err)?;
                        }
                        Incoming::Message { len } => {
                            match decode::<ServerMsg>(&scratch[..len]).map_err(core_err)? {
                                ServerMsg::LoginOk { .. } => done = true,
                                ServerMsg::LoginRefused { reason } => bail!("refused {reason:?}"),
                                _ => {}
                            }
                        }
                        Incoming::Nothing => {}
                    }
                }
                r.drain();
                r.write_out().await?;
                if done {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .map_err(|_| anyhow!("login timed out"))??;
        Ok(r)
    }

    fn drain(&mut self) {
        loop {
            let at = self.out.len();
            self.out.resize(at + 4096, 0);
            let n = self.ch.poll_transmit(&mut self.out[at..]);
            self.out.truncate(at + n);
            if n == 0 {
                return;
            }
        }
    }

    async fn write_out(&mut self) -> Result<()> {
        self.wr.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Encrypts `msg` onto the pending output.
    fn queue(&mut self, msg: &ClientMsg<'_>) -> Result<()> {
        self.ch.send(now(), msg).map_err(core_err)?;
        self.drain();
        Ok(())
    }
}

/// Decrypts `input` (the server's frames); `Some(reason)` at `Bye`.
/// Reads the server's answers; `pending` learns the id of each `ChatPending`
/// (so that a flood can withdraw the request it names).
fn feed(
    ch: &mut StandardChannel,
    input: &[u8],
    c: &Counters,
    pending: &mut ChatId,
) -> Result<Option<CloseReason>> {
    let mut at = 0;
    while at < input.len() {
        let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
        let (used, inc) = ch
            .read(
                now(),
                &input[at..],
                &mut scratch,
                &mut securecom_host::thread_rng(),
            )
            .map_err(core_err)?;
        at += used;
        if let Incoming::Message { len } = inc {
            match decode::<ServerMsg>(&scratch[..len]).map_err(core_err)? {
                ServerMsg::Bye { reason } => return Ok(Some(reason)),
                ServerMsg::Error {
                    code: ErrorCode::SlowDown,
                } => {
                    c.slow_down.fetch_add(1, Relaxed);
                }
                ServerMsg::ChatRefused { reason, .. } => {
                    let k = match reason {
                        RefuseReason::TooSoon => &c.too_soon,
                        RefuseReason::Busy => &c.busy,
                        _ => &c.refused,
                    };
                    k.fetch_add(1, Relaxed);
                }
                ServerMsg::ChatPending { chat_id, .. } => {
                    *pending = chat_id;
                    c.pending.fetch_add(1, Relaxed);
                }
                ServerMsg::Users { .. } => {
                    c.listings.fetch_add(1, Relaxed);
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

// ------------------------------------------------------------------ (0) control

/// No attack: the attackers' thread only burns CPU, to show what sharing
/// the 2 cores with a busy generator costs by itself.
async fn control(o: &Opts) -> Result<Row> {
    let mut b = Bench::start(&[], o).await?;
    let (without, with, before, peak, cpu, (), set) = course(
        &mut b,
        |set| {
            set.spawn_on(
                async {
                    loop {
                        let t = Instant::now();
                        let mut x = 0u64;
                        while t.elapsed() < Duration::from_millis(1) {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                        }
                        tokio::task::yield_now().await;
                    }
                },
                &o.attack,
            );
        },
        || async {},
    )
    .await?;
    drop(set);
    let log = format!("server log: {}", b.log_summary());
    Ok(Row {
        attack: "(0) control: no attack, the attackers' thread only spins (1 core at nice +N)"
            .into(),
        without,
        with,
        before_kib: before,
        peak_kib: peak,
        attacking: 0,
        cpu,
        notes: vec![log],
    })
}

// ------------------------------------------------------------------ (1) ListUsers amplification

const IDLE_USERS: usize = 600;
const LISTINGS: usize = 4000;

async fn list_users_attack(o: &Opts) -> Result<Row> {
    let idle = users("idle", IDLE_USERS);
    let atk = users("lister", 2);
    let mut reg = registry(&idle);
    reg.extend(registry(&atk));
    let mut b = Bench::start(&reg, o).await?;
    let (addr, skey) = (b.server.addr, b.server.key);
    // The idle users, 100 at a time, each of the 100 from its own address.
    let mut online = Vec::with_capacity(IDLE_USERS);
    for (g, group) in idle.chunks(100).enumerate() {
        let tasks: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(i, (name, key))| {
                let (name, key) = (name.clone(), key.clone());
                let from = Some(ip(1, g as u8, 1 + i as u8));
                tokio::spawn(async move {
                    let mut p = Peer::connect_from(from, addr, skey, &name, &key, None).await?;
                    p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
                        .await?;
                    anyhow::Ok(p)
                })
            })
            .collect();
        for t in tasks {
            online.push(t.await??);
        }
    }
    let c = Arc::new(Counters::default());
    let atk = Arc::new(atk);
    let (without, with, before, peak, cpu, (), set) = course(
        &mut b,
        |set| {
            for i in 0..atk.len() {
                let (c, atk) = (c.clone(), atk.clone());
                set.spawn_on(
                    async move {
                        let (name, key) = &atk[i];
                        loop {
                            let live = Live::new(&c.live, &c.max_live);
                            let Ok(mut s) =
                                Raw::login(ip(2, 0, 1 + i as u8), addr, skey, name, key).await
                            else {
                                drop(live);
                                c.login_failures.fetch_add(1, Relaxed);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            };
                            c.sessions.fetch_add(1, Relaxed);
                            for _ in 0..LISTINGS {
                                if s.queue(&ClientMsg::ListUsers).is_err() {
                                    break;
                                }
                                c.frames.fetch_add(1, Relaxed);
                            }
                            let Raw { wr, out, .. } = &mut s;
                            let _ = tokio::time::timeout(Duration::from_secs(2), wr.write_all(out))
                                .await;
                            // Never read; hold the connection for a second. Then,
                            // only to report it, what the server had sent.
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            let Raw { ch, rd, buf, .. } = &mut s;
                            let end = loop {
                                let r =
                                    tokio::time::timeout(Duration::from_millis(50), rd.read(buf));
                                match r.await {
                                    Ok(Ok(n)) if n > 0 => match feed(ch, &buf[..n], &c, &mut 0) {
                                        Ok(None) => {}
                                        Ok(Some(reason)) => break Some(reason),
                                        Err(_) => break None,
                                    },
                                    _ => break None,
                                }
                            };
                            match end {
                                Some(CloseReason::RateLimited) => &c.bye_rate_limited,
                                Some(_) => &c.bye_other,
                                None => &c.closed_without_bye,
                            }
                            .fetch_add(1, Relaxed);
                        }
                    },
                    &o.attack,
                );
            }
        },
        || async {},
    )
    .await?;
    drop(set);
    let log = format!("server log: {}", b.log_summary());
    drop(online);
    Ok(Row {
        attack: format!("(1) ListUsers amplification: {IDLE_USERS} idle users online, 2 accounts each writing {LISTINGS} ListUsers unread, again every ~1 s"),
        without,
        with,
        before_kib: before,
        peak_kib: peak,
        attacking: get(&c.max_live),
        cpu,
        notes: vec![
            log,format!(
            "(1) {} attacker sessions, {} ListUsers frames written, each session held unread for 1 s; read afterwards: {} Users messages, {} SlowDown, {} Bye{{RateLimited}}, {} other Bye, {} without Bye (still open or reset)",
            get(&c.sessions),
            get(&c.frames),
            get(&c.listings),
            get(&c.slow_down),
            get(&c.bye_rate_limited),
            get(&c.bye_other),
            get(&c.closed_without_bye)
        )],
    })
}

// ------------------------------------------------------------------ (2) chat-request flood

/// What the victim's daemon saw.
#[derive(Default)]
struct VictimLog {
    attacker_requests: u64,
    withdrawn: u64,
    refused_busy: u64,
    third: Option<Instant>,
    link_failures: u64,
}

/// The victim: logged in with a daemon; ignores the attackers' requests
/// (they withdraw them), declines the third user's and notes when it came.
async fn victim(
    mut v: Peer,
    listener: TcpListener,
    third: String,
    log: Arc<Mutex<VictimLog>>,
) -> Result<()> {
    let mut link: Option<(RequestLink<HostCrypto>, OwnedReadHalf, OwnedWriteHalf)> = None;
    let mut dbuf = vec![0u8; 4096];
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (s, _) = r?;
                s.set_nodelay(true)?;
                let (rd, wr) = s.into_split();
                let l = v.c.new_request_link(now(), &mut v.rng).map_err(|e| anyhow!("{e}"))?;
                link = Some((l, rd, wr));
            }
            r = async { match &mut link { Some((_, rd, _)) => rd.read(&mut dbuf).await, None => std::future::pending().await } } => {
                let n = r.unwrap_or(0);
                let Some((l, _, wr)) = link.as_mut() else { continue };
                if n == 0 {
                    v.c.request_link_closed(l);
                    link = None;
                    continue;
                }
                let mut at = 0;
                let mut failed = false;
                while at < n && !failed {
                    match v.c.handle_request_input(l, now(), &dbuf[at..n], &mut securecom_host::thread_rng()) {
                        Ok(used) => at += used,
                        Err(_) => failed = true,
                    }
                    // The client keeps 4 events: drain after each input.
                    while let Some(e) = v.c.poll_event() {
                        let mut g = log.lock().map_err(|_| anyhow!("lock"))?;
                        match e {
                            ClientEvent::ChatRequest { from, chat_id, .. } if from.as_str() == third => {
                                g.third.get_or_insert_with(Instant::now);
                                let _ = v.c.answer_request(chat_id, false);
                            }
                            ClientEvent::ChatRequest { .. } => g.attacker_requests += 1,
                            ClientEvent::RequestWithdrawn { .. } => g.withdrawn += 1,
                            ClientEvent::RefusedBusy { .. } => g.refused_busy += 1,
                            _ => {}
                        }
                    }
                }
                let mut out = [0u8; 4096];
                loop {
                    let m = v.c.poll_request_transmit(l, now(), &mut out);
                    if m == 0 { break; }
                    if wr.write_all(&out[..m]).await.is_err() { failed = true; break; }
                }
                if failed {
                    log.lock().map_err(|_| anyhow!("lock"))?.link_failures += 1;
                    v.c.request_link_closed(l);
                    link = None;
                }
            }
            r = v.read_once() => r?,
        }
        v.events.clear();
    }
}

/// The third user asks the victim until its request reaches the victim's
/// daemon (or 20 s pass); returns (attempts, the refusals it got, when it
/// first asked).
async fn third_user(
    mut t: Peer,
    victim: String,
    log: Arc<Mutex<VictimLog>>,
) -> Result<(u32, Vec<RefuseReason>, Instant)> {
    let first = Instant::now();
    let mut attempts = 0;
    let mut refusals = Vec::new();
    let reached =
        |log: &Arc<Mutex<VictimLog>>| log.lock().map(|g| g.third.is_some()).unwrap_or(false);
    while first.elapsed() < Duration::from_secs(20) && !reached(&log) {
        attempts += 1;
        t.events.clear();
        t.c.request_chat(now(), &victim)
            .map_err(|e| anyhow!("{e}"))?;
        t.flush().await?;
        let e = t
            .wait("an answer", |e| {
                matches!(
                    e,
                    ClientEvent::ChatRefused { .. } | ClientEvent::ChatPending { .. }
                )
            })
            .await?;
        match e {
            ClientEvent::ChatPending { .. } => {
                // Delivered; the victim declines.
                if let ClientEvent::ChatRefused { reason, .. } = t
                    .wait("the decline", |e| {
                        matches!(e, ClientEvent::ChatRefused { .. })
                    })
                    .await?
                {
                    refusals.push(reason);
                }
            }
            ClientEvent::ChatRefused { reason, .. } => {
                refusals.push(reason);
                // Within our own rate (30 a minute, burst 10).
                let pause = if attempts < 8 { 500 } else { 2500 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            _ => {}
        }
    }
    Ok((attempts, refusals, first))
}

#[derive(Clone, Copy)]
enum Flood {
    Requests,
    Announces,
}

/// Attacker account `me`: logs in (from its addresses in turn), streams
/// its commands as fast as the socket takes them while reading the
/// answers, and logs in again when it is dropped.
async fn flooder(
    kind: Flood,
    me: (String, StaticSecret),
    sources: Vec<(IpAddr, u16)>,
    target: String,
    to: SocketAddr,
    skey: PublicKey,
    c: Arc<Counters>,
) {
    let mut rng = os_rng();
    let mut round = 0usize;
    loop {
        let (from, port) = sources[round % sources.len()];
        round += 1;
        // Counted from the connection on: the server holds state from its first bytes.
        let live = Live::new(&c.live, &c.max_live);
        let mut s = match Raw::login(from, to, skey, &me.0, &me.1).await {
            Ok(s) => s,
            Err(_) => {
                drop(live);
                c.login_failures.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        c.sessions.fetch_add(1, Relaxed);
        let mut off = 0;
        // The last request the server announced: the flood withdraws it.
        let mut pending: ChatId = 0;
        // False once a write failed (the server closed): then only its last
        // answers (the `Bye`) are read.
        let mut writing = true;
        let end = loop {
            if writing && off == s.out.len() {
                s.out.clear();
                off = 0;
                let mut ok = true;
                for _ in 0..16 {
                    ok &= match kind {
                        Flood::Requests => s
                            .queue(&ClientMsg::RequestChat { user: &target })
                            .and_then(|_| s.queue(&ClientMsg::LeaveChat { chat_id: pending }))
                            .is_ok(),
                        Flood::Announces => {
                            let mut secret = [0u8; DAEMON_SECRET_LEN];
                            rng.fill_bytes(&mut secret);
                            s.queue(&ClientMsg::AnnounceDaemon { port, secret }).is_ok()
                        }
                    };
                }
                if !ok {
                    c.error("cannot queue a command");
                    break None;
                }
                c.frames.fetch_add(
                    match kind {
                        Flood::Requests => 32,
                        Flood::Announces => 16,
                    },
                    Relaxed,
                );
            }
            let Raw {
                ch,
                rd,
                wr,
                buf,
                out,
            } = &mut s;
            tokio::select! {
                biased;
                r = rd.read(buf) => match r {
                    Ok(0) => break None,
                    Err(e) => {
                        c.error(e);
                        break None;
                    }
                    Ok(n) => match feed(ch, &buf[..n], &c, &mut pending) {
                        Ok(Some(reason)) => break Some(reason),
                        Ok(None) => {}
                        Err(e) => {
                            c.error(e);
                            break None;
                        }
                    },
                },
                r = wr.write(&out[off..]), if writing => match r {
                    Ok(n) => off += n,
                    Err(_) => writing = false,
                },
                _ = tokio::time::sleep(Duration::from_secs(1)), if !writing => break None,
            }
        };
        match end {
            Some(CloseReason::RateLimited) => &c.bye_rate_limited,
            Some(_) => &c.bye_other,
            None => &c.closed_without_bye,
        }
        .fetch_add(1, Relaxed);
    }
}

/// Addresses per attacker account (it logs in from each in turn).
const ADDRS_PER_ATTACKER: usize = 2;

async fn request_flood(o: &Opts) -> Result<Row> {
    let named = users("victim", 2); // victim0: the victim, victim1: the third user
    let atk = users("requester", o.attackers);
    let mut reg = registry(&named);
    reg.extend(registry(&atk));
    let mut b = Bench::start(&reg, o).await?;
    let (addr, skey) = (b.server.addr, b.server.key);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let mut v = Peer::connect(addr, skey, &named[0].0, &named[0].1, Some(port)).await?;
    v.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
        .await?;
    let vlog = Arc::new(Mutex::new(VictimLog::default()));
    let victim_task = tokio::spawn(victim(v, listener, named[1].0.clone(), vlog.clone()));
    let mut t = Peer::connect(addr, skey, &named[1].0, &named[1].1, None).await?;
    t.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
        .await?;
    let c = Arc::new(Counters::default());
    let victim_name = named[0].0.clone();
    let (without, with, before, peak, cpu, third, set) = course(
        &mut b,
        |set| {
            for (i, me) in atk.iter().enumerate() {
                let sources = (0..ADDRS_PER_ATTACKER)
                    .map(|k| (ip(2, 1 + k as u8, 1 + i as u8), 0))
                    .collect();
                set.spawn_on(
                    flooder(
                        Flood::Requests,
                        me.clone(),
                        sources,
                        victim_name.clone(),
                        addr,
                        skey,
                        c.clone(),
                    ),
                    &o.attack,
                );
            }
        },
        || third_user(t, victim_name.clone(), vlog.clone()),
    )
    .await?;
    drop(set);
    let log = format!("server log: {}", b.log_summary());
    victim_task.abort();
    let (attempts, refusals, first) = third?;
    let g = vlog.lock().map_err(|_| anyhow!("lock"))?;
    let reached = match g.third {
        Some(at) => format!(
            "YES, {:.0} ms after its first attempt ({attempts} attempts; refusals {refusals:?})",
            at.duration_since(first).as_secs_f64() * 1e3
        ),
        None => format!("NO within 20 s ({attempts} attempts; refusals {refusals:?})"),
    };
    Ok(Row {
        attack: format!(
            "(2) chat-request flood: {} accounts x {ADDRS_PER_ATTACKER} addresses, RequestChat{{victim}}/LeaveChat pairs, re-login when dropped",
            o.attackers
        ),
        without,
        with,
        before_kib: before,
        peak_kib: peak,
        attacking: get(&c.max_live),
        cpu,
        notes: vec![
            log,
            format!(
                "(2) the victim received the third user's request: {reached}"
            ),
            format!(
                "(2) {} attacker sessions ({} failed logins), {} frames written; server answers: {} ChatPending (delivered), {} Busy, {} TooSoon, {} other refusals, {} SlowDown; ends: {} Bye{{RateLimited}}, {} other Bye, {} closed without Bye ({} read errors, the first: {:?}); victim's daemon saw {} attacker requests, {} withdrawn, {} refused busy, {} link failures",
                get(&c.sessions),
                get(&c.login_failures),
                get(&c.frames),
                get(&c.pending),
                get(&c.busy),
                get(&c.too_soon),
                get(&c.refused),
                get(&c.slow_down),
                get(&c.bye_rate_limited),
                get(&c.bye_other),
                get(&c.closed_without_bye),
                get(&c.read_errors),
                c.first_error.lock().ok().and_then(|g| g.clone()),
                g.attacker_requests,
                g.withdrawn,
                g.refused_busy,
                g.link_failures
            ),
        ],
    })
}

// ------------------------------------------------------------------ (3) handshake flood

/// One slot of the flood: connects from `from`, sends XX message 1 and
/// stalls (reads what the server sends until it closes), then again.
async fn stall_slot(from: IpAddr, to: SocketAddr, c: Arc<Counters>) {
    let mut rng = os_rng();
    loop {
        // A frame of 32 random bytes: XX message 1 (`e`, empty payload).
        let mut m1 = [0u8; 34];
        m1[1] = 32;
        rng.fill_bytes(&mut m1[2..]);
        if let Ok(mut s) = connect_from(Some(from), to).await {
            c.sessions.fetch_add(1, Relaxed);
            let _ = s.write_all(&m1).await;
            let mut b = [0u8; 512];
            match s.read(&mut b).await {
                Ok(n) if n > 0 => {
                    c.pending.fetch_add(1, Relaxed);
                    let _live = Live::new(&c.live, &c.max_live);
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
                _ => {
                    c.refused.fetch_add(1, Relaxed);
                }
            }
        } else {
            c.login_failures.fetch_add(1, Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn handshake_flood(o: &Opts) -> Result<Row> {
    let mut b = Bench::start(&[], o).await?;
    let addr = b.server.addr;
    let c = Arc::new(Counters::default());
    let addrs = o.stalled.div_ceil(HANDSHAKES_PER_IP);
    let (without, with, before, peak, cpu, (), set) = course(
        &mut b,
        |set| {
            for i in 0..o.stalled {
                let from = ip(0, 0, 2 + (i % addrs) as u8);
                set.spawn_on(stall_slot(from, addr, c.clone()), &o.attack);
            }
        },
        || async {},
    )
    .await?;
    drop(set);
    let log = format!("server log: {}", b.log_summary());
    Ok(Row {
        attack: format!(
            "(3) handshake flood: {} connections kept open from {addrs} addresses 127.0.0.2.. ({} per address), XX message 1 then stall, reopened 250 ms after the server closes them (--max-handshakes {MAX_HANDSHAKES})",
            o.stalled,
            HANDSHAKES_PER_IP
        ),
        without,
        with,
        before_kib: before,
        peak_kib: peak,
        attacking: get(&c.max_live),
        cpu,
        notes: vec![
            log,format!(
            "(3) {} connections opened ({} connect errors); {} answered with XX message 2, {} closed unanswered (at accept or shed before); at most {} answered stalled handshakes open at once (the divisor)",
            get(&c.sessions),
            get(&c.login_failures),
            get(&c.pending),
            get(&c.refused),
            get(&c.max_live)
        )],
    })
}

// ------------------------------------------------------------------ (4) AnnounceDaemon flood

async fn announce_flood(o: &Opts) -> Result<Row> {
    let atk = users("announcer", o.attackers);
    let mut b = Bench::start(&registry(&atk), o).await?;
    let (addr, skey) = (b.server.addr, b.server.key);
    let c = Arc::new(Counters::default());
    // Each attacker address has a "daemon" that accepts the server's dials
    // and never answers (the server's NNpsk0 waits for message 2).
    let mut daemons = JoinSet::new();
    let mut sources = Vec::new();
    for i in 0..atk.len() {
        let mut mine = Vec::new();
        for k in 0..ADDRS_PER_ATTACKER {
            let from = ip(4, 1 + k as u8, 1 + i as u8);
            let l = std::net::TcpListener::bind(SocketAddr::new(from, 0))?;
            l.set_nonblocking(true)?;
            mine.push((from, l.local_addr()?.port()));
            let c = c.clone();
            daemons.spawn_on(
                async move {
                    let Ok(l) = TcpListener::from_std(l) else {
                        return;
                    };
                    let mut held = JoinSet::new();
                    while let Ok((mut s, _)) = l.accept().await {
                        c.dials.fetch_add(1, Relaxed);
                        let c = c.clone();
                        held.spawn(async move {
                            let _live = Live::new(&c.dials_live, &c.dials_max_live);
                            let mut b = [0u8; 256];
                            while let Ok(n) = s.read(&mut b).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        });
                        while held.try_join_next().is_some() {}
                    }
                },
                &o.attack,
            );
        }
        sources.push(mine);
    }
    let (without, with, before, peak, cpu, (), set) = course(
        &mut b,
        |set| {
            for (me, mine) in atk.iter().zip(sources) {
                set.spawn_on(
                    flooder(
                        Flood::Announces,
                        me.clone(),
                        mine,
                        String::new(),
                        addr,
                        skey,
                        c.clone(),
                    ),
                    &o.attack,
                );
            }
        },
        || async {},
    )
    .await?;
    drop(set);
    let log = format!("server log: {}", b.log_summary());
    drop(daemons);
    let sessions = get(&c.sessions);
    Ok(Row {
        attack: format!(
            "(4) AnnounceDaemon flood: {} accounts x {ADDRS_PER_ATTACKER} addresses announcing as fast as they can, each daemon accepting the dial and never answering, re-login when dropped",
            o.attackers
        ),
        without,
        with,
        before_kib: before,
        peak_kib: peak,
        attacking: get(&c.max_live),
        cpu,
        notes: vec![
            log,format!(
            "(4) {sessions} attacker sessions ({} failed logins), {} AnnounceDaemon written; {} SlowDown; ends: {} Bye{{RateLimited}}, {} other Bye, {} closed without Bye; the server dialled {} times ({:.1} per session), at most {} dials open at once",
            get(&c.login_failures),
            get(&c.frames),
            get(&c.slow_down),
            get(&c.bye_rate_limited),
            get(&c.bye_other),
            get(&c.closed_without_bye),
            get(&c.dials),
            get(&c.dials) as f64 / sessions.max(1) as f64,
            get(&c.dials_max_live)
        )],
    })
}

// ------------------------------------------------------------------ table

fn print_table(rows: &[Row]) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!();
    println!("| attack | login p50/p99 without → with (ratio) | msg p50/p99 without → with (ratio) | peak RSS | RSS growth per attacking session | CPU share of the {} cores: loadgen (server) |", cores());
    println!("|---|---|---|---|---|---|");
    let mut goals = Vec::new();
    for r in rows {
        let f = |v: &Figures, l: bool| {
            let s = if l { &v.login } else { &v.msg };
            (pct(s, 0.5), pct(s, 0.99))
        };
        let (l0, l1) = (f(&r.without, true), f(&r.with, true));
        let (m0, m1) = (f(&r.without, false), f(&r.with, false));
        let ratio = |a: u64, b: u64| b as f64 / a.max(1) as f64;
        let growth = r.peak_kib.saturating_sub(r.before_kib) as f64 / r.attacking.max(1) as f64;
        let growth_text = if r.attacking == 0 {
            "— (no attacking session)".to_string()
        } else {
            format!(
                "{growth:.1} KiB (+{} KiB / {} sessions at most at once)",
                r.peak_kib.saturating_sub(r.before_kib),
                r.attacking
            )
        };
        let fails = if r.with.login_failures + r.without.login_failures > 0 {
            format!(
                "; failed logins {} → {}",
                r.without.login_failures, r.with.login_failures
            )
        } else {
            String::new()
        };
        println!(
            "| {} | {:.2}/{:.2} ms → {:.2}/{:.2} ms ({:.2}x/{:.2}x){fails} | {:.2}/{:.2} ms → {:.2}/{:.2} ms ({:.2}x/{:.2}x) | {:.1} MiB (baseline {:.1} MiB) | {growth_text} | {:.0} % ({:.0} %) |",
            r.attack,
            ms(l0.0), ms(l0.1), ms(l1.0), ms(l1.1), ratio(l0.0, l1.0), ratio(l0.1, l1.1),
            ms(m0.0), ms(m0.1), ms(m1.0), ms(m1.1), ratio(m0.0, m1.0), ratio(m0.1, m1.1),
            r.peak_kib as f64 / 1024.0,
            r.before_kib as f64 / 1024.0,
            r.cpu.0 * 100.0,
            r.cpu.1 * 100.0
        );
        let p99 =
            ratio(l0.1, l1.1) <= 2.0 && ratio(m0.1, m1.1) <= 2.0 && r.with.login_failures == 0;
        let mem = growth < 256.0;
        if r.attacking == 0 {
            continue;
        }
        goals.push(format!(
            "{}: p99 within 2x {}; growth < 256 KiB per session {}",
            r.attack.split(':').next().unwrap_or(""),
            if p99 { "MET" } else { "NOT MET" },
            if mem { "MET" } else { "NOT MET" }
        ));
    }
    println!();
    for r in rows {
        println!(
            "{}: {} logins / {} messages measured per phase",
            r.attack.split(':').next().unwrap_or(""),
            r.with.login.len(),
            r.with.msg.len()
        );
        for n in &r.notes {
            println!("{n}");
        }
    }
    println!();
    for g in goals {
        println!("goal {g}");
    }
}
