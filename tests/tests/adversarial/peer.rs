//! An in-process client: the core's `Client` over a blocking socket, for
//! attackers that must speak the protocol (spammers, raw frames after a real
//! login) and for measuring login latency without process start-up noise.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use securecom_core::{
    Client, ClientConfig, ClientEvent, Error, Limits, PublicKey, StaticSecret, UserName,
};
use securecom_host::{now, os_rng, Rng};

use super::net::connect_from;

/// A logged-in (or logging-in) in-process client.
pub struct CorePeer {
    /// The protocol state.
    pub client: Client,
    /// The standard channel's socket.
    pub stream: TcpStream,
    rng: Rng,
    /// Events not yet taken.
    pub events: VecDeque<ClientEvent>,
    buf: Vec<u8>,
}

impl CorePeer {
    /// Connects from `source` (default 127.0.0.1) and sends XX message 1.
    pub fn connect(
        server: SocketAddr,
        source: Option<IpAddr>,
        server_key: PublicKey,
        name: &str,
        secret: &StaticSecret,
        daemon_port: Option<u16>,
    ) -> Result<CorePeer, String> {
        let from = source.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let stream = connect_from(from, server, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        let mut rng = os_rng();
        let config = ClientConfig {
            user: UserName::try_from(name).map_err(|_| "bad name".to_string())?,
            server_key,
            daemon_port,
            limits: Limits::DEFAULT,
        };
        let client =
            Client::new(config, secret.clone(), now(), &mut rng).map_err(|e| e.to_string())?;
        let mut p = CorePeer {
            client,
            stream,
            rng,
            events: VecDeque::new(),
            buf: vec![0; 16 * 1024],
        };
        p.flush().map_err(|e| format!("write: {e}"))?;
        Ok(p)
    }

    /// Connects and waits for `LoggedIn`; returns the peer and the time the login took.
    pub fn login(
        server: SocketAddr,
        source: Option<IpAddr>,
        server_key: PublicKey,
        name: &str,
        secret: &StaticSecret,
        daemon_port: Option<u16>,
        limit: Duration,
    ) -> Result<(CorePeer, Duration), String> {
        let t = Instant::now();
        let mut p = Self::connect(server, source, server_key, name, secret, daemon_port)?;
        p.wait_for("logged in", limit, |e| {
            matches!(e, ClientEvent::LoggedIn { .. })
        })?;
        Ok((p, t.elapsed()))
    }

    /// Writes everything the core queued.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let mut out = [0u8; 4096];
        loop {
            let n = self.client.poll_transmit(&mut out);
            if n == 0 {
                return Ok(());
            }
            self.stream.write_all(&out[..n])?;
        }
    }

    /// Reads once (waiting at most `limit`) and feeds the core.
    /// `Ok(false)`: nothing arrived in time. `Err`: the connection is over.
    pub fn pump(&mut self, limit: Duration) -> Result<bool, String> {
        let _ = self
            .stream
            .set_read_timeout(Some(limit.max(Duration::from_millis(1))));
        let n = match self.stream.read(&mut self.buf) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(false)
            }
            Err(e) => return Err(format!("read: {e}")),
        };
        let mut at = 0;
        while at < n {
            let r = self
                .client
                .handle_input(now(), &self.buf[at..n], &mut self.rng);
            while let Some(e) = self.client.poll_event() {
                self.events.push_back(e);
            }
            match r {
                Ok(used) => at += used,
                Err(e) => {
                    let _ = self.flush();
                    return Err(format!("protocol: {e}"));
                }
            }
        }
        self.flush().map_err(|e| format!("write: {e}"))?;
        Ok(true)
    }

    /// Takes the first queued event satisfying `pred`, reading up to `limit`.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> Result<ClientEvent, String> {
        let end = Instant::now() + limit;
        loop {
            if let Some(i) = self.events.iter().position(&pred) {
                return Ok(self.events.remove(i).expect("event"));
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return Err(format!("no {what} within {limit:?}"));
            };
            self.pump(left)
                .map_err(|e| format!("waiting for {what}: {e}"))?;
        }
    }

    /// Runs a core command, then writes what it queued.
    pub fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Client, securecom_core::Instant) -> Result<T, Error>,
    ) -> Result<T, String> {
        let r = f(&mut self.client, now()).map_err(|e| e.to_string());
        while let Some(e) = self.client.poll_event() {
            self.events.push_back(e);
        }
        self.flush().map_err(|e| format!("write: {e}"))?;
        r
    }

    /// Logs out and waits for the server's `Bye`.
    pub fn logout(mut self, limit: Duration) -> Result<(), String> {
        self.call(|c, t| c.logout(t))?;
        self.wait_for("bye", limit, |e| matches!(e, ClientEvent::Closed(_)))
            .map(|_| ())
    }
}

/// One timed login (and logout) of `name` from 127.0.0.1.
pub fn timed_login(
    server: SocketAddr,
    server_key: PublicKey,
    name: &str,
    secret: &StaticSecret,
) -> Result<Duration, String> {
    let (p, took) = CorePeer::login(
        server,
        None,
        server_key,
        name,
        secret,
        None,
        Duration::from_secs(60),
    )?;
    // Generous: under a flood the server answers late, but it must answer.
    p.logout(Duration::from_secs(60))?;
    Ok(took)
}
