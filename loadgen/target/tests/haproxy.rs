//! The HAProxy topology (`--balancer haproxy`) with a real `haproxy` (Debian's
//! package; `cargo xtask test` installs it) and the crate's worker processes: a person
//! always reaches the same worker (consistent hashing of the user id), people spread
//! over the workers, a publish through HAProxy reaches everyone, a killed worker's
//! people are re-dispatched, and under `no-sticky` one person lands on both workers.
//! With stickiness by cookie, a client that sends back the cookie HAProxy set stays on
//! its worker whatever its query says. `no-sticky` is switched on and off mid-run
//! through `POST /admin/faults`: new connections follow, an open one stays put.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use loadgen_target::haproxy::Sticky;
use loadgen_target::target::Balancer;
use loadgen_target::{SupervisorEvent, Target, TargetConfig, WorkerConfig};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

fn target(faults: &[&str]) -> Target {
    target_with(faults, Sticky::User)
}

fn target_with(faults: &[&str], sticky: Sticky) -> Target {
    let mut worker = WorkerConfig::new(0, "127.0.0.1:0".parse().unwrap(), "");
    worker.faults = loadgen_target::faults::parse_all(faults).unwrap();
    worker.haproxy_sticky = sticky;
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

/// Switches faults through `POST /admin/faults` (on HAProxy's address) and waits until
/// the supervisor reports HAProxy switched to `sticky` (none: round robin).
async fn switch(t: &Target, change: serde_json::Value, sticky: Option<Sticky>) {
    let (status, answer) = admin(t.addr(), t.admin_token().0, change).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["workers_notified"], 2, "the supervisor is no subscriber: {answer}");
    let started = Instant::now();
    let want = SupervisorEvent::HaproxyBalancing { sticky };
    loop {
        let events = t.events();
        assert!(!events.iter().any(|e| matches!(e, SupervisorEvent::HaproxySwitchFailed { .. })), "{events:?}");
        if events.contains(&want) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "HAProxy not switched to {sticky:?} within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("HAProxy switched to {sticky:?} {} ms after the admin answer", started.elapsed().as_millis());
}

/// The workers `n` fresh connections of `user` reach, in order.
async fn placements(addr: std::net::SocketAddr, user: &str, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(worker_of(addr, user).await);
    }
    out
}

/// Round robin over two workers: each connection goes to the other one.
fn alternates(placed: &[u64]) -> bool {
    placed.windows(2).all(|w| w[0] != w[1]) && placed.iter().collect::<BTreeSet<_>>().len() == 2
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
        // The --fault list applies at start; switched off mid-run, ana sticks.
        switch(&t, json!({"off": ["no-sticky"]}), Some(Sticky::User)).await;
        let placed = placements(t.addr(), "ana", 6).await;
        assert!(placed.iter().all(|&w| w == placed[0]), "sticky again: {placed:?}");
    })
    .await;
    t.stop();
}

#[tokio::test]
async fn no_sticky_switched_mid_run_spreads_new_connections_and_back() {
    let t = target(&[]);
    bounded(async {
        let addr = t.addr();
        let home = worker_of(addr, "ana").await;
        let placed = placements(addr, "ana", 5).await;
        assert!(placed.iter().all(|&w| w == home), "sticky: {placed:?}");
        // A connection of ana's held across both switches.
        let (mut held, ready) = connect(addr, "user=ana&unit=5").await;
        assert_eq!(ready["worker"], home);

        switch(&t, json!({"on": ["no-sticky"]}), None).await;
        let placed = placements(addr, "ana", 8).await;
        assert!(alternates(&placed), "round robin over both workers: {placed:?}");
        // The open connection stayed on its worker and still hears its unit.
        publish(addr, json!({"channel": "unit:5", "count": 1})).await;
        let got = envelopes(&mut held, 1, Duration::from_secs(5)).await;
        assert_eq!((seqs(&got), got[0].json["worker"].as_u64()), (vec![0], Some(home)), "{}", got[0].text);

        switch(&t, json!({"off": ["no-sticky"]}), Some(Sticky::User)).await;
        let placed = placements(addr, "ana", 6).await;
        assert!(placed.iter().all(|&w| w == home), "sticky again, on the same worker: {placed:?}");
        publish(addr, json!({"channel": "unit:5", "count": 1})).await;
        assert_eq!(seqs(&envelopes(&mut held, 1, Duration::from_secs(5)).await), [1]);
        close(held).await;

        // On and off once more, by the whole list.
        switch(&t, json!({"faults": ["no-sticky", "duplicate=0"]}), None).await;
        assert!(alternates(&placements(addr, "ana", 4).await));
        switch(&t, json!({"faults": []}), Some(Sticky::User)).await;
        assert_eq!(placements(addr, "ana", 3).await, [home; 3]);
    })
    .await;
    t.stop();
}

/// An upgrade at `/ws?QUERY` with `cookie` (if any): the worker it reached and the
/// `Set-Cookie` of the answer.
async fn with_cookie(addr: std::net::SocketAddr, query: &str, cookie: Option<&str>) -> (u64, Option<String>) {
    let mut req = format!("ws://{addr}/ws?{query}").into_client_request().unwrap();
    if let Some(c) = cookie {
        req.headers_mut().insert("Cookie", c.parse().unwrap());
    }
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    let set = resp.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let ready: serde_json::Value =
        serde_json::from_str(&next_text(&mut ws, Duration::from_secs(5)).await.unwrap()).unwrap();
    close(ws).await;
    (ready["worker"].as_u64().unwrap(), set)
}

#[tokio::test]
async fn a_cookie_keeps_a_client_on_its_worker() {
    let t = target_with(&[], Sticky::Cookie);
    bounded(async {
        let a = t.addr();
        // No user and no cookie: round robin, and a cookie naming the worker.
        let (first, set) = with_cookie(a, "", None).await;
        let set = set.expect("HAProxy sets its cookie on the 101");
        assert!(set.starts_with(&format!("LGWORKER=w{first}")), "{set}");
        let mut seen = BTreeSet::from([first]);
        for _ in 0..6 {
            seen.insert(with_cookie(a, "", None).await.0);
        }
        assert_eq!(seen.len(), 2, "without either, round robin");
        // Sent back, the cookie wins, even over another user's hash.
        let cookie = set.split(';').next().unwrap().to_string();
        for i in 0..6 {
            let (w, again) = with_cookie(a, &format!("user=u{i}"), Some(&cookie)).await;
            assert_eq!(w, first, "pinned by the cookie");
            assert_eq!(again, None, "a valid cookie is not set again");
        }
        // A person without the cookie is still placed by the user hash.
        let home = with_cookie(a, "user=ana", None).await.0;
        for _ in 0..3 {
            assert_eq!(with_cookie(a, "user=ana", None).await.0, home);
        }
        // no-sticky switched on: round robin, cookie or not, and no cookie is set.
        switch(&t, json!({"on": ["no-sticky"]}), None).await;
        let mut placed = Vec::new();
        for _ in 0..4 {
            let (w, set) = with_cookie(a, "user=ana", Some(&cookie)).await;
            assert_eq!(set, None, "round robin sets no cookie");
            placed.push(w);
        }
        assert!(alternates(&placed), "the cookie is ignored: {placed:?}");
        // Switched off: the cookie pins again.
        switch(&t, json!({"off": ["no-sticky"]}), Some(Sticky::Cookie)).await;
        for i in 0..4 {
            assert_eq!(with_cookie(a, &format!("user=u{i}"), Some(&cookie)).await.0, first, "pinned again");
        }
    })
    .await;
    t.stop();
}
