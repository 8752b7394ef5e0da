//! The port: everything the engine needs from the world (clock, /proc, ptys,
//! signals, syslog, durable state), as one trait and the types that cross it.
//! `host::Host` implements it for real; `testkit::Fake` for tests.
//!
//! `Peer`, `TtyProbe` (and `recovery::FoundLogin`) are declared `pub`, not
//! `pub(crate)`, only because `host` and `daemon` name them in their own `pub`
//! items; the `engine` module is crate-private, so none of them leaves the crate.

use crate::core::audit::event::Event;
use crate::core::session::connection::{ConnRead, Connection};
use crate::core::session::terminal::TtyTimes;
use crate::core::session::{ProcRef, Scope, SessionId};
use crate::core::state::record::{JournalEntry, SessionRecord};
use crate::core::time::clock::Timestamp;

/// A process as the kill logic needs to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcFacts {
    pub proc: ProcRef,
    pub ppid: u32,
    pub ruid: u32,
    pub euid: u32,
    /// The leader's own service processes (sshd's session child, login).
    pub same_program_as_parent: bool,
}

/// The imperative shell, as the engine sees it.
pub(crate) trait System {
    fn now(&self) -> Timestamp;
    /// Called before a batch of wake-ups, so probes may cache one /proc scan.
    fn begin_batch(&mut self) {}
    /// Takes the batch's view of /proc now (it is otherwise taken at its
    /// first use), so the batch sees the processes as they were before
    /// what it is about to signal.
    fn view_processes(&mut self) {}
    /// The terminals of the login itself (not ones opened inside it), for a
    /// leader just proven alive. With `check_notty`, also tell whether the
    /// login will never have one.
    fn find_ttys(&mut self, leader: ProcRef, pam_tty: &str, check_notty: bool) -> TtyProbe;
    /// Primary and supplementary group names of a user, through NSS; the
    /// host may answer from a lookup up to a second old (`host::identity::groups_cache`).
    fn groups_of(&mut self, user: &str) -> Vec<String>;
    /// Bytes read and written so far by each of the session's processes, for
    /// idle measurement of sessions without a terminal.
    fn io_counters(&mut self, leader: ProcRef, scope: Scope) -> Vec<(ProcRef, u64)>;
    fn tty_times(&mut self, name: &str) -> Option<TtyTimes>;
    /// Writes without blocking; returns whether it was written.
    fn write_tty(&mut self, name: &str, text: &str) -> bool;
    fn alive(&mut self, p: ProcRef) -> bool;
    /// The audit session id of the leader's parent (4294967295 when unset),
    /// to tell whether the service set a new one; `None` if it cannot be read.
    fn parent_sessionid(&mut self, p: ProcRef) -> Option<u32>;
    /// Live, non-zombie processes in the session's scope.
    fn scope_processes(&mut self, leader: ProcRef, scope: Scope) -> Vec<ProcFacts>;
    /// Sends each of `sigs`, in order, to each process; returns how many were signalled.
    fn signal(&mut self, procs: &[ProcRef], sigs: &[i32]) -> usize;
    fn log(&mut self, ev: Event);
    /// Keeps the lines logged from now on until [`System::release_log`],
    /// which sends them in order: a revocation sends every signal before
    /// spending time on its lines, each of which still follows what it reports.
    fn hold_log(&mut self) {}
    fn release_log(&mut self) {}
    /// Sends the lines held so far, in order, now: those of
    /// [`System::hold_log`] and those a request holds until its reply. The
    /// holds stay for the lines to come.
    fn send_held_log(&mut self) {}
    /// Lines that could not be delivered to syslog since the daemon started.
    fn log_lines_dropped(&self) -> u64 {
        0
    }
    /// A new session id, never handed out before, across restarts too.
    fn allocate_id(&mut self) -> u64;
    /// Whether the user with this uid is a member of `group` (primary or supplementary).
    fn in_group(&mut self, uid: u32, group: &str) -> bool;
    /// Stores the revocation list durably (it must survive a restart).
    fn save_revocations(&mut self, text: &str);
    /// Stores the administrators' deadlines durably (they must survive a restart).
    fn save_deadlines(&mut self, text: &str);
    /// Stores the daily quota ledger durably (it must survive a restart).
    fn save_quota(&mut self, text: &str);
    /// Appends a change of the session table to durable state.
    fn persist(&mut self, entry: JournalEntry);
    /// Keeps the changes persisted from now on for one write at
    /// [`Self::write_persisted`] (the timer wakes of one loop turn, which
    /// answer no client).
    fn group_persists(&mut self) {}
    /// Writes the kept changes: every change persisted before is durable on return.
    fn write_persisted(&mut self) {}
    /// Whether durable state should be rewritten from the live table.
    fn wants_compaction(&self, live: usize) -> bool;
    /// Rewrites durable state as `live`, one record at a time (at 10,000
    /// sessions a table of them all would be megabytes, made only to be
    /// encoded).
    fn compact(&mut self, live: &mut dyn Iterator<Item = SessionRecord>);

    // --- The kill scope (issue 13): a cgroup per login where one can be
    // had, else stop-then-kill over the audit session or subtree. The
    // defaults are a host without cgroups.

    /// Gives a new session a cgroup and moves its leader in (or finds the
    /// logind scope it is in). `nested`: opened inside another login (su,
    /// sudo), whose cgroup it goes below. `None`: no writable cgroup v2.
    fn cgroup_attach(&mut self, _leader: ProcRef, _id: SessionId, _nested: bool) -> Option<String> {
        None
    }
    /// Live processes in the cgroup and below it; `true` for those in a
    /// cgroup below it (a session opened inside this one).
    fn cgroup_members(&mut self, _cgroup: &str) -> Vec<(ProcFacts, bool)> {
        Vec::new()
    }
    /// Moves `spare` out of the cgroup, then kills everything left in it and
    /// below at once (`cgroup.kill`). Returns the processes moved out.
    fn cgroup_kill(&mut self, _cgroup: &str, _spare: &[ProcRef]) -> Vec<ProcRef> {
        Vec::new()
    }
    /// Whether any process is left in the cgroup or below (`cgroup.events`).
    fn cgroup_populated(&mut self, _cgroup: &str) -> bool {
        false
    }
    /// Whether `p` is in the cgroup or below it (`/proc/PID/cgroup`).
    fn cgroup_holds(&mut self, _cgroup: &str, _p: ProcRef) -> bool {
        false
    }
    /// Removes the session's cgroup once it is empty (now or later).
    fn cgroup_release(&mut self, _cgroup: &str) {}
    // --- The end of a session noticed at once (issue 16). The defaults
    // watch nothing: the kill ladder's timers end the session.

    /// [`System::signal`], then watches the processes signalled: once every
    /// one of them has exited, [`System::exits_seen`] names session `id`.
    /// Replaces what was watched of `id`'s processes before. With no `sigs`
    /// the processes are only watched; those in `sent_before` had `sigs`
    /// already (a revocation's first pass), and are watched and counted but
    /// not signalled again.
    fn signal_watched(
        &mut self,
        _id: SessionId,
        procs: &[ProcRef],
        sigs: &[i32],
        sent_before: &[ProcRef],
    ) -> usize {
        self.signal_except(procs, sigs, sent_before)
    }
    /// [`System::signal`] to `procs` but those in `sent_before` (a short
    /// list: one leader), which count as signalled.
    fn signal_except(&mut self, procs: &[ProcRef], sigs: &[i32], sent_before: &[ProcRef]) -> usize {
        let rest: Vec<ProcRef> = procs
            .iter()
            .filter(|p| !sent_before.contains(p))
            .copied()
            .collect();
        self.signal(&rest, sigs) + (procs.len() - rest.len())
    }
    /// Watches the session's cgroup: [`System::exits_seen`] names `id` when
    /// `cgroup.events` says nothing is left in it.
    fn watch_cgroup(&mut self, _id: SessionId, _cgroup: &str) {}
    /// Watches the leader of live session `id`: [`System::exits_seen`]
    /// names `id` when it exits. Until then, or until [`System::unwatch`] or
    /// a signal to the leader, [`System::alive`] may answer from the watch.
    fn watch_leader(&mut self, _id: SessionId, _leader: ProcRef) {}
    /// Stops watching anything of session `id`.
    fn unwatch(&mut self, _id: SessionId) {}
    /// The sessions whose watched processes all exited, whose cgroup was
    /// seen empty, or whose watched leader exited, since the last call.
    fn exits_seen(&mut self) -> Vec<SessionId> {
        Vec::new()
    }
    /// The next [`System::exits_seen`] looks at every watch, not only those
    /// the event loop's last poll found readable (for a long request).
    fn look_for_exits(&mut self) {}
    /// Whether the process is stopped (state T), for stop-then-kill.
    fn stopped(&mut self, _p: ProcRef) -> bool {
        false
    }
    /// Forgets cached /proc scans: the next look sees what was forked since.
    /// Looks between two `rescan`s share one scan.
    fn rescan(&mut self) {
        self.begin_batch();
    }
    /// Whether the current scan and the one before it (since the last two
    /// `rescan`s) were complete: every pid handed out from the start of the
    /// earlier to the end of the later was read. What both found all stopped
    /// (or nothing) then proves nothing of the scope can still run.
    fn last_two_scans_complete(&mut self) -> bool {
        true
    }
    // The login's connection as a witness of activity (issue 12).
    /// The TCP connection among the leader's descriptors and sshd's session
    /// process holding it too. Never keeps a descriptor of it.
    fn find_connection(&mut self, leader: ProcRef) -> ConnSearch;
    /// One reading of the connection's figures and of sshd's counters.
    fn read_connection(&mut self, leader: ProcRef, conn: &Connection) -> ConnRead;
}

/// What a look for the login's connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnSearch {
    Found(Connection),
    /// The leader holds a TCP connection, but sshd's session process that
    /// also holds it is not there (yet).
    NoSessionProcess,
    /// The leader holds no TCP connection (a console, su): today's rules.
    NoTcp,
    /// The sockets could not be listed (sock_diag failed).
    Failed,
}

/// What a look for the login's terminals found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TtyProbe {
    /// Device names relative to /dev, e.g. "pts/3".
    pub ttys: Vec<String>,
    /// The login is known to have no terminal (sshd's child says `@notty`).
    pub notty: bool,
}

/// Who is asking, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}
