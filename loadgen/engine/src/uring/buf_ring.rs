//! A provided-buffer ring (IORING_REGISTER_PBUF_RING): a pool of equal receive buffers
//! that the kernel picks from when data arrives on any connection of the ring using
//! this buffer group. A connection holds a buffer only between a completion and the
//! moment its bytes are consumed, so idle connections cost no receive memory.
//!
//! Memory is allocated here (page-aligned ring, one contiguous buffer area) and must
//! outlive the registration: [`super::ring::Ring`] owns its buffer rings and
//! unregisters them before they are freed. Recycling a buffer publishes it to the
//! kernel with one release store of the ring's tail.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

const PAGE: usize = 4096;

/// A buffer ring and its buffers.
#[derive(Debug)]
pub struct BufRing {
    bgid: u16,
    entries: u16,
    buf_size: u32,
    ring: NonNull<BufRingEntry>,
    ring_layout: Layout,
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    tail: u16,
}

// SAFETY: the ring owns its allocations; the kernel only touches them through the
// io_uring it is registered with, which is driven by the same (single) thread.
unsafe impl Send for BufRing {}

impl BufRing {
    /// `entries` buffers of `buf_size` bytes for buffer group `bgid`, all initially
    /// available. `entries` is rounded up to a power of two (at most 32,768).
    pub fn new(bgid: u16, entries: u16, buf_size: u32) -> Self {
        let entries = entries.clamp(1, 1 << 15).next_power_of_two();
        let ring_bytes = (usize::from(entries) * std::mem::size_of::<BufRingEntry>()).max(PAGE);
        let ring_layout = Layout::from_size_align(ring_bytes, PAGE).expect("valid ring layout");
        let bufs_bytes = (usize::from(entries) * buf_size as usize).max(1);
        let bufs_layout = Layout::from_size_align(bufs_bytes, PAGE).expect("valid buffer layout");
        // SAFETY: both layouts have non-zero size.
        let (ring, bufs) = unsafe { (alloc::alloc_zeroed(ring_layout), alloc::alloc(bufs_layout)) };
        let (Some(ring), Some(bufs)) = (NonNull::new(ring.cast::<BufRingEntry>()), NonNull::new(bufs)) else {
            alloc::handle_alloc_error(ring_layout);
        };
        let mut this = Self { bgid, entries, buf_size, ring, ring_layout, bufs, bufs_layout, tail: 0 };
        for bid in 0..entries {
            this.push(bid);
        }
        this.publish();
        this
    }

    /// Buffer group id used in RecvMulti's `buf_group`.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Number of buffers.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// Address of the ring memory, for registration.
    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring.as_ptr() as u64
    }

    /// Bytes allocated (ring + buffers), for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        self.ring_layout.size() + self.bufs_layout.size()
    }

    /// The first `len` bytes of buffer `bid`, as filled by the kernel.
    pub fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.entries && len <= self.buf_size as usize, "buffer {bid} len {len}");
        // SAFETY: in bounds of the buffer area; the kernel has completed its write to
        // this buffer (we hold its completion) and will not write it again until it is
        // recycled, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(usize::from(bid) * self.buf_size as usize), len) }
    }

    /// The first `len` bytes of buffer `bid`, writable (TLS decrypts in place there).
    pub fn buffer_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        assert!(bid < self.entries && len <= self.buf_size as usize, "buffer {bid} len {len}");
        // SAFETY: as in `buffer`; `&mut self` makes this the only view of the buffer,
        // and the kernel does not touch it until it is recycled.
        unsafe {
            std::slice::from_raw_parts_mut(self.bufs.as_ptr().add(usize::from(bid) * self.buf_size as usize), len)
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < self.entries, "buffer {bid} out of range");
        self.push(bid);
        self.publish();
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: index < entries, inside the ring allocation; entries the kernel has
        // not yet consumed are never overwritten because at most `entries` buffers
        // exist and each is pushed once per use.
        let entry = unsafe { &mut *self.ring.as_ptr().add(index) };
        // SAFETY: bid < entries, so the address is inside the buffer area.
        let addr = unsafe { self.bufs.as_ptr().add(usize::from(bid) * self.buf_size as usize) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives inside the first ring entry, which we own; the
        // kernel reads it concurrently, hence the atomic release store.
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts; the owning Ring unregistered
        // this buffer group before dropping it.
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            alloc::dealloc(self.bufs.as_ptr(), self.bufs_layout);
        }
    }
}
