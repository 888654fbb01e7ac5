//! # secureCom embedded client
//!
//! A complete secureCom client for a Cortex-M3 (QEMU `lm3s6965evb`), built
//! as a thin driver around [`securecom_core::Client`]: no heap, no
//! allocator, every buffer and all session state in statics.
//!
//! | concept | module |
//! |---|---|
//! | UART MMIO, stack measurement, faults (the only `unsafe`) | [`hw`] |
//! | the millisecond clock and cost meter | [`clock`] |
//! | `device.cfg`: identity and behaviour | [`config`] |
//! | the crypto provider (X25519 by the ladder alone) | [`crypto`] |
//! | the RNG seed | [`entropy`] |
//! | chat partners' keys: learned, configured, changed | [`known_peers`] |
//! | what the device answers in a chat | [`replies`] |
//! | the driver loop | [`device`] |
//! | exit statuses, panics | [`exit`] |
//!
//! The binaries are `src/main.rs` (the client) and `src/bin/crypto-cost.rs`
//! (the cost of the raw primitives, for `FIGURES.md`).
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod clock;
pub mod config;
pub mod crypto;
pub mod device;
pub mod entropy;
pub mod exit;
pub mod hw;
pub mod known_peers;
pub mod replies;

// The global defmt logger: frames go to the host over semihosting.
use defmt_semihosting as _;
