//! A running session's keys, renewed in place (`docs/PROTOCOL.md` 4.10).
//!
//! [`Keys`] holds a session's [`Transport`] and runs [`Rekey`] over it:
//! the handshake's initiator starts a re-key when its keys are
//! [`Limits::rekey_after`] old or have carried
//! [`Limits::rekey_after_messages`] messages either way; five messages,
//! each an ordinary transport message of the running session whose
//! plaintext starts with [`REKEY_MARKER`] and a step number:
//!
//! ```text
//! 1  initiator -> responder   NNpsk0 message 1 (psk = the session's re-keying secret)
//! 2  responder -> initiator   NNpsk0 message 2
//! 3  initiator -> responder   post-quantum layer message 1 (ML-KEM-768 key)
//! 4  responder -> initiator   post-quantum layer message 2 (ciphertext); the
//!                             responder sends with the new keys from here on
//! 5  initiator -> responder   empty: the initiator sends with the new keys from
//!                             here on, and the responder receives with them
//! ```
//!
//! Each direction switches at one point of its own ordered stream (message
//! 4 one way, 5 the other, as TLS 1.3's `KeyUpdate` does), so the role
//! messages around a re-key travel on: nothing waits for it, and nobody
//! notices. The old keys are dropped (and wiped) at the switch; the new
//! session keeps the old one's peer and channel binding. A re-key message
//! that fails, comes out of turn, or a re-key that is not over within the
//! handshake timeout, ends the session like any failed message; so does a
//! responder's keys growing older than [`crate::limits::REKEY_OVERDUE`].
//!
//! Used by [`crate::channel::Channel`] (standard and request channels) and
//! [`crate::chat::E2eChat`] (the chat, relayed by the server). Role
//! messages never start with [`REKEY_MARKER`]: each is a postcard enum
//! whose variant index (below 128) is its first byte.

use rand_core::{CryptoRng, RngCore};

use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::{CryptoError, Error, ProtocolError, WireError};
use crate::keys::PublicKey;
use crate::limits::{Limits, REKEY_OVERDUE, TAG_LEN};
use crate::noise::{Transport, HASH_LEN};
use crate::pq::Rekey;
use crate::time::Instant;

/// First byte of a re-key message's plaintext.
pub const REKEY_MARKER: u8 = 0xFF;

/// A re-key message's header: the marker and the step (1 to 5).
pub const REKEY_HEADER: usize = 2;

/// Length of the classical messages (steps 1 and 2): an ephemeral key and
/// the tag of an empty payload.
const CLASSICAL_LEN: usize = 32 + TAG_LEN;

/// Plaintext length of each step's message, header included (steps 1 to
/// 5): the classical messages, the layer's (each sealed by the re-key's
/// own classical transport: the ML-KEM key or ciphertext, the empty
/// payload's tag and that transport's tag), and the bare switch.
const PLAINTEXT_LEN: [usize; 5] = [
    REKEY_HEADER + CLASSICAL_LEN,
    REKEY_HEADER + CLASSICAL_LEN,
    REKEY_HEADER + crate::kem::PUBLIC_KEY_LEN + 2 * TAG_LEN,
    REKEY_HEADER + crate::kem::CIPHERTEXT_LEN + 2 * TAG_LEN,
    REKEY_HEADER,
];

/// Plaintext length of step `step`'s message (0 for no step).
fn plaintext_len(step: u8) -> usize {
    PLAINTEXT_LEN
        .get(usize::from(step).wrapping_sub(1))
        .copied()
        .unwrap_or(0)
}

/// The largest re-key message on the wire (step 3), sealed: the room a
/// transport must have for it.
pub const MAX_REKEY_MESSAGE: usize = PLAINTEXT_LEN[2] + TAG_LEN;

enum Renewal<P: CryptoProvider> {
    /// No re-key running.
    Idle,
    /// Messages 1 to 4, since `Instant`.
    Running(Rekey<P>, Instant),
    /// Message 4 done: the new keys, used to send by the responder and to
    /// receive by the initiator (whose message 5 is due), since `Instant`.
    Split(Transport<P>, Instant),
}

/// A session's transport keys, renewed in place (see the module docs).
pub struct Keys<P: CryptoProvider = RustCrypto> {
    current: Transport<P>,
    renewal: Renewal<P>,
    initiator: bool,
    rekeys: u32,
}

impl<P: CryptoProvider> Keys<P> {
    /// The keys of a session whose handshake just finished; `initiator` as
    /// in that handshake (the initiator re-keys).
    pub fn new(transport: Transport<P>, initiator: bool) -> Self {
        Keys {
            current: transport,
            renewal: Renewal::Idle,
            initiator,
            rekeys: 0,
        }
    }

    /// The key we send with.
    fn tx(&mut self) -> &mut Transport<P> {
        match &mut self.renewal {
            Renewal::Split(next, _) if !self.initiator => next,
            _ => &mut self.current,
        }
    }

    /// The key we receive with.
    fn rx(&mut self) -> &mut Transport<P> {
        match &mut self.renewal {
            Renewal::Split(next, _) if self.initiator => next,
            _ => &mut self.current,
        }
    }

    /// The channel binding: the session's first handshake hash (it stays
    /// across re-keys).
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        self.current.handshake_hash()
    }

    /// The peer's static key, if the session's pattern has one.
    pub fn remote_static(&self) -> Option<PublicKey> {
        self.current.remote_static()
    }

    /// The keys in use to send (message counts, limits).
    pub fn sending(&self) -> &Transport<P> {
        match &self.renewal {
            Renewal::Split(next, _) if !self.initiator => next,
            _ => &self.current,
        }
    }

    /// How many re-keys this session has completed.
    pub fn rekeys(&self) -> u32 {
        self.rekeys
    }

    /// True while a re-key runs.
    pub fn is_rekeying(&self) -> bool {
        !matches!(self.renewal, Renewal::Idle)
    }

    /// Encrypts a role message.
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        self.tx().encrypt(plaintext, out)
    }

    /// Decrypts a message; if [`is_rekey_message`] says its plaintext is a
    /// re-key message, the caller hands it to [`Self::read_rekey`].
    pub fn decrypt(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        self.rx().decrypt(ciphertext, out)
    }

    /// [`Self::decrypt`] in place: the plaintext is `buf[..n]`.
    pub fn decrypt_in_place(&mut self, buf: &mut [u8]) -> Result<usize, CryptoError> {
        self.rx().decrypt_in_place(buf)
    }

    /// True when the initiator's keys are due for a re-key at `now` (its
    /// [`Self::deadline`] has come).
    pub fn rekey_due(&self, now: Instant, limits: &Limits) -> bool {
        self.initiator && matches!(self.renewal, Renewal::Idle) && now >= self.deadline(limits)
    }

    /// When [`Self::check`] or [`Self::start`] must next run: the running
    /// re-key's deadline, the initiator's next re-key (now, if due by
    /// count), or the responder's overdue point.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        match &self.renewal {
            Renewal::Running(_, since) | Renewal::Split(_, since) => {
                since.add(limits.handshake_timeout)
            }
            Renewal::Idle if self.initiator => {
                if self.current.sent().max(self.current.received()) >= limits.rekey_after_messages {
                    self.current.started()
                } else {
                    self.current.started().add(limits.rekey_after)
                }
            }
            Renewal::Idle => self.current.started().add(REKEY_OVERDUE),
        }
    }

    /// Errors when a re-key ran out of time, or the peer's is overdue (the
    /// [`Self::deadline`] has passed; for an idle initiator it only means
    /// a re-key is due).
    pub fn check(&self, now: Instant, limits: &Limits) -> Result<(), ProtocolError> {
        if now < self.deadline(limits) {
            return Ok(());
        }
        match &self.renewal {
            Renewal::Running(..) | Renewal::Split(..) => Err(ProtocolError::RekeyTimeout),
            Renewal::Idle if self.initiator => Ok(()),
            Renewal::Idle => Err(ProtocolError::RekeyOverdue),
        }
    }

    /// Starts a re-key (the initiator, when [`Self::rekey_due`]); its first
    /// message is then due ([`Self::write_rekey`]).
    pub fn start<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        if !self.initiator || self.is_rekeying() {
            return Err(ProtocolError::Unexpected.into());
        }
        self.open(true, now, rng)
    }

    /// The step of our next message, if one is due.
    fn due_step(&self) -> Option<u8> {
        match &self.renewal {
            Renewal::Running(r, _) if r.is_write_turn() => {
                Some(match (self.initiator, r.is_post_quantum()) {
                    (true, false) => 1,
                    (false, false) => 2,
                    (true, true) => 3,
                    (false, true) => 4,
                })
            }
            Renewal::Split(..) if self.initiator => Some(5),
            _ => None,
        }
    }

    /// Sealed length of the next re-key message, if one is due.
    pub fn pending_rekey(&self) -> Option<usize> {
        self.due_step()
            .map(|s| plaintext_len(s).saturating_add(TAG_LEN))
    }

    /// Writes our next re-key message, sealed as a transport message, into
    /// `out`; returns its length, or `None` if none is due or `out` has no
    /// room for it (nothing changes then: call again with more room).
    pub fn write_rekey(
        &mut self,
        now: Instant,
        limits: &Limits,
        out: &mut [u8],
    ) -> Result<Option<usize>, Error> {
        let Some(step) = self.due_step() else {
            return Ok(None);
        };
        let plain = plaintext_len(step);
        if out.len() < plain.saturating_add(TAG_LEN) {
            return Ok(None);
        }
        let (header, body) = out
            .split_first_chunk_mut::<REKEY_HEADER>()
            .ok_or(CryptoError::BufferTooSmall)?;
        *header = [REKEY_MARKER, step];
        if let Renewal::Running(rekey, _) = &mut self.renewal {
            let n = rekey.write_message(&[], body)?;
            if n.checked_add(REKEY_HEADER) != Some(plain) {
                return Err(CryptoError::WrongState.into());
            }
        }
        // Every re-key message travels under the keys it replaces.
        let sealed = self.current.encrypt_in_place(out, plain)?;
        match step {
            // The responder's message 4: its keys are new from here on.
            4 => self.split(limits, now)?,
            // The initiator's message 5: the old keys are gone.
            5 => self.switch(),
            _ => {}
        }
        Ok(Some(sealed))
    }

    /// Reads a re-key message's plaintext (opened in place); answers become
    /// due ([`Self::write_rekey`]). A responder draws its randomness from
    /// `rng` at message 1. Any error ends the session.
    pub fn read_rekey<R: RngCore + CryptoRng>(
        &mut self,
        plain: &mut [u8],
        now: Instant,
        limits: &Limits,
        rng: &mut R,
    ) -> Result<(), Error> {
        let (step, body) = match plain {
            [REKEY_MARKER, step @ 1..=5, body @ ..]
                if body.len().checked_add(REKEY_HEADER) == Some(plaintext_len(*step)) =>
            {
                (*step, body)
            }
            _ => return Err(WireError::Malformed.into()),
        };
        let mut payload = [0u8; crate::pq::MAX_PQ_PAYLOAD];
        match (self.initiator, step, &mut self.renewal) {
            (false, 1, Renewal::Idle) => self.begin(body, now, rng)?,
            (true, 2 | 4, Renewal::Running(rekey, _)) | (false, 3, Renewal::Running(rekey, _))
                if !rekey.is_write_turn() && rekey.is_post_quantum() == (step > 2) =>
            {
                if rekey.read_message(body, &mut payload)? != 0 {
                    return Err(WireError::TrailingBytes.into());
                }
                if step == 4 {
                    // The responder sends with the new keys after this
                    // message: so do we receive; message 5 is due.
                    self.split(limits, now)?;
                }
            }
            (false, 5, Renewal::Split(..)) if body.is_empty() => self.switch(),
            _ => return Err(ProtocolError::Unexpected.into()),
        }
        Ok(())
    }

    // The steps that make or replace a whole `Rekey` or `Transport` (a few
    // KB each) do it in frames of their own, not under the KEM calls of
    // `read_rekey` and `write_rekey` (the device's stack: the re-key state
    // is built where it stays, in place).

    /// A re-key starts: made in place, then its randomness drawn there
    /// (the same draws as [`Rekey::new`]).
    fn open<R: RngCore + CryptoRng>(
        &mut self,
        initiator: bool,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        self.make(initiator, now, rng)?;
        let drawn = match &mut self.renewal {
            Renewal::Running(rekey, _) => rekey.draw(rng),
            _ => Err(CryptoError::WrongState),
        };
        if drawn.is_err() {
            self.renewal = Renewal::Idle;
        }
        Ok(drawn?)
    }

    #[inline(never)]
    fn make<R: RngCore + CryptoRng>(
        &mut self,
        initiator: bool,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        let rekey = Rekey::undrawn(initiator, &self.current, rng)?;
        self.renewal = Renewal::Running(rekey, now);
        Ok(())
    }

    /// The responder's message 1: its re-key starts, in place.
    #[inline(never)]
    fn begin<R: RngCore + CryptoRng>(
        &mut self,
        body: &mut [u8],
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        self.open(false, now, rng)?;
        let mut payload = [0u8; crate::pq::MAX_PQ_PAYLOAD];
        let read = match &mut self.renewal {
            Renewal::Running(rekey, _) => rekey.read_message(body, &mut payload),
            _ => Err(CryptoError::WrongState),
        };
        match read {
            Ok(0) => Ok(()),
            r => {
                self.renewal = Renewal::Idle;
                Err(r.map_or_else(Error::from, |_| WireError::TrailingBytes.into()))
            }
        }
    }

    /// Message 4 done: the new keys, kept beside the old ones.
    #[inline(never)]
    fn split(&mut self, limits: &Limits, now: Instant) -> Result<(), Error> {
        let Renewal::Running(rekey, since) = core::mem::replace(&mut self.renewal, Renewal::Idle)
        else {
            return Err(CryptoError::WrongState.into());
        };
        let next = rekey.into_transport(&self.current, limits, now)?;
        self.renewal = Renewal::Split(next, since);
        Ok(())
    }

    /// Message 5 done: the new keys replace the old ones, which are wiped
    /// (dropped).
    #[inline(never)]
    fn switch(&mut self) {
        if let Renewal::Split(next, _) = core::mem::replace(&mut self.renewal, Renewal::Idle) {
            self.current = next;
            self.rekeys = self.rekeys.saturating_add(1);
        }
    }
}

/// True if a transport message's plaintext is a re-key message.
pub fn is_rekey_message(plain: &[u8]) -> bool {
    plain.first() == Some(&REKEY_MARKER)
}
