//! Server certificates and revocation lists, signed by a CA's Ed25519 key.
//!
//! Instead of pinning the server's static X25519 key, a client may trust a
//! CA's Ed25519 public key. The server then sends a certificate in its
//! handshake message (`ServerHello.certificate`), and the client accepts the
//! server only if [`verify`] passes: the certificate is signed by the CA,
//! names the server the client dialled, is within its validity period (when
//! the client knows the time), is not on the client's revocation list, and
//! certifies the very static key the server used in the handshake.
//!
//! # Encoding (`docs/PROTOCOL.md`, section 4.8)
//! A certificate is `postcard(CertificateBody) || signature` (64 bytes), the
//! signature being Ed25519 over `"secureCom/1/certificate" || postcard(body)`
//! (the body bytes exactly as sent). A revocation list is
//! `postcard(RevocationBody) || signature` over
//! `"secureCom/1/revocation" || postcard(body)`. Verification uses
//! `verify_strict` (no malleable signatures, no weak CA keys).
//!
//! # No clock
//! The core reads no clock: the driver puts the current Unix time in
//! [`CaTrust::now`]. A device without a clock passes `None` and the validity
//! period is then **not** checked (everything else is); see the protocol
//! document for what that means.

#[cfg(feature = "certificates")]
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

#[cfg(feature = "certificates")]
use crate::buf::Writer;
use crate::keys::PublicKey;

/// Certificate and revocation-list format version.
pub const CERT_VERSION: u8 = 1;

/// Signature domain of a certificate.
pub const CERT_LABEL: &[u8] = b"secureCom/1/certificate";

/// Signature domain of a revocation list.
pub const REVOCATION_LABEL: &[u8] = b"secureCom/1/revocation";

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Longest server name in a certificate, in bytes.
pub const MAX_SERVER_NAME: usize = 64;

/// Largest encoded certificate: a body with the longest name and 10-byte
/// varints, and the signature.
pub const MAX_CERTIFICATE: usize = 1 + 1 + MAX_SERVER_NAME + 32 + 3 * 10 + SIGNATURE_LEN;

/// Most serials in one revocation list (and in a client's [`CaTrust`]).
pub const MAX_REVOKED: usize = 32;

/// Largest encoded revocation list.
pub const MAX_REVOCATION_LIST: usize = 1 + 10 + 1 + MAX_REVOKED * 10 + SIGNATURE_LEN;

/// Room for `label || body` of the largest signed object.
#[cfg(feature = "certificates")]
const SIGNED_BUF: usize = CERT_LABEL.len() + MAX_REVOCATION_LIST;

/// A server name as certified: what the client dialled.
pub type ServerName = heapless::String<MAX_SERVER_NAME>;

/// The set of revoked serials a client holds.
pub type RevokedSerials = heapless::Vec<u64, MAX_REVOKED>;

/// Why a certificate (or revocation list) was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CertError {
    /// The server sent no certificate, but the client requires one.
    Missing,
    /// The bytes are not a certificate (or revocation list) of this format.
    Malformed,
    /// Another format version.
    UnsupportedVersion,
    /// The CA key is not a valid Ed25519 public key.
    BadCaKey,
    /// The signature is not the CA's.
    BadSignature,
    /// The certificate names another server than the one dialled.
    WrongName,
    /// The certificate's validity period has not begun.
    NotYetValid,
    /// The certificate's validity period is over.
    Expired,
    /// The certificate's serial is on the revocation list.
    Revoked,
    /// The certificate is for another static key than the handshake's.
    WrongKey,
    /// A field is out of bounds (name syntax, period, too many serials, buffer).
    OutOfBounds,
}

impl core::fmt::Display for CertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CertError::Missing => "the server sent no certificate",
            CertError::Malformed => "the certificate is malformed",
            CertError::UnsupportedVersion => "unsupported certificate version",
            CertError::BadCaKey => "the CA key is not a valid Ed25519 key",
            CertError::BadSignature => "the certificate is not signed by the trusted CA",
            CertError::WrongName => "the certificate names another server",
            CertError::NotYetValid => "the certificate is not valid yet",
            CertError::Expired => "the certificate has expired",
            CertError::Revoked => "the certificate has been revoked",
            CertError::WrongKey => "the certificate is for another server key",
            CertError::OutOfBounds => "a certificate field is out of bounds",
        })
    }
}

/// Checks a server name's syntax: 1 to 64 bytes of `[a-z0-9.:-]` (a lower-case
/// DNS name or an IP address literal).
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVER_NAME
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b':'))
}

/// A CA's Ed25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct CaPublicKey(pub [u8; 32]);

/// The signed fields of a certificate. Times are Unix seconds (UTC); the
/// certificate is valid for `not_before <= now <= not_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateBody<'a> {
    /// [`CERT_VERSION`].
    pub version: u8,
    /// The server's name, as clients dial it (see [`valid_server_name`]).
    pub server_name: &'a str,
    /// The server's static X25519 key.
    pub static_key: PublicKey,
    /// The CA's serial number for this certificate (for revocation).
    pub serial: u64,
    /// Start of validity, Unix seconds.
    pub not_before: u64,
    /// End of validity (inclusive), Unix seconds.
    pub not_after: u64,
}

/// The signed fields of a revocation list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationBody {
    /// [`CERT_VERSION`].
    pub version: u8,
    /// When the CA issued this list, Unix seconds.
    pub issued_at: u64,
    /// The revoked certificate serials.
    pub serials: RevokedSerials,
}

/// What a client trusts instead of a pinned key, and what it checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaTrust {
    /// The CA's public key.
    pub ca_key: CaPublicKey,
    /// The name of the server the client dialled.
    pub server_name: ServerName,
    /// The current Unix time, if the driver has a clock; `None` (a device
    /// without a clock): the validity period is not checked.
    pub now: Option<u64>,
    /// Serials of revoked certificates (from a verified [`RevocationBody`]).
    pub revoked: RevokedSerials,
}

/// Splits `bytes` into the postcard body and the trailing 64-byte signature.
fn split(bytes: &[u8]) -> Result<(&[u8], [u8; SIGNATURE_LEN]), CertError> {
    match bytes.split_last_chunk::<SIGNATURE_LEN>() {
        Some((body, sig)) if !body.is_empty() => Ok((body, *sig)),
        _ => Err(CertError::Malformed),
    }
}

#[cfg(feature = "certificates")]
fn check_signature(
    ca: &CaPublicKey,
    label: &[u8],
    body: &[u8],
    sig: &[u8; SIGNATURE_LEN],
) -> Result<(), CertError> {
    let sig = Signature::from_bytes(sig);
    let key = VerifyingKey::from_bytes(&ca.0).map_err(|_| CertError::BadCaKey)?;
    if key.is_weak() {
        return Err(CertError::BadCaKey);
    }
    // The signed message is label || body.
    let mut msg = [0u8; SIGNED_BUF];
    let msg = signed_message(&mut msg, label, body)?;
    key.verify_strict(msg, &sig)
        .map_err(|_| CertError::BadSignature)
}

/// `label || body` in `buf`: the bytes a signature covers.
#[cfg(feature = "certificates")]
fn signed_message<'a>(
    buf: &'a mut [u8; SIGNED_BUF],
    label: &[u8],
    body: &[u8],
) -> Result<&'a [u8], CertError> {
    let mut w = Writer::new(buf);
    w.put(label).ok_or(CertError::OutOfBounds)?;
    w.put(body).ok_or(CertError::OutOfBounds)?;
    Ok(w.into_written())
}

fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CertError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        _ => Err(CertError::Malformed),
    }
}

fn check_body(body: &CertificateBody<'_>) -> Result<(), CertError> {
    if body.version != CERT_VERSION {
        return Err(CertError::UnsupportedVersion);
    }
    if !valid_server_name(body.server_name) || body.not_before > body.not_after {
        return Err(CertError::OutOfBounds);
    }
    Ok(())
}

/// Decodes a certificate **without checking its signature** (to show it).
pub fn decode_certificate(bytes: &[u8]) -> Result<CertificateBody<'_>, CertError> {
    if bytes.len() > MAX_CERTIFICATE {
        return Err(CertError::Malformed);
    }
    let (body, _) = split(bytes)?;
    let body: CertificateBody<'_> = decode_exact(body)?;
    check_body(&body)?;
    Ok(body)
}

#[cfg(feature = "certificates")]
/// Checks a certificate's signature by `ca`; returns its fields.
pub fn verify_signature<'a>(
    bytes: &'a [u8],
    ca: &CaPublicKey,
) -> Result<CertificateBody<'a>, CertError> {
    if bytes.len() > MAX_CERTIFICATE {
        return Err(CertError::Malformed);
    }
    let (raw, sig) = split(bytes)?;
    let body: CertificateBody<'_> = decode_exact(raw)?;
    if body.version != CERT_VERSION {
        return Err(CertError::UnsupportedVersion);
    }
    check_signature(ca, CERT_LABEL, raw, &sig)?;
    check_body(&body)?;
    Ok(body)
}

#[cfg(feature = "certificates")]
/// The client's whole check of a server certificate, in this order: the CA's
/// signature, the name, the validity period (only if `trust.now` is known),
/// the revocation list, and the binding to `handshake_key` (the static key
/// the server proved in the handshake).
pub fn verify<'a>(
    bytes: &'a [u8],
    trust: &CaTrust,
    handshake_key: &PublicKey,
) -> Result<CertificateBody<'a>, CertError> {
    let body = verify_signature(bytes, &trust.ca_key)?;
    if body.server_name != trust.server_name.as_str() {
        return Err(CertError::WrongName);
    }
    if let Some(now) = trust.now {
        if now < body.not_before {
            return Err(CertError::NotYetValid);
        }
        if now > body.not_after {
            return Err(CertError::Expired);
        }
    }
    if trust.revoked.contains(&body.serial) {
        return Err(CertError::Revoked);
    }
    if body.static_key != *handshake_key {
        return Err(CertError::WrongKey);
    }
    Ok(body)
}

#[cfg(feature = "certificates")]
/// Checks a revocation list's signature by `ca`; returns its fields.
pub fn verify_revocation_list(bytes: &[u8], ca: &CaPublicKey) -> Result<RevocationBody, CertError> {
    if bytes.len() > MAX_REVOCATION_LIST {
        return Err(CertError::Malformed);
    }
    let (raw, sig) = split(bytes)?;
    let body: RevocationBody = decode_exact(raw)?;
    if body.version != CERT_VERSION {
        return Err(CertError::UnsupportedVersion);
    }
    check_signature(ca, REVOCATION_LABEL, raw, &sig)?;
    Ok(body)
}

// ---------------------------------------------------------------- the CA's side

#[cfg(feature = "certificates")]
/// The CA's public key for its 32-byte Ed25519 secret seed.
pub fn ca_public_key(seed: &[u8; 32]) -> CaPublicKey {
    CaPublicKey(SigningKey::from_bytes(seed).verifying_key().to_bytes())
}

#[cfg(feature = "certificates")]
fn sign_into<T: Serialize>(
    seed: &[u8; 32],
    label: &[u8],
    body: &T,
    out: &mut [u8],
) -> Result<usize, CertError> {
    let n = postcard::to_slice(body, out)
        .map_err(|_| CertError::OutOfBounds)?
        .len();
    let (encoded, rest) = out.split_at_mut_checked(n).ok_or(CertError::OutOfBounds)?;
    let sig_out = rest
        .first_chunk_mut::<SIGNATURE_LEN>()
        .ok_or(CertError::OutOfBounds)?;
    let total = n.checked_add(SIGNATURE_LEN).ok_or(CertError::OutOfBounds)?;
    let mut msg = [0u8; SIGNED_BUF];
    let msg = signed_message(&mut msg, label, encoded)?;
    *sig_out = SigningKey::from_bytes(seed).sign(msg).to_bytes();
    Ok(total)
}

#[cfg(feature = "certificates")]
/// Signs a certificate with the CA's seed; writes it to `out`, returns its length.
pub fn sign_certificate(
    seed: &[u8; 32],
    body: &CertificateBody<'_>,
    out: &mut [u8],
) -> Result<usize, CertError> {
    check_body(body)?;
    sign_into(seed, CERT_LABEL, body, out)
}

#[cfg(feature = "certificates")]
/// Signs a revocation list with the CA's seed; writes it to `out`, returns its length.
pub fn sign_revocation_list(
    seed: &[u8; 32],
    body: &RevocationBody,
    out: &mut [u8],
) -> Result<usize, CertError> {
    if body.version != CERT_VERSION {
        return Err(CertError::UnsupportedVersion);
    }
    sign_into(seed, REVOCATION_LABEL, body, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str) -> CertificateBody<'_> {
        CertificateBody {
            version: CERT_VERSION,
            server_name: name,
            static_key: PublicKey([9; 32]),
            serial: 7,
            not_before: 1000,
            not_after: 2000,
        }
    }

    #[test]
    fn roundtrip_and_tamper() {
        let seed = [1u8; 32];
        let ca = ca_public_key(&seed);
        let mut buf = [0u8; MAX_CERTIFICATE];
        let n = sign_certificate(&seed, &body("chat.example.org"), &mut buf).unwrap();
        assert_eq!(
            verify_signature(&buf[..n], &ca).unwrap(),
            body("chat.example.org")
        );
        for i in 0..n {
            let mut bad = buf;
            bad[i] ^= 1;
            assert!(verify_signature(&bad[..n], &ca).is_err(), "byte {i}");
        }
        let long = [b'a'; MAX_SERVER_NAME];
        let long = core::str::from_utf8(&long).unwrap();
        let n = sign_certificate(&seed, &body(long), &mut buf).unwrap();
        assert!(n <= MAX_CERTIFICATE);
        assert!(sign_certificate(&seed, &body("Bad Name"), &mut buf).is_err());
    }

    #[test]
    fn names() {
        assert!(valid_server_name("chat.example.org"));
        assert!(valid_server_name("127.0.0.1"));
        assert!(valid_server_name("::1"));
        assert!(!valid_server_name(""));
        assert!(!valid_server_name("Chat.example.org"));
        assert!(!valid_server_name("a b"));
    }

    #[test]
    fn largest_revocation_list_fits() {
        let seed = [2u8; 32];
        let mut serials = RevokedSerials::new();
        for _ in 0..MAX_REVOKED {
            serials.push(u64::MAX).unwrap();
        }
        let list = RevocationBody {
            version: CERT_VERSION,
            issued_at: u64::MAX,
            serials,
        };
        let mut buf = [0u8; MAX_REVOCATION_LIST];
        let n = sign_revocation_list(&seed, &list, &mut buf).unwrap();
        assert_eq!(n, MAX_REVOCATION_LIST);
        assert_eq!(
            verify_revocation_list(&buf[..n], &ca_public_key(&seed)).unwrap(),
            list
        );
    }
}
