//! Faults switched at run time across every worker: `POST /admin/faults` and `GET
//! /admin/faults`, token-protected (`Authorization: Bearer TOKEN`).
//!
//! Workers are separate processes, so they share the fault list through Redis: the
//! worker that takes the request stores the new list under [`FAULTS_KEY`] and publishes
//! it on [`CONTROL_CHANNEL`] in one script call (the answer says how many workers
//! heard it). Every worker's subscriber connection listens on that channel, and after
//! each (re)connect reads the key, so a worker that was down or restarted picks up the
//! list in force. The supervisor stores the `--fault` list at start, so a stale list
//! left in an external Redis by an earlier run is replaced.
//!
//! Request body, a JSON object, one of:
//! - `{"faults": ["drop-fanout=50", "delay=300"]}`: the whole list (`[]` clears all);
//! - `{"on": ["duplicate=10"], "off": ["delay"]}`: switch kinds on (replacing the same
//!   kind) and off by name, from the list in force.
//!
//! Answers: 200 `{"faults": [...], "workers_notified": N}`; 401 without the token or
//! with another one; 403 when the worker has no admin token; 400 for a malformed body
//! or an unknown fault, in one line; 503 when Redis is unavailable.

use serde::Deserialize;

use crate::faults::{FAULT_NAMES, FAULT_SYNTAX, Fault, edit, parse_all};
use crate::publish::{PublishError, Publisher};

/// Where the fault list in force is stored (JSON array of specs).
pub const FAULTS_KEY: &str = "loadgen-target:faults";
/// Where a new fault list is announced to every worker.
pub const CONTROL_CHANNEL: &str = "loadgen-target:control";

// KEYS: the list's key. ARGV: the list, the control channel (not a key: in a cluster
// it is classic Pub/Sub, relayed to every node from any slot).
const STORE_AND_ANNOUNCE: &str = r"
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('PUBLISH', ARGV[2], ARGV[1])
";

/// An admin request as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminRequest {
    faults: Option<Vec<String>>,
    on: Option<Vec<String>>,
    off: Option<Vec<String>>,
}

/// What an admin request asks for.
#[derive(Debug, PartialEq)]
pub enum Change {
    Replace(Vec<Fault>),
    Edit { on: Vec<Fault>, off: Vec<String> },
}

impl Change {
    /// The list after this change to `current`.
    pub fn apply(&self, current: &[Fault]) -> Vec<Fault> {
        match self {
            Change::Replace(list) => list.clone(),
            Change::Edit { on, off } => edit(current, on, off),
        }
    }
}

/// Reads an admin request body; the error is one line for a 400.
pub fn parse_request(body: &[u8]) -> Result<Change, String> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(r#"invalid admin request: expected a JSON object such as {"faults":["drop-fanout=50"]}"#.into());
    }
    let req: AdminRequest = serde_json::from_slice(body).map_err(|e| format!("invalid admin request: {e}"))?;
    let specs = |list: &[String]| parse_all(list).map_err(|e| e.replacen("--fault", "fault", 1));
    match req {
        AdminRequest { faults: Some(list), on: None, off: None } => Ok(Change::Replace(specs(&list)?)),
        AdminRequest { faults: None, on, off } if on.is_some() || off.is_some() => {
            let on = specs(&on.unwrap_or_default())?;
            let off = off.unwrap_or_default();
            if let Some(bad) = off.iter().find(|n| !FAULT_NAMES.contains(&n.as_str())) {
                return Err(format!("cannot switch off {bad:?}: not a fault name; accepted: {FAULT_SYNTAX}"));
            }
            if let Some(both) = on.iter().find(|f| off.iter().any(|n| n == f.name())) {
                return Err(format!("{} is both switched on and off", both.name()));
            }
            Ok(Change::Edit { on, off })
        }
        _ => Err(r#"invalid admin request: give either "faults" (the whole list) or "on"/"off""#.into()),
    }
}

/// A fault list as stored and announced; `None` if it is not one (logged).
pub fn decode_list(payload: &[u8]) -> Option<Vec<Fault>> {
    match serde_json::from_slice::<Vec<Fault>>(payload) {
        Ok(list) => Some(list),
        Err(e) => {
            tracing::warn!(error = %e, "a fault list in Redis that is not one: ignored");
            None
        }
    }
}

/// Stores `list` and announces it to every worker; how many heard it.
pub async fn store_and_announce(publisher: &Publisher, list: &[Fault]) -> Result<u64, PublishError> {
    let json = serde_json::to_string(list).expect("a fault list serializes");
    let mut conn = publisher.connection(FAULTS_KEY).await?;
    redis::Script::new(STORE_AND_ANNOUNCE)
        .key(FAULTS_KEY)
        .arg(json)
        .arg(CONTROL_CHANNEL)
        .invoke_async::<u64>(&mut conn)
        .await
        .map_err(|e| PublishError::Redis(e.to_string()))
}

/// The list stored in `url`'s Redis, if any (read by a worker after it (re)subscribed).
/// In a cluster, a `MOVED` answer is followed to the node it names.
pub async fn stored(client: &redis::Client) -> redis::RedisResult<Option<Vec<Fault>>> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    let text: Option<Vec<u8>> = match redis::cmd("GET").arg(FAULTS_KEY).query_async(&mut conn).await {
        Err(e) if e.redirect_node().is_some() => {
            let mut there = moved_to(client, &e)?.get_multiplexed_async_connection().await?;
            redis::cmd("GET").arg(FAULTS_KEY).query_async(&mut there).await?
        }
        other => other?,
    };
    Ok(text.and_then(|t| decode_list(&t)))
}

/// Stores `list` unless a list is stored (a worker that found none after a reconnect,
/// for example to a Redis restarted empty, puts back the one it applies).
pub async fn store_if_absent(client: &redis::Client, list: &[Fault]) -> redis::RedisResult<()> {
    let json = serde_json::to_string(list).expect("a fault list serializes");
    let mut conn = client.get_multiplexed_async_connection().await?;
    match redis::cmd("SET").arg(FAULTS_KEY).arg(&json).arg("NX").query_async::<()>(&mut conn).await {
        Err(e) if e.redirect_node().is_some() => {
            let mut there = moved_to(client, &e)?.get_multiplexed_async_connection().await?;
            redis::cmd("SET").arg(FAULTS_KEY).arg(&json).arg("NX").query_async::<()>(&mut there).await
        }
        other => other,
    }
}

/// Stores `list` (blocking; the supervisor does this before starting workers).
pub fn store_blocking(url: &str, list: &[Fault]) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(std::time::Duration::from_secs(2))?;
    let json = serde_json::to_string(list).expect("a fault list serializes");
    match redis::cmd("SET").arg(FAULTS_KEY).arg(&json).query::<()>(&mut conn) {
        // In a cluster, the key's master is the one named.
        Err(e) if e.redirect_node().is_some() => {
            let there = moved_to(&client, &e)?;
            let mut conn = there.get_connection_with_timeout(std::time::Duration::from_secs(2))?;
            redis::cmd("SET").arg(FAULTS_KEY).arg(&json).query::<()>(&mut conn)
        }
        other => other,
    }
}

/// The client of the node a `MOVED` or `ASK` answer names.
pub(crate) fn moved_to(client: &redis::Client, e: &redis::RedisError) -> redis::RedisResult<redis::Client> {
    let bad = || redis::RedisError::from((redis::ErrorKind::Client, "unusable redirection"));
    let (addr, _slot) = e.redirect_node().ok_or_else(bad)?;
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    crate::sentinel::client_at(client, host, port.parse().map_err(|_| bad())?)
}

/// Whether the request's `Authorization` value carries `token` (compared in constant
/// time).
pub fn authorized(authorization: Option<&str>, token: &str) -> bool {
    let Some(given) = authorization.and_then(|a| a.trim().strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh admin token: 32 hex digits from the kernel's random source.
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_or_are_refused_in_one_line() {
        let list = |s: &str| parse_all(&s.split(' ').collect::<Vec<_>>()).unwrap();
        assert_eq!(
            parse_request(br#"{"faults":["drop-fanout=50","delay=3"]}"#),
            Ok(Change::Replace(list("drop-fanout=50 delay=3")))
        );
        assert_eq!(parse_request(br#"{"faults":[]}"#), Ok(Change::Replace(vec![])));
        let edit = parse_request(br#"{"on":["reorder"],"off":["delay"]}"#).unwrap();
        assert_eq!(edit, Change::Edit { on: list("reorder"), off: vec!["delay".into()] });
        assert_eq!(edit.apply(&list("delay=3 duplicate=5")), list("duplicate=5 reorder"));
        let refused = |b: &str| {
            let e = parse_request(b.as_bytes()).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            e
        };
        assert!(refused("").contains("expected a JSON object"));
        assert!(refused("[1]").contains("expected a JSON object"));
        assert!(refused("{").starts_with("invalid admin request: EOF"));
        assert!(refused(r#"{"faults":["explode"]}"#).starts_with("invalid fault \"explode\": unknown fault"));
        assert!(refused(r#"{"faults":["reorder","reorder"]}"#).contains("given twice"));
        assert!(refused(r#"{"faults":[],"on":["reorder"]}"#).contains("either"));
        assert!(refused("{}").contains("either"));
        assert!(refused(r#"{"colour":1}"#).contains("unknown field `colour`"));
        assert!(refused(r#"{"off":["nope"]}"#).contains("not a fault name"));
        assert!(refused(r#"{"on":["reorder"],"off":["reorder"]}"#).contains("both"));
        assert!(refused(r#"{"faults":"reorder"}"#).contains("invalid type"));
    }

    #[test]
    fn tokens() {
        assert!(authorized(Some("Bearer abc"), "abc"));
        assert!(!authorized(Some("Bearer abd"), "abc"));
        assert!(!authorized(Some("Bearer ab"), "abc"));
        assert!(!authorized(Some("Basic abc"), "abc"));
        assert!(!authorized(None, "abc"));
        let (a, b) = (generate_token().unwrap(), generate_token().unwrap());
        assert!(a.len() == 32 && a != b && a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(decode_list(br#"["reorder"]"#), Some(vec![Fault::Reorder]));
        assert_eq!(decode_list(b"nonsense"), None);
    }
}
