//! The server's session with one client: its standard channel, the request
//! channel to its daemon, and its part in chats.
//!
//! A [`ServerSession`] knows only its own user. Whatever involves another
//! user leaves it as a [`ServerEvent`] for the driver, which finds the other
//! session (see [`crate::hub::Hub`] for the reference routing, which the
//! tokio server follows with one task per session) and calls the matching
//! method there: `deliver_request`, `chat_answered`, `relay`, `peer_left`,
//! `cancel_request`.
//!
//! # Call order
//! 1. [`ServerSession::new`] when a client connects.
//! 2. Bytes from it: [`ServerSession::handle_input`] until consumed; after
//!    each call drain [`ServerSession::poll_event`] and
//!    [`ServerSession::poll_transmit`].
//! 3. On [`ServerEvent::DialDaemon`]: connect, then
//!    [`ServerSession::request_channel_connected`] (or `_failed`); feed its
//!    bytes to [`ServerSession::handle_request_input`], write
//!    [`ServerSession::poll_request_transmit`].
//! 4. At [`ServerSession::poll_timeout`]: [`ServerSession::handle_timeout`].
//! 5. When the socket closes for any reason: [`ServerSession::disconnected`]
//!    and route the events it leaves.

use heapless::Deque;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::cert::{CertError, MAX_CERTIFICATE};
use crate::channel::{received, Channel, Incoming, RequestChannel, Scratch, StandardChannel};
use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::{CryptoError, Error, ProtocolError, WireError};
use crate::keys::{PublicKey, StaticSecret};
use crate::limits::{
    AbuseLimits, Limits, MAX_E2E_MESSAGE, MAX_NOISE_MESSAGE, MAX_USERS_PER_MESSAGE,
    PROTOCOL_VERSION,
};
use crate::message::{
    decode, encode, user_name, Answer, ChatId, ClientHello, ClientMsg, CloseReason, DaemonToServer,
    ErrorCode, LoginError, RefuseReason, ServerHello, ServerMsg, ServerToDaemon, UserName,
};
use crate::noise::{Handshake, Psk, RemoteCheck, RequestTicket};
use crate::rate::TokenBucket;
use crate::time::{Duration, Instant};

/// The registered users: name → long-term public key.
pub trait Registry {
    /// The key registered for `user`, if any.
    fn lookup(&self, user: &str) -> Option<PublicKey>;
}

/// A relayed E2E message (opaque to the server).
pub type RelayBytes = heapless::Vec<u8, MAX_E2E_MESSAGE>;

/// Which kind of E2E message is relayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RelayKind {
    /// A KK handshake message.
    Handshake,
    /// A chat transport message.
    Data,
}

/// What a session needs the driver to do (most involve another session).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// The user logged in: register them as online (replacing an older session).
    LoggedIn {
        /// Who.
        user: UserName,
        /// Their key.
        key: PublicKey,
    },
    /// A login was refused (for logs and rate limits; the session is closed).
    LoginFailed {
        /// Why, as the client was told.
        reason: LoginError,
        /// The protocol version the client's hello named (ours but for
        /// `VersionMismatch`).
        client_version: u8,
    },
    /// The client will open its request channel's connection itself and
    /// present this ticket first (a [`RequestTicket::hello`] frame): hand
    /// that connection to this session ([`ServerSession::request_channel_connected`])
    /// and forget the ticket. Until then the old ticket of this session, if
    /// any, is void. No connection within `handshake_timeout`: the session
    /// reports the channel failed by itself.
    AwaitRequestChannel {
        /// What the connection must present.
        ticket: RequestTicket,
    },
    /// Dial the client's daemon at its address and this port.
    DialDaemon {
        /// The announced port.
        port: u16,
    },
    /// The user wants the online list: call [`ServerSession::send_users`].
    ListUsers,
    /// The user asks `to` for a chat: find `to`, then call
    /// `deliver_request` there and `chat_pending` or `chat_refused` here.
    ChatRequest {
        /// The user asked.
        to: UserName,
    },
    /// This user's daemon answered a request from `requester` (or can no
    /// longer answer): call `chat_answered` on the requester's session.
    Answered {
        /// The chat.
        chat_id: ChatId,
        /// Who had asked.
        requester: UserName,
        /// `Ok` if accepted, else why not.
        result: Result<(), RefuseReason>,
    },
    /// Relay an E2E message to the peer: call `relay` on `to`'s session with
    /// the bytes of [`ServerSession::relay_payload`] (valid until the next input).
    Relay {
        /// The peer.
        to: UserName,
        /// The chat.
        chat_id: ChatId,
        /// Handshake or data.
        kind: RelayKind,
    },
    /// This user left chat `chat_id`: call `peer_left` on `peer`'s session.
    Left {
        /// The peer.
        peer: UserName,
        /// The chat.
        chat_id: ChatId,
    },
    /// This user withdrew a pending request: call `cancel_request` on `peer`'s session.
    Withdrawn {
        /// The user who was asked.
        peer: UserName,
        /// The chat.
        chat_id: ChatId,
    },
    /// The session is over: remove the user from presence.
    Closed,
}

/// Server-wide settings a session needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Session limits.
    pub limits: Limits,
    /// Per-session command rates and chat-request timeouts.
    pub abuse: AbuseLimits,
    /// The request channel's keep-alive: a `Ping` after this long without
    /// sending on it, and the channel counts as broken after
    /// [`REQUEST_IDLE_FACTOR`] times this long without hearing from the
    /// daemon. At most [`MAX_REQUEST_KEEPALIVE`] (daemons close a silent link
    /// after [`crate::limits::REQUEST_LINK_IDLE`]).
    pub request_keepalive: Duration,
}

/// The default request-channel keep-alive: 25 s, below the idle timeouts of
/// common NATs and firewalls (the standard channel's keep-alive, and
/// WireGuard's suggestion, for the same reason).
pub const DEFAULT_REQUEST_KEEPALIVE: Duration = Duration::from_secs(25);
/// The longest request-channel keep-alive a server may use.
pub const MAX_REQUEST_KEEPALIVE: Duration = Duration::from_secs(25);
/// A request channel silent for this many keep-alive intervals is broken.
pub const REQUEST_IDLE_FACTOR: u64 = 3;

impl ServerConfig {
    /// `limits` with the default [`AbuseLimits`] and keep-alive.
    pub const fn new(limits: Limits) -> Self {
        ServerConfig {
            limits,
            abuse: AbuseLimits::DEFAULT,
            request_keepalive: DEFAULT_REQUEST_KEEPALIVE,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new(Limits::DEFAULT)
    }
}

/// The state of a session's rate limits: one token bucket per
/// rate-limited command kind, and the strikes. A driver keeps it per user
/// between sessions ([`ServerSession::rate_state`],
/// [`ServerSession::restore_rate_state`]), so that logging in again does not
/// refill the buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    requests: TokenBucket,
    leaves: TokenBucket,
    listings: TokenBucket,
    announces: TokenBucket,
    pings: TokenBucket,
    rekeys: TokenBucket,
    strikes: TokenBucket,
}

impl RateState {
    /// Buckets in [`Self::debts`].
    pub const BUCKETS: usize = 7;

    /// Each bucket's credit spent at `now`, in ms (requests, leaves,
    /// listings, announces, pings, re-keys, strikes): the state in a form
    /// another process (a node of a cluster) can continue at its own time
    /// ([`Self::from_debts`]).
    pub fn debts(&self, now: Instant) -> [u64; Self::BUCKETS] {
        self.buckets().map(|b| b.debt_at(now))
    }

    /// The state whose [`Self::debts`] are `debts` at `now`.
    pub fn from_debts(debts: [u64; Self::BUCKETS], now: Instant) -> Self {
        let [requests, leaves, listings, announces, pings, rekeys, strikes] =
            debts.map(|d| TokenBucket::with_debt(d, now));
        RateState {
            requests,
            leaves,
            listings,
            announces,
            pings,
            rekeys,
            strikes,
        }
    }

    /// Each bucket the emptier of the two at `now` (the larger debt): a
    /// user's state continued from another node, without refilling
    /// anything either side spent.
    pub fn merged(&self, other: &RateState, now: Instant) -> Self {
        let (mut d, theirs) = (self.debts(now), other.debts(now));
        for (mine, theirs) in d.iter_mut().zip(theirs) {
            *mine = (*mine).max(theirs);
        }
        Self::from_debts(d, now)
    }

    fn buckets(&self) -> [TokenBucket; Self::BUCKETS] {
        [
            self.requests,
            self.leaves,
            self.listings,
            self.announces,
            self.pings,
            self.rekeys,
            self.strikes,
        ]
    }
}

/// Users this session's user may not ask again before a time (they declined
/// or did not answer).
pub const REFUSED_MEMORY: usize = 8;

enum Login {
    Handshake,
    /// The client's hello arrived (XX message 3); the post-quantum layer
    /// runs before the verdict.
    Hello(UserName),
    LoggedIn,
    Closed,
}

#[derive(Clone)]
enum ChatSlot {
    None,
    Requesting {
        chat_id: ChatId,
        peer: UserName,
        /// When the request is withdrawn unanswered.
        expires: Instant,
    },
    Active {
        chat_id: ChatId,
        peer: UserName,
    },
}

struct Asked {
    chat_id: ChatId,
    from: UserName,
    from_key: PublicKey,
    /// False while the request waits for the request channel to open.
    sent: bool,
}

/// Room in the output queue that ordinary messages (relayed chat data, lists,
/// statuses) may not use: enough for the largest control message
/// (`ChatStarted`, 90 bytes framed) and a `PeerLeft` or `Bye`, so that a slow
/// reader is never left in a chat its session has ended.
pub const CONTROL_RESERVE: usize = 160;

/// The command kinds with a rate of their own.
#[derive(Clone, Copy)]
enum Command {
    Request,
    Leave,
    List,
    Announce,
    Ping,
}

/// Commands of one session refused for their rate (answered `SlowDown`, or
/// `ChatRefused { TooSoon }` for a `RequestChat`, or dropped with the
/// session once its strikes were spent), by kind: for the operator's
/// metrics ([`ServerSession::refusals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    /// `RequestChat`s.
    pub requests: u32,
    /// `LeaveChat`s.
    pub leaves: u32,
    /// `ListUsers`.
    pub listings: u32,
    /// `AnnounceDaemon`s.
    pub announces: u32,
    /// `Ping`s.
    pub pings: u32,
}

/// Capacity of a session's event queue.
pub const SERVER_EVENT_CAPACITY: usize = 4;

/// The server's state for one connected client, on the crypto provider `P`
/// (see [`crate::crypto`]).
pub struct ServerSession<P: CryptoProvider = RustCrypto> {
    limits: Limits,
    abuse: AbuseLimits,
    buckets: RateState,
    /// Recently refused: `(user, until)`.
    refused: heapless::Vec<(UserName, Instant), REFUSED_MEMORY>,
    std: StandardChannel<P>,
    login: Login,
    /// Set at login and kept after the close, so that the events a closing
    /// session leaves can still name it.
    identity: Option<(UserName, PublicKey)>,
    chat: ChatSlot,
    asked: Option<Asked>,
    request: Option<RequestChannel<P>>,
    request_psk: Option<Psk>,
    /// The daemon was announced and its channel is being opened: requests
    /// wait for it instead of being refused as unreachable.
    request_opening: bool,
    /// A client-dialled request channel is awaited until then.
    request_awaited_until: Option<Instant>,
    /// Re-keys of this session's request channels that are gone.
    past_request_rekeys: u32,
    request_keepalive: Duration,
    events: Deque<ServerEvent, SERVER_EVENT_CAPACITY>,
    /// The E2E message of the last `Relay` event (one per input frame).
    relay: RelayBytes,
    /// The server's certificate, sent in `ServerHello` (empty: none).
    certificate: heapless::Vec<u8, MAX_CERTIFICATE>,
    /// The `Bye` reason this session closed with, if it did.
    close_reason: Option<CloseReason>,
    refusals: Refusals,
}

impl<P: CryptoProvider> ServerSession<P> {
    /// A client connected: start the responder side of the XX handshake.
    pub fn new<R: RngCore + CryptoRng>(
        config: &ServerConfig,
        server_key: &StaticSecret,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let hs = Handshake::standard(false, server_key, RemoteCheck::Any, rng)?;
        Ok(ServerSession {
            limits: config.limits,
            abuse: config.abuse,
            buckets: RateState::default(),
            refused: heapless::Vec::new(),
            std: Channel::new(hs, config.limits, now, rng)?,
            login: Login::Handshake,
            identity: None,
            chat: ChatSlot::None,
            asked: None,
            request: None,
            request_psk: None,
            request_opening: false,
            request_awaited_until: None,
            past_request_rekeys: 0,
            request_keepalive: if config.request_keepalive.as_millis()
                > MAX_REQUEST_KEEPALIVE.as_millis()
                || config.request_keepalive.as_millis() == 0
            {
                MAX_REQUEST_KEEPALIVE
            } else {
                config.request_keepalive
            },
            events: Deque::new(),
            relay: RelayBytes::new(),
            certificate: heapless::Vec::new(),
            close_reason: None,
            refusals: Refusals::default(),
        })
    }

    /// Sends `certificate` (a CA's certificate of this server's static key,
    /// see [`crate::cert`]) in the handshake. Call before the first input.
    /// The bytes are only checked for size and syntax here: the driver
    /// should check once, at start-up, that they certify its own key.
    pub fn set_certificate(&mut self, certificate: &[u8]) -> Result<(), CertError> {
        crate::cert::decode_certificate(certificate)?;
        self.certificate =
            heapless::Vec::from_slice(certificate).map_err(|_| CertError::OutOfBounds)?;
        Ok(())
    }

    /// Lowers the largest frame accepted from this client (header included;
    /// at most [`crate::MAX_FRAME`]): a longer length prefix closes the session.
    pub fn set_max_frame(&mut self, max: usize) {
        self.std.set_max_frame(max);
    }

    // ------------------------------------------------------------ getters

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&UserName> {
        match (&self.login, &self.identity) {
            (Login::LoggedIn, Some((user, _))) => Some(user),
            _ => None,
        }
    }

    /// The logged-in user's key, if any.
    pub fn user_key(&self) -> Option<PublicKey> {
        match (&self.login, &self.identity) {
            (Login::LoggedIn, Some((_, key))) => Some(*key),
            _ => None,
        }
    }

    /// Who logged in on this session, even after it closed.
    pub fn identity(&self) -> Option<&(UserName, PublicKey)> {
        self.identity.as_ref()
    }

    /// The E2E message of the last [`ServerEvent::Relay`] this session emitted.
    pub fn relay_payload(&self) -> &[u8] {
        &self.relay
    }

    /// Free room in the standard channel's output queue, in bytes.
    pub fn output_room(&self) -> usize {
        self.std.output_room()
    }

    /// True once the session is over (the driver closes the sockets after
    /// writing what [`Self::poll_transmit`] still returns).
    pub fn is_closed(&self) -> bool {
        matches!(self.login, Login::Closed)
    }

    /// The peer of the current chat, if one is active.
    pub fn chat_peer(&self) -> Option<(&UserName, ChatId)> {
        match &self.chat {
            ChatSlot::Active { chat_id, peer } => Some((peer, *chat_id)),
            _ => None,
        }
    }

    /// True if the request channel is open.
    pub fn daemon_reachable(&self) -> bool {
        self.request
            .as_ref()
            .is_some_and(RequestChannel::is_transport)
    }

    // ------------------------------------------------------------ outputs

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Bytes for the standard channel's socket.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> usize {
        self.std.poll_transmit(out)
    }

    /// Bytes for the request channel's socket.
    pub fn poll_request_transmit(&mut self, out: &mut [u8]) -> usize {
        self.request.as_mut().map_or(0, |c| c.poll_transmit(out))
    }

    /// How many re-keys the standard channel and the session's request
    /// channels (all of them, closed ones included) have completed.
    pub fn rekeys(&self) -> (u32, u32) {
        let current = self.request.as_ref().map_or(0, |r| r.rekeys());
        (
            self.std.rekeys(),
            self.past_request_rekeys.saturating_add(current),
        )
    }

    /// Closes and forgets the request channel, keeping its re-key count.
    fn drop_request_channel(&mut self) {
        if let Some(mut old) = self.request.take() {
            old.close();
            self.past_request_rekeys = self.past_request_rekeys.saturating_add(old.rekeys());
        }
    }

    /// When to call [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let req = self.request.as_ref().and_then(|c| {
            if c.is_handshaking() {
                c.poll_timeout()
            } else if c.is_transport() {
                // The next keep-alive, the silence that breaks the channel,
                // or its keys' next re-key (and the channel's own limits).
                let next = c
                    .last_tx()
                    .add(self.request_keepalive)
                    .min(c.last_rx().add(self.request_idle()));
                Some(c.rekey_deadline().map_or(next, |t| t.min(next)))
            } else {
                None
            }
        });
        let expires = match &self.chat {
            ChatSlot::Requesting { expires, .. } if !self.is_closed() => Some(*expires),
            _ => None,
        };
        let awaited = self.request_awaited_until.filter(|_| !self.is_closed());
        [self.std.poll_timeout(), req, expires, awaited]
            .into_iter()
            .flatten()
            .min()
    }

    /// Checks deadlines: a late handshake, an idle client, an old session,
    /// a client that does not re-key the standard channel in time; re-keys
    /// the request channel when its keys are due (`rng`: its randomness).
    pub fn handle_timeout<R: RngCore + CryptoRng>(&mut self, now: Instant, rng: &mut R) {
        if self.is_closed() {
            return;
        }
        if self.request_awaited_until.is_some_and(|t| now >= t) {
            // The client never connected with its ticket.
            self.request_channel_failed(now);
        }
        let (idle, keepalive) = (self.request_idle(), self.request_keepalive);
        if let Some(req) = &mut self.request {
            if req.is_handshaking() {
                if req.check_timeout(now).is_err() {
                    self.request_channel_failed(now);
                }
            } else if req.is_transport() {
                if now >= req.last_rx().add(idle)
                    || req.check_rekey(now).is_err()
                    || req.maybe_rekey(now, rng).is_err()
                {
                    // No `Pong` (nor anything) for three keep-alives: the
                    // connection is gone (a NAT forgot it, a cable came
                    // out); or a re-key stalled or could not start.
                    self.request_channel_failed(now);
                } else if now >= req.last_tx().add(keepalive)
                    && req.send(now, &ServerToDaemon::Ping).is_err()
                {
                    self.request_channel_failed(now);
                }
            }
        }
        if let ChatSlot::Requesting {
            chat_id,
            peer,
            expires,
        } = &self.chat
        {
            if now >= *expires {
                let (chat_id, peer) = (*chat_id, peer.clone());
                self.chat = ChatSlot::None;
                self.remember_refusal(now, &peer);
                self.push_event(ServerEvent::Withdrawn {
                    peer: peer.clone(),
                    chat_id,
                });
                let _ = self.send_control(
                    now,
                    &ServerMsg::ChatRefused {
                        chat_id: Some(chat_id),
                        user: &peer,
                        reason: RefuseReason::NoAnswer,
                    },
                );
            }
        }
        match self.std.check_timeout(now) {
            Ok(()) => {}
            Err(ProtocolError::SessionExpired) => self.close_with(now, CloseReason::SessionExpired),
            Err(ProtocolError::IdleTimeout) => self.close_with(now, CloseReason::Idle),
            // The client let its keys grow too old: it breaks the protocol.
            Err(ProtocolError::RekeyOverdue) => {
                self.close_with(now, CloseReason::ProtocolViolation)
            }
            Err(_) => self.close_silently(),
        }
    }

    fn push_event(&mut self, e: ServerEvent) {
        // Each input produces at most two events and the driver drains after
        // each call, so the queue has room.
        let _ = self.events.push_back(e);
    }

    /// Sends an ordinary message: it may not use the last
    /// [`CONTROL_RESERVE`] bytes of the output queue.
    fn send(&mut self, now: Instant, msg: &ServerMsg<'_>) -> Result<(), Error> {
        self.send_inner(now, msg, CONTROL_RESERVE)
    }

    /// Sends a message that must not be lost to a full queue (a chat's start
    /// or end, a refusal): it may use the reserve.
    fn send_control(&mut self, now: Instant, msg: &ServerMsg<'_>) -> Result<(), Error> {
        self.send_inner(now, msg, 0)
    }

    fn send_inner(
        &mut self,
        now: Instant,
        msg: &ServerMsg<'_>,
        reserve: usize,
    ) -> Result<(), Error> {
        if self
            .std
            .transport()
            .is_some_and(|t| t.sending().near_limit())
        {
            self.close_with(now, CloseReason::SessionExpired);
            return Err(ProtocolError::SessionExpired.into());
        }
        self.std.send_leaving(now, msg, reserve)
    }

    /// Sends `Bye { reason }` (when possible), closes, and leaves the events
    /// that tell the other sessions.
    pub fn close_with(&mut self, now: Instant, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.close_reason = Some(reason);
        let _ = self.std.send(now, &ServerMsg::Bye { reason });
        if let Some(req) = &mut self.request {
            let _ = req.send(now, &ServerToDaemon::Bye);
        }
        self.close_silently();
    }

    fn close_silently(&mut self) {
        if self.is_closed() {
            return;
        }
        self.std.close();
        if let Some(req) = &mut self.request {
            req.close();
        }
        self.request_psk = None;
        self.leave_everything();
        self.login = Login::Closed;
        self.push_event(ServerEvent::Closed);
    }

    /// The socket closed (or the driver drops the client): clean up.
    pub fn disconnected(&mut self) {
        self.close_silently();
    }

    /// The server shuts down: say so and close.
    pub fn shutdown(&mut self, now: Instant) {
        self.close_with(now, CloseReason::Shutdown);
    }

    /// The same user logged in again elsewhere: close this older session.
    pub fn replaced(&mut self, now: Instant) {
        self.close_with(now, CloseReason::Replaced);
    }

    /// The reason of the `Bye` this session closed with (a logout, a
    /// replacement, a limit: see [`CloseReason`]); `None` while it is open
    /// or when it closed without one (the socket closed, a broken message).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
    }

    /// The commands this session had refused for their rate so far.
    pub fn refusals(&self) -> Refusals {
        self.refusals
    }

    /// The state of this session's rate limits (keep it per user when the
    /// session ends).
    pub fn rate_state(&self) -> RateState {
        self.buckets
    }

    /// Continues the rate limits of this user's previous session (call at
    /// [`ServerEvent::LoggedIn`]): a user cannot refill its buckets by
    /// logging in again.
    ///
    /// The `AnnounceDaemon` bucket is this session's own: every login
    /// announces its daemon once, and a user whose connection keeps dropping
    /// must still be reachable after each login.
    pub fn restore_rate_state(&mut self, state: RateState) {
        self.buckets = RateState {
            announces: self.buckets.announces,
            ..state
        };
    }

    /// Merges `state`, the rate state this user's session on another node
    /// ended with (a cluster: [`RateState::from_debts`]), into this
    /// session's: each bucket the emptier of the two, so that moving to
    /// another node refills nothing. The `AnnounceDaemon` bucket stays this
    /// session's own (see [`Self::restore_rate_state`]).
    pub fn merge_rate_state(&mut self, state: RateState, now: Instant) {
        let announces = self.buckets.announces;
        self.buckets = RateState {
            announces,
            ..self.buckets.merged(&state, now)
        };
    }

    /// The user's key is no longer the registered one: close with `Revoked`.
    pub fn revoked(&mut self, now: Instant) {
        self.close_with(now, CloseReason::Revoked);
    }

    /// The driver drops this client for breaking a resource bound (its
    /// output backlog, its mailbox): close with `RateLimited`.
    pub fn rate_limited(&mut self, now: Instant) {
        self.close_with(now, CloseReason::RateLimited);
    }

    /// Takes a token of `kind`; false (after answering `refusal`, or
    /// closing the session once its strikes are spent) if there is none.
    fn allow(&mut self, now: Instant, kind: Command, refusal: &ServerMsg<'_>) -> bool {
        let (bucket, rate) = match kind {
            Command::Request => (&mut self.buckets.requests, &self.abuse.requests),
            Command::Leave => (&mut self.buckets.leaves, &self.abuse.leaves),
            Command::List => (&mut self.buckets.listings, &self.abuse.listings),
            Command::Announce => (&mut self.buckets.announces, &self.abuse.announces),
            Command::Ping => (&mut self.buckets.pings, &self.abuse.pings),
        };
        if bucket.take(rate, now) {
            return true;
        }
        let count = match kind {
            Command::Request => &mut self.refusals.requests,
            Command::Leave => &mut self.refusals.leaves,
            Command::List => &mut self.refusals.listings,
            Command::Announce => &mut self.refusals.announces,
            Command::Ping => &mut self.refusals.pings,
        };
        *count = count.saturating_add(1);
        if self.buckets.strikes.take(&self.abuse.strike_rate, now) {
            // Best effort: a flooder that does not read may find its queue
            // full; the command is not performed either way.
            let _ = self.send(now, refusal);
        } else {
            self.close_with(now, CloseReason::RateLimited);
        }
        false
    }

    /// Remembers that `peer` refused (or ignored) a request just now.
    fn remember_refusal(&mut self, now: Instant, peer: &UserName) {
        let until = now.add(self.abuse.refuse_cooldown);
        self.refused.retain(|(_, t)| *t > now);
        if let Some(e) = self.refused.iter_mut().find(|(u, _)| u == peer) {
            e.1 = until;
            return;
        }
        if self.refused.is_full() {
            // Forget the one that expires first.
            if let Some(i) = self
                .refused
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                self.refused.swap_remove(i);
            }
        }
        let _ = self.refused.push((peer.clone(), until));
    }

    fn recently_refused(&self, now: Instant, peer: &str) -> bool {
        self.refused.iter().any(|(u, t)| u == peer && *t > now)
    }

    fn leave_everything(&mut self) {
        match core::mem::replace(&mut self.chat, ChatSlot::None) {
            ChatSlot::Requesting { chat_id, peer, .. } => {
                self.push_event(ServerEvent::Withdrawn { peer, chat_id })
            }
            ChatSlot::Active { chat_id, peer } => {
                self.push_event(ServerEvent::Left { peer, chat_id })
            }
            ChatSlot::None => {}
        }
        self.fail_asked(RefuseReason::Offline);
    }

    /// The request delivered to this user can no longer be answered.
    fn fail_asked(&mut self, reason: RefuseReason) {
        if let Some(asked) = self.asked.take() {
            self.push_event(ServerEvent::Answered {
                chat_id: asked.chat_id,
                requester: asked.from,
                result: Err(reason),
            });
        }
    }

    // ------------------------------------------------------------ standard channel input

    /// Feeds bytes from the client; returns how many were used.
    ///
    /// An error means the client broke the protocol or failed to
    /// authenticate: the session is closed (with `Bye` where keys allow) and
    /// the driver drops the connection after writing what is queued.
    pub fn handle_input<R: RngCore + CryptoRng, G: Registry + ?Sized>(
        &mut self,
        now: Instant,
        input: &[u8],
        registry: &G,
        rng: &mut R,
    ) -> Result<usize, Error> {
        if self.is_closed() {
            return Err(ProtocolError::Closed.into());
        }
        let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
        let begun = self.std.rekeys_begun();
        let (used, incoming) = match self.std.read(now, input, &mut scratch, rng) {
            Ok(r) => r,
            Err(e) => {
                self.close_silently();
                return Err(e);
            }
        };
        if self.std.rekeys_begun() != begun && !self.buckets.rekeys.take(&self.abuse.rekeys, now) {
            // The client re-keys faster than its bound: each costs the
            // server a key exchange, and one cannot be refused halfway.
            self.close_with(now, CloseReason::RateLimited);
            return Ok(used);
        }
        let result = match incoming {
            // No whole frame yet, or a re-key message the channel handled
            // (public bytes in `scratch`): nothing to wipe.
            Incoming::Nothing => return Ok(used),
            Incoming::Handshake { len, finished } => {
                received(&scratch, len).and_then(|p| self.on_handshake(now, p, finished, registry))
            }
            Incoming::Message { len } => received(&scratch, len)
                .and_then(|p| Ok(decode::<ClientMsg>(p)?))
                .and_then(|msg| self.on_message(now, msg)),
        };
        // The plaintext may hold the daemon secret (`AnnounceDaemon`). As a
        // slice: zeroize's bulk wipe, not the array impl's byte-by-byte loop.
        scratch.as_mut_slice().zeroize();
        match result {
            Ok(()) => Ok(used),
            Err(e) => {
                match e {
                    Error::Wire(_) | Error::Protocol(_) => {
                        self.close_with(now, CloseReason::ProtocolViolation)
                    }
                    _ => self.close_silently(),
                }
                Err(e)
            }
        }
    }

    fn on_handshake<G: Registry + ?Sized>(
        &mut self,
        now: Instant,
        payload: &[u8],
        finished: bool,
        registry: &G,
    ) -> Result<(), Error> {
        if self.std.handshake().is_some() {
            // Message 1: `e`, with an empty payload; answer with message 2.
            if !payload.is_empty() {
                return Err(WireError::TrailingBytes.into());
            }
            let mut buf = [0u8; 16 + MAX_CERTIFICATE];
            let n = encode(
                &ServerHello {
                    version: PROTOCOL_VERSION,
                    certificate: (!self.certificate.is_empty()).then_some(&self.certificate[..]),
                },
                &mut buf,
            )?;
            let hello = buf.get(..n).ok_or(WireError::BufferTooSmall)?;
            return self.std.send_handshake(now, hello);
        }
        if !finished {
            // Message 3: the client's static key and its hello; the layer's
            // first message follows it.
            if !matches!(self.login, Login::Handshake) {
                return Err(ProtocolError::Unexpected.into());
            }
            let hello: ClientHello = decode(payload)?;
            if hello.version != PROTOCOL_VERSION {
                // A client of another version knows no layer: it reads the
                // refusal under the XX keys (`docs/PROTOCOL.md` 12).
                let _ = self.std.send_outer_and_close(
                    now,
                    &ServerMsg::LoginRefused {
                        reason: LoginError::VersionMismatch,
                    },
                );
                self.close_silently();
                self.push_event(ServerEvent::LoginFailed {
                    reason: LoginError::VersionMismatch,
                    client_version: hello.version,
                });
                return Ok(());
            }
            self.login = Login::Hello(user_name(hello.user)?);
            return Ok(());
        }
        // The layer's first message, answered by the channel: open.
        let Login::Hello(user) = core::mem::replace(&mut self.login, Login::Handshake) else {
            return Err(ProtocolError::Unexpected.into());
        };
        let key = self.std.remote_static().ok_or(CryptoError::WrongState)?;
        match registry.lookup(&user) {
            Some(registered) if registered == key => {
                self.send(now, &ServerMsg::LoginOk { user: &user })?;
                self.login = Login::LoggedIn;
                self.identity = Some((user.clone(), key));
                self.push_event(ServerEvent::LoggedIn { user, key });
            }
            _ => self.refuse_login(now, LoginError::NotAuthorized),
        }
        Ok(())
    }

    fn refuse_login(&mut self, now: Instant, reason: LoginError) {
        let _ = self.std.send(now, &ServerMsg::LoginRefused { reason });
        self.close_silently();
        // `Closed` is already queued; `LoginFailed` tells the driver why.
        self.push_event(ServerEvent::LoginFailed {
            reason,
            client_version: PROTOCOL_VERSION,
        });
    }

    /// Refuses a login the driver cannot take (e.g. the server is full).
    pub fn refuse(&mut self, now: Instant, reason: LoginError) {
        self.refuse_login(now, reason);
    }

    fn on_message(&mut self, now: Instant, msg: ClientMsg<'_>) -> Result<(), Error> {
        let Some(me) = self.user().cloned() else {
            return Err(ProtocolError::NotLoggedIn.into());
        };
        let kind = match msg {
            ClientMsg::AnnounceDaemon { .. } | ClientMsg::DialRequestChannel { .. } => {
                Some(Command::Announce)
            }
            ClientMsg::ListUsers => Some(Command::List),
            ClientMsg::RequestChat { .. } => Some(Command::Request),
            ClientMsg::LeaveChat { .. } => Some(Command::Leave),
            ClientMsg::Ping => Some(Command::Ping),
            _ => None,
        };
        if let Some(kind) = kind {
            // A refused request is answered as a request, so that the client
            // knows which command was not performed.
            let refusal = match msg {
                ClientMsg::RequestChat { user } => ServerMsg::ChatRefused {
                    chat_id: None,
                    user,
                    reason: RefuseReason::TooSoon,
                },
                _ => ServerMsg::Error {
                    code: ErrorCode::SlowDown,
                },
            };
            if !self.allow(now, kind, &refusal) {
                return Ok(());
            }
        }
        match msg {
            ClientMsg::AnnounceDaemon { port, mut secret } => {
                let r = self.new_request_channel(&secret);
                secret.zeroize();
                r?;
                self.push_event(ServerEvent::DialDaemon { port });
            }
            ClientMsg::DialRequestChannel { mut secret } => {
                let r = self.new_request_channel(&secret);
                let ticket = self
                    .std
                    .transport()
                    .map(|t| RequestTicket::new(t.handshake_hash(), &secret));
                secret.zeroize();
                r?;
                let ticket = ticket.ok_or(CryptoError::WrongState)?;
                self.request_awaited_until = Some(now.add(self.limits.handshake_timeout));
                self.push_event(ServerEvent::AwaitRequestChannel { ticket });
            }
            ClientMsg::ListUsers => self.push_event(ServerEvent::ListUsers),
            ClientMsg::RequestChat { user } => {
                if !matches!(self.chat, ChatSlot::None) {
                    self.send(
                        now,
                        &ServerMsg::Error {
                            code: ErrorCode::NotNow,
                        },
                    )?;
                } else if user == me.as_str() {
                    self.send(
                        now,
                        &ServerMsg::ChatRefused {
                            chat_id: None,
                            user,
                            reason: RefuseReason::SelfRequest,
                        },
                    )?;
                } else if self.recently_refused(now, user) {
                    self.send(
                        now,
                        &ServerMsg::ChatRefused {
                            chat_id: None,
                            user,
                            reason: RefuseReason::TooSoon,
                        },
                    )?;
                } else {
                    self.push_event(ServerEvent::ChatRequest {
                        to: user_name(user)?,
                    });
                }
            }
            ClientMsg::ChatHandshake { chat_id, noise } => {
                self.relay_out(now, chat_id, RelayKind::Handshake, noise)?
            }
            ClientMsg::ChatData { chat_id, noise } => {
                self.relay_out(now, chat_id, RelayKind::Data, noise)?
            }
            ClientMsg::LeaveChat { chat_id } => {
                // A leave that crossed our `PeerLeft` or `ChatRefused` (or
                // names an older chat) must not end a newer one.
                let current = match &self.chat {
                    ChatSlot::Requesting { chat_id: id, .. }
                    | ChatSlot::Active { chat_id: id, .. } => *id == chat_id,
                    ChatSlot::None => false,
                };
                if current {
                    self.leave_everything_but_asked();
                }
            }
            ClientMsg::Ping => self.send(now, &ServerMsg::Pong)?,
            ClientMsg::Logout => self.close_with(now, CloseReason::LoggedOut),
        }
        Ok(())
    }

    /// A new announce: the PSK from `secret`, the old channel closed.
    fn new_request_channel(
        &mut self,
        secret: &[u8; crate::DAEMON_SECRET_LEN],
    ) -> Result<(), Error> {
        // The handshake hash keys the PSK: borrowed, not copied.
        let hash = self
            .std
            .transport()
            .ok_or(CryptoError::WrongState)?
            .handshake_hash();
        self.request_psk = Some(Psk::for_request_channel(hash, secret));
        self.request_opening = true;
        self.request_awaited_until = None;
        self.drop_request_channel();
        // A request delivered over the old channel can no longer be answered.
        self.fail_asked(RefuseReason::Unreachable);
        Ok(())
    }

    fn request_idle(&self) -> Duration {
        Duration::from_millis(
            self.request_keepalive
                .as_millis()
                .saturating_mul(REQUEST_IDLE_FACTOR),
        )
    }

    fn leave_everything_but_asked(&mut self) {
        let asked = self.asked.take();
        self.leave_everything();
        self.asked = asked;
    }

    fn relay_out(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        kind: RelayKind,
        noise: &[u8],
    ) -> Result<(), Error> {
        match &self.chat {
            ChatSlot::Active { chat_id: id, peer } if *id == chat_id => {
                let to = peer.clone();
                self.relay = RelayBytes::from_slice(noise).map_err(|_| WireError::OutOfBounds)?;
                self.push_event(ServerEvent::Relay { to, chat_id, kind });
                Ok(())
            }
            // A message for a chat that just ended crosses our `PeerLeft`: not an attack.
            _ => self.send(
                now,
                &ServerMsg::Error {
                    code: ErrorCode::WrongChat,
                },
            ),
        }
    }

    // ------------------------------------------------------------ routing entry points (driver → session)

    /// Answers [`ServerEvent::ListUsers`]: call with up to
    /// [`MAX_USERS_PER_MESSAGE`] names at a time, `more` on all but the last
    /// (drain [`Self::poll_transmit`] between calls).
    pub fn send_users(&mut self, now: Instant, names: &[&str], more: bool) -> Result<(), Error> {
        let mut list = heapless::Vec::<&str, MAX_USERS_PER_MESSAGE>::new();
        for n in names {
            list.push(n).map_err(|_| WireError::OutOfBounds)?;
        }
        self.send(now, &ServerMsg::Users { names: list, more })
    }

    /// The driver assigned `chat_id` to our request to `peer` and delivered it.
    pub fn chat_pending(&mut self, now: Instant, chat_id: ChatId, peer: &str) -> Result<(), Error> {
        self.chat = ChatSlot::Requesting {
            chat_id,
            peer: user_name(peer)?,
            expires: now.add(self.abuse.request_timeout),
        };
        self.send(
            now,
            &ServerMsg::ChatPending {
                chat_id,
                user: peer,
            },
        )
    }

    /// Our request `chat_id` to `peer` was not delivered (the driver learnt
    /// it later): refused, unless that request is no longer the current one
    /// (it was withdrawn meanwhile, and maybe a newer one is pending).
    pub fn request_not_delivered(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        peer: &str,
        reason: RefuseReason,
    ) -> Result<(), Error> {
        let current = matches!(&self.chat, ChatSlot::Requesting { chat_id: id, peer: p, .. } if *id == chat_id && p == peer);
        if !current {
            return Ok(());
        }
        self.chat_refused(now, peer, reason)
    }

    /// Our request to `peer` cannot be delivered, or was refused.
    pub fn chat_refused(
        &mut self,
        now: Instant,
        peer: &str,
        reason: RefuseReason,
    ) -> Result<(), Error> {
        let mut chat_id = None;
        if let ChatSlot::Requesting {
            chat_id: id,
            peer: p,
            ..
        } = &self.chat
        {
            if p == peer {
                chat_id = Some(*id);
                self.chat = ChatSlot::None;
            }
        }
        if matches!(reason, RefuseReason::Declined | RefuseReason::NoAnswer) {
            if let Ok(name) = user_name(peer) {
                self.remember_refusal(now, &name);
            }
        }
        self.send_control(
            now,
            &ServerMsg::ChatRefused {
                chat_id,
                user: peer,
                reason,
            },
        )
    }

    /// A request from `from` for this user: forward it to the daemon.
    ///
    /// `Err(reason)`: not delivered; tell the requester with `chat_refused`.
    pub fn deliver_request(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        from: &str,
        from_key: PublicKey,
    ) -> Result<(), RefuseReason> {
        if self.user().is_none() {
            return Err(RefuseReason::Offline);
        }
        if self.asked.is_some() {
            return Err(RefuseReason::Busy);
        }
        let from_name = user_name(from).map_err(|_| RefuseReason::UnknownUser)?;
        let sent = match self.request.as_mut().filter(|c| c.is_transport()) {
            Some(req) => {
                req.send(
                    now,
                    &ServerToDaemon::ChatRequest {
                        chat_id,
                        from,
                        from_key,
                    },
                )
                .map_err(|_| RefuseReason::Unreachable)?;
                true
            }
            // Right after login the daemon may not be reached yet: the
            // request is sent once its channel opens (or refused if it fails).
            None if self.request_opening => false,
            None => return Err(RefuseReason::Unreachable),
        };
        self.asked = Some(Asked {
            chat_id,
            from: from_name,
            from_key,
            sent,
        });
        Ok(())
    }

    /// The requester withdrew `chat_id`: tell the daemon. If this user had
    /// already accepted it (the requester left before hearing the answer),
    /// the chat is over: `PeerLeft`.
    pub fn cancel_request(&mut self, now: Instant, chat_id: ChatId) {
        self.peer_left(now, chat_id);
        if let Some(asked) = self.asked.take_if(|a| a.chat_id == chat_id) {
            // A request still waiting for the channel never reached the daemon.
            if let Some(req) = self
                .request
                .as_mut()
                .filter(|c| asked.sent && c.is_transport())
            {
                let _ = req.send(now, &ServerToDaemon::Cancel { chat_id });
            }
        }
    }

    /// The peer answered our request `chat_id`. Returns true if the chat is
    /// now active on our side; false means we no longer wait for it (the
    /// driver then tells the peer with `peer_left`).
    pub fn chat_answered(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        peer: &str,
        peer_key: PublicKey,
        result: Result<(), RefuseReason>,
    ) -> bool {
        let waiting = matches!(&self.chat, ChatSlot::Requesting { chat_id: id, peer: p, .. } if *id == chat_id && p == peer);
        if !waiting {
            return false;
        }
        match result {
            Ok(()) => {
                let Ok(peer_name) = user_name(peer) else {
                    return false;
                };
                let started = ServerMsg::ChatStarted {
                    chat_id,
                    peer,
                    peer_key,
                    initiator: true,
                };
                if self.send_control(now, &started).is_err() {
                    // Our client cannot be told: no chat (the driver ends the peer's side).
                    self.chat = ChatSlot::None;
                    return false;
                }
                self.chat = ChatSlot::Active {
                    chat_id,
                    peer: peer_name,
                };
                true
            }
            Err(reason) => {
                let _ = self.chat_refused(now, peer, reason);
                false
            }
        }
    }

    /// An E2E message from the peer of chat `chat_id`.
    pub fn relay(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        from: &str,
        kind: RelayKind,
        noise: &[u8],
    ) {
        let ours = matches!(&self.chat, ChatSlot::Active { chat_id: id, peer } if *id == chat_id && peer == from);
        if !ours {
            return;
        }
        let msg = match kind {
            RelayKind::Handshake => ServerMsg::ChatHandshake { chat_id, noise },
            RelayKind::Data => ServerMsg::ChatData { chat_id, noise },
        };
        // An ordinary send leaves the reserve free for the `PeerLeft` below,
        // so that a slow reader is always told.
        if self.send(now, &msg).is_err() {
            // Our client cannot keep up (queue full) or the session expired: a
            // chat with a lost message cannot go on, so end it on both sides.
            self.leave_everything_but_asked();
            let _ = self.send_control(now, &ServerMsg::PeerLeft { chat_id });
        }
    }

    /// The peer of chat `chat_id` left or went offline.
    pub fn peer_left(&mut self, now: Instant, chat_id: ChatId) {
        let ours = matches!(&self.chat, ChatSlot::Active { chat_id: id, .. } if *id == chat_id);
        if ours {
            self.chat = ChatSlot::None;
            let _ = self.send_control(now, &ServerMsg::PeerLeft { chat_id });
        }
    }

    // ------------------------------------------------------------ request channel

    /// The driver connected to the announced daemon: start the NNpsk0 handshake.
    pub fn request_channel_connected<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        let psk = self
            .request_psk
            .as_ref()
            .ok_or(ProtocolError::NotLoggedIn)?;
        let hs = Handshake::request_channel(true, psk, rng)?;
        self.request_awaited_until = None;
        let mut ch = Channel::new(hs, self.limits, now, rng)?;
        ch.send_handshake(now, &[])?;
        self.request = Some(ch);
        Ok(())
    }

    /// The daemon could not be reached, its handshake failed, or its
    /// connection dropped: tell the client, fail a pending request.
    pub fn request_channel_failed(&mut self, now: Instant) {
        self.drop_request_channel();
        self.request_opening = false;
        self.request_awaited_until = None;
        self.fail_asked(RefuseReason::Unreachable);
        if self.user().is_some() {
            let _ = self.send(now, &ServerMsg::DaemonStatus { reachable: false });
        }
    }

    /// Feeds bytes from the request channel. An error means: close that
    /// connection (after which call [`Self::request_channel_failed`]).
    ///
    /// `rng` is never asked for a byte here (the server starts the request
    /// channel's re-keys, from [`Self::handle_timeout`]); it is what
    /// [`Channel::read`] takes.
    pub fn handle_request_input<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        input: &[u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        let Some(req) = self.request.as_mut() else {
            return Err(ProtocolError::Closed.into());
        };
        let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
        let (used, incoming) = req.read(now, input, &mut scratch, rng)?;
        match incoming {
            Incoming::Nothing => {}
            // NNpsk0 message 2: the channel answers with the layer's first
            // message by itself.
            Incoming::Handshake {
                len: 0,
                finished: false,
            } => {}
            Incoming::Handshake { len, finished } => {
                if len != 0 || !finished {
                    req.close();
                    return Err(ProtocolError::Unexpected.into());
                }
                req.send(now, &ServerToDaemon::Ready)?;
                self.request_opening = false;
                if let Some(asked) = self.asked.as_mut().filter(|a| !a.sent) {
                    req.send(
                        now,
                        &ServerToDaemon::ChatRequest {
                            chat_id: asked.chat_id,
                            from: &asked.from,
                            from_key: asked.from_key,
                        },
                    )?;
                    asked.sent = true;
                }
                self.send(now, &ServerMsg::DaemonStatus { reachable: true })?;
            }
            Incoming::Message { len } => {
                let msg = received(&scratch, len)
                    .and_then(|p| Ok(decode::<DaemonToServer>(p)?))
                    .inspect_err(|_| req.close())?;
                self.on_daemon_message(now, msg)?;
            }
        }
        Ok(used)
    }

    fn on_daemon_message(&mut self, now: Instant, msg: DaemonToServer) -> Result<(), Error> {
        match msg {
            DaemonToServer::Answer { chat_id, answer } => {
                let Some(asked) = self.asked.take_if(|a| a.chat_id == chat_id) else {
                    // An answer to a request that was withdrawn meanwhile.
                    return Ok(());
                };
                let result = match answer {
                    Answer::Accept if matches!(self.chat, ChatSlot::None) => Ok(()),
                    Answer::Accept | Answer::Busy => Err(RefuseReason::Busy),
                    Answer::Decline => Err(RefuseReason::Declined),
                };
                let mut result = result;
                if result.is_ok() {
                    let started = ServerMsg::ChatStarted {
                        chat_id,
                        peer: &asked.from,
                        peer_key: asked.from_key,
                        initiator: false,
                    };
                    if self.send_control(now, &started).is_ok() {
                        self.chat = ChatSlot::Active {
                            chat_id,
                            peer: asked.from.clone(),
                        };
                    } else {
                        // Our client cannot be told: the requester hears "busy".
                        result = Err(RefuseReason::Busy);
                    }
                }
                self.push_event(ServerEvent::Answered {
                    chat_id,
                    requester: asked.from,
                    result,
                });
            }
            DaemonToServer::Bye => self.request_channel_failed(now),
            // Only its arrival matters (the channel's last receive time).
            DaemonToServer::Pong => {}
        }
        Ok(())
    }
}
