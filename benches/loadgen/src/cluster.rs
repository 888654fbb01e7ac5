//! `cluster` (issue 15): a real `nats-server` and three real
//! `securecom-server` nodes on it, driven by the same in-process clients as
//! the other tasks, each figure next to its anchor measured in the same run:
//!
//! 1. presence convergence: the time from a login on node 0 until a user on
//!    node 1 sees it in `ListUsers` (and from a logout until it is gone);
//! 2. relayed messages with both users on one node, then on two nodes: the
//!    nodes' CPU per message (all nodes counted), NATS's CPU per message,
//!    throughput at the generator's maximum, and p50/p99 latency at a fixed
//!    rate; the two-node figures as ratios to the one-node ones;
//! 3. idle users: `--idle` (27 000 by default) logged in at once, spread
//!    over the three nodes from several generator processes (9 000 sessions
//!    each: a process has 20 000 descriptors here), counted by a `ListUsers`
//!    on one node, and each node's memory per session next to a standalone
//!    server's (no NATS) in the same run;
//! 4. a node killed (`kill -9`) with its third of those users: the time
//!    until a user on another node no longer sees them.
//!
//! The nodes and NATS run pinned to one core and the generator to the other,
//! as in `peers` (their CPU does not mix). The nodes share one data
//! directory (one server key, one registry), as the README's cluster does,
//! and reach NATS with a user and password; their listing rate is raised
//! (`--rate-listings 60000:10000`) because the generator polls the list, and
//! their per-source limits are lifted (every client is on loopback).
//!
//! Usage: `cargo run --release -p securecom-loadgen -- cluster [--pairs 8]
//! [--rate 20000] [--seconds 3] [--idle 27000]` (needs `nats-server`:
//! `apt-get install nats-server`).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use securecom_core::{ClientEvent, PublicKey, StaticSecret};
use securecom_host::now;

use crate::peers::measure::{
    check_cores, pin_self, proc_cpu, self_cpu, spawn_on_server_core, GENERATOR_CORE,
};
use crate::{
    blast, init_data, open_pair_across, registry, rss_kib, server_bin, users, Peer, Server,
    LIFTED_LIMITS,
};

/// The NATS user the nodes connect as.
const NATS_USER: &str = "securecom";
/// Its password (a throwaway one: the NATS server listens on loopback only).
const NATS_PASSWORD: &str = "loadgen-cluster-password";
/// Nodes in the cluster.
const NODES: usize = 3;

/// A registered user: name and key.
type User = (String, StaticSecret);

/// A `nats-server` of this run's own, on a free loopback port.
struct Nats {
    child: Child,
    port: u16,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_program() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .context("nats-server is not installed (apt-get install nats-server)")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Nats {
    fn start(dir: &Path) -> Result<Nats> {
        let program = nats_program()?;
        let port = free_port()?;
        let config = dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nmax_payload: 65536\nauthorization {{\n  users = [\n    \
                 {{ user: \"{NATS_USER}\", password: \"{NATS_PASSWORD}\",\n       permissions: \
                 {{ publish: [\"securecom.>\"], subscribe: [\"securecom.>\", \"_INBOX.>\"] }} }}\n  ]\n}}\n"
            ),
        )?;
        let log = std::fs::File::create(dir.join("nats.log"))?;
        let child = spawn_on_server_core(
            || {
                Ok(Command::new(&program)
                    .arg("-c")
                    .arg(&config)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()?)
            },
            |c: &Child| c.id(),
        )?;
        let nats = Nats { child, port };
        // Ready when it greets a client with INFO.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = StdTcpStream::connect(("127.0.0.1", port)) {
                let mut line = String::new();
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return Ok(nats);
                }
            }
            if Instant::now() > end {
                bail!(
                    "nats-server did not start: {}",
                    std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// One node: a `securecom-server run --nats …` process.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// NATS, the nodes (`None` once killed), the shared server key.
struct Cluster {
    nats: Nats,
    nodes: Vec<Option<Node>>,
    key: PublicKey,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(users: &[(String, PublicKey)]) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let nats = Nats::start(dir.path())?;
        let data = dir.path().join("server");
        let bin = server_bin()?;
        let key = init_data(&data, users)?;
        let password = dir.path().join("nats-password");
        std::fs::write(&password, format!("{NATS_PASSWORD}\n"))?;
        let url = format!("nats://127.0.0.1:{}", nats.port);
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let log = std::fs::File::create(dir.path().join(format!("node{i}.log")))?;
            let mut child = spawn_on_server_core(
                || {
                    Ok(Command::new(&bin)
                        .arg("--data-dir")
                        .arg(&data)
                        .args(["run", "--listen", "127.0.0.1:0", "--log", "warn"])
                        .args(LIFTED_LIMITS)
                        .args(["--rate-listings", "60000:10000", "--nats", &url])
                        .args(["--nats-user", NATS_USER, "--nats-password-file"])
                        .arg(&password)
                        .stdout(Stdio::piped())
                        .stderr(log)
                        .spawn()?)
                },
                |c: &Child| c.id(),
            )?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
            let addr = line
                .trim()
                .strip_prefix("listening on ")
                .with_context(|| format!("node {i} did not start"))?
                .parse()?;
            nodes.push(Some(Node { child, addr }));
        }
        Ok(Cluster {
            nats,
            nodes,
            key,
            _dir: dir,
        })
    }

    fn node(&self, i: usize) -> Result<&Node> {
        self.nodes
            .get(i)
            .and_then(Option::as_ref)
            .with_context(|| format!("node {i} is not running"))
    }

    /// The nodes' CPU seconds so far, all of them (a killed one no more).
    fn nodes_cpu(&self) -> Result<f64> {
        let mut sum = 0.0;
        for n in self.nodes.iter().flatten() {
            sum += proc_cpu(n.pid())?;
        }
        Ok(sum)
    }
}

/// Logs `user` in to `addr` from the loopback address `from`.
async fn login(
    from: Option<IpAddr>,
    addr: SocketAddr,
    key: PublicKey,
    user: &(String, StaticSecret),
) -> Result<Peer> {
    let mut p = Peer::connect_from(from, addr, key, &user.0, &user.1, None).await?;
    p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
        .await?;
    Ok(p)
}

/// Every user `p`'s node lists as online (all pages of one `ListUsers`).
async fn list(p: &mut Peer) -> Result<Vec<String>> {
    p.c.list_users(now()).map_err(|e| anyhow!("{e}"))?;
    p.flush().await?;
    let mut names = Vec::new();
    loop {
        match p
            .wait("a page of users", |e| {
                matches!(e, ClientEvent::Users { .. })
            })
            .await?
        {
            ClientEvent::Users { names: page, more } => {
                names.extend(page.iter().map(|n| n.as_str().to_string()));
                if !more {
                    return Ok(names);
                }
            }
            _ => unreachable!("waited for Users"),
        }
    }
}

/// Polls `p`'s list every `every` until `done` holds of it; the time it took.
async fn until_listed(
    p: &mut Peer,
    every: Duration,
    limit: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Result<Duration> {
    let t = Instant::now();
    loop {
        if done(&list(p).await?) {
            return Ok(t.elapsed());
        }
        if t.elapsed() > limit {
            bail!("presence did not converge within {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One relay phase's figures.
struct Relay {
    msgs: usize,
    secs: f64,
    nodes_cpu: f64,
    nats_cpu: f64,
    gen_cpu: f64,
    lat: Vec<u64>,
}

impl Relay {
    fn per_msg_us(&self) -> f64 {
        self.nodes_cpu / self.msgs as f64 * 1e6
    }
    fn nats_per_msg_us(&self) -> f64 {
        self.nats_cpu / self.msgs as f64 * 1e6
    }
    fn rate(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
}

/// `k` chats, each from a user on node `na` to one on node `nb`; unpaced
/// (`rate` None: the generator's maximum, 64 messages in flight per chat)
/// or paced at `rate` messages/s in all.
async fn relay_phase(
    c: &Cluster,
    pairs: &[(User, User)],
    (na, nb): (usize, usize),
    seconds: f64,
    size: usize,
    rate: Option<f64>,
) -> Result<Relay> {
    let (addr_a, addr_b) = (c.node(na)?.addr, c.node(nb)?.addr);
    let mut open = Vec::new();
    for (a, b) in pairs {
        open.push(open_pair_across(addr_a, addr_b, c.key, a, b).await?);
    }
    let k = pairs.len();
    let (per, window, per_rate) = match rate {
        Some(r) => (
            ((r / k as f64) * seconds) as usize,
            1 << 20,
            Some(r / k as f64),
        ),
        None => (((seconds * 30_000.0) as usize / k).max(1000), 64, None),
    };
    let (n0, s0, g0, t) = (
        c.nodes_cpu()?,
        proc_cpu(c.nats.pid())?,
        self_cpu(),
        Instant::now(),
    );
    let tasks: Vec<_> = open
        .into_iter()
        .map(|p| tokio::spawn(blast(p, per, size, window, per_rate)))
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok(Relay {
        msgs: per * k,
        secs,
        nodes_cpu: c.nodes_cpu()? - n0,
        nats_cpu: proc_cpu(c.nats.pid())? - s0,
        gen_cpu: self_cpu() - g0,
        lat,
    })
}

fn num(args: &[String], flag: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) async fn run(args: &[String]) -> Result<()> {
    let k = num(args, "--pairs", 8).max(1);
    let rate = num(args, "--rate", 20_000) as f64;
    let seconds = num(args, "--seconds", 3) as f64;
    let idle = num(args, "--idle", 27_000);
    let size = 256;
    check_cores()?;
    pin_self(GENERATOR_CORE)?;

    // Users: probes, four sets of chat pairs, the idle crowd.
    let probes = users("p", 3);
    let pair_sets: Vec<Vec<_>> = (0..4)
        .map(|s| {
            users(&format!("a{s}_"), k)
                .into_iter()
                .zip(users(&format!("b{s}_"), k))
                .collect()
        })
        .collect();
    let crowd = users("i", idle);
    let mut reg = registry(&probes);
    for set in &pair_sets {
        for (a, b) in set {
            reg.extend(registry(std::slice::from_ref(a)));
            reg.extend(registry(std::slice::from_ref(b)));
        }
    }
    reg.extend(registry(&crowd));
    let mut c = Cluster::start(&reg)?;
    println!(
        "cluster: nats-server and {NODES} securecom-server nodes (pid {}) on core 0, the generator on core 1; {} users registered",
        c.nodes
            .iter()
            .flatten()
            .map(|n| n.pid().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reg.len()
    );

    // 1. Presence convergence after a login and after a logout.
    let mut watcher = login(None, c.node(1)?.addr, c.key, &probes[1]).await?;
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    for round in 0..11 {
        let p = login(None, c.node(0)?.addr, c.key, &probes[0]).await?;
        let name = probes[0].0.clone();
        let seen = until_listed(
            &mut watcher,
            Duration::from_millis(5),
            Duration::from_secs(20),
            |l| l.contains(&name),
        )
        .await?;
        drop(p);
        let gone = until_listed(
            &mut watcher,
            Duration::from_millis(5),
            Duration::from_secs(20),
            |l| !l.contains(&name),
        )
        .await?;
        // The first round also waits for the nodes to find each other.
        if round > 0 {
            joins.push(seen);
            leaves.push(gone);
        }
    }
    joins.sort();
    leaves.sort();
    println!(
        "presence convergence (node 0 -> a user on node 1, 10 rounds, the watcher listing every 5 ms): login seen after p50 {:.1} ms, max {:.1} ms; logout after p50 {:.1} ms, max {:.1} ms",
        ms(joins[joins.len() / 2]),
        ms(joins[joins.len() - 1]),
        ms(leaves[leaves.len() / 2]),
        ms(leaves[leaves.len() - 1]),
    );

    // 2. Relayed messages: one node, then two.
    let same_max = relay_phase(&c, &pair_sets[0], (0, 0), seconds, size, None).await?;
    let cross_max = relay_phase(&c, &pair_sets[1], (0, 1), seconds, size, None).await?;
    let same_paced = relay_phase(&c, &pair_sets[2], (0, 0), seconds, size, Some(rate)).await?;
    let cross_paced = relay_phase(&c, &pair_sets[3], (0, 1), seconds, size, Some(rate)).await?;
    let gen_share = |r: &Relay| 100.0 * r.gen_cpu / r.secs;
    for (what, same, cross) in [
        ("at the generator's maximum", &same_max, &cross_max),
        (
            &*format!("at {rate:.0} msg/s offered"),
            &same_paced,
            &cross_paced,
        ),
    ] {
        println!(
            "relay {what} ({k} chats, {size} B): nodes' CPU per message {:.2} µs on one node, {:.2} µs on two ({:.2}x; NATS {:.2} µs more per message); {:.0} vs {:.0} msg/s ({:.2}x); generator CPU {:.0} % / {:.0} %",
            same.per_msg_us(),
            cross.per_msg_us(),
            cross.per_msg_us() / same.per_msg_us(),
            cross.nats_per_msg_us() - same.nats_per_msg_us(),
            same.rate(),
            cross.rate(),
            cross.rate() / same.rate(),
            gen_share(same),
            gen_share(cross),
        );
    }
    let (s, x) = (&same_paced.lat, &cross_paced.lat);
    println!(
        "latency at {rate:.0} msg/s: one node p50 {} µs, p99 {} µs; two nodes p50 {} µs, p99 {} µs: the cross-node hop adds {} µs at p50, {} µs at p99",
        pct(s, 0.5),
        pct(s, 0.99),
        pct(x, 0.5),
        pct(x, 0.99),
        pct(x, 0.5) as i64 - pct(s, 0.5) as i64,
        pct(x, 0.99) as i64 - pct(s, 0.99) as i64,
    );

    // 3. The idle crowd: a standalone server's memory per session first (the
    // anchor), then the crowd on the cluster.
    let third = idle / NODES;
    let anchor = {
        let server =
            spawn_on_server_core(|| Server::start(&registry(&crowd[..third])), Server::pid)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = server.rss_kib()?;
        let peers = log_in_all(&crowd[..third], 0, &[server.addr], server.key).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let per = server.rss_kib()?.saturating_sub(before) as f64 / third as f64;
        drop(peers);
        per
    };
    let before: Vec<u64> = c
        .nodes
        .iter()
        .flatten()
        .map(|n| rss_kib(n.pid()))
        .collect::<Result<_>>()?;
    let addrs: Vec<SocketAddr> = c.nodes.iter().flatten().map(|n| n.addr).collect();
    let t = Instant::now();
    let crowd_procs = spawn_crowd(&crowd, &addrs, c.key)?;
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<u64> = c
        .nodes
        .iter()
        .flatten()
        .map(|n| rss_kib(n.pid()))
        .collect::<Result<_>>()?;
    let mut counter = login(None, c.node(0)?.addr, c.key, &probes[2]).await?;
    let online = list(&mut counter).await?;
    let crowd_online = online.iter().filter(|n| n.starts_with('i')).count();
    let per_node: Vec<String> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| {
            format!(
                "{:.1}",
                a.saturating_sub(*b) as f64 / (idle as f64 / NODES as f64)
            )
        })
        .collect();
    println!(
        "idle: {idle} users logged in across {NODES} nodes in {:.1} s; node 0 lists {} users online ({crowd_online} of the crowd); memory per session on each node {} KiB, a standalone server's {anchor:.1} KiB ({third} sessions, same run)",
        took.as_secs_f64(),
        online.len(),
        per_node.join(" / "),
    );
    if crowd_online < idle {
        bail!("only {crowd_online} of {idle} idle users are listed online");
    }

    // 4. Node 2 killed with its third of the crowd.
    let victims: usize = crowd.iter().skip(2).step_by(NODES).count();
    let last = crowd
        .iter()
        .skip(2)
        .step_by(NODES)
        .map(|u| u.0.clone())
        .collect::<std::collections::HashSet<_>>();
    if let Some(mut node) = c.nodes.get_mut(2).and_then(Option::take) {
        let _ = node.child.kill();
        let _ = node.child.wait();
    }
    let gone = until_listed(
        &mut counter,
        Duration::from_millis(50),
        Duration::from_secs(30),
        |l| !l.iter().any(|n| last.contains(n)),
    )
    .await?;
    println!(
        "node 2 killed (kill -9) with {victims} users: gone from node 0's list after {:.0} ms (bound: --nats-node-ttl-ms 3500 + one heartbeat, 1000)",
        ms(gone)
    );
    drop(crowd_procs);
    Ok(())
}

/// Logs every user in, the crowd's user `i` (`first` + its index here) to
/// `addrs[i % len]` from the loopback address 127.0.0.(2 + i % len) (so
/// that no source runs out of ports), 200 at a time; the peers keep the
/// sessions open (with no read buffer: they are not read again).
async fn log_in_all(
    crowd: &[User],
    first: usize,
    addrs: &[SocketAddr],
    key: PublicKey,
) -> Result<Vec<Peer>> {
    let mut peers = Vec::with_capacity(crowd.len());
    for (g, group) in crowd.chunks(200).enumerate() {
        let tasks: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(j, user)| {
                let i = first + g * 200 + j;
                let node = i % addrs.len();
                let addr = addrs[node];
                let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + node as u8));
                let user = user.clone();
                tokio::spawn(async move {
                    let mut p = login(Some(from), addr, key, &user).await?;
                    p.buf = Vec::new();
                    anyhow::Ok(p)
                })
            })
            .collect();
        for t in tasks {
            peers.push(t.await??);
        }
    }
    Ok(peers)
}

/// Sessions one generator process holds at most: each is a socket, and a
/// process may have 20 000 descriptors on this machine (a hard limit that
/// even root cannot raise in its container).
const CROWD_PER_PROCESS: usize = 9_000;

/// Generator processes holding the idle crowd's sessions (`cluster-crowd`),
/// each logged in; dropping it ends them (and their sessions).
struct Crowd(Vec<Child>);

impl Drop for Crowd {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Logs the crowd in from child generator processes (this program's
/// `cluster-crowd`, on the generator's core), [`CROWD_PER_PROCESS`] users
/// each, in parallel; returns once every one is logged in.
fn spawn_crowd(crowd: &[User], addrs: &[SocketAddr], key: PublicKey) -> Result<Crowd> {
    use std::io::Write as _;
    let exe = std::env::current_exe()?;
    let addrs_arg = addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let key_hex = securecom_host::public_key_hex(&key);
    let mut procs = Crowd(Vec::new());
    for (n, chunk) in crowd.chunks(CROWD_PER_PROCESS).enumerate() {
        let mut child = Command::new(&exe)
            .args(["cluster-crowd", "--key", &key_hex, "--addrs", &addrs_arg])
            .args(["--first", &(n * CROWD_PER_PROCESS).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut input = String::new();
        for (name, secret) in chunk {
            input.push_str(&format!("{name} {}\n", hex_of(&secret.to_bytes())));
        }
        input.push_str("go\n");
        child
            .stdin
            .as_mut()
            .context("crowd stdin")?
            .write_all(input.as_bytes())?;
        procs.0.push(child);
    }
    for (n, child) in procs.0.iter_mut().enumerate() {
        // Its first line is the program's banner (`# …`).
        let mut out = BufReader::new(child.stdout.as_mut().context("crowd stdout")?);
        let mut line = String::new();
        while line.is_empty() || line.starts_with('#') {
            line.clear();
            if out.read_line(&mut line)? == 0 {
                bail!("crowd process {n} ended before logging its users in");
            }
        }
        if !line.starts_with("ready") {
            bail!("crowd process {n} failed: {line:?}");
        }
    }
    Ok(procs)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `cluster-crowd --key HEX --addrs A,B,C --first N`: a child generator
/// process of [`spawn_crowd`]. Reads `name secret-hex` lines and `go` from
/// stdin, logs them in (the user at index `first + i` of the crowd to
/// `addrs[(first + i) % len]`), prints `ready N`, and holds the sessions
/// until its stdin closes.
pub(crate) async fn crowd(args: &[String]) -> Result<()> {
    let arg = |flag: &str| -> Result<&String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .with_context(|| format!("cluster-crowd needs {flag}"))
    };
    let key = securecom_host::parse_public_key(arg("--key")?)?;
    let addrs = arg("--addrs")?
        .split(',')
        .map(|a| a.parse())
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    let first: usize = arg("--first")?.parse()?;
    let mut crowd = Vec::new();
    for line in std::io::stdin().lines() {
        let line = line?;
        if line == "go" {
            break;
        }
        let (name, hex) = line.split_once(' ').context("a crowd line")?;
        let mut secret = [0u8; 32];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).context("secret")?, 16)?;
        }
        crowd.push((name.to_string(), StaticSecret::from_bytes(secret)));
    }
    let peers = log_in_all(&crowd, first, &addrs, key).await?;
    println!("ready {}", peers.len());
    // Held until the parent closes our stdin (or kills us).
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await?;
    drop(peers);
    Ok(())
}
