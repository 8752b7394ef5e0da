//! Unit tests of the streaming aggregation: grouping, malformed counting,
//! the time window and the dry-run expiries with and without a summary.

use super::*;
use crate::report::read::time::LocalZone;

const T: i64 = 1_796_167_830; // 2026-12-01T23:30:30Z

fn summary(id: u64, user: &str, duration: u64, idle_max: u64, end: &str, dry: u64) -> String {
    format!(
        "2026-12-01T23:30:30Z web1 timeoutd[1]: event=session_summary v=1 id={id} user={user} \
         uid=1000 service=sshd tty=pts/1 rhost=10.0.0.1 rule=staff duration={duration} \
         active=10 idle_max={idle_max} gaps=5:{idle_max} warnings=0 tamper=1 end={end} \
         dry_run_expiries={dry} limit_idle=600 limit_max=28800"
    )
}

fn expiry(id: u64) -> String {
    format!(
        "2026-12-01T23:00:00Z web1 timeoutd[1]: event=session_expired id={id} user=bob uid=1 \
         service=sshd tty=pts/1 rhost=h pid=2 rule=staff reason=idle deadline=1 dry_run=1"
    )
}

fn run(opts: Options, lines: &[String]) -> Report {
    let mut r = Report::new(opts);
    let mut cx = Context {
        now: T + 86_400,
        zone: LocalZone::default(),
    };
    for l in lines {
        r.feed(l.as_bytes(), false, &mut cx);
    }
    r.finish();
    r
}

fn by_user() -> Options {
    Options {
        by: Some(By::User),
        outliers: 5,
        rules: vec!["staff".into(), "unused".into()],
        ..Options::default()
    }
}

#[test]
fn groups_and_totals() {
    let lines = vec![
        summary(1, "alice", 100, 10, "logout", 0),
        summary(2, "alice", 300, 700, "idle", 0),
        summary(3, "bob", 5000, 20, "max", 2),
        "Dec  1 23:30:30 web1 sshd[5]: Accepted publickey for alice".to_owned(),
        "2026-12-01T23:30:30Z web1 timeoutd[1]: event=session_open id=9 user=x".to_owned(),
    ];
    let r = run(by_user(), &lines);
    assert_eq!((r.sessions, r.malformed), (3, 0));
    assert_eq!(r.groups["alice"].sessions, 2);
    assert_eq!(r.groups["bob"].would_expire, 2);
    assert_eq!(r.total.tamper, 3);
    assert_eq!(r.total.ended_by(&[End::Idle, End::Max]), 2);
    assert_eq!(r.total.lifetime.max(), 5000);
    assert_eq!(r.common_limits(), (Some(600), Some(28_800)));
    assert_eq!(r.total.unmatched(&r.opts.rules), vec!["unused"]);
    assert_eq!(r.span, Some((T, T)));
}

#[test]
fn hostile_lines_are_counted_not_fatal() {
    let good = summary(1, "alice", 100, 10, "logout", 0);
    let mut r = Report::new(by_user());
    let mut cx = Context::default();
    let mut invalid_utf8 = good.clone().into_bytes();
    invalid_utf8.insert(80, 0xff);
    r.feed(&invalid_utf8, false, &mut cx);
    r.feed(good.as_bytes(), true, &mut cx);
    r.feed(good.replace("v=1", "v=9").as_bytes(), false, &mut cx);
    r.feed(
        good.replace("duration=100", "duration=x").as_bytes(),
        false,
        &mut cx,
    );
    r.feed(&good.as_bytes()[..good.len() - 30], false, &mut cx);
    r.feed(b"\x1b[2J\x00\xff timeoutd garbage", false, &mut cx);
    r.feed(
        good.replace("timeoutd[1]", "other[1]").as_bytes(),
        false,
        &mut cx,
    );
    r.feed(good.as_bytes(), false, &mut cx);
    assert_eq!((r.sessions, r.malformed), (1, 5));
}

#[test]
fn time_window() {
    let opts = Options {
        from: Some(T - 10),
        to: Some(T),
        ..by_user()
    };
    let r = run(opts, &[summary(1, "a", 1, 1, "logout", 0), expiry(7)]);
    // The summary is at T (excluded: `to` is exclusive); the expiry before.
    assert_eq!(r.sessions, 0);
    let bare = summary(1, "a", 1, 1, "logout", 0);
    let bare = bare.split_once(": ").unwrap().1.to_owned();
    let opts = Options {
        from: Some(0),
        ..by_user()
    };
    assert_eq!(run(opts, std::slice::from_ref(&bare)).sessions, 0);
    assert_eq!(run(by_user(), &[bare]).sessions, 1);
}

#[test]
fn dry_run_expiries_count_once() {
    let lines = vec![
        expiry(3),
        expiry(3),
        summary(3, "bob", 100, 10, "logout", 2),
        expiry(4),
        expiry(4),
    ];
    let r = run(by_user(), &lines);
    let bob = &r.groups["bob"];
    assert_eq!(bob.would_expire, 2);
    assert_eq!(bob.would_expire_unsummarised, 2);
    assert_eq!(r.total.would_expire_unsummarised, 2);
}

#[test]
fn what_if_per_group() {
    let opts = Options {
        what_if: Some(Limits {
            idle: Some(600),
            max: None,
        }),
        ..by_user()
    };
    let lines = vec![
        summary(1, "alice", 1000, 700, "logout", 0),
        summary(2, "alice", 1000, 100, "logout", 0),
        summary(3, "bob", 605, 600, "idle", 0),
    ];
    let r = run(opts, &lines);
    assert_eq!(r.groups["alice"].what_if.cut, 1);
    assert_eq!(r.groups["alice"].what_if.time_cut_secs, 1000 - 605);
    assert_eq!(r.total.what_if.cut, 2);
    assert_eq!(r.total.what_if.already_ended, 1);
}
