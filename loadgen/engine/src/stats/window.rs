//! Named windows of a run (its phases: a ramp, a spike, the hold) and what the
//! collector accumulated in each: the same totals, errors, codes and histograms as the
//! whole run, over the seconds the window covers, so a check can judge one phase
//! exactly (percentiles from the window's merged histograms, never from averaging
//! per-second percentiles).
//!
//! A window covers every whole second that overlaps it: `[from, to)` in seconds of the
//! run becomes seconds `floor(from) ..= ceil(to) - 1`, so a second that holds a
//! boundary belongs to both neighbours. What it does not do: decide where phases are
//! (the scenario does) or report them (`crate::report`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{CodeCount, CodeTable, Counters, HistogramSet, RunStats};

/// A named window of the run, from its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Its name (a phase's).
    pub name: String,
    /// Where it starts.
    pub from: Duration,
    /// Where it ends (`Duration::MAX`: the end of the run).
    pub to: Duration,
}

impl Window {
    /// The first second it covers.
    pub fn first_second(&self) -> u64 {
        self.from.as_secs()
    }

    /// One past the last second it covers (`u64::MAX`: to the end of the run).
    pub fn end_second(&self) -> u64 {
        if self.to == Duration::MAX {
            return u64::MAX;
        }
        let end = self.to.as_secs() + u64::from(self.to.subsec_nanos() > 0);
        end.max(self.first_second() + 1)
    }

    /// Whether second `s` (covering `[s, s + 1)`) overlaps the window.
    pub fn covers(&self, s: u64) -> bool {
        s >= self.first_second() && s < self.end_second()
    }
}

/// What the collector accumulated in one window.
#[derive(Debug)]
pub struct WindowStats {
    /// The window.
    pub window: Window,
    /// Seconds of it that were collected (0: the run never reached it).
    pub seconds: u64,
    /// The window's totals, errors, codes and histograms, in the whole run's shape
    /// (its `seconds` stay empty).
    pub stats: RunStats,
}

impl WindowStats {
    /// An empty window.
    pub fn new(window: Window) -> Self {
        Self { window, seconds: 0, stats: RunStats::default() }
    }
}

/// One collected second, as the collector adds it to the run and to its windows.
pub(crate) struct SecondTally<'a> {
    pub hist: Option<&'a HistogramSet>,
    pub counters: &'a Counters,
    pub errors: &'a BTreeMap<&'static str, u64>,
    pub drops: &'a BTreeMap<&'static str, u64>,
    pub close_codes: &'a CodeTable,
    pub refusals: &'a CodeTable,
    pub peak_open: u64,
    pub open: u64,
}

impl SecondTally<'_> {
    /// Adds the second to `run`'s totals (its `seconds` untouched).
    pub fn add_to(&self, run: &mut RunStats) {
        if let Some(h) = self.hist {
            run.add_histograms(h);
        }
        run.totals.add(self.counters);
        for (&k, &n) in self.errors {
            *run.errors.entry(k).or_insert(0) += n;
        }
        for (&k, &n) in self.drops {
            *run.drops.entry(k).or_insert(0) += n;
        }
        for c in self.close_codes.iter() {
            *run.close_codes.entry(c.code).or_insert(0) += c.count;
        }
        for c in self.refusals.iter() {
            run.refusals.entry(c.code).or_insert(CodeCount { code: c.code, ..CodeCount::default() }).merge(c);
        }
        run.peak_open = run.peak_open.max(self.peak_open);
        run.open_at_end = self.open;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(from_ms: u64, to_ms: u64) -> Window {
        Window { name: "w".into(), from: Duration::from_millis(from_ms), to: Duration::from_millis(to_ms) }
    }

    #[test]
    fn a_window_covers_every_second_it_overlaps() {
        let spike = w(2_500, 4_000);
        assert_eq!((spike.first_second(), spike.end_second()), (2, 4));
        assert!(!spike.covers(1) && spike.covers(2) && spike.covers(3) && !spike.covers(4));
        // Shorter than a second: still its one second.
        let blip = w(7_200, 7_300);
        assert!(blip.covers(7) && !blip.covers(8) && !blip.covers(6));
        let zero = w(5_000, 5_000);
        assert!(zero.covers(5) && !zero.covers(6));
        let rest = Window { name: "close".into(), from: Duration::from_secs(9), to: Duration::MAX };
        assert!(rest.covers(9) && rest.covers(u64::MAX - 1) && !rest.covers(8));
    }
}
