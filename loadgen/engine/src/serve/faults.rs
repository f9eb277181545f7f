//! Faults on command (`loadgen serve --fault SPEC`): a server that misbehaves the way
//! real ones do, so that clients (loadgen's own engine first) can be tested against
//! stalls, server-side closes and resets, refused or unanswered upgrades and lost
//! echoes. [`Fault`] is the parsed spec; [`compile`] turns a mode and its faults into
//! the server-side program of every connection ([`ServeProgram`]) and the schedule of
//! a thread ([`ThreadSchedule`]), both sans-IO (`driver::serve`); the `impl Worker`
//! below carries out what they ask, on the reactor's timer wheel and clock.
//!
//! - `stall=T/P`: every P from the start (first at P) the thread sleeps for T: no
//!   reads, writes or accepts; the kernel keeps buffering. Each thread stalls on the
//!   same schedule; a stop ends a stall early.
//! - `close-after=D` / `reset-after=D`: a connection is closed (WebSocket close 1001,
//!   then the client gets 1 s to answer; raw TCP: output flushed, then FIN) or reset
//!   (SO_LINGER {1, 0} set with an io_uring setsockopt, receive and send cancelled, the
//!   slot closed: the client sees ECONNRESET) D after it opened (after the upgrade).
//!   Each is a timer in the thread's wheel (O(1), no scan of the connections), tagged
//!   with the connection's index and generation so a timer of a closed connection
//!   whose slab entry was reused is recognised as stale and ignored.
//! - `close-all-at=T` / `reset-all-at=T`: once, at T after the start, every open
//!   connection is closed / every connection is reset (the one scan of the slab).
//! - `refuse=STATUS[:RETRY_AFTER_S]` and `no-upgrade-reply`: applied to valid upgrade
//!   requests by `session` (WebSocket only).
//! - `drop-echo=P`: echo mode drops P % of echoes, decided by draws from a xorshift64
//!   sequence seeded by the thread index ([`Draws`]: repeatable from run to run).
//!
//! Every effect is counted ([`crate::serve::Summary`]: `stalls`, `closed_by_fault`,
//! `reset_by_fault`, `refused_by_fault`, `upgrades_unanswered`, `echoes_dropped`).
//! What it does not do: faults while the server stops (its own close takes over),
//! faults on TLS records, random timing (every timer is deterministic), allocation per
//! message (a wheel entry per connection opened, only with the per-connection faults).

use std::fmt;
use std::time::Duration;

use super::ops::{self, Op, Tag};
use super::{CLOSE_GRACE, MAX_WAIT, Worker};
use crate::driver::serve::{Reply, ServeAction, ServeProgram, ServeTimer, ThreadAction, ThreadSchedule, UpgradeAnswer};
use crate::serve::Mode;
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

/// The server-side program of every connection of a server in `mode` with `faults`
/// (validated), and the schedule of each of its threads.
pub(in crate::serve) fn compile(mode: Mode, faults: &[Fault]) -> (ServeProgram, ThreadSchedule) {
    let reply = match mode {
        Mode::Echo => Reply::Echo,
        Mode::Sink => Reply::Sink,
        Mode::Push { .. } => Reply::Push,
    };
    let mut program = ServeProgram::new(reply, CLOSE_GRACE);
    let mut schedule = ThreadSchedule::default();
    for f in faults {
        match *f {
            Fault::Stall { length, every } => schedule = schedule.stalling(length, every),
            Fault::CloseAfter(d) => program.close_after = Some(d),
            Fault::ResetAfter(d) => program.reset_after = Some(d),
            Fault::CloseAllAt(t) => schedule = schedule.closing_all_at(t),
            Fault::ResetAllAt(t) => schedule = schedule.resetting_all_at(t),
            Fault::Refuse { status, retry_after_s } => {
                program.upgrade = UpgradeAnswer::Refuse { status, retry_after_s }
            }
            Fault::NoUpgradeReply => program.upgrade = UpgradeAnswer::NoReply,
            Fault::DropEcho { percent } => program = program.dropping_echoes(percent),
        }
    }
    (program, schedule)
}

/// The random draws a thread hands its connections' programs (fault `drop-echo`):
/// xorshift64, seeded so that a thread's sequence is the same from run to run.
#[derive(Clone, Debug)]
pub(in crate::serve) struct Draws(u64);

impl Draws {
    pub fn new(seed: u64) -> Self {
        // The seed is mixed so that seed 0 still gives a non-zero state.
        Self((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    /// The next draw.
    pub fn next_draw(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// SO_LINGER {on, 0 s}: closing the socket sends RST instead of FIN.
static LINGER_RESET: libc::linger = libc::linger { l_onoff: 1, l_linger: 0 };

fn timer_op(kind: ServeTimer) -> Op {
    match kind {
        ServeTimer::Close => Op::CloseTimer,
        ServeTimer::Reset => Op::ResetTimer,
        ServeTimer::Grace => Op::GraceTimer,
    }
}

impl Worker {
    /// Carries out what the thread's schedule and its connections' timers hold for
    /// `now` (ns). `None` after a stall (the caller starts its turn over with a fresh
    /// clock); else how long until the next of them.
    pub(super) fn run_timers(&mut self, now: u64) -> Option<Duration> {
        while let Some(action) = self.schedule.due(now) {
            match action {
                ThreadAction::Stall { until_ns } => {
                    self.stall(until_ns);
                    return None;
                }
                ThreadAction::CloseAll => {
                    for i in 0..self.slab.conns.len() as u32 {
                        if self.slab.conns[i as usize].phase == Phase::Open {
                            self.program.timer(ServeTimer::Close, now, &mut self.actions);
                            self.apply(i);
                        }
                    }
                }
                ThreadAction::ResetAll => {
                    for i in 0..self.slab.conns.len() as u32 {
                        self.fault_reset(i);
                    }
                }
            }
        }
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.advance(now, |token| fired.push(token));
        for token in fired.drain(..) {
            let Some(tag) = Tag::decode(token) else { continue };
            let Some(c) = self.slab.get(tag.conn, tag.generation) else { continue };
            let (kind, live) = match tag.op {
                Op::CloseTimer => (ServeTimer::Close, c.phase == Phase::Open),
                Op::GraceTimer => (ServeTimer::Grace, c.phase == Phase::Closing),
                // A reset applies in any phase until the FIN is out (fault_reset checks).
                Op::ResetTimer => (ServeTimer::Reset, true),
                _ => continue,
            };
            if live {
                self.program.timer(kind, now, &mut self.actions);
                self.apply(tag.conn);
            }
        }
        self.fired = fired;
        let next = [self.schedule.next_deadline(), self.timers.next_deadline()].into_iter().flatten().min();
        Some(next.map_or(MAX_WAIT, |t| Duration::from_nanos(t.saturating_sub(now))).min(MAX_WAIT))
    }

    /// A connection opened (upgraded; raw TCP: accepted): the timers its program arms.
    pub(super) fn program_opened(&mut self, i: u32) {
        if self.program.timed() {
            self.program.opened(self.clock.now_ns(), &mut self.actions);
            self.apply(i);
        }
    }

    /// Carries out (and clears) the actions the program left for connection `i`.
    fn apply(&mut self, i: u32) {
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                ServeAction::Arm { kind, at_ns } => {
                    let token = self.tag(i, timer_op(kind)).encode();
                    self.timers.insert(at_ns, token);
                }
                ServeAction::Close { .. } => self.fault_close(i),
                ServeAction::Reset => self.fault_reset(i),
                ServeAction::Abort => {
                    self.abort(i);
                    self.advance_close(i);
                }
            }
        }
        self.actions = actions;
    }

    /// The thread handles nothing until `until_ns` (a stop request ends it early).
    fn stall(&mut self, until_ns: u64) {
        self.counters.stalls += 1;
        loop {
            let left = Duration::from_nanos(until_ns.saturating_sub(self.clock.now_ns()));
            if left.is_zero() || self.shared.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(left.min(MAX_WAIT));
        }
    }

    /// Closes an open connection the graceful way: close 1001 (the program's grace
    /// timer then gives the client [`CLOSE_GRACE`] to answer), or in raw TCP a flush
    /// and FIN. Counted.
    fn fault_close(&mut self, i: u32) {
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
            let (program, _) = compile(Mode::Echo, &[Fault::DropEcho { percent }]);
            let mut d = Draws::new(seed);
            (0..100_000).filter(|_| program.message(d.next_draw()) == crate::driver::serve::MessageAction::Drop).count()
        };
        assert_eq!(count(25.0, 3), count(25.0, 3), "same seed, same drops");
        assert!((24_000..26_000).contains(&count(25.0, 3)), "{}", count(25.0, 3));
        assert!((9_500..10_500).contains(&count(10.0, 0)), "{}", count(10.0, 0));
        assert_eq!(count(0.0, 1), 0);
        assert_eq!(count(100.0, 1), 100_000);
    }

    #[test]
    fn modes_and_faults_compile_to_a_program_and_a_schedule() {
        let f = |s: &str| s.parse::<Fault>().unwrap();
        let (program, schedule) =
            compile(Mode::Sink, &[f("stall=1s/5s"), f("close-after=2s"), f("reset-all-at=3s"), f("refuse=429:7")]);
        assert_eq!(program.reply, Reply::Sink);
        assert_eq!(program.upgrade, UpgradeAnswer::Refuse { status: 429, retry_after_s: Some(7) });
        assert_eq!((program.close_after, program.reset_after), (Some(Duration::from_secs(2)), None));
        assert_eq!(program.close_grace, CLOSE_GRACE);
        assert_eq!(
            schedule.next_deadline(),
            Some(3_000_000_000),
            "reset-all-at 3 s comes before the first stall at 5 s"
        );
        let (push, plain) = compile(Mode::Push { rate: 10.0, message_size: 64 }, &[f("no-upgrade-reply")]);
        assert_eq!((push.reply, push.upgrade), (Reply::Push, UpgradeAnswer::NoReply));
        assert_eq!(plain.next_deadline(), None);
    }
}
