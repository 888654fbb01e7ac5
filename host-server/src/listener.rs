//! The accept loop: connection limits, per-source rate limits, signals and
//! graceful shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::session::{self, Shared};
use crate::RunArgs;

/// A token bucket per source address.
struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    fn new(rate: f64) -> Self {
        RateLimiter {
            rate,
            burst: (rate * 2.0).max(1.0),
            buckets: HashMap::new(),
        }
    }

    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.len() > 100_000 {
            // Forget full buckets so that the map stays bounded under a flood of sources.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts handshakes in progress per source address.
#[derive(Default)]
pub struct HandshakeGate {
    counts: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

impl HandshakeGate {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<HandshakeTicket> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        // `*n < max`: cannot saturate.
        *n = n.saturating_add(1);
        Some(HandshakeTicket {
            gate: self.clone(),
            ip: Some(ip),
        })
    }
}

/// Held while a handshake from one address is in progress.
pub struct HandshakeTicket {
    gate: Arc<HandshakeGate>,
    ip: Option<IpAddr>,
}

impl HandshakeTicket {
    /// The handshake is over (logged in or failed).
    pub fn release(&mut self) {
        if let Some(ip) = self.ip.take() {
            let mut c = self.gate.counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = c.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.remove(&ip);
                }
            }
        }
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        self.release();
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
    info!(%addr, key = %shared.key.public_key().fingerprint(), "listening");
    ready(addr);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(args.max_connections));
    let gate = Arc::new(HandshakeGate::default());
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
                if !limiter.allow(peer.ip(), Instant::now()) {
                    warn!(%peer, "connection rate limit: dropped");
                    continue;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    warn!(%peer, "connection limit reached: dropped");
                    continue;
                };
                let Some(ticket) = gate.enter(peer.ip(), args.handshakes_per_ip) else {
                    warn!(%peer, "too many handshakes from this address: dropped");
                    continue;
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let (shared, stop) = (shared.clone(), stop_rx.clone());
                tasks.spawn(async move {
                    session::run(shared, stream, peer, id, stop, ticket).await;
                    drop(permit);
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = sighup.recv() => match shared.registry.reload() {
                Ok(()) => info!(users = shared.registry.snapshot().len(), "registry reloaded"),
                Err(e) => warn!(error = %e, "registry not reloaded"),
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
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
