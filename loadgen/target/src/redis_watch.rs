//! The supervisor's watch over the embedded Redis: a thread that looks every 100 ms
//! whether the `redis-server` child has exited by itself (crashed, killed, OOM), and
//! if so reports it and starts it again on the same port, empty, the way
//! [`EmbeddedRedis::restart`] does. The workers reconnect on their own (with backoff)
//! and resubscribe; the first to find no fault list stored puts its own back
//! ([`crate::control`]). A failed restart is reported and tried again with backoff
//! (100 ms doubling to 3.2 s).
//!
//! The restarted server dies with this thread (PR_SET_PDEATHSIG), which lives until
//! [`RedisWatch::stop`] hands the server back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::redis_server::EmbeddedRedis;
use crate::supervisor::SupervisorEvent;

/// How often the child is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// A running watch.
#[derive(Debug)]
pub struct RedisWatch {
    redis: Arc<Mutex<EmbeddedRedis>>,
    stop: Arc<AtomicBool>,
    restarts: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RedisWatch {
    /// Watches `redis`, sending what happens to `events`.
    pub fn start(redis: EmbeddedRedis, events: mpsc::Sender<SupervisorEvent>) -> Self {
        let redis = Arc::new(Mutex::new(redis));
        let (stop, restarts) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let thread = {
            let (redis, stop, restarts) = (redis.clone(), stop.clone(), restarts.clone());
            std::thread::Builder::new()
                .name("redis-watch".into())
                .spawn(move || watch(&redis, &stop, &restarts, &events))
                .ok()
        };
        if thread.is_none() {
            tracing::error!("cannot start the embedded Redis's watch thread: it will not be restarted");
        }
        Self { redis, stop, restarts, thread }
    }

    /// Times the embedded Redis was started again.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The server's pid now.
    pub fn pid(&self) -> Option<u32> {
        self.redis.lock().unwrap_or_else(|p| p.into_inner()).pid()
    }

    /// Stops the watch and the server (as dropping it does).
    pub fn stop(self) {}
}

impl Drop for RedisWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The server goes first: once the thread ends, a server it restarted would get
        // SIGTERM from the kernel anyway.
        self.redis.lock().unwrap_or_else(|p| p.into_inner()).stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(
    redis: &Mutex<EmbeddedRedis>,
    stop: &AtomicBool,
    restarts: &AtomicU64,
    events: &mpsc::Sender<SupervisorEvent>,
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(LOOK_EVERY);
        let mut r = redis.lock().unwrap_or_else(|p| p.into_inner());
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Some((pid, status)) = r.exited() else { continue };
        let _ = events.send(SupervisorEvent::RedisExited { pid, port: r.port(), status });
        loop {
            match r.restart() {
                Ok(()) => {
                    let n = restarts.fetch_add(1, Ordering::Relaxed) + 1;
                    let pid = r.pid().unwrap_or(0);
                    let _ = events.send(SupervisorEvent::RedisRestarted { pid, port: r.port(), restarts: n });
                    backoff = Duration::from_millis(100);
                    break;
                }
                Err(e) => {
                    let _ = events.send(SupervisorEvent::RedisRestartFailed { error: e.to_string() });
                    drop(r);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(3200));
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    r = redis.lock().unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}
