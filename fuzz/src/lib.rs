//! Shared harness for the `securecom-core` fuzz targets.
//!
//! - [`fixtures`]: fixed keys, the registry, deterministic RNGs, limits.
//! - [`arb`]: `Arbitrary` building blocks (names, keys, byte strings, every
//!   message type in an owned form) and [`arb::Enc`], their inverse, with
//!   which `make-seeds` writes meaningful operation sequences.
//! - [`fake_server`]: an authenticated but fuzzer-driven server (and daemon
//!   dialer, and E2E peer "bob") in front of one real [`securecom_core::Client`].
//! - [`fake_clients`]: authenticated but fuzzer-driven clients and daemons in
//!   front of a real [`securecom_core::Hub`].
//! - [`world`]: real clients and a real hub, with the fuzzer as the network
//!   (deliver, flip, drop, duplicate, inject, stall) after real logins.
//!
//! Every RNG is a `ChaCha20Rng` with a fixed seed, so an input always replays
//! the same way. Every check that fails is a bug (of the core or of the
//! harness) and panics with a message saying which invariant broke.

pub mod arb;
pub mod fake_clients;
pub mod fake_server;
pub mod fixtures;
pub mod world;

/// How far a run got (for `make-seeds`, which checks that each seed
/// reaches what it was written for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Logins completed (client `LoggedIn` events, or `LoginOk` read by a fake client).
    pub logins: usize,
    /// Request channels up (a daemon authenticated a message / read `Ready`).
    pub daemons: usize,
    /// E2E chats open (`ChatReady` events, or relayed handshake messages).
    pub chats: usize,
    /// Chat texts delivered end to end (or relayed data messages).
    pub texts: usize,
    /// Re-keys completed between the side under test and its peer (the
    /// standard and request channels and the chat, counted by the fake
    /// peers; in the network world, the clients' channels and chats).
    pub rekeys: usize,
}

/// Splits a byte stream of well-formed frames (as an honest endpoint writes
/// them) into whole frames (header included); a trailing partial frame stays
/// in `buf`.
pub fn split_frames(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 2 {
            return out;
        }
        let n = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        if buf.len() < 2 + n {
            return out;
        }
        let rest = buf.split_off(2 + n);
        out.push(core::mem::replace(buf, rest));
    }
}

/// The bare switch (re-key message 5) as its plaintext: the only re-key
/// message without randomness or a tag of its own.
const REKEY_SWITCH: [u8; 2] = [securecom_core::rekey::REKEY_MARKER, 5];

/// True if `plain`, a plaintext the fuzzer chose for a fake peer to send
/// under `keys`, is a re-key message that is not exactly the one those keys
/// would write next (the switch, when it is due): one that must never
/// complete a re-key at the real end.
pub fn forged_rekey(keys: &securecom_core::rekey::Keys, plain: &[u8]) -> bool {
    securecom_core::rekey::is_rekey_message(plain) && !is_due_switch(keys, plain)
}

/// True if `plain` is the switch and `keys` are due to write it (the fake
/// peer then sends it as its own: [`rekey_frame`]).
pub fn is_due_switch(keys: &securecom_core::rekey::Keys, plain: &[u8]) -> bool {
    plain == REKEY_SWITCH
        && keys.pending_rekey() == Some(REKEY_SWITCH.len() + securecom_core::TAG_LEN)
}

/// A fake peer's next re-key message, if one is due, sealed under `keys`
/// and framed (an honest peer's, so it cannot fail).
pub fn rekey_frame(
    keys: &mut securecom_core::rekey::Keys,
    now: securecom_core::Instant,
    limits: &securecom_core::Limits,
) -> Option<Vec<u8>> {
    let mut msg = [0u8; securecom_core::MAX_NOISE_MESSAGE];
    let n = keys
        .write_rekey(now, limits, &mut msg)
        .expect("a fake peer writes its re-key message")?;
    let mut f = vec![0u8; n + securecom_core::FRAME_HEADER];
    let len = securecom_core::frame::encode_frame(&msg[..n], &mut f).expect("frame");
    f.truncate(len);
    Some(f)
}

/// Hub invariants: at most one open, logged-in session per user, and
/// symmetric chats (if a session is in chat `id` with `p`, `p`'s open session
/// is in chat `id` with it).
pub fn check_hub<const N: usize>(hub: &securecom_core::Hub<N>) {
    let open: Vec<_> = (0..N)
        .filter_map(|i| hub.session(i))
        .filter(|s| !s.is_closed())
        .filter_map(|s| {
            s.user()
                .map(|u| (u.clone(), s.chat_peer().map(|(p, id)| (p.clone(), id))))
        })
        .collect();
    for (i, (u, chat)) in open.iter().enumerate() {
        assert!(
            open.iter().skip(i + 1).all(|(v, _)| v != u),
            "two open sessions for {u}"
        );
        if let Some((p, id)) = chat {
            let peer = open.iter().find(|(v, _)| v == p);
            assert!(
                peer.is_some_and(|(_, c)| c.as_ref() == Some(&(u.clone(), *id))),
                "asymmetric chat: {u} is in chat {id} with {p}, whose session has {:?}",
                peer.map(|p| &p.1)
            );
        }
    }
}

/// The bodies of the operation-driven targets (shared with `make-seeds`,
/// which runs every seed through them). Each returns how far the run got.
pub mod targets {
    use arbitrary::{Arbitrary, Unstructured};

    use crate::fake_clients::{FakeClients, ServerOp};
    use crate::fake_server::{ClientOp, DaemonOp, FakeServer};
    use crate::world::{World, WorldOp};
    use crate::Stats;

    /// Most operations per input (keeps every run short).
    pub const MAX_OPS: usize = 200;

    /// Runs the operations of an input. With `SECURECOM_FUZZ_TRACE` set in
    /// the environment, prints each one first (to read a reproducer:
    /// `SECURECOM_FUZZ_TRACE=1 cargo +nightly fuzz run … <target> <file>`).
    fn ops<'a, T: Arbitrary<'a> + core::fmt::Debug>(
        u: &mut Unstructured<'a>,
        mut f: impl FnMut(T),
    ) {
        // Read once per process, not once per input.
        static TRACE: std::sync::LazyLock<bool> =
            std::sync::LazyLock::new(|| std::env::var_os("SECURECOM_FUZZ_TRACE").is_some());
        let trace = *TRACE;
        for _ in 0..MAX_OPS {
            let Ok(op) = T::arbitrary(u) else { break };
            if trace {
                eprintln!("op: {op:?}");
            }
            f(op);
            if u.is_empty() {
                break;
            }
        }
    }

    fn world(small: bool, u: &mut Unstructured<'_>) -> Stats {
        let mut w = World::new(small);
        ops(u, |op: WorldOp| w.apply(&op));
        w.stats
    }

    /// `client`: byte 0 bit 0 = mode (fake server / network), bit 1 = small
    /// limits, bit 2 = no daemon announced (fake-server mode).
    pub fn client(data: &[u8]) -> Stats {
        let Some((&mode, rest)) = data.split_first() else {
            return Stats::default();
        };
        let small = mode & 2 != 0;
        let mut u = Unstructured::new(rest);
        if mode & 1 == 0 {
            let mut s = FakeServer::new(crate::fake_server::Setup::from_bits(mode));
            ops(&mut u, |op: ClientOp| s.apply(&op));
            s.stats
        } else {
            world(small, &mut u)
        }
    }

    /// `daemon`: byte 0 bit 1 = small limits.
    pub fn daemon(data: &[u8]) -> Stats {
        let Some((&mode, rest)) = data.split_first() else {
            return Stats::default();
        };
        let mut s = FakeServer::logged_in(mode & 2 != 0);
        let mut u = Unstructured::new(rest);
        ops(&mut u, |op: DaemonOp| s.apply(&op.op()));
        s.stats
    }

    /// `server_session`: byte 0 bit 0 = mode (fake clients / network), bit 1
    /// = small limits.
    pub fn server_session(data: &[u8]) -> Stats {
        let Some((&mode, rest)) = data.split_first() else {
            return Stats::default();
        };
        let small = mode & 2 != 0;
        let mut u = Unstructured::new(rest);
        if mode & 1 == 0 {
            let mut h = FakeClients::new(small);
            ops(&mut u, |op: ServerOp| h.apply(&op));
            h.stats
        } else {
            world(small, &mut u)
        }
    }
}
