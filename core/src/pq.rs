//! Protocol 3's post-quantum layer: a PQNoise `pqNNpsk2` handshake
//! (`-> e`, `<- ekem, psk`, ephemeral ML-KEM-768) run *inside* a finished
//! classical handshake and bound to it as clatter's
//! `HybridDualLayerHandshake` composes the two, with the `psk` a secret of
//! the classical handshake (see `docs/design/protocol-v2.md` for why this
//! construction):
//!
//! 1. the outer (classical) handshake finishes and becomes a [`Transport`];
//! 2. the inner one mixes `MixHash("clatter.hybrid_dual_layer.outer")` and
//!    `MixKeyAndHash(h_outer)` before its first message (clatter's binding);
//! 3. each inner message travels encrypted by the outer transport;
//! 4. the inner `psk` token mixes [`Transport::hybrid_psk`], a secret the
//!    outer handshake exports from its final chaining key;
//! 5. the session's transport keys are the inner handshake's.
//!
//! So the keys rest on both secrets (a combiner, as TLS's and OpenSSH's
//! hybrids concatenate theirs): an attacker who recorded everything and
//! later breaks X25519 still lacks ML-KEM's shared secret, and one who can
//! break ML-KEM, or meets a KEM that fails in a way nobody foresaw, still
//! lacks the classical chaining key (nor does he see the KEM key or
//! ciphertext, which are under the outer transport). Authentication is the
//! outer handshake's.
//!
//! Randomness is the caller's, drawn when the layer is made: the
//! initiator's ephemeral KEM key (64 bytes, `d || z`) or the responder's
//! encapsulation (32 bytes, `m`).
//!
//! On the wire since protocol 3: [`crate::channel::Channel`] runs it over
//! the standard and request channels' handshakes, [`crate::chat::E2eChat`]
//! over the chat's (`docs/PROTOCOL.md` 4.6). [`Rekey`] is not on the wire
//! yet.

use clatter::bytearray::SensitiveByteArray;
use clatter::crypto::hash::Blake2s;
use clatter::error::{KemError, KemResult};
use clatter::symmetricstate::SymmetricState;
use clatter::traits::{CryptoComponent, Kem};
use clatter::KeyPair;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::crypto::CryptoProvider;
use crate::error::CryptoError;
use crate::kem::{KeySlot, CIPHERTEXT_LEN, PUBLIC_KEY_LEN, SECRET_KEY_LEN};
use crate::limits::{Limits, TAG_LEN};
use crate::noise::{Handshake, Psk, Transport};
use crate::time::Instant;
use crate::RustCrypto;

/// The domain clatter's dual layer mixes before the outer handshake hash.
pub const DUAL_LAYER_DOMAIN: &[u8] = b"clatter.hybrid_dual_layer.outer";

/// The inner handshake's prologue.
pub const PQ_PROLOGUE: &[u8] = b"secureCom/2/pq";

/// Largest payload of an inner handshake message (the channels send empty
/// ones).
pub const MAX_PQ_PAYLOAD: usize = 32;

/// Largest inner handshake message on the wire: the KEM key (or
/// ciphertext, which is shorter), the payload and its tag, the outer
/// transport's tag.
pub const MAX_PQ_MESSAGE: usize = PUBLIC_KEY_LEN + MAX_PQ_PAYLOAD + 2 * TAG_LEN;

const _: () = assert!(CIPHERTEXT_LEN <= PUBLIC_KEY_LEN);

/// The static KEM of a pattern that has none (`pqNN`): clatter's engine is
/// generic over one, and this one is zero bytes and refuses every use.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKem;

impl CryptoComponent for NoKem {
    fn name() -> &'static str {
        "NoSKEM"
    }
}

impl Kem for NoKem {
    type SecretKey = SensitiveByteArray<[u8; 0]>;
    type PubKey = [u8; 0];
    type Ct = [u8; 0];
    type Ss = SensitiveByteArray<[u8; 0]>;

    fn genkey_rng<R: clatter::traits::Rng>(
        _: &mut R,
    ) -> KemResult<KeyPair<Self::PubKey, Self::SecretKey>> {
        Err(KemError::KeyGeneration)
    }
    fn encapsulate<R: clatter::traits::Rng>(
        _: &[u8],
        _: &mut R,
    ) -> KemResult<(Self::Ct, Self::Ss)> {
        Err(KemError::Encapsulation)
    }
    fn decapsulate(_: &[u8], _: &[u8]) -> KemResult<Self::Ss> {
        Err(KemError::Decapsulation)
    }
}

/// `N` bytes of the caller's randomness, drawn when the layer is made and
/// handed out once, to the one `fill_bytes` of `N` bytes that the KEM makes
/// (clatter's `Kem` wants an `Rng` it could make with `Default`): the
/// initiator's key seed (`N` = 64, `d || z`) or the responder's
/// encapsulation randomness (`N` = 32, `m`). Any other draw is a bug of
/// ours: it fails the handshake, or (for the infallible calls) stops the
/// program rather than hand out predictable bytes.
#[derive(Clone, Default)]
pub struct Drawn<const N: usize> {
    bytes: Option<SensitiveByteArray<[u8; N]>>,
}

impl<const N: usize> Drawn<N> {
    fn from_rng<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Self, CryptoError> {
        let mut b = SensitiveByteArray::new([0u8; N]);
        rng.try_fill_bytes(&mut b[..])
            .map_err(|_| CryptoError::WrongState)?;
        Ok(Drawn { bytes: Some(b) })
    }
}

impl<const N: usize> RngCore for Drawn<N> {
    fn next_u32(&mut self) -> u32 {
        unreachable!("the KEM draws with fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("the KEM draws with fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.try_fill_bytes(dest).is_err() {
            unreachable!("one draw per handshake")
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        match self.bytes.take() {
            Some(b) if dest.len() == N => {
                dest.copy_from_slice(&b[..]);
                Ok(())
            }
            _ => Err(rand_core::Error::from(core::num::NonZeroU32::MIN)),
        }
    }
}

impl<const N: usize> CryptoRng for Drawn<N> {}

/// The name clatter gives this pattern with these primitives (its
/// `PqHandshakeCore::build_name`), the inner handshake's protocol name.
pub const PQ_PROTOCOL_NAME: &str = "Noise_pqNNpsk2_MLKEM768+NoSKEM_ChaChaPoly_BLAKE2s";

/// Where the inner handshake is. Small: the keys are in [`PqLayer::key`],
/// so a step change moves no key around (the device's stack is small).
enum Step {
    /// Initiator, to write `-> e`: its ephemeral KEM key is in the key slot.
    InitiatorSend,
    /// Initiator, to read `<- ekem` with the ephemeral secret key.
    InitiatorReceive,
    /// Responder, to read `-> e`; the encapsulation's randomness.
    ResponderReceive(Drawn<32>),
    /// Responder, to write `<- ekem` to the peer's KEM key.
    ResponderSend(Drawn<32>),
    /// Both messages done.
    Done,
    /// A message failed: the handshake is dead.
    Failed,
}

/// The inner `pqNNpsk2` handshake of one channel, over the finished outer one.
///
/// The two tokens are processed here, on clatter's `SymmetricState`
/// (`MixHash`, `MixKey`, `EncryptAndHash`, `Split` as Noise defines them),
/// rather than by clatter's `PqHandshakeCore`, whose construction alone
/// overflows the device's stack (measured: its 5 KB state with both KEM key
/// slots is moved several times); the state here is the symmetric state
/// and at most one KEM secret key, and messages are built and sealed in
/// the caller's buffer. The bytes are clatter's to the bit
/// (`core/tests/pq_layer.rs` runs both).
pub struct PqLayer<P: CryptoProvider = RustCrypto> {
    state: SymmetricState<P::Cipher, Blake2s>,
    /// The outer handshake's secret, for the `psk` token.
    psk: Psk,
    step: Step,
    /// The initiator's ephemeral decapsulation key between its two
    /// messages, or (its first [`PUBLIC_KEY_LEN`] bytes) the responder's
    /// copy of the initiator's encapsulation key between read and write;
    /// wiped after use and on drop.
    key: KeySlot,
    initiator: bool,
}

impl<P: CryptoProvider> PqLayer<P> {
    /// Starts the inner handshake over `outer` (finished); `initiator` as in
    /// the outer one. Draws the initiator's KEM key (and makes the key pair)
    /// or the responder's encapsulation randomness from `rng` now.
    pub fn new<R: RngCore + CryptoRng>(
        initiator: bool,
        outer: &Transport<P>,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        Ok(Self::from_seed(
            outer,
            LayerSeed::draw::<P, R>(initiator, rng)?,
        ))
    }

    /// Starts the inner handshake over `outer` (finished) with randomness
    /// drawn before ([`LayerSeed::draw`]; initiator or responder as drawn).
    pub fn from_seed(outer: &Transport<P>, seed: LayerSeed) -> Self {
        let drawn = seed.drawn;
        let (step, key, initiator) = match seed.bytes {
            SeedBytes::Initiator(sk) => (Step::InitiatorSend, sk, true),
            SeedBytes::Responder(m) => (Step::ResponderReceive(m), KeySlot::new(), false),
        };
        // An undrawn seed would mean a zero key: the layer refuses to run.
        let step = if drawn { step } else { Step::Failed };
        let mut state = SymmetricState::new(PQ_PROTOCOL_NAME);
        state.mix_hash(PQ_PROLOGUE);
        // clatter's dual-layer binding.
        state.mix_hash(DUAL_LAYER_DOMAIN);
        state.mix_key_and_hash(outer.handshake_hash());
        PqLayer {
            state,
            psk: outer.hybrid_psk(),
            step,
            key,
            initiator,
        }
    }

    /// True when it is our turn to write.
    pub fn is_write_turn(&self) -> bool {
        matches!(self.step, Step::InitiatorSend | Step::ResponderSend(..))
    }

    /// True when both messages have been exchanged.
    pub fn is_finished(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    /// Writes the next inner message with `payload`, sealed by `outer`,
    /// into `out` (at least [`MAX_PQ_MESSAGE`] bytes); returns its length.
    /// On error the handshake is dead.
    pub fn write_message(
        &mut self,
        payload: &[u8],
        outer: &mut Transport<P>,
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if payload.len() > MAX_PQ_PAYLOAD || !self.is_write_turn() {
            return Err(CryptoError::WrongState);
        }
        let r = self
            .write_inner(payload, out)
            .and_then(|n| outer.seal_inner(out, n));
        if r.is_err() {
            self.step = Step::Failed;
            self.key.wipe();
            let end = out.len().min(MAX_PQ_MESSAGE);
            if let Some(out) = out.get_mut(..end) {
                out.zeroize();
            }
        }
        r
    }

    fn write_inner(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        let token_len = match &mut self.step {
            // -> e: the ephemeral KEM key in clear.
            Step::InitiatorSend => {
                let dst = out
                    .get_mut(..PUBLIC_KEY_LEN)
                    .ok_or(CryptoError::BufferTooSmall)?;
                let pk = self
                    .key
                    .bytes()
                    .and_then(|k| k.get(EK_IN_DK))
                    .ok_or(CryptoError::WrongState)?;
                dst.copy_from_slice(pk);
                // A psk pattern's `e` is mixed into the key too.
                self.state.mix_hash(dst);
                self.state.mix_key(dst);
                self.step = Step::InitiatorReceive;
                PUBLIC_KEY_LEN
            }
            // <- ekem: encapsulate to it; the ciphertext in clear, its secret mixed in.
            Step::ResponderSend(rng) => {
                let re = self
                    .key
                    .bytes()
                    .and_then(|k| k.get(..PUBLIC_KEY_LEN))
                    .ok_or(CryptoError::WrongState)?;
                let dst = out
                    .get_mut(..CIPHERTEXT_LEN)
                    .ok_or(CryptoError::BufferTooSmall)?;
                let mut ss = [0u8; 32];
                let r = encaps_into::<P>(re, rng, dst, &mut ss);
                self.key.wipe();
                r?;
                self.state.mix_hash(dst);
                self.state.mix_key(&ss);
                ss.zeroize();
                // psk
                self.state.mix_key_and_hash(&self.psk.0);
                self.step = Step::Done;
                CIPHERTEXT_LEN
            }
            _ => return Err(CryptoError::WrongState),
        };
        // payload ≤ MAX_PQ_PAYLOAD (checked by the caller): cannot overflow.
        let end = token_len
            .saturating_add(payload.len())
            .saturating_add(TAG_LEN);
        let dst = out
            .get_mut(token_len..end)
            .ok_or(CryptoError::BufferTooSmall)?;
        self.state
            .encrypt_and_hash(payload, dst)
            .map_err(|_| CryptoError::WrongState)?;
        Ok(end)
    }

    /// Reads an inner message sealed by `outer`, opening it in place in
    /// `message`; its payload goes to `out`. On error the handshake is dead.
    pub fn read_message(
        &mut self,
        message: &mut [u8],
        outer: &mut Transport<P>,
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if !matches!(
            self.step,
            Step::InitiatorReceive | Step::ResponderReceive(_)
        ) {
            return Err(CryptoError::WrongState);
        }
        let r = outer.open_inner(message).and_then(|n| {
            message
                .get(..n)
                .ok_or(CryptoError::DecryptFailed)
                .and_then(|m| self.read_inner(m, out))
        });
        if r.is_err() {
            self.step = Step::Failed;
            self.key.wipe();
        }
        r
    }

    fn read_inner(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        let token = match &mut self.step {
            Step::ResponderReceive(_) => {
                let re = message
                    .get(..PUBLIC_KEY_LEN)
                    .ok_or(CryptoError::DecryptFailed)?;
                self.state.mix_hash(re);
                self.state.mix_key(re);
                PUBLIC_KEY_LEN
            }
            Step::InitiatorReceive => {
                let ct = message
                    .get(..CIPHERTEXT_LEN)
                    .ok_or(CryptoError::DecryptFailed)?;
                let r = <P::Kem as crate::crypto::MlKem768>::decapsulate_slot(ct, &mut self.key);
                self.key.wipe();
                let ss = r.map_err(|_| CryptoError::DecryptFailed)?;
                self.state.mix_hash(ct);
                self.state.mix_key(&ss[..]);
                self.state.mix_key_and_hash(&self.psk.0);
                CIPHERTEXT_LEN
            }
            _ => return Err(CryptoError::WrongState),
        };
        let sealed = message.get(token..).unwrap_or_default();
        let n = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::DecryptFailed)?;
        let dst = out.get_mut(..n).ok_or(CryptoError::BufferTooSmall)?;
        self.state
            .decrypt_and_hash(sealed, dst)
            .map_err(|_| CryptoError::DecryptFailed)?;
        // Only now, with the payload authenticated, does the step move on.
        self.step = match core::mem::replace(&mut self.step, Step::Failed) {
            Step::ResponderReceive(rng) => {
                if let (Some(dst), Some(k)) = (
                    self.key
                        .bytes_mut()
                        .and_then(|b| b.get_mut(..PUBLIC_KEY_LEN)),
                    message.get(..PUBLIC_KEY_LEN),
                ) {
                    dst.copy_from_slice(k);
                }
                Step::ResponderSend(rng)
            }
            _ => Step::Done,
        };
        Ok(n)
    }

    /// Ends both layers: the session's transport on the inner keys, with the
    /// outer handshake's peer; the outer transport is wiped.
    pub fn into_transport(
        self,
        outer: Transport<P>,
        limits: &Limits,
        now: Instant,
    ) -> Result<Transport<P>, CryptoError> {
        if !self.is_finished() {
            return Err(CryptoError::WrongState);
        }
        let remote = outer.remote_static();
        drop(outer);
        let ciphers = self.state.split().map_err(|_| CryptoError::WrongState)?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&self.state.get_hash()[..]);
        let secrets = crate::noise::Exported::of(&self.state.get_chaining_key()[..]);
        Ok(Transport::from_ciphers(
            ciphers,
            self.initiator,
            hash,
            secrets,
            remote,
            limits,
            now,
        ))
    }
}

/// Where a FIPS 203 decapsulation key holds its encapsulation key:
/// `dk = dk_pke (384·k) || ek (384·k + 32) || H(ek) || z`, k = 3.
const EK_IN_DK: core::ops::Range<usize> = 1152..1152 + PUBLIC_KEY_LEN;

const _: () = assert!(1152 + PUBLIC_KEY_LEN + 64 == SECRET_KEY_LEN);

/// Key generation into `sk` (which holds the public key too, [`EK_IN_DK`]),
/// in a frame of its own: the KEM's deep stack is gone before anything
/// that follows (inlined, the frames add up on the device).
#[inline(never)]
fn keygen_into<P: CryptoProvider>(
    seed: &mut Drawn<64>,
    sk: &mut KeySlot,
) -> Result<(), CryptoError> {
    let seed = seed.bytes.take().ok_or(CryptoError::WrongState)?;
    let sk = sk.bytes_mut().ok_or(CryptoError::WrongState)?;
    <P::Kem as crate::crypto::MlKem768>::keygen_into(&seed, sk).map_err(|_| CryptoError::WrongState)
}

/// Encapsulation to `pk` into the message (`ct`) and `ss`, in a frame of
/// its own (see [`keygen_into`]).
#[inline(never)]
fn encaps_into<P: CryptoProvider>(
    pk: &[u8],
    rng: &mut Drawn<32>,
    ct: &mut [u8],
    ss: &mut [u8; 32],
) -> Result<(), CryptoError> {
    let ct = ct.try_into().map_err(|_| CryptoError::BufferTooSmall)?;
    <P::Kem as crate::crypto::MlKem768>::encapsulate_into(pk, rng, ct, ss)
        .map_err(|_| CryptoError::WeakKey)
}

/// The prologue of a re-keying handshake.
pub const REKEY_PROLOGUE: &[u8] = b"secureCom/2/rekey";

/// The randomness of one [`PqLayer`], drawn before its outer handshake
/// finishes (by a channel when it is made, by a [`Rekey`] when it starts),
/// so that the layer can start where no RNG is at hand. For an initiator
/// its ephemeral ML-KEM key pair is generated from it at once: at the
/// shallow call depth where channels are made, not deep inside a read (the
/// device's stack decides this). Wiped on drop.
pub struct LayerSeed {
    bytes: SeedBytes,
    /// Drawn ([`Self::fill`]): an undrawn seed makes a layer that fails.
    drawn: bool,
}

enum SeedBytes {
    /// The initiator's ephemeral decapsulation key, which holds its
    /// encapsulation key (FIPS 203: `dk = dk_pke || ek || H(ek) || z`).
    Initiator(KeySlot),
    /// The responder's encapsulation randomness `m`.
    Responder(Drawn<32>),
}

impl LayerSeed {
    /// Draws the layer's randomness: for the `initiator`, 64 bytes `d || z`
    /// and its key pair `ML-KEM.KeyGen_internal(d, z)` (with `P`'s KEM);
    /// for the responder, 32 bytes.
    pub fn draw<P: CryptoProvider, R: RngCore + CryptoRng>(
        initiator: bool,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        let mut seed = Self::undrawn(initiator);
        seed.fill::<P, R>(rng)?;
        Ok(seed)
    }

    /// A seed not drawn yet, to be drawn in place where it will stay
    /// ([`Self::fill`]): the device makes its key pair straight into its
    /// channel this way, with no 2.4 KB copy alive under the KEM's stack.
    pub fn undrawn(initiator: bool) -> Self {
        LayerSeed {
            bytes: if initiator {
                SeedBytes::Initiator(KeySlot::new())
            } else {
                SeedBytes::Responder(Drawn::default())
            },
            drawn: false,
        }
    }

    /// Draws this seed (see [`Self::draw`]) in place.
    pub fn fill<P: CryptoProvider, R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
    ) -> Result<(), CryptoError> {
        match &mut self.bytes {
            SeedBytes::Initiator(sk) => {
                let mut seed = Drawn::<64>::from_rng(rng)?;
                keygen_into::<P>(&mut seed, sk)?;
            }
            SeedBytes::Responder(m) => *m = Drawn::from_rng(rng)?,
        }
        self.drawn = true;
        Ok(())
    }
}

enum RekeyStage<P: CryptoProvider> {
    /// The fresh `NNpsk0` (ephemeral X25519), keyed by the old session.
    Classical(Handshake<P>, LayerSeed),
    /// The `pqNNpsk2` over it (ephemeral ML-KEM-768).
    PostQuantum(Transport<P>, PqLayer<P>),
    Failed,
}

/// A handshake that re-keys a running session in place: a fresh `NNpsk0`
/// (new ephemeral X25519 keys on both sides) whose PSK is the old session's
/// re-keying secret ([`Transport::rekey_psk`]: so only the two ends of that
/// session, in that session, can complete it), then the post-quantum layer
/// over it exactly as for the channels' first handshakes. Four messages,
/// initiator first; they travel inside the old session (the caller seals
/// them as its own messages), and the result replaces it: the old keys are
/// then dropped (and wiped).
///
/// What it gives: the new keys depend on fresh ephemeral secrets of both
/// kinds, so a passive attacker who stole the old session's keys learns
/// nothing of the new ones (post-compromise security), and one who later
/// takes the new state learns nothing of the old traffic (forward
/// secrecy). An active attacker holding the old keys could impersonate a
/// side for the re-key (the PSK is all that authenticates it, as the old
/// transport authenticated every message before it): re-keying heals from
/// a passive compromise, not from an attacker in the middle with the keys.
pub struct Rekey<P: CryptoProvider = RustCrypto> {
    stage: RekeyStage<P>,
}

impl<P: CryptoProvider> Rekey<P> {
    /// Starts a re-key of `session`; draws every random byte it needs now.
    pub fn new<R: RngCore + CryptoRng>(
        initiator: bool,
        session: &Transport<P>,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        let mut rekey = Self::undrawn(initiator, session, rng)?;
        rekey.draw(rng)?;
        Ok(rekey)
    }

    /// [`Self::new`] with the post-quantum layer's randomness not drawn
    /// yet: [`Self::draw`] draws it where the re-key stays (the
    /// initiator's ML-KEM key pair is made then, with no copy of this
    /// state alive under the KEM's stack: the device's). The same draws,
    /// in the same order, as [`Self::new`].
    pub fn undrawn<R: RngCore + CryptoRng>(
        initiator: bool,
        session: &Transport<P>,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        let psk = session.rekey_psk();
        let classical = Handshake::new(
            crate::noise::HandshakeParams {
                pattern: crate::noise::Pattern::NNpsk0,
                initiator,
                prologue: REKEY_PROLOGUE,
                local_static: None,
                remote_static: None,
                psk: Some(&psk),
                check: crate::noise::RemoteCheck::Any,
            },
            rng,
        )?;
        Ok(Rekey {
            stage: RekeyStage::Classical(classical, LayerSeed::undrawn(initiator)),
        })
    }

    /// Draws what [`Self::undrawn`] left undrawn, in place.
    pub fn draw<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<(), CryptoError> {
        match &mut self.stage {
            RekeyStage::Classical(_, seed) => seed.fill::<P, R>(rng),
            _ => Err(CryptoError::WrongState),
        }
    }

    /// True when it is our turn to write.
    pub fn is_write_turn(&self) -> bool {
        match &self.stage {
            RekeyStage::Classical(h, _) => h.is_write_turn(),
            RekeyStage::PostQuantum(_, l) => l.is_write_turn(),
            RekeyStage::Failed => false,
        }
    }

    /// True when all four messages have been exchanged.
    pub fn is_finished(&self) -> bool {
        matches!(&self.stage, RekeyStage::PostQuantum(_, l) if l.is_finished())
    }

    /// Writes the next message with `payload` into `out` (at least
    /// [`MAX_PQ_MESSAGE`] bytes). On error the re-key is dead.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        let r = match &mut self.stage {
            RekeyStage::Classical(h, _) => h.write_message(payload, out),
            RekeyStage::PostQuantum(t, l) => l.write_message(payload, t, out),
            RekeyStage::Failed => Err(CryptoError::WrongState),
        };
        self.settle(r)
    }

    /// Reads the next message (opened in place in `message`); its payload
    /// goes to `out`. On error the re-key is dead.
    pub fn read_message(
        &mut self,
        message: &mut [u8],
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let r = match &mut self.stage {
            RekeyStage::Classical(h, _) => h.read_message(message, out),
            RekeyStage::PostQuantum(t, l) => l.read_message(message, t, out),
            RekeyStage::Failed => Err(CryptoError::WrongState),
        };
        self.settle(r)
    }

    /// After a message: the classical stage, once finished, gives way to
    /// the post-quantum one; any error kills the re-key.
    fn settle(&mut self, r: Result<usize, CryptoError>) -> Result<usize, CryptoError> {
        if r.is_err() {
            self.stage = RekeyStage::Failed;
            return r;
        }
        if matches!(&self.stage, RekeyStage::Classical(h, _) if h.is_finished()) {
            let RekeyStage::Classical(h, seed) =
                core::mem::replace(&mut self.stage, RekeyStage::Failed)
            else {
                return Err(CryptoError::WrongState);
            };
            // Limits and time do not matter for this intermediate transport:
            // it seals two messages and is gone.
            let t = h.into_transport(&Limits::default(), Instant::ZERO)?;
            let layer = PqLayer::from_seed(&t, seed);
            self.stage = RekeyStage::PostQuantum(t, layer);
        }
        r
    }

    /// True once the classical stage is over (the next messages are the
    /// post-quantum layer's).
    pub fn is_post_quantum(&self) -> bool {
        matches!(self.stage, RekeyStage::PostQuantum(..))
    }

    /// The new session, to replace `old` (which the caller drops, and so
    /// wipes, once nothing more travels under it): it keeps `old`'s peer and
    /// its channel binding (the session's first handshake hash, which keys
    /// the request channel and names the session), and its message counts
    /// and key age start afresh from `now`.
    pub fn into_transport(
        self,
        old: &Transport<P>,
        limits: &Limits,
        now: Instant,
    ) -> Result<Transport<P>, CryptoError> {
        match self.stage {
            RekeyStage::PostQuantum(t, l) if l.is_finished() => {
                let mut new = l.into_transport(t, limits, now)?;
                new.inherit(old);
                Ok(new)
            }
            _ => Err(CryptoError::WrongState),
        }
    }
}
