//! Host-side helpers shared by `securecom-server` and `securecom-client`:
//! key files (plain or passphrase-protected in the age format), passphrase
//! sources, certificate and revocation-list files, hex-encoded public keys,
//! the process clock and the RNG.
//!
//! Everything protocol-related lives in `securecom-core`; this crate only
//! deals with files and the operating system.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod age;
pub mod certfile;
pub mod keyfile;
pub mod passphrase;

use std::sync::OnceLock;

use securecom_core::{Instant, PublicKey};

/// The RNG handed to the core: ChaCha20 seeded from the OS.
pub type Rng = rand_chacha::ChaCha20Rng;

/// A fresh RNG seeded from the operating system's entropy.
pub fn os_rng() -> Rng {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::from_entropy()
}

/// The core's notion of now: milliseconds since this process first asked.
pub fn now() -> Instant {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    Instant::from_millis(start.elapsed().as_millis() as u64)
}

/// How long from now until `deadline` (zero if past).
pub fn until(deadline: Instant) -> std::time::Duration {
    std::time::Duration::from_millis(deadline.since(now()).as_millis())
}

/// Errors parsing a hex public key.
#[derive(Debug, thiserror::Error)]
pub enum KeyParseError {
    /// Not 64 hex digits.
    #[error("a public key is 64 hex digits (32 bytes)")]
    BadHex,
}

/// Parses a public key written as 64 hex digits.
pub fn parse_public_key(s: &str) -> Result<PublicKey, KeyParseError> {
    let bytes = hex::decode(s.trim()).map_err(|_| KeyParseError::BadHex)?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyParseError::BadHex)?;
    Ok(PublicKey(arr))
}

/// A public key as 64 hex digits.
pub fn public_key_hex(key: &PublicKey) -> String {
    hex::encode(key.as_bytes())
}
