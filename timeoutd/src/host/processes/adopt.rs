//! Logins running now that the daemon did not register (it was down),
//! found in /proc for adoption after a restart.

use crate::core::session::ProcRef;
use crate::core::time::clock::Timestamp;
use crate::engine::FoundLogin;
use crate::host::identity::nss;
use crate::host::procfs;
use crate::host::Host;

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
