//! In-memory client ↔ server plumbing for the session tests: no sockets.

use std::sync::OnceLock;

use loadgen_tls::{TlsClientConfig, TlsError, TlsServerConfig, TlsServerSession, TlsSession, TlsVersions};

/// A self-signed server for "localhost" and 127.0.0.1 (generated once per test binary).
pub fn server_config() -> &'static TlsServerConfig {
    static CONFIG: OnceLock<TlsServerConfig> = OnceLock::new();
    CONFIG.get_or_init(|| TlsServerConfig::self_signed(["localhost", "127.0.0.1"]).unwrap())
}

/// The same kind of server, accepting only TLS 1.2 (its own certificate).
pub fn server_config_tls12() -> &'static TlsServerConfig {
    static CONFIG: OnceLock<TlsServerConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        TlsServerConfig::self_signed(["localhost"]).unwrap().with_versions(TlsVersions::Tls12Only).unwrap()
    })
}

/// A server writing records of at most 64 bytes: every handshake message spans records.
pub fn server_config_tiny_records(tls12: bool) -> &'static TlsServerConfig {
    static CONFIGS: OnceLock<[TlsServerConfig; 2]> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        [TlsVersions::Tls13Only, TlsVersions::Tls12Only].map(|versions| {
            let config = TlsServerConfig::self_signed(["localhost"]).unwrap();
            config.with_versions(versions).unwrap().with_max_fragment_size(Some(64)).unwrap()
        })
    });
    &configs[usize::from(tls12)]
}

/// A client config trusting `server`'s certificate, for "localhost".
pub fn client_config(server: &TlsServerConfig) -> TlsClientConfig {
    TlsClientConfig::builder().server_name("localhost").ca_pem(server.cert_pem()).build().unwrap()
}

/// Which side failed during a step.
#[derive(Debug)]
pub enum Failure {
    Client(TlsError),
    Server(TlsError),
}

impl Failure {
    pub fn client(self) -> TlsError {
        match self {
            Failure::Client(e) => e,
            Failure::Server(e) => panic!("expected a client error, the server failed: {e}"),
        }
    }
}

/// A client and a server session with the bytes in flight between them.
pub struct Pair {
    pub client: TlsSession,
    pub server: TlsServerSession,
    pub to_server: Vec<u8>,
    pub to_client: Vec<u8>,
    pub client_plain: Vec<u8>,
    pub server_plain: Vec<u8>,
}

impl Pair {
    pub fn new(client: &TlsClientConfig, server: &TlsServerConfig) -> Pair {
        Self::with_session(TlsSession::for_target(client).unwrap(), server)
    }

    pub fn with_session(mut client: TlsSession, server: &TlsServerConfig) -> Pair {
        let mut to_server = Vec::new();
        client.poll_transmit(&mut to_server).unwrap();
        assert!(!to_server.is_empty(), "no ClientHello");
        Pair {
            client,
            server: TlsServerSession::new(server).unwrap(),
            to_server,
            to_client: Vec::new(),
            client_plain: Vec::new(),
            server_plain: Vec::new(),
        }
    }

    /// Delivers what is in flight, each way once.
    pub fn step(&mut self) -> Result<(), Failure> {
        let server_result = self.server.receive(&self.to_server, &mut self.server_plain);
        self.to_server.clear();
        // Deliver the alert a failing server queued before reporting its failure.
        self.server.poll_transmit(&mut self.to_client).map_err(Failure::Server)?;
        let client_result = self.client.receive(&mut self.to_client, &mut self.to_server, &mut self.client_plain);
        self.to_client.clear();
        server_result.map_err(Failure::Server)?;
        client_result.map_err(Failure::Client)?;
        Ok(())
    }

    /// Steps until both handshakes are complete and nothing is in flight (so TLS 1.3
    /// tickets have reached the client).
    pub fn handshake(&mut self) -> Result<(), Failure> {
        for _ in 0..16 {
            self.step()?;
            let done = self.client.is_handshake_complete() && self.server.is_handshake_complete();
            if done && self.to_server.is_empty() && self.to_client.is_empty() {
                return Ok(());
            }
        }
        panic!("handshake did not finish in 16 steps");
    }

    /// Like [`handshake`](Self::handshake), the server's bytes reaching the client in
    /// pieces whose sizes cycle through `sizes`.
    pub fn handshake_split(&mut self, sizes: &[usize]) -> Result<(), Failure> {
        for _ in 0..16 {
            self.server.receive(&self.to_server, &mut self.server_plain).map_err(Failure::Server)?;
            self.to_server.clear();
            self.server.poll_transmit(&mut self.to_client).map_err(Failure::Server)?;
            let mut bytes = std::mem::take(&mut self.to_client);
            let (mut at, mut i) = (0, 0);
            while at < bytes.len() {
                let end = (at + sizes[i % sizes.len()].max(1)).min(bytes.len());
                let piece = &mut bytes[at..end];
                self.client.receive(piece, &mut self.to_server, &mut self.client_plain).map_err(Failure::Client)?;
                (at, i) = (end, i + 1);
            }
            let done = self.client.is_handshake_complete() && self.server.is_handshake_complete();
            if done && self.to_server.is_empty() {
                return Ok(());
            }
        }
        panic!("handshake did not finish in 16 steps");
    }
}
