//! Server certificates: the encoding (pinned bytes), and the client's check
//! of the certificate in a real XX handshake with a real `ServerSession`,
//! one test per reason to refuse it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use securecom_core::cert::{
    self, ca_public_key, sign_certificate, sign_revocation_list, verify_revocation_list,
    CaPublicKey, CaTrust, CertError, CertificateBody, RevocationBody, RevokedSerials, CERT_VERSION,
    MAX_CERTIFICATE, MAX_REVOCATION_LIST,
};
use securecom_core::keys::{PublicKey, StaticSecret};
use securecom_core::limits::Limits;
use securecom_core::message::{decode, encode, ServerHello};
use securecom_core::time::Instant;
use securecom_core::{
    Client, ClientConfig, ClientEvent, Error, Registry, ServerConfig, ServerEvent, ServerSession,
};

const CA_SEED: [u8; 32] = [0x11; 32];
const NOW: u64 = 1_750_000_000;
const NAME: &str = "chat.example.org";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seq(start: u8) -> [u8; 32] {
    core::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn server() -> StaticSecret {
    StaticSecret::from_bytes(seq(0))
}

fn alice() -> StaticSecret {
    StaticSecret::from_bytes(seq(0x40))
}

fn body(key: PublicKey) -> CertificateBody<'static> {
    CertificateBody {
        version: CERT_VERSION,
        server_name: NAME,
        static_key: key,
        serial: 1,
        not_before: NOW - 86_400,
        not_after: NOW + 86_400,
    }
}

fn sign(b: &CertificateBody<'_>, seed: &[u8; 32]) -> Vec<u8> {
    let mut out = [0u8; MAX_CERTIFICATE];
    let n = sign_certificate(seed, b, &mut out).unwrap();
    out[..n].to_vec()
}

fn trust() -> CaTrust {
    CaTrust {
        ca_key: ca_public_key(&CA_SEED),
        server_name: NAME.try_into().unwrap(),
        now: Some(NOW),
        revoked: RevokedSerials::new(),
    }
}

struct OneUser;
impl Registry for OneUser {
    fn lookup(&self, user: &str) -> Option<PublicKey> {
        (user == "alice").then(|| alice().public_key())
    }
}

/// Runs the XX login between a CA-mode client and a server that sends
/// `certificate`; returns the client's result after reading message 2, and
/// the client when that went on to a login.
fn login(certificate: Option<&[u8]>, trust: CaTrust) -> Result<Client, Error> {
    let now = Instant::ZERO;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let config = ClientConfig {
        user: "alice".try_into().unwrap(),
        // Not used in CA mode: a wrong pinned key must not matter.
        server_key: PublicKey([0; 32]),
        daemon_port: None,
        limits: Limits::DEFAULT,
    };
    let mut client = Client::with_ca(config, trust, alice(), now, &mut rng).unwrap();
    let mut session = ServerSession::<securecom_core::RustCrypto>::new(
        &ServerConfig::new(Limits::DEFAULT),
        &server(),
        now,
        &mut rng,
    )
    .unwrap();
    if let Some(c) = certificate {
        session.set_certificate(c).unwrap();
    }
    let mut buf = [0u8; 4096];
    let n = client.poll_transmit(&mut buf);
    assert_eq!(
        session.handle_input(now, &buf[..n], &OneUser, &mut rng),
        Ok(n)
    );
    let n = session.poll_transmit(&mut buf);
    client.handle_input(now, &buf[..n], &mut rng)?;
    // Accepted: the client sends message 3 and the layer's first message,
    // and the server logs it in.
    let n = client.poll_transmit(&mut buf);
    assert!(n > 0);
    let mut at = 0;
    while at < n {
        at += session
            .handle_input(now, &buf[at..n], &OneUser, &mut rng)
            .unwrap();
    }
    assert!(matches!(
        session.poll_event(),
        Some(ServerEvent::LoggedIn { .. })
    ));
    let n = session.poll_transmit(&mut buf);
    let mut at = 0;
    while at < n {
        at += client.handle_input(now, &buf[at..n], &mut rng)?;
    }
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::LoggedIn { .. })
    ));
    Ok(client)
}

#[track_caller]
fn refused(certificate: Option<&[u8]>, trust: CaTrust, why: CertError) {
    match login(certificate, trust) {
        Err(e) => assert_eq!(e, Error::Certificate(why)),
        Ok(_) => panic!("accepted; expected {why:?}"),
    }
}

#[test]
fn good_certificate_logs_in() {
    let c = sign(&body(server().public_key()), &CA_SEED);
    let client = login(Some(&c), trust()).unwrap();
    let info = client.certified_server().unwrap();
    assert_eq!(info.serial, 1);
    assert_eq!(info.not_after, NOW + 86_400);
    // Without a clock (a device), the period is not checked.
    let mut t = trust();
    t.now = None;
    login(Some(&c), t).unwrap();
}

#[test]
fn missing_certificate() {
    refused(None, trust(), CertError::Missing);
}

#[test]
fn bad_signature() {
    // Signed by another CA.
    let c = sign(&body(server().public_key()), &[0x22; 32]);
    refused(Some(&c), trust(), CertError::BadSignature);
    // Signed by the CA, then changed (the serial, last body byte before the times).
    let mut c = sign(&body(server().public_key()), &CA_SEED);
    let sig_start = c.len() - 64;
    c[sig_start - 11] ^= 0x01;
    refused(Some(&c), trust(), CertError::BadSignature);
    // A flipped signature bit.
    let mut c = sign(&body(server().public_key()), &CA_SEED);
    let last = c.len() - 1;
    c[last] ^= 0x80;
    refused(Some(&c), trust(), CertError::BadSignature);
}

#[test]
fn wrong_name() {
    let mut b = body(server().public_key());
    b.server_name = "other.example.org";
    refused(Some(&sign(&b, &CA_SEED)), trust(), CertError::WrongName);
}

#[test]
fn expired_and_not_yet_valid() {
    let mut b = body(server().public_key());
    b.not_before = NOW - 100;
    b.not_after = NOW - 1;
    refused(Some(&sign(&b, &CA_SEED)), trust(), CertError::Expired);
    let mut b = body(server().public_key());
    b.not_before = NOW + 1;
    refused(Some(&sign(&b, &CA_SEED)), trust(), CertError::NotYetValid);
    // The bounds are inclusive.
    let mut b = body(server().public_key());
    b.not_before = NOW;
    b.not_after = NOW;
    login(Some(&sign(&b, &CA_SEED)), trust()).unwrap();
}

#[test]
fn revoked() {
    let c = sign(&body(server().public_key()), &CA_SEED);
    let mut t = trust();
    t.revoked.push(5).unwrap();
    t.revoked.push(1).unwrap();
    refused(Some(&c), t, CertError::Revoked);
}

#[test]
fn certificate_for_another_key() {
    // A genuine certificate, but of another server's key: a server that
    // replays someone else's certificate.
    let other = StaticSecret::from_bytes(seq(0x80)).public_key();
    refused(
        Some(&sign(&body(other), &CA_SEED)),
        trust(),
        CertError::WrongKey,
    );
}

#[test]
fn garbage_is_malformed() {
    let mut t = [0u8; 100];
    t[0] = 1;
    assert_eq!(
        cert::verify(&t, &trust(), &server().public_key()),
        Err(CertError::Malformed)
    );
    assert_eq!(
        cert::verify(&[], &trust(), &server().public_key()),
        Err(CertError::Malformed)
    );
    let mut c = sign(&body(server().public_key()), &CA_SEED);
    c.push(0);
    assert!(cert::verify(&c, &trust(), &server().public_key()).is_err());
}

#[test]
fn pinned_mode_ignores_a_certificate() {
    // A pinning client does not look at the certificate at all.
    let now = Instant::ZERO;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let config = ClientConfig {
        user: "alice".try_into().unwrap(),
        server_key: server().public_key(),
        daemon_port: None,
        limits: Limits::DEFAULT,
    };
    let mut client =
        Client::<securecom_core::RustCrypto>::new(config, alice(), now, &mut rng).unwrap();
    let mut session = ServerSession::<securecom_core::RustCrypto>::new(
        &ServerConfig::new(Limits::DEFAULT),
        &server(),
        now,
        &mut rng,
    )
    .unwrap();
    session
        .set_certificate(&sign(&body(PublicKey([1; 32])), &[0x33; 32]))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = client.poll_transmit(&mut buf);
    session
        .handle_input(now, &buf[..n], &OneUser, &mut rng)
        .unwrap();
    let n = session.poll_transmit(&mut buf);
    client.handle_input(now, &buf[..n], &mut rng).unwrap();
    assert!(client.poll_transmit(&mut buf) > 0, "message 3 sent");
    assert_eq!(client.certified_server(), None);
}

#[test]
fn revocation_list_signature() {
    let list = RevocationBody {
        version: CERT_VERSION,
        issued_at: NOW,
        serials: RevokedSerials::from_slice(&[3, 300]).unwrap(),
    };
    let mut out = [0u8; MAX_REVOCATION_LIST];
    let n = sign_revocation_list(&CA_SEED, &list, &mut out).unwrap();
    let ca = ca_public_key(&CA_SEED);
    assert_eq!(verify_revocation_list(&out[..n], &ca), Ok(list));
    assert_eq!(
        verify_revocation_list(&out[..n], &ca_public_key(&[0x22; 32])),
        Err(CertError::BadSignature)
    );
    // A certificate is not a revocation list (domain separation), and back.
    let c = sign(&body(server().public_key()), &CA_SEED);
    assert!(verify_revocation_list(&c, &ca).is_err());
    assert!(cert::verify_signature(&out[..n], &ca).is_err());
}

// ------------------------------------------------------------------ golden bytes (docs/PROTOCOL.md 4.8)

#[test]
fn golden_certificate_and_revocation_list() {
    let ca: CaPublicKey = ca_public_key(&CA_SEED);
    assert_eq!(
        hex(&ca.0),
        "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737"
    );
    let b = CertificateBody {
        version: 1,
        server_name: "chat.example.org",
        static_key: server().public_key(),
        serial: 1,
        not_before: 1_750_000_000,
        not_after: 1_781_536_000,
    };
    let c = sign(&b, &CA_SEED);
    assert_eq!(
        hex(&c),
        concat!(
            "01",
            "10",
            "636861742e6578616d706c652e6f7267",
            "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f",
            "01",
            "80c3bbc206",
            "80aac0d106",
            "5872993d3558fa22d2b8b2d8b9b22adc6e38cb60a370ea77b1d5d9d8916bf5cc",
            "128fb26c61d8d324356ead81df2b17c2ceb89c94dd7422d6d259432f2751d200"
        )
    );
    let list = RevocationBody {
        version: 1,
        issued_at: 1_750_000_000,
        serials: RevokedSerials::from_slice(&[2, 300]).unwrap(),
    };
    let mut out = [0u8; MAX_REVOCATION_LIST];
    let n = sign_revocation_list(&CA_SEED, &list, &mut out).unwrap();
    assert_eq!(
        hex(&out[..n]),
        concat!(
            "01",
            "80c3bbc206",
            "02",
            "02",
            "ac02",
            "2a1a2d19ff37ebe9d56e3f534a95e695f07f74be8aabfa8cbad920a2b8f894e5",
            "8b34a3c9f9b31aced43fc9c30805996908fc9190b230ded409a212f788b43a08"
        )
    );
    // In a ServerHello.
    let mut hello = [0u8; 300];
    let m = encode(
        &ServerHello {
            version: 2,
            certificate: Some(&c),
        },
        &mut hello,
    )
    .unwrap();
    assert_eq!(c.len(), 125);
    assert_eq!(hex(&hello[..3]), "02017d");
    assert_eq!(&hello[3..m], &c[..]);
    assert_eq!(
        decode::<ServerHello>(&hello[..m]).unwrap().certificate,
        Some(&c[..])
    );
}
