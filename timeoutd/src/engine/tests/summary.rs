//! The `session_summary` line: its arithmetic, and exactly one for every way
//! a session ends.

use session_timeout_proto::{Request, SessionKey, Target};

use crate::core::audit::event::Event;
use crate::core::policy::{Enforce, Limits};
use crate::core::time::clock::Timestamp;
use crate::engine::testkit::*;

type Engine = crate::engine::Engine<Fake>;

fn dry(l: Limits) -> Limits {
    Limits {
        enforce: Enforce::DryRun,
        ..l
    }
}

/// The one summary logged, right after the event that ended the session.
fn the_summary(e: &Engine) -> &Event {
    let at: Vec<usize> = (0..e.sys.events.len())
        .filter(|i| e.sys.events[*i].name() == "session_summary")
        .collect();
    assert_eq!(at.len(), 1, "one summary: {:?}", names(e));
    let before = e.sys.events[at[0] - 1].name();
    assert!(
        before == "session_close" || before == "session_terminated",
        "after {before}"
    );
    &e.sys.events[at[0]]
}

fn num(ev: &Event, key: &str) -> u64 {
    ev.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {ev}"))
}

fn gaps(ev: &Event) -> Vec<(u64, u64)> {
    let text = ev.get("gaps").unwrap_or("");
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (o, l) = p.split_once(':').unwrap();
            (o.parse().unwrap(), l.parse().unwrap())
        })
        .collect()
}

fn logout(e: &mut Engine) {
    e.unregister(
        SessionKey {
            pid: LEADER.pid,
            start_time: LEADER.start_time,
            session_id: 0,
        },
        ROOT,
    );
}

#[test]
fn gaps_idle_max_and_active_of_a_logout() {
    let mut e = engine(dry(limits(Some(600), Some(7200), &[])));
    e.register(registration(), ROOT);
    run_until(&mut e, 1300);
    // Input at 1300, credited at 1304 (the end of its 8 s window), then none.
    e.sys.ttys.insert("pts/4".into(), times(1300, 995));
    run_until(&mut e, 1500);
    logout(&mut e);
    let s = the_summary(&e);
    assert_eq!(s.to_string().split(' ').nth(1), Some("v=1"));
    assert_eq!(num(s, "duration"), 500);
    let g = gaps(s);
    // From login to the last look before 1300 that found nothing (looks are
    // at most a minute apart in dry-run), and from the input to the last
    // look before the logout.
    assert_eq!(g.len(), 2, "{s}");
    assert_eq!(g[0].0, 0);
    assert!((240..=300).contains(&g[0].1), "{s}");
    assert_eq!(g[1].0, 304, "{s}");
    assert!((136..=196).contains(&g[1].1), "{s}");
    assert_eq!(num(s, "idle_max"), g[0].1);
    let idle: u64 = g.iter().map(|(_, l)| *l).filter(|l| *l >= 60).sum();
    assert_eq!(num(s, "active"), 500 - idle);
    assert_eq!(s.get("end"), Some("logout"));
    assert_eq!(s.get("limit_idle"), Some("600"));
    assert_eq!(s.get("limit_max"), Some("7200"));
    assert_eq!(s.get("rule"), Some("defaults"));
    assert_eq!(num(s, "warnings"), 0);
    assert_eq!(num(s, "tamper"), 0);
    assert_eq!(num(s, "dry_run_expiries"), 0);
    assert!(s.to_string().len() < 1024);
}

#[test]
fn an_idle_ending_counts_warnings_and_its_final_gap_is_the_limit() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1040);
    let s = the_summary(&e);
    assert_eq!(s.get("end"), Some("idle"));
    assert_eq!(num(s, "warnings"), 1);
    assert_eq!(gaps(s), [(0, 15)]);
    assert_eq!(num(s, "idle_max"), 15);
    // 15 s is a pause, not idle time (gaps of 60 s or more are).
    assert_eq!(num(s, "active"), num(s, "duration"));
    assert_eq!(s.get("limit_max"), Some("off"));
}

#[test]
fn tampering_and_dry_run_expiries_are_counted() {
    let mut e = engine(dry(limits(Some(15), None, &[10])));
    e.register(registration(), ROOT);
    run_until(&mut e, 1006);
    e.sys.ttys.insert("pts/4".into(), times(1006, 1006)); // touch -a
    run_until(&mut e, 1020);
    e.sys.ttys.insert("pts/4".into(), times(1020, 1006));
    run_until(&mut e, 1100);
    logout(&mut e);
    let s = the_summary(&e);
    assert_eq!(num(s, "tamper"), 1);
    assert_eq!(num(s, "dry_run_expiries"), 2);
    assert_eq!(num(s, "warnings"), 0, "a dry run writes none");
}

#[test]
fn one_summary_for_each_way_a_session_ends() {
    // leader_gone
    let mut e = engine(limits(Some(900), None, &[60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1005);
    e.sys.leader_alive = false;
    e.sys.procs.clear();
    run_until(&mut e, 2000);
    assert_eq!(the_summary(&e).get("end"), Some("leader_gone"));
    // max
    let mut e = engine(limits(None, Some(30), &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1100);
    assert_eq!(the_summary(&e).get("end"), Some("max"));
    // killed
    let mut e = engine(limits(Some(900), None, &[60]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1005);
    e.handle(
        Request::Kill {
            id: id.0,
            reason: "x".into(),
        },
        ROOT,
    );
    logout(&mut e); // a logout while it is ending changes nothing
    run_until(&mut e, 1100);
    assert_eq!(the_summary(&e).get("end"), Some("killed"));
    // revoked, live and at login
    let mut e = engine(limits(Some(900), None, &[60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1005);
    let revoke = Request::Revoke {
        target: Target::User("alice".into()),
        ttl_secs: 0,
        reason: String::new(),
    };
    e.handle(revoke.clone(), ROOT);
    run_until(&mut e, 1100);
    assert_eq!(the_summary(&e).get("end"), Some("revoked"));
    let mut e = engine(limits(Some(900), None, &[60]));
    e.handle(revoke, ROOT);
    e.register(registration(), ROOT);
    run_until(&mut e, 1100);
    assert_eq!(the_summary(&e).get("end"), Some("revoked"));
}

/// A session registered at 1000 with some history, its record, and a new
/// engine (the restarted daemon) at `restart_at`.
fn restarted(l: Limits, restart_at: i64) -> (crate::core::state::record::SessionRecord, Engine) {
    let mut first = engine(l.clone());
    let id = registered_id(first.register(registration(), ROOT));
    run_until(&mut first, 1200);
    first.sys.ttys.insert("pts/4".into(), times(1200, 995));
    run_until(&mut first, 1270);
    let rec = first.session(id).unwrap().record();
    assert!(!rec.evidence.gaps().is_empty(), "{:?}", rec.evidence);
    let mut second = engine(l);
    second.sys.now = Timestamp::from_secs(restart_at);
    (rec, second)
}

#[test]
fn lost_and_restored_sessions_end_with_one_summary_and_their_history() {
    let l = dry(limits(Some(600), None, &[]));
    let (rec, mut e) = restarted(l.clone(), 1300);
    e.sys.leader_alive = false;
    e.sys.procs.clear();
    assert!(!e.restore(rec));
    let s = the_summary(&e);
    assert_eq!(s.get("end"), Some("lost_while_down"));
    assert_eq!(
        gaps(s).first().map(|g| g.0),
        Some(0),
        "the gap before the restart"
    );

    let (rec, mut e) = restarted(l.clone(), 1300);
    e.discard(rec, "rebooted");
    assert_eq!(the_summary(&e).get("end"), Some("lost_while_down"));

    let (rec, mut e) = restarted(l, 1300);
    let before = rec.evidence.clone();
    assert!(e.restore(rec));
    run_until(&mut e, 1400);
    logout(&mut e);
    let s = the_summary(&e);
    assert_eq!(s.get("end"), Some("logout"));
    assert_eq!(num(s, "duration"), 400);
    let g = gaps(s);
    assert!(
        before.gaps().iter().all(|b| g.contains(&(b.offset, b.len))),
        "{g:?} keeps {before:?}"
    );
    assert!(g.len() >= 2, "and the gap after the restart: {g:?}");
}

#[test]
fn the_line_stays_under_a_kibibyte_with_many_gaps() {
    let mut e = engine(dry(limits(Some(60), None, &[])));
    e.register(registration(), ROOT);
    let mut t = 1000;
    for i in 0..40 {
        t += 100 + i * 7;
        run_until(&mut e, t);
        e.sys.ttys.insert("pts/4".into(), times(t, 995));
    }
    run_until(&mut e, t + 70);
    logout(&mut e);
    let s = the_summary(&e);
    assert_eq!(gaps(s).len(), 16);
    assert!(gaps(s).windows(2).all(|w| w[0].0 < w[1].0));
    assert!(s.to_string().len() < 1024, "{}", s.to_string().len());
}
