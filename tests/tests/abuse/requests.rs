//! Chat-request abuse: a `RequestChat`/`LeaveChat` flood at one victim is
//! answered `SlowDown` and then dropped (`Bye { RateLimited }`) while the
//! victim still gets a real user's request and chats; an unanswered request
//! expires (`no_answer`, with `--request-timeout 2`); after a refusal the
//! same requester is refused `too_soon` until the cool-down ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use securecom_core::message::{ClientMsg, ErrorCode};
use securecom_core::StaticSecret;
use securecom_host::os_rng;
use securecom_tests::Value;

use super::announce::{Got, RawSession};
use crate::adversarial;
use crate::adversarial::net::source_ip;
use crate::adversarial::procs::{login_at, open_chat, say, RealServer, TestUser};

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event
}

/// A raw client streams `RequestChat { victim }` / `LeaveChat` pairs as fast
/// as it can, reading only what is already there: past the request rate's
/// burst it is answered `SlowDown` (and the request is not performed), and
/// once its strikes are spent it is closed with `Bye { RateLimited }`.
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
                .and_then(|()| raw.send(&ClientMsg::LeaveChat));
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
    println!(
        "REQUESTS | {pairs} RequestChat/LeaveChat pairs in {took:?}: {delivered} delivered, {} SlowDown, then {:?}",
        raw.errors(ErrorCode::SlowDown),
        raw.bye()
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
