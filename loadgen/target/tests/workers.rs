//! Worker processes (the crate's `loadgen-target-worker` binary) supervised on one
//! SO_REUSEPORT port, and the whole target with its embedded Redis: connections spread
//! over the workers, a broadcast reaches the clients of every worker through Redis, a
//! killed worker is reported and restarted, stopping closes clients with 1001 and
//! stops Redis; a missing redis-server or an unreachable Redis is one clear error.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use loadgen_target::supervisor::SupervisorConfig;
use loadgen_target::{Supervisor, SupervisorEvent, Target, TargetConfig, TargetError, WorkerConfig};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn worker_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_loadgen-target-worker"))
}

fn supervise(redis_url: &str, workers: u32) -> Supervisor {
    let worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), redis_url);
    Supervisor::start(SupervisorConfig {
        workers,
        program: worker_program(),
        args: Vec::new(),
        worker,
        own_ports: false,
    })
    .expect("workers start")
}

/// Opens connections until both workers have served one (at most 200 tries).
async fn one_per_worker(addr: std::net::SocketAddr, query: &str) -> Vec<(u64, Client)> {
    let mut clients: Vec<(u64, Client)> = Vec::new();
    for _ in 0..200 {
        let (ws, ready) = connect(addr, query).await;
        clients.push((ready["worker"].as_u64().unwrap(), ws));
        let seen: BTreeSet<u64> = clients.iter().map(|(w, _)| *w).collect();
        if seen.len() == 2 {
            return clients;
        }
    }
    panic!("200 connections all went to one worker");
}

#[tokio::test]
async fn two_workers_share_a_port_fan_out_across_and_a_killed_one_restarts() {
    let redis = redis();
    let sup = supervise(redis.url(), 2);
    bounded(async {
        let addr = sup.addr();
        assert_ne!(addr.port(), 0);
        let mut clients = one_per_worker(addr, "unit=1").await;
        // One publish through one worker reaches the clients of both (via Redis).
        let answer = publish(addr, json!({"channel": "broadcast", "count": 3})).await;
        assert_eq!(answer["ranges"], json!([[0, 2]]));
        for (worker, ws) in &mut clients {
            let got = envelopes(ws, 3, Duration::from_secs(5)).await;
            assert_eq!(seqs(&got), [0, 1, 2], "worker {worker}");
            assert!(got.iter().all(|r| r.json["worker"].as_u64() == Some(*worker)), "delivered by its own worker");
        }
        // Kill worker 1: reported, restarted, serving again.
        let pids = sup.worker_pids();
        let victim = pids[1].expect("worker 1 runs");
        // SAFETY: kill(2) on a child process of this test's supervisor.
        unsafe {
            libc::kill(victim as libc::pid_t, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while sup.restarts() < 1 || !events.iter().any(|e| matches!(e, SupervisorEvent::Restarted { .. })) {
            assert!(Instant::now() < deadline, "no restart: {events:?}");
            events.extend(sup.events());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            events.contains(&SupervisorEvent::Exited { worker: 1, pid: victim, status: "killed by signal 9".into() }),
            "{events:?}"
        );
        let new_pid = sup.worker_pids()[1].expect("restarted");
        assert_ne!(new_pid, victim);
        assert_eq!(sup.restarts(), 1);
        // Its clients were cut; new connections reach both workers again.
        drop(clients);
        let deadline = Instant::now() + Duration::from_secs(10);
        let clients = loop {
            // The restarted worker may still be starting: connections go to the other.
            let attempt = tokio::time::timeout(Duration::from_secs(5), one_per_worker(addr, "")).await;
            if let Ok(c) = attempt {
                break c;
            }
            assert!(Instant::now() < deadline, "the restarted worker never served");
        };
        let served: Vec<u64> = clients.iter().map(|(w, _)| *w).collect();
        assert!(served.contains(&1), "{served:?}");
        for (_, ws) in clients {
            close(ws).await;
        }
    })
    .await;
    let ended = sup.stop();
    assert_eq!(ended, [Some("exit code 0".to_string()), Some("exit code 0".to_string())], "graceful stops");
}

#[tokio::test]
async fn stopping_the_supervisor_closes_clients_with_1001() {
    let redis = redis();
    let sup = supervise(redis.url(), 1);
    let (mut ws, _) = bounded(connect(sup.addr(), "unit=2")).await;
    let stopper = std::thread::spawn(move || sup.stop());
    let frame = bounded(async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => break f.expect("a close frame"),
                Some(Ok(_)) => continue,
                other => panic!("expected a close, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(frame.code, CloseCode::Away);
    drop(ws);
    assert_eq!(stopper.join().unwrap(), [Some("exit code 0".to_string())]);
}

#[tokio::test]
async fn the_target_starts_its_own_redis_and_stops_it() {
    let config = TargetConfig {
        redis: None,
        workers: 1,
        worker: WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), ""),
        program: worker_program(),
        args: Vec::new(),
        balancer: Default::default(),
    };
    let target = match Target::start(config) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert!(target.redis_embedded() && target.redis_url().starts_with("redis://127.0.0.1:"), "{}", target.redis_url());
    let port: u16 = target.redis_url().trim_start_matches("redis://127.0.0.1:").trim_end_matches('/').parse().unwrap();
    bounded(async {
        let (mut ws, _) = connect(target.addr(), "user=ana").await;
        publish(target.addr(), json!({"channel": "person:ana", "count": 2})).await;
        assert_eq!(seqs(&envelopes(&mut ws, 2, Duration::from_secs(5)).await), [0, 1]);
        close(ws).await;
    })
    .await;
    let addr = target.addr();
    target.stop();
    assert!(std::net::TcpStream::connect(addr).is_err(), "workers gone");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "embedded redis gone");
}

#[tokio::test]
async fn an_embedded_redis_that_dies_by_itself_is_restarted_on_its_port() {
    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), "");
    worker.faults = loadgen_target::faults::parse_all(&["duplicate=100"]).unwrap();
    let config = TargetConfig {
        redis: None,
        workers: 1,
        worker,
        program: worker_program(),
        args: Vec::new(),
        balancer: Default::default(),
    };
    let target = Target::start(config).unwrap_or_else(|e| panic!("{e}"));
    let url = target.redis_url().to_string();
    let (a, pid) = (target.addr(), target.redis_pid().expect("running"));
    bounded(async {
        let (mut ws, _) = connect(a, "unit=1").await;
        // SAFETY: kill(2) on the target's own redis-server child.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while !events.iter().any(|e| matches!(e, SupervisorEvent::RedisRestarted { .. })) {
            assert!(Instant::now() < deadline, "not restarted: {events:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            events.extend(target.events());
        }
        let port: u16 = url.trim_start_matches("redis://127.0.0.1:").trim_end_matches('/').parse().unwrap();
        let exited = SupervisorEvent::RedisExited { pid, port, status: "killed by signal 9".into() };
        assert_eq!(events[0], exited);
        assert!(events[0].to_string().ends_with("exited: killed by signal 9; restarting"), "{}", events[0]);
        assert_eq!((target.redis_restarts(), target.redis_url()), (1, url.as_str()), "the same port");
        assert_ne!(target.redis_pid(), Some(pid));
        // The worker reconnects and resubscribes; the client hears new messages (twice:
        // duplicate=100 was stored again by the worker in the empty Redis).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _) = http(a, "POST", "/publish", &json!({"channel": "unit:1"}).to_string()).await;
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "publishing after the restart: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seqs(&envelopes(&mut ws, 2, Duration::from_secs(5)).await), [0, 0], "from 0: Redis came back empty");
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let stored: Option<String> = redis::cmd("GET").arg("loadgen-target:faults").query_async(&mut c).await.unwrap();
        assert_eq!(stored.as_deref(), Some(r#"["duplicate=100"]"#), "the fault list put back");
        close(ws).await;
    })
    .await;
    target.stop();
}

#[test]
fn a_missing_redis_server_is_one_line_with_the_fix() {
    let err = loadgen_target::EmbeddedRedis::start_program(Path::new("/nonexistent/redis-server")).unwrap_err();
    assert!(matches!(err, TargetError::RedisServerNotFound));
    assert_eq!(
        err.to_string(),
        "redis-server not found: install it (apt-get install redis-server) or pass --redis redis://HOST:PORT"
    );
}

#[test]
fn an_unreachable_redis_is_refused_before_any_worker_starts() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/");
    let config = TargetConfig {
        redis: Some(url.clone()),
        workers: 1,
        worker: WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), ""),
        program: worker_program(),
        args: Vec::new(),
        balancer: Default::default(),
    };
    let started = Instant::now();
    let err = Target::start(config).unwrap_err();
    assert!(matches!(err, TargetError::Redis { .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("redis at {url}: ")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn admin_faults_reach_every_worker_process_and_a_restarted_one() {
    let redis = redis();
    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), redis.url());
    worker.admin_token = Some("tok".into());
    let sup = Supervisor::start(SupervisorConfig {
        workers: 2,
        program: worker_program(),
        args: Vec::new(),
        worker,
        own_ports: false,
    })
    .expect("workers start");
    bounded(async {
        let addr = sup.addr();
        let mut clients = one_per_worker(addr, "unit=4").await;
        // One request, to whichever worker: both switch.
        let (status, answer) = admin(addr, "tok", json!({"faults": ["duplicate=100"]})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["workers_notified"], 2, "both workers heard it: {answer}");
        publish(addr, json!({"channel": "unit:4", "count": 2})).await;
        for (worker, ws) in &mut clients {
            assert_eq!(seqs(&envelopes(ws, 4, Duration::from_secs(5)).await), [0, 0, 1, 1], "worker {worker}");
        }
        // A worker started after the switch applies it too (the list is kept in Redis).
        let victim = sup.worker_pids()[1].expect("worker 1 runs");
        // SAFETY: kill(2) on a child process of this test's supervisor.
        unsafe {
            libc::kill(victim as libc::pid_t, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while sup.worker_pids()[1].is_none_or(|p| p == victim) {
            assert!(Instant::now() < deadline, "not restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(clients);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut clients = loop {
            if let Ok(c) = tokio::time::timeout(Duration::from_secs(5), one_per_worker(addr, "unit=4")).await {
                break c;
            }
            assert!(Instant::now() < deadline, "the restarted worker never served");
        };
        publish(addr, json!({"channel": "unit:4", "count": 1})).await;
        for (worker, ws) in &mut clients {
            assert_eq!(seqs(&envelopes(ws, 2, Duration::from_secs(5)).await), [2, 2], "worker {worker}");
        }
        for (_, ws) in clients {
            close(ws).await;
        }
    })
    .await;
    sup.stop();
}

#[tokio::test]
async fn crash_worker_at_makes_worker_0_exit_once_and_the_supervisor_restarts_it() {
    let redis = redis();
    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), redis.url());
    worker.faults = loadgen_target::faults::parse_all(&["crash-worker-at=1"]).unwrap();
    let sup = Supervisor::start(SupervisorConfig {
        workers: 1,
        program: worker_program(),
        args: Vec::new(),
        worker,
        own_ports: false,
    })
    .expect("workers start");
    let pid = sup.worker_pids()[0].unwrap();
    bounded(async {
        let (mut ws, _) = connect(sup.addr(), "unit=5").await;
        // The client is cut off without a close frame: the worker died.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) => return "a close frame",
                    Some(Ok(_)) => continue,
                    _ => return "cut off",
                }
            }
        })
        .await
        .expect("the crash within 5 s");
        assert_eq!(end, "cut off");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while !events.iter().any(|e| matches!(e, SupervisorEvent::Restarted { .. })) {
            assert!(Instant::now() < deadline, "no restart: {events:?}");
            events.extend(sup.events());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let exited = SupervisorEvent::Exited { worker: 0, pid, status: "exit code 70".into() };
        assert!(events.contains(&exited), "{events:?}");
        // The restarted worker serves and does not crash again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (ws, _) = connect(sup.addr(), "unit=5").await;
        assert_eq!(sup.restarts(), 1);
        assert!(sup.events().is_empty(), "no second crash");
        close(ws).await;
    })
    .await;
    sup.stop();
}
