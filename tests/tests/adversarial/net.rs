//! Sockets from chosen loopback source addresses, raw frames, and waits.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so a test can
//! connect from `127.a.b.c` to look like many hosts: the server's per-address
//! limits (connection rate, handshakes in progress) then see distinct
//! sources, and the server dials a client's daemon at the source address of
//! its connection, which lets a proxy stand in for that daemon.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// The `n`-th address of a block: `127.block.(n / 250).(n % 250 + 1)`.
/// Each test (or attack) uses its own block so that per-address limits and
/// counters of one never touch another.
pub fn source_ip(block: u8, n: u32) -> IpAddr {
    assert!(n < 250 * 256, "address {n} out of the block");
    IpAddr::V4(Ipv4Addr::new(
        127,
        block,
        (n / 250) as u8,
        (n % 250 + 1) as u8,
    ))
}

/// Connects to `to` from `from` (port chosen by the kernel).
pub fn connect_from(from: IpAddr, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&to.into(), timeout)?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    Ok(s)
}

/// A listener on `ip` with a kernel-chosen port.
pub fn listen_on(ip: IpAddr) -> TcpListener {
    TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind a listener")
}

/// `payload` framed: 2-byte big-endian length, then the bytes.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// A valid XX message 1 (any 32 bytes are an X25519 public key), framed.
pub fn xx_message_1(seed: u32) -> Vec<u8> {
    let mut e = [0u8; 32];
    for (i, b) in e.iter_mut().enumerate() {
        *b = (seed
            .wrapping_mul(2_654_435_761)
            .wrapping_add(i as u32 * 40_503)
            >> 7) as u8;
    }
    frame(&e)
}

/// How a connection ended, seen from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The peer closed (EOF) after sending this many bytes.
    Closed(usize),
    /// The peer reset the connection after sending this many bytes.
    Reset(usize),
    /// Still open at the deadline, after this many bytes.
    Open(usize),
}

impl Ending {
    /// True if the peer closed or reset the connection.
    pub fn is_closed(self) -> bool {
        !matches!(self, Ending::Open(_))
    }
    /// Bytes received before the end.
    pub fn bytes(self) -> usize {
        match self {
            Ending::Closed(n) | Ending::Reset(n) | Ending::Open(n) => n,
        }
    }
}

/// Reads until the peer closes or `limit` passes; says how it ended.
pub fn wait_end(s: &mut TcpStream, limit: Duration) -> Ending {
    let end = Instant::now() + limit;
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            return Ending::Open(total);
        };
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut buf) {
            Ok(0) => return Ending::Closed(total),
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ending::Open(total)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Ending::Reset(total),
        }
    }
}

/// Reads exactly `n` bytes within `limit` (None if the peer closed or was too slow).
pub fn read_exact_within(s: &mut TcpStream, n: usize, limit: Duration) -> Option<Vec<u8>> {
    let end = Instant::now() + limit;
    let mut out = vec![0u8; n];
    let mut at = 0;
    while at < n {
        let left = end.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match s.read(&mut out[at..]) {
            Ok(0) => return None,
            Ok(k) => at += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(out)
}

/// Writes, ignoring a peer that already closed.
pub fn write_quietly(s: &mut TcpStream, bytes: &[u8]) -> bool {
    s.write_all(bytes).is_ok()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Median and maximum of some durations.
pub fn median_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    (v[v.len() / 2], v[v.len() - 1])
}

/// Milliseconds with one decimal, for the printed figures.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
