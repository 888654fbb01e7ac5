//! One real [`Client`] ("alice") in front of a fake, fuzzer-driven server.
//!
//! The fake server holds the real server key, so it completes the XX
//! handshake and can then send *authentic* messages of the fuzzer's choice:
//! well-formed or not (postcard without the bound checks, or raw plaintext),
//! in any order and state. It also dials the client's daemon (NNpsk0 with the
//! PSK derived from what the client announced, or a wrong one) and plays an
//! honest E2E peer, "bob", whose KK messages and texts it relays.
//!
//! Invariants checked (a failure is a bug):
//! - every frame the client writes is well-formed, decrypts in order and
//!   decodes as a role message or is a valid re-key message;
//! - `handle_input` consumes at least one byte of non-empty input and never
//!   more than given; no call leaves `EVENT_CAPACITY` events (none lost);
//! - `LoggedIn` names the configured user;
//! - a `ChatRequest`/`RefusedBusy` event only follows a `ChatRequest` sent on
//!   a link keyed with the right PSK, with the same fields; a link with a
//!   wrong PSK never authenticates;
//! - the daemon sends `Accept` for a chat only if the user accepted it;
//! - `ChatReady` only with bob (his name and key, the chat's id and the same
//!   safety number), and every `ChatMessage` is a text bob sent; every text
//!   bob decrypts is one alice sent;
//! - the user's answer to a request succeeds only for the id the last
//!   `ChatRequest` event showed;
//! - every `LeaveChat` names a chat id the server or a daemon link gave the
//!   client;
//! - the ends' `Close`s count right: alice's tells bob how many of his texts
//!   she never showed, and bob's `Close` ends alice's chat with
//!   `PeerClosed` and how many of hers he never received;
//! - re-keying: the fake server (responder on the standard channel), its
//!   daemon links (initiators: they start a re-key when their keys are due,
//!   as the real server does, when time passes) and bob (initiator when he
//!   requested the chat) run [`Keys`], answer the client's re-key messages
//!   and send theirs; when a re-key completes, both ends count the same
//!   number of re-keys (and every later message still decrypts in order);
//!   a re-key message the fuzzer made (an authentic plaintext starting
//!   with the marker) never completes a re-key: the channel closes.

use securecom_core::channel::Scratch;
use securecom_core::chat::{ChatText, E2eChat, Received};
use securecom_core::client::{ChatEnd, EVENT_CAPACITY};
use securecom_core::frame::{encode_frame, Feed, FrameDecoder};
use securecom_core::message::{
    decode, encode, Answer, ClientMsg, DaemonToServer, ServerHello, ServerMsg,
};
use securecom_core::noise::{
    Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, RequestTicket, Transport,
    REQUEST_PROLOGUE, STANDARD_PROLOGUE,
};
use securecom_core::pq::PqLayer;
use securecom_core::rekey::{is_rekey_message, Keys};
use securecom_core::{
    Client, ClientConfig, ClientEvent, Error, Instant, Limits, RequestLink, MAX_FRAME,
    MAX_NOISE_MESSAGE, MAX_PLAINTEXT, MAX_REQUEST_FRAME, MAX_REQUEST_NOISE_MESSAGE,
    PROTOCOL_VERSION,
};

use crate::arb::{ArbServerMsg, ArbServerToDaemon, Bytes, Cid, Cmd, Enc, Shown, Text, W};
use crate::fixtures::{self, server_secret, user_key, user_secret, Rng};

const ALICE: usize = 0;
const BOB: usize = 1;
/// Most request links open at once.
const MAX_LINKS: usize = 4;

/// One operation of the `client` target's fake-server mode (and of `daemon`).
#[derive(arbitrary::Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Exchange everything pending on the standard channel until quiet.
    Pump,
    /// Pump, then (once the handshake is over) send `LoginOk` and pump.
    Login,
    /// The payload of our handshake message 2 from now on (raw bytes).
    Hello(Bytes),
    /// Our handshake message 2 carries a `ServerHello` with this certificate
    /// (or the CA's certificate with byte `flip.0` XORed with `flip.1`).
    HelloCert {
        cert: Option<Bytes>,
        flip: (u16, u8),
    },
    /// An authentic message (postcard, bounds not checked).
    Msg(ArbServerMsg),
    /// An authentic transport message with any plaintext.
    Plain(Bytes),
    /// Raw bytes on the standard channel's socket.
    Wire(Bytes),
    /// The server dials the daemon: a new link, keyed right or wrong.
    LinkOpen { good_psk: bool },
    /// The link's NNpsk0 message 1 (real), and the daemon's answer read.
    LinkHandshake { link: u8 },
    /// An authentic request-channel message.
    LinkMsg { link: u8, msg: ArbServerToDaemon },
    /// An authentic request-channel transport message with any plaintext.
    LinkPlain { link: u8, bytes: Bytes },
    /// Raw bytes on the link's socket.
    LinkWire { link: u8, bytes: Bytes },
    /// Read what the daemon writes on the link.
    LinkPoll { link: u8 },
    /// The link's socket closes.
    LinkClosed { link: u8 },
    /// Bob's chat starts: `ChatStarted` for alice, and bob's KK state.
    BobStart { chat_id: Cid, alice_initiator: bool },
    /// Bob sends a text (when he may).
    BobText(Text),
    /// A user command.
    Cmd(Cmd),
    /// Time passes; every deadline is checked.
    Advance(u16),
    /// Bob leaves: his end-to-end `Close` (when his chat is open), then the
    /// server's `PeerLeft`.
    BobClose,
}

impl Enc for ClientOp {
    fn enc(&self, w: &mut W) {
        const N: u32 = 19;
        match self {
            Self::Pump => w.variant(0, N),
            Self::Login => w.variant(1, N),
            Self::Hello(b) => w.variant(2, N).put(b),
            Self::HelloCert { cert, flip } => {
                w.variant(3, N);
                match cert {
                    None => w.bool(false),
                    Some(b) => w.bool(true).put(b),
                };
                w.u16(flip.0).u8(flip.1)
            }
            Self::Msg(m) => w.variant(4, N).put(m),
            Self::Plain(b) => w.variant(5, N).put(b),
            Self::Wire(b) => w.variant(6, N).put(b),
            Self::LinkOpen { good_psk } => w.variant(7, N).bool(*good_psk),
            Self::LinkHandshake { link } => w.variant(8, N).u8(*link),
            Self::LinkMsg { link, msg } => w.variant(9, N).u8(*link).put(msg),
            Self::LinkPlain { link, bytes } => w.variant(10, N).u8(*link).put(bytes),
            Self::LinkWire { link, bytes } => w.variant(11, N).u8(*link).put(bytes),
            Self::LinkPoll { link } => w.variant(12, N).u8(*link),
            Self::LinkClosed { link } => w.variant(13, N).u8(*link),
            Self::BobStart {
                chat_id,
                alice_initiator,
            } => w.variant(14, N).put(chat_id).bool(*alice_initiator),
            Self::BobText(t) => w.variant(15, N).put(t),
            Self::Cmd(c) => w.variant(16, N).put(c),
            Self::Advance(n) => w.variant(17, N).u16(*n),
            Self::BobClose => w.variant(18, N),
        };
    }
}

/// How the client under test is set up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup {
    /// Small limits (see [`fixtures::limits`]).
    pub small_limits: bool,
    /// The client announces a daemon after login.
    pub daemon: bool,
    /// The client authenticates the server by the CA's certificate
    /// (`Client::with_ca`) instead of a pinned key.
    pub ca: bool,
    /// CA mode: the client has no clock (validity is not checked).
    pub no_clock: bool,
    /// CA mode: the client's clock is past the certificate's validity.
    pub late_clock: bool,
    /// CA mode: the certificate's serial is on the client's revocation list.
    pub revoked: bool,
    /// The fake server's static key is not the server's (mallory's): an
    /// impostor, perhaps with the real server's certificate.
    pub impostor: bool,
}

impl Setup {
    /// From the bits of a mode byte: 1 small limits, 2 no daemon, 3 CA,
    /// 4 no clock, 5 late clock, 6 revoked, 7 impostor.
    pub fn from_bits(b: u8) -> Self {
        Setup {
            small_limits: b & 2 != 0,
            daemon: b & 4 == 0,
            ca: b & 8 != 0,
            no_clock: b & 16 != 0,
            late_clock: b & 32 != 0,
            revoked: b & 64 != 0,
            impostor: b & 128 != 0,
        }
    }

    /// Whether a login may succeed at all with this setup.
    pub fn login_possible(&self) -> bool {
        !self.impostor && (!self.ca || ((self.no_clock || !self.late_clock) && !self.revoked))
    }
}

struct Link {
    link: RequestLink,
    hs: Option<Handshake>,
    /// NNpsk0's transport and the post-quantum layer over it.
    pq: Option<(Transport, PqLayer)>,
    /// The open channel's keys (we dialled: we re-key it).
    tr: Option<Keys>,
    good_psk: bool,
    rx: FrameDecoder<MAX_REQUEST_FRAME>,
    /// Our side stopped reading (the daemon closed or sent garbage).
    dead: bool,
}

struct Bob {
    chat: E2eChat,
    id: u32,
}

/// The fake server, its daemon links and bob, around the real client.
pub struct FakeServer {
    /// Simulated time.
    pub now: Instant,
    rng: Rng,
    srng: Rng,
    /// The client under test.
    pub client: Client,
    hs: Option<Handshake>,
    /// XX's transport and the post-quantum layer over it.
    pq: Option<(Transport, PqLayer)>,
    /// The open channel's keys (the client re-keys them; we answer).
    tr: Option<Keys>,
    dead: bool,
    rx: FrameDecoder<MAX_FRAME>,
    hello: Option<Vec<u8>>,
    login_sent: bool,
    psk: Option<Psk>,
    /// The request hellos the client asked its driver to send.
    hellos: Vec<[u8; 35]>,
    links: Vec<Link>,
    bob: Option<Bob>,
    /// Texts bob sent that alice has not received yet.
    bob_sent: Vec<String>,
    /// Re-keys of bob's chat counted in the stats.
    bob_rekeys: usize,
    /// `ChatMessage` events since bob's chat started.
    bob_delivered: u32,
    /// While bob's `Close` is delivered: the `undelivered` alice's
    /// `PeerClosed` must show (her chat with bob is open).
    closing: Option<u32>,
    /// Chat ids given to the client (in any server message or authentic
    /// chat request), the ones its `LeaveChat` may name.
    given_ids: Vec<u32>,
    /// Texts alice sent that bob has not received yet.
    alice_sent: Vec<String>,
    /// `ChatRequest`s sent on good links: (chat id, from, key bytes).
    requests_sent: Vec<(u32, String, [u8; 32])>,
    /// The chat ids of the last `ChatRequest` events.
    shown: Shown,
    /// Chats the user accepted whose `Accept` has not been read from a
    /// link yet: each acceptance justifies one `Accept` on the wire (one the
    /// daemon queued before the user left or logged out included).
    accepts: Vec<u32>,
    limits: Limits,
    setup: Setup,
    hello_cert_ok: bool,
    /// How far the run got.
    pub stats: crate::Stats,
}

fn fake_limits() -> Limits {
    // Our own side never stops first: the client's limits are under test.
    fixtures::limits(false)
}

impl FakeServer {
    /// A client that has just written its handshake message 1.
    pub fn new(setup: Setup) -> Self {
        let limits = fixtures::limits(setup.small_limits);
        let mut rng = fixtures::rng(1);
        let now = Instant::from_millis(1_000);
        let config = ClientConfig {
            user: securecom_core::message::user_name("alice").expect("valid"),
            server_key: fixtures::server_key(),
            daemon_port: setup.daemon.then_some(4242),
            limits,
        };
        let client = if setup.ca {
            let clock = match (setup.no_clock, setup.late_clock) {
                (true, _) => None,
                (false, false) => Some(fixtures::UNIX_NOW),
                (false, true) => Some(fixtures::UNIX_LATE),
            };
            let trust = fixtures::ca_trust(clock, setup.revoked);
            Client::with_ca(config, trust, user_secret(ALICE), now, &mut rng)
        } else {
            Client::new(config, user_secret(ALICE), now, &mut rng)
        }
        .expect("client starts");
        let mut srng = fixtures::rng(2);
        let server = if setup.impostor {
            user_secret(fixtures::MALLORY)
        } else {
            server_secret()
        };
        let hs = Handshake::new(
            HandshakeParams {
                pattern: Pattern::XX,
                initiator: false,
                prologue: STANDARD_PROLOGUE,
                local_static: Some(&server),
                remote_static: None,
                psk: None,
                check: RemoteCheck::Any,
            },
            &mut srng,
        )
        .expect("server handshake");
        FakeServer {
            now,
            rng,
            srng,
            client,
            hs: Some(hs),
            pq: None,
            tr: None,
            dead: false,
            rx: FrameDecoder::new(),
            hello: None,
            login_sent: false,
            psk: None,
            hellos: Vec::new(),
            links: Vec::new(),
            bob: None,
            bob_sent: Vec::new(),
            bob_rekeys: 0,
            bob_delivered: 0,
            closing: None,
            given_ids: Vec::new(),
            alice_sent: Vec::new(),
            requests_sent: Vec::new(),
            shown: Shown::default(),
            accepts: Vec::new(),
            limits,
            setup,
            hello_cert_ok: false,
            stats: crate::Stats::default(),
        }
    }

    /// A logged-in client whose daemon was announced (the `daemon` target's start).
    pub fn logged_in(small_limits: bool) -> Self {
        let mut s = Self::new(Setup {
            small_limits,
            daemon: true,
            ..Setup::default()
        });
        s.apply(&ClientOp::Login);
        assert!(s.client.is_logged_in(), "setup: login");
        assert!(s.psk.is_some(), "setup: daemon announced");
        s
    }

    // ------------------------------------------------------------ client I/O and checks

    fn events(&mut self) {
        let mut n = 0;
        while let Some(e) = self.client.poll_event() {
            n += 1;
            self.check_event(e);
        }
        assert!(
            n < EVENT_CAPACITY,
            "client left {n} events in one call: some may be lost"
        );
    }

    fn check_event(&mut self, e: ClientEvent) {
        match e {
            ClientEvent::ConnectRequestChannel(h) => self.hellos.push(h.0),
            ClientEvent::LoggedIn { user } => {
                assert_eq!(user.as_str(), "alice");
                assert!(
                    self.setup.login_possible(),
                    "logged in with {:?}",
                    self.setup
                );
                if self.setup.ca {
                    let c = self
                        .client
                        .certified_server()
                        .expect("CA mode: no certificate");
                    assert_eq!(c.serial, fixtures::CERT_SERIAL);
                    assert_eq!((c.not_before, c.not_after), fixtures::CERT_VALIDITY);
                    assert!(
                        self.hello_cert_ok,
                        "logged in after a hello without the valid certificate"
                    );
                } else {
                    assert!(self.client.certified_server().is_none());
                }
                self.stats.logins += 1;
            }
            ClientEvent::ChatRequest {
                chat_id,
                from,
                from_key,
            } => {
                assert!(
                    self.requests_sent
                        .iter()
                        .any(|r| r.0 == chat_id && r.1 == from.as_str() && r.2 == from_key.0),
                    "ChatRequest event without an authentic request"
                );
                self.shown.push(chat_id);
            }
            ClientEvent::RefusedBusy { from } => assert!(
                self.requests_sent.iter().any(|r| r.1 == from.as_str()),
                "RefusedBusy without an authentic request"
            ),
            ClientEvent::ChatReady {
                chat_id,
                peer,
                peer_key,
                safety_number,
                ..
            } => {
                assert_eq!(peer.as_str(), "bob", "chat ready with someone but bob");
                assert!(peer_key == user_key(BOB), "chat ready with a key but bob's");
                let bob = self.bob.as_ref().expect("chat ready without bob");
                assert_eq!(chat_id, bob.id, "chat ready: id");
                assert!(
                    safety_number == bob.chat.safety_number(),
                    "safety numbers differ"
                );
                self.stats.chats += 1;
            }
            ClientEvent::ChatMessage { from, text } => {
                assert_eq!(from.as_str(), "bob");
                let i = self
                    .bob_sent
                    .iter()
                    .position(|t| t.as_str() == text.as_str())
                    .expect("alice got a text bob never sent");
                self.bob_sent.remove(i);
                self.bob_delivered += 1;
                self.stats.texts += 1;
            }
            ClientEvent::ChatEnded {
                peer,
                reason: ChatEnd::PeerClosed { undelivered },
            } => {
                assert_eq!(peer.as_str(), "bob", "closed by someone but bob");
                let want = self
                    .closing
                    .take()
                    .expect("PeerClosed without bob's Close in an open chat");
                assert_eq!(
                    undelivered, want,
                    "PeerClosed: undelivered is not what bob's Close counts"
                );
            }
            _ => {}
        }
    }

    fn feed_client(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.client.handle_input(self.now, rest, &mut self.rng) {
                Ok(used) => {
                    assert!(
                        used > 0 && used <= rest.len(),
                        "handle_input used {used} of {}",
                        rest.len()
                    );
                    rest = &rest[used..];
                }
                Err(_) => rest = &[],
            }
            self.events();
        }
    }

    /// Sends an authentic transport message (plaintext as given) to the client.
    fn send_plain(&mut self, plain: &[u8]) {
        let Some(tr) = self.tr.as_mut() else { return };
        if plain.len() > MAX_PLAINTEXT {
            return;
        }
        // Judged by the decoder the client uses, however the plaintext was made.
        let id = match decode::<ServerMsg>(plain) {
            Ok(
                ServerMsg::ChatPending { chat_id, .. }
                | ServerMsg::ChatStarted { chat_id, .. }
                | ServerMsg::ChatHandshake { chat_id, .. }
                | ServerMsg::ChatData { chat_id, .. }
                | ServerMsg::PeerLeft { chat_id },
            )
            | Ok(ServerMsg::ChatRefused {
                chat_id: Some(chat_id),
                ..
            }) => Some(chat_id),
            _ => None,
        };
        if let Some(id) = id.filter(|id| !self.given_ids.contains(id)) {
            self.given_ids.push(id);
        }
        // A re-key message the fuzzer made (the client is the initiator:
        // none of ours is ever a switch it may take).
        let forged = crate::forged_rekey(tr, plain);
        let mut ct = [0u8; MAX_NOISE_MESSAGE];
        let n = tr.encrypt(plain, &mut ct).expect("fake server encrypts");
        let mut frame = [0u8; MAX_FRAME];
        let f = encode_frame(&ct[..n], &mut frame).expect("frame");
        let frame = frame[..f].to_vec();
        let before = self.client.rekeys();
        self.feed_client(&frame);
        if forged {
            assert!(
                self.client.is_closed(),
                "a re-key message the fuzzer made left the client's channel open"
            );
            assert!(
                self.client.rekeys() <= before,
                "a re-key message the fuzzer made completed a re-key"
            );
        }
    }

    /// Sends our next re-key message on the standard channel, if one is due.
    fn flush_rekey(&mut self) {
        let now = self.now;
        while let Some(f) = self
            .tr
            .as_mut()
            .and_then(|tr| crate::rekey_frame(tr, now, &fake_limits()))
        {
            self.feed_client(&f);
        }
    }

    fn send_msg(&mut self, msg: &ServerMsg<'_>) {
        let mut buf = [0u8; 2 * MAX_FRAME];
        if let Ok(p) = postcard::to_slice(msg, &mut buf) {
            let p = p.to_vec();
            self.send_plain(&p);
        }
    }

    /// Reads everything the client wrote on the standard channel; returns
    /// true if something was read.
    fn drain_client(&mut self) -> bool {
        let mut out = vec![0u8; 4 * MAX_FRAME];
        let n = self.client.poll_transmit(&mut out);
        if n == 0 {
            return false;
        }
        let mut rest = &out[..n];
        while !rest.is_empty() {
            if self.dead {
                return true;
            }
            match self
                .rx
                .feed(rest)
                .expect("client writes well-formed frames")
            {
                Feed::NeedMore => rest = &[],
                Feed::Frame { consumed } => {
                    rest = &rest[consumed..];
                    let frame = self.rx.frame().expect("frame").to_vec();
                    self.rx.clear();
                    self.on_client_frame(&frame);
                }
            }
        }
        true
    }

    fn on_client_frame(&mut self, frame: &[u8]) {
        let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
        if let Some((outer, layer)) = self.pq.as_mut() {
            // The layer's first message (empty payload), answered at once.
            let mut m = frame.to_vec();
            let mut payload = [0u8; 64];
            if layer.read_message(&mut m, outer, &mut payload) != Ok(0) {
                self.pq = None;
                self.dead = true;
                return;
            }
            let mut msg = [0u8; MAX_NOISE_MESSAGE];
            let n = layer
                .write_message(&[], outer, &mut msg)
                .expect("layer message 2");
            let (outer, layer) = self.pq.take().expect("layer");
            let transport = layer
                .into_transport(outer, &fake_limits(), self.now)
                .expect("transport");
            // The client initiated the handshake: it re-keys, we answer.
            self.tr = Some(Keys::new(transport, false));
            let mut f = [0u8; MAX_FRAME];
            let len = encode_frame(&msg[..n], &mut f).expect("frame");
            let f = f[..len].to_vec();
            self.feed_client(&f);
            return;
        }
        if let Some(hs) = self.hs.as_mut() {
            if hs.read_message(frame, &mut scratch).is_err() {
                self.dead = true;
                return;
            }
            if hs.is_finished() {
                let hs = self.hs.take().expect("handshake");
                assert_eq!(
                    hs.remote_static(),
                    Some(user_key(ALICE)),
                    "client's static key"
                );
                let outer = hs
                    .into_transport(&fake_limits(), self.now)
                    .expect("transport");
                let layer = PqLayer::new(false, &outer, &mut self.srng).expect("layer");
                self.pq = Some((outer, layer));
                return;
            }
            let payload = match &self.hello {
                Some(p) => p.clone(),
                None => {
                    let mut b = [0u8; 512];
                    let cert = self.setup.ca.then(fixtures::server_cert);
                    let n = encode(
                        &ServerHello {
                            version: PROTOCOL_VERSION,
                            certificate: cert,
                        },
                        &mut b,
                    )
                    .expect("hello");
                    b[..n].to_vec()
                }
            };
            // Did this hello carry exactly the CA's certificate?
            self.hello_cert_ok = match securecom_core::message::decode::<ServerHello>(&payload) {
                Ok(h) => h.certificate == Some(fixtures::server_cert()),
                Err(_) => false,
            };
            let mut msg = [0u8; MAX_NOISE_MESSAGE];
            match hs.write_message(&payload, &mut msg) {
                Ok(n) => {
                    let mut f = [0u8; MAX_FRAME];
                    let len = encode_frame(&msg[..n], &mut f).expect("frame");
                    let f = f[..len].to_vec();
                    self.feed_client(&f);
                }
                Err(_) => self.dead = true,
            }
            return;
        }
        let Some(tr) = self.tr.as_mut() else {
            self.dead = true;
            return;
        };
        let n = tr
            .decrypt(frame, &mut scratch)
            .expect("every client frame decrypts in order");
        if is_rekey_message(&scratch[..n]) {
            let done = tr.rekeys();
            tr.read_rekey(&mut scratch[..n], self.now, &fake_limits(), &mut self.srng)
                .expect("every client re-key message is valid");
            if tr.rekeys() > done {
                // Message 5 read: the client switched when it wrote it.
                assert_eq!(
                    tr.rekeys(),
                    self.client.rekeys(),
                    "the client and the server count different re-keys"
                );
                self.stats.rekeys += 1;
            }
            self.flush_rekey();
            return;
        }
        let msg: ClientMsg = decode(&scratch[..n]).expect("every client message decodes");
        match msg {
            ClientMsg::AnnounceDaemon { secret, .. } => {
                let hash = *tr.handshake_hash();
                self.psk = Some(Psk::for_request_channel(&hash, &secret));
            }
            ClientMsg::DialRequestChannel { secret } => {
                let hash = *tr.handshake_hash();
                self.psk = Some(Psk::for_request_channel(&hash, &secret));
                // The client asked its driver to connect with exactly the
                // ticket of this secret.
                let hello = RequestTicket::new(&hash, &secret).hello();
                assert!(
                    self.hellos.contains(&hello),
                    "DialRequestChannel without the hello of its ticket"
                );
            }
            ClientMsg::ChatHandshake { chat_id, noise } => {
                if let Some(bob) = self.bob.as_mut().filter(|b| b.id == chat_id) {
                    if bob
                        .chat
                        .read_handshake(self.now, &mut noise.to_vec())
                        .is_err()
                    {
                        self.bob = None;
                    }
                    self.bob_write();
                }
            }
            ClientMsg::ChatData { chat_id, noise } => {
                if let Some(bob) = self.bob.as_mut().filter(|b| b.id == chat_id) {
                    let mut text = ChatText::new();
                    match bob.chat.decrypt(self.now, noise, &mut text, &mut self.srng) {
                        Ok(Received::Rekey) => self.bob_rekey(),
                        Ok(Received::Text) => {
                            let i = self
                                .alice_sent
                                .iter()
                                .position(|t| t.as_str() == text.as_str())
                                .expect("bob got a text alice never sent");
                            self.alice_sent.remove(i);
                            self.stats.texts += 1;
                        }
                        Ok(Received::Closed { undelivered }) => {
                            // Alice's close authenticated: she showed every
                            // text of bob's she received in this chat.
                            let (sent, _) = bob.chat.counts();
                            let unshown = sent
                                .checked_sub(self.bob_delivered)
                                .expect("alice showed more texts than bob sent");
                            assert_eq!(
                                undelivered, unshown,
                                "alice's Close: undelivered is not what bob sent and she did not show"
                            );
                            self.bob = None;
                        }
                        Err(_) => self.bob = None,
                    }
                }
            }
            ClientMsg::LeaveChat { chat_id } => {
                assert!(
                    self.given_ids.contains(&chat_id),
                    "LeaveChat names chat {chat_id}, which the client was never given"
                );
                // As the server does: only the chat (or request) it names.
                if self.bob.as_ref().is_some_and(|b| b.id == chat_id) {
                    self.bob = None;
                }
            }
            _ => {}
        }
    }

    fn bob_write(&mut self) {
        let Some(bob) = self.bob.as_mut() else { return };
        let mut buf = [0u8; MAX_NOISE_MESSAGE];
        match bob.chat.write_handshake(self.now, &mut buf) {
            Ok(Some(n)) => {
                let id = bob.id;
                let noise = buf[..n].to_vec();
                self.send_msg(&ServerMsg::ChatHandshake {
                    chat_id: id,
                    noise: &noise,
                });
            }
            Ok(None) => {}
            Err(_) => self.bob = None,
        }
    }

    /// Sends bob's next re-key messages, if due (as chat messages, relayed
    /// by the server); when he completes one, alice counts the same.
    fn bob_rekey(&mut self) {
        // Bob read message 5 (he is the responder)?
        self.check_chat_rekeys();
        loop {
            let Some(bob) = self.bob.as_mut() else { return };
            let mut buf = [0u8; MAX_NOISE_MESSAGE];
            let n = match bob.chat.write_rekey(self.now, &mut buf) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => panic!("bob writes his re-key message: {e:?}"),
            };
            let id = bob.id;
            let noise = buf[..n].to_vec();
            self.send_msg(&ServerMsg::ChatData {
                chat_id: id,
                noise: &noise,
            });
            // His message 5 (he is the initiator): alice switched on it.
            self.check_chat_rekeys();
        }
    }

    /// When bob completed a re-key of his chat: alice's chat with him (if
    /// it is still open) counts as many.
    fn check_chat_rekeys(&mut self) {
        let Some(bob) = self.bob.as_ref() else { return };
        let theirs = bob.chat.rekeys();
        if theirs as usize <= self.bob_rekeys {
            return;
        }
        if let Some(c) = self
            .client
            .chat()
            .filter(|c| c.id() == bob.id && c.is_open() && self.client.is_logged_in())
        {
            assert_eq!(
                c.rekeys(),
                theirs,
                "alice's and bob's chat count different re-keys"
            );
        }
        self.stats.rekeys += theirs as usize - self.bob_rekeys;
        self.bob_rekeys = theirs as usize;
    }

    /// Exchanges standard-channel bytes until both sides are quiet.
    fn pump(&mut self) {
        for _ in 0..16 {
            if !self.drain_client() {
                return;
            }
        }
    }

    // ------------------------------------------------------------ links

    fn link_index(&self, link: u8) -> Option<usize> {
        (!self.links.is_empty()).then(|| usize::from(link) % self.links.len())
    }

    fn feed_link(&mut self, i: usize, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let l = &mut self.links[i];
            match self
                .client
                .handle_request_input(&mut l.link, self.now, rest, &mut self.rng)
            {
                Ok(used) => {
                    assert!(
                        used > 0 && used <= rest.len(),
                        "handle_request_input used {used}"
                    );
                    rest = &rest[used..];
                }
                Err(_) => rest = &[],
            }
            if l.link.is_authenticated() {
                assert!(l.good_psk, "a link keyed with a wrong PSK authenticated");
                self.stats.daemons += 1;
            }
            if !l.good_psk {
                // Nothing may come of a foreign link: check before the events.
                let mut n = 0;
                while let Some(e) = self.client.poll_event() {
                    n += 1;
                    assert!(
                        !matches!(
                            e,
                            ClientEvent::ChatRequest { .. }
                                | ClientEvent::RefusedBusy { .. }
                                | ClientEvent::RequestWithdrawn { .. }
                        ),
                        "a link with a wrong PSK changed the client's state: {e:?}"
                    );
                    self.check_event(e);
                }
                assert!(n < EVENT_CAPACITY);
            } else {
                self.events();
            }
        }
    }

    fn link_send_plain(&mut self, i: usize, plain: &[u8]) {
        let Some(tr) = self.links[i].tr.as_mut() else {
            return;
        };
        if plain.len() + 16 > securecom_core::MAX_REQUEST_NOISE_MESSAGE {
            return;
        }
        if crate::is_due_switch(tr, plain) {
            // Exactly the switch we owe: it goes as ours.
            self.link_flush_rekey(i);
            return;
        }
        let forged = crate::forged_rekey(tr, plain);
        let mut ct = [0u8; MAX_NOISE_MESSAGE];
        let n = tr.encrypt(plain, &mut ct).expect("link encrypts");
        // An authentic chat request, whether built as one (`LinkMsg`) or
        // found by the fuzzer as raw plaintext (`LinkPlain`): judged by the
        // decoder the daemon uses.
        if self.links[i].good_psk {
            if let Ok(securecom_core::message::ServerToDaemon::ChatRequest {
                chat_id,
                from,
                from_key,
            }) = decode(plain)
            {
                self.requests_sent
                    .push((chat_id, from.to_string(), from_key.0));
                if !self.given_ids.contains(&chat_id) {
                    self.given_ids.push(chat_id);
                }
            }
        }
        let mut f = [0u8; MAX_REQUEST_FRAME];
        let len = encode_frame(&ct[..n], &mut f).expect("frame");
        let f = f[..len].to_vec();
        let before = self.links[i].link.rekeys();
        self.feed_link(i, &f);
        if forged {
            let l = &self.links[i].link;
            assert!(
                l.is_closed(),
                "a re-key message the fuzzer made left the daemon's link open"
            );
            assert!(
                l.rekeys() <= before,
                "a re-key message the fuzzer made completed a re-key"
            );
        }
    }

    /// Sends link `i`'s next re-key messages, if due (we dialled it: we
    /// started the re-key); when we switch, the daemon does too.
    fn link_flush_rekey(&mut self, i: usize) {
        let now = self.now;
        loop {
            let l = &mut self.links[i];
            let Some(tr) = l.tr.as_mut() else { return };
            let done = tr.rekeys();
            let Some(f) = crate::rekey_frame(tr, now, &fake_limits()) else {
                return;
            };
            let switched = tr.rekeys() > done;
            self.feed_link(i, &f);
            if switched {
                let l = &self.links[i];
                if !l.link.is_closed() {
                    assert_eq!(
                        l.link.rekeys(),
                        l.tr.as_ref().map_or(0, |t| t.rekeys()),
                        "the daemon and the server count different re-keys"
                    );
                }
                self.stats.rekeys += 1;
            }
        }
    }

    fn link_poll(&mut self, i: usize) {
        let mut out = [0u8; 4 * MAX_REQUEST_FRAME];
        let n = {
            let l = &mut self.links[i];
            self.client
                .poll_request_transmit(&mut l.link, self.now, &mut out)
        };
        self.events();
        let mut rest = &out[..n];
        // The layer's first message, to send once the daemon's bytes are read.
        let mut layer_msg = None;
        // A re-key message was read: our answer is due.
        let mut rekey_answer = false;
        while !rest.is_empty() {
            let l = &mut self.links[i];
            if l.dead {
                return;
            }
            match l.rx.feed(rest).expect("daemon writes well-formed frames") {
                Feed::NeedMore => rest = &[],
                Feed::Frame { consumed } => {
                    rest = &rest[consumed..];
                    let frame = l.rx.frame().expect("frame").to_vec();
                    l.rx.clear();
                    let mut scratch: Scratch = [0; MAX_NOISE_MESSAGE];
                    if let Some(hs) = l.hs.as_mut() {
                        match hs.read_message(&frame, &mut scratch) {
                            Ok(_) if hs.is_finished() => {
                                let hs = l.hs.take().expect("handshake");
                                let mut outer = hs
                                    .into_transport(&fake_limits(), self.now)
                                    .expect("transport");
                                let mut layer =
                                    PqLayer::new(true, &outer, &mut self.srng).expect("layer");
                                let mut msg = [0u8; MAX_REQUEST_NOISE_MESSAGE];
                                let n = layer
                                    .write_message(&[], &mut outer, &mut msg)
                                    .expect("layer message 1");
                                let mut f = [0u8; MAX_REQUEST_FRAME];
                                let len = encode_frame(&msg[..n], &mut f).expect("frame");
                                layer_msg = Some(f[..len].to_vec());
                                l.pq = Some((outer, layer));
                            }
                            _ => l.dead = true,
                        }
                    } else if let Some((outer, layer)) = l.pq.as_mut() {
                        let mut m = frame.clone();
                        if layer.read_message(&mut m, outer, &mut scratch) == Ok(0) {
                            let (outer, layer) = l.pq.take().expect("layer");
                            let transport = layer
                                .into_transport(outer, &fake_limits(), self.now)
                                .expect("transport");
                            // We dialled: we re-key the link.
                            l.tr = Some(Keys::new(transport, true));
                        } else {
                            l.dead = true;
                        }
                    } else if let Some(tr) = l.tr.as_mut() {
                        let n = tr
                            .decrypt(&frame, &mut scratch)
                            .expect("daemon frames decrypt in order");
                        if is_rekey_message(&scratch[..n]) {
                            tr.read_rekey(
                                &mut scratch[..n],
                                self.now,
                                &fake_limits(),
                                &mut self.srng,
                            )
                            .expect("the daemon's re-key messages are valid");
                            rekey_answer = true;
                            continue;
                        }
                        let msg: DaemonToServer =
                            decode(&scratch[..n]).expect("daemon messages decode");
                        if let DaemonToServer::Answer {
                            chat_id,
                            answer: Answer::Accept,
                        } = msg
                        {
                            let i = self
                                .accepts
                                .iter()
                                .position(|a| *a == chat_id)
                                .unwrap_or_else(|| {
                                    panic!("daemon accepted chat {chat_id} the user did not accept")
                                });
                            self.accepts.remove(i);
                        }
                    } else {
                        l.dead = true;
                    }
                }
            }
        }
        if let Some(f) = layer_msg {
            self.feed_link(i, &f);
            self.link_poll(i);
        }
        if rekey_answer {
            self.link_flush_rekey(i);
            self.link_poll(i);
        }
    }

    // ------------------------------------------------------------ operations

    /// Applies one operation.
    pub fn apply(&mut self, op: &ClientOp) {
        match op {
            ClientOp::Pump => self.pump(),
            ClientOp::Login => {
                self.pump();
                if self.tr.is_some() && !self.login_sent {
                    self.login_sent = true;
                    self.send_msg(&ServerMsg::LoginOk { user: "alice" });
                    self.pump();
                }
            }
            ClientOp::Hello(b) => self.hello = Some(b.0.clone()),
            ClientOp::HelloCert { cert, flip } => {
                let mut c = match cert {
                    Some(b) => b.0.clone(),
                    None => fixtures::server_cert().to_vec(),
                };
                if !c.is_empty() {
                    let i = usize::from(flip.0) % c.len();
                    c[i] ^= flip.1;
                }
                let hello = ServerHello {
                    version: PROTOCOL_VERSION,
                    certificate: Some(&c),
                };
                let mut b = [0u8; 2 * MAX_FRAME];
                if let Ok(p) = postcard::to_slice(&hello, &mut b) {
                    self.hello = Some(p.to_vec());
                }
            }
            ClientOp::Msg(m) => {
                if let (ArbServerMsg::LoginOk { .. }, true) = (m, self.tr.is_some()) {
                    self.login_sent = true;
                }
                self.send_msg(&m.msg())
            }
            ClientOp::Plain(b) => self.send_plain(&b.0),
            ClientOp::Wire(b) => self.feed_client(&b.0),
            ClientOp::LinkOpen { good_psk } => {
                if self.links.len() >= MAX_LINKS {
                    let l = self.links.remove(0);
                    self.client.request_link_closed(&l.link);
                    self.events();
                }
                let Ok(link) = self.client.new_request_link(self.now, &mut self.rng) else {
                    return;
                };
                let good = *good_psk && self.psk.is_some();
                let psk = match (&self.psk, good) {
                    (Some(p), true) => p.clone(),
                    _ => Psk::from_bytes([0x77; 32]),
                };
                let hs = Handshake::new(
                    HandshakeParams {
                        pattern: Pattern::NNpsk0,
                        initiator: true,
                        prologue: REQUEST_PROLOGUE,
                        local_static: None,
                        remote_static: None,
                        psk: Some(&psk),
                        check: RemoteCheck::Any,
                    },
                    &mut self.srng,
                )
                .expect("link handshake");
                self.links.push(Link {
                    link,
                    hs: Some(hs),
                    pq: None,
                    tr: None,
                    good_psk: good,
                    rx: FrameDecoder::new(),
                    dead: false,
                });
            }
            ClientOp::LinkHandshake { link } => {
                let Some(i) = self.link_index(*link) else {
                    return;
                };
                let Some(hs) = self.links[i].hs.as_mut().filter(|h| h.is_write_turn()) else {
                    return;
                };
                let mut msg = [0u8; MAX_NOISE_MESSAGE];
                let n = hs.write_message(&[], &mut msg).expect("link message 1");
                let mut f = [0u8; MAX_REQUEST_FRAME];
                let len = encode_frame(&msg[..n], &mut f).expect("frame");
                let f = f[..len].to_vec();
                self.feed_link(i, &f);
                self.link_poll(i);
            }
            ClientOp::LinkMsg { link, msg } => {
                let Some(i) = self.link_index(*link) else {
                    return;
                };
                let m = msg.msg();
                let mut buf = [0u8; 256];
                let Ok(p) = postcard::to_slice(&m, &mut buf) else {
                    return;
                };
                let p = p.to_vec();
                self.link_send_plain(i, &p);
            }
            ClientOp::LinkPlain { link, bytes } => {
                let Some(i) = self.link_index(*link) else {
                    return;
                };
                self.link_send_plain(i, &bytes.0);
            }
            ClientOp::LinkWire { link, bytes } => {
                let Some(i) = self.link_index(*link) else {
                    return;
                };
                self.feed_link(i, &bytes.0);
            }
            ClientOp::LinkPoll { link } => {
                let Some(i) = self.link_index(*link) else {
                    return;
                };
                self.link_poll(i);
            }
            ClientOp::LinkClosed { link } => {
                let Some(i) = self.link_index(*link) else {
                    return;
                };
                let l = self.links.remove(i);
                self.client.request_link_closed(&l.link);
                self.events();
            }
            ClientOp::BobStart {
                chat_id,
                alice_initiator,
            } => {
                let me = securecom_core::message::user_name("alice").expect("name");
                let Ok(chat) = E2eChat::new(
                    chat_id.0,
                    &user_secret(BOB),
                    "bob",
                    me,
                    user_key(ALICE),
                    !*alice_initiator,
                    self.limits,
                    self.now,
                    &mut self.srng,
                ) else {
                    return;
                };
                self.bob = Some(Bob {
                    chat,
                    id: chat_id.0,
                });
                self.bob_delivered = 0;
                self.bob_rekeys = 0;
                self.send_msg(&ServerMsg::ChatStarted {
                    chat_id: chat_id.0,
                    peer: "bob",
                    peer_key: user_key(BOB),
                    initiator: *alice_initiator,
                });
                self.bob_write();
            }
            ClientOp::BobText(t) => {
                let Some(bob) = self.bob.as_mut() else { return };
                let mut buf = [0u8; MAX_NOISE_MESSAGE];
                if let Ok(n) = bob.chat.encrypt_text(&t.0, &mut buf) {
                    let id = bob.id;
                    self.bob_sent.push(t.0.clone());
                    let noise = buf[..n].to_vec();
                    self.send_msg(&ServerMsg::ChatData {
                        chat_id: id,
                        noise: &noise,
                    });
                }
            }
            ClientOp::BobClose => {
                let Some(bob) = self.bob.as_mut() else { return };
                let id = bob.id;
                let (_, received) = bob.chat.counts();
                // Alice's chat with bob, open: what her `PeerClosed` must say.
                let want = self
                    .client
                    .chat()
                    .filter(|c| c.id() == id && c.is_open())
                    .map(|c| {
                        c.counts()
                            .0
                            .checked_sub(received)
                            .expect("bob received more texts than alice sent")
                    });
                let mut buf = [0u8; MAX_NOISE_MESSAGE];
                let close = bob.chat.encrypt_close(&mut buf);
                self.bob = None;
                if let Ok(Some(n)) = close {
                    self.closing = want;
                    let noise = buf[..n].to_vec();
                    self.send_msg(&ServerMsg::ChatData {
                        chat_id: id,
                        noise: &noise,
                    });
                    self.closing = None;
                }
                self.send_msg(&ServerMsg::PeerLeft { chat_id: id });
            }
            ClientOp::Cmd(c) => self.cmd(c),
            ClientOp::Advance(n) => {
                self.now = self.now.add(fixtures::step(*n));
                let _ = self.client.handle_timeout(self.now, &mut self.rng);
                self.events();
                for i in 0..self.links.len() {
                    let l = &mut self.links[i];
                    let _ = self.client.handle_request_timeout(&mut l.link, self.now);
                    self.events();
                }
                // Our timers, after the client's (theirs came first): the
                // links we dialled and bob's chat (if he requested it)
                // start a re-key when their keys are due.
                for i in 0..self.links.len() {
                    let l = &mut self.links[i];
                    let Some(tr) = l.tr.as_mut().filter(|_| !l.dead) else {
                        continue;
                    };
                    if tr.rekey_due(self.now, &fake_limits()) {
                        tr.start(self.now, &mut self.srng)
                            .expect("the server starts a re-key");
                        self.link_flush_rekey(i);
                    }
                }
                if let Some(bob) = self.bob.as_mut() {
                    if bob.chat.start_rekey(self.now, &mut self.srng).is_err() {
                        self.bob = None;
                    }
                    self.bob_rekey();
                }
            }
        }
    }

    fn cmd(&mut self, c: &Cmd) {
        let now = self.now;
        let r: Result<(), Error> = match c {
            Cmd::ListUsers => self.client.list_users(now),
            Cmd::RequestChat(n) => self.client.request_chat(now, &n.0),
            Cmd::Answer(a) => self.answer(self.shown.last().unwrap_or(0), *a),
            Cmd::AnswerStale { accept, back } => self.answer(self.shown.stale(*back), *accept),
            Cmd::SendText(t) => {
                let r = self.client.send_text(now, &t.0);
                if r.is_ok() {
                    self.alice_sent.push(t.0.clone());
                }
                r
            }
            Cmd::LeaveChat => self.client.leave_chat(now),
            Cmd::Logout => self.client.logout(now),
        };
        let _ = r;
        self.events();
    }

    fn answer(&mut self, id: u32, accept: bool) -> Result<(), Error> {
        let r = self.client.answer_request(id, accept);
        if r.is_ok() {
            assert_eq!(
                Some(id),
                self.shown.last(),
                "answered chat {id}, not the request last shown"
            );
            if accept {
                self.accepts.push(id);
            }
        }
        r
    }
}

/// One operation of the `daemon` target (a subset of [`ClientOp`]).
#[derive(arbitrary::Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum DaemonOp {
    /// [`ClientOp::LinkOpen`].
    Open { good_psk: bool },
    /// [`ClientOp::LinkHandshake`].
    Handshake { link: u8 },
    /// [`ClientOp::LinkMsg`].
    Msg { link: u8, msg: ArbServerToDaemon },
    /// [`ClientOp::LinkPlain`].
    Plain { link: u8, bytes: Bytes },
    /// [`ClientOp::LinkWire`].
    Wire { link: u8, bytes: Bytes },
    /// [`ClientOp::LinkPoll`].
    Poll { link: u8 },
    /// [`ClientOp::LinkClosed`].
    Closed { link: u8 },
    /// The user answers the request.
    Answer(bool),
    /// The user leaves (or drops an accepted request).
    Leave,
    /// The user asks someone for a chat.
    Request(crate::arb::Name),
    /// Time passes.
    Advance(u16),
    /// Standard channel traffic is exchanged.
    Pump,
}

impl DaemonOp {
    /// The same operation of the fake-server harness.
    pub fn op(self) -> ClientOp {
        match self {
            DaemonOp::Open { good_psk } => ClientOp::LinkOpen { good_psk },
            DaemonOp::Handshake { link } => ClientOp::LinkHandshake { link },
            DaemonOp::Msg { link, msg } => ClientOp::LinkMsg { link, msg },
            DaemonOp::Plain { link, bytes } => ClientOp::LinkPlain { link, bytes },
            DaemonOp::Wire { link, bytes } => ClientOp::LinkWire { link, bytes },
            DaemonOp::Poll { link } => ClientOp::LinkPoll { link },
            DaemonOp::Closed { link } => ClientOp::LinkClosed { link },
            DaemonOp::Answer(a) => ClientOp::Cmd(Cmd::Answer(a)),
            DaemonOp::Leave => ClientOp::Cmd(Cmd::LeaveChat),
            DaemonOp::Request(n) => ClientOp::Cmd(Cmd::RequestChat(n)),
            DaemonOp::Advance(n) => ClientOp::Advance(n),
            DaemonOp::Pump => ClientOp::Pump,
        }
    }
}

impl Enc for DaemonOp {
    fn enc(&self, w: &mut W) {
        const N: u32 = 12;
        match self {
            Self::Open { good_psk } => w.variant(0, N).bool(*good_psk),
            Self::Handshake { link } => w.variant(1, N).u8(*link),
            Self::Msg { link, msg } => w.variant(2, N).u8(*link).put(msg),
            Self::Plain { link, bytes } => w.variant(3, N).u8(*link).put(bytes),
            Self::Wire { link, bytes } => w.variant(4, N).u8(*link).put(bytes),
            Self::Poll { link } => w.variant(5, N).u8(*link),
            Self::Closed { link } => w.variant(6, N).u8(*link),
            Self::Answer(a) => w.variant(7, N).bool(*a),
            Self::Leave => w.variant(8, N),
            Self::Request(n) => w.variant(9, N).put(n),
            Self::Advance(n) => w.variant(10, N).u16(*n),
            Self::Pump => w.variant(11, N),
        };
    }
}
