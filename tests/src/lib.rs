//! Harness for the end-to-end tests: starts the real `securecom-server` and
//! `securecom-client` programs on loopback (ephemeral ports), drives the
//! clients through their scripted mode (commands on stdin, one JSON event
//! per line on stdout) and stops everything when dropped.
//!
//! Every wait has a deadline, so a hung program fails the test instead of
//! hanging it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use serde_json::Value;

/// Default time to wait for one event.
pub const WAIT: Duration = Duration::from_secs(15);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the two programs once per test binary and returns the directory holding them.
pub fn bin_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(root())
                .args([
                    "build",
                    "-q",
                    "-p",
                    "securecom-server",
                    "-p",
                    "securecom-client",
                ])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the programs failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"));
            target.join("debug")
        })
        .clone()
}

/// Path of the server program.
pub fn server_bin() -> PathBuf {
    bin_dir().join("securecom-server")
}

/// Path of the client program.
pub fn client_bin() -> PathBuf {
    bin_dir().join("securecom-client")
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("start program");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Creates a client key at `path`; returns its public key (hex).
pub fn keygen(path: &Path) -> String {
    let out = output(
        Command::new(client_bin())
            .arg("keygen")
            .arg("--key")
            .arg(path),
    );
    out.lines()
        .next()
        .expect("public key line")
        .trim()
        .to_string()
}

/// `securecom-server init` in `data`; returns the server's public key (hex).
pub fn init_server(data: &Path) -> String {
    let init = output(
        Command::new(server_bin())
            .arg("--data-dir")
            .arg(data)
            .arg("init"),
    );
    init.lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("public key line")
        .to_string()
}

/// Starts `securecom-server run` on `listen` with `--log level` and `extra`,
/// its log appended to `log`, and waits (up to [`WAIT`]) for the line that
/// says where it listens.
pub fn run_server(
    data: &Path,
    listen: &str,
    level: &str,
    extra: &[impl AsRef<std::ffi::OsStr>],
    log: &Path,
) -> (Child, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = Command::new(server_bin())
        .arg("--data-dir")
        .arg(data)
        .args(["run", "--listen", listen, "--log", level])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("server stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let Ok(line) = rx.recv_timeout(WAIT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not say where it listens");
    };
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server said {line:?}, not where it listens");
    };
    (child, addr.parse().expect("address"))
}

/// A server in a fresh temporary directory with `names` registered (their
/// keys in the same directory).
pub fn server_with_users(names: &[&str]) -> (tempfile::TempDir, Server, Vec<User>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let users = names
        .iter()
        .map(|n| User::registered(dir.path(), &server, n))
        .collect();
    (dir, server, users)
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
    /// Its public key (hex), for clients to pin.
    pub key: String,
    log: PathBuf,
    extra_args: Vec<String>,
}

impl Server {
    /// Initializes a data directory under `dir` and starts the server on a free port.
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// Same, with extra `run` arguments (limits).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let data = dir.join("server");
        let key = init_server(&data);
        let mut s = Server {
            child: None,
            addr: "127.0.0.1:0".parse().expect("addr"),
            data,
            key,
            log: dir.join("server.log"),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, listen: &str) {
        let (child, addr) = run_server(&self.data, listen, "debug", &self.extra_args, &self.log);
        self.addr = addr;
        self.child = Some(child);
    }

    /// Registers `name` with public key `key` (hex).
    pub fn add_user(&self, name: &str, key: &str) {
        output(
            Command::new(server_bin())
                .arg("--data-dir")
                .arg(&self.data)
                .args(["add-user", name, key]),
        );
    }

    /// Kills the server (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        wait_exit(&mut c, WAIT).expect("server did not stop after SIGTERM")
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.addr.to_string();
        self.spawn(&listen);
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_exit(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A user: a name and a key file, registered or not.
pub struct User {
    /// User name.
    pub name: String,
    /// Key file.
    pub key_file: PathBuf,
    /// Public key (hex).
    pub public: String,
}

impl User {
    /// Creates a key for `name` under `dir` (not registered).
    pub fn new(dir: &Path, name: &str) -> User {
        let key_file = dir.join(format!("{name}.key"));
        let public = keygen(&key_file);
        User {
            name: name.to_string(),
            key_file,
            public,
        }
    }

    /// Creates a key and registers it with `server`.
    pub fn registered(dir: &Path, server: &Server, name: &str) -> User {
        let u = User::new(dir, name);
        server.add_user(name, &u.public);
        u
    }
}

/// A client in scripted mode.
pub struct Client {
    /// Its user name.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    /// Every event seen so far, in order.
    pub seen: Vec<Value>,
    stderr: std::sync::Arc<Mutex<String>>,
    /// The thread copying stderr into `stderr`; it ends at the process's exit.
    stderr_copier: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    /// Starts `user` against `server` (pinning its key).
    pub fn start(server: &Server, user: &User) -> Client {
        Self::start_pinned(server, user, &server.key)
    }

    /// Starts `user` pinning `server_key` (possibly a wrong one).
    pub fn start_pinned(server: &Server, user: &User, server_key: &str) -> Client {
        Self::spawn(
            server.addr,
            server_key,
            &user.name,
            &user.key_file,
            "127.0.0.1:0",
        )
    }

    /// Starts user `name` (key in `key_file`) against whatever listens on
    /// `server` (a real server, a proxy, a malicious one), pinning the server
    /// key `server_key` (hex), its daemon listening on `daemon_listen`.
    pub fn spawn(
        server: SocketAddr,
        server_key: &str,
        name: &str,
        key_file: &Path,
        daemon_listen: &str,
    ) -> Client {
        Self::spawn_trusting(
            server,
            &["--server-key", server_key],
            name,
            key_file,
            daemon_listen,
        )
    }

    /// [`Client::spawn`] with any way of trusting the server: `trust` is
    /// the client's arguments for it (`--server-key K`, or `--ca-key K` and
    /// the certificate options).
    pub fn spawn_trusting(
        server: SocketAddr,
        trust: &[&str],
        name: &str,
        key_file: &Path,
        daemon_listen: &str,
    ) -> Client {
        let mut cmd = Command::new(client_bin());
        cmd.args(["chat", "--script", "--server", &server.to_string()])
            .args(trust)
            .args(["--user", name, "--key"])
            .arg(key_file)
            .args(["--daemon-listen", daemon_listen]);
        Self::from_command(name, cmd)
    }

    /// Starts `user` and waits until it is logged in with its daemon reachable.
    pub fn login(server: &Server, user: &User) -> Client {
        Self::start(server, user).logged_in()
    }

    /// [`Client::spawn`], then waits until logged in with the daemon reachable.
    pub fn spawn_logged_in(
        server: SocketAddr,
        server_key: &str,
        name: &str,
        key_file: &Path,
        daemon_listen: &str,
    ) -> Client {
        Self::spawn(server, server_key, name, key_file, daemon_listen).logged_in()
    }

    /// Waits until logged in with the daemon reachable.
    pub fn logged_in(mut self) -> Client {
        self.expect("logged_in");
        self.expect_where("daemon reachable", |v| {
            v["event"] == "daemon" && v["reachable"] == true
        });
        self
    }

    /// Where its daemon listens (from its `daemon_listening` event).
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
        writeln!(stdin, "{line}").expect("write to client");
        stdin.flush().expect("flush");
    }

    /// Closes stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next event satisfying `pred` within `limit` (others are recorded
    /// in `seen`); `None` on timeout or when the client has exited.
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
                Err(_) => return None,
            }
        }
    }

    /// Waits for the next event satisfying `pred` (others are recorded in `seen`).
    pub fn expect_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no '{what}' within {WAIT:?}; events: {:?}\nstderr:\n{}",
                    self.name,
                    self.seen,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let stderr = self.final_stderr();
                    panic!(
                        "{}: exited before '{what}'; events: {:?}\nstderr:\n{stderr}",
                        self.name, self.seen
                    )
                }
            }
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

    /// Sends `/users` and returns the names listed.
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

    /// Everything the client wrote on stderr, once it has exited (waits up
    /// to 5 s for that): its last words are often why it exited, and they
    /// may still be on their way when its stdout closes.
    pub fn final_stderr(&mut self) -> String {
        if wait_exit(&mut self.child, Duration::from_secs(5)).is_some() {
            if let Some(t) = self.stderr_copier.take() {
                let _ = t.join();
            }
        }
        self.stderr()
    }

    /// Waits for the process to exit; returns its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        wait_exit(&mut self.child, WAIT)
            .unwrap_or_else(|| panic!("{} did not exit; stderr:\n{}", self.name, self.stderr()))
    }

    /// Waits for the process to exit within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, limit)
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

impl Drop for Client {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Opens a chat: `a` asks `b`, `b` accepts; returns when both are ready.
pub fn open_chat(a: &mut Client, b: &mut Client) {
    let (ra, rb) = open_chat_events(a, b);
    assert_eq!(ra["peer"], b.name.as_str());
    assert_eq!(rb["peer"], a.name.as_str());
    assert_eq!(
        ra["safety_number"], rb["safety_number"],
        "safety numbers differ"
    );
}

/// `a` asks `b`, `b` accepts; returns both `chat_ready` events, checking
/// only who initiated (not the peers' names nor that the safety numbers
/// agree: a malicious server may make them differ).
pub fn open_chat_events(a: &mut Client, b: &mut Client) -> (Value, Value) {
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
pub fn say(from: &mut Client, to: &mut Client, text: &str) {
    from.send(text);
    let m = to.expect("message");
    assert_eq!(m["from"], from.name.as_str());
    assert_eq!(m["text"], text);
}

// ---------------------------------------------------------------------------
// Programs started through a launcher (e.g. `ip netns exec NS`): the NAT
// tests (tests/tests/nat.rs) run the server and the clients in network
// namespaces. These build the same command lines as `run_server` and
// `Client::spawn_trusting` above, but leave the spawning to a `Command`
// the caller made, so that any wrapper (or extra flags) can come first.
// ---------------------------------------------------------------------------

/// The arguments after the server program for `securecom-server run` in
/// `data`, as [`run_server`] gives them: `--data-dir DATA run --listen
/// LISTEN --log LEVEL EXTRA...`.
pub fn server_run_args(
    data: &Path,
    listen: &str,
    level: &str,
    extra: &[impl AsRef<std::ffi::OsStr>],
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["--data-dir".into(), data.into()];
    for a in ["run", "--listen", listen, "--log", level] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|a| a.as_ref().to_os_string()));
    args
}

/// Spawns `cmd` (a command that runs `securecom-server run ...`, directly or
/// through a launcher), its stderr appended to `log`, and waits (up to
/// [`WAIT`]) for the line that says where it listens, as [`run_server`] does.
pub fn spawn_server_command(mut cmd: Command, log: &Path) -> (Child, SocketAddr) {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("start the server ({cmd:?}): {e}"));
    let stdout = child.stdout.take().expect("server stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(WAIT) {
        Ok(line) if !line.is_empty() => line,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server ({cmd:?}) did not say where it listens; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    };
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"))
        .parse()
        .expect("address");
    (child, addr)
}

/// The arguments after the client program for a scripted client, as
/// [`Client::spawn_trusting`] gives them: `chat --script --server SERVER
/// TRUST... --user NAME --key KEY_FILE --daemon-listen DAEMON_LISTEN`.
pub fn client_chat_args(
    server: SocketAddr,
    trust: &[&str],
    name: &str,
    key_file: &Path,
    daemon_listen: &str,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for a in ["chat", "--script", "--server", &server.to_string()] {
        args.push(a.into());
    }
    args.extend(trust.iter().map(std::ffi::OsString::from));
    for a in ["--user", name, "--key"] {
        args.push(a.into());
    }
    args.push(key_file.into());
    for a in ["--daemon-listen", daemon_listen] {
        args.push(a.into());
    }
    args
}

impl Client {
    /// Starts a scripted client from `cmd`: a command that runs
    /// `securecom-client` with [`client_chat_args`] (and any extra flags),
    /// directly or through a launcher such as `ip netns exec NS`. As in
    /// [`Client::spawn_trusting`], `RUST_LOG` is `debug` and
    /// `SECURECOM_PASSPHRASE` is removed, unless `cmd` sets them itself.
    pub fn from_command(name: &str, mut cmd: Command) -> Client {
        let envs: Vec<std::ffi::OsString> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
        if !envs.iter().any(|k| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "debug");
        }
        if !envs.iter().any(|k| k == "SECURECOM_PASSPHRASE") {
            cmd.env_remove("SECURECOM_PASSPHRASE");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start client {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => panic!("client printed a line that is not JSON: {line}"),
                }
            }
        });
        let err = std::sync::Arc::new(Mutex::new(String::new()));
        let err2 = err.clone();
        let stderr_copier = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut e) = err2.lock() {
                    e.push_str(&line);
                    e.push('\n');
                }
            }
        });
        Client {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            events: rx,
            seen: Vec::new(),
            stderr: err,
            stderr_copier: Some(stderr_copier),
        }
    }
}
