//! The login's kill scope as a cgroup v2: finding the cgroup2 mount (never
//! assuming its path), the subtree this daemon owns, one cgroup per session,
//! moving a login's leader in, `cgroup.kill`, `cgroup.events` and removing
//! empty cgroups. What the kernel files say is parsed in [`parse`].
//!
//! Layout (see README "Nested sessions and root processes"):
//! - the daemon in the root cgroup (no systemd, as on the development
//!   machine): it owns `/timeoutd-TAG`, TAG from its state dir, so that
//!   daemons with different state dirs never share one;
//! - the daemon in a cgroup of its own (systemd with `Delegate=yes`): it
//!   owns that cgroup, and moves itself into its leaf `daemon` first, so the
//!   cgroup holds no process of its own (cgroup v2's no-internal-processes
//!   rule, once systemd enables controllers there).
//!
//! Inside it: `s-ID` per login, `s-ID/s-ID2` per session opened inside one
//! (su, sudo), and `spared`, where root processes spared at a login's end go.
//! A login that pam_systemd put in a logind scope (`session-N.scope`) uses
//! that scope as it is: nothing is created or moved there.

pub(crate) mod parse;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::host::cgroup::parse::{
    is_logind_session_scope, parse_events_populated, parse_mountinfo, parse_proc_cgroup,
};
use crate::host::processes::signals;
use crate::host::procfs;

/// Name of the leaf the daemon moves itself into when it owns its cgroup.
const DAEMON_LEAF: &str = "daemon";
/// Where root processes spared at a login's end are moved.
const SPARED_LEAF: &str = "spared";

/// Why the daemon ends sessions without a cgroup (stop-then-kill).
#[derive(Debug)]
pub enum Unavailable {
    /// No cgroup2 file system in /proc/self/mountinfo.
    NoMount,
    /// Mounted read-only (here: at this path).
    ReadOnly(PathBuf),
    /// The kernel has no `cgroup.kill` (before Linux 5.14).
    NoKill(PathBuf),
    /// Creating or entering the subtree failed.
    Setup(PathBuf, io::Error),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoMount => f.write_str("no cgroup2 file system is mounted"),
            Self::ReadOnly(p) => write!(f, "the cgroup2 mount {} is read-only", p.display()),
            Self::NoKill(p) => write!(
                f,
                "{} has no cgroup.kill (Linux 5.14 or later is needed)",
                p.display()
            ),
            Self::Setup(p, e) => write!(f, "cannot set up {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for Unavailable {}

/// The cgroup2 mount point of this mount namespace, if a writable one exists.
pub(crate) fn writable_mount() -> Result<PathBuf, Unavailable> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = parse_mountinfo(&text);
    if let Some(m) = mounts.iter().find(|m| !m.read_only) {
        return Ok(m.mount_point.clone());
    }
    match mounts.first() {
        Some(m) => Err(Unavailable::ReadOnly(m.mount_point.clone())),
        None => Err(Unavailable::NoMount),
    }
}

/// SIGKILL to `pid` through a pidfd, if the process it pins is in
/// `cgroup` or below it.
fn kill_if_in(cgroup: &str, pid: u32) {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return;
    };
    let Ok(fd) = signals::pidfd_open(raw) else {
        return;
    };
    let inside = cgroup_of(pid).is_some_and(|c| {
        c == cgroup
            || c.strip_prefix(cgroup)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if inside {
        let _ = signals::pidfd_send_signal(&fd, libc::SIGKILL);
    }
}

/// The cgroup (path inside the hierarchy) of a process; `None` if gone.
pub(crate) fn cgroup_of(pid: u32) -> Option<String> {
    let buf = crate::host::procfs::read_small(&format!("/proc/{pid}/cgroup")).ok()?;
    parse_proc_cgroup(std::str::from_utf8(&buf).ok()?)
}

/// The subtree this daemon owns, in a writable cgroup2 hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    mount: PathBuf,
    /// Path inside the hierarchy, e.g. `/timeoutd-1a2b3c4d`.
    base: String,
    /// Whether this daemon made `base` (the `/timeoutd-TAG` layout) and so
    /// removes it at a clean stop; a delegated cgroup is systemd's.
    made_base: bool,
}

impl Cgroups {
    /// Finds the mount and sets up the subtree (see the module doc).
    /// `tag` names the subtree when the daemon sits in the root cgroup.
    pub(crate) fn set_up(tag: &str) -> Result<Cgroups, Unavailable> {
        let mount = writable_mount()?;
        let own = cgroup_of(std::process::id()).unwrap_or_else(|| "/".to_owned());
        let own = own.trim_end_matches(&format!("/{DAEMON_LEAF}")).to_owned();
        let cg = if own == "/" || own.is_empty() {
            let cg = Cgroups {
                mount,
                base: format!("/timeoutd-{tag}"),
                made_base: true,
            };
            cg.make_dir(&cg.base)?;
            cg
        } else {
            let cg = Cgroups {
                mount,
                base: own,
                made_base: false,
            };
            let leaf = cg.child(&cg.base, DAEMON_LEAF);
            cg.make_dir(&leaf)?;
            cg.move_pid(&leaf, std::process::id())
                .map_err(|e| Unavailable::Setup(cg.abs(&leaf), e))?;
            cg
        };
        if !cg.abs(&cg.base).join("cgroup.kill").exists() {
            return Err(Unavailable::NoKill(cg.abs(&cg.base)));
        }
        let spared = cg.child(&cg.base, SPARED_LEAF);
        cg.make_dir(&spared)?;
        Ok(cg)
    }

    fn abs(&self, cgroup: &str) -> PathBuf {
        self.mount.join(cgroup.trim_start_matches('/'))
    }

    fn child(&self, parent: &str, name: &str) -> String {
        format!("{}/{name}", parent.trim_end_matches('/'))
    }

    fn make_dir(&self, cgroup: &str) -> Result<(), Unavailable> {
        let dir = self.abs(cgroup);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Unavailable::Setup(dir, e)),
        }
    }

    /// Whether this daemon made the cgroup (and may move processes out of it
    /// and remove it): inside its subtree, and not the subtree itself.
    pub(crate) fn owns(&self, cgroup: &str) -> bool {
        cgroup
            .strip_prefix(&self.base)
            .is_some_and(|rest| rest.starts_with("/s-"))
    }

    /// The kill scope of a new session whose leader is `pid`: the logind
    /// scope it is in, or a new `s-ID` cgroup with the leader moved in.
    /// A session opened inside another (`nested`: su, sudo) gets a cgroup
    /// below the one its leader is in, if that one is ours; else none.
    pub(crate) fn attach(&self, pid: u32, id: u64, nested: bool) -> io::Result<Option<String>> {
        let Some(current) = cgroup_of(pid) else {
            return Ok(None);
        };
        let parent = if nested {
            if !self.owns(&current) {
                return Ok(None);
            }
            current
        } else if is_logind_session_scope(&current) {
            return Ok(Some(current));
        } else {
            self.base.clone()
        };
        let cg = self.child(&parent, &format!("s-{id}"));
        if let Err(e) = fs::create_dir(self.abs(&cg)) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
        if let Err(e) = self.move_pid(&cg, pid) {
            let _ = fs::remove_dir(self.abs(&cg));
            return Err(e);
        }
        Ok(Some(cg))
    }

    fn move_pid(&self, cgroup: &str, pid: u32) -> io::Result<()> {
        fs::write(
            self.abs(cgroup).join("cgroup.procs"),
            format!("{pid}\n").as_bytes(),
        )
    }

    /// Moves a process out of `cgroup`'s kill scope: to the cgroup above it
    /// if that is a login's of ours (a session inside a login spares into
    /// its login, whose own end then decides), else to the `spared` leaf.
    pub(crate) fn spare(&self, cgroup: &str, pid: u32) -> io::Result<()> {
        let parent = cgroup.rsplit_once('/').map_or("", |(p, _)| p);
        if self.owns(parent) {
            return self.move_pid(parent, pid);
        }
        self.move_pid(&self.child(&self.base, SPARED_LEAF), pid)
    }

    /// The pids in the cgroup and below it, each with its depth below it
    /// (0 = in the cgroup itself).
    pub(crate) fn members(&self, cgroup: &str) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        collect_members(&self.abs(cgroup), 0, &mut out);
        out
    }

    /// Kills every process in the cgroup and below it at once (forks in
    /// flight included), then, one at a time, what `cgroup.kill` passes
    /// over: a process whose main thread has ended while its other threads
    /// run on (state `Z`; measured on Linux 6.18, where such a process
    /// survived `cgroup.kill`). Each is pinned by a pidfd and SIGKILLed only
    /// if the pinned process is still in the cgroup, so a reused pid is
    /// never hit.
    pub(crate) fn kill(&self, cgroup: &str) -> io::Result<()> {
        fs::write(self.abs(cgroup).join("cgroup.kill"), b"1\n")?;
        let me = std::process::id();
        for (pid, _) in self.members(cgroup) {
            let in_threads_only = pid > 1
                && pid != me
                && procfs::read_stat(pid)
                    .is_ok_and(|st| st.state == 'Z' && !procfs::has_exited(pid, 'Z'));
            if in_threads_only {
                kill_if_in(cgroup, pid);
            }
        }
        Ok(())
    }

    /// The cgroup's `cgroup.events` (pollable: see `host::processes::exits`).
    pub(crate) fn events_path(&self, cgroup: &str) -> PathBuf {
        self.abs(cgroup).join("cgroup.events")
    }

    /// Whether any process is left in the cgroup or below it; a cgroup that
    /// no longer exists is empty.
    pub(crate) fn populated(&self, cgroup: &str) -> bool {
        match fs::read_to_string(self.abs(cgroup).join("cgroup.events")) {
            Ok(text) => parse_events_populated(&text).unwrap_or(true),
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        }
    }

    /// Removes an empty cgroup of ours, children first. Returns whether it
    /// is gone (false: something still lives in it, try again later).
    pub(crate) fn remove(&self, cgroup: &str) -> bool {
        if !self.owns(cgroup) {
            return true;
        }
        remove_tree(&self.abs(cgroup))
    }

    /// At a clean stop: removes the `spared` leaf and, in the `/timeoutd-TAG`
    /// layout, the subtree itself, each only if empty (rmdir refuses a
    /// cgroup with processes or children: the cgroups of sessions that
    /// outlive this daemon stay, and the next start uses them). Returns
    /// whether nothing of the subtree is left that this daemon made.
    pub(crate) fn tear_down(&self) -> bool {
        let spared = self.abs(&self.child(&self.base, SPARED_LEAF));
        let spared_gone = rmdir_if_there(&spared);
        if !self.made_base {
            return spared_gone;
        }
        spared_gone && rmdir_if_there(&self.abs(&self.base))
    }

    /// Removes every empty session cgroup of ours that `keep` does not name
    /// (sessions that ended while the daemon was down or busy).
    pub(crate) fn sweep(&self, keep: &[String]) {
        let Ok(rd) = fs::read_dir(self.abs(&self.base)) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let cg = self.child(&self.base, &name);
            if name.starts_with("s-") && !keep.iter().any(|k| k.starts_with(&cg)) {
                remove_tree(&e.path());
            }
        }
    }
}

fn collect_members(dir: &Path, depth: usize, out: &mut Vec<(u32, usize)>) {
    if depth > 16 {
        return;
    }
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(
            text.lines()
                .filter_map(|l| l.trim().parse::<u32>().ok())
                .map(|pid| (pid, depth)),
        );
    }
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_members(&e.path(), depth + 1, out);
        }
    }
}

/// rmdir of a cgroup directory and its child cgroups, deepest first.
fn remove_tree(dir: &Path) -> bool {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// rmdir; a directory that is not there counts as removed.
fn rmdir_if_there(dir: &Path) -> bool {
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// A short, stable name for this daemon's subtree: FNV-1a of its state dir.
pub(crate) fn tag_of(state_dir: &Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in state_dir.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// What posture says: `None` if sessions get a cgroup, else why not. Reads
/// only (no cgroup is created): a writable mount and a kernel with cgroup.kill.
pub(crate) fn probe() -> Option<Unavailable> {
    let mount = match writable_mount() {
        Ok(m) => m,
        Err(e) => return Some(e),
    };
    if !writable(&mount) {
        return Some(Unavailable::ReadOnly(mount));
    }
    let own = cgroup_of(std::process::id()).unwrap_or_default();
    let own_dir = mount.join(own.trim_start_matches('/'));
    let has_kill = if own_dir == mount {
        crate::host::cgroup::parse::kernel_at_least(&uname_release(), 5, 14)
    } else {
        own_dir.join("cgroup.kill").exists()
    };
    (!has_kill).then_some(Unavailable::NoKill(mount))
}

fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access() reads a NUL-terminated path that lives for the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn uname_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_and_differ_by_state_dir() {
        let a = tag_of(Path::new("/var/lib/timeoutd"));
        assert_eq!(a, tag_of(Path::new("/var/lib/timeoutd")));
        assert_ne!(a, tag_of(Path::new("/tmp/x/state")));
        assert_eq!(a.len(), 8);
        // FNV-1a as published; the e2e harness derives the same tags.
        assert_eq!(tag_of(Path::new("a")), "e40c292c");
    }

    #[test]
    fn owns_only_session_cgroups_of_its_subtree() {
        let cg = Cgroups {
            mount: PathBuf::from("/sys/fs/cgroup"),
            base: "/timeoutd-1".into(),
            made_base: true,
        };
        assert!(cg.owns("/timeoutd-1/s-4"));
        assert!(cg.owns("/timeoutd-1/s-4/s-9"));
        assert!(!cg.owns("/timeoutd-1"));
        assert!(!cg.owns("/timeoutd-1/spared"));
        assert!(!cg.owns("/timeoutd-12/s-4"));
        assert!(!cg.owns("/user.slice/user-1000.slice/session-3.scope"));
        assert_eq!(
            cg.abs("/timeoutd-1/s-4"),
            PathBuf::from("/sys/fs/cgroup/timeoutd-1/s-4")
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cgroup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("timeoutd-t/spared")).unwrap();
        dir
    }

    #[test]
    fn a_clean_stop_leaves_no_empty_subtree() {
        let mount = scratch("empty");
        let cg = Cgroups {
            mount: mount.clone(),
            base: "/timeoutd-t".into(),
            made_base: true,
        };
        assert!(cg.tear_down());
        assert!(!mount.join("timeoutd-t").exists());
        assert!(cg.tear_down(), "already gone counts as removed");
        fs::remove_dir_all(&mount).unwrap();
    }

    #[test]
    fn a_session_cgroup_goes_with_its_children_and_a_busy_one_stays() {
        let mount = scratch("remove");
        fs::create_dir_all(mount.join("timeoutd-t/s-4/s-5/s-6")).unwrap();
        fs::create_dir(mount.join("timeoutd-t/s-7")).unwrap();
        // A file stands for a process: rmdir refuses the directory.
        fs::write(mount.join("timeoutd-t/s-7/busy"), "").unwrap();
        let cg = Cgroups {
            mount: mount.clone(),
            base: "/timeoutd-t".into(),
            made_base: true,
        };
        assert!(cg.remove("/timeoutd-t/s-4"));
        assert!(!mount.join("timeoutd-t/s-4").exists());
        assert!(!cg.remove("/timeoutd-t/s-7"));
        assert!(mount.join("timeoutd-t/s-7/busy").exists());
        assert!(cg.remove("/timeoutd-t/s-9"), "not there counts as removed");
        fs::remove_dir_all(&mount).unwrap();
    }

    #[test]
    fn a_stop_keeps_the_cgroups_of_live_sessions_and_what_it_did_not_make() {
        let mount = scratch("live");
        fs::create_dir(mount.join("timeoutd-t/s-4")).unwrap();
        let cg = Cgroups {
            mount: mount.clone(),
            base: "/timeoutd-t".into(),
            made_base: true,
        };
        assert!(!cg.tear_down());
        assert!(mount.join("timeoutd-t/s-4").exists());
        assert!(!mount.join("timeoutd-t/spared").exists());
        fs::remove_dir(mount.join("timeoutd-t/s-4")).unwrap();
        let delegated = Cgroups {
            made_base: false,
            ..cg
        };
        assert!(delegated.tear_down());
        assert!(mount.join("timeoutd-t").exists(), "systemd's cgroup stays");
        fs::remove_dir_all(&mount).unwrap();
    }
}
