//! `pam_session_timeout.so`: registers each login session with timeoutd.
//!
//! This file is the thin FFI shell: it turns the libpam handle into the
//! [`logic::Environment`] trait and maps outcomes to PAM return codes. The
//! behaviour lives in `logic`, testable without libpam. `pam_hooks!` checks
//! for null handles and wraps every hook in `catch_unwind`, so a panic here
//! becomes PAM_ABORT instead of unwinding into sshd.

pub mod args;
pub mod auth_facts;
pub mod authinfo;
pub mod client;
pub mod logic;
mod sys;

use std::ffi::{CStr, CString};

use pam::constants::{PamFlag, PamResultCode, PAM_ERROR_MSG, PAM_SILENT, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::items::{RHost, RUser, Service, Tty, User};
use pam::module::{PamHandle, PamHooks};
use pam::pam_hooks;
use session_timeout_proto::{Request, Response};

use crate::args::ModuleArgs;
use crate::logic::{Caller, Environment, Item, Level, Outcome};
use session_timeout_proto::client::ClientError;

// SAFETY: this is libpam's documented prototype,
// `void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...)`;
// the one caller below passes the live handle and a constant "%s" format.
#[link(name = "pam")]
unsafe extern "C" {
    /// libpam's logger: prefixes the module and service name, and does not
    /// call openlog, so the host process's syslog ident is left alone.
    fn pam_syslog(pamh: *const PamHandle, priority: libc::c_int, fmt: *const libc::c_char, ...);
}

// SAFETY: libpam's documented prototypes,
// `const char *pam_getenv(pam_handle_t *pamh, const char *name)` and
// `int pam_get_data(const pam_handle_t *pamh, const char *name, const void **data)`.
#[link(name = "pam")]
unsafe extern "C" {
    fn pam_getenv(pamh: *const PamHandle, name: *const libc::c_char) -> *const libc::c_char;
    fn pam_get_data(
        pamh: *const PamHandle,
        name: *const libc::c_char,
        data: *mut *const libc::c_void,
    ) -> libc::c_int;
}

/// Longest `systemd.runtime_max_sec` string read (a u64 has 20 digits).
const RUNTIME_MAX_TEXT: usize = 32;

const DATA_KEY: &str = "pam_session_timeout_session_id";

struct SessionTimeout;
pam_hooks!(SessionTimeout);

impl PamHooks for SessionTimeout {
    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let mut env = Libpam::new(pamh, &args, flags);
        let args = env.args.clone();
        to_code(logic::open_session(&mut env, &args))
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let mut env = Libpam::new(pamh, &args, flags);
        let args = env.args.clone();
        to_code(logic::account(&mut env, &args))
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let mut env = Libpam::new(pamh, &args, flags);
        to_code(logic::close_session(&mut env))
    }
}

fn to_code(outcome: Outcome) -> PamResultCode {
    match outcome {
        Outcome::Success => PamResultCode::PAM_SUCCESS,
        Outcome::SessionError => PamResultCode::PAM_SESSION_ERR,
        Outcome::PermissionDenied => PamResultCode::PAM_PERM_DENIED,
        Outcome::Ignore => PamResultCode::PAM_IGNORE,
    }
}

/// The real environment: libpam items, pam_syslog, the conversation, /proc/self, NSS.
struct Libpam<'a> {
    pamh: &'a mut PamHandle,
    args: ModuleArgs,
    silent: bool,
}

impl<'a> Libpam<'a> {
    fn new(pamh: &'a mut PamHandle, raw: &[&CStr], flags: PamFlag) -> Self {
        let strings: Vec<String> = raw
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let (args, problems) = ModuleArgs::parse(strings.iter().map(String::as_str));
        let env = Self {
            pamh,
            args,
            silent: flags & PAM_SILENT != 0,
        };
        for p in problems {
            env.log(Level::Warning, &p);
        }
        env
    }
}

fn lossy(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

impl Environment for Libpam<'_> {
    fn item(&self, item: Item) -> Option<String> {
        let h = &*self.pamh;
        match item {
            Item::User => h.get_item::<User>().ok().flatten().map(|v| lossy(v.0)),
            Item::Service => h.get_item::<Service>().ok().flatten().map(|v| lossy(v.0)),
            Item::Tty => h.get_item::<Tty>().ok().flatten().map(|v| lossy(v.0)),
            Item::RHost => h.get_item::<RHost>().ok().flatten().map(|v| lossy(v.0)),
            Item::RUser => h.get_item::<RUser>().ok().flatten().map(|v| lossy(v.0)),
        }
    }

    fn log(&self, level: Level, msg: &str) {
        let priority = match level {
            Level::Err => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Info => libc::LOG_INFO,
        };
        let Ok(msg) = CString::new(msg.replace('\0', "\\0")) else {
            return;
        };
        // SAFETY: pamh is the live handle libpam gave this hook; the format is a
        // constant "%s" and its one argument is a NUL-terminated string that
        // outlives the call.
        unsafe { pam_syslog(&*self.pamh, priority, c"%s".as_ptr(), msg.as_ptr()) };
    }

    fn info(&self, msg: &str) {
        if self.silent {
            return;
        }
        if let Ok(Some(conv)) = self.pamh.get_item::<Conv>() {
            let _ = conv.send(PAM_TEXT_INFO, msg);
        }
    }

    fn error(&self, msg: &str) {
        if let Ok(Some(conv)) = self.pamh.get_item::<Conv>() {
            let _ = conv.send(PAM_ERROR_MSG, msg);
        }
    }

    fn uid_of(&self, user: &str) -> Option<u32> {
        sys::uid_of(user)
    }

    fn caller(&self) -> Caller {
        sys::caller()
    }

    fn exchange(&self, req: &Request) -> Result<Response, ClientError> {
        client::exchange(&self.args.socket, req, self.args.timeout)
    }

    fn remember_session_id(&mut self, id: u64) {
        if self.pamh.set_data(DATA_KEY, Box::new(id)).is_err() {
            self.log(
                Level::Warning,
                "could not remember the session id until close",
            );
        }
    }

    fn remembered_session_id(&self) -> Option<u64> {
        // SAFETY: DATA_KEY is only ever stored by remember_session_id, as a Box<u64>.
        unsafe { self.pamh.get_data::<u64>(DATA_KEY) }.ok().copied()
    }

    fn pam_env(&self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        // SAFETY: pamh is the live handle of this hook and name is NUL-terminated;
        // libpam returns NULL or a NUL-terminated string it owns, which is copied
        // at once, before anything can change the PAM environment.
        let value = unsafe { pam_getenv(&*self.pamh, name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: non-NULL results of pam_getenv are NUL-terminated (see above).
        Some(lossy(unsafe { CStr::from_ptr(value) }))
    }

    fn pam_data_text(&self, key: &str) -> Option<String> {
        let key = CString::new(key).ok()?;
        let mut data: *const libc::c_void = std::ptr::null();
        // SAFETY: pamh is the live handle, key is NUL-terminated and data is a
        // live out-pointer.
        let rc = unsafe { pam_get_data(&*self.pamh, key.as_ptr(), &mut data) };
        if rc != 0 || data.is_null() {
            return None;
        }
        let text = data.cast::<libc::c_char>();
        // SAFETY: by pam_systemd's contract the data under this key is a C string
        // (pam_malcontent stores one); strnlen reads at most RUNTIME_MAX_TEXT bytes
        // of it, so a missing terminator cannot run far.
        let len = unsafe { libc::strnlen(text, RUNTIME_MAX_TEXT) };
        if len == RUNTIME_MAX_TEXT {
            return Some(String::from("(too long)"));
        }
        // SAFETY: the first len bytes were just read by strnlen.
        let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}
