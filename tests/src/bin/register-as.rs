//! `register-as SOCKET USER UID`: sends one Register request to timeoutd, as
//! whatever user it runs as, and prints the reply on one line:
//! `response=registered session_id=N`, `response=unregistered session_id=N`
//! or `response=error code=CODE message="..."`.
//!
//! The e2e tests run it with a test user's uid/gid to check that the daemon
//! refuses registrations from non-root peers (SO_PEERCRED), even when its
//! socket is world-writable. Exit status: 0 a reply was printed, 2 bad usage,
//! 3 no reply (connection failed or closed).

use std::path::Path;
use std::time::Duration;

use session_timeout_proto::client::exchange;
use session_timeout_proto::{Registration, Request, Response, AUDIT_UNSET, MAX_REPLY};

fn read_u32(path: &str) -> u32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(AUDIT_UNSET)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: register-as SOCKET USER UID");
        std::process::exit(2);
    }
    let Ok(uid) = args[3].parse::<u32>() else {
        eprintln!("UID must be a number");
        std::process::exit(2);
    };
    let pid = std::process::id();
    let start_time = e2e::procs::stat(pid).map(|s| s.start_time).unwrap_or(0);
    // Forward compatible on purpose: fields added to Registration keep defaults.
    #[allow(clippy::needless_update)]
    let reg = Registration {
        user: args[2].clone(),
        uid,
        service: "register-as".into(),
        tty: "/dev/pts/999".into(),
        rhost: "127.0.0.1".into(),
        ruser: String::new(),
        pid,
        start_time,
        loginuid: read_u32("/proc/self/loginuid"),
        sessionid: read_u32("/proc/self/sessionid"),
        ..Default::default()
    };
    let reply = exchange(
        Path::new(&args[1]),
        &Request::Register(reg),
        Duration::from_secs(5),
        MAX_REPLY,
    );
    match reply {
        Ok(Response::Registered { session_id, .. }) => {
            println!("response=registered session_id={session_id}")
        }
        Ok(Response::Unregistered { session_id }) => {
            println!("response=unregistered session_id={session_id}")
        }
        Ok(Response::Error { code, message }) => {
            println!("response=error code={code:?} message={message:?}")
        }
        Ok(Response::Refused { message }) => println!("response=refused message={message:?}"),
        Ok(other) => println!("response=other {other:?}"),
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            std::process::exit(3);
        }
    }
}
