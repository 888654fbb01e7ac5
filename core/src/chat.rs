//! The end-to-end chat between two clients: Noise KK, relayed by the server.
//!
//! The server sends each side the other's registered key (`ChatStarted`);
//! the requester is the KK initiator. The handshake is KK, then the
//! post-quantum layer over it ([`crate::pq::PqLayer`]), four messages in
//! turn, all with empty payloads (KK's first message has no forward
//! secrecy, so it carries no text). Then the requester speaks first: the
//! responder may send only after it has received one message. Any failure
//! ends the chat; no text that did not authenticate is ever returned.
//!
//! The chat's keys are renewed in place ([`crate::rekey`]): the requester
//! starts a re-key when they are due ([`E2eChat::start_rekey`]), its
//! messages travel as ordinary chat messages (`ChatData`), and texts go on
//! around it.
//!
//! # Ending honestly
//! Every `Text` carries how many texts its sender had received (an
//! acknowledgement), and the side that leaves sends a last message, `Close`,
//! with how many texts it sent and received. Both travel inside the KK
//! transport, so the relaying server can neither forge nor alter them, and it
//! cannot drop a message without breaking the chat (the nonces are a strict
//! sequence). What the server *can* do is stop relaying and claim the peer
//! left (`PeerLeft`): then no `Close` came, and the last acknowledgement
//! tells how many of our texts may not have arrived.

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::{CryptoError, Error, ProtocolError, WireError};
use crate::keys::{PublicKey, SafetyNumber, StaticSecret};
use crate::limits::{Limits, MAX_CHAT_TEXT, MAX_E2E_MESSAGE, TAG_LEN};
use crate::message::{decode, encode, ChatId, ChatPayload, UserName};
use crate::noise::{
    chat_prologue, Handshake, HandshakeParams, Pattern, RemoteCheck, Transport, MAX_CHAT_PROLOGUE,
};
use crate::pq::{LayerSeed, PqLayer};
use crate::rekey::{is_rekey_message, Keys};
use crate::time::Instant;

/// A chat text, owned (at most [`MAX_CHAT_TEXT`] bytes).
pub type ChatText = heapless::String<MAX_CHAT_TEXT>;

enum E2ePhase<P: CryptoProvider> {
    /// KK, and the randomness of the layer after it.
    Handshake(Handshake<P>, LayerSeed),
    /// The post-quantum layer over KK's transport.
    PostQuantum(Transport<P>, PqLayer<P>),
    Open {
        transport: Keys<P>,
        may_send: bool,
    },
    /// After a failure or a `Close` (either way): nothing more goes in or out.
    Dead,
}

/// What one E2E transport message from the peer was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Received {
    /// A text (in the caller's buffer).
    Text,
    /// A re-key message: handled; an answer may be due
    /// ([`E2eChat::write_rekey`]).
    Rekey,
    /// The peer closed the chat end to end; nothing more comes.
    Closed {
        /// How many of our last texts the peer's close says it never
        /// received (0: every text arrived, both ways).
        undelivered: u32,
    },
}

/// One end of an end-to-end chat (`P`: the crypto provider).
pub struct E2eChat<P: CryptoProvider = RustCrypto> {
    chat_id: ChatId,
    peer: UserName,
    peer_key: PublicKey,
    local_key: PublicKey,
    initiator: bool,
    limits: Limits,
    started: Instant,
    phase: E2ePhase<P>,
    /// Texts we sent.
    sent: u32,
    /// Texts we received.
    received: u32,
    /// Of ours, how many the peer said it had received (its last `Text`).
    acked: u32,
}

impl<P: CryptoProvider> E2eChat<P> {
    /// Starts our end of chat `chat_id` with `peer`. The requester is the initiator.
    #[allow(clippy::too_many_arguments)]
    pub fn new<R: RngCore + CryptoRng>(
        chat_id: ChatId,
        identity: &StaticSecret,
        local_name: &str,
        peer: UserName,
        peer_key: PublicKey,
        initiator: bool,
        limits: Limits,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let mut chat = Self::new_undrawn(
            chat_id, identity, local_name, peer, peer_key, initiator, limits, now, rng,
        )?;
        chat.draw_layer_seed(rng)?;
        Ok(chat)
    }

    /// [`Self::new`] without the post-quantum layer's randomness, which
    /// [`Self::draw_layer_seed`] then draws where the chat stays (the
    /// requester's ML-KEM key pair: the client makes it once the chat is in
    /// its place, not under this constructor's frame).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_undrawn<R: RngCore + CryptoRng>(
        chat_id: ChatId,
        identity: &StaticSecret,
        local_name: &str,
        peer: UserName,
        peer_key: PublicKey,
        initiator: bool,
        limits: Limits,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let local_key = identity.public_key();
        let mut buf = [0u8; MAX_CHAT_PROLOGUE];
        let (requester, responder) = if initiator {
            ((&local_key, local_name), (&peer_key, peer.as_str()))
        } else {
            ((&peer_key, peer.as_str()), (&local_key, local_name))
        };
        let prologue = chat_prologue(chat_id, requester, responder, &mut buf);
        let hs = Handshake::new(
            HandshakeParams {
                pattern: Pattern::KK,
                initiator,
                prologue,
                local_static: Some(identity),
                remote_static: Some(peer_key),
                psk: None,
                check: RemoteCheck::Exactly(peer_key),
            },
            rng,
        )?;
        let chat = E2eChat {
            chat_id,
            peer,
            peer_key,
            local_key,
            initiator,
            limits,
            started: now,
            phase: E2ePhase::Handshake(hs, LayerSeed::undrawn(initiator)),
            sent: 0,
            received: 0,
            acked: 0,
        };
        Ok(chat)
    }

    /// Draws the layer's randomness in place (see [`Self::new_undrawn`]).
    pub(crate) fn draw_layer_seed<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
    ) -> Result<(), Error> {
        if let E2ePhase::Handshake(_, seed) = &mut self.phase {
            seed.fill::<P, R>(rng)?;
        }
        Ok(())
    }

    /// The chat id.
    pub fn id(&self) -> ChatId {
        self.chat_id
    }

    /// The peer's user name.
    pub fn peer(&self) -> &UserName {
        &self.peer
    }

    /// The peer's key.
    pub fn peer_key(&self) -> &PublicKey {
        &self.peer_key
    }

    /// True for the requester.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// The safety number of this chat's two identities.
    pub fn safety_number(&self) -> SafetyNumber {
        SafetyNumber::new(&self.local_key, &self.peer_key)
    }

    /// While the KK handshake runs: when it must be over (the handshake timeout).
    pub fn handshake_deadline(&self) -> Option<Instant> {
        matches!(
            self.phase,
            E2ePhase::Handshake(..) | E2ePhase::PostQuantum(..)
        )
        .then(|| self.started.add(self.limits.handshake_timeout))
    }

    /// While open: when [`Self::check_rekey`] and [`Self::start_rekey`]
    /// must next run (see [`Keys::deadline`]).
    pub fn rekey_deadline(&self) -> Option<Instant> {
        match &self.phase {
            E2ePhase::Open { transport, .. } => Some(transport.deadline(&self.limits)),
            _ => None,
        }
    }

    /// Errors when a re-key ran out of time, or the peer's is overdue (the
    /// caller then ends the chat).
    pub fn check_rekey(&self, now: Instant) -> Result<(), ProtocolError> {
        match &self.phase {
            E2ePhase::Open { transport, .. } => transport.check(now, &self.limits),
            _ => Ok(()),
        }
    }

    /// Starts a re-key if ours is due (we are the requester, and the keys
    /// are old or have carried many messages); its first message is then
    /// due ([`Self::write_rekey`]).
    pub fn start_rekey<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), Error> {
        let E2ePhase::Open { transport, .. } = &mut self.phase else {
            return Ok(());
        };
        if !transport.rekey_due(now, &self.limits) {
            return Ok(());
        }
        let r = transport.start(now, rng);
        if r.is_err() {
            self.phase = E2ePhase::Dead;
        }
        r
    }

    /// Length of our next re-key message, if one is due.
    pub fn pending_rekey(&self) -> Option<usize> {
        match &self.phase {
            E2ePhase::Open { transport, .. } => transport.pending_rekey(),
            _ => None,
        }
    }

    /// Writes our next re-key message into `out` (at least
    /// [`MAX_E2E_MESSAGE`] bytes), if one is due; the caller sends it as a
    /// chat message. An error ends the chat.
    pub fn write_rekey(&mut self, now: Instant, out: &mut [u8]) -> Result<Option<usize>, Error> {
        let E2ePhase::Open { transport, .. } = &mut self.phase else {
            return Ok(None);
        };
        let r = transport.write_rekey(now, &self.limits, out);
        if r.is_err() {
            self.phase = E2ePhase::Dead;
        }
        r
    }

    /// How many re-keys the chat has completed.
    pub fn rekeys(&self) -> u32 {
        match &self.phase {
            E2ePhase::Open { transport, .. } => transport.rekeys(),
            _ => 0,
        }
    }

    /// True once both handshake messages went through.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, E2ePhase::Open { .. })
    }

    /// True when we may send text now (open, and the requester has spoken).
    pub fn may_send(&self) -> bool {
        matches!(self.phase, E2ePhase::Open { may_send: true, .. })
    }

    /// Writes our next handshake message (KK's or the layer's), if it is
    /// our turn, into `out` (at least [`MAX_E2E_MESSAGE`] bytes); returns
    /// its length.
    pub fn write_handshake(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<usize>, Error> {
        let n = match &mut self.phase {
            E2ePhase::Handshake(hs, _) if hs.is_write_turn() => hs.write_message(&[], out),
            E2ePhase::PostQuantum(kk, layer) if layer.is_write_turn() => {
                layer.write_message(&[], kk, out)
            }
            _ => return Ok(None),
        };
        let n = self.settle(n, now)?;
        Ok(Some(n))
    }

    /// Reads the peer's handshake message (its payload must be empty),
    /// opening it in place in `msg`.
    pub fn read_handshake(&mut self, now: Instant, msg: &mut [u8]) -> Result<(), Error> {
        let mut payload = [0u8; crate::pq::MAX_PQ_PAYLOAD];
        let n = match &mut self.phase {
            E2ePhase::Handshake(hs, _) => hs.read_message(msg, &mut payload),
            E2ePhase::PostQuantum(kk, layer) => layer.read_message(msg, kk, &mut payload),
            _ => return Err(ProtocolError::Unexpected.into()),
        };
        if self.settle(n, now)? != 0 {
            self.phase = E2ePhase::Dead;
            return Err(ProtocolError::Unexpected.into());
        }
        Ok(())
    }

    /// After a handshake message: a finished KK gives way to the layer, a
    /// finished layer to the open chat; an error ends the chat.
    fn settle(&mut self, r: Result<usize, CryptoError>, now: Instant) -> Result<usize, Error> {
        let r = r
            .map_err(Error::from)
            .and_then(|n| self.advance(now).map(|()| n));
        if r.is_err() {
            self.phase = E2ePhase::Dead;
        }
        r
    }

    fn advance(&mut self, now: Instant) -> Result<(), Error> {
        if matches!(&self.phase, E2ePhase::Handshake(hs, _) if hs.is_finished()) {
            let E2ePhase::Handshake(hs, seed) = core::mem::replace(&mut self.phase, E2ePhase::Dead)
            else {
                return Err(CryptoError::WrongState.into());
            };
            let kk = hs.into_transport(&self.limits, now)?;
            let layer = PqLayer::from_seed(&kk, seed);
            self.phase = E2ePhase::PostQuantum(kk, layer);
        }
        if matches!(&self.phase, E2ePhase::PostQuantum(_, layer) if layer.is_finished()) {
            let E2ePhase::PostQuantum(kk, layer) =
                core::mem::replace(&mut self.phase, E2ePhase::Dead)
            else {
                return Err(CryptoError::WrongState.into());
            };
            let transport = layer.into_transport(kk, &self.limits, now)?;
            self.phase = E2ePhase::Open {
                transport: Keys::new(transport, self.initiator),
                may_send: self.initiator,
            };
        }
        Ok(())
    }

    /// Encrypts a line of text for the peer; returns the Noise message length.
    pub fn encrypt_text(&mut self, text: &str, out: &mut [u8]) -> Result<usize, Error> {
        let E2ePhase::Open {
            transport,
            may_send,
        } = &mut self.phase
        else {
            return Err(ProtocolError::NoChat.into());
        };
        if !*may_send {
            return Err(ProtocolError::NotYourTurn.into());
        }
        if text.len() > MAX_CHAT_TEXT {
            return Err(WireError::OutOfBounds.into());
        }
        let sent = self.sent.checked_add(1).ok_or(CryptoError::MessageLimit)?;
        let payload = ChatPayload::Text {
            received: self.received,
            text,
        };
        let n = seal(transport, &payload, out)?;
        self.sent = sent;
        Ok(n)
    }

    /// Texts we sent that the peer has not acknowledged (yet): if the chat
    /// ends without the peer's `Close`, these may not have arrived.
    pub fn unconfirmed(&self) -> u32 {
        self.sent.saturating_sub(self.acked)
    }

    /// Texts sent and received so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.sent, self.received)
    }

    /// Encrypts our `Close` (the chat's last message); the chat is over after
    /// it. `Ok(None)` when the chat is not open (there is no one to tell end
    /// to end: the server's `PeerLeft` is all the peer gets).
    pub fn encrypt_close(&mut self, out: &mut [u8]) -> Result<Option<usize>, Error> {
        let E2ePhase::Open { transport, .. } = &mut self.phase else {
            return Ok(None);
        };
        let payload = ChatPayload::Close {
            sent: self.sent,
            received: self.received,
        };
        let r = seal(transport, &payload, out);
        self.phase = E2ePhase::Dead;
        r.map(Some)
    }

    /// Decrypts a message from the peer: a text (into `text`), its close,
    /// or a re-key message (handled here; `rng` gives the responder's
    /// randomness for it).
    ///
    /// Any error ends the chat (the caller must not use it again): a message
    /// that does not authenticate, a text from the responder before the
    /// requester spoke, or counts that cannot be true.
    pub fn decrypt<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        msg: &[u8],
        text: &mut ChatText,
        rng: &mut R,
    ) -> Result<Received, Error> {
        let mut buf = [0u8; MAX_E2E_MESSAGE + TAG_LEN];
        let r = match buf.get_mut(..msg.len()) {
            Some(b) => {
                b.copy_from_slice(msg);
                self.decrypt_in_place(now, b, text, rng)
            }
            None => {
                self.phase = E2ePhase::Dead;
                Err(CryptoError::BufferTooSmall.into())
            }
        };
        buf.as_mut_slice().zeroize();
        r
    }

    /// [`Self::decrypt`], opening the message in place in `msg` (which
    /// is wiped before this returns): the client opens a relayed message
    /// where it arrived, with no copy on the stack (the device's).
    pub fn decrypt_in_place<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        msg: &mut [u8],
        text: &mut ChatText,
        rng: &mut R,
    ) -> Result<Received, Error> {
        let r = self.open_in_place(now, msg, rng);
        if let Ok((Received::Text, range)) = &r {
            text.clear();
            // Checked by `open_in_place`: UTF-8, at most MAX_CHAT_TEXT bytes.
            let t = msg
                .get(range.clone())
                .and_then(|t| core::str::from_utf8(t).ok())
                .unwrap_or_default();
            let _ = text.push_str(t);
        }
        msg.zeroize();
        r.map(|(received, _)| received)
    }

    /// [`Self::decrypt_in_place`] without the copy of a text: on
    /// `Ok((Received::Text, range))` the text (checked: UTF-8, at most
    /// [`MAX_CHAT_TEXT`] bytes) is `msg[range]`, and the rest of `msg` is
    /// wiped; the caller copies the text out and wipes `msg`. On anything
    /// else `msg` is wiped. (The device's stack: no text buffer sits in
    /// the frame that may decapsulate a re-key.)
    pub fn open_in_place<R: RngCore + CryptoRng>(
        &mut self,
        now: Instant,
        msg: &mut [u8],
        rng: &mut R,
    ) -> Result<(Received, core::ops::Range<usize>), Error> {
        let E2ePhase::Open {
            transport,
            may_send,
        } = &mut self.phase
        else {
            return Err(ProtocolError::Unexpected.into());
        };
        // The largest message an E2E transport carries (as a copy into a
        // buffer of that size would refuse anything larger).
        let opened = if msg.len() > MAX_E2E_MESSAGE + TAG_LEN {
            Err(CryptoError::BufferTooSmall)
        } else {
            transport.decrypt_in_place(msg)
        };
        let result = match opened {
            Ok(n) => match msg.get_mut(..n) {
                Some(p) if is_rekey_message(p) => transport
                    .read_rekey(p, now, &self.limits, rng)
                    .map(|()| (Received::Rekey, 0..0)),
                Some(p) => match decode::<ChatPayload>(p) {
                    Ok(ChatPayload::Text { received, text }) => {
                        // Acknowledging more than we sent, or less than before, is a lie.
                        if received > self.sent || received < self.acked {
                            Err(ProtocolError::Unexpected.into())
                        } else if text.len() > MAX_CHAT_TEXT {
                            Err(Error::Wire(WireError::OutOfBounds))
                        } else {
                            self.acked = received;
                            // The text is the payload's last field: its last bytes.
                            let range = n.saturating_sub(text.len())..n;
                            self.received
                                .checked_add(1)
                                .ok_or(CryptoError::MessageLimit.into())
                                .map(|count| {
                                    self.received = count;
                                    *may_send = true;
                                    (Received::Text, range)
                                })
                        }
                    }
                    Ok(ChatPayload::Close { sent, received }) => {
                        // Our transport accepted it, so no text of the peer's
                        // went missing: it must have sent exactly what we got.
                        if sent != self.received || received > self.sent || received < self.acked {
                            Err(ProtocolError::Unexpected.into())
                        } else {
                            Ok((
                                Received::Closed {
                                    undelivered: self.sent.saturating_sub(received),
                                },
                                0..0,
                            ))
                        }
                    }
                    Err(e) => Err(e.into()),
                },
                None => Err(CryptoError::BufferTooSmall.into()),
            },
            Err(e) => Err(e.into()),
        };
        match &result {
            Ok((Received::Text, range)) => {
                let (head, tail) = msg.split_at_mut(range.start.min(msg.len()));
                head.zeroize();
                if let Some(rest) = tail.get_mut(range.len()..) {
                    rest.zeroize();
                }
            }
            _ => msg.zeroize(),
        }
        if !matches!(result, Ok((Received::Text | Received::Rekey, _))) {
            self.phase = E2ePhase::Dead;
        }
        result
    }
}

/// Encodes `payload` and encrypts it with `transport`; the plaintext is wiped.
fn seal<P: CryptoProvider>(
    transport: &mut Keys<P>,
    payload: &ChatPayload<'_>,
    out: &mut [u8],
) -> Result<usize, Error> {
    let mut plain = [0u8; MAX_CHAT_TEXT + 8];
    let r = match encode(payload, &mut plain) {
        Ok(n) => match plain.get(..n) {
            Some(body) => transport.encrypt(body, out).map_err(Error::from),
            None => Err(CryptoError::BufferTooSmall.into()),
        },
        Err(e) => Err(e.into()),
    };
    plain.as_mut_slice().zeroize();
    r
}
