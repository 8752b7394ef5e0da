//! The /proc probe: process table, audit session ids, login uids and pty
//! master fds. What the files say is parsed in [`parse`]; which processes
//! belong to a login is decided in [`tree`].
//!
//! Nothing here panics on /proc content. Processes vanish mid-scan, pids are
//! reused, files are unreadable, and `comm` may contain spaces, parentheses,
//! newlines or invalid UTF-8; such entries are skipped or reported as errors.
//!
//! [`proc_info`] reads `stat`, `status` and `sessionid` through one directory
//! fd of `/proc/PID`. If the process dies and its pid is reused meanwhile, the
//! old directory fd keeps pointing at the dead process and the reads fail
//! instead of mixing two processes.

use std::ffi::CStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

#[cfg(test)]
pub(crate) use parse::controlling_pts;
pub(crate) use parse::Stat;
use parse::{parse_stat, parse_status_uids, parse_tty_index, parse_u32_file};
#[cfg(test)]
pub(crate) use tree::session_processes;
pub(crate) use tree::{session_processes_indexed, ChildIndex};

mod parse;
mod tree;

/// Value of `/proc/PID/sessionid` and `/proc/PID/loginuid` when unset.
pub(crate) use session_timeout_proto::AUDIT_UNSET;

/// Major number of the first Unix98 pty slave device (`/dev/pts/N`).
pub(crate) const PTS_MAJOR_FIRST: u32 = 136;
/// Last major number reserved for Unix98 pty slaves.
pub(crate) const PTS_MAJOR_LAST: u32 = 143;

/// One process, as seen in one look at /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    /// State letter from `stat` (`R`, `S`, `D`, `Z`, `T`, `I`, ...).
    pub(crate) state: char,
    /// Controlling tty, kernel `new_encode_dev` encoding; 0 = none.
    pub(crate) tty_nr: u32,
    /// Start time in clock ticks after boot (field 22 of `stat`).
    pub(crate) start_time: u64,
    /// Command name (lossy UTF-8, may contain any character).
    pub(crate) comm: String,
    pub(crate) ruid: u32,
    pub(crate) euid: u32,
    /// Audit session id; [`AUDIT_UNSET`] when unset or not available.
    pub(crate) sessionid: u32,
}

impl ProcInfo {
    /// Whether it has exited (see [`has_exited`]).
    pub(crate) fn exited(&self) -> bool {
        has_exited(self.pid, self.state)
    }

    /// Whether it is stopped. A process living only in threads other than
    /// its main one (its state says `Z`) counts as stopped: its threads'
    /// states are not its own, and the final SIGKILL ends them all.
    pub(crate) fn stopped(&self) -> bool {
        matches!(self.state, 'T' | 't' | 'Z')
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}"))
}

/// An open `/proc/PID` directory.
struct ProcDir(File);

impl ProcDir {
    fn open(pid: u32) -> io::Result<ProcDir> {
        if pid == 0 {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        File::open(format!("/proc/{pid}")).map(ProcDir)
    }

    /// Reads a file of this directory (`name` relative, no slashes).
    fn read(&self, name: &CStr) -> io::Result<Vec<u8>> {
        // SAFETY: openat with a valid directory fd (borrowed from `self.0`,
        // alive for the call), a NUL-terminated relative name and plain flags;
        // it only returns a new fd or -1.
        let fd = unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by openat, is open and owned by no
        // one else; OwnedFd takes over closing it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        read_whole(File::from(owned))
    }
}

fn parse_stat_of(pid: u32, buf: &[u8]) -> io::Result<Stat> {
    parse_stat(buf)
        .filter(|st| st.pid == pid)
        .ok_or_else(|| invalid("stat"))
}

/// Reads and parses `/proc/PID/stat`.
///
/// The kernel prints the whole line in one go, so one `read(2)` into a
/// buffer larger than any line (52 numbers and a 64-byte `comm`) gets all
/// of it: open, read, close, where `fs::read` also stats the file and
/// reads until EOF (six calls for every liveness look). A line that
/// fills the buffer is read on to the end.
pub(crate) fn read_stat(pid: u32) -> io::Result<Stat> {
    parse_stat_of(pid, &read_small(&format!("/proc/{pid}/stat"))?)
}

/// Room for a small /proc file in one read (a stat line is < 1.2 KiB, a
/// `status` about 1.5 KiB).
const SMALL_BUF: usize = 4096;

/// Reads a small /proc file that the kernel prints in one go (`stat`,
/// `status`, `sessionid`, `loginuid`, `cgroup`). See [`read_whole`].
pub(crate) fn read_small(path: &str) -> io::Result<Vec<u8>> {
    read_whole(File::open(path)?)
}

/// One `read(2)` into a buffer, read on to the end only if it filled the
/// buffer: open, read, close, where `read_to_end` also stats the file,
/// seeks, and reads again until EOF.
fn read_whole(mut file: File) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; SMALL_BUF];
    let n = file.read(&mut buf)?;
    let mut out = buf[..n].to_vec();
    if n == buf.len() {
        file.read_to_end(&mut out)?;
    }
    Ok(out)
}

/// Everything [`ProcInfo`] holds for one process.
pub(crate) fn proc_info(pid: u32) -> io::Result<ProcInfo> {
    let dir = ProcDir::open(pid)?;
    let st = parse_stat_of(pid, &dir.read(c"stat")?)?;
    let (ruid, euid) = parse_status_uids(&dir.read(c"status")?).ok_or_else(|| invalid("status"))?;
    let sessionid = match dir.read(c"sessionid") {
        Ok(buf) => parse_u32_file(&buf).unwrap_or(AUDIT_UNSET),
        // Kernel without CONFIG_AUDIT: no sessionid file at all.
        Err(e) if e.kind() == io::ErrorKind::NotFound => AUDIT_UNSET,
        Err(e) => return Err(e),
    };
    Ok(ProcInfo {
        pid,
        ppid: st.ppid,
        state: st.state,
        tty_nr: st.tty_nr,
        start_time: st.start_time,
        comm: st.comm,
        ruid,
        euid,
        sessionid,
    })
}

/// The uids of the process `p` names, read through one directory fd after
/// its `stat` shows the same start time; `None` if it is gone or its pid
/// now names another process.
pub(crate) fn uids_of(pid: u32, start_time: u64) -> Option<(u32, u32)> {
    let dir = ProcDir::open(pid).ok()?;
    let st = parse_stat_of(pid, &dir.read(c"stat").ok()?).ok()?;
    if st.start_time != start_time {
        return None;
    }
    parse_status_uids(&dir.read(c"status").ok()?)
}

/// Start time (clock ticks after boot) of `pid`, `None` if it is gone.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    read_stat(pid).ok().map(|s| s.start_time)
}

/// The start time of `pid` if it is running: `None` for a process that
/// has exited (see [`has_exited`]) as for a pid not in use.
pub(crate) fn live_start_time(pid: u32) -> Option<u64> {
    read_stat(pid)
        .ok()
        .filter(|s| !has_exited(pid, s.state))
        .map(|s| s.start_time)
}

/// Whether a process in `state` has exited. A zombie has, unless other
/// threads of it still run: a process whose main thread ended
/// (`pthread_exit`) shows `Z` as well, and is alive in its threads.
pub(crate) fn has_exited(pid: u32, state: char) -> bool {
    state == 'Z' && threads(pid).is_none_or(|n| n <= 1)
}

/// `Threads:` of /proc/PID/status; `None` if unreadable (gone).
fn threads(pid: u32) -> Option<u32> {
    let buf = read_small(&format!("/proc/{pid}/status")).ok()?;
    let text = std::str::from_utf8(&buf).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

fn read_audit_id(pid: u32, file: &str) -> Option<u32> {
    let buf = read_small(&format!("/proc/{pid}/{file}")).ok()?;
    parse_u32_file(&buf).filter(|v| *v != AUDIT_UNSET)
}

/// Audit login uid of `pid`; `None` if unset, unreadable or gone.
pub(crate) fn loginuid(pid: u32) -> Option<u32> {
    read_audit_id(pid, "loginuid")
}

/// The pids in /proc now (its numeric entries), in directory order; none if
/// /proc cannot be read.
pub(crate) fn pids() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// All processes (numeric entries of /proc), sorted by pid. Entries that
/// vanish or cannot be read are skipped. Kernel threads are included.
pub(crate) fn snapshot() -> Vec<ProcInfo> {
    let mut out: Vec<ProcInfo> = pids()
        .into_iter()
        .filter_map(|pid| proc_info(pid).ok())
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Uid and audit session id of an entry of [`stat_snapshot`], not read.
pub(crate) const UNREAD: u32 = u32::MAX;

/// All processes as their `stat` says, sorted by pid: one read per
/// process, where [`snapshot`] makes three. `ruid`, `euid` and `sessionid`
/// are [`UNREAD`]; [`uids_of`] reads the uids of the few processes a
/// subtree walk keeps.
pub(crate) fn stat_snapshot() -> Vec<ProcInfo> {
    let mut out: Vec<ProcInfo> = pids()
        .into_iter()
        .filter_map(|pid| {
            let st = read_stat(pid).ok()?;
            Some(ProcInfo {
                pid,
                ppid: st.ppid,
                state: st.state,
                tty_nr: st.tty_nr,
                start_time: st.start_time,
                comm: st.comm,
                ruid: UNREAD,
                euid: UNREAD,
                sessionid: UNREAD,
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Pts numbers N of the pty **master** fds `pid` holds: fds whose link target
/// is a `ptmx` node (`/dev/ptmx`, `/dev/pts/ptmx`) and whose fdinfo has a
/// `tty-index:` line. Sorted, deduplicated; empty if unreadable.
pub(crate) fn pty_masters_of(pid: u32) -> Vec<u32> {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            if !target.is_absolute() || target.file_name()? != "ptmx" {
                return None;
            }
            let fd = e.file_name();
            let info = fs::read(Path::new(&format!("/proc/{pid}/fdinfo")).join(fd)).ok()?;
            parse_tty_index(&info)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::procfs::tree::descendants;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// Audit session id of `pid`; `None` if unset, unreadable or gone.
    fn sessionid(pid: u32) -> Option<u32> {
        read_audit_id(pid, "sessionid")
    }

    fn pids(v: &[&ProcInfo]) -> Vec<u32> {
        let mut p: Vec<u32> = v.iter().map(|p| p.pid).collect();
        p.sort_unstable();
        p
    }

    /// Polls `f` for up to 5 s.
    fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_zombie_has_no_live_start_time() {
        let mut child = Command::new("sleep")
            .arg("100")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let started = start_time(pid).unwrap();
        assert_eq!(live_start_time(pid), Some(started));
        // SAFETY: kill(2) of our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        let zombie = wait_for(|| read_stat(pid).ok().filter(|s| s.state == 'Z'));
        assert!(zombie.is_some(), "the child did not become a zombie");
        assert_eq!(start_time(pid), Some(started), "its stat is still there");
        assert_eq!(live_start_time(pid), None);
        child.wait().unwrap();
        assert_eq!(live_start_time(pid), None);
    }

    #[test]
    fn a_process_whose_main_thread_ended_lives_in_its_other_threads() {
        // The raw exit syscall ends the main thread only (this
        // architecture's number); perl's own exit would end every thread.
        let script = format!(
            "use threads; threads->create(sub {{ sleep 100 }})->detach; syscall({}, 0);",
            libc::SYS_exit
        );
        let mut child = Command::new("perl")
            .args(["-e", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("perl (with its threads module) is needed by this test");
        let pid = child.id();
        let zombie = wait_for(|| read_stat(pid).ok().filter(|s| s.state == 'Z'));
        assert!(zombie.is_some(), "the main thread did not exit");
        assert_eq!(threads(pid), Some(2));
        assert!(!has_exited(pid, 'Z'));
        assert!(live_start_time(pid).is_some());
        kill(&mut child);
        assert!(has_exited(pid, 'Z'));
    }

    fn kill(child: &mut Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn own_process() {
        let me = std::process::id();
        let st = read_stat(me).expect("stat");
        let comm = fs::read_to_string(format!("/proc/{me}/comm")).expect("comm");
        assert_eq!(st.comm, comm.trim_end_matches('\n'));
        assert_eq!(st.ppid, std::os::unix::process::parent_id());
        let info = proc_info(me).expect("info");
        assert_eq!(info.start_time, st.start_time);
        assert_eq!(start_time(me), Some(st.start_time));
        let status = fs::read(format!("/proc/{me}/status")).expect("status");
        assert_eq!(Some((info.ruid, info.euid)), parse_status_uids(&status));
        let sid = parse_u32_file(&fs::read("/proc/self/sessionid").expect("sid"));
        assert_eq!(Some(info.sessionid), sid);
        assert_eq!(uids_of(me, st.start_time), Some((info.ruid, info.euid)));
        assert_eq!(
            uids_of(me, st.start_time + 1),
            None,
            "another start: another process"
        );
        let stats = stat_snapshot();
        let mine = stats
            .iter()
            .find(|p| p.pid == me)
            .expect("in the stat snapshot");
        assert_eq!((mine.ppid, mine.start_time), (info.ppid, info.start_time));
        assert_eq!(
            (mine.ruid, mine.euid, mine.sessionid),
            (UNREAD, UNREAD, UNREAD)
        );
        assert!(proc_info(0).is_err());
        assert!(read_stat(u32::MAX).is_err());
    }

    #[test]
    fn child_with_hostile_name_in_snapshot_and_tree() {
        let dir = std::env::temp_dir().join(format!("timeoutd-procfs-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let name = "a) Z 1 (b\nc";
        let link = dir.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("/bin/sleep", &link).expect("symlink");
        let mut child = Command::new(&link).arg("100").spawn().expect("spawn");
        let pid = child.id();
        let info = proc_info(pid).expect("child info");
        assert_eq!(info.comm, name);
        assert_eq!(info.ppid, std::process::id());
        assert_ne!(info.state, 'Z');
        let snap = snapshot();
        assert!(snap.windows(2).all(|w| w[0].pid < w[1].pid));
        assert!(snap.iter().any(|p| p.pid == 1));
        let c = snap.iter().find(|p| p.pid == pid);
        assert_eq!(c.map(|c| c.comm.as_str()), Some(name));
        let tree = descendants(&snap, std::process::id());
        assert!(tree.iter().any(|p| p.pid == pid));
        assert!(tree.iter().all(|p| p.pid != 1));
        assert_eq!(tree.first().map(|p| p.pid), Some(std::process::id()));
        kill(&mut child);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn audit_session_follows_setsid() {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("echo 4242 > /proc/self/loginuid || exit 3; sleep 100 & setsid sleep 100 & wait")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let sh = child.id();
        let outer = sessionid(std::process::id()); // set if run from a login
        let Some(sid) = wait_for(|| sessionid(sh).filter(|s| Some(*s) != outer)) else {
            // No CAP_AUDIT_CONTROL or no audit support: nothing to check.
            kill(&mut child);
            return;
        };
        assert_eq!(loginuid(sh), Some(4242));
        let found = wait_for(|| {
            let snap = snapshot();
            let found = session_processes(&snap, sh, 0, Some(sid));
            let sleeping = found.iter().filter(|p| p.comm == "sleep").count();
            (found.len() == 3 && sleeping == 2).then(|| pids(&found))
        })
        .expect("sh and two sleeps");
        assert!(found.contains(&sh));
        let snap = snapshot();
        let sleeps: Vec<u32> = session_processes(&snap, sh, 0, Some(sid))
            .iter()
            .filter(|p| p.pid != sh)
            .map(|p| p.pid)
            .collect();
        for p in &sleeps {
            assert_eq!(sessionid(*p), Some(sid));
            assert_eq!(read_stat(*p).expect("sleep stat").comm, "sleep");
        }
        // The setsid'd sleep has its own unix session but the same audit one.
        assert!(sleeps
            .iter()
            .any(|p| read_stat(*p).map(|s| s.session == *p).unwrap_or(false)));
        for p in sleeps {
            let _ = Command::new("kill").arg("-9").arg(p.to_string()).status();
        }
        let _ = child.wait();
    }
}
