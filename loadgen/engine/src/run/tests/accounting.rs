//! Numbers a user can trust, against servers that misbehave on purpose: every message
//! accounted (answered, late, unanswered, not sent), sequence checks (lost, duplicated,
//! reordered), drops by cause and close code, refusals with `Retry-After`, the closed
//! loop's coordinated-omission correction, push delivery from intended publish times,
//! and the default verdict.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loadgen_proto::encoder::{Encoder, MessageKind};

use super::{Mode, TestServer, config, go};
use crate::payload::Probe;
use crate::report::{Outcome, Verdict, default_checks};
use crate::run::{MessageRate, Traffic};
use crate::stats::Metric;

/// What a misbehaving test server does after the upgrade (all off by default).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Misbehaviour {
    /// Refuse the upgrade with (status, Retry-After seconds).
    pub refuse: Option<(u16, u64)>,
    /// Stall (stop reading and writing) for `stall_ms` every `stall_every_ms`.
    pub stall_every_ms: u64,
    pub stall_ms: u64,
    /// Reset the connection this long after the upgrade.
    pub reset_after_ms: u64,
    /// Only the first this many upgrades are reset (0: all).
    pub reset_first: u64,
    /// Send a close frame with `close_code` this long after the upgrade.
    pub close_after_ms: u64,
    pub close_code: u16,
    /// Echo nothing.
    pub no_echo: bool,
    /// Answer no ping.
    pub no_pong: bool,
    /// Drop every n-th echo.
    pub drop_every: u64,
    /// Echo every message twice.
    pub echo_twice: bool,
    /// Push probe messages at this rate (per connection), stamped with their intended
    /// publish time; every `push_skip_every`-th sequence number is skipped (lost).
    pub push_per_s: u64,
    pub push_skip_every: u64,
}

/// What the server loop does next.
pub(super) enum Tick {
    Go,
    Reset,
    Closed,
}

/// A connection's fault state.
pub(super) struct Faults {
    m: Misbehaviour,
    upgraded: Instant,
    upgraded_unix_us: u64,
    next_stall: Instant,
    pushed: u64,
}

impl Faults {
    /// The faults of the `upgrade`-th connection (from 1).
    pub(super) fn new(mut m: Misbehaviour, upgrade: u64) -> Self {
        if m.reset_first > 0 && upgrade > m.reset_first {
            m.reset_after_ms = 0;
        }
        let now = Instant::now();
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        Self { m, upgraded: now, upgraded_unix_us: unix, next_stall: now + ms(m.stall_every_ms), pushed: 0 }
    }

    /// Time-driven faults; queues pushes (and a close) into `out`.
    pub(super) fn tick(&mut self, enc: &mut Encoder, out: &mut Vec<u8>, rng: &mut impl rand_core::RngCore) -> Tick {
        let now = Instant::now();
        let since = now - self.upgraded;
        if self.m.stall_every_ms > 0 && now >= self.next_stall {
            std::thread::sleep(ms(self.m.stall_ms));
            self.next_stall += ms(self.m.stall_every_ms);
        }
        if self.m.reset_after_ms > 0 && since >= ms(self.m.reset_after_ms) {
            return Tick::Reset;
        }
        if self.m.close_after_ms > 0 && since >= ms(self.m.close_after_ms) {
            enc.close(out, Some(self.m.close_code), "", rng).unwrap();
            return Tick::Closed;
        }
        if self.m.push_per_s > 0 {
            let due = (since.as_secs_f64() * self.m.push_per_s as f64) as u64;
            let mut payload = Vec::new();
            while self.pushed < due {
                let seq = self.pushed;
                self.pushed += 1;
                if self.m.push_skip_every > 0 && seq % self.m.push_skip_every == self.m.push_skip_every - 1 {
                    continue;
                }
                let intended = self.upgraded_unix_us + seq * 1_000_000 / self.m.push_per_s;
                Probe { channel: 3, seq, sent_unix_us: intended, sender: 77 }.encode_into(64, &mut payload);
                enc.message(out, MessageKind::Binary, &payload, rng).unwrap();
            }
        }
        Tick::Go
    }

    /// Whether pings are answered.
    pub(super) fn pongs(&self) -> bool {
        !self.m.no_pong
    }

    /// How many copies of message number `count` (from 1) to echo.
    pub(super) fn echoes(&mut self, count: u64) -> usize {
        if self.m.no_echo || (self.m.drop_every > 0 && count.is_multiple_of(self.m.drop_every)) {
            0
        } else if self.m.echo_twice {
            2
        } else {
            1
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn verdict(stats: &crate::stats::RunStats) -> Verdict {
    Verdict::new(stats, default_checks(stats))
}

fn failed_checks(v: &Verdict) -> Vec<String> {
    v.checks.iter().filter(|c| !c.passed).map(|c| c.expr.clone()).collect()
}

#[test]
fn a_healthy_echo_run_accounts_every_message_and_passes() {
    let server = TestServer::start(Mode::Echo);
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(50.0) };
    let m = go(&config(&server, 8, 800, traffic)).stats;
    let t = &m.totals;
    assert!(t.messages_sent > 100, "{t:?}");
    assert_eq!((t.answered, t.late, t.unanswered, t.lost, t.duplicated), (t.messages_sent, 0, 0, 0, 0), "{t:?}");
    assert_eq!((t.dropped, t.open_at_end), (0, 8), "{t:?}");
    let v = verdict(&m);
    assert!(v.checks.iter().all(|c| c.passed), "{v:?}");
}

#[test]
fn a_server_that_never_answers_leaves_every_message_unanswered_and_fails() {
    let server = TestServer::start(Mode::Misbehave(Misbehaviour { no_echo: true, ..Default::default() }));
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::Total(100.0) };
    let m = go(&config(&server, 4, 800, traffic)).stats;
    let t = &m.totals;
    assert!(t.messages_sent >= 50, "{t:?}");
    assert_eq!((t.answered, t.unanswered), (0, t.messages_sent), "{t:?}");
    assert_eq!(failed_checks(&verdict(&m)), ["messages.unanswered == 0"]);

    // Closed loop: the reply timeout moves each connection on to its next message.
    let mut cfg = config(&server, 2, 1_000, Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop });
    cfg.reply_timeout = Duration::from_millis(200);
    let m = go(&cfg).stats;
    let t = &m.totals;
    assert!((4..=12).contains(&t.reply_timeouts), "≈ 2 × 1 s / 200 ms: {t:?}");
    // Each connection sends once more after each timeout, except after one that fires
    // once the ramp-down has begun.
    assert!(
        (t.reply_timeouts + 1..=t.reply_timeouts + 2).contains(&t.messages_sent),
        "the loop went on after each timeout: {t:?}"
    );
    assert_eq!(t.unanswered, t.messages_sent, "{t:?}");
}

#[test]
fn connections_reset_after_the_upgrade_count_as_dropped_and_fail_the_run() {
    let m = Misbehaviour { reset_after_ms: 300, ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let stats = go(&config(&server, 10, 1_200, Traffic::Idle)).stats;
    let t = &stats.totals;
    assert_eq!((t.established, t.failed, t.dropped, t.open_at_end), (10, 0, 10, 0), "{t:?}");
    assert_eq!(stats.drops.get("reset").copied(), Some(10), "{:?}", stats.drops);
    assert_eq!(failed_checks(&verdict(&stats)), ["connections.dropped == 0"]);
}

#[test]
fn server_closes_are_dropped_with_their_close_code() {
    let m = Misbehaviour { close_after_ms: 200, close_code: 1011, ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let stats = go(&config(&server, 6, 1_000, Traffic::Idle)).stats;
    assert_eq!((stats.totals.dropped, stats.drops.get("server_close").copied()), (6, Some(6)), "{:?}", stats.drops);
    assert_eq!(stats.close_codes.get(&1011).copied(), Some(6), "{:?}", stats.close_codes);
}

#[test]
fn refusals_keep_their_status_and_retry_after() {
    let m = Misbehaviour { refuse: Some((429, 7)), ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let stats = go(&config(&server, 8, 300, Traffic::Idle)).stats;
    let r = stats.refusals.get(&429).copied().expect("429 counted");
    assert_eq!((r.count, r.retry_after_count, r.retry_after_min_s, r.retry_after_max_s), (8, 8, 7, 7));
    let v = verdict(&stats);
    assert_eq!(failed_checks(&v), ["connections.failed == 0"]);
    assert!(v.failures().next().unwrap().contains("HTTP 429 8"), "{v:?}");
}

#[test]
fn dropped_and_duplicated_echoes_are_told_apart() {
    let traffic = Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(100.0) };
    let server = TestServer::start(Mode::Misbehave(Misbehaviour { drop_every: 10, ..Default::default() }));
    let t = go(&config(&server, 1, 1_000, traffic)).stats.totals;
    // Every 10th message is never echoed: lost where a later echo came, unanswered all.
    assert!(t.messages_sent >= 80, "{t:?}");
    assert_eq!(t.unanswered, t.messages_sent / 10, "{t:?}");
    assert!(t.lost >= t.unanswered - 1 && t.lost <= t.unanswered, "{t:?}");
    assert_eq!((t.duplicated, t.answered + t.unanswered), (0, t.messages_sent), "{t:?}");

    let server = TestServer::start(Mode::Misbehave(Misbehaviour { echo_twice: true, ..Default::default() }));
    let t = go(&config(&server, 1, 600, traffic)).stats.totals;
    assert_eq!((t.answered, t.duplicated, t.unanswered, t.lost), (t.messages_sent, t.messages_sent, 0, 0), "{t:?}");
}

#[test]
fn late_echoes_are_late_not_answered() {
    let server = TestServer::start(Mode::StallOnce { after: 10, ms: 500 });
    let mut cfg = config(&server, 1, 1_200, Traffic::Echo { message_size: 64, rate: MessageRate::Total(100.0) });
    cfg.workers = 1;
    cfg.reply_timeout = Duration::from_millis(200);
    let m = go(&cfg).stats;
    let t = &m.totals;
    assert!(t.late >= 20, "messages due in the first 300 ms of the stall come back late: {t:?}");
    assert_eq!((t.answered + t.late, t.unanswered), (t.messages_sent, 0), "{t:?}");
    assert_eq!(failed_checks(&verdict(&m)), ["messages.late == 0"]);
}

#[test]
fn a_closed_loop_stall_shows_in_the_corrected_round_trip() {
    // Each connection's server thread stalls 200 ms every 500 ms. A closed loop has one
    // message in flight, so each stall is one slow sample among thousands: the raw p99
    // hides it; the corrected histogram counts the sends the stall held back.
    let m = Misbehaviour { stall_every_ms: 500, stall_ms: 200, ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let out = go(&config(&server, 2, 1_600, Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop }));
    let stats = &out.stats;
    assert_eq!(stats.closed_loop_think_us, Some(0));
    let raw = stats.histogram(Metric::MessageRtt);
    let corrected = stats.corrected_rtt().expect("closed loop");
    assert!(raw.max() >= 150_000, "the stall is in the raw samples: max {} µs", raw.max());
    assert!(corrected.value_at_quantile(0.99) >= 100_000, "corrected p99 {} µs", corrected.value_at_quantile(0.99));
    assert!(
        raw.value_at_quantile(0.99) * 4 < corrected.value_at_quantile(0.99),
        "raw p99 {} µs vs corrected {} µs",
        raw.value_at_quantile(0.99),
        corrected.value_at_quantile(0.99)
    );
    let l = stats.latencies();
    assert_eq!(l.message_rtt_corrected.map(|p| p.count), Some(corrected.len()));
}

#[test]
fn pushes_are_timed_from_their_intended_publish_time_and_gaps_are_lost() {
    let m = Misbehaviour { push_per_s: 200, push_skip_every: 10, ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let stats = go(&config(&server, 2, 1_000, Traffic::Idle)).stats;
    let t = &stats.totals;
    assert!(t.pushes_received >= 200, "{t:?}");
    let delivery = stats.histogram(Metric::Delivery);
    assert_eq!(delivery.len(), t.pushes_received);
    // The server sends in batches every ≤ 50 ms (its read timeout): delivery includes it.
    assert!(delivery.value_at_quantile(0.5) < 100_000, "p50 {} µs", delivery.value_at_quantile(0.5));
    // One in ten sequence numbers never sent; the tail of each stream has no later
    // number to reveal its gap.
    let expected = t.pushes_received / 9;
    assert!(t.lost + 2 >= expected && t.lost <= expected + 2, "lost {} vs ≈ {expected}: {t:?}", t.lost);
    assert_eq!((t.duplicated, t.reordered, t.unanswered), (0, 0, 0), "{t:?}");
}

#[test]
fn a_light_run_is_never_saturated() {
    let server = TestServer::start(Mode::Echo);
    let out = go(&config(&server, 10, 1_500, Traffic::Echo { message_size: 64, rate: MessageRate::Total(10.0) }));
    let s = &out.stats;
    assert!(s.saturation_reasons().is_empty(), "{:?}", s.saturation_reasons());
    assert_ne!(verdict(s).outcome, Outcome::Invalid);
}
