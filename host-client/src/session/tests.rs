//! The driver against a scripted server in memory, on tokio's paused clock.
//!
//! The server is the core's own [`ServerSession`] behind a
//! [`tokio::io::duplex`] pipe, driven by [`Fake`]: it logs alice in, answers
//! her `/chat bob` (a second later, as a peer accepting would), plays bob's
//! end of the end-to-end chat itself (or stays silent), floods or stalls as a
//! test asks, and records what it saw. The client side is the real driver:
//! [`spawn_connection`] (reader, writer, timer) and [`Session::run`] fed
//! through a stdin channel, its events captured as script-mode JSON lines.
//! Time is tokio's paused clock, so "10 s" takes no time and is exact.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use securecom_core::channel::TX_CAPACITY;
use securecom_core::chat::{ChatText, E2eChat, Received};
use securecom_core::message::{user_name, ChatId};
use securecom_core::server::RelayKind;
use securecom_core::{
    ClientConfig, Limits, PublicKey, Registry, ServerConfig, ServerEvent, ServerSession,
    StaticSecret, MAX_E2E_MESSAGE,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{watch, Notify};
use tokio::time::{timeout, Instant as TokioInstant};

use super::*;

/// Bytes the in-memory pipe holds in each direction (a socket's buffers).
const PIPE: usize = 4096;
/// The chat id the fake server gives.
const CHAT: ChatId = 7;

struct Reg(Vec<(String, PublicKey)>);

impl Registry for Reg {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        self.0.iter().find(|(n, _)| n == user).map(|(_, k)| *k)
    }
}

/// How the fake bob answers.
enum Bob {
    /// Never sends his KK handshake message.
    Silent,
    /// Answers the handshake; after alice's first text sends `flood` texts.
    Answers { flood: usize },
}

/// What the fake server saw.
#[derive(Default)]
struct Seen {
    /// When `ChatStarted` went to alice.
    chat_started: Option<TokioInstant>,
    /// Texts bob received from alice.
    texts_from_alice: usize,
    /// Texts bob sent.
    texts_to_alice: usize,
    /// Alice's end-to-end close reached bob.
    close_from_alice: bool,
    /// Alice's `LeaveChat` reached the server.
    left: bool,
    /// `Users` pages written.
    pages_written: usize,
}

/// The scripted server.
struct Fake {
    session: ServerSession,
    clock: Clock,
    rng: Rng,
    reg: Reg,
    alice_key: PublicKey,
    bob_key: StaticSecret,
    bob: Bob,
    bob_chat: Option<E2eChat>,
    /// One listing per `ListUsers`: its pages (names, more).
    listings: VecDeque<Vec<(Vec<String>, bool)>>,
    /// Once the chat is open, stop reading (and writing) until notified.
    stall_when_open: Option<Arc<Notify>>,
    seen: Arc<Mutex<Seen>>,
}

impl Fake {
    async fn run(mut self, io: DuplexStream) {
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut buf = vec![0u8; PIPE];
        loop {
            self.flush(&mut wr).await;
            let n = rd.read(&mut buf).await.expect("server read");
            if n == 0 {
                return;
            }
            let mut input = &buf[..n];
            while !input.is_empty() {
                let used = self
                    .session
                    .handle_input(self.clock.now(), input, &self.reg, &mut self.rng)
                    .expect("the client broke the protocol");
                input = &input[used..];
                let mut events = Vec::new();
                while let Some(ev) = self.session.poll_event() {
                    events.push(ev);
                }
                for ev in events {
                    self.on_event(ev, &mut wr).await;
                }
            }
            if let Some(resume) = self.stall_when_open.clone() {
                if self.bob_chat.as_ref().is_some_and(E2eChat::is_open) {
                    self.flush(&mut wr).await;
                    resume.notified().await;
                    self.stall_when_open = None;
                }
            }
        }
    }

    async fn flush(&mut self, wr: &mut WriteHalf<DuplexStream>) {
        let mut chunk = [0u8; 2048];
        loop {
            let n = self.session.poll_transmit(&mut chunk);
            if n == 0 {
                return;
            }
            wr.write_all(&chunk[..n]).await.expect("server write");
        }
    }

    async fn on_event(&mut self, ev: ServerEvent, wr: &mut WriteHalf<DuplexStream>) {
        let now = self.clock.now();
        match ev {
            ServerEvent::ChatRequest { to } => {
                assert_eq!(to.as_str(), "bob");
                self.session
                    .chat_pending(now, CHAT, "bob")
                    .expect("pending");
                self.flush(wr).await;
                // Bob takes a second to accept: `ChatPending` and `ChatStarted`
                // do not reach the client together.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = self.clock.now();
                let bob = user_name("bob").expect("name");
                let alice = user_name("alice").expect("name");
                self.bob_chat = Some(
                    E2eChat::new(
                        CHAT,
                        &self.bob_key,
                        bob.as_str(),
                        alice,
                        self.alice_key,
                        false,
                        Limits::DEFAULT,
                        now,
                        &mut self.rng,
                    )
                    .expect("bob's end"),
                );
                let bob_pub = self.bob_key.public_key();
                assert!(self
                    .session
                    .chat_answered(now, CHAT, "bob", bob_pub, Ok(())));
                self.flush(wr).await;
                self.seen.lock().expect("seen").chat_started = Some(TokioInstant::now());
            }
            ServerEvent::Relay { kind, .. } => {
                let payload = self.session.relay_payload().to_vec();
                self.on_relay(kind, &payload, wr).await;
            }
            ServerEvent::Left { .. } => self.seen.lock().expect("seen").left = true,
            ServerEvent::ListUsers => {
                let pages = self.listings.pop_front().expect("a listing for this test");
                for (names, more) in pages {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    self.session
                        .send_users(self.clock.now(), &names, more)
                        .expect("page");
                    self.flush(wr).await;
                    self.seen.lock().expect("seen").pages_written += 1;
                }
            }
            _ => {}
        }
    }

    async fn on_relay(
        &mut self,
        kind: RelayKind,
        payload: &[u8],
        wr: &mut WriteHalf<DuplexStream>,
    ) {
        let now = self.clock.now();
        let flood = match self.bob {
            Bob::Silent => return,
            Bob::Answers { flood } => flood,
        };
        let chat = self.bob_chat.as_mut().expect("a chat");
        let mut out = [0u8; MAX_E2E_MESSAGE];
        match kind {
            RelayKind::Handshake => {
                // KK message 1, then the layer's first message: bob, the
                // responder, answers each.
                chat.read_handshake(now, &mut payload.to_vec())
                    .expect("alice's handshake message");
                let n = chat
                    .write_handshake(now, &mut out)
                    .expect("bob's handshake message")
                    .expect("bob's turn");
                self.session
                    .relay(now, CHAT, "bob", RelayKind::Handshake, &out[..n]);
            }
            RelayKind::Data => {
                let mut text = ChatText::new();
                let received = chat
                    .decrypt(now, payload, &mut text, &mut securecom_host::thread_rng())
                    .expect("alice's message");
                match received {
                    Received::Rekey => {
                        if let Some(n) = chat.write_rekey(now, &mut out).expect("bob's re-key") {
                            self.session
                                .relay(now, CHAT, "bob", RelayKind::Data, &out[..n]);
                        }
                    }
                    Received::Closed { .. } => {
                        self.seen.lock().expect("seen").close_from_alice = true;
                    }
                    Received::Text => {
                        let first = {
                            let mut seen = self.seen.lock().expect("seen");
                            seen.texts_from_alice += 1;
                            seen.texts_from_alice == 1
                        };
                        if first {
                            for i in 0..flood {
                                let chat = self.bob_chat.as_mut().expect("a chat");
                                let n = chat
                                    .encrypt_text(&format!("flood {i}"), &mut out)
                                    .expect("bob's text");
                                self.session.relay(
                                    self.clock.now(),
                                    CHAT,
                                    "bob",
                                    RelayKind::Data,
                                    &out[..n],
                                );
                                // The session's queue holds two frames: write each.
                                self.flush(wr).await;
                                self.seen.lock().expect("seen").texts_to_alice += 1;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a test drives and watches.
struct Harness {
    session: Session,
    ui_rx: UnboundedReceiver<Queued>,
    stdin_rx: UnboundedReceiver<Result<String, String>>,
    stdin: UnboundedSender<Result<String, String>>,
    lines: UnboundedReceiver<String>,
    shared: Shared,
    out: Outputs,
    seen: Arc<Mutex<Seen>>,
    _dir: tempfile::TempDir,
}

struct Setup {
    bob: Bob,
    /// Remember another key for bob first: his key "changed".
    bob_key_changed: bool,
    listings: VecDeque<Vec<(Vec<String>, bool)>>,
    stall_when_open: Option<Arc<Notify>>,
}

impl Setup {
    fn new(bob: Bob) -> Self {
        Setup {
            bob,
            bob_key_changed: false,
            listings: VecDeque::new(),
            stall_when_open: None,
        }
    }
}

fn start(setup: Setup) -> Harness {
    let mut rng = os_rng();
    let server_key = StaticSecret::generate(&mut rng);
    let alice_key = StaticSecret::generate(&mut rng);
    let bob_key = StaticSecret::generate(&mut rng);
    let alice_pub = alice_key.public_key();
    let clock = Clock::new();

    let (client_io, server_io) = tokio::io::duplex(PIPE);
    let session = ServerSession::new(&ServerConfig::default(), &server_key, clock.now(), &mut rng)
        .expect("server session");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let fake = Fake {
        session,
        clock,
        rng: os_rng(),
        reg: Reg(vec![("alice".into(), alice_pub)]),
        alice_key: alice_pub,
        bob_key,
        bob: setup.bob,
        bob_chat: None,
        listings: setup.listings,
        stall_when_open: setup.stall_when_open,
        seen: seen.clone(),
    };
    tokio::spawn(fake.run(server_io));

    let config = ClientConfig {
        user: user_name("alice").expect("name"),
        server_key: server_key.public_key(),
        daemon_port: None,
        limits: Limits::DEFAULT,
    };
    let client = Client::new(config, alice_key, clock.now(), &mut rng).expect("client");
    let shared = Shared::new(Core { client, rng }, clock);
    let (out, ui_rx) = Outputs::new();
    let (rd, wr): (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>) = tokio::io::split(client_io);
    spawn_connection(rd, wr, &shared, &out);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut known = KnownPeers::load(&dir.path().join("alice.known_peers")).expect("known peers");
    if setup.bob_key_changed {
        let old = StaticSecret::generate(&mut os_rng()).public_key();
        known.remember("bob", old).expect("remember");
    }
    let (ui, lines) = Ui::capture(true);
    let (answers, _) = watch::channel(0u64);
    let session = Session::new(
        ui,
        shared.clone(),
        out.clone(),
        answers,
        "alice".into(),
        known,
        false,
        None,
    );
    let (stdin, stdin_rx) = unbounded_channel();
    Harness {
        session,
        ui_rx,
        stdin_rx,
        stdin,
        lines,
        shared,
        out,
        seen,
        _dir: dir,
    }
}

/// Runs the session until `script` is done (the session must not end first).
async fn drive<F: std::future::Future<Output = ()>>(
    session: &mut Session,
    ui_rx: UnboundedReceiver<Queued>,
    stdin_rx: UnboundedReceiver<Result<String, String>>,
    script: F,
) {
    let mut rl = None;
    tokio::select! {
        code = session.run(ui_rx, stdin_rx, &mut rl) => panic!("the session ended ({code})"),
        () = script => {}
    }
}

/// The next event line (JSON) of kind `event`, skipping the others; at most
/// `within` (virtual) time. Returns it and when it came.
async fn expect(
    lines: &mut UnboundedReceiver<String>,
    event: &str,
    within: Duration,
) -> (Value, TokioInstant) {
    let end = TokioInstant::now() + within;
    loop {
        let line = timeout(
            end.saturating_duration_since(TokioInstant::now()),
            lines.recv(),
        )
        .await
        .unwrap_or_else(|_| panic!("no {event} event within {within:?}"))
        .expect("output open");
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        if v["event"] == event {
            return (v, TokioInstant::now());
        }
        assert!(
            !(v["event"] == "disconnected" || v["event"] == "closed"),
            "the session ended: {line}"
        );
    }
}

/// Every line that comes within `quiet` (virtual) time of the previous.
async fn rest(lines: &mut UnboundedReceiver<String>, quiet: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    while let Ok(Some(line)) = timeout(quiet, lines.recv()).await {
        all.push(serde_json::from_str(&line).expect("a JSON line"));
    }
    all
}

fn type_line(stdin: &UnboundedSender<Result<String, String>>, line: &str) {
    stdin.send(Ok(line.to_string())).expect("stdin open");
}

// ============================================================ item 4: deadlines

/// The end-to-end handshake deadline (10 s from `ChatStarted`) is kept
/// although `ChatStarted` shows nothing: the chat ends at 10 s, not at the
/// next keep-alive (25 s after the last thing we sent).
#[tokio::test(start_paused = true)]
async fn unanswered_kk_handshake_ends_the_chat_at_its_deadline() {
    let mut h = start(Setup::new(Bob::Silent));
    let (lines, stdin, seen) = (&mut h.lines, h.stdin.clone(), h.seen.clone());
    drive(&mut h.session, h.ui_rx, h.stdin_rx, async move {
        expect(lines, "logged_in", Duration::from_secs(5)).await;
        // Past the login handshake's deadline: the timer's next wake-up, as
        // far as it knew before the chat, is the keep-alive.
        tokio::time::sleep(Duration::from_secs(12)).await;
        type_line(&stdin, "/chat bob");
        expect(lines, "chat_pending", Duration::from_secs(5)).await;
        let (ended, at) = expect(lines, "chat_ended", Duration::from_secs(60)).await;
        assert_eq!(ended["reason"], "failed", "{ended}");
        assert_eq!(ended["detail"], "handshake timed out", "{ended}");
        let started = seen
            .lock()
            .expect("seen")
            .chat_started
            .expect("ChatStarted sent");
        let after = at - started;
        let deadline = Duration::from_millis(Limits::DEFAULT.handshake_timeout.as_millis());
        assert!(
            after >= deadline && after < deadline + Duration::from_millis(100),
            "the chat ended {after:?} after ChatStarted (deadline {deadline:?}; \
             the keep-alive is {} ms)",
            Limits::DEFAULT.keepalive_interval().as_millis()
        );
    })
    .await;
}

/// The keep-alive still goes out on time when nothing else happens.
#[tokio::test(start_paused = true)]
async fn keepalive_is_sent_on_time() {
    let mut h = start(Setup::new(Bob::Silent));
    let (lines, shared) = (&mut h.lines, h.shared.clone());
    drive(&mut h.session, h.ui_rx, h.stdin_rx, async move {
        expect(lines, "logged_in", Duration::from_secs(5)).await;
        let before = shared.now();
        let keepalive = Limits::DEFAULT.keepalive_interval();
        let due = shared.lock().client.poll_timeout().expect("a deadline");
        assert!(due.since(before).as_millis() <= keepalive.as_millis());
        // Past the keep-alive time the deadline has moved on: the Ping was sent.
        tokio::time::sleep(Duration::from_millis(keepalive.as_millis() + 100)).await;
        let next = shared.lock().client.poll_timeout().expect("a deadline");
        assert!(next > due, "the keep-alive deadline did not move");
        assert!(rest(lines, Duration::from_millis(10)).await.is_empty());
    })
    .await;
}

// ============================================================ item 6: bounds

/// Up to [`MAX_HELD_MESSAGES`] messages are held while bob's changed key
/// waits for `/trust`, then all are shown; the chat goes on.
#[tokio::test(start_paused = true)]
async fn held_messages_up_to_the_bound_are_kept() {
    let mut setup = Setup::new(Bob::Answers {
        flood: MAX_HELD_MESSAGES,
    });
    setup.bob_key_changed = true;
    let mut h = start(setup);
    let (lines, stdin, seen, shared, out) = (
        &mut h.lines,
        h.stdin.clone(),
        h.seen.clone(),
        h.shared.clone(),
        h.out.clone(),
    );
    drive(&mut h.session, h.ui_rx, h.stdin_rx, async move {
        open_held_chat(lines, &stdin, &shared, &out).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(seen.lock().expect("seen").texts_to_alice, MAX_HELD_MESSAGES);
        let shown = rest(lines, Duration::from_millis(100)).await;
        assert!(shown.is_empty(), "shown while held: {shown:?}");
        type_line(&stdin, "/trust bob");
        expect(lines, "trusted", Duration::from_secs(1)).await;
        let shown = rest(lines, Duration::from_millis(100)).await;
        let messages = shown.iter().filter(|v| v["event"] == "message").count();
        assert_eq!(messages, MAX_HELD_MESSAGES, "{shown:?}");
        assert!(shown.iter().all(|v| v["event"] == "message"), "{shown:?}");
        assert!(shared.lock().client.chat().is_some(), "the chat goes on");
    })
    .await;
    assert!(h.session.held_messages.is_empty());
}

/// One message more than [`MAX_HELD_MESSAGES`] ends the held chat (our
/// end-to-end close and `LeaveChat` go out) and discards the held messages:
/// none is shown, and memory does not grow with the flood.
#[tokio::test(start_paused = true)]
async fn one_held_message_too_many_ends_the_chat() {
    let mut setup = Setup::new(Bob::Answers {
        flood: MAX_HELD_MESSAGES + 40,
    });
    setup.bob_key_changed = true;
    let mut h = start(setup);
    let (lines, stdin, seen, shared, out) = (
        &mut h.lines,
        h.stdin.clone(),
        h.seen.clone(),
        h.shared.clone(),
        h.out.clone(),
    );
    drive(&mut h.session, h.ui_rx, h.stdin_rx, async move {
        open_held_chat(lines, &stdin, &shared, &out).await;
        let (error, _) = expect(lines, "error", Duration::from_secs(5)).await;
        let message = error["message"].as_str().expect("a message");
        assert!(
            message.starts_with(
                "too many messages from bob held while the key was not trusted: chat ended"
            ),
            "{message}"
        );
        let (ended, _) = expect(lines, "chat_ended", Duration::from_secs(1)).await;
        assert_eq!(ended["reason"], "left", "{ended}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let shown = rest(lines, Duration::from_millis(100)).await;
        assert!(
            shown.iter().all(|v| v["event"] != "message"),
            "a held message was shown: {shown:?}"
        );
        assert!(shared.lock().client.chat().is_none(), "the chat is over");
        let seen = seen.lock().expect("seen");
        assert_eq!(seen.texts_to_alice, MAX_HELD_MESSAGES + 40);
        assert!(seen.close_from_alice, "bob got alice's end-to-end close");
        assert!(seen.left, "the server got alice's LeaveChat");
    })
    .await;
    assert!(h.session.held_messages.is_empty());
    assert!(h.session.held.is_none());
    // `/trust` now shows nothing old.
    assert!(h.session.pending_trust.is_empty());
}

/// `/chat bob` with a changed key for bob, up to the held chat; then alice
/// speaks first (through the core: the driver sends nothing while held, but
/// as the responder she would have been spoken to first) so that bob may send.
async fn open_held_chat(
    lines: &mut UnboundedReceiver<String>,
    stdin: &UnboundedSender<Result<String, String>>,
    shared: &Shared,
    out: &Outputs,
) {
    expect(lines, "logged_in", Duration::from_secs(5)).await;
    type_line(stdin, "/chat bob");
    expect(lines, "chat_ready", Duration::from_secs(5)).await;
    expect(lines, "key_changed", Duration::from_secs(1)).await;
    type_line(stdin, "hello?");
    let (refused, _) = expect(lines, "error", Duration::from_secs(1)).await;
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("on hold")),
        "{refused}"
    );
    let mut core = shared.lock();
    let now = shared.now();
    core.client.send_text(now, "hello").expect("sent");
    out.drain(&mut core.client);
}

fn page(from: usize, n: usize, more: bool) -> (Vec<String>, bool) {
    ((from..from + n).map(|i| format!("u{i:05}")).collect(), more)
}

/// A listing longer than [`MAX_LISTED_USERS`] is cut there: the first names
/// are shown with `truncated`, the rest of that listing is ignored, and the
/// next listing is whole again.
#[tokio::test(start_paused = true)]
async fn endless_users_pages_are_cut() {
    let per_page = securecom_core::MAX_USERS_PER_MESSAGE;
    let pages = MAX_LISTED_USERS / per_page + 100;
    let mut long: Vec<_> = (0..pages)
        .map(|p| page(p * per_page, per_page, true))
        .collect();
    long.push(page(pages * per_page, 1, false));
    let mut setup = Setup::new(Bob::Silent);
    setup.listings = VecDeque::from([long, vec![page(0, 3, false)]]);
    let mut h = start(setup);
    let (lines, stdin, seen) = (&mut h.lines, h.stdin.clone(), h.seen.clone());
    drive(&mut h.session, h.ui_rx, h.stdin_rx, async move {
        expect(lines, "logged_in", Duration::from_secs(5)).await;
        type_line(&stdin, "/users");
        let (users, _) = expect(lines, "users", Duration::from_secs(60)).await;
        let names = users["names"].as_array().expect("names");
        assert_eq!(names.len(), MAX_LISTED_USERS);
        assert_eq!(names[0], "u00000");
        assert_eq!(
            names[MAX_LISTED_USERS - 1],
            format!("u{:05}", MAX_LISTED_USERS - 1)
        );
        assert_eq!(users["truncated"], true);
        type_line(&stdin, "/users");
        let (users, _) = expect(lines, "users", Duration::from_secs(60)).await;
        assert_eq!(
            users["names"],
            serde_json::json!(["u00000", "u00001", "u00002"])
        );
        assert!(users.get("truncated").is_none(), "{users}");
        assert_eq!(seen.lock().expect("seen").pages_written, pages + 2);
        let shown = rest(lines, Duration::from_millis(100)).await;
        assert!(shown.is_empty(), "{shown:?}");
    })
    .await;
    assert!(h.session.users.is_empty());
    assert!(!h.session.users_cut);
}

/// While the main task does not take its events, the reader stops at
/// [`UI_QUEUE`] of them and stops reading the socket: the server's writes
/// block (its own connection slows down), and all arrives once the main
/// task catches up.
#[tokio::test(start_paused = true)]
async fn a_flood_waits_for_the_terminal() {
    let pages = 1000;
    let long: Vec<_> = (0..pages).map(|p| page(0, 16, p + 1 < pages)).collect();
    let mut setup = Setup::new(Bob::Silent);
    setup.listings = VecDeque::from([long]);
    let mut h = start(setup);
    // The main task's queue, read by the test itself (no `Session::run`).
    let Queued { msg, .. } = timeout(Duration::from_secs(5), h.ui_rx.recv())
        .await
        .expect("in time")
        .expect("open");
    assert!(matches!(msg, UiMsg::Core(ev) if matches!(*ev, ClientEvent::LoggedIn { .. })));
    {
        let mut core = h.shared.lock();
        let now = h.shared.now();
        core.client.list_users(now).expect("listing asked");
        h.out.drain(&mut core.client);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let queued = h.ui_rx.len();
    let written = h.seen.lock().expect("seen").pages_written;
    assert!(
        (UI_QUEUE - EVENT_CAPACITY..=UI_QUEUE).contains(&queued),
        "{queued} events queued"
    );
    assert!(
        written < pages / 4,
        "the server wrote {written} of {pages} pages: the client kept reading"
    );
    // The main task catches up: everything arrives, in order.
    let mut got = 0;
    while got < pages {
        let Queued { msg, .. } = timeout(Duration::from_secs(5), h.ui_rx.recv())
            .await
            .expect("in time")
            .expect("open");
        let UiMsg::Core(ev) = msg else {
            panic!("not an event")
        };
        let ClientEvent::Users { more, .. } = *ev else {
            panic!("not a page")
        };
        got += 1;
        assert_eq!(more, got < pages);
    }
    assert_eq!(h.seen.lock().expect("seen").pages_written, pages);
}

/// While the server does not read, our bytes stay in the core's queue (the
/// writer holds one chunk): after a few messages `send_text` fails with
/// "the server is not reading", the session goes on, and once the server
/// reads again messages go out again.
#[tokio::test(start_paused = true)]
async fn a_server_that_does_not_read_gets_queue_full() {
    let resume = Arc::new(Notify::new());
    let mut setup = Setup::new(Bob::Answers { flood: 0 });
    setup.stall_when_open = Some(resume.clone());
    let mut h = start(setup);
    let (lines, stdin, seen) = (&mut h.lines, h.stdin.clone(), h.seen.clone());
    drive(&mut h.session, h.ui_rx, h.stdin_rx, async move {
        expect(lines, "logged_in", Duration::from_secs(5)).await;
        type_line(&stdin, "/chat bob");
        expect(lines, "chat_ready", Duration::from_secs(5)).await;
        let text = "x".repeat(400);
        let mut sent = 0;
        let refused = loop {
            type_line(&stdin, &text);
            let shown = rest(lines, Duration::from_millis(50)).await;
            let [v] = shown.as_slice() else {
                panic!("one event per line: {shown:?}")
            };
            match v["event"].as_str() {
                Some("sent") => sent += 1,
                Some("error") => break v["message"].clone(),
                _ => panic!("{v}"),
            }
            assert!(sent < 100, "no bound: {sent} messages queued");
        };
        assert_eq!(refused, "the server is not reading: message not sent");
        // What waits is bounded by the pipe, the writer's chunk and the
        // core's queue (each message is more than 400 bytes on the wire).
        let bound = (PIPE + WRITE_CHUNK + TX_CAPACITY) / 400;
        assert!(
            (2..=bound).contains(&sent),
            "{sent} messages went out (at most {bound})"
        );
        // Still refused while the server does not read; the session goes on.
        type_line(&stdin, &text);
        let (again, _) = expect(lines, "error", Duration::from_secs(1)).await;
        assert_eq!(
            again["message"],
            "the server is not reading: message not sent"
        );
        // The server reads again: the queue empties, and sending works.
        resume.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(seen.lock().expect("seen").texts_from_alice, sent);
        type_line(&stdin, "after");
        let (ok, _) = expect(lines, "sent", Duration::from_secs(1)).await;
        assert_eq!(ok["text"], "after");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(seen.lock().expect("seen").texts_from_alice, sent + 1);
    })
    .await;
}
