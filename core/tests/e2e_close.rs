//! The end-to-end close and its counts (`docs/PROTOCOL.md` 6.6 and 8.4): what one
//! side's `Close` and acknowledgements say, and what happens to counts that
//! cannot be true. The peer that lies here is a raw Noise KK transport with
//! the chat's prologue: what a modified client (not the server, which has no
//! key) could send.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use securecom_core::chat::{ChatText, E2eChat, Received};
use securecom_core::message::{encode, user_name, ChatPayload};
use securecom_core::noise::{
    chat_prologue, Handshake, HandshakeParams, NoInternalRng, Pattern, RemoteCheck, Transport,
    MAX_CHAT_PROLOGUE,
};
use securecom_core::pq::PqLayer;
use securecom_core::{Error, Instant, Limits, ProtocolError, StaticSecret, MAX_E2E_MESSAGE};

const ID: u32 = 0x5eed_0001;

fn key(b: u8) -> StaticSecret {
    StaticSecret::from_bytes([b; 32])
}

fn t0() -> Instant {
    Instant::from_millis(1_000)
}

/// Alice (key 1, the requester: KK initiator) in chat `ID` with bob (key 2).
fn alice(rng: &mut ChaCha20Rng) -> E2eChat {
    E2eChat::new(
        ID,
        &key(1),
        "alice",
        user_name("bob").unwrap(),
        key(2).public_key(),
        true,
        Limits::DEFAULT,
        t0(),
        rng,
    )
    .unwrap()
}

/// Alice (requester, KK initiator) and Bob, both `E2eChat`s, open.
fn honest_pair() -> (E2eChat, E2eChat) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (ak, bk) = (key(1), key(2));
    let mut a = alice(&mut rng);
    let mut b = E2eChat::new(
        ID,
        &bk,
        "bob",
        user_name("alice").unwrap(),
        ak.public_key(),
        false,
        Limits::DEFAULT,
        t0(),
        &mut rng,
    )
    .unwrap();
    // KK, then the post-quantum layer: four messages in turn.
    let mut buf = [0u8; MAX_E2E_MESSAGE];
    for k in 0..4 {
        let (w, r) = if k % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let n = w.write_handshake(t0(), &mut buf).unwrap().unwrap();
        r.read_handshake(t0(), &mut buf[..n]).unwrap();
    }
    assert!(a.is_open() && b.is_open());
    (a, b)
}

/// Alice as an `E2eChat` and Bob as a raw KK transport (he can send any payload).
fn pair_with_raw_bob() -> (E2eChat, Transport) {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (ak, bk) = (key(1), key(2));
    let mut a = alice(&mut rng);
    let mut pbuf = [0u8; MAX_CHAT_PROLOGUE];
    let prologue = chat_prologue(
        ID,
        (&ak.public_key(), "alice"),
        (&bk.public_key(), "bob"),
        &mut pbuf,
    );
    let mut b = Handshake::new(
        HandshakeParams {
            pattern: Pattern::KK,
            initiator: false,
            prologue,
            local_static: Some(&bk),
            remote_static: Some(ak.public_key()),
            psk: None,
            check: RemoteCheck::Exactly(ak.public_key()),
        },
        &mut rng,
    )
    .unwrap();
    let mut buf = [0u8; MAX_E2E_MESSAGE];
    let mut pl = [0u8; 256];
    let n = a.write_handshake(t0(), &mut buf).unwrap().unwrap();
    b.read_message(&buf[..n], &mut pl).unwrap();
    let n = b.write_message(&[], &mut buf).unwrap();
    a.read_handshake(t0(), &mut buf[..n]).unwrap();
    // Bob's side of the post-quantum layer, by hand.
    let mut kk = b.into_transport(&Limits::DEFAULT, t0()).unwrap();
    let mut layer = PqLayer::new(false, &kk, &mut rng).unwrap();
    let n = a.write_handshake(t0(), &mut buf).unwrap().unwrap();
    assert_eq!(
        layer.read_message(&mut buf[..n], &mut kk, &mut pl).unwrap(),
        0
    );
    let n = layer.write_message(&[], &mut kk, &mut buf).unwrap();
    a.read_handshake(t0(), &mut buf[..n]).unwrap();
    assert!(a.is_open());
    (a, layer.into_transport(kk, &Limits::DEFAULT, t0()).unwrap())
}

fn send(from: &mut E2eChat, to: &mut E2eChat, text: &str) -> Result<Received, Error> {
    let mut buf = [0u8; 600];
    let n = from.encrypt_text(text, &mut buf).unwrap();
    let mut got = ChatText::new();
    let r = to.decrypt(Instant::ZERO, &buf[..n], &mut got, &mut NoInternalRng);
    if r == Ok(Received::Text) {
        assert_eq!(got.as_str(), text);
    }
    r
}

fn raw(bob: &mut Transport, payload: &ChatPayload<'_>) -> Vec<u8> {
    let mut plain = [0u8; 600];
    let n = encode(payload, &mut plain).unwrap();
    let mut out = [0u8; 700];
    let m = bob.encrypt(&plain[..n], &mut out).unwrap();
    out[..m].to_vec()
}

fn close(from: &mut E2eChat) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = from.encrypt_close(&mut buf).unwrap().expect("open chat");
    buf[..n].to_vec()
}

#[test]
fn acknowledgements_count_what_the_peer_received() {
    let (mut a, mut b) = honest_pair();
    for t in ["one", "two", "three"] {
        assert_eq!(send(&mut a, &mut b, t), Ok(Received::Text));
    }
    assert_eq!(a.unconfirmed(), 3, "bob has not answered yet");
    assert_eq!(send(&mut b, &mut a, "got them"), Ok(Received::Text));
    assert_eq!(a.unconfirmed(), 0);
    assert_eq!(b.unconfirmed(), 1);
    assert_eq!((a.counts(), b.counts()), ((3, 1), (1, 3)));
}

#[test]
fn a_close_tells_how_many_of_our_texts_never_arrived() {
    let (mut a, mut b) = honest_pair();
    assert_eq!(send(&mut a, &mut b, "hi"), Ok(Received::Text));
    // Alice sends two that bob never reads before he leaves.
    let mut lost = [0u8; 600];
    a.encrypt_text("lost 1", &mut lost).unwrap();
    a.encrypt_text("lost 2", &mut lost).unwrap();
    let c = close(&mut b);
    assert!(!b.is_open(), "our close ends the chat for us");
    let mut t = ChatText::new();
    assert_eq!(
        a.decrypt(Instant::ZERO, &c, &mut t, &mut NoInternalRng),
        Ok(Received::Closed { undelivered: 2 })
    );
    assert!(!a.is_open(), "the peer's close ends the chat");
    assert!(
        a.decrypt(Instant::ZERO, &c, &mut t, &mut NoInternalRng)
            .is_err(),
        "nothing after a close"
    );
}

#[test]
fn a_clean_close_says_everything_arrived() {
    let (mut a, mut b) = honest_pair();
    assert_eq!(send(&mut a, &mut b, "hi"), Ok(Received::Text));
    assert_eq!(send(&mut b, &mut a, "hello"), Ok(Received::Text));
    let c = close(&mut a);
    let mut t = ChatText::new();
    assert_eq!(
        b.decrypt(Instant::ZERO, &c, &mut t, &mut NoInternalRng),
        Ok(Received::Closed { undelivered: 0 })
    );
}

#[test]
fn no_close_before_the_chat_is_open() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut a = alice(&mut rng);
    let mut buf = [0u8; 64];
    assert_eq!(a.encrypt_close(&mut buf), Ok(None));
}

fn unexpected() -> Result<Received, Error> {
    Err(ProtocolError::Unexpected.into())
}

#[test]
fn an_acknowledgement_of_more_than_was_sent_ends_the_chat() {
    let (mut a, mut bob) = pair_with_raw_bob();
    let mut out = [0u8; 600];
    a.encrypt_text("hello", &mut out).unwrap();
    let lie = raw(
        &mut bob,
        &ChatPayload::Text {
            received: 5,
            text: "I got all 5",
        },
    );
    let mut t = ChatText::new();
    assert_eq!(
        a.decrypt(Instant::ZERO, &lie, &mut t, &mut NoInternalRng),
        unexpected()
    );
    assert!(t.is_empty(), "no text from a refused message");
    assert!(!a.is_open());
}

#[test]
fn an_acknowledgement_that_goes_back_ends_the_chat() {
    let (mut a, mut bob) = pair_with_raw_bob();
    let mut out = [0u8; 600];
    a.encrypt_text("one", &mut out).unwrap();
    a.encrypt_text("two", &mut out).unwrap();
    let mut t = ChatText::new();
    let ok = raw(
        &mut bob,
        &ChatPayload::Text {
            received: 2,
            text: "both",
        },
    );
    assert_eq!(
        a.decrypt(Instant::ZERO, &ok, &mut t, &mut NoInternalRng),
        Ok(Received::Text)
    );
    let back = raw(
        &mut bob,
        &ChatPayload::Text {
            received: 1,
            text: "only one?",
        },
    );
    assert_eq!(
        a.decrypt(Instant::ZERO, &back, &mut t, &mut NoInternalRng),
        unexpected()
    );
}

#[test]
fn a_close_whose_counts_cannot_be_true_ends_the_chat_as_failed() {
    // Bob claims to have sent 3 texts, but alice's transport accepted none
    // before the close: a text cannot go missing inside the KK transport.
    let (mut a, mut bob) = pair_with_raw_bob();
    let lie = raw(
        &mut bob,
        &ChatPayload::Close {
            sent: 3,
            received: 0,
        },
    );
    let mut t = ChatText::new();
    assert_eq!(
        a.decrypt(Instant::ZERO, &lie, &mut t, &mut NoInternalRng),
        unexpected()
    );
    // Nor more received than alice sent.
    let (mut a, mut bob) = pair_with_raw_bob();
    let lie = raw(
        &mut bob,
        &ChatPayload::Close {
            sent: 0,
            received: 1,
        },
    );
    assert_eq!(
        a.decrypt(Instant::ZERO, &lie, &mut t, &mut NoInternalRng),
        unexpected()
    );
}

/// Opening in place (how the client opens a relayed message where it
/// arrived) gives what `decrypt` gives, the text where `open_in_place` says
/// it is, and leaves no plaintext behind: the rest of the buffer, or all of
/// it, wiped.
#[test]
fn opened_in_place_as_decrypted() {
    let (mut a, mut b) = honest_pair();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut wire = [0u8; MAX_E2E_MESSAGE];
    let mut text = ChatText::new();
    for (k, line) in ["hello bob", "", "ünïcödé ✓"].into_iter().enumerate() {
        let n = a.encrypt_text(line, &mut wire).unwrap();
        let mut copy = wire;
        match k {
            0 => {
                assert_eq!(
                    b.decrypt_in_place(t0(), &mut copy[..n], &mut text, &mut rng)
                        .unwrap(),
                    Received::Text
                );
                assert_eq!(text.as_str(), line);
                assert!(copy[..n].iter().all(|&x| x == 0));
            }
            _ => {
                let (r, range) = b.open_in_place(t0(), &mut copy[..n], &mut rng).unwrap();
                assert_eq!(r, Received::Text);
                assert_eq!(&copy[range.clone()], line.as_bytes());
                assert!(copy[..range.start].iter().all(|&x| x == 0));
                assert!(copy[range.end..n].iter().all(|&x| x == 0));
            }
        }
    }
    // One byte more than an E2E message may be: refused, and the chat is dead.
    let mut big = [0u8; MAX_E2E_MESSAGE + 17];
    assert!(b
        .decrypt_in_place(t0(), &mut big, &mut text, &mut rng)
        .is_err());
    let n = a.encrypt_text("after", &mut wire).unwrap();
    assert!(matches!(
        b.decrypt(t0(), &wire[..n], &mut text, &mut rng),
        Err(Error::Protocol(ProtocolError::Unexpected))
    ));
}
