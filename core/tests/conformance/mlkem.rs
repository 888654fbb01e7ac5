//! ML-KEM-768 (FIPS 203) of the crypto provider `super::Provider`, through
//! the clatter `Kem` trait the handshakes use, against the official vectors
//! (`../vectors/`: NIST ACVP key generation; Go's accumulated test, which
//! covers encapsulation and decapsulation, implicit rejection included) and the contract of
//! `securecom_core::crypto::MlKem768` (how randomness is drawn, what is
//! refused). The core runs it on RustCrypto (`fips203`), securecom-host on
//! AWS-LC; `cross_provider` compares the provider with the portable one on
//! the same seeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clatter::error::KemError;
use clatter::traits::Kem as _;
use rand_core::{CryptoRng, RngCore};
use securecom_core::crypto::CryptoProvider;
use securecom_core::kem::{CIPHERTEXT_LEN, PUBLIC_KEY_LEN, SECRET_KEY_LEN};
use serde_json::Value;
use sha3::digest::{ExtendableOutput, Update, XofReader};

use super::Provider;

type K = <Provider as CryptoProvider>::Kem;
type Portable = <securecom_core::RustCrypto as CryptoProvider>::Kem;

/// Hands out exactly the bytes it was given, in one `fill_bytes` call each,
/// as the contract says the KEM draws them; anything else fails the test.
#[derive(Clone, Default)]
struct Given {
    chunks: Vec<Vec<u8>>,
}

impl Given {
    fn new(chunks: &[&[u8]]) -> Self {
        Given {
            chunks: chunks.iter().rev().map(|c| c.to_vec()).collect(),
        }
    }
}

impl RngCore for Given {
    fn next_u32(&mut self) -> u32 {
        panic!("the KEM must draw its randomness with fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        panic!("the KEM must draw its randomness with fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let chunk = self.chunks.pop().expect("the KEM drew more than once");
        assert_eq!(dest.len(), chunk.len(), "the KEM drew the wrong length");
        dest.copy_from_slice(&chunk);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Given {}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).expect("hex")
}

#[test]
fn nist_acvp_key_generation() {
    let text = include_str!("../vectors/mlkem768-keygen-acvp.json");
    let json: Value = serde_json::from_str(text).unwrap();
    let mut n = 0;
    for group in json["testGroups"].as_array().unwrap() {
        assert_eq!(group["parameterSet"], "ML-KEM-768");
        for t in group["tests"].as_array().unwrap() {
            let (d, z) = (
                unhex(t["d"].as_str().unwrap()),
                unhex(t["z"].as_str().unwrap()),
            );
            let seed = [d, z].concat();
            let kp = K::genkey_rng(&mut Given::new(&[&seed])).unwrap();
            assert_eq!(
                kp.public[..],
                unhex(t["ek"].as_str().unwrap())[..],
                "tcId {}",
                t["tcId"]
            );
            assert_eq!(
                kp.secret[..],
                unhex(t["dk"].as_str().unwrap())[..],
                "tcId {}",
                t["tcId"]
            );
            // The in-place key generation the layer uses: the same
            // decapsulation key, which holds the encapsulation key.
            let mut sk = [0u8; SECRET_KEY_LEN];
            <K as securecom_core::crypto::MlKem768>::keygen_into(
                &seed.clone().try_into().unwrap(),
                &mut sk,
            )
            .unwrap();
            assert_eq!(sk[..], kp.secret[..], "tcId {}", t["tcId"]);
            assert_eq!(sk[1152..1152 + PUBLIC_KEY_LEN], kp.public[..]);
            n += 1;
        }
    }
    assert_eq!(n, 25);
}

/// Go's `TestAccumulated` (crypto/mlkem, BSD-3-Clause): 10 000 rounds.
#[test]
fn go_accumulated_10000() {
    let mut s = sha3::Shake128::default().finalize_xof();
    let mut o = sha3::Shake128::default();
    for _ in 0..10_000 {
        let mut seed = [0u8; 64];
        s.read(&mut seed);
        let kp = K::genkey_rng(&mut Given::new(&[&seed])).unwrap();
        o.update(&kp.public);
        let mut m = [0u8; 32];
        s.read(&mut m);
        let (ct, ss) = K::encapsulate(&kp.public, &mut Given::new(&[&m])).unwrap();
        o.update(&ct);
        o.update(&ss[..]);
        assert_eq!(K::decapsulate(&ct, &kp.secret[..]).unwrap()[..], ss[..]);
        let mut forged = [0u8; CIPHERTEXT_LEN];
        s.read(&mut forged);
        // Implicit rejection: a secret, not an error.
        o.update(&K::decapsulate(&forged, &kp.secret[..]).unwrap()[..]);
    }
    let mut out = [0u8; 32];
    o.finalize_xof().read(&mut out);
    assert_eq!(
        hex::encode(out),
        "8a518cc63da366322a8e7a818c7a0d63483cb3528d34a4cf42f35d5ad73f22fc"
    );
}

#[test]
fn what_is_refused() {
    let kp = K::genkey_rng(&mut Given::new(&[&[7u8; 64]])).unwrap();
    let m = [9u8; 32];
    // FIPS 203 7.2: a coefficient not reduced mod q (12 bits of ones: 4095).
    let mut bad = kp.public;
    bad[0] = 0xff;
    bad[1] |= 0x0f;
    assert!(matches!(
        K::encapsulate(&bad, &mut Given::new(&[&m])),
        Err(KemError::Input)
    ));
    // Wrong lengths.
    assert!(matches!(
        K::encapsulate(&kp.public[..PUBLIC_KEY_LEN - 1], &mut Given::new(&[&m])),
        Err(KemError::Input)
    ));
    let (ct, _) = K::encapsulate(&kp.public, &mut Given::new(&[&m])).unwrap();
    assert!(matches!(
        K::decapsulate(&ct[..CIPHERTEXT_LEN - 1], &kp.secret[..]),
        Err(KemError::Input)
    ));
    assert!(matches!(
        K::decapsulate(&ct, &kp.secret[..SECRET_KEY_LEN - 1]),
        Err(KemError::Input)
    ));
    // FIPS 203 7.3: a decapsulation key whose embedded H(ek) is wrong.
    let mut sk = kp.secret.to_vec();
    sk[SECRET_KEY_LEN - 64] ^= 1;
    assert!(matches!(K::decapsulate(&ct, &sk), Err(KemError::Input)));
}

/// `n` draws of a key seed, an encapsulation's `m` and a forged
/// ciphertext, from SHAKE128 of `label`.
fn draws(
    label: &[u8],
    n: usize,
) -> impl Iterator<Item = ([u8; 64], [u8; 32], [u8; CIPHERTEXT_LEN])> {
    let mut rng = sha3::Shake128::default().chain(label).finalize_xof();
    (0..n).map(move |_| {
        let mut seed = [0u8; 64];
        let mut m = [0u8; 32];
        let mut forged = [0u8; CIPHERTEXT_LEN];
        rng.read(&mut seed);
        rng.read(&mut m);
        rng.read(&mut forged);
        (seed, m, forged)
    })
}

#[test]
fn cross_provider() {
    for (seed, m, forged) in draws(b"secureCom ML-KEM cross", 200) {
        let a = K::genkey_rng(&mut Given::new(&[&seed])).unwrap();
        let b = Portable::genkey_rng(&mut Given::new(&[&seed])).unwrap();
        assert_eq!((a.public, &a.secret[..]), (b.public, &b.secret[..]));
        let (ca, sa) = K::encapsulate(&a.public, &mut Given::new(&[&m])).unwrap();
        let (cb, sb) = Portable::encapsulate(&b.public, &mut Given::new(&[&m])).unwrap();
        assert_eq!((ca, &sa[..]), (cb, &sb[..]));
        assert_eq!(
            K::decapsulate(&forged, &a.secret[..]).unwrap()[..],
            Portable::decapsulate(&forged, &b.secret[..]).unwrap()[..]
        );
    }
}

/// `MlKem768::decapsulate_slot`, as the post-quantum layer uses it: the
/// same secrets as `decapsulate` with the slot's bytes (a forged
/// ciphertext's too), the same refusal of a key whose embedded H(ek) is
/// wrong, and a wiped slot that holds no key.
#[test]
fn slot_decapsulation() {
    use securecom_core::crypto::MlKem768;
    use securecom_core::kem::KeySlot;
    for (seed, m, forged) in draws(b"secureCom ML-KEM slot", 20) {
        let mut slot = KeySlot::new();
        K::keygen_into(&seed, slot.bytes_mut().unwrap()).unwrap();
        let sk = slot.bytes().unwrap().to_vec();
        assert_eq!(
            sk,
            K::genkey_rng(&mut Given::new(&[&seed])).unwrap().secret[..]
        );
        let pk = &sk[1152..1152 + PUBLIC_KEY_LEN];
        let (ct, ss) = K::encapsulate(pk, &mut Given::new(&[&m])).unwrap();
        assert_eq!(K::decapsulate_slot(&ct, &mut slot).unwrap()[..], ss[..]);
        // Until it is wiped the slot keeps its key, whatever form it took.
        assert_eq!(
            K::decapsulate_slot(&forged, &mut slot).unwrap()[..],
            K::decapsulate(&forged, &sk).unwrap()[..]
        );
        slot.wipe();
        assert!(slot.bytes().unwrap().iter().all(|&b| b == 0));
        assert!(matches!(
            K::decapsulate_slot(&ct, &mut slot),
            Err(KemError::Input)
        ));
    }
    // FIPS 203 7.3, through the slot.
    let mut slot = KeySlot::new();
    K::keygen_into(&[7u8; 64], slot.bytes_mut().unwrap()).unwrap();
    slot.bytes_mut().unwrap()[SECRET_KEY_LEN - 64] ^= 1;
    assert!(matches!(
        K::decapsulate_slot(&[0u8; CIPHERTEXT_LEN], &mut slot),
        Err(KemError::Input)
    ));
}
