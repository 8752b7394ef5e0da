//! The N sessions that lived or idled longest relative to their rule's
//! limits, kept in a bounded heap while the lines stream past.
//!
//! Score: the larger of duration / limit_max and idle_max / limit_idle, over
//! the limits the session had. A session with both limits off is ranked
//! after every session with a limit, by the larger of its duration and
//! idle_max in seconds.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::report::read::summary::{End, Summary, Who};

/// One listed outlier.
#[derive(Debug, Clone)]
pub struct Outlier {
    /// Whether the score is relative to a limit.
    pub limited: bool,
    pub score: f64,
    /// `"lifetime"` or `"idle"`: which figure gave the score.
    pub basis: &'static str,
    pub host: String,
    pub who: Who,
    pub duration: u64,
    pub idle_max: u64,
    pub limit_idle: Option<u64>,
    pub limit_max: Option<u64>,
    pub end: End,
}

impl Outlier {
    fn key(&self) -> (bool, f64, u64) {
        (self.limited, self.score, self.who.id)
    }
}

impl PartialEq for Outlier {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Outlier {}
impl PartialOrd for Outlier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Outlier {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.key(), other.key());
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.cmp(&b.2).reverse())
    }
}

/// (limited, score, basis) of a summary.
fn score(s: &Summary) -> (bool, f64, &'static str) {
    let life = s.limit_max.map(|m| s.duration as f64 / m as f64);
    let idle = s.limit_idle.map(|l| s.idle_max as f64 / l as f64);
    match (life, idle) {
        (Some(l), Some(i)) if i > l => (true, i, "idle"),
        (Some(l), _) => (true, l, "lifetime"),
        (None, Some(i)) => (true, i, "idle"),
        (None, None) if s.idle_max > s.duration => (false, s.idle_max as f64, "idle"),
        (None, None) => (false, s.duration as f64, "lifetime"),
    }
}

/// The top `n` seen so far.
#[derive(Debug, Default)]
pub struct Outliers {
    n: usize,
    heap: BinaryHeap<Reverse<Outlier>>,
}

impl Outliers {
    pub fn new(n: usize) -> Outliers {
        Outliers {
            n,
            heap: BinaryHeap::with_capacity(n + 1),
        }
    }

    pub fn offer(&mut self, host: &str, s: &Summary) {
        if self.n == 0 {
            return;
        }
        let (limited, score, basis) = score(s);
        if self.heap.len() == self.n {
            if let Some(Reverse(min)) = self.heap.peek() {
                if (limited, score) <= (min.limited, min.score) {
                    return;
                }
            }
        }
        self.heap.push(Reverse(Outlier {
            limited,
            score,
            basis,
            host: host.to_owned(),
            who: s.who.clone(),
            duration: s.duration,
            idle_max: s.idle_max,
            limit_idle: s.limit_idle,
            limit_max: s.limit_max,
            end: s.end,
        }));
        if self.heap.len() > self.n {
            self.heap.pop();
        }
    }

    /// The outliers, the most extreme first.
    pub fn into_sorted(self) -> Vec<Outlier> {
        let mut v: Vec<Outlier> = self.heap.into_iter().map(|Reverse(o)| o).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u64, duration: u64, idle_max: u64, li: Option<u64>, lm: Option<u64>) -> Summary {
        Summary {
            who: Who {
                id,
                ..Who::default()
            },
            duration,
            active: 0,
            idle_max,
            gaps: vec![],
            warnings: 0,
            tamper: 0,
            end: End::Logout,
            dry_run_expiries: 0,
            limit_idle: li,
            limit_max: lm,
        }
    }

    #[test]
    fn keeps_the_top_n_relative_to_limits() {
        let mut o = Outliers::new(3);
        o.offer("h", &s(1, 100, 10, Some(100), Some(1000))); // 0.1
        o.offer("h", &s(2, 900, 950, Some(1000), Some(1000))); // 0.95 idle
        o.offer("h", &s(3, 99_999, 99_999, None, None)); // unlimited
        o.offer("h", &s(4, 2000, 10, Some(100), Some(1000))); // 2.0 lifetime
        o.offer("h", &s(5, 500, 10, None, Some(1000))); // 0.5
        let v = o.into_sorted();
        let ids: Vec<u64> = v.iter().map(|x| x.who.id).collect();
        assert_eq!(ids, vec![4, 2, 5]);
        assert_eq!(v[0].basis, "lifetime");
        assert_eq!(v[1].basis, "idle");
    }

    #[test]
    fn unlimited_sessions_rank_by_seconds_after_limited_ones() {
        let mut o = Outliers::new(3);
        o.offer("h", &s(1, 10, 5, None, None));
        o.offer("h", &s(2, 50, 500, None, None));
        o.offer("h", &s(3, 1, 0, Some(100), None));
        let ids: Vec<u64> = o.into_sorted().iter().map(|x| x.who.id).collect();
        assert_eq!(ids, vec![3, 2, 1]);
        let mut none = Outliers::new(0);
        none.offer("h", &s(1, 1, 1, None, None));
        assert!(none.into_sorted().is_empty());
    }
}
