//! The limits and criteria tables: `[defaults]` and each `[[rule]]`,
//! resolved over what they inherit and checked.

use std::time::Duration;

use toml::Spanned;

use crate::config::parse::{Errors, RawTable, Strings};
use crate::core::policy::matching::HostPattern;
use crate::core::policy::template::Template;
use crate::core::policy::window::{Window, Windows};
use crate::core::policy::{
    Criteria, Enforce, KillScope, Limits, NottyMode, Policy, Rule, TtyClass,
};
use crate::core::time::duration;

fn limit(
    v: &Option<Spanned<String>>,
    inherited: Option<Duration>,
    errs: &mut Errors,
) -> Option<Duration> {
    match v {
        None => inherited,
        Some(s) => duration::parse_limit(s.get_ref()).unwrap_or_else(|e| {
            errs.at(s.span(), format!("bad duration: {e}"));
            inherited
        }),
    }
}

fn choice<T>(
    v: &Option<Spanned<String>>,
    inherited: T,
    key: &str,
    options: &[(&str, T)],
    errs: &mut Errors,
) -> T
where
    T: Copy,
{
    let Some(s) = v else {
        return inherited;
    };
    match options.iter().find(|(name, _)| *name == s.get_ref()) {
        Some((_, value)) => *value,
        None => {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
            errs.at(
                s.span(),
                format!(
                    "{key} must be one of {}, got {:?}",
                    names.join(", "),
                    s.get_ref()
                ),
            );
            inherited
        }
    }
}

/// The warning offsets of one table: its own list, checked against its
/// limits, or the inherited one without the offsets that no longer fit.
fn warn_offsets(
    raw: &Strings,
    inherited: &[Duration],
    [idle, max]: [Option<Duration>; 2],
    table: &str,
    errs: &mut Errors,
) -> Vec<Duration> {
    let mut warn = inherited.to_vec();
    if let Some(list) = raw {
        warn.clear();
        for w in list.get_ref() {
            match duration::parse(w.get_ref()) {
                Ok(d) if d.is_zero() => errs.at(
                    w.span(),
                    "a warning 0s before the deadline is no warning; remove it".into(),
                ),
                Ok(d) => {
                    for (name, lim) in [("idle", idle), ("max", max)] {
                        if let Some(lim) = lim.filter(|lim| d >= *lim) {
                            errs.at(
                                w.span(),
                                format!(
                                    "warning offset {} in {table} is not shorter than its {name} limit {}",
                                    duration::Human(d),
                                    duration::Human(lim)
                                ),
                            );
                        }
                    }
                    warn.push(d);
                }
                Err(e) => errs.at(w.span(), format!("bad duration: {e}")),
            }
        }
        warn.sort_unstable_by(|a, b| b.cmp(a));
        warn.dedup();
    } else {
        // Inherited offsets that do not fit under this table's limits are dropped, not errors.
        let shortest = [idle, max].into_iter().flatten().min();
        warn.retain(|w| shortest.is_none_or(|s| *w < s));
    }
    warn
}

/// `hours = [...]`: each window read, a bad one reported at its own place.
fn windows(list: &Spanned<Vec<Spanned<String>>>, errs: &mut Errors) -> Option<Windows> {
    if list.get_ref().is_empty() {
        errs.at(
            list.span(),
            "hours = [] would refuse every login; list windows or remove hours".into(),
        );
        return None;
    }
    let mut out = Vec::new();
    for w in list.get_ref() {
        match Window::parse(w.get_ref()) {
            Ok(win) => out.push(win),
            Err(e) => errs.at(w.span(), format!("bad window: {e}")),
        }
    }
    Some(Windows(out))
}

/// Resolves one table of limits over the inherited ones and checks it.
pub(super) fn limits_section(
    raw: &RawTable,
    inherited: &Limits,
    table: &str,
    errs: &mut Errors,
) -> Limits {
    let idle = limit(&raw.idle, inherited.idle, errs);
    let max = limit(&raw.max, inherited.max, errs);
    let grace = match &raw.grace {
        None => inherited.grace,
        Some(s) => duration::parse(s.get_ref()).unwrap_or_else(|e| {
            errs.at(s.span(), format!("bad duration: {e}"));
            inherited.grace
        }),
    };
    let warn = warn_offsets(&raw.warn, &inherited.warn, [idle, max], table, errs);
    let message = match &raw.message {
        None => inherited.message.clone(),
        Some(s) => Template::parse(s.get_ref()).unwrap_or_else(|(offset, msg)| {
            // +1 for the opening quote of the TOML string.
            errs.at(s.span().start + 1 + offset..s.span().end, msg);
            inherited.message.clone()
        }),
    };
    let hours = match &raw.hours {
        None => inherited.hours.clone(),
        Some(list) => windows(list, errs),
    };
    let daily = limit(&raw.daily, inherited.daily, errs);
    Limits {
        hours,
        daily,
        idle,
        max,
        warn,
        grace,
        count_output: raw
            .count_output
            .as_ref()
            .map_or(inherited.count_output, |b| *b.get_ref()),
        notty: choice(
            &raw.notty,
            inherited.notty,
            "notty",
            &[("io", NottyMode::Io), ("max-only", NottyMode::MaxOnly)],
            errs,
        ),
        kill_scope: choice(
            &raw.kill_scope,
            inherited.kill_scope,
            "kill_scope",
            &[
                ("session", KillScope::Session),
                ("leader", KillScope::Leader),
            ],
            errs,
        ),
        message,
        enforce: choice(
            &raw.enforce,
            inherited.enforce,
            "enforce",
            &[("on", Enforce::On), ("dry-run", Enforce::DryRun)],
            errs,
        ),
        dry_run_warn: raw
            .dry_run_warn
            .as_ref()
            .map_or(inherited.dry_run_warn, |b| *b.get_ref()),
        end_at_cert_expiry: raw
            .end_at_cert_expiry
            .as_ref()
            .map_or(inherited.end_at_cert_expiry, |b| *b.get_ref()),
    }
}

/// `[defaults]` holds limits only.
pub(super) fn forbid_criteria(raw: &RawTable, errs: &mut Errors) {
    let spans = [
        ("name", raw.name.as_ref().map(Spanned::span)),
        ("users", raw.users.as_ref().map(Spanned::span)),
        ("groups", raw.groups.as_ref().map(Spanned::span)),
        ("services", raw.services.as_ref().map(Spanned::span)),
        ("rhosts", raw.rhosts.as_ref().map(Spanned::span)),
        ("tty", raw.tty.as_ref().map(Spanned::span)),
        ("auth", raw.auth.as_ref().map(Spanned::span)),
        ("certificate", raw.certificate.as_ref().map(Spanned::span)),
    ];
    for (key, span) in spans {
        if let Some(span) = span {
            errs.at(
                span,
                format!("{key} is a rule criterion; [defaults] only holds limits (put it in a [[rule]])"),
            );
        }
    }
}

fn names(v: &Strings, key: &str, errs: &mut Errors) -> Option<Vec<String>> {
    let list = v.as_ref()?;
    if list.get_ref().is_empty() {
        errs.at(
            list.span(),
            format!("{key} is empty, so the rule could never match; remove the key to match any"),
        );
    }
    for s in list.get_ref() {
        if s.get_ref().is_empty() {
            errs.at(s.span(), format!("empty name in {key}"));
        }
    }
    Some(list.get_ref().iter().map(|s| s.get_ref().clone()).collect())
}

/// `auth = [...]`: globs over method names (`publickey`, `keyboard-interactive*`).
fn auth_methods(v: &Strings, errs: &mut Errors) -> Option<Vec<String>> {
    let list = names(v, "auth", errs)?;
    if let Some(v) = v {
        for s in v.get_ref() {
            let ok = s
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/@._*?".contains(&b));
            if !ok {
                errs.at(
                    s.span(),
                    format!(
                        "auth method {:?} must be a method name or glob (letters, digits, '-', '/', '@', '.', '_', '*', '?')",
                        s.get_ref()
                    ),
                );
            }
        }
    }
    Some(list)
}

pub(super) fn rule_section(
    table: &Spanned<RawTable>,
    policy: &Policy,
    errs: &mut Errors,
) -> Option<Rule> {
    let raw = table.get_ref();
    let Some(name) = &raw.name else {
        errs.at(table.span(), "every [[rule]] needs a name = \"...\"".into());
        return None;
    };
    let name_ok = !name.get_ref().is_empty()
        && name.get_ref() != "defaults"
        && name
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        errs.at(
            name.span(),
            format!(
                "rule name {:?} must be letters, digits, '-', '_' or '.', and not \"defaults\"",
                name.get_ref()
            ),
        );
    }
    if policy.rules.iter().any(|r| &r.name == name.get_ref()) {
        errs.at(
            name.span(),
            format!("duplicate rule name {:?}", name.get_ref()),
        );
    }
    let rhosts = raw.rhosts.as_ref().map(|list| {
        if list.get_ref().is_empty() {
            errs.at(
                list.span(),
                "rhosts is empty, so the rule could never match".into(),
            );
        }
        list.get_ref()
            .iter()
            .filter_map(|p| {
                HostPattern::parse(p.get_ref())
                    .map_err(|e| errs.at(p.span(), e))
                    .ok()
            })
            .collect()
    });
    let tty = raw.tty.as_ref().and_then(|t| {
        let class = TtyClass::parse(t.get_ref());
        if class.is_none() {
            errs.at(
                t.span(),
                format!(
                    "tty must be \"pty\", \"console\" or \"none\", got {:?}",
                    t.get_ref()
                ),
            );
        }
        class
    });
    let criteria = Criteria {
        users: names(&raw.users, "users", errs),
        groups: names(&raw.groups, "groups", errs),
        services: names(&raw.services, "services", errs),
        rhosts,
        tty,
        auth: auth_methods(&raw.auth, errs),
        certificate: raw.certificate.as_ref().map(|b| *b.get_ref()),
    };
    let table_name = format!("rule {:?}", name.get_ref());
    let limits = limits_section(raw, &policy.defaults, &table_name, errs);
    Some(Rule {
        name: name.get_ref().clone(),
        criteria,
        limits: limits.into(),
    })
}
