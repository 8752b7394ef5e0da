//! Daemonizing: detach from the terminal, write the pidfile, and let the
//! original process return only once the daemon is serving, so `timeoutd`
//! exiting 0 means the socket is up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The daemon's end of the readiness pipe. The original process exits 0 when
/// [`Readiness::announce_serving`] writes to it, 1 if it is closed unwritten
/// (start-up failed and the daemon exited).
pub(crate) struct Readiness(OwnedFd);

impl Readiness {
    /// Tells the waiting original process that the daemon is serving, and
    /// points stderr at /dev/null (syslog has everything from here on).
    pub(crate) fn announce_serving(self) {
        let mut f = File::from(self.0);
        let _ = f.write_all(b"ok");
        detach_stderr();
    }
}

/// Detaches from the terminal: fork, setsid, fork. The original process waits
/// until the daemon reports it is serving (or fails) and exits accordingly;
/// only the daemon returns. stdin and stdout go to /dev/null; stderr stays
/// open until [`Readiness::announce_serving`], so start-up errors still reach
/// the admin. Must run before any thread exists.
pub(crate) fn daemonize() -> io::Result<Readiness> {
    let mut fds = [0; 2];
    // SAFETY: fds is a live array of two ints, as pipe2 expects.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (documented precondition).
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => {
            drop(write_end);
            wait_until_serving(read_end);
        }
    }
    drop(read_end);
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: still single-threaded.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => std::process::exit(0),
    }
    std::env::set_current_dir("/")?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in 0..=1 {
        // SAFETY: both descriptors are valid; dup2 atomically replaces the target.
        unsafe { libc::dup2(null.as_raw_fd(), target) };
    }
    Ok(Readiness(write_end))
}

/// The original process: exits 0 once the daemon says it is serving, 1 if
/// the daemon closed the pipe without saying so.
fn wait_until_serving(read_end: OwnedFd) -> ! {
    let mut buf = Vec::new();
    let _ = File::from(read_end).read_to_end(&mut buf);
    std::process::exit(if buf == b"ok" { 0 } else { 1 });
}

/// After start-up, the detached daemon's stderr goes nowhere.
fn detach_stderr() {
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: both descriptors are valid; dup2 atomically replaces stderr.
        unsafe { libc::dup2(null.as_raw_fd(), 2) };
    }
}

/// Writes this process's pid to `path`.
pub(crate) fn write_pidfile(path: &Path) -> io::Result<()> {
    fs::write(path, format!("{}\n", std::process::id()))
}

/// Removes the pidfile at shutdown (a missing one is not an error).
pub(crate) fn remove_pidfile(path: &Path) {
    let _ = fs::remove_file(path);
}
