//! The command line, the optional TOML config file and their merging.
//!
//! Precedence: command-line flags, then environment variables (clap reads
//! both), then the config file, then built-in defaults.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use securecom_core::message::valid_user_name;
use securecom_core::{PublicKey, DEFAULT_DAEMON_PORT};
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
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a new private key (mode 0600, never overwrites); print its public key and fingerprint.
    Keygen(KeyArgs),
    /// Print the public key of a private key file (64 hex digits).
    Pubkey(KeyArgs),
    /// Log in and chat.
    Chat(ChatArgs),
}

/// `--key` for `keygen` and `pubkey`.
#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The private key file.
    #[arg(long, env = "SECURECOM_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
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
}

impl ConfigFile {
    /// Parses config text; `dir` is the config file's directory (for relative key paths).
    pub fn parse(text: &str, dir: &Path) -> Result<Self, String> {
        let mut c: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(k) = &c.key {
            if k.is_relative() {
                c.key = Some(dir.join(k));
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

/// Everything `chat` needs, merged and checked.
#[derive(Debug)]
pub struct ChatSettings {
    /// HOST:PORT.
    pub server: String,
    /// The pinned server key.
    pub server_key: PublicKey,
    /// Our key file.
    pub key: PathBuf,
    /// Our user name.
    pub user: String,
    /// Where the daemon listens.
    pub daemon_listen: String,
    /// JSON lines on stdout.
    pub script: bool,
}

/// The default daemon listen address.
pub fn default_daemon_listen() -> String {
    format!("0.0.0.0:{DEFAULT_DAEMON_PORT}")
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
    let server_key_hex = args.server_key.or(file.server_key).ok_or(
        "missing --server-key HEX (or SECURECOM_SERVER_KEY, or server_key in the config file)",
    )?;
    let server_key = securecom_host::parse_public_key(&server_key_hex)
        .map_err(|e| format!("bad server key: {e}"))?;
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
    Ok(ChatSettings {
        server,
        server_key,
        key,
        user,
        daemon_listen,
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
            daemon_listen: None,
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
    }
}
