//! Live Prometheus exposition (in progress in a helper's branch: this placeholder fixes
//! the API).

use std::io;
use std::net::SocketAddr;

use hdrhistogram::Histogram;
use serde_json::Value;

/// Serves `/metrics` on its own thread; updated once a second by the run.
pub struct Exporter {
    addr: SocketAddr,
}

impl Exporter {
    /// Binds `addr` (port 0: any free port) and starts serving.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self { addr })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A second of the run: its timeseries line and the whole-run histograms so far.
    pub fn update(&self, line: &Value, histograms: &[(&'static str, &Histogram<u64>)]) {
        let _ = (line, histograms);
    }
}
