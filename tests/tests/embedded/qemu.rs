//! The firmware under QEMU, for `tests/embedded.rs`: build it, boot it with a
//! generated `device.cfg`, read its exit status, and kill it when dropped.
//!
//! QEMU's command line mirrors `embedded-client/run-qemu.sh`: UART0 dials the
//! server, UART1 listens on the device's daemon port or dials the server (see
//! [`RequestUart`]), semihosting carries the configuration path, the entropy
//! seed, the defmt log (stdout, kept raw in a file) and the exit status.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use securecom_tests::{root, Client, Value};

/// The firmware's package directory.
fn crate_dir() -> PathBuf {
    root().join("embedded-client")
}

/// Fails the test (never skips it) when QEMU is not installed.
pub fn require_qemu() {
    let found = Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "qemu-system-arm is missing: the embedded client cannot be tested. \
         Install it with: apt-get install -y qemu-system-arm"
    );
}

/// Builds the firmware once per test binary (`cargo build --release` in
/// `embedded-client/`, as its README says) and returns the ELF.
pub fn firmware() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(crate_dir())
                .args(["build", "--release", "--bin", "securecom-embedded-client"])
                // Host flags would replace the firmware's own (.cargo/config.toml).
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("CARGO_BUILD_TARGET")
                .env("CARGO_TARGET_DIR", &target_dir)
                .output()
                .expect("run cargo build for the firmware");
            assert!(
                out.status.success(),
                "building the firmware failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target_dir.join("thumbv7m-none-eabi/release/securecom-embedded-client")
        })
        .clone()
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A fresh X25519 key pair for the device: (private hex, public hex).
pub fn device_key() -> ([u8; 32], String, String) {
    let mut secret = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .expect("read /dev/urandom");
    let public = securecom_core::StaticSecret::from_bytes(secret).public_key();
    (secret, hex(&secret), hex(public.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint (`xxxx:xxxx:…`) of a public key given in hex, as the
/// device and the host client show it.
pub fn fingerprint(public_hex: &str) -> String {
    let bytes: Vec<u8> = (0..public_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&public_hex[i..i + 2], 16).expect("hex key"))
        .collect();
    let key: [u8; 32] = bytes.try_into().expect("32-byte key");
    securecom_core::PublicKey(key).fingerprint().to_string()
}

/// How QEMU bridges UART1, the request channel (it must match the
/// configuration's `request_mode`).
#[derive(Clone, Copy, Debug)]
pub enum RequestUart {
    /// Listen mode: QEMU listens on this port (the device's `daemon_port`)
    /// and the server dials it.
    Listen(u16),
    /// Dial mode: QEMU connects to this port (the server's, or a proxy in
    /// front of it) at boot, and again 1 s after each close (`reconnect=1`).
    Dial(u16),
}

impl RequestUart {
    /// QEMU's arguments for UART1 (the second serial port).
    fn qemu_args(self) -> Vec<String> {
        match self {
            RequestUart::Listen(port) => vec![
                "-serial".into(),
                format!("tcp:127.0.0.1:{port},server=on,wait=off"),
            ],
            RequestUart::Dial(port) => vec![
                "-chardev".into(),
                format!("socket,id=request,host=127.0.0.1,port={port},reconnect=1"),
                "-serial".into(),
                "chardev:request".into(),
            ],
        }
    }
}

/// The firmware running in QEMU.
pub struct Qemu {
    child: Option<Child>,
    elf: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
}

impl Qemu {
    /// Boots `elf`: UART0 dials `server_port`, UART1 is bridged as `request`
    /// says, the configuration is `config`, `extra` are more QEMU
    /// arguments. QEMU runs in `dir`, where its raw defmt log
    /// (`device.defmt`) and stderr (`qemu.err`) go.
    pub fn boot(
        elf: &Path,
        dir: &Path,
        server_port: u16,
        request: RequestUart,
        config: &Path,
        extra: &[&str],
    ) -> Qemu {
        let log = dir.join("device.defmt");
        let stderr = dir.join("qemu.err");
        let config = config.to_str().expect("UTF-8 config path");
        assert!(
            !config.contains(',') && !config.contains(char::is_whitespace),
            "QEMU's -semihosting-config cannot pass {config}"
        );
        let child = Command::new("qemu-system-arm")
            .current_dir(dir)
            .args(["-cpu", "cortex-m3", "-machine", "lm3s6965evb"])
            .args(["-nographic", "-monitor", "none"])
            .arg("-semihosting-config")
            .arg(format!(
                "enable=on,target=native,arg=securecom-embedded-client,arg={config}"
            ))
            .arg("-serial")
            .arg(format!("tcp:127.0.0.1:{server_port}"))
            .args(request.qemu_args())
            .args(extra)
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("create device.defmt"))
            .stderr(File::create(&stderr).expect("create qemu.err"))
            .spawn()
            .expect("start qemu-system-arm");
        Qemu {
            child: Some(child),
            elf: elf.to_path_buf(),
            log,
            stderr,
        }
    }

    /// True while QEMU runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Panics if QEMU has exited (the device's log is printed on drop).
    pub fn assert_running(&mut self, when: &str) {
        if !self.is_running() {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!("the device stopped {when}: {status:?}");
        }
    }

    /// Waits at most `limit` for QEMU to exit; panics if it does not.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    return s;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the device did not exit within {limit:?}");
    }

    /// The raw defmt stream so far (binary: formatted arguments appear as their bytes).
    pub fn raw_log(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }

    /// The device's log decoded with `defmt-print`, or `None` without it.
    pub fn try_decoded_log(&self) -> Option<String> {
        let raw = File::open(&self.log).ok()?;
        let out = Command::new("defmt-print")
            .arg("-e")
            .arg(&self.elf)
            .stdin(raw)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into())
    }

    /// Waits at most `limit` for the decoded log to contain `needle`; returns
    /// the log. Needs `defmt-print` (`.ci/setup` installs it): without it
    /// the test fails, never skips. Fails early if QEMU stops.
    pub fn wait_log(&mut self, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let log = self.try_decoded_log().unwrap_or_else(|| {
                panic!("defmt-print is needed to read the device's log: cargo install defmt-print")
            });
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < end,
                "the device did not show {needle:?} within {limit:?}"
            );
            if !self.is_running() {
                // A last look: QEMU may have written it just before exiting.
                let log = self.try_decoded_log().unwrap_or_default();
                assert!(
                    log.contains(needle),
                    "the device stopped before showing {needle:?}"
                );
                return log;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The device's log, decoded with `defmt-print` when it is installed.
    pub fn decoded_log(&self) -> String {
        self.try_decoded_log().unwrap_or_else(|| {
            format!(
                "(defmt-print not available: decode with `defmt-print -e {} < {}`)",
                self.elf.display(),
                self.log.display()
            )
        })
    }

    /// The device's log and QEMU's stderr (printed when a test fails).
    pub fn report(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!(
            "--- device log ---\n{}\n--- qemu stderr ---\n{stderr}",
            self.decoded_log()
        )
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// `client` asks `device` for a chat until it is not refused for a passing
/// reason (the server has not reached the device's daemon yet, a slower
/// device a longer moment; the cool-down after the device declined this
/// requester), for at most `limit`; returns the last `chat_ready` or
/// `chat_refused` event.
pub fn request_device(
    client: &mut Client,
    device: &str,
    limit: Duration,
    pause: Duration,
) -> Value {
    let end = Instant::now() + limit;
    loop {
        client.send(&format!("/chat {device}"));
        let v = client.expect_where("chat_ready or chat_refused", |v| {
            v["event"] == "chat_ready" || v["event"] == "chat_refused"
        });
        let retry = v["reason"] == "unreachable" || v["reason"] == "too_soon";
        if v["event"] == "chat_refused" && retry && Instant::now() < end {
            std::thread::sleep(pause);
            continue;
        }
        return v;
    }
}
