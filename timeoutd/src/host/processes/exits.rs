//! Watching ending sessions for the moment their processes are gone
//! (issue 16), in one epoll set that the event loop polls as one fd:
//!
//! - the pidfds the kill ladder signalled through, kept open: a pidfd
//!   becomes readable when its process exits;
//! - a cgroup's `cgroup.events`: it reports `EPOLLPRI` when `populated`
//!   changes (read once at the start, and after each report, which re-arms it).
//!
//! A session is named by [`ExitWatch::take_ready`] once every pidfd watched
//! for it has become readable, or when its cgroup says `populated 0`. What
//! that means (proving the scope empty) is the engine's to decide.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::core::session::SessionId;
use crate::host::cgroup::parse::parse_events_populated;
use crate::host::processes::epoll::{fd_budget, Epoll};

#[derive(Clone, Copy)]
enum Kind {
    Pid,
    Cgroup,
}

#[derive(Default)]
struct Watch {
    /// Pidfds not yet readable, by token.
    pidfds: HashMap<u64, OwnedFd>,
    /// Whether processes are watched (an empty `pidfds` then means all exited).
    pids_watched: bool,
    cgroup: Option<(u64, File)>,
}

/// The ending sessions being watched.
pub(crate) struct ExitWatch {
    epoll: Epoll,
    tokens: HashMap<u64, (SessionId, Kind)>,
    sessions: HashMap<SessionId, Watch>,
    ready: Vec<SessionId>,
    next_token: u64,
    /// Descriptors held; beyond `max_held` a session is not watched (the
    /// kill ladder's timers end it as before) so signals never run out of fds.
    held: usize,
    max_held: usize,
}

impl ExitWatch {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self {
            epoll: Epoll::new()?,
            tokens: HashMap::new(),
            sessions: HashMap::new(),
            ready: Vec::new(),
            next_token: 0,
            held: 0,
            max_held: fd_budget(1),
        })
    }

    /// The fd the event loop polls (readable when something here is).
    pub(crate) fn fd(&self) -> RawFd {
        self.epoll.fd()
    }

    /// Whether a session is named already (the loop must not sleep).
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether `n` pidfds of `id` could be watched, in place of those of
    /// `id` watched now, within the budget.
    pub(crate) fn has_room(&self, id: SessionId, n: usize) -> bool {
        let now = self.sessions.get(&id).map_or(0, |w| w.pidfds.len());
        self.held - now + n <= self.max_held
    }

    /// Watches the pidfds of the processes of `id` just signalled, in place
    /// of those watched before. None at all (every one was gone): `id` is
    /// named at once. Returns false, watching nothing, past the fd budget.
    pub(crate) fn watch_pids(&mut self, id: SessionId, pidfds: Vec<OwnedFd>) -> bool {
        self.drop_pids(id);
        if self.held + pidfds.len() > self.max_held {
            return false;
        }
        for fd in pidfds {
            let token = self.token(id, Kind::Pid);
            if self
                .add(fd.as_raw_fd(), token, libc::EPOLLIN as u32)
                .is_err()
            {
                self.tokens.remove(&token);
                self.drop_pids(id);
                return false;
            }
            self.held += 1;
            let w = self.sessions.entry(id).or_default();
            w.pidfds.insert(token, fd);
        }
        let w = self.sessions.entry(id).or_default();
        w.pids_watched = true;
        if w.pidfds.is_empty() {
            self.ready.push(id);
        }
        true
    }

    /// Watches the cgroup's `cgroup.events` (once per session). Empty
    /// already: `id` is named at once.
    pub(crate) fn watch_cgroup(&mut self, id: SessionId, events: &Path) {
        if self.sessions.get(&id).is_some_and(|w| w.cgroup.is_some()) || self.held >= self.max_held
        {
            return;
        }
        let Ok(file) = File::open(events) else {
            return;
        };
        let token = self.token(id, Kind::Cgroup);
        // EPOLLPRI only: kernfs reports the file readable at all times.
        if self
            .add(file.as_raw_fd(), token, libc::EPOLLPRI as u32)
            .is_err()
        {
            self.tokens.remove(&token);
            return;
        }
        self.held += 1;
        // The first read arms the report of the next change.
        let empty = populated(&file) == Some(false);
        self.sessions.entry(id).or_default().cgroup = Some((token, file));
        if empty {
            self.ready.push(id);
        }
    }

    /// Forgets the session (it ended, or is not to be watched).
    pub(crate) fn unwatch(&mut self, id: SessionId) {
        self.drop_pids(id);
        if let Some(w) = self.sessions.remove(&id) {
            if let Some((token, _)) = w.cgroup {
                self.tokens.remove(&token);
                self.held -= 1;
            }
        }
    }

    /// The sessions named since the last call (see the module doc).
    #[cfg(test)]
    pub(crate) fn take_ready(&mut self) -> Vec<SessionId> {
        self.take_ready_when(true)
    }

    /// [`ExitWatch::take_ready`], asking the kernel only if `look`: the
    /// loop's poll found the set's fd readable (or cannot say).
    pub(crate) fn take_ready_when(&mut self, look: bool) -> Vec<SessionId> {
        let mut seen = Vec::new();
        if look {
            self.epoll.take_ready(|token| seen.push(token));
        }
        for token in seen {
            self.seen(token);
        }
        let mut out = std::mem::take(&mut self.ready);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn seen(&mut self, token: u64) {
        let Some(&(id, kind)) = self.tokens.get(&token) else {
            return;
        };
        let Some(w) = self.sessions.get_mut(&id) else {
            self.tokens.remove(&token);
            return;
        };
        match kind {
            Kind::Pid => {
                // Closing the pidfd takes it out of the epoll set.
                if w.pidfds.remove(&token).is_some() {
                    self.held -= 1;
                }
                self.tokens.remove(&token);
                if w.pidfds.is_empty() && w.pids_watched {
                    w.pids_watched = false;
                    self.ready.push(id);
                }
            }
            Kind::Cgroup => match w.cgroup.as_ref().map(|(_, f)| populated(f)) {
                Some(Some(true)) => {}
                Some(Some(false)) => self.ready.push(id),
                // Unreadable (removed): stop watching it, and let the engine look.
                _ => {
                    w.cgroup = None;
                    self.tokens.remove(&token);
                    self.held -= 1;
                    self.ready.push(id);
                }
            },
        }
    }

    fn drop_pids(&mut self, id: SessionId) {
        if let Some(w) = self.sessions.get_mut(&id) {
            for token in w.pidfds.keys() {
                self.tokens.remove(token);
            }
            self.held -= w.pidfds.len();
            w.pidfds.clear();
            w.pids_watched = false;
        }
    }

    fn token(&mut self, id: SessionId, kind: Kind) -> u64 {
        self.next_token += 1;
        self.tokens.insert(self.next_token, (id, kind));
        self.next_token
    }

    fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.epoll.add(fd, token, events)
    }
}

/// `populated` of a `cgroup.events` file, read from its start.
fn populated(file: &File) -> Option<bool> {
    let mut buf = [0u8; 256];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_events_populated(std::str::from_utf8(buf.get(..n)?).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::session::ProcRef;
    use crate::host::processes::signals::signal_pinned;
    use crate::host::procfs;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Takes what is ready, waiting on the epoll fd (up to 5 s) if nothing is yet.
    fn ready_within(w: &mut ExitWatch) -> Vec<SessionId> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let got = w.take_ready();
            if !got.is_empty() || Instant::now() > end {
                return got;
            }
            let mut p = libc::pollfd {
                fd: w.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the call.
            unsafe { libc::poll(&mut p, 1, 100) };
        }
    }

    #[test]
    fn a_session_is_named_once_every_watched_process_has_exited() {
        let mut w = ExitWatch::new().unwrap();
        let mut kids: Vec<_> = (0..2)
            .map(|_| {
                Command::new("sleep")
                    .arg("100")
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let refs: Vec<ProcRef> = kids
            .iter()
            .map(|c| ProcRef {
                pid: c.id(),
                start_time: procfs::start_time(c.id()).unwrap(),
            })
            .collect();
        let fds: Vec<OwnedFd> = refs
            .iter()
            .map(|p| signal_pinned(*p, &[0]).unwrap())
            .collect();
        assert!(w.watch_pids(SessionId(7), fds));
        assert!(w.take_ready().is_empty(), "both alive");
        signal_pinned(refs[0], &[libc::SIGKILL]).unwrap();
        kids[0].wait().unwrap();
        // One of two gone: not yet.
        std::thread::sleep(Duration::from_millis(50));
        assert!(w.take_ready().is_empty());
        signal_pinned(refs[1], &[libc::SIGKILL]).unwrap();
        kids[1].wait().unwrap();
        assert_eq!(ready_within(&mut w), [SessionId(7)]);
        assert_eq!(w.held, 0, "the pidfds are closed");
        assert!(w.take_ready().is_empty(), "named once");
    }

    #[test]
    fn nothing_left_to_watch_is_named_at_once_and_unwatch_forgets() {
        let mut w = ExitWatch::new().unwrap();
        assert!(w.watch_pids(SessionId(1), Vec::new()));
        assert!(w.has_ready());
        assert_eq!(w.take_ready(), [SessionId(1)]);
        let mut kid = Command::new("sleep").arg("100").spawn().unwrap();
        let p = ProcRef {
            pid: kid.id(),
            start_time: procfs::start_time(kid.id()).unwrap(),
        };
        assert!(w.watch_pids(SessionId(2), vec![signal_pinned(p, &[0]).unwrap()]));
        w.unwatch(SessionId(2));
        signal_pinned(p, &[libc::SIGKILL]).unwrap();
        kid.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(w.take_ready().is_empty());
        assert_eq!(w.held, 0);
    }
}
