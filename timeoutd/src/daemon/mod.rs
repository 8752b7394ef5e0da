//! The running daemon: start-up, the event loop, reload and shutdown.

pub mod server;

use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config};
use crate::core::clock::Clock;
use crate::core::event::{Event, Severity};
use crate::core::revocations::Revocations;
use crate::daemon::server::{Incoming, Server};
use crate::engine::Engine;
use crate::engine::System;
use crate::host::clock::SystemClock;
use crate::host::ids::IdAllocator;
use crate::host::state::{Loaded, StateStore};
use crate::host::syslog::Syslog;
use crate::host::Host;
use session_timeout_proto::{ErrorCode, Request, Response};

/// Longest the loop sleeps with nothing due (it wakes for requests anyway).
const MAX_IDLE_SLEEP: Duration = Duration::from_secs(3600);

pub struct Options {
    pub config_path: PathBuf,
    pub foreground: bool,
    pub pidfile: Option<PathBuf>,
}

/// Runs until SIGTERM or SIGINT. Returns the process exit code.
pub fn run(cfg: Config, opts: &Options) -> i32 {
    let mut ready = None;
    if !opts.foreground {
        match daemonize() {
            Ok(fd) => ready = Some(fd),
            Err(e) => {
                eprintln!("timeoutd: cannot daemonize: {e}");
                return 1;
            }
        }
    }
    // State files hold user names and hosts of every login, and decide what
    // gets killed after a restart: nobody but root may read or write them.
    // SAFETY: umask(2) cannot fail and only changes this process's mask.
    unsafe { libc::umask(0o077) };
    // Under systemd, stderr is the journal, which gets every event through syslog already.
    let copy_to_stderr = opts.foreground && !crate::host::notify::stderr_is_journal();
    let syslog = Arc::new(Syslog::new(&cfg.daemon.syslog).with_stderr(copy_to_stderr));
    let signals = match server::signal_fd() {
        Ok(fd) => fd,
        Err(e) => return fail(&syslog, &format!("cannot set up signal handling: {e}")),
    };
    server::raise_fd_limit();
    let listener = match server::bind(&cfg.daemon.socket) {
        Ok(l) => l,
        Err(e) => {
            return fail(
                &syslog,
                &format!("cannot listen on {}: {e}", cfg.daemon.socket.display()),
            );
        }
    };
    let mut server = Server::new(listener, signals);
    let ids = open_ids(&cfg.daemon.state_dir, &syslog);
    if let Some(p) = &opts.pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            return fail(
                &syslog,
                &format!("cannot write pidfile {}: {e}", p.display()),
            );
        }
    }
    let (store, loaded) = StateStore::open(&cfg.daemon.state_dir);
    let loaded = loaded.unwrap_or_else(|e| {
        syslog.log(
            &Event::new("state_read_failed")
                .with_severity(Severity::Err)
                .field("dir", cfg.daemon.state_dir.display())
                .field("error", e)
                .field(
                    "action",
                    "starting with an empty session table; live logins are adopted",
                ),
        );
        Loaded::default()
    });
    if loaded.unreadable > 0 {
        syslog.log(
            &Event::new("state_read_failed")
                .with_severity(Severity::Warning)
                .field("dir", cfg.daemon.state_dir.display())
                .field("unreadable_lines", loaded.unreadable),
        );
    }
    let host = Host::new(
        Arc::clone(&syslog),
        ids,
        store,
        cfg.daemon.state_dir.clone(),
    );
    let mut engine = Engine::new(host, cfg.policy.clone());
    engine.admin_group = cfg.daemon.admin_group.clone();
    engine.revocations = load_revocations(&cfg.daemon.state_dir, &syslog);
    // The slow part (a pass over /proc) first, so that restored sessions get
    // their full warning time from the moment they are restored.
    let found = engine.sys.find_logins(&cfg.daemon.adopt);
    engine.sys.begin_batch();
    let rebooted = boot_changed(&cfg.daemon.state_dir);
    let mut restored = 0;
    for rec in loaded.sessions {
        if rebooted {
            engine.discard(rec, "the host rebooted");
        } else if engine.restore(rec) {
            restored += 1;
        }
    }
    let before = engine.len();
    engine.adopt(found);
    let adopted = engine.len() - before;
    if restored + adopted > 0 {
        syslog.log(
            &Event::new("state_restored")
                .field("restored", restored)
                .field("adopted", adopted),
        );
    }
    syslog.log(
        &Event::new("daemon_start")
            .field("pid", std::process::id())
            .field("socket", cfg.daemon.socket.display())
            .field("config", cfg.path.display())
            .field("rules", cfg.policy.rule_count())
            .field("revocations", engine.revocations.all().len()),
    );
    for f in crate::host::posture::check_host() {
        syslog.log(
            &Event::new("posture_warning")
                .with_severity(Severity::Warning)
                .field("check", f.check)
                .field("problem", f.problem)
                .field("remedy", f.remedy),
        );
    }
    if let Some(fd) = ready.take() {
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(b"ok");
        detach_stderr();
    }
    if let Err(e) = crate::host::notify::ready() {
        eprintln!("timeoutd: cannot tell systemd it is ready: {e}");
    }
    let code = event_loop(&mut engine, &mut server, &opts.config_path, &syslog);
    let _ = std::fs::remove_file(&cfg.daemon.socket);
    if let Some(p) = &opts.pidfile {
        let _ = std::fs::remove_file(p);
    }
    code
}

fn event_loop(
    engine: &mut Engine<Host>,
    server: &mut Server,
    config_path: &Path,
    syslog: &Syslog,
) -> i32 {
    loop {
        let timeout = match engine.next_wake() {
            Some(at) => {
                Duration::from_millis(u64::try_from(at.0 - SystemClock.now().0).unwrap_or(0))
            }
            None => MAX_IDLE_SLEEP,
        }
        .min(MAX_IDLE_SLEEP);
        for incoming in server.poll(timeout) {
            match incoming {
                Incoming::Request { conn, req, peer } => {
                    let resp = match req {
                        Request::Reload if engine.is_admin(peer) => {
                            reload(engine, config_path, syslog)
                        }
                        other => engine.handle(other, peer),
                    };
                    server.reply(conn, &resp);
                }
                Incoming::Signal(libc::SIGHUP) => {
                    reload(engine, config_path, syslog);
                }
                Incoming::Signal(sig) => {
                    syslog.log(
                        &Event::new("daemon_stop")
                            .field("signal", crate::host::signals::signal_name(sig))
                            .field("sessions", engine.len()),
                    );
                    return 0;
                }
            }
        }
        for ev in server.notices.drain(..) {
            syslog.log(&ev);
        }
        engine.run_due();
    }
}

/// SIGHUP or `timeoutctl reload`: a valid file replaces the policy; an
/// invalid one changes nothing.
fn reload(engine: &mut Engine<Host>, path: &Path, syslog: &Syslog) -> Response {
    match config::load(path) {
        Ok(cfg) => {
            let rules = cfg.policy.rule_count();
            engine.set_policy(cfg.policy);
            engine.admin_group = cfg.daemon.admin_group;
            syslog.log(
                &Event::new("config_loaded")
                    .field("file", path.display())
                    .field("rules", rules)
                    .field("sessions", engine.len()),
            );
            let mut message = format!(
                "{} loaded: {rules} rules, {} live sessions re-matched",
                path.display(),
                engine.len()
            );
            for w in &cfg.warnings {
                message.push_str(&format!("\n{w}"));
            }
            Response::Done { message }
        }
        Err(errs) => {
            syslog.log(
                &Event::new("config_rejected")
                    .with_severity(Severity::Err)
                    .field("file", path.display())
                    .field("errors", errs.to_string().replace('\n', "; "))
                    .field("action", "keeping the running policy"),
            );
            Response::Error {
                code: ErrorCode::Malformed,
                message: format!("{errs}\nthe running policy was kept"),
            }
        }
    }
}

/// Whether the host booted since the state was written (the kernel's boot id
/// differs); records the current boot id either way.
fn boot_changed(state_dir: &Path) -> bool {
    let path = state_dir.join("boot-id");
    let now = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let before = std::fs::read_to_string(&path).ok();
    if before.as_deref() != Some(now.as_str()) {
        let _ = crate::host::ids::write_atomic(&path, now.as_bytes());
    }
    before.is_some_and(|b| b != now)
}

fn load_revocations(state_dir: &Path, syslog: &Syslog) -> Revocations {
    let path = state_dir.join(crate::host::REVOCATIONS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Revocations::default(),
        Err(e) => {
            syslog.log(
                &Event::new("state_read_failed")
                    .with_severity(Severity::Err)
                    .field("file", path.display())
                    .field("error", e),
            );
            return Revocations::default();
        }
    };
    Revocations::from_text(&text).unwrap_or_else(|e| {
        syslog.log(
            &Event::new("state_read_failed")
                .with_severity(Severity::Err)
                .field("file", path.display())
                .field("error", e),
        );
        Revocations::default()
    })
}

fn open_ids(state_dir: &Path, syslog: &Syslog) -> IdAllocator {
    let made = std::fs::create_dir_all(state_dir).and_then(|()| IdAllocator::open(state_dir));
    match made {
        Ok(ids) => ids,
        Err(e) => {
            syslog.log(
                &Event::new("state_write_failed")
                    .with_severity(Severity::Err)
                    .field("what", "session id counter")
                    .field("dir", state_dir.display())
                    .field("error", e),
            );
            // Milliseconds since the epoch are far above any persisted counter.
            let seed = u64::try_from(SystemClock.now().0).unwrap_or(1);
            IdAllocator::volatile(state_dir, seed)
        }
    }
}

fn fail(syslog: &Syslog, msg: &str) -> i32 {
    eprintln!("timeoutd: {msg}");
    syslog.log(
        &Event::new("daemon_failed")
            .with_severity(Severity::Err)
            .field("error", msg),
    );
    1
}

/// Detaches from the terminal: fork, setsid, fork. The original process waits
/// until the daemon reports it is serving (or fails), so `timeoutd` returning
/// 0 means the socket is up. Returns the readiness pipe in the daemon.
/// Must run before any thread exists.
fn daemonize() -> io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: fds is a live array of two ints, as pipe2 expects.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (documented precondition).
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => {
            drop(write_end);
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::fs::File::from(read_end), &mut buf);
            std::process::exit(if buf == b"ok" { 0 } else { 1 });
        }
    }
    drop(read_end);
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: still single-threaded.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => std::process::exit(0),
    }
    std::env::set_current_dir("/")?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in 0..=1 {
        // SAFETY: both descriptors are valid; dup2 atomically replaces the target.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), target) };
    }
    // stderr stays open until the daemon is ready, so start-up errors still reach the admin.
    Ok(write_end)
}

/// After start-up, the detached daemon's stderr goes nowhere (syslog has everything).
fn detach_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: both descriptors are valid; dup2 atomically replaces stderr.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 2) };
    }
}
