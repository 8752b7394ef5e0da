//! The daily quota ledger in `[daemon] state_dir`: one small file, rewritten
//! whole at each login and logout of a user with a quota, through a
//! temporary file, fsync and rename (a crash leaves the old or the new
//! ledger, never a mix), like the session table's snapshot.

use std::io;
use std::path::Path;

use crate::core::state::quota::QuotaLedger;
use crate::host::store::ids::write_atomic;

/// The file's name in the state directory.
pub(crate) const QUOTA_FILE: &str = "quota";

/// Writes the ledger's text.
pub(crate) fn save(state_dir: &Path, text: &str) -> io::Result<()> {
    write_atomic(&state_dir.join(QUOTA_FILE), text.as_bytes())
}

/// Reads the ledger; none yet is an empty one.
pub(crate) fn load(state_dir: &Path) -> Result<QuotaLedger, String> {
    match std::fs::read_to_string(state_dir.join(QUOTA_FILE)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(QuotaLedger::default()),
        Err(e) => Err(e.to_string()),
        Ok(text) => QuotaLedger::from_text(&text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::quota::DayClock;
    use crate::core::time::clock::Timestamp;
    use jiff::tz::TimeZone;

    #[test]
    fn a_saved_ledger_reads_back_and_a_bad_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("st-quota-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), QuotaLedger::default());
        let days = DayClock::new(TimeZone::UTC, 0, 0);
        let mut q = QuotaLedger::default();
        let t = Timestamp::from_secs(1_800_000_000);
        q.open("kiosk", t, &days);
        save(&dir, &q.to_text()).unwrap();
        assert_eq!(load(&dir).unwrap().to_text(), q.to_text());
        std::fs::write(dir.join(QUOTA_FILE), "kiosk\tnot a number\n").unwrap();
        assert!(load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
