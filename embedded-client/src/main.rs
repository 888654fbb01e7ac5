//! The secureCom client firmware: boot, read the configuration, log in, run.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use cortex_m_rt::entry;
use securecom_core::{Client, ClientConfig, Error, Limits, RequestLink, RequestMode, MAX_FRAME};
use static_cell::StaticCell;

use securecom_embedded_client::clock::{Clock, Meter, CORE_HZ};
use securecom_embedded_client::config::{self, RequestChannel, CONFIG_MAX};
use securecom_embedded_client::device::{Behaviour, Device, Parts, RX_CHUNK};
use securecom_embedded_client::entropy;
use securecom_embedded_client::exit::{exit, ExitCode};
use securecom_embedded_client::hw::pl011::{Port, Uart};
use securecom_embedded_client::known_peers::{KnownPeers, KNOWN_PEERS_MAX};

// All storage is static: the linker's figures are the device's RAM budget.
static CONFIG_TEXT: StaticCell<[u8; CONFIG_MAX]> = StaticCell::new();
static CLIENT: StaticCell<Result<Client, Error>> = StaticCell::new();
static LINK: StaticCell<Option<RequestLink>> = StaticCell::new();
static TX: StaticCell<[u8; MAX_FRAME]> = StaticCell::new();
static RX: StaticCell<[u8; RX_CHUNK]> = StaticCell::new();
static DEVICE: StaticCell<Device> = StaticCell::new();
static KNOWN: StaticCell<KnownPeers> = StaticCell::new();

#[entry]
fn main() -> ! {
    boot().run()
}

/// Everything before the driver loop. Not inlined: its large temporaries
/// (the client is built on the stack before it moves into its static) are
/// gone before the loop's frames start, so the two peaks do not add up.
#[inline(never)]
fn boot() -> &'static mut Device {
    let Some(core) = cortex_m::Peripherals::take() else {
        exit(ExitCode::Panic)
    };
    let mut clock = Clock::start(core.SYST);
    defmt::info!(
        "secureCom embedded client {=str}, core clock {=u32} Hz",
        env!("CARGO_PKG_VERSION"),
        CORE_HZ
    );

    let known = KNOWN.init_with(KnownPeers::new);
    let config = match config::load(CONFIG_TEXT.init([0; CONFIG_MAX]), known) {
        Ok(c) => c,
        Err(e) => {
            defmt::error!("config: {}", e);
            exit(ExitCode::Config)
        }
    };
    defmt::info!(
        "config: user {}, request channel {}, chats {}, known peers {=usize} of {=usize}, admin {}",
        config.user,
        config.request,
        config.chats,
        known.len(),
        KNOWN_PEERS_MAX,
        config.admin
    );

    let mut rng = entropy::rng();
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
        limits: Limits::DEFAULT,
    };
    let mut meter = Meter::default();
    let now = clock.now();
    let key = config.key;
    let client = meter.run(&mut clock, || {
        CLIENT.init_with(|| Client::new(client_config, key, now, &mut rng))
    });
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            defmt::error!("cannot start the login: {}", e);
            exit(ExitCode::Session)
        }
    };
    client.set_request_mode(mode);

    let parts = Parts {
        std_uart,
        req_uart,
        clock,
        meter,
        rng,
        client,
        link: LINK.init(None),
        tx: TX.init([0; MAX_FRAME]),
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
    DEVICE.init_with(|| Device::new(parts, behaviour))
}
