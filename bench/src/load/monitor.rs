//! The harness side of the leaders: one thread reads the report pipe and
//! watches every leader's pidfd, and stamps what it sees.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::load::leader::{Record, FAILED, PAM, READY, RECORD_SIZE, SIGNAL};
use crate::sys::{self, Epoll};
use crate::util::now_ns;

/// What is known about one leader.
#[derive(Debug, Clone, Default)]
pub struct LeaderState {
    pub pid: u32,
    pub ready_ns: Option<i64>,
    pub pam_rc: Option<i32>,
    /// (signal, sender pid, when the leader read it).
    pub signals: Vec<(u32, u32, i64)>,
    /// When the harness saw the process end (its pidfd became readable).
    pub exit_ns: Option<i64>,
    /// (step, errno) of a failed set-up.
    pub failed: Option<(u32, u32)>,
}

impl LeaderState {
    /// The first arrival of `signo`: (when, sender pid).
    pub fn first(&self, signo: i32) -> Option<(i64, u32)> {
        self.signals
            .iter()
            .find(|(s, _, _)| *s == signo as u32)
            .map(|(_, sender, t)| (*t, *sender))
    }
}

type States = Arc<Mutex<HashMap<u32, LeaderState>>>;

pub struct Monitor {
    states: States,
    epoll: Arc<Epoll>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const PIPE: u64 = 0;

impl Monitor {
    pub fn start(report: OwnedFd) -> io::Result<Monitor> {
        sys::set_nonblocking(report.as_raw_fd())?;
        let epoll = Arc::new(Epoll::new()?);
        epoll.add(report.as_raw_fd(), PIPE, libc::EPOLLIN as u32)?;
        let states: States = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (states, epoll, stop) = (states.clone(), epoll.clone(), stop.clone());
            std::thread::Builder::new()
                .name("monitor".into())
                .spawn(move || run(&report, &epoll, &states, &stop))?
        };
        Ok(Monitor {
            states,
            epoll,
            stop,
            thread: Some(thread),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, HashMap<u32, LeaderState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, idx: u32) {
        self.lock().insert(idx, LeaderState::default());
    }

    /// Stamps the leader's end when its pidfd becomes readable.
    pub fn watch_exit(&self, idx: u32, pid: u32, pidfd: &OwnedFd) -> io::Result<()> {
        self.lock().entry(idx).or_default().pid = pid;
        self.epoll.add(
            pidfd.as_raw_fd(),
            u64::from(idx) + 1,
            (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
        )
    }

    pub fn set_pid(&self, idx: u32, pid: u32) {
        self.lock().entry(idx).or_default().pid = pid;
    }

    pub fn state(&self, idx: u32) -> LeaderState {
        self.lock().get(&idx).cloned().unwrap_or_default()
    }

    /// Forgets leaders that are over (keeps the map small across phases).
    pub fn forget(&self, idxs: impl IntoIterator<Item = u32>) {
        let mut m = self.lock();
        for i in idxs {
            m.remove(&i);
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(report: &OwnedFd, epoll: &Epoll, states: &States, stop: &AtomicBool) {
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Relaxed) {
        let Ok(events) = epoll.wait(4096, 100) else {
            continue;
        };
        for (data, _) in events {
            if data == PIPE {
                drain(report, &mut buf, &mut pending, states);
            } else {
                let t = now_ns();
                let idx = (data - 1) as u32;
                let mut m = states.lock().unwrap_or_else(|e| e.into_inner());
                m.entry(idx).or_default().exit_ns.get_or_insert(t);
            }
        }
    }
}

fn drain(report: &OwnedFd, buf: &mut [u8], pending: &mut Vec<u8>, states: &States) {
    loop {
        match sys::read_fd(report.as_raw_fd(), buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
    let whole = pending.len() / RECORD_SIZE * RECORD_SIZE;
    if whole == 0 {
        return;
    }
    let mut m = states.lock().unwrap_or_else(|e| e.into_inner());
    for chunk in pending[..whole].chunks_exact(RECORD_SIZE) {
        let mut rec = [0u8; RECORD_SIZE];
        rec.copy_from_slice(chunk);
        apply(&mut m, Record::decode(&rec));
    }
    drop(m);
    pending.drain(..whole);
}

fn apply(m: &mut HashMap<u32, LeaderState>, r: Record) {
    let s = m.entry(r.idx).or_default();
    match r.kind {
        READY => {
            s.ready_ns = Some(r.t_ns);
            s.pid = r.a;
        }
        SIGNAL => s.signals.push((r.a, r.b, r.t_ns)),
        PAM => s.pam_rc = Some(r.a as i32),
        FAILED => s.failed = Some((r.a, r.b)),
        _ => {}
    }
}
