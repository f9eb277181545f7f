//! Plays a scenario's timeline during a run: each event at its second from the start,
//! on a thread of its own (a paced publish lasting a minute does not hold back a fault
//! switched meanwhile), and records it as applied: when it really happened, what was
//! asked and what the target answered, or why it could not be done.
//!
//! How each action is carried out:
//! - `fault_on` / `fault_off`: `POST /admin/faults` `{"on":[spec]}` / `{"off":[name]}`
//!   with the admin token; the reference target tells every worker through Redis.
//! - `kill_worker`: the fault `crash-worker-at=S` switched on, S the target's age in
//!   seconds: worker 0 exits at once (exit code 70) and the supervisor restarts it.
//! - `publish`: `POST /publish` with channel, count, `interval_us`, critical, body.
//! - `restart_redis`: the embedded Redis stopped and started again on its port, empty.
//! - `http`: the request as written, to the target's address.
//! - `inject`: loadgen's own markers through the system's publish path ([`crate::inject`]).
//!
//! What it does not do: decide what is due (the scenario) or judge what followed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loadgen_scenario::{Action, Event};
use serde::Serialize;

use crate::http;
use crate::redis_keeper::RedisKeeper;

/// One timeline event as it was carried out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Applied {
    /// When it was due, seconds from the start of the run.
    pub at_s: f64,
    /// When it was carried out (absent: the run ended first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_s: Option<f64>,
    /// The action (`fault_on`, `publish` ...).
    pub action: &'static str,
    /// What was asked, for people (`drop-fanout=50`, `200 on broadcast`).
    pub detail: String,
    /// It was done (the target said yes).
    pub ok: bool,
    /// The target's answer (status and body) or the error.
    pub outcome: String,
}

/// Where the timeline's requests go.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The target's address.
    pub addr: SocketAddr,
    /// The admin token (reference target).
    pub admin_token: Option<String>,
    /// The Redis the timeline may restart.
    pub redis: Option<RedisKeeper>,
    /// When the reference target was started: `crash-worker-at` counts from then.
    pub target_started: Option<Instant>,
}

/// A timeline being played.
pub struct Player {
    handles: Vec<(Event, JoinHandle<Applied>)>,
    stop: Arc<AtomicBool>,
}

/// How long a request may take beyond the time it is asked to spend (a paced publish).
const REQUEST_SLACK: Duration = Duration::from_secs(10);

impl Player {
    /// Starts playing `events`, measured from `start`: the run's clock, set when it
    /// starts (the engine's start gate, once its workers are set up); until then no
    /// event is due.
    pub fn start(events: &[Event], endpoint: &Endpoint, start: Arc<OnceLock<Instant>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = events
            .iter()
            .map(|event| {
                let (event, endpoint, stop, start) = (event.clone(), endpoint.clone(), stop.clone(), start.clone());
                let e = event.clone();
                (event, std::thread::spawn(move || play(&e, &endpoint, &start, &stop)))
            })
            .collect();
        Self { handles, stop }
    }

    /// Ends the timeline: events not yet due are recorded as not applied; events under
    /// way are waited for. Returns every event in order of time.
    pub fn finish(self) -> Vec<Applied> {
        self.stop.store(true, Ordering::Relaxed);
        self.handles
            .into_iter()
            .map(|(event, h)| {
                h.join().unwrap_or_else(|_| Applied {
                    at_s: event.at.as_secs_f64(),
                    applied_s: None,
                    action: event.action.name(),
                    detail: detail(&event.action),
                    ok: false,
                    outcome: "the event's thread failed".into(),
                })
            })
            .collect()
    }
}

fn play(event: &Event, endpoint: &Endpoint, start: &OnceLock<Instant>, stop: &AtomicBool) -> Applied {
    let mut applied = Applied {
        at_s: event.at.as_secs_f64(),
        applied_s: None,
        action: event.action.name(),
        detail: detail(&event.action),
        ok: false,
        outcome: "not carried out: the run ended first".into(),
    };
    let start = loop {
        if let Some(&start) = start.get() {
            break start;
        }
        if stop.load(Ordering::Relaxed) {
            return applied;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let due = start + event.at;
    while Instant::now() < due {
        if stop.load(Ordering::Relaxed) {
            return applied;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)));
    }
    applied.applied_s = Some(start.elapsed().as_secs_f64());
    let result = carry_out(&event.action, endpoint, stop);
    applied.ok = result.is_ok();
    applied.outcome = result.unwrap_or_else(|e| e);
    applied
}

/// The action in a few words.
pub fn detail(action: &Action) -> String {
    match action {
        Action::FaultOn(f) | Action::FaultOff(f) => f.clone(),
        Action::Publish { channel, count, interval, critical, .. } => format!(
            "{count} {}message{} on {channel}{}",
            if *critical { "critical " } else { "" },
            if *count == 1 { "" } else { "s" },
            interval.map_or(String::new(), |i| format!(", one every {i:?}"))
        ),
        Action::KillWorker => "worker 0".into(),
        Action::RestartRedis => "the embedded redis-server".into(),
        Action::Http { method, path, .. } => format!("{method} {path}"),
        Action::Inject { via, stream, count, interval, .. } => crate::inject::detail(via, stream, *count, *interval),
    }
}

fn carry_out(action: &Action, endpoint: &Endpoint, stop: &AtomicBool) -> Result<String, String> {
    let admin = |body: serde_json::Value| {
        let token = endpoint.admin_token.as_deref().ok_or("the target has no admin token")?;
        let auth = format!("Bearer {token}");
        answered(http::request(
            endpoint.addr,
            "POST",
            "/admin/faults",
            &[("Authorization", &auth)],
            Some(&body.to_string()),
            REQUEST_SLACK,
        ))
    };
    match action {
        Action::FaultOn(spec) => admin(serde_json::json!({ "on": [spec] })),
        Action::FaultOff(name) => admin(serde_json::json!({ "off": [name] })),
        Action::KillWorker => {
            // `crash-worker-at=S` crashes worker 0 at second S of the target's life if
            // it was started before then: S just past, so the worker running now
            // crashes at once and the one the supervisor starts next does not.
            let since = endpoint.target_started.map_or(Duration::ZERO, |t| t.elapsed());
            let s = (since.as_secs_f64() - 0.001).max(0.0);
            admin(serde_json::json!({ "on": [format!("crash-worker-at={s:.3}")] }))
        }
        Action::Publish { channel, count, interval, critical, body } => {
            let mut req = serde_json::json!({ "channel": channel, "count": count });
            if let Some(i) = interval {
                req["interval_us"] = serde_json::json!(i.as_micros() as u64);
            }
            if *critical {
                req["critical"] = serde_json::json!(true);
            }
            if let Some(b) = body {
                req["body"] = serde_json::from_str(b).unwrap_or(serde_json::Value::Null);
            }
            let lasts =
                interval.map_or(Duration::ZERO, |i| i.saturating_mul(u32::try_from(*count).unwrap_or(u32::MAX)));
            answered(http::request(
                endpoint.addr,
                "POST",
                "/publish",
                &[],
                Some(&req.to_string()),
                lasts + REQUEST_SLACK,
            ))
        }
        Action::RestartRedis => endpoint.redis.as_ref().ok_or("no embedded Redis to restart")?.restart(),
        Action::Http { method, path, body } => {
            answered(http::request(endpoint.addr, method, path, &[], body.as_deref(), REQUEST_SLACK))
        }
        Action::Inject { via, stream, first_seq, count, interval, body } => {
            let injection = crate::inject::Injection {
                via,
                stream,
                first_seq: *first_seq,
                count: *count,
                interval: *interval,
                body,
            };
            crate::inject::run(&injection, endpoint.addr, stop)
        }
    }
}

/// A 2xx answer is done; anything else is an error with the status and body.
fn answered(r: Result<http::Answer, String>) -> Result<String, String> {
    let a = r?;
    let text = format!("{} {}", a.status, a.body.chars().take(300).collect::<String>());
    if (200..300).contains(&a.status) { Ok(text) } else { Err(text) }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    use super::*;

    /// A server answering `status` to every request, recording what it got.
    fn server(status: u16) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = vec![0u8; 65536];
                let mut req = Vec::new();
                loop {
                    let n = s.read(&mut buf).unwrap_or(0);
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if n == 0 || text.ends_with('}') || text.ends_with("\r\n\r\n") && !text.contains("Content-Length") {
                        break;
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&req).to_string());
                let _ = write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\n{{}}");
            }
        });
        (addr, got)
    }

    fn event(at_ms: u64, action: Action) -> Event {
        Event { at: Duration::from_millis(at_ms), action }
    }

    #[test]
    fn events_happen_at_their_second_with_the_admin_token() {
        let (addr, got) = server(200);
        let endpoint = Endpoint { addr, admin_token: Some("tok".into()), redis: None, target_started: None };
        let events = [
            event(0, Action::FaultOn("delay=300".into())),
            event(
                300,
                Action::Publish {
                    channel: "broadcast".into(),
                    count: 5,
                    interval: None,
                    critical: true,
                    body: Some("{\"a\":1}".into()),
                },
            ),
            event(400, Action::KillWorker),
        ];
        let start = Arc::new(OnceLock::new());
        let player = Player::start(&events, &endpoint, start.clone());
        std::thread::sleep(Duration::from_millis(150));
        assert!(got.lock().unwrap().is_empty(), "nothing is due before the run's clock starts");
        start.set(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(700));
        let applied = player.finish();
        assert!(applied.iter().all(|a| a.ok), "{applied:?}");
        assert!(applied[1].applied_s.unwrap() >= 0.3 && applied[1].applied_s.unwrap() < 0.6, "{applied:?}");
        assert_eq!(applied[1].detail, "5 critical messages on broadcast");
        let got = got.lock().unwrap().join("\n");
        assert!(got.contains("Authorization: Bearer tok") && got.contains(r#"{"on":["delay=300"]}"#), "{got}");
        assert!(got.contains(r#""body":{"a":1}"#) && got.contains(r#""critical":true"#), "{got}");
        assert!(got.contains(r#"{"on":["crash-worker-at=0.000"]}"#), "{got}");
    }

    #[test]
    fn refusals_and_events_after_the_end_are_recorded_as_not_done() {
        let (addr, _) = server(401);
        let endpoint = Endpoint { addr, admin_token: Some("wrong".into()), redis: None, target_started: None };
        let events = [event(0, Action::FaultOff("delay".into())), event(60_000, Action::RestartRedis)];
        let player = Player::start(&events, &endpoint, Arc::new(OnceLock::from(Instant::now())));
        std::thread::sleep(Duration::from_millis(300));
        let applied = player.finish();
        assert!(!applied[0].ok && applied[0].outcome.starts_with("401"), "{applied:?}");
        assert_eq!((applied[1].ok, applied[1].applied_s), (false, None));
        assert!(applied[1].outcome.contains("the run ended first"));
    }
}
