//! Re-keying in place (`docs/PROTOCOL.md` 4.10) over the real roles: the
//! standard channel, the request channel and the chat renew their keys by
//! time and by message count while texts go on; a re-key message changed,
//! dropped, duplicated or replayed ends that channel as any message does; a
//! peer that never answers a re-key, or never starts one, is closed.

mod common;

use common::*;
use securecom_core::client::ChatEnd;
use securecom_core::message::CloseReason;
use securecom_core::time::Duration;
use securecom_core::{ClientEvent, Error, Limits, ProtocolError};

type W = World<securecom_core::hub::Hub<8>>;

/// Wire lengths of the five re-key messages on a socket (2-byte header,
/// 2-byte re-key header, the message, the transport's tag).
const STEP_FRAMES: [usize; 5] = [
    2 + 2 + 48 + 16,
    2 + 2 + 48 + 16,
    2 + 2 + 1216 + 16,
    2 + 2 + 1120 + 16,
    2 + 2 + 16,
];

/// Which socket carries step `s` (1..=5) of client `i`'s standard channel.
fn std_chan(step: usize, i: usize) -> Chan {
    if step % 2 == 1 {
        Chan::StdUp(i)
    } else {
        Chan::StdDown(i)
    }
}

fn round(w: &mut W, a: usize, b: usize, n: usize) {
    w.send_text(a, &format!("a{n}")).expect("alice sends");
    w.pump();
    w.send_text(b, &format!("b{n}")).expect("bob sends");
    w.pump();
}

/// Every text each side sent arrived, in order, and nothing else happened.
fn assert_all_texts_arrived(w: &mut W, a: usize, b: usize) {
    for (me, peer) in [(a, b), (b, a)] {
        let sent = w.peers[peer].sent_texts.clone();
        assert!(!sent.is_empty());
        assert_eq!(w.peers[me].received_texts(), sent, "{}", w.peers[me].name);
        let others: Vec<ClientEvent> = w.peers[me]
            .take_events()
            .into_iter()
            .filter(|e| !matches!(e, ClientEvent::ChatMessage { .. }))
            .collect();
        assert_eq!(others, vec![], "{}'s other events", w.peers[me].name);
        assert!(w.peers[me].client.chat().is_some_and(|c| c.is_open()));
    }
    assert_eq!(w.all_errors(), vec![]);
}

#[test]
fn every_channel_rekeys_by_time_while_texts_go_on() {
    let mut w: W = World::hub(Limits::DEFAULT);
    let (a, b) = w.chatting();
    // 7 minutes, a text each way every 3 s: re-keys every 2 minutes.
    for n in 0..140 {
        w.advance_ms(3_000);
        round(&mut w, a, b, n);
    }
    assert_all_texts_arrived(&mut w, a, b);
    for i in [a, b] {
        let p = &w.peers[i];
        assert!(
            p.client.rekeys() >= 3,
            "{}: std {}",
            p.name,
            p.client.rekeys()
        );
        let link = p.link.as_ref().expect("daemon link");
        assert!(link.rekeys() >= 3, "{}: request {}", p.name, link.rekeys());
        let (std, req) = w.session(i).expect("session").rekeys();
        assert_eq!(std, p.client.rekeys(), "both ends agree");
        assert_eq!(req, link.rekeys());
    }
    let (ca, cb) = (
        w.peers[a].client.chat().unwrap().rekeys(),
        w.peers[b].client.chat().unwrap().rekeys(),
    );
    assert!(ca >= 3 && ca == cb, "chat re-keys {ca} / {cb}");

    // The re-keyed request channel still delivers requests, and a new chat
    // opens on the re-keyed standard channels.
    w.leave(a).unwrap();
    w.pump();
    w.peers[a].take_events();
    w.peers[b].take_events();
    w.advance_ms(31_000); // past the refusal cool-down of a left chat
    w.open_chat(b, a);
    w.send_text(b, "again").unwrap();
    w.pump();
    assert_eq!(
        w.peers[a].received_texts().last().map(String::as_str),
        Some("again")
    );
}

#[test]
fn keys_are_renewed_by_message_count() {
    let limits = Limits {
        rekey_after_messages: 8,
        ..Limits::DEFAULT
    };
    let mut w: W = World::hub(limits);
    let (a, b) = w.chatting();
    for n in 0..60 {
        round(&mut w, a, b, n);
        // Timers due "now" (the count was reached) fire.
        w.advance_ms(1);
    }
    assert_all_texts_arrived(&mut w, a, b);
    // 60 texts each way: the chat re-keyed every 8 or so, and the
    // standard channels (which carry them, and their acknowledgements).
    let chat = w.peers[a].client.chat().unwrap().rekeys();
    assert!(chat >= 6, "chat re-keys {chat}");
    for i in [a, b] {
        assert!(
            w.peers[i].client.rekeys() >= 6,
            "std re-keys {}",
            w.peers[i].client.rekeys()
        );
    }
}

/// Applies `mutation` to the first frame of step `step` of alice's
/// standard channel (recognised by its length: alice is alone and idle,
/// so only pings and pongs, of 19 bytes, travel besides).
fn std_rekey_with(step: usize, mutation: Mutation) -> (W, usize) {
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    let chan = std_chan(step, a);
    let len = STEP_FRAMES[step - 1];
    let mut done = false;
    w.set_tap(FnTap(move |c: Chan, _i: usize, frame: Vec<u8>| {
        if c != chan || frame.len() != len || done {
            return vec![frame];
        }
        done = true;
        match mutation {
            Mutation::Flip { pos, mask } => {
                let mut f = frame;
                let p = pos % f.len();
                f[p] ^= mask;
                vec![f]
            }
            Mutation::Drop => vec![],
            Mutation::Duplicate => vec![frame.clone(), frame],
            Mutation::Truncate { len } => {
                let mut f = frame[..2 + len].to_vec();
                f[..2].copy_from_slice(&(len as u16).to_be_bytes());
                vec![f]
            }
            Mutation::SwapWithNext => unreachable!(),
        }
    }));
    w.advance_ms(150_000);
    (w, a)
}

#[test]
fn a_changed_dropped_duplicated_or_cut_rekey_message_closes_the_standard_channel() {
    for step in 1..=5 {
        let mutations = [
            Mutation::Flip { pos: 2, mask: 1 },
            Mutation::Flip {
                pos: STEP_FRAMES[step - 1] - 1,
                mask: 0x80,
            },
            Mutation::Drop,
            Mutation::Duplicate,
            Mutation::Truncate {
                len: STEP_FRAMES[step - 1] - 3,
            },
        ];
        for m in mutations {
            let (w, a) = std_rekey_with(step, m);
            assert!(
                w.peers[a].client.is_closed() || !w.peers[a].std_open,
                "step {step}, {m:?}: the client's channel is closed"
            );
            assert!(
                w.session(a).is_none_or(|s| s.is_closed()),
                "step {step}, {m:?}: the server's session is closed"
            );
            assert_eq!(w.server.online(), 0, "step {step}, {m:?}");
        }
    }
}

#[test]
fn the_untouched_run_of_that_test_rekeys() {
    // The control for the test above: the same 150 s without a change.
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    w.advance_ms(150_000);
    assert!(!w.peers[a].client.is_closed());
    assert_eq!(w.peers[a].client.rekeys(), 1);
    assert_eq!(w.session(a).unwrap().rekeys(), (1, 1));
    assert_eq!(w.all_errors(), vec![]);
    // Every step's frame was seen with the length the test looks for.
    let frames = |c: Chan| -> Vec<usize> {
        w.transcript
            .get(&c)
            .map(|v| v.iter().map(Vec::len).collect())
            .unwrap_or_default()
    };
    for step in 1..=5 {
        assert!(
            frames(std_chan(step, a)).contains(&STEP_FRAMES[step - 1]),
            "step {step}"
        );
    }
}

#[test]
fn a_rekey_replayed_from_another_session_is_refused() {
    // alice's step 1, recorded, replayed into bob's session.
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    w.advance_ms(125_000);
    let step1 = w.transcript[&Chan::StdUp(a)]
        .iter()
        .find(|f| f.len() == STEP_FRAMES[0])
        .cloned()
        .expect("alice's step 1");
    w.deliver(Chan::StdUp(b), step1);
    w.pump();
    assert!(
        w.session(b).is_none_or(|s| s.is_closed()),
        "bob's session is closed"
    );
    assert!(!w.peers[a].client.is_closed(), "alice's goes on");
}

#[test]
fn a_server_that_never_answers_a_rekey_is_left_after_the_handshake_timeout() {
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    let mut silent = false;
    w.set_tap(FnTap(move |c: Chan, _i: usize, frame: Vec<u8>| {
        if c == Chan::StdUp(0) && frame.len() == STEP_FRAMES[0] {
            silent = true;
        }
        if silent && c == Chan::StdDown(0) {
            return vec![];
        }
        vec![frame]
    }));
    w.advance_ms(120_000 + 9_000);
    assert!(!w.peers[a].client.is_closed(), "within the timeout");
    w.advance_ms(2_000);
    assert!(w.peers[a].client.is_closed());
    assert!(w.all_errors().contains(&(
        Chan::StdDown(a),
        Error::Protocol(ProtocolError::RekeyTimeout)
    )));
}

#[test]
fn a_client_that_never_rekeys_is_closed_by_the_server() {
    let mut w: W = World::hub(Limits::DEFAULT);
    let lazy = Limits {
        rekey_after: Duration::from_secs(3600),
        ..Limits::DEFAULT
    };
    let a = w.login_with_limits("alice", lazy);
    // Pings keep it alive; its keys are overdue at 150 s.
    w.advance_ms(149_000);
    assert!(!w.peers[a].client.is_closed());
    w.advance_ms(2_000);
    assert!(w.peers[a].client.is_closed());
    assert_eq!(
        w.peers[a].closed_reason(),
        Some(CloseReason::ProtocolViolation)
    );
}

#[test]
fn a_chat_whose_peer_never_answers_a_rekey_ends_and_the_sessions_go_on() {
    let mut w: World<MitmServer> = World::mitm(Limits::DEFAULT);
    let a = w.login("alice");
    let b = w.login("bob");
    w.open_chat(a, b);
    w.peers[a].take_events();
    w.peers[b].take_events();
    // From alice's first chat re-key message on, nothing of bob's reaches her
    // end to end (the server drops his chat messages).
    let mut silent = false;
    w.set_tap(FnTap(move |c: Chan, _i: usize, frame: Vec<u8>| {
        if c == Chan::E2eData(0) && frame.len() == 2 + 48 + 16 {
            silent = true;
        }
        if silent && c == Chan::E2eData(1) {
            return vec![];
        }
        vec![frame]
    }));
    w.advance_ms(120_000 + 11_000);
    assert_eq!(
        w.peers[a].chat_ends(),
        vec![ChatEnd::Failed(Error::Protocol(
            ProtocolError::RekeyTimeout
        ))]
    );
    assert!(!w.peers[a].client.is_closed(), "alice's session goes on");
    assert!(!w.peers[b].client.is_closed(), "bob's too");
}

#[test]
fn a_chat_rekey_message_changed_ends_the_chat_not_the_session() {
    for step in 1..=5 {
        let mut w: World<MitmServer> = World::mitm(Limits::DEFAULT);
        let a = w.login("alice");
        let b = w.login("bob");
        w.open_chat(a, b);
        let e2e_len = STEP_FRAMES[step - 1] - 2;
        let (from, to) = if step % 2 == 1 { (a, b) } else { (b, a) };
        let mut done = false;
        w.set_tap(FnTap(move |c: Chan, _i: usize, mut frame: Vec<u8>| {
            if c == Chan::E2eData(from) && frame.len() == e2e_len && !done {
                done = true;
                let last = frame.len() - 1;
                frame[last] ^= 1;
            }
            vec![frame]
        }));
        w.advance_ms(125_000);
        assert!(
            matches!(w.peers[to].chat_ends().as_slice(), [ChatEnd::Failed(_)]),
            "step {step}: {:?}",
            w.peers[to].chat_ends()
        );
        assert!(!w.peers[a].client.is_closed(), "step {step}");
        assert!(!w.peers[b].client.is_closed(), "step {step}");
    }
}

#[test]
fn a_changed_request_channel_rekey_message_closes_that_link_only() {
    for step in 1..=5 {
        let mut w: W = World::hub(Limits::DEFAULT);
        let a = w.login("alice");
        let chan = if step % 2 == 1 {
            Chan::ReqDown(a)
        } else {
            Chan::ReqUp(a)
        };
        let len = STEP_FRAMES[step - 1];
        let mut done = false;
        w.set_tap(FnTap(move |c: Chan, _i: usize, mut frame: Vec<u8>| {
            if c == chan && frame.len() == len && !done {
                done = true;
                frame[3] ^= 0x10;
            }
            vec![frame]
        }));
        w.advance_ms(121_000);
        assert!(
            w.peers[a].link.as_ref().is_none_or(|l| l.is_closed()),
            "step {step}: the link is closed"
        );
        assert!(
            w.peers[a]
                .take_events()
                .contains(&ClientEvent::DaemonStatus { reachable: false }),
            "step {step}: alice is told"
        );
        assert!(
            !w.peers[a].client.is_closed(),
            "step {step}: the session goes on"
        );
        assert_eq!(w.server.online(), 1, "step {step}");
    }
}

#[test]
fn a_client_that_rekeys_too_fast_is_closed_rate_limited() {
    // The server's bound: 60 re-keys a minute, burst 10 (AbuseLimits).
    let mut w: W = World::hub(Limits::DEFAULT);
    let eager = Limits {
        rekey_after: Duration::from_millis(100),
        ..Limits::DEFAULT
    };
    let a = w.login_with_limits("alice", eager);
    let b = w.login("bob");
    // 12 re-keys in 1.2 s: the burst is spent at the 11th.
    w.advance_ms(1_500);
    assert!(w.peers[a].client.is_closed());
    assert_eq!(w.peers[a].closed_reason(), Some(CloseReason::RateLimited));
    assert!(
        w.peers[a].client.rekeys() >= 9,
        "{}",
        w.peers[a].client.rekeys()
    );
    // Nobody else is touched.
    assert!(!w.peers[b].client.is_closed());
    assert_eq!(w.server.online(), 1);
}

/// Holds the first frame of `len` bytes on `chan`, and every frame after
/// it on `chan` (in order, as TCP would), until `release` is set.
struct Hold {
    chan: Chan,
    len: usize,
    held: Vec<Vec<u8>>,
    holding: bool,
    release: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Tap for Hold {
    fn on_frame(&mut self, chan: Chan, _index: usize, frame: Vec<u8>) -> Vec<Vec<u8>> {
        if chan != self.chan {
            return vec![frame];
        }
        if !self.holding && frame.len() == self.len && self.held.is_empty() {
            self.holding = true;
        }
        if self.holding && !self.release.get() {
            self.held.push(frame);
            return vec![];
        }
        let mut out = std::mem::take(&mut self.held);
        out.push(frame);
        out
    }
    fn on_quiet(&mut self) -> Vec<(Chan, Vec<u8>)> {
        if self.release.get() {
            self.holding = false;
            let chan = self.chan;
            return self.held.drain(..).map(|f| (chan, f)).collect();
        }
        vec![]
    }
}

#[test]
fn a_logout_in_the_middle_of_a_rekey_is_confirmed() {
    // alice's step 4 from the server is held back until after she logged out:
    // her `Logout` (old keys) crosses the server's step 4, and the server's
    // `Bye` (new keys) must still reach her.
    let mut w: W = World::hub(Limits::DEFAULT);
    let a = w.login("alice");
    let release = std::rc::Rc::new(std::cell::Cell::new(false));
    w.set_tap(Hold {
        chan: Chan::StdDown(a),
        len: STEP_FRAMES[3],
        held: Vec::new(),
        holding: false,
        release: release.clone(),
    });
    w.advance_ms(120_500);
    assert_eq!(w.peers[a].client.rekeys(), 0, "step 4 is held");
    w.logout(a).expect("logout");
    w.pump();
    release.set(true);
    w.pump();
    assert_eq!(
        w.peers[a].take_events(),
        vec![ClientEvent::Closed(CloseReason::LoggedOut)]
    );
    assert_eq!(w.all_errors(), vec![]);
}
