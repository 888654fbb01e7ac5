//! A real `Hub<4>` (and so `ServerSession`s) driven by arbitrary operation
//! sequences.
//!
//! Byte 0 chooses the mode (bit 0) and the limits (bit 1: small limits):
//! - mode 0, fake clients: up to five users (one unregistered) connect,
//!   send raw bytes or complete the XX handshake with their real keys and
//!   then send authentic messages of any content, answer dials with their
//!   daemons, stall, disconnect, let time pass
//!   (`securecom_fuzz::fake_clients`);
//! - mode 1, network: real clients after a real login, the fuzzer as the
//!   network (`securecom_fuzz::world`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = securecom_fuzz::targets::server_session(data);
});
