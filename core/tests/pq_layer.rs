//! Protocol 3's post-quantum layer (`securecom_core::pq`): the inner
//! `pqNNpsk2` over a finished classical handshake, checked byte for byte
//! against clatter's own `HybridDualLayerHandshake` fed the same keys,
//! randomness and PSK (the second implementation of the composition), and
//! against tampering, replay and misuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clatter::bytearray::SensitiveByteArray;
use clatter::crypto::cipher::ChaChaPoly;
use clatter::crypto::dh::X25519;
use clatter::crypto::hash::Blake2s;
use clatter::handshakepattern::{noise_kk, noise_nn_psk0, noise_pqnn_psk2, noise_xx};
use clatter::traits::{Dh, Handshaker, Kem};
use clatter::{HybridDualLayerHandshake, KeyPair, NqHandshakeCore, PqHandshakeCore};
use rand_core::{CryptoRng, RngCore, SeedableRng};
use securecom_core::kem::Fips203MlKem768;
use securecom_core::noise::{
    Handshake, HandshakeParams, NoInternalRng, Pattern, Psk, RemoteCheck, Transport,
    REQUEST_PROLOGUE, STANDARD_PROLOGUE,
};
use securecom_core::pq::{NoKem, PqLayer, MAX_PQ_MESSAGE, MAX_PQ_PAYLOAD, PQ_PROLOGUE};
use securecom_core::{Instant, Limits, StaticSecret, MAX_NOISE_MESSAGE};

/// Hands out the given chunks, one per `fill_bytes`.
#[derive(Clone, Default)]
struct Given(Vec<Vec<u8>>);

impl Given {
    fn new(chunks: &[&[u8]]) -> Self {
        Given(chunks.iter().rev().map(|c| c.to_vec()).collect())
    }
}

impl RngCore for Given {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let c = self.0.pop().expect("an unexpected draw");
        assert_eq!(c.len(), dest.len());
        dest.copy_from_slice(&c);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for Given {}

const KEM_SEED: [u8; 64] = [0x5a; 64];
const ENCAPS_M: [u8; 32] = [0xc3; 32];

fn key(b: u8) -> StaticSecret {
    StaticSecret::from_bytes([b; 32])
}

const PSK: [u8; 32] = [0x77; 32];

/// The outer handshakes of the three channels: the standard channel's XX,
/// the request channel's NNpsk0, the chat's KK (each with its prologue).
const OUTERS: [Pattern; 3] = [Pattern::XX, Pattern::NNpsk0, Pattern::KK];

fn prologue(p: Pattern) -> &'static [u8] {
    match p {
        Pattern::XX => STANDARD_PROLOGUE,
        Pattern::NNpsk0 => REQUEST_PROLOGUE,
        Pattern::KK => b"secureCom/1/chat test",
    }
}

/// Static and ephemeral key bytes (initiator: 1, 2; responder: 3, 4).
fn keys(initiator: bool) -> (u8, u8) {
    if initiator {
        (1, 2)
    } else {
        (3, 4)
    }
}

fn outer_of(pattern: Pattern, initiator: bool) -> Handshake {
    let (s, e) = keys(initiator);
    let (s, e) = (key(s), key(e));
    let peer = key(keys(!initiator).0).public_key();
    let psk = Psk::from_bytes(PSK);
    Handshake::new_with_fixed_ephemeral_for_testing_only(
        HandshakeParams {
            pattern,
            initiator,
            prologue: prologue(pattern),
            local_static: (pattern != Pattern::NNpsk0).then_some(&s),
            remote_static: (pattern == Pattern::KK).then_some(peer),
            psk: (pattern == Pattern::NNpsk0).then_some(&psk),
            check: RemoteCheck::Any,
        },
        &e,
    )
    .unwrap()
}

fn outer(initiator: bool) -> Handshake {
    outer_of(Pattern::XX, initiator)
}

/// Runs an outer handshake (empty payloads) to its two transports.
fn finish(mut i: Handshake, mut r: Handshake) -> (Transport, Transport) {
    let mut buf = [0u8; MAX_NOISE_MESSAGE];
    let mut got = [0u8; MAX_NOISE_MESSAGE];
    for k in 0..i.pattern().messages() {
        let (w, rd) = if k % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = w.write_message(b"", &mut buf).unwrap();
        rd.read_message(&buf[..n], &mut got).unwrap();
    }
    let l = Limits::default();
    (
        i.into_transport(&l, Instant::ZERO).unwrap(),
        r.into_transport(&l, Instant::ZERO).unwrap(),
    )
}

/// Ours: the outer handshake, then the layer; every wire message in order,
/// and the two finished transports. `payloads` has one per outer message,
/// then the inner two.
fn ours_with(
    pattern: Pattern,
    payloads: &[&[u8]],
) -> (Vec<Vec<u8>>, Transport, Transport, [u8; 32]) {
    let (mut i, mut r) = (outer_of(pattern, true), outer_of(pattern, false));
    let mut wire = Vec::new();
    let mut buf = [0u8; MAX_NOISE_MESSAGE];
    let mut got = [0u8; MAX_NOISE_MESSAGE];
    let outer_messages = pattern.messages();
    assert_eq!(payloads.len(), outer_messages + 2);
    for (k, p) in payloads[..outer_messages].iter().enumerate() {
        let (w, rd) = if k % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = w.write_message(p, &mut buf).unwrap();
        let m = rd.read_message(&buf[..n], &mut got).unwrap();
        assert_eq!(&got[..m], *p);
        wire.push(buf[..n].to_vec());
    }
    let limits = Limits::default();
    let mut oi = i.into_transport(&limits, Instant::ZERO).unwrap();
    let mut or = r.into_transport(&limits, Instant::ZERO).unwrap();
    let hybrid = *oi.hybrid_psk().bytes_for_testing_only();
    assert_eq!(hybrid, *or.hybrid_psk().bytes_for_testing_only());
    let mut li = PqLayer::new(true, &oi, &mut Given::new(&[&KEM_SEED])).unwrap();
    let mut lr = PqLayer::new(false, &or, &mut Given::new(&[&ENCAPS_M])).unwrap();
    let mut big = [0u8; MAX_PQ_MESSAGE];
    let mut got = [0u8; MAX_PQ_PAYLOAD];
    assert!(li.is_write_turn() && !lr.is_write_turn());
    // (Captured before reading: a message is opened in place.)
    let (p3, p4) = (payloads[outer_messages], payloads[outer_messages + 1]);
    let n = li.write_message(p3, &mut oi, &mut big).unwrap();
    wire.push(big[..n].to_vec());
    let m = lr.read_message(&mut big[..n], &mut or, &mut got).unwrap();
    assert_eq!(&got[..m], p3);
    let n = lr.write_message(p4, &mut or, &mut big).unwrap();
    wire.push(big[..n].to_vec());
    let m = li.read_message(&mut big[..n], &mut oi, &mut got).unwrap();
    assert_eq!(&got[..m], p4);
    assert!(li.is_finished() && lr.is_finished());
    let ti = li.into_transport(oi, &limits, Instant::ZERO).unwrap();
    let tr = lr.into_transport(or, &limits, Instant::ZERO).unwrap();
    (wire, ti, tr, hybrid)
}

type ClatterOuter = NqHandshakeCore<X25519, ChaChaPoly, Blake2s, NoInternalRng>;
type ClatterInner = PqHandshakeCore<Fips203MlKem768, NoKem, ChaChaPoly, Blake2s, FixedM>;

/// clatter's engine makes its RNG with `Default` and draws the responder's
/// encapsulation randomness from it: this one gives [`ENCAPS_M`], the bytes
/// our responder is given, so that both encapsulate alike.
#[derive(Clone, Default)]
struct FixedM;

impl RngCore for FixedM {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.copy_from_slice(&ENCAPS_M);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for FixedM {}
type Dual = HybridDualLayerHandshake<ClatterOuter, ClatterInner, ChaChaPoly, Blake2s, 2048>;

fn clatter_keypair(b: u8) -> KeyPair<[u8; 32], SensitiveByteArray<[u8; 32]>> {
    let secret = SensitiveByteArray::new([b; 32]);
    KeyPair {
        public: <X25519 as Dh>::pubkey(&secret),
        secret,
    }
}

/// clatter's dual layer over `pattern`, its inner `pqNNpsk2` given `hybrid`,
/// the outer handshake's exported secret (ours: clatter exports none).
fn clatter_side(pattern: Pattern, initiator: bool, hybrid: &[u8; 32]) -> Dual {
    let (s, e) = keys(initiator);
    let peer = clatter_keypair(keys(!initiator).0).public;
    let clatter_pattern = match pattern {
        Pattern::XX => noise_xx(),
        Pattern::NNpsk0 => noise_nn_psk0(),
        Pattern::KK => noise_kk(),
    };
    let mut outer = ClatterOuter::new(
        clatter_pattern,
        prologue(pattern),
        initiator,
        (pattern != Pattern::NNpsk0).then(|| clatter_keypair(s)),
        Some(clatter_keypair(e)),
        (pattern == Pattern::KK).then_some(peer),
        None,
    )
    .unwrap();
    if pattern == Pattern::NNpsk0 {
        outer.push_psk(&PSK);
    }
    let kem_e =
        initiator.then(|| Fips203MlKem768::genkey_rng(&mut Given::new(&[&KEM_SEED])).unwrap());
    let mut inner = ClatterInner::new(
        noise_pqnn_psk2(),
        PQ_PROLOGUE,
        initiator,
        None,
        kem_e,
        None,
        None,
    )
    .unwrap();
    inner.push_psk(hybrid);
    Dual::new(outer, inner)
}

#[test]
fn same_bytes_as_clatters_dual_layer_over_each_channels_handshake() {
    for pattern in OUTERS {
        // One payload per outer message, then the inner two.
        let payloads: &[&[u8]] = match pattern {
            Pattern::XX => &[b"", b"server hello", b"client hello", b"", b"logged in"],
            _ => &[b"first", b"second", b"", b"ready"],
        };
        let (wire, mut ti, mut tr, hybrid) = ours_with(pattern, payloads);
        let (mut ci, mut cr) = (
            clatter_side(pattern, true, &hybrid),
            clatter_side(pattern, false, &hybrid),
        );
        let mut buf = vec![0u8; 4096];
        let mut got = vec![0u8; 4096];
        // The outer messages alternate from the initiator; then the inner
        // two, the initiator's first (after XX's message 3, two in a row).
        let outer_messages = pattern.messages();
        for (k, p) in payloads.iter().enumerate() {
            let initiator_writes = if k < outer_messages {
                k % 2 == 0
            } else {
                k == outer_messages
            };
            let (w, rd) = if initiator_writes {
                (&mut ci, &mut cr)
            } else {
                (&mut cr, &mut ci)
            };
            let n = w.write_message(p, &mut buf).unwrap();
            assert_eq!(buf[..n], wire[k][..], "{pattern:?} message {k}");
            let m = rd.read_message(&buf[..n], &mut got).unwrap();
            assert_eq!(&got[..m], *p);
        }
        let (mut xi, mut xr) = (ci.finalize().unwrap(), cr.finalize().unwrap());
        assert_eq!(xi.get_handshake_hash()[..], ti.handshake_hash()[..]);
        assert_eq!(ti.handshake_hash(), tr.handshake_hash());
        // Both directions of the transport, against clatter's.
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        let n = ti.encrypt(b"to the responder", &mut a).unwrap();
        let m = xi.send(b"to the responder", &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        let n = tr.encrypt(b"and back", &mut a).unwrap();
        let m = xr.send(b"and back", &mut b).unwrap();
        assert_eq!(a[..n], b[..m]);
        let mut plain = [0u8; 64];
        let k = ti.decrypt(&a[..n], &mut plain).unwrap();
        assert_eq!(&plain[..k], b"and back");
        // The sizes the design note gives: the KEM key and ciphertext with
        // their payload and outer tags.
        let last = payloads[outer_messages + 1].len();
        assert_eq!(wire[outer_messages].len(), 1184 + 16 + 16);
        assert_eq!(wire[outer_messages + 1].len(), 1088 + last + 16 + 16);
    }
}

#[test]
fn the_outer_handshakes_secret_keys_the_layer() {
    let payloads: &[&[u8]] = &[b"", b"", b"", b"", b""];
    let (wire, _, _, hybrid) = ours_with(Pattern::XX, payloads);
    // Exported from the outer chaining key: another secret than the re-key's.
    let (oi, or) = finish(outer(true), outer(false));
    assert_eq!(oi.hybrid_psk().bytes_for_testing_only(), &hybrid);
    assert_eq!(or.hybrid_psk().bytes_for_testing_only(), &hybrid);
    assert_ne!(oi.rekey_psk().bytes_for_testing_only(), &hybrid);
    // clatter's responder keyed with another PSK: the same KEM ciphertext,
    // but the payload's tag (and every key after it) differs.
    let (mut ci, mut cr) = (
        clatter_side(Pattern::XX, true, &hybrid),
        clatter_side(Pattern::XX, false, &[0u8; 32]),
    );
    let mut buf = vec![0u8; 4096];
    let mut got = vec![0u8; 4096];
    for (k, p) in payloads.iter().enumerate() {
        let initiator_writes = k == 0 || k == 2 || k == 3;
        let (w, rd) = if initiator_writes {
            (&mut ci, &mut cr)
        } else {
            (&mut cr, &mut ci)
        };
        let n = w.write_message(p, &mut buf).unwrap();
        if k < 4 {
            assert_eq!(buf[..n], wire[k][..], "message {k}");
            rd.read_message(&buf[..n], &mut got).unwrap();
        } else {
            assert_ne!(buf[..n], wire[k][..]);
            assert!(rd.read_message(&buf[..n], &mut got).is_err());
        }
    }
}

#[test]
fn the_session_keys_are_not_the_outer_ones() {
    let (_, mut ti, _, _) = ours_with(Pattern::XX, &[b"", b"", b"", b"", b""]);
    // The outer transport of the same run, rebuilt.
    let (_, mut or) = finish(outer(true), outer(false));
    let mut sealed = [0u8; 64];
    let n = ti.encrypt(b"secret", &mut sealed).unwrap();
    let mut plain = [0u8; 64];
    // The responder's outer transport, at the same nonce 0, cannot open the
    // session's first message: the session keys are the inner handshake's.
    assert!(or.decrypt(&sealed[..n], &mut plain).is_err());
}

fn layers() -> (PqLayer, PqLayer, Transport, Transport) {
    let (oi, or) = finish(outer(true), outer(false));
    let li = PqLayer::new(true, &oi, &mut Given::new(&[&KEM_SEED])).unwrap();
    let lr = PqLayer::new(false, &or, &mut Given::new(&[&ENCAPS_M])).unwrap();
    (li, lr, oi, or)
}

#[test]
fn every_tampered_byte_of_either_message_is_refused() {
    let mut big = [0u8; MAX_PQ_MESSAGE];
    let mut got = [0u8; MAX_PQ_PAYLOAD];
    let (mut li, _, mut oi, _) = layers();
    let n = li.write_message(b"", &mut oi, &mut big).unwrap();
    let first = big[..n].to_vec();
    for at in (0..first.len()).step_by(7) {
        let (_, mut lr, _, mut or) = layers();
        let mut bad = first.clone();
        bad[at] ^= 0x01;
        assert!(
            lr.read_message(&mut bad, &mut or, &mut got).is_err(),
            "byte {at}"
        );
    }
    let (mut li, mut lr, mut oi, mut or) = layers();
    let n = li.write_message(b"", &mut oi, &mut big).unwrap();
    lr.read_message(&mut big[..n], &mut or, &mut got).unwrap();
    let n = lr.write_message(b"ok", &mut or, &mut big).unwrap();
    let second = big[..n].to_vec();
    for at in (0..second.len()).step_by(7) {
        let (mut li, mut lr, mut oi, mut or) = layers();
        let n = li.write_message(b"", &mut oi, &mut big).unwrap();
        lr.read_message(&mut big[..n], &mut or, &mut got).unwrap();
        lr.write_message(b"ok", &mut or, &mut big).unwrap();
        let mut bad = second.clone();
        bad[at] ^= 0x01;
        assert!(
            li.read_message(&mut bad, &mut oi, &mut got).is_err(),
            "byte {at}"
        );
    }
}

#[test]
fn replayed_truncated_oversized_and_out_of_turn_messages_fail() {
    let mut big = [0u8; MAX_PQ_MESSAGE];
    let mut got = [0u8; MAX_PQ_PAYLOAD];
    let (mut li, mut lr, mut oi, mut or) = layers();
    let n = li.write_message(b"", &mut oi, &mut big).unwrap();
    let first = big[..n].to_vec();
    assert!(lr
        .read_message(&mut first.clone()[..n - 1], &mut or, &mut got)
        .is_err());
    let (_, mut lr, _, mut or) = layers();
    lr.read_message(&mut first.clone(), &mut or, &mut got)
        .unwrap();
    // The same message again: the outer nonce has moved on.
    assert!(lr
        .read_message(&mut first.clone(), &mut or, &mut got)
        .is_err());
    // A payload over the bound, and writing out of turn.
    let (mut li, mut lr, mut oi, mut or) = layers();
    assert!(li
        .write_message(&[0u8; MAX_PQ_PAYLOAD + 1], &mut oi, &mut big)
        .is_err());
    assert!(lr.write_message(b"", &mut or, &mut big).is_err());
    // Garbage of lengths across the whole range (and past it) never panics.
    for len in (0..=MAX_PQ_MESSAGE + 16).step_by(13) {
        let (_, mut lr, _, mut or) = layers();
        let mut junk = vec![0xa5u8; len];
        assert!(lr.read_message(&mut junk, &mut or, &mut got).is_err());
    }
}

// ------------------------------------------------------------------ re-keying

use securecom_core::pq::Rekey;

/// Runs a re-key of the session (`a`, `b`: its two ends, `a` the
/// initiator), delivering each message through `deliver` (which may change
/// it); returns the two new sessions, or `None` if the re-key failed.
fn rekey(
    a: Transport,
    b: Transport,
    seed: u8,
    deliver: &mut dyn FnMut(usize, &mut Vec<u8>),
) -> Option<(Transport, Transport)> {
    let mut ra = Rekey::new(
        true,
        &a,
        &mut rand_chacha::ChaCha20Rng::from_seed([seed; 32]),
    )
    .unwrap();
    let mut rb = Rekey::new(
        false,
        &b,
        &mut rand_chacha::ChaCha20Rng::from_seed([seed ^ 0xff; 32]),
    )
    .unwrap();
    let mut buf = [0u8; MAX_PQ_MESSAGE];
    let mut got = [0u8; MAX_PQ_PAYLOAD];
    for k in 0..4 {
        let (w, r) = if k % 2 == 0 {
            (&mut ra, &mut rb)
        } else {
            (&mut rb, &mut ra)
        };
        assert!(w.is_write_turn() && !r.is_write_turn(), "message {k}");
        let n = w.write_message(b"rk", &mut buf).unwrap();
        let mut m = buf[..n].to_vec();
        deliver(k, &mut m);
        match r.read_message(&mut m, &mut got) {
            Ok(len) => assert_eq!(&got[..len], b"rk"),
            Err(_) => return None,
        }
    }
    assert!(ra.is_finished() && rb.is_finished());
    let limits = Limits::default();
    Some((
        ra.into_transport(&a, &limits, Instant::ZERO).unwrap(),
        rb.into_transport(&b, &limits, Instant::ZERO).unwrap(),
    ))
}

fn session() -> (Transport, Transport) {
    let (_, ti, tr, _) = ours_with(Pattern::XX, &[b"", b"", b"", b"", b""]);
    (ti, tr)
}

fn talk(a: &mut Transport, b: &mut Transport, text: &[u8]) -> Vec<u8> {
    let mut ct = [0u8; 128];
    let mut pt = [0u8; 128];
    let n = a.encrypt(text, &mut ct).unwrap();
    let m = b.decrypt(&ct[..n], &mut pt).unwrap();
    assert_eq!(&pt[..m], text);
    ct[..n].to_vec()
}

#[test]
fn a_rekey_gives_both_ends_new_keys_and_keeps_the_peer() {
    let (mut a, mut b) = session();
    talk(&mut a, &mut b, b"before");
    let (old_hash, old_peer) = (*a.handshake_hash(), a.remote_static());
    let (mut a, mut b) = rekey(a, b, 1, &mut |_, _| {}).expect("rekey");
    // The channel binding is the session's, across re-keys.
    assert_eq!(*a.handshake_hash(), old_hash);
    assert_eq!(*b.handshake_hash(), old_hash);
    assert_eq!(a.remote_static(), old_peer);
    // New counters, both ways.
    assert_eq!((a.sent(), a.received()), (0, 0));
    talk(&mut a, &mut b, b"after");
    talk(&mut b, &mut a, b"and back");
    // And again: a re-keyed session re-keys.
    let (mut a, mut b) = rekey(a, b, 2, &mut |_, _| {}).expect("second rekey");
    talk(&mut a, &mut b, b"twice");
}

#[test]
fn the_new_keys_are_not_the_old_ones() {
    // Two copies of one session (same seeds): one re-keyed, one not.
    let (a, b) = session();
    let (_, mut old_b) = session();
    let (mut a, _) = rekey(a, b, 3, &mut |_, _| {}).expect("rekey");
    let mut ct = [0u8; 64];
    let n = a.encrypt(b"new", &mut ct).unwrap();
    let mut pt = [0u8; 64];
    assert!(old_b.decrypt(&ct[..n], &mut pt).is_err());
}

#[test]
fn a_rekey_with_any_message_changed_fails() {
    for k in 0..4 {
        for at in [0usize, 17, 31, 33, 47, 100, 1200] {
            let (a, b) = session();
            let mut changed = false;
            let r = rekey(a, b, 4, &mut |i, m| {
                if i == k && at < m.len() {
                    m[at] ^= 0x40;
                    changed = true;
                }
            });
            assert_eq!(r.is_none(), changed, "message {k}, byte {at}");
        }
    }
}

#[test]
fn a_rekey_between_two_other_sessions_fails() {
    // The same keys, another session (other ephemerals): other PSKs.
    let (a, _) = session();
    let (_, b) = {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([9; 32]);
        let mk = |init: bool, rng: &mut rand_chacha::ChaCha20Rng| {
            let k = key(if init { 1 } else { 3 });
            Handshake::new(
                HandshakeParams {
                    pattern: Pattern::XX,
                    initiator: init,
                    prologue: STANDARD_PROLOGUE,
                    local_static: Some(&k),
                    remote_static: None,
                    psk: None,
                    check: RemoteCheck::Any,
                },
                rng,
            )
            .unwrap()
        };
        finish(mk(true, &mut rng), mk(false, &mut rng))
    };
    assert!(rekey(a, b, 5, &mut |_, _| {}).is_none());
}

// ====================================================================== the attacker of issue 14

/// What an attacker who recorded a session can compute of its keys: the
/// layer's key schedule replayed from the wire (`pk`, `ct`, the outer hash)
/// with the two secrets it may or may not have, the KEM's shared secret
/// `ss` and the outer handshake's exported `psk`. Returns whether the
/// session's first message (initiator to responder) opens under the keys
/// so derived.
fn attacker_opens(
    h_outer: &[u8],
    pk: &[u8],
    ct: &[u8],
    ss: &[u8],
    psk: &[u8; 32],
    first_message: &[u8],
) -> bool {
    use clatter::symmetricstate::SymmetricState;
    use securecom_core::pq::{DUAL_LAYER_DOMAIN, PQ_PROTOCOL_NAME};
    let mut st = SymmetricState::<ChaChaPoly, Blake2s>::new(PQ_PROTOCOL_NAME);
    st.mix_hash(PQ_PROLOGUE);
    st.mix_hash(DUAL_LAYER_DOMAIN);
    st.mix_key_and_hash(h_outer);
    let mut tag = [0u8; 16];
    st.mix_hash(pk);
    st.mix_key(pk);
    st.encrypt_and_hash(&[], &mut tag).unwrap();
    st.mix_hash(ct);
    st.mix_key(ss);
    st.mix_key_and_hash(psk);
    st.encrypt_and_hash(&[], &mut tag).unwrap();
    let mut c = st.split().unwrap().initiator_to_responder;
    let mut out = [0u8; 64];
    c.decrypt_with_ad(&[], first_message, &mut out[..first_message.len() - 16])
        .is_ok()
}

/// docs/SECURITY.md, "A quantum attacker, later": the session's keys need
/// both the X25519 secrets and ML-KEM's. One who breaks X25519 (here: holds
/// the outer transports, so reads the layer's messages, and the exported
/// PSK) still lacks the KEM's shared secret; one who breaks ML-KEM (holds
/// the shared secret) still lacks the PSK, a secret of the X25519 handshake.
/// The replayed key schedule is checked first: with both secrets it opens
/// the message.
#[test]
fn the_session_keys_need_both_the_x25519_and_the_ml_kem_secrets() {
    for pattern in OUTERS {
        let n = pattern.messages();
        let payloads: Vec<&[u8]> = vec![b""; n + 2];
        let (wire, mut ti, _, hybrid) = ours_with(pattern, &payloads);
        let mut sealed = [0u8; 64];
        let len = ti.encrypt(b"recorded today", &mut sealed).unwrap();
        let first = &sealed[..len];
        // X25519 broken: the outer transports are the attacker's.
        let (mut oi, mut or) = finish(outer_of(pattern, true), outer_of(pattern, false));
        let h_outer = *oi.handshake_hash();
        let mut m1 = [0u8; MAX_PQ_MESSAGE];
        let k = or.decrypt(&wire[n], &mut m1).unwrap();
        let pk = &m1[..1184];
        assert_eq!(k, 1184 + 16);
        let mut m2 = [0u8; MAX_PQ_MESSAGE];
        let k = oi.decrypt(&wire[n + 1], &mut m2).unwrap();
        let ct = &m2[..1088];
        assert_eq!(k, 1088 + 16);
        // The shared secret, which only the initiator's KEM key gives.
        let (_, sk) = securecom_core::kem::keypair_from_seed(&KEM_SEED);
        let ss = Fips203MlKem768::decapsulate(ct, &sk[..]).unwrap();
        assert!(
            attacker_opens(&h_outer, pk, ct, &ss[..], &hybrid, first),
            "{pattern:?}: the replayed schedule with both secrets"
        );
        // Without ML-KEM's secret: every guess fails (implicit rejection's
        // output included: a decapsulation with another key).
        let (_, other_sk) = securecom_core::kem::keypair_from_seed(&[0x11; 64]);
        let rejected = Fips203MlKem768::decapsulate(ct, &other_sk[..]).unwrap();
        for guess in [[0u8; 32], [0xff; 32], *rejected] {
            assert!(!attacker_opens(&h_outer, pk, ct, &guess, &hybrid, first));
        }
        // Without the X25519 handshake's secret (ML-KEM broken: `ss` known).
        for psk in [[0u8; 32], *oi.rekey_psk().bytes_for_testing_only()] {
            assert!(!attacker_opens(&h_outer, pk, ct, &ss[..], &psk, first));
        }
    }
}
