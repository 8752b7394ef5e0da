//! The real OpenSSH client, `ssh -tt`, driven through pipes.
//!
//! A reader thread collects stdout (with the arrival instant of every chunk)
//! and stderr; a waiter thread records the instant ssh exits. Tests wait on
//! those through a Condvar, never with fixed sleeps.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::printable;

/// What the shell is asked to print to prove it runs: the marker below only
/// appears if the shell evaluated the arithmetic, never from the echo of the
/// typed command itself.
pub const READY_PROBE: &str = "echo st_$((6*7))_ok\n";
pub const READY_MARKER: &str = "st_42_ok";

/// Where a needle was found in the output, and when its last byte arrived.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub start: usize,
    pub end: usize,
    pub at: Instant,
}

/// How and when ssh exited.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub status: ExitStatus,
    pub at: Instant,
}

/// The instants around the readiness probe: `written` is when the probe was
/// written to ssh's stdin (the last input, as late as we can know it),
/// `seen` is when its output arrived back.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub written: Instant,
    pub seen: Instant,
}

#[derive(Default)]
struct State {
    out: Vec<u8>,
    /// (end offset in `out`, arrival instant) of each chunk.
    chunks: Vec<(usize, Instant)>,
    err: Vec<u8>,
    exit: Option<Exit>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

/// The child and whether it was reaped; both only change under this lock, so
/// we never signal a pid that was reaped and could have been reused.
struct Proc {
    child: Child,
    reaped: bool,
}

pub struct SshSession {
    pub spawned_at: Instant,
    pub pid: u32,
    shared: Arc<Shared>,
    proc_: Arc<Mutex<Proc>>,
    stdin: Mutex<Option<ChildStdin>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SshSession(pid {})", self.pid)
    }
}

/// The `ssh` command line for `user@127.0.0.1:port` with `key`, as `opts`
/// says: no config file, no agent, no host key checks, piped stdio.
fn ssh_command(port: u16, user: &str, key: &Path, opts: &SshOpts) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg(if opts.tty { "-tt" } else { "-T" });
    for o in &opts.options {
        cmd.arg("-o").arg(o);
    }
    cmd.arg("-F")
        .arg("/dev/null")
        .arg("-i")
        .arg(key)
        .arg("-p")
        .arg(port.to_string())
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .args(&opts.command)
        // A plain terminal type keeps the remote prompt free of escape sequences.
        .env("TERM", "dumb")
        .env_remove("SSH_AUTH_SOCK")
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A thread that notes the instant ssh exits, then reaps it.
fn watch_exit(pid: u32, sh: Arc<Shared>, pr: Arc<Mutex<Proc>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Wait for the exit without reaping (WNOWAIT), note the instant,
        // then reap under the lock.
        // SAFETY: siginfo_t is plain data; waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid pointer to `info`; pid is our unreaped child.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        let at = Instant::now();
        let mut p = pr.lock().unwrap();
        let status = p.child.wait().expect("reaping ssh");
        p.reaped = true;
        drop(p);
        sh.state.lock().unwrap().exit = Some(Exit { status, at });
        sh.cond.notify_all();
    })
}

fn pump(mut r: impl Read + Send + 'static, shared: Arc<Shared>, is_stdout: bool) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let at = Instant::now();
                    let mut st = shared.state.lock().unwrap();
                    if is_stdout {
                        st.out.extend_from_slice(&buf[..n]);
                        let end = st.out.len();
                        st.chunks.push((end, at));
                    } else {
                        st.err.extend_from_slice(&buf[..n]);
                    }
                    drop(st);
                    shared.cond.notify_all();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from.min(hay.len()));
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// How to run the client beyond the defaults of [`SshSession::spawn`].
#[derive(Debug, Clone)]
pub struct SshOpts {
    /// `-tt` (a pty on the server) or `-T` (none).
    pub tty: bool,
    /// More `-o KEY=VALUE` options (e.g. `ControlMaster=yes`).
    pub options: Vec<String>,
    /// A remote command instead of a login shell.
    pub command: Vec<String>,
    /// More environment for the client (e.g. `SSH_ASKPASS`, to answer a
    /// keyboard-interactive prompt; then also `BatchMode=no` in `options`).
    pub env: Vec<(String, String)>,
}

impl Default for SshOpts {
    fn default() -> Self {
        SshOpts {
            tty: true,
            options: Vec::new(),
            command: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl SshSession {
    /// `ssh -tt` to `user@127.0.0.1:port` with `key`; nothing is sent yet.
    pub fn spawn(port: u16, user: &str, key: &Path) -> SshSession {
        SshSession::spawn_opts(port, user, key, &SshOpts::default())
    }

    /// `ssh` to `user@127.0.0.1:port` with `key`, as `opts` says.
    pub fn spawn_opts(port: u16, user: &str, key: &Path, opts: &SshOpts) -> SshSession {
        let mut cmd = ssh_command(port, user, key, opts);
        let spawned_at = Instant::now();
        let mut child = cmd
            .spawn()
            .expect("spawning ssh (is openssh-client installed?)");
        let pid = child.id();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let stdout = child.stdout.take().expect("stdout pipe");
        let stderr = child.stderr.take().expect("stderr pipe");
        let stdin = child.stdin.take();
        let proc_ = Arc::new(Mutex::new(Proc {
            child,
            reaped: false,
        }));
        let threads = vec![
            pump(stdout, shared.clone(), true),
            pump(stderr, shared.clone(), false),
            watch_exit(pid, shared.clone(), proc_.clone()),
        ];
        SshSession {
            spawned_at,
            pid,
            shared,
            proc_,
            stdin: Mutex::new(stdin),
            threads,
        }
    }

    /// Writes `text` to ssh's stdin (the user typing). Returns the instant the
    /// write completed.
    pub fn send(&self, text: &str) -> std::io::Result<Instant> {
        let mut g = self.stdin.lock().unwrap();
        let w = g
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin closed"))?;
        w.write_all(text.as_bytes())?;
        w.flush()?;
        Ok(Instant::now())
    }

    /// Closes ssh's stdin (EOF from the user).
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap().take();
    }

    /// Waits until `needle` appears in stdout at or after byte `from`.
    pub fn wait_output_from(&self, needle: &str, from: usize, timeout: Duration) -> Option<Seen> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().unwrap();
        loop {
            if let Some(start) = find(&st.out, needle.as_bytes(), from) {
                let end = start + needle.len();
                let at = st
                    .chunks
                    .iter()
                    .find(|(e, _)| *e >= end)
                    .map(|(_, at)| *at)
                    .expect("a chunk covers every byte");
                return Some(Seen { start, end, at });
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self.shared.cond.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Waits until `needle` appears anywhere in stdout.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> Option<Seen> {
        self.wait_output_from(needle, 0, timeout)
    }

    /// Waits until ssh has exited.
    pub fn wait_for_exit(&self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().unwrap();
        loop {
            if let Some(e) = st.exit {
                return Some(e);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self.shared.cond.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// The exit, if ssh has exited.
    pub fn exit(&self) -> Option<Exit> {
        self.shared.state.lock().unwrap().exit
    }

    /// Sends the readiness probe and waits for its marker.
    pub fn shell_ready(&self, timeout: Duration) -> Result<Ready, String> {
        let from = self.output_len();
        let written = self
            .send(READY_PROBE)
            .map_err(|e| format!("writing the probe to ssh: {e}"))?;
        match self.wait_output_from(READY_MARKER, from, timeout) {
            Some(seen) => Ok(Ready {
                written,
                seen: seen.at,
            }),
            None => Err(format!("no {READY_MARKER:?} within {timeout:?}")),
        }
    }

    pub fn output(&self) -> Vec<u8> {
        self.shared.state.lock().unwrap().out.clone()
    }

    pub fn output_len(&self) -> usize {
        self.shared.state.lock().unwrap().out.len()
    }

    pub fn stderr(&self) -> Vec<u8> {
        self.shared.state.lock().unwrap().err.clone()
    }

    /// Output, stderr and exit, readable, for failure messages.
    pub fn describe(&self) -> String {
        let st = self.shared.state.lock().unwrap();
        let exit = match st.exit {
            Some(e) => format!("exited {} after {:?}", e.status, e.at - self.spawned_at),
            None => format!("still running after {:?}", self.spawned_at.elapsed()),
        };
        format!(
            "ssh (pid {}) {exit}\n--- ssh stdout ---\n{}\n--- ssh stderr ---\n{}",
            self.pid,
            printable(&st.out),
            printable(&st.err)
        )
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        self.stdin.lock().unwrap().take();
        {
            let p = self.proc_.lock().unwrap_or_else(|e| e.into_inner());
            if !p.reaped {
                // SAFETY: not reaped (checked under the lock that guards reaping),
                // so the pid is still our child, possibly a zombie.
                unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
