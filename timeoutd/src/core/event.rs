//! Structured audit events, rendered as `event=NAME key=value ...` lines.
//!
//! Values are escaped with [`crate::core::escape::log_value`], so a user-controlled
//! value can never add a field or break the line.

use std::fmt;

use crate::core::escape::log_value;

/// Syslog severity of an event (RFC 5424 numeric codes in [`Severity::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Severity {
    Err,
    Warning,
    Notice,
    #[default]
    Info,
}

impl Severity {
    /// Numeric syslog severity: err 3, warning 4, notice 5, info 6.
    pub fn code(self) -> u8 {
        match self {
            Severity::Err => 3,
            Severity::Warning => 4,
            Severity::Notice => 5,
            Severity::Info => 6,
        }
    }

    /// Lower-case name as used by syslog tools (`err`, `warning`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Err => "err",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit event: a name, ordered fields and a severity (default Info).
///
/// ```
/// use timeoutd::core::event::{Event, Severity};
/// let ev = Event::new("session_killed")
///     .field("user", "alice")
///     .field("reason", "idle limit")
///     .with_severity(Severity::Notice);
/// assert_eq!(ev.to_string(), r#"event=session_killed user=alice reason="idle limit""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    name: &'static str,
    fields: Vec<(&'static str, String)>,
    severity: Severity,
}

impl Event {
    /// A new event with no fields and severity Info.
    pub fn new(name: &'static str) -> Event {
        Event {
            name,
            fields: Vec::new(),
            severity: Severity::Info,
        }
    }

    /// Appends `key=value`. Fields keep their order; a repeated key is kept
    /// twice (and [`Event::get`] returns the first).
    #[must_use]
    pub fn field(mut self, key: &'static str, value: impl fmt::Display) -> Event {
        self.fields.push((key, value.to_string()));
        self
    }

    /// Appends `key=value` only when `value` is `Some`.
    #[must_use]
    pub fn field_opt(self, key: &'static str, value: Option<impl fmt::Display>) -> Event {
        match value {
            Some(v) => self.field(key, v),
            None => self,
        }
    }

    /// Sets the severity.
    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Event {
        self.severity = severity;
        self
    }

    /// The event name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The severity (Info unless set with [`Event::with_severity`]).
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The unescaped value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in order, unescaped.
    pub fn fields(&self) -> &[(&'static str, String)] {
        &self.fields
    }
}

/// Writes a key. Keys are `&'static str` chosen by the daemon's code; any
/// character outside `[A-Za-z0-9_.-]` is still replaced by `_` so that even a
/// careless key cannot break the line format.
fn write_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    if key.is_empty() {
        return f.write_str("_");
    }
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            c
        } else {
            '_'
        };
        fmt::Write::write_char(f, c)?;
    }
    Ok(())
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("event=")?;
        f.write_str(&log_value(self.name))?;
        for (k, v) in &self.fields {
            f.write_str(" ")?;
            write_key(f, k)?;
            f.write_str("=")?;
            f.write_str(&log_value(v))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_in_order() {
        let ev = Event::new("warn_sent")
            .field("user", "alice")
            .field("tty", "pts/3")
            .field("idle_s", 840)
            .field("msg", "you will be logged out");
        assert_eq!(
            ev.to_string(),
            "event=warn_sent user=alice tty=pts/3 idle_s=840 msg=\"you will be logged out\""
        );
        assert_eq!(ev.name(), "warn_sent");
        assert_eq!(ev.get("idle_s"), Some("840"));
        assert_eq!(ev.get("missing"), None);
        assert_eq!(ev.fields().len(), 4);
    }

    #[test]
    fn default_severity_is_info() {
        let ev = Event::new("x");
        assert_eq!(ev.severity(), Severity::Info);
        let ev = ev.with_severity(Severity::Err);
        assert_eq!(ev.severity(), Severity::Err);
        assert_eq!(Severity::Err.code(), 3);
        assert_eq!(Severity::Warning.code(), 4);
        assert_eq!(Severity::Notice.code(), 5);
        assert_eq!(Severity::Info.code(), 6);
        assert_eq!(Severity::Notice.to_string(), "notice");
    }

    #[test]
    fn hostile_values_stay_inside_their_field() {
        let ev = Event::new("login")
            .field("user", "x event=forged")
            .field("rhost", "\u{1b}]0;pwned\u{7}\nevent=fake")
            .field("empty", "");
        let s = ev.to_string();
        assert_eq!(
            s,
            "event=login user=\"x event=forged\" rhost=\"\\x1b]0;pwned\\x07\\nevent=fake\" empty=\"\""
        );
        assert!(!s.chars().any(char::is_control));
        // The raw value is still available to tests.
        assert_eq!(ev.get("user"), Some("x event=forged"));
    }

    #[test]
    fn optional_fields_and_bad_keys() {
        let ev = Event::new("e")
            .field_opt("a", Some(1))
            .field_opt("b", None::<u32>)
            .field("bad key=", "v");
        assert_eq!(ev.to_string(), "event=e a=1 bad_key_=v");
    }
}
