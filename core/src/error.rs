//! Errors: one small `Copy` enum per layer, joined into [`Error`] by `From`.
//!
//! None of them carries data from the peer, so they can be logged freely; what
//! goes back on the wire is the coarser [`crate::message::ErrorCode`].

use core::fmt;

/// Framing layer: the 2-byte length prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than [`crate::MAX_NOISE_MESSAGE`] bytes (or zero).
    BadLength,
    /// The output buffer cannot hold the frame; nothing was written.
    BufferTooSmall,
}

/// Encoding layer: postcard messages inside Noise payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WireError {
    /// The bytes are not a valid message of the expected type.
    Malformed,
    /// Valid encoding, but bytes were left over after the message.
    TrailingBytes,
    /// A field is out of its protocol bounds (name syntax, text length…).
    OutOfBounds,
    /// The message does not fit the output buffer; nothing usable was written.
    BufferTooSmall,
}

/// Cryptographic layer: Noise handshakes and transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CryptoError {
    /// A handshake message failed to authenticate or has the wrong size.
    HandshakeFailed,
    /// A transport message failed to authenticate: changed, replayed,
    /// reordered, dropped before it, or from someone else.
    DecryptFailed,
    /// The peer's static key is not the expected one (pinned or registered).
    PeerKeyMismatch,
    /// A public key (the peer's static or ephemeral, or one given to us) is
    /// a low-order X25519 point: every DH with it is all zeros, a secret
    /// known to anyone (see [`crate::PublicKey::is_low_order`]).
    WeakKey,
    /// A handshake or transport call in the wrong phase or turn.
    WrongState,
    /// The message limit of the session was reached (see [`crate::Limits`]).
    MessageLimit,
    /// A buffer was too small; the state is unchanged.
    BufferTooSmall,
}

/// Protocol layer: a well-formed message that breaks the protocol's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProtocolError {
    /// A message that is not allowed in the current state.
    Unexpected,
    /// A chat id that is not the current chat's.
    WrongChat,
    /// The peer speaks another protocol version (`peer`; ours is
    /// [`crate::PROTOCOL_VERSION`]).
    VersionMismatch {
        /// The peer's version.
        peer: u8,
    },
    /// The operation needs a logged-in session.
    NotLoggedIn,
    /// The user is already in a chat (or has a request pending).
    Busy,
    /// The responder tried to speak before the requester.
    NotYourTurn,
    /// No chat is active.
    NoChat,
    /// The session is closed.
    Closed,
    /// The handshake took longer than allowed.
    HandshakeTimeout,
    /// The peer was silent longer than allowed.
    IdleTimeout,
    /// The session reached its age limit.
    SessionExpired,
    /// A re-key we started got no answer in time (the handshake timeout).
    RekeyTimeout,
    /// The peer did not re-key its keys in time (`docs/PROTOCOL.md` 4.10).
    RekeyOverdue,
    /// An outgoing queue is full: drain `poll_transmit` first.
    QueueFull,
    /// The server refused the login (unknown user or wrong key).
    LoginRefused,
    /// The user name is not valid.
    BadUserName,
}

/// Any error of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// See [`FrameError`].
    Frame(FrameError),
    /// See [`WireError`].
    Wire(WireError),
    /// See [`CryptoError`].
    Crypto(CryptoError),
    /// See [`ProtocolError`].
    Protocol(ProtocolError),
    /// The server's certificate was not accepted (see [`crate::cert`]).
    Certificate(crate::cert::CertError),
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error::Frame(e)
    }
}
impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Wire(e)
    }
}
impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Error::Crypto(e)
    }
}
impl From<crate::cert::CertError> for Error {
    fn from(e: crate::cert::CertError) -> Self {
        Error::Certificate(e)
    }
}
impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Frame(e) => write!(f, "framing error: {e:?}"),
            Error::Wire(e) => write!(f, "malformed message: {e:?}"),
            Error::Crypto(e) => write!(f, "cryptographic failure: {e:?}"),
            Error::Protocol(e) => write!(f, "protocol violation: {e:?}"),
            Error::Certificate(e) => write!(f, "server certificate refused: {e}"),
        }
    }
}

impl core::error::Error for Error {}
