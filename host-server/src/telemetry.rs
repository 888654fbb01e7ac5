//! Operations: Prometheus metrics, health and readiness, served over HTTP on
//! a separate, opt-in address (`run --metrics-listen ADDR`).
//!
//! # What is measured
//!
//! Every metric is process-wide (one node), named `securecom_*`, but the
//! usual `process_*` ones:
//!
//! | metric | type | labels | counted where |
//! |---|---|---|---|
//! | `securecom_sessions` | gauge | | logged-in sessions on this node (`LoggedIn` .. leaving presence) |
//! | `securecom_connections` | gauge | | accepted connections with a task (handshakes, sessions, request hellos) |
//! | `securecom_logins_total` | counter | | successful logins |
//! | `securecom_login_failures_total` | counter | `reason` | [`LoginFailure`] |
//! | `securecom_relayed_messages_total` | counter | `kind` | E2E messages handed to the peer's session (`handshake`, `data`) |
//! | `securecom_relayed_bytes_total` | counter | `kind` | their E2E bytes (ciphertext, framing not included) |
//! | `securecom_relay_undelivered_total` | counter | | E2E messages the peer's session could not take (the chat ends) |
//! | `securecom_drops_total` | counter | `reason` | logged-in sessions the server ended: [`DropReason`] |
//! | `securecom_rate_limited_total` | counter | `limit` | connections and sessions dropped by a limit: [`Limit`] |
//! | `securecom_handshakes_shed_total` | counter | | handshakes closed because `--max-handshakes` were in progress |
//! | `securecom_request_channels_total` | counter | `outcome` | [`RequestChannel`]: daemon dials and client-dialled channels |
//! | `securecom_rekeys_total` | counter | `channel` | re-keys completed (`standard`, `request`) |
//! | `securecom_commands_refused_total` | counter | `command` | commands refused for their rate: `request_chat`, `leave_chat`, `list_users`, `announce_daemon`, `ping` |
//! | `securecom_nats_link_up` | gauge | | 1 while the NATS link is up (see [`nats_link`]) |
//! | `securecom_build_info` | gauge | `version` | always 1 |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_cpu_seconds_total`, `process_start_time_seconds` | gauges, counter | | the process, from `/proc/self` at each encoding (the names Prometheus's own clients use) |
//!
//! Every label value is a fixed word from an enum of this module (the
//! crate's version for `build_info`): the set of series is fixed at start
//! (all are created at 0), whatever clients do. No user name, address, key,
//! chat id or chat text ever becomes a label or a value.
//!
//! The core's per-session command limits (PROTOCOL.md 9.1) are decided in
//! `securecom-core`'s `ServerSession`; the driver reads what they did from
//! it ([`SessionMeter::refusals`]: `ServerSession::refusals`, the commands
//! refused for their rate, counted as they happen; and at the session's end
//! `ServerSession::close_reason`: a `Bye { RateLimited }` of the core's,
//! for commands or re-keys over their rates after the strikes, is
//! `rate_limited{limit="commands"}`).
//!
//! # Why `prometheus-client`
//!
//! The official Rust client of the Prometheus project: no HTTP server, no
//! background thread, a Prometheus text (0.0.4) encoder, and few
//! dependencies: it added three crates to `Cargo.lock` (itself, its derive
//! macro and `dtoa`; `itoa` and `parking_lot` were there already), and
//! the JSON logs one more (`tracing-serde`). The alternative, the `metrics`
//! facade with `metrics-exporter-prometheus`, needs even without its
//! default HTTP listener and push gateway `metrics-util`, `evmap`,
//! `quanta`, `indexmap` and `base64`, and looks each metric up by its name
//! and label strings at every call site, where here every series is
//! resolved once, at start, into a [`Counter`] whose increment is one
//! relaxed `fetch_add`: the relay path, the only hot one, does two per
//! message, next to a Noise decryption and encryption of it.
//!
//! # For the NATS cluster code
//!
//! Call [`nats_configured`] once at start when NATS is configured, then
//! [`nats_link`]`(up)` on every change of the link (connected, lost,
//! reconnected): `securecom_nats_link_up` follows it, and `/readyz` answers
//! 503 (`NATS link down`) while it is down. Without NATS neither is called:
//! the gauge stays 0 and readiness ignores it.
//!
//! # The HTTP endpoint
//!
//! `GET /metrics` (Prometheus text format), `GET /healthz` (200 while the
//! process runs), `GET /readyz` (200 once the listener is bound and the
//! registry loaded, and, where NATS is configured, while its link is up;
//! 503 with the reason otherwise, and from the moment a shutdown begins).
//! `HEAD` is answered too. It serves only these; nothing it is sent changes
//! anything. Its bounds ([`HttpLimits`], the defaults): at most 8
//! connections at once (a ninth is accepted and closed at once), one
//! request per connection, a request head of at most 2 KiB (else `431`),
//! read within 2 s of the accept (else closed: a slow client cannot hold a
//! slot longer), the answer written within 5 s. A response is a few KiB,
//! encoded from a fixed set of series at most twice a second (the same
//! text is served again in between), so no request rate makes the server
//! encode, or list its descriptors, more often. The endpoint has no
//! authentication and no TLS: bind it to loopback or a private network
//! (`docs/SECURITY.md`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use securecom_core::message::LoginError;
use securecom_core::server::RelayKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Why a login did not happen (`securecom_login_failures_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// `not_authorized`: an unknown user, or a key that is not theirs.
    NotAuthorized,
    /// `version_mismatch`: the client speaks another protocol version.
    VersionMismatch,
    /// `server_full`: refused for lack of room.
    ServerFull,
    /// `handshake_error`: bytes that are not a valid handshake (or the
    /// client's hello), including a failed decryption.
    HandshakeError,
    /// `handshake_timeout`: no login within `--handshake-timeout`, silent
    /// connections included.
    HandshakeTimeout,
}

impl LoginFailure {
    const ALL: [LoginFailure; 5] = [
        LoginFailure::NotAuthorized,
        LoginFailure::VersionMismatch,
        LoginFailure::ServerFull,
        LoginFailure::HandshakeError,
        LoginFailure::HandshakeTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            LoginFailure::NotAuthorized => "not_authorized",
            LoginFailure::VersionMismatch => "version_mismatch",
            LoginFailure::ServerFull => "server_full",
            LoginFailure::HandshakeError => "handshake_error",
            LoginFailure::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// Why the server ended a logged-in session (`securecom_drops_total{reason}`);
/// the driver's resource limits are in [`Limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// `protocol_error`: the client sent bytes that break the protocol.
    ProtocolError,
    /// `timeout`: a deadline passed (idle, the session's age, a re-key
    /// overdue).
    Timeout,
    /// `write_failed`: a write to the client failed or took longer than
    /// `--write-timeout`.
    WriteFailed,
    /// `replaced`: the same user logged in again.
    Replaced,
    /// `revoked`: the user's key is no longer registered.
    Revoked,
}

impl DropReason {
    const ALL: [DropReason; 5] = [
        DropReason::ProtocolError,
        DropReason::Timeout,
        DropReason::WriteFailed,
        DropReason::Replaced,
        DropReason::Revoked,
    ];

    fn label(self) -> &'static str {
        match self {
            DropReason::ProtocolError => "protocol_error",
            DropReason::Timeout => "timeout",
            DropReason::WriteFailed => "write_failed",
            DropReason::Replaced => "replaced",
            DropReason::Revoked => "revoked",
        }
    }
}

/// A limit of the driver that dropped a connection or a session
/// (`securecom_rate_limited_total{limit}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `connection_rate`: `--conn-rate-per-ip` (dropped at accept).
    ConnectionRate,
    /// `source_handshakes`: `--handshakes-per-ip` (dropped at accept).
    SourceHandshakes,
    /// `connections`: `--max-connections` (dropped at accept).
    Connections,
    /// `output_backlog`: `--output-hard-cap` (session closed, `Bye { RateLimited }`).
    OutputBacklog,
    /// `mailbox`: the session's mailbox overflowed (closed, `Bye { RateLimited }`).
    Mailbox,
    /// `commands`: the session's commands (or re-keys) went on over their
    /// rates after its strikes were spent (`--rate-*`; closed by the core,
    /// `Bye { RateLimited }`).
    Commands,
}

impl Limit {
    const ALL: [Limit; 6] = [
        Limit::ConnectionRate,
        Limit::SourceHandshakes,
        Limit::Connections,
        Limit::OutputBacklog,
        Limit::Mailbox,
        Limit::Commands,
    ];

    fn label(self) -> &'static str {
        match self {
            Limit::ConnectionRate => "connection_rate",
            Limit::SourceHandshakes => "source_handshakes",
            Limit::Connections => "connections",
            Limit::OutputBacklog => "output_backlog",
            Limit::Mailbox => "mailbox",
            Limit::Commands => "commands",
        }
    }
}

/// How a request channel's connection came about, or did not
/// (`securecom_request_channels_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestChannel {
    /// `dialled`: the server's dial to an announced daemon connected.
    Dialled,
    /// `dial_timeout`: that dial did not connect in time.
    DialTimeout,
    /// `dial_failed`: that dial failed (refused, unreachable).
    DialFailed,
    /// `dial_policy`: the announced daemon was not dialled (the dial policy).
    DialPolicy,
    /// `client_dialled`: the client opened the channel with its ticket.
    ClientDialled,
    /// `unknown_ticket`: a request hello whose ticket no session awaited.
    UnknownTicket,
}

impl RequestChannel {
    const ALL: [RequestChannel; 6] = [
        RequestChannel::Dialled,
        RequestChannel::DialTimeout,
        RequestChannel::DialFailed,
        RequestChannel::DialPolicy,
        RequestChannel::ClientDialled,
        RequestChannel::UnknownTicket,
    ];

    fn label(self) -> &'static str {
        match self {
            RequestChannel::Dialled => "dialled",
            RequestChannel::DialTimeout => "dial_timeout",
            RequestChannel::DialFailed => "dial_failed",
            RequestChannel::DialPolicy => "dial_policy",
            RequestChannel::ClientDialled => "client_dialled",
            RequestChannel::UnknownTicket => "unknown_ticket",
        }
    }
}

/// One label: a fixed name and a fixed value.
type Label = [(&'static str, &'static str); 1];

/// The metrics and the registry that encodes them.
struct Metrics {
    registry: Registry,
    sessions: Gauge,
    connections: Gauge,
    logins: Counter,
    login_failures: [Counter; LoginFailure::ALL.len()],
    relayed_messages: [Counter; 2],
    relayed_bytes: [Counter; 2],
    relay_undelivered: Counter,
    drops: [Counter; DropReason::ALL.len()],
    rate_limited: [Counter; Limit::ALL.len()],
    handshakes_shed: Counter,
    request_channels: [Counter; RequestChannel::ALL.len()],
    rekeys: [Counter; 2],
    commands_refused: [Counter; 5],
    // Set by `nats_link`, which the NATS cluster code calls.
    nats_link_up: Gauge,
}

/// Registers a counter family with one label and creates its series, in
/// the order of `values`.
fn family<const N: usize>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: [&'static str; N],
) -> [Counter; N] {
    let family = Family::<Label, Counter>::default();
    registry.register(name, help, family.clone());
    values.map(|v| family.get_or_create_owned(&[(label, v)]))
}

fn registered<M: prometheus_client::registry::Metric + Clone + Default>(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> M {
    let m = M::default();
    registry.register(name, help, m.clone());
    m
}

impl Metrics {
    fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let reg = root.sub_registry_with_prefix("securecom");
        let build = Family::<Label, Gauge>::default();
        reg.register("build_info", "The server's version", build.clone());
        build
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        let kinds = ["handshake", "data"];
        let mut metrics = Metrics {
            // Replaced below, once `reg` (borrowed from it) is done with.
            registry: Registry::default(),
            sessions: registered(reg, "sessions", "Logged-in sessions on this node"),
            connections: registered(reg, "connections", "Open client connections"),
            logins: registered(reg, "logins", "Successful logins"),
            login_failures: family(
                reg,
                "login_failures",
                "Connections that did not log in, by reason",
                "reason",
                LoginFailure::ALL.map(LoginFailure::label),
            ),
            relayed_messages: family(
                reg,
                "relayed_messages",
                "End-to-end messages relayed to the peer's session",
                "kind",
                kinds,
            ),
            relayed_bytes: family(
                reg,
                "relayed_bytes",
                "End-to-end bytes relayed (ciphertext, without framing)",
                "kind",
                kinds,
            ),
            relay_undelivered: registered(
                reg,
                "relay_undelivered",
                "End-to-end messages the peer's session could not take (the chat ended)",
            ),
            drops: family(
                reg,
                "drops",
                "Logged-in sessions ended by the server, by reason",
                "reason",
                DropReason::ALL.map(DropReason::label),
            ),
            rate_limited: family(
                reg,
                "rate_limited",
                "Connections and sessions dropped by a limit of the server",
                "limit",
                Limit::ALL.map(Limit::label),
            ),
            handshakes_shed: registered(
                reg,
                "handshakes_shed",
                "Handshakes closed to admit a new one (--max-handshakes in progress)",
            ),
            request_channels: family(
                reg,
                "request_channels",
                "Request-channel connections: daemon dials and client-dialled channels, by outcome",
                "outcome",
                RequestChannel::ALL.map(RequestChannel::label),
            ),
            rekeys: family(
                reg,
                "rekeys",
                "Re-keys completed, by channel",
                "channel",
                ["standard", "request"],
            ),
            commands_refused: family(
                reg,
                "commands_refused",
                "Commands refused for their rate (answered SlowDown, or TooSoon for a chat request), by command",
                "command",
                ["request_chat", "leave_chat", "list_users", "announce_daemon", "ping"],
            ),
            nats_link_up: registered(
                reg,
                "nats_link_up",
                "1 while the link to NATS is up (0 when NATS is not configured)",
            ),
        };
        metrics.registry = root;
        metrics
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process metrics Prometheus's clients export on Linux
/// (`process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_cpu_seconds_total`,
/// `process_start_time_seconds`), read from `/proc/self` at each scrape; a
/// file that cannot be read or parsed leaves its metrics out.
#[derive(Debug)]
struct ProcessCollector;

/// Clock ticks per second in `/proc/*/stat`: `USER_HZ`, 100 on every Linux
/// ABI (Prometheus's Go `procfs` assumes the same).
const USER_HZ: f64 = 100.0;

/// Process figures, from the `/proc/self` files' text.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
}

impl ProcessStats {
    fn read() -> Self {
        let file = |p: &str| std::fs::read_to_string(p).ok();
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            // Less the descriptor that reads the directory.
            .map(|d| {
                i64::try_from(d.count())
                    .unwrap_or(i64::MAX)
                    .saturating_sub(1)
            });
        ProcessStats {
            open_fds,
            ..Self::parse(
                file("/proc/self/status").as_deref(),
                file("/proc/self/limits").as_deref(),
                file("/proc/self/stat").as_deref(),
                file("/proc/stat").as_deref(),
            )
        }
    }

    fn parse(
        status: Option<&str>,
        limits: Option<&str>,
        stat: Option<&str>,
        system_stat: Option<&str>,
    ) -> Self {
        // `VmRSS:     1234 kB`
        let kib = |key: &str| {
            status?
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse::<i64>()
                .ok()?
                .checked_mul(1024)
        };
        // `Max open files            1024                 524288               files`
        let max_fds = limits.and_then(|l| {
            l.lines()
                .find_map(|l| l.strip_prefix("Max open files"))?
                .split_whitespace()
                .next()?
                .parse::<i64>()
                .ok()
        });
        // The fields after the command name (which may hold spaces and
        // parentheses): field 3 (`state`) is the first.
        let fields: Vec<&str> = stat
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |field: usize| {
            fields
                .get(field.checked_sub(3)?)?
                .parse::<u64>()
                .ok()
                .map(|t| t as f64 / USER_HZ)
        };
        let cpu_seconds = ticks(14).zip(ticks(15)).map(|(u, s)| u + s);
        let boot = system_stat.and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))?
                .trim()
                .parse::<u64>()
                .ok()
        });
        let start_time_seconds = boot.zip(ticks(22)).map(|(b, t)| b as f64 + t);
        ProcessStats {
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            open_fds: None,
            max_fds,
            cpu_seconds,
            start_time_seconds,
        }
    }
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let p = ProcessStats::read();
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                p.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        if let Some(v) = p.cpu_seconds {
            let c = ConstCounter::new(v);
            let name = "process_cpu_seconds";
            let help = "Total user and system CPU time spent in seconds";
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        if let Some(v) = p.start_time_seconds {
            let g = ConstGauge::new(v);
            let name = "process_start_time_seconds";
            let help = "Start time of the process since the Unix epoch in seconds";
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// What readiness waits for.
struct Readiness {
    registry: AtomicBool,
    listening: AtomicBool,
    stopping: AtomicBool,
    nats_configured: AtomicBool,
    nats_up: AtomicBool,
}

static READY: Readiness = Readiness {
    registry: AtomicBool::new(false),
    listening: AtomicBool::new(false),
    stopping: AtomicBool::new(false),
    nats_configured: AtomicBool::new(false),
    nats_up: AtomicBool::new(false),
};

// ------------------------------------------------------------ recording

/// Adds one to `counters[index]`.
fn bump(counters: &[Counter], index: usize) {
    if let Some(c) = counters.get(index) {
        c.inc();
    }
}

/// A connection was accepted and has a task: the gauge counts it until the
/// returned guard is dropped.
pub fn connection() -> ConnectionGuard {
    METRICS.connections.inc();
    ConnectionGuard(())
}

/// Held by a connection's task (see [`connection`]).
pub struct ConnectionGuard(());

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        METRICS.connections.dec();
    }
}

/// A user logged in: one more login and one more session.
pub fn logged_in() {
    METRICS.logins.inc();
    METRICS.sessions.inc();
}

/// A logged-in session left presence.
pub fn logged_out() {
    METRICS.sessions.dec();
}

/// A login failed for `reason`.
pub fn login_failed(reason: LoginFailure) {
    bump(&METRICS.login_failures, reason as usize);
}

/// The core refused a login (its [`securecom_core::ServerEvent::LoginFailed`]).
pub fn login_refused(reason: LoginError) {
    login_failed(match reason {
        LoginError::NotAuthorized => LoginFailure::NotAuthorized,
        LoginError::VersionMismatch => LoginFailure::VersionMismatch,
        LoginError::ServerFull => LoginFailure::ServerFull,
    });
}

/// The client's input broke the protocol: a drop if it was logged in, a
/// failed login if not.
pub fn input_error(logged_in: bool) {
    match logged_in {
        true => dropped(DropReason::ProtocolError),
        false => login_failed(LoginFailure::HandshakeError),
    }
}

/// A relayed E2E message of `bytes` bytes: `delivered` to the peer's
/// session, or not (the chat ends).
pub fn relayed(kind: RelayKind, bytes: usize, delivered: bool) {
    if !delivered {
        METRICS.relay_undelivered.inc();
        return;
    }
    let i = match kind {
        RelayKind::Handshake => 0,
        RelayKind::Data => 1,
    };
    bump(&METRICS.relayed_messages, i);
    if let Some(c) = METRICS.relayed_bytes.get(i) {
        c.inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }
}

/// A write to the client failed: a drop if the session was logged in and
/// still open (not the last bytes of a session already ending).
pub fn write_failed(logged_in: bool, closed: bool) {
    if logged_in && !closed {
        dropped(DropReason::WriteFailed);
    }
}

/// The server ended a logged-in session for `reason`.
pub fn dropped(reason: DropReason) {
    bump(&METRICS.drops, reason as usize);
}

/// A limit dropped a connection or a session.
pub fn rate_limited(limit: Limit) {
    bump(&METRICS.rate_limited, limit as usize);
}

/// A handshake in progress was shed for a new one.
pub fn handshake_shed() {
    METRICS.handshakes_shed.inc();
}

/// A request channel's connection: see [`RequestChannel`].
pub fn request_channel(outcome: RequestChannel) {
    bump(&METRICS.request_channels, outcome as usize);
}

/// The outcome of a dial to an announced daemon.
pub fn daemon_dial<T>(result: &std::io::Result<T>) {
    request_channel(match result {
        Ok(_) => RequestChannel::Dialled,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => RequestChannel::DialTimeout,
        Err(_) => RequestChannel::DialFailed,
    });
}

/// Per-session bookkeeping of what the core counts cumulatively (one per
/// session task, on its stack).
#[derive(Default)]
pub struct SessionMeter {
    rekeys: (u32, u32),
    refusals: securecom_core::server::Refusals,
}

impl SessionMeter {
    /// The session's refused commands now
    /// ([`securecom_core::ServerSession::refusals`]): what is new since the
    /// last call is counted.
    pub fn refusals(&mut self, now: securecom_core::server::Refusals) {
        let old = std::mem::replace(&mut self.refusals, now);
        for (i, (new, old)) in [
            (now.requests, old.requests),
            (now.leaves, old.leaves),
            (now.listings, old.listings),
            (now.announces, old.announces),
            (now.pings, old.pings),
        ]
        .into_iter()
        .enumerate()
        {
            let added = new.saturating_sub(old);
            if added > 0 {
                if let Some(c) = METRICS.commands_refused.get(i) {
                    c.inc_by(u64::from(added));
                }
            }
        }
    }

    /// The session's re-key counts now ([`securecom_core::ServerSession::rekeys`]):
    /// what is new since the last call is counted.
    pub fn rekeys(&mut self, (standard, request): (u32, u32)) {
        let (old_std, old_req) = std::mem::replace(&mut self.rekeys, (standard, request));
        for (i, new) in [
            (0, standard.saturating_sub(old_std)),
            (1, request.saturating_sub(old_req)),
        ] {
            if new > 0 {
                if let Some(c) = METRICS.rekeys.get(i) {
                    c.inc_by(u64::from(new));
                }
            }
        }
    }

    /// A deadline was handled; `closed`: it ended the session, which was
    /// `logged_in` or still in its handshake.
    pub fn timeout(&self, closed: bool, logged_in: bool) {
        match (closed, logged_in) {
            (false, _) => {}
            (true, true) => dropped(DropReason::Timeout),
            (true, false) => login_failed(LoginFailure::HandshakeTimeout),
        }
    }
}

// ------------------------------------------------------------ readiness

/// The registry was loaded (readiness).
pub fn registry_loaded() {
    READY.registry.store(true, Ordering::Release);
}

/// The client listener is bound (readiness).
pub fn listening() {
    READY.listening.store(true, Ordering::Release);
}

/// A shutdown began: not ready any more (a load balancer stops sending
/// new clients while the sessions end).
pub fn stopping() {
    READY.stopping.store(true, Ordering::Release);
}

/// For the NATS cluster code: call once at start when NATS is configured;
/// from then on the node is ready only while [`nats_link`] last said `true`.
pub fn nats_configured() {
    READY.nats_configured.store(true, Ordering::Release);
}

/// For the NATS cluster code: the link to NATS is up (`true`) or down
/// (`false`); call on every change (connected, disconnected, reconnected).
/// Sets `securecom_nats_link_up` and, if [`nats_configured`] was called,
/// readiness.
pub fn nats_link(up: bool) {
    READY.nats_up.store(up, Ordering::Release);
    METRICS.nats_link_up.set(i64::from(up));
}

/// `Ok` if ready, else why not.
fn readiness() -> Result<(), &'static str> {
    let r = &READY;
    if r.stopping.load(Ordering::Acquire) {
        Err("shutting down")
    } else if !r.registry.load(Ordering::Acquire) {
        Err("registry not loaded")
    } else if !r.listening.load(Ordering::Acquire) {
        Err("listener not bound")
    } else if r.nats_configured.load(Ordering::Acquire) && !r.nats_up.load(Ordering::Acquire) {
        Err("NATS link down")
    } else {
        Ok(())
    }
}

/// The metrics in the Prometheus text format.
fn encode_metrics() -> String {
    let mut text = String::with_capacity(4096);
    if prometheus_text::encode(&mut text, &METRICS.registry).is_err() {
        // Writing to a `String` does not fail; keep the output well-formed anyway.
        text.clear();
    }
    text
}

/// How long an encoded `/metrics` answer is served again before the next
/// request encodes anew: at most two encodings (and `/proc` reads, which
/// list every descriptor) a second, however often the endpoint is asked.
const METRICS_FRESH: Duration = Duration::from_millis(500);

/// The metrics text, encoded at most once per [`METRICS_FRESH`]. Never
/// waits: while one request encodes, the others get the previous text.
fn metrics_text() -> Arc<str> {
    static LAST: Mutex<Option<(Instant, Arc<str>)>> = Mutex::new(None);
    static ENCODING: AtomicBool = AtomicBool::new(false);
    let lock = || LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let last = lock().clone();
    if let Some((at, text)) = &last {
        let fresh = now.saturating_duration_since(*at) < METRICS_FRESH;
        if fresh || ENCODING.swap(true, Ordering::AcqRel) {
            return text.clone();
        }
    } else {
        // The first request ever: nothing to share yet.
        ENCODING.store(true, Ordering::Release);
    }
    let text: Arc<str> = encode_metrics().into();
    *lock() = Some((now, text.clone()));
    ENCODING.store(false, Ordering::Release);
    text
}

// ------------------------------------------------------------ logs

/// `run --log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    Text,
    /// One JSON object a line (tracing-subscriber's JSON format), for a log
    /// pipeline: `timestamp`, `level`, `fields` (`message` and the event's
    /// fields), `target`.
    Json,
}

/// Installs the log subscriber on stderr: `filter` (else `RUST_LOG`, else
/// `info`), in `format`.
pub fn init_logs(filter: Option<&str>, format: LogFormat) {
    let filter = match filter {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            // The NATS client reports each reconnection attempt at info;
            // the cluster's own lines say what matters (once per outage).
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn")),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colours only on a terminal: a log file or a journal gets plain text.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

// ------------------------------------------------------------ the HTTP endpoint

/// Binds the endpoint on `addr`, if given, and serves it on `rt` with the
/// default [`HttpLimits`]; a bind failure is an error at start.
pub fn start_endpoint(
    rt: &tokio::runtime::Runtime,
    addr: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let listener = rt
        .block_on(bind(addr))
        .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "metrics endpoint: /metrics, /healthz, /readyz");
    rt.spawn(serve(listener, HttpLimits::default()));
    Ok(())
}

/// The bounds of the HTTP endpoint (see the module's documentation).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Longest request head (request line and headers), in bytes.
    pub max_request: usize,
    /// Time from the accept to the end of the request head.
    pub read_timeout: Duration,
    /// Time to write the answer.
    pub write_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 8,
            max_request: 2048,
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// Binds the endpoint's listener (before serving, so that a bad address
/// stops the server at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` within `limits`, forever.
pub async fn serve(listener: TcpListener, limits: HttpLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "metrics endpoint: connection cap reached, closed");
            continue;
        };
        tokio::spawn(async move {
            handle(stream, limits).await;
            drop(permit);
        });
    }
}

/// What a request head read gave.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The head's length in the buffer (up to and including its blank line).
    Complete(usize),
    /// `max_request` bytes without the end of a head.
    TooLarge,
    /// The client closed (or failed) before the end of its head.
    Closed,
}

/// Reads a request head into `buf` (at most `max` bytes).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, max: usize) -> Head {
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = head_end(buf) {
            return Head::Complete(end);
        }
        let room = max.saturating_sub(buf.len());
        if room == 0 {
            return Head::TooLarge;
        }
        let want = room.min(chunk.len());
        let Some(dst) = chunk.get_mut(..want) else {
            return Head::TooLarge;
        };
        match stream.read(dst).await {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(n) => buf.extend_from_slice(dst.get(..n).unwrap_or_default()),
        }
    }
}

/// The end of a request head (after `\r\n\r\n`, or a bare `\n\n`), if `buf` holds one.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i.saturating_add(4));
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i.saturating_add(2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An answer: status line, content type, body, and whether to send the body.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Answer {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = String::with_capacity(160);
        let _ = write!(
            head,
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        let mut out = head.into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The answer to a request head (the bytes up to its blank line).
fn route(head: &[u8]) -> Answer {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = head.get(..line_end).unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Answer::text("400 Bad Request", "bad request\n");
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::text("400 Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") {
        return Answer::text("505 HTTP Version Not Supported", "HTTP/1.x only\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Answer::text("405 Method Not Allowed", "GET or HEAD only\n");
        }
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut answer = match path {
        "/metrics" => Answer {
            status: "200 OK",
            content_type: prometheus_text::CONTENT_TYPE,
            body: metrics_text().to_string(),
            head_only: false,
        },
        "/healthz" => Answer::text("200 OK", "ok\n"),
        "/readyz" => match readiness() {
            Ok(()) => Answer::text("200 OK", "ready\n"),
            Err(why) => Answer::text("503 Service Unavailable", format!("not ready: {why}\n")),
        },
        _ => Answer::text("404 Not Found", "not found: /metrics, /healthz, /readyz\n"),
    };
    answer.head_only = head_only;
    answer
}

/// Serves one connection: one request, one answer, then close.
async fn handle(mut stream: TcpStream, limits: HttpLimits) {
    let mut buf = Vec::with_capacity(limits.max_request.min(4096));
    let read = tokio::time::timeout(
        limits.read_timeout,
        read_head(&mut stream, &mut buf, limits.max_request),
    )
    .await;
    let answer = match read {
        Err(_) => {
            debug!("metrics endpoint: request not read in time, closed");
            return;
        }
        Ok(Head::Closed) => return,
        Ok(Head::TooLarge) => Answer::text(
            "431 Request Header Fields Too Large",
            "request head too large\n",
        ),
        Ok(Head::Complete(end)) => route(buf.get(..end).unwrap_or_default()),
    };
    let bytes = answer.to_bytes();
    let _ = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn endpoint(limits: HttpLimits) -> SocketAddr {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, limits));
        addr
    }

    /// Sends `request`, then reads until the server closes (at most 10 s).
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn serves_the_three_paths_and_nothing_else() {
        let addr = endpoint(HttpLimits::default()).await;
        logged_in();
        let metrics = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(metrics.contains("# TYPE securecom_logins_total counter"));
        assert!(metrics.contains("securecom_login_failures_total{reason=\"not_authorized\"}"));
        assert!(metrics.contains("securecom_build_info{version=\""));
        // Content-Length is the body's length.
        let (head, body) = metrics.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));

        let health = exchange(addr, b"GET /healthz HTTP/1.0\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200 OK") && health.ends_with("ok\n"));
        let head = exchange(addr, b"HEAD /healthz HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"));
        assert!(head.contains("Content-Length: 3\r\n"));
        let missing = exchange(addr, b"GET /users HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "));
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "));
        let junk = exchange(addr, b"\xff\xfe garbage\r\n\r\n").await;
        assert!(junk.starts_with("HTTP/1.1 400 "));
        let old = exchange(addr, b"GET /metrics HTTP/2.0\r\n\r\n").await;
        assert!(old.starts_with("HTTP/1.1 505 "));
        // A query string is ignored; a bare-LF head is accepted.
        let q = exchange(addr, b"GET /healthz?x=1 HTTP/1.1\n\n").await;
        assert!(q.starts_with("HTTP/1.1 200 OK"));
    }

    #[tokio::test]
    async fn an_oversized_request_is_refused_without_reading_on() {
        let limits = HttpLimits {
            max_request: 256,
            ..HttpLimits::default()
        };
        let addr = endpoint(limits).await;
        // 256 bytes of a head that does not end: refused there (and all of
        // it was read, so the close is a clean one and the answer arrives).
        let mut request = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        request.resize(256, b'a');
        let answer = exchange(addr, &request).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        // 100 KB sent at once: the server reads 256 bytes of it and closes;
        // the endpoint goes on serving.
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(100_000, b'b');
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The server may close (and reset) before all is written.
        let _ = s.write_all(&big).await;
        let mut out = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(closed.is_ok(), "closed at once, not at the read timeout");
        let health = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200 OK"));
    }

    #[tokio::test]
    async fn a_slow_client_is_closed_at_the_read_timeout() {
        let limits = HttpLimits {
            read_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        };
        let addr = endpoint(limits).await;
        let s = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let (mut rd, mut wr) = s.into_split();
        // Part of a head, then a byte every 50 ms for 2 s: the deadline
        // counts from the accept, not from the last byte.
        tokio::spawn(async move {
            let _ = wr.write_all(b"GET /metrics HTTP/1.1\r\n").await;
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if wr.write_all(b"X").await.is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut out)).await;
        let elapsed = start.elapsed();
        assert!(r.is_ok(), "the server closed the connection");
        assert!(out.is_empty(), "no answer to an unfinished request");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_at_once() {
        let limits = HttpLimits {
            max_connections: 2,
            read_timeout: Duration::from_secs(3),
            ..HttpLimits::default()
        };
        let addr = endpoint(limits).await;
        // Two silent clients hold both slots.
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut out)).await;
        assert!(
            r.is_ok(),
            "the third connection is closed, not served later"
        );
        assert!(out.is_empty());
        assert!(start.elapsed() < Duration::from_secs(2));
        // Once the silent ones time out, the endpoint serves again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let health = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200 OK"));
    }

    /// Arbitrary bytes (mostly from the request line's alphabet, so that
    /// the parser's branches are reached) never panic the parser, and every
    /// answer is one of its statuses.
    #[test]
    fn arbitrary_heads_get_an_answer() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        let alphabet: &[&[u8]] = &[
            b"GET",
            b"HEAD",
            b"POST",
            b" ",
            b"/",
            b"/metrics",
            b"/healthz",
            b"/readyz",
            b"?",
            b"HTTP/1.1",
            b"HTTP/1.",
            b"HTTP/2",
            b"\r",
            b"\n",
            b"\xff",
            b"\0",
            b"a",
        ];
        for _ in 0..20_000 {
            let mut head = Vec::new();
            for _ in 0..rng.next_u32() % 12 {
                let r = rng.next_u32() as usize;
                match alphabet.get(r % (alphabet.len() + 1)) {
                    Some(piece) => head.extend_from_slice(piece),
                    None => head.push(r as u8),
                }
            }
            let a = route(&head);
            assert!(
                ["200", "400", "404", "405", "503", "505"].contains(&&a.status[..3]),
                "{:?} -> {}",
                String::from_utf8_lossy(&head),
                a.status
            );
            let bytes = a.to_bytes();
            assert!(bytes.starts_with(b"HTTP/1.1 "));
        }
    }

    /// Each reason's counter is found at `reason as usize`: the `ALL`
    /// arrays list the variants in their declaration order.
    #[test]
    fn label_arrays_are_in_declaration_order() {
        for (i, r) in LoginFailure::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
        }
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
        }
        for (i, r) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
        }
        for (i, r) in RequestChannel::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
        }
        let before = METRICS.rate_limited.each_ref().map(Counter::get);
        rate_limited(Limit::Mailbox);
        let after = METRICS.rate_limited.each_ref().map(Counter::get);
        assert_eq!(after[4], before[4] + 1);
        assert_eq!(after[..4], before[..4]);
    }

    #[test]
    fn process_figures_parse_from_proc_text() {
        let status = "Name:\tsecurecom-serv\nVmSize:\t  123456 kB\nVmRSS:\t    8192 kB\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20480                524288               files\n";
        // The command name may hold spaces and parentheses.
        let stat = "4242 (securecom (x) s) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    250 50 0 0 20 0 3 0 12345 1000 2000";
        let p = ProcessStats::parse(
            Some(status),
            Some(limits),
            Some(stat),
            Some("cpu 1 2 3\nbtime 1700000000\n"),
        );
        assert_eq!(p.resident_bytes, Some(8192 * 1024));
        assert_eq!(p.virtual_bytes, Some(123456 * 1024));
        assert_eq!(p.max_fds, Some(20480));
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.start_time_seconds, Some(1_700_000_000.0 + 123.45));
        // Missing or garbled files: those figures are left out.
        assert_eq!(
            ProcessStats::parse(None, None, None, None),
            ProcessStats::default()
        );
        let garbled = ProcessStats::parse(
            Some("VmRSS: lots"),
            Some("Max open files"),
            Some("1 (x"),
            None,
        );
        assert_eq!(garbled, ProcessStats::default());
        // And this process's own figures are exported.
        let text = encode_metrics();
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_cpu_seconds_total",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in\n{text}");
        }
    }

    #[test]
    fn metrics_are_encoded_at_most_twice_a_second() {
        let start = Instant::now();
        let mut texts: Vec<Arc<str>> = Vec::new();
        for _ in 0..2000 {
            let t = metrics_text();
            if !texts.iter().any(|x| Arc::ptr_eq(x, &t)) {
                texts.push(t);
            }
        }
        let periods = start.elapsed().as_millis() / METRICS_FRESH.as_millis() + 2;
        assert!(texts.len() as u128 <= periods, "{} encodings", texts.len());
        // A change shows in the next text after the fresh period.
        handshake_shed();
        let want = format!(
            "securecom_handshakes_shed_total {}",
            METRICS.handshakes_shed.get()
        );
        std::thread::sleep(METRICS_FRESH + Duration::from_millis(100));
        assert!(metrics_text().contains(&want));
    }

    #[test]
    fn heads_end_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn readiness_needs_the_listener_the_registry_and_nats_if_configured() {
        // The only test that touches readiness (process-wide state).
        assert_eq!(readiness(), Err("registry not loaded"));
        registry_loaded();
        assert_eq!(readiness(), Err("listener not bound"));
        listening();
        assert_eq!(readiness(), Ok(()));
        nats_link(false);
        assert_eq!(
            readiness(),
            Ok(()),
            "NATS not configured: its link does not count"
        );
        nats_configured();
        assert_eq!(readiness(), Err("NATS link down"));
        nats_link(true);
        assert_eq!(readiness(), Ok(()));
        assert!(encode_metrics().contains("securecom_nats_link_up 1"));
        stopping();
        assert_eq!(readiness(), Err("shutting down"));
    }

    #[test]
    fn rekeys_are_counted_once() {
        let before = METRICS.rekeys.each_ref().map(Counter::get);
        let mut m = SessionMeter::default();
        m.rekeys((1, 0));
        m.rekeys((1, 0));
        m.rekeys((3, 2));
        let after = METRICS.rekeys.each_ref().map(Counter::get);
        assert_eq!(after[0] - before[0], 3);
        assert_eq!(after[1] - before[1], 2);
    }

    #[test]
    fn every_series_exists_from_the_start_with_fixed_labels() {
        let text = encode_metrics();
        for reason in LoginFailure::ALL.map(LoginFailure::label) {
            assert!(text.contains(&format!(
                "securecom_login_failures_total{{reason=\"{reason}\"}}"
            )));
        }
        for limit in Limit::ALL.map(Limit::label) {
            assert!(text.contains(&format!(
                "securecom_rate_limited_total{{limit=\"{limit}\"}}"
            )));
        }
        for outcome in RequestChannel::ALL.map(RequestChannel::label) {
            assert!(text.contains(&format!(
                "securecom_request_channels_total{{outcome=\"{outcome}\"}}"
            )));
        }
        for reason in DropReason::ALL.map(DropReason::label) {
            assert!(text.contains(&format!("securecom_drops_total{{reason=\"{reason}\"}}")));
        }
        assert!(text.contains("securecom_relayed_bytes_total{kind=\"data\"}"));
        assert!(text.contains("securecom_rekeys_total{channel=\"request\"}"));
    }
}
