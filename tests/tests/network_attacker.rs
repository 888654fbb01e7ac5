//! A network attacker between real clients and the real server, and a thief
//! of a client's key.
//!
//! The attacker is a frame-aware TCP proxy (`adversarial::proxy`) on both of
//! a victim's channels: the standard channel (client → proxy → server) and
//! the request channel (server → proxy → the client's daemon). The second
//! needs no client support: the proxy connects to the server from its own
//! loopback address S, the server dials the daemon at S and the announced
//! port, and a second proxy listening there forwards to the real daemon on
//! 127.0.0.1 at that port.
//!
//! Every attack must be rejected with the connection closed (by the side
//! that detected it), no panic in the server, and two other users chatting
//! on the same server unaffected. docs/SECURITY.md maps the threat model to
//! these tests.

mod adversarial;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use adversarial::net::{source_ip, wait_end};
use adversarial::peer::CorePeer;
use adversarial::procs::{login_at, open_chat, say, start_at, RealServer, ScriptClient, TestUser};
use adversarial::proxy::{flip, shorten, Act, Dir, FrameCtx, Proxy, Tamper};
use securecom_core::{Client, ClientConfig, ClientEvent, Limits, UserName};
use securecom_host::{now, os_rng};

/// A server with alice (the victim), bob, and carol and dave chatting directly.
struct Net {
    _dir: tempfile::TempDir,
    server: RealServer,
    alice: TestUser,
    bob: TestUser,
    carol: ScriptClient,
    dave: ScriptClient,
    checks: usize,
}

fn net() -> Net {
    let dir = tempfile::tempdir().expect("tempdir");
    let users: Vec<TestUser> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|n| TestUser::new(dir.path(), n))
        .collect();
    let reg: Vec<(&str, securecom_core::PublicKey)> =
        users.iter().map(|u| (u.name.as_str(), u.public)).collect();
    // The attacks ask the same user again after a refusal: no cool-down;
    // carol lists the users after every attack, more often than a person
    // would: no listing limit (both are tested in `abuse`).
    let server = RealServer::start(
        dir.path(),
        &reg,
        "debug",
        &["--refuse-cooldown", "0", "--rate-listings", "0"],
    );
    let mut it = users.into_iter();
    let (alice, bob, carol_u, dave_u) = (
        it.next().expect("alice"),
        it.next().expect("bob"),
        it.next().expect("carol"),
        it.next().expect("dave"),
    );
    let mut carol = login_at(server.addr, &server.key, &carol_u, "127.0.0.1:0");
    let mut dave = login_at(server.addr, &server.key, &dave_u, "127.0.0.1:0");
    open_chat(&mut carol, &mut dave);
    Net {
        _dir: dir,
        server,
        alice,
        bob,
        carol,
        dave,
        checks: 0,
    }
}

impl Net {
    /// After an attack: the server is up, never panicked, and carol and dave still chat.
    fn check(&mut self, what: &str) {
        self.checks += 1;
        say(
            &mut self.carol,
            &mut self.dave,
            &format!("after {what} ({})", self.checks),
        );
        say(
            &mut self.dave,
            &mut self.carol,
            &format!("still here ({})", self.checks),
        );
        self.server.assert_healthy();
    }

    /// Logs in bob directly.
    fn bob(&self) -> ScriptClient {
        login_at(self.server.addr, &self.server.key, &self.bob, "127.0.0.1:0")
    }

    /// alice through the attacker: both channels proxied, from loopback block `block`.
    fn victim(&self, block: u8, std: Tamper, daemon: Tamper) -> Victim {
        let src = source_ip(block, 0);
        let std_proxy = Proxy::start(
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            self.server.addr,
            Some(src),
            std,
        );
        // The daemon proxy listens on S:P, alice's real daemon on 127.0.0.1:P.
        // P is picked below the kernel's ephemeral range, so that no outgoing
        // connection takes it. The other tests of this binary pick ports at
        // the same time: if one takes P between our check and the client's
        // bind, the client exits before connecting (so the standard proxy
        // has seen nothing) and we pick again.
        let mut seed = (std::process::id() as u64) << 8 | u64::from(block);
        for _ in 0..8 {
            let (dl, port) = loop {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let port = 20_000 + (seed >> 33) as u16 % 10_000;
                let Ok(dl) = TcpListener::bind(SocketAddr::new(src, port)) else {
                    continue;
                };
                if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                    break (dl, port);
                }
            };
            let mut client = start_at(
                std_proxy.addr,
                &self.server.key,
                &self.alice,
                &format!("127.0.0.1:{port}"),
            );
            if client
                .next_where(Duration::from_secs(30), |e| {
                    e["event"] == "daemon_listening"
                })
                .is_none()
            {
                let err = client.final_stderr();
                assert!(
                    err.contains("cannot listen"),
                    "alice: no 'daemon_listening'; events: {:?}\nstderr:\n{err}",
                    client.seen
                );
                eprintln!("port {port} was taken before alice's daemon bound it; another");
                continue;
            }
            assert_eq!(client.daemon_addr().port(), port);
            assert!(std_proxy.conn(1).is_none(), "a second standard connection");
            let daemon_proxy =
                Proxy::start(dl, SocketAddr::from(([127, 0, 0, 1], port)), None, daemon);
            return Victim {
                std: std_proxy,
                daemon: daemon_proxy,
                client,
            };
        }
        panic!("alice's daemon found no free port in 8 tries");
    }
}

struct Victim {
    std: Proxy,
    daemon: Proxy,
    client: ScriptClient,
}

fn pass() -> Tamper {
    Box::new(|_, _| Act::Pass)
}

/// A tamper function acting on one frame (connection 0, `dir`, `index`).
fn at(dir: Dir, index: usize, f: impl Fn(&[u8]) -> Act + Send + 'static) -> Tamper {
    Box::new(move |c: &FrameCtx, frame: &[u8]| {
        if c.conn == 0 && c.dir == dir && c.index == index {
            f(frame)
        } else {
            Act::Pass
        }
    })
}

/// When the standard-channel attack strikes.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// During the login handshake (or on `LoginOk`): the login never completes.
    Login,
    /// On the first transport messages: after `logged_in`, before the daemon is up.
    LoginTransport,
    /// After login and the daemon: the attack hits `/users` or its answer.
    Users,
    /// Right after `logged_in`, `/users` at once (it overtakes a held frame).
    UsersNow,
    /// Anywhere: the login may or may not complete first.
    Any,
}

/// Runs one standard-channel attack on alice and checks the outcome: alice's
/// client reports the connection lost, the server closed its side of the
/// connection, alice is no longer online, and everyone else is fine.
fn std_attack(n: &mut Net, block: u8, what: &str, stage: Stage, tamper: Tamper) {
    std_attack_with(n, block, what, stage, tamper, false)
}

/// [`std_attack`]; `first_genuine`: the attack adds a copy after a genuine
/// frame, which may be answered before the copy is caught.
fn std_attack_with(
    n: &mut Net,
    block: u8,
    what: &str,
    stage: Stage,
    tamper: Tamper,
    first_genuine: bool,
) {
    let mut v = n.victim(block, tamper, pass());
    match stage {
        Stage::Login | Stage::Any => {}
        Stage::UsersNow => {
            v.client.expect("logged_in");
            v.client.send("/users");
        }
        Stage::LoginTransport => {
            v.client.expect("logged_in");
        }
        Stage::Users => {
            v.client.expect("logged_in");
            v.client
                .expect_where("daemon up", |e| e["event"] == "daemon");
            v.client.send("/users");
        }
    }
    let lost = v.client.expect("disconnected");
    if matches!(stage, Stage::Login) {
        assert!(
            !v.client.seen.iter().any(|e| e["event"] == "logged_in"),
            "{what}: logged in through a tampered handshake"
        );
    }
    assert!(
        first_genuine || !v.client.seen.iter().any(|e| e["event"] == "users"),
        "{what}: an answer came through a tampered channel"
    );
    assert!(
        v.client.wait_exit(Duration::from_secs(10)).is_some(),
        "{what}: the client did not exit"
    );
    // The server closed its side (it detected the attack, or saw alice go).
    let closed = adversarial::net::eventually(Duration::from_secs(15), || {
        v.std.conn(0).is_some_and(|c| c.upstream_closed.is_some())
    });
    assert!(
        closed,
        "{what}: the server kept the connection open; alice saw {lost}"
    );
    let online = n.carol.users();
    assert!(
        !online.contains(&"alice".to_string()),
        "{what}: alice still online"
    );
    n.check(what);
}

// ---------------------------------------------------------------- standard channel

/// The standard channel's frames, by direction and index (connection 0 of
/// the standard proxy). The client writes XX message 3 and the
/// post-quantum layer's message 1 at once; the server answers the layer
/// with its message 2 and `LoginOk` at once (`core/src/channel.rs`).
mod std_frame {
    /// Client to server (`Dir::Up`).
    pub mod up {
        /// XX message 1 (`-> e`).
        pub const XX1: usize = 0;
        /// XX message 3 (`-> s, se`, the `ClientHello`).
        pub const XX3: usize = 1;
        /// The post-quantum layer's message 1 (the client's KEM key).
        pub const LAYER1: usize = 2;
        /// `AnnounceDaemon`, sent on `LoginOk`.
        pub const ANNOUNCE: usize = 3;
        /// The next request: `ListUsers` in the tests that ask `/users`.
        pub const LIST_USERS: usize = 4;
    }
    /// Server to client (`Dir::Down`).
    pub mod down {
        /// XX message 2 (`<- e, ee, s, es`, the `ServerHello`).
        pub const XX2: usize = 0;
        /// The post-quantum layer's message 2 (the KEM ciphertext).
        pub const LAYER2: usize = 1;
        /// `LoginOk`, the first message under the layer's keys.
        pub const LOGIN_OK: usize = 2;
        /// `DaemonStatus`, once the server has dialled the daemon.
        pub const DAEMON_STATUS: usize = 3;
        /// `Users`, the answer to `ListUsers` after `DaemonStatus`.
        pub const USERS: usize = 4;
    }
}

use std_frame::{down, up};

/// The frame with the high bit of its length header flipped: a length far
/// over the limit.
fn length_flipped(f: &[u8]) -> Act {
    let mut f = f.to_vec();
    f[0] ^= 0x80;
    Act::Replace(f)
}

/// 11.1: a flipped bit anywhere in the standard channel (each handshake
/// message, the post-quantum layer's included, the first transport message
/// each way, a request after login, and a length header) closes that
/// connection and nothing else.
#[test]
fn flipped_bits_on_the_standard_channel() {
    let mut n = net();
    let cases: [(&str, Stage, Dir, usize, usize); 9] = [
        ("XX1 flipped", Stage::Login, Dir::Up, up::XX1, 5),
        ("XX2 flipped", Stage::Login, Dir::Down, down::XX2, 40),
        ("XX3 flipped", Stage::Login, Dir::Up, up::XX3, 50),
        ("layer 1 flipped", Stage::Login, Dir::Up, up::LAYER1, 600),
        (
            "layer 2 flipped",
            Stage::Login,
            Dir::Down,
            down::LAYER2,
            500,
        ),
        (
            "LoginOk flipped",
            Stage::Login,
            Dir::Down,
            down::LOGIN_OK,
            3,
        ),
        (
            "AnnounceDaemon flipped",
            Stage::LoginTransport,
            Dir::Up,
            up::ANNOUNCE,
            20,
        ),
        (
            "ListUsers flipped",
            Stage::Users,
            Dir::Up,
            up::LIST_USERS,
            0,
        ),
        ("Users flipped", Stage::Users, Dir::Down, down::USERS, 1),
    ];
    for (i, (what, stage, dir, index, byte)) in cases.into_iter().enumerate() {
        let t = at(dir, index, move |f| Act::Replace(flip(f, byte, 3)));
        std_attack(&mut n, 20 + i as u8, what, stage, t);
    }
    // A flipped length header (the high bit: a frame far over the limit).
    let t = at(Dir::Up, up::XX3, length_flipped);
    std_attack(&mut n, 30, "XX3 length flipped", Stage::Login, t);
    let t = at(Dir::Up, up::LAYER1, length_flipped);
    std_attack(&mut n, 31, "layer 1 length flipped", Stage::Login, t);
    let t = at(Dir::Up, up::LIST_USERS, length_flipped);
    std_attack(&mut n, 32, "ListUsers length flipped", Stage::Users, t);
}

/// 11.1: a truncated frame (shorter, with its length fixed) fails to
/// authenticate; a frame cut in the middle and the connection closed is a
/// lost connection. Either way only the victim's connection ends.
#[test]
fn truncated_frames_on_the_standard_channel() {
    let mut n = net();
    let cases: [(&str, Stage, Dir, usize); 6] = [
        ("XX2 truncated", Stage::Login, Dir::Down, down::XX2),
        ("XX3 truncated", Stage::Login, Dir::Up, up::XX3),
        ("layer 1 truncated", Stage::Login, Dir::Up, up::LAYER1),
        ("layer 2 truncated", Stage::Login, Dir::Down, down::LAYER2),
        (
            "AnnounceDaemon truncated",
            Stage::LoginTransport,
            Dir::Up,
            up::ANNOUNCE,
        ),
        ("Users truncated", Stage::Users, Dir::Down, down::USERS),
    ];
    for (i, (what, stage, dir, index)) in cases.into_iter().enumerate() {
        let t = at(dir, index, |f| Act::Replace(shorten(f, 1)));
        std_attack(&mut n, 40 + i as u8, what, stage, t);
    }
    let cut = |f: &[u8]| Act::Cut(f[..f.len() / 2].to_vec());
    let t = at(Dir::Up, up::XX3, cut);
    std_attack(&mut n, 46, "XX3 cut", Stage::Login, t);
    let t = at(Dir::Up, up::LAYER1, cut);
    std_attack(&mut n, 47, "layer 1 cut", Stage::Login, t);
    let t = at(Dir::Up, up::LIST_USERS, cut);
    std_attack(&mut n, 48, "ListUsers cut", Stage::Users, t);
}

/// 11.1: a duplicated frame (a replay within the connection) fails.
///
/// A copy of a handshake message is read as the next message: a copy of
/// XX message 3 as the layer's message 1, a copy of the layer's message 2
/// as `LoginOk`, so in neither case does the login complete. A copy of the layer's message
/// 1 is read after the server has answered it (and sent `LoginOk`): the
/// login may complete before the copy is caught.
#[test]
fn duplicated_frames_on_the_standard_channel() {
    let mut n = net();
    let cases: [(&str, Stage, Dir, usize); 7] = [
        ("XX1 twice", Stage::Login, Dir::Up, up::XX1),
        ("XX3 twice", Stage::Login, Dir::Up, up::XX3),
        ("layer 1 twice", Stage::Any, Dir::Up, up::LAYER1),
        ("layer 2 twice", Stage::Login, Dir::Down, down::LAYER2),
        ("LoginOk twice", Stage::Any, Dir::Down, down::LOGIN_OK),
        ("ListUsers twice", Stage::Users, Dir::Up, up::LIST_USERS),
        ("Users twice", Stage::Users, Dir::Down, down::USERS),
    ];
    for (i, (what, stage, dir, index)) in cases.into_iter().enumerate() {
        let t = at(dir, index, |f| Act::Replace([f, f].concat()));
        std_attack_with(&mut n, 50 + i as u8, what, stage, t, true);
    }
}

/// 11.1: two frames swapped fail (nonces are implicit counters; a
/// handshake message out of turn is read as the one expected).
#[test]
fn reordered_frames_on_the_standard_channel() {
    let mut n = net();
    // Client to server: XX message 3 held back until the layer's message 1,
    // written with it, passes it.
    let t = at(Dir::Up, up::XX3, |_| Act::Hold);
    std_attack(&mut n, 62, "XX3 after layer 1", Stage::Login, t);
    // Server to client: the layer's message 2 held back until LoginOk,
    // written with it, passes it.
    let t = at(Dir::Down, down::LAYER2, |_| Act::Hold);
    std_attack(&mut n, 63, "layer 2 after LoginOk", Stage::Login, t);
    // Client to server: AnnounceDaemon held back until ListUsers passes it.
    let t = at(Dir::Up, up::ANNOUNCE, |_| Act::Hold);
    std_attack(
        &mut n,
        60,
        "AnnounceDaemon after ListUsers",
        Stage::UsersNow,
        t,
    );
    // Server to client: the message after LoginOk held back until the next passes it.
    let t = at(Dir::Down, down::DAEMON_STATUS, |_| Act::Hold);
    std_attack(
        &mut n,
        61,
        "DaemonStatus and Users swapped",
        Stage::UsersNow,
        t,
    );
}

/// 11.1: a whole recorded session (login, list, chat, logout) replayed to
/// the server gets a fresh XX message 2 and is closed at XX message 3: no
/// login, and the real user, logged in meanwhile, is not replaced.
#[test]
fn replayed_session_is_refused() {
    let mut n = net();
    let mut bob = n.bob();
    let mut v = n.victim(70, pass(), pass());
    v.client.expect("logged_in");
    v.client.expect_where("daemon", |e| e["event"] == "daemon");
    open_chat(&mut bob, &mut v.client);
    say(&mut bob, &mut v.client, "hello alice");
    say(&mut v.client, &mut bob, "hello bob");
    v.client.send("/quit");
    v.client.expect("closed");
    let recorded = n
        .victim_record(&v)
        .expect("the proxy recorded alice's session");
    drop(v);
    // alice logs in again for real and stays online.
    let mut alice = login_at(n.server.addr, &n.server.key, &n.alice, "127.0.0.1:0");
    let logins = n.server.log_count("logged in");
    for k in 0..3u32 {
        let mut s =
            adversarial::net::connect_from(source_ip(71, k), n.server.addr, Duration::from_secs(5))
                .expect("connect");
        s.write_all(&recorded).expect("replay");
        let end = wait_end(&mut s, Duration::from_secs(15));
        assert!(
            end.is_closed(),
            "replay {k}: the server kept it open ({end:?})"
        );
        assert_eq!(
            end.bytes(),
            2 + 98,
            "replay {k}: more than XX message 2 came back"
        );
    }
    assert_eq!(
        n.server.log_count("logged in"),
        logins,
        "a replay logged in"
    );
    alice.expect_none(Duration::from_millis(300), |e| e["event"] == "closed");
    assert_eq!(alice.users(), ["alice", "bob", "carol", "dave"]);
    n.check("session replays");
}

impl Net {
    fn victim_record(&self, v: &Victim) -> Option<Vec<u8>> {
        v.std.conn(0).map(|c| c.up)
    }
}

// ---------------------------------------------------------------- request channel

/// The request channel's frames, by direction and index (connection 0 of
/// the daemon proxy, where `Dir::Up` is server → daemon). The layer's
/// messages follow NN message 2, one each way, before `Ready`.
mod req_frame {
    /// Server to daemon (`Dir::Up`).
    pub mod up {
        /// NNpsk0 message 1.
        pub const NN1: usize = 0;
        /// The post-quantum layer's message 1.
        pub const LAYER1: usize = 1;
        /// `Ready`, the first message under the layer's keys.
        pub const READY: usize = 2;
        /// The first `ChatRequest`.
        pub const CHAT_REQUEST: usize = 3;
    }
    /// Daemon to server (`Dir::Down`).
    pub mod down {
        /// NNpsk0 message 2.
        pub const NN2: usize = 0;
        /// The post-quantum layer's message 2.
        pub const LAYER2: usize = 1;
        /// The `Answer` to the first `ChatRequest`.
        pub const ANSWER: usize = 2;
    }
}

/// When a request-channel attack strikes, and what it must lead to.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// During the request channel's handshake (or its `Ready`).
    Open,
    /// On bob's chat request to alice.
    Request,
    /// On alice's answer to bob's request.
    Answer,
}

/// Runs one request-channel attack: the request channel closes, the server
/// tells alice (`daemon` unreachable), no request reaches her, bob's request
/// is refused as unreachable, and alice's session goes on.
fn daemon_attack(n: &mut Net, block: u8, what: &str, trigger: Trigger, tamper: Tamper) {
    let mut bob = n.bob();
    let mut v = n.victim(block, pass(), tamper);
    v.client.expect("logged_in");
    match trigger {
        Trigger::Open => {}
        Trigger::Request => {
            v.client.expect_where("daemon up", |e| {
                e["event"] == "daemon" && e["reachable"] == true
            });
            bob.send("/chat alice");
        }
        Trigger::Answer => {
            v.client.expect_where("daemon up", |e| {
                e["event"] == "daemon" && e["reachable"] == true
            });
            bob.send("/chat alice");
            v.client.expect("chat_request");
            v.client.send("/accept");
        }
    }
    v.client.expect_where("daemon unreachable", |e| {
        e["event"] == "daemon" && e["reachable"] == false
    });
    if !matches!(trigger, Trigger::Open) {
        let r = bob.expect("chat_refused");
        assert_eq!(r["reason"], "unreachable", "{what}: {r}");
    }
    if !matches!(trigger, Trigger::Answer) {
        assert!(
            !v.client.seen.iter().any(|e| e["event"] == "chat_request"),
            "{what}: a request came through a tampered channel"
        );
    }
    assert!(
        !v.client.seen.iter().any(|e| e["event"] == "chat_ready"),
        "{what}: a chat opened"
    );
    // The daemon's side was closed by whoever detected it.
    let closed = adversarial::net::eventually(Duration::from_secs(15), || {
        v.daemon
            .conn(0)
            .is_some_and(|c| c.upstream_closed.is_some() || c.client_closed.is_some())
    });
    assert!(closed, "{what}: the request channel stayed open");
    // alice's session goes on; she can still chat by asking herself.
    assert_eq!(v.client.users(), ["alice", "bob", "carol", "dave"]);
    v.client.send("/chat bob");
    bob.expect("chat_request");
    bob.send("/accept");
    v.client.expect("chat_ready");
    say(&mut v.client, &mut bob, &format!("after {what}"));
    drop(v);
    n.check(what);
}

/// 11.1 / 11.6: flipped bits on the request channel: NN message 1, NN
/// message 2, the layer's two messages, `Ready`, a `ChatRequest`, an
/// `Answer`.
#[test]
fn flipped_bits_on_the_request_channel() {
    // The request channel's frames (these shadow the standard channel's).
    use req_frame::{down, up};
    let mut n = net();
    // In the daemon proxy, `Up` is server → daemon and `Down` daemon → server.
    let cases: [(&str, Trigger, Dir, usize, usize); 7] = [
        ("NN1 flipped", Trigger::Open, Dir::Up, up::NN1, 7),
        ("NN2 flipped", Trigger::Open, Dir::Down, down::NN2, 33),
        ("layer 1 flipped", Trigger::Open, Dir::Up, up::LAYER1, 600),
        (
            "layer 2 flipped",
            Trigger::Open,
            Dir::Down,
            down::LAYER2,
            500,
        ),
        ("Ready flipped", Trigger::Open, Dir::Up, up::READY, 0),
        (
            "ChatRequest flipped",
            Trigger::Request,
            Dir::Up,
            up::CHAT_REQUEST,
            10,
        ),
        (
            "Answer flipped",
            Trigger::Answer,
            Dir::Down,
            down::ANSWER,
            1,
        ),
    ];
    for (i, (what, trigger, dir, index, byte)) in cases.into_iter().enumerate() {
        let t = at(dir, index, move |f| Act::Replace(flip(f, byte, 5)));
        daemon_attack(&mut n, 80 + i as u8, what, trigger, t);
    }
}

/// 11.1: truncated, duplicated and reordered frames on the request channel.
#[test]
fn truncated_duplicated_reordered_request_channel() {
    // The request channel's frames (these shadow the standard channel's).
    use req_frame::{down, up};
    let mut n = net();
    let t = at(Dir::Up, up::NN1, |f| Act::Replace(shorten(f, 1)));
    daemon_attack(&mut n, 90, "NN1 truncated", Trigger::Open, t);
    let t = at(Dir::Up, up::LAYER1, |f| Act::Replace(shorten(f, 1)));
    daemon_attack(&mut n, 95, "layer 1 truncated", Trigger::Open, t);
    let t = at(Dir::Down, down::LAYER2, |f| Act::Replace(shorten(f, 1)));
    daemon_attack(&mut n, 96, "layer 2 truncated", Trigger::Open, t);
    let t = at(Dir::Up, up::CHAT_REQUEST, |f| {
        Act::Cut(f[..f.len() / 2].to_vec())
    });
    daemon_attack(&mut n, 91, "ChatRequest cut", Trigger::Request, t);
    // A copy of the layer's message 1 is read by the daemon as `Ready`, a
    // copy of its message 2 by the server as the first message after it.
    let t = at(Dir::Up, up::LAYER1, |f| Act::Replace([f, f].concat()));
    daemon_attack(&mut n, 97, "layer 1 twice", Trigger::Open, t);
    let t = at(Dir::Down, down::LAYER2, |f| Act::Replace([f, f].concat()));
    daemon_attack(&mut n, 98, "layer 2 twice", Trigger::Open, t);
    let t = at(Dir::Up, up::READY, |f| Act::Replace([f, f].concat()));
    daemon_attack(&mut n, 92, "Ready twice", Trigger::Open, t);
    // An answer twice: the first copy is genuine and starts the chat; the copy
    // closes the request channel. alice's client drops an accepted request
    // whose link closed, so depending on which alice learns first the chat
    // opens, or is started and ended at once (8.6). Either way nothing
    // inconsistent remains: both can chat right after.
    let mut bob = n.bob();
    let t = at(Dir::Down, down::ANSWER, |f| Act::Replace([f, f].concat()));
    let mut v = n.victim(93, pass(), t);
    v.client.expect("logged_in");
    v.client.expect_where("daemon up", |e| {
        e["event"] == "daemon" && e["reachable"] == true
    });
    bob.send("/chat alice");
    v.client.expect("chat_request");
    v.client.send("/accept");
    let r = bob.expect_where("chat outcome", |e| {
        e["event"] == "chat_ready" || e["event"] == "chat_ended" || e["event"] == "chat_refused"
    });
    v.client.expect_where("daemon unreachable", |e| {
        e["event"] == "daemon" && e["reachable"] == false
    });
    if r["event"] == "chat_ready" {
        v.client.expect("chat_ready");
        say(&mut bob, &mut v.client, "the chat is fine");
        say(&mut v.client, &mut bob, "it is");
    } else {
        v.client.send("/chat bob");
        bob.expect("chat_request");
        bob.send("/accept");
        v.client.expect("chat_ready");
        say(&mut v.client, &mut bob, "a new chat is fine");
    }
    drop(v);
    drop(bob);
    n.check("Answer twice");
    // Ready held back until the ChatRequest passes it.
    let t = at(Dir::Up, up::READY, |_| Act::Hold);
    daemon_attack(&mut n, 94, "Ready after ChatRequest", Trigger::Request, t);
}

/// 11.1 / 11.6: the request channel recorded by the attacker and replayed
/// to the daemon (same login: NN message 1 passes, nothing after it does)
/// delivers nothing.
#[test]
fn replayed_request_channel_delivers_nothing() {
    let mut n = net();
    let mut bob = n.bob();
    let mut v = n.victim(100, pass(), pass());
    v.client.expect("logged_in");
    v.client.expect_where("daemon up", |e| {
        e["event"] == "daemon" && e["reachable"] == true
    });
    bob.send("/chat alice");
    v.client.expect("chat_request");
    v.client.send("/refuse");
    bob.expect("chat_refused");
    let recorded = v.daemon.conn(0).expect("recorded").up;
    let daemon = v.client.daemon_addr();
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(daemon).expect("connect");
        s.write_all(&recorded).expect("replay");
        let end = wait_end(&mut s, Duration::from_secs(15));
        assert!(end.is_closed(), "the daemon kept a replayed link: {end:?}");
        assert!(end.bytes() <= 50, "more than NN message 2: {end:?}");
    }
    v.client.expect_none(Duration::from_millis(500), |e| {
        e["event"] == "chat_request" || e["event"] == "request_withdrawn"
    });
    // Untouched: the real request channel still delivers.
    bob.send("/chat alice");
    v.client.expect("chat_request");
    v.client.send("/accept");
    bob.expect("chat_ready");
    say(&mut bob, &mut v.client, "still real");
    drop(v);
    n.check("request channel replays");
}

// ---------------------------------------------------------------- a thief of a client's key

/// 11.4: a thief of alice's key can log in as alice, which closes alice's
/// session with `Replaced` (the visible sign); but the thief cannot use a
/// recorded session: the server's recorded XX message 2 does not decrypt for
/// a new handshake with alice's key (the session keys came from ephemerals
/// the thief never had).
#[test]
fn stolen_client_key_takes_over_visibly_but_not_the_past() {
    let mut n = net();
    let mut bob = n.bob();
    let mut v = n.victim(110, pass(), pass());
    v.client.expect("logged_in");
    v.client.expect_where("daemon", |e| e["event"] == "daemon");
    open_chat(&mut v.client, &mut bob);
    say(&mut v.client, &mut bob, "our secret plan");
    let past = v.std.conn(0).expect("recorded").down;

    // The recorded server side, fed to a fresh client holding alice's key.
    let mut rng = os_rng();
    let mut c = Client::<securecom_core::RustCrypto>::new(
        ClientConfig {
            user: UserName::try_from("alice").expect("name"),
            server_key: n.server.key,
            daemon_port: None,
            limits: Limits::DEFAULT,
        },
        n.alice.secret.clone(),
        now(),
        &mut rng,
    )
    .expect("client");
    let mut fed = 0;
    let r = loop {
        match c.handle_input(now(), &past[fed..], &mut rng) {
            Ok(0) => break Ok(()),
            Ok(k) => fed += k,
            Err(e) => break Err(e),
        }
        if fed >= past.len() {
            break Ok(());
        }
    };
    assert!(
        r.is_err(),
        "a recorded session decrypted with only the static key"
    );
    assert!(
        !std::iter::from_fn(|| c.poll_event()).any(|e| matches!(
            e,
            ClientEvent::LoggedIn { .. } | ClientEvent::ChatMessage { .. }
        )),
        "the thief read the recorded session"
    );

    // The thief logs in as alice: alice is told at once.
    let t = Instant::now();
    let (thief, _) = CorePeer::login(
        n.server.addr,
        Some(IpAddr::from([127, 111, 0, 1])),
        n.server.key,
        "alice",
        &n.alice.secret,
        None,
        Duration::from_secs(15),
    )
    .expect("the thief logs in with the stolen key");
    let closed = v.client.expect("closed");
    assert_eq!(closed["reason"], "replaced");
    bob.expect_where("ended by the server", |e| {
        e["event"] == "chat_ended" && e["reason"] == "ended_by_server"
    });
    println!("takeover noticed after {:?}", t.elapsed());
    drop(thief);
    drop(v);
    n.check("key theft");
}
