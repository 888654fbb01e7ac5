//! In-memory harness for the protocol core: a server (the real [`Hub`] or a
//! man-in-the-middle router over [`ServerSession`]s), several [`Client`]s,
//! one [`RequestLink`] per client standing for its daemon's TCP connection,
//! a simulated clock and a tap through which every frame of every channel
//! passes (to record, change, drop, duplicate or reorder it).
//!
//! Everything is deterministic: every RNG is a seeded `ChaCha20Rng` and maps
//! are `BTreeMap`s, so a scenario run twice produces the same frames.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use securecom_core::chat::ChatText;
use securecom_core::message::{CloseReason, RefuseReason};
use securecom_core::server::RelayKind;
use securecom_core::{
    ChatEnd, ChatId, Client, ClientConfig, ClientEvent, CryptoProvider, Error, Hub, Instant,
    Limits, PublicKey, Registry, RequestLink, RustCrypto, ServerConfig, ServerEvent, ServerSession,
    SessionId, StaticSecret, UserName, DEFAULT_DAEMON_PORT, MAX_USERS_PER_MESSAGE,
};

pub type Rng = ChaCha20Rng;

/// Big enough for a whole output queue (two frames) in one call.
const IO_BUF: usize = 8192;

/// A deterministic RNG for `label`.
pub fn rng_for(seed: u64, label: &str) -> Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in label.bytes().enumerate() {
        s[8 + i % 24] ^= b.wrapping_add(i as u8);
    }
    Rng::from_seed(s)
}

/// A user's long-term key, derived from its name (and a variant, for "other key" tests).
///
/// Cached per thread: a key costs a scalar multiplication (its public half),
/// which takes milliseconds in a debug build.
pub fn key_for(name: &str, variant: u8) -> StaticSecret {
    thread_local! {
        static KEYS: RefCell<BTreeMap<(String, u8), StaticSecret>> = RefCell::default();
    }
    KEYS.with(|k| {
        k.borrow_mut()
            .entry((name.to_string(), variant))
            .or_insert_with(|| {
                let mut r = rng_for(u64::from(variant) + 1000, name);
                StaticSecret::generate(&mut r)
            })
            .clone()
    })
}

pub fn name(s: &str) -> UserName {
    UserName::try_from(s).expect("valid test name")
}

pub fn text(s: &str) -> ChatText {
    ChatText::try_from(s).expect("short test text")
}

// ------------------------------------------------------------------ registry

/// The registered users: a small ordered map.
#[derive(Default, Clone)]
pub struct Reg(pub BTreeMap<String, PublicKey>);

impl Registry for Reg {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        self.0.get(user).copied()
    }
}

// ------------------------------------------------------------------ channels and the tap

/// One direction of one channel. The index is the client's index in the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Chan {
    /// Standard channel, client → server.
    StdUp(usize),
    /// Standard channel, server → client.
    StdDown(usize),
    /// Request channel, server → daemon.
    ReqDown(usize),
    /// Request channel, daemon → server.
    ReqUp(usize),
    /// E2E KK handshake message relayed from this client (MITM server only).
    E2eHs(usize),
    /// E2E chat data relayed from this client (MITM server only).
    E2eData(usize),
}

impl Chan {
    pub fn is_e2e(self) -> bool {
        matches!(self, Chan::E2eHs(_) | Chan::E2eData(_))
    }
}

/// Sees every frame before it is delivered. Socket channels pass whole wire
/// frames (2-byte header included); E2E relays pass the bare Noise message.
pub trait Tap {
    /// Returns the frames to deliver now, in order, instead of `frame`
    /// (`index` counts the original frames on `chan` from 0).
    fn on_frame(&mut self, chan: Chan, index: usize, frame: Vec<u8>) -> Vec<Vec<u8>>;
    /// Called when the world is quiet: frames still held, to deliver now.
    fn on_quiet(&mut self) -> Vec<(Chan, Vec<u8>)> {
        Vec::new()
    }
}

/// A tap from a closure (no holding).
pub struct FnTap<F>(pub F);

impl<F: FnMut(Chan, usize, Vec<u8>) -> Vec<Vec<u8>>> Tap for FnTap<F> {
    fn on_frame(&mut self, chan: Chan, index: usize, frame: Vec<u8>) -> Vec<Vec<u8>> {
        (self.0)(chan, index, frame)
    }
}

/// A single change to one frame of one channel (the property tests' input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// XOR byte `pos` of the frame (header included) with `mask` (non-zero).
    Flip { pos: usize, mask: u8 },
    /// Keep only the first `len` bytes of the Noise message (header fixed up).
    Truncate { len: usize },
    /// Deliver the frame twice.
    Duplicate,
    /// Deliver this frame after the next one on the same channel.
    SwapWithNext,
    /// Do not deliver the frame.
    Drop,
}

/// Applies one [`Mutation`] to frame `index` of `chan`.
pub struct MutationTap {
    pub chan: Chan,
    pub index: usize,
    pub mutation: Mutation,
    /// The original frame, once seen.
    pub original: Option<Vec<u8>>,
    /// True once the mutation changed what the receiver got.
    pub applied: bool,
    held: Option<Vec<u8>>,
}

impl MutationTap {
    pub fn new(chan: Chan, index: usize, mutation: Mutation) -> Self {
        MutationTap {
            chan,
            index,
            mutation,
            original: None,
            applied: false,
            held: None,
        }
    }
}

/// Rewrites a frame's length header after a change of its body.
fn reframe(body: &[u8], socket: bool) -> Vec<u8> {
    if socket {
        let mut f = (body.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    } else {
        body.to_vec()
    }
}

impl Tap for MutationTap {
    fn on_frame(&mut self, chan: Chan, index: usize, frame: Vec<u8>) -> Vec<Vec<u8>> {
        if chan != self.chan {
            return vec![frame];
        }
        if let Some(held) = self.held.take() {
            // The frame after the held one: swap them.
            self.applied = true;
            return vec![frame, held];
        }
        if index != self.index {
            return vec![frame];
        }
        self.original = Some(frame.clone());
        let socket = !chan.is_e2e();
        let header = if socket { 2 } else { 0 };
        match self.mutation {
            Mutation::Flip { pos, mask } => {
                let mut f = frame;
                let pos = pos % f.len();
                f[pos] ^= mask;
                self.applied = mask != 0;
                vec![f]
            }
            Mutation::Truncate { len } => {
                let body = &frame[header..];
                // Sockets: 0..len (an empty frame is a framing error). E2E:
                // 1..len, as an empty relay is refused by the honest session
                // code before it reaches the E2E layer.
                let len = if socket || body.len() < 2 {
                    len % body.len()
                } else {
                    1 + len % (body.len() - 1)
                };
                self.applied = true;
                vec![reframe(&body[..len], socket)]
            }
            Mutation::Duplicate => {
                self.applied = true;
                vec![frame.clone(), frame]
            }
            Mutation::SwapWithNext => {
                self.held = Some(frame);
                vec![]
            }
            Mutation::Drop => {
                self.applied = true;
                vec![]
            }
        }
    }

    fn on_quiet(&mut self) -> Vec<(Chan, Vec<u8>)> {
        // No next frame came before the world went quiet (the sender waits for
        // an answer to the held frame): it was only delayed, not reordered.
        self.held
            .take()
            .map(|f| (self.chan, f))
            .into_iter()
            .collect()
    }
}

/// A tap the test keeps a handle on (to read what it did afterwards).
pub struct Shared<T>(pub Rc<RefCell<T>>);

impl<T: Tap> Tap for Shared<T> {
    fn on_frame(&mut self, chan: Chan, index: usize, frame: Vec<u8>) -> Vec<Vec<u8>> {
        self.0.borrow_mut().on_frame(chan, index, frame)
    }
    fn on_quiet(&mut self) -> Vec<(Chan, Vec<u8>)> {
        self.0.borrow_mut().on_quiet()
    }
}

// ------------------------------------------------------------------ servers

/// A relayed E2E message on its way from one session to another.
#[derive(Clone, Debug)]
pub struct RelayOut {
    pub from: SessionId,
    pub from_name: UserName,
    pub to: UserName,
    pub chat_id: ChatId,
    pub kind: RelayKind,
    pub noise: Vec<u8>,
}

/// What the world needs of a server: the [`Hub`] API, plus relay interception.
pub trait Server {
    /// The crypto provider of the server's sessions (and of the world's clients).
    type Crypto: CryptoProvider;
    fn accept(&mut self, now: Instant, rng: &mut Rng) -> SessionId;
    fn handle_input(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        reg: &Reg,
        rng: &mut Rng,
    ) -> Result<usize, Error>;
    fn poll_transmit(&mut self, id: SessionId, now: Instant, out: &mut [u8]) -> usize;
    fn poll_dial(&mut self) -> Option<(SessionId, u16)>;
    /// A client-dialled request channel presented `ticket`.
    fn request_channel_by_ticket(
        &mut self,
        _ticket: &securecom_core::noise::RequestTicket,
        _now: Instant,
        _rng: &mut Rng,
    ) -> Option<SessionId> {
        None
    }
    fn request_channel_connected(
        &mut self,
        id: SessionId,
        now: Instant,
        rng: &mut Rng,
    ) -> Result<(), Error>;
    fn request_channel_failed(&mut self, id: SessionId, now: Instant, reg: &Reg);
    fn handle_request_input(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        reg: &Reg,
        rng: &mut Rng,
    ) -> Result<usize, Error>;
    fn poll_request_transmit(&mut self, id: SessionId, out: &mut [u8]) -> usize;
    fn disconnected(&mut self, id: SessionId, now: Instant, reg: &Reg);
    fn remove(&mut self, id: SessionId, now: Instant, reg: &Reg);
    fn handle_timeout(&mut self, now: Instant, reg: &Reg, rng: &mut Rng);
    fn poll_timeout(&self) -> Option<Instant>;
    fn online(&self) -> usize;
    fn session(&self, id: SessionId) -> Option<&ServerSession<Self::Crypto>>;
    /// Relays the server holds for the world (only the MITM server has any).
    fn take_relays(&mut self) -> Vec<RelayOut> {
        Vec::new()
    }
    /// Delivers a (possibly changed) relay.
    fn deliver_relay(&mut self, _relay: RelayOut, _now: Instant, _reg: &Reg) {}
}

impl<const N: usize, P: CryptoProvider> Server for Hub<N, P> {
    type Crypto = P;
    fn accept(&mut self, now: Instant, rng: &mut Rng) -> SessionId {
        Hub::accept(self, now, rng).expect("hub has a free slot")
    }
    fn handle_input(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        reg: &Reg,
        rng: &mut Rng,
    ) -> Result<usize, Error> {
        Hub::handle_input(self, id, now, input, reg, rng)
    }
    fn poll_transmit(&mut self, id: SessionId, now: Instant, out: &mut [u8]) -> usize {
        Hub::poll_transmit(self, id, now, out)
    }
    fn poll_dial(&mut self) -> Option<(SessionId, u16)> {
        Hub::poll_dial(self)
    }
    fn request_channel_by_ticket(
        &mut self,
        ticket: &securecom_core::noise::RequestTicket,
        now: Instant,
        rng: &mut Rng,
    ) -> Option<SessionId> {
        Hub::request_channel_by_ticket(self, ticket, now, rng)
    }
    fn request_channel_connected(
        &mut self,
        id: SessionId,
        now: Instant,
        rng: &mut Rng,
    ) -> Result<(), Error> {
        Hub::request_channel_connected(self, id, now, rng)
    }
    fn request_channel_failed(&mut self, id: SessionId, now: Instant, reg: &Reg) {
        Hub::request_channel_failed(self, id, now, reg)
    }
    fn handle_request_input(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        reg: &Reg,
        rng: &mut Rng,
    ) -> Result<usize, Error> {
        Hub::handle_request_input(self, id, now, input, reg, rng)
    }
    fn poll_request_transmit(&mut self, id: SessionId, out: &mut [u8]) -> usize {
        Hub::poll_request_transmit(self, id, out)
    }
    fn disconnected(&mut self, id: SessionId, now: Instant, reg: &Reg) {
        Hub::disconnected(self, id, now, reg)
    }
    fn remove(&mut self, id: SessionId, now: Instant, reg: &Reg) {
        Hub::remove(self, id, now, reg)
    }
    fn handle_timeout(&mut self, now: Instant, reg: &Reg, rng: &mut Rng) {
        Hub::handle_timeout(self, now, reg, rng)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Hub::poll_timeout(self)
    }
    fn online(&self) -> usize {
        Hub::online(self)
    }
    fn session(&self, id: SessionId) -> Option<&ServerSession<P>> {
        Hub::session(self, id)
    }
}

/// A server that routes like [`Hub`] but hands every E2E relay to the world
/// first: the man in the middle of the tampering tests. It is built only from
/// the public [`ServerSession`] API, following the driver contract in
/// `server.rs`.
pub struct MitmServer {
    config: ServerConfig,
    key: StaticSecret,
    sessions: Vec<Option<ServerSession>>,
    next_chat: ChatId,
    dials: VecDeque<(SessionId, u16)>,
    relays: Vec<RelayOut>,
}

impl MitmServer {
    pub fn new(config: ServerConfig, key: StaticSecret) -> Self {
        MitmServer {
            config,
            key,
            sessions: Vec::new(),
            next_chat: 1,
            dials: VecDeque::new(),
            relays: Vec::new(),
        }
    }

    fn find(&self, user: &str) -> Option<SessionId> {
        self.sessions.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| !s.is_closed() && s.user().is_some_and(|u| u == user))
        })
    }

    fn sess(&mut self, id: SessionId) -> Option<&mut ServerSession> {
        self.sessions.get_mut(id)?.as_mut()
    }

    fn route(&mut self, now: Instant, reg: &Reg) {
        let mut busy = true;
        while busy {
            busy = false;
            for id in 0..self.sessions.len() {
                while let Some(ev) = self.sess(id).and_then(ServerSession::poll_event) {
                    busy = true;
                    self.route_one(id, now, ev, reg);
                }
            }
        }
    }

    fn route_one(&mut self, id: SessionId, now: Instant, ev: ServerEvent, reg: &Reg) {
        match ev {
            ServerEvent::LoggedIn { user, .. } => {
                let older = (0..self.sessions.len()).find(|&i| {
                    i != id
                        && self.sessions[i]
                            .as_ref()
                            .is_some_and(|s| !s.is_closed() && s.user() == Some(&user))
                });
                if let Some(old) = older.and_then(|o| self.sess(o)) {
                    old.replaced(now);
                }
            }
            ServerEvent::LoginFailed { .. } | ServerEvent::Closed => {}
            ServerEvent::DialDaemon { port } => self.dials.push_back((id, port)),
            // The MITM router does not take client-dialled request channels.
            ServerEvent::AwaitRequestChannel { .. } => {}
            ServerEvent::ListUsers => {
                let names: Vec<UserName> = self
                    .sessions
                    .iter()
                    .flatten()
                    .filter_map(|s| s.user().cloned())
                    .collect();
                let chunks: Vec<&[UserName]> = if names.is_empty() {
                    vec![&[]]
                } else {
                    names.chunks(MAX_USERS_PER_MESSAGE).collect()
                };
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.iter().enumerate() {
                    let refs: Vec<&str> = chunk.iter().map(|n| n.as_str()).collect();
                    if let Some(s) = self.sess(id) {
                        let _ = s.send_users(now, &refs, i != last);
                    }
                }
            }
            ServerEvent::ChatRequest { to } => {
                let Some(me) = self.sessions[id].as_ref() else {
                    return;
                };
                let (Some(my_name), Some(my_key)) = (me.user().cloned(), me.user_key()) else {
                    return;
                };
                let outcome = if reg.lookup(&to).is_none() {
                    Err(RefuseReason::UnknownUser)
                } else if let Some(target) = self.find(&to) {
                    let chat_id = self.next_chat;
                    self.next_chat += 1;
                    self.sess(target)
                        .map_or(Err(RefuseReason::Offline), |t| {
                            t.deliver_request(now, chat_id, &my_name, my_key)
                        })
                        .map(|()| chat_id)
                } else {
                    Err(RefuseReason::Offline)
                };
                if let Some(me) = self.sess(id) {
                    let _ = match outcome {
                        Ok(chat_id) => me.chat_pending(now, chat_id, &to),
                        Err(reason) => me.chat_refused(now, &to, reason),
                    };
                }
            }
            ServerEvent::Answered {
                chat_id,
                requester,
                result,
            } => {
                let Some((my_name, my_key)) = self.sessions[id]
                    .as_ref()
                    .and_then(|s| s.identity().cloned())
                else {
                    return;
                };
                let active = self
                    .find(&requester)
                    .and_then(|r| self.sess(r))
                    .is_some_and(|r| r.chat_answered(now, chat_id, &my_name, my_key, result));
                if result.is_ok() && !active {
                    if let Some(me) = self.sess(id) {
                        me.peer_left(now, chat_id);
                    }
                }
            }
            ServerEvent::Relay { to, chat_id, kind } => {
                let Some(((from_name, _), noise)) = self.sessions[id]
                    .as_ref()
                    .and_then(|s| Some((s.identity().cloned()?, s.relay_payload().to_vec())))
                else {
                    return;
                };
                self.relays.push(RelayOut {
                    from: id,
                    from_name,
                    to,
                    chat_id,
                    kind,
                    noise,
                });
            }
            ServerEvent::Left { peer, chat_id } => {
                if let Some(p) = self.find(&peer).and_then(|p| self.sess(p)) {
                    p.peer_left(now, chat_id);
                }
            }
            ServerEvent::Withdrawn { peer, chat_id } => {
                if let Some(p) = self.find(&peer).and_then(|p| self.sess(p)) {
                    p.cancel_request(now, chat_id);
                }
            }
        }
    }
}

impl Server for MitmServer {
    type Crypto = RustCrypto;
    fn accept(&mut self, now: Instant, rng: &mut Rng) -> SessionId {
        let s = ServerSession::new(&self.config, &self.key, now, rng).expect("session");
        self.sessions.push(Some(s));
        self.sessions.len() - 1
    }
    fn handle_input(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        reg: &Reg,
        rng: &mut Rng,
    ) -> Result<usize, Error> {
        let s = self.sess(id).ok_or(securecom_core::ProtocolError::Closed)?;
        let r = s.handle_input(now, input, reg, rng);
        self.route(now, reg);
        r
    }
    fn poll_transmit(&mut self, id: SessionId, _now: Instant, out: &mut [u8]) -> usize {
        self.sess(id).map_or(0, |s| s.poll_transmit(out))
    }
    fn poll_dial(&mut self) -> Option<(SessionId, u16)> {
        self.dials.pop_front()
    }
    fn request_channel_connected(
        &mut self,
        id: SessionId,
        now: Instant,
        rng: &mut Rng,
    ) -> Result<(), Error> {
        self.sess(id)
            .ok_or(securecom_core::ProtocolError::Closed)?
            .request_channel_connected(now, rng)
    }
    fn request_channel_failed(&mut self, id: SessionId, now: Instant, reg: &Reg) {
        if let Some(s) = self.sess(id) {
            s.request_channel_failed(now);
        }
        self.route(now, reg);
    }
    fn handle_request_input(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        reg: &Reg,
        rng: &mut Rng,
    ) -> Result<usize, Error> {
        let s = self.sess(id).ok_or(securecom_core::ProtocolError::Closed)?;
        let r = s.handle_request_input(now, input, rng);
        self.route(now, reg);
        r
    }
    fn poll_request_transmit(&mut self, id: SessionId, out: &mut [u8]) -> usize {
        self.sess(id).map_or(0, |s| s.poll_request_transmit(out))
    }
    fn disconnected(&mut self, id: SessionId, now: Instant, reg: &Reg) {
        if let Some(s) = self.sess(id) {
            s.disconnected();
        }
        self.route(now, reg);
    }
    fn remove(&mut self, id: SessionId, now: Instant, reg: &Reg) {
        self.disconnected(id, now, reg);
        if let Some(s) = self.sessions.get_mut(id) {
            *s = None;
        }
    }
    fn handle_timeout(&mut self, now: Instant, reg: &Reg, rng: &mut Rng) {
        for s in self.sessions.iter_mut().flatten() {
            s.handle_timeout(now, rng);
        }
        self.route(now, reg);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .iter()
            .flatten()
            .filter_map(ServerSession::poll_timeout)
            .min()
    }
    fn online(&self) -> usize {
        self.sessions
            .iter()
            .flatten()
            .filter(|s| s.user().is_some())
            .count()
    }
    fn session(&self, id: SessionId) -> Option<&ServerSession> {
        self.sessions.get(id)?.as_ref()
    }
    fn take_relays(&mut self) -> Vec<RelayOut> {
        std::mem::take(&mut self.relays)
    }
    fn deliver_relay(&mut self, r: RelayOut, now: Instant, reg: &Reg) {
        if let Some(p) = self.find(&r.to).and_then(|p| self.sess(p)) {
            p.relay(now, r.chat_id, &r.from_name, r.kind, &r.noise);
        }
        self.route(now, reg);
    }
}

// ------------------------------------------------------------------ the world

/// One user's side: the client, its daemon's link and the sockets' bytes in flight.
pub struct Peer<P: CryptoProvider = RustCrypto> {
    pub name: String,
    pub identity: StaticSecret,
    pub config: ClientConfig,
    pub client: Client<P>,
    pub rng: Rng,
    pub sid: SessionId,
    /// The daemon's current request-channel connection.
    pub link: Option<RequestLink<P>>,
    /// Every event the client reported, in order.
    pub events: Vec<ClientEvent>,
    /// The last chat request shown to this user (what `/accept` answers).
    pub shown_request: Option<ChatId>,
    /// Every error the client's `handle_*` calls returned.
    pub errors: Vec<(Chan, Error)>,
    /// The standard channel's TCP connection is up.
    pub std_open: bool,
    /// The driver calls `handle_timeout` (keep-alives); false: a stuck driver.
    pub drive_timeouts: bool,
    /// Texts sent successfully with `send_text`, in order.
    pub sent_texts: Vec<String>,
    /// The client does not read its standard socket (a slow reader): the
    /// server's output for it stays queued in the server.
    pub paused: bool,
    up_in: Vec<u8>,
    down_in: Vec<u8>,
    req_down_in: Vec<u8>,
    req_up_in: Vec<u8>,
    /// The server cannot dial this client (see [`ClientSpec::undialable`]).
    pub undialable: bool,
    /// A request-channel connection the client asked to open (its hello).
    dial_back: Option<securecom_core::client::RequestHello>,
    /// How many request-channel connections the client opened itself.
    pub dial_backs: usize,
}

impl<P: CryptoProvider> Peer<P> {
    /// Chat texts received, in order.
    pub fn received_texts(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::ChatMessage { text, .. } => Some(text.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Takes the events seen so far.
    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    /// The `ChatEnded` reasons seen so far.
    pub fn chat_ends(&self) -> Vec<ChatEnd> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::ChatEnded { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    pub fn closed_reason(&self) -> Option<CloseReason> {
        self.events.iter().find_map(|e| match e {
            ClientEvent::Closed(r) => Some(*r),
            _ => None,
        })
    }

    /// The last `ChatReady`, if any.
    pub fn chat_ready(&self) -> Option<ClientEvent> {
        self.events
            .iter()
            .rev()
            .find(|e| matches!(e, ClientEvent::ChatReady { .. }))
            .cloned()
    }

    /// The last `ChatRequest`'s chat id, if any.
    pub fn last_request(&self) -> Option<ChatId> {
        self.events.iter().rev().find_map(|e| match e {
            ClientEvent::ChatRequest { chat_id, .. } => Some(*chat_id),
            _ => None,
        })
    }
}

/// How to build one client.
#[derive(Clone)]
pub struct ClientSpec {
    pub name: String,
    /// Register the key under the name before connecting.
    pub register: bool,
    /// Key variant: 0 is the user's own key; another value is someone else's.
    pub key_variant: u8,
    /// Pin this server key instead of the real one.
    pub server_key: Option<PublicKey>,
    pub limits: Limits,
    pub daemon: bool,
    /// How the client opens its request channel.
    pub request_mode: securecom_core::RequestMode,
    /// The server cannot dial this client's daemon (a NAT or a firewall).
    pub undialable: bool,
}

impl ClientSpec {
    pub fn new(name: &str) -> Self {
        ClientSpec {
            name: name.into(),
            register: true,
            key_variant: 0,
            server_key: None,
            limits: Limits::DEFAULT,
            daemon: true,
            request_mode: securecom_core::RequestMode::Auto,
            undialable: false,
        }
    }
}

/// The whole system in memory.
pub struct World<S: Server> {
    pub server: S,
    pub server_key: PublicKey,
    pub reg: Reg,
    pub rng: Rng,
    pub now: Instant,
    pub peers: Vec<Peer<S::Crypto>>,
    /// Every error the server's `handle_*` calls returned.
    pub server_errors: Vec<(Chan, Error)>,
    /// The original frames of every channel, in order (before the tap).
    pub transcript: BTreeMap<Chan, Vec<Vec<u8>>>,
    pub tap: Option<Box<dyn Tap>>,
    /// Last relay seen from each client (to deliver frames a tap held back).
    last_relay: BTreeMap<usize, RelayOut>,
    seed: u64,
    pub limits: Limits,
}

pub const SEED: u64 = 0x5ec0_c0de;

/// The session id of a client whose connection is gone.
pub const GONE: SessionId = usize::MAX;

impl<const N: usize, P: CryptoProvider> World<Hub<N, P>> {
    /// A world around the real [`Hub`].
    pub fn hub(limits: Limits) -> Self {
        let rng = rng_for(SEED, "server");
        let key = key_for("#server", 0);
        let pk = key.public_key();
        let hub = Hub::<N, P>::new(ServerConfig::new(limits), key);
        World::with_server(hub, pk, rng, limits)
    }
}

impl World<MitmServer> {
    /// A world around the man-in-the-middle router.
    pub fn mitm(limits: Limits) -> Self {
        let rng = rng_for(SEED, "server");
        let key = key_for("#server", 0);
        let pk = key.public_key();
        World::with_server(
            MitmServer::new(ServerConfig::new(limits), key),
            pk,
            rng,
            limits,
        )
    }
}

impl<S: Server> World<S> {
    pub fn with_server(server: S, server_key: PublicKey, rng: Rng, limits: Limits) -> Self {
        World {
            server,
            server_key,
            reg: Reg::default(),
            rng,
            now: Instant::from_millis(1_000),
            peers: Vec::new(),
            server_errors: Vec::new(),
            transcript: BTreeMap::new(),
            tap: None,
            last_relay: BTreeMap::new(),
            seed: SEED,
            limits,
        }
    }

    pub fn set_tap(&mut self, tap: impl Tap + 'static) {
        self.tap = Some(Box::new(tap));
    }

    /// Registers `name` with its own key.
    pub fn register(&mut self, name: &str) -> PublicKey {
        let pk = key_for(name, 0).public_key();
        self.reg.0.insert(name.into(), pk);
        pk
    }

    /// Connects a client (no pumping).
    pub fn connect(&mut self, spec: ClientSpec) -> usize {
        if spec.register {
            self.register(&spec.name);
        }
        let identity = key_for(&spec.name, spec.key_variant);
        let idx = self.peers.len();
        let port = DEFAULT_DAEMON_PORT + idx as u16;
        let config = ClientConfig {
            user: name(&spec.name),
            server_key: spec.server_key.unwrap_or(self.server_key),
            daemon_port: spec.daemon.then_some(port),
            limits: spec.limits,
        };
        let mut rng = rng_for(self.seed, &format!("{}#{}", spec.name, idx));
        let mut client =
            Client::<S::Crypto>::new(config.clone(), identity.clone(), self.now, &mut rng)
                .expect("client");
        client.set_request_mode(spec.request_mode);
        let sid = self.server.accept(self.now, &mut self.rng);
        self.peers.push(Peer {
            name: spec.name,
            identity,
            config,
            client,
            rng,
            sid,
            link: None,
            events: Vec::new(),
            shown_request: None,
            errors: Vec::new(),
            std_open: true,
            drive_timeouts: true,
            sent_texts: Vec::new(),
            paused: false,
            up_in: Vec::new(),
            down_in: Vec::new(),
            req_down_in: Vec::new(),
            req_up_in: Vec::new(),
            undialable: spec.undialable,
            dial_back: None,
            dial_backs: 0,
        });
        idx
    }

    /// Registers, connects and logs in `name` with the world's limits; asserts success.
    pub fn login(&mut self, name_: &str) -> usize {
        let spec = ClientSpec {
            limits: self.limits,
            ..ClientSpec::new(name_)
        };
        let i = self.connect(spec);
        self.pump();
        let p = &mut self.peers[i];
        assert_eq!(
            p.take_events(),
            vec![
                ClientEvent::LoggedIn { user: name(name_) },
                ClientEvent::DaemonStatus { reachable: true }
            ],
            "login of {name_}"
        );
        assert!(p.client.is_logged_in());
        i
    }

    /// Logs client `i` in again on a new connection (same name and key); the
    /// old client and its link are returned (the old connection stays open
    /// until the server replaces it).
    pub fn relogin(&mut self, i: usize) -> (Client<S::Crypto>, Option<RequestLink<S::Crypto>>) {
        let config = self.peers[i].config.clone();
        let identity = self.peers[i].identity.clone();
        let sid = self.server.accept(self.now, &mut self.rng);
        let p = &mut self.peers[i];
        let new = Client::<S::Crypto>::new(config, identity, self.now, &mut p.rng).expect("client");
        let old = std::mem::replace(&mut p.client, new);
        let old_link = p.link.take();
        let old_sid = std::mem::replace(&mut p.sid, sid);
        p.up_in.clear();
        p.down_in.clear();
        p.req_down_in.clear();
        p.req_up_in.clear();
        p.std_open = true;
        // The old connection: the server will replace that session; the old
        // client is the caller's now, so its socket goes away.
        self.server.remove(old_sid, self.now, &self.reg);
        self.pump();
        (old, old_link)
    }

    pub fn peer(&mut self, i: usize) -> &mut Peer<S::Crypto> {
        &mut self.peers[i]
    }

    pub fn session(&self, i: usize) -> Option<&ServerSession<S::Crypto>> {
        self.server.session(self.peers[i].sid)
    }

    // ---------------------------------------------------------- user commands (recorded)

    pub fn send_text(&mut self, i: usize, t: &str) -> Result<(), Error> {
        let now = self.now;
        let p = &mut self.peers[i];
        let r = p.client.send_text(now, t);
        if r.is_ok() {
            p.sent_texts.push(t.into());
        }
        self.drain_events(i);
        r
    }

    pub fn request_chat(&mut self, i: usize, user: &str) -> Result<(), Error> {
        let now = self.now;
        let r = self.peers[i].client.request_chat(now, user);
        self.drain_events(i);
        r
    }

    /// Answers the last request peer `i` was shown (as a UI does).
    pub fn answer(&mut self, i: usize, accept: bool) -> Result<(), Error> {
        let shown = self.peers[i].shown_request.unwrap_or(0);
        self.answer_id(i, shown, accept)
    }

    /// Answers request `chat_id` (maybe not the current one).
    pub fn answer_id(&mut self, i: usize, chat_id: ChatId, accept: bool) -> Result<(), Error> {
        let r = self.peers[i].client.answer_request(chat_id, accept);
        self.drain_events(i);
        r
    }

    pub fn leave(&mut self, i: usize) -> Result<(), Error> {
        let now = self.now;
        let r = self.peers[i].client.leave_chat(now);
        self.drain_events(i);
        r
    }

    pub fn list_users(&mut self, i: usize) -> Result<(), Error> {
        let now = self.now;
        let r = self.peers[i].client.list_users(now);
        self.drain_events(i);
        r
    }

    pub fn logout(&mut self, i: usize) -> Result<(), Error> {
        let now = self.now;
        let r = self.peers[i].client.logout(now);
        self.drain_events(i);
        r
    }

    /// `a` asks `b`, `b` accepts; pumps until both are ready and returns the chat id.
    /// alice and bob logged in and in an open chat, their events so far
    /// cleared; returns their indices.
    pub fn chatting(&mut self) -> (usize, usize) {
        let a = self.login("alice");
        let b = self.login("bob");
        self.open_chat(a, b);
        self.peers[a].take_events();
        self.peers[b].take_events();
        (a, b)
    }

    pub fn open_chat(&mut self, a: usize, b: usize) -> ChatId {
        let b_name = self.peers[b].name.clone();
        self.request_chat(a, &b_name).expect("request");
        self.pump();
        assert!(self.peers[b].last_request().is_some(), "{b_name} was asked");
        self.answer(b, true).expect("accept");
        self.pump();
        let ready = |p: &Peer<S::Crypto>| match p.chat_ready() {
            Some(ClientEvent::ChatReady { chat_id, .. }) => chat_id,
            other => panic!("{}: no ChatReady: {other:?} in {:?}", p.name, p.events),
        };
        let id = ready(&self.peers[a]);
        assert_eq!(ready(&self.peers[b]), id);
        id
    }

    // ---------------------------------------------------------- pumping

    fn drain_events(&mut self, i: usize) {
        let p = &mut self.peers[i];
        while let Some(e) = p.client.poll_event() {
            if let ClientEvent::ChatRequest { chat_id, .. } = &e {
                p.shown_request = Some(*chat_id);
            }
            if let ClientEvent::ConnectRequestChannel(hello) = &e {
                p.dial_back = Some(hello.clone());
            }
            p.events.push(e);
        }
    }

    /// Runs every channel until nothing moves (releasing what the tap holds at the end).
    pub fn pump(&mut self) {
        let mut rounds = 0;
        loop {
            while self.step() {
                rounds += 1;
                assert!(rounds < 100_000, "the world does not settle");
            }
            let held = self.tap.as_mut().map(|t| t.on_quiet()).unwrap_or_default();
            if held.is_empty() {
                break;
            }
            for (chan, frame) in held {
                self.deliver(chan, frame);
            }
        }
    }

    fn step(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.peers.len() {
            progress |= self.client_std_out(i);
            progress |= self.server_std_in(i);
            // After the server read the client's `DialRequestChannel`: a
            // hello that overtakes it would find no ticket (a real server
            // waits a moment for it).
            progress |= self.dial_backs(i);
            progress |= self.server_std_out(i);
            progress |= self.client_std_in(i);
            progress |= self.dials();
            progress |= self.req_down(i);
            progress |= self.client_req_in(i);
            progress |= self.req_up(i);
            progress |= self.server_req_in(i);
            progress |= self.close_finished(i);
        }
        progress
    }

    /// Splits socket output into frames, records them, runs the tap, delivers.
    fn emit(&mut self, chan: Chan, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            assert!(rest.len() >= 2, "partial frame header on {chan:?}");
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            assert!(rest.len() >= 2 + n, "partial frame on {chan:?}");
            let frame = rest[..2 + n].to_vec();
            rest = &rest[2 + n..];
            self.emit_frame(chan, frame);
        }
    }

    fn emit_frame(&mut self, chan: Chan, frame: Vec<u8>) {
        let log = self.transcript.entry(chan).or_default();
        let index = log.len();
        log.push(frame.clone());
        let out = match self.tap.as_mut() {
            Some(t) => t.on_frame(chan, index, frame),
            None => vec![frame],
        };
        for f in out {
            self.deliver(chan, f);
        }
    }

    /// Puts a frame on its way to the receiver of `chan`.
    pub fn deliver(&mut self, chan: Chan, frame: Vec<u8>) {
        match chan {
            Chan::StdUp(i) => self.peers[i].up_in.extend_from_slice(&frame),
            Chan::StdDown(i) => self.peers[i].down_in.extend_from_slice(&frame),
            Chan::ReqDown(i) => self.peers[i].req_down_in.extend_from_slice(&frame),
            Chan::ReqUp(i) => self.peers[i].req_up_in.extend_from_slice(&frame),
            Chan::E2eHs(i) | Chan::E2eData(i) => {
                if let Some(meta) = self.last_relay.get(&i) {
                    let mut r = meta.clone();
                    r.kind = if matches!(chan, Chan::E2eHs(_)) {
                        RelayKind::Handshake
                    } else {
                        RelayKind::Data
                    };
                    r.noise = frame;
                    self.server.deliver_relay(r, self.now, &self.reg);
                    self.flush_relays();
                }
            }
        }
    }

    /// Hands relays the (MITM) server holds through the tap, and on.
    fn flush_relays(&mut self) {
        loop {
            let relays = self.server.take_relays();
            if relays.is_empty() {
                return;
            }
            for r in relays {
                let Some(i) = self.peers.iter().position(|p| p.sid == r.from) else {
                    continue;
                };
                let chan = match r.kind {
                    RelayKind::Handshake => Chan::E2eHs(i),
                    RelayKind::Data => Chan::E2eData(i),
                };
                let noise = r.noise.clone();
                self.last_relay.insert(i, r);
                let log = self.transcript.entry(chan).or_default();
                let index = log.len();
                log.push(noise.clone());
                let out = match self.tap.as_mut() {
                    Some(t) => t.on_frame(chan, index, noise),
                    None => vec![noise],
                };
                for f in out {
                    self.deliver(chan, f);
                }
            }
        }
    }

    fn client_std_out(&mut self, i: usize) -> bool {
        if !self.peers[i].std_open {
            return false;
        }
        let mut buf = vec![0u8; IO_BUF];
        let n = self.peers[i].client.poll_transmit(&mut buf);
        if n == 0 {
            return false;
        }
        self.emit(Chan::StdUp(i), &buf[..n]);
        true
    }

    fn server_std_in(&mut self, i: usize) -> bool {
        let mut progress = false;
        while !self.peers[i].up_in.is_empty() {
            if !self.peers[i].std_open {
                self.peers[i].up_in.clear();
                break;
            }
            progress = true;
            let input = std::mem::take(&mut self.peers[i].up_in);
            let sid = self.peers[i].sid;
            let r = self
                .server
                .handle_input(sid, self.now, &input, &self.reg, &mut self.rng);
            self.flush_relays();
            match r {
                Ok(n) => {
                    assert!(n > 0, "server used nothing of non-empty input");
                    let mut rest = input[n..].to_vec();
                    rest.extend_from_slice(&self.peers[i].up_in);
                    self.peers[i].up_in = rest;
                }
                Err(e) => {
                    // The session is closed: the driver writes what is queued
                    // (see `server_std_out`) and drops the connection.
                    self.server_errors.push((Chan::StdUp(i), e));
                    self.peers[i].up_in.clear();
                    let mut buf = vec![0u8; IO_BUF];
                    let n = self.server.poll_transmit(sid, self.now, &mut buf);
                    self.emit(Chan::StdDown(i), &buf[..n]);
                    self.drop_connection(i);
                }
            }
        }
        progress
    }

    fn server_std_out(&mut self, i: usize) -> bool {
        if !self.peers[i].std_open || self.peers[i].paused {
            return false;
        }
        let mut buf = vec![0u8; IO_BUF];
        let n = self
            .server
            .poll_transmit(self.peers[i].sid, self.now, &mut buf);
        if n == 0 {
            return false;
        }
        self.emit(Chan::StdDown(i), &buf[..n]);
        true
    }

    fn client_std_in(&mut self, i: usize) -> bool {
        let mut progress = false;
        while !self.peers[i].down_in.is_empty() {
            progress = true;
            let now = self.now;
            let p = &mut self.peers[i];
            if p.client.is_closed() {
                p.down_in.clear();
                break;
            }
            let input = std::mem::take(&mut p.down_in);
            let r = p.client.handle_input(now, &input, &mut p.rng);
            self.drain_events(i);
            let p = &mut self.peers[i];
            match r {
                Ok(n) => {
                    assert!(n > 0, "client used nothing of non-empty input");
                    let mut rest = input[n..].to_vec();
                    rest.extend_from_slice(&p.down_in);
                    p.down_in = rest;
                }
                Err(e) => {
                    p.errors.push((Chan::StdDown(i), e));
                    p.down_in.clear();
                    assert!(p.client.is_closed(), "a client error closes the client");
                    self.drop_connection(i);
                }
            }
        }
        progress
    }

    fn dials(&mut self) -> bool {
        let mut progress = false;
        while let Some((sid, port)) = self.server.poll_dial() {
            progress = true;
            let Some(i) = self.peers.iter().position(|p| p.sid == sid) else {
                continue;
            };
            assert_eq!(Some(port), self.peers[i].config.daemon_port, "dialed port");
            self.close_link(i);
            let now = self.now;
            if self.peers[i].undialable {
                // The SYN goes nowhere.
                self.server.request_channel_failed(sid, now, &self.reg);
                self.flush_relays();
                continue;
            }
            let p = &mut self.peers[i];
            match p.client.new_request_link(now, &mut p.rng) {
                Ok(link) => {
                    p.link = Some(link);
                    self.server
                        .request_channel_connected(sid, now, &mut self.rng)
                        .expect("request channel connected");
                }
                Err(e) => {
                    p.errors.push((Chan::ReqDown(i), e));
                    self.server.request_channel_failed(sid, now, &self.reg);
                    self.flush_relays();
                }
            }
        }
        progress
    }

    /// Connections the clients open for their request channels: the hello
    /// goes to the server, which hands the connection to the session.
    fn dial_backs(&mut self, i: usize) -> bool {
        let Some(hello) = self.peers[i].dial_back.take() else {
            return false;
        };
        let ticket = securecom_core::noise::RequestTicket::from_hello_payload(&hello.0[2..])
            .expect("a request hello");
        let now = self.now;
        let Some(sid) = self
            .server
            .request_channel_by_ticket(&ticket, now, &mut self.rng)
        else {
            // No session awaits it (any more): the server closes it.
            return true;
        };
        assert_eq!(sid, self.peers[i].sid, "the ticket names its own session");
        self.close_link(i);
        let p = &mut self.peers[i];
        p.dial_backs += 1;
        match p.client.new_request_link(now, &mut p.rng) {
            Ok(link) => p.link = Some(link),
            Err(e) => {
                p.errors.push((Chan::ReqDown(i), e));
                self.server.request_channel_failed(sid, now, &self.reg);
                self.flush_relays();
            }
        }
        true
    }

    fn req_down(&mut self, i: usize) -> bool {
        if self.peers[i].link.is_none() {
            return false;
        }
        let mut buf = vec![0u8; IO_BUF];
        let n = self
            .server
            .poll_request_transmit(self.peers[i].sid, &mut buf);
        if n == 0 {
            return false;
        }
        self.emit(Chan::ReqDown(i), &buf[..n]);
        true
    }

    fn client_req_in(&mut self, i: usize) -> bool {
        let mut progress = false;
        while !self.peers[i].req_down_in.is_empty() {
            progress = true;
            let now = self.now;
            let p = &mut self.peers[i];
            let Some(link) = p.link.as_mut() else {
                p.req_down_in.clear();
                break;
            };
            let input = std::mem::take(&mut p.req_down_in);
            let r = p.client.handle_request_input(link, now, &input, &mut p.rng);
            self.drain_events(i);
            match r {
                Ok(n) => {
                    assert!(n > 0);
                    let p = &mut self.peers[i];
                    let mut rest = input[n..].to_vec();
                    rest.extend_from_slice(&p.req_down_in);
                    p.req_down_in = rest;
                }
                Err(e) => {
                    self.peers[i].errors.push((Chan::ReqDown(i), e));
                    self.request_link_failed(i);
                }
            }
        }
        progress
    }

    fn req_up(&mut self, i: usize) -> bool {
        let now = self.now;
        let p = &mut self.peers[i];
        let Some(link) = p.link.as_mut() else {
            return false;
        };
        let mut buf = vec![0u8; IO_BUF];
        let n = p.client.poll_request_transmit(link, now, &mut buf);
        if n == 0 {
            return false;
        }
        self.emit(Chan::ReqUp(i), &buf[..n]);
        true
    }

    fn server_req_in(&mut self, i: usize) -> bool {
        let mut progress = false;
        while !self.peers[i].req_up_in.is_empty() {
            progress = true;
            if self.peers[i].link.is_none() {
                self.peers[i].req_up_in.clear();
                break;
            }
            let input = std::mem::take(&mut self.peers[i].req_up_in);
            let sid = self.peers[i].sid;
            let r =
                self.server
                    .handle_request_input(sid, self.now, &input, &self.reg, &mut self.rng);
            self.flush_relays();
            match r {
                Ok(n) => {
                    assert!(n > 0);
                    let p = &mut self.peers[i];
                    let mut rest = input[n..].to_vec();
                    rest.extend_from_slice(&p.req_up_in);
                    p.req_up_in = rest;
                }
                Err(e) => {
                    self.server_errors.push((Chan::ReqUp(i), e));
                    self.request_link_failed(i);
                }
            }
        }
        progress
    }

    /// Closes connections whose side is finished (after `Bye`, refusals, closed links).
    fn close_finished(&mut self, i: usize) -> bool {
        let mut progress = false;
        let p = &self.peers[i];
        let server_closed = self.server.session(p.sid).is_none_or(|s| s.is_closed());
        // The request connection: closed by the daemon after `Bye`, or by the
        // server with its session, once its last bytes are through.
        if let Some(link) = &p.link {
            if (link.is_closed() || server_closed) && p.req_down_in.is_empty() {
                let server_alive = !server_closed;
                self.close_link(i);
                if server_alive {
                    self.server
                        .request_channel_failed(self.peers[i].sid, self.now, &self.reg);
                    self.flush_relays();
                }
                progress = true;
            }
        }
        let p = &self.peers[i];
        if p.std_open
            && !p.paused
            && (server_closed || p.client.is_closed())
            && p.down_in.is_empty()
        {
            // Nothing more will be written (both outputs were drained this step).
            let mut buf = vec![0u8; IO_BUF];
            let n = self.server.poll_transmit(p.sid, self.now, &mut buf);
            if n > 0 {
                self.emit(Chan::StdDown(i), &buf[..n]);
                return true;
            }
            self.drop_connection(i);
            progress = true;
        }
        progress
    }

    /// The standard connection of client `i` goes away (both ends).
    pub fn drop_connection(&mut self, i: usize) {
        if !self.peers[i].std_open {
            return;
        }
        self.peers[i].std_open = false;
        self.peers[i].up_in.clear();
        let sid = self.peers[i].sid;
        // The driver notices the closed socket and frees the slot.
        self.server.disconnected(sid, self.now, &self.reg);
        self.server.remove(sid, self.now, &self.reg);
        self.peers[i].sid = GONE;
        self.flush_relays();
        if self.peers[i].link.is_some() {
            self.close_link(i);
        }
    }

    /// The daemon's connection closes from its side (EOF to the client's daemon).
    fn close_link(&mut self, i: usize) {
        let p = &mut self.peers[i];
        if let Some(link) = p.link.take() {
            p.client.request_link_closed(&link);
        }
        p.req_down_in.clear();
        p.req_up_in.clear();
        self.drain_events(i);
    }

    /// A request connection broke after an error on either end.
    fn request_link_failed(&mut self, i: usize) {
        self.close_link(i);
        let sid = self.peers[i].sid;
        self.server.request_channel_failed(sid, self.now, &self.reg);
        self.flush_relays();
    }

    /// Disconnects client `i` as if its socket died (the server side notices).
    pub fn disconnect(&mut self, i: usize) {
        self.drop_connection(i);
        self.pump();
    }

    // ---------------------------------------------------------- time

    /// Runs all timers once at `self.now`.
    fn fire_timeouts(&mut self) {
        let now = self.now;
        self.server.handle_timeout(now, &self.reg, &mut self.rng);
        self.flush_relays();
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            if p.drive_timeouts && p.std_open && !p.client.is_closed() {
                if let Err(e) = p.client.handle_timeout(now, &mut p.rng) {
                    p.errors.push((Chan::StdDown(i), e));
                    self.drain_events(i);
                    self.drop_connection(i);
                    continue;
                }
                self.drain_events(i);
            }
            let p = &mut self.peers[i];
            if let Some(link) = p.link.as_mut() {
                if let Err(e) = p.client.handle_request_timeout(link, now) {
                    p.errors.push((Chan::ReqDown(i), e));
                    self.request_link_failed(i);
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut ds: Vec<Instant> = self.server.poll_timeout().into_iter().collect();
        for p in &self.peers {
            if p.drive_timeouts && p.std_open {
                ds.extend(p.client.poll_timeout());
            }
            if let Some(l) = &p.link {
                ds.extend(l.poll_timeout());
            }
        }
        // A deadline at or before `now` has been handled already.
        ds.into_iter().filter(|d| *d > self.now).min()
    }

    /// Advances the clock to `t`, stopping at every deadline on the way.
    pub fn advance_to(&mut self, t: Instant) {
        self.fire_timeouts();
        self.pump();
        while let Some(d) = self.next_deadline().filter(|d| *d <= t) {
            self.now = d;
            self.fire_timeouts();
            self.pump();
        }
        self.now = t;
        self.fire_timeouts();
        self.pump();
    }

    pub fn advance_ms(&mut self, ms: u64) {
        let t = Instant::from_millis(self.now.as_millis() + ms);
        self.advance_to(t);
    }

    // ---------------------------------------------------------- checks

    /// Every error seen anywhere (client and server side).
    pub fn all_errors(&self) -> Vec<(Chan, Error)> {
        let mut v = self.server_errors.clone();
        for p in &self.peers {
            v.extend(p.errors.iter().copied());
        }
        v
    }

    /// Number of `ChatEnded { Failed(..) }` events over all clients.
    pub fn failed_chats(&self) -> usize {
        self.peers
            .iter()
            .flat_map(|p| p.chat_ends())
            .filter(|r| matches!(r, ChatEnd::Failed(_)))
            .count()
    }
}

// ------------------------------------------------------------------ abuse-bound helpers (core/tests/abuse.rs)

impl<const N: usize> World<Hub<N>> {
    /// A world around the real [`Hub`] whose sessions use `abuse`.
    pub fn hub_with_abuse(limits: Limits, abuse: securecom_core::AbuseLimits) -> Self {
        let rng = rng_for(SEED, "server");
        let key = key_for("#server", 0);
        let pk = key.public_key();
        let config = ServerConfig {
            abuse,
            ..ServerConfig::new(limits)
        };
        World::with_server(Hub::new(config, key), pk, rng, limits)
    }
}

impl MitmServer {
    /// The driver learnt that the key of session `id` is no longer
    /// registered: [`ServerSession::revoked`], then routes what it leaves.
    pub fn revoke(&mut self, id: SessionId, now: Instant, reg: &Reg) {
        if let Some(s) = self.sess(id) {
            s.revoked(now);
        }
        self.route(now, reg);
    }
}

impl World<MitmServer> {
    /// A world around the man-in-the-middle router whose sessions use `abuse`.
    pub fn mitm_with_abuse(limits: Limits, abuse: securecom_core::AbuseLimits) -> Self {
        let rng = rng_for(SEED, "server");
        let key = key_for("#server", 0);
        let pk = key.public_key();
        let config = ServerConfig {
            abuse,
            ..ServerConfig::new(limits)
        };
        World::with_server(MitmServer::new(config, key), pk, rng, limits)
    }

    /// Revokes client `i`'s session on the server (as the tokio server does
    /// when the registry no longer holds its key), then pumps.
    pub fn revoke(&mut self, i: usize) {
        let sid = self.peers[i].sid;
        self.server.revoke(sid, self.now, &self.reg);
        self.flush_relays();
        self.pump();
    }
}

impl<S: Server> World<S> {
    /// Registers, connects and logs in `name_` with its own client limits
    /// (the server keeps the world's); asserts success.
    pub fn login_with_limits(&mut self, name_: &str, limits: Limits) -> usize {
        let i = self.connect(ClientSpec {
            limits,
            ..ClientSpec::new(name_)
        });
        self.pump();
        let p = &mut self.peers[i];
        assert_eq!(
            p.take_events(),
            vec![
                ClientEvent::LoggedIn { user: name(name_) },
                ClientEvent::DaemonStatus { reachable: true }
            ],
            "login of {name_}"
        );
        i
    }

    /// Frames client `i` sent on its standard channel so far.
    pub fn frames_up(&self, i: usize) -> usize {
        self.transcript.get(&Chan::StdUp(i)).map_or(0, Vec::len)
    }
}
