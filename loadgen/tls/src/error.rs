//! Error types. [`TlsError`] carries the detail (the rustls error, the file that could
//! not be read); [`TlsErrorKind`] is the small `Copy` classification a load generator
//! counts on the hot path.
//!
//! This module does not decide what a connection does after an error (the engine closes
//! it after sending whatever the session appended to its outgoing buffer, typically a
//! fatal alert).

use std::path::PathBuf;

use rustls::AlertDescription;

/// What went wrong, coarse enough to count per connection without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsErrorKind {
    /// The server's certificate was refused: untrusted issuer, wrong name, expired, or
    /// the peer refused a certificate (certificate alerts).
    BadCertificate,
    /// No common ground: protocol version, cipher suite, key exchange, ALPN, or the peer
    /// answered `handshake_failure`.
    HandshakeFailure,
    /// A record failed authentication (bad MAC / AEAD tag), or the peer said so.
    Decrypt,
    /// Malformed or unexpected records or messages, oversized records, or a stream that
    /// ended in the middle of a record or without `close_notify`.
    Protocol,
    /// The peer sent some other fatal alert.
    Alert,
    /// The session was already closed (`close_notify` sent) or had already failed.
    Closed,
    /// Bad configuration: trust roots, PEM, server name, certificate generation.
    Config,
    /// Anything else (misuse such as sending before the handshake, internal errors).
    Other,
}

impl TlsErrorKind {
    /// All kinds, in a stable order (for fixed-size counter tables).
    pub const ALL: [TlsErrorKind; 8] = [
        Self::BadCertificate,
        Self::HandshakeFailure,
        Self::Decrypt,
        Self::Protocol,
        Self::Alert,
        Self::Closed,
        Self::Config,
        Self::Other,
    ];

    /// Stable snake_case name for counters and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadCertificate => "tls_bad_certificate",
            Self::HandshakeFailure => "tls_handshake_failure",
            Self::Decrypt => "tls_decrypt",
            Self::Protocol => "tls_protocol",
            Self::Alert => "tls_alert",
            Self::Closed => "tls_closed",
            Self::Config => "tls_config",
            Self::Other => "tls_other",
        }
    }

    /// Index into [`TlsErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Classifies a rustls error.
    pub fn of_rustls(error: &rustls::Error) -> Self {
        use rustls::Error as E;
        match error {
            E::InvalidCertificate(_)
            | E::NoCertificatesPresented
            | E::UnsupportedNameType
            | E::InvalidCertRevocationList(_) => Self::BadCertificate,
            E::PeerIncompatible(_) | E::NoApplicationProtocol | E::HandshakeNotComplete => Self::HandshakeFailure,
            E::DecryptError => Self::Decrypt,
            E::InvalidMessage(_)
            | E::PeerMisbehaved(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerSentOversizedRecord
            | E::InvalidEncryptedClientHello(_) => Self::Protocol,
            E::AlertReceived(alert) => Self::of_alert(*alert),
            _ => Self::Other,
        }
    }

    /// Classifies a fatal alert received from the peer.
    pub fn of_alert(alert: AlertDescription) -> Self {
        use AlertDescription as A;
        match alert {
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::CertificateRequired
            | A::NoCertificate
            | A::BadCertificateStatusResponse
            | A::BadCertificateHashValue
            | A::CertificateUnobtainable => Self::BadCertificate,
            A::HandshakeFailure
            | A::ProtocolVersion
            | A::InsufficientSecurity
            | A::NoApplicationProtocol
            | A::InappropriateFallback
            | A::UnrecognisedName
            | A::MissingExtension
            | A::UnsupportedExtension => Self::HandshakeFailure,
            A::BadRecordMac | A::DecryptionFailed | A::DecryptError => Self::Decrypt,
            A::UnexpectedMessage | A::DecodeError | A::RecordOverflow | A::IllegalParameter => Self::Protocol,
            _ => Self::Alert,
        }
    }
}

impl std::fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of the TLS layer. [`TlsError::kind`] gives the `Copy` class to count.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the peer's bytes, the configuration, or an operation.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// No server name was configured and none was given.
    #[error("no TLS server name configured")]
    NoServerName,
    /// A CA file could not be read.
    #[error("reading CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// PEM input could not be parsed.
    #[error("invalid PEM ({what}): {detail}")]
    Pem {
        /// Which input (CA certificates, certificate chain, private key).
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// Neither trust roots nor `insecure_skip_verify` were configured, or the PEM input
    /// held no usable certificate.
    #[error("no trust roots: give a CA file or PEM, or opt into insecure_skip_verify")]
    NoTrustRoots,
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    CertGen(#[from] rcgen::Error),
    /// The peer's byte stream ended without `close_notify`.
    #[error("TLS stream ended without close_notify ({partial_bytes} bytes of an unfinished record)")]
    UnexpectedEof {
        /// Bytes of an incomplete record left over (0: truncated between records).
        partial_bytes: usize,
    },
    /// Application data was queued before the handshake allowed it.
    #[error("TLS handshake not complete")]
    HandshakeNotComplete,
    /// The session already sent `close_notify`.
    #[error("TLS session closed")]
    Closed,
    /// The session failed earlier with an error of this kind.
    #[error("TLS session failed earlier ({0})")]
    Failed(TlsErrorKind),
    /// The record layer's sequence numbers are exhausted.
    #[error("TLS encryption limit reached")]
    EncryptExhausted,
    /// A buffered (server-side) connection refused bytes.
    #[error("TLS I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl TlsError {
    /// The `Copy` class of this error, for counters.
    pub fn kind(&self) -> TlsErrorKind {
        match self {
            Self::Rustls(e) => TlsErrorKind::of_rustls(e),
            Self::InvalidServerName(_)
            | Self::NoServerName
            | Self::CaFile { .. }
            | Self::Pem { .. }
            | Self::NoTrustRoots
            | Self::CertGen(_) => TlsErrorKind::Config,
            Self::UnexpectedEof { .. } => TlsErrorKind::Protocol,
            Self::Closed => TlsErrorKind::Closed,
            Self::Failed(kind) => *kind,
            Self::HandshakeNotComplete | Self::EncryptExhausted | Self::Io(_) => TlsErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError, InvalidMessage, PeerMisbehaved};

    #[test]
    fn kinds_of_rustls_errors() {
        let bad_cert = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(TlsError::from(bad_cert).kind(), TlsErrorKind::BadCertificate);
        assert_eq!(TlsError::from(rustls::Error::DecryptError).kind(), TlsErrorKind::Decrypt);
        let bad_msg = rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType);
        assert_eq!(TlsError::from(bad_msg).kind(), TlsErrorKind::Protocol);
        let misbehaved = rustls::Error::PeerMisbehaved(PeerMisbehaved::TooManyEmptyFragments);
        assert_eq!(TlsError::from(misbehaved).kind(), TlsErrorKind::Protocol);
        let alert = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert_eq!(TlsError::from(alert).kind(), TlsErrorKind::HandshakeFailure);
        let alert = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert_eq!(TlsError::from(alert).kind(), TlsErrorKind::BadCertificate);
        let alert = rustls::Error::AlertReceived(AlertDescription::InternalError);
        assert_eq!(TlsError::from(alert).kind(), TlsErrorKind::Alert);
        assert_eq!(TlsError::UnexpectedEof { partial_bytes: 3 }.kind(), TlsErrorKind::Protocol);
        assert_eq!(TlsError::Failed(TlsErrorKind::Decrypt).kind(), TlsErrorKind::Decrypt);
    }

    #[test]
    fn names_are_unique_and_indices_match() {
        for (i, kind) in TlsErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert!(kind.name().starts_with("tls_"));
            assert_eq!(TlsErrorKind::ALL.iter().filter(|k| k.name() == kind.name()).count(), 1);
        }
    }
}
