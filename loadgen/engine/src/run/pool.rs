//! The pool of connections the run's open-model messages go to (those whose program
//! runs `Traffic::Pool`): joined and left in O(1), drawn from round robin.
//!
//! A member's position is kept in its slab entry (`Conn::pool_pos`), so leaving swaps
//! the last member into its place instead of scanning the list.

use super::conn::Conn;

/// Not a member.
pub const NOT_IN_POOL: u32 = u32::MAX;

/// Connection indices, in no particular order, and a round-robin cursor.
#[derive(Debug, Default)]
pub struct Pool {
    members: Vec<u32>,
    cursor: usize,
}

impl Pool {
    /// `index` joins (once).
    pub fn join(&mut self, conns: &mut [Conn], index: u32) {
        let conn = &mut conns[index as usize];
        if conn.pool_pos != NOT_IN_POOL {
            return;
        }
        conn.pool_pos = self.members.len() as u32;
        self.members.push(index);
    }

    /// `index` leaves, if it is a member.
    pub fn leave(&mut self, conns: &mut [Conn], index: u32) {
        let pos = std::mem::replace(&mut conns[index as usize].pool_pos, NOT_IN_POOL);
        if pos == NOT_IN_POOL {
            return;
        }
        self.members.swap_remove(pos as usize);
        if let Some(&moved) = self.members.get(pos as usize) {
            conns[moved as usize].pool_pos = pos;
        }
    }

    /// Every member leaves.
    pub fn clear(&mut self, conns: &mut [Conn]) {
        for index in self.members.drain(..) {
            conns[index as usize].pool_pos = NOT_IN_POOL;
        }
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The next member, round robin.
    pub fn next(&mut self) -> Option<u32> {
        if self.members.is_empty() {
            return None;
        }
        self.cursor = (self.cursor + 1) % self.members.len();
        Some(self.members[self.cursor])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_leave_in_constant_time_and_positions_stay_true() {
        let mut conns: Vec<Conn> = (0..8).map(|_| Conn::free()).collect();
        let mut pool = Pool::default();
        for i in 0..8 {
            pool.join(&mut conns, i);
        }
        pool.join(&mut conns, 3);
        assert_eq!(pool.len(), 8, "joining twice is once");
        for i in [0, 7, 3, 3, 5] {
            pool.leave(&mut conns, i);
        }
        assert_eq!(pool.len(), 4);
        let mut members: Vec<u32> = (0..4).filter_map(|_| pool.next()).collect();
        members.sort_unstable();
        assert_eq!(members, vec![1, 2, 4, 6], "round robin visits every member once per turn");
        for (pos, &m) in pool.members.iter().enumerate() {
            assert_eq!(conns[m as usize].pool_pos, pos as u32);
        }
        for i in [0, 3, 5, 7] {
            assert_eq!(conns[i].pool_pos, NOT_IN_POOL);
        }
        pool.clear(&mut conns);
        assert!(pool.is_empty() && pool.next().is_none());
        assert!(conns.iter().all(|c| c.pool_pos == NOT_IN_POOL));
    }
}
