//! Users and groups: NSS lookups, the login path's short group cache, and
//! the PAM account check the daemon runs in a child.

pub mod check_starter;
pub(crate) mod groups_cache;
pub mod nss;
pub mod pam_account;
pub mod parent_watch;
