//! Who is online, and how to reach their session task.
//!
//! Each logged-in user has one session task; other tasks reach it through
//! its [`Mailbox`]. The map is touched on login, logout and chat requests;
//! relayed chat messages go straight to the peer's mailbox, which the
//! session task caches when the chat starts, so the hot path takes no
//! shared lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use securecom_core::message::{ChatId, RefuseReason};
use securecom_core::server::RelayKind;
use securecom_core::{PublicKey, UserName};
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

/// Capacity of a session's mailbox. A peer that falls this far behind loses
/// relayed messages, which ends its chat (the E2E layer detects the gap).
pub const MAILBOX_CAPACITY: usize = 1024;

/// A handle to a session task.
#[derive(Clone, Debug)]
pub struct Mailbox {
    /// Unique id of the session (connection).
    pub session: u64,
    tx: mpsc::Sender<Cmd>,
}

impl Mailbox {
    /// A new mailbox and its receiving end.
    pub fn new(session: u64) -> (Self, mpsc::Receiver<Cmd>) {
        let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
        (Mailbox { session, tx }, rx)
    }

    /// Posts without waiting; false if the session is gone or too far behind.
    pub fn post(&self, cmd: Cmd) -> bool {
        self.tx.try_send(cmd).is_ok()
    }
}

/// The online users.
#[derive(Default)]
pub struct Presence {
    online: RwLock<HashMap<UserName, (PublicKey, Mailbox)>>,
    next_chat: AtomicU64,
}

impl Presence {
    /// Registers `user`; returns the session it replaces, if any.
    pub fn login(&self, user: UserName, key: PublicKey, mailbox: Mailbox) -> Option<Mailbox> {
        let mut map = self.online.write().unwrap_or_else(|e| e.into_inner());
        map.insert(user, (key, mailbox)).map(|(_, m)| m)
    }

    /// Removes `user` if `session` is still the one registered.
    pub fn logout(&self, user: &str, session: u64) {
        let mut map = self.online.write().unwrap_or_else(|e| e.into_inner());
        if map.get(user).is_some_and(|(_, m)| m.session == session) {
            map.remove(user);
        }
    }

    /// The mailbox of `user`, if online.
    pub fn find(&self, user: &str) -> Option<Mailbox> {
        self.online
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .map(|(_, m)| m.clone())
    }

    /// Sorted names of everyone online.
    pub fn names(&self) -> Vec<UserName> {
        let mut v: Vec<_> = self
            .online
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// How many are online.
    pub fn count(&self) -> usize {
        self.online.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A fresh chat id (never 0).
    pub fn next_chat_id(&self) -> ChatId {
        const IDS: u64 = ChatId::MAX as u64;
        let n = self.next_chat.fetch_add(1, Ordering::Relaxed) % IDS;
        // `n < ChatId::MAX`: the id is in 1..=ChatId::MAX, it cannot saturate.
        (n as ChatId).saturating_add(1)
    }
}
