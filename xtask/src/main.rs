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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
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
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn test() -> Result<()> {
    run("installing what the tests need (.ci/setup)", Command::new("bash").current_dir(root()).arg(".ci/setup"))?;
    run("rustfmt check", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run("clippy (workspace, all targets, warnings denied)", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(
        "core builds for thumbv7m-none-eabi (no_std, no alloc)",
        cargo().args(["build", "-p", "securecom-core", "--target", "thumbv7m-none-eabi"]),
    )?;
    let fw = root().join("embedded-client");
    if fw.join("Cargo.toml").exists() {
        run("firmware builds (release)", Command::new("cargo").current_dir(&fw).args(["build", "--release"]))?;
        if fw.join("check-no-heap.sh").exists() {
            run("firmware links no allocator", Command::new("bash").current_dir(&fw).arg("check-no-heap.sh"))?;
        }
    }
    run("workspace tests", cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    let fuzz = root().join("fuzz");
    if fuzz.join("Cargo.toml").exists() && fuzz.join("run-smoke.sh").exists() {
        run("fuzz targets (short run each)", Command::new("bash").current_dir(&fuzz).arg("run-smoke.sh"))?;
    }
    eprintln!("==> all tests passed");
    Ok(())
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
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
    run("building server and client", cargo().args(["build", "-q", "-p", "securecom-server", "-p", "securecom-client"]))?;
    let bin = target_dir().join("debug");
    let server = bin.join("securecom-server");
    let client = bin.join("securecom-client");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let data = dir.join("server");
    let init = output(Command::new(&server).arg("--data-dir").arg(&data).arg("init"))?;
    let server_key = init.lines().find_map(|l| l.strip_prefix("public key: ")).context("no server key")?.to_string();
    for user in ["alice", "bob"] {
        let key = dir.join(format!("{user}.key"));
        let out = output(Command::new(&client).arg("keygen").arg("--key").arg(&key))?;
        let public = out.lines().next().context("no public key")?.trim().to_string();
        output(Command::new(&server).arg("--data-dir").arg(&data).args(["add-user", user, &public]))?;
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
    let addr = line.trim().strip_prefix("listening on ").context("server did not start")?.to_string();

    let _bob = spawn_bob(&client, &addr, &server_key, &dir.join("bob.key"))?;
    let device = if no_device { None } else { crate_device::start(dir, &server, &data, &addr, &server_key)? };

    println!();
    println!("secureCom demo: a server on {addr}, with users alice (you), bob (a scripted peer){}.", if device.is_some() { " and device (the Cortex-M3 in QEMU)" } else { "" });
    println!("Try: /users   /chat bob   then type lines to chat   /leave   /quit   (/help for more)");
    println!();
    let status = Command::new(&client)
        .args(["chat", "--server", &addr, "--server-key", &server_key, "--user", "alice", "--key"])
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
        .args(["chat", "--script", "--server", addr, "--server-key", server_key, "--user", "bob", "--key"])
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
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
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

mod crate_device {
    //! The embedded device in the demo (when QEMU and the firmware are there).
    use super::*;

    pub(super) fn start(_dir: &Path, _server: &Path, _data: &Path, _addr: &str, _server_key: &str) -> Result<Option<Kill>> {
        Ok(None)
    }
}
