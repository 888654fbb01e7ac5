//! `AnnounceDaemon` abuse: the server dials only ports at or above
//! `--daemon-min-port` (1024 by default: never a system service), loopback
//! daemons only when it listens on loopback itself (or with
//! `--allow-loopback-daemons`), and a session that floods announces gets
//! `Error { SlowDown }`, then `Bye { RateLimited }`, having made the server
//! dial at most what the rate allows.
//!
//! This module also holds [`RawSession`], the raw protocol speaker the other
//! abuse modules share: the core's `Client` never sends a second
//! `AnnounceDaemon` nor a command out of turn, so an attacker is built from
//! the core's standard channel and messages directly.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use securecom_core::channel::{Incoming, Scratch, StandardChannel};
use securecom_core::message::{
    decode, encode, ClientHello, ClientMsg, CloseReason, ErrorCode, RefuseReason, ServerMsg,
};
use securecom_core::noise::{Handshake, RemoteCheck};
use securecom_core::{
    ClientEvent, Limits, PublicKey, StaticSecret, MAX_NOISE_MESSAGE, PROTOCOL_VERSION,
};
use securecom_host::{now, os_rng, public_key_hex};
use securecom_tests::WAIT;

use crate::adversarial;
use crate::adversarial::net::{connect_from, source_ip};
use crate::adversarial::peer::CorePeer;
use crate::adversarial::procs::{
    login_at, open_chat, say, start_at, RealServer, ScriptClient, TestUser,
};

// ------------------------------------------------------------------ raw session

/// What the server sent a [`RawSession`] (the fields the tests look at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got {
    LoginOk,
    LoginRefused,
    DaemonStatus(bool),
    Users { names: Vec<String>, more: bool },
    ChatPending { user: String, chat_id: u32 },
    ChatStarted { peer: String, chat_id: u32 },
    ChatRefused { user: String, reason: RefuseReason },
    Relayed,
    PeerLeft,
    Pong,
    Error(ErrorCode),
    Bye(CloseReason),
}

impl Got {
    fn from_msg(msg: ServerMsg<'_>) -> Got {
        match msg {
            ServerMsg::LoginOk { .. } => Got::LoginOk,
            ServerMsg::LoginRefused { .. } => Got::LoginRefused,
            ServerMsg::DaemonStatus { reachable } => Got::DaemonStatus(reachable),
            ServerMsg::Users { names, more } => Got::Users {
                names: names.iter().map(|n| n.to_string()).collect(),
                more,
            },
            ServerMsg::ChatPending { user, chat_id } => Got::ChatPending {
                user: user.into(),
                chat_id,
            },
            ServerMsg::ChatStarted { peer, chat_id, .. } => Got::ChatStarted {
                peer: peer.into(),
                chat_id,
            },
            ServerMsg::ChatRefused { user, reason, .. } => Got::ChatRefused {
                user: user.into(),
                reason,
            },
            ServerMsg::ChatHandshake { .. } | ServerMsg::ChatData { .. } => Got::Relayed,
            ServerMsg::PeerLeft { .. } => Got::PeerLeft,
            ServerMsg::Pong => Got::Pong,
            ServerMsg::Error { code } => Got::Error(code),
            ServerMsg::Bye { reason } => Got::Bye(reason),
        }
    }
}

/// A logged-in client that sends any `ClientMsg`, whenever it likes, built
/// from the core's standard channel (XX, framing, transport encryption):
/// what a modified client can do after an honest login.
pub struct RawSession {
    ch: StandardChannel,
    /// The socket (for write timeouts, raw bytes, its end).
    pub stream: TcpStream,
    name: String,
    /// Everything received and not yet taken, in order.
    pub got: VecDeque<Got>,
    /// Everything received so far, in order (for failure messages and counts).
    pub log: Vec<Got>,
    /// True once the server closed the connection (EOF or reset).
    pub ended: bool,
    buf: Vec<u8>,
}

impl RawSession {
    /// Connects from `from` and logs in as `name`, pinning `server_key`;
    /// announces no daemon.
    pub fn login(
        server: SocketAddr,
        from: IpAddr,
        server_key: PublicKey,
        name: &str,
        secret: &StaticSecret,
    ) -> Result<RawSession, String> {
        Self::login_with(server, from, server_key, name, secret, None)
    }

    /// [`RawSession::login`] with the socket's receive buffer set to
    /// `rcvbuf` bytes before it connects (a client that means to read
    /// nothing offers a small window, so that the server's output backs up).
    pub fn login_with(
        server: SocketAddr,
        from: IpAddr,
        server_key: PublicKey,
        name: &str,
        secret: &StaticSecret,
        rcvbuf: Option<usize>,
    ) -> Result<RawSession, String> {
        let stream = match rcvbuf {
            None => connect_from(from, server, Duration::from_secs(5)),
            Some(size) => connect_small_window(from, server, size),
        }
        .map_err(|e| format!("connect: {e}"))?;
        let mut rng = os_rng();
        let hs = Handshake::standard(true, secret, RemoteCheck::Exactly(server_key), &mut rng)
            .map_err(|e| format!("{e:?}"))?;
        let mut ch = StandardChannel::new(hs, Limits::DEFAULT, now(), &mut rng)
            .map_err(|e| e.to_string())?;
        ch.send_handshake(now(), &[]).map_err(|e| e.to_string())?;
        let mut s = RawSession {
            ch,
            stream,
            name: name.to_string(),
            got: VecDeque::new(),
            log: Vec::new(),
            ended: false,
            buf: vec![0; 64 * 1024],
        };
        s.flush().map_err(|e| format!("write: {e}"))?;
        match s.wait_for("login answer", WAIT, |g| {
            matches!(g, Got::LoginOk | Got::LoginRefused)
        })? {
            Got::LoginOk => Ok(s),
            other => Err(format!("{name}: login: {other:?}")),
        }
    }

    /// Writes what the channel queued.
    fn flush(&mut self) -> std::io::Result<()> {
        let mut out = [0u8; 4096];
        loop {
            let n = self.ch.poll_transmit(&mut out);
            if n == 0 {
                return Ok(());
            }
            self.stream.write_all(&out[..n])?;
        }
    }

    /// Encrypts `msg` and writes it at once.
    pub fn send(&mut self, msg: &ClientMsg<'_>) -> std::io::Result<()> {
        self.ch
            .send(now(), msg)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.flush()
    }

    /// `msg` encrypted and framed, `count` times, without writing (an
    /// attacker that writes a burst in one go).
    pub fn frames(&mut self, msg: &ClientMsg<'_>, count: usize) -> Vec<u8> {
        let mut all = Vec::new();
        let mut out = [0u8; 4096];
        for _ in 0..count {
            self.ch.send(now(), msg).expect("encrypt a frame");
            loop {
                let n = self.ch.poll_transmit(&mut out);
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&out[..n]);
            }
        }
        all
    }

    /// Reads once, waiting at most `limit`, and decodes what arrived.
    /// `Ok(false)`: nothing arrived in time. `Err`: the connection is over
    /// (`ended` is set).
    pub fn pump(&mut self, limit: Duration) -> Result<bool, String> {
        if self.ended {
            return Err("the connection is over".into());
        }
        let _ = self
            .stream
            .set_read_timeout(Some(limit.max(Duration::from_millis(1))));
        let n = match self.stream.read(&mut self.buf) {
            Ok(0) => {
                self.ended = true;
                return Err("the server closed the connection".into());
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(false)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(false),
            Err(e) => {
                self.ended = true;
                return Err(format!("read: {e}"));
            }
        };
        let input = self.buf[..n].to_vec();
        let mut at = 0;
        while at < n {
            let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
            let (used, incoming) = self
                .ch
                .read(
                    now(),
                    &input[at..],
                    &mut scratch,
                    &mut securecom_host::thread_rng(),
                )
                .map_err(|e| format!("{}: channel: {e}", self.name))?;
            at += used;
            match incoming {
                Incoming::Nothing => {}
                // The post-quantum layer's answer: the login's verdict follows.
                Incoming::Handshake { finished: true, .. } => {}
                Incoming::Handshake { .. } => {
                    // XX message 2 read (the pinned key checked): message 3 with our hello.
                    let mut hello = [0u8; 64];
                    let len = encode(
                        &ClientHello {
                            version: PROTOCOL_VERSION,
                            user: &self.name,
                        },
                        &mut hello,
                    )
                    .map_err(|e| format!("{e:?}"))?;
                    self.ch
                        .send_handshake(now(), &hello[..len])
                        .map_err(|e| e.to_string())?;
                }
                Incoming::Message { len } => {
                    let msg = decode::<ServerMsg>(&scratch[..len])
                        .map_err(|e| format!("{}: undecodable message: {e:?}", self.name))?;
                    let g = Got::from_msg(msg);
                    self.log.push(g.clone());
                    self.got.push_back(g);
                }
            }
        }
        self.flush().map_err(|e| format!("write: {e}"))?;
        Ok(true)
    }

    /// Reads whatever is already there (without waiting more than a moment).
    pub fn drain_now(&mut self) {
        while let Ok(true) = self.pump(Duration::from_millis(1)) {}
    }

    /// Takes the first received message satisfying `pred`, reading up to `limit`.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Got) -> bool,
    ) -> Result<Got, String> {
        let end = Instant::now() + limit;
        loop {
            if let Some(i) = self.got.iter().position(&pred) {
                return Ok(self.got.remove(i).expect("message"));
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return Err(format!(
                    "{}: no {what} within {limit:?}: {:?}",
                    self.name, self.log
                ));
            };
            self.pump(left).map_err(|e| {
                format!(
                    "{}: waiting for {what}: {e}; received: {:?}",
                    self.name, self.log
                )
            })?;
        }
    }

    /// Reads until the server closes the connection, at most `limit`; true
    /// if it did.
    pub fn wait_closed(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while !self.ended {
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return false;
            };
            let _ = self.pump(left);
        }
        true
    }

    /// How many `Error { code }` were received so far.
    pub fn errors(&self, code: ErrorCode) -> usize {
        self.log.iter().filter(|g| **g == Got::Error(code)).count()
    }

    /// The `Bye` received, if any.
    pub fn bye(&self) -> Option<CloseReason> {
        self.log.iter().find_map(|g| match g {
            Got::Bye(r) => Some(*r),
            _ => None,
        })
    }

    /// How many over-the-rate refusals were received so far: `SlowDown`,
    /// and `ChatRefused { TooSoon }` (what an over-rate `RequestChat` gets,
    /// PROTOCOL.md 9.1; the same answer as the refusal cool-down's).
    pub fn refusals(&self) -> usize {
        self.log.iter().filter(|g| is_refusal(g)).count()
    }

    /// Asserts the session ended the way an over-the-rate client's must:
    /// refusals first (`SlowDown`, or `TooSoon` for requests), then
    /// `Bye { RateLimited }`, last, and the connection closed.
    pub fn assert_slowed_then_dropped(&mut self, what: &str) {
        assert!(
            self.wait_closed(WAIT),
            "{what}: the server did not drop the flooder; received {:?}",
            self.log
        );
        assert!(
            self.refusals() >= 1,
            "{what}: no SlowDown (or TooSoon) before the drop; received {:?}",
            self.log
        );
        assert_eq!(
            self.log.last(),
            Some(&Got::Bye(CloseReason::RateLimited)),
            "{what}: the flooder was not closed with Bye {{ RateLimited }}; received {:?}",
            self.log
        );
        let first = self.log.iter().position(is_refusal);
        let bye = self.log.iter().position(|g| matches!(g, Got::Bye(_)));
        assert!(first < bye, "{what}: Bye before any refusal");
    }
}

fn is_refusal(g: &Got) -> bool {
    matches!(
        g,
        Got::Error(ErrorCode::SlowDown)
            | Got::ChatRefused {
                reason: RefuseReason::TooSoon,
                ..
            }
    )
}

// ------------------------------------------------------------------ helpers

/// Connects from `from` with a receive buffer of `size` bytes.
fn connect_small_window(from: IpAddr, to: SocketAddr, size: usize) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_recv_buffer_size(size)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    Ok(s)
}

/// A listener on `ip` at the first port of `ports` that is free.
fn bind_first(ip: IpAddr, ports: impl IntoIterator<Item = u16>) -> Option<TcpListener> {
    ports
        .into_iter()
        .find_map(|p| TcpListener::bind(SocketAddr::new(ip, p)).ok())
}

/// The connections accepted by `l` so far (without waiting).
fn accepted_now(l: &TcpListener) -> Vec<TcpStream> {
    l.set_nonblocking(true).expect("nonblocking listener");
    let mut v = Vec::new();
    while let Ok((s, _)) = l.accept() {
        v.push(s);
    }
    v
}

/// Waits up to `limit` for one connection to `l`.
fn accept_within(l: &TcpListener, limit: Duration) -> Option<TcpStream> {
    l.set_nonblocking(true).expect("nonblocking listener");
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok((s, _)) = l.accept() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A `--daemon-listen` address for a real client whose daemon the server
/// must dial: any port when the minimum is the default, else a free one
/// above `min`.
fn daemon_listen(min: u16) -> String {
    if min <= 1024 {
        return "127.0.0.1:0".into();
    }
    let l = bind_first(IpAddr::V4(Ipv4Addr::LOCALHOST), min + 5000..u16::MAX)
        .expect("a free port above the minimum");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr.to_string()
}

fn is_daemon(v: &securecom_tests::Value) -> bool {
    v["event"] == "daemon"
}

// ------------------------------------------------------------------ tests

/// A raw client announces its daemon on a port below the server's minimum
/// (a system port when the tests run as root, where the default minimum of
/// 1024 is what is tested; otherwise a port below `--daemon-min-port
/// 40000`): the server answers `DaemonStatus { reachable: false }` without
/// dialling (the listener on that port never sees a connection) and a
/// request to that user is refused `unreachable`. A daemon at or above the
/// minimum is dialled, and legitimate users chat throughout.
#[test]
fn daemon_below_the_minimum_port_is_never_dialled() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (low_ip, high_ip) = (source_ip(41, 0), source_ip(41, 1));
    // Port 22 first (ssh's), else any other system port, if we may bind one.
    let system = bind_first(low_ip, [22u16].into_iter().chain((600..1024).rev()));
    let (low, min_port, extra): (TcpListener, u16, Vec<&str>) = match system {
        Some(l) => (l, 1024, vec![]),
        None => (
            bind_first(low_ip, 30_000..40_000).expect("a port below 40000"),
            40_000,
            vec!["--daemon-min-port", "40000"],
        ),
    };
    let low_port = low.local_addr().expect("addr").port();
    assert!(low_port < min_port);
    let high = bind_first(high_ip, (min_port.max(1024) + 20_000)..u16::MAX).expect("high port");
    let high_port = high.local_addr().expect("addr").port();
    println!("ANNOUNCE | minimum port {min_port}: announcing {low_port} (refused) and {high_port} (dialled)");

    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let carol = TestUser::new(dir.path(), "carol");
    let lowport = StaticSecret::generate(&mut os_rng());
    let highport = StaticSecret::generate(&mut os_rng());
    let server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("carol", carol.public),
            ("lowport", lowport.public_key()),
            ("highport", highport.public_key()),
        ],
        "debug",
        &extra,
    );
    let mut a = login_at(server.addr, &server.key, &alice, &daemon_listen(min_port));
    let mut b = login_at(server.addr, &server.key, &bob, &daemon_listen(min_port));
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "before the announces");

    // Below the minimum: refused at once, never dialled.
    let (mut p, _) = CorePeer::login(
        server.addr,
        Some(low_ip),
        server.key,
        "lowport",
        &lowport,
        Some(low_port),
        WAIT,
    )
    .expect("lowport login");
    let status = p
        .wait_for("daemon status", WAIT, |e| {
            matches!(e, ClientEvent::DaemonStatus { .. })
        })
        .expect("daemon status");
    assert!(
        matches!(status, ClientEvent::DaemonStatus { reachable: false }),
        "a daemon on port {low_port} was reported reachable"
    );
    let dialled = accepted_now(&low);
    assert!(
        dialled.is_empty(),
        "the server dialled port {low_port} (below its minimum {min_port})"
    );
    assert!(
        server.log_count("not dialled (dial policy)") >= 1,
        "no log of the refused dial"
    );

    // A request to that user cannot be delivered: unreachable.
    let mut c = login_at(server.addr, &server.key, &carol, &daemon_listen(min_port));
    c.send("/chat lowport");
    let r = c.expect("chat_refused");
    assert_eq!(r["reason"], "unreachable", "{r}");

    // At or above the minimum: dialled (the listener is not a daemon, so the
    // request channel's handshake then fails: only the dial matters here).
    let (_h, _) = CorePeer::login(
        server.addr,
        Some(high_ip),
        server.key,
        "highport",
        &highport,
        Some(high_port),
        WAIT,
    )
    .expect("highport login");
    assert!(
        accept_within(&high, WAIT).is_some(),
        "the server did not dial port {high_port} (at or above its minimum {min_port})"
    );
    // Still nothing on the low port, and the chat goes on.
    assert!(accepted_now(&low).is_empty());
    say(&mut a, &mut b, "after the announces");
    say(&mut b, &mut a, "all fine");
    drop(p);
}

/// Minimal server handle for a listen address other than 127.0.0.1 (the
/// harness's servers always listen there).
struct WildServer {
    child: Child,
    addr: SocketAddr,
    key: PublicKey,
    log: PathBuf,
}

impl WildServer {
    fn start(dir: &Path, users: &[&TestUser], extra: &[&str]) -> WildServer {
        let data = dir.join("server");
        let hex = securecom_tests::init_server(&data);
        let key = securecom_host::parse_public_key(&hex).expect("server key");
        let reg: String = users
            .iter()
            .map(|u| format!("{} {}\n", u.name, public_key_hex(&u.public)))
            .collect();
        std::fs::write(data.join("users"), reg).expect("registry");
        let log = dir.join("server.log");
        let (child, addr) = securecom_tests::run_server(&data, "0.0.0.0:0", "debug", extra, &log);
        // Reached over loopback, as a client on this host would.
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port());
        WildServer {
            child,
            addr,
            key,
            log,
        }
    }

    fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for WildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server listening on all addresses (not on loopback only) does not dial
/// loopback daemons: a client connecting over loopback is told its daemon is
/// unreachable, and requests to it are refused `unreachable`, while it can
/// still log in and list users. The same server with
/// `--allow-loopback-daemons` dials them, and its users chat.
#[test]
fn loopback_daemons_only_for_a_loopback_server_or_with_the_flag() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    {
        let wild = WildServer::start(&dir.path().join("a"), &[&alice, &bob], &[]);
        // alice only accepts being dialled (`--request-mode listen`).
        let key = public_key_hex(&wild.key);
        let mut a = ScriptClient::spawn_trusting(
            wild.addr,
            &["--server-key", &key, "--request-mode", "listen"],
            &alice.name,
            &alice.key_file,
            "127.0.0.1:0",
        );
        a.expect("logged_in");
        let d = a.expect_where("daemon status", is_daemon);
        assert_eq!(
            d["reachable"], false,
            "a server listening on 0.0.0.0 dialled a loopback daemon"
        );
        assert!(wild.log_count("not dialled (dial policy)") >= 1);
        // bob, by default, then opens the request channel himself.
        let mut b = start_at(wild.addr, &wild.key, &bob, "127.0.0.1:0");
        b.expect("logged_in");
        let d = b.expect_where("daemon status", is_daemon);
        assert_eq!(d["reachable"], false);
        let d = b.expect_where("daemon status", is_daemon);
        assert_eq!(d["reachable"], true, "bob did not fall back to dialling");
        assert_eq!(b.users(), vec!["alice".to_string(), "bob".to_string()]);
        b.send("/chat alice");
        let r = b.expect("chat_refused");
        assert_eq!(r["reason"], "unreachable", "{r}");
    }
    let wild = WildServer::start(
        &dir.path().join("b"),
        &[&alice, &bob],
        &["--allow-loopback-daemons"],
    );
    let mut a = login_at(wild.addr, &wild.key, &alice, "127.0.0.1:0");
    let mut b = login_at(wild.addr, &wild.key, &bob, "127.0.0.1:0");
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "the flag lets loopback daemons in");
    say(&mut b, &mut a, "yes");
}

/// A raw client announces its daemon again and again (a fresh secret each
/// time, a port with a listener that counts the server's dials): past the
/// announce rate's burst (6/min, 3 saved up) each announce is answered
/// `SlowDown` and not performed, and once the strikes are spent (20 saved
/// up) the session is closed with `Bye { RateLimited }`. The server dialled
/// no more than the rate allows, and legitimate users log in and chat.
#[test]
fn announce_flood_is_slowed_then_dropped() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let flooder = StaticSecret::generate(&mut os_rng());
    let probe = StaticSecret::generate(&mut os_rng());
    let server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("flooder", flooder.public_key()),
            ("probe", probe.public_key()),
        ],
        "debug",
        &[],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "before the flood");

    let from = source_ip(43, 0);
    let target = TcpListener::bind(SocketAddr::new(from, 0)).expect("listener");
    let port = target.local_addr().expect("addr").port();
    let mut raw =
        RawSession::login(server.addr, from, server.key, "flooder", &flooder).expect("login");
    let start = Instant::now();
    let mut sent = 0;
    for i in 0..2000u32 {
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&i.to_be_bytes());
        if raw
            .send(&ClientMsg::AnnounceDaemon { port, secret })
            .is_err()
        {
            break;
        }
        sent += 1;
        raw.drain_now();
        if raw.ended || raw.bye().is_some() {
            break;
        }
    }
    raw.assert_slowed_then_dropped("announce flood");
    let took = start.elapsed();
    let slow = raw.errors(ErrorCode::SlowDown);
    // Refills during the flood: 6 a minute for announces and for strikes.
    let refill = (took.as_secs_f64() / 10.0).ceil() as usize + 1;
    assert!(
        slow <= 20 + refill,
        "{slow} SlowDown answers: more than the strikes allow"
    );
    let dials = accepted_now(&target).len();
    println!(
        "ANNOUNCE | {sent} announces in {took:?}: {slow} SlowDown, then {:?}; the server dialled {dials} times",
        raw.bye()
    );
    assert!(
        dials <= 3 + refill,
        "the server dialled {dials} times for one session's announces (rate 6/min, burst 3)"
    );

    // A third party logs in within the handshake timeout; the chat goes on.
    CorePeer::login(
        server.addr,
        None,
        server.key,
        "probe",
        &probe,
        None,
        Duration::from_secs(10),
    )
    .expect("a legitimate login after the flood");
    say(&mut a, &mut b, "after the flood");
    say(&mut b, &mut a, "still here");
    // The flooder's key is not banned: only that session was dropped.
    let mut again =
        RawSession::login(server.addr, from, server.key, "flooder", &flooder).expect("login again");
    again.send(&ClientMsg::Ping).expect("ping");
    again
        .wait_for("pong", WAIT, |g| *g == Got::Pong)
        .expect("pong");
}
