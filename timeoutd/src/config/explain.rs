//! Human-readable rendering of a policy (`--check-config`) and of what it
//! would do to one login (`--explain`), like `sshd -T -C`.

use std::fmt::{self, Write};

use crate::config::Config;
use crate::core::policy::window::WindowState;
use crate::core::policy::{Criteria, KillScope, Limits, LoginFacts, NottyMode, TtyClass};
use crate::core::time::civil::Civil;
use crate::core::time::clock::Timestamp;
use crate::core::time::duration::{self, Human};

fn limits_line(l: &Limits) -> String {
    let warn: Vec<String> = l.warn.iter().map(|w| Human(*w).to_string()).collect();
    let enforce = if l.dry_run() {
        format!("enforce=dry-run dry_run_warn={}", l.dry_run_warn)
    } else {
        "enforce=on".to_owned()
    };
    format!(
        "idle={} max={} warn=[{}] grace={} count_output={} notty={} kill_scope={} end_at_cert_expiry={} {enforce}",
        duration::limit(l.idle),
        duration::limit(l.max),
        warn.join(", "),
        Human(l.grace),
        l.count_output,
        match l.notty {
            NottyMode::Io => "io",
            NottyMode::MaxOnly => "max-only",
        },
        match l.kill_scope {
            KillScope::Session => "session",
            KillScope::Leader => "leader",
        },
        l.end_at_cert_expiry
    ) + &clock_limits(l)
}

/// ` hours=[...] daily=...`, when the rule has them.
fn clock_limits(l: &Limits) -> String {
    let mut out = String::new();
    if let Some(h) = &l.hours {
        let w: Vec<String> = h.0.iter().map(|w| format!("{:?}", w.to_string())).collect();
        out.push_str(&format!(" hours=[{}]", w.join(", ")));
    }
    if let Some(d) = l.daily {
        out.push_str(&format!(" daily={}", Human(d)));
    }
    out
}

/// For `--explain`: when the matched rule's window next opens and closes,
/// and the quota's reset, at `now` in the config's zone.
pub fn clock(cfg: &Config, facts: &LoginFacts, now: Timestamp) -> String {
    let civil = &Civil::new(cfg.daemon.zone(), cfg.daemon.day_starts, 0);
    let limits = cfg.policy.decide(facts).limits;
    let mut out = String::new();
    if let Some(h) = &limits.hours {
        let line = match civil.window_state(h, now) {
            WindowState::Open { closes_at } => {
                format!("hours: open now; closes at {}", civil.local(closes_at))
            }
            WindowState::Closed { opens_at: None } => {
                "hours: closed now; opens not within a week".to_owned()
            }
            WindowState::Closed {
                opens_at: Some(open),
            } => {
                let close = match civil.window_state(h, open) {
                    WindowState::Open { closes_at } => civil.local(closes_at),
                    WindowState::Closed { .. } => "?".to_owned(),
                };
                format!(
                    "hours: closed now; opens at {}, closes at {close}",
                    civil.local(open)
                )
            }
        };
        let _ = writeln!(out, "{line}");
    }
    if let Some(d) = limits.daily {
        let _ = writeln!(
            out,
            "daily: {} per day; the day resets at {}",
            Human(d),
            civil.local(civil.next_reset(now))
        );
    }
    out
}

fn criteria_line(c: &Criteria) -> String {
    let mut parts = Vec::new();
    for (key, v) in [
        ("users", &c.users),
        ("groups", &c.groups),
        ("services", &c.services),
    ] {
        if let Some(v) = v {
            parts.push(format!("{key}=[{}]", v.join(", ")));
        }
    }
    if let Some(r) = &c.rhosts {
        let shown: Vec<String> = r
            .iter()
            .map(|p| format!("{}{}", if p.exclude { "!" } else { "" }, p.text))
            .collect();
        parts.push(format!("rhosts=[{}]", shown.join(", ")));
    }
    if let Some(t) = c.tty {
        parts.push(format!("tty={}", t.as_str()));
    }
    if let Some(a) = &c.auth {
        parts.push(format!("auth=[{}]", a.join(", ")));
    }
    if let Some(cert) = c.certificate {
        parts.push(format!("certificate={cert}"));
    }
    if parts.is_empty() {
        "every login".to_owned()
    } else {
        parts.join(" ")
    }
}

/// The effective configuration, as `--check-config` prints it.
pub fn describe(cfg: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: OK ({} rules)",
        cfg.path.display(),
        cfg.policy.rules.len()
    );
    let _ = writeln!(out, "socket    {}", cfg.daemon.socket.display());
    let _ = writeln!(out, "syslog    {}", cfg.daemon.syslog.display());
    let _ = writeln!(out, "state_dir {}", cfg.daemon.state_dir.display());
    let _ = writeln!(out, "{}", revalidate_line(&cfg.daemon.revalidate));
    if cfg.daemon.timezone.is_some() || cfg.daemon.day_starts != (0, 0) {
        let (h, m) = cfg.daemon.day_starts;
        let _ = writeln!(
            out,
            "timezone  {}, quota days start at {h:02}:{m:02}",
            cfg.daemon
                .timezone
                .as_deref()
                .unwrap_or("(host local time)")
        );
    }
    for (i, r) in cfg.policy.rules.iter().enumerate() {
        let _ = writeln!(out, "rule {} {:?}", i + 1, r.name);
        let _ = writeln!(out, "    match  {}", criteria_line(&r.criteria));
        let _ = writeln!(out, "    limits {}", limits_line(&r.limits));
    }
    let _ = writeln!(out, "defaults (no rule matched)");
    let _ = writeln!(out, "    limits {}", limits_line(&cfg.policy.defaults));
    for w in &cfg.warnings {
        let _ = writeln!(out, "{w}");
    }
    out
}

/// `revalidate off`, or the interval, service, timeout and what an unanswered check does.
fn revalidate_line(r: &crate::config::revalidate::RevalidateConfig) -> String {
    match r.interval {
        None => "revalidate off".to_owned(),
        Some(i) => format!(
            "revalidate every {} through PAM service {:?}, timeout {}, unavailable={}",
            crate::core::time::duration::Human(i),
            r.service,
            crate::core::time::duration::Human(r.timeout),
            r.unavailable.as_str()
        ),
    }
}

/// A word of `--explain` that does not describe a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactsError {
    /// A word without `=`.
    NotKeyValue(String),
    /// `tty=` something other than pty, console or none.
    BadTty(String),
    /// `certificate=` something other than true or false.
    BadCertificate(String),
    /// A key that is not user, groups, service, rhost or tty.
    UnknownKey(String),
    /// No `user=`.
    NoUser,
}

impl fmt::Display for FactsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotKeyValue(w) => write!(f, "expected key=value, got {w:?}"),
            Self::BadTty(v) => write!(f, "tty must be pty, console or none, got {v:?}"),
            Self::BadCertificate(v) => write!(f, "certificate must be true or false, got {v:?}"),
            Self::UnknownKey(k) => write!(
                f,
                "unknown key {k:?}; use user, groups, service, rhost, tty, auth, certificate"
            ),
            Self::NoUser => write!(f, "user=NAME is required"),
        }
    }
}

impl std::error::Error for FactsError {}

/// Builds the facts of a hypothetical login from `key=value` words:
/// user, service, rhost, tty (pty|console|none), groups (comma-separated),
/// auth (methods joined with `+` or `,`), certificate (true|false).
/// Without `groups=`, the user's groups are asked of `groups_of` (the
/// command line resolves them through NSS; this module touches no system).
pub fn parse_facts(
    words: &[String],
    groups_of: impl FnOnce(&str) -> Vec<String>,
) -> Result<LoginFacts, FactsError> {
    let mut facts = LoginFacts {
        user: String::new(),
        groups: Vec::new(),
        service: "sshd".to_owned(),
        rhost: String::new(),
        tty: TtyClass::Pty,
        auth: Vec::new(),
        certificate: false,
    };
    let mut groups = None;
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| FactsError::NotKeyValue(w.clone()))?;
        match k {
            "user" => facts.user = v.to_owned(),
            "service" => facts.service = v.to_owned(),
            "rhost" => facts.rhost = v.to_owned(),
            "tty" => {
                facts.tty = TtyClass::parse(v).ok_or_else(|| FactsError::BadTty(v.to_owned()))?
            }
            "auth" => {
                facts.auth = v
                    .split(['+', ','])
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "certificate" => {
                facts.certificate = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(FactsError::BadCertificate(v.to_owned())),
                }
            }
            "groups" => {
                groups = Some(
                    v.split(',')
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            _ => return Err(FactsError::UnknownKey(k.to_owned())),
        }
    }
    if facts.user.is_empty() {
        return Err(FactsError::NoUser);
    }
    facts.groups = groups.unwrap_or_else(|| groups_of(&facts.user));
    Ok(facts)
}

/// What the policy does to `facts`, in words.
pub fn explain(cfg: &Config, facts: &LoginFacts) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "login: user={} groups=[{}] service={} rhost={} tty={} auth={} certificate={}",
        facts.user,
        facts.groups.join(", "),
        facts.service,
        if facts.rhost.is_empty() {
            "(local)"
        } else {
            &facts.rhost
        },
        facts.tty.as_str(),
        if facts.auth.is_empty() {
            "(none)".to_owned()
        } else {
            facts.auth.join("+")
        },
        facts.certificate
    );
    let (decision, skipped) = cfg.policy.explain(facts);
    for (name, why) in &skipped {
        let _ = writeln!(out, "rule {name:?}: no match: {why}");
    }
    if decision.rule == "defaults" {
        let _ = writeln!(out, "no rule matched: [defaults] applies");
    } else {
        let _ = writeln!(out, "rule {:?}: MATCH", decision.rule);
    }
    let _ = writeln!(out, "limits: {}", limits_line(&decision.limits));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The groups of a user, when a test gives them itself.
    fn no_lookup(_user: &str) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn explains_the_first_match_and_why_earlier_rules_failed() {
        let cfg = crate::config::parse(
            Path::new("t.toml"),
            "[[rule]]\nname = \"priv\"\ngroups = [\"wheel\"]\nidle = \"10m\"\n\
             [[rule]]\nname = \"net\"\nrhosts = [\"!10.0.0.0/8\", \"*\"]\nmax = \"1h\"\n",
        )
        .unwrap();
        let words: Vec<String> = [
            "user=alice",
            "groups=staff",
            "service=sshd",
            "rhost=192.0.2.9",
            "tty=pty",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let facts = parse_facts(&words, no_lookup).unwrap();
        let text = explain(&cfg, &facts);
        assert!(
            text.contains(
                "rule \"priv\": no match: user alice (groups [staff]) is in none of groups [wheel]"
            ),
            "{text}"
        );
        assert!(text.contains("rule \"net\": MATCH"), "{text}");
        assert!(text.contains("limits: idle=15m max=1h"), "{text}");
        assert!(
            text.ends_with("kill_scope=session end_at_cert_expiry=true enforce=on\n"),
            "{text}"
        );
        let described = describe(&cfg);
        assert!(
            described.contains("rule 2 \"net\"") && described.contains("rhosts=[!10.0.0.0/8, *]"),
            "{described}"
        );
    }

    #[test]
    fn dry_run_rules_say_so() {
        let cfg = crate::config::parse(
            Path::new("t.toml"),
            "[[rule]]\nname = \"try\"\nenforce = \"dry-run\"\nidle = \"10m\"\n",
        )
        .unwrap();
        let described = describe(&cfg);
        assert!(
            described.contains("idle=10m max=12h warn=[5m, 1m] grace=10s count_output=false notty=io kill_scope=session end_at_cert_expiry=true enforce=dry-run dry_run_warn=false"),
            "{described}"
        );
        let facts = parse_facts(&["user=a".into()], no_lookup).unwrap();
        assert!(explain(&cfg, &facts).contains("enforce=dry-run"));
    }

    #[test]
    fn explains_rules_on_how_the_user_authenticated() {
        let cfg = crate::config::parse(
            Path::new("t.toml"),
            "[[rule]]\nname = \"mfa\"\nauth = [\"publickey\", \"keyboard-interactive*\"]\nmax = \"8h\"\n\
             [[rule]]\nname = \"jit\"\ncertificate = true\nend_at_cert_expiry = false\nmax = \"2h\"\n",
        )
        .unwrap();
        let words = |w: &[&str]| -> Vec<String> { w.iter().map(|s| s.to_string()).collect() };
        let key_only = parse_facts(&words(&["user=a", "auth=publickey"]), no_lookup).unwrap();
        let text = explain(&cfg, &key_only);
        assert!(
            text.contains("rule \"mfa\": no match: auth publickey has no method matching keyboard-interactive*"),
            "{text}"
        );
        assert!(text.contains("no rule matched"), "{text}");
        let mfa = parse_facts(
            &words(&["user=a", "auth=publickey+keyboard-interactive/pam"]),
            no_lookup,
        )
        .unwrap();
        let text = explain(&cfg, &mfa);
        assert!(text.contains("rule \"mfa\": MATCH"), "{text}");
        assert!(
            text.contains("auth=publickey+keyboard-interactive/pam"),
            "{text}"
        );
        let cert = parse_facts(&words(&["user=a", "certificate=true"]), no_lookup).unwrap();
        let text = explain(&cfg, &cert);
        assert!(text.contains("rule \"jit\": MATCH"), "{text}");
        assert!(text.contains("end_at_cert_expiry=false"), "{text}");
        let described = describe(&cfg);
        assert!(
            described.contains("auth=[publickey, keyboard-interactive*]")
                && described.contains("certificate=true"),
            "{described}"
        );
        assert!(parse_facts(&words(&["user=a", "certificate=yes"]), no_lookup).is_err());
    }

    #[test]
    fn bad_words_are_errors() {
        assert!(parse_facts(&["service=sshd".into()], no_lookup).is_err());
        assert!(parse_facts(&["user=a".into(), "tty=serial".into()], no_lookup).is_err());
        assert!(parse_facts(&["user=a".into(), "colour=red".into()], no_lookup).is_err());
        assert!(parse_facts(&["nonsense".into()], no_lookup).is_err());
    }

    #[test]
    fn groups_are_looked_up_only_when_not_given() {
        let given = parse_facts(&["user=a".into(), "groups=x,y".into()], |_| {
            unreachable!("groups were given")
        })
        .unwrap();
        assert_eq!(given.groups, ["x", "y"]);
        let looked_up =
            parse_facts(&["user=a".into()], |user| vec![format!("{user}-group")]).unwrap();
        assert_eq!(looked_up.groups, ["a-group"]);
    }

    #[test]
    fn explain_shows_the_next_open_and_close_and_the_reset() {
        let cfg = crate::config::parse(
            Path::new("/etc/t.toml"),
            "[daemon]\ntimezone = \"America/New_York\"\n[[rule]]\nname = \"k\"\nusers = [\"k\"]\nhours = [\"Sat-Sun 10:00-12:00\"]\ndaily = \"1h\"\n",
        )
        .unwrap();
        let facts = parse_facts(&["user=k".to_owned()], no_lookup).unwrap();
        // Friday 2026-12-04 12:00 EST.
        let out = clock(&cfg, &facts, Timestamp(1_796_403_600_000));
        assert!(
            out.contains("closed now; opens at Sat 2026-12-05 10:00:00 EST, closes at Sat 2026-12-05 12:00:00 EST"),
            "{out}"
        );
        assert!(
            out.contains("the day resets at Sat 2026-12-05 00:00:00 EST"),
            "{out}"
        );
        let out = clock(
            &cfg,
            &facts,
            Timestamp(1_796_403_600_000 + 86_400_000 - 3_600_000),
        );
        assert!(
            out.contains("open now; closes at Sat 2026-12-05 12:00:00 EST"),
            "{out}"
        );
    }
}
