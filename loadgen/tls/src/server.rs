//! Server side, for tests and for `loadgen serve --tls`: a certificate (generated
//! self-signed with rcgen, or loaded from PEM), a rustls `ServerConfig` with a session
//! cache and a ticketer (so clients resume, TLS 1.2 and 1.3), and a sans-IO
//! [`TlsServerSession`] over rustls's buffered `ServerConnection`: bytes in, bytes out.
//!
//! This module does not listen, accept, or own sockets, and does not aim at the client
//! side's memory economy (rustls's buffered connection keeps its own buffers).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerConnection;
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig};

use crate::config::provider;
use crate::{TlsError, TlsVersions};

/// A server certificate and the rustls configuration made from it.
pub struct TlsServerConfig {
    inner: Arc<ServerConfig>,
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    settings: Settings,
}

/// What [`TlsServerConfig`] sets on top of rustls's defaults.
#[derive(Clone, Debug)]
struct Settings {
    versions: TlsVersions,
    alpn: Vec<Vec<u8>>,
    max_fragment_size: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Self { versions: TlsVersions::default(), alpn: vec![b"http/1.1".to_vec()], max_fragment_size: None }
    }
}

impl std::fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("certificates", &self.cert_chain.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsServerConfig {
    /// Generates a self-signed certificate (ECDSA P-256) for `names` (DNS names or IP
    /// literals) and a configuration accepting TLS 1.2 and 1.3, offering ALPN
    /// `http/1.1`, with session ids and tickets for resumption.
    pub fn self_signed<I, S>(names: I) -> Result<Self, TlsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::try_from(signing_key.serialize_der())
            .map_err(|e| TlsError::Pem { what: "generated private key", detail: e.to_string() })?;
        Self::build(vec![cert.der().clone()], key, cert.pem(), Settings::default())
    }

    /// A configuration from a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let cert_chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem { what: "certificate chain", detail: e.to_string() })?;
        if cert_chain.is_empty() {
            return Err(TlsError::Pem { what: "certificate chain", detail: "no CERTIFICATE section".into() });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Pem { what: "private key", detail: e.to_string() })?;
        let cert_pem = String::from_utf8_lossy(cert_chain_pem).into_owned();
        Self::build(cert_chain, key, cert_pem, Settings::default())
    }

    /// The same certificate, accepting only `versions`.
    pub fn with_versions(self, versions: TlsVersions) -> Result<Self, TlsError> {
        Self::build(self.cert_chain, self.key, self.cert_pem, Settings { versions, ..self.settings })
    }

    /// The same certificate, with these ALPN protocols (empty: ALPN ignored).
    pub fn with_alpn<I, P>(self, protocols: I) -> Result<Self, TlsError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        Self::build(self.cert_chain, self.key, self.cert_pem, Settings { alpn, ..self.settings })
    }

    /// The same certificate, writing records of at most `size` bytes (header included;
    /// rustls accepts 32 to 16389; `None`: 16 KiB payloads). Small records make every
    /// handshake message span several records: a test of the client's reassembly.
    pub fn with_max_fragment_size(self, size: Option<usize>) -> Result<Self, TlsError> {
        Self::build(self.cert_chain, self.key, self.cert_pem, Settings { max_fragment_size: size, ..self.settings })
    }

    fn build(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_pem: String,
        settings: Settings,
    ) -> Result<Self, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(settings.versions.rustls())?
            .with_no_client_auth()
            .with_single_cert(cert_chain.clone(), key.clone_key())?;
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        config.alpn_protocols = settings.alpn.clone();
        config.max_fragment_size = settings.max_fragment_size;
        Ok(Self { inner: Arc::new(config), cert_chain, key, cert_pem, settings })
    }

    /// The leaf certificate in PEM, for clients to trust (`ca_pem`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The rustls configuration (shared session cache and ticketer).
    pub fn rustls_config(&self) -> &Arc<ServerConfig> {
        &self.inner
    }
}

/// One server-side TLS connection, sans-IO: feed received bytes, collect bytes to send.
pub struct TlsServerSession {
    conn: ServerConnection,
    peer_closed: bool,
}

impl std::fmt::Debug for TlsServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerSession").field("handshaking", &self.conn.is_handshaking()).finish_non_exhaustive()
    }
}

impl TlsServerSession {
    /// A new server connection.
    pub fn new(config: &TlsServerConfig) -> Result<Self, TlsError> {
        Ok(Self { conn: ServerConnection::new(config.inner.clone())?, peer_closed: false })
    }

    /// Processes received bytes; appends decrypted plaintext to `plaintext` and returns
    /// how many bytes were appended. Call [`poll_transmit`](Self::poll_transmit) after it
    /// (handshake answers, alerts). Bytes after the peer's `close_notify` are ignored.
    pub fn receive(&mut self, ciphertext: &[u8], plaintext: &mut Vec<u8>) -> Result<usize, TlsError> {
        let before = plaintext.len();
        let mut rest = ciphertext;
        while !rest.is_empty() {
            let read = self.conn.read_tls(&mut rest)?;
            let io = self.conn.process_new_packets()?;
            self.peer_closed |= io.peer_has_closed();
            let available = io.plaintext_bytes_to_read();
            if available > 0 {
                let start = plaintext.len();
                plaintext.resize(start + available, 0);
                self.conn.reader().read_exact(plaintext.get_mut(start..).unwrap_or_default())?;
            }
            if read == 0 {
                break;
            }
        }
        Ok(plaintext.len() - before)
    }

    /// Encrypts `data`, appending the records (and anything queued before) to `outgoing`.
    /// Before the handshake completes, rustls buffers the plaintext until it can.
    pub fn send(&mut self, data: &[u8], outgoing: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut rest = data;
        while !rest.is_empty() {
            let written = self.conn.writer().write(rest)?;
            self.poll_transmit(outgoing)?;
            if written == 0 {
                return Err(TlsError::Closed);
            }
            rest = rest.get(written..).unwrap_or_default();
        }
        Ok(())
    }

    /// Appends every record waiting to be sent to `outgoing`.
    pub fn poll_transmit(&mut self, outgoing: &mut Vec<u8>) -> Result<(), TlsError> {
        while self.conn.wants_write() {
            self.conn.write_tls(outgoing)?;
        }
        Ok(())
    }

    /// Queues `close_notify` (sent by the next [`poll_transmit`](Self::poll_transmit)).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    /// True once the handshake is done.
    pub fn is_handshake_complete(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// True when the client resumed an earlier session.
    pub fn is_resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// The negotiated protocol version, once known.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// True once the client's `close_notify` arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The rustls connection, for what this wrapper does not expose.
    pub fn rustls(&self) -> &ServerConnection {
        &self.conn
    }
}
