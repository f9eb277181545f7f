//! Faults on command (`loadgen serve --fault SPEC`): a server that misbehaves the way
//! real ones do, so that clients (loadgen's own engine first) can be tested against
//! stalls, server-side closes and resets, refused or unanswered upgrades and lost
//! echoes. [`Fault`] is the parsed spec; a thread's [`FaultState`] holds its timers;
//! the `impl Worker` below fires them from the server loop.
//!
//! - `stall=T/P`: every P from the start (first at P) the thread sleeps for T: no
//!   reads, writes or accepts; the kernel keeps buffering. Each thread stalls on the
//!   same schedule; a stop ends a stall early.
//! - `close-after=D` / `reset-after=D`: a connection is closed (WebSocket close 1001,
//!   then the client gets 1 s to answer; raw TCP: output flushed, then FIN) or reset
//!   (SO_LINGER {1, 0} set with an io_uring setsockopt, receive and send cancelled, the
//!   slot closed: the client sees ECONNRESET) D after it opened (after the upgrade).
//!   D is the same for every connection, so the deadlines are a FIFO queue
//!   (deadline, index, generation): no scan of the connections.
//! - `close-all-at=T` / `reset-all-at=T`: once, at T after the start, every open
//!   connection is closed / every connection is reset (the one scan of the slab).
//! - `refuse=STATUS[:RETRY_AFTER_S]` and `no-upgrade-reply`: applied to valid upgrade
//!   requests by `session` (WebSocket only).
//! - `drop-echo=P`: echo mode drops P % of echoes, decided by a xorshift64 sequence
//!   seeded by the thread index (repeatable from run to run), in `session`.
//!
//! Every effect is counted ([`crate::serve::Summary`]: `stalls`, `closed_by_fault`,
//! `reset_by_fault`, `refused_by_fault`, `upgrades_unanswered`, `echoes_dropped`).
//! What it does not do: faults while the server stops (its own close takes over),
//! faults on TLS records, random timing (every timer is deterministic), allocation per
//! message (a queue entry per connection opened, only with the per-connection faults).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::ops::{self, Op, Tag};
use super::{CLOSE_GRACE, MAX_WAIT, Worker};
use crate::serve::conn::Phase;

/// The accepted syntax, for error messages and help.
pub const FAULT_SYNTAX: &str = "stall=T/P, close-after=D, reset-after=D, close-all-at=T, reset-all-at=T, \
     refuse=STATUS[:RETRY_AFTER_S], no-upgrade-reply, drop-echo=PERCENT (durations like 500ms, 2s, 1.5s, 1m)";

/// One way for the server to misbehave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Every `every` (first at `every` after the start), stop handling anything for `length`.
    Stall {
        /// How long each stall lasts (shorter than `every`).
        length: Duration,
        /// Period of the stalls.
        every: Duration,
    },
    /// Close each connection (1001, or FIN in raw TCP) this long after it opened.
    CloseAfter(Duration),
    /// Reset each connection (RST) this long after it opened.
    ResetAfter(Duration),
    /// Close every open connection at this time after the start.
    CloseAllAt(Duration),
    /// Reset every connection at this time after the start.
    ResetAllAt(Duration),
    /// Answer every valid upgrade with this HTTP status, then close.
    Refuse {
        /// HTTP status (200 to 599, not 101).
        status: u16,
        /// Value of a `Retry-After` header in seconds, when given.
        retry_after_s: Option<u32>,
    },
    /// Read upgrade requests and never answer them.
    NoUpgradeReply,
    /// Echo mode: drop this percentage (0 to 100) of echoes.
    DropEcho {
        /// Percent of echoes dropped.
        percent: f64,
    },
}

impl Fault {
    /// The kind's name as written in a spec (`stall`, `close-after`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Stall { .. } => "stall",
            Self::CloseAfter(_) => "close-after",
            Self::ResetAfter(_) => "reset-after",
            Self::CloseAllAt(_) => "close-all-at",
            Self::ResetAllAt(_) => "reset-all-at",
            Self::Refuse { .. } => "refuse",
            Self::NoUpgradeReply => "no-upgrade-reply",
            Self::DropEcho { .. } => "drop-echo",
        }
    }

    /// Whether the fault resets connections (needs the io_uring setsockopt command).
    pub fn resets(&self) -> bool {
        matches!(self, Self::ResetAfter(_) | Self::ResetAllAt(_))
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    /// Parses one spec; the error names the problem (not the accepted syntax:
    /// callers add [`FAULT_SYNTAX`]).
    fn from_str(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec, None),
        };
        let need = || value.filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} needs a value"));
        Ok(match name {
            "stall" => {
                let v = need()?;
                let (t, p) = v.split_once('/').ok_or("stall needs T/P: how long, then how often (1s/5s)")?;
                let (length, every) = (duration(t)?, duration(p)?);
                if length >= every {
                    return Err(format!("a stall of {t} every {p} never ends: T must be shorter than P"));
                }
                Self::Stall { length, every }
            }
            "close-after" => Self::CloseAfter(duration(need()?)?),
            "reset-after" => Self::ResetAfter(duration(need()?)?),
            "close-all-at" => Self::CloseAllAt(duration(need()?)?),
            "reset-all-at" => Self::ResetAllAt(duration(need()?)?),
            "refuse" => {
                let v = need()?;
                let (s, ra) = match v.split_once(':') {
                    Some((s, ra)) => (s, Some(ra)),
                    None => (v, None),
                };
                let status = s.trim().parse::<u16>().ok().filter(|s| (200..=599).contains(s));
                let Some(status) = status else {
                    return Err(format!("{s:?} is not an HTTP status from 200 to 599"));
                };
                let retry_after_s = match ra {
                    Some(ra) => {
                        Some(ra.trim().parse::<u32>().map_err(|_| format!("{ra:?} is not a whole number of seconds"))?)
                    }
                    None => None,
                };
                Self::Refuse { status, retry_after_s }
            }
            "no-upgrade-reply" if value.is_none() => Self::NoUpgradeReply,
            "no-upgrade-reply" => return Err("no-upgrade-reply takes no value".into()),
            "drop-echo" => {
                let v = need()?;
                let percent = v.trim_end_matches('%').parse::<f64>().ok().filter(|p| (0.0..=100.0).contains(p));
                let Some(percent) = percent else { return Err(format!("{v:?} is not a percentage from 0 to 100")) };
                Self::DropEcho { percent }
            }
            "" => return Err("empty fault".into()),
            other => return Err(format!("unknown fault {other:?}")),
        })
    }
}

impl fmt::Display for Fault {
    /// The canonical spec (parses back to the same fault).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| match d.subsec_nanos() {
            0 => format!("{}s", d.as_secs()),
            n if n % 1_000_000 == 0 => format!("{}ms", d.as_millis()),
            _ => format!("{}s", d.as_secs_f64()),
        };
        match self {
            Self::Stall { length, every } => write!(f, "stall={}/{}", d(length), d(every)),
            Self::CloseAfter(t) | Self::ResetAfter(t) | Self::CloseAllAt(t) | Self::ResetAllAt(t) => {
                write!(f, "{}={}", self.kind(), d(t))
            }
            Self::Refuse { status, retry_after_s: Some(s) } => write!(f, "refuse={status}:{s}"),
            Self::Refuse { status, retry_after_s: None } => write!(f, "refuse={status}"),
            Self::NoUpgradeReply => f.write_str("no-upgrade-reply"),
            Self::DropEcho { percent } => write!(f, "drop-echo={percent}"),
        }
    }
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a bare number of seconds; positive, at most a day.
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let secs = num.trim().parse::<f64>().ok().map(|v| v * unit).filter(|v| v.is_finite() && *v > 0.0 && *v <= 86_400.0);
    secs.map(Duration::from_secs_f64).ok_or_else(|| format!("{s:?} is not a duration from 1ms to 24h (500ms, 2s, 1m)"))
}

/// Checks a set of faults against each other and the protocol and mode.
pub(in crate::serve) fn validate(faults: &[Fault], raw: bool, echo: bool) -> Result<(), String> {
    for (k, f) in faults.iter().enumerate() {
        if faults[..k].iter().any(|g| g.kind() == f.kind()) {
            return Err(format!("fault {} is given twice", f.kind()));
        }
        match f {
            Fault::Refuse { .. } | Fault::NoUpgradeReply if raw => {
                return Err(format!("fault {} needs WebSocket (raw TCP has no upgrade)", f.kind()));
            }
            Fault::DropEcho { .. } if raw || !echo => {
                return Err("fault drop-echo needs WebSocket echo mode (whole messages to drop)".into());
            }
            _ => {}
        }
    }
    let upgrade = faults.iter().filter(|f| matches!(f, Fault::Refuse { .. } | Fault::NoUpgradeReply)).count();
    if upgrade > 1 {
        return Err("faults refuse and no-upgrade-reply exclude each other".into());
    }
    Ok(())
}

/// What `session` does with a valid upgrade request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::serve) enum UpgradeFault {
    /// Accept it (101).
    #[default]
    None,
    /// Answer with this status (and Retry-After), then close.
    Refuse { status: u16, retry_after_s: Option<u32> },
    /// Never answer.
    NoReply,
}

/// The drop-echo decision: xorshift64, one draw per echo, no allocation.
#[derive(Clone, Debug)]
pub(in crate::serve) struct EchoDrop {
    state: u64,
    /// Drop when a draw is below this (out of 2^64); `u64::MAX` with `all`.
    threshold: u64,
    all: bool,
}

impl EchoDrop {
    pub fn new(percent: f64, seed: u64) -> Self {
        let share = (percent / 100.0).clamp(0.0, 1.0);
        // The seed is mixed so that seed 0 still gives a non-zero state.
        let state = (seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
        Self { state, threshold: (share * 18_446_744_073_709_551_616.0) as u64, all: share >= 1.0 }
    }

    /// Whether the next echo is dropped.
    pub fn drop_next(&mut self) -> bool {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        self.all || x < self.threshold
    }
}

/// One connection deadline: (when, slab index, generation).
type Deadline = (Instant, u32, u32);

/// The fault timers of one thread.
#[derive(Debug, Default)]
pub(super) struct FaultState {
    /// Stall length and period, and when the next stall starts.
    stall: Option<(Duration, Duration)>,
    next_stall: Option<Instant>,
    close_after: Option<Duration>,
    reset_after: Option<Duration>,
    close_q: VecDeque<Deadline>,
    reset_q: VecDeque<Deadline>,
    /// Connections closed by a fault that must have answered by then (else aborted).
    grace_q: VecDeque<Deadline>,
    close_all_at: Option<Instant>,
    reset_all_at: Option<Instant>,
    pub upgrade: UpgradeFault,
    pub echo_drop: Option<EchoDrop>,
    /// Any timer at all (else the loop skips `run_faults`).
    timed: bool,
}

impl FaultState {
    pub fn new(faults: &[Fault], started: Instant, thread: usize) -> Self {
        let mut s = Self::default();
        for f in faults {
            match *f {
                Fault::Stall { length, every } => {
                    s.stall = Some((length, every));
                    s.next_stall = Some(started + every);
                }
                Fault::CloseAfter(d) => s.close_after = Some(d),
                Fault::ResetAfter(d) => s.reset_after = Some(d),
                Fault::CloseAllAt(t) => s.close_all_at = Some(started + t),
                Fault::ResetAllAt(t) => s.reset_all_at = Some(started + t),
                Fault::Refuse { status, retry_after_s } => s.upgrade = UpgradeFault::Refuse { status, retry_after_s },
                Fault::NoUpgradeReply => s.upgrade = UpgradeFault::NoReply,
                Fault::DropEcho { percent } => s.echo_drop = Some(EchoDrop::new(percent, thread as u64)),
            }
        }
        s.timed = s.stall.is_some()
            || s.close_after.is_some()
            || s.reset_after.is_some()
            || s.close_all_at.is_some()
            || s.reset_all_at.is_some();
        s
    }

    /// A connection opened (upgraded; raw: accepted): queue its deadlines.
    pub fn opened(&mut self, i: u32, generation: u32) {
        if self.close_after.is_none() && self.reset_after.is_none() {
            return;
        }
        let now = Instant::now();
        if let Some(d) = self.close_after {
            self.close_q.push_back((now + d, i, generation));
        }
        if let Some(d) = self.reset_after {
            self.reset_q.push_back((now + d, i, generation));
        }
    }

    /// The next due entry of `q`, removed.
    fn pop_due(q: &mut VecDeque<Deadline>, now: Instant) -> Option<(u32, u32)> {
        let &(at, i, generation) = q.front()?;
        (at <= now).then(|| {
            q.pop_front();
            (i, generation)
        })
    }
}

/// SO_LINGER {on, 0 s}: closing the socket sends RST instead of FIN.
static LINGER_RESET: libc::linger = libc::linger { l_onoff: 1, l_linger: 0 };

impl Worker {
    /// Fires the fault timers that are due. `None` after a stall (the caller starts its
    /// turn over with a fresh clock); else how long until the next timer.
    pub(super) fn run_faults(&mut self, now: Instant) -> Option<Duration> {
        if !self.faults.timed {
            return Some(MAX_WAIT);
        }
        if let (Some((length, every)), Some(at)) = (self.faults.stall, self.faults.next_stall)
            && now >= at
        {
            self.stall(length);
            // A period missed entirely (the thread was descheduled) is not stalled twice.
            let mut next = at + every;
            while next <= Instant::now() {
                next += every;
            }
            self.faults.next_stall = Some(next);
            return None;
        }
        while let Some((i, generation)) = FaultState::pop_due(&mut self.faults.close_q, now) {
            if self.slab.get(i, generation).is_some() {
                self.fault_close(i, now);
            }
        }
        while let Some((i, generation)) = FaultState::pop_due(&mut self.faults.reset_q, now) {
            if self.slab.get(i, generation).is_some() {
                self.fault_reset(i);
            }
        }
        while let Some((i, generation)) = FaultState::pop_due(&mut self.faults.grace_q, now) {
            if self.slab.get(i, generation).is_some_and(|c| c.phase == Phase::Closing) {
                self.abort(i);
                self.advance_close(i);
            }
        }
        if self.faults.close_all_at.is_some_and(|t| now >= t) {
            self.faults.close_all_at = None;
            for i in 0..self.slab.conns.len() as u32 {
                self.fault_close(i, now);
            }
        }
        if self.faults.reset_all_at.is_some_and(|t| now >= t) {
            self.faults.reset_all_at = None;
            for i in 0..self.slab.conns.len() as u32 {
                self.fault_reset(i);
            }
        }
        let f = &self.faults;
        let fronts = [&f.close_q, &f.reset_q, &f.grace_q].map(|q| q.front().map(|e| e.0));
        let next = fronts.into_iter().chain([f.next_stall, f.close_all_at, f.reset_all_at]).flatten().min();
        Some(next.map_or(MAX_WAIT, |t| t.saturating_duration_since(now)).min(MAX_WAIT))
    }

    /// The thread handles nothing for `length` (a stop request ends it early).
    fn stall(&mut self, length: Duration) {
        self.counters.stalls += 1;
        let end = Instant::now() + length;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shared.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(left.min(MAX_WAIT));
        }
    }

    /// Closes an open connection the graceful way: close 1001 (then the client has
    /// [`CLOSE_GRACE`] to answer), or in raw TCP a flush and FIN. Counted.
    fn fault_close(&mut self, i: u32, now: Instant) {
        if self.slab.conns[i as usize].phase != Phase::Open {
            return;
        }
        self.counters.closed_by_fault += 1;
        if self.raw {
            self.slab.conns[i as usize].phase = Phase::Draining;
            self.sync_open(i);
            self.advance_close(i);
        } else {
            self.going_away(i);
            let generation = self.slab.conns[i as usize].generation;
            self.faults.grace_q.push_back((now + CLOSE_GRACE, i, generation));
        }
    }

    /// Resets a connection: SO_LINGER {1, 0}, then (on its completion) cancel what is
    /// armed and close the slot. Output not yet sent is discarded. Counted when the
    /// option is set ([`Worker::on_reset_sockopt`]).
    fn fault_reset(&mut self, i: u32) {
        let tag = self.tag(i, Op::SockOpt);
        let c = &mut self.slab.conns[i as usize];
        if c.phase == Phase::Free || c.reset || c.shutdown_sent {
            // Free, resetting already, or its FIN is gone: nothing to reset.
            return;
        }
        c.reset = true;
        c.shutdown_sent = true;
        c.phase = Phase::Draining;
        c.pending.clear();
        self.io.push(ops::setsockopt_linger(c.slot, &LINGER_RESET, tag));
        self.sync_open(i);
    }

    /// SO_LINGER is set (or failed: then the connection ends with a FIN instead).
    pub(super) fn on_reset_sockopt(&mut self, tag: Tag, res: i32) {
        let Some(c) = self.slab.get(tag.conn, tag.generation) else { return };
        if res < 0 {
            c.reset = false;
            self.counters.aborted += 1;
            self.io.push(ops::shutdown(c.slot, Tag { op: Op::Shutdown, ..tag }));
            return;
        }
        self.counters.reset_by_fault += 1;
        c.shutdown_done = true;
        // The socket is released (and the RST sent) once nothing holds it.
        if c.recv_armed {
            self.io.push(ops::cancel(Tag { op: Op::Recv, ..tag }));
        }
        if c.send_inflight {
            self.io.push(ops::cancel(Tag { op: Op::Send, ..tag }));
        }
        self.advance_close(tag.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_print_back_and_bad_ones_name_the_problem() {
        let ok = [
            ("stall=1s/5s", "stall=1s/5s"),
            ("stall=250ms/1.5s", "stall=250ms/1500ms"),
            ("close-after=2s", "close-after=2s"),
            ("reset-after=500ms", "reset-after=500ms"),
            ("close-all-at=1m", "close-all-at=60s"),
            ("reset-all-at=3", "reset-all-at=3s"),
            ("refuse=429:5", "refuse=429:5"),
            ("refuse=503", "refuse=503"),
            ("no-upgrade-reply", "no-upgrade-reply"),
            ("drop-echo=12.5", "drop-echo=12.5"),
            ("drop-echo=100%", "drop-echo=100"),
        ];
        for (spec, canonical) in ok {
            let f: Fault = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(f.to_string(), canonical);
            assert_eq!(canonical.parse::<Fault>(), Ok(f), "{canonical} parses back");
        }
        let bad = [
            ("stall=5s/1s", "never ends"),
            ("stall=1s", "T/P"),
            ("stall=", "needs a value"),
            ("close-after=-1s", "not a duration"),
            ("close-after=abc", "not a duration"),
            ("refuse=101", "not an HTTP status"),
            ("refuse=429:soon", "whole number"),
            ("drop-echo=101", "percentage"),
            ("drop-echo=NaN", "percentage"),
            ("no-upgrade-reply=1", "takes no value"),
            ("explode", "unknown fault \"explode\""),
            ("", "empty"),
        ];
        for (spec, problem) in bad {
            let e = spec.parse::<Fault>().expect_err(spec);
            assert!(e.contains(problem) && !e.contains('\n'), "{spec}: {e}");
        }
    }

    #[test]
    fn sets_of_faults_are_checked() {
        let f = |s: &str| s.parse::<Fault>().unwrap();
        assert!(validate(&[f("stall=1s/2s"), f("close-after=1s"), f("drop-echo=5")], false, true).is_ok());
        assert!(validate(&[f("close-after=1s"), f("close-after=2s")], false, true).unwrap_err().contains("twice"));
        assert!(validate(&[f("refuse=429"), f("no-upgrade-reply")], false, true).is_err());
        assert!(validate(&[f("refuse=429")], true, true).unwrap_err().contains("raw TCP"));
        assert!(validate(&[f("drop-echo=5")], false, false).is_err(), "sink has no echoes");
        assert!(validate(&[f("drop-echo=5")], true, true).is_err(), "raw has no messages");
        assert!(validate(&[f("reset-after=1s"), f("close-all-at=2s")], true, false).is_ok());
    }

    #[test]
    fn echo_drops_are_repeatable_and_near_the_share() {
        let count = |percent, seed| {
            let mut d = EchoDrop::new(percent, seed);
            (0..100_000).filter(|_| d.drop_next()).count()
        };
        assert_eq!(count(25.0, 3), count(25.0, 3), "same seed, same drops");
        assert!((24_000..26_000).contains(&count(25.0, 3)), "{}", count(25.0, 3));
        assert!((9_500..10_500).contains(&count(10.0, 0)), "{}", count(10.0, 0));
        assert_eq!(count(0.0, 1), 0);
        assert_eq!(count(100.0, 1), 100_000);
    }

    #[test]
    fn deadlines_pop_in_order_when_due() {
        let t0 = Instant::now();
        let mut q: VecDeque<Deadline> = VecDeque::new();
        q.push_back((t0, 1, 7));
        q.push_back((t0 + Duration::from_secs(1), 2, 8));
        assert_eq!(FaultState::pop_due(&mut q, t0), Some((1, 7)));
        assert_eq!(FaultState::pop_due(&mut q, t0), None, "not due yet");
        assert_eq!(FaultState::pop_due(&mut q, t0 + Duration::from_secs(2)), Some((2, 8)));
        assert!(q.is_empty());
    }
}
