//! `loadgen serve`: runs the engine's WebSocket server (echo, sink or push), or with
//! `--raw` the same server on plain TCP (no upgrade, no framing), until Ctrl-C, SIGTERM
//! or `--duration`. Prints exactly one line `listening on ws://ADDR/` (raw:
//! `listening on tcp://ADDR`) to stdout once every thread accepts (scripts read the
//! port from it), the protocol and mode on stderr, warnings on stderr (at most one per
//! second), and one summary line at exit.
//!
//! Exit codes: 0 served and stopped (a signal is a normal stop for a server), 2 usage or
//! configuration error (address in use included), 3 runtime failure.
//! No server logic lives here: flags become a `ServeConfig`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use loadgen_engine::serve::{self, Mode, ServeConfig, ServeError, ServeProtocol, Summary};

pub const EXAMPLES: &str = "Examples:
  loadgen serve                                   # echo on 127.0.0.1, a free port (printed)
  loadgen serve --listen 127.0.0.1:8080 --threads 2
  loadgen serve --mode sink --listen 127.0.0.1:8080 --duration 60
  loadgen serve --mode push --push-rate 50000 --message-size 64 --listen 127.0.0.1:8080
  loadgen serve --pin-cpu 1 --recv-buffers 8192    # benchmark target on CPU 1
  loadgen serve --raw --mode echo --pin-cpu 1      # plain TCP echo, no WebSocket: this machine's ceiling
  loadgen serve --raw --mode sink --message-size 64   # count raw bytes, and messages as bytes / 64
  loadgen serve --duration 30 > serve.out &  sleep 0.5; head -1 serve.out   # scripts: port from line 1";

/// What the server does with messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Send every text or binary message back unchanged.
    Echo,
    /// Read and count messages; send nothing back (but pongs and close replies).
    Sink,
    /// Send probe payloads (LGPROBE1: channel, seq, send time µs, sender id) at --push-rate.
    Push,
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

pub fn run(args: &ServeArgs) -> ExitCode {
    let mode = match args.mode {
        ModeArg::Echo => Mode::Echo,
        ModeArg::Sink => Mode::Sink,
        ModeArg::Push => Mode::Push { rate: args.push_rate, message_size: args.message_size.unwrap_or(64) },
    };
    let protocol = if args.raw { ServeProtocol::RawTcp } else { ServeProtocol::WebSocket };
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
    };
    install_signal_handlers();
    let handle = match serve::start(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(match e {
                ServeError::Config(_) | ServeError::Listen { .. } => 2,
                _ => 3,
            });
        }
    };
    match protocol {
        ServeProtocol::WebSocket => println!("listening on ws://{}/", handle.addr()),
        ServeProtocol::RawTcp => println!("listening on tcp://{}", handle.addr()),
    }
    let _ = std::io::stdout().flush();
    eprintln!(
        "serving {} ({}) {} on {} thread(s), up to {} connections each; Ctrl-C stops",
        protocol.name(),
        if args.raw { "plain TCP, no WebSocket" } else { "RFC 6455" },
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

fn summary_line(s: &Summary) -> String {
    let per_conn = s
        .rss_per_peak_connection()
        .map_or(String::new(), |b| format!(", ≈ {:.1} KiB per peak connection", b as f64 / 1024.0));
    if s.protocol == ServeProtocol::RawTcp {
        return format!(
            "summary: raw TCP, accepted {}, peak open {}, bytes in {} out {}, messages in {} out {}, client EOFs {}, \
             aborted {}, accept errors {}, buffer ring exhausted {}, reads paused {}, peak backlog {:.1} KiB, \
             push dropped {}, cpu {:.2} s over {:.1} s, peak RSS {:.1} MiB (at ready {:.1} MiB{per_conn}), ring {}",
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
         reads paused {}, push dropped {}, cpu {:.2} s over {:.1} s, peak RSS {:.1} MiB (at ready {:.1} MiB{per_conn}), ring {}",
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
