//! The secureCom client firmware: boot, read the configuration, log in, run.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use cortex_m_rt::entry;
use securecom_core::{ClientConfig, Limits, RequestMode};
use securecom_embedded_client::crypto::{Client, RequestLink};
use static_cell::StaticCell;

use securecom_embedded_client::clock::{Clock, Meter, CORE_HZ};
use securecom_embedded_client::config::{self, RequestChannel, CONFIG_MAX};
use securecom_embedded_client::device::{Behaviour, Device, Login, Parts, RX_CHUNK, TX_CHUNK};
use securecom_embedded_client::entropy;
use securecom_embedded_client::exit::{exit, ExitCode};
use securecom_embedded_client::hw::pl011::{Port, Uart};
use securecom_embedded_client::known_peers::{KnownPeers, KNOWN_PEERS_MAX};

// All storage is static: the linker's figures are the device's RAM budget.
static CLIENT: StaticCell<Client> = StaticCell::new();
static LINK: StaticCell<Option<RequestLink>> = StaticCell::new();
static TX: StaticCell<[u8; TX_CHUNK]> = StaticCell::new();
static RX: StaticCell<[u8; RX_CHUNK]> = StaticCell::new();
static DEVICE: StaticCell<Device> = StaticCell::new();
static KNOWN: StaticCell<KnownPeers> = StaticCell::new();

#[entry]
fn main() -> ! {
    let (device, login) = boot();
    // Out of `boot`'s frame: the login's start makes the ML-KEM key pair,
    // the deepest stack of the firmware after decapsulation.
    device.start_login(login)
}

/// Reads and parses the configuration. Not inlined: the 2 KB text is read
/// into this frame (and wiped once parsed: the configuration keeps what it
/// needs), gone before the client's key generation in `boot`.
#[inline(never)]
fn load_config(known: &mut KnownPeers) -> config::DeviceConfig {
    let mut text = [0u8; CONFIG_MAX];
    match config::load(&mut text, known) {
        Ok(c) => c,
        Err(e) => {
            defmt::error!("config: {}", e);
            exit(ExitCode::Config)
        }
    }
}

/// The client's static, holding an unstarted client. Not inlined: the
/// stand-in is built in this frame, gone before `Client::start`'s key
/// generation.
#[inline(never)]
fn unstarted_client() -> &'static mut Client {
    CLIENT.init_with(Client::unstarted)
}

/// Everything before the driver loop. Not inlined: its temporaries are gone
/// before the loop's frames start, so the two peaks do not add up. The
/// client is started in its static, in place (`Client::start`): its 14 KB
/// never pass through the stack but as the unstarted stand-in.
#[inline(never)]
fn boot() -> (&'static mut Device, Login) {
    let Some(core) = cortex_m::Peripherals::take() else {
        exit(ExitCode::Panic)
    };
    let clock = Clock::start(core.SYST);
    defmt::info!(
        "secureCom embedded client {=str}, core clock {=u32} Hz",
        env!("CARGO_PKG_VERSION"),
        CORE_HZ
    );

    let known = KNOWN.init_with(KnownPeers::new);
    let config = load_config(known);
    defmt::info!(
        "config: user {}, request channel {}, chats {}, known peers {=usize} of {=usize}, admin {}",
        config.user,
        config.request,
        config.chats,
        known.len(),
        KNOWN_PEERS_MAX,
        config.admin
    );

    let rng = entropy::rng();
    // UARTs after the configuration: the first byte the server sees is our
    // handshake, and the request channel's host dials only after login.
    let (Some(std_uart), Some(req_uart)) = (Uart::take(Port::Uart0), Uart::take(Port::Uart1))
    else {
        exit(ExitCode::Panic)
    };

    // The configuration chooses how the request channel opens, and with it
    // how QEMU bridges UART1 (run-qemu.sh): a listening socket the server
    // dials, or a connecting socket to the server. One UART cannot be both,
    // so the core's `Auto` (listen, then dial) is not offered.
    let (mode, daemon_port) = match config.request {
        RequestChannel::Listen { daemon_port } => (RequestMode::Listen, Some(daemon_port)),
        RequestChannel::Dial => (RequestMode::Dial, None),
    };
    let client_config = ClientConfig {
        user: config.user,
        server_key: config.server_key,
        daemon_port,
        limits: Limits {
            rekey_after: securecom_core::Duration::from_secs(u64::from(config.rekey_after)),
            ..Limits::DEFAULT
        },
    };
    let meter = Meter::default();
    let login = Login {
        config: client_config,
        key: config.key,
        mode,
    };
    let client = unstarted_client();

    let parts = Parts {
        std_uart,
        req_uart,
        clock,
        meter,
        rng,
        client,
        link: LINK.init(None),
        tx: TX.init([0; TX_CHUNK]),
        rx: RX.init([0; RX_CHUNK]),
        known,
        dial: mode == RequestMode::Dial,
    };
    let behaviour = Behaviour {
        accept: config.accept,
        call: config.call,
        chats: config.chats,
        admin: config.admin,
    };
    (DEVICE.init_with(|| Device::new(parts, behaviour)), login)
}
