//! A hashed timing wheel for per-connection timers (heartbeats, pacing, timeouts).
//!
//! Insert and cancel are O(1); firing visits only slots that hold timers, found through
//! a bitmap, so an idle wheel costs nothing and `next_deadline` is cheap. Entries live
//! in one slab reused after they fire, so steady state does not allocate. Timers fire
//! at or after their deadline, never before, in one call to [`TimerWheel::advance`].
//! The wheel stores opaque `u64` tokens; it knows nothing of connections.
//!
//! Hierarchical: timers beyond one rotation wait in an outer wheel of the same number
//! of slots, one slot per rotation (with 4096 slots of 100 µs: rotations of 410 ms,
//! an outer horizon of 28 minutes), and cascade into the inner wheel when their
//! rotation comes, so a million 30-second heartbeats do not occupy every inner slot
//! (which would wake the loop every tick to skip entries of later rotations), and
//! inserting or cancelling a reply timeout, a 10 s handshake deadline or a backoff of
//! minutes is O(1): a cancelled timer is unlinked at once, never left to linger. Only
//! timers beyond the outer horizon wait in an overflow heap (a cancelled one stays
//! there, skipped, until its time comes).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

const NIL: u32 = u32::MAX;
/// `Entry::slot` of a timer waiting in the overflow heap.
const FAR: u32 = u32::MAX - 1;
/// `Entry::slot` of a timer in outer slot `s` is `OUTER + s`.
const OUTER: u32 = 1 << 30;

/// Handle to cancel a timer; stale handles (fired or cancelled) are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline_ns: u64,
    token: u64,
    next: u32,
    prev: u32,
    slot: u32,
    generation: u32,
}

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    tick_ns: u64,
    mask: u64,
    heads: Vec<u32>,
    occupied: Vec<u64>,
    /// Outer wheel: slot `r & mask` holds the timers of rotation `r`.
    outer_heads: Vec<u32>,
    outer_occupied: Vec<u64>,
    /// The next rotation to cascade into the inner wheel.
    outer_next: u64,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Every tick before this one has been processed.
    current_tick: u64,
    len: usize,
    /// Reused buffer of (deadline, index, token) due in one `advance`.
    scratch: Vec<(u64, u32, u64)>,
    /// Timers beyond one rotation: (deadline, index, generation); stale items
    /// (cancelled timers) are skipped when they come up.
    far: BinaryHeap<Reverse<(u64, u32, u32)>>,
}

impl TimerWheel {
    /// A wheel of `slots` (rounded up to a power of two) slots of `tick_ns` each,
    /// starting at time `now_ns`.
    pub fn new(tick_ns: u64, slots: usize, now_ns: u64) -> Self {
        let slots = slots.next_power_of_two().max(64);
        Self {
            tick_ns: tick_ns.max(1),
            mask: slots as u64 - 1,
            heads: vec![NIL; slots],
            occupied: vec![0; slots / 64],
            outer_heads: vec![NIL; slots],
            outer_occupied: vec![0; slots / 64],
            outer_next: now_ns / tick_ns.max(1) / slots as u64 + 1,
            entries: Vec::new(),
            free: Vec::new(),
            current_tick: now_ns / tick_ns.max(1),
            len: 0,
            scratch: Vec::new(),
            far: BinaryHeap::new(),
        }
    }

    /// Timers pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No timer pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the slab, for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + (self.heads.capacity() + self.outer_heads.capacity()) * 4
            + (self.occupied.capacity() + self.outer_occupied.capacity()) * 8
            + self.free.capacity() * 4
            + self.far.capacity() * std::mem::size_of::<Reverse<(u64, u32, u32)>>()
    }

    /// Schedules `token` to fire at `deadline_ns` (a past deadline fires at the next
    /// `advance`).
    pub fn insert(&mut self, deadline_ns: u64, token: u64) -> TimerId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry { deadline_ns: 0, token: 0, next: NIL, prev: NIL, slot: NIL, generation: 0 });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[index as usize];
        e.deadline_ns = deadline_ns;
        e.token = token;
        let generation = e.generation;
        self.len += 1;
        let tick = deadline_ns / self.tick_ns;
        if tick <= self.current_tick + self.mask {
            self.link(index);
        } else if tick / self.rotation() < self.outer_next + self.mask {
            self.link_outer(index);
        } else {
            self.entries[index as usize].slot = FAR;
            self.far.push(Reverse((deadline_ns, index, generation)));
        }
        TimerId { index, generation }
    }

    /// Puts entry `index` (deadline within one rotation) into its slot.
    fn link(&mut self, index: u32) {
        let tick = (self.entries[index as usize].deadline_ns / self.tick_ns).max(self.current_tick);
        let slot = (tick & self.mask) as u32;
        let head = self.heads[slot as usize];
        let e = &mut self.entries[index as usize];
        e.next = head;
        e.prev = NIL;
        e.slot = slot;
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[slot as usize] = index;
        self.occupied[slot as usize / 64] |= 1 << (slot % 64);
    }

    /// Ticks per rotation of the inner wheel.
    fn rotation(&self) -> u64 {
        self.mask + 1
    }

    /// Puts entry `index` into the outer slot of its rotation.
    fn link_outer(&mut self, index: u32) {
        let rotation = self.entries[index as usize].deadline_ns / self.tick_ns / self.rotation();
        let slot = (rotation & self.mask) as u32;
        let head = self.outer_heads[slot as usize];
        let e = &mut self.entries[index as usize];
        e.next = head;
        e.prev = NIL;
        e.slot = OUTER + slot;
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.outer_heads[slot as usize] = index;
        self.outer_occupied[slot as usize / 64] |= 1 << (slot % 64);
    }

    /// Cascades the outer slots of every rotation whose ticks now lie within the inner
    /// wheel's horizon (rotation `r` once `r × rotation ≤ current_tick`).
    fn cascade(&mut self) {
        let target = self.current_tick / self.rotation();
        if self.outer_next > target {
            return;
        }
        // After a long sleep every outer slot may be due: visit each at most once.
        let last = target.min(self.outer_next + self.mask);
        for rotation in self.outer_next..=last {
            let slot = (rotation & self.mask) as usize;
            if self.outer_occupied[slot / 64] & (1 << (slot % 64)) == 0 {
                continue;
            }
            let mut i = std::mem::replace(&mut self.outer_heads[slot], NIL);
            self.outer_occupied[slot / 64] &= !(1 << (slot % 64));
            while i != NIL {
                let next = self.entries[i as usize].next;
                self.link(i);
                i = next;
            }
        }
        self.outer_next = target + 1;
    }

    /// Moves overflow timers whose rotation has come into the wheel.
    fn admit_far(&mut self) {
        let horizon = self.current_tick + self.mask;
        while let Some(&Reverse((deadline, index, generation))) = self.far.peek() {
            if deadline / self.tick_ns > horizon {
                break;
            }
            self.far.pop();
            let e = &self.entries[index as usize];
            if e.generation == generation && e.slot == FAR {
                self.link(index);
            }
        }
    }

    /// Cancels a pending timer; returns whether it was pending.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.get(id.index as usize) {
            Some(e) if e.generation == id.generation && e.slot == FAR => {
                // The heap item goes stale and is skipped when it comes up.
                self.release(id.index);
                true
            }
            Some(e) if e.generation == id.generation && e.slot != NIL => {
                self.unlink(id.index);
                true
            }
            _ => false,
        }
    }

    fn unlink(&mut self, index: u32) {
        let Entry { next, prev, slot, .. } = self.entries[index as usize];
        if prev == NIL {
            let (heads, occupied, slot) = if slot >= OUTER {
                (&mut self.outer_heads, &mut self.outer_occupied, slot - OUTER)
            } else {
                (&mut self.heads, &mut self.occupied, slot)
            };
            heads[slot as usize] = next;
            if next == NIL {
                occupied[slot as usize / 64] &= !(1 << (slot % 64));
            }
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        self.release(index);
    }

    /// Returns entry `index` (already out of its slot or heap) to the free list; its
    /// handles go stale.
    fn release(&mut self, index: u32) {
        let e = &mut self.entries[index as usize];
        e.slot = NIL;
        e.generation = e.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
    }

    /// Next occupied slot at or after `from_tick` within one rotation, as a tick.
    /// The earliest deadline of the timers due in `tick` (the slot may also hold timers
    /// of later rotations), or the tick's start if there are none: a lower bound that
    /// is exact for the wheel's timers, so the loop sleeps until a timer is really due.
    fn earliest_in_tick(&self, tick: u64) -> u64 {
        let start = tick * self.tick_ns;
        let end = start + self.tick_ns;
        let mut i = self.heads[(tick & self.mask) as usize];
        let mut earliest = u64::MAX;
        while i != NIL {
            let e = &self.entries[i as usize];
            if e.deadline_ns < end {
                earliest = earliest.min(e.deadline_ns);
            }
            i = e.next;
        }
        if earliest == u64::MAX { start } else { earliest }
    }

    fn next_occupied_tick(&self, from_tick: u64) -> Option<u64> {
        let slots = self.heads.len() as u64;
        let start = from_tick & self.mask;
        let words = self.occupied.len();
        let mut word = (start / 64) as usize;
        let mut bits = self.occupied[word] & (!0u64 << (start % 64));
        for step in 0..=words {
            if bits != 0 {
                let slot = (word as u64) * 64 + u64::from(bits.trailing_zeros());
                let delta = (slot + slots - start) & self.mask;
                return Some(from_tick + delta);
            }
            if step == words {
                break;
            }
            word = (word + 1) % words;
            bits = self.occupied[word];
        }
        None
    }

    /// The earliest rotation with timers in the outer wheel.
    fn next_outer_rotation(&self) -> Option<u64> {
        let words = self.outer_occupied.len();
        let start = self.outer_next & self.mask;
        let mut word = (start / 64) as usize;
        let mut bits = self.outer_occupied[word] & (!0u64 << (start % 64));
        for step in 0..=words {
            if bits != 0 {
                let slot = (word as u64) * 64 + u64::from(bits.trailing_zeros());
                return Some(self.outer_next + ((slot + self.rotation() - start) & self.mask));
            }
            if step == words {
                break;
            }
            word = (word + 1) % words;
            bits = self.outer_occupied[word];
        }
        None
    }

    /// A lower bound on the earliest deadline (the start of the earliest occupied slot),
    /// for choosing how long to sleep.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let wheel = self.next_occupied_tick(self.current_tick).map(|tick| self.earliest_in_tick(tick));
        // The outer wheel: the start of the earliest occupied rotation's cascade (its
        // timers are not due before then).
        let outer = self.next_outer_rotation().map(|r| r * self.rotation() * self.tick_ns);
        // A stale (cancelled) top only makes this bound earlier, never later.
        let far = self.far.peek().map(|Reverse((deadline, ..))| *deadline);
        [wheel, outer, far].into_iter().flatten().min()
    }

    /// Fires every timer whose deadline is at or before `now_ns`, calling `fire` with
    /// its token. Timers inserted by `fire` for a time already passed fire in a later
    /// call. Returns how many fired.
    pub fn advance(&mut self, now_ns: u64, mut fire: impl FnMut(u64)) -> usize {
        let now_tick = now_ns / self.tick_ns;
        // Overflow timers within one rotation of `now` join the wheel first (a slot
        // may then hold timers of two rotations; the deadline check below tells them apart).
        let current = self.current_tick;
        self.current_tick = now_tick.max(current);
        self.cascade();
        self.admit_far();
        self.current_tick = current;
        let mut fired = 0;
        let mut tick = self.current_tick;
        let last = now_tick.min(self.current_tick + self.mask);
        let mut due = std::mem::take(&mut self.scratch);
        while let Some(t) = self.next_occupied_tick(tick) {
            if t > last {
                break;
            }
            let slot = (t & self.mask) as usize;
            let mut i = self.heads[slot];
            while i != NIL {
                let e = self.entries[i as usize];
                if e.deadline_ns <= now_ns {
                    due.push((e.deadline_ns, i, e.token));
                }
                i = e.next;
            }
            tick = t + 1;
        }
        // Fire in deadline order within this advance.
        due.sort_unstable_by_key(|&(d, i, _)| (d, i));
        for &(_, index, token) in &due {
            self.unlink(index);
            fire(token);
            fired += 1;
        }
        due.clear();
        self.scratch = due;
        self.current_tick = now_tick.max(self.current_tick);
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn fires_at_or_after_the_deadline_never_before_and_exactly_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut wheel = TimerWheel::new(1_000, 256, 0);
        let mut deadlines = Vec::new();
        for token in 0..5_000u64 {
            // Up to ~4 rotations ahead, so slots are shared across rounds.
            let d = rng.next_u64() % 1_000_000;
            deadlines.push(d);
            wheel.insert(d, token);
        }
        let mut fired = vec![None; deadlines.len()];
        let mut now = 0;
        while !wheel.is_empty() {
            now += 1 + rng.next_u64() % 5_000;
            wheel.advance(now, |t| {
                assert!(fired[t as usize].is_none(), "token {t} fired twice");
                fired[t as usize] = Some(now);
            });
            for (t, &d) in deadlines.iter().enumerate() {
                if d <= now {
                    assert!(fired[t].is_some(), "token {t} due at {d} not fired by {now}");
                }
            }
        }
        for (t, f) in fired.iter().enumerate() {
            let f = f.expect("all fired");
            assert!(f >= deadlines[t], "token {t} fired at {f} before {}", deadlines[t]);
        }
    }

    #[test]
    fn random_timers_across_inner_outer_and_heap_with_cancels_fire_once_on_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // 64 slots of 1 µs: inner 64 µs, outer 4.1 ms; deadlines up to 20 ms reach the heap.
        let mut wheel = TimerWheel::new(1_000, 64, 0);
        let mut pending: Vec<(u64, Option<TimerId>)> = Vec::new();
        let mut fired = std::collections::HashMap::new();
        let mut now = 0u64;
        for round in 0..400u64 {
            for _ in 0..20 {
                let d = now + rng.next_u64() % 20_000_000;
                let token = pending.len() as u64;
                pending.push((d, Some(wheel.insert(d, token))));
            }
            // Cancel a few pending ones.
            for _ in 0..5 {
                let t = (rng.next_u64() % pending.len() as u64) as usize;
                if let (d, Some(id)) = pending[t]
                    && !fired.contains_key(&(t as u64))
                {
                    assert!(wheel.cancel(id), "pending timer {t} (due {d}) cancels");
                    pending[t].1 = None;
                }
            }
            now += rng.next_u64() % if round % 50 == 0 { 5_000_000 } else { 60_000 };
            wheel.advance(now, |t| {
                assert!(fired.insert(t, now).is_none(), "token {t} fired twice");
            });
            for (t, &(d, id)) in pending.iter().enumerate() {
                let f = fired.get(&(t as u64));
                match id {
                    None => assert!(f.is_none(), "cancelled {t} fired"),
                    Some(_) if d <= now => assert!(f.is_some(), "{t} due at {d} not fired by {now}"),
                    Some(_) => assert!(f.is_none(), "{t} due at {d} fired early at {now}"),
                }
            }
        }
        let live = pending.iter().enumerate().filter(|(t, (_, id))| id.is_some() && !fired.contains_key(&(*t as u64)));
        assert_eq!(wheel.len(), live.count());
    }

    #[test]
    fn cancel_and_stale_handles() {
        let mut wheel = TimerWheel::new(1_000, 64, 0);
        let a = wheel.insert(5_000, 1);
        let b = wheel.insert(5_000, 2);
        assert!(wheel.cancel(a));
        assert!(!wheel.cancel(a), "second cancel is a no-op");
        let mut got = Vec::new();
        wheel.advance(10_000, |t| got.push(t));
        assert_eq!(got, [2]);
        assert!(!wheel.cancel(b), "fired timer cannot be cancelled");
        // The slot is reused with a new generation: the stale handle stays stale.
        let c = wheel.insert(20_000, 3);
        assert_eq!(c.index, b.index, "the freed entry is reused");
        assert_ne!(c, b, "with a new generation");
        assert!(!wheel.cancel(b), "the stale handle does not cancel the new timer");
        assert_eq!(wheel.len(), 1);
        assert!(wheel.cancel(c));
        assert!(wheel.is_empty());
    }

    #[test]
    fn far_future_timers_wait_their_round_and_fire_in_order() {
        let mut wheel = TimerWheel::new(1_000, 64, 0);
        wheel.insert(64_000 * 3 + 500, 3);
        wheel.insert(500, 1);
        wheel.insert(64_000 + 500, 2);
        let mut got = Vec::new();
        wheel.advance(1_000, |t| got.push(t));
        assert_eq!(got, [1]);
        wheel.advance(64_000 * 2, |t| got.push(t));
        assert_eq!(got, [1, 2]);
        wheel.advance(10_000_000, |t| got.push(t));
        assert_eq!(got, [1, 2, 3]);
    }

    #[test]
    fn next_deadline_is_a_lower_bound_and_none_when_empty() {
        let mut wheel = TimerWheel::new(1_000, 128, 0);
        assert_eq!(wheel.next_deadline(), None);
        wheel.insert(42_500, 7);
        wheel.insert(90_000, 8);
        let next = wheel.next_deadline().unwrap();
        assert_eq!(next, 42_500, "exact for a timer in the wheel: no waking early to spin");
        let mut got = Vec::new();
        wheel.advance(next - 1, |t| got.push(t));
        assert!(got.is_empty());
        wheel.advance(42_500, |t| got.push(t));
        assert_eq!(got, [7]);
        assert!(wheel.next_deadline().unwrap() <= 90_000);
    }

    #[test]
    fn churn_reuses_the_slab() {
        let mut wheel = TimerWheel::new(1_000, 1024, 0);
        let mut now = 0;
        for round in 0..100u64 {
            for i in 0..1_000 {
                wheel.insert(now + 1_000 + i * 10, round * 1_000 + i);
            }
            now += 20_000;
            let n = wheel.advance(now, |_| {});
            assert_eq!(n, 1_000);
            if round == 10 {
                assert!(wheel.memory_bytes() > 0);
            }
        }
        let warm = wheel.memory_bytes();
        for _ in 0..50 {
            for i in 0..1_000 {
                wheel.insert(now + 1_000 + i * 10, i);
            }
            now += 20_000;
            wheel.advance(now, |_| {});
        }
        assert_eq!(wheel.memory_bytes(), warm, "no growth in steady state");
    }

    /// The regression behind this test: a million 10 s handshake timers occupied every
    /// slot, so the loop woke every 100 µs tick to skip them and an idle run burnt a core.
    #[test]
    fn timers_beyond_a_rotation_do_not_wake_the_loop_early() {
        let mut wheel = TimerWheel::new(100_000, 4096, 0);
        let mut ids = Vec::new();
        for i in 0..10_000u64 {
            ids.push(wheel.insert(10_000_000_000 + i * 37_000, i));
        }
        assert_eq!(wheel.len(), 10_000);
        // A lower bound within one rotation (409.6 ms) of the earliest deadline (when its
        // rotation cascades), not the next tick.
        let next = wheel.next_deadline().unwrap();
        assert!((10_000_000_000 - 409_600_000..=10_000_000_000).contains(&next), "{next}");
        assert_eq!(wheel.advance(5_000_000_000, |_| panic!("nothing is due")), 0);
        // Cancel half while they wait in the outer wheel; the rest fire in order.
        for id in ids.iter().step_by(2) {
            assert!(wheel.cancel(*id));
            assert!(!wheel.cancel(*id), "stale handle");
        }
        assert_eq!(wheel.len(), 5_000);
        let mut got = Vec::new();
        let mut now = 5_000_000_000;
        while !wheel.is_empty() {
            now = wheel.next_deadline().unwrap().max(now + 100_000);
            wheel.advance(now, |t| got.push(t));
        }
        assert_eq!(got, (0..10_000u64).filter(|i| i % 2 == 1).collect::<Vec<_>>());
        assert!(now <= 10_000_000_000 + 9_999 * 37_000 + 100_000, "fired on time");
    }

    #[test]
    fn cancelled_outer_timers_are_gone_at_once_and_heap_timers_beyond_the_horizon_still_fire() {
        // 64 slots of 1 µs: rotations of 64 µs, an outer horizon of 64 rotations (4 ms).
        let mut wheel = TimerWheel::new(1_000, 64, 0);
        let ids: Vec<TimerId> = (0..1_000u64).map(|i| wheel.insert(100_000 + i * 2_000, i)).collect();
        assert!(wheel.far.is_empty(), "within the outer horizon: none in the heap");
        for id in &ids {
            assert!(wheel.cancel(*id));
        }
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None, "nothing lingers to wake the loop");
        assert!(wheel.outer_occupied.iter().all(|&w| w == 0));
        // Beyond the outer horizon: the heap, then the outer wheel, then the inner one.
        wheel.insert(10_000_000, 7);
        wheel.insert(150_000, 8);
        assert_eq!(wheel.far.len(), 1);
        let mut got = Vec::new();
        let mut now = 0;
        while !wheel.is_empty() {
            now = wheel.next_deadline().unwrap().max(now + 1_000);
            wheel.advance(now, |t| got.push((t, now)));
        }
        assert_eq!(got.iter().map(|&(t, _)| t).collect::<Vec<_>>(), [8, 7]);
        assert!(got[0].1 >= 150_000 && got[1].1 >= 10_000_000, "never early: {got:?}");
    }

    #[test]
    fn a_long_sleep_fires_far_timers_too() {
        let mut wheel = TimerWheel::new(1_000, 64, 0);
        wheel.insert(1_000_000, 1);
        wheel.insert(50_000, 2);
        let mut got = Vec::new();
        wheel.advance(5_000_000, |t| got.push(t));
        assert_eq!(got, [2, 1], "both due after one long sleep, in deadline order");
        assert!(wheel.is_empty());
    }
}
