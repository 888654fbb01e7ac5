//! Every message decoder on arbitrary bytes, and every encoder on arbitrary
//! messages.
//!
//! Decode direction (the whole input, for each of the 7 types): when a
//! decode succeeds, the message re-encodes (its bounds hold), the encoding
//! is no longer than the input, and it decodes back to the same message.
//! Certificates and revocation lists (`securecom_core::cert`, decoded from
//! the whole input too): a certificate or list that verifies under the
//! harness's CA is exactly the one the CA signed (no forgery, no malleable
//! encoding), `verify` implies `verify_signature`, and a certificate that
//! verifies decodes to the same fields without the signature check.
//! Encode direction (the input read as an `AnyMsg`): when an encode
//! succeeds, the bytes decode back to the same message.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use securecom_core::message::{
    decode, encode, ChatPayload, ClientHello, ClientMsg, DaemonToServer, ServerHello, ServerMsg,
    ServerToDaemon,
};
use securecom_fuzz::arb::{AnyMsg, AnyRef};

macro_rules! roundtrip {
    ($t:ty, $bytes:expr) => {{
        let bytes: &[u8] = $bytes;
        if let Ok(msg) = decode::<$t>(bytes) {
            let mut out = vec![0u8; bytes.len() + 64];
            let n = encode(&msg, &mut out).expect("a decoded message must re-encode");
            assert!(n <= bytes.len(), "re-encoding is longer than the input");
            let again: $t = decode(&out[..n]).expect("a re-encoded message must decode");
            assert_eq!(again, msg);
        }
    }};
}

macro_rules! back {
    ($t:ty, $msg:expr) => {{
        let msg: &$t = $msg;
        let mut buf = [0u8; 4096];
        if let Ok(n) = encode(msg, &mut buf) {
            let again: $t = decode(&buf[..n]).expect("an encoded message must decode");
            assert_eq!(&again, msg);
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    roundtrip!(ServerHello, data);
    roundtrip!(ClientHello, data);
    roundtrip!(ClientMsg, data);
    roundtrip!(ServerMsg, data);
    roundtrip!(ServerToDaemon, data);
    roundtrip!(DaemonToServer, data);
    roundtrip!(ChatPayload, data);

    certificates(data);

    let mut u = Unstructured::new(data);
    let Ok(any) = AnyMsg::arbitrary(&mut u) else {
        return;
    };
    let m = any.msg();
    match m {
        AnyRef::ServerHello(m) => back!(ServerHello, &m),
        AnyRef::ClientHello(m) => back!(ClientHello, &m),
        AnyRef::Client(m) => back!(ClientMsg, &m),
        AnyRef::Server(m) => back!(ServerMsg, &m),
        AnyRef::ToDaemon(m) => back!(ServerToDaemon, &m),
        AnyRef::FromDaemon(m) => back!(DaemonToServer, &m),
        AnyRef::Chat(m) => back!(ChatPayload, &m),
    };
});

fn certificates(data: &[u8]) {
    use securecom_core::cert::{
        decode_certificate, verify, verify_revocation_list, verify_signature,
    };
    use securecom_fuzz::fixtures::{
        ca_key, ca_trust, revocation_list, server_cert, server_key, UNIX_NOW,
    };
    let decoded = decode_certificate(data);
    if let Ok(body) = verify_signature(data, &ca_key()) {
        assert_eq!(
            data,
            server_cert(),
            "a certificate the CA never signed verified"
        );
        assert_eq!(decoded, Ok(body));
    }
    for trust in [ca_trust(Some(UNIX_NOW), false), ca_trust(None, true)] {
        if let Ok(body) = verify(data, &trust, &server_key()) {
            assert!(trust.revoked.is_empty(), "a revoked certificate verified");
            assert_eq!(verify_signature(data, &ca_key()), Ok(body));
        }
    }
    if verify_revocation_list(data, &ca_key()).is_ok() {
        assert_eq!(
            data,
            revocation_list(),
            "a revocation list the CA never signed verified"
        );
    }
}
