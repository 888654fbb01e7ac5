//! The firmware's crypto provider: the core's portable primitives
//! ([`securecom_core::RustCrypto`]), with every X25519 public key computed
//! by the Montgomery ladder that the Diffie-Hellman already uses.
//!
//! X25519 of a private key with the base point (u = 9) *is* its public key
//! (RFC 7748, section 6.1): the same bytes as `x25519-dalek`'s
//! `PublicKey::from`, which takes the Edwards curve's fixed-base
//! multiplication instead. That second scalar multiplication costs the
//! firmware its own code (the Edwards point arithmetic and lookup tables,
//! about 2 KB of flash at `opt-level = "s"`, over 6 KB at 1) for 4 % fewer
//! instructions per key generation: with one ladder for both, the ladder can
//! be compiled for speed (`Cargo.toml`). The same use of randomness as
//! clatter's `X25519` (32 bytes in one `fill_bytes` call, clamped when used),
//! so seeded runs give the same keys; the host test `x25519_ladder_keys`
//! (`tests/tests/embedded.rs`) checks the bytes against the core's provider.

use clatter::bytearray::{ByteArray, SensitiveByteArray};
use clatter::error::DhResult;
use clatter::traits::{CryptoComponent, Dh, Rng};
use clatter::KeyPair;
use securecom_core::CryptoProvider;
use x25519_dalek::{PublicKey, StaticSecret, X25519_BASEPOINT_BYTES};

/// X25519 with one scalar multiplication, the Montgomery ladder (module docs).
#[derive(Clone)]
pub struct LadderX25519;

impl CryptoComponent for LadderX25519 {
    fn name() -> &'static str {
        "25519"
    }
}

impl Dh for LadderX25519 {
    type PrivateKey = SensitiveByteArray<[u8; 32]>;
    type PubKey = [u8; 32];
    type Output = SensitiveByteArray<[u8; 32]>;

    fn genkey_rng<R: Rng>(rng: &mut R) -> DhResult<KeyPair<Self::PubKey, Self::PrivateKey>> {
        let secret = Self::PrivateKey::from_slice(StaticSecret::random_from_rng(rng).as_bytes());
        Ok(KeyPair {
            public: Self::pubkey(&secret),
            secret,
        })
    }

    fn pubkey(k: &Self::PrivateKey) -> Self::PubKey {
        let base = PublicKey::from(X25519_BASEPOINT_BYTES);
        *StaticSecret::from(**k).diffie_hellman(&base).as_bytes()
    }

    fn dh(k: &Self::PrivateKey, pk: &Self::PubKey) -> DhResult<Self::Output> {
        let shared = StaticSecret::from(**k).diffie_hellman(&PublicKey::from(*pk));
        Ok(Self::Output::from_slice(shared.as_bytes()))
    }
}

/// The firmware's provider: [`securecom_core::RustCrypto`] with
/// [`LadderX25519`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCrypto;

impl CryptoProvider for DeviceCrypto {
    const NAME: &'static str = "RustCrypto (ladder X25519)";
    type Dh = LadderX25519;
    type Cipher = clatter::crypto::cipher::ChaChaPoly;
    type Kem = securecom_core::kem::Fips203MlKem768;
}

/// The firmware's client.
pub type Client = securecom_core::Client<DeviceCrypto>;

/// The firmware's request link.
pub type RequestLink = securecom_core::RequestLink<DeviceCrypto>;

/// The device's key from its 32 stored bytes, its public key by the ladder.
pub fn static_secret(bytes: [u8; 32]) -> securecom_core::StaticSecret {
    securecom_core::StaticSecret::from_bytes_with::<LadderX25519>(bytes)
}
