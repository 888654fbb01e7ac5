//! The server's key file: creation, reading (with a passphrase from the
//! terminal, a file, a file descriptor, an environment variable or a systemd
//! credential, for unattended starts), and a change of passphrase.

use std::path::Path;

use anyhow::{Context, Result};
use securecom_core::{PublicKey, StaticSecret};
use securecom_host::keyfile::{self, Kind};
use securecom_host::os_rng;
use securecom_host::passphrase::{self, Sources};
use securecom_host::{parse_public_key, public_key_hex};
use zeroize::Zeroizing;

/// The environment variable that may hold the server key's passphrase.
pub const PASSPHRASE_ENV: &str = "SECURECOM_SERVER_PASSPHRASE";
/// The systemd credential (`LoadCredential=securecom-server-passphrase:FILE`).
pub const CREDENTIAL: &str = "securecom-server-passphrase";

/// The passphrase for a new key (see [`passphrase::for_new_key`]).
pub fn new_passphrase(
    no_passphrase: bool,
    sources: &Sources,
    what: &str,
) -> Result<Option<Zeroizing<String>>> {
    passphrase::for_new_key(no_passphrase, sources, what).map_err(anyhow::Error::msg)
}

/// Creates the server key at `path`; `protect` asks for a passphrase.
pub fn create(path: &Path, protect: bool, sources: &Sources) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let passphrase = if protect {
        Some(
            sources
                .get_new("the server key")
                .map_err(anyhow::Error::msg)?,
        )
    } else {
        None
    };
    let key = StaticSecret::generate(&mut os_rng());
    let secret = Zeroizing::new(key.to_bytes());
    keyfile::write_secret(
        path,
        Kind::Identity,
        &secret,
        passphrase.as_deref().map(|s| s.as_str()),
    )?;
    // The public half in the clear, so `init`, `pubkey` and `fingerprint`
    // need no passphrase.
    std::fs::write(
        pub_path(path),
        format!("{}\n", public_key_hex(&key.public_key())),
    )
    .with_context(|| format!("writing {}", pub_path(path).display()))?;
    Ok(())
}

fn pub_path(key: &Path) -> std::path::PathBuf {
    key.with_extension("pub")
}

/// The server's public key: from `server.pub` when the key is protected
/// (no passphrase needed), else from the key itself.
pub fn public(path: &Path, sources: &Sources) -> Result<PublicKey> {
    if keyfile::is_protected(path)? {
        if let Ok(text) = std::fs::read_to_string(pub_path(path)) {
            return Ok(parse_public_key(&text)?);
        }
    }
    Ok(read(path, sources)?.public_key())
}

/// Reads the server key, asking the passphrase sources if it is protected.
pub fn read(path: &Path, sources: &Sources) -> Result<StaticSecret> {
    let key = keyfile::read_with(path, &mut || {
        sources.get(&format!("Passphrase for {}: ", path.display()))
    })?;
    Ok(key)
}

/// Changes (or with `no_passphrase`, removes) the key's passphrase. The old
/// one is asked on the terminal or taken from the sources; the new one is
/// asked twice on the terminal, or read from `new_file`.
pub fn passwd(
    path: &Path,
    sources: &Sources,
    no_passphrase: bool,
    new_file: Option<&Path>,
) -> Result<()> {
    let new = if no_passphrase {
        None
    } else {
        let new_sources = Sources {
            file: new_file.map(Path::to_path_buf),
            ..Sources::default()
        };
        Some(new_sources.get_new("the key").map_err(anyhow::Error::msg)?)
    };
    let secret = keyfile::change_passphrase(
        path,
        Kind::Identity,
        &mut || sources.get(&format!("Current passphrase for {}: ", path.display())),
        new.as_deref().map(|s| s.as_str()),
        securecom_host::age::DEFAULT_WORK_FACTOR,
    )?;
    let public = StaticSecret::from_bytes(*secret).public_key();
    std::fs::write(pub_path(path), format!("{}\n", public_key_hex(&public)))
        .with_context(|| format!("writing {}", pub_path(path).display()))?;
    Ok(())
}
