//! The registry of users: a human-editable file, like `authorized_keys`.
//!
//! ```text
//! # name  public key (64 hex digits)  optional comment
//! alice   8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a  laptop
//! ```
//!
//! The running server re-reads the file when it changes (checked at each
//! login) and on SIGHUP, so users can be added or removed without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use securecom_core::message::valid_user_name;
use securecom_core::PublicKey;
use securecom_host::{parse_public_key, public_key_hex};

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
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
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
    state: RwLock<(Arc<Users>, Option<SystemTime>)>,
}

impl Registry {
    /// Loads `path`.
    pub fn open(path: PathBuf) -> Result<Self> {
        let users = load(&path)?;
        let mtime = mtime(&path);
        Ok(Registry {
            path,
            state: RwLock::new((Arc::new(users), mtime)),
        })
    }

    /// Re-reads the file if it changed since the last read. A file that does
    /// not parse keeps the previous registry (and the error is returned).
    pub fn refresh(&self) -> Result<bool> {
        let now = mtime(&self.path);
        if self.state.read().map(|s| s.1 == now).unwrap_or(false) {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// Re-reads the file now.
    pub fn reload(&self) -> Result<()> {
        let mtime = mtime(&self.path);
        let users = load(&self.path)?;
        if let Ok(mut s) = self.state.write() {
            *s = (Arc::new(users), mtime);
        }
        Ok(())
    }

    /// A snapshot of the users, re-reading the file first if it changed
    /// (a bad edit keeps the previous registry and is logged).
    pub fn snapshot_fresh(&self) -> Arc<Users> {
        if let Err(e) = self.refresh() {
            tracing::warn!(error = %e, "registry file not reloaded");
        }
        self.snapshot()
    }

    /// A snapshot of the users.
    pub fn snapshot(&self) -> Arc<Users> {
        self.state.read().map(|s| s.0.clone()).unwrap_or_default()
    }
}

impl securecom_core::Registry for Users {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        self.get(user).copied()
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
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
    }
}
