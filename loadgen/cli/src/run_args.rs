//! The flags of `loadgen run` and their validation: [`RunArgs`] (clap), the parsers of
//! durations and sizes, and [`check`], which refuses flags with one line naming the
//! problem and the fix, before the host is read or anything is opened. Bounds refused
//! here are those the engine would otherwise turn into overflow, endless loops or a
//! run blamed on the target. It does not build the engine's `RunConfig`: the flags
//! become a scenario (`flag_scenario`), compiled like a file, and `run_plan` maps the
//! plan onto the engine.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use loadgen_engine::payload::HEADER_LEN;
use loadgen_engine::preflight::thousands;
use loadgen_engine::run::{MessageRate, WsTarget};

/// The longest duration any flag takes, and the longest connect ramp: 365 days.
pub const MAX_SECS: f64 = 365.0 * 86_400.0;
/// The engine's longest ramp-down (`run::worker_close`: one hour, then the workers stop).
pub const MAX_RAMP_DOWN_SECS: f64 = 3_600.0;
/// More connects or messages per second than this is refused: beyond what one process
/// does, and the schedule would hand out more than one event per nanosecond.
pub const MAX_RATE: f64 = 1e9;
/// The largest message sent: one message is one send, whose length the kernel takes as
/// 32 bits (and caps near 2 GiB).
pub const MAX_SEND_SIZE: u64 = 1 << 31;

/// Flags of `loadgen run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// A scenario file (TOML, docs/scenarios.md) to run: its target, load, groups,
    /// timeline and checks. Flags that shape the load then do not apply (exit 2): use
    /// --set; --target replaces the scenario's target.
    #[arg(value_name = "FILE")]
    pub(crate) scenario: Option<PathBuf>,
    /// With FILE: override a key, a dotted key and a TOML value, a bare word read as a
    /// string (`--set load.hold=10s`, `--set 'target.faults=["drop-fanout=20"]'`).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "scenario")]
    pub(crate) sets: Vec<String>,
    /// ws:// or wss:// URL to load (repeat for several targets, used round robin);
    /// http:// or https:// for HTTP/1.1 keep-alive polling (each message is a GET).
    /// With a scenario FILE: the one target, instead of the file's.
    #[arg(long = "target", value_name = "URL", required_unless_present = "scenario")]
    pub(crate) targets: Vec<String>,
    /// Plain TCP instead of WebSocket: the same probe payloads back to back, no
    /// handshake, no framing (against `loadgen serve --raw`): this host's ceiling.
    #[arg(long, conflicts_with_all = ["on_open", "ping_interval"])]
    pub(crate) raw: bool,
    /// Connections to open.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) connections: u32,
    /// How long to hold once every connection has been started (e.g. 30s, 2m, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub(crate) duration: Duration,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 20_000.0, allow_negative_numbers = true)]
    pub(crate) connect_rate: f64,
    /// Connections closed per second at the end, each with a close handshake
    /// (default: the connect rate).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) close_rate: Option<f64>,
    /// Hold the connections without sending (the default).
    #[arg(long, conflicts_with = "echo")]
    pub(crate) idle: bool,
    /// Send probe messages the server echoes back.
    #[arg(long)]
    pub(crate) echo: bool,
    /// Message size in bytes (at least 36, the probe header; at most --max-message-size
    /// and 2GiB); suffixes k, M, G (powers of 1000) and KiB, MiB, GiB (powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "64", value_parser = parse_size, requires = "echo", allow_hyphen_values = true)]
    pub(crate) message_size: u64,
    /// Largest message accepted from the server (larger: close 1009), so also the
    /// largest --message-size an echo can bring back; suffixes as for --message-size.
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_size, allow_hyphen_values = true)]
    pub(crate) max_message_size: u64,
    /// Total messages per second over all connections (open model).
    #[arg(long, requires = "echo", conflicts_with = "rate_per_conn", allow_negative_numbers = true)]
    pub(crate) rate: Option<f64>,
    /// Only the first N connections carry messages (the rest are held idle): a few
    /// active clients among many connected ones.
    #[arg(long, value_name = "N", requires = "echo", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) echo_connections: Option<u32>,
    /// Messages per second per connection (open model).
    #[arg(long, requires = "echo", allow_negative_numbers = true)]
    pub(crate) rate_per_conn: Option<f64>,
    /// How --rate messages are spaced: evenly, or as a Poisson process (real users
    /// do not take turns).
    #[arg(long, value_enum, default_value_t = ArrivalsArg::Constant, requires = "rate")]
    pub(crate) arrivals: ArrivalsArg,
    /// Seed of the Poisson arrivals (the same seed gives the same schedule).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Worker threads, 1 to 1024 (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) workers: Option<u32>,
    /// Source address to bind (repeat to spread over several; for > 64k connections per target).
    #[arg(long = "source-addr", value_name = "IPV4")]
    pub(crate) sources: Vec<Ipv4Addr>,
    /// After the upgrade, send TEXT and (with `=>PATTERN`) wait for a text message
    /// containing PATTERN before the next step (at most --reply-timeout, then
    /// `wait_timeout` and loadgen closes it); repeatable. The connection is ready (and
    /// timed as `ready`) once every step is done. Example: --on-open 'SUB chan=>SUBSCRIBED'
    #[arg(long = "on-open", value_name = "TEXT[=>PATTERN]")]
    pub(crate) on_open: Vec<String>,
    /// Extra request header of every connection (the WebSocket upgrade, or every HTTP
    /// poll), as 'Name: value'; repeatable, at most 32. `{i}` in a value (or in the
    /// target URL's path or query) is the connection's number in the run, so each is its
    /// own user. Example: --header 'Authorization: Bearer t-{i}' --header 'Origin: https://app.example'
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Send a ping this often on every ready connection and time its pong (e.g. 1s).
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub(crate) ping_interval: Option<Duration>,
    /// Give up on a connection whose upgrade (TLS handshake included) is not done this
    /// long after its connect started (counted as handshake_timeout).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub(crate) handshake_timeout: Duration,
    /// Wait this long for the server's answer to a close frame before dropping the
    /// connection (counted as close_timeout).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub(crate) close_timeout: Duration,
    /// Trust the certificates in this PEM file for wss:// targets (e.g. the file
    /// `loadgen serve --tls --tls-cert-out FILE` wrote).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// wss:// without verifying the server's certificate (test servers only).
    #[arg(long, conflicts_with = "ca_file")]
    pub(crate) insecure: bool,
    /// Full TLS handshakes every time (by default each worker resumes its sessions).
    #[arg(long)]
    pub(crate) no_tls_resumption: bool,
    /// Offer permessage-deflate (no context takeover either way: compression contexts
    /// are pooled per core, so a held connection keeps none).
    #[arg(long, conflicts_with = "raw")]
    pub(crate) deflate: bool,
    /// With --deflate: keep compression contexts between messages (better ratio, but
    /// each connection then holds its own contexts, about 300 KB with zlib defaults).
    #[arg(long, requires = "deflate")]
    pub(crate) deflate_context_takeover: bool,
    /// An echo later than this after its intended time counts as late (not answered);
    /// in a closed loop the connection then stops waiting and sends its next message.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub(crate) reply_timeout: Duration,
    /// Fire the timers (paced sends, pings) due within this window of the earliest one
    /// together, in one wake-up and one submission: less CPU per message at high
    /// connection counts, at most this much added lateness (recorded as schedule lag,
    /// included in latencies). 0s: wake for every deadline.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub(crate) coalesce: Duration,
    /// Closed loop (--echo without a rate): wait this long after each reply before the
    /// next send (0s: at once).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub(crate) think_time: Duration,
    /// Bring connections the target drops back (WebSocket, raw TCP and HTTP pollers,
    /// which keep their cookies and honour a `Retry-After` they were given): each attempt
    /// after a random delay in [0, min(--reconnect-max, --reconnect-initial × 2^n)]
    /// (exponential backoff with full jitter); the time from the drop to ready again is
    /// reported as `latency_us.recover`.
    #[arg(long)]
    pub(crate) reconnect: bool,
    /// With --reconnect: ceiling of the first delay.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration, requires = "reconnect")]
    pub(crate) reconnect_initial: Duration,
    /// With --reconnect: largest delay ceiling.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, requires = "reconnect")]
    pub(crate) reconnect_max: Duration,
    /// With --reconnect: give up after N attempts per drop (default: never).
    #[arg(long, value_name = "N", requires = "reconnect")]
    pub(crate) reconnect_limit: Option<u32>,
    /// With --reconnect: how each delay is drawn under its ceiling: `full` (uniform from
    /// 0), `equal` (from half the ceiling) or `none` (the ceiling itself: a client
    /// library without jitter, whose dropped clients come back together).
    #[arg(long, value_name = "KIND", default_value = "full", value_parser = ["full", "equal", "none"], requires = "reconnect")]
    pub(crate) reconnect_jitter: String,
    /// The generator counts as saturated in a second whose schedule-lag p99 (message
    /// sends, pings) exceeds this: the run is then judged invalid (exit 4).
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = parse_duration)]
    pub(crate) lag_threshold: Duration,
    /// The same for connection starts (the ramp and reconnects).
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_duration)]
    pub(crate) connect_lag_threshold: Duration,
    /// Directory for report.json (created; checked to be writable before the run).
    #[arg(long, value_name = "DIR", default_value = "loadgen-report")]
    pub(crate) out: PathBuf,
    /// Print the scenario file (TOML) these flags describe and exit without running:
    /// save it and run it as `loadgen run FILE` with the same result.
    #[arg(long, conflicts_with = "scenario")]
    pub(crate) print_scenario: bool,
}

/// `--arrivals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ArrivalsArg {
    /// Evenly spaced.
    Constant,
    /// Exponential gaps (a Poisson process).
    Poisson,
}

/// `30s`, `2m`, `500ms`, `1.5h`, a bare number of seconds; at most [`MAX_SECS`].
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!("{s:?} is negative: give a length of time such as 30s"));
    }
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let value: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use us, ms, s, m or h)")),
    };
    if secs > MAX_SECS {
        return Err(format!("{s:?} is longer than 365 days (8760h), the longest duration loadgen takes"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 2m, 500ms)"))
}

/// `--header 'Name: value'` flags: a token name, a value without control characters,
/// none of the headers loadgen writes itself, at most
/// [`loadgen_engine::run::MAX_HEADERS`].
pub(crate) fn parse_headers(flags: &[String]) -> Result<Vec<(String, String)>, String> {
    const OWN: [&str; 8] = [
        "host",
        "connection",
        "upgrade",
        "content-length",
        "transfer-encoding",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
    ];
    if flags.len() > loadgen_engine::run::MAX_HEADERS {
        return Err(format!(
            "{} --header flags; at most {} are supported",
            flags.len(),
            loadgen_engine::run::MAX_HEADERS
        ));
    }
    let headers = flags
        .iter()
        .map(|flag| {
            let Some((name, value)) = flag.split_once(':') else {
                return Err(format!("--header {flag:?} has no ':'; write it as 'Name: value'"));
            };
            let (name, value) = (name.trim(), value.trim());
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return Err(format!("--header {flag:?}: {name:?} is not a header name (letters, digits, - and _ ...)"));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!("--header {flag:?}: the value has a control character (CR, LF ...)"));
            }
            if OWN.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("--header {name}: loadgen writes this header itself; drop the flag"));
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (k, (name, _)) in headers.iter().enumerate() {
        if headers[..k].iter().any(|(other, _)| other.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "--header {name} is given twice; a run sends one value per header name: join the values in one \
                 --header ('{name}: a, b')"
            ));
        }
    }
    Ok(headers)
}

/// Bytes: `64`, `16KiB`, `1.5MiB`, `2G` (k, M, G: powers of 1000; KiB, MiB, GiB: of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!("{s:?} is negative: give a size in bytes such as 64 or 16KiB"));
    }
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use bytes, or k, M, G, KiB, MiB, GiB)")),
    };
    let not_a_size = || format!("{s:?} is not a size in bytes (e.g. 64, 16KiB, 1MiB)");
    let too_large = || format!("{s:?} is too large (at most {} bytes)", u64::MAX);
    if num.is_empty() || num.starts_with('.') {
        return Err(not_a_size());
    }
    if !num.contains('.') {
        let n: u64 = num.parse().map_err(|_| too_large())?;
        return n.checked_mul(multiplier).ok_or_else(too_large);
    }
    let bytes = num.parse::<f64>().map_err(|_| not_a_size())? * multiplier as f64;
    if bytes.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    // 2^64 as f64: every smaller whole f64 converts exactly.
    if bytes >= 18_446_744_073_709_551_616.0 {
        return Err(too_large());
    }
    Ok(bytes as u64)
}

/// A length of time for messages: `2h 46m`, `126 years`.
fn long(secs: f64) -> String {
    if secs < 2.0 * 86_400.0 {
        format!("{}h {}m", (secs / 3600.0) as u64, (secs % 3600.0 / 60.0).ceil() as u64)
    } else if secs < 2.0 * MAX_SECS {
        format!("{} days", (secs / 86_400.0).ceil() as u64)
    } else if secs < 1e6 * MAX_SECS {
        format!("{} years", (secs / MAX_SECS).ceil() as u64)
    } else {
        format!("{:.1e} years", secs / MAX_SECS)
    }
}

/// A number as given, in exponent form when very large or small: `0.5`, `1e-300`.
fn num(r: f64) -> String {
    if r == 0.0 || (1e-6..1e12).contains(&r.abs()) { format!("{r}") } else { format!("{r:e}") }
}

/// A rate as typed, rounded up (`at least`) or down: `0.028`, `3.2e-8`.
fn rate_text(r: f64, up: bool) -> String {
    let round = if up { f64::ceil } else { f64::floor };
    if (1e-3..1e12).contains(&r) { format!("{}", round(r * 1e3) / 1e3) } else { format!("{r:.1e}") }
}

/// Whether `url` is http:// or https://, and the URL with the matching ws:// or wss://
/// scheme (same defaults and grammar).
pub(crate) fn http_scheme(url: &str) -> (bool, String) {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (true, format!("ws://{rest}")),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, format!("wss://{rest}")),
        _ => (false, url.to_owned()),
    }
}

/// Parses `ws://host:port/path` into an engine target (IPv4 for now).
pub(crate) fn target(url: &str) -> Result<WsTarget, String> {
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

/// The address of a target URL, resolved as `loadgen run` resolves it.
pub(crate) fn target_addr(url: &str) -> Result<SocketAddrV4, String> {
    target(url).map(|t| t.addr)
}

/// The TLS settings of wss:// targets from `--ca-file` / `--insecure`.
pub(crate) fn tls_config(args: &RunArgs, any_wss: bool) -> Result<Option<loadgen_tls::TlsClientConfig>, String> {
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

/// Durations: the hold must be longer than 0, timeouts and the ping interval at least 1 ms.
fn check_durations(args: &RunArgs) -> Result<(), String> {
    if args.duration.is_zero() {
        return Err("--duration must be longer than 0 (e.g. 10s)".into());
    }
    let ms = Duration::from_millis(1);
    if !args.think_time.is_zero() && (!args.echo || args.rate.is_some() || args.rate_per_conn.is_some()) {
        return Err("--think-time applies to the closed loop: --echo without --rate or --rate-per-conn".into());
    }
    if args.ping_interval.is_some_and(|d| d < ms) {
        return Err("--ping-interval must be at least 1ms (e.g. 1s; leave it out for no pings)".into());
    }
    for (flag, d, default) in [
        ("--handshake-timeout", args.handshake_timeout, "10s"),
        ("--close-timeout", args.close_timeout, "2s"),
        ("--reply-timeout", args.reply_timeout, "5s"),
        ("--lag-threshold", args.lag_threshold, "1ms"),
        ("--connect-lag-threshold", args.connect_lag_threshold, "10ms"),
        ("--reconnect-initial", args.reconnect_initial, "100ms"),
    ] {
        if d < ms {
            return Err(format!("{flag} must be at least 1ms (default {default})"));
        }
    }
    Ok(())
}

/// Connect and close rates: positive, at most [`MAX_RATE`], a ramp-up of at most
/// [`MAX_SECS`] and a ramp-down of at most [`MAX_RAMP_DOWN_SECS`].
fn check_connection_rates(args: &RunArgs) -> Result<(), String> {
    let n = f64::from(args.connections);
    let connect = args.connect_rate;
    if !(connect.is_finite() && connect > 0.0) {
        return Err("--connect-rate must be a positive number of connections per second (e.g. 1000)".into());
    }
    if connect > MAX_RATE {
        return Err(format!(
            "--connect-rate {} is more than 1e9 connections per second: give at most 1e9",
            num(connect)
        ));
    }
    if n / connect > MAX_SECS {
        return Err(format!(
            "--connections {} at --connect-rate {}/s would take {} to open, longer than 365 days: raise \
             --connect-rate to at least {}",
            thousands(u64::from(args.connections)),
            num(connect),
            long(n / connect),
            rate_text(n / MAX_SECS, true)
        ));
    }
    let close = args.close_rate.unwrap_or(connect);
    if !(close.is_finite() && close > 0.0) {
        return Err(
            "--close-rate must be a positive number of connections per second (default: the connect rate)".into()
        );
    }
    if n / close > MAX_RAMP_DOWN_SECS {
        let which =
            if args.close_rate.is_some() { "--close-rate" } else { "--close-rate, by default the connect rate" };
        return Err(format!(
            "closing {} connections at {}/s ({which}) would take {}, longer than the ramp-down may last (1h): \
             give --close-rate {} or more",
            thousands(u64::from(args.connections)),
            num(close),
            long(n / close),
            rate_text(n / MAX_RAMP_DOWN_SECS, true)
        ));
    }
    Ok(())
}

/// Message rates: positive, at most [`MAX_RATE`] in total, at least one intended
/// message, a per-connection interval of at most [`MAX_SECS`].
fn message_rate(args: &RunArgs, carriers: u32) -> Result<MessageRate, String> {
    match (args.rate, args.rate_per_conn) {
        (Some(r), _) => {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number of messages per second (e.g. 1000)".into());
            }
            if r > MAX_RATE {
                return Err(format!("--rate {} is more than 1e9 messages per second: give at most 1e9", num(r)));
            }
            if r * args.duration.as_secs_f64() < 1.0 {
                return Err(format!(
                    "--rate {} over --duration {:?} intends no message at all (rate × duration < 1): raise --rate \
                     or --duration",
                    num(r),
                    args.duration
                ));
            }
            Ok(MessageRate::Total(r))
        }
        (_, Some(r)) => {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate-per-conn must be a positive number of messages per second (e.g. 10)".into());
            }
            if 1.0 / r > MAX_SECS {
                return Err(format!(
                    "--rate-per-conn {} is less than one message per connection in 365 days: give at least {}",
                    num(r),
                    rate_text(1.0 / MAX_SECS, true)
                ));
            }
            if r * f64::from(carriers) > MAX_RATE {
                return Err(format!(
                    "--rate-per-conn {} on {} connections is more than 1e9 messages per second: give at most {}",
                    num(r),
                    thousands(u64::from(carriers)),
                    rate_text(MAX_RATE / f64::from(carriers), false)
                ));
            }
            Ok(MessageRate::PerConnection(r))
        }
        (None, None) => Ok(MessageRate::ClosedLoop),
    }
}

/// Message sizes: the probe header at least, at most [`MAX_SEND_SIZE`], and no larger
/// than the largest message accepted back (not applicable to --raw: no framing).
fn check_sizes(args: &RunArgs) -> Result<(), String> {
    if args.max_message_size == 0 {
        return Err("--max-message-size must be at least 1 byte (default 16MiB, the largest message accepted)".into());
    }
    if !args.echo {
        return Ok(());
    }
    let size = args.message_size;
    if size < HEADER_LEN as u64 {
        return Err(format!("--message-size must be at least {HEADER_LEN} (the probe header)"));
    }
    if size > MAX_SEND_SIZE {
        return Err(format!(
            "--message-size {size} is more than {MAX_SEND_SIZE} (2GiB), the largest message loadgen sends: give a \
             smaller --message-size"
        ));
    }
    if !args.raw && size > args.max_message_size {
        return Err(format!(
            "--message-size {size} is larger than --max-message-size {}, the largest message accepted (the echo \
             would be refused with close 1009): raise --max-message-size to at least {size} or give a smaller \
             --message-size",
            args.max_message_size
        ));
    }
    Ok(())
}

/// The flags checked on their own, before they become a scenario: the first problem
/// on one line, naming the flag. Checked again on a plan put into the flags' shape
/// (`run_plan`), so a scenario file is held to the same bounds.
pub(crate) fn check(args: &RunArgs) -> Result<(), String> {
    check_durations(args)?;
    check_sizes(args)?;
    check_connection_rates(args)?;
    if let Some(n) = args.echo_connections.filter(|&n| n > args.connections) {
        return Err(format!(
            "--echo-connections {n} is more than --connections {}: give at most {}",
            args.connections, args.connections
        ));
    }
    let carriers = args.echo_connections.unwrap_or(args.connections);
    message_rate(args, carriers)?;
    let targets = args.targets.iter().map(|u| target(u)).collect::<Result<Vec<_>, _>>()?;
    parse_headers(&args.headers)?;
    let http = args.targets.iter().filter(|u| http_scheme(u).0).count();
    if http > 0 && http < args.targets.len() {
        return Err("mix of http(s):// and ws(s):// targets: one run speaks one protocol".into());
    }
    if http > 0 && (args.raw || !args.on_open.is_empty() || args.ping_interval.is_some() || args.deflate) {
        return Err("--raw, --on-open, --ping-interval and --deflate do not apply to http(s):// polling".into());
    }
    if args.raw && targets.iter().any(|t| t.tls) {
        return Err("--raw speaks plain TCP; give ws:// targets".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_bytes_and_suffixes_and_refuse_the_rest() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("16MiB"), Ok(16_777_216));
        assert_eq!(parse_size("2k"), Ok(2_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1_536));
        assert_eq!(parse_size("4G"), Ok(4_000_000_000));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for bad in ["18446744073709551616", "16777216TiB", "20000000000GiB", "1e400", "-5", "", "MiB", "1.3", "x"] {
            let e = parse_size(bad).unwrap_err();
            assert!(!e.contains('\n') && e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_refuse_overflow_instead_of_panicking() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("8760h"), Ok(Duration::from_secs(31_536_000)));
        for bad in ["-1s", "1e400s", "inf", "NaN", "99999999999999999999999s", "8761h", "1.2.3s", "5 parsecs"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn lengths_of_time_read_well() {
        assert_eq!(long(10_000.0), "2h 47m");
        assert_eq!(long(3.0 * 86_400.0), "3 days");
        assert_eq!(long(4e9), "127 years");
        assert_eq!(long(1e302), "3.2e294 years");
        assert_eq!(rate_text(100.0 / 3600.0, true), "0.028");
        assert_eq!(rate_text(100.0 / 3600.0, false), "0.027");
        assert_eq!(rate_text(1.0 / MAX_SECS, true), "3.2e-8");
    }
}
