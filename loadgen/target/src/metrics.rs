//! A worker's counters (atomics, shared by its tasks) and their Prometheus text
//! exposition for `GET /metrics`. Counting only: nothing here decides anything.

use crate::pong_filter::PongCounts;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One worker's counters. Gauges are the fields documented as such.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Gauge: WebSocket connections open now.
    pub connections_open: AtomicU64,
    /// Upgrades completed.
    pub upgrades: AtomicU64,
    /// Upgrades refused (bad query, wrong path) or failed in the handshake.
    pub upgrades_failed: AtomicU64,
    /// Plain HTTP requests answered.
    pub http_requests: AtomicU64,
    /// Messages received from Redis on subscribed channels.
    pub redis_messages: AtomicU64,
    /// Redis messages that were not envelopes (published by someone else): not delivered.
    pub foreign_messages: AtomicU64,
    /// Messages written to a client.
    pub delivered: AtomicU64,
    /// Messages published to Redis by this worker (POST /publish).
    pub published: AtomicU64,
    /// Deliveries dropped because the client's queue was full (drop-oldest).
    pub dropped_slow_consumer: AtomicU64,
    /// Deliveries dropped by the `drop-fanout` fault.
    pub dropped_fault: AtomicU64,
    /// Extra deliveries made by the `duplicate` fault.
    pub duplicated_fault: AtomicU64,
    /// Connections closed because their queue was full (disconnect policy).
    pub slow_consumer_disconnects: AtomicU64,
    /// The deepest any outbound queue has been.
    pub queue_depth_max: AtomicU64,
    /// Connections closed for idleness (nothing received for the idle timeout).
    pub idle_closed: AtomicU64,
    /// Server pings sent.
    pub pings_sent: AtomicU64,
    /// Upgrades refused 401 (no token, or a bad or expired one).
    pub refused_unauthorized: AtomicU64,
    /// Upgrades refused 403 (a token for another user or unit, or a foreign Origin).
    pub refused_forbidden: AtomicU64,
    /// Upgrades refused 429 (the client IP's connection rate).
    pub refused_rate_limited: AtomicU64,
    /// Connections closed 1008 for sending messages too fast.
    pub closed_message_rate: AtomicU64,
    /// Connections closed 1009 for a message over the size limit.
    pub closed_too_big: AtomicU64,
    /// Connections closed 1002 or 1007 for a protocol violation.
    pub closed_protocol: AtomicU64,
    /// Request heads (upgrades included) that did not arrive within the handshake timeout.
    pub handshake_timeouts: AtomicU64,
    /// Pongs left out (`stop-pong`) and held (`pong-jitter`) by the connections' filters.
    pub pongs: Arc<PongCounts>,
    /// Times the Redis subscriber connection was re-established.
    pub redis_reconnects: AtomicU64,
    /// Gauge: channels this worker is subscribed to.
    pub subscriptions: AtomicU64,
    /// Gauge: the subscriber connection is up.
    pub redis_connected: AtomicBool,
    /// Gauge: the subscriber connection's protocol, 2 or 3 (0 before the first connect).
    pub redis_protocol: AtomicU64,
    /// Times Sentinel pointed this worker at another master.
    pub redis_master_switches: AtomicU64,
    /// Gauge: the publishing circuit breaker (0 closed, 1 open, 2 half-open); set when
    /// rendered.
    pub breaker_state: AtomicU64,
    /// Times the breaker opened; set when rendered.
    pub breaker_opened: AtomicU64,
    /// Publishes refused at once because the breaker was open.
    pub publish_rejected: AtomicU64,
    /// Kept notifications sent to reconnecting persons (`since=`).
    pub pending_replayed: AtomicU64,
    /// Kept notifications not sent because of `drop-pending`.
    pub pending_dropped: AtomicU64,
    /// Publish requests taken over WebSocket publisher connections.
    pub ws_publish_requests: AtomicU64,
    /// Reminder occurrences scheduled by this worker (`POST /reminders`, `/shifts`).
    pub reminders_scheduled: AtomicU64,
    /// Reminders this worker fired (claimed and published).
    pub reminders_fired: AtomicU64,
    /// Fired reminders whose lateness was over the late threshold.
    pub reminders_late: AtomicU64,
    /// Reminders claimed but not published (a Redis failure between the two steps of a
    /// cluster's firing).
    pub reminders_lost: AtomicU64,
    /// Lateness of fired reminders: fire time − due time.
    pub reminder_lateness: Histogram,
}

/// Upper bounds of the reminder lateness histogram's buckets, in µs (rendered as
/// seconds in `le`); `+Inf` follows.
pub const LATENESS_BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A Prometheus histogram of durations in µs over [`LATENESS_BUCKETS_US`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; the last one is `+Inf`).
    buckets: [AtomicU64; LATENESS_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, us: u64) {
        let i = LATENESS_BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(LATENESS_BUCKETS_US.len());
        Metrics::inc(&self.buckets[i]);
        Metrics::inc(&self.count);
        Metrics::add(&self.sum_us, us);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        get(&self.count)
    }

    fn render(&self, out: &mut String, name: &str, help: &str, worker: u32) {
        let _ = writeln!(out, "# HELP loadgen_target_{name} {help}.");
        let _ = writeln!(out, "# TYPE loadgen_target_{name} histogram");
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += get(b);
            let le = LATENESS_BUCKETS_US.get(i).map_or_else(|| "+Inf".to_string(), |us| (*us as f64 / 1e6).to_string());
            let _ = writeln!(out, "loadgen_target_{name}_bucket{{worker=\"{worker}\",le=\"{le}\"}} {cumulative}");
        }
        let sum = get(&self.sum_us) as f64 / 1e6;
        let _ = writeln!(out, "loadgen_target_{name}_sum{{worker=\"{worker}\"}} {sum}");
        let _ = writeln!(out, "loadgen_target_{name}_count{{worker=\"{worker}\"}} {}", get(&self.count));
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Metrics {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records a queue depth seen.
    pub fn queue_depth(&self, depth: usize) {
        self.queue_depth_max.fetch_max(depth as u64, Ordering::Relaxed);
    }

    /// The Prometheus text format (version 0.0.4), every series labelled with the worker.
    pub fn render(&self, worker: u32) -> String {
        let counters: [(&str, &str, &str, u64); 40] = [
            ("connections_open", "gauge", "WebSocket connections open", get(&self.connections_open)),
            ("upgrades_total", "counter", "WebSocket upgrades completed", get(&self.upgrades)),
            ("upgrades_failed_total", "counter", "WebSocket upgrades refused or failed", get(&self.upgrades_failed)),
            ("http_requests_total", "counter", "Plain HTTP requests answered", get(&self.http_requests)),
            ("redis_messages_total", "counter", "Messages received from Redis", get(&self.redis_messages)),
            (
                "foreign_messages_total",
                "counter",
                "Redis messages that were not envelopes",
                get(&self.foreign_messages),
            ),
            ("messages_delivered_total", "counter", "Messages written to clients", get(&self.delivered)),
            ("messages_published_total", "counter", "Messages published to Redis", get(&self.published)),
            (
                "messages_dropped_slow_consumer_total",
                "counter",
                "Deliveries dropped from full queues (drop-oldest)",
                get(&self.dropped_slow_consumer),
            ),
            ("messages_dropped_fault_total", "counter", "Deliveries dropped by drop-fanout", get(&self.dropped_fault)),
            (
                "messages_duplicated_fault_total",
                "counter",
                "Extra deliveries by duplicate",
                get(&self.duplicated_fault),
            ),
            (
                "slow_consumer_disconnects_total",
                "counter",
                "Connections closed with a full queue (disconnect)",
                get(&self.slow_consumer_disconnects),
            ),
            ("queue_depth_max", "gauge", "Deepest outbound queue seen", get(&self.queue_depth_max)),
            ("idle_closed_total", "counter", "Connections closed for idleness", get(&self.idle_closed)),
            ("pings_sent_total", "counter", "Server pings sent", get(&self.pings_sent)),
            ("upgrades_refused_401_total", "counter", "Upgrades refused 401", get(&self.refused_unauthorized)),
            ("upgrades_refused_403_total", "counter", "Upgrades refused 403", get(&self.refused_forbidden)),
            ("upgrades_refused_429_total", "counter", "Upgrades refused 429", get(&self.refused_rate_limited)),
            (
                "closed_message_rate_total",
                "counter",
                "Connections closed 1008 (message rate)",
                get(&self.closed_message_rate),
            ),
            ("closed_too_big_total", "counter", "Connections closed 1009 (message size)", get(&self.closed_too_big)),
            (
                "closed_protocol_total",
                "counter",
                "Connections closed 1002/1007 (violations)",
                get(&self.closed_protocol),
            ),
            (
                "handshake_timeouts_total",
                "counter",
                "Request heads not in within the timeout",
                get(&self.handshake_timeouts),
            ),
            (
                "pongs_suppressed_total",
                "counter",
                "Client pings left unanswered (stop-pong)",
                get(&self.pongs.suppressed),
            ),
            ("pongs_delayed_total", "counter", "Pongs held back (pong-jitter)", get(&self.pongs.delayed)),
            (
                "pongs_delayed_ms_total",
                "counter",
                "Milliseconds pongs were held back in total (pong-jitter)",
                get(&self.pongs.delayed_ms),
            ),
            ("redis_reconnects_total", "counter", "Redis subscriber reconnections", get(&self.redis_reconnects)),
            ("subscriptions", "gauge", "Redis channels subscribed", get(&self.subscriptions)),
            ("redis_connected", "gauge", "Redis subscriber connection up (1) or down (0)", self.redis_up() as u64),
            ("redis_protocol", "gauge", "Redis subscriber protocol: RESP 2 or 3", get(&self.redis_protocol)),
            (
                "redis_master_switches_total",
                "counter",
                "Times Sentinel pointed the worker at another master",
                get(&self.redis_master_switches),
            ),
            (
                "breaker_state",
                "gauge",
                "Publishing circuit breaker: 0 closed, 1 open, 2 half-open",
                get(&self.breaker_state),
            ),
            ("breaker_opened_total", "counter", "Times the circuit breaker opened", get(&self.breaker_opened)),
            ("publish_rejected_total", "counter", "Publishes refused by the open breaker", get(&self.publish_rejected)),
            ("pending_replayed_total", "counter", "Kept notifications replayed", get(&self.pending_replayed)),
            ("pending_dropped_total", "counter", "Kept notifications lost (drop-pending)", get(&self.pending_dropped)),
            ("ws_publish_requests_total", "counter", "Publish requests over WebSocket", get(&self.ws_publish_requests)),
            ("reminders_scheduled_total", "counter", "Reminders scheduled", get(&self.reminders_scheduled)),
            ("reminders_fired_total", "counter", "Reminders fired", get(&self.reminders_fired)),
            ("reminders_late_total", "counter", "Reminders fired late", get(&self.reminders_late)),
            ("reminders_lost_total", "counter", "Reminders claimed but not published", get(&self.reminders_lost)),
        ];
        let mut out = String::with_capacity(4096);
        for (name, kind, help, value) in counters {
            let _ = writeln!(out, "# HELP loadgen_target_{name} {help}.");
            let _ = writeln!(out, "# TYPE loadgen_target_{name} {kind}");
            let _ = writeln!(out, "loadgen_target_{name}{{worker=\"{worker}\"}} {value}");
        }
        self.reminder_lateness.render(
            &mut out,
            "reminder_lateness_seconds",
            "Reminder lateness, fire time minus due time",
            worker,
        );
        out
    }

    /// Whether the Redis subscriber connection is up.
    pub fn redis_up(&self) -> bool {
        self.redis_connected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_prometheus_text() {
        let m = Metrics::default();
        Metrics::add(&m.delivered, 7);
        m.queue_depth(3);
        m.queue_depth(2);
        let text = m.render(4);
        assert!(text.contains("# TYPE loadgen_target_messages_delivered_total counter\n"));
        assert!(text.contains("loadgen_target_messages_delivered_total{worker=\"4\"} 7\n"));
        assert!(text.contains("loadgen_target_queue_depth_max{worker=\"4\"} 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let sum = series.contains("_sum{");
            assert!(series.starts_with("loadgen_target_") && (sum || value.parse::<u64>().is_ok()), "{line}");
        }
        m.reminder_lateness.observe(800);
        m.reminder_lateness.observe(30_000);
        m.reminder_lateness.observe(60_000_000);
        let text = m.render(0);
        let series = |s: &str| text.lines().find(|l| l.starts_with(s)).unwrap_or_else(|| panic!("{s}")).to_string();
        let bucket =
            |le: &str| series(&format!("loadgen_target_reminder_lateness_seconds_bucket{{worker=\"0\",le=\"{le}\"}}"));
        assert!(bucket("0.001").ends_with(" 1"));
        assert!(bucket("0.025").ends_with(" 1"));
        assert!(bucket("0.05").ends_with(" 2"));
        assert!(bucket("10").ends_with(" 2"));
        assert!(bucket("+Inf").ends_with(" 3"));
        assert!(series("loadgen_target_reminder_lateness_seconds_count").ends_with(" 3"));
        assert!(series("loadgen_target_reminder_lateness_seconds_sum").ends_with(" 60.0308"));
    }
}
