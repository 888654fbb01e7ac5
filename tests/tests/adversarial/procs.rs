//! The real programs, started the way the adversarial tests need: the
//! server with its pid (memory and descriptors from `/proc`), its log and
//! users registered in bulk; clients pointed at any address (a proxy, a
//! malicious server) with a chosen daemon address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;

use securecom_core::{PublicKey, SafetyNumber, StaticSecret};
use securecom_host::{keyfile, os_rng, public_key_hex};
use securecom_tests::Value;

/// A user with a key pair (and a key file, for the real client).
pub struct TestUser {
    /// User name.
    pub name: String,
    /// Private key.
    pub secret: StaticSecret,
    /// Public key.
    pub public: PublicKey,
    /// Key file (mode 0600), if written.
    pub key_file: PathBuf,
}

impl TestUser {
    /// A fresh key, written to `dir/NAME.key`.
    pub fn new(dir: &Path, name: &str) -> TestUser {
        let secret = StaticSecret::generate(&mut os_rng());
        let key_file = dir.join(format!("{name}.key"));
        keyfile::write(&key_file, &secret).expect("write the key file");
        TestUser {
            name: name.to_string(),
            public: secret.public_key(),
            secret,
            key_file,
        }
    }

    /// A key in memory only (for in-process clients).
    pub fn in_memory(name: &str, secret: StaticSecret) -> TestUser {
        TestUser {
            name: name.to_string(),
            public: secret.public_key(),
            secret,
            key_file: PathBuf::new(),
        }
    }

    /// Hex of the public key.
    pub fn public_hex(&self) -> String {
        public_key_hex(&self.public)
    }
}

/// The safety number two honest users must see.
pub fn honest_safety_number(a: &TestUser, b: &TestUser) -> String {
    SafetyNumber::new(&a.public, &b.public).to_string()
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The real `securecom-server`, killed on drop.
pub struct RealServer {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
    /// Its public key, as clients pin it.
    pub key: PublicKey,
    log: PathBuf,
}

impl RealServer {
    /// Initializes `dir/server`, registers `users`, starts `run` with
    /// `--log level` and the `extra` arguments, on a free loopback port.
    pub fn start(dir: &Path, users: &[(&str, PublicKey)], level: &str, extra: &[&str]) -> Self {
        let data = dir.join("server");
        let hex = securecom_tests::init_server(&data);
        let key = securecom_host::parse_public_key(&hex).expect("server key");
        let mut reg = String::new();
        for (name, k) in users {
            reg.push_str(&format!("{name} {}\n", public_key_hex(k)));
        }
        std::fs::write(data.join("users"), reg).expect("write the registry");
        let log = dir.join("server.log");
        let (child, addr) = securecom_tests::run_server(&data, "127.0.0.1:0", level, extra, &log);
        RealServer {
            child: Some(child),
            addr,
            data,
            key,
            log,
        }
    }

    /// The server's public key in hex.
    pub fn key_hex(&self) -> String {
        public_key_hex(&self.key)
    }

    /// The server's private key (what its thief holds).
    pub fn secret(&self) -> StaticSecret {
        keyfile::read(&self.data.join("server.key")).expect("read the server key")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Open file descriptors now.
    pub fn fds(&self) -> usize {
        fd_count(self.pid())
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Asserts the server is still up and never panicked.
    pub fn assert_healthy(&mut self) {
        assert!(self.is_running(), "the server died; log:\n{}", self.tail());
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "the server panicked; log:\n{}",
            self.tail()
        );
    }

    /// The last lines of the log (for failure messages).
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// Re-exported from the harness (not every test binary uses all three).

/// `a` asks `b`, `b` accepts; returns both `chat_ready` events (checking
/// only who initiated: a malicious server may make the rest differ).
#[allow(unused_imports)]
pub use securecom_tests::open_chat_events as open_chat;
/// `from` says `text`; `to` must receive exactly it.
#[allow(unused_imports)]
pub use securecom_tests::say;
/// A real `securecom-client` in script mode, killed on drop: the harness's
/// own client (`securecom_tests::Client`), started with [`start_at`] or
/// [`login_at`] to point it at any address.
#[allow(unused_imports)]
pub use securecom_tests::Client as ScriptClient;

/// Starts `user` against `server`, pinning `server_key`, its daemon on `daemon_listen`.
pub fn start_at(
    server: SocketAddr,
    server_key: &PublicKey,
    user: &TestUser,
    daemon_listen: &str,
) -> ScriptClient {
    ScriptClient::spawn(
        server,
        &public_key_hex(server_key),
        &user.name,
        &user.key_file,
        daemon_listen,
    )
}

/// Starts and waits until logged in with the daemon reachable.
pub fn login_at(
    server: SocketAddr,
    server_key: &PublicKey,
    user: &TestUser,
    daemon_listen: &str,
) -> ScriptClient {
    ScriptClient::spawn_logged_in(
        server,
        &public_key_hex(server_key),
        &user.name,
        &user.key_file,
        daemon_listen,
    )
}

/// True for a `chat_ended` event with reason `failed`.
pub fn is_chat_failed(v: &Value) -> bool {
    v["event"] == "chat_ended" && v["reason"] == "failed"
}
