//! The cluster: several `securecom-server` nodes on one NATS bus, seen by
//! their users as one server.
//!
//! Without `--nats` none of this runs: [`crate::presence::Presence`] has no
//! [`Cluster`] and every lookup stays in the process (the default, which
//! needs nothing). With it, this node:
//!
//! - announces its own online list on `PREFIX.presence.<node>`
//!   ([`wire::Presence`]): every login and logout, numbered by a version,
//!   and a heartbeat every `--nats-heartbeat-ms` carrying the version. A
//!   node that sees a gap in another's versions (a message lost while NATS
//!   was away, or a node it had never heard of) asks it for a snapshot
//!   (`SnapshotRequest` on `PREFIX.node.<node>`), which the node publishes
//!   in pages on its presence subject;
//! - keeps the other nodes' online users ([`Remote`]): a node silent for
//!   `--nats-node-ttl-ms` is dropped with its users, and every local session
//!   in a chat with one of them gets `PeerLeft` (so a node killed with
//!   `kill -9` disappears within the TTL plus one heartbeat);
//! - sends the session commands of [`crate::presence::Cmd`] whose target
//!   is on another node to that node's subject `PREFIX.node.<node>`
//!   ([`wire::NodeMessage`]), and delivers the ones it receives to its own
//!   sessions, answering for a session that is gone or too far behind
//!   exactly as a local post would (`Busy`, `Offline`, `PeerLeft`);
//! - keeps one session per user in the whole cluster: every login carries
//!   a stamp (milliseconds since 1970, raised above any login of that user
//!   the node had seen), and of two sessions of one user the one with the
//!   higher (stamp, node id) stays; the other is closed with `Replaced`.
//!
//! Only user names, public keys, session and chat ids, refusal reasons and
//! E2E ciphertext cross NATS: no plaintext, no private or session key.
//! The driver of the NATS connection is [`nats`]; the bytes are [`wire`].

#[cfg(test)]
mod bus_tests;
mod inbound;
pub mod nats;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use securecom_core::UserName;
use tokio::sync::mpsc;

use crate::presence::{Cmd, PostError};
use wire::{Envelope, NodeMessage, Online, RemoteCmd};

/// A node's id: random per process start, so a restarted node is a new node.
pub type NodeId = u64;

/// The state of this node's link to NATS, for logs and for the operator's
/// metrics and health endpoint (`Cluster::link_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatsLinkState {
    /// Not connected yet since the start.
    Connecting,
    /// Connected: cross-node traffic flows.
    Up,
    /// Lost: cross-node requests are refused (`Unreachable`) until the
    /// client reconnects by itself.
    Down,
}

/// What a node is configured with (see `--nats-*` in `--help`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Subject prefix (`PREFIX.presence.*`, `PREFIX.node.*`).
    pub prefix: String,
    /// How often this node's heartbeat is published.
    pub heartbeat: Duration,
    /// A node not heard from for this long is dropped.
    pub node_ttl: Duration,
    /// Most other nodes kept (more are ignored until some expire).
    pub max_nodes: usize,
    /// Ordinary messages (relays, chat requests) waiting to be published at
    /// most; the same room again is kept for messages that must go out
    /// (presence, answers, `PeerLeft`).
    pub outbound_queue: usize,
}

/// A message waiting to be published.
#[derive(Debug)]
pub struct Outbound {
    /// Its subject.
    pub subject: String,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// Counted against the ordinary room of the queue.
    ordinary: bool,
}

/// One user online on another node.
#[derive(Clone, Debug)]
pub struct RemoteUser {
    /// The node.
    pub node: NodeId,
    /// Who, with which key and session.
    pub online: Online,
    /// Cleared when the node is dropped.
    pub alive: Arc<AtomicBool>,
}

struct NodeState {
    alive: Arc<AtomicBool>,
    last_heard: Instant,
    /// The version we are in step with (`None`: a snapshot is needed).
    version: Option<u64>,
    /// A snapshot being received: its version, the next page, the users
    /// so far, and when its first page came.
    pending: Option<(u64, u32, Vec<Online>, Instant)>,
    /// When we last asked this node for a snapshot.
    asked: Option<Instant>,
}

/// What the other nodes have online.
#[derive(Default)]
pub struct Remote {
    nodes: HashMap<NodeId, NodeState>,
    /// One entry per user: the newest login (highest (stamp, node)).
    pub users: HashMap<UserName, RemoteUser>,
}

/// How often a node that seems out of step is asked for a snapshot at most.
const ASK_AGAIN: Duration = Duration::from_millis(500);

/// A snapshot not complete this long after its first page is asked again.
const SNAPSHOT_STALLED: Duration = Duration::from_secs(2);

/// This node's side of the cluster; shared by the session tasks (through
/// `Presence`) and the NATS driver.
pub struct Cluster {
    /// Our id.
    pub node: NodeId,
    settings: Settings,
    state: AtomicU8,
    out: mpsc::Sender<Outbound>,
    /// Ordinary messages in the outbound queue.
    ordinary: Arc<AtomicUsize>,
    /// Messages queued and not yet handed to NATS (or dropped).
    queued: AtomicUsize,
    /// Our online list's version; raised (under the presence lock) at every
    /// login and logout.
    version: AtomicU64,
    /// The other nodes (lock order: `Presence`'s map first, then this).
    remote: Mutex<Remote>,
    /// Snapshots asked of us: publish one at the next tick.
    snapshot_wanted: AtomicBool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

impl Cluster {
    /// A cluster member with a fresh random id, and the receiving end of
    /// its outbound queue (for the NATS driver).
    pub fn new(settings: Settings, node: NodeId) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let capacity = settings.outbound_queue.max(1).saturating_mul(2);
        let (out, rx) = mpsc::channel(capacity);
        (
            Arc::new(Cluster {
                node,
                settings,
                state: AtomicU8::new(0),
                out,
                ordinary: Arc::new(AtomicUsize::new(0)),
                queued: AtomicUsize::new(0),
                version: AtomicU64::new(0),
                remote: Mutex::new(Remote::default()),
                snapshot_wanted: AtomicBool::new(false),
            }),
            rx,
        )
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The link's state.
    pub fn link_state(&self) -> NatsLinkState {
        match self.state.load(Ordering::Acquire) {
            0 => NatsLinkState::Connecting,
            1 => NatsLinkState::Up,
            _ => NatsLinkState::Down,
        }
    }

    /// Set by the driver; the operator's metric and readiness follow
    /// (`securecom_nats_link_up`, `/readyz`).
    pub fn set_link_state(&self, s: NatsLinkState) {
        let v = match s {
            NatsLinkState::Connecting => 0,
            NatsLinkState::Up => 1,
            NatsLinkState::Down => 2,
        };
        self.state.store(v, Ordering::Release);
        crate::telemetry::nats_link(s == NatsLinkState::Up);
    }

    /// The other nodes' state.
    pub fn remote(&self) -> std::sync::MutexGuard<'_, Remote> {
        self.remote.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subject of our commands to `node` (`PREFIX.node.<to>.<from>`).
    pub fn node_subject(&self, node: NodeId) -> String {
        format!(
            "{}.node.{node:016x}.{:016x}",
            self.settings.prefix, self.node
        )
    }

    /// Subject of our presence news.
    pub fn presence_subject(&self) -> String {
        format!("{}.presence.{:016x}", self.settings.prefix, self.node)
    }

    /// Parses the node id at the end of a subject (`….<16 hex digits>`):
    /// the publisher of presence news, the sender of a command.
    pub fn node_of(subject: &str) -> Option<NodeId> {
        let (_, hex) = subject.rsplit_once('.')?;
        if hex.len() != 16 {
            return None;
        }
        NodeId::from_str_radix(hex, 16).ok()
    }

    /// Queues a message; `ordinary` ones only while the ordinary room lasts.
    fn enqueue(&self, subject: String, payload: Vec<u8>, ordinary: bool) -> Result<(), PostError> {
        if ordinary && self.ordinary.fetch_add(1, Ordering::AcqRel) >= self.settings.outbound_queue
        {
            self.ordinary.fetch_sub(1, Ordering::AcqRel);
            return Err(PostError::Full);
        }
        let msg = Outbound {
            subject,
            payload,
            ordinary,
        };
        // Counted first: the publisher may take it at once.
        self.queued.fetch_add(1, Ordering::AcqRel);
        match self.out.try_send(msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                if ordinary {
                    self.ordinary.fetch_sub(1, Ordering::AcqRel);
                }
                match e {
                    mpsc::error::TrySendError::Full(_) => Err(PostError::Full),
                    mpsc::error::TrySendError::Closed(_) => Err(PostError::Unreachable),
                }
            }
        }
    }

    /// The driver is done with `msg` (handed to NATS, or dropped).
    pub fn dequeued(&self, msg: &Outbound) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        if msg.ordinary {
            self.ordinary.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Messages queued and not yet handed to NATS.
    pub fn unsent(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Sends `cmd` to session `to_session` of `to_user` on `node`.
    pub fn send_cmd(
        &self,
        node: NodeId,
        alive: &AtomicBool,
        to_user: &UserName,
        to_session: u64,
        cmd: Cmd,
    ) -> Result<(), PostError> {
        if self.link_state() != NatsLinkState::Up {
            return Err(PostError::Unreachable);
        }
        if !alive.load(Ordering::Acquire) {
            return Err(PostError::Gone);
        }
        let ordinary = matches!(cmd, Cmd::Relay { .. } | Cmd::DeliverRequest { .. });
        let (from_user, from_session, cmd) = match cmd {
            Cmd::DeliverRequest {
                chat_id,
                from,
                from_key,
                reply,
            } => (
                Some(from),
                reply.session,
                RemoteCmd::DeliverRequest { chat_id, from_key },
            ),
            Cmd::Delivered {
                chat_id,
                to,
                result,
            } => (Some(to), 0, RemoteCmd::Delivered { chat_id, result }),
            Cmd::Answered {
                chat_id,
                peer,
                peer_key,
                result,
                reply,
            } => (
                Some(peer),
                reply.session,
                RemoteCmd::Answered {
                    chat_id,
                    peer_key,
                    result,
                },
            ),
            Cmd::Relay {
                chat_id,
                from,
                kind,
                noise,
            } => (
                Some(from),
                0,
                RemoteCmd::Relay {
                    chat_id,
                    kind,
                    noise,
                },
            ),
            Cmd::PeerLeft { chat_id } => (None, 0, RemoteCmd::PeerLeft { chat_id }),
            Cmd::Cancel { chat_id } => (None, 0, RemoteCmd::Cancel { chat_id }),
            // Replacements travel as presence (a newer login); a lost node
            // is every node's own finding.
            Cmd::Replaced | Cmd::NodeLost { .. } | Cmd::MergeRates(_) => {
                return Err(PostError::Gone)
            }
        };
        let msg = NodeMessage::Cmd(Envelope {
            from_user,
            from_session,
            to_user: to_user.clone(),
            to_session,
            cmd,
        });
        self.enqueue(self.node_subject(node), msg.encode(), ordinary)
    }

    /// Publishes presence news (must go out: a loss shows as a version gap).
    pub fn publish_presence(&self, msg: &wire::Presence) {
        let _ = self.enqueue(self.presence_subject(), msg.encode(), false);
    }

    /// Raises our version (call under the presence map's write lock, so that
    /// versions and the queue's order agree); returns the new version.
    pub fn next_version(&self) -> u64 {
        self.version.fetch_add(1, Ordering::AcqRel).wrapping_add(1)
    }

    /// Our version now.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Publishes our heartbeat.
    pub fn heartbeat(&self) {
        self.publish_presence(&wire::Presence::Heartbeat {
            version: self.version(),
        });
    }

    /// Another node asked for our snapshot.
    pub fn want_snapshot(&self) {
        self.snapshot_wanted.store(true, Ordering::Release);
    }

    /// True while a snapshot asked of us is not published yet.
    pub fn snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.load(Ordering::Acquire)
    }

    /// True once per request: publish a snapshot now.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::AcqRel)
    }

    /// Asks `node` for its snapshot (at most every [`ASK_AGAIN`]).
    fn ask_snapshot(&self, node: NodeId, state: &mut NodeState, now: Instant) {
        if state
            .asked
            .is_some_and(|at| now.duration_since(at) < ASK_AGAIN)
        {
            return;
        }
        state.asked = Some(now);
        let _ = self.enqueue(
            self.node_subject(node),
            NodeMessage::SnapshotRequest.encode(),
            false,
        );
    }

    /// The liveness flag of `node`, creating its entry if there is room
    /// (`None`: too many nodes, or ourselves).
    pub fn touch_node(
        &self,
        remote: &mut Remote,
        node: NodeId,
        now: Instant,
    ) -> Option<Arc<AtomicBool>> {
        if node == self.node {
            return None;
        }
        if !remote.nodes.contains_key(&node) {
            if remote.nodes.len() >= self.settings.max_nodes {
                return None;
            }
            tracing::info!(node = format_args!("{node:016x}"), "cluster node joined");
            remote.nodes.insert(
                node,
                NodeState {
                    alive: Arc::new(AtomicBool::new(true)),
                    last_heard: now,
                    version: None,
                    pending: None,
                    asked: None,
                },
            );
        }
        let state = remote.nodes.get_mut(&node)?;
        state.last_heard = now;
        Some(state.alive.clone())
    }

    /// A heartbeat of `node` at `version`: a node out of step is asked for a snapshot.
    pub fn heard_heartbeat(&self, remote: &mut Remote, node: NodeId, version: u64, now: Instant) {
        if self.touch_node(remote, node, now).is_none() {
            return;
        }
        if let Some(state) = remote.nodes.get_mut(&node) {
            // A snapshot whose pages stopped coming (one was lost) is asked again.
            let receiving = state
                .pending
                .as_ref()
                .is_some_and(|p| now.duration_since(p.3) < SNAPSHOT_STALLED);
            if state.version != Some(version) && !receiving {
                self.ask_snapshot(node, state, now);
            }
        }
    }

    /// An event of `node` at `version`: true if it is news (not older than
    /// what we hold). A gap marks the node out of step (a snapshot is asked).
    pub fn heard_event(
        &self,
        remote: &mut Remote,
        node: NodeId,
        version: u64,
        now: Instant,
    ) -> bool {
        if self.touch_node(remote, node, now).is_none() {
            return false;
        }
        let Some(state) = remote.nodes.get_mut(&node) else {
            return false;
        };
        match state.version {
            Some(v) if version <= v => false,
            Some(v) if Some(version) == v.checked_add(1) => {
                state.version = Some(version);
                true
            }
            _ => {
                state.version = None;
                self.ask_snapshot(node, state, now);
                true
            }
        }
    }

    /// A snapshot page of `node`: the whole list once its last page came
    /// (`pages` in order, one version; anything else starts over).
    /// `max_users` bounds what is buffered (the registered users).
    pub fn heard_snapshot_page(
        &self,
        remote: &mut Remote,
        node: NodeId,
        page: (u64, u32, bool, Vec<Online>),
        max_users: usize,
        now: Instant,
    ) -> Option<(u64, Vec<Online>)> {
        self.touch_node(remote, node, now)?;
        let state = remote.nodes.get_mut(&node)?;
        let (version, number, last, users) = page;
        let mut pending = match state.pending.take() {
            _ if number == 0 => (version, 0, Vec::new(), now),
            Some(p) if p.0 == version && p.1 == number => p,
            _ => return None,
        };
        pending.2.extend(users);
        if pending.2.len() > max_users.saturating_add(wire::SNAPSHOT_PAGE) {
            return None;
        }
        if last {
            state.version = Some(version);
            return Some((version, pending.2));
        }
        pending.1 = number.saturating_add(1);
        state.pending = Some(pending);
        None
    }

    /// Drops the nodes silent for longer than the TTL, with their users;
    /// returns them.
    pub fn expire(&self, now: Instant) -> Vec<NodeId> {
        let ttl = self.settings.node_ttl;
        let mut remote = self.remote();
        let lost: Vec<NodeId> = remote
            .nodes
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_heard) > ttl)
            .map(|(n, _)| *n)
            .collect();
        for node in &lost {
            if let Some(s) = remote.nodes.remove(node) {
                s.alive.store(false, Ordering::Release);
            }
            tracing::warn!(
                node = format_args!("{node:016x}"),
                "cluster node lost (silent past its TTL)"
            );
        }
        if !lost.is_empty() {
            remote.users.retain(|_, u| !lost.contains(&u.node));
        }
        lost
    }

    /// The number of other nodes known.
    pub fn nodes(&self) -> usize {
        self.remote().nodes.len()
    }
}

/// Milliseconds since 1970 (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> (Arc<Cluster>, mpsc::Receiver<Outbound>) {
        Cluster::new(
            Settings {
                prefix: "sc".into(),
                heartbeat: Duration::from_millis(100),
                node_ttl: Duration::from_millis(300),
                max_nodes: 2,
                outbound_queue: 4,
            },
            1,
        )
    }

    #[test]
    fn subjects_name_the_node_in_hex() {
        let (c, _rx) = cluster();
        assert_eq!(
            c.node_subject(0xab),
            "sc.node.00000000000000ab.0000000000000001"
        );
        assert_eq!(Cluster::node_of("sc.presence.00000000000000ab"), Some(0xab));
        assert_eq!(Cluster::node_of("sc.presence.ab"), None);
        assert_eq!(Cluster::node_of("sc.presence.zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn versions_in_step_gaps_and_old_news() {
        let (c, mut rx) = cluster();
        let now = Instant::now();
        let mut r = Remote::default();
        // A node first heard of by an event is out of step: asked once.
        assert!(c.heard_event(&mut r, 7, 5, now));
        assert!(rx.try_recv().is_ok());
        assert!(c.heard_event(&mut r, 7, 6, now));
        assert!(rx.try_recv().is_err(), "asked again too soon");
        let page = (6, 0, true, vec![]);
        assert_eq!(
            c.heard_snapshot_page(&mut r, 7, page, 10, now),
            Some((6, vec![]))
        );
        assert!(c.heard_event(&mut r, 7, 7, now));
        assert!(!c.heard_event(&mut r, 7, 7, now), "old news");
        c.heard_heartbeat(&mut r, 7, 7, now);
        assert!(rx.try_recv().is_err(), "in step: nothing asked");
        // Our own messages and nodes beyond the limit are ignored.
        assert!(!c.heard_event(&mut r, 1, 1, now));
        assert!(c.heard_event(&mut r, 8, 1, now));
        assert!(!c.heard_event(&mut r, 9, 1, now), "max_nodes is 2");
    }

    #[test]
    fn snapshot_pages_must_come_in_order() {
        let (c, _rx) = cluster();
        let now = Instant::now();
        let mut r = Remote::default();
        assert_eq!(
            c.heard_snapshot_page(&mut r, 7, (3, 1, true, vec![]), 10, now),
            None
        );
        assert_eq!(
            c.heard_snapshot_page(&mut r, 7, (3, 0, false, vec![]), 10, now),
            None
        );
        assert_eq!(
            c.heard_snapshot_page(&mut r, 7, (4, 1, true, vec![]), 10, now),
            None
        );
        assert_eq!(
            c.heard_snapshot_page(&mut r, 7, (3, 1, true, vec![]), 10, now),
            None
        );
        assert_eq!(
            c.heard_snapshot_page(&mut r, 7, (3, 0, false, vec![]), 10, now),
            None
        );
        assert!(c
            .heard_snapshot_page(&mut r, 7, (3, 1, true, vec![]), 10, now)
            .is_some());
    }

    #[test]
    fn a_stalled_snapshot_is_asked_again() {
        let (c, mut rx) = cluster();
        let now = Instant::now();
        let mut r = Remote::default();
        assert_eq!(
            c.heard_snapshot_page(&mut r, 7, (3, 0, false, vec![]), 10, now),
            None
        );
        // Its next page is lost; the heartbeats say version 3.
        c.heard_heartbeat(&mut r, 7, 3, now + Duration::from_secs(1));
        assert!(rx.try_recv().is_err(), "still receiving");
        c.heard_heartbeat(&mut r, 7, 3, now + Duration::from_secs(3));
        let m = rx.try_recv().unwrap();
        assert_eq!(
            wire::NodeMessage::decode(&m.payload),
            Some(wire::NodeMessage::SnapshotRequest)
        );
    }

    #[test]
    fn silent_nodes_expire_with_their_users() {
        let (c, _rx) = cluster();
        let start = Instant::now();
        {
            let mut r = c.remote();
            let alive = c.touch_node(&mut r, 7, start).unwrap();
            r.users.insert(
                UserName::try_from("bob").unwrap(),
                RemoteUser {
                    node: 7,
                    online: Online {
                        user: UserName::try_from("bob").unwrap(),
                        key: securecom_core::PublicKey([1; 32]),
                        session: 1,
                        stamp: 1,
                    },
                    alive,
                },
            );
        }
        assert!(c.expire(start + Duration::from_millis(200)).is_empty());
        let alive = c.remote().users["bob"].alive.clone();
        assert_eq!(c.expire(start + Duration::from_millis(400)), vec![7]);
        assert!(!alive.load(Ordering::Acquire));
        assert!(c.remote().users.is_empty());
    }

    #[test]
    fn the_ordinary_room_is_bounded_and_the_reserve_stays() {
        let (c, mut rx) = cluster();
        c.set_link_state(NatsLinkState::Up);
        let alive = AtomicBool::new(true);
        let bob = UserName::try_from("bob").unwrap();
        let relay = || Cmd::Relay {
            chat_id: 1,
            from: UserName::try_from("al").unwrap(),
            kind: securecom_core::server::RelayKind::Data,
            noise: vec![1, 2, 3].into(),
        };
        for _ in 0..4 {
            assert_eq!(c.send_cmd(9, &alive, &bob, 1, relay()), Ok(()));
        }
        assert_eq!(
            c.send_cmd(9, &alive, &bob, 1, relay()),
            Err(PostError::Full)
        );
        assert_eq!(
            c.send_cmd(9, &alive, &bob, 1, Cmd::PeerLeft { chat_id: 1 }),
            Ok(())
        );
        let m = rx.try_recv().unwrap();
        c.dequeued(&m);
        assert_eq!(m.subject, "sc.node.0000000000000009.0000000000000001");
        assert_eq!(c.send_cmd(9, &alive, &bob, 1, relay()), Ok(()));
        alive.store(false, Ordering::Release);
        assert_eq!(
            c.send_cmd(9, &alive, &bob, 1, relay()),
            Err(PostError::Gone)
        );
        c.set_link_state(NatsLinkState::Down);
        assert_eq!(
            c.send_cmd(9, &alive, &bob, 1, relay()),
            Err(PostError::Unreachable)
        );
    }
}
