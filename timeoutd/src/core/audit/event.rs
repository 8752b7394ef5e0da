//! Structured audit events, rendered as `event=NAME key=value ...` lines.
//!
//! Values are escaped with [`crate::core::audit::escape::log_value`], so a user-controlled
//! value can never add a field or break the line.

use std::fmt;

use crate::core::audit::escape::log_value;

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
    pub(crate) fn code(self) -> u8 {
        match self {
            Severity::Err => 3,
            Severity::Warning => 4,
            Severity::Notice => 5,
            Severity::Info => 6,
        }
    }

    /// Lower-case name as used by syslog tools (`err`, `warning`, ...).
    pub(crate) fn as_str(self) -> &'static str {
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

/// Declares [`EventName`] with its list and its text from one table, so
/// that no name can be left out of [`EventName::ALL`].
macro_rules! event_names {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Every event the daemon logs. The names are an interface (log
        /// parsers, alerts): each is written here once, and README.md's
        /// "Events" section lists them all, in this order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventName {
            $($(#[doc = $doc])* $variant,)*
        }

        impl EventName {
            /// Every event name, in the order of the table.
            #[cfg(test)]
            pub(crate) const ALL: &'static [EventName] = &[$(EventName::$variant,)*];

            /// The name as written after `event=`.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(EventName::$variant => $name,)*
                }
            }
        }
    };
}

event_names! {
    /// A login registered and is now watched.
    SessionOpen => "session_open",
    /// The login's terminal was found.
    SessionTty => "session_tty",
    /// The login's SSH connection was found (`conn=`, `local=`, `remote=`,
    /// `activity_source=client`), or cannot be read and today's rules apply
    /// (`activity_source=pty|io`, `reason=`).
    SessionConnection => "session_connection",
    /// A warning was written to the session's terminals.
    SessionWarn => "session_warn",
    /// A limit ran out (`reason=idle|max|cert_expired|deadline|runtime_max`).
    SessionExpired => "session_expired",
    /// Signals were sent to the session's processes (`signal=`, `pids=`).
    SessionSignal => "session_signal",
    /// Processes still survive after the fast kill rounds (`survivors=`,
    /// `survivors_by_uid=UID:N,...`).
    SessionKillStalled => "session_kill_stalled",
    /// A final check proved the session's processes gone (`survivors=0`,
    /// `root_spared=`).
    SessionTerminated => "session_terminated",
    /// The session ended by itself (`reason=logout|leader_gone|lost_while_down`, `duration=`).
    SessionClose => "session_close",
    /// What an ended session leaves as evidence, logged once per session
    /// right after its `session_close` or `session_terminated`.
    SessionSummary => "session_summary",
    /// A later look changed which rule applies.
    SessionRematched => "session_rematched",
    /// The terminal's timestamps were set by hand.
    TamperSuspected => "tamper_suspected",
    /// An administrator ended the session.
    SessionKilled => "session_killed",
    /// The session was ended because its user was revoked.
    SessionRevoked => "session_revoked",
    /// A session opened inside a login (su, sudo) ends because that login
    /// ends (`login=`, the outer session's id).
    SessionEndedWithLogin => "session_ended_with_login",
    /// A revocation was added.
    RevokeAdded => "revoke_added",
    /// A revocation was lifted or expired.
    RevokeRemoved => "revoke_removed",
    /// A login of a revoked user was refused.
    LoginRefused => "login_refused",
    /// A re-validation check through PAM found an account invalid, or a
    /// password change due (`result=`, `pam_result=`, `sessions_ended=`).
    RevalidateResult => "revalidate_result",
    /// A re-validation check got no answer (directory unavailable, timeout,
    /// any other error; `pam_result=`, `action=kept|ended`).
    RevalidateUnavailable => "revalidate_unavailable",
    /// A caller asked for something they may not do.
    RequestDenied => "request_denied",
    /// A request could not be decoded; its connection is closed.
    RequestMalformed => "request_malformed",
    /// Connections are being turned away (too many open, or accept failed;
    /// `detail=`), logged at most every 10 seconds.
    ConnectionLimit => "connection_limit",
    /// Lines about one caller without rights were held back; `count=` says how many.
    LogSuppressed => "log_suppressed",
    /// Lines could not be delivered to syslog; said once delivery works again.
    LogLinesDropped => "log_lines_dropped",
    /// A configuration was loaded.
    ConfigLoaded => "config_loaded",
    /// A configuration was refused: at start-up the daemon does not start;
    /// on reload the running policy stays in force.
    ConfigRejected => "config_rejected",
    /// The host is set up in a way that weakens enforcement.
    PostureWarning => "posture_warning",
    /// A session from durable state is watched again after a restart.
    SessionRestored => "session_restored",
    /// A login opened while the daemon was down is now watched.
    SessionAdopted => "session_adopted",
    /// Sessions were restored or adopted at start-up (`restored=`, `adopted=`).
    StateRestored => "state_restored",
    /// Durable state could not be written.
    StateWriteFailed => "state_write_failed",
    /// Durable state (sessions or revocations) could not be read, whole or in part.
    StateReadFailed => "state_read_failed",
    /// The daemon started.
    DaemonStart => "daemon_start",
    /// The daemon stopped on a signal.
    DaemonStop => "daemon_stop",
    /// The daemon could not start (`error=`).
    DaemonFailed => "daemon_failed",
    /// A login used an OpenSSH certificate that could not be read; it gets no
    /// certificate deadline (`error=`).
    CertUnreadable => "cert_unreadable",
    /// An administrator set a deadline for a user or group (`target=`, `at=`).
    DeadlineSet => "deadline_set",
    /// An administrator's deadline was cleared.
    DeadlineCleared => "deadline_cleared",
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit event: a name, ordered fields and a severity (default Info).
///
/// ```
/// use timeoutd::core::audit::event::{Event, EventName, Severity};
/// let ev = Event::new(EventName::SessionKilled)
///     .field("user", "alice")
///     .field("reason", "idle limit")
///     .with_severity(Severity::Notice);
/// assert_eq!(ev.to_string(), r#"event=session_killed user=alice reason="idle limit""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    name: EventName,
    fields: Vec<(&'static str, String)>,
    severity: Severity,
    /// Set on lines that a caller without rights can cause: such lines are
    /// rate-limited per uid when logged. Session events never carry it.
    caused_by: Option<u32>,
}

impl Event {
    /// A new event with no fields and severity Info.
    pub fn new(name: EventName) -> Event {
        Event {
            name,
            fields: Vec::new(),
            severity: Severity::Info,
            caused_by: None,
        }
    }

    /// Appends `key=value`. Fields keep their order; a repeated key is kept
    /// twice.
    #[must_use]
    pub fn field(mut self, key: &'static str, value: impl fmt::Display) -> Event {
        self.fields.push((key, value.to_string()));
        self
    }

    /// Appends `key=value` only when `value` is `Some`.
    #[must_use]
    pub(crate) fn field_opt(self, key: &'static str, value: Option<impl fmt::Display>) -> Event {
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

    /// The severity (Info unless set with [`Event::with_severity`]).
    pub(crate) fn severity(&self) -> Severity {
        self.severity
    }

    /// Marks a line that the caller `uid` can cause at will (a refused or
    /// malformed request, a refused connection), so it is rate-limited.
    #[must_use]
    pub(crate) fn caused_by(mut self, uid: u32) -> Event {
        self.caused_by = Some(uid);
        self
    }

    /// The uid this line is rate-limited under, if any.
    pub(crate) fn rate_key(&self) -> Option<(u32, EventName)> {
        self.caused_by.map(|uid| (uid, self.name))
    }
}

/// What tests look at in an event; the daemon itself only renders it.
#[cfg(test)]
impl Event {
    /// The event name.
    pub(crate) fn name(&self) -> &'static str {
        self.name.as_str()
    }

    /// The unescaped value of the first field named `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in order, unescaped.
    pub(crate) fn fields(&self) -> &[(&'static str, String)] {
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
        f.write_str(&log_value(self.name.as_str()))?;
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
        let ev = Event::new(EventName::SessionWarn)
            .field("user", "alice")
            .field("tty", "pts/3")
            .field("idle_s", 840)
            .field("msg", "you will be logged out");
        assert_eq!(
            ev.to_string(),
            "event=session_warn user=alice tty=pts/3 idle_s=840 msg=\"you will be logged out\""
        );
        assert_eq!(ev.name(), "session_warn");
        assert_eq!(ev.get("idle_s"), Some("840"));
        assert_eq!(ev.get("missing"), None);
        assert_eq!(ev.fields().len(), 4);
    }

    #[test]
    fn default_severity_is_info() {
        let ev = Event::new(EventName::DaemonStart);
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
        let ev = Event::new(EventName::SessionOpen)
            .field("user", "x event=forged")
            .field("rhost", "\u{1b}]0;pwned\u{7}\nevent=fake")
            .field("empty", "");
        let s = ev.to_string();
        assert_eq!(
            s,
            "event=session_open user=\"x event=forged\" rhost=\"\\x1b]0;pwned\\x07\\nevent=fake\" empty=\"\""
        );
        assert!(!s.chars().any(char::is_control));
        // The raw value is still available to tests.
        assert_eq!(ev.get("user"), Some("x event=forged"));
    }

    #[test]
    fn optional_fields_and_bad_keys() {
        let ev = Event::new(EventName::DaemonStop)
            .field_opt("a", Some(1))
            .field_opt("b", None::<u32>)
            .field("bad key=", "v");
        assert_eq!(ev.to_string(), "event=daemon_stop a=1 bad_key_=v");
    }

    /// The names README.md's "Events" section lists, one `- \`name\`` item each, in order.
    fn readme_event_names() -> Vec<String> {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let section = readme
            .split("\n## Events\n")
            .nth(1)
            .expect("README.md has an \"## Events\" section");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter_map(|line| line.strip_prefix("- `"))
            .filter_map(|rest| rest.split('`').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_readme_lists_every_event_name_and_no_other() {
        let documented = readme_event_names();
        let known: Vec<String> = EventName::ALL
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        assert_eq!(
            documented, known,
            "README.md's Events section and EventName::ALL differ"
        );
    }

    #[test]
    fn event_names_are_distinct_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for n in EventName::ALL.iter().copied() {
            assert!(seen.insert(n.as_str()), "{} twice", n.as_str());
            assert!(n
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(n.to_string(), n.as_str());
        }
    }
}
