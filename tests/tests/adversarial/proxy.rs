//! A network attacker: a TCP man in the middle that understands the framing.
//!
//! The proxy accepts connections, connects each to the upstream address
//! (optionally from a chosen source address), cuts both byte streams into
//! frames (2-byte length + Noise message) and lets a [`Tamper`] function
//! decide, frame by frame, what goes on: the frame itself, other bytes
//! (a flipped bit, a shorter frame, the frame twice), nothing for now (held
//! back until the next frame, which reorders the two), or a cut (some bytes,
//! then both connections closed). Everything that came in is recorded per
//! connection and direction, for replays.
//!
//! The server dials a client's daemon at the source address of the client's
//! connection, so a proxy whose upstream connections come from address S
//! makes the server dial S at the announced port: a second proxy listening
//! there stands in the request channel too.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::net::connect_from;

/// Direction of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the side that connected to the proxy, towards upstream.
    Up,
    /// From upstream back to the side that connected.
    Down,
}

/// Where a frame is.
#[derive(Clone, Copy, Debug)]
pub struct FrameCtx {
    /// Index of the connection (in accept order, from 0).
    pub conn: usize,
    /// Its direction.
    pub dir: Dir,
    /// Index of the frame in this connection and direction, from 0.
    pub index: usize,
}

/// What to do with a frame.
#[derive(Clone, Debug)]
pub enum Act {
    /// Forward it unchanged.
    Pass,
    /// Forward these bytes instead (any number of frames, or garbage).
    Replace(Vec<u8>),
    /// Hold it back and forward it right after the next frame of this direction
    /// (or after [`HOLD_LIMIT`] if none comes: the tests that hold a frame
    /// always make another follow, so this is only a safety net).
    Hold,
    /// Forward these bytes, then close both connections.
    Cut(Vec<u8>),
}

/// The attacker's decision function.
pub type Tamper = Box<dyn FnMut(&FrameCtx, &[u8]) -> Act + Send>;

/// What one proxied connection carried.
#[derive(Default, Clone, Debug)]
pub struct ConnRecord {
    /// Raw bytes received from the connecting side (before tampering).
    pub up: Vec<u8>,
    /// Raw bytes received from upstream (before tampering).
    pub down: Vec<u8>,
    /// When upstream closed its side (EOF or error), if it did.
    pub upstream_closed: Option<Instant>,
    /// When the connecting side closed, if it did.
    pub client_closed: Option<Instant>,
    /// When the proxy itself cut the connection, if it did.
    pub cut: Option<Instant>,
    /// Frames that went through tampering, per direction (up, down).
    pub frames: (usize, usize),
}

struct State {
    tamper: Tamper,
    conns: Vec<ConnRecord>,
    sockets: Vec<TcpStream>,
}

/// A running proxy; closes everything when dropped.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

fn lock(s: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// Listens on `listener`, forwards to `upstream` from `source` (if given).
    pub fn start(
        listener: TcpListener,
        upstream: SocketAddr,
        source: Option<IpAddr>,
        tamper: Tamper,
    ) -> Proxy {
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State {
            tamper,
            conns: Vec::new(),
            sockets: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || accept_loop(listener, upstream, source, st, sp));
        Proxy { addr, state, stop }
    }

    /// A proxy that forwards everything unchanged.
    pub fn honest(listener: TcpListener, upstream: SocketAddr, source: Option<IpAddr>) -> Proxy {
        Self::start(listener, upstream, source, Box::new(|_, _| Act::Pass))
    }

    /// Replaces the tamper function.
    pub fn set_tamper(&self, tamper: Tamper) {
        lock(&self.state).tamper = tamper;
    }

    /// The record of connection `i`, if it exists.
    pub fn conn(&self, i: usize) -> Option<ConnRecord> {
        lock(&self.state).conns.get(i).cloned()
    }

    /// Number of connections accepted so far.
    pub fn conns(&self) -> usize {
        lock(&self.state).conns.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in &lock(&self.state).sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    source: Option<IpAddr>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let server = match source {
            Some(ip) => connect_from(ip, upstream, Duration::from_secs(5)),
            None => TcpStream::connect_timeout(&upstream, Duration::from_secs(5)),
        };
        let Ok(server) = server else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = server.set_nodelay(true);
        let conn = {
            let mut st = lock(&state);
            st.conns.push(ConnRecord::default());
            for s in [&client, &server] {
                if let Ok(c) = s.try_clone() {
                    st.sockets.push(c);
                }
            }
            st.conns.len() - 1
        };
        for (dir, from, to) in [
            (Dir::Up, client.try_clone(), server.try_clone()),
            (Dir::Down, server.try_clone(), client.try_clone()),
        ] {
            let (Ok(from), Ok(to)) = (from, to) else {
                continue;
            };
            let state = state.clone();
            std::thread::spawn(move || pump(conn, dir, from, to, state));
        }
    }
}

/// How long a held frame waits for the next one: as long as a test waits
/// for an event, since the next frame may come from a chain of processes on
/// a loaded machine.
const HOLD_LIMIT: Duration = securecom_tests::WAIT;

/// Moves one direction of one connection, frame by frame, through the tamper function.
fn pump(conn: usize, dir: Dir, mut from: TcpStream, mut to: TcpStream, state: Arc<Mutex<State>>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut acc: Vec<u8> = Vec::new();
    let mut held: Option<(Vec<u8>, Instant)> = None;
    let mut buf = [0u8; 8192];
    let mut index = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some((h, since)) = &held {
                    if since.elapsed() > HOLD_LIMIT {
                        let _ = to.write_all(h);
                        held = None;
                    }
                }
                continue;
            }
            Err(_) => 0,
        };
        if n == 0 {
            if let Some((h, _)) = held.take() {
                let _ = to.write_all(&h);
            }
            let _ = to.write_all(&acc);
            let _ = to.shutdown(Shutdown::Write);
            let mut st = lock(&state);
            let rec = &mut st.conns[conn];
            match dir {
                Dir::Up => rec.client_closed = Some(Instant::now()),
                Dir::Down => rec.upstream_closed = Some(Instant::now()),
            }
            return;
        }
        acc.extend_from_slice(&buf[..n]);
        let mut st = lock(&state);
        match dir {
            Dir::Up => st.conns[conn].up.extend_from_slice(&buf[..n]),
            Dir::Down => st.conns[conn].down.extend_from_slice(&buf[..n]),
        }
        loop {
            if acc.len() < 2 {
                break;
            }
            let len = u16::from_be_bytes([acc[0], acc[1]]) as usize;
            if acc.len() < 2 + len {
                break;
            }
            let f: Vec<u8> = acc.drain(..2 + len).collect();
            let ctx = FrameCtx { conn, dir, index };
            index += 1;
            match dir {
                Dir::Up => st.conns[conn].frames.0 += 1,
                Dir::Down => st.conns[conn].frames.1 += 1,
            }
            let act = (st.tamper)(&ctx, &f);
            let out = match act {
                Act::Pass => f,
                Act::Replace(b) => b,
                Act::Hold => {
                    held = Some((f, Instant::now()));
                    continue;
                }
                Act::Cut(b) => {
                    let _ = to.write_all(&b);
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                    st.conns[conn].cut = Some(Instant::now());
                    return;
                }
            };
            let _ = to.write_all(&out);
            if let Some((h, _)) = held.take() {
                let _ = to.write_all(&h);
            }
        }
    }
}

/// Flips bit `bit` of byte `at` of a frame's Noise message (after the header).
pub fn flip(frame: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    let i = 2 + at.min(f.len() - 3);
    f[i] ^= 1 << bit;
    f
}

/// The frame with its last `by` bytes removed and its length fixed.
pub fn shorten(frame: &[u8], by: usize) -> Vec<u8> {
    let body = &frame[2..frame.len() - by.min(frame.len() - 3)];
    super::net::frame(body)
}
