//! Interoperability of our Noise wrapper (`securecom_core::noise`, on clatter)
//! with an independent implementation, `snow` 0.10, on the crypto provider
//! `super::Provider` of the crate that includes this module (the core's
//! tests: RustCrypto; securecom-host's: aws-lc-rs).
//!
//! For XX, NNpsk0 and KK, in both roles (ours initiator / snow responder and
//! the reverse), a full handshake with non-empty payloads in every message,
//! the same handshake hash and static keys on both sides, then transport
//! messages both ways (empty, small, and the largest plaintext we allow).
//! Also: a pinned key that does not match makes our XX handshake fail with
//! `PeerKeyMismatch`, and a one-byte change anywhere in a snow-made handshake
//! or transport message is rejected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// `Side`/`Session` hold our heap-free states inline, as the core does.
#![allow(clippy::large_enum_variant)]

use super::Provider as P;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use securecom_core::noise::{
    chat_prologue, Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, Transport,
    MAX_CHAT_PROLOGUE, REQUEST_PROLOGUE, STANDARD_PROLOGUE,
};
use securecom_core::{
    CryptoError, Instant, Limits, PublicKey, StaticSecret, MAX_NOISE_MESSAGE, MAX_PLAINTEXT,
};

const PATTERNS: [Pattern; 3] = [Pattern::XX, Pattern::NNpsk0, Pattern::KK];

/// Everything both sides of one handshake are configured with.
struct Setup {
    pattern: Pattern,
    prologue: Vec<u8>,
    init_static: StaticSecret,
    resp_static: StaticSecret,
    psk: [u8; 32],
}

impl Setup {
    fn new(pattern: Pattern, seed: u64) -> Setup {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let init_static = StaticSecret::generate(&mut rng);
        let resp_static = StaticSecret::generate(&mut rng);
        let mut psk = [0u8; 32];
        rng.fill_bytes(&mut psk);
        // The real prologues of secureCom's three channels.
        let prologue = match pattern {
            Pattern::XX => STANDARD_PROLOGUE.to_vec(),
            Pattern::NNpsk0 => REQUEST_PROLOGUE.to_vec(),
            Pattern::KK => {
                let mut buf = [0u8; MAX_CHAT_PROLOGUE];
                let (a, b) = (init_static.public_key(), resp_static.public_key());
                chat_prologue(7, (&a, "alice"), (&b, "bob"), &mut buf).to_vec()
            }
        };
        Setup {
            pattern,
            prologue,
            init_static,
            resp_static,
            psk,
        }
    }

    fn has_statics(&self) -> bool {
        self.pattern != Pattern::NNpsk0
    }

    fn local(&self, initiator: bool) -> &StaticSecret {
        if initiator {
            &self.init_static
        } else {
            &self.resp_static
        }
    }

    fn peer_public(&self, initiator: bool) -> PublicKey {
        self.local(!initiator).public_key()
    }

    /// Our side, with a pinned peer key where the pattern has static keys.
    fn ours(&self, initiator: bool, rng: &mut ChaCha20Rng) -> Handshake<P> {
        let check = if self.has_statics() {
            RemoteCheck::Exactly(self.peer_public(initiator))
        } else {
            RemoteCheck::Any
        };
        self.ours_with_check(initiator, check, rng)
    }

    fn ours_with_check(
        &self,
        initiator: bool,
        check: RemoteCheck,
        rng: &mut ChaCha20Rng,
    ) -> Handshake<P> {
        let psk = Psk::from_bytes(self.psk);
        let params = HandshakeParams {
            pattern: self.pattern,
            initiator,
            prologue: &self.prologue,
            local_static: self.has_statics().then(|| self.local(initiator)),
            remote_static: (self.pattern == Pattern::KK).then(|| self.peer_public(initiator)),
            psk: (self.pattern == Pattern::NNpsk0).then_some(&psk),
            check,
        };
        Handshake::<P>::new(params, rng).expect("our handshake")
    }

    /// snow's side, configured the same way.
    fn snow(&self, initiator: bool) -> snow::HandshakeState {
        let params: snow::params::NoiseParams = self
            .pattern
            .protocol_name()
            .parse()
            .expect("snow knows the protocol name");
        let local = self.local(initiator).to_bytes();
        let peer = self.peer_public(initiator);
        let mut b = snow::Builder::new(params)
            .prologue(&self.prologue)
            .expect("prologue");
        if self.has_statics() {
            b = b.local_private_key(&local).expect("local key");
        }
        if self.pattern == Pattern::KK {
            b = b.remote_public_key(peer.as_bytes()).expect("remote key");
        }
        if self.pattern == Pattern::NNpsk0 {
            b = b.psk(0, &self.psk).expect("psk");
        }
        if initiator {
            b.build_initiator().expect("snow initiator")
        } else {
            b.build_responder().expect("snow responder")
        }
    }
}

/// One side of a handshake: ours or snow's.
enum Side {
    Ours(Handshake<P>),
    Snow(snow::HandshakeState),
}

impl Side {
    fn write(&mut self, payload: &[u8], out: &mut [u8]) -> usize {
        match self {
            Side::Ours(h) => h.write_message(payload, out).expect("our write"),
            Side::Snow(h) => h.write_message(payload, out).expect("snow write"),
        }
    }
}

/// A finished session: ours or snow's, with what it learned.
enum Session {
    Ours(Transport<P>),
    Snow(snow::TransportState),
}

impl Session {
    fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> usize {
        match self {
            Session::Ours(t) => t.encrypt(plaintext, out).expect("our encrypt"),
            Session::Snow(t) => t.write_message(plaintext, out).expect("snow encrypt"),
        }
    }

    fn decrypt(&mut self, ciphertext: &[u8], out: &mut [u8]) -> usize {
        match self {
            Session::Ours(t) => t.decrypt(ciphertext, out).expect("our decrypt"),
            Session::Snow(t) => t.read_message(ciphertext, out).expect("snow decrypt"),
        }
    }
}

fn payload(pattern: Pattern, i: usize, who: &str) -> Vec<u8> {
    format!("{pattern:?} handshake message {i} from {who}").into_bytes()
}

/// Runs the whole handshake; returns (our session, snow's session).
fn handshake(
    setup: &Setup,
    ours_initiator: bool,
    seed: u64,
) -> (Transport<P>, snow::TransportState) {
    let pattern = setup.pattern;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut ours = Side::Ours(setup.ours(ours_initiator, &mut rng));
    let mut theirs = Side::Snow(setup.snow(!ours_initiator));
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];

    for i in 0..pattern.messages() {
        let ours_writes = (i % 2 == 0) == ours_initiator;
        let (writer, reader, who) = if ours_writes {
            (&mut ours, &mut theirs, "securecom")
        } else {
            (&mut theirs, &mut ours, "snow")
        };
        let p = payload(pattern, i, who);
        let n = writer.write(&p, &mut wire);
        let m = match reader {
            Side::Ours(h) => h
                .read_message(&wire[..n], &mut plain)
                .unwrap_or_else(|e| panic!("{pattern:?} msg {i}: we reject snow: {e:?}")),
            Side::Snow(h) => h
                .read_message(&wire[..n], &mut plain)
                .unwrap_or_else(|e| panic!("{pattern:?} msg {i}: snow rejects us: {e:?}")),
        };
        assert_eq!(&plain[..m], &p[..], "{pattern:?} msg {i}: payload");
    }

    let (Side::Ours(ours), Side::Snow(theirs)) = (ours, theirs) else {
        unreachable!()
    };
    assert!(ours.is_finished() && theirs.is_handshake_finished());
    let snow_hash = theirs.get_handshake_hash().to_vec();
    let snow_remote = theirs.get_remote_static().map(<[u8]>::to_vec);
    let ours = ours
        .into_transport(&Limits::DEFAULT, Instant::ZERO)
        .expect("our transport");
    let theirs = theirs.into_transport_mode().expect("snow transport");

    assert_eq!(
        &ours.handshake_hash()[..],
        &snow_hash[..],
        "{pattern:?}: handshake hash"
    );
    if setup.has_statics() {
        let want_ours = setup.peer_public(ours_initiator);
        let want_snow = setup.local(ours_initiator).public_key();
        assert_eq!(ours.remote_static(), Some(want_ours), "{pattern:?}: our rs");
        assert_eq!(
            snow_remote.as_deref(),
            Some(&want_snow.as_bytes()[..]),
            "{pattern:?}: snow's rs"
        );
    } else {
        assert_eq!(ours.remote_static(), None);
        assert_eq!(snow_remote, None);
    }
    (ours, theirs)
}

/// Transport<P> messages both ways, in both orders, of several sizes.
fn exchange(
    ours: Transport<P>,
    theirs: snow::TransportState,
) -> (Transport<P>, snow::TransportState) {
    let mut a = Session::Ours(ours);
    let mut b = Session::Snow(theirs);
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];
    let sizes = [0usize, 1, 15, 16, 17, 64, 255, 480, MAX_PLAINTEXT];
    let (mut sent, mut received) = (0u64, 0u64);
    for (k, &len) in sizes.iter().enumerate() {
        // Several messages in a row one way, then the other, then alternating.
        for dir in 0..3 {
            let ours_sends = match dir {
                0 => true,
                1 => false,
                _ => k % 2 == 0,
            };
            let msg: Vec<u8> = (0..len).map(|j| (j * 31 + k * 7 + dir) as u8).collect();
            let (tx, rx) = if ours_sends {
                sent += 1;
                (&mut a, &mut b)
            } else {
                received += 1;
                (&mut b, &mut a)
            };
            let n = tx.encrypt(&msg, &mut wire);
            assert_eq!(n, len + 16);
            let m = rx.decrypt(&wire[..n], &mut plain);
            assert_eq!(
                &plain[..m],
                &msg[..],
                "transport len {len}, ours sends: {ours_sends}"
            );
        }
    }
    let (Session::Ours(ours), Session::Snow(theirs)) = (a, b) else {
        unreachable!()
    };
    assert_eq!(
        (ours.sent(), ours.received()),
        (sent, received),
        "our counters"
    );
    (ours, theirs)
}

#[test]
fn handshake_and_transport_with_snow_in_both_roles() {
    let mut runs = 0;
    for (k, &pattern) in PATTERNS.iter().enumerate() {
        for ours_initiator in [true, false] {
            let setup = Setup::new(pattern, 100 + k as u64);
            let (ours, theirs) = handshake(&setup, ours_initiator, 200 + k as u64);
            let (mut ours, mut theirs) = exchange(ours, theirs);

            // A snow-made transport message with one byte changed is rejected by us.
            let mut wire = [0u8; MAX_NOISE_MESSAGE];
            let mut plain = [0u8; MAX_NOISE_MESSAGE];
            let n = theirs
                .write_message(b"last one", &mut wire)
                .expect("snow encrypt");
            wire[3] ^= 0x01;
            assert_eq!(
                ours.decrypt(&wire[..n], &mut plain),
                Err(CryptoError::DecryptFailed),
                "{pattern:?}: changed transport message"
            );
            println!(
                "{}: ours {} / snow {}: handshake, {} transport messages sent, {} received: OK",
                pattern.protocol_name(),
                if ours_initiator {
                    "initiator"
                } else {
                    "responder"
                },
                if ours_initiator {
                    "responder"
                } else {
                    "initiator"
                },
                ours.sent(),
                ours.received()
            );
            runs += 1;
        }
    }
    assert_eq!(runs, 6);
}

/// Our ephemeral key comes from the caller's RNG and nowhere else: the same
/// seed gives the same first XX message (`e` in clear), another seed another.
#[test]
fn our_ephemeral_comes_from_the_callers_rng() {
    let setup = Setup::new(Pattern::XX, 1);
    let first = |seed| {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut wire = [0u8; MAX_NOISE_MESSAGE];
        let n = setup
            .ours(true, &mut rng)
            .write_message(b"", &mut wire)
            .unwrap();
        wire[..n].to_vec()
    };
    assert_eq!(first(10), first(10));
    assert_ne!(first(10), first(11));
}

#[test]
fn pinned_key_mismatch_fails_xx_against_snow() {
    let setup = Setup::new(Pattern::XX, 3);
    let wrong = StaticSecret::from_bytes([9u8; 32]).public_key();
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];

    // Ours initiator: the responder's key arrives in message 2.
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut ours = setup.ours_with_check(true, RemoteCheck::Exactly(wrong), &mut rng);
    let mut snow = setup.snow(false);
    let n = ours.write_message(b"hello", &mut wire).unwrap();
    snow.read_message(&wire[..n], &mut plain).unwrap();
    let n = snow.write_message(b"it is me", &mut wire).unwrap();
    assert_eq!(
        ours.read_message(&wire[..n], &mut plain),
        Err(CryptoError::PeerKeyMismatch)
    );

    // Ours responder: the initiator's key arrives in message 3.
    let mut ours = setup.ours_with_check(false, RemoteCheck::Exactly(wrong), &mut rng);
    let mut snow = setup.snow(true);
    let n = snow.write_message(b"hello", &mut wire).unwrap();
    ours.read_message(&wire[..n], &mut plain).unwrap();
    let n = ours.write_message(b"", &mut wire).unwrap();
    snow.read_message(&wire[..n], &mut plain).unwrap();
    let n = snow.write_message(b"it is me", &mut wire).unwrap();
    assert_eq!(
        ours.read_message(&wire[..n], &mut plain),
        Err(CryptoError::PeerKeyMismatch)
    );
}

/// Every snow-made handshake message, with one byte changed at a dozen
/// positions (key edges, middle, tag; every position takes a minute in a
/// debug build): the
/// handshake must fail. A message carrying an AEAD tag is rejected by our
/// `read_message` itself. The only message without one is XX's first (`e`
/// and a clear payload), which Noise authenticates only afterwards: our
/// reply is then made over a different transcript and snow rejects it.
#[test]
fn changed_byte_in_snow_handshake_message_is_rejected() {
    let mut rejected_by_us = 0;
    let mut rejected_by_snow = 0;
    for (k, &pattern) in PATTERNS.iter().enumerate() {
        let setup = Setup::new(pattern, 300 + k as u64);
        for ours_initiator in [true, false] {
            // Indices of the messages snow writes.
            let snow_writes = (0..pattern.messages()).filter(|i| (i % 2 == 0) != ours_initiator);
            for target in snow_writes {
                // Byte 0 first, to learn the message length.
                let len = match tampered_handshake(&setup, ours_initiator, target, 0, 0x01) {
                    Tampered::RejectedByUs(l) | Tampered::RejectedBySnow(l) => l,
                };
                // The edges of the ephemeral key (byte 31 bit 7 is masked by
                // X25519 itself), of the static key, the middle, and the tag.
                let mut cases = vec![(31, 0x80u8)];
                for pos in [
                    0,
                    1,
                    31,
                    32,
                    47,
                    48,
                    63,
                    64,
                    len / 2,
                    len - 17,
                    len - 16,
                    len - 1,
                ] {
                    if pos < len && !cases.contains(&(pos, 0x01)) {
                        cases.push((pos, 0x01));
                    }
                }
                for (pos, flip) in cases {
                    match tampered_handshake(&setup, ours_initiator, target, pos, flip) {
                        Tampered::RejectedByUs(_) => rejected_by_us += 1,
                        Tampered::RejectedBySnow(_) => {
                            assert!(
                                pattern == Pattern::XX && target == 0,
                                "{pattern:?} msg {target} byte {pos}: we accepted it"
                            );
                            rejected_by_snow += 1;
                        }
                    }
                }
            }
        }
    }
    println!("changed bytes: {rejected_by_us} rejected by us, {rejected_by_snow} (XX msg 0) by snow next");
    assert!(rejected_by_us > 0 && rejected_by_snow > 0);
}

enum Tampered {
    /// Our `read_message` failed on the changed message (its length given).
    RejectedByUs(usize),
    /// We accepted it, but snow then failed on our next message.
    RejectedBySnow(usize),
}

fn tampered_handshake(
    setup: &Setup,
    ours_initiator: bool,
    target: usize,
    pos: usize,
    flip: u8,
) -> Tampered {
    let pattern = setup.pattern;
    let mut rng = ChaCha20Rng::seed_from_u64(pos as u64);
    let mut ours = setup.ours(ours_initiator, &mut rng);
    let mut snow = setup.snow(!ours_initiator);
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];
    let mut accepted: Option<usize> = None;
    for i in 0..pattern.messages() {
        let ours_writes = (i % 2 == 0) == ours_initiator;
        let p = payload(pattern, i, "x");
        if ours_writes {
            let n = ours.write_message(&p, &mut wire).expect("our write");
            match snow.read_message(&wire[..n], &mut plain) {
                Ok(_) => {}
                Err(_) => {
                    return Tampered::RejectedBySnow(
                        accepted.expect("snow fails only after tampering"),
                    )
                }
            }
        } else {
            let n = snow.write_message(&p, &mut wire).expect("snow write");
            if i == target {
                wire[pos] ^= flip;
                match ours.read_message(&wire[..n], &mut plain) {
                    Err(e) => {
                        assert_eq!(
                            e,
                            CryptoError::HandshakeFailed,
                            "{pattern:?} msg {i} byte {pos}"
                        );
                        return Tampered::RejectedByUs(n);
                    }
                    Ok(_) => accepted = Some(n),
                }
            } else {
                ours.read_message(&wire[..n], &mut plain)
                    .expect("untouched message");
            }
        }
    }
    panic!("{pattern:?}: handshake with byte {pos} of message {target} changed went through");
}
