//! The run's director: what a scenario asks of the world around the engine.
//!
//! - [`embedded`]: starts the embedded target (`loadgen serve --mode MODE` as a child
//!   process on a free loopback port; in notify mode with a `redis-server` of its own
//!   that the timeline can restart) and stops it when the run is over.
//! - [`tokens`]: mints the per-connection handshake tokens (`{token}`).
//! - [`timeline`]: plays the scenario's timeline at its seconds: faults switched through
//!   `POST /admin/faults`, messages published through `POST /publish`, a worker killed,
//!   Redis restarted, a request to a server of the user's. Each event is recorded as
//!   applied, with the target's answer or the error.
//! - [`inject`]: loadgen's own markers published through the system's path (an HTTP
//!   endpoint, a Redis channel), for the engine to find in what the clients receive.
//! - [`http`]: the small blocking HTTP/1.1 client those requests use.
//!
//! What it does not do: run load (the engine), read scenario files (`loadgen-scenario`)
//! or judge the run (the checks).

pub mod cpu;
pub mod embedded;
pub mod http;
pub mod inject;
pub mod redis_keeper;
pub mod timeline;
pub mod tokens;

pub use embedded::{EmbeddedTarget, TargetLog};
pub use timeline::{Applied, Player};

/// Why the director could not do what the scenario asks.
#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    /// The embedded target did not start.
    #[error("the embedded target did not start: {0}")]
    TargetStart(String),
    /// The embedded Redis did not start.
    #[error("{0}")]
    Redis(String),
}
