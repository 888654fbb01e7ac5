//! A bounded soak of the real server: many in-process clients (the core's
//! `Client` over tokio sockets, each from its own loopback address with its
//! own daemon) log in, list users, ask each other for chats, accept or
//! decline, chat, leave, log out, or are killed (sockets dropped), at random
//! from a seeded RNG, for a fixed time.
//!
//! Checked during the run: every chat text arrives unchanged, in order,
//! from the right peer; no E2E failure other than a handshake deadline; no
//! session closed by the server unasked. Checked at the end: no panic in the
//! server's log, presence back to zero (a fresh real client's `/users`
//! shows only itself), the server's descriptors back to their start (no
//! session left behind), and its memory back near its start.
//!
//! ```text
//! cargo test -p securecom-tests --test soak -- --nocapture                 # 1000 clients, 60 s
//! SOAK_SECONDS=1800 cargo test --release -p securecom-tests --test soak -- --nocapture
//! ```
//! Also `SOAK_CLIENTS` (default 1000) and `SOAK_SEED` (default 1).

mod adversarial;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adversarial::net::{eventually, source_ip};
use adversarial::procs::{fd_count, login_at, RealServer, TestUser};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use securecom_core::chat::ChatText;
use securecom_core::{
    ChatEnd, Client, ClientConfig, ClientEvent, Error, Limits, ProtocolError, PublicKey,
    RequestLink, StaticSecret, UserName,
};
use securecom_host::{now, os_rng, Rng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{sleep, timeout, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Stats {
    logins: AtomicU64,
    logouts: AtomicU64,
    kills: AtomicU64,
    requests: AtomicU64,
    chats: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    lists: AtomicU64,
    e2e_deadlines: AtomicU64,
    login_retries: AtomicU64,
    rekeys: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Stats {
    fn fail(&self, who: &str, what: String) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() < 50 {
            f.push(format!("{who}: {what}"));
        }
    }
}

struct Ctx {
    server: SocketAddr,
    server_key: PublicKey,
    clients: usize,
    end: Instant,
    stats: Stats,
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

fn chance(rng: &mut ChaCha8Rng, percent: u64) -> bool {
    below(rng, 100) < percent
}

#[test]
fn soak() {
    let seconds = env("SOAK_SECONDS", 60);
    let clients = env("SOAK_CLIENTS", 1000) as usize;
    let seed = env("SOAK_SEED", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keys = ChaCha8Rng::seed_from_u64(seed);
    let secrets: Vec<StaticSecret> = (0..clients)
        .map(|_| StaticSecret::generate(&mut keys))
        .collect();
    let names: Vec<String> = (0..clients).map(|i| format!("u{i}")).collect();
    let observer = TestUser::new(dir.path(), "observer");
    let mut reg: Vec<(&str, PublicKey)> = names
        .iter()
        .zip(&secrets)
        .map(|(n, k)| (n.as_str(), k.public_key()))
        .collect();
    reg.push(("observer", observer.public));
    // Request channels (the server's) and standard channels and chats (the
    // clients') re-key every 30 s: in place, under the load of the run.
    let mut server = RealServer::start(dir.path(), &reg, "info", &["--rekey-after", "30"]);
    let pid = server.pid();
    std::thread::sleep(Duration::from_millis(300));
    let (rss0, fds0) = (server.rss_kib(), server.fds());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = Arc::new(Ctx {
        server: server.addr,
        server_key: server.key,
        clients,
        end: Instant::now() + Duration::from_secs(seconds),
        stats: Stats::default(),
    });
    let peak = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    rt.block_on(async {
        let p = peak.clone();
        let sampler = tokio::spawn(async move {
            loop {
                p.fetch_max(adversarial::procs::rss_kib(pid), Ordering::Relaxed);
                sleep(Duration::from_millis(500)).await;
            }
        });
        let mut tasks = Vec::new();
        for (i, secret) in secrets.into_iter().enumerate() {
            let ctx = ctx.clone();
            let rng =
                ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            tasks.push(tokio::spawn(agent(i, secret, ctx, rng)));
        }
        for t in tasks {
            if let Err(e) = t.await {
                ctx.stats.fail("agent", format!("panicked: {e}"));
            }
        }
        sampler.abort();
    });
    let ran = started.elapsed();
    drop(rt);

    // Every session gone: descriptors back to where they started.
    let settled = eventually(Duration::from_secs(30), || fd_count(pid) <= fds0 + 2);
    let (rss1, fds1) = (server.rss_kib(), server.fds());
    let s = &ctx.stats;
    println!(
        "SOAK | {clients} clients, {:.0} s (seed {seed}) | logins {} logouts {} kills {} | \
         requests {} chats {} messages sent {} received {} | lists {} | E2E deadlines {} | login retries {} | \
         standard-channel re-keys {}",
        ran.as_secs_f64(),
        s.logins.load(Ordering::Relaxed),
        s.logouts.load(Ordering::Relaxed),
        s.kills.load(Ordering::Relaxed),
        s.requests.load(Ordering::Relaxed),
        s.chats.load(Ordering::Relaxed),
        s.sent.load(Ordering::Relaxed),
        s.received.load(Ordering::Relaxed),
        s.lists.load(Ordering::Relaxed),
        s.e2e_deadlines.load(Ordering::Relaxed),
        s.login_retries.load(Ordering::Relaxed),
        s.rekeys.load(Ordering::Relaxed),
    );
    println!(
        "SOAK | server RSS {:.1} MiB at start, {:.1} MiB peak, {:.1} MiB at the end | fds {fds0} at start, {fds1} at the end",
        rss0 as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        rss1 as f64 / 1024.0
    );
    let failures = s.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    let logins = s.logins.load(Ordering::Relaxed);
    assert!(logins >= clients as u64, "not every client logged in");
    // Logins the saturated server shed (its handshake timeout) were retried:
    // load shedding, not an error; they are printed above.
    assert!(s.chats.load(Ordering::Relaxed) > 0 && s.received.load(Ordering::Relaxed) > 0);
    // Sessions outlived their 30 s keys: they re-keyed, under load.
    assert!(
        ran < Duration::from_secs(60) || s.rekeys.load(Ordering::Relaxed) > 0,
        "no session re-keyed"
    );
    server.assert_healthy();
    assert!(
        settled,
        "sessions left behind: {fds1} descriptors, {fds0} at start"
    );
    assert!(
        rss1 <= rss0 + 30 * 1024,
        "memory not back near its start: {rss0} KiB -> {rss1} KiB"
    );
    // Presence is empty: a fresh real client sees only itself.
    let mut c = login_at(server.addr, &server.key, &observer, "127.0.0.1:0");
    assert_eq!(c.users(), ["observer"]);
}

/// One simulated user: sessions until the end of the soak.
async fn agent(i: usize, secret: StaticSecret, ctx: Arc<Ctx>, mut rng: ChaCha8Rng) {
    let name = format!("u{i}");
    // Spread the first logins over the first 80% of the run: in debug builds
    // the X25519 operations of a login (both sides) are what limits the rate.
    let total = ctx.end.saturating_duration_since(Instant::now());
    let ramp = total * 4 / 5;
    sleep(Duration::from_millis(below(
        &mut rng,
        ramp.as_millis() as u64,
    )))
    .await;
    let ip = source_ip(20 + (i / 60_000) as u8, (i % 60_000) as u32);
    // One long session, then (30%) more until the end; a shed login is retried.
    let mut logged_in = false;
    while !logged_in || (chance(&mut rng, 30) && Instant::now() + Duration::from_secs(5) < ctx.end)
    {
        match session(&name, ip, &secret, &ctx, &mut rng).await {
            Ok(got_in) => logged_in |= got_in,
            Err(e) => {
                ctx.stats.fail(&name, e);
                return;
            }
        }
        sleep(Duration::from_millis(200 + below(&mut rng, 2000))).await;
    }
}

/// The state of one login of one agent.
struct Sess<'a> {
    name: &'a str,
    ctx: &'a Ctx,
    client: Client,
    crypto: Rng,
    std: TcpStream,
    link: Option<(RequestLink, TcpStream)>,
    /// The current chat: peer, our next sequence number, the peer's expected one.
    chat: Option<(String, u64, u64)>,
    logging_out: bool,
}

async fn session(
    name: &str,
    ip: IpAddr,
    secret: &StaticSecret,
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
) -> Result<bool, String> {
    let listener = TcpListener::bind((ip, 0))
        .await
        .map_err(|e| format!("daemon bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind((ip, 0).into()).map_err(|e| e.to_string())?;
    let std = timeout(Duration::from_secs(20), socket.connect(ctx.server))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = std.set_nodelay(true);
    let mut crypto = os_rng();
    let config = ClientConfig {
        user: UserName::try_from(name).map_err(|_| "name")?,
        server_key: ctx.server_key,
        daemon_port: Some(port),
        // A patient client: under load a login may take longer than 10 s.
        // Its own deadline comes after the retry below (40 s), so that a
        // stalled login is retried, not counted as a failure.
        limits: Limits {
            handshake_timeout: securecom_core::Duration::from_secs(45),
            rekey_after: securecom_core::Duration::from_secs(30),
            ..Limits::DEFAULT
        },
    };
    let client =
        Client::new(config, secret.clone(), now(), &mut crypto).map_err(|e| e.to_string())?;
    let mut s = Sess {
        name,
        ctx,
        client,
        crypto,
        std,
        link: None,
        chat: None,
        logging_out: false,
    };
    s.flush().await?;
    let login_deadline = Instant::now() + Duration::from_secs(40);
    // A session ends at a random time before the end of the run.
    let left = ctx
        .end
        .saturating_duration_since(Instant::now())
        .as_millis() as u64;
    let life = Duration::from_millis(3_000 + below(rng, left));
    let session_end = (Instant::now() + life).min(ctx.end);
    let mut next_action = Instant::now() + Duration::from_millis(300);
    let mut buf = vec![0u8; 8192];
    let mut lbuf = vec![0u8; 1024];
    let mut rekeys_seen = 0;
    loop {
        let now_t = Instant::now();
        let rekeys = s.client.rekeys();
        if rekeys > rekeys_seen {
            ctx.stats
                .rekeys
                .fetch_add(u64::from(rekeys - rekeys_seen), Ordering::Relaxed);
            rekeys_seen = rekeys;
        }
        if !s.client.is_logged_in() && !s.logging_out && now_t > login_deadline {
            // The server is overloaded (or shed the handshake): try again later.
            ctx.stats.login_retries.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        if s.client.is_logged_in() && now_t >= session_end && !s.logging_out {
            if chance(rng, 50) {
                ctx.stats.kills.fetch_add(1, Ordering::Relaxed);
                return Ok(true); // Killed: every socket dropped, no goodbye.
            }
            s.logging_out = true;
            s.call(|c| c.logout(now()))?;
            s.flush().await?;
        }
        if s.logging_out && now_t >= session_end + Duration::from_secs(60) {
            return Err("no Bye within 60 s of Logout".into());
        }
        let core_deadline = s
            .client
            .poll_timeout()
            .map(|d| Instant::now() + securecom_host::until(d));
        let wake = [
            Some(next_action),
            core_deadline,
            Some(session_end),
            Some(login_deadline),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t > now_t)
        .min()
        .unwrap_or(now_t + Duration::from_millis(100));
        let link_ready = async {
            match &s.link {
                Some((_, l)) => l.readable().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = s.std.read(&mut buf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(_) if !s.client.is_logged_in() && !s.logging_out => 0,
                    Err(e) => return Err(format!("read: {e}")),
                };
                if n == 0 && !s.client.is_logged_in() && !s.logging_out {
                    // Handshake shed by the server (its 10 s handshake timeout under load).
                    ctx.stats.login_retries.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                if n == 0 {
                    return if s.logging_out && s.client.is_closed() {
                        Ok(true)
                    } else {
                        Err("the server closed the connection".into())
                    };
                }
                s.feed(&buf[..n], rng)?;
                if s.client.is_closed() {
                    return if s.logging_out {
                        ctx.stats.logouts.fetch_add(1, Ordering::Relaxed);
                        Ok(true)
                    } else {
                        Err("session closed".into())
                    };
                }
            }
            r = listener.accept() => {
                let (stream, _) = r.map_err(|e| format!("accept: {e}"))?;
                if let Some((old, _)) = s.link.take() {
                    s.client.request_link_closed(&old);
                }
                if let Ok(l) = s.client.new_request_link(now(), &mut s.crypto) {
                    s.link = Some((l, stream));
                }
            }
            r = link_ready => {
                let mut gone = r.is_err();
                if let Some((link, stream)) = &mut s.link {
                    match stream.try_read(&mut lbuf) {
                        Ok(0) => gone = true,
                        Ok(n) => {
                            let mut at = 0;
                            while at < n {
                                match s.client.handle_request_input(link, now(), &lbuf[at..n], &mut securecom_host::thread_rng()) {
                                    Ok(used) => at += used,
                                    Err(_) => { gone = true; break; }
                                }
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => gone = true,
                    }
                }
                if gone {
                    if let Some((old, _)) = s.link.take() {
                        s.client.request_link_closed(&old);
                    }
                }
                s.events(rng)?;
            }
            () = tokio::time::sleep_until(wake) => {
                if s.client.handle_timeout(now(), &mut securecom_host::thread_rng()).is_err() {
                    return Err("a core deadline passed (idle or handshake)".into());
                }
                s.events(rng)?;
                if Instant::now() >= next_action {
                    next_action = Instant::now() + Duration::from_millis(100 + below(rng, 900));
                    if s.client.is_logged_in() && !s.logging_out {
                        s.act(rng)?;
                    }
                }
            }
        }
        s.flush().await?;
    }
}

impl Sess<'_> {
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, Error>,
    ) -> Result<Option<T>, String> {
        match f(&mut self.client) {
            Ok(v) => Ok(Some(v)),
            Err(e) if self.client.is_closed() => Err(format!("session failed: {e}")),
            Err(_) => Ok(None),
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        let mut out = [0u8; 4096];
        loop {
            let n = self.client.poll_transmit(&mut out);
            if n == 0 {
                break;
            }
            self.std
                .write_all(&out[..n])
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        if let Some((link, stream)) = &mut self.link {
            loop {
                let n = self.client.poll_request_transmit(link, now(), &mut out);
                if n == 0 {
                    break;
                }
                if stream.write_all(&out[..n]).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn feed(&mut self, mut input: &[u8], rng: &mut ChaCha8Rng) -> Result<(), String> {
        while !input.is_empty() {
            let r = self.client.handle_input(now(), input, &mut self.crypto);
            self.events(rng)?;
            match r {
                Ok(used) => input = &input[used..],
                Err(e) => return Err(format!("standard channel failed: {e}")),
            }
            if self.client.is_closed() {
                break;
            }
        }
        Ok(())
    }

    fn events(&mut self, rng: &mut ChaCha8Rng) -> Result<(), String> {
        let stats = &self.ctx.stats;
        while let Some(e) = self.client.poll_event() {
            match e {
                ClientEvent::LoggedIn { .. } => {
                    stats.logins.fetch_add(1, Ordering::Relaxed);
                }
                ClientEvent::ChatRequest { chat_id, .. } => {
                    let _ = self.client.answer_request(chat_id, chance(rng, 70));
                }
                ClientEvent::ChatReady { peer, .. } => {
                    stats.chats.fetch_add(1, Ordering::Relaxed);
                    self.chat = Some((peer.to_string(), 0, 0));
                }
                ClientEvent::ChatMessage { from, text } => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    self.check_text(&from, &text)?;
                }
                ClientEvent::ChatEnded { reason, .. } => {
                    self.chat = None;
                    match reason {
                        ChatEnd::Failed(Error::Protocol(ProtocolError::HandshakeTimeout)) => {
                            stats.e2e_deadlines.fetch_add(1, Ordering::Relaxed);
                        }
                        ChatEnd::Failed(e) => return Err(format!("chat failed: {e}")),
                        _ => {}
                    }
                }
                ClientEvent::Closed(reason) if !self.logging_out => {
                    return Err(format!("closed by the server: {reason:?}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_text(&mut self, from: &str, text: &ChatText) -> Result<(), String> {
        let Some((peer, _, expected)) = &mut self.chat else {
            return Err(format!("a message from {from} outside a chat"));
        };
        let want = format!("{from}>{}#{expected}", self.name);
        if from != peer.as_str() || text.as_str() != want {
            return Err(format!(
                "got {:?} from {from}, expected {want:?}",
                text.as_str()
            ));
        }
        *expected += 1;
        Ok(())
    }

    fn act(&mut self, rng: &mut ChaCha8Rng) -> Result<(), String> {
        let stats = &self.ctx.stats;
        let r = below(rng, 100);
        if let Some((peer, seq, _)) = &mut self.chat {
            if r < 60 {
                let text = format!("{}>{peer}#{seq}", self.name);
                if self.client.send_text(now(), &text).is_ok() {
                    *seq += 1;
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
            } else if r < 66 {
                self.chat = None;
                self.call(|c| c.leave_chat(now()))?;
            }
        } else if self.client.is_busy() {
            if r < 15 {
                self.call(|c| c.leave_chat(now()))?;
            }
        } else if r < 30 {
            // Mostly the partner (u0-u1, u2-u3, ...), so that chats happen; sometimes anyone.
            let me: u64 = self.name[1..].parse().unwrap_or(0);
            let other = if chance(rng, 70) {
                me ^ 1
            } else {
                below(rng, self.ctx.clients as u64)
            };
            let peer = format!("u{other}");
            if peer != self.name {
                stats.requests.fetch_add(1, Ordering::Relaxed);
                self.call(|c| c.request_chat(now(), &peer))?;
            }
        } else if r < 40 {
            stats.lists.fetch_add(1, Ordering::Relaxed);
            self.call(|c| c.list_users(now()))?;
        }
        Ok(())
    }
}
