//! Intended start times. A [`RateProfile`] is a sequence of phases (ramp, hold, spike),
//! each with a rate that changes linearly from `from_per_s` to `to_per_s`. Events are
//! placed by inverting the cumulative count N(t) = ∫ r: constant arrivals at
//! N(t) = k, Poisson arrivals at N(t) = E_k with E_k a unit-rate Poisson process (time
//! rescaling), so both honour ramps exactly and a constant rate R over [0, T) holds
//! exactly ⌈R·T⌉ events.
//!
//! Workers split one schedule by index (event k goes to worker k mod W), so the union
//! of the workers' schedules is the whole schedule and no worker coordinates with
//! another. This module knows nothing of connections or sockets.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Nanoseconds per second.
const NS: f64 = 1e9;

/// One phase of a rate profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    /// Length of the phase.
    pub duration_ns: u64,
    /// Rate at the start of the phase (events per second).
    pub from_per_s: f64,
    /// Rate at the end of the phase (events per second).
    pub to_per_s: f64,
}

impl Phase {
    /// A constant rate.
    pub fn hold(duration_ns: u64, per_s: f64) -> Self {
        Self { duration_ns, from_per_s: per_s, to_per_s: per_s }
    }

    /// A linear ramp.
    pub fn ramp(duration_ns: u64, from_per_s: f64, to_per_s: f64) -> Self {
        Self { duration_ns, from_per_s, to_per_s }
    }

    /// Expected events in the phase.
    pub fn events(&self) -> f64 {
        (self.from_per_s + self.to_per_s) / 2.0 * self.duration_ns as f64 / NS
    }

    /// Time (ns into the phase) at which the cumulative count reaches `n`
    /// (0 ≤ n ≤ `events()`), inverting N(t) = a·t + (b−a)·t²/(2D).
    fn time_of(&self, n: f64) -> f64 {
        let d = self.duration_ns as f64 / NS;
        let (a, b) = (self.from_per_s, self.to_per_s);
        let slope = (b - a) / d;
        let t = if slope.abs() < 1e-12 {
            n / a
        } else {
            // slope/2·t² + a·t − n = 0, the root in [0, d].
            (-a + (a * a + 2.0 * slope * n).max(0.0).sqrt()) / slope
        };
        (t * NS).clamp(0.0, self.duration_ns as f64)
    }
}

/// Why a profile is unusable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A rate is negative, NaN or infinite.
    #[error("rates must be finite and non-negative (got {0})")]
    BadRate(f64),
    /// The profile holds no time.
    #[error("the rate profile is empty or has zero duration")]
    Empty,
}

/// A piecewise-linear rate over time.
#[derive(Clone, Debug, PartialEq)]
pub struct RateProfile {
    phases: Vec<Phase>,
}

impl RateProfile {
    /// A profile from phases in order.
    pub fn new(phases: Vec<Phase>) -> Result<Self, ScheduleError> {
        for p in &phases {
            for r in [p.from_per_s, p.to_per_s] {
                if !r.is_finite() || r < 0.0 {
                    return Err(ScheduleError::BadRate(r));
                }
            }
        }
        if phases.iter().all(|p| p.duration_ns == 0) {
            return Err(ScheduleError::Empty);
        }
        Ok(Self { phases })
    }

    /// A single constant rate for `duration_ns`.
    pub fn constant(per_s: f64, duration_ns: u64) -> Result<Self, ScheduleError> {
        Self::new(vec![Phase::hold(duration_ns, per_s)])
    }

    /// Total length.
    pub fn duration_ns(&self) -> u64 {
        self.phases.iter().map(|p| p.duration_ns).sum()
    }

    /// Expected number of events.
    pub fn expected_events(&self) -> f64 {
        self.phases.iter().map(Phase::events).sum()
    }

    /// The phases.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Instantaneous rate at `t_ns` (0 past the end).
    pub fn rate_at(&self, t_ns: u64) -> f64 {
        let mut start = 0;
        for p in &self.phases {
            if t_ns < start + p.duration_ns {
                let f = (t_ns - start) as f64 / p.duration_ns as f64;
                return p.from_per_s + (p.to_per_s - p.from_per_s) * f;
            }
            start += p.duration_ns;
        }
        0.0
    }
}

/// How events are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly: event k at N(t) = k.
    Constant,
    /// A Poisson process with the profile's rate, from this seed.
    Poisson {
        /// RNG seed (the same seed gives the same schedule).
        seed: u64,
    },
}

/// One worker's share of a schedule: an iterator of intended times (ns from start).
#[derive(Clone, Debug)]
pub struct Schedule {
    profile: RateProfile,
    arrivals: Arrivals,
    rng: ChaCha8Rng,
    /// Cumulative count (in N units) of the next event of the whole schedule.
    next_n: f64,
    /// Index of that event in the whole schedule.
    next_index: u64,
    worker: u64,
    workers: u64,
    /// Phase cursor: index, start time, cumulative count at its start.
    phase: usize,
    phase_start_ns: u64,
    phase_start_n: f64,
}

impl Schedule {
    /// Worker `worker` of `workers`' share of the schedule.
    pub fn new(profile: RateProfile, arrivals: Arrivals, worker: usize, workers: usize) -> Self {
        assert!(workers > 0 && worker < workers, "worker {worker} of {workers}");
        let seed = match arrivals {
            Arrivals::Constant => 0,
            Arrivals::Poisson { seed } => seed,
        };
        let mut s = Self {
            profile,
            arrivals,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_n: 0.0,
            next_index: 0,
            worker: worker as u64,
            workers: workers as u64,
            phase: 0,
            phase_start_ns: 0,
            phase_start_n: 0.0,
        };
        if matches!(arrivals, Arrivals::Poisson { .. }) {
            s.next_n = s.exp1();
        }
        s
    }

    /// A unit-mean exponential variate.
    fn exp1(&mut self) -> f64 {
        // 53 random bits in (0, 1]; -ln(u) is Exp(1).
        let u = ((self.rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        -u.ln()
    }

    /// Time of the schedule's event at cumulative count `n`, or `None` past the end.
    fn time_of(&mut self, n: f64) -> Option<u64> {
        loop {
            let p = *self.profile.phases.get(self.phase)?;
            let end_n = self.phase_start_n + p.events();
            if n < end_n {
                let t = p.time_of(n - self.phase_start_n);
                return Some(self.phase_start_ns + t as u64);
            }
            self.phase += 1;
            self.phase_start_ns += p.duration_ns;
            self.phase_start_n = end_n;
        }
    }

    fn advance(&mut self) {
        self.next_index += 1;
        self.next_n = match self.arrivals {
            Arrivals::Constant => self.next_index as f64,
            Arrivals::Poisson { .. } => self.next_n + self.exp1(),
        };
    }
}

impl Iterator for Schedule {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            let mine = self.next_index % self.workers == self.worker;
            let n = self.next_n;
            let t = self.time_of(n);
            self.advance();
            match t {
                None => return None,
                Some(t) if mine => return Some(t),
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn all(profile: &RateProfile, arrivals: Arrivals) -> Vec<u64> {
        Schedule::new(profile.clone(), arrivals, 0, 1).collect()
    }

    #[test]
    fn constant_rate_holds_exactly_r_times_t_events_evenly() {
        for (rate, secs) in [(1000.0, 3), (7.0, 10), (100_000.0, 1), (0.5, 4)] {
            let p = RateProfile::constant(rate, secs * SEC).unwrap();
            let times = all(&p, Arrivals::Constant);
            assert_eq!(times.len() as f64, rate * secs as f64, "rate {rate} over {secs}s");
            assert_eq!(times[0], 0);
            let gap = (SEC as f64 / rate) as u64;
            for w in times.windows(2) {
                assert!(w[1] - w[0] >= gap - 1 && w[1] - w[0] <= gap + 1, "{w:?} gap {gap}");
            }
            assert!(*times.last().unwrap() < secs * SEC);
        }
    }

    #[test]
    fn workers_partition_the_schedule() {
        let p = RateProfile::new(vec![Phase::ramp(2 * SEC, 0.0, 5000.0), Phase::hold(SEC, 5000.0)]).unwrap();
        for arrivals in [Arrivals::Constant, Arrivals::Poisson { seed: 9 }] {
            let whole = all(&p, arrivals);
            let mut union: Vec<u64> = (0..3).flat_map(|w| Schedule::new(p.clone(), arrivals, w, 3)).collect();
            union.sort_unstable();
            assert_eq!(union, whole, "{arrivals:?}");
        }
    }

    #[test]
    fn ramp_places_events_by_the_integral() {
        // 0 → 1000/s over 10 s: 5000 events, N(t) = 50 t², so half of them by t = √50 s.
        let p = RateProfile::new(vec![Phase::ramp(10 * SEC, 0.0, 1000.0)]).unwrap();
        let times = all(&p, Arrivals::Constant);
        assert_eq!(times.len(), 5000);
        let half = times[2500] as f64 / SEC as f64;
        assert!((half - 50f64.sqrt()).abs() < 1e-3, "{half}");
        // Events in the first second: N(1) = 50.
        assert_eq!(times.iter().filter(|&&t| t < SEC).count(), 50);
    }

    #[test]
    fn spike_phases_follow_each_other() {
        let p = RateProfile::new(vec![Phase::hold(SEC, 100.0), Phase::hold(SEC, 10_000.0), Phase::hold(SEC, 100.0)])
            .unwrap();
        let times = all(&p, Arrivals::Constant);
        let per_second: Vec<usize> = (0..3).map(|s| times.iter().filter(|&&t| t / SEC == s).count()).collect();
        assert_eq!(per_second, [100, 10_000, 100]);
        assert_eq!(p.rate_at(SEC + 1), 10_000.0);
        assert_eq!(p.rate_at(3 * SEC), 0.0);
    }

    #[test]
    fn poisson_has_the_right_mean_and_dispersion_and_is_reproducible() {
        let p = RateProfile::constant(2000.0, 50 * SEC).unwrap();
        let times = all(&p, Arrivals::Poisson { seed: 1 });
        let n = times.len() as f64;
        assert!((n - 100_000.0).abs() < 4.0 * 100_000f64.sqrt(), "count {n}");
        // Counts per 10 ms window: Poisson(20), variance ≈ mean.
        let mut bins = vec![0f64; 5000];
        for t in &times {
            bins[(*t / 10_000_000) as usize] += 1.0;
        }
        let mean = bins.iter().sum::<f64>() / bins.len() as f64;
        let var = bins.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / bins.len() as f64;
        assert!((var / mean - 1.0).abs() < 0.1, "dispersion {}", var / mean);
        assert_eq!(times, all(&p, Arrivals::Poisson { seed: 1 }), "same seed, same schedule");
        assert_ne!(times[..10], all(&p, Arrivals::Poisson { seed: 2 })[..10]);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert_eq!(RateProfile::constant(-1.0, SEC), Err(ScheduleError::BadRate(-1.0)));
        assert!(RateProfile::constant(f64::NAN, SEC).is_err());
        assert_eq!(RateProfile::constant(10.0, 0), Err(ScheduleError::Empty));
        assert_eq!(RateProfile::new(vec![]), Err(ScheduleError::Empty));
        let zero = RateProfile::constant(0.0, SEC).unwrap();
        assert_eq!(all(&zero, Arrivals::Constant), Vec::<u64>::new());
    }
}
