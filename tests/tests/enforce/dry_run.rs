//! Issue 15, dry-run and the evidence a session leaves, end to end with the
//! real sshd (see `support`): a dry-run rule logs a would-be idle expiry and
//! signals nothing, a reload to `on` ends the session from its own history,
//! and a logout and an idle end each leave one `session_summary` line, which
//! `timeoutctl report` reads back.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{secs, Login, World, EVENT, HANDS_OFF};

/// The fields every `session_summary v=1` line has.
const SUMMARY_FIELDS: [&str; 18] = [
    "v",
    "id",
    "user",
    "uid",
    "service",
    "tty",
    "rhost",
    "rule",
    "duration",
    "active",
    "idle_max",
    "gaps",
    "warnings",
    "tamper",
    "end",
    "dry_run_expiries",
    "limit_idle",
    "limit_max",
];

fn rule(name: &str, user: &str, enforce: &str) -> String {
    format!(
        "{HANDS_OFF}[[rule]]\nname = \"{name}\"\nusers = [\"{user}\"]\nidle = \"10s\"\nwarn = [\"4s\"]\nenforce = \"{enforce}\"\n"
    )
}

/// The one summary of session `id`, with every field, and its duration
/// checked against the time the test saw the session live (`lived`, with
/// 2 s for login and logout on either side).
fn expect_summary(w: &World, l: &Login, end: &str, lived: Duration) -> e2e::LogLine {
    let s = w.expect_event("session_summary", &[("id", &l.id)]);
    for f in SUMMARY_FIELDS {
        assert!(s.get(f).is_some(), "no {f}= in {}", s.raw);
    }
    assert_eq!(
        (s.get("v"), s.get("end")),
        (Some("1"), Some(end)),
        "{}",
        s.raw
    );
    let duration = s.num("duration").unwrap();
    let active = s.num("active").unwrap();
    let lived_s = lived.as_secs() as i64;
    assert!(
        (lived_s - 2..=lived_s + 2 + 20).contains(&duration),
        "duration {duration} s for a session seen live {} (login included)\n{}",
        secs(lived),
        s.raw
    );
    assert!((0..=duration).contains(&active), "{}", s.raw);
    assert!(s.num("idle_max").unwrap() <= duration, "{}", s.raw);
    let summaries = w
        .env
        .syslog
        .session_lines(&l.id)
        .into_iter()
        .filter(|x| x.event() == Some("session_summary"))
        .count();
    assert_eq!(summaries, 1, "{}", w.report(&[&l.ssh]));
    s
}

/// A dry-run rule with a 10 s idle limit and a session idle for 25 s: it is
/// not ended, `session_expired dry_run=1` is logged, nothing is signalled and
/// no warning reaches the terminal. A reload that sets the rule `on` ends it.
#[test]
fn d1_dry_run_logs_and_signals_nothing_then_a_reload_enforces() {
    let mut w = World::builder()
        .policy_for(|n| rule("trial", &n[0], "dry-run"))
        .start();
    let l = w.login(0);
    let opened = Instant::now();
    w.expect_ready(&l.ssh);
    let after = l.ssh.output_len();
    // Inherent wait: idle time must pass the limit (10 s) by more than the
    // atime window (8 s); waiting on the exit catches an enforcement.
    let early = l.ssh.wait_for_exit(Duration::from_secs(25));
    assert!(
        early.is_none(),
        "a dry run ended the session\n{}",
        w.report(&[&l.ssh])
    );
    let ex = w.expect_event("session_expired", &[("id", &l.id), ("dry_run", "1")]);
    assert_eq!(
        (ex.get("reason"), ex.get("rule")),
        (Some("idle"), Some("trial")),
        "{}",
        ex.raw
    );
    let lines = w.env.syslog.session_lines(&l.id);
    assert!(
        !lines.iter().any(|x| x.event() == Some("session_signal")),
        "a dry run sent signals\n{}",
        w.report(&[&l.ssh])
    );
    let warn = w.expect_event("session_warn", &[("id", &l.id)]);
    assert_eq!(
        (warn.get("dry_run"), warn.get("delivered")),
        (Some("1"), Some("0")),
        "{}",
        warn.raw
    );
    assert!(
        !String::from_utf8_lossy(&l.ssh.output()[after..]).contains("will be closed"),
        "a dry run wrote a warning\n{}",
        w.report(&[&l.ssh])
    );
    let listed = w.ctl_ok(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let me = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_u64().map(|i| i.to_string()).as_deref() == Some(l.id.as_str()))
        .unwrap_or_else(|| panic!("session {} not listed: {listed}", l.id));
    assert_eq!(me["dry_run"], true, "{listed}");
    assert!(w.ctl_ok(&["list"]).contains("trial (dry-run)"));

    // Switched on: the deadline has passed, so one warning, then the end
    // after the shortest warning offset (4 s).
    w.write_policy(&rule("trial", w.name(0), "on"));
    let reload = w.sighup();
    w.expect_event_since(reload, "config_loaded", &[]);
    l.ssh
        .wait_output_from("will be closed in", after, EVENT)
        .unwrap_or_else(|| panic!("no warning after the reload\n{}", w.report(&[&l.ssh])));
    let exit = w.expect_exit(&l.ssh, EVENT + Duration::from_secs(4));
    eprintln!("d1: closed {} after the reload", secs(exit.at - reload));
    assert!(
        exit.at - reload >= Duration::from_secs(4) - Duration::from_millis(200),
        "closed before the warning had run\n{}",
        w.report(&[&l.ssh])
    );
    let expired = w.expect_event_since(reload, "session_expired", &[("id", &l.id)]);
    assert_eq!(expired.get("dry_run"), None, "{}", expired.raw);
    w.expect_event("session_signal", &[("id", &l.id)]);
    w.expect_event("session_terminated", &[("id", &l.id), ("reason", "idle")]);
    let s = expect_summary(&w, &l, "idle", exit.at - opened);
    assert!(s.num("dry_run_expiries").unwrap() >= 1, "{}", s.raw);
    assert_eq!(s.get("limit_idle"), Some("10"), "{}", s.raw);
    assert!(s.num("idle_max").unwrap() >= 10, "{}", s.raw);
    assert!(!s.get("gaps").unwrap().is_empty(), "{}", s.raw);
    report_reads(&w, 1);
}

/// A logout leaves one summary that says so, with a plausible duration.
#[test]
fn d2_a_logout_leaves_one_summary() {
    let w = World::builder()
        .policy_for(|n| {
            format!(
                "{HANDS_OFF}[[rule]]\nname = \"long\"\nusers = [\"{}\"]\nidle = \"1h\"\n",
                n[0]
            )
        })
        .start();
    let l = w.login(0);
    let opened = Instant::now();
    w.expect_ready(&l.ssh);
    std::thread::sleep(Duration::from_secs(3)); // inherent: a session that lasts
    l.ssh.send("exit\n").unwrap();
    let exit = w.expect_exit(&l.ssh, EVENT);
    w.expect_event("session_close", &[("id", &l.id), ("reason", "logout")]);
    let s = expect_summary(&w, &l, "logout", exit.at - opened);
    assert_eq!(
        (s.get("limit_idle"), s.get("limit_max"), s.get("rule")),
        (Some("3600"), Some("off"), Some("long")),
        "{}",
        s.raw
    );
    assert_eq!(s.num("warnings"), Some(0), "{}", s.raw);
    assert_eq!(s.num("dry_run_expiries"), Some(0), "{}", s.raw);
    report_reads(&w, 1);
}

/// `timeoutctl report` reads the captured syslog lines in each format an
/// admin keeps them in — auth.log as rsyslog writes it, `journalctl -o
/// short-iso`, `journalctl -o json` and RFC 5424 from a collector — and
/// counts the same ended sessions (at least `sessions`) in each, with no line
/// malformed.
fn report_reads(w: &World, sessions: u64) {
    let lines = w.env.syslog.lines();
    let mut counts = Vec::new();
    for format in ["auth.log", "short-iso", "json", "rfc5424"] {
        let file = w.env.dir().join(format!("events.{format}"));
        let text: String = lines.iter().filter_map(|l| as_format(l, format)).collect();
        std::fs::write(&file, text).unwrap();
        let r = w.ctl(&["report", file.to_str().unwrap(), "--json"]);
        assert!(r.ok(), "{format}: {}", r.describe());
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let n = v["sessions"].as_u64().unwrap_or(0);
        assert!(
            n >= sessions,
            "{format}: report counted {n} sessions\n{}",
            r.stdout
        );
        assert_eq!(v["malformed"].as_u64(), Some(0), "{format}: {}", r.stdout);
        counts.push(n);
    }
    assert!(counts.windows(2).all(|c| c[0] == c[1]), "{counts:?}");
}

/// One datagram (`<PRI>Mmm dd hh:mm:ss timeoutd[PID]: MSG`) as `format`
/// writes it, with the host name `e2e-host`.
fn as_format(l: &e2e::events::LogLine, format: &str) -> Option<String> {
    let line = l.raw.split_once('>')?.1;
    let (stamp, rest) = (line.get(..15)?, line.get(16..)?);
    let msg = rest.split_once(": ")?.1;
    let pid = l.pid?;
    let iso = iso_utc(l.t_ns);
    Some(match format {
        "auth.log" => format!("{stamp} e2e-host {rest}\n"),
        "short-iso" => format!("{iso}+0000 e2e-host timeoutd[{pid}]: {msg}\n"),
        "json" => format!(
            "{}\n",
            serde_json::json!({
                "MESSAGE": msg,
                "SYSLOG_IDENTIFIER": "timeoutd",
                "_HOSTNAME": "e2e-host",
                "_PID": pid.to_string(),
                "__REALTIME_TIMESTAMP": (l.t_ns / 1000).to_string(),
            })
        ),
        _ => format!("<86>1 {iso}Z e2e-host timeoutd {pid} - - {msg}\n"),
    })
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC for a CLOCK_REALTIME time in ns.
fn iso_utc(t_ns: i64) -> String {
    let secs = t_ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
