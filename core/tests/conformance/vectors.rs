//! The official Noise test vectors (cacophony and snow, suite
//! `25519_ChaChaPoly_BLAKE2s`) run through *our* wrapper,
//! `securecom_core::noise`, not through clatter directly, on the crypto
//! provider `super::Provider` of the crate that includes this module (the
//! core's tests: RustCrypto; securecom-host's: aws-lc-rs).
//!
//! For every vector of XX, NNpsk0 and KK, both roles are ours: the sender's
//! handshake and transport ciphertexts must equal the vector byte for byte,
//! and the receiver, fed the vector's bytes (not the sender's), must recover
//! the vector's payloads. The handshake hash is checked where the vector has
//! one (the cacophony vectors), and always checked to be equal on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::Provider as P;
use securecom_core::noise::{Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, Transport};
use securecom_core::{Instant, Limits, PublicKey, StaticSecret, MAX_NOISE_MESSAGE};
use serde_json::Value;

const PATTERNS: [Pattern; 3] = [Pattern::XX, Pattern::NNpsk0, Pattern::KK];

fn vectors() -> Vec<Value> {
    // Relative to this file, so that every crate that includes it finds it.
    let text = include_str!("../vectors/noise-25519-chachapoly-blake2s.json");
    let json: Value = serde_json::from_str(text).expect("vector file is JSON");
    json["vectors"].as_array().expect("`vectors` array").clone()
}

fn bytes(v: &Value, field: &str) -> Option<Vec<u8>> {
    v.get(field)
        .map(|s| hex::decode(s.as_str().expect("hex string")).expect("valid hex"))
}

fn key32(v: &Value, field: &str) -> Option<[u8; 32]> {
    bytes(v, field).map(|b| b.try_into().expect("32-byte key"))
}

/// The first PSK of `init_psks`/`resp_psks`, if any (NNpsk0 has exactly one).
fn psk(v: &Value, field: &str) -> Option<Psk> {
    let list = v.get(field)?.as_array().expect("psk list");
    assert!(list.len() <= 1, "our patterns take at most one PSK");
    list.first().map(|p| {
        let b = hex::decode(p.as_str().expect("hex")).expect("hex");
        Psk::from_bytes(b.try_into().expect("32-byte psk"))
    })
}

/// One side of a vector, built through our public API.
fn party(v: &Value, pattern: Pattern, initiator: bool) -> Handshake<P> {
    let side = if initiator { "init" } else { "resp" };
    let prologue = bytes(v, &format!("{side}_prologue")).unwrap_or_default();
    let local = key32(v, &format!("{side}_static")).map(StaticSecret::from_bytes);
    let remote = key32(v, &format!("{side}_remote_static")).map(PublicKey);
    let psk = psk(v, &format!("{side}_psks"));
    let ephemeral = StaticSecret::from_bytes(
        key32(v, &format!("{side}_ephemeral")).expect("every vector has ephemerals"),
    );
    let params = HandshakeParams {
        pattern,
        initiator,
        prologue: &prologue,
        local_static: local.as_ref(),
        remote_static: remote,
        psk: psk.as_ref(),
        check: RemoteCheck::Any,
    };
    Handshake::<P>::new_with_fixed_ephemeral_for_testing_only(params, &ephemeral)
        .unwrap_or_else(|e| panic!("{side} handshake setup: {e:?}"))
}

/// Runs one vector through both of our roles; returns the number of messages checked.
fn run(v: &Value, pattern: Pattern) -> usize {
    let name = pattern.protocol_name();
    let source = v["source"].as_str().unwrap_or("?");
    let messages = v["messages"].as_array().expect("messages");
    assert!(
        messages.len() >= pattern.messages(),
        "{name} ({source}): short vector"
    );

    let mut init = party(v, pattern, true);
    let mut resp = party(v, pattern, false);
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];

    // Handshake<P>: messages alternate, the initiator first.
    for (i, m) in messages.iter().take(pattern.messages()).enumerate() {
        let payload = bytes(m, "payload").expect("payload");
        let ciphertext = bytes(m, "ciphertext").expect("ciphertext");
        let (writer, reader) = if i % 2 == 0 {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        assert!(
            writer.is_write_turn() && !reader.is_write_turn(),
            "{name} msg {i}: turn"
        );
        let n = writer
            .write_message(&payload, &mut wire)
            .unwrap_or_else(|e| panic!("{name} ({source}) write msg {i}: {e:?}"));
        assert_eq!(
            hex::encode(&wire[..n]),
            hex::encode(&ciphertext),
            "{name} ({source}): handshake message {i} differs"
        );
        // The reader gets the vector's bytes, so each role is checked on its own.
        let n = reader
            .read_message(&ciphertext, &mut plain)
            .unwrap_or_else(|e| panic!("{name} ({source}) read msg {i}: {e:?}"));
        assert_eq!(&plain[..n], &payload[..], "{name} ({source}): payload {i}");
    }
    assert!(
        init.is_finished() && resp.is_finished(),
        "{name}: not finished"
    );

    // The static keys each side learned (or was given) are the peer's.
    let init_static_pub = key32(v, "init_static").map(|k| StaticSecret::from_bytes(k).public_key());
    let resp_static_pub = key32(v, "resp_static").map(|k| StaticSecret::from_bytes(k).public_key());
    assert_eq!(
        init.remote_static(),
        resp_static_pub,
        "{name}: initiator's rs"
    );
    assert_eq!(
        resp.remote_static(),
        init_static_pub,
        "{name}: responder's rs"
    );

    let mut init = init
        .into_transport(&Limits::DEFAULT, Instant::ZERO)
        .expect("initiator transport");
    let mut resp = resp
        .into_transport(&Limits::DEFAULT, Instant::ZERO)
        .expect("responder transport");
    assert_eq!(
        init.handshake_hash(),
        resp.handshake_hash(),
        "{name}: hashes differ"
    );
    if let Some(h) = bytes(v, "handshake_hash") {
        assert_eq!(
            hex::encode(init.handshake_hash()),
            hex::encode(&h),
            "{name} ({source}): handshake hash"
        );
    }

    // Transport<P>: the alternation goes on from where the handshake stopped.
    for (i, m) in messages.iter().enumerate().skip(pattern.messages()) {
        let payload = bytes(m, "payload").expect("payload");
        let ciphertext = bytes(m, "ciphertext").expect("ciphertext");
        let (writer, reader): (&mut Transport<P>, &mut Transport<P>) = if i % 2 == 0 {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let n = writer
            .encrypt(&payload, &mut wire)
            .unwrap_or_else(|e| panic!("{name} ({source}) encrypt msg {i}: {e:?}"));
        assert_eq!(
            hex::encode(&wire[..n]),
            hex::encode(&ciphertext),
            "{name} ({source}): transport message {i} differs"
        );
        let n = reader
            .decrypt(&ciphertext, &mut plain)
            .unwrap_or_else(|e| panic!("{name} ({source}) decrypt msg {i}: {e:?}"));
        assert_eq!(
            &plain[..n],
            &payload[..],
            "{name} ({source}): transport payload {i}"
        );
    }
    messages.len()
}

#[test]
fn official_vectors_through_our_wrapper() {
    let all = vectors();
    let mut counts = [0usize; 3];
    let mut messages = [0usize; 3];
    for v in &all {
        let name = v["protocol_name"].as_str().expect("protocol_name");
        if let Some(k) = PATTERNS.iter().position(|p| p.protocol_name() == name) {
            messages[k] += run(v, PATTERNS[k]);
            counts[k] += 1;
        }
    }
    for (k, p) in PATTERNS.iter().enumerate() {
        println!(
            "{}: {} vectors, {} messages checked in both roles",
            p.protocol_name(),
            counts[k],
            messages[k]
        );
        assert!(counts[k] > 0, "no vector for {}", p.protocol_name());
    }
    println!("({} vectors in the file)", all.len());
}

/// The vectors must fail when something is off: a changed byte in any
/// authenticated handshake message is rejected by the reader.
#[test]
fn vector_with_a_changed_byte_is_rejected() {
    let all = vectors();
    let mut checked = 0;
    for v in &all {
        let name = v["protocol_name"].as_str().expect("protocol_name");
        let Some(pattern) = PATTERNS.iter().copied().find(|p| p.protocol_name() == name) else {
            continue;
        };
        let messages = v["messages"].as_array().expect("messages");
        // The last handshake message is always authenticated in our patterns.
        let last = pattern.messages() - 1;
        let mut init = party(v, pattern, true);
        let mut resp = party(v, pattern, false);
        let mut out = [0u8; MAX_NOISE_MESSAGE];
        for (i, m) in messages.iter().take(pattern.messages()).enumerate() {
            let payload = bytes(m, "payload").expect("payload");
            let mut ciphertext = bytes(m, "ciphertext").expect("ciphertext");
            let (writer, reader) = if i % 2 == 0 {
                (&mut init, &mut resp)
            } else {
                (&mut resp, &mut init)
            };
            writer.write_message(&payload, &mut out).expect("write");
            if i == last {
                let mid = ciphertext.len() / 2;
                ciphertext[mid] ^= 0x01;
                assert!(
                    reader.read_message(&ciphertext, &mut out).is_err(),
                    "{name}"
                );
                checked += 1;
            } else {
                reader
                    .read_message(&ciphertext, &mut out)
                    .expect("untouched");
            }
        }
    }
    assert!(checked > 0);
}
