//! Fuzzing builds only (`--cfg fuzzing`, which cargo-fuzz sets; never in a
//! product build): X25519 with its results memoized.
//!
//! The stateful fuzz targets run real handshakes on every input, and their
//! X25519 scalar multiplications took about 85 % of the time. Their RNGs have
//! fixed seeds and their long-term keys are fixed, so the same
//! multiplications come back input after input: [`MemoX25519`] returns
//! exactly what clatter's [`X25519`] returns (it computes it the first
//! time), from a per-thread table. The code under test is unchanged; only
//! the repeated arithmetic is saved. The table holds private keys: it exists
//! only in fuzzing binaries, and it is cleared when it reaches
//! [`MAX_ENTRIES`] so memory stays bounded.

extern crate std;

use std::cell::RefCell;
use std::collections::HashMap;

use clatter::crypto::dh::X25519;
use clatter::error::DhResult;
use clatter::traits::{CryptoComponent, Dh, Rng};
use clatter::KeyPair;

/// Entries per table before it is cleared (each about 100 bytes).
const MAX_ENTRIES: usize = 1 << 18;

type Key = [u8; 32];

#[derive(Default)]
struct Memo {
    pubkeys: HashMap<Key, Key>,
    shared: HashMap<(Key, Key), Key>,
}

std::thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// clatter's [`X25519`], memoized (see the module documentation).
#[derive(Clone)]
// `pub`: the fuzzing build's `RustCrypto` provider names it (the module is private).
#[cfg_attr(not(fuzzing), allow(dead_code))]
#[allow(unreachable_pub)]
pub struct MemoX25519;

impl CryptoComponent for MemoX25519 {
    fn name() -> &'static str {
        X25519::name()
    }
}

impl Dh for MemoX25519 {
    type PrivateKey = <X25519 as Dh>::PrivateKey;
    type PubKey = <X25519 as Dh>::PubKey;
    type Output = <X25519 as Dh>::Output;

    fn genkey_rng<R: Rng>(rng: &mut R) -> DhResult<KeyPair<Self::PubKey, Self::PrivateKey>> {
        X25519::genkey_rng(rng)
    }

    fn pubkey(k: &Self::PrivateKey) -> Self::PubKey {
        let Ok(p) = memoized::<_, core::convert::Infallible>(
            |m| &mut m.pubkeys,
            **k,
            || Ok(X25519::pubkey(k)),
        );
        p
    }

    fn dh(k: &Self::PrivateKey, pk: &Self::PubKey) -> DhResult<Self::Output> {
        memoized(
            |m| &mut m.shared,
            (**k, *pk),
            || X25519::dh(k, pk).map(|o| *o),
        )
        .map(clatter::bytearray::SensitiveByteArray::new)
    }
}

/// The value of `key` in the table `table` picks, computed by `compute` on
/// a miss (an error is returned, not kept).
fn memoized<K: core::hash::Hash + Eq, E>(
    table: fn(&mut Memo) -> &mut HashMap<K, Key>,
    key: K,
    compute: impl FnOnce() -> Result<Key, E>,
) -> Result<Key, E> {
    if let Some(v) = MEMO.with(|m| {
        let mut memo = m.borrow_mut();
        table(&mut memo).get(&key).copied()
    }) {
        return Ok(v);
    }
    let v = compute()?;
    MEMO.with(|m| {
        let mut memo = m.borrow_mut();
        let map = table(&mut memo);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, v);
    });
    Ok(v)
}

#[cfg(test)]
mod tests {
    // The memo returns what X25519 returns, on a miss and on a hit.
    use super::*;
    use clatter::bytearray::SensitiveByteArray;

    #[test]
    fn memo_equals_x25519() {
        for i in 0u8..4 {
            let a = SensitiveByteArray::new([i.wrapping_mul(37) ^ 0x5a; 32]);
            let b = SensitiveByteArray::new([i ^ 0xc3; 32]);
            for _ in 0..2 {
                let pa = MemoX25519::pubkey(&a);
                assert_eq!(pa, X25519::pubkey(&a));
                let pb = MemoX25519::pubkey(&b);
                let s = MemoX25519::dh(&a, &pb).unwrap();
                assert_eq!(*s, *X25519::dh(&a, &pb).unwrap());
                assert_eq!(*s, *MemoX25519::dh(&b, &pa).unwrap());
            }
        }
    }
}
