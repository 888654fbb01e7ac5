//! A logged-in `Client`'s daemon: request-channel connections (`RequestLink`)
//! fed raw bytes, a real NNpsk0 message 1 (keyed with the PSK the client
//! announced, or a wrong one) then raw transport bytes, authentic messages
//! of any content, or arbitrary authentic plaintexts; with the user's
//! answers, link closes and time in between.
//!
//! Byte 0, bit 1: small limits. The checks are those of
//! `securecom_fuzz::fake_server` (a foreign link changes nothing, events
//! only from authentic requests, `Accept` only when the user accepted…).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = securecom_fuzz::targets::daemon(data);
});
