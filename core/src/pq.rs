//! Protocol 2's post-quantum layer: a PQNoise `pqNN` handshake (`-> e`,
//! `<- ekem`, ephemeral ML-KEM-768) run *inside* a finished classical
//! handshake and bound to it, exactly as clatter's
//! `HybridDualLayerHandshake` composes the two (see
//! `docs/design/protocol-v2.md` for why this construction):
//!
//! 1. the outer (classical) handshake finishes and becomes a [`Transport`];
//! 2. the inner one mixes `MixHash("clatter.hybrid_dual_layer.outer")` and
//!    `MixKeyAndHash(h_outer)` before its first message;
//! 3. each inner message travels encrypted by the outer transport;
//! 4. the session's transport keys are the inner handshake's.
//!
//! So the keys rest on ML-KEM's secret (an attacker who recorded everything
//! and later breaks X25519 learns nothing), while an attacker who can break
//! ML-KEM but not X25519 never sees the KEM key or ciphertext (they are
//! under the outer transport); authentication is the outer handshake's.
//!
//! Randomness is the caller's, drawn when the layer is made: the
//! initiator's ephemeral KEM key (64 bytes, `d || z`) or the responder's
//! encapsulation (32 bytes, `m`); clatter's engine gets them through
//! `with_rng` (the one addition of `vendor/clatter`).
//!
//! Not on the wire yet: the channels still speak protocol 1.

use clatter::bytearray::SensitiveByteArray;
use clatter::crypto::hash::Blake2s;
use clatter::error::{KemError, KemResult};
use clatter::handshakepattern::noise_pqnn;
use clatter::traits::{CryptoComponent, Handshaker, Kem};
use clatter::{KeyPair, PqHandshakeCore};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::crypto::CryptoProvider;
use crate::error::CryptoError;
use crate::kem::{CIPHERTEXT_LEN, PUBLIC_KEY_LEN};
use crate::limits::{Limits, TAG_LEN};
use crate::noise::Transport;
use crate::time::Instant;
use crate::RustCrypto;

/// The domain clatter's dual layer mixes before the outer handshake hash.
pub const DUAL_LAYER_DOMAIN: &[u8] = b"clatter.hybrid_dual_layer.outer";

/// The inner handshake's prologue.
pub const PQ_PROLOGUE: &[u8] = b"secureCom/2/pq";

/// Largest payload of an inner handshake message.
pub const MAX_PQ_PAYLOAD: usize = 256;

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

/// The responder's encapsulation randomness, drawn from the caller's RNG
/// when the layer is made and handed out once, to the one `fill_bytes` of
/// 32 bytes the encapsulation makes. Any other draw is a bug of ours (the
/// initiator's key is generated before the engine exists): it fails the
/// handshake, or (for the infallible calls) stops the program rather than
/// hand out predictable bytes.
#[derive(Clone, Default)]
pub struct Drawn {
    bytes: Option<SensitiveByteArray<[u8; 32]>>,
}

impl RngCore for Drawn {
    fn next_u32(&mut self) -> u32 {
        unreachable!("the KEM draws with fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("the KEM draws with fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.try_fill_bytes(dest).is_err() {
            unreachable!("one encapsulation per handshake")
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        match self.bytes.take() {
            Some(b) if dest.len() == b.len() => {
                dest.copy_from_slice(&b[..]);
                Ok(())
            }
            _ => Err(rand_core::Error::from(core::num::NonZeroU32::MIN)),
        }
    }
}

impl CryptoRng for Drawn {}

type Engine<P> = PqHandshakeCore<
    <P as CryptoProvider>::Kem,
    NoKem,
    <P as CryptoProvider>::Cipher,
    Blake2s,
    Drawn,
>;

/// The inner `pqNN` handshake of one channel, over the finished outer one.
pub struct PqLayer<P: CryptoProvider = RustCrypto> {
    engine: Engine<P>,
}

impl<P: CryptoProvider> PqLayer<P> {
    /// Starts the inner handshake over `outer` (finished); `initiator` as in
    /// the outer one. Draws the initiator's KEM key or the responder's
    /// encapsulation randomness from `rng` now.
    pub fn new<R: RngCore + CryptoRng>(
        initiator: bool,
        outer: &Transport<P>,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        let (e, drawn) = if initiator {
            let mut seed = Drawn64::default();
            rng.try_fill_bytes(&mut seed.0[..])
                .map_err(|_| CryptoError::WrongState)?;
            let kp = P::Kem::genkey_rng(&mut seed).map_err(|_| CryptoError::WrongState)?;
            (Some(kp), Drawn::default())
        } else {
            let mut m = SensitiveByteArray::new([0u8; 32]);
            rng.try_fill_bytes(&mut m[..])
                .map_err(|_| CryptoError::WrongState)?;
            (None, Drawn { bytes: Some(m) })
        };
        let mut engine =
            Engine::<P>::new(noise_pqnn(), PQ_PROLOGUE, initiator, None, e, None, None)
                .map_err(|_| CryptoError::WrongState)?
                .with_rng(drawn);
        let state = engine.get_state_mut();
        state.mix_hash(DUAL_LAYER_DOMAIN);
        state.mix_key_and_hash(outer.handshake_hash());
        Ok(PqLayer { engine })
    }

    /// True when it is our turn to write.
    pub fn is_write_turn(&self) -> bool {
        !self.engine.is_finished() && self.engine.is_write_turn()
    }

    /// True when both messages have been exchanged.
    pub fn is_finished(&self) -> bool {
        self.engine.is_finished()
    }

    /// Writes the next inner message with `payload`, sealed by `outer`, into `out`.
    pub fn write_message(
        &mut self,
        payload: &[u8],
        outer: &mut Transport<P>,
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if payload.len() > MAX_PQ_PAYLOAD {
            return Err(CryptoError::BufferTooSmall);
        }
        let mut inner = [0u8; MAX_PQ_MESSAGE];
        let n = self
            .engine
            .write_message(payload, &mut inner)
            .map_err(|_| CryptoError::WrongState)?;
        let sealed = inner
            .get(..n)
            .ok_or(CryptoError::BufferTooSmall)
            .and_then(|m| outer.seal_inner(m, out));
        inner.zeroize();
        sealed
    }

    /// Reads an inner message sealed by `outer`; its payload goes to `out`.
    pub fn read_message(
        &mut self,
        message: &[u8],
        outer: &mut Transport<P>,
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let mut inner = [0u8; MAX_PQ_MESSAGE];
        let n = outer.open_inner(message, &mut inner)?;
        let read = inner
            .get(..n)
            .ok_or(CryptoError::DecryptFailed)
            .and_then(|m| {
                self.engine
                    .read_message(m, out)
                    .map_err(|_| CryptoError::DecryptFailed)
            });
        inner.zeroize();
        read
    }

    /// Ends both layers: the session's transport on the inner keys, with the
    /// outer handshake's peer; the outer transport is wiped.
    pub fn into_transport(
        self,
        outer: Transport<P>,
        limits: &Limits,
        now: Instant,
    ) -> Result<Transport<P>, CryptoError> {
        let remote = outer.remote_static();
        drop(outer);
        let state = self
            .engine
            .finalize()
            .map_err(|_| CryptoError::WrongState)?;
        Ok(Transport::from_state(state, remote, limits, now))
    }
}

/// The initiator's 64 bytes of KEM key seed, for clatter's `genkey_rng`
/// (which wants an `Rng` it can make with `Default`).
#[derive(Clone)]
struct Drawn64(SensitiveByteArray<[u8; 64]>, bool);

impl Default for Drawn64 {
    fn default() -> Self {
        Drawn64(SensitiveByteArray::new([0u8; 64]), false)
    }
}

impl RngCore for Drawn64 {
    fn next_u32(&mut self) -> u32 {
        unreachable!("the KEM draws with fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("the KEM draws with fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.try_fill_bytes(dest).is_err() {
            unreachable!("one key generation")
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        if self.1 || dest.len() != self.0.len() {
            return Err(rand_core::Error::from(core::num::NonZeroU32::MIN));
        }
        self.1 = true;
        dest.copy_from_slice(&self.0[..]);
        Ok(())
    }
}

impl CryptoRng for Drawn64 {}
