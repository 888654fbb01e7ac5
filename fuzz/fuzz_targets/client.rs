//! A real `Client` driven by arbitrary operation sequences.
//!
//! Byte 0 chooses the mode (bit 0) and the limits (bit 1: small limits, so
//! that message and age limits are reached):
//! - mode 0, fake server: the fuzzer is the (authenticated) server, the
//!   dialer of the client's daemon and the E2E peer bob; raw bytes on either
//!   socket, authentic messages of any content, user commands, time
//!   (`securecom_fuzz::fake_server`);
//! - mode 1, network: alice and bob logged in to a real `Hub` after a real
//!   login; the fuzzer delivers, flips, drops, duplicates or injects frames
//!   between them, stalls senders, issues commands, lets time pass
//!   (`securecom_fuzz::world`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = securecom_fuzz::targets::client(data);
});
