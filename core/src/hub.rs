//! Presence and routing with a fixed capacity: a whole server, sans-IO.
//!
//! [`Hub`] owns up to `N` [`ServerSession`]s and routes every
//! [`ServerEvent`] between them. It is the reference for the routing rules
//! (the tokio server applies the same rules across tasks) and what the
//! in-memory tests and small devices use.

use heapless::Deque;
use rand_core::{CryptoRng, RngCore};

use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::{Error, ProtocolError};
use crate::keys::StaticSecret;
use crate::limits::{MAX_FRAME, MAX_USERS_PER_MESSAGE};
use crate::message::{ChatId, RefuseReason, UserName};
use crate::noise::RequestTicket;
use crate::server::{Registry, RelayBytes, ServerConfig, ServerEvent, ServerSession};
use crate::time::Instant;

/// Index of a session in the hub.
pub type SessionId = usize;

struct Slot<P: CryptoProvider> {
    session: ServerSession<P>,
    /// Next slot index to list for a pending `ListUsers`.
    listing_from: Option<usize>,
    /// The ticket of the client-dialled request channel this session awaits.
    ticket: Option<RequestTicket>,
}

/// Chat ids kept ready: more than one input can request.
const FRESH_IDS: usize = 4;

/// A fixed-capacity server core, on the crypto provider `P` (see [`crate::crypto`]).
pub struct Hub<const N: usize, P: CryptoProvider = RustCrypto> {
    config: ServerConfig,
    key: StaticSecret,
    slots: [Option<Slot<P>>; N],
    /// Fresh random chat ids, drawn from the caller's RNG with each input
    /// (ids are unlinkable: a user learns nothing from the ones it sees).
    fresh_ids: heapless::Vec<ChatId, FRESH_IDS>,
    dials: Deque<(SessionId, u16), N>,
}

impl<const N: usize, P: CryptoProvider> Hub<N, P> {
    /// An empty hub with the server's static key.
    pub fn new(config: ServerConfig, key: StaticSecret) -> Self {
        Hub {
            config,
            key,
            slots: [const { None }; N],
            fresh_ids: heapless::Vec::new(),
            dials: Deque::new(),
        }
    }

    /// A client connected; `Err(QueueFull)` when all `N` slots are taken.
    pub fn accept<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Result<SessionId, Error> {
        let (id, free) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| slot.is_none())
            .ok_or(ProtocolError::QueueFull)?;
        let session = ServerSession::new(&self.config, &self.key, now, rng)?;
        *free = Some(Slot {
            session,
            listing_from: None,
            ticket: None,
        });
        Ok(id)
    }

    /// The session in slot `id`.
    pub fn session(&self, id: SessionId) -> Option<&ServerSession<P>> {
        self.slots.get(id)?.as_ref().map(|s| &s.session)
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut ServerSession<P>> {
        self.slots.get_mut(id)?.as_mut().map(|s| &mut s.session)
    }

    /// Number of logged-in users.
    pub fn online(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.session.user().is_some())
            .count()
    }

    fn find(&self, user: &str) -> Option<SessionId> {
        self.slots.iter().position(|s| {
            s.as_ref().is_some_and(|s| {
                !s.session.is_closed() && s.session.user().is_some_and(|u| u == user)
            })
        })
    }

    /// Bytes from client `id`'s standard channel.
    pub fn handle_input<R: RngCore + CryptoRng, G: Registry + ?Sized>(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        registry: &G,
        rng: &mut R,
    ) -> Result<usize, Error> {
        let s = self.session_mut(id).ok_or(ProtocolError::Closed)?;
        let r = s.handle_input(now, input, registry, rng);
        while !self.fresh_ids.is_full() {
            let id = rng.next_u32();
            if id != 0 {
                let _ = self.fresh_ids.push(id);
            }
        }
        self.route(now, registry);
        r
    }

    /// Bytes for client `id`'s standard channel (continues a user listing).
    pub fn poll_transmit(&mut self, id: SessionId, now: Instant, out: &mut [u8]) -> usize {
        self.continue_listing(id, now);
        self.session_mut(id).map_or(0, |s| s.poll_transmit(out))
    }

    /// Bytes for client `id`'s request channel.
    pub fn poll_request_transmit(&mut self, id: SessionId, out: &mut [u8]) -> usize {
        self.session_mut(id)
            .map_or(0, |s| s.poll_request_transmit(out))
    }

    /// A connection opened by a client for its request channel presented
    /// `ticket` (the payload of its first frame, see
    /// [`RequestTicket::from_hello_payload`]): the session that awaits it
    /// starts its handshake on that connection; feed it as a dialled one.
    /// `None`: no session awaits that ticket (close the connection). A
    /// ticket is good for one connection.
    pub fn request_channel_by_ticket<R: RngCore + CryptoRng>(
        &mut self,
        ticket: &RequestTicket,
        now: Instant,
        rng: &mut R,
    ) -> Option<SessionId> {
        let id = self.slots.iter().position(|s| {
            s.as_ref()
                .and_then(|s| s.ticket.as_ref())
                .is_some_and(|t| t == ticket)
        })?;
        let slot = self.slots.get_mut(id)?.as_mut()?;
        slot.ticket = None;
        match slot.session.request_channel_connected(now, rng) {
            Ok(()) => Some(id),
            Err(_) => {
                slot.session.request_channel_failed(now);
                None
            }
        }
    }

    /// Next daemon the driver must dial: `(session, port)`.
    pub fn poll_dial(&mut self) -> Option<(SessionId, u16)> {
        self.dials.pop_front()
    }

    /// The dial for `id` succeeded.
    pub fn request_channel_connected<R: RngCore + CryptoRng>(
        &mut self,
        id: SessionId,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        self.session_mut(id)
            .ok_or(ProtocolError::Closed)?
            .request_channel_connected(now, rng)
    }

    /// The dial failed or the request connection broke.
    pub fn request_channel_failed<G: Registry + ?Sized>(
        &mut self,
        id: SessionId,
        now: Instant,
        registry: &G,
    ) {
        if let Some(s) = self.session_mut(id) {
            s.request_channel_failed(now);
        }
        self.route(now, registry);
    }

    /// Bytes from client `id`'s request channel.
    pub fn handle_request_input<R: RngCore + CryptoRng, G: Registry + ?Sized>(
        &mut self,
        id: SessionId,
        now: Instant,
        input: &[u8],
        registry: &G,
        rng: &mut R,
    ) -> Result<usize, Error> {
        let s = self.session_mut(id).ok_or(ProtocolError::Closed)?;
        let r = s.handle_request_input(now, input, rng);
        self.route(now, registry);
        r
    }

    /// Client `id`'s socket closed.
    pub fn disconnected<G: Registry + ?Sized>(
        &mut self,
        id: SessionId,
        now: Instant,
        registry: &G,
    ) {
        if let Some(s) = self.session_mut(id) {
            s.disconnected();
        }
        self.route(now, registry);
    }

    /// Frees slot `id` (after its last bytes were written).
    pub fn remove<G: Registry + ?Sized>(&mut self, id: SessionId, now: Instant, registry: &G) {
        self.disconnected(id, now, registry);
        if let Some(slot) = self.slots.get_mut(id) {
            *slot = None;
        }
    }

    /// Earliest deadline of all sessions.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|s| s.session.poll_timeout())
            .min()
    }

    /// Runs every session's deadlines (and its re-keys: `rng`).
    pub fn handle_timeout<R: RngCore + CryptoRng, G: Registry + ?Sized>(
        &mut self,
        now: Instant,
        registry: &G,
        rng: &mut R,
    ) {
        for s in self.slots.iter_mut().flatten() {
            s.session.handle_timeout(now, rng);
        }
        self.route(now, registry);
    }

    /// Tells every client the server stops.
    pub fn shutdown<G: Registry + ?Sized>(&mut self, now: Instant, registry: &G) {
        for s in self.slots.iter_mut().flatten() {
            s.session.shutdown(now);
        }
        self.route(now, registry);
    }

    fn continue_listing(&mut self, id: SessionId, now: Instant) {
        while let Some(from) = self
            .slots
            .get(id)
            .and_then(|s| s.as_ref())
            .and_then(|s| s.listing_from)
        {
            let Some(slot) = self.slots.get(id).and_then(Option::as_ref) else {
                return;
            };
            if slot.session.is_closed() || slot.session.output_room() < MAX_FRAME {
                return;
            }
            let mut names = heapless::Vec::<UserName, MAX_USERS_PER_MESSAGE>::new();
            let mut rest = self.slots.get(from..).unwrap_or_default().iter();
            while !names.is_full() {
                let Some(slot) = rest.next() else { break };
                if let Some(u) = slot.as_ref().and_then(|s| s.session.user()) {
                    let _ = names.push(u.clone());
                }
            }
            // `rest` is a suffix of the slots: `next` is the index it starts at.
            let next = N.saturating_sub(rest.len());
            let more = rest.any(|s| s.as_ref().is_some_and(|s| s.session.user().is_some()));
            let refs: heapless::Vec<&str, MAX_USERS_PER_MESSAGE> =
                names.iter().map(|s| s.as_str()).collect();
            let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) else {
                return;
            };
            slot.listing_from = if more { Some(next) } else { None };
            if slot.session.send_users(now, &refs, more).is_err() {
                slot.listing_from = None;
            }
        }
    }

    /// Routes events until every session is quiet.
    fn route<G: Registry + ?Sized>(&mut self, now: Instant, registry: &G) {
        let mut busy = true;
        while busy {
            busy = false;
            for id in 0..N {
                while let Some(event) = self.session_mut(id).and_then(ServerSession::poll_event) {
                    busy = true;
                    self.route_one(id, now, event, registry);
                }
            }
        }
    }

    fn route_one<G: Registry + ?Sized>(
        &mut self,
        id: SessionId,
        now: Instant,
        event: ServerEvent,
        registry: &G,
    ) {
        match event {
            ServerEvent::LoggedIn { user, .. } => {
                let older = self.slots.iter().enumerate().position(|(i, s)| {
                    i != id
                        && s.as_ref().is_some_and(|s| {
                            !s.session.is_closed() && s.session.user() == Some(&user)
                        })
                });
                if let Some(old) = older {
                    if let Some(s) = self.session_mut(old) {
                        s.replaced(now);
                    }
                }
            }
            ServerEvent::LoginFailed { .. } | ServerEvent::Closed => {}
            ServerEvent::DialDaemon { port } => {
                if let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) {
                    slot.ticket = None;
                }
                let _ = self.dials.push_back((id, port));
            }
            ServerEvent::AwaitRequestChannel { ticket } => {
                if let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) {
                    slot.ticket = Some(ticket);
                }
            }
            ServerEvent::ListUsers => {
                if let Some(slot) = self.slots.get_mut(id).and_then(Option::as_mut) {
                    slot.listing_from = Some(0);
                }
                self.continue_listing(id, now);
            }
            ServerEvent::ChatRequest { to } => {
                let Some(me) = self.session(id) else { return };
                let (Some(my_name), Some(my_key)) = (me.user().cloned(), me.user_key()) else {
                    return;
                };
                let outcome = if registry.lookup(&to).is_none() {
                    Err(RefuseReason::UnknownUser)
                } else if let (Some(target), Some(chat_id)) = (self.find(&to), self.fresh_ids.pop())
                {
                    self.session_mut(target)
                        .map_or(Err(RefuseReason::Offline), |t| {
                            t.deliver_request(now, chat_id, &my_name, my_key)
                        })
                        .map(|()| chat_id)
                } else {
                    Err(RefuseReason::Offline)
                };
                if let Some(me) = self.session_mut(id) {
                    let _ = match outcome {
                        Ok(chat_id) => me.chat_pending(now, chat_id, &to),
                        Err(reason) => me.chat_refused(now, &to, reason),
                    };
                }
            }
            ServerEvent::Answered {
                chat_id,
                requester,
                result,
            } => {
                let Some((my_name, my_key)) = self.session(id).and_then(|s| s.identity().cloned())
                else {
                    return;
                };
                let active = self
                    .find(&requester)
                    .and_then(|r| self.session_mut(r))
                    .is_some_and(|r| r.chat_answered(now, chat_id, &my_name, my_key, result));
                if result.is_ok() && !active {
                    if let Some(me) = self.session_mut(id) {
                        me.peer_left(now, chat_id);
                    }
                }
            }
            ServerEvent::Relay { to, chat_id, kind } => {
                let Some((from, noise)) = self.session(id).and_then(|s| {
                    Some((
                        s.identity()?.0.clone(),
                        RelayBytes::from_slice(s.relay_payload()).ok()?,
                    ))
                }) else {
                    return;
                };
                if let Some(peer) = self.find(&to).and_then(|p| self.session_mut(p)) {
                    peer.relay(now, chat_id, &from, kind, &noise);
                }
            }
            ServerEvent::Left { peer, chat_id } => {
                if let Some(p) = self.find(&peer).and_then(|p| self.session_mut(p)) {
                    p.peer_left(now, chat_id);
                }
            }
            ServerEvent::Withdrawn { peer, chat_id } => {
                if let Some(p) = self.find(&peer).and_then(|p| self.session_mut(p)) {
                    p.cancel_request(now, chat_id);
                }
            }
        }
    }
}
