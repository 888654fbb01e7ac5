//! Writes the checked-in seed corpus: `fuzz/corpus/<target>/seed-*`.
//!
//! ```sh
//! cd fuzz && cargo +nightly run --release --features make-seeds --bin make-seeds
//! ```
//!
//! Operation seeds are written with [`Enc`] (the inverse of `Arbitrary`);
//! each is decoded back and compared, then run through its target's body,
//! which must reach what the seed was written for (a login, a daemon, a
//! chat, texts delivered). The output is deterministic.

use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use securecom_core::frame::encode_frame;
use securecom_core::message::{
    encode, ChatPayload, ClientHello, ClientMsg, DaemonToServer, ServerHello, ServerMsg,
    ServerToDaemon,
};
use securecom_core::{MAX_FRAME, PROTOCOL_VERSION};
use securecom_fuzz::arb::{
    ArbClientMsg, ArbDaemonToServer, ArbServerMsg, ArbServerToDaemon, Bytes, Cid, Cmd, Enc, Key,
    Name, Names, Text, W,
};
use securecom_fuzz::fake_clients::ServerOp;
use securecom_fuzz::fake_server::{ClientOp, DaemonOp};
use securecom_fuzz::fixtures::user_key;
use securecom_fuzz::targets;
use securecom_fuzz::world::WorldOp;
use securecom_fuzz::Stats;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let path = corpus(target).join(format!("seed-{name}"));
    fs::write(&path, bytes).expect("write seed");
    println!("{:>5} bytes  {}", bytes.len(), path.display());
}

/// Encodes `ops` after the mode byte, checks they decode back the same.
fn op_seed<T>(mode: u8, ops: &[T]) -> Vec<u8>
where
    T: Enc + for<'a> Arbitrary<'a> + PartialEq + std::fmt::Debug,
{
    let mut w = W::default();
    w.u8(mode);
    for op in ops {
        w.put(op);
    }
    let mut u = Unstructured::new(&w.0[1..]);
    for (i, op) in ops.iter().enumerate() {
        let back = T::arbitrary(&mut u).expect("decodes");
        assert_eq!(&back, op, "op {i} does not round-trip");
    }
    assert!(u.is_empty(), "trailing bytes");
    w.0
}

fn name(s: &str) -> Name {
    Name(s.to_string())
}

fn text(s: &str) -> Text {
    Text(s.to_string())
}

fn check(what: &str, got: Stats, want: impl Fn(&Stats) -> bool) {
    println!("       {what}: {got:?}");
    assert!(
        want(&got),
        "seed {what} does not reach what it was written for: {got:?}"
    );
}

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        let mut f = [0u8; MAX_FRAME];
        let n = encode_frame(p, &mut f).expect("frame");
        out.extend_from_slice(&f[..n]);
    }
    out
}

fn msg_bytes<T: serde::Serialize + securecom_core::message::Bounded>(m: &T) -> Vec<u8> {
    let mut b = [0u8; 1024];
    let n = encode(m, &mut b).expect("encode");
    b[..n].to_vec()
}

fn main() {
    // ---------------------------------------------------------------- frame_decoder
    let hello = msg_bytes(&ClientMsg::RequestChat { user: "bob" });
    let stream = frames(&[&hello, &[0xaa; 48], &[0x55; 300]]);
    let mut s = vec![0u8]; // no chunk sizes: the whole stream at once
    s.extend_from_slice(&stream);
    write("frame_decoder", "three-frames", &s);
    let mut s = vec![3u8, 1, 7, 64]; // chunks of 1, 7, 64 bytes, cycled
    s.extend_from_slice(&stream);
    write("frame_decoder", "chunked", &s);
    let mut s = vec![1u8, 2];
    s.extend_from_slice(&frames(&[&[1; 126]]));
    s.extend_from_slice(&[0x04, 0x01, 0xff]); // a length over both bounds
    write("frame_decoder", "oversize", &s);

    // ---------------------------------------------------------------- messages
    let k = user_key(1);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "server-hello",
            msg_bytes(&ServerHello {
                version: PROTOCOL_VERSION,
                certificate: None,
            }),
        ),
        (
            "server-hello-cert",
            msg_bytes(&ServerHello {
                version: PROTOCOL_VERSION,
                certificate: Some(&[1, 2, 3]),
            }),
        ),
        (
            "client-hello",
            msg_bytes(&ClientHello {
                version: PROTOCOL_VERSION,
                user: "alice",
            }),
        ),
        (
            "announce",
            msg_bytes(&ClientMsg::AnnounceDaemon {
                port: 4242,
                secret: [7; 32],
            }),
        ),
        (
            "request-chat",
            msg_bytes(&ClientMsg::RequestChat { user: "bob" }),
        ),
        (
            "chat-data",
            msg_bytes(&ClientMsg::ChatData {
                chat_id: 300,
                noise: &[9; 40],
            }),
        ),
        (
            "users",
            msg_bytes(&ServerMsg::Users {
                names: ["alice", "bob"].into_iter().collect(),
                more: true,
            }),
        ),
        (
            "chat-started",
            msg_bytes(&ServerMsg::ChatStarted {
                chat_id: 1,
                peer: "bob",
                peer_key: k,
                initiator: true,
            }),
        ),
        (
            "chat-request",
            msg_bytes(&ServerToDaemon::ChatRequest {
                chat_id: 70000,
                from: "carol",
                from_key: k,
            }),
        ),
        (
            "answer",
            msg_bytes(&DaemonToServer::Answer {
                chat_id: 1,
                answer: securecom_core::message::Answer::Accept,
            }),
        ),
        (
            "leave-chat",
            msg_bytes(&ClientMsg::LeaveChat {
                chat_id: 0x9e37_79b9,
            }),
        ),
        (
            "chat-refused-id",
            msg_bytes(&ServerMsg::ChatRefused {
                chat_id: Some(0x7f4a_7c15),
                user: "bob",
                reason: securecom_core::message::RefuseReason::Declined,
            }),
        ),
        (
            "chat-refused-no-id",
            msg_bytes(&ServerMsg::ChatRefused {
                chat_id: None,
                user: "bob",
                reason: securecom_core::message::RefuseReason::TooSoon,
            }),
        ),
        (
            "chat-text",
            msg_bytes(&ChatPayload::Text {
                received: 2,
                text: "hello, bob",
            }),
        ),
        (
            "chat-close",
            msg_bytes(&ChatPayload::Close {
                sent: 3,
                received: 200,
            }),
        ),
    ];
    for (n, b) in &seeds {
        write("messages", n, b);
    }
    write(
        "messages",
        "certificate",
        securecom_fuzz::fixtures::server_cert(),
    );
    write(
        "messages",
        "revocation-list",
        securecom_fuzz::fixtures::revocation_list(),
    );

    // ---------------------------------------------------------------- handshakes
    // pattern, wrong-key selector, small-read-buffer flag, limit byte; then per
    // handshake message: payload (u16 length, bytes), step (u32: 0 = Real);
    // then transport messages: direction, plaintext, step.
    let real = |w: &mut W| {
        w.u32(0);
    };
    for (p, name, msgs) in [(0u8, "xx", 3), (1, "nnpsk0", 2), (2, "kk", 2)] {
        let mut w = W::default();
        w.u8(p).u8(0).u8(0).u8(0xff);
        for i in 0..msgs {
            w.put(&Bytes(if i == 1 { vec![1, 0] } else { vec![] }));
            real(&mut w);
        }
        for (dir, t) in [(0u8, &b"ping"[..]), (1, b"pong"), (0, b"again")] {
            w.u8(dir).put(&Bytes(t.to_vec()));
            real(&mut w);
        }
        write("handshakes", name, &w.0);
    }

    // ---------------------------------------------------------------- pq_layer
    // pattern, small-read-buffer flag; then per inner message: payload (u16
    // length, bytes), step (u32: 0 = Real).
    for (p, name) in [(0u8, "xx"), (1, "nnpsk0"), (2, "kk")] {
        let mut w = W::default();
        w.u8(p).u8(0);
        for payload in [&b""[..], b"logged in"] {
            w.put(&Bytes(payload.to_vec()));
            real(&mut w);
        }
        write("pq_layer", name, &w.0);
    }

    // ---------------------------------------------------------------- client (fake server)
    use ClientOp as C;
    let chat_request = |id: u32, from: &str| ArbServerToDaemon::ChatRequest {
        chat_id: Cid(id),
        from: name(from),
        from_key: Key(user_key(
            securecom_fuzz::fixtures::name_index(from).unwrap_or(4),
        )),
    };
    let responder = vec![
        C::Login,
        C::LinkOpen { good_psk: true },
        C::LinkHandshake { link: 0 },
        C::LinkMsg {
            link: 0,
            msg: ArbServerToDaemon::Ready,
        },
        C::LinkMsg {
            link: 0,
            msg: chat_request(5, "bob"),
        },
        // By an id the user was never shown: refused, nothing answered.
        C::Cmd(Cmd::AnswerStale {
            accept: true,
            back: 0,
        }),
        C::Cmd(Cmd::Answer(true)),
        C::LinkPoll { link: 0 },
        C::BobStart {
            chat_id: Cid(5),
            alice_initiator: false,
        },
        C::Pump,
        C::BobText(text("hi alice")),
        C::Cmd(Cmd::SendText(text("hi bob"))),
        C::Pump,
        C::Cmd(Cmd::ListUsers),
        C::Pump,
        C::Msg(ArbServerMsg::Users {
            names: Names(vec![name("alice"), name("bob")]),
            more: false,
        }),
        C::Advance(2000),
        C::Cmd(Cmd::LeaveChat),
        C::Pump,
        C::Cmd(Cmd::Logout),
        C::Pump,
        C::Msg(ArbServerMsg::Bye { reason: 0 }),
    ];
    let seed = op_seed(0, &responder);
    check("client/fake-responder", targets::client(&seed), |s| {
        s.logins == 1 && s.daemons >= 1 && s.chats == 1 && s.texts == 2
    });
    write("client", "fake-responder", &seed);
    let initiator = vec![
        C::Login,
        C::Cmd(Cmd::RequestChat(name("bob"))),
        C::Pump,
        C::Msg(ArbServerMsg::ChatPending {
            chat_id: Cid(2),
            user: name("bob"),
        }),
        C::BobStart {
            chat_id: Cid(2),
            alice_initiator: true,
        },
        C::Pump,
        C::Cmd(Cmd::SendText(text("hello"))),
        C::Pump,
        C::BobText(text("hello yourself")),
        C::Msg(ArbServerMsg::PeerLeft { chat_id: Cid(2) }),
        C::Msg(ArbServerMsg::Error { code: 1 }),
        C::Plain(Bytes(vec![0x0a])),
    ];
    let seed = op_seed(2, &initiator);
    check("client/fake-initiator", targets::client(&seed), |s| {
        s.logins == 1 && s.chats == 1 && s.texts == 2
    });
    write("client", "fake-initiator", &seed);
    // Bob closes end to end (alice's `PeerClosed` counts her texts he never
    // got: none, the fake server delivers every send at once); then a
    // refusal without an id, one naming another chat (ignored) and one
    // naming the request; then a request withdrawn before its `ChatPending`
    // (the client's `LeaveChat` goes out with the id that brings).
    let bob_close = vec![
        C::Login,
        C::Cmd(Cmd::RequestChat(name("bob"))),
        C::Pump,
        C::Msg(ArbServerMsg::ChatPending {
            chat_id: Cid(3),
            user: name("bob"),
        }),
        C::BobStart {
            chat_id: Cid(3),
            alice_initiator: true,
        },
        C::Pump,
        C::Cmd(Cmd::SendText(text("one"))),
        C::Pump,
        C::BobText(text("two")),
        C::Cmd(Cmd::SendText(text("three"))),
        C::Pump,
        C::BobClose,
        C::Pump,
        C::Cmd(Cmd::RequestChat(name("bob"))),
        C::Pump,
        C::Msg(ArbServerMsg::ChatRefused {
            chat_id: None,
            user: name("bob"),
            reason: 1,
        }),
        C::Cmd(Cmd::RequestChat(name("bob"))),
        C::Pump,
        C::Msg(ArbServerMsg::ChatPending {
            chat_id: Cid(4),
            user: name("bob"),
        }),
        C::Msg(ArbServerMsg::ChatRefused {
            chat_id: Some(Cid(3)),
            user: name("bob"),
            reason: 0,
        }),
        C::Msg(ArbServerMsg::ChatRefused {
            chat_id: Some(Cid(4)),
            user: name("bob"),
            reason: 0,
        }),
        C::Cmd(Cmd::RequestChat(name("bob"))),
        C::Cmd(Cmd::LeaveChat),
        C::Pump,
        C::Msg(ArbServerMsg::ChatPending {
            chat_id: Cid(5),
            user: name("bob"),
        }),
        C::Pump,
    ];
    let seed = op_seed(0, &bob_close);
    check("client/fake-bob-close", targets::client(&seed), |s| {
        s.logins == 1 && s.chats == 1 && s.texts == 3
    });
    write("client", "fake-bob-close", &seed);
    // Re-keying (small limits: every 20 s): the client re-keys its standard
    // channel and, as the requester, the chat; texts flow on after both.
    let rekey = vec![
        C::Login,
        C::Cmd(Cmd::RequestChat(name("bob"))),
        C::Pump,
        C::Msg(ArbServerMsg::ChatPending {
            chat_id: Cid(2),
            user: name("bob"),
        }),
        C::BobStart {
            chat_id: Cid(2),
            alice_initiator: true,
        },
        C::Pump,
        C::Cmd(Cmd::SendText(text("before"))),
        C::Pump,
        C::BobText(text("before too")),
        C::Advance(1300),
        C::Pump,
        C::Cmd(Cmd::SendText(text("after"))),
        C::Pump,
        C::BobText(text("after too")),
        C::Pump,
    ];
    let seed = op_seed(2, &rekey);
    check("client/fake-rekey", targets::client(&seed), |s| {
        s.logins == 1 && s.chats == 1 && s.texts == 4 && s.rekeys >= 2
    });
    write("client", "fake-rekey", &seed);
    let refused = vec![
        C::Hello(Bytes(vec![PROTOCOL_VERSION, 0])),
        C::Pump,
        C::Msg(ArbServerMsg::LoginRefused { reason: 0 }),
        C::Wire(Bytes(vec![0, 3, 1, 2, 3])),
    ];
    write("client", "fake-refused", &op_seed(4, &refused));
    // CA mode (bit 3): the valid certificate logs in; revoked (bit 6), a late
    // clock (bit 5), an impostor (bit 7) or a changed certificate do not.
    let ca_login = vec![C::Login, C::Cmd(Cmd::ListUsers), C::Pump];
    let seed = op_seed(8, &ca_login);
    check("client/ca-login", targets::client(&seed), |s| s.logins == 1);
    write("client", "ca-login", &seed);
    let seed = op_seed(8 | 16, &ca_login);
    check("client/ca-no-clock", targets::client(&seed), |s| {
        s.logins == 1
    });
    write("client", "ca-no-clock", &seed);
    for (bits, name) in [
        (8 | 64, "ca-revoked"),
        (8 | 32, "ca-expired"),
        (8 | 128, "ca-impostor"),
        (128, "pinned-impostor"),
    ] {
        let seed = op_seed(bits, &ca_login);
        check(name, targets::client(&seed), |s| s.logins == 0);
        write("client", name, &seed);
    }
    let flipped = vec![
        C::HelloCert {
            cert: None,
            flip: (20, 1),
        },
        C::Login,
    ];
    let seed = op_seed(8, &flipped);
    check("client/ca-flipped", targets::client(&seed), |s| {
        s.logins == 0
    });
    write("client", "ca-flipped", &seed);

    // ---------------------------------------------------------------- client / server_session (network)
    use WorldOp as N;
    let cmd = |who: u8, c: Cmd| N::Cmd { who, cmd: c };
    let chat = vec![
        cmd(0, Cmd::RequestChat(name("bob"))),
        N::Pump,
        cmd(
            1,
            Cmd::AnswerStale {
                accept: false,
                back: 0,
            },
        ),
        cmd(1, Cmd::Answer(true)),
        N::Pump,
        cmd(0, Cmd::SendText(text("hi bob"))),
        N::Pump,
        cmd(1, Cmd::SendText(text("hi alice"))),
        N::Pump,
        cmd(0, Cmd::ListUsers),
        N::Pump,
        N::Relogin { who: 2 },
        N::Pump,
        cmd(2, Cmd::RequestChat(name("alice"))),
        N::Pump,
        N::Advance(1000),
        N::Pump,
        cmd(0, Cmd::SendText(text("flipped"))),
        N::Flip {
            who: 0,
            chan: 0,
            pos: 5,
            mask: 1,
        },
        N::Pump,
        cmd(1, Cmd::SendText(text("lost"))),
        N::Pump,
        cmd(1, Cmd::LeaveChat),
        N::Pump,
    ];
    let seed = op_seed(1, &chat);
    check("client/network-chat", targets::client(&seed), |s| {
        s.logins >= 3 && s.chats == 2 && s.texts == 2
    });
    write("client", "network-chat", &seed);
    write("server_session", "network-chat", &seed);
    // An honest end: alice leaves while bob's last text is on its way (it
    // reaches her after she left): bob's `PeerClosed` counts it undelivered.
    let close = vec![
        cmd(0, Cmd::RequestChat(name("bob"))),
        N::Pump,
        cmd(1, Cmd::Answer(true)),
        N::Pump,
        cmd(0, Cmd::SendText(text("hi bob"))),
        N::Pump,
        cmd(1, Cmd::SendText(text("hi alice"))),
        N::Pump,
        cmd(1, Cmd::SendText(text("crossing"))),
        cmd(0, Cmd::LeaveChat),
        N::Pump,
        // Then the server ends the next chat (bob's connection drops) with
        // alice's reply unread: her `EndedByServer` counts it unconfirmed.
        cmd(1, Cmd::RequestChat(name("alice"))),
        N::Pump,
        cmd(0, Cmd::Answer(true)),
        N::Pump,
        cmd(1, Cmd::SendText(text("again"))),
        N::Pump,
        cmd(0, Cmd::SendText(text("reply"))),
        N::Disconnect { who: 1 },
        N::Pump,
    ];
    let seed = op_seed(1, &close);
    check("client/network-close", targets::client(&seed), |s| {
        s.logins == 2 && s.chats == 4 && s.texts == 3
    });
    write("client", "network-close", &seed);
    write("server_session", "network-close", &seed);
    // Re-keying over the network (small limits: every 20 s or 4 messages):
    // the clients re-key their standard channels, the hub the request
    // channels, alice (the requester) the chat; texts flow on after.
    let rekey = vec![
        cmd(0, Cmd::RequestChat(name("bob"))),
        N::Pump,
        cmd(1, Cmd::Answer(true)),
        N::Pump,
        cmd(0, Cmd::SendText(text("before"))),
        N::Pump,
        N::Advance(1300),
        N::Pump,
        cmd(1, Cmd::SendText(text("after"))),
        N::Pump,
        cmd(0, Cmd::SendText(text("again"))),
        N::Pump,
    ];
    let seed = op_seed(3, &rekey);
    check("client/network-rekey", targets::client(&seed), |s| {
        s.chats == 2 && s.texts == 3 && s.rekeys >= 3
    });
    write("client", "network-rekey", &seed);
    write("server_session", "network-rekey", &seed);
    let replace = vec![
        N::Stall { who: 1, chan: 1 },
        cmd(0, Cmd::RequestChat(name("bob"))),
        N::Pump,
        cmd(1, Cmd::Answer(true)),
        N::Pump,
        N::Relogin { who: 1 },
        N::Pump,
        N::Dup { who: 0, chan: 0 },
        N::Inject {
            who: 0,
            chan: 2,
            bytes: Bytes(vec![0, 1, 0]),
        },
        N::DaemonFail { who: 0 },
        N::Advance(20000),
        N::Pump,
        N::Disconnect { who: 0 },
        N::Pump,
    ];
    let seed = op_seed(3, &replace);
    check(
        "server_session/network-replace",
        targets::server_session(&seed),
        |s| s.logins >= 3,
    );
    write("server_session", "network-replace", &seed);

    // ---------------------------------------------------------------- server_session (fake clients)
    use ServerOp as S;
    let relay = |who: u8, id: u32, data: bool, b: u8| S::Msg {
        who,
        msg: if data {
            ArbClientMsg::ChatData {
                chat_id: Cid(id),
                noise: Bytes(vec![b; 24]),
            }
        } else {
            ArbClientMsg::ChatHandshake {
                chat_id: Cid(id),
                noise: Bytes(vec![b; 48]),
            }
        },
    };
    let fake = vec![
        S::Login { who: 0 },
        S::Login { who: 1 },
        S::Msg {
            who: 0,
            msg: ArbClientMsg::AnnounceDaemon { port: 1, secret: 1 },
        },
        S::Msg {
            who: 1,
            msg: ArbClientMsg::AnnounceDaemon { port: 2, secret: 2 },
        },
        S::Dial { ok: true },
        S::Msg {
            who: 0,
            msg: ArbClientMsg::RequestChat { user: name("bob") },
        },
        S::DaemonMsg {
            who: 1,
            msg: ArbDaemonToServer::Answer {
                chat_id: Cid(1),
                answer: 0,
            },
        },
        relay(0, 1, false, 1),
        relay(1, 1, false, 2),
        relay(0, 1, true, 3),
        relay(1, 1, true, 4),
        S::Msg {
            who: 0,
            msg: ArbClientMsg::ListUsers,
        },
        S::Msg {
            who: 1,
            msg: ArbClientMsg::Ping,
        },
        S::Login { who: 4 },
        S::Hello {
            who: 2,
            version: PROTOCOL_VERSION,
            user: name("alice"),
        },
        S::Advance(500),
        // Another chat's id (ignored), then this chat's (Cid(1): the id the
        // hub last gave alice).
        S::Msg {
            who: 0,
            msg: ArbClientMsg::LeaveChat { chat_id: Cid(0) },
        },
        relay(1, 1, true, 5),
        S::Msg {
            who: 0,
            msg: ArbClientMsg::LeaveChat { chat_id: Cid(1) },
        },
        relay(1, 1, true, 6),
        S::Msg {
            who: 1,
            msg: ArbClientMsg::Logout,
        },
    ];
    let seed = op_seed(0, &fake);
    check(
        "server_session/fake-chat",
        targets::server_session(&seed),
        |s| s.logins == 2 && s.daemons == 2 && s.chats == 2 && s.texts == 3,
    );
    write("server_session", "fake-chat", &seed);
    // Bob cannot be dialled: he dials his request channel (a made-up ticket
    // first, which opens nothing), answers a keep-alive, and is asked.
    let dial_back = vec![
        S::Login { who: 0 },
        S::Login { who: 1 },
        S::Msg {
            who: 0,
            msg: ArbClientMsg::AnnounceDaemon { port: 1, secret: 1 },
        },
        S::Dial { ok: true },
        S::Msg {
            who: 1,
            msg: ArbClientMsg::DialRequestChannel { secret: 2 },
        },
        S::DialBack {
            who: 1,
            right: false,
        },
        S::DialBack {
            who: 1,
            right: true,
        },
        S::DaemonMsg {
            who: 1,
            msg: ArbDaemonToServer::Pong,
        },
        S::Msg {
            who: 0,
            msg: ArbClientMsg::RequestChat { user: name("bob") },
        },
        S::DaemonMsg {
            who: 1,
            msg: ArbDaemonToServer::Answer {
                chat_id: Cid(1),
                answer: 0,
            },
        },
        relay(0, 1, false, 1),
        relay(1, 1, false, 2),
        relay(0, 1, true, 3),
    ];
    let seed = op_seed(0, &dial_back);
    check(
        "server_session/fake-dial-back",
        targets::server_session(&seed),
        |s| s.logins == 2 && s.daemons == 2 && s.chats == 2,
    );
    write("server_session", "fake-dial-back", &seed);
    let raw = vec![
        S::Connect { who: 0 },
        S::Wire {
            who: 0,
            bytes: Bytes(vec![0, 32, 1, 2, 3]),
        },
        S::Connect { who: 3 },
        S::Hello {
            who: 3,
            version: 9,
            user: name("dave"),
        },
        S::Stall { who: 3 },
        S::Advance(60000),
        S::Shutdown,
    ];
    write("server_session", "fake-raw", &op_seed(2, &raw));
    // Re-keying: alice's fake client re-keys her standard channel, the hub
    // her daemon's request channel (which answers a keep-alive first, or
    // the hub would find it gone); messages flow on after.
    let rekey = vec![
        S::Login { who: 0 },
        S::Msg {
            who: 0,
            msg: ArbClientMsg::AnnounceDaemon { port: 1, secret: 1 },
        },
        S::Dial { ok: true },
        S::Advance(4000),
        S::DaemonMsg {
            who: 0,
            msg: ArbDaemonToServer::Pong,
        },
        S::Advance(3600),
        S::Msg {
            who: 0,
            msg: ArbClientMsg::ListUsers,
        },
        S::DaemonMsg {
            who: 0,
            msg: ArbDaemonToServer::Pong,
        },
    ];
    let seed = op_seed(0, &rekey);
    check(
        "server_session/fake-rekey",
        targets::server_session(&seed),
        |s| s.logins == 1 && s.daemons == 1 && s.rekeys >= 2,
    );
    write("server_session", "fake-rekey", &seed);

    // ---------------------------------------------------------------- daemon
    use DaemonOp as D;
    let daemon = vec![
        D::Open { good_psk: true },
        D::Handshake { link: 0 },
        D::Msg {
            link: 0,
            msg: ArbServerToDaemon::Ready,
        },
        D::Msg {
            link: 0,
            msg: chat_request(3, "carol"),
        },
        D::Answer(true),
        D::Poll { link: 0 },
        D::Msg {
            link: 0,
            msg: ArbServerToDaemon::Cancel { chat_id: Cid(3) },
        },
        D::Msg {
            link: 0,
            msg: chat_request(4, "dave"),
        },
        D::Open { good_psk: false },
        D::Handshake { link: 1 },
        D::Wire {
            link: 1,
            bytes: Bytes(vec![0, 2, 0, 0]),
        },
        D::Answer(false),
        D::Poll { link: 0 },
        D::Msg {
            link: 0,
            msg: ArbServerToDaemon::Bye,
        },
        D::Advance(1000),
    ];
    let seed = op_seed(0, &daemon);
    check("daemon/accept-cancel", targets::daemon(&seed), |s| {
        s.daemons >= 1
    });
    write("daemon", "accept-cancel", &seed);
    let daemon2 = vec![
        D::Open { good_psk: true },
        D::Handshake { link: 0 },
        D::Plain {
            link: 0,
            bytes: Bytes(vec![0, 1, 5, b'm']),
        },
        D::Open { good_psk: true },
        D::Advance(700),
        D::Handshake { link: 1 },
        D::Msg {
            link: 1,
            msg: chat_request(9, "bob"),
        },
        D::Request(name("bob")),
        D::Leave,
        D::Closed { link: 1 },
    ];
    write("daemon", "plain-timeout", &op_seed(2, &daemon2));
    // Re-keying: the server re-keys the link it dialled when its keys are
    // due (a keep-alive first: the daemon drops a link silent for 90 s),
    // the client its standard channel; a request and its answer flow after.
    let rekey = vec![
        D::Open { good_psk: true },
        D::Handshake { link: 0 },
        D::Msg {
            link: 0,
            msg: ArbServerToDaemon::Ready,
        },
        D::Advance(5000),
        D::Msg {
            link: 0,
            msg: ArbServerToDaemon::Ping,
        },
        D::Advance(2600),
        D::Poll { link: 0 },
        D::Pump,
        D::Msg {
            link: 0,
            msg: chat_request(6, "carol"),
        },
        D::Answer(true),
        D::Poll { link: 0 },
    ];
    let seed = op_seed(0, &rekey);
    check("daemon/rekey", targets::daemon(&seed), |s| {
        s.daemons >= 1 && s.rekeys >= 2
    });
    write("daemon", "rekey", &seed);
    regressions();
    println!("done");
}

/// Directed inputs for bugs found while writing the harness (they crash the
/// target until the core is fixed; see docs/SECURITY.md, "Fuzzing"), and
/// the fuzzer's reproducers of harness bugs, rewritten as operations (the
/// wire format of the operations changed since). They are written, not run.
fn regressions() {
    let put_in = |target: &str, name: &str, bytes: &[u8]| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("regressions")
            .join(target);
        fs::create_dir_all(&dir).expect("regressions dir");
        let path = dir.join(name);
        fs::write(&path, bytes).expect("write");
        println!("{:>5} bytes  {}", bytes.len(), path.display());
    };
    let put = |name: &str, bytes: &[u8]| put_in("server_session", name, bytes);
    use WorldOp as N;
    let cmd = |who: u8, c: Cmd| N::Cmd { who, cmd: c };
    // 1. The requester's output queue is nearly full (alice reads nothing;
    //    every `request_channel_failed` queues a `DaemonStatus`) when bob
    //    accepts: `chat_answered` makes alice's chat active, then fails to
    //    queue `ChatStarted`; the hub ends bob's side, alice's stays.
    let mut ops = vec![
        N::Stall { who: 0, chan: 1 },
        cmd(0, Cmd::RequestChat(name("bob"))),
        N::Pump,
    ];
    ops.extend((0..100).map(|_| N::DaemonFail { who: 0 }));
    ops.extend([cmd(1, Cmd::Answer(true)), N::Pump]);
    put("asymmetric-chat-requester-queue-full", &op_seed(1, &ops));
    // 2. The responder's output queue is nearly full (bob reads nothing;
    //    `Users` and `ChatRefused` fill it) when bob's daemon accepts:
    //    `on_daemon_message` makes bob's chat active, fails to queue
    //    `ChatStarted` and returns before the `Answered` event: alice's
    //    request is never answered, bob's side stays active.
    let mut ops = vec![N::Stall { who: 1, chan: 1 }];
    ops.extend((0..34).map(|_| cmd(1, Cmd::ListUsers)));
    for _ in 0..38 {
        ops.extend([
            cmd(1, Cmd::RequestChat(name("dave"))),
            cmd(1, Cmd::LeaveChat),
        ]);
    }
    ops.extend([
        N::Pump,
        cmd(0, Cmd::RequestChat(name("bob"))),
        N::Pump,
        cmd(1, Cmd::Answer(true)),
        N::Pump,
    ]);
    put("asymmetric-chat-responder-queue-full", &op_seed(1, &ops));
    // 3. Alice and bob chat; alice reads nothing for a while and her queue
    //    fills with other control messages (`DaemonStatus`, which no reserve
    //    holds back); bob leaves: the `PeerLeft` for alice does not fit and
    //    is lost. Once alice reads again, nothing was lost on the network,
    //    yet her client is still in the chat her session ended.
    let mut ops = vec![
        cmd(0, Cmd::RequestChat(name("bob"))),
        N::Pump,
        cmd(1, Cmd::Answer(true)),
        N::Pump,
        N::Stall { who: 0, chan: 1 },
    ];
    ops.extend((0..103).map(|_| N::DaemonFail { who: 0 }));
    ops.extend([
        cmd(1, Cmd::LeaveChat),
        N::Pump,
        N::Stall { who: 0, chan: 1 },
        N::Pump,
    ]);
    put("peer-left-lost-queue-full", &op_seed(1, &ops));

    // 4. (found by the `server_session` deep run, a harness bug) A fake
    //    client that stalled before reading its `LoginOk` relays in the chat
    //    the hub has it in: the relay must be judged under the name the hub
    //    knows it by.
    use ServerOp as S;
    let ops = vec![
        S::Connect { who: 255 },
        S::Stall { who: 0 },
        S::Login { who: 0 },
        S::Login { who: 1 },
        S::Msg {
            who: 1,
            msg: ArbClientMsg::AnnounceDaemon { port: 2, secret: 2 },
        },
        S::Dial { ok: true },
        S::Msg {
            who: 0,
            msg: ArbClientMsg::RequestChat { user: name("bob") },
        },
        S::DaemonMsg {
            who: 1,
            msg: ArbDaemonToServer::Answer {
                chat_id: Cid(1),
                answer: 0,
            },
        },
        S::Msg {
            who: 0,
            msg: ArbClientMsg::ChatHandshake {
                chat_id: Cid(1),
                noise: Bytes(vec![224]),
            },
        },
    ];
    put("harness-relay-before-reading-loginok", &op_seed(0, &ops));

    // 5. (found by the `client` deep run, a harness bug) The user accepted
    //    chat 5, then left before the fake server read the daemon's
    //    `Accept`: that `Accept` is justified by the acceptance.
    use ClientOp as C;
    let request = |id: u32, key: usize| C::LinkMsg {
        link: 0,
        msg: ArbServerToDaemon::ChatRequest {
            chat_id: Cid(id),
            from: name("bob"),
            from_key: Key(user_key(key)),
        },
    };
    let ready = C::LinkMsg {
        link: 0,
        msg: ArbServerToDaemon::Ready,
    };
    let start = |id: u32, alice_initiator: bool| C::BobStart {
        chat_id: Cid(id),
        alice_initiator,
    };
    let mut ops = vec![C::Login, C::LinkOpen { good_psk: true }];
    ops.extend((0..15).map(|_| C::Pump));
    ops.extend([
        C::LinkHandshake { link: 0 },
        ready.clone(),
        request(5, 1),
        C::Cmd(Cmd::Answer(true)),
        C::Pump,
        C::Pump,
        C::Pump,
        C::Advance(2313),
    ]);
    ops.extend((0..7).map(|_| C::Pump));
    ops.extend([
        start(1, false),
        ready.clone(),
        request(5, 1),
        C::Cmd(Cmd::Answer(true)),
        start(5, true),
        start(5, false),
        C::Pump,
        C::BobText(text("hi aliVU")),
        C::LinkPoll { link: 170 },
        C::Pump,
        start(5, false),
        C::Pump,
        C::BobText(text("hi al\0\0\0")),
    ]);
    ops.extend((0..10).map(|_| C::Pump));
    ops.extend([
        C::LinkHandshake { link: 0 },
        ready,
        request(5, 1),
        C::Cmd(Cmd::Answer(true)),
        start(2, false),
        start(5, false),
        C::Pump,
        C::BobText(text("hi alice")),
        C::LinkMsg {
            link: 6,
            msg: ArbServerToDaemon::ChatRequest {
                chat_id: Cid(2),
                from: name("bob"),
                from_key: Key(user_key(3)),
            },
        },
        C::Pump,
        C::Cmd(Cmd::LeaveChat),
        C::LinkPoll { link: 181 },
        C::LinkPoll { link: 181 },
        C::LinkPoll { link: 181 },
        C::LinkPoll { link: 181 },
        C::Cmd(Cmd::ListUsers),
        C::Pump,
    ]);
    put_in(
        "client",
        "harness-accept-queued-before-leave",
        &op_seed(0, &ops),
    );
}
