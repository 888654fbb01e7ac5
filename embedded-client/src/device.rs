//! The driver loop: the firmware's thin layer around [`securecom_core::Client`].
//!
//! It follows the core's documented call order: bytes from UART0 go to
//! `handle_input`, bytes from UART1 to `handle_request_input` of the one
//! [`RequestLink`], deadlines to `handle_timeout`; after every input the
//! events are drained (and answered as the device's policy says) and the
//! output queues are written out. The UART writes block, so a queue is always
//! empty again before the next command.
//!
//! QEMU tells the guest nothing about TCP connections. In listen mode the
//! request channel's link is therefore made when bytes arrive on UART1 while
//! there is none (the server only dials after our login announced the
//! daemon), and dropped when the server closes it (`Bye`) or it fails; the
//! next bytes make a new one. In dial mode UART1 is QEMU's connection to the
//! server: the link is made when the core asks for a connection
//! (`ConnectRequestChannel`) and its hello is written; bytes that come while
//! there is no link belong to a connection given up and are dropped. The
//! hello of every dial but the first waits [`REDIAL_WAIT`], for QEMU to have
//! replaced the connection the server just closed.
//!
//! Every chat partner's key goes through the [`KnownPeers`] table: a request
//! is accepted only if the policy allows the user *and* the table admits the
//! key (known, or learned at first contact); a chat the device asked for is
//! left at once, before it says anything, if the key is not admitted.

use embedded_io::Write;
use rand_chacha::ChaCha20Rng;
use securecom_core::chat::ChatText;
use securecom_core::message::CloseReason;
use securecom_core::{
    ChatEnd, ClientConfig, ClientEvent, Duration, Error, Instant, PublicKey, RequestHello,
    RequestMode, StaticSecret, UserName,
};

use crate::clock::{Clock, Meter};
use crate::config::AcceptPolicy;
use crate::crypto::{Client, RequestLink};
use crate::exit::{exit, ExitCode};
use crate::hw::pl011::Uart;
use crate::hw::{repaint_stack, stack_high_water, stack_size};
use crate::known_peers::{self, KnownPeers, Verdict, LINE_MAX};
use crate::replies::{self, Then, Thermometer};

/// What the login starts with (`Device::start_login`).
pub struct Login {
    /// The client's configuration.
    pub config: ClientConfig,
    /// The device's key.
    pub key: StaticSecret,
    /// How the request channel opens.
    pub mode: RequestMode,
}

/// Bytes taken from a UART's RX FIFO per core call.
pub const RX_CHUNK: usize = 64;

/// Bytes of queued output moved to a UART per core call (the core's queues
/// hand out any part of a frame: a small buffer, written in turns).
pub const TX_CHUNK: usize = 256;

/// How long the server has to confirm a logout.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// In dial mode, how long the hello of a second or later request channel
/// waits after the core asked for it. The announce that goes with it makes
/// the server close the request channel's old connection (if it still has
/// one); QEMU's UART1 (`reconnect=1`) connects again about a second after
/// that, and whatever the device writes in between is lost. The bytes of the
/// old connection that arrive meanwhile are dropped.
pub const REDIAL_WAIT: Duration = Duration::from_secs(2);

/// What the device does, from its configuration (the key went to the client).
pub struct Behaviour {
    /// Who may open a chat with the device.
    pub accept: AcceptPolicy,
    /// Whom to call on `call me`.
    pub call: Option<UserName>,
    /// Chats before logging out; `None`: forever.
    pub chats: Option<u32>,
    /// Who may send `trust NAME` in a chat.
    pub admin: Option<UserName>,
}

/// The hardware and storage the device runs on.
pub struct Parts {
    /// The standard channel (UART0).
    pub std_uart: Uart,
    /// The request channel (UART1).
    pub req_uart: Uart,
    /// The clock.
    pub clock: Clock,
    /// Core time spent so far (the login's first message is already in it).
    pub meter: Meter,
    /// The RNG.
    pub rng: ChaCha20Rng,
    /// The client, in a static.
    pub client: &'static mut Client,
    /// The request channel's link, in a static.
    pub link: &'static mut Option<RequestLink>,
    /// The output buffer, in a static.
    pub tx: &'static mut [u8; TX_CHUNK],
    /// The input buffer, in a static.
    pub rx: &'static mut [u8; RX_CHUNK],
    /// The known peers (seeded from the configuration), in a static.
    pub known: &'static mut KnownPeers,
    /// The request channel is dialled (UART1 is a connection to the
    /// server), not listened for.
    pub dial: bool,
}

/// Where the current chat is, as the device counts chats.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ChatPhase {
    /// No chat open (maybe a request).
    None,
    /// Open: it counts when it ends.
    Open,
    /// Opened with a key the table does not admit: being left, not counted.
    KeyRefused,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    LoggingOut { deadline: Instant },
    Done,
}

/// The running device.
pub struct Device {
    std_uart: Uart,
    req_uart: Uart,
    clock: Clock,
    meter: Meter,
    rng: ChaCha20Rng,
    client: &'static mut Client,
    link: &'static mut Option<RequestLink>,
    tx: &'static mut [u8; TX_CHUNK],
    rx: &'static mut [u8; RX_CHUNK],
    known: &'static mut KnownPeers,
    dial: bool,
    /// Dial mode: the hello to write on UART1, and when.
    hello: Option<(RequestHello, Instant)>,
    /// Dial mode: a hello was written before (UART1's connection may be an
    /// old request channel's).
    dialled: bool,
    behaviour: Behaviour,
    thermometer: Thermometer,
    chat: ChatPhase,
    chats_done: u32,
    call_pending: bool,
    phase: Phase,
    rekeying: Rekeying,
}

/// Re-keys seen so far (`docs/PROTOCOL.md` 4.10), and the core time spent
/// on each channel since its last one, for the log: on an idle channel, the
/// cost of one re-key. A chat's re-keys are relayed over the standard
/// channel: their cost is the standard channel's since its previous re-key
/// or the chat's (with any chat message in between).
#[derive(Default)]
struct Rekeying {
    std: u32,
    request: u32,
    chat: u32,
    std_cost: u64,
    request_cost: u64,
}

impl Device {
    /// A device whose client has just been created.
    pub fn new(parts: Parts, behaviour: Behaviour) -> Self {
        Device {
            std_uart: parts.std_uart,
            req_uart: parts.req_uart,
            clock: parts.clock,
            meter: parts.meter,
            rng: parts.rng,
            client: parts.client,
            link: parts.link,
            tx: parts.tx,
            rx: parts.rx,
            known: parts.known,
            dial: parts.dial,
            hello: None,
            dialled: false,
            behaviour,
            thermometer: Thermometer::new(),
            chat: ChatPhase::None,
            chats_done: 0,
            call_pending: false,
            phase: Phase::Running,
            rekeying: Rekeying::default(),
        }
    }

    /// Starts the login (the client in its static, in place) and runs.
    pub fn start_login(&mut self, login: Login) -> ! {
        self.begin_login(login);
        self.run()
    }

    /// The login's start, in a frame of its own (gone before the loop's).
    #[inline(never)]
    fn begin_login(&mut self, login: Login) {
        let now = self.clock.now();
        let (client, rng) = (&mut *self.client, &mut self.rng);
        let started = self.meter.run(&mut self.clock, || {
            client.start(login.config, login.key, now, rng)
        });
        if let Err(e) = started {
            defmt::error!("cannot start the login: {}", e);
            exit(ExitCode::Session)
        }
        self.client.set_request_mode(login.mode);
    }

    /// Runs until the session ends, then exits with its status.
    pub fn run(&mut self) -> ! {
        let boot_stack = stack_high_water();
        repaint_stack();
        let code = match self.run_until_done() {
            Ok(()) => ExitCode::Success,
            Err(code) => code,
        };
        defmt::info!(
            "exit {}: stack high-water {=usize} bytes at boot, {=usize} bytes running, of {=usize}; heap 0; core time {=u64} ns",
            code,
            boot_stack,
            stack_high_water(),
            stack_size(),
            self.meter.total()
        );
        exit(code)
    }

    /// The driver loop. Its steps are not inlined into it: each one's
    /// temporaries (a new request link is 6.8 KB) live only while it runs,
    /// not under the post-quantum layer's decapsulation in `pump_standard`
    /// (measured: this frame was 9.5 KB with them inlined).
    fn run_until_done(&mut self) -> Result<(), ExitCode> {
        self.flush_std();
        while self.phase != Phase::Done {
            let t0 = self.meter.total();
            let mut active = self.pump_standard()?;
            if self.phase == Phase::Done {
                break;
            }
            let t1 = self.meter.total();
            active |= self.pump_request()?;
            self.dial_request_channel();
            let t2 = self.meter.total();
            self.poll_timers()?;
            self.start_call()?;
            let t3 = self.meter.total();
            self.rekeying.std_cost += (t1 - t0) + (t3 - t2);
            self.rekeying.request_cost += t2 - t1;
            self.note_rekeys();
            if !active {
                // SysTick wakes us within a millisecond; the UARTs are polled.
                cortex_m::asm::wfi();
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ I/O

    fn flush_std(&mut self) {
        loop {
            // Metered: it writes the answers to re-keys (an encapsulation).
            let (client, tx) = (&mut *self.client, &mut self.tx[..]);
            let n = self.meter.run(&mut self.clock, || client.poll_transmit(tx));
            if n == 0 {
                break;
            }
            // The UART's error type is `Infallible`.
            let _ = self.std_uart.write_all(&self.tx[..n]);
        }
    }

    fn flush_request(&mut self) {
        let now = self.clock.now();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        loop {
            let (client, tx) = (&mut *self.client, &mut self.tx[..]);
            let n = self.meter.run(&mut self.clock, || {
                client.poll_request_transmit(link, now, tx)
            });
            if n == 0 {
                break;
            }
            let _ = self.req_uart.write_all(&self.tx[..n]);
        }
    }

    /// Feeds what UART0 has to the client; `Ok(true)` if there was anything.
    #[inline(never)]
    fn pump_standard(&mut self) -> Result<bool, ExitCode> {
        let n = self.std_uart.read_available(&mut self.rx[..]);
        if n == 0 {
            return Ok(false);
        }
        let mut offset = 0;
        while offset < n && self.phase != Phase::Done {
            match self.feed_standard(offset, n) {
                Ok(used) => offset += used,
                Err(e) => {
                    self.drain_events()?;
                    defmt::error!("standard channel failed: {}", e);
                    return Err(ExitCode::Session);
                }
            }
            self.drain_events()?;
            self.flush_std();
        }
        Ok(true)
    }

    /// `rx[offset..n]` to the client, in a frame of its own: the core's
    /// 1.5 KB receive scratch is gone from the stack before `flush_std`
    /// writes what the input calls for (a re-key's answer is an
    /// encapsulation, the deepest stack there is).
    #[inline(never)]
    fn feed_standard(&mut self, offset: usize, n: usize) -> Result<usize, securecom_core::Error> {
        let now = self.clock.now();
        let (client, rng) = (&mut *self.client, &mut self.rng);
        let input = self.rx.get(offset..n).unwrap_or_default();
        self.meter
            .run(&mut self.clock, || client.handle_input(now, input, rng))
    }

    /// A new request-channel connection from the server: its link, made in
    /// a frame of its own (the 6.8 KB link is gone from the stack before
    /// the handshake's encapsulation in `pump_request`). False if refused.
    #[inline(never)]
    fn accept_link(&mut self, now: Instant) -> bool {
        let (client, rng) = (&mut *self.client, &mut self.rng);
        match self
            .meter
            .run(&mut self.clock, || client.new_request_link(now, rng))
        {
            Ok(link) => {
                defmt::info!("request channel: the server connected");
                *self.link = Some(link);
                true
            }
            Err(e) => {
                defmt::warn!("request channel: cannot accept: {}", e);
                false
            }
        }
    }

    /// Feeds what UART1 has to the request link; `Ok(true)` if there was anything.
    #[inline(never)]
    fn pump_request(&mut self) -> Result<bool, ExitCode> {
        let n = self.req_uart.read_available(&mut self.rx[..]);
        if n == 0 {
            return Ok(false);
        }
        let mut offset = 0;
        while offset < n {
            let now = self.clock.now();
            if self.link.is_none() {
                if self.dial {
                    // On a channel we dial the server speaks only after our
                    // hello: these bytes are an abandoned connection's.
                    defmt::debug!(
                        "request channel: {=usize} bytes of an old connection dropped",
                        n - offset
                    );
                    return Ok(true);
                }
                if !self.client.is_logged_in() {
                    // Before login no connection is expected; after logout
                    // the server's goodbye to a closed link does not matter.
                    defmt::debug!(
                        "request channel: {=usize} bytes while logged out",
                        n - offset
                    );
                    return Ok(true);
                }
                if !self.accept_link(now) {
                    return Ok(true);
                }
            }
            let Some(link) = self.link.as_mut() else {
                return Ok(true);
            };
            let input = self.rx.get(offset..n).unwrap_or_default();
            let result = feed_request(
                self.client,
                link,
                (&mut self.meter, &mut self.clock),
                now,
                input,
                &mut self.rng,
            );
            let closed = match result {
                Ok(used) => {
                    offset += used;
                    link.is_closed()
                }
                Err(e) => {
                    // The rest of this chunk belongs to the broken connection.
                    defmt::warn!(
                        "request channel: {}; {=str}",
                        e,
                        if self.dial {
                            "dialling again after the backoff"
                        } else {
                            "waiting for a new connection"
                        }
                    );
                    offset = n;
                    true
                }
            };
            if closed {
                self.client.request_link_closed(link);
                *self.link = None;
                defmt::info!("request channel: closed");
            }
            self.drain_events()?;
            self.flush_request();
            self.flush_std();
        }
        Ok(true)
    }

    /// Dial mode: writes the awaited hello on UART1 once it is due, and
    /// makes the link that runs the connection from there on (the server
    /// speaks first: the NNpsk0 initiator's message).
    #[inline(never)]
    fn dial_request_channel(&mut self) {
        let now = self.clock.now();
        if self.hello.as_ref().is_none_or(|(_, at)| now < *at) {
            return;
        }
        let Some((hello, _)) = self.hello.take() else {
            return;
        };
        if !self.client.is_logged_in() {
            return;
        }
        // What UART1 holds now came before our hello: an older connection's.
        let mut dropped = 0;
        loop {
            let n = self.req_uart.read_available(&mut self.rx[..]);
            if n == 0 {
                break;
            }
            dropped += n;
        }
        if dropped > 0 {
            defmt::debug!(
                "request channel: {=usize} bytes of an old connection dropped",
                dropped
            );
        }
        let (client, rng) = (&mut *self.client, &mut self.rng);
        match self
            .meter
            .run(&mut self.clock, || client.new_request_link(now, rng))
        {
            Ok(link) => {
                *self.link = Some(link);
                let _ = self.req_uart.write_all(&hello.0);
                self.dialled = true;
                defmt::info!("request channel: dialled the server (hello written)");
            }
            Err(e) => defmt::warn!("request channel: cannot dial: {}", e),
        }
    }

    #[inline(never)]
    fn poll_timers(&mut self) -> Result<(), ExitCode> {
        let now = self.clock.now();
        if self.client.poll_timeout().is_some_and(|t| now >= t) {
            let (client, rng) = (&mut *self.client, &mut self.rng);
            let result = self
                .meter
                .run(&mut self.clock, || client.handle_timeout(now, rng));
            if let Err(e) = result {
                defmt::error!("standard channel: {}", e);
                return Err(ExitCode::Session);
            }
            self.drain_events()?;
            self.flush_std();
        }
        if let Some(link) = self.link.as_mut() {
            if link.poll_timeout().is_some_and(|t| now >= t) {
                if let Err(e) = self.client.handle_request_timeout(link, now) {
                    defmt::warn!("request channel: {}", e);
                    self.client.request_link_closed(link);
                    *self.link = None;
                    self.drain_events()?;
                }
            }
        }
        if let Phase::LoggingOut { deadline } = self.phase {
            if now >= deadline {
                defmt::error!("logout: the server did not confirm");
                return Err(ExitCode::LogoutTimeout);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ commands

    /// A command's error: fatal if it closed the session, else logged.
    fn command(&mut self, result: Result<(), Error>) -> Result<(), ExitCode> {
        if let Err(e) = result {
            if self.client.is_closed() {
                defmt::error!("standard channel failed: {}", e);
                return Err(ExitCode::Session);
            }
            defmt::warn!("command refused: {}", e);
        }
        self.flush_std();
        Ok(())
    }

    fn send_text(&mut self, text: &str) -> Result<(), ExitCode> {
        let now = self.clock.now();
        let client = &mut *self.client;
        let result = self
            .meter
            .run(&mut self.clock, || client.send_text(now, text));
        self.command(result)
    }

    fn leave_chat(&mut self) -> Result<(), ExitCode> {
        let now = self.clock.now();
        let client = &mut *self.client;
        let result = self.meter.run(&mut self.clock, || client.leave_chat(now));
        self.command(result)
    }

    #[inline(never)]
    fn start_call(&mut self) -> Result<(), ExitCode> {
        if !self.call_pending || self.phase != Phase::Running || self.client.is_busy() {
            return Ok(());
        }
        self.call_pending = false;
        let Some(name) = self.behaviour.call.clone() else {
            return Ok(());
        };
        defmt::info!("calling {}", name);
        let now = self.clock.now();
        let client = &mut *self.client;
        let result = self
            .meter
            .run(&mut self.clock, || client.request_chat(now, &name));
        self.command(result)
    }

    fn start_logout(&mut self) -> Result<(), ExitCode> {
        if self.phase != Phase::Running {
            return Ok(());
        }
        defmt::info!("logging out after {=u32} chats", self.chats_done);
        let now = self.clock.now();
        self.call_pending = false;
        let client = &mut *self.client;
        let result = self.meter.run(&mut self.clock, || client.logout(now));
        self.phase = Phase::LoggingOut {
            deadline: now.add(LOGOUT_TIMEOUT),
        };
        self.command(result)
    }

    // ------------------------------------------------------------ events

    /// Logs each re-key completed since the last call (see [`Rekeying`]).
    #[inline(never)]
    fn note_rekeys(&mut self) {
        let r = &mut self.rekeying;
        let std = self.client.rekeys();
        if std != r.std {
            r.std = std;
            let cost = core::mem::take(&mut r.std_cost);
            defmt::info!(
                "standard channel re-keyed ({=u32}, initiator): core time {=u64} ns, stack high-water so far {=usize} bytes",
                std,
                cost,
                stack_high_water()
            );
        }
        let request = self.link.as_ref().map_or(0, |l| l.rekeys());
        if request != r.request {
            r.request = request;
            if request > 0 {
                let cost = core::mem::take(&mut r.request_cost);
                defmt::info!(
                    "request channel re-keyed ({=u32}, responder): core time {=u64} ns, stack high-water so far {=usize} bytes",
                    request,
                    cost,
                    stack_high_water()
                );
            }
        }
        let (chat, initiator) = self
            .client
            .chat()
            .map_or((0, false), |c| (c.rekeys(), c.is_initiator()));
        if chat != r.chat {
            r.chat = chat;
            if chat > 0 {
                let cost = core::mem::take(&mut r.std_cost);
                defmt::info!(
                    "chat re-keyed ({=u32}, {=str}): core time {=u64} ns, stack high-water so far {=usize} bytes",
                    chat,
                    if initiator { "initiator" } else { "responder" },
                    cost,
                    stack_high_water()
                );
            }
        }
    }

    fn drain_events(&mut self) -> Result<(), ExitCode> {
        while let Some(event) = self.client.poll_event() {
            self.on_event(event)?;
        }
        Ok(())
    }

    fn on_event(&mut self, event: ClientEvent) -> Result<(), ExitCode> {
        // Core time since the previous event: the cost of the step that made this one.
        let cost = self.meter.since_mark();
        defmt::debug!(
            "stack high-water so far: {=usize} bytes",
            stack_high_water()
        );
        match event {
            ClientEvent::LoggedIn { user } => {
                self.rekeying.std_cost = 0;
                defmt::info!("logged in as {} (login: core time {=u64} ns)", user, cost)
            }
            ClientEvent::LoginRefused(reason) => {
                defmt::error!("login refused: {}", reason);
                return Err(ExitCode::LoginRefused);
            }
            ClientEvent::ConnectRequestChannel(hello) => {
                if !self.dial {
                    // Never in `Listen` mode (UART1 is a listening socket).
                    defmt::warn!("request channel: asked to dial in listen mode");
                    return Ok(());
                }
                // The earlier connection is void: its link goes (a request
                // it brought is withdrawn).
                if let Some(old) = self.link.as_ref() {
                    self.client.request_link_closed(old);
                }
                *self.link = None;
                let now = self.clock.now();
                let wait = if self.dialled {
                    REDIAL_WAIT
                } else {
                    Duration::from_millis(0)
                };
                defmt::info!(
                    "request channel: dialling the server in {=u64} ms",
                    wait.as_millis()
                );
                self.hello = Some((hello, now.add(wait)));
            }
            ClientEvent::DaemonStatus { reachable } => {
                if reachable {
                    self.rekeying.request_cost = 0;
                    defmt::info!("daemon reachable (core time {=u64} ns)", cost);
                } else {
                    defmt::warn!("daemon not reachable: the server cannot request chats");
                }
            }
            ClientEvent::Users { .. } => {}
            ClientEvent::ChatPending { chat_id, user } => {
                defmt::info!("chat {=u32}: waiting for {}", chat_id, user)
            }
            ClientEvent::ChatRequest {
                chat_id,
                from,
                from_key,
            } => {
                let allowed = self.phase == Phase::Running && self.behaviour.accept.allows(&from);
                // Only a request the policy lets in gets to the table: a
                // declined user's key is not learned.
                let verdict = allowed.then(|| self.known.check(&from, &from_key));
                let accept = verdict.is_some_and(|v| v.admits());
                defmt::info!(
                    "chat {=u32}: request from {} ({}): {=str}",
                    chat_id,
                    from,
                    from_key,
                    if accept { "accept" } else { "refuse" }
                );
                if let Some(v) = &verdict {
                    show_verdict(&from, &from_key, v);
                }
                // The request the device saw: if it was withdrawn (and maybe
                // another came meanwhile), the core answers nothing.
                let result = self.client.answer_request(chat_id, accept);
                self.command(result)?;
                self.flush_request();
            }
            ClientEvent::RefusedBusy { from } => {
                defmt::info!("request from {} refused: busy", from)
            }
            ClientEvent::RequestWithdrawn { from } => {
                defmt::info!("request from {} withdrawn", from)
            }
            ClientEvent::ChatRefused { user, reason } => {
                defmt::info!("{} refused our request: {}", user, reason)
            }
            ClientEvent::ChatReady {
                chat_id,
                peer,
                peer_key,
                initiator,
                ..
            } => {
                self.rekeying.std_cost = 0;
                defmt::info!(
                    "chat {=u32} with {} ({}) open (E2E handshake: core time {=u64} ns)",
                    chat_id,
                    peer,
                    peer_key,
                    cost
                );
                // A request's key was checked when it came (and the core
                // opens only with that key); a chat the device asked for
                // shows the peer's key only now.
                let verdict = self.known.check(&peer, &peer_key);
                if !matches!(verdict, Verdict::Known(_)) {
                    show_verdict(&peer, &peer_key, &verdict);
                }
                if !verdict.admits() {
                    defmt::warn!(
                        "chat {=u32} with {}: leaving at once, nothing sent or shown",
                        chat_id,
                        peer
                    );
                    self.chat = ChatPhase::KeyRefused;
                    return self.leave_chat();
                }
                self.chat = ChatPhase::Open;
                if initiator {
                    let hello = replies::greeting(self.client.user());
                    self.send_text(&hello)?;
                }
            }
            ClientEvent::ChatMessage { from, text } => {
                if self.chat != ChatPhase::Open {
                    // Not shown, not answered: the device is leaving.
                    return Ok(());
                }
                let from_admin = self.behaviour.admin.as_ref() == Some(&from);
                if let Some(name) = known_peers::trust_command(&text).filter(|_| from_admin) {
                    let result = self.known.trust(name);
                    let mut reply = ChatText::new();
                    let _ = known_peers::write_trust_reply(&mut reply, name, &result);
                    if result.is_ok() {
                        // NAME is a known peer's name here, not free chat text.
                        defmt::info!("admin {}: {=str}", from, reply.as_str());
                    } else {
                        // The name came in chat text: it is not logged.
                        defmt::info!("admin {}: trust: no such changed key", from);
                    }
                    return self.send_text(&reply);
                }
                let response = replies::respond(
                    &text,
                    self.behaviour.call.as_deref(),
                    &mut self.thermometer,
                    &mut self.rng,
                );
                if let Some(reply) = &response.reply {
                    self.send_text(reply)?;
                }
                let reply_cost = self.meter.since_mark();
                defmt::info!(
                    "chat message of {=usize} bytes: core time receive {=u64} ns, reply {=u64} ns",
                    text.len(),
                    cost,
                    reply_cost
                );
                match response.then {
                    Then::Stay => {}
                    Then::Leave => self.leave_chat()?,
                    Then::LeaveAndCall => {
                        self.leave_chat()?;
                        self.call_pending = true;
                    }
                }
            }
            ClientEvent::ChatEnded { peer, reason } => {
                match core::mem::replace(&mut self.chat, ChatPhase::None) {
                    ChatPhase::Open => {
                        self.chats_done += 1;
                        match replies::chat_end(&peer, &reason) {
                            // What the core knows of how it ended, said plainly.
                            Some(text) => {
                                defmt::info!("chat {=u32}: {=str}", self.chats_done, text.as_str())
                            }
                            // Left, Failed: as before.
                            None => defmt::info!(
                                "chat {=u32} with {} ended: {}",
                                self.chats_done,
                                peer,
                                reason
                            ),
                        }
                        if self.behaviour.chats.is_some_and(|n| self.chats_done >= n) {
                            self.start_logout()?;
                        }
                    }
                    ChatPhase::KeyRefused => defmt::info!(
                        "chat with {} closed: its key is not accepted ({})",
                        peer,
                        reason
                    ),
                    ChatPhase::None => match (reason, replies::chat_end(&peer, &reason)) {
                        (ChatEnd::PeerLeft, Some(text)) => defmt::info!("{=str}", text.as_str()),
                        _ => defmt::info!("chat with {} did not open: {}", peer, reason),
                    },
                }
            }
            ClientEvent::ServerError(code) => defmt::warn!("server error: {}", code),
            ClientEvent::Closed(reason) => {
                if matches!(self.phase, Phase::LoggingOut { .. })
                    && reason == CloseReason::LoggedOut
                {
                    defmt::info!("logged out");
                    self.phase = Phase::Done;
                } else {
                    defmt::error!("the server closed the session: {}", reason);
                    return Err(ExitCode::ClosedByServer);
                }
            }
        }
        Ok(())
    }
}

/// Shows what the known-peers table said about `name`'s `key`: an admitted
/// key as information, a refused one as a warning.
fn show_verdict(name: &str, key: &PublicKey, verdict: &Verdict) {
    let mut line = heapless::String::<LINE_MAX>::new();
    // Cut short rather than not shown, should it ever not fit.
    let _ = known_peers::write_verdict(&mut line, name, key, verdict);
    if verdict.admits() {
        defmt::info!("{=str}", line.as_str());
    } else {
        defmt::warn!("{=str}", line.as_str());
    }
}

/// Request-channel input to the client, in a frame of its own (see
/// `Device::feed_standard`): the core's receive scratch is gone before
/// `flush_request` writes the answer to a re-key (an encapsulation).
#[inline(never)]
fn feed_request(
    client: &mut Client,
    link: &mut RequestLink,
    (meter, clock): (&mut Meter, &mut Clock),
    now: Instant,
    input: &[u8],
    rng: &mut ChaCha20Rng,
) -> Result<usize, securecom_core::Error> {
    meter.run(clock, || client.handle_request_input(link, now, input, rng))
}
