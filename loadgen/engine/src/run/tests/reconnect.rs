//! Reconnects: dropped connections come back into their own slots under the policy's
//! backoff, their time to recover is recorded, and nothing leaks (every slot free at
//! the end, every connection open again before the hold ends).

use std::time::Duration;

use super::accounting::Misbehaviour;
use super::{Mode, TestServer, config, go};
use crate::run::{ReconnectPolicy, Traffic};
use crate::stats::Metric;

fn policy(limit: Option<u32>) -> ReconnectPolicy {
    ReconnectPolicy { initial: Duration::from_millis(100), max: Duration::from_millis(400), limit }
}

#[test]
fn connections_reset_at_once_all_come_back_and_their_recovery_is_timed() {
    // The first 40 upgrades are reset 300 ms after opening; their reconnects are not.
    let m = Misbehaviour { reset_after_ms: 300, reset_first: 40, ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let mut cfg = config(&server, 40, 1_500, Traffic::Idle);
    cfg.reconnect = Some(policy(None));
    let stats = go(&cfg).stats;
    let t = &stats.totals;
    assert_eq!(t.dropped, 40, "{t:?}");
    assert_eq!((t.reconnect_attempts, t.reconnected, t.reconnect_gave_up), (40, 40, 0), "{t:?}");
    assert_eq!((t.attempted, t.established, t.failed), (80, 80, 0), "{t:?}");
    assert_eq!(t.open_at_end, 40, "every connection is open again when the hold ends: {t:?}");
    let recover = stats.histogram(Metric::Recover);
    assert_eq!(recover.len(), 40);
    // Full jitter over a 100 ms ceiling, plus the connect and upgrade.
    assert!(recover.max() < 300_000, "recover max {} µs", recover.max());
    assert!(recover.min() < recover.max(), "delays are spread, not in lockstep");
    assert!(!stats.errors.contains_key("reconnect_pending_at_end"), "{:?}", stats.errors);
    assert_eq!(server.upgrades.load(std::sync::atomic::Ordering::Relaxed), 80, "the server saw every reconnect");
}

#[test]
fn connections_dropped_again_after_coming_back_keep_cycling_under_the_policy() {
    // Every connection is reset 200 ms after opening, reconnects too: each drop starts
    // a new cycle, until the hold ends.
    let m = Misbehaviour { reset_after_ms: 200, ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let mut cfg = config(&server, 4, 1_500, Traffic::Idle);
    cfg.reconnect = Some(policy(None));
    let t = go(&cfg).stats.totals;
    assert!(t.dropped >= 8, "connections were dropped again after coming back: {t:?}");
    assert_eq!(t.established, t.attempted, "{t:?}");
    assert_eq!(t.reconnect_attempts, t.attempted - 4, "{t:?}");
}

#[test]
fn reconnects_give_up_at_the_limit_when_the_target_goes_away() {
    // Reset after 200 ms; the test server stops accepting (its listener thread ends)
    // once stopped, so every reconnect fails: 3 attempts each, then the connection
    // gives up.
    let m = Misbehaviour { reset_after_ms: 200, reset_first: 3, ..Default::default() };
    let server = TestServer::start(Mode::Misbehave(m));
    let mut cfg = config(&server, 3, 1_500, Traffic::Idle);
    cfg.reconnect =
        Some(ReconnectPolicy { initial: Duration::from_millis(20), max: Duration::from_millis(40), limit: Some(3) });
    let stop = server.stop.clone();
    let t = std::thread::scope(|s| {
        let run = s.spawn(|| go(&cfg).stats.totals);
        std::thread::sleep(Duration::from_millis(150));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        run.join().unwrap()
    });
    assert_eq!((t.established, t.dropped), (3, 3), "{t:?}");
    assert_eq!((t.reconnect_attempts, t.reconnect_gave_up, t.reconnected), (9, 3, 0), "{t:?}");
    assert_eq!(t.failed, 9, "every reconnect attempt failed: {t:?}");
}
