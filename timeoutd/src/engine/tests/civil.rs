//! Windows and quotas through the engine: a window's close and a quota's end
//! are absolute deadlines (warned, then enforced, once), refusals in both
//! PAM phases, the union of parallel sessions, and a restart mid-day. The
//! fake clock starts at 1000 s after the epoch, 00:16:40 UTC on a Thursday.

use std::time::Duration;

use session_timeout_proto::{Registration, Request, Response, SessionKey};

use crate::core::policy::window::{Window, Windows};
use crate::core::policy::Limits;
use crate::core::session::ProcRef;
use crate::core::state::quota::QuotaLedger;
use crate::core::time::civil::Civil;
use crate::core::time::clock::Timestamp;
use crate::engine::testkit::*;
use crate::engine::Engine;

fn with_clock(hours: &[&str], daily: Option<u64>) -> Engine<Fake> {
    let l = Limits {
        hours: (!hours.is_empty())
            .then(|| Windows(hours.iter().map(|h| Window::parse(h).unwrap()).collect())),
        daily: daily.map(Duration::from_secs),
        ..limits(None, None, &[10])
    };
    let mut e = engine(l);
    e.civil = Civil::new(jiff::tz::TimeZone::UTC, (0, 0), 0);
    e
}

fn second_login(e: &mut Engine<Fake>) -> Registration {
    let other = ProcRef {
        pid: 600,
        start_time: 88,
    };
    e.sys.also_alive.push(other);
    Registration {
        pid: other.pid,
        start_time: other.start_time,
        ..registration()
    }
}

fn count(e: &Engine<Fake>, name: &str) -> usize {
    names(e).iter().filter(|n| **n == name).count()
}

#[test]
fn the_window_close_is_warned_then_ends_the_session_once() {
    // Open until 00:17 UTC: 1020 s.
    let mut e = with_clock(&["daily 00:00-00:17"], None);
    match e.register(registration(), ROOT) {
        Response::Registered { banner, .. } => assert!(
            banner.contains("login hours end at Thu 1970-01-01 00:17:00 UTC"),
            "{banner}"
        ),
        other => panic!("{other:?}"),
    }
    run_until(&mut e, 1040);
    let warn = find(&e, "session_warn");
    assert_eq!(warn.get("reason"), Some("window"));
    assert_eq!(warn.get("deadline"), Some("1020"));
    let exp = find(&e, "session_expired");
    assert_eq!(
        (exp.get("reason"), exp.get("deadline")),
        (Some("window"), Some("1020"))
    );
    assert_eq!(count(&e, "session_expired"), 1);
}

#[test]
fn outside_the_window_both_phases_refuse_with_the_opening_time() {
    let mut e = with_clock(&["daily 01:00-02:00"], None);
    let r = e.handle(
        Request::CheckAccess {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "127.0.0.1".into(),
        },
        ROOT,
    );
    let Response::Access { allowed, message } = r else {
        panic!("{r:?}")
    };
    assert!(!allowed);
    assert!(
        message.contains("again at Thu 1970-01-01 01:00:00 UTC"),
        "{message}"
    );
    let ev = find(&e, "login_refused");
    assert_eq!(
        (ev.get("reason"), ev.get("until")),
        (Some("window"), Some("3600"))
    );
    match e.register(registration(), ROOT) {
        Response::Refused { message } => assert!(message.contains("01:00:00"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&e, "login_refused"), 2);
}

#[test]
fn two_parallel_sessions_share_the_quota_and_end_together() {
    let mut e = with_clock(&[], Some(30));
    e.register(registration(), ROOT);
    run_until(&mut e, 1010);
    let second = second_login(&mut e);
    e.register(second, ROOT);
    // Union time: 30 s after the first login, whatever the second adds.
    run_until(&mut e, 1045);
    let expired: Vec<_> = e
        .sys
        .events
        .iter()
        .filter(|ev| ev.name() == "session_expired")
        .map(|ev| (ev.get("reason"), ev.get("deadline")))
        .collect();
    assert_eq!(expired, [(Some("quota"), Some("1030")); 2]);
    assert!(e.sys.saved_quota.is_some());
}

#[test]
fn logout_stops_the_clock_and_a_login_with_no_quota_left_is_refused() {
    let mut e = with_clock(&[], Some(30));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1020);
    e.unregister(
        SessionKey {
            pid: LEADER.pid,
            start_time: LEADER.start_time,
            session_id: id.0,
        },
        ROOT,
    );
    // 20 s used; an hour later 10 s are left: the next session ends 10 s in.
    e.sys.now = Timestamp::from_secs(4600);
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 4620);
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("4610"));
    let _ = id;
    run_until(&mut e, 4630);
    let third = second_login(&mut e);
    match e.register(third, ROOT) {
        Response::Refused { message } => {
            assert!(
                message.contains("resets at Fri 1970-01-02 00:00:00 UTC"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(find(&e, "login_refused").get("reason"), Some("quota"));
    // At the reset (midnight UTC) the quota is whole again.
    e.sys.now = Timestamp::from_secs(86_400 + 5);
    assert!(matches!(
        e.register(registration(), ROOT),
        Response::Registered { .. }
    ));
}

#[test]
fn a_restart_mid_day_keeps_the_quota_used_and_counts_the_live_session_on() {
    let mut e = with_clock(&[], Some(60));
    e.register(registration(), ROOT);
    run_until(&mut e, 1020);
    let stored = e.sys.saved_quota.clone().unwrap();
    // A new engine, as after a restart at 1030, with the session still live.
    let mut e2 = with_clock(&[], Some(60));
    e2.sys.now = Timestamp::from_secs(1030);
    e2.civil
        .set_ledger(QuotaLedger::from_text(&stored).unwrap());
    e2.register(registration(), ROOT); // restored like a new registration
    e2.settle_quotas();
    run_until(&mut e2, 1070);
    // The union clock ran from 1000 through the restart: out at 1060.
    assert_eq!(find(&e2, "session_expired").get("deadline"), Some("1060"));
}
