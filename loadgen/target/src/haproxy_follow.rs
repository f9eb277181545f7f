//! The supervisor's follower of the fault list, for HAProxy (`--balancer haproxy`):
//! a thread that reads the list in force ([`crate::control::FAULTS_KEY`]) every
//! [`POLL_EVERY`] and, when `no-sticky` came or went, tells HAProxy through its runtime
//! API ([`Runtime::set_sticky`]) to send new connections round robin, or back to the
//! sticky backend. Open connections stay where they are. Each switch is reported as a
//! [`SupervisorEvent::HaproxyBalancing`], a failed one as
//! [`SupervisorEvent::HaproxySwitchFailed`] (once per distinct error; retried at the
//! next look).
//!
//! Why it polls the key instead of subscribing to
//! [`crate::control::CONTROL_CHANNEL`]:
//! - it is level-triggered: it compares the stored list with what HAProxy was last
//!   told, so nothing is lost while Redis restarts or the connection is down
//!   (Pub/Sub is at-most-once), and there is no resubscribe to get right;
//! - a subscriber here would be counted by `PUBLISH`, so `workers_notified` in the
//!   answer of `POST /admin/faults` would count the supervisor as a worker;
//! - the supervisor has no async runtime, and one blocking `GET` every 200 ms on one
//!   connection costs nothing next to the workers' traffic.
//!
//! The price is up to 200 ms (plus a socket round trip) between the admin answer and
//! HAProxy switching. A key that is absent (a Redis restarted empty, before a worker
//! put the list back) or unreadable keeps the mode in force. In a cluster the key's
//! `MOVED` answer is followed to its master; with Sentinel the master is asked of the
//! sentinels again after each lost connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TargetError;
use crate::faults::Fault;
use crate::haproxy::{Runtime, Sticky};
use crate::sentinel::SentinelConfig;
use crate::supervisor::SupervisorEvent;

/// How often the stored fault list is read.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// How long connecting to Redis, and one read, may take.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the fault list is stored.
#[derive(Debug, Clone)]
pub struct FaultSource {
    /// The Redis the target uses (with Sentinel: the master found at start, whose
    /// credentials and database are kept).
    pub url: String,
    /// With Sentinel, asked for the master again after a lost connection.
    pub sentinel: Option<SentinelConfig>,
}

/// A running follower.
#[derive(Debug)]
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following `source`; HAProxy's new connections are now sticky when
    /// `sticky_now` (by `by`), round robin otherwise.
    pub fn start(
        source: FaultSource,
        runtime: Runtime,
        by: Sticky,
        sticky_now: bool,
        events: mpsc::Sender<SupervisorEvent>,
    ) -> Result<Follower, TargetError> {
        let mut reader = KeyReader::new(source)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("haproxy-follow".into())
                .spawn(move || follow(&mut reader, &runtime, by, sticky_now, &events, &stop))
                .map_err(|e| TargetError::io("the haproxy follower thread", e))?
        };
        Ok(Follower { stop, thread: Some(thread) })
    }

    /// Stops it and waits for it (at most one Redis timeout). Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop();
    }
}

fn follow(
    reader: &mut KeyReader,
    runtime: &Runtime,
    by: Sticky,
    mut applied: bool,
    events: &mpsc::Sender<SupervisorEvent>,
    stop: &AtomicBool,
) {
    let mut last_failure: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let next = Instant::now() + POLL_EVERY;
        match reader.read() {
            Ok(Some(list)) => {
                let sticky = !list.contains(&Fault::NoSticky);
                if sticky != applied {
                    match runtime.set_sticky(sticky) {
                        Ok(()) => {
                            applied = sticky;
                            last_failure = None;
                            tracing::info!(sticky, "haproxy switched");
                            let _ = events.send(SupervisorEvent::HaproxyBalancing { sticky: sticky.then_some(by) });
                        }
                        Err(error) if last_failure.as_ref() != Some(&error) => {
                            last_failure = Some(error.clone());
                            let _ = events.send(SupervisorEvent::HaproxySwitchFailed { error });
                        }
                        Err(_) => {}
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "haproxy follower: fault list unreadable; mode kept"),
        }
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads [`crate::control::FAULTS_KEY`] over one blocking connection, kept between
/// reads.
struct KeyReader {
    source: FaultSource,
    /// The source's client (its credentials and database).
    base: redis::Client,
    /// Where the key is read now (a cluster's master of the key, Sentinel's master).
    client: redis::Client,
    conn: Option<redis::Connection>,
}

impl KeyReader {
    fn new(source: FaultSource) -> Result<KeyReader, TargetError> {
        let base = redis::Client::open(source.url.as_str())
            .map_err(|e| TargetError::Redis { url: source.url.clone(), source: e })?;
        Ok(KeyReader { source, client: base.clone(), base, conn: None })
    }

    /// The stored list; none when no list is stored.
    fn read(&mut self) -> Result<Option<Vec<Fault>>, String> {
        if self.conn.is_none() {
            if let Some(s) = &self.source.sentinel {
                let (host, port) = crate::sentinel::resolve_blocking(s).map_err(|e| e.to_string())?;
                self.client = crate::sentinel::client_at(&self.base, &host, port).map_err(|e| e.to_string())?;
            }
            let conn = self.client.get_connection_with_timeout(REDIS_TIMEOUT).map_err(|e| e.to_string())?;
            conn.set_read_timeout(Some(REDIS_TIMEOUT)).map_err(|e| e.to_string())?;
            conn.set_write_timeout(Some(REDIS_TIMEOUT)).map_err(|e| e.to_string())?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("just connected");
        match redis::cmd("GET").arg(crate::control::FAULTS_KEY).query::<Option<Vec<u8>>>(conn) {
            // Not a list (logged by the workers, which read it too): the mode is kept.
            Ok(text) => Ok(text.and_then(|t| serde_json::from_slice(&t).ok())),
            Err(e) => {
                self.conn = None;
                if e.redirect_node().is_some() {
                    // A cluster: from now on, read at the key's master.
                    self.client = crate::control::moved_to(&self.client, &e).map_err(|e| e.to_string())?;
                }
                Err(e.to_string())
            }
        }
    }
}
