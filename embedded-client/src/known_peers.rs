//! The device's known peers: which key each chat partner had, with the same
//! key-change rule as the CLI client's known-peers file.
//!
//! - **First contact** (a name not in the table): the key is learned (trust
//!   on first use) and the device shows its fingerprint.
//! - **Same key again**: the chat goes on.
//! - **Another key for a known name**: the chat is refused (or, when the
//!   device asked for it, left before anything is said), with a loud warning
//!   showing the old and the new fingerprint. The new key is accepted only
//!   when the configuration lists it (`peer NAME HEX`, read at boot), or when
//!   the configured `admin`, in a chat of its own, sends `trust NAME`: that
//!   trusts the key last offered for NAME, as the CLI's `/trust NAME` does.
//!
//! The table has room for [`KNOWN_PEERS_MAX`] peers, in static storage (no
//! heap). Entries are never evicted: a server that made up a flood of new
//! names could otherwise push a real peer out and then introduce itself as
//! that peer's "first contact". So when the table is full, a peer it does
//! not know is refused (and told so in the log), while every known peer keeps
//! working. Learned entries last for the device's run (RAM only: nothing is
//! written to flash); the configured ones come back at every boot.
//!
//! This module is plain `core` plus `securecom-core` (no `heapless`, no
//! `defmt`), so that `tests/tests/embedded.rs` can compile it on the host
//! and run its unit tests.

use core::fmt::{self, Write};

use securecom_core::{PublicKey, UserName};

/// Most peers the device remembers (configured and learned together).
pub const KNOWN_PEERS_MAX: usize = 16;

/// How a key came into the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `peer NAME HEX` line of the configuration.
    Configured,
    /// First contact during this run (trust on first use).
    Learned,
    /// A changed key that the admin trusted (`trust NAME`) during this run.
    Trusted,
}

/// What the table says about a key offered for a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The table has this very key: go on.
    Known(Origin),
    /// First contact: the key is now remembered; go on.
    Learned,
    /// First contact, but the table is full: not remembered; refuse.
    Full,
    /// The table has another key for this name: refuse. The offered key is
    /// kept as the one a `trust NAME` would accept.
    Changed {
        /// The key remembered.
        old: PublicKey,
    },
    /// A low-order key, which no one holds: refuse, never remember.
    Weak,
}

impl Verdict {
    /// True if the chat may go on with this key.
    pub fn admits(&self) -> bool {
        matches!(self, Verdict::Known(_) | Verdict::Learned)
    }
}

/// Why a configured peer was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedError {
    /// The name is already in the table.
    Duplicate,
    /// The table is full.
    Full,
    /// A low-order key.
    Weak,
}

/// Why `trust NAME` did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustError {
    /// NAME has no changed key waiting (it is unknown, or its last key was the known one).
    NothingToTrust,
}

#[derive(Clone, Debug)]
struct Entry {
    name: UserName,
    key: PublicKey,
    origin: Origin,
    /// The last changed key offered for this name, for `trust NAME`.
    offered: Option<PublicKey>,
}

/// The table, fixed capacity, in a static.
pub struct KnownPeers {
    entries: [Option<Entry>; KNOWN_PEERS_MAX],
}

impl KnownPeers {
    /// An empty table.
    pub const fn new() -> Self {
        KnownPeers {
            entries: [const { None }; KNOWN_PEERS_MAX],
        }
    }

    /// Peers in the table.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    /// True if no peer is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key the table has for `name`, and how it came.
    pub fn get(&self, name: &str) -> Option<(PublicKey, Origin)> {
        self.find(name).map(|e| (e.key, e.origin))
    }

    fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().flatten().find(|e| e.name == name)
    }

    fn find_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().flatten().find(|e| e.name == name)
    }

    fn insert(&mut self, name: &UserName, key: PublicKey, origin: Origin) -> Result<(), SeedError> {
        let slot = self
            .entries
            .iter_mut()
            .find(|e| e.is_none())
            .ok_or(SeedError::Full)?;
        *slot = Some(Entry {
            name: name.clone(),
            key,
            origin,
            offered: None,
        });
        Ok(())
    }

    /// Adds a peer from the configuration.
    pub fn seed(&mut self, name: &UserName, key: PublicKey) -> Result<(), SeedError> {
        if key.is_low_order() {
            return Err(SeedError::Weak);
        }
        if self.find(name).is_some() {
            return Err(SeedError::Duplicate);
        }
        self.insert(name, key, Origin::Configured)
    }

    /// Checks the key offered for `name` (a chat request, or a chat the
    /// device asked for opening), learning it on first contact.
    pub fn check(&mut self, name: &UserName, key: &PublicKey) -> Verdict {
        if key.is_low_order() {
            return Verdict::Weak;
        }
        match self.find_mut(name) {
            Some(e) if e.key == *key => {
                // Back with the known key: an offer seen meanwhile is stale.
                e.offered = None;
                Verdict::Known(e.origin)
            }
            Some(e) => {
                e.offered = Some(*key);
                Verdict::Changed { old: e.key }
            }
            None => match self.insert(name, *key, Origin::Learned) {
                Ok(()) => Verdict::Learned,
                Err(_) => Verdict::Full,
            },
        }
    }

    /// `trust NAME`: the key last offered for `name` replaces the one
    /// remembered (for this run). Returns the key now trusted.
    pub fn trust(&mut self, name: &str) -> Result<PublicKey, TrustError> {
        let e = self.find_mut(name).ok_or(TrustError::NothingToTrust)?;
        let key = e.offered.take().ok_or(TrustError::NothingToTrust)?;
        e.key = key;
        e.origin = Origin::Trusted;
        Ok(key)
    }
}

impl Default for KnownPeers {
    fn default() -> Self {
        Self::new()
    }
}

/// Room for the longest text of this module: the device's line buffer.
pub const LINE_MAX: usize = 640;

/// The name in a `trust NAME` chat command, if `text` is one.
pub fn trust_command(text: &str) -> Option<&str> {
    let name = text.trim().strip_prefix("trust ")?.trim();
    (!name.is_empty()).then_some(name)
}

/// What the device shows for a verdict on `name`'s `key` (one or more lines).
pub fn write_verdict(
    out: &mut impl Write,
    name: &str,
    key: &PublicKey,
    verdict: &Verdict,
) -> fmt::Result {
    let fp = key.fingerprint();
    match verdict {
        Verdict::Known(origin) => write!(
            out,
            "{name}'s key {fp} is known ({})",
            match origin {
                Origin::Configured => "from the configuration",
                Origin::Learned => "learned at first contact",
                Origin::Trusted => "trusted by the admin",
            }
        ),
        Verdict::Learned => write!(
            out,
            "first contact with {name}: key fingerprint {fp} learned (trust on first use; \
             compare the safety number with {name} over another channel)"
        ),
        Verdict::Full => write!(
            out,
            "known peers full ({KNOWN_PEERS_MAX}): {name} (key fingerprint {fp}) is new and \
             cannot be remembered, so the chat is refused; known peers still work \
             (list {name} as `peer {name} HEX` in device.cfg)"
        ),
        Verdict::Changed { old } => write!(
            out,
            "!!! WARNING: {name}'s KEY HAS CHANGED !!!\n\
             !!!   remembered key: {}\n\
             !!!   key offered now: {fp}\n\
             !!! Either {name} has a new key, or someone (the server?) is in the middle.\n\
             !!! The chat is refused. To accept the new key: check it with {name} over \
             another channel, then list it in device.cfg (peer {name} HEX) or have the \
             admin send: trust {name}",
            old.fingerprint()
        ),
        Verdict::Weak => write!(
            out,
            "{name} offered a low-order key (no one holds it): the chat is refused"
        ),
    }
}

/// The device's reply to the admin's `trust NAME`.
pub fn write_trust_reply(
    out: &mut impl Write,
    name: &str,
    result: &Result<PublicKey, TrustError>,
) -> fmt::Result {
    match result {
        Ok(key) => write!(
            out,
            "trusted {name}'s new key {} (for this run; list it in device.cfg to keep it)",
            key.fingerprint()
        ),
        Err(TrustError::NothingToTrust) => write!(out, "no changed key of {name} to trust"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str) -> UserName {
        UserName::try_from(name).unwrap()
    }

    fn key(n: u8) -> PublicKey {
        // Not a low-order point for n >= 2 (0 and 1 are).
        PublicKey([n; 32])
    }

    fn text(f: impl FnOnce(&mut String) -> fmt::Result) -> String {
        let mut s = String::new();
        f(&mut s).unwrap();
        s
    }

    #[test]
    fn first_contact_is_learned_and_a_change_is_refused_until_trusted() {
        let mut t = KnownPeers::new();
        assert!(t.is_empty());
        assert_eq!(t.check(&n("bob"), &key(2)), Verdict::Learned);
        assert_eq!(t.check(&n("bob"), &key(2)), Verdict::Known(Origin::Learned));
        let v = t.check(&n("bob"), &key(3));
        assert_eq!(v, Verdict::Changed { old: key(2) });
        assert!(!v.admits());
        // Refused until trusted: the old key stays remembered.
        assert_eq!(t.get("bob"), Some((key(2), Origin::Learned)));
        assert_eq!(
            t.check(&n("bob"), &key(3)),
            Verdict::Changed { old: key(2) }
        );
        assert_eq!(t.trust("bob"), Ok(key(3)));
        assert_eq!(t.check(&n("bob"), &key(3)), Verdict::Known(Origin::Trusted));
        assert_eq!(
            t.check(&n("bob"), &key(2)),
            Verdict::Changed { old: key(3) }
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn trust_takes_only_the_last_offered_key() {
        let mut t = KnownPeers::new();
        assert_eq!(t.trust("bob"), Err(TrustError::NothingToTrust));
        t.check(&n("bob"), &key(2));
        assert_eq!(t.trust("bob"), Err(TrustError::NothingToTrust));
        t.check(&n("bob"), &key(3));
        t.check(&n("bob"), &key(4));
        assert_eq!(t.trust("bob"), Ok(key(4)));
        // Once only.
        assert_eq!(t.trust("bob"), Err(TrustError::NothingToTrust));
        // An offer made stale by the known key coming back is forgotten.
        t.check(&n("bob"), &key(5));
        assert_eq!(t.check(&n("bob"), &key(4)), Verdict::Known(Origin::Trusted));
        assert_eq!(t.trust("bob"), Err(TrustError::NothingToTrust));
    }

    #[test]
    fn configured_peers_are_pinned() {
        let mut t = KnownPeers::new();
        t.seed(&n("alice"), key(2)).unwrap();
        assert_eq!(t.seed(&n("alice"), key(3)), Err(SeedError::Duplicate));
        assert_eq!(
            t.seed(&n("carol"), PublicKey([0; 32])),
            Err(SeedError::Weak)
        );
        assert_eq!(
            t.check(&n("alice"), &key(2)),
            Verdict::Known(Origin::Configured)
        );
        assert_eq!(
            t.check(&n("alice"), &key(9)),
            Verdict::Changed { old: key(2) }
        );
        assert_eq!(t.get("alice"), Some((key(2), Origin::Configured)));
    }

    #[test]
    fn a_full_table_refuses_new_peers_and_keeps_the_known_ones() {
        let mut t = KnownPeers::new();
        t.seed(&n("alice"), key(2)).unwrap();
        for i in 1..KNOWN_PEERS_MAX {
            let name = format!("peer{i}");
            assert_eq!(t.check(&n(&name), &key(10 + i as u8)), Verdict::Learned);
        }
        assert_eq!(t.len(), KNOWN_PEERS_MAX);
        assert_eq!(t.check(&n("mallory"), &key(3)), Verdict::Full);
        assert!(!Verdict::Full.admits());
        assert_eq!(t.get("mallory"), None);
        assert_eq!(t.seed(&n("zed"), key(3)), Err(SeedError::Full));
        // Nothing was evicted.
        assert_eq!(
            t.check(&n("alice"), &key(2)),
            Verdict::Known(Origin::Configured)
        );
        assert_eq!(
            t.check(&n("peer1"), &key(11)),
            Verdict::Known(Origin::Learned)
        );
        assert_eq!(
            t.check(&n("peer1"), &key(3)),
            Verdict::Changed { old: key(11) }
        );
    }

    #[test]
    fn low_order_keys_are_never_remembered() {
        let mut t = KnownPeers::new();
        let mut one = [0u8; 32];
        one[0] = 1;
        for weak in [PublicKey([0; 32]), PublicKey(one)] {
            assert_eq!(t.check(&n("bob"), &weak), Verdict::Weak);
        }
        assert!(t.is_empty());
        t.check(&n("bob"), &key(2));
        assert_eq!(t.check(&n("bob"), &PublicKey([0; 32])), Verdict::Weak);
        assert_eq!(t.trust("bob"), Err(TrustError::NothingToTrust));
    }

    #[test]
    fn trust_command_is_parsed() {
        assert_eq!(trust_command("trust bob"), Some("bob"));
        assert_eq!(trust_command("  trust   bob "), Some("bob"));
        assert_eq!(trust_command("trust "), None);
        assert_eq!(trust_command("trustbob"), None);
        assert_eq!(trust_command("temp?"), None);
    }

    #[test]
    fn texts_show_both_fingerprints() {
        let (old, new) = (key(2), key(3));
        let warning = text(|s| write_verdict(s, "bob", &new, &Verdict::Changed { old }));
        assert!(warning.starts_with("!!! WARNING: bob's KEY HAS CHANGED !!!\n"));
        assert!(warning.contains(&format!("remembered key: {}", old.fingerprint())));
        assert!(warning.contains(&format!("key offered now: {}", new.fingerprint())));
        assert!(warning.contains("trust bob"));
        let learned = text(|s| write_verdict(s, "bob", &old, &Verdict::Learned));
        assert_eq!(
            learned,
            format!(
                "first contact with bob: key fingerprint {} learned (trust on first use; \
                 compare the safety number with bob over another channel)",
                old.fingerprint()
            )
        );
        let full = text(|s| write_verdict(s, "bob", &old, &Verdict::Full));
        assert!(full.starts_with("known peers full (16): bob"), "{full}");
        let known = text(|s| write_verdict(s, "bob", &old, &Verdict::Known(Origin::Configured)));
        assert!(
            known.ends_with("is known (from the configuration)"),
            "{known}"
        );
        let reply = text(|s| write_trust_reply(s, "bob", &Ok(new)));
        assert!(reply.starts_with(&format!("trusted bob's new key {}", new.fingerprint())));
        let reply = text(|s| write_trust_reply(s, "bob", &Err(TrustError::NothingToTrust)));
        assert_eq!(reply, "no changed key of bob to trust");
        // The longest texts fit the device's line buffer.
        let long = "a".repeat(32);
        for v in [Verdict::Changed { old }, Verdict::Full, Verdict::Learned] {
            let t = text(|s| write_verdict(s, &long, &new, &v));
            assert!(t.len() <= LINE_MAX, "{v:?}: {}", t.len());
        }
    }
}
