//! Readable descriptions of core errors (none of them carries secret data).

use securecom_core::{CryptoError, Error, ProtocolError, WireError};

/// A core error in words, for `disconnected` and `chat_ended` details.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Crypto(CryptoError::PeerKeyMismatch) => "server key mismatch".into(),
        Error::Crypto(CryptoError::HandshakeFailed) => "handshake failed".into(),
        Error::Crypto(CryptoError::WeakKey) => {
            "the peer's key is not a valid X25519 public key (low-order point)".into()
        }
        Error::Crypto(CryptoError::DecryptFailed) => {
            "a message failed to authenticate (changed, replayed, reordered or dropped)".into()
        }
        Error::Crypto(CryptoError::MessageLimit)
        | Error::Protocol(ProtocolError::SessionExpired) => "session expired".into(),
        Error::Protocol(ProtocolError::HandshakeTimeout) => "handshake timed out".into(),
        Error::Protocol(ProtocolError::IdleTimeout) => "the server was silent too long".into(),
        Error::Protocol(ProtocolError::RekeyTimeout) => {
            "the peer did not answer a renewal of the keys in time".into()
        }
        Error::Protocol(ProtocolError::RekeyOverdue) => {
            "the peer did not renew the keys in time".into()
        }
        Error::Protocol(ProtocolError::VersionMismatch { peer }) => format!(
            "the server speaks protocol version {peer}, this client version {}",
            securecom_core::PROTOCOL_VERSION
        ),
        Error::Protocol(ProtocolError::Unexpected) => "unexpected message from the peer".into(),
        other => other.to_string(),
    }
}

/// What a user command that failed should say (the session goes on).
pub fn command_error(e: &Error) -> String {
    match e {
        Error::Protocol(ProtocolError::NotLoggedIn) => "not logged in".into(),
        Error::Protocol(ProtocolError::Busy) => {
            "busy: already in a chat or a request is pending (/leave first)".into()
        }
        Error::Protocol(ProtocolError::BadUserName) => {
            "invalid user name (1 to 32 characters of a-z 0-9 _ . -)".into()
        }
        Error::Protocol(ProtocolError::NoChat) => "not in a chat (use /chat NAME)".into(),
        Error::Protocol(ProtocolError::NotYourTurn) => {
            "wait: the one who asked for the chat speaks first".into()
        }
        Error::Protocol(ProtocolError::QueueFull) => "busy sending; try again".into(),
        Error::Protocol(ProtocolError::Closed) => "the session is closed".into(),
        Error::Wire(WireError::OutOfBounds) => format!(
            "message too long (at most {} bytes)",
            securecom_core::MAX_CHAT_TEXT
        ),
        other => describe(other),
    }
}
