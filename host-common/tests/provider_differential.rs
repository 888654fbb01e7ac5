//! Differential test of the two providers: the same seeded sessions, run
//! through the whole protocol (login with a server-dialled and a
//! client-dialled request channel, a listing, a chat with texts both ways
//! and an end-to-end close, a logout) once on RustCrypto and once on
//! aws-lc-rs, must put the same bytes on every channel, frame by frame, and
//! give every client the same events.
//!
//! Every RNG of the in-memory harness (`core/tests/common`) is seeded, so
//! the two runs draw the same ephemeral keys: any difference in a DH result,
//! a key derivation or a ciphertext shows as a differing frame.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::{Chan, ClientSpec, World};
use securecom_core::{ClientEvent, CryptoProvider, Hub, Limits, RequestMode, RustCrypto};
use securecom_host::crypto::AwsLc;

struct Run {
    transcript: BTreeMap<Chan, Vec<Vec<u8>>>,
    events: Vec<Vec<ClientEvent>>,
}

fn scenario<P: CryptoProvider>(dial: bool) -> Run {
    let mut w: World<Hub<8, P>> = World::hub(Limits::DEFAULT);
    let mode = if dial {
        RequestMode::Dial
    } else {
        RequestMode::Listen
    };
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let i = w.connect(ClientSpec {
            request_mode: mode,
            ..ClientSpec::new(name)
        });
        ids.push(i);
    }
    w.pump();
    let (a, b) = (ids[0], ids[1]);
    w.list_users(a).unwrap();
    w.pump();
    w.open_chat(a, b);
    for k in 0..20 {
        w.send_text(a, &format!("hello {k} from alice")).unwrap();
        w.pump();
        w.send_text(b, &format!("hello {k} from bob, {}", "x".repeat(k * 20)))
            .unwrap();
        w.pump();
    }
    w.leave(b).unwrap();
    w.pump();
    w.logout(a).unwrap();
    w.pump();
    assert!(w.all_errors().is_empty(), "{:?}", w.all_errors());
    assert_eq!(w.peers[a].received_texts().len(), 20);
    assert_eq!(w.peers[b].received_texts().len(), 20);
    Run {
        transcript: w.transcript,
        events: w.peers.iter().map(|p| p.events.clone()).collect(),
    }
}

fn compare(dial: bool) {
    let ours = scenario::<RustCrypto>(dial);
    let aws = scenario::<AwsLc>(dial);
    assert_eq!(
        ours.transcript.keys().collect::<Vec<_>>(),
        aws.transcript.keys().collect::<Vec<_>>(),
        "the same channels"
    );
    let mut frames = 0;
    let mut bytes = 0;
    for (chan, a) in &ours.transcript {
        let b = &aws.transcript[chan];
        assert_eq!(a.len(), b.len(), "{chan:?}: frame count");
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(x == y, "{chan:?} frame {k} differs between the providers");
            frames += 1;
            bytes += x.len();
        }
    }
    assert_eq!(ours.events, aws.events, "client events");
    assert!(frames > 100, "a real session: {frames} frames");
    println!(
        "{} vs {} ({}): {frames} frames, {bytes} bytes, identical",
        RustCrypto::NAME,
        AwsLc::NAME,
        if dial {
            "client-dialled"
        } else {
            "server-dialled"
        }
    );
}

#[test]
fn same_bytes_on_every_channel_server_dialled() {
    compare(false);
}

#[test]
fn same_bytes_on_every_channel_client_dialled() {
    compare(true);
}
