//! Private key files, plain or protected by a passphrase.
//!
//! The key text (version 1), one field per line:
//!
//! ```text
//! securecom-private-key v1          (an X25519 user or server key; a CA key: securecom-ca-key v1)
//! protection: none
//! <64 hex digits of the 32-byte private key (X25519) or seed (Ed25519)>
//! ```
//!
//! A **protected** key file is exactly that text encrypted to a passphrase
//! in the [age](https://age-encryption.org/v1) format (scrypt passphrase
//! recipient, ASCII-armored: see [`crate::age`]), so `age -d FILE` opens it
//! too. Reading tells the two apart by their first line.
//!
//! Files are created with mode 0600 (a change of passphrase rewrites the
//! file through a new 0600 file and a rename), and a key file that group
//! or others may read is refused, as ssh does.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use securecom_core::StaticSecret;
use zeroize::Zeroizing;

use crate::age::{self, AgeError};

const MAGIC: &str = "securecom-private-key v1";

/// What a key file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An X25519 static key (a user's or the server's).
    Identity,
    /// A CA's Ed25519 signing seed.
    Ca,
}

impl Kind {
    fn magic(self) -> &'static str {
        match self {
            Kind::Identity => MAGIC,
            Kind::Ca => "securecom-ca-key v1",
        }
    }
}

/// Errors reading or writing a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error("{path}: permissions {mode:o} are too open; the key must be readable by its owner only (run: chmod 600 {path})")]
    TooOpen {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// Not a key file of this format.
    #[error("{path}: not a secureCom private key file (expected first line '{expected}' or an age-encrypted file)")]
    Format {
        /// The file.
        path: String,
        /// The first line expected.
        expected: &'static str,
    },
    /// A protection this version cannot open.
    #[error("{path}: key protection '{protection}' is not supported by this version")]
    Unsupported {
        /// The file.
        path: String,
        /// The protection named in the file.
        protection: String,
    },
    /// The file exists already.
    #[error("{path}: exists already (refusing to overwrite a key)")]
    Exists {
        /// The file.
        path: String,
    },
    /// The file is protected and no passphrase was given.
    #[error("{path}: the key is protected by a passphrase; give it on the terminal, or with --passphrase-file / --passphrase-fd / the passphrase environment variable")]
    NeedPassphrase {
        /// The file.
        path: String,
    },
    /// The passphrase does not open the file. Nothing of the key was read.
    #[error("{path}: wrong passphrase")]
    WrongPassphrase {
        /// The file.
        path: String,
    },
    /// The age container is malformed, changed, or not a passphrase file.
    #[error("{path}: {source}")]
    Age {
        /// The file.
        path: String,
        /// What is wrong.
        source: AgeError,
    },
    /// The passphrase could not be obtained (no terminal, unreadable file...).
    #[error("{0}")]
    Passphrase(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where a passphrase comes from when a protected key is read: called at
/// most once, and only if the file is protected.
pub type PassphraseFn<'a> = &'a mut dyn FnMut() -> Result<Zeroizing<String>, String>;

fn key_text(kind: Kind, secret: &[u8; 32]) -> Zeroizing<String> {
    use std::fmt::Write as _;
    // Built in a buffer allocated once at its final size: a growing buffer
    // would leave copies of the key in the memory it gave back.
    const PROTECTION: &str = "\nprotection: none\n";
    let magic = kind.magic();
    let mut text = Zeroizing::new(String::with_capacity(
        magic.len() + PROTECTION.len() + 2 * secret.len() + 1,
    ));
    text.push_str(magic);
    text.push_str(PROTECTION);
    for b in secret {
        // Writing to a String cannot fail.
        let _ = write!(*text, "{b:02x}");
    }
    text.push('\n');
    text
}

/// The bytes of a key file for `secret`: the plain text, or that text
/// encrypted to `passphrase` with scrypt work factor `log_n`.
pub fn encode(
    kind: Kind,
    secret: &[u8; 32],
    passphrase: Option<&str>,
    log_n: u8,
) -> Result<Zeroizing<Vec<u8>>, AgeError> {
    let text = key_text(kind, secret);
    match passphrase {
        None => Ok(Zeroizing::new(text.as_bytes().to_vec())),
        Some(p) => {
            let file = age::encrypt(text.as_bytes(), p, log_n, &mut crate::os_rng())?;
            Ok(Zeroizing::new(file.into_bytes()))
        }
    }
}

fn create_0600(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.display().to_string(),
                }
            } else {
                io(path)(e)
            }
        })?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

/// Writes a new key file at `path`, mode 0600, never overwriting; protected
/// by `passphrase` if given (age, work factor [`age::DEFAULT_WORK_FACTOR`]).
pub fn write_secret(
    path: &Path,
    kind: Kind,
    secret: &[u8; 32],
    passphrase: Option<&str>,
) -> Result<(), KeyFileError> {
    write_secret_with(path, kind, secret, passphrase, age::DEFAULT_WORK_FACTOR)
}

/// [`write_secret`] with a chosen scrypt work factor (tests use a small one).
pub fn write_secret_with(
    path: &Path,
    kind: Kind,
    secret: &[u8; 32],
    passphrase: Option<&str>,
    log_n: u8,
) -> Result<(), KeyFileError> {
    if path.exists() {
        return Err(KeyFileError::Exists {
            path: path.display().to_string(),
        });
    }
    let bytes = encode(kind, secret, passphrase, log_n).map_err(|source| KeyFileError::Age {
        path: path.display().to_string(),
        source,
    })?;
    create_0600(path, &bytes)
}

/// Writes `key` to a new, unprotected file at `path`, mode 0600. Never overwrites.
pub fn write(path: &Path, key: &StaticSecret) -> Result<(), KeyFileError> {
    let secret = Zeroizing::new(key.to_bytes());
    write_secret(path, Kind::Identity, &secret, None)
}

/// Reads the file's bytes after checking that only its owner may read it.
fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(Zeroizing::new(fs::read(path).map_err(io(path))?))
}

/// True if the key file at `path` is passphrase-protected.
pub fn is_protected(path: &Path) -> Result<bool, KeyFileError> {
    Ok(age::is_age(&read_private(path)?))
}

fn parse_text(path: &Path, kind: Kind, text: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let p = || path.display().to_string();
    let format = || KeyFileError::Format {
        path: p(),
        expected: kind.magic(),
    };
    let text = std::str::from_utf8(text).map_err(|_| format())?;
    let mut lines = text.lines();
    if lines.next() != Some(kind.magic()) {
        return Err(format());
    }
    match lines.next().and_then(|l| l.strip_prefix("protection: ")) {
        Some("none") => {}
        Some(other) => {
            return Err(KeyFileError::Unsupported {
                path: p(),
                protection: other.to_string(),
            })
        }
        None => return Err(format()),
    }
    let hex_line = lines.next().ok_or_else(format)?;
    // Decoded straight into the zeroized array (no intermediate buffer);
    // anything but 64 hex digits is refused.
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_line.trim(), &mut out[..]).map_err(|_| format())?;
    Ok(out)
}

/// Reads the secret in the key file at `path`, refusing files readable by
/// group or others; asks `passphrase` (once) if the file is protected.
/// A wrong passphrase is [`KeyFileError::WrongPassphrase`], and no part of
/// the key is ever returned from a file that did not authenticate whole.
pub fn read_secret(
    path: &Path,
    kind: Kind,
    passphrase: PassphraseFn<'_>,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let bytes = read_private(path)?;
    if !age::is_age(&bytes) {
        return parse_text(path, kind, &bytes);
    }
    let pass = passphrase().map_err(KeyFileError::Passphrase)?;
    let plain = age::decrypt(&bytes, &pass).map_err(|e| match e {
        AgeError::WrongPassphrase => KeyFileError::WrongPassphrase {
            path: path.display().to_string(),
        },
        source => KeyFileError::Age {
            path: path.display().to_string(),
            source,
        },
    })?;
    parse_text(path, kind, &plain)
}

/// Reads an identity key file; `passphrase` is asked only if it is protected.
pub fn read_with(path: &Path, passphrase: PassphraseFn<'_>) -> Result<StaticSecret, KeyFileError> {
    let secret = read_secret(path, Kind::Identity, passphrase)?;
    Ok(StaticSecret::from_bytes(*secret))
}

/// Reads an unprotected identity key file (a protected one is
/// [`KeyFileError::NeedPassphrase`]).
pub fn read(path: &Path) -> Result<StaticSecret, KeyFileError> {
    let p = path.display().to_string();
    read_with(path, &mut || {
        Err(KeyFileError::NeedPassphrase { path: p.clone() }.to_string())
    })
    .map_err(|e| match e {
        KeyFileError::Passphrase(_) => KeyFileError::NeedPassphrase {
            path: path.display().to_string(),
        },
        other => other,
    })
}

/// Rewrites the key file at `path` with a new passphrase (`None`: no
/// protection), after opening it with the old one. The new file is written
/// next to it (mode 0600) and renamed over it, so a failure leaves the old
/// file as it was. Returns the secret (for the caller to derive its public key).
pub fn change_passphrase(
    path: &Path,
    kind: Kind,
    old: PassphraseFn<'_>,
    new: Option<&str>,
    log_n: u8,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let secret = read_secret(path, kind, old)?;
    let bytes = encode(kind, &secret, new, log_n).map_err(|source| KeyFileError::Age {
        path: path.display().to_string(),
        source,
    })?;
    let tmp: PathBuf = {
        let mut s = path.as_os_str().to_owned();
        s.push(".new");
        s.into()
    };
    let _ = fs::remove_file(&tmp);
    create_0600(&tmp, &bytes)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_pass() -> Result<Zeroizing<String>, String> {
        Err("no passphrase".into())
    }

    #[test]
    fn roundtrip_mode_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let key = StaticSecret::from_bytes([7; 32]);
        write(&path, &key).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read(&path).unwrap().public_key(), key.public_key());
        assert!(!is_protected(&path).unwrap());
        assert!(matches!(
            write(&path, &key),
            Err(KeyFileError::Exists { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let e = read(&path).unwrap_err();
        assert!(matches!(e, KeyFileError::TooOpen { .. }));
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::TooOpen { .. })));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::Format { .. })));
    }

    #[test]
    fn protected_roundtrip_wrong_passphrase_and_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let secret = [9u8; 32];
        write_secret_with(&path, Kind::Identity, &secret, Some("hunter2"), 4).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(is_protected(&path).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(!text.contains(&hex::encode(secret)));
        let got = read_secret(&path, Kind::Identity, &mut || {
            Ok(Zeroizing::new("hunter2".into()))
        })
        .unwrap();
        assert_eq!(*got, secret);
        assert!(matches!(
            read_secret(&path, Kind::Identity, &mut || Ok(Zeroizing::new(
                "hunter3".into()
            ))),
            Err(KeyFileError::WrongPassphrase { .. })
        ));
        assert!(matches!(
            read(&path),
            Err(KeyFileError::NeedPassphrase { .. })
        ));
        // A CA key is not an identity key, even with the right passphrase.
        assert!(matches!(
            read_secret(&path, Kind::Ca, &mut || Ok(Zeroizing::new(
                "hunter2".into()
            ))),
            Err(KeyFileError::Format { .. })
        ));
        // passwd: new passphrase, then none.
        change_passphrase(
            &path,
            Kind::Identity,
            &mut || Ok(Zeroizing::new("hunter2".into())),
            Some("new one"),
            4,
        )
        .unwrap();
        assert!(matches!(
            read_secret(&path, Kind::Identity, &mut || Ok(Zeroizing::new(
                "hunter2".into()
            ))),
            Err(KeyFileError::WrongPassphrase { .. })
        ));
        // A wrong old passphrase changes nothing.
        assert!(change_passphrase(&path, Kind::Identity, &mut no_pass, None, 4).is_err());
        change_passphrase(
            &path,
            Kind::Identity,
            &mut || Ok(Zeroizing::new("new one".into())),
            None,
            4,
        )
        .unwrap();
        assert_eq!(read(&path).unwrap().to_bytes(), secret);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
