//! The timeline: what happens to the system under test at given seconds of a run
//! (faults switched on and off, messages published, a worker killed, Redis restarted,
//! an HTTP request to a server of the user's, loadgen's own markers injected through
//! the system's publish path), checked against the target it needs.
//! Carrying it out is the caller's (the run's director); this only validates.

use std::time::Duration;

use crate::compile::TargetSpec;
use crate::model::EventSpec;

/// One event of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// From the start of the run.
    pub at: Duration,
    /// What happens.
    pub action: Action,
}

/// What a timeline event does to the system under test.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Switch a target fault on (`POST /admin/faults {"on":[spec]}`).
    FaultOn(String),
    /// Switch a target fault off, by name.
    FaultOff(String),
    /// Publish messages through the target (`POST /publish`).
    Publish {
        /// The channel.
        channel: String,
        /// How many.
        count: u64,
        /// Gap between them (absent: at once).
        interval: Option<Duration>,
        /// Critical messages.
        critical: bool,
        /// The body, as JSON text (absent: null).
        body: Option<String>,
    },
    /// Kill worker 0 of the reference target abruptly (it is restarted).
    KillWorker,
    /// Restart the reference target's Redis on its port.
    RestartRedis,
    /// An HTTP request to the target's address (a user server's publish path).
    Http {
        /// The method.
        method: String,
        /// Path and query.
        path: String,
        /// The body (TOML strings as they are, other values as JSON).
        body: Option<String>,
    },
    /// loadgen's own markers (`loadgen_engine::payload_marker`) published through the
    /// system's own path, one message each, `{marker}` in the body (and an HTTP
    /// path) replaced by the marker of its number and intended send time.
    Inject {
        /// Where they go in.
        via: InjectVia,
        /// The markers' stream.
        stream: String,
        /// The first sequence number (the stream's earlier inject events counted:
        /// each stream numbers from 0 across the timeline).
        first_seq: u64,
        /// How many.
        count: u64,
        /// Gap between them (absent: one after the other, as fast as they are taken).
        interval: Option<Duration>,
        /// The message, `{marker}` in it (TOML strings as they are, other values as
        /// JSON).
        body: String,
    },
}

/// How injected markers reach the system.
#[derive(Clone, Debug, PartialEq)]
pub enum InjectVia {
    /// An HTTP request to the target's address per message.
    Http {
        /// The method.
        method: String,
        /// Path and query (`{marker}` replaced too).
        path: String,
    },
    /// `PUBLISH channel message` to a Redis server, over one connection.
    Redis {
        /// `HOST:PORT`.
        addr: String,
        /// `AUTH` first (`redis://[USER]:PASSWORD@HOST:PORT`): the user (absent: default).
        user: Option<String>,
        /// The password (absent: no `AUTH`).
        password: Option<String>,
        /// The channel.
        channel: String,
    },
}

/// What a body or path holds in the place of each message's marker.
pub const MARKER_FIELD: &str = "{marker}";

impl Action {
    /// The action's name in scenario files and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FaultOn(_) => "fault_on",
            Self::FaultOff(_) => "fault_off",
            Self::Publish { .. } => "publish",
            Self::KillWorker => "kill_worker",
            Self::RestartRedis => "restart_redis",
            Self::Http { .. } => "http",
            Self::Inject { .. } => "inject",
        }
    }
}

/// The largest `body_size`: the reference target takes request bodies up to 64 KiB.
const MAX_BODY: u64 = 60_000;

/// The largest `count` of one publish event (the reference target's own limit).
const MAX_PUBLISH: u64 = 1_000_000;

/// Validates the events and orders them by time (events at the same second keep
/// their order in the file).
pub(crate) fn compile(specs: &[EventSpec], target: &TargetSpec) -> Result<Vec<Event>, String> {
    let mut events = Vec::with_capacity(specs.len());
    for (k, e) in specs.iter().enumerate() {
        let here = format!("timeline[{k}] (do = \"{}\")", e.action);
        let action = action(e).map_err(|m| format!("{here}: {m}"))?;
        let notify = matches!(target, TargetSpec::Embedded(t) if t.mode == "notify");
        if !matches!(action, Action::Http { .. } | Action::Inject { .. }) && !notify {
            return Err(format!(
                "{here}: acts on the reference target; give target.url = \"embedded\" (mode notify), or use \
                 do = \"http\" or \"inject\" to reach a server of yours"
            ));
        }
        events.push(Event { at: e.at, action });
    }
    events.sort_by_key(|e| e.at);
    // Each stream numbers its markers from 0, across its inject events in time order.
    let mut next: Vec<(String, u64)> = Vec::new();
    for e in &mut events {
        if let Action::Inject { stream, first_seq, count, .. } = &mut e.action {
            let at = match next.iter().position(|(s, _)| s == stream) {
                Some(at) => at,
                None => {
                    next.push((stream.clone(), 0));
                    next.len() - 1
                }
            };
            *first_seq = next[at].1;
            next[at].1 += *count;
        }
    }
    Ok(events)
}

fn action(e: &EventSpec) -> Result<Action, String> {
    let members = [
        ("fault", e.fault.is_some()),
        ("channel", e.channel.is_some()),
        ("count", e.count.is_some()),
        ("interval", e.interval.is_some()),
        ("critical", e.critical),
        ("body", e.body.is_some()),
        ("body_size", e.body_size.is_some()),
        ("method", e.method.is_some()),
        ("path", e.path.is_some()),
        ("via", e.via.is_some()),
        ("url", e.url.is_some()),
        ("stream", e.stream.is_some()),
    ];
    let takes: &[&str] = match e.action.as_str() {
        "fault_on" | "fault_off" => &["fault"],
        "publish" => &["channel", "count", "interval", "critical", "body", "body_size"],
        "kill_worker" | "restart_redis" => &[],
        "http" => &["method", "path", "body"],
        "inject" => match e.via.as_deref() {
            Some("http") => &["via", "stream", "count", "interval", "body", "method", "path"],
            Some("redis") => &["via", "stream", "count", "interval", "body", "url", "channel"],
            Some(other) => return Err(format!("via: \"{other}\" is neither \"http\" nor \"redis\"")),
            None => return Err("give via = \"http\" (a request to the target's address) or \"redis\"".into()),
        },
        other => {
            return Err(format!(
                "\"{other}\" is not an action: fault_on, fault_off, publish, kill_worker, restart_redis, http or \
                 inject"
            ));
        }
    };
    if let Some((key, _)) = members.iter().find(|(key, given)| *given && !takes.contains(key)) {
        return Err(format!("{key} does not apply here (it takes {})", list(takes)));
    }
    let fault = || e.fault.clone().filter(|f| !f.trim().is_empty()).ok_or("give the fault (fault = \"delay=300\")");
    Ok(match e.action.as_str() {
        "fault_on" => Action::FaultOn(fault()?),
        "fault_off" => {
            let f = fault()?;
            if f.contains('=') {
                return Err(format!(
                    "fault_off takes a fault's name, not a spec: \"{}\"",
                    f.split('=').next().unwrap_or("")
                ));
            }
            Action::FaultOff(f)
        }
        "publish" => {
            let channel =
                e.channel.clone().filter(|c| !c.is_empty()).ok_or("give the channel (channel = \"broadcast\")")?;
            let count = e.count.unwrap_or(1);
            if count == 0 || count > MAX_PUBLISH {
                return Err(format!("count: 1 to {MAX_PUBLISH}, not {count}"));
            }
            if e.interval.is_some_and(|i| i.is_zero() || i > Duration::from_secs(3600)) {
                return Err("interval: above 0 and at most 1h (leave it out to publish at once)".into());
            }
            let body = match (&e.body, e.body_size) {
                (Some(_), Some(_)) => return Err("body or body_size, not both".into()),
                (_, Some(n)) if n == 0 || n > MAX_BODY => return Err(format!("body_size: 1 to {MAX_BODY} bytes")),
                (_, Some(n)) => Some(serde_json::Value::String("x".repeat(n as usize)).to_string()),
                (b, None) => b.as_ref().map(json),
            };
            Action::Publish { channel, count, interval: e.interval, critical: e.critical, body }
        }
        "kill_worker" => Action::KillWorker,
        "restart_redis" => Action::RestartRedis,
        "inject" => inject(e)?,
        _ => {
            let method = e.method.clone().unwrap_or_else(|| "POST".into());
            if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(format!("method: \"{method}\" is not an HTTP method (GET, POST, PUT ...)"));
            }
            let path = e.path.clone().ok_or("give the path (path = \"/publish\")")?;
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("path: \"{path}\" must start with / and have no spaces"));
            }
            let body = e.body.as_ref().map(|b| match b {
                toml::Value::String(s) => s.clone(),
                other => json(other),
            });
            Action::Http { method, path, body }
        }
    })
}

fn inject(e: &EventSpec) -> Result<Action, String> {
    let stream = e.stream.clone().unwrap_or_else(|| "inject".into());
    loadgen_engine::payload_marker::check_stream(&stream).map_err(|m| format!("stream: {m}"))?;
    let count = e.count.unwrap_or(1);
    if count == 0 || count > MAX_PUBLISH {
        return Err(format!("count: 1 to {MAX_PUBLISH}, not {count}"));
    }
    if e.interval.is_some_and(|i| i.is_zero() || i > Duration::from_secs(3600)) {
        return Err("interval: above 0 and at most 1h (leave it out to send one after the other)".into());
    }
    let body = match &e.body {
        None => MARKER_FIELD.to_string(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => json(other),
    };
    let via = if e.via.as_deref() == Some("redis") {
        let channel = e.channel.clone().filter(|c| !c.is_empty()).ok_or("give the channel (channel = \"chat\")")?;
        let url = e.url.as_deref().ok_or("give the url (url = \"redis://127.0.0.1:6379\")")?;
        let (addr, user, password) = redis_url(url).map_err(|m| format!("url: {m}"))?;
        InjectVia::Redis { addr, user, password, channel }
    } else {
        let method = e.method.clone().unwrap_or_else(|| "POST".into());
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("method: \"{method}\" is not an HTTP method (GET, POST, PUT ...)"));
        }
        let path = e.path.clone().ok_or("give the path (path = \"/post\")")?;
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("path: \"{path}\" must start with / and have no spaces"));
        }
        InjectVia::Http { method, path }
    };
    let in_path = matches!(&via, InjectVia::Http { path, .. } if path.contains(MARKER_FIELD));
    if !body.contains(MARKER_FIELD) && !in_path {
        return Err(format!(
            "body: put {MARKER_FIELD} where the marker goes (body = '{{\"text\":\"{MARKER_FIELD}\"}}')"
        ));
    }
    Ok(Action::Inject { via, stream, first_seq: 0, count, interval: e.interval, body })
}

/// `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]` as `HOST:PORT`, user and password (a
/// database number is allowed and ignored: Pub/Sub spans databases).
fn redis_url(url: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let shape = "write redis://HOST:PORT or redis://:PASSWORD@HOST:PORT";
    let rest = url.strip_prefix("redis://").ok_or_else(|| format!("\"{url}\" is not a redis:// URL ({shape})"))?;
    let (rest, db) = rest.split_once('/').unwrap_or((rest, ""));
    if !db.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("\"/{db}\" is not a database number ({shape})"));
    }
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((auth, hp)) => (Some(auth), hp),
        None => (None, rest),
    };
    let port = hostport.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
    if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p > 0) {
        return Err(format!("\"{hostport}\" is not HOST:PORT ({shape})"));
    }
    let (user, password) = match auth.map(|a| a.split_once(':')) {
        None => (None, None),
        Some(Some((user, pass))) if !pass.is_empty() => {
            ((!user.is_empty()).then(|| user.to_string()), Some(pass.to_string()))
        }
        Some(_) => return Err(format!("the part before @ is not [USER]:PASSWORD ({shape})")),
    };
    Ok((hostport.to_string(), user, password))
}

fn list(keys: &[&str]) -> String {
    if keys.is_empty() { "nothing more".into() } else { keys.join(", ") }
}

/// A TOML value as JSON text.
fn json(v: &toml::Value) -> String {
    serde_json::to_string(&to_json(v)).unwrap_or_else(|_| "null".into())
}

fn to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => J::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}
