//! The known-peers file, like ssh's `known_hosts`: the first key seen for a
//! user is remembered; a different key later for the same user is a loud
//! warning, and that chat does not start until the user types `/trust NAME`.
//!
//! ```text
//! # secureCom known peers: NAME PUBLIC_KEY (64 hex digits)
//! bob de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f
//! ```
//!
//! Default place: next to the key file, with the extension `known_peers`
//! (`alice.key` → `alice.known_peers`), so each identity has its own;
//! `--known-peers FILE` (or `known_peers` in the config file) sets another.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use securecom_core::message::valid_user_name;
use securecom_core::PublicKey;
use securecom_host::{parse_public_key, public_key_hex, KeyParseError};

/// What the file says about a key offered for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The user is not in the file yet.
    New,
    /// The file has this very key.
    Known,
    /// The file has another key for this user.
    Changed {
        /// The key remembered.
        old: PublicKey,
    },
}

/// The known peers, with the file they live in.
#[derive(Debug)]
pub struct KnownPeers {
    path: PathBuf,
    peers: BTreeMap<String, PublicKey>,
}

/// The default known-peers file for a key file.
pub fn default_path(key_file: &Path) -> PathBuf {
    key_file.with_extension("known_peers")
}

impl KnownPeers {
    /// Reads the file (missing: no peers yet).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut peers = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.split_whitespace();
            let (Some(name), Some(key)) = (f.next(), f.next()) else {
                return Err(format!(
                    "{}:{}: expected 'NAME PUBLIC_KEY'",
                    path.display(),
                    i + 1
                ));
            };
            if !valid_user_name(name) {
                return Err(format!(
                    "{}:{}: bad user name '{name}'",
                    path.display(),
                    i + 1
                ));
            }
            let key =
                parse_public_key(key).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            peers.insert(name.to_string(), key);
        }
        Ok(KnownPeers {
            path: path.to_path_buf(),
            peers,
        })
    }

    /// Compares `key` with what the file has for `user`.
    pub fn check(&self, user: &str, key: &PublicKey) -> Check {
        match self.peers.get(user) {
            None => Check::New,
            Some(k) if k == key => Check::Known,
            Some(k) => Check::Changed { old: *k },
        }
    }

    /// Remembers `key` for `user` (replacing another) and saves the file.
    /// A low-order key (which a malicious server could hand out, and which
    /// no one holds) is refused: it is never written to the file.
    pub fn remember(&mut self, user: &str, key: PublicKey) -> Result<(), String> {
        if key.is_low_order() {
            return Err(KeyParseError::LowOrder.to_string());
        }
        self.peers.insert(user.to_string(), key);
        self.save()
    }

    fn save(&self) -> Result<(), String> {
        let mut text = String::from("# secureCom known peers: NAME PUBLIC_KEY (64 hex digits)\n");
        for (name, key) in &self.peers {
            text.push_str(&format!("{name} {}\n", public_key_hex(key)));
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let tmp = self.path.with_extension("known_peers.tmp");
        let _ = std::fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| format!("saving {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_is_remembered_and_a_change_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = default_path(&dir.path().join("alice.key"));
        assert!(path.ends_with("alice.known_peers"));
        let a = PublicKey([1; 32]);
        let b = PublicKey([2; 32]);
        let mut k = KnownPeers::load(&path).unwrap();
        assert_eq!(k.check("bob", &a), Check::New);
        k.remember("bob", a).unwrap();
        let mut k = KnownPeers::load(&path).unwrap();
        assert_eq!(k.check("bob", &a), Check::Known);
        assert_eq!(k.check("bob", &b), Check::Changed { old: a });
        k.remember("bob", b).unwrap();
        assert_eq!(
            KnownPeers::load(&path).unwrap().check("bob", &b),
            Check::Known
        );
        std::fs::write(&path, "bob zz\n").unwrap();
        assert!(KnownPeers::load(&path).is_err());
    }

    #[test]
    fn low_order_keys_are_neither_loaded_nor_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.known_peers");
        let good = PublicKey([1; 32]);
        let mut k = KnownPeers::load(&path).unwrap();
        k.remember("bob", good).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        for weak in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let e = k.remember("carol", PublicKey(weak)).unwrap_err();
            assert_eq!(e, "not a valid X25519 public key (low-order point)");
            let e = k.remember("bob", PublicKey(weak)).unwrap_err();
            assert!(e.contains("low-order"), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert_eq!(k.check("bob", &good), Check::Known);
        assert_eq!(k.check("carol", &PublicKey([0; 32])), Check::New);

        std::fs::write(&path, format!("{before}carol {}\n", "00".repeat(32))).unwrap();
        let e = KnownPeers::load(&path).unwrap_err();
        assert!(
            e.ends_with(":3: not a valid X25519 public key (low-order point)"),
            "{e}"
        );
    }
}
