//! The four systems under test: how each is started, and the generator's
//! client for each (log in; open a pair; send; receive).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use securecom_core::{ClientEvent, PublicKey, StaticSecret};
use securecom_host::now;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::certs::Pki;
use super::measure;
use super::mqtt;
use crate::{Daemon, Peer, Server};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Mosquitto,
    Rustls,
    Tcp,
    Securecom,
    /// secureCom with the server on the portable provider (`--crypto
    /// rustcrypto`): the "before" of the host provider, in the same run.
    SecurecomRustCrypto,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Mosquitto,
        Kind::Rustls,
        Kind::Tcp,
        Kind::SecurecomRustCrypto,
        Kind::Securecom,
    ];

    /// The name `--only` takes.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Mosquitto => "mosquitto",
            Kind::Rustls => "rustls",
            Kind::Tcp => "tcp",
            Kind::Securecom => "securecom",
            Kind::SecurecomRustCrypto => "securecom-rustcrypto",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Mosquitto => "mosquitto 2.0 TLS 1.3 mTLS",
            Kind::Rustls => "rustls 0.23 (aws-lc-rs) mTLS relay",
            Kind::Tcp => "plain TCP relay",
            Kind::Securecom => "secureCom",
            Kind::SecurecomRustCrypto => "secureCom, server on RustCrypto (before)",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Kind::Mosquitto | Kind::Rustls)
    }
}

/// One user's credentials for every system.
pub struct Cred {
    /// The name and the secureCom key, as main.rs's `open_pair` takes them.
    pub sc: (String, StaticSecret),
    pub tls: Arc<ClientConfig>,
}

impl Cred {
    pub fn name(&self) -> &str {
        &self.sc.0
    }
}

enum Process {
    Child(Child),
    /// Held for its Drop, which stops the server.
    Securecom {
        _server: Server,
    },
}

/// Where a server under test listens, and what it is.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// secureCom's server key.
    sc_key: Option<PublicKey>,
}

/// A running server under test; stopped when dropped.
pub struct Target {
    pub ep: Endpoint,
    pub pid: u32,
    process: Process,
    log: Option<PathBuf>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Process::Child(c) = &mut self.process {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Target {
    /// Starts `kind`'s server on the server core. `dir` holds the PKI files
    /// and the generated configurations.
    pub fn start(
        kind: Kind,
        dir: &Path,
        pki: &Pki,
        sc_users: &[(String, PublicKey)],
    ) -> Result<Target> {
        let t = measure::spawn_on_server_core(
            || match kind {
                Kind::Securecom | Kind::SecurecomRustCrypto => {
                    let s = if kind == Kind::Securecom {
                        Server::start(sc_users)
                    } else {
                        let mut args = crate::LIFTED_LIMITS.to_vec();
                        args.extend(["--crypto", "rustcrypto"]);
                        Server::start_with(sc_users, &args, false)
                    }
                    .context("starting securecom-server")?;
                    Ok(Target {
                        ep: Endpoint {
                            kind,
                            addr: s.addr,
                            sc_key: Some(s.key),
                        },
                        pid: s.pid(),
                        process: Process::Securecom { _server: s },
                        log: None,
                    })
                }
                Kind::Rustls | Kind::Tcp => start_relay(kind, dir, pki),
                Kind::Mosquitto => start_mosquitto(dir, pki),
            },
            |t: &Target| t.pid,
        )?;
        Ok(t)
    }

    /// Fails if the server has exited (with its log, if any).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Process::Child(c) = &mut self.process {
            if let Some(status) = c.try_wait()? {
                let log = self
                    .log
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default();
                bail!("{} exited ({status}): {log}", self.ep.kind.key());
            }
        }
        Ok(())
    }

    /// The server's thread count and allowed cores.
    pub fn describe(&self) -> String {
        format!(
            "pid {}, threads {}, cores {}",
            self.pid,
            measure::status_field(self.pid, "Threads").unwrap_or_default(),
            measure::status_field(self.pid, "Cpus_allowed_list").unwrap_or_default()
        )
    }
}

pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("exe dir")?.to_path_buf())
}

fn start_relay(kind: Kind, dir: &Path, pki: &Pki) -> Result<Target> {
    let bin = bin_dir()?.join("peer-relay");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p securecom-loadgen)",
            bin.display()
        );
    }
    let mut cmd = Command::new(&bin);
    cmd.args(["--listen", "127.0.0.1:0"]);
    if kind == Kind::Tcp {
        cmd.arg("--plain");
    } else {
        cmd.arg("--ca")
            .arg(&pki.files.ca)
            .arg("--cert")
            .arg(&pki.files.cert)
            .arg("--key")
            .arg(&pki.files.key);
    }
    let log = dir.join(format!("{}.log", kind.key()));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "peer-relay did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    Ok(Target {
        ep: Endpoint {
            kind,
            addr: addr.parse()?,
            sc_key: None,
        },
        pid: child.id(),
        process: Process::Child(child),
        log: Some(log),
    })
}

/// The installed mosquitto's version line; fails if there is none.
pub fn mosquitto_version() -> Result<String> {
    let out = Command::new("mosquitto").arg("-h").output().map_err(|e| {
        anyhow!("mosquitto is not installed ({e}): `apt-get install -y mosquitto`, or leave it out with --only rustls,tcp,securecom")
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("mosquitto version"))
        .map(str::to_string)
        .context("`mosquitto -h` printed no version: is it mosquitto?")
}

fn start_mosquitto(dir: &Path, pki: &Pki) -> Result<Target> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dir.join("mosquitto.conf");
    let log = dir.join("mosquitto.log");
    // Run as root, mosquitto would switch to the `mosquitto` user, which
    // cannot read the private temporary directory: it stays who we are.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root\n"
    } else {
        ""
    };
    std::fs::write(
        &conf,
        format!(
            "# Generated by securecom-loadgen peers.\n\
             {user}\
             per_listener_settings false\n\
             persistence false\n\
             log_dest stderr\n\
             log_type error\n\
             connection_messages false\n\
             sys_interval 0\n\
             # No QoS 0 message is dropped for a queue limit (the generator bounds what is in flight).\n\
             max_queued_messages 0\n\
             # As the other servers: no Nagle delay on the sockets.\n\
             set_tcp_nodelay true\n\
             allow_anonymous false\n\
             listener {port} 127.0.0.1\n\
             tls_version tlsv1.3\n\
             cafile {}\n\
             certfile {}\n\
             keyfile {}\n\
             require_certificate true\n\
             use_identity_as_username true\n",
            pki.files.ca.display(),
            pki.files.cert.display(),
            pki.files.key.display()
        ),
    )?;
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting mosquitto")?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut text = String::new();
            std::fs::File::open(&log)?.read_to_string(&mut text)?;
            bail!("mosquitto exited at start-up ({status}): {text}");
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("mosquitto does not listen on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Target {
        ep: Endpoint {
            kind: Kind::Mosquitto,
            addr,
            sc_key: None,
        },
        pid: child.id(),
        process: Process::Child(child),
        log: Some(log),
    })
}

// ------------------------------------------------------------------ clients

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
pub type Io = Box<dyn Stream>;

/// MQTT client ids are unique per connection (a reused one would take over
/// a session mosquitto is still closing).
static CLIENT_SEQ: AtomicU64 = AtomicU64::new(0);

/// A TCP connection to the target, and the TLS handshake if it has TLS;
/// returns the negotiated cipher suite too.
async fn dial(t: Endpoint, cred: &Cred) -> Result<(Io, Option<String>)> {
    let tcp = TcpStream::connect(t.addr).await?;
    tcp.set_nodelay(true)?;
    if !t.kind.tls() {
        return Ok((Box::new(tcp), None));
    }
    let connector = tokio_rustls::TlsConnector::from(cred.tls.clone());
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await
        .with_context(|| format!("TLS handshake with {}", t.kind.key()))?;
    let suite = tls
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()));
    Ok((Box::new(tls), suite))
}

/// The relay's hello (see peer-relay.rs); waits for its OK.
async fn relay_hello(io: &mut Io, own: &str, peer: &str) -> Result<()> {
    let mut h = Vec::new();
    h.extend_from_slice(&((1 + own.len() + peer.len()) as u16).to_be_bytes());
    h.push(own.len() as u8);
    h.extend_from_slice(own.as_bytes());
    h.extend_from_slice(peer.as_bytes());
    io.write_all(&h).await?;
    io.flush().await?;
    let ok = io.read_u8().await.context("relay login")?;
    if ok != 1 {
        bail!("the relay refused {own}");
    }
    Ok(())
}

/// Logs `cred` in and out once. Returns the TLS cipher suite, if any.
pub async fn login(t: Endpoint, cred: &Cred) -> Result<Option<String>> {
    match t.kind {
        Kind::Securecom | Kind::SecurecomRustCrypto => {
            let key = t.sc_key.context("server key")?;
            let mut p = Peer::connect(t.addr, key, cred.name(), &cred.sc.1, None).await?;
            p.wait("login", |e| matches!(e, ClientEvent::LoggedIn { .. }))
                .await?;
            Ok(None)
        }
        Kind::Mosquitto => {
            let (mut io, suite) = dial(t, cred).await?;
            let id = format!(
                "{}-{}",
                cred.name(),
                CLIENT_SEQ.fetch_add(1, Ordering::Relaxed)
            );
            mqtt::connect(&mut io, &id).await?;
            io.write_all(&mqtt::DISCONNECT).await?;
            io.shutdown().await?;
            Ok(suite)
        }
        Kind::Rustls | Kind::Tcp => {
            let (mut io, suite) = dial(t, cred).await?;
            relay_hello(&mut io, cred.name(), "").await?;
            io.shutdown().await?;
            Ok(suite)
        }
    }
}

/// The sending side of a pair.
pub enum Tx {
    Securecom(Box<Peer>),
    Mqtt {
        io: Io,
        out: Vec<u8>,
        topic: Vec<u8>,
    },
    Relay {
        io: Io,
        out: Vec<u8>,
    },
}

/// The receiving side of a pair.
pub enum Rx {
    /// The receiver and its daemon (held: it keeps the request channel open).
    Securecom(Box<(Peer, Daemon)>),
    Mqtt {
        io: Io,
        buf: Vec<u8>,
        filled: usize,
    },
    Relay {
        io: Io,
        buf: Vec<u8>,
        filled: usize,
    },
}

const RX_BUF: usize = 128 * 1024;

async fn mqtt_client(t: Endpoint, cred: &Cred) -> Result<Io> {
    let (mut io, _) = dial(t, cred).await?;
    let id = format!(
        "{}-{}",
        cred.name(),
        CLIENT_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    mqtt::connect(&mut io, &id).await?;
    mqtt::subscribe(&mut io, &format!("chat/{}", cred.name())).await?;
    Ok(io)
}

/// Logs `a` and `b` in and makes `a` able to send to `b` (secureCom: a chat
/// a requested and b accepted; mosquitto: both subscribed to their topics;
/// the relays: both helloed naming each other).
pub async fn open_pair(t: Endpoint, a: &Cred, b: &Cred) -> Result<(Tx, Rx)> {
    match t.kind {
        Kind::Securecom | Kind::SecurecomRustCrypto => {
            let key = t.sc_key.context("server key")?;
            let (pa, pb, d) = crate::open_pair(t.addr, key, &a.sc, &b.sc).await?;
            Ok((
                Tx::Securecom(Box::new(pa)),
                Rx::Securecom(Box::new((pb, d))),
            ))
        }
        Kind::Mosquitto => {
            let rb = mqtt_client(t, b).await?;
            let ra = mqtt_client(t, a).await?;
            Ok((
                Tx::Mqtt {
                    io: ra,
                    out: Vec::new(),
                    topic: format!("chat/{}", b.name()).into_bytes(),
                },
                Rx::Mqtt {
                    io: rb,
                    buf: vec![0; RX_BUF],
                    filled: 0,
                },
            ))
        }
        Kind::Rustls | Kind::Tcp => {
            let (mut rb, _) = dial(t, b).await?;
            relay_hello(&mut rb, b.name(), a.name()).await?;
            let (mut ra, _) = dial(t, a).await?;
            relay_hello(&mut ra, a.name(), b.name()).await?;
            Ok((
                Tx::Relay {
                    io: ra,
                    out: Vec::new(),
                },
                Rx::Relay {
                    io: rb,
                    buf: vec![0; RX_BUF],
                    filled: 0,
                },
            ))
        }
    }
}

impl Tx {
    /// Queues one message (nothing is written before `flush`).
    pub fn queue(&mut self, payload: &[u8]) -> Result<()> {
        match self {
            Tx::Securecom(p) => {
                let text = std::str::from_utf8(payload)?;
                p.c.send_text(now(), text).map_err(|e| anyhow!("{e}"))?;
                p.collect();
            }
            Tx::Mqtt { out, topic, .. } => mqtt::put_publish(out, topic, payload),
            Tx::Relay { out, .. } => {
                out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                out.extend_from_slice(payload);
            }
        }
        Ok(())
    }

    /// Writes what is queued, in one write.
    pub async fn flush(&mut self) -> Result<()> {
        match self {
            Tx::Securecom(p) => p.flush().await,
            Tx::Mqtt { io, out, .. } | Tx::Relay { io, out } => {
                io.write_all(out).await?;
                io.flush().await?;
                out.clear();
                Ok(())
            }
        }
    }
}

impl Rx {
    /// Reads once (cancel-safe: nothing is lost if the future is dropped);
    /// returns the bytes read. Pass them to `process`.
    pub async fn read(&mut self) -> Result<usize> {
        let n = match self {
            Rx::Securecom(pd) => {
                let p = &mut pd.0;
                p.rd.read(&mut p.buf).await?
            }
            Rx::Mqtt { io, buf, filled } | Rx::Relay { io, buf, filled } => {
                if *filled == buf.len() {
                    bail!("a message larger than the receive buffer");
                }
                io.read(&mut buf[*filled..]).await?
            }
        };
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(n)
    }

    /// Handles `n` bytes that `read` returned: `each` gets every message.
    pub async fn process(
        &mut self,
        n: usize,
        each: &mut impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        match self {
            Rx::Securecom(pd) => {
                let p = &mut pd.0;
                p.feed(n)?;
                while let Some(e) = p.events.pop_front() {
                    match e {
                        ClientEvent::ChatMessage { text, .. } => each(text.as_bytes())?,
                        other => bail!("unexpected event during the run: {other:?}"),
                    }
                }
                // The client's own output (if any) goes out as in main.rs's blast.
                p.flush().await
            }
            Rx::Mqtt { buf, filled, .. } => {
                *filled += n;
                let used = mqtt::parse(&buf[..*filled], each)?;
                buf.copy_within(used..*filled, 0);
                *filled -= used;
                Ok(())
            }
            Rx::Relay { buf, filled, .. } => {
                *filled += n;
                let mut at = 0;
                while *filled - at >= 2 {
                    let len = usize::from(u16::from_be_bytes([buf[at], buf[at + 1]]));
                    if *filled - at < 2 + len {
                        break;
                    }
                    each(&buf[at + 2..at + 2 + len])?;
                    at += 2 + len;
                }
                buf.copy_within(at..*filled, 0);
                *filled -= at;
                Ok(())
            }
        }
    }
}
