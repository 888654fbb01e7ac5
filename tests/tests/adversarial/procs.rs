//! The real programs, started the way the adversarial tests need: the
//! server with its pid (memory and descriptors from `/proc`), its log and
//! users registered in bulk; clients pointed at any address (a proxy, a
//! malicious server) with a chosen daemon address.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use securecom_core::{PublicKey, SafetyNumber, StaticSecret};
use securecom_host::{keyfile, os_rng, public_key_hex};
use securecom_tests::{client_bin, server_bin, Value, WAIT};

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
        let out = Command::new(server_bin())
            .arg("--data-dir")
            .arg(&data)
            .arg("init")
            .output()
            .expect("server init");
        assert!(out.status.success(), "server init failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix("public key: "))
            .expect("public key line");
        let key = securecom_host::parse_public_key(hex).expect("server key");
        let mut reg = String::new();
        for (name, k) in users {
            reg.push_str(&format!("{name} {}\n", public_key_hex(k)));
        }
        std::fs::write(data.join("users"), reg).expect("write the registry");
        let log = dir.join("server.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(server_bin())
            .arg("--data-dir")
            .arg(&data)
            .args(["run", "--listen", "127.0.0.1:0", "--log", level])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not say where it listens");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("listening line")
            .parse()
            .expect("address");
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

/// A real `securecom-client` in script mode, killed on drop.
pub struct ScriptClient {
    /// Its user name.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    /// Every event seen so far, in order.
    pub seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl ScriptClient {
    /// Starts `user` against `server`, pinning `server_key`, its daemon on `daemon_listen`.
    pub fn start(
        server: SocketAddr,
        server_key: &PublicKey,
        user: &TestUser,
        daemon_listen: &str,
    ) -> ScriptClient {
        let mut child = Command::new(client_bin())
            .args(["chat", "--script", "--server", &server.to_string()])
            .args(["--server-key", &public_key_hex(server_key)])
            .args(["--user", &user.name, "--key"])
            .arg(&user.key_file)
            .args(["--daemon-listen", daemon_listen])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the client");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "not_json", "line": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let err = Arc::new(Mutex::new(String::new()));
        let err2 = err.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut e) = err2.lock() {
                    e.push_str(&line);
                    e.push('\n');
                }
            }
        });
        ScriptClient {
            name: user.name.clone(),
            stdin: child.stdin.take(),
            child,
            events: rx,
            seen: Vec::new(),
            stderr: err,
        }
    }

    /// Starts and waits until logged in with the daemon reachable.
    pub fn login(
        server: SocketAddr,
        server_key: &PublicKey,
        user: &TestUser,
        daemon_listen: &str,
    ) -> ScriptClient {
        let mut c = Self::start(server, server_key, user, daemon_listen);
        c.expect("logged_in");
        c.expect_where("daemon reachable", |v| {
            v["event"] == "daemon" && v["reachable"] == true
        });
        c
    }

    /// Where its daemon listens (from its first event).
    pub fn daemon_addr(&mut self) -> SocketAddr {
        let v = match self.seen.iter().find(|v| v["event"] == "daemon_listening") {
            Some(v) => v.clone(),
            None => self.expect("daemon_listening"),
        };
        v["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("daemon address")
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the client");
        stdin.flush().expect("flush");
    }

    /// The next event satisfying `pred` within `limit` (others go to `seen`).
    pub fn next_where(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Some(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Waits (up to the harness's `WAIT`) for the next event satisfying `pred`.
    pub fn expect_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        match self.next_where(WAIT, pred) {
            Some(v) => v,
            None => panic!(
                "{}: no '{what}' within {WAIT:?}; events: {:?}\nstderr:\n{}",
                self.name,
                self.seen,
                self.stderr()
            ),
        }
    }

    /// Waits for the next event named `event`.
    pub fn expect(&mut self, event: &str) -> Value {
        self.expect_where(event, |v| v["event"] == event)
    }

    /// Asserts that no event satisfying `pred` arrives within `quiet`.
    pub fn expect_none(&mut self, quiet: Duration, pred: impl Fn(&Value) -> bool) {
        let end = Instant::now() + quiet;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    assert!(!pred(&v), "{}: unexpected event {v}", self.name);
                    self.seen.push(v);
                }
                Err(_) => return,
            }
        }
    }

    /// Every event seen so far or arriving within `quiet`, in order.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        self.expect_none(quiet, |_| false);
        self.seen.clone()
    }

    /// Sends `/users` and returns the names listed, sorted.
    pub fn users(&mut self) -> Vec<String> {
        self.send("/users");
        let v = self.expect("users");
        let mut names: Vec<String> = v["names"]
            .as_array()
            .expect("names")
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect();
        names.sort();
        names
    }

    /// What the client wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for the process to exit within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Kills the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ScriptClient {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `a` asks `b`, `b` accepts; returns both `chat_ready` events.
pub fn open_chat(a: &mut ScriptClient, b: &mut ScriptClient) -> (Value, Value) {
    a.send(&format!("/chat {}", b.name));
    let req = b.expect("chat_request");
    assert_eq!(req["from"], a.name.as_str());
    b.send("/accept");
    let ra = a.expect("chat_ready");
    let rb = b.expect("chat_ready");
    assert_eq!(ra["initiator"], true);
    assert_eq!(rb["initiator"], false);
    (ra, rb)
}

/// `from` says `text`; `to` must receive exactly it.
pub fn say(from: &mut ScriptClient, to: &mut ScriptClient, text: &str) {
    from.send(text);
    let m = to.expect("message");
    assert_eq!(m["from"], from.name.as_str());
    assert_eq!(m["text"], text);
}

/// True for a `chat_ended` event with reason `failed`.
pub fn is_chat_failed(v: &Value) -> bool {
    v["event"] == "chat_ended" && v["reason"] == "failed"
}
