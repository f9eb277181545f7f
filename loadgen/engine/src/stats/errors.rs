//! Error counts by kind without allocation: a fixed table of up to [`ERROR_KINDS`]
//! distinct `&'static str` names (the stable `name()`s of the engine's error enums)
//! with a linear scan, pointer equality first and string equality second. A name
//! beyond the table's capacity is counted under [`OTHER_ERROR`], never lost. This
//! module does not know what the names mean.

use std::ptr;

/// Distinct error names one table holds.
pub const ERROR_KINDS: usize = 64;

/// Name under which errors beyond [`ERROR_KINDS`] distinct names are counted.
pub const OTHER_ERROR: &str = "other";

/// Error counts by kind. Counting is a short scan over the names seen so far and
/// never allocates.
#[derive(Clone, Debug)]
pub struct ErrorTable {
    names: [&'static str; ERROR_KINDS],
    counts: [u64; ERROR_KINDS],
    len: usize,
    other: u64,
}

impl Default for ErrorTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self { names: [""; ERROR_KINDS], counts: [0; ERROR_KINDS], len: 0, other: 0 }
    }

    /// Counts `n` errors of kind `name`.
    #[inline]
    pub fn add(&mut self, name: &'static str, n: u64) {
        // The same literal almost always arrives through the same pointer.
        if let Some(i) = self.names[..self.len].iter().position(|&k| ptr::eq(k, name)) {
            self.counts[i] += n;
        } else {
            self.add_slow(name, n);
        }
    }

    #[cold]
    fn add_slow(&mut self, name: &'static str, n: u64) {
        if let Some(i) = self.names[..self.len].iter().position(|&k| k == name) {
            self.counts[i] += n;
        } else if self.len < ERROR_KINDS {
            self.names[self.len] = name;
            self.counts[self.len] = n;
            self.len += 1;
        } else {
            self.other += n;
        }
    }

    /// Kinds with a non-zero count, in order of first occurrence, then
    /// [`OTHER_ERROR`] if the table overflowed.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let named = self.names[..self.len].iter().copied().zip(self.counts[..self.len].iter().copied());
        named.chain((self.other > 0).then_some((OTHER_ERROR, self.other))).filter(|&(_, n)| n > 0)
    }

    /// Count of `name` (errors counted under [`OTHER_ERROR`] are not attributed).
    pub fn get(&self, name: &str) -> u64 {
        let named: u64 = self.iter().filter(|&(k, _)| k == name).map(|(_, n)| n).sum();
        named
    }

    /// Errors counted in all.
    pub fn total(&self) -> u64 {
        self.counts[..self.len].iter().sum::<u64>() + self.other
    }

    /// Distinct names held (at most [`ERROR_KINDS`]).
    pub fn kinds(&self) -> usize {
        self.len
    }

    /// No error counted.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Forgets every name and count.
    pub fn clear(&mut self) {
        self.len = 0;
        self.other = 0;
    }
}
