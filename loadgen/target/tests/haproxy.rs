//! The HAProxy topology (`--balancer haproxy`) with a real `haproxy` (Debian's
//! package; `cargo xtask test` installs it) and the crate's worker processes: a person
//! always reaches the same worker (consistent hashing of the user id), people spread
//! over the workers, a publish through HAProxy reaches everyone, a killed worker's
//! people are re-dispatched, and under `no-sticky` one person lands on both workers.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use loadgen_target::target::Balancer;
use loadgen_target::{Target, TargetConfig, WorkerConfig};
use serde_json::json;

fn target(faults: &[&str]) -> Target {
    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), "");
    worker.faults = loadgen_target::faults::parse_all(faults).unwrap();
    let config = TargetConfig {
        redis: None,
        workers: 2,
        worker,
        program: PathBuf::from(env!("CARGO_BIN_EXE_loadgen-target-worker")),
        args: Vec::new(),
        balancer: Balancer::Haproxy,
    };
    match Target::start(config) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// The worker that serves `user`, over a fresh connection (closed again).
async fn worker_of(addr: std::net::SocketAddr, user: &str) -> u64 {
    let (ws, ready) = connect(addr, &format!("user={user}")).await;
    close(ws).await;
    ready["worker"].as_u64().unwrap()
}

#[tokio::test]
async fn a_person_sticks_to_one_worker_people_spread_and_a_dead_worker_is_routed_around() {
    let t = target(&[]);
    let addr = t.addr();
    let workers = t.worker_addrs();
    assert!(workers.len() == 2 && workers[0] != workers[1] && !workers.contains(&addr), "{workers:?} behind {addr}");
    bounded(async {
        let home = worker_of(addr, "ana").await;
        for _ in 0..5 {
            assert_eq!(worker_of(addr, "ana").await, home, "sticky");
        }
        let mut seen = BTreeSet::new();
        for i in 0..20 {
            seen.insert(worker_of(addr, &format!("u{i}")).await);
        }
        assert_eq!(seen.len(), 2, "20 people over both workers");
        // A publish through HAProxy reaches a person on each worker.
        let (mut a, ra) = connect(addr, "user=ana&unit=3").await;
        let mut b = None;
        for i in 0..50 {
            let (ws, r) = connect(addr, &format!("user=v{i}&unit=3")).await;
            if r["worker"] != ra["worker"] {
                b = Some(ws);
                break;
            }
            close(ws).await;
        }
        let mut b = b.expect("someone on the other worker");
        publish(addr, json!({"channel": "unit:3", "count": 2})).await;
        assert_eq!(seqs(&envelopes(&mut a, 2, Duration::from_secs(5)).await), [0, 1]);
        assert_eq!(seqs(&envelopes(&mut b, 2, Duration::from_secs(5)).await), [0, 1]);
        close(a).await;
        close(b).await;
        // Kill ana's worker: until it is back, HAProxy sends her elsewhere; she always
        // gets through.
        let pid = t.worker_pids()[home as usize].unwrap();
        // SAFETY: kill(2) on a worker process of this test's target.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let attempt = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?user=ana")).await;
            if let Ok((mut ws, _)) = attempt
                && next_text(&mut ws, Duration::from_secs(5)).await.is_some_and(|t| t.contains("lgready"))
            {
                close(ws).await;
                break;
            }
            assert!(Instant::now() < deadline, "ana never got through after her worker died");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(t.restarts(), 1);
    t.stop();
    assert!(std::net::TcpStream::connect(addr).is_err(), "haproxy stopped");
}

#[tokio::test]
async fn no_sticky_sends_one_person_to_both_workers() {
    let t = target(&["no-sticky"]);
    bounded(async {
        let mut seen = BTreeSet::new();
        for _ in 0..10 {
            seen.insert(worker_of(t.addr(), "ana").await);
        }
        assert_eq!(seen.len(), 2, "round robin ignores the user");
    })
    .await;
    t.stop();
}
