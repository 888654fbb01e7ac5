//! End to end: the Cortex-M firmware (`embedded-client/`) in QEMU as a real
//! client of the real server, with real host clients around it.
//!
//! Needs `qemu-system-arm` (`apt-get install -y qemu-system-arm`): without it
//! the test fails, it is never skipped. Every wait has a deadline and QEMU is
//! killed when the test ends, so a device that crashes or hangs fails the
//! test in bounded time; its decoded log is printed then.
//!
//! The firmware's host-testable modules (plain `core` + `securecom-core`)
//! are compiled here too, so that their unit tests run on the host: the
//! known-peers table and the device's texts.

#[path = "embedded/qemu.rs"]
mod qemu;

#[allow(dead_code)]
#[path = "../../embedded-client/src/known_peers.rs"]
mod known_peers;

#[allow(dead_code)]
#[path = "../../embedded-client/src/replies.rs"]
mod replies;

#[allow(dead_code)]
#[path = "../../embedded-client/src/crypto.rs"]
mod crypto;

use std::time::{Duration, Instant};

use qemu::{device_key, fingerprint, firmware, free_port, require_qemu, Qemu, RequestUart};
use securecom_tests::{Client, Server, User, Value};

const DEVICE: &str = "sensor1";

/// The device's answer to `temp?`: `temp 21.5 C` (a simulated reading).
fn is_temperature(text: &str) -> bool {
    let Some(value) = text
        .strip_prefix("temp ")
        .and_then(|t| t.strip_suffix(" C"))
    else {
        return false;
    };
    let Some((whole, tenths)) = value.split_once('.') else {
        return false;
    };
    !whole.is_empty()
        && whole
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit())
        && tenths.len() == 1
        && tenths.chars().all(|c| c.is_ascii_digit())
}

/// `client` sends `text`; the device's reply must satisfy `check`.
fn ask(client: &mut Client, text: &str, check: impl Fn(&str) -> bool) -> String {
    client.send(text);
    let m = client.expect("message");
    assert_eq!(m["from"], DEVICE, "{m}");
    let reply = m["text"].as_str().unwrap_or_default().to_string();
    assert!(check(&reply), "unexpected reply to {text:?}: {reply:?}");
    reply
}

/// `client` asks the device for a chat; returns its `chat_ready` or
/// `chat_refused` event (passing refusals retried for 15 s: see
/// [`qemu::request_device`]).
fn request_chat(client: &mut Client) -> Value {
    qemu::request_device(
        client,
        DEVICE,
        Duration::from_secs(15),
        Duration::from_millis(100),
    )
}

/// The device closed the chat with `client` end to end, every message delivered.
fn device_closed(client: &mut Client) {
    let v = client.expect_where("device left", |v| {
        v["event"] == "chat_ended" && v["peer"] == DEVICE
    });
    assert_eq!(
        (v["reason"].as_str(), v["undelivered"].as_u64()),
        (Some("peer_closed"), Some(0)),
        "{v}"
    );
}

/// Polls `/users` until `online(names)` holds (or fails after `limit`);
/// fails early if `device` is given and stops.
fn wait_users(
    client: &mut Client,
    mut device: Option<&mut Qemu>,
    limit: Duration,
    online: impl Fn(&[String]) -> bool,
) {
    let end = Instant::now() + limit;
    loop {
        let names = client.users();
        if online(&names) {
            return;
        }
        assert!(Instant::now() < end, "users after {limit:?}: {names:?}");
        if let Some(d) = device.as_deref_mut() {
            d.assert_running("while we waited for the online list");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A server with host users and the device registered, and the device's
/// configuration written (`extra_config`: the `call`/`chats` lines).
struct Setup {
    dir: tempfile::TempDir,
    server: Server,
    users: Vec<User>,
    secret: [u8; 32],
    secret_hex: String,
    config: std::path::PathBuf,
    /// How QEMU bridges the request channel's UART (as the configuration says).
    request: RequestUart,
}

impl Setup {
    fn new(hosts: &[&str], accept: &str, extra_config: &str) -> Setup {
        Self::with_server_args(hosts, accept, extra_config, &[])
    }

    /// [`Setup::new`] with more `run` arguments for the server.
    fn with_server_args(
        hosts: &[&str],
        accept: &str,
        extra_config: &str,
        server_args: &[&str],
    ) -> Setup {
        Self::make(hosts, accept, extra_config, server_args, false)
    }

    /// A device in dial mode (`request_mode dial`): it opens its request
    /// channel to the server itself; QEMU's UART1 connects to the server.
    fn dialling(hosts: &[&str], accept: &str, extra_config: &str, server_args: &[&str]) -> Setup {
        Self::make(hosts, accept, extra_config, server_args, true)
    }

    fn make(
        hosts: &[&str],
        accept: &str,
        extra_config: &str,
        server_args: &[&str],
        dial: bool,
    ) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start_with(dir.path(), server_args);
        let users = hosts
            .iter()
            .map(|n| User::registered(dir.path(), &server, n))
            .collect();
        let (secret, secret_hex, public_hex) = device_key();
        server.add_user(DEVICE, &public_hex);
        // The port is free now and QEMU binds it at boot: build the firmware
        // first, so that nothing long runs in between.
        firmware();
        let (request, request_line) = if dial {
            let port = server.addr.port();
            (RequestUart::Dial(port), "request_mode dial".to_string())
        } else {
            let port = free_port();
            (RequestUart::Listen(port), format!("daemon_port {port}"))
        };
        let config = dir.path().join("device.cfg");
        std::fs::write(
            &config,
            format!(
                "# generated by tests/embedded.rs\n\
                 user {DEVICE}\n\
                 key {secret_hex}\n\
                 server_key {}\n\
                 {request_line}\n\
                 accept {accept}\n\
                 {extra_config}",
                server.key
            ),
        )
        .expect("write device.cfg");
        Setup {
            dir,
            server,
            users,
            secret,
            secret_hex,
            config,
            request,
        }
    }

    fn boot(&self, qemu_args: &[&str]) -> Qemu {
        self.boot_with(self.request, qemu_args)
    }

    /// Boots the device with UART1 bridged as `request` (e.g. through a relay).
    fn boot_with(&self, request: RequestUart, qemu_args: &[&str]) -> Qemu {
        Qemu::boot(
            &firmware(),
            self.dir.path(),
            self.server.addr.port(),
            request,
            &self.config,
            qemu_args,
        )
    }
}

#[test]
fn device_logs_in_chats_refuses_busy_calls_and_logs_out() {
    require_qemu();
    // Accepts alice and bob (carol is declined), calls bob on `call me`, and
    // logs out after two chats.
    let setup = Setup::new(
        &["alice", "bob", "carol"],
        "alice,bob",
        "call bob\nchats 2\n",
    );
    let (server, [alice, bob, carol]) = (&setup.server, &setup.users[..]) else {
        unreachable!()
    };
    let mut device = setup.boot(&[]);

    // 1. The device logs in: it shows in the online list.
    let mut alice_c = Client::login(server, alice);
    wait_users(
        &mut alice_c,
        Some(&mut device),
        Duration::from_secs(30),
        |n| n.iter().any(|u| u == DEVICE),
    );

    // 2. Its accept policy: carol is declined.
    let mut carol_c = Client::login(server, carol);
    let v = request_chat(&mut carol_c);
    assert_eq!(
        (v["user"].as_str(), v["reason"].as_str()),
        (Some(DEVICE), Some("declined")),
        "{v}"
    );

    // 3. Alice asks for a chat; the device accepts.
    let ready = request_chat(&mut alice_c);
    assert_eq!(ready["peer"], DEVICE, "{ready}");
    assert_eq!(ready["initiator"], true, "{ready}");

    // 4. Messages both ways: a reading, and an echo.
    ask(&mut alice_c, "temp?", is_temperature);
    let secret_text = "hello device, the code is swordfish-7f3a";
    ask(&mut alice_c, secret_text, |r| {
        r == format!("echo: {secret_text}")
    });

    // 5. While it chats, a second requester gets "busy".
    let mut bob_c = Client::login(server, bob);
    let v = request_chat(&mut bob_c);
    assert_eq!(
        (v["user"].as_str(), v["reason"].as_str()),
        (Some(DEVICE), Some("busy")),
        "{v}"
    );

    // 6. `call me`: the device leaves alice and asks bob for a chat itself.
    // It leaves end to end: alice is told that every message arrived.
    ask(&mut alice_c, "call me", |r| r == "calling bob");
    device_closed(&mut alice_c);
    let req = bob_c.expect("chat_request");
    assert_eq!(req["from"], DEVICE, "{req}");
    bob_c.send("/accept");
    let ready = bob_c.expect("chat_ready");
    assert_eq!(
        (ready["peer"].as_str(), ready["initiator"].as_bool()),
        (Some(DEVICE), Some(false)),
        "{ready}"
    );
    // The requester speaks first: the device greets.
    let hello = bob_c.expect("message");
    assert!(
        hello["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("hello, this is {DEVICE}")),
        "{hello}"
    );
    ask(&mut bob_c, "temp?", is_temperature);

    // 7. `bye`: the device leaves; that was its second chat, so it logs out
    // and QEMU exits with status 0.
    bob_c.send("bye");
    device_closed(&mut bob_c);
    let status = device.wait(Duration::from_secs(30));
    assert!(status.success(), "the device exited with {status}");
    wait_users(&mut alice_c, None, Duration::from_secs(10), |n| {
        !n.iter().any(|u| u == DEVICE)
    });

    // 8. Its log holds neither chat text nor its private key.
    let log = device.raw_log();
    assert!(!log.is_empty(), "the device logged nothing");
    let contains = |needle: &[u8]| log.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(b"swordfish-7f3a"),
        "chat text in the device's log"
    );
    assert!(
        !contains(&setup.secret),
        "the private key in the device's log"
    );
    assert!(
        !contains(setup.secret_hex.as_bytes()),
        "the private key in the device's log"
    );
}

/// A host client that re-keys its standard channel and the chats it starts
/// every `secs` seconds (`--rekey-after`), logged in with its daemon reachable.
fn rekeying_client(server: &Server, user: &User, secs: &str) -> Client {
    let mut c = Client::spawn_trusting(
        server.addr,
        &["--server-key", &server.key, "--rekey-after", secs],
        &user.name,
        &user.key_file,
        "127.0.0.1:0",
    );
    c.expect("logged_in");
    c.expect_where("daemon reachable", |v| {
        v["event"] == "daemon" && v["reachable"] == true
    });
    c
}

/// The device's re-key lines (`note_rekeys` in `device.rs`) that start with `what`.
fn rekey_lines<'a>(log: &'a str, what: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|l| l.split_once("INFO  ").map(|(_, m)| m))
        .filter(|m| m.starts_with(what))
        .collect()
}

/// Re-keying in place (`docs/PROTOCOL.md` 4.10) on the device, every
/// 2 seconds: its standard channel (it is the initiator), its request
/// channel (the server is: `--rekey-after 2`), a chat it accepts (alice
/// starts its re-keys) and a chat it starts (`call me`: the device does),
/// every text arriving both ways across them. Under `-icount shift=0`, so
/// that the costs it logs are instruction counts (docs/BENCHMARKS.md).
#[test]
fn device_rekeys_every_channel_and_chat() {
    require_qemu();
    let setup = Setup::with_server_args(
        &["alice", "bob"],
        "alice,bob",
        "call bob\nchats 2\nrekey_after 2\n",
        &["--rekey-after", "2"],
    );
    let (server, [alice, bob]) = (&setup.server, &setup.users[..]) else {
        unreachable!()
    };
    let mut device = setup.boot(&["-icount", "shift=0"]);
    let mut alice_c = rekeying_client(server, alice, "2");
    wait_users(
        &mut alice_c,
        Some(&mut device),
        Duration::from_secs(30),
        |n| n.iter().any(|u| u == DEVICE),
    );

    // 1. Idle: the standard and request channels re-key on their own.
    std::thread::sleep(Duration::from_secs(5));
    device.assert_running("while its channels re-keyed");

    // 2. A chat alice asked for (the device is its responder).
    let ready = request_chat(&mut alice_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    for i in 0..6 {
        let text = format!("to the device {i}");
        ask(&mut alice_c, &text, |r| r == format!("echo: {text}"));
        std::thread::sleep(Duration::from_millis(1000));
    }

    // 3. A chat the device starts (`call me`: it is its initiator).
    let mut bob_c = rekeying_client(server, bob, "2");
    ask(&mut alice_c, "call me", |r| r == "calling bob");
    device_closed(&mut alice_c);
    let req = bob_c.expect("chat_request");
    assert_eq!(req["from"], DEVICE, "{req}");
    bob_c.send("/accept");
    let ready = bob_c.expect("chat_ready");
    assert_eq!(ready["initiator"], false, "{ready}");
    let hello = bob_c.expect("message");
    assert_eq!(hello["from"], DEVICE, "{hello}");
    for i in 0..6 {
        let text = format!("to the caller {i}");
        ask(&mut bob_c, &text, |r| r == format!("echo: {text}"));
        std::thread::sleep(Duration::from_millis(1000));
    }
    bob_c.send("bye");
    device_closed(&mut bob_c);
    let status = device.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "the device exited with {status}; the server's log:\n{}",
        server.log()
    );

    // 4. Every kind of re-key happened, more than once (the device's own
    // log names each; the server's `closed` line counts only its side's
    // standard and request channels).
    let log = device
        .try_decoded_log()
        .expect("defmt-print is needed: cargo install defmt-print");
    let count = |what: &str| rekey_lines(&log, what).len();
    let counts = [
        count("standard channel re-keyed"),
        count("request channel re-keyed"),
        rekey_lines(&log, "chat re-keyed")
            .iter()
            .filter(|l| l.contains("responder"))
            .count(),
        rekey_lines(&log, "chat re-keyed")
            .iter()
            .filter(|l| l.contains("initiator"))
            .count(),
    ];
    println!("device re-keys under -icount shift=0 (ns = instructions):");
    for l in rekey_lines(&log, "")
        .into_iter()
        .filter(|l| l.contains("re-keyed") || l.starts_with("exit") || l.starts_with("chat "))
    {
        println!("  {l}");
    }
    assert!(
        counts.iter().all(|&n| n >= 2),
        "re-keys (standard, request, chat as responder, chat as initiator): {counts:?}\n{log}"
    );
}

/// How long the device may take to show something after the host saw its cause.
const SHOWN: Duration = Duration::from_secs(15);

#[test]
fn device_tells_how_each_chat_ended() {
    require_qemu();
    let setup = Setup::new(&["alice", "bob"], "all", "chats 2\n");
    let (server, [alice, bob]) = (&setup.server, &setup.users[..]) else {
        unreachable!()
    };
    let mut device = setup.boot(&[]);
    let mut alice_c = Client::login(server, alice);
    wait_users(
        &mut alice_c,
        Some(&mut device),
        Duration::from_secs(30),
        |n| n.iter().any(|u| u == DEVICE),
    );

    // 1. Alice leaves: her client closes the chat end to end, and the
    // device says that every message arrived.
    let ready = request_chat(&mut alice_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    ask(&mut alice_c, "temp?", is_temperature);
    alice_c.send("/leave");
    alice_c.expect_where("left", |v| {
        v["event"] == "chat_ended" && v["reason"] == "left"
    });
    device.wait_log("chat 1: chat ended by alice, all messages delivered", SHOWN);

    // 2. Bob's client dies after the device's reply, which bob never
    // acknowledged: the server ends the chat (no close from bob), and the
    // device says so, with the one reply it cannot know arrived.
    let mut bob_c = Client::login(server, bob);
    let ready = request_chat(&mut bob_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    ask(&mut bob_c, "temp?", is_temperature);
    bob_c.kill();
    let log = device.wait_log("chat 2: chat with bob ended by the server", SHOWN);
    assert!(
        log.contains(
            "chat 2: chat with bob ended by the server: 1 of your last messages may not have \
             arrived, and bob's last messages may be missing"
        ),
        "{log}"
    );
    assert!(!log.contains("chat ended by bob"), "{log}");

    // Two chats: the device logs out.
    let status = device.wait(Duration::from_secs(30));
    assert!(status.success(), "the device exited with {status}");
}

#[test]
fn device_refuses_a_changed_peer_key_until_the_admin_trusts_it() {
    require_qemu();
    // Alice is the admin, pinned by the configuration; bob is learned at
    // first contact, and called on `call me`. Four chats, then the device
    // logs out. The server's cool-down after a decline is cut to 1 s (bob is
    // declined once).
    let setup = Setup::with_server_args(
        &["alice", "bob"],
        "all",
        "call bob\nchats 4\n",
        &["--refuse-cooldown", "1"],
    );
    let (server, [alice, bob]) = (&setup.server, &setup.users[..]) else {
        unreachable!()
    };
    let mut text = std::fs::read_to_string(&setup.config).expect("read device.cfg");
    text.push_str(&format!("peer alice {}\nadmin alice\n", alice.public));
    std::fs::write(&setup.config, text).expect("write device.cfg");
    let mut device = setup.boot(&[]);

    // 1. First contact with bob: learned, shown with its fingerprint.
    let old_fp = fingerprint(&bob.public);
    let mut bob_c = Client::login(server, bob);
    wait_users(
        &mut bob_c,
        Some(&mut device),
        Duration::from_secs(30),
        |n| n.iter().any(|u| u == DEVICE),
    );
    let ready = request_chat(&mut bob_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    device.wait_log(
        &format!("first contact with bob: key fingerprint {old_fp} learned"),
        SHOWN,
    );
    ask(&mut bob_c, "temp?", is_temperature);
    bob_c.send("bye");
    device_closed(&mut bob_c);

    // 2. Bob's key changes (the server registers another one: a new device
    // of bob's, or a server in the middle). The old session is revoked.
    let new_dir = setup.dir.path().join("bob-new");
    std::fs::create_dir(&new_dir).expect("mkdir");
    let new_bob = User::new(&new_dir, "bob");
    let new_fp = fingerprint(&new_bob.public);
    server.add_user("bob", &new_bob.public);
    bob_c.expect_where("revoked", |v| {
        v["event"] == "closed" && v["reason"] == "revoked"
    });

    // 3. The new key is not accepted silently: refused, with a loud warning
    // showing both fingerprints.
    let mut new_bob_c = Client::login(server, &new_bob);
    let v = request_chat(&mut new_bob_c);
    assert_eq!(
        (v["event"].as_str(), v["reason"].as_str()),
        (Some("chat_refused"), Some("declined")),
        "{v}"
    );
    let warning = "!!! WARNING: bob's KEY HAS CHANGED !!!";
    let log = device.wait_log(warning, SHOWN);
    assert!(log.contains(&format!("remembered key: {old_fp}")), "{log}");
    assert!(log.contains(&format!("key offered now: {new_fp}")), "{log}");

    // 4. Nor when the device asks bob itself (`call me` from alice): the
    // chat opens with the changed key, and the device leaves it at once,
    // saying nothing in it.
    let mut alice_c = Client::login(server, alice);
    let ready = request_chat(&mut alice_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    device.wait_log(
        &format!(
            "alice's key {} is known (from the configuration)",
            fingerprint(&alice.public)
        ),
        SHOWN,
    );
    ask(&mut alice_c, "call me", |r| r == "calling bob");
    device_closed(&mut alice_c);
    let req = new_bob_c.expect("chat_request");
    assert_eq!(req["from"], DEVICE, "{req}");
    new_bob_c.send("/accept");
    new_bob_c.expect("chat_ready");
    device_closed(&mut new_bob_c);
    assert!(
        !new_bob_c.seen.iter().any(|v| v["event"] == "message"),
        "the device spoke in a chat with a changed key: {:?}",
        new_bob_c.seen
    );
    let log = device.wait_log("leaving at once, nothing sent or shown", SHOWN);
    assert_eq!(log.matches(warning).count(), 2, "{log}");

    // 5. Only the admin can trust it: alice (her configured key) says so.
    let ready = request_chat(&mut alice_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    ask(&mut alice_c, "trust bob", |r| {
        r.starts_with(&format!("trusted bob's new key {new_fp}"))
    });
    ask(&mut alice_c, "trust bob", |r| {
        r == "no changed key of bob to trust"
    });
    alice_c.send("bye");
    device_closed(&mut alice_c);

    // 6. Now the new key is accepted.
    let ready = request_chat(&mut new_bob_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    ask(&mut new_bob_c, "temp?", is_temperature);
    new_bob_c.send("bye");
    device_closed(&mut new_bob_c);
    let status = device.wait(Duration::from_secs(30));
    assert!(status.success(), "the device exited with {status}");
}

/// How many request channels the device dialled that the server handed to
/// its session (the server's `client-dialled request channel` lines).
fn dialled_channels(server: &Server) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("client-dialled request channel"))
        .count()
}

/// Waits at most `limit` for the server to have taken `count` request
/// channels the device dialled; fails early if the device stops.
fn wait_dialled(server: &Server, device: &mut Qemu, count: usize, limit: Duration) {
    let end = Instant::now() + limit;
    while dialled_channels(server) < count {
        assert!(
            Instant::now() < end,
            "the server took {} dialled request channels in {limit:?}, not {count}:\n{}",
            dialled_channels(server),
            server.log()
        );
        device.assert_running("before its request channel was up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn device_in_dial_mode_opens_its_request_channel_and_chats() {
    require_qemu();
    // `request_mode dial`: QEMU's UART1 connects to the server's port, and
    // the device writes its hello there after login. It accepts alice and
    // logs out after one chat.
    let setup = Setup::dialling(&["alice"], "alice", "chats 1\n", &[]);
    let (server, alice) = (&setup.server, &setup.users[0]);
    let mut device = setup.boot(&[]);

    // 1. It logs in, and the server takes the device's own connection as
    // its request channel: nothing listens, the server dials nothing.
    let mut alice_c = Client::login(server, alice);
    wait_users(
        &mut alice_c,
        Some(&mut device),
        Duration::from_secs(30),
        |n| n.iter().any(|u| u == DEVICE),
    );
    wait_dialled(server, &mut device, 1, Duration::from_secs(15));

    // 2. Alice asks it for a chat over that channel; it accepts.
    let ready = request_chat(&mut alice_c);
    assert_eq!(
        (ready["event"].as_str(), ready["peer"].as_str()),
        (Some("chat_ready"), Some(DEVICE)),
        "{ready}"
    );
    ask(&mut alice_c, "temp?", is_temperature);
    ask(&mut alice_c, "over the dialled channel", |r| {
        r == "echo: over the dialled channel"
    });

    // 3. `bye`: its one chat, so it logs out.
    alice_c.send("bye");
    device_closed(&mut alice_c);
    let status = device.wait(Duration::from_secs(30));
    assert!(status.success(), "the device exited with {status}");
    // One channel, dialled once: no second announce was needed.
    assert_eq!(dialled_channels(server), 1, "{}", server.log());
    let device_log = device.decoded_log();
    assert!(
        device_log.contains("request channel: dialled the server"),
        "{device_log}"
    );
}

/// A TCP relay for QEMU's UART1 in dial mode: each connection it accepts it
/// joins to a new one to `to`; [`Relay::cut`] closes those relayed so far,
/// as a NAT that forgets its mapping (both ends see the connection close).
struct Relay {
    port: u16,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn start(to: std::net::SocketAddr) -> Relay {
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let conns = open.clone();
        // Blocked in accept until the test binary exits.
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                let Ok(outbound) = TcpStream::connect(to) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                };
                let clones = (
                    inbound.try_clone(),
                    outbound.try_clone(),
                    inbound.try_clone(),
                    outbound.try_clone(),
                );
                let (Ok(inbound2), Ok(outbound2), Ok(a), Ok(b)) = clones else {
                    continue;
                };
                conns.lock().expect("relay lock").extend([a, b]);
                pipe(inbound, outbound2);
                pipe(outbound, inbound2);
            }
        });
        Relay { port, open }
    }

    /// Closes every connection relayed so far.
    fn cut(&self) {
        for s in self.open.lock().expect("relay lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn device_in_dial_mode_keeps_its_request_channel_and_dials_again_after_a_cut() {
    require_qemu();
    // The server sends a keep-alive after 1 s of silence on the request
    // channel, and drops one silent for 3 s. UART1 reaches the server
    // through a relay that the test cuts.
    let setup = Setup::dialling(
        &["alice"],
        "all",
        "chats 1\n",
        &["--request-keepalive", "1"],
    );
    let (server, alice) = (&setup.server, &setup.users[0]);
    let relay = Relay::start(server.addr);
    let mut device = setup.boot_with(RequestUart::Dial(relay.port), &[]);
    let mut alice_c = Client::login(server, alice);
    wait_users(
        &mut alice_c,
        Some(&mut device),
        Duration::from_secs(30),
        |n| n.iter().any(|u| u == DEVICE),
    );
    wait_dialled(server, &mut device, 1, Duration::from_secs(15));

    // 1. Four silent seconds: the device answers the server's pings, so the
    // channel stays up (no second one is dialled).
    std::thread::sleep(Duration::from_secs(4));
    device.assert_running("while its request channel was idle");
    assert_eq!(dialled_channels(server), 1, "{}", server.log());

    // 2. The connection breaks. The server tells the device it is
    // unreachable; the device announces again after the core's backoff
    // (2 s), gives QEMU time to connect UART1 again, and writes its new
    // hello on the new connection.
    relay.cut();
    wait_dialled(server, &mut device, 2, Duration::from_secs(20));
    device.wait_log("request channel: dialling the server in 2000 ms", SHOWN);

    // 3. Reachable again: a chat over the new channel, then the logout.
    let ready = request_chat(&mut alice_c);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    ask(&mut alice_c, "temp?", is_temperature);
    alice_c.send("bye");
    device_closed(&mut alice_c);
    let status = device.wait(Duration::from_secs(30));
    assert!(status.success(), "the device exited with {status}");
    assert_eq!(dialled_channels(server), 2, "{}", server.log());
}

#[test]
fn temperature_format() {
    assert!(is_temperature("temp 21.5 C"));
    assert!(is_temperature("temp -3.0 C"));
    assert!(!is_temperature("temp 21 C"));
    assert!(!is_temperature("echo: temp?"));
}

#[test]
fn device_pins_the_server_key() {
    require_qemu();
    // The device is told another server key: it must end the login itself
    // (exit status 5: the standard channel failed) and never log in.
    let setup = Setup::new(&["alice"], "all", "");
    let (_, _, other_key) = device_key();
    let text = std::fs::read_to_string(&setup.config).expect("read device.cfg");
    let text = text.replace(
        &format!("server_key {}", setup.server.key),
        &format!("server_key {other_key}"),
    );
    std::fs::write(&setup.config, text).expect("write device.cfg");
    let mut device = setup.boot(&[]);
    // Well before the 10 s handshake timeout: the mismatch itself ends it.
    let status = device.wait(Duration::from_secs(8));
    assert_eq!(status.code(), Some(5), "{status}");
    let mut alice = Client::login(&setup.server, &setup.users[0]);
    assert_eq!(alice.users(), ["alice"]);
}

#[test]
fn device_with_a_bad_config_exits_with_status_2() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    // QEMU's UART0 dials this at start; nothing is ever said on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = dir.path().join("device.cfg");
    // Complete but for the lines added to it below.
    let good = format!(
        "user sensor1\nkey {}\nserver_key {}\ndaemon_port 4242\naccept all\n",
        "11".repeat(32),
        "22".repeat(32)
    );
    let peer = format!("peer alice {}\n", "33".repeat(32));
    let cases = [
        ("user sensor1\n".to_string(), None),    // most settings missing
        ("user Sensor1\nkey 00\n".into(), None), // bad values
        ("user sensor1\nfavourite_colour blue\n".into(), None), // unknown setting
        // An admin known only by first contact could trust any key.
        (format!("{good}admin alice\n"), Some("AdminNotPinned")),
        // A pinned low-order key would let anyone be alice.
        (
            format!("{good}peer alice {}\n", "00".repeat(32)),
            Some("WeakKey"),
        ),
        // One key per name.
        (format!("{good}{peer}{peer}"), Some("BadValue")),
        // A device that dials its request channel has no port to announce.
        (
            format!("{good}request_mode dial\n"),
            Some("DaemonPortWhenDialling"),
        ),
        (format!("{good}request_mode auto\n"), Some("BadValue")),
    ];
    for (bad, shown) in cases {
        std::fs::write(&config, &bad).expect("write device.cfg");
        let port = listener.local_addr().expect("addr").port();
        let request = RequestUart::Listen(free_port());
        let mut device = Qemu::boot(&firmware(), dir.path(), port, request, &config, &[]);
        let status = device.wait(Duration::from_secs(30));
        assert_eq!(status.code(), Some(2), "{bad:?}: {status}");
        if let Some(shown) = shown {
            let log = device.wait_log(shown, Duration::ZERO);
            assert!(log.contains("config: "), "{log}");
        }
    }
}

/// The figures of `embedded-client/FIGURES.md`: the device's cost per
/// protocol step under `-icount shift=0` (one instruction per virtual
/// nanosecond, deterministic), read from its log. Needs `defmt-print`.
///
/// `cargo test -p securecom-tests --test embedded -- --ignored --nocapture figures`
#[test]
#[ignore = "measurement: prints figures, run by embedded-client/measure.sh"]
fn figures_under_icount() {
    require_qemu();
    let setup = Setup::new(&["alice"], "all", "chats 1\n");
    let mut device = setup.boot(&["-icount", "shift=0"]);
    let mut alice = Client::login(&setup.server, &setup.users[0]);
    wait_users(
        &mut alice,
        Some(&mut device),
        Duration::from_secs(30),
        |n| n.iter().any(|u| u == DEVICE),
    );
    let ready = request_chat(&mut alice);
    assert_eq!(ready["event"], "chat_ready", "{ready}");
    ask(&mut alice, "temp?", is_temperature);
    for len in [64, 480] {
        let text = "x".repeat(len);
        ask(&mut alice, &text, |r| r.len() == (len + 6).min(480));
    }
    alice.send("bye");
    alice.expect("chat_ended");
    assert!(device.wait(Duration::from_secs(30)).success());
    let log = device
        .try_decoded_log()
        .expect("defmt-print is needed: cargo install defmt-print");
    println!("device log under -icount shift=0 (ns = instructions):\n{log}");
}

/// The firmware's X25519 (public keys by the Montgomery ladder, not the
/// Edwards fixed-base multiplication) gives the core provider's bytes: the
/// same key pairs from the same draws, the same public keys and shared
/// secrets, and so the same device key as the host computes.
#[test]
fn x25519_ladder_keys() {
    use clatter::bytearray::SensitiveByteArray;
    use clatter::traits::Dh;
    use rand_core::{RngCore, SeedableRng};
    use securecom_core::CryptoProvider;
    type Core = <securecom_core::RustCrypto as CryptoProvider>::Dh;
    type Ladder = crypto::LadderX25519;

    /// A seeded ChaCha20 as clatter's `Rng` wants it (`Default`, `Clone`).
    #[derive(Clone)]
    struct Draw(rand_chacha::ChaCha20Rng);
    impl Default for Draw {
        fn default() -> Self {
            Draw(rand_chacha::ChaCha20Rng::seed_from_u64(0))
        }
    }
    impl RngCore for Draw {
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
    impl rand_core::CryptoRng for Draw {}

    for seed in 0..64u64 {
        let mut a = Draw(rand_chacha::ChaCha20Rng::seed_from_u64(seed));
        let mut b = a.clone();
        let (x, y) = (
            Core::genkey_rng(&mut a).unwrap(),
            Ladder::genkey_rng(&mut b).unwrap(),
        );
        assert_eq!((x.public, *x.secret), (y.public, *y.secret), "seed {seed}");
        let peer = Core::genkey_rng(&mut a).unwrap().public;
        assert_eq!(
            *Core::dh(&x.secret, &peer).unwrap(),
            *Ladder::dh(&y.secret, &peer).unwrap(),
            "seed {seed}"
        );
        // Every bit pattern of a stored key, clamping included.
        let raw = [seed as u8 ^ 0xA5; 32];
        assert_eq!(
            Core::pubkey(&SensitiveByteArray::new(raw)),
            Ladder::pubkey(&SensitiveByteArray::new(raw))
        );
        assert_eq!(
            crypto::static_secret(raw).public_key(),
            securecom_core::StaticSecret::from_bytes(raw).public_key()
        );
    }
}
