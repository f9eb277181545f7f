//! Whether an upgrade is admitted, decided on its request head before the `101`: the
//! client IP's connection rate (429 with `Retry-After`), the Origin allowlist (403),
//! the query's channels (400), and with an auth secret the handshake token (401
//! without a valid one, 403 when it is for another user or unit). The faults
//! `no-rate-limit`, `ignore-origin` and `accept-no-auth` skip their check. Each
//! refusal is counted and answered with a one-line JSON error.
//!
//! With a token, the query's `user` and `unit` may be left out: the token's are used.

use std::net::IpAddr;

use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request};
use tokio_tungstenite::tungstenite::http;

use crate::auth::{find_token, verify};
use crate::envelope::channels_for_query;
use crate::limits::retry_after_secs;
use crate::metrics::Metrics;
use crate::worker::State;

/// A refused upgrade.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub reason: String,
    pub retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into(), retry_after: None }
    }

    /// The HTTP answer (tungstenite writes it instead of the `101`).
    pub fn response(&self) -> ErrorResponse {
        let body = serde_json::json!({ "error": self.reason }).to_string() + "\n";
        let mut b = http::Response::builder()
            .status(self.status)
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len())
            .header("Connection", "close");
        if let Some(s) = self.retry_after {
            b = b.header("Retry-After", s);
        }
        b.body(Some(body)).unwrap_or_default()
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The connection-rate verdict for an upgrade from `peer`: the shared bucket in Redis,
/// or the worker's own ([`crate::limits`]); always `Ok` without a limit or under
/// `no-rate-limit`.
pub(crate) async fn conn_rate(peer: IpAddr, state: &State) -> Result<(), Duration> {
    let Some(rate) = state.config.conn_rate_per_ip.filter(|_| !state.faults.get().no_rate_limit) else {
        return Ok(());
    };
    if state.config.conn_rate_scope == crate::limits::RateScope::Shared {
        match crate::limits::shared_admit(&state.publisher, peer, rate).await {
            Ok(verdict) => return verdict,
            Err(e) => tracing::debug!(error = %e, "shared connection rate unavailable: this worker's own applies"),
        }
    }
    state.per_ip.admit(peer, rate, Instant::now())
}

/// The client's channels, or why not.
/// `rate` is the connection-rate verdict, taken before the handshake
/// ([`conn_rate`]).
pub(crate) fn admit(
    req: &Request,
    query: Option<&str>,
    peer: IpAddr,
    state: &State,
    rate: Result<(), Duration>,
) -> Result<Vec<String>, Refusal> {
    let (faults, cfg, m) = (state.faults.get(), &state.config, &state.metrics);
    if let (Some(rate), Err(wait)) = (cfg.conn_rate_per_ip, rate) {
        Metrics::inc(&m.refused_rate_limited);
        let secs = retry_after_secs(wait);
        let why = format!("too many connections from {peer}: at most {rate} per second; retry in {secs} s");
        return Err(Refusal { retry_after: Some(secs), ..Refusal::new(429, why) });
    }
    if !cfg.allow_origins.is_empty()
        && !faults.ignore_origin
        && let Some(origin) = header(req, "origin")
        && !cfg.allow_origins.iter().any(|o| o.eq_ignore_ascii_case(origin.trim()))
    {
        Metrics::inc(&m.refused_forbidden);
        return Err(Refusal::new(403, format!("origin {origin:?} is not allowed")));
    }
    let bad_query = |why| Refusal::new(400, format!("bad upgrade query: {why}"));
    let mut channels = channels_for_query(query).map_err(bad_query)?;
    crate::pending::since_from_query(query).map_err(bad_query)?;
    if let Some(secret) = cfg.auth_secret.as_deref().filter(|_| !faults.accept_no_auth) {
        let refuse = |status, why: String| {
            Metrics::inc(if status == 401 { &m.refused_unauthorized } else { &m.refused_forbidden });
            Refusal::new(status, why)
        };
        let token = find_token(header(req, "authorization"), query, header(req, "cookie"))
            .ok_or_else(|| refuse(401, crate::auth::TokenError::Missing.to_string()))?;
        let claims =
            verify(secret.as_bytes(), token, crate::unix_us() / 1_000_000).map_err(|e| refuse(401, e.to_string()))?;
        let mut at = 0;
        for (prefix, value, what) in [("person:", &claims.user, "user"), ("unit:", &claims.unit, "unit")] {
            let want = format!("{prefix}{value}");
            match channels.iter().find(|c| c.starts_with(prefix)) {
                Some(c) if *c != want => {
                    let asked = &c[prefix.len()..];
                    return Err(refuse(403, format!("the token is for {what} {value:?}, not {asked:?}")));
                }
                Some(_) => {}
                None if value.is_empty() => {}
                None => {
                    channels.insert(at, want);
                    at += 1;
                }
            }
        }
    }
    Ok(channels)
}

/// The subprotocol to answer with: the first of the client's offer (in its order of
/// preference) that the target speaks; `None` when it offered none of them.
pub(crate) fn subprotocol<'a>(req: &'a Request, speaks: &[String]) -> Option<&'a str> {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|offered| speaks.iter().any(|s| s == offered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_offered_subprotocol_the_target_speaks_is_chosen() {
        let req = |offers: &[&str]| {
            let mut b = http::Request::builder().uri("/ws");
            for o in offers {
                b = b.header("Sec-WebSocket-Protocol", *o);
            }
            b.body(()).unwrap()
        };
        let speaks = ["notify.v1".to_string(), "notify.v2".to_string()];
        assert_eq!(subprotocol(&req(&["chat, notify.v2, notify.v1"]), &speaks), Some("notify.v2"));
        assert_eq!(subprotocol(&req(&["chat", "notify.v1"]), &speaks), Some("notify.v1"));
        assert_eq!(subprotocol(&req(&["chat"]), &speaks), None);
        assert_eq!(subprotocol(&req(&[]), &speaks), None);
        assert_eq!(subprotocol(&req(&["notify.v1"]), &[]), None, "a target that speaks none chooses none");
    }

    #[test]
    fn refusals_are_framed_with_their_headers() {
        let r = Refusal { retry_after: Some(3), ..Refusal::new(429, "slow down") };
        let resp = r.response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        assert_eq!(resp.body().as_deref(), Some("{\"error\":\"slow down\"}\n"));
        assert_eq!(resp.headers()["content-length"], "22");
    }
}
