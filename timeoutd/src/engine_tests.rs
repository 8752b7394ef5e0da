//! The whole life of a session, driven second by second with a fake system.

use std::collections::HashMap;
use std::time::Duration;

use session_timeout_proto::{ErrorCode, Registration, Response, SessionKey};

use crate::clock::Timestamp;
use crate::engine::{Engine, Peer, ProcFacts, System, TtyProbe};
use crate::event::Event;
use crate::policy::{Limits, Policy};
use crate::session::{ProcRef, Scope, SessionId, TtyTimes};

const USER_UID: u32 = 1001;
const LEADER: ProcRef = ProcRef {
    pid: 500,
    start_time: 77,
};

#[derive(Default)]
struct Fake {
    now: Timestamp,
    ttys: HashMap<String, TtyTimes>,
    /// The terminal appears this long after registration.
    tty_appears_at: Option<Timestamp>,
    procs: Vec<ProcFacts>,
    leader_alive: bool,
    parent_sessionid: Option<u32>,
    events: Vec<Event>,
    writes: Vec<(String, String)>,
    signals: Vec<(i32, Vec<u32>)>,
    /// Processes that ignore these signals.
    immune: Vec<(u32, i32)>,
    next_id: u64,
    notty: bool,
    io: u64,
}

impl System for Fake {
    fn now(&self) -> Timestamp {
        self.now
    }
    fn find_ttys(&mut self, _leader: ProcRef, _pam_tty: &str) -> TtyProbe {
        match self.tty_appears_at {
            Some(t) if t <= self.now => TtyProbe {
                ttys: self.ttys.keys().cloned().collect(),
                notty: false,
            },
            _ => TtyProbe {
                ttys: Vec::new(),
                notty: self.notty,
            },
        }
    }
    fn groups_of(&mut self, _user: &str) -> Vec<String> {
        vec!["alice".into(), "wheel".into()]
    }
    fn io_total(&mut self, _leader: ProcRef, _scope: Scope) -> Option<u64> {
        Some(self.io)
    }
    fn tty_times(&mut self, name: &str) -> Option<TtyTimes> {
        self.ttys.get(name).copied()
    }
    fn write_tty(&mut self, name: &str, text: &str) -> bool {
        self.writes.push((name.to_owned(), text.to_owned()));
        true
    }
    fn alive(&mut self, p: ProcRef) -> bool {
        p == LEADER && self.leader_alive
    }
    fn parent_sessionid(&mut self, _p: ProcRef) -> Option<u32> {
        self.parent_sessionid
    }
    fn scope_processes(&mut self, _leader: ProcRef, _scope: Scope) -> Vec<ProcFacts> {
        self.procs.clone()
    }
    fn signal(&mut self, procs: &[ProcRef], sig: i32) -> usize {
        self.signals
            .push((sig, procs.iter().map(|p| p.pid).collect()));
        let immune = self.immune.clone();
        self.procs.retain(|p| {
            !procs.contains(&p.proc) || sig == libc::SIGCONT || immune.contains(&(p.proc.pid, sig))
        });
        procs.len()
    }
    fn log(&mut self, ev: Event) {
        self.events.push(ev);
    }
    fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn proc(pid: u32, uid: u32) -> ProcFacts {
    ProcFacts {
        proc: ProcRef {
            pid,
            start_time: pid as u64,
        },
        ppid: if pid == 501 { LEADER.pid } else { 501 },
        ruid: uid,
        euid: uid,
        same_program_as_parent: pid == 501,
    }
}

fn limits(idle: Option<u64>, max: Option<u64>, warn: &[u64]) -> Limits {
    Limits {
        idle: idle.map(Duration::from_secs),
        max: max.map(Duration::from_secs),
        warn: warn.iter().map(|s| Duration::from_secs(*s)).collect(),
        grace: Duration::from_secs(2),
        ..Limits::builtin()
    }
}

fn times(atime: i64, ctime: i64) -> TtyTimes {
    TtyTimes {
        atime: Timestamp::from_secs(atime),
        mtime: Timestamp::from_secs(atime),
        ctime: Timestamp::from_secs(ctime),
    }
}

fn engine(l: Limits) -> Engine<Fake> {
    let mut fake = Fake {
        now: Timestamp::from_secs(1000),
        leader_alive: true,
        parent_sessionid: Some(u32::MAX),
        tty_appears_at: Some(Timestamp::from_secs(1000)),
        ..Fake::default()
    };
    fake.ttys.insert("pts/4".into(), times(990, 995));
    let leader = ProcFacts {
        proc: LEADER,
        ppid: 1,
        ruid: 0,
        euid: 0,
        same_program_as_parent: false,
    };
    fake.procs = vec![
        leader,
        proc(501, USER_UID),
        proc(502, USER_UID),
        proc(900, 0),
        proc(901, 2000),
    ];
    Engine::new(fake, Policy::new(l))
}

fn registration() -> Registration {
    Registration {
        user: "alice".into(),
        uid: USER_UID,
        service: "sshd".into(),
        tty: "ssh".into(),
        rhost: "127.0.0.1".into(),
        pid: LEADER.pid,
        start_time: LEADER.start_time,
        loginuid: USER_UID,
        sessionid: 42,
        ..Registration::default()
    }
}

const ROOT: Peer = Peer {
    pid: 1,
    uid: 0,
    gid: 0,
};

/// Advances the fake clock in 100 ms steps, running whatever is due.
fn run_until(e: &mut Engine<Fake>, until_s: i64) {
    let until = Timestamp::from_secs(until_s);
    while e.sys.now < until {
        e.sys.now = e.sys.now + Duration::from_millis(100);
        e.run_due();
    }
}

fn names(e: &Engine<Fake>) -> Vec<&'static str> {
    e.sys.events.iter().map(|ev| ev.name()).collect()
}

fn find<'a>(e: &'a Engine<Fake>, name: &str) -> &'a Event {
    e.sys
        .events
        .iter()
        .find(|ev| ev.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(e)))
}

fn registered_id(r: Response) -> SessionId {
    match r {
        Response::Registered { session_id, .. } => SessionId(session_id),
        other => panic!("not registered: {other:?}"),
    }
}

#[test]
fn idle_session_is_warned_expired_and_killed_in_order() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1040);
    assert_eq!(
        names(&e),
        [
            "session_open",
            "session_tty",
            "session_warn",
            "session_expired",
            "session_signal",
            "session_terminated"
        ]
    );
    // Registered at 1000, no credited input: warn at 1005, expire at 1015.
    assert_eq!(find(&e, "session_warn").get("remaining"), Some("10s"));
    assert_eq!(find(&e, "session_expired").get("reason"), Some("idle"));
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1015"));
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
    assert!(e.session(id).is_none(), "the session is forgotten");
    let (_, text) = &e.sys.writes[0];
    assert!(
        text.contains("will be closed in 10s (idle limit of 15s)"),
        "{text}"
    );
    assert!(text.ends_with('\u{7}'));
}

#[test]
fn only_the_users_processes_and_the_leader_are_signalled() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.immune = vec![(502, libc::SIGHUP)];
    e.register(registration(), ROOT);
    run_until(&mut e, 1040);
    let (first_sig, first_pids) = &e.sys.signals[0];
    assert_eq!(*first_sig, libc::SIGHUP);
    assert_eq!(first_pids, &[500, 501, 502]);
    assert_eq!(e.sys.signals[1].0, libc::SIGCONT);
    // 502 ignored SIGHUP: it gets SIGTERM after the grace period.
    assert_eq!(e.sys.signals[2], (libc::SIGTERM, vec![502]));
    assert!(e
        .sys
        .signals
        .iter()
        .all(|(_, p)| !p.contains(&900) && !p.contains(&901)));
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("0"));
}

#[test]
fn unkillable_processes_are_reported_as_survivors() {
    let mut e = engine(limits(Some(15), None, &[]));
    e.sys.immune = vec![
        (501, libc::SIGHUP),
        (501, libc::SIGTERM),
        (501, libc::SIGKILL),
    ];
    e.register(registration(), ROOT);
    run_until(&mut e, 1060);
    assert_eq!(find(&e, "session_terminated").get("survivors"), Some("1"));
}

#[test]
fn real_input_postpones_the_idle_deadline() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1007);
    // The kernel records input at 1009 (window [1008, 1016) ends at 1016).
    e.sys.ttys.insert("pts/4".into(), times(1009, 995));
    run_until(&mut e, 1030);
    assert!(!names(&e).contains(&"session_expired"));
    run_until(&mut e, 1032);
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1031"));
}

#[test]
fn touching_the_tty_is_not_activity_and_is_reported() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1006);
    e.sys.ttys.insert("pts/4".into(), times(1006, 1006)); // touch -a
    run_until(&mut e, 1016);
    assert_eq!(find(&e, "tamper_suspected").get("tty"), Some("pts/4"));
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1015"));
}

#[test]
fn absolute_limit_ends_a_busy_session() {
    let mut e = engine(limits(Some(15), Some(30), &[10]));
    e.register(registration(), ROOT);
    for t in (1003..1040).step_by(3) {
        e.sys.ttys.insert("pts/4".into(), times(t, 995));
        run_until(&mut e, t);
    }
    let ev = find(&e, "session_expired");
    assert_eq!(
        (ev.get("reason"), ev.get("deadline")),
        (Some("max"), Some("1030"))
    );
}

#[test]
fn logout_closes_and_forgets() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    run_until(&mut e, 1003);
    let key = SessionKey {
        pid: LEADER.pid,
        start_time: LEADER.start_time,
        session_id: id.0,
    };
    assert_eq!(
        e.unregister(key, ROOT),
        Response::Unregistered { session_id: id.0 }
    );
    run_until(&mut e, 1100);
    assert_eq!(names(&e), ["session_open", "session_tty", "session_close"]);
    assert_eq!(find(&e, "session_close").get("duration"), Some("3s"));
    assert!(e.is_empty());
    assert_eq!(e.next_wake(), None);
}

#[test]
fn non_root_peers_are_refused_and_logged() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let peer = Peer {
        pid: 3,
        uid: 1001,
        gid: 1001,
    };
    match e.register(registration(), peer) {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::PermissionDenied),
        other => panic!("{other:?}"),
    }
    assert!(e.is_empty());
    assert_eq!(find(&e, "request_denied").get("peer_uid"), Some("1001"));
    let key = SessionKey {
        pid: LEADER.pid,
        start_time: LEADER.start_time,
        session_id: 0,
    };
    assert!(matches!(e.unregister(key, peer), Response::Error { .. }));
}

#[test]
fn scope_is_the_audit_session_only_when_the_service_set_a_new_one() {
    let mut e = engine(limits(Some(15), None, &[10]));
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(
        e.session(id).map(|s| s.scope),
        Some(Scope::AuditSession(42))
    );
    let mut e = engine(limits(Some(15), None, &[10]));
    e.sys.parent_sessionid = Some(42); // su inside a login: same audit session as the parent
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(e.session(id).map(|s| s.scope), Some(Scope::Subtree));
}

#[test]
fn no_tty_means_no_idle_limit_but_max_still_applies() {
    let mut e = engine(limits(Some(15), Some(60), &[]));
    e.sys.tty_appears_at = None;
    e.register(registration(), ROOT);
    run_until(&mut e, 1059);
    assert!(!names(&e).contains(&"session_expired"));
    run_until(&mut e, 1061);
    assert_eq!(find(&e, "session_expired").get("reason"), Some("max"));
}

#[test]
fn wakes_are_event_driven_not_a_scan() {
    let mut e = engine(limits(Some(900), Some(43_200), &[300, 60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1010);
    // Terminal found. The first warning is due at 1000+900-300 = 1600; before
    // that the session is only looked at by the 5-minute liveness check.
    let next = e.next_wake().unwrap();
    assert!(next >= Timestamp::from_secs(1300), "{next:?}");
    run_until(&mut e, 1599);
    assert_eq!(e.next_wake(), Some(Timestamp::from_secs(1600)));
}

#[test]
fn a_leader_that_died_silently_is_closed() {
    let mut e = engine(limits(Some(15), None, &[10]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1001);
    e.sys.leader_alive = false;
    e.sys.procs.clear();
    run_until(&mut e, 1010);
    assert_eq!(find(&e, "session_close").get("reason"), Some("leader_gone"));
    assert!(e.is_empty());
}

#[test]
fn a_shorter_policy_applies_to_live_sessions() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1010);
    e.set_policy(Policy::new(limits(Some(30), None, &[10])));
    run_until(&mut e, 1031);
    assert_eq!(find(&e, "session_expired").get("deadline"), Some("1030"));
}

#[test]
fn a_login_without_terminal_is_idle_by_its_io() {
    let mut e = engine(limits(Some(15), Some(600), &[]));
    e.sys.tty_appears_at = None;
    e.sys.notty = true;
    e.register(registration(), ROOT);
    // I/O moves until 1020, then stops: idle from about then.
    for t in (1001..=1020).step_by(2) {
        e.sys.io += 100;
        run_until(&mut e, t);
    }
    run_until(&mut e, 1100);
    let ev = find(&e, "session_expired");
    assert_eq!(ev.get("reason"), Some("idle"));
    let deadline: i64 = ev.get("deadline").unwrap().parse().unwrap();
    // Activity is credited when a look sees the counters move (looks are not
    // continuous), so the deadline is at least 15 s after the last I/O.
    assert!((1035..=1060).contains(&deadline), "{deadline}");
}

#[test]
fn max_only_exempts_a_login_without_terminal_from_idle() {
    let mut l = limits(Some(15), Some(60), &[]);
    l.notty = crate::policy::NottyMode::MaxOnly;
    let mut e = engine(l);
    e.sys.tty_appears_at = None;
    e.sys.notty = true;
    e.register(registration(), ROOT);
    run_until(&mut e, 1070);
    let ev = find(&e, "session_expired");
    assert_eq!(
        (ev.get("reason"), ev.get("deadline")),
        (Some("max"), Some("1060"))
    );
}

#[test]
fn the_rule_is_matched_again_once_the_terminal_kind_is_known() {
    use crate::matching::HostPattern;
    use crate::policy::{Criteria, Rule, TtyClass};
    let mut p = Policy::new(limits(Some(900), None, &[]));
    p.rules.push(Rule {
        name: "batch".into(),
        criteria: Criteria {
            tty: Some(TtyClass::None),
            rhosts: Some(vec![HostPattern::parse("127.0.0.0/8").unwrap()]),
            ..Criteria::default()
        },
        limits: limits(None, Some(30), &[]),
    });
    let mut e = engine(limits(Some(900), None, &[]));
    e.set_policy(p);
    e.sys.tty_appears_at = None;
    e.sys.notty = true;
    let id = registered_id(e.register(registration(), ROOT));
    assert_eq!(
        e.session(id).map(|s| s.rule.as_str()),
        Some("defaults"),
        "sshd: a pty is assumed at first"
    );
    run_until(&mut e, 1001);
    assert_eq!(e.session(id).map(|s| s.rule.as_str()), Some("batch"));
    assert_eq!(find(&e, "session_rematched").get("new_rule"), Some("batch"));
    run_until(&mut e, 1031);
    assert_eq!(find(&e, "session_expired").get("reason"), Some("max"));
}

#[test]
fn groups_from_nss_select_rules() {
    use crate::policy::{Criteria, Rule};
    let mut p = Policy::new(limits(Some(900), None, &[]));
    p.rules.push(Rule {
        name: "privileged".into(),
        criteria: Criteria {
            groups: Some(vec!["wheel".into()]),
            ..Criteria::default()
        },
        limits: limits(Some(600), None, &[]),
    });
    let mut e = engine(limits(Some(900), None, &[]));
    e.set_policy(p);
    let id = registered_id(e.register(registration(), ROOT));
    let s = e.session(id).unwrap();
    assert_eq!(
        (s.rule.as_str(), s.limits.idle),
        ("privileged", Some(Duration::from_secs(600)))
    );
    assert_eq!(find(&e, "session_open").get("rule"), Some("privileged"));
}

#[test]
fn a_reload_whose_limit_already_passed_warns_before_ending() {
    let mut e = engine(limits(Some(900), None, &[60]));
    e.register(registration(), ROOT);
    run_until(&mut e, 1100);
    e.set_policy(Policy::new(limits(Some(30), None, &[10])));
    run_until(&mut e, 1102);
    let warn = find(&e, "session_warn");
    assert_eq!(warn.get("remaining"), Some("10s"));
    assert!(!names(&e).contains(&"session_expired"));
    run_until(&mut e, 1112);
    assert_eq!(find(&e, "session_expired").get("reason"), Some("idle"));
}

#[test]
fn leader_scope_signals_only_the_logins_own_processes() {
    let mut l = limits(Some(15), None, &[]);
    l.kill_scope = crate::policy::KillScope::Leader;
    let mut e = engine(l);
    e.register(registration(), ROOT);
    run_until(&mut e, 1040);
    // 500 is the leader, 501 its sshd child; 502 (a detached job) survives.
    assert_eq!(e.sys.signals[0], (libc::SIGHUP, vec![500, 501]));
    assert!(e.sys.procs.iter().any(|p| p.proc.pid == 502));
}
