//! Facts about the calling process and the user database.

use std::ffi::CString;
use std::io::Read as _;

use session_timeout_proto::AUDIT_UNSET;

use crate::logic::Caller;

/// Reads pid, start time, loginuid and audit session id of this process.
pub fn caller() -> Caller {
    Caller {
        pid: std::process::id(),
        start_time: read_self_start_time().unwrap_or(0),
        loginuid: read_u32("/proc/self/loginuid").unwrap_or(AUDIT_UNSET),
        sessionid: read_u32("/proc/self/sessionid").unwrap_or(AUDIT_UNSET),
    }
}

fn read_u32(path: &str) -> Option<u32> {
    read_small(path)?.trim().parse().ok()
}

/// A small /proc file that the kernel prints in one go, in one `read(2)`
/// (`read_to_string` also stats the file and reads until EOF: six reads of
/// `stat` on every open and close). A file that fills the buffer is read on.
fn read_small(path: &str) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 2048];
    let n = file.read(&mut buf).ok()?;
    let mut out = buf[..n].to_vec();
    if n == buf.len() {
        file.read_to_end(&mut out).ok()?;
    }
    String::from_utf8(out).ok()
}

/// Field 22 of /proc/self/stat. The comm field may hold spaces and ')', so
/// the fields are counted from the last ')'.
fn read_self_start_time() -> Option<u64> {
    let stat = read_small("/proc/self/stat")?;
    parse_start_time(&stat)
}

pub(crate) fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // after_comm starts at field 3 (state); start_time is field 22.
    after_comm.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Looks the user up through NSS (getpwnam_r), as the rest of the PAM stack does.
pub fn uid_of(user: &str) -> Option<u32> {
    let name = CString::new(user).ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is plain old data; all-zero is a valid value for an out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live local of the right type, and
        // buf.len() is the true size of buf.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast::<libc::c_char>(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        return Some(pwd.pw_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_hostile_comm() {
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_time(stat), Some(98765));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_start_time("1 (x) S 1"), None);
    }

    #[test]
    fn caller_is_this_process() {
        let c = caller();
        assert_eq!(c.pid, std::process::id());
        assert!(c.start_time > 0);
    }

    #[test]
    fn the_one_read_sees_what_a_read_to_the_end_sees() {
        let c = caller();
        let full = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(Some(c.start_time), parse_start_time(&full));
        let sid = std::fs::read_to_string("/proc/self/sessionid").unwrap();
        assert_eq!(c.sessionid.to_string(), sid.trim());
        let long = std::env::temp_dir().join(format!("st-sys-{}", std::process::id()));
        let text = "7".repeat(5000);
        std::fs::write(&long, &text).unwrap();
        let read = read_small(long.to_str().unwrap());
        std::fs::remove_file(&long).unwrap();
        assert_eq!(
            read.as_deref(),
            Some(text.as_str()),
            "a file past the buffer is read on"
        );
    }

    #[test]
    fn root_is_uid_zero_and_nobody_is_unknown() {
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(uid_of("no-such-user-xyz"), None);
        assert_eq!(uid_of("nul\0byte"), None);
    }
}
