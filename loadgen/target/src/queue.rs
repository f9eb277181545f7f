//! The bounded outbound queue of one WebSocket connection, between the fan-out (many
//! producers: Redis messages) and the connection's task (one consumer), with the
//! slow-consumer policy applied when it is full. It holds ready-to-send texts; it does
//! not send, time or count anything itself (the caller counts what `push` reports).

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What to do when a connection's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumer {
    /// Drop the oldest queued message to make room (counted).
    DropOldest,
    /// Close the connection (1008 "slow consumer"; counted).
    Disconnect,
}

impl FromStr for SlowConsumer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop-oldest" => Ok(Self::DropOldest),
            "disconnect" => Ok(Self::Disconnect),
            other => Err(format!("unknown slow-consumer policy {other:?}; accepted: drop-oldest, disconnect")),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; the depth after it.
    Queued(usize),
    /// Queued after dropping the oldest message.
    DroppedOldest,
    /// The queue was full under the disconnect policy: the connection is to close.
    Overflowed,
    /// The connection is already gone or overflowed: nothing queued.
    Closed,
}

/// What the consumer gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Message(Utf8Bytes),
    /// The queue overflowed under the disconnect policy.
    Overflowed,
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<Utf8Bytes>,
    /// Critical messages: sent before anything in `queue`.
    urgent: VecDeque<Utf8Bytes>,
    overflowed: bool,
    closed: bool,
}

/// One connection's queue.
#[derive(Debug)]
pub struct Outbound {
    inner: Mutex<Inner>,
    ready: Notify,
    capacity: usize,
    policy: SlowConsumer,
    /// Deliveries to this connection seen by the `drop-fanout` and `duplicate` faults
    /// (each counts its own, so both shares hold per connection).
    pub fault_counters: [AtomicU64; 2],
}

impl Outbound {
    pub fn new(capacity: usize, policy: SlowConsumer) -> Self {
        let inner = Inner {
            queue: VecDeque::with_capacity(capacity.min(64)),
            urgent: VecDeque::new(),
            overflowed: false,
            closed: false,
        };
        Self {
            inner: Mutex::new(inner),
            ready: Notify::new(),
            capacity: capacity.max(1),
            policy,
            fault_counters: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `text`, applying the policy when full.
    pub fn push(&self, text: Utf8Bytes) -> Pushed {
        let mut inner = self.lock();
        if inner.closed || inner.overflowed {
            return Pushed::Closed;
        }
        let pushed = if inner.queue.len() < self.capacity {
            inner.queue.push_back(text);
            Pushed::Queued(inner.queue.len())
        } else {
            match self.policy {
                SlowConsumer::DropOldest => {
                    inner.queue.pop_front();
                    inner.queue.push_back(text);
                    Pushed::DroppedOldest
                }
                SlowConsumer::Disconnect => {
                    inner.overflowed = true;
                    inner.queue.clear();
                    Pushed::Overflowed
                }
            }
        };
        drop(inner);
        self.ready.notify_one();
        pushed
    }

    /// Queues a critical `text` ahead of every ordinary message (behind earlier critical
    /// ones). Critical messages have a line of their own, as long as the queue; when it
    /// is full its oldest is dropped, whatever the policy.
    pub fn push_urgent(&self, text: Utf8Bytes) -> Pushed {
        let mut inner = self.lock();
        if inner.closed || inner.overflowed {
            return Pushed::Closed;
        }
        let pushed = if inner.urgent.len() < self.capacity {
            inner.urgent.push_back(text);
            Pushed::Queued(inner.urgent.len() + inner.queue.len())
        } else {
            inner.urgent.pop_front();
            inner.urgent.push_back(text);
            Pushed::DroppedOldest
        };
        drop(inner);
        self.ready.notify_one();
        pushed
    }

    /// Takes up to `max` queued messages into `out` (critical ones first), waiting for the first if none is
    /// queued. Cancel-safe: nothing is taken unless this returns.
    pub async fn pop_batch(&self, out: &mut Vec<Utf8Bytes>, max: usize) -> Result<(), Next> {
        loop {
            {
                let mut inner = self.lock();
                if inner.overflowed {
                    return Err(Next::Overflowed);
                }
                if !inner.urgent.is_empty() || !inner.queue.is_empty() {
                    let max = max.max(1);
                    let u = inner.urgent.len().min(max);
                    out.extend(inner.urgent.drain(..u));
                    let n = inner.queue.len().min(max - u);
                    out.extend(inner.queue.drain(..n));
                    return Ok(());
                }
            }
            self.ready.notified().await;
        }
    }

    /// Marks the connection gone: later pushes are refused and queued messages freed.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.queue.clear();
        inner.urgent.clear();
    }

    /// Messages queued now.
    pub fn depth(&self) -> usize {
        let inner = self.lock();
        inner.queue.len() + inner.urgent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_string())
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest() {
        let q = Outbound::new(2, SlowConsumer::DropOldest);
        assert_eq!(q.push(t("a")), Pushed::Queued(1));
        assert_eq!(q.push(t("b")), Pushed::Queued(2));
        assert_eq!(q.push(t("c")), Pushed::DroppedOldest);
        let mut out = Vec::new();
        q.pop_batch(&mut out, 10).await.unwrap();
        assert_eq!(out, [t("b"), t("c")]);
    }

    #[tokio::test]
    async fn critical_messages_overtake_the_queue() {
        let q = Outbound::new(4, SlowConsumer::DropOldest);
        q.push(t("a"));
        q.push(t("b"));
        q.push_urgent(t("!1"));
        q.push_urgent(t("!2"));
        let mut out = Vec::new();
        q.pop_batch(&mut out, 3).await.unwrap();
        assert_eq!(out, [t("!1"), t("!2"), t("a")]);
    }

    #[tokio::test]
    async fn disconnect_overflows_once_then_refuses() {
        let q = Outbound::new(1, SlowConsumer::Disconnect);
        assert_eq!(q.push(t("a")), Pushed::Queued(1));
        assert_eq!(q.push(t("b")), Pushed::Overflowed);
        assert_eq!(q.push(t("c")), Pushed::Closed);
        assert_eq!(q.pop_batch(&mut Vec::new(), 10).await, Err(Next::Overflowed));
    }

    #[tokio::test]
    async fn consumer_wakes_on_push_and_closed_refuses() {
        let q = std::sync::Arc::new(Outbound::new(4, SlowConsumer::DropOldest));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move {
            let mut out = Vec::new();
            q2.pop_batch(&mut out, 1).await.unwrap();
            out
        });
        tokio::task::yield_now().await;
        q.push(t("x"));
        assert_eq!(waiter.await.unwrap(), [t("x")]);
        q.close();
        assert_eq!(q.push(t("y")), Pushed::Closed);
        assert_eq!(q.depth(), 0);
    }
}
