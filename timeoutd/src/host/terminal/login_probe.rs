//! Finding a login's own terminals, and its I/O when it has none.
//!
//! sshd opens the PAM session before the pty exists (PAM_TTY is "ssh"), so the
//! terminals are found later, from the login's processes: sshd's `[priv]`
//! monitor keeps the master of every pty it allocated for the login (several
//! with ControlMaster). Ptys the user opens later (tmux, screen) are held by
//! their own processes and so are never counted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::TtyProbe;
use crate::host::procfs;
use crate::host::terminal::pty;

/// The terminal named by PAM_TTY, when it names a device ("/dev/pts/3",
/// "pts/3", "tty1"); `None` for "ssh", X displays and anything odd.
pub(crate) fn tty_from_pam(pam_tty: &str) -> Option<String> {
    let name = pam_tty.strip_prefix("/dev/").unwrap_or(pam_tty);
    let plausible = !name.is_empty()
        && !name.contains("..")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/')
        && (name.starts_with("pts/") || name.starts_with("tty"));
    if !plausible {
        return None;
    }
    pty::stat_tty(&device(name)).ok().map(|_| name.to_owned())
}

/// `/dev/NAME`.
pub(crate) fn device(name: &str) -> PathBuf {
    PathBuf::from("/dev").join(name)
}

/// The login's terminals, from its leader's /proc entries (for a PAM_TTY
/// that names no device, see [`tty_from_pam`]). With `check_notty`, when
/// none is found, the titles of the leader's children are read too
/// (`sshd: user@notty` says there will be none); that needs a pass over
/// /proc, so it is only done until settled.
pub(crate) fn find(
    leader_pid: u32,
    check_notty: bool,
    children: impl FnOnce() -> Vec<u32>,
) -> TtyProbe {
    let ttys: Vec<String> = procfs::pty_masters_of(leader_pid)
        .into_iter()
        .map(|n| format!("pts/{n}"))
        .collect();
    let notty = check_notty
        && ttys.is_empty()
        && children()
            .into_iter()
            .any(|child| title_says_notty(&cmdline(child)));
    TtyProbe { ttys, notty }
}

/// Parent pid → child pids, from one read of each /proc/PID/stat (the kernel
/// here has no /proc/PID/task/TID/children). Vanished entries are skipped.
pub(crate) fn children_index() -> HashMap<u32, Vec<u32>> {
    let mut index: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in procfs::pids() {
        if let Ok(st) = procfs::read_stat(pid) {
            index.entry(st.ppid).or_default().push(pid);
        }
    }
    index
}

/// How long a [`ChildrenCache`] is reused while logins are set up.
const CHILDREN_TTL: Duration = Duration::from_secs(2);

/// Parent → children, for telling logins without a terminal and finding
/// their connection; shared by every login being set up for
/// [`CHILDREN_TTL`] (a login storm scans /proc once per interval, not once
/// per login).
#[derive(Default)]
pub(crate) struct ChildrenCache(Option<(Instant, HashMap<u32, Vec<u32>>)>);

impl ChildrenCache {
    /// The children of `pid`, from an index at most [`CHILDREN_TTL`] old.
    pub(crate) fn children_of(&mut self, pid: u32) -> Vec<u32> {
        let fresh = self
            .0
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < CHILDREN_TTL);
        if !fresh {
            self.0 = Some((Instant::now(), children_index()));
        }
        self.0
            .as_ref()
            .and_then(|(_, index)| index.get(&pid).cloned())
            .unwrap_or_default()
    }
}

/// sshd's session child retitles itself `sshd: USER@notty` when the login has
/// no terminal, and `sshd: USER@pts/N` when it has one.
pub(crate) fn title_says_notty(title: &str) -> bool {
    title.starts_with("sshd") && title.trim_end().ends_with("@notty")
}

/// The process title, NULs shown as spaces; empty if unreadable.
pub(crate) fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// rchar + wchar of `/proc/PID/io`: every byte the process read or wrote,
/// sockets and pipes included.
pub(crate) fn io_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    parse_io(&text)
}

pub(crate) fn parse_io(text: &str) -> Option<u64> {
    let mut total: Option<u64> = None;
    for line in text.lines() {
        let value = line
            .strip_prefix("rchar:")
            .or_else(|| line.strip_prefix("wchar:"));
        if let Some(v) = value {
            let n: u64 = v.trim().parse().ok()?;
            total = Some(total.unwrap_or(0).saturating_add(n));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_titles() {
        assert!(title_says_notty("sshd: alice@notty "));
        assert!(!title_says_notty("sshd: alice@pts/3"));
        assert!(!title_says_notty("bash -c echo @notty"));
    }

    #[test]
    fn io_counters_parse_and_move() {
        assert_eq!(parse_io("rchar: 10\nwchar: 5\nsyscr: 1\n"), Some(15));
        assert_eq!(parse_io("garbage"), None);
        assert_eq!(parse_io("rchar: x\nwchar: 1\n"), None);
        let before = io_bytes(std::process::id()).unwrap();
        std::fs::read("/proc/self/stat").unwrap();
        assert!(io_bytes(std::process::id()).unwrap() > before);
    }

    #[test]
    fn pam_tty_names_a_device_only_when_it_is_one() {
        assert_eq!(tty_from_pam("ssh"), None);
        assert_eq!(tty_from_pam(":0"), None);
        assert_eq!(tty_from_pam("/dev/../etc/passwd"), None);
        assert_eq!(tty_from_pam("pts/999999"), None); // no such device
        assert_eq!(tty_from_pam(""), None);
    }

    #[test]
    fn a_process_without_ptys_has_none() {
        let probe = find(std::process::id(), true, Vec::new);
        assert!(probe.ttys.is_empty());
        assert!(!probe.notty);
    }

    #[test]
    fn children_are_found() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let kids = children_index()
            .remove(&std::process::id())
            .unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&child.id()), "{kids:?}");
    }
}
