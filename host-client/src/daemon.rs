//! The daemon: accepts the server's request-channel connections.
//!
//! Each connection gets a [`RequestLink`] and a task that feeds
//! [`Client::handle_request_input`] and writes
//! [`Client::poll_request_transmit`]. When the user answers a request, the
//! main task bumps the `answers` watch; every link task then polls its
//! output, and the core hands the answer to the link that delivered the
//! request. A link that errors is closed; nothing else is affected.
//!
//! Like the reader of the standard channel, a link feeds the core one frame
//! at a time and first waits for room in the main task's queue
//! ([`Outputs::room`]): while the main task is behind, the link's socket is
//! not read.

use std::net::SocketAddr;
use std::sync::Arc;

use securecom_core::RequestLink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::output::Event;
use crate::session::{Outputs, Shared, UiMsg};

/// Most request-channel connections at once. The server keeps one; a few
/// more cover reconnects. Connections that do not finish their handshake are
/// dropped after the handshake timeout.
const MAX_LINKS: usize = 8;

/// Accepts connections until the process exits.
pub async fn run(
    listener: TcpListener,
    shared: Shared,
    out: Outputs,
    answers: watch::Receiver<u64>,
) {
    let slots = Arc::new(Semaphore::new(MAX_LINKS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // E.g. out of file descriptors: wait a little rather than spin.
                warn!("daemon: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            warn!(%peer, "daemon: too many request-channel connections; dropping one");
            continue;
        };
        let (shared, out, answers) = (shared.clone(), out.clone(), answers.clone());
        tokio::spawn(async move {
            serve_link(stream, peer, shared, out, answers).await;
            drop(permit);
        });
    }
}

/// Serves one request-channel connection until it closes or errors.
async fn serve_link(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Shared,
    out: Outputs,
    mut answers: watch::Receiver<u64>,
) {
    let _ = stream.set_nodelay(true);
    let link = {
        let mut core = shared.lock();
        let core = &mut *core;
        core.client.new_request_link(shared.now(), &mut core.rng)
    };
    let mut link = match link {
        Ok(l) => l,
        Err(e) => {
            debug!(%peer, "daemon: connection refused before login: {e}");
            return;
        }
    };
    debug!(%peer, "daemon: request-channel connection");
    // The handshake deadline; once it passed with the handshake done, the
    // server may keep the link open and silent as long as it likes.
    let mut handshake_deadline = link.poll_timeout();
    answers.mark_unchanged();
    let mut buf = vec![0u8; 4096];
    let result: Result<(), String> = loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    let fed = feed(&shared, &out, &mut link, buf.get(..n).unwrap_or_default()).await;
                    if let Err(e) = flush(&mut stream, &shared, &mut link).await {
                        break Err(e);
                    }
                    if let Err(e) = fed {
                        break Err(e);
                    }
                    if link.is_closed() {
                        break Ok(());
                    }
                }
                Err(e) => break Err(format!("read: {e}")),
            },
            changed = answers.changed() => {
                if changed.is_err() {
                    break Ok(());
                }
                if let Err(e) = flush(&mut stream, &shared, &mut link).await {
                    break Err(e);
                }
            }
            () = shared.clock().sleep_until(handshake_deadline), if handshake_deadline.is_some() => {
                handshake_deadline = None;
                let r = shared.lock().client.handle_request_timeout(&mut link, shared.now());
                if let Err(e) = r {
                    break Err(e.to_string());
                }
            }
        }
    };
    match result {
        Ok(()) => debug!(%peer, "daemon: request channel closed"),
        Err(e) => info!(%peer, "daemon: request channel dropped: {e}"),
    }
    let mut core = shared.lock();
    // An answer still waiting for this link is lost with it.
    let lost_answer = core.client.has_answer_for(&link);
    core.client.request_link_closed(&link);
    if lost_answer && core.client.is_busy() && core.client.chat().is_none() {
        // The user accepted, but the link closed before the answer left: the
        // core keeps waiting for a chat the server will never start (and
        // refuses every other request as busy). Drop it, as `/leave` would.
        warn!(%peer, "daemon: the request channel closed before our answer was sent");
        out.tell(UiMsg::Local(Event::Error {
            message: "the request channel closed before your answer was sent; \
                      the chat request is void"
                .into(),
        }));
        let r = core.client.leave_chat(shared.now());
        out.drain(&mut core.client);
        if let Err(e) = r {
            debug!("daemon: could not drop the accepted request: {e}");
        }
        return;
    }
    out.drain(&mut core.client);
}

/// Feeds bytes to the link, a frame at a time, each once the main task has
/// room for its events; drains events after each.
async fn feed(
    shared: &Shared,
    out: &Outputs,
    link: &mut RequestLink,
    mut input: &[u8],
) -> Result<(), String> {
    while !input.is_empty() {
        let room = out.room().await;
        let mut core = shared.lock();
        let r = core.client.handle_request_input(link, shared.now(), input);
        out.drain_input(&mut core.client, room);
        drop(core);
        match r {
            Ok(0) => break,
            Ok(used) => input = input.get(used..).unwrap_or_default(),
            Err(e) => return Err(e.to_string()),
        }
        if link.is_closed() {
            break;
        }
    }
    Ok(())
}

/// Writes whatever the link has to send (handshake, answers).
async fn flush(
    stream: &mut TcpStream,
    shared: &Shared,
    link: &mut RequestLink,
) -> Result<(), String> {
    let bytes = {
        let mut core = shared.lock();
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 2048];
        loop {
            let n = core
                .client
                .poll_request_transmit(link, shared.now(), &mut chunk);
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        bytes
    };
    if bytes.is_empty() {
        return Ok(());
    }
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("write: {e}"))
}
