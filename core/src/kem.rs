//! ML-KEM-768 (FIPS 203), the post-quantum half of protocol 3's hybrid
//! handshakes, as a clatter [`Kem`] (see [`crate::crypto::MlKem768`] for the
//! contract every provider keeps).
//!
//! The portable implementation is the `fips203` crate (pure Rust, `no_std`,
//! no heap, constant-time by design and tested against NIST's ACVP vectors
//! by its authors). It was chosen over the two others that build for the
//! device, measured on the Cortex-M3 under `-icount` at the firmware's
//! profile (`opt-level = "s"`, LTO):
//!
//! | crate | key generation | encapsulation | decapsulation |
//! |---|---|---|---|
//! | `fips203` 0.5 | 1.4 M instr, 26.0 KB stack | 1.6 M, 26.7 KB | 2.0 M, 33.1 KB |
//! | `ml-kem` 0.2 (clatter's own backend) | 1.9 M, 35.5–39 KB | 1.8 M, 35.8 KB | 2.1 M, 37.7 KB |
//! | `libcrux-ml-kem` 0.0.11 | 2.0 M, 27.2 KB | 2.2 M, 30.0 KB | 2.4 M, 33.7 KB |
//!
//! `fips203` is the fastest and the most frugal with the stack (the board
//! has 64 KiB of RAM in all), and it validates a peer's encapsulation key
//! (FIPS 203 section 7.2, the modulus check) where `ml-kem` 0.2 does not.
//! The host provider uses AWS-LC's ML-KEM instead; both give the same bytes
//! for the same randomness (the FIPS 203 vectors and a differential test run
//! on both).

use clatter::bytearray::SensitiveByteArray;
use clatter::error::{KemError, KemResult};
use clatter::traits::{CryptoComponent, Kem, Rng};
use clatter::KeyPair;
use fips203::ml_kem_768;
use fips203::traits::{Decaps, Encaps, KeyGen, SerDes};
use zeroize::Zeroize;

/// Encapsulation (public) key length.
pub const PUBLIC_KEY_LEN: usize = ml_kem_768::EK_LEN;
/// Decapsulation (secret) key length.
pub const SECRET_KEY_LEN: usize = ml_kem_768::DK_LEN;
/// Ciphertext length.
pub const CIPHERTEXT_LEN: usize = ml_kem_768::CT_LEN;
/// Shared secret length.
pub const SHARED_SECRET_LEN: usize = fips203::SSK_LEN;

/// ML-KEM-768 on the `fips203` crate: the [`crate::RustCrypto`] provider's KEM.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fips203MlKem768;

impl CryptoComponent for Fips203MlKem768 {
    fn name() -> &'static str {
        "MLKEM768"
    }
}

impl Kem for Fips203MlKem768 {
    type SecretKey = SensitiveByteArray<[u8; SECRET_KEY_LEN]>;
    type PubKey = [u8; PUBLIC_KEY_LEN];
    type Ct = [u8; CIPHERTEXT_LEN];
    type Ss = SensitiveByteArray<[u8; SHARED_SECRET_LEN]>;

    /// `ML-KEM.KeyGen_internal(d, z)` with `d || z` drawn from `rng` in one call.
    fn genkey_rng<R: Rng>(rng: &mut R) -> KemResult<KeyPair<Self::PubKey, Self::SecretKey>> {
        let mut seed = SensitiveByteArray::new([0u8; 64]);
        rng.try_fill_bytes(&mut seed[..])
            .map_err(|_| KemError::KeyGeneration)?;
        let (public, secret) = keypair_from_seed(&seed);
        Ok(KeyPair { public, secret })
    }

    /// `ML-KEM.Encaps_internal(ek, m)` with `m` drawn from `rng`; the key is
    /// checked first (FIPS 203 section 7.2).
    fn encapsulate<R: Rng>(pk: &[u8], rng: &mut R) -> KemResult<(Self::Ct, Self::Ss)> {
        let mut m = SensitiveByteArray::new([0u8; 32]);
        rng.try_fill_bytes(&mut m[..])
            .map_err(|_| KemError::Encapsulation)?;
        encapsulate_with(pk, &m)
    }

    /// `ML-KEM.Decaps`; a wrong ciphertext gives the implicit-rejection
    /// secret, not an error (the handshake then fails on its next tag).
    fn decapsulate(ct: &[u8], sk: &[u8]) -> KemResult<Self::Ss> {
        // The conversions run in frames of their own, gone before the
        // decapsulation's deep stack (the device's constraint here).
        // Used where they were returned (by reference): moved out of their
        // `Result`s, the 3.5 KB of key and ciphertext would be copied.
        let ct = ciphertext_of(ct);
        let dk = decaps_key_of(sk);
        let (Ok(ct), Ok(dk)) = (&ct, &dk) else {
            return Err(KemError::Input);
        };
        let ss = dk.try_decaps(ct).map_err(|_| KemError::Decapsulation)?;
        Ok(SensitiveByteArray::new(ss.into_bytes()))
    }
}

#[inline(never)]
fn ciphertext_of(ct: &[u8]) -> KemResult<ml_kem_768::CipherText> {
    ml_kem_768::CipherText::try_from_bytes(ct.try_into().map_err(|_| KemError::Input)?)
        .map_err(|_| KemError::Input)
}

/// Validates the key's embedded hash (FIPS 203 section 7.3). fips203's key
/// wipes itself on drop; the by-value argument is its own copy, wiped here.
#[inline(never)]
fn decaps_key_of(sk: &[u8]) -> KemResult<ml_kem_768::DecapsKey> {
    let mut bytes: [u8; SECRET_KEY_LEN] = sk.try_into().map_err(|_| KemError::Input)?;
    let dk = ml_kem_768::DecapsKey::try_from_bytes(bytes).map_err(|_| KemError::Input);
    // As a slice: zeroize's bulk wipe, not one volatile store per byte.
    bytes.as_mut_slice().zeroize();
    dk
}

impl crate::crypto::MlKem768 for Fips203MlKem768 {
    /// The key turned into `fips203`'s own object in its slot (the checks
    /// of `decapsulate`, in a frame of its own), then used there by
    /// reference: no copy of the 2.4 KB key is on the stack under
    /// `fips203`'s decapsulation (22.9 KB deep on the device, whose stack
    /// budget this decides).
    fn decapsulate_slot(ct: &[u8], slot: &mut KeySlot) -> KemResult<Self::Ss> {
        slot.make_fips203()?;
        let Slot::Fips203(dk) = &slot.0 else {
            return Err(KemError::Input);
        };
        let ct = ciphertext_of(ct);
        let Ok(ct) = &ct else {
            return Err(KemError::Input);
        };
        let ss = dk.try_decaps(ct).map_err(|_| KemError::Decapsulation)?;
        Ok(SensitiveByteArray::new(ss.into_bytes()))
    }

    /// One call of `fips203` and one copy of its decapsulation key.
    fn keygen_into(seed: &[u8; 64], sk: &mut [u8; SECRET_KEY_LEN]) -> KemResult<()> {
        let mut d = [0u8; 32];
        let mut z = [0u8; 32];
        d.copy_from_slice(&seed[..32]);
        z.copy_from_slice(&seed[32..]);
        let (_, dk) = ml_kem_768::KG::keygen_from_seed(d, z);
        d.zeroize();
        z.zeroize();
        // fips203's key wipes itself on drop; `into_bytes` is its copy.
        let mut bytes = dk.into_bytes();
        sk.copy_from_slice(&bytes);
        bytes.as_mut_slice().zeroize();
        Ok(())
    }

    /// `m` drawn first, as `encapsulate` draws it; the key checked in a
    /// frame of its own, and fips203's ciphertext moved into `ct` (one
    /// copy of each, where `encapsulate`'s return values make three).
    fn encapsulate_into<R: Rng>(
        pk: &[u8],
        rng: &mut R,
        ct: &mut [u8; CIPHERTEXT_LEN],
        ss: &mut [u8; SHARED_SECRET_LEN],
    ) -> KemResult<()> {
        let mut m = SensitiveByteArray::new([0u8; 32]);
        rng.try_fill_bytes(&mut m[..])
            .map_err(|_| KemError::Encapsulation)?;
        let ek = encaps_key_of(pk)?;
        let (s, c) = ek.encaps_from_seed(&m);
        *ct = c.into_bytes();
        // fips203's secret wipes itself on drop; `into_bytes` is its copy.
        let mut s = s.into_bytes();
        ss.copy_from_slice(&s);
        s.zeroize();
        Ok(())
    }
}

/// Where the post-quantum layer keeps an initiator's ephemeral
/// decapsulation key between its two messages (or a responder's copy of
/// the peer's encapsulation key, in the first [`PUBLIC_KEY_LEN`] bytes):
/// the FIPS 203 bytes as [`crate::crypto::MlKem768::keygen_into`] writes
/// them, which a provider may turn into its own form in place when it
/// decapsulates ([`crate::crypto::MlKem768::decapsulate_slot`]). Wiped on
/// drop and by [`Self::wipe`].
pub struct KeySlot(Slot);

enum Slot {
    Bytes(SensitiveByteArray<[u8; SECRET_KEY_LEN]>),
    /// `fips203`'s checked key (it wipes itself on drop).
    Fips203(ml_kem_768::DecapsKey),
}

impl KeySlot {
    /// A slot of zeros.
    pub fn new() -> Self {
        KeySlot(Slot::Bytes(SensitiveByteArray::new([0u8; SECRET_KEY_LEN])))
    }

    /// The bytes, unless a provider has turned them into its own form.
    pub fn bytes(&self) -> Option<&[u8; SECRET_KEY_LEN]> {
        match &self.0 {
            Slot::Bytes(b) => Some(b),
            Slot::Fips203(_) => None,
        }
    }

    /// The bytes, to write (see [`Self::bytes`]).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8; SECRET_KEY_LEN]> {
        match &mut self.0 {
            Slot::Bytes(b) => Some(b),
            Slot::Fips203(_) => None,
        }
    }

    /// Overwrites the key with zeros: the slot is then as [`Self::new`]
    /// made it, and holds no key (a decapsulation with it fails). In a
    /// frame of its own (the 2.4 KB of zeros a converted slot gets back
    /// are not in its caller's).
    #[inline(never)]
    pub fn wipe(&mut self) {
        match &mut self.0 {
            Slot::Bytes(b) => b.zeroize(),
            Slot::Fips203(dk) => {
                dk.zeroize();
                self.0 = Slot::Bytes(SensitiveByteArray::new([0u8; SECRET_KEY_LEN]));
            }
        }
    }

    /// The bytes checked and turned into `fips203`'s key, in place, in a
    /// frame of its own (gone before the decapsulation's deep stack).
    #[inline(never)]
    fn make_fips203(&mut self) -> KemResult<()> {
        let Slot::Bytes(b) = &mut self.0 else {
            return Ok(());
        };
        let dk = decaps_key_of(&b[..]);
        b.zeroize();
        self.0 = Slot::Fips203(dk?);
        Ok(())
    }
}

impl Default for KeySlot {
    fn default() -> Self {
        Self::new()
    }
}

/// The modulus check of FIPS 203 section 7.2, in a frame of its own.
#[inline(never)]
fn encaps_key_of(pk: &[u8]) -> KemResult<ml_kem_768::EncapsKey> {
    ml_kem_768::EncapsKey::try_from_bytes(pk.try_into().map_err(|_| KemError::Input)?)
        .map_err(|_| KemError::Input)
}

/// `ML-KEM.KeyGen_internal(d, z)`, `seed = d || z`: for tests and vectors.
pub fn keypair_from_seed(
    seed: &[u8; 64],
) -> (
    [u8; PUBLIC_KEY_LEN],
    SensitiveByteArray<[u8; SECRET_KEY_LEN]>,
) {
    let mut d = [0u8; 32];
    let mut z = [0u8; 32];
    d.copy_from_slice(&seed[..32]);
    z.copy_from_slice(&seed[32..]);
    let (ek, dk) = ml_kem_768::KG::keygen_from_seed(d, z);
    d.zeroize();
    z.zeroize();
    (ek.into_bytes(), SensitiveByteArray::new(dk.into_bytes()))
}

/// `ML-KEM.Encaps_internal(ek, m)` after the key check: for tests and vectors.
pub fn encapsulate_with(
    pk: &[u8],
    m: &[u8; 32],
) -> KemResult<(
    [u8; CIPHERTEXT_LEN],
    SensitiveByteArray<[u8; SHARED_SECRET_LEN]>,
)> {
    let ek = encaps_key_of(pk)?;
    let (ss, ct) = ek.encaps_from_seed(m);
    Ok((ct.into_bytes(), SensitiveByteArray::new(ss.into_bytes())))
}
