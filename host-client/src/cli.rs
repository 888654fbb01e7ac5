//! The command line, the optional TOML config file and their merging.
//!
//! Precedence: command-line flags, then environment variables (clap reads
//! both), then the config file, then built-in defaults.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use securecom_core::cert::{valid_server_name, CaPublicKey};
use securecom_core::message::valid_user_name;
use securecom_core::{PublicKey, DEFAULT_DAEMON_PORT};
use securecom_host::passphrase::Sources;
use serde::Deserialize;

/// secureCom command-line client.
#[derive(Parser, Debug)]
#[command(name = "securecom-client", version, about)]
pub struct Cli {
    /// TOML config file with any of: server, server_key, key, user, daemon_listen.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace); default: RUST_LOG, else warn.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a new private key (mode 0600, never overwrites), protected by a
    /// passphrase (asked twice); print its public key and fingerprint.
    Keygen(KeygenArgs),
    /// Print the public key of a private key file (64 hex digits).
    Pubkey(KeyArgs),
    /// Change the passphrase of a private key file (or protect an unprotected one).
    Passwd(PasswdArgs),
    /// Log in and chat.
    Chat(ChatArgs),
}

/// `--key` for `pubkey`, and the passphrase sources.
#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The private key file.
    #[arg(long, env = "SECURECOM_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// Where the key's passphrase comes from, besides the terminal.
#[derive(Args, Debug, Default, Clone)]
pub struct PassphraseArgs {
    /// Read the key's passphrase from the first line of this file.
    #[arg(long, env = "SECURECOM_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the key's passphrase from the first line of this open file descriptor.
    #[arg(long, value_name = "FD")]
    pub passphrase_fd: Option<u32>,
}

/// The environment variable that may hold the key's passphrase.
pub const PASSPHRASE_ENV: &str = "SECURECOM_PASSPHRASE";

impl PassphraseArgs {
    /// The passphrase sources (the terminal comes last, when there is one).
    pub fn sources(&self) -> Sources {
        Sources {
            fd: self.passphrase_fd,
            file: self.passphrase_file.clone(),
            env_var: Some(PASSPHRASE_ENV),
            credential: None,
        }
    }
}

/// Options of `keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Store the key unprotected (for automation; not recommended).
    #[arg(long)]
    pub no_passphrase: bool,
}

/// Options of `passwd`.
#[derive(Args, Debug)]
pub struct PasswdArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Remove the protection instead of setting a new passphrase.
    #[arg(long)]
    pub no_passphrase: bool,
    /// Read the new passphrase from this file (default: asked twice on the terminal).
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}

/// Options of `chat`.
#[derive(Args, Debug, Default)]
pub struct ChatArgs {
    /// The server, HOST:PORT.
    #[arg(long, env = "SECURECOM_SERVER", value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// The server's public key (64 hex digits), pinned: any other key ends the login.
    #[arg(long, env = "SECURECOM_SERVER_KEY", value_name = "HEX")]
    pub server_key: Option<String>,
    /// Instead of --server-key: the public key (64 hex digits) of a CA whose
    /// certificate of the server's key is required.
    #[arg(long, env = "SECURECOM_CA_KEY", value_name = "HEX")]
    pub ca_key: Option<String>,
    /// With --ca-key: the CA's signed revocation list to check the certificate against.
    #[arg(long, env = "SECURECOM_REVOCATION_LIST", value_name = "FILE")]
    pub revocation_list: Option<PathBuf>,
    /// With --ca-key: the name the certificate must carry (default: the host of --server).
    #[arg(long, env = "SECURECOM_SERVER_NAME", value_name = "NAME")]
    pub server_name: Option<String>,
    /// The known-peers file (default: next to the key file, extension .known_peers).
    #[arg(long, env = "SECURECOM_KNOWN_PEERS", value_name = "FILE")]
    pub known_peers: Option<PathBuf>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Our private key file.
    #[arg(long, env = "SECURECOM_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The user name to log in as.
    #[arg(long, env = "SECURECOM_USER", value_name = "NAME")]
    pub user: Option<String>,
    /// Where the daemon listens for the server's chat requests (port 0: any free port).
    /// Default: 0.0.0.0:4242.
    #[arg(long, env = "SECURECOM_DAEMON_LISTEN", value_name = "ADDR")]
    pub daemon_listen: Option<String>,
    /// Who may connect to the daemon: `server` (default: only the address of
    /// the server we connected to), `any`, or a comma-separated list of
    /// addresses (e.g. a multi-homed server's).
    #[arg(long, env = "SECURECOM_DAEMON_ALLOW", value_name = "server|any|IP,...")]
    pub daemon_allow: Option<String>,
    /// How the server's request channel reaches us: `auto` (default: the
    /// server dials the daemon; if it cannot, behind a NAT or a firewall, we
    /// open the connection to the server ourselves), `listen` (only be
    /// dialled) or `dial` (only connect out; no listening daemon).
    #[arg(long, env = "SECURECOM_REQUEST_MODE", value_name = "auto|listen|dial")]
    pub request_mode: Option<String>,
    /// Seconds after which the standard channel and our chats re-key in
    /// place (1 to 120, the protocol's maximum; default 120).
    #[arg(long, env = "SECURECOM_REKEY_AFTER", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub rekey_after: Option<u64>,
    /// Script mode: one JSON object per line on stdout per event.
    #[arg(long)]
    pub script: bool,
}

/// The config file. Every key is optional; unknown keys are an error.
#[derive(Deserialize, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// HOST:PORT.
    pub server: Option<String>,
    /// 64 hex digits.
    pub server_key: Option<String>,
    /// Key file; a relative path is relative to the config file's directory.
    pub key: Option<PathBuf>,
    /// User name.
    pub user: Option<String>,
    /// Daemon listen address.
    pub daemon_listen: Option<String>,
    /// Who may connect to the daemon (`server`, `any` or addresses).
    pub daemon_allow: Option<String>,
    /// `auto`, `listen` or `dial`.
    pub request_mode: Option<String>,
    /// CA public key (instead of server_key).
    pub ca_key: Option<String>,
    /// Revocation-list file (relative to the config file's directory).
    pub revocation_list: Option<PathBuf>,
    /// The server name the certificate must carry.
    pub server_name: Option<String>,
    /// Known-peers file (relative to the config file's directory).
    pub known_peers: Option<PathBuf>,
}

impl ConfigFile {
    /// Parses config text; `dir` is the config file's directory (for relative key paths).
    pub fn parse(text: &str, dir: &Path) -> Result<Self, String> {
        let mut c: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for p in [&mut c.key, &mut c.revocation_list, &mut c.known_peers] {
            if let Some(k) = p {
                if k.is_relative() {
                    *p = Some(dir.join(&*k));
                }
            }
        }
        Ok(c)
    }

    /// Reads the config file at `path`, or an empty one if `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(ConfigFile::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How the server is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// By its pinned static key.
    Pinned(PublicKey),
    /// By a certificate from this CA.
    Ca {
        /// The CA's public key.
        ca_key: CaPublicKey,
        /// The name the certificate must carry.
        server_name: String,
        /// The CA's revocation list, if any.
        revocation_list: Option<PathBuf>,
    },
}

/// Everything `chat` needs, merged and checked.
#[derive(Debug)]
pub struct ChatSettings {
    /// HOST:PORT.
    pub server: String,
    /// How the server is authenticated.
    pub trust: ServerTrust,
    /// The known-peers file.
    pub known_peers: PathBuf,
    /// Where the key's passphrase comes from.
    pub passphrase: Sources,
    /// Our key file.
    pub key: PathBuf,
    /// Our user name.
    pub user: String,
    /// Where the daemon listens.
    pub daemon_listen: String,
    /// Who may connect to the daemon.
    pub daemon_allow: DaemonAllow,
    /// How the request channel is opened.
    pub request_mode: securecom_core::RequestMode,
    /// The session's limits (re-keying included).
    pub limits: securecom_core::Limits,
    /// JSON lines on stdout.
    pub script: bool,
}

/// Who may connect to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAllow {
    /// The address of the server we connected to (the default).
    Server,
    /// Anyone.
    Any,
    /// These addresses.
    Only(Vec<std::net::IpAddr>),
}

/// Parses `--daemon-allow`.
pub fn parse_daemon_allow(s: &str) -> Result<DaemonAllow, String> {
    match s.trim() {
        "server" => Ok(DaemonAllow::Server),
        "any" => Ok(DaemonAllow::Any),
        list => list
            .split(',')
            .map(|a| {
                a.trim().parse().map_err(|_| {
                    format!("--daemon-allow: '{a}' is not an IP address (or server, any)")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(DaemonAllow::Only),
    }
}

/// The default daemon listen address.
pub fn default_daemon_listen() -> String {
    format!("0.0.0.0:{DEFAULT_DAEMON_PORT}")
}

/// The host part of `HOST:PORT` (`[v6]:port` too).
pub fn host_of(server: &str) -> String {
    if let Some(rest) = server.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match server.rsplit_once(':') {
        Some((host, _)) => host.to_string(),
        None => server.to_string(),
    }
}

/// `--key` (flag or env) over the config file's `key`.
pub fn resolve_key(flag: Option<PathBuf>, file: &ConfigFile) -> Result<PathBuf, String> {
    flag.or_else(|| file.key.clone())
        .ok_or_else(|| "missing --key FILE (or SECURECOM_KEY, or key in the config file)".into())
}

/// Merges flags/env (already in `args`) over the config file and checks the values.
pub fn resolve_chat(args: ChatArgs, file: ConfigFile) -> Result<ChatSettings, String> {
    let server = args
        .server
        .or(file.server)
        .ok_or("missing --server HOST:PORT (or SECURECOM_SERVER, or server in the config file)")?;
    let server_key_hex = args.server_key.or(file.server_key);
    let ca_key_hex = args.ca_key.or(file.ca_key);
    let trust = match (server_key_hex, ca_key_hex) {
        (Some(_), Some(_)) => {
            return Err(
                "give either --server-key (pin the server's key) or --ca-key \
                        (trust a CA's certificate of it), not both"
                    .into(),
            )
        }
        (None, None) => {
            return Err(
                "missing --server-key HEX or --ca-key HEX (or SECURECOM_SERVER_KEY / \
                        SECURECOM_CA_KEY, or server_key / ca_key in the config file)"
                    .into(),
            )
        }
        (Some(hex), None) => ServerTrust::Pinned(
            securecom_host::parse_public_key(&hex).map_err(|e| format!("bad server key: {e}"))?,
        ),
        (None, Some(hex)) => {
            let ca_key = securecom_host::certfile::parse_ca_key(&hex)
                .map_err(|e| format!("bad CA key: {e}"))?;
            let server_name = match args.server_name.or(file.server_name) {
                Some(n) => n,
                None => host_of(&server),
            }
            .to_ascii_lowercase();
            if !valid_server_name(&server_name) {
                return Err(format!(
                    "bad server name '{server_name}' for the certificate check \
                     (a-z 0-9 . - :, at most 64; set --server-name)"
                ));
            }
            ServerTrust::Ca {
                ca_key,
                server_name,
                revocation_list: args.revocation_list.or(file.revocation_list),
            }
        }
    };
    let key = args
        .key
        .or(file.key)
        .ok_or("missing --key FILE (or SECURECOM_KEY, or key in the config file)")?;
    let user = args
        .user
        .or(file.user)
        .ok_or("missing --user NAME (or SECURECOM_USER, or user in the config file)")?;
    if !valid_user_name(&user) {
        return Err(format!(
            "bad user name '{user}': 1 to 32 characters of a-z 0-9 _ . -"
        ));
    }
    let daemon_listen = args
        .daemon_listen
        .or(file.daemon_listen)
        .unwrap_or_else(default_daemon_listen);
    let daemon_allow = match args.daemon_allow.or(file.daemon_allow) {
        Some(a) => parse_daemon_allow(&a)?,
        None => DaemonAllow::Server,
    };
    let request_mode = match args.request_mode.or(file.request_mode).as_deref() {
        None | Some("auto") => securecom_core::RequestMode::Auto,
        Some("listen") => securecom_core::RequestMode::Listen,
        Some("dial") => securecom_core::RequestMode::Dial,
        Some(other) => {
            return Err(format!(
                "--request-mode: '{other}' is not one of auto, listen, dial"
            ))
        }
    };
    let known_peers = args
        .known_peers
        .or(file.known_peers)
        .unwrap_or_else(|| crate::known_peers::default_path(&key));
    Ok(ChatSettings {
        server,
        trust,
        known_peers,
        passphrase: args.passphrase.sources(),
        key,
        user,
        daemon_listen,
        daemon_allow,
        request_mode,
        limits: securecom_core::Limits {
            rekey_after: args.rekey_after.map_or(
                securecom_core::Limits::DEFAULT.rekey_after,
                securecom_core::Duration::from_secs,
            ),
            ..securecom_core::Limits::DEFAULT
        },
        script: args.script,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const KEY: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

    #[test]
    fn clap_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_file() {
        let text = format!(
            "server = \"h:1\"\nserver_key = \"{KEY}\"\nkey = \"alice.key\"\nuser = \"alice\"\n"
        );
        let c = ConfigFile::parse(&text, Path::new("/etc/sc")).unwrap();
        assert_eq!(c.key, Some(PathBuf::from("/etc/sc/alice.key")));
        assert_eq!(c.server.as_deref(), Some("h:1"));
        assert!(ConfigFile::parse("sever = \"typo\"", Path::new(".")).is_err());
        let abs = ConfigFile::parse("key = \"/k\"", Path::new("/x")).unwrap();
        assert_eq!(abs.key, Some(PathBuf::from("/k")));
    }

    #[test]
    fn flags_over_file_and_defaults() {
        let file = ConfigFile {
            server: Some("file:1".into()),
            server_key: Some(KEY.into()),
            key: Some("/file.key".into()),
            user: Some("fileuser".into()),
            ..ConfigFile::default()
        };
        let args = ChatArgs {
            server: Some("flag:2".into()),
            user: Some("alice".into()),
            ..ChatArgs::default()
        };
        let s = resolve_chat(args, file).unwrap();
        assert_eq!(s.server, "flag:2");
        assert_eq!(s.user, "alice");
        assert_eq!(s.key, PathBuf::from("/file.key"));
        assert_eq!(s.daemon_listen, "0.0.0.0:4242");
    }

    #[test]
    fn flags_parse_from_command_line() {
        let cli = Cli::try_parse_from([
            "securecom-client",
            "chat",
            "--server",
            "127.0.0.1:7300",
            "--server-key",
            KEY,
            "--key",
            "a.key",
            "--user",
            "alice",
            "--daemon-listen",
            "127.0.0.1:0",
            "--script",
        ])
        .unwrap();
        let Command::Chat(args) = cli.command else {
            panic!("not chat")
        };
        let s = resolve_chat(args, ConfigFile::default()).unwrap();
        assert_eq!(s.daemon_listen, "127.0.0.1:0");
        assert!(s.script);
    }

    #[test]
    fn bad_values() {
        let base = || ChatArgs {
            server: Some("h:1".into()),
            server_key: Some(KEY.into()),
            key: Some("k".into()),
            user: Some("alice".into()),
            ..ChatArgs::default()
        };
        assert!(resolve_chat(base(), ConfigFile::default()).is_ok());
        let mut a = base();
        a.user = Some("Alice".into());
        assert!(resolve_chat(a, ConfigFile::default()).is_err());
        let mut a = base();
        a.server_key = Some("abcd".into());
        assert!(resolve_chat(a, ConfigFile::default()).is_err());
        let mut a = base();
        a.server = None;
        assert!(resolve_chat(a, ConfigFile::default())
            .unwrap_err()
            .contains("--server"));
        let mut a = base();
        a.ca_key = Some(KEY.into());
        assert!(resolve_chat(a, ConfigFile::default())
            .unwrap_err()
            .contains("not both"));
    }

    #[test]
    fn ca_trust_and_server_name() {
        let args = ChatArgs {
            server: Some("Chat.Example.org:7300".into()),
            ca_key: Some(KEY.into()),
            key: Some("/k/alice.key".into()),
            user: Some("alice".into()),
            ..ChatArgs::default()
        };
        let s = resolve_chat(args, ConfigFile::default()).unwrap();
        let ServerTrust::Ca { server_name, .. } = &s.trust else {
            panic!("not CA")
        };
        assert_eq!(server_name, "chat.example.org");
        assert_eq!(s.known_peers, PathBuf::from("/k/alice.known_peers"));
        assert_eq!(host_of("[::1]:7300"), "::1");
        assert_eq!(host_of("127.0.0.1:7300"), "127.0.0.1");
    }
}
