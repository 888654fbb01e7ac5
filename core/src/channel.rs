//! One secure, framed connection: a Noise handshake, then transport messages.
//!
//! [`Channel`] is the building block of every role: it owns the frame
//! accumulator for input, a fixed queue of encrypted frames for output, the
//! Noise state, and the timers. Roles decide what the messages mean.

use serde::Serialize;
use zeroize::Zeroize;

use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::{CryptoError, Error, FrameError, ProtocolError};
use crate::frame::{encode_frame, Feed, FrameDecoder};
use crate::limits::{
    Limits, FRAME_HEADER, MAX_FRAME, MAX_NOISE_MESSAGE, MAX_PLAINTEXT, MAX_REQUEST_FRAME,
};
use crate::message::{encode, Bounded};
use crate::noise::{Handshake, Transport};
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

    /// Appends a whole frame.
    fn push_frame(&mut self, payload: &[u8]) -> Result<(), Error> {
        const FULL: Error = Error::Protocol(ProtocolError::QueueFull);
        let free = self.buf.get_mut(self.len..).ok_or(FULL)?;
        let n = encode_frame(payload, free).map_err(|e| match e {
            FrameError::BufferTooSmall => FULL,
            e => e.into(),
        })?;
        self.len = self.len.checked_add(n).ok_or(FULL)?;
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
    Handshake(Handshake<P>),
    Transport(Transport<P>),
    Closed,
}

/// What one call to [`Channel::read`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The input ran out before a frame was complete.
    Nothing,
    /// A handshake message arrived; its payload is `scratch[..len]`.
    Handshake {
        /// Payload length.
        len: usize,
        /// True if the handshake is now finished (transport keys are ready).
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
    created: Instant,
    last_rx: Instant,
    last_tx: Instant,
}

/// The standard channel: frames up to [`MAX_FRAME`].
pub type StandardChannel<P = RustCrypto> = Channel<MAX_FRAME, TX_CAPACITY, P>;

/// The request channel: frames up to [`MAX_REQUEST_FRAME`].
pub type RequestChannel<P = RustCrypto> = Channel<MAX_REQUEST_FRAME, REQUEST_TX_CAPACITY, P>;

impl<const R: usize, const Q: usize, P: CryptoProvider> Channel<R, Q, P> {
    /// A channel whose handshake starts now.
    pub fn new(hs: Handshake<P>, limits: Limits, now: Instant) -> Self {
        Channel {
            phase: Phase::Handshake(hs),
            rx: FrameDecoder::new(),
            tx: TxQueue::new(),
            limits,
            created: now,
            last_rx: now,
            last_tx: now,
        }
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

    /// The transport state, once open.
    pub fn transport(&self) -> Option<&Transport<P>> {
        match &self.phase {
            Phase::Transport(t) => Some(t),
            _ => None,
        }
    }

    /// The handshake, while it runs.
    pub fn handshake(&self) -> Option<&Handshake<P>> {
        match &self.phase {
            Phase::Handshake(h) => Some(h),
            _ => None,
        }
    }

    /// Drops all keys; nothing more is read or sent (queued frames stay queued).
    pub fn close(&mut self) {
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
    pub fn read(
        &mut self,
        now: Instant,
        input: &[u8],
        scratch: &mut Scratch,
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
        let Some(frame) = self.rx.frame() else {
            return self.fail(FrameError::BadLength);
        };
        let result = match &mut self.phase {
            Phase::Handshake(hs) => {
                hs.read_message(frame, scratch)
                    .map(|len| Incoming::Handshake {
                        len,
                        finished: hs.is_finished(),
                    })
            }
            Phase::Transport(t) => t
                .decrypt(frame, scratch)
                .map(|len| Incoming::Message { len }),
            Phase::Closed => Err(CryptoError::WrongState),
        };
        self.rx.clear();
        match result {
            Ok(incoming) => {
                if let Incoming::Handshake { finished: true, .. } = incoming {
                    self.finish_handshake(now)?;
                }
                Ok((consumed, incoming))
            }
            Err(e) => self.fail(e),
        }
    }

    fn finish_handshake(&mut self, now: Instant) -> Result<(), Error> {
        match core::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Handshake(hs) => {
                let t = hs.into_transport(&self.limits, now)?;
                self.phase = Phase::Transport(t);
                Ok(())
            }
            _ => Err(CryptoError::WrongState.into()),
        }
    }

    /// Queues our next handshake message with `payload`.
    pub fn send_handshake(&mut self, now: Instant, payload: &[u8]) -> Result<(), Error> {
        let Phase::Handshake(hs) = &mut self.phase else {
            return Err(CryptoError::WrongState.into());
        };
        let mut wire = [0u8; MAX_NOISE_MESSAGE];
        let n = match hs.write_message(payload, &mut wire) {
            Ok(n) => n,
            Err(e) => return self.fail(e),
        };
        let finished = hs.is_finished();
        let message = wire.get(..n).ok_or(CryptoError::BufferTooSmall)?;
        self.tx.push_frame(message)?;
        self.last_tx = now;
        if finished {
            self.finish_handshake(now)?;
        }
        Ok(())
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
        let Phase::Transport(t) = &mut self.phase else {
            return Err(ProtocolError::Closed.into());
        };
        let mut plain = [0u8; MAX_PLAINTEXT];
        let n = encode(msg, &mut plain)?;
        let result = match plain.get(..n) {
            Some(body) => self.tx.push_with(reserve, |out| Ok(t.encrypt(body, out)?)),
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
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> usize {
        self.tx.drain(out)
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
            Phase::Handshake(_) => Some(self.created.add(self.limits.handshake_timeout)),
            Phase::Transport(t) => {
                let idle = self.last_rx.add(self.limits.idle_timeout);
                let age = t.started().add(self.limits.max_session_age);
                Some(idle.min(age))
            }
            Phase::Closed => None,
        }
    }

    /// Errors if a deadline has passed (the caller then closes the channel).
    pub fn check_timeout(&self, now: Instant) -> Result<(), ProtocolError> {
        match &self.phase {
            Phase::Handshake(_) if now >= self.created.add(self.limits.handshake_timeout) => {
                Err(ProtocolError::HandshakeTimeout)
            }
            Phase::Transport(t) if now >= t.started().add(self.limits.max_session_age) => {
                Err(ProtocolError::SessionExpired)
            }
            Phase::Transport(_) if now >= self.last_rx.add(self.limits.idle_timeout) => {
                Err(ProtocolError::IdleTimeout)
            }
            _ => Ok(()),
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
