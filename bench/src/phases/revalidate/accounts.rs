//! The revalidate phase's users: 2,000 accounts that exist only in a copy
//! of /etc (its passwd, shadow and group with the users appended, its pam.d
//! with the check's service), bind-mounted over /etc in the daemon's private
//! mount namespace. The daemon and its check children run there; the host's
//! files are never written.
//!
//! The whole directory is mounted, not the three files: a file bind mount
//! sits on the host's dentry, and the kernel detaches every mount on a dentry
//! that is unlinked or renamed over, in every namespace. useradd, userdel and
//! passwd replace /etc/passwd by rename, so on a shared machine (the e2e
//! tests make users) the copies vanished mid-run and the checks answered
//! PAM_USER_UNKNOWN. /etc itself is never renamed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The PAM service the checks run: pam_unix's account phase.
pub const SERVICE: &str = "stb-reval";
/// The first uid (and the users' one gid); far above useradd's range.
pub const UID_BASE: u32 = 3_100_000;

/// User `i`'s name and uid.
pub fn user(i: usize) -> (String, u32) {
    (format!("stbrv{i:05}"), UID_BASE + 1 + i as u32)
}

/// Appends `extra` to the copied file `to` (rewritten, not renamed).
fn append_copy(to: &Path, extra: &str) -> Result<(), String> {
    let mut text = fs::read_to_string(to).map_err(|e| format!("{}: {e}", to.display()))?;
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    text.push_str(extra);
    fs::write(to, text).map_err(|e| format!("{}: {e}", to.display()))
}

/// Writes the copy of /etc into `dir/etc` and returns the wrapper that execs
/// `timeoutd ARGS` (same pid: unshare and sh exec) inside a mount namespace
/// where it is mounted over /etc.
pub fn prepare(dir: &Path, users: usize, timeoutd: &Path) -> Result<PathBuf, String> {
    let etc = dir.join("etc");
    if etc.exists() {
        fs::remove_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
    }
    let cp = Command::new("cp")
        .arg("-a")
        .arg("/etc")
        .arg(&etc)
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    if !cp.success() {
        return Err(format!("cp -a /etc {}: {cp}", etc.display()));
    }
    let (mut passwd, mut shadow) = (String::new(), String::new());
    for i in 0..users {
        let (name, uid) = user(i);
        passwd.push_str(&format!(
            "{name}:x:{uid}:{UID_BASE}::/nonexistent:/usr/sbin/nologin\n"
        ));
        // A locked password, never expiring: pam_unix's account phase says PAM_SUCCESS.
        shadow.push_str(&format!("{name}:!:19000:0:99999:7:::\n"));
    }
    append_copy(&etc.join("passwd"), &passwd)?;
    append_copy(&etc.join("shadow"), &shadow)?;
    append_copy(&etc.join("group"), &format!("stbrv:x:{UID_BASE}:\n"))?;
    fs::set_permissions(etc.join("shadow"), fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    fs::write(
        etc.join("pam.d").join(SERVICE),
        "account required pam_unix.so\n",
    )
    .map_err(|e| format!("writing the PAM service: {e}"))?;
    let wrapper = dir.join("in-namespace.sh");
    let script = format!(
        "#!/bin/sh\n# st-bench: runs \"$@\" in a private mount namespace with the run's account files.\n\
         exec unshare --mount --propagation private /bin/sh -c '\
         mount --bind \"$0\" /etc || exit 1; exec \"$@\"' \
         {} {} \"$@\"\n",
        etc.display(),
        timeoutd.display()
    );
    fs::write(&wrapper, script).map_err(|e| format!("{}: {e}", wrapper.display()))?;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    Ok(wrapper)
}

/// Whether the process `pid` still sees the run's users: /proc/PID/root is
/// resolved in that process's mount namespace.
pub fn in_place(pid: u32) -> bool {
    let (first, _) = user(0);
    fs::read_to_string(format!("/proc/{pid}/root/etc/passwd"))
        .is_ok_and(|t| t.lines().any(|l| l.starts_with(&format!("{first}:"))))
}
