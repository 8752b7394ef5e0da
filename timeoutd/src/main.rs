//! `timeoutd`: the command line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use timeoutd::config::{self, explain};
use timeoutd::daemon::{self, Options, StartError};
use timeoutd::host::identity::{nss, pam_account, parent_watch};
use timeoutd::host::posture;

/// Where the detached daemon writes its pid unless told otherwise.
const DEFAULT_PIDFILE: &str = "/run/session-timeout/timeoutd.pid";

const USAGE: &str = "\
usage: timeoutd [--config PATH] [--foreground] [--pidfile PATH] [--civil-clock-offset SECS]
       timeoutd --check-config [PATH]
       timeoutd [--config PATH] --posture
       timeoutd [--config PATH] --explain user=NAME [groups=A,B] [service=S] [rhost=H] [tty=pty|console|none]

Enforces idle and absolute time limits on login sessions registered by
pam_session_timeout.so.

  --config PATH      policy file (default /etc/session-timeout.toml)
  --foreground       stay attached; also print events on stderr
  --pidfile PATH     write the daemon's pid here
                     (default /run/session-timeout/timeoutd.pid when detached)
  --civil-clock-offset SECS
                     TEST ONLY: read windows and quota days on a wall clock
                     SECS seconds ahead (negative: behind); deadlines and
                     the system clock are untouched
  --check-config     validate a config file and print the effective policy
  --explain          show which rule a login would match, why earlier rules
                     did not, and the resulting limits (no login needed)
  --posture          report host weaknesses that let users fake activity or
                     escape, and re-validation that is off (exit 1 if there
                     are any)
  --help, --version
";

/// What the command line asks for.
enum Mode {
    Run(Options),
    Check(PathBuf),
    Explain(PathBuf, Vec<String>),
    /// The host's weaknesses, and re-validation as the config file sets it.
    Posture(PathBuf),
    Help,
    Version,
    /// The re-validation child: one PAM account check, then exit.
    AccountCheck {
        service: String,
        user: String,
    },
}

/// A command line that does not parse.
#[derive(Debug)]
enum UsageError {
    MissingValue(&'static str),
    Unknown(String),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingValue(flag) => write!(f, "{flag} needs a value"),
            Self::Unknown(arg) => write!(f, "unknown argument {arg:?}"),
        }
    }
}

impl std::error::Error for UsageError {}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, UsageError> {
    let mut config_path = PathBuf::from(config::DEFAULT_PATH);
    let mut foreground = false;
    let mut pidfile = None;
    let mut check = false;
    let mut civil_clock_offset = 0i64;
    let mut explain: Option<Vec<String>> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => {
                config_path = args
                    .next()
                    .ok_or(UsageError::MissingValue("--config"))?
                    .into()
            }
            "--foreground" => foreground = true,
            "--pidfile" => {
                let path = args.next().ok_or(UsageError::MissingValue("--pidfile"))?;
                pidfile = Some(PathBuf::from(path));
            }
            "--civil-clock-offset" => {
                let v = args
                    .next()
                    .ok_or(UsageError::MissingValue("--civil-clock-offset"))?;
                civil_clock_offset = v.parse().map_err(|_| UsageError::Unknown(v))?;
            }
            "--check-config" => check = true,
            "--posture" => return Ok(Mode::Posture(config_path)),
            pam_account::CHILD_FLAG => {
                let service = args
                    .next()
                    .ok_or(UsageError::MissingValue(pam_account::CHILD_FLAG))?;
                let user = args
                    .next()
                    .ok_or(UsageError::MissingValue(pam_account::CHILD_FLAG))?;
                return Ok(Mode::AccountCheck { service, user });
            }
            "--explain" => explain = Some(Vec::new()),
            other if explain.is_some() && other.contains('=') && !other.starts_with('-') => {
                explain.get_or_insert_with(Vec::new).push(other.to_owned())
            }
            "--help" | "-h" => return Ok(Mode::Help),
            "--version" => return Ok(Mode::Version),
            other if check && !other.starts_with('-') => config_path = other.into(),
            other => return Err(UsageError::Unknown(other.to_owned())),
        }
    }
    if let Some(words) = explain {
        return Ok(Mode::Explain(config_path, words));
    }
    if check {
        return Ok(Mode::Check(config_path));
    }
    if pidfile.is_none() && !foreground {
        pidfile = Some(PathBuf::from(DEFAULT_PIDFILE));
    }
    Ok(Mode::Run(Options {
        config_path,
        foreground,
        pidfile,
        civil_clock_offset,
    }))
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("timeoutd: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match mode {
        Mode::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Mode::Version => {
            println!("timeoutd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Mode::Check(path) => check_config(&path),
        Mode::Posture(path) => posture(&path),
        Mode::Explain(path, words) => explain(&path, &words),
        Mode::Run(opts) => run(&opts),
        Mode::AccountCheck { service, user } => {
            pam_account::yield_cpu();
            parent_watch::end_with_parent();
            let code = pam_account::check_in_this_process(&service, &user);
            print!("{}", pam_account::child_output(code));
            ExitCode::SUCCESS
        }
    }
}

/// `--check-config`: the effective policy, or every error in the file.
fn check_config(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            print!("{}", explain::describe(&cfg));
            ExitCode::SUCCESS
        }
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("timeoutd: {} is not valid", path.display());
            ExitCode::FAILURE
        }
    }
}

/// `--posture`: the host's weaknesses, exit 1 if there are any. An
/// unreadable config file counts as the defaults (re-validation off).
fn posture(config_path: &Path) -> ExitCode {
    let mut findings = posture::check_host();
    let revalidate = config::load(config_path)
        .map(|c| c.daemon.revalidate)
        .unwrap_or_default();
    findings.extend(posture::check_revalidation(
        &revalidate,
        Path::new("/etc/pam.d"),
    ));
    if findings.is_empty() {
        println!("no weaknesses found");
        return ExitCode::SUCCESS;
    }
    for f in &findings {
        println!(
            "{}: {}
    remedy: {}",
            f.check, f.problem, f.remedy
        );
    }
    ExitCode::FAILURE
}

/// `--explain`: which rule a login would match; groups not given on the
/// command line are those NSS reports for the user.
fn explain(path: &Path, words: &[String]) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::FAILURE;
        }
    };
    match explain::parse_facts(words, nss::groups_of) {
        Ok(facts) => {
            print!("{}", explain::explain(&cfg, &facts));
            print!("{}", explain::clock(&cfg, &facts, now()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("timeoutd: --explain: {e}");
            ExitCode::from(2)
        }
    }
}

/// The wall clock, for `--explain`'s next window times.
fn now() -> timeoutd::core::time::clock::Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    timeoutd::core::time::clock::Timestamp(ms)
}

/// The daemon itself: start, then serve until SIGTERM or SIGINT.
fn run(opts: &Options) -> ExitCode {
    match daemon::start(opts) {
        Ok(daemon) => {
            daemon.serve();
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let StartError::Config(errors) = &e {
                eprintln!("{errors}");
            }
            eprintln!("timeoutd: {e}");
            ExitCode::FAILURE
        }
    }
}
