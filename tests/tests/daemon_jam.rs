//! A stranger cannot jam a client's daemon (issue 12): it cannot hold the
//! daemon's connection slots so that the server's request channel is
//! refused.
//!
//! The daemon (`host-client/src/daemon.rs`) admits only the server's address
//! by default, closes a connection that has not delivered NNpsk0 message 1
//! within 3 s, and, when its 8 slots are full, closes the oldest connection
//! that has not authenticated rather than refusing the new one.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use securecom_tests::{open_chat, say, server_with_users, Client};

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Frames a client sends before its `AnnounceDaemon`: XX messages 1 and 3
/// and the post-quantum layer's message 1, which follows XX message 3 at
/// once (the login; see `core/src/channel.rs`).
const LOGIN_FRAMES: usize = 3;

/// A TCP forwarder to `to` for one client. It passes the client's login
/// frames ([`LOGIN_FRAMES`]) and holds the next one, its `AnnounceDaemon`,
/// until `go` is received: the client is logged in and its daemon takes
/// connections, but the server has not dialled it yet.
fn gate(to: SocketAddr) -> (SocketAddr, mpsc::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("gate");
    let addr = l.local_addr().expect("gate address");
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let Ok((mut client, _)) = l.accept() else {
            return;
        };
        let Ok(mut server) = TcpStream::connect(to) else {
            return;
        };
        let (c2, s2) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        pipe(s2, c2);
        let frame = |c: &mut TcpStream| -> Option<Vec<u8>> {
            let mut h = [0u8; 2];
            c.read_exact(&mut h).ok()?;
            let mut body = vec![0u8; u16::from_be_bytes(h) as usize];
            c.read_exact(&mut body).ok()?;
            Some([&h[..], &body].concat())
        };
        for _ in 0..LOGIN_FRAMES {
            let Some(f) = frame(&mut client) else { return };
            if server.write_all(&f).is_err() {
                return;
            }
        }
        let Some(announce) = frame(&mut client) else {
            return;
        };
        if rx.recv().is_err() || server.write_all(&announce).is_err() {
            return;
        }
        pipe(client, server);
    });
    (addr, tx)
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// Opens `n` connections to `daemon` from `source` and keeps them open,
/// sending nothing.
fn jam(daemon: SocketAddr, source: Ipv4Addr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let s = socket2_connect(source, daemon)?;
            Some(s)
        })
        .collect()
}

/// Connects from a chosen loopback source address.
fn socket2_connect(source: Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::new(source.into(), 0).into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
    Some(s.into())
}

/// True once the daemon closed the connection (read gives 0 or an error).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let _ = s.set_read_timeout(Some(limit));
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn jam_from_the_servers_own_address_does_not_keep_the_server_out() {
    // The worst case: the stranger shares the server's address (the same
    // host, or a NAT in front of both), so the allow-list does not stop it.
    let (_d, server, u) = server_with_users(&["alice", "bob"]);
    let port = free_port();
    let (via, go) = gate(server.addr);
    let mut bob = Client::spawn(
        via,
        &server.key,
        &u[1].name,
        &u[1].key_file,
        &format!("127.0.0.1:{port}"),
    );
    let daemon = bob.daemon_addr();
    bob.expect("logged_in");
    // Fill every slot, and more, before the server dials.
    let mut held = jam(daemon, Ipv4Addr::LOCALHOST, 20);
    assert!(held.len() >= 8, "could not open the jamming connections");
    // Let the daemon take them all (it admits connections one by one).
    thread::sleep(Duration::from_millis(300));
    go.send(()).expect("open the gate");
    let v = bob.expect_where("daemon status", |v| v["event"] == "daemon");
    assert_eq!(v["reachable"], true, "the jam kept the server out: {v}");
    // And the channel works: alice asks, bob accepts, they chat.
    let mut alice = Client::login(&server, &u[0]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "through the jam");
    // The jamming connections were closed (evicted, or after 3 s without
    // NNpsk0 message 1).
    let start = Instant::now();
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_secs(6)),
            "a silent connection stayed open"
        );
    }
    println!(
        "JAM | 20 silent connections from the server's address: all closed within {:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_stranger_at_another_address_is_closed_at_once() {
    let (_d, server, u) = server_with_users(&["alice", "bob"]);
    let mut bob = Client::login(&server, &u[1]);
    let daemon = bob.daemon_addr();
    let mut held = jam(daemon, Ipv4Addr::new(127, 0, 0, 77), 4);
    assert_eq!(held.len(), 4, "connect from 127.0.0.77");
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_millis(1500)),
            "a stranger's connection was kept"
        );
    }
    // bob is still reachable.
    let mut alice = Client::login(&server, &u[0]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "still here");
}

#[test]
fn bogus_request_hellos_do_not_keep_a_dialling_client_out() {
    // In dial mode nothing listens on the client: the jam can only be aimed
    // at the server, with request hellos whose tickets no session awaits.
    // Each is closed (after at most 2 s of grace) and counts as a handshake
    // of its source, so they neither pile up nor stop a real client.
    let (_d, server, u) = server_with_users(&["alice", "bob"]);
    let mut held: Vec<TcpStream> = (0..12u8)
        .filter_map(|i| {
            let mut s = socket2_connect(Ipv4Addr::new(127, 0, 0, 90), server.addr)?;
            let mut hello = vec![0x00, 0x21, 0x01];
            hello.extend_from_slice(&[i; 32]);
            s.write_all(&hello).ok()?;
            Some(s)
        })
        .collect();
    assert!(held.len() >= 8, "could not open the bogus hellos");
    let mut bob = Client::spawn_trusting(
        server.addr,
        &["--server-key", &server.key, "--request-mode", "dial"],
        &u[1].name,
        &u[1].key_file,
        "127.0.0.1:0",
    );
    bob.expect("logged_in");
    let v = bob.expect_where("daemon status", |v| v["event"] == "daemon");
    assert_eq!(v["reachable"], true, "bogus hellos kept bob out: {v}");
    let mut alice = Client::login(&server, &u[0]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "dialled past the jam");
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_secs(4)),
            "a bogus request hello was kept open"
        );
    }
}
