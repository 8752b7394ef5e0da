//! Helpers for `durability.rs` only, beyond the harness's public API:
//! - [`OwnDaemon`]: timeoutd started, killed (-9), stopped (SIGSTOP) and
//!   restarted by the test, on the same config and state dir, logging to the
//!   test's syslog sink (which keeps capturing across restarts);
//! - [`config_text`]: a policy that limits only the test's own user, so a
//!   daemon that adopts the logins of concurrent tests (at start it adopts
//!   every running login through a stack with our module, and every test
//!   here has one) never ends them;
//! - [`ReadOnlyMount`]: an empty read-only tmpfs over a directory (read-only
//!   for root too, unlike chmod);
//! - audit-session scans, the accounting check, and an in-process PAM
//!   latency probe (libpam's `pam_start_confdir`, no pam_wrapper needed).

use std::ffi::{c_char, c_int, c_void, CString};
use std::fs::{self, File, OpenOptions};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::ssh_client::{READY_MARKER, READY_PROBE};
use e2e::syslog::SyslogSink;
use e2e::util::{file_tail, poll_until, run, terminate_child};
use e2e::{procs, Env, FailMode, LogLine, SshSession};
use session_timeout_proto::{read_frame_limited, write_frame, Request, Response, MAX_REPLY};

/// Bound for login plus the readiness probe.
pub const LOGIN: Duration = Duration::from_secs(20);
/// Bound for one event that follows from something already seen.
pub const EVENT: Duration = Duration::from_secs(10);
/// How long the daemon may take to log `daemon_start`.
const START_BOUND: Duration = Duration::from_secs(15);

/// The limits of the test user's rule.
pub struct Policy<'a> {
    pub idle: &'a str,
    pub max: &'a str,
    pub warn: &'a [&'a str],
    pub grace: &'a str,
}

/// `[defaults]` limit nothing; one rule limits `user`. Logins of our sshd
/// (`sshd-<prefix>`, so the default `adopt = ["sshd", "login"]` would miss
/// it) are adopted.
pub fn config_text(
    socket: &Path,
    syslog: &Path,
    state_dir: &Path,
    user: &str,
    p: &Policy,
) -> String {
    let warn: Vec<String> = p.warn.iter().map(|w| format!("{w:?}")).collect();
    format!(
        "# Written by durability.rs.\n\
         [daemon]\nsocket = {:?}\nsyslog = {:?}\nstate_dir = {:?}\nadopt = [\"sshd*\"]\n\n\
         [defaults]\nidle = \"off\"\nmax = \"off\"\nwarn = []\n\n\
         [[rule]]\nname = \"this-test\"\nusers = [{user:?}]\n\
         idle = {:?}\nmax = {:?}\nwarn = [{}]\ngrace = {:?}\n",
        socket.display().to_string(),
        syslog.display().to_string(),
        state_dir.display().to_string(),
        p.idle,
        p.max,
        warn.join(", "),
        p.grace,
    )
}

/// A test world whose daemon the test runs itself: sshd with our module
/// (fail=open, `timeout_ms=500`) pointing at `env.socket`, nothing listening
/// yet, and a config for [`OwnDaemon`] in `<dir>/own-timeoutd.toml` with the
/// state dir `<dir>/state` (0700).
pub fn world(p: &Policy) -> (Env, PathBuf) {
    let env = Env::builder()
        .daemon(false)
        .module(Some(FailMode::Open))
        .start();
    let state = env.dir().join("state");
    fs::create_dir(&state).expect("creating the state dir");
    fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod state dir");
    let config = env.dir().join("own-timeoutd.toml");
    let text = config_text(&env.socket, &env.syslog.path, &state, env.user.name(), p);
    fs::write(&config, text).expect("writing the config");
    (env, config)
}

/// Rewrites this test's PAM service file (read by sshd at every login).
pub fn edit_pam(env: &Env, from: &str, to: &str) {
    let pam = env.pam.as_ref().expect("a PAM service");
    let text = pam.contents();
    assert!(
        text.contains(from),
        "{from:?} not in {}",
        pam.path.display()
    );
    fs::write(&pam.path, text.replace(from, to)).expect("rewriting the PAM file");
}

/// A timeoutd the test controls. Dropping it continues (if stopped) and
/// terminates it.
pub struct OwnDaemon {
    child: Child,
    pub log: PathBuf,
    /// Just before the process was spawned: everything it does comes after.
    pub spawned_at: Instant,
    /// When its `daemon_start` arrived.
    pub started_at: Instant,
}

impl OwnDaemon {
    /// Starts `timeoutd --config CONFIG --foreground` and waits for the
    /// `daemon_start` that carries its pid (earlier runs logged theirs too).
    pub fn start(env: &Env, config: &Path) -> OwnDaemon {
        let bins = e2e::binaries();
        let log = env.dir().join("own-timeoutd.log");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("daemon log");
        let spawned_at = Instant::now();
        let child = Command::new(&bins.timeoutd)
            .arg("--config")
            .arg(config)
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("starting timeoutd");
        let mut d = OwnDaemon {
            child,
            log,
            spawned_at,
            started_at: Instant::now(),
        };
        let pid = d.pid().to_string();
        let deadline = Instant::now() + START_BOUND;
        loop {
            let slice = Duration::from_millis(100);
            if let Some(l) = env
                .syslog
                .wait_event("daemon_start", &[("pid", &pid)], slice)
            {
                d.started_at = l.at;
                d.wait_serving(env, deadline);
                return d;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("timeoutd exited at start ({st})\n{}", d.report(env));
            }
            assert!(
                Instant::now() < deadline,
                "no daemon_start pid={pid} within {START_BOUND:?}\n{}",
                d.report(env)
            );
        }
    }

    /// Ready means: it answers a `status` request (a login made before the
    /// daemon serves waits for its reply until the module's timeout).
    fn wait_serving(&mut self, env: &Env, deadline: Instant) {
        let body = Request::Status.encode();
        let answered = poll_until(
            deadline.saturating_duration_since(Instant::now()),
            Duration::from_millis(20),
            || {
                let mut s = UnixStream::connect(&env.socket).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                write_frame(&mut s, &body).ok()?;
                let reply = read_frame_limited(&mut s, MAX_REPLY).ok()?;
                Response::decode(&reply).ok()
            },
        );
        assert!(
            matches!(answered, Some(Response::Sessions(_))),
            "the daemon did not answer status within {START_BOUND:?}: {answered:?}\n{}",
            self.report(env)
        );
        eprintln!(
            "timeoutd {} served {} ms after its daemon_start",
            self.pid(),
            self.started_at.elapsed().as_millis()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit (a normal stop).
    pub fn terminate(&mut self) {
        assert!(
            terminate_child(&mut self.child, Duration::from_secs(10)).is_some(),
            "timeoutd did not stop"
        );
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: our child, not reaped (callers only signal a running daemon).
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// The test's report plus this daemon's output (all runs).
    pub fn report(&self, env: &Env) -> String {
        format!(
            "{}--- own timeoutd output ---\n{}\n",
            env.report(None),
            file_tail(&self.log, 6000)
        )
    }
}

impl Drop for OwnDaemon {
    fn drop(&mut self) {
        if self.running() {
            self.signal(libc::SIGCONT);
            let _ = terminate_child(&mut self.child, Duration::from_secs(5));
        }
    }
}

/// An empty read-only tmpfs mounted over `dir` (root cannot write to it
/// either); unmounted on drop.
pub struct ReadOnlyMount(pub PathBuf);

impl ReadOnlyMount {
    pub fn over(dir: &Path) -> ReadOnlyMount {
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,mode=0700,size=64k", "e2e-ro-state"])
            .arg(dir));
        assert!(
            out.status.success(),
            "mount -t tmpfs -o ro over {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let m = ReadOnlyMount(dir.to_path_buf());
        assert!(
            File::create(dir.join("probe")).is_err(),
            "root can still write to {}",
            dir.display()
        );
        m
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let out = run(Command::new("umount").arg(&self.0));
        if !out.status.success() {
            // Busy (a daemon still has it open): detach it now, freed when closed.
            let lazy = run(Command::new("umount").arg("-l").arg(&self.0));
            if !lazy.status.success() {
                eprintln!("e2e cleanup: cannot unmount {}", self.0.display());
            }
        }
    }
}

/// `/proc/PID/sessionid`.
pub fn sessionid_of(pid: u32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/sessionid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Live (non-zombie) processes of audit session `sid`.
pub fn pids_of_sessionid(sid: u32) -> Vec<u32> {
    procs::all_pids()
        .into_iter()
        .filter(|&p| sessionid_of(p) == Some(sid))
        .filter(|&p| procs::stat(p).is_some_and(|s| s.state != 'Z'))
        .collect()
}

/// Waits until no process of audit session `sid` is left.
pub fn wait_session_gone(sid: u32, bound: Duration) -> bool {
    poll_until(bound, Duration::from_millis(50), || {
        pids_of_sessionid(sid).is_empty().then_some(())
    })
    .is_some()
}

/// Waits for `n` distinct sessions of `user` to be logged with `event`;
/// returns their lines in arrival order.
pub fn wait_sessions(
    sink: &SyslogSink,
    event: &str,
    user: &str,
    n: usize,
    bound: Duration,
) -> Vec<LogLine> {
    let mut seen: Vec<LogLine> = Vec::new();
    let deadline = Instant::now() + bound;
    while seen.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let ids: Vec<String> = seen
            .iter()
            .filter_map(|l| l.get("id").map(str::to_string))
            .collect();
        let next = sink.wait_line(left, |l| {
            l.matches(event, &[("user", user)])
                && l.get("id").is_some_and(|id| !ids.iter().any(|s| s == id))
        });
        match next {
            Some(l) => seen.push(l),
            None => break,
        }
    }
    seen
}

/// Every session of `user` that was opened or adopted has exactly one
/// `session_close` or `session_terminated`. Returns the problems found.
pub fn accounting_problems(sink: &SyslogSink, user: &str) -> Vec<String> {
    let lines = sink.lines();
    let mut problems = Vec::new();
    let begun: Vec<&LogLine> = lines
        .iter()
        .filter(|l| {
            (l.matches("session_open", &[("user", user)])
                || l.matches("session_adopted", &[("user", user)]))
                && l.get("id").is_some()
        })
        .collect();
    if begun.is_empty() {
        problems.push(format!("no session_open or session_adopted for {user}"));
    }
    for b in &begun {
        let id = b.get("id").unwrap_or_default();
        let opens = lines
            .iter()
            .filter(|l| {
                l.get("id") == Some(id)
                    && matches!(l.event(), Some("session_open" | "session_adopted"))
            })
            .count();
        let ends = lines
            .iter()
            .filter(|l| {
                l.get("id") == Some(id)
                    && matches!(l.event(), Some("session_close" | "session_terminated"))
            })
            .count();
        if opens != 1 || ends != 1 {
            problems.push(format!(
                "session {id}: {opens} open/adopted, {ends} close/terminated"
            ));
        }
    }
    problems
}

// ---- in-process PAM ----

const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_CONV_ERR: c_int = 19;

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const c_void, *mut *mut c_void, *mut c_void) -> c_int,
    appdata: *mut c_void,
}

extern "C" fn no_conversation(
    _n: c_int,
    _msg: *mut *const c_void,
    _resp: *mut *mut c_void,
    _data: *mut c_void,
) -> c_int {
    PAM_CONV_ERR
}

type StartConfdir = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const PamConv,
    *const c_char,
    *mut *mut c_void,
) -> c_int;
type HandleFlags = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type SetItem = unsafe extern "C" fn(*mut c_void, c_int, *const c_void) -> c_int;

/// libpam, loaded into this process, running stacks from a directory of our
/// own (`pam_start_confdir`, Linux-PAM 1.4+): no /etc/pam.d, no wrapper.
pub struct Pam {
    confdir: CString,
    start: StartConfdir,
    open: HandleFlags,
    close: HandleFlags,
    end: HandleFlags,
    set_item: SetItem,
}

fn sym<T: Copy>(lib: *mut c_void, name: &str) -> T {
    let c = CString::new(name).expect("symbol name");
    // SAFETY: lib is a live dlopen handle; c is NUL-terminated.
    let p = unsafe { libc::dlsym(lib, c.as_ptr()) };
    assert!(!p.is_null(), "libpam has no {name} (Linux-PAM 1.4+ needed)");
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: T is the function pointer type of this libpam symbol (same size).
    unsafe { std::mem::transmute_copy(&p) }
}

impl Pam {
    pub fn load(confdir: &Path) -> Pam {
        let name = CString::new("libpam.so.0").expect("name");
        // SAFETY: NUL-terminated name; the handle is kept for the process's life.
        let lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
        assert!(
            !lib.is_null(),
            "cannot dlopen libpam.so.0 (install libpam0g)"
        );
        Pam {
            confdir: CString::new(confdir.as_os_str().as_encoded_bytes()).expect("confdir"),
            start: sym(lib, "pam_start_confdir"),
            open: sym(lib, "pam_open_session"),
            close: sym(lib, "pam_close_session"),
            end: sym(lib, "pam_end"),
            set_item: sym(lib, "pam_set_item"),
        }
    }

    /// Runs `service`'s session stack for `user` once: returns the result of
    /// `pam_open_session` and how long that call took.
    pub fn open_session(&self, service: &str, user: &str) -> (c_int, Duration) {
        let conv = PamConv {
            conv: no_conversation,
            appdata: std::ptr::null_mut(),
        };
        let (svc, usr) = (CString::new(service).unwrap(), CString::new(user).unwrap());
        let (tty, rhost) = (
            CString::new("ssh").unwrap(),
            CString::new("127.0.0.1").unwrap(),
        );
        let mut h: *mut c_void = std::ptr::null_mut();
        // SAFETY: every pointer is a live NUL-terminated string or our conv
        // struct, which outlive the handle (pam_end is called below).
        unsafe {
            let rc = (self.start)(
                svc.as_ptr(),
                usr.as_ptr(),
                &conv,
                self.confdir.as_ptr(),
                &mut h,
            );
            assert_eq!(rc, 0, "pam_start_confdir({service}) = {rc}");
            (self.set_item)(h, PAM_TTY, tty.as_ptr().cast());
            (self.set_item)(h, PAM_RHOST, rhost.as_ptr().cast());
            let t = Instant::now();
            let rc = (self.open)(h, 0);
            let took = t.elapsed();
            if rc == 0 {
                (self.close)(h, 0);
            }
            (self.end)(h, rc);
            (rc, took)
        }
    }
}

/// The median of `d`.
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

// ---- shared steps of the tests ----

/// The first `event` line of daemon `d` (earlier runs logged the same
/// events; the syslog tag `timeoutd[PID]` tells them apart).
pub fn event_of(env: &Env, d: &OwnDaemon, event: &str) -> e2e::LogLine {
    let tag = format!("timeoutd[{}]:", d.pid());
    env.syslog
        .wait_line(EVENT, |l| l.event() == Some(event) && l.raw.contains(&tag))
        .unwrap_or_else(|| panic!("no {event} from timeoutd {}\n{}", d.pid(), d.report(env)))
}

pub fn assert_accounting(env: &Env, d: &OwnDaemon) {
    let problems = accounting_problems(&env.syslog, env.user.name());
    assert!(
        problems.is_empty(),
        "syslog accounting does not balance: {problems:?}\n{}",
        d.report(env)
    );
}

/// Logs out of a shell and waits for ssh to end.
pub fn logout(env: &Env, ssh: &SshSession) {
    ssh.send("exit\n").expect("typing exit");
    env.expect_exit(ssh, EVENT);
}

/// The time from spawning ssh until the shell answers.
pub fn login_time(env: &Env) -> Duration {
    let ssh = env.ssh();
    let ready = env.expect_ready(&ssh, LOGIN);
    logout(env, &ssh);
    ready.seen - ssh.spawned_at
}

/// The time from spawning ssh until it exits, for a login that must fail.
pub fn refused_login_time(env: &Env, d: &OwnDaemon) -> Duration {
    let ssh = env.ssh();
    ssh.send(READY_PROBE).expect("typing the probe");
    let exit = env.expect_exit(&ssh, LOGIN);
    assert!(
        !exit.status.success() && ssh.wait_for_output(READY_MARKER, Duration::ZERO).is_none(),
        "fail=closed let the login in\n{}",
        d.report(env)
    );
    exit.at - ssh.spawned_at
}

/// Runs `timeoutd --config PATH --foreground`, which must refuse to start;
/// returns its stderr.
pub fn refused_start(config: &Path, socket: &Path) -> String {
    let mut child = Command::new(e2e::binaries().timeoutd)
        .arg("--config")
        .arg(config)
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting timeoutd");
    let status = e2e::util::wait_child_timeout(&mut child, EVENT);
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("timeoutd's stderr");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(status, Some(s) if !s.success()),
        "timeoutd with {} did not refuse to start: {status:?}\n{stderr}",
        config.display()
    );
    assert!(!socket.exists(), "it created its socket anyway");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    stderr
}
