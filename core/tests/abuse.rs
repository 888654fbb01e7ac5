//! The server session's abuse bounds, in memory with a seeded RNG and
//! simulated time (see `common/mod.rs`): per-session command rates
//! (`Error { SlowDown }`, then `Bye { RateLimited }`), the expiry of
//! unanswered chat requests (`ChatRefused { NoAnswer }` and `Cancel` to the
//! asked user's daemon), the cool-down after a refusal (`TooSoon`), and
//! `Bye { Revoked }`.

mod common;

use common::*;
use securecom_core::message::{CloseReason, ErrorCode, RefuseReason};
use securecom_core::{
    AbuseLimits, ChatEnd, ClientEvent, Duration, Error, Hub, Instant, Limits, ProtocolError, Rate,
};

type W = World<Hub<8>>;

/// Frames the server sends on a fresh login: XX message 2, the layer's
/// second message, `LoginOk`, `DaemonStatus`.
const LOGIN_FRAMES_DOWN: usize = 4;
/// Frames a client sends on a fresh login: XX messages 1 and 3, the layer's
/// first message, `AnnounceDaemon`.
const LOGIN_FRAMES_UP: usize = 4;

fn refused(user: &str, reason: RefuseReason) -> ClientEvent {
    ClientEvent::ChatRefused {
        user: name(user),
        reason,
    }
}

fn ended(peer: &str, reason: ChatEnd) -> ClientEvent {
    ClientEvent::ChatEnded {
        peer: name(peer),
        reason,
    }
}

fn users(names: &[&str]) -> ClientEvent {
    ClientEvent::Users {
        names: names.iter().map(|n| name(n)).collect(),
        more: false,
    }
}

const SLOW_DOWN: ClientEvent = ClientEvent::ServerError(ErrorCode::SlowDown);

/// How the server answers a `RequestChat` over the rate: `Error { SlowDown }`
/// or, so that the client knows which command was not performed,
/// `ChatRefused { TooSoon }` (both are "ask later"; the core may use either).
fn is_request_rate_refusal(e: &ClientEvent, user: &str) -> bool {
    *e == SLOW_DOWN || *e == refused(user, RefuseReason::TooSoon)
}

fn frames_down<S: Server>(w: &World<S>, i: usize) -> usize {
    w.transcript.get(&Chan::StdDown(i)).map_or(0, Vec::len)
}

/// One text each way in alice and bob's chat (alice, the requester, first:
/// bob may send once he has read a message).
fn chat_round<S: Server>(w: &mut World<S>, a: usize, b: usize, n: usize) {
    w.send_text(a, &format!("a{n}")).expect("alice sends");
    w.pump();
    w.send_text(b, &format!("b{n}")).expect("bob sends");
    w.pump();
}

/// alice and bob saw nothing but each other's texts, and their chat is on.
fn assert_chat_unaffected<S: Server>(w: &mut World<S>, a: usize, b: usize) {
    for (me, peer) in [(a, b), (b, a)] {
        let sent_by_peer = w.peers[peer].sent_texts.clone();
        let peer_name = w.peers[peer].name.clone();
        let events = w.peers[me].take_events();
        let expected: Vec<ClientEvent> = sent_by_peer
            .iter()
            .map(|t| ClientEvent::ChatMessage {
                from: name(&peer_name),
                text: text(t),
            })
            .collect();
        assert_eq!(events, expected, "{}'s events", w.peers[me].name);
        assert!(w.peers[me].client.chat().is_some_and(|c| c.is_open()));
        let s = w.session(me).expect("session");
        assert!(!s.is_closed());
        assert_eq!(
            s.chat_peer().map(|(p, _)| p.as_str()),
            Some(peer_name.as_str())
        );
    }
}

// ====================================================================== command rates

/// A client whose keep-alive is due every millisecond: the world's clock,
/// advanced 1 ms at a time, makes it send one `Ping` a step.
fn ping_flooder_limits() -> Limits {
    Limits {
        // keepalive_interval = idle_timeout / 3 = 1 ms; each `Pong` (or
        // `SlowDown`) keeps the client's own idle timer from firing.
        idle_timeout: Duration::from_millis(3),
        ..Limits::DEFAULT
    }
}

#[test]
fn ping_flood_is_slowed_down_then_closed_while_another_chat_goes_on() {
    let abuse = AbuseLimits::DEFAULT;
    let mut w: W = World::hub(Limits::DEFAULT);
    let (a, b) = w.chatting();
    let m = w.login_with_limits("mallory", ping_flooder_limits());
    assert_eq!(w.frames_up(m), LOGIN_FRAMES_UP);
    assert_eq!(frames_down(&w, m), LOGIN_FRAMES_DOWN);
    assert_eq!(w.server.online(), 3);

    let mut steps = 0;
    let mut refused = 0;
    while !w.peers[m].client.is_closed() {
        steps += 1;
        assert!(steps < 200, "the flood was never stopped");
        w.advance_ms(1);
        chat_round(&mut w, a, b, steps);
        if let Some(s) = w.session(m) {
            assert_eq!(s.close_reason(), None);
            refused = s.refusals().pings;
        }
    }
    // Every step sent one `Ping`: the burst is answered (`Pong`), every
    // further one costs a strike (`SlowDown`, no `Pong`), and the one after
    // the last strike closes the session.
    let burst = abuse.pings.burst as usize;
    let strikes = abuse.strike_rate.burst as usize;
    let pings = w.frames_up(m) - LOGIN_FRAMES_UP;
    assert_eq!(pings, burst + strikes + 1, "pings sent before the close");
    assert_eq!(steps, pings);
    assert_eq!(
        frames_down(&w, m) - LOGIN_FRAMES_DOWN,
        burst + strikes + 1,
        "{burst} Pong, {strikes} SlowDown, one Bye"
    );
    let mut expected = vec![SLOW_DOWN; strikes];
    expected.push(ClientEvent::Closed(CloseReason::RateLimited));
    assert_eq!(w.peers[m].take_events(), expected);
    // The session counted each refusal (what the operator's metrics read),
    // up to its last step before the close.
    assert_eq!(refused as usize, strikes);
    assert!(!w.peers[m].std_open, "the connection was dropped");
    assert!(w.peers[m].link.is_none(), "and the daemon's link");
    assert!(w.session(m).is_none());
    assert_eq!(w.server.online(), 2);

    // The other pair never noticed, and goes on.
    chat_round(&mut w, a, b, 1000);
    w.advance_ms(60_000);
    chat_round(&mut w, a, b, 1001);
    assert_chat_unaffected(&mut w, a, b);
    assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
}

#[test]
fn ping_under_the_rate_is_never_slowed_down() {
    // The reference client's keep-alive (25 s) is far below 60/min.
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    w.advance_ms(30 * 60_000);
    assert!(
        w.frames_up(a) - LOGIN_FRAMES_UP >= 60,
        "keep-alives were sent"
    );
    assert!(w.peers[a].take_events().is_empty());
    assert!(w.peers[a].client.is_logged_in());
}

#[test]
fn request_chat_flood_is_slowed_down_then_closed_while_another_chat_goes_on() {
    let abuse = AbuseLimits {
        requests: Rate::new(30, 4),
        strike_rate: Rate::new(6, 5),
        ..AbuseLimits::DEFAULT
    };
    let mut w: W = World::hub_with_abuse(Limits::DEFAULT, abuse);
    let (a, b) = w.chatting();
    let m = w.login("mallory");

    let mut requests = 0;
    let mut round = 0;
    while !w.peers[m].client.is_closed() {
        assert!(requests < 100, "the flood was never stopped");
        // A request answered `SlowDown` leaves the client waiting for an
        // answer: it withdraws the request before the next.
        if w.peers[m].client.is_busy() {
            w.leave(m).expect("withdraw");
        }
        w.request_chat(m, "nobody").expect("request");
        requests += 1;
        w.pump();
        round += 1;
        chat_round(&mut w, a, b, round);
    }
    let burst = abuse.requests.burst as usize;
    let strikes = abuse.strike_rate.burst as usize;
    assert_eq!(requests, burst + strikes + 1);
    // Requests within the rate are performed (the hub finds no "nobody");
    // the others are not: they are refused for the rate until the strikes
    // are spent. (`ChatEnded` events are the client's own, for its
    // withdrawals and for the request the `Bye` ended.)
    let events: Vec<ClientEvent> = w.peers[m]
        .take_events()
        .into_iter()
        .filter(|e| !matches!(e, ClientEvent::ChatEnded { peer, .. } if *peer == name("nobody")))
        .collect();
    assert_eq!(events.len(), burst + strikes + 1, "{events:?}");
    assert!(events[..burst]
        .iter()
        .all(|e| *e == refused("nobody", RefuseReason::UnknownUser)));
    assert!(
        events[burst..burst + strikes]
            .iter()
            .all(|e| is_request_rate_refusal(e, "nobody")),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&ClientEvent::Closed(CloseReason::RateLimited))
    );
    assert!(!w.peers[m].std_open);
    assert_eq!(w.server.online(), 2);

    chat_round(&mut w, a, b, 1000);
    assert_chat_unaffected(&mut w, a, b);
    assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
}

#[test]
fn request_chat_over_the_rate_is_not_delivered() {
    // A rate-limited request never reaches the asked user's daemon.
    let abuse = AbuseLimits {
        requests: Rate::new(30, 1),
        ..AbuseLimits::DEFAULT
    };
    let mut w: W = World::hub_with_abuse(Limits::DEFAULT, abuse);
    let a = w.login("alice");
    let b = w.login("bob");
    let c = w.login("carol");
    w.request_chat(a, "nobody").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![refused("nobody", RefuseReason::UnknownUser)]
    );
    w.request_chat(a, "bob").unwrap();
    w.pump();
    let events = w.peers[a].take_events();
    assert!(
        matches!(events.as_slice(), [e] if is_request_rate_refusal(e, "bob")),
        "{events:?}"
    );
    assert!(w.peers[b].take_events().is_empty(), "bob was not asked");
    assert!(w.session(a).unwrap().chat_peer().is_none());
    if w.peers[a].client.is_busy() {
        w.leave(a).unwrap();
        w.pump();
    }
    assert!(w.peers[b].take_events().is_empty());
    assert!(!w.peers[a].client.is_busy());
    // One token every 2 s.
    w.advance_ms(2_000);
    w.open_chat(a, c);
    assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
}

#[test]
fn list_users_over_the_rate_is_slowed_down() {
    let abuse = AbuseLimits {
        listings: Rate::new(30, 3),
        ..AbuseLimits::DEFAULT
    };
    let mut w: W = World::hub_with_abuse(Limits::DEFAULT, abuse);
    let a = w.login("alice");
    w.login("bob");
    for _ in 0..5 {
        w.list_users(a).unwrap();
        w.pump();
    }
    let both = users(&["alice", "bob"]);
    assert_eq!(
        w.peers[a].take_events(),
        vec![
            both.clone(),
            both.clone(),
            both.clone(),
            SLOW_DOWN,
            SLOW_DOWN
        ]
    );
    assert!(
        w.peers[a].client.is_logged_in(),
        "two strikes of 20: still on"
    );
    // A token comes back every 60 000 / 30 = 2 000 ms, not sooner.
    w.advance_ms(1_999);
    w.list_users(a).unwrap();
    w.pump();
    assert_eq!(w.peers[a].take_events(), vec![SLOW_DOWN]);
    w.advance_ms(1);
    w.list_users(a).unwrap();
    w.pump();
    w.list_users(a).unwrap();
    w.pump();
    assert_eq!(w.peers[a].take_events(), vec![both, SLOW_DOWN]);
    // Each `SlowDown` cost a strike of the 20 (6/min): four so far.
    let strikes_left = abuse.strike_rate.burst as usize - 4;
    for _ in 0..strikes_left {
        w.list_users(a).unwrap();
        w.pump();
    }
    assert!(w.peers[a].client.is_logged_in());
    w.list_users(a).unwrap();
    w.pump();
    let events = w.peers[a].take_events();
    assert_eq!(events.len(), strikes_left + 1);
    assert!(events[..strikes_left].iter().all(|e| *e == SLOW_DOWN));
    assert_eq!(
        events.last(),
        Some(&ClientEvent::Closed(CloseReason::RateLimited))
    );
    assert_eq!(w.server.online(), 1);
}

// ====================================================================== request expiry

#[test]
fn unanswered_request_expires_with_no_answer_and_is_withdrawn() {
    let timeout = AbuseLimits::DEFAULT.request_timeout;
    let cooldown = AbuseLimits::DEFAULT.refuse_cooldown;
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    let t0 = w.now;
    w.request_chat(a, "bob").unwrap();
    w.pump();
    let chat_id = match w.peers[a].take_events().as_slice() {
        [ClientEvent::ChatPending { chat_id, user }] if *user == name("bob") => *chat_id,
        other => panic!("alice: {other:?}"),
    };
    assert_eq!(w.peers[b].last_request(), Some(chat_id));
    w.peers[b].take_events();

    // The expiry is the session's next deadline at once: no `handle_timeout`
    // has run since the request.
    // (Only the request channels' keep-alives may come earlier.)
    let expiry = t0.add(timeout);
    let keepalive = securecom_core::server::DEFAULT_REQUEST_KEEPALIVE;
    assert!(keepalive.as_millis() < timeout.as_millis());
    assert!(w.session(a).unwrap().poll_timeout() <= Some(expiry));
    assert!(w.server.poll_timeout() <= Some(expiry));

    // Nothing happens before it (keep-alives run meanwhile).
    w.advance_to(Instant::from_millis(expiry.as_millis() - 1));
    assert!(w.peers[a].take_events().is_empty());
    assert!(w.peers[b].take_events().is_empty());
    assert!(w.peers[b].client.is_busy(), "bob is still asked");
    assert!(w.session(a).unwrap().poll_timeout() <= Some(expiry));

    w.advance_to(expiry);
    assert_eq!(
        w.peers[a].take_events(),
        vec![refused("bob", RefuseReason::NoAnswer)]
    );
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
    assert!(w.session(a).unwrap().poll_timeout() > Some(expiry));
    assert_eq!(
        w.answer(b, true),
        Err(Error::Protocol(ProtocolError::Unexpected))
    );
    // The daemon got `Cancel`: an answer now would reach no one anyway.
    assert!(w.peers[b].link.as_ref().is_some_and(|l| !l.is_closed()));

    // No answer counts as a refusal: not again before the cool-down.
    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![refused("bob", RefuseReason::TooSoon)]
    );
    assert!(w.peers[b].take_events().is_empty());
    w.advance_to(expiry.add(cooldown));
    w.open_chat(a, b);
    assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
}

#[test]
fn answered_request_does_not_expire() {
    let timeout = AbuseLimits::DEFAULT.request_timeout;
    let mut w: W = World::hub(Limits::DEFAULT);
    let (a, b) = w.chatting();
    w.advance_ms(2 * timeout.as_millis());
    chat_round(&mut w, a, b, 0);
    assert_chat_unaffected(&mut w, a, b);
}

// ====================================================================== cool-down

#[test]
fn request_after_decline_is_too_soon_until_the_cooldown_passed() {
    let cooldown = AbuseLimits::DEFAULT.refuse_cooldown;
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    let c = w.login("carol");
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.answer(b, false).unwrap();
    w.pump();
    let declined_at = w.now;
    let events = w.peers[a].take_events();
    assert_eq!(events.last(), Some(&refused("bob", RefuseReason::Declined)));
    w.peers[b].take_events();

    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![refused("bob", RefuseReason::TooSoon)]
    );
    assert!(w.peers[b].take_events().is_empty(), "bob is not bothered");
    assert!(!w.peers[b].client.is_busy());

    // Only bob is remembered: carol may be asked.
    w.request_chat(a, "carol").unwrap();
    w.pump();
    assert!(matches!(
        w.peers[a].take_events().as_slice(),
        [ClientEvent::ChatPending { user, .. }] if *user == name("carol")
    ));
    assert!(w.peers[c].last_request().is_some());
    w.leave(a).unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[c].take_events();

    // A `TooSoon` does not extend the cool-down; its last millisecond still counts.
    w.advance_to(Instant::from_millis(
        declined_at.add(cooldown).as_millis() - 1,
    ));
    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![refused("bob", RefuseReason::TooSoon)]
    );
    assert!(w.peers[b].take_events().is_empty());

    w.advance_to(declined_at.add(cooldown));
    w.open_chat(a, b);
    assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
}

#[test]
fn the_asked_user_is_not_held_to_a_cooldown() {
    // bob declined alice: bob may still ask alice at once.
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.answer(b, false).unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.open_chat(b, a);
}

// ====================================================================== revocation

#[test]
fn revoked_session_closes_with_bye_revoked_and_the_peer_gets_peer_left() {
    // `Hub` has no revocation entry point (the tokio server calls
    // `ServerSession::revoked` when the registry changes): the router of
    // `MitmServer`, built on the public session API, drives it directly.
    let mut w = World::mitm(Limits::DEFAULT);
    let (a, b) = w.chatting();
    w.revoke(a);
    assert_eq!(
        w.peers[a].take_events(),
        vec![
            ended("bob", ChatEnd::EndedByServer { unconfirmed: 0 }),
            ClientEvent::Closed(CloseReason::Revoked)
        ]
    );
    assert!(w.peers[a].client.is_closed());
    assert!(!w.peers[a].std_open);
    assert!(w.peers[a].link.is_none(), "the daemon's link closed too");
    assert_eq!(
        w.peers[b].take_events(),
        vec![ended("alice", ChatEnd::EndedByServer { unconfirmed: 0 })]
    );
    assert!(w.session(b).unwrap().chat_peer().is_none());
    assert!(!w.peers[b].client.is_busy());
    assert_eq!(w.server.online(), 1);
    w.list_users(b).unwrap();
    w.pump();
    assert_eq!(w.peers[b].take_events(), vec![users(&["bob"])]);
    assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
}

#[test]
fn revoked_requester_withdraws_its_request() {
    let mut w = World::mitm(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    w.request_chat(a, "bob").unwrap();
    w.pump();
    assert!(w.peers[b].last_request().is_some());
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.revoke(a);
    assert_eq!(
        w.peers[a].take_events(),
        vec![
            ended("bob", ChatEnd::PeerLeft),
            ClientEvent::Closed(CloseReason::Revoked)
        ]
    );
    assert_eq!(
        w.peers[b].take_events(),
        vec![ClientEvent::RequestWithdrawn {
            from: name("alice")
        }]
    );
    assert!(!w.peers[b].client.is_busy());
    assert_eq!(
        w.server.poll_timeout(),
        w.session(b).unwrap().poll_timeout()
    );
}

#[test]
fn revoked_asked_user_refuses_the_pending_request() {
    let mut w = World::mitm(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    w.request_chat(a, "bob").unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.revoke(b);
    assert_eq!(
        w.peers[b].closed_reason(),
        Some(CloseReason::Revoked),
        "{:?}",
        w.peers[b].events
    );
    assert_eq!(
        w.peers[a].take_events(),
        vec![refused("bob", RefuseReason::Offline)]
    );
    assert!(!w.peers[a].client.is_busy());
}

/// What a session says of how it ended, for the operator's metrics: the
/// reason of the `Bye` it closed with (the first one), none while open.
#[test]
fn a_session_tells_the_reason_it_closed_with() {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let key = securecom_core::StaticSecret::from_bytes([9; 32]);
    let now = securecom_core::Instant::from_millis(1);
    for reason in [
        CloseReason::RateLimited,
        CloseReason::Revoked,
        CloseReason::Replaced,
        CloseReason::Shutdown,
    ] {
        let mut s: securecom_core::ServerSession =
            securecom_core::ServerSession::new(&Default::default(), &key, now, &mut rng).unwrap();
        assert_eq!(s.close_reason(), None);
        assert_eq!(s.refusals(), Default::default());
        match reason {
            CloseReason::RateLimited => s.rate_limited(now),
            CloseReason::Revoked => s.revoked(now),
            CloseReason::Replaced => s.replaced(now),
            _ => s.shutdown(now),
        }
        assert_eq!(s.close_reason(), Some(reason));
        // A later close changes nothing.
        s.shutdown(now);
        assert_eq!(s.close_reason(), Some(reason));
        s.disconnected();
        assert_eq!(s.close_reason(), Some(reason));
    }
    // Closed without a `Bye`: no reason.
    let mut s: securecom_core::ServerSession =
        securecom_core::ServerSession::new(&Default::default(), &key, now, &mut rng).unwrap();
    s.disconnected();
    assert_eq!(s.close_reason(), None);
}

/// A user's rate state as one node hands it to another (a cluster): its
/// debts read at the first node's time continue at the second's, and a
/// merge keeps each bucket the emptier of the two, so that moving refills
/// nothing.
#[test]
fn rate_state_moves_between_nodes_without_refilling() {
    use securecom_core::{Instant, RateState};
    let (here, there) = (Instant::from_millis(1_000), Instant::from_millis(50));
    let drained = RateState::from_debts([5_000, 0, 60_000, 0, 0, 0, 10_000], here);
    // Time refills every bucket, at its own rate of 1 ms of debt a ms.
    assert_eq!(
        drained.debts(Instant::from_millis(3_000)),
        [3_000, 0, 58_000, 0, 0, 0, 8_000]
    );
    // Handed over: the other node's clock reads something else entirely.
    let moved = RateState::from_debts(drained.debts(here), there);
    assert_eq!(moved.debts(there), drained.debts(here));
    assert_eq!(
        moved.debts(Instant::from_millis(1_050)),
        [4_000, 0, 59_000, 0, 0, 0, 9_000]
    );
    // Merged into a fresh session there: the fresh buckets take the debts,
    // and a session that spent more keeps its own.
    let fresh = RateState::default();
    assert_eq!(fresh.merged(&moved, there).debts(there), moved.debts(there));
    let busier = RateState::from_debts([9_000, 1, 1, 1, 1, 1, 1], there);
    assert_eq!(
        busier.merged(&moved, there).debts(there),
        [9_000, 1, 60_000, 1, 1, 1, 10_000]
    );
}
