//! Whole-system tests in memory: a server ([`Hub`], or a man-in-the-middle
//! router for tampering), several clients with their daemons, a simulated
//! clock, and frame-level interception. See `common/mod.rs` for the harness.
//!
//! Sections: login; users; chat requests; leaving; limits and timers; the
//! request channel (stale secrets, replays); E2E tampering by the server;
//! tampering on the sockets; accept/leave races; property tests over a
//! recorded session (`props`).

mod common;

use common::*;
use securecom_core::message::{CloseReason, ErrorCode, LoginError, RefuseReason};
use securecom_core::noise::{
    Handshake, HandshakeParams, Pattern, Psk, RemoteCheck, REQUEST_PROLOGUE,
};
use securecom_core::{
    AbuseLimits, ChatEnd, ClientEvent, CryptoError, Duration, Error, Hub, Limits, ProtocolError,
    SafetyNumber,
};

type W = World<Hub<8>>;

fn world() -> W {
    World::hub(Limits::DEFAULT)
}

fn crypto(e: CryptoError) -> Error {
    Error::Crypto(e)
}

fn proto(e: ProtocolError) -> Error {
    Error::Protocol(e)
}

/// Two logged-in users, alice (0) and bob (1).
fn pair() -> (W, usize, usize) {
    let mut w = world();
    let a = w.login("alice");
    let b = w.login("bob");
    (w, a, b)
}

fn msg(from: &str, t: &str) -> ClientEvent {
    ClientEvent::ChatMessage {
        from: name(from),
        text: text(t),
    }
}

fn ended(peer: &str, reason: ChatEnd) -> ClientEvent {
    ClientEvent::ChatEnded {
        peer: name(peer),
        reason,
    }
}

// ====================================================================== login

#[test]
fn login_ok() {
    let mut w = world();
    let a = w.login("alice");
    assert_eq!(w.server.online(), 1);
    let s = w.session(a).expect("session");
    assert_eq!(s.user().map(|u| u.as_str()), Some("alice"));
    assert_eq!(s.user_key(), Some(w.peers[a].client.public_key()));
    assert!(s.daemon_reachable());
    let link = w.peers[a].link.as_ref().expect("daemon link");
    assert!(!link.is_closed());
    // The server's `Ready` proved it holds this login's PSK; the link's only
    // deadline left is its idle one (the server's keep-alives push it on).
    assert!(link.is_authenticated());
    assert_eq!(
        link.poll_timeout(),
        Some(w.now.add(securecom_core::REQUEST_LINK_IDLE))
    );
    assert_eq!(
        w.transcript[&Chan::ReqDown(a)].len(),
        3,
        "msg1, the layer's first message, Ready"
    );
    assert_eq!(
        w.transcript[&Chan::ReqUp(a)].len(),
        2,
        "msg2, the layer's second message"
    );
    assert!(w.peers[a].client.is_logged_in());
    assert!(!w.peers[a].client.is_busy());
    assert!(w.all_errors().is_empty());
    // XX: 2 frames up (msg1, msg3), the layer's first message, then AnnounceDaemon.
    assert_eq!(w.transcript[&Chan::StdUp(a)].len(), 4);
}

#[test]
fn login_unknown_user_refused() {
    let mut w = world();
    let i = w.connect(ClientSpec {
        register: false,
        ..ClientSpec::new("mallory")
    });
    w.pump();
    let p = &w.peers[i];
    assert_eq!(
        p.events,
        vec![ClientEvent::LoginRefused(LoginError::NotAuthorized)]
    );
    assert!(p.client.is_closed());
    assert!(!p.client.is_logged_in());
    assert!(p.link.is_none(), "no daemon was dialed");
    assert!(!p.std_open, "the connection was closed");
    assert_eq!(w.server.online(), 0);
    assert!(w.all_errors().is_empty());
}

#[test]
fn login_with_another_users_key_refused() {
    let mut w = world();
    // "alice" is registered with her key; this client has another one.
    let i = w.connect(ClientSpec {
        key_variant: 1,
        ..ClientSpec::new("alice")
    });
    w.pump();
    let p = &w.peers[i];
    assert_ne!(Some(p.client.public_key()), w.reg.0.get("alice").copied());
    assert_eq!(
        p.events,
        vec![ClientEvent::LoginRefused(LoginError::NotAuthorized)]
    );
    assert!(p.client.is_closed());
    assert_eq!(w.server.online(), 0);
    // The same reason as for an unknown user: a prober learns nothing.
}

#[test]
fn client_pinned_to_wrong_server_key_fails_handshake() {
    let mut w = world();
    let impostor = key_for("impostor-server", 0).public_key();
    let i = w.connect(ClientSpec {
        server_key: Some(impostor),
        ..ClientSpec::new("alice")
    });
    w.pump();
    let p = &w.peers[i];
    assert_eq!(
        p.errors,
        vec![(Chan::StdDown(i), crypto(CryptoError::PeerKeyMismatch))]
    );
    assert!(p.events.is_empty(), "no event: {:?}", p.events);
    assert!(p.client.is_closed());
    assert!(!p.client.is_logged_in());
    // The client never sent message 3: only msg 1 went up.
    assert_eq!(w.transcript[&Chan::StdUp(i)].len(), 1);
    assert_eq!(w.server.online(), 0);
    assert!(w.server_errors.is_empty());
}

#[test]
fn second_login_replaces_the_first() {
    let mut w = world();
    let a = w.login("alice");
    let first = w.peers[a].sid;
    // A second connection for alice (same key) while the first is still open.
    let j = w.connect(ClientSpec::new("alice"));
    w.pump();
    assert_eq!(w.peers[a].closed_reason(), Some(CloseReason::Replaced));
    assert!(w.peers[a].client.is_closed());
    assert!(w.server.session(first).is_none(), "old slot freed");
    assert!(w.peers[j].client.is_logged_in());
    assert_eq!(w.server.online(), 1);
}

// ====================================================================== users

#[test]
fn list_users() {
    let mut w = world();
    let a = w.login("alice");
    w.login("bob");
    w.login("carol");
    w.list_users(a).unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::Users {
            names: ["alice", "bob", "carol"].iter().map(|n| name(n)).collect(),
            more: false
        }]
    );
}

#[test]
fn list_users_pages_through_more_than_one_message() {
    // 35 users in a 40-slot hub: three `Users` messages (16 + 16 + 3).
    let run = || {
        let mut w: World<Hub<40>> = World::hub(Limits::DEFAULT);
        let names: Vec<String> = (0..35).map(|i| format!("user{i:02}")).collect();
        for n in &names {
            w.login(n);
        }
        assert_eq!(w.server.online(), 35);
        w.list_users(0).unwrap();
        w.pump();
        let mut got = Vec::new();
        let mut mores = Vec::new();
        for e in w.peers[0].take_events() {
            match e {
                ClientEvent::Users { names, more } => {
                    assert!(!names.is_empty());
                    mores.push(more);
                    got.extend(names.iter().map(|n| n.to_string()));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(mores, vec![true, true, false]);
        assert_eq!(got, names, "every name once, in slot order");
    };
    // The 40-slot hub is large: give it room.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

// ====================================================================== chat requests

#[test]
fn request_accepted_both_ready_with_equal_safety_numbers() {
    let (mut w, a, b) = pair();
    let (ka, kb) = (
        w.peers[a].client.public_key(),
        w.peers[b].client.public_key(),
    );
    w.request_chat(a, "bob").unwrap();
    assert!(w.peers[a].client.is_busy());
    w.pump();
    let chat_id = match w.peers[a].take_events().as_slice() {
        [ClientEvent::ChatPending { chat_id, user }] => {
            assert_eq!(user.as_str(), "bob");
            *chat_id
        }
        other => panic!("alice: {other:?}"),
    };
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::ChatRequest {
            chat_id,
            from: name("alice"),
            from_key: ka
        }]
    );
    assert!(w.peers[b].client.is_busy(), "asked counts as busy");
    assert!(w.peers[b].link.as_ref().unwrap().is_authenticated());
    w.answer(b, true).unwrap();
    w.pump();
    let sn = SafetyNumber::new(&ka, &kb);
    assert_eq!(sn, SafetyNumber::new(&kb, &ka));
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::ChatReady {
            chat_id,
            peer: name("bob"),
            peer_key: kb,
            safety_number: sn,
            initiator: true
        }]
    );
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::ChatReady {
            chat_id,
            peer: name("alice"),
            peer_key: ka,
            safety_number: sn,
            initiator: false
        }]
    );
    let peer_of = |w: &W, i: usize| {
        w.session(i)
            .and_then(|s| s.chat_peer().map(|(p, id)| (p.to_string(), id)))
    };
    assert_eq!(peer_of(&w, a), Some(("bob".into(), chat_id)));
    assert_eq!(peer_of(&w, b), Some(("alice".into(), chat_id)));
    assert!(w.peers[a].client.chat().unwrap().may_send());
    assert!(!w.peers[b].client.chat().unwrap().may_send());
    assert!(w.all_errors().is_empty());
}

#[test]
fn chat_both_ways_requester_first() {
    let mut w = world();
    let (a, b) = w.chatting();
    // The responder may not speak first; the refusal changes nothing.
    assert_eq!(
        w.send_text(b, "me first"),
        Err(proto(ProtocolError::NotYourTurn))
    );
    assert!(w.peers[b].client.chat().is_some());
    w.pump();
    assert!(w.peers[a].take_events().is_empty());

    w.send_text(a, "hello bob").unwrap();
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![msg("alice", "hello bob")]);
    w.send_text(b, "hi alice").unwrap();
    w.pump();
    assert_eq!(w.peers[a].take_events(), vec![msg("bob", "hi alice")]);
    // Several in a row, both ways, in order.
    w.send_text(a, "one").unwrap();
    w.send_text(a, "two").unwrap();
    w.send_text(b, "three").unwrap();
    w.send_text(b, "four").unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![msg("alice", "one"), msg("alice", "two")]
    );
    assert_eq!(
        w.peers[a].take_events(),
        vec![msg("bob", "three"), msg("bob", "four")]
    );
    // The longest text goes through; a longer one is refused locally.
    let long = "x".repeat(securecom_core::MAX_CHAT_TEXT);
    w.send_text(a, &long).unwrap();
    assert_eq!(
        w.send_text(a, &format!("{long}y")),
        Err(Error::Wire(securecom_core::WireError::OutOfBounds))
    );
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![msg("alice", &long)]);
    assert!(w.all_errors().is_empty());
}

#[test]
fn request_declined() {
    let (mut w, a, b) = pair();
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.peers[a].take_events();
    assert!(w.peers[b].last_request().is_some());
    w.peers[b].take_events();
    w.answer(b, false).unwrap();
    assert!(!w.peers[b].client.is_busy());
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::ChatRefused {
            user: name("bob"),
            reason: RefuseReason::Declined
        }]
    );
    assert!(w.peers[b].take_events().is_empty());
    for i in [a, b] {
        assert!(!w.peers[i].client.is_busy());
        assert!(w.session(i).unwrap().chat_peer().is_none());
    }
    // Nothing pending: a second answer is refused.
    assert_eq!(w.answer(b, true), Err(proto(ProtocolError::Unexpected)));
    // Asking again at once is refused by the server, without bothering bob.
    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::ChatRefused {
            user: name("bob"),
            reason: RefuseReason::TooSoon
        }]
    );
    assert!(w.peers[b].take_events().is_empty());
    // And they can still chat later.
    w.advance_ms(AbuseLimits::DEFAULT.refuse_cooldown.as_millis() + 1);
    w.open_chat(a, b);
}

#[test]
fn busy_user_refuses_automatically() {
    let mut w = world();
    let a = w.login("alice");
    let b = w.login("bob");
    let c = w.login("carol");
    w.open_chat(c, b);
    for i in [a, b, c] {
        w.peers[i].take_events();
    }
    w.request_chat(a, "bob").unwrap();
    w.pump();
    let ev = w.peers[a].take_events();
    assert!(
        matches!(ev.as_slice(), [ClientEvent::ChatPending { user, .. }, ClientEvent::ChatRefused { user: u2, reason: RefuseReason::Busy }] if user == "bob" && u2 == "bob"),
        "alice: {ev:?}"
    );
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::RefusedBusy {
            from: name("alice")
        }]
    );
    assert!(!w.peers[a].client.is_busy());
    // Bob's chat with carol goes on.
    w.send_text(c, "still there?").unwrap();
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![msg("carol", "still there?")]);
    w.send_text(b, "yes").unwrap();
    w.pump();
    assert_eq!(w.peers[c].take_events(), vec![msg("bob", "yes")]);
}

#[test]
fn user_with_a_pending_request_is_busy() {
    let mut w = world();
    let a = w.login("alice");
    let b = w.login("bob");
    let c = w.login("carol");
    w.request_chat(c, "bob").unwrap();
    w.pump();
    assert!(w.peers[b].last_request().is_some());
    w.peers[b].take_events();
    // The server itself refuses: bob's daemon is already asked.
    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::ChatRefused {
            user: name("bob"),
            reason: RefuseReason::Busy
        }]
    );
    assert!(w.peers[b].take_events().is_empty());
    // Carol's request is still the one bob answers.
    w.answer(b, true).unwrap();
    w.pump();
    assert!(w.peers[c].chat_ready().is_some());
    assert!(w.peers[b].chat_ready().is_some());
    // A requester may not ask twice (refused locally).
    assert_eq!(w.request_chat(c, "alice"), Err(proto(ProtocolError::Busy)));
}

#[test]
fn request_to_offline_unknown_and_self() {
    let (mut w, a, _b) = pair();
    w.register("dave"); // registered, never connected
    for (target, reason) in [
        ("dave", RefuseReason::Offline),
        ("zed", RefuseReason::UnknownUser),
        ("alice", RefuseReason::SelfRequest),
    ] {
        w.request_chat(a, target).unwrap();
        w.pump();
        assert_eq!(
            w.peers[a].take_events(),
            vec![ClientEvent::ChatRefused {
                user: name(target),
                reason
            }],
            "request to {target}"
        );
        assert!(!w.peers[a].client.is_busy());
        assert!(w.session(a).unwrap().chat_peer().is_none());
    }
    // A bad name never leaves the client.
    let before = w.transcript[&Chan::StdUp(a)].len();
    assert_eq!(
        w.request_chat(a, "Bob"),
        Err(proto(ProtocolError::BadUserName))
    );
    w.pump();
    assert_eq!(w.transcript[&Chan::StdUp(a)].len(), before);
    assert!(w.all_errors().is_empty());
}

#[test]
fn request_to_user_without_daemon_is_unreachable() {
    let mut w = world();
    let a = w.login("alice");
    let b = w.connect(ClientSpec {
        daemon: false,
        ..ClientSpec::new("bob")
    });
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::LoggedIn { user: name("bob") }]
    );
    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::ChatRefused {
            user: name("bob"),
            reason: RefuseReason::Unreachable
        }]
    );
}

// ====================================================================== leaving

#[test]
fn leave_ends_chat_for_both_and_new_chats_work() {
    let mut w = world();
    let (a, b) = w.chatting();
    w.send_text(a, "bye soon").unwrap();
    w.pump();
    w.peers[b].take_events();
    w.leave(a).unwrap();
    assert_eq!(w.peers[a].take_events(), vec![ended("bob", ChatEnd::Left)]);
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::PeerClosed { undelivered: 0 })]
    );
    for i in [a, b] {
        assert!(!w.peers[i].client.is_busy());
        assert!(w.peers[i].client.chat().is_none());
        assert!(w.session(i).unwrap().chat_peer().is_none());
    }
    assert_eq!(w.leave(b), Err(proto(ProtocolError::NoChat)));
    assert_eq!(w.send_text(a, "anyone?"), Err(proto(ProtocolError::NoChat)));
    // A new chat, the other way round: bob now speaks first.
    let old = w.peers[a].sent_texts.len();
    w.open_chat(b, a);
    w.peers[a].take_events();
    w.peers[b].take_events();
    assert_eq!(
        w.send_text(a, "me?"),
        Err(proto(ProtocolError::NotYourTurn))
    );
    w.send_text(b, "again").unwrap();
    w.pump();
    assert_eq!(w.peers[a].take_events(), vec![msg("bob", "again")]);
    w.send_text(a, "yes").unwrap();
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![msg("alice", "yes")]);
    assert_eq!(w.peers[a].sent_texts.len(), old + 1);
    // And with a third user after that.
    let c = w.login("carol");
    w.leave(b).unwrap();
    w.pump();
    w.open_chat(c, a);
    assert!(w.all_errors().is_empty());
}

#[test]
fn withdrawn_request_reaches_the_asked_user() {
    let (mut w, a, b) = pair();
    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert!(w.peers[b].last_request().is_some());
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.leave(a).unwrap();
    assert_eq!(w.peers[a].take_events(), vec![ended("bob", ChatEnd::Left)]);
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::RequestWithdrawn {
            from: name("alice")
        }]
    );
    assert!(!w.peers[b].client.is_busy());
    assert!(!w.peers[a].client.is_busy());
    assert_eq!(w.answer(b, true), Err(proto(ProtocolError::Unexpected)));
    // Both are free for a new chat.
    w.open_chat(b, a);
}

#[test]
fn withdrawn_after_accept_before_chat_start() {
    // Bob accepted, but alice's withdrawal reaches the server first.
    let (mut w, a, b) = pair();
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.answer(b, true).unwrap();
    // Alice leaves before anything moves; her LeaveChat is handled before
    // bob's answer (alice's channels are pumped first).
    w.leave(a).unwrap();
    w.pump();
    assert_eq!(w.peers[a].take_events(), vec![ended("bob", ChatEnd::Left)]);
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::RequestWithdrawn {
            from: name("alice")
        }]
    );
    for i in [a, b] {
        assert!(!w.peers[i].client.is_busy());
        assert!(w.session(i).unwrap().chat_peer().is_none());
    }
    w.open_chat(a, b);
}

#[test]
fn logout_closes_and_leaves_presence() {
    let mut w = world();
    let a = w.login("alice");
    let b = w.login("bob");
    assert_eq!(w.server.online(), 2);
    w.logout(a).unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::Closed(CloseReason::LoggedOut)]
    );
    assert!(w.peers[a].client.is_closed());
    assert!(w.peers[a].link.is_none(), "request channel closed too");
    assert!(!w.peers[a].std_open);
    assert_eq!(w.server.online(), 1);
    assert_eq!(w.logout(a), Err(proto(ProtocolError::NotLoggedIn)));
    w.list_users(b).unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::Users {
            names: [name("bob")].into_iter().collect(),
            more: false
        }]
    );
    w.request_chat(b, "alice").unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::ChatRefused {
            user: name("alice"),
            reason: RefuseReason::Offline
        }]
    );
    assert!(w.all_errors().is_empty());
}

#[test]
fn logout_during_chat_ends_it_for_the_peer() {
    let mut w = world();
    let (a, b) = w.chatting();
    w.logout(a).unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![
            ended("bob", ChatEnd::Left),
            ClientEvent::Closed(CloseReason::LoggedOut)
        ]
    );
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::PeerClosed { undelivered: 0 })]
    );
    assert_eq!(w.server.online(), 1);
    assert!(!w.peers[b].client.is_busy());
}

#[test]
fn disconnect_mid_chat_ends_it_for_the_peer() {
    let mut w = world();
    let (a, b) = w.chatting();
    w.send_text(a, "brb").unwrap();
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![msg("alice", "brb")]);
    let sid = w.peers[a].sid;
    // The socket dies: the driver tells the hub.
    w.server.disconnected(sid, w.now, &w.reg);
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::EndedByServer { unconfirmed: 0 })]
    );
    assert_eq!(w.server.online(), 1);
    assert!(!w.peers[b].client.is_busy());
    assert!(w.session(b).unwrap().chat_peer().is_none());
    // Alice logs in again and they chat anew.
    w.relogin(a);
    w.peers[a].take_events();
    w.open_chat(a, b);
}

#[test]
fn disconnect_of_asked_user_refuses_the_request() {
    let (mut w, a, b) = pair();
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.peers[a].take_events();
    assert!(w.peers[b].last_request().is_some());
    w.disconnect(b);
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::ChatRefused {
            user: name("bob"),
            reason: RefuseReason::Offline
        }]
    );
    assert!(!w.peers[a].client.is_busy());
}

// ====================================================================== limits and timers

#[test]
fn message_limit_expires_the_session() {
    let limits = Limits {
        max_messages: 6,
        ..Limits::DEFAULT
    };
    let mut w: W = World::hub(limits);
    let a = w.login("alice");
    let b = w.login("bob");
    let mut lists = 0;
    for _ in 0..10 {
        if w.list_users(a).is_err() {
            break;
        }
        w.pump();
        if w.peers[a].client.is_closed() {
            break;
        }
        lists += 1;
    }
    let users = w.peers[a]
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Users { .. }))
        .count();
    assert_eq!(
        w.peers[a].closed_reason(),
        Some(CloseReason::SessionExpired),
        "events {:?} errors {:?}",
        w.peers[a].events,
        w.all_errors()
    );
    assert!(w.peers[a].client.is_closed());
    assert!(users < 6 && lists < 6, "{users} lists answered");
    assert_eq!(w.server.online(), 1);
    assert!(w.peers[b].client.is_logged_in());
}

#[test]
fn session_age_limit_closes_on_timeout() {
    let limits = Limits {
        max_session_age: Duration::from_secs(60),
        ..Limits::DEFAULT
    };
    let mut w: W = World::hub(limits);
    // Alice's client has the default (longer) age: the server's limit closes her.
    let a = w.connect(ClientSpec::new("alice"));
    w.pump();
    w.peers[a].take_events();
    // Bob's client has the same short limit as the server.
    let b = w.login("bob");
    let start = w.now;
    w.advance_to(start.add(Duration::from_secs(59)));
    assert!(w.peers[a].client.is_logged_in());
    assert!(w.peers[b].client.is_logged_in());
    assert_eq!(w.server.online(), 2);
    w.advance_to(start.add(Duration::from_secs(61)));
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::Closed(CloseReason::SessionExpired)]
    );
    assert!(w.peers[a].client.is_closed());
    // Bob's own timer and the server's fire at the same instant: either way is fine.
    let pb = &w.peers[b];
    assert!(
        pb.closed_reason() == Some(CloseReason::SessionExpired)
            || pb
                .errors
                .contains(&(Chan::StdDown(b), proto(ProtocolError::SessionExpired))),
        "bob: {:?} {:?}",
        pb.events,
        pb.errors
    );
    assert!(pb.client.is_closed());
    assert_eq!(w.server.online(), 0);
}

#[test]
fn idle_client_is_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(30),
        ..Limits::DEFAULT
    };
    let mut w: W = World::hub(limits);
    let (a, b) = w.chatting();
    // Alice's driver stops calling handle_timeout: no keep-alives.
    w.peers[a].drive_timeouts = false;
    w.advance_ms(29_000);
    assert_eq!(w.server.online(), 2);
    w.advance_ms(2_000);
    assert_eq!(
        w.peers[a].take_events(),
        vec![
            ended("bob", ChatEnd::EndedByServer { unconfirmed: 0 }),
            ClientEvent::Closed(CloseReason::Idle)
        ]
    );
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::EndedByServer { unconfirmed: 0 })]
    );
    assert_eq!(w.server.online(), 1);
    assert!(w.peers[b].client.is_logged_in());
}

#[test]
fn keepalive_keeps_sessions_alive() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(30),
        ..Limits::DEFAULT
    };
    let mut w: W = World::hub(limits);
    let (a, b) = w.chatting();
    let pings_before = w.transcript[&Chan::StdUp(a)].len();
    // Ten idle timeouts pass; keep-alives go every 10 s.
    w.advance_ms(300_000);
    assert_eq!(w.server.online(), 2);
    for i in [a, b] {
        assert!(w.peers[i].client.is_logged_in());
        assert!(w.peers[i].take_events().is_empty());
    }
    assert!(w.transcript[&Chan::StdUp(a)].len() - pings_before >= 29);
    assert!(w.all_errors().is_empty());
    // The chat still works.
    w.send_text(a, "still here").unwrap();
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![msg("alice", "still here")]);
}

#[test]
fn handshake_timeout_drops_a_silent_connection() {
    let mut w = world();
    let sid = w.server.accept(w.now, &mut w.rng).unwrap();
    assert!(w.server.session(sid).is_some());
    let t = w.now.add(Limits::DEFAULT.handshake_timeout);
    w.advance_to(t);
    assert!(w.server.session(sid).unwrap().is_closed());
    assert_eq!(w.server.online(), 0);
}

// ====================================================================== request channel: stale secrets, replays

/// A framed NNpsk0 message 1 from a server that has the wrong PSK.
fn nnpsk0_msg1_with(psk: [u8; 32], rng: &mut Rng) -> Vec<u8> {
    let psk = Psk::from_bytes(psk);
    let mut hs = Handshake::<securecom_core::RustCrypto>::new(
        HandshakeParams {
            pattern: Pattern::NNpsk0,
            initiator: true,
            prologue: REQUEST_PROLOGUE,
            local_static: None,
            remote_static: None,
            psk: Some(&psk),
            check: RemoteCheck::Any,
        },
        rng,
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = hs.write_message(&[], &mut buf).unwrap();
    let mut f = (n as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&buf[..n]);
    f
}

/// Feeds `bytes` to a fresh request link of client `i`; returns the first error.
fn feed_new_link(w: &mut W, i: usize, bytes: &[u8]) -> (Result<(), Error>, bool) {
    let now = w.now;
    let p = &mut w.peers[i];
    let mut link = p.client.new_request_link(now, &mut p.rng).unwrap();
    let mut rest = bytes;
    let mut result = Ok(());
    while !rest.is_empty() {
        match p
            .client
            .handle_request_input(&mut link, now, rest, &mut p.rng)
        {
            Ok(n) => rest = &rest[n..],
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let mut out = [0u8; 4096];
    let _ = p.client.poll_request_transmit(&mut link, now, &mut out);
    let auth = link.is_authenticated();
    p.client.request_link_closed(&link);
    (result, auth)
}

#[test]
fn request_channel_with_wrong_psk_is_refused() {
    let (mut w, a, _b) = pair();
    let mut rng = rng_for(7, "attacker");
    let msg1 = nnpsk0_msg1_with([7; 32], &mut rng);
    let (r, auth) = feed_new_link(&mut w, a, &msg1);
    assert_eq!(r, Err(crypto(CryptoError::HandshakeFailed)));
    assert!(!auth);
    let p = &mut w.peers[a];
    assert!(p.client.poll_event().is_none());
    assert!(p.take_events().is_empty());
    assert!(!p.client.is_busy());
    assert!(p.client.is_logged_in());
    // The real request channel still works.
    w.open_chat(1, a);
}

#[test]
fn request_channel_from_an_earlier_login_is_refused() {
    let (mut w, a, b) = pair();
    let first_msg1 = w.transcript[&Chan::ReqDown(a)][0].clone();
    // Alice logs in again: a new standard handshake, a new secret, a new PSK.
    let (mut old_client, _old_link) = w.relogin(a);
    assert_eq!(
        w.peers[a].take_events(),
        vec![
            ClientEvent::LoggedIn {
                user: name("alice")
            },
            ClientEvent::DaemonStatus { reachable: true }
        ]
    );
    let second_msg1 = w.transcript[&Chan::ReqDown(a)][1].clone();
    assert_ne!(first_msg1, second_msg1);

    // 1. The server's first message of the earlier login, to today's daemon.
    let (r, auth) = feed_new_link(&mut w, a, &first_msg1);
    assert_eq!(r, Err(crypto(CryptoError::HandshakeFailed)));
    assert!(!auth);
    assert!(w.peers[a].take_events().is_empty());
    assert!(!w.peers[a].client.is_busy());

    // 2. Today's server message to a link made from the earlier login's state.
    let now = w.now;
    let mut rng = rng_for(9, "old");
    let mut stale = old_client.new_request_link(now, &mut rng).unwrap();
    let r = old_client.handle_request_input(&mut stale, now, &second_msg1, &mut rng);
    assert_eq!(r, Err(crypto(CryptoError::HandshakeFailed)));
    assert!(stale.is_closed());
    assert!(!stale.is_authenticated());
    assert!(old_client.poll_event().is_none());
    assert!(!old_client.is_busy());

    // Today's link is untouched and carries requests.
    w.request_chat(b, "alice").unwrap();
    w.pump();
    assert!(w.peers[a].last_request().is_some());
}

#[test]
fn replayed_request_channel_authenticates_nothing() {
    let (mut w, a, b) = pair();
    // A request from bob travels on alice's request channel; she declines.
    w.request_chat(b, "alice").unwrap();
    w.pump();
    assert!(w.peers[a].last_request().is_some());
    w.answer(a, false).unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    let down = w.transcript[&Chan::ReqDown(a)].clone();
    assert_eq!(
        down.len(),
        4,
        "msg1, the layer's first message, Ready and the ChatRequest"
    );

    // Message 1 alone: the handshake "completes" on the daemon's side (NNpsk0
    // cannot tell a replay), but no message is authenticated, and the link is
    // dropped when its proof deadline passes.
    let now = w.now;
    let p = &mut w.peers[a];
    let mut link = p.client.new_request_link(now, &mut p.rng).unwrap();
    assert_eq!(
        p.client
            .handle_request_input(&mut link, now, &down[0], &mut p.rng),
        Ok(down[0].len())
    );
    assert!(!link.is_authenticated());
    let deadline = link
        .poll_timeout()
        .expect("an unproven link has a deadline");
    assert_eq!(deadline, now.add(Limits::DEFAULT.handshake_timeout));
    assert_eq!(p.client.handle_request_timeout(&mut link, now), Ok(()));
    assert_eq!(
        p.client.handle_request_timeout(&mut link, deadline),
        Err(proto(ProtocolError::HandshakeTimeout))
    );
    assert!(link.is_closed());
    assert_eq!(link.poll_timeout(), None);
    p.client.request_link_closed(&link);
    assert!(w.peers[a].take_events().is_empty());
    assert!(!w.peers[a].client.is_busy());

    // The whole recorded connection: its layer message, `Ready` and the old
    // ChatRequest do not decrypt under the daemon's fresh ephemeral key.
    let all: Vec<u8> = down.concat();
    let (r, auth) = feed_new_link(&mut w, a, &all);
    assert_eq!(r, Err(crypto(CryptoError::DecryptFailed)));
    assert!(!auth);
    assert!(w.peers[a].take_events().is_empty());
    assert!(!w.peers[a].client.is_busy());
    assert!(w.peers[a].client.is_logged_in());
    // Nothing reached the server either.
    assert!(w.peers[b].take_events().is_empty());
}

#[test]
fn request_link_before_login_is_refused() {
    let mut w = world();
    let a = w.connect(ClientSpec::new("alice"));
    let now = w.now;
    let p = &mut w.peers[a];
    assert!(matches!(
        p.client.new_request_link(now, &mut p.rng),
        Err(Error::Protocol(ProtocolError::NotLoggedIn))
    ));
}

// ====================================================================== E2E tampering (server in the middle)

fn mitm_chat() -> (World<MitmServer>, usize, usize) {
    let mut w = World::mitm(Limits::DEFAULT);
    let (a, b) = w.chatting();
    (w, a, b)
}

fn assert_no_messages<S: Server>(w: &World<S>, i: usize) {
    assert!(
        w.peers[i].received_texts().is_empty(),
        "{} got {:?}",
        w.peers[i].name,
        w.peers[i].received_texts()
    );
}

/// `MIN_MAX_FRAME` is the longest frame honest peers send: a login, a daemon
/// link, a chat set-up and the re-keys of all three (the chat's relayed
/// re-key message 3 is the longest) never exceed it, and the relayed one
/// meets it when the chat id takes its five varint bytes (ids are random;
/// most do).
#[test]
fn no_honest_frame_is_longer_than_min_max_frame() {
    let (mut w, a, b) = pair();
    w.open_chat(a, b);
    w.advance_ms(125_000);
    assert_eq!(w.peers[a].client.chat().map(|c| c.rekeys()), Some(1));
    let mut longest = 0;
    for frames in w.transcript.values() {
        for f in frames {
            assert!(
                f.len() <= securecom_core::MIN_MAX_FRAME,
                "{} bytes",
                f.len()
            );
            longest = longest.max(f.len());
        }
    }
    assert!(longest >= securecom_core::MIN_MAX_FRAME - 4, "{longest}");
}

#[test]
fn mitm_world_chats_like_the_hub() {
    let (mut w, a, b) = mitm_chat();
    w.send_text(a, "hello").unwrap();
    w.pump();
    w.send_text(b, "hi").unwrap();
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![msg("alice", "hello")]);
    assert_eq!(w.peers[a].take_events(), vec![msg("bob", "hi")]);
    // KK and the post-quantum layer: two messages each way.
    assert_eq!(w.transcript[&Chan::E2eHs(a)].len(), 2);
    assert_eq!(w.transcript[&Chan::E2eHs(b)].len(), 2);
}

#[test]
fn tampered_chat_data_ends_the_chat() {
    let (mut w, a, b) = mitm_chat();
    w.set_tap(FnTap(move |chan, idx, mut f: Vec<u8>| {
        if chan == Chan::E2eData(a) && idx == 0 {
            f[3] ^= 0x20;
        }
        vec![f]
    }));
    w.send_text(a, "transfer 100").unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended(
            "alice",
            ChatEnd::Failed(crypto(CryptoError::DecryptFailed))
        )]
    );
    assert_eq!(
        w.peers[a].take_events(),
        // Bob never acknowledged it: it may not have arrived (it did not).
        vec![ended("bob", ChatEnd::EndedByServer { unconfirmed: 1 })]
    );
    for i in [a, b] {
        assert!(!w.peers[i].client.is_busy());
        assert!(w.peers[i].client.is_logged_in(), "the session goes on");
        assert!(w.session(i).unwrap().chat_peer().is_none());
    }
    assert_no_messages(&w, b);
}

#[test]
fn tampered_chat_handshake_ends_the_chat() {
    let mut w = World::mitm(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    w.set_tap(FnTap(move |chan, _idx, mut f: Vec<u8>| {
        if chan == Chan::E2eHs(a) {
            let n = f.len();
            f[n - 1] ^= 1;
        }
        vec![f]
    }));
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.answer(b, true).unwrap();
    w.pump();
    let eb = w.peers[b].take_events();
    assert!(
        matches!(
            eb.as_slice(),
            [
                ClientEvent::ChatRequest { .. },
                ClientEvent::ChatEnded {
                    reason: ChatEnd::Failed(Error::Crypto(CryptoError::HandshakeFailed)),
                    ..
                }
            ]
        ),
        "bob: {eb:?}"
    );
    let ea = w.peers[a].take_events();
    assert!(
        matches!(
            ea.as_slice(),
            [
                ClientEvent::ChatPending { .. },
                ClientEvent::ChatEnded {
                    reason: ChatEnd::PeerLeft,
                    ..
                }
            ]
        ),
        "alice: {ea:?}"
    );
    assert!(w.peers[a].chat_ready().is_none() && w.peers[b].chat_ready().is_none());
    assert!(!w.peers[a].client.is_busy() && !w.peers[b].client.is_busy());
}

#[test]
fn replayed_chat_data_ends_the_chat() {
    let (mut w, a, b) = mitm_chat();
    w.set_tap(MutationTap::new(Chan::E2eData(a), 0, Mutation::Duplicate));
    w.send_text(a, "once").unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![
            msg("alice", "once"),
            ended("alice", ChatEnd::Failed(crypto(CryptoError::DecryptFailed)))
        ]
    );
    assert_eq!(
        w.peers[a].take_events(),
        vec![ended("bob", ChatEnd::EndedByServer { unconfirmed: 1 })]
    );
}

#[test]
fn replayed_chat_data_later_ends_the_chat() {
    // The server keeps a message and plays it again after others went through.
    let (mut w, a, b) = mitm_chat();
    w.send_text(a, "first").unwrap();
    w.pump();
    w.send_text(b, "ok").unwrap();
    w.pump();
    let first = w.transcript[&Chan::E2eData(a)][0].clone();
    w.deliver(Chan::E2eData(a), first);
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![
            msg("alice", "first"),
            ended("alice", ChatEnd::Failed(crypto(CryptoError::DecryptFailed)))
        ]
    );
}

#[test]
fn reordered_chat_data_ends_the_chat() {
    let (mut w, a, b) = mitm_chat();
    w.set_tap(MutationTap::new(
        Chan::E2eData(a),
        0,
        Mutation::SwapWithNext,
    ));
    w.send_text(a, "one").unwrap();
    w.send_text(a, "two").unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended(
            "alice",
            ChatEnd::Failed(crypto(CryptoError::DecryptFailed))
        )]
    );
    assert_eq!(
        w.peers[a].take_events(),
        vec![ended("bob", ChatEnd::EndedByServer { unconfirmed: 2 })]
    );
    assert_no_messages(&w, b);
}

#[test]
fn dropped_chat_data_fails_the_next_one() {
    let (mut w, a, b) = mitm_chat();
    w.set_tap(MutationTap::new(Chan::E2eData(a), 0, Mutation::Drop));
    w.send_text(a, "lost").unwrap();
    w.pump();
    assert!(w.peers[b].take_events().is_empty());
    w.send_text(a, "next").unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended(
            "alice",
            ChatEnd::Failed(crypto(CryptoError::DecryptFailed))
        )]
    );
    assert_no_messages(&w, b);
}

#[test]
fn chat_data_replayed_into_a_new_chat_fails() {
    // A message of an earlier chat between the same users, relayed into the
    // new one: the new chat's keys differ, so it fails.
    let (mut w, a, b) = mitm_chat();
    w.send_text(a, "old chat").unwrap();
    w.pump();
    let old = w.transcript[&Chan::E2eData(a)][0].clone();
    w.leave(a).unwrap();
    w.pump();
    w.open_chat(a, b);
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.deliver(Chan::E2eData(a), old);
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended(
            "alice",
            ChatEnd::Failed(crypto(CryptoError::DecryptFailed))
        )]
    );
}

#[test]
fn lost_chat_handshake_times_out_and_ends_the_chat() {
    // The server swallows the requester's KK message: neither side can open
    // the chat; the handshake deadline ends it on both, the session goes on.
    let mut w = World::mitm(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    w.set_tap(MutationTap::new(Chan::E2eHs(a), 0, Mutation::Drop));
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.answer(b, true).unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    assert!(w.peers[a].client.is_busy() && w.peers[b].client.is_busy());
    let t = w.now.add(Limits::DEFAULT.handshake_timeout);
    w.advance_to(t);
    let timeout = ChatEnd::Failed(proto(ProtocolError::HandshakeTimeout));
    let mut timed_out = 0;
    for (i, peer) in [(a, "bob"), (b, "alice")] {
        let ev = w.peers[i].events.clone();
        assert!(
            ev == [ended(peer, timeout)] || ev == [ended(peer, ChatEnd::PeerLeft)],
            "{}: {ev:?}",
            w.peers[i].name
        );
        timed_out += usize::from(ev == [ended(peer, timeout)]);
        assert!(!w.peers[i].client.is_busy());
        assert!(w.peers[i].client.is_logged_in());
        assert!(w.session(i).unwrap().chat_peer().is_none());
    }
    // Whoever's timer fired first reports the timeout; the other may learn
    // it from the server first.
    assert!(timed_out >= 1);
    assert!(w.peers.iter().all(|p| p.chat_ready().is_none()));
    assert_no_messages(&w, a);
    assert_no_messages(&w, b);
}

#[test]
fn full_output_queue_refuses_text_without_breaking_the_chat() {
    // A text that cannot be queued must not use up a nonce.
    let mut w = world();
    let (a, b) = w.chatting();
    let mut sent = 0;
    let refused = loop {
        match w.send_text(a, &format!("burst {sent:02}")) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100, "the queue never fills");
    };
    assert_eq!(refused, proto(ProtocolError::QueueFull));
    assert!(sent > 1);
    w.pump();
    let got = w.peers[b].received_texts();
    assert_eq!(got.len(), sent);
    assert_eq!(got, w.peers[a].sent_texts);
    // The chat goes on, both ways.
    w.send_text(a, "after the burst").unwrap();
    w.send_text(b, "got them all").unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].received_texts().last().map(String::as_str),
        Some("after the burst")
    );
    assert_eq!(w.peers[a].received_texts(), ["got them all"]);
    assert!(w.failed_chats() == 0 && w.all_errors().is_empty());
}

#[test]
fn slow_reader_is_told_when_the_server_ends_its_chat() {
    let mut w = world();
    let (a, b) = w.chatting();
    // Bob stops reading his socket; alice keeps talking.
    w.peers[b].paused = true;
    let mut i = 0;
    while w.peers[a].client.chat().is_some() && i < 500 {
        let _ = w.send_text(a, &format!("message {i:03}"));
        w.pump();
        i += 1;
    }
    // The server ended the chat: bob's queue could take no more.
    // Bob acknowledged none of them (he sent nothing): all may be lost.
    let sent = u32::try_from(w.peers[a].sent_texts.len()).unwrap();
    assert_eq!(
        w.peers[a].chat_ends(),
        [ChatEnd::EndedByServer { unconfirmed: sent }],
        "alice: {:?}",
        w.peers[a].events
    );
    assert!(w.session(b).unwrap().chat_peer().is_none());
    // Bob reads again: what was queued arrives in order, then he must learn
    // that the chat is over.
    w.peers[b].paused = false;
    w.pump();
    let got = w.peers[b].received_texts();
    assert!(!got.is_empty());
    assert_eq!(got[..], w.peers[a].sent_texts[..got.len()]);
    assert_eq!(
        w.peers[b].chat_ends(),
        [ChatEnd::EndedByServer { unconfirmed: 0 }],
        "bob still thinks he is chatting after {} messages",
        got.len()
    );
    assert!(!w.peers[b].client.is_busy());
}

// ====================================================================== tampering on the sockets (hub)

#[test]
fn tampered_standard_channel_frame_closes_the_session() {
    let mut w = world();
    let (a, b) = w.chatting();
    let next = w.transcript[&Chan::StdUp(a)].len();
    w.set_tap(MutationTap::new(
        Chan::StdUp(a),
        next,
        Mutation::Flip { pos: 9, mask: 4 },
    ));
    w.send_text(a, "hi").unwrap();
    w.pump();
    assert_eq!(
        w.server_errors,
        vec![(Chan::StdUp(a), crypto(CryptoError::DecryptFailed))]
    );
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::EndedByServer { unconfirmed: 0 })]
    );
    assert_eq!(w.server.online(), 1);
    assert_no_messages(&w, b);
}

#[test]
fn chat_data_crossing_a_leave_gets_wrong_chat() {
    // Bob answers while alice leaves: his message reaches the server after
    // her `LeaveChat` and is refused with an error code; the session goes on.
    let mut w = world();
    let (a, b) = w.chatting();
    w.send_text(a, "hi").unwrap();
    w.pump();
    w.peers[b].take_events();
    w.send_text(b, "reply").unwrap();
    w.leave(a).unwrap();
    w.pump();
    assert_eq!(w.peers[a].take_events(), vec![ended("bob", ChatEnd::Left)]);
    assert_eq!(
        w.peers[b].take_events(),
        vec![
            // Alice never read "reply": her close says so.
            ended("alice", ChatEnd::PeerClosed { undelivered: 1 }),
            ClientEvent::ServerError(ErrorCode::WrongChat)
        ]
    );
    assert!(w.peers[b].client.is_logged_in());
    assert!(w.all_errors().is_empty());
    // Nothing was lost that matters: they chat again.
    w.open_chat(b, a);
}

// ====================================================================== accept/leave races
//
// The first two failed against an earlier core (before commits fd9f513 and
// 4e7b3b4 changed client.rs); all three stay as regression tests.

/// Regression (fixed in client.rs `request_link_closed`): the user accepted,
/// then the request connection broke before the server had the answer; the
/// client used to stay `Accepted` (busy, no chat) forever.
#[test]
fn accepted_answer_lost_leaves_no_one_busy() {
    let (mut w, a, b) = pair();
    w.request_chat(a, "bob").unwrap();
    w.pump();
    // The answer frame (ReqUp #2 after the handshake replies) is changed on the wire.
    w.set_tap(MutationTap::new(
        Chan::ReqUp(b),
        2,
        Mutation::Flip { pos: 5, mask: 1 },
    ));
    w.answer(b, true).unwrap();
    w.pump();
    assert_eq!(
        w.server_errors,
        vec![(Chan::ReqUp(b), crypto(CryptoError::DecryptFailed))]
    );
    assert!(w.peers[a].events.contains(&ClientEvent::ChatRefused {
        user: name("bob"),
        reason: RefuseReason::Unreachable
    }));
    assert!(w.peers[b]
        .events
        .contains(&ClientEvent::DaemonStatus { reachable: false }));
    assert!(!w.peers[a].client.is_busy());
    // Bob accepted a chat that can no longer start: he must be told and must
    // not stay busy (he used to stay `Accepted` until he typed /leave).
    assert!(
        !w.peers[b].client.is_busy(),
        "bob stays 'Accepted' forever: {:?}",
        w.peers[b].events
    );
    assert_eq!(
        w.peers[b].events[1..],
        [
            ClientEvent::RequestWithdrawn {
                from: name("alice")
            },
            ClientEvent::DaemonStatus { reachable: false }
        ]
    );
    // And he can be asked again (once his daemon is back).
    w.relogin(b);
    w.open_chat(a, b);
}

/// Regression (fixed in client.rs `withdraw_unsent_accept` and
/// `on_chat_started`): leaving right after accepting used to still send
/// Accept, and the server started a chat the client ignored.
#[test]
fn leave_right_after_accept_leaves_no_half_open_chat() {
    let (mut w, a, b) = pair();
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.answer(b, true).unwrap();
    // Bob changes his mind before the daemon wrote the answer.
    w.leave(b).unwrap();
    w.pump();
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::Left)]
    );
    // Alice must learn that there is no chat, and nobody may stay in one.
    let ea = w.peers[a].take_events();
    assert!(
        matches!(
            ea.as_slice(),
            [ClientEvent::ChatRefused { .. }] | [ClientEvent::ChatEnded { .. }]
        ),
        "alice: {ea:?}"
    );
    assert!(!w.peers[a].client.is_busy(), "alice is stuck in a chat");
    for i in [a, b] {
        assert!(
            w.session(i).unwrap().chat_peer().is_none(),
            "server: still in a chat"
        );
    }
    // Both can chat afterwards.
    w.advance_ms(AbuseLimits::DEFAULT.refuse_cooldown.as_millis() + 1);
    w.open_chat(a, b);
}

/// The same race across the two connections: bob's answer was already
/// written when he left, and his `LeaveChat` reaches the server before the
/// `Accept` (the two travel on different connections).
#[test]
fn leave_crossing_a_written_accept_leaves_no_half_open_chat() {
    let (mut w, a, b) = pair();
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.answer(b, true).unwrap();
    // The daemon writes the answer to its socket; the server has not read it.
    let now = w.now;
    let p = &mut w.peers[b];
    let mut link = p.link.take().unwrap();
    let mut buf = [0u8; 4096];
    let n = p.client.poll_request_transmit(&mut link, now, &mut buf);
    assert!(n > 0);
    p.link = Some(link);
    w.leave(b).unwrap();
    // LeaveChat first...
    w.pump();
    // ...then the Accept arrives.
    w.deliver(Chan::ReqUp(b), buf[..n].to_vec());
    w.pump();
    let ea = w.peers[a].take_events();
    assert!(
        matches!(
            ea.as_slice(),
            [ClientEvent::ChatEnded {
                reason: ChatEnd::PeerLeft,
                ..
            }]
        ),
        "alice: {ea:?}"
    );
    for i in [a, b] {
        assert!(!w.peers[i].client.is_busy());
        assert!(w.session(i).unwrap().chat_peer().is_none());
    }
    w.open_chat(b, a);
}

// ====================================================================== ending honestly (issue 11)

#[test]
fn peer_close_counts_what_arrived_both_ways() {
    let mut w = world();
    let (a, b) = w.chatting();
    for t in ["one", "two"] {
        w.send_text(a, t).unwrap();
    }
    w.pump();
    w.send_text(b, "got both").unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    // Bob's last two cross alice's leaving: her close says she got 1 of his 3.
    w.send_text(b, "three").unwrap();
    w.send_text(b, "four").unwrap();
    w.leave(a).unwrap();
    w.pump();
    assert_eq!(w.peers[a].take_events(), vec![ended("bob", ChatEnd::Left)]);
    // (His two texts reached the server after her LeaveChat: WrongChat.)
    assert_eq!(
        w.peers[b].take_events(),
        vec![
            ended("alice", ChatEnd::PeerClosed { undelivered: 2 }),
            ClientEvent::ServerError(ErrorCode::WrongChat),
            ClientEvent::ServerError(ErrorCode::WrongChat)
        ]
    );
    assert!(!w.peers[b].client.is_busy());
    assert!(w.session(b).unwrap().chat_peer().is_none());
    assert!(w.session(a).unwrap().chat_peer().is_none());
}

#[test]
fn a_server_that_truncates_a_chat_is_shown_as_such() {
    // The relay drops alice's last two texts and bob's close, then tells
    // alice that bob left. Alice cannot be told that all went well: bob
    // acknowledged only her first two.
    let (mut w, a, b) = mitm_chat();
    w.send_text(a, "one").unwrap();
    w.send_text(a, "two").unwrap();
    w.pump();
    w.send_text(b, "ok").unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.set_tap(FnTap(move |chan, idx, f: Vec<u8>| {
        // Alice's E2E frames 2 and 3 ("three", "four"); bob's frame 1 (his close).
        let dropped = (chan == Chan::E2eData(a) && (idx == 2 || idx == 3))
            || (chan == Chan::E2eData(b) && idx == 1);
        if dropped {
            vec![]
        } else {
            vec![f]
        }
    }));
    w.send_text(a, "three").unwrap();
    w.send_text(a, "four").unwrap();
    w.pump();
    assert_no_messages(&w, b);
    w.leave(b).unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ended("bob", ChatEnd::EndedByServer { unconfirmed: 2 })]
    );
    // Bob's own view: alice had acknowledged his text ("ok" came before
    // nothing of hers): he left, nothing is claimed for him.
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::Left)]
    );
}

#[test]
fn a_stray_chat_started_does_not_end_the_next_request() {
    // Alice's LeaveChat for chat 1 crosses the server's ChatStarted for it;
    // she answers the stray ChatStarted with LeaveChat{1}, which must not
    // withdraw her request to carol that is pending by then.
    let mut w = world();
    let a = w.login("alice");
    let b = w.login("bob");
    let c = w.login("carol");
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.answer(b, true).unwrap();
    // Bob's Accept reaches the server before alice's next frames.
    let now = w.now;
    let p = &mut w.peers[b];
    let mut link = p.link.take().unwrap();
    let mut buf = [0u8; 4096];
    let n = p.client.poll_request_transmit(&mut link, now, &mut buf);
    p.link = Some(link);
    w.deliver(Chan::ReqUp(b), buf[..n].to_vec());
    w.leave(a).unwrap();
    w.request_chat(a, "carol").unwrap();
    w.pump();
    assert!(
        w.peers[c].last_request().is_some(),
        "carol was asked: {:?}",
        w.peers[c].events
    );
    assert_eq!(w.session(a).unwrap().chat_peer(), None, "no chat with bob");
    w.answer(c, true).unwrap();
    w.pump();
    assert!(
        w.peers[a]
            .chat_ready()
            .is_some_and(|e| matches!(e, ClientEvent::ChatReady { peer, .. } if peer == "carol")),
        "alice: {:?}",
        w.peers[a].events
    );
    assert!(!w.peers[b].client.is_busy());
    w.send_text(a, "hi carol").unwrap();
    w.pump();
    assert_eq!(w.peers[c].received_texts(), ["hi carol"]);
}

#[test]
fn an_answer_names_the_request_the_user_saw() {
    let mut w = world();
    let a = w.login("alice");
    let b = w.login("bob");
    let c = w.login("carol");
    w.request_chat(a, "bob").unwrap();
    w.pump();
    let seen = w.peers[b].last_request().unwrap();
    // Alice withdraws; carol asks; bob's /accept was for alice's request.
    w.leave(a).unwrap();
    w.pump();
    w.request_chat(c, "bob").unwrap();
    w.pump();
    let current = w.peers[b].last_request().unwrap();
    assert_ne!(seen, current);
    assert_eq!(
        w.answer_id(b, seen, true),
        Err(proto(ProtocolError::WrongChat))
    );
    w.pump();
    assert!(w.peers[c].chat_ready().is_none(), "nothing was answered");
    assert!(
        w.peers[b].client.is_busy(),
        "carol's request is still asked"
    );
    w.answer_id(b, current, true).unwrap();
    w.pump();
    assert!(w.peers[c].chat_ready().is_some());
}

#[test]
fn chat_ids_are_random_not_a_count() {
    let mut w = world();
    let a = w.login("alice");
    let b = w.login("bob");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(w.open_chat(a, b));
        w.leave(a).unwrap();
        w.pump();
    }
    assert!(ids.iter().all(|&id| id != 0));
    assert!(
        ids.windows(2).all(|p| p[1] != p[0].wrapping_add(1)),
        "consecutive: {ids:?}"
    );
    assert!(ids.iter().any(|&id| id > 1_000_000), "small ids: {ids:?}");
}

// ====================================================================== property tests

mod props {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;
    use std::sync::OnceLock;

    type Transcript = BTreeMap<Chan, Vec<Vec<u8>>>;

    /// The recorded session: login of two users, a listing, a request, an
    /// accepted chat both ways (two messages in a row from alice), alice
    /// leaves; then ten minutes pass with keep-alives. Every command may fail
    /// after a mutation: the scenario goes on regardless.
    fn scenario<S: Server>(w: &mut World<S>) {
        let a = w.connect(ClientSpec::new("alice"));
        let b = w.connect(ClientSpec::new("bob"));
        w.pump();
        let _ = w.list_users(a);
        w.pump();
        let _ = w.request_chat(a, "bob");
        w.pump();
        let _ = w.answer(b, true);
        w.pump();
        let _ = w.send_text(a, "hello bob");
        let _ = w.send_text(a, "are you there?");
        w.pump();
        let _ = w.send_text(b, "yes, hi alice");
        w.pump();
        let _ = w.send_text(a, "bye");
        w.pump();
        let _ = w.leave(a);
        w.pump();
        w.advance_ms(600_000);
    }

    fn clean_hub() -> &'static Transcript {
        static T: OnceLock<Transcript> = OnceLock::new();
        T.get_or_init(|| {
            let mut w = world();
            scenario(&mut w);
            check_clean_run(&w);
            w.transcript
        })
    }

    fn clean_mitm() -> &'static Transcript {
        static T: OnceLock<Transcript> = OnceLock::new();
        T.get_or_init(|| {
            let mut w = World::mitm(Limits::DEFAULT);
            scenario(&mut w);
            check_clean_run(&w);
            w.transcript
        })
    }

    fn check_clean_run<S: Server>(w: &World<S>) {
        assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
        let (a, b) = (&w.peers[0], &w.peers[1]);
        assert_eq!(a.sent_texts, ["hello bob", "are you there?", "bye"]);
        assert_eq!(b.sent_texts, ["yes, hi alice"]);
        assert_eq!(b.received_texts(), a.sent_texts);
        assert_eq!(a.received_texts(), b.sent_texts);
        assert_eq!(a.chat_ends(), [ChatEnd::Left]);
        assert_eq!(b.chat_ends(), [ChatEnd::PeerClosed { undelivered: 0 }]);
        for p in &w.peers {
            assert!(p.client.is_logged_in() && !p.client.is_busy());
        }
    }

    #[test]
    fn recorded_transcript_is_deterministic_and_complete() {
        let mut w = world();
        scenario(&mut w);
        assert_eq!(&w.transcript, clean_hub());
        let chans: Vec<Chan> = clean_hub().keys().copied().collect();
        assert_eq!(
            chans,
            [0, 1]
                .iter()
                .flat_map(|&i| [
                    Chan::StdUp(i),
                    Chan::StdDown(i),
                    Chan::ReqDown(i),
                    Chan::ReqUp(i)
                ])
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        let e2e: Vec<Chan> = clean_mitm()
            .keys()
            .copied()
            .filter(|c| c.is_e2e())
            .collect();
        assert_eq!(
            e2e,
            [
                Chan::E2eHs(0),
                Chan::E2eHs(1),
                Chan::E2eData(0),
                Chan::E2eData(1)
            ]
        );
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1u8..=255).prop_map(|(pos, mask)| Mutation::Flip { pos, mask }),
            any::<usize>().prop_map(|len| Mutation::Truncate { len }),
            Just(Mutation::Duplicate),
            Just(Mutation::SwapWithNext),
        ]
    }

    /// Picks a frame of the recorded transcript among the channels `which` accepts.
    fn pick(t: &Transcript, which: fn(Chan) -> bool, c: Index, f: Index) -> (Chan, usize) {
        let chans: Vec<(&Chan, &Vec<Vec<u8>>)> = t.iter().filter(|(c, _)| which(**c)).collect();
        let (chan, frames) = chans[c.index(chans.len())];
        (*chan, f.index(frames.len()))
    }

    fn run_mutated<S: Server>(
        mut w: World<S>,
        clean: &Transcript,
        chan: Chan,
        index: usize,
        m: Mutation,
    ) -> Result<(), TestCaseError> {
        let tap = Rc::new(RefCell::new(MutationTap::new(chan, index, m)));
        w.set_tap(Shared(tap.clone()));
        scenario(&mut w);
        let t = tap.borrow();
        // The frame we changed is the recorded one (same run up to there).
        prop_assert_eq!(t.original.as_ref(), Some(&clean[&chan][index]));

        // Never a wrong chat message: what arrived is a prefix of what was sent.
        for (i, j) in [(0, 1), (1, 0)] {
            let got = w.peers[i].received_texts();
            let sent = &w.peers[j].sent_texts;
            prop_assert!(
                got.len() <= sent.len() && got[..] == sent[..got.len()],
                "{} got {:?}, {} sent {:?}",
                w.peers[i].name,
                got,
                w.peers[j].name,
                sent
            );
            for e in &w.peers[i].events {
                if let ClientEvent::ChatMessage { from, .. } = e {
                    prop_assert_eq!(from.as_str(), w.peers[j].name.as_str());
                }
            }
        }

        // The change was noticed: an error somewhere, or an E2E chat failed.
        let rejected = !w.all_errors().is_empty() || w.failed_chats() > 0;
        if t.applied {
            // A larger length in a frame header makes the receiver wait for
            // bytes that may never come: a stall, which only timeouts end.
            let lengthened = match m {
                Mutation::Flip { pos, mask } if !chan.is_e2e() => {
                    let orig = &clean[&chan][index];
                    let pos = pos % orig.len();
                    let mut h = [orig[0], orig[1]];
                    if pos < 2 {
                        h[pos] ^= mask;
                    }
                    u16::from_be_bytes(h) > u16::from_be_bytes([orig[0], orig[1]])
                }
                _ => false,
            };
            // A copy of the chat's last message, the leaver's end-to-end
            // `Close`, arrives after the chat ended: it is for no chat, and
            // there is nothing left to break (the close itself was counted).
            let after_close = matches!(m, Mutation::Duplicate)
                && chan.is_e2e()
                && index + 1 == clean[&chan].len()
                && w.peers
                    .iter()
                    .any(|p| p.chat_ends() == [ChatEnd::PeerClosed { undelivered: 0 }]);
            prop_assert!(
                rejected || lengthened || after_close,
                "{:?} on {:?}#{} went unnoticed; events {:?} / {:?}",
                m,
                chan,
                index,
                w.peers[0].events,
                w.peers[1].events
            );
        } else {
            // Only delayed (a swap without a next frame): nothing breaks.
            prop_assert!(
                !rejected,
                "a mere delay broke something: {:?}",
                w.all_errors()
            );
            prop_assert_eq!(w.peers[1].received_texts(), w.peers[0].sent_texts.clone());
        }

        // Everyone ends clean: closed, or not in a chat (nor waiting for one),
        // and the server holds no chat for a live session.
        for p in &w.peers {
            if !p.std_open || p.client.is_closed() {
                continue;
            }
            prop_assert!(
                !p.client.is_busy(),
                "{} is left busy; events {:?}",
                p.name,
                p.events
            );
            if let Some(s) = w.server.session(p.sid) {
                prop_assert!(s.chat_peer().is_none(), "server: {} still chatting", p.name);
            }
        }
        Ok(())
    }

    fn socket(c: Chan) -> bool {
        !c.is_e2e()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any change, truncation, duplication or swap of one frame on any
        /// socket channel (standard and request, both ways, both users).
        #[test]
        fn socket_frame_mutations_are_rejected(c in any::<Index>(), f in any::<Index>(), m in mutation()) {
            let clean = clean_hub();
            let (chan, index) = pick(clean, socket, c, f);
            run_mutated(world(), clean, chan, index, m)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// The same on the end-to-end layer: the server itself changes,
        /// truncates, replays or reorders a relayed KK or chat message.
        #[test]
        fn e2e_relay_mutations_end_the_chat(c in any::<Index>(), f in any::<Index>(), m in mutation()) {
            let clean = clean_mitm();
            let (chan, index) = pick(clean, Chan::is_e2e, c, f);
            run_mutated(World::mitm(Limits::DEFAULT), clean, chan, index, m)?;
        }
    }

    /// Duplication and swap of every frame of the request channels (hub) and
    /// of the E2E layer (MITM), exhaustively: these mutations have no
    /// parameter to sample. (The standard channels' many frames are sampled
    /// by `socket_frame_mutations_are_rejected`; a whole sweep there costs a
    /// minute of X25519 in a debug build.)
    #[test]
    fn every_request_and_e2e_frame_duplicated_or_swapped_is_rejected() {
        let mut runs = 0;
        for (clean, mitm) in [(clean_hub(), false), (clean_mitm(), true)] {
            for (chan, frames) in clean {
                let wanted = if mitm {
                    chan.is_e2e()
                } else {
                    matches!(chan, Chan::ReqDown(_) | Chan::ReqUp(_))
                };
                if !wanted {
                    continue;
                }
                for index in 0..frames.len() {
                    for m in [Mutation::Duplicate, Mutation::SwapWithNext] {
                        let r = if mitm {
                            run_mutated(World::mitm(Limits::DEFAULT), clean, *chan, index, m)
                        } else {
                            run_mutated(world(), clean, *chan, index, m)
                        };
                        if let Err(e) = r {
                            panic!("{m:?} of {chan:?}#{index}: {e}");
                        }
                        runs += 1;
                    }
                }
            }
        }
        assert!(runs >= 24, "{runs} runs");
    }
}

// ====================================================================== request channel behind NAT (issue 12)

mod behind_nat {
    use super::*;
    use securecom_core::noise::RequestTicket;
    use securecom_core::server::{DEFAULT_REQUEST_KEEPALIVE, REQUEST_IDLE_FACTOR};
    use securecom_core::RequestMode;

    fn connect(w: &mut W, name_: &str, mode: RequestMode, undialable: bool) -> usize {
        let i = w.connect(ClientSpec {
            request_mode: mode,
            undialable,
            ..ClientSpec::new(name_)
        });
        w.pump();
        i
    }

    fn reachable(e: &[ClientEvent]) -> Vec<bool> {
        e.iter()
            .filter_map(|e| match e {
                ClientEvent::DaemonStatus { reachable } => Some(*reachable),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_undialable_client_falls_back_to_dialling_and_is_asked() {
        let mut w = world();
        let a = w.login("alice");
        let b = connect(&mut w, "bob", RequestMode::Auto, true);
        let eb = w.peers[b].take_events();
        // The server's dial failed; bob dialled himself at once.
        assert_eq!(reachable(&eb), [false, true], "bob: {eb:?}");
        assert!(eb
            .iter()
            .any(|e| matches!(e, ClientEvent::ConnectRequestChannel(_))));
        assert_eq!(w.peers[b].dial_backs, 1);
        assert!(w.peers[b].client.dials_request_channel());
        assert!(w.session(b).unwrap().daemon_reachable());
        w.open_chat(a, b);
        w.send_text(a, "found you behind the NAT").unwrap();
        w.pump();
        assert_eq!(w.peers[b].received_texts(), ["found you behind the NAT"]);
        assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
    }

    #[test]
    fn dial_mode_never_announces_a_port() {
        let mut w = world();
        let b = connect(&mut w, "bob", RequestMode::Dial, false);
        assert_eq!(reachable(&w.peers[b].take_events()), [true]);
        assert_eq!(w.peers[b].dial_backs, 1);
        let a = w.login("alice");
        w.open_chat(a, b);
    }

    #[test]
    fn listen_mode_does_not_fall_back_but_retries_with_backoff() {
        let mut w = world();
        let b = connect(&mut w, "bob", RequestMode::Listen, true);
        assert_eq!(reachable(&w.peers[b].take_events()), [false]);
        // Announces again after 2, 4, 8, 16 s...: 4 more tries in 31 s.
        w.advance_ms(31_000);
        let tries = reachable(&w.peers[b].take_events());
        assert_eq!(tries, [false; 4], "announced again too often or never");
        assert_eq!(w.peers[b].dial_backs, 0);
        assert!(!w.peers[b].client.dials_request_channel());
    }

    #[test]
    fn a_ticket_opens_one_connection_of_its_own_session() {
        let mut w = world();
        let b = connect(&mut w, "bob", RequestMode::Dial, false);
        w.peers[b].take_events();
        assert!(w.peers[b].client.dials_request_channel());
        // A ticket nobody was given opens nothing.
        let forged = RequestTicket::from_bytes([7; 32]);
        let now = w.now;
        assert_eq!(
            w.server.request_channel_by_ticket(&forged, now, &mut w.rng),
            None
        );
        assert!(w.session(b).unwrap().daemon_reachable());
    }

    #[test]
    fn a_used_ticket_is_void() {
        let mut w = world();
        let b = w.connect(ClientSpec {
            request_mode: RequestMode::Dial,
            ..ClientSpec::new("bob")
        });
        // Pump until bob asks to connect, then keep a copy of his hello.
        w.pump();
        let hello = w.peers[b]
            .events
            .iter()
            .find_map(|e| match e {
                ClientEvent::ConnectRequestChannel(h) => Some(h.clone()),
                _ => None,
            })
            .expect("bob dialled");
        assert!(w.session(b).unwrap().daemon_reachable());
        let ticket = RequestTicket::from_hello_payload(&hello.0[2..]).unwrap();
        let now = w.now;
        assert_eq!(
            w.server.request_channel_by_ticket(&ticket, now, &mut w.rng),
            None,
            "a replayed hello opened a second channel"
        );
    }

    #[test]
    fn the_server_keeps_the_request_channel_alive() {
        let mut w = world();
        let b = w.login("bob");
        let before = w.transcript[&Chan::ReqDown(b)].len();
        // Ten minutes without a chat: a keep-alive every 25 s, each answered.
        w.advance_ms(600_000);
        let pings = w.transcript[&Chan::ReqDown(b)].len() - before;
        let every = DEFAULT_REQUEST_KEEPALIVE.as_millis();
        assert!(
            pings as u64 >= 600_000 / every - 1,
            "{pings} keep-alives in 10 minutes"
        );
        assert!(w.peers[b].take_events().is_empty(), "no re-announce needed");
        assert!(w.session(b).unwrap().daemon_reachable());
        assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
    }

    #[test]
    fn a_silently_broken_request_channel_is_reestablished() {
        // A NAT forgets the mapping: nothing arrives either way any more.
        let mut w = world();
        let a = w.login("alice");
        let b = w.login("bob");
        let broken = std::rc::Rc::new(std::cell::Cell::new(true));
        let flag = broken.clone();
        w.set_tap(FnTap(move |chan, _idx, f: Vec<u8>| {
            let req = matches!(chan, Chan::ReqDown(_) | Chan::ReqUp(_));
            if req && flag.get() {
                vec![]
            } else {
                vec![f]
            }
        }));
        let idle = DEFAULT_REQUEST_KEEPALIVE.as_millis() * REQUEST_IDLE_FACTOR;
        w.advance_ms(idle + 1_000);
        // The server noticed; bob's client announced again (and was dialled,
        // but nothing passes yet).
        let eb = w.peers[b].take_events();
        assert_eq!(reachable(&eb).first(), Some(&false), "bob: {eb:?}");
        // The network heals: within the backoff, bob is reachable again.
        broken.set(false);
        w.advance_ms(61_000);
        assert!(w.session(b).unwrap().daemon_reachable());
        assert_eq!(reachable(&w.peers[b].take_events()).last(), Some(&true));
        w.open_chat(a, b);
    }
}
