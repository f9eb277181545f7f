//! What the client and server loops share about operations: the `user_data` layout
//! (bits 0-7 operation code, 8-31 connection generation, 32-63 connection index) and
//! the operations on a connection's fixed slot. Each loop keeps its own operation enum
//! and decides when to submit; this module only builds entries.

use io_uring::{opcode, squeue, types};

/// Something that routes a completion back to its owner.
pub trait UserData: Copy {
    /// The packed `user_data`.
    fn user_data(self) -> u64;
}

/// A loop's operation enum, stored in the low byte of `user_data`.
pub trait OpCode: Copy {
    /// The byte stored.
    fn code(self) -> u8;
    /// The operation of a stored byte; `None` for bytes the loop never writes.
    fn from_code(code: u8) -> Option<Self>;
}

/// Routing data of an operation: which connection (index and generation, so stale
/// completions of a reused slot are recognised) and which operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag<O> {
    /// Connection index.
    pub conn: u32,
    /// Connection generation (24 bits are kept).
    pub generation: u32,
    /// Operation.
    pub op: O,
}

impl<O: OpCode> Tag<O> {
    /// Packs into `user_data`.
    pub fn encode(self) -> u64 {
        pack(self.conn, self.generation, self.op.code())
    }

    /// Unpacks `user_data`; `None` for data the loop did not write.
    pub fn decode(data: u64) -> Option<Self> {
        let (conn, generation, op) = unpack(data);
        Some(Self { conn, generation, op: O::from_code(op)? })
    }
}

impl<O: OpCode> UserData for Tag<O> {
    fn user_data(self) -> u64 {
        self.encode()
    }
}

/// Packs a connection index, its generation (24 bits kept) and an operation code.
#[inline]
pub fn pack(conn: u32, generation: u32, op: u8) -> u64 {
    (u64::from(conn) << 32) | (u64::from(generation & 0xFF_FFFF) << 8) | u64::from(op)
}

/// Unpacks what [`pack`] made: (connection, generation, operation code).
#[inline]
pub fn unpack(data: u64) -> (u32, u32, u8) {
    ((data >> 32) as u32, ((data >> 8) & 0xFF_FFFF) as u32, data as u8)
}

/// Send `len` bytes at `ptr`, which the caller keeps alive and unmoved until the
/// completion.
pub fn send(slot: u32, ptr: *const u8, len: u32, tag: impl UserData) -> squeue::Entry {
    opcode::Send::new(types::Fixed(slot), ptr, len).build().user_data(tag.user_data())
}

/// Multishot receive on a fixed slot from buffer group `bgid`.
pub fn recv_multi(slot: u32, bgid: u16, tag: impl UserData) -> squeue::Entry {
    opcode::RecvMulti::new(types::Fixed(slot), bgid).build().user_data(tag.user_data())
}

/// Shut the socket down both ways (sends FIN even with a multishot receive armed:
/// closing the slot alone does not).
pub fn shutdown(slot: u32, tag: impl UserData) -> squeue::Entry {
    opcode::Shutdown::new(types::Fixed(slot), libc::SHUT_RDWR).build().user_data(tag.user_data())
}

/// Half-close: FIN on the write side, the receive side stays open (to drain replies).
pub fn shutdown_write(slot: u32, tag: impl UserData) -> squeue::Entry {
    opcode::Shutdown::new(types::Fixed(slot), libc::SHUT_WR).build().user_data(tag.user_data())
}

/// Close the fixed slot.
pub fn close(slot: u32, tag: impl UserData) -> squeue::Entry {
    opcode::Close::new(types::Fixed(slot)).build().user_data(tag.user_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrips_and_keeps_24_generation_bits() {
        assert_eq!(unpack(pack(0xDEAD_BEEF, 0x12_3456, 9)), (0xDEAD_BEEF, 0x12_3456, 9));
        assert_eq!(unpack(pack(1, 0x1FF_FFFF, 1)), (1, 0xFF_FFFF, 1));
        assert_eq!(unpack(pack(u32::MAX, 0, 255)), (u32::MAX, 0, 255));
    }
}
