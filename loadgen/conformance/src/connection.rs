//! A blocking WebSocket connection: `std::net::TcpStream` driving a
//! [`loadgen_proto::Client`]. For conformance checks and interop tests, where one
//! thread per connection is fine; the load engine uses io_uring instead.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use loadgen_proto::{
    Client, ClientConfig, DeflateConfig, Error as ProtoError, Event, HandshakeRequest, Initiator, MessageKind, State,
    Timeout,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::{DriverError, Target};

/// How to open a connection.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// permessage-deflate offer.
    pub deflate: Option<DeflateConfig>,
    /// Client limits and timeouts.
    pub client: ClientConfig,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Origin header.
    pub origin: Option<String>,
    /// Subprotocols offered.
    pub subprotocols: Vec<String>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for any event before the server is declared silent.
    pub idle_limit: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            deflate: None,
            client: ClientConfig::default(),
            headers: Vec::new(),
            origin: None,
            subprotocols: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            idle_limit: Duration::from_secs(10),
        }
    }
}

/// An event with owned data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedEvent {
    /// Text message.
    Text(String),
    /// Binary message.
    Binary(Vec<u8>),
    /// Ping (already answered).
    Ping(Vec<u8>),
    /// Pong.
    Pong(Vec<u8>),
    /// Close handshake done.
    Closed {
        /// Server's code.
        code: Option<u16>,
        /// Server's reason.
        reason: String,
        /// Who started it.
        initiator: Initiator,
    },
}

/// One blocking connection.
pub struct Connection {
    stream: TcpStream,
    client: Client,
    rng: ChaCha20Rng,
    epoch: Instant,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Time from TCP connect start to the 101.
    pub handshake_time: Duration,
    /// Time of the TCP connect alone.
    pub connect_time: Duration,
    idle_limit: Duration,
    /// Bytes written to the socket (handshake included).
    pub bytes_sent: u64,
    /// Bytes read from the socket (handshake included).
    pub bytes_received: u64,
}

impl Connection {
    /// Connects and completes the opening handshake.
    pub fn open(target: &Target, options: &ConnectOptions) -> Result<Self, DriverError> {
        let mut request = HandshakeRequest::new(target.host_header(), target.path.clone());
        request.deflate = options.deflate.clone();
        request.headers = options.headers.clone();
        request.origin = options.origin.clone();
        request.subprotocols = options.subprotocols.clone();
        let started = Instant::now();
        let mut last_err = None;
        let mut stream = None;
        for addr in target.resolve()? {
            match TcpStream::connect_timeout(&addr, options.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| DriverError::Connect {
            target: target.host_header(),
            source: last_err.unwrap_or_else(|| ErrorKind::NotFound.into()),
        })?;
        let connect_time = started.elapsed();
        stream.set_nodelay(true)?;
        let mut rng = ChaCha20Rng::from_seed(os_seed()?);
        let epoch = Instant::now();
        let client = Client::new(options.client.clone(), &request, 0, &mut rng)?;
        let mut conn = Self {
            stream,
            client,
            rng,
            epoch,
            buf: vec![0u8; 64 << 10].into_boxed_slice(),
            start: 0,
            end: 0,
            handshake_time: Duration::ZERO,
            connect_time,
            idle_limit: options.idle_limit,
            bytes_sent: 0,
            bytes_received: 0,
        };
        conn.flush()?;
        match conn.next_event()? {
            None => {}
            Some(other) => return Err(DriverError::Unexpected(format!("{other:?} before the handshake ended"))),
        }
        conn.handshake_time = started.elapsed();
        Ok(conn)
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The underlying protocol state machine (negotiated parameters, state).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes everything the client has queued.
    pub fn flush(&mut self) -> Result<(), DriverError> {
        while !self.client.pending_transmit().is_empty() {
            let n = self.stream.write(self.client.pending_transmit())?;
            if n == 0 {
                return Err(DriverError::PeerClosedTcp);
            }
            self.client.advance_transmit(n);
            self.bytes_sent += n as u64;
        }
        Ok(())
    }

    /// Queues and writes a message.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), DriverError> {
        self.client.send(kind, payload, &mut self.rng)?;
        self.flush()
    }

    /// Sends a message in caller-chosen pieces, with a ping between each piece.
    pub fn send_streamed_with_pings(&mut self, kind: MessageKind, pieces: &[&[u8]]) -> Result<usize, DriverError> {
        let (first, rest) = pieces.split_first().ok_or(DriverError::Unexpected("no pieces".into()))?;
        self.client.begin_fragmented(kind, first, &mut self.rng)?;
        let mut pings = 0;
        for (i, piece) in rest.iter().enumerate() {
            let now = self.now_us();
            self.client.ping(i as u64, now, &mut self.rng)?;
            pings += 1;
            self.client.send_fragment(piece, i + 1 == rest.len(), &mut self.rng)?;
        }
        self.flush()?;
        Ok(pings)
    }

    /// Sends a ping stamped with `id` and the current time.
    pub fn ping(&mut self, id: u64) -> Result<(), DriverError> {
        let now = self.now_us();
        self.client.ping(id, now, &mut self.rng)?;
        self.flush()
    }

    /// Microseconds since this connection's epoch (the clock of ping stamps).
    pub fn clock_us(&self) -> u64 {
        self.now_us()
    }

    /// Starts the close handshake.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), DriverError> {
        let now = self.now_us();
        self.client.close(code, reason, now, &mut self.rng)?;
        self.flush()
    }

    /// Reads until the next event, waiting at most [`ConnectOptions::idle_limit`]
    /// (or the protocol's own handshake and close deadlines). During the handshake
    /// returns `Ok(None)` when it completes. Protocol violations come back as
    /// [`DriverError::Protocol`] after the failing close frame has been written.
    pub fn next_event(&mut self) -> Result<Option<OwnedEvent>, DriverError> {
        self.next_event_until(Instant::now() + self.idle_limit)
    }

    /// Next event, failing with [`DriverError::NoEventWithin`] if none arrives within `limit`.
    pub fn next_event_within(&mut self, limit: Duration) -> Result<OwnedEvent, DriverError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(ev) = self.next_event_until(deadline)? {
                return Ok(ev);
            }
        }
    }

    fn next_event_until(&mut self, deadline: Instant) -> Result<Option<OwnedEvent>, DriverError> {
        loop {
            if self.start < self.end {
                let was_handshaking = self.client.state() == State::Handshaking;
                let result = self.client.receive(&self.buf[self.start..self.end], &mut self.rng);
                let (n, event) = match result {
                    Ok((n, ev)) => (n, ev.and_then(own)),
                    Err(e) => {
                        // Send the failing close frame (best effort) before reporting.
                        let _ = self.flush();
                        return Err(match e {
                            ProtoError::Handshake(h) => DriverError::Handshake(h),
                            ProtoError::Protocol(p) => DriverError::Protocol { error: p, close_code: p.close_code() },
                        });
                    }
                };
                self.start += n;
                self.flush()?;
                if was_handshaking && self.client.state() == State::Open {
                    return Ok(None);
                }
                if let Some(event) = event {
                    return Ok(Some(event));
                }
                continue;
            }
            self.start = 0;
            self.end = 0;
            self.wait_readable(deadline)?;
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Err(DriverError::PeerClosedTcp),
                Ok(n) => {
                    self.end = n;
                    self.bytes_received += n as u64;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fires due protocol timeouts, fails past `deadline`, and sets the socket's read
    /// timeout to whichever comes first.
    fn wait_readable(&mut self, deadline: Instant) -> Result<(), DriverError> {
        let now = self.now_us();
        if let Some(what) = self.client.handle_timeout(now) {
            return Err(match what {
                Timeout::Handshake => DriverError::Handshake(loadgen_proto::HandshakeError::TimedOut),
                Timeout::Close => DriverError::CloseTimedOut,
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DriverError::NoEventWithin(self.idle_limit));
        }
        let wait = match self.client.poll_timeout() {
            Some(due) => Duration::from_micros(due.saturating_sub(now)).min(left),
            None => left,
        };
        self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        Ok(())
    }
}

fn own(e: Event<'_>) -> Option<OwnedEvent> {
    Some(match e {
        Event::Open => return None,
        Event::Text(t) => OwnedEvent::Text(t.to_owned()),
        Event::Binary(b) => OwnedEvent::Binary(b.to_vec()),
        Event::Ping(p) => OwnedEvent::Ping(p.to_vec()),
        Event::Pong(p) => OwnedEvent::Pong(p.to_vec()),
        Event::Closed { code, reason, initiator } => OwnedEvent::Closed { code, reason: reason.to_owned(), initiator },
    })
}

fn os_seed() -> Result<[u8; 32], DriverError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| DriverError::Unexpected(format!("OS randomness unavailable: {e}")))?;
    Ok(seed)
}
