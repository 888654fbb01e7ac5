//! The device's identity and behaviour, read at boot from a host file.
//!
//! The file is plain text, one setting per line (format in `README.md`):
//!
//! ```text
//! user sensor1
//! key 0123…(64 hex digits: the private key)
//! server_key 89ab…(64 hex digits)
//! daemon_port 4242        # listen mode (the default)
//! request_mode dial       # or: the device dials (then no daemon_port)
//! accept alice,bob        # or: accept all / accept none
//! call bob                # optional
//! chats 2                 # optional
//! peer alice 4567…        # optional, repeatable: a known peer's public key
//! admin alice             # optional: who may send `trust NAME` (must be a `peer`)
//! rekey_after 120         # optional: seconds between re-keys (1 to 120, the default)
//! ```
//!
//! [`parse`] is pure (it seeds the known-peers table it is given); [`load`]
//! reads the file through semihosting (its path is the first semihosting
//! argument, or `device.cfg` in QEMU's working directory).

use core::ffi::CStr;

use heapless::Vec;
use securecom_core::message::user_name;
use securecom_core::{PublicKey, StaticSecret, UserName};
use zeroize::Zeroize;

use crate::known_peers::{KnownPeers, SeedError};

/// Largest configuration file, in bytes: room for the other settings and
/// `peer` lines for the whole known-peers table (16 lines of at most 103
/// bytes) in the usual case.
pub const CONFIG_MAX: usize = 2048;

/// Most names in an `accept` list.
pub const MAX_ACCEPT: usize = 8;

/// Longest path of the configuration file.
const PATH_MAX: usize = 128;

/// Who may open a chat with the device.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // No heap: the list is stored inline.
pub enum AcceptPolicy {
    /// Anyone.
    All,
    /// Only these users (an empty list: no one).
    Only(Vec<UserName, MAX_ACCEPT>),
}

impl AcceptPolicy {
    /// True if a request from `user` is accepted.
    pub fn allows(&self, user: &str) -> bool {
        match self {
            AcceptPolicy::All => true,
            AcceptPolicy::Only(names) => names.iter().any(|n| n == user),
        }
    }
}

/// How the request channel's connection is opened (`request_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum RequestChannel {
    /// `request_mode listen` (the default): the server dials the daemon
    /// port the device announces; QEMU listens there for UART1.
    Listen {
        /// The port announced (`daemon_port`).
        daemon_port: u16,
    },
    /// `request_mode dial`: the device opens the channel to the server
    /// itself (QEMU's UART1 connects to the server); no port is announced.
    Dial,
}

/// Everything the device needs to run.
pub struct DeviceConfig {
    /// The user name it logs in as.
    pub user: UserName,
    /// Its private key (zeroized on drop, never logged).
    pub key: StaticSecret,
    /// The server's pinned public key.
    pub server_key: PublicKey,
    /// How the request channel is opened (and the daemon port, if listening).
    pub request: RequestChannel,
    /// Who may chat with it.
    pub accept: AcceptPolicy,
    /// Whom it calls when a chat partner sends `call me`.
    pub call: Option<UserName>,
    /// After this many chats, log out and exit 0; `None`: run forever.
    pub chats: Option<u32>,
    /// Who may send `trust NAME` in a chat (a configured `peer`).
    pub admin: Option<UserName>,
    /// Seconds after which the standard channel and the device's chats
    /// re-key in place (1 to 120: the protocol's maximum).
    pub rekey_after: u32,
}

/// What is wrong with the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum ConfigError {
    /// The file could not be opened or read (or its path is too long).
    Unreadable,
    /// The file is longer than [`CONFIG_MAX`].
    TooLong,
    /// The file is not UTF-8.
    NotText,
    /// A line with an unknown setting.
    UnknownSetting {
        /// 1-based line number.
        line: u16,
    },
    /// A setting whose value is invalid.
    BadValue {
        /// 1-based line number.
        line: u16,
    },
    /// A public key that is a low-order X25519 point (such as all zeros):
    /// no one holds its private key, so pinning it would authenticate anyone.
    WeakKey {
        /// 1-based line number.
        line: u16,
    },
    /// A required setting is absent.
    Missing(Setting),
    /// `daemon_port` with `request_mode dial`: a device that dials has no
    /// listening port to announce.
    DaemonPortWhenDialling {
        /// 1-based line number of `daemon_port`.
        line: u16,
    },
    /// `admin NAME` without a `peer NAME HEX` line: whoever may trust new
    /// keys must itself be known by a configured key, not by first contact.
    AdminNotPinned,
}

/// The required settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Setting {
    /// `user`
    User,
    /// `key`
    Key,
    /// `server_key`
    ServerKey,
    /// `daemon_port` (in listen mode)
    DaemonPort,
    /// `accept`
    Accept,
}

/// Parses the configuration text; its `peer` lines go into `peers`.
pub fn parse(text: &str, peers: &mut KnownPeers) -> Result<DeviceConfig, ConfigError> {
    let mut user = None;
    let mut key = None;
    let mut server_key = None;
    let mut daemon_port = None;
    let mut dial = false;
    let mut accept = None;
    let mut call = None;
    let mut chats = None;
    let mut admin = None;
    let mut rekey_after = 120;

    for (index, raw) in text.lines().enumerate() {
        let line = u16::try_from(index + 1).unwrap_or(u16::MAX);
        let bad = ConfigError::BadValue { line };
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let (name, value) = match content.split_once(char::is_whitespace) {
            Some((n, v)) => (n, v.trim()),
            None => (content, ""),
        };
        match name {
            "user" => user = Some(user_name(value).map_err(|_| bad)?),
            "key" => {
                let mut bytes = parse_hex32(value).ok_or(bad)?;
                key = Some(crate::crypto::static_secret(bytes));
                bytes.zeroize();
            }
            "server_key" => {
                let bytes = parse_hex32(value).ok_or(bad)?;
                let key =
                    PublicKey::try_from_bytes(bytes).map_err(|_| ConfigError::WeakKey { line })?;
                server_key = Some(key);
            }
            "daemon_port" => {
                let port: u16 = value.parse().map_err(|_| bad)?;
                if port == 0 {
                    return Err(bad);
                }
                daemon_port = Some((port, line));
            }
            "request_mode" => {
                dial = match value {
                    "listen" => false,
                    "dial" => true,
                    _ => return Err(bad),
                }
            }
            "accept" => {
                accept = Some(match value {
                    "all" => AcceptPolicy::All,
                    "none" => AcceptPolicy::Only(Vec::new()),
                    list => {
                        let mut names = Vec::new();
                        for n in list.split(',') {
                            let n = user_name(n.trim()).map_err(|_| bad)?;
                            names.push(n).map_err(|_| bad)?;
                        }
                        AcceptPolicy::Only(names)
                    }
                })
            }
            "call" => call = Some(user_name(value).map_err(|_| bad)?),
            "chats" => chats = Some(value.parse::<u32>().map_err(|_| bad)?),
            "peer" => {
                let (name, key) = value.split_once(char::is_whitespace).ok_or(bad)?;
                let name = user_name(name).map_err(|_| bad)?;
                let key = PublicKey(parse_hex32(key.trim()).ok_or(bad)?);
                peers.seed(&name, key).map_err(|e| match e {
                    SeedError::Weak => ConfigError::WeakKey { line },
                    SeedError::Duplicate | SeedError::Full => bad,
                })?;
            }
            "admin" => admin = Some(user_name(value).map_err(|_| bad)?),
            "rekey_after" => {
                rekey_after = match value.parse::<u32>() {
                    Ok(s @ 1..=120) => s,
                    _ => return Err(bad),
                }
            }
            _ => return Err(ConfigError::UnknownSetting { line }),
        }
    }

    let user = user.ok_or(ConfigError::Missing(Setting::User))?;
    let key = key.ok_or(ConfigError::Missing(Setting::Key))?;
    let server_key = server_key.ok_or(ConfigError::Missing(Setting::ServerKey))?;
    let request = match (dial, daemon_port) {
        (false, Some((daemon_port, _))) => RequestChannel::Listen { daemon_port },
        (false, None) => return Err(ConfigError::Missing(Setting::DaemonPort)),
        (true, None) => RequestChannel::Dial,
        (true, Some((_, line))) => return Err(ConfigError::DaemonPortWhenDialling { line }),
    };
    Ok(DeviceConfig {
        user,
        key,
        server_key,
        request,
        accept: accept.ok_or(ConfigError::Missing(Setting::Accept))?,
        call,
        chats,
        admin: match admin {
            Some(a) if peers.get(&a).is_none() => return Err(ConfigError::AdminNotPinned),
            a => a,
        },
        rekey_after,
    })
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Reads and parses the configuration file into `buf`, then wipes `buf`
/// (it held the private key).
///
/// The path is the first semihosting argument after the program name, or
/// `device.cfg` (relative to QEMU's working directory).
pub fn load(
    buf: &mut [u8; CONFIG_MAX],
    peers: &mut KnownPeers,
) -> Result<DeviceConfig, ConfigError> {
    let mut path = [0u8; PATH_MAX];
    let path = config_path(&mut path)?;
    defmt::info!("config: reading {=str}", path.to_str().unwrap_or("?"));
    let result = read_file(path, buf).and_then(|n| {
        let text = core::str::from_utf8(&buf[..n]).map_err(|_| ConfigError::NotText)?;
        parse(text, peers)
    });
    buf.zeroize();
    result
}

fn config_path(buf: &mut [u8; PATH_MAX]) -> Result<&CStr, ConfigError> {
    const DEFAULT: &CStr = c"device.cfg";
    let from_args = semihosting::experimental::env::args::<PATH_MAX>()
        .ok()
        .and_then(|args| {
            let arg = (&args).nth(1)?.ok()?;
            let bytes = arg.as_bytes();
            (bytes.len() < PATH_MAX && !bytes.contains(&0)).then(|| {
                buf[..bytes.len()].copy_from_slice(bytes);
                buf[bytes.len()] = 0;
                bytes.len() + 1
            })
        });
    match from_args {
        Some(len) => CStr::from_bytes_with_nul(&buf[..len]).map_err(|_| ConfigError::Unreadable),
        None => Ok(DEFAULT),
    }
}

fn read_file(path: &CStr, buf: &mut [u8; CONFIG_MAX]) -> Result<usize, ConfigError> {
    use semihosting::io::Read;
    let mut file = semihosting::fs::File::open(path).map_err(|_| ConfigError::Unreadable)?;
    let mut n = 0;
    loop {
        if n == buf.len() {
            // Full: the file is too long unless it ends exactly here.
            let mut probe = [0u8; 1];
            return match file.read(&mut probe) {
                Ok(0) => Ok(n),
                Ok(_) => Err(ConfigError::TooLong),
                Err(_) => Err(ConfigError::Unreadable),
            };
        }
        match file.read(&mut buf[n..]) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k,
            Err(_) => return Err(ConfigError::Unreadable),
        }
    }
}
