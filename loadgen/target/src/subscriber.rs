//! A worker's one Redis subscriber connection: it carries out the hub's subscribe,
//! unsubscribe and barrier commands (coalescing what is queued into one SUBSCRIBE and
//! one UNSUBSCRIBE), hands every message to the fan-out, and when the connection is
//! lost reconnects with backoff (100 ms doubling to 2 s), resubscribes to every channel
//! that still has a local client, and counts the reconnect. It does not publish
//! ([`crate::publish`] has its own connection).
//!
//! When the endpoint switches to another master ([`crate::sentinel`]), it reconnects
//! there and resubscribes the same way.
//!
//! It also listens on the control channel ([`crate::control`]): a fault list published
//! there replaces the worker's faults, and after every (re)connect the list stored in
//! Redis is read, so changes made while the worker was away are not missed. When none
//! is stored after a reconnect (a Redis restarted empty), the worker stores the list
//! it applies.
//!
//! The connection is RESP3 where the server speaks it, and the channels are subscribed
//! with SUBSCRIBE or, in sharded mode, SSUBSCRIBE ([`crate::pubsub`]); the control
//! channel is always classic.
//!
//! Under `no-resubscribe`, a reconnect subscribes to the control channel only: the
//! worker is deaf to every channel its clients were on (until another reconnect
//! without the fault), and the `subscriptions` gauge says 0.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::control::{CONTROL_CHANNEL, decode_list};
use crate::fanout::Fanout;
use crate::faults::LiveFaults;
use crate::hub::{Command, Hub};
use crate::metrics::Metrics;
use crate::pubsub::{PubSubMode, SubConn};

/// Most commands taken from the queue at once.
const BATCH: usize = 4096;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How the subscriber talks to Redis.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriberOptions {
    pub mode: crate::pubsub::PubSubMode,
    pub protocol: crate::pubsub::RedisProtocol,
}

/// The cluster router, if any (kept apart so the options stay `Copy`).
pub type ClusterRouter = Option<Arc<crate::cluster::Router>>;

/// Runs until `shutdown` turns true or the hub is dropped.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    endpoint: Arc<crate::endpoint::Endpoint>,
    options: SubscriberOptions,
    cluster: ClusterRouter,
    hub: Arc<Hub>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    fanout: Arc<Fanout>,
    faults: Arc<LiveFaults>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    // Barriers whose commands failed with the connection: answered after resubscribing.
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut switches = endpoint.changes();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (_, client) = switches.borrow_and_update().clone();
        let pubsub = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, SubConn::connect(&client, options.protocol, cluster.as_deref())) => r,
            _ = crate::worker::stopped(&mut shutdown) => return,
        };
        let pubsub = match pubsub {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "redis subscriber: cannot connect");
                if sleep_or_stop(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(_) => {
                tracing::warn!("redis subscriber: connection attempt timed out");
                continue;
            }
        };
        let mut sub = pubsub;
        metrics.redis_protocol.store(sub.protocol(), Ordering::Relaxed);
        let deaf = connected_before && faults.get().no_resubscribe;
        let channels = if deaf { Vec::new() } else { hub.channels() };
        if deaf {
            tracing::warn!("redis subscriber: reconnected without resubscribing (no-resubscribe)");
        }
        let subscribed = async {
            sub.subscribe_everywhere(CONTROL_CHANNEL).await?;
            sub.subscribe(&channels, options.mode).await
        };
        if let Err(e) = subscribed.await {
            tracing::warn!(error = %e, "redis subscriber: resubscribe failed");
            if sleep_or_stop(backoff, &mut shutdown).await {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        }
        match crate::control::stored(&client).await {
            Ok(Some(list)) => {
                faults.set(&list);
            }
            // After a reconnect, a Redis that lost it (restarted empty): put back the
            // list in force.
            Ok(None) if connected_before => {
                if let Err(e) = crate::control::store_if_absent(&client, &faults.list()).await {
                    tracing::warn!(error = %e, "redis: cannot store the fault list again");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "redis: cannot read the stored fault list"),
        }
        metrics.subscriptions.store(channels.len() as u64, Ordering::Relaxed);
        metrics.redis_connected.store(true, Ordering::Relaxed);
        if connected_before {
            Metrics::inc(&metrics.redis_reconnects);
            tracing::info!(channels = channels.len(), "redis subscriber: reconnected and resubscribed");
        }
        connected_before = true;
        backoff = Duration::from_millis(100);
        for b in waiting.drain(..) {
            let _ = b.send(());
        }
        let mut subscribed: HashSet<String> = channels.into_iter().collect();
        loop {
            tokio::select! {
                biased;
                _ = crate::worker::stopped(&mut shutdown) => return,
                cmd = commands.recv() => {
                    let Some(first) = cmd else { return };
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match commands.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = apply(&mut sub, options.mode, batch, &mut subscribed, &mut waiting).await {
                        tracing::warn!(error = %e, "redis subscriber: command failed; reconnecting");
                        break;
                    }
                    metrics.subscriptions.store(subscribed.len() as u64, Ordering::Relaxed);
                }
                _ = switches.changed() => {
                    tracing::info!(redis = %endpoint.addr(), "redis subscriber: the master switched; reconnecting");
                    break;
                }
                msg = sub.next() => {
                    let Some(msg) = msg else {
                        tracing::warn!("redis subscriber: connection lost (or a shard channel's slot moved); reconnecting");
                        break;
                    };
                    if msg.get_channel_name() == CONTROL_CHANNEL {
                        if let Some(list) = decode_list(msg.get_payload_bytes()) {
                            faults.set(&list);
                        }
                    } else {
                        fanout.deliver(msg.get_channel_name(), msg.get_payload_bytes());
                    }
                }
            }
        }
        metrics.redis_connected.store(false, Ordering::Relaxed);
    }
}

/// Sleeps `d` unless told to stop first (then true).
async fn sleep_or_stop(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = crate::worker::stopped(shutdown) => true,
    }
}

/// Carries out a batch: per channel the last command wins (the hub's state when it was
/// queued), then the barriers are answered. On failure the barriers wait in `waiting`.
async fn apply(
    sub: &mut SubConn,
    mode: PubSubMode,
    batch: Vec<Command>,
    subscribed: &mut HashSet<String>,
    waiting: &mut Vec<oneshot::Sender<()>>,
) -> redis::RedisResult<()> {
    let mut last: HashMap<String, bool> = HashMap::new();
    let mut barriers = Vec::new();
    for c in batch {
        match c {
            Command::Subscribe(ch) => {
                last.insert(ch, true);
            }
            Command::Unsubscribe(ch) => {
                last.insert(ch, false);
            }
            Command::Barrier(b) => barriers.push(b),
        }
    }
    let (subs, unsubs): (Vec<_>, Vec<_>) = last.into_iter().partition(|(_, sub)| *sub);
    let subs: Vec<String> = subs.into_iter().map(|(c, _)| c).collect();
    let unsubs: Vec<String> = unsubs.into_iter().map(|(c, _)| c).collect();
    let result = async {
        sub.subscribe(&subs, mode).await?;
        sub.unsubscribe(&unsubs, mode).await
    }
    .await;
    match result {
        Ok(()) => {
            subscribed.extend(subs);
            for c in &unsubs {
                subscribed.remove(c);
            }
            for b in barriers {
                let _ = b.send(());
            }
            Ok(())
        }
        Err(e) => {
            waiting.extend(barriers);
            Err(e)
        }
    }
}
