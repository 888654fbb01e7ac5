//! One task per connected client: it owns the client's standard-channel
//! socket, the request-channel socket to its daemon, and the core's
//! [`ServerSession`], and routes the session's events to other sessions'
//! tasks through their mailboxes (see [`crate::presence`]).
//!
//! I/O is batched: everything a wake-up reads (socket bytes or mailbox
//! commands) is fed to the core first, the output is collected, and then
//! written with one call per socket. Idle sessions hold no buffers: reads
//! go through a per-thread buffer and output buffers live only while they
//! hold bytes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use securecom_core::message::{ChatId, CloseReason, RefuseReason, UserName as Name};
use securecom_core::noise::{RequestTicket, REQUEST_HELLO_LEN};
use securecom_core::server::{ServerEvent, ServerSession};
use securecom_core::CryptoProvider;
use securecom_core::{
    PublicKey, Registry as _, ServerConfig, StaticSecret, UserName, MAX_FRAME,
    MAX_USERS_PER_MESSAGE,
};
use securecom_host::{now, thread_rng, until, HostCrypto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use zeroize::Zeroize;

use crate::listener::HandshakeTicket;
use crate::presence::{Cmd, Inbox, Mailbox, PostError, Presence};
use crate::registry::{Registry, Users};
use crate::telemetry::{self, DropReason, Limit, RequestChannel};

/// Everything the session tasks share.
pub struct Shared {
    /// The server's static key.
    pub key: StaticSecret,
    /// Session limits.
    pub config: ServerConfig,
    /// Registered users.
    pub registry: Arc<Registry>,
    /// Online users.
    pub presence: Presence,
    /// Time allowed for one write to a client before it is dropped.
    pub write_timeout: Duration,
    /// Time allowed to connect to a daemon.
    pub dial_timeout: Duration,
    /// The CA's certificate of our static key, sent in the handshake.
    pub certificate: Option<Vec<u8>>,
    /// Largest frame accepted from a client (header included).
    pub max_frame: usize,
    /// Where the server may dial announced daemons.
    pub dial_policy: DialPolicy,
    /// Bytes of output a session may have waiting for its client before it
    /// stops reading from it (and from its mailbox).
    pub output_soft_cap: usize,
    /// Bytes of output beyond which the session is dropped (`Bye { RateLimited }`).
    pub output_hard_cap: usize,
    /// Client-dialled request channels awaited, by ticket.
    pub tickets: Tickets,
    /// The crypto provider sessions run on (`--crypto`).
    pub crypto: crate::Crypto,
}

/// The tickets of the client-dialled request channels being awaited: at most
/// one per session (a new announce replaces it), removed when used, when
/// the session announces again and when it ends.
#[derive(Default)]
pub struct Tickets(Mutex<TicketMap>, tokio::sync::Notify);

/// Ticket bytes → the awaiting session's id and where to send the connection.
type TicketMap = HashMap<[u8; 32], (u64, oneshot::Sender<TcpStream>)>;

impl Tickets {
    fn lock(&self) -> std::sync::MutexGuard<'_, TicketMap> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Session `id` awaits `ticket` (its earlier ticket, if any, is void).
    fn insert(&self, id: u64, ticket: &RequestTicket) -> oneshot::Receiver<TcpStream> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.lock();
        map.retain(|_, (s, _)| *s != id);
        map.insert(*ticket.as_bytes(), (id, tx));
        drop(map);
        // A hello that overtook its `DialRequestChannel` waits for this.
        self.1.notify_waiters();
        rx
    }

    fn forget(&self, id: u64) {
        self.lock().retain(|_, (s, _)| *s != id);
    }

    /// Hands `stream` to the session awaiting `ticket`; gives the stream back
    /// if none does.
    fn deliver(&self, ticket: &RequestTicket, stream: TcpStream) -> Result<u64, TcpStream> {
        let found = self.lock().remove(ticket.as_bytes());
        match found {
            Some((id, tx)) => tx.send(stream).map(|()| id),
            None => Err(stream),
        }
    }
}

/// How long a connection whose first frame is a request hello may wait for
/// its ticket: the client sends `DialRequestChannel` on its standard channel
/// just before it connects, and the session may not have read it yet.
const TICKET_GRACE: Duration = Duration::from_secs(2);

/// A new connection whose first frame is a request hello: hand it to the
/// session that awaits its ticket, or close it.
async fn request_hello(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    let mut payload = [0u8; REQUEST_HELLO_LEN];
    let limit = Duration::from_secs(shared.config.limits.handshake_timeout.as_millis() / 1000);
    match tokio::time::timeout(limit, stream.read_exact(&mut payload)).await {
        Ok(Ok(_)) => {}
        Err(_) => return telemetry::login_failed(telemetry::LoginFailure::HandshakeTimeout),
        _ => return,
    }
    let Some(ticket) = RequestTicket::from_hello_payload(&payload) else {
        telemetry::login_failed(telemetry::LoginFailure::HandshakeError);
        debug!(%peer, "not a request hello: closed");
        return;
    };
    payload.zeroize();
    let grace = tokio::time::sleep(TICKET_GRACE);
    tokio::pin!(grace);
    let mut stream = stream;
    loop {
        // Registered before the lookup, so that a ticket inserted between
        // the two is not missed.
        let inserted = shared.tickets.1.notified();
        match shared.tickets.deliver(&ticket, stream) {
            Ok(id) => {
                debug!(session = id, %peer, "client-dialled request channel");
                return;
            }
            Err(back) => {
                stream = back;
                tokio::select! {
                    () = inserted => {}
                    () = &mut grace => {
                        telemetry::request_channel(RequestChannel::UnknownTicket);
                        debug!(%peer, "request hello with an unknown ticket: closed");
                        return;
                    }
                }
            }
        }
    }
}

/// Which announced daemons the server dials (`AnnounceDaemon` names a port
/// at the client's own address: without a policy a user could make the
/// server probe ports of a host it can see).
#[derive(Clone, Copy, Debug)]
pub struct DialPolicy {
    /// Lowest port dialled (default 1024: never a system service's port).
    pub min_port: u16,
    /// Dial loopback addresses (default: only if the server itself listens
    /// on loopback, where every client is local).
    pub allow_loopback: bool,
}

impl DialPolicy {
    /// True if `addr` may be dialled.
    pub fn allows(&self, addr: &SocketAddr) -> bool {
        let ip = match addr.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        addr.port() >= self.min_port
            && addr.port() != 0
            && !ip.is_unspecified()
            && !ip.is_multicast()
            && (self.allow_loopback || !ip.is_loopback())
    }
}

/// Bytes read per wake-up at most, so that one busy client cannot starve others.
const READ_BUDGET: usize = 64 * 1024;
/// Mailbox commands handled per wake-up at most.
const CMD_BUDGET: usize = 256;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 16 * 1024]);
    /// Where the core writes each outgoing frame before it is appended to
    /// the session's output (so that the output is never zero-filled ahead).
    static FRAME_BUF: RefCell<[u8; 2 * MAX_FRAME]> = const { RefCell::new([0; 2 * MAX_FRAME]) };
}

/// Output capacity a session in a chat keeps between writes (the next
/// message needs it at once); a session not in a chat keeps none.
const KEEP_OUTPUT: usize = 16 * 1024;

struct Task<P: CryptoProvider> {
    id: u64,
    peer: SocketAddr,
    shared: Arc<Shared>,
    session: ServerSession<P>,
    mailbox: Mailbox,
    std_wr: OwnedWriteHalf,
    std_out: Vec<u8>,
    req_rd: Option<OwnedReadHalf>,
    req_wr: Option<OwnedWriteHalf>,
    req_out: Vec<u8>,
    dial: Option<JoinHandle<std::io::Result<TcpStream>>>,
    /// The connection of a client-dialled request channel, once it comes.
    incoming: Option<oneshot::Receiver<TcpStream>>,
    /// A listing being sent: the names and how many were sent.
    listing: Option<(Arc<[Name]>, usize)>,
    /// Another `ListUsers` arrived during the listing: one more follows it.
    list_again: bool,
    /// A wake-up used its whole read or mailbox budget: yield before the next.
    busy: bool,
    /// The chat peer's mailbox, cached when the chat starts (hot path).
    peer_cache: Option<(UserName, Mailbox)>,
    /// The request delivered to this user (the core holds one at a time)
    /// and its requester's mailbox, where the answer goes: on another node,
    /// this node may not have heard of the requester's login yet.
    asked_by: Option<(ChatId, Mailbox)>,
    /// This user's own request in flight, to whom, and the mailbox it went
    /// to, where a withdrawal goes.
    asking: Option<(ChatId, UserName, Mailbox)>,
    me: Option<(UserName, PublicKey)>,
    /// True while this session is the one `presence` lists for `me`.
    listed: bool,
    /// Set when the login is over, to release the per-address handshake slot.
    handshake_done: bool,
    /// The time of this wake-up, read once per wake-up (and after each
    /// write) rather than once per frame, command and event.
    clock: securecom_core::Instant,
}

/// Runs one client's connection to its end, on the provider `--crypto` chose.
pub async fn run(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    shutdown: watch::Receiver<bool>,
    handshake: HandshakeTicket,
) {
    match shared.crypto {
        crate::Crypto::AwsLc => {
            run_on::<HostCrypto>(shared, stream, peer, id, shutdown, handshake).await
        }
        crate::Crypto::Rustcrypto => {
            run_on::<securecom_core::RustCrypto>(shared, stream, peer, id, shutdown, handshake)
                .await
        }
    }
}

async fn run_on<P: CryptoProvider>(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
    mut handshake: HandshakeTicket,
) {
    let _ = stream.set_nodelay(true);
    // The first frame's length tells a standard channel (XX message 1, 32
    // bytes) from a client-dialled request channel (a 33-byte hello).
    let mut stream = stream;
    // The handshake's deadline counts from here, the header read included.
    let started = now();
    let mut header = [0u8; 2];
    let limit = Duration::from_secs(shared.config.limits.handshake_timeout.as_millis() / 1000);
    match tokio::time::timeout(limit, stream.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        Err(_) => return telemetry::login_failed(telemetry::LoginFailure::HandshakeTimeout),
        _ => return,
    }
    if usize::from(u16::from_be_bytes(header)) == REQUEST_HELLO_LEN {
        // It counts as a handshake in progress (per source and in all)
        // until its ticket is found, and the oldest may be shed for a new one.
        tokio::select! {
            () = request_hello(&shared, stream, peer) => {}
            () = handshake.shed() => debug!(%peer, "request hello shed"),
        }
        drop(handshake);
        return;
    }
    let session =
        match ServerSession::<P>::new(&shared.config, &shared.key, started, &mut thread_rng()) {
            Ok(mut s) => {
                s.set_max_frame(shared.max_frame);
                if let Some(c) = &shared.certificate {
                    // Checked at start-up: it decodes and certifies our key.
                    if let Err(e) = s.set_certificate(c) {
                        warn!(%peer, error = %e, "certificate not sent");
                    }
                }
                s
            }
            Err(e) => {
                warn!(%peer, error = %e, "cannot start a session");
                return;
            }
        };
    let (std_rd, std_wr) = stream.into_split();
    let (mailbox, mut inbox) = Mailbox::new(id);
    let mut users = shared.registry.subscribe();
    let mut t = Task {
        id,
        peer,
        shared,
        session,
        mailbox,
        std_wr,
        std_out: Vec::new(),
        req_rd: None,
        req_wr: None,
        req_out: Vec::new(),
        dial: None,
        incoming: None,
        listing: None,
        list_again: false,
        busy: false,
        peer_cache: None,
        asked_by: None,
        asking: None,
        me: None,
        listed: false,
        handshake_done: false,
        clock: started,
    };
    debug!(session = id, %peer, "connected");
    if *shutdown.borrow() {
        t.session.shutdown(now());
    }
    // The first two bytes, read to tell the kinds of connection apart.
    t.feed_standard(&header);
    t.pump();
    let mut std_rd = std_rd;
    let mut meter = telemetry::SessionMeter::default();
    let mut host_limited = false;
    while !t.session.is_closed() {
        let deadline = t.session.poll_timeout();
        // Backpressure: a client that does not read its output is not read
        // from either (TCP then slows it down), and its mailbox fills up.
        let room = t.std_out.len() < t.shared.output_soft_cap;
        tokio::select! {
            r = std_rd.readable(), if room => match r {
                Ok(()) => {
                    t.clock = now();
                    t.read_standard(&mut std_rd);
                }
                Err(_) => t.session.disconnected(),
            },
            Some(cmd) = inbox.recv(), if room => {
                t.clock = now();
                t.on_cmds(cmd, &mut inbox);
            }
            r = users.changed() => match r {
                Ok(()) => {
                    let users = users.borrow_and_update().clone();
                    t.check_registration(&users);
                }
                // Cannot happen: `shared` holds the registry, and so its sender.
                Err(_) => t.session.shutdown(now()),
            },
            r = readable_opt(&t.req_rd) => match r {
                Ok(()) => {
                    t.clock = now();
                    t.read_request();
                }
                Err(_) => t.request_failed("request channel error"),
            },
            r = join_opt(&mut t.dial) => {
                telemetry::daemon_dial(&r);
                t.dial = None;
                t.dialled(r);
            }
            r = incoming_opt(&mut t.incoming) => {
                t.incoming = None;
                // The session's own deadline covers a client that never comes.
                if let Ok(stream) = r {
                    telemetry::request_channel(RequestChannel::ClientDialled);
                    t.dialled(Ok(stream));
                }
            }
            _ = sleep_opt(deadline) => {
                t.session.handle_timeout(now(), &mut thread_rng());
                meter.timeout(t.session.is_closed(), t.me.is_some());
            }
            _ = shutdown.changed() => t.session.shutdown(now()),
            _ = handshake.shed() => t.session.disconnected(),
        }
        if inbox.overflowed() {
            warn!(session = t.id, "mailbox overflow: dropping the session");
            telemetry::rate_limited(Limit::Mailbox);
            host_limited = true;
            t.session.rate_limited(now());
        }
        t.pump();
        // At once, before any await: a session that logged in (and is
        // listed in presence) can no longer be shed.
        if t.handshake_done {
            handshake.release();
        }
        if t.std_out.len() > t.shared.output_hard_cap {
            warn!(
                session = t.id,
                bytes = t.std_out.len(),
                "output backlog over its cap: dropping the session"
            );
            telemetry::rate_limited(Limit::OutputBacklog);
            host_limited = true;
            t.std_out.clear();
            t.session.rate_limited(now());
            t.pump();
        }
        if t.write_out().await.is_err() {
            telemetry::write_failed(t.me.is_some(), t.session.is_closed());
            t.session.disconnected();
            t.pump();
        }
        t.clock = now();
        // Pages of a listing go out as the client reads them.
        while t.listing.is_some() && !t.session.is_closed() {
            t.continue_listing();
            if t.write_out().await.is_err() {
                telemetry::write_failed(t.me.is_some(), t.session.is_closed());
                t.session.disconnected();
                t.pump();
            }
            t.clock = now();
        }
        meter.rekeys(t.session.rekeys());
        meter.refusals(t.session.refusals());
        // One task never holds a runtime thread for more than one budget.
        if std::mem::take(&mut t.busy) {
            tokio::task::yield_now().await;
        }
    }
    t.pump();
    let written = t.write_out().await.is_ok();
    let _ = t.std_wr.shutdown().await;
    if let Some(w) = &mut t.req_wr {
        let _ = w.shutdown().await;
    }
    if let Some(d) = t.dial.take() {
        d.abort();
    }
    t.shared.tickets.forget(t.id);
    // A logged-in user's client may still be sending; a stranger's
    // connection is closed at once.
    let logged_in = t.me.is_some();
    t.unlist();
    if written && logged_in {
        linger(&mut std_rd).await;
    }
    let (rekeys, request_rekeys) = t.session.rekeys();
    meter.rekeys((rekeys, request_rekeys));
    meter.refusals(t.session.refusals());
    // Closed by the core for its commands' (or re-keys') rates, not by a
    // limit of ours (counted where it bit).
    if !host_limited && t.session.close_reason() == Some(CloseReason::RateLimited) {
        telemetry::rate_limited(Limit::Commands);
    }
    debug!(session = id, %peer, rekeys, request_rekeys, "closed");
}

/// How long, and how many bytes, a closed session's socket is still read
/// (and dropped) after our last bytes and our FIN: see [`linger`].
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;

/// A lingering close (as nginx's `lingering_close`): a client may still be
/// sending when the session ends (a re-key message or a command crossing
/// our `Bye`); closing the socket with its bytes unread would answer them
/// with a TCP reset, and a reset makes the client's kernel discard what it
/// had not read yet, our `Bye` included. So the socket is read until the
/// client's EOF, for at most [`LINGER`] and [`LINGER_BYTES`], then closed.
async fn linger(rd: &mut OwnedReadHalf) {
    let mut buf = [0u8; 2048];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn incoming_opt(
    r: &mut Option<oneshot::Receiver<TcpStream>>,
) -> Result<TcpStream, oneshot::error::RecvError> {
    match r {
        Some(r) => r.await,
        None => std::future::pending().await,
    }
}

async fn readable_opt(r: &Option<OwnedReadHalf>) -> std::io::Result<()> {
    match r {
        Some(r) => r.readable().await,
        None => std::future::pending().await,
    }
}

async fn join_opt(
    d: &mut Option<JoinHandle<std::io::Result<TcpStream>>>,
) -> std::io::Result<TcpStream> {
    match d {
        Some(d) => d.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        None => std::future::pending().await,
    }
}

async fn sleep_opt(deadline: Option<securecom_core::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep(until(d)).await,
        None => std::future::pending().await,
    }
}

enum Read {
    /// `n` bytes, the whole buffer: more may be waiting.
    Data(usize),
    /// Less than the buffer: the socket is drained for now.
    Drained,
    Closed,
    Later,
}

/// Reads once (without waiting) into the thread's buffer and hands the bytes to `f`.
///
/// Through `AsyncRead::poll_read` rather than `try_read`: a read that does
/// not fill the buffer has drained the socket, and tokio then clears the
/// socket's readiness (edge-triggered epoll tells it when more comes), so
/// a wake-up costs one `recv`, not a second one to learn `EAGAIN` (each
/// takes the socket's lock, which the peer's incoming segments contend for).
fn try_read_with(rd: &mut OwnedReadHalf, f: impl FnOnce(&[u8])) -> Read {
    use std::task::{Context, Poll, Waker};
    use tokio::io::AsyncRead;
    READ_BUF.with_borrow_mut(|buf| {
        let capacity = buf.len();
        let mut rb = tokio::io::ReadBuf::new(buf);
        // No waker is needed: when this is pending, the task waits on
        // `readable()`, which registers its own.
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::Pin::new(rd).poll_read(&mut cx, &mut rb) {
            Poll::Pending => Read::Later,
            Poll::Ready(Err(_)) => Read::Closed,
            Poll::Ready(Ok(())) => match rb.filled() {
                [] => Read::Closed,
                bytes => {
                    let n = bytes.len();
                    f(bytes);
                    if n < capacity {
                        Read::Drained
                    } else {
                        Read::Data(n)
                    }
                }
            },
        }
    })
}

/// Why a task stops writing: the client is gone or too slow.
struct WriteFailed;

/// Writes all of `bytes`, within `timeout` of the first write that has to
/// wait; most writes complete at once, and then no timer is armed.
async fn write_all(
    w: &mut OwnedWriteHalf,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), WriteFailed> {
    let mut rest = bytes;
    while !rest.is_empty() {
        match w.try_write(rest) {
            Ok(0) => return Err(WriteFailed),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return match tokio::time::timeout(timeout, w.write_all(rest)).await {
                    Ok(Ok(())) => Ok(()),
                    _ => Err(WriteFailed),
                };
            }
            Err(_) => return Err(WriteFailed),
        }
    }
    Ok(())
}

impl<P: CryptoProvider> Task<P> {
    fn read_standard(&mut self, rd: &mut OwnedReadHalf) {
        let mut total = 0;
        while !self.session.is_closed() {
            if total >= READ_BUDGET || self.std_out.len() >= self.shared.output_soft_cap {
                self.busy = true;
                return;
            }
            match try_read_with(rd, |bytes| self.feed_standard(bytes)) {
                Read::Data(n) => total = total.saturating_add(n),
                Read::Drained => return,
                Read::Closed => {
                    self.session.disconnected();
                    return;
                }
                Read::Later => return,
            }
        }
    }

    fn feed_standard(&mut self, mut input: &[u8]) {
        // The registry matters only for the login; logged-in traffic skips it.
        static NOBODY: Users = Users::new();
        let users = self
            .session
            .user()
            .is_none()
            .then(|| self.shared.registry.snapshot_fresh());
        while !input.is_empty() && !self.session.is_closed() {
            let registry = users.as_deref().unwrap_or(&NOBODY);
            match self
                .session
                .handle_input(self.clock, input, registry, &mut thread_rng())
            {
                // The core never uses more than it was given.
                Ok(used) => input = input.get(used..).unwrap_or_default(),
                Err(e) => {
                    telemetry::input_error(self.me.is_some());
                    warn!(session = self.id, peer = %self.peer, user = ?self.me.as_ref().map(|m| &m.0), error = %e, "dropping client");
                    break;
                }
            }
            // One frame in, a few out: collect them before the next frame.
            self.pump();
        }
    }

    fn read_request(&mut self) {
        let Some(mut rd) = self.req_rd.take() else {
            return;
        };
        let mut total = 0;
        let mut failed = false;
        while total < READ_BUDGET && !failed {
            match try_read_with(&mut rd, |bytes| failed = !self.feed_request(bytes)) {
                Read::Data(n) => total = total.saturating_add(n),
                Read::Drained | Read::Later => break,
                Read::Closed => failed = true,
            }
        }
        if failed {
            self.request_failed("request channel closed");
        } else {
            self.req_rd = Some(rd);
        }
    }

    /// Feeds the request channel; false if it failed.
    fn feed_request(&mut self, mut input: &[u8]) -> bool {
        while !input.is_empty() {
            match self
                .session
                .handle_request_input(self.clock, input, &mut thread_rng())
            {
                // The core never uses more than it was given.
                Ok(used) => input = input.get(used..).unwrap_or_default(),
                Err(e) => {
                    warn!(session = self.id, error = %e, "request channel failed");
                    return false;
                }
            }
            self.pump();
        }
        true
    }

    fn request_failed(&mut self, why: &str) {
        debug!(session = self.id, why, "request channel down");
        self.req_rd = None;
        self.req_wr = None;
        self.req_out = Vec::new();
        self.session.request_channel_failed(now());
    }

    /// A new announce: the old request channel's socket, a dial in flight
    /// and an awaited client-dialled connection are all void.
    fn drop_request_channel(&mut self) {
        self.req_rd = None;
        self.req_wr = None;
        self.req_out = Vec::new();
        if let Some(d) = self.dial.take() {
            d.abort();
        }
        self.shared.tickets.forget(self.id);
        self.incoming = None;
    }

    fn dialled(&mut self, r: std::io::Result<TcpStream>) {
        match r {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let (rd, wr) = stream.into_split();
                match self
                    .session
                    .request_channel_connected(now(), &mut thread_rng())
                {
                    Ok(()) => {
                        self.req_rd = Some(rd);
                        self.req_wr = Some(wr);
                    }
                    Err(e) => {
                        warn!(session = self.id, error = %e, "cannot start the request channel");
                        self.session.request_channel_failed(now());
                    }
                }
            }
            Err(e) => {
                info!(session = self.id, error = %e, "daemon unreachable");
                self.session.request_channel_failed(now());
            }
        }
    }

    fn on_cmds(&mut self, first: Cmd, inbox: &mut Inbox) {
        self.on_cmd(first);
        self.pump();
        for _ in 0..CMD_BUDGET {
            if self.std_out.len() >= self.shared.output_soft_cap {
                break;
            }
            match inbox.try_recv() {
                Some(cmd) => {
                    self.on_cmd(cmd);
                    self.pump();
                }
                None => return,
            }
        }
        self.busy = true;
    }

    /// True if `key` is the key registered for `user` now.
    fn registered(&self, user: &str, key: &PublicKey) -> bool {
        self.shared.registry.snapshot().lookup(user) == Some(*key)
    }

    /// The registry changed: a session whose key is no longer its user's is over.
    fn check_registration(&mut self, users: &Users) {
        let Some((me, key)) = &self.me else { return };
        if users.lookup(me) != Some(*key) {
            info!(session = self.id, user = %me, "key no longer registered: closing the session");
            telemetry::dropped(DropReason::Revoked);
            self.session.revoked(now());
        }
    }

    /// Sends the next pages of a listing while the client's output has room.
    fn continue_listing(&mut self) {
        while let Some((names, sent)) = self.listing.take() {
            if self.session.is_closed() {
                return;
            }
            if self.std_out.len() >= self.shared.output_soft_cap
                || self.session.output_room() < MAX_FRAME
            {
                self.listing = Some((names, sent));
                return;
            }
            let page = names.get(sent..).unwrap_or_default();
            let (chunk, rest) = page.split_at(page.len().min(MAX_USERS_PER_MESSAGE));
            let refs: Vec<&str> = chunk.iter().map(|n| n.as_str()).collect();
            let more = !rest.is_empty();
            let ok = self.session.send_users(self.clock, &refs, more).is_ok();
            self.collect_output();
            if ok && more {
                self.listing = Some((names.clone(), sent.saturating_add(chunk.len())));
            } else if std::mem::take(&mut self.list_again) {
                self.listing = Some((self.shared.presence.names(), 0));
            }
        }
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        let t = self.clock;
        match cmd {
            Cmd::DeliverRequest {
                chat_id,
                from,
                from_key,
                reply,
            } => {
                // A requester whose key was revoked a moment ago is not shown.
                let result = if self.registered(&from, &from_key) {
                    self.session.deliver_request(t, chat_id, &from, from_key)
                } else {
                    Err(RefuseReason::Offline)
                };
                if result.is_ok() {
                    self.asked_by = Some((chat_id, reply.clone()));
                }
                if let Some((me, _)) = &self.me {
                    reply.post(Cmd::Delivered {
                        chat_id,
                        to: me.clone(),
                        result,
                    });
                }
            }
            Cmd::Delivered {
                chat_id,
                to,
                result: Err(reason),
            } => {
                debug!(session = self.id, chat_id, ?reason, "request not delivered");
                let _ = self.session.request_not_delivered(t, chat_id, &to, reason);
            }
            Cmd::Delivered { result: Ok(()), .. } => {}
            Cmd::Answered {
                chat_id,
                peer,
                peer_key,
                result,
                reply,
            } => {
                // Never start a chat with a key that is not registered now.
                let result = match result {
                    Ok(()) if !self.registered(&peer, &peer_key) => Err(RefuseReason::Offline),
                    r => r,
                };
                let active = self
                    .session
                    .chat_answered(t, chat_id, &peer, peer_key, result);
                if active {
                    self.peer_cache = Some((peer, reply));
                } else if result.is_ok() {
                    reply.post(Cmd::PeerLeft { chat_id });
                }
            }
            Cmd::Relay {
                chat_id,
                from,
                kind,
                noise,
            } => self.session.relay(t, chat_id, &from, kind, &noise),
            Cmd::PeerLeft { chat_id } => {
                self.peer_cache = None;
                self.session.peer_left(t, chat_id);
            }
            Cmd::Cancel { chat_id } => self.session.cancel_request(t, chat_id),
            Cmd::MergeRates(state) => {
                debug!(session = self.id, "rate state merged from another node");
                self.session.merge_rate_state(state, t);
            }
            Cmd::Replaced => {
                info!(session = self.id, "replaced by a newer login");
                telemetry::dropped(DropReason::Replaced);
                self.session.replaced(t);
            }
            Cmd::NodeLost { node } => {
                // A chat with a user of that node is over; so is one whose
                // peer is no longer online anywhere.
                let lost = self.session.chat_peer().and_then(|(peer, chat_id)| {
                    let gone = self
                        .mailbox_of(peer)
                        .is_none_or(|mb| mb.node() == Some(node));
                    gone.then_some(chat_id)
                });
                if let Some(chat_id) = lost {
                    info!(session = self.id, chat_id, "chat peer's node lost");
                    self.peer_cache = None;
                    self.session.peer_left(t, chat_id);
                }
                // A request to a user of that node: refused `Offline` (if
                // still pending); one from a user of that node: withdrawn.
                if let Some((chat_id, to, _)) =
                    self.asking.take_if(|(_, _, mb)| mb.node() == Some(node))
                {
                    let _ =
                        self.session
                            .request_not_delivered(t, chat_id, &to, RefuseReason::Offline);
                }
                if let Some((chat_id, _)) = self.asked_by.take_if(|(_, mb)| mb.node() == Some(node))
                {
                    self.session.cancel_request(t, chat_id);
                }
            }
        }
    }

    fn mailbox_of(&self, user: &UserName) -> Option<Mailbox> {
        match &self.peer_cache {
            Some((name, mb)) if name == user => Some(mb.clone()),
            _ => self.shared.presence.find(user),
        }
    }

    /// Routes the session's events and moves its output into the write buffers.
    fn pump(&mut self) {
        self.route_events();
        self.collect_output();
    }

    fn collect_output(&mut self) {
        FRAME_BUF.with_borrow_mut(|frame| {
            for (out, request) in [(&mut self.std_out, false), (&mut self.req_out, true)] {
                loop {
                    let n = if request {
                        self.session.poll_request_transmit(frame)
                    } else {
                        self.session.poll_transmit(frame)
                    };
                    match frame.get(..n) {
                        Some(bytes) if n > 0 => out.extend_from_slice(bytes),
                        _ => break,
                    }
                }
            }
        });
    }

    /// Takes this session off the online list (once).
    fn unlist(&mut self) {
        if let (true, Some((user, _))) = (self.listed, &self.me) {
            self.shared
                .presence
                .keep_rates(user, self.session.rate_state());
            self.shared.presence.logout(user, self.id);
            self.listed = false;
            telemetry::logged_out();
            info!(session = self.id, %user, "logged out");
        }
    }

    fn route_events(&mut self) {
        // An ended session leaves the online list before its chat peer is
        // told that it left: whoever hears "left" and lists the users at
        // once must not see it.
        if self.session.is_closed() {
            self.unlist();
        }
        while let Some(event) = self.session.poll_event() {
            let t = self.clock;
            match event {
                ServerEvent::LoggedIn { user, key } => {
                    telemetry::logged_in();
                    self.handshake_done = true;
                    if let Some(rates) = self.shared.presence.take_rates(&user) {
                        self.session.restore_rate_state(rates);
                    }
                    if let Some(old) =
                        self.shared
                            .presence
                            .login(user.clone(), key, self.mailbox.clone())
                    {
                        if old.session != self.id {
                            old.post(Cmd::Replaced);
                        }
                    }
                    let online = self.shared.presence.count();
                    info!(session = self.id, peer = %self.peer, %user, key = %key.fingerprint(), online, "logged in");
                    self.me = Some((user, key));
                    self.listed = true;
                }
                ServerEvent::LoginFailed {
                    reason,
                    client_version,
                } => {
                    telemetry::login_refused(reason);
                    if client_version == securecom_core::PROTOCOL_VERSION {
                        info!(session = self.id, peer = %self.peer, ?reason, "login refused")
                    } else {
                        info!(
                            session = self.id,
                            peer = %self.peer,
                            client_version,
                            server_version = securecom_core::PROTOCOL_VERSION,
                            "login refused: the client speaks protocol version {client_version}, \
                             this server {}",
                            securecom_core::PROTOCOL_VERSION
                        )
                    }
                }
                ServerEvent::AwaitRequestChannel { ticket } => {
                    self.drop_request_channel();
                    debug!(session = self.id, "awaiting the client's request channel");
                    self.incoming = Some(self.shared.tickets.insert(self.id, &ticket));
                }
                ServerEvent::DialDaemon { port } => {
                    self.drop_request_channel();
                    let addr = SocketAddr::new(self.peer.ip(), port);
                    if !self.shared.dial_policy.allows(&addr) {
                        telemetry::request_channel(RequestChannel::DialPolicy);
                        info!(session = self.id, %addr, "announced daemon not dialled (dial policy)");
                        self.session.request_channel_failed(t);
                        continue;
                    }
                    let timeout = self.shared.dial_timeout;
                    debug!(session = self.id, %addr, "dialling daemon");
                    self.dial = Some(tokio::spawn(async move {
                        tokio::time::timeout(timeout, TcpStream::connect(addr))
                            .await
                            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                    }));
                }
                ServerEvent::ListUsers => {
                    // One listing at a time; a second request during it is
                    // answered once, after it (the core rate-limits them).
                    if self.listing.is_some() {
                        self.list_again = true;
                    } else {
                        self.listing = Some((self.shared.presence.names(), 0));
                    }
                }
                ServerEvent::ChatRequest { to } => self.chat_request(t, to),
                ServerEvent::Answered {
                    chat_id,
                    requester,
                    result,
                } => {
                    let Some((me, my_key)) = self.session.identity().cloned() else {
                        continue;
                    };
                    let requester_mailbox = match self.asked_by.take() {
                        Some((id, mb)) if id == chat_id => Some(mb),
                        _ => self.shared.presence.find(&requester),
                    };
                    let posted = requester_mailbox.is_some_and(|mb| {
                        if result.is_ok() {
                            self.peer_cache = Some((requester.clone(), mb.clone()));
                        }
                        mb.post(Cmd::Answered {
                            chat_id,
                            peer: me,
                            peer_key: my_key,
                            result,
                            reply: self.mailbox.clone(),
                        })
                    });
                    if !posted && result.is_ok() {
                        self.session.peer_left(t, chat_id);
                    }
                }
                ServerEvent::Relay { to, chat_id, kind } => {
                    let Some((me, _)) = &self.me else {
                        continue;
                    };
                    let cmd = Cmd::Relay {
                        chat_id,
                        from: me.clone(),
                        kind,
                        noise: self.session.relay_payload().into(),
                    };
                    // The hot path: the cached peer's mailbox, not cloned.
                    let delivered = match &self.peer_cache {
                        Some((name, mb)) if *name == to => mb.post(cmd),
                        _ => self
                            .shared
                            .presence
                            .find(&to)
                            .is_some_and(|mb| mb.post(cmd)),
                    };
                    telemetry::relayed(kind, self.session.relay_payload().len(), delivered);
                    if !delivered {
                        // The peer is gone or too far behind: a chat with a lost
                        // message cannot go on.
                        if let Some(mb) = self.mailbox_of(&to) {
                            mb.post(Cmd::PeerLeft { chat_id });
                        }
                        self.peer_cache = None;
                        self.session.peer_left(t, chat_id);
                    }
                }
                ServerEvent::Left { peer, chat_id } => {
                    if let Some(mb) = self.mailbox_of(&peer) {
                        mb.post(Cmd::PeerLeft { chat_id });
                    }
                    self.peer_cache = None;
                }
                ServerEvent::Withdrawn { peer, chat_id } => {
                    let peer_mailbox = match self.asking.take() {
                        Some((id, _, mb)) if id == chat_id => Some(mb),
                        _ => self.shared.presence.find(&peer),
                    };
                    if let Some(mb) = peer_mailbox {
                        mb.post(Cmd::Cancel { chat_id });
                    }
                }
                ServerEvent::Closed => {}
            }
        }
    }

    fn chat_request(&mut self, t: securecom_core::Instant, to: UserName) {
        let Some((me, my_key)) = self.me.clone() else {
            return;
        };
        let users = self.shared.registry.snapshot();
        let outcome = match users.lookup(&to) {
            None => Err(RefuseReason::UnknownUser),
            Some(registered) => match self.shared.presence.find_with_key(&to) {
                // Online with a key that is no longer registered: that session
                // is being closed as revoked; never hand its key out.
                Some((key, _)) if key != registered => Err(RefuseReason::Offline),
                None => Err(RefuseReason::Offline),
                Some((_, mb)) => {
                    let chat_id = crate::presence::fresh_chat_id(&mut thread_rng());
                    // Pending first, so that a `LeaveChat` that crosses the
                    // delivery withdraws the request (mailboxes keep order).
                    let _ = self.session.chat_pending(t, chat_id, &to);
                    match mb.try_post(Cmd::DeliverRequest {
                        chat_id,
                        from: me.clone(),
                        from_key: my_key,
                        reply: self.mailbox.clone(),
                    }) {
                        Ok(()) => {
                            self.asking = Some((chat_id, to.clone(), mb));
                            info!(session = self.id, from = %me, %to, chat_id, "chat requested");
                            Ok(())
                        }
                        // Too far behind to take a request: that user is busy.
                        Err(PostError::Full) => Err(RefuseReason::Busy),
                        Err(PostError::Gone) => Err(RefuseReason::Offline),
                        // On another node, and the cluster's link is down.
                        Err(PostError::Unreachable) => Err(RefuseReason::Unreachable),
                    }
                }
            },
        };
        if let Err(reason) = outcome {
            let _ = self.session.chat_refused(t, &to, reason);
        }
    }

    /// Writes what was collected. A session in a chat keeps a small output
    /// buffer for its next message; any other keeps none.
    async fn write_out(&mut self) -> Result<(), WriteFailed> {
        let timeout = self.shared.write_timeout;
        if !self.std_out.is_empty() {
            write_all(&mut self.std_wr, &self.std_out, timeout).await?;
            if self.peer_cache.is_some() && self.std_out.capacity() <= KEEP_OUTPUT {
                self.std_out.clear();
            } else {
                self.std_out = Vec::new();
            }
        }
        if !self.req_out.is_empty() {
            let out = std::mem::take(&mut self.req_out);
            let ok = match &mut self.req_wr {
                Some(w) => write_all(w, &out, timeout).await.is_ok(),
                None => true,
            };
            if !ok {
                self.request_failed("daemon write failed");
            }
        }
        Ok(())
    }
}
