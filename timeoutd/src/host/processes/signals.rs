//! Signalling processes without ever hitting a reused pid.
//!
//! [`signal_each`] first pins the process with a pidfd (`pidfd_open`), then checks
//! that the pid still has the expected start time, then signals through the
//! pidfd (`pidfd_send_signal`). If the pid was reused before `pidfd_open`,
//! the start time differs; if the pinned process exits after the check, the
//! pidfd refers to the dead process and the kernel returns ESRCH. Either way
//! no other process is signalled.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::host::procfs;

pub(crate) use crate::core::session::ProcRef;

/// Why a signal was not sent.
#[derive(Debug)]
pub(crate) enum SignalError {
    /// The process has exited, or its pid now belongs to another process.
    Gone,
    /// Anything else (EPERM, EINVAL, refusing pid 0/1, ...).
    Os(io::Error),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::Gone => f.write_str("process is gone"),
            SignalError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SignalError {}

fn os_error_to_signal_error(e: io::Error) -> SignalError {
    if e.raw_os_error() == Some(libc::ESRCH) {
        SignalError::Gone
    } else {
        SignalError::Os(e)
    }
}

/// `pidfd_open(pid, 0)`.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new fd
    // or -1; no memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(rc)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "pidfd out of range"))?;
    // SAFETY: `fd` is a freshly opened pidfd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
pub(crate) fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: the pidfd is open for the duration of the call; a NULL siginfo
    // pointer is allowed (the kernel fills in a SI_USER siginfo) and flags
    // are 0.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends each of `sigs`, in order, to `p` if and only if the process with
/// pid `p.pid` still has start time `p.start_time`, through one pidfd checked
/// once (SIGHUP and SIGCONT together cost one open and one /proc read, not two).
///
/// - `Err(Gone)`: the process exited or the pid was reused.
/// - `Err(Os(_))`: any other failure; pid 0, pid 1 and pids beyond
///   `pid_t` are refused with `InvalidInput` / `PermissionDenied`.
///
/// Signal 0 only checks that the process exists and is the same one.
pub(crate) fn signal_each(p: ProcRef, sigs: &[i32]) -> Result<(), SignalError> {
    signal_pinned(p, sigs).map(drop)
}

/// [`signal_each`], returning the pidfd it signalled through, which becomes
/// readable when the process exits.
pub(crate) fn signal_pinned(p: ProcRef, sigs: &[i32]) -> Result<OwnedFd, SignalError> {
    let pidfd = pin(p)?;
    send_through(&pidfd, sigs)?;
    Ok(pidfd)
}

/// Sends each of `sigs`, in order, through a pidfd from [`pin`].
pub(crate) fn send_through(pidfd: &OwnedFd, sigs: &[i32]) -> Result<(), SignalError> {
    for &sig in sigs {
        pidfd_send_signal(pidfd, sig).map_err(os_error_to_signal_error)?;
    }
    Ok(())
}

/// A pidfd of `p`, if and only if the process with pid `p.pid` still has
/// start time `p.start_time` (checked after the pidfd is open, so it names
/// that process and no later one). Errors as [`signal_each`]'s.
pub(crate) fn pin(p: ProcRef) -> Result<OwnedFd, SignalError> {
    pin_with_stat(p).map(|(fd, _)| fd)
}

/// [`pin`], with the `stat` line read to check it (its state and parent).
pub(crate) fn pin_with_stat(p: ProcRef) -> Result<(OwnedFd, procfs::Stat), SignalError> {
    let pid = libc::pid_t::try_from(p.pid).map_err(|_| {
        SignalError::Os(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pid out of range",
        ))
    })?;
    if pid == 0 {
        return Err(SignalError::Os(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pid 0",
        )));
    }
    if pid == 1 {
        return Err(SignalError::Os(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "refusing to signal pid 1",
        )));
    }
    let pidfd = pidfd_open(pid).map_err(os_error_to_signal_error)?;
    // The pidfd now pins one process; make sure it is the one we mean.
    match procfs::read_stat(p.pid) {
        Ok(stat) if stat.start_time == p.start_time => Ok((pidfd, stat)),
        _ => Err(SignalError::Gone),
    }
}

/// The name of a signal number, `"SIG?"` if unknown.
pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        0 => "0",
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGWINCH => "SIGWINCH",
        _ => "SIG?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// One signal through [`signal_each`].
    fn signal(p: ProcRef, sig: i32) -> Result<(), SignalError> {
        signal_each(p, &[sig])
    }

    /// Sends `sig` to every process in `procs` (see [`signal`]); returns how
    /// many were signalled. Gone processes and errors are skipped.
    fn signal_all(procs: &[ProcRef], sig: i32) -> usize {
        procs.iter().filter(|p| signal(**p, sig).is_ok()).count()
    }

    fn sleeper() -> (Child, ProcRef) {
        let child = Command::new("sleep")
            .arg("100")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let start_time = procfs::start_time(pid).expect("start time");
        (child, ProcRef { pid, start_time })
    }

    /// Waits (up to 5 s) for the child to exit; returns the signal that
    /// killed it.
    fn death_signal(child: &mut Child) -> Option<i32> {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(st)) = child.try_wait() {
                return st.signal();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    #[test]
    fn kills_the_right_process() {
        let (mut child, p) = sleeper();
        assert!(signal(p, 0).is_ok(), "signal 0 probes");
        signal(p, libc::SIGTERM).expect("SIGTERM");
        assert_eq!(death_signal(&mut child), Some(libc::SIGTERM));
        // Reaped: the pid no longer exists (or belongs to someone else).
        assert!(matches!(signal(p, libc::SIGKILL), Err(SignalError::Gone)));
    }

    #[test]
    fn refuses_wrong_start_time() {
        let (mut child, p) = sleeper();
        for wrong in [
            p.start_time + 1,
            p.start_time.saturating_sub(1),
            0,
            u64::MAX,
        ] {
            let r = signal(
                ProcRef {
                    pid: p.pid,
                    start_time: wrong,
                },
                libc::SIGKILL,
            );
            assert!(matches!(r, Err(SignalError::Gone)), "{wrong}: {r:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(child.try_wait().expect("try_wait").is_none(), "still alive");
        assert_eq!(procfs::start_time(p.pid), Some(p.start_time));
        signal(p, libc::SIGKILL).expect("SIGKILL");
        assert_eq!(death_signal(&mut child), Some(libc::SIGKILL));
    }

    #[test]
    fn zombie_is_not_gone_until_reaped() {
        let (mut child, p) = sleeper();
        signal(p, libc::SIGKILL).expect("kill");
        // Wait for the zombie state without reaping it.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && procfs::read_stat(p.pid).map(|s| s.state).ok() != Some('Z') {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(procfs::read_stat(p.pid).map(|s| s.state).ok(), Some('Z'));
        // Signalling a zombie is harmless and not an error.
        assert!(signal(p, libc::SIGKILL).is_ok());
        assert_eq!(death_signal(&mut child), Some(libc::SIGKILL));
    }

    #[test]
    fn signal_all_counts() {
        let mut kids: Vec<(Child, ProcRef)> = (0..3).map(|_| sleeper()).collect();
        let mut refs: Vec<ProcRef> = kids.iter().map(|(_, p)| *p).collect();
        // One stale entry: same pid as the first, wrong start time.
        refs.push(ProcRef {
            pid: refs[0].pid,
            start_time: refs[0].start_time + 7,
        });
        assert_eq!(signal_all(&refs, libc::SIGHUP), 3);
        for (child, _) in &mut kids {
            assert_eq!(death_signal(child), Some(libc::SIGHUP));
        }
        assert_eq!(signal_all(&refs, libc::SIGKILL), 0);
        assert_eq!(signal_all(&[], libc::SIGKILL), 0);
    }

    #[test]
    fn refuses_init_and_bogus_pids() {
        let init = ProcRef {
            pid: 1,
            start_time: procfs::start_time(1).unwrap_or(0),
        };
        assert!(matches!(signal(init, 0), Err(SignalError::Os(_))));
        for pid in [0, u32::MAX] {
            let r = signal(ProcRef { pid, start_time: 0 }, 0);
            assert!(matches!(r, Err(SignalError::Os(_))), "{pid}: {r:?}");
        }
        // A pid that does not exist.
        let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32768);
        let r = signal(
            ProcRef {
                pid: max + 1,
                start_time: 0,
            },
            0,
        );
        assert!(matches!(r, Err(SignalError::Gone)), "{r:?}");
    }

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGHUP), "SIGHUP");
        assert_eq!(signal_name(libc::SIGCONT), "SIGCONT");
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(12345), "SIG?");
    }
}
