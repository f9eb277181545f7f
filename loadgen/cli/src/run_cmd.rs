//! `loadgen run`: ad-hoc runs from flags. Builds the engine's `RunConfig`, installs a
//! Ctrl-C handler (stop new work, close with a bounded close handshake, still write the
//! report), runs with live progress (`progress`), prints the summary (`summary`) and
//! writes `report.json`. The pre-flight helpers here are shared with `loadgen doctor`.
//!
//! Exit codes (docs/scenarios.md, "Exit codes"): 0 pass, 1 a check failed (by default:
//! a connection failed or dropped, a message went unanswered, late or lost), 2 usage or
//! configuration error, 3 runtime failure (nothing could connect and the like), 4
//! invalid (the generator was saturated), 130 SIGINT and 143 SIGTERM; every one after
//! writing the (partial) report.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use loadgen_engine::preflight::{self, HostFacts, LoadRequest, Plan, SourceAddrs};
use loadgen_engine::report::Outcome;
use loadgen_engine::run::{MessageRate, OnOpenStep, Protocol, RunConfig, Traffic, WsTarget};
use loadgen_engine::schedule::Arrivals;

use crate::progress::{Mode, OutputArgs, Progress};

pub const EXAMPLES: &str = "Examples:
  loadgen run --target ws://127.0.0.1:8080/ --connections 10000 --duration 30s --idle
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --message-size 64 --rate 50000
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate-per-conn 10
  loadgen run --target ws://127.0.0.1:8080/ --connections 50000 --duration 20s --echo --rate 2000 --echo-connections 1000   # 1,000 active among 50,000 held
  loadgen run --target ws://127.0.0.1:8080/ --connections 100 --duration 10s --echo   # closed loop
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate 20000 --arrivals poisson
  loadgen run --raw --target ws://127.0.0.1:9090/ --connections 1000 --duration 10s --echo   # vs `loadgen serve --raw`
  loadgen run --target wss://127.0.0.1:8443/ --ca-file cert.pem --connections 5000 --duration 30s --echo --rate 5000   # TLS, sessions resumed
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 30s --echo --rate 5000 --deflate   # permessage-deflate
  loadgen run --target http://127.0.0.1:8080/status --connections 5000 --duration 60s --echo --rate-per-conn 0.5   # HTTP pollers (cookies, Retry-After)
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate 1000 --progress plain   # one line per second (CI logs)
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --echo --rate 1000 --progress json > progress.jsonl   # summary on stderr
  loadgen run --target ws://127.0.0.1:8080/ --connections 1000 --duration 60s --idle --quiet   # only the summary
  loadgen doctor --connections 100000   # will this host hold it? (each limit and its fix)";

/// Flags of `loadgen run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// ws:// or wss:// URL to load (repeat for several targets, used round robin);
    /// http:// or https:// for HTTP/1.1 keep-alive polling (each message is a GET).
    #[arg(long = "target", value_name = "URL", required = true)]
    targets: Vec<String>,
    /// Plain TCP instead of WebSocket: the same probe payloads back to back, no
    /// handshake, no framing (against `loadgen serve --raw`): this host's ceiling.
    #[arg(long, conflicts_with_all = ["on_open", "ping_interval"])]
    raw: bool,
    /// Connections to open.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// How long to hold once every connection has been started (e.g. 30s, 2m, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 20_000.0)]
    connect_rate: f64,
    /// Connections closed per second at the end, each with a close handshake
    /// (default: the connect rate).
    #[arg(long)]
    close_rate: Option<f64>,
    /// Hold the connections without sending (the default).
    #[arg(long, conflicts_with = "echo")]
    idle: bool,
    /// Send probe messages the server echoes back.
    #[arg(long)]
    echo: bool,
    /// Message size in bytes (at least 36, the probe header).
    #[arg(long, default_value_t = 64, requires = "echo")]
    message_size: usize,
    /// Total messages per second over all connections (open model).
    #[arg(long, requires = "echo", conflicts_with = "rate_per_conn")]
    rate: Option<f64>,
    /// Only the first N connections carry messages (the rest are held idle): a few
    /// active clients among many connected ones.
    #[arg(long, value_name = "N", requires = "echo", value_parser = clap::value_parser!(u32).range(1..))]
    echo_connections: Option<u32>,
    /// Messages per second per connection (open model).
    #[arg(long, requires = "echo")]
    rate_per_conn: Option<f64>,
    /// How --rate messages are spaced: evenly, or as a Poisson process (real users
    /// do not take turns).
    #[arg(long, value_enum, default_value_t = ArrivalsArg::Constant, requires = "rate")]
    arrivals: ArrivalsArg,
    /// Seed of the Poisson arrivals (the same seed gives the same schedule).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Source address to bind (repeat to spread over several; for > 64k connections per target).
    #[arg(long = "source-addr", value_name = "IPV4")]
    sources: Vec<Ipv4Addr>,
    /// After the upgrade, send TEXT and (with `=>PATTERN`) wait for a text message
    /// containing PATTERN before the next step; repeatable. The connection is ready
    /// (and timed as `ready`) once every step is done. Example: --on-open 'SUB chan=>SUBSCRIBED'
    #[arg(long = "on-open", value_name = "TEXT[=>PATTERN]")]
    on_open: Vec<String>,
    /// Send a ping this often on every ready connection and time its pong (e.g. 1s).
    #[arg(long, value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    /// Trust the certificates in this PEM file for wss:// targets (e.g. the file
    /// `loadgen serve --tls --tls-cert-out FILE` wrote).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// wss:// without verifying the server's certificate (test servers only).
    #[arg(long, conflicts_with = "ca_file")]
    insecure: bool,
    /// Full TLS handshakes every time (by default each worker resumes its sessions).
    #[arg(long)]
    no_tls_resumption: bool,
    /// Offer permessage-deflate (no context takeover either way: compression contexts
    /// are pooled per core, so a held connection keeps none).
    #[arg(long, conflicts_with = "raw")]
    deflate: bool,
    /// With --deflate: keep compression contexts between messages (better ratio, but
    /// each connection then holds its own contexts, about 300 KB with zlib defaults).
    #[arg(long, requires = "deflate")]
    deflate_context_takeover: bool,
    /// An echo later than this after its intended time counts as late (not answered);
    /// in a closed loop the connection then stops waiting and sends its next message.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    reply_timeout: Duration,
    /// Closed loop (--echo without a rate): wait this long after each reply before the
    /// next send (0: at once).
    #[arg(long, default_value = "0s", value_parser = parse_duration, requires = "echo", conflicts_with_all = ["rate", "rate_per_conn"])]
    think_time: Duration,
    /// Bring connections the target drops back (WebSocket and raw TCP): each attempt
    /// after a random delay in [0, min(--reconnect-max, --reconnect-initial × 2^n)]
    /// (exponential backoff with full jitter); the time from the drop to ready again is
    /// reported as `latency_us.recover`.
    #[arg(long)]
    reconnect: bool,
    /// With --reconnect: ceiling of the first delay.
    #[arg(long, default_value = "100ms", value_parser = parse_duration, requires = "reconnect")]
    reconnect_initial: Duration,
    /// With --reconnect: largest delay ceiling.
    #[arg(long, default_value = "30s", value_parser = parse_duration, requires = "reconnect")]
    reconnect_max: Duration,
    /// With --reconnect: give up after N attempts per drop (default: never).
    #[arg(long, value_name = "N", requires = "reconnect")]
    reconnect_limit: Option<u32>,
    /// The generator counts as saturated in a second whose schedule-lag p99 (message
    /// sends, pings) exceeds this: the run is then judged invalid (exit 4).
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    lag_threshold: Duration,
    /// The same for connection starts (the ramp).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    connect_lag_threshold: Duration,
    /// Directory for report.json.
    #[arg(long, value_name = "DIR", default_value = "loadgen-report")]
    out: PathBuf,
}

/// `--arrivals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ArrivalsArg {
    /// Evenly spaced.
    Constant,
    /// Exponential gaps (a Poisson process).
    Poisson,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let value: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `ws://host:port/path` into an engine target (IPv4 for now).
fn target(url: &str) -> Result<WsTarget, String> {
    // http:// and https:// (HTTP polling) share the URL grammar of ws:// and wss://.
    let (_, url) = http_scheme(url);
    let url = url.as_str();
    let t = loadgen_conformance::Target::parse_url(url).map_err(|e| e.to_string())?;
    let addr = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .find_map(|a| match a {
            SocketAddr::V4(v4) => Some(v4),
            SocketAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("{} has no IPv4 address (IPv6 targets are not supported yet)", t.host))?;
    Ok(WsTarget { addr: SocketAddrV4::new(*addr.ip(), addr.port()), host: t.host_header(), path: t.path, tls: t.tls })
}

static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that stopped the run (SIGINT or SIGTERM), for the exit code.
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Reads the host as a run sees it: the soft RLIMIT_NOFILE raised to the hard one
/// first (shared with `loadgen doctor`).
pub(crate) fn host_facts() -> Result<HostFacts, String> {
    let _ = preflight::raise_nofile_soft_to_hard();
    HostFacts::read().map_err(|e| e.to_string())
}

/// The pre-flight request of `connections` to `targets` on `workers` threads, from
/// `sources` (empty: automatic). Shared with `loadgen doctor`.
pub(crate) fn load_request(
    connections: u32,
    targets: &[SocketAddrV4],
    workers: usize,
    sources: &[Ipv4Addr],
) -> LoadRequest {
    let targets = targets.iter().map(|&a| SocketAddr::V4(a)).collect();
    let mut request = LoadRequest::new(u64::from(connections), targets, workers);
    if !sources.is_empty() {
        request.sources = SourceAddrs::Explicit(sources.iter().map(|ip| IpAddr::V4(*ip)).collect());
    }
    request
}

/// The address of a target URL, resolved as `loadgen run` resolves it.
/// Whether `url` is http:// or https://, and the URL with the matching ws:// or wss://
/// scheme (same defaults and grammar).
fn http_scheme(url: &str) -> (bool, String) {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (true, format!("ws://{rest}")),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, format!("wss://{rest}")),
        _ => (false, url.to_owned()),
    }
}

pub(crate) fn target_addr(url: &str) -> Result<SocketAddrV4, String> {
    target(url).map(|t| t.addr)
}

/// Checks the host against the load and adopts the plan: ring size, source addresses.
fn preflight(config: &mut RunConfig) -> Result<Plan, String> {
    let facts = host_facts()?;
    let targets: Vec<SocketAddrV4> = config.targets.iter().map(|t| t.addr).collect();
    let request = load_request(config.connections, &targets, config.workers, &config.sources);
    let plan = preflight::plan(&facts, &request).map_err(|e| e.to_string())?;
    config.max_slots_per_ring = plan.per_ring_capacity;
    if config.sources.is_empty() && plan.targets.iter().any(|t| !t.kernel_chooses_source) {
        config.sources = plan
            .source_addrs
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
    }
    Ok(plan)
}

pub fn run(args: &RunArgs, output: &OutputArgs) -> ExitCode {
    let mode = output.mode();
    let mut config = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = match preflight(&mut config) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Human-readable text goes to stdout, except in json mode (stdout holds only the
    // JSON lines then) and, for the plan, in quiet mode (warnings still on stderr).
    let mut human: Box<dyn Write> =
        if mode == Mode::Json { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
    if mode == Mode::Quiet {
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
    } else {
        let _ = writeln!(human, "{}", plan.describe());
        let _ = writeln!(
            human,
            "loadgen run: {} connections to {} at {}/s, hold {:?}, {} workers",
            config.connections,
            args.targets.join(", "),
            config.connect_rate,
            config.hold,
            config.workers
        );
        let _ = human.flush();
    }
    install_signal_handlers();
    let mut progress = Progress::new(mode, &config);
    let result = loadgen_engine::run::run_with_progress(&config, &STOP, &mut |second| {
        progress.second(second, STOP.load(Ordering::Relaxed));
    });
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let interrupted = STOP.load(Ordering::Relaxed);
    crate::summary::write(&mut human, &outcome, interrupted);
    match crate::run_report::write(&outcome, &config, &plan, interrupted, &args.out) {
        Ok(path) => {
            let _ = writeln!(human, "report: {}", path.display());
            let _ = human.flush();
        }
        Err(e) => {
            eprintln!("error: cannot write the report into {}: {e} (choose another --out)", args.out.display());
            return ExitCode::from(3);
        }
    }
    let s = &outcome.stats;
    let verdict = outcome.verdict();
    if interrupted {
        ExitCode::from(if SIGNAL.load(Ordering::Relaxed) == libc::SIGTERM { 143 } else { 130 })
    } else if s.totals.established == 0 {
        eprintln!("error: {}", crate::summary::no_connection_error(&s.errors, &args.targets));
        ExitCode::from(3)
    } else {
        match verdict.outcome {
            Outcome::Pass => ExitCode::SUCCESS,
            Outcome::Fail => {
                for failure in verdict.failures() {
                    eprintln!("check failed: {failure}");
                }
                ExitCode::from(1)
            }
            Outcome::Invalid => {
                for why in &verdict.invalid_because {
                    eprintln!("invalid: {why}");
                }
                ExitCode::from(4)
            }
        }
    }
}

/// The TLS settings of wss:// targets from `--ca-file` / `--insecure`.
fn tls_config(args: &RunArgs, any_wss: bool) -> Result<Option<loadgen_tls::TlsClientConfig>, String> {
    if !any_wss {
        if args.ca_file.is_some() || args.insecure {
            return Err("--ca-file and --insecure apply to wss:// targets; every target is ws://".into());
        }
        return Ok(None);
    }
    let mut builder = loadgen_tls::TlsClientConfig::builder().resumption(!args.no_tls_resumption);
    match (&args.ca_file, args.insecure) {
        (Some(path), _) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read --ca-file {}: {e} (give a PEM certificate file)", path.display()))?;
            builder = builder.ca_pem(pem);
        }
        (None, true) => builder = builder.insecure_skip_verify(true),
        (None, false) => {
            return Err(
                "wss:// targets need trust settings: --ca-file FILE (PEM), or --insecure for a test server".into()
            );
        }
    }
    builder.build().map(Some).map_err(|e| format!("TLS settings: {e} (check --ca-file)"))
}

fn config(args: &RunArgs) -> Result<RunConfig, String> {
    let targets = args.targets.iter().map(|u| target(u)).collect::<Result<Vec<_>, _>>()?;
    let targets_tls = targets.iter().any(|t| t.tls);
    let http = args.targets.iter().filter(|u| http_scheme(u).0).count();
    if http > 0 && http < args.targets.len() {
        return Err("mix of http(s):// and ws(s):// targets: one run speaks one protocol".into());
    }
    if http > 0 && (args.raw || !args.on_open.is_empty() || args.ping_interval.is_some() || args.deflate) {
        return Err("--raw, --on-open, --ping-interval and --deflate do not apply to http(s):// polling".into());
    }
    if args.raw && targets_tls {
        return Err("--raw speaks plain TCP; give ws:// targets".into());
    }
    if !(args.connect_rate.is_finite() && args.connect_rate > 0.0) {
        return Err("--connect-rate must be a positive number".into());
    }
    if args.close_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--close-rate must be a positive number".into());
    }
    let rate = match (args.rate, args.rate_per_conn) {
        (Some(r), _) if !(r.is_finite() && r > 0.0) => return Err("--rate must be a positive number".into()),
        (_, Some(r)) if !(r.is_finite() && r > 0.0) => return Err("--rate-per-conn must be a positive number".into()),
        (Some(r), _) => MessageRate::Total(r),
        (_, Some(r)) => MessageRate::PerConnection(r),
        (None, None) => MessageRate::ClosedLoop,
    };
    if args.echo && args.message_size < loadgen_engine::payload::HEADER_LEN {
        return Err(format!(
            "--message-size must be at least {} (the probe header)",
            loadgen_engine::payload::HEADER_LEN
        ));
    }
    let traffic = if args.echo { Traffic::Echo { message_size: args.message_size, rate } } else { Traffic::Idle };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.unwrap_or(cpus).clamp(1, 1024);
    Ok(RunConfig {
        protocol: if args.raw {
            Protocol::RawTcp
        } else if http > 0 {
            Protocol::Http1
        } else {
            Protocol::WebSocket
        },
        targets,
        connections: args.connections,
        connect_rate: args.connect_rate,
        close_rate: args.close_rate.unwrap_or(args.connect_rate),
        hold: args.duration,
        traffic,
        message_arrivals: match args.arrivals {
            ArrivalsArg::Constant => Arrivals::Constant,
            ArrivalsArg::Poisson => Arrivals::Poisson { seed: args.seed },
        },
        workers,
        sources: args.sources.clone(),
        handshake_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(2),
        reply_timeout: args.reply_timeout,
        think_time: args.think_time,
        lag_threshold: args.lag_threshold,
        connect_lag_threshold: args.connect_lag_threshold,
        reconnect: args.reconnect.then_some(loadgen_engine::run::ReconnectPolicy {
            initial: args.reconnect_initial,
            max: args.reconnect_max.max(args.reconnect_initial),
            limit: args.reconnect_limit,
        }),
        max_message_size: 16 << 20,
        recv_buffers: 4096,
        recv_buffer_size: 4096,
        on_open: args
            .on_open
            .iter()
            .map(|step| match step.split_once("=>") {
                Some((send, expect)) => OnOpenStep { send: send.into(), expect: Some(expect.into()) },
                None => OnOpenStep { send: step.clone(), expect: None },
            })
            .collect(),
        ping_interval: args.ping_interval.filter(|d| !d.is_zero()),
        max_slots_per_ring: loadgen_engine::run::default_slots_per_ring(),
        tls: tls_config(args, targets_tls)?,
        echo_connections: args.echo_connections.filter(|&n| n < args.connections),
        deflate: args.deflate.then(|| loadgen_proto::DeflateConfig {
            server_no_context_takeover: !args.deflate_context_takeover,
            client_no_context_takeover: !args.deflate_context_takeover,
            ..loadgen_proto::DeflateConfig::default()
        }),
    })
}
