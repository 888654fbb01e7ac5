//! The one load generator every system gets: logins with a fixed
//! concurrency; K pairs that send 256-byte messages, each stamped with its
//! send time, either as fast as a window of messages in flight lets them or
//! paced to an offered total rate; the receivers check the counts and take
//! the latencies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::sync::Notify;

use super::measure::{Mark, Span};
use super::systems::{self, Cred, Rx, Target, Tx};

/// Messages of the blast that one write carries at most (as main.rs's blast).
const BURST: usize = 16;
/// A receiver that sees nothing for this long fails the run.
const STALL: Duration = Duration::from_secs(15);
/// Digits of the send stamp at the start of each payload (µs since the phase's origin).
const STAMP: usize = 20;

/// Some users' credentials.
pub type Users<'a> = &'a [Arc<Cred>];

pub struct Logins {
    pub count: usize,
    pub span: Span,
    pub suite: Option<String>,
}

/// `count` logins, by all `users` at once, each logging in and out in turn.
pub async fn logins(t: &Target, users: &[Arc<Cred>], count: usize) -> Result<Logins> {
    let start = Mark::now(t.pid)?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, u) in users.iter().enumerate() {
        let per = count / users.len() + usize::from(i < count % users.len());
        let u = u.clone();
        let ep = t.ep;
        tasks.spawn(async move {
            let mut suite = None;
            for _ in 0..per {
                suite = systems::login(ep, &u).await?;
            }
            anyhow::Ok(suite)
        });
    }
    let mut suite = None;
    while let Some(r) = tasks.join_next().await {
        suite = r??;
    }
    let end = Mark::now(t.pid)?;
    Ok(Logins {
        count,
        span: Span::between(start, end),
        suite,
    })
}

#[derive(Clone, Copy)]
pub enum Pace {
    /// As fast as the window lets each sender.
    Max { window: usize },
    /// `total` messages a second over all pairs, at most `window` in flight per pair.
    Rate { total: f64, window: usize },
}

pub struct Phase {
    /// Messages sent (and received) after the warm-up.
    pub measured: usize,
    /// All messages sent (and received), warm-up included.
    pub total: usize,
    pub span: Span,
    /// Latencies (µs) of the measured messages, sorted.
    pub latencies: Vec<u64>,
}

impl Phase {
    pub fn rate(&self) -> f64 {
        self.measured as f64 / self.span.wall
    }

    pub fn server_us_per_message(&self) -> f64 {
        1e6 * self.span.server / self.measured as f64
    }

    pub fn percentile(&self, p: f64) -> u64 {
        let v = &self.latencies;
        if v.is_empty() {
            return 0;
        }
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    }
}

struct Shared {
    /// Messages received so far.
    got: AtomicUsize,
    /// Messages the sender sent in all, once it has stopped.
    sent: AtomicUsize,
    /// The receiver made progress (the sender waits on it for window room).
    progress: Notify,
    /// The sender stopped.
    done: Notify,
}

/// Opens `k` pairs (users `a[i]` to `b[i]`), then runs them for `warmup +
/// seconds`; the figures cover what is sent after the warm-up.
pub async fn phase(
    t: &Target,
    (a, b): (Users<'_>, Users<'_>),
    k: usize,
    pace: Pace,
    size: usize,
    warmup: Duration,
    seconds: Duration,
) -> Result<Phase> {
    let mut pairs = Vec::with_capacity(k);
    for i in 0..k {
        pairs.push(
            systems::open_pair(t.ep, &a[i], &b[i])
                .await
                .with_context(|| format!("{}: opening pair {i}", t.ep.kind.key()))?,
        );
    }
    // The servers settle (secureCom's chats are set up, TLS tickets sent).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let origin = Instant::now();
    let measure_from = origin + warmup;
    let stop = measure_from + seconds;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (i, (tx, rx)) in pairs.into_iter().enumerate() {
        let shared = Arc::new(Shared {
            got: AtomicUsize::new(0),
            sent: AtomicUsize::new(usize::MAX),
            progress: Notify::new(),
            done: Notify::new(),
        });
        // Paced senders start a fraction of an interval apart.
        let first = match pace {
            Pace::Max { .. } => origin,
            Pace::Rate { total, .. } => origin + Duration::from_secs_f64(i as f64 / total),
        };
        senders.push(tokio::task::spawn(sender(
            tx,
            shared.clone(),
            pace,
            k,
            size,
            origin,
            first,
            stop,
        )));
        receivers.push(tokio::task::spawn(receiver(
            rx,
            shared,
            size,
            origin,
            (measure_from - origin).as_micros() as u64,
        )));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let start = Mark::now(t.pid)?;
    let mut measured = 0;
    let mut total = 0;
    let mut latencies = Vec::new();
    let mut failure = None;
    for r in receivers {
        match r.await? {
            Ok((m, n, l)) => {
                measured += m;
                total += n;
                latencies.extend(l);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let end = Mark::now(t.pid)?;
    for s in senders {
        if failure.is_some() {
            s.abort();
        } else {
            s.await??;
        }
    }
    if let Some(e) = failure {
        return Err(e.context(format!("{}: relaying", t.ep.kind.key())));
    }
    if measured == 0 {
        bail!("{}: no message after the warm-up", t.ep.kind.key());
    }
    latencies.sort_unstable();
    Ok(Phase {
        measured,
        total,
        span: Span::between(start, end),
        latencies,
    })
}

/// Writes `us` as STAMP decimal digits at the start of `payload`.
fn stamp(payload: &mut [u8], mut us: u64) {
    for d in payload[..STAMP].iter_mut().rev() {
        *d = b'0' + (us % 10) as u8;
        us /= 10;
    }
}

fn read_stamp(payload: &[u8]) -> Result<u64> {
    let digits = payload.get(..STAMP).context("short message")?;
    let mut us = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            bail!("corrupt message stamp");
        }
        us = us * 10 + u64::from(d - b'0');
    }
    Ok(us)
}

#[allow(clippy::too_many_arguments)]
async fn sender(
    mut tx: Tx,
    shared: Arc<Shared>,
    pace: Pace,
    k: usize,
    size: usize,
    origin: Instant,
    first: Instant,
    stop: Instant,
) -> Result<()> {
    let mut payload = vec![b'x'; size];
    let mut sent = 0usize;
    let (window, interval) = match pace {
        Pace::Max { window } => (window, None),
        Pace::Rate { total, window } => (window, Some(Duration::from_secs_f64(k as f64 / total))),
    };
    let mut next = first;
    let result = async {
        loop {
            let now = Instant::now();
            if now >= stop || (interval.is_some() && next >= stop) {
                break;
            }
            // Room in the window.
            while sent - shared.got.load(Ordering::Acquire) >= window {
                tokio::select! {
                    _ = shared.progress.notified() => {}
                    _ = tokio::time::sleep(STALL) => bail!("no window room for {STALL:?}"),
                }
            }
            match interval {
                None => {
                    // A burst, in one write.
                    let room = window - (sent - shared.got.load(Ordering::Acquire));
                    for _ in 0..room.min(BURST) {
                        stamp(&mut payload, origin.elapsed().as_micros() as u64);
                        tx.queue(&payload)?;
                        sent += 1;
                    }
                    tx.flush().await?;
                }
                Some(i) => {
                    if Instant::now() < next {
                        tokio::time::sleep_until(next.into()).await;
                    }
                    // One message, one write, as a chat client sends.
                    stamp(&mut payload, origin.elapsed().as_micros() as u64);
                    tx.queue(&payload)?;
                    tx.flush().await?;
                    sent += 1;
                    next += i;
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    shared.sent.store(sent, Ordering::Release);
    shared.done.notify_one();
    result?;
    // Keep the connection until the receiver has everything (a secureCom
    // chat ends when either side goes).
    while shared.got.load(Ordering::Acquire) < sent {
        tokio::select! {
            _ = shared.progress.notified() => {}
            _ = tokio::time::sleep(STALL) => break,
        }
    }
    Ok(())
}

/// Receives until it has all the sender sent; returns (measured, all, latencies).
async fn receiver(
    mut rx: Rx,
    shared: Arc<Shared>,
    size: usize,
    origin: Instant,
    measure_from_us: u64,
) -> Result<(usize, usize, Vec<u64>)> {
    let mut got = 0usize;
    let mut measured = 0usize;
    let mut lat = Vec::new();
    loop {
        let sent = shared.sent.load(Ordering::Acquire);
        if got >= sent {
            if got > sent {
                bail!("received {got} messages, {sent} sent");
            }
            return Ok((measured, got, lat));
        }
        let n = tokio::select! {
            r = rx.read() => r?,
            _ = shared.done.notified() => continue,
            _ = tokio::time::sleep(STALL) => {
                let sent = shared.sent.load(Ordering::Acquire);
                let sent = if sent == usize::MAX { "still sending".to_string() } else { format!("{sent} sent") };
                bail!("nothing received for {STALL:?}: {got} messages received, {sent}");
            }
        };
        let now_us = origin.elapsed().as_micros() as u64;
        rx.process(n, &mut |m| {
            if m.len() != size {
                bail!("a message of {} bytes, not {size}", m.len());
            }
            let at = read_stamp(m)?;
            got += 1;
            if at >= measure_from_us {
                measured += 1;
                lat.push(now_us.saturating_sub(at));
            }
            Ok(())
        })
        .await?;
        shared.got.store(got, Ordering::Release);
        shared.progress.notify_one();
    }
}
