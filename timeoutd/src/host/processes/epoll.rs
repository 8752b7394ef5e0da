//! A small epoll set that the event loop polls as one fd, shared by the
//! watches on processes' exits (`exits.rs`, `leaders.rs`): add an fd with a
//! token, take what is ready without blocking. An fd closed is out of the set.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Events taken from the kernel per `epoll_wait`.
const BATCH: usize = 256;
/// `epoll_wait` calls per [`Epoll::take_ready`] at most: an fd its caller
/// leaves ready is reported again by every call, and must not hold the
/// loop (the rest is taken at the next call).
const MAX_ROUNDS: usize = 64;

pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes a flags word and returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created epoll fd that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The fd the event loop polls (readable when something here is).
    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Watches `fd` for `events`, reported with `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: both fds are open; `ev` is a valid epoll_event for the call.
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd` (before it is handed to another set).
    pub(crate) fn remove(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: both fds are open; EPOLL_CTL_DEL ignores the event pointer.
        let rc = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Calls `seen` with the token of everything ready now, never blocking.
    pub(crate) fn take_ready(&self, mut seen: impl FnMut(u64)) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        for _ in 0..MAX_ROUNDS {
            // SAFETY: `events` is a writable array of BATCH epoll_events that
            // outlives the call; a zero timeout never blocks.
            let n = unsafe {
                libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), BATCH as i32, 0)
            };
            let Ok(n) = usize::try_from(n) else {
                return; // EINTR or worse: what is ready stays ready
            };
            for ev in &events[..n] {
                seen(ev.u64);
            }
            if n < BATCH {
                return;
            }
        }
    }
}

/// A quarter of the open-file limit, times `quarters`: what one watch may
/// hold, so that the rest stays for connections, signalling and /proc.
pub(crate) fn fd_budget(quarters: usize) -> usize {
    // SAFETY: rlimit is plain old data, filled in by getrlimit.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 256 * quarters;
    }
    usize::try_from(lim.rlim_cur / 4)
        .unwrap_or(usize::MAX)
        .saturating_mul(quarters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_eventfd() -> OwnedFd {
        // SAFETY: eventfd takes an initial value and flags; a counter of 1
        // is readable until read.
        let fd = unsafe { libc::eventfd(1, libc::EFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: `fd` is a fresh eventfd that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn fds_left_ready_by_the_caller_never_hold_take_ready() {
        let set = Epoll::new().unwrap();
        let fds: Vec<OwnedFd> = (0..3 * BATCH as u64).map(|_| ready_eventfd()).collect();
        for (token, fd) in fds.iter().enumerate() {
            set.add(fd.as_raw_fd(), token as u64, libc::EPOLLIN as u32)
                .unwrap();
        }
        let mut seen = 0;
        set.take_ready(|_| seen += 1);
        assert_eq!(seen, MAX_ROUNDS * BATCH, "bounded, not endless");
        set.remove(fds[0].as_raw_fd()).unwrap();
        assert!(
            set.remove(fds[0].as_raw_fd()).is_err(),
            "no longer in the set"
        );
    }
}
