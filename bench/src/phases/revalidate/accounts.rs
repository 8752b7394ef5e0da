//! The revalidate phase's users: 2,000 accounts that exist only in copies of
//! /etc/passwd, /etc/shadow and /etc/group, bind-mounted (with a copy of
//! /etc/pam.d holding the check's service) in the daemon's private mount
//! namespace. The daemon and its check children run there; the host's files
//! are never written.

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

fn append_copy(from: &str, to: &Path, extra: &str) -> Result<(), String> {
    let mut text = fs::read_to_string(from).map_err(|e| format!("{from}: {e}"))?;
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    text.push_str(extra);
    fs::write(to, text).map_err(|e| format!("{}: {e}", to.display()))
}

/// Writes the copies into `dir` and returns the wrapper that execs
/// `timeoutd ARGS` (same pid: unshare and sh exec) inside a mount namespace where they are in place.
pub fn prepare(dir: &Path, users: usize, timeoutd: &Path) -> Result<PathBuf, String> {
    let (mut passwd, mut shadow) = (String::new(), String::new());
    for i in 0..users {
        let (name, uid) = user(i);
        passwd.push_str(&format!(
            "{name}:x:{uid}:{UID_BASE}::/nonexistent:/usr/sbin/nologin\n"
        ));
        // A locked password, never expiring: pam_unix's account phase says PAM_SUCCESS.
        shadow.push_str(&format!("{name}:!:19000:0:99999:7:::\n"));
    }
    append_copy("/etc/passwd", &dir.join("passwd"), &passwd)?;
    append_copy("/etc/shadow", &dir.join("shadow"), &shadow)?;
    append_copy(
        "/etc/group",
        &dir.join("group"),
        &format!("stbrv:x:{UID_BASE}:\n"),
    )?;
    fs::set_permissions(dir.join("shadow"), fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let pam = dir.join("pam.d");
    let cp = Command::new("cp")
        .arg("-a")
        .arg("/etc/pam.d")
        .arg(&pam)
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    if !cp.success() {
        return Err(format!("cp -a /etc/pam.d {}: {cp}", pam.display()));
    }
    fs::write(pam.join(SERVICE), "account required pam_unix.so\n")
        .map_err(|e| format!("writing the PAM service: {e}"))?;
    let wrapper = dir.join("in-namespace.sh");
    let script = format!(
        "#!/bin/sh\n# st-bench: runs \"$@\" in a private mount namespace with the run's account files.\n\
         exec unshare --mount --propagation private /bin/sh -c '\
         for f in passwd shadow group pam.d; do mount --bind \"$0/$f\" \"/etc/$f\" || exit 1; done; exec \"$@\"' \
         {} {} \"$@\"\n",
        dir.display(),
        timeoutd.display()
    );
    fs::write(&wrapper, script).map_err(|e| format!("{}: {e}", wrapper.display()))?;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    Ok(wrapper)
}
