//! Sequence checking of one probe stream (one sender's messages on one channel, as one
//! receiver sees them): losses (gaps), duplicates and reordering, in 24 bytes and
//! without allocation, so every connection can carry two of them.
//!
//! The tracker remembers the highest sequence number seen and which of the 64 numbers
//! below it arrived (a bitmap), as RTP receivers and Pub/Sub probes do. A number above
//! the highest opens a gap (counted as missing until it arrives); one inside the window
//! is a duplicate if its bit is set, else a late (reordered) arrival that fills the gap;
//! one more than 64 below the highest is counted as reordered (a duplicate that old
//! cannot be told apart). What is still missing when the stream ends is lost. This
//! module does not know what a stream carries or where its numbers come from.

/// What one arrival was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next number, or a later one (`skipped` numbers in between not seen yet).
    Ahead {
        /// Numbers jumped over (0: exactly the next one).
        skipped: u64,
    },
    /// A number seen before.
    Duplicate,
    /// A number below the highest that had not arrived yet.
    Reordered,
}

/// Sequence state of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqTracker {
    /// Highest number seen + 1 (0: nothing seen).
    next: u64,
    /// Bit `i`: number `next - 1 - i` arrived.
    window: u64,
    /// Numbers below `next` that have not arrived (saturating).
    missing: u32,
}

impl SeqTracker {
    /// Notes the arrival of `seq`.
    #[inline]
    pub fn observe(&mut self, seq: u64) -> Arrival {
        if seq >= self.next {
            let skipped = seq - self.next;
            let shift = skipped.saturating_add(1);
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.missing = self.missing.saturating_add(skipped.min(u64::from(u32::MAX)) as u32);
            self.next = seq.saturating_add(1);
            return Arrival::Ahead { skipped };
        }
        let age = self.next - 1 - seq;
        if age < 64 {
            let bit = 1u64 << age;
            if self.window & bit != 0 {
                return Arrival::Duplicate;
            }
            self.window |= bit;
        }
        self.missing = self.missing.saturating_sub(1);
        Arrival::Reordered
    }

    /// Distinct numbers seen (every number below the highest, less those missing).
    pub fn unique(&self) -> u64 {
        self.next - u64::from(self.missing)
    }

    /// Numbers below the highest seen that have not arrived (lost, if the stream ends now).
    pub fn missing(&self) -> u64 {
        u64::from(self.missing)
    }

    /// The highest number seen (`None`: nothing seen yet).
    pub fn highest(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    /// Nothing seen yet.
    pub fn is_empty(&self) -> bool {
        self.next == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u64]) -> (SeqTracker, Vec<Arrival>) {
        let mut t = SeqTracker::default();
        let arrivals = seqs.iter().map(|&s| t.observe(s)).collect();
        (t, arrivals)
    }

    #[test]
    fn in_order_stream_has_nothing_missing() {
        let (t, a) = feed(&(0..1000).collect::<Vec<_>>());
        assert!(a.iter().all(|&x| x == Arrival::Ahead { skipped: 0 }));
        assert_eq!((t.unique(), t.missing()), (1000, 0));
    }

    #[test]
    fn gaps_are_missing_until_filled_and_duplicates_are_told_apart() {
        let (t, a) = feed(&[0, 1, 4, 2, 2, 4, 6]);
        assert_eq!(a[2], Arrival::Ahead { skipped: 2 });
        assert_eq!(a[3], Arrival::Reordered);
        assert_eq!(a[4], Arrival::Duplicate);
        assert_eq!(a[5], Arrival::Duplicate);
        assert_eq!(a[6], Arrival::Ahead { skipped: 1 });
        // 3 and 5 never came.
        assert_eq!((t.unique(), t.missing()), (5, 2));
    }

    #[test]
    fn a_stream_that_starts_late_counts_the_numbers_before_it_as_missing() {
        let (t, _) = feed(&[3, 4]);
        assert_eq!((t.unique(), t.missing()), (2, 3));
        assert_eq!(t.highest(), Some(4));
        assert_eq!(SeqTracker::default().highest(), None);
        assert_eq!(feed(&[0]).0.highest(), Some(0), "number 0 seen is not nothing seen");
    }

    #[test]
    fn far_jumps_clear_the_window_and_old_arrivals_still_fill_gaps() {
        let (t, a) = feed(&[0, 200, 100, 199, 199]);
        assert_eq!(a[1], Arrival::Ahead { skipped: 199 });
        assert_eq!(a[2], Arrival::Reordered, "beyond the window: counted as reordered");
        assert_eq!(a[3], Arrival::Reordered);
        assert_eq!(a[4], Arrival::Duplicate);
        assert_eq!((t.unique(), t.missing()), (4, 197));
    }

    #[test]
    fn hostile_numbers_do_not_overflow() {
        let mut t = SeqTracker::default();
        // A server sending the largest sequence number cannot make the checks panic
        // (debug builds) or wrap (release): the numbers saturate.
        assert_eq!(t.observe(u64::MAX), Arrival::Ahead { skipped: u64::MAX });
        assert_eq!(t.missing(), u64::from(u32::MAX), "missing saturates");
        assert_eq!(t.observe(0), Arrival::Reordered);
        assert_eq!(t.missing(), u64::from(u32::MAX) - 1);
    }

    #[test]
    fn tracker_stays_small() {
        assert!(std::mem::size_of::<SeqTracker>() <= 24);
    }
}
