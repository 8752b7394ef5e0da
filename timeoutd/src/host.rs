//! The real [`System`]: /proc, /dev/pts, signals, syslog, the id file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::engine::{ProcFacts, System, TtyProbe};
use crate::event::{Event, Severity};
use crate::ids::{self, IdAllocator};
use crate::login_probe;
use crate::nss;
use crate::procfs::{self, ProcInfo};
use crate::pty;
use crate::record::{JournalEntry, SessionRecord};
use crate::recovery::FoundLogin;
use crate::session::{ProcRef, Scope, TtyTimes};
use crate::signals;
use crate::state::StateStore;
use crate::syslog::Syslog;

/// The revocation list in the state directory.
pub const REVOCATIONS_FILE: &str = "revocations";
/// `state_write_failed` is logged at most this often.
const STATE_ERROR_INTERVAL: Duration = Duration::from_secs(60);

pub struct Host {
    syslog: Arc<Syslog>,
    ids: IdAllocator,
    store: StateStore,
    state_dir: PathBuf,
    /// One /proc scan, shared by everything done in one batch (see `begin_batch`).
    snapshot: Option<Vec<ProcInfo>>,
    last_state_error: Option<Instant>,
}

impl Host {
    pub fn new(
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
            last_state_error: None,
        }
    }

    fn processes(&mut self) -> &[ProcInfo] {
        self.snapshot.get_or_insert_with(procfs::snapshot)
    }

    /// Logs `state_write_failed` at most once a minute.
    fn state_error(&mut self, what: &str, e: &std::io::Error) {
        let due = self
            .last_state_error
            .is_none_or(|t| t.elapsed() >= STATE_ERROR_INTERVAL);
        if due {
            self.last_state_error = Some(Instant::now());
            self.syslog.log(
                &Event::new("state_write_failed")
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
    pub fn find_logins(&mut self) -> Vec<FoundLogin> {
        let snap = procfs::snapshot();
        let boot = boot_time_ms();
        let tick = clock_ticks_per_second();
        let me = std::process::id();
        let mut out = Vec::new();
        for p in &snap {
            let is_login_program = p.comm.starts_with("sshd") || p.comm == "login";
            if !is_login_program || p.sessionid == procfs::AUDIT_UNSET || p.pid == me || p.ruid != 0
            {
                continue;
            }
            let parent_sid = snap.iter().find(|q| q.pid == p.ppid).map(|q| q.sessionid);
            if parent_sid == Some(p.sessionid) {
                continue;
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
    }

    fn find_ttys(&mut self, leader: ProcRef, pam_tty: &str, check_notty: bool) -> TtyProbe {
        let probe = login_probe::find(leader.pid, pam_tty, check_notty);
        if !self.alive(leader) {
            return TtyProbe::default(); // the pid was reused while we looked
        }
        probe
    }

    fn groups_of(&mut self, user: &str) -> Vec<String> {
        nss::groups_of(user)
    }

    fn io_total(&mut self, leader: ProcRef, scope: Scope) -> Option<u64> {
        let procs = self.scope_processes(leader, scope);
        if procs.is_empty() {
            return None;
        }
        Some(
            procs
                .iter()
                .filter_map(|p| login_probe::io_bytes(p.proc.pid))
                .fold(0u64, u64::saturating_add),
        )
    }

    fn tty_times(&mut self, name: &str) -> Option<TtyTimes> {
        let t = pty::stat_tty(&login_probe::device(name)).ok()?;
        Some(TtyTimes {
            atime: Timestamp(t.atime_ms),
            mtime: Timestamp(t.mtime_ms),
            ctime: Timestamp(t.ctime_ms),
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
        if stat.start_time != p.start_time {
            return None;
        }
        procfs::sessionid(stat.ppid)
    }

    fn scope_processes(&mut self, leader: ProcRef, scope: Scope) -> Vec<ProcFacts> {
        let sessionid = match scope {
            Scope::AuditSession(id) => Some(id),
            Scope::Subtree => None,
        };
        let snap = self.processes();
        let comm_of = |pid: u32| snap.iter().find(|q| q.pid == pid).map(|q| q.comm.as_str());
        procfs::session_processes(snap, leader.pid, leader.start_time, sessionid)
            .into_iter()
            .map(|p| ProcFacts {
                proc: ProcRef {
                    pid: p.pid,
                    start_time: p.start_time,
                },
                ppid: p.ppid,
                ruid: p.ruid,
                euid: p.euid,
                same_program_as_parent: comm_of(p.ppid) == Some(p.comm.as_str()),
            })
            .collect()
    }

    fn signal(&mut self, procs: &[ProcRef], sig: i32) -> usize {
        let refs: Vec<signals::ProcRef> = procs
            .iter()
            .map(|p| signals::ProcRef {
                pid: p.pid,
                start_time: p.start_time,
            })
            .collect();
        signals::signal_all(&refs, sig)
    }

    fn log(&mut self, ev: Event) {
        self.syslog.log(&ev);
    }

    fn allocate_id(&mut self) -> u64 {
        let (id, err) = self.ids.allocate();
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

    fn wants_compaction(&self, live: usize) -> bool {
        self.store.wants_compaction(live)
    }

    fn compact(&mut self, live: Vec<SessionRecord>) {
        if let Err(e) = self.store.compact(&live) {
            self.state_error("session table snapshot", &e);
        }
    }

    fn save_revocations(&mut self, text: &str) {
        let path = self.state_dir.join(REVOCATIONS_FILE);
        if let Err(e) = ids::write_atomic(&path, text.as_bytes()) {
            self.state_error("revocations", &e);
        }
    }
}
