//! The official Noise test vectors through our wrapper on the portable
//! provider (RustCrypto); `securecom-host` runs the same module on its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

type Provider = securecom_core::RustCrypto;

#[path = "conformance/vectors.rs"]
mod vectors;
