//! `loadgen serve --mode notify`: the reference target (crate `loadgen-target`), a
//! notification system fanning out through Redis Pub/Sub, run as supervised worker
//! processes of this same binary on one SO_REUSEPORT port. Without `--redis`, an
//! embedded `redis-server` is started on a free loopback port and stopped at exit.
//!
//! Prints `listening on ws://ADDR/` (line 1, as every `serve` does), `redis URL
//! (embedded|external)` (line 2) and `admin token TOKEN (generated)` or `admin token
//! (from --admin-token)` (line 3) on stdout, worker exits and restarts on stderr as they
//! happen, and a summary line at exit. Runs until Ctrl-C, SIGTERM or `--duration`.
//! A process started with `LOADGEN_TARGET_WORKER` in its environment is one of the
//! workers (the supervisor starts them so) and runs only that.
//!
//! Exit codes: 0 served and stopped, 2 usage or configuration error (a flag that does
//! not apply, a bad fault, redis-server missing, Redis unreachable, the address in
//! use), 3 runtime failure. No target logic lives here: flags become a `TargetConfig`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use loadgen_target::target::Balancer;
use loadgen_target::{SlowConsumer, Target, TargetConfig, TargetError, WORKER_ENV, WorkerConfig};

use super::{Refusal, SIGNALLED, ServeArgs, install_signal_handlers, parse_secs};

/// What to do with a client whose outbound queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SlowConsumerArg {
    /// Drop the oldest queued message (counted in /metrics).
    DropOldest,
    /// Close the connection with 1008 "slow consumer" (counted).
    Disconnect,
}

/// How connections reach the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BalancerArg {
    /// Every worker on the one port (SO_REUSEPORT): the kernel picks.
    Reuseport,
    /// Workers on their own ports behind a generated HAProxy, sticky by user id (at
    /// most ~9,500 connections: HAProxy spends two descriptors on each).
    Haproxy,
}

/// Which Redis protocol the subscriber speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RedisProtocolArg {
    /// RESP3 when the server speaks it, else RESP2.
    Auto,
    /// RESP2 only.
    Resp2,
    /// RESP3 only.
    Resp3,
}

/// What the HAProxy topology keeps a person on one worker by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StickyArg {
    /// Consistent hashing of the `user` query parameter.
    User,
    /// The same, plus a cookie naming the worker, set on the first answer.
    Cookie,
}

/// Where the per-IP connection rate is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RateScopeArg {
    /// In Redis, one bucket per address for every worker.
    Shared,
    /// In each worker (an address gets up to workers × N).
    Worker,
}

/// Flags of `--mode notify` only.
#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// Notify mode: use this Redis (redis://HOST:PORT) instead of starting an embedded
    /// redis-server on a free loopback port.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Notify mode: worker processes sharing the port (SO_REUSEPORT); one that exits
    /// is reported and restarted [default: the larger of the core count and
    /// --expect-connections ÷ 18,000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: Option<u32>,
    /// Notify mode: messages queued per connection before --slow-consumer applies
    /// [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    queue_size: Option<u32>,
    /// Notify mode: policy for a client whose queue is full [default: drop-oldest].
    #[arg(long, value_enum, value_name = "POLICY")]
    slow_consumer: Option<SlowConsumerArg>,
    /// Notify mode: seconds between the server's pings [default: 20].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    ping_interval: Option<Duration>,
    /// Notify mode: close a connection that sent nothing (not even a pong) for this
    /// many seconds [default: 60].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    idle_timeout: Option<Duration>,
    /// Notify mode: the token of POST /admin/faults (Authorization: Bearer TOKEN)
    /// [default: a random one, printed at start].
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// Notify mode: require a signed handshake token (HMAC-SHA256 with this secret;
    /// see docs/target.md) in Authorization: Bearer, ?token= or the token cookie.
    #[arg(long, value_name = "SECRET")]
    auth_secret: Option<String>,
    /// Notify mode: an Origin allowed to upgrade (repeatable); others get 403.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Notify mode: a WebSocket subprotocol the target speaks (repeatable): an upgrade
    /// offering it gets it in Sec-WebSocket-Protocol (the first of its offer spoken here).
    #[arg(long, value_name = "NAME")]
    subprotocol: Vec<String>,
    /// Notify mode: new connections per second per client IP, per worker; more get
    /// 429 with Retry-After.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    conn_rate_limit: Option<u32>,
    /// Notify mode: messages per second a client may send; faster closes with 1008.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    msg_rate_limit: Option<u32>,
    /// Notify mode: the largest message a client may send, in bytes; larger closes
    /// with 1009 [default: 65536].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=67_108_864))]
    max_message: Option<u32>,
    /// Notify mode: seconds a request head (an upgrade) may take [default: 10].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    handshake_timeout: Option<Duration>,
    /// Notify mode: seconds a person's notifications are kept in Redis for a reconnect
    /// with since=SEQ [default: 60].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pending_ttl: Option<u32>,
    /// Notify mode: connections the target is to hold, which sizes the default worker
    /// count (a worker holds up to 18,000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    expect_connections: Option<u64>,
    /// Notify mode: how connections reach the workers [default: reuseport].
    #[arg(long, value_enum, value_name = "KIND")]
    balancer: Option<BalancerArg>,
    /// Notify mode: classic PUBLISH/SUBSCRIBE or sharded SPUBLISH/SSUBSCRIBE (Redis 7+)
    /// [default: classic].
    #[arg(long, value_name = "MODE")]
    pubsub: Option<String>,
    /// Notify mode: the protocol of the subscriber's Redis connection [default: auto].
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    redis_protocol: Option<RedisProtocolArg>,
    /// Notify mode: find the Redis master through Sentinel and follow +switch-master:
    /// NAME@HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "NAME@ADDR,...", conflicts_with = "redis_cluster")]
    redis_sentinel: Option<String>,
    /// Notify mode: a Redis Cluster, by some of its nodes: HOST:PORT[,HOST:PORT...]
    /// (slots followed as they move).
    #[arg(long, value_name = "ADDR,...")]
    redis_cluster: Option<String>,
    /// Notify mode, with --balancer haproxy: stickiness by the user id or also a
    /// cookie [default: user].
    #[arg(long, value_enum, value_name = "BY")]
    sticky: Option<StickyArg>,
    /// Notify mode: count --conn-rate-limit in Redis for every worker, or per worker
    /// [default: shared].
    #[arg(long, value_enum, value_name = "SCOPE")]
    conn_rate_scope: Option<RateScopeArg>,
    /// Notify mode: a reminder fired later than this many ms after it was due counts
    /// as late in /metrics [default: 250].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=3_600_000))]
    reminder_late_after: Option<u32>,
}

impl NotifyArgs {
    /// The notify-only flags given, by name (refused in other modes).
    pub fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let flags = [
            (self.redis.is_some(), "--redis"),
            (self.workers.is_some(), "--workers"),
            (self.queue_size.is_some(), "--queue-size"),
            (self.slow_consumer.is_some(), "--slow-consumer"),
            (self.ping_interval.is_some(), "--ping-interval"),
            (self.idle_timeout.is_some(), "--idle-timeout"),
            (self.admin_token.is_some(), "--admin-token"),
            (self.auth_secret.is_some(), "--auth-secret"),
            (!self.allow_origin.is_empty(), "--allow-origin"),
            (!self.subprotocol.is_empty(), "--subprotocol"),
            (self.conn_rate_limit.is_some(), "--conn-rate-limit"),
            (self.msg_rate_limit.is_some(), "--msg-rate-limit"),
            (self.max_message.is_some(), "--max-message"),
            (self.handshake_timeout.is_some(), "--handshake-timeout"),
            (self.pending_ttl.is_some(), "--pending-ttl"),
            (self.expect_connections.is_some(), "--expect-connections"),
            (self.balancer.is_some(), "--balancer"),
            (self.pubsub.is_some(), "--pubsub"),
            (self.redis_protocol.is_some(), "--redis-protocol"),
            (self.redis_sentinel.is_some(), "--redis-sentinel"),
            (self.redis_cluster.is_some(), "--redis-cluster"),
            (self.sticky.is_some(), "--sticky"),
            (self.conn_rate_scope.is_some(), "--conn-rate-scope"),
            (self.reminder_late_after.is_some(), "--reminder-late-after"),
        ];
        for (set, name) in flags {
            if set {
                given.push(name);
            }
        }
        given
    }
}

/// Flags to configuration; engine-only flags are refused by name.
fn build(args: &ServeArgs) -> Result<TargetConfig, Refusal> {
    let engine_only = [
        (args.raw, "--raw"),
        (args.tls || args.tls_cert.is_some() || args.tls_cert_out.is_some(), "--tls"),
        (args.threads != 1, "--threads (use --workers)"),
        (args.pin_cpu.is_some(), "--pin-cpu"),
        (args.message_size.is_some(), "--message-size"),
        (args.max_connections.is_some(), "--max-connections"),
    ];
    if let Some((_, flag)) = engine_only.iter().find(|(set, _)| *set) {
        return Err(Refusal::usage(format!("{flag} does not apply to --mode notify; see `loadgen serve --help`")));
    }
    let faults = loadgen_target::faults::parse_all(&args.faults).map_err(Refusal::usage)?;
    let n = &args.notify;
    let mut worker = WorkerConfig::new(0, args.listen, "");
    worker.faults = faults;
    if let Some(q) = n.queue_size {
        worker.queue_capacity = q as usize;
    }
    if let Some(p) = n.slow_consumer {
        worker.slow_consumer = match p {
            SlowConsumerArg::DropOldest => SlowConsumer::DropOldest,
            SlowConsumerArg::Disconnect => SlowConsumer::Disconnect,
        };
    }
    if let Some(d) = n.ping_interval {
        worker.ping_interval = d;
    }
    if let Some(d) = n.idle_timeout {
        worker.idle_timeout = d;
    }
    if let Some(t) = &n.admin_token {
        if t.is_empty() || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Refusal::usage("--admin-token must be 1 to 256 printable ASCII characters, no spaces".into()));
        }
        worker.admin_token = Some(t.clone());
    }
    worker.auth_secret.clone_from(&n.auth_secret);
    worker.allow_origins.clone_from(&n.allow_origin);
    if let Some(bad) = n
        .subprotocol
        .iter()
        .find(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)))
    {
        return Err(Refusal::usage(format!(
            "--subprotocol {bad:?}: a subprotocol is an HTTP token (letters, digits and !#$%&'*+-.^_`|~, like notify.v1)"
        )));
    }
    worker.subprotocols.clone_from(&n.subprotocol);
    worker.conn_rate_per_ip = n.conn_rate_limit;
    worker.msg_rate = n.msg_rate_limit;
    if let Some(b) = n.max_message {
        worker.max_message_bytes = b as usize;
    }
    if let Some(d) = n.handshake_timeout {
        worker.handshake_timeout = d;
    }
    if let Some(s) = n.pending_ttl {
        worker.pending_ttl = Duration::from_secs(u64::from(s));
    }
    if let Some(mode) = &n.pubsub {
        worker.pubsub =
            mode.parse::<loadgen_target::pubsub::PubSubMode>().map_err(|e| Refusal::usage(format!("--pubsub: {e}")))?;
    }
    if let Some(p) = n.redis_protocol {
        use loadgen_target::pubsub::RedisProtocol;
        worker.redis_protocol = match p {
            RedisProtocolArg::Auto => RedisProtocol::Auto,
            RedisProtocolArg::Resp2 => RedisProtocol::Resp2,
            RedisProtocolArg::Resp3 => RedisProtocol::Resp3,
        };
    }
    if let Some(s) = &n.redis_sentinel {
        worker.redis_sentinel = Some(
            s.parse::<loadgen_target::sentinel::SentinelConfig>()
                .map_err(|e| Refusal::usage(format!("--redis-sentinel: {e}")))?,
        );
    }
    if let Some(s) = &n.redis_cluster {
        worker.redis_cluster = Some(
            s.parse::<loadgen_target::cluster::ClusterConfig>()
                .map_err(|e| Refusal::usage(format!("--redis-cluster: {e}")))?,
        );
    }
    if let Some(s) = n.sticky {
        if n.balancer != Some(BalancerArg::Haproxy) {
            return Err(Refusal::usage("--sticky applies to --balancer haproxy".into()));
        }
        worker.haproxy_sticky = match s {
            StickyArg::User => loadgen_target::haproxy::Sticky::User,
            StickyArg::Cookie => loadgen_target::haproxy::Sticky::Cookie,
        };
    }
    if let Some(s) = n.conn_rate_scope {
        worker.conn_rate_scope = match s {
            RateScopeArg::Shared => loadgen_target::limits::RateScope::Shared,
            RateScopeArg::Worker => loadgen_target::limits::RateScope::Worker,
        };
    }
    if let Some(ms) = n.reminder_late_after {
        worker.reminder_late_after = Duration::from_millis(u64::from(ms));
    }
    worker.validate().map_err(|e| Refusal::usage(e.to_string()))?;
    let program = std::env::current_exe()
        .map_err(|e| Refusal { message: format!("cannot find this program to start workers: {e}"), code: 3 })?;
    Ok(TargetConfig {
        redis: n.redis.clone(),
        workers: n.workers.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            loadgen_target::target::default_workers(cores, n.expect_connections)
        }),
        worker,
        program,
        args: ["serve", "--mode", "notify"].map(Into::into).to_vec(),
        balancer: match n.balancer {
            Some(BalancerArg::Haproxy) => Balancer::Haproxy,
            Some(BalancerArg::Reuseport) | None => Balancer::ReusePort,
        },
    })
}

/// A Redis URL fit to print: any password replaced by `***`.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

pub fn run(args: &ServeArgs) -> ExitCode {
    if let Ok(config) = std::env::var(WORKER_ENV) {
        return match loadgen_target::run_worker_process(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(3)
            }
        };
    }
    let config = match build(args) {
        Ok(c) => c,
        Err(r) => {
            eprintln!("error: {}", r.message);
            return ExitCode::from(r.code);
        }
    };
    let (workers, faults) = (config.workers, args.faults.join(" "));
    let haproxy = (config.balancer == Balancer::Haproxy).then(loadgen_target::haproxy::maxconn_for_fd_limit);
    install_signal_handlers();
    loadgen_target::worker::init_tracing();
    let target = match Target::start(config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            let code = match e {
                TargetError::RedisServerNotFound
                | TargetError::HaproxyNotFound
                | TargetError::Redis { .. }
                | TargetError::Listen { .. }
                | TargetError::Config(_) => 2,
                _ => 3,
            };
            return ExitCode::from(code);
        }
    };
    let started = Instant::now();
    println!("listening on ws://{}/", target.addr());
    let which = if target.redis_embedded() { "embedded, stopped at exit" } else { "external" };
    println!("redis {} ({which})", shown(target.redis_url()));
    match target.admin_token() {
        (token, true) => println!("admin token {token} (generated)"),
        (_, false) => println!("admin token (from --admin-token)"),
    }
    let _ = std::io::stdout().flush();
    let faults = if faults.is_empty() { String::new() } else { format!(", faults: {faults}") };
    if let Some(h) = haproxy {
        let ports: Vec<String> = target.worker_addrs().iter().map(ToString::to_string).collect();
        eprintln!(
            "haproxy in front of the workers at {} (sticky by user id unless no-sticky), at most {} \
             connections (HAProxy spends two descriptors per connection)",
            ports.join(" "),
            h
        );
    }
    eprintln!(
        "serving notify (tokio-tungstenite + Redis Pub/Sub) with {workers} worker process(es); WebSocket at /ws, \
         HTTP /healthz /metrics /publish /admin/faults on the same port{faults}; Ctrl-C stops"
    );
    while !SIGNALLED.load(Ordering::Relaxed) && args.duration.is_none_or(|d| started.elapsed() < d) {
        for event in target.events() {
            eprintln!("{event}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for event in target.events() {
        eprintln!("{event}");
    }
    let restarts = target.restarts();
    let ended = target.stop();
    let graceful = ended.iter().filter(|e| e.as_deref() == Some("exit code 0")).count();
    let _ = writeln!(
        std::io::stdout(),
        "summary: notify, {workers} worker(s), {restarts} restart(s), {graceful} stopped gracefully, ran {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(flags: &[&str]) -> ServeArgs {
        Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied())).unwrap().args
    }

    #[test]
    fn flags_become_a_target_configuration() {
        let args = parse(&[
            "--mode",
            "notify",
            "--workers",
            "3",
            "--redis",
            "redis://127.0.0.1:6379",
            "--fault",
            "delay=300",
            "--fault",
            "drop-fanout=5",
            "--slow-consumer",
            "disconnect",
            "--queue-size",
            "8",
            "--ping-interval",
            "5",
            "--idle-timeout",
            "15",
            "--admin-token",
            "s3cret",
            "--auth-secret",
            "k",
            "--allow-origin",
            "https://a",
            "--allow-origin",
            "https://b",
            "--conn-rate-limit",
            "50",
            "--msg-rate-limit",
            "10",
            "--max-message",
            "4096",
            "--handshake-timeout",
            "2",
        ]);
        let c = build(&args).unwrap();
        assert_eq!((c.workers, c.redis.as_deref()), (3, Some("redis://127.0.0.1:6379")));
        assert_eq!(c.worker.faults.iter().map(ToString::to_string).collect::<Vec<_>>(), ["delay=300", "drop-fanout=5"]);
        assert_eq!((c.worker.slow_consumer, c.worker.queue_capacity), (SlowConsumer::Disconnect, 8));
        assert_eq!((c.worker.ping_interval, c.worker.idle_timeout), (Duration::from_secs(5), Duration::from_secs(15)));
        assert_eq!(c.args, ["serve", "--mode", "notify"]);
        assert_eq!(c.worker.admin_token.as_deref(), Some("s3cret"));
        assert_eq!((c.worker.auth_secret.as_deref(), c.worker.allow_origins.len()), (Some("k"), 2));
        assert_eq!(
            (c.worker.conn_rate_per_ip, c.worker.msg_rate, c.worker.max_message_bytes),
            (Some(50), Some(10), 4096)
        );
        assert_eq!(c.worker.handshake_timeout, Duration::from_secs(2));
        let d = build(&parse(&["--mode", "notify"])).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as u32;
        assert_eq!((d.workers, d.redis, d.worker.queue_capacity), (cores, None, 1024));
        let big = build(&parse(&["--mode", "notify", "--expect-connections", "100000"])).unwrap();
        assert_eq!(big.workers, cores.max(6));
    }

    #[test]
    fn bad_flags_are_one_line() {
        let refused = |flags: &[&str]| build(&parse(flags)).unwrap_err().message;
        assert!(
            refused(&["--mode", "notify", "--fault", "stall=1s/5s"]).starts_with("invalid --fault \"stall=1s/5s\"")
        );
        assert!(refused(&["--mode", "notify", "--fault", "reorder", "--fault", "reorder"]).contains("given twice"));
        assert_eq!(
            refused(&["--mode", "notify", "--raw"]),
            "--raw does not apply to --mode notify; see `loadgen serve --help`"
        );
        assert!(refused(&["--mode", "notify", "--threads", "2"]).contains("use --workers"));
        assert!(refused(&["--mode", "notify", "--admin-token", "a b"]).contains("printable"));
        assert_eq!(parse(&["--workers", "2", "--redis", "redis://x"]).notify.given(), ["--redis", "--workers"]);
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(shown("redis://:secret@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
        assert_eq!(shown("redis://user:secret@h:1"), "redis://user:***@h:1");
        assert_eq!(shown("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }
}
