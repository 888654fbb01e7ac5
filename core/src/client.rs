//! The client: its standard channel, its daemon (request channel) and its chat.
//!
//! One [`Client`] holds everything a user's session shares: the login, the
//! chat state ("am I chatting?") that both the main loop and the daemon
//! consult, and the E2E chat itself. Request-channel connections are separate
//! [`RequestLink`]s, one per TCP connection the server opens, fed through
//! [`Client::handle_request_input`]; a link touches the client's state only
//! after it has authenticated a message, so a replayed or foreign connection
//! changes nothing.
//!
//! # Call order (driver loop)
//! 1. [`Client::new`], then write [`Client::poll_transmit`] to the socket.
//! 2. On bytes from the server: [`Client::handle_input`] until all are
//!    consumed; after each call drain [`Client::poll_event`] and
//!    [`Client::poll_transmit`].
//! 3. On user commands: [`Client::list_users`], [`Client::request_chat`],
//!    [`Client::answer_request`], [`Client::send_text`], [`Client::leave_chat`],
//!    [`Client::logout`]; then drain as in 2.
//! 4. At [`Client::poll_timeout`]: [`Client::handle_timeout`].
//! 5. Daemon: on each accepted connection [`Client::new_request_link`]; on its
//!    bytes [`Client::handle_request_input`]; drain
//!    [`Client::poll_request_transmit`] for that link (also after
//!    [`Client::answer_request`]).
//!
//! Any `Err` from `handle_*` is fatal for that connection: close it.

use heapless::Deque;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

#[cfg(feature = "certificates")]
use crate::cert;
use crate::cert::CaTrust;
use crate::channel::{received, Channel, Incoming, RequestChannel, Scratch, StandardChannel};
use crate::chat::{ChatText, E2eChat, Received};
use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::{CryptoError, Error, ProtocolError, WireError};
use crate::keys::{PublicKey, SafetyNumber, StaticSecret};
use crate::limits::{
    Limits, DAEMON_SECRET_LEN, MAX_E2E_MESSAGE, MAX_NOISE_MESSAGE, MAX_USERS_PER_MESSAGE,
    PROTOCOL_VERSION, REQUEST_LINK_IDLE,
};
use crate::message::{
    decode, encode, user_name, Answer, ChatId, ClientHello, ClientMsg, CloseReason, DaemonToServer,
    ErrorCode, LoginError, RefuseReason, ServerHello, ServerMsg, ServerToDaemon, UserName,
    SERVER_CHAT_DATA_TAG, SERVER_CHAT_HANDSHAKE_TAG,
};
use crate::noise::{Handshake, Psk, RemoteCheck, RequestTicket, REQUEST_HELLO_FRAME};
use crate::time::{Duration, Instant};

/// How a client finds and checks its server, and who it is.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The user name to log in as.
    pub user: UserName,
    /// The server's static key, pinned: any other key ends the handshake.
    /// (Not used by a client made with [`Client::with_ca`], which checks the
    /// server's certificate instead.)
    pub server_key: PublicKey,
    /// The port the daemon listens on, announced after login; `None`: no daemon.
    pub daemon_port: Option<u16>,
    /// Session limits.
    pub limits: Limits,
}

/// Output room a leave needs: the frame of an end-to-end `Close` (2 + 16 +
/// `ChatData` of at most 1 + 5 + 1 + 16 + 11) and of `LeaveChat` (2 + 16 + 6).
const LEAVE_ROOM: usize = 2 * (2 + 16 + 34);

/// Why a chat ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChatEnd {
    /// We left (an open chat got our end-to-end `Close` first).
    Left,
    /// The peer closed the open chat end to end (its `Close` authenticated).
    PeerClosed {
        /// How many of our last texts the peer's close says it never
        /// received (they crossed its leaving, or the server dropped them);
        /// 0: every text arrived, both ways.
        undelivered: u32,
    },
    /// The server ended the open chat (`PeerLeft`, or our session closed)
    /// without the peer's end-to-end close: the peer's client went away
    /// without closing, or the server stopped relaying.
    EndedByServer {
        /// How many of our last texts the peer never acknowledged: they may
        /// not have arrived.
        unconfirmed: u32,
    },
    /// The peer left (or went offline, or withdrew) before the chat opened:
    /// no text was exchanged.
    PeerLeft,
    /// A message failed to authenticate or broke the protocol: the chat is over.
    Failed(Error),
}

/// A server certificate the client accepted (CA mode, see [`Client::with_ca`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CertifiedServer {
    /// The certificate's serial number.
    pub serial: u64,
    /// Start of its validity, Unix seconds.
    pub not_before: u64,
    /// End of its validity, Unix seconds.
    pub not_after: u64,
}

/// How the request channel's connection is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestMode {
    /// Announce the listening daemon; if the server cannot reach it, open
    /// the connection ourselves (the default: it works behind NAT).
    #[default]
    Auto,
    /// Only be dialled (the original design).
    Listen,
    /// Only dial: never announce a listening port.
    Dial,
}

/// What a client that dials its request channel writes first on the new
/// connection to the server (a frame with its ticket, see
/// [`crate::noise::RequestTicket`]); after it the connection is a request
/// link like an accepted one ([`Client::new_request_link`]).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestHello(pub [u8; REQUEST_HELLO_FRAME]);

impl core::fmt::Debug for RequestHello {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RequestHello(..)")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RequestHello {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "RequestHello(..)")
    }
}

/// First delay before announcing again after the request channel failed
/// (doubling up to [`MAX_REANNOUNCE_BACKOFF`]). With the login's announce,
/// the first tries fit the server's default announce rate (6 a minute,
/// burst 3).
pub const REANNOUNCE_BACKOFF: Duration = Duration::from_secs(2);
/// An announce that got no `DaemonStatus` within this time (the server
/// refused it as over its rate, or the answer was lost) is made again.
pub const ANNOUNCE_WATCHDOG: Duration = Duration::from_secs(30);
/// Longest delay between announces while the request channel keeps failing.
pub const MAX_REANNOUNCE_BACKOFF: Duration = Duration::from_secs(60);

/// A one-time secret drawn ahead, wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Secret([u8; DAEMON_SECRET_LEN]);

/// What the client has to tell its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Open a TCP connection to the server for the request channel, write
    /// these bytes first, then run it as a request link
    /// ([`Client::new_request_link`], [`Client::handle_request_input`]).
    /// An earlier such connection is void.
    ConnectRequestChannel(RequestHello),
    /// Login succeeded.
    LoggedIn {
        /// The name we are logged in as.
        user: UserName,
    },
    /// Login refused; the connection is closed.
    LoginRefused(LoginError),
    /// Whether the server reached our daemon.
    DaemonStatus {
        /// True if the request channel is up.
        reachable: bool,
    },
    /// Part of the online list.
    Users {
        /// Names.
        names: heapless::Vec<UserName, MAX_USERS_PER_MESSAGE>,
        /// More parts follow.
        more: bool,
    },
    /// Our request went to the user; waiting for the answer.
    ChatPending {
        /// The chat.
        chat_id: ChatId,
        /// Who we asked.
        user: UserName,
    },
    /// Someone asks us for a chat: answer with [`Client::answer_request`].
    ChatRequest {
        /// The chat.
        chat_id: ChatId,
        /// Who asks.
        from: UserName,
        /// Their key (show its fingerprint).
        from_key: PublicKey,
    },
    /// A request was refused automatically because we are busy.
    RefusedBusy {
        /// Who asked.
        from: UserName,
    },
    /// The request we were asked was withdrawn.
    RequestWithdrawn {
        /// Who had asked.
        from: UserName,
    },
    /// Our request was refused.
    ChatRefused {
        /// Who we asked.
        user: UserName,
        /// Why.
        reason: RefuseReason,
    },
    /// The chat is open end to end.
    ChatReady {
        /// The chat.
        chat_id: ChatId,
        /// The peer.
        peer: UserName,
        /// The peer's key.
        peer_key: PublicKey,
        /// The chat's safety number.
        safety_number: SafetyNumber,
        /// True if we requested the chat (and so speak first).
        initiator: bool,
    },
    /// A message from the peer.
    ChatMessage {
        /// Who sent it.
        from: UserName,
        /// The text (authenticated end to end).
        text: ChatText,
    },
    /// The chat is over.
    ChatEnded {
        /// Who we chatted with.
        peer: UserName,
        /// Why.
        reason: ChatEnd,
    },
    /// The server rejected a request; the session goes on.
    ServerError(ErrorCode),
    /// The server closed the session cleanly.
    Closed(CloseReason),
}

enum Login {
    Handshake,
    AwaitResult,
    LoggedIn,
    LoggingOut,
    Closed,
}

enum ChatState<P: CryptoProvider> {
    Idle,
    Requesting {
        user: UserName,
        /// From `ChatPending`.
        chat_id: Option<ChatId>,
    },
    /// We withdrew a request before its `ChatPending` came: `LeaveChat` goes
    /// out with the chat id `ChatPending` brings (the user was told already).
    Withdrawing {
        user: UserName,
    },
    Asked {
        chat_id: ChatId,
        from: UserName,
        from_key: PublicKey,
        link: u32,
    },
    Accepted {
        chat_id: ChatId,
        from: UserName,
        from_key: PublicKey,
        link: u32,
    },
    Chat(E2eChat<P>),
}

/// Capacity of the event queue. One input frame yields at most two events.
pub const EVENT_CAPACITY: usize = 4;

/// The client's whole protocol state, on the crypto provider `P` (see
/// [`crate::crypto`]; `Client` is `Client<RustCrypto>`).
pub struct Client<P: CryptoProvider = RustCrypto> {
    config: ClientConfig,
    /// `Some`: the server is authenticated by a CA certificate, not a pinned key.
    #[cfg_attr(not(feature = "certificates"), allow(dead_code))]
    ca: Option<CaTrust>,
    certified: Option<CertifiedServer>,
    identity: StaticSecret,
    std: StandardChannel<P>,
    login: Login,
    chat: ChatState<P>,
    events: Deque<ClientEvent, EVENT_CAPACITY>,
    psk: Option<Psk>,
    next_link: u32,
    pending_answer: Option<(u32, ChatId, Answer)>,
    request_mode: RequestMode,
    /// We open the request channel ourselves (`Dial`, or `Auto` after the
    /// server could not reach the daemon).
    dialling: bool,
    /// The link that last authenticated: losing it means announcing again.
    current_link: Option<u32>,
    /// When to announce again (after a failure), and the delay after that.
    reannounce_at: Option<Instant>,
    backoff: Duration,
    /// The secret of the next announce, drawn while an RNG was at hand.
    spare: Option<Secret>,
    /// The request channel failed: an announce is scheduled.
    retrying: bool,
}

/// Where a relayed chat message's bytes are in the server message `plain`:
/// `(handshake, chat, start)` for `ChatHandshake` (`handshake`) or
/// `ChatData`, whose bytes are `plain[start..]`; `None` for any other
/// message. In a frame of its own, so that the decoded message is not on
/// the stack while the relayed one is opened (the device's stack).
#[inline(never)]
fn relayed(plain: &[u8]) -> Result<Option<(bool, ChatId, usize)>, Error> {
    let (handshake, chat_id, noise) = match decode::<ServerMsg>(plain)? {
        ServerMsg::ChatHandshake { chat_id, noise } => (true, chat_id, noise),
        ServerMsg::ChatData { chat_id, noise } => (false, chat_id, noise),
        _ => return Ok(None),
    };
    // `decode` leaves no byte unread, and the relayed bytes are the
    // message's last field: they are its last bytes (checked: the very
    // bytes `decode` borrowed).
    let start = plain.len().saturating_sub(noise.len());
    if !noise.is_empty() && plain.get(start..).map(<[u8]>::as_ptr) != Some(noise.as_ptr()) {
        return Err(WireError::Malformed.into());
    }
    Ok(Some((handshake, chat_id, start)))
}

/// One request-channel connection (server → our daemon).
pub struct RequestLink<P: CryptoProvider = RustCrypto> {
    id: u32,
    channel: RequestChannel<P>,
    authenticated: bool,
    created: Instant,
    proof_timeout: crate::time::Duration,
}

impl<P: CryptoProvider> RequestLink<P> {
    /// True once the server proved it holds this session's PSK (a message authenticated).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// How many re-keys this link's channel has completed.
    pub fn rekeys(&self) -> u32 {
        self.channel.rekeys()
    }

    /// True when the link is closed (after `Bye` or an error).
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    /// Deadline for [`Client::handle_request_timeout`]: a link must prove
    /// itself (its handshake done and the server's `Ready` authenticated)
    /// within the handshake timeout; after that it has no deadline (the
    /// server keeps it open without traffic).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.channel.is_closed() {
            None
        } else if self.authenticated {
            // The server keeps the channel alive (`Ping`): silence means it
            // is gone. And it re-keys the channel: a re-key that stalls, or
            // keys it lets grow too old, end the link too.
            let idle = self.channel.last_rx().add(REQUEST_LINK_IDLE);
            Some(match self.channel.rekey_deadline() {
                Some(t) => idle.min(t),
                None => idle,
            })
        } else {
            Some(self.created.add(self.proof_timeout))
        }
    }
}

impl<P: CryptoProvider> Client<P> {
    /// Starts a login: the first handshake message is queued. The server
    /// must have the pinned key `config.server_key`.
    pub fn new<R: RngCore + CryptoRng>(
        config: ClientConfig,
        identity: StaticSecret,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Self::started(config, None, identity, now, rng)
    }

    #[cfg(feature = "certificates")]
    /// Starts a login that authenticates the server by a certificate from the
    /// CA `ca` instead of a pinned key (`config.server_key` is not used): the
    /// server's handshake message must carry a certificate that passes
    /// [`cert::verify`] for the static key the server proved, or the
    /// handshake ends with [`Error::Certificate`] before the client sends
    /// its name or key.
    pub fn with_ca<R: RngCore + CryptoRng>(
        config: ClientConfig,
        ca: CaTrust,
        identity: StaticSecret,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Self::started(config, Some(ca), identity, now, rng)
    }

    fn started<R: RngCore + CryptoRng>(
        config: ClientConfig,
        ca: Option<CaTrust>,
        identity: StaticSecret,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let mut c = Self::unstarted();
        c.start_in_place(config, ca, identity, now, rng)?;
        Ok(c)
    }

    /// A client that is not started: closed, with no key and no name. Its
    /// only use is [`Self::start`]'s in place: a device builds its 14 KB
    /// client in a static this way, without a copy of it on the stack.
    pub const fn unstarted() -> Self {
        Client {
            config: ClientConfig {
                user: UserName::new(),
                server_key: PublicKey([0; 32]),
                daemon_port: None,
                limits: Limits::DEFAULT,
            },
            ca: None,
            certified: None,
            identity: StaticSecret::none(),
            std: Channel::closed(Limits::DEFAULT),
            login: Login::Closed,
            chat: ChatState::Idle,
            events: Deque::new(),
            psk: None,
            next_link: 0,
            pending_answer: None,
            request_mode: RequestMode::Auto,
            dialling: false,
            current_link: None,
            reannounce_at: None,
            backoff: REANNOUNCE_BACKOFF,
            spare: None,
            retrying: false,
        }
    }

    /// [`Self::new`] in place, on an [`Self::unstarted`] client (or any:
    /// everything is reset): the first handshake message is queued.
    pub fn start(
        &mut self,
        config: ClientConfig,
        identity: StaticSecret,
        now: Instant,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), Error> {
        self.start_in_place(config, None, identity, now, rng)
    }

    fn start_in_place<R: RngCore + CryptoRng>(
        &mut self,
        config: ClientConfig,
        ca: Option<CaTrust>,
        identity: StaticSecret,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        let check = match ca {
            Some(_) => RemoteCheck::Any,
            None => RemoteCheck::Exactly(config.server_key),
        };
        let hs = Handshake::standard(true, &identity, check, rng)?;
        self.std.restart(hs, config.limits, now, rng)?;
        self.config = config;
        self.ca = ca;
        self.certified = None;
        self.identity = identity;
        self.login = Login::Handshake;
        self.chat = ChatState::Idle;
        self.events.clear();
        self.psk = None;
        self.next_link = 0;
        self.pending_answer = None;
        self.request_mode = RequestMode::Auto;
        self.dialling = false;
        self.current_link = None;
        self.reannounce_at = None;
        self.backoff = REANNOUNCE_BACKOFF;
        self.spare = None;
        self.retrying = false;
        if let Err(e) = self.std.send_handshake(now, &[]) {
            self.login = Login::Closed;
            return Err(e);
        }
        Ok(())
    }

    // ------------------------------------------------------------ getters

    /// Our user name.
    pub fn user(&self) -> &UserName {
        &self.config.user
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public_key()
    }

    /// The server's accepted certificate (CA mode, once the handshake got that far).
    pub fn certified_server(&self) -> Option<CertifiedServer> {
        self.certified
    }

    /// True once the server accepted the login.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.login, Login::LoggedIn)
    }

    /// True when the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.login, Login::Closed)
    }

    /// True while chatting, requesting (or withdrawing a request) or being
    /// asked: a new request gets "busy".
    pub fn is_busy(&self) -> bool {
        !matches!(self.chat, ChatState::Idle)
    }

    /// The current chat, if one is open or opening.
    pub fn chat(&self) -> Option<&E2eChat<P>> {
        match &self.chat {
            ChatState::Chat(c) => Some(c),
            _ => None,
        }
    }

    // ------------------------------------------------------------ outputs

    /// How many re-keys the standard channel has completed.
    pub fn rekeys(&self) -> u32 {
        self.std.rekeys()
    }

    /// Next event for the user.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the standard channel's socket (the chat's next
    /// re-key message, an answer to the peer's or one that waited for room,
    /// is queued first).
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> usize {
        if self.is_logged_in() {
            // A failure has ended the chat (or the session) already.
            let _ = self.flush_chat_rekey(self.std.last_rx());
        }
        self.std.poll_transmit(out)
    }

    /// When to call [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let channel = self.std.poll_timeout();
        let keepalive = match self.login {
            Login::LoggedIn => Some(
                self.std
                    .last_tx()
                    .add(self.config.limits.keepalive_interval()),
            ),
            _ => None,
        };
        let chat = match &self.chat {
            ChatState::Chat(c) => c.handshake_deadline().or(c.rekey_deadline()),
            _ => None,
        };
        let reannounce = self.reannounce_at.filter(|_| self.is_logged_in());
        [channel, keepalive, chat, reannounce]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sends a keep-alive when due, re-keys the standard channel and the
    /// chat when their keys are due (`rng`: their randomness); errors
    /// (fatal) when a deadline passed.
    pub fn handle_timeout<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        if let Err(e) = self.std.check_timeout(now) {
            return self.fail(e.into());
        }
        if let Err(e) = self.std.maybe_rekey(now, rng) {
            return self.fail(e);
        }
        self.rekey_chat(now, rng)?;
        // The chat's deadline first: a keep-alive that does not fit a full
        // queue must not put it off.
        let late = matches!(&self.chat, ChatState::Chat(c) if c.handshake_deadline().is_some_and(|d| now >= d));
        if late {
            // The peer's KK message never came: end the chat, keep the session.
            self.chat_failed(now, ProtocolError::HandshakeTimeout.into())?;
        }
        if matches!(self.login, Login::LoggedIn)
            && now
                >= self
                    .std
                    .last_tx()
                    .add(self.config.limits.keepalive_interval())
        {
            self.send(now, &ClientMsg::Ping)?;
        }
        self.reannounce_if_due(now)
    }

    fn push_event(&mut self, e: ClientEvent) {
        // At most two events per input; the driver drains after each input, so
        // the queue cannot be full here. Should it be, the oldest event is kept.
        let _ = self.events.push_back(e);
    }

    fn fail<T>(&mut self, e: Error) -> Result<T, Error> {
        self.std.close();
        self.login = Login::Closed;
        self.chat = ChatState::Idle;
        self.psk = None;
        Err(e)
    }

    fn send(&mut self, now: Instant, msg: &ClientMsg<'_>) -> Result<(), Error> {
        match self.std.send(now, msg) {
            Ok(()) => Ok(()),
            Err(e @ Error::Protocol(ProtocolError::QueueFull)) => Err(e),
            Err(e) => self.fail(e),
        }
    }

    // ------------------------------------------------------------ standard channel input

    /// Feeds bytes from the server; returns how many were used (call again with the rest).
    pub fn handle_input<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        input: &[u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        if self.is_closed() {
            return Err(ProtocolError::Closed.into());
        }
        let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
        let (used, incoming) = match self.std.read(now, input, &mut scratch, rng) {
            Ok(r) => r,
            Err(e) => return self.fail(e),
        };
        let result = match incoming {
            // No whole frame yet (`scratch` is still the zeros above), or a
            // re-key message the channel handled (its plaintext, in
            // `scratch`, is public: ephemeral keys and sealed layer
            // messages): nothing to wipe.
            Incoming::Nothing => return Ok(used),
            // XX message 2: the server's hello.
            Incoming::Handshake {
                len,
                finished: false,
            } => received(&scratch, len).and_then(|p| self.on_server_hello(now, p)),
            // The post-quantum layer's answer: the channel is open, and the
            // server's verdict on the login comes next.
            Incoming::Handshake { finished: true, .. } => match self.login {
                Login::AwaitResult => Ok(()),
                _ => Err(ProtocolError::Unexpected.into()),
            },
            Incoming::Message { len } => match scratch.get_mut(..len) {
                Some(plain) => self.on_frame(now, plain, rng),
                None => Err(CryptoError::BufferTooSmall.into()),
            },
        };
        // As a slice: zeroize's bulk wipe (a memset it keeps), not the
        // array impl's one volatile store per byte.
        scratch.as_mut_slice().zeroize();
        if let Err(e) = result {
            return self.fail(e);
        }
        // A secret for the next announce, when one is coming: after a
        // failure, or when the watchdog is due.
        let due = self.reannounce_at.is_some_and(|t| now >= t);
        if self.spare.is_none() && (self.retrying || due) {
            let mut secret = Secret([0; DAEMON_SECRET_LEN]);
            rng.fill_bytes(&mut secret.0);
            self.spare = Some(secret);
        }
        self.reannounce_if_due(now)?;
        Ok(used)
    }

    // Not inlined (nor `on_message`, `on_daemon_message`): their buffers
    // would sit in `handle_input`'s frame, under the post-quantum layer's
    // decapsulation in `Channel::read` (the device's stack decides this).
    #[inline(never)]
    fn on_server_hello(&mut self, now: Instant, payload: &[u8]) -> Result<(), Error> {
        if !matches!(self.login, Login::Handshake) {
            return Err(ProtocolError::Unexpected.into());
        }
        let hello: ServerHello = decode(payload)?;
        if hello.version != PROTOCOL_VERSION {
            return Err(ProtocolError::VersionMismatch {
                peer: hello.version,
            }
            .into());
        }
        #[cfg(feature = "certificates")]
        if let Some(ca) = &self.ca {
            // The static key the server just proved (`s`, `es` of message 2).
            let key = self
                .std
                .handshake()
                .and_then(|h| h.remote_static())
                .ok_or(CryptoError::WrongState)?;
            let bytes = hello.certificate.ok_or(cert::CertError::Missing)?;
            let body = cert::verify(bytes, ca, &key)?;
            self.certified = Some(CertifiedServer {
                serial: body.serial,
                not_before: body.not_before,
                not_after: body.not_after,
            });
        }
        let mut buf = [0u8; 64];
        let n = encode(
            &ClientHello {
                version: PROTOCOL_VERSION,
                user: &self.config.user,
            },
            &mut buf,
        )?;
        let hello = buf.get(..n).ok_or(WireError::BufferTooSmall)?;
        self.std.send_handshake(now, hello)?;
        self.login = Login::AwaitResult;
        Ok(())
    }

    /// A server message. A relayed chat message (`ChatHandshake`,
    /// `ChatData`) is opened in place where it arrived, in `plain` (the
    /// device's stack: no copy of it, and no other message's frame, sits
    /// under a re-key's decapsulation); any other goes to `on_message`.
    fn on_frame<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        plain: &mut [u8],
        rng: &mut R,
    ) -> Result<(), Error> {
        // Only a relayed message is decoded by `relayed` (the others once,
        // by `on_message`).
        let tag = plain.first().copied();
        let relayed = match tag {
            Some(SERVER_CHAT_HANDSHAKE_TAG | SERVER_CHAT_DATA_TAG) => relayed(plain)?,
            _ => None,
        };
        match relayed {
            Some((handshake, chat_id, start))
                if matches!(self.login, Login::LoggedIn | Login::LoggingOut) =>
            {
                let noise = plain.get_mut(start..).ok_or(CryptoError::BufferTooSmall)?;
                if handshake {
                    self.on_chat_handshake(now, chat_id, noise)
                } else {
                    self.on_chat_data(now, chat_id, noise, rng)
                }
            }
            _ => self.on_message(now, decode::<ServerMsg>(plain)?, rng),
        }
    }

    #[inline(never)]
    fn on_message<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        msg: ServerMsg<'_>,
        rng: &mut R,
    ) -> Result<(), Error> {
        match (&self.login, msg) {
            (_, ServerMsg::Bye { reason }) => {
                self.end_by_server();
                self.push_event(ClientEvent::Closed(reason));
                self.std.close();
                self.login = Login::Closed;
                Ok(())
            }
            (Login::AwaitResult, ServerMsg::LoginOk { user }) => {
                if user != self.config.user.as_str() {
                    return Err(ProtocolError::Unexpected.into());
                }
                self.login = Login::LoggedIn;
                self.push_event(ClientEvent::LoggedIn {
                    user: self.config.user.clone(),
                });
                // Without a listening daemon there is no request channel,
                // unless we dial it.
                self.dialling = matches!(self.request_mode, RequestMode::Dial);
                if self.config.daemon_port.is_some() || self.dialling {
                    let mut secret = Secret([0; DAEMON_SECRET_LEN]);
                    rng.fill_bytes(&mut secret.0);
                    self.announce(now, &secret)?;
                }
                Ok(())
            }
            (Login::AwaitResult, ServerMsg::LoginRefused { reason }) => {
                self.push_event(ClientEvent::LoginRefused(reason));
                self.std.close();
                self.login = Login::Closed;
                Ok(())
            }
            (Login::LoggedIn | Login::LoggingOut, msg) => self.on_session_message(now, msg, rng),
            _ => Err(ProtocolError::Unexpected.into()),
        }
    }

    fn on_session_message<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        msg: ServerMsg<'_>,
        rng: &mut R,
    ) -> Result<(), Error> {
        match msg {
            ServerMsg::DaemonStatus { reachable } => {
                self.push_event(ClientEvent::DaemonStatus { reachable });
                if reachable {
                    self.backoff = REANNOUNCE_BACKOFF;
                    self.reannounce_at = None;
                } else {
                    self.schedule_reannounce(now);
                }
            }
            ServerMsg::Users { names, more } => {
                let mut owned = heapless::Vec::new();
                for n in names {
                    // Bounded by the same capacity and already validated by `decode`.
                    let _ = owned.push(user_name(n)?);
                }
                self.push_event(ClientEvent::Users { names: owned, more });
            }
            ServerMsg::ChatPending { chat_id, user } => match &mut self.chat {
                ChatState::Requesting {
                    user: u,
                    chat_id: id @ None,
                } if u == user => {
                    *id = Some(chat_id);
                    self.push_event(ClientEvent::ChatPending {
                        chat_id,
                        user: user_name(user)?,
                    });
                }
                ChatState::Withdrawing { user: u } if u == user => {
                    self.chat = ChatState::Idle;
                    self.send(now, &ClientMsg::LeaveChat { chat_id })?;
                }
                _ => {}
            },
            ServerMsg::ChatRefused {
                chat_id,
                user,
                reason,
            } => match &self.chat {
                ChatState::Requesting {
                    user: u,
                    chat_id: id,
                } if u == user && *id == chat_id => {
                    self.chat = ChatState::Idle;
                    self.push_event(ClientEvent::ChatRefused {
                        user: user_name(user)?,
                        reason,
                    });
                }
                ChatState::Withdrawing { user: u } if u == user => self.chat = ChatState::Idle,
                _ => {}
            },
            ServerMsg::ChatStarted {
                chat_id,
                peer,
                peer_key,
                initiator,
            } => self.on_chat_started(now, chat_id, peer, peer_key, initiator, rng)?,
            // Opened in place by `on_frame`.
            ServerMsg::ChatHandshake { .. } | ServerMsg::ChatData { .. } => {
                return Err(ProtocolError::Unexpected.into())
            }
            ServerMsg::PeerLeft { chat_id } => {
                if self.current_chat_id() == Some(chat_id) {
                    self.end_by_server();
                }
            }
            ServerMsg::Pong => {}
            ServerMsg::Error { code } => self.push_event(ClientEvent::ServerError(code)),
            ServerMsg::LoginOk { .. } | ServerMsg::LoginRefused { .. } | ServerMsg::Bye { .. } => {
                return Err(ProtocolError::Unexpected.into())
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn on_chat_started<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        peer: &str,
        peer_key: PublicKey,
        initiator: bool,
        rng: &mut R,
    ) -> Result<(), Error> {
        let expected = match &self.chat {
            ChatState::Requesting { user, chat_id: id } => {
                initiator && user == peer && *id == Some(chat_id)
            }
            ChatState::Accepted {
                chat_id: id,
                from,
                from_key,
                ..
            } => !initiator && *id == chat_id && from == peer && *from_key == peer_key,
            _ => false,
        };
        if !expected {
            // A chat we withdrew from (our `LeaveChat` crossed the answer) or
            // never asked for: the server may have it as our current chat, so
            // leave exactly that one, which also tells the peer. (Our own
            // current chat, if any, is another id: it goes on.)
            if matches!(&self.chat, ChatState::Withdrawing { user } if user == peer) {
                self.chat = ChatState::Idle;
            }
            return self.send(now, &ClientMsg::LeaveChat { chat_id });
        }
        if peer_key.is_low_order() {
            // No one holds its private key, and every DH with it is all
            // zeros: a chat keyed so would be open to whoever relays it.
            return self.chat_failed(now, CryptoError::WeakKey.into());
        }
        let chat = E2eChat::new_undrawn(
            chat_id,
            &self.identity,
            &self.config.user,
            user_name(peer)?,
            peer_key,
            initiator,
            self.config.limits,
            now,
            rng,
        )?;
        self.chat = ChatState::Chat(chat);
        self.draw_chat_seed(rng)?;
        self.flush_chat_handshake(now)
    }

    /// The chat's layer randomness (the requester's ML-KEM key pair), drawn
    /// where the chat now is, in a frame of its own (the device's stack).
    #[inline(never)]
    fn draw_chat_seed<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<(), Error> {
        match &mut self.chat {
            ChatState::Chat(chat) => chat.draw_layer_seed(rng),
            _ => Ok(()),
        }
    }

    #[inline(never)]
    fn flush_chat_handshake(&mut self, now: Instant) -> Result<(), Error> {
        let ChatState::Chat(chat) = &mut self.chat else {
            return Ok(());
        };
        let mut buf = [0u8; MAX_E2E_MESSAGE];
        let written = chat.write_handshake(now, &mut buf);
        let chat_id = chat.id();
        match written {
            Ok(Some(n)) => self.send(
                now,
                &ClientMsg::ChatHandshake {
                    chat_id,
                    noise: buf.get(..n).ok_or(CryptoError::BufferTooSmall)?,
                },
            )?,
            Ok(None) => {}
            Err(e) => {
                self.chat_failed(now, e)?;
                return Ok(());
            }
        }
        self.announce_if_ready();
        Ok(())
    }

    // Not inlined: its event would sit in `flush_chat_handshake`'s frame,
    // under the answer's encapsulation.
    #[inline(never)]
    fn announce_if_ready(&mut self) {
        if let ChatState::Chat(chat) = &self.chat {
            if chat.is_open() {
                let e = ClientEvent::ChatReady {
                    chat_id: chat.id(),
                    peer: chat.peer().clone(),
                    peer_key: *chat.peer_key(),
                    safety_number: chat.safety_number(),
                    initiator: chat.is_initiator(),
                };
                self.push_event(e);
            }
        }
    }

    #[inline(never)]
    fn on_chat_handshake(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        noise: &mut [u8],
    ) -> Result<(), Error> {
        let ChatState::Chat(chat) = &mut self.chat else {
            return Ok(());
        };
        if chat.id() != chat_id {
            return Ok(());
        }
        if let Err(e) = chat.read_handshake(now, noise) {
            return self.chat_failed(now, e);
        }
        self.flush_chat_handshake(now)
    }

    #[inline(never)]
    fn on_chat_data<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        chat_id: ChatId,
        noise: &mut [u8],
        rng: &mut R,
    ) -> Result<(), Error> {
        let ChatState::Chat(chat) = &mut self.chat else {
            return Ok(());
        };
        if chat.id() != chat_id {
            return Ok(());
        }
        match chat.open_in_place(now, noise, rng) {
            // Our answer, if one is due, goes out from `poll_transmit`, not
            // from under this message's frames (the device's stack).
            Ok((Received::Rekey, _)) => Ok(()),
            Ok((Received::Text, range)) => {
                self.push_chat_text(noise.get(range).unwrap_or_default());
                Ok(())
            }
            Ok((Received::Closed { undelivered }, _)) => {
                // The server ends the chat on the peer's `LeaveChat`; we leave
                // too, so that a server that holds that back cannot keep us
                // in a dead chat.
                self.end_chat(ChatEnd::PeerClosed { undelivered });
                self.send(now, &ClientMsg::LeaveChat { chat_id })
            }
            Err(e) => self.chat_failed(now, e),
        }
    }

    /// The event of a text `open_in_place` checked (UTF-8, at most
    /// `MAX_CHAT_TEXT` bytes), built in a frame of its own (see
    /// [`E2eChat::open_in_place`]).
    #[inline(never)]
    fn push_chat_text(&mut self, bytes: &[u8]) {
        let ChatState::Chat(chat) = &self.chat else {
            return;
        };
        let mut text = ChatText::new();
        let _ = text.push_str(core::str::from_utf8(bytes).unwrap_or_default());
        let from = chat.peer().clone();
        self.push_event(ClientEvent::ChatMessage { from, text });
    }

    /// The chat's re-keying, from `handle_timeout`: a re-key that ran out of
    /// time (or a peer's overdue one) ends the chat, not the session; a
    /// due one starts.
    fn rekey_chat<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        let ChatState::Chat(chat) = &mut self.chat else {
            return Ok(());
        };
        if let Err(e) = chat.check_rekey(now) {
            return self.chat_failed(now, e.into());
        }
        match chat.start_rekey(now, rng) {
            Ok(()) => self.flush_chat_rekey(now),
            Err(e) => self.chat_failed(now, e),
        }
    }

    /// Sends the chat's next re-key message, if one is due and the standard
    /// channel has room for it (else [`Self::poll_transmit`] sends it once
    /// there is: a message sealed but not queued would break the chat).
    #[inline(never)]
    fn flush_chat_rekey(&mut self, now: Instant) -> Result<(), Error> {
        let ChatState::Chat(chat) = &mut self.chat else {
            return Ok(());
        };
        if chat.pending_rekey().is_none() || self.std.output_room() < crate::limits::MAX_FRAME {
            return Ok(());
        }
        let mut buf = [0u8; MAX_E2E_MESSAGE];
        let chat_id = chat.id();
        match chat.write_rekey(now, &mut buf) {
            Ok(Some(n)) => {
                let noise = buf.get(..n).ok_or(CryptoError::BufferTooSmall)?;
                self.send(now, &ClientMsg::ChatData { chat_id, noise })
            }
            Ok(None) => Ok(()),
            Err(e) => self.chat_failed(now, e),
        }
    }

    /// The id of the chat or request the server knows us in, if we know it.
    fn current_chat_id(&self) -> Option<ChatId> {
        match &self.chat {
            ChatState::Chat(c) => Some(c.id()),
            ChatState::Accepted { chat_id, .. } | ChatState::Asked { chat_id, .. } => {
                Some(*chat_id)
            }
            ChatState::Requesting { chat_id, .. } => *chat_id,
            ChatState::Withdrawing { .. } | ChatState::Idle => None,
        }
    }

    /// The server ended the chat (`PeerLeft`, `Bye`) without the peer's close.
    fn end_by_server(&mut self) {
        let reason = match &self.chat {
            ChatState::Chat(c) if c.is_open() => ChatEnd::EndedByServer {
                unconfirmed: c.unconfirmed(),
            },
            _ => ChatEnd::PeerLeft,
        };
        self.end_chat(reason);
    }

    /// The E2E chat broke (tampering, replay, reorder, drop): end it, tell the
    /// server we left, and tell the user why. The session itself goes on.
    fn chat_failed(&mut self, now: Instant, e: Error) -> Result<(), Error> {
        let chat_id = self.current_chat_id();
        self.end_chat(ChatEnd::Failed(e));
        match chat_id {
            Some(chat_id) => self.send(now, &ClientMsg::LeaveChat { chat_id }),
            None => Ok(()),
        }
    }

    fn end_chat(&mut self, reason: ChatEnd) {
        let peer = match core::mem::replace(&mut self.chat, ChatState::Idle) {
            ChatState::Chat(c) => c.peer().clone(),
            ChatState::Accepted { from, .. } | ChatState::Asked { from, .. } => from,
            ChatState::Requesting { user, .. } => user,
            // The user was told when it withdrew.
            ChatState::Withdrawing { .. } | ChatState::Idle => return,
        };
        self.push_event(ClientEvent::ChatEnded { peer, reason });
    }

    /// Leaves whatever chat or request we are in, as the user's `/leave`
    /// does: an open chat gets our end-to-end `Close`, then the server our
    /// `LeaveChat` with its id (or, for a request whose id has not come
    /// yet, once `ChatPending` brings it).
    fn leave_current(&mut self, now: Instant) -> Result<(), Error> {
        self.withdraw_unsent_accept();
        if let ChatState::Requesting {
            user,
            chat_id: None,
        } = &self.chat
        {
            let user = user.clone();
            self.push_event(ClientEvent::ChatEnded {
                peer: user.clone(),
                reason: ChatEnd::Left,
            });
            self.chat = ChatState::Withdrawing { user };
            return Ok(());
        }
        let Some(chat_id) = self.current_chat_id() else {
            return Ok(());
        };
        // Both frames (the close and `LeaveChat`) must fit, or neither is
        // sent and nothing changes: `QueueFull`, try again when the server
        // has read. (An encrypted close that was not sent would end the chat
        // for us while the server and the peer still have it.)
        if self.std.output_room() < LEAVE_ROOM {
            return Err(ProtocolError::QueueFull.into());
        }
        if let ChatState::Chat(chat) = &mut self.chat {
            let mut buf = [0u8; MAX_E2E_MESSAGE];
            if let Some(n) = chat.encrypt_close(&mut buf)? {
                let noise = buf.get(..n).ok_or(CryptoError::BufferTooSmall)?;
                self.send(now, &ClientMsg::ChatData { chat_id, noise })?;
            }
        }
        self.send(now, &ClientMsg::LeaveChat { chat_id })?;
        self.end_chat(ChatEnd::Left);
        Ok(())
    }

    /// Announces the request channel with `secret`: our listening port, or
    /// that we dial (then the driver is asked to connect).
    fn announce(&mut self, now: Instant, secret: &Secret) -> Result<(), Error> {
        // The handshake hash keys the PSK: borrowed, not copied.
        let hash = self
            .std
            .transport()
            .ok_or(CryptoError::WrongState)?
            .handshake_hash();
        let psk = Psk::for_request_channel(hash, &secret.0);
        let ticket = RequestTicket::new(hash, &secret.0);
        let (msg, hello) = match (self.dialling, self.config.daemon_port) {
            (false, Some(port)) => (
                ClientMsg::AnnounceDaemon {
                    port,
                    secret: secret.0,
                },
                None,
            ),
            _ => (
                ClientMsg::DialRequestChannel { secret: secret.0 },
                Some(RequestHello(ticket.hello())),
            ),
        };
        let r = self.send(now, &msg);
        // `msg` holds a copy of the secret: wipe it.
        if let ClientMsg::AnnounceDaemon { mut secret, .. }
        | ClientMsg::DialRequestChannel { mut secret } = msg
        {
            secret.zeroize();
        }
        r?;
        self.psk = Some(psk);
        self.current_link = None;
        // Until its `DaemonStatus` comes.
        self.reannounce_at = Some(now.add(ANNOUNCE_WATCHDOG));
        self.retrying = false;
        if let Some(hello) = hello {
            self.push_event(ClientEvent::ConnectRequestChannel(hello));
        }
        Ok(())
    }

    /// The request channel failed: announce again after the backoff (at
    /// once when `Auto` first falls back to dialling).
    fn schedule_reannounce(&mut self, now: Instant) {
        if !self.is_logged_in() || (self.config.daemon_port.is_none() && !self.dialling) {
            return;
        }
        self.retrying = true;
        if !self.dialling && matches!(self.request_mode, RequestMode::Auto) {
            // The server cannot dial us (NAT, firewall, jam): dial it.
            self.dialling = true;
            self.reannounce_at = Some(now);
            return;
        }
        self.reannounce_at = Some(now.add(self.backoff));
        self.backoff = Duration::from_millis(
            self.backoff
                .as_millis()
                .saturating_mul(2)
                .min(MAX_REANNOUNCE_BACKOFF.as_millis()),
        );
    }

    /// Announces again if it is time (and a secret is at hand).
    fn reannounce_if_due(&mut self, now: Instant) -> Result<(), Error> {
        if self.reannounce_at.is_none_or(|t| now < t) || !self.is_logged_in() {
            return Ok(());
        }
        let Some(secret) = self.spare.take() else {
            // Drawn at the next input.
            return Ok(());
        };
        match self.announce(now, &secret) {
            // The server is not reading: try again later.
            Err(Error::Protocol(ProtocolError::QueueFull)) => {
                self.spare = Some(secret);
                self.reannounce_at = Some(now.add(REANNOUNCE_BACKOFF));
                Ok(())
            }
            r => r,
        }
    }

    /// Sets how the request channel is opened (before the login completes;
    /// the default is [`RequestMode::Auto`]).
    pub fn set_request_mode(&mut self, mode: RequestMode) {
        self.request_mode = mode;
    }

    /// How the request channel is opened now: true if we dial it.
    pub fn dials_request_channel(&self) -> bool {
        self.dialling
    }

    // ------------------------------------------------------------ user commands

    fn require_login(&self) -> Result<(), Error> {
        if self.is_logged_in() {
            Ok(())
        } else {
            Err(ProtocolError::NotLoggedIn.into())
        }
    }

    /// Asks who is online (answers come as [`ClientEvent::Users`]).
    pub fn list_users(&mut self, now: Instant) -> Result<(), Error> {
        self.require_login()?;
        self.send(now, &ClientMsg::ListUsers)
    }

    /// Asks `user` for a chat.
    pub fn request_chat(&mut self, now: Instant, user: &str) -> Result<(), Error> {
        self.require_login()?;
        let user = user_name(user).map_err(|_| ProtocolError::BadUserName)?;
        if self.is_busy() {
            return Err(ProtocolError::Busy.into());
        }
        self.send(now, &ClientMsg::RequestChat { user: &user })?;
        self.chat = ChatState::Requesting {
            user,
            chat_id: None,
        };
        Ok(())
    }

    /// Answers chat request `chat_id` (the one the user saw, from
    /// [`ClientEvent::ChatRequest`]); the answer leaves on the request channel.
    ///
    /// `Err(WrongChat)` if that request is no longer the pending one (it was
    /// withdrawn, and maybe another came): nothing is answered.
    pub fn answer_request(&mut self, chat_id: ChatId, accept: bool) -> Result<(), Error> {
        let ChatState::Asked {
            chat_id: pending,
            from,
            from_key,
            link,
        } = &self.chat
        else {
            return Err(ProtocolError::Unexpected.into());
        };
        if *pending != chat_id {
            return Err(ProtocolError::WrongChat.into());
        }
        let link = *link;
        if accept {
            self.chat = ChatState::Accepted {
                chat_id,
                from: from.clone(),
                from_key: *from_key,
                link,
            };
            self.pending_answer = Some((link, chat_id, Answer::Accept));
        } else {
            self.chat = ChatState::Idle;
            self.pending_answer = Some((link, chat_id, Answer::Decline));
        }
        Ok(())
    }

    /// Sends a line of chat text to the peer.
    pub fn send_text(&mut self, now: Instant, text: &str) -> Result<(), Error> {
        self.require_login()?;
        // Check for room first: a message encrypted but not queued would
        // use up a nonce and break the chat.
        if self.std.output_room() < crate::limits::MAX_FRAME {
            return Err(ProtocolError::QueueFull.into());
        }
        let ChatState::Chat(chat) = &mut self.chat else {
            return Err(ProtocolError::NoChat.into());
        };
        let mut buf = [0u8; MAX_E2E_MESSAGE];
        let n = chat.encrypt_text(text, &mut buf)?;
        let chat_id = chat.id();
        self.send(
            now,
            &ClientMsg::ChatData {
                chat_id,
                noise: buf.get(..n).ok_or(CryptoError::BufferTooSmall)?,
            },
        )
    }

    /// Leaves the chat (or withdraws our request, or drops an accepted one).
    ///
    /// An open chat ends end to end: the peer gets our `Close` with how many
    /// texts we sent and received (see [`ChatEnd::PeerClosed`]).
    pub fn leave_chat(&mut self, now: Instant) -> Result<(), Error> {
        self.require_login()?;
        if matches!(
            self.chat,
            ChatState::Idle | ChatState::Asked { .. } | ChatState::Withdrawing { .. }
        ) {
            return Err(ProtocolError::NoChat.into());
        }
        self.leave_current(now)
    }

    /// Leaving after `/accept` but before the answer left: send a decline instead.
    fn withdraw_unsent_accept(&mut self) {
        if let (ChatState::Accepted { chat_id, .. }, Some((_, id, answer @ Answer::Accept))) =
            (&self.chat, &mut self.pending_answer)
        {
            if id == chat_id {
                *answer = Answer::Decline;
            }
        }
    }

    /// Logs out: the server answers `Bye` and closes.
    pub fn logout(&mut self, now: Instant) -> Result<(), Error> {
        self.require_login()?;
        if !matches!(self.chat, ChatState::Idle | ChatState::Asked { .. }) {
            // The server ends a request or chat at logout anyway; the chat's
            // `Close` tells the peer that nothing was lost.
            self.leave_current(now)?;
        }
        self.send(now, &ClientMsg::Logout)?;
        self.login = Login::LoggingOut;
        Ok(())
    }

    // ------------------------------------------------------------ daemon (request channel)

    /// A new request-channel connection arrived: make its responder state.
    ///
    /// Fails with `NotLoggedIn` before the daemon was announced (no PSK yet).
    pub fn new_request_link<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Result<RequestLink<P>, Error> {
        let psk = self.psk.as_ref().ok_or(ProtocolError::NotLoggedIn)?;
        let hs = Handshake::request_channel(false, psk, rng)?;
        self.next_link = self.next_link.wrapping_add(1);
        Ok(RequestLink {
            id: self.next_link,
            channel: Channel::new(hs, self.config.limits, now, rng)?,
            authenticated: false,
            created: now,
            proof_timeout: self.config.limits.handshake_timeout,
        })
    }

    /// Feeds bytes from a request-channel connection (`rng`: for the
    /// channel's re-keys, which the server starts).
    pub fn handle_request_input<R: RngCore + CryptoRng>(
        &mut self,
        link: &mut RequestLink<P>,
        now: Instant,
        input: &[u8],
        rng: &mut R,
    ) -> Result<usize, Error> {
        let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
        let (used, incoming) = link.channel.read(now, input, &mut scratch, rng)?;
        let result = match incoming {
            Incoming::Nothing => Ok(()),
            // NNpsk0 message 1: answer it (the channel then reads the
            // layer's first message and answers that by itself).
            Incoming::Handshake { len: 0, .. } if link.channel.handshake().is_some() => {
                link.channel.send_handshake(now, &[])
            }
            // The layer is done: the server's first message comes next.
            Incoming::Handshake {
                len: 0,
                finished: true,
            } => Ok(()),
            Incoming::Handshake { .. } => Err(ProtocolError::Unexpected.into()),
            Incoming::Message { len } => received(&scratch, len)
                .and_then(|p| Ok(decode::<ServerToDaemon>(p)?))
                .and_then(|msg| {
                    link.authenticated = true;
                    self.on_daemon_message(link, now, msg)
                }),
        };
        if result.is_err() {
            link.channel.close();
        }
        result.map(|()| used)
    }

    #[inline(never)]
    fn on_daemon_message(
        &mut self,
        link: &mut RequestLink<P>,
        now: Instant,
        msg: ServerToDaemon<'_>,
    ) -> Result<(), Error> {
        match msg {
            ServerToDaemon::ChatRequest {
                chat_id,
                from,
                from_key,
            } => {
                let from = user_name(from)?;
                if self.is_busy() || !self.is_logged_in() {
                    link.channel.send(
                        now,
                        &DaemonToServer::Answer {
                            chat_id,
                            answer: Answer::Busy,
                        },
                    )?;
                    self.push_event(ClientEvent::RefusedBusy { from });
                } else {
                    self.chat = ChatState::Asked {
                        chat_id,
                        from: from.clone(),
                        from_key,
                        link: link.id,
                    };
                    self.push_event(ClientEvent::ChatRequest {
                        chat_id,
                        from,
                        from_key,
                    });
                }
            }
            ServerToDaemon::Cancel { chat_id } => {
                let asked = match &self.chat {
                    ChatState::Asked { chat_id: id, .. }
                    | ChatState::Accepted { chat_id: id, .. } => *id == chat_id,
                    _ => false,
                };
                if asked {
                    if let ChatState::Asked { from, .. } | ChatState::Accepted { from, .. } =
                        core::mem::replace(&mut self.chat, ChatState::Idle)
                    {
                        self.push_event(ClientEvent::RequestWithdrawn { from });
                    }
                    if matches!(self.pending_answer, Some((_, id, _)) if id == chat_id) {
                        self.pending_answer = None;
                    }
                }
            }
            ServerToDaemon::Ready => self.current_link = Some(link.id),
            ServerToDaemon::Ping => link.channel.send(now, &DaemonToServer::Pong)?,
            ServerToDaemon::Bye => link.channel.close(),
        }
        Ok(())
    }

    /// Bytes to write to this request-channel connection (includes the user's answer).
    pub fn poll_request_transmit(
        &mut self,
        link: &mut RequestLink<P>,
        now: Instant,
        out: &mut [u8],
    ) -> usize {
        if let Some((id, chat_id, answer)) = self.pending_answer {
            if id == link.id
                && link.channel.is_transport()
                && link
                    .channel
                    .send(now, &DaemonToServer::Answer { chat_id, answer })
                    .is_ok()
            {
                self.pending_answer = None;
            }
        }
        link.channel.poll_transmit(out)
    }

    /// True if an answer waits for this link (the driver should call
    /// [`Self::poll_request_transmit`]).
    pub fn has_answer_for(&self, link: &RequestLink<P>) -> bool {
        matches!(self.pending_answer, Some((id, ..)) if id == link.id)
    }

    /// Checks a link's deadline; an error means: close that connection.
    ///
    /// A connection that has not authenticated a message from the server
    /// within the handshake timeout (a replayed or foreign one) is closed;
    /// it never touched the client's state.
    pub fn handle_request_timeout(
        &mut self,
        link: &mut RequestLink<P>,
        now: Instant,
    ) -> Result<(), Error> {
        match link.poll_timeout() {
            Some(deadline) if now >= deadline => {
                let e = match link.channel.check_rekey(now) {
                    Err(e) => e,
                    Ok(()) if link.authenticated => ProtocolError::IdleTimeout,
                    Ok(()) => ProtocolError::HandshakeTimeout,
                };
                link.channel.close();
                Err(e.into())
            }
            _ => Ok(()),
        }
    }

    /// The request channel that delivered the pending request went away: the
    /// request cannot be answered any more.
    ///
    /// An accepted request whose link closed is dropped too: the server may
    /// not have the answer. Should its `ChatStarted` come all the same, the
    /// client answers it with `LeaveChat`.
    pub fn request_link_closed(&mut self, link: &RequestLink<P>) {
        let from_link = matches!(&self.chat,
            ChatState::Asked { link: id, .. } | ChatState::Accepted { link: id, .. } if *id == link.id);
        if from_link {
            if let ChatState::Asked { from, .. } | ChatState::Accepted { from, .. } =
                core::mem::replace(&mut self.chat, ChatState::Idle)
            {
                self.push_event(ClientEvent::RequestWithdrawn { from });
            }
        }
        if matches!(self.pending_answer, Some((id, ..)) if id == link.id) {
            self.pending_answer = None;
        }
        if self.current_link == Some(link.id) {
            // Our request channel is gone (the server may not know yet):
            // announce again, as soon as the backoff allows.
            self.current_link = None;
            let since = link.channel.last_rx();
            self.schedule_reannounce(since);
        }
    }
}
