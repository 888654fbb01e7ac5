//! Keys at rest, server certificates and knowing who you talk to, with the
//! real programs: passphrase-protected key files (and their interoperability
//! with the reference `age` tool when it is installed), the CA tool, every
//! reason a client refuses a server certificate, safety numbers, and the
//! known-peers warning that holds a chat until `/trust`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use securecom_tests::{
    client_bin, open_chat, say, server_bin, server_with_users as setup, Client, Server, User, WAIT,
};

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("start program")
}

#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn client() -> Command {
    let mut c = Command::new(client_bin());
    c.env_remove("SECURECOM_PASSPHRASE");
    c
}

fn server_cmd(data: &Path) -> Command {
    let mut c = Command::new(server_bin());
    c.arg("--data-dir").arg(data);
    c.env_remove("SECURECOM_SERVER_PASSPHRASE");
    c
}

fn write_pass(dir: &Path, name: &str, pass: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{pass}\n")).expect("passphrase file");
    p
}

// ------------------------------------------------------------------ keys at rest

#[test]
fn protected_key_wrong_passphrase_passwd_and_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key = d.join("alice.key");
    let good = write_pass(d, "good", "correct horse battery");
    let bad = write_pass(d, "bad", "correct horse battery staple");
    let public = ok(client()
        .args(["keygen", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&good));
    let public = public.lines().next().expect("public key").to_string();
    let text = std::fs::read_to_string(&key).expect("key file");
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    // The right passphrase, from a file, a descriptor, the environment.
    let got = ok(client()
        .args(["pubkey", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&good));
    assert_eq!(got.trim(), public);
    let got = ok(client()
        .args(["pubkey", "--key"])
        .arg(&key)
        .env("SECURECOM_PASSPHRASE", "correct horse battery"));
    assert_eq!(got.trim(), public);
    let got = ok(Command::new("sh").arg("-c").arg(format!(
        "{} pubkey --key {} --passphrase-fd 3 3<{}",
        client_bin().display(),
        key.display(),
        good.display()
    )));
    assert_eq!(got.trim(), public);

    // A wrong passphrase: a clear error, no key.
    let out = run(client()
        .args(["pubkey", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&bad));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "printed something: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    // No passphrase and no terminal: says how to give one.
    let out = run(client().args(["pubkey", "--key"]).arg(&key));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--passphrase-file"), "{err}");

    // passwd: the old passphrase no longer opens it, the new one does.
    let new = write_pass(d, "new", "a new passphrase");
    ok(client()
        .args(["passwd", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&good)
        .arg("--new-passphrase-file")
        .arg(&new));
    let out = run(client()
        .args(["pubkey", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&good));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    let got = ok(client()
        .args(["pubkey", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&new));
    assert_eq!(got.trim(), public);
    // A passwd with a wrong old passphrase changes nothing.
    let before = std::fs::read(&key).expect("read");
    let out = run(client()
        .args(["passwd", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&bad)
        .arg("--new-passphrase-file")
        .arg(&good));
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&key).expect("read"), before);
    assert_eq!(
        std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
        0o600
    );

    // A key readable by the group is refused, saying how to fix it.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = run(client()
        .args(["pubkey", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&new));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("too open") && err.contains("chmod 600"),
        "{err}"
    );
    // Readable by others, unprotected: refused too.
    let plain = d.join("plain.key");
    ok(client()
        .args(["keygen", "--no-passphrase", "--key"])
        .arg(&plain));
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o604)).expect("chmod");
    let out = run(client().args(["pubkey", "--key"]).arg(&plain));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[test]
fn keygen_without_terminal_or_source_writes_a_plain_key_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k.key");
    let out = run(client().args(["keygen", "--key"]).arg(&key));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UNPROTECTED"), "{err}");
    let text = std::fs::read_to_string(&key).expect("key");
    assert!(text.starts_with("securecom-private-key v1\nprotection: none\n"));
    // Never overwrites.
    let out = run(client().args(["keygen", "--key"]).arg(&key));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
}

/// Runs `cmd` in a pseudo-terminal (util-linux `script`) typing `input`.
fn in_pty(cmd: &str, input: &str) -> bool {
    let mut child = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    // One line at a time, as a person would type at each prompt.
    for line in input.lines() {
        std::thread::sleep(Duration::from_millis(300));
        let _ = writeln!(stdin, "{line}");
    }
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if let Ok(Some(s)) = child.try_wait() {
            return s.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn key_files_interoperate_with_the_reference_age_tool() {
    if !have("age") || !have("script") {
        eprintln!("note: `age` (Debian package age) or `script` not installed: interoperability not checked");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key = d.join("a.key");
    let pass = write_pass(d, "p", "interop pass");
    let public = ok(client()
        .args(["keygen", "--key"])
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&pass));
    // age opens our file...
    let plain = d.join("plain");
    assert!(in_pty(
        &format!("age -d -o {} {}", plain.display(), key.display()),
        "interop pass\n"
    ));
    let text = std::fs::read_to_string(&plain).expect("decrypted by age");
    assert!(text.starts_with("securecom-private-key v1\n"), "{text}");
    // ...and we open age's: the same key text encrypted by `age -p -a`.
    let theirs = d.join("b.key");
    assert!(in_pty(
        &format!("age -p -a -o {} {}", theirs.display(), plain.display()),
        "their pass\ntheir pass\n"
    ));
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let got = ok(client()
        .args(["pubkey", "--key"])
        .arg(&theirs)
        .env("SECURECOM_PASSPHRASE", "their pass"));
    assert_eq!(got.trim(), public.lines().next().expect("public"));
}

#[test]
fn protected_server_key_for_unattended_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let pass = write_pass(dir.path(), "server-pass", "server secret");
    ok(server_cmd(&data)
        .args(["init", "--protect", "--passphrase-file"])
        .arg(&pass));
    let text = std::fs::read_to_string(data.join("server.key")).expect("key");
    assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    // The public key needs no passphrase (server.pub)...
    let public = ok(server_cmd(&data).arg("pubkey"));
    // ...but running does: without it, a clear refusal.
    let out = run(server_cmd(&data).args(["run", "--listen", "127.0.0.1:0"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("passphrase"), "{err}");
    let out = run(server_cmd(&data)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("SECURECOM_SERVER_PASSPHRASE", "not it"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    // From the environment, from a systemd credential (checked by `passwd`
    // to the same passphrase, which must open the key first).
    let same = write_pass(dir.path(), "same", "server secret");
    ok(server_cmd(&data)
        .args(["passwd", "--new-passphrase-file"])
        .arg(&same)
        .env("SECURECOM_SERVER_PASSPHRASE", "server secret"));
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).expect("mkdir");
    std::fs::write(creds.join("securecom-server-passphrase"), "server secret\n").expect("cred");
    ok(server_cmd(&data)
        .args(["passwd", "--new-passphrase-file"])
        .arg(&same)
        .env("CREDENTIALS_DIRECTORY", &creds));
    assert_eq!(ok(server_cmd(&data).arg("pubkey")), public);
    // A server started unattended with it serves clients.
    let mut server = Server::start_with(
        dir.path(),
        &["--passphrase-file", pass.to_str().expect("utf-8")],
    );
    let alice = User::registered(dir.path(), &server, "alice");
    let mut c = Client::login(&server, &alice);
    assert_eq!(c.users(), ["alice"]);
    server.kill();
}

// ------------------------------------------------------------------ certificates

struct Ca {
    dir: PathBuf,
    public: String,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let dir = dir.join(name);
        let out = ok(Command::new(server_bin())
            .args(["ca", "--ca-dir"])
            .arg(&dir)
            .args(["init", "--no-passphrase"]));
        Ca {
            dir,
            public: out.trim().to_string(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(server_bin());
        c.args(["ca", "--ca-dir"]).arg(&self.dir);
        c
    }

    fn sign(&self, out: &Path, name: &str, key: &str, extra: &[&str]) {
        ok(self
            .cmd()
            .args(["sign", "--name", name, "--server-key", key, "--out"])
            .arg(out)
            .args(extra));
    }
}

/// A server whose data directory is a copy of `base` (same key), sending `cert`.
fn server_with_cert(root: &Path, scenario: &str, base: &Path, cert: Option<&Path>) -> Server {
    let dir = root.join(scenario);
    let data = dir.join("server");
    std::fs::create_dir_all(&data).expect("mkdir");
    for f in ["server.key", "users"] {
        if base.join(f).exists() {
            std::fs::copy(base.join(f), data.join(f)).expect("copy");
        }
    }
    match cert {
        Some(c) => Server::start_with(&dir, &["--certificate", c.to_str().expect("utf-8")]),
        None => Server::start_with(&dir, &[]),
    }
}

/// `user`'s scripted client against `server`, trusting it as `trust` says.
fn ca_client(server: &Server, user: &User, trust: &[&str]) -> Client {
    Client::spawn_trusting(
        server.addr,
        trust,
        &user.name,
        &user.key_file,
        "127.0.0.1:0",
    )
}

#[track_caller]
fn refused_with(server: &Server, user: &User, trust: &[&str], needle: &str) {
    let mut c = ca_client(server, user, trust);
    let v = c.expect("disconnected");
    let error = v["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains(needle), "expected '{needle}' in '{error}'");
    assert!(!c.wait().success());
    let err = c.final_stderr();
    assert!(err.contains(needle), "stderr: {err}");
}

#[test]
fn certificates_each_failure_has_its_own_message() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    // The server's key, made once; every scenario's server uses it.
    let base = r.join("base");
    let init = ok(server_cmd(&base).arg("init"));
    let server_key = init
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("public key")
        .to_string();
    let users = r.join("users");
    std::fs::create_dir_all(&users).expect("mkdir");
    let alice = User::new(&users, "alice");
    ok(server_cmd(&base).args(["add-user", "alice", &alice.public]));

    let ca = Ca::new(r, "ca");
    let other_ca = Ca::new(r, "other-ca");
    let certs = r.join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    let good = certs.join("good.cert");
    ca.sign(&good, "127.0.0.1", &server_key, &["--days", "30"]);
    let expired = certs.join("expired.cert");
    ca.sign(
        &expired,
        "127.0.0.1",
        &server_key,
        &["--not-before", "1000000000", "--days", "10"],
    );
    let future = certs.join("future.cert");
    ca.sign(
        &future,
        "127.0.0.1",
        &server_key,
        &["--not-before", "4000000000", "--days", "10"],
    );
    let by_other = certs.join("other.cert");
    other_ca.sign(&by_other, "127.0.0.1", &server_key, &[]);
    let shown = ok(ca
        .cmd()
        .arg("show")
        .arg(&good)
        .args(["--ca-key", &ca.public]));
    assert!(
        shown.contains("signature: good") && shown.contains("server name: 127.0.0.1"),
        "{shown}"
    );
    assert!(shown.contains("serial: 1"), "{shown}");

    let trust = ["--ca-key", ca.public.as_str()];

    // Accepted: signed by the CA, right name, in its period, not revoked, our key.
    let s = server_with_cert(r, "good", &base, Some(&good));
    let mut c = ca_client(&s, &alice, &trust);
    let v = c.expect("server_certified");
    assert_eq!(v["name"], "127.0.0.1");
    assert_eq!(v["serial"], 1);
    c.expect("logged_in");
    drop(c);
    // Pinning that server's key keeps working as before.
    let mut c = ca_client(&s, &alice, &["--server-key", &server_key]);
    c.expect("logged_in");
    drop(c);

    // Not signed by the trusted CA.
    refused_with(
        &s,
        &alice,
        &["--ca-key", &other_ca.public],
        "not signed by the trusted CA",
    );
    // Names another server than the one dialled.
    refused_with(
        &s,
        &alice,
        &["--ca-key", &ca.public, "--server-name", "chat.example.org"],
        "names another server",
    );
    // On the revocation list.
    ok(ca.cmd().args(["revoke", "1"]));
    let crl = certs.join("crl.pem");
    ok(ca.cmd().arg("crl").arg("--out").arg(&crl));
    refused_with(
        &s,
        &alice,
        &[
            "--ca-key",
            &ca.public,
            "--revocation-list",
            crl.to_str().expect("utf-8"),
        ],
        "has been revoked",
    );
    // A revocation list from another CA is refused before connecting.
    let other_crl = certs.join("other-crl.pem");
    ok(other_ca.cmd().arg("crl").arg("--out").arg(&other_crl));
    let mut c = ca_client(
        &s,
        &alice,
        &[
            "--ca-key",
            &ca.public,
            "--revocation-list",
            other_crl.to_str().expect("utf-8"),
        ],
    );
    assert!(!c.wait().success());
    assert!(c.final_stderr().contains("not signed by the trusted CA"));
    drop(s);

    // Expired, not yet valid.
    let s = server_with_cert(r, "expired", &base, Some(&expired));
    refused_with(&s, &alice, &trust, "has expired");
    drop(s);
    let s = server_with_cert(r, "future", &base, Some(&future));
    refused_with(&s, &alice, &trust, "not valid yet");
    drop(s);
    // A CA-mode client and a server with no certificate.
    let s = server_with_cert(r, "none", &base, None);
    refused_with(&s, &alice, &trust, "sent no certificate");
    drop(s);

    // A certificate for another key: the server refuses to start with it
    // (a client's own check of that case is core/tests/cert.rs).
    let for_alice = certs.join("alice.cert");
    ca.sign(&for_alice, "127.0.0.1", &alice.public, &[]);
    let data = r.join("wrongkey");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::copy(base.join("server.key"), data.join("server.key")).expect("copy");
    let out = run(server_cmd(&data)
        .args(["run", "--listen", "127.0.0.1:0", "--certificate"])
        .arg(&for_alice));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the certificate is for another key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------ who you talk to

#[test]
fn safety_numbers_match_and_differ_per_peer() {
    let (_d, server, u) = setup(&["alice", "bob", "carol"]);
    let mut alice = Client::login(&server, &u[0]);
    let mut bob = Client::login(&server, &u[1]);
    let mut carol = Client::login(&server, &u[2]);
    alice.send("/chat bob");
    bob.expect("chat_request");
    bob.send("/accept");
    let ab = alice.expect("chat_ready")["safety_number"].clone();
    let ba = bob.expect("chat_ready")["safety_number"].clone();
    assert_eq!(ab, ba, "same on both sides");
    assert_eq!(ab.as_str().unwrap_or_default().len(), 12 * 5 + 11);
    // /verify shows it again, on both sides.
    alice.send("/verify");
    let v = alice.expect("verify");
    assert_eq!(v["safety_number"], ab);
    assert_eq!(v["peer"], "bob");
    bob.send("/verify");
    assert_eq!(bob.expect("verify")["safety_number"], ab);
    alice.send("/leave");
    alice.expect("chat_ended");
    bob.expect("chat_ended");
    // With another peer, another number (and the same on both sides).
    open_chat(&mut alice, &mut carol);
    alice.send("/verify");
    let ac = alice.expect("verify")["safety_number"].clone();
    assert_ne!(ac, ab);
    carol.send("/verify");
    assert_eq!(carol.expect("verify")["safety_number"], ac);
    // Not in a chat: /verify says so.
    bob.send("/verify");
    assert!(bob.expect("error")["message"]
        .as_str()
        .unwrap_or_default()
        .contains("not in a chat"));
}

#[test]
fn a_changed_key_blocks_the_chat_until_trusted() {
    let (d, server, u) = setup(&["alice", "bob"]);
    let mut alice = Client::login(&server, &u[0]);
    {
        // First contact: bob's key is remembered.
        let mut bob = Client::login(&server, &u[1]);
        open_chat(&mut alice, &mut bob);
        say(&mut alice, &mut bob, "first");
        alice.send("/leave");
        alice.expect("chat_ended");
        bob.send("/quit");
        bob.expect("closed");
    }
    let known = std::fs::read_to_string(d.path().join("alice.known_peers")).expect("known peers");
    assert!(known.contains(&format!("bob {}", u[1].public)), "{known}");

    // bob gets a new key (registered anew: it might as well be a server in the middle).
    let new_bob = User {
        name: "bob".into(),
        key_file: d.path().join("bob2.key"),
        public: securecom_tests::keygen(&d.path().join("bob2.key")),
    };
    server.add_user("bob", &new_bob.public);
    let mut bob = Client::login(&server, &new_bob);

    // alice asks: the chat opens end to end, but is held.
    alice.send("/chat bob");
    bob.expect("chat_request");
    bob.send("/accept");
    alice.expect("chat_ready");
    let w = alice.expect("key_changed");
    assert_eq!(w["user"], "bob");
    assert_ne!(w["old_fingerprint"], w["new_fingerprint"]);
    bob.expect("chat_ready");
    alice.send("may I?");
    let e = alice.expect("error");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("on hold"),
        "{e}"
    );
    bob.expect_none(Duration::from_millis(500), |v| v["event"] == "message");
    alice.send("/trust carol");
    alice.expect("error");
    alice.send("/trust bob");
    assert_eq!(alice.expect("trusted")["user"], "bob");
    say(&mut alice, &mut bob, "now we talk");
    say(&mut bob, &mut alice, "yes");
    alice.send("/leave");
    alice.expect("chat_ended");
    bob.expect("chat_ended");
    let known = std::fs::read_to_string(d.path().join("alice.known_peers")).expect("known peers");
    assert!(known.contains(&new_bob.public), "{known}");

    // The other direction: bob (key changed again) asks alice; she cannot
    // accept before /trust.
    drop(bob);
    let bob3 = User {
        name: "bob".into(),
        key_file: d.path().join("bob3.key"),
        public: securecom_tests::keygen(&d.path().join("bob3.key")),
    };
    server.add_user("bob", &bob3.public);
    let mut bob = Client::login(&server, &bob3);
    bob.send("/chat alice");
    alice.expect("chat_request");
    alice.expect("key_changed");
    alice.send("/accept");
    let e = alice.expect("error");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/trust bob"),
        "{e}"
    );
    alice.send("/trust bob");
    alice.expect("trusted");
    alice.send("/accept");
    alice.expect("chat_ready");
    bob.expect("chat_ready");
    say(&mut bob, &mut alice, "hello again");
}
