//! A re-validation child ends itself, and the helpers its modules started,
//! when the daemon that started it is gone.
//!
//! The unit runs the daemon with `KillMode=process` (stopping it must not
//! end the logins in its cgroup subtree), so nothing else ends a check that
//! hangs in a module when the daemon is killed: it would live until the
//! module gave up, and pam_exec's helper, in a session of its own, beyond.
//!
//! The daemon names itself in [`PARENT_ENV`]. The child, first thing, opens
//! a pidfd of that process and checks that it is still its parent (so the
//! pidfd names the daemon, not a process that took its pid); then a thread
//! waits on the pidfd and, when it becomes readable, kills the child's own
//! children with their groups and the child's process group, itself
//! included. A child whose daemon is already gone ends at once. The thread
//! blocks every signal, so a signal meant for a module (its own alarm, say)
//! reaches the thread that runs it.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::host::identity::pam_account::kill_children_of;
use crate::host::processes::signals::pidfd_open;

/// The environment variable with the daemon's pid.
pub const PARENT_ENV: &str = "TIMEOUTD_CHECK_PARENT";

/// Starts the watch, if the environment names a parent. Without one (the
/// child mode run by hand) nothing is watched.
pub fn end_with_parent() {
    let Some((parent, pid)) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|p| *p > 1)
        .and_then(|p| Some((p, libc::pid_t::try_from(p).ok()?)))
    else {
        return;
    };
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => end_all(),
        // Out of fds or memory, or filtered: the check runs unwatched, as
        // it did before the watch, rather than failing.
        Err(_) => return,
    };
    if std::os::unix::process::parent_id() != parent {
        end_all();
    }
    let old = block_all_signals();
    // Without the thread the check runs as it did before the watch.
    let _ = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || {
            wait_readable(&fd);
            end_all();
        });
    if let Some(old) = old {
        set_signal_mask(&old);
    }
}

/// Blocks every signal in the calling thread (a thread started meanwhile
/// inherits the mask); returns the mask before.
fn block_all_signals() -> Option<libc::sigset_t> {
    // SAFETY: sigset_t is plain old data; all-zero is a valid value, and
    // sigfillset initialises it.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `all` and `old` are live sigset_t values; sigfillset writes
    // `all`, pthread_sigmask reads `all` and writes `old`.
    let rc = unsafe {
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old)
    };
    (rc == 0).then_some(old)
}

fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is a live sigset_t from pthread_sigmask; a null old set
    // is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// Blocks until `fd` is readable: for a pidfd, until its process exits.
fn wait_readable(fd: &OwnedFd) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one live pollfd and the count passed is 1; poll only
        // writes its `revents`.
        let n = unsafe { libc::poll(&raw mut p, 1, -1) };
        if n > 0
            || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
        {
            return;
        }
    }
}

/// Kills this process's children (and the groups they lead), then its own
/// process group, which it leads (the daemon starts it so); or only itself
/// if it does not lead one. A module's child forked after the read of the
/// children and gone to a session of its own before the group's kill
/// escapes: that takes the daemon's death within those microseconds.
fn end_all() -> ! {
    let me = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    kill_children_of(me);
    // SAFETY: getpgrp(2) takes nothing and cannot fail.
    if unsafe { libc::getpgrp() } == me {
        // SAFETY: kill(2) of the group this process leads, itself included;
        // no memory is passed.
        unsafe { libc::kill(0, libc::SIGKILL) };
    }
    // SAFETY: _exit(2) ends the process at once, without running exit
    // handlers while a module may hold locks in the other thread.
    unsafe { libc::_exit(1) }
}
