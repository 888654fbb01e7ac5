//! Certificate and revocation-list files: the bytes of `securecom_core::cert`
//! in a PEM-style text wrapper, so they can be mailed and pasted.
//!
//! ```text
//! -----BEGIN SECURECOM CERTIFICATE-----
//! <standard base64 with padding, 64 columns>
//! -----END SECURECOM CERTIFICATE-----
//! ```
//!
//! (`SECURECOM REVOCATION LIST` for a revocation list.) A CA public key is
//! written as 64 hex digits, like every other public key.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use securecom_core::cert::{self, CaPublicKey, CertError, RevocationBody};

/// The label of a certificate file.
pub const CERTIFICATE: &str = "SECURECOM CERTIFICATE";
/// The label of a revocation-list file.
pub const REVOCATION_LIST: &str = "SECURECOM REVOCATION LIST";

/// Wraps `bytes` as PEM-style text with `label`.
pub fn encode(label: &str, bytes: &[u8]) -> String {
    let b64 = STANDARD.encode(bytes);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Unwraps PEM-style text with `label`.
pub fn decode(label: &str, text: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(begin.as_str()) {
        return Err(format!("expected a '{begin}' line"));
    }
    let mut b64 = String::new();
    for l in lines.by_ref() {
        if l == end {
            return STANDARD
                .decode(b64)
                .map_err(|_| format!("bad base64 in the {label}"));
        }
        b64.push_str(l);
    }
    Err(format!("no '{end}' line"))
}

/// Reads a certificate file; returns its bytes (checked for syntax only).
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = decode(CERTIFICATE, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    cert::decode_certificate(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// Reads a revocation-list file and checks its signature by `ca`.
pub fn read_revocation_list(path: &Path, ca: &CaPublicKey) -> Result<RevocationBody, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = decode(REVOCATION_LIST, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    cert::verify_revocation_list(&bytes, ca).map_err(|e| match e {
        CertError::BadSignature => format!(
            "{}: the revocation list is not signed by the trusted CA",
            path.display()
        ),
        e => format!("{}: not a valid revocation list: {e}", path.display()),
    })
}

/// Parses a CA public key written as 64 hex digits.
pub fn parse_ca_key(s: &str) -> Result<CaPublicKey, String> {
    let bytes =
        hex::decode(s.trim()).map_err(|_| "a CA key is 64 hex digits (32 bytes)".to_string())?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "a CA key is 64 hex digits (32 bytes)".to_string())?;
    Ok(CaPublicKey(arr))
}

/// Unix seconds now, from the system clock (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian).
pub fn format_time(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip_and_time() {
        let bytes: Vec<u8> = (0..=200).collect();
        let text = encode(CERTIFICATE, &bytes);
        assert_eq!(decode(CERTIFICATE, &text).unwrap(), bytes);
        assert!(decode(REVOCATION_LIST, &text).is_err());
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_750_000_000), "2025-06-15 15:06:40 UTC");
    }
}
