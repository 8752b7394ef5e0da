//! User and group lookups through NSS (libc), as the rest of the login does.

use std::ffi::{CStr, CString};

/// A user's name, uid and primary gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Runs a reentrant NSS lookup with a buffer that grows on ERANGE.
fn with_buffer<T>(mut call: impl FnMut(&mut [u8]) -> Result<Option<T>, i32>) -> Option<T> {
    let mut buf = vec![0u8; 4096];
    loop {
        match call(&mut buf) {
            Ok(v) => return v,
            Err(libc::ERANGE) if buf.len() < 1 << 22 => buf.resize(buf.len() * 2, 0),
            Err(_) => return None,
        }
    }
}

pub fn user_by_name(user: &str) -> Option<UserEntry> {
    let name = CString::new(user).ok()?;
    with_buffer(|buf| {
        // SAFETY: passwd is plain old data; all-zero is a valid out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers refer to live locals; buf.len() is buf's true size.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        Ok((!result.is_null()).then(|| UserEntry {
            name: user.to_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }))
    })
}

pub(crate) fn user_by_uid(uid: u32) -> Option<UserEntry> {
    with_buffer(|buf| {
        // SAFETY: passwd is plain old data; all-zero is a valid out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers refer to live locals; buf.len() is buf's true size.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        if result.is_null() || pwd.pw_name.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        Ok(Some(UserEntry {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }))
    })
}

pub fn group_name(gid: u32) -> Option<String> {
    with_buffer(|buf| {
        // SAFETY: group is plain old data; all-zero is a valid out-parameter.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: all pointers refer to live locals; buf.len() is buf's true size.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        if result.is_null() || grp.gr_name.is_null() {
            return Ok(None);
        }
        // SAFETY: on success gr_name points to a NUL-terminated string inside buf.
        Ok(Some(
            unsafe { CStr::from_ptr(grp.gr_name) }
                .to_string_lossy()
                .into_owned(),
        ))
    })
}

/// Names of the user's primary and supplementary groups; empty if unknown.
pub fn groups_of(user: &str) -> Vec<String> {
    let Some(entry) = user_by_name(user) else {
        return Vec::new();
    };
    let Ok(name) = CString::new(user) else {
        return Vec::new();
    };
    let mut gids: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = gids.len() as libc::c_int;
        // SAFETY: gids has room for n entries, and n is updated with the real count.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), entry.gid, gids.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            gids.truncate(usize::try_from(n).unwrap_or(0));
            break;
        }
        let want = usize::try_from(n).unwrap_or(0).max(gids.len() * 2);
        if want > 65_536 {
            return Vec::new();
        }
        gids.resize(want, 0);
    }
    let mut names: Vec<String> = gids.into_iter().filter_map(group_name).collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves() {
        let root = user_by_name("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(user_by_uid(0).unwrap().name, "root");
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert!(groups_of("root").contains(&"root".to_owned()));
    }

    #[test]
    fn unknown_users_have_nothing() {
        assert_eq!(user_by_name("no-such-user-st"), None);
        assert!(groups_of("no-such-user-st").is_empty());
        assert!(groups_of("nul\0").is_empty());
    }
}
