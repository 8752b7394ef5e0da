//! Start-up, in order: the policy, detaching, the signalfd, the socket, the
//! pidfile, the durable state, then the sessions restored from it and the
//! running logins adopted. Each step either works, degrades with an event
//! (state that cannot be read), or stops start-up with a [`StartError`].

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config};
use crate::core::audit::event::{Event, EventName, Severity};
use crate::core::state::deadlines_store::AdminDeadlines;
use crate::core::state::revocations::Revocations;
use crate::core::time::civil::Civil;
use crate::core::time::clock::Clock;
use crate::daemon::checks::Checks;
use crate::daemon::server::{self, Server};
use crate::daemon::{detach, process, Daemon, Options, StartError};
use crate::engine::{Engine, System};
use crate::host::clock::SystemClock;
use crate::host::store;
use crate::host::store::ids::{self, IdAllocator};
use crate::host::store::state::{Loaded, StateStore};
use crate::host::syslog::Syslog;
use crate::host::{cgroup, notify, posture};
use crate::host::{Host, DEADLINES_FILE, REVOCATIONS_FILE};

/// Where `config_rejected` goes when there is no valid policy to say otherwise.
const DEFAULT_SYSLOG: &str = "/dev/log";

/// Starts the daemon: returns once it is serving (detached, unless
/// `opts.foreground`), or with why it could not start. A failure after the
/// log is open is also logged as `daemon_failed`.
pub fn start(opts: &Options) -> Result<Daemon, StartError> {
    let cfg = load_config(&opts.config_path)?;
    let ready = if opts.foreground {
        None
    } else {
        Some(detach::daemonize().map_err(StartError::Daemonize)?)
    };
    process::restrict_umask();
    // Under systemd, stderr is the journal, which gets every event through syslog already.
    let copy_to_stderr = opts.foreground && !notify::stderr_is_journal();
    let syslog = Arc::new(Syslog::new(&cfg.daemon.syslog).with_stderr(copy_to_stderr));
    let daemon = set_up(cfg, opts, &syslog).inspect_err(|e| {
        syslog.log(
            &Event::new(EventName::DaemonFailed)
                .with_severity(Severity::Err)
                .field("error", e),
        );
    })?;
    if let Some(ready) = ready {
        ready.announce_serving();
    }
    if let Err(e) = notify::ready() {
        eprintln!("timeoutd: cannot tell systemd it is ready: {e}");
    }
    Ok(daemon)
}

/// The policy, or `config_rejected` in syslog and an error.
fn load_config(path: &Path) -> Result<Config, StartError> {
    config::load(path).map_err(|errors| {
        Syslog::new(Path::new(DEFAULT_SYSLOG)).log(
            &Event::new(EventName::ConfigRejected)
                .with_severity(Severity::Err)
                .field("file", path.display())
                .field("errors", errors.to_string().replace('\n', "; "))
                .field("action", "refusing to start"),
        );
        StartError::Config(errors)
    })
}

/// Everything after detaching, up to the first request.
fn set_up(cfg: Config, opts: &Options, syslog: &Arc<Syslog>) -> Result<Daemon, StartError> {
    let signals = process::signal_fd().map_err(StartError::Signals)?;
    process::raise_fd_limit();
    let listener = server::bind(&cfg.daemon.socket).map_err(|error| StartError::Listen {
        socket: cfg.daemon.socket.clone(),
        error,
    })?;
    let server = Server::new(listener, signals);
    let ids = open_ids(&cfg.daemon.state_dir, syslog);
    if let Some(path) = &opts.pidfile {
        detach::write_pidfile(path).map_err(|error| StartError::Pidfile {
            path: path.clone(),
            error,
        })?;
    }
    let (store, loaded) = load_sessions(&cfg.daemon.state_dir, syslog);
    let mut host = Host::new(Arc::clone(syslog), ids, store, cfg.daemon.state_dir.clone());
    set_up_cgroups(&mut host, &cfg.daemon.state_dir, &loaded, syslog);
    let mut engine = Engine::new(host, cfg.policy.clone());
    engine.admin_group = cfg.daemon.admin_group.clone();
    engine.revocations = load_revocations(&cfg.daemon.state_dir, syslog);
    engine.configure_revalidation(&cfg.daemon.revalidate);
    engine.admin_deadlines = load_deadlines(&cfg.daemon.state_dir, syslog);
    engine.civil = load_civil(&cfg, opts, syslog);
    restore_and_adopt(&mut engine, &cfg, loaded, syslog);
    engine.settle_quotas();
    log_start(&cfg, &engine, syslog);
    Ok(Daemon {
        engine,
        server,
        checks: Checks::new(&cfg.daemon.revalidate),
        config_path: opts.config_path.clone(),
        syslog: Arc::clone(syslog),
        socket: cfg.daemon.socket,
        pidfile: opts.pidfile.clone(),
    })
}

/// Sessions get a cgroup each where a writable cgroup v2 exists (issue 13);
/// else they end by stop-then-kill, which `posture_warning check=cgroup_v2`
/// reports. Empty cgroups of sessions that ended meanwhile are removed.
fn set_up_cgroups(host: &mut Host, state_dir: &Path, loaded: &Loaded, syslog: &Syslog) {
    match cgroup::Cgroups::set_up(&cgroup::tag_of(state_dir)) {
        Ok(cg) => {
            let keep: Vec<String> = loaded
                .sessions
                .iter()
                .filter_map(|r| r.cgroup.clone())
                .collect();
            cg.sweep(&keep);
            host.set_cgroups(cg);
        }
        // The posture check at start reports what it can see without
        // writing; this says what only trying could show.
        Err(e) if posture::check_cgroup().is_none() => syslog.log(
            &Event::new(EventName::PostureWarning)
                .with_severity(Severity::Warning)
                .field("check", posture::CGROUP_CHECK)
                .field("problem", posture::cgroup_problem(&e))
                .field("remedy", posture::CGROUP_REMEDY),
        ),
        Err(_) => {}
    }
}

/// The session table as last written; unreadable state is logged and
/// starts an empty table (live logins are then adopted).
fn load_sessions(state_dir: &Path, syslog: &Syslog) -> (StateStore, Loaded) {
    let (store, loaded) = StateStore::open(state_dir);
    let loaded = loaded.unwrap_or_else(|e| {
        syslog.log(
            &Event::new(EventName::StateReadFailed)
                .with_severity(Severity::Err)
                .field("dir", state_dir.display())
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
            &Event::new(EventName::StateReadFailed)
                .with_severity(Severity::Warning)
                .field("dir", state_dir.display())
                .field("unreadable_lines", loaded.unreadable),
        );
    }
    (store, loaded)
}

/// Restores the saved sessions (all discarded if the host rebooted since),
/// then adopts running logins that have none.
fn restore_and_adopt(engine: &mut Engine<Host>, cfg: &Config, loaded: Loaded, syslog: &Syslog) {
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
            &Event::new(EventName::StateRestored)
                .field("restored", restored)
                .field("adopted", adopted),
        );
    }
}

/// `daemon_start`, then a `posture_warning` per host weakness.
fn log_start(cfg: &Config, engine: &Engine<Host>, syslog: &Syslog) {
    syslog.log(
        &Event::new(EventName::DaemonStart)
            .field("pid", std::process::id())
            .field("socket", cfg.daemon.socket.display())
            .field("config", cfg.path.display())
            .field("rules", cfg.policy.rule_count())
            .field("revocations", engine.revocations.all().len()),
    );
    for f in posture::check_host() {
        syslog.log(
            &Event::new(EventName::PostureWarning)
                .with_severity(Severity::Warning)
                .field("check", f.check)
                .field("problem", f.problem)
                .field("remedy", f.remedy),
        );
    }
}

/// Whether the host booted since the state was written (the kernel's boot id
/// differs); records the current boot id either way.
fn boot_changed(state_dir: &Path) -> bool {
    let path = state_dir.join("boot-id");
    let now = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let before = std::fs::read_to_string(&path).ok();
    if before.as_deref() != Some(now.as_str()) {
        let _ = ids::write_atomic(&path, now.as_bytes());
    }
    before.is_some_and(|b| b != now)
}

/// The revocation list; a missing file is an empty list, an unreadable or
/// malformed one is logged and treated as empty.
fn load_revocations(state_dir: &Path, syslog: &Syslog) -> Revocations {
    let path = state_dir.join(REVOCATIONS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Revocations::default(),
        Err(e) => {
            syslog.log(
                &Event::new(EventName::StateReadFailed)
                    .with_severity(Severity::Err)
                    .field("file", path.display())
                    .field("error", e),
            );
            return Revocations::default();
        }
    };
    Revocations::from_text(&text).unwrap_or_else(|e| {
        syslog.log(
            &Event::new(EventName::StateReadFailed)
                .with_severity(Severity::Err)
                .field("file", path.display())
                .field("error", e),
        );
        Revocations::default()
    })
}

/// The zone, quota days and the quota ledger; an unreadable ledger is
/// logged and starts empty, like the revocations.
fn load_civil(cfg: &Config, opts: &Options, syslog: &Syslog) -> Civil {
    let mut civil = Civil::new(
        cfg.daemon.zone(),
        cfg.daemon.day_starts,
        opts.civil_clock_offset,
    );
    match store::quota::load(&cfg.daemon.state_dir) {
        Ok(ledger) => civil.set_ledger(ledger),
        Err(e) => syslog.log(
            &Event::new(EventName::StateReadFailed)
                .with_severity(Severity::Err)
                .field(
                    "file",
                    cfg.daemon
                        .state_dir
                        .join(store::quota::QUOTA_FILE)
                        .display(),
                )
                .field("error", e),
        ),
    }
    civil
}

/// The administrators' deadlines, read like the revocations.
fn load_deadlines(state_dir: &Path, syslog: &Syslog) -> AdminDeadlines {
    let path = state_dir.join(DEADLINES_FILE);
    let parsed = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return AdminDeadlines::default(),
        Err(e) => Err(e.to_string()),
        Ok(text) => AdminDeadlines::from_text(&text),
    };
    parsed.unwrap_or_else(|e| {
        syslog.log(
            &Event::new(EventName::StateReadFailed)
                .with_severity(Severity::Err)
                .field("file", path.display())
                .field("error", e),
        );
        AdminDeadlines::default()
    })
}

/// The session id counter; if the state directory cannot hold it, a
/// volatile one seeded from the clock (and `state_write_failed`).
fn open_ids(state_dir: &Path, syslog: &Syslog) -> IdAllocator {
    let made = std::fs::create_dir_all(state_dir).and_then(|()| IdAllocator::open(state_dir));
    match made {
        Ok(ids) => ids,
        Err(e) => {
            syslog.log(
                &Event::new(EventName::StateWriteFailed)
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
