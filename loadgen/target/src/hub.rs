//! A worker's subscription registry: which local connections listen on which channel,
//! reference-counted so the worker's one Redis subscriber connection subscribes to a
//! channel when its first local client arrives and unsubscribes when its last leaves.
//!
//! Every change to the registry queues the matching command for the subscriber task
//! ([`crate::subscriber`]) while the registry is locked, so commands reach Redis in the
//! order the registry changed; a join also queues a barrier that the subscriber
//! answers once everything before it has been confirmed by Redis, which is when the
//! client is told it is ready. The registry talks to no socket itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::queue::Outbound;

/// A connection's id within its worker.
pub type ConnId = u64;

/// What the subscriber task is asked to do.
#[derive(Debug)]
pub enum Command {
    Subscribe(String),
    Unsubscribe(String),
    /// Answer once every earlier command is confirmed by Redis.
    Barrier(oneshot::Sender<()>),
}

/// The registry.
#[derive(Debug)]
pub struct Hub {
    channels: Mutex<HashMap<String, HashMap<ConnId, Arc<Outbound>>>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Hub {
    /// A registry and the receiving end of its commands (for the subscriber task).
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (commands, rx) = mpsc::unbounded_channel();
        (Self { channels: Mutex::new(HashMap::new()), commands }, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<ConnId, Arc<Outbound>>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, command: Command) {
        // The subscriber task outlives the hub's users; if it is gone the worker is
        // stopping and nothing needs doing.
        let _ = self.commands.send(command);
    }

    /// Adds `conn` to `channels`; the receiver fires when Redis has confirmed them.
    pub fn join(&self, conn: ConnId, channels: &[String], out: &Arc<Outbound>) -> oneshot::Receiver<()> {
        let mut map = self.lock();
        for ch in channels {
            let clients = map.entry(ch.clone()).or_default();
            if clients.is_empty() {
                self.send(Command::Subscribe(ch.clone()));
            }
            clients.insert(conn, out.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Command::Barrier(tx));
        rx
    }

    /// Removes `conn` from `channels`, unsubscribing those it was the last client of.
    pub fn leave(&self, conn: ConnId, channels: &[String]) {
        let mut map = self.lock();
        for ch in channels {
            if let Some(clients) = map.get_mut(ch) {
                clients.remove(&conn);
                if clients.is_empty() {
                    map.remove(ch);
                    self.send(Command::Unsubscribe(ch.clone()));
                }
            }
        }
    }

    /// The queues of the local clients of `channel` now.
    pub fn clients(&self, channel: &str) -> Vec<Arc<Outbound>> {
        self.lock().get(channel).map_or_else(Vec::new, |c| c.values().cloned().collect())
    }

    /// Every channel with a local client now (what a new subscriber connection
    /// subscribes to).
    pub fn channels(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Local clients of `channel`.
    pub fn count(&self, channel: &str) -> usize {
        self.lock().get(channel).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::SlowConsumer;

    fn drain(rx: &mut mpsc::UnboundedReceiver<Command>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(c) = rx.try_recv() {
            seen.push(match c {
                Command::Subscribe(ch) => format!("+{ch}"),
                Command::Unsubscribe(ch) => format!("-{ch}"),
                Command::Barrier(_) => "|".into(),
            });
        }
        seen
    }

    #[test]
    fn first_join_subscribes_last_leave_unsubscribes() {
        let (hub, mut rx) = Hub::new();
        let q = Arc::new(Outbound::new(4, SlowConsumer::DropOldest));
        let ab = ["a".to_string(), "b".to_string()];
        let _r1 = hub.join(1, &ab, &q);
        let _r2 = hub.join(2, &ab[..1], &q);
        assert_eq!(drain(&mut rx), ["+a", "+b", "|", "|"]);
        assert_eq!((hub.count("a"), hub.count("b")), (2, 1));
        hub.leave(1, &ab);
        assert_eq!(drain(&mut rx), ["-b"], "a still has client 2");
        assert_eq!(hub.clients("a").len(), 1);
        hub.leave(2, &ab[..1]);
        assert_eq!(drain(&mut rx), ["-a"]);
        assert!(hub.channels().is_empty());
        hub.leave(2, &ab[..1]);
        assert!(drain(&mut rx).is_empty(), "leaving twice is harmless");
    }
}
