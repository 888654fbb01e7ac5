//! The `chat` command: the tokio driver around [`securecom_core::Client`].
//!
//! Tasks:
//! - **main** (this module's [`Session::run`]): user commands from stdin,
//!   printing events, the exit decision;
//! - **reader**: standard-channel bytes → [`Client::handle_input`];
//! - **writer**: bytes the core queued → the server socket, in order;
//! - **timer**: [`Client::poll_timeout`] / [`Client::handle_timeout`] (the
//!   keep-alive, the channel's deadlines, the end-to-end handshake deadline);
//! - **daemon** (see [`crate::daemon`]): request-channel connections.
//!
//! They share one [`Client`] behind a mutex ([`Shared`]) that is held only
//! for core calls, never across an `.await`. After every core call the caller
//! hands the events the core produced to the main task, in the order the
//! core produced them, and wakes the writer and the timer ([`Outputs::drain`]):
//! any core call may have queued bytes or moved the earliest deadline (a
//! `ChatStarted` starts the 10 s end-to-end handshake deadline, earlier than
//! the 25 s keep-alive), so the timer re-reads `poll_timeout` after each.
//!
//! # Bounds
//! Every buffer of the driver is bounded, and says what happens at the bound:
//! - **events for the main task**: at most [`UI_QUEUE`] events from the
//!   network wait for the main task. The reader and the daemon links take
//!   room for one frame's events ([`Outputs::room`]) before feeding the core
//!   each frame; while the main task (the terminal) is behind they wait, so
//!   they stop reading their sockets and TCP slows the sender down, not our
//!   memory. (Events of the main task's own commands and of the timer never
//!   wait: there are few per command or deadline.)
//! - **bytes for the server**: there is no queue of our own. The writer takes
//!   at most [`WRITE_CHUNK`] bytes at a time from the core's fixed output
//!   queue and writes them; while the server does not read, the bytes stay in
//!   the core's queue, and once it is full `send_text` fails with `QueueFull`
//!   ("the server is not reading: message not sent").
//! - **messages held** while a peer's changed key waits for `/trust`: at most
//!   [`MAX_HELD_MESSAGES`]; one more ends the chat (as `/leave` does) and the
//!   held messages are discarded.
//! - **names of one `/users` listing**: at most [`MAX_LISTED_USERS`]; at the
//!   bound the names gathered are shown with `truncated` and the rest of that
//!   listing (up to its last page) is ignored.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustyline_async::{Readline, ReadlineEvent};
use securecom_core::cert::{CaTrust, RevokedSerials};
use securecom_core::client::EVENT_CAPACITY;
use securecom_core::message::{user_name, UserName};
use securecom_core::{
    Client, ClientConfig, ClientEvent, Error, Instant, ProtocolError, PublicKey, MAX_FRAME,
};
use securecom_host::certfile::{format_time, unix_now};
use securecom_host::{os_rng, HostCrypto, Rng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

use crate::cli::{ChatSettings, DaemonAllow, ServerTrust};
use crate::command::{self, Command, HELP};
use crate::daemon::Allow;
use crate::errors::{command_error, describe};
use crate::known_peers::{Check, KnownPeers};
use crate::output::{chat_end, close_reason, error_code, login_error, refuse_reason, Event, Ui};

/// Exit status: `/quit` (or end of input) ended with a clean logout.
pub const EXIT_OK: i32 = 0;
/// Exit status: bad arguments, config, key file or daemon address.
pub const EXIT_USAGE: i32 = 1;
/// Exit status: the server cannot be reached.
pub const EXIT_UNREACHABLE: i32 = 2;
/// Exit status: the server refused the login.
pub const EXIT_REFUSED: i32 = 3;
/// Exit status: the server closed the session for another reason than our logout.
pub const EXIT_CLOSED: i32 = 4;
/// Exit status: the connection was lost or the handshake failed (e.g. server key mismatch).
pub const EXIT_LOST: i32 = 5;
/// Exit status: interrupted (a second Ctrl-C, or Ctrl-C before login).
pub const EXIT_INTERRUPTED: i32 = 130;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `/quit` waits for the server's `Bye`.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the interactive mode refreshes the online list in its prompt.
const USERS_REFRESH: Duration = Duration::from_secs(20);

/// Most events from the network waiting for the main task (see the module
/// docs, "Bounds"). At the bound the reader and the daemon links stop
/// reading their sockets until the main task has caught up.
pub const UI_QUEUE: usize = 64;
const _: () = assert!(UI_QUEUE >= EVENT_CAPACITY);

/// Most bytes the writer takes from the core's output queue at a time: one
/// frame. The rest stays in the core's fixed queue while the server does not
/// read, and `send_text` then fails with `QueueFull`.
pub const WRITE_CHUNK: usize = MAX_FRAME;

/// Most chat messages held while the peer's changed key waits for `/trust`.
/// One more ends the chat (as `/leave` does) and discards them: a peer (or a
/// server) cannot make us keep an unbounded backlog nobody reads.
pub const MAX_HELD_MESSAGES: usize = 64;

/// Most user names one `/users` listing gathers from its pages (a server
/// could send `more: true` pages without end). At the bound the names
/// gathered are shown, marked as cut, and the rest of that listing is ignored.
pub const MAX_LISTED_USERS: usize = 10_000;

/// How soon the timer tries again when a deadline's work did not fit the
/// core's output queue (the server is not reading).
const TIMER_RETRY: Duration = Duration::from_secs(1);

/// The driver's clock for the core: milliseconds since the session started,
/// read from tokio's clock (the same as the system's monotonic clock, except
/// in tests, which may pause it).
#[derive(Clone, Copy)]
pub struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            start: tokio::time::Instant::now(),
        }
    }

    /// Now, for the core.
    pub fn now(&self) -> Instant {
        let ms = self.start.elapsed().as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The tokio instant of a core deadline.
    pub fn instant(&self, at: Instant) -> tokio::time::Instant {
        let far = self.start + Duration::from_secs(100 * 365 * 24 * 3600);
        self.start
            .checked_add(Duration::from_millis(at.as_millis()))
            .map_or(far, |t| t.min(far))
    }

    /// Sleeps until the core deadline `at` (for ever if there is none).
    pub async fn sleep_until(self, at: Option<Instant>) {
        match at {
            Some(at) => tokio::time::sleep_until(self.instant(at)).await,
            None => std::future::pending().await,
        }
    }
}

/// The client and its RNG, shared by all tasks.
pub struct Core {
    /// The protocol state.
    pub client: Client<HostCrypto>,
    /// Randomness for the core.
    pub rng: Rng,
}

/// The shared [`Core`]; lock it only around core calls.
#[derive(Clone)]
pub struct Shared {
    core: Arc<Mutex<Core>>,
    clock: Clock,
}

impl Shared {
    /// Shares `core`, whose times come from `clock`.
    pub fn new(core: Core, clock: Clock) -> Self {
        Shared {
            core: Arc::new(Mutex::new(core)),
            clock,
        }
    }

    /// Locks the core (a panic in another task does not make it unusable).
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Now, for the core.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The session's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }
}

/// What the tasks tell the main task.
pub enum UiMsg {
    /// An event from the core.
    Core(Box<ClientEvent>),
    /// The core failed on the standard channel: the session is over.
    Failed(Error),
    /// The connection to the server ended (EOF or I/O error).
    ConnectionLost(String),
    /// An event of the driver itself (not from the core).
    Local(Event),
}

/// One message for the main task, with its share of the queue's room (if it
/// came from the network): the room is given back once the main task has
/// handled it.
pub struct Queued {
    msg: UiMsg,
    room: Option<OwnedSemaphorePermit>,
}

/// Room in the main task's queue for the events of one core input
/// ([`EVENT_CAPACITY`]), taken with [`Outputs::room`].
pub struct Room(OwnedSemaphorePermit);

/// Where drained core output goes.
#[derive(Clone)]
pub struct Outputs {
    to_ui: UnboundedSender<Queued>,
    /// [`UI_QUEUE`] permits: one per network event waiting for the main task.
    ui_room: Arc<Semaphore>,
    wake: Arc<Wake>,
}

/// Who waits for core calls.
struct Wake {
    /// The writer: bytes may be queued.
    writer: Notify,
    /// The timer: the earliest deadline may have moved.
    timer: Notify,
}

impl Outputs {
    /// Outputs and the main task's end of its queue.
    pub fn new() -> (Self, UnboundedReceiver<Queued>) {
        let (to_ui, ui_rx) = unbounded_channel();
        let out = Outputs {
            to_ui,
            ui_room: Arc::new(Semaphore::new(UI_QUEUE)),
            wake: Arc::new(Wake {
                writer: Notify::new(),
                timer: Notify::new(),
            }),
        };
        (out, ui_rx)
    }

    /// Waits until the main task's queue has room for the events of one
    /// more core input. The reader and the daemon links call it before each
    /// frame they feed to the core (without the lock held): while the main
    /// task is behind they wait here and so stop reading their sockets.
    pub async fn room(&self) -> Room {
        let permits = u32::try_from(EVENT_CAPACITY).unwrap_or(u32::MAX);
        match self.ui_room.clone().acquire_many_owned(permits).await {
            Ok(p) => Room(p),
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Hands all queued events to the main task and wakes the writer (bytes
    /// may be queued) and the timer (a deadline may have moved). Call with
    /// the lock held, after every core call.
    pub fn drain(&self, client: &mut Client<HostCrypto>) {
        self.drain_with(client, None);
    }

    /// [`Self::drain`] after a core input from the network, whose events use
    /// the `room` taken for them (what they do not use is given back).
    pub fn drain_input(&self, client: &mut Client<HostCrypto>, room: Room) {
        self.drain_with(client, Some(room.0));
    }

    fn drain_with(&self, client: &mut Client<HostCrypto>, mut room: Option<OwnedSemaphorePermit>) {
        while let Some(ev) = client.poll_event() {
            let room = room.as_mut().and_then(|r| r.split(1));
            let _ = self.to_ui.send(Queued {
                msg: UiMsg::Core(Box::new(ev)),
                room,
            });
        }
        self.wake.writer.notify_one();
        self.wake.timer.notify_one();
    }

    /// Sends a message to the main task.
    pub fn tell(&self, msg: UiMsg) {
        let _ = self.to_ui.send(Queued { msg, room: None });
    }
}

/// Starts the reader, the writer and the timer of the standard channel
/// `rd` / `wr`, whose client is in `shared`.
pub fn spawn_connection<R, W>(rd: R, wr: W, shared: &Shared, out: &Outputs)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(writer(wr, shared.clone(), out.clone()));
    tokio::spawn(reader(rd, shared.clone(), out.clone()));
    tokio::spawn(timer(shared.clone(), out.clone()));
}

/// Runs `chat` to the end; returns the exit status.
pub async fn chat(settings: ChatSettings, ui: Ui) -> i32 {
    let identity = match crate::read_key(&settings.key, &settings.passphrase) {
        Ok(k) => k,
        Err(e) => return setup_error(&format!("cannot read the key: {e}")),
    };
    let Ok(user) = user_name(&settings.user) else {
        return setup_error(&format!("bad user name '{}'", settings.user));
    };
    let known = match KnownPeers::load(&settings.known_peers) {
        Ok(k) => k,
        Err(e) => return setup_error(&format!("cannot read the known peers: {e}")),
    };
    let ca = match &settings.trust {
        ServerTrust::Pinned(_) => None,
        ServerTrust::Ca {
            ca_key,
            server_name,
            revocation_list,
        } => {
            let revoked = match revocation_list {
                None => RevokedSerials::new(),
                Some(path) => match securecom_host::certfile::read_revocation_list(path, ca_key) {
                    Ok(list) => {
                        info!(
                            serials = list.serials.len(),
                            issued = %format_time(list.issued_at),
                            "revocation list"
                        );
                        list.serials
                    }
                    Err(e) => return setup_error(&format!("cannot use the revocation list: {e}")),
                },
            };
            Some(CaTrust {
                ca_key: *ca_key,
                // Checked by `resolve_chat`.
                server_name: server_name.as_str().try_into().unwrap_or_default(),
                now: Some(unix_now()),
                revoked,
            })
        }
    };

    // The daemon listens before we connect: its port is announced at login.
    // (Not in `dial` mode: then nothing listens.)
    let listening = settings.request_mode != securecom_core::RequestMode::Dial;
    let listener = if listening {
        let listener = match TcpListener::bind(&settings.daemon_listen).await {
            Ok(l) => l,
            Err(e) => {
                return setup_error(&format!(
                    "cannot listen on {} for chat requests: {e}",
                    settings.daemon_listen
                ))
            }
        };
        let daemon_addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => return setup_error(&format!("daemon address: {e}")),
        };
        info!(addr = %daemon_addr, "daemon listening");
        ui.emit(&Event::DaemonListening {
            addr: daemon_addr.to_string(),
        });
        Some((listener, daemon_addr))
    } else {
        None
    };

    let how = match &settings.trust {
        ServerTrust::Pinned(k) => format!("server key fingerprint {}", k.fingerprint()),
        ServerTrust::Ca {
            ca_key,
            server_name,
            ..
        } => format!(
            "expecting a certificate for {server_name} from CA {}",
            hex_prefix(&ca_key.0)
        ),
    };
    ui.note(&format!(
        "* connecting to {} as {} ({how})",
        settings.server, settings.user
    ));
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&settings.server)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return unreachable(ui, &settings.server, &e.to_string()),
            Err(_) => return unreachable(ui, &settings.server, "timed out"),
        };
    let _ = stream.set_nodelay(true);
    info!(server = %settings.server, "connected");
    // A request channel we dial goes to the address we reached the server at.
    let server_addr = match stream.peer_addr() {
        Ok(a) => a,
        Err(e) => return setup_error(&format!("server address: {e}")),
    };
    // The daemon admits the server only (by default): the address we reached it at.
    let allow = match &settings.daemon_allow {
        DaemonAllow::Any => Allow::Any,
        DaemonAllow::Only(ips) => Allow::Only(ips.clone()),
        DaemonAllow::Server => match stream.peer_addr() {
            Ok(a) => Allow::Only(vec![a.ip()]),
            Err(e) => return setup_error(&format!("server address: {e}")),
        },
    };

    let config = ClientConfig {
        user,
        server_key: match &settings.trust {
            ServerTrust::Pinned(k) => *k,
            // Not used with a CA.
            ServerTrust::Ca { .. } => PublicKey([0; 32]),
        },
        daemon_port: listener.as_ref().map(|(_, a)| a.port()),
        limits: settings.limits,
    };
    let clock = Clock::new();
    let mut rng = os_rng();
    let started = match ca {
        Some(ca) => Client::<HostCrypto>::with_ca(config, ca, identity, clock.now(), &mut rng),
        None => Client::<HostCrypto>::new(config, identity, clock.now(), &mut rng),
    };
    let mut client = match started {
        Ok(c) => c,
        Err(e) => return setup_error(&format!("cannot start the handshake: {e}")),
    };
    client.set_request_mode(settings.request_mode);
    let shared = Shared::new(Core { client, rng }, clock);
    let (out, ui_rx) = Outputs::new();
    let (answers_tx, answers_rx) = watch::channel(0u64);

    let (rd, wr) = stream.into_split();
    spawn_connection(rd, wr, &shared, &out);
    if let Some((listener, _)) = listener {
        tokio::spawn(crate::daemon::run(
            listener,
            allow,
            shared.clone(),
            out.clone(),
            answers_rx,
        ));
    }

    // The interactive line editor: only on a real terminal (else plain lines).
    let tty = !ui.script && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (readline, ui) = if tty {
        match Readline::new(String::from("[connecting...] > ")) {
            Ok((mut rl, writer)) => {
                rl.should_print_line_on(true, false);
                (Some(rl), ui.with_terminal(writer))
            }
            Err(e) => {
                warn!("no line editor ({e}); reading plain lines");
                (None, ui)
            }
        }
    } else {
        (None, ui)
    };
    let stdin = if readline.is_some() {
        unbounded_channel().1
    } else {
        spawn_stdin()
    };
    let ca_name = match &settings.trust {
        ServerTrust::Ca { server_name, .. } => Some(server_name.clone()),
        ServerTrust::Pinned(_) => None,
    };
    let mut session = Session::new(
        ui,
        shared,
        out,
        answers_tx,
        settings.user.clone(),
        known,
        readline.is_some(),
        ca_name,
    );
    session.dial_to = Some(server_addr);
    let mut readline = readline;
    let code = session.run(ui_rx, stdin, &mut readline).await;
    if let Some(mut rl) = readline.take() {
        let _ = rl.flush();
        drop(rl);
        println!();
    }
    for line in &session.deferred {
        eprintln!("securecom-client: {line}");
    }
    code
}

fn hex_prefix(bytes: &[u8]) -> String {
    let h: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{h}...")
}

/// One input from the user.
enum Input {
    Line(String),
    Bad(String),
    Eof,
    Interrupt,
}

async fn next_input(
    rl: &mut Option<Readline>,
    stdin: &mut UnboundedReceiver<Result<String, String>>,
) -> Input {
    match rl {
        Some(r) => match r.readline().await {
            Ok(ReadlineEvent::Line(l)) => {
                if !l.trim().is_empty() {
                    r.add_history_entry(l.clone());
                }
                Input::Line(l)
            }
            Ok(ReadlineEvent::Eof) => Input::Eof,
            Ok(ReadlineEvent::Interrupted) => Input::Interrupt,
            Err(e) => Input::Bad(format!("terminal: {e}")),
        },
        None => match stdin.recv().await {
            None => Input::Eof,
            Some(Ok(l)) => Input::Line(l),
            Some(Err(e)) => Input::Bad(e),
        },
    }
}

fn setup_error(msg: &str) -> i32 {
    eprintln!("securecom-client: {msg}");
    EXIT_USAGE
}

fn unreachable(ui: Ui, server: &str, why: &str) -> i32 {
    let error = format!("cannot connect to {server}: {why}");
    ui.emit(&Event::Disconnected {
        error: error.clone(),
    });
    eprintln!("securecom-client: {error}");
    EXIT_UNREACHABLE
}

/// Reads the server's bytes and feeds the core, one frame per call. Before
/// each frame it waits for room in the main task's queue, so while the main
/// task is behind the socket is not read.
async fn reader<R: AsyncRead + Unpin>(mut rd: R, shared: Shared, out: Outputs) {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => {
                out.tell(UiMsg::ConnectionLost(
                    "the server closed the connection".into(),
                ));
                return;
            }
            Ok(n) => n,
            Err(e) => {
                out.tell(UiMsg::ConnectionLost(format!("read from the server: {e}")));
                return;
            }
        };
        let mut input = buf.get(..n).unwrap_or_default();
        while !input.is_empty() {
            let room = out.room().await;
            let mut core = shared.lock();
            let core = &mut *core;
            let r = core.client.handle_input(shared.now(), input, &mut core.rng);
            out.drain_input(&mut core.client, room);
            match r {
                Ok(0) => break,
                Ok(used) => input = input.get(used..).unwrap_or_default(),
                Err(e) => {
                    out.tell(UiMsg::Failed(e));
                    return;
                }
            }
            if core.client.is_closed() {
                // Bye or a refused login: the main task has the event.
                debug!("standard channel closed by the server");
                return;
            }
        }
    }
}

/// Writes the bytes the core queued to the server, in order, at most
/// [`WRITE_CHUNK`] at a time: while a write waits (the server does not
/// read), the rest stays in the core's fixed output queue.
async fn writer<W: AsyncWrite + Unpin>(mut wr: W, shared: Shared, out: Outputs) {
    let mut chunk = vec![0u8; WRITE_CHUNK];
    loop {
        let n = shared.lock().client.poll_transmit(&mut chunk);
        if n == 0 {
            // A wake-up that came since the poll above is kept for this wait.
            out.wake.writer.notified().await;
            continue;
        }
        let bytes = chunk.get(..n).unwrap_or_default();
        if let Err(e) = wr.write_all(bytes).await {
            out.tell(UiMsg::ConnectionLost(format!("write to the server: {e}")));
            return;
        }
    }
}

/// Calls [`Client::handle_timeout`] at [`Client::poll_timeout`], which it
/// reads again after every core call of any task (they wake it through
/// [`Outputs::drain`]): an earlier deadline, such as the end-to-end
/// handshake's after `ChatStarted`, is never slept past.
async fn timer(shared: Shared, out: Outputs) {
    let clock = shared.clock();
    loop {
        let deadline = {
            let core = shared.lock();
            if core.client.is_closed() {
                return;
            }
            core.client.poll_timeout()
        };
        tokio::select! {
            () = clock.sleep_until(deadline) => {}
            // A core call since the poll above (the wake-up is kept if it came
            // before this wait): read the deadline again.
            () = out.wake.timer.notified() => continue,
        }
        let (r, closed) = {
            let mut core = shared.lock();
            let core = &mut *core;
            let r = core.client.handle_timeout(shared.now(), &mut core.rng);
            out.drain(&mut core.client);
            (r, core.client.is_closed())
        };
        match r {
            Ok(()) => {}
            Err(e) if closed => {
                out.tell(UiMsg::Failed(e));
                return;
            }
            Err(e) => {
                // E.g. the keep-alive did not fit the output queue: the server
                // is not reading. The session goes on; try again shortly (the
                // deadline has passed, so waiting for it would spin).
                debug!("timer: {e}; trying again");
                tokio::time::sleep(TIMER_RETRY).await;
            }
        }
    }
}

/// Lines from stdin, read on a plain thread (a blocking read must not hold
/// up the runtime). The channel closes at end of input.
fn spawn_stdin() -> UnboundedReceiver<Result<String, String>> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    let line = String::from_utf8(std::mem::take(&mut buf))
                        .map_err(|_| "the line is not valid UTF-8".to_string());
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    warn!("stdin: {e}");
                    break;
                }
            }
        }
    });
    rx
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The main task's state.
struct Session {
    ui: Ui,
    shared: Shared,
    out: Outputs,
    /// Bumped after `answer_request` so the daemon links flush the answer.
    answers: watch::Sender<u64>,
    logged_in: bool,
    /// Set by `/quit`: when to give up waiting for `Bye`.
    quitting: Option<tokio::time::Instant>,
    /// `Users` pages collected so far (at most [`MAX_LISTED_USERS`] names).
    users: Vec<String>,
    /// The listing in progress was cut at [`MAX_LISTED_USERS`]: its further
    /// pages, up to its last (`more: false`), are ignored.
    users_cut: bool,
    /// Our user name.
    me: String,
    /// The known-peers file.
    known: KnownPeers,
    /// Users whose changed key waits for `/trust`.
    pending_trust: HashMap<String, PublicKey>,
    /// The request we are asked (its chat id, who, their key): `/accept`
    /// answers this one, the one the user saw, or none.
    asked: Option<(securecom_core::ChatId, String, PublicKey)>,
    /// Whom we asked.
    requesting: Option<String>,
    /// The peer of the open chat.
    chat_peer: Option<String>,
    /// The open chat is on hold: the peer's key changed and is not trusted yet.
    held: Option<String>,
    /// Messages received while on hold, shown after `/trust` (at most
    /// [`MAX_HELD_MESSAGES`]).
    held_messages: Vec<Event>,
    /// The held chat had too many messages and is being ended: the peer's
    /// messages still on their way are dropped.
    held_overflow: bool,
    /// Who is online (for the prompt).
    online: Vec<String>,
    /// The `/users` in flight is the prompt's refresh: do not print it.
    silent_users: bool,
    /// The line editor runs (interactive terminal).
    tty: bool,
    /// Error lines for stderr, printed once the terminal is restored.
    deferred: Vec<String>,
    /// Lines typed before the login completed.
    pending_lines: VecDeque<String>,
    /// The server name checked in its certificate (CA mode).
    ca_name: Option<String>,
    /// Where a request channel we dial connects to (the server's address).
    dial_to: Option<std::net::SocketAddr>,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ui: Ui,
        shared: Shared,
        out: Outputs,
        answers: watch::Sender<u64>,
        me: String,
        known: KnownPeers,
        tty: bool,
        ca_name: Option<String>,
    ) -> Self {
        Session {
            ui,
            shared,
            out,
            answers,
            logged_in: false,
            quitting: None,
            users: Vec::new(),
            users_cut: false,
            me,
            known,
            pending_trust: HashMap::new(),
            asked: None,
            requesting: None,
            chat_peer: None,
            held: None,
            held_messages: Vec::new(),
            held_overflow: false,
            online: Vec::new(),
            silent_users: false,
            tty,
            deferred: Vec::new(),
            pending_lines: VecDeque::new(),
            ca_name,
            dial_to: None,
        }
    }

    async fn run(
        &mut self,
        mut ui_rx: UnboundedReceiver<Queued>,
        mut stdin: UnboundedReceiver<Result<String, String>>,
        rl: &mut Option<Readline>,
    ) -> i32 {
        let mut sigint = signal(SignalKind::interrupt()).ok();
        let mut sigterm = signal(SignalKind::terminate()).ok();
        let mut stdin_open = true;
        let mut refresh = tokio::time::interval(USERS_REFRESH);
        let mut prompt = String::new();
        loop {
            if let Some(r) = rl.as_mut() {
                let p = self.prompt();
                if p != prompt {
                    let _ = r.update_prompt(&p);
                    prompt = p;
                }
            }
            if self.logged_in && self.quitting.is_none() {
                if let Some(line) = self.pending_lines.pop_front() {
                    if let Some(code) = self.on_line(Ok(line)) {
                        return code;
                    }
                    continue;
                }
            }
            // The line editor is always polled (it also shows the output);
            // plain stdin only once logged in (earlier lines wait there).
            let poll_input =
                stdin_open && (self.tty || (self.logged_in && self.quitting.is_none()));
            tokio::select! {
                biased;
                queued = ui_rx.recv() => {
                    // `self.out` holds a sender, so the channel never closes.
                    let Some(Queued { msg, room }) = queued else { return EXIT_LOST };
                    let code = self.on_ui(msg);
                    // Handled: its room in the queue is free again.
                    drop(room);
                    if let Some(code) = code {
                        return code;
                    }
                }
                Some(()) = recv_signal(&mut sigint) => {
                    if let Some(code) = self.on_interrupt() {
                        return code;
                    }
                }
                Some(()) = recv_signal(&mut sigterm) => {
                    if let Some(code) = self.on_interrupt() {
                        return code;
                    }
                }
                () = sleep_until_opt(self.quitting), if self.quitting.is_some() => {
                    return self.lost("the server did not confirm the logout");
                }
                _ = refresh.tick(), if self.tty && self.logged_in && self.quitting.is_none() => {
                    if !self.silent_users {
                        let r = {
                            let mut core = self.shared.lock();
                            let r = core.client.list_users(self.shared.now());
                            self.out.drain(&mut core.client);
                            r
                        };
                        self.silent_users = r.is_ok();
                    }
                }
                input = next_input(rl, &mut stdin), if poll_input => {
                    let line = match input {
                        Input::Eof => {
                            stdin_open = false;
                            if !self.logged_in {
                                self.report("interrupted");
                                return EXIT_INTERRUPTED;
                            }
                            if self.quitting.is_some() {
                                continue;
                            }
                            debug!("end of input: logging out");
                            if let Some(code) = self.on_command(Command::Quit) {
                                return code;
                            }
                            continue;
                        }
                        Input::Interrupt => {
                            if let Some(code) = self.on_interrupt() {
                                return code;
                            }
                            continue;
                        }
                        Input::Line(l) => Ok(l),
                        Input::Bad(e) => Err(e),
                    };
                    if !self.logged_in || self.quitting.is_some() {
                        if let Ok(l) = line {
                            if self.quitting.is_none() {
                                self.ui.note("* (not logged in yet: the command waits for the login)");
                                self.pending_lines.push_back(l);
                            }
                        }
                        continue;
                    }
                    if let Some(code) = self.on_line(line) {
                        return code;
                    }
                }
            }
        }
    }

    fn on_line(&mut self, line: Result<String, String>) -> Option<i32> {
        let cmd = line.and_then(|l| command::parse(&l));
        match cmd {
            Ok(cmd) => self.on_command(cmd),
            Err(message) => {
                self.ui.emit(&Event::Error { message });
                None
            }
        }
    }

    /// A line for stderr; in the terminal mode shown now and printed again
    /// on stderr once the terminal is restored.
    fn report(&mut self, msg: &str) {
        if self.tty {
            self.ui.note(&format!("! {msg}"));
            self.deferred.push(msg.to_string());
        } else {
            eprintln!("securecom-client: {msg}");
        }
    }

    /// The prompt: who we are, the chat, who is online.
    fn prompt(&self) -> String {
        if !self.logged_in {
            return "[connecting...] > ".into();
        }
        let state = if let Some(p) = &self.held {
            format!("chat with {p} ON HOLD: /trust {p}")
        } else if let Some(p) = &self.chat_peer {
            format!("chat: {p}")
        } else if let Some(r) = &self.requesting {
            format!("asking {r}...")
        } else if let Some((_, a, _)) = &self.asked {
            format!("{a} asks: /accept or /refuse")
        } else {
            "no chat".into()
        };
        let others: Vec<&str> = self
            .online
            .iter()
            .map(String::as_str)
            .filter(|n| *n != self.me)
            .collect();
        let online = match others.len() {
            0 => "nobody else".to_string(),
            1..=4 => others.join(" "),
            n => format!("{} +{}", others[..3].join(" "), n - 3),
        };
        format!("[{}] [{state}] [online: {online}] > ", self.me)
    }

    fn on_interrupt(&mut self) -> Option<i32> {
        if self.logged_in && self.quitting.is_none() {
            info!("interrupted: logging out");
            self.on_command(Command::Quit)
        } else {
            self.report("interrupted");
            Some(EXIT_INTERRUPTED)
        }
    }

    /// The session is over without a clean close.
    fn lost(&mut self, error: &str) -> i32 {
        self.ui.emit(&Event::Disconnected {
            error: error.to_string(),
        });
        if error == "server key mismatch" {
            self.report(
                "server key mismatch: the server is not the one \
                 --server-key names (or someone is in the middle)",
            );
        } else if error.starts_with("server certificate refused") {
            self.report(&format!(
                "{error}: the server is not authenticated by the trusted CA \
                 (or someone is in the middle); nothing was sent"
            ));
        } else {
            self.report(&format!("disconnected: {error}"));
        }
        EXIT_LOST
    }

    fn on_ui(&mut self, msg: UiMsg) -> Option<i32> {
        match msg {
            UiMsg::Core(ev) => self.on_event(*ev),
            UiMsg::Local(ev) => {
                self.ui.emit(&ev);
                None
            }
            UiMsg::Failed(e) => Some(self.lost(&describe(&e))),
            UiMsg::ConnectionLost(why) => {
                let why = if self.logged_in {
                    why
                } else {
                    format!("{why} during login")
                };
                Some(self.lost(&why))
            }
        }
    }

    fn on_event(&mut self, ev: ClientEvent) -> Option<i32> {
        let event = match ev {
            ClientEvent::LoggedIn { user } => {
                info!(%user, "logged in");
                self.logged_in = true;
                let certified = self.shared.lock().client.certified_server();
                if let (Some(c), Some(name)) = (certified, self.server_name()) {
                    self.ui.emit(&Event::ServerCertified {
                        name,
                        serial: c.serial,
                        not_after: format_time(c.not_after),
                    });
                }
                if self.tty {
                    // Fill the prompt's online list.
                    let r = {
                        let mut core = self.shared.lock();
                        let r = core.client.list_users(self.shared.now());
                        self.out.drain(&mut core.client);
                        r
                    };
                    self.silent_users = r.is_ok();
                }
                Event::LoggedIn {
                    user: user.to_string(),
                }
            }
            ClientEvent::LoginRefused(reason) => {
                let reason = login_error(reason);
                self.ui.emit(&Event::LoginRefused { reason });
                self.report(&format!("login refused: {reason}"));
                return Some(EXIT_REFUSED);
            }
            ClientEvent::DaemonStatus { reachable } => {
                info!(reachable, "daemon status");
                Event::Daemon { reachable }
            }
            ClientEvent::ConnectRequestChannel(hello) => {
                // The server cannot dial us (or we chose not to be dialled):
                // open the request channel's connection ourselves.
                if let Some(to) = self.dial_to {
                    info!(%to, "dialling the request channel");
                    tokio::spawn(crate::daemon::dial(
                        to,
                        hello,
                        self.shared.clone(),
                        self.out.clone(),
                        self.answers.subscribe(),
                    ));
                }
                return None;
            }
            ClientEvent::Users { names, more } => {
                let (names, truncated) = self.on_users_page(&names, more)?;
                self.online = names.clone();
                self.online.sort();
                if std::mem::take(&mut self.silent_users) {
                    return None;
                }
                Event::Users { names, truncated }
            }
            ClientEvent::ChatPending { chat_id, user } => Event::ChatPending {
                user: user.to_string(),
                chat_id,
            },
            ClientEvent::ChatRequest {
                chat_id,
                from,
                from_key,
            } => {
                let fingerprint = from_key.fingerprint().to_string();
                info!(%from, %fingerprint, "chat request");
                self.asked = Some((chat_id, from.to_string(), from_key));
                self.ui.emit(&Event::ChatRequest {
                    from: from.to_string(),
                    fingerprint,
                });
                self.check_known(&from, &from_key);
                return None;
            }
            ClientEvent::RefusedBusy { from } => Event::RefusedBusy {
                from: from.to_string(),
            },
            ClientEvent::RequestWithdrawn { from } => {
                self.asked = None;
                // A changed key not trusted by then is asked about again next time.
                self.pending_trust.remove(from.as_str());
                Event::RequestWithdrawn {
                    from: from.to_string(),
                }
            }
            ClientEvent::ChatRefused { user, reason } => {
                self.requesting = None;
                Event::ChatRefused {
                    user: user.to_string(),
                    reason: refuse_reason(reason),
                }
            }
            ClientEvent::ChatReady {
                peer,
                peer_key,
                safety_number,
                initiator,
                ..
            } => {
                let fingerprint = peer_key.fingerprint().to_string();
                info!(%peer, %fingerprint, initiator, "chat ready");
                self.asked = None;
                self.requesting = None;
                self.chat_peer = Some(peer.to_string());
                self.ui.emit(&Event::ChatReady {
                    peer: peer.to_string(),
                    fingerprint,
                    safety_number: safety_number.to_string(),
                    initiator,
                });
                self.held_overflow = false;
                self.held_messages.clear();
                if !self.check_known(&peer, &peer_key) {
                    self.held = Some(peer.to_string());
                }
                return None;
            }
            ClientEvent::ChatMessage { from, text } => {
                let ev = Event::Message {
                    from: from.to_string(),
                    text: text.as_str().to_string(),
                };
                if self.held.as_deref() == Some(from.as_str()) {
                    // Not shown before the user trusts the new key.
                    return self.hold(ev, from.as_str());
                }
                ev
            }
            ClientEvent::ChatEnded { peer, reason } => {
                let (reason, detail, undelivered) = chat_end(&reason);
                info!(%peer, reason, "chat ended");
                self.chat_peer = None;
                self.requesting = None;
                self.asked = None;
                self.pending_trust.remove(peer.as_str());
                self.held_overflow = false;
                if self.held.take().is_some() && !self.held_messages.is_empty() {
                    self.ui.note(&format!(
                        "* {} message(s) from {peer} held while the key was not trusted are discarded",
                        self.held_messages.len()
                    ));
                }
                self.held_messages.clear();
                Event::ChatEnded {
                    peer: peer.to_string(),
                    reason,
                    detail,
                    undelivered,
                }
            }
            ClientEvent::ServerError(code) => Event::ServerError {
                code: error_code(code),
            },
            ClientEvent::Closed(reason) => {
                let name = close_reason(reason);
                info!(reason = name, "session closed by the server");
                self.ui.emit(&Event::Closed { reason: name });
                if name == "logged_out" {
                    return Some(EXIT_OK);
                }
                self.report(&format!("the server closed the session: {name}"));
                return Some(EXIT_CLOSED);
            }
        };
        self.ui.emit(&event);
        None
    }

    /// Gathers one `Users` page; returns the whole list (and whether it was
    /// cut at [`MAX_LISTED_USERS`]) after its last page, `None` before.
    ///
    /// At the bound the names gathered so far are the list (marked cut) and
    /// the listing's further pages, up to its last, are ignored: a server
    /// sending `more: true` without end cannot grow our memory.
    fn on_users_page(&mut self, names: &[UserName], more: bool) -> Option<(Vec<String>, bool)> {
        if self.users_cut {
            // The rest of a listing already shown cut.
            if !more {
                self.users_cut = false;
            }
            return None;
        }
        let room = MAX_LISTED_USERS.saturating_sub(self.users.len());
        let cut = names.len() > room || (more && names.len() == room);
        self.users
            .extend(names.iter().take(room).map(|n| n.to_string()));
        if cut {
            warn!(
                names = self.users.len(),
                "the server's user list is longer than we keep; cut"
            );
            self.users_cut = more;
        } else if more {
            return None;
        }
        Some((std::mem::take(&mut self.users), cut))
    }

    /// Holds a message of the chat on hold (the peer's changed key is not
    /// trusted yet). One more than [`MAX_HELD_MESSAGES`] ends the chat, as
    /// `/leave` would, and discards them all.
    fn hold(&mut self, ev: Event, from: &str) -> Option<i32> {
        if self.held_overflow {
            // The chat is being ended; this one crossed our leaving.
            return None;
        }
        if self.held_messages.len() < MAX_HELD_MESSAGES {
            self.held_messages.push(ev);
            return None;
        }
        warn!(peer = %from, "too many messages held while the key was not trusted; leaving");
        self.held_overflow = true;
        self.held_messages.clear();
        self.ui.emit(&Event::Error {
            message: format!(
                "too many messages from {from} held while the key was not trusted: chat ended \
                 ({} messages not shown are discarded)",
                MAX_HELD_MESSAGES + 1
            ),
        });
        match self.call(|c, now| c.leave_chat(now), |_, _| None) {
            Ok(()) => None,
            // The session is over (the error was shown).
            Err(Some(code)) => Some(code),
            // Not left (e.g. the server is not reading): the error was shown;
            // the peer's messages are still dropped until the chat ends.
            Err(None) => None,
        }
    }

    /// The server name the certificate was checked for (CA mode).
    fn server_name(&self) -> Option<String> {
        self.ca_name.clone()
    }

    /// Compares `key` with the known-peers file: remembers a new user's key;
    /// a changed key is announced loudly and waits for `/trust` (returns false).
    fn check_known(&mut self, user: &str, key: &PublicKey) -> bool {
        match self.known.check(user, key) {
            Check::Known => true,
            Check::New => {
                if let Err(e) = self.known.remember(user, *key) {
                    self.ui.emit(&Event::Error {
                        message: format!("cannot remember {user}'s key: {e}"),
                    });
                }
                true
            }
            Check::Changed { old } => {
                warn!(%user, old = %old.fingerprint(), new = %key.fingerprint(), "key changed");
                self.pending_trust.insert(user.to_string(), *key);
                self.ui.emit(&Event::KeyChanged {
                    user: user.to_string(),
                    old_fingerprint: old.fingerprint().to_string(),
                    new_fingerprint: key.fingerprint().to_string(),
                });
                false
            }
        }
    }

    /// Runs one core command under the lock and drains. A failure that closed
    /// the session ends the program; any other is reported and the session goes on.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Client<HostCrypto>, Instant) -> Result<T, Error>,
        explain: impl FnOnce(&Error, &Client<HostCrypto>) -> Option<String>,
    ) -> Result<T, Option<i32>> {
        let (r, closed, message) = {
            let mut core = self.shared.lock();
            let r = f(&mut core.client, self.shared.now());
            self.out.drain(&mut core.client);
            let message = match &r {
                Err(e) => explain(e, &core.client).unwrap_or_else(|| command_error(e)),
                Ok(_) => String::new(),
            };
            (r, core.client.is_closed(), message)
        };
        match r {
            Ok(v) => Ok(v),
            Err(e) if closed => Err(Some(self.lost(&describe(&e)))),
            Err(_) => {
                self.ui.emit(&Event::Error { message });
                Err(None)
            }
        }
    }

    fn on_command(&mut self, cmd: Command) -> Option<i32> {
        debug!(?cmd, "command");
        let no_request = |e: &Error, _: &Client<HostCrypto>| match e {
            Error::Protocol(ProtocolError::Unexpected) => {
                Some("no chat request to answer".to_string())
            }
            Error::Protocol(ProtocolError::WrongChat) => {
                Some("that request is gone (withdrawn or replaced): not answered".to_string())
            }
            _ => None,
        };
        match cmd {
            Command::Empty => {}
            Command::Help => self.ui.note(HELP),
            Command::Users => {
                if let Err(code) = self.call(|c, now| c.list_users(now), |_, _| None) {
                    return code;
                }
            }
            Command::Chat(name) => {
                if let Err(code) = self.call(|c, now| c.request_chat(now, &name), |_, _| None) {
                    return code;
                }
                self.requesting = Some(name);
            }
            Command::Verify => {
                let shown = {
                    let core = self.shared.lock();
                    let own = core.client.public_key().fingerprint().to_string();
                    core.client
                        .chat()
                        .filter(|c| c.is_open())
                        .map(|c| Event::Verify {
                            peer: c.peer().to_string(),
                            safety_number: c.safety_number().to_string(),
                            fingerprint: c.peer_key().fingerprint().to_string(),
                            own_fingerprint: own,
                        })
                };
                match shown {
                    Some(ev) => self.ui.emit(&ev),
                    None => self.ui.emit(&Event::Error {
                        message: "not in a chat: /verify shows the safety number of the open chat"
                            .into(),
                    }),
                }
            }
            Command::Trust(name) => match self.pending_trust.remove(&name) {
                None => self.ui.emit(&Event::Error {
                    message: format!("no changed key of {name} to trust"),
                }),
                Some(key) => {
                    if let Err(e) = self.known.remember(&name, key) {
                        self.ui.emit(&Event::Error {
                            message: format!("cannot save the known peers: {e}"),
                        });
                        self.pending_trust.insert(name, key);
                        return None;
                    }
                    self.ui.emit(&Event::Trusted {
                        user: name.clone(),
                        fingerprint: key.fingerprint().to_string(),
                    });
                    if self.held.as_deref() == Some(name.as_str()) {
                        self.held = None;
                        for ev in std::mem::take(&mut self.held_messages) {
                            self.ui.emit(&ev);
                        }
                    }
                }
            },
            Command::Accept | Command::Refuse => {
                let accept = cmd == Command::Accept;
                if accept {
                    if let Some((_, from, _)) = &self.asked {
                        if self.pending_trust.contains_key(from) {
                            let from = from.clone();
                            self.ui.emit(&Event::Error {
                                message: format!(
                                    "{from}'s key changed: check it with {from} over another \
                                     channel, then /trust {from} before /accept (or /refuse)"
                                ),
                            });
                            return None;
                        }
                    }
                }
                // The request the user saw: a newer one (the shown one was
                // withdrawn meanwhile) is not answered by this command.
                let Some(chat_id) = self.asked.as_ref().map(|a| a.0) else {
                    self.ui.emit(&Event::Error {
                        message: "no chat request to answer".into(),
                    });
                    return None;
                };
                if let Err(code) = self.call(|c, _| c.answer_request(chat_id, accept), no_request) {
                    return code;
                }
                if !accept {
                    if let Some((_, from, _)) = self.asked.take() {
                        self.pending_trust.remove(&from);
                    }
                }
                // Wake the daemon links: the one that delivered the request sends the answer.
                self.answers.send_modify(|v| *v = v.wrapping_add(1));
                self.ui.note(if accept {
                    "* accepted; opening the chat..."
                } else {
                    "* refused"
                });
            }
            Command::Leave => {
                let explain = |e: &Error, _: &Client<HostCrypto>| {
                    matches!(e, Error::Protocol(ProtocolError::NoChat)).then(|| {
                        "not in a chat and no request of yours is pending \
                         (to refuse a request: /refuse)"
                            .to_string()
                    })
                };
                if let Err(code) = self.call(|c, now| c.leave_chat(now), explain) {
                    return code;
                }
            }
            Command::Quit => {
                if let Err(code) = self.call(|c, now| c.logout(now), |_, _| None) {
                    return code;
                }
                self.ui.note("* logging out...");
                self.quitting = Some(tokio::time::Instant::now() + LOGOUT_TIMEOUT);
            }
            Command::Text(text) => {
                if let Some(peer) = &self.held {
                    let peer = peer.clone();
                    self.ui.emit(&Event::Error {
                        message: format!(
                            "the chat with {peer} is on hold: {peer}'s key changed. Compare the \
                             safety number (/verify) with {peer} over another channel, then \
                             /trust {peer}, or /leave"
                        ),
                    });
                    return None;
                }
                let explain = |e: &Error, c: &Client<HostCrypto>| match (e, c.chat()) {
                    // The core's output queue is full: the writer could not
                    // hand it to the socket (see the module docs, "Bounds").
                    (Error::Protocol(ProtocolError::QueueFull), _) => {
                        Some("the server is not reading: message not sent".to_string())
                    }
                    (Error::Protocol(ProtocolError::NoChat), Some(chat)) if !chat.is_open() => {
                        Some(format!("the chat with {} is not ready yet", chat.peer()))
                    }
                    (Error::Protocol(ProtocolError::NotYourTurn), Some(chat)) => Some(format!(
                        "wait: {} asked for the chat and speaks first",
                        chat.peer()
                    )),
                    _ => None,
                };
                let sent = self.call(
                    |c, now| {
                        let peer = c.chat().map(|chat| chat.peer().to_string());
                        c.send_text(now, &text).map(|()| peer)
                    },
                    explain,
                );
                match sent {
                    Ok(peer) => self.ui.emit(&Event::Sent {
                        to: peer.unwrap_or_default(),
                        text,
                    }),
                    Err(code) => return code,
                }
            }
        }
        None
    }
}

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
