//! Model tests of the server's mailbox and presence (`presence.rs`), the path
//! every command between two session tasks takes (`session.rs`).
//!
//! Seeded random sequences are run against a plain model of what the code
//! promises, and compared after every step:
//!
//! - a mailbox holds at most [`MAILBOX_CAPACITY`] ordinary commands
//!   (`Relay`, `DeliverRequest`); the commands that must arrive (`PeerLeft`,
//!   `Answered`, `Replaced`, `Cancel`, `Delivered`) may use the whole channel,
//!   [`MAILBOX_CAPACITY`] + [`CONTROL_RESERVE`], so at least the reserve is
//!   always theirs; one that finds no room sets `overflowed()` (for good);
//! - commands arrive in the order they were posted (per sender, also when
//!   senders post from several threads);
//! - the ordinary counter returns to 0 once the inbox is drained (seen from
//!   outside: exactly [`MAILBOX_CAPACITY`] ordinary posts are taken again);
//! - presence: a login of an online user returns the older session's
//!   mailbox (which then gets `Replaced`, as `session.rs` does), a logout by
//!   a stale session id leaves the newer login, `names()` is sorted and up to
//!   date after every change, `find_with_key` gives the newest login's key.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use securecom_core::message::{ChatId, RefuseReason};
use securecom_core::server::RelayKind;
use securecom_core::{PublicKey, UserName};

use crate::presence::{
    Cmd, Inbox, Mailbox, PostError, Presence, CONTROL_RESERVE, MAILBOX_CAPACITY,
};

/// Commands a mailbox's channel holds in all.
const TOTAL: usize = MAILBOX_CAPACITY + CONTROL_RESERVE;

const SEEDS: u64 = 6;

fn rng(seed: u64, label: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ label)
}

/// A uniform number below `n`.
fn below(r: &mut ChaCha8Rng, n: usize) -> usize {
    (r.next_u64() % n as u64) as usize
}

/// True with probability `percent` / 100.
fn chance(r: &mut ChaCha8Rng, percent: u64) -> bool {
    r.next_u64() % 100 < percent
}

fn user(s: &str) -> UserName {
    UserName::try_from(s).unwrap()
}

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

// ------------------------------------------------------------------ commands

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Relay,
    DeliverRequest,
    PeerLeft,
    Answered,
    Replaced,
    Cancel,
    Delivered,
}

const ORDINARY: [Kind; 2] = [Kind::Relay, Kind::DeliverRequest];
const MUST_ARRIVE: [Kind; 5] = [
    Kind::PeerLeft,
    Kind::Answered,
    Kind::Replaced,
    Kind::Cancel,
    Kind::Delivered,
];

impl Kind {
    fn ordinary(self) -> bool {
        ORDINARY.contains(&self)
    }
}

/// Who posted a command, and its number among that sender's posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag {
    sender: u32,
    seq: u32,
}

const SEQ_BITS: u32 = 24;

impl Tag {
    fn chat_id(self) -> ChatId {
        assert!(self.seq < 1 << SEQ_BITS && self.sender < 1 << (32 - SEQ_BITS));
        (self.sender << SEQ_BITS) | self.seq
    }

    fn of(chat_id: ChatId) -> Self {
        Tag {
            sender: chat_id >> SEQ_BITS,
            seq: chat_id & ((1 << SEQ_BITS) - 1),
        }
    }

    fn sender_name(self) -> UserName {
        user(&format!("sender{}", self.sender))
    }
}

/// A command of `kind` that carries `tag` (`Replaced` carries nothing).
fn make(kind: Kind, tag: Tag, reply: &Mailbox) -> Cmd {
    let chat_id = tag.chat_id();
    let from = tag.sender_name();
    match kind {
        Kind::Relay => Cmd::Relay {
            chat_id,
            from,
            kind: RelayKind::Data,
            noise: tag.seq.to_be_bytes().into(),
        },
        Kind::DeliverRequest => Cmd::DeliverRequest {
            chat_id,
            from,
            from_key: key(7),
            reply: reply.clone(),
        },
        Kind::PeerLeft => Cmd::PeerLeft { chat_id },
        Kind::Answered => Cmd::Answered {
            chat_id,
            peer: from,
            peer_key: key(8),
            result: Ok(()),
            reply: reply.clone(),
        },
        Kind::Replaced => Cmd::Replaced,
        Kind::Cancel => Cmd::Cancel { chat_id },
        Kind::Delivered => Cmd::Delivered {
            chat_id,
            to: from,
            result: Err(RefuseReason::Busy),
        },
    }
}

/// The kind and tag of a received command (checking the fields that name
/// the sender agree with the tag).
fn describe(cmd: &Cmd) -> (Kind, Option<Tag>) {
    let check = |chat_id: ChatId, name: &UserName| {
        let tag = Tag::of(chat_id);
        assert_eq!(*name, tag.sender_name(), "{cmd:?}");
        Some(tag)
    };
    match cmd {
        Cmd::Relay {
            chat_id,
            from,
            noise,
            ..
        } => {
            let tag = check(*chat_id, from);
            assert_eq!(&noise[..], &Tag::of(*chat_id).seq.to_be_bytes());
            (Kind::Relay, tag)
        }
        Cmd::DeliverRequest { chat_id, from, .. } => (Kind::DeliverRequest, check(*chat_id, from)),
        Cmd::PeerLeft { chat_id } => (Kind::PeerLeft, Some(Tag::of(*chat_id))),
        Cmd::Answered { chat_id, peer, .. } => (Kind::Answered, check(*chat_id, peer)),
        Cmd::Replaced => (Kind::Replaced, None),
        Cmd::NodeLost { .. } | Cmd::MergeRates(_) => unreachable!("never posted by the model"),
        Cmd::Cancel { chat_id } => (Kind::Cancel, Some(Tag::of(*chat_id))),
        Cmd::Delivered { chat_id, to, .. } => (Kind::Delivered, check(*chat_id, to)),
    }
}

fn pick_kind(r: &mut ChaCha8Rng, ordinary_percent: u64) -> Kind {
    if chance(r, ordinary_percent) {
        ORDINARY[below(r, ORDINARY.len())]
    } else {
        MUST_ARRIVE[below(r, MUST_ARRIVE.len())]
    }
}

/// Receives everything queued.
fn drain(inbox: &mut Inbox) -> Vec<(Kind, Option<Tag>)> {
    std::iter::from_fn(|| inbox.try_recv())
        .map(|c| describe(&c))
        .collect()
}

/// The ordinary counter of an empty mailbox is 0: exactly
/// [`MAILBOX_CAPACITY`] ordinary commands are taken, then `Full`.
fn assert_ordinary_counter_is_zero(mb: &Mailbox, inbox: &mut Inbox) {
    assert!(inbox.try_recv().is_none(), "drained");
    let reply = mb.clone();
    for seq in 0..MAILBOX_CAPACITY {
        let tag = Tag {
            sender: 200,
            seq: seq as u32,
        };
        let kind = ORDINARY[seq % 2];
        assert_eq!(
            mb.try_post(make(kind, tag, &reply)),
            Ok(()),
            "ordinary post {seq} of {MAILBOX_CAPACITY} into a drained mailbox"
        );
    }
    let tag = Tag {
        sender: 200,
        seq: MAILBOX_CAPACITY as u32,
    };
    assert_eq!(
        mb.try_post(make(Kind::Relay, tag, &reply)),
        Err(PostError::Full)
    );
    let got = drain(inbox);
    assert_eq!(got.len(), MAILBOX_CAPACITY);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (_, t))| t.is_some_and(|t| t.seq as usize == i)));
}

// ------------------------------------------------------------------ the mailbox, one thread

/// What the mailbox should hold.
#[derive(Default)]
struct MailboxModel {
    queue: VecDeque<(Kind, Option<Tag>)>,
    ordinary: usize,
    overflowed: bool,
}

impl MailboxModel {
    fn expect_post(&self, kind: Kind) -> Result<(), PostError> {
        if kind.ordinary() && self.ordinary >= MAILBOX_CAPACITY {
            return Err(PostError::Full);
        }
        if self.queue.len() >= TOTAL {
            return Err(PostError::Full);
        }
        Ok(())
    }
}

#[derive(Default, Debug)]
struct Coverage {
    posts: usize,
    receives: usize,
    /// Ordinary posts refused with `MAILBOX_CAPACITY` ordinary queued.
    ordinary_full_at_capacity: usize,
    /// Must-arrive posts taken while the ordinary part was full (the reserve).
    reserve_used: usize,
    /// Must-arrive posts refused (the whole channel full).
    overflows: usize,
    max_queued: usize,
}

/// A phase of the run: how likely a step posts (else receives), and how
/// likely a post is ordinary.
fn pick_phase(r: &mut ChaCha8Rng) -> (u64, u64) {
    match below(r, 5) {
        0 => (95, 97), // ordinary flood: a peer relays faster than we read
        1 => (95, 3),  // control flood
        2 => (10, 50), // the session catches up
        3 => (60, 50),
        _ => (52, 80),
    }
}

fn run_mailbox_model(seed: u64, steps: usize, cov: &mut Coverage) {
    const SENDERS: u32 = 4;
    let mut r = rng(seed, 1);
    let (mb, mut inbox) = Mailbox::new(seed);
    // Each sender holds its own clone, as each session task does.
    let senders: Vec<Mailbox> = (0..SENDERS).map(|_| mb.clone()).collect();
    let mut next_seq = [0u32; SENDERS as usize];
    let mut last_seen: [Option<u32>; SENDERS as usize] = [None; SENDERS as usize];
    let mut model = MailboxModel::default();
    let (mut phase, mut phase_left) = ((50, 50), 0usize);
    for step in 0..steps {
        if phase_left == 0 {
            phase = pick_phase(&mut r);
            phase_left = 100 + below(&mut r, 3000);
        }
        phase_left -= 1;
        let (post_percent, ordinary_percent) = phase;
        if chance(&mut r, post_percent) {
            cov.posts += 1;
            let sender = below(&mut r, SENDERS as usize);
            let kind = pick_kind(&mut r, ordinary_percent);
            let tag = Tag {
                sender: sender as u32,
                seq: next_seq[sender],
            };
            next_seq[sender] += 1;
            let queued = model.queue.len();
            let expected = model.expect_post(kind);
            let got = senders[sender].try_post(make(kind, tag, &mb));
            assert_eq!(
                got, expected,
                "seed {seed} step {step}: post {kind:?} with {} ordinary of {queued} queued",
                model.ordinary
            );
            if kind.ordinary() {
                if got == Err(PostError::Full) {
                    // Full only with the ordinary part full (or, once
                    // must-arrive commands took more than the reserve, the
                    // whole channel).
                    assert!(model.ordinary == MAILBOX_CAPACITY || queued == TOTAL);
                    if model.ordinary == MAILBOX_CAPACITY {
                        cov.ordinary_full_at_capacity += 1;
                    }
                }
            } else {
                if queued < TOTAL {
                    assert_eq!(got, Ok(()), "must-arrive refused below {TOTAL}");
                    if model.ordinary == MAILBOX_CAPACITY {
                        cov.reserve_used += 1;
                    }
                } else {
                    assert_eq!(got, Err(PostError::Full));
                    model.overflowed = true;
                    cov.overflows += 1;
                }
                if got.is_err() {
                    assert!(inbox.overflowed(), "a lost must-arrive command is noticed");
                }
            }
            if got.is_ok() {
                model
                    .queue
                    .push_back((kind, (kind != Kind::Replaced).then_some(tag)));
                model.ordinary += usize::from(kind.ordinary());
            }
            assert!(model.ordinary <= MAILBOX_CAPACITY);
            assert!(model.queue.len() <= TOTAL);
            cov.max_queued = cov.max_queued.max(model.queue.len());
        } else {
            cov.receives += 1;
            let got = inbox.try_recv().map(|c| describe(&c));
            let expected = model.queue.pop_front();
            assert_eq!(got, expected, "seed {seed} step {step}: receive");
            if let Some((kind, tag)) = got {
                model.ordinary -= usize::from(kind.ordinary());
                if let Some(t) = tag {
                    let last = &mut last_seen[t.sender as usize];
                    assert!(
                        last.is_none_or(|l| l < t.seq),
                        "order of sender {}",
                        t.sender
                    );
                    *last = Some(t.seq);
                }
            }
        }
        assert_eq!(
            inbox.overflowed(),
            model.overflowed,
            "seed {seed} step {step}"
        );
    }
    // Drain: the rest comes in order, and the counter is back to 0.
    let rest = drain(&mut inbox);
    assert_eq!(
        rest,
        Vec::from(model.queue.clone()),
        "seed {seed}: the rest"
    );
    model.queue.clear();
    assert_ordinary_counter_is_zero(&mb, &mut inbox);
    assert_eq!(inbox.overflowed(), model.overflowed, "overflowed stays set");
}

#[test]
fn mailbox_follows_its_model() {
    let mut cov = Coverage::default();
    for seed in 0..SEEDS {
        run_mailbox_model(seed, 40_000, &mut cov);
    }
    // The runs reached every boundary.
    assert!(cov.ordinary_full_at_capacity > 0, "{cov:?}");
    assert!(cov.reserve_used > 0, "{cov:?}");
    assert!(cov.overflows > 0, "{cov:?}");
    assert_eq!(cov.max_queued, TOTAL, "{cov:?}");
}

#[test]
fn must_arrive_commands_get_the_whole_reserve_behind_a_full_ordinary_part() {
    let (mb, mut inbox) = Mailbox::new(1);
    let tag = |seq: usize| Tag {
        sender: 1,
        seq: seq as u32,
    };
    for i in 0..MAILBOX_CAPACITY {
        assert_eq!(mb.try_post(make(Kind::Relay, tag(i), &mb)), Ok(()));
    }
    assert_eq!(
        mb.try_post(make(Kind::DeliverRequest, tag(0), &mb)),
        Err(PostError::Full)
    );
    assert!(
        !inbox.overflowed(),
        "a refused ordinary command loses nothing"
    );
    for (n, i) in (MAILBOX_CAPACITY..TOTAL).enumerate() {
        let kind = MUST_ARRIVE[n % MUST_ARRIVE.len()];
        assert_eq!(mb.try_post(make(kind, tag(i), &mb)), Ok(()), "reserve {n}");
    }
    assert!(!inbox.overflowed());
    assert_eq!(
        mb.try_post(make(Kind::PeerLeft, tag(TOTAL), &mb)),
        Err(PostError::Full)
    );
    assert!(inbox.overflowed());
    // One ordinary command received frees one ordinary place, and no more.
    assert_eq!(
        inbox.try_recv().map(|c| describe(&c)),
        Some((Kind::Relay, Some(tag(0))))
    );
    assert_eq!(mb.try_post(make(Kind::Relay, tag(TOTAL + 1), &mb)), Ok(()));
    assert_eq!(
        mb.try_post(make(Kind::Relay, tag(TOTAL + 2), &mb)),
        Err(PostError::Full)
    );
    let got = drain(&mut inbox);
    assert_eq!(got.len(), TOTAL);
    assert_ordinary_counter_is_zero(&mb, &mut inbox);
}

#[test]
fn posts_to_a_gone_session_fail_gone() {
    let (mb, inbox) = Mailbox::new(1);
    let reply = Mailbox::new(2).0;
    drop(inbox);
    for (i, kind) in ORDINARY.iter().chain(&MUST_ARRIVE).enumerate() {
        let tag = Tag {
            sender: 0,
            seq: i as u32,
        };
        assert_eq!(mb.try_post(make(*kind, tag, &reply)), Err(PostError::Gone));
        assert!(!mb.post(make(*kind, tag, &reply)));
    }
}

// ------------------------------------------------------------------ the mailbox, several threads

#[test]
fn concurrent_senders_keep_their_order_and_lose_only_refused_posts() {
    const SENDERS: u32 = 3;
    const POSTS: u32 = 6_000;
    for seed in 0..2 {
        let (mb, mut inbox) = Mailbox::new(seed);
        let mut done = false;
        let mut accepted: Vec<Vec<(Kind, u32)>> = Vec::new();
        let mut must_refused = false;
        let mut received: Vec<Vec<(Kind, u32)>> = vec![Vec::new(); SENDERS as usize];
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..SENDERS)
                .map(|sender| {
                    let mb = mb.clone();
                    s.spawn(move || {
                        let mut r = rng(seed, 100 + u64::from(sender));
                        let mut ok = Vec::new();
                        let mut refused_must = false;
                        for seq in 0..POSTS {
                            // Replaced carries no tag: leave it out here.
                            let kind = loop {
                                let k = pick_kind(&mut r, 60);
                                if k != Kind::Replaced {
                                    break k;
                                }
                            };
                            match mb.try_post(make(kind, Tag { sender, seq }, &mb)) {
                                Ok(()) => ok.push((kind, seq)),
                                Err(PostError::Full) => refused_must |= !kind.ordinary(),
                                Err(PostError::Gone) => panic!("the inbox is alive"),
                                Err(PostError::Unreachable) => panic!("a local mailbox"),
                            }
                            if seq % 512 == 0 {
                                std::thread::yield_now();
                            }
                        }
                        (ok, refused_must)
                    })
                })
                .collect();
            // The receiver is slow at first (the queue fills up), then keeps up.
            let mut r = rng(seed, 99);
            let mut idle_rounds = 0;
            loop {
                match inbox.try_recv() {
                    Some(cmd) => {
                        let (kind, tag) = describe(&cmd);
                        let tag = tag.unwrap();
                        received[tag.sender as usize].push((kind, tag.seq));
                        if below(&mut r, 4096) == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                    }
                    None if done => break,
                    None => {
                        idle_rounds += 1;
                        if handles.iter().all(|h| h.is_finished()) {
                            // Everything posted is queued: one more pass.
                            done = true;
                        } else if idle_rounds % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                }
            }
            for h in handles {
                let (ok, refused) = h.join().unwrap();
                accepted.push(ok);
                must_refused |= refused;
            }
        });
        for sender in 0..SENDERS as usize {
            assert_eq!(
                received[sender], accepted[sender],
                "seed {seed}: sender {sender} got everything accepted, in order"
            );
        }
        assert_eq!(inbox.overflowed(), must_refused, "seed {seed}");
        assert_ordinary_counter_is_zero(&mb, &mut inbox);
    }
}

// ------------------------------------------------------------------ presence

/// One session that logged in.
struct Login {
    user: String,
    key: PublicKey,
    mailbox: Mailbox,
    inbox: Inbox,
}

fn check_presence(p: &Presence, model: &BTreeMap<String, (PublicKey, u64)>, names: &[&str]) {
    let listed = p.names();
    let expected: Vec<UserName> = model.keys().map(|u| user(u)).collect();
    assert_eq!(
        &listed[..],
        &expected[..],
        "names() is the sorted online list"
    );
    assert!(listed.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(p.count(), model.len());
    for n in names {
        let found = p.find_with_key(n).map(|(k, m)| (k, m.session));
        assert_eq!(found, model.get(*n).copied(), "find_with_key({n})");
        assert_eq!(p.find(n).map(|m| m.session), model.get(*n).map(|(_, s)| *s));
    }
}

#[test]
fn presence_follows_its_model() {
    const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "eve"];
    for seed in 0..SEEDS {
        let mut r = rng(seed, 2);
        let p = Presence::default();
        let mut model: BTreeMap<String, (PublicKey, u64)> = BTreeMap::new();
        let mut sessions: Vec<Login> = Vec::new();
        let mut next_id = 1u64;
        let mut replaced = 0;
        for step in 0..3_000 {
            let changed = match below(&mut r, 10) {
                // A login: a new session for a user, maybe with another key.
                0..=3 => {
                    let u = NAMES[below(&mut r, NAMES.len())];
                    let k = key(1 + below(&mut r, 3) as u8);
                    let id = next_id;
                    next_id += 1;
                    let (mailbox, inbox) = Mailbox::new(id);
                    let old = p.login(user(u), k, mailbox.clone());
                    assert_eq!(
                        old.as_ref().map(|m| m.session),
                        model.get(u).map(|(_, s)| *s),
                        "seed {seed} step {step}: login of {u} returns the older session"
                    );
                    // As `session.rs` does: the older session is told.
                    if let Some(old) = old {
                        assert_ne!(old.session, id);
                        assert!(old.post(Cmd::Replaced));
                        let older = sessions
                            .iter_mut()
                            .find(|s| s.mailbox.session == old.session)
                            .unwrap();
                        assert_eq!(older.user, u);
                        assert!(matches!(older.inbox.try_recv(), Some(Cmd::Replaced)));
                        assert!(older.inbox.try_recv().is_none());
                        replaced += 1;
                    }
                    model.insert(u.to_string(), (k, id));
                    sessions.push(Login {
                        user: u.to_string(),
                        key: k,
                        mailbox,
                        inbox,
                    });
                    true
                }
                // A session ends (the newest or an older, replaced one).
                4..=6 if !sessions.is_empty() => {
                    let i = below(&mut r, sessions.len());
                    let s = sessions.swap_remove(i);
                    let current = model
                        .get(&s.user)
                        .is_some_and(|(_, id)| *id == s.mailbox.session);
                    p.logout(&s.user, s.mailbox.session);
                    if current {
                        model.remove(&s.user);
                    }
                    // Its inbox goes with its task.
                    drop(s.inbox);
                    assert!(!s.mailbox.post(Cmd::Cancel { chat_id: 1 }));
                    current
                }
                // A logout with an id that was never this user's.
                7 => {
                    let u = NAMES[below(&mut r, NAMES.len())];
                    p.logout(u, next_id + 1_000);
                    p.logout(u, 0);
                    false
                }
                _ => false,
            };
            // `names()` is cached: list often, so that stale caches would show.
            if changed || chance(&mut r, 50) {
                check_presence(&p, &model, &NAMES);
                if !changed {
                    assert!(Arc::ptr_eq(&p.names(), &p.names()), "one shared copy");
                }
            }
            // The keys of the newest logins.
            for (u, (k, id)) in &model {
                let s = sessions.iter().find(|s| s.mailbox.session == *id).unwrap();
                assert_eq!((&s.user, s.key), (u, *k));
            }
        }
        check_presence(&p, &model, &NAMES);
        assert!(replaced > 0);
    }
}

#[test]
fn stale_logout_after_replacement_keeps_the_new_login() {
    let p = Presence::default();
    let (old, mut old_inbox) = Mailbox::new(1);
    let (new, _new_inbox) = Mailbox::new(2);
    assert!(p.login(user("alice"), key(1), old).is_none());
    assert_eq!(&p.names()[..], &[user("alice")]);
    let replaced = p.login(user("alice"), key(2), new).unwrap();
    assert_eq!(replaced.session, 1);
    assert!(replaced.post(Cmd::Replaced));
    assert!(matches!(old_inbox.try_recv(), Some(Cmd::Replaced)));
    // The old session ends after the new login: it must not take it away.
    p.logout("alice", 1);
    let (k, m) = p.find_with_key("alice").unwrap();
    assert_eq!((k, m.session), (key(2), 2));
    assert_eq!(&p.names()[..], &[user("alice")]);
    p.logout("alice", 2);
    assert!(p.find("alice").is_none());
    assert!(p.names().is_empty());
}

#[test]
fn names_are_fresh_after_concurrent_logins_and_logouts() {
    const THREADS: usize = 2;
    const ROUNDS: usize = 500;
    let p = Presence::default();
    let stop = AtomicBool::new(false);
    let finals: Vec<BTreeSet<String>> = std::thread::scope(|s| {
        let p = &p;
        let stop = &stop;
        let reader = s.spawn(move || {
            let mut lists = 0u64;
            // At least one listing, however fast the writers are.
            loop {
                let names = p.names();
                assert!(
                    names.windows(2).all(|w| w[0] < w[1]),
                    "sorted, no duplicates"
                );
                lists += 1;
                if stop.load(Ordering::Acquire) {
                    break;
                }
            }
            lists
        });
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut r = rng(7, t as u64);
                    let mut online: BTreeMap<String, u64> = BTreeMap::new();
                    for round in 0..ROUNDS {
                        let u = format!("t{t}u{}", below(&mut r, 6));
                        let id = (t * ROUNDS + round) as u64 + 1;
                        if chance(&mut r, 60) {
                            let _ = p.login(user(&u), key(3), Mailbox::new(id).0);
                            online.insert(u, id);
                        } else if let Some(id) = online.remove(&u) {
                            p.logout(&u, id);
                        }
                    }
                    online.into_keys().collect::<BTreeSet<_>>()
                })
            })
            .collect();
        let finals = writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
        finals
    });
    let expected: Vec<UserName> = finals.iter().flatten().map(|u| user(u)).collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(&p.names()[..], &sorted[..]);
    assert_eq!(p.count(), sorted.len());
}

#[test]
fn chat_ids_are_random_never_zero_and_unlinkable() {
    let mut rng = securecom_host::os_rng();
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for _ in 0..1_000 {
        let id = crate::presence::fresh_chat_id(&mut rng);
        assert_ne!(id, 0);
        // 1 000 draws from 2^32 - 1 values collide with odds below 1e-4.
        assert!(seen.insert(id));
        ids.push(id);
    }
    // Not a counter: consecutive ids are not consecutive numbers.
    let steps = ids
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    assert_eq!(steps, 0, "chat ids look like a counter");
    // A zero draw is skipped.
    struct Zeros(u32);
    impl rand_core::RngCore for Zeros {
        fn next_u32(&mut self) -> u32 {
            self.0 = self.0.saturating_sub(1);
            if self.0 == 0 {
                7
            } else {
                0
            }
        }
        fn next_u64(&mut self) -> u64 {
            u64::from(self.next_u32())
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            d.fill(0)
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            d.fill(0);
            Ok(())
        }
    }
    assert_eq!(crate::presence::fresh_chat_id(&mut Zeros(3)), 7);
}

#[test]
fn rate_state_outlives_the_session_of_its_user() {
    use securecom_core::server::ServerSession;
    use securecom_core::{Instant, ServerConfig, StaticSecret};
    let p = Presence::default();
    assert_eq!(p.take_rates("alice"), None);
    // A session's state as it ends (any non-default state will do: the
    // state of a fresh session is the default, "all buckets full").
    let key = StaticSecret::from_bytes([7; 32]);
    let mut rng = rng(1, 1);
    let s: ServerSession =
        ServerSession::new(&ServerConfig::default(), &key, Instant::ZERO, &mut rng).unwrap();
    let state = s.rate_state();
    p.keep_rates(&user("alice"), state);
    // The next login of alice continues it, once; other users are not affected.
    assert_eq!(p.take_rates("bob"), None);
    assert_eq!(p.take_rates("alice"), Some(state));
    assert_eq!(p.take_rates("alice"), None);
}
