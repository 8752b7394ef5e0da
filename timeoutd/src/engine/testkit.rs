//! A fake [`System`] and helpers for driving the engine second by second.

use std::collections::HashMap;
use std::time::Duration;

use session_timeout_proto::{Registration, Response};

use crate::core::audit::event::Event;
use crate::core::policy::{Limits, Policy};
use crate::core::session::connection::{ConnFigures, ConnRead, Connection};
use crate::core::session::terminal::TtyTimes;
use crate::core::session::{ProcRef, Scope, SessionId};
use crate::core::state::record::{JournalEntry, SessionRecord};
use crate::core::time::clock::Timestamp;
use crate::engine::ConnSearch;
use crate::engine::{Engine, Peer, ProcFacts, System, TtyProbe};

pub(crate) const USER_UID: u32 = 1001;
pub(crate) const LEADER: ProcRef = ProcRef {
    pid: 500,
    start_time: 77,
};

#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) now: Timestamp,
    pub(crate) ttys: HashMap<String, TtyTimes>,
    /// The terminal appears this long after registration.
    pub(crate) tty_appears_at: Option<Timestamp>,
    pub(crate) procs: Vec<ProcFacts>,
    pub(crate) leader_alive: bool,
    pub(crate) parent_sessionid: Option<u32>,
    pub(crate) events: Vec<Event>,
    pub(crate) writes: Vec<(String, String)>,
    pub(crate) signals: Vec<(i32, Vec<u32>)>,
    /// Processes that ignore these signals.
    pub(crate) immune: Vec<(u32, i32)>,
    pub(crate) next_id: u64,
    pub(crate) notty: bool,
    pub(crate) io: u64,
    pub(crate) admins: Vec<(u32, String)>,
    pub(crate) saved_revocations: Option<String>,
    pub(crate) saved_deadlines: Option<String>,
    pub(crate) saved_quota: Option<String>,
    pub(crate) journal: Vec<JournalEntry>,
    // --- The kill scope (issue 13).
    /// Processes stopped by SIGSTOP (stop-then-kill).
    pub(crate) stopped: Vec<u32>,
    /// Sessions get a cgroup (`/t/s-ID`) holding `procs`.
    pub(crate) cgroups: bool,
    /// Processes in a cgroup below the session's (a session inside it).
    pub(crate) nested: Vec<u32>,
    /// Processes moved out of the cgroup before its kill.
    pub(crate) moved_out: Vec<u32>,
    /// `cgroup.kill` writes.
    pub(crate) cgroup_kills: usize,
    /// Cgroups released (`cgroup_release`).
    pub(crate) released: Vec<String>,
    /// Leaders of other sessions (su inside the login) that are alive.
    pub(crate) also_alive: Vec<ProcRef>,
    /// The login's connection (issue 12): what a search finds, and what a
    /// reading gives (its `read_at` set to the clock; `None`: a failure).
    pub(crate) conn_search: Option<ConnSearch>,
    pub(crate) conn_read: Option<ConnRead>,
    // --- Ending sessions watched for their last process (issue 16).
    /// Processes watched per session (`signal_watched`), until all are gone.
    pub(crate) watched: HashMap<SessionId, Vec<ProcRef>>,
    /// Sessions whose cgroup is watched.
    pub(crate) watched_cgroups: Vec<SessionId>,
    /// For each `send_held_log`, how many events were logged by then.
    pub(crate) held_sent_at: Vec<usize>,
    /// Live sessions' leaders watched (`watch_leader`), until they exit.
    pub(crate) watched_leaders: Vec<(SessionId, ProcRef)>,
    /// How many times `signal_watched` was asked to watch.
    pub(crate) watch_calls: usize,
    /// How many signals had been sent when the view of /proc was taken.
    pub(crate) viewed_after_signals: Option<usize>,
    /// Compaction asked for after every journal entry, and what it wrote.
    pub(crate) compact_always: bool,
    pub(crate) snapshot: Vec<SessionRecord>,
}

impl System for Fake {
    fn now(&self) -> Timestamp {
        self.now
    }
    fn find_ttys(&mut self, _leader: ProcRef, _pam_tty: &str, _check_notty: bool) -> TtyProbe {
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
    fn io_counters(&mut self, _leader: ProcRef, _scope: Scope) -> Vec<(ProcRef, u64)> {
        vec![(LEADER, self.io)]
    }
    fn tty_times(&mut self, name: &str) -> Option<TtyTimes> {
        self.ttys.get(name).copied()
    }
    fn write_tty(&mut self, name: &str, text: &str) -> bool {
        self.writes.push((name.to_owned(), text.to_owned()));
        true
    }
    fn alive(&mut self, p: ProcRef) -> bool {
        (p == LEADER && self.leader_alive) || self.also_alive.contains(&p)
    }
    fn parent_sessionid(&mut self, _p: ProcRef) -> Option<u32> {
        self.parent_sessionid
    }
    fn scope_processes(&mut self, _leader: ProcRef, _scope: Scope) -> Vec<ProcFacts> {
        self.procs.clone()
    }
    fn signal(&mut self, procs: &[ProcRef], sigs: &[i32]) -> usize {
        for &sig in sigs {
            self.signals
                .push((sig, procs.iter().map(|p| p.pid).collect()));
            let immune = self.immune.clone();
            if sig == libc::SIGSTOP {
                self.stopped.extend(procs.iter().map(|p| p.pid));
                continue;
            }
            self.procs.retain(|p| {
                !procs.contains(&p.proc)
                    || sig == libc::SIGCONT
                    || immune.contains(&(p.proc.pid, sig))
            });
        }
        procs.len()
    }
    fn log(&mut self, ev: Event) {
        self.events.push(ev);
    }
    fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
    fn in_group(&mut self, uid: u32, group: &str) -> bool {
        self.admins.contains(&(uid, group.to_owned()))
    }
    fn save_deadlines(&mut self, text: &str) {
        self.saved_deadlines = Some(text.to_owned());
    }

    fn save_quota(&mut self, text: &str) {
        self.saved_quota = Some(text.to_owned());
    }

    fn save_revocations(&mut self, text: &str) {
        self.saved_revocations = Some(text.to_owned());
    }
    fn persist(&mut self, entry: JournalEntry) {
        self.journal.push(entry);
    }
    fn wants_compaction(&self, _live: usize) -> bool {
        self.compact_always
    }
    fn compact(&mut self, live: &mut dyn Iterator<Item = SessionRecord>) {
        self.snapshot = live.collect();
    }

    // --- The kill scope (issue 13).
    fn cgroup_attach(&mut self, _leader: ProcRef, id: SessionId, _nested: bool) -> Option<String> {
        self.cgroups.then(|| format!("/t/s-{id}"))
    }
    fn cgroup_members(&mut self, _cgroup: &str) -> Vec<(ProcFacts, bool)> {
        self.procs
            .iter()
            .filter(|p| !self.moved_out.contains(&p.proc.pid))
            .map(|p| (*p, self.nested.contains(&p.proc.pid)))
            .collect()
    }
    fn cgroup_kill(&mut self, _cgroup: &str, spare: &[ProcRef]) -> Vec<ProcRef> {
        self.cgroup_kills += 1;
        self.moved_out.extend(spare.iter().map(|p| p.pid));
        let (moved, immune) = (self.moved_out.clone(), self.immune.clone());
        self.procs.retain(|p| {
            moved.contains(&p.proc.pid) || immune.contains(&(p.proc.pid, libc::SIGKILL))
        });
        spare.to_vec()
    }
    fn cgroup_populated(&mut self, _cgroup: &str) -> bool {
        self.procs
            .iter()
            .any(|p| !self.moved_out.contains(&p.proc.pid))
    }
    fn cgroup_holds(&mut self, _cgroup: &str, p: ProcRef) -> bool {
        self.procs.iter().any(|q| q.proc == p) && !self.moved_out.contains(&p.pid)
    }
    fn cgroup_release(&mut self, cgroup: &str) {
        self.released.push(cgroup.to_owned());
    }
    fn send_held_log(&mut self) {
        self.held_sent_at.push(self.events.len());
    }
    fn stopped(&mut self, p: ProcRef) -> bool {
        self.stopped.contains(&p.pid)
    }
    fn view_processes(&mut self) {
        self.viewed_after_signals = Some(self.signals.len());
    }
    // Ending sessions watched (issue 16).
    fn signal_watched(
        &mut self,
        id: SessionId,
        procs: &[ProcRef],
        sigs: &[i32],
        sent_before: &[ProcRef],
    ) -> usize {
        let n = self.signal_except(procs, sigs, sent_before);
        self.watched.insert(id, procs.to_vec());
        self.watch_calls += 1;
        n
    }
    fn watch_cgroup(&mut self, id: SessionId, _cgroup: &str) {
        if !self.watched_cgroups.contains(&id) {
            self.watched_cgroups.push(id);
        }
    }
    fn watch_leader(&mut self, id: SessionId, leader: ProcRef) {
        self.watched_leaders.push((id, leader));
    }
    fn unwatch(&mut self, id: SessionId) {
        self.watched.remove(&id);
        self.watched_cgroups.retain(|w| *w != id);
        self.watched_leaders.retain(|(w, _)| *w != id);
    }
    fn exits_seen(&mut self) -> Vec<SessionId> {
        let live: Vec<ProcRef> = self.procs.iter().map(|p| p.proc).collect();
        let mut out: Vec<SessionId> = self
            .watched
            .iter()
            .filter(|(_, procs)| procs.iter().all(|p| !live.contains(p)))
            .map(|(id, _)| *id)
            .collect();
        self.watched.retain(|id, _| !out.contains(id));
        let leaders = std::mem::take(&mut self.watched_leaders);
        for (id, leader) in leaders {
            if self.alive(leader) {
                self.watched_leaders.push((id, leader));
            } else {
                out.push(id);
            }
        }
        if self.cgroup_populated("") {
            out.sort_unstable();
            return out;
        }
        out.extend(self.watched_cgroups.iter().copied());
        out.sort_unstable();
        out.dedup();
        out
    }
    // The login's connection (issue 12).
    fn find_connection(&mut self, _leader: ProcRef) -> ConnSearch {
        self.conn_search.unwrap_or(ConnSearch::NoTcp)
    }
    fn read_connection(&mut self, _leader: ProcRef, _conn: &Connection) -> ConnRead {
        match self.conn_read {
            Some(ConnRead::Figures(f)) => ConnRead::Figures(ConnFigures {
                read_at: self.now,
                ..f
            }),
            Some(other) => other,
            None => ConnRead::Failed,
        }
    }
}

/// What only tests ask of the engine.
impl<S: System> Engine<S> {
    pub(crate) fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

pub(crate) fn proc(pid: u32, uid: u32) -> ProcFacts {
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

pub(crate) fn limits(idle: Option<u64>, max: Option<u64>, warn: &[u64]) -> Limits {
    Limits {
        idle: idle.map(Duration::from_secs),
        max: max.map(Duration::from_secs),
        warn: warn.iter().map(|s| Duration::from_secs(*s)).collect(),
        grace: Duration::from_secs(2),
        ..Limits::builtin()
    }
}

pub(crate) fn times(atime: i64, ctime: i64) -> TtyTimes {
    TtyTimes {
        atime: Timestamp::from_secs(atime),
        mtime: Timestamp::from_secs(atime),
        ctime: Timestamp::from_secs(ctime),
        owner: USER_UID,
    }
}

pub(crate) fn engine(l: Limits) -> Engine<Fake> {
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

pub(crate) fn registration() -> Registration {
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

pub(crate) const ROOT: Peer = Peer {
    pid: 1,
    uid: 0,
    gid: 0,
};

/// Advances the fake clock in 100 ms steps, running whatever is due.
pub(crate) fn run_until(e: &mut Engine<Fake>, until_s: i64) {
    let until = Timestamp::from_secs(until_s);
    while e.sys.now < until {
        e.sys.now = e.sys.now + Duration::from_millis(100);
        e.run_due();
    }
}

pub(crate) fn names(e: &Engine<Fake>) -> Vec<&'static str> {
    e.sys.events.iter().map(|ev| ev.name()).collect()
}

pub(crate) fn find<'a>(e: &'a Engine<Fake>, name: &str) -> &'a Event {
    e.sys
        .events
        .iter()
        .find(|ev| ev.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(e)))
}

pub(crate) fn registered_id(r: Response) -> SessionId {
    match r {
        Response::Registered { session_id, .. } => SessionId(session_id),
        other => panic!("not registered: {other:?}"),
    }
}
