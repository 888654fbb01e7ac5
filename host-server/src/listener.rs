//! The accept loop: connection limits, per-source rate limits, the global
//! cap on handshakes in progress, signals and graceful shutdown.
//!
//! What an unauthenticated connection may cost, and what bounds it:
//!
//! - per source (an IPv4 address, or an IPv6 prefix, by default the /64 one
//!   customer network gets): a token bucket on new connections and a limit
//!   on handshakes in progress ([`Source`], [`RateLimiter`], [`HandshakeGate`]);
//! - in all: at most `--max-handshakes` handshakes in progress; when that is
//!   full, the oldest one is shed (closed) to admit the new one, so a flood
//!   of stalled handshakes cannot lock out a client that completes its own;
//! - late allocation: a connection holds only its socket, a gate entry and a
//!   small task until its first bytes arrive; the session (whose ephemeral
//!   key is generated at its creation) and the mailbox come after, and a
//!   connection that sends nothing within the handshake timeout is closed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::session::{self, Shared};
use crate::telemetry::{self, Limit};
use crate::RunArgs;

/// What the per-source limits count against: an IPv4 address, or the IPv6
/// prefix an address is in (one host or customer network typically owns a
/// whole /64, so per-address limits would not limit it at all). An
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener
/// reports for IPv4 clients) is the IPv4 address it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 prefix: the address with the bits past the prefix cleared,
    /// and the prefix length.
    V6(Ipv6Addr, u8),
}

impl Source {
    /// The source of a connection from `ip`, IPv6 addresses grouped by
    /// their first `v6_prefix` bits (0 to 128).
    pub fn of(ip: IpAddr, v6_prefix: u8) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            // Not `to_ipv4`, which would also take `::1` for 0.0.0.1.
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => {
                    let len = v6_prefix.min(128);
                    let mask = u128::MAX
                        .checked_shl(u32::from(128u8.saturating_sub(len)))
                        .unwrap_or(0);
                    Source::V6(Ipv6Addr::from(u128::from(a) & mask), len)
                }
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(a) => write!(f, "{a}"),
            Source::V6(a, len) => write!(f, "{a}/{len}"),
        }
    }
}

/// Token buckets kept at most (about 5 MB); see [`RateLimiter::prune`].
const MAX_BUCKETS: usize = 100_000;

/// A token bucket per source.
struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<Source, (f64, Instant)>,
    max_buckets: usize,
}

impl RateLimiter {
    fn new(rate: f64) -> Self {
        RateLimiter {
            rate,
            burst: (rate * 2.0).max(1.0),
            buckets: HashMap::new(),
            max_buckets: MAX_BUCKETS,
        }
    }

    fn allow(&mut self, src: Source, now: Instant) -> bool {
        if self.buckets.len() >= self.max_buckets && !self.buckets.contains_key(&src) {
            self.prune(now);
        }
        let (tokens, at) = self.buckets.entry(src).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Keeps the map bounded under a flood from many sources: forgets the
    /// full buckets (which hold no information), then, if that is not
    /// enough, the least recently used ones, down to three quarters of the
    /// bound, so that this linear pass runs at most once per quarter of the
    /// bound new sources. A forgotten source gets a full bucket again: the
    /// global cap on handshakes still bounds what it can do with it.
    fn prune(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, (tokens, at)| {
            *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
        });
        let keep = self.max_buckets.saturating_sub(self.max_buckets / 4);
        let excess = self.buckets.len().saturating_sub(keep);
        if excess == 0 {
            return;
        }
        let mut used: Vec<Instant> = self.buckets.values().map(|(_, at)| *at).collect();
        let (_, cut, _) = used.select_nth_unstable(excess.saturating_sub(1));
        let cut = *cut;
        self.buckets.retain(|_, (_, at)| *at > cut);
    }
}

/// How a handshake in progress is told that it was shed.
#[derive(Default)]
struct ShedSignal {
    shed: AtomicBool,
    notify: Notify,
}

#[derive(Default)]
struct GateState {
    /// Handshakes in progress by admission number: the first is the oldest.
    order: BTreeMap<u64, (Source, Arc<ShedSignal>)>,
    /// Handshakes in progress per source.
    counts: HashMap<Source, usize>,
    next: u64,
}

impl GateState {
    fn leave(&mut self, src: Source) {
        if let Some(n) = self.counts.get_mut(&src) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(&src);
            }
        }
    }
}

/// Handshakes in progress: at most `per_source` from one [`Source`] (more
/// are refused) and `max_total` in all (the oldest is shed for a new one).
/// A handshake is "in progress" from its connection's accept to its login
/// or its end. Both maps hold only handshakes in progress: bounded by
/// `max_total`.
pub struct HandshakeGate {
    state: Mutex<GateState>,
    max_total: usize,
    per_source: usize,
}

/// What [`HandshakeGate::enter`] did.
pub enum Admission {
    /// Admitted; the source of the oldest handshake if it was shed for this one.
    Admitted(HandshakeTicket, Option<Source>),
    /// Refused: this source has its `per_source` handshakes in progress.
    Refused,
}

impl HandshakeGate {
    /// A gate for `max_total` handshakes in all (at least 1), `per_source` from one source.
    pub fn new(max_total: usize, per_source: usize) -> Self {
        HandshakeGate {
            state: Mutex::new(GateState::default()),
            max_total: max_total.max(1),
            per_source,
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a handshake from `src`, shedding the oldest one if all
    /// `max_total` are taken.
    pub fn enter(self: &Arc<Self>, src: Source) -> Admission {
        let mut s = self.lock();
        if s.counts.get(&src).copied().unwrap_or(0) >= self.per_source {
            return Admission::Refused;
        }
        let mut shed = None;
        if s.order.len() >= self.max_total {
            if let Some((_, (victim, signal))) = s.order.pop_first() {
                s.leave(victim);
                signal.shed.store(true, Ordering::Release);
                // Stores a permit if its task is not waiting right now.
                signal.notify.notify_one();
                shed = Some(victim);
            }
        }
        let n = s.counts.entry(src).or_insert(0);
        *n = n.saturating_add(1);
        let seq = s.next;
        s.next = s.next.wrapping_add(1);
        let signal = Arc::new(ShedSignal::default());
        s.order.insert(seq, (src, signal.clone()));
        Admission::Admitted(
            HandshakeTicket {
                gate: self.clone(),
                entry: Some((seq, signal)),
            },
            shed,
        )
    }

    /// Handshakes in progress, in all.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().order.len()
    }
}

/// Held while a handshake is in progress.
pub struct HandshakeTicket {
    gate: Arc<HandshakeGate>,
    /// Admission number and shed signal; `None` once released.
    entry: Option<(u64, Arc<ShedSignal>)>,
}

impl HandshakeTicket {
    /// The handshake is over (logged in or failed): its slot is freed and
    /// it can no longer be shed. Idempotent.
    pub fn release(&mut self) {
        if let Some((seq, _)) = self.entry.take() {
            let mut s = self.gate.lock();
            // Absent if it was shed meanwhile: its slot is already free.
            if let Some((src, _)) = s.order.remove(&seq) {
                s.leave(src);
            }
        }
    }

    /// Completes when this handshake is shed for a newer one; never once
    /// released (a session that logged in is never shed, even if the shed
    /// raced with its login).
    pub async fn shed(&self) {
        let Some((_, signal)) = &self.entry else {
            return std::future::pending().await;
        };
        while !signal.shed.load(Ordering::Acquire) {
            signal.notify.notified().await;
        }
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        self.release();
    }
}

/// Waits for a new connection's first bytes, holding nothing else: true
/// when they are readable, false if the client closes, is shed, stays
/// silent for `limit` or the server stops first.
async fn first_bytes(
    stream: &TcpStream,
    peer: SocketAddr,
    ticket: &HandshakeTicket,
    stop: &mut watch::Receiver<bool>,
    limit: Duration,
) -> bool {
    if *stop.borrow_and_update() {
        return false;
    }
    let mut byte = [0u8; 1];
    tokio::select! {
        r = tokio::time::timeout(limit, stream.peek(&mut byte)) => match r {
            // 0: closed before sending anything.
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => false,
            Err(_) => {
                telemetry::login_failed(telemetry::LoginFailure::HandshakeTimeout);
                debug!(%peer, "nothing sent within the handshake timeout: closed");
                false
            }
        },
        _ = ticket.shed() => {
            debug!(%peer, "shed before sending anything");
            false
        }
        _ = stop.changed() => false,
    }
}

/// Counts events of one kind and says when to log them: at most once a
/// second, with how many happened since the last line (a flood sheds or
/// drops thousands a second, and a log line each would cost more than the
/// event, and fill the disk).
#[derive(Default)]
struct Throttled {
    count: u64,
    last: Option<Instant>,
}

impl Throttled {
    /// One more event at `now`: `Some(count)` when a line is due.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        self.count = self.count.saturating_add(1);
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Why a connection was dropped at accept.
#[derive(Clone, Copy)]
enum Dropped {
    Rate,
    Connections,
    Handshakes,
}

/// The log lines of the accept loop, each throttled.
#[derive(Default)]
struct AcceptLog {
    shed: Throttled,
    dropped: [Throttled; 3],
}

impl AcceptLog {
    fn shed(&mut self, victim: Source, cap: usize, now: Instant) {
        telemetry::handshake_shed();
        if let Some(shed) = self.shed.hit(now) {
            warn!(cap, shed, last = %victim, "handshakes in progress at their cap: shedding the oldest");
        }
    }

    fn dropped(&mut self, why: Dropped, src: Source, now: Instant) {
        telemetry::rate_limited(match why {
            Dropped::Rate => Limit::ConnectionRate,
            Dropped::Connections => Limit::Connections,
            Dropped::Handshakes => Limit::SourceHandshakes,
        });
        let Some(counter) = self.dropped.get_mut(why as usize) else {
            return;
        };
        if let Some(dropped) = counter.hit(now) {
            let text = match why {
                Dropped::Rate => "connection rate limit: dropped",
                Dropped::Connections => "connection limit reached: dropped",
                Dropped::Handshakes => "too many handshakes from this source: dropped",
            };
            warn!(dropped, last = %src, "{text}");
        }
    }
}

/// Accepts clients until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(
    shared: Arc<Shared>,
    args: RunArgs,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    info!(%addr, key = %shared.key.public_key().fingerprint(), crypto = %shared.crypto, "listening");
    telemetry::listening();
    ready(addr);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(args.max_connections));
    let gate = Arc::new(HandshakeGate::new(
        args.max_handshakes,
        args.handshakes_per_ip,
    ));
    let mut log = AcceptLog::default();
    let first_byte_timeout = Duration::from_secs(args.handshake_timeout);
    let mut limiter = RateLimiter::new(args.conn_rate_per_ip);
    let mut tasks = JoinSet::new();
    let next_id = AtomicU64::new(1);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let src = Source::of(peer.ip(), args.ipv6_source_prefix);
                let now = Instant::now();
                if !limiter.allow(src, now) {
                    log.dropped(Dropped::Rate, src, now);
                    continue;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    log.dropped(Dropped::Connections, src, now);
                    continue;
                };
                let ticket = match gate.enter(src) {
                    Admission::Admitted(ticket, shed) => {
                        if let Some(victim) = shed {
                            log.shed(victim, gate.max_total, now);
                        }
                        ticket
                    }
                    Admission::Refused => {
                        log.dropped(Dropped::Handshakes, src, now);
                        continue;
                    }
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let (shared, mut stop) = (shared.clone(), stop_rx.clone());
                tasks.spawn(async move {
                    let _connection = telemetry::connection();
                    // Late allocation: the session, its ephemeral key and its
                    // mailbox only once the client has sent something.
                    if first_bytes(&stream, peer, &ticket, &mut stop, first_byte_timeout).await {
                        session::run(shared, stream, peer, id, stop, ticket).await;
                    }
                    drop(permit);
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = sighup.recv() => match shared.registry.reload() {
                Ok(_) => info!(users = shared.registry.snapshot().len(), "registry reloaded"),
                Err(e) => warn!(error = format!("{e:#}"), "registry not reloaded"),
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    telemetry::stopping();
    info!(sessions = tasks.len(), "shutting down");
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(deadline);
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            _ = &mut deadline => {
                warn!(sessions = tasks.len(), "sessions did not finish in time");
                break;
            }
        }
    }
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn src(s: &str) -> Source {
        Source::of(ip(s), 64)
    }

    /// True if `t` was shed (its `shed()` is ready now).
    async fn is_shed(t: &HandshakeTicket) -> bool {
        tokio::select! {
            biased;
            _ = t.shed() => true,
            _ = std::future::ready(()) => false,
        }
    }

    fn admit(gate: &Arc<HandshakeGate>, s: &str) -> (HandshakeTicket, Option<Source>) {
        match gate.enter(src(s)) {
            Admission::Admitted(t, shed) => (t, shed),
            Admission::Refused => panic!("{s} refused"),
        }
    }

    #[test]
    fn ipv6_sources_are_keyed_by_their_prefix() {
        // One /64: one source, whatever the interface identifier.
        let a = src("2001:db8:1:2::1");
        assert_eq!(a, src("2001:db8:1:2:ffff:ffff:ffff:fffe"));
        assert_eq!(a, src("2001:db8:1:2:1234::9"));
        assert_eq!(a, Source::V6(ip_v6("2001:db8:1:2::"), 64));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        // The next /64 is another source.
        assert_ne!(a, src("2001:db8:1:3::1"));
        // The prefix length is configurable.
        let p48 = |s| Source::of(ip(s), 48);
        assert_eq!(p48("2001:db8:1:2::1"), p48("2001:db8:1:ffff::1"));
        assert_ne!(p48("2001:db8:1::1"), p48("2001:db8:2::1"));
        let exact = |s| Source::of(ip(s), 128);
        assert_ne!(exact("2001:db8::1"), exact("2001:db8::2"));
        assert_eq!(exact("2001:db8::1").to_string(), "2001:db8::1/128");
        // 0: all of IPv6 is one source; over 128 is taken as 128.
        assert_eq!(Source::of(ip("::1"), 0), Source::of(ip("fd00::2"), 0));
        assert_eq!(Source::of(ip("2001:db8::1"), 200), exact("2001:db8::1"));
        // Loopback is IPv6, not the IPv4-compatible 0.0.0.1.
        assert_eq!(src("::1"), Source::V6(ip_v6("::"), 64));
    }

    fn ip_v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_and_ipv4_mapped_sources_are_single_addresses() {
        let a = src("192.0.2.1");
        assert_eq!(a, Source::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_ne!(a, src("192.0.2.2"));
        // What a dual-stack listener reports for an IPv4 client: the same
        // source as the IPv4 address, and not one /64 for all of IPv4.
        assert_eq!(src("::ffff:192.0.2.1"), a);
        assert_ne!(src("::ffff:127.0.0.2"), src("::ffff:127.0.0.3"));
        assert_eq!(Source::of(ip("::ffff:10.0.0.1"), 0), src("10.0.0.1"));
        assert_eq!(a.to_string(), "192.0.2.1");
    }

    #[tokio::test]
    async fn the_oldest_handshake_is_shed_first() {
        let gate = Arc::new(HandshakeGate::new(3, 16));
        let (a, s) = admit(&gate, "192.0.2.1");
        assert_eq!(s, None);
        let (b, _) = admit(&gate, "192.0.2.2");
        let (mut c, _) = admit(&gate, "2001:db8::1");
        assert_eq!(gate.len(), 3);
        for t in [&a, &b, &c] {
            assert!(!is_shed(t).await);
        }
        // Full: d sheds a (the oldest), then e sheds b.
        let (d, s) = admit(&gate, "192.0.2.4");
        assert_eq!(s, Some(src("192.0.2.1")));
        assert!(is_shed(&a).await);
        assert!(!is_shed(&b).await);
        let (e, s) = admit(&gate, "192.0.2.5");
        assert_eq!(s, Some(src("192.0.2.2")));
        assert!(is_shed(&b).await);
        assert_eq!(gate.len(), 3);
        // A handshake that ends frees its slot: no shedding for the next one.
        c.release();
        let (f, s) = admit(&gate, "192.0.2.6");
        assert_eq!(s, None);
        // Then d (now the oldest), then e, then f.
        let (_g, s) = admit(&gate, "192.0.2.7");
        assert_eq!(s, Some(src("192.0.2.4")));
        assert!(is_shed(&d).await && !is_shed(&e).await && !is_shed(&f).await);
        let (_h, s) = admit(&gate, "192.0.2.8");
        assert_eq!(s, Some(src("192.0.2.5")));
        let (_i, s) = admit(&gate, "192.0.2.9");
        assert_eq!(s, Some(src("192.0.2.6")));
        assert!(is_shed(&f).await);
        // Dropping the shed tickets changes nothing.
        drop((a, b, d, e, f));
        assert_eq!(gate.len(), 3);
    }

    #[tokio::test]
    async fn a_released_handshake_is_never_shed() {
        let gate = Arc::new(HandshakeGate::new(1, 16));
        // Logged in, then a new handshake: no one to shed.
        let (mut a, _) = admit(&gate, "192.0.2.1");
        a.release();
        let (mut b, s) = admit(&gate, "192.0.2.2");
        assert_eq!(s, None);
        assert!(!is_shed(&a).await);
        // The shed raced with the login: the login wins, the slot stays free.
        let (_c, s) = admit(&gate, "192.0.2.3");
        assert_eq!(s, Some(src("192.0.2.2")));
        b.release();
        assert!(!is_shed(&b).await);
        assert_eq!(gate.len(), 1);
    }

    #[tokio::test]
    async fn a_waiting_handshake_is_woken_when_shed() {
        let gate = Arc::new(HandshakeGate::new(1, 16));
        let (a, _) = admit(&gate, "192.0.2.1");
        let waiter = tokio::spawn(async move { a.shed().await });
        tokio::task::yield_now().await;
        let (_b, _) = admit(&gate, "192.0.2.2");
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn handshakes_per_source_count_the_whole_prefix() {
        let gate = Arc::new(HandshakeGate::new(100, 2));
        let (mut a, _) = admit(&gate, "2001:db8:0:7::1");
        let (_b, _) = admit(&gate, "2001:db8:0:7::2");
        // A third address in the same /64 is refused, not the next /64.
        assert!(matches!(
            gate.enter(src("2001:db8:0:7:abcd::3")),
            Admission::Refused
        ));
        let (_c, _) = admit(&gate, "2001:db8:0:8::1");
        a.release();
        let (_d, _) = admit(&gate, "2001:db8:0:7::3");
        // Shedding frees the shed handshake's per-source count too.
        let gate = Arc::new(HandshakeGate::new(2, 2));
        let (_a1, _) = admit(&gate, "192.0.2.1");
        let (_a2, _) = admit(&gate, "192.0.2.1");
        assert!(matches!(gate.enter(src("192.0.2.1")), Admission::Refused));
        let (_b1, s) = admit(&gate, "192.0.2.2");
        assert_eq!(s, Some(src("192.0.2.1")));
        let (_a3, s) = admit(&gate, "192.0.2.1");
        assert_eq!(s, Some(src("192.0.2.1")));
        // a1 and a2 shed, a3 in progress: one from A, one from B.
        assert_eq!(gate.lock().counts.get(&src("192.0.2.1")), Some(&1));
        assert_eq!(gate.lock().counts.get(&src("192.0.2.2")), Some(&1));
        assert_eq!(gate.len(), 2);
    }

    #[test]
    fn the_rate_limit_counts_the_whole_prefix() {
        let mut l = RateLimiter::new(1.0);
        let now = Instant::now();
        assert!(l.allow(src("2001:db8::1"), now));
        assert!(l.allow(src("2001:db8::2"), now));
        // Burst (2) used by the /64, whatever the address.
        assert!(!l.allow(src("2001:db8::3:4:5"), now));
        assert!(l.allow(src("2001:db8:0:1::1"), now));
        assert!(l.allow(src("::ffff:192.0.2.1"), now));
        assert!(l.allow(src("192.0.2.1"), now));
        assert!(!l.allow(src("192.0.2.1"), now));
        assert!(l.allow(src("2001:db8::9"), now + Duration::from_secs(1)));
    }

    #[test]
    fn the_buckets_stay_bounded() {
        let mut l = RateLimiter::new(1.0);
        l.max_buckets = 100;
        let start = Instant::now();
        // Many sources, each with a bucket that is not full (no forgetting
        // full buckets): the least recently used go.
        for i in 0..10_000u32 {
            let now = start + Duration::from_micros(u64::from(i));
            assert!(l.allow(Source::V4(Ipv4Addr::from(i)), now));
            assert!(l.buckets.len() <= 100);
        }
        // The most recent ones are still limited.
        let now = start + Duration::from_micros(10_000);
        let last = Source::V4(Ipv4Addr::from(9_999u32));
        assert!(l.allow(last, now));
        assert!(!l.allow(last, now));
        // Full buckets are forgotten first.
        let later = now + Duration::from_secs(60);
        assert!(l.allow(Source::V4(Ipv4Addr::from(20_000u32)), later));
        assert!(l.buckets.len() <= 2);
    }
}
