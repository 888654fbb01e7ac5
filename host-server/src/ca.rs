//! `securecom-server ca ...`: a small certificate authority.
//!
//! The CA directory (`--ca-dir`, default `$SECURECOM_CA_DIR`, else
//! `~/.local/share/securecom-ca`) holds:
//!
//! | file | what |
//! |---|---|
//! | `ca.key` | the CA's Ed25519 seed (`securecom-ca-key v1`, mode 0600, passphrase-protected with age unless `--no-passphrase`) |
//! | `ca.pub` | the CA's public key, 64 hex digits: what clients trust (`--ca-key`) |
//! | `serial` | the last serial number issued |
//! | `issued` | one line per certificate issued: `SERIAL NAME SERVER_KEY NOT_BEFORE NOT_AFTER` |
//! | `revoked` | one revoked serial per line |
//!
//! Certificates and revocation lists are written as PEM-style text
//! (`securecom_host::certfile`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use securecom_core::cert::{
    self, ca_public_key, sign_certificate, sign_revocation_list, CertificateBody, RevocationBody,
    RevokedSerials, CERT_VERSION, MAX_CERTIFICATE, MAX_REVOCATION_LIST, MAX_REVOKED,
};
use securecom_host::certfile::{self, format_time, unix_now};
use securecom_host::keyfile::{self, Kind};
use securecom_host::passphrase::Sources;
use securecom_host::{parse_public_key, public_key_hex};
use zeroize::Zeroizing;

/// `ca` and its options.
#[derive(Args, Debug)]
pub struct CaArgs {
    /// The CA's directory. Default: $SECURECOM_CA_DIR, else ~/.local/share/securecom-ca.
    #[arg(long, env = "SECURECOM_CA_DIR", global = true)]
    pub ca_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CaCommand,
}

/// The CA's subcommands.
#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create the CA key pair (Ed25519); print the CA public key for clients to trust.
    Init {
        /// Store the CA key unprotected (not recommended).
        #[arg(long)]
        no_passphrase: bool,
    },
    /// Print the CA public key (64 hex digits).
    Pubkey,
    /// Sign a certificate binding a server name to the server's static key.
    Sign {
        /// The server's name, as clients dial it (a DNS name or IP address).
        #[arg(long)]
        name: String,
        /// The server's public key (64 hex digits, from `securecom-server pubkey`).
        #[arg(long)]
        server_key: String,
        /// Days of validity from --not-before.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Start of validity, Unix seconds (default: now).
        #[arg(long)]
        not_before: Option<u64>,
        /// Where to write the certificate (default: stdout), e.g. DATA_DIR/server.cert.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke a certificate by serial number (then publish a new list with `crl`).
    Revoke {
        /// The serial to revoke.
        serial: u64,
    },
    /// Sign and write the revocation list (every revoked serial, issued now).
    Crl {
        /// Where to write it (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show a certificate's fields (and check it against the CA with --ca-key).
    Show {
        /// The certificate file.
        file: PathBuf,
        /// A CA public key to check the signature with.
        #[arg(long)]
        ca_key: Option<String>,
    },
}

fn ca_dir(arg: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = arg {
        return Ok(d.clone());
    }
    let home = std::env::var_os("HOME").context("no --ca-dir and no $HOME")?;
    Ok(PathBuf::from(home).join(".local/share/securecom-ca"))
}

fn read_ca_seed(dir: &Path, pass: &Sources) -> Result<Zeroizing<[u8; 32]>> {
    let path = dir.join("ca.key");
    if !path.exists() {
        bail!(
            "no CA in {} yet: run `securecom-server ca init`",
            dir.display()
        );
    }
    Ok(keyfile::read_secret(&path, Kind::Ca, &mut || {
        pass.get(&format!("Passphrase for {}: ", path.display()))
    })?)
}

fn write_out(out: &Option<PathBuf>, text: &str) -> Result<()> {
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn read_revoked(dir: &Path) -> Result<Vec<u64>> {
    let path = dir.join("revoked");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.parse::<u64>()
                .with_context(|| format!("{}: bad serial '{l}'", path.display()))
        })
        .collect()
}

/// Runs a `ca` subcommand.
pub fn run(args: &CaArgs, pass: &Sources) -> Result<()> {
    let dir = ca_dir(&args.ca_dir)?;
    match &args.command {
        CaCommand::Init { no_passphrase } => {
            let key_path = dir.join("ca.key");
            if key_path.exists() {
                bail!(
                    "{} exists already (refusing to overwrite the CA key)",
                    key_path.display()
                );
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let passphrase = crate::keys::new_passphrase(*no_passphrase, pass, "the CA key")?;
            let mut seed = Zeroizing::new([0u8; 32]);
            rand_core::RngCore::fill_bytes(&mut securecom_host::os_rng(), &mut seed[..]);
            keyfile::write_secret(
                &key_path,
                Kind::Ca,
                &seed,
                passphrase.as_deref().map(|s| s.as_str()),
            )?;
            let public = hex::encode(ca_public_key(&seed).0);
            std::fs::write(dir.join("ca.pub"), format!("{public}\n"))?;
            println!("{public}");
            eprintln!(
                "CA created in {}; give clients its public key (--ca-key {public})",
                dir.display()
            );
        }
        CaCommand::Pubkey => {
            let seed = read_ca_seed(&dir, pass)?;
            println!("{}", hex::encode(ca_public_key(&seed).0));
        }
        CaCommand::Sign {
            name,
            server_key,
            days,
            not_before,
            out,
        } => {
            let name = name.to_ascii_lowercase();
            if !cert::valid_server_name(&name) {
                bail!(
                    "invalid server name '{name}': 1 to {} of a-z 0-9 . - :",
                    cert::MAX_SERVER_NAME
                );
            }
            let key = parse_public_key(server_key)?;
            let seed = read_ca_seed(&dir, pass)?;
            let serial_path = dir.join("serial");
            let last: u64 = match std::fs::read_to_string(&serial_path) {
                Ok(t) => t
                    .trim()
                    .parse()
                    .context("the CA's serial file is damaged")?,
                Err(_) => 0,
            };
            let serial = last
                .checked_add(1)
                .context("the CA's serial numbers are exhausted")?;
            let not_before = not_before.unwrap_or_else(unix_now);
            let not_after = not_before
                .checked_add(days.checked_mul(86_400).context("--days too large")?)
                .context("--days too large")?;
            let body = CertificateBody {
                version: CERT_VERSION,
                server_name: &name,
                static_key: key,
                serial,
                not_before,
                not_after,
            };
            let mut buf = [0u8; MAX_CERTIFICATE];
            let n = sign_certificate(&seed, &body, &mut buf)
                .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
            std::fs::write(&serial_path, format!("{serial}\n"))?;
            let line = format!(
                "{serial} {name} {} {not_before} {not_after}\n",
                public_key_hex(&key)
            );
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("issued"))?
                .write_all(line.as_bytes())?;
            let certificate = buf.get(..n).context("certificate longer than its buffer")?;
            write_out(out, &certfile::encode(certfile::CERTIFICATE, certificate))?;
            eprintln!(
                "certificate serial {serial} for {name} (key {}), valid {} to {}",
                key.fingerprint(),
                format_time(not_before),
                format_time(not_after)
            );
        }
        CaCommand::Revoke { serial } => {
            let mut revoked = read_revoked(&dir)?;
            if revoked.contains(serial) {
                eprintln!("serial {serial} was already revoked");
                return Ok(());
            }
            if revoked.len() >= MAX_REVOKED {
                bail!("the revocation list holds at most {MAX_REVOKED} serials: start a new CA");
            }
            revoked.push(*serial);
            let text: String = revoked.iter().map(|s| format!("{s}\n")).collect();
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("revoked"), text)?;
            eprintln!(
                "revoked serial {serial}; now publish the list: securecom-server ca crl --out FILE"
            );
        }
        CaCommand::Crl { out } => {
            let seed = read_ca_seed(&dir, pass)?;
            let revoked = read_revoked(&dir)?;
            let serials = RevokedSerials::from_slice(&revoked)
                .map_err(|_| anyhow::anyhow!("more than {MAX_REVOKED} revoked serials"))?;
            let body = RevocationBody {
                version: CERT_VERSION,
                issued_at: unix_now(),
                serials,
            };
            let mut buf = [0u8; MAX_REVOCATION_LIST];
            let n = sign_revocation_list(&seed, &body, &mut buf)
                .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
            let list = buf
                .get(..n)
                .context("revocation list longer than its buffer")?;
            write_out(out, &certfile::encode(certfile::REVOCATION_LIST, list))?;
            eprintln!(
                "revocation list with {} serial(s): {:?}",
                revoked.len(),
                revoked
            );
        }
        CaCommand::Show { file, ca_key } => {
            let bytes = certfile::read_certificate(file).map_err(anyhow::Error::msg)?;
            let body = match ca_key {
                Some(k) => {
                    let ca = certfile::parse_ca_key(k).map_err(anyhow::Error::msg)?;
                    let b = cert::verify_signature(&bytes, &ca)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                    println!("signature: good (CA {k})");
                    b
                }
                None => cert::decode_certificate(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            println!("serial: {}", body.serial);
            println!("server name: {}", body.server_name);
            println!("server key: {}", public_key_hex(&body.static_key));
            println!("server key fingerprint: {}", body.static_key.fingerprint());
            println!("not before: {}", format_time(body.not_before));
            println!("not after: {}", format_time(body.not_after));
        }
    }
    Ok(())
}
