//! Counts by numeric code without allocation: HTTP statuses of refused upgrades (with
//! the `Retry-After` values seen) and WebSocket close codes of dropped connections. A
//! fixed table of [`CODE_KINDS`] distinct codes; codes beyond it are counted under
//! code 0, never lost. This module does not know what the codes mean.

/// Distinct codes one table holds.
pub const CODE_KINDS: usize = 16;

/// Count of one code, and the smallest and largest `Retry-After` seen with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeCount {
    /// The code (0: codes beyond the table's capacity).
    pub code: u16,
    /// Times it was seen.
    pub count: u64,
    /// How many of them carried a `Retry-After` (seconds).
    pub retry_after_count: u64,
    /// Smallest `Retry-After` seen, seconds.
    pub retry_after_min_s: u64,
    /// Largest `Retry-After` seen, seconds.
    pub retry_after_max_s: u64,
}

impl CodeCount {
    /// Adds `other` (same code).
    pub fn merge(&mut self, o: &CodeCount) {
        self.count += o.count;
        if o.retry_after_count > 0 {
            if self.retry_after_count == 0 {
                self.retry_after_min_s = o.retry_after_min_s;
                self.retry_after_max_s = o.retry_after_max_s;
            } else {
                self.retry_after_min_s = self.retry_after_min_s.min(o.retry_after_min_s);
                self.retry_after_max_s = self.retry_after_max_s.max(o.retry_after_max_s);
            }
            self.retry_after_count += o.retry_after_count;
        }
    }
}

/// Counts by code.
#[derive(Clone, Debug)]
pub struct CodeTable {
    entries: [CodeCount; CODE_KINDS],
    len: usize,
}

impl Default for CodeTable {
    fn default() -> Self {
        Self { entries: [CodeCount::default(); CODE_KINDS], len: 0 }
    }
}

impl CodeTable {
    /// Counts one `code`, with its `Retry-After` in seconds if it had one.
    pub fn add(&mut self, code: u16, retry_after_s: Option<u64>) {
        let one = CodeCount {
            code,
            count: 1,
            retry_after_count: u64::from(retry_after_s.is_some()),
            retry_after_min_s: retry_after_s.unwrap_or(0),
            retry_after_max_s: retry_after_s.unwrap_or(0),
        };
        self.merge(&one);
    }

    /// Adds one entry (counted under code 0 when the table is full).
    pub fn merge(&mut self, c: &CodeCount) {
        if let Some(e) = self.entries[..self.len].iter_mut().find(|e| e.code == c.code) {
            e.merge(c);
        } else if self.len < CODE_KINDS - 1 || (self.len < CODE_KINDS && c.code == 0) {
            self.entries[self.len] = *c;
            self.len += 1;
        } else {
            let mut other = *c;
            other.code = 0;
            self.merge(&other);
        }
    }

    /// Codes seen, in order of first occurrence.
    pub fn iter(&self) -> impl Iterator<Item = &CodeCount> {
        self.entries[..self.len].iter()
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.iter().map(|e| e.count).sum()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_codes_and_retry_after_ranges() {
        let mut t = CodeTable::default();
        t.add(429, Some(5));
        t.add(429, Some(2));
        t.add(429, None);
        t.add(503, None);
        let e: Vec<_> = t.iter().copied().collect();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].code, e[0].count, e[0].retry_after_count), (429, 3, 2));
        assert_eq!((e[0].retry_after_min_s, e[0].retry_after_max_s), (2, 5));
        assert_eq!((e[1].code, e[1].count, e[1].retry_after_count), (503, 1, 0));
        let mut merged = CodeTable::default();
        merged.add(503, Some(9));
        for c in t.iter() {
            merged.merge(c);
        }
        let m503 = merged.iter().find(|c| c.code == 503).unwrap();
        assert_eq!((m503.count, m503.retry_after_min_s, m503.retry_after_max_s), (2, 9, 9));
    }

    #[test]
    fn codes_beyond_capacity_are_counted_under_zero() {
        let mut t = CodeTable::default();
        for code in 1000..1100 {
            t.add(code, None);
        }
        assert_eq!(t.total(), 100);
        assert_eq!(t.iter().count(), CODE_KINDS);
        assert_eq!(t.iter().find(|c| c.code == 0).unwrap().count, 100 - (CODE_KINDS as u64 - 1));
    }
}
