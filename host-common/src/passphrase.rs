//! Where passphrases come from: the terminal (without echo), a file
//! descriptor, a file (e.g. a systemd credential), or an environment
//! variable, for automation.
//!
//! Order: `--passphrase-fd`, `--passphrase-file`, the environment variable,
//! the systemd credential (if the program names one and
//! `$CREDENTIALS_DIRECTORY` is set), then the terminal. From a descriptor or
//! a file, the passphrase is the first line (without its line ending).

use std::io::IsTerminal;
use std::path::PathBuf;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The configured sources of a passphrase.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Read the passphrase from this open file descriptor (`--passphrase-fd`).
    pub fd: Option<u32>,
    /// Read the passphrase from this file (`--passphrase-file`).
    pub file: Option<PathBuf>,
    /// The environment variable that may hold the passphrase.
    pub env_var: Option<&'static str>,
    /// The name of a systemd credential (`LoadCredential=NAME:...`) that may
    /// hold the passphrase, read from `$CREDENTIALS_DIRECTORY/NAME`.
    pub credential: Option<&'static str>,
}

fn first_line(bytes: Zeroizing<Vec<u8>>, what: &str) -> Result<Zeroizing<String>, String> {
    let text =
        std::str::from_utf8(&bytes).map_err(|_| format!("{what}: the passphrase is not UTF-8"))?;
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(Zeroizing::new(line.to_string()))
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Zeroizing<String>, String> {
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?);
    first_line(bytes, what)
}

impl Sources {
    /// A passphrase from a non-interactive source, if one is configured.
    pub fn automatic(&self) -> Result<Option<Zeroizing<String>>, String> {
        if let Some(fd) = self.fd {
            // /dev/fd/N reopens the descriptor without unsafe code.
            let path = PathBuf::from(format!("/dev/fd/{fd}"));
            return read_file(&path, "--passphrase-fd").map(Some);
        }
        if let Some(file) = &self.file {
            return read_file(file, "--passphrase-file").map(Some);
        }
        if let Some(var) = self.env_var {
            if let Some(v) = std::env::var_os(var) {
                let v = v
                    .into_string()
                    .map_err(|_| format!("${var}: the passphrase is not UTF-8"))?;
                return Ok(Some(Zeroizing::new(v)));
            }
        }
        if let (Some(name), Some(dir)) =
            (self.credential, std::env::var_os("CREDENTIALS_DIRECTORY"))
        {
            let path = PathBuf::from(dir).join(name);
            if path.exists() {
                return read_file(&path, "systemd credential").map(Some);
            }
        }
        Ok(None)
    }

    /// True if some non-interactive source is configured (it may still fail).
    pub fn has_automatic(&self) -> bool {
        self.fd.is_some()
            || self.file.is_some()
            || self.env_var.is_some_and(|v| std::env::var_os(v).is_some())
            || (self.credential.is_some()
                && std::env::var_os("CREDENTIALS_DIRECTORY").is_some_and(|d| {
                    self.credential
                        .is_some_and(|c| PathBuf::from(d).join(c).exists())
                }))
    }

    /// The passphrase to open a key: from an automatic source, else asked
    /// once on the terminal.
    pub fn get(&self, prompt: &str) -> Result<Zeroizing<String>, String> {
        if let Some(p) = self.automatic()? {
            return Ok(p);
        }
        ask(prompt)
    }

    /// A new passphrase: from an automatic source, else asked twice on the
    /// terminal (they must match). An empty passphrase is refused.
    pub fn get_new(&self, what: &str) -> Result<Zeroizing<String>, String> {
        let p = match self.automatic()? {
            Some(p) => p,
            None => {
                let a = ask(&format!("New passphrase for {what}: "))?;
                let b = ask("Repeat the passphrase: ")?;
                if !bool::from(a.as_bytes().ct_eq(b.as_bytes())) {
                    return Err("the two passphrases differ; nothing was changed".into());
                }
                a
            }
        };
        if p.is_empty() {
            return Err("an empty passphrase protects nothing (to store the key unprotected, use --no-passphrase)".into());
        }
        Ok(p)
    }
}

/// The passphrase for a new key, by the usual policy: none with
/// `--no-passphrase`; else from an automatic source; else asked twice on the
/// terminal; else (no terminal and no source: a script) none, and a warning
/// on stderr says the key is stored unprotected.
pub fn for_new_key(
    no_passphrase: bool,
    sources: &Sources,
    what: &str,
) -> Result<Option<Zeroizing<String>>, String> {
    if no_passphrase {
        return Ok(None);
    }
    if sources.has_automatic() || terminal_available() {
        return sources.get_new(what).map(Some);
    }
    eprintln!(
        "warning: no terminal and no passphrase source: {what} is stored UNPROTECTED \
         (give --passphrase-file/--passphrase-fd or the passphrase environment variable \
         to protect it, or --no-passphrase to silence this)"
    );
    Ok(None)
}

/// True if a terminal is there to ask on.
pub fn terminal_available() -> bool {
    std::io::stdin().is_terminal()
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok()
}

/// Asks on the terminal, without echo.
pub fn ask(prompt: &str) -> Result<Zeroizing<String>, String> {
    if !terminal_available() {
        return Err(
            "a passphrase is needed but there is no terminal to ask it on \
             (use --passphrase-file, --passphrase-fd or the passphrase environment variable)"
                .into(),
        );
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| format!("reading the passphrase: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p");
        std::fs::write(&f, "pass word\r\nsecond\n").unwrap();
        let s = Sources {
            file: Some(f),
            ..Sources::default()
        };
        assert_eq!(s.get("x").unwrap().as_str(), "pass word");
        assert!(s.has_automatic());
        let empty = dir.path().join("e");
        std::fs::write(&empty, "\n").unwrap();
        let s = Sources {
            file: Some(empty),
            ..Sources::default()
        };
        assert!(s.get_new("k").unwrap_err().contains("empty passphrase"));
    }
}
