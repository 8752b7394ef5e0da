//! libpam, called in-process: `pam_start`, `pam_set_item(PAM_TTY)`,
//! `pam_open_session`, `pam_close_session`, `pam_end`, with a conversation
//! function that accepts informational messages and refuses prompts.
//!
//! Under `LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1` these symbols resolve
//! to pam_wrapper's, which reads the stacks from `PAM_WRAPPER_SERVICE_DIR`.

use std::ffi::{c_char, c_int, c_void, CString};

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
    fn pam_set_item(pamh: *mut PamHandleOpaque, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_open_session(pamh: *mut PamHandleOpaque, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut PamHandleOpaque, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandleOpaque, status: c_int) -> c_int;
}

pub const PAM_SUCCESS: c_int = 0;
const PAM_TTY: c_int = 3;
const PAM_CONV_ERR: c_int = 19;
const PAM_BUF_ERR: c_int = 5;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

/// Answers PAM_TEXT_INFO and PAM_ERROR_MSG with empty responses (as sshd
/// does after showing them) and refuses any prompt.
extern "C" fn conversation(
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

/// One PAM transaction (`pam_start` .. `pam_end`).
pub struct Pam {
    h: *mut PamHandleOpaque,
    _conv: Box<PamConv>,
    _tty: Option<CString>,
}

impl Pam {
    pub fn start(service: &str, user: &str) -> Result<Pam, c_int> {
        let service = CString::new(service).map_err(|_| PAM_BUF_ERR)?;
        let user = CString::new(user).map_err(|_| PAM_BUF_ERR)?;
        let conv = Box::new(PamConv {
            conv: Some(conversation),
            appdata_ptr: std::ptr::null_mut(),
        });
        let mut h: *mut PamHandleOpaque = std::ptr::null_mut();
        // SAFETY: all pointers are valid NUL-terminated strings or live
        // structures for the duration of the call; libpam copies them.
        let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &*conv, &mut h) };
        if rc != PAM_SUCCESS || h.is_null() {
            return Err(rc);
        }
        Ok(Pam {
            h,
            _conv: conv,
            _tty: None,
        })
    }

    pub fn set_tty(&mut self, tty: &str) -> c_int {
        let Ok(c) = CString::new(tty) else {
            return PAM_BUF_ERR;
        };
        // SAFETY: `h` is a live handle; libpam copies the string.
        let rc = unsafe { pam_set_item(self.h, PAM_TTY, c.as_ptr().cast()) };
        self._tty = Some(c);
        rc
    }

    pub fn open_session(&mut self) -> c_int {
        // SAFETY: `h` is a live handle from pam_start.
        unsafe { pam_open_session(self.h, 0) }
    }

    pub fn close_session(&mut self) -> c_int {
        // SAFETY: `h` is a live handle from pam_start.
        unsafe { pam_close_session(self.h, 0) }
    }
}

impl Drop for Pam {
    fn drop(&mut self) {
        // SAFETY: `h` is a live handle; it is not used after pam_end.
        unsafe { pam_end(self.h, PAM_SUCCESS) };
    }
}
