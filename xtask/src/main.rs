//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `demo`: a working local chat with no set-up: starts a server with fresh
//!   users, a scripted peer `bob` (accepts requests and answers), the
//!   embedded device in QEMU when `qemu-system-arm` is installed, and opens
//!   an interactive client for you as `alice`.
//! - `test`: the whole test suite (what `.ci/run` runs): formatting, clippy,
//!   the core built for `thumbv7m-none-eabi`, every workspace test (unit,
//!   vectors, interop, golden bytes, in-memory pairs, properties, end to end
//!   with the real programs and the firmware in QEMU), the firmware's no-heap
//!   check, and a short run of every fuzz target.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {what}");
    let status = cmd.status().with_context(|| format!("starting: {what}"))?;
    if !status.success() {
        bail!("failed: {what} ({status})");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo(args.iter().any(|a| a == "--no-device")),
        Some("test") => test(),
        _ => {
            eprintln!("usage: cargo xtask demo [--no-device] | cargo xtask test");
            std::process::exit(2);
        }
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test() -> Result<()> {
    run(
        "installing what the tests need (.ci/setup)",
        Command::new("bash").current_dir(root()).arg(".ci/setup"),
    )?;
    run(
        "rustfmt check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "clippy (workspace, all targets, warnings denied)",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "core builds for thumbv7m-none-eabi (no_std, no alloc)",
        cargo().args([
            "build",
            "-p",
            "securecom-core",
            "--target",
            "thumbv7m-none-eabi",
        ]),
    )?;
    run(
        "core builds for thumbv7m-none-eabi without certificates (as the firmware uses it)",
        cargo().args([
            "build",
            "-p",
            "securecom-core",
            "--no-default-features",
            "--target",
            "thumbv7m-none-eabi",
        ]),
    )?;
    let fw = root().join("embedded-client");
    if fw.join("Cargo.toml").exists() {
        run(
            "firmware builds (release)",
            Command::new("cargo")
                .current_dir(&fw)
                .args(["build", "--release"]),
        )?;
        if fw.join("check-no-heap.sh").exists() {
            run(
                "firmware links no allocator",
                Command::new("bash")
                    .current_dir(&fw)
                    .arg("check-no-heap.sh"),
            )?;
        }
    }
    run(
        "workspace tests",
        cargo().args(["test", "--workspace", "--no-fail-fast"]),
    )?;
    let fuzz = root().join("fuzz");
    if fuzz.join("Cargo.toml").exists() && fuzz.join("run-smoke.sh").exists() {
        run(
            "fuzz targets (short run each)",
            Command::new("bash").current_dir(&fuzz).arg("run-smoke.sh"),
        )?;
    }
    eprintln!("==> all tests passed");
    Ok(())
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        // A child that leads its own process group takes its children along.
        let pid = self.0.id();
        if std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(2))
                    .map(|g| g == pid.to_string())
            })
            == Some(true)
        {
            let _ = Command::new("kill")
                .args(["-TERM", "--"])
                .arg(format!("-{pid}"))
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn demo(no_device: bool) -> Result<()> {
    run(
        "building server and client",
        cargo().args([
            "build",
            "-q",
            "-p",
            "securecom-server",
            "-p",
            "securecom-client",
        ]),
    )?;
    let bin = target_dir().join("debug");
    let server = bin.join("securecom-server");
    let client = bin.join("securecom-client");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let data = dir.join("server");
    let init = output(
        Command::new(&server)
            .arg("--data-dir")
            .arg(&data)
            .arg("init"),
    )?;
    let server_key = init
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .context("no server key")?
        .to_string();
    // Demo identities are unprotected key files (mode 0600) in a temporary
    // folder that disappears with the demo; real users run `keygen`.
    let mut rng = securecom_host::os_rng();
    let mut secrets = Vec::new();
    for user in ["alice", "bob", "device"] {
        let secret = securecom_core::StaticSecret::generate(&mut rng);
        securecom_host::keyfile::write(&dir.join(format!("{user}.key")), &secret)?;
        let public = securecom_host::public_key_hex(&secret.public_key());
        output(
            Command::new(&server)
                .arg("--data-dir")
                .arg(&data)
                .args(["add-user", user, &public]),
        )?;
        secrets.push(secret);
    }
    let log = std::fs::File::create(dir.join("server.log"))?;
    let mut srv = Command::new(&server)
        .arg("--data-dir")
        .arg(&data)
        .args(["run", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()?;
    let mut line = String::new();
    BufReader::new(srv.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let srv = Kill(srv);
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .context("server did not start")?
        .to_string();

    let _bob = spawn_bob(&client, &addr, &server_key, &dir.join("bob.key"))?;
    let device = if no_device {
        None
    } else {
        device::start(dir, &addr, &server_key, &secrets[2])?
    };

    println!();
    println!(
        "secureCom demo: a server on {addr}, with users alice (you), bob (a scripted peer){}.",
        if device.is_some() {
            " and device (a Cortex-M3 in QEMU: try `temp?`)"
        } else {
            ""
        }
    );
    println!(
        "Try: /users   /chat bob{}   then type lines to chat   /leave   /quit   (/help for more)",
        if device.is_some() {
            "   /chat device"
        } else {
            ""
        }
    );
    println!("(logs: {})", dir.display());
    println!();
    let status = Command::new(&client)
        .args([
            "chat",
            "--server",
            &addr,
            "--server-key",
            &server_key,
            "--user",
            "alice",
            "--key",
        ])
        .arg(dir.join("alice.key"))
        .args(["--daemon-listen", "127.0.0.1:0"])
        .status()?;
    drop(device);
    drop(srv);
    if !status.success() {
        bail!("client exited with {status}");
    }
    Ok(())
}

/// Bob: a scripted client that accepts every request and answers each line.
fn spawn_bob(client: &Path, addr: &str, server_key: &str, key: &Path) -> Result<Kill> {
    let mut child = Command::new(client)
        .args([
            "chat",
            "--script",
            "--server",
            addr,
            "--server-key",
            server_key,
            "--user",
            "bob",
            "--key",
        ])
        .arg(key)
        .args(["--daemon-listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().context("bob stdin")?;
    let stdout = child.stdout.take().context("bob stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let reply = match v["event"].as_str() {
                Some("chat_request") => Some("/accept".to_string()),
                Some("message") => {
                    let text = v["text"].as_str().unwrap_or_default();
                    Some(format!("bob here, you said {} bytes: {text}", text.len()))
                }
                _ => None,
            };
            if let Some(r) = reply {
                if writeln!(stdin, "{r}").is_err() {
                    break;
                }
            }
        }
    });
    Ok(Kill(child))
}

mod device {
    //! The embedded device in the demo: the firmware in QEMU, a user like any other.
    use super::*;

    /// Builds the firmware and boots it in QEMU as user `device`; `None`
    /// (with a note) when QEMU is not installed.
    pub(super) fn start(
        dir: &Path,
        server_addr: &str,
        server_key: &str,
        secret: &securecom_core::StaticSecret,
    ) -> Result<Option<Kill>> {
        if !have("qemu-system-arm") {
            eprintln!("note: qemu-system-arm is not installed, so the demo runs without the device (apt-get install -y qemu-system-arm)");
            return Ok(None);
        }
        let fw = root().join("embedded-client");
        // rust-toolchain.toml adds its target only when rustup first installs
        // the toolchain; a machine that already had it needs this once.
        let _ = Command::new("rustup")
            .args(["target", "add", "thumbv7m-none-eabi"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let built = run(
            "building the firmware",
            Command::new("cargo")
                .current_dir(&fw)
                .args([
                    "build",
                    "-q",
                    "--release",
                    "--bin",
                    "securecom-embedded-client",
                ])
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env("CARGO_TARGET_DIR", target_dir()),
        );
        if let Err(e) = built {
            eprintln!("note: {e}; the demo runs without the device");
            return Ok(None);
        }
        let elf = target_dir().join("thumbv7m-none-eabi/release/securecom-embedded-client");
        let daemon_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let server_port = server_addr.rsplit(':').next().context("server port")?;
        let config = dir.join("device.cfg");
        let mut key_hex = String::new();
        for b in secret.to_bytes() {
            key_hex.push_str(&format!("{b:02x}"));
        }
        std::fs::write(
            &config,
            format!("user device\nkey {key_hex}\nserver_key {server_key}\ndaemon_port {daemon_port}\naccept all\n"),
        )?;
        let log = std::fs::File::create(dir.join("device.log"))?;
        // Its own process group, so that stopping the demo stops QEMU and the
        // log decoder behind the runner script too.
        let child = Command::new("bash")
            .process_group(0)
            .arg(fw.join("run-qemu.sh"))
            .arg(&elf)
            .env("SECURECOM_SERVER_PORT", server_port)
            .env("SECURECOM_DAEMON_PORT", daemon_port.to_string())
            .env("SECURECOM_DEVICE_CONFIG", &config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Some(Kill(child)))
    }
}
