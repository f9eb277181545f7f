//! Faults on command (`--fault NAME[=VALUE]`, repeatable): what they are, how they are
//! parsed and validated, and the deterministic share counters that decide which
//! deliveries a percentage fault hits. Applying them is [`crate::fanout`] (delivery
//! faults) and [`crate::pong_filter`] (`stop-pong`, `pong-jitter`).
//!
//! - `drop-fanout=P`: worker 0 drops P% of its deliveries (counted in /metrics).
//! - `delay=MS`: worker 0 delivers every message MS milliseconds late.
//! - `duplicate=P`: every worker delivers P% of its deliveries twice.
//! - `reorder`: every worker swaps consecutive messages of a channel (a message with no
//!   successor within 50 ms goes out alone).
//! - `stop-pong`: every worker stops answering the clients' pings.
//! - `pong-jitter=MS`: every worker holds each pong for a random delay from 0 to MS
//!   milliseconds (uniform), the connection's later frames behind it
//!   ([`crate::pong_filter`]): a healthy but busy server, for proving that a heartbeat
//!   oracle gives no false positives below its timeout.
//! - Hygiene switched off on every worker: `accept-no-auth` (no token needed),
//!   `ignore-origin`, `no-rate-limit` (neither per-IP connections nor per-connection
//!   messages), `no-size-limit`, `no-handshake-timeout` (half-open upgrades kept),
//!   `leak-idle` (idle connections never closed), `lenient-frames` (unmasked client
//!   frames accepted, other violations dropped without a close code).
//! - `crash-worker-at=SECONDS`: worker 0 exits abruptly at that second of the run
//!   (once: the restarted worker does not crash again).
//! - `no-resubscribe`: after a Redis reconnect, every worker is deaf to the channels
//!   its clients were on.
//! - `tiny-backlog`: every worker listens with a backlog of 1 (at its start) and
//!   accepts one connection per 100 ms.
//! - `stall-reads`: every worker stops reading from its clients.
//! - `no-priority`: critical messages wait in line like the others.
//! - `drop-pending`: a reconnecting person gets none of the notifications kept for them.
//! - `late-reminders=MS`: every worker fires scheduled reminders MS milliseconds
//!   after they are due ([`crate::reminders`]).
//! - `no-sticky`: HAProxy balances new connections round robin instead of by user id
//!   (`--balancer haproxy`; switched in HAProxy by the supervisor,
//!   [`crate::haproxy_follow`]).
//!
//! [`LiveFaults`] holds what a worker applies now: the `--fault` list at start, replaced
//! at run time by `POST /admin/faults` ([`crate::control`]).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pong_filter::PongFaults;

/// The accepted syntax, for error messages and help.
pub const FAULT_SYNTAX: &str = "drop-fanout=PERCENT, delay=MS, duplicate=PERCENT, reorder, stop-pong, \
accept-no-auth, ignore-origin, no-rate-limit, no-size-limit, no-handshake-timeout, leak-idle, lenient-frames, \
crash-worker-at=SECONDS, no-resubscribe, tiny-backlog, stall-reads, no-priority, drop-pending, no-sticky, \
late-reminders=MS, pong-jitter=MS";

/// Every fault's name.
pub const FAULT_NAMES: [&str; 21] = [
    "drop-fanout",
    "delay",
    "duplicate",
    "reorder",
    "stop-pong",
    "accept-no-auth",
    "ignore-origin",
    "no-rate-limit",
    "no-size-limit",
    "no-handshake-timeout",
    "leak-idle",
    "lenient-frames",
    "crash-worker-at",
    "no-resubscribe",
    "tiny-backlog",
    "stall-reads",
    "no-priority",
    "drop-pending",
    "no-sticky",
    "late-reminders",
    "pong-jitter",
];

/// The worker that `drop-fanout` and `delay` act on.
pub const FAULTY_WORKER: u32 = 0;

/// How long `reorder` holds a message waiting for its successor.
pub const REORDER_HOLD: Duration = Duration::from_millis(50);

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    DropFanout(f64),
    Delay(Duration),
    Duplicate(f64),
    Reorder,
    StopPong,
    AcceptNoAuth,
    IgnoreOrigin,
    NoRateLimit,
    NoSizeLimit,
    NoHandshakeTimeout,
    LeakIdle,
    LenientFrames,
    CrashWorkerAt(Duration),
    NoResubscribe,
    TinyBacklog,
    StallReads,
    NoPriority,
    DropPending,
    NoSticky,
    LateReminders(Duration),
    PongJitter(Duration),
}

impl Fault {
    /// The fault's name, one per kind.
    pub fn name(self) -> &'static str {
        match self {
            Fault::DropFanout(_) => "drop-fanout",
            Fault::Delay(_) => "delay",
            Fault::Duplicate(_) => "duplicate",
            Fault::Reorder => "reorder",
            Fault::StopPong => "stop-pong",
            Fault::AcceptNoAuth => "accept-no-auth",
            Fault::IgnoreOrigin => "ignore-origin",
            Fault::NoRateLimit => "no-rate-limit",
            Fault::NoSizeLimit => "no-size-limit",
            Fault::NoHandshakeTimeout => "no-handshake-timeout",
            Fault::LeakIdle => "leak-idle",
            Fault::LenientFrames => "lenient-frames",
            Fault::CrashWorkerAt(_) => "crash-worker-at",
            Fault::NoResubscribe => "no-resubscribe",
            Fault::TinyBacklog => "tiny-backlog",
            Fault::StallReads => "stall-reads",
            Fault::NoPriority => "no-priority",
            Fault::DropPending => "drop-pending",
            Fault::NoSticky => "no-sticky",
            Fault::LateReminders(_) => "late-reminders",
            Fault::PongJitter(_) => "pong-jitter",
        }
    }
}

fn percent(name: &str, value: Option<&str>) -> Result<f64, String> {
    let v = value.ok_or_else(|| format!("{name} needs a value (PERCENT, 0 to 100)"))?;
    match v.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{name}={v}: not a percentage from 0 to 100")),
    }
}

fn millis(name: &str, value: Option<&str>) -> Result<Duration, String> {
    let v = value.ok_or_else(|| format!("{name} needs a value (MS, milliseconds)"))?;
    match v.trim_end_matches("ms").parse::<u64>() {
        Ok(ms) if ms <= 600_000 => Ok(Duration::from_millis(ms)),
        _ => Err(format!("{name}={v}: not a number of milliseconds from 0 to 600000")),
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        let no_value = |f: Fault| match value {
            None => Ok(f),
            Some(v) => Err(format!("{name} takes no value (got {v:?})")),
        };
        match name {
            "drop-fanout" => Ok(Fault::DropFanout(percent(name, value)?)),
            "duplicate" => Ok(Fault::Duplicate(percent(name, value)?)),
            "delay" => Ok(Fault::Delay(millis(name, value)?)),
            "late-reminders" => Ok(Fault::LateReminders(millis(name, value)?)),
            "pong-jitter" => Ok(Fault::PongJitter(millis(name, value)?)),
            "reorder" => no_value(Fault::Reorder),
            "stop-pong" => no_value(Fault::StopPong),
            "accept-no-auth" => no_value(Fault::AcceptNoAuth),
            "ignore-origin" => no_value(Fault::IgnoreOrigin),
            "no-rate-limit" => no_value(Fault::NoRateLimit),
            "no-size-limit" => no_value(Fault::NoSizeLimit),
            "no-handshake-timeout" => no_value(Fault::NoHandshakeTimeout),
            "leak-idle" => no_value(Fault::LeakIdle),
            "lenient-frames" => no_value(Fault::LenientFrames),
            "crash-worker-at" => {
                let v = value.ok_or("crash-worker-at needs a value (SECONDS into the run)")?;
                match v.trim_end_matches('s').parse::<f64>() {
                    Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(Fault::CrashWorkerAt(Duration::from_secs_f64(s))),
                    _ => Err(format!("crash-worker-at={v}: not a number of seconds from 0 to 86400")),
                }
            }
            "no-resubscribe" => no_value(Fault::NoResubscribe),
            "tiny-backlog" => no_value(Fault::TinyBacklog),
            "stall-reads" => no_value(Fault::StallReads),
            "no-priority" => no_value(Fault::NoPriority),
            "drop-pending" => no_value(Fault::DropPending),
            "no-sticky" => no_value(Fault::NoSticky),
            other => Err(format!("unknown fault {other:?}")),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::DropFanout(p) | Fault::Duplicate(p) => write!(f, "{}={p}", self.name()),
            Fault::Delay(d) | Fault::LateReminders(d) | Fault::PongJitter(d) => {
                write!(f, "{}={}", self.name(), d.as_millis())
            }
            Fault::CrashWorkerAt(d) => write!(f, "crash-worker-at={}", d.as_secs_f64()),
            _ => f.write_str(self.name()),
        }
    }
}

impl Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses every `--fault` spec; one of each kind at most. The error is one line naming
/// the spec and the accepted syntax.
pub fn parse_all<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Fault>, String> {
    let mut faults: Vec<Fault> = Vec::new();
    for spec in specs {
        let spec = spec.as_ref();
        let fault =
            spec.parse::<Fault>().map_err(|p| format!("invalid --fault {spec:?}: {p}; accepted: {FAULT_SYNTAX}"))?;
        if faults.iter().any(|f| f.name() == fault.name()) {
            return Err(format!("--fault {} given twice; give each kind once", fault.name()));
        }
        faults.push(fault);
    }
    Ok(faults)
}

/// A deterministic share: of every run of deliveries to one connection, exactly P% are
/// hit, spread evenly (its delivery n is hit when ⌊(n+1)·P⌋ > ⌊n·P⌋), so tests and
/// runs repeat and every connection sees the same share (counting across connections
/// would starve some and spare others).
#[derive(Debug, Clone, Copy)]
pub struct Share {
    per_million: u64,
}

impl Share {
    pub fn new(percent: f64) -> Self {
        Self { per_million: (percent * 10_000.0).round() as u64 }
    }

    /// Whether delivery number `n` (counted per connection by `counter`) is hit.
    pub fn hit(&self, counter: &AtomicU64) -> bool {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        (n + 1) * self.per_million / 1_000_000 > n * self.per_million / 1_000_000
    }
}

/// The faults as one worker applies them (worker-0-only faults are absent elsewhere).
#[derive(Debug, Default)]
pub struct Faults {
    pub drop_fanout: Option<Share>,
    pub delay: Option<Duration>,
    pub duplicate: Option<Share>,
    pub reorder: bool,
    pub stop_pong: bool,
    pub accept_no_auth: bool,
    pub ignore_origin: bool,
    pub no_rate_limit: bool,
    pub no_size_limit: bool,
    pub no_handshake_timeout: bool,
    pub leak_idle: bool,
    pub lenient_frames: bool,
    pub crash_at: Option<Duration>,
    pub no_resubscribe: bool,
    pub tiny_backlog: bool,
    pub stall_reads: bool,
    pub no_priority: bool,
    pub drop_pending: bool,
    /// Reminders fire this long after they are due.
    pub late_reminders: Option<Duration>,
    /// Pongs are held up to this long.
    pub pong_jitter: Option<Duration>,
}

impl Faults {
    /// What worker `worker` applies of `faults`.
    pub fn for_worker(faults: &[Fault], worker: u32) -> Self {
        let mut out = Faults::default();
        for f in faults {
            match *f {
                Fault::DropFanout(p) if worker == FAULTY_WORKER => out.drop_fanout = Some(Share::new(p)),
                Fault::Delay(d) if worker == FAULTY_WORKER => out.delay = Some(d),
                Fault::Duplicate(p) => out.duplicate = Some(Share::new(p)),
                Fault::Reorder => out.reorder = true,
                Fault::StopPong => out.stop_pong = true,
                Fault::AcceptNoAuth => out.accept_no_auth = true,
                Fault::IgnoreOrigin => out.ignore_origin = true,
                Fault::NoRateLimit => out.no_rate_limit = true,
                Fault::NoSizeLimit => out.no_size_limit = true,
                Fault::NoHandshakeTimeout => out.no_handshake_timeout = true,
                Fault::LeakIdle => out.leak_idle = true,
                Fault::LenientFrames => out.lenient_frames = true,
                Fault::CrashWorkerAt(d) if worker == FAULTY_WORKER => out.crash_at = Some(d),
                Fault::NoResubscribe => out.no_resubscribe = true,
                Fault::TinyBacklog => out.tiny_backlog = true,
                Fault::StallReads => out.stall_reads = true,
                Fault::NoPriority => out.no_priority = true,
                Fault::DropPending => out.drop_pending = true,
                Fault::LateReminders(d) => out.late_reminders = Some(d),
                Fault::PongJitter(d) => out.pong_jitter = Some(d),
                // The balancer's, not a worker's.
                Fault::NoSticky => {}
                Fault::DropFanout(_) | Fault::Delay(_) | Fault::CrashWorkerAt(_) => {}
            }
        }
        out
    }

    /// Whether messages pass through the fault stage (reorder or delay).
    pub fn staged(&self) -> bool {
        self.reorder || self.delay.is_some()
    }
}

/// The faults a worker applies now: read per delivery (a snapshot, [`LiveFaults::get`]),
/// replaced whole at run time ([`LiveFaults::set`]).
#[derive(Debug)]
pub struct LiveFaults {
    worker: u32,
    current: RwLock<(Vec<Fault>, Arc<Faults>)>,
    pongs: Arc<PongFaults>,
    /// Bumped on every change, so waiting tasks look again.
    version: tokio::sync::watch::Sender<u64>,
}

impl LiveFaults {
    pub fn new(faults: &[Fault], worker: u32) -> Self {
        let applied = Faults::for_worker(faults, worker);
        let pongs = Arc::new(PongFaults::default());
        pongs.set(applied.stop_pong, applied.pong_jitter);
        let version = tokio::sync::watch::Sender::new(0);
        Self { worker, current: RwLock::new((faults.to_vec(), Arc::new(applied))), pongs, version }
    }

    /// Changes as they happen (the value is a change counter).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// What applies now.
    pub fn get(&self) -> Arc<Faults> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// The fault list in force (as given, for every worker).
    pub fn list(&self) -> Vec<Fault> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Replaces the faults; returns whether anything changed.
    pub fn set(&self, faults: &[Fault]) -> bool {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.0 == faults {
            return false;
        }
        let applied = Faults::for_worker(faults, self.worker);
        self.pongs.set(applied.stop_pong, applied.pong_jitter);
        let shown: Vec<String> = faults.iter().map(ToString::to_string).collect();
        tracing::info!(worker = self.worker, faults = %shown.join(" "), "faults switched");
        *current = (faults.to_vec(), Arc::new(applied));
        drop(current);
        self.version.send_modify(|v| *v += 1);
        true
    }

    /// The `stop-pong` and `pong-jitter` switches, for the connections' pong filters.
    pub fn pong_switches(&self) -> Arc<PongFaults> {
        self.pongs.clone()
    }
}

/// `current` with `on` switched on (replacing a fault of the same kind) and the kinds
/// named in `off` switched off.
pub fn edit(current: &[Fault], on: &[Fault], off: &[String]) -> Vec<Fault> {
    let mut out: Vec<Fault> = current
        .iter()
        .filter(|f| !off.iter().any(|n| n == f.name()) && !on.iter().any(|o| o.name() == f.name()))
        .copied()
        .collect();
    out.extend_from_slice(on);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        let plain = FAULT_NAMES[3..]
            .iter()
            .copied()
            .filter(|n| !["crash-worker-at", "late-reminders", "pong-jitter"].contains(n));
        for spec in [
            "drop-fanout=100",
            "drop-fanout=2.5",
            "delay=300",
            "duplicate=50",
            "crash-worker-at=2.5",
            "late-reminders=500",
            "pong-jitter=700",
        ]
        .into_iter()
        .chain(plain)
        {
            assert_eq!(spec.parse::<Fault>().unwrap().to_string(), spec);
        }
        assert_eq!("delay=300ms".parse::<Fault>().unwrap(), Fault::Delay(Duration::from_millis(300)));
        assert_eq!("duplicate=10%".parse::<Fault>().unwrap(), Fault::Duplicate(10.0));
    }

    #[test]
    fn bad_specs_are_one_line_naming_the_problem() {
        let err = |specs: &[&str]| parse_all(specs).unwrap_err();
        assert_eq!(
            err(&["drop-fanout"]),
            format!(
                "invalid --fault \"drop-fanout\": drop-fanout needs a value (PERCENT, 0 to 100); accepted: {FAULT_SYNTAX}"
            )
        );
        assert!(err(&["drop-fanout=101"]).contains("not a percentage"));
        assert!(err(&["delay=-1"]).contains("milliseconds"));
        assert!(err(&["reorder=1"]).contains("takes no value"));
        assert!(err(&["explode"]).contains("unknown fault \"explode\""));
        assert!(err(&["reorder", "reorder"]).contains("given twice"));
        assert!(parse_all(&["delay=5", "duplicate=1", "stop-pong"]).is_ok());
    }

    #[test]
    fn shares_are_exact_and_spread() {
        for (p, of, expect) in
            [(0.0, 1000, 0), (100.0, 1000, 1000), (50.0, 1000, 500), (2.5, 1000, 25), (33.3, 1000, 333)]
        {
            let (s, n) = (Share::new(p), AtomicU64::new(0));
            assert_eq!((0..of).filter(|_| s.hit(&n)).count(), expect, "{p}%");
        }
        let (s, n) = (Share::new(50.0), AtomicU64::new(0));
        let hits: Vec<bool> = (0..4).map(|_| s.hit(&n)).collect();
        assert_eq!(hits, [false, true, false, true], "every other one");
    }

    #[test]
    fn worker_zero_only_faults() {
        let faults = parse_all(&["drop-fanout=100", "delay=300", "duplicate=100", "reorder", "stop-pong"]).unwrap();
        let w0 = Faults::for_worker(&faults, 0);
        assert!(w0.drop_fanout.is_some() && w0.delay.is_some() && w0.duplicate.is_some() && w0.reorder && w0.stop_pong);
        let w1 = Faults::for_worker(&faults, 1);
        assert!(w1.drop_fanout.is_none() && w1.delay.is_none() && w1.duplicate.is_some() && w1.reorder && w1.stop_pong);
        let json = serde_json::to_string(&faults).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Fault>>(&json).unwrap(), faults);
    }

    #[test]
    fn live_faults_switch_and_edit() {
        let live = LiveFaults::new(&[], 0);
        let pong = live.pong_switches();
        assert!(live.get().drop_fanout.is_none() && !pong.stop() && pong.jitter_ms() == 0);
        let on = parse_all(&["drop-fanout=50", "stop-pong"]).unwrap();
        assert!(live.set(&on));
        assert!(!live.set(&on), "the same list again changes nothing");
        assert!(live.get().drop_fanout.is_some() && pong.stop());
        let next = edit(
            &live.list(),
            &parse_all(&["drop-fanout=10", "reorder", "pong-jitter=300"]).unwrap(),
            &["stop-pong".into()],
        );
        assert_eq!(
            next.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["drop-fanout=10", "reorder", "pong-jitter=300"]
        );
        live.set(&next);
        assert!(live.get().reorder && !pong.stop() && pong.jitter_ms() == 300);
    }
}
