//! The daemon's cgroup subtree as the harness sees it: where cgroup2 is
//! mounted (from mountinfo, never assumed), the `/timeoutd-TAG` base a daemon
//! with a given state dir makes (TAG as `timeoutd/src/host/cgroup.rs`
//! derives it), and removing that base when a test is done with it.
//!
//! Removal is rmdir only, leaves first: the kernel refuses a cgroup that
//! still holds a process, so a cgroup in use is never disturbed.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The cgroup2 mount point of this mount namespace, if any.
pub fn mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// A script in `dir` that runs `timeoutd` where it sees no writable
/// cgroup2: `unshare` into a private mount namespace, remount the cgroup2
/// mount read-only there, then exec the daemon (same pid).
pub fn without_cgroups(dir: &Path, timeoutd: &Path) -> PathBuf {
    let mount = mount().expect("a cgroup2 mount on this machine");
    let path = dir.join("timeoutd-without-cgroups");
    let script = format!(
        "#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh -c 'mount -o remount,bind,ro \"$0\" && exec \"$@\"' {} {} \"$@\"\n",
        mount.display(),
        timeoutd.display()
    );
    fs::write(&path, script).expect("writing the wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod of the wrapper");
    path
}

/// The daemon's TAG for `state_dir`: FNV-1a of its bytes, 8 hex digits
/// (the daemon's `host::cgroup::tag_of`).
pub fn tag_of(state_dir: &Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in state_dir.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// Where a daemon in the root cgroup with this state dir keeps its subtree.
pub fn base_of(state_dir: &Path) -> Option<PathBuf> {
    Some(mount()?.join(format!("timeoutd-{}", tag_of(state_dir))))
}

/// Removes the subtree of the daemon with this state dir, empty cgroups
/// only, deepest first. Returns what is left (empty: nothing), for messages.
pub fn remove_base(state_dir: &Path) -> Vec<PathBuf> {
    let Some(base) = base_of(state_dir) else {
        return Vec::new();
    };
    remove_tree(&base);
    if base.exists() {
        vec![base]
    } else {
        Vec::new()
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    if let Err(e) = fs::remove_dir(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("e2e cleanup: cgroup {} stays: {e}", dir.display());
        }
    }
}

/// Removes the subtree of the daemons of one test's directory when dropped,
/// after its daemon (the tests' daemon keeps its state in `<dir>/state`).
#[derive(Debug)]
pub struct BaseGuard(pub PathBuf);

impl Drop for BaseGuard {
    fn drop(&mut self) {
        remove_base(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same value as the daemon's unit test input (FNV-1a is fixed).
    #[test]
    fn tag_is_fnv1a_of_the_state_dir() {
        assert_eq!(tag_of(Path::new("")), "811c9dc5");
        assert_eq!(tag_of(Path::new("a")), "e40c292c");
        assert_ne!(
            tag_of(Path::new("/tmp/a/state")),
            tag_of(Path::new("/tmp/b/state"))
        );
    }
}
