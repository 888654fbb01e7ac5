//! Abuse of the real programs (issue 10): handshake floods against the
//! server's limits (`abuse/handshakes.rs`), and degenerate keys refused
//! wherever a key enters (`abuse/keys.rs`).

// A test file is a crate root: its `mod` paths are relative to `tests/tests/`.
#[path = "abuse/handshakes.rs"]
mod handshakes;
#[path = "abuse/keys.rs"]
mod keys;
