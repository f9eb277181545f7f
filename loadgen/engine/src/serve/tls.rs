//! TLS on the server loop (`loadgen serve --tls`: wss://, or TLS around raw TCP): one
//! boxed [`TlsServerSession`] per accepted connection, made at accept, sitting between
//! the socket and the rest of the connection's handling.
//!
//! In: received ciphertext is decrypted into the worker's scratch buffer, so an idle
//! connection holds no receive buffer of ours (only what rustls keeps inside the
//! session); the records the session answers with (handshake flights, tickets, alerts)
//! are queued for sending; the plaintext goes unchanged to the WebSocket or raw-TCP
//! handling of `session`. Out: whatever plaintext that handling, a push, or the close
//! frame at stop appends to the connection's `pending` buffer is replaced by its
//! records ([`seal`]), so every byte the socket sends is TLS. A graceful end sends
//! `close_notify` before the FIN ([`close_notify`]); a client that closes without one
//! ends normally (counted like any EOF, not as a TLS error). A TLS failure is counted by
//! [`TlsErrorKind`] and ends the connection after the fatal alert rustls queued.
//!
//! Phases: a connection handshakes in `Upgrading` (a raw one becomes `Open` when its
//! handshake completes, so pushes never wait on a handshake); a client's `close_notify`
//! ends the connection like an EOF. After our `close_notify` or a failure nothing more is
//! read through the session (rustls would answer a bad record with a second alert, which
//! its debug builds assert against).
//!
//! What it does not do: submit operations, client certificates, SNI-based certificate
//! choice, or time out slow handshakes (a stop drops them like unfinished upgrades).
//! Buffers come from the worker's pools; rustls itself allocates one buffer per record.

use loadgen_tls::{TlsErrorKind, TlsServerConfig, TlsServerSession};

use super::ServeProtocol;
use super::conn::{BufPool, Conn, Phase};
use super::session::{self, Ctx};
use super::summary::Counters;

/// The TLS state of one connection (boxed in [`Conn::tls`]).
pub(super) struct TlsConn {
    session: TlsServerSession,
    /// The handshake completed (and was counted).
    handshaken: bool,
    /// Our `close_notify` is queued, or the session failed: nothing more is read or
    /// encrypted.
    done: bool,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").field("handshaken", &self.handshaken).field("done", &self.done).finish()
    }
}

/// Gives a newly accepted connection its TLS session when TLS is on. False when the
/// session could not be made (counted); the caller aborts the connection.
pub(super) fn attach(conn: &mut Conn, config: Option<&TlsServerConfig>, counters: &mut Counters) -> bool {
    let Some(config) = config else { return true };
    match TlsServerSession::new(config) {
        Ok(session) => {
            conn.tls = Some(Box::new(TlsConn { session, handshaken: false, done: false }));
            true
        }
        Err(e) => {
            counters.tls_errors[e.kind().index()] += 1;
            counters.tls_handshakes_failed += 1;
            false
        }
    }
}

/// Bytes received on `conn`: through its TLS session when it has one, else straight to
/// `session::on_bytes`. `plain` is the worker's scratch buffer for decrypted bytes.
pub(super) fn on_bytes(conn: &mut Conn, data: &[u8], ctx: &mut Ctx<'_>, plain: &mut Vec<u8>) {
    let Some(tls) = conn.tls.as_deref_mut() else {
        session::on_bytes(conn, data, ctx);
        return;
    };
    if tls.done || conn.phase == Phase::Draining {
        return;
    }
    plain.clear();
    if conn.pending.capacity() == 0 {
        conn.pending = ctx.bufs.take();
    }
    let received = tls.session.receive(data, plain);
    // Records due in answer (after an error: the fatal alert). A `Vec` takes them all.
    let transmitted = tls.session.poll_transmit(&mut conn.pending);
    if !tls.handshaken && tls.session.is_handshake_complete() {
        tls.handshaken = true;
        ctx.counters.tls_handshakes += 1;
    }
    if let Err(e) = received.and(transmitted) {
        fail(tls, e.kind(), ctx.counters);
        conn.phase = Phase::Draining;
        give_back_if_empty(conn, ctx.bufs);
        return;
    }
    let peer_closed = tls.session.peer_closed();
    let raw = ctx.protocol == ServeProtocol::RawTcp;
    if raw && conn.phase == Phase::Upgrading && tls.handshaken {
        conn.phase = Phase::Open;
    }
    if !plain.is_empty() {
        let mark = conn.pending.len();
        session::on_bytes(conn, plain, ctx);
        seal(conn, mark, ctx.bufs, ctx.counters);
    }
    if peer_closed && conn.phase != Phase::Draining {
        // The client's close_notify: the end of its stream, like an EOF (normal for raw
        // TCP; for WebSocket a close without a close frame).
        if raw && conn.phase == Phase::Open {
            ctx.counters.closes_in += 1;
        } else {
            ctx.counters.aborted += 1;
        }
        conn.phase = Phase::Draining;
    }
    give_back_if_empty(conn, ctx.bufs);
}

/// Encrypts the plaintext appended to `conn.pending` from `mark` on, in its place
/// (what precedes `mark` is records already). Nothing without TLS. On failure (counted)
/// the connection is set Draining: it sends what is queued, then closes.
pub(super) fn seal(conn: &mut Conn, mark: usize, bufs: &mut BufPool, counters: &mut Counters) {
    let Some(tls) = conn.tls.as_deref_mut() else { return };
    if conn.pending.len() <= mark {
        return;
    }
    if tls.done {
        // Nothing is sent after close_notify or a fatal alert.
        conn.pending.truncate(mark);
        return;
    }
    let mut sealed = bufs.take();
    sealed.extend_from_slice(&conn.pending[..mark]);
    let result = tls.session.send(&conn.pending[mark..], &mut sealed);
    bufs.put(std::mem::replace(&mut conn.pending, sealed));
    if let Err(e) = result {
        fail(tls, e.kind(), counters);
        conn.phase = Phase::Draining;
    }
}

/// Queues `close_notify` on a connection about to be shut down gracefully (its output
/// flushed). True when it queued bytes to send first; false without TLS, when it was
/// queued already, or when the session failed (its fatal alert went instead).
pub(super) fn close_notify(conn: &mut Conn, bufs: &mut BufPool) -> bool {
    let Some(tls) = conn.tls.as_deref_mut() else { return false };
    if tls.done {
        return false;
    }
    tls.done = true;
    tls.session.close();
    if conn.pending.capacity() == 0 {
        conn.pending = bufs.take();
    }
    // Best effort: writing records into a `Vec` does not fail.
    let _ = tls.session.poll_transmit(&mut conn.pending);
    give_back_if_empty(conn, bufs);
    !conn.pending.is_empty()
}

fn fail(tls: &mut TlsConn, kind: TlsErrorKind, counters: &mut Counters) {
    tls.done = true;
    counters.tls_errors[kind.index()] += 1;
    if !tls.handshaken {
        counters.tls_handshakes_failed += 1;
    }
}

fn give_back_if_empty(conn: &mut Conn, bufs: &mut BufPool) {
    if conn.pending.is_empty() {
        bufs.put(std::mem::take(&mut conn.pending));
    }
}
