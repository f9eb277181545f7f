//! `loadgen serve`: runs the engine's WebSocket server (echo, sink or push), or with
//! `--raw` the same server on plain TCP (no upgrade, no framing), until Ctrl-C, SIGTERM
//! or `--duration`; with `--tls`, either one inside TLS (a self-signed certificate made
//! at start, or `--tls-cert`/`--tls-key`; `--tls-cert-out` writes the certificate in
//! use for clients to trust). Prints exactly one line `listening on ws://ADDR/` (TLS:
//! `wss://`; raw: `tcp://ADDR`, raw TLS: `tls://ADDR`) to stdout once every thread
//! accepts (scripts read the port from it), the protocol and mode on stderr, warnings on
//! stderr (at most one per second), and one summary line at exit.
//!
//! `--fault SPEC` (repeatable) makes the server misbehave on command (stalls, closes,
//! resets, refused or unanswered upgrades, dropped echoes; see `FAULT_HELP`); a bad
//! spec is one line naming the problem and the accepted syntax, exit 2. A port held by
//! another process is refused (exit 2), never shared.
//!
//! Exit codes: 0 served and stopped (a signal is a normal stop for a server), 2 usage or
//! configuration error (address in use, unreadable or invalid certificate files
//! included), 3 runtime failure.
//! No server logic lives here: flags become a `ServeConfig`.
//!
//! `--mode notify` is another server altogether, the reference target (`notify`):
//! tokio workers fanning out through Redis, with flags of its own.

mod notify;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use loadgen_engine::serve::{
    self, FAULT_SYNTAX, Fault, Mode, ServeConfig, ServeError, ServeProtocol, Summary, TlsError, TlsServerConfig,
};

pub const EXAMPLES: &str = "Examples:
  loadgen serve                                   # echo on 127.0.0.1, a free port (printed)
  loadgen serve --listen 127.0.0.1:8080 --threads 2
  loadgen serve --mode sink --listen 127.0.0.1:8080 --duration 60
  loadgen serve --mode push --push-rate 50000 --message-size 64 --listen 127.0.0.1:8080
  loadgen serve --pin-cpu 1 --recv-buffers 8192    # benchmark target on CPU 1
  loadgen serve --raw --mode echo --pin-cpu 1      # plain TCP echo, no WebSocket: this machine's ceiling
  loadgen serve --raw --mode sink --message-size 64   # count raw bytes, and messages as bytes / 64
  loadgen serve --tls --tls-cert-out serve-cert.pem  # wss:// (self-signed); clients: --ca-file serve-cert.pem
  loadgen serve --tls --tls-cert chain.pem --tls-key key.pem --listen 127.0.0.1:8443
  loadgen serve --duration 30 > serve.out &  sleep 0.5; head -1 serve.out   # scripts: port from line 1
  loadgen serve --fault stall=1s/5s --fault drop-echo=2.5   # a server with GC pauses that loses echoes
  loadgen serve --fault refuse=429:5                # every upgrade: 429 with Retry-After: 5
  loadgen serve --mode notify                     # the reference target: embedded redis-server, a worker per core
  loadgen serve --mode notify --workers 2 --listen 127.0.0.1:8080 --redis redis://127.0.0.1:6379
  loadgen serve --mode notify --fault drop-fanout=5 --fault delay=300   # worker 0 loses 5% and lags";

/// Names of the self-signed certificate `--tls` generates.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What the server does with messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Send every text or binary message back unchanged.
    Echo,
    /// Read and count messages; send nothing back (but pongs and close replies).
    Sink,
    /// Send probe payloads (LGPROBE1: channel, seq, send time µs, sender id) at --push-rate.
    Push,
    /// The reference target: WebSocket notifications fanned out through Redis Pub/Sub by
    /// supervised worker processes (JSON envelopes; /healthz, /metrics, /publish on the
    /// same port; docs/target.md).
    Notify,
}

/// Flags of `loadgen serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What to do with messages (with --raw: with the byte stream).
    #[arg(long, value_enum, default_value_t = ModeArg::Echo)]
    mode: ModeArg,
    /// Plain TCP, no WebSocket: no upgrade, no framing. Echo writes back the bytes
    /// received, sink counts bytes, push sends probe payloads back to back.
    #[arg(long)]
    raw: bool,
    /// IPv4 address and port to listen on (port 0: a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Server threads, each with its own SO_REUSEPORT listener and io_uring ring.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Pin thread i to CPU N+i.
    #[arg(long, value_name = "N")]
    pin_cpu: Option<usize>,
    /// Stop by itself after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Push mode: messages per second per thread, spread round robin over its connections.
    #[arg(long, value_name = "R", default_value_t = 1_000.0)]
    push_rate: f64,
    /// Push mode: bytes per message (at least 36, the probe header; default 64).
    /// With --raw in echo or sink mode: count messages as bytes / this size.
    #[arg(long, value_name = "BYTES")]
    message_size: Option<usize>,
    /// Receive buffers per thread (provided-buffer ring; rounded up to a power of two).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u16).range(1..=32768))]
    recv_buffers: u16,
    /// Size of each receive buffer in bytes.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(64..=1 << 20))]
    recv_buffer_size: u32,
    /// Largest message accepted in bytes (larger: close 1009).
    #[arg(long, default_value_t = 16 << 20)]
    max_message_size: usize,
    /// Cap on connections per thread (default: what RLIMIT_NOFILE allows, minus 256).
    #[arg(long, value_name = "N")]
    max_connections: Option<u32>,
    /// Speak TLS: wss:// (with --raw: TLS around the byte stream). Without --tls-cert and
    /// --tls-key, a self-signed certificate for localhost, 127.0.0.1 and ::1 is made at start.
    #[arg(long)]
    tls: bool,
    /// PEM certificate chain (leaf first) to serve instead of a self-signed one; needs
    /// --tls-key (implies --tls).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Write the certificate in use (PEM) to FILE, for clients to trust
    /// (`loadgen run --ca-file FILE`). Needs --tls.
    #[arg(long, value_name = "FILE")]
    tls_cert_out: Option<PathBuf>,
    /// Misbehave on command (repeatable, one of each kind; durations 500ms, 2s, 1.5s, 1m):
    /// stall=T/P (every P, the first at P after start, handle nothing for T: no reads,
    /// writes or accepts, like a GC pause);
    /// close-after=D (close each connection D after it opened: close 1001, raw: FIN);
    /// reset-after=D (reset each connection D after it opened: RST, the client sees
    /// ECONNRESET);
    /// close-all-at=T / reset-all-at=T (at T after start, close every open connection /
    /// reset every connection);
    /// refuse=STATUS[:RETRY_AFTER_S] (answer every upgrade with that HTTP status, and
    /// Retry-After when given, then close);
    /// no-upgrade-reply (read upgrade requests, never answer);
    /// drop-echo=PERCENT (echo mode: drop that share of echoes, a repeatable sequence).
    /// Every effect is counted in the summary.
    /// With --mode notify: drop-fanout=PERCENT (worker 0 drops that share of deliveries),
    /// delay=MS (worker 0 delivers MS late), duplicate=PERCENT, reorder (swap consecutive
    /// messages of a channel), stop-pong (never answer the clients' pings), pong-jitter=MS
    /// (hold each pong 0 to MS ms); the full list is in docs/target.md.
    #[arg(long = "fault", value_name = "SPEC", verbatim_doc_comment)]
    faults: Vec<String>,
    #[command(flatten)]
    notify: Box<notify::NotifyArgs>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().trim_end_matches('s').parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{s:?} is not a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// A configuration error for people: one line, and the exit code.
#[derive(Debug)]
struct Refusal {
    message: String,
    code: u8,
}

impl Refusal {
    fn usage(message: String) -> Self {
        Self { message, code: 2 }
    }
}

/// The TLS side of the flags: the certificate to serve (loaded or generated), a
/// description for the banner, and the certificate written out when asked.
fn tls_config(args: &ServeArgs) -> Result<Option<(Arc<TlsServerConfig>, String)>, Refusal> {
    let enabled = args.tls || args.tls_cert.is_some();
    if !enabled {
        return match &args.tls_cert_out {
            Some(_) => Err(Refusal::usage(
                "--tls-cert-out writes the certificate of a TLS server: add --tls (or --tls-cert and --tls-key)".into(),
            )),
            None => Ok(None),
        };
    }
    let (config, what) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (load_pem(cert, key)?, format!("certificate from {}", cert.display())),
        _ => {
            let config = TlsServerConfig::self_signed(SELF_SIGNED_NAMES)
                .map_err(|e| Refusal { message: format!("cannot generate a self-signed certificate: {e}"), code: 3 })?;
            (config, format!("self-signed certificate for {}", SELF_SIGNED_NAMES.join(", ")))
        }
    };
    let mut what = what;
    if let Some(out) = &args.tls_cert_out {
        std::fs::write(out, config.cert_pem()).map_err(|e| {
            Refusal::usage(format!(
                "cannot write --tls-cert-out {}: {e}; give a path in a writable directory",
                out.display()
            ))
        })?;
        what.push_str(&format!(", written to {}", out.display()));
    }
    Ok(Some((Arc::new(config), what)))
}

/// Reads and parses `--tls-cert` and `--tls-key`, naming the file at fault.
fn load_pem(cert: &Path, key: &Path) -> Result<TlsServerConfig, Refusal> {
    let read = |path: &Path, flag: &str, fix: &str| {
        std::fs::read(path).map_err(|e| Refusal::usage(format!("cannot read {flag} {}: {e}; {fix}", path.display())))
    };
    let cert_pem =
        read(cert, "--tls-cert", "give a PEM certificate chain, or drop --tls-cert/--tls-key for a self-signed one")?;
    let key_pem = read(key, "--tls-key", "give the PEM private key of --tls-cert")?;
    TlsServerConfig::from_pem(&cert_pem, &key_pem).map_err(|e| {
        Refusal::usage(match e {
            TlsError::Pem { what: "certificate chain", detail } => format!(
                "--tls-cert {} holds no usable PEM certificate ({detail}); give a file of \
                 -----BEGIN CERTIFICATE----- sections, leaf first",
                cert.display()
            ),
            TlsError::Pem { detail, .. } => format!(
                "--tls-key {} holds no usable PEM private key ({detail}); give a -----BEGIN PRIVATE KEY----- \
                 (or RSA/EC PRIVATE KEY) file",
                key.display()
            ),
            other => format!(
                "--tls-cert {} with --tls-key {}: {other}; check that the key belongs to the certificate",
                cert.display(),
                key.display()
            ),
        })
    })
}

/// Flags to configuration (certificate files read, `--tls-cert-out` written).
fn build_config(args: &ServeArgs) -> Result<(ServeConfig, Option<String>), Refusal> {
    if let Some(flag) = args.notify.given().first() {
        return Err(Refusal::usage(format!("{flag} applies to --mode notify only")));
    }
    let mode = match args.mode {
        ModeArg::Echo => Mode::Echo,
        ModeArg::Sink => Mode::Sink,
        ModeArg::Push => Mode::Push { rate: args.push_rate, message_size: args.message_size.unwrap_or(64) },
        ModeArg::Notify => return Err(Refusal::usage("--mode notify is served by `notify::run`".into())),
    };
    let protocol = if args.raw { ServeProtocol::RawTcp } else { ServeProtocol::WebSocket };
    let (tls, tls_what) = match tls_config(args)? {
        Some((config, what)) => (Some(config), Some(what)),
        None => (None, None),
    };
    let faults = args
        .faults
        .iter()
        .map(|spec| {
            spec.parse::<Fault>().map_err(|problem| {
                Refusal::usage(format!("invalid --fault {spec:?}: {problem}; accepted: {FAULT_SYNTAX}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = ServeConfig {
        listen: args.listen,
        protocol,
        mode,
        threads: args.threads as usize,
        pin_cpu: args.pin_cpu,
        duration: args.duration,
        recv_buffers: args.recv_buffers,
        recv_buffer_size: args.recv_buffer_size,
        max_message_size: args.max_message_size,
        max_connections_per_thread: args.max_connections,
        raw_message_size: if args.raw && args.mode != ModeArg::Push { args.message_size } else { None },
        tls,
        faults,
    };
    Ok((config, tls_what))
}

/// The first line on stdout, which scripts parse for the port.
fn listening_line(protocol: ServeProtocol, tls: bool, addr: SocketAddr) -> String {
    match (protocol, tls) {
        (ServeProtocol::WebSocket, false) => format!("listening on ws://{addr}/"),
        (ServeProtocol::WebSocket, true) => format!("listening on wss://{addr}/"),
        (ServeProtocol::RawTcp, false) => format!("listening on tcp://{addr}"),
        (ServeProtocol::RawTcp, true) => format!("listening on tls://{addr}"),
    }
}

pub fn run(args: &ServeArgs) -> ExitCode {
    if args.mode == ModeArg::Notify {
        return notify::run(args);
    }
    let (config, tls_what) = match build_config(args) {
        Ok(built) => built,
        Err(r) => {
            eprintln!("error: {}", r.message);
            return ExitCode::from(r.code);
        }
    };
    let protocol = config.protocol;
    install_signal_handlers();
    let handle = match serve::start(config) {
        Ok(h) => h,
        Err(ServeError::AddressInUse { addr }) => {
            eprintln!(
                "error: cannot listen on {addr}: address in use (another process holds it; pick another --listen \
                 port or stop that process)"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(match e {
                ServeError::Config(_) | ServeError::Listen { .. } => 2,
                _ => 3,
            });
        }
    };
    println!("{}", listening_line(protocol, tls_what.is_some(), handle.addr()));
    let _ = std::io::stdout().flush();
    let kind = match (args.raw, tls_what.is_some()) {
        (true, false) => "plain TCP, no WebSocket",
        (true, true) => "no WebSocket",
        (false, _) => "RFC 6455",
    };
    eprintln!(
        "serving {} ({}) {} on {} thread(s), up to {} connections each; Ctrl-C stops",
        protocol.name(),
        tls_what.map_or_else(|| kind.to_string(), |what| format!("{kind}, TLS with a {what}")),
        format!("{:?}", args.mode).to_lowercase(),
        args.threads,
        handle.connections_per_thread()
    );
    let (mut reported_full, mut last_report) = (0, Instant::now());
    while !handle.is_finished() {
        if SIGNALLED.load(Ordering::Relaxed) {
            handle.stop();
        }
        let live = handle.live();
        if live.accept_table_full > reported_full && last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "warning: {} connections refused so far: direct-descriptor table full ({} per thread; {} open)",
                live.accept_table_full,
                handle.connections_per_thread(),
                live.open
            );
            (reported_full, last_report) = (live.accept_table_full, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = handle.join();
    // Whoever read the first line may have gone: a closed stdout is not an error.
    let _ = writeln!(std::io::stdout(), "{}", summary_line(&summary));
    for e in &summary.errors {
        eprintln!("error: {e}");
    }
    if summary.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn counts<K: std::fmt::Display>(map: &std::collections::BTreeMap<K, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// The fault part of the summary line (empty without faults).
fn faults_part(s: &Summary) -> String {
    if s.faults.is_empty() {
        return String::new();
    }
    format!(
        ", faults {}: stalls {}, closed by fault {}, reset by fault {}, refused by fault {}, upgrades unanswered {}, \
         echoes dropped {}",
        s.faults.join(" "),
        s.stalls,
        s.closed_by_fault,
        s.reset_by_fault,
        s.refused_by_fault,
        s.upgrades_unanswered,
        s.echoes_dropped
    )
}

fn summary_line(s: &Summary) -> String {
    let faults = faults_part(s);
    let per_conn = s
        .rss_per_peak_connection()
        .map_or(String::new(), |b| format!(", ≈ {:.1} KiB per peak connection", b as f64 / 1024.0));
    let tls = if s.tls {
        format!(
            ", TLS handshakes {} failed {} errors {}",
            s.tls_handshakes,
            s.tls_handshakes_failed,
            counts(&s.tls_errors)
        )
    } else {
        String::new()
    };
    if s.protocol == ServeProtocol::RawTcp {
        return format!(
            "summary: raw TCP, accepted {}, peak open {}, bytes in {} out {}, messages in {} out {}, client EOFs {}, \
             aborted {}, accept errors {}, buffer ring exhausted {}, reads paused {}, peak backlog {:.1} KiB, \
             push dropped {}, cpu {:.2} s over {:.1} s, peak RSS {:.1} MiB (at ready {:.1} MiB{per_conn}), ring {}{tls}{faults}",
            s.accepted,
            s.peak_open,
            s.bytes_in,
            s.bytes_out,
            s.messages_in,
            s.messages_out,
            s.closes_in,
            s.aborted,
            counts(&s.accept_errors),
            s.buffer_ring_exhausted,
            s.recv_paused,
            s.peak_backlog_bytes as f64 / 1024.0,
            s.push_dropped,
            s.cpu.as_secs_f64(),
            s.elapsed.as_secs_f64(),
            mib(s.peak_rss_bytes),
            mib(s.rss_at_ready_bytes),
            s.ring_flags,
        );
    }
    format!(
        "summary: accepted {}, peak open {}, upgraded {}, refused {}, messages in {} out {}, bytes in {} out {}, \
         pings {}, closes {}, aborted {}, accept errors {}, protocol errors {}, buffer ring exhausted {}, \
         reads paused {}, push dropped {}, cpu {:.2} s over {:.1} s, peak RSS {:.1} MiB (at ready {:.1} MiB{per_conn}), \
         ring {}{tls}{faults}",
        s.accepted,
        s.peak_open,
        s.upgraded,
        counts(&s.refused),
        s.messages_in,
        s.messages_out,
        s.bytes_in,
        s.bytes_out,
        s.pings,
        s.closes_in,
        s.aborted,
        counts(&s.accept_errors),
        counts(&s.protocol_errors),
        s.buffer_ring_exhausted,
        s.recv_paused,
        s.push_dropped,
        s.cpu.as_secs_f64(),
        s.elapsed.as_secs_f64(),
        mib(s.peak_rss_bytes),
        mib(s.rss_at_ready_bytes),
        s.ring_flags,
    )
}

#[cfg(test)]
mod tests {
    //! The flags end to end: parsed by clap, turned into a configuration (files read
    //! and written), served on 127.0.0.1 port 0, checked on the wire. The full wss://
    //! round trip with a TLS client lives in the engine (`serve::tls_tests`).

    use std::io::Read;
    use std::net::TcpStream;

    use clap::Parser;

    use super::*;

    /// A throw-away P-256 key and its self-signed certificate (localhost, 127.0.0.1),
    /// made with openssl for this test only.
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGSx+bAhTjkROxl2g
uoRM0lyq+KreG72sH+Pds1RH6nmhRANCAATueJH+IBMyczpm0ayhDenCwK9YJRvw
e4zh8uw3/oyNDYPSr5DpO9ZOhQjVQ880J4xw7NvdQtl/uWG0fGsuEmIV
-----END PRIVATE KEY-----
";
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUFjCeKPCYr/9d7YJL8JxiGO+brKswCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMzEyMjQ1NloYDzIxMjYxMDMw
MTIyNDU2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATueJH+IBMyczpm0ayhDenCwK9YJRvwe4zh8uw3/oyNDYPSr5DpO9ZO
hQjVQ880J4xw7NvdQtl/uWG0fGsuEmIVo28wbTAdBgNVHQ4EFgQUfYN3R6sXyHhZ
O4JJmthOvwmDClkwHwYDVR0jBBgwFoAUfYN3R6sXyHhZO4JJmthOvwmDClkwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgWvDQPEQGLEpbrtVh+QqZYzzlqjQbPnaF3XTHVdKiORUCICWo
n4FeAIMMu0pFFOUFP8vfaRLZ4gHc2d7G3WXpCoZh
-----END CERTIFICATE-----
";
    /// Another key, which does not belong to `TEST_CERT`.
    const OTHER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfC02pQeOw/pOUexM
tXgUaa5BFras6y3NeOvuCH5/YKihRANCAAS+7M3A5mX1dI8/FzAc+f+xXVjqj/yX
xVEK7RnqaU1p32mYp7HXDYPM1QjWRvvwj0EQ0k1jspLB+0TkhETAiGqe
-----END PRIVATE KEY-----
";

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(flags: &[&str]) -> Result<ServeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied())).map(|c| c.args)
    }

    /// A fresh directory for this test's files.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loadgen-serve-cmd-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn refusal(flags: &[&str]) -> Refusal {
        build_config(&parse(flags).unwrap()).expect_err("refused")
    }

    /// `loadgen serve --tls --tls-cert-out FILE`: a self-signed certificate written out,
    /// `wss://` in the first line, TLS on the wire (a plain HTTP request gets a fatal
    /// alert record, counted in the summary line).
    #[test]
    fn tls_flags_serve_wss_and_write_the_certificate() {
        let dir = temp_dir("self-signed");
        let out = dir.join("cert.pem");
        let args = parse(&["--tls", "--tls-cert-out", out.to_str().unwrap(), "--duration", "30"]).unwrap();
        let (config, what) = build_config(&args).unwrap();
        let tls = config.tls.clone().expect("TLS on");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), tls.cert_pem(), "the certificate in use");
        assert!(what.unwrap().contains("self-signed certificate for localhost, 127.0.0.1, ::1"));
        let handle = serve::start(config).unwrap();
        let line = listening_line(ServeProtocol::WebSocket, true, handle.addr());
        assert_eq!(line, format!("listening on wss://127.0.0.1:{}/", handle.addr().port()));
        let mut s = TcpStream::connect(handle.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert_eq!(answer.first(), Some(&0x15), "a TLS alert record, not HTTP: {answer:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.live().open > 0 {
            assert!(Instant::now() < deadline, "{:?}", handle.live());
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.stop();
        let summary = handle.join();
        let line = summary_line(&summary);
        assert!(line.ends_with(", TLS handshakes 0 failed 1 errors tls_protocol=1"), "{line}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn certificate_files_are_loaded_and_bad_ones_refused_naming_the_file() {
        let dir = temp_dir("files");
        let path = |name: &str, content: &str| {
            let p = dir.join(name);
            std::fs::write(&p, content).unwrap();
            p.to_str().unwrap().to_string()
        };
        let (cert, key, other) = (path("cert.pem", TEST_CERT), path("key.pem", TEST_KEY), path("other.pem", OTHER_KEY));
        let garbage = path("garbage.pem", "not a certificate\n");
        let out = dir.join("out.pem");
        let out = out.to_str().unwrap();

        // --tls-cert and --tls-key imply --tls; the certificate written out is the one loaded.
        let (config, what) =
            build_config(&parse(&["--tls-cert", &cert, "--tls-key", &key, "--tls-cert-out", out]).unwrap()).unwrap();
        assert!(config.tls.is_some() && what.unwrap().contains(&cert));
        assert_eq!(std::fs::read_to_string(out).unwrap(), TEST_CERT);
        let raw = build_config(&parse(&["--raw", "--tls", "--tls-cert", &cert, "--tls-key", &key]).unwrap()).unwrap();
        assert!(raw.0.tls.is_some() && raw.0.protocol == ServeProtocol::RawTcp, "TLS around raw TCP");

        let missing = dir.join("missing.pem");
        let missing = missing.to_str().unwrap();
        let no_dir = dir.join("no/such/dir.pem");
        let cases: [(&[&str], &str); 5] = [
            (&["--tls", "--tls-cert", missing, "--tls-key", &key], "cannot read --tls-cert "),
            (&["--tls", "--tls-cert", &garbage, "--tls-key", &key], "--tls-cert "),
            (&["--tls", "--tls-cert", &cert, "--tls-key", &garbage], "--tls-key "),
            (&["--tls", "--tls-cert", &cert, "--tls-key", &other], "--tls-cert "),
            (&["--tls", "--tls-cert-out", no_dir.to_str().unwrap()], "cannot write --tls-cert-out "),
        ];
        let messages: Vec<String> = cases
            .iter()
            .map(|(flags, start)| {
                let r = refusal(flags);
                assert!(r.code == 2 && r.message.starts_with(start) && !r.message.contains('\n'), "{r:?}");
                r.message
            })
            .collect();
        assert!(messages[0].contains("missing.pem") && messages[0].contains("self-signed"), "{}", messages[0]);
        assert!(messages[1].contains("garbage.pem") && messages[1].contains("BEGIN CERTIFICATE"), "{}", messages[1]);
        assert!(messages[2].contains("garbage.pem") && messages[2].contains("PRIVATE KEY"), "{}", messages[2]);
        assert!(messages[3].contains("belongs to the certificate"), "{}", messages[3]);

        // Flags that make no sense alone.
        assert!(parse(&["--tls-cert", &cert]).is_err(), "--tls-cert needs --tls-key");
        assert!(parse(&["--tls-key", &key]).is_err(), "--tls-key needs --tls-cert");
        let r = refusal(&["--tls-cert-out", out]);
        assert!(r.code == 2 && r.message.contains("add --tls"), "{r:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn fault_flags_become_faults_and_bad_ones_one_line() {
        let args = parse(&["--fault", "stall=1s/5s", "--fault", "refuse=429:5", "--fault", "drop-echo=2.5"]).unwrap();
        let (config, _) = build_config(&args).unwrap();
        let specs: Vec<String> = config.faults.iter().map(ToString::to_string).collect();
        assert_eq!(specs, ["stall=1s/5s", "refuse=429:5", "drop-echo=2.5"]);
        let r = refusal(&["--fault", "reset-after"]);
        assert_eq!(r.code, 2);
        assert_eq!(
            r.message,
            format!("invalid --fault \"reset-after\": reset-after needs a value; accepted: {FAULT_SYNTAX}")
        );
        let s = Summary { faults: specs, stalls: 2, refused_by_fault: 7, echoes_dropped: 3, ..Summary::default() };
        let line = summary_line(&s);
        assert!(
            line.ends_with(
                ", faults stall=1s/5s refuse=429:5 drop-echo=2.5: stalls 2, closed by fault 0, reset by fault 0, \
                 refused by fault 7, upgrades unanswered 0, echoes dropped 3"
            ),
            "{line}"
        );
        assert!(!summary_line(&Summary::default()).contains("faults"), "no fault part without faults");
    }

    #[test]
    fn listening_lines() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(listening_line(ServeProtocol::WebSocket, false, addr), "listening on ws://127.0.0.1:8080/");
        assert_eq!(listening_line(ServeProtocol::WebSocket, true, addr), "listening on wss://127.0.0.1:8080/");
        assert_eq!(listening_line(ServeProtocol::RawTcp, false, addr), "listening on tcp://127.0.0.1:8080");
        assert_eq!(listening_line(ServeProtocol::RawTcp, true, addr), "listening on tls://127.0.0.1:8080");
        assert!(EXAMPLES.contains("--tls --tls-cert-out"), "serve --help ends with a TLS example");
    }
}
