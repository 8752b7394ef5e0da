//! Removes what earlier, crashed runs left behind, once per test process.
//!
//! Every name the harness makes is `stt` + 8 hex digits of the pid of the
//! test process that made it + 6 hex digits. Only leftovers with exactly that
//! shape whose test process is gone are removed, so a concurrent test run in
//! another process is never disturbed:
//! - users `stt<hex14>` (their processes first),
//! - PAM files `/etc/pam.d/sshd-stt<hex14>` and `/etc/pam.d/stt<hex14>-*`,
//! - processes started from a temp dir `/tmp/stt<hex14>/` (sshd, timeoutd),
//! - the empty cgroup subtrees of those daemons (`/timeoutd-TAG`, TAG from
//!   their state dir `/tmp/stt<hex14>/state`),
//! - those temp dirs.

use std::fs;
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use crate::machine::{cgroup, users};
use crate::procs;

/// Length of the hex part of a prefix.
pub const HEX_LEN: usize = 14;

/// If `name` is exactly `stt<14 lowercase hex>`, the pid of its creator.
pub fn creator_pid(name: &str) -> Option<u32> {
    let hex = name.strip_prefix("stt")?;
    if hex.len() != HEX_LEN
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(&hex[..8], 16).ok()
}

/// A leftover: our shape, and its creating process is no longer running.
fn is_leftover(name: &str) -> bool {
    match creator_pid(name) {
        Some(pid) => pid != std::process::id() && !procs::alive(pid),
        None => false,
    }
}

static SWEEP: Once = Once::new();

/// Runs the sweep once per process (the first environment to start calls it,
/// before it creates anything of its own).
pub fn sweep_once() {
    SWEEP.call_once(sweep);
}

fn sweep() {
    let tmp = std::env::temp_dir();
    let stale_dirs: Vec<String> = fs::read_dir(&tmp)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| is_leftover(n))
                .collect()
        })
        .unwrap_or_default();
    // Processes started from a stale temp dir: our sshd (its retitled
    // cmdline still shows the symlink there), timeoutd (--config there), ssh
    // (-i there), and their children.
    if !stale_dirs.is_empty() {
        let prefixes: Vec<String> = stale_dirs
            .iter()
            .map(|d| format!("{}/{d}/", tmp.display()))
            .collect();
        let find = || {
            procs::all_pids()
                .into_iter()
                .filter(|&p| {
                    procs::cmdline(p)
                        .iter()
                        .any(|a| prefixes.iter().any(|pre| a.contains(pre.as_str())))
                })
                .flat_map(|p| std::iter::once(p).chain(procs::descendants(p)))
                .collect::<Vec<u32>>()
        };
        let left = procs::kill_all_until_gone(find, Duration::from_secs(10));
        if !left.is_empty() {
            eprintln!("e2e sweep: leftover processes survived: {left:?}");
        }
    }
    for name in users::all_names() {
        if is_leftover(&name) {
            if let Some(a) = users::lookup(&name) {
                eprintln!("e2e sweep: removing leftover user {name}");
                users::remove_user(&name, a.uid);
            }
        }
    }
    if let Ok(rd) = fs::read_dir("/etc/pam.d") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            // sshd-<prefix>, or <prefix>-<suffix> (extra services of a test).
            let of_prefix = n
                .get(..3 + HEX_LEN)
                .filter(|_| n[3 + HEX_LEN..].starts_with('-'));
            if n.strip_prefix("sshd-").is_some_and(is_leftover)
                || of_prefix.is_some_and(is_leftover)
            {
                eprintln!("e2e sweep: removing leftover /etc/pam.d/{n}");
                let _ = fs::remove_file(e.path());
            }
        }
    }
    for d in &stale_dirs {
        let left = cgroup::remove_base(&tmp.join(d).join("state"));
        if !left.is_empty() {
            eprintln!("e2e sweep: cgroups still in use stay: {left:?}");
        }
    }
    for d in stale_dirs {
        eprintln!("e2e sweep: removing leftover {}/{d}", tmp.display());
        let _ = fs::remove_dir_all(Path::new(&tmp).join(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_shape_is_ours() {
        assert_eq!(creator_pid("stt0000002a00ff10"), Some(42));
        assert_eq!(creator_pid("stt0000002a00ff1"), None);
        assert_eq!(creator_pid("stt0000002a00ff100"), None);
        assert_eq!(creator_pid("stt0000002A00ff10"), None);
        assert_eq!(creator_pid("sttx000002a00ff10"), None);
        assert_eq!(creator_pid("alice"), None);
    }
}
