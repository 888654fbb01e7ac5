//! Long-term identities: X25519 key pairs, fingerprints and safety numbers.

use clatter::bytearray::{ByteArray, SensitiveByteArray};
use clatter::crypto::hash::Blake2s;
use clatter::error::{DhError, DhResult};
use clatter::traits::{CryptoComponent, Dh, Hash, Rng};
use clatter::KeyPair;
use rand_core::{CryptoRng, RngCore};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::X25519;
use crate::error::CryptoError;

// X25519: clatter's, or in fuzzing builds only (`--cfg fuzzing`) the same
// function with its results memoized. The Noise engine uses it through
// [`ContributoryX25519`].
#[cfg(fuzzing)]
pub(crate) use crate::fuzzing::MemoX25519 as RawX25519;
#[cfg(not(fuzzing))]
pub(crate) use clatter::crypto::dh::X25519 as RawX25519;

/// Length of an X25519 key, public or private.
pub const KEY_LEN: usize = 32;

/// The u-coordinates of the points of small order (1, 2, 4 or 8) of
/// Curve25519 and of its twist, little-endian, as libsodium lists them:
/// 0, 1, the two points of order 8, p - 1, and p and p + 1 (the
/// non-canonical encodings of 0 and 1; no other small-order point has one
/// below 2^255). X25519 ignores the top bit, so each entry also stands for
/// itself with bit 255 set: 14 encodings in all. With any (clamped) private
/// key, X25519 of these, and only these, is all zeros.
const LOW_ORDER: [[u8; KEY_LEN]; 7] = [
    [0; KEY_LEN],
    [
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    // 325606250916557431795983626356110631294008115727848805560023387167927233504
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    // 39382357235489614581723060781553021112529911719440698176882885853963445705823
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    // p - 1
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p = 2^255 - 19
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p + 1
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// An X25519 public key: the identity of a user or of the server.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The key, unless it is a low-order point ([`CryptoError::WeakKey`]):
    /// how a key from a file, a command line or a configuration enters.
    pub fn try_from_bytes(bytes: [u8; KEY_LEN]) -> Result<Self, CryptoError> {
        let key = PublicKey(bytes);
        if key.is_low_order() {
            Err(CryptoError::WeakKey)
        } else {
            Ok(key)
        }
    }

    /// True if the key is a point of small order (or encodes one), such as
    /// all zeros: X25519 with it gives all zeros whatever the private key,
    /// so a handshake with it proves nothing and hides nothing. Checked in
    /// constant time against the 14 encodings of such points.
    pub fn is_low_order(&self) -> bool {
        let mut u = self.0;
        // X25519 ignores the top bit (RFC 7748 section 5).
        if let Some(last) = u.last_mut() {
            *last &= 0x7f;
        }
        let low = LOW_ORDER
            .iter()
            .fold(Choice::from(0), |found, bad| found | u.ct_eq(bad));
        low.into()
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A short, human-comparable digest of the key (see [`Fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Blake2s::default();
        h.input(b"secureCom/1/fingerprint");
        h.input(&self.0);
        let out = h.result();
        // The first FINGERPRINT_LEN of the 32 bytes of the digest.
        let mut fp = [0u8; FINGERPRINT_LEN];
        for (d, s) in fp.iter_mut().zip(out.as_slice()) {
            *d = *s;
        }
        Fingerprint(fp)
    }
}

/// Comparison in constant time: keys are compared against pinned and
/// registered keys, and a timing side channel there would leak how much of a
/// guessed key was right.
impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for PublicKey {}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for PublicKey {
    fn format(&self, f: defmt::Formatter<'_>) {
        // The same `xxxx:xxxx:…` groups as the `Display` of a fingerprint.
        let fp = self.fingerprint().0;
        defmt::write!(f, "PublicKey(");
        for (i, [a, b]) in fp.as_chunks::<2>().0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ":" };
            defmt::write!(f, "{=str}{=u8:02x}{=u8:02x}", sep, a, b);
        }
        defmt::write!(f, ")")
    }
}

/// Bytes in a [`Fingerprint`].
pub const FINGERPRINT_LEN: usize = 16;

/// `BLAKE2s("secureCom/1/fingerprint" || key)[..16]`, shown as 8 groups of 4 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; FINGERPRINT_LEN]);

impl core::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, [a, b]) in self.0.as_chunks::<2>().0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{a:02x}{b:02x}")?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

/// An X25519 private key, with its public key computed once (a scalar
/// multiplication saved on every handshake). Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StaticSecret {
    secret: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
}

impl StaticSecret {
    /// No key: all zeros, the stand-in of a client not started yet
    /// ([`crate::Client::unstarted`]); it is never used for a handshake.
    pub(crate) const fn none() -> Self {
        StaticSecret {
            secret: [0; KEY_LEN],
            public: [0; KEY_LEN],
        }
    }

    /// A fresh key from the caller's cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut k = [0u8; KEY_LEN];
        rng.fill_bytes(&mut k);
        let s = Self::from_bytes(k);
        k.zeroize();
        s
    }

    /// A key from its 32 stored bytes.
    pub fn from_bytes(secret: [u8; KEY_LEN]) -> Self {
        Self::from_bytes_with::<RawX25519>(secret)
    }

    /// A key from its bytes, its public key computed by `D` (a provider's
    /// X25519: an ephemeral key is one per handshake).
    pub fn from_bytes_with<D: X25519>(secret: [u8; KEY_LEN]) -> Self {
        let public = D::pubkey(&SensitiveByteArray::new(secret));
        StaticSecret { secret, public }
    }

    /// The 32 bytes, for storage. Handle with care: zeroize the copy.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.secret
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.public)
    }

    pub(crate) fn keypair(
        &self,
    ) -> clatter::KeyPair<[u8; KEY_LEN], SensitiveByteArray<[u8; KEY_LEN]>> {
        clatter::KeyPair {
            public: self.public,
            secret: SensitiveByteArray::from_slice(&self.secret),
        }
    }
}

impl core::fmt::Debug for StaticSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StaticSecret(..)")
    }
}

/// The X25519 of the Noise engine: X25519 refusing an all-zero result (RFC
/// 7748 section 6.1), which only a low-order public key gives. The handshake
/// checks the peer's keys itself (`noise.rs`, as [`CryptoError::WeakKey`]);
/// this refusal is the last line behind it.
///
/// `D` is the provider's X25519 (see [`crate::crypto`]).
pub(crate) struct ContributoryX25519<D>(core::marker::PhantomData<D>);

impl<D> Clone for ContributoryX25519<D> {
    fn clone(&self) -> Self {
        ContributoryX25519(core::marker::PhantomData)
    }
}

impl<D: X25519> CryptoComponent for ContributoryX25519<D> {
    fn name() -> &'static str {
        D::name()
    }
}

impl<D: X25519> Dh for ContributoryX25519<D> {
    type PrivateKey = D::PrivateKey;
    type PubKey = D::PubKey;
    type Output = D::Output;

    fn genkey_rng<R: Rng>(rng: &mut R) -> DhResult<KeyPair<Self::PubKey, Self::PrivateKey>> {
        D::genkey_rng(rng)
    }

    fn pubkey(k: &Self::PrivateKey) -> Self::PubKey {
        D::pubkey(k)
    }

    fn dh(k: &Self::PrivateKey, pk: &Self::PubKey) -> DhResult<Self::Output> {
        let shared = D::dh(k, pk)?;
        if bool::from(shared.as_slice().ct_eq(&[0u8; KEY_LEN])) {
            // clatter's only DH error: the handshake then fails.
            return Err(DhError::KeyGeneration);
        }
        Ok(shared)
    }
}

/// Digits in a [`SafetyNumber`].
pub const SAFETY_NUMBER_DIGITS: usize = 60;

/// A number both chat partners can read to each other to check that no one
/// sits between them, in the manner of Signal's safety numbers: 60 digits in
/// 12 groups of 5, the same on both sides whatever the order of the keys.
///
/// Each half is `BLAKE2s("secureCom/1/safety" || key)` of one identity, turned
/// into 30 digits (6 groups of 5 from 5-byte chunks mod 100000); the two halves
/// are sorted so both sides print the same number.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SafetyNumber([u8; SAFETY_NUMBER_DIGITS]);

impl SafetyNumber {
    /// The safety number of the pair `a`, `b` (symmetric in its arguments).
    pub fn new(a: &PublicKey, b: &PublicKey) -> Self {
        let (x, y) = (Self::half(a), Self::half(b));
        let (first, second) = if x <= y { (x, y) } else { (y, x) };
        let mut digits = [0u8; SAFETY_NUMBER_DIGITS];
        digits[..30].copy_from_slice(&first);
        digits[30..].copy_from_slice(&second);
        SafetyNumber(digits)
    }

    fn half(key: &PublicKey) -> [u8; 30] {
        let mut h = Blake2s::default();
        h.input(b"secureCom/1/safety");
        h.input(&key.0);
        let out = h.result();
        let mut digits = [0u8; 30];
        // The first 6 chunks of 5 bytes of the 32-byte digest, one group of digits each.
        for (chunk, group) in out
            .as_slice()
            .chunks_exact(5)
            .zip(digits.chunks_exact_mut(5))
        {
            let mut v = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) % 100_000;
            for d in group.iter_mut().rev() {
                *d = (v % 10) as u8;
                v /= 10;
            }
        }
        digits
    }
}

impl core::fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, group) in self.0.chunks(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for d in group {
                write!(f, "{d}")?;
            }
        }
        Ok(())
    }
}

impl core::fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn rfc7748_public_key() {
        // RFC 7748 section 6.1, Alice's key pair.
        let sk = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let pk = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(StaticSecret::from_bytes(sk).public_key(), PublicKey(pk));
    }

    #[test]
    fn safety_number_symmetric_and_distinct() {
        let a = StaticSecret::from_bytes([1; 32]).public_key();
        let b = StaticSecret::from_bytes([2; 32]).public_key();
        let c = StaticSecret::from_bytes([3; 32]).public_key();
        assert_eq!(SafetyNumber::new(&a, &b), SafetyNumber::new(&b, &a));
        assert_ne!(SafetyNumber::new(&a, &b), SafetyNumber::new(&a, &c));
        assert!(SafetyNumber::new(&a, &b).0.iter().all(|d| *d < 10));
    }

    /// `n` (below 2^256) as 32 little-endian bytes, from its decimal digits.
    fn le_from_decimal(n: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for d in n.bytes() {
            let mut carry = u32::from(d - b'0');
            for b in out.iter_mut() {
                let v = u32::from(*b) * 10 + carry;
                *b = v as u8;
                carry = v >> 8;
            }
            assert_eq!(carry, 0);
        }
        out
    }

    /// Every encoding X25519 reads as a small-order point: the seven
    /// u-coordinates of the literature, each also with bit 255 set.
    fn small_order_encodings() -> impl Iterator<Item = [u8; 32]> {
        const P: &str =
            "57896044618658097711785492504343953926634992332820282019728792003956564819949";
        let p = le_from_decimal(P);
        let mut p_minus_1 = p;
        p_minus_1[0] -= 1;
        let mut p_plus_1 = p;
        p_plus_1[0] += 1;
        let canonical = [
            le_from_decimal("0"),
            le_from_decimal("1"),
            le_from_decimal(
                "325606250916557431795983626356110631294008115727848805560023387167927233504",
            ),
            le_from_decimal(
                "39382357235489614581723060781553021112529911719440698176882885853963445705823",
            ),
            p_minus_1,
            p,
            p_plus_1,
        ];
        canonical.into_iter().flat_map(|k| {
            let mut high = k;
            high[31] |= 0x80;
            [k, high]
        })
    }

    #[test]
    fn low_order_list_is_the_literature_s() {
        let from_decimal: std::vec::Vec<[u8; 32]> = small_order_encodings().step_by(2).collect();
        assert_eq!(from_decimal, LOW_ORDER.to_vec());
    }

    #[test]
    fn every_small_order_encoding_is_refused() {
        let secrets = [[1u8; 32], [0x42; 32], [0xff; 32], [0; 32]];
        for k in small_order_encodings() {
            let key = PublicKey(k);
            assert!(key.is_low_order(), "{k:02x?}");
            assert_eq!(PublicKey::try_from_bytes(k), Err(CryptoError::WeakKey));
            // What makes them weak: X25519 with them is all zeros, whatever the secret.
            for s in secrets {
                let s = SensitiveByteArray::new(s);
                assert_eq!(*RawX25519::dh(&s, &k).unwrap(), [0u8; 32]);
                assert!(ContributoryX25519::<RawX25519>::dh(&s, &k).is_err());
            }
        }
    }

    #[test]
    fn real_keys_and_near_misses_are_accepted() {
        let secret = SensitiveByteArray::new([7u8; 32]);
        let mut keys = std::vec::Vec::new();
        for i in 0..=255u8 {
            keys.push(StaticSecret::from_bytes([i; 32]).public_key().0);
        }
        // One bit away from a weak encoding (other than bit 255).
        for k in small_order_encodings() {
            for bit in 0..255 {
                let mut near = k;
                near[bit / 8] ^= 1 << (bit % 8);
                keys.push(near);
            }
        }
        for k in keys {
            // A key is refused exactly when X25519 with it is all zeros.
            let zero = *RawX25519::dh(&secret, &k).unwrap() == [0u8; 32];
            assert_eq!(PublicKey(k).is_low_order(), zero, "{k:02x?}");
            assert_eq!(PublicKey::try_from_bytes(k).is_ok(), !zero);
            assert_eq!(
                ContributoryX25519::<RawX25519>::dh(&secret, &k).is_ok(),
                !zero
            );
        }
    }

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
