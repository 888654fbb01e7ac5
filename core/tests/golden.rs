//! Golden bytes: the wire format of secureCom, pinned.
//!
//! In the style of postcard's `tests/loopback.rs`: for every message of every
//! channel and direction, a fixed value, its exact encoding as a hex literal,
//! and the decoding of those bytes back to the value. Then the other bytes a
//! compatible implementation must reproduce: a frame, the request channel's
//! PSK, the chat prologue, fingerprints and safety numbers, and whole
//! transcripts (XX login, NNpsk0 request channel, KK chat) with fixed keys.
//!
//! The literals were computed once and pasted. If a test here fails, the
//! wire format changed: that is a protocol change (bump
//! `PROTOCOL_VERSION`, update `docs/PROTOCOL.md`), never a literal to refresh.
//! `docs/PROTOCOL.md` quotes these literals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use securecom_core::frame::{encode_frame, Feed, FrameDecoder};
use securecom_core::keys::{PublicKey, SafetyNumber, StaticSecret};
use securecom_core::limits::{Limits, DEFAULT_DAEMON_PORT, MAX_FRAME, MAX_PLAINTEXT};
use securecom_core::message::{
    decode, encode, Answer, ChatPayload, ClientHello, ClientMsg, CloseReason, DaemonToServer,
    ErrorCode, LoginError, RefuseReason, ServerHello, ServerMsg, ServerToDaemon,
};
use securecom_core::noise::{
    chat_prologue, Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, Transport,
    MAX_CHAT_PROLOGUE, REQUEST_PROLOGUE, STANDARD_PROLOGUE,
};
use securecom_core::time::Instant;
use securecom_core::{
    Client, ClientConfig, ClientEvent, Registry, ServerConfig, ServerEvent, ServerSession,
    PROTOCOL_VERSION,
};

// ------------------------------------------------------------------ helpers

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex to bytes; whitespace is ignored so long literals can be wrapped.
fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex literal");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

/// Compares bytes with a pinned literal (as hex, so a failure shows both).
#[track_caller]
fn pin(what: &str, actual: &[u8], expected: &str) {
    let expected: String = expected.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(hex(actual), expected, "golden bytes of {what} changed");
}

/// Encodes `$value` (of type `$ty`), compares with `$hex`, decodes `$hex`
/// back and compares with `$value`.
macro_rules! golden {
    ($hex:expr, $ty:ty, $value:expr) => {{
        let value: $ty = $value;
        let mut buf = [0u8; MAX_PLAINTEXT];
        let n = encode(&value, &mut buf).expect("encodes");
        pin(stringify!($value), &buf[..n], $hex);
        let wire = unhex($hex);
        let back: $ty = decode(&wire).expect("decodes");
        assert_eq!(back, value, "decoding of {}", $hex);
    }};
}

// ------------------------------------------------------------------ fixed keys

/// RFC 7748 section 6.1, Alice's private key: the user "alice".
const ALICE_SK: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PK: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
/// RFC 7748 section 6.1, Bob's private key: the user "bob".
const BOB_SK: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const BOB_PK: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";

/// `[start, start + 1, ..., start + 31]`: fixed server and ephemeral keys.
fn seq(start: u8) -> [u8; 32] {
    core::array::from_fn(|i| start.wrapping_add(i as u8))
}
const SERVER_SK: u8 = 0x00; // seq(0x00)
const ALICE_XX_E: u8 = 0x20; // alice's ephemeral key on the standard channel
const SERVER_XX_E: u8 = 0x40; // the server's ephemeral key on alice's standard channel
const SERVER_REQ_E: u8 = 0x60; // the server's ephemeral key on alice's request channel
const ALICE_REQ_E: u8 = 0x80; // alice's daemon's ephemeral key
const ALICE_KK_E: u8 = 0xa0; // alice's ephemeral key in the chat
const BOB_KK_E: u8 = 0xc0; // bob's ephemeral key in the chat
/// The one-time secret alice announces with her daemon.
const DAEMON_SECRET: u8 = 0xe0; // seq(0xe0)

fn alice() -> StaticSecret {
    StaticSecret::from_bytes(unhex32(ALICE_SK))
}
fn bob() -> StaticSecret {
    StaticSecret::from_bytes(unhex32(BOB_SK))
}
fn server() -> StaticSecret {
    StaticSecret::from_bytes(seq(SERVER_SK))
}
fn alice_pk() -> PublicKey {
    PublicKey(unhex32(ALICE_PK))
}
fn bob_pk() -> PublicKey {
    PublicKey(unhex32(BOB_PK))
}

#[test]
fn fixed_keys() {
    assert_eq!(alice().public_key(), alice_pk());
    assert_eq!(bob().public_key(), bob_pk());
    pin(
        "server public key",
        server().public_key().as_bytes(),
        SERVER_PK,
    );
}

const SERVER_PK: &str = "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f";

// ------------------------------------------------------------------ standard channel: handshake payloads

#[test]
fn server_hello() {
    golden!(
        "0200",
        ServerHello<'_>,
        ServerHello {
            version: 2,
            certificate: None
        }
    );
    golden!(
        "020103c0ffee",
        ServerHello<'_>,
        ServerHello {
            version: 2,
            certificate: Some(&[0xc0, 0xff, 0xee])
        }
    );
}

#[test]
fn client_hello() {
    golden!(
        "0205616c696365",
        ClientHello<'_>,
        ClientHello {
            version: 2,
            user: "alice"
        }
    );
}

// ------------------------------------------------------------------ standard channel: client -> server

#[test]
fn client_msg() {
    golden!(
        "009221e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        ClientMsg<'_>,
        ClientMsg::AnnounceDaemon {
            port: 4242,
            secret: seq(DAEMON_SECRET)
        }
    );
    golden!("01", ClientMsg<'_>, ClientMsg::ListUsers);
    golden!(
        "0203626f62",
        ClientMsg<'_>,
        ClientMsg::RequestChat { user: "bob" }
    );
    golden!(
        "030103010203",
        ClientMsg<'_>,
        ClientMsg::ChatHandshake {
            chat_id: 1,
            noise: &[0x01, 0x02, 0x03]
        }
    );
    golden!(
        "04ac0202aabb",
        ClientMsg<'_>,
        ClientMsg::ChatData {
            chat_id: 300,
            noise: &[0xaa, 0xbb]
        }
    );
    golden!("0501", ClientMsg<'_>, ClientMsg::LeaveChat { chat_id: 1 });
    golden!(
        "05ac02",
        ClientMsg<'_>,
        ClientMsg::LeaveChat { chat_id: 300 }
    );
    golden!("06", ClientMsg<'_>, ClientMsg::Ping);
    golden!("07", ClientMsg<'_>, ClientMsg::Logout);
    golden!(
        "08e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        ClientMsg<'_>,
        ClientMsg::DialRequestChannel {
            secret: seq(DAEMON_SECRET)
        }
    );
}

// ------------------------------------------------------------------ standard channel: server -> client

#[test]
fn server_msg() {
    golden!(
        "0005616c696365",
        ServerMsg<'_>,
        ServerMsg::LoginOk { user: "alice" }
    );
    golden!(
        "0100",
        ServerMsg<'_>,
        ServerMsg::LoginRefused {
            reason: LoginError::NotAuthorized
        }
    );
    golden!(
        "0101",
        ServerMsg<'_>,
        ServerMsg::LoginRefused {
            reason: LoginError::VersionMismatch
        }
    );
    golden!(
        "0102",
        ServerMsg<'_>,
        ServerMsg::LoginRefused {
            reason: LoginError::ServerFull
        }
    );
    golden!(
        "0201",
        ServerMsg<'_>,
        ServerMsg::DaemonStatus { reachable: true }
    );
    golden!(
        "0200",
        ServerMsg<'_>,
        ServerMsg::DaemonStatus { reachable: false }
    );
    golden!(
        "030205616c69636503626f6201",
        ServerMsg<'_>,
        ServerMsg::Users {
            names: heapless::Vec::from_slice(&["alice", "bob"]).unwrap(),
            more: true
        }
    );
    golden!(
        "030000",
        ServerMsg<'_>,
        ServerMsg::Users {
            names: heapless::Vec::new(),
            more: false
        }
    );
    golden!(
        "040103626f62",
        ServerMsg<'_>,
        ServerMsg::ChatPending {
            chat_id: 1,
            user: "bob"
        }
    );
    golden!(
        "050103626f62de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f01",
        ServerMsg<'_>,
        ServerMsg::ChatStarted {
            chat_id: 1,
            peer: "bob",
            peer_key: bob_pk(),
            initiator: true
        }
    );
    golden!(
        "06010103626f6200",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: Some(1),
            user: "bob",
            reason: RefuseReason::Declined
        }
    );
    golden!(
        "0601ac0203626f6201",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: Some(300),
            user: "bob",
            reason: RefuseReason::Busy
        }
    );
    golden!(
        "060003626f6202",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: None,
            user: "bob",
            reason: RefuseReason::Offline
        }
    );
    golden!(
        "060003626f6203",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: None,
            user: "bob",
            reason: RefuseReason::UnknownUser
        }
    );
    golden!(
        "06010703626f6204",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: Some(7),
            user: "bob",
            reason: RefuseReason::Unreachable
        }
    );
    golden!(
        "060003626f6205",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: None,
            user: "bob",
            reason: RefuseReason::SelfRequest
        }
    );
    golden!(
        "060003626f6206",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: None,
            user: "bob",
            reason: RefuseReason::Withdrawn
        }
    );
    golden!(
        "06010103626f6207",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: Some(1),
            user: "bob",
            reason: RefuseReason::NoAnswer
        }
    );
    golden!(
        "060003626f6208",
        ServerMsg<'_>,
        ServerMsg::ChatRefused {
            chat_id: None,
            user: "bob",
            reason: RefuseReason::TooSoon
        }
    );
    golden!(
        "070103010203",
        ServerMsg<'_>,
        ServerMsg::ChatHandshake {
            chat_id: 1,
            noise: &[0x01, 0x02, 0x03]
        }
    );
    golden!(
        "08f0a20402aabb",
        ServerMsg<'_>,
        ServerMsg::ChatData {
            chat_id: 70000,
            noise: &[0xaa, 0xbb]
        }
    );
    golden!("0901", ServerMsg<'_>, ServerMsg::PeerLeft { chat_id: 1 });
    golden!("0a", ServerMsg<'_>, ServerMsg::Pong);
    golden!(
        "0b00",
        ServerMsg<'_>,
        ServerMsg::Error {
            code: ErrorCode::NotNow
        }
    );
    golden!(
        "0b01",
        ServerMsg<'_>,
        ServerMsg::Error {
            code: ErrorCode::WrongChat
        }
    );
    golden!(
        "0b02",
        ServerMsg<'_>,
        ServerMsg::Error {
            code: ErrorCode::BadRequest
        }
    );
    golden!(
        "0b03",
        ServerMsg<'_>,
        ServerMsg::Error {
            code: ErrorCode::SlowDown
        }
    );
    golden!(
        "0c00",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::LoggedOut
        }
    );
    golden!(
        "0c01",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::Shutdown
        }
    );
    golden!(
        "0c02",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::SessionExpired
        }
    );
    golden!(
        "0c03",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::ProtocolViolation
        }
    );
    golden!(
        "0c04",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::Idle
        }
    );
    golden!(
        "0c05",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::Replaced
        }
    );
    golden!(
        "0c06",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::Revoked
        }
    );
    golden!(
        "0c07",
        ServerMsg<'_>,
        ServerMsg::Bye {
            reason: CloseReason::RateLimited
        }
    );
}

// ------------------------------------------------------------------ request channel

#[test]
fn server_to_daemon() {
    golden!(
        "000105616c6963658520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        ServerToDaemon<'_>,
        ServerToDaemon::ChatRequest {
            chat_id: 1,
            from: "alice",
            from_key: alice_pk()
        }
    );
    golden!(
        "0101",
        ServerToDaemon<'_>,
        ServerToDaemon::Cancel { chat_id: 1 }
    );
    golden!("02", ServerToDaemon<'_>, ServerToDaemon::Bye);
    golden!("03", ServerToDaemon<'_>, ServerToDaemon::Ready);
    golden!("04", ServerToDaemon<'_>, ServerToDaemon::Ping);
}

#[test]
fn daemon_to_server() {
    golden!(
        "000100",
        DaemonToServer,
        DaemonToServer::Answer {
            chat_id: 1,
            answer: Answer::Accept
        }
    );
    golden!(
        "000101",
        DaemonToServer,
        DaemonToServer::Answer {
            chat_id: 1,
            answer: Answer::Decline
        }
    );
    golden!(
        "000102",
        DaemonToServer,
        DaemonToServer::Answer {
            chat_id: 1,
            answer: Answer::Busy
        }
    );
    golden!("01", DaemonToServer, DaemonToServer::Bye);
    golden!("02", DaemonToServer, DaemonToServer::Pong);
}

// ------------------------------------------------------------------ end-to-end chat

#[test]
fn chat_payload() {
    golden!(
        "00000568656c6c6f",
        ChatPayload<'_>,
        ChatPayload::Text {
            received: 0,
            text: "hello"
        }
    );
    golden!(
        "000300",
        ChatPayload<'_>,
        ChatPayload::Text {
            received: 3,
            text: ""
        }
    );
    golden!(
        "00ac02076772c3bcc39f65",
        ChatPayload<'_>,
        ChatPayload::Text {
            received: 300,
            text: "grüße"
        }
    );
    golden!(
        "010000",
        ChatPayload<'_>,
        ChatPayload::Close {
            sent: 0,
            received: 0
        }
    );
    golden!(
        "01ac0201",
        ChatPayload<'_>,
        ChatPayload::Close {
            sent: 300,
            received: 1
        }
    );
}

/// Fails to compile when a variant is added without a golden test above.
#[allow(dead_code)]
fn every_variant_has_a_golden_test(
    c: ClientMsg<'_>,
    s: ServerMsg<'_>,
    d: ServerToDaemon<'_>,
    a: DaemonToServer,
    p: ChatPayload<'_>,
    e: (LoginError, RefuseReason, CloseReason, ErrorCode, Answer),
) {
    match c {
        ClientMsg::AnnounceDaemon { .. }
        | ClientMsg::ListUsers
        | ClientMsg::RequestChat { .. }
        | ClientMsg::ChatHandshake { .. }
        | ClientMsg::ChatData { .. }
        | ClientMsg::LeaveChat { .. }
        | ClientMsg::Ping
        | ClientMsg::Logout
        | ClientMsg::DialRequestChannel { .. } => {}
    }
    match s {
        ServerMsg::LoginOk { .. }
        | ServerMsg::LoginRefused { .. }
        | ServerMsg::DaemonStatus { .. }
        | ServerMsg::Users { .. }
        | ServerMsg::ChatPending { .. }
        | ServerMsg::ChatStarted { .. }
        | ServerMsg::ChatRefused { .. }
        | ServerMsg::ChatHandshake { .. }
        | ServerMsg::ChatData { .. }
        | ServerMsg::PeerLeft { .. }
        | ServerMsg::Pong
        | ServerMsg::Error { .. }
        | ServerMsg::Bye { .. } => {}
    }
    match d {
        ServerToDaemon::ChatRequest { .. }
        | ServerToDaemon::Cancel { .. }
        | ServerToDaemon::Bye
        | ServerToDaemon::Ready
        | ServerToDaemon::Ping => {}
    }
    match a {
        DaemonToServer::Answer { .. } | DaemonToServer::Bye | DaemonToServer::Pong => {}
    }
    match p {
        ChatPayload::Text { .. } | ChatPayload::Close { .. } => {}
    }
    match e.0 {
        LoginError::NotAuthorized | LoginError::VersionMismatch | LoginError::ServerFull => {}
    }
    match e.1 {
        RefuseReason::Declined
        | RefuseReason::Busy
        | RefuseReason::Offline
        | RefuseReason::UnknownUser
        | RefuseReason::Unreachable
        | RefuseReason::SelfRequest
        | RefuseReason::Withdrawn
        | RefuseReason::NoAnswer
        | RefuseReason::TooSoon => {}
    }
    match e.2 {
        CloseReason::LoggedOut
        | CloseReason::Shutdown
        | CloseReason::SessionExpired
        | CloseReason::ProtocolViolation
        | CloseReason::Idle
        | CloseReason::Replaced
        | CloseReason::Revoked
        | CloseReason::RateLimited => {}
    }
    match e.3 {
        ErrorCode::NotNow | ErrorCode::WrongChat | ErrorCode::BadRequest | ErrorCode::SlowDown => {}
    }
    match e.4 {
        Answer::Accept | Answer::Decline | Answer::Busy => {}
    }
}

// ------------------------------------------------------------------ framing

#[test]
fn frame() {
    let mut out = [0u8; MAX_FRAME];
    let n = encode_frame(&unhex("0105616c696365"), &mut out).unwrap();
    pin("frame", &out[..n], "0007 0105616c696365");
    let mut d: FrameDecoder = FrameDecoder::new();
    assert_eq!(d.feed(&out[..n]), Ok(Feed::Frame { consumed: n }));
    assert_eq!(d.frame(), Some(&unhex("0105616c696365")[..]));
    // The largest frame: 1024 bytes announced as 0x0400.
    let big = [0x5a; 1024];
    let n = encode_frame(&big, &mut out).unwrap();
    pin("frame header of 1024 bytes", &out[..2], "0400");
    assert_eq!(n, 1026);
}

// ------------------------------------------------------------------ keys, fingerprints, safety numbers

#[test]
fn fingerprints() {
    assert_eq!(alice_pk().fingerprint().to_string(), FP_ALICE);
    assert_eq!(bob_pk().fingerprint().to_string(), FP_BOB);
    assert_eq!(server().public_key().fingerprint().to_string(), FP_SERVER);
}
const FP_ALICE: &str = "bdfb:aaf4:b972:c5b5:d172:5ec1:fc1f:cc86";
const FP_BOB: &str = "6609:a6b1:6eb2:d002:8013:a1d3:c6cb:92ca";
const FP_SERVER: &str = "85b3:87d4:f276:411c:3752:6bc1:5c09:01fc";

#[test]
fn safety_number() {
    let n = SafetyNumber::new(&alice_pk(), &bob_pk());
    assert_eq!(n, SafetyNumber::new(&bob_pk(), &alice_pk()));
    assert_eq!(n.to_string(), SAFETY_ALICE_BOB);
}
const SAFETY_ALICE_BOB: &str =
    "00539 09499 64980 57483 21845 79077 62015 85679 90735 61820 29917 67643";

#[test]
fn chat_prologue_bytes() {
    let mut buf = [0u8; MAX_CHAT_PROLOGUE];
    let p = chat_prologue(1, (&alice_pk(), "alice"), (&bob_pk(), "bob"), &mut buf);
    pin("chat prologue", p, CHAT_PROLOGUE);
    let p = chat_prologue(
        0x01020304,
        (&bob_pk(), "bob"),
        (&alice_pk(), "alice"),
        &mut buf,
    );
    pin("chat prologue, chat 0x01020304", p, CHAT_PROLOGUE_2);
    let p = chat_prologue(1, (&bob_pk(), "bob"), (&alice_pk(), "alice"), &mut buf);
    pin("chat prologue, bob asks", p, CHAT_PROLOGUE_BOB_ASKS);
}
const CHAT_PROLOGUE: &str = "736563757265436f6d2f312f63686174000000018520f0098930a754748b7ddc\
    b43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05616c696365de9edb7d7b7d\
    c1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f03626f62";
const CHAT_PROLOGUE_2: &str = "736563757265436f6d2f312f6368617401020304de9edb7d7b7dc1b4d35b61c2\
    ece435373f8343c85b78674dadfc7e146f882b4f03626f628520f0098930a754\
    748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05616c696365";

// ------------------------------------------------------------------ transcripts

#[allow(clippy::too_many_arguments)]
fn hs(
    pattern: Pattern,
    initiator: bool,
    prologue: &[u8],
    local: Option<&StaticSecret>,
    remote: Option<PublicKey>,
    psk: Option<&Psk>,
    check: RemoteCheck,
    ephemeral: u8,
) -> Handshake {
    Handshake::new_with_fixed_ephemeral_for_testing_only(
        HandshakeParams {
            pattern,
            initiator,
            prologue,
            local_static: local,
            remote_static: remote,
            psk,
            check,
        },
        &StaticSecret::from_bytes(seq(ephemeral)),
    )
    .unwrap()
}

/// `from` writes a handshake message with `payload`; `to` reads it.
fn hs_step(from: &mut Handshake, to: &mut Handshake, payload: &[u8]) -> Vec<u8> {
    let mut wire = [0u8; 1024];
    let n = from.write_message(payload, &mut wire).unwrap();
    let mut out = [0u8; 1024];
    let m = to.read_message(&wire[..n], &mut out).unwrap();
    assert_eq!(&out[..m], payload);
    wire[..n].to_vec()
}

/// `from` encrypts the encoding of a message; `to` decrypts it.
fn tr_step(from: &mut Transport, to: &mut Transport, plain: &[u8]) -> Vec<u8> {
    let mut wire = [0u8; 1024];
    let n = from.encrypt(plain, &mut wire).unwrap();
    let mut out = [0u8; 1024];
    let m = to.decrypt(&wire[..n], &mut out).unwrap();
    assert_eq!(&out[..m], plain);
    wire[..n].to_vec()
}

fn enc<T: serde::Serialize + securecom_core::message::Bounded>(msg: &T) -> Vec<u8> {
    let mut buf = [0u8; MAX_PLAINTEXT];
    let n = encode(msg, &mut buf).unwrap();
    buf[..n].to_vec()
}

/// Every wire message of the reference transcript, in order.
struct Transcript {
    xx: [Vec<u8>; 3],
    xx_hash: [u8; 32],
    login_ok: Vec<u8>,
    announce: Vec<u8>,
    daemon_status: Vec<u8>,
    nn: [Vec<u8>; 2],
    nn_hash: [u8; 32],
    chat_request: Vec<u8>,
    answer: Vec<u8>,
    kk: [Vec<u8>; 2],
    kk_hash: [u8; 32],
    text_alice: Vec<u8>,
    text_bob: Vec<u8>,
    close_bob: Vec<u8>,
}

/// The reference transcript: alice logs in (XX) and announces her daemon; the
/// server opens her request channel (NNpsk0) and delivers bob's request for
/// chat 1, which she accepts; bob (the requester, KK initiator) and alice run
/// the chat handshake and bob speaks first. Every key is fixed, so every byte
/// is reproducible.
fn transcript() -> Transcript {
    let limits = Limits::DEFAULT;
    let now = Instant::ZERO;

    // Standard channel: XX, alice initiates, the server key is pinned.
    let (alice_sk, server_sk) = (alice(), server());
    let mut c = hs(
        Pattern::XX,
        true,
        STANDARD_PROLOGUE,
        Some(&alice_sk),
        None,
        None,
        RemoteCheck::Exactly(server_sk.public_key()),
        ALICE_XX_E,
    );
    let mut s = hs(
        Pattern::XX,
        false,
        STANDARD_PROLOGUE,
        Some(&server_sk),
        None,
        None,
        RemoteCheck::Any,
        SERVER_XX_E,
    );
    let m1 = hs_step(&mut c, &mut s, &[]);
    let hello = enc(&ServerHello {
        version: PROTOCOL_VERSION,
        certificate: None,
    });
    let m2 = hs_step(&mut s, &mut c, &hello);
    let client_hello = enc(&ClientHello {
        version: PROTOCOL_VERSION,
        user: "alice",
    });
    let m3 = hs_step(&mut c, &mut s, &client_hello);
    assert_eq!(s.remote_static(), Some(alice_pk()));
    assert_eq!(c.remote_static(), Some(server_sk.public_key()));
    let mut ct = c.into_transport(&limits, now).unwrap();
    let mut st = s.into_transport(&limits, now).unwrap();
    assert_eq!(ct.handshake_hash(), st.handshake_hash());
    let xx_hash = *ct.handshake_hash();
    let login_ok = tr_step(
        &mut st,
        &mut ct,
        &enc(&ServerMsg::LoginOk { user: "alice" }),
    );
    let announce = tr_step(
        &mut ct,
        &mut st,
        &enc(&ClientMsg::AnnounceDaemon {
            port: DEFAULT_DAEMON_PORT,
            secret: seq(DAEMON_SECRET),
        }),
    );
    let daemon_status = tr_step(
        &mut st,
        &mut ct,
        &enc(&ServerMsg::DaemonStatus { reachable: true }),
    );

    // Request channel: NNpsk0, the server initiates; both derive the PSK.
    let psk_server = Psk::for_request_channel(st.handshake_hash(), &seq(DAEMON_SECRET));
    let psk_daemon = Psk::for_request_channel(ct.handshake_hash(), &seq(DAEMON_SECRET));
    let mut si = hs(
        Pattern::NNpsk0,
        true,
        REQUEST_PROLOGUE,
        None,
        None,
        Some(&psk_server),
        RemoteCheck::Any,
        SERVER_REQ_E,
    );
    let mut dr = hs(
        Pattern::NNpsk0,
        false,
        REQUEST_PROLOGUE,
        None,
        None,
        Some(&psk_daemon),
        RemoteCheck::Any,
        ALICE_REQ_E,
    );
    let n1 = hs_step(&mut si, &mut dr, &[]);
    let n2 = hs_step(&mut dr, &mut si, &[]);
    let mut sit = si.into_transport(&limits, now).unwrap();
    let mut drt = dr.into_transport(&limits, now).unwrap();
    let nn_hash = *sit.handshake_hash();
    assert_eq!(&nn_hash, drt.handshake_hash());
    let chat_request = tr_step(
        &mut sit,
        &mut drt,
        &enc(&ServerToDaemon::ChatRequest {
            chat_id: 1,
            from: "bob",
            from_key: bob_pk(),
        }),
    );
    let answer = tr_step(
        &mut drt,
        &mut sit,
        &enc(&DaemonToServer::Answer {
            chat_id: 1,
            answer: Answer::Accept,
        }),
    );

    // Chat 1: bob asked, so bob is the KK initiator and speaks first.
    let mut buf = [0u8; MAX_CHAT_PROLOGUE];
    let prologue = chat_prologue(1, (&bob_pk(), "bob"), (&alice_pk(), "alice"), &mut buf).to_vec();
    let bob_sk = bob();
    let mut bi = hs(
        Pattern::KK,
        true,
        &prologue,
        Some(&bob_sk),
        Some(alice_pk()),
        None,
        RemoteCheck::Exactly(alice_pk()),
        BOB_KK_E,
    );
    let mut ar = hs(
        Pattern::KK,
        false,
        &prologue,
        Some(&alice_sk),
        Some(bob_pk()),
        None,
        RemoteCheck::Exactly(bob_pk()),
        ALICE_KK_E,
    );
    let k1 = hs_step(&mut bi, &mut ar, &[]);
    let k2 = hs_step(&mut ar, &mut bi, &[]);
    let mut bt = bi.into_transport(&limits, now).unwrap();
    let mut at = ar.into_transport(&limits, now).unwrap();
    let kk_hash = *bt.handshake_hash();
    assert_eq!(&kk_hash, at.handshake_hash());
    let text_bob = tr_step(
        &mut bt,
        &mut at,
        &enc(&ChatPayload::Text {
            received: 0,
            text: "hello alice",
        }),
    );
    let text_alice = tr_step(
        &mut at,
        &mut bt,
        &enc(&ChatPayload::Text {
            received: 1,
            text: "hi bob",
        }),
    );
    // Bob leaves: his close says he sent 1 text and received 1.
    let close_bob = tr_step(
        &mut bt,
        &mut at,
        &enc(&ChatPayload::Close {
            sent: 1,
            received: 1,
        }),
    );

    Transcript {
        xx: [m1, m2, m3],
        xx_hash,
        login_ok,
        announce,
        daemon_status,
        nn: [n1, n2],
        nn_hash,
        chat_request,
        answer,
        kk: [k1, k2],
        kk_hash,
        text_alice,
        text_bob,
        close_bob,
    }
}

#[test]
fn xx_login_transcript() {
    let t = transcript();
    pin("XX message 1 (-> e)", &t.xx[0], XX_MSG1);
    pin(
        "XX message 2 (<- e, ee, s, es + ServerHello)",
        &t.xx[1],
        XX_MSG2,
    );
    pin("XX message 3 (-> s, se + ClientHello)", &t.xx[2], XX_MSG3);
    pin("XX handshake hash", &t.xx_hash, XX_HASH);
    pin("LoginOk (server transport #0)", &t.login_ok, XX_LOGIN_OK);
    pin(
        "AnnounceDaemon (client transport #0)",
        &t.announce,
        XX_ANNOUNCE,
    );
    pin(
        "DaemonStatus (server transport #1)",
        &t.daemon_status,
        XX_DAEMON_STATUS,
    );
    assert_eq!(t.xx[0].len(), 32);
    assert_eq!(t.xx[1].len(), 32 + 48 + 2 + 16);
    assert_eq!(t.xx[2].len(), 48 + 7 + 16);
}

#[test]
fn request_channel_transcript() {
    let t = transcript();
    pin("NNpsk0 message 1 (-> psk, e)", &t.nn[0], NN_MSG1);
    pin("NNpsk0 message 2 (<- e, ee)", &t.nn[1], NN_MSG2);
    pin("NNpsk0 handshake hash", &t.nn_hash, NN_HASH);
    pin(
        "ChatRequest (server transport #0)",
        &t.chat_request,
        NN_CHAT_REQUEST,
    );
    pin("Answer (daemon transport #0)", &t.answer, NN_ANSWER);
    assert_eq!((t.nn[0].len(), t.nn[1].len()), (48, 48));
}

#[test]
fn chat_transcript() {
    let t = transcript();
    pin("KK message 1 (-> e, es, ss)", &t.kk[0], KK_MSG1);
    pin("KK message 2 (<- e, ee, se)", &t.kk[1], KK_MSG2);
    pin("KK handshake hash", &t.kk_hash, KK_HASH);
    pin("bob's first text", &t.text_bob, KK_TEXT_BOB);
    pin("alice's first text", &t.text_alice, KK_TEXT_ALICE);
    pin("bob's close", &t.close_bob, KK_CLOSE_BOB);
    assert_eq!((t.kk[0].len(), t.kk[1].len()), (48, 48));
}

/// `docs/PROTOCOL.md` section 13 quotes every pinned transcript value (the
/// document is what an independent implementation is written from).
#[test]
fn protocol_document_quotes_the_pinned_transcript() {
    let doc: String = include_str!("../../docs/PROTOCOL.md")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    for (name, value) in [
        ("XX_MSG1", XX_MSG1),
        ("XX_MSG2", XX_MSG2),
        ("XX_MSG3", XX_MSG3),
        ("XX_HASH", XX_HASH),
        ("XX_LOGIN_OK", XX_LOGIN_OK),
        ("XX_ANNOUNCE", XX_ANNOUNCE),
        ("XX_DAEMON_STATUS", XX_DAEMON_STATUS),
        ("REQUEST_PSK", REQUEST_PSK),
        ("NN_MSG1", NN_MSG1),
        ("NN_MSG2", NN_MSG2),
        ("NN_HASH", NN_HASH),
        ("NN_CHAT_REQUEST", NN_CHAT_REQUEST),
        ("NN_ANSWER", NN_ANSWER),
        ("KK_MSG1", KK_MSG1),
        ("KK_MSG2", KK_MSG2),
        ("KK_HASH", KK_HASH),
        ("KK_TEXT_BOB", KK_TEXT_BOB),
        ("KK_TEXT_ALICE", KK_TEXT_ALICE),
        ("KK_CLOSE_BOB", KK_CLOSE_BOB),
        ("REQUEST_TICKET", REQUEST_TICKET),
    ] {
        let hex: String = value.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        assert!(
            doc.contains(&hex),
            "docs/PROTOCOL.md does not quote {name} = {hex}"
        );
    }
}

/// The ticket of a client-dialled request channel (`DialRequestChannel`
/// with the transcript's secret), computed independently as
/// HMAC-BLAKE2s(key = XX_HASH, "secureCom/1/request-ticket" || secret), and
/// the hello frame that carries it.
#[test]
fn request_ticket_and_hello() {
    use securecom_core::noise::RequestTicket;
    let t = RequestTicket::new(&unhex32(XX_HASH), &seq(DAEMON_SECRET));
    pin("request ticket", t.as_bytes(), REQUEST_TICKET);
    let hello = t.hello();
    pin(
        "request hello frame",
        &hello,
        &format!("0021 01 {REQUEST_TICKET}"),
    );
    let back = RequestTicket::from_hello_payload(&hello[2..]).expect("a hello");
    assert!(back == t);
    // A standard channel's first frame (XX message 1, 32 bytes) is never one.
    assert!(RequestTicket::from_hello_payload(&[0x01; 32]).is_none());
    assert!(RequestTicket::from_hello_payload(&[0x02; 33]).is_none());
}

const REQUEST_TICKET: &str = "8621979a802b563725f040209a3c59ff110a928a07a1aa165f3062e3a9cfe4fe";

/// The request channel's PSK, pinned through the handshake it keys (the
/// `Psk` type does not expose its bytes): `REQUEST_PSK` was computed
/// independently as HMAC-BLAKE2s(key = XX_HASH, "secureCom/1/request-psk" ||
/// secret), and a daemon holding exactly those bytes completes the handshake
/// of a server that derived its PSK with `Psk::for_request_channel`.
#[test]
fn request_psk() {
    let derived = Psk::for_request_channel(&unhex32(XX_HASH), &seq(DAEMON_SECRET));
    let literal = Psk::from_bytes(unhex32(REQUEST_PSK));
    let nn = |psk: &Psk, initiator: bool, e: u8| {
        hs(
            Pattern::NNpsk0,
            initiator,
            REQUEST_PROLOGUE,
            None,
            None,
            Some(psk),
            RemoteCheck::Any,
            e,
        )
    };
    let mut si = nn(&derived, true, SERVER_REQ_E);
    let mut dr = nn(&literal, false, ALICE_REQ_E);
    let n1 = hs_step(&mut si, &mut dr, &[]);
    pin("NNpsk0 message 1 with the literal PSK", &n1, NN_MSG1);

    // Another secret, another PSK: the daemon refuses message 1.
    let other = Psk::for_request_channel(&unhex32(XX_HASH), &seq(0x01));
    let mut si = nn(&other, true, SERVER_REQ_E);
    let mut dr = nn(&literal, false, ALICE_REQ_E);
    let mut wire = [0u8; 64];
    let n = si.write_message(&[], &mut wire).unwrap();
    assert!(dr.read_message(&wire[..n], &mut [0u8; 64]).is_err());
}
const REQUEST_PSK: &str = "1aa133ba085bb4c540c0856c0879bebc27240a07f18467164b3b8d8d301dc637";

/// The pinned transcript is plain Noise: `snow`, an independent
/// implementation, produces the same bytes from the same keys.
#[test]
fn transcript_agrees_with_snow() {
    let t = transcript();
    let run = |name: &str,
               prologue: &[u8],
               i_keys: (Option<[u8; 32]>, Option<[u8; 32]>, [u8; 32]),
               r_keys: (Option<[u8; 32]>, Option<[u8; 32]>, [u8; 32]),
               psk: Option<[u8; 32]>,
               payloads: &[Vec<u8>]|
     -> (Vec<Vec<u8>>, Vec<u8>) {
        let build = |keys: &(Option<[u8; 32]>, Option<[u8; 32]>, [u8; 32]), initiator: bool| {
            let mut b = snow::Builder::new(name.parse().unwrap())
                .prologue(prologue)
                .unwrap()
                .fixed_ephemeral_key_for_testing_only(&keys.2);
            if let Some(k) = &keys.0 {
                b = b.local_private_key(k).unwrap();
            }
            if let Some(k) = &keys.1 {
                b = b.remote_public_key(k).unwrap();
            }
            if let Some(p) = &psk {
                b = b.psk(0, p).unwrap();
            }
            if initiator {
                b.build_initiator().unwrap()
            } else {
                b.build_responder().unwrap()
            }
        };
        let mut i = build(&i_keys, true);
        let mut r = build(&r_keys, false);
        let mut out = Vec::new();
        for (k, p) in payloads.iter().enumerate() {
            let (w, rd) = if k % 2 == 0 {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let mut wire = [0u8; 1024];
            let n = w.write_message(p, &mut wire).unwrap();
            let mut pl = [0u8; 1024];
            rd.read_message(&wire[..n], &mut pl).unwrap();
            out.push(wire[..n].to_vec());
        }
        (out, i.get_handshake_hash().to_vec())
    };

    let hello = enc(&ServerHello {
        version: PROTOCOL_VERSION,
        certificate: None,
    });
    let client_hello = enc(&ClientHello {
        version: PROTOCOL_VERSION,
        user: "alice",
    });
    let (xx, h) = run(
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        b"secureCom/1/standard",
        (Some(unhex32(ALICE_SK)), None, seq(ALICE_XX_E)),
        (Some(seq(SERVER_SK)), None, seq(SERVER_XX_E)),
        None,
        &[vec![], hello, client_hello],
    );
    assert_eq!(xx, t.xx.to_vec());
    assert_eq!(h, t.xx_hash);

    let (nn, h) = run(
        "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s",
        b"secureCom/1/request",
        (None, None, seq(SERVER_REQ_E)),
        (None, None, seq(ALICE_REQ_E)),
        Some(unhex32(REQUEST_PSK)),
        &[vec![], vec![]],
    );
    assert_eq!(nn, t.nn.to_vec());
    assert_eq!(h, t.nn_hash);

    let (kk, h) = run(
        "Noise_KK_25519_ChaChaPoly_BLAKE2s",
        &unhex(CHAT_PROLOGUE_BOB_ASKS),
        (
            Some(unhex32(BOB_SK)),
            Some(unhex32(ALICE_PK)),
            seq(BOB_KK_E),
        ),
        (
            Some(unhex32(ALICE_SK)),
            Some(unhex32(BOB_PK)),
            seq(ALICE_KK_E),
        ),
        None,
        &[vec![], vec![]],
    );
    assert_eq!(kk, t.kk.to_vec());
    assert_eq!(h, t.kk_hash);
}

/// The prologue of chat 1 as bob (the requester) and alice build it.
const CHAT_PROLOGUE_BOB_ASKS: &str =
    "736563757265436f6d2f312f6368617400000001de9edb7d7b7dc1b4d35b61c2\
    ece435373f8343c85b78674dadfc7e146f882b4f03626f628520f0098930a754\
    748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05616c696365";

// ------------------------------------------------------------------ the state machines produce these bytes

/// Hands out scripted bytes as "randomness", so that the real [`Client`] and
/// [`ServerSession`] draw exactly the ephemeral keys and secret above.
struct Script(Vec<u8>);

impl rand_core::RngCore for Script {
    fn next_u32(&mut self) -> u32 {
        panic!("unscripted draw")
    }
    fn next_u64(&mut self) -> u64 {
        panic!("unscripted draw")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(dest.len() <= self.0.len(), "unscripted draw");
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for Script {}

struct OneUser;
impl Registry for OneUser {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        (user == "alice").then(alice_pk)
    }
}

fn framed(noise_hex: &str) -> String {
    let b = unhex(noise_hex);
    format!("{:04x}{}", b.len(), hex(&b))
}

/// Feeds all of `input` to `f` (which returns how many bytes it used).
fn feed_all(input: &[u8], mut f: impl FnMut(&[u8]) -> usize) {
    let mut rest = input;
    while !rest.is_empty() {
        let n = f(rest);
        rest = &rest[n..];
    }
}

#[test]
fn client_and_server_send_the_pinned_login() {
    let now = Instant::ZERO;
    let mut out = [0u8; 4096];
    let config = ClientConfig {
        user: "alice".try_into().unwrap(),
        server_key: server().public_key(),
        daemon_port: Some(DEFAULT_DAEMON_PORT),
        limits: Limits::DEFAULT,
    };
    let mut client_rng = Script(seq(ALICE_XX_E).to_vec());
    let mut client =
        Client::<securecom_core::RustCrypto>::new(config, alice(), now, &mut client_rng).unwrap();
    let mut server_rng = Script(seq(SERVER_XX_E).to_vec());
    let mut session = ServerSession::<securecom_core::RustCrypto>::new(
        &ServerConfig::new(Limits::DEFAULT),
        &server(),
        now,
        &mut server_rng,
    )
    .unwrap();

    // -> e
    let n = client.poll_transmit(&mut out);
    pin("client's first bytes", &out[..n], &framed(XX_MSG1));
    let c2s = out[..n].to_vec();
    feed_all(&c2s, |b| {
        session
            .handle_input(now, b, &OneUser, &mut server_rng)
            .unwrap()
    });
    // <- e, ee, s, es, ServerHello
    let n = session.poll_transmit(&mut out);
    pin("server's first bytes", &out[..n], &framed(XX_MSG2));
    let s2c = out[..n].to_vec();
    feed_all(&s2c, |b| {
        client.handle_input(now, b, &mut client_rng).unwrap()
    });
    // -> s, se, ClientHello
    let n = client.poll_transmit(&mut out);
    pin("client's second bytes", &out[..n], &framed(XX_MSG3));
    let c2s = out[..n].to_vec();
    feed_all(&c2s, |b| {
        session
            .handle_input(now, b, &OneUser, &mut server_rng)
            .unwrap()
    });
    assert!(matches!(
        session.poll_event(),
        Some(ServerEvent::LoggedIn { .. })
    ));
    // <- LoginOk
    let n = session.poll_transmit(&mut out);
    pin("server's LoginOk", &out[..n], &framed(XX_LOGIN_OK));
    let s2c = out[..n].to_vec();
    client_rng = Script(seq(DAEMON_SECRET).to_vec());
    feed_all(&s2c, |b| {
        client.handle_input(now, b, &mut client_rng).unwrap()
    });
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::LoggedIn { .. })
    ));
    // -> AnnounceDaemon
    let n = client.poll_transmit(&mut out);
    pin("client's AnnounceDaemon", &out[..n], &framed(XX_ANNOUNCE));
    let c2s = out[..n].to_vec();
    feed_all(&c2s, |b| {
        session
            .handle_input(now, b, &OneUser, &mut server_rng)
            .unwrap()
    });
    assert_eq!(
        session.poll_event(),
        Some(ServerEvent::DialDaemon {
            port: DEFAULT_DAEMON_PORT
        })
    );

    // The server dials the daemon: NNpsk0.
    let mut server_rng = Script(seq(SERVER_REQ_E).to_vec());
    session
        .request_channel_connected(now, &mut server_rng)
        .unwrap();
    let n = session.poll_request_transmit(&mut out);
    pin(
        "server's first request-channel bytes",
        &out[..n],
        &framed(NN_MSG1),
    );
    let s2d = out[..n].to_vec();
    let mut daemon_rng = Script(seq(ALICE_REQ_E).to_vec());
    let mut link = client.new_request_link(now, &mut daemon_rng).unwrap();
    feed_all(&s2d, |b| {
        client.handle_request_input(&mut link, now, b).unwrap()
    });
    let n = client.poll_request_transmit(&mut link, now, &mut out);
    pin("daemon's first bytes", &out[..n], &framed(NN_MSG2));
    let d2s = out[..n].to_vec();
    feed_all(&d2s, |b| session.handle_request_input(now, b).unwrap());
    // <- DaemonStatus { reachable: true } (server transport #1)
    let n = session.poll_transmit(&mut out);
    pin(
        "server's DaemonStatus",
        &out[..n],
        &framed(XX_DAEMON_STATUS),
    );
    let s2c = out[..n].to_vec();
    feed_all(&s2c, |b| {
        client.handle_input(now, b, &mut client_rng).unwrap()
    });
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::DaemonStatus { reachable: true })
    );
}

// ------------------------------------------------------------------ the pinned transcript

const XX_MSG1: &str = "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254";
const XX_MSG2: &str = "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a\
    6c06dfc4329138d8fcc5c62a8471cb0327cb57854edb89d9f8b71262de2412c4\
    f16cea0ec650994ad2d7907897ea45cd3558fe310c3afc149f68a6d05e4f6ef4\
    a6e2";
const XX_MSG3: &str = "f7d456ceca57ae85729e44930f8dc33e052e9a9acf5679870075bd28cc344add\
    d9aa190e54afea360c8246d7c44c3135767eafa8c5819b66cfec35051d793729\
    19d0dac5fc299a";
const XX_HASH: &str = "ac4fc1faafa3d691339eb3dd756eea2365c4b95772f70e998b7a3738e09e5b3a";
const XX_LOGIN_OK: &str = "670bcd9c91c12f9b5ad284731cc1dbecb894bd352ce189";
const XX_ANNOUNCE: &str = "2f7619a2907152c9527b46b94921d565bb923697f6aa925620eca721d364504b\
    723ec3c11914505a78073844b32f7015f1bc6d";
const XX_DAEMON_STATUS: &str = "d2c35159df3de38e0d463bb4e89ea8a99496";
const NN_MSG1: &str = "675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f\
    c10a2d9be90e7908091f87fb890eb02f";
const NN_MSG2: &str = "493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d\
    644c4b53144dc713a6dcfedc79474ec7";
const NN_HASH: &str = "954d92e1fea3e3069c5c412d108cbc5b0ca0b34b40d93307cddbac88042c4e49";
const NN_CHAT_REQUEST: &str = "8f04dd41d58dd5862ac98251af6ef0b1677bb77c17157ce8e9828d4e36571320\
    8c22ada0a0599f83d948a8b33eb100dd409d2b211bc2";
const NN_ANSWER: &str = "a3c0bbbb554e288c8aa1f6857cb33152b1f320";
const KK_MSG1: &str = "dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44\
    fa59583531520d509a6c3c0b5df75fcb";
const KK_MSG2: &str = "605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c\
    d4c8579d38db6f9a2782c6050c4a58b0";
const KK_HASH: &str = "c2595affc4a33a979f0d6ed135ccee1b08b9282a8a6f1c86af5195848d870593";
const KK_TEXT_BOB: &str = "7dfab28910b52fd3554e3bcd66af41637d76af519b3129a98847feba84e1";
const KK_CLOSE_BOB: &str = "36585532025009b6b64f213bf61be6cb1cfb7c";
const KK_TEXT_ALICE: &str = "8793fa994e8db11229cb02fb97d60b66668661def0d91cfd21";
