//! Splits an event line (`event=NAME key=value ...`) back into its fields,
//! undoing exactly the quoting of timeoutd's event writer
//! (`timeoutd::core::audit::escape::log_value`): bare values, or double-quoted ones
//! with `\"`, `\\`, `\n`, `\t`, `\r`, `\xNN` and `\u{N..}` escapes.

/// Why a line could not be split: it is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// A token without `=`.
    NoEquals,
    /// A quoted value that never closes.
    Unterminated,
    /// A backslash escape the writer never produces.
    BadEscape,
    /// More fields than any event has.
    TooMany,
}

/// Most fields in one line; more is not an event of ours.
const MAX_FIELDS: usize = 64;

/// The fields of one line, in order, unescaped.
pub fn split(line: &str) -> Result<Vec<(&str, String)>, FieldError> {
    let mut out = Vec::with_capacity(24);
    let mut rest = line.trim_matches(|c| c == ' ' || c == '\t');
    while !rest.is_empty() {
        if out.len() == MAX_FIELDS {
            return Err(FieldError::TooMany);
        }
        let eq = rest.find('=').ok_or(FieldError::NoEquals)?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains(' ') {
            return Err(FieldError::NoEquals);
        }
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            unquote(quoted)?
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start_matches(' ');
    }
    Ok(out)
}

/// Reads a quoted value (after its opening quote) up to the closing quote;
/// returns the value and what follows the closing quote.
fn unquote(s: &str) -> Result<(String, &str), FieldError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let tail = &s[i + 1..];
                if !(tail.is_empty() || tail.starts_with(' ')) {
                    return Err(FieldError::Unterminated);
                }
                return Ok((out, tail));
            }
            '\\' => {
                let (_, e) = chars.next().ok_or(FieldError::Unterminated)?;
                out.push(match e {
                    '"' => '"',
                    '\\' => '\\',
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'x' => hex_escape(&mut chars, 2)?,
                    'u' => brace_escape(&mut chars)?,
                    _ => return Err(FieldError::BadEscape),
                });
            }
            c => out.push(c),
        }
    }
    Err(FieldError::Unterminated)
}

/// `\xNN`: exactly `n` hex digits.
fn hex_escape(chars: &mut std::str::CharIndices<'_>, n: usize) -> Result<char, FieldError> {
    let mut v = 0u32;
    for _ in 0..n {
        let (_, d) = chars.next().ok_or(FieldError::BadEscape)?;
        v = v * 16 + d.to_digit(16).ok_or(FieldError::BadEscape)?;
    }
    char::from_u32(v).ok_or(FieldError::BadEscape)
}

/// `\u{N..}`: one to six hex digits in braces.
fn brace_escape(chars: &mut std::str::CharIndices<'_>) -> Result<char, FieldError> {
    if chars.next().map(|(_, c)| c) != Some('{') {
        return Err(FieldError::BadEscape);
    }
    let mut v = 0u32;
    for n in 0..7 {
        let (_, d) = chars.next().ok_or(FieldError::BadEscape)?;
        if d == '}' && n > 0 {
            return char::from_u32(v).ok_or(FieldError::BadEscape);
        }
        v = v * 16 + d.to_digit(16).ok_or(FieldError::BadEscape)?;
    }
    Err(FieldError::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use timeoutd::core::audit::event::{Event, EventName};

    #[test]
    fn round_trips_the_event_writer() {
        let hostile = "x\" event=forged\u{1b}]0;t\u{7}\n\t\r\\ \u{9b}\u{202e}José";
        let line = Event::new(EventName::SessionSummary)
            .field("user", hostile)
            .field("tty", "pts/3")
            .field("gaps", "")
            .to_string();
        let f = split(&line).unwrap();
        assert_eq!(f[0], ("event", "session_summary".to_owned()));
        assert_eq!(f[1], ("user", hostile.to_owned()));
        assert_eq!(f[2], ("tty", "pts/3".to_owned()));
        assert_eq!(f[3], ("gaps", String::new()));
    }

    #[test]
    fn empty_bare_value_and_extra_spaces() {
        let f = split("event=e  gaps= a=1 ").unwrap();
        assert_eq!(f[1], ("gaps", String::new()));
        assert_eq!(f[2], ("a", "1".to_owned()));
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert_eq!(split("event=e junk"), Err(FieldError::NoEquals));
        assert_eq!(split("event=e u=\"open"), Err(FieldError::Unterminated));
        assert_eq!(split("event=e u=\"a\\q\""), Err(FieldError::BadEscape));
        assert_eq!(split("event=e u=\"a\\x1\""), Err(FieldError::BadEscape));
        assert_eq!(
            split("event=e u=\"\\u{110000}\""),
            Err(FieldError::BadEscape)
        );
        assert_eq!(split("event=e u=\"a\"b"), Err(FieldError::Unterminated));
        assert_eq!(split("event=e u=\"a\\"), Err(FieldError::Unterminated));
        let many: String = (0..70).map(|i| format!("k{i}=v ")).collect();
        assert_eq!(split(&many), Err(FieldError::TooMany));
    }
}
