//! The Redis a worker talks to now: one `redis::Client` that can be switched while the
//! worker runs (by [`crate::sentinel`] when Sentinel promotes another master), with a
//! generation number, so the publisher's cached connection and the subscriber know
//! when theirs is stale.

use std::sync::Arc;

use tokio::sync::watch;

/// The current Redis and its generation (bumped by every switch).
#[derive(Debug)]
pub struct Endpoint {
    tx: watch::Sender<(u64, redis::Client)>,
}

impl Endpoint {
    pub fn new(client: redis::Client) -> Arc<Self> {
        Arc::new(Self { tx: watch::Sender::new((0, client)) })
    }

    /// The client in use and its generation.
    pub fn current(&self) -> (u64, redis::Client) {
        self.tx.borrow().clone()
    }

    /// Switches to `client` (every user reconnects).
    pub fn switch(&self, client: redis::Client) {
        self.tx.send_modify(|(generation, c)| {
            *generation += 1;
            *c = client;
        });
    }

    /// Notified at each switch.
    pub fn changes(&self) -> watch::Receiver<(u64, redis::Client)> {
        self.tx.subscribe()
    }

    /// `host:port` of the Redis in use.
    pub fn addr(&self) -> String {
        match self.tx.borrow().1.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            other => other.to_string(),
        }
    }
}
