//! The messages nodes exchange over NATS, and their bytes.
//!
//! Hand-written and small, so that the decoder is easy to audit: every
//! message starts with a format byte ([`FORMAT`]) and a kind byte; integers
//! are big-endian; a user name is one length byte and 1 to 32 bytes that
//! must pass [`valid_user_name`]; a relayed E2E message is a 2-byte length
//! and at most [`MAX_FRAME`] bytes. Bytes from NATS never panic the decoder:
//! anything short, long, unknown or invalid is `None` (and dropped).
//!
//! Nothing secret is in any of them: user names, public keys, session and
//! chat ids, refusal reasons, and E2E ciphertext the nodes cannot read.

use securecom_core::message::{valid_user_name, ChatId, RefuseReason};
use securecom_core::server::RelayKind;
use securecom_core::{PublicKey, RateState, UserName, MAX_FRAME};

/// The format of every message (a node that sees another format drops it).
pub const FORMAT: u8 = 1;

/// A command from a session on one node to a session on another (subject
/// `PREFIX.node.<to node>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sending session's user (`None` for `PeerLeft` and `Cancel`,
    /// which need no reply; encoded as an empty name).
    pub from_user: Option<UserName>,
    /// The sending session's id on its node (0: whichever session the user has).
    pub from_session: u64,
    /// The receiving session's user.
    pub to_user: UserName,
    /// The receiving session's id on its node (0: whichever session the user has).
    pub to_session: u64,
    /// What to do.
    pub cmd: RemoteCmd,
}

/// The commands of `presence::Cmd` that cross nodes; the reply routes of
/// `DeliverRequest` and `Answered` are the envelope's sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteCmd {
    /// `Cmd::DeliverRequest`.
    DeliverRequest {
        /// The new chat's id.
        chat_id: ChatId,
        /// The requester's key.
        from_key: PublicKey,
    },
    /// `Cmd::Delivered`.
    Delivered {
        /// The request's chat id.
        chat_id: ChatId,
        /// The outcome.
        result: Result<(), RefuseReason>,
    },
    /// `Cmd::Answered`.
    Answered {
        /// The request's chat id.
        chat_id: ChatId,
        /// The answerer's key.
        peer_key: PublicKey,
        /// The answer.
        result: Result<(), RefuseReason>,
    },
    /// `Cmd::Relay`.
    Relay {
        /// The chat.
        chat_id: ChatId,
        /// Handshake or data.
        kind: RelayKind,
        /// The E2E ciphertext.
        noise: Box<[u8]>,
    },
    /// `Cmd::PeerLeft`.
    PeerLeft {
        /// The chat.
        chat_id: ChatId,
    },
    /// `Cmd::Cancel`.
    Cancel {
        /// The chat.
        chat_id: ChatId,
    },
}

/// One online user, as a node announces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Online {
    /// Who.
    pub user: UserName,
    /// The key they logged in with.
    pub key: PublicKey,
    /// Their session's id on that node.
    pub session: u64,
    /// When they logged in: the order of logins of one user in the cluster
    /// (milliseconds since 1970, made larger than any login of that user the
    /// node had seen); the highest (stamp, node) wins.
    pub stamp: u64,
}

/// Presence news from one node (subject `PREFIX.presence.<node>`). Each
/// change of a node's online list raises its `version` by one: a receiver
/// that sees a gap asks for a [`Presence::Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// "I am alive, at this version."
    Heartbeat {
        /// The node's version.
        version: u64,
    },
    /// A user logged in.
    Login {
        /// The version after the change.
        version: u64,
        /// Who.
        online: Online,
    },
    /// A session ended.
    Logout {
        /// The version after the change.
        version: u64,
        /// Who.
        user: UserName,
        /// Which session.
        session: u64,
    },
    /// The rate-limit state a session of `user` on this node ended with
    /// (9.1's per-user rate memory, for the whole cluster): each bucket's
    /// debt in ms at sending ([`securecom_core::RateState::debts`]). Not
    /// part of the online list (no version).
    Rates {
        /// Whose.
        user: UserName,
        /// The debts.
        debts: [u64; RateState::BUCKETS],
    },
    /// One page of the node's whole online list at `version`.
    Snapshot {
        /// The version it shows.
        version: u64,
        /// Page number, from 0.
        page: u32,
        /// True on the last page.
        last: bool,
        /// The users on this page (at most [`SNAPSHOT_PAGE`]).
        users: Vec<Online>,
    },
}

/// Users on one snapshot page: about 80 bytes each, so a page stays far
/// below any NATS `max_payload` one would configure (see the README).
pub const SNAPSHOT_PAGE: usize = 128;

/// Sent to one node (subject `PREFIX.node.<node>`): what it should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeMessage {
    /// A command for one of its sessions.
    Cmd(Envelope),
    /// "Publish your snapshot."
    SnapshotRequest,
}

const K_DELIVER: u8 = 1;
const K_DELIVERED: u8 = 2;
const K_ANSWERED: u8 = 3;
const K_RELAY: u8 = 4;
const K_PEER_LEFT: u8 = 5;
const K_CANCEL: u8 = 6;
const K_SNAPSHOT_REQUEST: u8 = 7;

const P_HEARTBEAT: u8 = 16;
const P_LOGIN: u8 = 17;
const P_LOGOUT: u8 = 18;
const P_SNAPSHOT: u8 = 19;
const P_RATES: u8 = 20;

fn reason_code(r: RefuseReason) -> u8 {
    match r {
        RefuseReason::Declined => 1,
        RefuseReason::Busy => 2,
        RefuseReason::Offline => 3,
        RefuseReason::UnknownUser => 4,
        RefuseReason::Unreachable => 5,
        RefuseReason::SelfRequest => 6,
        RefuseReason::Withdrawn => 7,
        RefuseReason::NoAnswer => 8,
        RefuseReason::TooSoon => 9,
    }
}

fn result_code(r: Result<(), RefuseReason>) -> u8 {
    match r {
        Ok(()) => 0,
        Err(reason) => reason_code(reason),
    }
}

fn result_of(code: u8) -> Option<Result<(), RefuseReason>> {
    Some(Err(match code {
        0 => return Some(Ok(())),
        1 => RefuseReason::Declined,
        2 => RefuseReason::Busy,
        3 => RefuseReason::Offline,
        4 => RefuseReason::UnknownUser,
        5 => RefuseReason::Unreachable,
        6 => RefuseReason::SelfRequest,
        7 => RefuseReason::Withdrawn,
        8 => RefuseReason::NoAnswer,
        9 => RefuseReason::TooSoon,
        _ => return None,
    }))
}

struct Writer(Vec<u8>);

impl Writer {
    fn new(kind: u8, capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity);
        v.push(FORMAT);
        v.push(kind);
        Writer(v)
    }
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_be_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_be_bytes());
    }
    fn key(&mut self, k: &PublicKey) {
        self.0.extend_from_slice(&k.0);
    }
    fn name(&mut self, n: &UserName) {
        // A `UserName` holds at most 32 bytes.
        self.0.push(u8::try_from(n.len()).unwrap_or(u8::MAX));
        self.0.extend_from_slice(n.as_bytes());
    }
    fn opt_name(&mut self, n: Option<&UserName>) {
        match n {
            Some(n) => self.name(n),
            None => self.0.push(0),
        }
    }
    fn online(&mut self, o: &Online) {
        self.name(&o.user);
        self.key(&o.key);
        self.u64(o.session);
        self.u64(o.stamp);
    }
}

/// A cursor over untrusted bytes: every read checks the length.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn key(&mut self) -> Option<PublicKey> {
        Some(PublicKey(self.take(32)?.try_into().ok()?))
    }
    fn name(&mut self) -> Option<UserName> {
        let len = usize::from(self.u8()?);
        let s = std::str::from_utf8(self.take(len)?).ok()?;
        if !valid_user_name(s) {
            return None;
        }
        UserName::try_from(s).ok()
    }
    /// An empty name is `None`.
    fn opt_name(&mut self) -> Option<Option<UserName>> {
        if self.0.first() == Some(&0) {
            self.take(1)?;
            return Some(None);
        }
        self.name().map(Some)
    }
    fn online(&mut self) -> Option<Online> {
        Some(Online {
            user: self.name()?,
            key: self.key()?,
            session: self.u64()?,
            stamp: self.u64()?,
        })
    }
    /// The format and kind bytes.
    fn header(&mut self) -> Option<u8> {
        if self.u8()? != FORMAT {
            return None;
        }
        self.u8()
    }
    /// `Some(v)` only if nothing is left over.
    fn end<T>(&self, v: T) -> Option<T> {
        self.0.is_empty().then_some(v)
    }
}

impl NodeMessage {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let Envelope {
            from_user,
            from_session,
            to_user,
            to_session,
            cmd,
        } = match self {
            NodeMessage::SnapshotRequest => return Writer::new(K_SNAPSHOT_REQUEST, 2).0,
            NodeMessage::Cmd(e) => e,
        };
        let (kind, extra) = match cmd {
            RemoteCmd::DeliverRequest { .. } => (K_DELIVER, 36),
            RemoteCmd::Delivered { .. } => (K_DELIVERED, 5),
            RemoteCmd::Answered { .. } => (K_ANSWERED, 37),
            RemoteCmd::Relay { noise, .. } => (K_RELAY, noise.len().saturating_add(7)),
            RemoteCmd::PeerLeft { .. } => (K_PEER_LEFT, 4),
            RemoteCmd::Cancel { .. } => (K_CANCEL, 4),
        };
        let mut w = Writer::new(kind, extra.saturating_add(2 + 2 * 33 + 16));
        w.opt_name(from_user.as_ref());
        w.u64(*from_session);
        w.name(to_user);
        w.u64(*to_session);
        match cmd {
            RemoteCmd::DeliverRequest { chat_id, from_key } => {
                w.u32(*chat_id);
                w.key(from_key);
            }
            RemoteCmd::Delivered { chat_id, result } => {
                w.u32(*chat_id);
                w.u8(result_code(*result));
            }
            RemoteCmd::Answered {
                chat_id,
                peer_key,
                result,
            } => {
                w.u32(*chat_id);
                w.key(peer_key);
                w.u8(result_code(*result));
            }
            RemoteCmd::Relay {
                chat_id,
                kind,
                noise,
            } => {
                w.u32(*chat_id);
                w.u8(match kind {
                    RelayKind::Handshake => 0,
                    RelayKind::Data => 1,
                });
                // Relayed messages are frames' payloads, below MAX_FRAME
                // (< 65 536); anything longer would be refused on arrival.
                let noise = noise.get(..MAX_FRAME).unwrap_or(noise);
                let len = u16::try_from(noise.len()).unwrap_or(0);
                w.0.extend_from_slice(&len.to_be_bytes());
                w.0.extend_from_slice(noise.get(..usize::from(len)).unwrap_or_default());
            }
            RemoteCmd::PeerLeft { chat_id } | RemoteCmd::Cancel { chat_id } => w.u32(*chat_id),
        }
        w.0
    }

    /// Parses bytes from NATS; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<NodeMessage> {
        let mut r = Reader(bytes);
        let kind = r.header()?;
        if kind == K_SNAPSHOT_REQUEST {
            return r.end(NodeMessage::SnapshotRequest);
        }
        let from_user = r.opt_name()?;
        let from_session = r.u64()?;
        let to_user = r.name()?;
        let to_session = r.u64()?;
        let cmd = match kind {
            K_DELIVER => RemoteCmd::DeliverRequest {
                chat_id: r.u32()?,
                from_key: r.key()?,
            },
            K_DELIVERED => RemoteCmd::Delivered {
                chat_id: r.u32()?,
                result: result_of(r.u8()?)?,
            },
            K_ANSWERED => RemoteCmd::Answered {
                chat_id: r.u32()?,
                peer_key: r.key()?,
                result: result_of(r.u8()?)?,
            },
            K_RELAY => {
                let chat_id = r.u32()?;
                let kind = match r.u8()? {
                    0 => RelayKind::Handshake,
                    1 => RelayKind::Data,
                    _ => return None,
                };
                let len = usize::from(r.u16()?);
                if len > MAX_FRAME {
                    return None;
                }
                RemoteCmd::Relay {
                    chat_id,
                    kind,
                    noise: r.take(len)?.into(),
                }
            }
            K_PEER_LEFT => RemoteCmd::PeerLeft { chat_id: r.u32()? },
            K_CANCEL => RemoteCmd::Cancel { chat_id: r.u32()? },
            _ => return None,
        };
        r.end(NodeMessage::Cmd(Envelope {
            from_user,
            from_session,
            to_user,
            to_session,
            cmd,
        }))
    }
}

impl Presence {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Presence::Heartbeat { version } => {
                let mut w = Writer::new(P_HEARTBEAT, 10);
                w.u64(*version);
                w.0
            }
            Presence::Login { version, online } => {
                let mut w = Writer::new(P_LOGIN, 90);
                w.u64(*version);
                w.online(online);
                w.0
            }
            Presence::Logout {
                version,
                user,
                session,
            } => {
                let mut w = Writer::new(P_LOGOUT, 60);
                w.u64(*version);
                w.name(user);
                w.u64(*session);
                w.0
            }
            Presence::Rates { user, debts } => {
                let mut w = Writer::new(P_RATES, 40 + 8 * RateState::BUCKETS);
                w.name(user);
                for d in debts {
                    w.u64(*d);
                }
                w.0
            }
            Presence::Snapshot {
                version,
                page,
                last,
                users,
            } => {
                let mut w = Writer::new(
                    P_SNAPSHOT,
                    users.len().saturating_mul(81).saturating_add(20),
                );
                w.u64(*version);
                w.u32(*page);
                w.u8(u8::from(*last));
                // Callers page by SNAPSHOT_PAGE.
                let n = users.len().min(SNAPSHOT_PAGE);
                w.0.extend_from_slice(&u16::try_from(n).unwrap_or(0).to_be_bytes());
                for o in users.iter().take(n) {
                    w.online(o);
                }
                w.0
            }
        }
    }

    /// Parses bytes from NATS; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Presence> {
        let mut r = Reader(bytes);
        let msg = match r.header()? {
            P_HEARTBEAT => Presence::Heartbeat { version: r.u64()? },
            P_LOGIN => Presence::Login {
                version: r.u64()?,
                online: r.online()?,
            },
            P_LOGOUT => Presence::Logout {
                version: r.u64()?,
                user: r.name()?,
                session: r.u64()?,
            },
            P_RATES => {
                let user = r.name()?;
                let mut debts = [0u64; RateState::BUCKETS];
                for d in &mut debts {
                    *d = r.u64()?;
                }
                Presence::Rates { user, debts }
            }
            P_SNAPSHOT => {
                let version = r.u64()?;
                let page = r.u32()?;
                let last = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                let n = usize::from(r.u16()?);
                if n > SNAPSHOT_PAGE {
                    return None;
                }
                let mut users = Vec::with_capacity(n);
                for _ in 0..n {
                    users.push(r.online()?);
                }
                Presence::Snapshot {
                    version,
                    page,
                    last,
                    users,
                }
            }
            _ => return None,
        };
        r.end(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    fn name(s: &str) -> UserName {
        UserName::try_from(s).unwrap()
    }

    fn samples() -> (Vec<NodeMessage>, Vec<Presence>) {
        let env = |cmd| {
            NodeMessage::Cmd(Envelope {
                from_user: Some(name("alice")),
                from_session: 7,
                to_user: name("bob.b-2_"),
                to_session: u64::MAX,
                cmd,
            })
        };
        let online = |i: u8| Online {
            user: name(&format!("user{i}")),
            key: PublicKey([i; 32]),
            session: u64::from(i) * 1000,
            stamp: 1_700_000_000_000 + u64::from(i),
        };
        let nodes = vec![
            NodeMessage::SnapshotRequest,
            env(RemoteCmd::DeliverRequest {
                chat_id: 0xdead_beef,
                from_key: PublicKey([3; 32]),
            }),
            env(RemoteCmd::Delivered {
                chat_id: 1,
                result: Err(RefuseReason::Busy),
            }),
            env(RemoteCmd::Delivered {
                chat_id: 1,
                result: Ok(()),
            }),
            env(RemoteCmd::Answered {
                chat_id: 2,
                peer_key: PublicKey([4; 32]),
                result: Err(RefuseReason::TooSoon),
            }),
            env(RemoteCmd::Relay {
                chat_id: 3,
                kind: RelayKind::Handshake,
                noise: vec![9; MAX_FRAME].into(),
            }),
            env(RemoteCmd::Relay {
                chat_id: 3,
                kind: RelayKind::Data,
                noise: Box::new([]),
            }),
            env(RemoteCmd::PeerLeft { chat_id: 4 }),
            env(RemoteCmd::Cancel { chat_id: 5 }),
            NodeMessage::Cmd(Envelope {
                from_user: None,
                from_session: 0,
                to_user: name("b"),
                to_session: 3,
                cmd: RemoteCmd::PeerLeft { chat_id: 6 },
            }),
        ];
        let presence = vec![
            Presence::Heartbeat { version: 42 },
            Presence::Login {
                version: 43,
                online: online(1),
            },
            Presence::Logout {
                version: 44,
                user: name("x"),
                session: 9,
            },
            Presence::Snapshot {
                version: 45,
                page: 0,
                last: false,
                users: (0..SNAPSHOT_PAGE as u8).map(online).collect(),
            },
            Presence::Snapshot {
                version: 45,
                page: 1,
                last: true,
                users: vec![],
            },
            Presence::Rates {
                user: name("mallory"),
                debts: [0, 1, u64::MAX, 60_000, 2, 3, 4],
            },
        ];
        (nodes, presence)
    }

    #[test]
    fn every_message_round_trips() {
        let (nodes, presence) = samples();
        for m in nodes {
            assert_eq!(NodeMessage::decode(&m.encode()), Some(m));
        }
        for m in presence {
            assert_eq!(Presence::decode(&m.encode()), Some(m));
        }
    }

    #[test]
    fn every_reason_round_trips() {
        for code in 0..=9 {
            assert_eq!(result_code(result_of(code).unwrap()), code);
        }
        assert_eq!(result_of(10), None);
    }

    #[test]
    fn truncated_extended_or_altered_bytes_are_refused_without_panic() {
        let (nodes, presence) = samples();
        let mut all: Vec<Vec<u8>> = nodes.iter().map(NodeMessage::encode).collect();
        all.extend(presence.iter().map(Presence::encode));
        for bytes in &all {
            for cut in 0..bytes.len() {
                assert_eq!(NodeMessage::decode(&bytes[..cut]), None);
                assert_eq!(Presence::decode(&bytes[..cut]), None);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(NodeMessage::decode(&longer), None);
            assert_eq!(Presence::decode(&longer), None);
            let mut other_format = bytes.clone();
            other_format[0] = FORMAT + 1;
            assert_eq!(NodeMessage::decode(&other_format), None);
            assert_eq!(Presence::decode(&other_format), None);
        }
        // An invalid user name (upper case) is refused.
        let mut bad = nodes[2].encode();
        bad[3] = b'A';
        assert_eq!(NodeMessage::decode(&bad), None);
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let (nodes, presence) = samples();
        let mut all: Vec<Vec<u8>> = nodes.iter().map(NodeMessage::encode).collect();
        all.extend(presence.iter().map(Presence::encode));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        for i in 0..20_000 {
            let mut bytes = all[i % all.len()].clone();
            for _ in 0..1 + rng.next_u32() % 4 {
                let at = rng.next_u32() as usize % bytes.len();
                bytes[at] = rng.next_u32() as u8;
            }
            if i % 3 == 0 {
                bytes.truncate(rng.next_u32() as usize % (bytes.len() + 1));
            }
            // Decoded or not, a message that decodes encodes back the same.
            if let Some(m) = NodeMessage::decode(&bytes) {
                assert_eq!(m.encode(), bytes);
            }
            if let Some(m) = Presence::decode(&bytes) {
                assert_eq!(m.encode(), bytes);
            }
        }
    }
}
