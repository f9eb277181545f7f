//! Reusable byte buffers, lent to connections and given back: the send buffers of
//! the client loop (`run`) and the outgoing frames and partial upgrade requests of the
//! server loop (`serve`). A pool keeps at most a number of buffers, none larger than a
//! cap, so one big message does not pin its memory for the rest of the run. What it
//! does not do: own a buffer an operation in flight uses (the connection does until
//! the completion), or share buffers between threads.

/// Reusable byte buffers: what a connection is sending, or has half-received.
#[derive(Debug)]
pub struct BufPool {
    bufs: Vec<Vec<u8>>,
    /// Buffers larger than this are freed instead of kept.
    keep_capacity: usize,
    /// At most this many buffers are kept.
    keep_count: usize,
}

impl BufPool {
    pub fn new(keep_capacity: usize, keep_count: usize) -> Self {
        Self { bufs: Vec::new(), keep_capacity, keep_count }
    }

    /// An empty buffer, with capacity if one was pooled.
    pub fn take(&mut self) -> Vec<u8> {
        self.bufs.pop().unwrap_or_default()
    }

    /// Gives a buffer back (cleared); unallocated or oversized buffers are dropped.
    pub fn put(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > self.keep_capacity || self.bufs.len() >= self.keep_count {
            return;
        }
        buf.clear();
        self.bufs.push(buf);
    }

    /// Bytes held by pooled buffers.
    #[cfg(test)]
    pub fn capacity_bytes(&self) -> usize {
        self.bufs.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_big_or_surplus_ones_are_freed() {
        let mut pool = BufPool::new(1024, 2);
        let mut a = pool.take();
        a.extend_from_slice(b"hello");
        let cap = a.capacity();
        pool.put(a);
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() == cap, "reused, cleared");
        pool.put(again);
        pool.put(Vec::with_capacity(4096));
        assert_eq!(pool.capacity_bytes(), cap, "over the cap: freed");
        pool.put(Vec::with_capacity(16));
        pool.put(Vec::with_capacity(32));
        assert_eq!(pool.capacity_bytes(), cap + 16, "at most two kept");
        pool.put(Vec::new());
        assert_eq!(pool.capacity_bytes(), cap + 16, "unallocated ones are not kept");
    }
}
