//! The real [`System`]: /proc, /dev/pts, signals, syslog, the id file.
//!
//! `Host` holds what one batch of the engine's work shares (the /proc
//! snapshot, the census, caches); `system_impl.rs` is its `System`,
//! `processes/` what it reads and does to processes, `terminal/` ptys and
//! connections, `identity/` users and groups.

pub(crate) mod cgroup;
pub(crate) mod clock;
pub mod identity;
pub(crate) mod notify;
pub mod posture;
pub(crate) mod processes;
pub(crate) mod procfs;
pub(crate) mod store;
pub(crate) mod syslog;
mod system_impl;
/// Public only for st-bench's figure of the lookup's cost.
#[doc(hidden)]
pub mod tcpinfo;
pub(crate) mod terminal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::audit::event::{Event, EventName, Severity};
use crate::host::identity::groups_cache;
use crate::host::processes::leaders::LeaderPins;
use crate::host::processes::{census, exits};
use crate::host::procfs::ProcInfo;
use crate::host::store::ids::IdAllocator;
use crate::host::store::state::StateStore;
use crate::host::syslog::Syslog;
use crate::host::terminal::{connection, login_probe};

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
    /// Parent → children while logins are set up.
    children: login_probe::ChildrenCache,
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
    /// current one reading on from the previous (see `host::processes::census`).
    census_pair_complete: bool,
    /// Lines held back by `hold_log`, sent by `release_log`.
    held_log: Option<Vec<Event>>,
    /// Ending sessions watched for their last process (issue 16); `None`
    /// if no epoll set could be made (the kill ladder's timers then end them).
    exits: Option<exits::ExitWatch>,
    /// The leaders of live sessions, pinned (issue 16); `None` as for `exits`.
    leaders: Option<LeaderPins>,
    /// Whether the loop's last poll found each watch's fd readable, so that
    /// an idle turn asks the kernel nothing (true until the loop says).
    exits_readable: bool,
    leaders_readable: bool,
    /// The last process `alive` proved outside the pins, for the rest of
    /// the turn (see [`Proven`]).
    proven: Option<Proven>,
}

/// A process proven alive through a pidfd opened before its `stat` was
/// read, so the pidfd names it: a registration reads the leader's `stat`
/// once, for `alive`, `parent_sessionid` and the pin. Forgotten at every
/// loop turn and batch, so the parent it names is never older than that.
pub(crate) struct Proven {
    pub(crate) p: crate::core::session::ProcRef,
    pub(crate) ppid: u32,
    pub(crate) fd: std::os::fd::OwnedFd,
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
            children: login_probe::ChildrenCache::default(),
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
            leaders: LeaderPins::new().ok(),
            exits_readable: true,
            leaders_readable: true,
            proven: None,
        }
    }

    /// What the loop's poll found readable: the watches whose fd is in
    /// `fds` are read at the next `exits_seen`, the others are not.
    pub(crate) fn note_readable(&mut self, fds: &[std::os::fd::RawFd]) {
        let has = |fd: Option<std::os::fd::RawFd>| fd.is_some_and(|fd| fds.contains(&fd));
        self.exits_readable = has(self.exits.as_ref().map(exits::ExitWatch::fd));
        self.leaders_readable = has(self.leaders.as_ref().map(LeaderPins::fd));
        self.proven = None;
    }

    /// Ends sessions through cgroup v2 (see `host::cgroup`).
    pub(crate) fn set_cgroups(&mut self, cgroups: cgroup::Cgroups) {
        self.cgroups = Some(cgroups);
    }

    /// The fds of the watches on exits, for the event loop's poll set.
    pub(crate) fn exit_watch_fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        let exits = self.exits.as_ref().map(exits::ExitWatch::fd);
        exits
            .into_iter()
            .chain(self.leaders.as_ref().map(LeaderPins::fd))
    }

    /// Whether a session is named already (the loop must not sleep).
    pub(crate) fn exits_pending(&self) -> bool {
        self.exits.as_ref().is_some_and(exits::ExitWatch::has_ready)
            || self.leaders.as_ref().is_some_and(LeaderPins::has_gone)
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
