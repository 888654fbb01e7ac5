//! # secureCom protocol core
//!
//! The whole secureCom protocol as a `no_std`, heap-free, sans-IO engine:
//! bytes in, bytes out, time passed in, randomness supplied by the caller.
//! The tokio server, the CLI client and the Cortex-M firmware are thin
//! drivers around it.
//!
//! | concept | module |
//! |---|---|
//! | limits and protocol constants | [`limits`] |
//! | time as an argument | [`time`] |
//! | keys, fingerprints, safety numbers | [`keys`] |
//! | the crypto provider (RustCrypto, or a faster one on a host) | [`crypto`] |
//! | server certificates and revocation lists (Ed25519 CA) | [`cert`] |
//! | the 2-byte length framing | [`frame`] |
//! | Noise handshakes (XX, NNpsk0, KK) and transport | [`noise`] |
//! | typed messages, postcard encoding | [`message`] |
//! | a framed Noise connection with timers | [`channel`] |
//! | the E2E chat (KK over the server) | [`chat`] |
//! | client: standard channel, daemon, chat | [`client`] |
//! | server: one client's session | [`server`] |
//! | server: presence and routing, fixed capacity | [`hub`] |
//!
//! ## Dependencies and why
//! - [`clatter`]: the Noise engine. Maintained, `no_std` without `alloc`,
//!   fixed-size buffers, zeroizes keys, supports PSK patterns and exactly
//!   our suite (X25519, ChaChaPoly, BLAKE2s), built on the RustCrypto crates
//!   (`x25519-dalek`, `chacha20poly1305`, `blake2`). We never write our own
//!   cryptography; `tests/vectors.rs` and `tests/snow_interop.rs` prove it
//!   speaks Noise rev. 34. Its primitives come from a [`crypto`] provider:
//!   RustCrypto here and on the device; a host program may plug in a faster
//!   one (the host programs use AWS-LC) through clatter's own traits.
//! - `postcard` + `serde`: compact, documented, `no_std` encoding with
//!   zero-copy decoding of borrowed strings and bytes.
//! - `heapless`: fixed-capacity strings, vectors and queues.
//! - `subtle`: constant-time comparison of keys; `zeroize`: wiping secrets.
//! - `rand_core`: the caller's RNG as a trait; the core owns none.
//! - `ed25519-dalek` (no default features): the CA's signatures on server
//!   certificates and revocation lists, verified with `verify_strict`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
// Without a heap, state enums hold their largest variant inline: that is the design.
#![allow(clippy::large_enum_variant)]

mod buf;
pub mod cert;
pub mod channel;
pub mod chat;
pub mod client;
pub mod crypto;
pub mod error;
pub mod frame;
// The memo is the X25519 of fuzzing builds only (see `keys`); its unit test
// runs in every `cargo test`.
#[cfg(any(fuzzing, test))]
mod fuzzing;
pub mod hub;
pub mod kem;
pub mod keys;
pub mod limits;
pub mod message;
pub mod noise;
pub mod pq;
pub mod rate;
pub mod rekey;
pub mod server;
pub mod time;

pub use cert::{CaPublicKey, CaTrust, CertError};
pub use client::{
    CertifiedServer, ChatEnd, Client, ClientConfig, ClientEvent, RequestHello, RequestLink,
    RequestMode,
};
pub use crypto::{CryptoProvider, RustCrypto};
pub use error::{CryptoError, Error, FrameError, ProtocolError, WireError};
pub use hub::{Hub, SessionId};
pub use keys::{Fingerprint, PublicKey, SafetyNumber, StaticSecret};
pub use limits::*;
pub use message::{ChatId, UserName};
pub use rate::{Rate, TokenBucket};
pub use server::{RateState, Registry, ServerConfig, ServerEvent, ServerSession};
pub use time::{Duration, Instant};
