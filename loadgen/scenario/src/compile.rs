//! A read [`Scenario`] validated as a whole and compiled into a [`Plan`]: the engine's
//! programs by group, the reconnect policy, the parsed checks. Errors name the key
//! path and the fix, on one line.

use std::time::Duration;

use loadgen_engine::driver::{Jitter, Program, ReconnectPolicy, Step, Traffic};
use loadgen_engine::run::{Cohort, HandshakeMode};
use loadgen_engine::schedule::Arrivals;
use loadgen_proto::Violation;

use crate::check::Check;
use crate::model::{JitterSpec, Scenario, StepSpec};
use crate::timeline::Event;

/// Where the run connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// A server of the user's (`ws://`, `wss://`, `http://`, `https://`).
    Url(String),
    /// `loadgen serve`, started and stopped by the run.
    Embedded(Embedded),
}

/// The embedded target: `loadgen serve --mode MODE` on a free loopback port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// `notify` (the reference target, with its own Redis), `echo`, `sink` or `push`.
    pub mode: String,
    /// Path and query of every upgrade.
    pub path: String,
    /// Worker processes or threads (absent: the target's default).
    pub workers: Option<u32>,
    /// Faults switched on from the start (notify).
    pub faults: Vec<String>,
    /// More `loadgen serve` flags.
    pub serve: Vec<String>,
}

/// The modes of `loadgen serve` a scenario can embed.
pub const EMBEDDED_MODES: [&str; 4] = ["notify", "echo", "sink", "push"];

/// A per-connection handshake token, minted when the run starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPlan {
    /// The HMAC-SHA256 key.
    pub secret: String,
    /// The user claim (`{i}`: the connection's number).
    pub user: String,
    /// The unit claim.
    pub unit: String,
    /// Validity from the start of the run.
    pub ttl: Duration,
    /// The token's shape.
    pub format: TokenFormat,
}

/// How a token is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    /// The reference target's `PAYLOAD.SIGNATURE` (docs/target.md).
    Reference,
    /// An HS256 JSON Web Token (`sub`, `unit`, `exp`).
    Jwt,
}

/// A scenario ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Its name.
    pub name: String,
    /// What it proves.
    pub description: String,
    /// Where it connects.
    pub target: TargetSpec,
    /// More URLs (`target.also`): connections go round robin over the target and these.
    pub also: Vec<String>,
    /// Connections opened.
    pub connections: u32,
    /// New connections per second (with phases: the fastest phase's).
    pub connect_rate: f64,
    /// Connection arrivals in phases (length, rate); empty: `connect_rate` throughout.
    pub connect_phases: Vec<(Duration, f64)>,
    /// The run's named windows (`ramp` or the named phases, then `hold`), kept apart
    /// in the report's `phases` for checks of one phase.
    pub windows: Vec<loadgen_engine::stats::Window>,
    /// Hold once all have started.
    pub hold: Duration,
    /// Closes per second at the end.
    pub close_rate: Option<f64>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// Subprotocols offered, in order of preference.
    pub subprotocols: Vec<String>,
    /// Keep compression contexts between messages.
    pub deflate_context_takeover: bool,
    /// Close-handshake deadline.
    pub close_timeout: Option<Duration>,
    /// Messages per second over the `pooled` steps' connections (open model, total).
    pub message_rate: Option<f64>,
    /// How `message_rate` messages are spaced.
    pub arrivals: Arrivals,
    /// The fastest `paced` step's messages per second per connection, as written
    /// (`rate`, or 1 / `every`).
    pub per_connection_rate: Option<f64>,
    /// Handshake deadline.
    pub handshake_timeout: Option<Duration>,
    /// Reply deadline.
    pub reply_timeout: Option<Duration>,
    /// The groups, their programs (reconnect policy included) and sizes.
    pub cohorts: Vec<Cohort>,
    /// A per-connection token (`{token}`).
    pub token: Option<TokenPlan>,
    /// Probe message size.
    pub message_size: u64,
    /// A server's own message shape (`[messages]`; loadgen's markers when the
    /// timeline injects them).
    pub message_shape: Option<loadgen_engine::payload_shape::MessageShape>,
    /// Where the server names its instance (`connection.server`).
    pub server_id: Option<loadgen_engine::server_id::ServerIdPath>,
    /// The checks.
    pub checks: Vec<Check>,
    /// The timeline, in order of time.
    pub timeline: Vec<Event>,
}

/// Validates and compiles.
pub(crate) fn compile(s: &Scenario) -> Result<Plan, String> {
    if s.name.trim().is_empty() {
        return Err("name: give the scenario a name".into());
    }
    let target = target(&s.target)?;
    let load = &s.load;
    if load.connections == 0 {
        return Err("load.connections: at least 1".into());
    }
    let connect = crate::phases::arrivals(load)?;
    if load.close_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("load.close_rate: a positive number of closes per second".into());
    }
    if load.hold.is_zero() {
        return Err("load.hold: a hold longer than 0 (like 10s)".into());
    }
    let reconnect = match &s.reconnect {
        Some(r) if r.initial.is_zero() || r.initial > r.max => {
            return Err(
                "reconnect: initial must be above 0 and at most max (like initial = \"100ms\", max = \"5s\")".into()
            );
        }
        Some(r) => Some(ReconnectPolicy {
            initial: r.initial,
            max: r.max,
            limit: r.limit,
            jitter: match r.jitter {
                JitterSpec::Full => Jitter::Full,
                JitterSpec::Equal => Jitter::Equal,
                JitterSpec::None => Jitter::None,
            },
        }),
        None => None,
    };
    // Waits and replies are bounded: by the scenario's reply timeout, else the engine's
    // default of 5 s.
    let reply = s.connection.reply_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT);
    let kind = UrlKind::of(&s.target.url);
    connection(&s.connection, kind)?;
    let (message_rate, arrivals) = message_rate(load, s)?;
    if s.groups.is_empty() {
        return Err("groups: at least one [[groups]] with its connections and steps".into());
    }
    let mut cohorts = Vec::with_capacity(s.groups.len());
    for (k, g) in s.groups.iter().enumerate() {
        let here = format!("groups[{k}] (\"{}\")", g.name);
        if s.groups[..k].iter().any(|o| o.name == g.name) {
            return Err(format!("{here}: another group has this name; names tell groups apart in reports"));
        }
        let steps = g
            .steps
            .iter()
            .enumerate()
            .map(|(j, x)| step(x, reply, kind).map_err(|e| format!("{here}.steps[{j}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let program = Program { steps, reconnect };
        program.validate().map_err(|e| format!("{here}.steps: {e}"))?;
        let handshake = match (g.handshake.as_deref(), g.slow_every) {
            (None | Some("normal"), None) => HandshakeMode::Normal,
            (Some("stall"), None) => HandshakeMode::Stall,
            (Some("slow"), every) => {
                let interval = every.unwrap_or(Duration::from_secs(1));
                if interval.is_zero() {
                    return Err(format!("{here}.slow_every: above 0 (like \"1s\")"));
                }
                HandshakeMode::Slow { interval }
            }
            (_, Some(_)) => return Err(format!("{here}.slow_every: goes with handshake = \"slow\"")),
            (Some(other), None) => {
                return Err(format!("{here}.handshake: \"{other}\" is not normal, stall or slow"));
            }
        };
        if let Some(p) = &g.path
            && !p.starts_with('/')
        {
            return Err(format!("{here}.path: \"{p}\" must start with / (like \"/ws?user=x{{i}}\")"));
        }
        cohorts.push(Cohort {
            name: g.name.clone(),
            program,
            connections: g.connections,
            path: g.path.clone(),
            headers: g.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            handshake,
        });
    }
    let total: u64 = s.groups.iter().map(|g| u64::from(g.connections)).sum();
    if total != u64::from(load.connections) {
        return Err(format!(
            "groups: their connections add up to {total}, but load.connections is {}; make them equal",
            load.connections
        ));
    }
    if let Some(c) = &s.catalogue {
        if c.fault.is_empty() || c.fails.is_empty() {
            return Err("catalogue: give the fault's --set overrides and the checks it must fail".into());
        }
        let names: Vec<String> = s.checks.iter().map(|c| c.name.clone().unwrap_or_else(|| c.expr.clone())).collect();
        if let Some(unknown) = c.fails.iter().find(|f| !names.contains(f)) {
            return Err(format!("catalogue.fails: \"{unknown}\" is not the name of a check here"));
        }
    }
    let mut checks = Vec::with_capacity(s.checks.len());
    for (k, c) in s.checks.iter().enumerate() {
        let mut check = Check::parse(c.name.as_deref(), &c.expr).map_err(|e| format!("checks[{k}].expr: {e}"))?;
        if checks.iter().any(|o: &Check| o.name == check.name) {
            return Err(format!(
                "checks[{k}]: another check is called \"{}\"; give it a name of its own (name = \"...\")",
                check.name
            ));
        }
        crate::phases::place(&mut check, c.phase.as_deref(), c.abort, c.abort_after, &connect.windows)
            .map_err(|e| format!("checks[{k}].{e}"))?;
        match c.defence.as_deref().map(str::trim) {
            Some("") => {
                return Err(format!(
                    "checks[{k}].defence: say which defence it proves (like \"forged tokens refused with 401\")"
                ));
            }
            d => check.defence = d.map(str::to_string),
        }
        checks.push(check);
    }
    let per_connection_rate = s
        .groups
        .iter()
        .flat_map(|g| g.steps.iter())
        .filter_map(|x| match x {
            StepSpec::Paced { rate: Some(r), .. } => Some(*r),
            StepSpec::Paced { every: Some(d), .. } => Some(1.0 / d.as_secs_f64()),
            _ => None,
        })
        .reduce(f64::max);
    Ok(Plan {
        also: s.target.also.clone(),
        deflate_context_takeover: s.connection.deflate_context_takeover,
        close_timeout: s.connection.close_timeout,
        message_rate,
        arrivals,
        per_connection_rate,
        name: s.name.clone(),
        description: s.description.clone(),
        token: s.connection.token.as_ref().map(token).transpose()?,
        message_size: s.connection.message_size.unwrap_or(64),
        message_shape: shape(s.messages.as_ref(), s.timeline.iter().any(|e| e.action == "inject"))?,
        server_id: s
            .connection
            .server
            .as_deref()
            .map(|p| loadgen_engine::server_id::ServerIdPath::new(p).map_err(|e| format!("connection.server: {e}")))
            .transpose()?,
        timeline: crate::timeline::compile(&s.timeline, &target)?,
        target,
        connections: load.connections,
        connect_rate: connect.rate,
        connect_phases: connect.phases,
        windows: connect.windows,
        hold: load.hold,
        close_rate: load.close_rate,
        headers: s.connection.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        deflate: s.connection.deflate,
        subprotocols: subprotocols(&s.connection.subprotocols)?,
        handshake_timeout: s.connection.handshake_timeout,
        reply_timeout: s.connection.reply_timeout,
        cohorts,
        checks,
    })
}

/// The subprotocols to offer: HTTP tokens, each once.
fn subprotocols(list: &[String]) -> Result<Vec<String>, String> {
    for (k, p) in list.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(format!(
                "connection.subprotocols[{k}]: {p:?} is not a token (letters, digits and !#$%&'*+-.^_`|~, like \"notify.v1\")"
            ));
        }
        if list[..k].contains(p) {
            return Err(format!("connection.subprotocols[{k}]: {p:?} is offered twice"));
        }
    }
    Ok(list.to_vec())
}

/// The target section: a URL, or the embedded target with its mode, path and flags.
fn target(t: &crate::model::Target) -> Result<TargetSpec, String> {
    let url = t.url.as_str();
    if url != "embedded" {
        if UrlKind::of(url) == UrlKind::Other {
            return Err(format!(
                "target.url: \"{url}\" is neither a ws://, wss://, http(s)://, tcp:// URL nor \"embedded\""
            ));
        }
        if let Some(other) = t.also.iter().find(|u| UrlKind::of(u) != UrlKind::of(url)) {
            return Err(format!(
                "target.also: \"{other}\" does not speak what target.url \"{url}\" speaks; one run speaks one \
                 protocol (ws:// and wss://, http:// and https://, or tcp://)"
            ));
        }
        let embedded_only = [
            ("faults", !t.faults.is_empty()),
            ("mode", t.mode.is_some()),
            ("path", t.path.is_some()),
            ("workers", t.workers.is_some()),
            ("serve", !t.serve.is_empty()),
        ];

        if let Some((key, _)) = embedded_only.iter().find(|(_, given)| *given) {
            return Err(format!(
                "target.{key}: applies to the embedded target (url = \"embedded\"); a URL target is configured by its \
                 own operators, so drop it"
            ));
        }
        return Ok(TargetSpec::Url(url.to_string()));
    }
    if !t.also.is_empty() {
        return Err("target.also: more URLs go with a URL target; the embedded target is one".into());
    }
    let mode = t.mode.clone().unwrap_or_else(|| "notify".into());
    if !EMBEDDED_MODES.contains(&mode.as_str()) {
        return Err(format!("target.mode: \"{mode}\" is not one of {}", EMBEDDED_MODES.join(", ")));
    }
    if !t.faults.is_empty() && mode != "notify" {
        return Err(format!(
            "target.faults: these are the reference target's faults (mode = \"notify\"); for mode \"{mode}\" pass \
             `loadgen serve --fault` flags in target.serve"
        ));
    }
    let path = t.path.clone().unwrap_or_else(|| if mode == "notify" { "/ws?user=u{i}".into() } else { "/".into() });
    if !path.starts_with('/') {
        return Err(format!("target.path: \"{path}\" must start with / (like \"/ws?user=u{{i}}\")"));
    }
    if t.workers == Some(0) {
        return Err("target.workers: at least 1 (or leave it out for the target's default)".into());
    }
    if let Some(flag) = t.serve.iter().find(|w| ["--listen", "--mode", "--admin-token"].contains(&w.as_str())) {
        return Err(format!("target.serve: {flag} is set by the run itself; drop it"));
    }
    Ok(TargetSpec::Embedded(Embedded {
        mode,
        path,
        workers: t.workers,
        faults: t.faults.clone(),
        serve: t.serve.clone(),
    }))
}

/// `[messages]` as the engine's shape; markers when the timeline injects them.
fn shape(
    m: Option<&crate::model::MessagesSpec>,
    injects: bool,
) -> Result<Option<loadgen_engine::payload_shape::MessageShape>, String> {
    use loadgen_engine::payload_shape::{JsonShape, MessageShape, TimeUnit};
    use loadgen_engine::payload_text::TextShape;
    let Some(m) = m else {
        return Ok(injects.then_some(MessageShape::Marker));
    };
    let pointers = m.seq.is_some() || m.sent.is_some() || m.stream.is_some();
    if m.marker {
        if pointers || m.regex.is_some() || m.sent_unit.is_some() {
            return Err("messages.marker: markers carry their own stream, number and time (µs); leave out seq, \
                        sent, sent_unit, stream and regex"
                .into());
        }
        return Ok(Some(MessageShape::Marker));
    }
    if injects {
        return Err("messages: the timeline injects loadgen's markers (do = \"inject\"), which are read instead \
                    of the server's own numbers; leave out seq, sent and regex (or write marker = true)"
            .into());
    }
    let sent_unit = match m.sent_unit.as_deref().unwrap_or("ms") {
        "us" => TimeUnit::Micros,
        "ms" => TimeUnit::Millis,
        "s" => TimeUnit::Seconds,
        other => return Err(format!("messages.sent_unit: \"{other}\" is not us, ms or s")),
    };
    if let Some(regex) = &m.regex {
        if pointers {
            return Err("messages.regex: its named groups say where seq, sent and stream are; leave out the \
                        JSON pointers seq, sent and stream"
                .into());
        }
        let text = TextShape::new(regex, sent_unit).map_err(|e| format!("messages.regex: {e}"))?;
        return Ok(Some(MessageShape::Text(text)));
    }
    let pointer = |key: &str, p: &Option<String>| match p {
        Some(p) => JsonShape::pointer(p).map_err(|e| format!("messages.{key}: {e}")),
        None => Err(format!(
            "messages.{key}: give the seq and sent JSON pointers, or regex (named groups seq, sent, stream), or \
             marker = true"
        )),
    };
    Ok(Some(MessageShape::Json(JsonShape {
        seq: pointer("seq", &m.seq)?,
        sent: pointer("sent", &m.sent)?,
        sent_unit,
        stream: m.stream.as_ref().map(|p| pointer("stream", &Some(p.clone()))).transpose()?,
    })))
}

fn token(t: &crate::model::TokenSpec) -> Result<TokenPlan, String> {
    if t.secret.is_empty() {
        return Err("connection.token.secret: give the signing secret".into());
    }
    let format = match t.format.as_str() {
        "reference" => TokenFormat::Reference,
        "jwt" => TokenFormat::Jwt,
        other => return Err(format!("connection.token.format: \"{other}\" is neither \"reference\" nor \"jwt\"")),
    };
    Ok(TokenPlan { secret: t.secret.clone(), user: t.user.clone(), unit: t.unit.clone(), ttl: t.ttl, format })
}

/// The engine's default `--reply-timeout`.
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

fn step(s: &StepSpec, reply: Duration, kind: UrlKind) -> Result<Step, String> {
    let websocket_only = matches!(
        s,
        StepSpec::Send { .. } | StepSpec::WaitFor { .. } | StepSpec::Ping { .. } | StepSpec::Violate { .. }
    );
    if websocket_only && matches!(kind, UrlKind::Http | UrlKind::Tcp) {
        return Err(format!(
            "a WebSocket step; a {} target carries probes only (echo, paced, pooled, sleep, close)",
            if kind == UrlKind::Tcp { "tcp://" } else { "http(s)://" }
        ));
    }
    Ok(match s {
        StepSpec::Send { text: Some(text), size: None } => Step::SendText(text.clone()),
        StepSpec::Send { text: None, size: Some(n) } => {
            let max = loadgen_engine::driver::MAX_SIZED_LEN as u64;
            if *n == 0 || *n > max {
                return Err(format!("size: 1 to {max} bytes, not {n}"));
            }
            Step::SendSized { len: *n as usize }
        }
        StepSpec::Send { .. } => return Err("send takes either text or size".into()),
        StepSpec::Violate { kind } => Step::SendViolation(violation(kind)?),
        StepSpec::WaitFor { pattern, timeout } => {
            Step::WaitFor { pattern: pattern.clone(), timeout: Some(timeout.unwrap_or(reply)) }
        }
        StepSpec::Ready => Step::Ready,
        StepSpec::Ping { every, timeout } => Step::Ping { interval: *every, timeout: *timeout },
        // HTTP responses have the client's own deadline.
        StepSpec::Echo { think } => Step::Traffic(Traffic::ClosedLoop {
            think: think.unwrap_or_default(),
            reply_timeout: (kind != UrlKind::Http).then_some(reply),
        }),
        StepSpec::Paced { every: Some(every), rate: None } => Step::Traffic(Traffic::Paced { interval: *every }),
        StepSpec::Paced { every: None, rate: Some(r) } => {
            if !(r.is_finite() && *r > 0.0) || 1.0 / r > MAX_SECS || *r > MAX_RATE {
                return Err(format!(
                    "rate: messages per second per connection, above 1/365 days and at most 1e9, not {r}"
                ));
            }
            Step::Traffic(Traffic::Paced { interval: Duration::from_nanos((1e9 / r) as u64) })
        }
        StepSpec::Paced { .. } => return Err("paced takes either every (an interval) or rate (per second)".into()),
        StepSpec::Pooled => Step::Traffic(Traffic::Pool),
        StepSpec::StopTraffic => Step::StopTraffic,
        StepSpec::Sleep { length } => Step::Sleep(*length),
        StepSpec::StopReading => Step::StopReading,
        StepSpec::ResumeReading => Step::ResumeReading,
        StepSpec::Close { code } => Step::Close { code: *code },
    })
}

/// The violations a scenario names, with their parameters fixed: opcode 3, RSV2, close
/// code 1005 (which may not be sent).
fn violation(kind: &str) -> Result<Violation, String> {
    Ok(match kind {
        "unmasked" => Violation::Unmasked,
        "invalid_utf8" => Violation::InvalidUtf8,
        "reserved_opcode" => Violation::ReservedOpcode(3),
        "reserved_bits" => Violation::ReservedBits(0b010),
        "oversize_control" => Violation::OversizeControl,
        "fragmented_control" => Violation::FragmentedControl,
        "continuation_without_start" => Violation::ContinuationWithoutStart,
        "interrupted_fragments" => Violation::InterruptedFragments,
        "invalid_close_code" => Violation::InvalidCloseCode(1005),
        "one_byte_close" => Violation::OneByteClose,
        "non_minimal_length" => Violation::NonMinimalLength,
        other => {
            return Err(format!(
                "kind: \"{other}\" is not a violation (unmasked, invalid_utf8, reserved_opcode, reserved_bits, \
                 oversize_control, fragmented_control, continuation_without_start, interrupted_fragments, \
                 invalid_close_code, one_byte_close, non_minimal_length)"
            ));
        }
    })
}

/// The longest interval and the highest rate a scenario takes (as the flags do).
const MAX_SECS: f64 = 365.0 * 86_400.0;
const MAX_RATE: f64 = 1e9;

/// What a URL speaks (`target.url` and `target.also` must agree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UrlKind {
    /// ws:// or wss://, and the embedded target.
    WebSocket,
    /// http:// or https:// (polling).
    Http,
    /// tcp:// (raw TCP).
    Tcp,
    /// Anything else.
    Other,
}

impl UrlKind {
    fn of(url: &str) -> Self {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            _ if url == "embedded" => Self::WebSocket,
            Some("ws" | "wss") => Self::WebSocket,
            Some("http" | "https") => Self::Http,
            Some("tcp") => Self::Tcp,
            _ => Self::Other,
        }
    }
}

/// The connection section's keys that depend on each other or on the target.
fn connection(c: &crate::model::Connection, kind: UrlKind) -> Result<(), String> {
    if c.deflate_context_takeover && !c.deflate {
        return Err("connection.deflate_context_takeover: goes with deflate = true".into());
    }
    if c.deflate && matches!(kind, UrlKind::Http | UrlKind::Tcp) {
        return Err("connection.deflate: permessage-deflate is a WebSocket extension; drop it for this target".into());
    }
    for (key, d) in [
        ("close_timeout", c.close_timeout),
        ("handshake_timeout", c.handshake_timeout),
        ("reply_timeout", c.reply_timeout),
    ] {
        if d.is_some_and(|d| d < Duration::from_millis(1)) {
            return Err(format!("connection.{key}: at least 1ms"));
        }
    }
    Ok(())
}

/// `load.message_rate` with its `arrivals` and `seed`, and the `pooled` steps it feeds.
fn message_rate(load: &crate::model::Load, s: &Scenario) -> Result<(Option<f64>, Arrivals), String> {
    let pooled = s.groups.iter().any(|g| g.steps.iter().any(|x| matches!(x, StepSpec::Pooled)));
    let arrivals = match (load.arrivals.as_deref(), load.seed) {
        (None | Some("constant"), None) => Arrivals::Constant,
        (Some("poisson"), seed) => Arrivals::Poisson { seed: seed.unwrap_or(1) },
        (None | Some("constant"), Some(_)) => {
            return Err("load.seed: seeds the Poisson arrivals; add arrivals = \"poisson\" or drop it".into());
        }
        (Some(other), _) => return Err(format!("load.arrivals: \"{other}\" is neither \"constant\" nor \"poisson\"")),
    };
    let Some(r) = load.message_rate else {
        if pooled {
            return Err("load.message_rate: the pooled steps share it; give the messages per second in all".into());
        }
        if load.arrivals.is_some() {
            return Err("load.arrivals: spaces load.message_rate's messages; give message_rate or drop it".into());
        }
        return Ok((None, arrivals));
    };
    if !(r.is_finite() && r > 0.0 && r <= MAX_RATE) {
        return Err(format!("load.message_rate: a positive number of messages per second, at most 1e9, not {r}"));
    }
    if r * load.hold.as_secs_f64() < 1.0 {
        return Err("load.message_rate × load.hold intends no message at all (below 1): raise either".into());
    }
    if !pooled {
        return Err("load.message_rate: no group has a { do = \"pooled\" } step to send them".into());
    }
    Ok((Some(r), arrivals))
}
