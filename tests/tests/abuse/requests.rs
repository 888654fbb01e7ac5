//! Chat-request abuse: a `RequestChat`/`LeaveChat` flood at one victim is
//! refused past the rates (`too_soon` for requests, `slow_down` for leaves)
//! and then dropped (`Bye { RateLimited }`) while the victim still gets a
//! real user's request and chats; an unanswered request expires
//! (`no_answer`, with `--request-timeout 2`); after a refusal the same
//! requester is refused `too_soon` until the cool-down ends; a user whose
//! mailbox is full is `busy`, not `offline`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use securecom_core::message::{ClientMsg, ErrorCode, RefuseReason};
use securecom_core::StaticSecret;
use securecom_host::os_rng;
use securecom_tests::{Value, WAIT};

use super::announce::{Got, RawSession};
use crate::adversarial;
use crate::adversarial::net::source_ip;
use crate::adversarial::procs::{login_at, open_chat, say, RealServer, TestUser};

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event
}

/// A raw client streams `RequestChat { victim }` / `LeaveChat` pairs as fast
/// as it can, reading only what is already there: past the rates' bursts
/// each command is refused and not performed (an over-rate `RequestChat`
/// with `ChatRefused { TooSoon }`, an over-rate `LeaveChat` with
/// `Error { SlowDown }`: PROTOCOL.md 9.1), and once its strikes are spent
/// it is closed with `Bye { RateLimited }`. No more requests reach the
/// victim than the rate allows.
/// Meanwhile alice and bob chat (every message arrives); afterwards the
/// victim still receives carol's request, accepts it and chats.
#[test]
fn request_leave_flood_is_slowed_then_dropped() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let carol = TestUser::new(dir.path(), "carol");
    let victim = TestUser::new(dir.path(), "victim");
    let flooder = StaticSecret::generate(&mut os_rng());
    let mut server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("carol", carol.public),
            ("victim", victim.public),
            ("flooder", flooder.public_key()),
        ],
        "debug",
        &[],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    let mut v = login_at(server.addr, &server.key, &victim, "127.0.0.1:0");
    let mut c = login_at(server.addr, &server.key, &carol, "127.0.0.1:0");
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "before the flood");

    let (addr, key) = (server.addr, server.key);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let flood = std::thread::spawn(move || {
        let mut raw = RawSession::login(addr, source_ip(44, 0), key, "flooder", &flooder)
            .expect("flooder login");
        let start = Instant::now();
        let mut pairs = 0;
        while pairs < 100_000 && !stop2.load(Ordering::SeqCst) {
            let r = raw
                .send(&ClientMsg::RequestChat { user: "victim" })
                .and_then(|()| {
                    // Withdraw the last request the server announced.
                    let chat_id = raw
                        .log
                        .iter()
                        .rev()
                        .find_map(|g| match g {
                            Got::ChatPending { chat_id, .. } => Some(*chat_id),
                            _ => None,
                        })
                        .unwrap_or(0);
                    raw.send(&ClientMsg::LeaveChat { chat_id })
                });
            if r.is_err() {
                break;
            }
            pairs += 1;
            raw.drain_now();
            if raw.ended || raw.bye().is_some() {
                break;
            }
        }
        raw.assert_slowed_then_dropped("request flood");
        (raw, pairs, start.elapsed())
    });
    // alice and bob chat while the flood runs.
    for i in 0..10 {
        say(&mut a, &mut b, &format!("during the flood {i}"));
        say(&mut b, &mut a, &format!("still fine {i}"));
    }
    let (raw, pairs, took) = match flood.join() {
        Ok(r) => r,
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            std::panic::resume_unwind(e)
        }
    };
    let delivered = raw
        .log
        .iter()
        .filter(|g| matches!(g, Got::ChatPending { .. }))
        .count();
    let too_soon = raw
        .log
        .iter()
        .filter(|g| {
            matches!(
                g,
                Got::ChatRefused {
                    reason: RefuseReason::TooSoon,
                    ..
                }
            )
        })
        .count();
    let slow = raw.errors(ErrorCode::SlowDown);
    println!(
        "REQUESTS | {pairs} RequestChat/LeaveChat pairs in {took:?}: {delivered} delivered, {too_soon} TooSoon, {slow} SlowDown, then {:?}",
        raw.bye()
    );
    assert!(
        too_soon >= 1,
        "no over-rate request was refused: {:?}",
        raw.log
    );
    assert!(slow >= 1, "no over-rate leave was refused: {:?}", raw.log);
    // The strikes (20 saved up, 6 a minute) bound the refusals.
    let strikes = 20 + (took.as_secs_f64() / 10.0).ceil() as usize + 1;
    assert!(
        raw.refusals() <= strikes,
        "{} refusals before the drop: more than the strikes allow",
        raw.refusals()
    );
    // Requests performed: the burst (10) plus what 30/min refills meanwhile.
    let allowed = 10 + (took.as_secs_f64() / 2.0).ceil() as usize + 1;
    assert!(
        delivered <= allowed,
        "{delivered} of the flooder's requests were delivered (rate 30/min, burst 10)"
    );

    // The victim is not left asked by the dropped flooder: carol's request
    // reaches it, it accepts, they chat.
    c.send("/chat victim");
    let req = v.expect_where("carol's request", |e| {
        e["event"] == "chat_request" && e["from"] == "carol"
    });
    assert_eq!(
        req["fingerprint"],
        carol.public.fingerprint().to_string().as_str()
    );
    v.send("/accept");
    let rc = c.expect("chat_ready");
    let rv = v.expect("chat_ready");
    assert_eq!(rc["peer"], "victim");
    assert_eq!(rv["peer"], "carol");
    assert_eq!(rc["safety_number"], rv["safety_number"]);
    say(&mut c, &mut v, "did the spam stop?");
    say(&mut v, &mut c, "it did");
    say(&mut a, &mut b, "after the flood");
    server.assert_healthy();
}

/// With `--request-timeout 2`, a request nobody answers is withdrawn: the
/// requester gets `chat_refused` `no_answer`, the asked user's client
/// `request_withdrawn`. Asking the same user again at once is `too_soon`
/// (not answering counts as refusing), while asking someone else works.
#[test]
fn unanswered_request_expires_with_no_answer() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let carol = TestUser::new(dir.path(), "carol");
    let server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("carol", carol.public),
        ],
        "debug",
        &["--request-timeout", "2"],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    let mut c = login_at(server.addr, &server.key, &carol, "127.0.0.1:0");
    a.send("/chat bob");
    a.expect("chat_pending");
    let req = b.expect("chat_request");
    assert_eq!(req["from"], "alice");
    // bob does not answer.
    let r = a.expect("chat_refused");
    assert_eq!(r["user"], "bob");
    assert_eq!(r["reason"], "no_answer", "{r}");
    let w = b.expect("request_withdrawn");
    assert_eq!(w["from"], "alice");
    // At once again: too soon, and bob is not asked.
    a.send("/chat bob");
    let r = a.expect("chat_refused");
    assert_eq!(r["reason"], "too_soon", "{r}");
    // Someone else: fine.
    open_chat(&mut a, &mut c);
    say(&mut a, &mut c, "bob never answers");
    say(&mut c, &mut a, "I do");
    // bob was not asked a second time.
    b.expect_none(Duration::from_millis(500), is("chat_request"));
}

/// carol declines alice: alice's new request to carol at once is refused
/// `too_soon` without reaching carol; the cool-down is per requester (bob
/// may still ask carol); after `--refuse-cooldown 3` alice may ask again and
/// carol accepts.
#[test]
fn declined_then_too_soon_until_the_cooldown_ends() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let carol = TestUser::new(dir.path(), "carol");
    const COOLDOWN: u64 = 3;
    let cooldown = COOLDOWN.to_string();
    let server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("carol", carol.public),
        ],
        "debug",
        &["--refuse-cooldown", &cooldown],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    let mut c = login_at(server.addr, &server.key, &carol, "127.0.0.1:0");
    a.send("/chat carol");
    let req = c.expect("chat_request");
    assert_eq!(req["from"], "alice");
    c.send("/refuse");
    let r = a.expect("chat_refused");
    assert_eq!(r["reason"], "declined", "{r}");
    let refused_at = Instant::now();
    a.send("/chat carol");
    let r = a.expect("chat_refused");
    assert_eq!(r["reason"], "too_soon", "{r}");
    // Per requester: bob's request reaches carol.
    b.send("/chat carol");
    let req = c.expect("chat_request");
    assert_eq!(req["from"], "bob", "carol heard alice again: {req}");
    c.send("/refuse");
    let r = b.expect("chat_refused");
    assert_eq!(r["reason"], "declined", "{r}");
    // After the cool-down, alice may ask again.
    let left = Duration::from_millis(COOLDOWN * 1000 + 500).saturating_sub(refused_at.elapsed());
    std::thread::sleep(left);
    a.send("/chat carol");
    let req = c.expect("chat_request");
    assert_eq!(req["from"], "alice");
    c.send("/accept");
    a.expect("chat_ready");
    c.expect("chat_ready");
    say(&mut a, &mut c, "third time lucky");
    say(&mut c, &mut a, "fine, let's talk");
}

/// The pid of the real client started with `key_file` (from `/proc`).
fn client_pid(key_file: &std::path::Path) -> u32 {
    let key = key_file.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|arg| arg == key))
                .unwrap_or(false)
        })
        .expect("the client's process")
}

/// Stops a process (SIGSTOP) until dropped (SIGCONT).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// A full mailbox: bob accepts mallory's chat, then bob's client stops
/// reading (SIGSTOP) and mallory relays junk `ChatData` to it as fast as it
/// can. Once bob's session is too far behind, the server ends the chat
/// (mallory gets `PeerLeft`: it never loses it) and a new request to bob is
/// refused `busy`, not `offline` (bob is online, only behind). When bob's
/// client runs again it catches up, is still logged in, and carol's next
/// request reaches it; alice and dave chat throughout.
#[test]
fn full_mailbox_refuses_requests_busy_not_offline() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let carol = TestUser::new(dir.path(), "carol");
    let dave = TestUser::new(dir.path(), "dave");
    let mallory = StaticSecret::generate(&mut os_rng());
    let mut server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("carol", carol.public),
            ("dave", dave.public),
            ("mallory", mallory.public_key()),
        ],
        "info",
        // bob's client is stopped for a while: not long enough to be dropped.
        &["--write-timeout", "60"],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut d = login_at(server.addr, &server.key, &dave, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    let mut c = login_at(server.addr, &server.key, &carol, "127.0.0.1:0");
    open_chat(&mut a, &mut d);

    let mut m = RawSession::login(
        server.addr,
        source_ip(45, 0),
        server.key,
        "mallory",
        &mallory,
    )
    .expect("mallory login");
    m.send(&ClientMsg::RequestChat { user: "bob" })
        .expect("request");
    assert_eq!(b.expect("chat_request")["from"], "mallory");
    b.send("/accept");
    let Got::ChatStarted { chat_id, .. } = m
        .wait_for("chat started", WAIT, |g| {
            matches!(g, Got::ChatStarted { .. })
        })
        .expect("chat started")
    else {
        unreachable!()
    };
    let stopped = Stopped::new(client_pid(&bob.key_file));
    let junk = [0xa5u8; 480];
    let start = Instant::now();
    let mut relayed = 0usize;
    let mut peer_left = false;
    while !peer_left && relayed < 200_000 && start.elapsed() < Duration::from_secs(60) {
        let frames = m.frames(
            &ClientMsg::ChatData {
                chat_id,
                noise: &junk,
            },
            32,
        );
        m.stream.write_all(&frames).expect("relay junk");
        relayed += 32;
        m.drain_now();
        peer_left = m.log.contains(&Got::PeerLeft);
    }
    println!(
        "REQUESTS | {relayed} junk ChatData to a stopped client in {:?}: PeerLeft: {peer_left}",
        start.elapsed()
    );
    assert!(
        peer_left,
        "the server never ended the chat with a peer that reads nothing"
    );
    // bob is online but too far behind: busy, not offline.
    c.send("/chat bob");
    let r = c.expect("chat_refused");
    assert_eq!(r["reason"], "busy", "{r}");
    say(&mut a, &mut d, "while bob is stopped");
    say(&mut d, &mut a, "we are fine");

    drop(stopped);
    // bob catches up: the junk ends its chat (an E2E failure, or the
    // PeerLeft), and its session is still there.
    let end = b.expect("chat_ended");
    assert_eq!(end["peer"], "mallory", "{end}");
    // Until bob's session has worked through its mailbox, carol may still
    // hear `busy` (after `chat_pending`: PROTOCOL.md 7.5); then her request
    // reaches him.
    let deadline = Instant::now() + WAIT;
    'ask: loop {
        assert!(
            Instant::now() < deadline,
            "carol's request never reached bob after he caught up; carol: {:?}",
            c.seen
        );
        c.send("/chat bob");
        loop {
            if b.next_where(Duration::from_millis(100), |e| {
                e["event"] == "chat_request" && e["from"] == "carol"
            })
            .is_some()
            {
                break 'ask;
            }
            if let Some(r) = c.next_where(Duration::from_millis(10), is("chat_refused")) {
                assert_eq!(r["reason"], "busy", "{r}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no answer to carol: {:?}",
                c.seen
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    b.send("/accept");
    c.expect("chat_ready");
    b.expect("chat_ready");
    say(&mut c, &mut b, "you were busy");
    say(&mut b, &mut c, "I was stopped");
    assert!(
        !b.seen.iter().any(is("closed")),
        "bob was dropped: {:?}",
        b.seen
    );
    server.assert_healthy();
}
