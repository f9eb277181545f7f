//! Server-side programs on virtual time: events in, actions out, no sockets, no clock.

use std::time::Duration;

use super::*;

const MS: u64 = 1_000_000;

fn grace() -> Duration {
    Duration::from_secs(1)
}

#[test]
fn modes_reply_as_named_and_accept_every_upgrade() {
    for (reply, action) in
        [(Reply::Echo, MessageAction::Echo), (Reply::Sink, MessageAction::Keep), (Reply::Push, MessageAction::Keep)]
    {
        let p = ServeProgram::new(reply, grace());
        assert_eq!(p.upgrade, UpgradeAnswer::Accept);
        assert_eq!((p.message(0), p.message(u64::MAX)), (action, action), "{reply:?}");
        assert!(!p.draws() && !p.timed());
        let mut out = Vec::new();
        p.opened(5 * MS, &mut out);
        assert!(out.is_empty(), "no faults, no timers: {out:?}");
    }
}

#[test]
fn dropped_echoes_follow_the_draws_and_only_in_echo_mode() {
    let p = ServeProgram::new(Reply::Echo, grace()).dropping_echoes(25.0);
    assert!(p.draws());
    let quarter = u64::MAX / 4;
    assert_eq!(p.message(quarter - 1_000), MessageAction::Drop);
    assert_eq!(p.message(quarter + 1_000), MessageAction::Echo);
    // Draws spread evenly: a quarter dropped.
    let dropped = (0..1_000u64).filter(|k| p.message(k.wrapping_mul(u64::MAX / 1_000)) == MessageAction::Drop).count();
    assert!((245..=255).contains(&dropped), "{dropped}");
    let all = ServeProgram::new(Reply::Echo, grace()).dropping_echoes(100.0);
    assert_eq!(all.message(u64::MAX), MessageAction::Drop, "100 % drops even the largest draw");
    let none = ServeProgram::new(Reply::Echo, grace()).dropping_echoes(0.0);
    assert_eq!(none.message(0), MessageAction::Echo, "0 % drops nothing");
    let sink = ServeProgram::new(Reply::Sink, grace()).dropping_echoes(50.0);
    assert!(!sink.draws(), "a sink has no echoes to drop");
    assert_eq!(sink.message(0), MessageAction::Keep);
}

#[test]
fn close_after_closes_with_going_away_then_aborts_an_unanswered_close() {
    let mut p = ServeProgram::new(Reply::Sink, grace());
    p.close_after = Some(Duration::from_millis(300));
    assert!(p.timed());
    let mut out = Vec::new();
    p.opened(10 * MS, &mut out);
    assert_eq!(out, [ServeAction::Arm { kind: ServeTimer::Close, at_ns: 310 * MS }]);
    out.clear();
    p.timer(ServeTimer::Close, 311 * MS, &mut out);
    assert_eq!(
        out,
        [ServeAction::Close { code: GOING_AWAY }, ServeAction::Arm { kind: ServeTimer::Grace, at_ns: 1_311 * MS }],
        "the grace is counted from when the close went out"
    );
    out.clear();
    p.timer(ServeTimer::Grace, 1_311 * MS, &mut out);
    assert_eq!(out, [ServeAction::Abort]);
}

#[test]
fn reset_after_and_close_after_both_arm_from_the_open() {
    let mut p = ServeProgram::new(Reply::Echo, grace());
    p.close_after = Some(Duration::from_secs(2));
    p.reset_after = Some(Duration::from_secs(1));
    let mut out = Vec::new();
    p.opened(0, &mut out);
    assert_eq!(
        out,
        [
            ServeAction::Arm { kind: ServeTimer::Close, at_ns: 2_000 * MS },
            ServeAction::Arm { kind: ServeTimer::Reset, at_ns: 1_000 * MS }
        ]
    );
    out.clear();
    p.timer(ServeTimer::Reset, 1_000 * MS, &mut out);
    assert_eq!(out, [ServeAction::Reset]);
}

#[test]
fn stalls_come_every_period_and_a_missed_period_is_not_stalled_twice() {
    let mut s = ThreadSchedule::default().stalling(Duration::from_millis(100), Duration::from_millis(500));
    assert_eq!(s.next_deadline(), Some(500 * MS));
    assert_eq!(s.due(499 * MS), None);
    assert_eq!(s.due(500 * MS), Some(ThreadAction::Stall { until_ns: 600 * MS }));
    assert_eq!(s.due(600 * MS), None, "one stall a period");
    assert_eq!(s.next_deadline(), Some(1_000 * MS));
    // The thread was away from 1.0 s to 2.3 s: one stall, from when it came back, and
    // the next one at the first period boundary after that stall ends.
    assert_eq!(s.due(2_300 * MS), Some(ThreadAction::Stall { until_ns: 2_400 * MS }));
    assert_eq!(s.next_deadline(), Some(2_500 * MS));
    assert_eq!(s.due(2_400 * MS), None);
}

#[test]
fn close_all_and_reset_all_fire_once_at_their_times() {
    let mut s =
        ThreadSchedule::default().closing_all_at(Duration::from_secs(3)).resetting_all_at(Duration::from_secs(1));
    assert_eq!(s.next_deadline(), Some(1_000 * MS));
    assert_eq!(s.due(999 * MS), None);
    assert_eq!(s.due(1_000 * MS), Some(ThreadAction::ResetAll));
    assert_eq!(s.due(1_001 * MS), None, "once");
    assert_eq!(s.next_deadline(), Some(3_000 * MS));
    // Late: both due at once are handed out one by one.
    let mut late =
        ThreadSchedule::default().closing_all_at(Duration::from_secs(3)).resetting_all_at(Duration::from_secs(1));
    assert_eq!(late.due(5_000 * MS), Some(ThreadAction::CloseAll));
    assert_eq!(late.due(5_000 * MS), Some(ThreadAction::ResetAll));
    assert_eq!((late.due(5_000 * MS), late.next_deadline()), (None, None));
}

#[test]
fn pushes_carry_their_intended_times_and_a_stall_releases_the_backlog() {
    let mut p = PushSchedule::new(100.0, 1_000 * MS);
    assert_eq!(p.next_due(1_000 * MS), Some(1_000 * MS), "the first is due at the start");
    assert_eq!(p.next_due(1_005 * MS), None);
    assert_eq!(p.next_deadline(), 1_010 * MS);
    // A 200 ms stall: the 20 messages that fell due go at once, each with its own time.
    let mut stamps = Vec::new();
    while let Some(at) = p.next_due(1_205 * MS) {
        stamps.push(at);
    }
    assert_eq!(stamps.len(), 20);
    assert_eq!((stamps[0], stamps[19]), (1_010 * MS, 1_200 * MS));
    assert!(stamps.windows(2).all(|w| w[1] - w[0] == 10 * MS), "intended times, not send times");
    assert_eq!(p.sent(), 21);
    p.restart(5_000 * MS);
    assert_eq!((p.sent(), p.next_deadline()), (0, 5_000 * MS));
}
