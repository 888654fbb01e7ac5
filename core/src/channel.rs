//! One secure, framed connection: a hybrid handshake, then transport messages.
//!
//! [`Channel`] is the building block of every role: it owns the frame
//! accumulator for input, a fixed queue of encrypted frames for output, the
//! Noise state, and the timers. Roles decide what the messages mean.
//!
//! The handshake is protocol 3's hybrid (`docs/PROTOCOL.md` 4.3-4.5): the
//! role's classical Noise handshake (its messages and payloads are the
//! role's), then the post-quantum layer over it ([`crate::pq::PqLayer`]:
//! two messages with empty payloads, which the channel writes and reads by
//! itself). The channel is open ([`Incoming::Handshake`] with `finished`)
//! once both are done; its transport keys are the layer's, and the channel
//! renews them in place ([`crate::rekey`]): the handshake's initiator
//! starts a re-key from [`Channel::maybe_rekey`] when they are due, and the
//! channel answers and completes it by itself inside [`Channel::read`].

use rand_core::{CryptoRng, RngCore};
use serde::Serialize;
use zeroize::Zeroize;

use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::{CryptoError, Error, FrameError, ProtocolError};
use crate::frame::{Feed, FrameDecoder};
use crate::keys::PublicKey;
use crate::limits::{
    Limits, FRAME_HEADER, MAX_FRAME, MAX_NOISE_MESSAGE, MAX_PLAINTEXT, MAX_REQUEST_FRAME,
};
use crate::message::{encode, Bounded};
use crate::noise::{Handshake, Transport};
use crate::pq::{LayerSeed, PqLayer};
use crate::rekey::{is_rekey_message, Keys};
use crate::time::Instant;

/// Capacity of a channel's output queue: two whole frames.
pub const TX_CAPACITY: usize = 2 * MAX_FRAME;

/// Capacity of the request channel's output queue: two whole frames.
pub const REQUEST_TX_CAPACITY: usize = 2 * MAX_REQUEST_FRAME;

/// A buffer of `T` bytes of frames waiting to be written to the socket.
#[derive(Clone)]
pub struct TxQueue<const T: usize> {
    buf: [u8; T],
    len: usize,
}

impl<const T: usize> TxQueue<T> {
    const fn new() -> Self {
        TxQueue {
            buf: [0; T],
            len: 0,
        }
    }

    /// Appends one frame whose Noise message `write` produces, leaving at
    /// least `reserve` bytes of the queue free; all or nothing.
    fn push_with(
        &mut self,
        reserve: usize,
        write: impl FnOnce(&mut [u8]) -> Result<usize, Error>,
    ) -> Result<(), Error> {
        const FULL: Error = Error::Protocol(ProtocolError::QueueFull);
        let usable = T.checked_sub(reserve).ok_or(FULL)?;
        let free = self.buf.get_mut(self.len..usable).ok_or(FULL)?;
        let (header, body) = free.split_first_chunk_mut::<FRAME_HEADER>().ok_or(FULL)?;
        let room = body.len().min(MAX_NOISE_MESSAGE);
        if room == 0 {
            return Err(FULL);
        }
        let body = body.get_mut(..room).ok_or(FULL)?;
        let n = write(body).map_err(|e| match e {
            Error::Crypto(CryptoError::BufferTooSmall) => FULL,
            e => e,
        })?;
        // `n <= room <= MAX_NOISE_MESSAGE`: it fits the u16 header and the queue.
        let len = u16::try_from(n).map_err(|_| FULL)?;
        let end = n
            .checked_add(FRAME_HEADER)
            .and_then(|frame| frame.checked_add(self.len))
            .ok_or(FULL)?;
        *header = len.to_be_bytes();
        self.len = end;
        Ok(())
    }

    /// Moves as many queued bytes as fit into `out`; returns how many.
    pub fn drain(&mut self, out: &mut [u8]) -> usize {
        let Some(queued) = self.buf.get_mut(..self.len) else {
            return 0;
        };
        let n = queued.len().min(out.len());
        let (Some(dst), Some(src)) = (out.get_mut(..n), queued.get(..n)) else {
            return 0;
        };
        dst.copy_from_slice(src);
        // `n <= queued.len()`: the rest moves to the front.
        queued.copy_within(n.., 0);
        self.len = queued.len().saturating_sub(n);
        n
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

enum Phase<P: CryptoProvider> {
    /// The classical handshake, and the randomness of the layer after it.
    Handshake(Handshake<P>, LayerSeed),
    /// The post-quantum layer, over the classical handshake's transport.
    PostQuantum(Transport<P>, PqLayer<P>),
    /// Open: the session's keys, renewed in place.
    Transport(Keys<P>),
    Closed,
}

/// What one call to [`Channel::read`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The input ran out before a frame was complete, or the frame was
    /// the channel's own (a re-key message, handled and answered).
    Nothing,
    /// A handshake message arrived; its payload is `scratch[..len]` (the
    /// post-quantum layer's messages have empty payloads).
    Handshake {
        /// Payload length.
        len: usize,
        /// True if the whole handshake, the post-quantum layer included, is
        /// now finished (transport keys are ready).
        finished: bool,
    },
    /// A transport message arrived; its plaintext is `scratch[..len]`.
    Message {
        /// Plaintext length.
        len: usize,
    },
}

/// Scratch space for one decrypted message.
pub type Scratch = [u8; MAX_NOISE_MESSAGE];

/// `scratch[..len]`: the payload or plaintext that [`Channel::read`] left there.
pub(crate) fn received(scratch: &Scratch, len: usize) -> Result<&[u8], Error> {
    scratch
        .get(..len)
        .ok_or(Error::Crypto(CryptoError::BufferTooSmall))
}

/// A framed Noise connection with timers, with a receive buffer of `R`
/// bytes (the largest frame it accepts) and an output queue of `T` bytes.
///
/// `P` is the crypto provider (see [`crate::crypto`]).
pub struct Channel<
    const R: usize = MAX_FRAME,
    const T: usize = TX_CAPACITY,
    P: CryptoProvider = RustCrypto,
> {
    phase: Phase<P>,
    rx: FrameDecoder<R>,
    tx: TxQueue<T>,
    limits: Limits,
    /// Initiator of the handshake (and so of re-keys).
    initiator: bool,
    /// Re-keys completed by keys this channel has dropped (at its close).
    past_rekeys: u32,
    /// Re-keys the peer began (its step 1 read here), for the peer's rate.
    rekeys_begun: u32,
    created: Instant,
    last_rx: Instant,
    last_tx: Instant,
}

/// The standard channel: frames up to [`MAX_FRAME`].
pub type StandardChannel<P = RustCrypto> = Channel<MAX_FRAME, TX_CAPACITY, P>;

/// The request channel: frames up to [`MAX_REQUEST_FRAME`].
pub type RequestChannel<P = RustCrypto> = Channel<MAX_REQUEST_FRAME, REQUEST_TX_CAPACITY, P>;

impl<const R: usize, const Q: usize, P: CryptoProvider> Channel<R, Q, P> {
    /// A channel whose handshake starts now: `hs`, then the post-quantum
    /// layer, whose randomness is drawn from `rng` now.
    pub fn new<G: RngCore + CryptoRng>(
        hs: Handshake<P>,
        limits: Limits,
        now: Instant,
        rng: &mut G,
    ) -> Result<Self, Error> {
        let initiator = hs.is_initiator();
        let seed = LayerSeed::undrawn(initiator);
        let mut channel = Channel {
            phase: Phase::Handshake(hs, seed),
            rx: FrameDecoder::new(),
            tx: TxQueue::new(),
            limits,
            initiator,
            past_rekeys: 0,
            rekeys_begun: 0,
            created: now,
            last_rx: now,
            last_tx: now,
        };
        channel.draw_layer_seed(rng)?;
        Ok(channel)
    }

    /// Draws the layer's randomness where it stays (for an initiator, its
    /// ML-KEM key pair, made here at the channel's creation: the shallowest
    /// point of a device's call stack there is for it).
    fn draw_layer_seed<G: RngCore + CryptoRng>(&mut self, rng: &mut G) -> Result<(), Error> {
        if let Phase::Handshake(_, seed) = &mut self.phase {
            seed.fill::<P, G>(rng)?;
        }
        Ok(())
    }

    /// A closed channel, made without a handshake (a stand-in to
    /// [`Self::restart`] in place).
    pub const fn closed(limits: Limits) -> Self {
        Channel {
            phase: Phase::Closed,
            rx: FrameDecoder::new(),
            tx: TxQueue::new(),
            limits,
            initiator: false,
            past_rekeys: 0,
            rekeys_begun: 0,
            created: Instant::ZERO,
            last_rx: Instant::ZERO,
            last_tx: Instant::ZERO,
        }
    }

    /// Starts this channel again, in place, as [`Self::new`] would make it
    /// (nothing of the 1.5 KB buffers moves: the device builds its client
    /// in its static this way).
    pub fn restart<G: RngCore + CryptoRng>(
        &mut self,
        hs: Handshake<P>,
        limits: Limits,
        now: Instant,
        rng: &mut G,
    ) -> Result<(), Error> {
        let initiator = hs.is_initiator();
        self.initiator = initiator;
        self.past_rekeys = 0;
        self.rekeys_begun = 0;
        self.phase = Phase::Handshake(hs, LayerSeed::undrawn(initiator));
        if let Err(e) = self.draw_layer_seed(rng) {
            self.phase = Phase::Closed;
            return Err(e);
        }
        self.rx.clear();
        self.rx.set_limit(R);
        self.tx.len = 0;
        self.limits = limits;
        self.created = now;
        self.last_rx = now;
        self.last_tx = now;
        Ok(())
    }

    /// Lowers the largest frame this channel accepts (header included).
    pub fn set_max_frame(&mut self, max: usize) {
        self.rx.set_limit(max);
    }

    /// True once the handshake is over and the channel is open.
    pub fn is_transport(&self) -> bool {
        matches!(self.phase, Phase::Transport(_))
    }

    /// True after [`Self::close`] or a fatal error.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The session's keys, once open.
    pub fn transport(&self) -> Option<&Keys<P>> {
        match &self.phase {
            Phase::Transport(t) => Some(t),
            _ => None,
        }
    }

    /// The classical handshake, while it runs.
    pub fn handshake(&self) -> Option<&Handshake<P>> {
        match &self.phase {
            Phase::Handshake(h, _) => Some(h),
            _ => None,
        }
    }

    /// True while the handshake (classical or post-quantum) runs.
    pub fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshake(..) | Phase::PostQuantum(..))
    }

    /// The peer's static key, once the classical handshake has proved it.
    pub fn remote_static(&self) -> Option<PublicKey> {
        match &self.phase {
            Phase::Handshake(h, _) => h.remote_static(),
            Phase::PostQuantum(t, _) => t.remote_static(),
            Phase::Transport(k) => k.remote_static(),
            Phase::Closed => None,
        }
    }

    /// Drops all keys; nothing more is read or sent (queued frames stay queued).
    pub fn close(&mut self) {
        self.past_rekeys = self.rekeys();
        self.phase = Phase::Closed;
        self.rx.clear();
    }

    fn fail<T>(&mut self, e: impl Into<Error>) -> Result<T, Error> {
        self.close();
        Err(e.into())
    }

    /// Feeds socket bytes; stops after at most one complete frame.
    ///
    /// Returns how many bytes of `input` were used and what arrived (the
    /// payload or plaintext is in `scratch`). Any error is fatal: the keys are
    /// dropped and the caller closes the connection.
    ///
    /// A re-key message is handled here (`rng` gives a responder's
    /// randomness for it): the role sees [`Incoming::Nothing`], and the
    /// answer, if one is due, is queued by the next [`Self::poll_transmit`].
    pub fn read<G: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        input: &[u8],
        scratch: &mut Scratch,
        rng: &mut G,
    ) -> Result<(usize, Incoming), Error> {
        if self.is_closed() {
            return Err(ProtocolError::Closed.into());
        }
        let consumed = match self.rx.feed(input) {
            Ok(Feed::NeedMore) => return Ok((input.len(), Incoming::Nothing)),
            Ok(Feed::Frame { consumed }) => consumed,
            Err(e) => return self.fail(e),
        };
        self.last_rx = now;
        let Some(frame) = self.rx.frame_mut() else {
            return self.fail(FrameError::BadLength);
        };
        let result = match &mut self.phase {
            Phase::Handshake(hs, _) => {
                hs.read_message(frame, scratch)
                    .map(|len| Incoming::Handshake {
                        len,
                        finished: false,
                    })
            }
            // The layer's payloads are empty: anything else is a peer of
            // another protocol (or a broken one).
            Phase::PostQuantum(outer, layer) => match layer.read_message(frame, outer, scratch) {
                Ok(0) => Ok(Incoming::Handshake {
                    len: 0,
                    finished: false,
                }),
                Ok(_) => Err(CryptoError::WrongState),
                Err(e) => Err(e),
            },
            Phase::Transport(k) => k
                .decrypt(frame, scratch)
                .map(|len| Incoming::Message { len }),
            Phase::Closed => Err(CryptoError::WrongState),
        };
        self.rx.clear();
        if let (Ok(Incoming::Message { len }), Phase::Transport(keys)) = (&result, &mut self.phase)
        {
            let plain = scratch.get_mut(..*len).unwrap_or_default();
            if is_rekey_message(plain) {
                if !keys.is_rekeying() {
                    self.rekeys_begun = self.rekeys_begun.wrapping_add(1);
                }
                let limits = self.limits;
                // Our answer, if one is due, is written by the next
                // `poll_transmit`: not here, under the caller's frames and
                // the message just read (an encapsulation is the device's
                // deepest stack).
                let r = keys.read_rekey(plain, now, &limits, rng);
                return match r {
                    Ok(()) => Ok((consumed, Incoming::Nothing)),
                    Err(e) => self.fail(e),
                };
            }
        }
        match result {
            Ok(Incoming::Handshake { len, .. }) => match self.advance(now) {
                Ok(finished) => Ok((consumed, Incoming::Handshake { len, finished })),
                Err(e) => self.fail(e),
            },
            Ok(incoming) => Ok((consumed, incoming)),
            Err(e) => self.fail(e),
        }
    }

    /// After a handshake message in or out: a finished classical handshake
    /// gives way to the post-quantum layer, whose messages the channel
    /// writes when it is its turn, and a finished layer to the transport.
    /// Returns true when the channel is open.
    fn advance(&mut self, now: Instant) -> Result<bool, Error> {
        if matches!(&self.phase, Phase::Handshake(hs, _) if hs.is_finished()) {
            self.start_layer(now)?;
        }
        if let Phase::PostQuantum(outer, layer) = &mut self.phase {
            if layer.is_write_turn() {
                self.tx
                    .push_with(0, |out| Ok(layer.write_message(&[], outer, out)?))?;
                self.last_tx = now;
            }
        }
        if matches!(&self.phase, Phase::PostQuantum(_, layer) if layer.is_finished()) {
            self.finish_layer(now)?;
        }
        Ok(self.is_transport())
    }

    /// The classical handshake gives way to the layer. Not inlined (nor
    /// [`Self::finish_layer`]): the phases they move (9 KB of frame) are
    /// gone before the layer's encapsulation in [`Self::advance`].
    #[inline(never)]
    fn start_layer(&mut self, now: Instant) -> Result<(), Error> {
        let Phase::Handshake(hs, seed) = core::mem::replace(&mut self.phase, Phase::Closed) else {
            return Err(CryptoError::WrongState.into());
        };
        let outer = hs.into_transport(&self.limits, now)?;
        let layer = PqLayer::from_seed(&outer, seed);
        self.phase = Phase::PostQuantum(outer, layer);
        Ok(())
    }

    #[inline(never)]
    fn finish_layer(&mut self, now: Instant) -> Result<(), Error> {
        let Phase::PostQuantum(outer, layer) = core::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return Err(CryptoError::WrongState.into());
        };
        let transport = layer.into_transport(outer, &self.limits, now)?;
        self.phase = Phase::Transport(Keys::new(transport, self.initiator));
        Ok(())
    }

    /// Queues our next handshake message with `payload`.
    pub fn send_handshake(&mut self, now: Instant, payload: &[u8]) -> Result<(), Error> {
        let Phase::Handshake(hs, _) = &mut self.phase else {
            return Err(CryptoError::WrongState.into());
        };
        // Written straight into the output queue: no message-sized buffer
        // stays on the stack under the layer's key generation below.
        if let Err(e) = self
            .tx
            .push_with(0, |out| Ok(hs.write_message(payload, out)?))
        {
            return self.fail(e);
        }
        self.last_tx = now;
        if let Err(e) = self.advance(now) {
            return self.fail(e);
        }
        Ok(())
    }

    /// Sends `msg` under the classical handshake's keys, before the
    /// post-quantum layer is done, and closes: how a server refuses a
    /// client of another protocol version, which knows no layer
    /// (`docs/PROTOCOL.md` 12).
    pub fn send_outer_and_close<T: Serialize + Bounded>(
        &mut self,
        now: Instant,
        msg: &T,
    ) -> Result<(), Error> {
        let Phase::PostQuantum(outer, _) = &mut self.phase else {
            return Err(CryptoError::WrongState.into());
        };
        let mut plain = [0u8; MAX_PLAINTEXT];
        let result = encode(msg, &mut plain).map_err(Error::from).and_then(|n| {
            let body = plain.get(..n).ok_or(CryptoError::BufferTooSmall)?;
            self.tx.push_with(0, |out| Ok(outer.encrypt(body, out)?))
        });
        plain.as_mut_slice().zeroize();
        self.last_tx = now;
        self.close();
        result
    }

    /// Encodes, encrypts and queues one message.
    pub fn send<T: Serialize + Bounded>(&mut self, now: Instant, msg: &T) -> Result<(), Error> {
        self.send_leaving(now, msg, 0)
    }

    /// Like [`Self::send`], but fails with `QueueFull` unless `reserve` bytes
    /// of the output queue stay free afterwards (room kept for messages that
    /// must not be lost).
    pub fn send_leaving<T: Serialize + Bounded>(
        &mut self,
        now: Instant,
        msg: &T,
        reserve: usize,
    ) -> Result<(), Error> {
        let Phase::Transport(keys) = &mut self.phase else {
            return Err(ProtocolError::Closed.into());
        };
        let mut plain = [0u8; MAX_PLAINTEXT];
        let n = encode(msg, &mut plain)?;
        let result = match plain.get(..n) {
            Some(body) => self
                .tx
                .push_with(reserve, |out| Ok(keys.encrypt(body, out)?)),
            None => Err(CryptoError::BufferTooSmall.into()),
        };
        plain.as_mut_slice().zeroize();
        if let Err(Error::Crypto(CryptoError::MessageLimit)) = result {
            return self.fail(ProtocolError::SessionExpired);
        }
        result?;
        self.last_tx = now;
        Ok(())
    }

    /// Moves queued output into `out`; returns how many bytes to write.
    ///
    /// Our next re-key message, if one is due (an answer to the peer's,
    /// or one that did not fit the queue before), is queued first, as soon
    /// as there is room (a failure to write it closes the channel, as any
    /// failed message does).
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> usize {
        if self.flush_rekey(self.last_rx.max(self.last_tx)).is_err() {
            self.close();
        }
        self.tx.drain(out)
    }

    /// Queues our next re-key message, if one is due and there is room for
    /// it (if not, [`Self::poll_transmit`] queues it once there is).
    fn flush_rekey(&mut self, now: Instant) -> Result<(), Error> {
        let Phase::Transport(keys) = &mut self.phase else {
            return Ok(());
        };
        if keys.pending_rekey().is_none() {
            return Ok(());
        }
        let limits = self.limits;
        // A re-key message can wait for room (the next `poll_transmit`
        // queues it); the roles' must-arrive messages (a `Bye`, a
        // `PeerLeft`) cannot: it leaves them their reserve.
        let r = self.tx.push_with(crate::server::CONTROL_RESERVE, |out| {
            keys.write_rekey(now, &limits, out)?
                .ok_or(Error::Crypto(CryptoError::BufferTooSmall))
        });
        match r {
            Ok(()) => {
                self.last_tx = now;
                Ok(())
            }
            Err(Error::Protocol(ProtocolError::QueueFull)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts a re-key when ours are due (we initiated the handshake, and
    /// the keys are [`Limits::rekey_after`] old or have carried
    /// [`Limits::rekey_after_messages`]); the roles call it from their
    /// `handle_timeout`. An error is fatal, as for [`Self::read`].
    pub fn maybe_rekey<G: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut G,
    ) -> Result<(), Error> {
        let Phase::Transport(keys) = &mut self.phase else {
            return Ok(());
        };
        if !keys.rekey_due(now, &self.limits) {
            return Ok(());
        }
        match keys.start(now, rng).and_then(|()| self.flush_rekey(now)) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.tx.len()
    }

    /// Free room in the output queue, in bytes.
    pub fn output_room(&self) -> usize {
        Q.saturating_sub(self.tx.len())
    }

    /// When [`Self::check_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Handshake(..) | Phase::PostQuantum(..) => {
                Some(self.created.add(self.limits.handshake_timeout))
            }
            Phase::Transport(keys) => {
                let idle = self.last_rx.add(self.limits.idle_timeout);
                let age = self.created.add(self.limits.max_session_age);
                Some(idle.min(age).min(keys.deadline(&self.limits)))
            }
            Phase::Closed => None,
        }
    }

    /// Errors if a deadline has passed (the caller then closes the channel).
    pub fn check_timeout(&self, now: Instant) -> Result<(), ProtocolError> {
        match &self.phase {
            Phase::Handshake(..) | Phase::PostQuantum(..)
                if now >= self.created.add(self.limits.handshake_timeout) =>
            {
                Err(ProtocolError::HandshakeTimeout)
            }
            Phase::Transport(_) if now >= self.created.add(self.limits.max_session_age) => {
                Err(ProtocolError::SessionExpired)
            }
            Phase::Transport(_) if now >= self.last_rx.add(self.limits.idle_timeout) => {
                Err(ProtocolError::IdleTimeout)
            }
            Phase::Transport(keys) => keys.check(now, &self.limits),
            _ => Ok(()),
        }
    }

    /// While open: when the keys' next re-key is due, the running one must
    /// be over, or the peer's is overdue (see [`Keys::deadline`]); part of
    /// [`Self::poll_timeout`], for roles with timers of their own.
    pub fn rekey_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Transport(keys) => Some(keys.deadline(&self.limits)),
            _ => None,
        }
    }

    /// Errors when a re-key ran out of time or the peer's is overdue; part
    /// of [`Self::check_timeout`].
    pub fn check_rekey(&self, now: Instant) -> Result<(), ProtocolError> {
        match &self.phase {
            Phase::Transport(keys) => keys.check(now, &self.limits),
            _ => Ok(()),
        }
    }

    /// How many re-keys the peer has begun on this channel (wrapping): a
    /// role that bounds its peer's pace compares it before and after a
    /// read.
    pub fn rekeys_begun(&self) -> u32 {
        self.rekeys_begun
    }

    /// How many re-keys this channel has completed (closed or not).
    pub fn rekeys(&self) -> u32 {
        match &self.phase {
            Phase::Transport(keys) => self.past_rekeys.saturating_add(keys.rekeys()),
            _ => self.past_rekeys,
        }
    }

    /// When we last queued something (for keep-alives).
    pub fn last_tx(&self) -> Instant {
        self.last_tx
    }

    /// When a frame last arrived (for idle checks).
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// The limits of this channel.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}
