//! Per-connection state of the client engine. The WebSocket protocol itself is the
//! sans-IO `loadgen_proto::Client`; this adds what the ring needs: which operations
//! are in flight, the send buffer owned by the in-flight send, and the intended times
//! that latencies are measured from.
//!
//! Compactness: a connection at rest holds its protocol state as a `Parked` of a few
//! bytes and no heap memory; it borrows a `Client` (with warm buffers) from the worker's
//! [`ClientPool`] while bytes flow and gives it back as soon as it is at rest again.
//! The slab entry ([`Conn`]) is asserted at compile time to stay within 256 bytes.

use io_uring::squeue;
use loadgen_proto::{Client, ClientConfig, Parked};

use super::ops::{self, Op, Tag};
use super::raw::RawStream;
use super::tls::TlsConn;
use crate::bufpool::BufPool;
use crate::driver::Driver;
use crate::stats::seq::SeqTracker;
use crate::timer_wheel::TimerId;

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
    /// The protocol state machine (from connect to close): live or parked.
    pub proto: Proto,
    /// wss://: the TLS session between the socket and `proto`.
    pub tls: Option<Box<TlsConn>>,
    /// Bytes owned by the in-flight send, taken from the worker's [`BufPool`] and
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
    /// HTTP polling: a request is in flight (one at most).
    pub awaiting_echo: bool,
    /// The protocol-deadline timer (handshake or close timeout), to cancel it early.
    pub deadline_timer: Option<TimerId>,
    /// What the connection does: its program's position, pacing, closed loop, reply
    /// deadline and reconnect state (the sans-IO driver).
    pub driver: Driver,
    /// Position in the worker's message pool ([`super::pool::NOT_IN_POOL`]: none).
    pub pool_pos: u32,
    /// The program paused reading: a cancel of the receive is in flight.
    pub cancel_pending: bool,
    /// What few connections need, out of the slab entry (allocated on first need).
    pub side: Option<Box<Side>>,
    /// HTTP polling: no poll before this time (the server's `Retry-After`).
    pub retry_at_ns: u64,
    /// Sequence check of this connection's echoes (its own probes coming back).
    pub echo_rx: SeqTracker,
    /// Sequence check of the server's pushes to this connection (one sender's stream).
    pub push_rx: SeqTracker,
    /// Sender id of the push stream `push_rx` follows.
    pub push_sender: u64,
    /// The server instance this connection last landed on (`RunConfig::server_id`:
    /// a hash of its name), kept across reconnects.
    pub server: Option<u32>,
    /// This attempt has learned its server instance.
    pub server_learned: bool,
    /// loadgen started the close (ramp-down, Ctrl-C, a timeout): the end is no drop.
    pub closing_by_us: bool,
    /// Closing: raw TCP with our FIN out, echoes still in flight are read until the
    /// server's FIN; HTTP, the response in flight is awaited (both up to the close
    /// timeout).
    pub draining: bool,
}

impl Conn {
    /// A free slot.
    pub fn free() -> Self {
        Self {
            generation: 0,
            phase: Phase::Free,
            target: 0,
            intended_ns: 0,
            proto: Proto::None,
            tls: None,
            sending: Vec::new(),
            send_off: 0,
            send_inflight: false,
            recv_armed: false,
            closing_ops: 0,
            seq: 0,
            awaiting_echo: false,
            deadline_timer: None,
            driver: Driver::new(0, 0),
            pool_pos: super::pool::NOT_IN_POOL,
            cancel_pending: false,
            side: None,
            retry_at_ns: 0,
            echo_rx: SeqTracker::default(),
            push_rx: SeqTracker::default(),
            push_sender: 0,
            server: None,
            server_learned: false,
            closing_by_us: false,
            draining: false,
        }
    }

    /// Messages of this connection's streams not accounted yet, as the connection
    /// ends: probes sent without an echo back (`unanswered`) and sequence numbers
    /// missing below the highest received (`lost`, echoes and pushes). Resets the
    /// streams, so a connection is accounted once.
    ///
    /// With `keep_pushes` (a dropped connection that is coming back), only its echoes
    /// are accounted: the push streams are what the client has seen, carried into its
    /// next connection, so a gap across the reconnect counts as lost (when the stream
    /// ends, or when it gives up) and a replay filling it does not. Echoes belong to
    /// one connection: their numbers start over.
    pub fn take_stream_verdict(&mut self, keep_pushes: bool) -> (u64, u64) {
        let unanswered = match self.proto {
            // One request in flight at most; its response never came.
            Proto::Http(_) => u64::from(self.awaiting_echo),
            _ => self.seq - self.echo_rx.unique().min(self.seq),
        };
        self.awaiting_echo = false;
        let mut lost = self.echo_rx.missing();
        self.echo_rx = SeqTracker::default();
        self.seq = 0;
        if keep_pushes {
            return (unanswered, lost);
        }
        lost += self.push_rx.missing();
        if let Some(side) = self.side.as_mut() {
            lost += side.streams.drain(..).map(|(_, s)| s.missing()).sum::<u64>();
            if side.cookies.is_none() {
                self.side = None;
            }
        }
        self.push_rx = SeqTracker::default();
        (unanswered, lost)
    }

    /// The routing tag of an operation on this connection.
    pub fn tag(&self, index: u32, op: Op) -> Tag {
        Tag { conn: index, generation: self.generation, op }
    }

    /// If nothing is being sent and the protocol (or the TLS layer) has bytes queued,
    /// moves them into the send buffer (sealed into TLS records on wss://) and returns
    /// the send to submit. At most `limit` bytes of the protocol's come along (TLS
    /// records of its own always do): a stalled upgrade sends none of its request, a
    /// slow one a byte at a time. The protocol's own buffer may grow while the kernel
    /// reads `sending`, which never moves during the operation. Fails with the TLS
    /// error kind if sealing failed.
    pub fn next_send(
        &mut self,
        index: u32,
        slot: u32,
        pool: &mut BufPool,
        limit: usize,
    ) -> Result<Option<squeue::Entry>, &'static str> {
        if self.send_inflight || matches!(self.phase, Phase::Free | Phase::Closing) {
            return Ok(None);
        }
        let pending = match &self.proto {
            Proto::Live(client) => client.pending_transmit(),
            Proto::Raw(raw) => raw.pending_transmit(),
            Proto::Http(http) => &http.out,
            Proto::None | Proto::Parked(_) => &[],
        };
        let pending = &pending[..pending.len().min(limit)];
        if pending.is_empty() && !self.tls.as_ref().is_some_and(|t| t.has_output()) {
            return Ok(None);
        }
        self.sending = pool.take();
        let consumed = match &mut self.tls {
            None => {
                self.sending.extend_from_slice(pending);
                pending.len()
            }
            Some(tls) => match tls.seal(pending, &mut self.sending) {
                Ok(n) => n,
                Err(kind) => {
                    pool.put(std::mem::take(&mut self.sending));
                    return Err(kind.name());
                }
            },
        };
        match &mut self.proto {
            Proto::Live(client) => client.advance_transmit(consumed),
            Proto::Raw(raw) => raw.advance_transmit(consumed),
            Proto::Http(http) => {
                http.out.drain(..consumed);
            }
            Proto::None | Proto::Parked(_) => {}
        }
        if self.sending.is_empty() {
            pool.put(std::mem::take(&mut self.sending));
            return Ok(None);
        }
        Ok(Some(self.submit_send(index, slot)))
    }

    /// Starts sending all of `sending` (set by the caller).
    pub fn submit_send(&mut self, index: u32, slot: u32) -> squeue::Entry {
        self.send_off = 0;
        self.send_inflight = true;
        ops::send(slot, self.sending.as_ptr(), self.sending.len() as u32, self.tag(index, Op::Send))
    }

    /// The connection's `Client`, resumed from the pool if it was parked.
    pub fn client<'a>(&'a mut self, pool: &mut ClientPool) -> Option<&'a mut Client> {
        if let Proto::Parked(parked) = self.proto {
            self.proto = Proto::Live(pool.resume(parked));
        }
        match &mut self.proto {
            Proto::Live(client) => Some(client),
            Proto::None | Proto::Parked(_) | Proto::Raw(_) | Proto::Http(_) => None,
        }
    }

    /// Parks the connection if it is at rest, giving its `Client` back to the pool.
    pub fn park(&mut self, pool: &mut ClientPool) {
        if let Proto::Live(client) = &mut self.proto
            && let Some(parked) = client.park()
            && let Proto::Live(client) = std::mem::replace(&mut self.proto, Proto::Parked(parked))
        {
            pool.give(client);
        }
    }

    /// Ends the protocol state (the connection is being freed). A reconnecting HTTP
    /// poller keeps its cookies for its next connection.
    pub fn release(&mut self, pool: &mut ClientPool) {
        self.tls = None;
        if let Proto::Http(http) = &mut self.proto
            && self.driver.is_reconnecting()
        {
            let empty = loadgen_proto::http1::CookieJar::new(0, 0);
            self.side.get_or_insert_with(Box::default).cookies = Some(std::mem::replace(http.client.jar_mut(), empty));
        }
        if let Proto::Live(client) = std::mem::replace(&mut self.proto, Proto::None) {
            pool.give(client);
        }
    }

    /// After a send completed with `written` bytes: the rest of a partial write, if any.
    pub fn send_done(&mut self, index: u32, slot: u32, written: usize, pool: &mut BufPool) -> Option<squeue::Entry> {
        self.send_off += written;
        if self.send_off < self.sending.len() {
            let rest = &self.sending[self.send_off..];
            return Some(ops::send(slot, rest.as_ptr(), rest.len() as u32, self.tag(index, Op::Send)));
        }
        self.send_inflight = false;
        pool.put(std::mem::take(&mut self.sending));
        None
    }
}

/// The parts of a connection's state few connections need, boxed apart so the slab
/// entry stays small.
#[derive(Debug, Default)]
pub struct Side {
    /// HTTP polling: the cookies of a poller that is reconnecting (its identity with the
    /// server), handed to its next connection's client.
    pub cookies: Option<loadgen_proto::http1::CookieJar>,
    /// Push streams followed beyond the first: (sender id, sequence check).
    pub streams: Vec<(u64, SeqTracker)>,
}

/// The protocol state of a connection.
#[derive(Debug)]
pub enum Proto {
    /// Not connected.
    None,
    /// A `Client` of its own (handshaking, bytes in flight, or compression history).
    Live(Box<Client>),
    /// At rest: a few bytes, no heap.
    Parked(Parked),
    /// Raw-TCP mode: no WebSocket, the probe payloads back to back (boxed: the
    /// benchmark mode should not widen every slab entry).
    Raw(Box<RawStream>),
    /// HTTP/1.1 polling.
    Http(Box<HttpStream>),
}

/// An HTTP/1.1 polling connection: the sans-IO client and the request bytes not yet
/// handed to a send.
#[derive(Debug)]
pub struct HttpStream {
    /// The keep-alive client (cookies, framing, `Retry-After`).
    pub client: loadgen_proto::Http1Client,
    /// Request bytes queued (no heap until the first request).
    pub out: Vec<u8>,
    /// Body bytes of the response in progress.
    pub body_bytes: u64,
    /// Intended time of the request in flight.
    pub request_ns: u64,
    /// Polls that came due while a request was in flight, sent one after another as
    /// responses end (each timed from its own intended time), and the intended time
    /// of the oldest.
    pub backlog: u16,
    /// See `backlog`.
    pub backlog_ns: u64,
}

const _: () = assert!(std::mem::size_of::<Conn>() <= 256, "the connection slab entry must stay within 256 bytes");

/// `Client`s of a worker not standing for any connection right now, reused by
/// connections that resume (their buffers and compression contexts stay warm).
#[derive(Debug)]
pub struct ClientPool {
    // Boxed: a `Client` moves between connections and the pool as a pointer.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Client>>,
    config: ClientConfig,
    /// `Client`s created (not reused) so far.
    pub created: u64,
}

impl ClientPool {
    /// Most spare `Client`s kept; beyond that, returned ones are freed.
    const KEEP: usize = 4096;

    /// An empty pool making `Client`s with `config`.
    pub fn new(config: ClientConfig) -> Self {
        Self { spare: Vec::new(), config, created: 0 }
    }

    /// The configuration new connections use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A `Client` standing for `parked`.
    pub fn resume(&mut self, parked: Parked) -> Box<Client> {
        match self.spare.pop() {
            Some(mut client) => {
                client.resume(parked);
                client
            }
            None => {
                self.created += 1;
                Box::new(Client::from_parked(self.config.clone(), parked))
            }
        }
    }

    /// Boxes a new connection's `Client`, reusing a spare allocation.
    pub fn adopt(&mut self, client: Client) -> Box<Client> {
        match self.spare.pop() {
            Some(mut spare) => {
                *spare = client;
                spare
            }
            None => {
                self.created += 1;
                Box::new(client)
            }
        }
    }

    /// Compression contexts held by the spare `Client`s, and their estimated bytes.
    pub fn deflate_memory(&self) -> (u64, u64) {
        self.spare
            .iter()
            .map(|c| c.deflate_memory())
            .fold((0, 0), |(n, b), (cn, cb)| (n + u64::from(cn), b + cb as u64))
    }

    /// Takes a `Client` back (an output buffer grown past the send pool's largest
    /// buffer by a big message, such as a `SendSized` step's, is freed first).
    pub fn give(&mut self, mut client: Box<Client>) {
        if self.spare.len() < Self::KEEP {
            client.trim_output(crate::preflight::SEND_POOL_MAX_BUFFER as usize);
            self.spare.push(client);
        }
    }
}
