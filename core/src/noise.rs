//! The three Noise handshakes of secureCom and their transport phase.
//!
//! The Noise engine is [`clatter`]: no heap, fixed-size buffers, zeroized
//! keys, PSK patterns, and the `25519_ChaChaPoly_BLAKE2s` suite. This module
//! only pins the patterns, prologues and key checks of secureCom on top of it,
//! with the phase in the type ([`Handshake`] → [`Transport`]).
//!
//! | channel  | pattern                                   | initiator |
//! |----------|-------------------------------------------|-----------|
//! | standard | `Noise_XX_25519_ChaChaPoly_BLAKE2s`       | client    |
//! | request  | `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`   | server    |
//! | chat     | `Noise_KK_25519_ChaChaPoly_BLAKE2s`       | requester |
//!
//! The primitives under clatter are the provider's (`P`, [`crate::crypto`]).
//!
//! Ephemeral keys always come from the caller's RNG: clatter would otherwise
//! build its own RNG with `Default`, which a sans-IO core must not do.

use clatter::cipherstate::{CipherState, CipherStates};
use clatter::crypto::hash::Blake2s;
use clatter::handshakepattern::{noise_kk, noise_nn_psk0, noise_xx, HandshakePattern};
use clatter::traits::{Handshaker, Hash};
use clatter::NqHandshakeCore;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::buf::Writer;
use crate::crypto::{CryptoProvider, RustCrypto};
use crate::error::CryptoError;
use crate::keys::{ContributoryX25519, PublicKey, StaticSecret, KEY_LEN};
use crate::limits::{Limits, MAX_NOISE_MESSAGE, TAG_LEN};
use crate::time::Instant;

/// Length of a Noise handshake hash (BLAKE2s).
pub const HASH_LEN: usize = 32;

/// The Noise patterns secureCom uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Pattern {
    /// Standard channel: mutual authentication, identities hidden from passive observers.
    XX,
    /// Request channel: keyed by a PSK derived from the standard channel.
    NNpsk0,
    /// End-to-end chat: both static keys known in advance (sent by the server).
    KK,
}

impl Pattern {
    /// The full Noise protocol name.
    pub const fn protocol_name(self) -> &'static str {
        match self {
            Pattern::XX => "Noise_XX_25519_ChaChaPoly_BLAKE2s",
            Pattern::NNpsk0 => "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s",
            Pattern::KK => "Noise_KK_25519_ChaChaPoly_BLAKE2s",
        }
    }

    fn clatter(self) -> HandshakePattern {
        match self {
            Pattern::XX => noise_xx(),
            Pattern::NNpsk0 => noise_nn_psk0(),
            Pattern::KK => noise_kk(),
        }
    }

    /// Number of handshake messages.
    pub const fn messages(self) -> usize {
        match self {
            Pattern::XX => 3,
            Pattern::NNpsk0 | Pattern::KK => 2,
        }
    }
}

/// Prologue of the standard channel.
pub const STANDARD_PROLOGUE: &[u8] = b"secureCom/1/standard";
/// Prologue of the request channel.
pub const REQUEST_PROLOGUE: &[u8] = b"secureCom/1/request";
/// Prefix of the chat prologue (see [`chat_prologue`]).
pub const CHAT_PROLOGUE_PREFIX: &[u8] = b"secureCom/1/chat";
/// Label of the request channel's PSK derivation.
pub const REQUEST_PSK_LABEL: &[u8] = b"secureCom/1/request-psk";
/// Label of the secret a finished handshake leaves for re-keying its
/// session ([`Transport::rekey_psk`]).
pub const REKEY_SECRET_LABEL: &[u8] = b"secureCom/2/rekey-secret";
/// Label of the secret a finished classical handshake hands to the
/// post-quantum layer over it ([`Transport::hybrid_psk`]).
pub const HYBRID_PSK_LABEL: &[u8] = b"secureCom/2/hybrid-psk";
/// Label of the ticket of a client-dialled request channel.
pub const REQUEST_TICKET_LABEL: &[u8] = b"secureCom/1/request-ticket";
/// Longest chat prologue.
pub const MAX_CHAT_PROLOGUE: usize =
    CHAT_PROLOGUE_PREFIX.len() + 4 + 2 * (KEY_LEN + 1 + crate::limits::MAX_USER_NAME);

/// Builds the chat prologue into `out`:
/// `"secureCom/1/chat" || chat_id (u32 BE) || requester key || u8 len || requester name
///  || responder key || u8 len || responder name`.
pub fn chat_prologue<'a>(
    chat_id: u32,
    requester: (&PublicKey, &str),
    responder: (&PublicKey, &str),
    out: &'a mut [u8; MAX_CHAT_PROLOGUE],
) -> &'a [u8] {
    let mut w = Writer::new(out);
    // MAX_CHAT_PROLOGUE is the sum of the longest parts (names are cut to
    // MAX_USER_NAME), so every part fits.
    let fits = (|| {
        w.put(CHAT_PROLOGUE_PREFIX)?;
        w.put(&chat_id.to_be_bytes())?;
        for (key, name) in [requester, responder] {
            let name = name.as_bytes();
            let name = name.get(..crate::limits::MAX_USER_NAME).unwrap_or(name);
            w.put(key.as_bytes())?;
            w.put(&[name.len() as u8])?;
            w.put(name)?;
        }
        Some(())
    })();
    debug_assert!(fits.is_some(), "MAX_CHAT_PROLOGUE is too small");
    w.into_written()
}

/// A 32-byte pre-shared key, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Psk(pub(crate) [u8; 32]);

impl Psk {
    /// The request channel's PSK:
    /// `HMAC-BLAKE2s(key = standard handshake hash, "secureCom/1/request-psk" || secret)`.
    pub fn for_request_channel(standard_hash: &[u8; HASH_LEN], secret: &[u8; 32]) -> Psk {
        // Both are zeroized on drop: the HMAC output and the PSK built in place.
        let out = Blake2s::hmac_many(standard_hash, &[REQUEST_PSK_LABEL, secret]);
        let mut psk = Psk([0u8; 32]);
        psk.0 = *out;
        psk
    }

    /// Raw PSK (tests and the `snow` interop only).
    pub fn from_bytes(bytes: [u8; 32]) -> Psk {
        Psk(bytes)
    }

    /// Its bytes, for a second implementation in the tests only (nothing in
    /// the programs reads a PSK out).
    #[doc(hidden)]
    pub fn bytes_for_testing_only(&self) -> &[u8; 32] {
        &self.0
    }
}

/// What a client that dials its own request channel sends first on that
/// connection, so that the server can hand it to the right session:
/// `HMAC-BLAKE2s(key = standard handshake hash, "secureCom/1/request-ticket" || secret)`
/// for the `secret` of the `DialRequestChannel` it sent. It looks random to
/// anyone without the standard channel's keys: the HMAC key (the handshake
/// hash) is not secret, but the 32-byte `secret` it covers is, fresh per
/// announce and sent only inside the standard channel's transport; with
/// BLAKE2s taken as a random oracle (as Noise's own key derivation takes
/// it), the ticket is unpredictable without that secret. It is independent
/// of the PSK (another label), and it
/// names one announce of one login: the server forgets it once used, at the
/// next announce and when the session ends.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RequestTicket(pub(crate) [u8; 32]);

impl RequestTicket {
    /// The ticket for `secret` in the session with handshake hash `standard_hash`.
    pub fn new(standard_hash: &[u8; HASH_LEN], secret: &[u8; 32]) -> RequestTicket {
        let out = Blake2s::hmac_many(standard_hash, &[REQUEST_TICKET_LABEL, secret]);
        let mut t = RequestTicket([0u8; 32]);
        t.0 = *out;
        t
    }

    /// Its bytes (to look it up, or to send it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A ticket from its bytes (as the server reads it from a connection).
    pub fn from_bytes(bytes: [u8; 32]) -> RequestTicket {
        RequestTicket(bytes)
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &[u8; 32]) -> bool {
        let mut d = 0u8;
        for (a, b) in self.0.iter().zip(other) {
            d |= a ^ b;
        }
        d == 0
    }

    /// The bytes a client writes first on its request-channel connection:
    /// a frame (2-byte length 33) holding [`REQUEST_HELLO_KIND`] and the ticket.
    pub fn hello(&self) -> [u8; REQUEST_HELLO_FRAME] {
        let mut f = [0u8; REQUEST_HELLO_FRAME];
        // REQUEST_HELLO_LEN (33) fits a u16.
        let header = (REQUEST_HELLO_LEN as u16).to_be_bytes();
        let bytes = header
            .iter()
            .chain(core::iter::once(&REQUEST_HELLO_KIND))
            .chain(self.0.iter());
        for (dst, src) in f.iter_mut().zip(bytes) {
            *dst = *src;
        }
        f
    }

    /// Parses the payload of a frame of length [`REQUEST_HELLO_LEN`]
    /// (`None` if it is not a request hello).
    pub fn from_hello_payload(payload: &[u8]) -> Option<RequestTicket> {
        match payload {
            [REQUEST_HELLO_KIND, rest @ ..] => {
                let bytes: [u8; 32] = rest.try_into().ok()?;
                Some(RequestTicket(bytes))
            }
            _ => None,
        }
    }
}

impl PartialEq for RequestTicket {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(&other.0)
    }
}

impl Eq for RequestTicket {}

impl core::fmt::Debug for RequestTicket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RequestTicket(..)")
    }
}

/// Payload length of a request hello frame: a kind byte and the ticket. XX
/// message 1 (the first frame of a standard channel) is always 32 bytes, so
/// the first frame's length tells the two kinds of connection apart.
pub const REQUEST_HELLO_LEN: usize = 33;
/// A request hello frame on the wire: the 2-byte length and the payload.
pub const REQUEST_HELLO_FRAME: usize = 2 + REQUEST_HELLO_LEN;
/// First payload byte of a request hello.
pub const REQUEST_HELLO_KIND: u8 = 0x01;

/// clatter draws ephemerals from `RNG::default()` when none is given; we always
/// give one (from the caller's RNG), so this type is never asked for a byte.
/// Should that invariant ever break (a bug of ours, never peer input), it
/// stops the program rather than hand out predictable keys.
///
/// Public for code that drives clatter's engine directly with every key
/// supplied (tests, benchmarks, the fuzzers' fake peers).
#[derive(Clone, Default)]
pub struct NoInternalRng;

impl RngCore for NoInternalRng {
    fn next_u32(&mut self) -> u32 {
        unreachable!("secureCom always supplies ephemeral keys")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("secureCom always supplies ephemeral keys")
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        unreachable!("secureCom always supplies ephemeral keys")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
        unreachable!("secureCom always supplies ephemeral keys")
    }
}
impl CryptoRng for NoInternalRng {}

type Engine<P> = NqHandshakeCore<
    ContributoryX25519<<P as CryptoProvider>::Dh>,
    <P as CryptoProvider>::Cipher,
    Blake2s,
    NoInternalRng,
>;

/// Checks the remote static key against an expectation once it is known.
#[derive(Clone, Copy, Debug)]
pub enum RemoteCheck {
    /// Accept any key (it is checked later, e.g. against a registry by user name).
    Any,
    /// Accept only this key (a pinned server key).
    Exactly(PublicKey),
}

/// A handshake in progress, on the primitives of `P` (see [`crate::crypto`]).
pub struct Handshake<P: CryptoProvider = RustCrypto> {
    engine: Engine<P>,
    pattern: Pattern,
    check: RemoteCheck,
}

/// Who we are in a handshake and what we know of the peer.
pub struct HandshakeParams<'a> {
    /// The pattern.
    pub pattern: Pattern,
    /// True for the initiator.
    pub initiator: bool,
    /// The prologue, mixed into the transcript.
    pub prologue: &'a [u8],
    /// Our static key (XX, KK).
    pub local_static: Option<&'a StaticSecret>,
    /// The peer's static key, known in advance (KK).
    pub remote_static: Option<PublicKey>,
    /// The PSK (NNpsk0).
    pub psk: Option<&'a Psk>,
    /// What to require of the peer's static key.
    pub check: RemoteCheck,
}

impl<P: CryptoProvider> Handshake<P> {
    /// Starts a handshake with an ephemeral key drawn from `rng`. A
    /// low-order peer key given in advance (`remote_static`, or the key of
    /// [`RemoteCheck::Exactly`]) is refused with [`CryptoError::WeakKey`].
    pub fn new<R: RngCore + CryptoRng>(
        p: HandshakeParams<'_>,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        let mut e = [0u8; KEY_LEN];
        rng.fill_bytes(&mut e);
        let h = Self::with_ephemeral(p, StaticSecret::from_bytes_with::<P::Dh>(e));
        e.zeroize();
        h
    }

    /// The standard channel's `Noise_XX` with its prologue: the client is the
    /// initiator and checks the server's key with `check`; the server accepts
    /// any key here and checks it against its registry after message 3.
    pub fn standard<R: RngCore + CryptoRng>(
        initiator: bool,
        identity: &StaticSecret,
        check: RemoteCheck,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        Self::new(
            HandshakeParams {
                pattern: Pattern::XX,
                initiator,
                prologue: STANDARD_PROLOGUE,
                local_static: Some(identity),
                remote_static: None,
                psk: None,
                check,
            },
            rng,
        )
    }

    /// The request channel's `Noise_NNpsk0` with its prologue: the server is
    /// the initiator, the client's daemon the responder.
    pub fn request_channel<R: RngCore + CryptoRng>(
        initiator: bool,
        psk: &Psk,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        Self::new(
            HandshakeParams {
                pattern: Pattern::NNpsk0,
                initiator,
                prologue: REQUEST_PROLOGUE,
                local_static: None,
                remote_static: None,
                psk: Some(psk),
                check: RemoteCheck::Any,
            },
            rng,
        )
    }

    /// Starts a handshake with a fixed ephemeral key. Only the Noise test
    /// vectors need this: a reused ephemeral key destroys forward secrecy.
    #[doc(hidden)]
    pub fn new_with_fixed_ephemeral_for_testing_only(
        p: HandshakeParams<'_>,
        ephemeral: &StaticSecret,
    ) -> Result<Self, CryptoError> {
        Self::with_ephemeral(p, ephemeral.clone())
    }

    fn with_ephemeral(p: HandshakeParams<'_>, e: StaticSecret) -> Result<Self, CryptoError> {
        if p.pattern == Pattern::KK && p.remote_static.is_none() {
            return Err(CryptoError::WrongState);
        }
        // A low-order key known in advance (KK's peer key from the server, a
        // pinned key) could only ever give all-zero DH results.
        let pinned = match p.check {
            RemoteCheck::Exactly(k) => Some(k),
            RemoteCheck::Any => None,
        };
        if p.remote_static
            .iter()
            .chain(&pinned)
            .any(PublicKey::is_low_order)
        {
            return Err(CryptoError::WeakKey);
        }
        let mut engine = Engine::<P>::new(
            p.pattern.clatter(),
            p.prologue,
            p.initiator,
            p.local_static.map(StaticSecret::keypair),
            Some(e.keypair()),
            p.remote_static.map(|k| k.0),
            None,
        )
        .map_err(|_| CryptoError::WrongState)?;
        if p.pattern == Pattern::NNpsk0 {
            let psk = p.psk.ok_or(CryptoError::WrongState)?;
            engine.push_psk(&psk.0);
        }
        Ok(Handshake {
            engine,
            pattern: p.pattern,
            check: p.check,
        })
    }

    /// True for the side that writes the first message.
    pub fn is_initiator(&self) -> bool {
        self.engine.is_initiator()
    }

    /// The pattern of this handshake.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// True when it is our turn to write.
    pub fn is_write_turn(&self) -> bool {
        !self.engine.is_finished() && self.engine.is_write_turn()
    }

    /// True when all messages have been exchanged.
    pub fn is_finished(&self) -> bool {
        self.engine.is_finished()
    }

    /// Writes the next handshake message with `payload` into `out`.
    /// On error the handshake is dead and must be dropped.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        if !self.is_write_turn() {
            return Err(CryptoError::WrongState);
        }
        let overhead = self
            .engine
            .get_next_message_overhead()
            .map_err(|_| CryptoError::WrongState)?;
        match payload.len().checked_add(overhead) {
            Some(needed) if needed <= MAX_NOISE_MESSAGE && out.len() >= needed => {}
            _ => return Err(CryptoError::BufferTooSmall),
        }
        self.engine
            .write_message(payload, out)
            .map_err(|_| CryptoError::HandshakeFailed)
    }

    /// Reads the peer's next handshake message; the payload goes to `out`.
    /// A low-order ephemeral or static key from the peer fails it with
    /// [`CryptoError::WeakKey`] (and `out` is wiped of its payload).
    /// On error the handshake is dead and must be dropped.
    pub fn read_message(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        if self.engine.is_finished() || self.engine.is_write_turn() {
            return Err(CryptoError::WrongState);
        }
        if message.len() > MAX_NOISE_MESSAGE {
            return Err(CryptoError::HandshakeFailed);
        }
        let overhead = self
            .engine
            .get_next_message_overhead()
            .map_err(|_| CryptoError::WrongState)?;
        let Some(payload_len) = message.len().checked_sub(overhead) else {
            return Err(CryptoError::HandshakeFailed);
        };
        if out.len() < payload_len {
            return Err(CryptoError::BufferTooSmall);
        }
        let read = self.engine.read_message(message, out);
        // Checked whatever the engine said: with a low-order key from the
        // peer every DH result is all zeros, so its message authenticates for
        // anyone (the engine refuses an all-zero DH, which is this same case).
        if self.peer_sent_low_order_key() {
            if let Some(payload) = read.as_ref().ok().and_then(|&n| out.get_mut(..n)) {
                payload.zeroize();
            }
            return Err(CryptoError::WeakKey);
        }
        let n = read.map_err(|_| CryptoError::HandshakeFailed)?;
        if let (RemoteCheck::Exactly(want), Some(got)) = (self.check, self.remote_static()) {
            if want != got {
                return Err(CryptoError::PeerKeyMismatch);
            }
        }
        Ok(n)
    }

    /// The peer's static key, once received (or given in advance).
    pub fn remote_static(&self) -> Option<PublicKey> {
        self.engine.get_remote_static().map(PublicKey)
    }

    /// True if the peer's ephemeral or static key, as far as received, is a
    /// low-order point.
    fn peer_sent_low_order_key(&self) -> bool {
        let weak = |k: Option<[u8; KEY_LEN]>| k.is_some_and(|k| PublicKey(k).is_low_order());
        weak(self.engine.get_remote_ephemeral()) || weak(self.engine.get_remote_static())
    }

    /// Ends the handshake: the transport phase with `limits`, started at `now`.
    pub fn into_transport(
        self,
        limits: &Limits,
        now: Instant,
    ) -> Result<Transport<P>, CryptoError> {
        let remote = self.remote_static();
        let initiator = self.engine.is_initiator();
        let secrets = Exported::of(&self.engine.get_state().get_chaining_key()[..]);
        let state = self
            .engine
            .finalize()
            .map_err(|_| CryptoError::WrongState)?;
        let hash = *state.get_handshake_hash();
        Ok(Transport::from_ciphers(
            state.take(),
            initiator,
            hash,
            secrets,
            remote,
            limits,
            now,
        ))
    }
}

/// The transport phase of a session: ordered, authenticated, encrypted messages.
///
/// Nonces are implicit counters, so any replayed, reordered, dropped or changed
/// message fails to decrypt; after any failure the caller must close the session.
///
/// The cipher states zeroize themselves (clatter); the handshake hash, which
/// keys the request channel's PSK, is zeroized on drop here.
pub struct Transport<P: CryptoProvider = RustCrypto> {
    /// Our sending cipher state (key and nonce).
    tx: CipherState<P::Cipher>,
    /// Our receiving one.
    rx: CipherState<P::Cipher>,
    /// The secrets this session's handshake exported.
    secrets: Exported,
    hash: [u8; HASH_LEN],
    remote: Option<PublicKey>,
    max_messages: u64,
    sent: u64,
    received: u64,
    started: Instant,
}

impl<P: CryptoProvider> Drop for Transport<P> {
    fn drop(&mut self) {
        self.hash.zeroize();
    }
}

/// The two secrets a finished handshake exports from its final chaining key
/// `ck`, which nothing else reveals (the transport keys are
/// `HKDF(ck, "")`'s outputs): each `HMAC-BLAKE2s(ck, label)`, the whole
/// 32-byte output. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Exported {
    /// Keys a handshake that re-keys this session ([`REKEY_SECRET_LABEL`]).
    rekey: [u8; 32],
    /// Keys the post-quantum layer over this handshake ([`HYBRID_PSK_LABEL`]).
    hybrid: [u8; 32],
}

impl Exported {
    pub(crate) fn of(chaining_key: &[u8]) -> Self {
        let derive = |label: &[u8]| {
            let out = Blake2s::hmac(chaining_key, label);
            let mut secret = [0u8; 32];
            for (d, b) in secret.iter_mut().zip(out.iter()) {
                *d = *b;
            }
            secret
        };
        Exported {
            rekey: derive(REKEY_SECRET_LABEL),
            hybrid: derive(HYBRID_PSK_LABEL),
        }
    }
}

impl<P: CryptoProvider> Transport<P> {
    /// The transport of a finished handshake: `Split()`'s two cipher
    /// states, ours to send with first if we were the `initiator`.
    pub(crate) fn from_ciphers(
        ciphers: CipherStates<P::Cipher>,
        initiator: bool,
        hash: [u8; HASH_LEN],
        secrets: Exported,
        remote: Option<PublicKey>,
        limits: &Limits,
        now: Instant,
    ) -> Self {
        let CipherStates {
            initiator_to_responder: i2r,
            responder_to_initiator: r2i,
        } = ciphers;
        let (tx, rx) = if initiator { (i2r, r2i) } else { (r2i, i2r) };
        Transport {
            tx,
            rx,
            hash,
            secrets,
            remote,
            max_messages: limits.max_messages,
            sent: 0,
            received: 0,
            started: now,
        }
    }

    /// What a re-keyed session inherits from the one it replaces: the peer
    /// and the channel binding (the first handshake's hash).
    pub(crate) fn inherit(&mut self, old: &Transport<P>) {
        self.remote = old.remote;
        self.hash = old.hash;
    }

    /// The PSK of a handshake that re-keys this session
    /// ([`crate::pq::Rekey`]): known to its two ends only, and different for
    /// every session.
    pub fn rekey_psk(&self) -> Psk {
        Psk(self.secrets.rekey)
    }

    /// The PSK of the post-quantum layer run over this (classical)
    /// handshake ([`crate::pq::PqLayer`]): it makes the session's keys
    /// depend on the classical handshake's secrets as well as on ML-KEM's.
    pub fn hybrid_psk(&self) -> Psk {
        Psk(self.secrets.hybrid)
    }

    /// Seals in place an inner (post-quantum) handshake message, which may
    /// be longer than a transport message ([`crate::pq::MAX_PQ_MESSAGE`]):
    /// its `len` bytes at the start of `buf`; returns the sealed length.
    pub(crate) fn seal_inner(&mut self, buf: &mut [u8], len: usize) -> Result<usize, CryptoError> {
        self.seal_in_place(buf, len, crate::pq::MAX_PQ_MESSAGE)
    }

    /// Seals in place the `len` bytes at the start of `buf` if the sealed
    /// message fits `buf` and is at most `max` bytes, and counts it.
    fn seal_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
        max: usize,
    ) -> Result<usize, CryptoError> {
        match len.checked_add(TAG_LEN) {
            Some(needed) if needed <= max && buf.len() >= needed => {}
            _ => return Err(CryptoError::BufferTooSmall),
        }
        let n = self
            .tx
            .encrypt_with_ad_in_place(&[], buf, len)
            .map_err(|_| CryptoError::MessageLimit)?;
        // At most one per message sent: far from saturating.
        self.sent = self.sent.saturating_add(1);
        Ok(n)
    }

    /// Opens in place an inner handshake message sealed by
    /// [`Self::seal_inner`]; returns the plaintext length.
    pub(crate) fn open_inner(&mut self, buf: &mut [u8]) -> Result<usize, CryptoError> {
        self.open_in_place(buf, crate::pq::MAX_PQ_MESSAGE)
    }

    /// Opens `buf` in place if it is a whole sealed message of at most `max`
    /// bytes, and counts it.
    fn open_in_place(&mut self, buf: &mut [u8], max: usize) -> Result<usize, CryptoError> {
        if buf.len() < TAG_LEN || buf.len() > max {
            return Err(CryptoError::DecryptFailed);
        }
        let len = buf.len();
        let n = self
            .rx
            .decrypt_with_ad_in_place(&[], buf, len)
            .map_err(|_| CryptoError::DecryptFailed)?;
        // At most one per message received: far from saturating.
        self.received = self.received.saturating_add(1);
        Ok(n)
    }

    /// The handshake hash (channel binding; the request channel's PSK is derived from it).
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.hash
    }

    /// The peer's static key, if the pattern has one.
    pub fn remote_static(&self) -> Option<PublicKey> {
        self.remote
    }

    /// When the handshake finished.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// True when the next message either way would reach the message limit.
    pub fn near_limit(&self) -> bool {
        self.sent.max(self.received).saturating_add(1) >= self.max_messages
    }

    /// Encrypts `plaintext` into `out`; returns the ciphertext length.
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        if self.sent >= self.max_messages {
            return Err(CryptoError::MessageLimit);
        }
        match plaintext.len().checked_add(TAG_LEN) {
            Some(needed) if needed <= MAX_NOISE_MESSAGE && out.len() >= needed => {}
            _ => return Err(CryptoError::BufferTooSmall),
        }
        let n = plaintext.len().saturating_add(TAG_LEN);
        let out = out.get_mut(..n).ok_or(CryptoError::BufferTooSmall)?;
        self.tx
            .encrypt_with_ad(&[], plaintext, out)
            .map_err(|_| CryptoError::MessageLimit)?;
        // `sent < max_messages` (checked above): cannot saturate.
        self.sent = self.sent.saturating_add(1);
        Ok(n)
    }

    /// Encrypts in place the `len` bytes at the start of `buf` (which must
    /// have room for the tag); returns the ciphertext length.
    pub fn encrypt_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, CryptoError> {
        if self.sent >= self.max_messages {
            return Err(CryptoError::MessageLimit);
        }
        self.seal_in_place(buf, len, MAX_NOISE_MESSAGE)
    }

    /// Decrypts `ciphertext` into `out`; returns the plaintext length.
    pub fn decrypt(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        if self.received >= self.max_messages {
            return Err(CryptoError::MessageLimit);
        }
        let plain_len = match ciphertext.len().checked_sub(TAG_LEN) {
            Some(n) if ciphertext.len() <= MAX_NOISE_MESSAGE => n,
            _ => return Err(CryptoError::DecryptFailed),
        };
        if out.len() < plain_len {
            return Err(CryptoError::BufferTooSmall);
        }
        let out = out
            .get_mut(..plain_len)
            .ok_or(CryptoError::BufferTooSmall)?;
        self.rx
            .decrypt_with_ad(&[], ciphertext, out)
            .map_err(|_| CryptoError::DecryptFailed)?;
        // `received < max_messages` (checked above): cannot saturate.
        self.received = self.received.saturating_add(1);
        Ok(plain_len)
    }

    /// Decrypts in place; returns the plaintext length (the plaintext is `buf[..n]`).
    pub fn decrypt_in_place(&mut self, buf: &mut [u8]) -> Result<usize, CryptoError> {
        if self.received >= self.max_messages {
            return Err(CryptoError::MessageLimit);
        }
        self.open_in_place(buf, MAX_NOISE_MESSAGE)
    }
}
