//! The JSON envelope of every delivered notification, the channel names a client gets
//! from its upgrade URL, and the ready message that tells a client its subscriptions
//! are in place.
//!
//! ```text
//! {"lgprobe":1,"channel":<u32>,"seq":<u64>,"sent_us":<u64>,"sender":<u64>,"worker":<u32>,"ch":"<name>","body":<JSON or null>}
//! ```
//!
//! `channel` is the FNV-1a 32-bit hash of the channel name ([`channel_id`]); `sender`
//! is the stream id, the channel id as a u64 (one sequence per channel); `seq` counts
//! from 0 per channel (Redis `INCRBY seq:<name>`, coherent across workers); `sent_us`
//! is the intended publish time in µs since the Unix epoch, stamped before PUBLISH;
//! `worker` is the worker that delivered the message. Members are always in this order.
//! A critical message has one more member at the end, `"critical":true`; a reminder
//! ends with `"reminder":true` (after `"critical":true` when it is both).
//!
//! This module only builds and reads text; publishing is [`crate::publish`], delivery
//! [`crate::fanout`].

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The envelope version (`lgprobe`).
pub const VERSION: u32 = 1;

/// The channel every client gets.
pub const BROADCAST: &str = "broadcast";

/// Longest channel name accepted (bytes).
pub const MAX_CHANNEL_LEN: usize = 200;

/// One delivered notification.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub lgprobe: u32,
    pub channel: u32,
    pub seq: u64,
    pub sent_us: u64,
    pub sender: u64,
    pub worker: u32,
    pub ch: String,
    pub body: Option<Box<RawValue>>,
    /// Overtakes the queue (absent unless true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// Fired by the reminder scheduler; `sent_us` is then the reminder's due time
    /// (absent unless true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reminder: bool,
}

/// FNV-1a, 32 bits, of the channel name: the `channel` of its envelopes.
pub fn channel_id(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name.as_bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The envelope text around the sequence number and the send time, so a publisher can
/// stamp both at the last moment (the Lua script of [`crate::publish`] concatenates
/// `head + seq + mid + sent_us + tail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeParts {
    pub head: String,
    pub mid: String,
    pub tail: String,
}

impl EnvelopeParts {
    /// The parts for `channel` published by `worker` with `body` (JSON text, or none).
    pub fn new(channel: &str, worker: u32, body: Option<&RawValue>) -> Self {
        let id = channel_id(channel);
        let name = serde_json::to_string(channel).expect("a string serializes");
        let body = body.map_or("null", RawValue::get);
        Self {
            head: format!("{{\"lgprobe\":{VERSION},\"channel\":{id},\"seq\":"),
            mid: ",\"sent_us\":".to_string(),
            tail: format!(",\"sender\":{id},\"worker\":{worker},\"ch\":{name},\"body\":{body}}}"),
        }
    }

    /// The same, marked critical (`"critical":true` at the end).
    pub fn critical(mut self) -> Self {
        self.tail.pop();
        self.tail.push_str(",\"critical\":true}");
        self
    }

    /// The same, marked a reminder (`"reminder":true` at the end, after any
    /// `"critical":true`).
    pub fn reminder(mut self) -> Self {
        self.tail.pop();
        self.tail.push_str(",\"reminder\":true}");
        self
    }

    /// The whole envelope text (what the script builds in Redis).
    pub fn assemble(&self, seq: u64, sent_us: u64) -> String {
        format!("{}{seq}{}{sent_us}{}", self.head, self.mid, self.tail)
    }
}

/// Whether `name` is an acceptable channel name: 1 to [`MAX_CHANNEL_LEN`] bytes, no
/// control characters.
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_CHANNEL_LEN && !name.chars().any(char::is_control)
}

/// The channels of a client upgrading at `/ws?user=U&unit=N&role=R` (each optional,
/// other parameters ignored): `person:U`, `unit:N`, `role:R` and [`BROADCAST`], in that
/// order. Values are percent-decoded; an invalid one is an error naming it.
pub fn channels_for_query(query: Option<&str>) -> Result<Vec<String>, String> {
    let mut channels = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let prefix = match key {
            "user" => "person",
            "unit" => "unit",
            "role" => "role",
            _ => continue,
        };
        let value = percent_decode(value).ok_or_else(|| format!("{key}: invalid percent-encoding"))?;
        let name = format!("{prefix}:{value}");
        if value.is_empty() || !valid_channel(&name) {
            return Err(format!(
                "{key}: {value:?} is not a usable name (the channel name is at most 200 bytes, no control characters)"
            ));
        }
        if !channels.contains(&name) {
            channels.push(name);
        }
    }
    channels.push(BROADCAST.to_string());
    Ok(channels)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The first text message of every connection, sent once its channels are subscribed
/// in Redis: `{"lgready":1,"worker":W,"channels":[...]}`. Not an envelope (no
/// `lgprobe`), so probe readers skip it; scenario steps can wait for `"lgready"`.
pub fn ready_message(worker: u32, channels: &[String]) -> String {
    let channels = serde_json::to_string(channels).expect("strings serialize");
    format!("{{\"lgready\":1,\"worker\":{worker},\"channels\":{channels}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        // Reference values of FNV-1a 32.
        assert_eq!(channel_id(""), 0x811c_9dc5);
        assert_eq!(channel_id("a"), 0xe40c_292c);
        assert_eq!(channel_id("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn parts_assemble_to_the_serialized_envelope() {
        let body = RawValue::from_string(r#"{"text":"shift at 06:00","n":[1,2]}"#.into()).unwrap();
        for (channel, body) in [("unit:7", Some(&*body)), ("broadcast", None), ("person:\"q\"\\", None)] {
            let parts = EnvelopeParts::new(channel, 3, body);
            let text = parts.assemble(42, 1_795_400_000_000_000);
            let env: Envelope = serde_json::from_str(&text).unwrap();
            assert_eq!(
                (env.channel, env.sender, env.seq, env.worker),
                (channel_id(channel), channel_id(channel) as u64, 42, 3)
            );
            assert_eq!(env.ch, channel);
            assert_eq!(serde_json::to_string(&env).unwrap(), text, "member order and spelling");
        }
        let text = EnvelopeParts::new("broadcast", 0, None).assemble(0, 5);
        assert_eq!(
            text,
            format!(
                r#"{{"lgprobe":1,"channel":{},"seq":0,"sent_us":5,"sender":{},"worker":0,"ch":"broadcast","body":null}}"#,
                channel_id("broadcast"),
                channel_id("broadcast")
            )
        );
    }

    #[test]
    fn critical_envelopes_end_with_the_mark() {
        let text = EnvelopeParts::new("person:a", 1, None).critical().assemble(3, 4);
        assert!(text.ends_with(r#""body":null,"critical":true}"#), "{text}");
        let env: Envelope = serde_json::from_str(&text).unwrap();
        assert!(env.critical);
        assert_eq!(serde_json::to_string(&env).unwrap(), text);
    }

    #[test]
    fn reminders_end_with_their_mark_after_critical() {
        let text = EnvelopeParts::new("unit:1", 0, None).critical().reminder().assemble(0, 9);
        assert!(text.ends_with(r#""body":null,"critical":true,"reminder":true}"#), "{text}");
        let env: Envelope = serde_json::from_str(&text).unwrap();
        assert!(env.critical && env.reminder);
        assert_eq!(serde_json::to_string(&env).unwrap(), text);
    }

    #[test]
    fn channels_from_the_upgrade_query() {
        assert_eq!(channels_for_query(None).unwrap(), ["broadcast"]);
        assert_eq!(
            channels_for_query(Some("user=ana%20m&unit=12&role=medic&x=1")).unwrap(),
            ["person:ana m", "unit:12", "role:medic", "broadcast"]
        );
        assert_eq!(channels_for_query(Some("unit=1&unit=1")).unwrap(), ["unit:1", "broadcast"]);
        assert!(channels_for_query(Some("user=")).unwrap_err().starts_with("user:"));
        assert!(channels_for_query(Some("role=%zz")).unwrap_err().contains("percent"));
        assert!(channels_for_query(Some("unit=a%0Ab")).is_err(), "control characters");
    }

    #[test]
    fn ready_message_is_not_an_envelope() {
        let m = ready_message(2, &["unit:1".into(), "broadcast".into()]);
        assert_eq!(m, r#"{"lgready":1,"worker":2,"channels":["unit:1","broadcast"]}"#);
    }
}
