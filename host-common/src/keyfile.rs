//! Private key files.
//!
//! Format (text, version 1), one field per line:
//!
//! ```text
//! securecom-private-key v1
//! protection: none
//! <64 hex digits of the X25519 private key>
//! ```
//!
//! The `protection` line leaves room for passphrase-protected keys (a later
//! format sets it to the KDF and AEAD used). Files are created with mode
//! 0600, and a key file that others can read is refused, as ssh does.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use securecom_core::StaticSecret;
use zeroize::Zeroizing;

const MAGIC: &str = "securecom-private-key v1";

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
    #[error("{path}: not a secureCom private key file (expected first line '{MAGIC}')")]
    Format {
        /// The file.
        path: String,
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io { path: path.display().to_string(), source }
}

/// Writes `key` to a new file at `path`, mode 0600. Never overwrites.
pub fn write(path: &Path, key: &StaticSecret) -> Result<(), KeyFileError> {
    if path.exists() {
        return Err(KeyFileError::Exists { path: path.display().to_string() });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io(path))?;
    let secret = Zeroizing::new(hex::encode(key.to_bytes()));
    let text = Zeroizing::new(format!("{MAGIC}\nprotection: none\n{}\n", secret.as_str()));
    f.write_all(text.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

/// Reads the key at `path`, refusing files readable by group or others.
pub fn read(path: &Path) -> Result<StaticSecret, KeyFileError> {
    let p = || path.display().to_string();
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen { path: p(), mode });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io(path))?);
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(KeyFileError::Format { path: p() });
    }
    match lines.next().and_then(|l| l.strip_prefix("protection: ")) {
        Some("none") => {}
        Some(other) => return Err(KeyFileError::Unsupported { path: p(), protection: other.to_string() }),
        None => return Err(KeyFileError::Format { path: p() }),
    }
    let hex_line = lines.next().ok_or_else(|| KeyFileError::Format { path: p() })?;
    let bytes = Zeroizing::new(hex::decode(hex_line.trim()).map_err(|_| KeyFileError::Format { path: p() })?);
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyFileError::Format { path: p() })?;
    Ok(StaticSecret::from_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_mode_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let key = StaticSecret::from_bytes([7; 32]);
        write(&path, &key).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read(&path).unwrap().public_key(), key.public_key());
        assert!(matches!(write(&path, &key), Err(KeyFileError::Exists { .. })));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::TooOpen { .. })));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::Format { .. })));
    }
}
