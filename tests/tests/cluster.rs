//! The cluster (issue 15): three real `securecom-server` nodes joined by a
//! real `nats-server` (its own config file with credentials, on a free
//! loopback port, in a temporary directory), and real CLI clients logged in
//! to different nodes.
//!
//! Needs `nats-server` (apt: nats-server). Without it every test prints
//! `SKIPPED: why` (on stdout and on stderr) and returns; with
//! `SECURECOM_NATS_REQUIRED=1` (as CI sets) a skip fails. The TLS test also
//! needs `openssl` (for a test certificate), and the device test
//! `qemu-system-arm`, which, as in tests/tests/embedded.rs, it requires.

// The QEMU helpers of tests/tests/embedded.rs (only some are used here).
#[allow(dead_code)]
#[path = "embedded/qemu.rs"]
mod qemu;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use securecom_tests::{open_chat, run_server, say, server_bin, Client, User, Value};

/// The nodes' NATS user and password (the test's config file).
const NODE_USER: &str = "node";
const NODE_PASSWORD: &str = "n0de-secret-for-the-test";
/// A NATS user with no right on the cluster's subjects.
const GUEST_USER: &str = "guest";
const GUEST_PASSWORD: &str = "guest";

/// Heartbeat and TTL the nodes run with here (small, for quick tests).
const HEARTBEAT_MS: u64 = 200;
const NODE_TTL_MS: u64 = 1000;

/// Where `nats-server` is, or: print `SKIPPED` (fail if required) and return.
macro_rules! nats_or_skip {
    () => {
        match nats_server_program() {
            Some(p) => p,
            None => {
                skip("nats-server is not installed (apt-get install nats-server)");
                return;
            }
        }
    };
}

fn skip(reason: &str) {
    println!("SKIPPED: {reason}");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
    if std::env::var("SECURECOM_NATS_REQUIRED").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("SECURECOM_NATS_REQUIRED is set, and {reason}");
    }
}

fn nats_server_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `nats-server` of the test's own, stopped (by its PID) when dropped.
struct Nats {
    program: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Nats {
    /// `node_identity`: how the nodes' NATS user is named in the config
    /// (`user: …, password: …`, or `nkey: U…`); `tls`: a `tls { … }` block.
    fn start(program: PathBuf, dir: &Path, node_identity: &str, tls: &str) -> Nats {
        let port = free_port();
        let config = dir.join("nats.conf");
        // The nodes may use the cluster's subjects (nothing else);
        // the guest may use none of them; a client without credentials is
        // not let in at all.
        std::fs::write(
            &config,
            format!(
                r#"
listen: 127.0.0.1:{port}
max_payload: 65536
{tls}
authorization {{
  users = [
    {{ {node_identity},
       permissions: {{ publish: ["securecom.>"], subscribe: ["securecom.>"] }} }}
    {{ user: "{GUEST_USER}", password: "{GUEST_PASSWORD}",
       permissions: {{ publish: ["guest.>"], subscribe: ["guest.>"] }} }}
  ]
}}
"#
            ),
        )
        .expect("write nats.conf");
        let mut n = Nats {
            program,
            config,
            log: dir.join("nats.log"),
            port,
            child: None,
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("nats log");
        let child = Command::new(&self.program)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        // Ready when it greets a client with INFO.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut line = String::new();
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return;
                }
            }
            assert!(
                Instant::now() < end,
                "nats-server did not start; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL, by its PID).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `securecom-server` node.
struct Node {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Node {
    /// Its metrics endpoint's address (from its log).
    fn metrics_addr(&self) -> SocketAddr {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("metrics endpoint"))
            .find_map(|l| {
                l.split("addr=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .expect("the node's log names its metrics endpoint")
    }

    /// `GET path` on its metrics endpoint: the status and the body.
    fn http_get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.metrics_addr()).expect("connect to the endpoint");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("write");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Waits until `/readyz` answers `status` and the NATS link gauge reads
    /// `up` (the operator's view of the link), or fails after 15 s.
    fn wait_link(&self, status: u16, up: u8) {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = self.http_get("/readyz").0;
            let metrics = self.http_get("/metrics").1;
            let gauge = format!("securecom_nats_link_up {up}");
            if ready == status && metrics.lines().any(|l| l == gauge) {
                return;
            }
            assert!(
                Instant::now() < end,
                "/readyz {ready} (want {status}); metrics: {:?}",
                metrics
                    .lines()
                    .find(|l| l.starts_with("securecom_nats_link_up"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it gracefully (SIGTERM, by its PID) and waits for its exit.
    fn terminate(&mut self) {
        let mut c = self.child.take().expect("node running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(15);
        while c.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < end, "the node did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How the nodes reach NATS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Plain TCP, user and password.
    Password,
    /// TLS (a test CA's certificate), and an nkey made by `nats-nkey`; the
    /// nodes also send a certificate of their shared key from the
    /// project's own CA (`ca sign`).
    TlsNkeyAndCertificate,
}

/// A NATS server, three nodes sharing one data directory (so one server
/// key and one registry file), and the registered users.
struct Cluster {
    dir: tempfile::TempDir,
    nats: Nats,
    data: PathBuf,
    key: String,
    /// The node flags that reach NATS.
    link_args: Vec<String>,
    /// The project CA's public key, with `Link::TlsNkeyAndCertificate`.
    ca_key: Option<String>,
    /// The nodes' `--nats-node-ttl-ms`.
    node_ttl_ms: u64,
    /// The nodes' `--rate-listings`.
    rate_listings: &'static str,
    nodes: Vec<Node>,
    users: Vec<User>,
}

/// Runs `cmd`; its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A test CA and a certificate for NATS at 127.0.0.1, made with openssl:
/// (CA certificate, server certificate, server key).
fn nats_tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_key, ca, key, csr, cert, ext) = (
        dir.join("tls-ca.key"),
        dir.join("tls-ca.pem"),
        dir.join("nats.key"),
        dir.join("nats.csr"),
        dir.join("nats.pem"),
        dir.join("nats.ext"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca)
            .args(["-days", "2", "-subj", "/CN=secureCom test NATS CA"]),
    );
    run_ok(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", "/CN=127.0.0.1"]),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .args(["-CAcreateserial", "-days", "2", "-out"])
            .arg(&cert)
            .arg("-extfile")
            .arg(&ext),
    );
    (ca, cert, key)
}

impl Cluster {
    fn start(program: PathBuf, names: &[&str]) -> Cluster {
        Self::start_with(program, names, Link::Password)
    }

    fn start_with(program: PathBuf, names: &[&str], link: Link) -> Cluster {
        Self::start_with_ttl(program, names, link, NODE_TTL_MS)
    }

    fn start_with_ttl(program: PathBuf, names: &[&str], link: Link, node_ttl_ms: u64) -> Cluster {
        // The tests list often while presence converges.
        Self::start_with_options(program, names, link, node_ttl_ms, "600:100")
    }

    /// `rate_listings`: the nodes' `--rate-listings`.
    fn start_with_options(
        program: PathBuf,
        names: &[&str],
        link: Link,
        node_ttl_ms: u64,
        rate_listings: &'static str,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let data = d.join("server");
        let key = securecom_tests::init_server(&data);
        let (nats, link_args, ca_key) = match link {
            Link::Password => {
                std::fs::write(d.join("nats-password"), NODE_PASSWORD).expect("password file");
                let identity = format!(r#"user: "{NODE_USER}", password: "{NODE_PASSWORD}""#);
                let nats = Nats::start(program, d, &identity, "");
                let args = vec![
                    "--nats".into(),
                    nats.url(),
                    "--nats-user".into(),
                    NODE_USER.into(),
                    "--nats-password-file".into(),
                    d.join("nats-password").display().to_string(),
                ];
                (nats, args, None)
            }
            Link::TlsNkeyAndCertificate => {
                let seed = d.join("nats.nkey");
                let public = run_ok(
                    Command::new(server_bin())
                        .arg("nats-nkey")
                        .arg("--seed-file")
                        .arg(&seed),
                );
                let (tls_ca, cert, tls_key) = nats_tls_files(d);
                let tls = format!(
                    r#"tls {{ cert_file: "{}", key_file: "{}" }}"#,
                    cert.display(),
                    tls_key.display()
                );
                let identity = format!(r#"nkey: "{}""#, public.trim());
                let nats = Nats::start(program, d, &identity, &tls);
                let args = vec![
                    "--nats".into(),
                    format!("tls://127.0.0.1:{}", nats.port),
                    "--nats-ca".into(),
                    tls_ca.display().to_string(),
                    "--nats-nkey-file".into(),
                    seed.display().to_string(),
                ];
                // The project's CA certifies the shared server key; every
                // node sends the certificate (`server.cert` in the data dir).
                let ca_dir = d.join("ca");
                let ca_public = run_ok(
                    Command::new(server_bin())
                        .args(["ca", "--ca-dir"])
                        .arg(&ca_dir)
                        .args(["init", "--no-passphrase"]),
                );
                run_ok(
                    Command::new(server_bin())
                        .args(["ca", "--ca-dir"])
                        .arg(&ca_dir)
                        .args(["sign", "--name", "127.0.0.1", "--server-key", &key, "--out"])
                        .arg(data.join("server.cert")),
                );
                (nats, args, Some(ca_public.trim().to_string()))
            }
        };
        let users = names
            .iter()
            .map(|n| {
                let u = User::new(dir.path(), n);
                let out = Command::new(server_bin())
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["add-user", n, &u.public])
                    .output()
                    .expect("add-user");
                assert!(out.status.success(), "add-user {n}");
                u
            })
            .collect();
        let mut c = Cluster {
            dir,
            nats,
            data,
            key,
            link_args,
            ca_key,
            node_ttl_ms,
            rate_listings,
            nodes: Vec::new(),
            users,
        };
        for i in 0..3 {
            let node = c.start_node(i);
            c.nodes.push(node);
        }
        c
    }

    fn start_node(&self, i: usize) -> Node {
        let log = self.dir.path().join(format!("node{i}.log"));
        let mut extra = self.link_args.clone();
        extra.extend([
            "--nats-heartbeat-ms".into(),
            HEARTBEAT_MS.to_string(),
            "--nats-node-ttl-ms".into(),
            self.node_ttl_ms.to_string(),
            "--rate-listings".into(),
            self.rate_listings.into(),
            // The operator's endpoint (the NATS link's state is on it).
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
        ]);
        let (child, addr) = run_server(&self.data, "127.0.0.1:0", "debug", &extra, &log);
        Node {
            child: Some(child),
            addr,
            log,
        }
    }

    fn user(&self, name: &str) -> &User {
        self.users
            .iter()
            .find(|u| u.name == name)
            .expect("a registered user")
    }

    /// `name` logs in to node `i`.
    fn login(&self, i: usize, name: &str) -> Client {
        let u = self.user(name);
        Client::spawn_logged_in(
            self.nodes[i].addr,
            &self.key,
            &u.name,
            &u.key_file,
            "127.0.0.1:0",
        )
    }

    /// `name` logs in to node `i`, trusting the project's CA (not pinning).
    fn login_trusting_ca(&self, i: usize, name: &str) -> Client {
        let u = self.user(name);
        let ca = self.ca_key.as_deref().expect("a cluster with a CA");
        Client::spawn_trusting(
            self.nodes[i].addr,
            &["--ca-key", ca],
            &u.name,
            &u.key_file,
            "127.0.0.1:0",
        )
        .logged_in()
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            s.push_str(&format!("--- node {i}:\n{}\n", n.log()));
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failed test shows what the nodes said.
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Lists until `client` sees exactly `names` (presence converges in a
/// few heartbeats); fails after 10 s.
fn wait_for_users(client: &mut Client, names: &[&str], cluster: &Cluster) {
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = Vec::new();
    while Instant::now() < end {
        last = client.users();
        if last == names {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{} sees {last:?}, not {names:?}\n{}",
        client.name,
        cluster.logs()
    );
}

fn refusal(client: &mut Client) -> Value {
    client.expect("chat_refused")
}

/// A raw NATS client (the text protocol), to watch the bus or to try to
/// inject: `CONNECT`, then whatever the test writes; everything the server
/// sends is kept.
struct RawNats {
    stream: TcpStream,
    received: Arc<Mutex<Vec<u8>>>,
    /// Set when the server closed the connection.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl RawNats {
    fn connect(port: u16, credentials: Option<(&str, &str)>) -> RawNats {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to NATS");
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mut rd, got, eof) = (
            stream.try_clone().expect("clone"),
            received.clone(),
            closed.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = rd.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
            eof.store(true, std::sync::atomic::Ordering::Release);
        });
        let mut c = RawNats {
            stream,
            received,
            closed,
        };
        let auth = match credentials {
            Some((u, p)) => format!(r#","user":"{u}","pass":"{p}""#),
            None => String::new(),
        };
        c.write(&format!(
            "CONNECT {{\"verbose\":true,\"pedantic\":false,\"protocol\":1{auth}}}\r\n"
        ));
        c
    }

    fn write(&mut self, s: &str) {
        let _ = self.stream.write_all(s.as_bytes());
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().expect("lock")).into_owned()
    }

    /// Waits (up to 5 s) until the server has closed the connection.
    fn wait_closed(&self) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if self.closed.load(std::sync::atomic::Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits (up to 5 s) until the server has sent `what`.
    fn wait_for(&self, what: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if self.text().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

#[test]
fn users_on_three_nodes_list_chat_and_are_refused_as_on_one() {
    let program = nats_or_skip!();
    let c = Cluster::start(program, &["alice", "bob", "carol", "dave", "erin"]);
    // Everything on the bus, as a node (a curious one) would see it.
    let mut tap = RawNats::connect(c.nats.port, Some((NODE_USER, NODE_PASSWORD)));
    tap.write("SUB securecom.> 1\r\nPING\r\n");
    assert!(tap.wait_for("PONG"), "tap: {}", tap.text());

    let mut alice = c.login(0, "alice");
    let mut bob = c.login(1, "bob");
    let mut carol = c.login(2, "carol");
    wait_for_users(&mut alice, &["alice", "bob", "carol"], &c);
    wait_for_users(&mut carol, &["alice", "bob", "carol"], &c);

    // A chat across nodes, both ways, then left and opened the other way.
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "secret-across-nodes-1");
    say(&mut bob, &mut alice, "secret-across-nodes-2");
    // Busy: carol (node 2) asks bob (node 1), who chats with alice (node 0).
    carol.send("/chat bob");
    assert_eq!(refusal(&mut carol)["reason"], "busy");
    bob.expect_where("refused busy", |v| {
        v["event"] == "refused_busy" && v["from"] == "carol"
    });
    say(&mut alice, &mut bob, "still here");
    alice.send("/leave");
    alice.expect_where("left", |v| {
        v["event"] == "chat_ended" && v["reason"] == "left"
    });
    bob.expect_where("peer closed", |v| {
        v["event"] == "chat_ended" && v["reason"] == "peer_closed" && v["undelivered"] == 0
    });
    open_chat(&mut bob, &mut alice);
    say(&mut bob, &mut alice, "the other way");
    say(&mut alice, &mut bob, "and back");

    // Declined across nodes, then too soon.
    carol.send("/chat alice");
    let busy = refusal(&mut carol);
    assert_eq!(busy["reason"], "busy", "alice chats with bob");
    bob.send("/leave");
    alice.expect("chat_ended");
    carol.send("/chat erin");
    assert_eq!(refusal(&mut carol)["reason"], "offline");
    carol.send("/chat zed");
    assert_eq!(refusal(&mut carol)["reason"], "unknown_user");
    let mut erin = c.login(1, "erin");
    wait_for_users(&mut carol, &["alice", "bob", "carol", "erin"], &c);
    carol.send("/chat erin");
    erin.expect("chat_request");
    erin.send("/refuse");
    let v = refusal(&mut carol);
    assert_eq!(
        (v["user"].as_str(), v["reason"].as_str()),
        (Some("erin"), Some("declined"))
    );
    carol.send("/chat erin");
    assert_eq!(refusal(&mut carol)["reason"], "too_soon");
    // A request withdrawn across nodes.
    alice.send("/chat carol");
    carol.expect("chat_request");
    alice.send("/leave");
    let v = carol.expect("request_withdrawn");
    assert_eq!(v["from"], "alice");

    // Logged out on one node: gone from every node's list.
    erin.send("/quit");
    assert!(erin.wait().success());
    wait_for_users(&mut alice, &["alice", "bob", "carol"], &c);

    // NATS carried the chats' ciphertext but never their text.
    std::thread::sleep(Duration::from_millis(300));
    let seen = tap.text();
    assert!(seen.contains("MSG securecom.node."), "the tap saw no relay");
    for text in [
        "secret-across-nodes",
        "the other way",
        "and back",
        "still here",
    ] {
        assert!(!seen.contains(text), "'{text}' crossed NATS in the clear");
    }
}

#[test]
fn a_login_on_another_node_replaces_the_session() {
    let program = nats_or_skip!();
    let c = Cluster::start(program, &["alice", "bob"]);
    let mut bob = c.login(2, "bob");
    let mut alice_a = c.login(0, "alice");
    wait_for_users(&mut bob, &["alice", "bob"], &c);
    let mut alice_b = c.login(1, "alice");
    let closed = alice_a.expect("closed");
    assert_eq!(closed["reason"], "replaced", "{closed}");
    alice_a.wait();
    // One alice in the cluster, and she is the one on node 1.
    wait_for_users(&mut bob, &["alice", "bob"], &c);
    std::thread::sleep(Duration::from_millis(3 * HEARTBEAT_MS));
    assert_eq!(bob.users(), ["alice", "bob"]);
    open_chat(&mut bob, &mut alice_b);
    say(&mut bob, &mut alice_b, "found the new one");
    say(&mut alice_b, &mut bob, "yes");
    // And back to node 0: node 1's session is replaced in turn.
    let mut alice_c = c.login(0, "alice");
    assert_eq!(alice_b.expect("closed")["reason"], "replaced");
    bob.expect("chat_ended");
    open_chat(&mut alice_c, &mut bob);
    say(&mut alice_c, &mut bob, "third time");
}

#[test]
fn a_node_killed_mid_chat_ends_its_chats_and_leaves_the_list() {
    let program = nats_or_skip!();
    let mut c = Cluster::start(program, &["alice", "bob", "carol", "dave", "erin", "frank"]);
    let mut alice = c.login(0, "alice");
    let mut bob = c.login(1, "bob");
    let mut carol = c.login(2, "carol");
    let mut dave = c.login(1, "dave");
    let mut erin = c.login(2, "erin");
    let mut frank = c.login(1, "frank");
    let all = ["alice", "bob", "carol", "dave", "erin", "frank"];
    wait_for_users(&mut alice, &all, &c);
    wait_for_users(&mut erin, &all, &c);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "before the crash");
    // Pending across the crash: carol's request to dave (node 1, who does
    // not answer) and frank's request (node 1) to erin (node 2, who does
    // not answer either).
    carol.send("/chat dave");
    dave.expect("chat_request");
    frank.send("/chat erin");
    erin.expect("chat_request");
    let killed = Instant::now();
    c.nodes[1].kill();
    bob.expect("disconnected");
    // Within the TTL plus a heartbeat (and a margin for a loaded machine).
    let ended = alice.expect_where("ended by the server", |v| {
        v["event"] == "chat_ended" && v["reason"] == "ended_by_server"
    });
    let bound = Duration::from_millis(NODE_TTL_MS + HEARTBEAT_MS) + Duration::from_secs(3);
    assert!(
        killed.elapsed() < bound,
        "PeerLeft after {:?}: {ended}",
        killed.elapsed()
    );
    // The pending requests end too, long before their 60 s timeout.
    let v = refusal(&mut carol);
    assert_eq!(
        (v["user"].as_str(), v["reason"].as_str()),
        (Some("dave"), Some("offline")),
        "{v}"
    );
    let v = erin.expect("request_withdrawn");
    assert_eq!(v["from"], "frank");
    assert!(killed.elapsed() < bound + Duration::from_secs(1));
    wait_for_users(&mut carol, &["alice", "carol", "erin"], &c);
    // Bob logs in again at once, on another node, and chats.
    let mut bob = c.login(2, "bob");
    wait_for_users(&mut alice, &["alice", "bob", "carol", "erin"], &c);
    open_chat(&mut bob, &mut alice);
    say(&mut bob, &mut alice, "back on node 2");
    say(&mut alice, &mut bob, "welcome");
}

#[test]
fn nats_restarted_mid_session_keeps_sessions_and_same_node_chats() {
    let program = nats_or_skip!();
    let mut c = Cluster::start(program, &["alice", "bob", "carol"]);
    let mut alice = c.login(0, "alice");
    let mut bob = c.login(0, "bob");
    let mut carol = c.login(1, "carol");
    wait_for_users(&mut carol, &["alice", "bob", "carol"], &c);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "same node");
    // The operator sees the link up, and the node ready.
    c.nodes[0].wait_link(200, 1);

    c.nats.kill();
    // ... then down: the node is not ready (it serves its own users, but a
    // load balancer's health check should send new ones elsewhere).
    c.nodes[0].wait_link(503, 0);
    // The chat on one node goes on.
    for i in 0..5 {
        say(&mut alice, &mut bob, &format!("without NATS {i}"));
        say(&mut bob, &mut alice, &format!("still without NATS {i}"));
    }
    // A cross-node request is refused at once (not left hanging): the user
    // is unreachable while the link is down, offline once its node expired.
    let asked = Instant::now();
    carol.send("/chat bob");
    let v = refusal(&mut carol);
    assert!(
        v["reason"] == "unreachable" || v["reason"] == "offline",
        "{v}"
    );
    assert!(asked.elapsed() < Duration::from_secs(5));
    // Node 0 expires from node 1's view without NATS.
    wait_for_users(&mut carol, &["carol"], &c);

    c.nats.restart();
    c.nodes[0].wait_link(200, 1);
    // The nodes reconnect and rebuild the cluster's list by themselves.
    wait_for_users(&mut carol, &["alice", "bob", "carol"], &c);
    wait_for_users(&mut alice, &["alice", "bob", "carol"], &c);
    say(&mut alice, &mut bob, "NATS is back");
    alice.send("/leave");
    bob.expect("chat_ended");
    open_chat(&mut carol, &mut alice);
    say(&mut carol, &mut alice, "across nodes again");
    say(&mut alice, &mut carol, "yes");
    // No session was lost.
    for client in [&alice, &bob, &carol] {
        assert!(
            !client
                .seen
                .iter()
                .any(|v| v["event"] == "disconnected" || v["event"] == "closed"),
            "{}: {:?}",
            client.name,
            client.seen
        );
    }
    let logs = c.logs();
    assert!(logs.contains("NATS link down"), "{logs}");
}

#[test]
fn a_nats_client_without_the_cluster_credentials_cannot_inject() {
    let program = nats_or_skip!();
    let c = Cluster::start(program, &["alice", "bob"]);
    let mut alice = c.login(0, "alice");
    let mut bob = c.login(1, "bob");
    wait_for_users(&mut alice, &["alice", "bob"], &c);

    // No credentials: not let in.
    let mut anonymous = RawNats::connect(c.nats.port, None);
    anonymous.write("PUB securecom.presence.0000000000000001 1\r\nx\r\nPING\r\n");
    assert!(
        anonymous.wait_for("Authorization Violation"),
        "anonymous: {}",
        anonymous.text()
    );
    // Wrong password: the same.
    let mut wrong = RawNats::connect(c.nats.port, Some((NODE_USER, "guess")));
    wrong.write("PING\r\n");
    assert!(
        wrong.wait_for("Authorization Violation"),
        "{}",
        wrong.text()
    );
    // Another NATS user: in, but refused the cluster's subjects, both to
    // publish (inject) and to subscribe (eavesdrop).
    let mut guest = RawNats::connect(c.nats.port, Some((GUEST_USER, GUEST_PASSWORD)));
    guest.write("PUB securecom.node.0000000000000001.0000000000000002 1\r\nx\r\n");
    guest.write("SUB securecom.> 1\r\nPING\r\n");
    assert!(guest.wait_for("PONG"), "guest: {}", guest.text());
    let text = guest.text();
    assert!(
        text.contains("Permissions Violation for Publish to \"securecom.node.")
            || text.contains("Permissions Violation for Publish to securecom.node."),
        "guest: {text}"
    );
    assert!(
        text.contains("Permissions Violation for Subscription"),
        "guest: {text}"
    );

    // Garbage from a node with the credentials never harms a node: it is
    // dropped, and the cluster goes on.
    let mut node = RawNats::connect(c.nats.port, Some((NODE_USER, NODE_PASSWORD)));
    node.write("PUB securecom.presence.00000000000000ff 5\r\n\x01\x11\x7f\x7f\x7f\r\n");
    node.write("PUB securecom.presence.nonsense 1\r\n\x00\r\nPING\r\n");
    assert!(node.wait_for("PONG"), "{}", node.text());
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "unharmed");
    for n in &c.nodes {
        assert!(!n.log().contains("panicked"), "{}", n.log());
    }
}

#[test]
fn tls_nkey_and_ca_certified_nodes_with_pinned_and_ca_clients() {
    let program = nats_or_skip!();
    if Command::new("openssl").arg("version").output().is_err() {
        skip("openssl is not installed (apt-get install openssl): no test certificate for NATS");
        return;
    }
    let c = Cluster::start_with(
        program,
        &["alice", "bob", "carol"],
        Link::TlsNkeyAndCertificate,
    );
    // One server key for all nodes: a client that pins it and one that
    // trusts the CA reach any node.
    let mut alice = c.login(0, "alice");
    let mut bob = c.login_trusting_ca(1, "bob");
    let mut carol = c.login_trusting_ca(2, "carol");
    wait_for_users(&mut alice, &["alice", "bob", "carol"], &c);
    wait_for_users(&mut carol, &["alice", "bob", "carol"], &c);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "over TLS, pinned to CA");
    say(&mut bob, &mut alice, "CA to pinned");
    bob.send("/leave");
    alice.expect("chat_ended");
    open_chat(&mut carol, &mut bob);
    say(&mut carol, &mut bob, "CA to CA, node 2 to node 1");
    // The link is TLS: a plain-text client (even one that knew a
    // password) is turned away without a word after the greeting.
    let mut plain = RawNats::connect(c.nats.port, Some((NODE_USER, NODE_PASSWORD)));
    plain.write("PUB securecom.presence.0000000000000001 1\r\nx\r\nPING\r\n");
    assert!(plain.wait_closed(), "plain: {}", plain.text());
    let text = plain.text();
    assert!(text.contains("\"tls_required\":true"), "plain: {text}");
    assert!(
        !text.contains("+OK") && !text.contains("PONG"),
        "plain: {text}"
    );
    for n in &c.nodes {
        assert!(n.log().contains("NATS link up"), "{}", n.log());
    }
}

#[test]
fn a_node_stopped_gracefully_is_left_at_once_not_after_its_ttl() {
    let program = nats_or_skip!();
    // A TTL far longer than the test's wait: only the stopping node's own
    // last messages can end the chat in time.
    let mut c = Cluster::start_with_ttl(program, &["alice", "bob"], Link::Password, 60_000);
    let mut alice = c.login(0, "alice");
    let mut bob = c.login(1, "bob");
    wait_for_users(&mut alice, &["alice", "bob"], &c);
    wait_for_users(&mut bob, &["alice", "bob"], &c);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "see you");
    c.nodes[1].terminate();
    assert_eq!(bob.expect("closed")["reason"], "shutdown");
    alice.expect_where("ended by the server", |v| {
        v["event"] == "chat_ended" && v["reason"] == "ended_by_server"
    });
    wait_for_users(&mut alice, &["alice"], &c);
}

#[test]
fn a_node_started_while_nats_is_down_serves_alone_then_joins() {
    let program = nats_or_skip!();
    let mut c = Cluster::start(program, &["alice", "bob", "carol"]);
    let mut alice = c.login(0, "alice");
    c.nats.kill();
    let node = c.start_node(3);
    c.nodes.push(node);
    // It tried NATS and serves anyway.
    let end = Instant::now() + Duration::from_secs(10);
    while !c.nodes[3].log().contains("cannot reach NATS") {
        assert!(Instant::now() < end, "{}", c.nodes[3].log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut bob = c.login(3, "bob");
    let mut carol = c.login(3, "carol");
    assert_eq!(bob.users(), ["bob", "carol"]);
    open_chat(&mut bob, &mut carol);
    say(&mut bob, &mut carol, "alone on node 3");
    c.nats.restart();
    wait_for_users(&mut alice, &["alice", "bob", "carol"], &c);
    wait_for_users(&mut bob, &["alice", "bob", "carol"], &c);
    bob.send("/leave");
    carol.expect("chat_ended");
    open_chat(&mut alice, &mut carol);
    say(&mut alice, &mut carol, "node 0 to node 3");
}

#[test]
fn a_registry_change_takes_effect_on_every_node() {
    let program = nats_or_skip!();
    let c = Cluster::start(program, &["alice", "bob", "carol"]);
    let mut alice = c.login(0, "alice");
    let mut bob = c.login(1, "bob");
    wait_for_users(&mut bob, &["alice", "bob"], &c);
    // One registry for all nodes: a removal ends alice's session on node 0
    // and takes her off node 1's list.
    run_ok(
        Command::new(server_bin())
            .arg("--data-dir")
            .arg(&c.data)
            .args(["remove-user", "alice"]),
    );
    assert_eq!(alice.expect("closed")["reason"], "revoked");
    wait_for_users(&mut bob, &["bob"], &c);
    // An addition lets a new user in on any node, seen by all.
    let dave = User::new(c.dir.path(), "dave");
    run_ok(
        Command::new(server_bin())
            .arg("--data-dir")
            .arg(&c.data)
            .args(["add-user", "dave", &dave.public]),
    );
    std::thread::sleep(Duration::from_millis(600));
    let mut dave_client = Client::spawn_logged_in(
        c.nodes[2].addr,
        &c.key,
        "dave",
        &dave.key_file,
        "127.0.0.1:0",
    );
    wait_for_users(&mut bob, &["bob", "dave"], &c);
    open_chat(&mut dave_client, &mut bob);
    say(&mut dave_client, &mut bob, "new here");
}

/// `client` says `text` to the device, whose reply must satisfy `check`.
fn ask_device(client: &mut Client, text: &str, check: impl Fn(&str) -> bool) {
    client.send(text);
    let m = client.expect("message");
    let reply = m["text"].as_str().unwrap_or_default();
    assert!(check(reply), "reply to {text:?}: {m}");
}

#[test]
fn the_device_in_qemu_on_one_node_chats_with_users_on_others() {
    let program = nats_or_skip!();
    qemu::require_qemu();
    const DEVICE: &str = "sensor1";
    let c = Cluster::start(program, &["alice", "bob"]);
    let (_secret, secret_hex, public_hex) = qemu::device_key();
    run_ok(
        Command::new(server_bin())
            .arg("--data-dir")
            .arg(&c.data)
            .args(["add-user", DEVICE, &public_hex]),
    );
    let elf = qemu::firmware();
    let daemon_port = qemu::free_port();
    let config = c.dir.path().join("device.cfg");
    std::fs::write(
        &config,
        format!(
            "user {DEVICE}\nkey {secret_hex}\nserver_key {}\ndaemon_port {daemon_port}\n\
             accept alice,bob\ncall bob\n",
            c.key
        ),
    )
    .expect("device.cfg");
    // The device logs in to node 0; alice is on node 1, bob on node 2.
    let mut device = qemu::Qemu::boot(
        &elf,
        c.dir.path(),
        c.nodes[0].addr.port(),
        qemu::RequestUart::Listen(daemon_port),
        &config,
        &[],
    );
    let mut alice = c.login(1, "alice");
    let mut bob = c.login(2, "bob");
    let end = Instant::now() + Duration::from_secs(30);
    while !alice.users().iter().any(|u| u == DEVICE) {
        assert!(Instant::now() < end, "the device never came online");
        device.assert_running("while alice waited for it");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ready = qemu::request_device(
        &mut alice,
        DEVICE,
        Duration::from_secs(30),
        Duration::from_millis(200),
    );
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    assert_eq!(ready["peer"], DEVICE, "{ready}");
    ask_device(&mut alice, "temp?", |r| {
        r.starts_with("temp ") && r.ends_with(" C")
    });
    ask_device(&mut alice, "across nodes", |r| r == "echo: across nodes");
    // `call me`: the device leaves alice and asks bob (node 2) itself.
    ask_device(&mut alice, "call me", |r| r == "calling bob");
    alice.expect_where("the device left", |v| {
        v["event"] == "chat_ended" && v["peer"] == DEVICE
    });
    let req = bob.expect("chat_request");
    assert_eq!(req["from"], DEVICE, "{req}");
    bob.send("/accept");
    bob.expect("chat_ready");
    let hello = bob.expect("message");
    assert!(
        hello["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("hello, this is {DEVICE}")),
        "{hello}"
    );
    ask_device(&mut bob, "temp?", |r| {
        r.starts_with("temp ") && r.ends_with(" C")
    });
    device.assert_running("at the end");
}

#[test]
fn without_nats_the_server_runs_alone() {
    // The default: no `--nats`, no NATS needed, nothing of the cluster runs.
    let (_d, server, u) = securecom_tests::server_with_users(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    open_chat(&mut alice, &mut bob);
    say(&mut alice, &mut bob, "alone");
    assert!(!server.log().contains("cluster"), "{}", server.log());
}

/// The per-user rate memory of PROTOCOL.md 9.1 holds in the whole cluster:
/// a user who spent her listings on node 0 and logs in on node 1 (replacing
/// her session there) finds them spent on node 1 too, not refilled.
#[test]
fn a_user_moving_to_another_node_keeps_her_spent_rates() {
    let program = nats_or_skip!();
    // One listing a minute, two at once: nothing refills during the test.
    let c = Cluster::start_with_options(
        program,
        &["alice", "bob"],
        Link::Password,
        NODE_TTL_MS,
        "1:2",
    );
    let mut bob = c.login(1, "bob");
    let mut alice = c.login(0, "alice");
    // bob spends nothing: his first listing on node 1 is answered.
    let _ = bob.users();
    // alice spends both listings on node 0, and the next is refused.
    let _ = alice.users();
    let _ = alice.users();
    alice.send("/users");
    let v = alice.expect_where("slow_down", |v| v["event"] == "server_error");
    assert_eq!(v["code"], "slow_down", "{v}");

    // alice logs in on node 1: her session on node 0 is replaced, and its
    // state reaches node 1 (published as it ends: within milliseconds).
    // (Without the hand-over, the wait below fails, and so does the
    // assertion after it: her listings come back refilled.)
    let mut alice1 = c.login(1, "alice");
    alice.expect_where("replaced", |v| {
        v["event"] == "closed" && v["reason"] == "replaced"
    });
    // Node 1 says when it merged the state into alice's session there.
    let end = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&c.nodes[1].log)
        .unwrap_or_default()
        .contains("rate state merged from another node")
    {
        assert!(Instant::now() < end, "node 1 never merged alice's rates");
        std::thread::sleep(Duration::from_millis(50));
    }
    alice1.send("/users");
    let v = alice1.expect_where("a listing or its refusal", |v| {
        v["event"] == "server_error" || v["event"] == "users"
    });
    assert_eq!(
        (v["event"].as_str(), v["code"].as_str()),
        (Some("server_error"), Some("slow_down")),
        "alice's listings were refilled by moving to node 1: {v}"
    );
    // A control: bob, on node 1 all along, still has his second listing.
    bob.send("/users");
    let v = bob.expect_where("a listing or its refusal", |v| {
        v["event"] == "server_error" || v["event"] == "users"
    });
    assert_eq!(v["event"], "users", "{v}");
}
