//! Real NAT, firewalls and plain routing on one machine, with network
//! namespaces (the recipe of `shared/netns-nat.md`, as a guard).
//!
//! One [`Netns`] is one topology of four namespaces:
//!
//! ```text
//!        the internet: one segment (bridge br0 in srv)        home's side
//!   [srv] br0 ──┬── s-nat ─── n-wan [nat] n-lan ────────────── h-lan [home]
//!               └── s-pub ─── p-wan [pub]
//!
//!   srv   10.A.W.1  fd00:P:N:1::1
//!   pub   10.A.W.3  fd00:P:N:1::3
//!   nat   10.A.W.2  fd00:P:N:1::2      10.A.H.1  fd00:P:N:2::1   (H = W + 1)
//!   home                               10.A.H.2  fd00:P:N:2::2   (default route: nat)
//! ```
//!
//! - `srv` runs the server; `pub` is another host on the server's side of
//!   the internet, for a user who is dialable whatever the mode (its own
//!   address, distinct from the server's, so that a daemon that accepts
//!   only the server's address can tell them apart, and a "stranger" in
//!   `pub` is not the server). `srv` and `pub` share one segment (a bridge
//!   in `srv`), so neither routes for the other.
//! - `nat` is the home router; `home` is the client behind it, whose only
//!   route is the default one through `nat`.
//! - [`Mode::Nat`]: `nat` masquerades everything leaving towards the
//!   internet (IPv4 and IPv6): the server sees `nat`'s address
//!   ([`Netns::nat_public`]), and `srv`/`pub` have no route to home's
//!   subnet (as on the internet, private addresses are not routed).
//! - [`Mode::Firewall`]: no NAT, `srv`/`pub` route home's subnet through
//!   `nat`, whose forward chain drops new connections towards home: only
//!   established/related traffic and new connections from home pass. The
//!   server sees home's real address, but its dial's SYN is dropped (the
//!   dial then waits for the server's own dial timeout).
//! - [`Mode::Open`]: plain routing both ways: home is dialable.
//!
//! Names are unique per topology: `scnat-PID-N-ROLE` (process id and a
//! counter of the process), so parallel tests and processes never share a
//! namespace. Each namespace is its own network stack, so topologies never
//! meet whatever their addresses; these still differ between topologies
//! (`A` = 200 + N % 50, `W` = 4 * (PID % 64); `P` = PID mod 65536, `N` in IPv6) so
//! that an address in a log tells which test it comes from. The
//! interfaces are created directly inside their namespaces (`ip -n NS link
//! add ... peer name ... netns OTHER`), never in the host's namespace, so
//! their short fixed names (at most 5 characters) cannot clash with
//! anything, and nothing is left on the host if a test dies half-way.
//! Dropping the guard (also on panic) kills whatever still runs inside the
//! namespaces (by pid, from `ip netns pids`) and deletes them, which
//! deletes their interfaces; namespaces left by a test process that was
//! killed (its pid gone) are deleted by the next topology made.
//!
//! [`Netns::new`] returns [`Skip`] (why) where namespaces cannot be made:
//! not root, `ip netns add` refused, or a tool missing (with the apt package
//! that has it). Every later failure panics with the command and its stderr.

// Helpers for issue 12's coming tests too: not all of them are used yet.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// One TCP connection `nat` tracks (a `conntrack -L` line), by its
/// original direction (the reply direction shows the NAT's rewrite).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// Seconds left before the entry is forgotten, if nothing passes.
    pub timeout: u32,
    /// The original source address and port (e.g. home's).
    pub src: IpAddr,
    pub sport: u16,
    /// The original destination address and port (e.g. the server's).
    pub dst: IpAddr,
    pub dport: u16,
    /// The whole line.
    pub line: String,
}

impl Tracked {
    /// `tcp 6 TIMEOUT STATE src=.. dst=.. sport=.. dport=.. src=..`: the
    /// first `src`/`dst`/`sport`/`dport` are the original direction's.
    fn parse(line: &str) -> Option<Tracked> {
        let mut words = line.split_whitespace();
        if words.next() != Some("tcp") {
            return None;
        }
        let timeout = words.nth(1)?.parse().ok()?;
        let first = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        Some(Tracked {
            timeout,
            src: first("src")?.parse().ok()?,
            sport: first("sport")?.parse().ok()?,
            dst: first("dst")?.parse().ok()?,
            dport: first("dport")?.parse().ok()?,
            line: line.to_string(),
        })
    }
}

/// What the `nat` namespace does between home and the internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Masquerade (IPv4 and IPv6): home is hidden behind `nat`'s address.
    Nat,
    /// No NAT; the forward chain drops new connections towards home.
    Firewall,
    /// Plain routing both ways: home is dialable.
    Open,
}

/// One of the topology's namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns {
    /// The server's host.
    Srv,
    /// The home router (NAT or firewall).
    Nat,
    /// The client behind the router.
    Home,
    /// Another host on the server's side: a user dialable in every mode.
    Pub,
}

impl Ns {
    const ALL: [Ns; 4] = [Ns::Srv, Ns::Nat, Ns::Home, Ns::Pub];

    fn role(self) -> &'static str {
        match self {
            Ns::Srv => "srv",
            Ns::Nat => "nat",
            Ns::Home => "home",
            Ns::Pub => "pub",
        }
    }
}

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// 10.A.W.0/24 (internet side) and 10.A.H.0/24 (home side).
    V4,
    /// fd00:P:N:1::/64 (internet side) and fd00:P:N:2::/64 (home side).
    V6,
}

impl Family {
    /// The unspecified address of the family (to listen on all addresses).
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Family::V6 => Ipv6Addr::UNSPECIFIED.into(),
        }
    }
}

/// Why the topology cannot be made here (the test is skipped).
#[derive(Debug, Clone)]
pub struct Skip(pub String);

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reports a skipped test: `SKIPPED: reason` on stdout (captured by the
/// test harness: shown with `--nocapture`) and straight to the process's
/// stderr (past the harness's capture, so it is seen in every run). With
/// `SECURECOM_NAT_REQUIRED` set (not empty, not `0`), e.g. in a CI that
/// installs what these tests need, a skip is a failure instead.
pub fn skip(reason: &Skip) {
    println!("SKIPPED: {reason}");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
    if std::env::var("SECURECOM_NAT_REQUIRED").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("SECURECOM_NAT_REQUIRED is set, and the topology cannot be made: {reason}");
    }
}

/// Tools the topology needs: (program, its version flag, apt package).
const TOOLS: [(&str, &str, &str); 4] = [
    ("ip", "-V", "iproute2"),
    ("nft", "--version", "nftables"),
    ("conntrack", "--version", "conntrack"),
    ("sysctl", "--version", "procps"),
];

// Interface names (inside their namespaces: see the module's doc).
/// In `srv`: the internet segment (a bridge) holding the server's addresses.
const SRV_BR: &str = "br0";
/// In `srv`: the bridge's port to `nat`.
const SRV_TO_NAT: &str = "s-nat";
/// In `srv`: the bridge's port to `pub`.
const SRV_TO_PUB: &str = "s-pub";
/// In `nat`: towards the internet.
pub const NAT_WAN: &str = "n-wan";
/// In `nat`: towards home.
pub const NAT_LAN: &str = "n-lan";
/// In `pub`.
const PUB_WAN: &str = "p-wan";
/// In `home`.
const HOME_LAN: &str = "h-lan";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A topology of four network namespaces; deleted when dropped.
pub struct Netns {
    mode: Mode,
    /// `scnat-PID-N`: the namespaces are `ID-srv`, `ID-nat`, ...
    id: String,
    /// 10.A.*.*
    a: u8,
    /// 10.A.W.0/24: the internet side; 10.A.(W+1).0/24: home's side.
    w: u8,
    /// fd00:P:N::/48
    p: u16,
    n: u16,
    /// The namespaces made so far (deleted at drop).
    made: Vec<String>,
}

impl Netns {
    /// Makes the topology in `mode`, or says why it cannot be made here.
    pub fn new(mode: Mode) -> Result<Netns, Skip> {
        check_root()?;
        for (tool, flag, package) in TOOLS {
            check_tool(tool, flag, package)?;
        }
        sweep_stale();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut net = Netns {
            mode,
            id: format!("scnat-{pid}-{n}"),
            a: 200 + (n % 50) as u8,
            w: ((pid % 64) * 4) as u8,
            p: (pid & 0xffff) as u16,
            n: (n & 0xffff) as u16,
            made: Vec::new(),
        };
        for ns in Ns::ALL {
            let name = net.name(ns);
            let out = Command::new("ip")
                .args(["netns", "add", &name])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| Skip(format!("cannot run `ip netns add`: {e}")))?;
            if !out.status.success() {
                // `net` is dropped: the namespaces made so far are deleted.
                return Err(Skip(format!(
                    "`ip netns add {name}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            net.made.push(name);
        }
        net.build();
        Ok(net)
    }

    /// The mode it was made in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The namespace's name (for `ip netns exec NAME`, `ip -n NAME`).
    pub fn name(&self, ns: Ns) -> String {
        format!("{}-{}", self.id, ns.role())
    }

    /// `ip netns exec NAME program args...`: a command to run `program` in
    /// `ns` (its environment and working directory are the caller's; the
    /// process is `program` itself, `ip` execs it).
    pub fn exec<I, S>(&self, ns: Ns, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new("ip");
        c.args(["netns", "exec"])
            .arg(self.name(ns))
            .arg(program)
            .args(args);
        c
    }

    /// Runs `program args...` in `ns` to its end, and returns its stdout;
    /// panics with its stderr if it fails.
    pub fn run<I, S>(&self, ns: Ns, program: impl AsRef<OsStr>, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = checked(&mut self.exec(ns, program, args), None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Loads an nftables script (`nft -f -`) in `ns`: more rules on top of
    /// the mode's (e.g. `add rule inet scnat post ...`), or new tables.
    pub fn nft(&self, ns: Ns, script: &str) {
        checked(&mut self.exec(ns, "nft", ["-f", "-"]), Some(script));
    }

    /// Sets the conntrack timeout of established TCP connections in `nat`
    /// (per namespace: the host's value is unchanged): an idle NAT mapping
    /// or firewall entry is forgotten after `secs` seconds.
    pub fn set_conntrack_established_timeout(&self, secs: u32) {
        self.run(
            Ns::Nat,
            "sysctl",
            [
                "-qw",
                &format!("net.netfilter.nf_conntrack_tcp_timeout_established={secs}"),
            ],
        );
    }

    /// Forgets every connection `nat` tracks (`conntrack -F`): every NAT
    /// mapping and firewall entry at once, as a router's reboot would.
    /// Established connections through it are then broken (NAT: their
    /// packets no longer match a mapping; firewall: they are no longer
    /// "established", and inbound ones are dropped).
    pub fn flush_conntrack(&self) {
        self.run(Ns::Nat, "conntrack", ["-F"]);
    }

    /// The connections `nat` tracks (`conntrack -L`), one per line.
    pub fn conntrack_list(&self) -> String {
        self.run(Ns::Nat, "conntrack", ["-L"])
    }

    /// The established TCP connections `nat` tracks whose original
    /// direction goes from address `from` to `to` (`conntrack -L -p tcp` in
    /// `to`'s family): one [`Tracked`] each, with the seconds left before
    /// `nat` forgets it if it stays silent.
    pub fn tracked_tcp(&self, from: IpAddr, to: SocketAddr) -> Vec<Tracked> {
        let family = if to.is_ipv4() { "ipv4" } else { "ipv6" };
        let list = self.run(
            Ns::Nat,
            "conntrack",
            ["-L", "-p", "tcp", "-f", family, "--state", "ESTABLISHED"],
        );
        list.lines()
            .filter_map(Tracked::parse)
            .filter(|t| t.src == from && t.dst == to.ip() && t.dport == to.port())
            .collect()
    }

    /// `ns`'s address in `family`: the one on the internet segment for
    /// `srv`, `pub` and `nat` (the address the server sees home as under
    /// [`Mode::Nat`]), home's own for `home`.
    pub fn addr(&self, ns: Ns, family: Family) -> IpAddr {
        match ns {
            Ns::Srv => self.wan(family, 1),
            Ns::Nat => self.wan(family, 2),
            Ns::Pub => self.wan(family, 3),
            Ns::Home => self.lan(family, 2),
        }
    }

    /// The server's address.
    pub fn srv_addr(&self, family: Family) -> IpAddr {
        self.addr(Ns::Srv, family)
    }

    /// The home client's own address (what the server sees without NAT).
    pub fn home_addr(&self, family: Family) -> IpAddr {
        self.addr(Ns::Home, family)
    }

    /// The other internet host's address.
    pub fn pub_addr(&self, family: Family) -> IpAddr {
        self.addr(Ns::Pub, family)
    }

    /// `nat`'s internet-side address: home's address as the server sees it
    /// under [`Mode::Nat`].
    pub fn nat_public(&self, family: Family) -> IpAddr {
        self.addr(Ns::Nat, family)
    }

    /// `nat`'s home-side address (home's gateway).
    pub fn nat_lan(&self, family: Family) -> IpAddr {
        self.lan(family, 1)
    }

    /// The address the server sees a connection from `ns` come from, in this mode.
    pub fn seen_by_server(&self, ns: Ns, family: Family) -> IpAddr {
        match (ns, self.mode) {
            (Ns::Home, Mode::Nat) => self.nat_public(family),
            _ => self.addr(ns, family),
        }
    }

    fn wan(&self, family: Family, host: u8) -> IpAddr {
        match family {
            Family::V4 => Ipv4Addr::new(10, self.a, self.w, host).into(),
            Family::V6 => Ipv6Addr::new(0xfd00, self.p, self.n, 1, 0, 0, 0, host.into()).into(),
        }
    }

    fn lan(&self, family: Family, host: u8) -> IpAddr {
        match family {
            Family::V4 => Ipv4Addr::new(10, self.a, self.w + 1, host).into(),
            Family::V6 => Ipv6Addr::new(0xfd00, self.p, self.n, 2, 0, 0, 0, host.into()).into(),
        }
    }

    /// `ip -n NS args...`, checked.
    fn ip(&self, ns: Ns, args: &[&str]) {
        checked(
            Command::new("ip").arg("-n").arg(self.name(ns)).args(args),
            None,
        );
    }

    /// Adds `addr/prefix` (IPv6: `nodad`, usable at once) on `dev` in `ns`.
    fn addr_add(&self, ns: Ns, dev: &str, addr: IpAddr) {
        let a = match addr {
            IpAddr::V4(a) => format!("{a}/24"),
            IpAddr::V6(a) => format!("{a}/64"),
        };
        let mut args = vec!["addr", "add", a.as_str(), "dev", dev];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        self.ip(ns, &args);
    }

    fn build(&self) {
        use Family::{V4, V6};
        for ns in Ns::ALL {
            // No duplicate address detection on the links made next: their
            // addresses (link-local ones too) are usable at once.
            self.run(
                ns,
                "sysctl",
                [
                    "-qw",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ],
            );
            self.ip(ns, &["link", "set", "lo", "up"]);
        }
        let (nat, home, pubn) = (self.name(Ns::Nat), self.name(Ns::Home), self.name(Ns::Pub));
        // The internet: a bridge in srv, with ports to nat and pub.
        self.ip(Ns::Srv, &["link", "add", SRV_BR, "type", "bridge"]);
        self.ip(
            Ns::Srv,
            &[
                "link", "add", SRV_TO_NAT, "type", "veth", "peer", "name", NAT_WAN, "netns", &nat,
            ],
        );
        self.ip(
            Ns::Srv,
            &[
                "link", "add", SRV_TO_PUB, "type", "veth", "peer", "name", PUB_WAN, "netns", &pubn,
            ],
        );
        self.ip(
            Ns::Nat,
            &[
                "link", "add", NAT_LAN, "type", "veth", "peer", "name", HOME_LAN, "netns", &home,
            ],
        );
        for port in [SRV_TO_NAT, SRV_TO_PUB] {
            self.ip(Ns::Srv, &["link", "set", port, "master", SRV_BR]);
        }
        for family in [V4, V6] {
            self.addr_add(Ns::Srv, SRV_BR, self.srv_addr(family));
            self.addr_add(Ns::Pub, PUB_WAN, self.pub_addr(family));
            self.addr_add(Ns::Nat, NAT_WAN, self.nat_public(family));
            self.addr_add(Ns::Nat, NAT_LAN, self.nat_lan(family));
            self.addr_add(Ns::Home, HOME_LAN, self.home_addr(family));
        }
        for (ns, dev) in [
            (Ns::Srv, SRV_TO_NAT),
            (Ns::Srv, SRV_TO_PUB),
            (Ns::Srv, SRV_BR),
            (Ns::Pub, PUB_WAN),
            (Ns::Nat, NAT_WAN),
            (Ns::Nat, NAT_LAN),
            (Ns::Home, HOME_LAN),
        ] {
            self.ip(ns, &["link", "set", dev, "up"]);
        }
        for family in [V4, V6] {
            let fam = if family == V4 { "-4" } else { "-6" };
            let gw = self.nat_lan(family).to_string();
            self.ip(Ns::Home, &[fam, "route", "add", "default", "via", &gw]);
            if self.mode != Mode::Nat {
                // Home's subnet is routed to nat (no route to it under NAT).
                let subnet = match self.lan(family, 0) {
                    IpAddr::V4(a) => format!("{a}/24"),
                    IpAddr::V6(a) => format!("{a}/64"),
                };
                let via = self.nat_public(family).to_string();
                for ns in [Ns::Srv, Ns::Pub] {
                    self.ip(ns, &[fam, "route", "add", &subnet, "via", &via]);
                }
            }
        }
        self.run(
            Ns::Nat,
            "sysctl",
            [
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        );
        match self.mode {
            Mode::Nat => self.nft(
                Ns::Nat,
                &format!(
                    "table inet scnat {{\n\
                     \tchain post {{\n\
                     \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                     \t\toifname \"{NAT_WAN}\" masquerade\n\
                     \t}}\n\
                     }}\n"
                ),
            ),
            Mode::Firewall => self.nft(
                Ns::Nat,
                &format!(
                    "table inet scfw {{\n\
                     \tchain guard {{\n\
                     \t\ttype filter hook forward priority filter; policy drop;\n\
                     \t\tct state established,related accept\n\
                     \t\tiifname \"{NAT_LAN}\" ct state new accept\n\
                     \t}}\n\
                     }}\n"
                ),
            ),
            Mode::Open => {}
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in self.made.iter().rev() {
            delete_namespace(name);
        }
    }
}

/// Kills what still runs in namespace `name` (processes this test started
/// there, by pid) and deletes it (with its interfaces). Never panics (it
/// runs in `Drop`, maybe while a test unwinds): a failure is a warning.
fn delete_namespace(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if pid.parse::<u32>().is_ok() {
                let _ = Command::new("kill")
                    .args(["-KILL", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    match Command::new("ip").args(["netns", "del", name]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "warning: `ip netns del {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("warning: `ip netns del {name}`: {e}"),
    }
}

/// Deletes (once per process) the namespaces of earlier test processes that
/// are gone (`scnat-PID-...` with no process PID): a test killed before its
/// guard's `Drop` leaves them.
fn sweep_stale() {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        let me = std::process::id();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(pid) = name
                .strip_prefix("scnat-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != me && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                delete_namespace(name);
            }
        }
    });
}

fn check_root() -> Result<(), Skip> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Skip(format!("cannot read /proc/self/status: {e}")))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(Skip(format!(
            "not root (effective uid {euid}): network namespaces (ip netns add) need root"
        )));
    }
    Ok(())
}

fn check_tool(tool: &str, flag: &str, package: &str) -> Result<(), Skip> {
    match Command::new(tool)
        .arg(flag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Skip(format!(
            "`{tool}` not found (apt-get install -y {package})"
        ))),
        Err(e) => Err(Skip(format!(
            "cannot run `{tool}`: {e} (apt-get install -y {package})"
        ))),
    }
}

/// Runs `cmd` (with `stdin` written to it, if any) to its end; panics with
/// the command, its status and its stderr unless it succeeds.
fn checked(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(text) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("writing to {cmd:?}: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        stdin.map(|s| format!("\ninput:\n{s}")).unwrap_or_default()
    );
    out
}
