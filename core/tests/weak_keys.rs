//! Degenerate keys: a peer that sends a low-order X25519 point as its
//! ephemeral or static key (or a server that hands one out as a chat peer's
//! key) is refused with `CryptoError::WeakKey`, in all three patterns.
//!
//! No one holds the private half of such a key, and every DH with it is all
//! zeros; so the attacker's messages are built with a Noise engine (clatter,
//! the core's own) whose DH returns zeros for a marked private key: exactly
//! what an attacker computes. The same messages with an honest key complete
//! the handshake, so each refusal is the key's, not a broken message's.

use clatter::bytearray::SensitiveByteArray;
use clatter::crypto::cipher::ChaChaPoly;
use clatter::crypto::dh::X25519;
use clatter::crypto::hash::Blake2s;
use clatter::error::DhResult;
use clatter::handshakepattern::{noise_kk, noise_nn_psk0, noise_xx, HandshakePattern};
use clatter::traits::{CryptoComponent, Dh, Handshaker, Rng};
use clatter::{KeyPair, NqHandshakeCore};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use securecom_core::message::user_name;
use securecom_core::noise::{
    Handshake, HandshakeParams, NoInternalRng, Pattern, Psk, RemoteCheck, REQUEST_PROLOGUE,
    STANDARD_PROLOGUE,
};
use securecom_core::{
    ChatEnd, Client, ClientConfig, ClientEvent, CryptoError, Error, Instant, Limits, PublicKey,
    Registry, ServerConfig, ServerSession, StaticSecret,
};

/// Every encoding of a small-order point: the seven u-coordinates
/// (0, 1, the two of order 8, p - 1, p, p + 1), each also with bit 255 set.
fn weak_keys() -> Vec<[u8; 32]> {
    let canonical = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    canonical
        .iter()
        .flat_map(|h| {
            let k: [u8; 32] = hex::decode(h).unwrap().try_into().unwrap();
            let mut high = k;
            high[31] |= 0x80;
            [k, high]
        })
        .collect()
}

/// The private key that stands for "a low-order public key": [`EvilDh`]
/// answers all zeros for it, as X25519 with a low-order point does.
const MARK: [u8; 32] = [0xa5; 32];

/// X25519, except that the marked private key gives all zeros.
#[derive(Clone)]
struct EvilDh;

impl CryptoComponent for EvilDh {
    fn name() -> &'static str {
        X25519::name()
    }
}

impl Dh for EvilDh {
    type PrivateKey = <X25519 as Dh>::PrivateKey;
    type PubKey = <X25519 as Dh>::PubKey;
    type Output = <X25519 as Dh>::Output;

    fn genkey_rng<R: Rng>(rng: &mut R) -> DhResult<KeyPair<Self::PubKey, Self::PrivateKey>> {
        X25519::genkey_rng(rng)
    }

    fn pubkey(k: &Self::PrivateKey) -> Self::PubKey {
        X25519::pubkey(k)
    }

    fn dh(k: &Self::PrivateKey, pk: &Self::PubKey) -> DhResult<Self::Output> {
        if **k == MARK {
            return Ok(SensitiveByteArray::new([0; 32]));
        }
        X25519::dh(k, pk)
    }
}

type Evil = NqHandshakeCore<EvilDh, ChaChaPoly, Blake2s, NoInternalRng>;
type Pair = KeyPair<[u8; 32], SensitiveByteArray<[u8; 32]>>;

fn secret(n: u8) -> StaticSecret {
    StaticSecret::from_bytes([n; 32])
}

fn pair_of(s: &StaticSecret) -> Pair {
    KeyPair {
        public: s.public_key().0,
        secret: SensitiveByteArray::new(s.to_bytes()),
    }
}

/// A key pair with the low-order public key `weak`.
fn weak_pair(weak: [u8; 32]) -> Pair {
    KeyPair {
        public: weak,
        secret: SensitiveByteArray::new(MARK),
    }
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

struct EvilParams<'a> {
    pattern: HandshakePattern,
    prologue: &'a [u8],
    initiator: bool,
    s: Option<Pair>,
    e: Pair,
    rs: Option<[u8; 32]>,
    psk: Option<[u8; 32]>,
}

fn evil(p: EvilParams<'_>) -> Evil {
    let mut e = Evil::new(
        p.pattern,
        p.prologue,
        p.initiator,
        p.s,
        Some(p.e),
        p.rs,
        None,
    )
    .unwrap();
    if let Some(psk) = p.psk {
        e.push_psk(&psk);
    }
    e
}

/// Runs the handshake between our side and the attacker's engine; the first
/// error of our side, or `Ok` once it is finished.
fn run(ours: &mut Handshake, theirs: &mut Evil) -> Result<(), CryptoError> {
    let mut wire = [0u8; 512];
    let mut payload = [0u8; 512];
    while !ours.is_finished() {
        if ours.is_write_turn() {
            let n = ours.write_message(&[], &mut wire)?;
            theirs.read_message(&wire[..n], &mut payload).unwrap();
        } else {
            let n = theirs.write_message(b"hello", &mut wire).unwrap();
            payload.fill(0);
            let got = ours.read_message(&wire[..n], &mut payload);
            if got.is_err() {
                // Nothing of the refused message's payload is left behind.
                assert!(payload.iter().all(|b| *b == 0));
            }
            assert_eq!(&payload[..got?], b"hello");
        }
    }
    Ok(())
}

/// `scenario(key pair of the attacker's key under test)` completes with an
/// honest key and fails with `WeakKey` for every low-order one.
#[track_caller]
fn refused_when_low_order(scenario: impl Fn(Pair) -> Result<(), CryptoError>) {
    assert_eq!(scenario(pair_of(&secret(99))), Ok(()), "honest key");
    for weak in weak_keys() {
        assert_eq!(
            scenario(weak_pair(weak)),
            Err(CryptoError::WeakKey),
            "{weak:02x?}"
        );
    }
}

// --------------------------------------------------------------- XX (standard)

#[test]
fn xx_server_refuses_a_low_order_client_ephemeral() {
    // Message 1 is only `e`: no DH yet, so only the key check can refuse it
    // (else the server would answer with `ee` all zeros).
    refused_when_low_order(|e| {
        let mut server = Handshake::standard(false, &secret(1), RemoteCheck::Any, &mut rng())?;
        let mut client = evil(EvilParams {
            pattern: noise_xx(),
            prologue: STANDARD_PROLOGUE,
            initiator: true,
            s: Some(pair_of(&secret(2))),
            e,
            rs: None,
            psk: None,
        });
        run(&mut server, &mut client)
    });
}

#[test]
fn xx_server_refuses_a_low_order_client_static() {
    // `securecom-server add-user weak 00…00` then a login as `weak` with no
    // private key: message 3 carries the low-order static key.
    refused_when_low_order(|s| {
        let mut server = Handshake::standard(false, &secret(1), RemoteCheck::Any, &mut rng())?;
        let mut client = evil(EvilParams {
            pattern: noise_xx(),
            prologue: STANDARD_PROLOGUE,
            initiator: true,
            s: Some(s),
            e: pair_of(&secret(3)),
            rs: None,
            psk: None,
        });
        run(&mut server, &mut client)
    });
}

#[test]
fn xx_client_refuses_a_low_order_server_ephemeral_or_static() {
    let server_key = secret(1);
    // A low-order ephemeral, with the pinned key or trusting any (a CA).
    for check in [
        RemoteCheck::Exactly(server_key.public_key()),
        RemoteCheck::Any,
    ] {
        refused_when_low_order(|e| {
            let mut client = Handshake::standard(true, &secret(2), check, &mut rng())?;
            let mut server = evil(EvilParams {
                pattern: noise_xx(),
                prologue: STANDARD_PROLOGUE,
                initiator: false,
                s: Some(pair_of(&server_key)),
                e,
                rs: None,
                psk: None,
            });
            run(&mut client, &mut server)
        });
    }
    // A low-order static (what a client that trusts a CA would see first).
    refused_when_low_order(|s| {
        let mut client = Handshake::standard(true, &secret(2), RemoteCheck::Any, &mut rng())?;
        let mut server = evil(EvilParams {
            pattern: noise_xx(),
            prologue: STANDARD_PROLOGUE,
            initiator: false,
            s: Some(s),
            e: pair_of(&secret(4)),
            rs: None,
            psk: None,
        });
        run(&mut client, &mut server)
    });
}

#[test]
fn a_low_order_pinned_key_is_refused_at_the_start() {
    for weak in weak_keys() {
        let r = Handshake::<securecom_core::RustCrypto>::standard(
            true,
            &secret(2),
            RemoteCheck::Exactly(PublicKey(weak)),
            &mut rng(),
        );
        assert_eq!(r.err(), Some(CryptoError::WeakKey));
        let config = ClientConfig {
            user: user_name("alice").unwrap(),
            server_key: PublicKey(weak),
            daemon_port: None,
            limits: Limits::DEFAULT,
        };
        let r =
            Client::<securecom_core::RustCrypto>::new(config, secret(2), Instant::ZERO, &mut rng());
        assert_eq!(r.err(), Some(Error::Crypto(CryptoError::WeakKey)));
    }
}

// ------------------------------------------------------------ NNpsk0 (request)

#[test]
fn nnpsk0_refuses_a_low_order_ephemeral_either_way() {
    let psk = [0x11; 32];
    // The daemon (responder) against a server that knows the PSK.
    refused_when_low_order(|e| {
        let mut daemon = Handshake::request_channel(false, &Psk::from_bytes(psk), &mut rng())?;
        let mut server = evil(EvilParams {
            pattern: noise_nn_psk0(),
            prologue: REQUEST_PROLOGUE,
            initiator: true,
            s: None,
            e,
            rs: None,
            psk: Some(psk),
        });
        run(&mut daemon, &mut server)
    });
    // The server (initiator) against a daemon that knows the PSK.
    refused_when_low_order(|e| {
        let mut server = Handshake::request_channel(true, &Psk::from_bytes(psk), &mut rng())?;
        let mut daemon = evil(EvilParams {
            pattern: noise_nn_psk0(),
            prologue: REQUEST_PROLOGUE,
            initiator: false,
            s: None,
            e,
            rs: None,
            psk: Some(psk),
        });
        run(&mut server, &mut daemon)
    });
}

// --------------------------------------------------------------------- KK (chat)

fn kk(initiator: bool, me: &StaticSecret, peer: PublicKey) -> Result<Handshake, CryptoError> {
    Handshake::new(
        HandshakeParams {
            pattern: Pattern::KK,
            initiator,
            prologue: b"secureCom/1/chat-test",
            local_static: Some(me),
            remote_static: Some(peer),
            psk: None,
            check: RemoteCheck::Any,
        },
        &mut rng(),
    )
}

#[test]
fn kk_refuses_a_low_order_ephemeral_either_way() {
    let (a, b) = (secret(5), secret(6));
    for we_initiate in [true, false] {
        refused_when_low_order(|e| {
            let mut ours = kk(we_initiate, &a, b.public_key())?;
            let mut theirs = evil(EvilParams {
                pattern: noise_kk(),
                prologue: b"secureCom/1/chat-test",
                initiator: !we_initiate,
                s: Some(pair_of(&b)),
                e,
                rs: Some(a.public_key().0),
                psk: None,
            });
            run(&mut ours, &mut theirs)
        });
    }
}

#[test]
fn kk_refuses_a_low_order_peer_static_given_in_advance() {
    for weak in weak_keys() {
        for initiator in [true, false] {
            assert_eq!(
                kk(initiator, &secret(5), PublicKey(weak)).err(),
                Some(CryptoError::WeakKey)
            );
        }
    }
}

// ------------------------------------- a chat peer key from a malicious server

struct OneUser(PublicKey);

impl Registry for OneUser {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        (user == "alice").then_some(self.0)
    }
}

/// Moves every queued byte between the client and its server session.
fn pump(client: &mut Client, server: &mut ServerSession, reg: &OneUser, rng: &mut ChaCha20Rng) {
    let mut buf = vec![0u8; 8192];
    loop {
        let up = client.poll_transmit(&mut buf);
        if up > 0 {
            let mut input = &buf[..up];
            while !input.is_empty() {
                let used = server.handle_input(Instant::ZERO, input, reg, rng).unwrap();
                input = &input[used..];
            }
        }
        let down = server.poll_transmit(&mut buf);
        if down > 0 {
            let mut input = &buf[..down];
            while !input.is_empty() {
                let used = client.handle_input(Instant::ZERO, input, rng).unwrap();
                input = &input[used..];
            }
        }
        if up == 0 && down == 0 {
            break;
        }
    }
}

#[test]
fn chat_started_with_a_low_order_peer_key_ends_only_the_chat() {
    let now = Instant::ZERO;
    let (alice, server_key) = (secret(7), secret(8));
    let reg = OneUser(alice.public_key());
    let mut rng = rng();
    for weak in weak_keys() {
        let config = ClientConfig {
            user: user_name("alice").unwrap(),
            server_key: server_key.public_key(),
            daemon_port: None,
            limits: Limits::DEFAULT,
        };
        let mut client = Client::new(config, alice.clone(), now, &mut rng).unwrap();
        let mut server =
            ServerSession::new(&ServerConfig::default(), &server_key, now, &mut rng).unwrap();
        pump(&mut client, &mut server, &reg, &mut rng);
        assert!(client.is_logged_in());
        while client.poll_event().is_some() {}

        // Alice asks for bob; the server "starts" the chat with a key no one holds.
        client.request_chat(now, "bob").unwrap();
        pump(&mut client, &mut server, &reg, &mut rng);
        server.chat_pending(now, 1, "bob").unwrap();
        assert!(server.chat_answered(now, 1, "bob", PublicKey(weak), Ok(())));
        pump(&mut client, &mut server, &reg, &mut rng);

        let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
        assert!(
            events.contains(&ClientEvent::ChatEnded {
                peer: user_name("bob").unwrap(),
                reason: ChatEnd::Failed(Error::Crypto(CryptoError::WeakKey)),
            }),
            "{events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, ClientEvent::ChatReady { .. })),
            "{events:?}"
        );
        // No chat, and the session goes on (the client left the chat).
        assert!(client.chat().is_none());
        assert!(client.is_logged_in());
        assert!(server.chat_peer().is_none());
    }
}
