//! A malicious server built from the project's own parts.
//!
//! Each client connection gets a real `securecom_core::ServerSession`, driven
//! over real TCP by threads here; the routing between sessions (the job of
//! the core's `Hub` or of the tokio server's tasks) is written here instead,
//! so that every decision a server takes can be perverted by a [`Policy`]:
//!
//! - relayed E2E messages can be changed, dropped, duplicated, held back,
//!   reordered, injected, or answered by the server itself ([`RelayHook`]);
//! - the keys the server hands out as the key directory (`ChatRequest.from_key`,
//!   `ChatStarted.peer_key`) can be replaced by keys of its own;
//! - everything it receives and everything it sends to daemons is recorded,
//!   for "did it learn the text?" checks and for replays.
//!
//! Otherwise it behaves as the reference server does, so the real clients
//! log in, list users, ask, accept and chat through it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use securecom_core::message::{ChatId, RefuseReason};
use securecom_core::server::{RelayKind, ServerEvent};
use securecom_core::{
    Limits, PublicKey, Registry, ServerConfig, ServerSession, StaticSecret, MAX_USERS_PER_MESSAGE,
};
use securecom_host::{now, os_rng, Rng};

/// What the server does with one relayed E2E message.
#[derive(Clone, Debug)]
pub enum Deliver {
    /// Send these bytes to the sender's chat peer.
    ToPeer(RelayKind, Vec<u8>),
    /// Send these bytes back to the sender, as if from its peer.
    ToSender(RelayKind, Vec<u8>),
}

/// One relayed E2E message as the server sees it.
#[derive(Clone, Debug)]
pub struct RelayCtx {
    /// Who sent it.
    pub from: String,
    /// Its chat peer.
    pub to: String,
    /// The chat.
    pub chat_id: ChatId,
    /// Handshake or data.
    pub kind: RelayKind,
    /// Its index among the messages of this kind from `from` in this chat.
    pub index: usize,
}

/// Decides what to deliver for each relayed message (honest: `[ToPeer(kind, bytes)]`).
pub type RelayHook = Box<dyn FnMut(&RelayCtx, &[u8]) -> Vec<Deliver> + Send>;

/// How the server misbehaves.
pub struct Policy {
    /// Called for every relayed E2E message.
    pub relay: Option<RelayHook>,
    /// Key sent to the requester as its peer's key in `ChatStarted`.
    pub key_to_requester: Option<PublicKey>,
    /// Key sent to the responder as the requester's key (`ChatRequest`, then `ChatStarted`).
    pub key_to_responder: Option<PublicKey>,
    /// Whether to dial the daemons clients announce (the honest thing to do).
    pub dial_daemons: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            relay: None,
            key_to_requester: None,
            key_to_responder: None,
            dial_daemons: true,
        }
    }
}

/// What the server saw and sent.
#[derive(Default)]
pub struct Record {
    /// Every relayed E2E message, as received (the server's plaintext view).
    pub relayed: Vec<(RelayCtx, Vec<u8>)>,
    /// Every byte received on standard channels.
    pub wire_in: Vec<u8>,
    /// Every byte sent on each request-channel connection, per user, in order.
    pub daemon_out: Vec<(String, Vec<u8>)>,
    /// Each user's daemon address, as announced.
    pub daemons: HashMap<String, SocketAddr>,
}

struct Users(HashMap<String, PublicKey>);

impl Registry for Users {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        self.0.get(user).copied()
    }
}

struct Conn {
    session: ServerSession,
    std: TcpStream,
    ip: IpAddr,
    req: Option<TcpStream>,
    /// Generation of the request channel (a new dial makes the old reader stop).
    req_gen: u64,
    /// Index in `Record::daemon_out` of the current request connection.
    req_record: Option<usize>,
}

struct Inner {
    key: StaticSecret,
    config: ServerConfig,
    users: Users,
    conns: HashMap<u64, Conn>,
    online: HashMap<String, u64>,
    next_chat: ChatId,
    next_id: u64,
    rng: Rng,
    policy: Policy,
    rec: Record,
    relay_counts: HashMap<(String, ChatId, bool), usize>,
    dials: Vec<(u64, u64, SocketAddr)>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running malicious server; stops its threads and closes every socket when dropped.
pub struct EvilServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its public key (the key its clients pin).
    pub key: PublicKey,
    inner: Shared,
    stop: Arc<AtomicBool>,
}

impl EvilServer {
    /// Starts on a free loopback port with `key`, the registered `users` and `policy`.
    pub fn start(key: StaticSecret, users: &[(&str, PublicKey)], policy: Policy) -> EvilServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let public = key.public_key();
        let inner = Arc::new(Mutex::new(Inner {
            key,
            config: ServerConfig {
                limits: Limits::DEFAULT,
                // The attacks here ask the same user again after a refusal
                // (the cool-down is tested in `abuse`).
                abuse: securecom_core::AbuseLimits {
                    refuse_cooldown: securecom_core::Duration::from_millis(0),
                    ..securecom_core::AbuseLimits::DEFAULT
                },
                ..ServerConfig::new(Limits::DEFAULT)
            },
            users: Users(users.iter().map(|(n, k)| (n.to_string(), *k)).collect()),
            conns: HashMap::new(),
            online: HashMap::new(),
            next_chat: 1,
            next_id: 1,
            rng: os_rng(),
            policy,
            rec: Record::default(),
            relay_counts: HashMap::new(),
            dials: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (inner2, stop2) = (inner.clone(), stop.clone());
        std::thread::spawn(move || accept_loop(listener, inner2, stop2));
        EvilServer {
            addr,
            key: public,
            inner,
            stop,
        }
    }

    /// Looks at (or changes) the record.
    pub fn record<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut lock(&self.inner).rec)
    }

    /// Changes the policy while running.
    pub fn policy<T>(&self, f: impl FnOnce(&mut Policy) -> T) -> T {
        f(&mut lock(&self.inner).policy)
    }

    /// Names of the users logged in.
    pub fn online(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.inner).online.keys().cloned().collect();
        v.sort();
        v
    }
}

impl Drop for EvilServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let inner = lock(&self.inner);
        for c in inner.conns.values() {
            let _ = c.std.shutdown(Shutdown::Both);
            if let Some(r) = &c.req {
                let _ = r.shutdown(Shutdown::Both);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, inner: Shared, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let Ok(reader) = stream.try_clone() else {
            continue;
        };
        let id = {
            let mut g = lock(&inner);
            let g = &mut *g;
            let Ok(session) = ServerSession::new(&g.config, &g.key, now(), &mut g.rng) else {
                continue;
            };
            let id = g.next_id;
            g.next_id += 1;
            g.conns.insert(
                id,
                Conn {
                    session,
                    std: stream,
                    ip: peer.ip(),
                    req: None,
                    req_gen: 0,
                    req_record: None,
                },
            );
            id
        };
        let inner = inner.clone();
        std::thread::spawn(move || std_reader(id, reader, inner));
    }
}

fn std_reader(id: u64, mut rd: TcpStream, shared: Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = rd.read(&mut buf).unwrap_or(0);
        let mut g = lock(&shared);
        let inner = &mut *g;
        let Some(conn) = inner.conns.get_mut(&id) else {
            return;
        };
        if n == 0 {
            conn.session.disconnected();
        } else {
            inner.rec.wire_in.extend_from_slice(&buf[..n]);
            let mut input = &buf[..n];
            while !input.is_empty() {
                let Some(conn) = inner.conns.get_mut(&id) else {
                    break;
                };
                if conn.session.is_closed() {
                    break;
                }
                let r = conn
                    .session
                    .handle_input(now(), input, &inner.users, &mut inner.rng);
                // One frame at a time: its events (and the relay payload,
                // valid until the next input) are routed before the next.
                inner.route();
                match r {
                    Ok(used) => input = &input[used..],
                    Err(_) => break,
                }
            }
        }
        after_input(&shared, inner);
        if n == 0 || !inner.conns.contains_key(&id) {
            return;
        }
    }
}

fn req_reader(id: u64, gen: u64, mut rd: TcpStream, shared: Shared) {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = rd.read(&mut buf).unwrap_or(0);
        let mut g = lock(&shared);
        let inner = &mut *g;
        let Some(conn) = inner.conns.get_mut(&id) else {
            return;
        };
        if conn.req_gen != gen || conn.req.is_none() {
            return;
        }
        let mut failed = n == 0;
        let mut input = &buf[..n];
        while !input.is_empty() && !failed {
            let Some(conn) = inner.conns.get_mut(&id) else {
                return;
            };
            match conn
                .session
                .handle_request_input(now(), input, &mut securecom_host::thread_rng())
            {
                Ok(used) => input = &input[used..],
                Err(_) => failed = true,
            }
            inner.route();
        }
        let Some(conn) = inner.conns.get_mut(&id) else {
            return;
        };
        if failed {
            if let Some(r) = conn.req.take() {
                let _ = r.shutdown(Shutdown::Both);
            }
            conn.session.request_channel_failed(now());
        }
        after_input(&shared, inner);
        if failed {
            return;
        }
    }
}

fn dial(id: u64, gen: u64, addr: SocketAddr, shared: Shared) {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    let mut g = lock(&shared);
    let inner = &mut *g;
    let Some(conn) = inner.conns.get_mut(&id) else {
        return;
    };
    if conn.req_gen != gen {
        return;
    }
    match stream {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
            match (
                conn.session
                    .request_channel_connected(now(), &mut inner.rng),
                s.try_clone(),
            ) {
                (Ok(()), Ok(reader)) => {
                    let user = conn
                        .session
                        .user()
                        .map(|u| u.to_string())
                        .unwrap_or_default();
                    inner.rec.daemon_out.push((user, Vec::new()));
                    conn.req_record = Some(inner.rec.daemon_out.len() - 1);
                    conn.req = Some(s);
                    let shared2 = shared.clone();
                    std::thread::spawn(move || req_reader(id, gen, reader, shared2));
                }
                _ => conn.session.request_channel_failed(now()),
            }
        }
        Err(_) => conn.session.request_channel_failed(now()),
    }
    after_input(&shared, inner);
}

/// Routes events, writes output, drops closed sessions, starts dials.
fn after_input(shared: &Shared, inner: &mut Inner) {
    inner.route();
    inner.flush_all();
    for (id, gen, addr) in std::mem::take(&mut inner.dials) {
        let shared = shared.clone();
        std::thread::spawn(move || dial(id, gen, addr, shared));
    }
}

impl Inner {
    fn route(&mut self) {
        loop {
            let mut busy = false;
            let ids: Vec<u64> = self.conns.keys().copied().collect();
            for id in ids {
                while let Some(ev) = self.conns.get_mut(&id).and_then(|c| c.session.poll_event()) {
                    busy = true;
                    self.route_one(id, ev);
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn session(&mut self, user: &str) -> Option<&mut ServerSession> {
        let id = *self.online.get(user)?;
        self.conns.get_mut(&id).map(|c| &mut c.session)
    }

    fn route_one(&mut self, id: u64, ev: ServerEvent) {
        let t = now();
        let me = self
            .conns
            .get(&id)
            .and_then(|c| c.session.identity().cloned());
        match ev {
            ServerEvent::LoggedIn { user, .. } => {
                if let Some(old) = self.online.insert(user.to_string(), id) {
                    if old != id {
                        if let Some(c) = self.conns.get_mut(&old) {
                            c.session.replaced(t);
                        }
                    }
                }
            }
            ServerEvent::LoginFailed { .. } => {}
            ServerEvent::Closed => {
                if let Some((user, _)) = &me {
                    if self.online.get(user.as_str()) == Some(&id) {
                        self.online.remove(user.as_str());
                    }
                }
            }
            // This server only dials (its clients announce listening daemons).
            ServerEvent::AwaitRequestChannel { .. } => {}
            ServerEvent::DialDaemon { port } => {
                let Some(conn) = self.conns.get_mut(&id) else {
                    return;
                };
                let addr = SocketAddr::new(conn.ip, port);
                if let Some(r) = conn.req.take() {
                    let _ = r.shutdown(Shutdown::Both);
                }
                conn.req_gen += 1;
                let gen = conn.req_gen;
                if let Some((user, _)) = &me {
                    self.rec.daemons.insert(user.to_string(), addr);
                }
                if self.policy.dial_daemons {
                    self.dials.push((id, gen, addr));
                }
            }
            ServerEvent::ListUsers => {
                let mut names: Vec<String> = self.online.keys().cloned().collect();
                names.sort();
                let chunks: Vec<&[String]> = if names.is_empty() {
                    vec![&[]]
                } else {
                    names.chunks(MAX_USERS_PER_MESSAGE).collect()
                };
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.iter().enumerate() {
                    let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    if let Some(c) = self.conns.get_mut(&id) {
                        let _ = c.session.send_users(t, &refs, i < last);
                    }
                    self.flush(id);
                }
            }
            ServerEvent::ChatRequest { to } => {
                let Some((me, my_key)) = me else { return };
                let from_key = self.policy.key_to_responder.unwrap_or(my_key);
                let outcome = if self.users.lookup(&to).is_none() {
                    Err(RefuseReason::UnknownUser)
                } else if self.online.contains_key(to.as_str()) {
                    let chat_id = self.next_chat;
                    self.next_chat += 1;
                    self.session(&to)
                        .map_or(Err(RefuseReason::Offline), |s| {
                            s.deliver_request(t, chat_id, &me, from_key)
                        })
                        .map(|()| chat_id)
                } else {
                    Err(RefuseReason::Offline)
                };
                if let Some(c) = self.conns.get_mut(&id) {
                    let _ = match outcome {
                        Ok(chat_id) => c.session.chat_pending(t, chat_id, &to),
                        Err(reason) => c.session.chat_refused(t, &to, reason),
                    };
                }
            }
            ServerEvent::Answered {
                chat_id,
                requester,
                result,
            } => {
                let Some((me, my_key)) = me else { return };
                let key = self.policy.key_to_requester.unwrap_or(my_key);
                let active = self
                    .session(&requester)
                    .is_some_and(|r| r.chat_answered(t, chat_id, &me, key, result));
                if result.is_ok() && !active {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.session.peer_left(t, chat_id);
                    }
                }
            }
            ServerEvent::Relay { to, chat_id, kind } => {
                let Some((from, _)) = me else { return };
                let Some(bytes) = self
                    .conns
                    .get(&id)
                    .map(|c| c.session.relay_payload().to_vec())
                else {
                    return;
                };
                let counter = self
                    .relay_counts
                    .entry((from.to_string(), chat_id, kind == RelayKind::Data))
                    .or_insert(0);
                let ctx = RelayCtx {
                    from: from.to_string(),
                    to: to.to_string(),
                    chat_id,
                    kind,
                    index: *counter,
                };
                *counter += 1;
                self.rec.relayed.push((ctx.clone(), bytes.clone()));
                let deliveries = match &mut self.policy.relay {
                    Some(hook) => hook(&ctx, &bytes),
                    None => vec![Deliver::ToPeer(kind, bytes)],
                };
                for d in deliveries {
                    match d {
                        Deliver::ToPeer(k, b) => {
                            if let Some(p) = self.session(&to) {
                                p.relay(t, chat_id, &from, k, &b);
                            }
                        }
                        Deliver::ToSender(k, b) => {
                            if let Some(c) = self.conns.get_mut(&id) {
                                c.session.relay(t, chat_id, &to, k, &b);
                            }
                        }
                    }
                    // Relayed messages may be more than a queue holds.
                    let ids: Vec<u64> = self.conns.keys().copied().collect();
                    for i in ids {
                        self.flush(i);
                    }
                }
            }
            ServerEvent::Left { peer, chat_id } => {
                if let Some(p) = self.session(&peer) {
                    p.peer_left(t, chat_id);
                }
            }
            ServerEvent::Withdrawn { peer, chat_id } => {
                if let Some(p) = self.session(&peer) {
                    p.cancel_request(t, chat_id);
                }
            }
        }
    }

    /// Writes one session's queued output to its sockets.
    fn flush(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut out = [0u8; 4096];
        loop {
            let n = conn.session.poll_transmit(&mut out);
            if n == 0 {
                break;
            }
            let _ = conn.std.write_all(&out[..n]);
        }
        loop {
            let n = conn.session.poll_request_transmit(&mut out);
            if n == 0 {
                break;
            }
            if let Some(r) = &mut conn.req {
                let _ = r.write_all(&out[..n]);
                if let Some(i) = conn.req_record {
                    self.rec.daemon_out[i].1.extend_from_slice(&out[..n]);
                }
            }
        }
    }

    fn flush_all(&mut self) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.flush(id);
            if self.conns.get(&id).is_some_and(|c| c.session.is_closed()) {
                if let Some(c) = self.conns.remove(&id) {
                    let _ = c.std.shutdown(Shutdown::Both);
                    if let Some(r) = c.req {
                        let _ = r.shutdown(Shutdown::Both);
                    }
                    if let Some((user, _)) = c.session.identity() {
                        if self.online.get(user.as_str()) == Some(&id) {
                            self.online.remove(user.as_str());
                        }
                    }
                }
            }
        }
    }
}
