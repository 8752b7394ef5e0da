//! Fixed-window counting per key, for what callers without rights can cause:
//! log lines about refused or malformed requests, and new connections.
//!
//! Each key (a uid, or a uid and an event name) may pass `limit` times per
//! window. What is refused after that is counted, and reported once when the
//! window is over, so a flood costs a few lines per interval instead of one
//! per request. The table is bounded: when it is full, keys whose window has
//! ended are dropped first, and a new key beyond that shares one overflow
//! entry, so a caller cycling through keys cannot grow it.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::core::time::clock::Timestamp;

/// How many distinct keys are tracked at once.
pub const MAX_KEYS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    passed: u32,
    refused: u64,
}

/// A key whose window ended with refusals in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused<K> {
    /// `None` for the shared overflow entry.
    pub key: Option<K>,
    pub count: u64,
}

/// Counts per key and window; see the module doc.
#[derive(Debug)]
pub struct WindowLimiter<K: Eq + Hash + Clone> {
    window: Duration,
    limit: u32,
    keys: HashMap<K, Window>,
    overflow: Option<Window>,
}

impl<K: Eq + Hash + Clone> WindowLimiter<K> {
    /// `limit` passes per key in every `window`.
    pub fn new(window: Duration, limit: u32) -> Self {
        Self {
            window,
            limit,
            keys: HashMap::new(),
            overflow: None,
        }
    }

    /// Whether `key` may pass now; a refusal is counted for [`Self::drain`].
    pub fn admit(&mut self, now: Timestamp, key: &K) -> bool {
        if !self.keys.contains_key(key) && self.keys.len() >= MAX_KEYS {
            self.forget_ended(now);
        }
        let (window, limit) = (self.window, self.limit);
        let fresh = Window {
            start: now,
            passed: 0,
            refused: 0,
        };
        let slot = if self.keys.contains_key(key) || self.keys.len() < MAX_KEYS {
            self.keys.entry(key.clone()).or_insert(fresh)
        } else {
            self.overflow.get_or_insert(fresh)
        };
        if now.since(slot.start) >= window {
            // A new window. Refusals not yet drained are kept and reported
            // with this window's, never lost.
            slot.start = now;
            slot.passed = 0;
        }
        if slot.passed < limit {
            slot.passed += 1;
            true
        } else {
            slot.refused += 1;
            false
        }
    }

    /// The keys with refusals whose window has ended, each reported once.
    pub fn drain(&mut self, now: Timestamp) -> Vec<Refused<K>> {
        let window = self.window;
        let ended = |w: &Window| now.since(w.start) >= window && w.refused > 0;
        let mut out: Vec<Refused<K>> = self
            .keys
            .iter_mut()
            .filter(|(_, w)| ended(w))
            .map(|(k, w)| {
                let count = std::mem::take(&mut w.refused);
                Refused {
                    key: Some(k.clone()),
                    count,
                }
            })
            .collect();
        if let Some(w) = self.overflow.as_mut().filter(|w| ended(w)) {
            out.push(Refused {
                key: None,
                count: std::mem::take(&mut w.refused),
            });
        }
        self.forget_ended(now);
        out
    }

    /// When the next window with refusals ends, for the caller's timer.
    pub fn next_report(&self) -> Option<Timestamp> {
        self.keys
            .values()
            .chain(self.overflow.iter())
            .filter(|w| w.refused > 0)
            .map(|w| w.start + self.window)
            .min()
    }

    /// Drops keys whose window has ended with nothing left to report.
    fn forget_ended(&mut self, now: Timestamp) {
        let window = self.window;
        self.keys
            .retain(|_, w| w.refused > 0 || now.since(w.start) < window);
        if self
            .overflow
            .is_some_and(|w| w.refused == 0 && now.since(w.start) >= window)
        {
            self.overflow = None;
        }
    }

    /// How many keys are tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.keys.len() + usize::from(self.overflow.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn passes_the_limit_then_counts_and_reports_once_after_the_window() {
        let mut l = WindowLimiter::new(Duration::from_secs(10), 3);
        let passed = (0..100).filter(|_| l.admit(at(0), &1000u32)).count();
        assert_eq!(passed, 3);
        assert_eq!(l.drain(at(5)), vec![], "window not over yet");
        assert_eq!(l.next_report(), Some(at(10)));
        assert_eq!(
            l.drain(at(10)),
            vec![Refused {
                key: Some(1000),
                count: 97
            }]
        );
        assert_eq!(l.drain(at(11)), vec![], "reported once");
        assert!(l.admit(at(11), &1000), "a new window passes again");
    }

    #[test]
    fn keys_are_counted_apart() {
        let mut l = WindowLimiter::new(Duration::from_secs(10), 1);
        assert!(l.admit(at(0), &1));
        assert!(l.admit(at(0), &2));
        assert!(!l.admit(at(1), &1));
        let mut r = l.drain(at(10));
        r.sort_by_key(|x| x.key);
        assert_eq!(
            r,
            vec![Refused {
                key: Some(1),
                count: 1
            }]
        );
    }

    #[test]
    fn refusals_across_a_window_boundary_are_not_lost() {
        let mut l = WindowLimiter::new(Duration::from_secs(10), 1);
        assert!(l.admit(at(0), &7));
        assert!(!l.admit(at(1), &7));
        // The next window starts before anyone drained the first.
        assert!(l.admit(at(12), &7));
        assert!(!l.admit(at(13), &7));
        assert_eq!(l.drain(at(22)).iter().map(|r| r.count).sum::<u64>(), 2);
    }

    #[test]
    fn the_table_is_bounded_and_overflow_is_shared() {
        let mut l = WindowLimiter::new(Duration::from_secs(10), 1);
        for k in 0..MAX_KEYS as u32 {
            assert!(l.admit(at(0), &k));
        }
        // New keys beyond the cap share one entry with one pass per window.
        assert!(l.admit(at(1), &u32::MAX));
        assert!(!l.admit(at(1), &(u32::MAX - 1)));
        assert_eq!(l.tracked(), MAX_KEYS + 1);
        let r = l.drain(at(11));
        assert_eq!(
            r,
            vec![Refused {
                key: None,
                count: 1
            }]
        );
        // Ended windows are forgotten, so the table empties again.
        assert_eq!(l.tracked(), 0);
    }
}
