//! What the client tells its user: one [`Event`] type, printed either as a
//! JSON object per line (`--script`) or as a readable line (interactive).
//!
//! The JSON shapes are a stable interface (see the crate docs / README). No
//! event carries a secret; chat text only appears in `message` and `sent`,
//! which are the user's own conversation. `Event` deliberately has no
//! `Debug` impl, so chat text cannot end up in a log by accident.

use std::io::Write;

use securecom_core::message::{CloseReason, ErrorCode, LoginError, RefuseReason};
use securecom_core::ChatEnd;
use serde::Serialize;

/// One thing to tell the user.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The daemon (request-channel listener) is bound, before login.
    DaemonListening {
        /// The bound address (the port is the real one, also with port 0).
        addr: String,
    },
    /// Login accepted.
    LoggedIn {
        /// Our user name.
        user: String,
    },
    /// Login refused (the program then exits non-zero).
    LoginRefused {
        /// `not_authorized`, `version_mismatch` or `server_full`.
        reason: &'static str,
    },
    /// Whether the server reached our daemon.
    Daemon {
        /// True if chat requests can reach us.
        reachable: bool,
    },
    /// The whole list of users online.
    Users {
        /// Their names.
        names: Vec<String>,
        /// The server sent more names than the client keeps
        /// (`session::MAX_LISTED_USERS`): these are the first, the rest was
        /// ignored. Only present when true.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    },
    /// Our chat request was forwarded.
    ChatPending {
        /// Who we asked.
        user: String,
        /// The chat id the server chose.
        chat_id: u32,
    },
    /// Someone asks us for a chat.
    ChatRequest {
        /// Who asks.
        from: String,
        /// Their key's fingerprint.
        fingerprint: String,
    },
    /// A request was refused automatically because we were busy.
    RefusedBusy {
        /// Who asked.
        from: String,
    },
    /// A request made to us was withdrawn.
    RequestWithdrawn {
        /// Who had asked.
        from: String,
    },
    /// Our request did not lead to a chat.
    ChatRefused {
        /// Who we asked.
        user: String,
        /// See [`refuse_reason`].
        reason: &'static str,
    },
    /// The end-to-end chat is open.
    ChatReady {
        /// The peer.
        peer: String,
        /// The peer key's fingerprint.
        fingerprint: String,
        /// The safety number to compare out of band.
        safety_number: String,
        /// True if we asked for the chat (and so speak first).
        initiator: bool,
    },
    /// A chat message from the peer.
    Message {
        /// The peer.
        from: String,
        /// The text.
        text: String,
    },
    /// A chat line of ours was queued for sending.
    Sent {
        /// The peer.
        to: String,
        /// The text.
        text: String,
    },
    /// The chat is over.
    ChatEnded {
        /// The peer.
        peer: String,
        /// `left`, `peer_closed` (the peer's end-to-end close), `ended_by_server`
        /// (no close from the peer), `peer_left` (before the chat opened) or
        /// `failed`.
        reason: &'static str,
        /// Why it failed (only with `failed`).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// With `peer_closed` and `ended_by_server`: how many of our last
        /// messages did not reach the peer (`peer_closed`, exact) or were not
        /// confirmed by it and may not have arrived (`ended_by_server`).
        #[serde(skip_serializing_if = "Option::is_none")]
        undelivered: Option<u32>,
    },
    /// The server rejected a request; the session goes on.
    ServerError {
        /// `not_now`, `wrong_chat`, `bad_request` or `slow_down`.
        code: &'static str,
    },
    /// The server closed the session cleanly.
    Closed {
        /// See [`close_reason`].
        reason: &'static str,
    },
    /// The connection was lost without a clean close, or the handshake failed.
    Disconnected {
        /// What happened.
        error: String,
    },
    /// A command that cannot be done now; the session goes on.
    Error {
        /// What went wrong.
        message: String,
    },
    /// The server's certificate was accepted (CA mode), before login.
    ServerCertified {
        /// The certified name.
        name: String,
        /// The certificate's serial.
        serial: u64,
        /// End of its validity (`YYYY-MM-DD HH:MM:SS UTC`).
        not_after: String,
    },
    /// A user's key differs from the one in the known-peers file: their
    /// request cannot be accepted, and the chat cannot start, until `/trust USER`.
    KeyChanged {
        /// The user.
        user: String,
        /// Fingerprint of the key remembered.
        old_fingerprint: String,
        /// Fingerprint of the key offered now.
        new_fingerprint: String,
    },
    /// `/trust USER`: the new key is remembered; the chat may go on.
    Trusted {
        /// The user.
        user: String,
        /// Fingerprint of the key now trusted.
        fingerprint: String,
    },
    /// `/verify`: the current chat's safety number again.
    Verify {
        /// The peer.
        peer: String,
        /// The safety number (12 groups of 5 digits).
        safety_number: String,
        /// The peer key's fingerprint.
        fingerprint: String,
        /// Our own key's fingerprint.
        own_fingerprint: String,
    },
}

/// The JSON name of a login refusal.
pub fn login_error(e: LoginError) -> &'static str {
    match e {
        LoginError::NotAuthorized => "not_authorized",
        LoginError::VersionMismatch => "version_mismatch",
        LoginError::ServerFull => "server_full",
    }
}

/// The JSON name of a chat refusal.
pub fn refuse_reason(r: RefuseReason) -> &'static str {
    match r {
        RefuseReason::Declined => "declined",
        RefuseReason::Busy => "busy",
        RefuseReason::Offline => "offline",
        RefuseReason::UnknownUser => "unknown_user",
        RefuseReason::Unreachable => "unreachable",
        RefuseReason::SelfRequest => "self_request",
        RefuseReason::Withdrawn => "withdrawn",
        RefuseReason::NoAnswer => "no_answer",
        RefuseReason::TooSoon => "too_soon",
    }
}

/// The JSON name of a close reason.
pub fn close_reason(r: CloseReason) -> &'static str {
    match r {
        CloseReason::LoggedOut => "logged_out",
        CloseReason::Shutdown => "shutdown",
        CloseReason::SessionExpired => "session_expired",
        CloseReason::ProtocolViolation => "protocol_violation",
        CloseReason::Idle => "idle",
        CloseReason::Replaced => "replaced",
        CloseReason::Revoked => "revoked",
        CloseReason::RateLimited => "rate_limited",
    }
}

/// The JSON name of a server error code.
pub fn error_code(c: ErrorCode) -> &'static str {
    match c {
        ErrorCode::NotNow => "not_now",
        ErrorCode::WrongChat => "wrong_chat",
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::SlowDown => "slow_down",
    }
}

/// The JSON reason, detail and undelivered count of a chat end.
pub fn chat_end(e: &ChatEnd) -> (&'static str, Option<String>, Option<u32>) {
    match e {
        ChatEnd::Left => ("left", None, None),
        ChatEnd::PeerClosed { undelivered } => ("peer_closed", None, Some(*undelivered)),
        ChatEnd::EndedByServer { unconfirmed } => ("ended_by_server", None, Some(*unconfirmed)),
        ChatEnd::PeerLeft => ("peer_left", None, None),
        ChatEnd::Failed(err) => ("failed", Some(crate::errors::describe(err)), None),
    }
}

/// "1 of your last messages" / "3 of your last messages".
fn of_your_last(n: u32) -> String {
    if n == 1 {
        "1 of your last messages".into()
    } else {
        format!("{n} of your last messages")
    }
}

/// Peer-controlled text shown on a terminal. Shown escaped (as `\u{…}`):
/// control characters (escape sequences could rewrite the screen), the
/// bidirectional overrides, embeddings and isolates (U+202A–202E,
/// U+2066–2069, which reorder what follows them), every other format
/// character (Unicode category Cf: zero-width spaces and joiners, the word
/// joiner, invisible operators, the BOM, soft hyphen, tag characters…), and
/// the line and paragraph separators (U+2028, U+2029), so that a peer can
/// neither hide nor reorder text nor fake a second line.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if is_format_or_separator(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Unicode category Cf (format) as of Unicode 16, plus Zl and Zp.
fn is_format_or_separator(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

fn human_refusal(reason: &str) -> &'static str {
    match reason {
        "declined" => "declined",
        "busy" => "is busy",
        "offline" => "is not online",
        "unknown_user" => "no such user",
        "unreachable" => "cannot be reached (their client's daemon is unreachable)",
        "self_request" => "you cannot chat with yourself",
        "withdrawn" => "the request was withdrawn",
        "no_answer" => "did not answer in time",
        "too_soon" => {
            "asked too soon (refused a moment ago, or too many requests); ask again later"
        }
        _ => "refused",
    }
}

fn human_close(reason: &str) -> &'static str {
    match reason {
        "logged_out" => "logged out",
        "shutdown" => "the server is shutting down",
        "session_expired" => "the session expired; log in again",
        "protocol_violation" => "protocol violation",
        "idle" => "idle too long",
        "replaced" => "you logged in again elsewhere",
        "revoked" => "your key is no longer registered on this server",
        "rate_limited" => "too many commands; the server dropped the session",
        _ => "closed",
    }
}

impl Event {
    /// The event as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, bools and integers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"event\":\"error\"}"))
    }

    /// The event as a readable line for the interactive mode; `None` for
    /// events the terminal already shows (our own chat lines).
    pub fn to_human(&self) -> Option<String> {
        Some(match self {
            Event::DaemonListening { addr } => format!("* daemon listening on {addr}"),
            Event::LoggedIn { user } => {
                format!("* logged in as {user}. Type /help for the commands.")
            }
            Event::LoginRefused { reason } => format!(
                "* login refused: {}",
                match *reason {
                    "not_authorized" => "not authorized (unknown user or not the registered key)",
                    "version_mismatch" => "the server speaks another protocol version",
                    "server_full" => "the server is full",
                    other => other,
                }
            ),
            Event::Daemon { reachable: true } => {
                "* the server reached our daemon: others can ask us for a chat".to_string()
            }
            Event::Daemon { reachable: false } => "* warning: the server cannot reach our daemon; \
                 others cannot ask us for a chat (check --daemon-listen, firewall or NAT)"
                .to_string(),
            Event::Users { names, .. } if names.is_empty() => "* nobody is online".to_string(),
            Event::Users {
                names,
                truncated: false,
            } => format!("* online: {}", names.join(", ")),
            Event::Users {
                names,
                truncated: true,
            } => format!(
                "* online: {}\n* the list was cut at {} names (the server sent more; the rest is ignored)",
                names.join(", "),
                names.len()
            ),
            Event::ChatPending { user, .. } => {
                format!("* asked {user} for a chat; waiting for the answer (/leave withdraws)")
            }
            Event::ChatRequest { from, fingerprint } => {
                format!("* {from} asks to chat (key fingerprint {fingerprint}). /accept or /refuse")
            }
            Event::RefusedBusy { from } => {
                format!("* {from} asked to chat; refused automatically (busy)")
            }
            Event::RequestWithdrawn { from } => format!("* {from} withdrew the chat request"),
            Event::ChatRefused { user, reason } => {
                format!("* no chat with {user}: {}", human_refusal(reason))
            }
            Event::ChatReady {
                peer,
                fingerprint,
                safety_number,
                initiator,
            } => format!(
                "* chat with {peer} ready; safety number: {safety_number}\n  \
                 ({peer}'s key fingerprint {fingerprint}; compare the safety number with \
                 {peer} over another channel){}",
                if *initiator {
                    ""
                } else {
                    "\n  the requester speaks first: wait for their message"
                }
            ),
            Event::Message { from, text } => format!("<{from}> {}", sanitize(text)),
            Event::Sent { .. } => return None,
            Event::ChatEnded {
                peer,
                reason,
                detail,
                undelivered,
            } => match (*reason, undelivered.unwrap_or(0)) {
                ("left", _) => format!("* you left the chat with {peer}"),
                ("peer_closed", 0) => format!("* chat ended by {peer}, all messages delivered"),
                ("peer_closed", n) => format!(
                    "* chat ended by {peer}: {} did not reach them",
                    of_your_last(n)
                ),
                ("ended_by_server", 0) => format!(
                    "* chat with {peer} ended by the server, not by {peer}: {peer} had \
                     confirmed all your messages, but {peer}'s last messages may be missing"
                ),
                ("ended_by_server", n) => format!(
                    "* chat with {peer} ended by the server, not by {peer}: {} may not have \
                     arrived, and {peer}'s last messages may be missing",
                    of_your_last(n)
                ),
                ("peer_left", _) => format!("* {peer} left before the chat opened"),
                _ => format!(
                    "* chat with {peer} failed: {}",
                    detail.as_deref().unwrap_or("error")
                ),
            },
            Event::ServerError { code } => format!(
                "* the server refused: {}",
                match *code {
                    "not_now" => "not allowed now",
                    "wrong_chat" => "not the current chat",
                    "bad_request" => "bad request",
                    "slow_down" => "too many commands; wait a moment and try again",
                    other => other,
                }
            ),
            Event::Closed { reason } => format!("* session closed: {}", human_close(reason)),
            Event::Disconnected { error } => format!("* disconnected: {error}"),
            Event::Error { message } => format!("! {message}"),
            Event::ServerCertified {
                name,
                serial,
                not_after,
            } => format!(
                "* server {name}: certificate accepted (signed by the trusted CA, serial {serial}, valid until {not_after})"
            ),
            Event::KeyChanged {
                user,
                old_fingerprint,
                new_fingerprint,
            } => format!(
                "!!! WARNING: {user}'s KEY HAS CHANGED !!!\n\
                 !!!   remembered key: {old_fingerprint}\n\
                 !!!   key offered now: {new_fingerprint}\n\
                 !!! Either {user} has a new key, or someone (the server?) is in the middle.\n\
                 !!! Check the safety number with {user} over another channel (phone, in person).\n\
                 !!! Nothing is sent to {user} until you type /trust {user} (or /refuse, /leave)."
            ),
            Event::Trusted { user, fingerprint } => {
                format!("* {user}'s new key {fingerprint} is now trusted (known-peers file updated)")
            }
            Event::Verify {
                peer,
                safety_number,
                fingerprint,
                own_fingerprint,
            } => format!(
                "* safety number with {peer}: {safety_number}\n  \
                 {peer}'s key fingerprint {fingerprint}; yours {own_fingerprint}\n  \
                 read it to {peer} over another channel: the same number on both sides means no one is in the middle"
            ),
        })
    }
}

/// Where events go: stdout, as JSON lines or readable lines; in the
/// interactive terminal mode, above the line being edited.
#[derive(Clone)]
pub struct Ui {
    /// JSON lines (`--script`) instead of readable text.
    pub script: bool,
    term: Option<rustyline_async::SharedWriter>,
    /// Tests: the lines, instead of stdout.
    #[cfg(test)]
    sink: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Ui {
    /// Output to stdout.
    pub fn new(script: bool) -> Self {
        Ui {
            script,
            term: None,
            #[cfg(test)]
            sink: None,
        }
    }

    /// Tests: output to a channel, one line per message.
    #[cfg(test)]
    pub fn capture(script: bool) -> (Self, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let ui = Ui {
            script,
            term: None,
            sink: Some(tx),
        };
        (ui, rx)
    }

    /// Output above the line editor's prompt.
    pub fn with_terminal(&self, w: rustyline_async::SharedWriter) -> Self {
        Ui {
            script: self.script,
            term: Some(w),
            #[cfg(test)]
            sink: self.sink.clone(),
        }
    }

    /// Prints one event and flushes.
    pub fn emit(&self, event: &Event) {
        let line = if self.script {
            Some(event.to_json())
        } else {
            event.to_human()
        };
        if let Some(line) = line {
            self.print(&line);
        }
    }

    /// A note for a human only (not printed in script mode).
    pub fn note(&self, text: &str) {
        if !self.script {
            self.print(text);
        }
    }

    fn print(&self, line: &str) {
        #[cfg(test)]
        if let Some(sink) = &self.sink {
            let _ = sink.send(line.to_string());
            return;
        }
        if let Some(w) = &self.term {
            let mut w = w.clone();
            // Shown by the line editor, which keeps the input line intact below.
            let _ = writeln!(w, "{line}");
            return;
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout is not a reason to drop the session.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(e: Event) -> String {
        e.to_json()
    }

    #[test]
    fn json_shapes() {
        assert_eq!(
            json(Event::DaemonListening {
                addr: "127.0.0.1:4242".into()
            }),
            r#"{"event":"daemon_listening","addr":"127.0.0.1:4242"}"#
        );
        assert_eq!(
            json(Event::LoggedIn {
                user: "alice".into()
            }),
            r#"{"event":"logged_in","user":"alice"}"#
        );
        assert_eq!(
            json(Event::LoginRefused {
                reason: login_error(LoginError::NotAuthorized)
            }),
            r#"{"event":"login_refused","reason":"not_authorized"}"#
        );
        assert_eq!(
            json(Event::Daemon { reachable: true }),
            r#"{"event":"daemon","reachable":true}"#
        );
        assert_eq!(
            json(Event::Users {
                names: vec!["alice".into(), "bob".into()],
                truncated: false,
            }),
            r#"{"event":"users","names":["alice","bob"]}"#
        );
        assert_eq!(
            json(Event::Users {
                names: vec!["alice".into()],
                truncated: true,
            }),
            r#"{"event":"users","names":["alice"],"truncated":true}"#
        );
        assert_eq!(
            json(Event::ChatPending {
                user: "bob".into(),
                chat_id: 1
            }),
            r#"{"event":"chat_pending","user":"bob","chat_id":1}"#
        );
        assert_eq!(
            json(Event::ChatRequest {
                from: "alice".into(),
                fingerprint: "1a2b:3c4d".into()
            }),
            r#"{"event":"chat_request","from":"alice","fingerprint":"1a2b:3c4d"}"#
        );
        assert_eq!(
            json(Event::RefusedBusy {
                from: "carol".into()
            }),
            r#"{"event":"refused_busy","from":"carol"}"#
        );
        assert_eq!(
            json(Event::RequestWithdrawn {
                from: "alice".into()
            }),
            r#"{"event":"request_withdrawn","from":"alice"}"#
        );
        assert_eq!(
            json(Event::ChatReady {
                peer: "bob".into(),
                fingerprint: "ab".into(),
                safety_number: "12345 67890".into(),
                initiator: true
            }),
            r#"{"event":"chat_ready","peer":"bob","fingerprint":"ab","safety_number":"12345 67890","initiator":true}"#
        );
        assert_eq!(
            json(Event::Message {
                from: "bob".into(),
                text: "hi \"there\"\n".into()
            }),
            r#"{"event":"message","from":"bob","text":"hi \"there\"\n"}"#
        );
        assert_eq!(
            json(Event::Sent {
                to: "bob".into(),
                text: "hi".into()
            }),
            r#"{"event":"sent","to":"bob","text":"hi"}"#
        );
        assert_eq!(
            json(Event::ServerError {
                code: error_code(ErrorCode::NotNow)
            }),
            r#"{"event":"server_error","code":"not_now"}"#
        );
        assert_eq!(
            json(Event::Closed {
                reason: close_reason(CloseReason::LoggedOut)
            }),
            r#"{"event":"closed","reason":"logged_out"}"#
        );
        assert_eq!(
            json(Event::Disconnected {
                error: "server key mismatch".into()
            }),
            r#"{"event":"disconnected","error":"server key mismatch"}"#
        );
        assert_eq!(
            json(Event::Error {
                message: "nothing to accept".into()
            }),
            r#"{"event":"error","message":"nothing to accept"}"#
        );
    }

    #[test]
    fn chat_ended_detail_only_when_failed() {
        let line = |end: ChatEnd| {
            let (reason, detail, undelivered) = chat_end(&end);
            json(Event::ChatEnded {
                peer: "bob".into(),
                reason,
                detail,
                undelivered,
            })
        };
        assert_eq!(
            line(ChatEnd::PeerLeft),
            r#"{"event":"chat_ended","peer":"bob","reason":"peer_left"}"#
        );
        assert_eq!(
            line(ChatEnd::PeerClosed { undelivered: 0 }),
            r#"{"event":"chat_ended","peer":"bob","reason":"peer_closed","undelivered":0}"#
        );
        let failed = line(ChatEnd::Failed(
            securecom_core::CryptoError::DecryptFailed.into(),
        ));
        assert!(
            failed
                .starts_with(r#"{"event":"chat_ended","peer":"bob","reason":"failed","detail":""#),
            "{failed}"
        );
    }

    #[test]
    fn spoofing_characters_are_shown_escaped() {
        // Bidi override: "evil" would be shown reversed after it.
        assert_eq!(sanitize("a\u{202E}live"), "a\\u{202e}live");
        for c in [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200B}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
            '\u{1b}',
            '\n',
        ] {
            let shown = sanitize(&format!("x{c}y"));
            assert!(!shown.contains(c), "{c:?} passed through: {shown}");
            assert!(shown.starts_with('x') && shown.ends_with('y'));
        }
        // Ordinary text, other scripts and emoji are untouched.
        for t in ["grüße", "שלום", "مرحبا", "日本語", "👍🏽", "a-b_c"] {
            assert_eq!(sanitize(t), t);
        }
    }

    #[test]
    fn reason_names() {
        let all = [
            (RefuseReason::Declined, "declined"),
            (RefuseReason::Busy, "busy"),
            (RefuseReason::Offline, "offline"),
            (RefuseReason::UnknownUser, "unknown_user"),
            (RefuseReason::Unreachable, "unreachable"),
            (RefuseReason::SelfRequest, "self_request"),
            (RefuseReason::Withdrawn, "withdrawn"),
            (RefuseReason::NoAnswer, "no_answer"),
            (RefuseReason::TooSoon, "too_soon"),
        ];
        for (r, s) in all {
            assert_eq!(refuse_reason(r), s);
        }
        let all = [
            (CloseReason::LoggedOut, "logged_out"),
            (CloseReason::Shutdown, "shutdown"),
            (CloseReason::SessionExpired, "session_expired"),
            (CloseReason::ProtocolViolation, "protocol_violation"),
            (CloseReason::Idle, "idle"),
            (CloseReason::Replaced, "replaced"),
            (CloseReason::Revoked, "revoked"),
            (CloseReason::RateLimited, "rate_limited"),
        ];
        for (r, s) in all {
            assert_eq!(close_reason(r), s);
        }
    }

    #[test]
    fn one_line_per_event() {
        // Newlines in chat text are escaped, so a JSON event is always one line.
        let line = json(Event::Message {
            from: "bob".into(),
            text: "a\nb\r\u{1b}[2J".into(),
        });
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\u{1b}'));
    }

    #[test]
    fn human_lines() {
        let e = Event::ChatRequest {
            from: "alice".into(),
            fingerprint: "1a2b:3c4d".into(),
        };
        assert_eq!(
            e.to_human().unwrap(),
            "* alice asks to chat (key fingerprint 1a2b:3c4d). /accept or /refuse"
        );
        let e = Event::Message {
            from: "bob".into(),
            text: "hi\u{1b}[2J".into(),
        };
        assert_eq!(e.to_human().unwrap(), "<bob> hi\\u{1b}[2J");
        assert!(Event::Sent {
            to: "bob".into(),
            text: "x".into()
        }
        .to_human()
        .is_none());
    }
}
