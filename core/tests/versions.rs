//! A peer of the previous protocol version (2: the same XX, no post-quantum
//! layer) meets this one (3), either side: each gets a clear error that
//! names both versions, and nothing else happens (`docs/PROTOCOL.md` 12).
//!
//! The version-2 peer is played by hand with the core's own Noise
//! handshake, byte for byte what a version-2 program sends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use securecom_core::frame::{encode_frame, Feed, FrameDecoder};
use securecom_core::keys::{PublicKey, StaticSecret};
use securecom_core::limits::{Limits, MAX_FRAME, MAX_NOISE_MESSAGE};
use securecom_core::message::{decode, encode, ClientHello, LoginError, ServerHello, ServerMsg};
use securecom_core::noise::{Handshake, RemoteCheck};
use securecom_core::time::Instant;
use securecom_core::{
    Client, ClientConfig, Error, ProtocolError, Registry, ServerConfig, ServerEvent, ServerSession,
    PROTOCOL_VERSION,
};

const OLD: u8 = 2;

fn key(b: u8) -> StaticSecret {
    StaticSecret::from_bytes([b; 32])
}

struct Alice;
impl Registry for Alice {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        (user == "alice").then(|| key(1).public_key())
    }
}

/// The frames in `bytes`, in order.
fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut d = FrameDecoder::<MAX_FRAME>::new();
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        match d.feed(rest).unwrap() {
            Feed::Frame { consumed } => {
                out.push(d.frame().unwrap().to_vec());
                rest = &rest[consumed..];
            }
            Feed::NeedMore => panic!("a partial frame"),
        }
    }
    out
}

fn frame(noise: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME];
    let n = encode_frame(noise, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn an_old_client_is_refused_under_the_keys_it_knows_and_the_server_names_both_versions() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let now = Instant::ZERO;
    let server_key = key(9);
    let mut session = ServerSession::<securecom_core::RustCrypto>::new(
        &ServerConfig::new(Limits::DEFAULT),
        &server_key,
        now,
        &mut rng,
    )
    .unwrap();
    // The old client: XX message 1.
    let mut old = Handshake::<securecom_core::RustCrypto>::standard(
        true,
        &key(1),
        RemoteCheck::Exactly(server_key.public_key()),
        &mut rng,
    )
    .unwrap();
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut payload = [0u8; MAX_NOISE_MESSAGE];
    let n = old.write_message(&[], &mut wire).unwrap();
    let m1 = frame(&wire[..n]);
    assert_eq!(
        session.handle_input(now, &m1, &Alice, &mut rng),
        Ok(m1.len())
    );
    // Message 2: the server says 3 (an old client stops here, on its own).
    let mut out = [0u8; 4096];
    let n = session.poll_transmit(&mut out);
    let f = frames(&out[..n]);
    let p = old.read_message(&f[0], &mut payload).unwrap();
    let hello: ServerHello = decode(&payload[..p]).unwrap();
    assert_eq!(hello.version, PROTOCOL_VERSION);
    // One that goes on anyway: message 3 with its version, 2.
    let mut h = [0u8; 64];
    let hn = encode(
        &ClientHello {
            version: OLD,
            user: "alice",
        },
        &mut h,
    )
    .unwrap();
    let n = old.write_message(&h[..hn], &mut wire).unwrap();
    let m3 = frame(&wire[..n]);
    assert_eq!(
        session.handle_input(now, &m3, &Alice, &mut rng),
        Ok(m3.len())
    );
    // The refusal comes under the XX keys, as version 2 expects it.
    let n = session.poll_transmit(&mut out);
    let f = frames(&out[..n]);
    assert_eq!(f.len(), 1, "only the refusal: no post-quantum message");
    let mut t = old.into_transport(&Limits::DEFAULT, now).unwrap();
    let p = t.decrypt(&f[0], &mut payload).unwrap();
    assert_eq!(
        decode::<ServerMsg>(&payload[..p]).unwrap(),
        ServerMsg::LoginRefused {
            reason: LoginError::VersionMismatch
        }
    );
    assert!(session.is_closed());
    let events: Vec<ServerEvent> = std::iter::from_fn(|| session.poll_event()).collect();
    assert_eq!(
        events,
        [
            ServerEvent::Closed,
            ServerEvent::LoginFailed {
                reason: LoginError::VersionMismatch,
                client_version: OLD,
            }
        ]
    );
    assert_eq!(session.user(), None);
}

#[test]
fn a_client_meeting_an_old_server_names_its_version_and_sends_nothing_more() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let now = Instant::ZERO;
    let server_key = key(9);
    let config = ClientConfig {
        user: "alice".try_into().unwrap(),
        server_key: server_key.public_key(),
        daemon_port: None,
        limits: Limits::DEFAULT,
    };
    let mut client =
        Client::<securecom_core::RustCrypto>::new(config, key(1), now, &mut rng).unwrap();
    let mut out = [0u8; 4096];
    let n = client.poll_transmit(&mut out);
    let f = frames(&out[..n]);
    // The old server: XX responder, `ServerHello { version: 2 }`.
    let mut old = Handshake::<securecom_core::RustCrypto>::standard(
        false,
        &server_key,
        RemoteCheck::Any,
        &mut rng,
    )
    .unwrap();
    let mut payload = [0u8; MAX_NOISE_MESSAGE];
    old.read_message(&f[0], &mut payload).unwrap();
    let mut h = [0u8; 16];
    let hn = encode(
        &ServerHello {
            version: OLD,
            certificate: None,
        },
        &mut h,
    )
    .unwrap();
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let n = old.write_message(&h[..hn], &mut wire).unwrap();
    let m2 = frame(&wire[..n]);
    assert_eq!(
        client.handle_input(now, &m2, &mut rng),
        Err(Error::Protocol(ProtocolError::VersionMismatch {
            peer: OLD
        }))
    );
    assert!(client.is_closed());
    // No message 3: the old server learns nothing of the user.
    assert_eq!(client.poll_transmit(&mut out), 0);
}
