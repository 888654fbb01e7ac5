//! A minimal MQTT 3.1.1 client: CONNECT (clean session) → CONNACK,
//! SUBSCRIBE QoS 0 → SUBACK, PUBLISH QoS 0 both ways, DISCONNECT.

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CONNECT: u8 = 0x10;
const CONNACK: u8 = 0x20;
const PUBLISH: u8 = 0x30;
const SUBSCRIBE: u8 = 0x82;
const SUBACK: u8 = 0x90;
const PINGRESP: u8 = 0xd0;
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// Appends the remaining-length varint (7 bits a byte, low first).
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return;
        }
    }
}

/// Decodes a remaining length at the start of `b`: (length, bytes used), or
/// None if incomplete.
fn get_len(b: &[u8]) -> Result<Option<(usize, usize)>> {
    let mut n = 0usize;
    for (i, &byte) in b.iter().enumerate().take(4) {
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((n, i + 1)));
        }
    }
    if b.len() >= 4 {
        bail!("malformed MQTT remaining length");
    }
    Ok(None)
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// Appends a QoS 0 PUBLISH of `payload` to `topic`.
pub fn put_publish(out: &mut Vec<u8>, topic: &[u8], payload: &[u8]) {
    out.push(PUBLISH);
    put_len(out, 2 + topic.len() + payload.len());
    put_str(out, topic);
    out.extend_from_slice(payload);
}

/// Reads one whole packet: (first byte, body).
async fn read_packet(io: &mut (impl AsyncRead + Unpin)) -> Result<(u8, Vec<u8>)> {
    let kind = io.read_u8().await?;
    let mut len = Vec::with_capacity(4);
    let n = loop {
        len.push(io.read_u8().await?);
        if let Some((n, _)) = get_len(&len)? {
            break n;
        }
    };
    let mut body = vec![0; n];
    io.read_exact(&mut body).await?;
    Ok((kind, body))
}

/// CONNECT with a clean session and no keep-alive; waits for CONNACK.
pub async fn connect(
    io: &mut (impl AsyncRead + AsyncWrite + Unpin),
    client_id: &str,
) -> Result<()> {
    let mut var = Vec::new();
    put_str(&mut var, b"MQTT");
    var.push(4); // protocol level: 3.1.1
    var.push(0x02); // clean session; no user name: the certificate is the identity
    var.extend_from_slice(&0u16.to_be_bytes()); // keep-alive off
    put_str(&mut var, client_id.as_bytes());
    let mut p = vec![CONNECT];
    put_len(&mut p, var.len());
    p.extend_from_slice(&var);
    io.write_all(&p).await?;
    io.flush().await?;
    let (kind, body) = read_packet(io).await.context("CONNACK")?;
    if kind != CONNACK || body.len() != 2 {
        bail!("expected CONNACK, got packet {kind:#x}");
    }
    if body[1] != 0 {
        bail!("CONNACK refused the connection (return code {})", body[1]);
    }
    Ok(())
}

/// SUBSCRIBE to `topic` at QoS 0; waits for SUBACK.
pub async fn subscribe(io: &mut (impl AsyncRead + AsyncWrite + Unpin), topic: &str) -> Result<()> {
    let mut var = 1u16.to_be_bytes().to_vec(); // packet id
    put_str(&mut var, topic.as_bytes());
    var.push(0); // QoS 0
    let mut p = vec![SUBSCRIBE];
    put_len(&mut p, var.len());
    p.extend_from_slice(&var);
    io.write_all(&p).await?;
    io.flush().await?;
    let (kind, body) = read_packet(io).await.context("SUBACK")?;
    if kind != SUBACK || body.len() != 3 || body[2] != 0 {
        bail!("SUBSCRIBE {topic} refused (packet {kind:#x}, {body:?})");
    }
    Ok(())
}

/// Parses the whole packets at the start of `buf`, calling `each` with every
/// PUBLISH payload; returns the bytes used.
pub fn parse(buf: &[u8], each: &mut impl FnMut(&[u8]) -> Result<()>) -> Result<usize> {
    let mut at = 0;
    while buf.len() - at >= 2 {
        let Some((n, used)) = get_len(&buf[at + 1..])? else {
            break;
        };
        let start = at + 1 + used;
        if buf.len() - start < n {
            break;
        }
        let body = &buf[start..start + n];
        match buf[at] {
            PUBLISH => {
                let topic = usize::from(u16::from_be_bytes(
                    body.get(..2).context("PUBLISH")?.try_into()?,
                ));
                each(body.get(2 + topic..).context("PUBLISH topic")?)?;
            }
            PINGRESP => {}
            k => bail!("unexpected MQTT packet {k:#x}"),
        }
        at = start + n;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_round_trips() {
        for n in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            268_435_455,
        ] {
            let mut b = Vec::new();
            put_len(&mut b, n);
            assert_eq!(get_len(&b).unwrap(), Some((n, b.len())), "{n}");
            assert_eq!(get_len(&b[..b.len() - 1]).unwrap(), None);
        }
        assert!(get_len(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn publishes_parse_back() {
        let mut b = Vec::new();
        put_publish(&mut b, b"chat/x", &[7; 300]);
        put_publish(&mut b, b"chat/x", b"hi");
        let mut got = Vec::new();
        let used = parse(&b[..b.len() - 1], &mut |p| {
            got.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![vec![7; 300]]);
        let used2 = parse(&b[used..], &mut |p| {
            got.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(used + used2, b.len());
        assert_eq!(got[1], b"hi");
    }
}
