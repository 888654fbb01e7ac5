//! Degenerate keys (issue 10 point 6): a low-order X25519 point, such as 32
//! zero bytes, is a public key no one holds, and every handshake with it is
//! readable by anyone. `securecom-server add-user weak 00…00` once let a
//! client with no private key log in as `weak`. Every place a public key
//! enters the programs refuses one: `add-user`, the registry file at start-up
//! and on reload, and the client's pinned `--server-key`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use securecom_tests::{
    client_bin, init_server, keygen, server_bin, server_with_users, Client, Server, User, WAIT,
};

/// What the programs say of such a key.
const LOW_ORDER: &str = "not a valid X25519 public key (low-order point)";

/// Three of the 14 encodings of small-order points: zero, a point of order
/// 8, and p + 1 with the ignored bit 255 set (a non-canonical 1).
const WEAK: [(&str, &str); 3] = [
    (
        "zero",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "order 8",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    ),
    (
        "p + 1, bit 255 set",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ),
];

fn server_cmd(data: &Path) -> Command {
    let mut c = Command::new(server_bin());
    c.arg("--data-dir").arg(data);
    c.env_remove("SECURECOM_SERVER_PASSPHRASE");
    c.env("RUST_BACKTRACE", "0");
    c
}

/// Runs `cmd` (stdin closed) to its end, or kills it and fails after [`WAIT`]:
/// a program that should refuse to start must not hang the test.
#[track_caller]
fn run_to_exit(cmd: &mut Command, out_dir: &Path) -> Output {
    let (out, err) = (out_dir.join("stdout"), out_dir.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start program");
    let end = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not exit; it printed: {}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out).expect("stdout"),
        stderr: std::fs::read(&err).expect("stderr"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn add_user_refuses_low_order_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    init_server(&data);
    for (what, key) in WEAK {
        let out = run_to_exit(
            server_cmd(&data).args(["add-user", "weak", key]),
            dir.path(),
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        assert!(err.contains(LOW_ORDER), "{what}: {err}");
    }
    // Nothing was registered; a real key still is.
    let alice = keygen(&dir.path().join("alice.key"));
    let out = run_to_exit(
        server_cmd(&data).args(["add-user", "alice", &alice]),
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run_to_exit(server_cmd(&data).arg("list-users"), dir.path());
    let list = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with(&format!("alice {alice} ")), "{list}");
}

#[test]
fn a_registry_file_with_a_low_order_key_is_refused_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    init_server(&data);
    let alice = keygen(&dir.path().join("alice.key"));
    for (what, key) in WEAK {
        std::fs::write(data.join("users"), format!("alice {alice}\nweak {key}\n"))
            .expect("users file");
        let out = run_to_exit(
            server_cmd(&data).args(["run", "--listen", "127.0.0.1:0"]),
            dir.path(),
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what}: the server ran");
        assert!(!text(&out.stdout).contains("listening on"), "{what}");
        assert!(err.contains("line 2"), "{what}: {err}");
        assert!(err.contains(LOW_ORDER), "{what}: {err}");
    }
}

#[test]
fn a_reload_with_a_low_order_key_keeps_the_previous_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--registry-poll-ms", "50"]);
    let alice = User::registered(dir.path(), &server, "alice");
    let carol = User::new(dir.path(), "carol");
    // Alice is in the running registry before the edits begin.
    assert_eq!(Client::login(&server, &alice).users(), ["alice"]);
    let users = server.data.join("users");
    let before = std::fs::read_to_string(&users).expect("users file");
    let refusals = |s: &Server| s.log().matches("registry file not reloaded").count();
    for (what, key) in WEAK {
        let seen = refusals(&server);
        // Carol is added in the same edit: the whole file is refused.
        let edited = format!("{before}carol {}\nweak {key}\n", carol.public);
        // As an editor or `add-user` does: a whole new file, renamed in place
        // (a server polling every 50 ms could read a half-written one).
        let tmp = users.with_extension("tmp");
        std::fs::write(&tmp, edited).expect("users file");
        std::fs::rename(&tmp, &users).expect("users file");
        let end = Instant::now() + WAIT;
        while refusals(&server) == seen {
            assert!(Instant::now() < end, "{what}: no reload refused");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut c = Client::start(&server, &carol);
        assert_eq!(c.expect("login_refused")["reason"], "not_authorized");
        assert!(!c.wait().success());
        let mut a = Client::login(&server, &alice);
        assert_eq!(a.users(), ["alice"], "{what}");
    }
}

#[test]
fn the_client_refuses_a_low_order_server_key() {
    let (dir, server, users) = server_with_users(&["alice"]);
    let alice = &users[0];
    let chat = |server_key: Option<&str>| {
        let mut c = Command::new(client_bin());
        c.args(["chat", "--script", "--server", &server.addr.to_string()])
            .args(["--user", "alice", "--key"])
            .arg(&alice.key_file)
            .args(["--daemon-listen", "127.0.0.1:0"])
            .env_remove("SECURECOM_PASSPHRASE")
            .env_remove("SECURECOM_SERVER_KEY")
            .env("RUST_BACKTRACE", "0");
        if let Some(k) = server_key {
            c.args(["--server-key", k]);
        }
        c
    };
    let expected = format!("bad server key: {LOW_ORDER}");
    for (what, key) in WEAK {
        for mut cmd in [chat(Some(key)), {
            let mut c = chat(None);
            c.env("SECURECOM_SERVER_KEY", key);
            c
        }] {
            let out = run_to_exit(&mut cmd, dir.path());
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{what}: the client ran");
            assert!(err.contains(&expected), "{what}: {err}");
            assert!(!text(&out.stdout).contains("logged_in"), "{what}");
        }
    }
    // The real key still works.
    let mut c = Client::login(&server, alice);
    assert_eq!(c.users(), ["alice"]);
}
