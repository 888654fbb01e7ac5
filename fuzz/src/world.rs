//! Real clients and a real [`Hub`], with the fuzzer as the network.
//!
//! Setup logs alice and bob in (each with its daemon's request channel up)
//! over unmodified frames. Then the fuzzer chooses operations: deliver the
//! next frame of a channel as is, flipped, twice, or not at all, inject
//! bytes, stall a sender (its output queue fills up), let time pass, issue
//! user commands, log a user in again (replacing the older session), close
//! sockets.
//!
//! Invariants checked after every operation (a failure is a bug):
//! - no client call leaves `EVENT_CAPACITY` events (none lost); `handle_*`
//!   consume at least one byte of non-empty input and never more than given;
//! - `LoggedIn` names the client's user; a `ChatRequest` carries the
//!   requester's registered key; `ChatReady` carries the peer's registered
//!   key, and both ends of a chat show the same safety number;
//! - every `ChatMessage` is a text its sender sent to this receiver in this
//!   chat, each delivered at most once;
//! - the user's answer to a request succeeds only for the id of the request
//!   it was last shown (answers go by the id of the `ChatRequest` event;
//!   stale ids are tried too);
//! - a chat the peer closed end to end (`PeerClosed`) counts as undelivered
//!   exactly the texts of ours in it the peer never showed; one the server
//!   ended (`EndedByServer`) counts at least those as unconfirmed;
//! - the hub has at most one open, logged-in session per user, and chats are
//!   symmetric: if a session is in chat `id` with `p`, `p`'s open session is
//!   in chat `id` with it;
//! - when the network lost nothing (no frame flipped, dropped, duplicated or
//!   injected so far) and is quiet (everything delivered, nothing stalled),
//!   every logged-in client agrees with its session on the chat: the client
//!   is in chat `id` with `p` iff its session is; and on re-keying: the
//!   client's standard channel and its session's, its open daemon link and
//!   the session's request channel, and both ends of an open chat, count
//!   the same number of completed re-keys (with small limits, every 20 s or
//!   4 messages);
//! - a flipped frame never completes a re-key at its receiver (a changed
//!   re-key message fails like any other: the channel closes).

use std::collections::VecDeque;

use securecom_core::client::{ChatEnd, EVENT_CAPACITY};
use securecom_core::{
    ChatId, Client, ClientConfig, ClientEvent, Hub, Instant, Registry, RequestLink, SafetyNumber,
    ServerConfig, SessionId,
};

use crate::arb::{Bytes, Cmd, Enc, Shown, W};
use crate::fixtures::{
    self, name_index, rng, server_secret, user_key, user_secret, Reg, Rng, NAMES,
};
use crate::split_frames;

/// Hub capacity.
pub const SLOTS: usize = 4;
/// Users of the world: alice, bob (logged in by the setup), carol (on `Relogin`).
pub const USERS: usize = 3;

/// The four socket directions of one client.
pub const STD_UP: usize = 0;
/// Server → client, standard channel.
pub const STD_DOWN: usize = 1;
/// Server → daemon, request channel.
pub const REQ_DOWN: usize = 2;
/// Daemon → server, request channel.
pub const REQ_UP: usize = 3;

/// One operation of the network-fuzzing mode.
#[derive(arbitrary::Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum WorldOp {
    /// Deliver the next frame of `who`'s channel `chan` (`chan % 4`: std up,
    /// std down, request down, request up).
    Deliver { who: u8, chan: u8 },
    /// Deliver it with byte `pos` (mod length) XORed with `mask`.
    Flip {
        who: u8,
        chan: u8,
        pos: u16,
        mask: u8,
    },
    /// Lose it.
    Drop { who: u8, chan: u8 },
    /// Deliver it twice.
    Dup { who: u8, chan: u8 },
    /// Deliver these bytes instead of anything queued.
    Inject { who: u8, chan: u8, bytes: Bytes },
    /// Deliver everything queued, unmodified, until quiet.
    Pump,
    /// Stop (or restart) reading the sender of a channel.
    Stall { who: u8, chan: u8 },
    /// A user command.
    Cmd { who: u8, cmd: Cmd },
    /// Time passes; every deadline is checked.
    Advance(u16),
    /// `who`'s standard connection closes.
    Disconnect { who: u8 },
    /// `who` logs in again on a new connection (the hub replaces the old one).
    Relogin { who: u8 },
    /// `who`'s request-channel connection breaks.
    DaemonFail { who: u8 },
}

impl Enc for WorldOp {
    fn enc(&self, w: &mut W) {
        const N: u32 = 12;
        match self {
            Self::Deliver { who, chan } => w.variant(0, N).u8(*who).u8(*chan),
            Self::Flip {
                who,
                chan,
                pos,
                mask,
            } => w.variant(1, N).u8(*who).u8(*chan).u16(*pos).u8(*mask),
            Self::Drop { who, chan } => w.variant(2, N).u8(*who).u8(*chan),
            Self::Dup { who, chan } => w.variant(3, N).u8(*who).u8(*chan),
            Self::Inject { who, chan, bytes } => w.variant(4, N).u8(*who).u8(*chan).put(bytes),
            Self::Pump => w.variant(5, N),
            Self::Stall { who, chan } => w.variant(6, N).u8(*who).u8(*chan),
            Self::Cmd { who, cmd } => w.variant(7, N).u8(*who).put(cmd),
            Self::Advance(n) => w.variant(8, N).u16(*n),
            Self::Disconnect { who } => w.variant(9, N).u8(*who),
            Self::Relogin { who } => w.variant(10, N).u8(*who),
            Self::DaemonFail { who } => w.variant(11, N).u8(*who),
        };
    }
}

struct Conn {
    client: Client,
    sid: SessionId,
    link: Option<RequestLink>,
    /// Whole frames in flight, per direction.
    q: [VecDeque<Vec<u8>>; 4],
    /// Bytes read from a sender that do not make a whole frame yet.
    partial: [Vec<u8>; 4],
    stall: [bool; 4],
    /// The standard connection is closed (both sockets are gone).
    closed: bool,
}

/// The world: a hub, up to three users' connections, a clock.
pub struct World {
    now: Instant,
    rng: Rng,
    hub: Hub<SLOTS>,
    reg: Reg,
    small: bool,
    conns: [Option<Conn>; USERS],
    /// Sessions of connections replaced by a new login (the world forgot
    /// their clients): freed once the hub closed them.
    orphans: Vec<SessionId>,
    /// Texts sent and not yet received: (from, to, chat id, text).
    sent: Vec<(usize, usize, ChatId, String)>,
    /// The chat requests each user's client showed (by id).
    shown: [Shown; USERS],
    /// Open chats as each end announced them: (user, chat id, peer, safety number).
    ready: Vec<(usize, ChatId, usize, SafetyNumber)>,
    /// A frame was flipped, dropped, duplicated or injected: clients and
    /// sessions may legitimately disagree from then on.
    lossy: bool,
    /// How far the run got.
    pub stats: crate::Stats,
}

fn user(i: usize) -> securecom_core::UserName {
    securecom_core::message::user_name(NAMES[i]).expect("valid")
}

const IO: usize = 8192;

impl World {
    /// Alice and bob logged in, their daemons reachable.
    pub fn new(small_limits: bool) -> Self {
        let mut w = World {
            now: Instant::from_millis(1_000),
            rng: rng(10),
            hub: Hub::new(
                ServerConfig::new(fixtures::limits(small_limits)),
                server_secret(),
            ),
            reg: Reg,
            small: small_limits,
            conns: [const { None }; USERS],
            orphans: Vec::new(),
            sent: Vec::new(),
            shown: Default::default(),
            ready: Vec::new(),
            lossy: false,
            stats: crate::Stats::default(),
        };
        for u in 0..2 {
            w.login(u);
        }
        w.pump();
        for (name, c) in NAMES.iter().zip(&w.conns).take(2) {
            let c = c.as_ref().expect("setup conn");
            assert!(c.client.is_logged_in(), "setup: {name} logged in");
            assert!(
                c.link.as_ref().is_some_and(|l| l.is_authenticated()),
                "setup: daemon up"
            );
        }
        w
    }

    /// Free room in the hub's output queue to user `u` (diagnostics).
    pub fn hub_output_room(&self, u: usize) -> Option<usize> {
        let c = self.conns[u].as_ref()?;
        self.hub.session(c.sid).map(|s| s.output_room())
    }

    /// User `u`'s chat as its client and as its session see it (diagnostics).
    pub fn chat_views(&self, u: usize) -> String {
        let Some(c) = self.conns[u].as_ref() else {
            return "no conn".into();
        };
        format!(
            "client {:?} (logged in {}, closed {}), session {:?}, lossy {}, stall {:?}, queued {:?}",
            c.client.chat().map(|ch| (ch.peer().clone(), ch.id())),
            c.client.is_logged_in(),
            c.closed,
            self.hub.session(c.sid).map(|s| (s.chat_peer().map(|(p, i)| (p.clone(), i)), s.is_closed())),
            self.lossy,
            c.stall,
            c.q.iter().map(|q| q.len()).collect::<Vec<_>>()
        )
    }

    fn login(&mut self, u: usize) {
        if let Some(old) = self.conns[u].take() {
            if old.closed {
                self.hub.remove(old.sid, self.now, &self.reg);
            } else {
                // The hub replaces it when the new login succeeds; a driver
                // would then close it. The world forgets its client now.
                self.orphans.push(old.sid);
            }
        }
        let Ok(sid) = self.hub.accept(self.now, &mut self.rng) else {
            return;
        };
        let config = ClientConfig {
            user: user(u),
            server_key: fixtures::server_key(),
            daemon_port: Some(4242 + u as u16),
            limits: fixtures::limits(self.small),
        };
        let client = Client::new(config, user_secret(u), self.now, &mut self.rng).expect("client");
        self.shown[u] = Shown::default();
        self.conns[u] = Some(Conn {
            client,
            sid,
            link: None,
            q: Default::default(),
            partial: Default::default(),
            stall: [false; 4],
            closed: false,
        });
        self.collect();
    }

    // ------------------------------------------------------------ checks

    fn events(&mut self, u: usize) {
        let mut n = 0;
        loop {
            let Some(e) = self.conns[u].as_mut().and_then(|c| c.client.poll_event()) else {
                break;
            };
            n += 1;
            self.check_event(u, e);
        }
        assert!(
            n < EVENT_CAPACITY,
            "client left {n} events in one call: some may be lost"
        );
    }

    fn check_event(&mut self, u: usize, e: ClientEvent) {
        match e {
            ClientEvent::LoggedIn { user } => {
                assert_eq!(user.as_str(), NAMES[u]);
                self.stats.logins += 1;
            }
            ClientEvent::DaemonStatus { reachable: true } => self.stats.daemons += 1,
            ClientEvent::ChatRequest {
                chat_id,
                from,
                from_key,
            } => {
                assert!(
                    self.reg.lookup(&from) == Some(from_key),
                    "ChatRequest with a key that is not the requester's"
                );
                self.shown[u].push(chat_id);
            }
            ClientEvent::ChatReady {
                chat_id,
                peer,
                peer_key,
                safety_number,
                ..
            } => {
                assert!(
                    self.reg.lookup(&peer) == Some(peer_key),
                    "ChatReady with a key that is not the peer's"
                );
                let p = name_index(&peer).expect("peer is a known user");
                for r in &self.ready {
                    if r.0 == p && r.1 == chat_id && r.2 == u {
                        assert!(r.3 == safety_number, "safety numbers differ");
                    }
                }
                self.ready.retain(|r| r.0 != u);
                self.stats.chats += 1;
                self.ready.push((u, chat_id, p, safety_number));
            }
            ClientEvent::ChatMessage { from, text } => {
                let f = name_index(&from).expect("sender is a known user");
                // The chat it came in: the last one this user's client opened.
                let (_, id, _) = self.open_chat(u).expect("a text outside any chat");
                let i = self
                    .sent
                    .iter()
                    .position(|s| {
                        s.0 == f && s.1 == u && s.2 == id && s.3.as_str() == text.as_str()
                    })
                    .expect("a text its sender never sent in this chat (or delivered twice)");
                self.sent.remove(i);
                self.stats.texts += 1;
            }
            ClientEvent::ChatEnded {
                peer,
                reason: reason @ (ChatEnd::PeerClosed { .. } | ChatEnd::EndedByServer { .. }),
            } => {
                let (_, id, p) = self.open_chat(u).expect("an open chat ended, none opened");
                assert_eq!(Some(p), name_index(&peer), "ended: the chat's peer");
                // Ours in that chat that the peer has not shown (yet).
                let unshown = self
                    .sent
                    .iter()
                    .filter(|s| s.0 == u && s.1 == p && s.2 == id)
                    .count() as u32;
                match reason {
                    ChatEnd::PeerClosed { undelivered } => assert_eq!(
                        undelivered, unshown,
                        "PeerClosed: undelivered is not the texts the peer never showed"
                    ),
                    ChatEnd::EndedByServer { unconfirmed } => assert!(
                        unconfirmed >= unshown,
                        "EndedByServer: {unconfirmed} unconfirmed, but {unshown} never shown"
                    ),
                    _ => unreachable!(),
                }
            }
            _ => {}
        }
    }

    /// The chat `u`'s client opened last: (user, chat id, peer).
    fn open_chat(&self, u: usize) -> Option<(usize, ChatId, usize)> {
        self.ready
            .iter()
            .find(|r| r.0 == u)
            .map(|r| (r.0, r.1, r.2))
    }

    fn check_hub(&self) {
        crate::check_hub(&self.hub);
    }

    // ------------------------------------------------------------ plumbing

    /// Moves every unstalled sender's output into the frame queues, and
    /// serves the hub's dials.
    fn collect(&mut self) {
        while let Some((sid, _port)) = self.hub.poll_dial() {
            let Some(u) = (0..USERS).find(|&u| {
                self.conns[u]
                    .as_ref()
                    .is_some_and(|c| c.sid == sid && !c.closed)
            }) else {
                self.hub.request_channel_failed(sid, self.now, &self.reg);
                continue;
            };
            let c = self.conns[u].as_mut().expect("conn");
            if let Some(old) = c.link.take() {
                c.client.request_link_closed(&old);
                c.q[REQ_DOWN].clear();
                c.q[REQ_UP].clear();
                c.partial[REQ_DOWN].clear();
                c.partial[REQ_UP].clear();
            }
            self.events(u);
            let c = self.conns[u].as_mut().expect("conn");
            match c.client.new_request_link(self.now, &mut self.rng) {
                Ok(link) => {
                    c.link = Some(link);
                    if self
                        .hub
                        .request_channel_connected(sid, self.now, &mut self.rng)
                        .is_err()
                    {
                        self.daemon_fail(u);
                    }
                }
                Err(_) => self.hub.request_channel_failed(sid, self.now, &self.reg),
            }
        }
        let mut buf = vec![0u8; IO];
        for u in 0..USERS {
            let Some(c) = self.conns[u].as_mut() else {
                continue;
            };
            if c.closed {
                continue;
            }
            for chan in 0..4 {
                if c.stall[chan] {
                    continue;
                }
                let n = match chan {
                    STD_UP => c.client.poll_transmit(&mut buf),
                    STD_DOWN => self.hub.poll_transmit(c.sid, self.now, &mut buf),
                    REQ_DOWN => self.hub.poll_request_transmit(c.sid, &mut buf),
                    _ => match c.link.as_mut() {
                        Some(l) => c.client.poll_request_transmit(l, self.now, &mut buf),
                        None => 0,
                    },
                };
                c.partial[chan].extend_from_slice(&buf[..n]);
                let frames = split_frames(&mut c.partial[chan]);
                c.q[chan].extend(frames);
            }
            self.events(u);
        }
        // Orphaned sessions: drop their output, free their slot once closed.
        let orphans = std::mem::take(&mut self.orphans);
        for sid in orphans {
            let _ = self.hub.poll_transmit(sid, self.now, &mut buf);
            let _ = self.hub.poll_request_transmit(sid, &mut buf);
            if self.hub.session(sid).is_none_or(|s| s.is_closed()) {
                self.hub.remove(sid, self.now, &self.reg);
            } else {
                self.orphans.push(sid);
            }
        }
    }

    fn daemon_fail(&mut self, u: usize) {
        let Some(c) = self.conns[u].as_mut() else {
            return;
        };
        if let Some(l) = c.link.take() {
            c.client.request_link_closed(&l);
        }
        c.q[REQ_DOWN].clear();
        c.q[REQ_UP].clear();
        c.partial[REQ_DOWN].clear();
        c.partial[REQ_UP].clear();
        let sid = c.sid;
        self.events(u);
        self.hub.request_channel_failed(sid, self.now, &self.reg);
    }

    fn close_conn(&mut self, u: usize) {
        let Some(c) = self.conns[u].as_mut() else {
            return;
        };
        if c.closed {
            return;
        }
        c.closed = true;
        for q in &mut c.q {
            q.clear();
        }
        if let Some(l) = c.link.take() {
            c.client.request_link_closed(&l);
        }
        let sid = c.sid;
        self.events(u);
        self.hub.disconnected(sid, self.now, &self.reg);
    }

    /// Delivers `bytes` on `u`'s channel `chan`.
    fn deliver(&mut self, u: usize, chan: usize, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(c) = self.conns[u].as_mut() else {
                return;
            };
            if c.closed {
                return;
            }
            let r = match chan {
                STD_UP => self
                    .hub
                    .handle_input(c.sid, self.now, rest, &self.reg, &mut self.rng),
                STD_DOWN => c.client.handle_input(self.now, rest, &mut self.rng),
                REQ_DOWN => match c.link.as_mut() {
                    Some(l) => c
                        .client
                        .handle_request_input(l, self.now, rest, &mut self.rng),
                    None => return,
                },
                _ => {
                    if c.link.is_none() {
                        return;
                    }
                    self.hub
                        .handle_request_input(c.sid, self.now, rest, &self.reg, &mut self.rng)
                }
            };
            self.events(u);
            match r {
                Ok(used) => {
                    assert!(
                        used > 0 && used <= rest.len(),
                        "used {used} of {}",
                        rest.len()
                    );
                    rest = &rest[used..];
                }
                Err(_) => {
                    match chan {
                        // The hub closed the session; what it queued (a `Bye`)
                        // still goes out before the socket closes.
                        STD_UP => {}
                        STD_DOWN => self.close_conn(u),
                        _ => self.daemon_fail(u),
                    }
                    return;
                }
            }
        }
    }

    /// After every operation: sockets of closed clients close; output moves on.
    fn settle(&mut self) {
        self.collect();
        for u in 0..USERS {
            if self.conns[u]
                .as_ref()
                .is_some_and(|c| !c.closed && c.client.is_closed())
            {
                self.close_conn(u);
            }
        }
        self.collect();
        self.check_hub();
    }

    /// After a loss-free, complete pump: clients and sessions agree on chats.
    fn check_quiet(&self) {
        if self.lossy {
            return;
        }
        for c in self.conns.iter().flatten() {
            if c.stall.iter().any(|s| *s) || c.q.iter().any(|q| !q.is_empty()) {
                return;
            }
        }
        for (u, c) in self.conns.iter().enumerate() {
            let Some(c) = c.as_ref().filter(|c| !c.closed && c.client.is_logged_in()) else {
                continue;
            };
            let Some(s) = self
                .hub
                .session(c.sid)
                .filter(|s| !s.is_closed() && s.user().is_some())
            else {
                continue;
            };
            let client = c.client.chat().map(|ch| (ch.peer().clone(), ch.id()));
            let server = s.chat_peer().map(|(p, id)| (p.clone(), id));
            assert_eq!(
                client, server,
                "{} and its session disagree on the chat after a loss-free, quiet network",
                NAMES[u]
            );
            assert_eq!(
                c.client.rekeys(),
                s.rekeys().0,
                "{} and its session count different re-keys after a loss-free, quiet network",
                NAMES[u]
            );
            if let Some(l) = c
                .link
                .as_ref()
                .filter(|l| l.is_authenticated() && !l.is_closed() && s.daemon_reachable())
            {
                assert_eq!(
                    l.rekeys(),
                    s.rekeys().1,
                    "{}'s daemon and its session count different request re-keys after a \
                     loss-free, quiet network",
                    NAMES[u]
                );
            }
            let Some(mine) = c.client.chat().filter(|ch| ch.is_open()) else {
                continue;
            };
            let peer = name_index(mine.peer())
                .and_then(|p| self.conns.get(p)?.as_ref())
                .filter(|p| !p.closed && p.client.is_logged_in())
                .and_then(|p| p.client.chat())
                .filter(|ch| ch.id() == mine.id() && ch.is_open());
            if let Some(theirs) = peer {
                assert_eq!(
                    mine.rekeys(),
                    theirs.rekeys(),
                    "the ends of chat {} count different re-keys after a loss-free, quiet network",
                    mine.id()
                );
            }
        }
    }

    /// Re-keys completed at the receiving end of `u`'s channel `chan` (its
    /// chat's included, for the client's standard channel).
    fn rekeys_at(&self, u: usize, chan: usize) -> u32 {
        let Some(c) = self.conns[u].as_ref() else {
            return 0;
        };
        let session = self.hub.session(c.sid);
        match chan {
            STD_UP => session.map_or(0, |s| s.rekeys().0),
            STD_DOWN => c.client.rekeys() + c.client.chat().map_or(0, |ch| ch.rekeys()),
            REQ_DOWN => c.link.as_ref().map_or(0, |l| l.rekeys()),
            _ => session.map_or(0, |s| s.rekeys().1),
        }
    }

    /// Re-keys completed so far (the clients' channels and chats; a
    /// high-water mark, for the stats).
    fn count_rekeys(&mut self) {
        let n: u32 = self
            .conns
            .iter()
            .flatten()
            .map(|c| {
                c.client.rekeys()
                    + c.link.as_ref().map_or(0, |l| l.rekeys())
                    + c.client.chat().map_or(0, |ch| ch.rekeys())
            })
            .sum();
        self.stats.rekeys = self.stats.rekeys.max(n as usize);
    }

    /// Delivers everything queued, unmodified, until quiet (bounded).
    pub fn pump(&mut self) {
        // Each round delivers one frame per channel; a full queue holds at
        // most ~110 frames.
        for _ in 0..400 {
            self.settle();
            let mut moved = false;
            for u in 0..USERS {
                for chan in 0..4 {
                    let next = self.conns[u].as_mut().and_then(|c| c.q[chan].pop_front());
                    if let Some(f) = next {
                        moved = true;
                        self.deliver(u, chan, &f);
                        self.settle();
                    }
                }
            }
            if !moved {
                self.check_quiet();
                return;
            }
        }
    }

    fn pop(&mut self, who: u8, chan: u8) -> Option<(usize, usize, Vec<u8>)> {
        let u = usize::from(who) % USERS;
        let chan = usize::from(chan) % 4;
        let f = self.conns[u].as_mut()?.q[chan].pop_front()?;
        Some((u, chan, f))
    }

    /// Applies one operation, then lets the world settle and checks it.
    pub fn apply(&mut self, op: &WorldOp) {
        match op {
            WorldOp::Deliver { who, chan } => {
                if let Some((u, c, f)) = self.pop(*who, *chan) {
                    self.deliver(u, c, &f);
                }
            }
            WorldOp::Flip {
                who,
                chan,
                pos,
                mask,
            } => {
                if let Some((u, c, mut f)) = self.pop(*who, *chan) {
                    self.lossy |= *mask != 0;
                    let i = usize::from(*pos) % f.len();
                    f[i] ^= *mask;
                    let before = self.rekeys_at(u, c);
                    self.deliver(u, c, &f);
                    if *mask != 0 {
                        assert!(
                            self.rekeys_at(u, c) <= before,
                            "a flipped frame completed a re-key ({} channel {c})",
                            NAMES[u]
                        );
                    }
                }
            }
            WorldOp::Drop { who, chan } => {
                self.lossy |= self.pop(*who, *chan).is_some();
            }
            WorldOp::Dup { who, chan } => {
                if let Some((u, c, f)) = self.pop(*who, *chan) {
                    self.lossy = true;
                    self.deliver(u, c, &f);
                    self.settle();
                    self.deliver(u, c, &f);
                }
            }
            WorldOp::Inject { who, chan, bytes } => {
                self.lossy |= !bytes.0.is_empty();
                self.deliver(usize::from(*who) % USERS, usize::from(*chan) % 4, &bytes.0)
            }
            WorldOp::Pump => self.pump(),
            WorldOp::Stall { who, chan } => {
                if let Some(c) = self.conns[usize::from(*who) % USERS].as_mut() {
                    let s = &mut c.stall[usize::from(*chan) % 4];
                    *s = !*s;
                }
            }
            WorldOp::Cmd { who, cmd } => self.cmd(usize::from(*who) % USERS, cmd),
            WorldOp::Advance(n) => {
                self.now = self.now.add(fixtures::step(*n));
                for u in 0..USERS {
                    let Some(c) = self.conns[u].as_mut() else {
                        continue;
                    };
                    if c.closed {
                        continue;
                    }
                    let r = c.client.handle_timeout(self.now, &mut self.rng);
                    let link_late = c
                        .link
                        .as_mut()
                        .map(|l| c.client.handle_request_timeout(l, self.now).is_err())
                        .unwrap_or(false);
                    self.events(u);
                    if link_late {
                        self.daemon_fail(u);
                    }
                    if r.is_err() {
                        self.close_conn(u);
                    }
                }
                self.hub.handle_timeout(self.now, &self.reg, &mut self.rng);
            }
            WorldOp::Disconnect { who } => self.close_conn(usize::from(*who) % USERS),
            WorldOp::Relogin { who } => self.login(usize::from(*who) % USERS),
            WorldOp::DaemonFail { who } => self.daemon_fail(usize::from(*who) % USERS),
        }
        self.settle();
        self.count_rekeys();
    }

    fn cmd(&mut self, u: usize, cmd: &Cmd) {
        let now = self.now;
        let Some(c) = self.conns[u].as_mut() else {
            return;
        };
        let client = &mut c.client;
        match cmd {
            Cmd::ListUsers => {
                let _ = client.list_users(now);
            }
            Cmd::RequestChat(n) => {
                let _ = client.request_chat(now, &n.0);
            }
            Cmd::Answer(_) | Cmd::AnswerStale { .. } => {
                let (id, accept) = match cmd {
                    Cmd::AnswerStale { accept, back } => (self.shown[u].stale(*back), *accept),
                    Cmd::Answer(a) => (self.shown[u].last().unwrap_or(0), *a),
                    _ => unreachable!(),
                };
                if client.answer_request(id, accept).is_ok() {
                    assert_eq!(
                        Some(id),
                        self.shown[u].last(),
                        "{} answered chat {id}, not the request last shown",
                        NAMES[u]
                    );
                }
            }
            Cmd::SendText(t) => {
                let chat = client
                    .chat()
                    .and_then(|ch| Some((name_index(ch.peer())?, ch.id())));
                if client.send_text(now, &t.0).is_ok() {
                    let (p, id) = chat.expect("sent a text without a chat");
                    self.sent.push((u, p, id, t.0.clone()));
                }
            }
            Cmd::LeaveChat => {
                let _ = client.leave_chat(now);
            }
            Cmd::Logout => {
                let _ = client.logout(now);
            }
        }
        self.events(u);
    }
}

/// The peer's key as registered (for seeds and checks).
pub fn registered_key(u: usize) -> securecom_core::PublicKey {
    user_key(u)
}
