//! The scenario file as typed structs: what `serde` reads from the TOML, unknown keys
//! refused (`deny_unknown_fields`), durations as text (`500ms`, `2s`, `1m`), and what
//! `Serialize` writes back (absent and default keys left out, durations as text again:
//! [`duration_text`]), so a scenario built in memory (`loadgen run`'s flags) can be
//! saved as a file. Nothing here is checked beyond its type; `compile` validates the
//! whole.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (reports).
    pub name: String,
    /// What the scenario proves.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What the run connects to.
    pub target: Target,
    /// How many connections, how fast, for how long.
    pub load: Load,
    /// How every connection opens.
    #[serde(default, skip_serializing_if = "Connection::is_default")]
    pub connection: Connection,
    /// How dropped connections come back (absent: they stay closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<Reconnect>,
    /// User groups, each with its own steps; their connections add up to
    /// `load.connections`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Pass/fail expressions over the report's metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckSpec>,
    /// What happens to the system under test at given seconds of the run: faults
    /// switched, messages published, a worker killed, Redis restarted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<EventSpec>,
    /// How the catalogue test proves this scenario (scenarios/ only; a run ignores it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<CatalogueSpec>,
    /// Where a server not built for loadgen keeps stream, sequence number and send
    /// time in its own messages (JSON pointers, a regex for text), or that they carry
    /// loadgen's own markers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<MessagesSpec>,
}

/// A server's own message shape: JSON pointers, a regex, or loadgen's markers (one of
/// the three; `compile` checks which keys go together).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesSpec {
    /// The sequence number's JSON pointer (`/seq`, `/data/id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    /// The send time's JSON pointer (since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// Its unit: `us`, `ms` (the default) or `s`; also of a regex's `sent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_unit: Option<String>,
    /// The stream's JSON pointer (channel, room), a string or a number (absent: one
    /// stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Text messages: a regex with named groups `seq`, `sent` and optionally `stream`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The messages carry loadgen's own markers (`do = "inject"` implies it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub marker: bool,
}

/// How `cargo xtask test` runs a catalogue scenario: its short form must pass, and the
/// same with its fault switched on must fail (exit 1, not invalid) with at least the
/// checks named failed, which proves that the scenario's oracle catches the fault it
/// exists for (other checks may fail too: a fault has side effects). With `holds`, it
/// must also pass under that disturbance.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSpec {
    /// `--set` overrides of the short form (CI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short: Vec<String>,
    /// `--set` overrides that switch the fault on (added to the short form's).
    pub fault: Vec<String>,
    /// The checks (by name) that must fail under the fault (others may fail too).
    pub fails: Vec<String>,
    /// `--set` overrides (added to the short form's) of a disturbance the scenario must
    /// still pass under: it proves the oracle gives no false positives (the heartbeat's
    /// pongs jittered below the timeout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<String>,
    /// Not run by `cargo xtask test`, only by `--long` (a soak, a million connections).
    #[serde(default, skip_serializing_if = "is_false")]
    pub long_only: bool,
}

/// The target: a URL, or `embedded` (the reference target, `loadgen serve --mode
/// notify`, started and stopped by the run).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `ws://`, `wss://`, `http://`, `https://` or `tcp://` (raw TCP) URL (`{i}` is
    /// the connection's number), or `embedded`.
    pub url: String,
    /// More URLs of the same kind: connections go round robin over `url` and these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// Faults of the target switched on from the start (reference target only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// Embedded only: the `loadgen serve` mode (`notify`, the default; `echo`, `sink`,
    /// `push`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Embedded only: the path and query each connection upgrades at (`{i}`: the
    /// connection's number; default `/ws?user=u{i}` in notify mode, `/` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Embedded only: worker processes (notify) or threads of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Embedded only: more `loadgen serve` flags, as words
    /// (`["--idle-timeout", "3"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serve: Vec<String>,
}

/// The load's shape.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Connections opened.
    pub connections: u32,
    /// New connections per second (or `phases`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_rate: Option<f64>,
    /// Connection arrivals in phases instead of one rate: a ramp, a pause
    /// (`rate = 0`), a spike; their connections (rate × length) add up to
    /// `connections`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseSpec>,
    /// How long to hold once every connection has started.
    #[serde(with = "duration_text")]
    pub hold: Duration,
    /// Connections closed per second at the end (absent: the engine's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_rate: Option<f64>,
    /// Messages per second over all connections of the `pooled` steps (open model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_rate: Option<f64>,
    /// How `message_rate` messages are spaced: `constant` (default) or `poisson`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<String>,
    /// Seed of the Poisson arrivals (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// One phase of connection arrivals.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Its name, for checks of this phase alone (absent: `phase1`, `phase2`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How long.
    #[serde(rename = "for", with = "duration_text")]
    pub length: Duration,
    /// New connections per second meanwhile (or `to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Or: connections started by the end of this phase, counting the phases before
    /// (a ramp to a count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
}

/// How each connection opens.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Extra request headers (`Origin`, `Authorization`, cookies); `{i}` in a value is
    /// the connection's number.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Offer permessage-deflate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deflate: bool,
    /// WebSocket subprotocols to offer, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subprotocols: Vec<String>,
    /// With `deflate`: keep compression contexts between messages (each connection
    /// then holds its own).
    #[serde(default, skip_serializing_if = "is_false")]
    pub deflate_context_takeover: bool,
    /// Give up a handshake after this long.
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<Duration>,
    /// Wait this long for the answer to a close frame (default 2 s).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub close_timeout: Option<Duration>,
    /// A reply later than this is `late`.
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub reply_timeout: Option<Duration>,
    /// A signed handshake token minted per connection at the start of the run, used
    /// as `{token}` in a header or the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenSpec>,
    /// Size of the probe messages `echo` and `paced` send, in bytes (default 64, at
    /// least 36: the probe header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_size: Option<u64>,
    /// Where the server's text messages name the instance holding the connection, a
    /// JSON pointer (`/worker`): each reconnect is counted as landing on the same
    /// instance as before or another (`connections.reconnected_same_server`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl Connection {
    /// Nothing set (the section can be left out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A per-connection handshake token.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// The HMAC-SHA256 key (with the embedded target, also its `--auth-secret`).
    pub secret: String,
    /// The user claim (`{i}`: the connection's number).
    #[serde(default = "default_user")]
    pub user: String,
    /// The unit claim (`{i}` too).
    #[serde(default = "default_unit")]
    pub unit: String,
    /// How long the token is valid from the start of the run (negative: not
    /// supported; an expired token is made with `ttl = "0s"`).
    #[serde(default = "default_ttl", with = "duration_text")]
    pub ttl: Duration,
    /// `reference` (the reference target's `PAYLOAD.SIGNATURE`, the default) or `jwt`
    /// (an HS256 JSON Web Token with `sub`, `unit` and `exp`).
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_user() -> String {
    "u{i}".into()
}

fn default_unit() -> String {
    "1".into()
}

fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}

fn default_format() -> String {
    "reference".into()
}

/// One event of the timeline, written `{ at = "5s", do = "fault_on", fault = "delay=300" }`.
/// Which members an action takes is checked by `compile`.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Seconds from the start of the run.
    #[serde(with = "duration_text")]
    pub at: Duration,
    /// `fault_on`, `fault_off`, `publish`, `kill_worker`, `restart_redis`, `http`.
    #[serde(rename = "do")]
    pub action: String,
    /// `fault_on`: a fault spec (`drop-fanout=20`); `fault_off`: a fault's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// `publish`: the channel (`broadcast`, `unit:7`, `person:u3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `publish`: how many messages (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `publish`: the gap between messages (absent: all at once).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// `publish`: critical messages (they overtake queued ones).
    #[serde(default, skip_serializing_if = "is_false")]
    pub critical: bool,
    /// `publish`: the body (any TOML value, sent as JSON); `http`: the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<toml::Value>,
    /// `publish`: a body of this many bytes of filler instead (large messages fill
    /// the target's queues).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size: Option<u64>,
    /// `http`: the method (default POST).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http`: the path and query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `inject`: how the markers go in, `http` or `redis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// `inject` via redis: the server, `redis://[:PASSWORD@]HOST:PORT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `inject`: the markers' stream (default `inject`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// Reconnect policy: exponential backoff, with full jitter unless told otherwise.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    /// Ceiling of the first delay.
    #[serde(with = "duration_text")]
    pub initial: Duration,
    /// Largest ceiling.
    #[serde(with = "duration_text")]
    pub max: Duration,
    /// Attempts per drop before giving up (absent: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// How each delay is drawn under its ceiling: `full` (default), `equal` or `none`.
    #[serde(default, skip_serializing_if = "JitterSpec::is_full")]
    pub jitter: JitterSpec,
}

/// `reconnect.jitter`: uniform over `[0, ceiling]` (`full`), over `[ceiling/2,
/// ceiling]` (`equal`), or the ceiling itself (`none`: a client library without jitter,
/// whose dropped clients all come back at once).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JitterSpec {
    #[default]
    Full,
    Equal,
    None,
}

impl JitterSpec {
    fn is_full(&self) -> bool {
        *self == JitterSpec::Full
    }
}

/// A group of users and what each does.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Its name (reports, errors).
    pub name: String,
    /// How many of the run's connections it has.
    pub connections: u32,
    /// This group's path and query instead of the target's (`{i}`, `{token}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Headers added to the run's for this group (one of the same name replaces it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// How the upgrade is sent: `normal` (default), `stall` (TCP connected, the request
    /// never sent: a half-open upgrade) or `slow` (one byte every `slow_every`:
    /// slowloris).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<String>,
    /// With `handshake = "slow"`: the gap between bytes (default 1s).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub slow_every: Option<Duration>,
    /// What each does once open, in order.
    pub steps: Vec<StepSpec>,
}

/// One step, written `{ do = "send", text = "hi" }`.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Send a text message: `text`, or `size` bytes of filler (an oversize message).
    Send {
        /// The text.
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// A text of this many bytes instead.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// Wait for a text message containing `pattern`.
    WaitFor {
        /// The substring awaited.
        pattern: String,
        /// Give up after this long (absent: `connection.reply_timeout`, else 5 s).
        #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// The connection is ready (timed as `ready`).
    Ready,
    /// Ping every `every` and time the pong; a pong later than `timeout` ends the
    /// connection (counted `pong_timeouts`).
    Ping {
        /// Interval.
        #[serde(with = "duration_text")]
        every: Duration,
        /// Give up on a pong after this long (absent: wait).
        #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
    /// Send a deliberately invalid frame (a defence probe), then keep reading to see
    /// the server's close code.
    Violate {
        /// The violation: `unmasked`, `invalid_utf8`, `reserved_opcode`,
        /// `reserved_bits`, `oversize_control`, `fragmented_control`,
        /// `continuation_without_start`, `interrupted_fragments`, `invalid_close_code`,
        /// `one_byte_close`, `non_minimal_length`.
        kind: String,
    },
    /// Closed-loop echo: send, wait for the reply, think, send again.
    Echo {
        /// Pause after each reply.
        #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
        think: Option<Duration>,
    },
    /// Send a probe message every `every`, or `rate` a second (open model, per
    /// connection).
    Paced {
        /// Interval.
        #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
        every: Option<Duration>,
        /// Messages per second instead of an interval.
        #[serde(skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
    },
    /// Send probe messages when the run's shared schedule (`load.message_rate`, over
    /// every connection at a `pooled` step) picks this connection (open model, total).
    Pooled,
    /// Stop sending.
    StopTraffic,
    /// Do nothing for a while.
    Sleep {
        /// How long.
        #[serde(rename = "for", with = "duration_text")]
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
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Its name (absent: the expression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `metric OP value`, e.g. `messages.lost == 0`, `latency_us.message_rtt.p99 < 250ms`.
    pub expr: String,
    /// The phase it judges (a `load.phases` name, `ramp`, `hold`; absent: the whole
    /// run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Judge it each second while the run goes on, and stop the run when it fails.
    #[serde(default, skip_serializing_if = "is_false")]
    pub abort: bool,
    /// With `abort`: not before this second of the run (or of its phase).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub abort_after: Option<Duration>,
    /// The target's defence this check proves ("forged tokens refused with 401"): its
    /// finding says whether the defence held or is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defence: Option<String>,
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

/// A duration as [`parse_duration`] reads it back: the largest unit that writes it
/// whole (`2m`, `500ms`, `250us`), else seconds with the nanoseconds (`0.000000001s`).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit, scale) in
        [("h", 3_600_000_000_000u128), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)]
    {
        if ns.is_multiple_of(scale) && ns > 0 {
            return format!("{}{unit}", ns / scale);
        }
    }
    if ns == 0 {
        return "0s".into();
    }
    format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A duration as text both ways (`"250ms"`): `#[serde(with = "duration_text")]`.
mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// An optional duration as text (with `default`: absent is `None`).
mod opt_duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration_text::deserialize(d).map(Some)
    }
}
