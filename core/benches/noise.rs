//! Noise benchmarks of the protocol core, each next to an anchor measured in
//! the same run (the machine is shared: only same-run ratios mean anything).
//!
//! - `handshake/{XX,NNpsk0,KK}`: one full in-process handshake (both sides,
//!   empty payloads, into transport mode), our wrapper vs `snow` 0.10.
//! - `hybrid/{XX,NNpsk0,KK}`: the same handshake followed by protocol 3's
//!   post-quantum layer (ML-KEM-768, `pq::PqLayer`), as every session
//!   opens, next to `snow`'s classical handshake (the anchor: what the
//!   layer adds is the ratio's excess over `handshake/`'s).
//! - `rekey`: one re-key in place (`rekey::Keys`: the five messages of
//!   `docs/PROTOCOL.md` 4.10, both sides, each sealed by the running
//!   session), next to `snow`'s `Noise_NNpsk0` handshake (its classical part).
//! - `transport/{64,256,1008}B`: one message encrypted by one side and
//!   decrypted by the other, our `Transport` vs the raw `ChaCha20Poly1305`
//!   AEAD (same copies, no Noise). 1008 B is the largest plaintext a
//!   1024-byte Noise message holds (`MAX_PLAINTEXT`), i.e. our "1 KiB".
//!
//! Run: `cargo bench -p securecom-core --bench noise`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use securecom_core::noise::{
    Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, Transport, REQUEST_PROLOGUE,
    STANDARD_PROLOGUE,
};
use securecom_core::pq::PqLayer;
use securecom_core::rekey::Keys as SessionKeys;
use securecom_core::{Instant, Limits, StaticSecret, MAX_NOISE_MESSAGE, MAX_PLAINTEXT};

const PSK: [u8; 32] = [0x42; 32];

struct Keys {
    init: StaticSecret,
    resp: StaticSecret,
}

fn keys() -> Keys {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    Keys {
        init: StaticSecret::generate(&mut rng),
        resp: StaticSecret::generate(&mut rng),
    }
}

fn prologue(pattern: Pattern) -> &'static [u8] {
    match pattern {
        Pattern::NNpsk0 => REQUEST_PROLOGUE,
        // Any fixed bytes: the chat prologue's length only adds a hash block.
        Pattern::XX | Pattern::KK => STANDARD_PROLOGUE,
    }
}

fn ours(
    pattern: Pattern,
    initiator: bool,
    keys: &Keys,
    psk: &Psk,
    rng: &mut ChaCha20Rng,
) -> Handshake {
    let (local, peer) = if initiator {
        (&keys.init, &keys.resp)
    } else {
        (&keys.resp, &keys.init)
    };
    let params = HandshakeParams {
        pattern,
        initiator,
        prologue: prologue(pattern),
        local_static: (pattern != Pattern::NNpsk0).then_some(local),
        remote_static: (pattern == Pattern::KK).then(|| peer.public_key()),
        psk: (pattern == Pattern::NNpsk0).then_some(psk),
        check: RemoteCheck::Any,
    };
    Handshake::new(params, rng).expect("handshake")
}

/// One full handshake with our wrapper; returns both transports.
fn ours_handshake(
    pattern: Pattern,
    keys: &Keys,
    psk: &Psk,
    rng: &mut ChaCha20Rng,
) -> (Transport, Transport) {
    let mut i = ours(pattern, true, keys, psk, rng);
    let mut r = ours(pattern, false, keys, psk, rng);
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];
    for k in 0..pattern.messages() {
        let (w, rd) = if k % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = w.write_message(&[], &mut wire).expect("write");
        rd.read_message(&wire[..n], &mut plain).expect("read");
    }
    (
        i.into_transport(&Limits::DEFAULT, Instant::ZERO)
            .expect("transport"),
        r.into_transport(&Limits::DEFAULT, Instant::ZERO)
            .expect("transport"),
    )
}

fn snow_side(pattern: Pattern, initiator: bool, keys: &Keys) -> snow::HandshakeState {
    let (local, peer) = if initiator {
        (keys.init.to_bytes(), keys.resp.public_key())
    } else {
        (keys.resp.to_bytes(), keys.init.public_key())
    };
    let params: snow::params::NoiseParams = pattern.protocol_name().parse().expect("params");
    let mut b = snow::Builder::new(params)
        .prologue(prologue(pattern))
        .expect("prologue");
    if pattern != Pattern::NNpsk0 {
        b = b.local_private_key(&local).expect("local key");
    }
    if pattern == Pattern::KK {
        b = b.remote_public_key(peer.as_bytes()).expect("remote key");
    }
    if pattern == Pattern::NNpsk0 {
        b = b.psk(0, &PSK).expect("psk");
    }
    if initiator {
        b.build_initiator().expect("initiator")
    } else {
        b.build_responder().expect("responder")
    }
}

/// The same handshake with snow.
fn snow_handshake(pattern: Pattern, keys: &Keys) -> (snow::TransportState, snow::TransportState) {
    let mut i = snow_side(pattern, true, keys);
    let mut r = snow_side(pattern, false, keys);
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];
    for k in 0..pattern.messages() {
        let (w, rd) = if k % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = w.write_message(&[], &mut wire).expect("write");
        rd.read_message(&wire[..n], &mut plain).expect("read");
    }
    (
        i.into_transport_mode().expect("transport"),
        r.into_transport_mode().expect("transport"),
    )
}

fn handshakes(c: &mut Criterion) {
    let keys = keys();
    let psk = Psk::from_bytes(PSK);
    for pattern in [Pattern::XX, Pattern::NNpsk0, Pattern::KK] {
        let mut g = c.benchmark_group(format!("handshake/{pattern:?}"));
        g.throughput(Throughput::Elements(1));
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        g.bench_function("securecom", |b| {
            b.iter(|| black_box(ours_handshake(pattern, &keys, &psk, &mut rng)))
        });
        g.bench_function("snow", |b| {
            b.iter(|| black_box(snow_handshake(pattern, &keys)))
        });
        g.finish();
    }
}

/// A classical handshake and the post-quantum layer over it, both sides.
fn ours_hybrid(
    pattern: Pattern,
    keys: &Keys,
    psk: &Psk,
    rng: &mut ChaCha20Rng,
) -> (Transport, Transport) {
    let (mut oi, mut or) = ours_handshake(pattern, keys, psk, rng);
    let mut li = PqLayer::new(true, &oi, rng).expect("layer");
    let mut lr = PqLayer::new(false, &or, rng).expect("layer");
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; 64];
    let n = li.write_message(&[], &mut oi, &mut wire).expect("pq 1");
    lr.read_message(&mut wire[..n], &mut or, &mut plain)
        .expect("pq 1");
    let n = lr.write_message(&[], &mut or, &mut wire).expect("pq 2");
    li.read_message(&mut wire[..n], &mut oi, &mut plain)
        .expect("pq 2");
    (
        li.into_transport(oi, &Limits::DEFAULT, Instant::ZERO)
            .expect("transport"),
        lr.into_transport(or, &Limits::DEFAULT, Instant::ZERO)
            .expect("transport"),
    )
}

fn hybrid(c: &mut Criterion) {
    let keys = keys();
    let psk = Psk::from_bytes(PSK);
    for pattern in [Pattern::XX, Pattern::NNpsk0, Pattern::KK] {
        let mut g = c.benchmark_group(format!("hybrid/{pattern:?}"));
        g.throughput(Throughput::Elements(1));
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        g.bench_function("securecom", |b| {
            b.iter(|| black_box(ours_hybrid(pattern, &keys, &psk, &mut rng)))
        });
        g.bench_function("snow-classical", |b| {
            b.iter(|| black_box(snow_handshake(pattern, &keys)))
        });
        g.finish();
    }
}

/// One whole re-key of a running session, both sides: returns how many
/// bytes crossed the wire.
fn one_rekey(a: &mut SessionKeys, b: &mut SessionKeys, rng: &mut ChaCha20Rng) -> usize {
    let limits = Limits::DEFAULT;
    let now = Instant::ZERO;
    let mut wire = [0u8; MAX_NOISE_MESSAGE];
    let mut plain = [0u8; MAX_NOISE_MESSAGE];
    let mut bytes = 0;
    a.start(now, rng).expect("start");
    for step in 0..5 {
        let (from, to) = if step % 2 == 0 {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        let n = from
            .write_rekey(now, &limits, &mut wire)
            .expect("write")
            .expect("due");
        bytes += n;
        let m = to.decrypt(&wire[..n], &mut plain).expect("decrypt");
        to.read_rekey(&mut plain[..m], now, &limits, rng)
            .expect("read");
    }
    bytes
}

fn rekey(c: &mut Criterion) {
    let keys = keys();
    let psk = Psk::from_bytes(PSK);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (i, r) = ours_hybrid(Pattern::XX, &keys, &psk, &mut rng);
    let (mut a, mut b) = (SessionKeys::new(i, true), SessionKeys::new(r, false));
    let mut g = c.benchmark_group("rekey");
    g.throughput(Throughput::Elements(1));
    g.bench_function("securecom", |bch| {
        bch.iter(|| black_box(one_rekey(&mut a, &mut b, &mut rng)))
    });
    g.bench_function("snow-NNpsk0", |bch| {
        bch.iter(|| black_box(snow_handshake(Pattern::NNpsk0, &keys)))
    });
    g.finish();
    // The re-key's wire bytes (sealed messages, without frame headers).
    eprintln!(
        "rekey: {} bytes on the wire",
        one_rekey(&mut a, &mut b, &mut rng)
    );
}

fn transport(c: &mut Criterion) {
    let keys = keys();
    let psk = Psk::from_bytes(PSK);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for len in [64usize, 256, MAX_PLAINTEXT] {
        let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut g = c.benchmark_group("transport");
        g.throughput(Throughput::Bytes(len as u64));

        // Ours: a real XX session, message from initiator to responder.
        let (mut tx, mut rx) = ours_handshake(Pattern::XX, &keys, &psk, &mut rng);
        let mut wire = [0u8; MAX_NOISE_MESSAGE];
        let mut plain = [0u8; MAX_NOISE_MESSAGE];
        g.bench_function(BenchmarkId::new("securecom", format!("{len}B")), |b| {
            b.iter(|| {
                let n = tx.encrypt(black_box(&msg), &mut wire).expect("encrypt");
                let m = rx.decrypt(&wire[..n], &mut plain).expect("decrypt");
                black_box(&plain[..m]);
            })
        });

        // Anchor: the raw AEAD with a Noise-style nonce, doing the same copies
        // (plaintext into the wire buffer, ciphertext into the plaintext buffer).
        let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
        let mut counter = 0u64;
        g.bench_function(
            BenchmarkId::new("raw-chacha20poly1305", format!("{len}B")),
            |b| {
                b.iter(|| {
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&counter.to_le_bytes());
                    let nonce = Nonce::from(nonce);
                    counter += 1;
                    wire[..len].copy_from_slice(black_box(&msg));
                    let tag = aead
                        .encrypt_in_place_detached(&nonce, &[], &mut wire[..len])
                        .expect("encrypt");
                    wire[len..len + 16].copy_from_slice(&tag);
                    plain[..len].copy_from_slice(&wire[..len]);
                    aead.decrypt_in_place_detached(
                        &nonce,
                        &[],
                        &mut plain[..len],
                        wire[len..len + 16].into(),
                    )
                    .expect("decrypt");
                    black_box(&plain[..len]);
                })
            },
        );
        g.finish();
    }
}

criterion_group! {
    name = noise;
    // Short runs: the whole bench takes about a minute on 2 cores.
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = handshakes, hybrid, rekey, transport
}
criterion_main!(noise);
