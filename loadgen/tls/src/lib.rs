//! `loadgen-tls`: sans-IO TLS for wss:// load generation, on rustls (unbuffered client
//! API, `ring` provider: no aws-lc, no cmake).
//!
//! What it does:
//! - [`TlsClientConfig`]: trust roots from a PEM file or bytes (or an explicit, loudly
//!   named `insecure_skip_verify`), ALPN (default `http/1.1`), TLS 1.2 and 1.3, session
//!   resumption on by default (TLS 1.3 tickets, TLS 1.2 session ids and tickets) in an
//!   in-memory cache shared by every session made from one config: the engine keeps one
//!   per worker ([`TlsClientConfig::for_worker`]).
//! - [`TlsSession`]: one client connection. Received ciphertext in (decrypted in place
//!   in the caller's buffer), plaintext out to a callback or a `Vec`; plaintext in,
//!   ciphertext appended to the caller's outgoing `Vec`; handshake, resumption
//!   ([`TlsSession::is_resumed`]), `close_notify` both ways, errors classified by
//!   [`TlsErrorKind`] for counters.
//! - [`TlsServerConfig`] / [`TlsServerSession`]: a self-signed (rcgen) or PEM-loaded
//!   server for tests and `loadgen serve --tls`, sans-IO too.
//!
//! What it does not do: sockets, threads, timers, a runtime, the system trust store,
//! client certificates, 0-RTT. The io_uring engine moves the bytes.
//!
//! Memory: an idle established client session owns no receive buffer (bytes of an
//! unfinished record are kept only until the record completes). `tests/memory.rs`
//! measures the heap a session frees when dropped, with a counting global allocator, on
//! x86-64 (printed by `cargo test -p loadgen-tls --test memory -- --nocapture`):
//!
//! | idle client session, after the handshake | heap |
//! | --- | --- |
//! | TLS 1.3, TLS13_AES_256_GCM_SHA384, resumed / full handshake | ≈ 2.6 KiB / 2.7 KiB (2620 B / 2788 B) |
//! | TLS 1.2, ECDHE_ECDSA_AES_256_GCM_SHA384, resumed / full handshake | ≈ 2.3 KiB / 2.4 KiB (2363 B / 2435 B) |
//!
//! plus `size_of::<TlsSession>()` = 1008 B wherever the session lives. The test asserts
//! a 64 KiB bound and that [`TlsSession::heap_bytes_estimate`] stays an upper bound
//! within a factor of two. While handshaking a client session holds about 17.6 KB
//! (after its ClientHello); the buffered server session holds about 6 KiB when idle.
//! Per record, this crate allocates nothing; rustls 0.23 allocates one buffer per record
//! each way (counted by the same test).
//!
//! ```
//! use loadgen_tls::{TlsClientConfig, TlsServerConfig, TlsServerSession, TlsSession};
//!
//! let server_config = TlsServerConfig::self_signed(["localhost"]).unwrap();
//! let client_config =
//!     TlsClientConfig::builder().server_name("localhost").ca_pem(server_config.cert_pem()).build().unwrap();
//! let mut client = TlsSession::for_target(&client_config).unwrap();
//! let mut server = TlsServerSession::new(&server_config).unwrap();
//!
//! let (mut to_server, mut to_client, mut plain) = (Vec::new(), Vec::new(), Vec::new());
//! client.poll_transmit(&mut to_server).unwrap(); // ClientHello
//! while !client.is_handshake_complete() || !server.is_handshake_complete() {
//!     server.receive(&to_server, &mut plain).unwrap();
//!     to_server.clear();
//!     server.poll_transmit(&mut to_client).unwrap();
//!     client.receive(&mut to_client, &mut to_server, &mut plain).unwrap();
//!     to_client.clear();
//! }
//! client.send(b"hello", &mut to_server).unwrap();
//! server.receive(&to_server, &mut plain).unwrap();
//! assert_eq!(plain, b"hello");
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod server;
pub mod session;

pub use config::{DEFAULT_RESUMPTION_CACHE, TlsClientConfig, TlsClientConfigBuilder, TlsVersions};
pub use error::{TlsError, TlsErrorKind};
pub use server::{TlsServerConfig, TlsServerSession};
pub use session::TlsSession;

/// rustls types that appear in this crate's API.
pub use rustls::{HandshakeKind, ProtocolVersion, pki_types::ServerName};
