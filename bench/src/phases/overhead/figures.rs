//! What the overhead phase reports: the figures and targets, the markdown
//! table and the JSON detail.

use std::fmt::Write as _;

use super::pam_loop::Samples;
use super::{Logins, Payloads, ROUNDS, STACKS, WARMUP};
use crate::results::json::J;
use crate::results::report::Report;
use crate::results::stats::{summarize, summary_json, Summary};

/// Summaries per stack: open, close, open+close.
pub(super) struct Sums(Vec<[Option<Summary>; 3]>);

impl Sums {
    pub(super) fn of(samples: &[Samples]) -> Self {
        Self(
            samples
                .iter()
                .map(|s| [summarize(&s.open), summarize(&s.close), summarize(&s.pair)])
                .collect(),
        )
    }

    /// One statistic of one stack's open (0), close (1) or open+close (2).
    fn p(&self, stack: usize, what: usize, f: fn(&Summary) -> f64) -> Option<f64> {
        self.0[stack][what].as_ref().map(f)
    }
}

fn p99(s: &Summary) -> f64 {
    s.p99
}

fn p50(s: &Summary) -> f64 {
    s.p50
}

/// The headline figures and the targets of the module's added latency.
pub(super) fn login_figures(
    r: &mut Report,
    sums: &Sums,
    logins: &Logins,
    floor: &[Option<Summary>; 2],
) {
    let p = |stack: usize, what: usize, f: fn(&Summary) -> f64| sums.p(stack, what, f);
    let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    r.figure(
        "login.permit.open_p50_ms",
        "open_session p50, pam_permit only",
        p(0, 0, p50),
        "ms",
    );
    r.figure(
        "login.permit.open_p99_ms",
        "open_session p99, pam_permit only",
        p(0, 0, p99),
        "ms",
    );
    for (stack, tag, limit) in [(1, "up", 1.0), (2, "down", 0.5)] {
        let words = if tag == "up" {
            "daemon up"
        } else {
            "daemon down"
        };
        r.target(
            &format!("login.{tag}.added_open_p99_ms"),
            &format!("added open_session latency p99, {words}"),
            diff(p(stack, 0, p99), p(0, 0, p99)),
            "ms",
            limit,
            "",
        );
        r.figure(
            &format!("login.{tag}.added_open_p50_ms"),
            &format!("added open_session latency p50, {words}"),
            diff(p(stack, 0, p50), p(0, 0, p50)),
            "ms",
        );
        r.figure(
            &format!("login.{tag}.open_p99_ratio"),
            &format!("open_session p99 ratio to pam_permit only, {words}"),
            ratio(p(stack, 0, p99), p(0, 0, p99)),
            "×",
        );
        r.figure(
            &format!("login.{tag}.added_open_close_p99_ms"),
            &format!("added open+close latency p99, {words}"),
            diff(p(stack, 2, p99), p(0, 2, p99)),
            "ms",
        );
    }
    r.target(
        "login.up.daemon_cpu_per_login_ms",
        "daemon CPU per login (register + unregister), mean",
        Some(logins.daemon_us / 1e3),
        "ms",
        0.1,
        &format!("{} logins, schedstat", logins.expected),
    );
    // Issue 16: the module's own cost at the median, in units of the
    // cheapest possible exchange measured in the same run.
    r.target(
        "login.up.added_open_p50_floor_ratio",
        "added open_session latency p50, ratio to the bare Unix-socket exchange",
        ratio(diff(p(1, 0, p50), p(0, 0, p50)), floor[0].map(|s| s.p50)),
        "×",
        3.0,
        &format!(
            "{} ms vs {} ms",
            diff(p(1, 0, p50), p(0, 0, p50)).map_or("?".into(), |v| format!("{v:.3}")),
            floor[0].map_or("?".into(), |s| format!("{:.3}", s.p50))
        ),
    );
    r.figure(
        "login.floor.exchange_p50_ms",
        "floor: one Unix-socket exchange p50 (same payload)",
        floor[0].map(|s| s.p50),
        "ms",
    );
    r.figure(
        "login.floor.exchange_p99_ms",
        "floor: one Unix-socket exchange p99 (same payload)",
        floor[0].map(|s| s.p99),
        "ms",
    );
    r.figure(
        "login.floor.pair_p99_ms",
        "floor: open+close exchanges p99",
        floor[1].map(|s| s.p99),
        "ms",
    );
}

/// The markdown table of the three stacks and the floor.
pub(super) fn login_table(
    sums: &Sums,
    logins: &Logins,
    payloads: &Payloads,
    floor: &[Option<Summary>; 2],
) -> String {
    let p = |stack: usize, what: usize, f: fn(&Summary) -> f64| sums.p(stack, what, f);
    let mut md = String::from(
        "Times in µs per call, through libpam under pam_wrapper, PAM_TTY=ssh. \
         Added latency = module stack − pam_permit-only stack, same percentile.\n\n\
         | stack | open p50 | open p99 | close p50 | close p99 | open+close p50 | open+close p99 | n | failed |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let f3 = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.1}", v * 1e3));
    for (i, (label, _)) in STACKS.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f3(p(i, 0, p50)),
            f3(p(i, 0, p99)),
            f3(p(i, 1, p50)),
            f3(p(i, 1, p99)),
            f3(p(i, 2, p50)),
            f3(p(i, 2, p99)),
            logins.samples[i].open.len(),
            logins.samples[i].failures
        );
    }
    let _ = writeln!(
        md,
        "| floor: bare exchange (connect, {} B request, {} B reply) | {} | {} | | | {} | {} | {} | |",
        payloads.reg_body.len() + 4,
        payloads.reg_reply_len + 4,
        f3(floor[0].map(|s| s.p50)),
        f3(floor[0].map(|s| s.p99)),
        f3(floor[1].map(|s| s.p50)),
        f3(floor[1].map(|s| s.p99)),
        floor[0].map_or(0, |s| s.n)
    );
    let _ = writeln!(
        md,
        "\nThe daemon logged {} session_open events for {} opens through the \"up\" stack, \
         and spent {:.1} µs of CPU per login (register + unregister).",
        logins.registered, logins.expected, logins.daemon_us
    );
    md
}

/// The phase's JSON detail.
pub(super) fn login_detail(
    r: &mut Report,
    sums: &Sums,
    logins: &Logins,
    payloads: &Payloads,
    floor: &[Option<Summary>; 2],
) {
    let samples = &logins.samples;
    let mut stacks_json = Vec::new();
    for (i, (label, service)) in STACKS.iter().enumerate() {
        stacks_json.push(J::obj([
            ("stack", J::from(*label)),
            ("service", J::from(*service)),
            ("open_ms", summary_json(sums.0[i][0])),
            ("close_ms", summary_json(sums.0[i][1])),
            ("open_close_ms", summary_json(sums.0[i][2])),
            ("failures", J::from(samples[i].failures)),
        ]));
    }
    r.detail(
        "login",
        J::obj([
            ("iterations_per_stack", J::from(ROUNDS * logins.per_round)),
            ("rounds", J::from(ROUNDS)),
            ("warmup_per_round", J::from(WARMUP)),
            ("stacks", J::Arr(stacks_json)),
            ("floor_exchange_ms", summary_json(floor[0])),
            ("floor_open_close_ms", summary_json(floor[1])),
            ("request_bytes", J::from(payloads.reg_body.len() + 4)),
            ("reply_bytes", J::from(payloads.reg_reply_len + 4)),
            ("daemon_registrations_seen", J::from(logins.registered)),
            ("daemon_registrations_expected", J::from(logins.expected)),
            ("daemon_cpu_us_per_login", J::num(logins.daemon_us)),
        ]),
    );
}
