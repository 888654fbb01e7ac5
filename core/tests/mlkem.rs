//! ML-KEM-768 of the portable provider (RustCrypto: `fips203`) against the
//! FIPS 203 vectors; `securecom-host` runs the same module on AWS-LC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

type Provider = securecom_core::RustCrypto;

#[path = "conformance/mlkem.rs"]
mod mlkem;
