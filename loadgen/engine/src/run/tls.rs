//! wss:// on the client engine: one `loadgen_tls::TlsSession` per connection between
//! the socket and the WebSocket state machine.
//!
//! What it does: starts the session at connect (the ClientHello goes out first, the
//! upgrade request waits in the WebSocket client until the handshake allows data),
//! seals queued plaintext into the send buffer the ring writes from, keeps records the
//! session produced while receiving (handshake flights, alerts) until the next send,
//! and accounts the memory a session holds. Received ciphertext is decrypted in place
//! in the provided receive buffer by the worker's receive path.
//!
//! What it does not do: sockets, timers (the WebSocket handshake deadline, armed at
//! connect, covers the TLS handshake too), or choosing trust settings (the run's
//! `TlsClientConfig`, one session cache per worker, so resumption never crosses cores).

use loadgen_tls::{ServerName, TlsClientConfig, TlsErrorKind, TlsSession};

/// The TLS layer of one connection (boxed in the connection's slab entry).
pub struct TlsConn {
    /// The rustls session.
    pub session: TlsSession,
    /// Records produced while receiving, not yet handed to a send; unallocated when empty.
    pub out: Vec<u8>,
    /// The TLS handshake completion was already measured.
    pub handshake_seen: bool,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").field("session", &self.session).field("out", &self.out.len()).finish()
    }
}

impl TlsConn {
    /// A session to `name` with its ClientHello queued.
    pub fn start(config: &TlsClientConfig, name: &ServerName<'static>) -> Result<Box<Self>, TlsErrorKind> {
        let mut session = TlsSession::with_server_name(config, name.clone()).map_err(|e| e.kind())?;
        let mut out = Vec::new();
        session.poll_transmit(&mut out).map_err(|e| e.kind())?;
        Ok(Box::new(Self { session, out, handshake_seen: false }))
    }

    /// True when records wait for a send.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Appends to `into` the records waiting, then `plaintext` sealed into records once
    /// the handshake allows application data. Returns how many plaintext bytes were
    /// consumed (0 while handshaking: the plaintext waits in its protocol's buffer).
    pub fn seal(&mut self, plaintext: &[u8], into: &mut Vec<u8>) -> Result<usize, TlsErrorKind> {
        if !self.out.is_empty() {
            into.extend_from_slice(&self.out);
            // Handshake flights are rare: release the buffer rather than keep it idle.
            self.out = Vec::new();
        }
        if plaintext.is_empty() || !self.session.is_handshake_complete() {
            return Ok(0);
        }
        self.session.send(plaintext, into).map_err(|e| e.kind())?;
        Ok(plaintext.len())
    }

    /// Bytes this layer holds: the box, rustls's state and any unfinished record.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.session.heap_bytes_estimate() + self.out.capacity()
    }
}

#[cfg(test)]
mod tests {
    use loadgen_tls::{TlsServerConfig, TlsServerSession};

    use super::*;

    fn pair() -> (Box<TlsConn>, TlsServerSession) {
        let server = TlsServerConfig::self_signed(["localhost"]).unwrap();
        let client = TlsClientConfig::builder().ca_pem(server.cert_pem()).build().unwrap();
        let name = loadgen_tls::config::parse_server_name("localhost").unwrap();
        (TlsConn::start(&client, &name).unwrap(), TlsServerSession::new(&server).unwrap())
    }

    #[test]
    fn plaintext_waits_for_the_handshake_then_is_sealed() {
        let (mut tls, mut server) = pair();
        let mut wire = Vec::new();
        assert_eq!(tls.seal(b"GET / HTTP/1.1\r\n\r\n", &mut wire).unwrap(), 0, "no data before the handshake");
        assert!(!wire.is_empty(), "the ClientHello went out");
        assert!(!tls.has_output() && tls.out.capacity() == 0, "the queue is released once sent");
        let mut plain = Vec::new();
        while !tls.session.is_handshake_complete() {
            server.receive(&wire, &mut plain).unwrap();
            wire.clear();
            let mut flight = Vec::new();
            server.poll_transmit(&mut flight).unwrap();
            tls.session.receive(&mut flight, &mut tls.out, &mut plain).unwrap();
            tls.seal(&[], &mut wire).unwrap();
        }
        server.receive(&wire, &mut plain).unwrap();
        wire.clear();
        assert_eq!(tls.seal(b"hello", &mut wire).unwrap(), 5);
        server.receive(&wire, &mut plain).unwrap();
        assert_eq!(plain, b"hello");
        assert!(tls.memory_bytes() > std::mem::size_of::<TlsConn>() + 1024, "rustls state is accounted");
    }
}
