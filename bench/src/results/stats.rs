//! Distributions: nearest-rank percentiles over samples in milliseconds.

use crate::results::json::J;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// The nearest-rank percentile `p` (0..=100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    Some(Summary {
        n: s.len(),
        min: s[0],
        p50: percentile(&s, 50.0),
        p90: percentile(&s, 90.0),
        p99: percentile(&s, 99.0),
        max: s[s.len() - 1],
        mean: s.iter().sum::<f64>() / s.len() as f64,
    })
}

impl Summary {
    pub fn to_json(self) -> J {
        J::obj([
            ("n", J::from(self.n)),
            ("min", J::num(self.min)),
            ("p50", J::num(self.p50)),
            ("p90", J::num(self.p90)),
            ("p99", J::num(self.p99)),
            ("max", J::num(self.max)),
            ("mean", J::num(self.mean)),
        ])
    }

    /// `p50 / p99 / max` for tables, in the samples' unit.
    pub fn short(&self, digits: usize) -> String {
        format!(
            "p50 {:.d$} / p99 {:.d$} / max {:.d$}",
            self.p50,
            self.p99,
            self.max,
            d = digits
        )
    }
}

pub fn summary_json(s: Option<Summary>) -> J {
    s.map_or(J::Null, |s| s.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        let s = summarize(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.min, s.p50, s.max, s.n), (1.0, 3.0, 5.0, 3));
        assert!(summarize(&[]).is_none());
    }
}
