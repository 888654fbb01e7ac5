//! In-memory clusters: several nodes' [`Presence`] joined by a bus that
//! routes their outbound queues by subject, as NATS would (and can lose,
//! hold back or corrupt what it carries), with seeded random sequences.
//! The same code as with NATS runs, minus the socket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use securecom_core::message::RefuseReason;
use securecom_core::server::RelayKind;
use securecom_core::{PublicKey, UserName};
use tokio::sync::mpsc;

use super::wire::{NodeMessage, Presence as PresenceMsg};
use super::{Cluster, NatsLinkState, Outbound, Settings};
use crate::presence::{Cmd, Inbox, Mailbox, Presence};
use crate::registry::Users;

struct Node {
    cluster: Arc<Cluster>,
    presence: Presence,
    out: mpsc::Receiver<Outbound>,
}

struct Bus {
    nodes: Vec<Node>,
    users: Users,
    now: Instant,
}

fn name(s: &str) -> UserName {
    UserName::try_from(s).unwrap()
}

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

const NAMES: [&str; 6] = ["ann", "ben", "cat", "dan", "eve", "fay"];

impl Bus {
    fn new(n: usize) -> Bus {
        let nodes = (0..n)
            .map(|i| {
                let (cluster, out) = Cluster::new(
                    Settings {
                        prefix: "t".into(),
                        heartbeat: Duration::from_millis(100),
                        node_ttl: Duration::from_millis(350),
                        max_nodes: 8,
                        outbound_queue: 64,
                    },
                    0x100 + i as u64,
                );
                cluster.set_link_state(NatsLinkState::Up);
                Node {
                    presence: Presence::clustered(cluster.clone()),
                    cluster,
                    out,
                }
            })
            .collect();
        let mut users = Users::new();
        for (n, i) in NAMES.iter().zip(1u8..) {
            users.insert(n.to_string(), key(i));
        }
        Bus {
            nodes,
            users,
            now: Instant::now(),
        }
    }

    /// Delivers everything queued (and what that causes), dropping each
    /// message with probability `loss` percent.
    fn run(&mut self, rng: &mut ChaCha8Rng, loss: u64) {
        for _ in 0..100 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Ok(msg) = self.nodes[i].out.try_recv() {
                    self.nodes[i].cluster.dequeued(&msg);
                    moved = true;
                    if rng.next_u64() % 100 < loss {
                        continue;
                    }
                    self.deliver(i, &msg);
                }
                if self.nodes[i].cluster.take_snapshot_wanted() {
                    self.nodes[i].presence.publish_snapshot();
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the bus never settles");
    }

    fn deliver(&self, from: usize, msg: &Outbound) {
        let sender = Cluster::node_of(&msg.subject).unwrap();
        assert_eq!(sender, self.nodes[from].cluster.node);
        if msg.subject.starts_with("t.presence.") {
            let m = PresenceMsg::decode(&msg.payload).unwrap();
            for (i, n) in self.nodes.iter().enumerate() {
                if i != from {
                    n.presence
                        .on_presence(sender, m.clone(), &self.users, self.now);
                }
            }
        } else {
            let to = msg.subject.split('.').nth(2).unwrap();
            let to = u64::from_str_radix(to, 16).unwrap();
            let m = NodeMessage::decode(&msg.payload).unwrap();
            if let Some(n) = self.nodes.iter().find(|n| n.cluster.node == to) {
                n.presence.on_node_message(sender, m, self.now);
            }
        }
    }

    /// Every node's heartbeat and expiry, `dt` later.
    fn tick(&mut self, dt: Duration) {
        self.now += dt;
        for n in &self.nodes {
            n.cluster.heartbeat();
            n.presence.expire_nodes(self.now);
        }
    }

    fn names(&self, i: usize) -> Vec<String> {
        self.nodes[i]
            .presence
            .names()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }
}

/// A session: its mailbox's receiving end.
struct Session {
    user: &'static str,
    node: usize,
    id: u64,
    inbox: Inbox,
    replaced: bool,
}

fn login(bus: &Bus, node: usize, user: &'static str, id: u64) -> Session {
    let (mb, inbox) = Mailbox::new(id);
    let k = bus.users[user];
    // As the session task does: an older session on this node is replaced.
    if let Some(old) = bus.nodes[node].presence.login(name(user), k, mb) {
        old.post(Cmd::Replaced);
    }
    Session {
        user,
        node,
        id,
        inbox,
        replaced: false,
    }
}

fn drain(s: &mut Session) -> Vec<Cmd> {
    let cmds: Vec<Cmd> = std::iter::from_fn(|| s.inbox.try_recv()).collect();
    if cmds.iter().any(|c| matches!(c, Cmd::Replaced)) {
        s.replaced = true;
    }
    cmds
}

/// Sessions newly told `Replaced` end, as the session task would.
fn end_replaced(bus: &Bus, sessions: &mut [Session]) {
    for s in sessions.iter_mut() {
        let was = s.replaced;
        drain(s);
        if s.replaced && !was {
            bus.nodes[s.node].presence.logout(s.user, s.id);
        }
    }
}

#[test]
fn presence_converges_and_one_session_per_user_stays() {
    for seed in 0..8u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut bus = Bus::new(3);
        let mut sessions: Vec<Session> = Vec::new();
        let mut next_id = 1;
        for step in 0..60 {
            let user = NAMES[(rng.next_u64() % NAMES.len() as u64) as usize];
            let node = (rng.next_u64() % 3) as usize;
            match rng.next_u64() % 3 {
                // A login (maybe replacing a session anywhere).
                0 | 1 => {
                    sessions.push(login(&bus, node, user, next_id));
                    next_id += 1;
                }
                // A logout of a live session.
                _ => {
                    if let Some(s) = sessions.iter_mut().find(|s| s.user == user && !s.replaced) {
                        bus.nodes[s.node].presence.logout(s.user, s.id);
                        s.replaced = true;
                    }
                }
            }
            // Sometimes the bus is late: logins race.
            if step % 3 == 0 {
                // A lossy bus, healed by heartbeats and snapshots.
                bus.run(&mut rng, 20);
                for _ in 0..4 {
                    bus.tick(Duration::from_millis(100));
                    bus.run(&mut rng, 0);
                }
                end_replaced(&bus, &mut sessions);
                bus.run(&mut rng, 0);
            }
        }
        // Settle (a snapshot that lost a page is asked again after 2 s).
        for _ in 0..30 {
            bus.tick(Duration::from_millis(100));
            bus.run(&mut rng, 0);
            end_replaced(&bus, &mut sessions);
        }
        bus.run(&mut rng, 0);
        // Every user has at most one live session, and every node lists
        // exactly the users with one.
        let mut live: Vec<String> = Vec::new();
        for user in NAMES {
            let n = sessions
                .iter()
                .filter(|s| s.user == user && !s.replaced)
                .count();
            assert!(n <= 1, "seed {seed}: {user} has {n} sessions");
            if n == 1 {
                live.push(user.to_string());
            }
        }
        for i in 0..3 {
            assert_eq!(bus.names(i), live, "seed {seed}: node {i}");
        }
        // And each node finds every live session where it is.
        for s in sessions.iter().filter(|s| !s.replaced) {
            for i in 0..3 {
                let (k, mb) = bus.nodes[i].presence.find_with_key(s.user).unwrap();
                assert_eq!(k, bus.users[s.user]);
                assert_eq!(mb.session, s.id);
                let expect = (i != s.node).then(|| bus.nodes[s.node].cluster.node);
                assert_eq!(mb.node(), expect, "seed {seed}");
            }
        }
    }
}

#[test]
fn commands_cross_nodes_and_a_gone_session_answers_as_a_local_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut bus = Bus::new(2);
    let mut ann = login(&bus, 0, "ann", 1);
    let mut ben = login(&bus, 1, "ben", 1);
    bus.run(&mut rng, 0);
    // ann's node reaches ben's session through NATS.
    let to_ben = bus.nodes[0].presence.find("ben").unwrap();
    assert_eq!(to_ben.node(), Some(bus.nodes[1].cluster.node));
    let (_, ann_mb) = bus.nodes[0].presence.find_with_key("ann").unwrap();
    assert!(to_ben.post(Cmd::DeliverRequest {
        chat_id: 9,
        from: name("ann"),
        from_key: key(1),
        reply: ann_mb,
    }));
    bus.run(&mut rng, 0);
    let got = drain(&mut ben);
    let [Cmd::DeliverRequest {
        chat_id: 9,
        from,
        from_key,
        reply,
    }] = &got[..]
    else {
        panic!("{got:?}")
    };
    assert_eq!((from.as_str(), *from_key), ("ann", key(1)));
    // The answer goes back through the request's reply route.
    assert!(reply.post(Cmd::Answered {
        chat_id: 9,
        peer: name("ben"),
        peer_key: key(2),
        result: Ok(()),
        reply: bus.nodes[1].presence.find("ben").unwrap(),
    }));
    bus.run(&mut rng, 0);
    let got = drain(&mut ann);
    let [Cmd::Answered {
        chat_id: 9,
        result: Ok(()),
        reply: ann_to_ben,
        ..
    }] = &got[..]
    else {
        panic!("{got:?}")
    };
    // Relayed ciphertext, in order.
    for i in 0..10u8 {
        assert!(ann_to_ben.post(Cmd::Relay {
            chat_id: 9,
            from: name("ann"),
            kind: RelayKind::Data,
            noise: vec![i; 40].into(),
        }));
    }
    bus.run(&mut rng, 0);
    let got = drain(&mut ben);
    assert_eq!(got.len(), 10);
    for (i, c) in got.iter().enumerate() {
        let Cmd::Relay { noise, .. } = c else {
            panic!("{c:?}")
        };
        assert_eq!(&noise[..], &vec![i as u8; 40][..]);
    }
    // ben's session ends; a relay to it comes back as `PeerLeft`, a
    // request is answered `Offline`.
    bus.nodes[1].presence.logout("ben", 1);
    assert!(ann_to_ben.post(Cmd::Relay {
        chat_id: 9,
        from: name("ann"),
        kind: RelayKind::Data,
        noise: Box::new([1]),
    }));
    assert!(ann_to_ben.post(Cmd::DeliverRequest {
        chat_id: 10,
        from: name("ann"),
        from_key: key(1),
        reply: bus.nodes[0].presence.find("ann").unwrap(),
    }));
    bus.run(&mut rng, 0);
    let got = drain(&mut ann);
    assert!(
        matches!(
            &got[..],
            [
                Cmd::PeerLeft { chat_id: 9 },
                Cmd::Delivered {
                    chat_id: 10,
                    result: Err(RefuseReason::Offline),
                    ..
                }
            ]
        ),
        "{got:?}"
    );
    // ben is off ann's node's list too.
    assert_eq!(bus.names(0), ["ann"]);
}

#[test]
fn a_silent_node_is_lost_and_local_sessions_hear_of_it() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut bus = Bus::new(3);
    let mut ann = login(&bus, 0, "ann", 1);
    let _ben = login(&bus, 1, "ben", 1);
    let _cat = login(&bus, 2, "cat", 1);
    bus.run(&mut rng, 0);
    assert_eq!(bus.names(0), ["ann", "ben", "cat"]);
    let lost = bus.nodes[1].cluster.node;
    // Node 1 goes silent: its link is down, nothing it queues goes out.
    bus.nodes[1].cluster.set_link_state(NatsLinkState::Down);
    for _ in 0..5 {
        bus.now += Duration::from_millis(100);
        for (i, n) in bus.nodes.iter().enumerate() {
            if i != 1 {
                n.cluster.heartbeat();
            }
            n.presence.expire_nodes(bus.now);
        }
        while bus.nodes[1].out.try_recv().is_ok() {}
        bus.run(&mut rng, 0);
    }
    assert_eq!(bus.names(0), ["ann", "cat"]);
    assert!(bus.nodes[0].presence.find("ben").is_none());
    let got = drain(&mut ann);
    assert!(
        got.iter()
            .any(|c| matches!(c, Cmd::NodeLost { node } if *node == lost)),
        "{got:?}"
    );
    // Node 1 itself refuses cross-node posts while its link is down.
    let to_ann = bus.nodes[1].presence.find("ann");
    if let Some(mb) = to_ann {
        assert_eq!(
            mb.try_post(Cmd::PeerLeft { chat_id: 1 }),
            Err(crate::presence::PostError::Unreachable)
        );
    }
}

#[test]
fn an_announced_user_must_be_registered_with_that_key() {
    let bus = Bus::new(2);
    let node = bus.nodes[0].cluster.node;
    let forged = |user: &str, k: u8, version| PresenceMsg::Login {
        version,
        online: super::wire::Online {
            user: name(user),
            key: key(k),
            session: 1,
            stamp: 1,
        },
    };
    let p = &bus.nodes[1].presence;
    p.on_presence(node, forged("ann", 99, 1), &bus.users, bus.now);
    p.on_presence(node, forged("zed", 1, 2), &bus.users, bus.now);
    assert!(p.names().is_empty());
    p.on_presence(node, forged("ann", 1, 3), &bus.users, bus.now);
    assert_eq!(&p.names()[..], &[name("ann")]);
}
