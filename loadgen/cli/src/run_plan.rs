//! The one road from a compiled scenario [`Plan`] to the engine's `RunConfig`, taken by
//! a file (`loadgen run FILE`) and by the flags alike (they become a scenario first,
//! `flag_scenario`). The plan is put into the flags' shape and held to the flags'
//! bounds (`run_args::check`), its URLs resolved, TLS trust read, and its groups
//! given to the engine: as the run-wide options (on-open exchange, pings, traffic,
//! active connections) when those compile to exactly the groups' programs (what the
//! flags write), else as cohorts. How loadgen runs (workers, source addresses, lag
//! thresholds, coalescing, largest message, TLS trust) comes from the flags.
//!
//! It does not read files other than `--ca-file`, start targets or mint tokens (the
//! caller does).

use std::time::Duration;

use loadgen_engine::driver::{Step, Traffic as DriverTraffic};
use loadgen_engine::run::{MessageRate, OnOpenStep, Protocol, RunConfig, Traffic};
use loadgen_scenario::Plan;

use crate::run_args::{self, RunArgs};

/// Engine defaults of the timeouts a scenario may leave out.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// `url` without a `tcp://` scheme (raw TCP shares the ws:// grammar), and whether it
/// had one.
fn raw_url(url: &str) -> (bool, String) {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tcp") => (true, format!("ws://{rest}")),
        _ => (false, url.to_owned()),
    }
}

/// The connections of the groups that carry messages (a traffic step).
fn carriers(plan: &Plan) -> u32 {
    plan.cohorts
        .iter()
        .filter(|c| c.program.steps.iter().any(|s| matches!(s, Step::Traffic(_))))
        .map(|c| c.connections)
        .sum()
}

/// `plan` against `urls` in the flags' shape, for the flags' checks; how loadgen runs
/// stays as `args` say.
fn plan_args(args: &RunArgs, plan: &Plan, urls: &[String]) -> RunArgs {
    let mut a = args.clone();
    let urls: Vec<(bool, String)> = urls.iter().map(|u| raw_url(u)).collect();
    a.raw = urls.iter().any(|(raw, _)| *raw);
    a.targets = urls.into_iter().map(|(_, u)| u).collect();
    a.connections = plan.connections;
    a.connect_rate = plan.connect_rate;
    a.close_rate = plan.close_rate;
    a.duration = plan.hold;
    a.headers = plan.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    a.deflate = plan.deflate;
    a.deflate_context_takeover = plan.deflate_context_takeover;
    a.handshake_timeout = plan.handshake_timeout.unwrap_or(HANDSHAKE_TIMEOUT);
    a.reply_timeout = plan.reply_timeout.unwrap_or(REPLY_TIMEOUT);
    a.close_timeout = plan.close_timeout.unwrap_or(args.close_timeout);
    let carriers = carriers(plan);
    a.echo = carriers > 0;
    a.idle = !a.echo;
    a.message_size = plan.message_size;
    a.rate = plan.message_rate;
    a.rate_per_conn = plan.per_connection_rate;
    a.echo_connections = (carriers > 0 && carriers < plan.connections).then_some(carriers);
    // The programs hold these; the flags' checks of them were made on the flags.
    a.on_open = Vec::new();
    a.ping_interval = None;
    a.think_time = Duration::ZERO;
    a.reconnect = false;
    a
}

/// The engine's configuration of `plan` against `urls` (the plan's target, or the
/// embedded target's address), with how loadgen runs from `args`.
pub(crate) fn run_config(args: &RunArgs, plan: &Plan, urls: &[String]) -> Result<RunConfig, String> {
    let a = plan_args(args, plan, urls);
    run_args::check(&a)?;
    let targets = a.targets.iter().map(|u| run_args::target(u)).collect::<Result<Vec<_>, _>>()?;
    let protocol = if a.raw {
        Protocol::RawTcp
    } else if a.targets.iter().any(|u| run_args::http_scheme(u).0) {
        Protocol::Http1
    } else {
        Protocol::WebSocket
    };
    let tls = run_args::tls_config(&a, targets.iter().any(|t| t.tls))?;
    let headers = run_args::parse_headers(&a.headers)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.map_or(cpus, |w| w as usize).clamp(1, loadgen_engine::preflight::MAX_WORKERS);
    let traffic = |rate| Traffic::Echo { message_size: usize::try_from(plan.message_size).unwrap_or(usize::MAX), rate };
    let mut config = RunConfig {
        protocol,
        targets,
        connections: plan.connections,
        connect_rate: plan.connect_rate,
        close_rate: plan.close_rate.unwrap_or(plan.connect_rate),
        hold: plan.hold,
        traffic: Traffic::Idle,
        message_arrivals: plan.arrivals,
        workers,
        sources: args.sources.clone(),
        handshake_timeout: a.handshake_timeout,
        close_timeout: a.close_timeout,
        reply_timeout: a.reply_timeout,
        think_time: Duration::ZERO,
        reconnect: plan.cohorts.first().and_then(|c| c.program.reconnect),
        lag_threshold: args.lag_threshold,
        connect_lag_threshold: args.connect_lag_threshold,
        // At most 2^64 − 1, which fits usize on the 64-bit hosts loadgen runs on.
        max_message_size: usize::try_from(args.max_message_size).unwrap_or(usize::MAX),
        recv_buffers: 4096,
        recv_buffer_size: 4096,
        on_open: Vec::new(),
        ping_interval: None,
        max_slots_per_ring: loadgen_engine::run::default_slots_per_ring(),
        tls,
        echo_connections: None,
        cohorts: Vec::new(),
        timer_coalesce: args.coalesce,
        headers,
        tokens: None,
        message_shape: plan.message_shape.clone(),
        server_id: plan.server_id.clone(),
        windows: plan.windows.clone(),
        subprotocols: plan.subprotocols.clone(),
        connect_phases: plan.connect_phases.clone(),
        clock_started: None,
        deflate: plan.deflate.then(|| loadgen_proto::DeflateConfig {
            server_no_context_takeover: !plan.deflate_context_takeover,
            client_no_context_takeover: !plan.deflate_context_takeover,
            ..loadgen_proto::DeflateConfig::default()
        }),
    };
    if let Some(flags) = flag_form(plan, &config, &traffic) {
        return Ok(flags);
    }
    // Groups of their own: the engine runs their programs; the run-wide message rate
    // says how sends are paced (the pool's schedule, the saturation rule, the
    // closed-loop correction).
    let closed = plan
        .cohorts
        .iter()
        .flat_map(|c| &c.program.steps)
        .any(|s| matches!(s, Step::Traffic(DriverTraffic::ClosedLoop { .. })));
    if carriers(plan) > 0 {
        config.traffic = traffic(match (plan.message_rate, plan.per_connection_rate) {
            (Some(r), _) => MessageRate::Total(r),
            (None, Some(r)) if !closed => MessageRate::PerConnection(r),
            _ => MessageRate::ClosedLoop,
        });
    }
    config.cohorts = plan.cohorts.clone();
    Ok(config)
}

/// `config` with the plan's groups as the run-wide options, when the engine compiles
/// those to exactly the groups' programs: one group (or an active one and a held one,
/// `echo_connections`) of the run's own request and handshake, each running an
/// on-open exchange (`send`, `wait_for`), `ready`, pings, then its traffic.
fn flag_form(plan: &Plan, config: &RunConfig, traffic: &dyn Fn(MessageRate) -> Traffic) -> Option<RunConfig> {
    let plain = |c: &loadgen_engine::run::Cohort| c.path.is_none() && c.headers.is_empty() && !c.handshake.is_attack();
    if !(1..=2).contains(&plan.cohorts.len()) || !plan.cohorts.iter().all(plain) {
        return None;
    }
    let mut steps = plan.cohorts[0].program.steps.iter().peekable();
    let mut on_open = Vec::new();
    while let Some(Step::SendText(text)) = steps.peek() {
        steps.next();
        let expect = match steps.peek() {
            Some(Step::WaitFor { pattern, .. }) => {
                steps.next();
                Some(pattern.clone())
            }
            _ => None,
        };
        on_open.push(OnOpenStep { send: text.clone(), expect });
    }
    if steps.next() != Some(&Step::Ready) {
        return None;
    }
    let mut candidate = config.clone();
    if let Some(Step::Ping { interval, timeout: None }) = steps.peek() {
        candidate.ping_interval = Some(*interval);
        steps.next();
    }
    match steps.next() {
        None => {}
        Some(Step::Traffic(DriverTraffic::ClosedLoop { think, .. })) => {
            candidate.traffic = traffic(MessageRate::ClosedLoop);
            candidate.think_time = *think;
        }
        Some(Step::Traffic(DriverTraffic::Paced { .. })) => {
            candidate.traffic = traffic(MessageRate::PerConnection(plan.per_connection_rate?));
        }
        Some(Step::Traffic(DriverTraffic::Pool)) => candidate.traffic = traffic(MessageRate::Total(plan.message_rate?)),
        Some(_) => return None,
    }
    if steps.next().is_some() {
        return None;
    }
    if plan.cohorts.len() == 2 {
        if candidate.traffic == Traffic::Idle {
            return None;
        }
        candidate.echo_connections = Some(plan.cohorts[0].connections);
    }
    candidate.on_open = on_open;
    let programs: Vec<_> = plan.cohorts.iter().map(|c| c.program.clone()).collect();
    (candidate.programs().ok()? == programs).then_some(candidate)
}
