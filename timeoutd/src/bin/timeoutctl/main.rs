//! `timeoutctl`: see sessions, end one, revoke a user or group, and tell
//! users their own time left. Talks to timeoutd over its socket.

mod render;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use session_timeout_proto::{
    read_frame_limited, write_frame, Request, Response, Target, MAX_REPLY,
};
use timeoutd::config;
use timeoutd::core::duration;

const USAGE: &str = "\
usage: timeoutctl [--socket PATH | --config PATH] COMMAND

  list [--json]                    every session (admin)
  show ID [--json]                 one session in detail (admin)
  kill ID [--reason TEXT]          end a session now (admin)
  revoke --user NAME | --group NAME [--ttl DURATION] [--reason TEXT]
                                   end every session of a user or group now and
                                   refuse new ones until the TTL or unrevoke (admin)
  unrevoke --user NAME | --group NAME   lift a revocation (admin)
  revocations [--json]             active revocations (admin)
  reload                           reload the config; says whether it was accepted (admin)
  status [--json]                  your own sessions and the time left on each

Admin commands need root or the [daemon] admin_group. The socket comes from
--socket, else from [daemon] socket in the config file, else the default.
";

#[derive(Debug)]
struct Cli {
    socket: Option<PathBuf>,
    config: PathBuf,
    json: bool,
    request: Request,
}

fn take_value(args: &mut Vec<String>, flag: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => {
            if i + 1 >= args.len() {
                return Err(format!("{flag} needs a value"));
            }
            let v = args.remove(i + 1);
            args.remove(i);
            Ok(Some(v))
        }
    }
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    match args.iter().position(|a| a == flag) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    }
}

fn target(args: &mut Vec<String>) -> Result<Target, String> {
    match (take_value(args, "--user")?, take_value(args, "--group")?) {
        (Some(u), None) => Ok(Target::User(u)),
        (None, Some(g)) => Ok(Target::Group(g)),
        _ => Err("give exactly one of --user NAME or --group NAME".into()),
    }
}

fn session_id(args: &mut Vec<String>) -> Result<u64, String> {
    if args.is_empty() {
        return Err("a session ID is required (see timeoutctl list)".into());
    }
    let raw = args.remove(0);
    raw.parse()
        .map_err(|_| format!("{raw:?} is not a session ID"))
}

fn parse(mut args: Vec<String>) -> Result<Cli, String> {
    let socket = take_value(&mut args, "--socket")?.map(PathBuf::from);
    let config = take_value(&mut args, "--config")?
        .map_or_else(|| PathBuf::from(config::DEFAULT_PATH), PathBuf::from);
    let json = take_flag(&mut args, "--json");
    if args.is_empty() {
        return Err(String::new());
    }
    let command = args.remove(0);
    let request = match command.as_str() {
        "list" => Request::List,
        "status" => Request::Status,
        "revocations" => Request::Revocations,
        "reload" => Request::Reload,
        "show" => Request::Show {
            id: session_id(&mut args)?,
        },
        "kill" => {
            let reason = take_value(&mut args, "--reason")?.unwrap_or_default();
            Request::Kill {
                id: session_id(&mut args)?,
                reason,
            }
        }
        "revoke" => {
            let ttl_secs = match take_value(&mut args, "--ttl")? {
                Some(t) => duration::parse(&t)
                    .map_err(|e| format!("--ttl: {e}"))?
                    .as_secs(),
                None => 0,
            };
            let reason = take_value(&mut args, "--reason")?.unwrap_or_default();
            Request::Revoke {
                target: target(&mut args)?,
                ttl_secs,
                reason,
            }
        }
        "unrevoke" => Request::Unrevoke {
            target: target(&mut args)?,
        },
        "help" | "--help" | "-h" => return Err(String::new()),
        other => return Err(format!("unknown command {other:?}")),
    };
    if let Some(extra) = args.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    Ok(Cli {
        socket,
        config,
        json,
        request,
    })
}

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

fn exchange(socket: &PathBuf, req: &Request) -> Result<Response, String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach timeoutd at {}: {e}", socket.display()))?;
    let timeout = Some(Duration::from_secs(10));
    s.set_read_timeout(timeout)
        .and_then(|()| s.set_write_timeout(timeout))
        .map_err(|e| e.to_string())?;
    write_frame(&mut s, &req.encode()).map_err(|e| format!("cannot send to timeoutd: {e}"))?;
    let body = read_frame_limited(&mut s, MAX_REPLY)
        .map_err(|e| format!("no answer from timeoutd: {e}"))?;
    Response::decode(&body).map_err(|e| format!("unreadable answer from timeoutd: {e}"))
}

fn main() -> ExitCode {
    let cli = match parse(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("timeoutctl: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let resp = match exchange(&socket_path(&cli), &cli.request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("timeoutctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match (resp, &cli.request) {
        (Response::Sessions(list), Request::Show { .. }) if !cli.json => {
            list.iter()
                .for_each(|s| print!("{}", render::session_detail(s)));
        }
        (Response::Sessions(list), Request::Show { .. }) => {
            list.iter()
                .for_each(|s| println!("{}", render::session_json(s)));
        }
        (Response::Sessions(list), _) if cli.json => print!("{}", render::sessions_json(&list)),
        (Response::Sessions(list), Request::Status) => print!("{}", render::status_text(&list)),
        (Response::Sessions(list), _) => print!("{}", render::sessions_table(&list)),
        (Response::Revocations(list), _) if cli.json => {
            print!("{}", render::revocations_json(&list))
        }
        (Response::Revocations(list), _) => print!("{}", render::revocations_table(&list)),
        (Response::Done { message }, _) => {
            println!("{}", timeoutd::core::escape::for_terminal(&message))
        }
        (Response::Error { code, message }, _) => {
            eprintln!(
                "timeoutctl: refused ({code:?}): {}",
                timeoutd::core::escape::for_terminal(&message)
            );
            return ExitCode::FAILURE;
        }
        (other, _) => {
            eprintln!("timeoutctl: unexpected answer: {other:?}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_parse() {
        let c = parse(words("--socket /tmp/s list --json")).unwrap();
        assert_eq!(
            (c.request, c.json, c.socket),
            (Request::List, true, Some(PathBuf::from("/tmp/s")))
        );
        let c = parse(words("revoke --user bob --ttl 1h --reason incident")).unwrap();
        assert_eq!(
            c.request,
            Request::Revoke {
                target: Target::User("bob".into()),
                ttl_secs: 3600,
                reason: "incident".into()
            }
        );
        let c = parse(words("kill 7 --reason x")).unwrap();
        assert_eq!(
            c.request,
            Request::Kill {
                id: 7,
                reason: "x".into()
            }
        );
        assert_eq!(
            parse(words("unrevoke --group ops")).unwrap().request,
            Request::Unrevoke {
                target: Target::Group("ops".into())
            }
        );
    }

    #[test]
    fn mistakes_are_errors() {
        assert!(parse(words("revoke --user a --group b")).is_err());
        assert!(parse(words("revoke")).is_err());
        assert!(parse(words("kill x")).is_err());
        assert!(parse(words("kill")).is_err());
        assert!(parse(words("revoke --user a --ttl 15"))
            .unwrap_err()
            .contains("bare number"));
        assert!(parse(words("list extra")).is_err());
        assert!(parse(words("frobnicate")).is_err());
    }

    #[test]
    fn json_escapes_and_tables_align() {
        assert_eq!(render::js("a\"b\\c\n\u{1b}"), "\"a\\\"b\\\\c\\n\\u001b\"");
        let t = render::table(&["A", "B"], &[vec!["x".into(), "\u{1b}[31mred".into()]]);
        assert!(t.contains("\\x1b[31mred"), "{t}");
        assert!(!t.contains('\u{1b}'));
    }
}
