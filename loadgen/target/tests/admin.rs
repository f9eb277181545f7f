//! `POST /admin/faults`: faults switched on and off mid-run change what a plain
//! tokio-tungstenite client observes on a connection that stays open; malformed or
//! unauthorised requests get a clear 4xx and the worker goes on serving. Across
//! worker processes: `tests/workers.rs`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const TOKEN: &str = "t0ken";

#[tokio::test]
async fn switching_drop_fanout_on_and_off_mid_run_opens_a_gap_a_client_sees() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.admin_token = Some(TOKEN.into())).await;
        let (mut ws, _) = connect(w.addr(), "unit=1").await;
        publish(w.addr(), json!({"channel": "unit:1", "count": 10})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 10, Duration::from_secs(5)).await), (0..10).collect::<Vec<u64>>());

        let (status, answer) = admin(w.addr(), TOKEN, json!({"on": ["drop-fanout=100"]})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"faults": ["drop-fanout=100"], "workers_notified": 1}));
        publish(w.addr(), json!({"channel": "unit:1", "count": 10})).await;
        assert_eq!(
            wait_metric(w.addr(), "messages_dropped_fault_total", Duration::from_secs(5), |n| n == 10).await,
            10
        );
        assert!(envelopes(&mut ws, 1, Duration::from_millis(300)).await.is_empty(), "dropped while on");

        let (status, answer) = admin(w.addr(), TOKEN, json!({"off": ["drop-fanout"]})).await;
        assert_eq!((status, &answer["faults"]), (200, &json!([])), "{answer}");
        publish(w.addr(), json!({"channel": "unit:1", "count": 10})).await;
        assert_eq!(
            seqs(&envelopes(&mut ws, 10, Duration::from_secs(5)).await),
            (20..30).collect::<Vec<u64>>(),
            "after switching off: the gap 10..19 is what the client sees"
        );

        // Replacing the whole list: duplicate on the same connection.
        let (status, _) = admin(w.addr(), TOKEN, json!({"faults": ["duplicate=100"]})).await;
        assert_eq!(status, 200);
        publish(w.addr(), json!({"channel": "unit:1", "count": 2})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 4, Duration::from_secs(5)).await), [30, 30, 31, 31]);
        let (status, body) =
            http_with(w.addr(), "GET", "/admin/faults", &format!("Authorization: Bearer {TOKEN}\r\n"), "").await;
        assert_eq!((status, body.trim()), (200, r#"{"faults":["duplicate=100"]}"#));
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn delay_switched_on_mid_connection_makes_deliveries_late_and_off_again_on_time() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.admin_token = Some(TOKEN.into())).await;
        let (mut ws, _) = connect(w.addr(), "unit=2").await;
        assert_eq!(admin(w.addr(), TOKEN, json!({"faults": ["delay=300"]})).await.0, 200);
        publish(w.addr(), json!({"channel": "unit:2", "count": 5})).await;
        let late = envelopes(&mut ws, 5, Duration::from_secs(5)).await;
        assert_eq!(seqs(&late), [0, 1, 2, 3, 4]);
        assert!(late.iter().all(|r| r.at_us - r.json["sent_us"].as_u64().unwrap() >= 300_000), "late while on");
        // Off while messages are still held: nothing overtakes them.
        publish(w.addr(), json!({"channel": "unit:2", "count": 5})).await;
        assert_eq!(admin(w.addr(), TOKEN, json!({"faults": []})).await.0, 200);
        publish(w.addr(), json!({"channel": "unit:2", "count": 5})).await;
        let got = envelopes(&mut ws, 10, Duration::from_secs(5)).await;
        assert_eq!(seqs(&got), (5..15).collect::<Vec<u64>>(), "in order across the switch");
        // Once the held ones are out, a new message is on time.
        publish(w.addr(), json!({"channel": "unit:2"})).await;
        let next = envelopes(&mut ws, 1, Duration::from_secs(5)).await;
        assert_eq!(seqs(&next), [15]);
        let late = next[0].at_us - next[0].json["sent_us"].as_u64().unwrap();
        assert!(late < 200_000, "on time once off: {late} µs");
        close(ws).await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_admin_requests_get_a_clear_4xx_and_the_worker_goes_on() {
    let redis = redis();
    bounded(async {
        let w = worker(&redis, &[], |c| c.admin_token = Some(TOKEN.into())).await;
        let a = w.addr();
        let (status, body) = http(a, "POST", "/admin/faults", r#"{"faults":[]}"#).await;
        assert_eq!(status, 401, "no token: {body}");
        assert!(body.contains("Authorization: Bearer"), "{body}");
        let (status, _) = admin(a, "wrong", json!({"faults": []})).await;
        assert_eq!(status, 401, "a wrong token");
        let (status, body) = http(a, "GET", "/admin/faults", "").await;
        assert_eq!(status, 401, "GET needs the token too: {body}");
        let auth = format!("Authorization: Bearer {TOKEN}\r\n");
        for (body, expect) in [
            ("", "expected a JSON object"),
            ("{", "invalid admin request: EOF"),
            (r#"{"faults":["explode"]}"#, "unknown fault \"explode\""),
            (r#"{"faults":["drop-fanout=200"]}"#, "not a percentage"),
            (r#"{"on":["reorder"],"faults":[]}"#, "either"),
            (r#"{"off":["gravity"]}"#, "not a fault name"),
            (r#"{"fault":["reorder"]}"#, "unknown field `fault`"),
        ] {
            let (status, answer) = http_with(a, "POST", "/admin/faults", &auth, body).await;
            assert_eq!(status, 400, "{body:?}: {answer}");
            let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
            let error = error["error"].as_str().unwrap();
            assert!(error.contains(expect) && !error.contains('\n'), "{body:?}: {error}");
        }
        let (status, _) = http_with(a, "PUT", "/admin/faults", &auth, "{}").await;
        assert_eq!(status, 405);
        let (status, answer) = http_with(a, "GET", "/admin/faults", &auth, "").await;
        assert_eq!((status, answer.trim()), (200, r#"{"faults":[]}"#), "nothing changed");
        assert_eq!(http(a, "GET", "/healthz", "").await.0, 200, "still serving");
        w.stop().await;
        // A worker without a token has admin off.
        let w = worker(&redis, &[], |_| {}).await;
        let (status, body) = http_with(w.addr(), "POST", "/admin/faults", &auth, r#"{"faults":[]}"#).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("admin is off"), "{body}");
        w.stop().await;
    })
    .await;
}
