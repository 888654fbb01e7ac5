//! Per-operation timings of the host crypto provider (`securecom_host::crypto`)
//! against clatter's RustCrypto primitives (and the core's portable ML-KEM,
//! `fips203`) and against aws-lc-rs's safe API.
//!
//! `cargo run -p securecom-host --release --example crypto_bench`
//!
//! Each figure is the best, over 60 batches, of the mean time per call.

use std::hint::black_box;
use std::time::Instant;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
use clatter::bytearray::SensitiveByteArray;
use clatter::crypto::cipher::ChaChaPoly;
use clatter::crypto::dh::X25519;
use clatter::crypto::hash::Blake2s;
use clatter::handshakepattern::noise_xx;
use clatter::traits::{Cipher, Dh, Handshaker, Kem};
use clatter::{KeyPair, NqHandshakeCore};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use securecom_core::crypto::{CryptoProvider, MlKem768};
use securecom_core::kem::Fips203MlKem768;
use securecom_core::noise::NoInternalRng;
use securecom_host::crypto::{AwsLcChaChaPoly, AwsLcMlKem768, AwsLcX25519};

/// The message size the brief asks about (a typical secureCom frame).
const MSG: usize = 283;

/// Nanoseconds per call of `f`: the best, over 60 batches of `iters / 60`
/// calls, of the mean per call (the minimum filters out other load on the
/// machine).
fn time(iters: u32, mut f: impl FnMut()) -> f64 {
    let batches = 60;
    let per_batch = (iters / batches).max(1);
    for _ in 0..per_batch {
        f();
    }
    (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(per_batch)
        })
        .fold(f64::INFINITY, f64::min)
}

fn row(name: &str, ns: f64, baseline: Option<f64>) {
    match baseline {
        Some(b) => println!("{name:<52} {ns:>9.0} ns   x{:.2} vs RustCrypto", b / ns),
        None => println!("{name:<52} {ns:>9.0} ns"),
    }
}

type Key = SensitiveByteArray<[u8; 32]>;

fn x25519() {
    let k: Key = SensitiveByteArray::new([0x41; 32]);
    let peer = X25519::pubkey(&SensitiveByteArray::new([0x17; 32]));
    let n = 20_000;

    println!("X25519");
    let rc_dh = time(n, || {
        black_box(X25519::dh(black_box(&k), black_box(&peer)).unwrap());
    });
    row("  clatter X25519::dh (x25519-dalek)", rc_dh, None);
    let aws_dh = time(n, || {
        black_box(AwsLcX25519::dh(black_box(&k), black_box(&peer)).unwrap());
    });
    row("  AwsLcX25519::dh (raw X25519)", aws_dh, Some(rc_dh));
    let safe_dh = time(n, || {
        let sk =
            agreement::PrivateKey::from_private_key(&agreement::X25519, black_box(&k[..])).unwrap();
        let pk = UnparsedPublicKey::new(&agreement::X25519, black_box(&peer));
        agreement::agree(&sk, pk, (), |s| {
            black_box(s);
            Ok(())
        })
        .unwrap();
    });
    row("  aws-lc-rs from_private_key + agree", safe_dh, Some(rc_dh));
    let construct = time(n, || {
        black_box(
            agreement::PrivateKey::from_private_key(&agreement::X25519, black_box(&k[..])).unwrap(),
        );
    });
    row("  aws-lc-rs from_private_key alone", construct, None);

    let rc_pub = time(n, || {
        black_box(X25519::pubkey(black_box(&k)));
    });
    row(
        "  clatter X25519::pubkey (dalek, precomputed tables)",
        rc_pub,
        None,
    );
    let aws_pub = time(n, || {
        black_box(AwsLcX25519::pubkey(black_box(&k)));
    });
    row(
        "  AwsLcX25519::pubkey (X25519_public_from_private)",
        aws_pub,
        Some(rc_pub),
    );
    let safe_pub = time(n, || {
        let sk =
            agreement::PrivateKey::from_private_key(&agreement::X25519, black_box(&k[..])).unwrap();
        black_box(sk.compute_public_key().unwrap());
    });
    row(
        "  aws-lc-rs from_private_key + compute_public_key",
        safe_pub,
        Some(rc_pub),
    );
}

fn chacha(len: usize, ad_len: usize, n: u32) {
    let k: Key = SensitiveByteArray::new([0x42; 32]);
    let ad = vec![0x5a; ad_len];
    let pt = vec![0xa5; len];
    let mut ct = vec![0u8; len + 16];
    ChaChaPoly::encrypt(&k, 7, &ad, &pt, &mut ct).unwrap();
    let mut out = vec![0u8; len + 16];
    let mut back = vec![0u8; len];

    println!("ChaCha20-Poly1305, {len} B plaintext, {ad_len} B ad");
    let rc_enc = time(n, || {
        ChaChaPoly::encrypt(&k, 7, black_box(&ad), black_box(&pt), &mut out).unwrap();
    });
    row("  clatter ChaChaPoly::encrypt", rc_enc, None);
    let aws_enc = time(n, || {
        AwsLcChaChaPoly::encrypt(&k, 7, black_box(&ad), black_box(&pt), &mut out).unwrap();
    });
    row(
        "  AwsLcChaChaPoly::encrypt (stack EVP_AEAD_CTX)",
        aws_enc,
        Some(rc_enc),
    );
    let rc_dec = time(n, || {
        ChaChaPoly::decrypt(&k, 7, black_box(&ad), black_box(&ct), &mut back).unwrap();
    });
    row("  clatter ChaChaPoly::decrypt", rc_dec, None);
    let aws_dec = time(n, || {
        AwsLcChaChaPoly::decrypt(&k, 7, black_box(&ad), black_box(&ct), &mut back).unwrap();
    });
    row("  AwsLcChaChaPoly::decrypt", aws_dec, Some(rc_dec));

    let mut buf = ct.clone();
    let rc_eip = time(n, || {
        ChaChaPoly::encrypt_in_place(&k, 7, black_box(&ad), &mut buf, len).unwrap();
    });
    row("  clatter ChaChaPoly::encrypt_in_place", rc_eip, None);
    let aws_eip = time(n, || {
        AwsLcChaChaPoly::encrypt_in_place(&k, 7, black_box(&ad), &mut buf, len).unwrap();
    });
    row("  AwsLcChaChaPoly::encrypt_in_place", aws_eip, Some(rc_eip));
    // Decrypting in place changes the buffer: restore the ciphertext each
    // time (both pay the same 300-byte copy).
    let rc_dip = time(n, || {
        buf.copy_from_slice(&ct);
        ChaChaPoly::decrypt_in_place(&k, 7, black_box(&ad), &mut buf, len + 16).unwrap();
    });
    row(
        "  clatter ChaChaPoly::decrypt_in_place (+copy)",
        rc_dip,
        None,
    );
    let aws_dip = time(n, || {
        buf.copy_from_slice(&ct);
        AwsLcChaChaPoly::decrypt_in_place(&k, 7, black_box(&ad), &mut buf, len + 16).unwrap();
    });
    row(
        "  AwsLcChaChaPoly::decrypt_in_place (+copy)",
        aws_dip,
        Some(rc_dip),
    );

    let mut nonce = [0u8; 12];
    nonce[4] = 7;
    let safe_enc = time(n, || {
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k[..]).unwrap());
        let (body, tag) = out.split_at_mut(len);
        body.copy_from_slice(black_box(&pt));
        let t = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(black_box(&ad[..])),
                body,
            )
            .unwrap();
        tag.copy_from_slice(t.as_ref());
    });
    row(
        "  aws-lc-rs UnboundKey per call + seal",
        safe_enc,
        Some(rc_enc),
    );
    let safe_dec = time(n, || {
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k[..]).unwrap());
        buf.copy_from_slice(&ct);
        black_box(
            key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(black_box(&ad[..])),
                &mut buf,
            )
            .unwrap(),
        );
    });
    row(
        "  aws-lc-rs UnboundKey per call + open (+copy)",
        safe_dec,
        Some(rc_dip),
    );
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k[..]).unwrap());
    let kept = time(n, || {
        let (body, tag) = out.split_at_mut(len);
        body.copy_from_slice(black_box(&pt));
        let t = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(black_box(&ad[..])),
                body,
            )
            .unwrap();
        tag.copy_from_slice(t.as_ref());
    });
    row(
        "  aws-lc-rs key kept across calls + seal",
        kept,
        Some(rc_enc),
    );
}

/// One whole Noise_XX handshake, both sides, keys and ephemerals given (as
/// the core does: it computes the public keys once per key).
fn xx<D: Dh<PubKey = [u8; 32], PrivateKey = Key>, C: Cipher>() {
    let kp = |b: u8| {
        let secret: Key = SensitiveByteArray::new([b; 32]);
        KeyPair {
            public: D::pubkey(&secret),
            secret,
        }
    };
    let (is, ie, rs, re) = (kp(1), kp(2), kp(3), kp(4));
    let mut i = NqHandshakeCore::<D, C, Blake2s, NoInternalRng>::new(
        noise_xx(),
        b"p",
        true,
        Some(is),
        Some(ie),
        None,
        None,
    )
    .unwrap();
    let mut r = NqHandshakeCore::<D, C, Blake2s, NoInternalRng>::new(
        noise_xx(),
        b"p",
        false,
        Some(rs),
        Some(re),
        None,
        None,
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let mut out = [0u8; 256];
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    let n = r.write_message(&[], &mut buf).unwrap();
    i.read_message(&buf[..n], &mut out).unwrap();
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    black_box((i.finalize().unwrap(), r.finalize().unwrap()));
}

/// clatter's `Rng` wants `Default` and `Clone`, which `ChaCha20Rng` lacks
/// (`Default`); both KEMs draw the same bytes from it.
#[derive(Clone)]
struct BenchRng(ChaCha20Rng);

impl Default for BenchRng {
    fn default() -> Self {
        BenchRng(ChaCha20Rng::seed_from_u64(203))
    }
}
impl RngCore for BenchRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}
impl CryptoRng for BenchRng {}

/// Key generation, encapsulation and decapsulation of one KEM, in ns.
fn kem_ops<K: MlKem768>(n: u32) -> [f64; 3] {
    let mut rng = BenchRng::default();
    let kp = K::genkey_rng(&mut rng).unwrap();
    let (ct, _) = K::encapsulate(&kp.public, &mut rng).unwrap();
    let keygen = time(n, || {
        black_box(K::genkey_rng(&mut rng).unwrap());
    });
    let encaps = time(n, || {
        black_box(K::encapsulate(black_box(&kp.public), &mut rng).unwrap());
    });
    let decaps = time(n, || {
        black_box(K::decapsulate(black_box(&ct), black_box(&kp.secret[..])).unwrap());
    });
    [keygen, encaps, decaps]
}

fn mlkem() {
    let n = 20_000;
    println!("ML-KEM-768 (the same ChaCha20 RNG for both; its draws are in the figures)");
    let [rc_kg, rc_enc, rc_dec] = kem_ops::<Fips203MlKem768>(n);
    let [aws_kg, aws_enc, aws_dec] = kem_ops::<AwsLcMlKem768>(n);
    row("  Fips203MlKem768::genkey_rng (fips203)", rc_kg, None);
    row(
        "  AwsLcMlKem768::genkey_rng (keygen_deterministic)",
        aws_kg,
        Some(rc_kg),
    );
    row("  Fips203MlKem768::encapsulate", rc_enc, None);
    row(
        "  AwsLcMlKem768::encapsulate (encapsulate_determ.)",
        aws_enc,
        Some(rc_enc),
    );
    row("  Fips203MlKem768::decapsulate", rc_dec, None);
    row("  AwsLcMlKem768::decapsulate", aws_dec, Some(rc_dec));
    let rc_all = rc_kg + rc_enc + rc_dec;
    let aws_all = aws_kg + aws_enc + aws_dec;
    row("  one hybrid handshake's KEM work, fips203", rc_all, None);
    row(
        "  one hybrid handshake's KEM work, AWS-LC",
        aws_all,
        Some(rc_all),
    );

    // aws-lc-rs's safe API, for comparison: AWS-LC's own RNG (no seeded
    // variant), keys as heap objects.
    let ours = AwsLcMlKem768::genkey_rng(&mut BenchRng::default()).unwrap();
    let dk = DecapsulationKey::new(&ML_KEM_768, &ours.secret[..]).unwrap();
    let generated = DecapsulationKey::generate(&ML_KEM_768).unwrap();
    let ek_bytes = generated.encapsulation_key().unwrap().key_bytes().unwrap();
    let ek_bytes = ek_bytes.as_ref().to_vec();
    let (ct, _) = EncapsulationKey::new(&ML_KEM_768, &ek_bytes)
        .unwrap()
        .encapsulate()
        .unwrap();
    let ct = ct.as_ref().to_vec();
    let safe_kg = time(n, || {
        black_box(DecapsulationKey::generate(&ML_KEM_768).unwrap());
    });
    row(
        "  aws-lc-rs DecapsulationKey::generate",
        safe_kg,
        Some(rc_kg),
    );
    let safe_enc = time(n, || {
        let ek = EncapsulationKey::new(&ML_KEM_768, black_box(&ek_bytes)).unwrap();
        black_box(ek.encapsulate().unwrap());
    });
    row(
        "  aws-lc-rs EncapsulationKey::new + encapsulate",
        safe_enc,
        Some(rc_enc),
    );
    let dk_bytes = dk.key_bytes().unwrap().as_ref().to_vec();
    let safe_dec = time(n, || {
        let dk = DecapsulationKey::new(&ML_KEM_768, black_box(&dk_bytes)).unwrap();
        black_box(
            dk.decapsulate(Ciphertext::from(black_box(&ct[..])))
                .unwrap(),
        );
    });
    row(
        "  aws-lc-rs DecapsulationKey::new + decapsulate",
        safe_dec,
        Some(rc_dec),
    );
}

/// A session of `P` (XX and the post-quantum layer, as every session opens),
/// as its two ends' re-keyable keys.
fn session<P: CryptoProvider>(
    rng: &mut ChaCha20Rng,
) -> (
    securecom_core::rekey::Keys<P>,
    securecom_core::rekey::Keys<P>,
) {
    use securecom_core::noise::{Handshake, RemoteCheck};
    use securecom_core::pq::PqLayer;
    use securecom_core::{Instant, Limits, StaticSecret};
    let (a, b) = (StaticSecret::generate(rng), StaticSecret::generate(rng));
    let mut i = Handshake::<P>::standard(true, &a, RemoteCheck::Any, rng).expect("xx");
    let mut r = Handshake::<P>::standard(false, &b, RemoteCheck::Any, rng).expect("xx");
    let mut wire = [0u8; 2048];
    let mut plain = [0u8; 2048];
    for k in 0..3 {
        let (w, rd) = if k % 2 == 0 {
            (&mut i, &mut r)
        } else {
            (&mut r, &mut i)
        };
        let n = w.write_message(&[], &mut wire).expect("write");
        rd.read_message(&wire[..n], &mut plain).expect("read");
    }
    let l = Limits::DEFAULT;
    let mut oi = i.into_transport(&l, Instant::ZERO).expect("t");
    let mut or = r.into_transport(&l, Instant::ZERO).expect("t");
    let mut li = PqLayer::new(true, &oi, rng).expect("layer");
    let mut lr = PqLayer::new(false, &or, rng).expect("layer");
    let n = li.write_message(&[], &mut oi, &mut wire).expect("pq1");
    lr.read_message(&mut wire[..n], &mut or, &mut plain)
        .expect("pq1");
    let n = lr.write_message(&[], &mut or, &mut wire).expect("pq2");
    li.read_message(&mut wire[..n], &mut oi, &mut plain)
        .expect("pq2");
    (
        securecom_core::rekey::Keys::new(
            li.into_transport(oi, &l, Instant::ZERO).expect("t"),
            true,
        ),
        securecom_core::rekey::Keys::new(
            lr.into_transport(or, &l, Instant::ZERO).expect("t"),
            false,
        ),
    )
}

/// One re-key in place (PROTOCOL.md 4.10), both sides: its five messages.
fn rekey<P: CryptoProvider>(
    a: &mut securecom_core::rekey::Keys<P>,
    b: &mut securecom_core::rekey::Keys<P>,
    rng: &mut ChaCha20Rng,
) {
    use securecom_core::{Instant, Limits};
    let (l, now) = (Limits::DEFAULT, Instant::ZERO);
    let mut wire = [0u8; 2048];
    let mut plain = [0u8; 2048];
    a.start(now, rng).expect("start");
    for step in 0..5 {
        let (from, to) = if step % 2 == 0 {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        let n = from
            .write_rekey(now, &l, &mut wire)
            .expect("write")
            .expect("due");
        let m = to.decrypt(&wire[..n], &mut plain).expect("decrypt");
        to.read_rekey(&mut plain[..m], now, &l, rng).expect("read");
    }
}

fn rekeys() {
    println!("Re-key in place, both sides (NNpsk0 + ML-KEM-768 layer, 5 messages)");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (mut a, mut b) = session::<securecom_core::RustCrypto>(&mut rng);
    let rc = time(600, || rekey(&mut a, &mut b, &mut rng));
    row("  RustCrypto (the core's, the device's)", rc, None);
    let (mut a, mut b) = session::<securecom_host::HostCrypto>(&mut rng);
    let aws = time(600, || rekey(&mut a, &mut b, &mut rng));
    row("  AWS-LC (the host programs')", aws, Some(rc));
}

fn main() {
    rekeys();
    println!();
    x25519();
    println!();
    mlkem();
    println!();
    chacha(MSG, 0, 200_000);
    println!();
    chacha(MSG, 32, 200_000);
    println!();
    chacha(65535 - 16, 0, 2_000);
    println!();
    println!("Noise_XX handshake, both sides (4 pubkeys + 6 DH + AEAD + BLAKE2s)");
    let rc = time(2_000, xx::<X25519, ChaChaPoly>);
    row("  X25519 + ChaChaPoly", rc, None);
    let aws = time(2_000, xx::<AwsLcX25519, AwsLcChaChaPoly>);
    row("  AwsLcX25519 + AwsLcChaChaPoly", aws, Some(rc));
}
