//! Thin wrappers over the system calls the harness needs. Every `unsafe`
//! block of the crate is here (libpam's are in the test kit); callers get safe functions
//! that return `io::Result`.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens a new pty master and unlocks its slave. Returns the master and N of
/// `/dev/pts/N`.
pub fn open_pty() -> io::Result<(File, u32)> {
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/ptmx")?;
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which is a live local.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) })?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, a live local.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    Ok((master, n))
}

/// `fork()`: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
/// Only called from the spawner, which is single-threaded.
pub fn fork() -> io::Result<Option<u32>> {
    // SAFETY: the caller (the spawner process) has one thread, so the child
    // may run arbitrary code.
    let pid = check(unsafe { libc::fork() })?;
    Ok((pid > 0).then_some(pid as u32))
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments, no memory involved.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Makes the tty open on `fd` the caller's controlling terminal (the caller
/// must be a session leader without one).
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// Raw mode: no echo, no line editing, a read returns every byte at once.
pub fn make_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: termios is plain old data; tcgetattr fills it before use.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a live termios.
    check(unsafe { libc::tcgetattr(fd, &mut t) })?;
    // SAFETY: `t` is initialised by tcgetattr above.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: `t` is a valid termios.
    check(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) }).map(drop)
}

pub fn dup(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: plain descriptor duplication; the result is checked.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })
}

pub fn dup2(src: RawFd, dst: RawFd) -> io::Result<()> {
    // SAFETY: plain descriptor duplication onto `dst`; the result is checked.
    check(unsafe { libc::dup2(src, dst) }).map(drop)
}

/// Closes every descriptor from 3 up, except those in `keep`.
pub fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|f| **f >= 3)
        .map(|f| *f as u32)
        .collect();
    keep.sort_unstable();
    let mut from = 3u32;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > from {
            // SAFETY: close_range only closes descriptors; none of the kept
            // ones are in [from, k-1].
            unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0u32) };
        }
        from = k.saturating_add(1);
    }
}

/// Opens `path` read-write without O_NOCTTY, so that a session leader without
/// a terminal acquires it. Returns the raw descriptor (not close-on-exec).
pub fn open_tty_raw(path: &Path) -> io::Result<RawFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    check(unsafe { libc::open(c.as_ptr(), libc::O_RDWR) })
}

/// Sets exactly `sigs` as the blocked signals of the calling thread and
/// returns a signalfd that reports them.
pub fn signalfd_for(sigs: &[i32]) -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain old data, initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t; these only write into it.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
    }
    // SAFETY: `set` is initialised; the old-set pointer may be null.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: -1 asks for a new descriptor; `set` is initialised.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
    // SAFETY: signalfd returned a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal from a signalfd: (signal number, sender pid).
pub fn read_signal(fd: RawFd) -> io::Result<(u32, u32)> {
    // SAFETY: signalfd_siginfo is plain old data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a live buffer of exactly `size` bytes.
    let n = unsafe { libc::read(fd, (&raw mut info).cast(), size) };
    if n != size as isize {
        return Err(io::Error::last_os_error());
    }
    Ok((info.ssi_signo, info.ssi_pid))
}

/// Restores the default action of `sig`.
pub fn default_signal(sig: i32) {
    // SAFETY: installing SIG_DFL has no memory-safety preconditions.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Children are reaped by the kernel (no zombies are left behind).
pub fn auto_reap_children() {
    // SAFETY: installing SIG_IGN for SIGCHLD has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
}

/// Orphaned descendants are reparented to the caller (and, with SIGCHLD
/// ignored, reaped at once) instead of PID 1.
pub fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a flag; no memory involved.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
}

/// Sleeps until a signal is delivered.
pub fn pause() {
    // SAFETY: pause has no preconditions.
    unsafe { libc::pause() };
}

/// The kernel sends `sig` to the caller when its parent exits.
pub fn die_with_parent(sig: i32) {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory involved.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) };
}

pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a live, initialised slice of pollfd of the given length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    check(n).map(|n| n as usize)
}

pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable buffer of buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live buffer of buf.len() bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Drops every group and sets real, effective and saved ids (raw system
/// calls, so only the calling thread of a single-threaded process changes).
pub fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setgroups with a count of 0 does not read the list pointer.
    if unsafe { libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setresgid and setresuid take plain integers.
    if unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `_exit`: no atexit handlers, no destructors (pam_wrapper's would delete
/// the spawner's temporary directory from a forked leader).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; no memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

pub fn pidfd_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: the pidfd is open for the call; a null siginfo is allowed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(pid, sig)` for a child of ours that has not been waited for (so its
/// pid cannot have been reused).
pub fn kill_child(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    check(unsafe { libc::kill(pid as libc::pid_t, sig) }).map(drop)
}

/// Waits for the child `pid` with wait4: its wait status and its peak
/// resident set (ru_maxrss, KiB). The caller must not wait for it otherwise.
pub fn wait_rusage(pid: u32) -> io::Result<(i32, u64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and usage are valid, writable and live for the call.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if rc >= 0 {
            return Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0)));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// An epoll instance.
pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes flags only.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn add(&self, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a live epoll_event; the kernel copies it.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    /// Waits for events; returns (data, events) pairs.
    pub fn wait(&self, max: usize, timeout_ms: i32) -> io::Result<Vec<(u64, u32)>> {
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)];
        // SAFETY: `evs` is a live array of evs.len() entries.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                evs.as_mut_ptr(),
                evs.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        Ok(evs[..n as usize]
            .iter()
            .map(|e| {
                let (data, events) = (e.u64, e.events);
                (data, events)
            })
            .collect())
    }
}

/// A pipe, both ends close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two ints.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned two fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL take integers.
    let fl = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(drop)
}

/// Grows a pipe's buffer (best effort).
pub fn set_pipe_size(fd: RawFd, bytes: i32) {
    // SAFETY: F_SETPIPE_SZ takes an integer.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes) };
}

/// Raises RLIMIT_NOFILE towards `n`: both limits if allowed
/// (CAP_SYS_RESOURCE), else the soft limit to the hard one. Returns the soft
/// limit now in force.
pub fn raise_nofile(n: u64) -> io::Result<u64> {
    // SAFETY: rlimit is plain old data.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is a live out-parameter.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let both = libc::rlimit {
        rlim_cur: lim.rlim_cur.max(n),
        rlim_max: lim.rlim_max.max(n),
    };
    // SAFETY: `both` is initialised.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &both) } == 0 {
        return Ok(both.rlim_cur);
    }
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `soft` is initialised; raising the soft limit to the hard one is always allowed.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) })?;
    Ok(soft.rlim_cur)
}

/// The kernel's clock ticks per second (USER_HZ) for /proc utime and stime.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes an integer.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Connects to a Unix stream socket the way the PAM module does: the connect
/// is non-blocking, so a full listen backlog fails at once (EAGAIN).
pub fn connect_nonblocking(path: &Path) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is an initialised sockaddr_un and `len` is within its size.
    check(unsafe {
        libc::connect(
            fd,
            (&raw const addr).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    })?;
    let s = UnixStream::from(owned);
    s.set_nonblocking(false)?;
    Ok(s)
}

/// Takes over descriptor 0, which our parent set to a connected Unix socket.
pub fn stdin_as_stream() -> UnixStream {
    // SAFETY: the spawner is started with its stdin set to one end of a
    // socketpair; nothing else in the process uses descriptor 0.
    UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes the child of `cmd` start with no signal blocked: the harness blocks
/// SIGINT, SIGTERM and SIGHUP for its signalfd, and every child inherits
/// that mask; a peer under test (sshd, ssh, autolog) must get them.
pub fn unblocked_signals(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec; it only
    // fills a local sigset_t and calls sigprocmask, both async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
