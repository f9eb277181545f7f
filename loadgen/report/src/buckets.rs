//! A whole-run latency histogram as report.json keeps it:
//! `histograms.<metric> = {"count": N, "buckets": [[value_us, count], ...]}`, every
//! non-empty bucket of the run's HdrHistogram (1 µs to one hour, 3 significant
//! digits), each named by the highest value it holds, in increasing order. From it:
//! quantiles exactly as the report's percentiles are taken (the value of the sample at
//! rank ⌈q·N⌉, at least 1), the percentile spectrum of the HTML report, and a
//! distribution-free confidence interval of a percentile (the order statistics that
//! bracket the true quantile with the requested confidence, from the binomial
//! distribution of the sample count below it; normal approximation), which is what
//! `compare` needs to tell a regression from noise.
//!
//! This module reads histograms; it does not record them (the engine does).

use serde_json::Value;

/// Quantile of the two-sided 95% normal interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// One metric's histogram: non-empty buckets `(highest value in µs, count)`, values
/// increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Buckets {
    buckets: Vec<(u64, u64)>,
    count: u64,
}

/// Why a histogram in a document could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BucketsError {
    /// `buckets` is not an array of `[value, count]` pairs of unsigned integers.
    #[error("histogram buckets are not [value_us, count] pairs of unsigned integers")]
    NotPairs,
    /// Values are not strictly increasing.
    #[error("histogram bucket values are not increasing")]
    NotIncreasing,
    /// `count` disagrees with the sum of the buckets.
    #[error("histogram count {stated} is not the sum of its buckets ({summed})")]
    CountMismatch {
        /// The document's `count`.
        stated: u64,
        /// The sum of the bucket counts.
        summed: u64,
    },
}

impl Buckets {
    /// From `(value, count)` pairs (values increasing, counts above zero kept).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, u64)>) -> Result<Self, BucketsError> {
        let mut buckets: Vec<(u64, u64)> = Vec::new();
        for (value, count) in pairs {
            if buckets.last().is_some_and(|&(v, _)| v >= value) {
                return Err(BucketsError::NotIncreasing);
            }
            if count > 0 {
                buckets.push((value, count));
            }
        }
        let count = buckets.iter().map(|&(_, c)| c).sum();
        Ok(Self { buckets, count })
    }

    /// From a report's `histograms.<metric>` object; `None` when `v` is absent (null).
    pub fn from_json(v: &Value) -> Result<Option<Self>, BucketsError> {
        if v.is_null() {
            return Ok(None);
        }
        let list = v.get("buckets").and_then(Value::as_array).ok_or(BucketsError::NotPairs)?;
        let mut pairs = Vec::with_capacity(list.len());
        for pair in list {
            match pair.as_array().map(Vec::as_slice) {
                Some([value, count]) => match (value.as_u64(), count.as_u64()) {
                    (Some(value), Some(count)) => pairs.push((value, count)),
                    _ => return Err(BucketsError::NotPairs),
                },
                _ => return Err(BucketsError::NotPairs),
            }
        }
        let b = Self::from_pairs(pairs)?;
        if let Some(stated) = v.get("count").and_then(Value::as_u64)
            && stated != b.count
        {
            return Err(BucketsError::CountMismatch { stated, summed: b.count });
        }
        Ok(Some(b))
    }

    /// The histogram of metric `name` in report document `report`, if it has one.
    pub fn of_metric(report: &Value, name: &str) -> Result<Option<Self>, BucketsError> {
        Self::from_json(&report["histograms"][name])
    }

    /// Samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The non-empty buckets, `(highest value in µs, count)`.
    pub fn pairs(&self) -> &[(u64, u64)] {
        &self.buckets
    }

    /// The largest sample (its bucket's highest value); `None` when empty.
    pub fn max(&self) -> Option<u64> {
        self.buckets.last().map(|&(v, _)| v)
    }

    /// The value of the sample of rank `rank` (1-based, clamped to `1..=count`);
    /// `None` when empty.
    pub fn value_at_rank(&self, rank: u64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = rank.clamp(1, self.count);
        let mut seen = 0;
        for &(value, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Some(value);
            }
        }
        self.max()
    }

    /// The `q` quantile (0 ≤ q ≤ 1): the sample of rank ⌈q·N⌉ (at least 1), as the
    /// report's percentiles are taken; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64;
        self.value_at_rank(rank)
    }

    /// A distribution-free confidence interval of the `q` quantile at normal quantile
    /// `z` (e.g. [`Z_95`]): the samples of ranks ⌊Nq − z·√(Nq(1−q))⌋ and
    /// ⌈Nq + z·√(Nq(1−q))⌉ + 1. A bound whose rank falls outside the samples is `None`:
    /// the run holds too few samples to bound the percentile on that side (the upper
    /// bound of a p99.9 from 500 samples, say).
    pub fn confidence(&self, q: f64, z: f64) -> Interval {
        let n = self.count as f64;
        if self.count == 0 {
            return Interval { low: None, high: None };
        }
        let q = q.clamp(0.0, 1.0);
        let centre = n * q;
        let spread = z * (n * q * (1.0 - q)).sqrt();
        let low_rank = (centre - spread).floor();
        let high_rank = (centre + spread).ceil() + 1.0;
        let low = (low_rank >= 1.0).then(|| self.value_at_rank(low_rank as u64)).flatten();
        let high = (high_rank <= n).then(|| self.value_at_rank(high_rank as u64)).flatten();
        Interval { low, high }
    }

    /// The percentile spectrum: `(q, value)` at q = 1 − 2^(−i/`ticks`) for i = 0, 1, …
    /// while 1 − q is at least 1/N (finer than the sample count is noise), then
    /// `(1, max)`. Empty when there are no samples.
    pub fn spectrum(&self, ticks: u32) -> Vec<(f64, u64)> {
        let mut points = Vec::new();
        let Some(max) = self.max() else { return points };
        let ticks = f64::from(ticks.max(1));
        let floor = 1.0 / self.count as f64;
        for i in 0.. {
            let tail = (-(f64::from(i)) / ticks).exp2();
            if tail < floor {
                break;
            }
            let q = 1.0 - tail;
            if let Some(v) = self.quantile(q) {
                points.push((q, v));
            }
        }
        points.push((1.0, max));
        points
    }
}

/// A confidence interval of a percentile, µs; an open side is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Lower bound.
    pub low: Option<u64>,
    /// Upper bound (`None`: too few samples to bound it above).
    pub high: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn uniform(n: u64) -> Buckets {
        Buckets::from_pairs((1..=n).map(|v| (v, 1))).unwrap()
    }

    #[test]
    fn quantiles_take_the_sample_of_rank_ceil_qn() {
        let b = uniform(1000);
        assert_eq!(b.count(), 1000);
        assert_eq!(b.quantile(0.5), Some(500));
        assert_eq!(b.quantile(0.99), Some(990));
        assert_eq!(b.quantile(0.999), Some(999));
        assert_eq!(b.quantile(0.0), Some(1), "rank at least 1");
        assert_eq!(b.quantile(1.0), Some(1000));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn reads_the_report_form_and_refuses_what_is_not_it() {
        let v = json!({"count": 5, "buckets": [[10, 2], [20, 3]]});
        let b = Buckets::from_json(&v).unwrap().unwrap();
        assert_eq!(b.pairs(), &[(10, 2), (20, 3)]);
        assert_eq!(b.quantile(0.4), Some(10));
        assert_eq!(b.quantile(0.41), Some(20));
        assert_eq!(Buckets::from_json(&Value::Null), Ok(None));
        let bad = json!({"count": 4, "buckets": [[10, 2], [20, 3]]});
        assert_eq!(Buckets::from_json(&bad), Err(BucketsError::CountMismatch { stated: 4, summed: 5 }));
        assert_eq!(Buckets::from_json(&json!({"buckets": [[20, 1], [10, 1]]})), Err(BucketsError::NotIncreasing));
        assert_eq!(Buckets::from_json(&json!({"buckets": [[-1, 1]]})), Err(BucketsError::NotPairs));
        assert_eq!(Buckets::from_json(&json!({"buckets": 3})), Err(BucketsError::NotPairs));
    }

    #[test]
    fn confidence_brackets_the_quantile_and_narrows_with_samples() {
        let small = uniform(1000).confidence(0.99, Z_95);
        let large = uniform(100_000).confidence(0.99, Z_95);
        // 1000 samples: sd of the rank √(1000·0.99·0.01) ≈ 3.15, so ±6.2 ranks.
        assert_eq!(small, Interval { low: Some(983), high: Some(998) });
        assert!(small.low.unwrap() <= 990 && small.high.unwrap() >= 990);
        // Relative width shrinks as √N grows.
        let rel = |i: Interval, n: f64| (i.high.unwrap() - i.low.unwrap()) as f64 / n;
        assert!(rel(large, 100_000.0) < rel(small, 1000.0) / 5.0, "{large:?}");
        // p99.9 of 500 samples cannot be bounded above.
        let open = uniform(500).confidence(0.999, Z_95);
        assert_eq!(open.high, None);
        assert!(open.low.is_some());
    }

    #[test]
    fn spectrum_climbs_to_the_max_and_stops_at_the_sample_count() {
        let b = uniform(1024);
        let s = b.spectrum(1);
        assert_eq!(s.first(), Some(&(0.0, 1)));
        assert_eq!(s.last(), Some(&(1.0, 1024)));
        // q = 1 − 2^−i for i = 0..=10 (1/1024 is the floor), then the max.
        assert_eq!(s.len(), 12, "{s:?}");
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{s:?}");
        assert!(Buckets::default().spectrum(5).is_empty());
    }
}
