//! Submission-queue entries of the server loop and the `user_data` encoding that routes
//! completions back to a connection: bits 0-7 operation, 8-31 connection generation,
//! 32-63 connection index (a slab index, not the fixed slot).
//!
//! Pointers handed to the kernel (send buffers) are owned by the connection that
//! submitted the operation and are not touched until its completion. This module does
//! not decide when to submit anything.

use io_uring::{opcode, squeue, types};

use crate::uring::ops::{self, OpCode};
pub(super) use crate::uring::ops::{close, recv_multi, send, shutdown};

/// What a completion belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Op {
    /// Multishot accept on the listener, into direct descriptors.
    Accept = 1,
    /// Multishot receive from the provided-buffer ring.
    Recv = 2,
    /// Send of the connection's in-flight buffer.
    Send = 3,
    /// Shutdown before close (sends FIN and ends an armed multishot receive).
    Shutdown = 4,
    /// Close of the connection's fixed slot.
    Close = 5,
    /// Cancellation of another operation (its own completion is ignored).
    Cancel = 6,
    /// Close of a slot accepted while stopping (no connection was made for it).
    CloseOrphan = 7,
    /// SO_LINGER {1, 0} before a reset (fault `reset-after` / `reset-all-at`).
    SockOpt = 8,
    /// Timer-wheel token (never submitted): a connection's `close-after` is due.
    CloseTimer = 9,
    /// Timer-wheel token: a connection's `reset-after` is due.
    ResetTimer = 10,
    /// Timer-wheel token: a close the server started is past its grace.
    GraceTimer = 11,
}

impl OpCode for Op {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Accept,
            2 => Self::Recv,
            3 => Self::Send,
            4 => Self::Shutdown,
            5 => Self::Close,
            6 => Self::Cancel,
            7 => Self::CloseOrphan,
            8 => Self::SockOpt,
            9 => Self::CloseTimer,
            10 => Self::ResetTimer,
            11 => Self::GraceTimer,
            _ => return None,
        })
    }
}

/// Routing data of an operation of this loop.
pub(super) type Tag = ops::Tag<Op>;

impl Tag {
    /// A tag that belongs to no connection.
    pub fn global(op: Op) -> Self {
        Self { conn: u32::MAX, generation: 0, op }
    }
}
/// Multishot accept on a listening process fd; each connection lands in a free slot
/// of the ring's fixed-file table (the completion's result is the slot).
pub(super) fn accept_multi(listener: i32) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(listener))
        .allocate_file_index(true)
        .build()
        .user_data(Tag::global(Op::Accept).encode())
}

/// SO_LINGER `value` on a fixed socket (io_uring setsockopt command, Linux 6.7+);
/// `value` is static, so it outlives the operation.
pub(super) fn setsockopt_linger(slot: u32, value: &'static libc::linger, tag: Tag) -> squeue::Entry {
    opcode::SetSockOpt::new(
        types::Fixed(slot),
        libc::SOL_SOCKET as u32,
        libc::SO_LINGER as u32,
        (value as *const libc::linger).cast(),
        std::mem::size_of::<libc::linger>() as u32,
    )
    .build()
    .user_data(tag.encode())
}

/// Cancel the operation submitted with `target`'s user_data.
pub(super) fn cancel(target: Tag) -> squeue::Entry {
    opcode::AsyncCancel::new(target.encode()).build().user_data(Tag::global(Op::Cancel).encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Shutdown, Op::Close, Op::Cancel, Op::CloseOrphan, Op::SockOpt] {
            let t = Tag { conn: 0xDEAD_BEEF, generation: 0x12_3456, op };
            assert_eq!(Tag::decode(t.encode()), Some(t));
        }
        assert_eq!(Tag::decode(0), None);
        assert_eq!(Tag::decode(Tag::global(Op::Accept).encode()).map(|t| t.op), Some(Op::Accept));
    }
}
