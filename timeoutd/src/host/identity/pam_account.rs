//! Runs the PAM account phase (`pam_acct_mgmt`) for one user, in a child
//! process of its own, so a module that hangs, leaks or crashes costs one
//! short-lived process and never blocks or grows the daemon.
//!
//! The child is the daemon's own binary started as
//! `timeoutd --pam-account-check SERVICE USER`: it calls libpam with a
//! conversation that accepts informational and error messages and refuses
//! every prompt, prints `pam_result=N` and exits. The parent reads that line;
//! a child that runs past the timeout is killed.

use std::ffi::{c_char, c_int, c_void, CString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::core::revalidate::CheckOutcome;
use crate::host::identity::parent_watch::PARENT_ENV;
use crate::host::processes::signals::{pidfd_open, pidfd_send_signal};

/// The hidden flag of the child mode.
pub const CHILD_FLAG: &str = "--pam-account-check";

const PAM_SILENT: c_int = 0x8000;
const PAM_CONV_ERR: c_int = 19;
const PAM_BUF_ERR: c_int = 5;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
}

/// Answers informational and error messages with empty responses and
/// refuses any prompt: re-validation never asks anyone anything.
unsafe extern "C" fn refuse_prompts(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    _appdata: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    if n == 0 || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    for i in 0..n {
        // SAFETY: libpam passes `num_msg` valid message pointers in `msg`
        // (Linux-PAM's layout: an array of pointers).
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            return PAM_CONV_ERR;
        }
        // SAFETY: m is non-null and points to a pam_message owned by libpam.
        let style = unsafe { (*m).msg_style };
        if style != PAM_ERROR_MSG && style != PAM_TEXT_INFO {
            return PAM_CONV_ERR;
        }
    }
    // SAFETY: calloc of n responses; libpam frees the array (and any resp
    // strings, here all null) with free().
    let replies = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) };
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    // SAFETY: resp is non-null (checked above) and writable by contract.
    unsafe { *resp = replies.cast() };
    0
}

/// The child mode: runs the account phase of `service` for `user` and
/// returns libpam's code. Called only in the short-lived child.
pub fn check_in_this_process(service: &str, user: &str) -> i32 {
    let (Ok(service), Ok(user)) = (CString::new(service), CString::new(user)) else {
        return PAM_CONV_ERR;
    };
    let conv = PamConv {
        conv: Some(refuse_prompts),
        appdata_ptr: std::ptr::null_mut(),
    };
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: service and user are NUL-terminated and outlive the call; conv
    // lives until pam_end below; pamh is a valid out-pointer.
    let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) };
    if rc != 0 || pamh.is_null() {
        return rc;
    }
    // SAFETY: pamh was returned by a successful pam_start and is not yet ended.
    let result = unsafe { pam_acct_mgmt(pamh, PAM_SILENT) };
    // SAFETY: pamh is ended exactly once, here.
    unsafe { pam_end(pamh, result) };
    result
}

/// A check running in a child process. The child leads a process group of
/// its own, so a module's helpers (pam_exec) die with it at the timeout.
/// Nothing here blocks: the exit is seen through a pidfd the caller polls,
/// the answer is read from a non-blocking pipe, and a killed child is reaped
/// later ([`RunningCheck::reaped`]) rather than waited for.
#[derive(Debug)]
pub struct RunningCheck {
    child: Child,
    pidfd: Option<OwnedFd>,
    deadline: Instant,
    killed: bool,
}

impl RunningCheck {
    /// Starts `exe --pam-account-check SERVICE USER` (normally the daemon's
    /// own binary), to be answered within `timeout`.
    pub fn start(
        exe: &std::path::Path,
        service: &str,
        user: &str,
        timeout: Duration,
    ) -> io::Result<Self> {
        let child = Command::new(exe)
            .arg(CHILD_FLAG)
            .arg(service)
            .arg(user)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_clear()
            .env(PARENT_ENV, std::process::id().to_string())
            .process_group(0)
            .spawn()?;
        Ok(Self::watch(child, Instant::now() + timeout))
    }

    fn watch(child: Child, deadline: Instant) -> Self {
        if let Some(out) = &child.stdout {
            set_nonblocking(out.as_raw_fd());
        }
        let pidfd = libc::pid_t::try_from(child.id())
            .ok()
            .and_then(|pid| pidfd_open(pid).ok());
        Self {
            child,
            pidfd,
            deadline,
            killed: false,
        }
    }

    /// A descriptor that becomes readable when the child exits (for poll).
    pub fn exit_fd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The outcome if the check is over (or overdue, then its process group
    /// is killed); `None` while it is still running within its time.
    pub fn poll(&mut self, now: Instant) -> Option<CheckOutcome> {
        match self.child.try_wait() {
            Ok(Some(_)) => Some(self.read_outcome()),
            Ok(None) if now >= self.deadline => {
                self.kill();
                Some(CheckOutcome::TimedOut)
            }
            Ok(None) => None,
            Err(_) => {
                self.kill();
                Some(CheckOutcome::Failed)
            }
        }
    }

    /// When the check must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether a killed child is gone (reaped now if it just died).
    pub fn reaped(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn kill(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            kill_children_of(pid);
            // SAFETY: kill(2) with a negative pid signals the process group
            // the child leads (process_group(0)); no memory is passed. The
            // child is not reaped yet, so its pid (and group) is not reused.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        self.killed = true;
    }

    fn read_outcome(&mut self) -> CheckOutcome {
        let mut out = Vec::new();
        if let Some(pipe) = self.child.stdout.as_mut() {
            let mut buf = [0u8; 512];
            // The child wrote before it exited: what is there is all there
            // is. The pipe is non-blocking, so a module's helper that kept
            // it open cannot hold the daemon.
            while out.len() < 4096 {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        }
        parse_child_output(&String::from_utf8_lossy(&out))
    }
}

impl Drop for RunningCheck {
    fn drop(&mut self) {
        if !self.reaped() {
            self.kill();
            let _ = self.child.try_wait();
        }
    }
}

/// Kills the direct children of `pid` (a module's helpers that left its
/// process group: pam_exec's child calls setsid). Each is pinned with a
/// pidfd and checked to still be `pid`'s child first, so a reused pid is
/// never hit. One read of /proc/PID/task/PID/children, not a /proc scan.
pub(crate) fn kill_children_of(pid: libc::pid_t) {
    let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
    for q in list.unwrap_or_default().split_whitespace() {
        let Ok(q) = q.parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(fd) = pidfd_open(q) else {
            continue;
        };
        if parent_of(q) == Some(pid) {
            // It leads a group of its own (setsid): the group goes too. The
            // pidfd does not reserve q's number, but a reuse needs all of
            // q's group gone and a new process leading a group of that same
            // number in the meantime.
            if pgid_of(q) == Some(q) {
                // SAFETY: kill(2) on the group q leads; no memory is passed.
                unsafe { libc::kill(-q, libc::SIGKILL) };
            }
            let _ = pidfd_send_signal(&fd, libc::SIGKILL);
        }
    }
}

/// Field 4 of /proc/PID/stat (after the command name in parentheses).
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    stat_field(pid, 1)
}

/// Field 5 of /proc/PID/stat: the process group.
fn pgid_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    stat_field(pid, 2)
}

/// The `n`th field after the state in /proc/PID/stat (0 is the state).
fn stat_field(pid: libc::pid_t, n: usize) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(n)?.parse().ok()
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a pipe fd this process owns; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// The child's line `pam_result=N`.
/// The nice value a check runs at. The checks share the CPUs with the
/// event loop that starts them: `timeoutctl revalidate` for 2,000 users
/// kept more than a core busy with them on a 2-core host and delayed the
/// loop's replies by up to 250 ms (st-bench). So they yield to it, and to
/// logins.
pub const CHILD_NICE: i32 = 10;

/// The child's first step: lowers its priority to [`CHILD_NICE`].
pub fn yield_cpu() {
    // SAFETY: setpriority(2) on the calling thread (who = 0), which is the
    // child's only thread at this point; no memory is passed. A failure
    // leaves the priority as it was, which is harmless.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, CHILD_NICE) };
}

pub fn child_output(code: i32) -> String {
    format!("pam_result={code}\n")
}

fn parse_child_output(out: &str) -> CheckOutcome {
    // The last such line: a module may have written to stdout before.
    out.lines()
        .rev()
        .find_map(|l| l.strip_prefix("pam_result="))
        .and_then(|n| n.trim().parse().ok())
        .map_or(CheckOutcome::Failed, CheckOutcome::Returned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::revalidate::code;

    #[test]
    fn a_check_yields_the_cpu() {
        // In a thread of its own: on Linux the call sets the calling
        // thread's nice value, which /proc/thread-self/stat shows.
        let nice = std::thread::spawn(|| {
            yield_cpu();
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after_comm = stat.rsplit_once(") ").unwrap().1;
            // Field 19 (nice); the text after comm starts at field 3.
            after_comm
                .split(' ')
                .nth(16)
                .unwrap()
                .parse::<i32>()
                .unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(nice, CHILD_NICE);
    }

    #[test]
    fn child_output_round_trips_and_garbage_is_a_failure() {
        assert_eq!(
            parse_child_output(&child_output(13)),
            CheckOutcome::Returned(13)
        );
        assert_eq!(parse_child_output(""), CheckOutcome::Failed);
        assert_eq!(parse_child_output("pam_result=x\n"), CheckOutcome::Failed);
    }

    #[test]
    fn a_child_that_hangs_is_killed_at_its_deadline() {
        let child = Command::new("/bin/sh")
            .args(["-c", "setsid sh -c 'sleep 31; true' & sleep 30"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut c = RunningCheck::watch(child, Instant::now() + Duration::from_millis(100));
        assert!(c.exit_fd().is_some());
        assert_eq!(c.poll(Instant::now()), None);
        let late = Instant::now() + Duration::from_millis(200);
        assert_eq!(c.poll(late), Some(CheckOutcome::TimedOut));
        // The whole group died, and the helper in a session of its own.
        let until = Instant::now() + Duration::from_secs(5);
        while !c.reaped() {
            assert!(Instant::now() < until, "the killed child was never reaped");
            std::thread::sleep(Duration::from_millis(5));
        }
        let helper_alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path().join("cmdline"))
                .is_ok_and(|c| c == "sleep\u{0}31\u{0}")
        });
        assert!(!helper_alive, "the setsid helper survived");
    }

    #[test]
    fn a_child_that_answers_is_read() {
        // A helper that keeps stdout open must not block the read.
        let child = Command::new("/bin/sh")
            .args(["-c", "echo noise; echo pam_result=13; sleep 5 &"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut c = RunningCheck::watch(child, Instant::now() + Duration::from_secs(10));
        let until = Instant::now() + Duration::from_secs(5);
        let outcome = loop {
            if let Some(o) = c.poll(Instant::now()) {
                break o;
            }
            assert!(Instant::now() < until, "echo did not finish");
            std::thread::yield_now();
        };
        assert_eq!(outcome, CheckOutcome::Returned(code::ACCT_EXPIRED));
    }

    #[test]
    fn an_unknown_service_or_user_gives_a_pam_error_not_a_crash() {
        // No service file: libpam falls back to /etc/pam.d/other; an unknown
        // user is refused by pam_unix. Either way a code comes back.
        let rc = check_in_this_process("session-timeout-test-none", "no-such-user-xyz");
        assert_ne!(rc, code::SUCCESS);
        assert_eq!(check_in_this_process("bad\0service", "u"), PAM_CONV_ERR);
    }
}
