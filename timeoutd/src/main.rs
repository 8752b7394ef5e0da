//! `timeoutd`: the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use timeoutd::config;
use timeoutd::daemon::{self, Options};

const USAGE: &str = "\
usage: timeoutd [--config PATH] [--foreground] [--pidfile PATH]
       timeoutd --check-config [PATH]
       timeoutd --posture
       timeoutd [--config PATH] --explain user=NAME [groups=A,B] [service=S] [rhost=H] [tty=pty|console|none]

Enforces idle and absolute time limits on login sessions registered by
pam_session_timeout.so.

  --config PATH      policy file (default /etc/session-timeout.toml)
  --foreground       stay attached; also print events on stderr
  --pidfile PATH     write the daemon's pid here
                     (default /run/session-timeout/timeoutd.pid when detached)
  --check-config     validate a config file and print the effective policy
  --explain          show which rule a login would match, why earlier rules
                     did not, and the resulting limits (no login needed)
  --posture          report host weaknesses that let users fake activity or
                     escape (exit 1 if there are any)
  --help, --version
";

enum Mode {
    Run(Options),
    Check(PathBuf),
    Explain(PathBuf, Vec<String>),
    Posture,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut config_path = PathBuf::from(config::DEFAULT_PATH);
    let mut foreground = false;
    let mut pidfile = None;
    let mut check = false;
    let mut explain: Option<Vec<String>> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config_path = args.next().ok_or("--config needs a path")?.into(),
            "--foreground" => foreground = true,
            "--pidfile" => {
                pidfile = Some(PathBuf::from(args.next().ok_or("--pidfile needs a path")?))
            }
            "--check-config" => check = true,
            "--posture" => return Ok(Mode::Posture),
            "--explain" => explain = Some(Vec::new()),
            other if explain.is_some() && other.contains('=') && !other.starts_with('-') => {
                explain.get_or_insert_with(Vec::new).push(other.to_owned())
            }
            "--help" | "-h" => return Err(String::new()),
            "--version" => {
                println!("timeoutd {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other if check && !other.starts_with('-') => config_path = other.into(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(words) = explain {
        return Ok(Mode::Explain(config_path, words));
    }
    if check {
        return Ok(Mode::Check(config_path));
    }
    if pidfile.is_none() && !foreground {
        pidfile = Some(PathBuf::from("/run/session-timeout/timeoutd.pid"));
    }
    Ok(Mode::Run(Options {
        config_path,
        foreground,
        pidfile,
    }))
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("timeoutd: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match mode {
        Mode::Check(path) => match config::load(&path) {
            Ok(cfg) => {
                print!("{}", timeoutd::config::explain::describe(&cfg));
                ExitCode::SUCCESS
            }
            Err(errs) => {
                eprintln!("{errs}");
                eprintln!("timeoutd: {} is not valid", path.display());
                ExitCode::FAILURE
            }
        },
        Mode::Posture => {
            let findings = timeoutd::host::posture::check_host();
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
        Mode::Explain(path, words) => {
            let cfg = match config::load(&path) {
                Ok(c) => c,
                Err(errs) => {
                    eprintln!("{errs}");
                    return ExitCode::FAILURE;
                }
            };
            match timeoutd::config::explain::parse_facts(&words) {
                Ok(facts) => {
                    print!("{}", timeoutd::config::explain::explain(&cfg, &facts));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("timeoutd: --explain: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Mode::Run(opts) => {
            let cfg = match config::load(&opts.config_path) {
                Ok(c) => c,
                Err(errs) => {
                    let syslog =
                        timeoutd::host::syslog::Syslog::new(std::path::Path::new("/dev/log"));
                    syslog.log(
                        &timeoutd::core::event::Event::new(
                            timeoutd::core::event::EventName::ConfigRejected,
                        )
                        .with_severity(timeoutd::core::event::Severity::Err)
                        .field("file", opts.config_path.display())
                        .field("errors", errs.to_string().replace('\n', "; "))
                        .field("action", "refusing to start"),
                    );
                    eprintln!("{errs}");
                    eprintln!("timeoutd: refusing to start without a valid policy");
                    return ExitCode::FAILURE;
                }
            };
            match daemon::run(cfg, &opts) {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
    }
}
