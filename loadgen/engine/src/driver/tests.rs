//! The driver on virtual time: events in, actions out; no sockets, no clock.

use std::time::Duration;

use super::*;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A driver and its program, with the actions of the last event.
struct Harness {
    p: Program,
    d: Driver,
    out: Vec<Action>,
}

impl Harness {
    fn new(steps: Vec<Step>) -> Self {
        let p = Program { steps, reconnect: None };
        p.validate().expect("valid program");
        Self { p, d: Driver::new(0, 0), out: Vec::new() }
    }

    fn opened(&mut self, now: u64) -> Vec<Action> {
        self.d.opened(&self.p, now, &mut self.out);
        std::mem::take(&mut self.out)
    }

    fn text(&mut self, t: &str, now: u64) -> Vec<Action> {
        self.d.text(&self.p, t, now, &mut self.out);
        std::mem::take(&mut self.out)
    }

    fn answered(&mut self, now: u64) -> Vec<Action> {
        self.d.answered(&self.p, now, &mut self.out);
        std::mem::take(&mut self.out)
    }

    fn timer(&mut self, kind: TimerKind, now: u64) -> Vec<Action> {
        self.d.timer(&self.p, kind, now, &mut self.out);
        std::mem::take(&mut self.out)
    }

    fn pong(&mut self, stamp_us: u64, now: u64) -> Vec<Action> {
        self.d.pong(&self.p, stamp_us, now, &mut self.out);
        std::mem::take(&mut self.out)
    }

    fn freed(&mut self, now: u64, random: u64) -> Vec<Action> {
        self.d.freed(&self.p, now, random, &mut self.out);
        std::mem::take(&mut self.out)
    }
}

fn arm(timer: TimerKind, at_ns: u64) -> Action {
    Action::Arm { timer, at_ns }
}

fn probe(intended_ns: u64, scheduled: bool) -> Action {
    Action::SendProbe { intended_ns, scheduled }
}

#[test]
fn on_open_exchange_waits_for_its_pattern_then_pings_and_paced_traffic_start() {
    let mut h = Harness::new(vec![
        Step::SendText("auth".into()),
        Step::WaitFor { pattern: "welcome".into(), timeout: None },
        Step::SendText("subscribe".into()),
        Step::Ready,
        Step::Ping { interval: ms(1_000), timeout: None },
        Step::Traffic(Traffic::Paced { interval: ms(100) }),
    ]);
    assert_eq!(h.opened(10 * MS), vec![Action::SendText { step: 0 }], "waits without a deadline: no timer");
    assert!(!h.d.is_ready());
    assert_eq!(h.text("nope", 11 * MS), vec![]);
    let acts = h.text("{\"welcome\":1}", 20 * MS);
    assert_eq!(
        acts,
        vec![
            Action::SendText { step: 2 },
            Action::Ready { timed: true },
            arm(TimerKind::Ping, 20 * MS),
            arm(TimerKind::Send, 20 * MS),
        ]
    );
    assert!(h.d.is_ready());
    assert_eq!(h.text("welcome again", 21 * MS), vec![], "a matched wait is done");
    // Fired late, a paced send keeps its intended time and the schedule does not slip.
    assert_eq!(h.timer(TimerKind::Send, 25 * MS), vec![probe(20 * MS, true), arm(TimerKind::Send, 120 * MS)]);
    assert_eq!(h.timer(TimerKind::Send, 190 * MS), vec![probe(120 * MS, true), arm(TimerKind::Send, 220 * MS)]);
    assert_eq!(
        h.timer(TimerKind::Ping, 20 * MS),
        vec![Action::SendPing { intended_ns: 20 * MS }, arm(TimerKind::Ping, 1_020 * MS)]
    );
}

#[test]
fn connections_spread_their_first_sends_and_pings_over_one_interval() {
    let p = Program {
        steps: vec![
            Step::Ready,
            Step::Ping { interval: ms(1_000), timeout: None },
            Step::Traffic(Traffic::Paced { interval: ms(50) }),
        ],
        reconnect: None,
    };
    let firsts: Vec<u64> = (0..64)
        .map(|i| {
            let mut d = Driver::new(0, i);
            let mut out = Vec::new();
            d.opened(&p, 0, &mut out);
            assert_eq!(out[0], Action::Ready { timed: false }, "no step before Ready: not timed");
            match out[2] {
                Action::Arm { timer: TimerKind::Send, at_ns } => at_ns,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(firsts.iter().all(|&t| t < 50 * MS));
    let mut distinct = firsts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 32, "not in lockstep: {} distinct first sends of 64", distinct.len());
}

#[test]
fn closed_loop_sends_on_each_reply_and_moves_on_when_a_reply_is_overdue() {
    let loop_ = Traffic::ClosedLoop { think: Duration::ZERO, reply_timeout: Some(ms(5_000)) };
    let mut h = Harness::new(vec![Step::Ready, Step::Traffic(loop_)]);
    assert_eq!(
        h.opened(0),
        vec![Action::Ready { timed: false }, probe(0, false), arm(TimerKind::Reply, 5 * S)],
        "the first message at once, with its reply deadline"
    );
    assert!(h.d.awaiting_reply());
    // The reply: the next message at once; the reply timer already in the wheel serves.
    assert_eq!(h.answered(3 * MS), vec![probe(3 * MS, false)]);
    assert_eq!(h.answered(4 * MS), vec![probe(4 * MS, false)]);
    // The wheel's timer is for the first message: it re-arms for the one in flight.
    assert_eq!(h.timer(TimerKind::Reply, 5 * S), vec![arm(TimerKind::Reply, 5 * S + 4 * MS)]);
    assert_eq!(
        h.timer(TimerKind::Reply, 5 * S + 4 * MS),
        vec![Action::ReplyTimedOut, probe(5 * S + 4 * MS, false), arm(TimerKind::Reply, 10 * S + 4 * MS)],
        "overdue: counted, and the loop goes on"
    );
    // The late reply of the timed-out message does not start a second loop.
    assert!(h.d.awaiting_reply());
}

#[test]
fn think_time_delays_the_next_message_which_is_timed_from_when_it_was_due() {
    let loop_ = Traffic::ClosedLoop { think: ms(200), reply_timeout: None };
    let mut h = Harness::new(vec![Step::Ready, Step::Traffic(loop_)]);
    assert_eq!(h.opened(0), vec![Action::Ready { timed: false }, probe(0, false)], "no reply deadline asked");
    assert_eq!(h.answered(10 * MS), vec![arm(TimerKind::Send, 210 * MS)]);
    assert_eq!(h.timer(TimerKind::Send, 230 * MS), vec![probe(210 * MS, true)], "late by 20 ms: schedule lag");
    assert_eq!(h.timer(TimerKind::Reply, 999 * S), vec![], "no reply timeout in this program");
}

#[test]
fn a_wait_with_a_deadline_fails_the_program_and_stale_timers_do_nothing() {
    let mut h = Harness::new(vec![
        Step::WaitFor { pattern: "joined".into(), timeout: Some(ms(500)) },
        Step::Ready,
        Step::WaitFor { pattern: "admitted".into(), timeout: Some(ms(2_000)) },
        Step::Traffic(Traffic::Pool),
    ]);
    assert_eq!(h.opened(0), vec![arm(TimerKind::Step, 500 * MS)]);
    assert_eq!(h.text("joined", 100 * MS), vec![Action::Ready { timed: true }, arm(TimerKind::Step, 2_100 * MS)]);
    // The first wait's timer fires after its step was done: nothing.
    assert_eq!(h.timer(TimerKind::Step, 500 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Step, 2_100 * MS), vec![Action::Fail { error: "wait_timeout" }]);
    assert_eq!(h.text("admitted", 2_200 * MS), vec![], "a failed program is over");
    assert_eq!(h.timer(TimerKind::Send, 3 * S), vec![]);
}

#[test]
fn sleeps_stop_and_resume_reading_then_close_with_a_code() {
    let mut h = Harness::new(vec![
        Step::Ready,
        Step::Traffic(Traffic::Pool),
        Step::Sleep(ms(1_000)),
        Step::StopTraffic,
        Step::StopReading,
        Step::Sleep(ms(3_000)),
        Step::ResumeReading,
        Step::Close { code: 4000 },
    ]);
    assert_eq!(h.opened(0), vec![Action::Ready { timed: false }, Action::JoinPool, arm(TimerKind::Step, S)]);
    assert_eq!(h.timer(TimerKind::Step, S - 1), vec![], "never early");
    assert_eq!(h.timer(TimerKind::Step, S), vec![Action::LeavePool, Action::PauseReading, arm(TimerKind::Step, 4 * S)]);
    assert!(h.d.reading_paused());
    assert_eq!(h.timer(TimerKind::Step, 4 * S + 7), vec![Action::ResumeReading, Action::Close { code: 4000 }]);
    assert!(!h.d.reading_paused());
    assert_eq!(h.timer(TimerKind::Step, 5 * S), vec![]);
}

#[test]
fn traffic_restarted_keeps_one_timer_chain() {
    let paced = Step::Traffic(Traffic::Paced { interval: ms(100) });
    let mut h = Harness::new(vec![
        Step::Ready,
        paced.clone(),
        Step::Sleep(ms(30)),
        Step::StopTraffic,
        Step::Sleep(ms(10)),
        paced,
    ]);
    let _ = h.opened(0);
    let _ = h.timer(TimerKind::Step, 30 * MS);
    // Restarted at 40 ms while the first chain's timer (for 0) is still in the wheel:
    // no second timer.
    assert_eq!(h.timer(TimerKind::Step, 40 * MS), vec![]);
    // That timer now sends the restarted schedule's first message (due at 40 ms).
    assert_eq!(h.timer(TimerKind::Send, 40 * MS), vec![probe(40 * MS, true), arm(TimerKind::Send, 140 * MS)]);
}

#[test]
fn stale_send_timers_wait_for_the_current_schedule() {
    let mut h = Harness::new(vec![Step::Ready, Step::Traffic(Traffic::Paced { interval: ms(100) })]);
    h.d = Driver::new(0, 3);
    let acts = h.opened(0);
    let Action::Arm { at_ns: first, .. } = acts[1] else { panic!("{acts:?}") };
    assert!(first > 0);
    assert_eq!(h.timer(TimerKind::Send, first - 1), vec![arm(TimerKind::Send, first)], "early: re-armed, nothing sent");
    assert_eq!(h.timer(TimerKind::Send, first)[0], probe(first, true));
    assert_eq!(h.answered(first + MS), vec![], "paced traffic awaits no reply");
}

#[test]
fn reconnects_back_off_with_full_jitter_up_to_the_limit_and_time_the_recovery() {
    let policy = ReconnectPolicy { initial: ms(100), max: ms(1_000), limit: Some(3), jitter: Jitter::Full };
    let mut h = Harness::new(vec![Step::SendText("hello".into()), Step::Ready]);
    h.p.reconnect = Some(policy);
    let _ = h.opened(0);
    // Dropped by the target at 2 s; the slot is free at 2.001 s.
    h.d.dropped(&h.p, 2 * S);
    assert!(h.d.is_reconnecting());
    assert_eq!(
        h.freed(2 * S + MS, u64::MAX),
        vec![Action::Reconnect { at_ns: 2 * S + MS + u64::MAX % (100 * MS + 1) }]
    );
    // Two attempts fail (their slots freed again): the ceiling doubles.
    h.d.restart();
    assert_eq!(h.freed(3 * S, 200 * MS), vec![Action::Reconnect { at_ns: 3 * S + 200 * MS }], "ceiling 200 ms");
    h.d.restart();
    assert_eq!(h.freed(4 * S, 400 * MS + 1), vec![Action::Reconnect { at_ns: 4 * S }], "ceiling 400 ms: wraps to 0");
    // The third attempt gets through: the program starts over, ready ends the recovery.
    h.d.restart();
    assert_eq!(
        h.opened(5 * S),
        vec![Action::SendText { step: 0 }, Action::Ready { timed: true }, Action::Recovered { since_ns: 2 * S }]
    );
    assert!(!h.d.is_reconnecting());
    // A new drop starts a new count; past the limit the connection gives up.
    h.d.dropped(&h.p, 9 * S);
    for _ in 0..3 {
        assert!(matches!(h.freed(9 * S, 0)[..], [Action::Reconnect { .. }]));
        h.d.restart();
    }
    assert_eq!(h.freed(10 * S, 0), vec![Action::GaveUp]);
    assert_eq!(h.freed(10 * S, 0), vec![], "gave up once");
}

#[test]
fn without_a_policy_or_a_drop_a_freed_slot_stays_free() {
    let mut h = Harness::new(vec![Step::Ready]);
    let _ = h.opened(0);
    h.d.dropped(&h.p, S);
    assert_eq!(h.freed(S, 7), vec![], "no reconnect policy");
    h.p.reconnect = Some(ReconnectPolicy { initial: ms(10), max: ms(10), limit: None, jitter: Jitter::Full });
    h.d.restart();
    let _ = h.opened(2 * S);
    assert_eq!(h.freed(3 * S, 7), vec![], "closed by loadgen, not dropped");
}

#[test]
fn a_drop_stops_traffic_and_pings() {
    let mut h = Harness::new(vec![
        Step::Ready,
        Step::Ping { interval: ms(100), timeout: None },
        Step::Traffic(Traffic::ClosedLoop { think: ms(5), reply_timeout: Some(ms(50)) }),
    ]);
    let _ = h.opened(0);
    h.d.dropped(&h.p, MS);
    assert_eq!(h.answered(2 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Ping, 100 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Reply, 100 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Send, 100 * MS), vec![]);
}

#[test]
fn programs_are_checked_before_they_run() {
    let bad = |steps| Program { steps, reconnect: None }.validate().unwrap_err();
    assert_eq!(
        bad(vec![Step::Ready, Step::Ping { interval: Duration::ZERO, timeout: None }]),
        ProgramError::ZeroInterval { step: 1 }
    );
    assert_eq!(
        bad(vec![Step::Ready, Step::Traffic(Traffic::Paced { interval: Duration::ZERO })]),
        ProgramError::ZeroInterval { step: 1 }
    );
    assert_eq!(bad(vec![Step::Close { code: 1005 }]), ProgramError::CloseCode { step: 0, code: 1005 });
    assert_eq!(bad(vec![Step::Close { code: 999 }]), ProgramError::CloseCode { step: 0, code: 999 });
    assert_eq!(
        bad(vec![Step::WaitFor { pattern: String::new(), timeout: None }]),
        ProgramError::EmptyPattern { step: 0 }
    );
    assert!(bad(vec![Step::Close { code: 1006 }]).to_string().contains("1006"));
    // Probes go out once a connection is ready: traffic before it would never send.
    assert_eq!(
        bad(vec![Step::SendText("hi".into()), Step::Traffic(Traffic::Paced { interval: Duration::from_millis(5) })]),
        ProgramError::TrafficBeforeReady { step: 1 }
    );
    let ok = vec![Step::Ready, Step::Traffic(Traffic::Paced { interval: Duration::from_millis(5) })];
    assert_eq!(Program { steps: ok, reconnect: None }.validate(), Ok(()));
    for code in [1000, 1001, 3000, 4999] {
        assert_eq!(Program { steps: vec![Step::Close { code }], reconnect: None }.validate(), Ok(()));
    }
}

#[test]
fn backoff_has_full_jitter_under_a_doubling_capped_ceiling() {
    let p = ReconnectPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        limit: None,
        jitter: Jitter::Full,
    };
    assert_eq!(p.delay_ns(0, u64::MAX), u64::MAX % 100_000_001);
    let equal = ReconnectPolicy { jitter: Jitter::Equal, ..p };
    let none = ReconnectPolicy { jitter: Jitter::None, ..p };
    for (n, ceiling_ms) in [(0u32, 100u64), (1, 200), (3, 800), (4, 1_600), (5, 2_000), (60, 2_000)] {
        let ceiling = ceiling_ms * 1_000_000;
        assert_eq!(p.delay_ns(n, ceiling), ceiling, "attempt {n}: the ceiling itself is reachable");
        assert_eq!(p.delay_ns(n, ceiling + 1), 0, "attempt {n}: wraps within [0, ceiling]");
        assert!((0..1000u64).all(|r| p.delay_ns(n, r * 7_919_000_003) <= ceiling));
        // Equal jitter: from half the ceiling to the ceiling, both ends reachable.
        assert_eq!(equal.delay_ns(n, 0), ceiling / 2, "attempt {n}");
        assert_eq!(equal.delay_ns(n, ceiling / 2), ceiling, "attempt {n}");
        assert!((0..1000u64).all(|r| (ceiling / 2..=ceiling).contains(&equal.delay_ns(n, r * 7_919_000_003))));
        // None: the ceiling, whatever is drawn.
        assert!((0..1000u64).all(|r| none.delay_ns(n, r * 7_919_000_003) == ceiling), "attempt {n}");
    }
}

fn ping(intended_ns: u64) -> Action {
    Action::SendPing { intended_ns }
}

fn pinging(interval_ms: u64, timeout_ms: u64) -> Harness {
    let mut h =
        Harness::new(vec![Step::Ready, Step::Ping { interval: ms(interval_ms), timeout: Some(ms(timeout_ms)) }]);
    assert_eq!(h.opened(0), vec![Action::Ready { timed: false }, arm(TimerKind::Ping, 0)]);
    h
}

#[test]
fn a_ping_unanswered_past_its_timeout_ends_the_connection() {
    let mut h = pinging(1_000, 300);
    assert_eq!(
        h.timer(TimerKind::Ping, 2 * MS),
        vec![ping(0), arm(TimerKind::Ping, 1_000 * MS), arm(TimerKind::Pong, 302 * MS)],
        "the deadline runs from when the ping went out (2 ms late), not from when it was due"
    );
    assert_eq!(h.timer(TimerKind::Pong, 301 * MS), vec![arm(TimerKind::Pong, 302 * MS)], "early: re-armed");
    assert_eq!(h.timer(TimerKind::Pong, 302 * MS), vec![Action::PongTimedOut]);
    // The program is over: no more pings, no second timeout, a late pong changes nothing.
    assert_eq!(h.timer(TimerKind::Ping, 1_000 * MS), vec![]);
    assert_eq!(h.pong(0, 1_001 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Pong, 2 * S), vec![]);
}

#[test]
fn a_pong_just_before_the_timeout_is_no_timeout() {
    let mut h = pinging(1_000, 300);
    let _ = h.timer(TimerKind::Ping, 0);
    assert_eq!(h.pong(0, 300 * MS - 1), vec![], "1 ns before the deadline");
    assert_eq!(h.timer(TimerKind::Pong, 300 * MS), vec![], "answered: the timer finds nothing");
    // The next ping has its own deadline, with a timer of its own.
    assert_eq!(
        h.timer(TimerKind::Ping, 1_000 * MS),
        vec![ping(1_000 * MS), arm(TimerKind::Ping, 2_000 * MS), arm(TimerKind::Pong, 1_300 * MS)]
    );
    assert_eq!(h.pong(1_000_000, 1_250 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Pong, 1_300 * MS), vec![]);
}

#[test]
fn pongs_of_older_pings_count_and_one_timer_serves_several_outstanding_pings() {
    // Pongs come back 240 ms late while pings go out every 100 ms: several are
    // outstanding at once, each answered within the 250 ms timeout.
    let mut h = pinging(100, 250);
    assert_eq!(
        h.timer(TimerKind::Ping, 0),
        vec![ping(0), arm(TimerKind::Ping, 100 * MS), arm(TimerKind::Pong, 250 * MS)]
    );
    assert_eq!(
        h.timer(TimerKind::Ping, 100 * MS),
        vec![ping(100 * MS), arm(TimerKind::Ping, 200 * MS)],
        "no second pong timer"
    );
    assert_eq!(h.timer(TimerKind::Ping, 200 * MS), vec![ping(200 * MS), arm(TimerKind::Ping, 300 * MS)]);
    assert_eq!(
        h.pong(0, 240 * MS),
        vec![],
        "ping 0 answered; pings 1 and 2 outstanding, the timer in the wheel serves"
    );
    assert_eq!(h.timer(TimerKind::Pong, 250 * MS), vec![arm(TimerKind::Pong, 490 * MS)], "not a timeout: re-armed");
    assert_eq!(h.pong(100_000, 340 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Ping, 300 * MS), vec![ping(300 * MS), arm(TimerKind::Ping, 400 * MS)]);
    // The pong of the newest ping answers every ping.
    assert_eq!(h.pong(300_000, 480 * MS), vec![]);
    assert_eq!(h.timer(TimerKind::Pong, 490 * MS), vec![], "all answered");
    // Then the server stops answering: the next ping's deadline is exact again.
    assert_eq!(
        h.timer(TimerKind::Ping, 400 * MS),
        vec![ping(400 * MS), arm(TimerKind::Ping, 500 * MS), arm(TimerKind::Pong, 650 * MS)]
    );
    assert_eq!(h.timer(TimerKind::Pong, 650 * MS), vec![Action::PongTimedOut]);
}

#[test]
fn pongs_are_not_awaited_while_reading_is_stopped() {
    let mut h = Harness::new(vec![
        Step::Ready,
        Step::Ping { interval: ms(100), timeout: Some(ms(150)) },
        Step::StopReading,
        Step::Sleep(ms(1_000)),
        Step::ResumeReading,
    ]);
    let _ = h.opened(0);
    let _ = h.timer(TimerKind::Ping, 0);
    assert_eq!(h.timer(TimerKind::Pong, 150 * MS), vec![], "the pong cannot be read: no timeout");
    assert_eq!(
        h.timer(TimerKind::Step, S),
        vec![Action::ResumeReading, arm(TimerKind::Pong, S + 150 * MS)],
        "reading again: a full timeout from now"
    );
    assert_eq!(h.timer(TimerKind::Pong, S + 150 * MS), vec![Action::PongTimedOut]);
}

#[test]
fn pings_without_a_timeout_await_nothing() {
    let mut h = Harness::new(vec![Step::Ready, Step::Ping { interval: ms(100), timeout: None }]);
    let _ = h.opened(0);
    assert_eq!(h.timer(TimerKind::Ping, 0), vec![ping(0), arm(TimerKind::Ping, 100 * MS)]);
    assert_eq!(h.timer(TimerKind::Pong, 10 * S), vec![]);
}

#[test]
fn violations_and_sized_messages_are_sent_in_program_order() {
    let mut h = Harness::new(vec![
        Step::SendSized { len: 70_000 },
        Step::SendViolation(loadgen_proto::Violation::InvalidUtf8),
        Step::Ready,
    ]);
    assert_eq!(
        h.opened(0),
        vec![Action::SendSized { step: 0 }, Action::SendViolation { step: 1 }, Action::Ready { timed: true }]
    );
    let bad = |steps| Program { steps, reconnect: None }.validate().unwrap_err();
    assert_eq!(
        bad(vec![Step::SendSized { len: crate::driver::MAX_SIZED_LEN + 1 }]),
        ProgramError::TooLarge { step: 0, len: crate::driver::MAX_SIZED_LEN + 1 }
    );
    assert_eq!(
        bad(vec![Step::Ping { interval: ms(10), timeout: Some(Duration::ZERO) }]),
        ProgramError::ZeroTimeout { step: 0 }
    );
}

#[test]
fn the_driver_stays_small() {
    assert!(std::mem::size_of::<Driver>() <= 64, "{} bytes", std::mem::size_of::<Driver>());
    assert!(std::mem::size_of::<Action>() <= 24, "{} bytes", std::mem::size_of::<Action>());
}
