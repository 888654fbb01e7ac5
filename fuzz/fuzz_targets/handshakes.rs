//! Every handshake role (XX, NNpsk0, KK; initiator and responder) reading
//! messages the fuzzer chooses: the real message of an honest peer, or that
//! message flipped, truncated, extended or replaced by arbitrary bytes, at
//! any step (so every role is reached with a valid first message too). Keys
//! and PSKs are right or wrong; payloads and read buffers have any size.
//! After a completed handshake both transports exchange messages the fuzzer
//! may change, duplicate or drop.
//!
//! Checked: an unmodified transcript with the right keys completes, with
//! the same handshake hash on both sides, the expected remote static keys
//! and the payloads intact; a modified transcript or a wrong key or PSK
//! never completes; a transport message decrypts iff it is the next
//! unmodified one, to the same plaintext; the message limit holds.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use securecom_core::noise::{Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, Transport};
use securecom_core::{Instant, Limits, PublicKey, StaticSecret, MAX_NOISE_MESSAGE, TAG_LEN};
use securecom_fuzz::arb::{tamper as apply, Bytes, Tamper as Step};
use securecom_fuzz::fixtures::{limits, rng, server_key, server_secret, user_key, user_secret};

fn params<'a>(
    pattern: Pattern,
    initiator: bool,
    local: Option<&'a StaticSecret>,
    remote: Option<PublicKey>,
    psk: Option<&'a Psk>,
    check: RemoteCheck,
) -> HandshakeParams<'a> {
    HandshakeParams {
        pattern,
        initiator,
        prologue: b"fuzz prologue",
        local_static: local,
        remote_static: remote,
        psk,
        check,
    }
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let pattern = [Pattern::XX, Pattern::NNpsk0, Pattern::KK][usize::from(u8::arbitrary(u)? % 3)];
    // 0: all right; 1: the initiator expects another key (XX pin, KK) or
    // the PSKs differ (NNpsk0); 2: the responder expects another key (KK).
    let wrong = u8::arbitrary(u)? % 4;
    let read_buf = if bool::arbitrary(u)? {
        usize::from(u16::arbitrary(u)?) % (MAX_NOISE_MESSAGE + 64)
    } else {
        MAX_NOISE_MESSAGE
    };
    let max_messages = match u8::arbitrary(u)? {
        0 => 0,
        n @ 1..=8 => u64::from(n),
        _ => 1 << 32,
    };
    let lim = Limits {
        max_messages,
        ..limits(false)
    };

    let alice = user_secret(0);
    let bob = user_secret(1);
    let server = server_secret();
    let psk_i = Psk::from_bytes([0x11; 32]);
    let psk_r = Psk::from_bytes(if wrong == 1 { [0x12; 32] } else { [0x11; 32] });
    let other = user_key(2);
    let mut r = rng(30);
    let (pi, pr) = match pattern {
        Pattern::XX => (
            params(
                pattern,
                true,
                Some(&alice),
                None,
                None,
                RemoteCheck::Exactly(if wrong == 1 { other } else { server_key() }),
            ),
            params(pattern, false, Some(&server), None, None, RemoteCheck::Any),
        ),
        Pattern::NNpsk0 => (
            params(pattern, true, None, None, Some(&psk_i), RemoteCheck::Any),
            params(pattern, false, None, None, Some(&psk_r), RemoteCheck::Any),
        ),
        Pattern::KK => {
            let ri = if wrong == 1 { other } else { user_key(1) };
            let rr = if wrong == 2 { other } else { user_key(0) };
            (
                params(
                    pattern,
                    true,
                    Some(&alice),
                    Some(ri),
                    None,
                    RemoteCheck::Exactly(ri),
                ),
                params(
                    pattern,
                    false,
                    Some(&bob),
                    Some(rr),
                    None,
                    RemoteCheck::Exactly(rr),
                ),
            )
        }
    };
    let wrong = match pattern {
        Pattern::XX | Pattern::NNpsk0 => wrong == 1,
        Pattern::KK => wrong == 1 || wrong == 2,
    };
    let mut hs = [
        Handshake::new(pi, &mut r).expect("initiator"),
        Handshake::new(pr, &mut r).expect("responder"),
    ];
    assert!(hs[0].is_write_turn() && !hs[1].is_write_turn());

    let mut modified = false;
    let mut failed = false;
    for k in 0..pattern.messages() {
        let (w, rd) = if k % 2 == 0 { (0, 1) } else { (1, 0) };
        let payload = Bytes::arbitrary(u)?;
        let step = Step::arbitrary(u)?;
        let mut buf = [0u8; MAX_NOISE_MESSAGE];
        // Not the reader's turn to write, nor the writer's to read.
        assert!(hs[rd].write_message(&[], &mut buf).is_err());
        let Ok(n) = hs[w].write_message(&payload.0, &mut buf) else {
            // The largest overhead is XX message 2: e, s (encrypted), tag.
            assert!(
                payload.0.len() > MAX_NOISE_MESSAGE - 96,
                "write failed with a small payload"
            );
            return Ok(());
        };
        assert!(n <= MAX_NOISE_MESSAGE);
        let deliveries = apply(&step, &buf[..n]);
        let mut delivered_real = false;
        for m in &deliveries {
            let mut out = vec![0u8; read_buf];
            let changed = m.as_slice() != &buf[..n] || delivered_real;
            match hs[rd].read_message(m, &mut out) {
                Ok(len) => {
                    if !changed {
                        assert_eq!(&out[..len], &payload.0[..], "payload changed in transit");
                    }
                    modified |= changed;
                    delivered_real |= !changed;
                }
                Err(_) => {
                    assert!(
                        changed || modified || wrong || read_buf < MAX_NOISE_MESSAGE,
                        "an unmodified handshake message with the right keys failed"
                    );
                    failed = true;
                    break;
                }
            }
        }
        if deliveries.is_empty() || failed {
            return Ok(());
        }
    }
    let [i, rs] = hs;
    assert!(i.is_finished() && rs.is_finished());
    assert!(!modified, "a modified transcript completed");
    assert!(!wrong, "a handshake with a wrong key or PSK completed");
    let now = Instant::from_millis(5);
    let ti = i.into_transport(&lim, now).expect("transport");
    let tr = rs.into_transport(&lim, now).expect("transport");
    assert_eq!(ti.handshake_hash(), tr.handshake_hash());
    match pattern {
        Pattern::XX => {
            assert_eq!(ti.remote_static(), Some(server_key()));
            assert_eq!(tr.remote_static(), Some(user_key(0)));
        }
        Pattern::KK => {
            assert_eq!(ti.remote_static(), Some(user_key(1)));
            assert_eq!(tr.remote_static(), Some(user_key(0)));
        }
        Pattern::NNpsk0 => assert!(ti.remote_static().is_none() && tr.remote_static().is_none()),
    }
    transport(u, [ti, tr], max_messages)
}

fn transport(u: &mut Unstructured, mut t: [Transport; 2], max: u64) -> arbitrary::Result<()> {
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let from = usize::from(bool::arbitrary(u)?);
        let plain = Bytes::arbitrary(u)?;
        let step = Step::arbitrary(u)?;
        let mut ct = [0u8; MAX_NOISE_MESSAGE];
        let [a, b] = &mut t;
        let (tx, rx) = if from == 0 { (a, b) } else { (b, a) };
        let nonce = tx.sent();
        let too_big = plain.0.len() + TAG_LEN > MAX_NOISE_MESSAGE;
        match tx.encrypt(&plain.0, &mut ct) {
            Ok(n) => {
                assert!(!too_big && nonce < max, "encrypt beyond the bounds");
                assert_eq!(n, plain.0.len() + TAG_LEN);
                assert_eq!(tx.sent(), nonce + 1);
                for m in apply(&step, &ct[..n]) {
                    let mut out = vec![0u8; MAX_NOISE_MESSAGE];
                    let before = rx.received();
                    // The model: only the exact ciphertext, at the receiver's
                    // next nonce and within the limit, decrypts.
                    let good = m.as_slice() == &ct[..n] && nonce == before && before < max;
                    match rx.decrypt(&m, &mut out) {
                        Ok(len) => {
                            assert!(
                                good,
                                "a changed, replayed or out-of-order message decrypted"
                            );
                            assert_eq!(&out[..len], &plain.0[..]);
                            assert_eq!(rx.received(), before + 1);
                        }
                        Err(_) => {
                            assert!(!good, "the next unmodified message failed");
                            assert_eq!(rx.received(), before, "a failed decrypt counted");
                        }
                    }
                }
            }
            Err(_) => {
                assert!(too_big || nonce >= max, "encrypt failed within bounds");
                assert_eq!(tx.sent(), nonce);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
