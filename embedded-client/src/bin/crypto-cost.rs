//! The cost of the raw primitives, measured like the firmware's protocol steps.
//!
//! Run under `qemu-system-arm -icount shift=0` (see `measure.sh`): one guest
//! instruction is then one virtual nanosecond, so each figure printed is an
//! instruction count. It measures one X25519 (a scalar multiplication of a
//! peer's key, as in one Noise DH) and one ChaCha20-Poly1305 seal of the
//! sizes a chat message has on the device, plus 1 KiB, with the same crates
//! and versions the core uses; and ML-KEM-768 as the core's portable provider
//! runs it (`securecom_core::kem`), with the stack each operation needs.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use cortex_m_rt::entry;
use rand_core::SeedableRng;
use securecom_embedded_client::clock::Clock;
use securecom_embedded_client::exit::{exit, ExitCode};

/// Plaintext sizes: a short chat message through both layers (E2E, then the
/// standard channel), and a full Noise message.
const SIZES: [usize; 6] = [16, 32, 64, 96, 480, 1008];

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else {
        exit(ExitCode::Panic)
    };
    let mut clock = Clock::start(core.SYST);

    // Fixed inputs: the cost does not depend on them (constant-time code).
    let secret = x25519_dalek::StaticSecret::from(core::hint::black_box([0x42; 32]));
    let peer = x25519_dalek::PublicKey::from(core::hint::black_box([9u8; 32]));
    let t0 = clock.nanos();
    let shared = secret.diffie_hellman(&peer);
    let t1 = clock.nanos();
    defmt::info!("x25519 diffie_hellman: {=u64} ns", t1 - t0);
    let t0 = clock.nanos();
    let public = x25519_dalek::PublicKey::from(&secret);
    let t1 = clock.nanos();
    defmt::info!("x25519 public key (base point): {=u64} ns", t1 - t0);
    core::hint::black_box((shared.as_bytes(), public.as_bytes()));

    let cipher = ChaCha20Poly1305::new(&[7u8; 32].into());
    let nonce = [0u8; 12].into();
    let mut buf = [0u8; 1008];
    for size in SIZES {
        let t0 = clock.nanos();
        let tag = cipher.encrypt_in_place_detached(&nonce, &[], &mut buf[..size]);
        let t1 = clock.nanos();
        core::hint::black_box(&tag);
        defmt::info!(
            "chacha20poly1305 seal {=usize} bytes: {=u64} ns",
            size,
            t1 - t0
        );
    }
    xx_handshake(&mut clock);
    ml_kem(&mut clock);

    let t0 = clock.nanos();
    let t1 = clock.nanos();
    defmt::info!("clock read overhead: {=u64} ns", t1 - t0);
    // Calibration: `delay(n)` runs n + 1 iterations of `subs; bne`: 4000002 instructions.
    let t0 = clock.nanos();
    cortex_m::asm::delay(2_000_000);
    let t1 = clock.nanos();
    defmt::info!("calibration, 4000002 instructions: {=u64} ns", t1 - t0);
    exit(ExitCode::Success)
}

/// The core's XX handshake (the login's pattern), both ends on the device,
/// each message timed with the stack it needs above this function; then
/// protocol 3's post-quantum layer (`securecom_core::pq`) over it.
fn xx_handshake(clock: &mut Clock) {
    use securecom_core::noise::{
        Handshake, HandshakeParams, Pattern, RemoteCheck, STANDARD_PROLOGUE,
    };
    use securecom_core::StaticSecret;

    let mut rng = rand_chacha::ChaCha20Rng::from_seed([1; 32]);
    let t0 = clock.nanos();
    let client_key = StaticSecret::from_bytes(core::hint::black_box([3; 32]));
    let t1 = clock.nanos();
    defmt::info!(
        "core StaticSecret::from_bytes (public key): {=u64} ns",
        t1 - t0
    );
    let server_key = StaticSecret::from_bytes([4; 32]);
    let params = |initiator: bool, key| HandshakeParams {
        pattern: Pattern::XX,
        initiator,
        prologue: STANDARD_PROLOGUE,
        local_static: Some(key),
        remote_static: None,
        psk: None,
        check: RemoteCheck::Any,
    };
    let mut msg = [0u8; 256];
    let mut payload = [0u8; 256];
    let step =
        |clock: &mut Clock, what: &str, f: &mut dyn FnMut() -> bool| step(clock, "xx", what, f);
    let mut client: Option<Handshake> = None;
    let mut server: Option<Handshake> = None;
    step(clock, "initiator new (ephemeral key)", &mut || {
        client = Handshake::new(params(true, &client_key), &mut rng).ok();
        client.is_some()
    });
    step(clock, "responder new (ephemeral key)", &mut || {
        server = Handshake::new(params(false, &server_key), &mut rng).ok();
        server.is_some()
    });
    let (Some(mut c), Some(mut s)) = (client, server) else {
        return;
    };
    let mut n = 0;
    step(clock, "-> e (write)", &mut || {
        c.write_message(&[], &mut msg).map(|k| n = k).is_ok()
    });
    step(clock, "-> e (read)", &mut || {
        s.read_message(&msg[..n], &mut payload).is_ok()
    });
    step(clock, "<- e, ee, s, es (write)", &mut || {
        s.write_message(&[1, 0], &mut msg).map(|k| n = k).is_ok()
    });
    step(clock, "<- e, ee, s, es (read)", &mut || {
        c.read_message(&msg[..n], &mut payload).is_ok()
    });
    step(clock, "-> s, se (write)", &mut || {
        c.write_message(&[1, 5, 0, 0, 0, 0, 0], &mut msg)
            .map(|k| n = k)
            .is_ok()
    });
    step(clock, "-> s, se (read)", &mut || {
        s.read_message(&msg[..n], &mut payload).is_ok()
    });

    // Protocol 3: the inner pqNNpsk2 over the finished XX.
    let limits = securecom_core::Limits::default();
    if let (Ok(oc), Ok(os)) = (
        c.into_transport(&limits, securecom_core::Instant::ZERO),
        s.into_transport(&limits, securecom_core::Instant::ZERO),
    ) {
        pq_layer(clock, oc, os, &mut rng);
    }
}

/// Protocol 3's post-quantum layer (`securecom_core::pq`) over a finished
/// XX, both ends on the device, each step timed with its stack.
#[inline(never)]
fn pq_layer(
    clock: &mut Clock,
    mut oc: securecom_core::noise::Transport,
    mut os: securecom_core::noise::Transport,
    rng: &mut rand_chacha::ChaCha20Rng,
) {
    use securecom_core::pq::{PqLayer, MAX_PQ_MESSAGE};
    defmt::info!(
        "pq layer state: {=usize} bytes",
        core::mem::size_of::<PqLayer>()
    );
    let step =
        |clock: &mut Clock, what: &str, f: &mut dyn FnMut() -> bool| step(clock, "pq", what, f);
    let mut lc = None;
    let mut ls = None;
    step(clock, "initiator new (ML-KEM key)", &mut || {
        lc = PqLayer::new(true, &oc, rng).ok();
        lc.is_some()
    });
    step(clock, "responder new", &mut || {
        ls = PqLayer::new(false, &os, rng).ok();
        ls.is_some()
    });
    let (Some(mut lc), Some(mut ls)) = (lc, ls) else {
        return;
    };
    let mut big = [0u8; MAX_PQ_MESSAGE];
    let mut payload = [0u8; 16];
    let mut n = 0;
    step(clock, "-> e (write)", &mut || {
        lc.write_message(&[], &mut oc, &mut big)
            .map(|k| n = k)
            .is_ok()
    });
    step(clock, "-> e (read)", &mut || {
        ls.read_message(&mut big[..n], &mut os, &mut payload)
            .is_ok()
    });
    step(clock, "<- ekem (write)", &mut || {
        ls.write_message(&[1], &mut os, &mut big)
            .map(|k| n = k)
            .is_ok()
    });
    step(clock, "<- ekem (read)", &mut || {
        lc.read_message(&mut big[..n], &mut oc, &mut payload)
            .is_ok()
    });
    let limits = securecom_core::Limits::default();
    let ok = matches!(
        (
            lc.into_transport(oc, &limits, securecom_core::Instant::ZERO),
            ls.into_transport(os, &limits, securecom_core::Instant::ZERO),
        ),
        (Ok(a), Ok(b)) if a.handshake_hash() == b.handshake_hash()
    );
    defmt::info!(
        "pq transports: {=str}",
        if ok {
            "same keys on both ends"
        } else {
            "FAILED"
        }
    );
}

/// Runs one protocol step `f`, printing its time and its stack above this
/// function (the stack is repainted first) as `<layer> <what>: ...`.
fn step(clock: &mut Clock, layer: &str, what: &str, f: &mut dyn FnMut() -> bool) {
    use securecom_embedded_client::hw::{repaint_stack, stack_high_water};
    repaint_stack();
    let base = stack_high_water();
    let t0 = clock.nanos();
    let ok = f();
    let t1 = clock.nanos();
    let stack = stack_high_water().saturating_sub(base);
    defmt::info!(
        "{=str} {=str}: {=u64} ns, stack {=usize} bytes{=str}",
        layer,
        what,
        t1 - t0,
        stack,
        if ok { "" } else { " FAILED" }
    );
}

/// ML-KEM-768 key generation, encapsulation and decapsulation through the
/// core's provider (clatter's `Kem` on `fips203`), each timed and with its
/// stack peak above the caller (the stack is repainted before each).
fn ml_kem(clock: &mut Clock) {
    use clatter::traits::Kem;
    use securecom_core::kem::Fips203MlKem768 as K;
    use securecom_embedded_client::hw::{repaint_stack, stack_high_water};
    let mut rng = FixedRng::default();

    repaint_stack();
    let base = stack_high_water();
    let t0 = clock.nanos();
    let kp = K::genkey_rng(&mut rng);
    let t1 = clock.nanos();
    let stack = stack_high_water().saturating_sub(base);
    let Ok(kp) = kp else { exit(ExitCode::Panic) };
    defmt::info!(
        "ml-kem-768 key generation: {=u64} ns, stack {=usize} bytes",
        t1 - t0,
        stack
    );

    repaint_stack();
    let base = stack_high_water();
    let t0 = clock.nanos();
    let enc = K::encapsulate(&kp.public, &mut rng);
    let t1 = clock.nanos();
    let stack = stack_high_water().saturating_sub(base);
    let Ok((ct, ss)) = enc else {
        exit(ExitCode::Panic)
    };
    defmt::info!(
        "ml-kem-768 encapsulation: {=u64} ns, stack {=usize} bytes",
        t1 - t0,
        stack
    );

    repaint_stack();
    let base = stack_high_water();
    let t0 = clock.nanos();
    let dec = K::decapsulate(&ct, &kp.secret[..]);
    let t1 = clock.nanos();
    let stack = stack_high_water().saturating_sub(base);
    match dec {
        Ok(s) if s[..] == ss[..] => {}
        _ => exit(ExitCode::Panic),
    }
    defmt::info!(
        "ml-kem-768 decapsulation: {=u64} ns, stack {=usize} bytes",
        t1 - t0,
        stack
    );
}

/// clatter's `Rng` wants `Default + Clone`: a ChaCha20 generator from a
/// fixed seed (the cost does not depend on the randomness).
#[derive(Clone)]
struct FixedRng(rand_chacha::ChaCha20Rng);

impl Default for FixedRng {
    fn default() -> Self {
        FixedRng(rand_chacha::ChaCha20Rng::from_seed([5; 32]))
    }
}

impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl rand_core::CryptoRng for FixedRng {}
