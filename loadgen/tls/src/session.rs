//! One TLS client session per connection, on rustls's unbuffered API.
//!
//! What it does: turns received ciphertext into plaintext (handed to a callback or
//! appended to a caller's `Vec`), plaintext into ciphertext appended to a caller's
//! `Vec` (which the engine sends), runs the handshake (its records go to the same
//! outgoing `Vec`), `close_notify` both ways, and classifies every failure.
//!
//! What it does not do: sockets, timers, threads, retries. It never blocks and never
//! holds more than the caller gave it. Bytes are decrypted in place in the caller's
//! receive buffer (which is clobbered); only bytes of an unfinished record (or of a
//! handshake message spanning records) are copied into a per-session buffer, which is
//! released as soon as it empties, so an idle session owns no receive buffer.
//!
//! Allocation: the session allocates nothing per record of its own: ciphertext goes
//! straight into the caller's `Vec` (which keeps its capacity), plaintext is handed out
//! by reference. rustls 0.23 itself still allocates one buffer per record each way (the
//! encrypter returns an owned record that is then copied out; the unbuffered reader
//! copies each decrypted record into a fresh `Vec`); `tests/memory.rs` counts exactly
//! one allocation per record each way, so anything of ours would show.

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic};
use rustls::{HandshakeKind, ProtocolVersion};

use crate::config::parse_server_name;
use crate::{TlsClientConfig, TlsError, TlsErrorKind};

/// Heap bytes an established, idle TLS 1.3 client session holds inside rustls (keys,
/// state machine, small queues), rounded up from the figure `tests/memory.rs` measures
/// (it asserts this constant stays an upper bound within a factor of two).
/// Measured on x86-64: 2619 B resumed, 2787 B after a full handshake (AES-256-GCM).
pub const IDLE_HEAP_ESTIMATE_TLS13: usize = 3072;
/// Same as [`IDLE_HEAP_ESTIMATE_TLS13`] for TLS 1.2. Measured on x86-64: 2361 B resumed,
/// 2433 B after a full handshake (ECDHE-ECDSA-AES256-GCM-SHA384).
pub const IDLE_HEAP_ESTIMATE_TLS12: usize = 3072;
/// Heap bytes a session holds while handshaking (transcript, key shares, certificates).
/// Measured on x86-64 after sending the ClientHello: about 17.6 KB (`tests/memory.rs`
/// asserts this stays above it); the server's flight passes through the caller's buffer.
pub const HANDSHAKE_HEAP_ESTIMATE: usize = 24 * 1024;

/// Room for one record's header, explicit nonce, tag and content type, generously.
const RECORD_OVERHEAD: usize = 64;
/// Largest plaintext fragment of a record.
const MAX_FRAGMENT: usize = 16 * 1024;
/// First guess for a handshake record's size (grown on demand).
const HANDSHAKE_RECORD_GUESS: usize = 2048;

/// A TLS client session. See the [module docs](self).
pub struct TlsSession {
    conn: UnbufferedClientConnection,
    /// Bytes of an unfinished record; empty and unallocated when none.
    incoming: Vec<u8>,
    state: State,
}

#[derive(Clone, Copy, Debug, Default)]
struct State {
    peer_closed: bool,
    close_sent: bool,
    failed: Option<TlsErrorKind>,
}

/// What to do once rustls allows writing.
#[derive(Clone, Copy)]
enum Op<'a> {
    Data(&'a [u8]),
    CloseNotify,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshake_complete", &self.is_handshake_complete())
            .field("incoming", &self.incoming.len())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A session to `server_name` (DNS name or IP literal: SNI and the name the
    /// certificate must carry). Nothing is sent until [`poll_transmit`](Self::poll_transmit).
    pub fn new(config: &TlsClientConfig, server_name: &str) -> Result<Self, TlsError> {
        Self::with_server_name(config, parse_server_name(server_name)?)
    }

    /// A session to the config's default server name.
    pub fn for_target(config: &TlsClientConfig) -> Result<Self, TlsError> {
        let name = config.server_name().ok_or(TlsError::NoServerName)?.clone();
        Self::with_server_name(config, name)
    }

    /// A session to an already parsed server name.
    pub fn with_server_name(config: &TlsClientConfig, server_name: ServerName<'static>) -> Result<Self, TlsError> {
        let conn = UnbufferedClientConnection::new(config.rustls_config().clone(), server_name)?;
        Ok(Self { conn, incoming: Vec::new(), state: State::default() })
    }

    /// Appends to `outgoing` whatever the session has to send now without new input:
    /// the ClientHello right after [`new`](Self::new), otherwise usually nothing (records
    /// due after received ones are appended by [`receive`](Self::receive) itself).
    pub fn poll_transmit(&mut self, outgoing: &mut Vec<u8>) -> Result<(), TlsError> {
        self.check_usable()?;
        let mut op = None;
        let (used, result) = pump(&mut self.conn, &mut self.incoming, outgoing, &mut |_| {}, &mut op, &mut self.state);
        self.consume_incoming(used);
        result.map_err(|e| self.fail(e))
    }

    /// Processes received ciphertext. `ciphertext` is decrypted in place (its contents
    /// are clobbered). Plaintext goes to `on_plaintext` (in order, possibly in several
    /// pieces); handshake records, alerts and key updates due in answer are appended to
    /// `outgoing`. Returns the number of plaintext bytes delivered.
    ///
    /// On error, `outgoing` may hold a fatal alert worth sending before closing; the
    /// session is then failed and every later call returns [`TlsError::Failed`]. Bytes
    /// after the peer's `close_notify` are ignored.
    pub fn receive_with<F: FnMut(&[u8])>(
        &mut self,
        ciphertext: &mut [u8],
        outgoing: &mut Vec<u8>,
        mut on_plaintext: F,
    ) -> Result<usize, TlsError> {
        self.check_usable()?;
        if self.state.peer_closed || ciphertext.is_empty() {
            return Ok(0);
        }
        let mut delivered = 0;
        let mut sink = |plaintext: &[u8]| {
            delivered += plaintext.len();
            on_plaintext(plaintext);
        };
        let mut op = None;
        let result = if self.incoming.is_empty() {
            // Fast path: decrypt in the caller's buffer; keep only an unfinished tail.
            let (used, result) = pump(&mut self.conn, ciphertext, outgoing, &mut sink, &mut op, &mut self.state);
            let rest = ciphertext.get(used..).unwrap_or_default();
            if result.is_ok() && !self.state.peer_closed && !rest.is_empty() {
                self.incoming.extend_from_slice(rest);
            }
            result
        } else {
            self.incoming.extend_from_slice(ciphertext);
            let (used, result) =
                pump(&mut self.conn, &mut self.incoming, outgoing, &mut sink, &mut op, &mut self.state);
            self.consume_incoming(used);
            result
        };
        if self.state.peer_closed {
            self.incoming = Vec::new();
        }
        match result {
            Ok(()) => Ok(delivered),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// [`receive_with`](Self::receive_with), appending the plaintext to `plaintext`.
    pub fn receive(
        &mut self,
        ciphertext: &mut [u8],
        outgoing: &mut Vec<u8>,
        plaintext: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        self.receive_with(ciphertext, outgoing, |p| plaintext.extend_from_slice(p))
    }

    /// Encrypts `plaintext` and appends the records to `outgoing`; returns the number of
    /// ciphertext bytes appended. Fails with [`TlsError::HandshakeNotComplete`] (the
    /// session stays usable) before the handshake allows application data, and with
    /// [`TlsError::Closed`] after [`close`](Self::close).
    pub fn send(&mut self, plaintext: &[u8], outgoing: &mut Vec<u8>) -> Result<usize, TlsError> {
        self.check_usable()?;
        if self.state.close_sent {
            return Err(TlsError::Closed);
        }
        let before = outgoing.len();
        if !plaintext.is_empty() {
            self.write(Op::Data(plaintext), outgoing)?;
        }
        Ok(outgoing.len() - before)
    }

    /// Appends a `close_notify` alert to `outgoing`. Afterwards the session sends nothing
    /// more but still receives until the peer's `close_notify`
    /// ([`peer_closed`](Self::peer_closed)). Closing twice is a no-op.
    ///
    /// Known rustls 0.23 issue (959): in builds with debug assertions (not release), a
    /// record that fails to decrypt or parse after our `close_notify` trips a
    /// `debug_assert` inside rustls (it would send a second alert). Release builds return
    /// the error as usual.
    pub fn close(&mut self, outgoing: &mut Vec<u8>) -> Result<(), TlsError> {
        self.check_usable()?;
        if self.state.close_sent {
            return Ok(());
        }
        self.write(Op::CloseNotify, outgoing)?;
        self.state.close_sent = true;
        Ok(())
    }

    /// Tells the session the peer's byte stream ended (the socket read 0 bytes). Fine
    /// after the peer's `close_notify`, or after ours (peers often just close); otherwise
    /// the stream was truncated: [`TlsError::UnexpectedEof`] (kind `Protocol`).
    pub fn receive_eof(&mut self) -> Result<(), TlsError> {
        self.check_usable()?;
        if self.state.peer_closed || self.state.close_sent {
            self.incoming = Vec::new();
            return Ok(());
        }
        let partial_bytes = self.incoming.len();
        Err(self.fail(TlsError::UnexpectedEof { partial_bytes }))
    }

    /// True once the handshake is done both ways (application data may flow).
    pub fn is_handshake_complete(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// True when the handshake resumed an earlier session (rustls `handshake_kind()`).
    pub fn is_resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// Full, full with HelloRetryRequest, or resumed; `None` before the server answered.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.conn.handshake_kind()
    }

    /// The negotiated protocol version, once known.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite, once known (its `Debug` is the IANA name).
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.conn.negotiated_cipher_suite().map(|suite| suite.suite())
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// True once the peer's `close_notify` arrived: no more plaintext will come.
    pub fn peer_closed(&self) -> bool {
        self.state.peer_closed
    }

    /// True once [`close`](Self::close) appended our `close_notify`.
    pub fn close_sent(&self) -> bool {
        self.state.close_sent
    }

    /// True when `close_notify` went both ways.
    pub fn is_closed(&self) -> bool {
        self.state.peer_closed && self.state.close_sent
    }

    /// The kind of the error that failed this session, if one did.
    pub fn failed(&self) -> Option<TlsErrorKind> {
        self.state.failed
    }

    /// Bytes of an unfinished record held by the session (0 when idle).
    pub fn buffered_incoming(&self) -> usize {
        self.incoming.len()
    }

    /// Capacity of the session's own receive buffer: 0 unless a record is unfinished.
    pub fn incoming_capacity(&self) -> usize {
        self.incoming.capacity()
    }

    /// An estimate of the heap this session holds: its receive buffer's capacity plus
    /// rustls's share ([`IDLE_HEAP_ESTIMATE_TLS13`], [`IDLE_HEAP_ESTIMATE_TLS12`],
    /// [`HANDSHAKE_HEAP_ESTIMATE`] while handshaking). `size_of::<TlsSession>()` comes on
    /// top wherever the session itself lives.
    pub fn heap_bytes_estimate(&self) -> usize {
        let rustls = if self.conn.is_handshaking() {
            HANDSHAKE_HEAP_ESTIMATE
        } else if self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_2) {
            IDLE_HEAP_ESTIMATE_TLS12
        } else {
            IDLE_HEAP_ESTIMATE_TLS13
        };
        self.incoming.capacity() + rustls
    }

    fn write(&mut self, op: Op<'_>, outgoing: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut pending = Some(op);
        // `incoming` holds no complete record here (receive always runs to exhaustion),
        // so no plaintext can come out of this pump.
        let (used, result) =
            pump(&mut self.conn, &mut self.incoming, outgoing, &mut |_| {}, &mut pending, &mut self.state);
        self.consume_incoming(used);
        result.map_err(|e| self.fail(e))?;
        match pending {
            Some(_) => Err(TlsError::HandshakeNotComplete),
            None => Ok(()),
        }
    }

    fn check_usable(&self) -> Result<(), TlsError> {
        match self.state.failed {
            Some(kind) => Err(TlsError::Failed(kind)),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: TlsError) -> TlsError {
        self.state.failed = Some(error.kind());
        self.incoming = Vec::new();
        error
    }

    /// Drops `used` bytes from the front of `incoming`; releases it when empty.
    fn consume_incoming(&mut self, used: usize) {
        if used >= self.incoming.len() {
            self.incoming = Vec::new();
        } else if used > 0 {
            self.incoming.drain(..used);
        }
    }
}

/// Runs rustls over `buf` until it needs more input or is idle. Returns how many bytes
/// of `buf` were consumed (to discard from its front) and the outcome. Performs
/// `op` (taking it) as soon as rustls allows writing application data.
fn pump(
    conn: &mut UnbufferedClientConnection,
    buf: &mut [u8],
    outgoing: &mut Vec<u8>,
    on_plaintext: &mut dyn FnMut(&[u8]),
    op: &mut Option<Op<'_>>,
    state: &mut State,
) -> (usize, Result<(), TlsError>) {
    let mut start = 0;
    loop {
        let Some(rest) = buf.get_mut(start..) else { return (start, Ok(())) };
        let UnbufferedStatus { mut discard, state: status } = conn.process_tls_records(rest);
        let mut stop = false;
        let step: Result<(), TlsError> = match status {
            Err(e) => {
                start += discard;
                flush_alert(conn, buf.get_mut(start..).unwrap_or_default(), outgoing);
                return (start, Err(e.into()));
            }
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                let mut result = Ok(());
                while let Some(record) = traffic.next_record() {
                    match record {
                        Ok(record) => {
                            discard += record.discard;
                            on_plaintext(record.payload);
                        }
                        Err(e) => {
                            result = Err(e.into());
                            break;
                        }
                    }
                }
                result
            }
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                append_records(outgoing, HANDSHAKE_RECORD_GUESS, |b| encode.encode(b), encode_required)
                    .map(|_| ())
                    .map_err(|_| TlsError::Rustls(rustls::Error::EncryptError))
            }
            Ok(ConnectionState::TransmitTlsData(mut transmit)) => {
                // The caller transmits `outgoing`; records stay in order because every
                // record of this session is appended to the same buffer.
                let result = match (op.take(), transmit.may_encrypt_app_data()) {
                    (Some(o), Some(mut write)) => run_op(&mut write, o, outgoing),
                    (o, _) => {
                        *op = o;
                        Ok(())
                    }
                };
                transmit.done();
                result
            }
            Ok(ConnectionState::WriteTraffic(mut write)) => {
                stop = true;
                match op.take() {
                    Some(o) => run_op(&mut write, o, outgoing),
                    None => Ok(()),
                }
            }
            Ok(ConnectionState::PeerClosed) => {
                state.peer_closed = true;
                Ok(())
            }
            Ok(ConnectionState::Closed) => {
                state.peer_closed = true;
                stop = true;
                Ok(())
            }
            // BlockedHandshake: needs more bytes. Early data is server-side only, and
            // future states are not understood: stop rather than spin.
            Ok(_) => {
                stop = true;
                Ok(())
            }
        };
        start += discard;
        if let Err(e) = step {
            return (start, Err(e));
        }
        if state.peer_closed {
            // Nothing after close_notify is read.
            return (buf.len(), Ok(()));
        }
        if stop {
            return (start, Ok(()));
        }
    }
}

/// After an error rustls usually queued a fatal alert: append it to `outgoing`.
///
/// Exactly one more `process_tls_records` call: rustls hands out queued records before
/// it reads input, so this call cannot reach the bad record again. A second call could
/// (once the queue is empty), and rustls debug builds assert that no second fatal alert
/// is ever sent (rustls issue 959).
fn flush_alert(conn: &mut UnbufferedClientConnection, buf: &mut [u8], outgoing: &mut Vec<u8>) {
    let UnbufferedStatus { state, .. } = conn.process_tls_records(buf);
    if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
        // Best effort: the session has failed already.
        let _ = append_records(outgoing, HANDSHAKE_RECORD_GUESS, |b| encode.encode(b), encode_required);
    }
}

fn run_op(
    write: &mut WriteTraffic<'_, ClientConnectionData>,
    op: Op<'_>,
    outgoing: &mut Vec<u8>,
) -> Result<(), TlsError> {
    let result = match op {
        Op::Data(data) => {
            let records = data.len().div_ceil(MAX_FRAGMENT).max(1);
            append_records(
                outgoing,
                data.len() + records * RECORD_OVERHEAD,
                |b| write.encrypt(data, b),
                encrypt_required,
            )
        }
        Op::CloseNotify => append_records(outgoing, RECORD_OVERHEAD, |b| write.queue_close_notify(b), encrypt_required),
    };
    result.map(|_| ()).map_err(|e| match e {
        EncryptError::EncryptExhausted => TlsError::EncryptExhausted,
        EncryptError::InsufficientSize(_) => TlsError::Rustls(rustls::Error::EncryptError),
    })
}

fn encode_required(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        EncodeError::AlreadyEncoded => None,
    }
}

fn encrypt_required(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        EncryptError::EncryptExhausted => None,
    }
}

/// Lets `write` fill the end of `out` (starting with `guess` bytes of room, growing to
/// what rustls says it needs), then trims `out` to what was written.
fn append_records<E>(
    out: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: fn(&E) -> Option<usize>,
) -> Result<usize, E> {
    let start = out.len();
    let mut room = guess;
    loop {
        out.resize(start + room, 0);
        let result = write(out.get_mut(start..).unwrap_or_default());
        match result {
            Ok(written) => {
                out.truncate(start + written.min(room));
                return Ok(written);
            }
            Err(e) => {
                out.truncate(start);
                match required(&e) {
                    Some(need) if need > room => room = need,
                    _ => return Err(e),
                }
            }
        }
    }
}
