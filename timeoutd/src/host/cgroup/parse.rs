//! Parsing what the kernel says about cgroups: `/proc/self/mountinfo`
//! (where cgroup2 is mounted, and whether read-only), `/proc/PID/cgroup`
//! (a process's cgroup2 path), `cgroup.events` and the kernel release.
//! Pure; nothing here panics on odd input.

use std::path::PathBuf;

/// A cgroup2 mount as mountinfo shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cgroup2Mount {
    pub(crate) mount_point: PathBuf,
    pub(crate) read_only: bool,
}

/// Every cgroup2 mount in mountinfo, in order. A line is
/// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Cgroup2Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            if fstype != "cgroup2" {
                return None;
            }
            let f: Vec<&str> = left.split(' ').collect();
            let mount_point = PathBuf::from(unescape_octal(f.get(4)?));
            let read_only = f.get(5)?.split(',').any(|o| o == "ro");
            Some(Cgroup2Mount {
                mount_point,
                read_only,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040` and the like.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup2 path of `/proc/PID/cgroup` (its `0::PATH` line).
pub(crate) fn parse_proc_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().trim_end_matches(" (deleted)").to_owned())
        .filter(|p| p.starts_with('/'))
}

/// Whether the cgroup `path` is `cgroup` itself or below it.
pub(crate) fn is_within(path: &str, cgroup: &str) -> bool {
    path.strip_prefix(cgroup)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a cgroup is a logind session scope (`.../session-N.scope`).
pub(crate) fn is_logind_session_scope(cgroup: &str) -> bool {
    cgroup
        .rsplit('/')
        .next()
        .and_then(|leaf| leaf.strip_prefix("session-"))
        .and_then(|rest| rest.strip_suffix(".scope"))
        .is_some_and(|n| !n.is_empty())
}

/// `populated 0|1` of `cgroup.events`.
pub(crate) fn parse_events_populated(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.strip_prefix("populated "))
        .and_then(|v| match v.trim() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        })
}

/// Whether a kernel release string (`6.18.0-foo`) is at least MAJOR.MINOR.
pub(crate) fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_is_the_cgroup_or_below_it_never_a_sibling_by_prefix() {
        assert!(is_within("/timeoutd-1/s-4", "/timeoutd-1/s-4"));
        assert!(is_within("/timeoutd-1/s-4/s-9", "/timeoutd-1/s-4"));
        assert!(!is_within("/timeoutd-1/s-42", "/timeoutd-1/s-4"));
        assert!(!is_within("/timeoutd-1", "/timeoutd-1/s-4"));
        assert!(!is_within("/", "/timeoutd-1/s-4"));
    }

    const HYBRID: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 24 0:25 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
28 27 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
29 27 0:27 / /sys/fs/cgroup/cpu rw,nosuid shared:11 - cgroup cgroup rw,cpu
";

    #[test]
    fn finds_cgroup2_in_a_hybrid_layout() {
        assert_eq!(
            parse_mountinfo(HYBRID),
            [Cgroup2Mount {
                mount_point: "/sys/fs/cgroup/unified".into(),
                read_only: false
            }]
        );
        let ro = HYBRID.replace("unified rw,", "unified ro,");
        assert!(parse_mountinfo(&ro)[0].read_only);
        let unified = "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(unified)[0].mount_point,
            PathBuf::from("/sys/fs/cgroup")
        );
        let spaced = "30 1 0:26 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(
            parse_mountinfo(spaced)[0].mount_point,
            PathBuf::from("/mnt/my cg")
        );
        assert!(parse_mountinfo("garbage\n- cgroup2\n\n").is_empty());
    }

    #[test]
    fn reads_the_cgroup2_line_of_proc_pid_cgroup() {
        let t = "12:cpu:/\n0::/user.slice/user-1000.slice/session-3.scope\n";
        let p = parse_proc_cgroup(t).unwrap();
        assert!(is_logind_session_scope(&p));
        assert_eq!(parse_proc_cgroup("0::/\n").as_deref(), Some("/"));
        assert_eq!(parse_proc_cgroup("1:name=x:/\n"), None);
        assert!(!is_logind_session_scope("/timeoutd-1/s-3"));
        assert!(!is_logind_session_scope("/system.slice/session-.scope"));
    }

    #[test]
    fn events_and_kernel_release() {
        assert_eq!(
            parse_events_populated("populated 1\nfrozen 0\n"),
            Some(true)
        );
        assert_eq!(
            parse_events_populated("populated 0\nfrozen 0\n"),
            Some(false)
        );
        assert_eq!(parse_events_populated("frozen 0\n"), None);
        assert!(kernel_at_least("6.18.0-1-amd64\n", 5, 14));
        assert!(kernel_at_least("5.14.0", 5, 14));
        assert!(!kernel_at_least("5.10.0-28-amd64", 5, 14));
        assert!(!kernel_at_least("", 5, 14));
    }
}
