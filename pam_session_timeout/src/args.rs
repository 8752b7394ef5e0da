//! Module arguments from the PAM config line.

use std::path::PathBuf;
use std::time::Duration;

use session_timeout_proto::DEFAULT_SOCKET;

/// What to do when the daemon cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Let the login proceed and log why.
    Open,
    /// Refuse the session with PAM_SESSION_ERR.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    pub socket: PathBuf,
    pub fail: FailMode,
    /// Bound on the whole exchange with the daemon: connect, send, receive.
    pub timeout: Duration,
    /// Do not show the login banner.
    pub quiet: bool,
}

impl Default for ModuleArgs {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            fail: FailMode::Open,
            timeout: Duration::from_millis(500),
            quiet: false,
        }
    }
}

/// Largest accepted `timeout_ms`: a login must never hang on us for long.
const MAX_TIMEOUT_MS: u64 = 10_000;

impl ModuleArgs {
    /// Parses `socket=PATH fail=open|closed timeout_ms=N quiet`.
    ///
    /// Returns the arguments and one message per argument that was not
    /// understood; those are logged and otherwise ignored, so a typo never
    /// locks anybody out.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> (Self, Vec<String>) {
        let mut out = Self::default();
        let mut problems = Vec::new();
        for arg in args {
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg, None),
            };
            match (key, value) {
                ("socket", Some(v)) if v.starts_with('/') => out.socket = PathBuf::from(v),
                ("fail", Some("open")) => out.fail = FailMode::Open,
                ("fail", Some("closed")) => out.fail = FailMode::Closed,
                ("timeout_ms", Some(v)) => match v.parse::<u64>() {
                    Ok(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => {
                        out.timeout = Duration::from_millis(ms)
                    }
                    _ => problems.push(format!(
                        "ignoring timeout_ms={v}: expected a whole number of milliseconds from 1 to {MAX_TIMEOUT_MS}"
                    )),
                },
                ("quiet", None) => out.quiet = true,
                _ => problems.push(format!("ignoring unknown or malformed argument {arg:?}")),
            }
        }
        (out, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let (a, p) = ModuleArgs::parse([]);
        assert_eq!(a, ModuleArgs::default());
        assert_eq!(
            a.socket,
            PathBuf::from("/run/session-timeout/timeoutd.sock")
        );
        assert_eq!(a.fail, FailMode::Open);
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert!(p.is_empty());
    }

    #[test]
    fn all_arguments() {
        let (a, p) = ModuleArgs::parse([
            "socket=/tmp/x.sock",
            "fail=closed",
            "timeout_ms=300",
            "quiet",
        ]);
        assert_eq!(a.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(a.fail, FailMode::Closed);
        assert_eq!(a.timeout, Duration::from_millis(300));
        assert!(a.quiet);
        assert!(p.is_empty());
    }

    #[test]
    fn bad_arguments_are_reported_and_ignored() {
        let (a, p) = ModuleArgs::parse([
            "fail=maybe",
            "timeout_ms=0",
            "timeout_ms=99999999",
            "socket=relative",
            "bogus",
        ]);
        assert_eq!(a, ModuleArgs::default());
        assert_eq!(p.len(), 5);
        assert!(p[1].contains("timeout_ms=0"));
    }
}
