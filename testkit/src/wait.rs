//! Bounded waits: polling a condition nobody can notify us about, and
//! waiting for a child through its pidfd.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Re-checks `cond` every `step` until it returns `Some`, or `timeout` passes.
///
/// For conditions nobody can notify us about (a TCP port starting to listen,
/// a process disappearing from /proc). Every call is bounded.
pub fn poll_until<T>(
    timeout: Duration,
    step: Duration,
    mut cond: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(step.min(deadline - now));
    }
}

/// [`poll_until`] for a yes/no condition: true once `cond` held.
pub fn wait_until(timeout: Duration, step: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll_until(timeout, step, || cond().then_some(())).is_some()
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a
    // new file descriptor that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        None
    } else {
        // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
        Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// Waits up to `timeout` for `child` to exit (pidfd + poll, no busy loop) and
/// reaps it. Returns `None` if it is still running.
pub fn wait_child_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    let Some(fd) = pidfd_open(child.id()) else {
        // The child is already gone (reaped elsewhere) or pidfds are unavailable.
        return child.wait().ok();
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is a valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            return child.wait().ok();
        }
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return child.try_wait().ok().flatten();
    }
}

/// Sends `sig` to `child` unless it has already been reaped.
pub fn signal_child(child: &mut Child, sig: i32) -> bool {
    if !matches!(child.try_wait(), Ok(None)) {
        return false;
    }
    // SAFETY: try_wait said the child is not reaped, so its pid is still ours.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) == 0 }
}

/// SIGTERM, up to `grace` for it to exit, then SIGKILL and reap.
pub fn terminate_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    signal_child(child, libc::SIGTERM);
    if let Some(st) = wait_child_timeout(child, grace) {
        return Some(st);
    }
    let _ = child.kill();
    wait_child_timeout(child, Duration::from_secs(5))
}

/// The last `max` bytes of a file, for failure messages.
pub fn file_tail(path: &std::path::Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => {
            let start = b.len().saturating_sub(max);
            String::from_utf8_lossy(&b[start..]).into_owned()
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
