//! Dry-run rules: deadlines logged, nothing signalled, warnings kept off the
//! terminal, and a reload to `on` that enforces from the session's history.

use session_timeout_proto::Response;

use crate::core::policy::{Enforce, Limits, Policy};
use crate::engine::testkit::*;

fn dry(l: Limits) -> Limits {
    Limits {
        enforce: Enforce::DryRun,
        ..l
    }
}

fn count(e: &crate::engine::Engine<Fake>, name: &str) -> usize {
    names(e).iter().filter(|n| **n == name).count()
}

fn expiries(e: &crate::engine::Engine<Fake>) -> Vec<(String, String, Option<String>)> {
    e.sys
        .events
        .iter()
        .filter(|ev| ev.name() == "session_expired")
        .map(|ev| {
            (
                ev.get("reason").unwrap_or("").to_owned(),
                ev.get("deadline").unwrap_or("").to_owned(),
                ev.get("dry_run").map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn a_dry_run_expiry_is_logged_and_nothing_is_signalled_or_written() {
    let mut e = engine(dry(limits(Some(15), None, &[10])));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1100);
    assert_eq!(
        expiries(&e),
        [("idle".into(), "1015".into(), Some("1".into()))],
        "logged once while the session stays idle"
    );
    assert!(e.sys.signals.is_empty(), "{:?}", e.sys.signals);
    assert!(e.sys.writes.is_empty(), "warnings are off in dry-run");
    let warn = find(&e, "session_warn");
    assert_eq!(
        (warn.get("delivered"), warn.get("dry_run")),
        (Some("0"), Some("1"))
    );
    assert!(e.session(id).is_some_and(|s| s.is_active()), "it goes on");
    assert_eq!(count(&e, "session_signal"), 0);
}

#[test]
fn input_rearms_the_idle_deadline_so_one_session_logs_several_expiries() {
    let mut e = engine(dry(limits(Some(15), None, &[10])));
    e.register(registration(), ROOT);
    run_until(&mut e, 1020);
    // Input at 1020 (window [1016, 1024), credited at 1024): deadline 1039.
    e.sys.ttys.insert("pts/4".into(), times(1020, 995));
    run_until(&mut e, 1060);
    // Input at 1060 (credited at 1064): deadline 1079.
    e.sys.ttys.insert("pts/4".into(), times(1060, 995));
    run_until(&mut e, 1200);
    let deadlines: Vec<String> = expiries(&e).into_iter().map(|(_, d, _)| d).collect();
    assert_eq!(deadlines, ["1015", "1039", "1079"]);
    assert!(e.sys.signals.is_empty());
    // A dry-run session past its idle deadline is looked at every idle limit at most.
    let next = e.next_wake().unwrap();
    assert!(
        next <= e.sys.now + std::time::Duration::from_secs(15),
        "{next:?}"
    );
}

#[test]
fn an_absolute_deadline_is_logged_once() {
    let mut e = engine(dry(limits(Some(15), Some(30), &[10])));
    e.register(registration(), ROOT);
    for t in (1003..1200).step_by(3) {
        e.sys.ttys.insert("pts/4".into(), times(t, 995));
        run_until(&mut e, t);
    }
    assert_eq!(
        expiries(&e),
        [("max".into(), "1030".into(), Some("1".into()))]
    );
    assert!(e.sys.signals.is_empty());
}

#[test]
fn dry_run_warn_writes_the_warnings() {
    let mut e = engine(Limits {
        dry_run_warn: true,
        ..dry(limits(Some(15), None, &[10]))
    });
    e.register(registration(), ROOT);
    run_until(&mut e, 1020);
    assert_eq!(e.sys.writes.len(), 1);
    let warn = find(&e, "session_warn");
    assert_eq!(
        (warn.get("delivered"), warn.get("dry_run")),
        (Some("1"), Some("1"))
    );
    assert!(e.sys.signals.is_empty());
}

#[test]
fn the_banner_of_a_dry_run_threatens_nothing() {
    let mut e = engine(dry(limits(Some(15), Some(3600), &[10])));
    match e.register(registration(), ROOT) {
        Response::Registered { banner, .. } => assert_eq!(banner, ""),
        other => panic!("{other:?}"),
    }
    let mut on = engine(limits(Some(15), Some(3600), &[10]));
    match on.register(registration(), ROOT) {
        Response::Registered { banner, .. } => assert!(banner.contains("15s"), "{banner}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reload_to_on_enforces_from_the_sessions_own_history() {
    let mut e = engine(dry(limits(Some(15), None, &[10])));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1030);
    assert_eq!(expiries(&e).len(), 1);
    e.set_policy(Policy::new(limits(Some(15), None, &[10])));
    run_until(&mut e, 1031);
    // The deadline (1015) has passed: one warning, written this time, and
    // the end after the shortest warning offset.
    let warns: Vec<_> = e
        .sys
        .events
        .iter()
        .filter(|ev| ev.name() == "session_warn")
        .collect();
    let last = warns.last().unwrap();
    assert_eq!(
        (last.get("delivered"), last.get("dry_run")),
        (Some("1"), None)
    );
    assert_eq!(e.sys.writes.len(), 1);
    run_until(&mut e, 1039);
    assert!(e.sys.signals.is_empty(), "not before the warning ran out");
    run_until(&mut e, 1041);
    // Enforced now: the deadline of its own history, without dry_run=1.
    let last = expiries(&e).pop().unwrap();
    assert_eq!(last, ("idle".into(), "1015".into(), None));
    assert_eq!(e.sys.signals[0].0, libc::SIGHUP);
    run_until(&mut e, 1060);
    assert_eq!(find(&e, "session_terminated").get("reason"), Some("idle"));
    let summary = find(&e, "session_summary");
    assert_eq!(
        (summary.get("end"), summary.get("dry_run_expiries")),
        (Some("idle"), Some("1"))
    );
    assert!(e.session(id).is_none());
}
