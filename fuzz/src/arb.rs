//! `Arbitrary` building blocks and their inverse ([`Enc`]) for seeds.
//!
//! Derived enums read their variant from a little-endian `u32` (multiply and
//! shift, arbitrary 1.x); the hand-written types below read a tag byte first
//! so that the fuzzer mostly picks known names, keys and small chat ids.
//! [`Enc`] writes the bytes that decode back to a value; `make-seeds` checks
//! every seed round-trips.

use arbitrary::{Arbitrary, Result, Unstructured};
use securecom_core::message::{
    Answer, ChatPayload, ClientHello, ClientMsg, CloseReason, DaemonToServer, ErrorCode,
    LoginError, RefuseReason, ServerHello, ServerMsg, ServerToDaemon,
};
use securecom_core::{PublicKey, DAEMON_SECRET_LEN, MAX_USERS_PER_MESSAGE};

use crate::fixtures::{name_index, user_key, NAMES};

/// Writes the bytes an `Unstructured` turns back into a value.
#[derive(Default)]
pub struct W(pub Vec<u8>);

impl W {
    /// One byte.
    pub fn u8(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }
    /// A `u16`, as `arbitrary` reads it (little-endian).
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u32`, as `arbitrary` reads it (little-endian).
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `bool`.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.u8(u8::from(b))
    }
    /// Variant `k` of a derived enum with `n` variants.
    pub fn variant(&mut self, k: u32, n: u32) -> &mut Self {
        let x = ((u64::from(k) << 32).div_ceil(u64::from(n))) as u32;
        debug_assert_eq!((u64::from(x) * u64::from(n)) >> 32, u64::from(k));
        self.u32(x)
    }
    /// Any encodable value.
    pub fn put<T: Enc + ?Sized>(&mut self, v: &T) -> &mut Self {
        v.enc(self);
        self
    }
}

/// The inverse of `Arbitrary` for the harness's types.
pub trait Enc {
    /// Appends the bytes that decode to `self`.
    fn enc(&self, w: &mut W);
}

impl Enc for u8 {
    fn enc(&self, w: &mut W) {
        w.u8(*self);
    }
}
impl Enc for u16 {
    fn enc(&self, w: &mut W) {
        w.u16(*self);
    }
}
impl Enc for bool {
    fn enc(&self, w: &mut W) {
        w.bool(*self);
    }
}

/// `Option<T>` as `arbitrary` reads it: a `bool`, then the value if `true`.
impl<T: Enc> Enc for Option<T> {
    fn enc(&self, w: &mut W) {
        match self {
            None => w.bool(false),
            Some(v) => w.bool(true).put(v),
        };
    }
}

/// A byte string: a `u16` length (mod 2048), then the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = usize::from(u16::arbitrary(u)? & 0x7ff).min(u.len());
        Ok(Bytes(u.bytes(n)?.to_vec()))
    }
}
impl Enc for Bytes {
    fn enc(&self, w: &mut W) {
        assert!(self.0.len() < 0x800);
        w.u16(self.0.len() as u16);
        w.0.extend_from_slice(&self.0);
    }
}

/// A text (chat line): [`Bytes`] read as UTF-8, lossily.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let b = Bytes::arbitrary(u)?;
        Ok(Text(String::from_utf8_lossy(&b.0).into_owned()))
    }
}
impl Enc for Text {
    fn enc(&self, w: &mut W) {
        Bytes(self.0.as_bytes().to_vec()).enc(w);
    }
}

/// A user name: mostly one of [`NAMES`] (tag < 0xf8), else any text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(pub String);

impl<'a> Arbitrary<'a> for Name {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let tag = u8::arbitrary(u)?;
        if tag < 0xf8 {
            Ok(Name(NAMES[usize::from(tag) % NAMES.len()].to_string()))
        } else {
            Ok(Name(Text::arbitrary(u)?.0))
        }
    }
}
impl Enc for Name {
    fn enc(&self, w: &mut W) {
        match name_index(&self.0) {
            Some(i) => w.u8(i as u8),
            None => w.u8(0xf8).put(&Text(self.0.clone())),
        };
    }
}

/// A public key: mostly a known user's (tag < 0xf0), else 32 given bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(pub PublicKey);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let tag = u8::arbitrary(u)?;
        if tag < 0xf0 {
            Ok(Key(user_key(usize::from(tag) % NAMES.len())))
        } else {
            let mut k = [0u8; 32];
            u.fill_buffer(&mut k)?;
            Ok(Key(PublicKey(k)))
        }
    }
}
impl Enc for Key {
    fn enc(&self, w: &mut W) {
        match (0..NAMES.len()).find(|&i| user_key(i) == self.0) {
            Some(i) => w.u8(i as u8),
            None => {
                w.u8(0xf0);
                w.0.extend_from_slice(self.0.as_bytes());
                w
            }
        };
    }
}

/// A chat id: mostly small (tag < 0xf0: 0..8), else any `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cid(pub u32);

impl<'a> Arbitrary<'a> for Cid {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let tag = u8::arbitrary(u)?;
        if tag < 0xf0 {
            Ok(Cid(u32::from(tag % 8)))
        } else {
            Ok(Cid(u32::arbitrary(u)?))
        }
    }
}
impl Enc for Cid {
    fn enc(&self, w: &mut W) {
        if self.0 < 8 {
            w.u8(self.0 as u8);
        } else {
            w.u8(0xf0).u32(self.0);
        }
    }
}

/// Up to 17 names (one more than a `Users` message holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names(pub Vec<Name>);

impl<'a> Arbitrary<'a> for Names {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u8::arbitrary(u)? % 18;
        (0..n)
            .map(|_| Name::arbitrary(u))
            .collect::<Result<_>>()
            .map(Names)
    }
}
impl Enc for Names {
    fn enc(&self, w: &mut W) {
        w.u8(self.0.len() as u8);
        for n in &self.0 {
            w.put(n);
        }
    }
}

fn login_error(b: u8) -> LoginError {
    [
        LoginError::NotAuthorized,
        LoginError::VersionMismatch,
        LoginError::ServerFull,
    ][usize::from(b) % 3]
}
fn refuse_reason(b: u8) -> RefuseReason {
    use RefuseReason::*;
    [
        Declined,
        Busy,
        Offline,
        UnknownUser,
        Unreachable,
        SelfRequest,
        Withdrawn,
    ][usize::from(b) % 7]
}
fn close_reason(b: u8) -> CloseReason {
    use CloseReason::*;
    [
        LoggedOut,
        Shutdown,
        SessionExpired,
        ProtocolViolation,
        Idle,
        Replaced,
    ][usize::from(b) % 6]
}
fn error_code(b: u8) -> ErrorCode {
    [
        ErrorCode::NotNow,
        ErrorCode::WrongChat,
        ErrorCode::BadRequest,
    ][usize::from(b) % 3]
}
fn answer(b: u8) -> Answer {
    [Answer::Accept, Answer::Decline, Answer::Busy][usize::from(b) % 3]
}

/// An owned [`ServerMsg`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ArbServerMsg {
    LoginOk {
        user: Name,
    },
    LoginRefused {
        reason: u8,
    },
    DaemonStatus {
        reachable: bool,
    },
    Users {
        names: Names,
        more: bool,
    },
    ChatPending {
        chat_id: Cid,
        user: Name,
    },
    ChatStarted {
        chat_id: Cid,
        peer: Name,
        peer_key: Key,
        initiator: bool,
    },
    ChatRefused {
        chat_id: Option<Cid>,
        user: Name,
        reason: u8,
    },
    ChatHandshake {
        chat_id: Cid,
        noise: Bytes,
    },
    ChatData {
        chat_id: Cid,
        noise: Bytes,
    },
    PeerLeft {
        chat_id: Cid,
    },
    Pong,
    Error {
        code: u8,
    },
    Bye {
        reason: u8,
    },
}

impl ArbServerMsg {
    /// The message (names beyond a `Users` message's capacity are dropped).
    pub fn msg(&self) -> ServerMsg<'_> {
        match self {
            Self::LoginOk { user } => ServerMsg::LoginOk { user: &user.0 },
            Self::LoginRefused { reason } => ServerMsg::LoginRefused {
                reason: login_error(*reason),
            },
            Self::DaemonStatus { reachable } => ServerMsg::DaemonStatus {
                reachable: *reachable,
            },
            Self::Users { names, more } => ServerMsg::Users {
                names: names
                    .0
                    .iter()
                    .take(MAX_USERS_PER_MESSAGE)
                    .map(|n| n.0.as_str())
                    .collect(),
                more: *more,
            },
            Self::ChatPending { chat_id, user } => ServerMsg::ChatPending {
                chat_id: chat_id.0,
                user: &user.0,
            },
            Self::ChatStarted {
                chat_id,
                peer,
                peer_key,
                initiator,
            } => ServerMsg::ChatStarted {
                chat_id: chat_id.0,
                peer: &peer.0,
                peer_key: peer_key.0,
                initiator: *initiator,
            },
            Self::ChatRefused {
                chat_id,
                user,
                reason,
            } => ServerMsg::ChatRefused {
                chat_id: chat_id.map(|c| c.0),
                user: &user.0,
                reason: refuse_reason(*reason),
            },
            Self::ChatHandshake { chat_id, noise } => ServerMsg::ChatHandshake {
                chat_id: chat_id.0,
                noise: &noise.0,
            },
            Self::ChatData { chat_id, noise } => ServerMsg::ChatData {
                chat_id: chat_id.0,
                noise: &noise.0,
            },
            Self::PeerLeft { chat_id } => ServerMsg::PeerLeft { chat_id: chat_id.0 },
            Self::Pong => ServerMsg::Pong,
            Self::Error { code } => ServerMsg::Error {
                code: error_code(*code),
            },
            Self::Bye { reason } => ServerMsg::Bye {
                reason: close_reason(*reason),
            },
        }
    }
}

impl Enc for ArbServerMsg {
    fn enc(&self, w: &mut W) {
        const N: u32 = 13;
        match self {
            Self::LoginOk { user } => w.variant(0, N).put(user),
            Self::LoginRefused { reason } => w.variant(1, N).u8(*reason),
            Self::DaemonStatus { reachable } => w.variant(2, N).bool(*reachable),
            Self::Users { names, more } => w.variant(3, N).put(names).bool(*more),
            Self::ChatPending { chat_id, user } => w.variant(4, N).put(chat_id).put(user),
            Self::ChatStarted {
                chat_id,
                peer,
                peer_key,
                initiator,
            } => w
                .variant(5, N)
                .put(chat_id)
                .put(peer)
                .put(peer_key)
                .bool(*initiator),
            Self::ChatRefused {
                chat_id,
                user,
                reason,
            } => w.variant(6, N).put(chat_id).put(user).u8(*reason),
            Self::ChatHandshake { chat_id, noise } => w.variant(7, N).put(chat_id).put(noise),
            Self::ChatData { chat_id, noise } => w.variant(8, N).put(chat_id).put(noise),
            Self::PeerLeft { chat_id } => w.variant(9, N).put(chat_id),
            Self::Pong => w.variant(10, N),
            Self::Error { code } => w.variant(11, N).u8(*code),
            Self::Bye { reason } => w.variant(12, N).u8(*reason),
        };
    }
}

/// The secret of an `AnnounceDaemon` made from one byte (so the fake daemon
/// can always derive the PSK from what was announced).
pub fn secret_from(seed: u8) -> [u8; DAEMON_SECRET_LEN] {
    let mut s = [seed; DAEMON_SECRET_LEN];
    s[0] = 0x5c;
    s
}

/// An owned [`ClientMsg`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ArbClientMsg {
    AnnounceDaemon { port: u16, secret: u8 },
    ListUsers,
    RequestChat { user: Name },
    ChatHandshake { chat_id: Cid, noise: Bytes },
    ChatData { chat_id: Cid, noise: Bytes },
    LeaveChat { chat_id: Cid },
    Ping,
    Logout,
    DialRequestChannel { secret: u8 },
}

impl ArbClientMsg {
    /// The message.
    pub fn msg(&self) -> ClientMsg<'_> {
        match self {
            Self::AnnounceDaemon { port, secret } => ClientMsg::AnnounceDaemon {
                port: *port,
                secret: secret_from(*secret),
            },
            Self::ListUsers => ClientMsg::ListUsers,
            Self::RequestChat { user } => ClientMsg::RequestChat { user: &user.0 },
            Self::ChatHandshake { chat_id, noise } => ClientMsg::ChatHandshake {
                chat_id: chat_id.0,
                noise: &noise.0,
            },
            Self::ChatData { chat_id, noise } => ClientMsg::ChatData {
                chat_id: chat_id.0,
                noise: &noise.0,
            },
            Self::LeaveChat { chat_id } => ClientMsg::LeaveChat { chat_id: chat_id.0 },
            Self::Ping => ClientMsg::Ping,
            Self::Logout => ClientMsg::Logout,
            Self::DialRequestChannel { secret } => ClientMsg::DialRequestChannel {
                secret: secret_from(*secret),
            },
        }
    }
}

impl ArbClientMsg {
    /// The same message with its chat id (if any) passed through `f`.
    pub fn map_id(&self, f: impl Fn(Cid) -> Cid) -> Self {
        let mut m = self.clone();
        match &mut m {
            Self::ChatHandshake { chat_id, .. }
            | Self::ChatData { chat_id, .. }
            | Self::LeaveChat { chat_id } => *chat_id = f(*chat_id),
            _ => {}
        }
        m
    }
}

impl Enc for ArbClientMsg {
    fn enc(&self, w: &mut W) {
        const N: u32 = 9;
        match self {
            Self::AnnounceDaemon { port, secret } => w.variant(0, N).u16(*port).u8(*secret),
            Self::ListUsers => w.variant(1, N),
            Self::RequestChat { user } => w.variant(2, N).put(user),
            Self::ChatHandshake { chat_id, noise } => w.variant(3, N).put(chat_id).put(noise),
            Self::ChatData { chat_id, noise } => w.variant(4, N).put(chat_id).put(noise),
            Self::LeaveChat { chat_id } => w.variant(5, N).put(chat_id),
            Self::Ping => w.variant(6, N),
            Self::Logout => w.variant(7, N),
            Self::DialRequestChannel { secret } => w.variant(8, N).u8(*secret),
        };
    }
}

/// An owned [`ServerToDaemon`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ArbServerToDaemon {
    ChatRequest {
        chat_id: Cid,
        from: Name,
        from_key: Key,
    },
    Cancel {
        chat_id: Cid,
    },
    Bye,
    Ready,
    Ping,
}

impl ArbServerToDaemon {
    /// The message.
    pub fn msg(&self) -> ServerToDaemon<'_> {
        match self {
            Self::ChatRequest {
                chat_id,
                from,
                from_key,
            } => ServerToDaemon::ChatRequest {
                chat_id: chat_id.0,
                from: &from.0,
                from_key: from_key.0,
            },
            Self::Cancel { chat_id } => ServerToDaemon::Cancel { chat_id: chat_id.0 },
            Self::Bye => ServerToDaemon::Bye,
            Self::Ready => ServerToDaemon::Ready,
            Self::Ping => ServerToDaemon::Ping,
        }
    }
}

impl Enc for ArbServerToDaemon {
    fn enc(&self, w: &mut W) {
        const N: u32 = 5;
        match self {
            Self::ChatRequest {
                chat_id,
                from,
                from_key,
            } => w.variant(0, N).put(chat_id).put(from).put(from_key),
            Self::Cancel { chat_id } => w.variant(1, N).put(chat_id),
            Self::Bye => w.variant(2, N),
            Self::Ready => w.variant(3, N),
            Self::Ping => w.variant(4, N),
        };
    }
}

/// An owned [`DaemonToServer`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ArbDaemonToServer {
    Answer { chat_id: Cid, answer: u8 },
    Bye,
    Pong,
}

impl ArbDaemonToServer {
    /// The message.
    pub fn msg(&self) -> DaemonToServer {
        match self {
            Self::Answer { chat_id, answer: a } => DaemonToServer::Answer {
                chat_id: chat_id.0,
                answer: answer(*a),
            },
            Self::Bye => DaemonToServer::Bye,
            Self::Pong => DaemonToServer::Pong,
        }
    }
}

impl ArbDaemonToServer {
    /// The same message with its chat id (if any) passed through `f`.
    pub fn map_id(&self, f: impl Fn(Cid) -> Cid) -> Self {
        match self {
            Self::Answer { chat_id, answer } => Self::Answer {
                chat_id: f(*chat_id),
                answer: *answer,
            },
            Self::Bye => Self::Bye,
            Self::Pong => Self::Pong,
        }
    }
}

impl Enc for ArbDaemonToServer {
    fn enc(&self, w: &mut W) {
        const N: u32 = 3;
        match self {
            Self::Answer { chat_id, answer } => w.variant(0, N).put(chat_id).u8(*answer),
            Self::Bye => w.variant(1, N),
            Self::Pong => w.variant(2, N),
        };
    }
}

/// Any message of the protocol, for the encode → decode direction of the
/// `messages` target.
#[derive(Arbitrary, Clone, Debug)]
pub enum AnyMsg {
    ServerHello {
        version: u8,
        certificate: Option<Bytes>,
    },
    ClientHello {
        version: u8,
        user: Name,
    },
    Client(ArbClientMsg),
    Server(ArbServerMsg),
    ToDaemon(ArbServerToDaemon),
    FromDaemon(ArbDaemonToServer),
    Chat(ArbChatPayload),
}

/// An owned [`ChatPayload`].
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ArbChatPayload {
    Text { received: u32, text: Text },
    Close { sent: u32, received: u32 },
}

impl ArbChatPayload {
    /// The payload.
    pub fn msg(&self) -> ChatPayload<'_> {
        match self {
            Self::Text { received, text } => ChatPayload::Text {
                received: *received,
                text: &text.0,
            },
            Self::Close { sent, received } => ChatPayload::Close {
                sent: *sent,
                received: *received,
            },
        }
    }
}

impl Enc for ArbChatPayload {
    fn enc(&self, w: &mut W) {
        const N: u32 = 2;
        match self {
            Self::Text { received, text } => w.variant(0, N).u32(*received).put(text),
            Self::Close { sent, received } => w.variant(1, N).u32(*sent).u32(*received),
        };
    }
}

/// What [`AnyMsg`] borrows as.
#[allow(clippy::large_enum_variant)]
pub enum AnyRef<'a> {
    /// Standard channel, handshake message 2.
    ServerHello(ServerHello<'a>),
    /// Standard channel, handshake message 3.
    ClientHello(ClientHello<'a>),
    /// Standard channel, client → server.
    Client(ClientMsg<'a>),
    /// Standard channel, server → client.
    Server(ServerMsg<'a>),
    /// Request channel, server → daemon.
    ToDaemon(ServerToDaemon<'a>),
    /// Request channel, daemon → server.
    FromDaemon(DaemonToServer),
    /// E2E chat.
    Chat(ChatPayload<'a>),
}

impl AnyMsg {
    /// The message.
    pub fn msg(&self) -> AnyRef<'_> {
        match self {
            Self::ServerHello {
                version,
                certificate,
            } => AnyRef::ServerHello(ServerHello {
                version: *version,
                certificate: certificate.as_ref().map(|c| c.0.as_slice()),
            }),
            Self::ClientHello { version, user } => AnyRef::ClientHello(ClientHello {
                version: *version,
                user: &user.0,
            }),
            Self::Client(m) => AnyRef::Client(m.msg()),
            Self::Server(m) => AnyRef::Server(m.msg()),
            Self::ToDaemon(m) => AnyRef::ToDaemon(m.msg()),
            Self::FromDaemon(m) => AnyRef::FromDaemon(m.msg()),
            Self::Chat(p) => AnyRef::Chat(p.msg()),
        }
    }
}

/// A user command (shared by the client-driving targets).
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    ListUsers,
    RequestChat(Name),
    /// Answer the request the last `ChatRequest` event showed (by its id).
    Answer(bool),
    SendText(Text),
    LeaveChat,
    Logout,
    /// Answer by a stale id: that of the `back`-th request shown before the
    /// last one (mod how many were kept), or an id never shown if there is
    /// none. It must fail unless that id is the pending request's again.
    AnswerStale {
        accept: bool,
        back: u8,
    },
}

impl Enc for Cmd {
    fn enc(&self, w: &mut W) {
        const N: u32 = 7;
        match self {
            Cmd::ListUsers => w.variant(0, N),
            Cmd::RequestChat(n) => w.variant(1, N).put(n),
            Cmd::Answer(a) => w.variant(2, N).bool(*a),
            Cmd::SendText(t) => w.variant(3, N).put(t),
            Cmd::LeaveChat => w.variant(4, N),
            Cmd::Logout => w.variant(5, N),
            Cmd::AnswerStale { accept, back } => w.variant(6, N).bool(*accept).u8(*back),
        };
    }
}

/// The ids of the chat requests a user was shown, oldest first (the last
/// few), for [`Cmd::Answer`] and [`Cmd::AnswerStale`].
#[derive(Clone, Debug, Default)]
pub struct Shown(Vec<u32>);

impl Shown {
    /// How many ids are kept.
    pub const KEEP: usize = 4;

    /// A `ChatRequest` event showed `id`.
    pub fn push(&mut self, id: u32) {
        if self.0.len() == Self::KEEP {
            self.0.remove(0);
        }
        self.0.push(id);
    }

    /// The id of the last request shown.
    pub fn last(&self) -> Option<u32> {
        self.0.last().copied()
    }

    /// The id [`Cmd::AnswerStale`] answers by: the `back`-th id before the
    /// last (mod the older ones kept), else one never shown.
    pub fn stale(&self, back: u8) -> u32 {
        match self.0.len() {
            0 => 0,
            1 => self.0[0].wrapping_add(1),
            n => self.0[n - 2 - usize::from(back) % (n - 1)],
        }
    }
}

/// What the network does to one message on its way: nothing, a flipped
/// byte, a cut, extra bytes, other bytes, a duplicate, or a loss.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    Real,
    Flip { pos: u16, mask: u8 },
    Truncate { len: u16 },
    Append(Bytes),
    Replace(Bytes),
    Dup,
    Drop,
}

/// The messages that arrive instead of `real`.
pub fn tamper(step: &Tamper, real: &[u8]) -> Vec<Vec<u8>> {
    match step {
        Tamper::Real => vec![real.to_vec()],
        Tamper::Flip { pos, mask } => {
            let mut m = real.to_vec();
            if !m.is_empty() {
                let i = usize::from(*pos) % m.len();
                m[i] ^= *mask;
            }
            vec![m]
        }
        Tamper::Truncate { len } => vec![real[..usize::from(*len) % (real.len() + 1)].to_vec()],
        Tamper::Append(b) => {
            let mut m = real.to_vec();
            m.extend_from_slice(&b.0);
            vec![m]
        }
        Tamper::Replace(b) => vec![b.0.clone()],
        Tamper::Dup => vec![real.to_vec(), real.to_vec()],
        Tamper::Drop => vec![],
    }
}
