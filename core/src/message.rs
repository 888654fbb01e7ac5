//! The typed messages of every channel and their postcard encoding.
//!
//! One enum per channel and direction. Each is encoded with postcard (variant
//! index as a varint, strings and byte strings as varint length + bytes,
//! fixed arrays as raw bytes) and travels as the plaintext of one Noise
//! transport message. Decoding is strict: trailing bytes, unknown variants,
//! bad user names and oversize fields are errors. `docs/PROTOCOL.md` gives
//! the bytes of every message; `tests/golden.rs` pins them.

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::keys::PublicKey;
use crate::limits::{
    DAEMON_SECRET_LEN, MAX_CHAT_TEXT, MAX_E2E_MESSAGE, MAX_USERS_PER_MESSAGE, MAX_USER_NAME,
};

/// Identifies one chat; chosen by the server, bound into the chat's prologue.
pub type ChatId = u32;

/// A validated user name: 1 to 32 bytes of `[a-z0-9_.-]`.
pub type UserName = heapless::String<MAX_USER_NAME>;

/// Checks a user name's syntax.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

/// Makes a [`UserName`] from a `&str`, checking its syntax.
pub fn user_name(name: &str) -> Result<UserName, WireError> {
    if !valid_user_name(name) {
        return Err(WireError::OutOfBounds);
    }
    UserName::try_from(name).map_err(|_| WireError::OutOfBounds)
}

/// Writes an opaque byte string (a relayed Noise message) in one piece.
///
/// The wire is the same as serde's default for `&[u8]` (a sequence of
/// `u8`): postcard writes a sequence's varint length and then each `u8` as
/// one byte, exactly what it writes for a byte string; but as a byte string
/// it is one copy instead of a call per byte (the relay's hot path). The
/// golden-bytes tests pin that both are the same.
fn opaque_bytes<S: serde::Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytes)
}

// ---------------------------------------------------------------- standard channel

/// Payload of the standard channel's 2nd handshake message (server → client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello<'a> {
    /// The server's protocol version ([`crate::PROTOCOL_VERSION`]).
    pub version: u8,
    /// A CA-signed certificate of the server's static key (see
    /// [`crate::cert`]); `None` when the server has none (clients then pin
    /// its key).
    #[serde(borrow)]
    pub certificate: Option<&'a [u8]>,
}

/// Payload of the standard channel's 3rd handshake message (client → server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello<'a> {
    /// The client's protocol version.
    pub version: u8,
    /// The user name the client logs in as; its static key must be the registered one.
    pub user: &'a str,
}

/// Client → server, standard channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg<'a> {
    /// 0. My daemon listens on `port`; derive the request channel's PSK from `secret`.
    AnnounceDaemon {
        /// TCP port of the daemon (on the address the client connects from).
        port: u16,
        /// Fresh one-time secret for this login session.
        secret: [u8; DAEMON_SECRET_LEN],
    },
    /// 1. Who is online?
    ListUsers,
    /// 2. Ask `user` for a chat.
    RequestChat {
        /// The user asked.
        user: &'a str,
    },
    /// 3. An E2E handshake message for the peer of chat `chat_id`.
    ChatHandshake {
        /// The chat.
        chat_id: ChatId,
        /// The Noise KK message, opaque to the server.
        #[serde(borrow, serialize_with = "opaque_bytes")]
        noise: &'a [u8],
    },
    /// 4. An E2E chat message for the peer of chat `chat_id`.
    ChatData {
        /// The chat.
        chat_id: ChatId,
        /// The Noise transport message, opaque to the server.
        #[serde(borrow, serialize_with = "opaque_bytes")]
        noise: &'a [u8],
    },
    /// 5. I leave chat `chat_id`, or withdraw my pending request `chat_id`
    ///    (ignored unless `chat_id` is my current chat or pending request).
    LeaveChat {
        /// The chat (as in `ChatPending` or `ChatStarted`).
        chat_id: ChatId,
    },
    /// 6. Keep-alive.
    Ping,
    /// 7. Log out; the server answers `Bye { LoggedOut }` and closes.
    Logout,
    /// 8. I cannot be dialled: I will open the request channel's connection
    ///    to you myself, and present the ticket derived from `secret`
    ///    (`noise::RequestTicket`); derive the PSK from `secret` as for
    ///    `AnnounceDaemon`. Replaces any earlier announce.
    DialRequestChannel {
        /// Fresh one-time secret.
        secret: [u8; DAEMON_SECRET_LEN],
    },
}

/// Why the server refused a login. Unknown user and wrong key are one reason,
/// so a prober learns nothing about which names exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LoginError {
    /// 0. Unknown user or a key that is not the registered one.
    NotAuthorized,
    /// 1. Protocol version not supported.
    VersionMismatch,
    /// 2. The server is full.
    ServerFull,
}

/// Why a chat request did not lead to a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RefuseReason {
    /// 0. The user said no.
    Declined,
    /// 1. The user is chatting or has a request pending.
    Busy,
    /// 2. The user is not logged in.
    Offline,
    /// 3. No such user.
    UnknownUser,
    /// 4. The user's daemon cannot be reached.
    Unreachable,
    /// 5. You asked yourself.
    SelfRequest,
    /// 6. The requester left or went offline before the answer.
    Withdrawn,
    /// 7. The user did not answer in time (the server's request timeout).
    NoAnswer,
    /// 8. Asked too soon: this user refused (or did not answer) a moment
    ///    ago, or you sent requests faster than the server's rate. Ask later.
    TooSoon,
}

/// Why the server closes a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CloseReason {
    /// 0. The client logged out.
    LoggedOut,
    /// 1. The server is shutting down.
    Shutdown,
    /// 2. The session reached its message or age limit; log in again.
    SessionExpired,
    /// 3. The client broke the protocol.
    ProtocolViolation,
    /// 4. The client was idle too long.
    Idle,
    /// 5. The same user logged in again elsewhere.
    Replaced,
    /// 6. The user's key is no longer the registered one (removed or replaced).
    Revoked,
    /// 7. The client kept breaking a rate or resource limit after `SlowDown`.
    RateLimited,
}

/// Error codes the server sends without closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// 0. The request is not allowed now (e.g. a second chat request while chatting).
    NotNow,
    /// 1. The chat id is not the current chat.
    WrongChat,
    /// 2. A field was out of bounds.
    BadRequest,
    /// 3. Too many commands of this kind: it was not performed; wait and retry.
    SlowDown,
}

/// The first byte of an encoded [`ServerMsg::ChatHandshake`] (its variant
/// index, PROTOCOL.md 6.3: a varint, one byte below 128).
pub const SERVER_CHAT_HANDSHAKE_TAG: u8 = 7;
/// The first byte of an encoded [`ServerMsg::ChatData`].
pub const SERVER_CHAT_DATA_TAG: u8 = 8;

/// Server → client, standard channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg<'a> {
    /// 0. Login accepted (first transport message of a successful login).
    LoginOk {
        /// The user name, as registered.
        user: &'a str,
    },
    /// 1. Login refused; the server closes the connection after it.
    LoginRefused {
        /// Why.
        reason: LoginError,
    },
    /// 2. Whether the server could open the request channel to the announced daemon.
    DaemonStatus {
        /// True once the request channel's handshake completed.
        reachable: bool,
    },
    /// 3. Part of the list of users online.
    Users {
        /// Up to [`MAX_USERS_PER_MESSAGE`] names.
        #[serde(borrow)]
        names: heapless::Vec<&'a str, MAX_USERS_PER_MESSAGE>,
        /// True if more `Users` messages follow.
        more: bool,
    },
    /// 4. Your request was forwarded; waiting for the answer.
    ChatPending {
        /// The chat the request opened.
        chat_id: ChatId,
        /// The user asked.
        user: &'a str,
    },
    /// 5. A chat begins: run the KK handshake with `peer_key`.
    ChatStarted {
        /// The chat.
        chat_id: ChatId,
        /// The peer's user name.
        peer: &'a str,
        /// The peer's registered static key.
        peer_key: PublicKey,
        /// True for the requester, who sends the KK message 1 and speaks first.
        initiator: bool,
    },
    /// 6. The chat request was refused.
    ChatRefused {
        /// The request's chat id if `ChatPending` announced one; `None` for a
        /// request refused at once.
        chat_id: Option<ChatId>,
        /// The user asked.
        user: &'a str,
        /// Why.
        reason: RefuseReason,
    },
    /// 7. Relayed E2E handshake message from the peer.
    ChatHandshake {
        /// The chat.
        chat_id: ChatId,
        /// Opaque Noise KK message.
        #[serde(borrow, serialize_with = "opaque_bytes")]
        noise: &'a [u8],
    },
    /// 8. Relayed E2E chat message from the peer.
    ChatData {
        /// The chat.
        chat_id: ChatId,
        /// Opaque Noise transport message.
        #[serde(borrow, serialize_with = "opaque_bytes")]
        noise: &'a [u8],
    },
    /// 9. The peer left the chat (or went offline).
    PeerLeft {
        /// The chat.
        chat_id: ChatId,
    },
    /// 10. Answer to `Ping`.
    Pong,
    /// 11. A request was rejected; the session goes on.
    Error {
        /// What went wrong.
        code: ErrorCode,
    },
    /// 12. Clean close: nothing follows.
    Bye {
        /// Why.
        reason: CloseReason,
    },
}

// ---------------------------------------------------------------- request channel

/// Server → daemon, request channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerToDaemon<'a> {
    /// 0. `from` asks for a chat.
    ChatRequest {
        /// The chat this request would open.
        chat_id: ChatId,
        /// Who asks.
        from: &'a str,
        /// Their registered static key (shown as a fingerprint).
        from_key: PublicKey,
    },
    /// 1. The request was withdrawn before an answer.
    Cancel {
        /// The chat.
        chat_id: ChatId,
    },
    /// 2. Clean close.
    Bye,
    /// 3. First message after the handshake: proves to the daemon that the
    ///    peer holds this session's PSK (key confirmation), so the daemon can
    ///    drop connections that never prove it.
    Ready,
    /// 4. Keep-alive (it keeps NAT and firewall mappings open); the daemon
    ///    answers `Pong`.
    Ping,
}

/// The daemon's answer to a chat request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Answer {
    /// 0. Yes.
    Accept,
    /// 1. No.
    Decline,
    /// 2. Automatic: already chatting or asked.
    Busy,
}

/// Daemon → server, request channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonToServer {
    /// 0. The answer to request `chat_id`.
    Answer {
        /// The chat.
        chat_id: ChatId,
        /// The answer.
        answer: Answer,
    },
    /// 1. Clean close.
    Bye,
    /// 2. Answer to `ServerToDaemon::Ping`.
    Pong,
}

// ---------------------------------------------------------------- end-to-end chat

/// Plaintext of an E2E chat transport message (client ↔ client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatPayload<'a> {
    /// 0. A line of chat text.
    Text {
        /// How many `Text`s from the other side the sender had received
        /// when it sent this one (an acknowledgement).
        received: u32,
        /// At most [`MAX_CHAT_TEXT`] bytes of UTF-8.
        text: &'a str,
    },
    /// 1. The sender leaves the chat: its last message. The counts let the
    ///    other side tell whether every message arrived.
    Close {
        /// How many `Text`s the sender sent in this chat.
        sent: u32,
        /// How many `Text`s the sender received in this chat.
        received: u32,
    },
}

// ---------------------------------------------------------------- encode / decode

/// A message that can be checked against the protocol's bounds after decoding.
pub trait Bounded {
    /// Ok if every field is within its bounds.
    fn check(&self) -> Result<(), WireError>;
}

fn name_ok(name: &str) -> Result<(), WireError> {
    if valid_user_name(name) {
        Ok(())
    } else {
        Err(WireError::OutOfBounds)
    }
}

fn noise_ok(noise: &[u8]) -> Result<(), WireError> {
    if noise.is_empty() || noise.len() > MAX_E2E_MESSAGE {
        Err(WireError::OutOfBounds)
    } else {
        Ok(())
    }
}

impl Bounded for ServerHello<'_> {
    fn check(&self) -> Result<(), WireError> {
        match self.certificate {
            Some(c) if c.len() > crate::limits::MAX_PLAINTEXT / 2 => Err(WireError::OutOfBounds),
            _ => Ok(()),
        }
    }
}

impl Bounded for ClientHello<'_> {
    fn check(&self) -> Result<(), WireError> {
        name_ok(self.user)
    }
}

impl Bounded for ClientMsg<'_> {
    fn check(&self) -> Result<(), WireError> {
        match self {
            ClientMsg::RequestChat { user } => name_ok(user),
            ClientMsg::ChatHandshake { noise, .. } | ClientMsg::ChatData { noise, .. } => {
                noise_ok(noise)
            }
            _ => Ok(()),
        }
    }
}

impl Bounded for ServerMsg<'_> {
    fn check(&self) -> Result<(), WireError> {
        match self {
            ServerMsg::LoginOk { user }
            | ServerMsg::ChatPending { user, .. }
            | ServerMsg::ChatRefused { user, .. } => name_ok(user),
            ServerMsg::ChatStarted { peer, .. } => name_ok(peer),
            ServerMsg::Users { names, .. } => names.iter().try_for_each(|n| name_ok(n)),
            ServerMsg::ChatHandshake { noise, .. } | ServerMsg::ChatData { noise, .. } => {
                noise_ok(noise)
            }
            _ => Ok(()),
        }
    }
}

impl Bounded for ServerToDaemon<'_> {
    fn check(&self) -> Result<(), WireError> {
        match self {
            ServerToDaemon::ChatRequest { from, .. } => name_ok(from),
            _ => Ok(()),
        }
    }
}

impl Bounded for DaemonToServer {
    fn check(&self) -> Result<(), WireError> {
        Ok(())
    }
}

impl Bounded for ChatPayload<'_> {
    fn check(&self) -> Result<(), WireError> {
        match self {
            ChatPayload::Text { text, .. } if text.len() > MAX_CHAT_TEXT => {
                Err(WireError::OutOfBounds)
            }
            _ => Ok(()),
        }
    }
}

/// Encodes `msg` into `out`; returns the encoded length.
pub fn encode<T: Serialize + Bounded>(msg: &T, out: &mut [u8]) -> Result<usize, WireError> {
    msg.check()?;
    postcard::to_slice(msg, out)
        .map(|s| s.len())
        .map_err(|_| WireError::BufferTooSmall)
}

/// Decodes one whole message from `bytes` (no trailing bytes allowed) and checks its bounds.
pub fn decode<'a, T: Deserialize<'a> + Bounded>(bytes: &'a [u8]) -> Result<T, WireError> {
    let (msg, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|_| WireError::Malformed)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes);
    }
    msg.check()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_message_tags() {
        let mut buf = [0u8; 16];
        for (msg, tag) in [
            (
                ServerMsg::ChatHandshake {
                    chat_id: 1,
                    noise: &[9],
                },
                SERVER_CHAT_HANDSHAKE_TAG,
            ),
            (
                ServerMsg::ChatData {
                    chat_id: 1,
                    noise: &[9],
                },
                SERVER_CHAT_DATA_TAG,
            ),
        ] {
            let n = encode(&msg, &mut buf).unwrap();
            assert_eq!(buf.get(..n).and_then(|b| b.first()), Some(&tag));
        }
    }

    #[test]
    fn names() {
        assert!(valid_user_name("alice"));
        assert!(valid_user_name("a.b-c_9"));
        assert!(!valid_user_name(""));
        assert!(!valid_user_name("Alice"));
        assert!(!valid_user_name("a b"));
        assert!(!valid_user_name(&"a".repeat(33)));
    }

    #[test]
    fn strict_decoding() {
        let mut buf = [0u8; 64];
        let n = encode(&ClientMsg::RequestChat { user: "bob" }, &mut buf).unwrap();
        assert_eq!(
            decode::<ClientMsg>(&buf[..n]),
            Ok(ClientMsg::RequestChat { user: "bob" })
        );
        buf[n] = 0;
        assert_eq!(
            decode::<ClientMsg>(&buf[..n + 1]),
            Err(WireError::TrailingBytes)
        );
        assert_eq!(decode::<ClientMsg>(&[99]), Err(WireError::Malformed));
        assert_eq!(decode::<ClientMsg>(&[]), Err(WireError::Malformed));
        // A name with an upper-case letter is refused both ways.
        assert_eq!(
            encode(&ClientMsg::RequestChat { user: "Bob" }, &mut buf),
            Err(WireError::OutOfBounds)
        );
        assert_eq!(
            decode::<ClientMsg>(&[2, 3, b'B', b'o', b'b']),
            Err(WireError::OutOfBounds)
        );
    }

    #[test]
    fn small_buffer() {
        let mut buf = [0u8; 2];
        assert_eq!(
            encode(&ClientMsg::RequestChat { user: "bob" }, &mut buf),
            Err(WireError::BufferTooSmall)
        );
    }
}
