//! Protocol constants and the per-session limits.
//!
//! Every buffer in the crate is sized from the constants here, so a client's
//! whole protocol state has a size known at compile time (see
//! `docs/PROTOCOL.md`, "Limits", for the RAM budget they add up to).

use crate::time::Duration;

/// Protocol version, in the hello payloads of the standard channel's handshake
/// (a peer of another version gets `VersionMismatch`, see `docs/PROTOCOL.md`
/// 12). Version 2 gave every chat-scoped message its chat id and added the
/// end-to-end `Close`; version 3 runs a post-quantum layer (ML-KEM-768) over
/// every handshake, whose messages a version 2 peer does not expect.
pub const PROTOCOL_VERSION: u8 = 3;

/// A daemon closes an authenticated request-channel link that has been silent
/// this long (the server sends a keep-alive at least every 25 s; see
/// `server::MAX_REQUEST_KEEPALIVE`), and its client announces again.
pub const REQUEST_LINK_IDLE: Duration = Duration::from_secs(90);

/// Largest Noise message (the payload of one frame), in bytes.
///
/// Far below Noise's own limit of 65535 so that a device keeps one receive and
/// one send buffer per channel in a few KiB; large enough for a chat's
/// post-quantum handshake message relayed inside a standard-channel message
/// (the largest message there is).
pub const MAX_NOISE_MESSAGE: usize = 1536;

/// Length of the frame header: a big-endian `u16` with the Noise message length.
pub const FRAME_HEADER: usize = 2;

/// Largest frame on the wire (header included).
pub const MAX_FRAME: usize = FRAME_HEADER + MAX_NOISE_MESSAGE;

/// Largest Noise message on the request channel: the post-quantum layer's
/// first message (1216 bytes; the NNpsk0 handshake is 48 bytes, a
/// `ChatRequest` at most 87).
pub const MAX_REQUEST_NOISE_MESSAGE: usize = 1280;

/// The longest frame a protocol-abiding peer sends (header included): a
/// `ChatData` relaying a chat's re-key message 3 (`docs/PROTOCOL.md` 4.10:
/// the 2-byte re-key header, the 1216-byte post-quantum message and the
/// chat transport's tag), with its variant byte, a 5-byte chat id, a 2-byte
/// length and the tag. A server may lower its frame limit to this, not below.
pub const MIN_MAX_FRAME: usize =
    FRAME_HEADER + 1 + 5 + 2 + crate::rekey::REKEY_HEADER + 1216 + TAG_LEN + TAG_LEN;

/// Largest frame on the request channel (header included).
pub const MAX_REQUEST_FRAME: usize = FRAME_HEADER + MAX_REQUEST_NOISE_MESSAGE;

/// The longest an initiator may keep a session's keys before it starts a
/// re-key (`docs/PROTOCOL.md` 4.10): [`Limits::rekey_after`] may be
/// shorter, never longer. A protocol constant, since the responder's bound
/// below rests on it and nothing announces a peer's settings.
pub const MAX_REKEY_INTERVAL: Duration = Duration::from_secs(120);

/// A responder closes a session whose keys are older than this (its own
/// clock, from when it took them up): the initiator's
/// [`MAX_REKEY_INTERVAL`] and 30 s for the re-key's round trips and queues.
pub const REKEY_OVERDUE: Duration = Duration::from_secs(150);

/// AEAD tag length (ChaChaPoly).
pub const TAG_LEN: usize = 16;

/// Largest plaintext a transport message may carry.
pub const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_LEN;

/// Longest chat text, in UTF-8 bytes.
pub const MAX_CHAT_TEXT: usize = 480;

/// Longest user name, in bytes (`[a-z0-9_.-]`, see [`crate::UserName`]).
pub const MAX_USER_NAME: usize = 32;

/// Largest E2E (relayed) Noise message: a chat's post-quantum handshake
/// message ([`crate::pq::MAX_PQ_MESSAGE`]), with room to spare; a text
/// message (the text, its postcard header and the tag) is at most
/// [`MAX_E2E_TEXT_MESSAGE`].
///
/// Checked against [`MAX_PLAINTEXT`] at compile time below, with room for the
/// standard channel's own message header around it.
pub const MAX_E2E_MESSAGE: usize = 1280;

/// Largest E2E text message: chat text, its postcard header and the tag.
pub const MAX_E2E_TEXT_MESSAGE: usize = MAX_CHAT_TEXT + 8 + TAG_LEN;

/// Most user names in one `Users` message; longer lists come in several.
pub const MAX_USERS_PER_MESSAGE: usize = 16;

/// Length of the one-time secret a client sends for its request channel.
pub const DAEMON_SECRET_LEN: usize = 32;

/// Default port of the client's daemon (the request channel's listener).
pub const DEFAULT_DAEMON_PORT: u16 = 4242;

const _: () = assert!(MAX_E2E_MESSAGE + 16 <= MAX_PLAINTEXT);
const _: () = assert!(MAX_E2E_TEXT_MESSAGE <= MAX_E2E_MESSAGE);
const _: () = assert!(crate::pq::MAX_PQ_MESSAGE <= MAX_E2E_MESSAGE);
const _: () = assert!(crate::pq::MAX_PQ_MESSAGE <= MAX_REQUEST_NOISE_MESSAGE);
const _: () = assert!(crate::rekey::MAX_REKEY_MESSAGE <= MAX_E2E_MESSAGE);
const _: () = assert!(crate::rekey::MAX_REKEY_MESSAGE <= MAX_REQUEST_NOISE_MESSAGE);
const _: () =
    assert!(FRAME_HEADER + 1 + 5 + 2 + crate::rekey::MAX_REKEY_MESSAGE + TAG_LEN == MIN_MAX_FRAME);
const _: () = assert!(MAX_USERS_PER_MESSAGE * (MAX_USER_NAME + 1) + 8 <= MAX_PLAINTEXT);
const _: () = assert!(MAX_NOISE_MESSAGE <= u16::MAX as usize);

/// Limits on one secure session (a standard channel, a request channel or a chat).
///
/// Keys are re-keyed in place (`docs/PROTOCOL.md` 4.10) every
/// `rekey_after` or `rekey_after_messages` messages either way, whichever
/// comes first: the handshake's initiator starts it, and its responder
/// closes a session whose keys are older than [`REKEY_OVERDUE`]. When a hard limit is reached (`max_messages` under
/// one key, `max_session_age` since the session began) the session is
/// **closed**. On the standard channel the server says so first
/// (`Bye { SessionExpired }`) and the client logs in again with a fresh
/// handshake; a client that reaches a limit itself closes without a `Bye`.
/// An E2E chat that reaches its message limit ends (`ChatEnded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Limits {
    /// Transport messages per direction under one key before the session
    /// is closed (a hard limit: re-keying comes long before).
    pub max_messages: u64,
    /// Age of a session (since its channel was opened) before it is
    /// closed, whatever its keys' age.
    pub max_session_age: Duration,
    /// Time allowed from the first byte of a handshake to its end, and for
    /// a re-key from its first message to its last.
    pub handshake_timeout: Duration,
    /// Silence after which a session is closed (clients send `Ping` well before).
    pub idle_timeout: Duration,
    /// Age of a session's keys at which its initiator re-keys it (at most
    /// [`MAX_REKEY_INTERVAL`]: a responder closes keys older than
    /// [`REKEY_OVERDUE`]).
    pub rekey_after: Duration,
    /// Messages either way under one key at which the initiator re-keys.
    pub rekey_after_messages: u64,
}

impl Limits {
    /// Safe defaults: 2^32 messages, 24 h per session, 10 s handshakes, 5 min
    /// idle, keys renewed every 2 minutes (as WireGuard's) or 2^16 messages.
    pub const DEFAULT: Limits = Limits {
        max_messages: 1 << 32,
        max_session_age: Duration::from_secs(24 * 3600),
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(300),
        rekey_after: Duration::from_secs(120),
        rekey_after_messages: 1 << 16,
    };

    /// Interval at which a client sends `Ping` so that the server never sees
    /// it idle: a third of its own idle timeout, and at most 25 s, since the
    /// server's idle timeout may be shorter than the client's (the protocol
    /// does not announce it; servers should not go below 60 s).
    pub const fn keepalive_interval(&self) -> Duration {
        let third = self.idle_timeout.as_millis() / 3;
        Duration::from_millis(if third < 25_000 { third } else { 25_000 })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The server's per-session bounds on what a logged-in user may ask for
/// (`docs/PROTOCOL.md` section 9). A command over its rate is answered
/// `Error { SlowDown }` and not performed; a session that keeps going after
/// its [`Self::strike_rate`] bucket of such answers is empty is closed with
/// `Bye { RateLimited }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AbuseLimits {
    /// `RequestChat`.
    pub requests: crate::rate::Rate,
    /// `LeaveChat`.
    pub leaves: crate::rate::Rate,
    /// `ListUsers`.
    pub listings: crate::rate::Rate,
    /// `AnnounceDaemon`.
    pub announces: crate::rate::Rate,
    /// `Ping`.
    pub pings: crate::rate::Rate,
    /// Re-keys of the standard channel the client begins
    /// (`docs/PROTOCOL.md` 4.10; an honest client begins one every 120 s,
    /// or every 2^16 messages). Beyond them the session is closed with
    /// `Bye { RateLimited }` (a re-key cannot be refused without breaking
    /// the channel).
    pub rekeys: crate::rate::Rate,
    /// `SlowDown` answers a session may collect before it is dropped: a
    /// bucket of its own (burst = strikes tolerated in a row).
    pub strike_rate: crate::rate::Rate,
    /// An unanswered chat request is withdrawn after this long (the
    /// requester gets `ChatRefused { NoAnswer }`).
    pub request_timeout: Duration,
    /// After `Declined` or `NoAnswer` from a user, a new request to the same
    /// user within this time is refused with `TooSoon`.
    pub refuse_cooldown: Duration,
}

impl AbuseLimits {
    /// Safe defaults: far above what a person does at a keyboard (and what
    /// the reference client does on its own: a `Ping` every 25 s, one
    /// `AnnounceDaemon` per login and per request-channel retry).
    pub const DEFAULT: AbuseLimits = AbuseLimits {
        requests: crate::rate::Rate::new(30, 10),
        leaves: crate::rate::Rate::new(60, 20),
        listings: crate::rate::Rate::new(30, 10),
        announces: crate::rate::Rate::new(6, 3),
        pings: crate::rate::Rate::new(60, 10),
        rekeys: crate::rate::Rate::new(60, 10),
        strike_rate: crate::rate::Rate::new(6, 20),
        request_timeout: Duration::from_secs(60),
        refuse_cooldown: Duration::from_secs(30),
    };

    /// No rate limits (the timeouts keep their defaults): for benchmarks
    /// and tests that drive the server at full speed.
    pub const UNLIMITED: AbuseLimits = AbuseLimits {
        requests: crate::rate::Rate::UNLIMITED,
        leaves: crate::rate::Rate::UNLIMITED,
        listings: crate::rate::Rate::UNLIMITED,
        announces: crate::rate::Rate::UNLIMITED,
        pings: crate::rate::Rate::UNLIMITED,
        rekeys: crate::rate::Rate::UNLIMITED,
        strike_rate: crate::rate::Rate::UNLIMITED,
        ..Self::DEFAULT
    };
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
