//! Fan-out: a message that arrived from Redis on a channel goes to the outbound queue of
//! every local client of that channel, with the worker's faults applied on the way.
//!
//! The message is checked to be an envelope and its `worker` member set to this
//! worker, once per message (every client gets the same text). Then:
//! - `reorder` and `delay` pass it through a stage task (reorder holds a message until
//!   the next of its channel, or [`REORDER_HOLD`]; delay holds each message until its
//!   arrival + the delay, in arrival order, so delays never add up). Faults switch at
//!   run time: each message is judged by the faults in force when it arrives, and while
//!   the stage still holds messages new ones queue behind them, so switching `delay` or
//!   `reorder` off never lets a later message overtake an earlier one;
//! - per client, `drop-fanout` drops the delivery and `duplicate` queues it twice;
//! - the queue applies the slow-consumer policy.
//!
//! Everything dropped or added is counted in [`Metrics`]. Sending on sockets is the
//! connection task's job ([`crate::ws`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::envelope::Envelope;
use crate::faults::{Faults, LiveFaults, REORDER_HOLD};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::queue::{Outbound, Pushed};

/// The worker-wide part of delivery.
#[derive(Debug)]
struct Deliver {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    faults: Arc<LiveFaults>,
    /// Messages in the stage task now.
    staged: AtomicUsize,
}

impl Deliver {
    fn to_channel(&self, channel: &str, text: &Utf8Bytes, critical: bool) {
        let faults = self.faults.get();
        let urgent = critical && !faults.no_priority;
        for q in self.hub.clients(channel) {
            self.to_client(&faults, &q, text, urgent);
        }
    }

    fn to_client(&self, faults: &Faults, q: &Outbound, text: &Utf8Bytes, urgent: bool) {
        let m = &*self.metrics;
        if faults.drop_fanout.is_some_and(|s| s.hit(&q.fault_counters[0])) {
            Metrics::inc(&m.dropped_fault);
            return;
        }
        let copies = if faults.duplicate.is_some_and(|s| s.hit(&q.fault_counters[1])) {
            Metrics::inc(&m.duplicated_fault);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let pushed = if urgent { q.push_urgent(text.clone()) } else { q.push(text.clone()) };
            match pushed {
                Pushed::Queued(depth) => m.queue_depth(depth),
                Pushed::DroppedOldest => Metrics::inc(&m.dropped_slow_consumer),
                Pushed::Overflowed => Metrics::inc(&m.slow_consumer_disconnects),
                Pushed::Closed => {}
            }
        }
    }
}

/// A message on its way through the fault stage.
#[derive(Debug)]
struct Staged {
    channel: String,
    text: Utf8Bytes,
    critical: bool,
    arrived: Instant,
}

/// A worker's fan-out.
#[derive(Debug)]
pub struct Fanout {
    worker: u32,
    deliver: Arc<Deliver>,
    stage: mpsc::UnboundedSender<Staged>,
}

impl Fanout {
    /// The fan-out of `worker`; also spawns the stage task (for `reorder` and `delay`)
    /// on the current runtime (it ends when the fan-out is dropped).
    pub fn new(worker: u32, hub: Arc<Hub>, metrics: Arc<Metrics>, faults: Arc<LiveFaults>) -> Self {
        let deliver = Arc::new(Deliver { hub, metrics, faults, staged: AtomicUsize::new(0) });
        let (stage, rx) = mpsc::unbounded_channel();
        tokio::spawn(stage_task(rx, deliver.clone()));
        Self { worker, deliver, stage }
    }

    /// Delivers a Redis message of `channel` to the local clients.
    pub fn deliver(&self, channel: &str, payload: &[u8]) {
        let m = &*self.deliver.metrics;
        Metrics::inc(&m.redis_messages);
        let Some((text, critical)) = restamp(payload, self.worker) else {
            Metrics::inc(&m.foreign_messages);
            tracing::debug!(channel, "a message that is not an envelope: not delivered");
            return;
        };
        let text = Utf8Bytes::from(text);
        if self.deliver.faults.get().staged() || self.deliver.staged.load(Ordering::Acquire) > 0 {
            self.deliver.staged.fetch_add(1, Ordering::AcqRel);
            let staged = Staged { channel: channel.to_string(), text, critical, arrived: Instant::now() };
            let _ = self.stage.send(staged);
        } else {
            self.deliver.to_channel(channel, &text, critical);
        }
    }
}

/// The envelope text with `worker` set to this worker, and whether it is critical;
/// `None` if `payload` is not an envelope.
pub fn restamp(payload: &[u8], worker: u32) -> Option<(String, bool)> {
    let mut env: Envelope = serde_json::from_slice(payload).ok()?;
    if env.lgprobe != crate::envelope::VERSION {
        return None;
    }
    env.worker = worker;
    Some((serde_json::to_string(&env).ok()?, env.critical))
}

/// Reorder (hold one message per channel) then delay (a FIFO line), then delivery.
async fn stage_task(mut rx: mpsc::UnboundedReceiver<Staged>, deliver: Arc<Deliver>) {
    let mut held: HashMap<String, Staged> = HashMap::new();
    let mut line: VecDeque<(Instant, Staged)> = VecDeque::new();
    let out = |s: &Staged| {
        deliver.to_channel(&s.channel, &s.text, s.critical);
        deliver.staged.fetch_sub(1, Ordering::AcqRel);
    };
    // Behind messages still in the line, a message waits its turn even without delay.
    let emit = |s: Staged, line: &mut VecDeque<(Instant, Staged)>| match deliver.faults.get().delay {
        Some(d) => line.push_back((s.arrived + d, s)),
        None if !line.is_empty() => line.push_back((s.arrived, s)),
        None => out(&s),
    };
    loop {
        let release = line.front().map(|(at, _)| *at);
        let expiry = held.values().map(|s| s.arrived + REORDER_HOLD).min();
        tokio::select! {
            item = rx.recv() => {
                let Some(item) = item else { break };
                if !deliver.faults.get().reorder {
                    // Switched off with a message held: it still goes first.
                    if let Some(first) = held.remove(&item.channel) {
                        emit(first, &mut line);
                    }
                    emit(item, &mut line);
                } else if let Some(first) = held.remove(&item.channel) {
                    // The swap: the later message goes out first.
                    emit(item, &mut line);
                    emit(first, &mut line);
                } else {
                    held.insert(item.channel.clone(), item);
                }
            }
            _ = sleep_until(release.unwrap_or_else(Instant::now)), if release.is_some() => {
                let now = Instant::now();
                while line.front().is_some_and(|(at, _)| *at <= now) {
                    let (_, s) = line.pop_front().expect("front exists");
                    out(&s);
                }
            }
            _ = sleep_until(expiry.unwrap_or_else(Instant::now)), if expiry.is_some() => {
                let now = Instant::now();
                let due: Vec<String> =
                    held.iter().filter(|(_, s)| s.arrived + REORDER_HOLD <= now).map(|(c, _)| c.clone()).collect();
                for channel in due {
                    let s = held.remove(&channel).expect("held");
                    emit(s, &mut line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeParts;
    use crate::faults::{Fault, LiveFaults};
    use crate::queue::SlowConsumer;

    fn setup(faults: &[Fault]) -> (Fanout, Arc<Outbound>, Arc<Metrics>) {
        let (hub, _rx) = Hub::new();
        let hub = Arc::new(hub);
        let q = Arc::new(Outbound::new(16, SlowConsumer::DropOldest));
        drop(hub.join(1, &["c".to_string()], &q));
        let metrics = Arc::new(Metrics::default());
        let fanout = Fanout::new(0, hub, metrics.clone(), Arc::new(LiveFaults::new(faults, 0)));
        (fanout, q, metrics)
    }

    async fn seqs(q: &Outbound, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        while out.len() < n {
            q.pop_batch(&mut out, 64).await.unwrap();
        }
        out.iter().map(|t| serde_json::from_str::<Envelope>(t).unwrap().seq).collect()
    }

    fn publish(f: &Fanout, seq: u64) {
        f.deliver("c", EnvelopeParts::new("c", 9, None).assemble(seq, 1).as_bytes());
    }

    #[tokio::test]
    async fn restamps_the_worker_and_refuses_foreign_text() {
        let text = EnvelopeParts::new("c", 9, None).assemble(3, 1);
        let (out, _) = restamp(text.as_bytes(), 2).unwrap();
        assert_eq!(out, text.replace("\"worker\":9", "\"worker\":2"));
        assert_eq!(restamp(b"hello", 0), None);
        assert_eq!(restamp(br#"{"lgprobe":2}"#, 0), None);
        let (f, q, m) = setup(&[]);
        f.deliver("c", b"not json");
        publish(&f, 0);
        assert_eq!(seqs(&q, 1).await, [0]);
        assert_eq!(m.foreign_messages.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn duplicate_and_drop() {
        let (f, q, _) = setup(&[Fault::Duplicate(100.0)]);
        publish(&f, 0);
        publish(&f, 1);
        assert_eq!(seqs(&q, 4).await, [0, 0, 1, 1]);
        let (f, q, m) = setup(&[Fault::DropFanout(50.0)]);
        (0..4).for_each(|s| publish(&f, s));
        assert_eq!(seqs(&q, 2).await, [0, 2]);
        assert_eq!(m.dropped_fault.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn reorder_swaps_pairs_and_releases_a_lone_message() {
        let (f, q, _) = setup(&[Fault::Reorder]);
        (0..5).for_each(|s| publish(&f, s));
        assert_eq!(seqs(&q, 4).await, [1, 0, 3, 2]);
        let start = Instant::now();
        assert_eq!(seqs(&q, 1).await, [4], "released after the hold");
        assert!(start.elapsed() >= REORDER_HOLD);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_holds_each_message_without_adding_up() {
        let (f, q, _) = setup(&[Fault::Delay(std::time::Duration::from_millis(300))]);
        let start = Instant::now();
        (0..3).for_each(|s| publish(&f, s));
        assert_eq!(seqs(&q, 3).await, [0, 1, 2]);
        let took = start.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(300) && took < std::time::Duration::from_millis(400),
            "{took:?}"
        );
    }
}
