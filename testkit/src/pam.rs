//! libpam, called in-process: `pam_start` (or `pam_start_confdir`, Linux-PAM
//! 1.4+, for stacks in a directory of our own), `pam_set_item`,
//! `pam_open_session`, `pam_close_session`, `pam_end`.
//!
//! Under `LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1` these symbols resolve
//! to pam_wrapper's, which reads the stacks from `PAM_WRAPPER_SERVICE_DIR`.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandleOpaque {
    _private: [u8; 0],
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandleOpaque,
    ) -> c_int;
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandleOpaque,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandleOpaque, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_open_session(pamh: *mut PamHandleOpaque, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut PamHandleOpaque, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandleOpaque, status: c_int) -> c_int;
}

pub const PAM_SUCCESS: c_int = 0;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_CONV_ERR: c_int = 19;
const PAM_BUF_ERR: c_int = 5;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

/// How the application answers the modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversation {
    /// Accepts informational and error messages, as sshd does after showing
    /// them, and refuses any prompt.
    ShowMessages,
    /// Refuses every call (a stack that talks to the user fails).
    RefuseAll,
}

extern "C" fn show_messages(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    _appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0 || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    for i in 0..num_msg as usize {
        // SAFETY: libpam passes an array of `num_msg` valid message pointers.
        let style = unsafe { (**msg.add(i)).msg_style };
        if style != PAM_TEXT_INFO && style != PAM_ERROR_MSG {
            return PAM_CONV_ERR;
        }
    }
    // SAFETY: calloc returns zeroed memory (null `resp` strings) or null;
    // libpam frees the array with free().
    let out = unsafe { libc::calloc(num_msg as usize, std::mem::size_of::<PamResponse>()) };
    if out.is_null() {
        return PAM_BUF_ERR;
    }
    // SAFETY: `resp` is libpam's out-parameter.
    unsafe { *resp = out.cast() };
    PAM_SUCCESS
}

extern "C" fn refuse_all(
    _num_msg: c_int,
    _msg: *mut *const PamMessage,
    _resp: *mut *mut PamResponse,
    _appdata: *mut c_void,
) -> c_int {
    PAM_CONV_ERR
}

/// One PAM transaction (`pam_start` .. `pam_end`). Dropping it calls
/// `pam_end` with PAM_SUCCESS; [`Pam::end`] passes another status.
pub struct Pam {
    h: *mut PamHandleOpaque,
    _conv: Box<PamConv>,
    _items: Vec<CString>,
    end_status: c_int,
}

fn c_string(s: &[u8]) -> Result<CString, c_int> {
    CString::new(s).map_err(|_| PAM_BUF_ERR)
}

impl Pam {
    /// `pam_start(service, user)` with the [`Conversation::ShowMessages`] answers.
    pub fn start(service: &str, user: &str) -> Result<Pam, c_int> {
        Pam::start_with(service, user, Conversation::ShowMessages, None)
    }

    /// `pam_start`, or `pam_start_confdir` when `confdir` names the directory
    /// of the stacks (no /etc/pam.d, no pam_wrapper).
    pub fn start_with(
        service: &str,
        user: &str,
        conversation: Conversation,
        confdir: Option<&Path>,
    ) -> Result<Pam, c_int> {
        let service = c_string(service.as_bytes())?;
        let user = c_string(user.as_bytes())?;
        let confdir = confdir
            .map(|d| c_string(d.as_os_str().as_encoded_bytes()))
            .transpose()?;
        let conv = Box::new(PamConv {
            conv: Some(match conversation {
                Conversation::ShowMessages => show_messages,
                Conversation::RefuseAll => refuse_all,
            }),
            appdata_ptr: std::ptr::null_mut(),
        });
        let mut h: *mut PamHandleOpaque = std::ptr::null_mut();
        let rc = match &confdir {
            // SAFETY: all pointers are valid NUL-terminated strings or live
            // structures for the duration of the call; libpam copies the
            // strings and keeps `conv`, which lives as long as the handle.
            None => unsafe { pam_start(service.as_ptr(), user.as_ptr(), &*conv, &mut h) },
            // SAFETY: as above, with `dir` NUL-terminated too.
            Some(dir) => unsafe {
                pam_start_confdir(
                    service.as_ptr(),
                    user.as_ptr(),
                    &*conv,
                    dir.as_ptr(),
                    &mut h,
                )
            },
        };
        if rc != PAM_SUCCESS || h.is_null() {
            return Err(rc);
        }
        Ok(Pam {
            h,
            _conv: conv,
            _items: Vec::new(),
            end_status: PAM_SUCCESS,
        })
    }

    fn set_item(&mut self, item: c_int, value: &str) -> c_int {
        let Ok(c) = CString::new(value) else {
            return PAM_BUF_ERR;
        };
        // SAFETY: `h` is a live handle; libpam copies the string.
        let rc = unsafe { pam_set_item(self.h, item, c.as_ptr().cast()) };
        self._items.push(c);
        rc
    }

    /// PAM_TTY.
    pub fn set_tty(&mut self, tty: &str) -> c_int {
        self.set_item(PAM_TTY, tty)
    }

    /// PAM_RHOST.
    pub fn set_rhost(&mut self, rhost: &str) -> c_int {
        self.set_item(PAM_RHOST, rhost)
    }

    pub fn open_session(&mut self) -> c_int {
        // SAFETY: `h` is a live handle from pam_start.
        unsafe { pam_open_session(self.h, 0) }
    }

    pub fn close_session(&mut self) -> c_int {
        // SAFETY: `h` is a live handle from pam_start.
        unsafe { pam_close_session(self.h, 0) }
    }

    /// `pam_end` with `status` (the result of the last call, for the
    /// modules' cleanup functions).
    pub fn end(mut self, status: c_int) {
        self.end_status = status;
    }
}

impl Drop for Pam {
    fn drop(&mut self) {
        // SAFETY: `h` is a live handle; it is not used after pam_end.
        unsafe { pam_end(self.h, self.end_status) };
    }
}
