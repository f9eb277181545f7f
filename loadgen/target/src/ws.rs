//! One WebSocket connection after the worker routed its upgrade here: the handshake
//! (tokio-tungstenite, over the bytes already read) with the admission checks of
//! [`crate::admit`] on its head, the client's channels, joining the hub (the `lgready` message once Redis confirmed them), then one
//! loop until the end: queued notifications are written in batches, client frames read
//! (tungstenite answers pings and closes; `stop-pong` removes the pongs at the wire,
//! `pong-jitter` holds them),
//! server pings every ping interval, a close for idleness (nothing received for the
//! idle timeout, 1000 "idle timeout"), a slow consumer (1008 "slow consumer"), or the
//! worker stopping (1001 "server shutting down"). A write stuck past the write timeout
//! drops the connection. Leaving the hub and the counts are done on every path out.
//!
//! What a client sends is policed: messages beyond the message rate close with 1008,
//! a message over the size limit with 1009, a protocol violation with 1002 (1007 for
//! invalid UTF-8); `no-rate-limit`, `no-size-limit` (the limit raised to 64 MiB, for
//! connections opened while it is on) and `lenient-frames` (unmasked frames accepted,
//! from the upgrade on; any other violation ends the connection without a close
//! frame) loosen that, and `leak-idle` never closes an idle connection.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::admit::admit;
use crate::envelope::ready_message;
use crate::limits::Bucket;
use crate::metrics::Metrics;
use crate::pending::Dedup;
use crate::pong_filter::PongFilter;
use crate::prefixed::Prefixed;
use crate::queue::{Next, Outbound};
use crate::worker::State;

pub(crate) type Ws = WebSocketStream<PongFilter<Prefixed<TcpStream>>>;

/// How long the handshake, and Redis's confirmation of the subscriptions, may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client has to answer our close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a stalled connection looks whether `stall-reads` is still on.
const STALL_RECHECK: Duration = Duration::from_millis(50);
/// Most notifications written per flush.
const WRITE_BATCH: usize = 64;

/// Why the loop ended.
pub(crate) enum End {
    /// The client closed or the connection broke: nothing more to send.
    Gone,
    /// We close with this code and reason.
    Close(CloseCode, &'static str),
}

/// The upgrade: admission on the head, then the handshake; the WebSocket and the
/// client's channels, or `None` (refused or failed, counted).
pub(crate) async fn handshake(
    stream: Prefixed<TcpStream>,
    query: Option<&str>,
    peer: IpAddr,
    state: &Arc<State>,
) -> Option<(Ws, Vec<String>)> {
    let m = &state.metrics;
    let faults = state.faults.get();
    let limit = if faults.no_size_limit { crate::worker::NO_SIZE_LIMIT_CAP } else { state.config.max_message_bytes };
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        .accept_unmasked_frames(faults.lenient_frames)
        .write_buffer_size(0);
    let filter = PongFilter::new(stream, m.pongs.clone());
    let rate = crate::admit::conn_rate(peer, state).await;
    let mut admitted: Option<Vec<String>> = None;
    let check = |req: &Request, mut r: WsResponse| match admit(req, query, peer, state, rate) {
        Ok(channels) => {
            admitted = Some(channels);
            if let Some(chosen) = crate::admit::subprotocol(req, &state.config.subprotocols)
                && let Ok(value) = chosen.parse()
            {
                r.headers_mut().insert("sec-websocket-protocol", value);
            }
            Ok(r)
        }
        Err(refusal) => Err(refusal.response()),
    };
    let accept = tokio_tungstenite::accept_hdr_async_with_config(filter, check, Some(config));
    let mut ws = match timeout(SETUP_TIMEOUT, accept).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            Metrics::inc(&m.upgrades_failed);
            tracing::debug!(error = %e, "upgrade failed");
            return None;
        }
        Err(_) => {
            Metrics::inc(&m.upgrades_failed);
            return None;
        }
    };
    let channels = admitted?;
    ws.get_mut().arm(state.faults.pong_switches());
    Metrics::inc(&m.upgrades);
    Some((ws, channels))
}

pub(crate) async fn serve(stream: Prefixed<TcpStream>, query: Option<String>, peer: IpAddr, state: Arc<State>) {
    let Some((mut ws, channels)) = handshake(stream, query.as_deref(), peer, &state).await else { return };
    let m = state.metrics.clone();
    Metrics::inc(&m.connections_open);
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let out = Arc::new(Outbound::new(state.config.queue_capacity, state.config.slow_consumer));
    let confirmed = state.hub.join(conn, &channels, &out);
    let end = match timeout(SETUP_TIMEOUT, confirmed).await {
        Ok(Ok(())) => {
            let ready = Message::text(ready_message(state.config.id, &channels));
            match timeout(state.config.write_timeout, ws.send(ready)).await {
                Ok(Ok(())) => match replay(&mut ws, query.as_deref(), &channels, &state).await {
                    Ok(dedup) => run(&mut ws, &out, &state, dedup).await,
                    Err(()) => End::Gone,
                },
                _ => End::Gone,
            }
        }
        _ => End::Close(CloseCode::Error, "redis unavailable"),
    };
    state.hub.leave(conn, &channels);
    out.close();
    if let End::Close(code, reason) = end {
        close(&mut ws, code, reason, &state).await;
    }
    Metrics::dec(&m.connections_open);
}

/// For a person reconnecting with `since=SEQ`: sends the kept notifications they
/// missed (none under `drop-pending`); what the loop must then not send twice.
async fn replay(ws: &mut Ws, query: Option<&str>, channels: &[String], state: &State) -> Result<Option<Dedup>, ()> {
    let (Ok(Some(since)), Some(person)) =
        (crate::pending::since_from_query(query), channels.iter().find(|c| c.starts_with("person:")))
    else {
        return Ok(None);
    };
    let (texts, max) = match crate::pending::missed(&state.publisher, person, since, state.config.id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a person's pending notifications");
            return Ok(None);
        }
    };
    let m = &state.metrics;
    if state.faults.get().drop_pending {
        Metrics::add(&m.pending_dropped, texts.len() as u64);
        return Ok(None);
    }
    let n = texts.len() as u64;
    let write = async {
        for t in texts {
            ws.feed(Message::text(t)).await?;
        }
        ws.flush().await
    };
    match timeout(state.config.write_timeout, write).await {
        Ok(Ok(())) => {
            Metrics::add(&m.pending_replayed, n);
            Metrics::add(&m.delivered, n);
            Ok(max.map(|max| Dedup::new(person.clone(), max)))
        }
        _ => Err(()),
    }
}

/// The connection's loop; returns how it ends.
async fn run(ws: &mut Ws, out: &Outbound, state: &State, mut dedup: Option<Dedup>) -> End {
    let m = &*state.metrics;
    let cfg = &state.config;
    let mut shutdown = state.shutdown.clone();
    let mut last_seen = Instant::now();
    let mut pings = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    let mut batch: Vec<Utf8Bytes> = Vec::with_capacity(WRITE_BATCH);
    let mut bucket = cfg.msg_rate.map(|r| Bucket::full(r, std::time::Instant::now()));
    let mut changes = state.faults.changes();
    loop {
        // `stall-reads`: nothing is read (no pongs, no closes) and nobody is idle.
        let stalled = state.faults.get().stall_reads;
        tokio::select! {
            biased;
            _ = crate::worker::stopped(&mut shutdown) => return End::Close(CloseCode::Away, "server shutting down"),
            Ok(()) = changes.changed() => {}
            _ = tokio::time::sleep(STALL_RECHECK), if stalled => {
                last_seen = Instant::now();
            }
            frame = ws.next(), if !stalled => match frame {
                None => return End::Gone,
                Some(Err(e)) => return violation(e, state),
                Some(Ok(msg)) => {
                    last_seen = Instant::now();
                    if let (Some(b), Some(rate)) = (bucket.as_mut(), cfg.msg_rate)
                        && matches!(msg, Message::Text(_) | Message::Binary(_) | Message::Ping(_))
                        && b.take(rate, std::time::Instant::now()).is_err()
                        && !state.faults.get().no_rate_limit
                    {
                        Metrics::inc(&m.closed_message_rate);
                        return End::Close(CloseCode::Policy, "message rate limit exceeded");
                    }
                    if let Message::Text(text) = &msg
                        && is_app_ping(text)
                    {
                        let pong = Message::text(format!("{{\"type\":\"pong\",\"worker\":{}}}", cfg.id));
                        if !matches!(timeout(cfg.write_timeout, ws.send(pong)).await, Ok(Ok(()))) {
                            return End::Gone;
                        }
                    }
                    // A close is answered by tungstenite on the next read, which then ends.
                }
            },
            next = out.pop_batch(&mut batch, WRITE_BATCH) => {
                if let Err(Next::Overflowed) = next {
                    return End::Close(CloseCode::Policy, "slow consumer");
                }
                if let Some(d) = &dedup {
                    let mut done = false;
                    batch.retain(|t| d.keep(t, &mut done));
                    if done {
                        dedup = None;
                    }
                }
                let n = batch.len() as u64;
                let write = async {
                    for text in batch.drain(..) {
                        ws.feed(Message::Text(text)).await?;
                    }
                    ws.flush().await
                };
                match timeout(cfg.write_timeout, write).await {
                    Ok(Ok(())) => Metrics::add(&m.delivered, n),
                    Ok(Err(_)) => return End::Gone,
                    Err(_) => {
                        tracing::debug!("write timed out: dropping the connection");
                        return End::Gone;
                    }
                }
            }
            _ = pings.tick() => {
                let stamp = crate::unix_us().to_be_bytes().to_vec();
                if !matches!(timeout(cfg.write_timeout, ws.send(Message::Ping(stamp.into()))).await, Ok(Ok(()))) {
                    return End::Gone;
                }
                Metrics::inc(&m.pings_sent);
            }
            _ = sleep_until(last_seen + cfg.idle_timeout) => {
                if state.faults.get().leak_idle {
                    // Never reaped: look again after another idle timeout.
                    last_seen = Instant::now();
                    continue;
                }
                Metrics::inc(&m.idle_closed);
                return End::Close(CloseCode::Normal, "idle timeout");
            }
        }
    }
}

/// How a read error ends the connection: a close with the code RFC 6455 §7.4.1 gives
/// it, or (a broken connection, or any violation under `lenient-frames`) nothing.
pub(crate) fn violation(e: WsError, state: &State) -> End {
    let m = &state.metrics;
    let end = match e {
        WsError::Capacity(_) => {
            Metrics::inc(&m.closed_too_big);
            End::Close(CloseCode::Size, "message too big")
        }
        WsError::Utf8(_) => End::Close(CloseCode::Invalid, "invalid UTF-8"),
        WsError::Protocol(p)
            if !matches!(p, tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) =>
        {
            End::Close(CloseCode::Protocol, "protocol error")
        }
        _ => return End::Gone,
    };
    if let End::Close(CloseCode::Invalid | CloseCode::Protocol, _) = end {
        if state.faults.get().lenient_frames {
            return End::Gone;
        }
        Metrics::inc(&m.closed_protocol);
    }
    end
}

/// `{"type":"ping"}` (any spacing): the application-level ping of browser clients.
pub(crate) fn is_app_ping(text: &str) -> bool {
    text.len() < 256
        && serde_json::from_str::<serde_json::Value>(text)
            .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("ping"))
}

/// Sends our close and waits (bounded) for the client's reply.
pub(crate) async fn close(ws: &mut Ws, code: CloseCode, reason: &'static str, state: &State) {
    let frame = CloseFrame { code, reason: reason.into() };
    if timeout(state.config.write_timeout, ws.close(Some(frame))).await.is_err() {
        return;
    }
    let _ = timeout(CLOSE_TIMEOUT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}
