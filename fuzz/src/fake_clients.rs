//! A real [`Hub`] in front of fake, fuzzer-driven clients and daemons.
//!
//! Each fake client holds a user's real key (alice, bob, carol, dave, or the
//! unregistered mallory), so it completes the XX handshake and can then send
//! *authentic* messages of the fuzzer's choice: any hello, any `ClientMsg`
//! (postcard, bounds not checked), any plaintext, or raw bytes on the socket.
//! Its daemon answers the hub's dial with the PSK derived from what it
//! announced, then sends what the fuzzer chooses. Everything the hub writes
//! is read back and checked.
//!
//! Invariants checked (a failure is a bug):
//! - every frame the hub writes on the standard and request channels is
//!   well-formed, decrypts in order and decodes as a role message or is a
//!   valid re-key message; the daemon's first message is `Ready`;
//! - re-keying: each fake client (initiator of the standard channel) and
//!   daemon (responder of the request channel) runs [`Keys`]: it answers
//!   the hub's re-key messages, and a fake client starts a re-key when its
//!   keys are due as time passes (one whose keys grow overdue meanwhile is
//!   closed by the hub, legitimately); when a re-key completes, the hub's
//!   session counts the same number of re-keys, and every later message
//!   still decrypts in order; a re-key message the fuzzer made (an
//!   authentic plaintext starting with the marker) never completes a
//!   re-key: the hub closes that channel;
//! - `LoginOk` only for the user whose registered key the client holds;
//!   `ChatStarted`, `ChatRequest` carry the peer's registered key; `Users`
//!   lists only registered names;
//! - a relayed `ChatHandshake`/`ChatData` is exactly what the peer of that
//!   chat sent for this user, each at most once;
//! - `handle_*` consume at least one byte of non-empty input, never more;
//!
//! The hub draws chat ids at random, so the chat id of a message a fake
//! sends ([`Cid`]) is read as a reference where it is small: 1 to 7 name
//! the ids the hub last gave that user (1 the latest, in `ChatPending`,
//! `ChatStarted`, `ChatRefused`, a relay, `PeerLeft`, or its daemon's
//! `ChatRequest` or `Cancel`), the chat the hub has it in counting as the
//! latest even before the fake read it (a fake that reads late still
//! names it); any other value is sent as it is.
//! - the hub invariants of [`crate::check_hub`] after every operation.

use securecom_core::channel::Scratch;
use securecom_core::frame::{encode_frame, Feed, FrameDecoder};
use securecom_core::message::{
    decode, ClientHello, ClientMsg, ServerHello, ServerMsg, ServerToDaemon,
};
use securecom_core::noise::{Handshake, Psk, RemoteCheck, RequestTicket, Transport};
use securecom_core::pq::PqLayer;
use securecom_core::rekey::{is_rekey_message, Keys};
use securecom_core::server::RelayKind;
use securecom_core::{
    Hub, Instant, Registry, ServerConfig, SessionId, MAX_FRAME, MAX_NOISE_MESSAGE, MAX_PLAINTEXT,
    MAX_REQUEST_FRAME, MAX_REQUEST_NOISE_MESSAGE, PROTOCOL_VERSION,
};

use crate::arb::{ArbClientMsg, ArbDaemonToServer, Bytes, Cid, Enc, Name, W};
use crate::fixtures::{self, rng, server_secret, user_key, user_secret, Reg, Rng, NAMES};

/// Hub capacity (one less than the fake users, so that it fills up).
pub const SLOTS: usize = 4;

/// One operation of the `server_session` target's fake-client mode.
#[derive(arbitrary::Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ServerOp {
    /// User `who` (`who % 5`) connects anew: XX message 1.
    Connect { who: u8 },
    /// Handshake message 3 with this hello (once message 2 was read).
    Hello { who: u8, version: u8, user: Name },
    /// Connect if needed, hello with the own name: a normal login.
    Login { who: u8 },
    /// An authentic message (postcard, bounds not checked).
    Msg { who: u8, msg: ArbClientMsg },
    /// An authentic transport message with any plaintext.
    Plain { who: u8, bytes: Bytes },
    /// Raw bytes on the socket.
    Wire { who: u8, bytes: Bytes },
    /// The hub's dials are answered: connected (`ok`) or failed.
    Dial { ok: bool },
    /// An authentic request-channel message from `who`'s daemon.
    DaemonMsg { who: u8, msg: ArbDaemonToServer },
    /// An authentic request-channel message with any plaintext.
    DaemonPlain { who: u8, bytes: Bytes },
    /// Raw bytes on the request channel's socket.
    DaemonWire { who: u8, bytes: Bytes },
    /// The request channel's socket closes.
    DaemonFail { who: u8 },
    /// The standard socket closes (the slot is freed).
    Disconnect { who: u8 },
    /// Stop (or restart) reading what the hub writes to `who`.
    Stall { who: u8 },
    /// Time passes; every deadline is checked.
    Advance(u16),
    /// The server shuts down.
    Shutdown,
    /// User `who` opens a client-dialled request channel: its first frame
    /// holds the ticket of its last `DialRequestChannel` (`right`) or a
    /// made-up one.
    DialBack { who: u8, right: bool },
}

impl Enc for ServerOp {
    fn enc(&self, w: &mut W) {
        const N: u32 = 16;
        match self {
            Self::Connect { who } => w.variant(0, N).u8(*who),
            Self::Hello { who, version, user } => w.variant(1, N).u8(*who).u8(*version).put(user),
            Self::Login { who } => w.variant(2, N).u8(*who),
            Self::Msg { who, msg } => w.variant(3, N).u8(*who).put(msg),
            Self::Plain { who, bytes } => w.variant(4, N).u8(*who).put(bytes),
            Self::Wire { who, bytes } => w.variant(5, N).u8(*who).put(bytes),
            Self::Dial { ok } => w.variant(6, N).bool(*ok),
            Self::DaemonMsg { who, msg } => w.variant(7, N).u8(*who).put(msg),
            Self::DaemonPlain { who, bytes } => w.variant(8, N).u8(*who).put(bytes),
            Self::DaemonWire { who, bytes } => w.variant(9, N).u8(*who).put(bytes),
            Self::DaemonFail { who } => w.variant(10, N).u8(*who),
            Self::Disconnect { who } => w.variant(11, N).u8(*who),
            Self::Stall { who } => w.variant(12, N).u8(*who),
            Self::Advance(n) => w.variant(13, N).u16(*n),
            Self::Shutdown => w.variant(14, N),
            Self::DialBack { who, right } => w.variant(15, N).u8(*who).bool(*right),
        };
    }
}

struct Daemon {
    hs: Option<Handshake>,
    /// NNpsk0's transport and the post-quantum layer over it.
    pq: Option<(Transport, PqLayer)>,
    /// The open channel's keys (the hub dialled: it re-keys, we answer).
    tr: Option<Keys>,
    rx: FrameDecoder<MAX_REQUEST_FRAME>,
    dead: bool,
    got_ready: bool,
}

impl Daemon {
    /// A fake daemon's fresh NNpsk0 responder with `psk` (the hub dials it,
    /// or it dialled the hub: the roles are the same).
    fn responder(psk: &Psk, rng: &mut Rng) -> Daemon {
        let hs = Handshake::request_channel(false, psk, rng).expect("daemon handshake");
        Daemon {
            hs: Some(hs),
            pq: None,
            tr: None,
            rx: FrameDecoder::new(),
            dead: false,
            got_ready: false,
        }
    }
}

struct Fake {
    sid: SessionId,
    hs: Option<Handshake>,
    /// XX's transport and the post-quantum layer over it.
    pq: Option<(Transport, PqLayer)>,
    /// The open channel's keys (we connected: we re-key them).
    tr: Option<Keys>,
    rx: FrameDecoder<MAX_FRAME>,
    /// Our side stopped reading (the hub sent what we could not read, e.g.
    /// after we broke the protocol ourselves).
    dead: bool,
    /// Handshake message 2 was read; message 3 may be written.
    hello_due: bool,
    /// The name the hub accepted.
    name: Option<String>,
    psk: Option<Psk>,
    /// The ticket of our last `DialRequestChannel` (until it was presented).
    ticket: Option<RequestTicket>,
    daemon: Option<Daemon>,
    stall: bool,
    /// The last chat ids the hub gave this user, oldest first.
    ids: Vec<u32>,
}

impl Fake {
    /// How many chat ids are kept.
    const IDS: usize = 4;

    fn saw_id(&mut self, id: u32) {
        self.ids.retain(|i| *i != id);
        if self.ids.len() == Self::IDS {
            self.ids.remove(0);
        }
        self.ids.push(id);
    }
}

/// A fuzzer's chat id, resolved (see the module's doc) among the `ids` a
/// fake was given and the chat `current` the hub has it in.
fn resolve(ids: &[u32], current: Option<u32>, c: Cid) -> Cid {
    let mut known: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|i| Some(*i) != current)
        .collect();
    known.extend(current);
    match (c.0, known.len()) {
        (1..=7, n) if n > 0 => Cid(known[n - 1 - (c.0 as usize - 1) % n]),
        _ => c,
    }
}

/// A sent relay: (sender, intended receiver, chat id, kind, bytes).
type Relay = (String, String, u32, RelayKind, Vec<u8>);

/// The hub and its fake clients.
pub struct FakeClients {
    now: Instant,
    rng: Rng,
    frng: Rng,
    hub: Hub<SLOTS>,
    reg: Reg,
    fakes: [Option<Fake>; 5],
    relays: Vec<Relay>,
    /// How far the run got.
    pub stats: crate::Stats,
}

fn fake_limits() -> securecom_core::Limits {
    fixtures::limits(false)
}

fn frame_of(msg: &[u8]) -> Vec<u8> {
    let mut f = [0u8; MAX_FRAME];
    let n = encode_frame(msg, &mut f).expect("frame");
    f[..n].to_vec()
}

impl FakeClients {
    /// An empty hub.
    pub fn new(small_limits: bool) -> Self {
        FakeClients {
            now: Instant::from_millis(1_000),
            rng: rng(20),
            frng: rng(21),
            hub: Hub::new(
                ServerConfig::new(fixtures::limits(small_limits)),
                server_secret(),
            ),
            reg: Reg,
            fakes: [const { None }; 5],
            relays: Vec::new(),
            stats: crate::Stats::default(),
        }
    }

    fn feed_hub(&mut self, who: usize, bytes: &[u8]) {
        let Some(sid) = self.fakes[who].as_ref().map(|f| f.sid) else {
            return;
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            match self
                .hub
                .handle_input(sid, self.now, rest, &self.reg, &mut self.rng)
            {
                Ok(used) => {
                    assert!(
                        used > 0 && used <= rest.len(),
                        "hub used {used} of {}",
                        rest.len()
                    );
                    rest = &rest[used..];
                }
                Err(_) => return,
            }
        }
    }

    fn feed_hub_request(&mut self, who: usize, bytes: &[u8]) {
        let Some(sid) = self.fakes[who].as_ref().map(|f| f.sid) else {
            return;
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            match self
                .hub
                .handle_request_input(sid, self.now, rest, &self.reg, &mut self.rng)
            {
                Ok(used) => {
                    assert!(
                        used > 0 && used <= rest.len(),
                        "hub used {used} of {}",
                        rest.len()
                    );
                    rest = &rest[used..];
                }
                Err(_) => {
                    // The driver closes that connection.
                    if let Some(f) = self.fakes[who].as_mut() {
                        f.daemon = None;
                    }
                    self.hub.request_channel_failed(sid, self.now, &self.reg);
                    return;
                }
            }
        }
    }

    fn connect(&mut self, who: usize) {
        self.disconnect(who);
        let Ok(sid) = self.hub.accept(self.now, &mut self.rng) else {
            return;
        };
        let key = user_secret(who);
        let mut hs: Handshake = Handshake::standard(
            true,
            &key,
            RemoteCheck::Exactly(fixtures::server_key()),
            &mut self.frng,
        )
        .expect("client handshake");
        let mut m = [0u8; MAX_NOISE_MESSAGE];
        let n = hs.write_message(&[], &mut m).expect("message 1");
        self.fakes[who] = Some(Fake {
            sid,
            hs: Some(hs),
            pq: None,
            tr: None,
            rx: FrameDecoder::new(),
            dead: false,
            hello_due: false,
            name: None,
            psk: None,
            ticket: None,
            daemon: None,
            stall: false,
            ids: Vec::new(),
        });
        self.feed_hub(who, &frame_of(&m[..n]));
    }

    fn disconnect(&mut self, who: usize) {
        if let Some(f) = self.fakes[who].take() {
            self.hub.remove(f.sid, self.now, &self.reg);
        }
    }

    fn hello(&mut self, who: usize, version: u8, user: &str) {
        let Some(f) = self.fakes[who].as_mut() else {
            return;
        };
        if !f.hello_due {
            return;
        }
        f.hello_due = false;
        let Some(mut hs) = f.hs.take() else { return };
        let mut p = [0u8; 128];
        let Ok(p) = postcard::to_slice(&ClientHello { version, user }, &mut p) else {
            return;
        };
        let mut m = [0u8; MAX_NOISE_MESSAGE];
        let n = hs.write_message(p, &mut m).expect("message 3");
        let mut outer = hs
            .into_transport(&fake_limits(), self.now)
            .expect("transport");
        let mut bytes = frame_of(&m[..n]);
        if version == PROTOCOL_VERSION {
            // The layer's first message follows at once.
            let mut layer = PqLayer::new(true, &outer, &mut self.frng).expect("layer");
            let n = layer
                .write_message(&[], &mut outer, &mut m)
                .expect("layer message 1");
            bytes.extend_from_slice(&frame_of(&m[..n]));
            f.pq = Some((outer, layer));
        } else {
            // A client of another version knows no layer: the hub's
            // refusal comes under the XX keys.
            f.tr = Some(Keys::new(outer, true));
        }
        self.feed_hub(who, &bytes);
    }

    fn send_plain(&mut self, who: usize, plain: &[u8]) {
        if plain.len() > MAX_PLAINTEXT {
            return;
        }
        self.note_sent(who, plain);
        let Some(f) = self.fakes[who].as_mut() else {
            return;
        };
        let sid = f.sid;
        let Some(tr) = f.tr.as_mut() else {
            return;
        };
        if crate::is_due_switch(tr, plain) {
            // Exactly the switch we owe: it goes as ours.
            self.flush_rekey(who);
            return;
        }
        let forged = crate::forged_rekey(tr, plain);
        let mut ct = [0u8; MAX_NOISE_MESSAGE];
        let n = tr.encrypt(plain, &mut ct).expect("encrypt");
        let before = self.hub.session(sid).map(|s| s.rekeys().0);
        self.feed_hub(who, &frame_of(&ct[..n]));
        if forged {
            let s = self.hub.session(sid);
            assert!(
                s.is_none_or(|s| s.is_closed()),
                "a re-key message the fuzzer made left the hub's session open"
            );
            assert!(
                s.map(|s| s.rekeys().0) <= before,
                "a re-key message the fuzzer made completed a re-key"
            );
        }
    }

    /// Sends `who`'s next re-key messages on the standard channel, if due;
    /// when we switch, the hub's session does too.
    fn flush_rekey(&mut self, who: usize) {
        let now = self.now;
        loop {
            let Some(f) = self.fakes[who].as_mut() else {
                return;
            };
            let sid = f.sid;
            let Some(tr) = f.tr.as_mut() else { return };
            let done = tr.rekeys();
            let Some(frame) = crate::rekey_frame(tr, now, &fake_limits()) else {
                return;
            };
            let ours = tr.rekeys();
            self.feed_hub(who, &frame);
            if ours > done {
                if let Some(s) = self.hub.session(sid).filter(|s| !s.is_closed()) {
                    assert_eq!(
                        s.rekeys().0,
                        ours,
                        "{} and the hub count different re-keys",
                        NAMES[who]
                    );
                }
                self.stats.rekeys += 1;
            }
        }
    }

    /// What an authentic message will make the hub do, judged by the
    /// decoder the hub uses, whether the message was built as one (`Msg`) or
    /// found by the fuzzer as raw plaintext (`Plain`): an announced daemon's
    /// PSK, and the chat messages it may relay (to the peer of the chat the
    /// hub has us in, under the name it knows us by: we may not have read
    /// our `LoginOk` yet).
    fn note_sent(&mut self, who: usize, plain: &[u8]) {
        let Some(f) = self.fakes[who].as_mut() else {
            return;
        };
        let Some(tr) = f.tr.as_ref() else { return };
        match decode::<ClientMsg>(plain) {
            Ok(ClientMsg::AnnounceDaemon { secret, .. }) => {
                f.psk = Some(Psk::for_request_channel(tr.handshake_hash(), &secret));
                f.ticket = None;
            }
            Ok(ClientMsg::DialRequestChannel { secret }) => {
                f.psk = Some(Psk::for_request_channel(tr.handshake_hash(), &secret));
                f.ticket = Some(RequestTicket::new(tr.handshake_hash(), &secret));
            }
            Ok(
                m @ (ClientMsg::ChatHandshake { chat_id, noise }
                | ClientMsg::ChatData { chat_id, noise }),
            ) => {
                let kind = if matches!(m, ClientMsg::ChatHandshake { .. }) {
                    RelayKind::Handshake
                } else {
                    RelayKind::Data
                };
                let session = self.hub.session(f.sid);
                let peer = session
                    .and_then(|s| s.chat_peer())
                    .filter(|(_, id)| *id == chat_id)
                    .map(|(p, _)| p.to_string());
                let me = session.and_then(|s| s.user()).map(|u| u.to_string());
                if let (Some(peer), Some(me)) = (peer, me) {
                    self.relays.push((me, peer, chat_id, kind, noise.to_vec()));
                }
            }
            _ => {}
        }
    }

    /// A message's chat id from `who`, resolved (see the module's doc).
    fn resolver(&self, who: usize) -> impl Fn(Cid) -> Cid + '_ {
        let f = self.fakes[who].as_ref();
        let ids = f.map_or(&[][..], |f| &f.ids[..]);
        let current = f
            .and_then(|f| self.hub.session(f.sid))
            .and_then(|s| s.chat_peer())
            .map(|(_, id)| id);
        move |c| resolve(ids, current, c)
    }

    fn send_daemon_plain(&mut self, who: usize, plain: &[u8]) {
        let Some(tr) = self.fakes[who]
            .as_mut()
            .and_then(|f| f.daemon.as_mut())
            .and_then(|d| d.tr.as_mut())
        else {
            return;
        };
        if plain.len() + 16 > MAX_REQUEST_NOISE_MESSAGE {
            return;
        }
        // (The daemon is the responder: none of its re-key messages is a
        // switch the hub may take.)
        let forged = crate::forged_rekey(tr, plain);
        let mut ct = [0u8; MAX_NOISE_MESSAGE];
        let n = tr.encrypt(plain, &mut ct).expect("encrypt");
        self.feed_hub_request(who, &frame_of(&ct[..n]));
        if forged {
            // The hub failed the channel (and we dropped our end).
            assert!(
                self.fakes[who].as_ref().is_none_or(|f| f.daemon.is_none()),
                "a re-key message the fuzzer made left the hub's request channel open"
            );
        }
    }

    /// Reads what the hub wrote to every unstalled fake, and checks it.
    fn read_all(&mut self) {
        for _ in 0..8 {
            let mut any = false;
            for who in 0..5 {
                any |= self.read(who);
                any |= self.read_request(who);
            }
            if !any {
                break;
            }
        }
        crate::check_hub(&self.hub);
    }

    fn read(&mut self, who: usize) -> bool {
        let Some(f) = self.fakes[who].as_ref() else {
            return false;
        };
        if f.stall {
            return false;
        }
        let sid = f.sid;
        let mut out = vec![0u8; 4 * MAX_FRAME];
        let n = self.hub.poll_transmit(sid, self.now, &mut out);
        let mut rest = &out[..n];
        let mut wrote = false;
        while !rest.is_empty() {
            let f = self.fakes[who].as_mut().expect("fake");
            if f.dead {
                break;
            }
            match f.rx.feed(rest).expect("hub writes well-formed frames") {
                Feed::NeedMore => rest = &[],
                Feed::Frame { consumed } => {
                    rest = &rest[consumed..];
                    let frame = f.rx.frame().expect("frame").to_vec();
                    f.rx.clear();
                    wrote |= self.on_frame(who, &frame);
                }
            }
        }
        wrote
    }

    /// One frame from the hub; returns true if we answered something.
    fn on_frame(&mut self, who: usize, frame: &[u8]) -> bool {
        let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
        let f = self.fakes[who].as_mut().expect("fake");
        if let Some(hs) = f.hs.as_mut() {
            let n = hs
                .read_message(frame, &mut scratch)
                .expect("the hub's handshake message 2 is valid");
            let hello: ServerHello = decode(&scratch[..n]).expect("server hello decodes");
            assert_eq!(hello.version, PROTOCOL_VERSION);
            f.hello_due = true;
            return false;
        }
        if let Some((outer, layer)) = f.pq.as_mut() {
            let mut m = frame.to_vec();
            assert_eq!(
                layer.read_message(&mut m, outer, &mut scratch),
                Ok(0),
                "the hub's layer message 2 is valid"
            );
            let (outer, layer) = f.pq.take().expect("layer");
            let transport = layer
                .into_transport(outer, &fake_limits(), self.now)
                .expect("transport");
            // We connected: we re-key the channel.
            f.tr = Some(Keys::new(transport, true));
            return false;
        }
        let Some(tr) = f.tr.as_mut() else {
            f.dead = true;
            return false;
        };
        let n = tr
            .decrypt(frame, &mut scratch)
            .expect("hub frames decrypt in order");
        if is_rekey_message(&scratch[..n]) {
            tr.read_rekey(&mut scratch[..n], self.now, &fake_limits(), &mut self.frng)
                .expect("the hub's re-key messages are valid");
            // Messages 2 and 4 are answered at once (3 and 5).
            self.flush_rekey(who);
            return true;
        }
        let msg: ServerMsg = decode(&scratch[..n]).expect("hub messages decode");
        match msg {
            ServerMsg::ChatPending { chat_id, .. }
            | ServerMsg::ChatStarted { chat_id, .. }
            | ServerMsg::PeerLeft { chat_id }
            | ServerMsg::ChatRefused {
                chat_id: Some(chat_id),
                ..
            } => f.saw_id(chat_id),
            ServerMsg::ChatHandshake { chat_id, .. } | ServerMsg::ChatData { chat_id, .. } => {
                f.saw_id(chat_id)
            }
            _ => {}
        }
        match msg {
            ServerMsg::LoginOk { user } => {
                assert!(
                    self.reg.lookup(user) == Some(user_key(who)),
                    "login accepted for {user} with {}'s key",
                    NAMES[who]
                );
                f.name = Some(user.to_string());
                self.stats.logins += 1;
            }
            ServerMsg::Users { names, .. } => {
                for n in names {
                    assert!(self.reg.lookup(n).is_some(), "listed an unregistered user");
                }
            }
            ServerMsg::ChatStarted { peer, peer_key, .. } => {
                assert!(
                    self.reg.lookup(peer) == Some(peer_key),
                    "ChatStarted: key is not the peer's"
                );
            }
            ServerMsg::ChatHandshake { chat_id, noise }
            | ServerMsg::ChatData { chat_id, noise } => {
                let kind = if matches!(msg, ServerMsg::ChatHandshake { .. }) {
                    RelayKind::Handshake
                } else {
                    RelayKind::Data
                };
                let me = f.name.clone().expect("relay to a client not logged in");
                let i = self
                    .relays
                    .iter()
                    .position(|r| r.1 == me && r.2 == chat_id && r.3 == kind && r.4 == noise)
                    .unwrap_or_else(|| {
                        panic!(
                            "relayed bytes the chat's peer never sent to us: {me}, chat {chat_id}, \
                             {kind:?}, {noise:02x?}; sent: {:?}",
                            self.relays
                        )
                    });
                self.relays.remove(i);
                match kind {
                    RelayKind::Handshake => self.stats.chats += 1,
                    RelayKind::Data => self.stats.texts += 1,
                }
            }
            _ => {}
        }
        false
    }

    fn read_request(&mut self, who: usize) -> bool {
        let Some(f) = self.fakes[who].as_ref() else {
            return false;
        };
        if f.stall || f.daemon.is_none() {
            return false;
        }
        let sid = f.sid;
        let mut out = vec![0u8; 4 * MAX_REQUEST_FRAME];
        let n = self.hub.poll_request_transmit(sid, &mut out);
        let mut rest = &out[..n];
        let mut answer: Option<Vec<u8>> = None;
        while !rest.is_empty() {
            let Some(d) = self.fakes[who].as_mut().and_then(|f| f.daemon.as_mut()) else {
                break;
            };
            if d.dead {
                break;
            }
            match d
                .rx
                .feed(rest)
                .expect("hub writes well-formed request frames")
            {
                Feed::NeedMore => rest = &[],
                Feed::Frame { consumed } => {
                    rest = &rest[consumed..];
                    let frame = d.rx.frame().expect("frame").to_vec();
                    d.rx.clear();
                    let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
                    if let Some(hs) = d.hs.as_mut() {
                        // Message 1 (with a wrong PSK it fails: we stop).
                        if hs.read_message(&frame, &mut scratch).is_err() {
                            d.dead = true;
                            continue;
                        }
                        let mut m = [0u8; MAX_NOISE_MESSAGE];
                        let n = hs.write_message(&[], &mut m).expect("request message 2");
                        let hs = d.hs.take().expect("hs");
                        let outer = hs
                            .into_transport(&fake_limits(), self.now)
                            .expect("transport");
                        let layer = PqLayer::new(false, &outer, &mut self.frng).expect("layer");
                        d.pq = Some((outer, layer));
                        answer = Some(frame_of(&m[..n]));
                    } else if let Some((outer, layer)) = d.pq.as_mut() {
                        // The layer's first message, answered at once.
                        let mut m = frame.clone();
                        assert_eq!(
                            layer.read_message(&mut m, outer, &mut scratch),
                            Ok(0),
                            "the hub's layer message 1 is valid"
                        );
                        let mut out = [0u8; MAX_NOISE_MESSAGE];
                        let n = layer
                            .write_message(&[], outer, &mut out)
                            .expect("layer message 2");
                        let (outer, layer) = d.pq.take().expect("layer");
                        let transport = layer
                            .into_transport(outer, &fake_limits(), self.now)
                            .expect("transport");
                        // The hub dialled: it re-keys, we answer.
                        d.tr = Some(Keys::new(transport, false));
                        answer = Some(frame_of(&out[..n]));
                    } else if let Some(tr) = d.tr.as_mut() {
                        let n = tr
                            .decrypt(&frame, &mut scratch)
                            .expect("hub request frames decrypt in order");
                        if is_rekey_message(&scratch[..n]) {
                            let done = tr.rekeys();
                            tr.read_rekey(
                                &mut scratch[..n],
                                self.now,
                                &fake_limits(),
                                &mut self.frng,
                            )
                            .expect("the hub's request re-key messages are valid");
                            if tr.rekeys() > done {
                                // Message 5 read: the hub switched when it wrote it.
                                let ours = tr.rekeys();
                                let theirs = self.hub.session(sid).map(|s| s.rekeys().1);
                                assert_eq!(
                                    theirs,
                                    Some(ours),
                                    "the hub and {}'s daemon count different re-keys",
                                    NAMES[who]
                                );
                                self.stats.rekeys += 1;
                            }
                            // Messages 1 and 3 are answered at once (2 and 4).
                            if let Some(f) = crate::rekey_frame(tr, self.now, &fake_limits()) {
                                answer.get_or_insert_with(Vec::new).extend_from_slice(&f);
                            }
                            continue;
                        }
                        let msg: ServerToDaemon =
                            decode(&scratch[..n]).expect("hub request messages decode");
                        if !d.got_ready {
                            assert_eq!(msg, ServerToDaemon::Ready, "first request message");
                            d.got_ready = true;
                            self.stats.daemons += 1;
                        }
                        if let ServerToDaemon::ChatRequest { from, from_key, .. } = msg {
                            assert!(self.reg.lookup(from) == Some(from_key), "ChatRequest: key");
                        }
                        if let ServerToDaemon::ChatRequest { chat_id, .. }
                        | ServerToDaemon::Cancel { chat_id } = msg
                        {
                            if let Some(f) = self.fakes[who].as_mut() {
                                f.saw_id(chat_id);
                            }
                        }
                    }
                }
            }
        }
        match answer {
            Some(a) => {
                self.feed_hub_request(who, &a);
                true
            }
            None => false,
        }
    }

    /// Applies one operation, then reads and checks what the hub wrote.
    pub fn apply(&mut self, op: &ServerOp) {
        let w = |who: &u8| usize::from(*who) % 5;
        match op {
            ServerOp::Connect { who } => self.connect(w(who)),
            ServerOp::Hello { who, version, user } => {
                self.read_all();
                self.hello(w(who), *version, &user.0);
            }
            ServerOp::Login { who } => {
                let who = w(who);
                if self.fakes[who]
                    .as_ref()
                    .is_none_or(|f| f.tr.is_some() || f.dead)
                {
                    self.connect(who);
                }
                self.read_all();
                self.hello(who, PROTOCOL_VERSION, NAMES[who]);
            }
            ServerOp::Msg { who, msg } => {
                let who = w(who);
                let msg = msg.map_id(self.resolver(who));
                let m = msg.msg();
                let mut buf = [0u8; 2 * MAX_FRAME];
                let Ok(p) = postcard::to_slice(&m, &mut buf) else {
                    return;
                };
                let p = p.to_vec();
                self.send_plain(who, &p);
            }
            ServerOp::Plain { who, bytes } => self.send_plain(w(who), &bytes.0),
            ServerOp::Wire { who, bytes } => self.feed_hub(w(who), &bytes.0),
            ServerOp::Dial { ok } => {
                while let Some((sid, _port)) = self.hub.poll_dial() {
                    let who =
                        (0..5).find(|&i| self.fakes[i].as_ref().is_some_and(|f| f.sid == sid));
                    let Some(who) = who.filter(|_| *ok) else {
                        self.hub.request_channel_failed(sid, self.now, &self.reg);
                        continue;
                    };
                    let f = self.fakes[who].as_mut().expect("fake");
                    let psk = f.psk.clone().unwrap_or_else(|| Psk::from_bytes([0x77; 32]));
                    f.daemon = Some(Daemon::responder(&psk, &mut self.frng));
                    if self
                        .hub
                        .request_channel_connected(sid, self.now, &mut self.rng)
                        .is_err()
                    {
                        f.daemon = None;
                        self.hub.request_channel_failed(sid, self.now, &self.reg);
                    }
                }
            }
            ServerOp::DaemonMsg { who, msg } => {
                let msg = msg.map_id(self.resolver(w(who)));
                let mut buf = [0u8; 64];
                if let Ok(p) = postcard::to_slice(&msg.msg(), &mut buf) {
                    let p = p.to_vec();
                    self.send_daemon_plain(w(who), &p);
                }
            }
            ServerOp::DaemonPlain { who, bytes } => self.send_daemon_plain(w(who), &bytes.0),
            ServerOp::DaemonWire { who, bytes } => {
                if self.fakes[w(who)]
                    .as_ref()
                    .is_some_and(|f| f.daemon.is_some())
                {
                    self.feed_hub_request(w(who), &bytes.0);
                }
            }
            ServerOp::DaemonFail { who } => {
                if let Some(f) = self.fakes[w(who)].as_mut() {
                    if f.daemon.take().is_some() {
                        let sid = f.sid;
                        self.hub.request_channel_failed(sid, self.now, &self.reg);
                    }
                }
            }
            ServerOp::Disconnect { who } => self.disconnect(w(who)),
            ServerOp::Stall { who } => {
                if let Some(f) = self.fakes[w(who)].as_mut() {
                    f.stall = !f.stall;
                }
            }
            ServerOp::Advance(n) => {
                self.now = self.now.add(fixtures::step(*n));
                self.hub.handle_timeout(self.now, &self.reg, &mut self.rng);
                // Our timers, after the hub's (its came first: keys that
                // grew overdue meanwhile were closed): each fake client
                // whose keys are due starts a re-key.
                for who in 0..5 {
                    let Some(f) = self.fakes[who].as_mut().filter(|f| !f.dead) else {
                        continue;
                    };
                    let Some(tr) = f.tr.as_mut() else { continue };
                    if tr.rekey_due(self.now, &fake_limits()) {
                        tr.start(self.now, &mut self.frng)
                            .expect("a fake client starts a re-key");
                        self.flush_rekey(who);
                    }
                }
            }
            ServerOp::Shutdown => self.hub.shutdown(self.now, &self.reg),
            ServerOp::DialBack { who, right } => {
                let who = w(who);
                let Some(f) = self.fakes[who].as_mut() else {
                    return;
                };
                let mine = if *right { f.ticket.take() } else { None };
                let (ticket, genuine) = match mine {
                    Some(t) => (t, true),
                    None => (RequestTicket::from_bytes([0xa5; 32]), false),
                };
                let sid = f.sid;
                let psk = f.psk.clone().unwrap_or_else(|| Psk::from_bytes([0x77; 32]));
                let got = self
                    .hub
                    .request_channel_by_ticket(&ticket, self.now, &mut self.rng);
                // A ticket opens only its own session's channel, and one
                // nobody was given opens nothing.
                assert!(
                    got.is_none() || (genuine && got == Some(sid)),
                    "a ticket opened session {got:?} (ours {sid}, genuine {genuine})"
                );
                if got.is_some() {
                    // Presented once: a second time it opens nothing.
                    assert_eq!(
                        self.hub
                            .request_channel_by_ticket(&ticket, self.now, &mut self.rng),
                        None,
                        "a ticket opened two channels"
                    );
                    let daemon = Daemon::responder(&psk, &mut self.frng);
                    let f = self.fakes[who].as_mut().expect("fake");
                    f.daemon = Some(daemon);
                }
            }
        }
        self.read_all();
    }
}
