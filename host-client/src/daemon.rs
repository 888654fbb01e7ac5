//! The daemon: accepts the server's request-channel connections.
//!
//! Each connection gets a [`RequestLink`] and a task that feeds
//! [`Client::handle_request_input`] and writes
//! [`Client::poll_request_transmit`]. When the user answers a request, the
//! main task bumps the `answers` watch; every link task then polls its
//! output, and the core hands the answer to the link that delivered the
//! request. A link that errors is closed; nothing else is affected.
//!
//! Like the reader of the standard channel, a link feeds the core one frame
//! at a time and first waits for room in the main task's queue
//! ([`Outputs::room`]): while the main task is behind, the link's socket is
//! not read.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use securecom_core::{RequestHello, RequestLink};
use securecom_host::HostCrypto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::output::Event;
use crate::session::{Outputs, Shared, UiMsg};

/// Most request-channel connections at once. The server keeps one; a few
/// more cover reconnects. When all are taken, the oldest connection that has
/// not authenticated yet is closed to make room: a stranger holding
/// connections open cannot keep the server out (only the server can
/// authenticate, so at most one or two links are ever authenticated).
pub const MAX_LINKS: usize = 8;

/// The server sends NNpsk0 message 1 as soon as it has connected: a
/// connection that has not delivered it (50 bytes) within this time is closed.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(3);

/// Who may open request-channel connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allow {
    /// Anyone (the NNpsk0 handshake still admits only the server).
    Any,
    /// Only these addresses (by default the server's).
    Only(Vec<IpAddr>),
}

impl Allow {
    /// Whether a connection from `ip` is accepted.
    pub fn permits(&self, ip: IpAddr) -> bool {
        match self {
            Allow::Any => true,
            Allow::Only(ips) => ips.iter().any(|a| canonical(*a) == canonical(ip)),
        }
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// One live connection.
struct Slot {
    id: u64,
    since: Instant,
    authenticated: Arc<AtomicBool>,
    evict: Arc<Notify>,
}

/// The live connections, at most [`MAX_LINKS`].
#[derive(Default)]
struct Slots {
    links: Mutex<Vec<Slot>>,
    next: AtomicU64,
}

impl Slots {
    /// Takes a slot for a new connection (evicting the oldest unauthenticated
    /// one when full); `None` if every slot holds an authenticated link.
    fn admit(&self, peer: SocketAddr) -> Option<(u64, Arc<AtomicBool>, Arc<Notify>)> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if links.len() >= MAX_LINKS {
            let oldest = links
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.authenticated.load(Ordering::Relaxed))
                .min_by_key(|(_, l)| l.since)
                .map(|(i, _)| i)?;
            let old = links.swap_remove(oldest);
            info!(%peer, "daemon: all request-channel slots taken; closing the oldest unauthenticated connection");
            old.evict.notify_one();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            id,
            since: Instant::now(),
            authenticated: Arc::new(AtomicBool::new(false)),
            evict: Arc::new(Notify::new()),
        };
        let handles = (id, slot.authenticated.clone(), slot.evict.clone());
        links.push(slot);
        Some(handles)
    }

    fn release(&self, id: u64) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|l| l.id != id);
    }
}

/// Accepts connections until the process exits.
pub async fn run(
    listener: TcpListener,
    allow: Allow,
    shared: Shared,
    out: Outputs,
    answers: watch::Receiver<u64>,
) {
    let slots = Arc::new(Slots::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // E.g. out of file descriptors: wait a little rather than spin.
                warn!("daemon: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if !allow.permits(peer.ip()) {
            debug!(%peer, "daemon: connection from an address that is not the server's: closed");
            continue;
        }
        let Some((id, authenticated, evict)) = slots.admit(peer) else {
            warn!(%peer, "daemon: every request-channel slot holds an authenticated link; dropping the new one");
            continue;
        };
        let (shared, out, answers, slots) =
            (shared.clone(), out.clone(), answers.clone(), slots.clone());
        tokio::spawn(async move {
            serve_link(stream, peer, shared, out, answers, &authenticated, &evict).await;
            slots.release(id);
        });
    }
}

/// Opens a request channel to the server ourselves (we cannot be dialled):
/// connects to `to`, writes `hello` (its ticket), then runs the connection
/// as a link like an accepted one. A failure is only logged: the core
/// announces again (with a backoff) when the server reports the channel down.
pub async fn dial(
    to: SocketAddr,
    hello: RequestHello,
    shared: Shared,
    out: Outputs,
    answers: watch::Receiver<u64>,
) {
    let connect = tokio::time::timeout(HELLO_TIMEOUT, TcpStream::connect(to));
    let mut stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            info!(%to, "daemon: cannot connect the request channel: {e}");
            return;
        }
        Err(_) => {
            info!(%to, "daemon: connecting the request channel timed out");
            return;
        }
    };
    if let Err(e) = stream.write_all(&hello.0).await {
        info!(%to, "daemon: request channel: {e}");
        return;
    }
    // Not one of the listener's slots: nothing to evict.
    let (authenticated, evict) = (AtomicBool::new(false), Notify::new());
    serve_link(stream, to, shared, out, answers, &authenticated, &evict).await;
}

/// Serves one request-channel connection until it closes or errors.
async fn serve_link(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Shared,
    out: Outputs,
    mut answers: watch::Receiver<u64>,
    authenticated: &AtomicBool,
    evict: &Notify,
) {
    let accepted = tokio::time::Instant::now();
    let _ = stream.set_nodelay(true);
    let link = {
        let mut core = shared.lock();
        let core = &mut *core;
        core.client.new_request_link(shared.now(), &mut core.rng)
    };
    let mut link = match link {
        Ok(l) => l,
        Err(e) => {
            debug!(%peer, "daemon: connection refused before login: {e}");
            return;
        }
    };
    debug!(%peer, "daemon: request-channel connection");
    // The link's deadline: its proof during the handshake, then its idle
    // timeout (the server keeps it alive with `Ping`): re-read after every
    // input.
    let mut deadline = link.poll_timeout();
    answers.mark_unchanged();
    let mut buf = vec![0u8; 4096];
    // NNpsk0 message 1 is one frame of 2 + 48 bytes.
    let mut read_total = 0usize;
    let result: Result<(), String> = loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    read_total = read_total.saturating_add(n);
                    let fed = feed(&shared, &out, &mut link, buf.get(..n).unwrap_or_default()).await;
                    if let Err(e) = flush(&mut stream, &shared, &mut link).await {
                        break Err(e);
                    }
                    if let Err(e) = fed {
                        break Err(e);
                    }
                    if link.is_authenticated() {
                        authenticated.store(true, Ordering::Relaxed);
                    }
                    if link.is_closed() {
                        break Ok(());
                    }
                    deadline = link.poll_timeout();
                }
                Err(e) => break Err(format!("read: {e}")),
            },
            () = evict.notified() => break Err("evicted to make room".into()),
            () = tokio::time::sleep_until(accepted + HELLO_TIMEOUT), if read_total < 50 => {
                break Err("no NNpsk0 message 1 in time".into());
            }
            changed = answers.changed() => {
                if changed.is_err() {
                    break Ok(());
                }
                if let Err(e) = flush(&mut stream, &shared, &mut link).await {
                    break Err(e);
                }
            }
            () = shared.clock().sleep_until(deadline), if deadline.is_some() => {
                let r = shared.lock().client.handle_request_timeout(&mut link, shared.now());
                if let Err(e) = r {
                    break Err(e.to_string());
                }
                deadline = link.poll_timeout();
            }
        }
    };
    match result {
        Ok(()) => debug!(%peer, "daemon: request channel closed"),
        Err(e) => info!(%peer, "daemon: request channel dropped: {e}"),
    }
    let mut core = shared.lock();
    // An answer still waiting for this link is lost with it.
    let lost_answer = core.client.has_answer_for(&link);
    core.client.request_link_closed(&link);
    if lost_answer && core.client.is_busy() && core.client.chat().is_none() {
        // The user accepted, but the link closed before the answer left: the
        // core keeps waiting for a chat the server will never start (and
        // refuses every other request as busy). Drop it, as `/leave` would.
        warn!(%peer, "daemon: the request channel closed before our answer was sent");
        out.tell(UiMsg::Local(Event::Error {
            message: "the request channel closed before your answer was sent; \
                      the chat request is void"
                .into(),
        }));
        let r = core.client.leave_chat(shared.now());
        out.drain(&mut core.client);
        if let Err(e) = r {
            debug!("daemon: could not drop the accepted request: {e}");
        }
        return;
    }
    out.drain(&mut core.client);
}

/// Feeds bytes to the link, a frame at a time, each once the main task has
/// room for its events; drains events after each.
async fn feed(
    shared: &Shared,
    out: &Outputs,
    link: &mut RequestLink<HostCrypto>,
    mut input: &[u8],
) -> Result<(), String> {
    while !input.is_empty() {
        let room = out.room().await;
        let mut guard = shared.lock();
        let core = &mut *guard;
        let r = core
            .client
            .handle_request_input(link, shared.now(), input, &mut core.rng);
        out.drain_input(&mut core.client, room);
        drop(guard);
        match r {
            Ok(0) => break,
            Ok(used) => input = input.get(used..).unwrap_or_default(),
            Err(e) => return Err(e.to_string()),
        }
        if link.is_closed() {
            break;
        }
    }
    Ok(())
}

/// Writes whatever the link has to send (handshake, answers).
async fn flush(
    stream: &mut TcpStream,
    shared: &Shared,
    link: &mut RequestLink<HostCrypto>,
) -> Result<(), String> {
    let bytes = {
        let mut core = shared.lock();
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 2048];
        loop {
            let n = core
                .client
                .poll_request_transmit(link, shared.now(), &mut chunk);
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        bytes
    };
    if bytes.is_empty() {
        return Ok(());
    }
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("write: {e}"))
}
