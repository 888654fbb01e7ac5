//! The real programs inside a [`Netns`] topology: the server in `srv`,
//! listening on its address there (IPv4 or IPv6), and scripted clients in
//! any namespace, their daemon listening on every address of their family
//! (port 0: a free port, at least 32768, above the server's default dial
//! policy minimum of 1024) so that the server can dial it wherever routing
//! allows.
//!
//! Keys, the server's data directory and the registry are made as the other
//! process tests make them (`securecom_tests`: `init_server`, `User::new`,
//! `add-user`): those are file operations, run in the host's namespace.
//! Only `securecom-server run` and `securecom-client chat` are started
//! through `ip netns exec` (the program is then the child process itself:
//! `ip` execs it, so killing the child kills the program).
//!
//! The server listens on a non-loopback address, so its default dial policy
//! applies unchanged (ports from 1024, no loopback daemons): the tests see
//! what a real deployment does.

// Helpers for issue 12's coming tests too: not all of them are used yet.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use securecom_tests::{
    client_bin, client_chat_args, init_server, server_bin, server_run_args, spawn_server_command,
    Client, User,
};

use super::netns::{Family, Netns, Ns};

/// The real server, running in a topology's `srv` namespace.
pub struct NsServer {
    child: Option<Child>,
    /// Where it listens (`srv`'s address in the family it was started in).
    pub addr: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
    /// Its public key (hex), for clients to pin.
    pub key: String,
    log: PathBuf,
    extra: Vec<String>,
}

impl NsServer {
    /// Initializes a data directory under `dir` and starts the server in
    /// `net`'s `srv`, on `srv`'s address in `family` (a free port), with
    /// `--log debug` and the `extra` `run` arguments.
    pub fn start(net: &Netns, dir: &Path, family: Family, extra: &[&str]) -> NsServer {
        let data = dir.join("server");
        let key = init_server(&data);
        let mut s = NsServer {
            child: None,
            addr: SocketAddr::new(net.srv_addr(family), 0),
            data,
            key,
            log: dir.join("server.log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn(net);
        s
    }

    fn spawn(&mut self, net: &Netns) {
        let listen = self.addr.to_string();
        let cmd = net.exec(
            Ns::Srv,
            server_bin(),
            server_run_args(&self.data, &listen, "debug", &self.extra),
        );
        let (child, addr) = spawn_server_command(cmd, &self.log);
        self.addr = addr;
        self.child = Some(child);
    }

    /// Registers `name` with public key `key` (hex).
    pub fn add_user(&self, name: &str, key: &str) {
        let out = Command::new(server_bin())
            .arg("--data-dir")
            .arg(&self.data)
            .args(["add-user", name, key])
            .output()
            .expect("run securecom-server add-user");
        assert!(
            out.status.success(),
            "add-user {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a key for `name` under `dir` and registers it.
    pub fn user(&self, dir: &Path, name: &str) -> User {
        let u = User::new(dir, name);
        self.add_user(name, &u.public);
        u
    }

    /// Kills the server (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again, in `net`'s `srv`, on the same address and port.
    pub fn restart(&mut self, net: &Netns) {
        self.kill();
        self.spawn(net);
    }

    /// Everything the server logged so far (without terminal colours).
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// True if the server logged a connection from address `ip` (its
    /// `connected` line, `peer=ADDR:PORT`): where it saw a client come from.
    pub fn saw_peer(&self, ip: IpAddr) -> bool {
        let peer = format!("peer={}", addr_prefix(ip));
        self.log()
            .lines()
            .any(|l| l.contains("connected") && l.contains(&peer))
    }

    /// How many client-dialled request channels the server handed to a
    /// session from address `ip` (its `client-dialled request channel` line,
    /// `peer=ADDR:PORT`).
    pub fn request_channels_from(&self, ip: IpAddr) -> usize {
        let peer = format!("peer={}", addr_prefix(ip));
        self.log()
            .lines()
            .filter(|l| l.contains("client-dialled request channel") && l.contains(&peer))
            .count()
    }

    /// How many client-dialled request channels the server handed to a
    /// session, from anywhere.
    pub fn request_channels(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("client-dialled request channel"))
            .count()
    }

    /// How many times the server dialled a daemon at address `ip` (its
    /// `dialling daemon` line, `addr=ADDR:PORT`).
    pub fn dials_to(&self, ip: IpAddr) -> usize {
        let addr = format!("addr={}", addr_prefix(ip));
        self.log()
            .lines()
            .filter(|l| l.contains("dialling daemon") && l.contains(&addr))
            .count()
    }

    /// How many times the server dialled a daemon, anywhere.
    pub fn dials(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("dialling daemon"))
            .count()
    }

    /// The server's log lines that name address `ip` with a port (as a
    /// peer, a dialled daemon, anything): none means the server never saw it.
    pub fn lines_naming(&self, ip: IpAddr) -> Vec<String> {
        let addr = addr_prefix(ip);
        self.log()
            .lines()
            .filter(|l| l.contains(&addr))
            .map(String::from)
            .collect()
    }
}

/// `ip` as it starts a socket address in a log line, up to the port's
/// colon: `10.1.2.3:` or `[fd00::1]:` (so that `10.1.2.3` does not match
/// `10.1.2.30:...`).
fn addr_prefix(ip: IpAddr) -> String {
    let a = SocketAddr::new(ip, 0).to_string();
    a.strip_suffix(":0").unwrap_or(&a).to_string() + ":"
}

impl Drop for NsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `--daemon-listen` on every address of `family`, on a free port.
pub fn daemon_any(family: Family) -> String {
    SocketAddr::new(family.unspecified(), 0).to_string()
}

/// Starts `user` as a scripted client in `net`'s namespace `ns`, against
/// `server` (pinning its key), its daemon on every address of the server's
/// family (a free port). Returns at once (see [`login`]).
pub fn client(net: &Netns, ns: Ns, server: &NsServer, user: &User) -> Client {
    let family = if server.addr.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    client_with(net, ns, server, user, &daemon_any(family), &[])
}

/// [`client`] with the daemon's listen address (`daemon_listen`, e.g.
/// `[::]:0` or the namespace's own address) and `extra` client flags (after
/// the standard ones: e.g. `--request-mode listen`).
pub fn client_with(
    net: &Netns,
    ns: Ns,
    server: &NsServer,
    user: &User,
    daemon_listen: &str,
    extra: &[&str],
) -> Client {
    let mut args = client_chat_args(
        server.addr,
        &["--server-key", &server.key],
        &user.name,
        &user.key_file,
        daemon_listen,
    );
    args.extend(extra.iter().map(std::ffi::OsString::from));
    Client::from_command(&user.name, net.exec(ns, client_bin(), args))
}

/// Waits for the client's login and the server's first verdict on its
/// daemon; returns that verdict (`reachable`).
pub fn daemon_verdict(c: &mut Client) -> bool {
    c.expect("logged_in");
    let v = c.expect("daemon");
    v["reachable"]
        .as_bool()
        .unwrap_or_else(|| panic!("{}: daemon event without reachable: {v}", c.name))
}

/// The `reachable` of every `daemon` event the client printed so far, in order.
pub fn daemon_events(c: &Client) -> Vec<bool> {
    c.seen
        .iter()
        .filter(|v| v["event"] == "daemon")
        .map(|v| {
            v["reachable"]
                .as_bool()
                .unwrap_or_else(|| panic!("daemon event: {v}"))
        })
        .collect()
}

/// Waits for the client's login and its fallback to the client-dialled
/// request channel (`--request-mode auto`, the default): the server's
/// first verdict is reachable=false (it cannot dial the daemon), the next
/// reachable=true (the channel the client opened itself works).
pub fn login_falls_back(c: &mut Client) {
    let first = daemon_verdict(c);
    assert!(
        !first,
        "{}: reachable at once: the topology lets the server in; events: {:?}",
        c.name, c.seen
    );
    let v = c.expect("daemon");
    assert_eq!(
        v["reachable"],
        true,
        "{}: no fallback to a client-dialled request channel: {v}\nstderr:\n{}",
        c.name,
        c.stderr()
    );
}

/// [`client`], then waits for the login and the daemon verdict.
pub fn login(net: &Netns, ns: Ns, server: &NsServer, user: &User) -> (Client, bool) {
    let mut c = client(net, ns, server, user);
    let reachable = daemon_verdict(&mut c);
    (c, reachable)
}

/// Logs out (`/quit`): the session is closed `logged_out` and the client exits 0.
pub fn logout(c: &mut Client) {
    c.send("/quit");
    c.expect_where("closed logged_out", |v| {
        v["event"] == "closed" && v["reason"] == "logged_out"
    });
    assert!(c.wait().success(), "{} did not exit 0", c.name);
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
