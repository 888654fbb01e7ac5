//! Host-side helpers shared by `securecom-server` and `securecom-client`:
//! key files (plain or passphrase-protected in the age format), passphrase
//! sources, certificate and revocation-list files, hex-encoded public keys,
//! the process clock and the RNG.
//!
//! Everything protocol-related lives in `securecom-core`; this crate only
//! deals with files and the operating system.

// `crypto` alone allows it: its calls into AWS-LC.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod age;
pub mod certfile;
pub mod crypto;
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

/// This thread's RNG, for what the core draws per session and per input
/// (ephemeral keys, secrets, chat ids): rand's `ThreadRng`, a ChaCha12
/// generator seeded from the operating system once per thread and reseeded
/// from it every 64 KiB of output and after a fork. A session draws from the
/// RNG of whatever thread it runs on at that moment (it is not `Send`: get
/// it again for each call, it costs a thread-local lookup), so no session
/// pays a system call to start, nor holds an RNG of its own.
pub fn thread_rng() -> rand::rngs::ThreadRng {
    rand::thread_rng()
}

/// The host programs' crypto provider: see [`securecom_core::crypto`].
pub type HostCrypto = crypto::AwsLc;

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
    /// A point of small order (such as all zeros): no one holds its private
    /// key and every handshake with it is readable by anyone.
    #[error("not a valid X25519 public key (low-order point)")]
    LowOrder,
}

/// Parses a public key written as 64 hex digits, refusing a low-order point
/// ([`PublicKey::is_low_order`]).
pub fn parse_public_key(s: &str) -> Result<PublicKey, KeyParseError> {
    let bytes = hex::decode(s.trim()).map_err(|_| KeyParseError::BadHex)?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyParseError::BadHex)?;
    PublicKey::try_from_bytes(arr).map_err(|_| KeyParseError::LowOrder)
}

/// A public key as 64 hex digits.
pub fn public_key_hex(key: &PublicKey) -> String {
    hex::encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_order_public_keys_are_refused() {
        let real = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        assert_eq!(public_key_hex(&parse_public_key(real).unwrap()), real);
        for weak in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "0000000000000000000000000000000000000000000000000000000000000080",
        ] {
            let e = parse_public_key(weak).unwrap_err();
            assert!(matches!(e, KeyParseError::LowOrder), "{weak}");
            assert_eq!(
                e.to_string(),
                "not a valid X25519 public key (low-order point)"
            );
        }
        assert!(matches!(parse_public_key("00"), Err(KeyParseError::BadHex)));
    }
}
