//! `timeoutctl`: see sessions, end one, revoke a user or group, and tell
//! users their own time left. Talks to timeoutd over its socket.
//!
//! Exit codes: 0 done, 1 the daemon refused or could not be reached, 2 a
//! mistake on the command line.

mod cli;
mod deadlines;
mod json;
mod render;
mod report;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use session_timeout_proto::client::{self, ClientError};
use session_timeout_proto::{Request, Response, MAX_REPLY};
use timeoutd::config;
use timeoutd::core::audit::escape;

use cli::{Cli, Verb};

/// Bound on the whole exchange with the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);
/// `revalidate` waits for the checks: at most `revalidate_timeout` (≤ 60 s)
/// and 5 s more on the daemon's side.
const REVALIDATE_TIMEOUT: Duration = Duration::from_secs(70);

/// --socket, else the config file's `[daemon] socket` (if it is readable and
/// valid), else the default path.
fn socket_path(cli: &Cli) -> PathBuf {
    if let Some(s) = &cli.socket {
        return s.clone();
    }
    match config::load(&cli.config) {
        Ok(c) => c.daemon.socket,
        Err(_) => PathBuf::from(session_timeout_proto::DEFAULT_SOCKET),
    }
}

/// What went wrong talking to the daemon, in words for the admin.
fn exchange_error(socket: &Path, e: &ClientError, timeout: Duration) -> String {
    match e {
        ClientError::Connect(e) => {
            format!("cannot reach timeoutd at {}: {e}", socket.display())
        }
        ClientError::Timeout => format!("no answer from timeoutd within {}s", timeout.as_secs()),
        ClientError::Protocol(m) => format!("no usable answer from timeoutd: {m}"),
    }
}

/// Prints the daemon's answer to `req`; false if it was a refusal or not
/// an answer to this request.
fn print_answer(resp: Response, req: &Request, json: bool) -> bool {
    match (resp, req) {
        (Response::Sessions(list), Request::Show { .. }) if !json => {
            list.iter()
                .for_each(|s| print!("{}", render::session_detail(s)));
        }
        (Response::Sessions(list), Request::Show { .. }) => {
            list.iter().for_each(|s| println!("{}", json::session(s)));
        }
        (Response::Sessions(list), _) if json => print!("{}", json::sessions(&list)),
        (Response::Sessions(list), Request::Status) => print!("{}", render::status_text(&list)),
        (Response::Sessions(list), _) => print!("{}", render::sessions_table(&list)),
        (Response::Revocations(list), _) if json => print!("{}", json::revocations(&list)),
        (Response::Revocations(list), _) => print!("{}", render::revocations_table(&list)),
        (Response::Deadlines(list), _) if json => print!("{}", deadlines::deadlines_json(&list)),
        (Response::Deadlines(list), _) => print!("{}", deadlines::deadlines_table(&list)),
        (r @ Response::DaemonState { .. }, _) => {
            print!("{}", render::daemon_state(&r).unwrap_or_default())
        }
        (Response::Done { message }, _) => println!("{}", escape::for_terminal(&message)),
        (Response::Error { code, message }, _) => {
            eprintln!(
                "timeoutctl: refused ({code:?}): {}",
                escape::for_terminal(&message)
            );
            return false;
        }
        (other, _) => {
            eprintln!("timeoutctl: unexpected answer: {other:?}");
            return false;
        }
    }
    true
}

/// Writes the completion script for `shell` to stdout.
fn print_completions(shell: cli::Shell) -> ExitCode {
    match std::io::stdout().lock().write_all(&cli::completions(shell)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timeoutctl: cannot write the script: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command line.
fn run(cli: &Cli) -> ExitCode {
    let Some(verb) = &cli.verb else {
        print!("{}", cli::help());
        return ExitCode::SUCCESS;
    };
    let req = match (verb, verb.request()) {
        (_, Some(req)) => req,
        (Verb::Completions { shell }, None) => return print_completions(*shell),
        (Verb::Report(args), None) => return report::run(args, &cli.config),
        (_, None) => return ExitCode::SUCCESS,
    };
    let socket = socket_path(cli);
    let timeout = match req {
        Request::Revalidate { .. } => REVALIDATE_TIMEOUT,
        _ => TIMEOUT,
    };
    let answered = match client::exchange(&socket, &req, timeout, MAX_REPLY) {
        Ok(resp) => print_answer(resp, &req, verb.json()),
        Err(e) => {
            eprintln!("timeoutctl: {}", exchange_error(&socket, &e, timeout));
            false
        }
    };
    if answered && matches!(req, Request::Status) && !verb.json() {
        print_daemon_state(&socket);
    }
    if answered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// For root, after its own sessions: the daemon's totals, and whether any
/// of its log lines were lost. Others are not asked (they may not know).
fn print_daemon_state(socket: &Path) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    if let Ok(resp) = client::exchange(socket, &Request::DaemonStatus, TIMEOUT, MAX_REPLY) {
        if let Some(line) = render::daemon_state(&resp) {
            print!("{line}");
        }
    }
}

fn main() -> ExitCode {
    match cli::parse(std::env::args_os()) {
        Ok(cli) => run(&cli),
        Err(e) => {
            // Help and --version go to stdout with 0; mistakes to stderr with 2.
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

#[cfg(test)]
mod fixtures;
