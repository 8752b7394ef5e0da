//! What the module does at open and close, written against a trait so it can
//! be tested without libpam, without a daemon and without root.

use session_timeout_proto::{Registration, Request, Response, SessionKey, AUDIT_UNSET};

use crate::args::{FailMode, ModuleArgs};
use session_timeout_proto::client::ClientError;

/// The PAM items the module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    User,
    Service,
    Tty,
    RHost,
    RUser,
}

/// Severity of a line sent through `pam_syslog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Err,
    Warning,
    Info,
}

/// The calling process, as read from `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caller {
    pub pid: u32,
    pub start_time: u64,
    pub loginuid: u32,
    pub sessionid: u32,
}

/// Everything the logic needs from the outside world.
pub trait Environment {
    fn item(&self, item: Item) -> Option<String>;
    /// Logs through libpam's `pam_syslog` (never `openlog`: we live inside sshd).
    fn log(&self, level: Level, msg: &str);
    /// Shows a PAM_TEXT_INFO message to the user.
    fn info(&self, msg: &str);
    /// Shows a PAM_ERROR_MSG message to the user.
    fn error(&self, msg: &str);
    fn uid_of(&self, user: &str) -> Option<u32>;
    fn caller(&self) -> Caller;
    fn exchange(&self, req: &Request) -> Result<Response, ClientError>;
    /// Remembers the daemon's session id between open and close.
    fn remember_session_id(&mut self, id: u64);
    fn remembered_session_id(&self) -> Option<u64>;
    /// A variable of the PAM environment (`pam_getenv`), e.g. `SSH_AUTH_INFO_0`.
    fn pam_env(&self, _name: &str) -> Option<String> {
        None
    }
    /// PAM data an earlier module stored as a C string (`pam_get_data`).
    fn pam_data_text(&self, _key: &str) -> Option<String> {
        None
    }
    /// The wall clock, in Unix seconds.
    fn now_secs(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The module's answer, mapped to a PAM return code by the FFI shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    SessionError,
    /// The account may not log in now (a revocation).
    PermissionDenied,
    /// This module has no say (account phase, daemon unreachable, fail=open).
    Ignore,
}

pub fn open_session(env: &mut dyn Environment, args: &ModuleArgs) -> Outcome {
    let Some(user) = env.item(Item::User).filter(|u| !u.is_empty()) else {
        env.log(Level::Err, "no PAM user; cannot register the session");
        return fail(env, args, "no user");
    };
    let Some(uid) = env.uid_of(&user) else {
        env.log(Level::Err, &format!("user {user:?} is unknown to NSS"));
        return fail(env, args, "unknown user");
    };
    let caller = env.caller();
    let reg = Registration {
        user,
        uid,
        service: env.item(Item::Service).unwrap_or_default(),
        tty: env.item(Item::Tty).unwrap_or_default(),
        rhost: env.item(Item::RHost).unwrap_or_default(),
        ruser: env.item(Item::RUser).unwrap_or_default(),
        pid: caller.pid,
        start_time: caller.start_time,
        loginuid: caller.loginuid,
        sessionid: caller.sessionid,
        auth: Box::new(crate::auth_facts::gather(env)),
    };
    if caller.sessionid == AUDIT_UNSET {
        env.log(
            Level::Warning,
            "audit session id is unset (is pam_loginuid before this module?); the kill scope falls back to the process subtree",
        );
    }
    match env.exchange(&Request::Register(reg)) {
        Ok(Response::Registered { session_id, banner }) => {
            env.remember_session_id(session_id);
            if !args.quiet && !banner.is_empty() {
                env.info(&banner);
            }
            Outcome::Success
        }
        Ok(Response::Refused { message }) => {
            env.log(
                Level::Warning,
                &format!("login refused by timeoutd: {message}"),
            );
            env.error(&message);
            Outcome::SessionError
        }
        Ok(Response::Error { code, message }) => {
            let why = format!("timeoutd refused the registration ({code:?}): {message}");
            env.log(Level::Err, &why);
            fail(env, args, &why)
        }
        Ok(other) => {
            let why = format!("unexpected reply from timeoutd: {other:?}");
            env.log(Level::Err, &why);
            fail(env, args, &why)
        }
        Err(e) => fail(env, args, &e.to_string()),
    }
}

/// Applies `fail=`: open lets the login in, closed refuses the session.
fn fail(env: &dyn Environment, args: &ModuleArgs, why: &str) -> Outcome {
    match args.fail {
        FailMode::Open => {
            env.log(
                Level::Warning,
                &format!("session not under timeout policy (fail=open): {why}"),
            );
            Outcome::Success
        }
        FailMode::Closed => {
            env.log(Level::Err, &format!("session refused (fail=closed): {why}"));
            Outcome::SessionError
        }
    }
}

/// The account phase: refuses a revoked user before a session is opened.
pub fn account(env: &mut dyn Environment, args: &ModuleArgs) -> Outcome {
    let Some(user) = env.item(Item::User).filter(|u| !u.is_empty()) else {
        return Outcome::Ignore;
    };
    let req = Request::CheckAccess {
        user,
        service: env.item(Item::Service).unwrap_or_default(),
        rhost: env.item(Item::RHost).unwrap_or_default(),
    };
    match env.exchange(&req) {
        Ok(Response::Access { allowed: true, .. }) => Outcome::Success,
        Ok(Response::Access {
            allowed: false,
            message,
        }) => {
            env.log(
                Level::Warning,
                &format!("account refused by timeoutd: {message}"),
            );
            env.error(&message);
            Outcome::PermissionDenied
        }
        Ok(other) => account_unknown(
            env,
            args,
            &format!("unexpected reply from timeoutd: {other:?}"),
        ),
        Err(e) => account_unknown(env, args, &e.to_string()),
    }
}

fn account_unknown(env: &dyn Environment, args: &ModuleArgs, why: &str) -> Outcome {
    match args.fail {
        FailMode::Open => {
            env.log(
                Level::Warning,
                &format!("revocations not checked (fail=open): {why}"),
            );
            Outcome::Ignore
        }
        FailMode::Closed => {
            env.log(Level::Err, &format!("account refused (fail=closed): {why}"));
            Outcome::PermissionDenied
        }
    }
}

/// Unregisters the session. A logout is never refused: failures are only logged.
pub fn close_session(env: &mut dyn Environment) -> Outcome {
    let caller = env.caller();
    let key = SessionKey {
        pid: caller.pid,
        start_time: caller.start_time,
        session_id: env.remembered_session_id().unwrap_or(0),
    };
    match env.exchange(&Request::Unregister(key)) {
        Ok(Response::Unregistered { .. }) => {}
        Ok(other) => env.log(
            Level::Warning,
            &format!("timeoutd did not confirm the logout: {other:?}"),
        ),
        Err(e) => env.log(Level::Warning, &format!("could not unregister: {e}")),
    }
    Outcome::Success
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_timeout_proto::ErrorCode;
    use std::cell::RefCell;

    /// A scripted environment: fixed items, a canned daemon reply, recorded effects.
    struct Fake {
        user: Option<String>,
        reply: Option<Response>,
        sent: RefCell<Vec<Request>>,
        logs: RefCell<Vec<(Level, String)>>,
        infos: RefCell<Vec<String>>,
        errors: RefCell<Vec<String>>,
        id: Option<u64>,
        auth_info: Option<String>,
        runtime_max: Option<String>,
    }

    impl Fake {
        fn new(reply: Option<Response>) -> Self {
            Self {
                user: Some("alice".into()),
                reply,
                sent: RefCell::default(),
                logs: RefCell::default(),
                infos: RefCell::default(),
                errors: RefCell::default(),
                id: None,
                auth_info: None,
                runtime_max: None,
            }
        }
    }

    impl Environment for Fake {
        fn item(&self, item: Item) -> Option<String> {
            match item {
                Item::User => self.user.clone(),
                Item::Service => Some("sshd".into()),
                Item::Tty => Some("ssh".into()),
                Item::RHost => Some("10.1.2.3".into()),
                Item::RUser => None,
            }
        }
        fn log(&self, level: Level, msg: &str) {
            self.logs.borrow_mut().push((level, msg.to_owned()));
        }
        fn info(&self, msg: &str) {
            self.infos.borrow_mut().push(msg.to_owned());
        }
        fn error(&self, msg: &str) {
            self.errors.borrow_mut().push(msg.to_owned());
        }
        fn uid_of(&self, user: &str) -> Option<u32> {
            (user == "alice").then_some(1000)
        }
        fn caller(&self) -> Caller {
            Caller {
                pid: 77,
                start_time: 555,
                loginuid: 1000,
                sessionid: 12,
            }
        }
        fn exchange(&self, req: &Request) -> Result<Response, ClientError> {
            self.sent.borrow_mut().push(req.clone());
            self.reply
                .clone()
                .ok_or(ClientError::Connect(std::io::Error::from(
                    std::io::ErrorKind::NotFound,
                )))
        }
        fn remember_session_id(&mut self, id: u64) {
            self.id = Some(id);
        }
        fn remembered_session_id(&self) -> Option<u64> {
            self.id
        }
        fn pam_env(&self, name: &str) -> Option<String> {
            (name == "SSH_AUTH_INFO_0").then(|| self.auth_info.clone())?
        }
        fn pam_data_text(&self, key: &str) -> Option<String> {
            (key == "systemd.runtime_max_sec").then(|| self.runtime_max.clone())?
        }
        fn now_secs(&self) -> i64 {
            1_700_000_000
        }
    }

    fn sent_auth(env: &Fake) -> session_timeout_proto::AuthFacts {
        match &env.sent.borrow()[0] {
            Request::Register(reg) => (*reg.auth).clone(),
            other => panic!("expected a register request, got {other:?}"),
        }
    }

    #[test]
    fn open_sends_the_methods_and_the_runtime_limit() {
        let mut env = Fake::new(Some(Response::Registered {
            session_id: 1,
            banner: String::new(),
        }));
        env.auth_info = Some("publickey ssh-ed25519 AAAA\nkeyboard-interactive/pam\n".into());
        env.runtime_max = Some("600".into());
        assert_eq!(
            open_session(&mut env, &args(FailMode::Closed, false)),
            Outcome::Success
        );
        let auth = sent_auth(&env);
        assert_eq!(auth.methods, ["publickey", "keyboard-interactive/pam"]);
        assert_eq!(auth.runtime_max_at, 1_700_000_600);
    }

    #[test]
    fn garbage_auth_info_and_runtime_still_register_the_login() {
        let mut env = Fake::new(Some(Response::Registered {
            session_id: 1,
            banner: String::new(),
        }));
        let blob = "A".repeat(200 * 1024);
        env.auth_info = Some(format!(
            "publickey ssh-ed25519-cert-v01@openssh.com {blob}\n\u{1b}[2J\n"
        ));
        env.runtime_max = Some("soon".into());
        assert_eq!(
            open_session(&mut env, &args(FailMode::Closed, false)),
            Outcome::Success
        );
        let auth = sent_auth(&env);
        assert!(
            matches!(auth.cert, session_timeout_proto::Cert::Unreadable(_)),
            "{auth:?}"
        );
        assert_eq!(auth.runtime_max_at, 0);
        assert!(env
            .logs
            .borrow()
            .iter()
            .any(|(_, m)| m.contains("systemd.runtime_max_sec")));
        // What is sent always decodes again: the caps hold.
        let body = env.sent.borrow()[0].encode();
        assert!(Request::decode(&body).is_ok());
    }

    fn args(fail: FailMode, quiet: bool) -> ModuleArgs {
        ModuleArgs {
            fail,
            quiet,
            ..ModuleArgs::default()
        }
    }

    #[test]
    fn open_sends_everything_the_daemon_needs() {
        let mut env = Fake::new(Some(Response::Registered {
            session_id: 41,
            banner: "Idle sessions close after 15m.".into(),
        }));
        assert_eq!(
            open_session(&mut env, &args(FailMode::Open, false)),
            Outcome::Success
        );
        let sent = env.sent.borrow();
        let Request::Register(reg) = &sent[0] else {
            panic!("expected a register request, got {sent:?}");
        };
        assert_eq!(
            (
                reg.user.as_str(),
                reg.uid,
                reg.service.as_str(),
                reg.tty.as_str()
            ),
            ("alice", 1000, "sshd", "ssh")
        );
        assert_eq!((reg.rhost.as_str(), reg.ruser.as_str()), ("10.1.2.3", ""));
        assert_eq!(
            (reg.pid, reg.start_time, reg.loginuid, reg.sessionid),
            (77, 555, 1000, 12)
        );
        assert_eq!(env.id, Some(41));
        assert_eq!(
            env.infos.borrow().as_slice(),
            ["Idle sessions close after 15m."]
        );
    }

    #[test]
    fn quiet_suppresses_the_banner() {
        let mut env = Fake::new(Some(Response::Registered {
            session_id: 1,
            banner: "hello".into(),
        }));
        open_session(&mut env, &args(FailMode::Open, true));
        assert!(env.infos.borrow().is_empty());
    }

    #[test]
    fn daemon_down_fail_open_lets_the_login_in_and_says_why() {
        let mut env = Fake::new(None);
        assert_eq!(
            open_session(&mut env, &args(FailMode::Open, false)),
            Outcome::Success
        );
        let logs = env.logs.borrow();
        assert!(logs.iter().any(|(l, m)| *l == Level::Warning
            && m.contains("fail=open")
            && m.contains("cannot connect")));
    }

    #[test]
    fn daemon_down_fail_closed_refuses() {
        let mut env = Fake::new(None);
        assert_eq!(
            open_session(&mut env, &args(FailMode::Closed, false)),
            Outcome::SessionError
        );
        assert!(env
            .logs
            .borrow()
            .iter()
            .any(|(l, m)| *l == Level::Err && m.contains("fail=closed")));
    }

    #[test]
    fn daemon_error_reply_follows_fail_mode() {
        let reply = Response::Error {
            code: ErrorCode::PermissionDenied,
            message: "no".into(),
        };
        let mut env = Fake::new(Some(reply.clone()));
        assert_eq!(
            open_session(&mut env, &args(FailMode::Closed, false)),
            Outcome::SessionError
        );
        let mut env = Fake::new(Some(reply));
        assert_eq!(
            open_session(&mut env, &args(FailMode::Open, false)),
            Outcome::Success
        );
    }

    #[test]
    fn missing_or_unknown_user_is_not_registered() {
        let mut env = Fake::new(Some(Response::Unregistered { session_id: 0 }));
        env.user = Some("mallory".into());
        assert_eq!(
            open_session(&mut env, &args(FailMode::Closed, false)),
            Outcome::SessionError
        );
        env.user = None;
        assert_eq!(
            open_session(&mut env, &args(FailMode::Closed, false)),
            Outcome::SessionError
        );
        assert!(env.sent.borrow().is_empty());
    }

    #[test]
    fn a_revoked_user_is_refused_whatever_the_fail_mode() {
        let refused = Response::Refused {
            message: "Logins for alice are suspended".into(),
        };
        let mut env = Fake::new(Some(refused));
        assert_eq!(
            open_session(&mut env, &args(FailMode::Open, false)),
            Outcome::SessionError
        );
        assert_eq!(
            env.errors.borrow().as_slice(),
            ["Logins for alice are suspended"]
        );
    }

    #[test]
    fn account_phase_asks_the_daemon() {
        let mut env = Fake::new(Some(Response::Access {
            allowed: false,
            message: "suspended".into(),
        }));
        assert_eq!(
            account(&mut env, &args(FailMode::Open, false)),
            Outcome::PermissionDenied
        );
        assert_eq!(env.errors.borrow().as_slice(), ["suspended"]);
        let mut env = Fake::new(Some(Response::Access {
            allowed: true,
            message: String::new(),
        }));
        assert_eq!(
            account(&mut env, &args(FailMode::Closed, false)),
            Outcome::Success
        );
        let mut env = Fake::new(None);
        assert_eq!(
            account(&mut env, &args(FailMode::Open, false)),
            Outcome::Ignore
        );
        let mut env = Fake::new(None);
        assert_eq!(
            account(&mut env, &args(FailMode::Closed, false)),
            Outcome::PermissionDenied
        );
    }

    #[test]
    fn close_sends_the_remembered_key_and_never_fails() {
        let mut env = Fake::new(None);
        env.id = Some(9);
        assert_eq!(close_session(&mut env), Outcome::Success);
        assert_eq!(
            env.sent.borrow()[0],
            Request::Unregister(SessionKey {
                pid: 77,
                start_time: 555,
                session_id: 9
            })
        );
        assert!(env
            .logs
            .borrow()
            .iter()
            .any(|(_, m)| m.contains("could not unregister")));
    }
}
