//! Operations end to end: the real server with its metrics endpoint
//! (`--metrics-listen`) and JSON logs (`--log-format json`), real clients
//! logging in, chatting, being refused, replaced and rate-limited; the
//! scraped counters must move by exactly what happened, `/healthz` and
//! `/readyz` must answer, every log line must be JSON, and `/metrics` must
//! name no user, key, address or chat text.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use securecom_tests::{open_chat, say, Client, Server, User, Value};

/// One HTTP/1.1 request to the endpoint: (status code, body).
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write the request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the answer");
    let text = String::from_utf8(out).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of one series (`name{labels}` exactly as exposed); 0 if absent.
fn value(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits (up to 10 s) until `series` satisfies `ok`; returns that scrape.
fn wait_until(addr: SocketAddr, series: &str, what: &str, ok: impl Fn(u64) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(addr);
        let v = value(&m, series);
        if ok(v) {
            return m;
        }
        assert!(
            Instant::now() < end,
            "{series} is {v}, expected {what}; metrics:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to 10 s) until `series` is `want`; returns that scrape.
fn wait_for(addr: SocketAddr, series: &str, want: u64) -> String {
    wait_until(addr, series, &want.to_string(), |v| v == want)
}

/// A scrape of the counters as they are now: the server encodes `/metrics`
/// at most twice a second and serves the last text in between.
fn fresh(addr: SocketAddr) -> String {
    std::thread::sleep(Duration::from_millis(600));
    scrape(addr)
}

/// The server's log as JSON lines (each must parse).
fn json_log(server: &Server) -> Vec<Value> {
    server
        .log()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Where the metrics endpoint listens, from the server's JSON log.
fn metrics_addr(server: &Server) -> SocketAddr {
    json_log(server)
        .iter()
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("metrics endpoint"))
        })
        .and_then(|v| v["fields"]["addr"].as_str()?.parse().ok())
        .expect("the log names the metrics endpoint's address")
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(from.into(), 0).into())
        .expect("bind a loopback source");
    s.connect(&to.into()).expect("connect");
    s.into()
}

/// True if the server closed `s` (EOF or reset) within `limit`.
fn closed_within(mut s: &TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

const LOGINS: &str = "securecom_logins_total";
const SESSIONS: &str = "securecom_sessions";
const NOT_AUTHORIZED: &str = "securecom_login_failures_total{reason=\"not_authorized\"}";
const HANDSHAKE_ERROR: &str = "securecom_login_failures_total{reason=\"handshake_error\"}";
const DATA: &str = "securecom_relayed_messages_total{kind=\"data\"}";
const DATA_BYTES: &str = "securecom_relayed_bytes_total{kind=\"data\"}";
const HANDSHAKES: &str = "securecom_relayed_messages_total{kind=\"handshake\"}";
const DIALLED: &str = "securecom_request_channels_total{outcome=\"dialled\"}";
const REPLACED: &str = "securecom_drops_total{reason=\"replaced\"}";
const RATE: &str = "securecom_rate_limited_total{limit=\"connection_rate\"}";
const SOURCE_HANDSHAKES: &str = "securecom_rate_limited_total{limit=\"source_handshakes\"}";
const REQUEST_REKEYS: &str = "securecom_rekeys_total{channel=\"request\"}";
const COMMANDS: &str = "securecom_rate_limited_total{limit=\"commands\"}";
const LISTINGS_REFUSED: &str = "securecom_commands_refused_total{command=\"list_users\"}";

#[test]
fn metrics_health_and_json_logs_of_a_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            // Re-key the request channels every second (counted below).
            "--rekey-after",
            "1",
            // Limits small enough to trip from one test: 3 new connections a
            // second from one source (burst 6), 3 handshakes in progress.
            "--conn-rate-per-ip",
            "3",
            "--handshakes-per-ip",
            "3",
            // `ListUsers` 2 at once, then 3 refusals (strikes) before the close.
            "--rate-listings",
            "1:2",
            "--rate-strikes",
            "1:3",
        ],
    );
    let m = metrics_addr(&server);

    // Health and readiness: the listener is bound and the registry loaded.
    assert_eq!(get(m, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(m, "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(get(m, "/nothing").0, 404);
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.resize(2048, b'a');
    assert_eq!(http(m, &huge).0, 431, "a request head over 2 KiB");

    let start = scrape(m);
    assert_eq!(value(&start, LOGINS), 0);
    assert_eq!(value(&start, SESSIONS), 0);
    assert!(start.contains("securecom_build_info{version=\""));

    // Two logins, each with its daemon dialled.
    let users: Vec<User> = ["alice", "bob"]
        .iter()
        .map(|n| User::registered(dir.path(), &server, n))
        .collect();
    let mut alice = Client::login(&server, &users[0]);
    let mut bob = Client::login(&server, &users[1]);
    wait_for(m, LOGINS, 2);
    wait_for(m, SESSIONS, 2);
    wait_for(m, DIALLED, 2);

    // A refused login: an unregistered user.
    let mallory = User::new(dir.path(), "mallory");
    let mut c = Client::start(&server, &mallory);
    assert_eq!(c.expect("login_refused")["reason"], "not_authorized");
    wait_for(m, NOT_AUTHORIZED, 1);
    // Bytes that are no handshake, from another source.
    let mut garbage = connect_from(Ipv4Addr::new(127, 0, 0, 9), server.addr);
    garbage.write_all(&[0, 5, 1, 2, 3, 4, 5]).expect("write");
    assert!(closed_within(&garbage, Duration::from_secs(10)));
    wait_for(m, HANDSHAKE_ERROR, 1);
    assert_eq!(value(&scrape(m), LOGINS), 2, "refusals are no logins");

    // A chat: its set-up is relayed as handshake messages; then each text is
    // exactly one relayed data message, of at least its length plus a tag.
    open_chat(&mut alice, &mut bob);
    let before = fresh(m);
    assert!(value(&before, HANDSHAKES) >= 2, "{before}");
    let texts = [
        "attack at dawn 7f3a",
        "the password is swordfish-91",
        "héllo ünïcode",
        "4",
        "five",
    ];
    for (i, t) in texts.iter().enumerate() {
        if i % 2 == 0 {
            say(&mut alice, &mut bob, t);
        } else {
            say(&mut bob, &mut alice, t);
        }
    }
    let after = wait_for(m, DATA, value(&before, DATA) + texts.len() as u64);
    let bytes = value(&after, DATA_BYTES) - value(&before, DATA_BYTES);
    let plain: usize = texts.iter().map(|t| t.len() + 16).sum();
    assert!(
        bytes >= plain as u64 && bytes < (plain + texts.len() * 64) as u64,
        "{bytes} relayed bytes for {plain} bytes of texts and tags"
    );
    assert_eq!(value(&after, HANDSHAKES), value(&before, HANDSHAKES));

    // The server re-keyed the request channels meanwhile (every second).
    std::thread::sleep(Duration::from_millis(1500));
    let rekeyed = scrape(m);
    assert!(value(&rekeyed, REQUEST_REKEYS) >= 1, "{rekeyed}");

    // Alice logs in again: her first session is replaced.
    let mut alice2 = Client::login(&server, &users[0]);
    alice.expect_where("replaced", |v| {
        v["event"] == "closed" && v["reason"] == "replaced"
    });
    wait_for(m, REPLACED, 1);
    wait_for(m, LOGINS, 3);
    wait_for(m, SESSIONS, 2);
    wait_for(m, DIALLED, 3);

    // Limits. Handshakes in progress from one source: 3 silent connections
    // are held, a 4th is refused at accept (4 is within the rate's burst).
    let hs_source = Ipv4Addr::new(127, 0, 0, 7);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| connect_from(hs_source, server.addr))
        .collect();
    let refused = connect_from(hs_source, server.addr);
    assert!(closed_within(&refused, Duration::from_secs(5)));
    let limited = wait_for(m, SOURCE_HANDSHAKES, 1);
    assert_eq!(value(&limited, RATE), 0);
    // Open connections: the 3 held and the 2 sessions (the others end).
    wait_for(m, "securecom_connections", 5);
    for s in &held {
        assert!(!closed_within(s, Duration::from_millis(50)), "held");
    }
    // The connection rate, from another source: 10 connections at once;
    // the burst (6) passes the rate, 3 of those are held (the handshake
    // limit), every other one is closed at accept and counted once, under
    // one limit or the other.
    let rate_source = Ipv4Addr::new(127, 0, 0, 8);
    let flood: Vec<TcpStream> = (0..10)
        .map(|_| connect_from(rate_source, server.addr))
        .collect();
    // The server closes the 7 it drops at once (however busy, within 10 s);
    // the 3 it holds stay open until the handshake timeout (10 s).
    let end = Instant::now() + Duration::from_secs(10);
    let mut closed = vec![false; flood.len()];
    while closed.iter().filter(|c| **c).count() < 7 && Instant::now() < end {
        for (s, c) in flood.iter().zip(closed.iter_mut()) {
            *c = *c || closed_within(s, Duration::from_millis(10));
        }
    }
    let dropped = closed.iter().filter(|c| **c).count() as u64;
    assert_eq!(dropped, 7, "3 of 10 held");
    let end = Instant::now() + Duration::from_secs(10);
    let (rate, gate) = loop {
        let now = scrape(m);
        let (rate, gate) = (value(&now, RATE), value(&now, SOURCE_HANDSHAKES) - 1);
        if rate + gate == dropped || Instant::now() > end {
            break (rate, gate);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Each drop counted once. (The split depends on how fast the server
    // accepted them: the bucket refills 3 a second.)
    assert_eq!(rate + gate, dropped, "{rate} + {gate}");
    assert!(rate >= 1 && gate >= 1, "{rate} + {gate}");
    drop((held, flood));

    // The core's command rates: carol lists 6 times at once. Two are
    // answered, three refused (`SlowDown`, each a strike), and the sixth
    // closes her session (`Bye { RateLimited }`).
    let carol = User::registered(dir.path(), &server, "carol");
    let mut carol_c = Client::login(&server, &carol);
    for _ in 0..6 {
        carol_c.send("/users");
    }
    carol_c.expect_where("rate-limited", |v| {
        v["event"] == "closed" && v["reason"] == "rate_limited"
    });
    let limited = wait_for(m, COMMANDS, 1);
    assert_eq!(value(&limited, LISTINGS_REFUSED), 4, "{limited}");
    assert_eq!(
        value(
            &limited,
            "securecom_commands_refused_total{command=\"ping\"}"
        ),
        0
    );

    // Logouts: the gauge follows.
    for c in [&mut alice2, &mut bob] {
        c.send("/quit");
        c.wait();
    }
    let end = wait_for(m, SESSIONS, 0);
    assert_eq!(get(m, "/readyz").0, 200);

    // Nothing in /metrics names a user, a key, an address or a chat text.
    let mut secret: Vec<String> = vec![
        server.key.clone(),
        "127.0.0".into(),
        "mallory".into(),
        mallory.public.clone(),
    ];
    for u in &users {
        secret.push(u.name.clone());
        secret.push(u.public.clone());
    }
    secret.extend(texts.iter().filter(|t| t.len() > 4).map(|t| t.to_string()));
    for s in &secret {
        assert!(!end.contains(s.as_str()), "/metrics shows {s:?}:\n{end}");
    }
    // Every series is the server's or the process's (memory, descriptors).
    for line in end.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.starts_with("securecom_") || line.starts_with("process_"),
            "{line}"
        );
    }
    assert!(value(&end, "process_open_fds") > 0);
    assert!(value(&end, "process_resident_memory_bytes") > 1 << 20);

    // Every log line is JSON, with the usual fields; the logins are there.
    let log = json_log(&server);
    assert!(log.len() > 10, "{} log lines", log.len());
    for v in &log {
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        assert!(v["fields"]["message"].is_string(), "{v}");
    }
    assert!(log
        .iter()
        .any(|v| v["fields"]["message"] == "logged in" && v["fields"]["user"] == "alice"));
}

/// A connection that never completes its handshake is counted as a
/// handshake timeout; the endpoint's own bounds hold on the real server:
/// 8 silent HTTP clients take every slot, a 9th is closed at once, and the
/// silent ones are closed at the 2 s read deadline, after which scrapes work.
#[test]
fn handshake_timeouts_and_the_endpoint_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--handshake-timeout",
            "1",
        ],
    );
    let m = metrics_addr(&server);
    const TIMEOUT: &str = "securecom_login_failures_total{reason=\"handshake_timeout\"}";
    assert_eq!(value(&scrape(m), TIMEOUT), 0);
    // Silent: closed after the handshake timeout, counted once.
    let silent = TcpStream::connect(server.addr).expect("connect");
    assert!(closed_within(&silent, Duration::from_secs(5)));
    // One byte, then silence: the same.
    let mut one = TcpStream::connect(server.addr).expect("connect");
    one.write_all(&[0]).expect("write");
    assert!(closed_within(&one, Duration::from_secs(5)));
    wait_for(m, TIMEOUT, 2);

    // The endpoint: 8 silent clients hold every slot.
    let started = Instant::now();
    let hogs: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(m).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let ninth = TcpStream::connect(m).expect("connect");
    assert!(
        closed_within(&ninth, Duration::from_secs(1)),
        "a 9th connection is closed at once"
    );
    // The hogs are closed at the read deadline (2 s from their accept).
    for h in &hogs {
        assert!(closed_within(h, Duration::from_secs(5)));
    }
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(1800) && held < Duration::from_secs(6),
        "{held:?}"
    );
    assert_eq!(get(m, "/healthz").0, 200);
    // The client listener was not affected meanwhile.
    let users = User::registered(dir.path(), &server, "alice");
    let mut alice = Client::login(&server, &users);
    assert_eq!(alice.users(), ["alice"]);
}
