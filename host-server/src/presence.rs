//! Who is online, and how to reach their session task.
//!
//! Each logged-in user has one session task; other tasks reach it through
//! its [`Mailbox`]. The map is touched on login, logout and chat requests;
//! relayed chat messages go straight to the peer's mailbox, which the
//! session task caches when the chat starts, so the hot path takes no
//! shared lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use securecom_core::message::{ChatId, RefuseReason};
use securecom_core::server::RelayKind;
use securecom_core::{PublicKey, RateState, UserName};
use tokio::sync::mpsc;

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

/// A handle to a session task.
#[derive(Clone, Debug)]
pub struct Mailbox {
    /// Unique id of the session (connection).
    pub session: u64,
    tx: mpsc::Sender<Cmd>,
    /// Ordinary commands queued (not yet received).
    ordinary: Arc<AtomicUsize>,
    /// Set when a command that must arrive found no room.
    overflowed: Arc<AtomicBool>,
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
    /// The session is too far behind (ordinary commands only).
    Full,
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
                tx,
                ordinary: ordinary.clone(),
                overflowed: overflowed.clone(),
            },
            Inbox {
                rx,
                ordinary,
                overflowed,
            },
        )
    }

    /// Posts without waiting.
    pub fn try_post(&self, cmd: Cmd) -> Result<(), PostError> {
        let ordinary = cmd.is_ordinary();
        if self.tx.is_closed() {
            return Err(PostError::Gone);
        }
        if ordinary && self.ordinary.fetch_add(1, Ordering::AcqRel) >= MAILBOX_CAPACITY {
            self.ordinary.fetch_sub(1, Ordering::AcqRel);
            return Err(PostError::Full);
        }
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(e) => {
                if ordinary {
                    self.ordinary.fetch_sub(1, Ordering::AcqRel);
                }
                match e {
                    mpsc::error::TrySendError::Closed(_) => Err(PostError::Gone),
                    mpsc::error::TrySendError::Full(_) if ordinary => Err(PostError::Full),
                    mpsc::error::TrySendError::Full(_) => {
                        self.overflowed.store(true, Ordering::Release);
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

/// The online users.
#[derive(Default)]
pub struct Presence {
    online: RwLock<HashMap<UserName, (PublicKey, Mailbox)>>,
    /// The sorted names, built on the first listing after a change.
    names: Mutex<Option<Arc<[UserName]>>>,
    /// Rate-limit state of users' ended sessions, so that logging in again
    /// does not refill a user's buckets (bounded by the registered names;
    /// entries older than [`RATE_MEMORY`] are forgotten: their buckets would
    /// be full again).
    rates: Mutex<(RateMemory, u32)>,
}

/// Users' last rate-limit state and when their session ended.
type RateMemory = HashMap<UserName, (RateState, std::time::Instant)>;

/// How long the rate-limit state of an ended session is kept.
pub const RATE_MEMORY: std::time::Duration = std::time::Duration::from_secs(600);

impl Presence {
    /// Keeps the rate-limit state of `user`'s session that ends now.
    pub fn keep_rates(&self, user: &UserName, state: RateState) {
        let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let (map, inserts) = &mut *r;
        let now = std::time::Instant::now();
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

    fn changed(&self) {
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Registers `user`; returns the session it replaces, if any.
    pub fn login(&self, user: UserName, key: PublicKey, mailbox: Mailbox) -> Option<Mailbox> {
        let mut map = self.online.write().unwrap_or_else(|e| e.into_inner());
        let old = map.insert(user, (key, mailbox)).map(|(_, m)| m);
        // Never hold the map while taking the cache's lock (`names` takes
        // them in the other order).
        drop(map);
        self.changed();
        old
    }

    /// Removes `user` if `session` is still the one registered.
    pub fn logout(&self, user: &str, session: u64) {
        let mut map = self.online.write().unwrap_or_else(|e| e.into_inner());
        if map.get(user).is_some_and(|(_, m)| m.session == session) {
            map.remove(user);
            drop(map);
            self.changed();
        }
    }

    /// The mailbox of `user`, if online.
    pub fn find(&self, user: &str) -> Option<Mailbox> {
        self.find_with_key(user).map(|(_, m)| m)
    }

    /// The key `user` logged in with and its mailbox, if online.
    pub fn find_with_key(&self, user: &str) -> Option<(PublicKey, Mailbox)> {
        self.online
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    /// Sorted names of everyone online: one shared copy until the next change.
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
        v.sort();
        let names: Arc<[UserName]> = v.into();
        *cache = Some(names.clone());
        names
    }

    /// How many are online.
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
