//! Per-connection state of the client engine. The WebSocket protocol itself is the
//! sans-IO `loadgen_proto::Client`; this adds what the ring needs: which operations
//! are in flight, the send buffer owned by the in-flight send, and the intended times
//! that latencies are measured from.

use io_uring::squeue;
use loadgen_proto::Client;

use super::ops::{self, Op, Tag};

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Slot free.
    Free,
    /// Socket, bind and connect in flight.
    Connecting,
    /// Upgrade request sent; waiting for the 101.
    Handshaking,
    /// Messages flow.
    Open,
    /// Shutdown and close in flight; waiting for every operation to complete.
    Closing,
}

/// One connection.
pub struct Conn {
    /// Incremented each time the slot is reused; stale completions carry an older one.
    pub generation: u32,
    /// Where it is.
    pub phase: Phase,
    /// Target index.
    pub target: u16,
    /// Intended start of the connection (ns since the run start).
    pub intended_ns: u64,
    /// The protocol state machine (present from connect to close).
    pub client: Option<Box<Client>>,
    /// Bytes owned by the in-flight send, taken from the worker's [`SendPool`] and
    /// given back when the send completes (an idle connection holds no buffer).
    pub sending: Vec<u8>,
    /// Offset into `sending` already written.
    pub send_off: usize,
    /// A send is in flight.
    pub send_inflight: bool,
    /// The multishot receive is armed.
    pub recv_armed: bool,
    /// Shutdown/close operations in flight.
    pub closing_ops: u8,
    /// Next message sequence number.
    pub seq: u64,
    /// Intended time of the next paced message (per-connection rate).
    pub next_send_ns: u64,
    /// Closed loop: an echo is awaited before the next send.
    pub awaiting_echo: bool,
    /// Next on-open step to complete.
    pub on_open_step: u8,
    /// On-open steps done; traffic may flow.
    pub ready: bool,
    /// Intended time of the next ping.
    pub next_ping_ns: u64,
}

impl Conn {
    /// A free slot.
    pub fn free() -> Self {
        Self {
            generation: 0,
            phase: Phase::Free,
            target: 0,
            intended_ns: 0,
            client: None,
            sending: Vec::new(),
            send_off: 0,
            send_inflight: false,
            recv_armed: false,
            closing_ops: 0,
            seq: 0,
            next_send_ns: 0,
            awaiting_echo: false,
            on_open_step: 0,
            ready: false,
            next_ping_ns: 0,
        }
    }

    /// The routing tag of an operation on this connection.
    pub fn tag(&self, index: u32, op: Op) -> Tag {
        Tag { conn: index, generation: self.generation, op }
    }

    /// If nothing is being sent and the client has bytes queued, moves them into the
    /// send buffer and returns the send to submit. The client's own buffer may grow
    /// while the kernel reads `sending`, which never moves during the operation.
    pub fn next_send(&mut self, index: u32, slot: u32, pool: &mut SendPool) -> Option<squeue::Entry> {
        if self.send_inflight || matches!(self.phase, Phase::Free | Phase::Closing) {
            return None;
        }
        let client = self.client.as_mut()?;
        let pending = client.pending_transmit();
        if pending.is_empty() {
            return None;
        }
        self.sending = pool.take();
        self.sending.extend_from_slice(pending);
        let n = pending.len();
        client.advance_transmit(n);
        self.send_off = 0;
        self.send_inflight = true;
        Some(ops::send(slot, self.sending.as_ptr(), self.sending.len() as u32, self.tag(index, Op::Send)))
    }

    /// After a send completed with `written` bytes: the rest of a partial write, if any.
    pub fn send_done(&mut self, index: u32, slot: u32, written: usize, pool: &mut SendPool) -> Option<squeue::Entry> {
        self.send_off += written;
        if self.send_off < self.sending.len() {
            let rest = &self.sending[self.send_off..];
            return Some(ops::send(slot, rest.as_ptr(), rest.len() as u32, self.tag(index, Op::Send)));
        }
        self.send_inflight = false;
        pool.give(std::mem::take(&mut self.sending));
        None
    }
}

/// Send buffers of a worker, lent to connections for the duration of one send.
#[derive(Debug, Default)]
pub struct SendPool {
    free: Vec<Vec<u8>>,
}

impl SendPool {
    /// Most buffers kept for reuse; beyond that, returned buffers are freed.
    const KEEP: usize = 1024;

    /// An empty buffer (reused when one is free).
    pub fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// Returns a buffer.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < Self::KEEP && buf.capacity() <= 1 << 20 {
            buf.clear();
            self.free.push(buf);
        }
    }
}
