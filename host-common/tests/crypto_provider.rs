//! The host crypto provider against clatter's RustCrypto primitives and the
//! core's portable ML-KEM (`fips203`): known answers (RFC 7748), the same
//! bytes on seeded random inputs, low-order and non-canonical points,
//! tampering, maximum-size messages, FIPS 203's key checks, garbage of every
//! length, and whole Noise and PQNoise handshakes (each side on either
//! provider) giving identical transcripts.

use std::panic::{catch_unwind, AssertUnwindSafe};

use clatter::bytearray::{ByteArray, SensitiveByteArray};
use clatter::crypto::cipher::ChaChaPoly;
use clatter::crypto::dh::X25519;
use clatter::crypto::hash::Blake2s;
use clatter::error::KemError;
use clatter::handshakepattern::{
    noise_kk, noise_nn_psk0, noise_pqkk, noise_pqnn, noise_pqxx, noise_xx, HandshakePattern,
};
use clatter::traits::{Cipher, CryptoComponent, Dh, Handshaker, Kem};
use clatter::transportstate::TransportState;
use clatter::{KeyPair, NqHandshakeCore, PqHandshakeCore};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use securecom_core::kem::{Fips203MlKem768, CIPHERTEXT_LEN, PUBLIC_KEY_LEN, SECRET_KEY_LEN};
use securecom_core::noise::NoInternalRng;
use securecom_host::crypto::{AwsLcChaChaPoly, AwsLcMlKem768, AwsLcX25519};
use sha3::Digest;

type Key = SensitiveByteArray<[u8; 32]>;

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn key(b: [u8; 32]) -> Key {
    SensitiveByteArray::new(b)
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random32(r: &mut ChaCha20Rng) -> [u8; 32] {
    let mut b = [0u8; 32];
    r.fill_bytes(&mut b);
    b
}

fn random_vec(r: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    r.fill_bytes(&mut v);
    v
}

// ---------------------------------------------------------------- X25519 --

#[test]
fn same_names_and_types() {
    assert_eq!(AwsLcX25519::name(), X25519::name());
    assert_eq!(AwsLcChaChaPoly::name(), ChaChaPoly::name());
    assert_eq!(AwsLcChaChaPoly::tag_len(), ChaChaPoly::tag_len());
    assert_eq!(AwsLcChaChaPoly::key_len(), ChaChaPoly::key_len());
    // The associated types are the same types: these only compile if so.
    fn same<T>(_: T, _: T) {}
    let k: <X25519 as Dh>::PrivateKey = key([1; 32]);
    let p: <X25519 as Dh>::PubKey = [9; 32];
    same::<<AwsLcX25519 as Dh>::PrivateKey>(k.clone(), k.clone());
    same::<<AwsLcX25519 as Dh>::PubKey>(p, p);
    same::<<AwsLcX25519 as Dh>::Output>(
        AwsLcX25519::dh(&k, &p).unwrap(),
        X25519::dh(&k, &p).unwrap(),
    );
    same::<<AwsLcChaChaPoly as Cipher>::Key>(k.clone(), <ChaChaPoly as Cipher>::Key::new_zero());
}

/// RFC 7748 section 5.2: the two single vectors (the second point has bit
/// 255 set, which must be ignored) and the iterated one.
#[test]
fn rfc7748_section_5_2() {
    let vectors = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for (k, u, out) in vectors {
        let got = AwsLcX25519::dh(&key(h32(k)), &h32(u)).unwrap();
        assert_eq!(*got, h32(out));
        assert_eq!(*X25519::dh(&key(h32(k)), &h32(u)).unwrap(), h32(out));
    }

    assert_eq!(
        iterate(1),
        h32("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
    );
    assert_eq!(
        iterate(1000),
        h32("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
    );
}

/// RFC 7748 section 5.2's iteration (k, u) <- (X25519(k, u), k) from k = u = 9.
fn iterate(times: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for _ in 0..times {
        let next = *AwsLcX25519::dh(&key(k), &u).unwrap();
        u = k;
        k = next;
    }
    k
}

/// The million-step iteration (about half a minute): `--ignored` to run it.
#[test]
#[ignore]
fn rfc7748_section_5_2_million() {
    assert_eq!(
        iterate(1_000_000),
        h32("7c3911e0ab2586fd864497297e575e6f3bc601c0883c30df5f4dd2d24f665424")
    );
}

/// RFC 7748 section 6.1: both key pairs and the shared secret.
#[test]
fn rfc7748_section_6_1() {
    let a = key(h32(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let a_pub = h32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let b = key(h32(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ));
    let b_pub = h32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let shared = h32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(AwsLcX25519::pubkey(&a), a_pub);
    assert_eq!(AwsLcX25519::pubkey(&b), b_pub);
    assert_eq!(*AwsLcX25519::dh(&a, &b_pub).unwrap(), shared);
    assert_eq!(*AwsLcX25519::dh(&b, &a_pub).unwrap(), shared);
}

#[test]
fn dh_and_pubkey_match_clatter_on_random_inputs() {
    let mut r = rng(7748);
    for _ in 0..5000 {
        let k = key(random32(&mut r));
        // Random bytes: bit 255 is set half the time, and a few are >= p.
        let pk = random32(&mut r);
        assert_eq!(AwsLcX25519::pubkey(&k), X25519::pubkey(&k));
        assert_eq!(
            AwsLcX25519::dh(&k, &pk).unwrap(),
            X25519::dh(&k, &pk).unwrap()
        );
        // A real public key as the peer, and both directions agreeing.
        let k2 = key(random32(&mut r));
        let p2 = AwsLcX25519::pubkey(&k2);
        let s = AwsLcX25519::dh(&k, &p2).unwrap();
        assert_eq!(s, X25519::dh(&k, &p2).unwrap());
        assert_eq!(s, AwsLcX25519::dh(&k2, &AwsLcX25519::pubkey(&k)).unwrap());
    }
}

/// clatter's `Rng` also wants `Default`, which `ChaCha20Rng` lacks.
#[derive(Clone)]
struct Seeded(ChaCha20Rng);

impl Default for Seeded {
    fn default() -> Self {
        Seeded(rng(0))
    }
}
impl RngCore for Seeded {
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
impl CryptoRng for Seeded {}

#[test]
fn genkey_rng_matches_clatter() {
    for seed in 0..200 {
        let a = AwsLcX25519::genkey_rng(&mut Seeded(rng(seed))).unwrap();
        let b = X25519::genkey_rng(&mut Seeded(rng(seed))).unwrap();
        assert_eq!(a.public, b.public);
        assert_eq!(a.secret, b.secret);
        assert_eq!(a.public, X25519::pubkey(&a.secret));
    }
    // Both draw exactly 32 bytes from the RNG.
    let (mut r1, mut r2) = (Seeded(rng(1)), Seeded(rng(1)));
    AwsLcX25519::genkey_rng(&mut r1).unwrap();
    X25519::genkey_rng(&mut r2).unwrap();
    assert_eq!(r1.next_u64(), r2.next_u64());
}

/// The u-coordinates of the points of order 1, 2, 4 and 8 and their
/// non-canonical encodings (core/src/keys.rs `LOW_ORDER`).
fn low_order() -> Vec<[u8; 32]> {
    let p_minus_1 = h32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    let p = h32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    let p_plus_1 = h32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    let mut one = [0u8; 32];
    one[0] = 1;
    vec![
        [0; 32],
        one,
        h32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        h32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        p_minus_1,
        p,
        p_plus_1,
    ]
}

#[test]
fn low_order_points_give_zeros_like_clatter() {
    let mut r = rng(8);
    let mut points = low_order();
    points.extend(
        low_order()
            .into_iter()
            .map(|mut u| {
                u[31] |= 0x80;
                u
            })
            .collect::<Vec<_>>(),
    );
    assert_eq!(points.len(), 14);
    for u in &points {
        for _ in 0..200 {
            let k = key(random32(&mut r));
            let ours = AwsLcX25519::dh(&k, u).unwrap();
            assert_eq!(*ours, [0u8; 32], "low-order point {u:02x?}");
            assert_eq!(ours, X25519::dh(&k, u).unwrap());
        }
    }
}

/// Encodings of u >= p (p..2^255-1) and with bit 255 set: reduced mod p
/// and masked, identically.
#[test]
fn non_canonical_points_match_clatter() {
    let mut r = rng(9);
    let p = h32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    let mut points = Vec::new();
    for add in 0..=18u8 {
        let mut u = p;
        u[0] += add;
        points.push(u);
        let mut high = u;
        high[31] |= 0x80;
        points.push(high);
    }
    points.push([0xff; 32]);
    for _ in 0..100 {
        let mut u = random32(&mut r);
        u[31] |= 0x80;
        points.push(u);
    }
    for u in &points {
        for _ in 0..20 {
            let k = key(random32(&mut r));
            assert_eq!(
                AwsLcX25519::dh(&k, u).unwrap(),
                X25519::dh(&k, u).unwrap(),
                "point {u:02x?}"
            );
        }
    }
}

// ----------------------------------------------------- ChaCha20-Poly1305 --

/// The Noise maximum message length, tag included.
const MAX_MESSAGE: usize = 65535;

fn sizes(r: &mut ChaCha20Rng) -> Vec<usize> {
    let mut v = vec![
        0,
        1,
        15,
        16,
        17,
        63,
        64,
        65,
        127,
        128,
        129,
        255,
        256,
        257,
        283,
        511,
        512,
        1024,
        4096,
        MAX_MESSAGE - 16,
    ];
    v.extend((0..400).map(|_| (r.next_u32() % 2048) as usize));
    v
}

fn random_nonce(r: &mut ChaCha20Rng) -> u64 {
    match r.next_u32() % 8 {
        0 => 0,
        1 => u64::MAX,
        2 => u64::MAX - 1,
        3 => r.next_u32() as u64,
        _ => r.next_u64(),
    }
}

#[test]
fn aead_matches_clatter_on_random_inputs() {
    let mut r = rng(8439);
    for len in sizes(&mut r) {
        let k = key(random32(&mut r));
        let n = random_nonce(&mut r);
        let ad_len = (r.next_u32() % 80) as usize;
        let ad = random_vec(&mut r, ad_len);
        let pt = random_vec(&mut r, len);

        // encrypt
        let mut ours = vec![0u8; len + 16];
        let mut theirs = vec![0u8; len + 16];
        AwsLcChaChaPoly::encrypt(&k, n, &ad, &pt, &mut ours).unwrap();
        ChaChaPoly::encrypt(&k, n, &ad, &pt, &mut theirs).unwrap();
        assert_eq!(ours, theirs, "encrypt len {len}");
        let ct = ours;

        // encrypt_in_place, in a buffer longer than needed: the tail is left alone.
        let slack = (r.next_u32() % 32) as usize;
        let mut buf = random_vec(&mut r, len + 16 + slack);
        buf[..len].copy_from_slice(&pt);
        let mut buf2 = buf.clone();
        let tail = buf[len + 16..].to_vec();
        assert_eq!(
            AwsLcChaChaPoly::encrypt_in_place(&k, n, &ad, &mut buf, len).unwrap(),
            len + 16
        );
        assert_eq!(
            ChaChaPoly::encrypt_in_place(&k, n, &ad, &mut buf2, len).unwrap(),
            len + 16
        );
        assert_eq!(buf, buf2);
        assert_eq!(buf[..len + 16], ct[..]);
        assert_eq!(buf[len + 16..], tail[..]);

        // decrypt: each decrypts the other's output.
        let mut out = vec![0u8; len];
        AwsLcChaChaPoly::decrypt(&k, n, &ad, &theirs, &mut out).unwrap();
        assert_eq!(out, pt);
        let mut out2 = vec![0u8; len];
        ChaChaPoly::decrypt(&k, n, &ad, &ct, &mut out2).unwrap();
        assert_eq!(out2, pt);

        // decrypt_in_place, again with slack after the ciphertext.
        let mut b1 = buf.clone();
        let mut b2 = buf.clone();
        assert_eq!(
            AwsLcChaChaPoly::decrypt_in_place(&k, n, &ad, &mut b1, len + 16).unwrap(),
            len
        );
        assert_eq!(
            ChaChaPoly::decrypt_in_place(&k, n, &ad, &mut b2, len + 16).unwrap(),
            len
        );
        assert_eq!(b1[..len], pt[..]);
        assert_eq!(b1[..len], b2[..len]);
        assert_eq!(b1[len..], b2[len..], "tag and tail untouched alike");

        // rekey (the trait's default, through encrypt).
        assert_eq!(
            AwsLcChaChaPoly::rekey(&k).unwrap(),
            ChaChaPoly::rekey(&k).unwrap()
        );
    }
}

/// Decryption that must fail, on both providers; ours leaves no plaintext.
fn assert_rejected(k: &Key, n: u64, ad: &[u8], ct: &[u8], pt: &[u8]) {
    let len = ct.len() - 16;
    let mut out = vec![0u8; len];
    assert!(AwsLcChaChaPoly::decrypt(k, n, ad, ct, &mut out).is_err());
    assert!(out.iter().all(|&b| b == 0) || len == 0);
    let mut theirs = vec![0u8; len];
    assert!(ChaChaPoly::decrypt(k, n, ad, ct, &mut theirs).is_err());

    let mut buf = ct.to_vec();
    assert!(AwsLcChaChaPoly::decrypt_in_place(k, n, ad, &mut buf, ct.len()).is_err());
    assert!(buf[..len].iter().all(|&b| b == 0));
    assert!(len < 8 || buf[..len] != pt[..]);
    let mut buf2 = ct.to_vec();
    assert!(ChaChaPoly::decrypt_in_place(k, n, ad, &mut buf2, ct.len()).is_err());
}

#[test]
fn aead_rejects_tampering_wrong_nonce_and_ad() {
    let mut r = rng(1305);
    for len in [0usize, 1, 16, 17, 64, 283, 1000] {
        let k = key(random32(&mut r));
        let n = random_nonce(&mut r);
        let ad = random_vec(&mut r, 13);
        let pt = random_vec(&mut r, len);
        let mut ct = vec![0u8; len + 16];
        AwsLcChaChaPoly::encrypt(&k, n, &ad, &pt, &mut ct).unwrap();

        // Any byte of ciphertext or tag, any bit.
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 1 << (r.next_u32() % 8);
            assert_rejected(&k, n, &ad, &bad, &pt);
        }
        // Wrong nonce, wrong ad (changed, shortened, extended), wrong key.
        assert_rejected(&k, n.wrapping_add(1), &ad, &ct, &pt);
        assert_rejected(&k, n ^ (1 << 63), &ad, &ct, &pt);
        let mut ad2 = ad.clone();
        ad2[0] ^= 0x80;
        assert_rejected(&k, n, &ad2, &ct, &pt);
        assert_rejected(&k, n, &ad[..12], &ct, &pt);
        assert_rejected(&k, n, &[ad.as_slice(), &[0]].concat(), &ct, &pt);
        assert_rejected(&k, n, &[], &ct, &pt);
        let mut k2 = k.clone();
        k2[31] ^= 1;
        assert_rejected(&k2, n, &ad, &ct, &pt);
        // A truncated message is another message: also rejected.
        if len > 0 {
            assert_rejected(&k, n, &ad, &ct[1..], &pt[1..]);
        }
    }
}

#[test]
fn aead_max_size_message() {
    let mut r = rng(65535);
    let k = key(random32(&mut r));
    let ad = random_vec(&mut r, 32);
    let pt = random_vec(&mut r, MAX_MESSAGE - 16);
    let mut ours = vec![0u8; MAX_MESSAGE];
    let mut theirs = vec![0u8; MAX_MESSAGE];
    AwsLcChaChaPoly::encrypt(&k, 3, &ad, &pt, &mut ours).unwrap();
    ChaChaPoly::encrypt(&k, 3, &ad, &pt, &mut theirs).unwrap();
    assert_eq!(ours, theirs);
    let mut back = vec![0u8; pt.len()];
    AwsLcChaChaPoly::decrypt(&k, 3, &ad, &theirs, &mut back).unwrap();
    assert_eq!(back, pt);
    ours[MAX_MESSAGE - 1] ^= 1;
    assert!(AwsLcChaChaPoly::decrypt(&k, 3, &ad, &ours, &mut back).is_err());
}

/// Wrong buffer lengths panic on both, as the trait documents.
#[test]
fn aead_panics_like_clatter() {
    /// Whether each misuse of the Cipher API panics with cipher `C`.
    fn misuses<C: Cipher<Key = Key>>(k: &Key) -> [bool; 7] {
        fn panics(f: impl FnOnce()) -> bool {
            catch_unwind(AssertUnwindSafe(f)).is_err()
        }
        [
            // encrypt: out must be exactly plaintext + 16.
            panics(|| {
                let _ = C::encrypt(k, 0, &[], &[1; 5], &mut [0u8; 20]);
            }),
            panics(|| {
                let _ = C::encrypt(k, 0, &[], &[1; 5], &mut [0u8; 22]);
            }),
            // encrypt_in_place: buffer shorter than plaintext + 16.
            panics(|| {
                let _ = C::encrypt_in_place(k, 0, &[], &mut [0u8; 20], 5);
            }),
            // decrypt: out must be exactly ciphertext - 16.
            panics(|| {
                let _ = C::decrypt(k, 0, &[], &[0; 21], &mut [0u8; 4]);
            }),
            panics(|| {
                let _ = C::decrypt(k, 0, &[], &[0; 15], &mut [0u8; 0]);
            }),
            // decrypt_in_place: length beyond the buffer, or shorter than a tag.
            panics(|| {
                let _ = C::decrypt_in_place(k, 0, &[], &mut [0u8; 20], 21);
            }),
            panics(|| {
                let _ = C::decrypt_in_place(k, 0, &[], &mut [0u8; 20], 15);
            }),
        ]
    }
    let k = key([7; 32]);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ours = misuses::<AwsLcChaChaPoly>(&k);
    let clatter = misuses::<ChaChaPoly>(&k);
    std::panic::set_hook(hook);
    for (i, (ours, clatter)) in ours.iter().zip(&clatter).enumerate() {
        assert!(ours, "case {i}: ours did not panic");
        assert!(clatter, "case {i}: clatter's did not panic");
    }
}

// ------------------------------------------------------------- handshakes --

type Pair = KeyPair<[u8; 32], Key>;

fn pair(secret: [u8; 32]) -> Pair {
    KeyPair {
        public: X25519::pubkey(&key(secret)),
        secret: key(secret),
    }
}

struct Party {
    s: [u8; 32],
    e: [u8; 32],
}

#[derive(Clone, Copy)]
enum Pat {
    XX,
    KK,
    NNpsk0,
}

impl Pat {
    fn clatter(self) -> HandshakePattern {
        match self {
            Pat::XX => noise_xx(),
            Pat::KK => noise_kk(),
            Pat::NNpsk0 => noise_nn_psk0(),
        }
    }
}

fn engine<D: Dh<PubKey = [u8; 32], PrivateKey = Key>, C: Cipher>(
    pat: Pat,
    initiator: bool,
    me: &Party,
    peer: &Party,
    psk: &[u8; 32],
) -> NqHandshakeCore<D, C, Blake2s, NoInternalRng> {
    let statics = !matches!(pat, Pat::NNpsk0);
    let rs = matches!(pat, Pat::KK).then(|| X25519::pubkey(&key(peer.s)));
    let mut hs = NqHandshakeCore::<D, C, Blake2s, NoInternalRng>::new(
        pat.clatter(),
        b"secureCom/test",
        initiator,
        statics.then(|| pair(me.s)),
        Some(pair(me.e)),
        rs,
        None,
    )
    .unwrap();
    if matches!(pat, Pat::NNpsk0) {
        hs.push_psk(psk);
    }
    hs
}

/// Runs a handshake and transport messages both ways (copying and in place,
/// up to the maximum size), with the initiator on (D1, C1) and the
/// responder on (D2, C2). Returns every message on the wire and the
/// handshake hash.
fn run<D1, C1, D2, C2>(pat: Pat, seed: u64) -> (Vec<Vec<u8>>, Vec<u8>)
where
    D1: Dh<PubKey = [u8; 32], PrivateKey = Key>,
    D2: Dh<PubKey = [u8; 32], PrivateKey = Key>,
    C1: Cipher,
    C2: Cipher,
{
    let mut r = rng(seed);
    let a = Party {
        s: random32(&mut r),
        e: random32(&mut r),
    };
    let b = Party {
        s: random32(&mut r),
        e: random32(&mut r),
    };
    let psk = random32(&mut r);
    let mut i = engine::<D1, C1>(pat, true, &a, &b, &psk);
    let mut j = engine::<D2, C2>(pat, false, &b, &a, &psk);

    let mut wire = Vec::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut payload_out = vec![0u8; MAX_MESSAGE];
    let mut turn = 0;
    while !(i.is_finished() && j.is_finished()) {
        let payload = random_vec(&mut r, 10 + turn * 7);
        let (n, m) = if i.is_write_turn() {
            let n = i.write_message(&payload, &mut buf).unwrap();
            (n, j.read_message(&buf[..n], &mut payload_out).unwrap())
        } else {
            let n = j.write_message(&payload, &mut buf).unwrap();
            (n, i.read_message(&buf[..n], &mut payload_out).unwrap())
        };
        assert_eq!(payload_out[..m], payload[..]);
        wire.push(buf[..n].to_vec());
        turn += 1;
    }
    assert_eq!(
        i.get_remote_static(),
        (!matches!(pat, Pat::NNpsk0)).then(|| X25519::pubkey(&key(b.s)))
    );
    assert_eq!(
        j.get_remote_static(),
        (!matches!(pat, Pat::NNpsk0)).then(|| X25519::pubkey(&key(a.s)))
    );

    let mut ti = i.finalize().unwrap();
    let mut tj = j.finalize().unwrap();
    let hash = ti.get_handshake_hash().as_slice().to_vec();
    assert_eq!(hash, tj.get_handshake_hash().as_slice());
    let mut lens: Vec<usize> = vec![0, 1, 283, 1000, MAX_MESSAGE - 16];
    lens.extend((0..10).map(|_| (r.next_u32() % 3000) as usize));
    for (k, len) in lens.into_iter().enumerate() {
        let msg = random_vec(&mut r, len);
        let in_place = k % 3 == 0;
        let sent = if k % 2 == 0 {
            transport(&mut ti, &mut tj, &msg, in_place)
        } else {
            transport(&mut tj, &mut ti, &msg, in_place)
        };
        wire.push(sent);
    }
    // A tampered transport message is refused by the receiver.
    let n = ti.send(b"last", &mut buf).unwrap();
    buf[0] ^= 1;
    assert!(tj.receive(&buf[..n], &mut payload_out).is_err());
    (wire, hash)
}

/// Sends `msg` from `tx` to `rx` (in place on both ends, or copying) and
/// returns what went on the wire.
fn transport<CA: Cipher, CB: Cipher>(
    tx: &mut TransportState<CA, Blake2s>,
    rx: &mut TransportState<CB, Blake2s>,
    msg: &[u8],
    in_place: bool,
) -> Vec<u8> {
    let len = msg.len();
    if in_place {
        let mut b = msg.to_vec();
        b.resize(len + 16, 0);
        let n = tx.send_in_place(&mut b, len).unwrap();
        let sent = b[..n].to_vec();
        let m = rx.receive_in_place(&mut b, n).unwrap();
        assert_eq!(b[..m], msg[..]);
        sent
    } else {
        let mut b = vec![0u8; len + 16];
        let n = tx.send(msg, &mut b).unwrap();
        let mut out = vec![0u8; len];
        let m = rx.receive(&b[..n], &mut out).unwrap();
        assert_eq!(out[..m], msg[..]);
        b
    }
}

#[test]
fn handshakes_are_byte_identical_and_interoperate() {
    for pat in [Pat::XX, Pat::KK, Pat::NNpsk0] {
        for seed in 0..25 {
            let rc = run::<X25519, ChaChaPoly, X25519, ChaChaPoly>(pat, seed);
            let aws = run::<AwsLcX25519, AwsLcChaChaPoly, AwsLcX25519, AwsLcChaChaPoly>(pat, seed);
            let aws_rc = run::<AwsLcX25519, AwsLcChaChaPoly, X25519, ChaChaPoly>(pat, seed);
            let rc_aws = run::<X25519, ChaChaPoly, AwsLcX25519, AwsLcChaChaPoly>(pat, seed);
            assert_eq!(rc, aws);
            assert_eq!(rc, aws_rc);
            assert_eq!(rc, rc_aws);
            // Mixed primitives within one side, too.
            assert_eq!(
                rc,
                run::<AwsLcX25519, ChaChaPoly, X25519, AwsLcChaChaPoly>(pat, seed)
            );
        }
    }
}

/// A fixed XX run pinned to its first message: the responder-independent
/// `e` is the X25519 public key of the fixed ephemeral.
#[test]
fn xx_first_message_is_the_ephemeral() {
    let (wire, _) = run::<AwsLcX25519, AwsLcChaChaPoly, AwsLcX25519, AwsLcChaChaPoly>(Pat::XX, 99);
    let mut r = rng(99);
    let _s = random32(&mut r);
    let e = random32(&mut r);
    assert_eq!(wire[0][..32], X25519::pubkey(&key(e))[..]);
}

// ------------------------------------------------------------ ML-KEM-768 --

type Dk = SensitiveByteArray<[u8; SECRET_KEY_LEN]>;

/// `(public, secret)` of both KEMs from the same seeded RNG, checked equal,
/// and that both left the RNG in the same state (each drew exactly the same
/// bytes).
fn both_keypairs(seed: u64) -> ([u8; PUBLIC_KEY_LEN], Dk) {
    let (mut r1, mut r2) = (Seeded(rng(seed)), Seeded(rng(seed)));
    let a = AwsLcMlKem768::genkey_rng(&mut r1).unwrap();
    let b = Fips203MlKem768::genkey_rng(&mut r2).unwrap();
    assert_eq!(a.public, b.public, "seed {seed}: encapsulation key");
    assert_eq!(a.secret, b.secret, "seed {seed}: decapsulation key");
    assert_eq!(r1.next_u64(), r2.next_u64(), "seed {seed}: RNG use");
    (a.public, a.secret.clone())
}

/// What both KEMs return for a refused input, as compared here.
fn refused<T>() -> Result<T, String> {
    Err("Input".to_string())
}

/// Both KEMs' results as comparable values (`KemError` has no `PartialEq`).
fn kem_result<T: AsRef<[u8]>>(r: Result<T, KemError>) -> Result<Vec<u8>, String> {
    r.map(|v| v.as_ref().to_vec()).map_err(|e| format!("{e:?}"))
}

fn encaps_both(pk: &[u8], seed: u64) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (mut r1, mut r2) = (Seeded(rng(seed)), Seeded(rng(seed)));
    let a = AwsLcMlKem768::encapsulate(pk, &mut r1);
    let b = Fips203MlKem768::encapsulate(pk, &mut r2);
    // m is drawn first, whatever the key: the RNG moves on alike.
    assert_eq!(r1.next_u64(), r2.next_u64(), "RNG use");
    let a = a
        .map(|(ct, ss)| (ct.to_vec(), ss.to_vec()))
        .map_err(|e| format!("{e:?}"));
    let b = b
        .map(|(ct, ss)| (ct.to_vec(), ss.to_vec()))
        .map_err(|e| format!("{e:?}"));
    assert_eq!(a, b, "encapsulation of a {}-byte key", pk.len());
    a
}

fn decaps_both(ct: &[u8], sk: &[u8]) -> Result<Vec<u8>, String> {
    let a = kem_result(AwsLcMlKem768::decapsulate(ct, sk).map(|s| s.to_vec()));
    let b = kem_result(Fips203MlKem768::decapsulate(ct, sk).map(|s| s.to_vec()));
    assert_eq!(a, b, "decapsulation ({} B ct, {} B sk)", ct.len(), sk.len());
    a
}

#[test]
fn mlkem_same_names_and_types() {
    assert_eq!(AwsLcMlKem768::name(), Fips203MlKem768::name());
    assert_eq!(AwsLcMlKem768::name(), "MLKEM768");
    fn same<T>(_: T, _: T) {}
    let a = AwsLcMlKem768::genkey_rng(&mut Seeded(rng(1))).unwrap();
    let b = Fips203MlKem768::genkey_rng(&mut Seeded(rng(1))).unwrap();
    same::<<AwsLcMlKem768 as Kem>::PubKey>(a.public, b.public);
    same::<<AwsLcMlKem768 as Kem>::SecretKey>(a.secret.clone(), b.secret.clone());
    let (ca, sa) = AwsLcMlKem768::encapsulate(&a.public, &mut Seeded(rng(2))).unwrap();
    let (cb, sb) = Fips203MlKem768::encapsulate(&b.public, &mut Seeded(rng(2))).unwrap();
    same::<<AwsLcMlKem768 as Kem>::Ct>(ca, cb);
    same::<<AwsLcMlKem768 as Kem>::Ss>(sa, sb);
}

/// Seeded random keys, encapsulations and forged ciphertexts: the same bytes
/// from both, and each decapsulates what the other encapsulated.
#[test]
fn mlkem_matches_fips203_on_random_inputs() {
    let mut r = rng(203);
    for seed in 0..300 {
        let (pk, sk) = both_keypairs(seed);
        let (ct, ss) = encaps_both(&pk, seed + 1_000_000).unwrap();
        let ct: [u8; CIPHERTEXT_LEN] = ct.try_into().unwrap();
        assert_eq!(*AwsLcMlKem768::decapsulate(&ct, &sk[..]).unwrap(), ss[..]);
        assert_eq!(*Fips203MlKem768::decapsulate(&ct, &sk[..]).unwrap(), ss[..]);
        // A random ciphertext: the implicit-rejection secret, the same on both.
        let forged = random_vec(&mut r, CIPHERTEXT_LEN);
        let rejected = decaps_both(&forged, &sk[..]).unwrap();
        assert_ne!(rejected, ss);
    }
}

/// Every byte of a ciphertext changed in turn (a random non-zero XOR):
/// never the real secret, always the same implicit-rejection secret on
/// both, and a different one for each change.
#[test]
fn mlkem_every_single_byte_tamper_gives_the_same_rejection() {
    let mut r = rng(1088);
    for seed in [7u64, 8] {
        let (pk, sk) = both_keypairs(seed);
        let (ct, ss) = encaps_both(&pk, seed).unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..CIPHERTEXT_LEN {
            let mut bad = ct.clone();
            bad[i] ^= (r.next_u32() % 255 + 1) as u8;
            let rejected = decaps_both(&bad, &sk[..]).unwrap();
            assert_ne!(rejected, ss, "byte {i}");
            assert!(seen.insert(rejected), "byte {i}: a repeated secret");
        }
    }
}

/// The `j`-th 12-bit coefficient of an encoded vector of polynomials.
fn coefficient(key: &[u8], j: usize) -> u16 {
    let (b, c) = (j / 2 * 3, j % 2 == 1);
    if c {
        u16::from(key[b + 1] >> 4) | (u16::from(key[b + 2]) << 4)
    } else {
        u16::from(key[b]) | (u16::from(key[b + 1] & 0x0f) << 8)
    }
}

/// Sets the `j`-th 12-bit coefficient of an encoded vector of polynomials.
fn set_coefficient(key: &mut [u8], j: usize, v: u16) {
    let b = j / 2 * 3;
    if j % 2 == 1 {
        key[b + 1] = (key[b + 1] & 0x0f) | ((v << 4) as u8);
        key[b + 2] = (v >> 4) as u8;
    } else {
        key[b] = v as u8;
        key[b + 1] = (key[b + 1] & 0xf0) | (v >> 8) as u8;
    }
}

/// A decapsulation key is `dk_PKE || ek || H(ek) || z`. Every byte changed
/// in turn (two ways): a byte of `ek` or `H(ek)` gets the key refused (FIPS
/// 203 section 7.3's hash check); one of `dk_PKE` too if it makes a
/// coefficient unreduced (a check both make beyond FIPS 203), else it gives
/// a secret, the same on both; one of `z` leaves the real secret.
#[test]
fn mlkem_decapsulation_key_checks() {
    let (pk, sk) = both_keypairs(73);
    let (ct, ss) = encaps_both(&pk, 73).unwrap();
    let mut r = rng(2400);
    let (mut refused_pke, mut accepted_pke) = (0, 0);
    for i in 0..SECRET_KEY_LEN {
        for mask in [0x01 << (i % 8), (r.next_u32() % 255 + 1) as u8] {
            let mut bad = sk.to_vec();
            bad[i] ^= mask;
            let got = decaps_both(&ct, &bad);
            if i < 1152 {
                if (0..768).any(|j| coefficient(&bad, j) >= 3329) {
                    assert_eq!(got, refused(), "byte {i}");
                    refused_pke += 1;
                } else {
                    got.unwrap_or_else(|e| panic!("byte {i}: {e}"));
                    accepted_pke += 1;
                }
            } else if i < SECRET_KEY_LEN - 32 {
                assert_eq!(got, refused(), "byte {i}");
            } else {
                assert_eq!(got, Ok(ss.clone()), "byte {i}: z is not used here");
            }
        }
    }
    assert!(refused_pke > 50 && accepted_pke > 1000);

    // An unreduced coefficient in the embedded ek, with H(ek) made to match:
    // only the modulus check of ek refuses it.
    for j in [0, 1, 400, 767] {
        let mut bad = sk.to_vec();
        set_coefficient(&mut bad[1152..], j, 3329 + (j % 767) as u16);
        let h = sha3::Sha3_256::digest(&bad[1152..1152 + PUBLIC_KEY_LEN]);
        bad[1152 + PUBLIC_KEY_LEN..SECRET_KEY_LEN - 32].copy_from_slice(&h);
        assert_eq!(decaps_both(&ct, &bad), refused(), "coefficient {j}");
        // And the hash as computed here is the one checked: with the
        // coefficient put back, the key is the original again.
        set_coefficient(&mut bad[1152..], j, coefficient(&pk, j));
        let h = sha3::Sha3_256::digest(&bad[1152..1152 + PUBLIC_KEY_LEN]);
        bad[1152 + PUBLIC_KEY_LEN..SECRET_KEY_LEN - 32].copy_from_slice(&h);
        assert_eq!(bad, sk.to_vec());
    }
    // The largest reduced value in dk_PKE is accepted.
    let mut edge = sk.to_vec();
    set_coefficient(&mut edge, 5, 3328);
    decaps_both(&ct, &edge).unwrap();
}

/// FIPS 203 section 7.2: every one of the 768 coefficients of an
/// encapsulation key made unreduced (3329 ..= 4095) gets the key refused by
/// both; the largest reduced value, 3328, is accepted by both, and so is
/// anything in the last 32 bytes (rho).
#[test]
fn mlkem_encapsulation_key_modulus_check() {
    let (pk, _) = both_keypairs(72);
    let mut r = rng(3329);
    for j in 0..768 {
        for v in [3329, 4095, 3329 + (r.next_u32() % 767) as u16] {
            let mut bad = pk;
            set_coefficient(&mut bad, j, v);
            assert_eq!(
                encaps_both(&bad, j as u64),
                refused(),
                "coefficient {j} = {v}"
            );
        }
        let mut edge = pk;
        set_coefficient(&mut edge, j, 3328);
        encaps_both(&edge, j as u64).unwrap();
    }
    for i in 1152..PUBLIC_KEY_LEN {
        let mut rho = pk;
        rho[i] ^= 0xff;
        encaps_both(&rho, i as u64).unwrap();
    }
}

/// Keys and ciphertexts of every wrong length, and random bytes of the right
/// ones: refused alike (`Input`), never a panic; random ones are refused by
/// their checks (a random encapsulation key has a coefficient >= 3329 with
/// overwhelming probability, a random decapsulation key the wrong hash).
#[test]
fn mlkem_garbage_inputs_are_refused_alike() {
    let mut r = rng(404);
    let (pk, sk) = both_keypairs(404);
    let (ct, _) = encaps_both(&pk, 404).unwrap();
    for len in 0..=2500 {
        let junk = random_vec(&mut r, len);
        let zeros = vec![0u8; len];
        for bytes in [&junk, &zeros] {
            let enc = encaps_both(bytes, len as u64);
            if len != PUBLIC_KEY_LEN {
                assert_eq!(enc, refused(), "{len}-byte key");
            }
            if len != CIPHERTEXT_LEN {
                assert_eq!(decaps_both(bytes, &sk[..]), refused(), "{len}-byte ct");
            }
            if len != SECRET_KEY_LEN {
                assert_eq!(decaps_both(&ct, bytes), refused(), "{len}-byte dk");
            }
        }
    }
    // The right lengths: random keys refused by their checks; an all-zero
    // encapsulation key is well formed (every coefficient 0) and accepted.
    assert_eq!(
        encaps_both(&random_vec(&mut r, PUBLIC_KEY_LEN), 1),
        refused(),
        "random ek"
    );
    encaps_both(&[0u8; PUBLIC_KEY_LEN], 2).unwrap();
    assert_eq!(
        decaps_both(&ct, &random_vec(&mut r, SECRET_KEY_LEN)),
        refused(),
        "random dk"
    );
    assert_eq!(
        decaps_both(&ct, &[0u8; SECRET_KEY_LEN]),
        refused(),
        "zero dk"
    );
    // A random and an all-zero ciphertext under a real key: rejection
    // secrets, not errors.
    decaps_both(&random_vec(&mut r, CIPHERTEXT_LEN), &sk[..]).unwrap();
    decaps_both(&[0u8; CIPHERTEXT_LEN], &sk[..]).unwrap();
}

/// An RNG that fails: key generation and encapsulation report it (the
/// trait's errors for each), on both.
#[test]
fn mlkem_rng_failure_is_reported_alike() {
    #[derive(Clone, Default)]
    struct Failing;
    impl RngCore for Failing {
        fn next_u32(&mut self) -> u32 {
            unreachable!()
        }
        fn next_u64(&mut self) -> u64 {
            unreachable!()
        }
        fn fill_bytes(&mut self, _: &mut [u8]) {
            unreachable!()
        }
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
            Err(std::num::NonZeroU32::new(rand_core::Error::CUSTOM_START)
                .unwrap()
                .into())
        }
    }
    impl CryptoRng for Failing {}
    let (pk, _) = both_keypairs(5);
    assert!(matches!(
        AwsLcMlKem768::genkey_rng(&mut Failing),
        Err(KemError::KeyGeneration)
    ));
    assert!(matches!(
        Fips203MlKem768::genkey_rng(&mut Failing),
        Err(KemError::KeyGeneration)
    ));
    assert!(matches!(
        AwsLcMlKem768::encapsulate(&pk, &mut Failing),
        Err(KemError::Encapsulation)
    ));
    assert!(matches!(
        Fips203MlKem768::encapsulate(&pk, &mut Failing),
        Err(KemError::Encapsulation)
    ));
}

/// The KEM from many threads at once (AWS-LC's per-thread error queue and
/// one-time initialization): the same bytes as on one thread.
#[test]
fn mlkem_from_many_threads() {
    let expected: Vec<_> = (0..16u64)
        .map(|s| {
            let (pk, _) = both_keypairs(s);
            encaps_both(&pk, s).unwrap()
        })
        .collect();
    let handles: Vec<_> = (0..16u64)
        .map(|s| {
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| {
                        let kp = AwsLcMlKem768::genkey_rng(&mut Seeded(rng(s))).unwrap();
                        let (ct, ss) =
                            AwsLcMlKem768::encapsulate(&kp.public, &mut Seeded(rng(s))).unwrap();
                        assert_eq!(AwsLcMlKem768::decapsulate(&ct, &kp.secret[..]).unwrap(), ss);
                        // A refusal in between leaves nothing behind.
                        let mut bad = kp.public;
                        bad[0] = 0xff;
                        bad[1] |= 0x0f;
                        assert!(matches!(
                            AwsLcMlKem768::encapsulate(&bad, &mut Seeded(rng(s))),
                            Err(KemError::Input)
                        ));
                        (ct.to_vec(), ss.to_vec())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (s, h) in handles.into_iter().enumerate() {
        for got in h.join().unwrap() {
            assert_eq!(got, expected[s], "thread {s}");
        }
    }
}

// -------------------------------------------------- post-quantum handshakes --

type KemPair = KeyPair<[u8; PUBLIC_KEY_LEN], Dk>;

/// A clatter PQNoise handshake state with the ephemeral KEM `E` and the
/// static KEM `S`; clatter draws the ephemeral key and every encapsulation
/// from `Seeded::default()`, the same stream in every run, so two runs that
/// differ only in the provider must give the same transcript.
fn pq_engine<E, S>(
    pattern: HandshakePattern,
    initiator: bool,
    s: Option<KemPair>,
    rs: Option<[u8; PUBLIC_KEY_LEN]>,
) -> PqHandshakeCore<E, S, ChaChaPoly, Blake2s, Seeded>
where
    E: Kem<PubKey = [u8; PUBLIC_KEY_LEN], SecretKey = Dk>,
    S: Kem<PubKey = [u8; PUBLIC_KEY_LEN], SecretKey = Dk>,
{
    PqHandshakeCore::<E, S, ChaChaPoly, Blake2s, Seeded>::new(
        pattern,
        b"secureCom/test/pq",
        initiator,
        s,
        None,
        rs,
        None,
    )
    .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum PqPat {
    NN,
    KK,
    XX,
}

impl PqPat {
    fn clatter(self) -> HandshakePattern {
        match self {
            PqPat::NN => noise_pqnn(),
            PqPat::KK => noise_pqkk(),
            PqPat::XX => noise_pqxx(),
        }
    }
}

/// Runs a PQNoise handshake with the initiator on the KEMs (E1, S1) and the
/// responder on (E2, S2), then a transport message each way; returns every
/// message and the handshake hash.
fn run_pq<E1, S1, E2, S2>(pat: PqPat, seed: u64) -> (Vec<Vec<u8>>, Vec<u8>)
where
    E1: Kem<PubKey = [u8; PUBLIC_KEY_LEN], SecretKey = Dk>,
    S1: Kem<PubKey = [u8; PUBLIC_KEY_LEN], SecretKey = Dk>,
    E2: Kem<PubKey = [u8; PUBLIC_KEY_LEN], SecretKey = Dk>,
    S2: Kem<PubKey = [u8; PUBLIC_KEY_LEN], SecretKey = Dk>,
{
    let statics = !matches!(pat, PqPat::NN);
    let known = matches!(pat, PqPat::KK);
    let a: KemPair = S1::genkey_rng(&mut Seeded(rng(seed * 4))).unwrap();
    let b: KemPair = S2::genkey_rng(&mut Seeded(rng(seed * 4 + 1))).unwrap();
    let mut i = pq_engine::<E1, S1>(
        pat.clatter(),
        true,
        statics.then(|| a.clone()),
        known.then_some(b.public),
    );
    let mut j = pq_engine::<E2, S2>(
        pat.clatter(),
        false,
        statics.then(|| b.clone()),
        known.then_some(a.public),
    );
    let mut r = rng(seed);
    let mut wire = Vec::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut out = vec![0u8; MAX_MESSAGE];
    let mut turn = 0;
    while !(i.is_finished() && j.is_finished()) {
        let payload = random_vec(&mut r, 5 + turn * 11);
        let (n, m) = if i.is_write_turn() {
            let n = i.write_message(&payload, &mut buf).unwrap();
            (n, j.read_message(&buf[..n], &mut out).unwrap())
        } else {
            let n = j.write_message(&payload, &mut buf).unwrap();
            (n, i.read_message(&buf[..n], &mut out).unwrap())
        };
        assert_eq!(out[..m], payload[..]);
        wire.push(buf[..n].to_vec());
        turn += 1;
    }
    let mut ti = i.finalize().unwrap();
    let mut tj = j.finalize().unwrap();
    let hash = ti.get_handshake_hash().as_slice().to_vec();
    assert_eq!(hash, tj.get_handshake_hash().as_slice());
    wire.push(transport(&mut ti, &mut tj, b"after the KEMs", false));
    wire.push(transport(&mut tj, &mut ti, b"and back", true));
    (wire, hash)
}

#[test]
fn pq_handshakes_are_byte_identical_and_interoperate() {
    type A = AwsLcMlKem768;
    type F = Fips203MlKem768;
    for pat in [PqPat::NN, PqPat::KK, PqPat::XX] {
        for seed in 0..4 {
            let portable = run_pq::<F, F, F, F>(pat, seed);
            assert_eq!(portable, run_pq::<A, A, A, A>(pat, seed), "{pat:?}");
            assert_eq!(portable, run_pq::<A, A, F, F>(pat, seed), "{pat:?}");
            assert_eq!(portable, run_pq::<F, F, A, A>(pat, seed), "{pat:?}");
            assert_eq!(portable, run_pq::<A, F, F, A>(pat, seed), "{pat:?}");
        }
    }
}
