//! The line commands of both modes.

use securecom_core::message::valid_user_name;
use securecom_core::MAX_CHAT_TEXT;

/// One line of input.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// `/users`: who is online.
    Users,
    /// `/chat NAME`: ask NAME for a chat.
    Chat(String),
    /// `/accept`: accept the pending request.
    Accept,
    /// `/refuse`: refuse the pending request.
    Refuse,
    /// `/leave`: leave the chat or withdraw our request.
    Leave,
    /// `/quit`: log out and exit.
    Quit,
    /// `/help`.
    Help,
    /// `/verify`: show the current chat's safety number again.
    Verify,
    /// `/trust NAME`: accept NAME's changed key.
    Trust(String),
    /// A chat line (a line starting with `//` sends the rest after one `/`).
    Text(String),
    /// A blank line: nothing.
    Empty,
}

// Chat text is not printed by Debug, so tests and logs never show it.
impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Users => f.write_str("Users"),
            Command::Chat(n) => write!(f, "Chat({n})"),
            Command::Accept => f.write_str("Accept"),
            Command::Refuse => f.write_str("Refuse"),
            Command::Leave => f.write_str("Leave"),
            Command::Quit => f.write_str("Quit"),
            Command::Help => f.write_str("Help"),
            Command::Verify => f.write_str("Verify"),
            Command::Trust(n) => write!(f, "Trust({n})"),
            Command::Text(t) => write!(f, "Text({} bytes)", t.len()),
            Command::Empty => f.write_str("Empty"),
        }
    }
}

/// The `/help` text.
pub const HELP: &str = "\
commands:
  /users        who is online
  /chat NAME    ask NAME for a chat
  /accept       accept the chat request you were asked
  /refuse       refuse it
  /leave        leave the chat (or withdraw your request)
  /verify       show the chat's safety number again (compare it with your peer over another channel)
  /trust NAME   accept NAME's new key after a key-change warning (check the safety number first)
  /quit         log out and exit (also Ctrl-D or Ctrl-C)
  /help         this text
while chatting, any other line is sent to your peer (start it with // to send a line beginning with /)
the one who asked for the chat speaks first
keys: Up/Down history, Left/Right/Home/End, Ctrl-A/E start/end, Ctrl-U/W delete line/word, Ctrl-L clear screen
the prompt shows you, the current chat and who is online (refreshed every 20 s and at /users)";

/// Parses one input line (without its line ending).
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(Command::Empty);
    }
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("//") {
        return text(format!("/{rest}"));
    }
    let Some(rest) = trimmed.strip_prefix('/') else {
        return text(line.to_string());
    };
    let mut words = rest.split_whitespace();
    let name = words.next().unwrap_or("").to_ascii_lowercase();
    let args: Vec<&str> = words.collect();
    let no_args = |cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(format!("/{name} takes no argument"))
        }
    };
    match name.as_str() {
        "users" => no_args(Command::Users),
        "accept" => no_args(Command::Accept),
        "refuse" => no_args(Command::Refuse),
        "leave" => no_args(Command::Leave),
        "quit" => no_args(Command::Quit),
        "help" => no_args(Command::Help),
        "verify" => no_args(Command::Verify),
        "trust" => match args.as_slice() {
            [user] if valid_user_name(user) => Ok(Command::Trust((*user).to_string())),
            [user] => Err(format!(
                "invalid user name '{user}' (1 to 32 characters of a-z 0-9 _ . -)"
            )),
            _ => Err("usage: /trust NAME".to_string()),
        },
        "chat" => match args.as_slice() {
            [user] if valid_user_name(user) => Ok(Command::Chat((*user).to_string())),
            [user] => Err(format!(
                "invalid user name '{user}' (1 to 32 characters of a-z 0-9 _ . -)"
            )),
            _ => Err("usage: /chat NAME".to_string()),
        },
        "" => Err("empty command (try /help)".to_string()),
        other => Err(format!("unknown command '/{other}' (try /help)")),
    }
}

fn text(t: String) -> Result<Command, String> {
    if t.len() > MAX_CHAT_TEXT {
        Err(format!(
            "message too long ({} bytes; at most {MAX_CHAT_TEXT})",
            t.len()
        ))
    } else {
        Ok(Command::Text(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("/users"), Ok(Command::Users));
        assert_eq!(parse("  /users  "), Ok(Command::Users));
        assert_eq!(parse("/USERS"), Ok(Command::Users));
        assert_eq!(parse("/chat bob"), Ok(Command::Chat("bob".into())));
        assert_eq!(parse("/chat   bob\r"), Ok(Command::Chat("bob".into())));
        assert_eq!(parse("/accept"), Ok(Command::Accept));
        assert_eq!(parse("/refuse"), Ok(Command::Refuse));
        assert_eq!(parse("/leave"), Ok(Command::Leave));
        assert_eq!(parse("/quit"), Ok(Command::Quit));
        assert_eq!(parse("/help"), Ok(Command::Help));
        assert_eq!(parse("/verify"), Ok(Command::Verify));
        assert_eq!(parse("/trust bob"), Ok(Command::Trust("bob".into())));
        assert!(parse("/trust").is_err());
    }

    #[test]
    fn bad_commands() {
        assert!(parse("/chat").is_err());
        assert!(parse("/chat a b").is_err());
        assert!(parse("/chat Bob").is_err());
        assert!(parse("/users now").is_err());
        assert!(parse("/frobnicate")
            .unwrap_err()
            .contains("unknown command"));
        assert!(parse("/").is_err());
    }

    #[test]
    fn text_lines() {
        assert_eq!(parse(""), Ok(Command::Empty));
        assert_eq!(parse("   \r"), Ok(Command::Empty));
        assert_eq!(parse("hi there "), Ok(Command::Text("hi there ".into())));
        assert_eq!(parse("hi\r"), Ok(Command::Text("hi".into())));
        assert_eq!(parse("//users"), Ok(Command::Text("/users".into())));
        assert_eq!(parse("a /b"), Ok(Command::Text("a /b".into())));
        assert_eq!(
            parse(&"x".repeat(MAX_CHAT_TEXT)),
            Ok(Command::Text("x".repeat(MAX_CHAT_TEXT)))
        );
        assert!(parse(&"x".repeat(MAX_CHAT_TEXT + 1)).is_err());
    }

    #[test]
    fn debug_hides_text() {
        assert_eq!(
            format!("{:?}", Command::Text("secret".into())),
            "Text(6 bytes)"
        );
    }
}
