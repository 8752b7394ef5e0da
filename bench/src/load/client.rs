//! Talking to timeoutd over its socket exactly as the PAM module does: a
//! non-blocking connect, one length-prefixed request, one reply, all within
//! one deadline.

use std::path::Path;
use std::time::{Duration, Instant};

use session_timeout_proto::client::exchange_on;
use session_timeout_proto::{Registration, Request, Response, Target, AUDIT_UNSET, MAX_REPLY};

use crate::load::fleet::Leader;
use crate::sys;
use crate::util::now_ns;

/// The module's default `timeout_ms`.
pub const MODULE_TIMEOUT: Duration = Duration::from_millis(500);

/// A reply with the realtime stamps taken just before the connect and just
/// after the reply was decoded.
#[derive(Debug, Clone)]
pub struct Reply {
    pub resp: Response,
    pub t_send_ns: i64,
    pub t_recv_ns: i64,
}

/// Connects non-blocking as the module does and runs the protocol's one
/// client exchange on that stream.
pub fn exchange(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, String> {
    let t_send_ns = now_ns();
    let deadline = Instant::now() + timeout;
    let s = sys::connect_nonblocking(socket).map_err(|e| format!("connect: {e}"))?;
    let resp = exchange_on(&s, req, deadline, MAX_REPLY).map_err(|e| e.to_string())?;
    Ok(Reply {
        resp,
        t_send_ns,
        t_recv_ns: now_ns(),
    })
}

/// What the module would send for a login whose leader is `pid`.
pub fn registration(
    user: &str,
    uid: u32,
    service: &str,
    tty: &str,
    pid: u32,
    start_time: u64,
) -> Registration {
    Registration {
        user: user.to_owned(),
        uid,
        service: service.to_owned(),
        tty: tty.to_owned(),
        rhost: String::new(),
        ruser: String::new(),
        pid,
        start_time,
        loginuid: AUDIT_UNSET,
        sessionid: AUDIT_UNSET,
        auth: Default::default(),
    }
}

/// A registered session: its id and the bracket of the daemon's clock reading.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    pub id: u64,
    pub t_send_ns: i64,
    pub t_recv_ns: i64,
}

/// A deadline for set-up registrations, where a slow answer is a figure and
/// not a failure.
pub const PATIENT: Duration = Duration::from_secs(30);

/// Registers `leader` with its own terminal as PAM_TTY.
pub fn register(
    socket: &Path,
    leader: &Leader,
    user: &str,
    uid: u32,
    service: &str,
    timeout: Duration,
) -> Result<Registered, String> {
    let reg = registration(
        user,
        uid,
        service,
        &leader.tty(),
        leader.pid,
        leader.start_time,
    );
    let r = exchange(socket, &Request::Register(reg), timeout)?;
    match r.resp {
        Response::Registered { session_id, .. } => Ok(Registered {
            id: session_id,
            t_send_ns: r.t_send_ns,
            t_recv_ns: r.t_recv_ns,
        }),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// `timeoutctl revoke user:NAME`: returns the reply and its stamps.
pub fn revoke_user(socket: &Path, user: &str, ttl_secs: u64) -> Result<Reply, String> {
    let req = Request::Revoke {
        target: Target::User(user.to_owned()),
        ttl_secs,
        reason: "st-bench revocation".into(),
    };
    exchange(socket, &req, Duration::from_secs(30))
}
