//! The leaders of live sessions, pinned through pidfds (issue 16):
//!
//! - a leader's exit names its session at once (the pidfd becomes readable),
//!   so a login whose leader died without logging out is looked at then,
//!   not at its next timer;
//! - whether a pinned leader lives is one `poll(2)` of its pidfd, not a read
//!   of `/proc/PID/stat`, on every wake.
//!
//! A leader is pinned when its session is registered or restored, and
//! unpinned when the session is forgotten, when its processes are signalled
//! (the ending's own watch, `exits.rs`, takes the pidfd over) and at its
//! exit. Past the budget (half the open-file limit) a leader is not pinned:
//! its liveness is read from /proc and its session is looked at on its
//! timers, as before.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::core::session::{ProcRef, SessionId};
use crate::host::processes::epoll::{fd_budget, Epoll};
use crate::host::processes::signals;

struct Pin {
    leader: ProcRef,
    fd: OwnedFd,
}

pub(crate) struct LeaderPins {
    /// Tokens are session ids.
    epoll: Epoll,
    by_session: HashMap<SessionId, Pin>,
    by_leader: HashMap<ProcRef, SessionId>,
    /// Asked for, pinned at the next [`LeaderPins::take_gone`] (after the
    /// loop turn's replies, off the login's path), with the pidfd if the
    /// caller has one that names the leader already.
    pending: Vec<(SessionId, ProcRef, Option<OwnedFd>)>,
    gone: Vec<SessionId>,
    max: usize,
}

impl LeaderPins {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self::with_budget(Epoll::new()?, fd_budget(2)))
    }

    fn with_budget(epoll: Epoll, max: usize) -> Self {
        Self {
            epoll,
            by_session: HashMap::new(),
            by_leader: HashMap::new(),
            pending: Vec::new(),
            gone: Vec::new(),
            max,
        }
    }

    /// The fd the event loop polls.
    pub(crate) fn fd(&self) -> RawFd {
        self.epoll.fd()
    }

    /// Whether one more leader would be pinned (the fd budget has room).
    pub(crate) fn has_room(&self) -> bool {
        self.by_session.len() + self.pending.len() < self.max
    }

    /// Whether a session is named already (the loop must not sleep).
    pub(crate) fn has_gone(&self) -> bool {
        !self.gone.is_empty()
    }

    /// Pins the leader of session `id` at the next [`LeaderPins::take_gone`].
    pub(crate) fn pin(&mut self, id: SessionId, leader: ProcRef) {
        self.unpin(id);
        self.pending.push((id, leader, None));
    }

    /// [`LeaderPins::pin`] with `fd`, a pidfd opened before the leader's
    /// start time was checked (so it names the leader).
    pub(crate) fn pin_proven(&mut self, id: SessionId, leader: ProcRef, fd: OwnedFd) {
        self.unpin(id);
        self.pending.push((id, leader, Some(fd)));
    }

    /// Pins what was asked for. A leader already gone names its session;
    /// past the budget nothing is pinned.
    fn settle(&mut self) {
        for (id, leader, proven) in std::mem::take(&mut self.pending) {
            if self.by_session.len() >= self.max || self.by_leader.contains_key(&leader) {
                continue;
            }
            let fd = match proven.map_or_else(|| signals::pin(leader), Ok) {
                Ok(fd) => fd,
                Err(signals::SignalError::Gone) => {
                    self.gone.push(id);
                    continue;
                }
                Err(signals::SignalError::Os(_)) => continue,
            };
            if self
                .epoll
                .add(fd.as_raw_fd(), id.0, libc::EPOLLIN as u32)
                .is_ok()
            {
                self.by_leader.insert(leader, id);
                self.by_session.insert(id, Pin { leader, fd });
            }
        }
    }

    /// Forgets the pin of session `id`, if any.
    pub(crate) fn unpin(&mut self, id: SessionId) {
        self.pending.retain(|(p, _, _)| *p != id);
        if let Some(pin) = self.by_session.remove(&id) {
            self.by_leader.remove(&pin.leader);
        }
    }

    /// The pidfd of `p` if it is the pinned leader of session `id`, taken
    /// out of the pins (and out of their epoll set: its exit is no longer
    /// theirs to report). Another session's pin is left alone.
    pub(crate) fn take(&mut self, id: SessionId, p: ProcRef) -> Option<OwnedFd> {
        self.pending.retain(|(i, l, _)| (*i, *l) != (id, p));
        if self.by_leader.get(&p) != Some(&id) {
            return None;
        }
        self.by_leader.remove(&p);
        let fd = self.by_session.remove(&id)?.fd;
        // Only fails for an fd not in the set, which then reports nothing.
        let _ = self.epoll.remove(fd.as_raw_fd());
        Some(fd)
    }

    /// The pidfd of a pinned leader, left pinned.
    pub(crate) fn fd_of(&self, p: ProcRef) -> Option<&OwnedFd> {
        let id = self.by_leader.get(&p)?;
        self.by_session.get(id).map(|pin| &pin.fd)
    }

    /// Whether a pinned leader lives; `None` when `p` is not pinned.
    pub(crate) fn alive(&self, p: ProcRef) -> Option<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd_of(p)?.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        match n {
            0 => Some(true),
            1 => Some(pfd.revents & libc::POLLIN == 0),
            _ => None,
        }
    }

    /// The sessions whose leader exited since the last call; their pins are gone.
    #[cfg(test)]
    pub(crate) fn take_gone(&mut self) -> Vec<SessionId> {
        self.take_gone_when(true)
    }

    /// [`LeaderPins::take_gone`], asking the kernel for exits only if
    /// `look`: the loop's poll found the set's fd readable (or cannot say).
    /// What was asked for is pinned either way.
    pub(crate) fn take_gone_when(&mut self, look: bool) -> Vec<SessionId> {
        self.settle();
        let mut seen = Vec::new();
        if look {
            self.epoll.take_ready(|token| seen.push(SessionId(token)));
        }
        for id in seen {
            // Closing the pidfd takes it out of the epoll set.
            if self.by_session.contains_key(&id) {
                self.unpin(id);
                self.gone.push(id);
            }
        }
        std::mem::take(&mut self.gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::procfs;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    fn sleeper() -> (Child, ProcRef) {
        let kid = Command::new("sleep")
            .arg("100")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let p = ProcRef {
            pid: kid.id(),
            start_time: procfs::start_time(kid.id()).unwrap(),
        };
        (kid, p)
    }

    /// Takes what is gone, waiting on the epoll fd (up to 5 s) if nothing is yet.
    fn gone_within(pins: &mut LeaderPins) -> Vec<SessionId> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let got = pins.take_gone();
            if !got.is_empty() || Instant::now() > end {
                return got;
            }
            let mut p = libc::pollfd {
                fd: pins.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the call.
            unsafe { libc::poll(&mut p, 1, 100) };
        }
    }

    #[test]
    fn a_leader_proven_through_its_pidfd_is_pinned_with_that_pidfd_even_if_gone_since() {
        let mut pins = LeaderPins::new().unwrap();
        let (mut kid, p) = sleeper();
        let (fd, stat) = signals::pin_with_stat(p).unwrap();
        assert_eq!(stat.pid, p.pid);
        // Gone and reaped before the pin is settled: a pin that opened its
        // own pidfd now would find no process and name the session without
        // a look; the proven pidfd still names the leader, and its exit is
        // read through it.
        kid.kill().unwrap();
        kid.wait().unwrap();
        pins.pin_proven(SessionId(9), p, fd);
        assert!(
            pins.take_gone_when(false).is_empty(),
            "no pidfd opened anew"
        );
        assert_eq!(gone_within(&mut pins), vec![SessionId(9)]);
        assert!(pins.fd_of(p).is_none(), "unpinned at its exit");
    }

    #[test]
    fn without_a_look_a_leader_is_pinned_but_its_exit_waits_for_one() {
        let mut pins = LeaderPins::new().unwrap();
        let (mut kid, p) = sleeper();
        pins.pin(SessionId(4), p);
        assert!(pins.take_gone_when(false).is_empty());
        assert_eq!(pins.alive(p), Some(true), "pinned without a look");
        kid.kill().unwrap();
        kid.wait().unwrap();
        let mut ready = libc::pollfd {
            fd: pins.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call.
        let n = unsafe { libc::poll(&mut ready, 1, 5000) };
        assert_eq!(n, 1, "the set's fd is readable");
        assert!(pins.take_gone_when(false).is_empty(), "not asked");
        assert_eq!(pins.take_gone_when(true), [SessionId(4)]);
    }

    #[test]
    fn a_pinned_leader_is_alive_until_it_exits_and_its_exit_names_the_session_once() {
        let mut pins = LeaderPins::new().unwrap();
        let (mut kid, p) = sleeper();
        pins.pin(SessionId(3), p);
        assert_eq!(pins.alive(p), None, "pinned at the next take_gone");
        assert!(pins.take_gone().is_empty());
        assert_eq!(pins.alive(p), Some(true));
        signals::signal_each(p, &[libc::SIGKILL]).unwrap();
        kid.wait().unwrap();
        assert_eq!(pins.alive(p), Some(false), "reaped: the pidfd is readable");
        assert_eq!(gone_within(&mut pins), [SessionId(3)]);
        assert_eq!(pins.alive(p), None, "unpinned at its exit");
        assert!(pins.take_gone().is_empty(), "named once");
    }

    #[test]
    fn a_wrong_start_time_a_dead_leader_and_the_budget_pin_nothing() {
        let mut pins = LeaderPins::with_budget(Epoll::new().unwrap(), 1);
        let (mut kid, p) = sleeper();
        let reused = ProcRef {
            pid: p.pid,
            start_time: p.start_time + 1,
        };
        pins.pin(SessionId(1), reused);
        assert_eq!(pins.take_gone(), [SessionId(1)], "not that process: gone");
        assert_eq!(pins.alive(reused), None);
        pins.pin(SessionId(2), p);
        let (mut other, q) = sleeper();
        pins.pin(SessionId(4), q);
        assert!(pins.take_gone().is_empty());
        assert_eq!(pins.alive(q), None, "past the budget of 1");
        assert_eq!(pins.alive(p), Some(true));
        pins.unpin(SessionId(2));
        assert_eq!(pins.alive(p), None);
        for (k, r) in [(&mut kid, p), (&mut other, q)] {
            signals::signal_each(r, &[libc::SIGKILL]).unwrap();
            k.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(pins.take_gone().is_empty(), "unpinned: not named");
    }

    #[test]
    fn a_taken_pidfd_signals_the_leader_and_leaves_it_unpinned() {
        let mut pins = LeaderPins::new().unwrap();
        let (mut kid, p) = sleeper();
        pins.pin(SessionId(5), p);
        assert!(pins.take_gone().is_empty());
        assert!(pins.take(SessionId(6), p).is_none(), "not session 6's pin");
        assert_eq!(pins.alive(p), Some(true));
        let fd = pins.take(SessionId(5), p).unwrap();
        assert_eq!(pins.alive(p), None);
        signals::send_through(&fd, &[libc::SIGKILL]).unwrap();
        kid.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(pins.take_gone().is_empty());
        // The fd, still open (the caller holds it), is out of the set: the
        // set is not left readable by it.
        let mut pfd = libc::pollfd {
            fd: pins.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call; a zero timeout never blocks.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
        drop(fd);
    }

    #[test]
    fn many_taken_pins_that_exit_never_hold_take_gone() {
        let mut pins = LeaderPins::new().unwrap();
        let mut kids = Vec::new();
        let mut fds = Vec::new();
        for i in 0..300 {
            let (kid, p) = sleeper();
            pins.pin(SessionId(i), p);
            kids.push((kid, p));
        }
        assert!(pins.take_gone().is_empty());
        for (i, (_, p)) in kids.iter().enumerate() {
            fds.push(pins.take(SessionId(i as u64), *p).unwrap());
        }
        for ((kid, _), fd) in kids.iter_mut().zip(&fds) {
            signals::send_through(fd, &[libc::SIGKILL]).unwrap();
            kid.wait().unwrap();
        }
        assert!(pins.take_gone().is_empty(), "returns, naming nothing");
    }
}
