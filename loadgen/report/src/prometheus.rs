//! Live Prometheus exposition of a run (`--metrics-addr`): [`Exporter`] serves
//! `GET /metrics` on a thread of its own while the run's collecting thread hands it each
//! second's timeseries line and the whole-run histograms ([`Exporter::update`]).
//!
//! Names, types, labels and units are in docs/prometheus.md: counters summed from the
//! lines' per-second deltas, levels of the last second as gauges, the whole-run
//! HdrHistograms as Prometheus histograms over the fixed bounds [`BUCKET_BOUNDS_US`],
//! the last second's percentiles as gauges. Encoded with `prometheus-client`
//! (OpenMetrics text, served when the scraper asks for it, else rewritten as Prometheus
//! text 0.0.4). Before the first update only `loadgen_info{version}` is exposed.
//!
//! Never in the run's way: `update` does bounded work (one encoding into fresh strings,
//! swapped in under a mutex); the server only clones the latest text's `Arc`. This
//! module measures and judges nothing: every figure is one the run's line or histograms
//! hold. It keeps no history (Prometheus does) and serves nothing after it is dropped.

mod http;
mod snapshot;
#[cfg(test)]
mod tests;
mod text;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::Value;

use http::Shared;
use snapshot::State;

/// Upper bounds (`le`) of the histogram buckets, in µs (exposed in seconds): 1-2-5 steps
/// from 50 µs to 10 s, then 20, 30 and 60 s; `+Inf` above.
pub const BUCKET_BOUNDS_US: [u64; 20] = [
    50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
    5_000_000, 10_000_000, 20_000_000, 30_000_000, 60_000_000,
];

/// How long `drop` tries to connect to the server to wake its `accept`.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves `/metrics` on its own thread; updated once a second by the run. Dropping it
/// stops the server and closes its port.
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    shared: Arc<Shared>,
    state: Mutex<State>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds `addr` (port 0: any free port) and starts serving.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let state = State::default();
        let shared = Arc::new(Shared::default());
        shared.publish(state.encode().map_err(|_| io::Error::other("cannot encode the exposition"))?);
        let serving = Arc::clone(&shared);
        let thread =
            thread::Builder::new().name("loadgen-metrics".into()).spawn(move || http::serve(listener, serving))?;
        Ok(Self { addr, shared, state: Mutex::new(state), thread: Some(thread) })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A second of the run: its timeseries line and the whole-run histograms so far
    /// (µs, keyed by metric name; `schedule_lag` and `connect_lag` are exposed as
    /// generator lag). Whatever the line lacks is skipped.
    pub fn update(&self, line: &Value, histograms: &[(&'static str, &Histogram<u64>)]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.apply(line, histograms);
        self.republish(&state);
    }

    /// The run has ended: exposes `loadgen_run_finished 1` and
    /// `loadgen_run_verdict{verdict}` from the final report (its `verdict`), keeping
    /// the last figures. Scrapes after it still answer until the exporter is dropped.
    pub fn finish(&self, report: &Value) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.finish(report);
        self.republish(&state);
    }

    fn republish(&self, state: &State) {
        // Encoding into a `String` cannot fail; should it, the previous text stays.
        if let Ok(texts) = state.encode() {
            self.shared.publish(texts);
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        // Without the wake-up connection `accept` would block on; then the thread is
        // left to end at its next connection rather than hang the run's end.
        if TcpStream::connect_timeout(&SocketAddr::new(ip, self.addr.port()), WAKE_TIMEOUT).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}
