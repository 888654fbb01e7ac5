//! The request channel across real NATs and firewalls (issue 12), with
//! network namespaces: the real server in `srv`, a client at `home` behind
//! a `nat` namespace that masquerades (`Mode::Nat`), drops new inbound
//! connections (`Mode::Firewall`) or just routes (`Mode::Open`), and a
//! second user in `pub`, another host on the server's side of the internet
//! (dialable in every mode). The topology is `nat/netns.rs`; the programs
//! in it, `nat/procs.rs`.
//!
//! An open route makes the home client dialable. Behind a NAT or a firewall
//! the server's dial of its daemon fails, and the client opens the request
//! channel itself (`--request-mode auto`, the default): it is reachable
//! there too. `--request-mode listen` keeps the old behaviour (unreachable
//! behind a NAT), `--request-mode dial` needs no listening port; the
//! server's request-channel keep-alives hold the NAT's mapping open.
//!
//! Needs root (network namespaces) and `ip`, `nft`, `conntrack`, `sysctl`
//! (apt: iproute2, nftables, conntrack, procps). Without them every test
//! prints `SKIPPED: why` (on stdout and, past the harness's capture, on
//! stderr) and returns; with `SECURECOM_NAT_REQUIRED=1` a skip fails.

// A test file is a crate root: its `mod` paths are relative to `tests/tests/`.
#[path = "nat/netns.rs"]
mod netns;
#[path = "nat/procs.rs"]
mod procs;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netns::{Family, Mode, Netns, Ns};
use procs::{
    client, client_with, daemon_any, daemon_events, daemon_verdict, login, login_falls_back,
    logout, NsServer,
};
use securecom_tests::{open_chat, say};

/// The topology in `$mode`, or: print `SKIPPED: why` and return from the test.
macro_rules! netns_or_skip {
    ($mode:expr) => {
        match Netns::new($mode) {
            Ok(net) => net,
            Err(why) => {
                netns::skip(&why);
                return;
            }
        }
    };
}

/// The server in `srv` (with `extra` flags), users alice and bob, and bob
/// logged in from `pub`, reachable (the other side of every test here).
fn server_and_bob(
    net: &Netns,
    family: Family,
    extra: &[&str],
) -> (
    tempfile::TempDir,
    NsServer,
    securecom_tests::User,
    securecom_tests::Client,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NsServer::start(net, dir.path(), family, extra);
    let (alice_u, bob_u) = (
        server.user(dir.path(), "alice"),
        server.user(dir.path(), "bob"),
    );
    let (bob, bob_ok) = login(net, Ns::Pub, &server, &bob_u);
    assert!(bob_ok, "bob (in pub) is not reachable: {:?}", bob.seen);
    (dir, server, alice_u, bob)
}

// ---------------------------------------------------------------------------
// Open routing: the home client is dialable.
// ---------------------------------------------------------------------------

#[test]
fn open_routing_client_is_reachable_and_chats() {
    let net = netns_or_skip!(Mode::Open);
    reachable_and_chats(&net, Family::V4);
}

#[test]
fn open_routing_v6_client_is_reachable_and_chats() {
    let net = netns_or_skip!(Mode::Open);
    reachable_and_chats(&net, Family::V6);
}

/// Alice at home is dialed by the server (her own address: no NAT), bob in
/// `pub` asks her for a chat over her request channel, she accepts, they
/// speak both ways, she logs out.
fn reachable_and_chats(net: &Netns, family: Family) {
    let (_dir, server, alice_u, mut bob) = server_and_bob(net, family, &[]);
    let (mut alice, alice_ok) = login(net, Ns::Home, &server, &alice_u);
    assert!(
        alice_ok,
        "alice (at home, open routing) is not reachable: {:?}\nstderr:\n{}",
        alice.seen,
        alice.stderr()
    );
    assert!(
        server.saw_peer(net.home_addr(family)),
        "the server did not see home's own address {}:\n{}",
        net.home_addr(family),
        server.log()
    );
    assert_eq!(alice.users(), ["alice", "bob"]);
    open_chat(&mut bob, &mut alice);
    say(&mut bob, &mut alice, "hello across the router");
    say(&mut alice, &mut bob, "hello from home");
    logout(&mut alice);
    bob.expect("chat_ended");
    assert_eq!(bob.users(), ["bob"]);
}

// ---------------------------------------------------------------------------
// NAT and firewall: the server cannot dial the home client's daemon, so the
// client dials its request channel itself (`--request-mode auto`, the
// default, no flag given), and can be asked.
// ---------------------------------------------------------------------------

#[test]
fn behind_nat_client_dials_its_request_channel_and_is_asked() {
    let net = netns_or_skip!(Mode::Nat);
    falls_back_and_is_asked(&net, Family::V4);
}

#[test]
fn behind_nat_v6_client_dials_its_request_channel_and_is_asked() {
    let net = netns_or_skip!(Mode::Nat);
    falls_back_and_is_asked(&net, Family::V6);
}

#[test]
fn behind_firewall_client_dials_its_request_channel_and_is_asked() {
    let net = netns_or_skip!(Mode::Firewall);
    falls_back_and_is_asked(&net, Family::V4);
}

#[test]
fn behind_firewall_v6_client_dials_its_request_channel_and_is_asked() {
    let net = netns_or_skip!(Mode::Firewall);
    falls_back_and_is_asked(&net, Family::V6);
}

/// Alice at home logs in with the default flags. The server sees her come
/// from `nat`'s address under NAT, from hers behind the firewall, and dials
/// her daemon there once; that fails (under NAT it dials `nat`, which
/// refuses; behind the firewall its SYN is dropped and the dial times out):
/// `daemon` reachable=false. She then opens the request channel herself,
/// through the router, as one more outbound connection: reachable=true.
/// Bob (in `pub`) asks her for a chat over that channel, she accepts, they
/// speak both ways, she logs out. Under NAT the server never sees her own
/// address, on either connection.
fn falls_back_and_is_asked(net: &Netns, family: Family) {
    let (_dir, server, alice_u, mut bob) = server_and_bob(net, family, &[]);
    let mut alice = client(net, Ns::Home, &server, &alice_u);
    login_falls_back(&mut alice);

    let seen = net.seen_by_server(Ns::Home, family);
    assert!(
        server.saw_peer(seen),
        "the server did not see alice come from {seen}:\n{}",
        server.log()
    );
    assert_eq!(
        (server.dials_to(seen), server.request_channels_from(seen)),
        (1, 1),
        "expected one dial of alice's daemon at {seen}, then one request channel \
         she dialled from there:\n{}",
        server.log()
    );
    if net.mode() == Mode::Nat {
        let home = net.home_addr(family);
        let lines = server.lines_naming(home);
        assert!(
            lines.is_empty(),
            "the server saw home's own address {home} through the NAT:\n{}",
            lines.join("\n")
        );
    }

    assert_eq!(alice.users(), ["alice", "bob"]);
    // Bob asks her: the request reaches her over the channel she opened.
    open_chat(&mut bob, &mut alice);
    say(&mut bob, &mut alice, "hello behind the router");
    say(&mut alice, &mut bob, "hello from home");
    logout(&mut alice);
    bob.expect("chat_ended");
    assert_eq!(bob.users(), ["bob"]);
    assert_eq!(
        daemon_events(&alice),
        [false, true],
        "alice's request channel was re-established: {:?}",
        alice.seen
    );
}

// ---------------------------------------------------------------------------
// The modes forced.
// ---------------------------------------------------------------------------

/// `--request-mode listen` behind the NAT: the old behaviour. Alice is only
/// ever dialled (at `nat`'s address, refused): reachable=false, and bob's
/// request to her is refused `unreachable`. She never dials a request
/// channel, and the server retries with its backoff (her announce again
/// after 2 s: a second reachable=false, the server's second dial).
#[test]
fn forced_listen_mode_behind_nat_stays_unreachable() {
    let net = netns_or_skip!(Mode::Nat);
    let family = Family::V4;
    let (_dir, server, alice_u, mut bob) = server_and_bob(&net, family, &[]);
    let mut alice = client_with(
        &net,
        Ns::Home,
        &server,
        &alice_u,
        &daemon_any(family),
        &["--request-mode", "listen"],
    );
    assert!(
        !daemon_verdict(&mut alice),
        "alice (listen mode, behind the NAT) was reachable: {:?}",
        alice.seen
    );
    // Her daemon listens (the port the server was told, and dials at `nat`).
    let port = alice.daemon_addr().port();

    bob.send("/chat alice");
    let v = bob.expect("chat_refused");
    assert_eq!(
        (v["user"].as_str(), v["reason"].as_str()),
        (Some("alice"), Some("unreachable")),
        "{v}"
    );
    alice.expect_none(Duration::from_millis(300), |v| v["event"] == "chat_request");

    // Her announce again, after the first backoff (2 s): dialled again, in
    // vain (the verdict may already be in `seen`, read while waiting above).
    if daemon_events(&alice).len() < 2 {
        alice
            .next_where(Duration::from_secs(6), |v| v["event"] == "daemon")
            .unwrap_or_else(|| panic!("alice did not announce again: {:?}", alice.seen));
    }
    let nat = SocketAddr::new(net.nat_public(family), port);
    let at = format!("addr={nat}");
    let dials = server
        .log()
        .lines()
        .filter(|l| l.contains("dialling daemon") && l.split_whitespace().any(|w| w == at))
        .count();
    assert!(
        dials >= 2,
        "the server did not dial alice's daemon at {nat} again:\n{}",
        server.log()
    );
    assert_eq!(
        server.request_channels(),
        0,
        "a request channel was dialled in listen mode:\n{}",
        server.log()
    );
    assert!(
        !alice.stderr().contains("dialling the request channel"),
        "alice dialled in listen mode:\n{}",
        alice.stderr()
    );
    logout(&mut alice);
    assert!(
        daemon_events(&alice).iter().all(|r| !r),
        "alice was reachable in listen mode: {:?}",
        alice.seen
    );
    assert_eq!(bob.users(), ["bob"]);
}

/// `--request-mode dial` with open routing (where the server could dial
/// her): alice listens on no port (no `daemon_listening` event), is never
/// dialled, and her first verdict is reachable=true (the channel she opens
/// at login, no failed dial before it); bob's request reaches her over it.
#[test]
fn dial_mode_needs_no_listening_port() {
    let net = netns_or_skip!(Mode::Open);
    let family = Family::V4;
    let (_dir, server, alice_u, mut bob) = server_and_bob(&net, family, &[]);
    let dials_before = server.dials();
    let mut alice = client_with(
        &net,
        Ns::Home,
        &server,
        &alice_u,
        &daemon_any(family),
        &["--request-mode", "dial"],
    );
    assert!(
        daemon_verdict(&mut alice),
        "alice (dial mode) was not reachable at once: {:?}\nstderr:\n{}",
        alice.seen,
        alice.stderr()
    );
    let home = net.home_addr(family);
    assert_eq!(
        (
            server.dials() - dials_before,
            server.request_channels_from(home)
        ),
        (0, 1),
        "expected no dial, one request channel alice dialled from {home}:\n{}",
        server.log()
    );

    assert_eq!(alice.users(), ["alice", "bob"]);
    open_chat(&mut bob, &mut alice);
    say(&mut bob, &mut alice, "hello to a port that is not there");
    say(&mut alice, &mut bob, "hello over the channel I dialled");
    logout(&mut alice);
    bob.expect("chat_ended");
    assert!(
        !alice.seen.iter().any(|v| v["event"] == "daemon_listening"),
        "alice listened in dial mode: {:?}",
        alice.seen
    );
    assert_eq!(daemon_events(&alice), [true], "{:?}", alice.seen);
}

// ---------------------------------------------------------------------------
// Keep-alives through the NAT.
// ---------------------------------------------------------------------------

/// The NAT forgets an idle mapping after 12 s (`nat`'s conntrack
/// established timeout); the server's request-channel keep-alive is 3 s
/// (`--request-keepalive 3`). Alice falls back to dialling her request
/// channel; her standard channel's own keep-alive (25 s) is longer than
/// this NAT's timeout, so she keeps *its* mapping alive with `/users` every
/// 4 s, while her request channel carries nothing but the server's
/// keep-alives (and her answers). After 20 s (longer than the timeout),
/// both mappings are still tracked (two TCP connections from home to the
/// server, neither closer than 12 s to expiry), bob's request reaches her
/// and they chat, and her request channel was never re-established (no
/// `daemon` event after the first two, one channel in the server's log).
#[test]
fn keepalives_hold_the_nat_mapping_of_the_request_channel() {
    const CONNTRACK_TIMEOUT: u32 = 12;
    let net = netns_or_skip!(Mode::Nat);
    let family = Family::V4;
    net.set_conntrack_established_timeout(CONNTRACK_TIMEOUT);
    let (_dir, server, alice_u, mut bob) =
        server_and_bob(&net, family, &["--request-keepalive", "3"]);
    let mut alice = client(&net, Ns::Home, &server, &alice_u);
    login_falls_back(&mut alice);
    let since = Instant::now();

    let (home, nat) = (net.home_addr(family), net.nat_public(family));
    let tracked = net.tracked_tcp(home, server.addr);
    assert_eq!(
        tracked.len(),
        2,
        "expected two tracked connections from home to the server (standard \
         and request channel):\n{}",
        net.conntrack_list()
    );

    // 20 s: the request channel left to the server's keep-alives alone.
    while since.elapsed() < Duration::from_secs(20) {
        alice.expect_none(Duration::from_secs(4), |v| v["event"] == "daemon");
        assert_eq!(alice.users(), ["alice", "bob"]);
    }
    let after = net.tracked_tcp(home, server.addr);
    let ports = |t: &[netns::Tracked]| {
        let mut p: Vec<u16> = t.iter().map(|t| t.sport).collect();
        p.sort_unstable();
        p
    };
    assert_eq!(
        ports(&after),
        ports(&tracked),
        "after {:?} the NAT does not track the same two connections from home \
         to the server:\nbefore: {tracked:#?}\nafter:\n{}",
        since.elapsed(),
        net.conntrack_list()
    );
    assert!(
        after.iter().all(|t| t.timeout <= CONNTRACK_TIMEOUT),
        "the short conntrack timeout does not apply: {after:#?}"
    );

    bob.send("/chat alice");
    let req = alice.expect("chat_request");
    assert_eq!(req["from"], "bob");
    alice.send("/accept");
    bob.expect("chat_ready");
    alice.expect("chat_ready");
    say(&mut bob, &mut alice, "still there after the NAT's timeout?");
    say(&mut alice, &mut bob, "kept alive");
    logout(&mut alice);
    bob.expect("chat_ended");
    assert_eq!(
        daemon_events(&alice),
        [false, true],
        "alice's request channel was re-established: {:?}",
        alice.seen
    );
    assert_eq!(
        (server.request_channels_from(nat), server.request_channels()),
        (1, 1),
        "expected one client-dialled request channel, from {nat}:\n{}",
        server.log()
    );
}

/// The NAT forgets the request channel's idle mapping (its conntrack timeout
/// of 8 s is shorter than the server's default 25 s keep-alive; the
/// standard channel is kept busy with `/users`): the server's next
/// keep-alive finds the channel dead, and the client opens a new one by
/// itself, with a fresh secret, so that it is asked again.
#[test]
fn a_request_channel_whose_nat_mapping_expired_is_opened_again() {
    const CONNTRACK_TIMEOUT: u32 = 8;
    let net = netns_or_skip!(Mode::Nat);
    let family = Family::V4;
    net.set_conntrack_established_timeout(CONNTRACK_TIMEOUT);
    let (_dir, server, alice_u, mut bob) = server_and_bob(&net, family, &[]);
    let mut alice = client(&net, Ns::Home, &server, &alice_u);
    login_falls_back(&mut alice);
    let nat = net.nat_public(family);
    // Until the server's keep-alive (25 s) meets the forgotten mapping, and
    // alice has announced again and is reachable again.
    let since = Instant::now();
    let mut events = Vec::new();
    while since.elapsed() < Duration::from_secs(45) && events != [false, true] {
        if let Some(v) = alice.next_where(Duration::from_secs(3), |v| v["event"] == "daemon") {
            events.push(v["reachable"] == true);
        }
        assert_eq!(alice.users(), ["alice", "bob"]);
    }
    assert_eq!(
        events,
        [false, true],
        "after {:?} alice's request channel was not opened again; log:\n{}",
        since.elapsed(),
        server.log()
    );
    println!(
        "NAT | request channel lost to an {CONNTRACK_TIMEOUT} s conntrack timeout and opened again after {:?}",
        since.elapsed()
    );
    assert_eq!(
        server.request_channels_from(nat),
        2,
        "expected a second client-dialled request channel from {nat}:\n{}",
        server.log()
    );
    // And she is asked on the new channel.
    bob.send("/chat alice");
    let req = alice.expect("chat_request");
    assert_eq!(req["from"], "bob");
    alice.send("/accept");
    bob.expect("chat_ready");
    alice.expect("chat_ready");
    say(&mut bob, &mut alice, "found you again");
    logout(&mut alice);
}

// ---------------------------------------------------------------------------
// The topology's own controls.
// ---------------------------------------------------------------------------

/// Under NAT, alice's login is one tracked mapping in `nat` (home's address
/// and port to the server's); the conntrack timeout is set in `nat` alone;
/// a flush forgets the mappings.
#[test]
fn nat_mapping_is_tracked_and_conntrack_controls_work() {
    let net = netns_or_skip!(Mode::Nat);
    let family = Family::V4;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NsServer::start(&net, dir.path(), family, &[]);
    let alice_u = server.user(dir.path(), "alice");
    let (mut alice, _) = login(&net, Ns::Home, &server, &alice_u);
    let mapping = |list: &str| {
        let (home, port) = (net.home_addr(family), server.addr.port());
        list.lines().any(|l| {
            l.contains("ESTABLISHED")
                && l.contains(&format!("src={home} "))
                && l.contains(&format!("dport={port} "))
        })
    };
    let list = net.conntrack_list();
    assert!(mapping(&list), "no mapping for alice's login:\n{list}");

    let key = "net.netfilter.nf_conntrack_tcp_timeout_established";
    let host_before = sysctl_here(key);
    net.set_conntrack_established_timeout(7);
    assert_eq!(net.run(Ns::Nat, "sysctl", ["-n", key]).trim(), "7");
    assert_eq!(sysctl_here(key), host_before, "the host's value changed");

    logout(&mut alice);
    net.flush_conntrack();
    let list = net.conntrack_list();
    assert!(
        !list.contains(&format!("dport={} ", server.addr.port())),
        "a mapping to the server survived the flush:\n{list}"
    );
}

/// `sysctl -n KEY` in the test's own namespace.
fn sysctl_here(key: &str) -> String {
    let out = std::process::Command::new("sysctl")
        .args(["-n", key])
        .output()
        .expect("run sysctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
