//! Small helpers shared by the harness modules: randomness, bounded waits,
//! running helper commands, waiting on children through pidfds.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

/// `n` random bytes from the kernel, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("reading /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// Runs a helper command to completion and returns its output; panics with a
/// clear message if it cannot be started at all.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

/// Runs a helper command and panics with its stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "{:?} {:?} failed ({}): {}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
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

/// SIGTERM, up to `grace` for it to exit, then SIGKILL and reap.
pub fn terminate_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    // SAFETY: the child is not reaped yet (try_wait said so), so its pid is ours.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
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

/// Shows control characters so terminal output is readable in a panic message.
pub fn printable(bytes: &[u8]) -> String {
    let mut s = String::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '\n' => s.push('\n'),
            '\r' => s.push_str("\\r"),
            '\t' => s.push('\t'),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                s.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => s.push(c),
        }
    }
    s
}
