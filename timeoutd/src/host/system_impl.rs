//! `Host` as the engine's [`System`] port: each method hands the work to
//! the adapter that does it.

use std::time::Instant;

use crate::core::audit::event::Event;
use crate::core::session::connection::{ConnRead, Connection};
use crate::core::session::terminal::TtyTimes;
use crate::core::session::{ProcRef, Scope, SessionId};
use crate::core::state::record::{JournalEntry, SessionRecord};
use crate::core::time::clock::{Clock, Timestamp};
use crate::engine::{ConnSearch, ProcFacts, System, TtyProbe};
use crate::host::cgroup::parse::is_within;
use crate::host::clock::SystemClock;
use crate::host::identity::nss;
use crate::host::processes::leaders::LeaderPins;
use crate::host::processes::{proc_facts, signals};
use crate::host::terminal::{connection, login_probe, pty};
use crate::host::{procfs, store};
use crate::host::{Host, Proven, DEADLINES_FILE, REVOCATIONS_FILE};

impl System for Host {
    fn now(&self) -> Timestamp {
        SystemClock.now()
    }

    fn begin_batch(&mut self) {
        self.snapshot = None;
        self.by_sessionid = None;
        self.fresh_scans = false;
        self.census = None;
        self.census_chain = None;
        self.census_pair_complete = false;
        self.proven = None;
    }

    fn view_processes(&mut self) {
        self.processes();
    }

    fn rescan(&mut self) {
        self.snapshot = None;
        self.by_sessionid = None;
        self.census = None;
        self.fresh_scans = true;
    }

    fn last_two_scans_complete(&mut self) -> bool {
        if self.fresh_scans {
            self.census();
        }
        self.fresh_scans && self.census_pair_complete
    }

    fn find_ttys(&mut self, leader: ProcRef, pam_tty: &str, check_notty: bool) -> TtyProbe {
        // A device named by PAM_TTY is found without reading the leader's
        // /proc entries, so no reused pid can have answered; the caller has
        // just proven the leader alive.
        if let Some(name) = login_probe::tty_from_pam(pam_tty) {
            return TtyProbe {
                ttys: vec![name],
                notty: false,
            };
        }
        let cache = &mut self.children;
        let probe = login_probe::find(leader.pid, check_notty, || cache.children_of(leader.pid));
        // Nothing found needs no proof that it was the leader's.
        if probe != TtyProbe::default() && !self.alive(leader) {
            return TtyProbe::default(); // the pid was reused while we looked
        }
        probe
    }

    fn groups_of(&mut self, user: &str) -> Vec<String> {
        self.groups.get(user, Instant::now(), nss::groups_of)
    }

    fn io_counters(&mut self, leader: ProcRef, scope: Scope) -> Vec<(ProcRef, u64)> {
        self.scope_processes(leader, scope)
            .iter()
            .filter_map(|p| Some((p.proc, login_probe::io_bytes(p.proc.pid)?)))
            .collect()
    }

    fn tty_times(&mut self, name: &str) -> Option<TtyTimes> {
        let t = pty::stat_tty(&login_probe::device(name)).ok()?;
        Some(TtyTimes {
            atime: Timestamp(t.atime_ms),
            mtime: Timestamp(t.mtime_ms),
            ctime: Timestamp(t.ctime_ms),
            owner: t.uid,
        })
    }

    fn write_tty(&mut self, name: &str, text: &str) -> bool {
        pty::write_warning(&login_probe::device(name), text).is_ok()
    }

    fn alive(&mut self, p: ProcRef) -> bool {
        if let Some(alive) = self.leaders.as_ref().and_then(|l| l.alive(p)) {
            return alive;
        }
        // A pidfd only where a pin can follow (a registration); else the
        // one `stat` read, as for a leader left unpinned past the budget.
        if !self.leaders.as_ref().is_some_and(LeaderPins::has_room) {
            return procfs::live_start_time(p.pid) == Some(p.start_time);
        }
        match signals::pin_with_stat(p) {
            Ok((fd, stat)) if !procfs::has_exited(p.pid, stat.state) => {
                let ppid = stat.ppid;
                self.proven = Some(Proven { p, ppid, fd });
                true
            }
            Ok(_) | Err(signals::SignalError::Gone) => false,
            Err(signals::SignalError::Os(_)) => {
                procfs::live_start_time(p.pid) == Some(p.start_time)
            }
        }
    }

    fn parent_sessionid(&mut self, p: ProcRef) -> Option<u32> {
        let ppid = match self.proven.as_ref().filter(|v| v.p == p) {
            Some(v) => v.ppid,
            None => {
                let stat = procfs::read_stat(p.pid).ok()?;
                if stat.start_time != p.start_time {
                    return None;
                }
                stat.ppid
            }
        };
        if ppid == 0 {
            return None;
        }
        // Unset (4294967295) is a value here; only an unreadable entry is None.
        let buf = procfs::read_small(&format!("/proc/{ppid}/sessionid")).ok()?;
        std::str::from_utf8(&buf).ok()?.trim().parse().ok()
    }

    fn scope_processes(&mut self, leader: ProcRef, scope: Scope) -> Vec<ProcFacts> {
        if let Scope::AuditSession(sid) = scope {
            if self.fresh_scans {
                return self.census().session(sid);
            }
            return self.audit_session_processes(sid);
        }
        if self.fresh_scans {
            self.census(); // keeps the chain of passes for the proof
        }
        let (snap, index) = self.processes();
        let comm_of = |pid: u32| index.get(snap, pid).map(|q| q.comm.as_str());
        // The snapshot read only `stat`; the uids of the subtree's few
        // processes are read now, each after its start time is checked. One
        // gone since the snapshot is left out, as the snapshot would have.
        procfs::session_processes_indexed(snap, Some(index), leader.pid, leader.start_time, None)
            .into_iter()
            .filter_map(|p| {
                let (ruid, euid) = procfs::uids_of(p.pid, p.start_time)?;
                Some(ProcFacts {
                    proc: ProcRef {
                        pid: p.pid,
                        start_time: p.start_time,
                    },
                    ppid: p.ppid,
                    ruid,
                    euid,
                    same_program_as_parent: comm_of(p.ppid) == Some(p.comm.as_str()),
                })
            })
            .collect()
    }

    fn signal(&mut self, procs: &[ProcRef], sigs: &[i32]) -> usize {
        let pins = self.leaders.as_ref();
        procs
            .iter()
            .filter(|p| match pins.and_then(|l| l.fd_of(**p)) {
                Some(fd) => signals::send_through(fd, sigs).is_ok(),
                None => signals::signal_each(**p, sigs).is_ok(),
            })
            .count()
    }

    fn signal_watched(
        &mut self,
        id: SessionId,
        procs: &[ProcRef],
        sigs: &[i32],
        sent_before: &[ProcRef],
    ) -> usize {
        // Past the budget the pidfds are not opened at all (each would be
        // one fd less for the signals and the connections): signalled one
        // at a time, not watched.
        if !self
            .exits
            .as_ref()
            .is_some_and(|w| w.has_room(id, procs.len()))
        {
            if let Some(w) = self.exits.as_mut() {
                w.unwatch(id);
            }
            return if sigs.is_empty() {
                0
            } else {
                self.signal_except(procs, sigs, sent_before)
            };
        }
        let mut pidfds = Vec::with_capacity(procs.len());
        let mut all_known = true;
        for p in procs {
            let sigs = if sent_before.contains(p) {
                &[][..]
            } else {
                sigs
            };
            // The session's own pinned leader is signalled through its pin,
            // which the ending's watch takes over.
            let pinned = self.leaders.as_mut().and_then(|l| l.take(id, *p));
            let sent = match pinned {
                Some(fd) => signals::send_through(&fd, sigs).map(|()| fd),
                None => signals::signal_pinned(*p, sigs),
            };
            match sent {
                Ok(fd) => pidfds.push(fd),
                Err(signals::SignalError::Gone) => {}
                // Alive but not signalled: its exit cannot be waited for.
                Err(signals::SignalError::Os(_)) => all_known = false,
            }
        }
        let count = pidfds.len();
        if let Some(w) = self.exits.as_mut() {
            if !(all_known && w.watch_pids(id, pidfds)) {
                w.unwatch(id);
            }
        }
        count
    }

    fn watch_cgroup(&mut self, id: SessionId, cgroup: &str) {
        if let (Some(w), Some(cg)) = (self.exits.as_mut(), self.cgroups.as_ref()) {
            w.watch_cgroup(id, &cg.events_path(cgroup));
        }
    }

    fn watch_leader(&mut self, id: SessionId, leader: ProcRef) {
        let Some(l) = self.leaders.as_mut() else {
            return;
        };
        match self.proven.take() {
            Some(v) if v.p == leader => l.pin_proven(id, leader, v.fd),
            other => {
                self.proven = other;
                l.pin(id, leader);
            }
        }
    }

    fn unwatch(&mut self, id: SessionId) {
        if let Some(w) = self.exits.as_mut() {
            w.unwatch(id);
        }
        if let Some(l) = self.leaders.as_mut() {
            l.unpin(id);
        }
    }

    fn look_for_exits(&mut self) {
        self.exits_readable = true;
        self.leaders_readable = true;
    }

    fn exits_seen(&mut self) -> Vec<SessionId> {
        let (exits, leaders) = (self.exits_readable, self.leaders_readable);
        let mut seen = self
            .exits
            .as_mut()
            .map(|w| w.take_ready_when(exits))
            .unwrap_or_default();
        seen.extend(
            self.leaders
                .as_mut()
                .map(|p| p.take_gone_when(leaders))
                .unwrap_or_default(),
        );
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    fn log(&mut self, ev: Event) {
        match self.held_log.as_mut() {
            Some(held) => held.push(ev),
            None => self.syslog.log(&ev),
        }
    }

    fn hold_log(&mut self) {
        self.held_log.get_or_insert_with(Vec::new);
    }

    fn release_log(&mut self) {
        for ev in self.held_log.take().unwrap_or_default() {
            self.syslog.log(&ev);
        }
    }

    fn send_held_log(&mut self) {
        for ev in self.held_log.iter_mut().flat_map(|held| held.drain(..)) {
            self.syslog.log(&ev);
        }
        self.syslog.flush();
    }

    fn log_lines_dropped(&self) -> u64 {
        self.syslog.dropped_total()
    }

    // --- The kill scope (issue 13): see host::cgroup and engine::ending::kill.

    fn cgroup_attach(&mut self, leader: ProcRef, id: SessionId, nested: bool) -> Option<String> {
        let cg = self.cgroups.as_ref()?;
        match cg.attach(leader.pid, id.0, nested) {
            Ok(found) => found,
            Err(e) => {
                self.state_error("session cgroup", &e);
                None
            }
        }
    }

    fn cgroup_members(&mut self, cgroup: &str) -> Vec<(ProcFacts, bool)> {
        let Some(cg) = self.cgroups.as_ref() else {
            return Vec::new();
        };
        let me = std::process::id();
        cg.members(cgroup)
            .into_iter()
            .filter(|(pid, _)| *pid > 1 && *pid != me)
            .filter_map(|(pid, depth)| Some((proc_facts(pid)?, depth > 0)))
            .collect()
    }

    fn cgroup_kill(&mut self, cgroup: &str, spare: &[ProcRef]) -> Vec<ProcRef> {
        let Some(cg) = self.cgroups.as_ref() else {
            return Vec::new();
        };
        let mut moved = Vec::new();
        if cg.owns(cgroup) {
            for p in spare {
                if procfs::start_time(p.pid) == Some(p.start_time)
                    && cg.spare(cgroup, p.pid).is_ok()
                {
                    moved.push(*p);
                }
            }
        }
        if let Err(e) = cg.kill(cgroup) {
            if e.kind() != std::io::ErrorKind::NotFound {
                self.state_error("cgroup.kill", &e);
            }
        }
        moved
    }

    fn cgroup_populated(&mut self, cgroup: &str) -> bool {
        self.cgroups.as_ref().is_some_and(|cg| cg.populated(cgroup))
    }

    /// No start-time check: a pid reused inside the cgroup is one of its
    /// members, and the signals go through the leader's pidfd or check the
    /// start time themselves.
    fn cgroup_holds(&mut self, cgroup: &str, p: ProcRef) -> bool {
        self.cgroups.is_some()
            && crate::host::cgroup::cgroup_of(p.pid).is_some_and(|cur| is_within(&cur, cgroup))
    }

    fn cgroup_release(&mut self, cgroup: &str) {
        let Some(cg) = self.cgroups.as_ref() else {
            return;
        };
        self.cgroups_pending.retain(|p| !cg.remove(p));
        if !cg.remove(cgroup) && !self.cgroups_pending.iter().any(|p| p == cgroup) {
            self.cgroups_pending.push(cgroup.to_owned());
        }
    }

    fn stopped(&mut self, p: ProcRef) -> bool {
        if let Some(seen) = self.census.as_ref().and_then(|c| c.stopped(p)) {
            return seen;
        }
        procfs::read_stat(p.pid)
            .is_ok_and(|st| st.start_time == p.start_time && matches!(st.state, 'T' | 't' | 'Z'))
    }

    fn allocate_id(&mut self) -> u64 {
        let now_ms = u64::try_from(SystemClock.now().0).unwrap_or(0);
        let (id, err) = self.ids.allocate(now_ms);
        if let Some(e) = err {
            self.state_error("session id counter", &e);
        }
        id
    }

    fn in_group(&mut self, uid: u32, group: &str) -> bool {
        let Some(user) = nss::user_by_uid(uid) else {
            return false;
        };
        nss::groups_of(&user.name).iter().any(|g| g == group)
    }

    fn persist(&mut self, entry: JournalEntry) {
        if let Err(e) = self.store.append(&entry) {
            self.state_error("session table", &e);
        }
    }

    fn group_persists(&mut self) {
        self.store.begin_group();
    }

    fn write_persisted(&mut self) {
        if let Err(e) = self.store.end_group() {
            self.state_error("session table", &e);
        }
    }

    fn wants_compaction(&self, live: usize) -> bool {
        self.store.wants_compaction(live)
    }

    fn compact(&mut self, live: &mut dyn Iterator<Item = SessionRecord>) {
        if let Err(e) = self.store.compact(live) {
            self.state_error("session table snapshot", &e);
        }
    }

    fn save_deadlines(&mut self, text: &str) {
        let path = self.state_dir.join(DEADLINES_FILE);
        if let Err(e) = store::ids::write_atomic(&path, text.as_bytes()) {
            self.state_error("deadlines", &e);
        }
    }

    fn save_quota(&mut self, text: &str) {
        if let Err(e) = store::quota::save(&self.state_dir, text) {
            self.state_error("quota", &e);
        }
    }

    fn save_revocations(&mut self, text: &str) {
        let path = self.state_dir.join(REVOCATIONS_FILE);
        if let Err(e) = store::ids::write_atomic(&path, text.as_bytes()) {
            self.state_error("revocations", &e);
        }
    }

    // The login's connection as a witness (issue 12).
    fn find_connection(&mut self, leader: ProcRef) -> ConnSearch {
        let sockets = &mut self.sockets;
        let cache = &mut self.children;
        let found = connection::find(leader, sockets, || cache.children_of(leader.pid));
        if !self.alive(leader) {
            return ConnSearch::NoTcp; // the pid was reused while we looked
        }
        found
    }

    fn read_connection(&mut self, leader: ProcRef, conn: &Connection) -> ConnRead {
        connection::read(leader, conn)
    }
}
