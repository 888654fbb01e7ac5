//! Long-term identities: X25519 key pairs, fingerprints and safety numbers.

use clatter::bytearray::{ByteArray, SensitiveByteArray};
use clatter::crypto::hash::Blake2s;
use clatter::traits::{Dh, Hash};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

// The X25519 of the Noise engine: clatter's, or in fuzzing builds only
// (`--cfg fuzzing`) the same function with its results memoized.
#[cfg(fuzzing)]
pub(crate) use crate::fuzzing::MemoX25519 as X25519;
#[cfg(not(fuzzing))]
pub(crate) use clatter::crypto::dh::X25519;

/// Length of an X25519 key, public or private.
pub const KEY_LEN: usize = 32;

/// An X25519 public key: the identity of a user or of the server.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
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
        let public = X25519::pubkey(&SensitiveByteArray::new(secret));
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

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
