//! A streaming histogram of whole seconds for percentiles, in log buckets:
//! values below 128 exactly, above that in buckets 2% wide, so a percentile
//! is within 1% of the true value (the bucket's geometric middle is reported,
//! clamped to the exact maximum). Storage is sparse: at most ~1,100 buckets
//! ever exist (2% steps from 128 s to ten years), whatever the count.

/// Values below this are their own bucket.
const EXACT: u64 = 128;
/// Width of a log bucket: upper = lower * RATIO.
const RATIO: f64 = 1.02;

/// The bucket of `v`.
fn bucket(v: u64) -> u32 {
    if v < EXACT {
        return u32::try_from(v).unwrap_or(0);
    }
    let steps = ((v as f64) / (EXACT as f64)).ln() / RATIO.ln();
    // steps >= 0 and far below u32::MAX for any u64.
    EXACT as u32 + steps.floor() as u32
}

/// The value a bucket stands for: itself if exact, else its geometric middle.
fn representative(b: u32) -> u64 {
    if u64::from(b) < EXACT {
        return u64::from(b);
    }
    let lower = EXACT as f64 * RATIO.powi(i32::try_from(b - EXACT as u32).unwrap_or(i32::MAX));
    (lower * RATIO.sqrt()).round() as u64
}

/// Counts per bucket, sorted by bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogHistogram {
    buckets: Vec<(u32, u64)>,
    count: u64,
    max: u64,
}

impl LogHistogram {
    pub fn add(&mut self, v: u64) {
        let b = bucket(v);
        match self.buckets.binary_search_by_key(&b, |(k, _)| *k) {
            Ok(i) => self.buckets[i].1 += 1,
            Err(i) => self.buckets.insert(i, (b, 1)),
        }
        self.count += 1;
        self.max = self.max.max(v);
    }

    /// The exact largest value, 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The nearest-rank `p`-th percentile (0 < p <= 100), within 1%;
    /// `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(representative(*b).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Every (value the bucket stands for, count), in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .map(move |(b, n)| (representative(*b).min(self.max), *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = LogHistogram::default();
        for v in 1..=100 {
            h.add(v);
        }
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(90.0), Some(90));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(100.0), Some(100));
        assert_eq!(h.max(), 100);
        assert_eq!(h.count, 100);
        assert_eq!(LogHistogram::default().percentile(50.0), None);
    }

    #[test]
    fn large_values_within_one_percent() {
        let mut h = LogHistogram::default();
        let values: Vec<u64> = (1..=10_000u64).map(|i| i * 37 + 130).collect();
        values.iter().for_each(|v| h.add(*v));
        for p in [50.0, 90.0, 99.0] {
            let exact = values[((p / 100.0) * values.len() as f64).ceil() as usize - 1];
            let got = h.percentile(p).unwrap();
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err <= 0.01, "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.percentile(100.0), Some(*values.last().unwrap()));
    }

    #[test]
    fn storage_is_bounded() {
        let mut h = LogHistogram::default();
        for i in 0..200_000u64 {
            h.add(i.wrapping_mul(2_654_435_761) % 315_360_000);
        }
        h.add(u64::MAX);
        assert!(h.buckets.len() < 1_200, "{}", h.buckets.len());
        assert_eq!(h.max(), u64::MAX);
    }

    #[test]
    fn representative_is_inside_its_bucket() {
        for v in [128u64, 129, 1_000, 86_400, 604_800, 315_360_000] {
            let r = representative(bucket(v));
            assert!((r as f64 - v as f64).abs() / v as f64 <= 0.01, "{v} -> {r}");
        }
    }
}
