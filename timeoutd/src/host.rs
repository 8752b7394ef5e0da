//! The real [`System`]: /proc, /dev/pts, signals, syslog, the id file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::engine::{ProcFacts, System};
use crate::event::{Event, Severity};
use crate::ids::IdAllocator;
use crate::procfs::{self, ProcInfo};
use crate::pty;
use crate::session::{ProcRef, Scope, TtyTimes};
use crate::signals;
use crate::syslog::Syslog;

/// A /proc scan is reused for this long within one batch of wake-ups.
const SNAPSHOT_TTL: Duration = Duration::from_millis(50);
/// `state_write_failed` is logged at most this often.
const STATE_ERROR_INTERVAL: Duration = Duration::from_secs(60);

pub struct Host {
    syslog: Arc<Syslog>,
    ids: IdAllocator,
    snapshot: Option<(Instant, Vec<ProcInfo>)>,
    last_state_error: Option<Instant>,
}

impl Host {
    pub fn new(syslog: Arc<Syslog>, ids: IdAllocator) -> Self {
        Self {
            syslog,
            ids,
            snapshot: None,
            last_state_error: None,
        }
    }

    fn processes(&mut self) -> &[ProcInfo] {
        let fresh = self
            .snapshot
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < SNAPSHOT_TTL);
        if !fresh {
            self.snapshot = Some((Instant::now(), procfs::snapshot()));
        }
        self.snapshot.as_ref().map_or(&[], |(_, s)| s.as_slice())
    }
}

/// The terminal named by PAM_TTY, when it names a device ("/dev/pts/3",
/// "pts/3", "tty1"); `None` for "ssh", X displays and anything odd.
pub fn tty_from_pam(pam_tty: &str) -> Option<String> {
    let name = pam_tty.strip_prefix("/dev/").unwrap_or(pam_tty);
    let plausible = !name.is_empty()
        && !name.contains("..")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/')
        && (name.starts_with("pts/") || name.starts_with("tty") || name == "console");
    if !plausible {
        return None;
    }
    pty::stat_tty(&device(name)).ok().map(|_| name.to_owned())
}

fn device(name: &str) -> PathBuf {
    PathBuf::from("/dev").join(name)
}

impl System for Host {
    fn now(&self) -> Timestamp {
        SystemClock.now()
    }

    fn begin_batch(&mut self) {
        self.snapshot = None;
    }

    fn find_ttys(&mut self, leader: ProcRef, pam_tty: &str) -> Vec<String> {
        if let Some(name) = tty_from_pam(pam_tty) {
            return vec![name];
        }
        // sshd's [priv] monitor keeps the master of every pty it allocated for
        // this login (several with ControlMaster). Ptys the user opens later
        // (tmux, screen) are held by their own processes and are not counted.
        let masters = procfs::pty_masters_of(leader.pid);
        if !self.alive(leader) {
            return Vec::new(); // the pid was reused while we looked
        }
        masters.into_iter().map(|n| format!("pts/{n}")).collect()
    }

    fn tty_times(&mut self, name: &str) -> Option<TtyTimes> {
        let t = pty::stat_tty(&device(name)).ok()?;
        Some(TtyTimes {
            atime: Timestamp(t.atime_ms),
            mtime: Timestamp(t.mtime_ms),
            ctime: Timestamp(t.ctime_ms),
        })
    }

    fn write_tty(&mut self, name: &str, text: &str) -> bool {
        pty::write_warning(&device(name), text).is_ok()
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
        procfs::session_processes(snap, leader.pid, leader.start_time, sessionid)
            .into_iter()
            .map(|p| ProcFacts {
                proc: ProcRef {
                    pid: p.pid,
                    start_time: p.start_time,
                },
                ruid: p.ruid,
                euid: p.euid,
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
        let n = signals::signal_all(&refs, sig);
        // What we just signalled has changed: do not reuse the scan.
        self.snapshot = None;
        n
    }

    fn log(&mut self, ev: Event) {
        self.syslog.log(&ev);
    }

    fn allocate_id(&mut self) -> u64 {
        let (id, err) = self.ids.allocate();
        if let Some(e) = err {
            let due = self
                .last_state_error
                .is_none_or(|t| t.elapsed() >= STATE_ERROR_INTERVAL);
            if due {
                self.last_state_error = Some(Instant::now());
                self.syslog.log(
                    &Event::new("state_write_failed")
                        .with_severity(Severity::Err)
                        .field("what", "session id counter")
                        .field("error", e),
                );
            }
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pam_tty_names_a_device_only_when_it_is_one() {
        assert_eq!(tty_from_pam("ssh"), None);
        assert_eq!(tty_from_pam(":0"), None);
        assert_eq!(tty_from_pam("/dev/../etc/passwd"), None);
        assert_eq!(tty_from_pam("pts/999999"), None); // no such device
        assert_eq!(tty_from_pam(""), None);
    }
}
