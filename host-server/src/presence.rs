//! Who is online, and how to reach their session task.
//!
//! Each logged-in user has one session task; other tasks reach it through
//! its [`Mailbox`]. The map is touched on login, logout and chat requests;
//! relayed chat messages go straight to the peer's mailbox, which the
//! session task caches when the chat starts, so the hot path takes no
//! shared lock.
//!
//! In a cluster (`--nats`), a user online on another node has a
//! [`Mailbox`] too: posting to it sends the command over NATS to that
//! node, which posts it to the session (see [`crate::cluster`]); and the
//! online list is this node's users plus the other nodes'.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use securecom_core::message::{ChatId, RefuseReason};
use securecom_core::server::RelayKind;
use securecom_core::{PublicKey, RateState, UserName};
use tokio::sync::mpsc;

use crate::cluster::{Cluster, NodeId};

/// What one session task asks of another.
#[derive(Debug)]
pub enum Cmd {
    /// Deliver `from`'s chat request to this user's daemon; answer with `Delivered`.
    DeliverRequest {
        chat_id: ChatId,
        from: UserName,
        from_key: PublicKey,
        reply: Mailbox,
    },
    /// The outcome of our `DeliverRequest` to `to`.
    Delivered {
        chat_id: ChatId,
        to: UserName,
        result: Result<(), RefuseReason>,
    },
    /// `peer` answered our request `chat_id`.
    Answered {
        chat_id: ChatId,
        peer: UserName,
        peer_key: PublicKey,
        result: Result<(), RefuseReason>,
        reply: Mailbox,
    },
    /// A relayed E2E message from `from`.
    Relay {
        chat_id: ChatId,
        from: UserName,
        kind: RelayKind,
        noise: Box<[u8]>,
    },
    /// The peer of `chat_id` left.
    PeerLeft { chat_id: ChatId },
    /// The requester of `chat_id` withdrew.
    Cancel { chat_id: ChatId },
    /// The same user logged in elsewhere.
    Replaced,
    /// The rate state this user's session on another node ended with: merge
    /// it (`ServerSession::merge_rate_state`).
    MergeRates(RateState),
    /// A cluster node was lost (silent past its TTL): a chat with a user
    /// of that node is over.
    NodeLost { node: NodeId },
}

impl Cmd {
    /// Ordinary traffic that may be refused when the mailbox is full: a
    /// relayed message (the chat then ends) or a new request (the requester
    /// hears `Busy`). Everything else must arrive.
    fn is_ordinary(&self) -> bool {
        matches!(self, Cmd::Relay { .. } | Cmd::DeliverRequest { .. })
    }
}

/// Ordinary commands (relayed messages, new chat requests) a session's
/// mailbox holds at most. A peer that falls this far behind loses relayed
/// messages, which ends its chat; a request to it is answered `Busy`.
pub const MAILBOX_CAPACITY: usize = 1024;

/// Room kept in every mailbox for the commands that must arrive (`Replaced`,
/// `PeerLeft`, answers, cancellations). Each of them answers something the
/// receiving session itself did (a chat it is in, a request it made or
/// received), so far fewer can be in flight; if the reserve is ever full the
/// receiving session is hopelessly behind, and it is dropped rather than
/// left with a lost message.
pub const CONTROL_RESERVE: usize = 1024;

/// A handle to a session task, on this node or another.
#[derive(Clone, Debug)]
pub struct Mailbox {
    /// Id of the session (connection) on its node.
    pub session: u64,
    route: Route,
}

#[derive(Clone, Debug)]
enum Route {
    /// A session task of this process.
    Local {
        tx: mpsc::Sender<Cmd>,
        /// Ordinary commands queued (not yet received).
        ordinary: Arc<AtomicUsize>,
        /// Set when a command that must arrive found no room.
        overflowed: Arc<AtomicBool>,
    },
    /// A session of `user` on another node of the cluster.
    Remote(Arc<RemoteRoute>),
}

#[derive(Debug)]
struct RemoteRoute {
    cluster: Arc<Cluster>,
    node: NodeId,
    user: UserName,
    /// Cleared when that node is lost.
    alive: Arc<AtomicBool>,
}

/// The receiving end of a [`Mailbox`].
pub struct Inbox {
    rx: mpsc::Receiver<Cmd>,
    ordinary: Arc<AtomicUsize>,
    overflowed: Arc<AtomicBool>,
}

impl Inbox {
    fn took(&self, cmd: Option<Cmd>) -> Option<Cmd> {
        if cmd.as_ref().is_some_and(Cmd::is_ordinary) {
            self.ordinary.fetch_sub(1, Ordering::AcqRel);
        }
        cmd
    }

    /// The next command.
    pub async fn recv(&mut self) -> Option<Cmd> {
        let cmd = self.rx.recv().await;
        self.took(cmd)
    }

    /// The next command, if one is queued.
    pub fn try_recv(&mut self) -> Option<Cmd> {
        let cmd = self.rx.try_recv().ok();
        self.took(cmd)
    }

    /// True if a command that must arrive was lost: drop this session.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// Why a post failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostError {
    /// The session is gone.
    Gone,
    /// The session is too far behind (ordinary commands only), or the
    /// link to its node is.
    Full,
    /// The session is on another node and the link to NATS is down.
    Unreachable,
}

impl Mailbox {
    /// A new mailbox and its receiving end.
    pub fn new(session: u64) -> (Self, Inbox) {
        let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY.saturating_add(CONTROL_RESERVE));
        let ordinary = Arc::new(AtomicUsize::new(0));
        let overflowed = Arc::new(AtomicBool::new(false));
        (
            Mailbox {
                session,
                route: Route::Local {
                    tx,
                    ordinary: ordinary.clone(),
                    overflowed: overflowed.clone(),
                },
            },
            Inbox {
                rx,
                ordinary,
                overflowed,
            },
        )
    }

    /// The mailbox of session `session` of `user` on another node.
    pub fn remote(
        cluster: Arc<Cluster>,
        node: NodeId,
        user: UserName,
        session: u64,
        alive: Arc<AtomicBool>,
    ) -> Self {
        Mailbox {
            session,
            route: Route::Remote(Arc::new(RemoteRoute {
                cluster,
                node,
                user,
                alive,
            })),
        }
    }

    /// The cluster node of a remote session (`None`: this process).
    pub fn node(&self) -> Option<NodeId> {
        match &self.route {
            Route::Local { .. } => None,
            Route::Remote(r) => Some(r.node),
        }
    }

    /// Posts without waiting.
    pub fn try_post(&self, cmd: Cmd) -> Result<(), PostError> {
        let (tx, ordinary_count, overflowed) = match &self.route {
            Route::Local {
                tx,
                ordinary,
                overflowed,
            } => (tx, ordinary, overflowed),
            Route::Remote(r) => {
                return r
                    .cluster
                    .send_cmd(r.node, &r.alive, &r.user, self.session, cmd)
            }
        };
        let ordinary = cmd.is_ordinary();
        if tx.is_closed() {
            return Err(PostError::Gone);
        }
        if ordinary && ordinary_count.fetch_add(1, Ordering::AcqRel) >= MAILBOX_CAPACITY {
            ordinary_count.fetch_sub(1, Ordering::AcqRel);
            return Err(PostError::Full);
        }
        match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(e) => {
                if ordinary {
                    ordinary_count.fetch_sub(1, Ordering::AcqRel);
                }
                match e {
                    mpsc::error::TrySendError::Closed(_) => Err(PostError::Gone),
                    mpsc::error::TrySendError::Full(_) if ordinary => Err(PostError::Full),
                    mpsc::error::TrySendError::Full(_) => {
                        overflowed.store(true, Ordering::Release);
                        Err(PostError::Full)
                    }
                }
            }
        }
    }

    /// Posts without waiting; false if the session is gone or too far behind.
    pub fn post(&self, cmd: Cmd) -> bool {
        self.try_post(cmd).is_ok()
    }
}

/// A local session in the online list.
#[derive(Clone, Debug)]
pub struct LocalUser {
    /// The key it logged in with.
    pub key: PublicKey,
    /// Its mailbox.
    pub mailbox: Mailbox,
    /// Its login's stamp (the cluster's order of one user's logins; 0 on a
    /// server without a cluster).
    pub stamp: u64,
}

/// The online users.
#[derive(Default)]
pub struct Presence {
    /// This process's sessions (lock order: this map, then the cluster's
    /// remote users; the names cache is never taken while holding it).
    pub(crate) online: RwLock<HashMap<UserName, LocalUser>>,
    /// The sorted names, built on the first listing after a change.
    names: Mutex<Option<Arc<[UserName]>>>,
    /// Rate-limit state of users' ended sessions, so that logging in again
    /// does not refill a user's buckets (bounded by the registered names;
    /// entries older than [`RATE_MEMORY`] are forgotten: their buckets would
    /// be full again).
    rates: Mutex<(RateMemory, u32)>,
    /// The other nodes, with `--nats`.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

/// Users' last rate-limit state and when their session ended.
type RateMemory = HashMap<UserName, (RateState, std::time::Instant)>;

/// How long the rate-limit state of an ended session is kept.
pub const RATE_MEMORY: std::time::Duration = std::time::Duration::from_secs(600);

impl Presence {
    /// The online list of a cluster member.
    pub fn clustered(cluster: Arc<Cluster>) -> Self {
        Presence {
            cluster: Some(cluster),
            ..Presence::default()
        }
    }

    /// The cluster this node is part of (`None` without `--nats`): its
    /// `link_state()` and `nodes()` are what an operator's health and
    /// metrics endpoints report of it.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Keeps the rate-limit state of `user`'s session that ends now; in a
    /// cluster, every node is told it too (a user who moves to another node
    /// continues there with it: 9.1's limits hold in the whole cluster).
    pub fn keep_rates(&self, user: &UserName, state: RateState) {
        if let Some(cluster) = &self.cluster {
            cluster.publish_presence(&crate::cluster::wire::Presence::Rates {
                user: user.clone(),
                debts: state.debts(securecom_host::now()),
            });
        }
        self.remember_rates(user, state);
    }

    /// Keeps `state` in the rate memory of `user`, merged (each bucket the
    /// emptier) with what is kept already.
    pub fn remember_rates(&self, user: &UserName, state: RateState) {
        let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let (map, inserts) = &mut *r;
        let now = std::time::Instant::now();
        let state = match map.get(user) {
            Some((kept, at)) if now.duration_since(*at) < RATE_MEMORY => {
                kept.merged(&state, securecom_host::now())
            }
            _ => state,
        };
        map.insert(user.clone(), (state, now));
        *inserts = inserts.wrapping_add(1);
        if *inserts % 1024 == 0 {
            map.retain(|_, (_, at)| now.duration_since(*at) < RATE_MEMORY);
        }
    }

    /// The rate-limit state `user`'s last session ended with, if recent.
    pub fn take_rates(&self, user: &str) -> Option<RateState> {
        let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        r.0.remove(user)
            .filter(|(_, at)| at.elapsed() < RATE_MEMORY)
            .map(|(state, _)| state)
    }

    /// The online list changed: the next listing is built anew.
    pub(crate) fn changed(&self) {
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Registers `user`; returns the session it replaces on this node, if
    /// any. In a cluster the login is announced, and a session of `user` on
    /// another node is replaced by its own node when the news arrives.
    pub fn login(&self, user: UserName, key: PublicKey, mailbox: Mailbox) -> Option<Mailbox> {
        let session = mailbox.session;
        let mut map = self.online.write().unwrap_or_else(|e| e.into_inner());
        let mut stamp = 0;
        if let Some(cluster) = &self.cluster {
            // Newer than any login of this user we know of, here or elsewhere.
            let mut remote = cluster.remote();
            let seen = remote
                .users
                .remove(&user)
                .map(|u| u.online.stamp)
                .into_iter()
                .chain(map.get(&user).map(|u| u.stamp))
                .max()
                .unwrap_or(0);
            stamp = crate::cluster::unix_ms().max(seen.saturating_add(1));
        }
        let old = map
            .insert(
                user.clone(),
                LocalUser {
                    key,
                    mailbox,
                    stamp,
                },
            )
            .map(|u| u.mailbox);
        if let Some(cluster) = &self.cluster {
            // Under the map's lock: versions go out in their order.
            let version = cluster.next_version();
            cluster.publish_presence(&crate::cluster::wire::Presence::Login {
                version,
                online: crate::cluster::wire::Online {
                    user,
                    key,
                    session,
                    stamp,
                },
            });
        }
        // Never hold the map while taking the cache's lock (`names` takes
        // them in the other order).
        drop(map);
        self.changed();
        old
    }

    /// Removes `user` if `session` is still the one registered.
    pub fn logout(&self, user: &str, session: u64) {
        let mut map = self.online.write().unwrap_or_else(|e| e.into_inner());
        if map.get(user).is_some_and(|u| u.mailbox.session == session) {
            if let (Some((name, _)), Some(cluster)) = (map.remove_entry(user), &self.cluster) {
                let version = cluster.next_version();
                cluster.publish_presence(&crate::cluster::wire::Presence::Logout {
                    version,
                    user: name,
                    session,
                });
            }
            drop(map);
            self.changed();
        }
    }

    /// The mailbox of `user`, if online (here or on another node).
    pub fn find(&self, user: &str) -> Option<Mailbox> {
        self.find_with_key(user).map(|(_, m)| m)
    }

    /// The key `user` logged in with and its mailbox, if online (here or on
    /// another node).
    pub fn find_with_key(&self, user: &str) -> Option<(PublicKey, Mailbox)> {
        let local = self
            .online
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .map(|u| (u.key, u.mailbox.clone()));
        if local.is_some() {
            return local;
        }
        let cluster = self.cluster.as_ref()?;
        let remote = cluster.remote().users.get(user).cloned()?;
        Some((
            remote.online.key,
            Mailbox::remote(
                cluster.clone(),
                remote.node,
                remote.online.user,
                remote.online.session,
                remote.alive,
            ),
        ))
    }

    /// Sorted names of everyone online (in the whole cluster): one shared
    /// copy until the next change.
    pub fn names(&self) -> Arc<[UserName]> {
        let mut cache = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(names) = &*cache {
            return names.clone();
        }
        let mut v: Vec<_> = self
            .online
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        if let Some(cluster) = &self.cluster {
            v.extend(cluster.remote().users.keys().cloned());
        }
        v.sort();
        v.dedup();
        let names: Arc<[UserName]> = v.into();
        *cache = Some(names.clone());
        names
    }

    /// How many are online on this node.
    pub fn count(&self) -> usize {
        self.online.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A fresh chat id: random and never 0, so that the ids a user sees say
/// nothing about other users' chats (a counter would tell how many chats the
/// server set up).
pub fn fresh_chat_id<R: rand_core::RngCore>(rng: &mut R) -> ChatId {
    loop {
        let id = rng.next_u32();
        if id != 0 {
            return id;
        }
    }
}
