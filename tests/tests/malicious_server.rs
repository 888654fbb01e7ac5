//! A malicious (or curious) server, and a thief of the server's key, against
//! real `securecom-client` processes.
//!
//! The server is built from the project's own parts (`ServerSession` per
//! client, routing written in `adversarial::evil` with hooks): it follows the
//! protocol where it must for the clients to talk to it, and cheats where a
//! server can. Each test is one attack and checks the claim of
//! docs/PROTOCOL.md section 11.3 (and 11.2, 11.5, 11.6) that it challenges;
//! docs/SECURITY.md maps the threat model to these tests.

mod adversarial;

use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adversarial::evil::{Deliver, EvilServer, Policy, RelayCtx};
use adversarial::net::{wait_end, Ending};
use adversarial::peer::CorePeer;
use adversarial::procs::{
    honest_safety_number, is_chat_failed, login_at, open_chat, say, RealServer, ScriptClient,
    TestUser,
};
use securecom_core::chat::{ChatText, E2eChat, Received};
use securecom_core::message::LoginError;
use securecom_core::noise::{
    Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, REQUEST_PROLOGUE,
};
use securecom_core::server::RelayKind;
use securecom_core::{ClientEvent, Limits, StaticSecret, UserName};
use securecom_host::{now, os_rng};
use securecom_tests::Value;

struct World {
    _dir: tempfile::TempDir,
    alice: TestUser,
    bob: TestUser,
    server: EvilServer,
}

/// A malicious server with `alice` and `bob` registered.
fn world(policy: Policy) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let key = StaticSecret::generate(&mut os_rng());
    let server = EvilServer::start(key, &[("alice", alice.public), ("bob", bob.public)], policy);
    World {
        _dir: dir,
        alice,
        bob,
        server,
    }
}

fn login(server: &EvilServer, user: &TestUser) -> ScriptClient {
    login_at(server.addr, &server.key, user, "127.0.0.1:0")
}

/// The `message` texts a client received so far.
fn texts(c: &ScriptClient) -> Vec<String> {
    c.seen
        .iter()
        .filter(|v| v["event"] == "message")
        .filter_map(|v| v["text"].as_str().map(String::from))
        .collect()
}

/// A relay hook that applies `f` to alice's chat data and passes the rest.
fn on_alice_data(mut f: impl FnMut(usize, &[u8]) -> Vec<Vec<u8>> + Send + 'static) -> Policy {
    Policy {
        relay: Some(Box::new(move |ctx: &RelayCtx, bytes: &[u8]| {
            if ctx.from == "alice" && ctx.kind == RelayKind::Data {
                f(ctx.index, bytes)
                    .into_iter()
                    .map(|b| Deliver::ToPeer(RelayKind::Data, b))
                    .collect()
            } else {
                vec![Deliver::ToPeer(ctx.kind, bytes.to_vec())]
            }
        })),
        ..Policy::default()
    }
}

/// alice and bob open a chat; alice sends `lines`; returns once bob's chat
/// ended or all lines arrived. Checks what the E2E layer promises: bob sees
/// exactly `expect_delivered` (a prefix of the lines), and the chat fails
/// for bob if `expect_failure`.
fn chat_under_attack(
    w: &World,
    lines: &[&str],
    expect_delivered: &[&str],
    expect_failure: bool,
) -> (ScriptClient, ScriptClient) {
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    open_chat(&mut alice, &mut bob);
    // Bob's client left after the failure without a close it could trust:
    // alice hears it from the server.
    let peer_left = |v: &Value| v["event"] == "chat_ended" && v["reason"] == "ended_by_server";
    for line in lines {
        alice.send(line);
        // "sent", or an error once the chat was ended by the attack.
        alice.expect_where("sent", |v| v["event"] == "sent" || v["event"] == "error");
    }
    if expect_failure {
        let end = bob.expect_where("chat_ended", |v| v["event"] == "chat_ended");
        assert!(is_chat_failed(&end), "bob: {end}");
        // bob's client left the chat: alice is told, and the session goes on.
        if !alice.seen.iter().any(peer_left) {
            alice.expect_where("peer left", peer_left);
        }
    }
    bob.drain(Duration::from_millis(300));
    assert_eq!(
        texts(&bob),
        expect_delivered,
        "bob was shown text that alice did not send in this order; bob: {:?}\nalice: {:?}",
        bob.seen,
        alice.seen
    );
    // Both sessions survive: only the chat ended.
    assert_eq!(alice.users(), ["alice", "bob"]);
    assert_eq!(bob.users(), ["alice", "bob"]);
    (alice, bob)
}

// ---------------------------------------------------------------- reading

/// 11.2: the server relays, records everything, and still cannot read chat
/// text: neither the relayed E2E messages nor any byte it received contain
/// it. What it does learn is the length (no padding), exactly as documented.
#[test]
fn curious_server_sees_only_ciphertext_and_lengths() {
    let w = world(Policy::default());
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    let (ra, rb) = open_chat(&mut alice, &mut bob);
    // Honest relay: the safety numbers agree and are the honest ones.
    let honest = honest_safety_number(&w.alice, &w.bob);
    assert_eq!(ra["safety_number"], honest.as_str());
    assert_eq!(rb["safety_number"], honest.as_str());
    let secrets = [
        "attack at dawn 4f1c",
        "attack at dawn 4f1c",
        "the vault code is 77-31-09",
    ];
    say(&mut alice, &mut bob, secrets[0]);
    say(&mut bob, &mut alice, secrets[1]);
    say(&mut alice, &mut bob, secrets[2]);

    let (relayed, wire) = w.server.record(|r| (r.relayed.clone(), r.wire_in.clone()));
    let data: Vec<&(RelayCtx, Vec<u8>)> = relayed
        .iter()
        .filter(|(c, _)| c.kind == RelayKind::Data)
        .collect();
    assert_eq!(data.len(), 3, "three chat messages relayed");
    for s in secrets {
        for needle in [s.as_bytes(), &s.as_bytes()[..8]] {
            assert!(!contains(&wire, needle), "chat text on the wire");
            for (_, bytes) in &relayed {
                assert!(!contains(bytes, needle), "chat text in a relayed message");
            }
        }
    }
    // The same text twice gives unrelated ciphertexts (fresh nonce, other direction key).
    assert_ne!(data[0].1, data[1].1);
    // Documented leak: the length. noise = 16 (tag) + 1 (variant) +
    // varint(received) + varint(t) + t; here every count is below 128.
    for ((_, bytes), s) in data.iter().map(|d| (&d.0, &d.1)).zip(secrets) {
        assert_eq!(bytes.len(), 16 + 1 + 1 + 1 + s.len());
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------- tampering with relayed messages

/// 11.3 / 4.6: a changed chat message (one bit of its ciphertext) fails to
/// authenticate: the chat ends, the altered text is never shown.
#[test]
fn changed_chat_message_ends_the_chat() {
    let w = world(on_alice_data(|i, b| {
        let mut b = b.to_vec();
        if i == 1 {
            b[3] ^= 0x01;
        }
        vec![b]
    }));
    chat_under_attack(&w, &["first", "second", "third"], &["first"], true);
}

/// 4.6: a replayed chat message (an earlier one delivered again) fails.
#[test]
fn replayed_chat_message_ends_the_chat() {
    let first = Arc::new(Mutex::new(Vec::new()));
    let w = world(on_alice_data(move |i, b| {
        let mut f = first.lock().expect("lock");
        match i {
            0 => {
                *f = b.to_vec();
                vec![b.to_vec()]
            }
            1 => vec![b.to_vec(), f.clone()],
            _ => vec![b.to_vec()],
        }
    }));
    chat_under_attack(
        &w,
        &["first", "second", "third"],
        &["first", "second"],
        true,
    );
}

/// 4.6: two chat messages delivered in the wrong order: the first one out of
/// order fails, nothing after it is shown.
#[test]
fn reordered_chat_messages_end_the_chat() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let w = world(on_alice_data(move |i, b| {
        let mut h = held.lock().expect("lock");
        match i {
            1 => {
                *h = b.to_vec();
                vec![]
            }
            2 => vec![b.to_vec(), h.clone()],
            _ => vec![b.to_vec()],
        }
    }));
    chat_under_attack(&w, &["first", "second", "third"], &["first"], true);
}

/// 4.6: a dropped chat message makes the next one fail.
#[test]
fn dropped_chat_message_ends_the_chat() {
    let w = world(on_alice_data(|i, b| {
        if i == 1 {
            vec![]
        } else {
            vec![b.to_vec()]
        }
    }));
    chat_under_attack(&w, &["first", "second", "third"], &["first"], true);
}

/// 4.6: a message injected by the server (it has no chat key) fails.
#[test]
fn injected_chat_message_ends_the_chat() {
    let w = world(on_alice_data(|i, b| {
        if i == 1 {
            // A forgery of the right length, then the real message.
            let forged: Vec<u8> = b
                .iter()
                .map(|x| x.wrapping_mul(31).wrapping_add(7))
                .collect();
            vec![forged, b.to_vec()]
        } else {
            vec![b.to_vec()]
        }
    }));
    chat_under_attack(&w, &["first", "second"], &["first"], true);
}

/// 8.4: a handshake message injected into an open chat (a replay of alice's
/// KK message 1, as if she restarted the chat) ends it.
#[test]
fn injected_handshake_into_an_open_chat_ends_it() {
    let kk1 = Arc::new(Mutex::new(Vec::new()));
    let w = world(Policy {
        relay: Some(Box::new(move |ctx: &RelayCtx, b: &[u8]| {
            let mut k = kk1.lock().expect("lock");
            if ctx.from == "alice" && ctx.kind == RelayKind::Handshake && ctx.index == 0 {
                *k = b.to_vec();
            }
            let mut out = vec![Deliver::ToPeer(ctx.kind, b.to_vec())];
            if ctx.from == "alice" && ctx.kind == RelayKind::Data && ctx.index == 1 {
                out.insert(0, Deliver::ToPeer(RelayKind::Handshake, k.clone()));
            }
            out
        })),
        ..Policy::default()
    });
    chat_under_attack(&w, &["first", "second"], &["first"], true);
}

/// 11.3 (issue 11): a server that drops the end of a chat and then says the
/// peer left cannot make it look complete. It passes alice's first text and
/// bob's answer, drops alice's next two texts and her end-to-end close, and
/// routes her `LeaveChat` honestly: bob is told that the server, not alice,
/// ended the chat, and how many of his own messages alice never confirmed.
#[test]
fn truncated_chat_is_shown_as_ended_by_the_server() {
    let w = world(on_alice_data(|i, b| {
        if i == 0 {
            vec![b.to_vec()]
        } else {
            vec![]
        }
    }));
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "one");
    say(&mut bob, &mut alice, "got one");
    for line in ["two", "three"] {
        alice.send(line);
        alice.expect("sent");
    }
    alice.send("/leave");
    alice.expect_where("left", |v| {
        v["event"] == "chat_ended" && v["reason"] == "left"
    });
    let end = bob.expect_where("chat_ended", |v| v["event"] == "chat_ended");
    assert_eq!(end["reason"], "ended_by_server", "bob: {end}");
    // "got one" was acknowledged only by the dropped "two".
    assert_eq!(end["undelivered"], 1, "bob: {end}");
    assert_eq!(texts(&bob), ["one"]);
    // The honest run, for contrast: alice's close arrives and says all is well.
    let w = world(Policy::default());
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "one");
    say(&mut bob, &mut alice, "got one");
    alice.send("/leave");
    let end = bob.expect_where("chat_ended", |v| v["event"] == "chat_ended");
    assert_eq!(end["reason"], "peer_closed", "bob: {end}");
    assert_eq!(end["undelivered"], 0, "bob: {end}");
}

// ---------------------------------------------------------------- the key directory

/// 11.3: the server gives the requester its own key instead of the peer's.
/// Without the peer's private key it cannot complete KK with alice, and
/// bob's side (given the true key) rejects alice's handshake: no chat opens,
/// no safety number is ever shown.
#[test]
fn substituted_key_towards_the_requester_fails_the_chat() {
    let mallory = StaticSecret::generate(&mut os_rng());
    let w = world(Policy {
        key_to_requester: Some(mallory.public_key()),
        ..Policy::default()
    });
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    alice.send("/chat bob");
    let req = bob.expect("chat_request");
    assert_eq!(
        req["fingerprint"],
        w.alice.public.fingerprint().to_string().as_str()
    );
    bob.send("/accept");
    let end = bob.expect_where("chat_ended", |v| v["event"] == "chat_ended");
    assert!(is_chat_failed(&end), "bob: {end}");
    let end = alice.expect_where("chat_ended", |v| v["event"] == "chat_ended");
    assert_eq!(end["reason"], "peer_left", "alice: {end}");
    for c in [&alice, &bob] {
        assert!(
            !c.seen.iter().any(|v| v["event"] == "chat_ready"),
            "{}: a chat opened with a substituted key",
            c.name
        );
    }
}

/// 11.3: the server gives the responder its own key as the requester's: the
/// fingerprint bob is shown is not alice's, and alice's real handshake fails
/// against it.
#[test]
fn substituted_key_towards_the_responder_fails_the_chat() {
    let mallory = StaticSecret::generate(&mut os_rng());
    let w = world(Policy {
        key_to_responder: Some(mallory.public_key()),
        ..Policy::default()
    });
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    alice.send("/chat bob");
    let req = bob.expect("chat_request");
    assert_eq!(
        req["fingerprint"],
        mallory.public_key().fingerprint().to_string().as_str(),
        "bob is shown the key the server chose"
    );
    assert_ne!(
        req["fingerprint"],
        w.alice.public.fingerprint().to_string().as_str()
    );
    bob.send("/accept");
    let end = bob.expect_where("chat_ended", |v| v["event"] == "chat_ended");
    assert!(is_chat_failed(&end), "bob: {end}");
    assert!(!bob.seen.iter().any(|v| v["event"] == "chat_ready"));
    let end = alice.expect_where("chat_ended", |v| v["event"] == "chat_ended");
    assert_eq!(end["reason"], "peer_left");
    assert!(!alice.seen.iter().any(|v| v["event"] == "chat_ready"));
}

/// 11.3, the documented limit: a server that substitutes both keys and runs
/// a KK handshake with each side reads and rewrites the chat. The only
/// defence is the safety number: alice's and bob's differ from each other
/// and from the honest one, and each sees a fingerprint that is not the
/// peer's. (Users who do not compare are not protected, as documented.)
#[test]
fn full_key_substitution_is_shown_by_the_safety_numbers() {
    let mallory = StaticSecret::generate(&mut os_rng());
    let m_pub = mallory.public_key();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice_u = TestUser::new(dir.path(), "alice");
    let bob_u = TestUser::new(dir.path(), "bob");
    let (a_pub, b_pub) = (alice_u.public, bob_u.public);
    let read_by_server: Arc<Mutex<Vec<String>>> = Arc::default();
    let read = read_by_server.clone();
    // Set when the server's chat with bob is open too: bob's client is
    // ready as it sends its last handshake message, which the server reads
    // a moment later (on bob's session, while alice's may already relay).
    let bob_leg_open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bob_open = bob_leg_open.clone();
    // The server's two chats: toward alice it plays bob, toward bob it plays alice.
    let mut to_alice: Option<E2eChat> = None;
    let mut to_bob: Option<E2eChat> = None;
    let mut rng = os_rng();
    let hook = move |ctx: &RelayCtx, b: &[u8]| -> Vec<Deliver> {
        let name = |s: &str| UserName::try_from(s).expect("name");
        let mut out = Vec::new();
        let mut buf = [0u8; securecom_core::MAX_E2E_MESSAGE];
        let mut msg = b.to_vec();
        match (ctx.from.as_str(), ctx.kind) {
            // Alice's later handshake messages (the post-quantum layer's):
            // answered by the server's chat with her.
            ("alice", RelayKind::Handshake) if to_alice.is_some() => {
                let a = to_alice.as_mut().expect("chat with alice");
                a.read_handshake(now(), &mut msg)
                    .expect("alice's layer message");
                if let Some(n) = a.write_handshake(now(), &mut buf).expect("to alice") {
                    out.push(Deliver::ToSender(RelayKind::Handshake, buf[..n].to_vec()));
                }
            }
            ("alice", RelayKind::Handshake) => {
                let mut a = E2eChat::new(
                    ctx.chat_id,
                    &mallory,
                    "bob",
                    name("alice"),
                    a_pub,
                    false,
                    Limits::DEFAULT,
                    now(),
                    &mut rng,
                )
                .expect("chat");
                a.read_handshake(now(), &mut msg)
                    .expect("alice's KK1 is for the server's key");
                let n = a
                    .write_handshake(now(), &mut buf)
                    .expect("kk2")
                    .expect("kk2");
                out.push(Deliver::ToSender(RelayKind::Handshake, buf[..n].to_vec()));
                to_alice = Some(a);
                let mut c = E2eChat::new(
                    ctx.chat_id,
                    &mallory,
                    "alice",
                    name("bob"),
                    b_pub,
                    true,
                    Limits::DEFAULT,
                    now(),
                    &mut rng,
                )
                .expect("chat");
                let n = c
                    .write_handshake(now(), &mut buf)
                    .expect("kk1")
                    .expect("kk1");
                out.push(Deliver::ToPeer(RelayKind::Handshake, buf[..n].to_vec()));
                to_bob = Some(c);
            }
            (_, RelayKind::Handshake) => {
                let c = to_bob.as_mut().expect("chat with bob");
                c.read_handshake(now(), &mut msg)
                    .expect("bob's handshake message");
                if let Some(n) = c.write_handshake(now(), &mut buf).expect("to bob") {
                    out.push(Deliver::ToSender(RelayKind::Handshake, buf[..n].to_vec()));
                }
                if c.is_open() {
                    bob_open.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            (from, RelayKind::Data) => {
                let (src, dst) = if from == "alice" {
                    (to_alice.as_mut(), to_bob.as_mut())
                } else {
                    (to_bob.as_mut(), to_alice.as_mut())
                };
                let (src, dst) = (src.expect("chat"), dst.expect("chat"));
                let mut text = ChatText::new();
                let got = src
                    .decrypt(
                        securecom_core::Instant::ZERO,
                        b,
                        &mut text,
                        &mut securecom_core::noise::NoInternalRng,
                    )
                    .expect("the server reads the text");
                let n = if got == Received::Text {
                    read.lock().expect("lock").push(text.to_string());
                    let forged = text.replace("noon", "midnight");
                    dst.encrypt_text(&forged, &mut buf).expect("re-encrypt")
                } else {
                    // A close: passed on as one, so that nobody notices.
                    dst.encrypt_close(&mut buf)
                        .expect("re-encrypt")
                        .expect("open")
                };
                out.push(Deliver::ToPeer(RelayKind::Data, buf[..n].to_vec()));
            }
        }
        out
    };
    let server = EvilServer::start(
        StaticSecret::generate(&mut os_rng()),
        &[("alice", a_pub), ("bob", b_pub)],
        Policy {
            relay: Some(Box::new(hook)),
            key_to_requester: Some(m_pub),
            key_to_responder: Some(m_pub),
            ..Policy::default()
        },
    );
    let mut alice = login(&server, &alice_u);
    let mut bob = login(&server, &bob_u);
    let (ra, rb) = open_chat(&mut alice, &mut bob);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !bob_leg_open.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < end,
            "the server's chat with bob never opened"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    // The attack works: text is read and changed in transit...
    alice.send("meet at noon");
    let m = bob.expect("message");
    assert_eq!(m["text"], "meet at midnight");
    say(&mut bob, &mut alice, "ok");
    assert_eq!(
        *read_by_server.lock().expect("lock"),
        ["meet at noon", "ok"]
    );
    // ...and it shows: the safety numbers differ between the two users and
    // from the honest one, and each sees a fingerprint that is not the peer's.
    let honest = honest_safety_number(&alice_u, &bob_u);
    let (sa, sb) = (&ra["safety_number"], &rb["safety_number"]);
    assert_ne!(sa, sb, "the users would see a mismatch");
    assert_ne!(sa, &Value::from(honest.clone()));
    assert_ne!(sb, &Value::from(honest));
    let fp = |k: &securecom_core::PublicKey| Value::from(k.fingerprint().to_string());
    assert_eq!(ra["fingerprint"], fp(&m_pub));
    assert_ne!(ra["fingerprint"], fp(&b_pub));
    assert_eq!(rb["fingerprint"], fp(&m_pub));
    assert_ne!(rb["fingerprint"], fp(&a_pub));
}

// ---------------------------------------------------------------- the request channel

/// 11.6: bytes a server sent on a request channel, replayed to a daemon, are
/// refused: to the daemon of a later login (other PSK: NN message 1 fails) and
/// to the daemon of the same login (same PSK: message 1 passes, but the
/// replayed `Ready` and `ChatRequest` do not authenticate). No `chat_request`
/// event, and the client's state is untouched: a real request still works.
#[test]
fn replayed_request_channel_is_ignored() {
    let w = world(Policy::default());
    let mut bob = login(&w.server, &w.bob);

    // Session 1: bob asks alice; alice refuses. Everything sent to her daemon is recorded.
    let mut alice = login(&w.server, &w.alice);
    bob.send("/chat alice");
    alice.expect("chat_request");
    alice.send("/refuse");
    bob.expect("chat_refused");
    let old = daemon_bytes(&w.server, 0);
    assert!(
        old.len() > 48 + 2,
        "NN1, Ready and the ChatRequest recorded"
    );
    alice.send("/quit");
    alice.expect("closed");

    // Session 2: a new login, a new daemon.
    let mut alice = login(&w.server, &w.alice);
    let daemon = alice.daemon_addr();
    // Replay of session 1's request channel: refused at NN message 1.
    let ending = replay(daemon, &old);
    assert_eq!(
        ending,
        Ending::Closed(0),
        "daemon answered an old NN message 1"
    );
    // Session 2's own request channel: bob asks again, alice refuses; replay it.
    bob.send("/chat alice");
    alice.expect("chat_request");
    alice.send("/refuse");
    bob.expect("chat_refused");
    let current = daemon_bytes(&w.server, 1);
    let ending = replay(daemon, &current);
    assert!(ending.is_closed(), "the daemon keeps a replayed link open");
    assert!(
        ending.bytes() <= 50,
        "the daemon sent more than NN message 2 ({} bytes)",
        ending.bytes()
    );
    alice.expect_none(Duration::from_millis(500), |v| {
        v["event"] == "chat_request" || v["event"] == "request_withdrawn"
    });
    // Untouched: a real request is delivered, accepted, and the chat works.
    let (ra, rb) = open_chat(&mut bob, &mut alice);
    assert_eq!(ra["safety_number"], rb["safety_number"]);
    say(&mut bob, &mut alice, "after the replays");
}

/// The bytes the server wrote on the `i`-th request channel it opened to alice.
fn daemon_bytes(server: &EvilServer, i: usize) -> Vec<u8> {
    server.record(|r| {
        r.daemon_out
            .iter()
            .filter(|(u, _)| u == "alice")
            .nth(i)
            .map(|(_, b)| b.clone())
            .expect("a request channel to alice")
    })
}

/// Connects to `daemon`, writes `bytes`, and says how the daemon ended it.
fn replay(daemon: std::net::SocketAddr, bytes: &[u8]) -> Ending {
    let mut s = TcpStream::connect(daemon).expect("connect to the daemon");
    use std::io::Write;
    s.write_all(bytes).expect("replay");
    let e = wait_end(&mut s, Duration::from_secs(15));
    let _ = s.shutdown(Shutdown::Both);
    e
}

/// 11.6: a request channel opened without the one-time secret (NNpsk0 with
/// any other PSK) is refused at its first message: the daemon answers
/// nothing, closes, and the client shows nothing.
#[test]
fn request_channel_without_the_secret_is_refused() {
    let w = world(Policy::default());
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    let daemon = alice.daemon_addr();
    let mut rng = os_rng();
    for attempt in 0..3u8 {
        let psk = Psk::from_bytes([attempt.wrapping_mul(85); 32]);
        let mut hs = Handshake::<securecom_core::RustCrypto>::new(
            HandshakeParams {
                pattern: Pattern::NNpsk0,
                initiator: true,
                prologue: REQUEST_PROLOGUE,
                local_static: None,
                remote_static: None,
                psk: Some(&psk),
                check: RemoteCheck::Any,
            },
            &mut rng,
        )
        .expect("handshake");
        let mut nn1 = [0u8; 64];
        let n = hs.write_message(&[], &mut nn1).expect("NN1");
        let ending = replay(daemon, &adversarial::net::frame(&nn1[..n]));
        assert_eq!(ending, Ending::Closed(0), "attempt {attempt}: {ending:?}");
    }
    alice.expect_none(Duration::from_millis(500), |v| {
        v["event"] == "chat_request" || v["event"] == "daemon"
    });
    let (ra, rb) = open_chat(&mut bob, &mut alice);
    assert_eq!(ra["safety_number"], rb["safety_number"]);
}

// ---------------------------------------------------------------- the server's key stolen

/// 11.5: with the real server's private key, a fake server is accepted by
/// clients that pin that key (it can impersonate the server)...
/// but it cannot log in to the real server as the users it captured: it
/// lacks their keys, and its own key is refused for their names.
#[test]
fn stolen_server_key_impersonates_but_cannot_log_in_as_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let real = RealServer::start(dir.path(), &[("alice", alice.public)], "info", &[]);
    let stolen = real.secret();
    assert_eq!(stolen.public_key(), real.key);
    let fake = EvilServer::start(stolen, &[("alice", alice.public)], Policy::default());
    // alice, pinning the real server's key, logs in to the fake one.
    let mut captured = login_at(fake.addr, &real.key, &alice, "127.0.0.1:0");
    assert_eq!(captured.users(), ["alice"]);
    assert_eq!(fake.online(), ["alice"]);
    // The fake server tries to reach the real one on alice's behalf.
    let thief_identity = StaticSecret::generate(&mut os_rng());
    let mut p = CorePeer::connect(
        real.addr,
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        real.key,
        "alice",
        &thief_identity,
        None,
    )
    .expect("connect");
    let e = p
        .wait_for("login result", Duration::from_secs(15), |e| {
            matches!(
                e,
                ClientEvent::LoginRefused(_) | ClientEvent::LoggedIn { .. }
            )
        })
        .expect("an answer");
    assert_eq!(e, ClientEvent::LoginRefused(LoginError::NotAuthorized));
}

/// Known peers (trust on first use) against a server that turns malicious
/// later: after an honest chat, a substituted key is flagged at once
/// (`key_changed`, old and new fingerprints) and the request cannot be
/// accepted, so no chat opens with the server's key.
#[test]
fn known_peers_flag_a_later_key_substitution() {
    let w = world(Policy::default());
    let mut alice = login(&w.server, &w.alice);
    let mut bob = login(&w.server, &w.bob);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "an honest chat first");
    alice.send("/leave");
    bob.expect_where("peer closed", |v| {
        v["event"] == "chat_ended" && v["reason"] == "peer_closed" && v["undelivered"] == 0
    });
    let mallory = StaticSecret::generate(&mut os_rng());
    let m = mallory.public_key();
    w.server.policy(|p| {
        p.key_to_requester = Some(m);
        p.key_to_responder = Some(m);
    });
    alice.send("/chat bob");
    let changed = bob.expect("key_changed");
    assert_eq!(changed["user"], "alice");
    assert_eq!(
        changed["old_fingerprint"],
        w.alice.public.fingerprint().to_string().as_str()
    );
    assert_eq!(
        changed["new_fingerprint"],
        m.fingerprint().to_string().as_str()
    );
    bob.send("/accept");
    bob.expect_none(Duration::from_secs(2), |v| v["event"] == "chat_ready");
    alice.expect_none(Duration::from_millis(200), |v| v["event"] == "chat_ready");
}
