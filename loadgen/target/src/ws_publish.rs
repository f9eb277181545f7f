//! The WebSocket publisher role: an upgrade at `/publish` (admitted like any upgrade:
//! rate limit, Origin, token) opens a connection on which every text message is a
//! publish request, the same JSON as the body of `POST /publish`, answered in order
//! with the same JSON as its answer, or `{"error":"…"}` (the connection stays open).
//! It subscribes to nothing; its first message is
//! `{"lgready":1,"worker":W,"publisher":true}`. Application pings are answered, the
//! idle timeout and the policing of client messages apply as on `/ws`.

use std::net::IpAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::metrics::Metrics;
use crate::prefixed::Prefixed;
use crate::publish::{PublishError, parse_request};
use crate::worker::State;
use crate::ws::{End, Ws, close, handshake, is_app_ping, violation};

pub(crate) async fn serve(stream: Prefixed<TcpStream>, query: Option<String>, peer: IpAddr, state: Arc<State>) {
    let Some((mut ws, _channels)) = handshake(stream, query.as_deref(), peer, &state).await else { return };
    let m = state.metrics.clone();
    Metrics::inc(&m.connections_open);
    let ready = format!("{{\"lgready\":1,\"worker\":{},\"publisher\":true}}", state.config.id);
    let end = match timeout(state.config.write_timeout, ws.send(Message::text(ready))).await {
        Ok(Ok(())) => run(&mut ws, &state).await,
        _ => End::Gone,
    };
    if let End::Close(code, reason) = end {
        close(&mut ws, code, reason, &state).await;
    }
    Metrics::dec(&m.connections_open);
}

async fn run(ws: &mut Ws, state: &State) -> End {
    let cfg = &state.config;
    let mut shutdown = state.shutdown.clone();
    let mut last_seen = Instant::now();
    loop {
        let answer = tokio::select! {
            biased;
            _ = crate::worker::stopped(&mut shutdown) => return End::Close(CloseCode::Away, "server shutting down"),
            frame = ws.next() => match frame {
                None => return End::Gone,
                Some(Err(e)) => return violation(e, state),
                Some(Ok(Message::Text(text))) => {
                    last_seen = Instant::now();
                    if is_app_ping(&text) {
                        format!("{{\"type\":\"pong\",\"worker\":{}}}", cfg.id)
                    } else {
                        Metrics::inc(&state.metrics.ws_publish_requests);
                        answer(text.as_bytes(), state).await
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    last_seen = Instant::now();
                    error("publish requests are JSON text messages, not binary")
                }
                Some(Ok(_)) => {
                    last_seen = Instant::now();
                    continue;
                }
            },
            _ = sleep_until(last_seen + cfg.idle_timeout) => {
                Metrics::inc(&state.metrics.idle_closed);
                return End::Close(CloseCode::Normal, "idle timeout");
            }
        };
        if !matches!(timeout(cfg.write_timeout, ws.send(Message::text(answer))).await, Ok(Ok(()))) {
            return End::Gone;
        }
    }
}

fn error(why: &str) -> String {
    serde_json::json!({ "error": why }).to_string()
}

/// The answer to one publish request, as `POST /publish` gives it.
async fn answer(body: &[u8], state: &State) -> String {
    let req = match parse_request(body) {
        Ok(r) => r,
        Err(e) => return error(&e.to_string()),
    };
    match state.publisher.publish(&req, &state.metrics).await {
        Ok(p) => serde_json::to_string(&p).expect("serializes"),
        Err(e @ (PublishError::Invalid(_) | PublishError::Redis(_) | PublishError::Open(_))) => error(&e.to_string()),
    }
}
