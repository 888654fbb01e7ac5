//! The registry of users: a human-editable file, like `authorized_keys`.
//!
//! ```text
//! # name  public key (64 hex digits)  optional comment
//! alice   8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a  laptop
//! ```
//!
//! The running server re-reads the file when its content changes (a hash of
//! the bytes, checked every `--registry-poll-ms` and on SIGHUP), so users can
//! be added or removed without a restart. Every change is published to the
//! session tasks ([`Registry::subscribe`]): a session whose key is no longer
//! the registered key of its name is closed with `Bye { Revoked }` (see
//! `session.rs`). A file where two names share one key is refused (the
//! previous registry stays), as is a file that does not parse.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use blake2::{Blake2s256, Digest};
use securecom_core::message::valid_user_name;
use securecom_core::PublicKey;
use securecom_host::{parse_public_key, public_key_hex};
use tokio::sync::watch;

/// Name → key, as read from the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users(BTreeMap<String, PublicKey>);

impl Users {
    /// No users.
    pub const fn new() -> Self {
        Users(BTreeMap::new())
    }
}

impl std::ops::Deref for Users {
    type Target = BTreeMap<String, PublicKey>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Users {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Parses the registry file's text. Bad lines are errors with their number.
pub fn parse(text: &str) -> Result<Users> {
    let mut users = Users::new();
    let mut owners: HashMap<[u8; 32], String> = HashMap::new();
    for (line, number) in text.lines().zip(1usize..) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(name), Some(key)) = (fields.next(), fields.next()) else {
            bail!("line {number}: expected 'NAME PUBLIC_KEY [comment]'");
        };
        if !valid_user_name(name) {
            bail!("line {number}: invalid user name '{name}' (1-32 of a-z 0-9 _ . -)");
        }
        let key = parse_public_key(key).with_context(|| format!("line {number}"))?;
        if let Some(other) = owners.insert(key.0, name.to_string()) {
            if other != name {
                bail!("line {number}: user '{name}' has the same key as '{other}' (one key, one user)");
            }
        }
        if users.insert(name.to_string(), key).is_some() {
            bail!("line {number}: user '{name}' appears twice");
        }
    }
    Ok(users)
}

/// Renders users back to the file format.
pub fn render(users: &Users) -> String {
    let mut out = String::from("# secureCom users: NAME PUBLIC_KEY [comment]\n");
    for (name, key) in users.iter() {
        out.push_str(&format!("{name} {}\n", public_key_hex(key)));
    }
    out
}

/// Reads the file (a missing file is an empty registry).
pub fn load(path: &Path) -> Result<Users> {
    parse_bytes(path, read_bytes(path)?.as_deref())
}

/// Writes the file atomically (write to a temporary file, then rename).
pub fn save(path: &Path, users: &Users) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, render(users)).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The live registry of a running server.
pub struct Registry {
    path: PathBuf,
    /// The hash of the file's bytes as last read (`None`: no file).
    hash: RwLock<Option<[u8; 32]>>,
    /// The file's modification time and length as last read: a cheap hint
    /// checked at each login, between the polls of the content.
    stamp: RwLock<Option<(SystemTime, u64)>>,
    users: watch::Sender<Arc<Users>>,
}

impl Registry {
    /// Loads `path`.
    pub fn open(path: PathBuf) -> Result<Self> {
        let bytes = read_bytes(&path)?;
        let hash = hash(bytes.as_deref());
        let users = parse_bytes(&path, bytes.as_deref())?;
        Ok(Registry {
            stamp: RwLock::new(stamp(&path)),
            path,
            hash: RwLock::new(hash),
            users: watch::Sender::new(Arc::new(users)),
        })
    }

    /// Re-reads the file if its content changed since the last read; true if
    /// the registry changed. A file that does not parse (or gives two names
    /// one key) keeps the previous registry, and the error is returned; it is
    /// retried when the content changes again.
    pub fn refresh(&self) -> Result<bool> {
        if let Ok(mut st) = self.stamp.write() {
            *st = stamp(&self.path);
        }
        let bytes = read_bytes(&self.path)?;
        let hash = hash(bytes.as_deref());
        if self.hash.read().map(|h| *h == hash).unwrap_or(false) {
            return Ok(false);
        }
        if let Ok(mut h) = self.hash.write() {
            *h = hash;
        }
        let users = parse_bytes(&self.path, bytes.as_deref())?;
        Ok(self.users.send_if_modified(|current| {
            if **current == users {
                false
            } else {
                *current = Arc::new(users);
                true
            }
        }))
    }

    /// Re-reads the file now (SIGHUP), even if its hash did not change.
    pub fn reload(&self) -> Result<bool> {
        if let Ok(mut h) = self.hash.write() {
            *h = None;
        }
        self.refresh()
    }

    /// A snapshot of the users, re-read first if the file's modification
    /// time or length changed since the last read (for logins: a user added
    /// a moment ago can log in before the next poll).
    pub fn snapshot_fresh(&self) -> Arc<Users> {
        let now = stamp(&self.path);
        if self.stamp.read().map(|s| *s != now).unwrap_or(true) {
            if let Err(e) = self.refresh() {
                tracing::warn!(error = format!("{e:#}"), "registry file not reloaded");
            }
        }
        self.snapshot()
    }

    /// A snapshot of the users.
    pub fn snapshot(&self) -> Arc<Users> {
        self.users.borrow().clone()
    }

    /// Told of every change (the receiver sees the newest registry).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Users>> {
        self.users.subscribe()
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The file's bytes (`None`: no file).
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The hash a reload compares (`None`: no file).
fn hash(bytes: Option<&[u8]>) -> Option<[u8; 32]> {
    bytes.map(|b| Blake2s256::digest(b).into())
}

fn parse_bytes(path: &Path, bytes: Option<&[u8]>) -> Result<Users> {
    let Some(bytes) = bytes else {
        return Ok(Users::new());
    };
    let text =
        std::str::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))?;
    parse(text).with_context(|| format!("{}", path.display()))
}

/// Polls the file every `every` and publishes changes (see the module docs).
pub async fn watch_file(registry: Arc<Registry>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match registry.refresh() {
            Ok(true) => tracing::info!(users = registry.snapshot().len(), "registry changed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "registry file not reloaded"),
        }
    }
}

impl securecom_core::Registry for Users {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        self.get(user).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let key = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        let users = parse(&format!("# c\n\nalice {key} laptop\n")).unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(parse(&render(&users)).unwrap(), users);
        assert!(parse(&format!("Alice {key}")).is_err());
        assert!(parse("bob 1234").is_err());
        assert!(parse(&format!("bob {key}\nbob {key}")).is_err());
        let two = parse(&format!("alice {key}\nbob {key}")).unwrap_err();
        assert!(
            format!("{two:#}").contains("same key as 'alice'"),
            "{two:#}"
        );
    }

    #[test]
    fn reload_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let a = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        let b = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
        std::fs::write(&path, format!("alice {a}\n")).unwrap();
        let reg = Registry::open(path.clone()).unwrap();
        let mut rx = reg.subscribe();
        assert!(!reg.refresh().unwrap());
        // Same length, same mtime granularity: only the content differs.
        std::fs::write(&path, format!("alice {b}\n")).unwrap();
        assert!(reg.refresh().unwrap());
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            rx.borrow_and_update()
                .get("alice")
                .map(securecom_host::public_key_hex),
            Some(b.to_string())
        );
        // A bad edit keeps the previous registry.
        std::fs::write(&path, format!("alice {b}\nbob {b}\n")).unwrap();
        assert!(reg.refresh().is_err());
        assert!(reg.snapshot().contains_key("alice"));
        assert!(!rx.has_changed().unwrap());
    }
}
