//! The warning message template: `{user}`, `{tty}`, `{remaining}`, `{reason}`,
//! `{limit}`, `{rule}`. Unknown placeholders are rejected when the config is
//! loaded, never at warning time.

/// Placeholders the template language knows.
pub const PLACEHOLDERS: [&str; 6] = ["user", "tty", "remaining", "reason", "limit", "rule"];

pub const DEFAULT_MESSAGE: &str =
    "Session for {user} on {tty} will be closed in {remaining} ({reason}).";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(&'static str),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Default for Template {
    fn default() -> Self {
        // The default is a constant known to parse.
        Self::parse(DEFAULT_MESSAGE).unwrap_or(Self { pieces: Vec::new() })
    }
}

impl Template {
    /// Parses a template; `{{` and `}}` stand for literal braces.
    /// The error gives the byte offset in `text` and the cause.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let rest = &text[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err((i, "unclosed '{' in message".into()));
                    };
                    let name = &rest[..end];
                    let Some(known) = PLACEHOLDERS.iter().find(|p| **p == name) else {
                        return Err((
                            i,
                            format!(
                                "unknown placeholder {{{name}}} in message; known: {}",
                                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                            ),
                        ));
                    };
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Slot(known));
                    for _ in 0..=name.chars().count() {
                        chars.next();
                    }
                }
                '}' => return Err((i, "unmatched '}' in message; write '}}' for a brace".into())),
                _ => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Self { pieces })
    }

    /// Fills the slots. `value` is asked for each placeholder name; the caller
    /// escapes the result as a whole before it reaches a terminal.
    pub fn render(&self, value: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(name) => out.push_str(&value(name)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let t = Template::parse("{user}|{tty}|{remaining}|{reason}|{limit}|{rule} {{x}}").unwrap();
        assert_eq!(
            t.render(|n| n.to_uppercase()),
            "USER|TTY|REMAINING|REASON|LIMIT|RULE {x}"
        );
    }

    #[test]
    fn default_parses() {
        let t = Template::default();
        assert_eq!(
            t.render(|n| format!("<{n}>")),
            "Session for <user> on <tty> will be closed in <remaining> (<reason>)."
        );
    }

    #[test]
    fn unknown_or_broken_placeholders_are_errors_with_offsets() {
        let (at, msg) = Template::parse("abc {usr} def").unwrap_err();
        assert_eq!(at, 4);
        assert!(msg.contains("{usr}"));
        assert_eq!(Template::parse("x {user").unwrap_err().0, 2);
        assert_eq!(Template::parse("x } y").unwrap_err().0, 2);
    }
}
