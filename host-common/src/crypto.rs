//! The host crypto provider's primitives: X25519 and ChaCha20-Poly1305 from
//! AWS-LC, as drop-in replacements for clatter's RustCrypto-based
//! [`X25519`](clatter::crypto::dh::X25519) and
//! [`ChaChaPoly`](clatter::crypto::cipher::ChaChaPoly).
//!
//! [`AwsLcX25519`] and [`AwsLcChaChaPoly`] implement clatter's [`Dh`] and
//! [`Cipher`] with the same types, names and bytes as clatter's own (the tests
//! in `tests/crypto_provider.rs` check them against each other, the RFC 7748
//! and RFC 8439 vectors, and whole handshakes with one side on each), so a
//! Noise engine can take either.
//!
//! # Why AWS-LC
//!
//! - It is the library behind [aws-lc-rs], rustls's default crypto provider,
//!   maintained by AWS.
//! - It picks its code paths at run time from the CPU's features, so one
//!   binary runs on any x86-64: X25519 takes s2n-bignum's BMI2/ADX assembly
//!   or, without those, its plain x86-64 variant; ChaCha20-Poly1305 takes its
//!   AVX2 or its SSE4.1 assembly (C otherwise). Neither path uses AVX-512.
//! - On x86-64 and aarch64 (Linux, macOS, the BSDs) its X25519 is
//!   [s2n-bignum]'s assembly, whose routines each come with a machine-checked
//!   proof (HOL Light) that they compute the right result; elsewhere it is C
//!   on fiat-crypto's generated field arithmetic. (aws-lc-rs's own README
//!   claims no formal verification.)
//!
//! # Raw calls rather than aws-lc-rs's safe API
//!
//! Both would cost more per call, here where every call brings its own key:
//! - `agreement::PrivateKey::from_private_key` allocates an `EVP_PKEY` and
//!   computes the public key (`x25519_set_priv_raw` calls
//!   `X25519_public_from_private`): a second scalar multiplication per DH.
//!   [`AwsLcX25519`] calls `X25519` and `X25519_public_from_private` directly.
//! - `aead::UnboundKey::new` allocates its `EVP_AEAD_CTX` with
//!   `OPENSSL_malloc`. [`AwsLcChaChaPoly`] builds the context on the stack
//!   (for this AEAD it is the key copied in) and wipes it after the call: no
//!   heap allocation per call.
//!
//! # Measured
//!
//! `cargo run -p securecom-host --release --example crypto_bench`, on a
//! 2-vCPU Xeon VM at 2.8 GHz (AVX2, BMI2, ADX), best of 60 batches, per call:
//!
//! | operation                           | RustCrypto (clatter) | AWS-LC (here) | ratio |
//! |-------------------------------------|---------------------:|--------------:|------:|
//! | X25519 `dh`                         |                53 µs |       24.5 µs |   2.2 |
//! | X25519 `pubkey` (dalek with tables) |              16.7 µs |        7.7 µs |   2.2 |
//! | ChaChaPoly `encrypt`, 283 B         |              1.71 µs |      0.335 µs |   5.1 |
//! | ChaChaPoly `decrypt`, 283 B         |              1.71 µs |       0.31 µs |   5.5 |
//! | ChaChaPoly `encrypt`, 65519 B       |                49 µs |         31 µs |   1.6 |
//! | `Noise_XX`, both sides              |               416 µs |        200 µs |   2.1 |
//!
//! aws-lc-rs's safe API measured 32.7 µs per DH (`from_private_key` alone:
//! 7.8 µs, one base-point multiplication) and 0.35 µs per 283-byte seal with
//! a fresh `UnboundKey` (0.30 µs with a key kept across calls, which clatter's
//! key-per-call trait cannot do). Short messages gain the most: RustCrypto
//! costs about 1.5 µs per call plus 0.7 ns per byte, AWS-LC 0.2 µs plus
//! 0.45 ns. In a profile, RustCrypto's AVX2 ChaCha20 and Poly1305 call
//! `_mm256_*` intrinsics as out-of-line functions (24 of them are in the
//! binary), as happens when they are used from functions not compiled with
//! `#[target_feature(enable = "avx2")]`.
//!
//! # Why RustCrypto stays in the core
//!
//! `securecom-core` is `no_std` without `alloc` and `forbid(unsafe_code)`,
//! and runs on the Cortex-M3 device (`thumbv7m-none-eabi`); aws-lc-rs needs
//! `std` (its README: no `no_std` build) and AWS-LC is C and assembly for
//! operating systems. The device keeps RustCrypto; the hosts can use these,
//! which give the same bytes on the wire.
//!
//! [aws-lc-rs]: https://github.com/aws/aws-lc-rs
//! [s2n-bignum]: https://github.com/awslabs/s2n-bignum

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::ptr;

use aws_lc_sys as sys;
use clatter::bytearray::SensitiveByteArray;
use clatter::error::{CipherError, CipherResult, DhResult};
use clatter::traits::{Cipher, CryptoComponent, Dh, Rng};
use clatter::KeyPair;
use zeroize::Zeroize;

/// Bytes in an X25519 key or shared secret, and in a ChaCha20-Poly1305 key.
const KEY_LEN: usize = 32;
/// Bytes in a Poly1305 tag.
const TAG_LEN: usize = 16;
/// Bytes in a ChaCha20-Poly1305 (RFC 8439) nonce.
const NONCE_LEN: usize = 12;

/// X25519 (RFC 7748) from AWS-LC, interchangeable with clatter's
/// [`X25519`](clatter::crypto::dh::X25519): the same types, name and bytes
/// for every input. A low-order peer key gives an all-zero `Ok` result, as
/// clatter's does (the core's `ContributoryX25519` refuses it).
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLcX25519;

impl CryptoComponent for AwsLcX25519 {
    fn name() -> &'static str {
        "25519"
    }
}

impl Dh for AwsLcX25519 {
    type PrivateKey = SensitiveByteArray<[u8; KEY_LEN]>;
    type PubKey = [u8; KEY_LEN];
    type Output = SensitiveByteArray<[u8; KEY_LEN]>;

    /// 32 bytes from `rng`, unclamped (both implementations clamp when they
    /// multiply), exactly as clatter draws them.
    fn genkey_rng<R: Rng>(rng: &mut R) -> DhResult<KeyPair<Self::PubKey, Self::PrivateKey>> {
        let mut secret = SensitiveByteArray::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut secret[..]);
        let public = Self::pubkey(&secret);
        Ok(KeyPair { public, secret })
    }

    fn pubkey(k: &Self::PrivateKey) -> Self::PubKey {
        aws_lc_rs::init();
        let mut public = [0u8; KEY_LEN];
        // SAFETY: both pointers come from 32-byte arrays, the sizes the
        // function reads and writes; it keeps no pointer after returning.
        unsafe { sys::X25519_public_from_private(public.as_mut_ptr(), k.as_ptr()) };
        public
    }

    fn dh(k: &Self::PrivateKey, pk: &Self::PubKey) -> DhResult<Self::Output> {
        aws_lc_rs::init();
        let mut out = SensitiveByteArray::new([0u8; KEY_LEN]);
        // SAFETY: all three pointers come from 32-byte arrays, the sizes the
        // function reads and writes; `out` does not overlap the inputs.
        let ok = unsafe { sys::X25519(out.as_mut_ptr(), k.as_ptr(), pk.as_ptr()) };
        if ok != 1 {
            // AWS-LC's only failure: the result is all zeros (a low-order
            // point). clatter returns those zeros as a success; so do we.
            out.zeroize();
        }
        Ok(out)
    }
}

/// ChaCha20-Poly1305 (RFC 8439) from AWS-LC with Noise's nonce (4 zero bytes
/// and the 64-bit counter, little-endian), interchangeable with clatter's
/// [`ChaChaPoly`](clatter::crypto::cipher::ChaChaPoly): the same key type,
/// tag, name, outputs, errors and panics.
///
/// One difference, on a wrong tag only: clatter leaves the ciphertext in the
/// output buffer, AWS-LC zeroes it. Neither leaves plaintext there.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLcChaChaPoly;

impl CryptoComponent for AwsLcChaChaPoly {
    fn name() -> &'static str {
        "ChaChaPoly"
    }
}

impl Cipher for AwsLcChaChaPoly {
    type Key = SensitiveByteArray<[u8; KEY_LEN]>;

    fn tag_len() -> usize {
        TAG_LEN
    }

    fn encrypt(
        k: &Self::Key,
        nonce: u64,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> CipherResult<()> {
        assert!(plaintext.len().checked_add(TAG_LEN) == Some(out.len()));
        let (body, tag) = out.split_at_mut(plaintext.len());
        seal(k, &noise_nonce(nonce), ad, Io::Copy(plaintext, body), tag)
    }

    fn encrypt_in_place(
        k: &Self::Key,
        nonce: u64,
        ad: &[u8],
        in_out: &mut [u8],
        plaintext_len: usize,
    ) -> CipherResult<usize> {
        assert!(plaintext_len
            .checked_add(TAG_LEN)
            .is_some_and(|len| len <= in_out.len()));
        let out_len = plaintext_len + TAG_LEN;
        let (body, tag) = in_out[..out_len].split_at_mut(plaintext_len);
        seal(k, &noise_nonce(nonce), ad, Io::InPlace(body), tag)?;
        Ok(out_len)
    }

    fn decrypt(
        k: &Self::Key,
        nonce: u64,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> CipherResult<()> {
        assert!(ciphertext.len().checked_sub(TAG_LEN) == Some(out.len()));
        let (body, tag) = ciphertext.split_at(out.len());
        open(k, &noise_nonce(nonce), ad, Io::Copy(body, out), tag)
    }

    fn decrypt_in_place(
        k: &Self::Key,
        nonce: u64,
        ad: &[u8],
        in_out: &mut [u8],
        ciphertext_len: usize,
    ) -> CipherResult<usize> {
        assert!(ciphertext_len <= in_out.len());
        assert!(ciphertext_len >= TAG_LEN);
        let (body, tag) = in_out[..ciphertext_len].split_at_mut(ciphertext_len - TAG_LEN);
        open(k, &noise_nonce(nonce), ad, Io::InPlace(body), tag)?;
        Ok(body.len())
    }
}

/// Noise's ChaChaPoly nonce: 32 zero bits, then the counter little-endian.
fn noise_nonce(n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    nonce
}

/// Where an AEAD reads and writes: another buffer of the same length, or the
/// same buffer (AWS-LC allows input and output to alias exactly).
enum Io<'a> {
    Copy(&'a [u8], &'a mut [u8]),
    InPlace(&'a mut [u8]),
}

impl Io<'_> {
    /// Input pointer, output pointer, length.
    fn parts(self) -> (*const u8, *mut u8, usize) {
        match self {
            Io::Copy(src, dst) => {
                assert_eq!(src.len(), dst.len());
                (src.as_ptr(), dst.as_mut_ptr(), dst.len())
            }
            Io::InPlace(buf) => {
                // One pointer for both: AWS-LC reads and writes through it.
                let p = buf.as_mut_ptr();
                (p.cast_const(), p, buf.len())
            }
        }
    }
}

/// A ChaCha20-Poly1305 `EVP_AEAD_CTX` on the stack. aws-lc-rs's `UnboundKey`
/// puts one on the heap (`OPENSSL_malloc`) for every key; for this AEAD the
/// context is only the key copied into its state, so building one per call
/// costs a 32-byte copy. Zeroized on drop: it holds that key copy.
struct AeadCtx(sys::EVP_AEAD_CTX);

impl AeadCtx {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        aws_lc_rs::init();
        // SAFETY: EVP_AEAD_CTX is a C struct of a pointer, a byte union and
        // two bytes, for which all-zero bytes are valid (it is the state
        // `EVP_AEAD_CTX_zero` gives).
        let mut ctx = AeadCtx(unsafe { core::mem::zeroed() });
        // SAFETY: `ctx.0` is a valid, writable context; the key pointer comes
        // from 32 bytes, this AEAD's key length; ENGINE must be null. The
        // ChaCha20-Poly1305 init copies the key into the context and allocates
        // nothing; `EVP_aead_chacha20_poly1305` returns a static.
        let ok = unsafe {
            sys::EVP_AEAD_CTX_init(
                &mut ctx.0,
                sys::EVP_aead_chacha20_poly1305(),
                key.as_ptr(),
                KEY_LEN,
                TAG_LEN,
                ptr::null_mut(),
            )
        };
        // It fails only for a wrong key or tag length, which are constants.
        assert_eq!(ok, 1, "EVP_AEAD_CTX_init(ChaCha20-Poly1305) failed");
        ctx
    }
}

impl Drop for AeadCtx {
    fn drop(&mut self) {
        // SAFETY: the context is all-zero or initialized by
        // `EVP_AEAD_CTX_init` (which sets `aead`, null on failure), the two
        // states `EVP_AEAD_CTX_cleanup` accepts; for this AEAD it frees
        // nothing. Called once.
        unsafe { sys::EVP_AEAD_CTX_cleanup(&mut self.0) };
        // SAFETY: the pointer and length cover exactly this writable struct.
        // `OPENSSL_cleanse` is a memset the compiler cannot drop (an external
        // call, with a compiler barrier inside), one pass over the struct,
        // where `zeroize` writes them one volatile byte at a time (measured:
        // 73 ns more per call, a fifth of a 283-byte seal).
        unsafe {
            sys::OPENSSL_cleanse(
                ptr::from_mut(&mut self.0).cast(),
                core::mem::size_of::<sys::EVP_AEAD_CTX>(),
            )
        };
    }
}

/// Clears AWS-LC's thread-local error queue after a failed call, so that no
/// stale error is left for a later caller of AWS-LC to find.
fn clear_errors() {
    // SAFETY: no arguments; it only touches the calling thread's queue.
    unsafe { sys::ERR_clear_error() };
}

/// Encrypts `io` under `key` and `nonce`, and writes the tag into `tag`.
fn seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    io: Io<'_>,
    tag: &mut [u8],
) -> CipherResult<()> {
    assert_eq!(tag.len(), TAG_LEN);
    let ctx = AeadCtx::new(key);
    let (src, dst, len) = io.parts();
    let mut tag_len = 0usize;
    // SAFETY: `src` and `dst` are `len` bytes each, readable and writable
    // respectively, either disjoint or equal (`Io`); `tag` is 16 writable
    // bytes borrowed apart from them; nonce and ad are readable for their
    // lengths; no extra input. AWS-LC keeps no pointer after returning.
    let ok = unsafe {
        sys::EVP_AEAD_CTX_seal_scatter(
            &ctx.0,
            dst,
            tag.as_mut_ptr(),
            &mut tag_len,
            tag.len(),
            nonce.as_ptr(),
            nonce.len(),
            src,
            len,
            ptr::null(),
            0,
            ad.as_ptr(),
            ad.len(),
        )
    };
    if ok == 1 && tag_len == TAG_LEN {
        Ok(())
    } else {
        clear_errors();
        Err(CipherError::Encrypt)
    }
}

/// Decrypts `io` under `key` and `nonce` if `tag` authenticates it; on a
/// wrong tag AWS-LC zeroes the output.
fn open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    io: Io<'_>,
    tag: &[u8],
) -> CipherResult<()> {
    let ctx = AeadCtx::new(key);
    let (src, dst, len) = io.parts();
    // SAFETY: `src` and `dst` are `len` bytes each, readable and writable
    // respectively, either disjoint or equal (`Io`); `tag`, nonce and ad are
    // readable for their lengths and apart from `dst`. AWS-LC keeps no
    // pointer after returning.
    let ok = unsafe {
        sys::EVP_AEAD_CTX_open_gather(
            &ctx.0,
            dst,
            nonce.as_ptr(),
            nonce.len(),
            src,
            len,
            tag.as_ptr(),
            tag.len(),
            ad.as_ptr(),
            ad.len(),
        )
    };
    if ok == 1 {
        Ok(())
    } else {
        clear_errors();
        Err(CipherError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).unwrap()
    }

    /// RFC 8439 section 2.8.2: its nonce does not start with four zero
    /// bytes, so it goes through the raw path under the Noise encoding.
    #[test]
    fn rfc8439_aead_vector() {
        let key: [u8; 32] = unhex(
            "80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f
             90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f",
        )
        .try_into()
        .unwrap();
        let nonce: [u8; 12] = unhex("07 00 00 00 40 41 42 43 44 45 46 47")
            .try_into()
            .unwrap();
        let ad = unhex("50 51 52 53 c0 c1 c2 c3 c4 c5 c6 c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you \
                   only one tip for the future, sunscreen would be it.";
        let ct = unhex(
            "d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2
             a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
             3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b
             1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
             92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58
             fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
             3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b
             61 16",
        );
        let tag = unhex("1a e1 0b 59 4f 09 e2 6a 7e 90 2e cb d0 60 06 91");

        let mut out = vec![0u8; pt.len()];
        let mut out_tag = [0u8; 16];
        seal(&key, &nonce, &ad, Io::Copy(pt, &mut out), &mut out_tag).unwrap();
        assert_eq!(out, ct);
        assert_eq!(out_tag[..], tag[..]);

        let mut buf = pt.to_vec();
        seal(&key, &nonce, &ad, Io::InPlace(&mut buf), &mut out_tag).unwrap();
        assert_eq!(buf, ct);

        let mut back = vec![0u8; ct.len()];
        open(&key, &nonce, &ad, Io::Copy(&ct, &mut back), &tag).unwrap();
        assert_eq!(&back[..], &pt[..]);
        open(&key, &nonce, &ad, Io::InPlace(&mut buf), &tag).unwrap();
        assert_eq!(&buf[..], &pt[..]);

        let mut bad = tag.clone();
        bad[0] ^= 1;
        assert!(open(&key, &nonce, &ad, Io::Copy(&ct, &mut back), &bad).is_err());
        assert!(
            back.iter().all(|&b| b == 0),
            "no plaintext after a wrong tag"
        );
    }

    #[test]
    fn noise_nonce_layout() {
        assert_eq!(
            noise_nonce(0x0102_0304_0506_0708),
            [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
        );
    }
}

/// The host provider: AWS-LC's X25519 and ChaCha20-Poly1305 under the core's
/// Noise engine (see [`securecom_core::crypto`]). The core's vectors, the
/// `snow` interop and a differential test against RustCrypto run on it
/// (`tests/provider_*.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AwsLc;

impl securecom_core::CryptoProvider for AwsLc {
    const NAME: &'static str = "aws-lc-rs";
    type Dh = AwsLcX25519;
    type Cipher = AwsLcChaChaPoly;
    // Until AWS-LC's ML-KEM is wired in: the portable one.
    type Kem = securecom_core::kem::Fips203MlKem768;
}
