//! Shared harness for the end-to-end tests.
//!
//! Everything is real: an OpenSSH sshd started for the test under its own PAM
//! service name, the OpenSSH client with a pty, users made with `useradd`, the
//! daemon binary and the PAM module from the build directory, and a unix
//! datagram socket standing in for syslog. See `tests/README.md`.
//!
//! Modules by concern:
//! - [`env`]: one test's world ([`Env`]), built by [`EnvBuilder`];
//! - [`pam`], [`sshd`], [`daemon`], [`ssh_client`]: its parts, each an RAII
//!   guard that cleans up on drop, also when a test panics;
//! - [`machine`]: what the tests create on the host — test users
//!   (`machine::users`), the daemon's `/timeoutd-TAG` cgroup subtree
//!   (`machine::cgroup`) — and the sweep that removes leftovers of crashed
//!   earlier runs (`machine::sweep`);
//! - [`syslog`], [`events`], [`procs`]: the syslog sink, its line parser and
//!   the /proc readers, from the test kit (`testkit/`) shared with the benchmark;
//! - [`util`]: bounded waits, helper commands;
//! - [`audit`]: processes by audit session id, state, ignored signals;
//! - [`spawn`]: processes the harness starts as a user, outside any login;
//! - [`login`]: one interactive login driven by a test (type, wait, check the end).

// Test code: a failed assumption here is a failed test, so it may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audit;
pub mod daemon;
pub mod env;
pub mod login;
pub mod machine;
pub mod pam;
pub mod spawn;
pub mod ssh_client;
pub mod sshd;
pub mod util;

pub use daemon::{ConfigExtra, Limits};
pub use env::{Env, EnvBuilder};
pub use login::Login;
pub use pam::FailMode;
pub use ssh_client::{Exit, Ready, Seen, SshOpts, SshSession};
pub use st_testkit::events::LogLine;
/// The test kit shared with the benchmark: /proc readers, the syslog sink
/// and the event-line parser, used here under these names.
pub use st_testkit::{events, procs, syslog};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `<target>/debug`, where `<target>` is `$CARGO_TARGET_DIR` or `<root>/target`.
pub fn build_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => {
            let t = PathBuf::from(t);
            if t.is_absolute() {
                t
            } else {
                workspace_root().join(t)
            }
        }
        _ => workspace_root().join("target"),
    };
    target.join("debug")
}

/// The product binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub timeoutd: PathBuf,
    pub module: PathBuf,
}

/// The sources cargo built `artifact` from, from its dep-info file (`<name>.d`
/// next to it): exactly the files whose change makes cargo rebuild it.
fn dep_info_sources(artifact: &Path) -> Vec<PathBuf> {
    let stem = artifact
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let Ok(text) = std::fs::read_to_string(artifact.with_file_name(format!("{stem}.d"))) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        // Paths are space-separated; a space inside a path is written "\ ".
        let mut cur = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => cur.push(chars.next().unwrap_or(' ')),
                ' ' => {
                    if !cur.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut cur)));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(PathBuf::from(cur));
        }
    }
    out
}

/// The most recently modified of `files`.
fn newest(files: &[PathBuf]) -> Option<(SystemTime, PathBuf)> {
    files
        .iter()
        .filter_map(|f| Some((std::fs::metadata(f).ok()?.modified().ok()?, f.clone())))
        .max_by_key(|(t, _)| *t)
}

/// Finds `timeoutd` and `libpam_session_timeout.so`. Panics with a clear
/// message if either is missing or older than the sources it is built from:
/// `cargo test -p e2e` does not rebuild other packages' binaries.
///
/// `E2E_BIN_DIR=DIR` tests the binaries in DIR instead (a snapshot, or another
/// build); they must exist, but are not compared with the sources.
pub fn binaries() -> Binaries {
    let chosen = std::env::var_os("E2E_BIN_DIR").filter(|d| !d.is_empty());
    let dir = chosen.clone().map(PathBuf::from).unwrap_or_else(build_dir);
    let b = Binaries {
        timeoutd: dir.join("timeoutd"),
        module: dir.join("libpam_session_timeout.so"),
    };
    for (what, path) in [("the daemon", &b.timeoutd), ("the PAM module", &b.module)] {
        let md = std::fs::metadata(path).unwrap_or_else(|e| {
            panic!(
                "{what} is missing: {} ({e}). Run `cargo build --workspace` first \
                 (the e2e tests use the binaries in $CARGO_TARGET_DIR/debug or <workspace>/target/debug).",
                path.display()
            )
        });
        let built = md.modified().expect("mtime");
        if chosen.is_some() {
            continue;
        }
        if let Some((src, file)) = newest(&dep_info_sources(path)) {
            assert!(
                built >= src,
                "{what} {} is older than {}: run `cargo build --workspace` before the e2e tests.",
                path.display(),
                file.display()
            );
        }
    }
    b
}

/// The tests need root (useradd, /etc/pam.d, sshd) and an installed sshd.
/// They fail, never skip, when that is not so.
pub fn require_environment() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the e2e tests must run as root (they create users, write /etc/pam.d and run sshd); euid is {euid}"
    );
    assert!(
        Path::new(sshd::SSHD).exists(),
        "{} is missing: install openssh-server (the e2e tests run a real sshd)",
        sshd::SSHD
    );
    for tool in [
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/sbin/useradd",
        "/usr/sbin/userdel",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: the e2e tests need it"
        );
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh `stt` + 8 hex (our pid) + 6 hex (counter and random) name: unique
/// among concurrent tests and processes, and recognisable by the sweep.
pub fn new_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) & 0xff;
    let p = format!(
        "stt{:08x}{n:02x}{}",
        std::process::id(),
        util::random_hex(4)
    );
    debug_assert!(machine::sweep::creator_pid(&p).is_some());
    p
}
