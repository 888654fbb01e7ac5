//! The RNG seed: the only source of entropy of the device.
//!
//! The LM3S6965 has no TRNG, so under QEMU the seed comes from the host's
//! `/dev/urandom` through semihosting. A real device replaces the body of
//! [`seed`] with its TRNG (and, ideally, mixes in a stored seed file).

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::exit::{exit, ExitCode};

/// 32 bytes of entropy from the host; exits with [`ExitCode::Entropy`] when
/// there are none (a device must never run on a guessable seed).
pub fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if semihosting::experimental::random::fill_bytes(&mut seed).is_err() || seed == [0; 32] {
        defmt::error!("entropy: no seed from the host");
        exit(ExitCode::Entropy);
    }
    seed
}

/// The device's cryptographic RNG, seeded from [`seed`].
pub fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed(seed())
}
