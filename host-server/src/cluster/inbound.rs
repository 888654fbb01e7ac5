//! What this node does with the messages of other nodes: the presence news
//! it keeps, and the commands it hands to its sessions.
//!
//! Every check a session makes on a local command is made again here, on
//! bytes that came from NATS: names are valid, a user announced online must
//! be registered with the key announced, a command goes only to the exact
//! session it names (or to the user's current session when it names none).

use std::sync::Arc;
use std::time::Instant;

use securecom_core::message::RefuseReason;

use super::wire::{self, Envelope, NodeMessage, Online, RemoteCmd};
use super::{Cluster, NodeId, Remote, RemoteUser};
use crate::presence::{Cmd, LocalUser, Mailbox, PostError, Presence};
use crate::registry::Users;

impl Presence {
    /// Presence news published by `node`.
    pub fn on_presence(&self, node: NodeId, msg: wire::Presence, users: &Users, now: Instant) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let online = self.online.read().unwrap_or_else(|e| e.into_inner());
        let mut remote = cluster.remote();
        let changed = match msg {
            wire::Presence::Heartbeat { version } => {
                cluster.heard_heartbeat(&mut remote, node, version, now);
                false
            }
            wire::Presence::Login { version, online: o } => {
                cluster.heard_event(&mut remote, node, version, now)
                    && announce(cluster, &online, &mut remote, (node, now), o, users)
            }
            wire::Presence::Logout {
                version,
                user,
                session,
            } => {
                // Only that session: a newer one of the user (anywhere) stays.
                let that = |u: &RemoteUser| u.node == node && u.online.session == session;
                cluster.heard_event(&mut remote, node, version, now)
                    && remote.users.get(&user).is_some_and(that)
                    && remote.users.remove(&user).is_some()
            }
            wire::Presence::Rates { user, debts } => {
                // A registered user's state from another node: continued
                // here, in its live session or in the rate memory.
                if node != cluster.node && users.get(user.as_str()).is_some() {
                    let state = securecom_core::RateState::from_debts(debts, securecom_host::now());
                    match online.get(&user) {
                        Some(local) => {
                            // A session too far behind to take it is being dropped.
                            let _ = local.mailbox.post(Cmd::MergeRates(state));
                        }
                        None => self.remember_rates(&user, state),
                    }
                }
                false
            }
            wire::Presence::Snapshot {
                version,
                page,
                last,
                users: list,
            } => {
                match cluster.heard_snapshot_page(
                    &mut remote,
                    node,
                    (version, page, last, list),
                    users.len(),
                    now,
                ) {
                    None => false,
                    Some((_, list)) => {
                        remote.users.retain(|_, u| u.node != node);
                        for o in list {
                            announce(cluster, &online, &mut remote, (node, now), o, users);
                        }
                        true
                    }
                }
            }
        };
        drop(remote);
        drop(online);
        if changed {
            self.changed();
        }
    }

    /// A message sent to this node by `from`.
    pub fn on_node_message(&self, from: NodeId, msg: NodeMessage, now: Instant) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let env = match msg {
            NodeMessage::SnapshotRequest => {
                cluster.want_snapshot();
                return;
            }
            NodeMessage::Cmd(env) => env,
        };
        let Some(alive) = cluster.touch_node(&mut cluster.remote(), from, now) else {
            return;
        };
        let Envelope {
            from_user,
            from_session,
            to_user,
            to_session,
            cmd,
        } = env;
        let target = self
            .online
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&to_user)
            .filter(|u| to_session == 0 || u.mailbox.session == to_session)
            .map(|u| u.mailbox.clone());
        let reply = from_user
            .clone()
            .map(|u| Mailbox::remote(cluster.clone(), from, u, from_session, alive));
        let post = |cmd| match &target {
            Some(mb) => mb.try_post(cmd),
            None => Err(PostError::Gone),
        };
        match (cmd, from_user, reply) {
            (RemoteCmd::DeliverRequest { chat_id, from_key }, Some(from), Some(reply)) => {
                let cmd = Cmd::DeliverRequest {
                    chat_id,
                    from,
                    from_key,
                    reply: reply.clone(),
                };
                if let Err(e) = post(cmd) {
                    let reason = match e {
                        PostError::Full => RefuseReason::Busy,
                        PostError::Gone | PostError::Unreachable => RefuseReason::Offline,
                    };
                    reply.post(Cmd::Delivered {
                        chat_id,
                        to: to_user,
                        result: Err(reason),
                    });
                }
            }
            (RemoteCmd::Delivered { chat_id, result }, Some(to), _) => {
                let _ = post(Cmd::Delivered {
                    chat_id,
                    to,
                    result,
                });
            }
            (
                RemoteCmd::Answered {
                    chat_id,
                    peer_key,
                    result,
                },
                Some(peer),
                Some(reply),
            ) => {
                let cmd = Cmd::Answered {
                    chat_id,
                    peer,
                    peer_key,
                    result,
                    reply: reply.clone(),
                };
                if post(cmd).is_err() && result.is_ok() {
                    reply.post(Cmd::PeerLeft { chat_id });
                }
            }
            (
                RemoteCmd::Relay {
                    chat_id,
                    kind,
                    noise,
                },
                Some(from),
                Some(reply),
            ) => {
                let cmd = Cmd::Relay {
                    chat_id,
                    from,
                    kind,
                    noise,
                };
                if let Err(e) = post(cmd) {
                    // A chat with a lost message cannot go on: both ends hear so.
                    reply.post(Cmd::PeerLeft { chat_id });
                    if e == PostError::Full {
                        let _ = post(Cmd::PeerLeft { chat_id });
                    }
                }
            }
            (RemoteCmd::PeerLeft { chat_id }, _, _) => {
                let _ = post(Cmd::PeerLeft { chat_id });
            }
            (RemoteCmd::Cancel { chat_id }, _, _) => {
                let _ = post(Cmd::Cancel { chat_id });
            }
            // A command that needs a sender named none: malformed, dropped.
            _ => {}
        }
    }

    /// Publishes this node's whole online list, in pages, at its version.
    pub fn publish_snapshot(&self) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        // Under the map's lock: no login or logout (and so no version) can
        // come between the pages or be queued among them.
        let online = self.online.read().unwrap_or_else(|e| e.into_inner());
        let version = cluster.version();
        let all: Vec<Online> = online
            .iter()
            .map(|(user, u)| Online {
                user: user.clone(),
                key: u.key,
                session: u.mailbox.session,
                stamp: u.stamp,
            })
            .collect();
        let mut pages: Vec<&[Online]> = all.chunks(wire::SNAPSHOT_PAGE).collect();
        if pages.is_empty() {
            pages.push(&[]);
        }
        let count = pages.len();
        for ((i, users), number) in pages.into_iter().enumerate().zip(0u32..) {
            cluster.publish_presence(&wire::Presence::Snapshot {
                version,
                page: number,
                last: i.saturating_add(1) == count,
                users: users.to_vec(),
            });
        }
    }

    /// Drops the nodes silent past their TTL; tells every local session, so
    /// that a chat with one of their users ends (`PeerLeft`).
    pub fn expire_nodes(&self, now: Instant) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let lost = cluster.expire(now);
        if lost.is_empty() {
            return;
        }
        self.changed();
        let sessions: Vec<Mailbox> = self
            .online
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|u| u.mailbox.clone())
            .collect();
        for node in lost {
            for mb in &sessions {
                mb.post(Cmd::NodeLost { node });
            }
        }
    }
}

/// `o` is online on `node`: kept if registered with that key and newer than
/// any other session of the user we know of; a local session it is newer
/// than is replaced. True if the list changed.
fn announce(
    cluster: &Arc<Cluster>,
    online: &std::collections::HashMap<securecom_core::UserName, LocalUser>,
    remote: &mut Remote,
    (node, now): (NodeId, Instant),
    o: Online,
    users: &Users,
) -> bool {
    if users.get(o.user.as_str()) != Some(&o.key) {
        return false;
    }
    let newer = |stamp: u64, at: NodeId| (o.stamp, node) > (stamp, at);
    if let Some(local) = online.get(&o.user) {
        if !newer(local.stamp, cluster.node) {
            // Ours is newer: that node replaces its own when it hears of ours.
            return false;
        }
        tracing::info!(user = %o.user, node = format_args!("{node:016x}"), "logged in on another node: replacing");
        local.mailbox.post(Cmd::Replaced);
    }
    if let Some(other) = remote.users.get(&o.user) {
        if !newer(other.online.stamp, other.node) {
            return false;
        }
    }
    let Some(alive) = cluster.touch_node(remote, node, now) else {
        return false;
    };
    remote.users.insert(
        o.user.clone(),
        RemoteUser {
            node,
            online: o,
            alive,
        },
    );
    true
}
