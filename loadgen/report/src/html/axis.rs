//! The axes of the report's charts: a linear axis from zero in counts or cores, a
//! logarithmic latency axis over whole decades, the run's time axis in s, min or h, and
//! the percentile axis of a spectrum (log of 1 / (1 − q)); each with round ticks
//! labelled in the unit that suits its range.
//!
//! It maps values to fractions of the axis; placing them in pixels is svg.rs's job.

use super::text::count;

/// What an axis measures, which decides its ticks' labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Counts and counts per second (`400`, `2,500`, `15k`, `1.2M`).
    Count,
    /// CPU seconds per second (cores): plain decimals.
    Cores,
}

/// One tick: where (in the axis's values) and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Position, in the axis's values.
    pub at: f64,
    /// Its label, unit included.
    pub label: String,
}

/// An axis: its domain, whether it is logarithmic, its ticks and title.
#[derive(Clone, Debug)]
pub struct Axis {
    /// Low end of the domain.
    pub lo: f64,
    /// High end of the domain.
    pub hi: f64,
    /// Logarithmic (base 10); `lo` is then above 0.
    pub log: bool,
    /// The ticks, in increasing order.
    pub ticks: Vec<Tick>,
    /// What the axis measures, with its unit.
    pub title: String,
}

/// A step of 1, 2 or 5 times a power of ten near `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * magnitude
}

/// Decimals needed to write multiples of `step` exactly (step 0.5 → 1, 0.05 → 2).
fn decimals(step: f64) -> usize {
    if step >= 1.0 || step <= 0.0 { 0 } else { (-step.log10() - 1e-9).ceil().max(0.0) as usize }
}

impl Axis {
    /// A linear axis from 0 to a round value at or above `max`, with four to six ticks.
    pub fn linear(max: f64, unit: Unit, title: &str) -> Axis {
        let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
        let mut step = nice_step(max / 5.0);
        if unit == Unit::Count {
            step = step.max(1.0);
        }
        let n = (max / step - 1e-9).ceil().max(1.0) as usize;
        let hi = step * n as f64;
        let (divisor, suffix) = match unit {
            Unit::Count if hi >= 1e6 => (1e6, "M"),
            Unit::Count if hi >= 1e4 => (1e3, "k"),
            Unit::Count | Unit::Cores => (1.0, ""),
        };
        let places = decimals(step / divisor);
        let ticks = (0..=n)
            .map(|i| {
                let at = step * i as f64;
                let label = if i == 0 {
                    "0".to_string()
                } else if unit == Unit::Count && divisor == 1.0 {
                    count(at)
                } else {
                    format!("{:.*}{suffix}", places, at / divisor)
                };
                Tick { at, label }
            })
            .collect();
        Axis { lo: 0.0, hi, log: false, ticks, title: title.into() }
    }

    /// A logarithmic latency axis over whole decades holding `min..=max` µs (values
    /// below 1 µs are drawn at 1 µs); ticks at each decade, and at 2 and 5 times it
    /// when the axis spans at most two decades.
    pub fn log_micros(min: f64, max: f64, title: &str) -> Axis {
        let min = if min.is_finite() { min.max(1.0) } else { 1.0 };
        let max = if max.is_finite() { max.max(min) } else { min };
        let lo_exp = min.log10().floor() as i32;
        let mut hi_exp = (max.log10() - 1e-9).ceil() as i32;
        if hi_exp <= lo_exp {
            hi_exp = lo_exp + 1;
        }
        let (lo, hi) = (10f64.powi(lo_exp), 10f64.powi(hi_exp));
        let fine = hi_exp - lo_exp <= 2;
        let mut ticks = Vec::new();
        for e in lo_exp..=hi_exp {
            let decade = 10f64.powi(e);
            for m in [1.0, 2.0, 5.0] {
                let at = decade * m;
                if (m == 1.0 || fine) && at <= hi * (1.0 + 1e-9) {
                    ticks.push(Tick { at, label: micros_tick(at) });
                }
            }
        }
        Axis { lo, hi, log: true, ticks, title: title.into() }
    }

    /// The run's time axis, 0 to `x_max` seconds, ticks at a round step.
    pub fn time(x_max: f64) -> Axis {
        let x_max = if x_max.is_finite() && x_max > 0.0 { x_max } else { 1.0 };
        const STEPS: [f64; 18] = [
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0,
            21_600.0, 43_200.0, 86_400.0,
        ];
        let step = STEPS.iter().copied().find(|s| x_max / s <= 10.0).unwrap_or_else(|| nice_step(x_max / 10.0));
        let n = (x_max / step + 1e-9).floor() as usize;
        let ticks = (0..=n).map(|i| step * i as f64).map(|at| Tick { at, label: time_tick(at, step) }).collect();
        Axis { lo: 0.0, hi: x_max, log: false, ticks, title: "time since the start of the run".into() }
    }

    /// The percentile axis of a spectrum: x = log10(1 / (1 − q)) from 0 to `hi`, ticks
    /// 0%, 50%, 90%, 99%, 99.9% … as far as the axis goes (`hi` rounded up to a whole
    /// number of nines).
    pub fn percentiles(hi: f64) -> Axis {
        let hi = if hi.is_finite() { (hi - 1e-9).ceil().max(2.0) } else { 2.0 };
        let mut ticks = vec![Tick { at: 0.0, label: "0%".into() }, Tick { at: 2f64.log10(), label: "50%".into() }];
        for nines in 1..=9 {
            let at = f64::from(nines);
            if at <= hi + 1e-9 {
                let label = match nines {
                    1 => "90%".to_string(),
                    2 => "99%".to_string(),
                    n => format!("99.{}%", "9".repeat(n as usize - 2)),
                };
                ticks.push(Tick { at, label });
            }
        }
        Axis { lo: 0.0, hi, log: false, ticks, title: "percentile (log scale of 1 / (1 − q))".into() }
    }

    /// Where `v` falls, 0 (low end) to 1 (high end), clamped.
    pub fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            let (lo, hi) = (self.lo.max(f64::MIN_POSITIVE).log10(), self.hi.max(f64::MIN_POSITIVE).log10());
            let v = v.max(self.lo).max(f64::MIN_POSITIVE).log10();
            if hi > lo { (v - lo) / (hi - lo) } else { 0.0 }
        } else if self.hi > self.lo {
            (v - self.lo) / (self.hi - self.lo)
        } else {
            0.0
        };
        if f.is_finite() { f.clamp(0.0, 1.0) } else { 0.0 }
    }
}

/// `v` with at most six decimals and no trailing zeros: `99.9`, `2`, `0.5`.
fn short(v: f64) -> String {
    let text = format!("{v:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A log-axis latency tick: `200 µs`, `1 ms`, `50 ms`, `2 s`.
fn micros_tick(us: f64) -> String {
    if us < 1e3 {
        format!("{} µs", short(us))
    } else if us < 1e6 {
        format!("{} ms", short(us / 1e3))
    } else {
        format!("{} s", short(us / 1e6))
    }
}

/// A time tick at `at` seconds on an axis stepping by `step`: `20 s`, `5 min`, `2 h`.
fn time_tick(at: f64, step: f64) -> String {
    if at == 0.0 && step >= 60.0 {
        "0".into()
    } else if step < 60.0 {
        format!("{at:.0} s")
    } else if step < 3600.0 {
        format!("{} min", short(at / 60.0))
    } else {
        format!("{} h", short(at / 3600.0))
    }
}
