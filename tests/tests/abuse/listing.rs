//! `ListUsers` abuse: with many users online, one account writes thousands
//! of `ListUsers` frames and never reads its answers. The server answers one
//! listing at a time per session (a request during a listing is answered
//! once, after it), produces pages only while the session's output backlog
//! is under `--output-soft-cap`, stops reading a session over it, and rate
//! limits listings (30/min, 10 saved up: `SlowDown`, then `Bye { RateLimited }`).
//!
//! Each test asserts, while the attack runs: the server's resident memory
//! stays within [`MAX_GROWTH_KIB`] of its level before the attack, the
//! attacker is dropped (or, without a listing rate, held back by
//! back-pressure), a third party logs in within the handshake timeout, and
//! two legitimate users' chat messages all arrive.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use securecom_core::message::{ClientMsg, CloseReason, ErrorCode};
use securecom_core::{PublicKey, StaticSecret};
use securecom_host::os_rng;
use securecom_tests::WAIT;

use super::announce::{Got, RawSession};
use crate::adversarial;
use crate::adversarial::net::source_ip;
use crate::adversarial::peer::CorePeer;
use crate::adversarial::procs::{
    login_at, open_chat, rss_kib, say, RealServer, ScriptClient, TestUser,
};

/// Users online besides the attacker (LISTING_USERS, default 200).
fn crowd_size() -> u32 {
    std::env::var("LISTING_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Bound on the server's memory growth during the attack.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// The server's handshake timeout (its default).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's write timeout (its default): a client that reads nothing
/// for this long while the server has output for it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `ListUsers` frames the attacker writes.
const FRAMES: usize = 20_000;

struct Crowd {
    _dir: tempfile::TempDir,
    server: RealServer,
    alice: ScriptClient,
    bob: ScriptClient,
    /// The idle users, logged in and never reading (nothing is sent to them).
    _idle: Vec<CorePeer>,
    attacker: StaticSecret,
    probe: StaticSecret,
    online: usize,
    said: usize,
}

fn crowd(extra: &[&str]) -> Crowd {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let attacker = StaticSecret::generate(&mut os_rng());
    let probe = StaticSecret::generate(&mut os_rng());
    let n = crowd_size();
    let idle: Vec<(String, StaticSecret)> = (0..n)
        .map(|i| (format!("user{i:04}"), StaticSecret::generate(&mut os_rng())))
        .collect();
    let mut reg: Vec<(&str, PublicKey)> = vec![
        ("alice", alice.public),
        ("bob", bob.public),
        ("attacker", attacker.public_key()),
        ("probe", probe.public_key()),
    ];
    for (name, k) in &idle {
        reg.push((name.as_str(), k.public_key()));
    }
    let server = RealServer::start(dir.path(), &reg, "info", extra);
    // Raw logins (the core's client in process, no daemon), each from its
    // own loopback address so the per-address connection limits do not apply.
    let peers: Vec<CorePeer> = idle
        .iter()
        .enumerate()
        .map(|(i, (name, secret))| {
            CorePeer::login(
                server.addr,
                Some(source_ip(51, i as u32)),
                server.key,
                name,
                secret,
                None,
                WAIT,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .0
        })
        .collect();
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "before the listing flood");
    let online = a.users().len();
    assert_eq!(online, n as usize + 2, "not everyone is online");
    Crowd {
        _dir: dir,
        server,
        alice: a,
        bob: b,
        _idle: peers,
        attacker,
        probe,
        online,
        said: 0,
    }
}

impl Crowd {
    /// alice and bob exchange a message each way.
    fn chat(&mut self) {
        self.said += 1;
        let n = self.said;
        say(
            &mut self.alice,
            &mut self.bob,
            &format!("listing flood {n}"),
        );
        say(&mut self.bob, &mut self.alice, &format!("not affected {n}"));
    }

    /// A third party logs in within the handshake timeout (and out again).
    fn probe_login(&self) -> Duration {
        let (p, took) = CorePeer::login(
            self.server.addr,
            Some(source_ip(53, self.said as u32)),
            self.server.key,
            "probe",
            &self.probe,
            None,
            HANDSHAKE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("a legitimate login during the listing flood: {e}"));
        p.logout(WAIT).expect("probe logout");
        took
    }
}

/// Samples a process's RSS every 20 ms until stopped; returns the peak (KiB).
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !s.load(Ordering::SeqCst) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak.max(rss_kib(pid))
        });
        Sampler { stop, handle }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("sampler")
    }
}

/// How the attacker's writing ended (printed).
#[allow(dead_code)]
#[derive(Debug)]
enum Writing {
    /// Every frame was written.
    Done,
    /// A write made no progress for the attacker's write timeout: the
    /// server stopped reading it.
    Stalled,
    /// The server closed the connection.
    Closed(ErrorKind),
}

/// How the attacker writes its `ListUsers` frames.
#[derive(Clone, Copy, Debug)]
enum Pace {
    /// Bursts of 1000 frames per write: as fast as it can.
    Bursts,
    /// One frame per write, 100 µs apart: each request gets a listing of
    /// its own, so that the unread answers pile up.
    Single,
}

/// The attacker: `FRAMES` `ListUsers` frames, reading nothing. Returns the
/// session, the frames written and how the writing ended.
fn flood(mut raw: RawSession, pace: Pace) -> (RawSession, usize, Writing) {
    raw.stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .expect("write timeout");
    let per_write = match pace {
        Pace::Bursts => 1000,
        Pace::Single => 1,
    };
    let mut written = 0;
    while written < FRAMES {
        let bytes = raw.frames(&ClientMsg::ListUsers, per_write);
        match raw.stream.write_all(&bytes) {
            Ok(()) => written += per_write,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (raw, written, Writing::Stalled)
            }
            Err(e) => return (raw, written, Writing::Closed(e.kind())),
        }
        if let Pace::Single = pace {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    (raw, written, Writing::Done)
}

/// Completed listings (pages with `more: false`) and pages received.
fn listings(raw: &RawSession) -> (usize, usize) {
    let pages: Vec<bool> = raw
        .log
        .iter()
        .filter_map(|g| match g {
            Got::Users { more, .. } => Some(*more),
            _ => None,
        })
        .collect();
    (pages.iter().filter(|m| !**m).count(), pages.len())
}

/// Runs the attack with the legitimate traffic alongside, and goes on with
/// that traffic for `hold` after the attacker stopped writing (the attacker
/// still reading nothing); returns the attacker, frames written, and how
/// its writing ended. Asserts the memory bound over the whole time.
fn attack(
    f: &mut Crowd,
    rcvbuf: Option<usize>,
    pace: Pace,
    hold: Duration,
) -> (RawSession, usize, Writing) {
    std::thread::sleep(Duration::from_millis(300));
    let base = f.server.rss_kib();
    let sampler = Sampler::start(f.server.pid());
    let raw = RawSession::login_with(
        f.server.addr,
        source_ip(52, 0),
        f.server.key,
        "attacker",
        &f.attacker,
        rcvbuf,
    )
    .expect("attacker login");
    let start = std::time::Instant::now();
    let attacker = std::thread::spawn(move || {
        let r = flood(raw, pace);
        (r, start.elapsed())
    });
    let mut logins = Vec::new();
    while !attacker.is_finished() || logins.len() < 3 {
        logins.push(f.probe_login());
        f.chat();
        std::thread::sleep(Duration::from_millis(50));
    }
    let ((raw, written, how), took) = attacker.join().expect("attacker");
    // And on, while the server may still hold the attacker's output.
    let end = std::time::Instant::now() + hold;
    loop {
        logins.push(f.probe_login());
        f.chat();
        if std::time::Instant::now() >= end {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let peak = sampler.stop();
    let growth = peak.saturating_sub(base);
    let slowest = logins.iter().max().copied().unwrap_or_default();
    println!(
        "LISTING | {} online: {written} ListUsers frames written in {took:?} ({pace:?}, {how:?}); RSS {:.1} -> peak {:.1} MiB; {} legitimate logins, slowest {slowest:?}; {} messages each way",
        f.online,
        base as f64 / 1024.0,
        peak as f64 / 1024.0,
        logins.len(),
        f.said
    );
    assert!(
        growth <= MAX_GROWTH_KIB,
        "the server grew by {growth} KiB (from {base} KiB) under the listing flood"
    );
    (raw, written, how)
}

/// With the default listing rate, the attacker is answered `SlowDown` past
/// its burst and then dropped with `Bye { RateLimited }` (or, if it is still
/// writing when the server closes, reset): it never gets more listings than
/// the rate allows.
#[test]
fn listing_flood_without_reading_is_rate_limited() {
    let _serial = adversarial::serial();
    let mut f = crowd(&[]);
    let (mut raw, written, how) = attack(&mut f, None, Pace::Bursts, Duration::ZERO);
    assert!(
        raw.wait_closed(WAIT),
        "the attacker was not dropped ({written} frames written, {how:?}); received {} messages",
        raw.log.len()
    );
    let (done, pages) = listings(&raw);
    println!(
        "LISTING | attacker: {pages} pages, {done} complete listings, {} SlowDown, {:?}",
        raw.errors(ErrorCode::SlowDown),
        raw.bye()
    );
    if let Some(reason) = raw.bye() {
        assert_eq!(reason, CloseReason::RateLimited, "dropped for {reason:?}");
    }
    // The burst of 10, plus one listing in 2 s at most, plus one that follows a listing.
    assert!(done <= 12, "{done} listings answered past the rate");
    f.server.assert_healthy();
    f.chat();
}

/// Without a listing rate (`--rate-listings 0:1`), with a small receive
/// window and one request per write, every request or few is answered with
/// a whole listing, and none is read: the answers pile up in the server's
/// socket until its writes to the attacker block; once a write has waited
/// for the write timeout the attacker is dropped. Meanwhile the server
/// holds at most the soft cap of output for it in its own memory (the RSS
/// bound), and everyone else logs in and chats.
#[test]
fn listing_flood_without_a_rate_is_held_by_backpressure() {
    let _serial = adversarial::serial();
    let mut f = crowd(&["--rate-listings", "0:1"]);
    let (mut raw, written, how) = attack(
        &mut f,
        Some(4096),
        Pace::Single,
        WRITE_TIMEOUT + Duration::from_secs(2),
    );
    // What the server sent before it gave up is still read here, then the end.
    let dropped = raw.wait_closed(WAIT);
    let (done, pages) = listings(&raw);
    println!(
        "LISTING | attacker without a rate: {written} frames, {how:?}; then read {pages} pages, {done} complete listings; dropped: {dropped}, {:?}",
        raw.bye()
    );
    println!(
        "LISTING | server log: {} drops for an output backlog over the hard cap",
        f.server.log_count("output backlog over its cap")
    );
    assert!(
        dropped,
        "a client that read nothing for the write timeout was not dropped"
    );
    if let Some(reason) = raw.bye() {
        assert_eq!(reason, CloseReason::RateLimited, "dropped for {reason:?}");
    }
    f.server.assert_healthy();
    f.chat();
}
