//! Fixed identities, the registry and deterministic randomness.

use std::sync::OnceLock;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use securecom_core::{Duration, Limits, PublicKey, Registry, StaticSecret};

/// The harness RNG.
pub type Rng = ChaCha20Rng;

/// A deterministic RNG for one role (`label` keeps roles apart).
pub fn rng(label: u8) -> Rng {
    let mut seed = *b"securecom-fuzz-deterministic-rng";
    seed[0] ^= label;
    Rng::from_seed(seed)
}

/// Known user names; `alice`..`dave` are registered, `mallory` is not.
pub const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "mallory"];
/// Index of the unregistered user in [`NAMES`].
pub const MALLORY: usize = 4;

struct Keys {
    server: StaticSecret,
    users: [StaticSecret; 5],
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let k = |b: u8| StaticSecret::from_bytes([b; 32]);
        Keys {
            server: k(0x5e),
            users: [k(0xa1), k(0xb0), k(0xc4), k(0xd4), k(0x66)],
        }
    })
}

/// The server's static key.
pub fn server_secret() -> StaticSecret {
    keys().server.clone()
}

/// The server's public key (pinned by every client).
pub fn server_key() -> PublicKey {
    keys().server.public_key()
}

/// The long-term key of user `i` of [`NAMES`].
pub fn user_secret(i: usize) -> StaticSecret {
    keys().users[i % 5].clone()
}

/// The public key of user `i` of [`NAMES`].
pub fn user_key(i: usize) -> PublicKey {
    keys().users[i % 5].public_key()
}

/// Index in [`NAMES`] of a name.
pub fn name_index(name: &str) -> Option<usize> {
    NAMES.iter().position(|n| *n == name)
}

/// The registry: every known name but `mallory`.
#[derive(Clone, Copy, Default)]
pub struct Reg;

impl Registry for Reg {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        match name_index(user) {
            Some(i) if i != MALLORY => Some(user_key(i)),
            _ => None,
        }
    }
}

/// Session limits: the defaults, or small ones so that the fuzzer reaches
/// the message and age limits, and re-keys (every 20 s or 4 messages),
/// within a short input.
pub fn limits(small: bool) -> Limits {
    if small {
        Limits {
            max_messages: 12,
            max_session_age: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            rekey_after: Duration::from_secs(20),
            rekey_after_messages: 4,
        }
    } else {
        Limits {
            max_messages: 1 << 32,
            max_session_age: Duration::from_secs(24 * 3600),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            ..Limits::DEFAULT
        }
    }
}

/// Time steps of the `Advance(n)` operations: `n` × 16 ms (up to ~17 min).
pub fn step(n: u16) -> Duration {
    Duration::from_millis(u64::from(n) * 16)
}

// ---------------------------------------------------------------- CA and certificates

/// The CA's Ed25519 seed (the harness's only CA).
pub const CA_SEED: [u8; 32] = [0xca; 32];
/// The name the server is certified for (and clients dial).
pub const SERVER_NAME: &str = "chat.example";
/// The server certificate's serial.
pub const CERT_SERIAL: u64 = 7;
/// Its validity period, Unix seconds.
pub const CERT_VALIDITY: (u64, u64) = (1_600_000_000, 2_000_000_000);
/// A Unix time within the validity period, and one after it.
pub const UNIX_NOW: u64 = 1_800_000_000;
/// A Unix time after the validity period.
pub const UNIX_LATE: u64 = 2_100_000_000;

struct Certs {
    ca: securecom_core::CaPublicKey,
    cert: Vec<u8>,
    revocations: Vec<u8>,
}

fn certs() -> &'static Certs {
    use securecom_core::cert::{
        ca_public_key, sign_certificate, sign_revocation_list, CertificateBody, RevocationBody,
        CERT_VERSION, MAX_CERTIFICATE, MAX_REVOCATION_LIST,
    };
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let mut cert = vec![0u8; MAX_CERTIFICATE];
        let n = sign_certificate(
            &CA_SEED,
            &CertificateBody {
                version: CERT_VERSION,
                server_name: SERVER_NAME,
                static_key: server_key(),
                serial: CERT_SERIAL,
                not_before: CERT_VALIDITY.0,
                not_after: CERT_VALIDITY.1,
            },
            &mut cert,
        )
        .expect("sign certificate");
        cert.truncate(n);
        let mut revocations = vec![0u8; MAX_REVOCATION_LIST];
        let n = sign_revocation_list(
            &CA_SEED,
            &RevocationBody {
                version: CERT_VERSION,
                issued_at: UNIX_NOW,
                serials: [3u64, CERT_SERIAL + 1].into_iter().collect(),
            },
            &mut revocations,
        )
        .expect("sign revocation list");
        revocations.truncate(n);
        Certs {
            ca: ca_public_key(&CA_SEED),
            cert,
            revocations,
        }
    })
}

/// The CA's public key.
pub fn ca_key() -> securecom_core::CaPublicKey {
    certs().ca
}

/// The server's certificate (for [`server_key`], signed by the CA).
pub fn server_cert() -> &'static [u8] {
    &certs().cert
}

/// A revocation list signed by the CA (it does not list the server's serial).
pub fn revocation_list() -> &'static [u8] {
    &certs().revocations
}

/// What a CA-mode client trusts: the CA, the server name, a clock (or
/// none), and (if `revoked`) the server certificate's serial as revoked.
pub fn ca_trust(clock: Option<u64>, revoked: bool) -> securecom_core::CaTrust {
    securecom_core::CaTrust {
        ca_key: ca_key(),
        server_name: SERVER_NAME.try_into().expect("name"),
        now: clock,
        revoked: if revoked {
            [CERT_SERIAL].into_iter().collect()
        } else {
            Default::default()
        },
    }
}
