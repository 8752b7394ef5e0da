//! The re-validation keys of `[daemon]`: how often every user with a live
//! session is checked through the PAM account stack, under which service,
//! how long a check may take, and what an unanswered check means.
//!
//! Unlike the rest of `[daemon]`, these four are applied again on reload.

use std::time::Duration;

use toml::Spanned;

use crate::config::parse::Errors;
use crate::core::time::duration;

/// The PAM service re-validation runs unless told otherwise.
pub const DEFAULT_SERVICE: &str = "session-timeout";
/// The longest a check may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `revalidate_timeout` may not exceed this (`timeoutctl revalidate` waits for it).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// What an unanswered check (directory unavailable, timeout, any other
/// error) does to the user's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unavailable {
    /// Sessions are kept; `revalidate_unavailable` is logged.
    #[default]
    Keep,
    /// Sessions end, as for an invalid account.
    End,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::End => "end",
        }
    }
}

/// `[daemon] revalidate*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevalidateConfig {
    /// `None`: re-validation is off (the default).
    pub interval: Option<Duration>,
    pub service: String,
    pub timeout: Duration,
    pub unavailable: Unavailable,
}

impl Default for RevalidateConfig {
    fn default() -> Self {
        Self {
            interval: None,
            service: DEFAULT_SERVICE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            unavailable: Unavailable::Keep,
        }
    }
}

/// The raw keys, as `[daemon]` holds them.
pub(super) struct RawRevalidate<'a> {
    pub(super) interval: &'a Option<Spanned<String>>,
    pub(super) service: &'a Option<Spanned<String>>,
    pub(super) timeout: &'a Option<Spanned<String>>,
    pub(super) unavailable: &'a Option<Spanned<String>>,
}

/// Checks and resolves the keys; every error is located.
pub(super) fn revalidate_section(raw: &RawRevalidate, errs: &mut Errors) -> RevalidateConfig {
    let d = RevalidateConfig::default();
    let interval =
        raw.interval
            .as_ref()
            .map_or(d.interval, |s| match duration::parse_limit(s.get_ref()) {
                Ok(Some(i)) if i < Duration::from_secs(1) => {
                    errs.at(
                        s.span(),
                        "revalidate must be at least 1s, or \"off\"".into(),
                    );
                    None
                }
                Ok(i) => i,
                Err(e) => {
                    errs.at(s.span(), format!("revalidate: bad duration: {e}"));
                    None
                }
            });
    let service = raw.service.as_ref().map_or(d.service.clone(), |s| {
        let name = s.get_ref();
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
        if !ok {
            errs.at(
                s.span(),
                format!("revalidate_service {name:?} must be a PAM service name (a file name in /etc/pam.d: letters, digits, '-', '_', '.', '@')"),
            );
            return d.service.clone();
        }
        name.clone()
    });
    let timeout = raw
        .timeout
        .as_ref()
        .map_or(d.timeout, |s| match duration::parse(s.get_ref()) {
            Ok(t) if !t.is_zero() && t <= MAX_TIMEOUT => t,
            Ok(_) => {
                errs.at(
                    s.span(),
                    format!(
                        "revalidate_timeout must be between 1s and {}",
                        duration::Human(MAX_TIMEOUT)
                    ),
                );
                d.timeout
            }
            Err(e) => {
                errs.at(s.span(), format!("revalidate_timeout: bad duration: {e}"));
                d.timeout
            }
        });
    let unavailable =
        raw.unavailable
            .as_ref()
            .map_or(d.unavailable, |s| match s.get_ref().as_str() {
                "keep" => Unavailable::Keep,
                "end" => Unavailable::End,
                other => {
                    errs.at(
                        s.span(),
                        format!(
                            "revalidate_unavailable must be \"keep\" or \"end\", got {other:?}"
                        ),
                    );
                    d.unavailable
                }
            });
    RevalidateConfig {
        interval,
        service,
        timeout,
        unavailable,
    }
}
