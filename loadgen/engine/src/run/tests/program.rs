//! Connection programs on real sockets: the driver's steps carried out by the io_uring
//! worker (sleeps, closes with a code, waits that time out, readers that stop).

use std::sync::atomic::AtomicU64;

use super::*;
use crate::driver::{Program, Step, Traffic as Steps};
use crate::run::{Cohort, Jitter};

/// The close code the program tests send, and how many closes with it the test server
/// saw (only these tests use it).
pub(super) const CLOSE_CODE: u16 = 4321;
pub(super) static CLOSES_SEEN: AtomicU64 = AtomicU64::new(0);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn with_program(server: &TestServer, connections: u32, hold_ms: u64, steps: Vec<Step>) -> RunConfig {
    let mut cfg =
        config(server, connections, hold_ms, Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop });
    cfg.cohorts = vec![Cohort {
        name: "all".into(),
        program: Program { steps, reconnect: None },
        connections: cfg.connections,
        ..Default::default()
    }];
    cfg
}

#[test]
fn a_program_sleeps_then_closes_with_its_code_before_the_end() {
    let server = TestServer::start(Mode::Echo);
    let steps = vec![
        Step::Ready,
        Step::Traffic(Steps::Paced { interval: ms(50) }),
        Step::Sleep(ms(400)),
        Step::StopTraffic,
        Step::Close { code: CLOSE_CODE },
    ];
    let m = go(&with_program(&server, 4, 1_500, steps)).stats;
    let t = &m.totals;
    assert_eq!((t.established, t.failed), (4, 0), "{:?}", m.errors);
    assert_eq!(CLOSES_SEEN.load(Ordering::Relaxed), 4, "each closed with the program's code");
    assert_eq!((t.dropped, t.open_at_end), (0, 0), "loadgen's own closes, before the end: {t:?}");
    // 400 ms at 20/s: 8 each (the first within the first interval), all answered.
    assert!((28..=40).contains(&t.messages_sent), "{t:?}");
    assert_eq!((t.answered, t.unanswered, t.late), (t.messages_sent, 0, 0), "{t:?}");
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn a_wait_that_times_out_fails_the_program_and_a_matched_one_makes_it_ready() {
    // The server echoes texts: "hello" comes back, "never" does not.
    let server = TestServer::start(Mode::Echo);
    let loop_ = Steps::ClosedLoop { think: Duration::ZERO, reply_timeout: Some(ms(2_000)) };
    let waits = |pattern: &str| {
        vec![
            Step::SendText("hello room 7".into()),
            Step::WaitFor { pattern: pattern.into(), timeout: Some(ms(300)) },
            Step::Ready,
            Step::Traffic(loop_),
        ]
    };
    let m = go(&with_program(&server, 3, 1_200, waits("never"))).stats;
    let t = &m.totals;
    assert_eq!(t.established, 3, "{:?}", m.errors);
    assert_eq!(m.errors.get("wait_timeout").copied(), Some(3), "{:?}", m.errors);
    assert_eq!(m.histogram(Metric::Ready).len(), 0, "never ready");
    assert_eq!(t.messages_sent, 3, "the texts only: no traffic before ready: {t:?}");
    assert_eq!((t.dropped, t.open_at_end), (0, 0), "closed by loadgen when the wait failed: {t:?}");

    let m = go(&with_program(&server, 3, 1_200, waits("room 7"))).stats;
    assert_eq!(m.errors.get("wait_timeout"), None, "{:?}", m.errors);
    assert_eq!(m.histogram(Metric::Ready).len(), 3, "ready once the reply came");
    assert!(m.totals.answered > 30, "the closed loop ran: {:?}", m.totals);
}

#[test]
fn a_reader_that_stops_delays_its_echoes_until_it_reads_again() {
    let server = TestServer::start(Mode::Echo);
    let steps = vec![
        Step::Ready,
        Step::Traffic(Steps::Paced { interval: ms(10) }),
        Step::Sleep(ms(200)),
        Step::StopReading,
        Step::Sleep(ms(500)),
        Step::ResumeReading,
    ];
    let m = go(&with_program(&server, 2, 1_200, steps)).stats;
    let t = &m.totals;
    assert_eq!((t.answered, t.unanswered, t.dropped), (t.messages_sent, 0, 0), "{t:?} {:?}", m.errors);
    let rtt = m.histogram(Metric::MessageRtt);
    // Messages sent while reading was stopped waited for the reader (up to 500 ms).
    assert!(rtt.max() >= 400_000, "max round trip {} µs", rtt.max());
    assert!(rtt.value_at_quantile(0.25) < 100_000, "before the pause: p25 {} µs", rtt.value_at_quantile(0.25));
}

#[test]
fn a_reader_stopped_at_the_end_reads_again_to_close_cleanly() {
    let server = TestServer::start(Mode::Echo);
    let steps = vec![Step::Ready, Step::Traffic(Steps::Paced { interval: ms(20) }), Step::StopReading];
    let m = go(&with_program(&server, 2, 600, steps)).stats;
    let t = &m.totals;
    assert!(t.messages_sent > 40, "{t:?}");
    // loadgen's close reads the echoes queued while reading was stopped, then the
    // server's close reply: nothing unanswered, no close timeout.
    assert_eq!((t.answered, t.unanswered, t.dropped), (t.messages_sent, 0, 0), "{t:?} {:?}", m.errors);
    assert_eq!(m.errors.get("close_timeout"), None, "{:?}", m.errors);
}

#[test]
fn programs_that_cannot_run_are_refused_before_the_run() {
    let server = TestServer::start(Mode::Echo);
    let cfg = with_program(&server, 1, 100, vec![Step::Ready, Step::Ping { interval: Duration::ZERO, timeout: None }]);
    let err = run(&cfg, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("interval must be longer than zero"), "{err}");
    let mut cfg = with_program(&server, 1, 100, vec![Step::SendText("hi".into()), Step::Ready]);
    cfg.protocol = crate::run::Protocol::RawTcp;
    let err = run(&cfg, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("WebSocket features"), "{err}");
}

#[test]
fn coalesced_timers_fire_together_and_their_lateness_is_schedule_lag() {
    let server = TestServer::start(Mode::Echo);
    let mut cfg =
        config(&server, 20, 1_000, Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(50.0) });
    cfg.timer_coalesce = ms(20);
    let m = go(&cfg).stats;
    let t = &m.totals;
    assert_eq!((t.answered, t.unanswered), (t.messages_sent, 0), "{t:?}");
    assert!(t.messages_sent >= 800, "the rate is kept: {t:?}");
    let lag = m.histogram(Metric::ScheduleLag);
    // Sends due within 20 ms of the earliest wait for it: typically ~10 ms late, less
    // when echo completions wake the loop between windows (which fires what is due),
    // but far above the tens of µs of a loop that wakes for every deadline.
    assert!(lag.value_at_quantile(0.5) >= 1_000, "lag p50 {} µs", lag.value_at_quantile(0.5));
    assert!(
        lag.value_at_quantile(0.5) <= 20_000 + 15_000,
        "bounded by the window: p50 {} µs",
        lag.value_at_quantile(0.5)
    );
}

/// Two channels, 20 notifications each, interleaved: channel 1 repeats its number 5,
/// channel 2 skips its number 7 (and a chat message without an envelope in between).
pub(super) fn json_pushes() -> Vec<String> {
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let envelope = |channel: u64, seq: u64| {
        format!(
            r#"{{"lgprobe":1,"channel":{channel},"seq":{seq},"sent_us":{now_us},"sender":{channel},"worker":0,"ch":"unit:{channel}","body":{{"text":"n"}}}}"#
        )
    };
    let mut out = vec![r#"{"type":"welcome","note":"not an envelope, not counted"}"#.to_owned()];
    for seq in 0..20 {
        out.push(envelope(1, seq));
        if seq == 5 {
            out.push(envelope(1, seq));
        }
        if seq != 7 {
            out.push(envelope(2, seq));
        }
    }
    out
}

#[test]
fn json_notifications_on_interleaved_channels_are_checked_per_channel() {
    let server = TestServer::start(Mode::JsonPush);
    let m = go(&config(&server, 3, 600, Traffic::Idle)).stats;
    let t = &m.totals;
    assert_eq!(t.established, 3, "{:?}", m.errors);
    // Per connection: 20 + 19 distinct notifications, one duplicate, one gap.
    assert_eq!(t.pushes_received, 3 * 39, "{t:?}");
    assert_eq!(m.histogram(Metric::Delivery).len(), 3 * 39);
    assert_eq!((t.duplicated, t.lost, t.reordered), (3, 3, 0), "interleaving is not loss or reordering: {t:?}");
}

/// Request line target and `X-Loadgen-Test-User` of every request that carried one.
static IDENTITIES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub(super) fn capture_identity(head: &str) {
    if let Some(user) = head.lines().find_map(|l| l.strip_prefix("X-Loadgen-Test-User: ")) {
        let path = head.split(' ').nth(1).unwrap_or("");
        IDENTITIES.lock().unwrap().push(format!("{path} {user}"));
    }
}

fn identities(marker: &str) -> Vec<String> {
    let mut seen: Vec<String> = IDENTITIES.lock().unwrap().iter().filter(|s| s.contains(marker)).cloned().collect();
    seen.sort();
    seen.dedup();
    seen
}

#[test]
fn each_connection_has_its_own_identity_in_the_path_and_headers() {
    let server = TestServer::start(Mode::Echo);
    let mut cfg = config(&server, 4, 300, Traffic::Idle);
    cfg.targets[0].path = "/ws?user=u{i}&x=ws".into();
    cfg.headers =
        vec![("X-Loadgen-Test-User".into(), "ws-{i}".into()), ("Authorization".into(), "Bearer fixed".into())];
    let m = go(&cfg).stats;
    assert_eq!(m.totals.established, 4, "{:?}", m.errors);
    let want: Vec<String> = (0..4).map(|i| format!("/ws?user=u{i}&x=ws ws-{i}")).collect();
    assert_eq!(identities("x=ws"), want);

    // HTTP polls carry them on every request.
    let server = TestServer::start(Mode::Http(super::http::Behaviour::KeepAlive));
    let mut cfg = config(&server, 3, 400, Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(10.0) });
    cfg.protocol = crate::run::Protocol::Http1;
    cfg.targets[0].path = "/poll".into();
    cfg.headers = vec![("X-Loadgen-Test-User".into(), "http-{i}".into())];
    let m = go(&cfg).stats;
    assert!(m.totals.messages_received >= 6, "{:?} {:?}", m.totals, m.errors);
    assert_eq!(identities("http-"), vec!["/poll http-0", "/poll http-1", "/poll http-2"]);
}

#[test]
fn groups_run_their_own_programs_on_their_own_connections() {
    let server = TestServer::start(Mode::Echo);
    let mut cfg = config(&server, 5, 1_000, Traffic::Echo { message_size: 64, rate: MessageRate::ClosedLoop });
    let talk = Program { steps: vec![Step::Ready, Step::Traffic(Steps::Paced { interval: ms(50) })], reconnect: None };
    let hold = Program { steps: vec![Step::Ready], reconnect: None };
    cfg.cohorts = vec![
        Cohort { name: "talkers".into(), program: talk, connections: 2, ..Default::default() },
        Cohort { name: "holders".into(), program: hold, connections: 3, ..Default::default() },
    ];
    assert_eq!((0..5).map(|g| cfg.program_of(g)).collect::<Vec<_>>(), [0, 0, 1, 1, 1], "contiguous ranges");
    let m = go(&cfg).stats;
    let t = &m.totals;
    assert_eq!((t.established, t.failed), (5, 0), "{:?}", m.errors);
    // Two talkers at 20/s for ≈ 1 s (five would send ≈ 100).
    assert!((30..=50).contains(&t.messages_sent), "only the talkers send: {t:?}");
    assert_eq!(t.answered, t.messages_sent, "{t:?}");

    cfg.cohorts[1].connections = 4;
    let err = run(&cfg, &AtomicBool::new(false)).expect_err("6 group connections for a run of 5");
    assert!(err.to_string().contains("add up"), "{err}");
}

#[test]
fn a_server_that_stops_answering_pings_is_dropped_for_it_and_reconnected() {
    use crate::driver::ReconnectPolicy;
    use crate::run::tests::accounting::Misbehaviour;
    let steps = |timeout| vec![Step::Ready, Step::Ping { interval: ms(100), timeout: Some(ms(timeout)) }];
    // A server that answers every ping: pongs arrive in well under 250 ms, none times out.
    let server = TestServer::start(Mode::Echo);
    let m = go(&with_program(&server, 3, 1_000, steps(250))).stats;
    assert_eq!(m.totals.established, 3, "{:?}", m.errors);
    assert!(m.histogram(Metric::PingRtt).len() >= 20, "pongs came: {}", m.histogram(Metric::PingRtt).len());
    assert_eq!((m.totals.pong_timeouts, m.totals.dropped), (0, 0), "no false timeouts: {:?}", m.errors);

    // One that never answers: each connection is given up 250 ms after its first ping,
    // and comes back under the reconnect policy (to be given up again).
    let server = TestServer::start(Mode::Misbehave(Misbehaviour { no_pong: true, ..Default::default() }));
    let mut cfg = with_program(&server, 2, 1_500, steps(250));
    cfg.cohorts[0].program.reconnect =
        Some(ReconnectPolicy { initial: ms(10), max: ms(50), limit: None, jitter: Jitter::Full });
    let t0 = Instant::now();
    let m = go(&cfg).stats;
    let t = &m.totals;
    assert!(t0.elapsed() < Duration::from_secs(6), "bounded");
    assert!(t.pong_timeouts >= 4, "each connection, more than once: {t:?} {:?}", m.errors);
    assert_eq!(m.drops.get("pong_timeout").copied(), Some(t.pong_timeouts), "{:?}", m.drops);
    assert_eq!(m.errors.get("pong_timeout").copied(), Some(t.pong_timeouts), "{:?}", m.errors);
    assert_eq!(t.dropped, t.pong_timeouts, "{t:?}");
    assert!(t.reconnect_attempts >= 2 && t.reconnected >= 2, "the reconnect policy applied: {t:?}");
    assert_eq!(m.histogram(Metric::PingRtt).len(), 0);
}

#[test]
fn violations_and_oversize_messages_are_answered_with_close_codes_the_report_keeps() {
    use loadgen_proto::Violation;
    let server = TestServer::start(Mode::Echo);
    let mut cfg = config(&server, 7, 1_000, Traffic::Idle);
    let group = |name: &str, steps: Vec<Step>, connections| Cohort {
        name: name.into(),
        program: Program { steps, reconnect: None },
        connections,
        ..Default::default()
    };
    cfg.cohorts = vec![
        group("bad-utf8", vec![Step::Ready, Step::SendViolation(Violation::InvalidUtf8)], 2),
        group("reserved", vec![Step::Ready, Step::SendViolation(Violation::ReservedOpcode(3))], 2),
        // Over the test server's 1 MiB limit: refused on the frame header.
        group("oversize", vec![Step::Ready, Step::SendSized { len: 2 << 20 }], 2),
        group("sized", vec![Step::Ready, Step::SendSized { len: 100_000 }], 1),
    ];
    let out = go(&cfg);
    let m = &out.stats;
    let t = &m.totals;
    assert_eq!(t.established, 7, "{:?}", m.errors);
    let codes: Vec<(u16, u64)> = m.close_codes.iter().map(|(c, n)| (*c, *n)).collect();
    assert_eq!(codes, [(1002, 2), (1007, 2), (1009, 2)], "{:?} {:?}", m.errors, m.drops);
    assert_eq!(m.drops.get("server_close").copied(), Some(6), "{:?}", m.drops);
    // The valid one was echoed and held until the end.
    assert_eq!((t.messages_sent, t.messages_received), (3, 1), "{t:?}");
    assert_eq!(t.bytes_received, 100_000, "{t:?}");
    // The report keys checks address with dotted paths.
    let report = crate::report::Report::new(m, &crate::report::RunInfo::default()).to_value();
    assert_eq!(report.pointer("/connections/close_codes/1009"), Some(&serde_json::json!(2)));
    assert_eq!(report.pointer("/connections/dropped_by_cause/server_close"), Some(&serde_json::json!(6)));
}

#[test]
fn a_cohort_brings_its_own_path_and_headers_with_per_connection_tokens() {
    let tokens: std::sync::Arc<[String]> = vec!["t0".to_owned(), "t1".into(), "t2".into()].into();
    let cohorts = |path: &str| {
        vec![
            Cohort {
                name: "users".into(),
                connections: 2,
                program: Program { steps: vec![Step::Ready], reconnect: None },
                ..Default::default()
            },
            Cohort {
                name: "intruders".into(),
                connections: 2,
                program: Program { steps: vec![Step::Ready], reconnect: None },
                path: Some(path.into()),
                headers: vec![("X-Loadgen-Test-User".into(), "cohorttest-evil-{token}".into())],
                ..Default::default()
            },
        ]
    };
    let server = TestServer::start(Mode::Echo);
    let mut cfg = config(&server, 4, 300, Traffic::Idle);
    cfg.headers = vec![("X-Loadgen-Test-User".into(), "cohorttest-run-{i}".into())];
    cfg.tokens = Some(tokens.clone());
    cfg.cohorts = cohorts("/ws?user=intruder{i}&k=cohorttest");
    let m = go(&cfg).stats;
    assert_eq!(m.totals.established, 4, "{:?}", m.errors);
    // The cohort's header replaced the run's of the same name; tokens[i % 3].
    assert_eq!(
        identities("cohorttest-"),
        [
            "/ cohorttest-run-0",
            "/ cohorttest-run-1",
            "/ws?user=intruder2&k=cohorttest cohorttest-evil-t2",
            "/ws?user=intruder3&k=cohorttest cohorttest-evil-t0",
        ]
    );

    // HTTP polls carry the cohort's request on every poll.
    let server = TestServer::start(Mode::Http(super::http::Behaviour::KeepAlive));
    let mut cfg = config(&server, 4, 400, Traffic::Echo { message_size: 64, rate: MessageRate::PerConnection(10.0) });
    cfg.protocol = crate::run::Protocol::Http1;
    cfg.targets[0].path = "/poll".into();
    cfg.headers = vec![("X-Loadgen-Test-User".into(), "cohortpoll-run-{i}".into())];
    cfg.tokens = Some(tokens);
    cfg.cohorts = cohorts("/poll?u={i}");
    for c in &mut cfg.cohorts {
        c.program.steps.push(Step::Traffic(Steps::Paced { interval: ms(100) }));
        c.headers.iter_mut().for_each(|(_, v)| *v = v.replace("cohorttest", "cohortpoll"));
    }
    let m = go(&cfg).stats;
    assert!(m.totals.messages_received >= 8, "{:?} {:?}", m.totals, m.errors);
    assert_eq!(
        identities("cohortpoll-"),
        [
            "/poll cohortpoll-run-0",
            "/poll cohortpoll-run-1",
            "/poll?u=2 cohortpoll-evil-t2",
            "/poll?u=3 cohortpoll-evil-t0"
        ]
    );
}

#[test]
fn requests_that_cannot_be_built_are_refused_before_the_run() {
    let server = TestServer::start(Mode::Echo);
    let mut cfg = with_program(&server, 2, 100, vec![Step::Ready]);
    cfg.headers = vec![("Authorization".into(), "Bearer {token}".into())];
    let err = run(&cfg, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("{token}") && err.contains("no tokens"), "{err}");
    cfg.tokens = Some(Vec::<String>::new().into());
    let err = run(&cfg, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    cfg.tokens = Some(vec!["a\r\nX-Evil: 1".to_owned()].into());
    let err = run(&cfg, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("control character"), "{err}");
    let mut cfg = with_program(&server, 2, 100, vec![Step::Ready]);
    cfg.cohorts[0].handshake = crate::run::HandshakeMode::Slow { interval: Duration::ZERO };
    let err = run(&cfg, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("longer than zero"), "{err}");
    cfg.cohorts[0].handshake = crate::run::HandshakeMode::Stall;
    cfg.protocol = crate::run::Protocol::Http1;
    let err = run(&cfg, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("WebSocket upgrades"), "{err}");
}

/// Bytes of the upgrade request each connection to a `Mode::HandshakeTimeout` server
/// had sent when its request was complete or the server gave up on it.
pub(super) static HEAD_BYTES: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

#[test]
fn stalled_and_slow_upgrades_are_counted_apart_when_the_server_closes_them() {
    use crate::run::HandshakeMode;
    let group = |name: &str, handshake, connections| Cohort {
        name: name.into(),
        program: Program { steps: vec![Step::Ready], reconnect: None },
        connections,
        handshake,
        ..Default::default()
    };
    let slow = HandshakeMode::Slow { interval: ms(50) };
    // The server closes upgrades not complete after 300 ms; the run waits 800 ms.
    let server = TestServer::start(Mode::HandshakeTimeout { ms: 300, reset: false });
    let mut cfg = config(&server, 6, 1_200, Traffic::Idle);
    cfg.cohorts =
        vec![group("users", HandshakeMode::Normal, 2), group("stall", HandshakeMode::Stall, 2), group("slow", slow, 2)];
    let m = go(&cfg).stats;
    let t = &m.totals;
    assert_eq!((t.established, t.failed), (2, 4), "{:?}", m.errors);
    assert_eq!(m.errors.get("handshake_closed_by_server").copied(), Some(4), "{:?}", m.errors);
    assert_eq!(m.errors.get("handshake_timeout"), None, "{:?}", m.errors);
    let closed = m.histogram(Metric::HandshakeClosed);
    assert_eq!(closed.len(), 4);
    assert!(closed.min() >= 290_000 && closed.max() < 800_000, "closed after {}..{} µs", closed.min(), closed.max());
    let mut bytes = std::mem::take(&mut *HEAD_BYTES.lock().unwrap());
    bytes.sort_unstable();
    assert_eq!(bytes[..2], [0, 0], "stalled upgrades send nothing: {bytes:?}");
    assert!(bytes[2..4].iter().all(|&n| (3..=9).contains(&n)), "a byte every 50 ms for 300 ms: {bytes:?}");
    assert!(bytes[4..].iter().all(|&n| n > 100), "whole requests: {bytes:?}");

    // A reset is the server closing too; a server that never closes leaves the run's
    // handshake timeout.
    let server = TestServer::start(Mode::HandshakeTimeout { ms: 200, reset: true });
    let mut cfg = config(&server, 2, 1_000, Traffic::Idle);
    cfg.cohorts = vec![group("stall", HandshakeMode::Stall, 1), group("slow", slow, 1)];
    let m = go(&cfg).stats;
    assert_eq!(m.errors.get("handshake_closed_by_server").copied(), Some(2), "{:?}", m.errors);
    let server = TestServer::start(Mode::NoUpgrade);
    cfg.targets = vec![server.target()];
    let m = go(&cfg).stats;
    assert_eq!(m.errors.get("handshake_timeout").copied(), Some(2), "{:?}", m.errors);
    assert_eq!(m.errors.get("handshake_closed_by_server"), None, "{:?}", m.errors);
    assert_eq!(m.histogram(Metric::HandshakeClosed).len(), 0);
}
