//! Session leaders on demand: a pty per leader (the harness keeps the
//! master), forked by the spawner, watched by the monitor.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::load::leader::SpawnRequest;
use crate::load::monitor::{LeaderState, Monitor};
use crate::sys;
use crate::util::{start_time, wait_until};

/// One synthetic login: a live process holding /dev/pts/N as its controlling tty.
pub struct Leader {
    pub idx: u32,
    pub pid: u32,
    pub start_time: u64,
    pub pts: u32,
    /// The pty master; writing to it is typing on the session's terminal.
    pub master: File,
    /// Present when the harness stamps the leader's end (`SpawnSpec::watch_exit`).
    pub pidfd: Option<OwnedFd>,
}

impl Leader {
    pub fn tty(&self) -> String {
        format!("/dev/pts/{}", self.pts)
    }
}

/// Who the leaders are.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    pub uid: u32,
    pub gid: u32,
    /// Register through libpam (service, user) before dropping privileges.
    pub pam: Option<(String, String)>,
    /// Hold a pidfd to stamp the end of each leader. Costs a descriptor per
    /// leader; the scale phase does without (RLIMIT_NOFILE).
    pub watch_exit: bool,
    /// Processes each leader forks once ready (see `SpawnRequest::children`).
    pub children: u32,
    /// Each leader connects to 127.0.0.1:PORT and forks a session process
    /// holding that connection (the witness phase).
    pub connect: Option<u16>,
}

pub struct Fleet {
    spawner: Child,
    ctl: UnixStream,
    replies: BufReader<UnixStream>,
    pub monitor: Monitor,
    next_idx: u32,
}

/// Requests in flight to the spawner at once.
const BATCH: usize = 256;

impl Fleet {
    /// Starts the spawner (`exe __spawner`) with `env` (pam_wrapper's variables).
    pub fn start(exe: &Path, env: &[(String, String)]) -> io::Result<Fleet> {
        let (report_r, report_w) = sys::pipe()?;
        sys::set_pipe_size(std::os::fd::AsRawFd::as_raw_fd(&report_r), 1 << 20);
        let (ours, theirs) = UnixStream::pair()?;
        let spawner = Command::new(exe)
            .arg("__spawner")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(report_w))
            .stderr(Stdio::inherit())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .spawn()?;
        let monitor = Monitor::start(report_r)?;
        Ok(Fleet {
            spawner,
            replies: BufReader::new(ours.try_clone()?),
            ctl: ours,
            monitor,
            next_idx: 0,
        })
    }

    /// The spawner's pid (its CPU time is the harness's).
    pub fn spawner_pid(&self) -> u32 {
        self.spawner.id()
    }

    /// Spawns `n` leaders; returns once all are forked (not necessarily ready).
    pub fn spawn(&mut self, n: usize, spec: &SpawnSpec) -> io::Result<Vec<Leader>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = (n - out.len()).min(BATCH);
            let mut batch = Vec::with_capacity(k);
            let mut text = String::new();
            for _ in 0..k {
                let (master, pts) = sys::open_pty()?;
                let idx = self.next_idx;
                self.next_idx += 1;
                self.monitor.register(idx);
                text.push_str(
                    &SpawnRequest {
                        idx,
                        pts,
                        uid: spec.uid,
                        gid: spec.gid,
                        pam: spec.pam.clone(),
                        children: spec.children,
                        connect: spec.connect,
                    }
                    .to_line(),
                );
                batch.push((idx, pts, master));
            }
            self.ctl.write_all(text.as_bytes())?;
            for (idx, pts, master) in batch {
                let mut line = String::new();
                if self.replies.read_line(&mut line)? == 0 {
                    return Err(io::Error::other("the spawner exited"));
                }
                let pid: i64 = line
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::other(format!("spawner said {line:?}")))?;
                if pid <= 0 {
                    return Err(io::Error::from_raw_os_error(-pid as i32));
                }
                let pid = pid as u32;
                let start_time = start_time(pid).unwrap_or(0);
                let pidfd = if spec.watch_exit {
                    let fd = sys::pidfd_open(pid)?;
                    self.monitor.watch_exit(idx, pid, &fd)?;
                    Some(fd)
                } else {
                    self.monitor.set_pid(idx, pid);
                    None
                };
                out.push(Leader {
                    idx,
                    pid,
                    start_time,
                    pts,
                    master,
                    pidfd,
                });
            }
        }
        Ok(out)
    }

    /// Waits until every leader reported ready; names the first failure.
    pub fn wait_ready(&self, leaders: &[Leader], timeout: Duration) -> Result<(), String> {
        let mut problem = None;
        let done = wait_until(timeout, Duration::from_millis(5), || {
            let m = self.monitor.lock();
            let mut all = true;
            for l in leaders {
                match m.get(&l.idx) {
                    Some(LeaderState {
                        failed: Some((step, errno)),
                        ..
                    }) => {
                        problem = Some(format!(
                            "leader {} failed at step {step}: {}",
                            l.idx,
                            io::Error::from_raw_os_error(*errno as i32)
                        ));
                        return true;
                    }
                    Some(s) if s.ready_ns.is_some() => {}
                    _ => all = false,
                }
            }
            all
        });
        match (done, problem) {
            (_, Some(p)) => Err(p),
            (true, None) => Ok(()),
            (false, None) => {
                let m = self.monitor.lock();
                let ready = leaders
                    .iter()
                    .filter(|l| m.get(&l.idx).is_some_and(|s| s.ready_ns.is_some()))
                    .count();
                let pam = leaders
                    .iter()
                    .filter(|l| m.get(&l.idx).is_some_and(|s| s.pam_rc.is_some()))
                    .count();
                let gone = leaders
                    .iter()
                    .filter(|l| start_time(l.pid) != Some(l.start_time))
                    .count();
                Err(format!(
                    "{ready} of {} leaders ready after {} s ({pam} reported a PAM result, {gone} are gone)",
                    leaders.len(),
                    timeout.as_secs_f64()
                ))
            }
        }
    }

    /// Ends the leaders still alive: SIGKILL through the pidfd of watched
    /// ones (their pidfds stay open until their end is stamped: closing one
    /// takes it out of the monitor's epoll set), a hangup (their pty master
    /// closed) for the others; waits until all are gone.
    pub fn kill(&self, leaders: Vec<Leader>) {
        for l in &leaders {
            if let Some(fd) = &l.pidfd {
                let _ = sys::pidfd_signal(fd, libc::SIGKILL);
            }
        }
        let watched: Vec<u32> = leaders
            .iter()
            .filter(|l| l.pidfd.is_some())
            .map(|l| l.idx)
            .collect();
        wait_until(Duration::from_secs(20), Duration::from_millis(10), || {
            let m = self.monitor.lock();
            watched
                .iter()
                .all(|idx| m.get(idx).is_none_or(|s| s.exit_ns.is_some()))
        });
        let procs: Vec<(u32, u32, u64)> = leaders
            .iter()
            .map(|l| (l.idx, l.pid, l.start_time))
            .collect();
        drop(leaders);
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            procs
                .iter()
                .all(|(_, pid, st)| start_time(*pid) != Some(*st))
        });
        self.monitor.forget(procs.into_iter().map(|p| p.0));
    }

    /// Stops the spawner (it exits when its socket closes).
    pub fn shutdown(mut self) {
        let _ = self.ctl.shutdown(std::net::Shutdown::Both);
        let ok = wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
            matches!(self.spawner.try_wait(), Ok(Some(_)))
        });
        if !ok {
            let _ = self.spawner.kill();
            let _ = self.spawner.wait();
        }
    }
}
