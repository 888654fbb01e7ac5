//! Golden bytes: the wire format of secureCom, pinned.
//!
//! In the style of postcard's `tests/loopback.rs`: for every message of every
//! channel and direction, a fixed value, its exact encoding as a hex literal,
//! and the decoding of those bytes back to the value. Then the other bytes a
//! compatible implementation must reproduce: a frame, the request channel's
//! PSK, the chat prologue, fingerprints and safety numbers, and whole
//! transcripts (XX login, its re-key in place, NNpsk0 request channel, KK
//! chat) with fixed keys.
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
use securecom_core::noise::NoInternalRng;
use securecom_core::noise::{
    chat_prologue, Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, Transport,
    MAX_CHAT_PROLOGUE, REQUEST_PROLOGUE, STANDARD_PROLOGUE,
};
use securecom_core::pq::REKEY_PROLOGUE;
use securecom_core::rekey::{Keys, REKEY_MARKER};
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
/// The randomness of each post-quantum layer: the initiator's ML-KEM key
/// seed `d || z` (64 bytes: `seq(a) || seq(b)`) and the responder's
/// encapsulation randomness `m` (`seq(c)`).
const ALICE_XX_KEM: (u8, u8) = (0x08, 0x28);
const SERVER_XX_M: u8 = 0x48;
const SERVER_REQ_KEM: (u8, u8) = (0x68, 0x88);
const ALICE_REQ_M: u8 = 0x98;
const BOB_KK_KEM: (u8, u8) = (0xc8, 0xe8);
const ALICE_KK_M: u8 = 0xa8;
/// The re-key of alice's standard channel (4.10): alice (the initiator)
/// draws her NNpsk0 ephemeral key, then her layer's `d || z`; the server
/// draws its ephemeral key, then its `m`, when it reads step 1.
const ALICE_REKEY_E: u8 = 0x10;
const SERVER_REKEY_E: u8 = 0x30;
const ALICE_REKEY_KEM: (u8, u8) = (0x18, 0x38);
const SERVER_REKEY_M: u8 = 0x58;
/// When alice's client re-keys: her keys are `rekey_after` (120 s) old.
const REKEY_AT: Instant = Instant::from_millis(120_000);

fn kem_seed((d, z): (u8, u8)) -> Vec<u8> {
    [seq(d), seq(z)].concat()
}

/// BLAKE2s-256 of a message too long to quote (the layer's messages).
fn digest(bytes: &[u8]) -> Vec<u8> {
    use clatter::traits::Hash;
    clatter::crypto::hash::Blake2s::hash(bytes)
        .as_slice()
        .to_vec()
}

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
        "0300",
        ServerHello<'_>,
        ServerHello {
            version: 3,
            certificate: None
        }
    );
    golden!(
        "030103c0ffee",
        ServerHello<'_>,
        ServerHello {
            version: 3,
            certificate: Some(&[0xc0, 0xff, 0xee])
        }
    );
}

#[test]
fn client_hello() {
    golden!(
        "0305616c696365",
        ClientHello<'_>,
        ClientHello {
            version: 3,
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
    // The largest frame: 1536 bytes announced as 0x0600; one more is refused.
    let big = [0x5a; 1537];
    let n = encode_frame(&big[..1536], &mut out).unwrap();
    pin("frame header of 1536 bytes", &out[..2], "0600");
    assert_eq!(n, 1538);
    assert!(encode_frame(&big, &mut [0u8; 1540]).is_err());
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

/// The post-quantum layer over two finished outer transports, with the
/// initiator's KEM seed and the responder's encapsulation randomness: its two
/// messages and the session's transports.
fn layer(
    mut i: Transport,
    mut r: Transport,
    seed: Vec<u8>,
    m: Vec<u8>,
) -> ([Vec<u8>; 2], Transport, Transport) {
    use securecom_core::pq::PqLayer;
    let mut li = PqLayer::new(true, &i, &mut Script(seed)).unwrap();
    let mut lr = PqLayer::new(false, &r, &mut Script(m)).unwrap();
    let mut wire = [0u8; 1536];
    let mut out = [0u8; 64];
    let n = li.write_message(&[], &mut i, &mut wire).unwrap();
    let p1 = wire[..n].to_vec();
    assert_eq!(lr.read_message(&mut wire[..n], &mut r, &mut out), Ok(0));
    let n = lr.write_message(&[], &mut r, &mut wire).unwrap();
    let p2 = wire[..n].to_vec();
    assert_eq!(li.read_message(&mut wire[..n], &mut i, &mut out), Ok(0));
    let limits = Limits::default();
    let ti = li.into_transport(i, &limits, Instant::ZERO).unwrap();
    let tr = lr.into_transport(r, &limits, Instant::ZERO).unwrap();
    assert_eq!(ti.handshake_hash(), tr.handshake_hash());
    ([p1, p2], ti, tr)
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
    /// XX's own handshake hash (the outer one, which `snow` reproduces).
    xx_outer_hash: [u8; 32],
    /// The secret XX exports to the layer (`HMAC-BLAKE2s(ck, "secureCom/2/hybrid-psk")`).
    xx_hybrid_psk: [u8; 32],
    /// The post-quantum layer's two messages over XX.
    xx_pq: [Vec<u8>; 2],
    /// The session's handshake hash (the layer's).
    xx_hash: [u8; 32],
    login_ok: Vec<u8>,
    announce: Vec<u8>,
    daemon_status: Vec<u8>,
    /// The re-keying secret of alice's session (`HMAC-BLAKE2s(ck, "secureCom/2/rekey-secret")`).
    rekey_psk: [u8; 32],
    /// The re-key's NNpsk0 messages (the bodies of steps 1 and 2).
    rekey_nn: [Vec<u8>; 2],
    /// The re-key's NNpsk0's own handshake hash.
    rekey_outer_hash: [u8; 32],
    /// The layer's two messages over it (the bodies of steps 3 and 4).
    rekey_pq: [Vec<u8>; 2],
    /// The five re-key messages, as sealed under the old keys.
    rekey: [Vec<u8>; 5],
    /// The session's handshake hash after the re-key (still `h_std`).
    rekeyed_hash: [u8; 32],
    /// The first message each way under the new keys.
    ping: Vec<u8>,
    pong: Vec<u8>,
    /// The re-keying secret of the new keys (for the next re-key).
    rekey_next_psk: [u8; 32],
    nn: [Vec<u8>; 2],
    nn_outer_hash: [u8; 32],
    nn_pq: [Vec<u8>; 2],
    nn_hash: [u8; 32],
    chat_request: Vec<u8>,
    answer: Vec<u8>,
    kk: [Vec<u8>; 2],
    kk_outer_hash: [u8; 32],
    kk_pq: [Vec<u8>; 2],
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
    let ct = c.into_transport(&limits, now).unwrap();
    let st = s.into_transport(&limits, now).unwrap();
    assert_eq!(ct.handshake_hash(), st.handshake_hash());
    let xx_outer_hash = *ct.handshake_hash();
    let xx_hybrid_psk = *ct.hybrid_psk().bytes_for_testing_only();
    assert_eq!(&xx_hybrid_psk, st.hybrid_psk().bytes_for_testing_only());
    let (xx_pq, mut ct, mut st) = layer(ct, st, kem_seed(ALICE_XX_KEM), seq(SERVER_XX_M).to_vec());
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

    // Re-keying in place (4.10): alice re-keys her standard channel.
    let rekey_psk = *ct.rekey_psk().bytes_for_testing_only();
    assert_eq!(&rekey_psk, st.rekey_psk().bytes_for_testing_only());
    // The handshake inside it, step by step: NNpsk0 on the re-keying secret
    // and the layer over it (the bodies of steps 1 to 4).
    let (psk_i, psk_r) = (ct.rekey_psk(), st.rekey_psk());
    let mut ri = hs(
        Pattern::NNpsk0,
        true,
        REKEY_PROLOGUE,
        None,
        None,
        Some(&psk_i),
        RemoteCheck::Any,
        ALICE_REKEY_E,
    );
    let mut rr = hs(
        Pattern::NNpsk0,
        false,
        REKEY_PROLOGUE,
        None,
        None,
        Some(&psk_r),
        RemoteCheck::Any,
        SERVER_REKEY_E,
    );
    let rekey_nn = [
        hs_step(&mut ri, &mut rr, &[]),
        hs_step(&mut rr, &mut ri, &[]),
    ];
    let rit = ri.into_transport(&limits, now).unwrap();
    let rrt = rr.into_transport(&limits, now).unwrap();
    let rekey_outer_hash = *rit.handshake_hash();
    let (rekey_pq, mut new_ct, mut new_st) = layer(
        rit,
        rrt,
        kem_seed(ALICE_REKEY_KEM),
        seq(SERVER_REKEY_M).to_vec(),
    );
    // The same re-key as the sessions run it (`rekey::Keys`), with the same
    // randomness: five transport messages under the old keys, whose
    // plaintexts are `ff || step || body`.
    let r = rekey_in_place(ct, st);
    let bodies: [&[u8]; 5] = [&rekey_nn[0], &rekey_nn[1], &rekey_pq[0], &rekey_pq[1], &[]];
    for (k, body) in bodies.into_iter().enumerate() {
        let step = k as u8 + 1;
        assert_eq!(r.plain[k], [&[REKEY_MARKER, step][..], body].concat());
    }
    // The new keys are the layer's: they seal the same ping and pong.
    assert_eq!(
        tr_step(&mut new_ct, &mut new_st, &enc(&ClientMsg::Ping)),
        r.ping
    );
    assert_eq!(
        tr_step(&mut new_st, &mut new_ct, &enc(&ServerMsg::Pong)),
        r.pong
    );
    let rekey_next_psk = r.next_psk;
    let (rekey, rekeyed_hash, ping, pong) = (r.sealed, r.hash, r.ping, r.pong);

    // Request channel: NNpsk0, the server initiates; both derive the PSK
    // (from the session hash, which the re-key left as it was).
    let psk_server = Psk::for_request_channel(&rekeyed_hash, &seq(DAEMON_SECRET));
    let psk_daemon = Psk::for_request_channel(&rekeyed_hash, &seq(DAEMON_SECRET));
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
    let sit = si.into_transport(&limits, now).unwrap();
    let drt = dr.into_transport(&limits, now).unwrap();
    let nn_outer_hash = *sit.handshake_hash();
    let (nn_pq, mut sit, mut drt) = layer(
        sit,
        drt,
        kem_seed(SERVER_REQ_KEM),
        seq(ALICE_REQ_M).to_vec(),
    );
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
    let bt = bi.into_transport(&limits, now).unwrap();
    let at = ar.into_transport(&limits, now).unwrap();
    let kk_outer_hash = *bt.handshake_hash();
    let (kk_pq, mut bt, mut at) = layer(bt, at, kem_seed(BOB_KK_KEM), seq(ALICE_KK_M).to_vec());
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
        xx_outer_hash,
        xx_hybrid_psk,
        xx_pq,
        xx_hash,
        login_ok,
        announce,
        daemon_status,
        rekey_psk,
        rekey_nn,
        rekey_outer_hash,
        rekey_pq,
        rekey,
        rekeyed_hash,
        ping,
        pong,
        rekey_next_psk,
        nn: [n1, n2],
        nn_outer_hash,
        nn_pq,
        nn_hash,
        chat_request,
        answer,
        kk: [k1, k2],
        kk_outer_hash,
        kk_pq,
        kk_hash,
        text_alice,
        text_bob,
        close_bob,
    }
}

/// What [`rekey_in_place`] saw.
struct Rekeyed {
    sealed: [Vec<u8>; 5],
    plain: [Vec<u8>; 5],
    hash: [u8; 32],
    ping: Vec<u8>,
    pong: Vec<u8>,
    next_psk: [u8; 32],
}

/// Alice's standard channel re-keyed in place by [`Keys`], as `Channel`
/// runs it: alice (the initiator) starts at [`REKEY_AT`]; the server draws
/// its randomness at step 1. Then alice's `Ping` and the server's `Pong`,
/// the first message each way under the new keys.
fn rekey_in_place(alice: Transport, server: Transport) -> Rekeyed {
    let limits = Limits::DEFAULT;
    let now = REKEY_AT;
    let mut a = Keys::new(alice, true);
    let mut s = Keys::new(server, false);
    assert!(a.rekey_due(now, &limits));
    assert!(!a.rekey_due(Instant::from_millis(119_999), &limits));
    let mut alice_rng = Script([&seq(ALICE_REKEY_E)[..], &kem_seed(ALICE_REKEY_KEM)].concat());
    a.start(now, &mut alice_rng).unwrap();
    assert!(
        alice_rng.0.is_empty(),
        "alice draws all her randomness at the start"
    );
    let mut server_rng = Script([seq(SERVER_REKEY_E), seq(SERVER_REKEY_M)].concat());
    let mut sealed: [Vec<u8>; 5] = Default::default();
    let mut plain: [Vec<u8>; 5] = Default::default();
    for k in 0..5 {
        let (from, to) = if k % 2 == 0 {
            (&mut a, &mut s)
        } else {
            (&mut s, &mut a)
        };
        let mut wire = [0u8; 2048];
        let n = from.write_rekey(now, &limits, &mut wire).unwrap().unwrap();
        sealed[k] = wire[..n].to_vec();
        let mut out = [0u8; 2048];
        let m = to.decrypt(&wire[..n], &mut out).unwrap();
        plain[k] = out[..m].to_vec();
        // Empty after step 1: any later draw (by either side) would panic.
        to.read_rekey(&mut out[..m], now, &limits, &mut server_rng)
            .unwrap();
        if k == 0 {
            assert!(server_rng.0.is_empty(), "the server draws at step 1");
        }
    }
    assert!(!a.is_rekeying() && !s.is_rekeying());
    assert_eq!((a.rekeys(), s.rekeys()), (1, 1));
    assert_eq!(a.handshake_hash(), s.handshake_hash());
    let step = |from: &mut Keys, to: &mut Keys, msg: &[u8]| {
        let mut wire = [0u8; 64];
        let n = from.encrypt(msg, &mut wire).unwrap();
        let mut out = [0u8; 64];
        let m = to.decrypt(&wire[..n], &mut out).unwrap();
        assert_eq!(&out[..m], msg);
        wire[..n].to_vec()
    };
    let ping = step(&mut a, &mut s, &enc(&ClientMsg::Ping));
    let pong = step(&mut s, &mut a, &enc(&ServerMsg::Pong));
    // The next re-key's PSK: from the new keys' handshake (the re-key's layer).
    let next_psk = *a.sending().rekey_psk().bytes_for_testing_only();
    assert_eq!(&next_psk, s.sending().rekey_psk().bytes_for_testing_only());
    Rekeyed {
        sealed,
        plain,
        hash: *a.handshake_hash(),
        ping,
        pong,
        next_psk,
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
    pin("XX's own handshake hash", &t.xx_outer_hash, XX_OUTER_HASH);
    pin("XX's exported hybrid PSK", &t.xx_hybrid_psk, XX_HYBRID_PSK);
    pin(
        "layer message 1 (-> e), BLAKE2s",
        &digest(&t.xx_pq[0]),
        XX_PQ1_DIGEST,
    );
    pin(
        "layer message 2 (<- ekem, psk), BLAKE2s",
        &digest(&t.xx_pq[1]),
        XX_PQ2_DIGEST,
    );
    pin(
        "layer message 1, first bytes",
        &t.xx_pq[0][..32],
        XX_PQ1_HEAD,
    );
    pin("session handshake hash", &t.xx_hash, XX_HASH);
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
    assert_eq!(t.xx_pq[0].len(), 1184 + 16 + 16);
    assert_eq!(t.xx_pq[1].len(), 1088 + 16 + 16);
}

/// Alice re-keys her standard channel (4.10) after `LoginOk` (server #0),
/// `AnnounceDaemon` (alice #0) and `DaemonStatus` (server #1): steps 1, 3
/// and 5 are alice's transport messages #1, #2, #3 under the old keys, steps
/// 2 and 4 the server's #2, #3; then `Ping` and `Pong`, each side's #0
/// under the new keys. The session hash stays `h_std`.
#[test]
fn standard_channel_rekey_transcript() {
    let t = transcript();
    pin("the re-keying secret", &t.rekey_psk, REKEY_PSK);
    pin(
        "re-key NNpsk0 message 1 (step 1's body)",
        &t.rekey_nn[0],
        REKEY_NN_MSG1,
    );
    pin(
        "re-key NNpsk0 message 2 (step 2's body)",
        &t.rekey_nn[1],
        REKEY_NN_MSG2,
    );
    pin(
        "re-key NNpsk0's own handshake hash",
        &t.rekey_outer_hash,
        REKEY_OUTER_HASH,
    );
    pin(
        "re-key layer message 1 (step 3's body), BLAKE2s",
        &digest(&t.rekey_pq[0]),
        REKEY_PQ1_DIGEST,
    );
    pin(
        "re-key layer message 2 (step 4's body), BLAKE2s",
        &digest(&t.rekey_pq[1]),
        REKEY_PQ2_DIGEST,
    );
    pin("re-key step 1 (alice #1)", &t.rekey[0], REKEY_1);
    pin("re-key step 2 (server #2)", &t.rekey[1], REKEY_2);
    pin(
        "re-key step 3 (alice #2), BLAKE2s",
        &digest(&t.rekey[2]),
        REKEY_3_DIGEST,
    );
    pin(
        "re-key step 4 (server #3), BLAKE2s",
        &digest(&t.rekey[3]),
        REKEY_4_DIGEST,
    );
    pin("re-key step 5 (alice #3)", &t.rekey[4], REKEY_5);
    pin("Ping (alice #0, new keys)", &t.ping, REKEY_PING);
    pin("Pong (server #0, new keys)", &t.pong, REKEY_PONG);
    pin("session hash after the re-key", &t.rekeyed_hash, XX_HASH);
    pin(
        "the next re-key's secret",
        &t.rekey_next_psk,
        REKEY_NEXT_PSK,
    );
    let lens: Vec<usize> = t.rekey.iter().map(Vec::len).collect();
    assert_eq!(lens, [66, 66, 1234, 1138, 18]);
    assert_eq!((t.rekey_nn[0].len(), t.rekey_nn[1].len()), (48, 48));
}

#[test]
fn request_channel_transcript() {
    let t = transcript();
    pin("NNpsk0 message 1 (-> psk, e)", &t.nn[0], NN_MSG1);
    pin("NNpsk0 message 2 (<- e, ee)", &t.nn[1], NN_MSG2);
    pin(
        "NNpsk0's own handshake hash",
        &t.nn_outer_hash,
        NN_OUTER_HASH,
    );
    pin(
        "layer message 1, BLAKE2s",
        &digest(&t.nn_pq[0]),
        NN_PQ1_DIGEST,
    );
    pin(
        "layer message 2, BLAKE2s",
        &digest(&t.nn_pq[1]),
        NN_PQ2_DIGEST,
    );
    pin("session handshake hash", &t.nn_hash, NN_HASH);
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
    pin("KK's own handshake hash", &t.kk_outer_hash, KK_OUTER_HASH);
    pin(
        "layer message 1, BLAKE2s",
        &digest(&t.kk_pq[0]),
        KK_PQ1_DIGEST,
    );
    pin(
        "layer message 2, BLAKE2s",
        &digest(&t.kk_pq[1]),
        KK_PQ2_DIGEST,
    );
    pin("session handshake hash", &t.kk_hash, KK_HASH);
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
        ("XX_OUTER_HASH", XX_OUTER_HASH),
        ("XX_HYBRID_PSK", XX_HYBRID_PSK),
        ("XX_PQ1_DIGEST", XX_PQ1_DIGEST),
        ("XX_PQ1_HEAD", XX_PQ1_HEAD),
        ("XX_PQ2_DIGEST", XX_PQ2_DIGEST),
        ("XX_HASH", XX_HASH),
        ("XX_LOGIN_OK", XX_LOGIN_OK),
        ("XX_ANNOUNCE", XX_ANNOUNCE),
        ("XX_DAEMON_STATUS", XX_DAEMON_STATUS),
        ("REQUEST_PSK", REQUEST_PSK),
        ("NN_MSG1", NN_MSG1),
        ("NN_MSG2", NN_MSG2),
        ("NN_OUTER_HASH", NN_OUTER_HASH),
        ("NN_PQ1_DIGEST", NN_PQ1_DIGEST),
        ("NN_PQ2_DIGEST", NN_PQ2_DIGEST),
        ("NN_HASH", NN_HASH),
        ("NN_CHAT_REQUEST", NN_CHAT_REQUEST),
        ("NN_ANSWER", NN_ANSWER),
        ("KK_MSG1", KK_MSG1),
        ("KK_MSG2", KK_MSG2),
        ("KK_OUTER_HASH", KK_OUTER_HASH),
        ("KK_PQ1_DIGEST", KK_PQ1_DIGEST),
        ("KK_PQ2_DIGEST", KK_PQ2_DIGEST),
        ("KK_HASH", KK_HASH),
        ("KK_TEXT_BOB", KK_TEXT_BOB),
        ("KK_TEXT_ALICE", KK_TEXT_ALICE),
        ("KK_CLOSE_BOB", KK_CLOSE_BOB),
        ("REQUEST_TICKET", REQUEST_TICKET),
        ("REKEY_PSK", REKEY_PSK),
        ("REKEY_NN_MSG1", REKEY_NN_MSG1),
        ("REKEY_NN_MSG2", REKEY_NN_MSG2),
        ("REKEY_OUTER_HASH", REKEY_OUTER_HASH),
        ("REKEY_PQ1_DIGEST", REKEY_PQ1_DIGEST),
        ("REKEY_PQ2_DIGEST", REKEY_PQ2_DIGEST),
        ("REKEY_1", REKEY_1),
        ("REKEY_2", REKEY_2),
        ("REKEY_3_DIGEST", REKEY_3_DIGEST),
        ("REKEY_4_DIGEST", REKEY_4_DIGEST),
        ("REKEY_5", REKEY_5),
        ("REKEY_PING", REKEY_PING),
        ("REKEY_PONG", REKEY_PONG),
        ("REKEY_NEXT_PSK", REKEY_NEXT_PSK),
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

const REQUEST_TICKET: &str = "75a5989509cf323d5b37cf7d9a1027c31237f7ddd2b5255122bf0a0c9e74ca84";

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
const REQUEST_PSK: &str = "2d079a8897d1b208402dfacd5006bd645470804979536ac5d07bec50f7796b6b";

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
    assert_eq!(h, t.xx_outer_hash);

    let (nn, h) = run(
        "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s",
        b"secureCom/1/request",
        (None, None, seq(SERVER_REQ_E)),
        (None, None, seq(ALICE_REQ_E)),
        Some(unhex32(REQUEST_PSK)),
        &[vec![], vec![]],
    );
    assert_eq!(nn, t.nn.to_vec());
    assert_eq!(h, t.nn_outer_hash);

    // The re-key's NNpsk0 (4.10): its PSK is the session's re-keying secret.
    let (nn, h) = run(
        "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s",
        b"secureCom/2/rekey",
        (None, None, seq(ALICE_REKEY_E)),
        (None, None, seq(SERVER_REKEY_E)),
        Some(unhex32(REKEY_PSK)),
        &[vec![], vec![]],
    );
    assert_eq!(nn, t.rekey_nn.to_vec());
    assert_eq!(h, t.rekey_outer_hash);

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
    assert_eq!(h, t.kk_outer_hash);
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

/// `bytes` as one frame.
fn frame_of(bytes: &[u8]) -> Vec<u8> {
    [&(bytes.len() as u16).to_be_bytes()[..], bytes].concat()
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
    pinned_login();
}

type RealClient = Client<securecom_core::RustCrypto>;
type RealSession = ServerSession<securecom_core::RustCrypto>;

/// The real [`Client`] and [`ServerSession`] run the pinned login (XX, the
/// layer, `LoginOk`, `AnnounceDaemon`, the request channel, `DaemonStatus`)
/// at time zero, checking every byte; returns them logged in.
fn pinned_login() -> (RealClient, RealSession) {
    let now = Instant::ZERO;
    let mut out = [0u8; 4096];
    let config = ClientConfig {
        user: "alice".try_into().unwrap(),
        server_key: server().public_key(),
        daemon_port: Some(DEFAULT_DAEMON_PORT),
        limits: Limits::DEFAULT,
    };
    let t = transcript();
    let mut client_rng = Script([&seq(ALICE_XX_E)[..], &kem_seed(ALICE_XX_KEM)].concat());
    let mut client =
        Client::<securecom_core::RustCrypto>::new(config, alice(), now, &mut client_rng).unwrap();
    let mut server_rng = Script([seq(SERVER_XX_E), seq(SERVER_XX_M)].concat());
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
    // -> s, se, ClientHello; the layer's -> e
    let n = client.poll_transmit(&mut out);
    assert_eq!(
        out[..n],
        [unhex(&framed(XX_MSG3)), frame_of(&t.xx_pq[0])].concat(),
        "client's second bytes"
    );
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
    // <- the layer's ekem, psk; LoginOk
    let n = session.poll_transmit(&mut out);
    assert_eq!(
        out[..n],
        [frame_of(&t.xx_pq[1]), unhex(&framed(XX_LOGIN_OK))].concat(),
        "server's second bytes"
    );
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
    let mut server_rng = Script([&seq(SERVER_REQ_E)[..], &kem_seed(SERVER_REQ_KEM)].concat());
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
    let mut daemon_rng = Script([seq(ALICE_REQ_E), seq(ALICE_REQ_M)].concat());
    let mut link = client.new_request_link(now, &mut daemon_rng).unwrap();
    feed_all(&s2d, |b| {
        client
            .handle_request_input(&mut link, now, b, &mut NoInternalRng)
            .unwrap()
    });
    let n = client.poll_request_transmit(&mut link, now, &mut out);
    pin("daemon's first bytes", &out[..n], &framed(NN_MSG2));
    let d2s = out[..n].to_vec();
    feed_all(&d2s, |b| {
        session
            .handle_request_input(now, b, &mut NoInternalRng)
            .unwrap()
    });
    // The layer: the server's -> e, the daemon's <- ekem, psk.
    let n = session.poll_request_transmit(&mut out);
    assert_eq!(out[..n], frame_of(&t.nn_pq[0]), "server's layer message");
    let s2d = out[..n].to_vec();
    feed_all(&s2d, |b| {
        client
            .handle_request_input(&mut link, now, b, &mut NoInternalRng)
            .unwrap()
    });
    let n = client.poll_request_transmit(&mut link, now, &mut out);
    assert_eq!(out[..n], frame_of(&t.nn_pq[1]), "daemon's layer message");
    let d2s = out[..n].to_vec();
    feed_all(&d2s, |b| {
        session
            .handle_request_input(now, b, &mut NoInternalRng)
            .unwrap()
    });
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
    (client, session)
}

/// The real [`Client`] re-keys the standard channel when its keys are 120 s
/// old (`handle_timeout`), the real [`ServerSession`] answers: exactly the
/// pinned re-key messages, each one frame; then, 25 s later, alice's
/// keep-alive `Ping` and the server's `Pong` under the new keys.
#[test]
fn client_and_server_send_the_pinned_rekey() {
    let (mut client, mut session) = pinned_login();
    let t = transcript();
    let mut out = [0u8; 4096];
    let now = REKEY_AT;
    let mut alice_rng = Script([&seq(ALICE_REKEY_E)[..], &kem_seed(ALICE_REKEY_KEM)].concat());
    let mut server_rng = Script([seq(SERVER_REKEY_E), seq(SERVER_REKEY_M)].concat());
    client.handle_timeout(now, &mut alice_rng).unwrap();
    assert!(
        alice_rng.0.is_empty(),
        "alice draws all her randomness at step 1"
    );
    for (k, sealed) in t.rekey.iter().enumerate() {
        if k % 2 == 0 {
            let n = client.poll_transmit(&mut out);
            assert_eq!(
                hex(&out[..n]),
                hex(&frame_of(sealed)),
                "alice's re-key step {}",
                k + 1
            );
            let c2s = out[..n].to_vec();
            feed_all(&c2s, |b| {
                session
                    .handle_input(now, b, &OneUser, &mut server_rng)
                    .unwrap()
            });
        } else {
            let n = session.poll_transmit(&mut out);
            assert_eq!(
                hex(&out[..n]),
                hex(&frame_of(sealed)),
                "the server's re-key step {}",
                k + 1
            );
            let s2c = out[..n].to_vec();
            feed_all(&s2c, |b| {
                client.handle_input(now, b, &mut NoInternalRng).unwrap()
            });
        }
        assert!(server_rng.0.is_empty(), "the server draws at step 1");
        assert_eq!(client.poll_event(), None);
        assert_eq!(session.poll_event(), None);
    }
    assert_eq!(client.poll_transmit(&mut out), 0);
    assert_eq!(session.poll_transmit(&mut out), 0);
    assert_eq!(client.rekeys(), 1);
    assert_eq!(session.rekeys(), (1, 0));

    // The keep-alive, due 25 s after alice's last message (step 5).
    let now = REKEY_AT.add(Limits::DEFAULT.keepalive_interval());
    client.handle_timeout(now, &mut NoInternalRng).unwrap();
    let n = client.poll_transmit(&mut out);
    pin(
        "alice's Ping under the new keys",
        &out[..n],
        &framed(REKEY_PING),
    );
    let c2s = out[..n].to_vec();
    feed_all(&c2s, |b| {
        session
            .handle_input(now, b, &OneUser, &mut NoInternalRng)
            .unwrap()
    });
    let n = session.poll_transmit(&mut out);
    pin(
        "the server's Pong under the new keys",
        &out[..n],
        &framed(REKEY_PONG),
    );
    let s2c = out[..n].to_vec();
    feed_all(&s2c, |b| {
        client.handle_input(now, b, &mut NoInternalRng).unwrap()
    });
    assert_eq!(client.poll_event(), None);
    assert!(!client.is_closed() && !session.is_closed());
}

// ------------------------------------------------------------------ the pinned transcript

const XX_MSG1: &str = "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254";
const XX_MSG2: &str = "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a\
    6c06dfc4329138d8fcc5c62a8471cb0327cb57854edb89d9f8b71262de2412c4\
    f16cea0ec650994ad2d7907897ea45cd34584a644ad671efa4e15b570f1d512b\
    e2ae";
const XX_MSG3: &str = "f7d456ceca57ae85729e44930f8dc33e052e9a9acf5679870075bd28cc344add\
    4d05a336a3d449d0997b37e2bddc1621777eafa8c5819bede6f0e87da1acd1a7\
    97e188019fc6f7";
const XX_OUTER_HASH: &str = "3f296bce7cb6096e82e2f3ed75f5bdb15473ee943baed9e9a27e7bb2529e5e3e";
const XX_HYBRID_PSK: &str = "bef44ee6762620034d1242920c79c70a4b3cfb50e0cc9323dc3fe4edc0c6cc76";
const XX_PQ1_DIGEST: &str = "97ddf2485f76f2b39af92645e9ca11e0b6a29a792739e96439b757c4668eea1e";
const XX_PQ1_HEAD: &str = "fc149f23d6567bd1dd8c5599e1b2f26fb1b05903622328d2f46992557d34aed6";
const XX_PQ2_DIGEST: &str = "1d91bb9d0b6f2d396e3532ea4d545d35d22999dcc1475fde8ff004c69a2a93c9";
const XX_HASH: &str = "e7209fa0bd11cf014745204de4ff77f69aad1389ee4cc96a9c45adbde9537fac";
const XX_LOGIN_OK: &str = "d316a3b42a32b253ecad28a396774353786ad05fe53d26";
const XX_ANNOUNCE: &str = "e12037ff2ad06d07b2e78be567b7a98434ed2e50ab9d20936be512e2b839ced2\
    eb333db8716dfaa8a91fd0b8f27d1d438e7b4c";
const XX_DAEMON_STATUS: &str = "aa5ca86b5c78d83ac6de54358bfb8df0d6c1";
const REKEY_PSK: &str = "fea369cfc54cded85ec7aaf98a91a6504442b709ba0d9dde7a46064a6c788b5d";
const REKEY_NN_MSG1: &str = "d89e3bad79437dbed9f843418304f460ff05c7fe81fe4a9577a804cb9367ff662e84f7170029d6ddf114a0674a36c81d";
const REKEY_NN_MSG2: &str = "34e42d4af5ef94a07a3a84201b889d4cd1a743cb27b11b6a10438a8feb8e5847084ef841a06afbcfea7254f91952f33c";
const REKEY_OUTER_HASH: &str = "7454cf1326c7b4134b65f72cc79ff77f8358e193c36912b0adcf8b24c09b1401";
const REKEY_PQ1_DIGEST: &str = "3136debde1c0c72b6a4e2d18e09244bb8f466c3cf706897aae5561ab59aab6d6";
const REKEY_PQ2_DIGEST: &str = "846c5724a4bb7235e02fe8c70149e42743bed79793f0dbeb2bf7fad6ed910a37";
const REKEY_1: &str = "b52f9fbb8905dda0902e93d5e27b9e5873a0d25bea1c580d9c1bf9d69a29e63b3fd9cc2a803e30c53e2375a6f186ff55cb338577e43cd85e6a589273250a96942379";
const REKEY_2: &str = "df3cc021192cf48699cedfe81ce3d1f7dff3f01fb9690c5d3bcd66c06818121ee61917b52ac7a634ef825ee6cda413dfdd08aa8fde7f99ef43cd2ea9d0c999d7cd17";
const REKEY_3_DIGEST: &str = "be148e06658ec831b0231e27fbce4f3d375333268b411d8724b807a21af9db3a";
const REKEY_4_DIGEST: &str = "e74477c6ce22c96334c5eeeaf01b75eda2b6b40d79ae9bfba83212944395109e";
const REKEY_5: &str = "366c68c01ed74ffc39b12353bb007c3023f0";
const REKEY_NEXT_PSK: &str = "f634c12a63585add70249155c8ca42945cc0d00622d5e8c38676a2eb203a9c83";
const REKEY_PING: &str = "bbda00d638c0647aabd3f6e36085ab7837";
const REKEY_PONG: &str = "14b7bd7e69e1ce2ccb71865c6144de4c5e";
const NN_MSG1: &str = "675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f\
    aa5897bed495e78efd902ca9af7c8320";
const NN_MSG2: &str = "493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d\
    615aacfb3cb3ac29533a120117cf50cb";
const NN_OUTER_HASH: &str = "1e55c67e3a88d4d6acd3bb6181559042c678c3e7d9ad3b97983f05dd82e6875c";
const NN_PQ1_DIGEST: &str = "69976626619e56544d7b14e64c0712adbe450e89c7989decb7a54300506b2700";
const NN_PQ2_DIGEST: &str = "e8c4a7f1f82b71dceb4daaa638bb731b2b6141c66a4960c44106628b8a9b6696";
const NN_HASH: &str = "7eb888aa729240380b5bc8ed781ba1f0460d41d9c71549397d59723127dc57d5";
const NN_CHAT_REQUEST: &str = "f61851473c0c64eac20568dbb19d69b577b44baf20829f02de81572a6144558b\
    c55fc2709f7e5c3e3e90f89fa258b3648d301e3e384d";
const NN_ANSWER: &str = "3638375f8eb85c6e89addf3914ee47a9a794b4";
const KK_MSG1: &str = "dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44\
    fa59583531520d509a6c3c0b5df75fcb";
const KK_MSG2: &str = "605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c\
    d4c8579d38db6f9a2782c6050c4a58b0";
const KK_OUTER_HASH: &str = "c2595affc4a33a979f0d6ed135ccee1b08b9282a8a6f1c86af5195848d870593";
const KK_PQ1_DIGEST: &str = "28cbb46f87f5c6f052d4e9f94530b5fda61868dfc418f615a70794c8a585b7a5";
const KK_PQ2_DIGEST: &str = "b9612b0da9dd3ee1488fb06980a6f903191f3d591a9f352045ec9cc3c3a80a05";
const KK_HASH: &str = "fe1bfb5df9b3af2aa8804e8d8dfe404f7a95122c4bfd78a648eac94128a74423";
const KK_TEXT_BOB: &str = "a8f096ca5f8533214fe7174adf54d71c70b7b2952835699db9cd1dfe9b23";
const KK_CLOSE_BOB: &str = "b49a6f36f808c2b0aa63a4c6086a5b84cae5e2";
const KK_TEXT_ALICE: &str = "53dac3fad97d3358e5c5378b4cdac15c64b64f337988a5bc6b";
