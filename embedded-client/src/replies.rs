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

use core::fmt::Write;

use rand_core::RngCore;
use securecom_core::chat::ChatText;

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
