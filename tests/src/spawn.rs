//! Processes the harness itself starts as some user (outside any login
//! session), killed and reaped when the guard drops.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::audit::Proc;
use crate::util::{poll_until, wait_child_timeout};

/// A child process owned by the test. Dropping it SIGKILLs and reaps it.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    pub pid: u32,
    /// Start time (`/proc/PID/stat` field 22), read right after spawning.
    pub start_time: u64,
}

impl ChildGuard {
    /// Runs `argv` as `uid`/`gid` (std drops root's supplementary groups),
    /// stdio on /dev/null.
    pub fn spawn_as(uid: u32, gid: u32, argv: &[&str]) -> ChildGuard {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .uid(uid)
            .gid(gid)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?} as uid {uid}: {e}"));
        let pid = child.id();
        let mut g = ChildGuard {
            child: Some(child),
            pid,
            start_time: 0,
        };
        // The exec is done once the argv shows the program (not our own).
        let want = argv[0].rsplit('/').next().unwrap_or(argv[0]).to_string();
        let info = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
            Proc::read(pid).filter(|p| p.argv.first().is_some_and(|a| a.ends_with(&want)))
        })
        .unwrap_or_else(|| panic!("{argv:?} (pid {pid}) did not start"));
        g.start_time = info.start_time;
        g
    }

    /// Is it still running (the same process, not a zombie)?
    pub fn running(&self) -> bool {
        Proc::read(self.pid).is_some_and(|p| p.start_time == self.start_time && p.live())
    }

    pub fn proc(&self) -> Option<Proc> {
        Proc::read(self.pid).filter(|p| p.start_time == self.start_time)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            if wait_child_timeout(&mut c, Duration::from_secs(5)).is_none() {
                eprintln!("e2e cleanup: child {} did not exit", self.pid);
            }
        }
    }
}
