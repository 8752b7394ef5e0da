//! The real wall clock behind the core's `Clock` trait.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::time::clock::{Clock, Timestamp};

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}
