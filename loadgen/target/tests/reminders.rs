//! Scheduled reminders as a plain tokio-tungstenite client sees them: on time (within a
//! bound), stamped with their due time and marked `"reminder":true`; a series; a
//! shift's reminder; exactly one delivery per reminder with two workers racing to fire
//! it, and a reminder scheduled through a worker that stopped fired by another; late by
//! at least MS under `late-reminders=MS` (switched on and off mid-run); malformed
//! requests answered 400 in one line.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// How late an on-time reminder may reach a client here (a 2-core machine shared with
/// builds): the scheduler wakes at the due time, the rest is Redis and the fan-out.
const ON_TIME: u64 = 150_000;

async fn schedule(addr: std::net::SocketAddr, path: &str, request: Value) -> Value {
    let (status, body) = http(addr, "POST", path, &request.to_string()).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A bucket of `reminder_lateness_seconds` in a /metrics text.
fn bucket(text: &str, le: &str) -> u64 {
    let prefix = format!("loadgen_target_reminder_lateness_seconds_bucket{{worker=\"0\",le=\"{le}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no bucket {le}"));
    line[prefix.len()..].parse().unwrap()
}

#[tokio::test]
async fn reminders_arrive_on_time_stamped_with_their_due_time() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        let (mut ws, _) = connect(w.addr(), "unit=7&user=ana").await;
        let one = schedule(w.addr(), "/reminders", json!({"channel": "unit:7", "in_ms": 300, "body": "40 min"})).await;
        assert_eq!((one["count"].as_u64(), one["channel"].as_str()), (Some(1), Some("unit:7")), "{one}");
        let got = envelopes(&mut ws, 1, Duration::from_secs(3)).await;
        assert_eq!(got.len(), 1, "the reminder arrived");
        let r = &got[0];
        assert_eq!(r.json["reminder"], true);
        assert!(r.text.ends_with(r#""body":"40 min","reminder":true}"#), "{}", r.text);
        let due = one["first_due_us"].as_u64().unwrap();
        assert_eq!(r.json["sent_us"].as_u64(), Some(due), "sent_us is the due time");
        let late = r.at_us as i64 - due as i64;
        eprintln!("a reminder reached the client {late} µs after its due time");
        assert!((0..ON_TIME as i64).contains(&late), "on time: arrived {late} µs after its due time");
        // A series to a person, critical: three, every 100 ms, in sequence.
        let series = json!({"channel": "person:ana", "in_ms": 100, "count": 3, "every_ms": 100, "critical": true});
        let s = schedule(w.addr(), "/reminders", series).await;
        assert_eq!(s["last_due_us"].as_u64().unwrap() - s["first_due_us"].as_u64().unwrap(), 200_000);
        let got = envelopes(&mut ws, 3, Duration::from_secs(3)).await;
        assert_eq!(seqs(&got), [0, 1, 2]);
        for (i, r) in got.iter().enumerate() {
            let due = s["first_due_us"].as_u64().unwrap() + 100_000 * i as u64;
            assert_eq!(r.json["sent_us"].as_u64(), Some(due));
            assert!(r.at_us >= due && r.at_us - due < ON_TIME, "occurrence {i}: {} µs late", r.at_us - due);
            assert!(r.text.ends_with(r#""critical":true,"reminder":true}"#), "{}", r.text);
        }
        // A shift starting in 1 s, reminded 600 ms before: due in 400 ms.
        let shift =
            schedule(w.addr(), "/shifts", json!({"unit": "7", "starts_in_ms": 1000, "remind_before_ms": 600})).await;
        let starts = shift["shift_starts_us"].as_u64().unwrap();
        assert_eq!(starts - shift["first_due_us"].as_u64().unwrap(), 600_000);
        let got = envelopes(&mut ws, 1, Duration::from_secs(3)).await;
        assert_eq!(got[0].json["seq"], 1, "the unit channel's next number");
        assert_eq!(got[0].json["body"]["shift"]["starts_unix_ms"].as_u64(), Some(starts / 1000));
        assert!(got[0].at_us < starts, "reminded before the shift starts");
        let m = metrics(w.addr()).await;
        assert_eq!(
            (metric(&m, "reminders_scheduled_total"), metric(&m, "reminders_fired_total")),
            (5, 5),
            "scheduled and fired"
        );
        assert_eq!(metric(&m, "reminders_late_total"), 0);
        assert_eq!(bucket(&m, "+Inf"), 5);
        assert_eq!(bucket(&m, "0.1"), 5, "all within 100 ms of their due time");
        let (status, waiting) = http(w.addr(), "GET", "/reminders", "").await;
        assert_eq!((status, waiting.trim()), (200, r#"{"next_due_us":null,"scheduled":0}"#));
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn late_reminders_fault_makes_them_late_by_at_least_ms() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &["late-reminders=500"], |c| c.admin_token = Some("t".into())).await;
        let (mut ws, _) = connect(w.addr(), "unit=3").await;
        let r = schedule(w.addr(), "/reminders", json!({"channel": "unit:3", "in_ms": 100})).await;
        let due = r["first_due_us"].as_u64().unwrap();
        let got = envelopes(&mut ws, 1, Duration::from_secs(3)).await;
        assert_eq!(got[0].json["sent_us"].as_u64(), Some(due), "still stamped with its due time");
        let late = got[0].at_us - due;
        assert!((500_000..500_000 + ON_TIME).contains(&late), "500 ms late: {late} µs");
        let m = metrics(w.addr()).await;
        assert_eq!(metric(&m, "reminders_late_total"), 1);
        assert_eq!((bucket(&m, "0.25"), bucket(&m, "1")), (0, 1));
        // Switched off mid-run: on time again.
        assert_eq!(admin(w.addr(), "t", json!({"off": ["late-reminders"]})).await.0, 200);
        let r = schedule(w.addr(), "/reminders", json!({"channel": "unit:3", "in_ms": 100})).await;
        let got = envelopes(&mut ws, 1, Duration::from_secs(3)).await;
        let late = got[0].at_us - r["first_due_us"].as_u64().unwrap();
        assert!(late < ON_TIME, "on time once switched off: {late} µs");
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn each_reminder_fires_once_whichever_worker_claims_it() {
    let redis = redis();
    bounded(async {
        // Scheduled through a worker that then stops: another worker, started later,
        // fires it (the schedule lives in Redis).
        let a = worker(&redis, &[], |_| {}).await;
        let r = schedule(a.addr(), "/reminders", json!({"channel": "unit:1", "in_ms": 1500})).await;
        a.stop().await;
        let b = worker(&redis, &[], |c| c.id = 1).await;
        let (mut ws, _) = connect(b.addr(), "unit=1").await;
        let got = envelopes(&mut ws, 1, Duration::from_secs(5)).await;
        assert_eq!(got[0].json["sent_us"], r["first_due_us"], "fired by the other worker");
        // Two workers polling the same set: 200 reminders due at one instant reach a
        // client of either worker exactly once each.
        let c = worker(&redis, &[], |c| c.id = 2).await;
        let (mut wc, _) = connect(c.addr(), "unit=1").await;
        let due_ms = loadgen_target::unix_us() / 1000 + 700;
        for _ in 0..2 {
            let batch = json!({"channel": "unit:1", "due_unix_ms": due_ms, "count": 100, "every_ms": 1});
            schedule(b.addr(), "/reminders", batch).await;
        }
        for client in [&mut ws, &mut wc] {
            let got = envelopes(client, 200, Duration::from_secs(3)).await;
            let mut s = seqs(&got);
            s.sort_unstable();
            assert_eq!(s, (1..=200).collect::<Vec<u64>>(), "each once");
            assert!(envelopes(client, 1, Duration::from_millis(300)).await.is_empty(), "no copies");
        }
        let fired = metric(&metrics(b.addr()).await, "reminders_fired_total")
            + metric(&metrics(c.addr()).await, "reminders_fired_total");
        assert_eq!(fired, 201, "fired once in all");
        close(ws).await;
        close(wc).await;
        b.stop().await;
        c.stop().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_reminder_requests_get_400_in_one_line() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |_| {}).await;
        for (path, body, says) in [
            ("/reminders", "nonsense", "expected a JSON object"),
            ("/reminders", "{", "EOF"),
            ("/reminders", r#"{"channel":"unit:1"}"#, "missing the due time"),
            ("/reminders", r#"{"channel":"unit:1","in_ms":10,"when":3}"#, "unknown field `when`"),
            ("/reminders", r#"{"channel":"unit:1","in_ms":10,"count":5}"#, "needs every_ms"),
            ("/reminders", r#"{"channel":"unit:1","due_unix_ms":5}"#, "in the past"),
            ("/reminders", r#"{"channel":"unit:1","in_ms":"soon"}"#, "invalid type"),
            ("/shifts", r#"{"unit":"1"}"#, "missing the start"),
            ("/shifts", r#"{"unit":"1","starts_unix_ms":5}"#, "already started"),
        ] {
            let (status, answer) = http(w.addr(), "POST", path, body).await;
            assert_eq!(status, 400, "{body}: {answer}");
            assert_eq!(answer.lines().count(), 1, "{answer}");
            let why: Value = serde_json::from_str(&answer).unwrap();
            assert!(why["error"].as_str().unwrap().contains(says), "{body}: {answer}");
        }
        let (status, answer) = http(w.addr(), "DELETE", "/reminders", "").await;
        assert_eq!(status, 405, "{answer}");
        assert_eq!(http(w.addr(), "GET", "/shifts", "").await.0, 405);
        assert_eq!(metric(&metrics(w.addr()).await, "reminders_scheduled_total"), 0);
        w.stop().await;
    })
    .await;
}
