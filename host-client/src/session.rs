//! The `chat` command: the tokio driver around [`securecom_core::Client`].
//!
//! Tasks:
//! - **main** (this module's [`Session::run`]): user commands from stdin,
//!   printing events, the keep-alive timer, the exit decision;
//! - **reader**: standard-channel bytes → [`Client::handle_input`];
//! - **writer**: bytes the core queued → the server socket, in order;
//! - **daemon** (see [`crate::daemon`]): request-channel connections.
//!
//! They share one [`Client`] behind a mutex ([`Shared`]) that is held only
//! for core calls, never across an `.await`. After every core call the caller
//! drains [`Client::poll_transmit`] to the writer and [`Client::poll_event`] to
//! the main task ([`Outputs::drain`]), under the same lock, so bytes and
//! events keep the order the core produced them in.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustyline_async::{Readline, ReadlineEvent};
use securecom_core::cert::{CaTrust, RevokedSerials};
use securecom_core::message::user_name;
use securecom_core::{Client, ClientConfig, ClientEvent, Error, Limits, ProtocolError, PublicKey};
use securecom_host::certfile::{format_time, unix_now};
use securecom_host::{now, os_rng, until, Rng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::cli::{ChatSettings, ServerTrust};
use crate::command::{self, Command, HELP};
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

/// The client and its RNG, shared by all tasks.
pub struct Core {
    /// The protocol state.
    pub client: Client,
    /// Randomness for the core.
    pub rng: Rng,
}

/// The shared [`Core`]; lock it only around core calls.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Core>>);

impl Shared {
    /// Locks the core (a panic in another task does not make it unusable).
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Where drained core output goes.
#[derive(Clone)]
pub struct Outputs {
    to_server: UnboundedSender<Vec<u8>>,
    to_ui: UnboundedSender<UiMsg>,
}

impl Outputs {
    /// Moves all queued standard-channel bytes to the writer and all events to
    /// the main task. Call with the lock held, after every core call.
    pub fn drain(&self, client: &mut Client) {
        let mut chunk = [0u8; 2048];
        loop {
            let n = client.poll_transmit(&mut chunk);
            if n == 0 {
                break;
            }
            // If the writer is gone the main task learns it from the writer's message.
            let _ = self.to_server.send(chunk[..n].to_vec());
        }
        while let Some(ev) = client.poll_event() {
            let _ = self.to_ui.send(UiMsg::Core(Box::new(ev)));
        }
    }

    /// Sends a message to the main task.
    pub fn tell(&self, msg: UiMsg) {
        let _ = self.to_ui.send(msg);
    }
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

    let config = ClientConfig {
        user,
        server_key: match &settings.trust {
            ServerTrust::Pinned(k) => *k,
            // Not used with a CA.
            ServerTrust::Ca { .. } => PublicKey([0; 32]),
        },
        daemon_port: Some(daemon_addr.port()),
        limits: Limits::DEFAULT,
    };
    let mut rng = os_rng();
    let started = match ca {
        Some(ca) => Client::with_ca(config, ca, identity, now(), &mut rng),
        None => Client::new(config, identity, now(), &mut rng),
    };
    let client = match started {
        Ok(c) => c,
        Err(e) => return setup_error(&format!("cannot start the handshake: {e}")),
    };
    let shared = Shared(Arc::new(Mutex::new(Core { client, rng })));

    let (to_server, server_rx) = unbounded_channel();
    let (to_ui, ui_rx) = unbounded_channel();
    let out = Outputs { to_server, to_ui };
    let (answers_tx, answers_rx) = watch::channel(0u64);

    let (rd, wr) = stream.into_split();
    tokio::spawn(writer(wr, server_rx, out.clone()));
    out.drain(&mut shared.lock().client);
    tokio::spawn(reader(rd, shared.clone(), out.clone()));
    tokio::spawn(crate::daemon::run(
        listener,
        shared.clone(),
        out.clone(),
        answers_rx,
    ));

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
    let mut session = Session {
        ui,
        shared,
        out,
        answers: answers_tx,
        logged_in: false,
        quitting: None,
        users: Vec::new(),
        me: settings.user.clone(),
        known,
        pending_trust: HashMap::new(),
        asked: None,
        requesting: None,
        chat_peer: None,
        held: None,
        held_messages: Vec::new(),
        online: Vec::new(),
        silent_users: false,
        tty: readline.is_some(),
        deferred: Vec::new(),
        pending_lines: VecDeque::new(),
        ca_name: match &settings.trust {
            ServerTrust::Ca { server_name, .. } => Some(server_name.clone()),
            ServerTrust::Pinned(_) => None,
        },
    };
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

/// Reads the server's bytes and feeds the core, one frame per call.
async fn reader(mut rd: OwnedReadHalf, shared: Shared, out: Outputs) {
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
        let mut core = shared.lock();
        let core = &mut *core;
        let mut input = &buf[..n];
        while !input.is_empty() {
            let r = core.client.handle_input(now(), input, &mut core.rng);
            out.drain(&mut core.client);
            match r {
                Ok(0) => break,
                Ok(used) => input = &input[used.min(input.len())..],
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

/// Writes queued bytes to the server, in order.
async fn writer(mut wr: OwnedWriteHalf, mut rx: UnboundedReceiver<Vec<u8>>, out: Outputs) {
    while let Some(bytes) = rx.recv().await {
        if let Err(e) = wr.write_all(&bytes).await {
            out.tell(UiMsg::ConnectionLost(format!("write to the server: {e}")));
            return;
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

async fn sleep_until_core(deadline: Option<securecom_core::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep(until(d)).await,
        None => std::future::pending().await,
    }
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
    /// `Users` pages collected so far.
    users: Vec<String>,
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
    /// Messages received while on hold, shown after `/trust`.
    held_messages: Vec<Event>,
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
}

impl Session {
    async fn run(
        &mut self,
        mut ui_rx: UnboundedReceiver<UiMsg>,
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
            let deadline = self.shared.lock().client.poll_timeout();
            // The line editor is always polled (it also shows the output);
            // plain stdin only once logged in (earlier lines wait there).
            let poll_input =
                stdin_open && (self.tty || (self.logged_in && self.quitting.is_none()));
            tokio::select! {
                biased;
                msg = ui_rx.recv() => {
                    // `self.out` holds a sender, so the channel never closes.
                    let Some(msg) = msg else { return EXIT_LOST };
                    if let Some(code) = self.on_ui(msg) {
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
                () = sleep_until_core(deadline) => {
                    let r = {
                        let mut core = self.shared.lock();
                        let r = core.client.handle_timeout(now());
                        self.out.drain(&mut core.client);
                        r
                    };
                    if let Err(e) = r {
                        return self.lost(&describe(&e));
                    }
                }
                () = sleep_until_opt(self.quitting), if self.quitting.is_some() => {
                    return self.lost("the server did not confirm the logout");
                }
                _ = refresh.tick(), if self.tty && self.logged_in && self.quitting.is_none() => {
                    if !self.silent_users {
                        let r = {
                            let mut core = self.shared.lock();
                            let r = core.client.list_users(now());
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
                        let r = core.client.list_users(now());
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
            ClientEvent::Users { names, more } => {
                self.users.extend(names.iter().map(|n| n.to_string()));
                if more {
                    return None;
                }
                let names = std::mem::take(&mut self.users);
                self.online = names.clone();
                self.online.sort();
                if std::mem::take(&mut self.silent_users) {
                    return None;
                }
                Event::Users { names }
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
                    self.held_messages.push(ev);
                    return None;
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
        f: impl FnOnce(&mut Client) -> Result<T, Error>,
        explain: impl FnOnce(&Error, &Client) -> Option<String>,
    ) -> Result<T, Option<i32>> {
        let (r, closed, message) = {
            let mut core = self.shared.lock();
            let r = f(&mut core.client);
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
        let no_request = |e: &Error, _: &Client| match e {
            Error::Protocol(ProtocolError::Unexpected) => Some("no chat request to answer".to_string()),
            Error::Protocol(ProtocolError::WrongChat) => {
                Some("that request is gone (withdrawn or replaced): not answered".to_string())
            }
            _ => None,
        };
        match cmd {
            Command::Empty => {}
            Command::Help => self.ui.note(HELP),
            Command::Users => {
                if let Err(code) = self.call(|c| c.list_users(now()), |_, _| None) {
                    return code;
                }
            }
            Command::Chat(name) => {
                if let Err(code) = self.call(|c| c.request_chat(now(), &name), |_, _| None) {
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
                if let Err(code) = self.call(|c| c.answer_request(chat_id, accept), no_request) {
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
                let explain = |e: &Error, _: &Client| {
                    matches!(e, Error::Protocol(ProtocolError::NoChat)).then(|| {
                        "not in a chat and no request of yours is pending \
                         (to refuse a request: /refuse)"
                            .to_string()
                    })
                };
                if let Err(code) = self.call(|c| c.leave_chat(now()), explain) {
                    return code;
                }
            }
            Command::Quit => {
                if let Err(code) = self.call(|c| c.logout(now()), |_, _| None) {
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
                let explain = |e: &Error, c: &Client| match (e, c.chat()) {
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
                    |c| {
                        let peer = c.chat().map(|chat| chat.peer().to_string());
                        c.send_text(now(), &text).map(|()| peer)
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
