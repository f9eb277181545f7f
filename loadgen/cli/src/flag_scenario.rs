//! `loadgen run`'s ad-hoc flags as the scenario they describe: the same typed model a
//! TOML file is read into (`loadgen_scenario::Scenario`), so a flag run is compiled and
//! mapped onto the engine exactly as a file is (`run_plan`), and `--print-scenario`
//! can write it out as a file that runs the same. The flags are checked first
//! (`run_args::check`), so every refusal still names the flag.
//!
//! What it does not carry: how loadgen runs (workers, source addresses, TLS trust, lag
//! thresholds, coalescing, the largest message accepted, `--out`, progress): those
//! stay flags, and combine with a file.

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen_scenario::model::{Connection, Group, JitterSpec, Load, Reconnect, Scenario, StepSpec, Target};

use crate::run_args::{self, ArrivalsArg, RunArgs};

/// The name of a scenario made from flags.
pub(crate) const NAME: &str = "ad-hoc";

/// `url` with the scheme raw TCP is written with in a scenario (`tcp://`).
fn tcp_url(url: &str) -> String {
    url.split_once("://").map_or_else(|| url.to_owned(), |(_, rest)| format!("tcp://{rest}"))
}

/// What each connection does once open, as the flags say (`with_traffic`: it carries
/// messages).
fn steps(args: &RunArgs, with_traffic: bool) -> Vec<StepSpec> {
    let mut steps = Vec::new();
    for step in &args.on_open {
        let (send, expect) = match step.split_once("=>") {
            Some((send, expect)) => (send, Some(expect)),
            None => (step.as_str(), None),
        };
        steps.push(StepSpec::Send { text: Some(send.to_owned()), size: None });
        if let Some(pattern) = expect {
            steps.push(StepSpec::WaitFor { pattern: pattern.to_owned(), timeout: None });
        }
    }
    steps.push(StepSpec::Ready);
    if let Some(every) = args.ping_interval {
        steps.push(StepSpec::Ping { every, timeout: None });
    }
    if with_traffic && args.echo {
        steps.push(match (args.rate, args.rate_per_conn) {
            (Some(_), _) => StepSpec::Pooled,
            (None, Some(r)) => StepSpec::Paced { every: None, rate: Some(r) },
            (None, None) => StepSpec::Echo { think: (!args.think_time.is_zero()).then_some(args.think_time) },
        });
    }
    steps
}

/// `value` unless it is the default.
fn unless_default(value: Duration, default: Duration) -> Option<Duration> {
    (value != default).then_some(value)
}

/// The scenario the flags describe, or the first problem with the flags.
pub(crate) fn scenario(args: &RunArgs) -> Result<Scenario, String> {
    run_args::check(args)?;
    let mut urls = args.targets.iter().map(|u| if args.raw { tcp_url(u) } else { u.clone() });
    let url = urls.next().ok_or("give a --target URL")?;
    let headers: BTreeMap<String, String> = run_args::parse_headers(&args.headers)?.into_iter().collect();
    let active = args.echo_connections.filter(|&n| args.echo && n < args.connections);
    let groups = match active {
        Some(n) => vec![
            Group { connections: n, steps: steps(args, true), ..group("active") },
            Group { connections: args.connections - n, steps: steps(args, false), ..group("held") },
        ],
        None => vec![Group { connections: args.connections, steps: steps(args, true), ..group("clients") }],
    };
    let poisson = args.rate.is_some() && args.arrivals == ArrivalsArg::Poisson;
    Ok(Scenario {
        name: NAME.into(),
        description: String::new(),
        target: Target {
            url,
            also: urls.collect(),
            faults: Vec::new(),
            mode: None,
            path: None,
            workers: None,
            serve: Vec::new(),
        },
        load: Load {
            connections: args.connections,
            connect_rate: Some(args.connect_rate),
            phases: Vec::new(),
            hold: args.duration,
            close_rate: args.close_rate,
            message_rate: args.rate.filter(|_| args.echo),
            arrivals: poisson.then(|| "poisson".into()),
            seed: (poisson && args.seed != 1).then_some(args.seed),
        },
        connection: Connection {
            headers,
            deflate: args.deflate,
            deflate_context_takeover: args.deflate && args.deflate_context_takeover,
            close_timeout: unless_default(args.close_timeout, Duration::from_secs(2)),
            handshake_timeout: unless_default(args.handshake_timeout, Duration::from_secs(10)),
            reply_timeout: unless_default(args.reply_timeout, Duration::from_secs(5)),
            token: None,
            message_size: (args.echo && args.message_size != 64).then_some(args.message_size),
            subprotocols: Vec::new(),
            server: None,
        },
        reconnect: args.reconnect.then(|| Reconnect {
            initial: args.reconnect_initial,
            max: args.reconnect_max.max(args.reconnect_initial),
            limit: args.reconnect_limit,
            jitter: match args.reconnect_jitter.as_str() {
                "equal" => JitterSpec::Equal,
                "none" => JitterSpec::None,
                _ => JitterSpec::Full,
            },
        }),
        groups,
        checks: Vec::new(),
        timeline: Vec::new(),
        catalogue: None,
        messages: None,
    })
}

/// A group of that name, nothing else set.
fn group(name: &str) -> Group {
    Group {
        name: name.into(),
        connections: 0,
        path: None,
        headers: BTreeMap::new(),
        handshake: None,
        slow_every: None,
        steps: Vec::new(),
    }
}

/// `scenario` as a TOML file, headed by how it was made and what stays a flag.
pub(crate) fn file_text(scenario: &Scenario, command: &str) -> Result<String, String> {
    let body = loadgen_scenario::to_toml(scenario).map_err(|e| format!("cannot write the scenario as TOML: {e}"))?;
    Ok(format!(
        "# The scenario of: {command}\n# Run it with `loadgen run FILE`; how loadgen runs (--workers, --source-addr, \
         TLS trust,\n# lag thresholds, --coalesce, --max-message-size, --out, progress) stays on the command line.\n\n\
         {body}"
    ))
}
