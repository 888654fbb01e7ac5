//! The NATS driver: the connection (credentials, TLS, reconnection), the
//! subscriptions, the publisher and the heartbeat tick around [`Cluster`].
//!
//! Why NATS and `async-nats`: NATS is a small, proven message bus with
//! subject-based routing, user/password and nkey authentication,
//! per-user publish/subscribe permissions and TLS, which is all a cluster of
//! secureCom nodes needs (presence fan-out and node-to-node commands), with
//! no home-made protocol between servers. `async-nats` is its official tokio
//! client: it reconnects by itself (with back-off) and re-subscribes, and its
//! queues are bounded (`client_capacity`, `subscription_capacity`).
//!
//! Core NATS (publish/subscribe) only, no JetStream: presence is soft state
//! that every node can rebuild from the others (versions, heartbeats,
//! snapshots), so nothing needs storing on the bus; and a JetStream
//! key-value bucket on Debian's nats-server 2.9 has no per-key TTL, which a
//! crashed node's entries would need. The registry stays a file (README).
//!
//! Subjects (PREFIX is `--nats-prefix`, nodes are 16 hex digits):
//! - `PREFIX.presence.<node>`: the node's presence news (every node
//!   subscribes to `PREFIX.presence.*`);
//! - `PREFIX.node.<to>.<from>`: commands and snapshot requests for node
//!   `<to>` (it subscribes to `PREFIX.node.<to>.*`).
//!
//! While the link is down nothing is published (messages queued meanwhile
//! are dropped: presence heals through the versions, commands were refused
//! or their chats end); cross-node posts fail at once with
//! `PostError::Unreachable`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Cluster, NatsLinkState, Outbound, Settings};
use crate::session::Shared;

/// `--nats*`: the cluster's options. Without `--nats` the server is alone.
#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    /// Join a cluster through this NATS server (`nats://HOST:PORT`, or
    /// `tls://HOST:PORT`; several, comma-separated, for a NATS cluster).
    /// Without it the server runs alone, as always.
    #[arg(long, env = "SECURECOM_NATS_URL", value_name = "URLS")]
    pub nats: Option<String>,
    /// NATS user name (with --nats-password-file).
    #[arg(long, env = "SECURECOM_NATS_USER", value_name = "NAME")]
    pub nats_user: Option<String>,
    /// File whose first line is the NATS user's password (never on the
    /// command line).
    #[arg(long, env = "SECURECOM_NATS_PASSWORD_FILE", value_name = "FILE")]
    pub nats_password_file: Option<PathBuf>,
    /// File holding the node's NATS nkey seed (`SU…`), instead of a password.
    #[arg(long, env = "SECURECOM_NATS_NKEY_FILE", value_name = "FILE")]
    pub nats_nkey_file: Option<PathBuf>,
    /// A NATS credentials file (JWT and nkey seed, from `nsc`), instead.
    #[arg(long, env = "SECURECOM_NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// Require TLS on the NATS connection.
    #[arg(long)]
    pub nats_tls: bool,
    /// CA certificate (PEM) that signed the NATS server's certificate
    /// (implies --nats-tls).
    #[arg(long, value_name = "FILE")]
    pub nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS servers that verify clients (with --nats-tls-key).
    #[arg(long, value_name = "FILE", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// Subject prefix: clusters with different prefixes can share one NATS
    /// (give each its own NATS user, allowed only its prefix).
    #[arg(long, default_value = "securecom", value_name = "TOKEN")]
    pub nats_prefix: String,
    /// Milliseconds between this node's heartbeats.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub nats_heartbeat_ms: u64,
    /// Milliseconds of silence after which another node counts as lost:
    /// its users leave the online list and their chat peers get `PeerLeft`
    /// (within this plus one heartbeat of a crash). At least two heartbeats.
    #[arg(long, default_value_t = 3500)]
    pub nats_node_ttl_ms: u64,
    /// Other nodes remembered at most (a node beyond them is ignored).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub nats_max_nodes: u64,
    /// Relayed messages and chat requests waiting to be published to NATS
    /// at most (each at most 1.6 KiB); beyond them a relay ends its chat
    /// and a request is answered `Busy`. As many again are kept for
    /// presence, answers and `PeerLeft`.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub nats_queue: u64,
    /// Messages received from NATS waiting to be handled at most (each at
    /// most the NATS server's `max_payload`); beyond them NATS drops them
    /// (a slow consumer).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub nats_inbound_queue: u64,
}

impl NatsArgs {
    /// The cluster settings, checked.
    pub fn settings(&self) -> Result<Settings> {
        let p = &self.nats_prefix;
        if p.is_empty()
            || p.len() > 64
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            bail!("--nats-prefix: 1 to 64 of A-Z a-z 0-9 _ - (one subject token)");
        }
        if self.nats_node_ttl_ms < self.nats_heartbeat_ms.saturating_mul(2) {
            bail!("--nats-node-ttl-ms must be at least two heartbeats (--nats-heartbeat-ms)");
        }
        Ok(Settings {
            prefix: p.clone(),
            heartbeat: Duration::from_millis(self.nats_heartbeat_ms),
            node_ttl: Duration::from_millis(self.nats_node_ttl_ms),
            max_nodes: usize::try_from(self.nats_max_nodes).unwrap_or(usize::MAX),
            outbound_queue: usize::try_from(self.nats_queue).unwrap_or(usize::MAX),
        })
    }

    fn options(&self, node: u64, events: mpsc::Sender<Event>) -> Result<ConnectOptions> {
        let mut o = ConnectOptions::new();
        let auths = [
            self.nats_user.is_some(),
            self.nats_nkey_file.is_some(),
            self.nats_creds.is_some(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            bail!("give one of --nats-user, --nats-nkey-file, --nats-creds");
        }
        if let Some(user) = &self.nats_user {
            let file = self
                .nats_password_file
                .as_ref()
                .context("--nats-user needs --nats-password-file")?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let password = text.lines().next().unwrap_or_default().to_string();
            o = o.user_and_password(user.clone(), password);
        } else if self.nats_password_file.is_some() {
            bail!("--nats-password-file needs --nats-user");
        }
        if let Some(file) = &self.nats_nkey_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let seed = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("SU"))
                .with_context(|| format!("{}: no user nkey seed (SU…)", file.display()))?;
            o = o.nkey(seed.to_string());
        }
        if let Some(file) = &self.nats_creds {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            o = o
                .credentials(&text)
                .with_context(|| format!("{}: not a credentials file", file.display()))?;
        }
        if self.nats_tls || self.nats_ca.is_some() || self.nats_tls_cert.is_some() {
            // One crypto provider for rustls in this process (the server's own).
            let _ = async_nats::rustls::crypto::aws_lc_rs::default_provider().install_default();
            o = o.require_tls(true);
        }
        if let Some(ca) = &self.nats_ca {
            o = o.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.nats_tls_cert, &self.nats_tls_key) {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(o.name(format!("securecom-server {node:016x}"))
            // Our own presence news would come back to us otherwise.
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(3))
            .ping_interval(Duration::from_secs(10))
            .reconnect_delay_callback(|attempts| {
                // 0.25 s, 0.5 s, … up to 2 s: a restarted NATS is found quickly.
                let ms = 250u64.saturating_mul(u64::try_from(attempts).unwrap_or(8).min(8));
                Duration::from_millis(ms)
            })
            .subscription_capacity(usize::try_from(self.nats_inbound_queue).unwrap_or(4096))
            .client_capacity(1024)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    // Bounded: a missed event is caught up by the tick.
                    let _ = events.try_send(event);
                }
            }))
    }

    fn servers(&self) -> Result<Vec<ServerAddr>> {
        let urls = self.nats.as_deref().unwrap_or_default();
        urls.split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                u.parse::<ServerAddr>()
                    .with_context(|| format!("--nats: bad URL '{u}'"))
            })
            .collect::<Result<Vec<_>>>()
            .and_then(|v| {
                if v.is_empty() {
                    bail!("--nats: no URL")
                } else {
                    Ok(v)
                }
            })
    }
}

/// Creates a NATS user nkey: its seed in a new file at `path` (mode 0600,
/// never overwriting), from this host's RNG; returns its public key.
pub fn create_nkey(path: &std::path::Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use zeroize::Zeroize;
    let mut raw = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut securecom_host::thread_rng(), &mut raw);
    let pair = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, raw);
    raw.zeroize();
    let pair = pair.map_err(|e| anyhow::anyhow!("nkey: {e}"))?;
    let mut seed = pair.seed().map_err(|e| anyhow::anyhow!("nkey: {e}"))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{seed}\n").as_bytes()));
    seed.zeroize();
    written.with_context(|| format!("creating {}", path.display()))?;
    Ok(pair.public_key())
}

/// The running link, for a graceful stop.
pub struct Link {
    client: Client,
    cluster: Arc<Cluster>,
}

impl Link {
    /// Hands what is still queued to NATS and flushes it, within `limit`:
    /// at a graceful stop, the other nodes hear at once that this node's
    /// users left (and their chats with them ended), not after the TTL.
    pub async fn drain(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.cluster.unsent() > 0 && self.cluster.link_state() == NatsLinkState::Up {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = self.client.flush().await;
        })
        .await;
    }
}

/// Connects (in the background: the server serves its own users meanwhile)
/// and runs the driver; returns once the subscriptions are made.
pub async fn start(
    args: &NatsArgs,
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    out: mpsc::Receiver<Outbound>,
) -> Result<Link> {
    let servers = args.servers()?;
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let options = args.options(cluster.node, ev_tx)?;
    let client = options
        .connect(servers)
        .await
        .context("connecting to NATS")?;
    let me = cluster.node;
    let prefix = &cluster.settings().prefix;
    let presence = client
        .subscribe(format!("{prefix}.presence.*"))
        .await
        .context("subscribing to NATS")?;
    let commands = client
        .subscribe(format!("{prefix}.node.{me:016x}.*"))
        .await
        .context("subscribing to NATS")?;
    info!(
        node = format_args!("{me:016x}"),
        prefix, "cluster: NATS link starting"
    );
    tokio::spawn(publish(client.clone(), cluster.clone(), out));
    tokio::spawn(receive(
        client.clone(),
        shared,
        cluster.clone(),
        presence,
        commands,
        ev_rx,
    ));
    Ok(Link { client, cluster })
}

/// Snapshots this node publishes: at most one per this gap.
const SNAPSHOT_GAP: Duration = Duration::from_millis(200);

/// Publishes the outbound queue, in order, while the link is up.
async fn publish(client: Client, cluster: Arc<Cluster>, mut out: mpsc::Receiver<Outbound>) {
    let limit = cluster.settings().heartbeat;
    while let Some(mut msg) = out.recv().await {
        if cluster.link_state() == NatsLinkState::Up
            && client.connection_state() == async_nats::connection::State::Connected
        {
            // The client's own queue is bounded: a link that stalls drops
            // messages rather than holding this task.
            let (subject, payload) = (
                std::mem::take(&mut msg.subject),
                std::mem::take(&mut msg.payload),
            );
            match tokio::time::timeout(limit, client.publish(subject, payload.into())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "cluster: publish failed"),
                Err(_) => debug!("cluster: publish timed out"),
            }
        }
        cluster.dequeued(&msg);
    }
}

/// Handles what comes from NATS, the link's events and the heartbeat tick.
async fn receive(
    client: Client,
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    mut presence: async_nats::Subscriber,
    mut commands: async_nats::Subscriber,
    mut events: mpsc::Receiver<Event>,
) {
    use futures_util::StreamExt;
    let mut tick = tokio::time::interval(cluster.settings().heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_snapshot: Option<Instant> = None;
    let mut complained = false;
    loop {
        tokio::select! {
            Some(msg) = presence.next() => {
                let node = Cluster::node_of(msg.subject.as_str());
                match (node, super::wire::Presence::decode(&msg.payload)) {
                    (Some(node), Some(m)) => {
                        let users = shared.registry.snapshot();
                        shared.presence.on_presence(node, m, &users, Instant::now());
                    }
                    _ => debug!(subject = %msg.subject, "cluster: malformed presence message dropped"),
                }
            }
            Some(msg) = commands.next() => {
                let node = Cluster::node_of(msg.subject.as_str());
                match (node, super::wire::NodeMessage::decode(&msg.payload)) {
                    (Some(node), Some(m)) => shared.presence.on_node_message(node, m, Instant::now()),
                    _ => debug!(subject = %msg.subject, "cluster: malformed node message dropped"),
                }
            }
            Some(event) = events.recv() => match event {
                Event::Connected => {
                    complained = false;
                    link_up(&cluster, &shared);
                }
                Event::Disconnected => link_down(&cluster),
                Event::SlowConsumer(_) => warn!("cluster: NATS messages dropped (inbound queue full: --nats-inbound-queue)"),
                // Retries go on by themselves: say so once per outage.
                Event::ServerError(_) | Event::ClientError(_) if !complained => {
                    complained = true;
                    warn!(event = %event, "cluster: cannot reach NATS (retrying); this node serves its own users meanwhile");
                }
                other => debug!(event = %other, "cluster: NATS"),
            },
            // A snapshot held back by the gap below goes out when it ends.
            () = tokio::time::sleep(SNAPSHOT_GAP), if cluster.snapshot_wanted() => {}
            _ = tick.tick() => {
                // The client's state is the truth; events only make us quicker.
                match client.connection_state() {
                    async_nats::connection::State::Connected => {
                        if cluster.link_state() != NatsLinkState::Up {
                            link_up(&cluster, &shared);
                        }
                        cluster.heartbeat();
                    }
                    _ => {
                        if cluster.link_state() == NatsLinkState::Up {
                            link_down(&cluster);
                        }
                    }
                }
                shared.presence.expire_nodes(Instant::now());
            }
        }
        // Snapshots asked of us: at most one per gap (one serves all askers).
        if last_snapshot.is_none_or(|at| at.elapsed() >= SNAPSHOT_GAP)
            && cluster.take_snapshot_wanted()
        {
            shared.presence.publish_snapshot();
            last_snapshot = Some(Instant::now());
        }
    }
}

fn link_up(cluster: &Cluster, shared: &Shared) {
    if cluster.link_state() == NatsLinkState::Up {
        return;
    }
    info!(nodes = cluster.nodes(), "cluster: NATS link up");
    cluster.set_link_state(NatsLinkState::Up);
    // Others may have dropped us meanwhile: tell them where we stand at once.
    cluster.heartbeat();
    shared.presence.publish_snapshot();
}

fn link_down(cluster: &Cluster) {
    if cluster.link_state() != NatsLinkState::Down {
        warn!("cluster: NATS link down: cross-node requests are refused until it is back");
        cluster.set_link_state(NatsLinkState::Down);
    }
}
