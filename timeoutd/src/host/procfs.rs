//! The /proc probe: process table, audit session ids, controlling ttys and
//! pty master fds.
//!
//! Nothing here panics on /proc content. Processes vanish mid-scan, pids are
//! reused, files are unreadable, and `comm` may contain spaces, parentheses,
//! newlines or invalid UTF-8; such entries are skipped or reported as errors.
//!
//! [`proc_info`] reads `stat`, `status` and `sessionid` through one directory
//! fd of `/proc/PID`. If the process dies and its pid is reused meanwhile, the
//! old directory fd keeps pointing at the dead process and the reads fail
//! instead of mixing two processes.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Value of `/proc/PID/sessionid` and `/proc/PID/loginuid` when unset.
pub use session_timeout_proto::AUDIT_UNSET;

/// Major number of the first Unix98 pty slave device (`/dev/pts/N`).
pub const PTS_MAJOR_FIRST: u32 = 136;
/// Last major number reserved for Unix98 pty slaves.
pub const PTS_MAJOR_LAST: u32 = 143;

/// One process, as seen in one look at /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// State letter from `stat` (`R`, `S`, `D`, `Z`, `T`, `I`, ...).
    pub state: char,
    /// Controlling tty, kernel `new_encode_dev` encoding; 0 = none.
    pub tty_nr: u32,
    /// Start time in clock ticks after boot (field 22 of `stat`).
    pub start_time: u64,
    /// Command name (lossy UTF-8, may contain any character).
    pub comm: String,
    pub ruid: u32,
    pub euid: u32,
    /// Audit session id; [`AUDIT_UNSET`] when unset or not available.
    pub sessionid: u32,
}

/// The fields of `/proc/PID/stat` this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// Unix session id (`setsid`), not the audit session id.
    pub session: u32,
    pub tty_nr: u32,
    pub start_time: u64,
}

/// Parses the content of `/proc/PID/stat`.
///
/// `comm` is taken between the first `(` and the **last** `)`; the other
/// fields are split on whitespace after that. Returns `None` on anything
/// malformed.
pub fn parse_stat(buf: &[u8]) -> Option<Stat> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')').filter(|c| *c > open)?;
    let pid = std::str::from_utf8(&buf[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(&buf[close + 1..]).ok()?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); field k is f[k - 3].
    let state = match f.first()?.as_bytes() {
        [c] => char::from(*c),
        _ => return None,
    };
    let num_u32 = |i: usize| f.get(i)?.parse::<u32>().ok();
    // tty_nr is printed as a signed int; keep its 32 bits.
    let tty_nr = f.get(4)?.parse::<u32>().ok().or_else(|| {
        let v = f.get(4)?.parse::<i32>().ok()?;
        Some(v as u32)
    })?;
    Some(Stat {
        pid,
        comm: String::from_utf8_lossy(&buf[open + 1..close]).into_owned(),
        state,
        ppid: num_u32(1)?,
        pgrp: num_u32(2)?,
        session: num_u32(3)?,
        tty_nr,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// Parses the real and effective uid from the `Uid:` line of
/// `/proc/PID/status`.
pub fn parse_status_uids(buf: &[u8]) -> Option<(u32, u32)> {
    let text = String::from_utf8_lossy(buf);
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    let mut it = line.split_ascii_whitespace().skip(1);
    let ruid = it.next()?.parse().ok()?;
    let euid = it.next()?.parse().ok()?;
    Some((ruid, euid))
}

fn parse_u32_file(buf: &[u8]) -> Option<u32> {
    std::str::from_utf8(buf).ok()?.trim().parse().ok()
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
        let mut buf = Vec::with_capacity(1024);
        File::from(owned).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

fn parse_stat_of(pid: u32, buf: &[u8]) -> io::Result<Stat> {
    parse_stat(buf)
        .filter(|st| st.pid == pid)
        .ok_or_else(|| invalid("stat"))
}

/// Reads and parses `/proc/PID/stat`.
pub fn read_stat(pid: u32) -> io::Result<Stat> {
    parse_stat_of(pid, &fs::read(format!("/proc/{pid}/stat"))?)
}

/// Everything [`ProcInfo`] holds for one process.
pub fn proc_info(pid: u32) -> io::Result<ProcInfo> {
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

/// Start time (clock ticks after boot) of `pid`, `None` if it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    read_stat(pid).ok().map(|s| s.start_time)
}

fn read_audit_id(pid: u32, file: &str) -> Option<u32> {
    let buf = fs::read(format!("/proc/{pid}/{file}")).ok()?;
    parse_u32_file(&buf).filter(|v| *v != AUDIT_UNSET)
}

/// Audit session id of `pid`; `None` if unset, unreadable or gone.
pub fn sessionid(pid: u32) -> Option<u32> {
    read_audit_id(pid, "sessionid")
}

/// Audit login uid of `pid`; `None` if unset, unreadable or gone.
pub fn loginuid(pid: u32) -> Option<u32> {
    read_audit_id(pid, "loginuid")
}

/// All processes (numeric entries of /proc), sorted by pid. Entries that
/// vanish or cannot be read are skipped. Kernel threads are included.
pub fn snapshot() -> Vec<ProcInfo> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<ProcInfo> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| proc_info(pid).ok())
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// `root` (if present in `snap`) and every process below it, following ppid
/// links. Safe against cycles and duplicate entries. `root == 0` gives an
/// empty list (pid 0 is the parent of init and kthreadd).
pub fn descendants(snap: &[ProcInfo], root: u32) -> Vec<&ProcInfo> {
    if root == 0 {
        return Vec::new();
    }
    let mut children: HashMap<u32, Vec<&ProcInfo>> = HashMap::new();
    for p in snap {
        if p.pid != p.ppid {
            children.entry(p.ppid).or_default().push(p);
        }
    }
    let mut seen = HashSet::from([root]);
    let mut out: Vec<&ProcInfo> = snap.iter().filter(|p| p.pid == root).take(1).collect();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &c in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(c.pid) {
                out.push(c);
                stack.push(c.pid);
            }
        }
    }
    out
}

/// Parses `tty-index:` from a `/proc/PID/fdinfo/FD` file.
pub fn parse_tty_index(buf: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(buf).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("tty-index:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Pts numbers N of the pty **master** fds `pid` holds: fds whose link target
/// is a `ptmx` node (`/dev/ptmx`, `/dev/pts/ptmx`) and whose fdinfo has a
/// `tty-index:` line. Sorted, deduplicated; empty if unreadable.
pub fn pty_masters_of(pid: u32) -> Vec<u32> {
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

/// Splits a `tty_nr` (kernel `new_encode_dev`) into (major, minor).
pub fn decode_dev(tty_nr: u32) -> (u32, u32) {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    (major, minor)
}

/// The pts number N if the process's controlling tty is `/dev/pts/N`.
///
/// The kernel numbers pty slaves as `MKDEV(136, 0) + N` with 20 minor bits,
/// so N is the minor (pts/299 is 136:299, measured), and majors 137..=143
/// would only appear past N = 2^20.
pub fn controlling_pts(info: &ProcInfo) -> Option<u32> {
    if info.tty_nr == 0 {
        return None;
    }
    let (major, minor) = decode_dev(info.tty_nr);
    if !(PTS_MAJOR_FIRST..=PTS_MAJOR_LAST).contains(&major) {
        return None;
    }
    Some(((major - PTS_MAJOR_FIRST) << 20) | minor)
}

/// The live (non-zombie) processes of one login session.
///
/// - `sessionid = Some(S)` (S not [`AUDIT_UNSET`]): every process whose audit
///   session id is S, wherever it is in the tree.
/// - Otherwise: the subtree under `leader_pid`, but only if the leader is in
///   `snap` with start time `leader_start`; if not (gone, or pid reused), an
///   empty list.
///
/// Zombies, pid 1 and the calling process itself are never returned (a
/// daemon started by hand from a login inherits that login's session id).
pub fn session_processes(
    snap: &[ProcInfo],
    leader_pid: u32,
    leader_start: u64,
    sessionid: Option<u32>,
) -> Vec<&ProcInfo> {
    let me = std::process::id();
    let keep = |p: &&ProcInfo| p.state != 'Z' && p.pid > 1 && p.pid != me;
    match sessionid.filter(|s| *s != AUDIT_UNSET) {
        Some(s) => snap
            .iter()
            .filter(|p| p.sessionid == s)
            .filter(keep)
            .collect(),
        None => {
            let leader_ok = snap
                .iter()
                .any(|p| p.pid == leader_pid && p.start_time == leader_start);
            if !leader_ok {
                return Vec::new();
            }
            descendants(snap, leader_pid)
                .into_iter()
                .filter(keep)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    fn mock(pid: u32, ppid: u32, start: u64, sid: u32, state: char) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            state,
            tty_nr: 0,
            start_time: start,
            comm: format!("p{pid}"),
            ruid: 1000,
            euid: 1000,
            sessionid: sid,
        }
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

    fn kill(child: &mut Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    const STAT: &[u8] = b"4360 (cat) R 4352 4352 3965 34817 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 30978 3133440 393 18446744073709551615 0 0";

    #[test]
    fn parse_plain_stat() {
        let want = Stat {
            pid: 4360,
            comm: "cat".into(),
            state: 'R',
            ppid: 4352,
            pgrp: 4352,
            session: 3965,
            tty_nr: 34817,
            start_time: 30978,
        };
        assert_eq!(parse_stat(STAT), Some(want));
    }

    #[test]
    fn parse_hostile_comm() {
        let s = parse_stat(b"7 (a) Z 1 2 (b\nc)) S 9 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0")
            .expect("parse");
        assert_eq!(s.comm, "a) Z 1 2 (b\nc)");
        assert_eq!((s.state, s.ppid, s.start_time), ('S', 9, 555));
        let s =
            parse_stat(b"8 () S 1 8 8 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0").expect("empty comm");
        assert_eq!(s.comm, "");
        let s =
            parse_stat(b"9 (\xff\xfe) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0").expect("bytes");
        assert_eq!(s.comm, "\u{fffd}\u{fffd}");
        // Negative tty_nr keeps its bits.
        let s = parse_stat(b"9 (x) S 1 9 9 -2 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0").expect("neg");
        assert_eq!(s.tty_nr, u32::MAX - 1);
    }

    #[test]
    fn parse_garbage_is_none() {
        for bad in [
            &b""[..],
            b"1 (x",
            b"1 x) S 1",
            b") 1 (",
            b"1 (x) S 1 1 1 0",
            b"x (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
            b"1 (y) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
            b"1 (y) S -1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
            b"1 (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0",
        ] {
            assert_eq!(parse_stat(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse_status_uids(b"Name:\tx\nUid:\t1\t2\t3\t4\n"),
            Some((1, 2))
        );
        assert_eq!(parse_status_uids(b"Uid:\tx\t2\n"), None);
        assert_eq!(parse_status_uids(b""), None);
        assert_eq!(parse_tty_index(b"pos:\t0\ntty-index:\t17\n"), Some(17));
        assert_eq!(parse_tty_index(b"pos:\t0\n"), None);
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
    fn descendants_is_cycle_safe() {
        let snap = vec![
            mock(10, 11, 1, AUDIT_UNSET, 'S'),
            mock(11, 10, 1, AUDIT_UNSET, 'S'),
            mock(12, 11, 1, AUDIT_UNSET, 'S'),
            mock(13, 13, 1, AUDIT_UNSET, 'S'),
            mock(12, 11, 1, AUDIT_UNSET, 'S'),
            mock(20, 1, 1, AUDIT_UNSET, 'S'),
        ];
        assert_eq!(pids(&descendants(&snap, 10)), vec![10, 11, 12]);
        assert_eq!(pids(&descendants(&snap, 13)), vec![13]);
        assert_eq!(pids(&descendants(&snap, 99)), Vec::<u32>::new());
        assert!(descendants(&snap, 0).is_empty());
    }

    #[test]
    fn session_processes_rules() {
        let me = std::process::id();
        let snap = vec![
            mock(1, 0, 1, AUDIT_UNSET, 'S'),
            mock(100, 1, 500, 7, 'S'),
            mock(101, 100, 600, 7, 'S'),
            mock(102, 101, 700, 7, 'Z'),
            mock(200, 1, 800, 7, 'S'), // setsid'd away, same audit session
            mock(300, 1, 900, 8, 'S'),
            mock(301, 1, 900, AUDIT_UNSET, 'S'),
            mock(me, 1, 900, 7, 'S'),
        ];
        let sp = |leader, start, sid| pids(&session_processes(&snap, leader, start, sid));
        assert_eq!(sp(100, 500, Some(7)), vec![100, 101, 200]);
        // No audit id: the live subtree of a leader with the right start time.
        assert_eq!(sp(100, 500, None), vec![100, 101]);
        assert_eq!(sp(100, 500, Some(AUDIT_UNSET)), vec![100, 101]);
        assert!(sp(100, 501, None).is_empty());
        assert!(sp(555, 500, None).is_empty());
        assert!(sp(1, 1, None).iter().all(|p| *p != 1 && *p != me));
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

    #[test]
    fn tty_nr_decoding() {
        let with = |tty_nr| ProcInfo {
            tty_nr,
            ..mock(5, 1, 1, AUDIT_UNSET, 'S')
        };
        assert_eq!(controlling_pts(&with(0)), None);
        assert_eq!(controlling_pts(&with(136 << 8)), Some(0));
        assert_eq!(controlling_pts(&with((136 << 8) | 5)), Some(5));
        // Measured: /dev/pts/299 is 136:299, tty_nr 1083435.
        assert_eq!(decode_dev(1_083_435), (136, 299));
        assert_eq!(controlling_pts(&with(1_083_435)), Some(299));
        assert_eq!(controlling_pts(&with((4 << 8) | 1)), None); // tty1
        assert_eq!(controlling_pts(&with((5 << 8) | 1)), None); // console
        assert_eq!(controlling_pts(&with(u32::MAX)), None);
    }
}
