//! The reference transcript of `docs/PROTOCOL.md` section 13, rebuilt from
//! the document alone on raw primitives (`blake2`, `chacha20poly1305`,
//! `x25519-dalek`, `fips203`; no clatter, nothing of the core): Noise's
//! symmetric state, XX, NNpsk0 and KK, the post-quantum layer of 4.6, the
//! first transport messages and the re-key in place of the standard channel
//! (4.10), each value checked to be the one the document quotes. The re-key
//! was written from 4.10 and 4.6 alone, without reading `core/src/rekey.rs`
//! or `core/src/pq.rs`. A second implementation of the layer besides clatter's, and the
//! check that the document is enough to write one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use fips203::ml_kem_768;
use fips203::traits::{Decaps, Encaps, KeyGen, SerDes};
use x25519_dalek::{PublicKey, StaticSecret};

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&hash(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut v: Vec<&[u8]> = vec![&ipad];
    v.extend_from_slice(parts);
    let inner = hash(&v);
    hash(&[&opad, &inner])
}
fn hkdf(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let t = hmac(ck, &[ikm]);
    let o1 = hmac(&t, &[&[1]]);
    let o2 = hmac(&t, &[&o1, &[2]]);
    let o3 = hmac(&t, &[&o2, &[3]]);
    (o1, o2, o3)
}
fn aead(k: &[u8; 32], n: u64, ad: &[u8], pt: &[u8]) -> Vec<u8> {
    let c = ChaCha20Poly1305::new(k.into());
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    let mut buf = pt.to_vec();
    let tag = c
        .encrypt_in_place_detached(&nonce.into(), ad, &mut buf)
        .unwrap();
    buf.extend_from_slice(&tag);
    buf
}
struct Sym {
    h: [u8; 32],
    ck: [u8; 32],
    k: Option<[u8; 32]>,
    n: u64,
}
impl Sym {
    fn new(name: &str) -> Sym {
        let mut h = [0u8; 32];
        if name.len() <= 32 {
            h[..name.len()].copy_from_slice(name.as_bytes());
        } else {
            h = hash(&[name.as_bytes()]);
        }
        Sym {
            h,
            ck: h,
            k: None,
            n: 0,
        }
    }
    fn mix_hash(&mut self, d: &[u8]) {
        self.h = hash(&[&self.h, d]);
    }
    fn mix_key(&mut self, ikm: &[u8]) {
        let (a, b, _) = hkdf(&self.ck, ikm);
        self.ck = a;
        self.k = Some(b);
        self.n = 0;
    }
    fn mix_key_and_hash(&mut self, ikm: &[u8]) {
        let (a, b, c) = hkdf(&self.ck, ikm);
        self.ck = a;
        self.mix_hash(&b);
        self.k = Some(c);
        self.n = 0;
    }
    fn enc_hash(&mut self, pt: &[u8]) -> Vec<u8> {
        let out = match self.k {
            Some(k) => {
                let o = aead(&k, self.n, &self.h, pt);
                self.n += 1;
                o
            }
            None => pt.to_vec(),
        };
        self.mix_hash(&out.clone());
        out
    }
    fn split(&self) -> ([u8; 32], [u8; 32]) {
        let (a, b, _) = hkdf(&self.ck, &[]);
        (a, b)
    }
}
fn seq(x: u8) -> [u8; 32] {
    core::array::from_fn(|i| x.wrapping_add(i as u8))
}
fn dh(sk: &[u8; 32], pk: &[u8; 32]) -> [u8; 32] {
    StaticSecret::from(*sk)
        .diffie_hellman(&PublicKey::from(*pk))
        .to_bytes()
}
fn pubk(sk: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*sk)).to_bytes()
}
fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}
fn h(b: &[u8]) -> String {
    hex::encode(b)
}

/// The hex digits of docs/PROTOCOL.md, run together (as the golden test reads it).
fn doc() -> String {
    include_str!("../../docs/PROTOCOL.md")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect()
}

/// `value`, computed here, must be quoted in docs/PROTOCOL.md.
fn quoted(doc: &str, what: &str, value: &str) {
    assert!(
        doc.contains(value),
        "docs/PROTOCOL.md does not quote {what} = {value}"
    );
}

struct Outer {
    h: [u8; 32],
    ck: [u8; 32],
    i2r: [u8; 32],
    r2i: [u8; 32],
}
fn outer_of(s: &Sym) -> Outer {
    let (a, b) = s.split();
    Outer {
        h: s.h,
        ck: s.ck,
        i2r: a,
        r2i: b,
    }
}

/// The layer's two messages, the session hash, its two keys (i2r, r2i)
/// and its final chaining key (which keys the next re-key, 4.10).
type Layered = (Vec<u8>, Vec<u8>, [u8; 32], [u8; 32], [u8; 32], [u8; 32]);

fn layer(o: &Outer, d: u8, z: u8, m: u8) -> Layered {
    let psk = hmac(&o.ck, &[b"secureCom/2/hybrid-psk"]);
    let mut s = Sym::new("Noise_pqNNpsk2_MLKEM768+NoSKEM_ChaChaPoly_BLAKE2s");
    s.mix_hash(b"secureCom/2/pq");
    s.mix_hash(b"clatter.hybrid_dual_layer.outer");
    s.mix_key_and_hash(&o.h);
    let (ek, dk) = ml_kem_768::KG::keygen_from_seed(seq(d), seq(z));
    let ekb = ek.clone().into_bytes();
    s.mix_hash(&ekb);
    s.mix_key(&ekb);
    let mut inner1 = ekb.to_vec();
    inner1.extend(s.enc_hash(&[]));
    let msg1 = aead(&o.i2r, 0, &[], &inner1);
    // responder
    let ek2 = ml_kem_768::EncapsKey::try_from_bytes(ekb).unwrap();
    let (ss, ct) = ek2.encaps_from_seed(&seq(m));
    let ctb = ct.into_bytes();
    let ssb = ss.into_bytes();
    let ss_i = dk
        .try_decaps(&ml_kem_768::CipherText::try_from_bytes(ctb).unwrap())
        .unwrap()
        .into_bytes();
    assert_eq!(ss_i, ssb);
    s.mix_hash(&ctb);
    s.mix_key(&ssb);
    s.mix_key_and_hash(&psk);
    let mut inner2 = ctb.to_vec();
    inner2.extend(s.enc_hash(&[]));
    let msg2 = aead(&o.r2i, 0, &[], &inner2);
    let (a, b) = s.split();
    (msg1, msg2, s.h, a, b, s.ck)
}

#[test]
fn the_documented_transcript_is_rebuilt_from_raw_primitives() {
    let doc = doc();
    let alice_sk: [u8; 32] =
        unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
            .try_into()
            .unwrap();
    let bob_sk: [u8; 32] =
        unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
            .try_into()
            .unwrap();
    let server_sk = seq(0x00);
    // ---- XX
    let (ae, se) = (seq(0x20), seq(0x40));
    let mut s = Sym::new("Noise_XX_25519_ChaChaPoly_BLAKE2s");
    s.mix_hash(b"secureCom/1/standard");
    s.mix_hash(&pubk(&ae));
    let mut m1 = pubk(&ae).to_vec();
    m1.extend(s.enc_hash(&[]));
    quoted(&doc, "XX1", &h(&m1));
    s.mix_hash(&pubk(&se));
    s.mix_key(&dh(&se, &pubk(&ae)));
    let mut m2 = pubk(&se).to_vec();
    m2.extend(s.enc_hash(&pubk(&server_sk)));
    s.mix_key(&dh(&server_sk, &pubk(&ae)));
    m2.extend(s.enc_hash(&[0x03, 0x00]));
    quoted(&doc, "XX2", &h(&m2));
    let mut m3 = s.enc_hash(&pubk(&alice_sk));
    s.mix_key(&dh(&alice_sk, &pubk(&se)));
    m3.extend(s.enc_hash(&unhex("0305616c696365")));
    quoted(&doc, "XX3", &h(&m3));
    let o = outer_of(&s);
    quoted(&doc, "XX_OUTER_HASH", &h(&o.h));
    let (p1, p2, hs, i2r, r2i, ck_std) = layer(&o, 0x08, 0x28, 0x48);
    assert_eq!(p1.len(), 1216);
    quoted(&doc, "XX_PQ1 digest", &h(&hash(&[&p1])));
    quoted(&doc, "XX_PQ1 head", &h(&p1[..32]));
    assert_eq!(p2.len(), 1120);
    quoted(&doc, "XX_PQ2 digest", &h(&hash(&[&p2])));
    quoted(&doc, "XX_HASH", &h(&hs));
    quoted(
        &doc,
        "LoginOk",
        &h(&aead(&r2i, 0, &[], &unhex("0005616c696365"))),
    );
    let mut ann = unhex("009221");
    ann.extend(seq(0xe0));
    quoted(&doc, "Announce", &h(&aead(&i2r, 0, &[], &ann)));
    quoted(
        &doc,
        "DaemonStatus",
        &h(&aead(&r2i, 1, &[], &unhex("0201"))),
    );
    rekey_of_the_standard_channel(&doc, hs, ck_std, i2r, r2i);
    let psk = hmac(&hs, &[b"secureCom/1/request-psk", &seq(0xe0)]);
    quoted(&doc, "REQUEST_PSK", &h(&psk));
    quoted(
        &doc,
        "TICKET",
        &h(&hmac(&hs, &[b"secureCom/1/request-ticket", &seq(0xe0)])),
    );
    // ---- NNpsk0
    let (sre, dre) = (seq(0x60), seq(0x80));
    let mut s = Sym::new("Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s");
    s.mix_hash(b"secureCom/1/request");
    s.mix_key_and_hash(&psk);
    s.mix_hash(&pubk(&sre));
    s.mix_key(&pubk(&sre));
    let mut n1 = pubk(&sre).to_vec();
    n1.extend(s.enc_hash(&[]));
    quoted(&doc, "NN1", &h(&n1));
    s.mix_hash(&pubk(&dre));
    s.mix_key(&pubk(&dre));
    s.mix_key(&dh(&dre, &pubk(&sre)));
    let mut n2 = pubk(&dre).to_vec();
    n2.extend(s.enc_hash(&[]));
    quoted(&doc, "NN2", &h(&n2));
    let o = outer_of(&s);
    quoted(&doc, "NN_OUTER_HASH", &h(&o.h));
    let (p1, p2, hs, i2r, r2i, _) = layer(&o, 0x68, 0x88, 0x98);
    assert_eq!(p1.len(), 1216);
    quoted(&doc, "NN_PQ1 digest", &h(&hash(&[&p1])));
    assert_eq!(p2.len(), 1120);
    quoted(&doc, "NN_PQ2 digest", &h(&hash(&[&p2])));
    quoted(&doc, "NN_HASH", &h(&hs));
    let mut cr = unhex("000103626f62");
    cr.extend(pubk(&bob_sk));
    quoted(&doc, "ChatRequest", &h(&aead(&i2r, 0, &[], &cr)));
    quoted(&doc, "Answer", &h(&aead(&r2i, 0, &[], &unhex("000100"))));
    // ---- KK, bob initiator
    let (be, ae2) = (seq(0xc0), seq(0xa0));
    let mut prologue = b"secureCom/1/chat".to_vec();
    prologue.extend([0, 0, 0, 1]);
    prologue.extend(pubk(&bob_sk));
    prologue.push(3);
    prologue.extend(b"bob");
    prologue.extend(pubk(&alice_sk));
    prologue.push(5);
    prologue.extend(b"alice");
    let mut s = Sym::new("Noise_KK_25519_ChaChaPoly_BLAKE2s");
    s.mix_hash(&prologue);
    s.mix_hash(&pubk(&bob_sk));
    s.mix_hash(&pubk(&alice_sk));
    s.mix_hash(&pubk(&be));
    s.mix_key(&dh(&be, &pubk(&alice_sk)));
    s.mix_key(&dh(&bob_sk, &pubk(&alice_sk)));
    let mut k1 = pubk(&be).to_vec();
    k1.extend(s.enc_hash(&[]));
    quoted(&doc, "KK1", &h(&k1));
    s.mix_hash(&pubk(&ae2));
    s.mix_key(&dh(&ae2, &pubk(&be)));
    s.mix_key(&dh(&ae2, &pubk(&bob_sk)));
    let mut k2 = pubk(&ae2).to_vec();
    k2.extend(s.enc_hash(&[]));
    quoted(&doc, "KK2", &h(&k2));
    let o = outer_of(&s);
    quoted(&doc, "KK_OUTER_HASH", &h(&o.h));
    let (p1, p2, hs, i2r, r2i, _) = layer(&o, 0xc8, 0xe8, 0xa8);
    assert_eq!(p1.len(), 1216);
    quoted(&doc, "KK_PQ1 digest", &h(&hash(&[&p1])));
    assert_eq!(p2.len(), 1120);
    quoted(&doc, "KK_PQ2 digest", &h(&hash(&[&p2])));
    quoted(&doc, "KK_HASH", &h(&hs));
    quoted(
        &doc,
        "TextBob",
        &h(&aead(&i2r, 0, &[], &unhex("00000b68656c6c6f20616c696365"))),
    );
    quoted(
        &doc,
        "TextAlice",
        &h(&aead(&r2i, 0, &[], &unhex("000106686920626f62"))),
    );
    quoted(&doc, "CloseBob", &h(&aead(&i2r, 1, &[], &unhex("010101"))));
}

/// 4.10 over the standard channel of the transcript: after `LoginOk`
/// (server #0), `AnnounceDaemon` (alice #0) and `DaemonStatus` (server #1),
/// alice (the initiator) re-keys. Each step is `ff || step || body`, sealed
/// as a transport message with the sender's current key and next nonce:
/// alice's #1, #2, #3 (steps 1, 3, 5), the server's #2, #3 (steps 2, 4).
/// Then the first message each way under the new keys (nonce 0): alice's
/// `Ping` (`06`) and the server's `Pong` (`0a`).
fn rekey_of_the_standard_channel(
    doc: &str,
    h_std: [u8; 32],
    ck_std: [u8; 32],
    i2r: [u8; 32],
    r2i: [u8; 32],
) {
    let (ae, se) = (seq(0x10), seq(0x30));
    let psk = hmac(&ck_std, &[b"secureCom/2/rekey-secret"]);
    quoted(doc, "REKEY_PSK", &h(&psk));
    // NNpsk0, prologue "secureCom/2/rekey" (4.4's pattern).
    let mut s = Sym::new("Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s");
    s.mix_hash(b"secureCom/2/rekey");
    s.mix_key_and_hash(&psk);
    s.mix_hash(&pubk(&ae));
    s.mix_key(&pubk(&ae));
    let mut n1 = pubk(&ae).to_vec();
    n1.extend(s.enc_hash(&[]));
    s.mix_hash(&pubk(&se));
    s.mix_key(&pubk(&se));
    s.mix_key(&dh(&se, &pubk(&ae)));
    let mut n2 = pubk(&se).to_vec();
    n2.extend(s.enc_hash(&[]));
    quoted(doc, "REKEY_NN1", &h(&n1));
    quoted(doc, "REKEY_NN2", &h(&n2));
    let o = outer_of(&s);
    quoted(doc, "REKEY_OUTER_HASH", &h(&o.h));
    // The layer over it, alice its initiator, fresh KEM randomness.
    let (p1, p2, h_layer, new_i2r, new_r2i, ck_next) = layer(&o, 0x18, 0x38, 0x58);
    assert_eq!((p1.len(), p2.len()), (1216, 1120));
    quoted(doc, "REKEY_PQ1 digest", &h(&hash(&[&p1])));
    quoted(doc, "REKEY_PQ2 digest", &h(&hash(&[&p2])));
    let step = |n: u8, body: &[u8]| [&[0xff, n][..], body].concat();
    let r1 = aead(&i2r, 1, &[], &step(1, &n1));
    let r2 = aead(&r2i, 2, &[], &step(2, &n2));
    let r3 = aead(&i2r, 2, &[], &step(3, &p1));
    let r4 = aead(&r2i, 3, &[], &step(4, &p2));
    let r5 = aead(&i2r, 3, &[], &step(5, &[]));
    assert_eq!(
        [r1.len(), r2.len(), r3.len(), r4.len(), r5.len()],
        [66, 66, 1234, 1138, 18]
    );
    quoted(doc, "REKEY_1", &h(&r1));
    quoted(doc, "REKEY_2", &h(&r2));
    quoted(doc, "REKEY_3 digest", &h(&hash(&[&r3])));
    quoted(doc, "REKEY_4 digest", &h(&hash(&[&r4])));
    quoted(doc, "REKEY_5", &h(&r5));
    // The new keys; the session hash stays h_std (the layer's own h is not it).
    assert_ne!(h_layer, h_std);
    quoted(
        doc,
        "PING under the new keys",
        &h(&aead(&new_i2r, 0, &[], &[0x06])),
    );
    quoted(
        doc,
        "PONG under the new keys",
        &h(&aead(&new_r2i, 0, &[], &[0x0a])),
    );
    // The next re-key is keyed by this re-key's layer's final chaining key.
    quoted(
        doc,
        "REKEY_NEXT_PSK",
        &h(&hmac(&ck_next, &[b"secureCom/2/rekey-secret"])),
    );
}
