//! Escaping of untrusted text before it reaches a terminal or a log line.
//!
//! Everything a user or a client controls (user name, rhost, message text,
//! process names) must pass through one of these functions first. See
//! CVE-2024-28085 (`wall` wrote escape sequences to other users' terminals).
//!
//! Both functions are pure and total: any `&str` is accepted, nothing panics.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that reorder or hide text on a terminal or in a log viewer
/// although they are not control characters in the Unicode `Cc` sense:
/// bidirectional overrides / isolates and the Unicode line and paragraph
/// separators. They are escaped like control characters.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// True for C0 controls (U+0000..U+001F), DEL (U+007F) and C1 controls
/// (U+0080..U+009F). `char::is_control` is exactly the `Cc` category.
fn is_cc(c: char) -> bool {
    c.is_control()
}

/// Appends the escape for `c`: `\xNN` below U+0080, `\u{NN}` above.
pub(crate) fn push_escape(out: &mut String, c: char) {
    let v = u32::from(c);
    // Writing to a String cannot fail.
    let _ = if v < 0x80 {
        write!(out, "\\x{v:02x}")
    } else {
        write!(out, "\\u{{{v:x}}}")
    };
}

/// Makes `s` safe to write to somebody's terminal.
///
/// Keeps printable characters, bell (`\u{7}`), tab and newline. Every other
/// C0 control (including ESC and `\r`), DEL, every C1 control
/// (U+0080..U+009F, e.g. the single-character CSI U+009B) and the bidi /
/// line-separator characters listed in [`is_deceptive`] are shown as
/// `\x1b`-style (below U+0080) or `\u{9b}`-style escapes.
pub fn for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{7}' | '\t' | '\n' => out.push(c),
            c if is_cc(c) || is_deceptive(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// Bytes that may appear in an unquoted `key=value` log value: all ASCII,
/// so a value is checked byte by byte, with no UTF-8 decoding (a byte of a
/// longer character is never one of them).
fn is_bare_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'.' | b'_' | b':' | b'/' | b'@' | b'+' | b',' | b'-' | b'~' | b'%' | b'[' | b']'
        )
}

/// Formats `s` as the value of a `key=value` pair in a syslog line.
///
/// - Non-empty strings made only of ASCII letters, digits and
///   `. _ : / @ + , - ~ % [ ]` are returned bare (`alice`, `pts/3`,
///   `[::1]:22`).
/// - Everything else is double-quoted. Inside the quotes `"` becomes `\"`,
///   `\` becomes `\\`, newline / tab / carriage return become `\n` / `\t` /
///   `\r`, other C0 controls and DEL become `\xNN`, C1 controls and the bidi /
///   line-separator characters become `\u{NN}`. Other printable Unicode
///   (e.g. `José`) is kept as is.
/// - The empty string becomes `""`.
///
/// The result never contains a space outside quotes, an unescaped `"`, or any
/// control character, so a line of such pairs can be split again unambiguously.
pub(crate) fn log_value(s: &str) -> Cow<'_, str> {
    if !s.is_empty() && s.bytes().all(is_bare_safe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_cc(c) || is_deceptive(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_keeps_printable_bell_tab_newline() {
        assert_eq!(for_terminal("hello, world"), "hello, world");
        assert_eq!(for_terminal("a\tb\nc\u{7}"), "a\tb\nc\u{7}");
        assert_eq!(for_terminal("José ünïcödé 日本"), "José ünïcödé 日本");
        assert_eq!(for_terminal(""), "");
        assert_eq!(for_terminal("back\\slash"), "back\\slash");
    }

    #[test]
    fn terminal_escapes_c0_del_c1() {
        assert_eq!(for_terminal("\u{1b}[2J"), "\\x1b[2J");
        assert_eq!(for_terminal("a\rb"), "a\\x0db");
        assert_eq!(for_terminal("\0"), "\\x00");
        assert_eq!(for_terminal("\u{7f}"), "\\x7f");
        assert_eq!(for_terminal("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(for_terminal("\u{80}\u{9f}"), "\\u{80}\\u{9f}");
        assert_eq!(for_terminal("\u{8}\u{c}\u{b}"), "\\x08\\x0c\\x0b");
    }

    #[test]
    fn terminal_escapes_bidi_overrides() {
        assert_eq!(for_terminal("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(for_terminal("\u{2028}"), "\\u{2028}");
    }

    #[test]
    fn terminal_output_has_no_dangerous_chars() {
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        let out = for_terminal(&all);
        assert!(out
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\u{7}' | '\t' | '\n')));
    }

    #[test]
    fn log_value_bare() {
        assert_eq!(log_value("alice"), "alice");
        assert_eq!(log_value("pts/3"), "pts/3");
        assert_eq!(log_value("192.0.2.1"), "192.0.2.1");
        assert_eq!(log_value("[2001:db8::1]:22"), "[2001:db8::1]:22");
        assert_eq!(log_value("user@example.com"), "user@example.com");
        assert_eq!(log_value("a-b_c+d,e"), "a-b_c+d,e");
        assert_eq!(log_value("-5"), "-5");
    }

    #[test]
    fn log_value_quoted() {
        assert_eq!(log_value(""), "\"\"");
        assert_eq!(log_value("two words"), "\"two words\"");
        assert_eq!(log_value("k=v"), "\"k=v\"");
        assert_eq!(log_value("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(log_value("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(log_value("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
        assert_eq!(log_value("\u{1b}[31m"), "\"\\x1b[31m\"");
        assert_eq!(log_value("\u{7f}"), "\"\\x7f\"");
        assert_eq!(log_value("\u{9b}"), "\"\\u{9b}\"");
        assert_eq!(log_value("José"), "\"José\"");
        assert_eq!(log_value("x\u{202e}y"), "\"x\\u{202e}y\"");
    }

    #[test]
    fn log_value_cannot_forge_fields() {
        let v = log_value("x\" event=forged user=\"root");
        assert!(v.starts_with('"') && v.ends_with('"'));
        // Every inner quote is escaped.
        let inner = &v[1..v.len() - 1];
        let mut prev_backslashes = 0usize;
        for c in inner.chars() {
            if c == '"' {
                assert_eq!(prev_backslashes % 2, 1, "unescaped quote in {v}");
            }
            prev_backslashes = if c == '\\' { prev_backslashes + 1 } else { 0 };
        }
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        assert!(!log_value(&all).chars().any(char::is_control));
    }
}
