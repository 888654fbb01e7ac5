//! Protocol 3's post-quantum layer (`securecom_core::pq`) over a finished
//! handshake of each channel (XX, NNpsk0, KK), its two messages as the
//! fuzzer delivers them: the real one, or it flipped, truncated, extended,
//! replaced, duplicated or dropped; payloads and read buffers of any size.
//!
//! Checked: nothing panics; an unmodified pair completes, the payloads
//! intact and both sessions on the same keys (a message sealed by one opens
//! with the other); a modified one never completes.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use securecom_core::noise::{Handshake, HandshakeParams, Pattern, Psk, RemoteCheck};
use securecom_core::pq::{PqLayer, MAX_PQ_MESSAGE, MAX_PQ_PAYLOAD};
use securecom_core::{Instant, MAX_NOISE_MESSAGE};
use securecom_fuzz::arb::{tamper, Bytes, Tamper};
use securecom_fuzz::fixtures::{limits, rng, server_secret, user_key, user_secret};

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let pattern = [Pattern::XX, Pattern::NNpsk0, Pattern::KK][usize::from(u8::arbitrary(u)? % 3)];
    let read_buf = if bool::arbitrary(u)? {
        usize::from(u16::arbitrary(u)?) % (MAX_PQ_PAYLOAD + 64)
    } else {
        MAX_PQ_PAYLOAD
    };
    let alice = user_secret(0);
    let bob = user_secret(1);
    let server = server_secret();
    let psk = Psk::from_bytes([0x11; 32]);
    let mut r = rng(31);
    let params = |initiator: bool| {
        let (local, remote) = match (pattern, initiator) {
            (Pattern::XX, true) => (Some(&alice), None),
            (Pattern::XX, false) => (Some(&server), None),
            (Pattern::KK, true) => (Some(&alice), Some(user_key(1))),
            (Pattern::KK, false) => (Some(&bob), Some(user_key(0))),
            (Pattern::NNpsk0, _) => (None, None),
        };
        HandshakeParams {
            pattern,
            initiator,
            prologue: b"fuzz prologue",
            local_static: local,
            remote_static: remote,
            psk: (pattern == Pattern::NNpsk0).then_some(&psk),
            check: RemoteCheck::Any,
        }
    };
    // The outer handshake, honest: this target is about the inner one.
    let mut hs: [Handshake; 2] = [
        Handshake::new(params(true), &mut r).expect("initiator"),
        Handshake::new(params(false), &mut r).expect("responder"),
    ];
    let mut buf = [0u8; MAX_NOISE_MESSAGE];
    let mut out = [0u8; MAX_NOISE_MESSAGE];
    for k in 0..pattern.messages() {
        let (w, rd) = if k % 2 == 0 { (0, 1) } else { (1, 0) };
        let n = hs[w].write_message(&[], &mut buf).expect("write");
        hs[rd].read_message(&buf[..n], &mut out).expect("read");
    }
    let lim = limits(false);
    let now = Instant::from_millis(5);
    let [hi, hr] = hs;
    let mut outer = [
        hi.into_transport(&lim, now).expect("transport"),
        hr.into_transport(&lim, now).expect("transport"),
    ];
    let mut layer: [PqLayer; 2] = [
        PqLayer::new(true, &outer[0], &mut r).expect("initiator layer"),
        PqLayer::new(false, &outer[1], &mut r).expect("responder layer"),
    ];

    let mut modified = false;
    for w in [0, 1] {
        let payload = Bytes::arbitrary(u)?;
        let step = Tamper::arbitrary(u)?;
        let mut msg = [0u8; MAX_PQ_MESSAGE];
        // Not the reader's turn to write.
        let [o0, o1] = &mut outer;
        let [l0, l1] = &mut layer;
        let ((lw, ow), (lr, or)) = if w == 0 {
            ((l0, o0), (l1, o1))
        } else {
            ((l1, o1), (l0, o0))
        };
        assert!(lr.write_message(&[], or, &mut msg).is_err());
        let Ok(n) = lw.write_message(&payload.0, ow, &mut msg) else {
            assert!(
                payload.0.len() > MAX_PQ_PAYLOAD,
                "write failed with a small payload"
            );
            return Ok(());
        };
        assert!(n <= MAX_PQ_MESSAGE);
        let real = msg[..n].to_vec();
        let deliveries = tamper(&step, &real);
        let mut delivered_real = false;
        for m in &deliveries {
            let changed = m.as_slice() != real.as_slice() || delivered_real;
            let mut m = m.clone();
            let mut got = vec![0u8; read_buf];
            match lr.read_message(&mut m, or, &mut got) {
                Ok(len) => {
                    assert!(
                        !changed && !modified,
                        "a changed inner message was accepted"
                    );
                    assert_eq!(&got[..len], &payload.0[..], "payload changed in transit");
                    delivered_real = true;
                }
                Err(_) => {
                    assert!(
                        changed || modified || read_buf < payload.0.len(),
                        "an unmodified inner message failed"
                    );
                    return Ok(());
                }
            }
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        modified |= !delivered_real;
        if !delivered_real {
            return Ok(());
        }
    }
    assert!(layer[0].is_finished() && layer[1].is_finished());
    let [li, lr] = layer;
    let [oi, or] = outer;
    let mut ti = li.into_transport(oi, &lim, now).expect("session");
    let mut tr = lr.into_transport(or, &lim, now).expect("session");
    assert_eq!(ti.handshake_hash(), tr.handshake_hash());
    let mut ct = [0u8; 64];
    let mut pt = [0u8; 64];
    let n = ti.encrypt(b"same keys", &mut ct).expect("encrypt");
    let m = tr
        .decrypt(&ct[..n], &mut pt)
        .expect("the two ends disagree on the keys");
    assert_eq!(&pt[..m], b"same keys");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
