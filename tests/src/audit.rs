//! What the escape tests need to know about a process: its audit session id
//! (`/proc/PID/sessionid`), its POSIX session, controlling tty, state, uids,
//! ignored signals and argv. Read-only; see [`crate::procs`] for signalling.

use std::fs;

use crate::procs;

/// `4294967295`: the audit session id of a process outside any login.
pub const AUDIT_UNSET: u32 = u32::MAX;

/// One process, as read from /proc at one moment.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// `R`, `S`, `T` (stopped), `Z` (zombie), ...
    pub state: char,
    pub pgrp: u32,
    /// POSIX session id (`setsid` changes it; the audit session id stays).
    pub sid: u32,
    /// Controlling tty (0: none).
    pub tty_nr: u32,
    pub start_time: u64,
    pub ruid: u32,
    pub euid: u32,
    /// `/proc/PID/sessionid`.
    pub audit_session: u32,
    /// Bit `n - 1` is set if signal `n` is ignored (`SigIgn:`).
    pub sig_ignored: u64,
    /// `Threads:` of its status.
    pub threads: u32,
    pub argv: Vec<String>,
}

impl Proc {
    /// Reads `pid`; `None` if it is gone.
    pub fn read(pid: u32) -> Option<Proc> {
        let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] is field 3 (state): field N is f[N - 3].
        let num = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let sig_ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1);
        let (ruid, euid) = procs::uids(pid)?;
        let audit_session = fs::read_to_string(format!("/proc/{pid}/sessionid"))
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(AUDIT_UNSET);
        Some(Proc {
            pid,
            ppid: num(4)? as u32,
            state: f.first()?.chars().next()?,
            pgrp: num(5)? as u32,
            sid: num(6)? as u32,
            tty_nr: num(7)? as u32,
            start_time: num(22)?,
            ruid,
            euid,
            audit_session,
            sig_ignored,
            threads,
            argv: procs::cmdline(pid),
        })
    }

    /// Neither a zombie nor dead. A process whose main thread ended shows
    /// `Z` too, and lives in its other threads.
    pub fn live(&self) -> bool {
        match self.state {
            'X' | 'x' => false,
            'Z' => self.threads > 1,
            _ => true,
        }
    }

    pub fn ignores(&self, sig: i32) -> bool {
        sig >= 1 && self.sig_ignored & (1u64 << (sig - 1)) != 0
    }

    /// Is it still the same process (pid not reused), and alive?
    pub fn still_running(&self) -> bool {
        Proc::read(self.pid).is_some_and(|p| p.start_time == self.start_time && p.live())
    }

    /// `argv` joined by spaces.
    pub fn command(&self) -> String {
        self.argv.join(" ")
    }
}

/// Every process in /proc right now (zombies included).
pub fn all() -> Vec<Proc> {
    procs::all_pids()
        .into_iter()
        .filter_map(Proc::read)
        .collect()
}

/// Live (non-zombie) processes carrying audit session id `sessionid`.
pub fn live_in_session(sessionid: u32) -> Vec<Proc> {
    assert_ne!(
        sessionid, AUDIT_UNSET,
        "the unset audit session id is everyone's"
    );
    all()
        .into_iter()
        .filter(|p| p.audit_session == sessionid && p.live())
        .collect()
}

/// Live processes of the subtree under `root` (not `root` itself).
pub fn live_descendants(root: u32) -> Vec<Proc> {
    procs::descendants(root)
        .into_iter()
        .filter_map(Proc::read)
        .filter(Proc::live)
        .collect()
}

/// The processes, one per line, for failure messages.
pub fn describe(procs: &[Proc]) -> String {
    if procs.is_empty() {
        return "(none)".into();
    }
    procs
        .iter()
        .map(|p| {
            format!(
                "pid {} ppid {} state {} sid {} tty_nr {} uid {}/{} audit {} ign {:#x}: {}",
                p.pid,
                p.ppid,
                p.state,
                p.sid,
                p.tty_nr,
                p.ruid,
                p.euid,
                p.audit_session,
                p.sig_ignored,
                p.command()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses `scope=audit:N` of a `session_open` line.
pub fn audit_scope(scope: &str) -> Option<u32> {
    scope.strip_prefix("audit:")?.parse().ok()
}
