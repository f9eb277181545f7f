//! Submission-queue entries of the client engine, one builder per operation, and the
//! `user_data` encoding that routes completions back to a connection:
//! bits 0-7 operation, 8-31 connection generation, 32-63 connection index.
//!
//! Pointers handed to the kernel (socket addresses, send buffers) are owned by the
//! worker's target table or by the connection, and outlive the operation.

use io_uring::{opcode, squeue, types};

use crate::uring::ops::{self, OpCode};
pub use crate::uring::ops::{close, recv_multi, send, shutdown, shutdown_write};

/// What a completion belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// IORING_OP_SOCKET into a fixed slot.
    Socket = 1,
    /// Bind to a source address.
    Bind = 2,
    /// Connect.
    Connect = 3,
    /// Send (handshake or frames).
    Send = 4,
    /// Multishot receive.
    Recv = 5,
    /// Shutdown before close (so a FIN is sent while a multishot receive is armed).
    Shutdown = 6,
    /// Close of the fixed slot.
    Close = 7,
    /// setsockopt through uring_cmd.
    SockOpt = 8,
    /// Timer only: the next ping of a connection is due.
    PingTimer = 10,
    /// Timer only: an HTTP poller's `Retry-After` hold-off ended.
    RetryTimer = 11,
    /// Timer only: closed loop, the reply to the message in flight is overdue.
    ReplyTimer = 12,
    /// Timer only: a dropped connection's next reconnect attempt is due.
    ReconnectTimer = 13,
    /// Half-close of a raw-TCP connection that drains its echoes before closing.
    Drain = 14,
    /// Timer only: a program step's time came (a sleep ends, a wait times out).
    StepTimer = 15,
    /// Cancel of a connection's multishot receive (its program stopped reading).
    Cancel = 16,
    /// Timer only: the pong of a connection's oldest unanswered ping is due.
    PongTimer = 17,
    /// Timer only: a slow upgrade (`HandshakeMode::Slow`) sends its next byte.
    SlowTimer = 18,
}

impl OpCode for Op {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Socket,
            2 => Self::Bind,
            3 => Self::Connect,
            4 => Self::Send,
            5 => Self::Recv,
            6 => Self::Shutdown,
            7 => Self::Close,
            8 => Self::SockOpt,
            10 => Self::PingTimer,
            11 => Self::RetryTimer,
            12 => Self::ReplyTimer,
            13 => Self::ReconnectTimer,
            14 => Self::Drain,
            15 => Self::StepTimer,
            16 => Self::Cancel,
            17 => Self::PongTimer,
            18 => Self::SlowTimer,
            _ => return None,
        })
    }
}

/// Routing data of an operation of this loop.
pub type Tag = ops::Tag<Op>;

/// Cancels the operation whose `user_data` is `target` (a connection's receive).
pub fn cancel(target: Tag, tag: Tag) -> squeue::Entry {
    opcode::AsyncCancel::new(target.encode()).build().user_data(tag.encode())
}

/// A TCP socket created directly in fixed slot `slot`.
pub fn socket(slot: u32, tag: Tag) -> squeue::Entry {
    let dest = types::DestinationSlot::try_from_slot_target(slot).expect("slot below IORING_FILE_INDEX_ALLOC");
    // No SOCK_CLOEXEC: the kernel refuses it for direct descriptors (they have no fd).
    opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).file_index(Some(dest)).build().user_data(tag.encode())
}

/// `IP_BIND_ADDRESS_NO_PORT` on the fixed socket, so binding a source address does not
/// reserve a port before connect picks the 4-tuple.
pub fn bind_no_port(slot: u32, value: &'static i32, tag: Tag) -> squeue::Entry {
    opcode::SetSockOpt::new(
        types::Fixed(slot),
        libc::IPPROTO_IP as u32,
        libc::IP_BIND_ADDRESS_NO_PORT as u32,
        (value as *const i32).cast(),
        std::mem::size_of::<i32>() as u32,
    )
    .build()
    .user_data(tag.encode())
}

/// Bind the fixed socket to a source address (port 0).
pub fn bind(slot: u32, addr: &libc::sockaddr_in, tag: Tag) -> squeue::Entry {
    opcode::Bind::new(
        types::Fixed(slot),
        (addr as *const libc::sockaddr_in).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as u32,
    )
    .build()
    .user_data(tag.encode())
}

/// Connect the fixed socket.
pub fn connect(slot: u32, addr: &libc::sockaddr_in, tag: Tag) -> squeue::Entry {
    opcode::Connect::new(
        types::Fixed(slot),
        (addr as *const libc::sockaddr_in).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as u32,
    )
    .build()
    .user_data(tag.encode())
}

/// A `sockaddr_in` for an IPv4 socket address.
pub fn sockaddr_in(addr: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip() {
        for op in [
            Op::Socket,
            Op::Bind,
            Op::Connect,
            Op::Send,
            Op::Recv,
            Op::Shutdown,
            Op::Close,
            Op::SockOpt,
            Op::PingTimer,
            Op::RetryTimer,
            Op::ReplyTimer,
            Op::ReconnectTimer,
            Op::Drain,
            Op::StepTimer,
            Op::Cancel,
        ] {
            let t = Tag { conn: 0xDEAD_BEEF, generation: 0x12_3456, op };
            assert_eq!(Tag::decode(t.encode()), Some(t));
        }
        assert_eq!(Tag::decode(0), None, "code 0 is the reactor's own");
    }
}
