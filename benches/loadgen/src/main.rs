//! `securecom-loadgen`: drives the real `securecom-server` with many
//! in-process clients (the core's `Client` over tokio sockets) and prints
//! each figure next to its anchor, measured in the same run:
//!
//! - `logins`: completed logins per second, next to the X25519 bound;
//! - `relay`: relayed chat messages per second and MB/s at 256 B of text
//!   with K chats in parallel, next to the ChaCha20-Poly1305 bound;
//! - `latency`: p50/p99 sender-to-receiver latency at a given rate;
//! - `idle`: server RSS per idle logged-in session, N up to 10 000+;
//! - `abuse`: legitimate users' login and message latency, without and with
//!   each of the abuse cases of docs/PROTOCOL.md 9.1, and the server's
//!   memory per attacking session (`abuse.rs`);
//! - `request-modes`: the cost per login of the request channel, dialled by
//!   the server or by the client, next to a login without one
//!   (`request_modes.rs`);
//! - `cluster`: three nodes on a real nats-server: presence convergence,
//!   relayed messages on one node and across two, 27 000 idle users, a
//!   node killed (`cluster.rs`).
//!
//! It starts the server itself (a fresh data directory with generated users),
//! raises its own file-descriptor limit (the server inherits it), and stops
//! the server at the end. Usage: `cargo run --release -p securecom-loadgen -- all`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand_core::RngCore;
use securecom_core::crypto::CryptoProvider;
use securecom_core::{
    Client, ClientConfig, ClientEvent, Limits, PublicKey, RequestLink, StaticSecret, UserName,
};
use securecom_host::{now, os_rng, public_key_hex, HostCrypto, Rng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

mod abuse;
mod cluster;
mod peers;
mod request_modes;

struct Server {
    child: Child,
    addr: SocketAddr,
    key: PublicKey,
    /// The server's log (stderr), when it goes to a file.
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The per-address limits lifted: every load comes from one address.
pub(crate) const LIFTED_LIMITS: &[&str] = &[
    "--conn-rate-per-ip",
    "1000000",
    "--handshakes-per-ip",
    "1000000",
    "--max-connections",
    "100000",
];

impl Server {
    /// Starts a release server with `users` registered and the per-source
    /// limits lifted (every client of the load generator is on 127.0.0.1).
    fn start(users: &[(String, PublicKey)]) -> Result<Server> {
        Self::start_with(users, LIFTED_LIMITS, false)
    }

    /// Starts a release server with `users` registered and `extra` options
    /// of `run` (none: the server's defaults); its log goes to a file in its
    /// data directory if `log_to_file`, else to our stderr.
    fn start_with(
        users: &[(String, PublicKey)],
        extra: &[&str],
        log_to_file: bool,
    ) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("server");
        let bin = server_bin()?;
        let key = init_data(&data, users)?;
        let log = log_to_file.then(|| dir.path().join("server.log"));
        let stderr = match &log {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(&bin)
            .arg("--data-dir")
            .arg(&data)
            .args(["run", "--listen", "127.0.0.1:0", "--log"])
            // The server's log filter; `warn` unless SECURECOM_LOADGEN_SERVER_LOG says otherwise.
            .arg(std::env::var("SECURECOM_LOADGEN_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .context("server did not start")?
            .parse()?;
        Ok(Server {
            child,
            addr,
            key,
            log,
            _dir: dir,
        })
    }

    /// What the server logged so far, if its log goes to a file.
    fn log_text(&self) -> Option<String> {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid())
    }
}

/// VmRSS of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// `securecom-server init` in `data` (a new server key) and its registry
/// of `users`; returns the server's public key.
fn init_data(data: &std::path::Path, users: &[(String, PublicKey)]) -> Result<PublicKey> {
    let out = Command::new(server_bin()?)
        .arg("--data-dir")
        .arg(data)
        .arg("init")
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .context("server init")?;
    let key = securecom_host::parse_public_key(hex)?;
    let mut reg = String::new();
    for (name, k) in users {
        reg.push_str(&format!("{name} {}\n", public_key_hex(k)));
    }
    std::fs::write(data.join("users"), reg)?;
    Ok(key)
}

fn server_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("exe dir")?;
    let bin = dir.join("securecom-server");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p securecom-server)",
            bin.display()
        );
    }
    Ok(bin)
}

/// One in-process client and its socket.
struct Peer {
    c: Client<HostCrypto>,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    rng: Rng,
    buf: Vec<u8>,
    pending: Vec<u8>,
    events: VecDeque<ClientEvent>,
}

/// A TCP connection to `to`, from the address `from` if given (Linux routes
/// all of 127.0.0.0/8 to `lo`, so each loopback address is a source of its
/// own for the server's per-source limits).
async fn connect_from(from: Option<IpAddr>, to: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = match from {
        None => TcpStream::connect(to).await?,
        Some(ip) => {
            let s = match ip {
                IpAddr::V4(_) => TcpSocket::new_v4()?,
                IpAddr::V6(_) => TcpSocket::new_v6()?,
            };
            s.bind(SocketAddr::new(ip, 0))?;
            s.connect(to).await?
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Peer {
    async fn connect(
        addr: SocketAddr,
        server_key: PublicKey,
        name: &str,
        key: &StaticSecret,
        daemon_port: Option<u16>,
    ) -> Result<Peer> {
        Self::connect_from(None, addr, server_key, name, key, daemon_port).await
    }

    async fn connect_from(
        from: Option<IpAddr>,
        addr: SocketAddr,
        server_key: PublicKey,
        name: &str,
        key: &StaticSecret,
        daemon_port: Option<u16>,
    ) -> Result<Peer> {
        let stream = connect_from(from, addr).await?;
        let (rd, wr) = stream.into_split();
        let mut rng = os_rng();
        let config = ClientConfig {
            user: UserName::try_from(name).map_err(|_| anyhow!("name"))?,
            server_key,
            daemon_port,
            limits: Limits::DEFAULT,
        };
        let c = Client::<HostCrypto>::new(config, key.clone(), now(), &mut rng)
            .map_err(|e| anyhow!("{e}"))?;
        let mut p = Peer {
            c,
            rd,
            wr,
            rng,
            buf: vec![0; 64 * 1024],
            pending: Vec::new(),
            events: VecDeque::new(),
        };
        p.flush().await?;
        Ok(p)
    }

    /// Moves the client's queued frames into the pending output.
    fn collect(&mut self) {
        loop {
            let at = self.pending.len();
            self.pending.resize(at + 4096, 0);
            let n = self.c.poll_transmit(&mut self.pending[at..]);
            self.pending.truncate(at + n);
            if n == 0 {
                return;
            }
        }
    }

    async fn flush(&mut self) -> Result<()> {
        self.collect();
        if !self.pending.is_empty() {
            self.wr.write_all(&self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }

    fn feed(&mut self, n: usize) -> Result<()> {
        let mut at = 0;
        while at < n {
            let used = self
                .c
                .handle_input(now(), &self.buf[at..n], &mut self.rng)
                .map_err(|e| anyhow!("{e}"))?;
            at += used;
            while let Some(e) = self.c.poll_event() {
                self.events.push_back(e);
            }
        }
        Ok(())
    }

    async fn read_once(&mut self) -> Result<()> {
        let n = self.rd.read(&mut self.buf).await?;
        if n == 0 {
            bail!("server closed the connection");
        }
        self.feed(n)?;
        self.flush().await
    }

    async fn wait(
        &mut self,
        what: &str,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> Result<ClientEvent> {
        loop {
            if let Some(i) = self.events.iter().position(&pred) {
                return self.events.remove(i).context("event");
            }
            tokio::time::timeout(Duration::from_secs(30), self.read_once())
                .await
                .map_err(|_| anyhow!("timeout waiting for {what}"))??;
        }
    }
}

fn users(prefix: &str, n: usize) -> Vec<(String, StaticSecret)> {
    let mut rng = os_rng();
    (0..n)
        .map(|i| (format!("{prefix}{i}"), StaticSecret::generate(&mut rng)))
        .collect()
}

fn registry(users: &[(String, StaticSecret)]) -> Vec<(String, PublicKey)> {
    users
        .iter()
        .map(|(n, k)| (n.clone(), k.public_key()))
        .collect()
}

// ------------------------------------------------------------------ anchors

/// The host provider's X25519 (the one the server and these clients run).
type HostDh = <HostCrypto as CryptoProvider>::Dh;
/// The host provider's ChaCha20-Poly1305.
type HostAead = <HostCrypto as CryptoProvider>::Cipher;

/// Seconds per X25519 key generation (base point, as a handshake's
/// ephemeral) and per Diffie-Hellman, on one core, with the provider the
/// server runs ([`HostCrypto`]).
fn x25519_costs() -> (f64, f64) {
    use clatter::bytearray::SensitiveByteArray;
    use clatter::traits::Dh;
    let n = 4000;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let secret = SensitiveByteArray::new(bytes);
    let public = HostDh::pubkey(&secret);
    let t = Instant::now();
    let mut acc = 0u8;
    for i in 0..n {
        let mut b = bytes;
        b[0] ^= i as u8;
        acc ^= HostDh::pubkey(&SensitiveByteArray::new(b))[0];
    }
    let keygen = t.elapsed().as_secs_f64() / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        acc ^= HostDh::dh(&secret, &public).map_or(0, |s| s[0]);
    }
    let dh = t.elapsed().as_secs_f64() / n as f64;
    std::hint::black_box(acc);
    (keygen, dh)
}

/// ChaCha20-Poly1305 seal+open pairs per second on one core for `len`
/// bytes, with the provider the server runs.
fn aead_rate(len: usize) -> f64 {
    use clatter::bytearray::SensitiveByteArray;
    use clatter::traits::Cipher;
    let key = SensitiveByteArray::new([7u8; 32]);
    let plain = vec![0u8; len];
    let mut sealed = vec![0u8; len + 16];
    let mut opened = vec![0u8; len];
    let n = 200_000;
    let t = Instant::now();
    for i in 0..n as u64 {
        HostAead::encrypt(&key, i, &[], &plain, &mut sealed).expect("seal");
        HostAead::decrypt(&key, i, &[], &sealed, &mut opened).expect("open");
    }
    std::hint::black_box(&opened);
    n as f64 / t.elapsed().as_secs_f64()
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

// ------------------------------------------------------------------ logins

async fn logins(n: usize, concurrency: usize) -> Result<()> {
    let all = users("u", concurrency);
    let server = Server::start(&registry(&all))?;
    let (addr, key) = (server.addr, server.key);
    let all = Arc::new(all);
    let per = n / concurrency;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let all = all.clone();
        tasks.push(tokio::spawn(async move {
            let (name, secret) = &all[i];
            for _ in 0..per {
                let mut p = Peer::connect(addr, key, name, secret, None).await?;
                p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let rate = (per * concurrency) as f64 / secs;
    let (keygen, dh) = x25519_costs();
    // Per XX login the server does 1 key generation + 3 DH, and so does the
    // client; in this run both share the machine's cores.
    let per_side = keygen + 3.0 * dh;
    let server_bound = cores() as f64 / per_side;
    let shared_bound = cores() as f64 / (2.0 * per_side);
    println!(
        "logins: {} in {secs:.2} s = {rate:.0}/s with {concurrency} concurrent clients",
        per * concurrency
    );
    println!(
        "  X25519 ({}) on one core: key generation {:.1} µs, DH {:.1} µs; server-only bound {server_bound:.0}/s ({} cores / (1 keygen + 3 DH)), bound with the load generator's clients on the same cores {shared_bound:.0}/s",
        HostCrypto::NAME,
        keygen * 1e6,
        dh * 1e6,
        cores()
    );
    println!(
        "  ratio: {:.0} % of the server-only bound, {:.0} % of the shared bound",
        100.0 * rate / server_bound,
        100.0 * rate / shared_bound
    );
    Ok(())
}

// ------------------------------------------------------------------ chats

struct Daemon {
    listener: TcpListener,
    link: Option<(RequestLink<HostCrypto>, OwnedReadHalf, OwnedWriteHalf)>,
}

/// Opens a chat between a fresh requester and responder (with a daemon);
/// returns both peers and the responder's daemon (keep it: it holds the
/// request channel open).
async fn open_pair(
    addr: SocketAddr,
    key: PublicKey,
    a: &(String, StaticSecret),
    b: &(String, StaticSecret),
) -> Result<(Peer, Peer, Daemon)> {
    open_pair_across(addr, addr, key, a, b).await
}

/// [`open_pair`] with the requester logged in to `addr_a` and the
/// responder to `addr_b` (two nodes of a cluster, or the same server).
async fn open_pair_across(
    addr_a: SocketAddr,
    addr_b: SocketAddr,
    key: PublicKey,
    a: &(String, StaticSecret),
    b: &(String, StaticSecret),
) -> Result<(Peer, Peer, Daemon)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let mut pa = Peer::connect(addr_a, key, &a.0, &a.1, None).await?;
    let mut pb = Peer::connect(addr_b, key, &b.0, &b.1, Some(port)).await?;
    pa.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
        .await?;
    let mut d = Daemon {
        listener,
        link: None,
    };
    let mut dbuf = vec![0u8; 4096];
    let mut requested = false;
    let mut ready = (false, false);
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    while !(ready.0 && ready.1) {
        tokio::select! {
            _ = &mut deadline => bail!("chat setup timed out"),
            r = d.listener.accept(), if d.link.is_none() => {
                let (s, _) = r?;
                s.set_nodelay(true)?;
                let (rd, wr) = s.into_split();
                let link = pb.c.new_request_link(now(), &mut pb.rng).map_err(|e| anyhow!("{e}"))?;
                d.link = Some((link, rd, wr));
            }
            r = async { match &mut d.link { Some((_, rd, _)) => rd.read(&mut dbuf).await, None => std::future::pending().await } } => {
                let n = r?;
                let (link, _, wr) = d.link.as_mut().context("link")?;
                let mut at = 0;
                while at < n {
                    at += pb.c.handle_request_input(link, now(), &dbuf[at..n], &mut pb.rng).map_err(|e| anyhow!("{e}"))?;
                }
                while let Some(e) = pb.c.poll_event() {
                    if let ClientEvent::ChatRequest { chat_id, .. } = e {
                        pb.c.answer_request(chat_id, true).map_err(|e| anyhow!("{e}"))?;
                    }
                }
                let mut out = [0u8; 4096];
                loop {
                    let m = pb.c.poll_request_transmit(link, now(), &mut out);
                    if m == 0 { break; }
                    wr.write_all(&out[..m]).await?;
                }
            }
            r = pa.read_once() => r?,
            r = pb.read_once() => r?,
        }
        if !requested
            && pb
                .events
                .iter()
                .any(|e| matches!(e, ClientEvent::DaemonStatus { reachable: true }))
        {
            pa.c.request_chat(now(), &b.0).map_err(|e| anyhow!("{e}"))?;
            pa.flush().await?;
            requested = true;
        }
        for (p, flag) in [(&mut pa, &mut ready.0), (&mut pb, &mut ready.1)] {
            if p.events
                .iter()
                .any(|e| matches!(e, ClientEvent::ChatReady { .. }))
            {
                *flag = true;
            }
            if let Some(e) = p.events.iter().find(|e| {
                matches!(
                    e,
                    ClientEvent::ChatRefused { .. } | ClientEvent::ChatEnded { .. }
                )
            }) {
                bail!("chat setup failed: {e:?}");
            }
        }
    }
    pa.events.clear();
    pb.events.clear();
    Ok((pa, pb, d))
}

/// Sends `count` messages of `size` bytes from a to b with at most `window`
/// in flight; returns the latencies (µs) if `rate` paces the sender.
async fn blast(
    (mut a, mut b, _daemon): (Peer, Peer, Daemon),
    count: usize,
    size: usize,
    window: usize,
    rate: Option<f64>,
) -> Result<Vec<u64>> {
    let origin = Instant::now();
    let mut sent = 0usize;
    let mut got = 0usize;
    let mut lat = Vec::new();
    let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut next_send = Instant::now();
    let filler = "x".repeat(size);
    // The requester speaks first; after that the responder only reads.
    while got < count {
        let can_send = sent < count
            && sent - got < window
            && interval.is_none_or(|_| Instant::now() >= next_send);
        if can_send {
            let stamp = format!("{:020}", origin.elapsed().as_micros());
            let text = format!("{stamp}{}", &filler[..size - stamp.len()]);
            a.c.send_text(now(), &text).map_err(|e| anyhow!("{e}"))?;
            a.collect();
            sent += 1;
            // Unpaced: queue a burst, then write it with one system call.
            if interval.is_none() && !sent.is_multiple_of(16) && sent < count && sent - got < window
            {
                continue;
            }
            a.flush().await?;
            if let Some(i) = interval {
                next_send += i;
            }
            continue;
        }
        let wait_send = interval
            .filter(|_| sent < count && sent - got < window)
            .map(|_| next_send);
        tokio::select! {
            r = b.read_once() => r?,
            _ = async { match wait_send { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => {}
        }
        while let Some(e) = b.events.pop_front() {
            match e {
                ClientEvent::ChatMessage { text, .. } => {
                    got += 1;
                    if rate.is_some() {
                        let sent_at: u64 = text
                            .get(..20)
                            .and_then(|s| s.parse().ok())
                            .context("stamp")?;
                        lat.push(origin.elapsed().as_micros() as u64 - sent_at);
                    }
                }
                other => bail!("unexpected event during the blast: {other:?}"),
            }
        }
    }
    Ok(lat)
}

async fn setup_pairs(k: usize) -> Result<(Server, Vec<(Peer, Peer, Daemon)>)> {
    let a = users("a", k);
    let b = users("b", k);
    let mut reg = registry(&a);
    reg.extend(registry(&b));
    let server = Server::start(&reg)?;
    let mut pairs = Vec::new();
    for i in 0..k {
        pairs.push(open_pair(server.addr, server.key, &a[i], &b[i]).await?);
    }
    Ok((server, pairs))
}

async fn relay(k: usize, seconds: f64, size: usize) -> Result<f64> {
    let (server, pairs) = setup_pairs(k).await?;
    // Calibrate the count per pair from a short run so the run lasts about `seconds`.
    let per = ((seconds * 40_000.0) as usize / k).max(1000);
    let t = Instant::now();
    let tasks: Vec<_> = pairs
        .into_iter()
        .map(|p| tokio::spawn(blast(p, per, size, 64, None)))
        .collect();
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let msgs = (per * k) as f64 / secs;
    let aead = aead_rate(size + 40);
    println!("relay: {k} chats x {per} messages of {size} B in {secs:.2} s = {msgs:.0} msg/s, {:.1} MB/s of chat text", msgs * size as f64 / 1e6);
    println!(
        "  ChaCha20-Poly1305 ({}, {} B): {aead:.0} seal+open/s/core; server-only bound {:.0} msg/s (1 open + 1 seal per message on {} cores), bound with both clients on the same cores {:.0} msg/s (3 seal+open pairs per message)",
        HostCrypto::NAME,
        size + 40,
        aead * cores() as f64,
        cores(),
        aead * cores() as f64 / 3.0
    );
    println!(
        "  ratio: {:.0} % of the server-only bound, {:.0} % of the shared bound",
        100.0 * msgs / (aead * cores() as f64),
        100.0 * msgs / (aead * cores() as f64 / 3.0)
    );
    drop(server);
    Ok(msgs)
}

async fn latency(k: usize, total_rate: f64, seconds: f64, size: usize) -> Result<()> {
    let (server, pairs) = setup_pairs(k).await?;
    let per_rate = total_rate / k as f64;
    let per = (per_rate * seconds) as usize;
    let tasks: Vec<_> = pairs
        .into_iter()
        .map(|p| tokio::spawn(blast(p, per, size, 1 << 20, Some(per_rate))))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!("latency at {total_rate:.0} msg/s ({k} chats, {size} B, {} messages): p50 {} µs, p99 {} µs, max {} µs", all.len(), pct(0.5), pct(0.99), all[all.len() - 1]);
    drop(server);
    Ok(())
}

async fn idle(n: usize) -> Result<()> {
    let all = users("i", n);
    let server = Server::start(&registry(&all))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib()?;
    let mut peers = Vec::with_capacity(n);
    let chunk = 200;
    for group in all.chunks(chunk) {
        let tasks: Vec<_> = group
            .iter()
            .map(|(name, key)| {
                let (name, key, addr, skey) = (name.clone(), key.clone(), server.addr, server.key);
                tokio::spawn(async move {
                    let mut p = Peer::connect(addr, skey, &name, &key, None).await?;
                    p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
                        .await?;
                    anyhow::Ok(p)
                })
            })
            .collect();
        for t in tasks {
            peers.push(t.await??);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib()?;
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!("idle sessions: {n} logged in; server RSS {before} KiB -> {after} KiB = {per:.1} KiB per idle session (target <= 16 KiB)");
    drop(peers);
    Ok(())
}

fn raise_fd_limit(want: u64) -> Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = want.min(hard);
    rlimit::Resource::NOFILE.set(soft, hard)?;
    Ok(soft)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let num = |flag: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let fds = raise_fd_limit(65_536)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("# securecom-loadgen on {} cores, fd limit {fds}", cores());
        match what {
            "logins" => logins(num("--n", 2000), num("--concurrency", 32)).await,
            "relay" => relay(num("--chats", 8), 4.0, num("--size", 256))
                .await
                .map(|_| ()),
            "latency" => {
                latency(
                    num("--chats", 8),
                    num("--rate", 20_000) as f64,
                    4.0,
                    num("--size", 256),
                )
                .await
            }
            "idle" => idle(num("--n", 10_000)).await,
            "abuse" => abuse::run(&args).await,
            "cluster" => cluster::run(&args).await,
            "cluster-crowd" => cluster::crowd(&args).await,
            "peers" => peers::run(&args).await,
            "request-modes" => {
                request_modes::run(
                    num("--n", 2000),
                    num("--concurrency", 16),
                    num("--rounds", 4),
                )
                .await
            }
            "all" => {
                logins(num("--n", 2000), num("--concurrency", 32)).await?;
                let max = relay(num("--chats", 8), 4.0, 256).await?;
                latency(num("--chats", 8), max / 2.0, 4.0, 256).await?;
                idle(num("--n", 10_000)).await
            }
            other => bail!("unknown task {other}: logins | relay | latency | idle | abuse | request-modes | peers | cluster | all"),
        }
    })
}
