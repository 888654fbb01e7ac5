//! The interactive client in a real terminal: tmux runs it, `send-keys`
//! types, `capture-pane` reads the screen. alice is the interactive user
//! (with a passphrase-protected key, typed at the prompt); bob is a scripted
//! client. Through a request, a chat and a leave, the screen must show every
//! event, and incoming lines must never garble what alice is typing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use securecom_tests::{client_bin, Client, Server, User, WAIT};

/// One tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let socket = format!(
            "securecom-tui-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        );
        let t = Tmux { socket };
        // The pane stays after the program exits, showing its status.
        let wrapped = format!("{cmd}; echo \"[exit $?]\"; sleep 60");
        let ok = t
            .tmux()
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "120",
                "-y",
                "40",
            ])
            .arg(wrapped)
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux new-session failed");
        t
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c.stdin(Stdio::null());
        c
    }

    /// Types `text` literally (no Enter).
    fn type_text(&self, text: &str) {
        let ok = self
            .tmux()
            .args(["send-keys", "-t", "t", "-l", text])
            .status()
            .expect("send-keys");
        assert!(ok.success());
    }

    /// Presses a key (`Enter`, `Up`, `C-u`...).
    fn key(&self, key: &str) {
        let ok = self
            .tmux()
            .args(["send-keys", "-t", "t", key])
            .status()
            .expect("send-keys");
        assert!(ok.success());
    }

    fn line(&self, text: &str) {
        self.type_text(text);
        self.key("Enter");
    }

    /// The visible screen, wrapped lines joined.
    fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-J", "-t", "t"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last non-empty line of the screen (the input line).
    fn input_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the screen shows `what`; returns the screen.
    #[track_caller]
    fn wait_for(&self, what: &str) -> String {
        let end = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            if Instant::now() > end {
                panic!("the screen never showed {what:?}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the input line satisfies `pred`.
    #[track_caller]
    fn wait_input(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + WAIT;
        loop {
            let l = self.input_line();
            if pred(&l) {
                return l;
            }
            if Instant::now() > end {
                panic!(
                    "input line never {what}; it is {l:?}; screen:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn protected_user(dir: &Path, server: &Server, name: &str, pass: &str) -> User {
    let key_file = dir.join(format!("{name}.key"));
    let pass_file = dir.join(format!("{name}.pass"));
    std::fs::write(&pass_file, format!("{pass}\n")).expect("pass file");
    let out = Command::new(client_bin())
        .args(["keygen", "--key"])
        .arg(&key_file)
        .arg("--passphrase-file")
        .arg(&pass_file)
        .stdin(Stdio::null())
        .output()
        .expect("keygen");
    assert!(out.status.success());
    std::fs::remove_file(&pass_file).expect("rm");
    let public = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .expect("public")
        .to_string();
    server.add_user(name, &public);
    User {
        name: name.into(),
        key_file,
        public,
    }
}

#[test]
fn interactive_client_in_a_real_terminal() {
    assert!(
        have_tmux(),
        "tmux is needed for this test (.ci/setup installs it: apt-get install tmux)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let alice = protected_user(dir.path(), &server, "alice", "tmux typed pass");
    let bob_user = User::registered(dir.path(), &server, "bob");
    let mut bob = Client::login(&server, &bob_user);

    let cmd = format!(
        "env -u SECURECOM_PASSPHRASE {} chat --server {} --server-key {} --user alice --key {} \
         --daemon-listen 127.0.0.1:0",
        client_bin().display(),
        server.addr,
        server.key,
        alice.key_file.display()
    );
    let t = Tmux::start(&cmd);

    // The passphrase, typed at the terminal (not echoed).
    t.wait_for("Passphrase for");
    t.line("tmux typed pass");
    let s = t.wait_for("logged in as alice");
    assert!(
        !s.contains("tmux typed pass"),
        "the passphrase was echoed:\n{s}"
    );
    // The prompt shows who we are, the chat, who is online.
    t.wait_input("showing bob online", |l| {
        l.starts_with("[alice] [no chat] [online: bob]")
    });

    // /help is complete.
    t.line("/help");
    let s = t.wait_for("/trust NAME");
    for cmd in [
        "/users",
        "/chat NAME",
        "/accept",
        "/refuse",
        "/leave",
        "/verify",
        "/quit",
    ] {
        assert!(s.contains(cmd), "/help lacks {cmd}:\n{s}");
    }

    // A request arrives while alice is typing: her line stays intact below it.
    t.type_text("half a thought");
    t.wait_input("holding the typed text", |l| {
        l.ends_with("> half a thought")
    });
    bob.send("/chat alice");
    bob.expect("chat_pending");
    let s = t.wait_for("bob asks to chat");
    let input = t.wait_input("still holding the typed text", |l| {
        l.ends_with("half a thought")
    });
    assert!(input.contains("[bob asks: /accept or /refuse]"), "{input}");
    let request_row = s.lines().position(|l| l.contains("bob asks to chat"));
    let rows: Vec<&str> = s.lines().collect();
    let input_row = rows.iter().rposition(|l| l.contains("half a thought"));
    assert!(
        request_row < input_row,
        "the request is not above the input line:\n{s}"
    );
    t.key("C-u");
    t.wait_input("cleared", |l| l.ends_with("> "));

    // Accept; the chat opens on both sides with the same safety number.
    t.line("/accept");
    let ready = bob.expect("chat_ready");
    let safety = ready["safety_number"].as_str().expect("safety").to_string();
    t.wait_for(&format!("chat with bob ready; safety number: {safety}"));
    t.wait_input("showing the chat", |l| l.contains("[chat: bob]"));

    // bob (the requester) speaks first; alice answers.
    bob.send("hi alice");
    t.wait_for("<bob> hi alice");
    t.line("hello bob");
    let m = bob.expect("message");
    assert_eq!(m["text"], "hello bob");

    // History: Up brings the last line back.
    t.key("Up");
    t.wait_input("recalling history", |l| l.ends_with("> hello bob"));
    t.key("C-u");

    // /verify shows the same number again.
    t.line("/verify");
    t.wait_for(&format!("safety number with bob: {safety}"));

    // A peer cannot reorder or hide text, or fake a line: bidi overrides,
    // zero-width and other format characters, and line separators are
    // shown escaped (the screen shows exactly the escapes, never the
    // characters themselves).
    bob.send("pay \u{202E}001$\u{202C} now\u{200B}!\u{2028}<alice> fake");
    let s = t.wait_for("now\\u{200b}!");
    assert!(
        s.contains("<bob> pay \\u{202e}001$\\u{202c} now\\u{200b}!\\u{2028}<alice> fake"),
        "not shown escaped:\n{s}"
    );
    for c in ['\u{202E}', '\u{202C}', '\u{200B}', '\u{2028}'] {
        assert!(!s.contains(c), "{c:?} reached the terminal:\n{s}");
    }

    // A message while alice types: her text stays.
    t.type_text("typing on");
    t.wait_input("holding", |l| l.ends_with("> typing on"));
    bob.send("second line from bob");
    t.wait_for("<bob> second line from bob");
    t.wait_input("holding after output", |l| l.ends_with("> typing on"));
    t.key("C-u");

    // bob leaves.
    bob.send("/leave");
    bob.expect("chat_ended");
    t.wait_for("chat ended by bob, all messages delivered");
    t.wait_input("back to no chat", |l| l.contains("[no chat]"));

    // Clear errors.
    t.line("/chat nobody");
    t.wait_for("no chat with nobody: no such user");
    t.line("just text");
    t.wait_for("not in a chat");
    t.line("/frobnicate");
    t.wait_for("unknown command '/frobnicate'");

    // /quit logs out and restores the terminal.
    t.line("/quit");
    t.wait_for("[exit 0]");
}
