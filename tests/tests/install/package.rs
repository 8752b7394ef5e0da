//! The Debian packages and the Quick start, tested where they cannot change
//! the host: tests/package/in-namespace.sh runs as pid 1 of a private mount and
//! pid namespace, with overlays over /etc, /usr, /var, /root and /home (see
//! its header for what it checks). This file runs it, asserts its report, and
//! then asserts that the host is as it was: the same /etc/pam.d, the same
//! package list, and no process left from the namespace.
//!
//! The namespace work is a shell script because it is a sequence of commands
//! (apt-get, pam-auth-update, sshd, ssh, su) whose output a person can read and
//! rerun by hand; this file keeps only the outside view, with std alone.
//!
//! Needs root, and the packages built first by `./scripts/package.sh` (which
//! scripts/test.sh runs before the tests), in `$CARGO_TARGET_DIR/debian` or
//! `target/debian`.

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The two namespaces are not run at once: both are CPU-bound at times, and
/// each one's "host unchanged" check must not see the other's processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => {
            let t = PathBuf::from(t);
            if t.is_absolute() {
                t
            } else {
                workspace().join(t)
            }
        }
        _ => workspace().join("target"),
    }
}

fn deb_dir() -> PathBuf {
    let dir = target_dir().join("debian");
    let debs: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run ./scripts/package.sh first", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(
        debs.len(),
        2,
        "{} must hold the two packages: run ./scripts/package.sh first",
        dir.display()
    );
    dir
}

/// What the tests promise to leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    pam_d: BTreeMap<String, Vec<u8>>,
    packages: String,
}

fn host_state() -> HostState {
    let mut pam_d = BTreeMap::new();
    for e in fs::read_dir("/etc/pam.d").unwrap() {
        let p = e.unwrap().path();
        // The e2e harness writes and removes its own /etc/pam.d/sshd-<prefix>
        // stacks; other test binaries may be running on a shared machine.
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("sshd-") {
            continue;
        }
        let contents = fs::read(&p).unwrap_or_default();
        pam_d.insert(p.display().to_string(), contents);
    }
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n"])
        .output()
        .expect("dpkg-query");
    HostState {
        pam_d,
        packages: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Live processes as (pid, start time, name).
fn processes() -> BTreeSet<(u32, u64, String)> {
    let mut set = BTreeSet::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
        // Field 22 (starttime) is the 20th after the ")".
        let start = tail
            .split_whitespace()
            .nth(19)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        set.insert((pid, start, name));
    }
    set
}

/// in-namespace.sh gives its test users uids from 3,900,000,000 up.
const TEST_UID_MIN: u64 = 3_900_000_000;

/// Whether a process belongs to a package test: a test user's, or one that
/// names the namespace's private directory /run/st-pkg.
fn is_ours(pid: u32) -> bool {
    let uid = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    uid >= TEST_UID_MIN || String::from_utf8_lossy(&cmdline).contains("/run/st-pkg")
}

/// Processes whose pid namespace is `ns` ("pid:[N]").
fn in_pid_namespace(ns: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if fs::read_link(format!("/proc/{pid}/ns/pid"))
            .is_ok_and(|l| l.as_os_str().to_string_lossy() == ns)
        {
            found.push(pid);
        }
    }
    found
}

/// Runs the script in a new namespace; returns (success, its output).
fn run_in_namespace(mode: &str, arg: &Path, limit: Duration) -> (bool, String) {
    let script = workspace().join("tests/package/in-namespace.sh");
    let mut child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
            "--",
        ])
        .arg(&script)
        .arg(mode)
        .arg(arg)
        .env_remove("DESTDIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            // unshare's child is pid 1 of the namespace: killing unshare
            // (--fork forwards the signal) ends it, and the kernel the rest.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = format!(
        "{}\n--- stderr\n{}",
        out_thread.join().unwrap_or_default(),
        err_thread.join().unwrap_or_default()
    );
    match status {
        Some(st) => (st.success(), out),
        None => (false, format!("TIMED OUT after {limit:?}\n{out}")),
    }
}

fn assert_ok_lines(out: &str, expected: &[&str]) {
    for e in expected {
        assert!(
            out.lines().any(|l| l.starts_with("ok: ") && l.contains(e)),
            "no \"ok: …{e}…\" line in the script's report:\n{out}"
        );
    }
}

/// Runs `mode` and asserts the host is as before: /etc/pam.d, the package
/// list, and nothing left running from the namespace.
fn run_checked(mode: &str, arg: &Path, limit: Duration) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let state_before = host_state();
    let procs_before = processes();

    let (ok, out) = run_in_namespace(mode, arg, limit);
    assert!(ok, "in-namespace.sh {mode} failed:\n{out}");
    assert!(
        out.lines()
            .any(|l| l == format!("package-test: passed {mode}")),
        "{out}"
    );

    let ns = out
        .lines()
        .find_map(|l| l.strip_prefix("pidns: "))
        .expect("the script names its pid namespace")
        .to_string();
    let end = Instant::now() + Duration::from_secs(10);
    while !in_pid_namespace(&ns).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        in_pid_namespace(&ns),
        Vec::<u32>::new(),
        "processes left in {ns}"
    );
    // Nothing of ours outside it either: no new process of a test user (their
    // uids are >= TEST_UID_MIN) or naming the namespace's directory. (Other
    // test binaries' own sshd and timeoutd may come and go meanwhile.)
    let new: Vec<_> = processes()
        .difference(&procs_before)
        .filter(|(pid, _, _)| is_ours(*pid))
        .cloned()
        .collect();
    assert!(new.is_empty(), "processes left on the host: {new:?}");
    let state_after = host_state();
    assert!(
        state_after.pam_d == state_before.pam_d,
        "the host's /etc/pam.d changed"
    );
    assert_eq!(
        state_after.packages, state_before.packages,
        "the host's package list changed"
    );
    out
}

fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the package tests need root (sudo ./scripts/test.sh)"
    );
}

#[test]
fn packages_install_enforce_upgrade_remove_and_purge_in_a_private_overlay() {
    require_root();
    let debs = deb_dir();
    let t = Instant::now();
    let out = run_checked("packages", &debs, Duration::from_secs(600));
    assert_ok_lines(
        &out,
        &[
            "timeoutd started by the package without systemd",
            "files, unit, init script, profile, module and man pages installed",
            "conffile defaults idle 15m, max 12h, warn 5m and 1m",
            "pam-auth-update --enable session-timeout",
            // "pam_systemd before pam_session_timeout", or that there is none.
            "common-session: ",
            "timeoutctl reload: non-zero on a rejected file",
            "events reach rsyslog's file",
            "registered (timeoutctl list, event=session_open) through common-session",
            "refused while",
            "control: the same su works after unrevoke",
            "idle login of",
            "session_warn, session_expired reason=idle, session_terminated",
            "while ",
            "login live across the upgrade: ended",
            "remove: daemon stopped, profile out",
            "purge: no conffile, no state dir, no profile",
        ],
    );
    eprintln!("package test: {:.1}s\n{out}", t.elapsed().as_secs_f64());
}

#[test]
fn the_quick_start_through_sudo_uses_the_invoking_users_rust() {
    require_root();
    let t = Instant::now();
    let out = run_checked("quickstart-sudo", &workspace(), Duration::from_secs(1200));
    assert_ok_lines(
        &out,
        &[
            "purged in the overlay",
            "root has no Rust;",
            "sudo ./scripts/install.sh as ",
            "target/ built as ",
            "second sudo ./scripts/install.sh: nothing changed",
            "test.sh's lookup through sudo: root runs cargo",
        ],
    );
    eprintln!(
        "quick start (sudo) test: {:.1}s\n{out}",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn the_quick_start_installs_and_enforces_on_a_host_without_build_dependencies() {
    require_root();
    let t = Instant::now();
    let out = run_checked("quickstart", &workspace(), Duration::from_secs(1200));
    assert_ok_lines(
        &out,
        &[
            "purged in the overlay",
            "./scripts/install.sh from a fresh copy of the clone",
            "packages installed, daemon running, profile enabled",
            "second ./scripts/install.sh: nothing changed",
            "the quick-start install ends a real ssh login",
        ],
    );
    eprintln!("quick start test: {:.1}s\n{out}", t.elapsed().as_secs_f64());
}
