//! Revocation: the running server watches its registry file, and a live
//! session whose key is no longer its user's registered key is closed with
//! `Bye { Revoked }` (the client prints `closed` with reason `revoked`), its
//! chat peer getting `PeerLeft`. The registry is changed the way an
//! administrator does: the server binary's `remove-user` / `add-user` on the
//! same data directory, or an edit of the file; a file where two names share
//! one key is refused (the previous registry stays).

use std::path::Path;
use std::process::{Command, Output};

use securecom_core::SafetyNumber;
use securecom_tests::{server_bin, Value, WAIT};

use crate::adversarial;
use crate::adversarial::net::eventually;
use crate::adversarial::procs::{login_at, open_chat, say, RealServer, ScriptClient, TestUser};

/// `securecom-server --data-dir DATA ARGS…` (the administrator's command line).
fn admin(data: &Path, args: &[&str]) -> Output {
    Command::new(server_bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run securecom-server")
}

fn admin_ok(data: &Path, args: &[&str]) -> Output {
    let out = admin(data, args);
    assert!(
        out.status.success(),
        "securecom-server {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event
}

/// Waits for `c`'s `closed` event and checks its reason.
fn expect_closed(c: &mut ScriptClient, reason: &str) {
    let v = c.expect("closed");
    assert_eq!(
        v["reason"], reason,
        "{}: closed for another reason: {v}",
        c.name
    );
}

/// Waits for the end of `c`'s open chat with `peer`, ended by the server
/// (the revoked client sent no end-to-end close: `c` is told so).
fn expect_ended_by_server(c: &mut ScriptClient, peer: &str) {
    let v = c.expect("chat_ended");
    assert_eq!(v["peer"], peer, "{v}");
    assert_eq!(v["reason"], "ended_by_server", "{v}");
}

/// `user`'s key file used for the name `name`, expecting the login refused.
fn expect_login_refused(server: &RealServer, name: &str, user: &TestUser) {
    let mut c = ScriptClient::spawn(
        server.addr,
        &server.key_hex(),
        name,
        &user.key_file,
        "127.0.0.1:0",
    );
    let v = c.expect_where("login answer", |v| {
        v["event"] == "login_refused" || v["event"] == "logged_in"
    });
    assert_eq!(
        v["event"], "login_refused",
        "{name} logged in with {}'s key: {v}",
        user.name
    );
    assert_eq!(v["reason"], "not_authorized", "{v}");
}

/// alice and bob chat; the administrator runs `remove-user alice` on the
/// running server's data directory: alice's client is closed `revoked` and
/// bob's chat ends `peer_left`; alice is no longer listed and cannot log in
/// again; bob and carol go on chatting.
#[test]
fn removed_user_is_closed_revoked_and_the_peer_told() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let carol = TestUser::new(dir.path(), "carol");
    let mut server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("carol", carol.public),
        ],
        "debug",
        &[],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    let mut c = login_at(server.addr, &server.key, &carol, "127.0.0.1:0");
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "hello bob");
    say(&mut b, &mut a, "hello alice");

    let out = admin_ok(&server.data, &["remove-user", "alice"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed alice"));
    let removed = std::time::Instant::now();

    expect_closed(&mut a, "revoked");
    println!(
        "REVOCATION | alice's client closed revoked {:?} after remove-user",
        removed.elapsed()
    );
    expect_ended_by_server(&mut b, "alice");
    assert!(
        a.wait_exit(WAIT).is_some(),
        "alice's client did not exit after its session was revoked"
    );
    assert!(server.log_count("key no longer registered") >= 1);
    assert_eq!(b.users(), vec!["bob".to_string(), "carol".to_string()]);
    expect_login_refused(&server, "alice", &alice);

    open_chat(&mut b, &mut c);
    say(&mut b, &mut c, "alice is gone");
    say(&mut c, &mut b, "so I see");
    server.assert_healthy();
}

/// alice's key is replaced (`add-user alice NEWKEY`) while she chats with
/// bob: the old session is closed `revoked` (bob: `peer_left`). carol asks
/// for alice before the new key logs in: `offline`. The old key cannot log
/// in any more; the new one can, receives carol's request (carol's
/// fingerprint shown), and carol's chat is with the NEW key: its
/// fingerprint and the safety number of carol and the new key.
#[test]
fn replaced_key_closes_the_old_session_and_the_new_key_is_used() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let new_alice = TestUser::new(dir.path(), "alice-new");
    let bob = TestUser::new(dir.path(), "bob");
    let carol = TestUser::new(dir.path(), "carol");
    let mut server = RealServer::start(
        dir.path(),
        &[
            ("alice", alice.public),
            ("bob", bob.public),
            ("carol", carol.public),
        ],
        "debug",
        &[],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    let mut c = login_at(server.addr, &server.key, &carol, "127.0.0.1:0");
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "my old key");

    let out = admin_ok(
        &server.data,
        &["add-user", "alice", &new_alice.public_hex()],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replacing the key of 'alice'"),
        "add-user did not say it replaced a key"
    );
    expect_closed(&mut a, "revoked");
    expect_ended_by_server(&mut b, "alice");

    // Before the new key logs in, alice is offline (never the old session).
    c.send("/chat alice");
    let r = c.expect("chat_refused");
    assert_eq!(r["reason"], "offline", "{r}");
    expect_login_refused(&server, "alice", &alice);

    let mut a2 = ScriptClient::spawn_logged_in(
        server.addr,
        &server.key_hex(),
        "alice",
        &new_alice.key_file,
        "127.0.0.1:0",
    );
    c.send("/chat alice");
    let req = a2.expect("chat_request");
    assert_eq!(req["from"], "carol");
    assert_eq!(
        req["fingerprint"],
        carol.public.fingerprint().to_string().as_str()
    );
    a2.send("/accept");
    let rc = c.expect("chat_ready");
    let ra = a2.expect("chat_ready");
    assert_eq!(rc["peer"], "alice");
    let new_fp = new_alice.public.fingerprint().to_string();
    let old_fp = alice.public.fingerprint().to_string();
    assert_eq!(
        rc["fingerprint"],
        new_fp.as_str(),
        "carol was shown a key for alice that is not the new one (old {old_fp})"
    );
    assert_eq!(
        ra["fingerprint"],
        carol.public.fingerprint().to_string().as_str()
    );
    let honest = SafetyNumber::new(&carol.public, &new_alice.public).to_string();
    assert_eq!(rc["safety_number"], honest.as_str());
    assert_eq!(ra["safety_number"], honest.as_str());
    say(&mut c, &mut a2, "is this your new key?");
    say(&mut a2, &mut c, "it is");
    // bob is not affected otherwise.
    assert!(b.users().contains(&"alice".to_string()));
    server.assert_healthy();
}

/// Registry changes that would give two names one key are refused: the
/// administrator's `add-user mallory <alice's key>` fails, and a hand edit
/// of the file that does so (and also changes bob's key and adds dave) is
/// not loaded: the server keeps serving the previous users (alice and bob
/// chat on, nobody is revoked, dave and mallory cannot log in). A correct
/// edit afterwards is loaded again.
#[test]
fn registry_with_a_shared_key_is_refused_and_the_old_one_kept() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = TestUser::new(dir.path(), "alice");
    let bob = TestUser::new(dir.path(), "bob");
    let bob2 = TestUser::new(dir.path(), "bob2");
    let dave = TestUser::new(dir.path(), "dave");
    let mut server = RealServer::start(
        dir.path(),
        &[("alice", alice.public), ("bob", bob.public)],
        "debug",
        &[],
    );
    let mut a = login_at(server.addr, &server.key, &alice, "127.0.0.1:0");
    let mut b = login_at(server.addr, &server.key, &bob, "127.0.0.1:0");
    open_chat(&mut a, &mut b);
    say(&mut a, &mut b, "before the edits");

    // The command line refuses it.
    let users = server.data.join("users");
    let before = std::fs::read(&users).expect("registry");
    let out = admin(&server.data, &["add-user", "mallory", &alice.public_hex()]);
    assert!(!out.status.success(), "add-user gave mallory alice's key");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already has this key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&users).expect("registry"), before);

    // A hand edit: bob's key changed, dave added, mallory with alice's key.
    let refused_before = server.log_count("registry file not reloaded");
    let text = format!(
        "alice {}\nbob {}\ndave {}\nmallory {}\n",
        alice.public_hex(),
        bob2.public_hex(),
        dave.public_hex(),
        alice.public_hex()
    );
    // A whole new file renamed in place, as `add-user` writes it (the
    // server polls: it must not read a half-written one).
    let tmp = users.with_extension("tmp");
    std::fs::write(&tmp, text).expect("edit the registry");
    std::fs::rename(&tmp, &users).expect("edit the registry");
    assert!(
        eventually(WAIT, || server.log_count("registry file not reloaded")
            > refused_before),
        "the server did not notice (or did not refuse) the edit; log:\n{}",
        server.tail()
    );
    // The previous registry is in force: nobody was revoked, bob's old key
    // still works, dave and mallory are unknown.
    say(&mut a, &mut b, "after the bad edit");
    say(&mut b, &mut a, "still here");
    expect_login_refused(&server, "dave", &dave);
    expect_login_refused(&server, "mallory", &alice);
    assert!(!a.seen.iter().any(is("closed")) && !b.seen.iter().any(is("closed")));
    assert_eq!(a.users(), vec!["alice".to_string(), "bob".to_string()]);
    assert_eq!(server.log_count("key no longer registered"), 0);

    // A correct edit is loaded: dave can log in, alice and bob are untouched.
    let text = format!(
        "alice {}\nbob {}\ndave {}\n",
        alice.public_hex(),
        bob.public_hex(),
        dave.public_hex()
    );
    // A whole new file renamed in place, as `add-user` writes it (the
    // server polls: it must not read a half-written one).
    let tmp = users.with_extension("tmp");
    std::fs::write(&tmp, text).expect("edit the registry");
    std::fs::rename(&tmp, &users).expect("edit the registry");
    let mut d = login_at(server.addr, &server.key, &dave, "127.0.0.1:0");
    say(&mut a, &mut b, "after the good edit");
    d.send("/chat alice");
    let r = d.expect("chat_refused");
    assert_eq!(r["reason"], "busy", "{r}");
    server.assert_healthy();
}

/// Revocation in the middle of a request, both ways: dave asks erin, who
/// has not answered, and dave's key is removed: erin's client hears the
/// request withdrawn. frank asks gina and gina's key is removed before she
/// answers: frank is refused `offline`. Both revoked clients are closed
/// `revoked`; erin and frank then chat.
#[test]
fn revoked_while_requesting_or_being_asked() {
    let _serial = adversarial::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["dave", "erin", "frank", "gina"];
    let users: Vec<TestUser> = names.iter().map(|n| TestUser::new(dir.path(), n)).collect();
    let reg: Vec<(&str, securecom_core::PublicKey)> =
        users.iter().map(|u| (u.name.as_str(), u.public)).collect();
    let mut server = RealServer::start(dir.path(), &reg, "debug", &[]);
    let mut c: Vec<ScriptClient> = users
        .iter()
        .map(|u| login_at(server.addr, &server.key, u, "127.0.0.1:0"))
        .collect();
    let [dave, erin, frank, gina] = &mut c[..] else {
        unreachable!()
    };
    dave.send("/chat erin");
    dave.expect("chat_pending");
    assert_eq!(erin.expect("chat_request")["from"], "dave");
    frank.send("/chat gina");
    frank.expect("chat_pending");
    assert_eq!(gina.expect("chat_request")["from"], "frank");

    admin_ok(&server.data, &["remove-user", "dave"]);
    expect_closed(dave, "revoked");
    let w = erin.expect("request_withdrawn");
    assert_eq!(w["from"], "dave");

    admin_ok(&server.data, &["remove-user", "gina"]);
    expect_closed(gina, "revoked");
    let r = frank.expect("chat_refused");
    assert_eq!(r["user"], "gina");
    assert_eq!(r["reason"], "offline", "{r}");

    open_chat(erin, frank);
    say(erin, frank, "both our requests were cut short");
    say(frank, erin, "by revocations");
    server.assert_healthy();
}
