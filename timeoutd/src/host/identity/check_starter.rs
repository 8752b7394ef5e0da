//! Starts the re-validation children on a thread of its own, so that the
//! event loop never waits for one to start.
//!
//! `Command::spawn` uses posix_spawn(3), whose parent is suspended until
//! the child has called execve (CLONE_VFORK). On a 2-core host running four
//! checks at once, that wait reached 7 to 11 ms per child, and the loop
//! started up to four children in a row: its replies waited for them
//! (st-bench's re-validation phase, with the daemon's sleeps recorded by
//! `perf record -g -e sched:sched_switch`). Here the loop hands a start over
//! and polls a socket that rings when one is done.
//!
//! The thread runs at the checks' nice value ([`pam_account::yield_cpu`]);
//! a child inherits it, so even the part of a check before its own
//! `yield_cpu` (the exec, the dynamic loader) yields to the loop.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::host::identity::pam_account::{self, RunningCheck};

/// One child to start: `exe --pam-account-check SERVICE USER`.
#[derive(Debug)]
pub struct StartRequest {
    /// The caller's name for this start, given back with its result.
    pub tag: u64,
    pub exe: PathBuf,
    pub service: String,
    pub user: String,
    pub timeout: Duration,
}

/// A start that is over: the running child, or why it could not start.
#[derive(Debug)]
pub struct Started {
    pub tag: u64,
    pub check: io::Result<RunningCheck>,
}

/// The thread and its two queues.
#[derive(Debug)]
pub struct CheckStarter {
    requests: Option<Sender<StartRequest>>,
    started: Receiver<Started>,
    /// Readable when a start is over (the loop polls it).
    bell: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl CheckStarter {
    /// Starts the thread. It must be created after the daemon blocks its
    /// signals (the signalfd), so that it inherits the mask.
    pub fn new() -> io::Result<Self> {
        let (bell, ringer) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        ringer.set_nonblocking(true)?;
        let (requests, queue) = mpsc::channel::<StartRequest>();
        let (done, started) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("check-starter".into())
            .spawn(move || serve(&queue, &done, &ringer))?;
        Ok(Self {
            requests: Some(requests),
            started,
            bell,
            thread: Some(thread),
        })
    }

    /// Queues a start; the request comes back if the thread is gone.
    pub fn submit(&self, req: StartRequest) -> Result<(), StartRequest> {
        match &self.requests {
            Some(tx) => tx.send(req).map_err(|e| e.0),
            None => Err(req),
        }
    }

    /// The descriptor to poll for readability.
    pub fn bell_fd(&self) -> RawFd {
        self.bell.as_raw_fd()
    }

    /// The starts that are over since the last call.
    pub fn take_started(&mut self) -> Vec<Started> {
        let mut buf = [0u8; 64];
        while matches!((&self.bell).read(&mut buf), Ok(n) if n > 0) {}
        self.started.try_iter().collect()
    }
}

/// The thread: one start at a time, in the order asked, a ring after each.
fn serve(queue: &Receiver<StartRequest>, done: &Sender<Started>, ringer: &UnixStream) {
    pam_account::yield_cpu();
    for req in queue {
        let check = RunningCheck::start(&req.exe, &req.service, &req.user, req.timeout);
        if done
            .send(Started {
                tag: req.tag,
                check,
            })
            .is_err()
        {
            return;
        }
        // A full buffer already rings: a lost byte loses nothing.
        let _ = (&*ringer).write(&[1]);
    }
}

impl Drop for CheckStarter {
    /// Closing the queue ends the thread after its current start; a child
    /// it started that nobody took is killed when its result is dropped.
    fn drop(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::revalidate::CheckOutcome;
    use std::time::Instant;

    fn wait_readable(fd: RawFd) -> bool {
        let mut p = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: poll(2) on one pollfd that lives across the call.
        unsafe { libc::poll(p.as_mut_ptr(), 1, 10_000) == 1 }
    }

    fn request(tag: u64, exe: &str) -> StartRequest {
        StartRequest {
            tag,
            exe: PathBuf::from(exe),
            service: "svc".into(),
            user: "u".into(),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_start_rings_the_bell_and_gives_the_child_back_with_its_tag() {
        let mut s = CheckStarter::new().unwrap();
        s.submit(request(7, "/bin/true")).unwrap();
        assert!(wait_readable(s.bell_fd()), "no ring within 10 s");
        let mut got = s.take_started();
        let until = Instant::now() + Duration::from_secs(10);
        while got.is_empty() && Instant::now() < until {
            assert!(wait_readable(s.bell_fd()));
            got = s.take_started();
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].tag, 7);
        let mut child = got.remove(0).check.unwrap();
        // `true` ignores its arguments and prints no answer.
        let outcome = loop {
            if let Some(o) = child.poll(Instant::now()) {
                break o;
            }
            assert!(Instant::now() < until, "true did not exit");
            std::thread::yield_now();
        };
        assert_eq!(outcome, CheckOutcome::Failed);
        // Drained: nothing rings until the next start.
        assert!(s.take_started().is_empty());
    }

    #[test]
    fn a_binary_that_cannot_start_is_an_error_with_its_tag() {
        let mut s = CheckStarter::new().unwrap();
        s.submit(request(1, "/nonexistent/timeoutd")).unwrap();
        s.submit(request(2, "/bin/true")).unwrap();
        let mut got = Vec::new();
        let until = Instant::now() + Duration::from_secs(10);
        while got.len() < 2 {
            assert!(Instant::now() < until, "only {got:?}");
            assert!(wait_readable(s.bell_fd()));
            got.extend(s.take_started());
        }
        assert_eq!(got[0].tag, 1, "in the order asked");
        assert!(got[0].check.is_err());
        assert_eq!(got[1].tag, 2);
        assert!(got[1].check.is_ok());
    }

    #[test]
    fn the_thread_runs_at_the_checks_nice_value() {
        let s = CheckStarter::new().unwrap();
        let tid = s
            .thread
            .as_ref()
            .map(|t| t.thread().name().map(str::to_owned));
        assert_eq!(tid, Some(Some("check-starter".to_owned())));
        // The thread's nice value, from its stat in /proc (field 19).
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let nice = starter_nice();
            if nice == Some(pam_account::CHILD_NICE) {
                break;
            }
            assert!(Instant::now() < until, "nice {nice:?}");
            std::thread::yield_now();
        }
    }

    /// The nice value of this process's thread named `check-starter`.
    fn starter_nice() -> Option<i32> {
        std::fs::read_dir("/proc/self/task")
            .ok()?
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            .filter(|stat| stat.contains("(check-starter)"))
            .find_map(|stat| stat.rsplit_once(") ")?.1.split(' ').nth(16)?.parse().ok())
    }
}
