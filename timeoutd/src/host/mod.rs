//! The real [`System`]: /proc, /dev/pts, signals, syslog, the id file.

pub(crate) mod census;
pub(crate) mod cgroup;
pub(crate) mod clock;
pub(crate) mod connection;
pub(crate) mod exits;
pub(crate) mod groups_cache;
pub(crate) mod login_probe;
pub(crate) mod notify;
pub mod nss;
pub mod pam_account;
pub mod posture;
pub(crate) mod procfs;
pub(crate) mod pty;
pub(crate) mod signals;
pub(crate) mod store;
pub(crate) mod syslog;
/// Public only for st-bench's figure of the lookup's cost.
#[doc(hidden)]
pub mod tcpinfo;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::clock::{Clock, Timestamp};
use crate::core::event::{Event, EventName, Severity};
use crate::core::record::{JournalEntry, SessionRecord};
use crate::core::session::connection::{ConnRead, Connection};
use crate::core::session::terminal::TtyTimes;
use crate::core::session::{ProcRef, Scope, SessionId};
use crate::engine::ConnSearch;
use crate::engine::FoundLogin;
use crate::engine::{ProcFacts, System, TtyProbe};
use crate::host::clock::SystemClock;
use crate::host::procfs::ProcInfo;
use crate::host::store::ids::IdAllocator;
use crate::host::store::state::StateStore;
use crate::host::syslog::Syslog;

/// How long a parent → children index is reused while logins are set up.
const CHILDREN_TTL: Duration = Duration::from_secs(2);
/// The revocation list in the state directory.
pub(crate) const REVOCATIONS_FILE: &str = "revocations";
/// The administrators' deadlines in the state directory.
pub(crate) const DEADLINES_FILE: &str = "deadlines";
/// `state_write_failed` is logged at most this often.
const STATE_ERROR_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) struct Host {
    syslog: Arc<Syslog>,
    ids: IdAllocator,
    store: StateStore,
    state_dir: PathBuf,
    /// One /proc scan, shared by everything done in one batch (see
    /// `begin_batch`), with its parent → children index.
    snapshot: Option<(Vec<ProcInfo>, procfs::ChildIndex)>,
    /// Audit session id → pids, from one read of each /proc/PID/sessionid.
    by_sessionid: Option<HashMap<u32, Vec<u32>>>,
    /// Parent → children, for telling logins without a terminal; shared by
    /// every login being set up for a couple of seconds (a login storm scans
    /// /proc once per interval, not once per login).
    children: Option<(Instant, HashMap<u32, Vec<u32>>)>,
    groups: groups_cache::GroupsCache,
    last_state_error: Option<Instant>,
    /// The kill scope's cgroups (issue 13); `None`: stop-then-kill.
    cgroups: Option<cgroup::Cgroups>,
    /// Cgroups of ended sessions that still held a process; removed later.
    cgroups_pending: Vec<String>,
    /// Set by `rescan` (the kill's scans): read each process as it is listed,
    /// never from an index made earlier, which a pid hopper outruns.
    fresh_scans: bool,
    /// Every TCP socket by inode, one sock_diag dump reused for a couple of
    /// seconds (issue 12).
    sockets: Option<connection::SocketCache>,
    /// The kill's pass over /proc since the last `rescan`, shared by every
    /// session of the round.
    census: Option<census::Census>,
    /// Where the previous pass of this batch ended, and whether it was complete.
    census_chain: Option<(u32, bool)>,
    /// The current pass and the one before it were both complete, the
    /// current one reading on from the previous (see `host::census`).
    census_pair_complete: bool,
    /// Lines held back by `hold_log`, sent by `release_log`.
    held_log: Option<Vec<Event>>,
    /// Ending sessions watched for their last process (issue 16); `None`
    /// if no epoll set could be made (the kill ladder's timers then end them).
    exits: Option<exits::ExitWatch>,
}

impl Host {
    pub(crate) fn new(
        syslog: Arc<Syslog>,
        ids: IdAllocator,
        store: StateStore,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            syslog,
            ids,
            store,
            state_dir,
            snapshot: None,
            by_sessionid: None,
            children: None,
            groups: Default::default(),
            last_state_error: None,
            cgroups: None,
            cgroups_pending: Vec::new(),
            fresh_scans: false,
            sockets: None,
            census: None,
            census_chain: None,
            census_pair_complete: false,
            held_log: None,
            exits: exits::ExitWatch::new().ok(),
        }
    }

    /// Ends sessions through cgroup v2 (see `host::cgroup`).
    pub(crate) fn set_cgroups(&mut self, cgroups: cgroup::Cgroups) {
        self.cgroups = Some(cgroups);
    }

    /// The fd of the ending sessions' watch, for the event loop's poll set.
    pub(crate) fn exit_watch_fd(&self) -> Option<std::os::fd::RawFd> {
        self.exits.as_ref().map(exits::ExitWatch::fd)
    }

    /// Whether an ending session is named already (the loop must not sleep).
    pub(crate) fn exits_pending(&self) -> bool {
        self.exits.as_ref().is_some_and(exits::ExitWatch::has_ready)
    }

    /// At a clean stop: removes the empty cgroups of ended sessions, then
    /// the subtree's empty leaves and base (see `Cgroups::tear_down`).
    pub(crate) fn tear_down_cgroups(&mut self) {
        let Some(cg) = self.cgroups.as_ref() else {
            return;
        };
        self.cgroups_pending.retain(|p| !cg.remove(p));
        cg.tear_down();
    }

    /// The kill's current pass over /proc (taken on first use after `rescan`).
    fn census(&mut self) -> &census::Census {
        if self.census.is_none() {
            let c = census::Census::take(self.census_chain.map(|(end, _)| end));
            let prev_complete = self.census_chain.is_some_and(|(_, ok)| ok);
            self.census_pair_complete = prev_complete && c.chained && c.complete;
            self.census_chain = Some((c.ended_at, c.complete));
            self.census = Some(c);
        }
        self.census.get_or_insert_with(census::Census::default)
    }

    fn processes(&mut self) -> (&[ProcInfo], &procfs::ChildIndex) {
        let (snap, index) = self.snapshot.get_or_insert_with(|| {
            let snap = procfs::stat_snapshot();
            let index = procfs::ChildIndex::new(&snap);
            (snap, index)
        });
        (snap, index)
    }

    /// The pids of each audit session, one small read per process, reused
    /// for the whole batch (a revocation of hundreds of sessions scans once).
    fn audit_index(&mut self) -> &HashMap<u32, Vec<u32>> {
        self.by_sessionid.get_or_insert_with(|| {
            let mut index: HashMap<u32, Vec<u32>> = HashMap::new();
            let Ok(rd) = std::fs::read_dir("/proc") else {
                return index;
            };
            for pid in rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            {
                let sid = std::fs::read_to_string(format!("/proc/{pid}/sessionid"))
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok());
                if let Some(sid) = sid.filter(|s| *s != procfs::AUDIT_UNSET) {
                    index.entry(sid).or_default().push(pid);
                }
            }
            index
        })
    }

    /// The processes of an audit session, read afresh (zombies, pid 1 and
    /// this daemon left out).
    fn audit_session_processes(&mut self, sid: u32) -> Vec<ProcFacts> {
        let me = std::process::id();
        let pids = self.audit_index().get(&sid).cloned().unwrap_or_default();
        pids.into_iter()
            .filter(|pid| *pid > 1 && *pid != me)
            .filter_map(|pid| procfs::proc_info(pid).ok())
            .filter(|p| p.state != 'Z' && p.sessionid == sid)
            .map(|p| {
                let parent_comm = procfs::read_stat(p.ppid).ok().map(|st| st.comm);
                ProcFacts {
                    proc: ProcRef {
                        pid: p.pid,
                        start_time: p.start_time,
                    },
                    ppid: p.ppid,
                    ruid: p.ruid,
                    euid: p.euid,
                    same_program_as_parent: parent_comm.as_deref() == Some(p.comm.as_str()),
                }
            })
            .collect()
    }

    /// Logs `state_write_failed` at most once a minute.
    fn state_error(&mut self, what: &str, e: &std::io::Error) {
        let due = self
            .last_state_error
            .is_none_or(|t| t.elapsed() >= STATE_ERROR_INTERVAL);
        if due {
            self.last_state_error = Some(Instant::now());
            self.syslog.log(
                &Event::new(EventName::StateWriteFailed)
                    .with_severity(Severity::Err)
                    .field("what", what)
                    .field("dir", self.state_dir.display())
                    .field("error", e),
            );
        }
    }
}

impl Host {
    /// Logins running now that opened an audit session of their own under
    /// sshd or login (the leader's audit session id differs from its
    /// parent's), for adoption after a restart.
    /// `programs` are globs over the leader's process name (`sshd`, `login`).
    pub(crate) fn find_logins(&mut self, programs: &[String]) -> Vec<FoundLogin> {
        if programs.is_empty() {
            return Vec::new();
        }
        let snap = procfs::snapshot();
        let boot = boot_time_ms();
        let tick = clock_ticks_per_second();
        let me = std::process::id();
        let mut out = Vec::new();
        for p in &snap {
            let is_login_program = programs
                .iter()
                .any(|g| crate::core::policy::matching::glob(g, &p.comm));
            if !is_login_program || p.sessionid == procfs::AUDIT_UNSET || p.pid == me || p.ruid != 0
            {
                continue;
            }
            let parent_sid = snap.iter().find(|q| q.pid == p.ppid).map(|q| q.sessionid);
            if parent_sid == Some(p.sessionid) {
                continue;
            }
            if !loads_the_module(p.pid) {
                continue; // not a login through a stack with pam_session_timeout.so
            }
            let Some(uid) = procfs::loginuid(p.pid) else {
                continue;
            };
            let Some(user) = nss::user_by_uid(uid) else {
                continue;
            };
            let started_ms =
                boot + i64::try_from(p.start_time.saturating_mul(1000) / tick.max(1)).unwrap_or(0);
            out.push(FoundLogin {
                leader: ProcRef {
                    pid: p.pid,
                    start_time: p.start_time,
                },
                sessionid: p.sessionid,
                uid,
                user: user.name,
                service: p.comm.clone(),
                started_at: Timestamp(started_ms),
            });
        }
        out
    }
}

/// A live, non-zombie process as the kill logic sees it.
fn proc_facts(pid: u32) -> Option<ProcFacts> {
    let p = procfs::proc_info(pid).ok().filter(|p| p.state != 'Z')?;
    let parent_comm = procfs::read_stat(p.ppid).ok().map(|st| st.comm);
    Some(ProcFacts {
        proc: ProcRef {
            pid: p.pid,
            start_time: p.start_time,
        },
        ppid: p.ppid,
        ruid: p.ruid,
        euid: p.euid,
        same_program_as_parent: parent_comm.as_deref() == Some(p.comm.as_str()),
    })
}

/// Whether the process has pam_session_timeout.so mapped: the login went
/// through a PAM stack that uses the module (and was let in by `fail=open`).
fn loads_the_module(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .is_ok_and(|m| m.contains("pam_session_timeout"))
}

/// The wall-clock time the system booted (`btime` in /proc/stat), in ms.
fn boot_time_ms() -> i64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok())
        })
        .map_or(0, |s| s * 1000)
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).unwrap_or(100)
}

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
        let probe = login_probe::find(leader.pid, check_notty, || {
            let fresh = cache
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < CHILDREN_TTL);
            if !fresh {
                *cache = Some((Instant::now(), login_probe::children_index()));
            }
            cache
                .as_ref()
                .and_then(|(_, index)| index.get(&leader.pid).cloned())
                .unwrap_or_default()
        });
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
        procfs::start_time(p.pid) == Some(p.start_time)
    }

    fn parent_sessionid(&mut self, p: ProcRef) -> Option<u32> {
        let stat = procfs::read_stat(p.pid).ok()?;
        if stat.start_time != p.start_time || stat.ppid == 0 {
            return None;
        }
        // Unset (4294967295) is a value here; only an unreadable entry is None.
        let buf = procfs::read_small(&format!("/proc/{}/sessionid", stat.ppid)).ok()?;
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
        procs
            .iter()
            .filter(|p| signals::signal_each(**p, sigs).is_ok())
            .count()
    }

    fn signal_watched(&mut self, id: SessionId, procs: &[ProcRef], sigs: &[i32]) -> usize {
        let mut pidfds = Vec::with_capacity(procs.len());
        let mut all_known = true;
        for p in procs {
            match signals::signal_pinned(*p, sigs) {
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

    fn unwatch(&mut self, id: SessionId) {
        if let Some(w) = self.exits.as_mut() {
            w.unwatch(id);
        }
    }

    fn exits_seen(&mut self) -> Vec<SessionId> {
        self.exits
            .as_mut()
            .map(exits::ExitWatch::take_ready)
            .unwrap_or_default()
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

    fn log_lines_dropped(&self) -> u64 {
        self.syslog.dropped_total()
    }

    // --- The kill scope (issue 13): see host::cgroup and engine::kill.

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
            .is_ok_and(|st| st.start_time == p.start_time && matches!(st.state, 'T' | 't'))
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

    fn compact(&mut self, live: Vec<SessionRecord>) {
        if let Err(e) = self.store.compact(&live) {
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
        let found = connection::find(leader, sockets, || {
            let fresh = cache
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < CHILDREN_TTL);
            if !fresh {
                *cache = Some((Instant::now(), login_probe::children_index()));
            }
            cache
                .as_ref()
                .and_then(|(_, index)| index.get(&leader.pid).cloned())
                .unwrap_or_default()
        });
        if !self.alive(leader) {
            return ConnSearch::NoTcp; // the pid was reused while we looked
        }
        found
    }

    fn read_connection(&mut self, leader: ProcRef, conn: &Connection) -> ConnRead {
        connection::read(leader, conn)
    }
}
