//! Per-connection state of the server loop and the per-thread pools it draws from: the
//! connection slab (index + generation, reused), the outgoing-buffer pool, and the pool
//! of WebSocket codecs, so that steady state does not allocate and an idle connection
//! holds only its slab entry and its codec (no receive or send buffer); an idle raw TCP
//! connection holds only its slab entry. With TLS, a connection also owns its boxed
//! TLS session (one pointer in the slab entry; `None` without TLS).
//!
//! What it does not do: decide anything about the protocol or submit operations.

use loadgen_proto::{Decoder, Encoder, Role};

use super::tls::TlsConn;
pub(super) use crate::bufpool::BufPool;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Slab entry unused.
    Free,
    /// TLS handshake (with TLS), then reading the HTTP upgrade request (WebSocket).
    /// Raw TCP without TLS skips it.
    Upgrading,
    /// Messages flow (raw TCP: from the accept on).
    Open,
    /// We sent a close frame (server stopping) and wait for the client's (WebSocket only).
    Closing,
    /// Flush what is queued, then shutdown, then close the slot.
    Draining,
    /// The upgrade request was read and is never answered (fault `no-upgrade-reply`);
    /// bytes are read and dropped until the client goes.
    Unanswered,
}

/// The WebSocket codec of an open connection (server role: decodes masked client
/// frames, writes unmasked frames).
#[derive(Debug)]
pub(super) struct Ws {
    /// Client frames in.
    pub decoder: Decoder,
    /// Server frames out.
    pub encoder: Encoder,
}

impl Ws {
    pub fn new(max_message_size: usize) -> Self {
        Self { decoder: Decoder::new(Role::Server, max_message_size), encoder: Encoder::new(Role::Server, None) }
    }
}

/// One connection.
#[derive(Debug)]
pub(super) struct Conn {
    /// Bumped when the entry is reused; completions carry it.
    pub generation: u32,
    /// Fixed-file slot of the socket.
    pub slot: u32,
    pub phase: Phase,
    /// A multishot receive is armed (until a completion without the `more` flag).
    pub recv_armed: bool,
    /// The receive was cancelled because too much output is queued; re-armed when
    /// the output drains.
    pub recv_paused: bool,
    /// A Send owns `inflight`.
    pub send_inflight: bool,
    pub shutdown_sent: bool,
    pub shutdown_done: bool,
    pub close_sent: bool,
    /// Ending with a reset (fault): SO_LINGER {1, 0} is being set (`shutdown_done`
    /// once it is), then the slot is closed without a shutdown.
    pub reset: bool,
    /// Bytes owned by the in-flight Send (never touched while it runs).
    pub inflight: Vec<u8>,
    /// How much of `inflight` the kernel has taken.
    pub inflight_pos: usize,
    /// Frames queued while a Send is in flight; they go when it completes.
    pub pending: Vec<u8>,
    /// Partial upgrade request.
    pub head: Vec<u8>,
    /// Codec, once upgraded.
    pub ws: Option<Box<Ws>>,
    /// TLS session (boxed: a plain connection pays one pointer).
    pub tls: Option<Box<TlsConn>>,
    /// Next push sequence number.
    pub seq: u64,
    /// Sender id written into push payloads.
    pub sender: u64,
    /// Position in the worker's list of open connections (`u32::MAX`: not listed).
    pub open_pos: u32,
}

impl Conn {
    fn free() -> Self {
        Self {
            generation: 0,
            slot: 0,
            phase: Phase::Free,
            recv_armed: false,
            recv_paused: false,
            send_inflight: false,
            shutdown_sent: false,
            shutdown_done: false,
            close_sent: false,
            reset: false,
            inflight: Vec::new(),
            inflight_pos: 0,
            pending: Vec::new(),
            head: Vec::new(),
            ws: None,
            tls: None,
            seq: 0,
            sender: 0,
            open_pos: u32::MAX,
        }
    }

    /// Output queued or in flight, in bytes.
    pub fn outbound(&self) -> usize {
        self.pending.len() + self.inflight.len() - self.inflight_pos
    }

    /// Whether the connection still wants to read.
    pub fn wants_read(&self) -> bool {
        matches!(self.phase, Phase::Upgrading | Phase::Open | Phase::Closing | Phase::Unanswered) && !self.shutdown_sent
    }
}

/// The connections of one thread: a vector of entries and a free list.
#[derive(Debug, Default)]
pub(super) struct Slab {
    pub conns: Vec<Conn>,
    free: Vec<u32>,
    live: usize,
}

impl Slab {
    /// Takes a free entry for a socket in `slot`, starting in `phase` (`Upgrading` for
    /// WebSocket, `Open` for raw TCP); returns its index.
    pub fn alloc(&mut self, slot: u32, phase: Phase) -> u32 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(Conn::free());
                (self.conns.len() - 1) as u32
            }
        };
        let c = &mut self.conns[index as usize];
        debug_assert!(c.phase == Phase::Free && c.tls.is_none());
        c.generation = c.generation.wrapping_add(1) & 0xFF_FFFF;
        c.slot = slot;
        c.phase = phase;
        c.recv_armed = false;
        c.recv_paused = false;
        c.send_inflight = false;
        c.shutdown_sent = false;
        c.shutdown_done = false;
        c.close_sent = false;
        c.reset = false;
        c.inflight_pos = 0;
        c.seq = 0;
        c.open_pos = u32::MAX;
        self.live += 1;
        index
    }

    /// Returns entry `index` to the free list, handing its buffers back to the pools.
    pub fn release(&mut self, index: u32, bufs: &mut BufPool, codecs: &mut CodecPool) {
        let c = &mut self.conns[index as usize];
        debug_assert!(!c.send_inflight && !c.recv_armed);
        c.phase = Phase::Free;
        bufs.put(std::mem::take(&mut c.inflight));
        bufs.put(std::mem::take(&mut c.pending));
        bufs.put(std::mem::take(&mut c.head));
        if let Some(ws) = c.ws.take() {
            codecs.put(ws);
        }
        c.tls = None;
        self.free.push(index);
        self.live -= 1;
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.live
    }

    /// The entry if it is live and of this generation.
    pub fn get(&mut self, index: u32, generation: u32) -> Option<&mut Conn> {
        self.conns.get_mut(index as usize).filter(|c| c.phase != Phase::Free && c.generation == generation)
    }
}

/// Reusable codecs; a codec whose buffers grew past `keep_capacity` (a big message)
/// is dropped instead of kept.
#[derive(Debug)]
pub(super) struct CodecPool {
    // Boxed: a connection holds its codec as a box (small slab entries), so the pool
    // hands the same allocation back and forth.
    #[allow(clippy::vec_box)]
    codecs: Vec<Box<Ws>>,
    max_message_size: usize,
    keep_capacity: usize,
}

impl CodecPool {
    pub fn new(max_message_size: usize, keep_capacity: usize) -> Self {
        Self { codecs: Vec::new(), max_message_size, keep_capacity }
    }

    /// A fresh codec (the box is reused when one is pooled).
    pub fn take(&mut self) -> Box<Ws> {
        match self.codecs.pop() {
            Some(mut ws) => {
                *ws = Ws::new(self.max_message_size);
                ws
            }
            None => Box::new(Ws::new(self.max_message_size)),
        }
    }

    pub fn put(&mut self, ws: Box<Ws>) {
        let held = ws.decoder.buffer_capacity() + ws.encoder.buffer_capacity();
        if held <= self.keep_capacity && self.codecs.len() < 4096 {
            self.codecs.push(ws);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_reuses_entries_with_new_generations() {
        let mut slab = Slab::default();
        let (mut bufs, mut codecs) = (BufPool::new(1 << 16, 8), CodecPool::new(1 << 20, 1 << 16));
        let a = slab.alloc(7, Phase::Upgrading);
        let gen_a = slab.conns[a as usize].generation;
        slab.conns[a as usize].pending.extend_from_slice(b"hello");
        slab.release(a, &mut bufs, &mut codecs);
        assert!(slab.get(a, gen_a).is_none());
        assert!(bufs.capacity_bytes() >= 5, "the buffer went back to the pool");
        let b = slab.alloc(9, Phase::Open);
        assert_eq!(a, b, "the entry is reused");
        assert_ne!(slab.conns[b as usize].generation, gen_a);
        assert_eq!(slab.live(), 1);
        assert!(bufs.take().capacity() >= 5 && bufs.take().capacity() == 0);
    }

    #[test]
    fn idle_connections_are_small() {
        // An idle open connection holds its slab entry and its codec, no buffers.
        let size = std::mem::size_of::<Conn>() + std::mem::size_of::<Ws>();
        assert!(size < 1024, "{size} bytes per idle connection");
        // An idle raw TCP connection holds its slab entry only.
        let raw = std::mem::size_of::<Conn>();
        assert!(raw <= 160, "{raw} bytes per idle raw connection");
        // TLS state costs a plain connection one pointer.
        assert_eq!(std::mem::size_of::<Option<Box<TlsConn>>>(), std::mem::size_of::<usize>());
    }
}
