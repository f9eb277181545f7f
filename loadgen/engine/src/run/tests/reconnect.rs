//! Reconnects: dropped connections come back into their own slots under the policy's
//! backoff, their time to recover is recorded, and nothing leaks (every slot free at
//! the end, every connection open again before the hold ends).

use std::time::Duration;

use super::accounting::Misbehaviour;
use super::{Mode, TestServer, config, go};
use crate::run::{Jitter, ReconnectPolicy, Traffic};
use crate::stats::Metric;
use std::time::Instant;

fn policy(limit: Option<u32>) -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        limit,
        jitter: Jitter::Full,
    }
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
    cfg.reconnect = Some(ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(40),
        limit: Some(3),
        jitter: Jitter::Full,
    });
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

/// A server of notifications on one stream that closes every connection after a
/// burst: it greets with the instance that holds the connection (`{"node":…}`), then
/// sends [`Resume::BURST`] envelopes numbered from one past the client's `since=`
/// (from 0 without it), or, without `replay`, [`Resume::GAP`] numbers later (what was
/// published while the client was away, not replayed), then closes with 1001.
#[derive(Clone, Copy, Debug)]
pub(super) struct Resume {
    /// Pick up where the client's `since=` says it left off.
    pub replay: bool,
    /// Every connection on one instance (else each upgrade on an instance of its own).
    pub sticky: bool,
}

impl Resume {
    const BURST: u64 = 5;
    const GAP: u64 = 3;
}

/// Request targets the resume server saw (path and query).
static RESUME_PATHS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub(super) fn serve_resume(
    stream: &mut impl super::ServerStream,
    enc: &mut loadgen_proto::encoder::Encoder,
    head: &str,
    r: Resume,
    upgrade: u64,
) {
    use loadgen_proto::encoder::MessageKind;
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    let since = path.split(['?', '&']).find_map(|p| p.strip_prefix("since=")).map(|v| v.parse::<u64>().unwrap());
    RESUME_PATHS.lock().unwrap().push(path);
    let first = match since {
        None => 0,
        Some(s) if r.replay => s + 1,
        Some(s) => s + 1 + Resume::GAP,
    };
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let node = if r.sticky { 0 } else { upgrade };
    let mut rng = <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(upgrade);
    let mut out = Vec::new();
    let hello = format!(r#"{{"type":"hello","node":"n{node}"}}"#);
    enc.message(&mut out, MessageKind::Text, hello.as_bytes(), &mut rng).unwrap();
    for seq in first..first + Resume::BURST {
        let text = format!(
            r#"{{"lgprobe":1,"channel":9,"seq":{seq},"sent_us":{now_us},"sender":9,"node":"n{node}","body":"bed 12"}}"#
        );
        enc.message(&mut out, MessageKind::Text, text.as_bytes(), &mut rng).unwrap();
    }
    enc.close(&mut out, Some(1001), "", &mut rng).unwrap();
    if stream.write_all(&out).is_ok() {
        // The client's close reply (or its FIN), then the end.
        let mut buf = [0u8; 256];
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until && !matches!(stream.read(&mut buf), Ok(0) | Err(_)) {}
    }
}

/// Runs 2 connections that reconnect into the resume server at `path` (its marker).
fn resume_run(r: Resume, path: &str) -> (crate::stats::Counters, Vec<String>) {
    let server = TestServer::start(Mode::Resume(r));
    let mut cfg = config(&server, 2, 900, Traffic::Idle);
    cfg.targets[0].path = path.into();
    cfg.reconnect = Some(ReconnectPolicy {
        initial: Duration::from_millis(30),
        max: Duration::from_millis(60),
        limit: None,
        jitter: Jitter::Full,
    });
    cfg.server_id = Some(crate::server_id::ServerIdPath::new("/node").unwrap());
    let stats = go(&cfg).stats;
    let marker = path.split('?').next().unwrap();
    let seen = RESUME_PATHS.lock().unwrap().iter().filter(|p| p.split('?').next() == Some(marker)).cloned().collect();
    (stats.totals, seen)
}

#[test]
fn reconnects_carry_the_highest_number_seen_and_a_replay_leaves_no_gap() {
    let (t, paths) = resume_run(Resume { replay: true, sticky: true }, "/resume-a?c={i}&since={since}");
    assert!(t.reconnected >= 4, "connections cycled: {t:?}");
    // The first connect has seen nothing: no since. Each reconnect says where the
    // previous connection left off: 5 per connection so far, minus one.
    for c in 0..2 {
        let mine: Vec<&String> = paths.iter().filter(|p| p.contains(&format!("c={c}"))).collect();
        assert_eq!(mine[0], &format!("/resume-a?c={c}"), "{mine:?}");
        for (k, p) in mine.iter().enumerate().skip(1) {
            assert_eq!(**p, format!("/resume-a?c={c}&since={}", 5 * k as u64 - 1), "{mine:?}");
        }
    }
    assert_eq!((t.lost, t.duplicated, t.reordered), (0, 0, 0), "the replay filled every gap: {t:?}");
    assert!(t.pushes_received >= 5 * (t.established - 2), "{t:?}");
    assert_eq!((t.reconnected_same_server, t.reconnected_other_server), (t.reconnected, 0), "{t:?}");
}

#[test]
fn a_gap_across_a_reconnect_is_lost_and_another_instance_is_counted() {
    let (t, paths) = resume_run(Resume { replay: false, sticky: false }, "/resume-b?c={i}&since={since}");
    // Each upgrade the server read was an attempt; one still in flight at the end
    // never became established.
    let upgrades = paths.len() as u64;
    assert!(t.reconnected >= 4 && (t.established..=t.attempted).contains(&upgrades), "{t:?} {paths:?}");
    // Every reconnect that heard its burst jumped 3 numbers: lost, though each
    // connection's own numbers arrived in order.
    assert!(t.lost > 0 && t.lost % Resume::GAP == 0, "{t:?}");
    assert!(t.lost <= Resume::GAP * t.reconnected, "{t:?}");
    assert_eq!(t.duplicated + t.reordered, 0, "{t:?}");
    assert_eq!((t.reconnected_same_server, t.reconnected_other_server), (0, t.reconnected), "{t:?}");
}
