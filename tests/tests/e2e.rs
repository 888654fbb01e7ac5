//! End to end: the real server and several real clients on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use securecom_tests::{open_chat, say, server_with_users as setup, Client, Server, User};

#[test]
fn login_list_and_logout() {
    let (_d, server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    assert_eq!(alice.users(), ["alice"]);
    let mut bob = Client::login(&server, &u[1]);
    assert_eq!(alice.users(), ["alice", "bob"]);
    bob.send("/quit");
    bob.expect_where("closed logged_out", |v| {
        v["event"] == "closed" && v["reason"] == "logged_out"
    });
    assert!(bob.wait().success());
    assert_eq!(alice.users(), ["alice"]);
}

#[test]
fn login_refused_for_unknown_user_and_wrong_key() {
    let (d, server, u) = setup(&["alice"]);
    // A user the server does not know.
    let mallory = User::new(d.path(), "mallory");
    let mut c = Client::start(&server, &mallory);
    let v = c.expect("login_refused");
    assert_eq!(v["reason"], "not_authorized");
    assert!(!c.wait().success());
    // A known name with another key.
    let fake = User {
        name: "alice".into(),
        key_file: mallory.key_file.clone(),
        public: mallory.public.clone(),
    };
    let mut c = Client::start(&server, &fake);
    assert_eq!(c.expect("login_refused")["reason"], "not_authorized");
    assert!(!c.wait().success());
    // The real alice still logs in.
    let mut alice = Client::login(&server, &u[0]);
    assert_eq!(alice.users(), ["alice"]);
}

#[test]
fn wrong_server_key_is_refused_by_the_client() {
    let (d, server, u) = setup(&["alice"]);
    let other = User::new(d.path(), "other");
    let mut c = Client::start_pinned(&server, &u[0], &other.public);
    let v = c.expect("disconnected");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("server key"),
        "{v}"
    );
    assert!(!c.wait().success());
}

#[test]
fn chat_accepted_both_ways_requester_first_then_leave() {
    let (_d, server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "hello bob");
    say(&mut bob, &mut alice, "hi alice, héllo ünïcode");
    say(&mut alice, &mut bob, "bye");
    alice.send("/leave");
    alice.expect_where("left", |v| {
        v["event"] == "chat_ended" && v["reason"] == "left"
    });
    // Alice's end-to-end close: every message arrived, both ways.
    bob.expect_where("peer closed", |v| {
        v["event"] == "chat_ended" && v["reason"] == "peer_closed" && v["undelivered"] == 0
    });
    // Both can chat again, the other way round.
    open_chat(&mut bob, &mut alice);
    say(&mut bob, &mut alice, "again");
}

#[test]
fn responder_cannot_speak_first() {
    let (_d, server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    bob.send("too early");
    bob.expect("error");
    alice.expect_none(Duration::from_millis(300), |v| v["event"] == "message");
    say(&mut alice, &mut bob, "first");
    say(&mut bob, &mut alice, "now me");
}

#[test]
fn refused_busy_offline_unknown_and_self() {
    let (_d, server, u) = setup(&["alice", "bob", "carol", "dave", "erin"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    let mut carol = Client::login(&server, &u[2]);
    let mut erin = Client::login(&server, &u[4]);
    // Declined.
    alice.send("/chat bob");
    bob.expect("chat_request");
    bob.send("/refuse");
    let v = alice.expect("chat_refused");
    assert_eq!(
        (v["user"].as_str(), v["reason"].as_str()),
        (Some("bob"), Some("declined"))
    );
    // Asking again at once: refused by the server, bob is not bothered.
    alice.send("/chat bob");
    assert_eq!(alice.expect("chat_refused")["reason"], "too_soon");
    bob.expect_none(Duration::from_millis(300), |v| v["event"] == "chat_request");
    // Busy: bob chats with carol, erin asks bob.
    open_chat(&mut carol, &mut bob);
    erin.send("/chat bob");
    let v = erin.expect("chat_refused");
    assert_eq!(v["reason"], "busy");
    bob.expect_where("refused busy", |v| {
        v["event"] == "refused_busy" && v["from"] == "erin"
    });
    say(&mut carol, &mut bob, "still here");
    // Offline (registered, not logged in), unknown, self.
    alice.send("/chat dave");
    assert_eq!(alice.expect("chat_refused")["reason"], "offline");
    alice.send("/chat zed");
    assert_eq!(alice.expect("chat_refused")["reason"], "unknown_user");
    alice.send("/chat alice");
    assert_eq!(alice.expect("chat_refused")["reason"], "self_request");
}

#[test]
fn two_chats_at_once_do_not_cross() {
    let (_d, server, u) = setup(&["alice", "bob", "carol", "dave"]);
    let mut a = Client::login(&server, &u[0]);
    let mut b = Client::login(&server, &u[1]);
    let mut c = Client::login(&server, &u[2]);
    let mut d = Client::login(&server, &u[3]);
    open_chat(&mut a, &mut b);
    open_chat(&mut c, &mut d);
    for i in 0..20 {
        say(&mut a, &mut b, &format!("a->b {i}"));
        say(&mut c, &mut d, &format!("c->d {i}"));
        say(&mut b, &mut a, &format!("b->a {i}"));
        say(&mut d, &mut c, &format!("d->c {i}"));
    }
    for (x, other) in [(&a, "b"), (&b, "a"), (&c, "d"), (&d, "c")] {
        for m in x.seen.iter().filter(|v| v["event"] == "message") {
            assert!(
                m["text"].as_str().unwrap_or_default().starts_with(other),
                "{}: crossed message {m}",
                x.name
            );
        }
    }
}

#[test]
fn client_killed_mid_chat() {
    let (_d, server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "are you there?");
    bob.kill();
    alice.expect_where("ended by the server", |v| {
        v["event"] == "chat_ended" && v["reason"] == "ended_by_server"
    });
    assert_eq!(alice.users(), ["alice"]);
    // Bob comes back and they chat again.
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut bob, &mut alice);
    say(&mut bob, &mut alice, "back");
}

#[test]
fn server_restarted() {
    let (_d, mut server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    server.restart();
    alice.expect("disconnected");
    assert!(!alice.wait().success());
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "after restart");
}

#[test]
fn graceful_shutdown_tells_clients() {
    let (_d, mut server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    assert!(server.terminate().success());
    for c in [&mut alice, &mut bob] {
        c.expect_where("closed shutdown", |v| {
            v["event"] == "closed" && v["reason"] == "shutdown"
        });
    }
}

#[test]
fn bad_raw_peers_are_dropped_alone() {
    let (_d, server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);

    // Garbage: a valid-looking length and random bytes (not a Noise message 1).
    let mut garbage = TcpStream::connect(server.addr).expect("connect");
    garbage.write_all(&[0, 5, 1, 2, 3, 4, 5]).expect("write");
    assert_closed(&mut garbage);
    // An oversize length prefix.
    let mut oversize = TcpStream::connect(server.addr).expect("connect");
    oversize.write_all(&[0xff, 0xff, 0, 0, 0]).expect("write");
    assert_closed(&mut oversize);
    // One byte per second: it never completes a handshake; meanwhile the chat goes on.
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    for i in 0..3 {
        slow.write_all(&[0]).expect("write");
        say(&mut alice, &mut bob, &format!("meanwhile {i}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    say(&mut bob, &mut alice, "all good");
    assert_eq!(alice.users(), ["alice", "bob"]);
}

fn assert_closed(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("server answered {n} bytes to a bad peer instead of closing"),
    }
}

#[test]
fn server_log_has_no_chat_text() {
    let (_d, server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    let secrets = ["attack at dawn 7f3a", "the password is swordfish-91"];
    say(&mut alice, &mut bob, secrets[0]);
    say(&mut bob, &mut alice, secrets[1]);
    alice.send("/leave");
    bob.expect("chat_ended");
    let log = server.log();
    assert!(log.contains("logged in"), "the log is empty? {log}");
    for s in secrets {
        assert!(!log.contains(s), "chat text in the server log");
        for c in [&alice, &bob] {
            assert!(!c.stderr().contains(s), "chat text in {}'s log", c.name);
        }
    }
}

#[test]
fn configured_max_frame_drops_the_client_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The lowest limit the server takes: the longest frame honest clients
    // send (a chat's relayed post-quantum handshake message).
    let limit = securecom_core::MIN_MAX_FRAME;
    let server = Server::start_with(dir.path(), &["--max-frame", &limit.to_string()]);
    let u: Vec<User> = ["alice", "bob"]
        .iter()
        .map(|n| User::registered(dir.path(), &server, n))
        .collect();
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "the longest honest frames pass");
    say(&mut alice, &mut bob, &"x".repeat(480));
    // A peer announcing a frame one byte longer (header: its Noise
    // message length) is dropped at once, before it sends the body.
    let mut raw = std::net::TcpStream::connect(server.addr).expect("connect");
    raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let announced = u16::try_from(limit - 2 + 1).expect("fits");
    raw.write_all(&announced.to_be_bytes()).expect("header");
    let mut b = [0u8; 1];
    assert!(
        matches!(raw.read(&mut b), Ok(0) | Err(_)),
        "the server kept a peer that announced a {}-byte frame",
        limit + 1
    );
    say(&mut bob, &mut alice, "we are not disturbed");
}

#[test]
fn registry_edits_apply_without_restart() {
    let (d, server, u) = setup(&["alice"]);
    // Added after the server started (as every user of these tests is): logs in.
    let carol = User::registered(d.path(), &server, "carol");
    let mut c = Client::login(&server, &carol);
    c.send("/quit");
    assert!(c.wait().success());
    // Removed while the server runs: refused at the next login.
    let out = std::process::Command::new(securecom_tests::server_bin())
        .arg("--data-dir")
        .arg(&server.data)
        .args(["remove-user", "carol"])
        .output()
        .expect("remove-user");
    assert!(out.status.success());
    let mut c = Client::start(&server, &carol);
    assert_eq!(c.expect("login_refused")["reason"], "not_authorized");
    let mut alice = Client::login(&server, &u[0]);
    assert_eq!(alice.users(), ["alice"]);
}

/// The server on the portable provider (`--crypto rustcrypto`) serves the
/// same clients (which run AWS-LC) as on the default one: a login, a chat
/// both ways, a close.
#[test]
fn server_on_the_portable_provider_serves_the_same_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--crypto", "rustcrypto"]);
    let alice = User::registered(dir.path(), &server, "alice");
    let bob = User::registered(dir.path(), &server, "bob");
    let log = server.log();
    assert!(
        log.contains("crypto=rustcrypto"),
        "the server names its provider: {log}"
    );
    let mut a = Client::login(&server, &alice);
    let mut b = Client::login(&server, &bob);
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "over RustCrypto");
    say(&mut b, &mut a, "and back");
    a.send("/leave");
    b.expect_where("peer closed", |v| {
        v["event"] == "chat_ended" && v["reason"] == "peer_closed" && v["undelivered"] == 0
    });
}

/// Re-keying in place with the real programs (`docs/PROTOCOL.md` 4.10): the
/// server re-keys request channels and the clients their standard channels
/// and chats every second; a chat and a chat request go on across several
/// re-keys of each, every text arriving in order, and the server's log
/// counts the re-keys of both channels of each session.
#[test]
fn sessions_rekey_in_place_while_users_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--rekey-after", "1"]);
    let users: Vec<User> = ["alice", "bob"]
        .iter()
        .map(|n| User::registered(dir.path(), &server, n))
        .collect();
    let start = |u: &User| {
        Client::spawn_trusting(
            server.addr,
            &["--server-key", &server.key, "--rekey-after", "1"],
            &u.name,
            &u.key_file,
            "127.0.0.1:0",
        )
        .logged_in()
    };
    let mut alice = start(&users[0]);
    let mut bob = start(&users[1]);
    open_chat(&mut alice, &mut bob);
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(5) {
        say(&mut alice, &mut bob, &format!("a{n}"));
        say(&mut bob, &mut alice, &format!("b{n}"));
        n += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    // The chat is still the same one (no chat_ended on either side) ...
    for c in [&alice, &bob] {
        assert!(
            !c.seen.iter().any(|v| v["event"] == "chat_ended"),
            "{}: {:?}",
            c.name,
            c.seen
        );
    }
    // ... and a new request crosses the re-keyed request channel.
    alice.send("/leave");
    alice.expect("chat_ended");
    bob.expect("chat_ended");
    std::thread::sleep(Duration::from_millis(1500));
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "after the re-keys");
    for c in [&mut alice, &mut bob] {
        c.send("/quit");
        c.wait();
    }
    // Each session's close line: re-keys of its standard and request channels.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let counts = loop {
        let log = server.log();
        let counts: Vec<(u64, u64)> = log
            .lines()
            .filter(|l| l.contains(" closed") && l.contains("rekeys="))
            .map(|l| {
                let field = |name: &str| {
                    l.split(name)
                        .nth(1)
                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0)
                };
                (field(" rekeys="), field(" request_rekeys="))
            })
            .collect();
        if counts.len() >= 2 || std::time::Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(counts.len(), 2, "two sessions closed: {counts:?}");
    for (std_rekeys, req_rekeys) in counts {
        assert!(std_rekeys >= 3, "standard channel re-keys: {std_rekeys}");
        assert!(req_rekeys >= 3, "request channel re-keys: {req_rekeys}");
    }
}
