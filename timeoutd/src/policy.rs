//! The policy: which limits apply to a session. Pure data and matching.

use std::time::Duration;

use crate::template::Template;

/// The limits that apply to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Idle limit; `None` is "off".
    pub idle: Option<Duration>,
    /// Absolute limit from registration; `None` is "off".
    pub max: Option<Duration>,
    /// Warnings before a deadline, longest first.
    pub warn: Vec<Duration>,
    /// Time between SIGHUP and the next signal.
    pub grace: Duration,
    pub message: Template,
}

impl Limits {
    /// What applies when the file says nothing: the CIS/STIG-style baseline.
    pub fn builtin() -> Self {
        Self {
            idle: Some(Duration::from_secs(15 * 60)),
            max: Some(Duration::from_secs(12 * 3600)),
            warn: vec![Duration::from_secs(300), Duration::from_secs(60)],
            grace: Duration::from_secs(10),
            message: Template::default(),
        }
    }
}

/// What is known about a login when the policy is applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginFacts {
    pub user: String,
    pub service: String,
    pub rhost: String,
}

/// The whole policy: defaults, and (in later versions) ordered rules.
#[derive(Debug, Clone)]
pub struct Policy {
    pub defaults: Limits,
}

/// The result of matching: the rule's name and its resolved limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub rule: String,
    pub limits: Limits,
}

impl Policy {
    pub fn new(defaults: Limits) -> Self {
        Self { defaults }
    }

    pub fn rule_count(&self) -> usize {
        0
    }

    pub fn decide(&self, _login: &LoginFacts) -> Decision {
        Decision {
            rule: "defaults".to_owned(),
            limits: self.defaults.clone(),
        }
    }
}
