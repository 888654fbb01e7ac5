//! What the device says in a chat: a tiny, testable command set.
//!
//! | peer sends | device does |
//! |---|---|
//! | `temp?` | replies `temp 21.5 C` (a simulated sensor) |
//! | `bye` | leaves the chat |
//! | `call me` (with `call NAME` configured) | replies `calling NAME`, leaves, then asks NAME for a chat |
//! | anything else | replies `echo: TEXT` (cut to the longest chat text) |
//!
//! When the device itself opened the chat it speaks first with [`greeting`].
//! How a chat ended is said by [`chat_end`], with the same words as the CLI
//! client.
//!
//! Plain `core` and `securecom-core` (no `heapless`, no `defmt`):
//! `tests/tests/embedded.rs` compiles this file on the host for its unit tests.

use core::fmt::Write;

use rand_core::RngCore;
use securecom_core::chat::ChatText;
use securecom_core::ChatEnd;

/// What to do after a peer's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Text to send back, if any.
    pub reply: Option<ChatText>,
    /// What follows the reply.
    pub then: Then,
}

/// The step after the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Stay in the chat.
    Stay,
    /// Leave the chat.
    Leave,
    /// Leave the chat, then request a chat with the configured `call` user.
    LeaveAndCall,
}

/// Chooses the answer to `text`. `call` is the configured `call NAME`.
pub fn respond(
    text: &str,
    call: Option<&str>,
    thermometer: &mut Thermometer,
    rng: &mut impl RngCore,
) -> Response {
    match (text.trim(), call) {
        ("temp?", _) => {
            let tenths = thermometer.read(rng);
            let mut reply = ChatText::new();
            let sign = if tenths < 0 { "-" } else { "" };
            let abs = tenths.unsigned_abs();
            // Cannot fail: at most 15 bytes.
            let _ = write!(reply, "temp {sign}{}.{} C", abs / 10, abs % 10);
            Response {
                reply: Some(reply),
                then: Then::Stay,
            }
        }
        ("bye", _) => Response {
            reply: None,
            then: Then::Leave,
        },
        ("call me", Some(name)) => {
            let mut reply = ChatText::new();
            let _ = write!(reply, "calling {name}");
            Response {
                reply: Some(reply),
                then: Then::LeaveAndCall,
            }
        }
        _ => Response {
            reply: Some(echo(text)),
            then: Then::Stay,
        },
    }
}

/// `echo: TEXT`, cut at a character boundary to fit one chat message.
fn echo(text: &str) -> ChatText {
    const PREFIX: &str = "echo: ";
    let mut out = ChatText::new();
    let _ = out.push_str(PREFIX);
    let room = out.capacity() - PREFIX.len();
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let _ = out.push_str(&text[..end]);
    out
}

/// The first message of a chat the device requested (the requester speaks first).
pub fn greeting(user: &str) -> ChatText {
    let mut out = ChatText::new();
    let _ = write!(out, "hello, this is {user}: send temp? or bye");
    out
}

/// What the device shows when a chat with `peer` ended so, for the ends the
/// core can tell apart by the peer's end-to-end close: `PeerClosed`,
/// `EndedByServer`, `PeerLeft`. `None` for `Left` and `Failed`, which the
/// device shows as before (`chat N with PEER ended: REASON`).
///
/// "Your" messages are the device's.
pub fn chat_end(peer: &str, end: &ChatEnd) -> Option<ChatText> {
    let mut out = ChatText::new();
    // Cannot fail: a user name is at most 32 bytes, each text well under 480.
    let _ = match *end {
        ChatEnd::PeerClosed { undelivered: 0 } => {
            write!(out, "chat ended by {peer}, all messages delivered")
        }
        ChatEnd::PeerClosed { undelivered } => write!(
            out,
            "chat ended by {peer}: {} did not reach them",
            OfYourLast(undelivered)
        ),
        ChatEnd::EndedByServer { unconfirmed: 0 } => write!(
            out,
            "chat with {peer} ended by the server: {peer} had confirmed all your messages, \
             but {peer}'s last messages may be missing"
        ),
        ChatEnd::EndedByServer { unconfirmed } => write!(
            out,
            "chat with {peer} ended by the server: {} may not have arrived, \
             and {peer}'s last messages may be missing",
            OfYourLast(unconfirmed)
        ),
        ChatEnd::PeerLeft => write!(out, "{peer} left before the chat opened"),
        ChatEnd::Left | ChatEnd::Failed(_) => return None,
    };
    Some(out)
}

/// "1 of your last messages" / "3 of your last messages".
struct OfYourLast(u32);

impl core::fmt::Display for OfYourLast {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} of your last messages", self.0)
    }
}

/// A simulated temperature sensor: 21.5 C, drifting by at most 0.1 C per
/// reading and kept within 18.0..=26.0 C.
pub struct Thermometer {
    tenths: i16,
}

impl Thermometer {
    /// A sensor reading 21.5 C.
    pub const fn new() -> Self {
        Thermometer { tenths: 215 }
    }

    /// The next reading, in tenths of a degree Celsius.
    pub fn read(&mut self, rng: &mut impl RngCore) -> i16 {
        let step = (rng.next_u32() % 3) as i16 - 1;
        self.tenths = (self.tenths + step).clamp(180, 260);
        self.tenths
    }
}

impl Default for Thermometer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(e: ChatEnd) -> Option<String> {
        chat_end("bob", &e).map(|t| t.as_str().to_string())
    }

    #[test]
    fn chat_ends_are_told_honestly() {
        assert_eq!(
            end(ChatEnd::PeerClosed { undelivered: 0 }).as_deref(),
            Some("chat ended by bob, all messages delivered")
        );
        assert_eq!(
            end(ChatEnd::PeerClosed { undelivered: 2 }).as_deref(),
            Some("chat ended by bob: 2 of your last messages did not reach them")
        );
        assert_eq!(
            end(ChatEnd::EndedByServer { unconfirmed: 3 }).as_deref(),
            Some(
                "chat with bob ended by the server: 3 of your last messages may not have \
                 arrived, and bob's last messages may be missing"
            )
        );
        assert_eq!(
            end(ChatEnd::EndedByServer { unconfirmed: 0 }).as_deref(),
            Some(
                "chat with bob ended by the server: bob had confirmed all your messages, \
                 but bob's last messages may be missing"
            )
        );
        assert_eq!(
            end(ChatEnd::PeerLeft).as_deref(),
            Some("bob left before the chat opened")
        );
        assert_eq!(end(ChatEnd::Left), None);
        assert_eq!(
            end(ChatEnd::Failed(
                securecom_core::CryptoError::DecryptFailed.into()
            )),
            None
        );
        // The longest name and count fit.
        let long = "a".repeat(32);
        let t = chat_end(
            &long,
            &ChatEnd::EndedByServer {
                unconfirmed: u32::MAX,
            },
        );
        assert!(t.is_some_and(|t| t.ends_with("last messages may be missing")));
    }

    /// A predictable RNG (the thermometer's drift needs no quality).
    struct Counter(u32);

    impl RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.0 = self.0.wrapping_add(1);
            self.0
        }
        fn next_u64(&mut self) -> u64 {
            u64::from(self.next_u32())
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(0);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            dest.fill(0);
            Ok(())
        }
    }

    #[test]
    fn replies() {
        let mut rng = Counter(0);
        let mut th = Thermometer::new();
        let r = respond("temp?", None, &mut th, &mut rng);
        assert!(r
            .reply
            .is_some_and(|t| t.starts_with("temp ") && t.ends_with(" C")));
        assert_eq!(respond("bye", None, &mut th, &mut rng).then, Then::Leave);
        let r = respond("call me", Some("bob"), &mut th, &mut rng);
        assert_eq!(
            (r.reply.as_deref(), r.then),
            (Some("calling bob"), Then::LeaveAndCall)
        );
        let r = respond("call me", None, &mut th, &mut rng);
        assert_eq!(r.reply.as_deref(), Some("echo: call me"));
        let long = "é".repeat(400);
        let r = respond(&long, None, &mut th, &mut rng);
        assert!(r
            .reply
            .is_some_and(|t| t.len() <= 480 && t.starts_with("echo: é")));
    }
}
