//! Abuse of the real programs (issue 10): handshake floods against the
//! server's limits (`abuse/handshakes.rs`), and degenerate keys refused
//! wherever a key enters (`abuse/keys.rs`).

// A test file is a crate root: its `mod` paths are relative to `tests/tests/`.
#[path = "abuse/handshakes.rs"]
mod handshakes;
#[path = "abuse/keys.rs"]
mod keys;
// Revocation, listing, chat-request and daemon-announce abuse (helpers of
// `tests/adversarial/`; the raw protocol speaker is in `abuse/announce.rs`).
mod adversarial;
#[path = "abuse/announce.rs"]
mod announce;
#[path = "abuse/listing.rs"]
mod listing;
#[path = "abuse/requests.rs"]
mod requests;
#[path = "abuse/revocation.rs"]
mod revocation;
