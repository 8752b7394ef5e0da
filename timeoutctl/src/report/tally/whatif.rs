//! What proposed limits would have done to one ended session, computed from
//! the idle gaps it recorded (see docs/report.md, "What-if"):
//! - idle limit L: cut at OFF + L of the first recorded gap with LEN >= L;
//! - max limit M: cut at M if the session lasted M or longer;
//! - the earlier cut wins; the time cut off is duration - cut point.
//!
//! A summary keeps only its 16 longest gaps. If `idle_max >= L` but no
//! recorded gap qualifies, or all 16 recorded do (an earlier, unrecorded one
//! might too), the session is still cut (idle_max proves a long enough gap)
//! and the time cut is a lower bound: from the earliest recorded qualifying
//! gap, else `idle_max - L` (the gap of idle_max, wherever it lay, went on
//! that long past the cut).

use crate::report::read::summary::{Summary, MAX_GAPS};

/// Proposed limits in seconds; `None` is "no such limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub idle: Option<u64>,
    pub max: Option<u64>,
}

/// Where a session would have been ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Seconds after login.
    pub at: u64,
    /// Session time that would not have happened.
    pub time_cut: u64,
    /// Whether `time_cut` is a lower bound (the gaps recorded do not settle it).
    pub lower_bound: bool,
}

/// Where the idle limit `limit` would cut: (offset, lower bound?).
fn idle_cut(s: &Summary, limit: u64) -> Option<(u64, bool)> {
    if s.idle_max < limit {
        return None;
    }
    let qualifying = s.gaps.iter().filter(|(_, len)| *len >= limit).count();
    let all_full = s.gaps.len() >= MAX_GAPS && qualifying == s.gaps.len();
    match s.gaps.iter().find(|(_, len)| *len >= limit) {
        Some((off, _)) => Some((off.saturating_add(limit), all_full)),
        None => {
            let at = s.duration.saturating_sub(s.idle_max - limit);
            Some((at, true))
        }
    }
}

/// The cut `limits` would have made in `s`, `None` if it would have lived on.
pub fn cut(s: &Summary, limits: Limits) -> Option<Cut> {
    let idle = limits.idle.and_then(|l| idle_cut(s, l));
    let max = limits.max.filter(|m| s.duration >= *m).map(|m| (m, false));
    let (at, lower_bound) = match (idle, max) {
        (Some(i), Some(m)) if m.0 <= i.0 => m,
        (Some(i), _) => i,
        (None, Some(m)) => m,
        (None, None) => return None,
    };
    let at = at.min(s.duration);
    Some(Cut {
        at,
        time_cut: s.duration - at,
        lower_bound,
    })
}

/// Totals of what-if cuts over a set of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub cut: u64,
    pub time_cut_secs: u64,
    /// Of `cut`, how many the current policy ended anyway.
    pub already_ended: u64,
    /// Of `cut`, how many have a lower-bound `time_cut`.
    pub lower_bound: u64,
}

impl Tally {
    pub fn add(&mut self, s: &Summary, limits: Limits) {
        if let Some(c) = cut(s, limits) {
            self.cut += 1;
            self.time_cut_secs = self.time_cut_secs.saturating_add(c.time_cut);
            self.already_ended += u64::from(s.end.by_policy());
            self.lower_bound += u64::from(c.lower_bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::read::summary::{End, Who};

    fn session(duration: u64, idle_max: u64, gaps: &[(u64, u64)]) -> Summary {
        Summary {
            who: Who::default(),
            duration,
            active: 0,
            idle_max,
            gaps: gaps.to_vec(),
            warnings: 0,
            tamper: 0,
            end: End::Logout,
            dry_run_expiries: 0,
            limit_idle: None,
            limit_max: None,
        }
    }

    const IDLE_10M: Limits = Limits {
        idle: Some(600),
        max: None,
    };

    #[test]
    fn idle_cut_at_first_qualifying_gap() {
        let s = session(7200, 1800, &[(100, 300), (1000, 700), (3000, 1800)]);
        let c = cut(&s, IDLE_10M).unwrap();
        assert_eq!((c.at, c.time_cut, c.lower_bound), (1600, 5600, false));
        // A limit no gap reaches: not cut.
        let none = Limits {
            idle: Some(1801),
            max: None,
        };
        assert_eq!(cut(&s, none), None);
        // Exactly the gap's length: cut at its end.
        let exact = Limits {
            idle: Some(1800),
            max: None,
        };
        assert_eq!(cut(&s, exact).unwrap().at, 4800);
    }

    #[test]
    fn max_cut_and_the_earlier_wins() {
        let s = session(7200, 1800, &[(3000, 1800)]);
        let max_1h = Limits {
            idle: None,
            max: Some(3600),
        };
        assert_eq!(cut(&s, max_1h).unwrap().time_cut, 3600);
        let both = Limits {
            idle: Some(600),
            max: Some(3600),
        };
        // Idle at 3600 and max at 3600: the same point.
        assert_eq!(cut(&s, both).unwrap().at, 3600);
        let both = Limits {
            idle: Some(60),
            max: Some(3600),
        };
        assert_eq!(cut(&s, both).unwrap().at, 3060);
        let short = session(3599, 0, &[]);
        assert_eq!(cut(&short, max_1h), None);
        assert_eq!(cut(&session(3600, 0, &[]), max_1h).unwrap().time_cut, 0);
    }

    #[test]
    fn unrecorded_gap_is_a_lower_bound() {
        // idle_max says 1800, but the gap was not recorded.
        let s = session(7200, 1800, &[(10, 30)]);
        let c = cut(&s, IDLE_10M).unwrap();
        assert_eq!((c.time_cut, c.lower_bound), (1200, true));
        // Sixteen recorded gaps, all long enough: an earlier one may be missing.
        let full: Vec<(u64, u64)> = (0..16).map(|i| (1000 + i * 1000, 700)).collect();
        let c = cut(&session(20_000, 700, &full), IDLE_10M).unwrap();
        assert_eq!((c.at, c.lower_bound), (1600, true));
    }

    #[test]
    fn tally_counts_policy_ends() {
        let mut t = Tally::default();
        let mut ended = session(1200, 600, &[(600, 600)]);
        ended.end = End::Idle;
        t.add(&ended, IDLE_10M);
        t.add(&session(5000, 900, &[(100, 900)]), IDLE_10M);
        t.add(&session(5000, 10, &[(100, 10)]), IDLE_10M);
        assert_eq!(t.cut, 2);
        assert_eq!(t.time_cut_secs, 4300);
        assert_eq!(t.already_ended, 1);
        assert_eq!(t.lower_bound, 0);
    }
}
