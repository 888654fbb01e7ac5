//! Helpers shared by the adversarial tests (`malicious_server.rs`,
//! `network_attacker.rs`, `floods.rs`, `soak.rs`), each of which includes
//! this module with `mod adversarial;`.
//!
//! | module | what |
//! |---|---|
//! | [`procs`] | the real server (with its pid, log, memory and descriptors) and real clients pointed at any address |
//! | [`peer`] | an in-process client (the core's `Client`) over a blocking socket |
//! | [`evil`] | a malicious server built from the core's `ServerSession`s, with hooks |
//! | [`proxy`] | a frame-aware TCP man in the middle that can change, cut, duplicate, hold and replay frames |
//! | [`net`] | sockets bound to chosen loopback source addresses, raw frames, waits |
//!
//! Every wait has a deadline and every process or thread started here is
//! stopped when its owner is dropped.
#![allow(dead_code)]

pub mod evil;
pub mod net;
pub mod peer;
pub mod procs;
pub mod proxy;

use std::sync::{Mutex, MutexGuard};

/// Serializes the tests of one binary that measure time or memory (the
/// machine has two cores; parallel floods would measure each other).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
