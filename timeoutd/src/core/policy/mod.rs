//! The policy: ordered rules over `[defaults]`; the first rule whose every
//! listed criterion matches decides the limits. Pure data and matching.

pub(crate) mod auth;
pub(crate) mod matching;
pub(crate) mod template;
pub(crate) mod window;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::core::policy::matching::{glob, has_wildcard, rhost_matches, HostPattern};
use crate::core::policy::template::Template;
use crate::core::policy::window::Windows;

/// How idle time is measured for a session without a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NottyMode {
    /// From the I/O of the session's processes (keepalives and rekeying count).
    Io,
    /// No idle limit; only the absolute limit applies.
    MaxOnly,
}

/// Which processes an expired session loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillScope {
    /// Every process of the login, escaped ones included.
    Session,
    /// Only the login's own sshd/login processes (weaker: detached jobs survive).
    Leader,
}

/// Whether a rule's deadlines are enforced or only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforce {
    /// Deadlines end the session (the default).
    On,
    /// Deadlines are logged (`session_expired ... dry_run=1`) and nothing is
    /// signalled: the session goes on.
    DryRun,
}

impl Enforce {
    /// As the config file and `--check-config` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::DryRun => "dry-run",
        }
    }
}

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
    /// Terminal output counts as activity too.
    pub count_output: bool,
    pub notty: NottyMode,
    pub kill_scope: KillScope,
    pub message: Template,
    /// Whether deadlines end the session or are only logged.
    pub enforce: Enforce,
    /// In dry-run, write the warnings to the terminal anyway.
    pub dry_run_warn: bool,
    /// The certificate's `valid_before` ends the session.
    pub end_at_cert_expiry: bool,
    /// Time-of-day windows (`hours`); `None`: logins at any time.
    pub hours: Option<Windows>,
    /// Daily quota (`daily`), the union of the user's sessions per local day.
    pub daily: Option<Duration>,
}

impl Limits {
    /// What applies when the file says nothing: the CIS/STIG-style baseline.
    pub fn builtin() -> Self {
        Self {
            idle: Some(Duration::from_secs(15 * 60)),
            max: Some(Duration::from_secs(12 * 3600)),
            warn: vec![Duration::from_secs(300), Duration::from_secs(60)],
            grace: Duration::from_secs(10),
            count_output: false,
            notty: NottyMode::Io,
            kill_scope: KillScope::Session,
            message: Template::default(),
            enforce: Enforce::On,
            dry_run_warn: false,
            end_at_cert_expiry: true,
            hours: None,
            daily: None,
        }
    }

    /// Whether deadlines are only logged, not enforced.
    pub fn dry_run(&self) -> bool {
        self.enforce == Enforce::DryRun
    }
}

/// What kind of terminal a session has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtyClass {
    Pty,
    /// A terminal that is not a pty (virtual console, serial line).
    Console,
    None,
}

impl TtyClass {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pty" => Some(Self::Pty),
            "console" => Some(Self::Console),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pty => "pty",
            Self::Console => "console",
            Self::None => "none",
        }
    }
}

/// What is known about a login when the policy is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFacts {
    pub user: String,
    /// Primary and supplementary groups, resolved through NSS at session open.
    pub groups: Vec<String>,
    pub service: String,
    pub rhost: String,
    pub tty: TtyClass,
    /// The authentication methods that succeeded (sshd's `SSH_AUTH_INFO_0`).
    pub auth: Vec<String>,
    /// Whether an OpenSSH certificate was used.
    pub certificate: bool,
}

/// The criteria of one rule; `None` means "any".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Criteria {
    pub users: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub services: Option<Vec<String>>,
    pub rhosts: Option<Vec<HostPattern>>,
    pub tty: Option<TtyClass>,
    /// Globs over the methods used; each must match one.
    pub auth: Option<Vec<String>>,
    pub certificate: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub criteria: Criteria,
    /// Fully resolved: unset fields already filled from `[defaults]`.
    /// Shared with every session the rule decides.
    pub limits: Arc<Limits>,
}

/// The whole policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub defaults: Arc<Limits>,
    pub rules: Vec<Rule>,
}

/// The result of matching: the rule's name and its resolved limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub rule: String,
    /// The rule's own, shared (a session holds a pointer, not a copy).
    pub limits: Arc<Limits>,
}

/// Why a rule did not match a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

impl Criteria {
    /// `Ok` if every listed criterion matches, else the first that does not, in words.
    pub fn check(&self, l: &LoginFacts) -> Result<(), Mismatch> {
        if let Some(users) = &self.users {
            if !users.iter().any(|p| glob(p, &l.user)) {
                return Err(Mismatch(format!(
                    "user {} matches none of users {}",
                    l.user,
                    list(users)
                )));
            }
        }
        if let Some(groups) = &self.groups {
            if !groups.iter().any(|g| l.groups.contains(g)) {
                return Err(Mismatch(format!(
                    "user {} (groups {}) is in none of groups {}",
                    l.user,
                    list(&l.groups),
                    list(groups)
                )));
            }
        }
        if let Some(services) = &self.services {
            if !services.iter().any(|p| glob(p, &l.service)) {
                return Err(Mismatch(format!(
                    "service {} matches none of services {}",
                    l.service,
                    list(services)
                )));
            }
        }
        if let Some(rhosts) = &self.rhosts {
            if !rhost_matches(rhosts, &l.rhost) {
                let shown: Vec<String> = rhosts
                    .iter()
                    .map(|p| format!("{}{}", if p.exclude { "!" } else { "" }, p.text))
                    .collect();
                let host = if l.rhost.is_empty() {
                    "(none, a local login)"
                } else {
                    &l.rhost
                };
                return Err(Mismatch(format!(
                    "rhost {host} is not selected by rhosts {}",
                    list(&shown)
                )));
            }
        }
        if let Some(tty) = self.tty {
            if tty != l.tty {
                return Err(Mismatch(format!(
                    "terminal is {}, the rule wants tty = {}",
                    l.tty.as_str(),
                    tty.as_str()
                )));
            }
        }
        auth::check(self, l)
    }

    /// Whether every login this rule's criteria select is also selected by
    /// `self` (so a later rule with `later` criteria can never match).
    /// Conservative: `false` when unsure.
    pub fn covers(&self, later: &Criteria) -> bool {
        fn names_cover(
            earlier: &Option<Vec<String>>,
            later: &Option<Vec<String>>,
            globbing: bool,
        ) -> bool {
            match (earlier, later) {
                (None, _) => true,
                (Some(e), _) if globbing && e.iter().any(|p| p == "*") => true,
                (Some(_), None) => false,
                (Some(e), Some(l)) => l.iter().all(|lp| {
                    e.contains(lp)
                        || (globbing && !has_wildcard(lp) && e.iter().any(|ep| glob(ep, lp)))
                }),
            }
        }
        let rhosts = match (&self.rhosts, &later.rhosts) {
            (None, _) => true,
            (Some(e), Some(l)) => e == l,
            (Some(_), None) => false,
        };
        let tty = self.tty.is_none() || self.tty == later.tty;
        names_cover(&self.users, &later.users, true)
            && names_cover(&self.groups, &later.groups, false)
            && names_cover(&self.services, &later.services, true)
            && rhosts
            && tty
            && auth::covers(self, later)
    }
}

impl Policy {
    pub fn new(defaults: Limits) -> Self {
        Self {
            defaults: Arc::new(defaults),
            rules: Vec::new(),
        }
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn decide(&self, login: &LoginFacts) -> Decision {
        self.explain(login).0
    }

    /// The decision, with why each earlier rule did not match.
    pub fn explain(&self, login: &LoginFacts) -> (Decision, Vec<(String, Mismatch)>) {
        let mut skipped = Vec::new();
        for rule in &self.rules {
            match rule.criteria.check(login) {
                Ok(()) => {
                    let d = Decision {
                        rule: rule.name.clone(),
                        limits: rule.limits.clone(),
                    };
                    return (d, skipped);
                }
                Err(why) => skipped.push((rule.name.clone(), why)),
            }
        }
        let d = Decision {
            rule: "defaults".to_owned(),
            limits: self.defaults.clone(),
        };
        (d, skipped)
    }

    /// Rules that can never match, each with the earlier rule that shadows it.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, later) in self.rules.iter().enumerate() {
            if let Some(i) = self.rules[..j]
                .iter()
                .position(|r| r.criteria.covers(&later.criteria))
            {
                out.push((j, i));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(user: &str, groups: &[&str], service: &str, rhost: &str, tty: TtyClass) -> LoginFacts {
        LoginFacts {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            service: service.into(),
            rhost: rhost.into(),
            tty,
            auth: Vec::new(),
            certificate: false,
        }
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    fn rule(name: &str, criteria: Criteria, idle_s: u64) -> Rule {
        Rule {
            name: name.into(),
            criteria,
            limits: Limits {
                idle: Some(Duration::from_secs(idle_s)),
                ..Limits::builtin()
            }
            .into(),
        }
    }

    /// The CIS/STIG split from the docs: privileged 10m, automation exempt, console 5m.
    fn sample() -> Policy {
        let mut p = Policy::new(Limits::builtin());
        p.rules = vec![
            rule(
                "privileged",
                Criteria {
                    groups: strings(&["sudo", "wheel"]),
                    services: strings(&["sshd*"]),
                    ..Criteria::default()
                },
                600,
            ),
            rule(
                "automation",
                Criteria {
                    users: strings(&["backup", "deploy-*"]),
                    ..Criteria::default()
                },
                0,
            ),
            rule(
                "untrusted",
                Criteria {
                    rhosts: Some(vec![
                        HostPattern::parse("!10.0.0.0/8").unwrap(),
                        HostPattern::parse("*").unwrap(),
                    ]),
                    ..Criteria::default()
                },
                1200,
            ),
            rule(
                "console",
                Criteria {
                    tty: Some(TtyClass::Console),
                    ..Criteria::default()
                },
                300,
            ),
        ];
        p
    }

    #[test]
    fn first_match_wins_and_supplementary_groups_count() {
        let p = sample();
        let d = p.decide(&facts(
            "alice",
            &["alice", "wheel"],
            "sshd",
            "10.1.1.1",
            TtyClass::Pty,
        ));
        assert_eq!(d.rule, "privileged");
        // A deploy user in sudo is privileged first: order matters.
        let d = p.decide(&facts(
            "deploy-web",
            &["sudo"],
            "sshd",
            "10.1.1.1",
            TtyClass::Pty,
        ));
        assert_eq!(d.rule, "privileged");
        let d = p.decide(&facts(
            "deploy-web",
            &["deploy"],
            "sshd",
            "10.1.1.1",
            TtyClass::Pty,
        ));
        assert_eq!(d.rule, "automation");
    }

    #[test]
    fn every_criterion_must_match() {
        let p = sample();
        // In wheel but on the console service: not privileged (services), falls to console.
        let d = p.decide(&facts("alice", &["wheel"], "login", "", TtyClass::Console));
        assert_eq!(d.rule, "console");
        let d = p.decide(&facts(
            "bob",
            &["users"],
            "sshd",
            "192.0.2.7",
            TtyClass::Pty,
        ));
        assert_eq!(d.rule, "untrusted");
        let d = p.decide(&facts("bob", &["users"], "sshd", "10.2.3.4", TtyClass::Pty));
        assert_eq!(
            (d.rule.as_str(), d.limits.idle),
            ("defaults", Some(Duration::from_secs(900)))
        );
    }

    #[test]
    fn explanation_says_why_each_earlier_rule_failed() {
        let p = sample();
        let (d, why) = p.explain(&facts("bob", &["users"], "sshd", "10.2.3.4", TtyClass::Pty));
        assert_eq!(d.rule, "defaults");
        let text: Vec<String> = why.iter().map(|(n, m)| format!("{n}: {m}")).collect();
        assert_eq!(text.len(), 4);
        assert!(
            text[0].contains("is in none of groups [sudo, wheel]"),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("matches none of users [backup, deploy-*]"),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("rhost 10.2.3.4 is not selected"),
            "{}",
            text[2]
        );
        assert!(text[3].contains("terminal is pty"), "{}", text[3]);
    }

    #[test]
    fn shadowed_rules_are_found() {
        let mut p = sample();
        assert!(p.shadowed().is_empty());
        p.rules.push(rule(
            "deploy-web-only",
            Criteria {
                users: strings(&["deploy-web"]),
                ..Criteria::default()
            },
            60,
        ));
        p.rules.push(rule("catch-all", Criteria::default(), 60));
        p.rules.push(rule(
            "never",
            Criteria {
                services: strings(&["login"]),
                ..Criteria::default()
            },
            60,
        ));
        // deploy-web-only is covered by automation (deploy-*); never by catch-all.
        assert_eq!(p.shadowed(), [(4, 1), (6, 5)]);
    }

    #[test]
    fn no_rules_means_defaults() {
        let p = Policy::new(Limits::builtin());
        let d = p.decide(&facts("x", &[], "sshd", "", TtyClass::None));
        assert_eq!(
            d,
            Decision {
                rule: "defaults".into(),
                limits: Limits::builtin().into()
            }
        );
    }
}
