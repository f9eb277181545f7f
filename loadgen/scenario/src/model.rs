//! The scenario file as typed structs: what `serde` reads from the TOML, unknown keys
//! refused (`deny_unknown_fields`), durations as text (`500ms`, `2s`, `1m`). Nothing
//! here is checked beyond its type; `compile` validates the whole.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (reports).
    pub name: String,
    /// What the scenario proves.
    #[serde(default)]
    pub description: String,
    /// What the run connects to.
    pub target: Target,
    /// How many connections, how fast, for how long.
    pub load: Load,
    /// How every connection opens.
    #[serde(default)]
    pub connection: Connection,
    /// How dropped connections come back (absent: they stay closed).
    pub reconnect: Option<Reconnect>,
    /// User groups, each with its own steps; their connections add up to
    /// `load.connections`.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Pass/fail expressions over the report's metrics.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

/// The target: a URL, or `embedded` (the reference target, `loadgen serve --mode
/// notify`, started and stopped by the run).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `ws://`, `wss://`, `http://` URL (`{i}` is the connection's number), or
    /// `embedded`.
    pub url: String,
    /// Faults of the target switched on from the start (reference target only).
    #[serde(default)]
    pub faults: Vec<String>,
}

/// The load's shape.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Connections opened.
    pub connections: u32,
    /// New connections per second.
    pub connect_rate: f64,
    /// How long to hold once every connection has started.
    #[serde(deserialize_with = "duration")]
    pub hold: Duration,
    /// Connections closed per second at the end (absent: the engine's default).
    pub close_rate: Option<f64>,
}

/// How each connection opens.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Extra request headers (`Origin`, `Authorization`, cookies); `{i}` in a value is
    /// the connection's number.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Offer permessage-deflate.
    #[serde(default)]
    pub deflate: bool,
    /// Give up a handshake after this long.
    #[serde(default, deserialize_with = "opt_duration")]
    pub handshake_timeout: Option<Duration>,
    /// A reply later than this is `late`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub reply_timeout: Option<Duration>,
}

/// Reconnect policy: exponential backoff with full jitter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    /// Ceiling of the first delay.
    #[serde(deserialize_with = "duration")]
    pub initial: Duration,
    /// Largest ceiling.
    #[serde(deserialize_with = "duration")]
    pub max: Duration,
    /// Attempts per drop before giving up (absent: no limit).
    pub limit: Option<u32>,
}

/// A group of users and what each does.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Its name (reports, errors).
    pub name: String,
    /// How many of the run's connections it has.
    pub connections: u32,
    /// What each does once open, in order.
    pub steps: Vec<StepSpec>,
}

/// One step, written `{ do = "send", text = "hi" }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Send a text message.
    Send {
        /// The text.
        text: String,
    },
    /// Wait for a text message containing `pattern`.
    WaitFor {
        /// The substring awaited.
        pattern: String,
        /// Give up after this long (absent: `connection.reply_timeout`, else 5 s).
        #[serde(default, deserialize_with = "opt_duration")]
        timeout: Option<Duration>,
    },
    /// The connection is ready (timed as `ready`).
    Ready,
    /// Ping every `every` and time the pong.
    Ping {
        /// Interval.
        #[serde(deserialize_with = "duration")]
        every: Duration,
    },
    /// Closed-loop echo: send, wait for the reply, think, send again.
    Echo {
        /// Pause after each reply.
        #[serde(default, deserialize_with = "opt_duration")]
        think: Option<Duration>,
    },
    /// Send a probe message every `every` (open model, per connection).
    Paced {
        /// Interval.
        #[serde(deserialize_with = "duration")]
        every: Duration,
    },
    /// Stop sending.
    StopTraffic,
    /// Do nothing for a while.
    Sleep {
        /// How long.
        #[serde(rename = "for", deserialize_with = "duration")]
        length: Duration,
    },
    /// Stop reading (a slow consumer: the server's buffers fill).
    StopReading,
    /// Read again.
    ResumeReading,
    /// Close with a code.
    Close {
        /// Close code (1000 normal).
        #[serde(default = "normal_close")]
        code: u16,
    },
}

fn normal_close() -> u16 {
    1000
}

/// One check: `expr` over the report's metrics.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Its name (absent: the expression).
    pub name: Option<String>,
    /// `metric OP value`, e.g. `messages.lost == 0`, `latency_us.message_rtt.p99 < 250ms`.
    pub expr: String,
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `250us`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("\"{s}\" is not a duration (like 500ms, 2s, 1m)"))?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("\"{s}\" needs a unit: us, ms, s, m or h")),
        other => return Err(format!("\"{other}\" is not a unit of time (us, ms, s, m, h)")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 366.0 * 86_400.0 {
        return Err(format!("\"{s}\" is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}
