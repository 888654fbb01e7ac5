//! The crypto provider: which implementation of X25519,
//! ChaCha20-Poly1305 and ML-KEM-768 the Noise engine runs on.
//!
//! The protocol logic is one and the same everywhere; only the primitives
//! under it are chosen, at compile time, by a type parameter `P:
//! CryptoProvider` of the state machines ([`Handshake`], [`Transport`],
//! [`Channel`], [`Client`], [`ServerSession`], [`Hub`]). It defaults to
//! [`RustCrypto`], so `Client` means `Client<RustCrypto>`: what the firmware
//! runs, portable `no_std` code with no heap and no `unsafe` of ours.
//!
//! The seam is clatter's own component traits ([`Dh`], [`Cipher`], [`Kem`]),
//! so a provider is three types that clatter accepts in place of its own,
//! with exactly the same key, output and nonce encodings, and (for the KEM)
//! the same use of randomness. The host
//! programs plug in `securecom_host::crypto::AwsLc` (aws-lc-rs); whatever a
//! provider is, it must produce the same bytes: the Noise vectors, the
//! `snow` interop and a differential test run against every provider.
//!
//! BLAKE2s (the protocol's hash) is not part of the seam: no well-kept
//! backend is faster than RustCrypto's, and every key derivation of the
//! protocol (PSKs, tickets, fingerprints) then stays in one place.
//!
//! [`Handshake`]: crate::noise::Handshake
//! [`Transport`]: crate::noise::Transport
//! [`Channel`]: crate::channel::Channel
//! [`Client`]: crate::Client
//! [`ServerSession`]: crate::ServerSession
//! [`Hub`]: crate::Hub

use clatter::bytearray::SensitiveByteArray;
use clatter::traits::{Cipher, Dh, Kem};

use crate::kem::{CIPHERTEXT_LEN, PUBLIC_KEY_LEN, SECRET_KEY_LEN, SHARED_SECRET_LEN};
use crate::keys::KEY_LEN;

/// X25519, as a clatter [`Dh`] with clatter's own encodings.
///
/// `dh` must return all zeros (not an error) for a low-order peer key, as
/// clatter's RustCrypto X25519 does: the core refuses such results itself,
/// the same way whatever the provider.
pub trait X25519:
    Dh<
    PrivateKey = SensitiveByteArray<[u8; KEY_LEN]>,
    PubKey = [u8; KEY_LEN],
    Output = SensitiveByteArray<[u8; KEY_LEN]>,
>
{
}

impl<T> X25519 for T where
    T: Dh<
        PrivateKey = SensitiveByteArray<[u8; KEY_LEN]>,
        PubKey = [u8; KEY_LEN],
        Output = SensitiveByteArray<[u8; KEY_LEN]>,
    >
{
}

/// ChaCha20-Poly1305 as Noise uses it (nonce: 4 zero bytes and the 64-bit
/// counter, little-endian), as a clatter [`Cipher`].
pub trait ChaChaPoly: Cipher<Key = SensitiveByteArray<[u8; 32]>> {}

impl<T> ChaChaPoly for T where T: Cipher<Key = SensitiveByteArray<[u8; 32]>> {}

/// ML-KEM-768 (FIPS 203) as a clatter [`Kem`] with FIPS 203's encodings
/// (encapsulation key 1184 B, decapsulation key 2400 B, ciphertext 1088 B,
/// shared secret 32 B), and one use of randomness for all providers, so that
/// seeded runs give the same bytes whatever the provider:
///
/// - `genkey_rng` draws 64 bytes in one `fill_bytes` call, `d || z`, and
///   returns `ML-KEM.KeyGen_internal(d, z)`;
/// - `encapsulate` draws 32 bytes `m` in one call, checks the encapsulation
///   key (FIPS 203 section 7.2: it must be the right length and its
///   coefficients reduced; else `KemError::Input`) and returns
///   `ML-KEM.Encaps_internal(ek, m)`;
/// - `decapsulate` fails (`KemError::Input`) on a ciphertext or key of the
///   wrong length, a decapsulation key whose embedded hash of `ek` is wrong
///   (FIPS 203 section 7.3), or one whose secret vector or embedded `ek`
///   holds an unreduced coefficient (as `fips203` refuses; AWS-LC alone
///   would reduce it, so the host provider checks), and otherwise returns
///   ML-KEM's secret, the implicit-rejection one for a forged ciphertext.
pub trait MlKem768:
    Kem<
    PubKey = [u8; PUBLIC_KEY_LEN],
    Ct = [u8; CIPHERTEXT_LEN],
    SecretKey = SensitiveByteArray<[u8; SECRET_KEY_LEN]>,
    Ss = SensitiveByteArray<[u8; SHARED_SECRET_LEN]>,
>
{
    /// `ML-KEM.KeyGen_internal(d, z)` for `seed = d || z`, written into
    /// `sk`: the FIPS 203 decapsulation key, which holds the encapsulation
    /// key (`dk = dk_pke || ek || H(ek) || z`), so that nothing else need be
    /// kept. The same key pair as `genkey_rng` drawing `seed`; with as few
    /// copies of the keys as the implementation allows (the device's stack:
    /// the layer makes its key pair this way).
    fn keygen_into(
        seed: &[u8; 64],
        sk: &mut [u8; SECRET_KEY_LEN],
    ) -> Result<(), clatter::error::KemError>;

    /// `decapsulate` with the key in the post-quantum layer's slot (its
    /// bytes as [`Self::keygen_into`] wrote them): the same checks and
    /// secret. A provider may turn the bytes into its own form in place
    /// (the portable one does: no copy of the key on the device's stack),
    /// after which the slot's bytes are gone; the caller wipes the slot
    /// after one call.
    fn decapsulate_slot(
        ct: &[u8],
        slot: &mut crate::kem::KeySlot,
    ) -> Result<Self::Ss, clatter::error::KemError> {
        let sk = slot.bytes().ok_or(clatter::error::KemError::Input)?;
        Self::decapsulate(ct, &sk[..])
    }

    /// `encapsulate`, the ciphertext written into `ct` and the secret into
    /// `ss`: the same draw, checks and bytes, with as few copies of the key
    /// and ciphertext as the implementation allows (the device's stack: the
    /// layer encapsulates this way). On error `ct` and `ss` are left as
    /// they were.
    fn encapsulate_into<R: clatter::traits::Rng>(
        pk: &[u8],
        rng: &mut R,
        ct: &mut [u8; CIPHERTEXT_LEN],
        ss: &mut [u8; SHARED_SECRET_LEN],
    ) -> Result<(), clatter::error::KemError> {
        let (c, s) = Self::encapsulate(pk, rng)?;
        ct.copy_from_slice(&c);
        ss.copy_from_slice(&s[..]);
        Ok(())
    }
}

/// A set of primitives for the `25519_ChaChaPoly_BLAKE2s` suite and its
/// hybrid ML-KEM-768 extension.
pub trait CryptoProvider: 'static {
    /// A short name for logs and benchmarks ("RustCrypto", "aws-lc-rs").
    const NAME: &'static str;
    /// X25519.
    type Dh: X25519;
    /// ChaCha20-Poly1305.
    type Cipher: ChaChaPoly;
    /// ML-KEM-768.
    type Kem: MlKem768;
}

/// The portable provider: clatter's RustCrypto components
/// (`curve25519-dalek`, `chacha20poly1305`), `no_std`, no heap. The
/// default everywhere, and the firmware's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RustCrypto;

impl CryptoProvider for RustCrypto {
    const NAME: &'static str = "RustCrypto";
    type Dh = crate::keys::RawX25519;
    type Cipher = clatter::crypto::cipher::ChaChaPoly;
    type Kem = crate::kem::Fips203MlKem768;
}
