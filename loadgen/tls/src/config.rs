//! Client configuration: trust roots (PEM file or bytes, or an explicit and loudly named
//! `insecure_skip_verify`), ALPN, protocol versions, and session resumption, built once
//! into an `Arc<rustls::ClientConfig>`.
//!
//! Sharing: cloning a [`TlsClientConfig`] shares the same `ClientConfig` and therefore
//! the same in-memory session cache (TLS 1.3 tickets, TLS 1.2 session ids and tickets).
//! The engine keeps one per worker (core), made with [`TlsClientConfig::for_worker`], so
//! a core's connections resume each other's sessions without a lock shared across cores.
//!
//! This module does not open sockets, load the system trust store, or verify anything by
//! itself: verification is rustls/webpki's, with the `ring` provider.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::TlsError;

/// Default number of sessions the in-memory resumption cache keeps (per server name
/// entries; rustls keeps a few TLS 1.3 tickets per name).
pub const DEFAULT_RESUMPTION_CACHE: usize = 256;

/// Which protocol versions to offer (client) or accept (server).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 and TLS 1.3 (1.3 preferred).
    #[default]
    Tls12AndTls13,
    /// TLS 1.3 only.
    Tls13Only,
    /// TLS 1.2 only.
    Tls12Only,
}

impl TlsVersions {
    pub(crate) fn rustls(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
        static V13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static V12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        match self {
            Self::Tls12AndTls13 => &BOTH,
            Self::Tls13Only => &V13,
            Self::Tls12Only => &V12,
        }
    }
}

/// The crypto provider used everywhere in this crate: rustls's `ring` provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A built client configuration. Cheap to clone; clones share the session cache.
#[derive(Clone, Debug)]
pub struct TlsClientConfig {
    inner: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    insecure: bool,
    resumption_cache: usize,
}

/// Builder for [`TlsClientConfig`]; see [`TlsClientConfig::builder`].
#[derive(Clone, Debug)]
pub struct TlsClientConfigBuilder {
    server_name: Option<String>,
    ca_files: Vec<PathBuf>,
    ca_pems: Vec<Vec<u8>>,
    insecure_skip_verify: bool,
    alpn: Vec<Vec<u8>>,
    resumption_cache: usize,
    versions: TlsVersions,
}

impl TlsClientConfig {
    /// A builder with the defaults: ALPN `http/1.1`, TLS 1.2 and 1.3, resumption on with
    /// [`DEFAULT_RESUMPTION_CACHE`] sessions, no trust roots (one must be given).
    pub fn builder() -> TlsClientConfigBuilder {
        TlsClientConfigBuilder {
            server_name: None,
            ca_files: Vec::new(),
            ca_pems: Vec::new(),
            insecure_skip_verify: false,
            alpn: vec![b"http/1.1".to_vec()],
            resumption_cache: DEFAULT_RESUMPTION_CACHE,
            versions: TlsVersions::default(),
        }
    }

    /// The same settings with a fresh, empty session cache of the same size: one per
    /// worker (core). Sessions made from the result resume only each other.
    pub fn for_worker(&self) -> TlsClientConfig {
        let mut config = (*self.inner).clone();
        config.resumption = resumption(self.resumption_cache);
        TlsClientConfig { inner: Arc::new(config), ..self.clone() }
    }

    /// The rustls configuration (shared by every session made from this config).
    pub fn rustls_config(&self) -> &Arc<ClientConfig> {
        &self.inner
    }

    /// The configured default server name (SNI and certificate name), if any.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// True when certificate verification is off (`insecure_skip_verify`).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Size of the resumption cache; 0 when resumption is off.
    pub fn resumption_cache_size(&self) -> usize {
        self.resumption_cache
    }
}

/// Parses a server name (DNS name or IP address literal) for SNI and verification.
pub fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::InvalidServerName(name.to_owned()))
}

fn resumption(cache: usize) -> Resumption {
    if cache == 0 { Resumption::disabled() } else { Resumption::in_memory_sessions(cache) }
}

impl TlsClientConfigBuilder {
    /// The default server name of this target (SNI and the name the certificate must
    /// carry); [`crate::TlsSession::new`] can still name another per connection.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Trust the CA certificates in this PEM file (read by [`build`](Self::build)).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Trust the CA certificates in these PEM bytes.
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.ca_pems.push(pem.as_ref().to_vec());
        self
    }

    /// **DANGER: turns off server certificate verification.** Any certificate for any
    /// name is accepted (handshake signatures are still checked, so the peer must hold
    /// the key of the certificate it sent). Meant only for load tests against targets
    /// with self-signed certificates; a man in the middle goes unnoticed.
    pub fn insecure_skip_verify(mut self, yes: bool) -> Self {
        self.insecure_skip_verify = yes;
        self
    }

    /// ALPN protocols to offer, in preference order; empty offers none.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Session resumption on (with the current cache size, default
    /// [`DEFAULT_RESUMPTION_CACHE`]) or off.
    pub fn resumption(mut self, enabled: bool) -> Self {
        self.resumption_cache = match (enabled, self.resumption_cache) {
            (false, _) => 0,
            (true, 0) => DEFAULT_RESUMPTION_CACHE,
            (true, n) => n,
        };
        self
    }

    /// Size of the in-memory resumption cache (0 turns resumption off).
    pub fn resumption_cache_size(mut self, sessions: usize) -> Self {
        self.resumption_cache = sessions;
        self
    }

    /// Protocol versions to offer.
    pub fn versions(mut self, versions: TlsVersions) -> Self {
        self.versions = versions;
        self
    }

    /// Reads the trust roots and builds the shared rustls configuration.
    pub fn build(self) -> Result<TlsClientConfig, TlsError> {
        let server_name = self.server_name.as_deref().map(parse_server_name).transpose()?;
        let provider = provider();
        let algorithms = provider.signature_verification_algorithms;
        let builder = ClientConfig::builder_with_provider(provider).with_protocol_versions(self.versions.rustls())?;
        let mut config = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(InsecureSkipVerify { algorithms }))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            for path in &self.ca_files {
                let pem = std::fs::read(path).map_err(|source| TlsError::CaFile { path: path.clone(), source })?;
                add_pem_roots(&mut roots, &pem)?;
            }
            for pem in &self.ca_pems {
                add_pem_roots(&mut roots, pem)?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoTrustRoots);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = self.alpn;
        config.resumption = resumption(self.resumption_cache);
        Ok(TlsClientConfig {
            inner: Arc::new(config),
            server_name,
            insecure: self.insecure_skip_verify,
            resumption_cache: self.resumption_cache,
        })
    }
}

/// Parses every `CERTIFICATE` section of `pem` into `roots`.
fn add_pem_roots(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), TlsError> {
    let pem_error = |e: rustls::pki_types::pem::Error| TlsError::Pem { what: "CA certificates", detail: e.to_string() };
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(pem_error)?;
    let (_, rejected) = roots.add_parsable_certificates(certs);
    if rejected > 0 {
        return Err(TlsError::Pem { what: "CA certificates", detail: format!("{rejected} unusable certificate(s)") });
    }
    Ok(())
}

/// Accepts any server certificate; still verifies handshake signatures with the
/// certificate's key. Used only when `insecure_skip_verify` was asked for.
#[derive(Debug)]
struct InsecureSkipVerify {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for InsecureSkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
