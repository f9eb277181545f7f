//! A person's pending notifications: every message published to `person:U` is also
//! kept in the Redis list `pending:person:U` (the newest [`PENDING_MAX`], expiring the
//! pending TTL after the latest; in a Redis Cluster `pending:{person:U}`, in the
//! channel's slot), so a client that lost its connection, for example
//! when its worker crashed, and comes back with `since=SEQ` (the last sequence number
//! it got on its person channel) is sent what it missed, before anything new.
//!
//! The replay is read after the client's subscriptions are confirmed, so a message
//! published meanwhile may arrive both replayed and live; the connection drops the
//! live copy of anything it replayed ([`Dedup`]). Under `drop-pending` nothing is
//! replayed (counted): the reconnecting person sees a gap.

use crate::envelope::Envelope;
use crate::fanout::restamp;
use crate::publish::{PublishError, Publisher};

pub use crate::publish::PENDING_MAX;

/// `since=SEQ` from an upgrade query, if given.
pub fn since_from_query(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(v) = query.unwrap_or("").split('&').find_map(|p| p.strip_prefix("since=")) else {
        return Ok(None);
    };
    v.parse().map(Some).map_err(|_| format!("since={v:?} is not a sequence number"))
}

/// The kept messages of `channel` numbered above `since`, restamped for `worker`, in
/// order, and the highest number among them.
pub async fn missed(
    publisher: &Publisher,
    channel: &str,
    since: u64,
    worker: u32,
) -> Result<(Vec<String>, Option<u64>), PublishError> {
    let key = publisher.key("pending:", channel)?;
    let mut conn = publisher.connection(&key).await?;
    let kept: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .map_err(|e| PublishError::Redis(e.to_string()))?;
    let mut out = Vec::new();
    let mut max = None;
    for text in kept {
        let Ok(env) = serde_json::from_slice::<Envelope>(&text) else { continue };
        if env.seq <= since {
            continue;
        }
        if let Some((t, _)) = restamp(&text, worker) {
            out.push(t);
            max = Some(env.seq);
        }
    }
    Ok((out, max))
}

/// Drops live copies of replayed messages: those of `channel` numbered up to `max`,
/// until the first one above it.
#[derive(Debug)]
pub struct Dedup {
    channel: String,
    max: u64,
}

impl Dedup {
    pub fn new(channel: String, max: u64) -> Self {
        Self { channel, max }
    }

    /// Whether `text` is to be sent; `done` turns true once no more copies can come.
    pub fn keep(&self, text: &str, done: &mut bool) -> bool {
        match serde_json::from_str::<Envelope>(text) {
            Ok(env) if env.ch == self.channel => {
                if env.seq <= self.max {
                    false
                } else {
                    *done = true;
                    true
                }
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeParts;

    #[test]
    fn since_and_dedup() {
        assert_eq!(since_from_query(Some("user=a&since=41")), Ok(Some(41)));
        assert_eq!(since_from_query(Some("user=a")), Ok(None));
        assert!(since_from_query(Some("since=x")).unwrap_err().contains("not a sequence number"));
        let d = Dedup::new("person:a".into(), 5);
        let env = |ch: &str, seq| EnvelopeParts::new(ch, 0, None).assemble(seq, 1);
        let mut done = false;
        assert!(!d.keep(&env("person:a", 5), &mut done) && !done);
        assert!(d.keep(&env("unit:1", 2), &mut done) && !done);
        assert!(d.keep(&env("person:a", 6), &mut done) && done);
    }
}
