//! `timeoutctl report` end to end over files: the same session summaries,
//! written by timeoutd's own event writer, in each input format (rsyslog
//! auth.log, journalctl -o short-iso, -o json, RFC 5424, and gzip), mixed
//! with other programs' lines and a malformed one; and the SVG rendered by
//! rsvg-convert.

// A failed assumption in a test is a failed test, also in its helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use timeoutd::core::audit::event::{Event, EventName};

/// 2026-11-20T10:00:00Z.
const T: i64 = 1_795_687_200;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("report-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (user, rule, duration, idle_max, gaps, end, limit_idle, limit_max)
type Session = (
    &'static str,
    &'static str,
    u64,
    u64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const SESSIONS: [Session; 4] = [
    (
        "alice", "staff", 3600, 300, "100:300", "logout", "900", "28800",
    ),
    (
        "bob",
        "staff",
        7200,
        1200,
        "50:200,600:1200",
        "logout",
        "900",
        "28800",
    ),
    (
        "carol",
        "contractors",
        900,
        600,
        "300:600",
        "idle",
        "600",
        "14400",
    ),
    (
        "dave \u{1b}[31m",
        "batch",
        20000,
        50,
        "",
        "max",
        "off",
        "86400",
    ),
];

/// The messages: the four summaries, other timeoutd events, one malformed.
fn messages() -> Vec<(&'static str, String)> {
    let mut out = vec![(
        "timeoutd",
        "event=session_open id=1 user=alice rule=staff".to_owned(),
    )];
    for (i, (user, rule, duration, idle_max, gaps, end, li, lm)) in SESSIONS.iter().enumerate() {
        let ev = Event::new(EventName::SessionSummary)
            .field("v", 1)
            .field("id", i + 1)
            .field("user", user)
            .field("uid", 1000 + i)
            .field("service", "sshd")
            .field("tty", "pts/1")
            .field("rhost", "192.0.2.9")
            .field("rule", rule)
            .field("duration", duration)
            .field("active", 10)
            .field("idle_max", idle_max)
            .field("gaps", gaps)
            .field("warnings", 0)
            .field("tamper", 0)
            .field("end", end)
            .field("dry_run_expiries", 0)
            .field("limit_idle", li)
            .field("limit_max", lm);
        out.push(("timeoutd", ev.to_string()));
        out.push((
            "sshd",
            format!("pam_unix(sshd:session): session closed for user {user}"),
        ));
    }
    out.push((
        "timeoutd",
        "event=session_summary v=2 id=9 user=eve".to_owned(),
    ));
    out.push((
        "CRON",
        "event=session_summary v=1 id=10 user=mallory".to_owned(),
    ));
    out
}

fn write_format(dir: &Path, format: &str, host: &str) -> PathBuf {
    let mut text = String::new();
    for (i, (prog, msg)) in messages().iter().enumerate() {
        let t = T + i as i64 * 60;
        let (h, m) = (10 + t % 86_400 / 3600 - 10, t % 3600 / 60);
        let line = match format {
            "traditional" => format!("Nov 20 {h:02}:{m:02}:00 {host} {prog}[77]: {msg}"),
            "iso" => format!("2026-11-20T{h:02}:{m:02}:00+0000 {host} {prog}[77]: {msg}"),
            "rfc5424" => format!(
                "<86>1 2026-11-20T{h:02}:{m:02}:00.5Z {host} {prog} 77 - [meta x=\"]\"] {msg}"
            ),
            _ => serde_json::json!({
                "__REALTIME_TIMESTAMP": format!("{t}000000"),
                "_HOSTNAME": host,
                "SYSLOG_IDENTIFIER": prog,
                "MESSAGE": msg,
            })
            .to_string(),
        };
        text.push_str(&line);
        text.push('\n');
    }
    let path = dir.join(format!("{format}.log"));
    std::fs::write(&path, text).unwrap();
    path
}

fn report(args: &[&str], files: &[PathBuf]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_timeoutctl"))
        .arg("--config=/nonexistent/session-timeout.toml")
        .arg("report")
        .args(args)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check(v: &serde_json::Value, sessions: u64, cut: u64) {
    assert_eq!(v["sessions"], sessions, "{v:#}");
    assert_eq!(v["malformed"], sessions / 4);
    assert_eq!(v["what_if"]["cut"], cut);
    // bob idled 1200s of 900 (1.33x), carol 600 of 600 (1.0x).
    let users: Vec<&str> = v["outliers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["user"].as_str().unwrap())
        .collect();
    let copies = (sessions / 4) as usize;
    let expected: Vec<&str> = [["bob"; 4], ["carol"; 4]]
        .iter()
        .flat_map(|u| u[..copies].to_vec())
        .collect();
    assert_eq!(&users[..2 * copies], &expected[..], "{v:#}");
    assert_eq!(v["outliers"][0]["basis"], "idle");
    assert_eq!(v["config"]["readable"], false);
}

#[test]
fn every_format_gives_the_same_report() {
    let dir = Dir::new("formats");
    let mut all = Vec::new();
    for (format, host) in [
        ("traditional", "h1"),
        ("iso", "h2"),
        ("json", "h3"),
        ("rfc5424", "h4"),
    ] {
        let f = write_format(&dir.0, format, host);
        // idle=20m: only bob's 1200 s gap reaches it.
        let v = report(
            &["--json", "--what-if=idle=20m", "--outliers=2"],
            std::slice::from_ref(&f),
        );
        check(&v, 4, 1);
        assert_eq!(v["what_if"]["time_cut_secs"], 7200 - 1800, "{format}");
        assert_eq!(v["outliers"][0]["host"], host);
        all.push(f);
    }
    let v = report(
        &["--json", "--what-if=idle=20m", "--outliers=8", "--by=host"],
        &all,
    );
    check(&v, 16, 4);
    assert_eq!(v["groups"].as_array().unwrap().len(), 4);
    assert_eq!(v["outliers"].as_array().unwrap().len(), 8);
}

#[test]
fn gzip_input_and_table_escapes_users() {
    let dir = Dir::new("gz");
    let plain = write_format(&dir.0, "traditional", "h1");
    let gz = dir.0.join("auth.log.2.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    enc.finish().unwrap();
    check(
        &report(&["--json", "--what-if=idle=20m"], std::slice::from_ref(&gz)),
        4,
        1,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_timeoutctl"))
        .args(["report", "--by=user", "--config=/nonexistent"])
        .arg(&gz)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("dave \\x1b[31m"), "{text}");
    assert!(!text.contains('\u{1b}'));
    assert!(text.contains("1 malformed"), "{text}");
}

#[test]
fn svg_has_axes_and_limit_lines_and_renders() {
    let dir = Dir::new("svg");
    let f = write_format(&dir.0, "iso", "h1");
    let svg = dir.0.join("r.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_timeoutctl"))
        .args(["report", "--csv", "--what-if=idle=10m,max=4h", "--svg"])
        .arg(&svg)
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let text = std::fs::read_to_string(&svg).unwrap();
    for needle in [
        "id=\"x-axis\"",
        "id=\"y-axis\"",
        ">1m</text>",
        ">1w</text>",
        "class=\"limit current\" data-limit=\"max\"",
        "class=\"limit current\" data-limit=\"idle\"",
        "class=\"limit what-if\" data-limit=\"max\"",
        "class=\"limit what-if\" data-limit=\"idle\"",
        "current max 8h",
        "what-if idle 10m",
        "Session lifetimes",
        "Longest idle gap",
    ] {
        assert!(text.contains(needle), "{needle} missing in the SVG");
    }
    let png = dir.0.join("r.png");
    let rendered = Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png)
        .arg(&svg)
        .status();
    match rendered {
        Ok(s) => assert!(s.success() && std::fs::metadata(&png).unwrap().len() > 1000),
        Err(e) => panic!("rsvg-convert could not run ({e}): install librsvg2-bin (apt-get install -y librsvg2-bin)"),
    }
}
