//! Reading /proc: a process's stat, uids and argv, who descends from whom,
//! its open descriptors and a sample of its resource use; and signalling
//! processes checked by start time.
//!
//! Only ever used on processes the callers caused: descendants of a sshd or
//! daemon they started, or processes of a user they created.

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use crate::now_ns;
use crate::wait::poll_until;
/// What the harness needs from `/proc/PID/stat` and `/proc/PID/status`.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub state: char,
    pub start_time: u64,
}

/// Parses `/proc/PID/stat`. `None` if the process is gone.
pub fn stat(pid: u32) -> Option<ProcInfo> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field N is f[N - 3].
    Some(ProcInfo {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        state: f.first()?.chars().next()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// Real and effective uid of a process, from `/proc/PID/status`.
pub fn uids(pid: u32) -> Option<(u32, u32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Uid:"))?;
    let mut it = line[4..].split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// argv of a process (empty for kernel threads or if it is gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live (non-zombie) processes whose real or effective uid is `uid`.
pub fn pids_of_uid(uid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| matches!(uids(p), Some((r, e)) if r == uid || e == uid))
        .filter(|&p| stat(p).is_some_and(|s| s.state != 'Z'))
        .collect()
}

/// All live descendants of `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in all_pids() {
        if let Some(s) = stat(p) {
            if s.state != 'Z' {
                children.entry(s.ppid).or_default().push(p);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Sends `sig` to `pid` if it still is the process that started at `start_time`.
pub fn signal_checked(info: &ProcInfo, sig: i32) {
    if stat(info.pid).is_some_and(|s| s.start_time == info.start_time) {
        // SAFETY: plain kill(2) on a pid we just verified by start time.
        unsafe { libc::kill(info.pid as libc::pid_t, sig) };
    }
}

/// SIGKILLs every process `find` reports until none is left (bounded).
/// Returns the pids still alive when the bound ran out.
pub fn kill_all_until_gone(find: impl Fn() -> Vec<u32>, bound: Duration) -> Vec<u32> {
    let gone = poll_until(bound, Duration::from_millis(50), || {
        let pids = find();
        if pids.is_empty() {
            return Some(());
        }
        for p in pids {
            if let Some(info) = stat(p) {
                signal_checked(&info, libc::SIGKILL);
            }
        }
        None
    });
    if gone.is_some() {
        Vec::new()
    } else {
        find()
    }
}

/// `kill -0`: is there a process with this pid (zombies included)?
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// The fields of /proc/PID/stat after the command name (field 3 is index 0).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    Some(
        text[close + 1..]
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

/// Field 22 of /proc/PID/stat: start time in clock ticks after boot.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// How many descriptors a process holds (`/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Option<usize> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .ok()
}

/// What a process's descriptors point to (`/proc/PID/fd/*`), sorted.
pub fn fd_targets(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| fs::read_link(e.path()).ok())
                .map(|t| t.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// One look at a process in /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// When, on CLOCK_REALTIME (ns).
    pub t_ns: i64,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// Time on CPU from /proc/PID/schedstat, nanoseconds.
    pub sched_ns: u64,
    /// Time runnable but waiting for a CPU, from the same file, nanoseconds.
    pub run_delay_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
    pub rss_kb: u64,
    pub rss_anon_kb: u64,
    pub fds: usize,
}

impl Sample {
    pub fn take(pid: u32) -> Option<Sample> {
        let t_ns = now_ns();
        let f = stat_fields(pid)?;
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        let schedstat = fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
        let mut sched = schedstat.split_whitespace().map(|v| v.parse().unwrap_or(0));
        let (sched_ns, run_delay_ns) = (sched.next().unwrap_or(0), sched.next().unwrap_or(0));
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Some(Sample {
            t_ns,
            cpu_ticks: utime + stime,
            sched_ns,
            run_delay_ns,
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
            rss_kb: field("VmRSS:"),
            rss_anon_kb: field("RssAnon:"),
            fds: fd_count(pid).unwrap_or(0),
        })
    }
}
