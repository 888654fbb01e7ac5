//! The host crypto provider's primitives: X25519, ChaCha20-Poly1305 and
//! ML-KEM-768 from AWS-LC, as drop-in replacements for clatter's
//! RustCrypto-based [`X25519`](clatter::crypto::dh::X25519) and
//! [`ChaChaPoly`](clatter::crypto::cipher::ChaChaPoly) and for the core's
//! portable [`Fips203MlKem768`](securecom_core::kem::Fips203MlKem768).
//!
//! [`AwsLcX25519`] and [`AwsLcChaChaPoly`] implement clatter's [`Dh`] and
//! [`Cipher`] with the same types, names and bytes as clatter's own (the tests
//! in `tests/crypto_provider.rs` check them against each other, the RFC 7748
//! and RFC 8439 vectors, and whole handshakes with one side on each), so a
//! Noise engine can take either. [`AwsLcMlKem768`] implements clatter's
//! [`Kem`] under the core's contract
//! ([`MlKem768`](securecom_core::crypto::MlKem768)): the same bytes as
//! `fips203` from the same randomness, the same refusals (checked on the
//! FIPS 203 vectors in `tests/provider_conformance.rs`, and against
//! `fips203` on random, tampered and malformed inputs and in PQNoise
//! handshakes in `tests/crypto_provider.rs`).
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
//! # Why AWS-LC's ML-KEM
//!
//! - It is four times as fast as `fips203` (figures below): the KEM work of
//!   one hybrid handshake (a key generation, an encapsulation, a
//!   decapsulation) drops from 208 µs to 50 µs, where with `fips203` it would
//!   cost more than the whole classical `Noise_XX` on AWS-LC (200 µs).
//! - It is [mlkem-native] (the PQ Code Package's ML-KEM), picking its code at
//!   run time as the rest of AWS-LC does: with AVX2 and BMI2, its AVX2
//!   assembly for the polynomial arithmetic and s2n-bignum's 4-way AVX2
//!   Keccak for the matrix expansion; C otherwise. Its sources carry CBMC
//!   contracts (memory and type safety of the C) and name, for each of its
//!   20 x86-64 AVX2 routines, the HOL Light proof of its functional
//!   correctness in mlkem-native's repository. In a profile, about two
//!   thirds of its time is Keccak; `malloc` and `free` for the EVP objects
//!   below, a percent or two.
//! - It makes the FIPS 203 input checks itself: the modulus check of an
//!   encapsulation key (section 7.2) in `mlk_kem_enc_derand`, the hash check
//!   of a decapsulation key (7.3) in `mlk_kem_dec`. Decapsulation adds, here,
//!   the two further checks `fips203` makes (every coefficient of `dk_PKE`
//!   and of the embedded `ek` below q; 0.65 µs), so that the providers refuse
//!   exactly the same keys.
//! - aws-lc-rs's safe `kem` API draws its randomness from AWS-LC's RNG, with
//!   no seeded variant, which the contract (one use of the caller's RNG, the
//!   same bytes on every provider) rules out. [`AwsLcMlKem768`] calls
//!   AWS-LC's deterministic EVP functions instead
//!   (`EVP_PKEY_keygen_deterministic`, `EVP_PKEY_encapsulate_deterministic`,
//!   declared only in aws-lc-sys's per-target bindings, hence its
//!   "all-bindings" feature in `Cargo.toml`), with an `EVP_PKEY` and an
//!   `EVP_PKEY_CTX` per call, freed by guards on every path (AWS-LC wipes
//!   its copies of keys and seeds as it frees them). The safe API builds the
//!   same objects: it measured no faster (below).
//!
//! # Raw calls rather than aws-lc-rs's safe API
//!
//! For X25519 and ChaCha20-Poly1305, both would cost more per call, here
//! where every call brings its own key:
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
//! ML-KEM-768, the same build and machine (best of three runs; both draw
//! their randomness from the same ChaCha20 RNG, included):
//!
//! | operation        | `fips203` (RustCrypto provider) | AWS-LC (here) | ratio | aws-lc-rs safe API |
//! |------------------|--------------------------------:|--------------:|------:|-------------------:|
//! | key generation   |                         59.5 µs |       15.3 µs |   3.9 |            14.8 µs |
//! | encapsulation    |                           64 µs |       15.2 µs |   4.2 |            15.9 µs |
//! | decapsulation    |                           84 µs |       19.9 µs |   4.2 |            19.0 µs |
//! | all three        |                          208 µs |       50.4 µs |   4.1 |                    |
//!
//! The safe API's rows use AWS-LC's own RNG (not seeded), and build their
//! keys from bytes as [`AwsLcMlKem768`] does (`EncapsulationKey::new`,
//! `DecapsulationKey::new`); its decapsulation skips the 0.65 µs of
//! coefficient checks above.
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
//! [mlkem-native]: https://github.com/pq-code-package/mlkem-native

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::ptr::{self, NonNull};

use aws_lc_sys as sys;
use clatter::bytearray::SensitiveByteArray;
use clatter::error::{CipherError, CipherResult, DhResult, KemError, KemResult};
use clatter::traits::{Cipher, CryptoComponent, Dh, Kem, Rng};
use clatter::KeyPair;
use securecom_core::kem::{CIPHERTEXT_LEN, PUBLIC_KEY_LEN, SECRET_KEY_LEN, SHARED_SECRET_LEN};
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

// ------------------------------------------------------------ ML-KEM-768 --

/// Bytes of `d || z`, the seed of `ML-KEM.KeyGen_internal`.
const KEYGEN_SEED_LEN: usize = 64;
/// Bytes of `m`, the seed of `ML-KEM.Encaps_internal`.
const ENCAPS_SEED_LEN: usize = 32;

/// ML-KEM-768 (FIPS 203) from AWS-LC (its copy of mlkem-native),
/// interchangeable with the portable
/// [`Fips203MlKem768`](securecom_core::kem::Fips203MlKem768): the same
/// types, name, use of randomness, refusals and bytes for every input (the
/// contract of [`securecom_core::crypto::MlKem768`]).
///
/// It goes through AWS-LC's deterministic EVP entry points
/// (`EVP_PKEY_keygen_deterministic`, `EVP_PKEY_encapsulate_deterministic`),
/// which take the randomness from the caller: aws-lc-rs's safe `kem` API
/// only has the variants that draw it from AWS-LC's own RNG, which would
/// break the seeded, byte-for-byte agreement between providers.
///
/// The checks of FIPS 203 section 7 are AWS-LC's own: mlkem-native's
/// `mlk_kem_enc_derand` runs the modulus check (7.2) on the encapsulation
/// key before using it, and `mlk_kem_dec` the hash check (7.3) on the
/// decapsulation key. Both are that function's only possible failure (its
/// buffers are on the stack, the lengths are checked before), so a refusal
/// there is reported as `KemError::Input`. Decapsulation also refuses, as
/// `fips203` does and AWS-LC does not, a decapsulation key with an
/// unreduced coefficient in `dk_PKE` or in its embedded `ek`: the two
/// providers then refuse exactly the same inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLcMlKem768;

impl CryptoComponent for AwsLcMlKem768 {
    fn name() -> &'static str {
        "MLKEM768"
    }
}

impl securecom_core::crypto::MlKem768 for AwsLcMlKem768 {
    /// AWS-LC's key generation (the host's stack is not the constraint).
    fn keygen_into(seed: &[u8; KEYGEN_SEED_LEN], sk: &mut [u8; SECRET_KEY_LEN]) -> KemResult<()> {
        let kp = mlkem_keygen(seed)?;
        sk.copy_from_slice(&kp.secret[..]);
        Ok(())
    }
}

impl Kem for AwsLcMlKem768 {
    type SecretKey = SensitiveByteArray<[u8; SECRET_KEY_LEN]>;
    type PubKey = [u8; PUBLIC_KEY_LEN];
    type Ct = [u8; CIPHERTEXT_LEN];
    type Ss = SensitiveByteArray<[u8; SHARED_SECRET_LEN]>;

    /// `ML-KEM.KeyGen_internal(d, z)` with `d || z` drawn from `rng` in one
    /// call, as the portable KEM draws it.
    fn genkey_rng<R: Rng>(rng: &mut R) -> KemResult<KeyPair<Self::PubKey, Self::SecretKey>> {
        let mut seed = SensitiveByteArray::new([0u8; KEYGEN_SEED_LEN]);
        rng.try_fill_bytes(&mut seed[..])
            .map_err(|_| KemError::KeyGeneration)?;
        mlkem_keygen(&seed)
    }

    /// `ML-KEM.Encaps_internal(ek, m)` with `m` drawn from `rng` (first, as
    /// the portable KEM does, whatever `pk`); the key is checked by AWS-LC
    /// (FIPS 203 section 7.2).
    fn encapsulate<R: Rng>(pk: &[u8], rng: &mut R) -> KemResult<(Self::Ct, Self::Ss)> {
        let mut m = SensitiveByteArray::new([0u8; ENCAPS_SEED_LEN]);
        rng.try_fill_bytes(&mut m[..])
            .map_err(|_| KemError::Encapsulation)?;
        mlkem_encapsulate(pk, &m)
    }

    /// `ML-KEM.Decaps` after the key's checks (its hash, FIPS 203 section
    /// 7.3, and its coefficients); a wrong ciphertext gives the
    /// implicit-rejection secret, not an error.
    fn decapsulate(ct: &[u8], sk: &[u8]) -> KemResult<Self::Ss> {
        mlkem_decapsulate(ct, sk)
    }
}

/// An `EVP_PKEY` this code owns: freed on drop. `EVP_PKEY_free` frees the
/// key's buffers with `OPENSSL_free`, which wipes them (`OPENSSL_cleanse`
/// over the whole allocation) first, so AWS-LC's copies of a secret key or
/// a seed do not outlive the call either.
struct Pkey(NonNull<sys::EVP_PKEY>);

impl Pkey {
    /// Takes ownership of `p`, which an AWS-LC constructor returned; `None`
    /// if it is null (the constructor failed).
    fn from_raw(p: *mut sys::EVP_PKEY) -> Option<Self> {
        NonNull::new(p).map(Pkey)
    }

    fn as_ptr(&self) -> *mut sys::EVP_PKEY {
        self.0.as_ptr()
    }

    /// An ML-KEM-768 key holding a copy of `bytes`, the encapsulation key
    /// (`secret == false`) or the decapsulation key. AWS-LC checks only the
    /// length here; the key itself is checked where it is used.
    fn mlkem768(bytes: &[u8], secret: bool) -> Option<Self> {
        // SAFETY: `bytes` is readable for `bytes.len()` bytes, which AWS-LC
        // compares with the key length before copying that many
        // (`OPENSSL_memdup`); it keeps no pointer to them. The result is null
        // or a new key that nothing else owns.
        let p = unsafe {
            if secret {
                sys::EVP_PKEY_kem_new_raw_secret_key(sys::NID_MLKEM768, bytes.as_ptr(), bytes.len())
            } else {
                sys::EVP_PKEY_kem_new_raw_public_key(sys::NID_MLKEM768, bytes.as_ptr(), bytes.len())
            }
        };
        Pkey::from_raw(p)
    }
}

impl Drop for Pkey {
    fn drop(&mut self) {
        // SAFETY: the pointer is a live `EVP_PKEY` we hold one reference to
        // (from its constructor), released exactly once, here.
        unsafe { sys::EVP_PKEY_free(self.as_ptr()) };
    }
}

/// An `EVP_PKEY_CTX` this code owns: freed on drop (which also drops the
/// context's reference to its key).
struct PkeyCtx(NonNull<sys::EVP_PKEY_CTX>);

impl PkeyCtx {
    /// A context for ML-KEM-768 key generation.
    fn mlkem768_keygen() -> Option<Self> {
        // SAFETY: no pointer arguments but the ENGINE, which must be null.
        // The result is null or a new context that nothing else owns.
        let ctx = PkeyCtx(NonNull::new(unsafe {
            sys::EVP_PKEY_CTX_new_id(sys::EVP_PKEY_KEM, ptr::null_mut())
        })?);
        // SAFETY: `ctx` is a live KEM context (`EVP_PKEY_KEM` gives the KEM
        // method, whose context data `EVP_PKEY_CTX_kem_set_params` sets);
        // the NID selects a static `KEM`.
        if unsafe { sys::EVP_PKEY_CTX_kem_set_params(ctx.as_ptr(), sys::NID_MLKEM768) } != 1 {
            return None;
        }
        // SAFETY: `ctx` is a live context; this only sets its operation.
        if unsafe { sys::EVP_PKEY_keygen_init(ctx.as_ptr()) } != 1 {
            return None;
        }
        Some(ctx)
    }

    /// A context operating with `key`. It takes its own reference to the
    /// key, so it does not borrow `key`.
    fn for_key(key: &Pkey) -> Option<Self> {
        // SAFETY: `key` is a live `EVP_PKEY`, which the new context up-refs;
        // the ENGINE must be null. The result is null or a new context that
        // nothing else owns.
        let p = unsafe { sys::EVP_PKEY_CTX_new(key.as_ptr(), ptr::null_mut()) };
        NonNull::new(p).map(PkeyCtx)
    }

    fn as_ptr(&self) -> *mut sys::EVP_PKEY_CTX {
        self.0.as_ptr()
    }
}

impl Drop for PkeyCtx {
    fn drop(&mut self) {
        // SAFETY: the pointer is a live context we own, freed exactly once,
        // here; freeing it releases its reference to its key.
        unsafe { sys::EVP_PKEY_CTX_free(self.as_ptr()) };
    }
}

/// `ML-KEM.KeyGen_internal(d, z)`, `seed = d || z` (the layout AWS-LC's
/// deterministic key generation reads: mlkem-native's
/// `mlk_kem_keypair_derand` takes `d` from the first 32 bytes and puts the
/// last 32, `z`, at the end of the decapsulation key).
fn mlkem_keygen(
    seed: &[u8; KEYGEN_SEED_LEN],
) -> KemResult<KeyPair<[u8; PUBLIC_KEY_LEN], SensitiveByteArray<[u8; SECRET_KEY_LEN]>>> {
    aws_lc_rs::init();
    let out = mlkem_keygen_inner(seed);
    if out.is_err() {
        clear_errors();
    }
    out
}

fn mlkem_keygen_inner(
    seed: &[u8; KEYGEN_SEED_LEN],
) -> KemResult<KeyPair<[u8; PUBLIC_KEY_LEN], SensitiveByteArray<[u8; SECRET_KEY_LEN]>>> {
    let fail = || KemError::KeyGeneration;
    let ctx = PkeyCtx::mlkem768_keygen().ok_or_else(fail)?;
    let mut raw: *mut sys::EVP_PKEY = ptr::null_mut();
    let mut seed_len = seed.len();
    // SAFETY: `ctx` is a live ML-KEM-768 context initialized for key
    // generation; `raw` is a writable null pointer, so AWS-LC allocates the
    // key into it (and frees it and sets it back to null on failure);
    // `seed` is readable for `seed_len` (64) bytes, the length AWS-LC
    // requires before reading them, and copied, not kept.
    let ok = unsafe {
        sys::EVP_PKEY_keygen_deterministic(ctx.as_ptr(), &mut raw, seed.as_ptr(), &mut seed_len)
    };
    // Owned from here, whatever `ok` says, so it is freed on every path.
    let key = Pkey::from_raw(raw);
    let key = key.filter(|_| ok == 1).ok_or_else(fail)?;

    let mut public = [0u8; PUBLIC_KEY_LEN];
    let mut len = public.len();
    // SAFETY: `key` is a live KEM key; `public` is writable for `len`
    // bytes, which AWS-LC checks against the key length before copying and
    // then sets to the length written.
    let ok =
        unsafe { sys::EVP_PKEY_get_raw_public_key(key.as_ptr(), public.as_mut_ptr(), &mut len) };
    if ok != 1 || len != PUBLIC_KEY_LEN {
        return Err(fail());
    }
    // Zeroized on drop, on the error path too.
    let mut secret = SensitiveByteArray::new([0u8; SECRET_KEY_LEN]);
    let mut len = secret.len();
    // SAFETY: as above, with `secret`, writable for `len` bytes. The raw
    // private key of an ML-KEM key is its FIPS 203 decapsulation key (the
    // 2400 bytes `dk_PKE || ek || H(ek) || z`), not the seed.
    let ok =
        unsafe { sys::EVP_PKEY_get_raw_private_key(key.as_ptr(), secret.as_mut_ptr(), &mut len) };
    if ok != 1 || len != SECRET_KEY_LEN {
        return Err(fail());
    }
    Ok(KeyPair { public, secret })
}

/// `ML-KEM.Encaps_internal(ek, m)` after AWS-LC's modulus check of `pk`
/// (FIPS 203 section 7.2).
fn mlkem_encapsulate(
    pk: &[u8],
    m: &[u8; ENCAPS_SEED_LEN],
) -> KemResult<(
    [u8; CIPHERTEXT_LEN],
    SensitiveByteArray<[u8; SHARED_SECRET_LEN]>,
)> {
    if pk.len() != PUBLIC_KEY_LEN {
        return Err(KemError::Input);
    }
    aws_lc_rs::init();
    let out = mlkem_encapsulate_inner(pk, m);
    if out.is_err() {
        clear_errors();
    }
    out
}

fn mlkem_encapsulate_inner(
    pk: &[u8],
    m: &[u8; ENCAPS_SEED_LEN],
) -> KemResult<(
    [u8; CIPHERTEXT_LEN],
    SensitiveByteArray<[u8; SHARED_SECRET_LEN]>,
)> {
    let key = Pkey::mlkem768(pk, false).ok_or(KemError::Encapsulation)?;
    let ctx = PkeyCtx::for_key(&key).ok_or(KemError::Encapsulation)?;
    let mut ct = [0u8; CIPHERTEXT_LEN];
    let mut ct_len = ct.len();
    let mut ss = SensitiveByteArray::new([0u8; SHARED_SECRET_LEN]);
    let mut ss_len = ss.len();
    let mut m_len = m.len();
    // SAFETY: `ctx` is a live context holding an ML-KEM-768 public key;
    // `ct` and `ss` are writable for `ct_len` and `ss_len` bytes (AWS-LC
    // checks both against the KEM's sizes before writing) and apart from
    // each other and from `m`, readable for `m_len` (32) bytes, the seed
    // length AWS-LC requires. It keeps no pointer after returning.
    let ok = unsafe {
        sys::EVP_PKEY_encapsulate_deterministic(
            ctx.as_ptr(),
            ct.as_mut_ptr(),
            &mut ct_len,
            ss.as_mut_ptr(),
            &mut ss_len,
            m.as_ptr(),
            &mut m_len,
        )
    };
    if ok != 1 {
        // The modulus check, the only way it can fail here.
        return Err(KemError::Input);
    }
    if ct_len != CIPHERTEXT_LEN || ss_len != SHARED_SECRET_LEN {
        return Err(KemError::Encapsulation);
    }
    Ok((ct, ss))
}

/// Bytes of the 12-bit encoded vector of polynomials in a key (`k = 3`
/// polynomials of 256 coefficients): `dk_PKE`, and `ek` before its `rho`.
const POLYVEC_LEN: usize = 384 * 3;

/// Whether every 12-bit coefficient encoded in `bytes` (two per three bytes,
/// little-endian; `bytes` a multiple of 24 long) is below q = 3329.
/// Constant-time: it runs over secret `dk_PKE` too. Sixteen coefficients
/// per three 64-bit words: 0.65 µs for the two vectors of a decapsulation
/// key, where one three-byte group at a time took 1.75 µs.
fn coefficients_reduced(bytes: &[u8]) -> bool {
    const Q_MINUS_1: u64 = 3328;
    const MASK: u64 = 0xfff;
    let mut out_of_range = 0u64;
    for c in bytes.chunks_exact(24) {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[8 * i..8 * i + 8]);
            u64::from_le_bytes(w)
        };
        let (w0, w1, w2) = (word(0), word(1), word(2));
        // The coefficients start at bits 0, 12, ..., 180 of w2:w1:w0.
        let coefficients = [
            w0,
            w0 >> 12,
            w0 >> 24,
            w0 >> 36,
            w0 >> 48,
            (w0 >> 60) | (w1 << 4),
            w1 >> 8,
            w1 >> 20,
            w1 >> 32,
            w1 >> 44,
            (w1 >> 56) | (w2 << 8),
            w2 >> 4,
            w2 >> 16,
            w2 >> 28,
            w2 >> 40,
            w2 >> 52,
        ];
        for x in coefficients {
            // (q - 1) - x wraps, setting bit 63, exactly when x >= q.
            out_of_range |= Q_MINUS_1.wrapping_sub(x & MASK);
        }
    }
    out_of_range >> 63 == 0
}

const _: () = assert!(POLYVEC_LEN.is_multiple_of(24));

/// `ML-KEM.Decaps(dk, c)` after AWS-LC's hash check of `dk` (FIPS 203
/// section 7.3) and two checks of its own that the portable KEM (`fips203`)
/// also makes, so that both refuse the same keys: the coefficients of
/// `dk_PKE` and of the embedded `ek` must be reduced (AWS-LC would reduce
/// them as it decodes, and return a secret).
fn mlkem_decapsulate(
    ct: &[u8],
    sk: &[u8],
) -> KemResult<SensitiveByteArray<[u8; SHARED_SECRET_LEN]>> {
    if ct.len() != CIPHERTEXT_LEN || sk.len() != SECRET_KEY_LEN {
        return Err(KemError::Input);
    }
    let (dk_pke, rest) = sk.split_at(POLYVEC_LEN);
    // Both in one go, so that the time does not tell which failed.
    if !(coefficients_reduced(dk_pke) & coefficients_reduced(&rest[..POLYVEC_LEN])) {
        return Err(KemError::Input);
    }
    aws_lc_rs::init();
    let out = mlkem_decapsulate_inner(ct, sk);
    if out.is_err() {
        clear_errors();
    }
    out
}

fn mlkem_decapsulate_inner(
    ct: &[u8],
    sk: &[u8],
) -> KemResult<SensitiveByteArray<[u8; SHARED_SECRET_LEN]>> {
    // AWS-LC's copy of `sk` is wiped when `key` is freed (see `Pkey`).
    let key = Pkey::mlkem768(sk, true).ok_or(KemError::Decapsulation)?;
    let ctx = PkeyCtx::for_key(&key).ok_or(KemError::Decapsulation)?;
    let mut ss = SensitiveByteArray::new([0u8; SHARED_SECRET_LEN]);
    let mut ss_len = ss.len();
    // SAFETY: `ctx` is a live context holding an ML-KEM-768 secret key;
    // `ss` is writable for `ss_len` bytes (checked by AWS-LC before it
    // writes) and apart from `ct`, readable for `ct.len()` bytes, which
    // AWS-LC requires to be the ciphertext length (1088) before reading. It
    // keeps no pointer after returning.
    let ok = unsafe {
        sys::EVP_PKEY_decapsulate(
            ctx.as_ptr(),
            ss.as_mut_ptr(),
            &mut ss_len,
            ct.as_ptr(),
            ct.len(),
        )
    };
    if ok != 1 {
        // The hash check, the only way it can fail here.
        return Err(KemError::Input);
    }
    if ss_len != SHARED_SECRET_LEN {
        return Err(KemError::Decapsulation);
    }
    Ok(ss)
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

    /// The word-wise check against one coefficient at a time, with each
    /// coefficient in turn set to the values around q.
    #[test]
    fn coefficients_reduced_matches_the_definition() {
        fn naive(bytes: &[u8]) -> bool {
            bytes.chunks_exact(3).all(|c| {
                let a = u16::from(c[0]) | (u16::from(c[1] & 0x0f) << 8);
                let b = u16::from(c[1] >> 4) | (u16::from(c[2]) << 4);
                a < 3329 && b < 3329
            })
        }
        fn set(key: &mut [u8], j: usize, v: u16) {
            let b = j / 2 * 3;
            if j % 2 == 1 {
                key[b + 1] = (key[b + 1] & 0x0f) | ((v << 4) as u8);
                key[b + 2] = (v >> 4) as u8;
            } else {
                key[b] = v as u8;
                key[b + 1] = (key[b + 1] & 0xf0) | (v >> 8) as u8;
            }
        }
        let base = [0x55u8; POLYVEC_LEN];
        assert!(coefficients_reduced(&base) && naive(&base));
        for j in 0..768 {
            for v in [0, 1, 3327, 3328, 3329, 3330, 4000, 4095] {
                let mut key = base;
                set(&mut key, j, v);
                assert_eq!(coefficients_reduced(&key), v < 3329, "{j} = {v}");
                assert_eq!(naive(&key), v < 3329);
            }
        }
        for fill in [0x00, 0xcf, 0xd0, 0xff] {
            let key = [fill; POLYVEC_LEN];
            assert_eq!(coefficients_reduced(&key), naive(&key), "{fill:#x}");
        }
    }

    #[test]
    fn noise_nonce_layout() {
        assert_eq!(
            noise_nonce(0x0102_0304_0506_0708),
            [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
        );
    }
}

/// The host provider: AWS-LC's X25519, ChaCha20-Poly1305 and ML-KEM-768
/// under the core's Noise engine (see [`securecom_core::crypto`]). The core's vectors, the
/// `snow` interop and a differential test against RustCrypto run on it
/// (`tests/provider_*.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AwsLc;

impl securecom_core::CryptoProvider for AwsLc {
    const NAME: &'static str = "aws-lc-rs";
    type Dh = AwsLcX25519;
    type Cipher = AwsLcChaChaPoly;
    type Kem = AwsLcMlKem768;
}
