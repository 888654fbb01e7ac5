//! The host provider (aws-lc-rs) passes what the portable one passes: the
//! official Noise vectors, the interop with `snow` and the FIPS 203 vectors of
//! its ML-KEM-768, through the very same
//! test modules as the core's (`core/tests/conformance/`), on `AwsLc`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

type Provider = securecom_host::crypto::AwsLc;

#[path = "../../core/tests/conformance/vectors.rs"]
mod vectors;

#[path = "../../core/tests/conformance/snow_interop.rs"]
mod snow_interop;

#[path = "../../core/tests/conformance/mlkem.rs"]
mod mlkem;
