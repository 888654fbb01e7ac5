//! `peer-relay`: the relay that `securecom-loadgen peers` compares secureCom
//! with, over TLS 1.3 with client certificates (rustls 0.23, aws-lc-rs) or,
//! with `--plain`, over bare TCP.
//!
//! Protocol: after the TLS handshake the client sends a hello frame, a
//! 2-byte big-endian length then `own name length (u8) || own name || peer
//! name`; over TLS the own name must be a DNS name of the client's
//! certificate (which the CA given by `--ca` signed). The relay answers one
//! byte, 1 (logged in). Every frame the client sends after that (a 2-byte
//! big-endian length and its payload) goes to the peer's connection as it
//! is; frames for a peer that is not connected are dropped (as MQTT QoS 0).
//!
//! One task per connection, as secureCom's server: it reads its client's
//! frames and hands each read's whole frames, as one buffer, to the peer's
//! task (a bounded channel: a slow peer slows the sender down); it writes
//! what its own channel holds, all that is queued in one write. The runtime
//! is tokio's multi-threaded one with its default size, as secureCom's
//! server (one worker on the one core the benchmark gives it).
//!
//! Usage: `peer-relay [--listen ADDR] (--plain | --ca PEM --cert PEM --key PEM)`;
//! prints `listening on ADDR` once it accepts connections.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Chunks of whole frames queued for one connection.
type Queue = mpsc::Sender<Vec<u8>>;
/// The connected clients by name.
type Clients = Arc<Mutex<HashMap<String, Queue>>>;

/// Buffers queued for a connection before its peer's reads wait.
const QUEUE: usize = 64;
/// The read buffer (and the largest frame: 2 + 65 535 bytes fit).
const READ_BUF: usize = 128 * 1024;
/// A write gathers queued buffers up to about this much.
const WRITE_MAX: usize = 256 * 1024;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let listen: SocketAddr = opt("--listen")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let acceptor = if args.iter().any(|a| a == "--plain") {
        None
    } else {
        let (Some(ca), Some(cert), Some(key)) = (opt("--ca"), opt("--cert"), opt("--key")) else {
            bail!("usage: peer-relay [--listen ADDR] (--plain | --ca PEM --cert PEM --key PEM)");
        };
        Some(tls_acceptor(&ca, &cert, &key)?)
    };
    // As securecom-server: the multi-threaded runtime, sized by the cores it may use.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let clients: Clients = Arc::default();
        loop {
            let (stream, _) = listener.accept().await?;
            let clients = clients.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that goes away (logins close at once) ends its task; nothing to report.
                let _ = connection(stream, acceptor, clients).await;
            });
        }
    })
}

/// TLS 1.3 only, X25519 (as the load generator's clients), client
/// certificates required and verified against `ca`.
fn tls_acceptor(ca: &str, cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let provider = Arc::new(provider);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).context("--ca")? {
        roots.add(c?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let chain = CertificateDer::pem_file_iter(cert)
        .context("--cert")?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key).context("--key")?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn connection(
    stream: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    clients: Clients,
) -> Result<()> {
    stream.set_nodelay(true)?;
    match acceptor {
        None => serve(stream, None, clients).await,
        Some(a) => {
            let tls = a.accept(stream).await?;
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .context("no client certificate")?
                .clone();
            serve(tls, Some(cert), clients).await
        }
    }
}

/// Removes a client's entry when its connection ends (if it is still its own).
struct Listed<'a> {
    clients: &'a Clients,
    name: String,
    queue: Queue,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        let mut map = self.clients.lock().expect("clients");
        if map
            .get(&self.name)
            .is_some_and(|q| q.same_channel(&self.queue))
        {
            map.remove(&self.name);
        }
    }
}

async fn serve(
    mut io: impl AsyncRead + AsyncWrite + Unpin,
    cert: Option<CertificateDer<'static>>,
    clients: Clients,
) -> Result<()> {
    // The hello: who I am (checked against the certificate) and who I talk to.
    let len = usize::from(io.read_u16().await?);
    let mut hello = vec![0; len];
    io.read_exact(&mut hello).await?;
    let own_len = usize::from(*hello.first().context("empty hello")?);
    let own = std::str::from_utf8(hello.get(1..1 + own_len).context("hello")?)?.to_string();
    let peer = std::str::from_utf8(&hello[1 + own_len..])?.to_string();
    if let Some(cert) = &cert {
        let name = ServerName::try_from(own.as_str())?;
        webpki::EndEntityCert::try_from(cert)?
            .verify_is_valid_for_subject_name(&name)
            .with_context(|| format!("the certificate does not name {own}"))?;
    }
    let (queue, mut inbox) = mpsc::channel::<Vec<u8>>(QUEUE);
    clients
        .lock()
        .expect("clients")
        .insert(own.clone(), queue.clone());
    let _listed = Listed {
        clients: &clients,
        name: own,
        queue,
    };
    io.write_all(&[1]).await?;
    io.flush().await?;

    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0;
    let mut to_peer: Option<Queue> = None;
    loop {
        tokio::select! {
            r = io.read(&mut buf[filled..]) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                filled += n;
                // The whole frames at the start of the buffer.
                let mut whole = 0;
                while filled - whole >= 2 {
                    let len = 2 + usize::from(u16::from_be_bytes([buf[whole], buf[whole + 1]]));
                    if filled - whole < len {
                        break;
                    }
                    whole += len;
                }
                if whole == 0 {
                    continue;
                }
                if to_peer.is_none() {
                    to_peer = clients.lock().expect("clients").get(&peer).cloned();
                }
                if let Some(q) = &to_peer {
                    if q.send(buf[..whole].to_vec()).await.is_err() {
                        // The peer left: look it up again next time.
                        to_peer = None;
                    }
                }
                buf.copy_within(whole..filled, 0);
                filled -= whole;
            }
            Some(first) = inbox.recv() => {
                // Everything queued goes out in one write.
                let mut out = first;
                while out.len() < WRITE_MAX {
                    match inbox.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                io.write_all(&out).await?;
                io.flush().await?;
            }
        }
    }
}
