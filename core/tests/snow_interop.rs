//! Interoperability with `snow` on the portable provider (RustCrypto);
//! `securecom-host` runs the same module on its own provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

type Provider = securecom_core::RustCrypto;

#[path = "conformance/snow_interop.rs"]
mod snow_interop;
