//! The report's state while lines stream past: one [`GroupStats`] per group
//! and one for the total, the outliers heap, the most common limits, and the
//! dry-run expiries of sessions whose summary has not been read yet. Memory
//! grows with the number of groups and live sessions, never with lines.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::report::args::By;
use crate::report::read::envelope::{self, Context};
use crate::report::read::summary::{self, End, Event, Summary, Who};
use crate::report::tally::hist::LogHistogram;
use crate::report::tally::outliers::Outliers;
use crate::report::tally::whatif::{Limits, Tally};

/// Most dry-run expiries of not-yet-summarised sessions remembered; beyond
/// it they are counted straight into their group (a later summary of the
/// same session may then count some twice).
const MAX_PENDING: usize = 100_000;
/// Most distinct limit values counted for "the most common limit".
const MAX_LIMIT_VALUES: usize = 256;

/// Everything one group's sessions add up to.
#[derive(Debug, Clone, Default)]
pub struct GroupStats {
    pub sessions: u64,
    pub lifetime: LogHistogram,
    pub idle: LogHistogram,
    /// Indexed like [`End::ALL`].
    pub ended: [u64; 12],
    /// Sum of the summaries' `dry_run_expiries`.
    pub would_expire: u64,
    /// `session_expired dry_run=1` lines of sessions with no summary read.
    pub would_expire_unsummarised: u64,
    pub tamper: u64,
    pub warnings: u64,
    pub what_if: Tally,
    /// Indexed like the config's rules: whether any session matched it.
    pub rules_seen: Vec<bool>,
}

impl GroupStats {
    fn add(&mut self, s: &Summary, what_if: Option<Limits>, rules: &[String]) {
        self.sessions += 1;
        self.lifetime.add(s.duration);
        self.idle.add(s.idle_max);
        self.ended[s.end.index()] += 1;
        self.would_expire += s.dry_run_expiries;
        self.tamper += s.tamper;
        self.warnings += s.warnings;
        if let Some(l) = what_if {
            self.what_if.add(s, l);
        }
        if let Some(i) = rules.iter().position(|r| *r == s.who.rule) {
            self.rules_seen.resize(rules.len(), false);
            self.rules_seen[i] = true;
        }
    }

    /// Sessions ended by any of `ends`.
    pub fn ended_by(&self, ends: &[End]) -> u64 {
        ends.iter().map(|e| self.ended[e.index()]).sum()
    }

    /// The config rules no session of this group matched.
    pub fn unmatched<'a>(&self, rules: &'a [String]) -> Vec<&'a str> {
        rules
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.rules_seen.get(*i).copied().unwrap_or(false))
            .map(|(_, r)| r.as_str())
            .collect()
    }
}

/// What to count and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub by: Option<By>,
    pub what_if: Option<Limits>,
    pub outliers: usize,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Rule names from the config file, when it was readable.
    pub rules: Vec<String>,
}

/// The report being built.
#[derive(Debug, Default)]
pub struct Report {
    pub opts: Options,
    pub sessions: u64,
    pub malformed: u64,
    pub groups: HashMap<String, GroupStats>,
    pub total: GroupStats,
    pub outliers: Outliers,
    /// Earliest and latest time of a counted line.
    pub span: Option<(i64, i64)>,
    limit_idle: HashMap<Option<u64>, u64>,
    limit_max: HashMap<Option<u64>, u64>,
    pending: HashMap<(String, u64), (String, u64)>,
    primary_groups: HashMap<String, String>,
}

impl Report {
    pub fn new(opts: Options) -> Report {
        Report {
            outliers: Outliers::new(opts.outliers),
            opts,
            ..Report::default()
        }
    }

    /// Reads one line (`truncated`: it was longer than the reader keeps).
    pub fn feed(&mut self, raw: &[u8], truncated: bool, cx: &mut Context) {
        let (text, lossy) = match std::str::from_utf8(raw) {
            Ok(s) => (Cow::Borrowed(s), false),
            Err(_) => (String::from_utf8_lossy(raw), true),
        };
        if !text.contains("timeoutd") && !text.starts_with("event=") {
            return;
        }
        let Some(env) = envelope::open(&text, cx) else {
            return;
        };
        if env.program != "timeoutd" {
            return;
        }
        let ev = summary::classify(&env.message);
        if ev == Event::Other || !self.in_window(env.time) {
            return;
        }
        match ev {
            _ if lossy || truncated => self.malformed += 1,
            Event::Summary(s) => self.add_summary(&env.host, env.time, &s),
            Event::DryRunExpiry(w) => self.add_expiry(&env.host, &w),
            Event::Malformed | Event::Other => self.malformed += 1,
        }
    }

    fn in_window(&self, t: Option<i64>) -> bool {
        match (self.opts.from, self.opts.to, t) {
            (None, None, _) => true,
            (_, _, None) => false,
            (from, to, Some(t)) => from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e),
        }
    }

    fn key(&mut self, host: &str, w: &Who) -> String {
        match self.opts.by.unwrap_or(By::Rule) {
            By::User => w.user.clone(),
            By::Rule => w.rule.clone(),
            By::Service => w.service.clone(),
            By::Rhost => w.rhost.clone(),
            By::Host => host.to_owned(),
            By::Group => self
                .primary_groups
                .entry(w.user.clone())
                .or_insert_with(|| primary_group(&w.user))
                .clone(),
        }
    }

    fn add_summary(&mut self, host: &str, time: Option<i64>, s: &Summary) {
        self.sessions += 1;
        if let Some(t) = time {
            let (a, b) = self.span.unwrap_or((t, t));
            self.span = Some((a.min(t), b.max(t)));
        }
        let key = self.key(host, &s.who);
        let (what_if, rules) = (self.opts.what_if, &self.opts.rules);
        self.groups.entry(key).or_default().add(s, what_if, rules);
        self.total.add(s, what_if, rules);
        self.outliers.offer(host, s);
        count_limit(&mut self.limit_idle, s.limit_idle);
        count_limit(&mut self.limit_max, s.limit_max);
        self.pending.remove(&(host.to_owned(), s.who.id));
    }

    fn add_expiry(&mut self, host: &str, w: &Who) {
        let id = (host.to_owned(), w.id);
        if let Some((_, n)) = self.pending.get_mut(&id) {
            *n += 1;
            return;
        }
        let key = self.key(host, w);
        if self.pending.len() < MAX_PENDING {
            self.pending.insert(id, (key, 1));
        } else {
            self.groups
                .entry(key)
                .or_default()
                .would_expire_unsummarised += 1;
            self.total.would_expire_unsummarised += 1;
        }
    }

    /// Ends the stream: dry-run expiries still pending go to their groups.
    pub fn finish(&mut self) {
        for (_, (key, n)) in self.pending.drain() {
            self.groups
                .entry(key)
                .or_default()
                .would_expire_unsummarised += n;
            self.total.would_expire_unsummarised += n;
        }
    }

    /// The most common (limit_idle, limit_max) of the sessions read.
    pub fn common_limits(&self) -> (Option<u64>, Option<u64>) {
        (mode(&self.limit_idle), mode(&self.limit_max))
    }

    /// Groups, the most sessions first, then by name.
    pub fn sorted_groups(&self) -> Vec<(&str, &GroupStats)> {
        let mut v: Vec<(&str, &GroupStats)> =
            self.groups.iter().map(|(k, g)| (k.as_str(), g)).collect();
        v.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then(a.0.cmp(b.0)));
        v
    }
}

fn count_limit(counts: &mut HashMap<Option<u64>, u64>, v: Option<u64>) {
    if let Some(n) = counts.get_mut(&v) {
        *n += 1;
    } else if counts.len() < MAX_LIMIT_VALUES {
        counts.insert(v, 1);
    }
}

fn mode(counts: &HashMap<Option<u64>, u64>) -> Option<u64> {
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .and_then(|(v, _)| *v)
}

/// The user's primary group through NSS now (not at login time).
fn primary_group(user: &str) -> String {
    timeoutd::host::identity::nss::user_by_name(user)
        .and_then(|u| timeoutd::host::identity::nss::group_name(u.gid))
        .unwrap_or_else(|| "(unknown user)".to_owned())
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
