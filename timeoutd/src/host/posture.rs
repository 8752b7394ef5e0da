//! Weaknesses of the host that let users fake activity or escape the kill,
//! each with a remedy. Logged as `posture_warning` at start; printed by
//! `timeoutd --posture`.

use std::fs;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Short stable key, e.g. `legacy_tiocsti`.
    pub check: &'static str,
    pub problem: String,
    pub remedy: String,
}

/// Runs every check against the live system.
pub fn check_host() -> Vec<Finding> {
    let mut out = Vec::new();
    let tiocsti = fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").ok();
    out.extend(check_tiocsti(tiocsti.as_deref()));
    out.extend(check_audit(Path::new("/proc/self/sessionid").exists()));
    out.extend(check_pam_dir(Path::new("/etc/pam.d")));
    out.extend(check_cgroup());
    out.extend(check_sock_diag(crate::host::tcpinfo::dump_all().is_ok()));
    out
}

/// The key of the cgroup finding.
pub(crate) const CGROUP_CHECK: &str = "cgroup_v2";
pub(crate) const CGROUP_REMEDY: &str = "mount cgroup2 read-write (Linux 5.14 or later, for cgroup.kill); under systemd, give the unit Delegate=yes";

pub(crate) fn cgroup_problem(why: &crate::host::cgroup::Unavailable) -> String {
    format!("no writable cgroup v2 ({why}): sessions are ended by stop-then-kill over their audit session, slower than cgroup.kill, and a fast fork loop stretches its scans")
}

/// Sessions end through `cgroup.kill` only where a writable cgroup v2 with
/// cgroup.kill exists; else the fallback (stop-then-kill) is a weakness.
pub(crate) fn check_cgroup() -> Option<Finding> {
    crate::host::cgroup::probe().map(|why| Finding {
        check: CGROUP_CHECK,
        problem: cgroup_problem(&why),
        remedy: CGROUP_REMEDY.into(),
    })
}

/// Whether the kernel's per-socket TCP figures can be read (NETLINK_SOCK_DIAG
/// with tcp_info): without them no SSH login has its connection as witness.
pub(crate) fn check_sock_diag(readable: bool) -> Option<Finding> {
    (!readable).then(|| Finding {
        check: "sock_diag",
        problem: "the kernel's TCP socket figures cannot be read (NETLINK_SOCK_DIAG with tcp_info): SSH logins fall back to the terminal's timestamps and process I/O, so input faked inside a login (TIOCSTI) and background I/O count as activity".into(),
        remedy: "run timeoutd as root on a kernel with CONFIG_INET_DIAG and CONFIG_INET_TCP_DIAG (modules inet_diag, tcp_diag)".into(),
    })
}

pub(crate) fn check_tiocsti(value: Option<&str>) -> Option<Finding> {
    (value.map(str::trim) == Some("1")).then(|| Finding {
        check: "legacy_tiocsti",
        problem: "dev.tty.legacy_tiocsti=1: a background job can push bytes into its own terminal's input (TIOCSTI). SSH logins are covered: only input their client sent is credited (the connection is the witness; faked input gains nothing and is logged as tamper_suspected reason=no_client_input). Still exposed: local console and serial logins, which have no such witness, SSH logins whose connection cannot be read (session_connection activity_source=pty), and a client that itself sends data into the session (a script typing, a terminal that sends bytes on a timer): that is not told apart from a person".into(),
        remedy: "sysctl -w dev.tty.legacy_tiocsti=0 and persist it in /etc/sysctl.d/".into(),
    })
}

pub(crate) fn check_audit(sessionid_available: bool) -> Option<Finding> {
    (!sessionid_available).then(|| Finding {
        check: "audit_sessionid",
        problem: "audit session ids are unavailable (/proc/self/sessionid is missing): processes that escape with setsid, nohup or a double fork cannot be tied to their login".into(),
        remedy: "use a kernel built with CONFIG_AUDIT and keep pam_loginuid in the login stacks".into(),
    })
}

/// Re-validation through the PAM account stack: off means a user disabled
/// in the directory keeps every shell they have; on, its service must exist.
pub fn check_revalidation(
    cfg: &crate::config::revalidate::RevalidateConfig,
    pam_dir: &Path,
) -> Option<Finding> {
    if cfg.interval.is_none() {
        return Some(Finding {
            check: "revalidate_off",
            problem: "re-validation is off ([daemon] revalidate): a user disabled or expired in the directory (or by chage -E) keeps every session already open, because sshd and sssd check accounts only at login".into(),
            remedy: format!("set [daemon] revalidate = \"5m\" in the config, with /etc/pam.d/{} holding the account stack (@include common-account)", cfg.service),
        });
    }
    (!pam_dir.join(&cfg.service).exists()).then(|| Finding {
        check: "revalidate_service",
        problem: format!("re-validation uses the PAM service {:?}, but {} does not exist: libpam falls back to /etc/pam.d/other", cfg.service, pam_dir.join(&cfg.service).display()),
        remedy: format!("create {} with 'account required pam_unix.so' or '@include common-account'", pam_dir.join(&cfg.service).display()),
    })
}

/// Finds PAM services that use the module without pam_loginuid before it.
pub(crate) fn check_pam_dir(dir: &Path) -> Vec<Finding> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let lines = expand(dir, &name, 0);
        if let Some(f) = check_stack(&name, &lines) {
            out.push(f);
        }
    }
    out
}

/// The session lines of a service file, with `@include` expanded.
fn expand(dir: &Path, name: &str, depth: u32) -> Vec<String> {
    if depth > 8 || name.contains('/') {
        return Vec::new();
    }
    let Ok(text) = fs::read_to_string(dir.join(name)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(inc) = line.strip_prefix("@include") {
            out.extend(expand(dir, inc.trim(), depth + 1));
        } else if line.starts_with("session") || line.starts_with("-session") {
            out.push(line.to_owned());
        }
    }
    out
}

/// A stack that uses the module must run pam_loginuid first, or the session
/// has no audit session id of its own.
pub(crate) fn check_stack(service: &str, session_lines: &[String]) -> Option<Finding> {
    let module_at = session_lines
        .iter()
        .position(|l| l.contains("pam_session_timeout.so"))?;
    let loginuid_before = session_lines[..module_at]
        .iter()
        .any(|l| l.contains("pam_loginuid.so"));
    (!loginuid_before).then(|| Finding {
        check: "pam_loginuid",
        problem: format!(
            "PAM service {service:?} uses pam_session_timeout.so without pam_loginuid before it: its sessions get no audit session id, so only the process subtree can be ended and escaped processes survive"
        ),
        remedy: format!("add 'session required pam_loginuid.so' before the pam_session_timeout.so line in /etc/pam.d/{service}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tiocsti_on_is_a_finding() {
        assert!(check_tiocsti(Some("1\n")).is_some());
        assert!(check_tiocsti(Some("0\n")).is_none());
        assert!(check_tiocsti(None).is_none());
    }

    #[test]
    fn unreadable_sock_diag_is_a_finding() {
        assert!(check_sock_diag(false).is_some());
        assert!(check_sock_diag(true).is_none());
    }

    #[test]
    fn tiocsti_is_no_longer_called_undetectable() {
        let f = check_tiocsti(Some("1")).unwrap();
        assert!(f.problem.contains("legacy_tiocsti=1"));
        assert!(!f.problem.contains("no enforcer can tell"));
        assert!(f.problem.contains("local console"));
    }

    #[test]
    fn missing_audit_is_a_finding() {
        assert!(check_audit(false).is_some());
        assert!(check_audit(true).is_none());
    }

    #[test]
    fn stacks_need_loginuid_first() {
        let good = lines(&[
            "session required pam_loginuid.so",
            "session required pam_session_timeout.so",
        ]);
        assert!(check_stack("sshd", &good).is_none());
        let bad = lines(&[
            "session required pam_session_timeout.so",
            "session required pam_loginuid.so",
        ]);
        assert_eq!(check_stack("login", &bad).unwrap().check, "pam_loginuid");
        let unused = lines(&["session required pam_unix.so"]);
        assert!(check_stack("su", &unused).is_none());
    }

    #[test]
    fn revalidation_off_or_without_its_service_is_a_finding() {
        use crate::config::revalidate::RevalidateConfig;
        let off = RevalidateConfig::default();
        let f = check_revalidation(&off, Path::new("/etc/pam.d")).unwrap();
        assert_eq!(f.check, "revalidate_off");
        assert!(f.remedy.contains("revalidate = \"5m\""), "{}", f.remedy);
        let on = RevalidateConfig {
            interval: Some(std::time::Duration::from_secs(300)),
            service: "st-no-such-service".into(),
            ..RevalidateConfig::default()
        };
        let f = check_revalidation(&on, Path::new("/etc/pam.d")).unwrap();
        assert_eq!(f.check, "revalidate_service");
        let present = RevalidateConfig {
            service: "other".into(),
            ..on
        };
        assert_eq!(check_revalidation(&present, Path::new("/etc/pam.d")), None);
    }

    #[test]
    fn includes_are_followed() {
        let dir = std::env::temp_dir().join(format!("st-posture-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("common-session"), "session required pam_unix.so\n").unwrap();
        fs::write(
            dir.join("good"),
            "session required pam_loginuid.so\n@include common-session\nsession required /x/pam_session_timeout.so\n",
        )
        .unwrap();
        fs::write(
            dir.join("bad"),
            "@include common-session\nsession required pam_session_timeout.so # no loginuid\n",
        )
        .unwrap();
        let found = check_pam_dir(&dir);
        assert_eq!(found.len(), 1);
        assert!(found[0].problem.contains("\"bad\""));
    }
}
