//! The sans-IO connection driver: what one connection does, as a state machine.
//!
//! Events go in (the connection opened, a text arrived, the reply to the message in
//! flight arrived, a pong arrived, a timer fired, the connection was dropped, its slot
//! is free again); [`Action`]s come out (send a text, a violation, a sized message, a
//! probe or a ping; arm a timer; the connection is ready; join or leave the message
//! pool; stop or resume reading; close; a pong timed out; reconnect at a time; give
//! up). The driver runs the connection's [`Program`] and owns its
//! pacing, its closed loop, its reply deadline and its reconnect backoff. It has no
//! sockets, no clock, no randomness of its own (times and random numbers come in with
//! the events) and no allocation: actions are pushed into a vector the caller reuses.
//! The io_uring worker hosts it (`run::worker`), and its tests drive it on virtual
//! time (`tests.rs`).
//!
//! What it does not do: framing, TLS, HTTP, measuring (the worker times what the
//! actions send, from the intended times they carry), or deciding when the run ends
//! (the worker ignores what comes due after the end).
//!
//! Timers are lazy: the driver keeps the deadline each kind of timer is for, and a
//! timer that fires before it (armed for an older deadline) is re-armed or ignored, so
//! nothing is ever cancelled and a kind has at most one timer in the wheel that matters.

pub mod program;
pub mod serve;
#[cfg(test)]
mod tests;

pub use program::{Jitter, MAX_SIZED_LEN, Program, ProgramError, ReconnectPolicy, Step, Traffic};

/// The timers a connection's driver arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The next paced message, or the end of a closed loop's think time.
    Send,
    /// The next ping.
    Ping,
    /// The reply to the closed loop's message in flight is due.
    Reply,
    /// A `Sleep` ends, or a `WaitFor` times out.
    Step,
    /// The oldest unanswered ping's pong is due (a `Ping` step with a timeout).
    Pong,
}

/// What the driver asks its host to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the text of step `step` (a [`Step::SendText`]).
    SendText {
        /// Index of the step.
        step: u16,
    },
    /// Write the violation of step `step` (a [`Step::SendViolation`]).
    SendViolation {
        /// Index of the step.
        step: u16,
    },
    /// Send the sized text message of step `step` (a [`Step::SendSized`]).
    SendSized {
        /// Index of the step.
        step: u16,
    },
    /// Send a probe message, stamped with its intended time.
    SendProbe {
        /// When it was due (ns).
        intended_ns: u64,
        /// It came from a timer (pacing, think time): its lateness is schedule lag.
        scheduled: bool,
    },
    /// Send a ping stamped with its intended time.
    SendPing {
        /// When it was due (ns).
        intended_ns: u64,
    },
    /// Arm a timer for `at_ns`.
    Arm {
        /// Which.
        timer: TimerKind,
        /// When (ns).
        at_ns: u64,
    },
    /// The connection is ready; `timed`: steps came before, so `ready` is measured.
    Ready {
        /// Record `ready` from the intended start.
        timed: bool,
    },
    /// A reconnected connection is ready again: its time to recover began at `since_ns`.
    Recovered {
        /// When it was dropped (ns).
        since_ns: u64,
    },
    /// Join the pool of connections the run's open-model messages go to.
    JoinPool,
    /// Leave it.
    LeavePool,
    /// Stop reading from the socket.
    PauseReading,
    /// Read again.
    ResumeReading,
    /// Close with this code (loadgen's own close).
    Close {
        /// WebSocket close code.
        code: u16,
    },
    /// A step failed (its error name, to count); loadgen then closes the connection.
    Fail {
        /// Counter name.
        error: &'static str,
    },
    /// The reply to the message in flight is overdue; the loop went on.
    ReplyTimedOut,
    /// A ping went unanswered past its `Ping` step's timeout: the host counts it and
    /// ends the connection as a drop (cause `pong_timeout`).
    PongTimedOut,
    /// Start the connection again at `at_ns` (its slot is free).
    Reconnect {
        /// When (ns).
        at_ns: u64,
    },
    /// The reconnect policy's limit is reached: the connection stays closed.
    GaveUp,
}

const READY: u16 = 1;
const PINGING: u16 = 1 << 1;
const AWAITING: u16 = 1 << 2;
const REPLY_ARMED: u16 = 1 << 3;
const SEND_ARMED: u16 = 1 << 4;
const PING_ARMED: u16 = 1 << 5;
const READING_PAUSED: u16 = 1 << 6;
const RECONNECTING: u16 = 1 << 7;
const PONG_ARMED: u16 = 1 << 8;

/// No deadline (of `pong_deadline_ns`).
const NEVER: u64 = u64::MAX;

/// No step (of `traffic_step`, `ping_step`).
const NONE: u16 = u16::MAX;

/// What a step is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Wait {
    /// Nothing: the program runs on (or is done).
    #[default]
    None,
    /// A text containing the pattern of the current step (deadline in `step_deadline_ns`,
    /// or none when `u64::MAX`).
    Pattern,
    /// The end of a sleep at `step_deadline_ns`.
    Sleep,
}

/// One connection's driver state (small and `Copy`: it lives in the slab entry).
#[derive(Clone, Copy, Debug)]
pub struct Driver {
    /// Which of the worker's programs (its cohort).
    program: u8,
    /// Next step.
    pc: u16,
    wait: Wait,
    /// The `Traffic` step whose traffic is on (`NONE`: none).
    traffic_step: u16,
    /// The `Ping` step whose pings are on.
    ping_step: u16,
    /// `READY`, `PINGING`, `AWAITING` (closed loop: a message in flight, its intended
    /// time in `inflight_ns`), `REPLY_ARMED`, `SEND_ARMED`, `PING_ARMED`, `PONG_ARMED`
    /// (a timer of that kind is in the wheel), `READING_PAUSED`, `RECONNECTING`
    /// (dropped and coming back, until ready again).
    flags: u16,
    /// Spreads first sends and pings over an interval (from the connection's index),
    /// so connections do not act in lockstep.
    spread: u32,
    /// Reconnect attempts since the drop.
    attempt: u16,
    next_send_ns: u64,
    inflight_ns: u64,
    next_ping_ns: u64,
    step_deadline_ns: u64,
    recover_from_ns: u64,
    /// Pings with a timeout: when the oldest unanswered ping's pong is due (`NEVER`:
    /// every ping sent is answered). Set when a ping goes out with none outstanding;
    /// only ever moved later while pings are outstanding, so one lazy timer serves.
    pong_deadline_ns: u64,
}

impl Driver {
    /// A connection running program `program` of its host; `spread` (its index, say)
    /// places its first sends and pings within their intervals.
    pub fn new(program: u8, spread: u32) -> Self {
        Self {
            program,
            pc: 0,
            wait: Wait::None,
            traffic_step: NONE,
            ping_step: NONE,
            flags: 0,
            spread,
            attempt: 0,
            next_send_ns: 0,
            inflight_ns: 0,
            next_ping_ns: 0,
            step_deadline_ns: 0,
            recover_from_ns: 0,
            pong_deadline_ns: NEVER,
        }
    }

    /// The traffic on, if any.
    fn traffic(&self, p: &Program) -> Option<Traffic> {
        match p.steps.get(usize::from(self.traffic_step)) {
            Some(Step::Traffic(t)) => Some(*t),
            _ => None,
        }
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u16, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// Which of the host's programs this connection runs.
    pub fn program(&self) -> u8 {
        self.program
    }

    /// Ready (every step before `Ready` done): its traffic may flow.
    pub fn is_ready(&self) -> bool {
        self.has(READY)
    }

    /// Reading is paused by the program.
    pub fn reading_paused(&self) -> bool {
        self.has(READING_PAUSED)
    }

    /// Dropped and coming back under the reconnect policy.
    pub fn is_reconnecting(&self) -> bool {
        self.has(RECONNECTING)
    }

    /// The program's traffic is a closed loop with a message in flight.
    pub fn awaiting_reply(&self) -> bool {
        self.has(AWAITING)
    }

    /// A new attempt of this connection starts (first or a reconnect): the program
    /// starts over; the reconnect state (attempts, time to recover) is kept.
    pub fn restart(&mut self) {
        *self = Self {
            program: self.program,
            spread: self.spread,
            flags: self.flags & RECONNECTING,
            attempt: self.attempt,
            recover_from_ns: self.recover_from_ns,
            ..Self::new(self.program, self.spread)
        };
    }

    /// The connection is open (upgraded, or connected for raw TCP and HTTP): the
    /// program starts.
    pub fn opened(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        self.pc = 0;
        self.advance(p, now, out);
    }

    /// A text message arrived.
    pub fn text(&mut self, p: &Program, text: &str, now: u64, out: &mut Vec<Action>) {
        if self.wait != Wait::Pattern {
            return;
        }
        let Some(Step::WaitFor { pattern, .. }) = p.steps.get(usize::from(self.pc)) else { return };
        if text.contains(pattern.as_str()) {
            self.wait = Wait::None;
            self.pc += 1;
            self.advance(p, now, out);
        }
    }

    /// The reply to the closed loop's message in flight arrived (not a late one).
    pub fn answered(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        if !self.has(AWAITING) {
            return;
        }
        self.set(AWAITING, false);
        if let Some(Traffic::ClosedLoop { think, reply_timeout }) = self.traffic(p) {
            if think.is_zero() {
                self.send_closed_loop(now, false, reply_timeout, out);
            } else {
                self.next_send_ns = now + think.as_nanos() as u64;
                self.arm_send(out);
            }
        }
    }

    /// A timer of this connection fired at `now`.
    pub fn timer(&mut self, p: &Program, kind: TimerKind, now: u64, out: &mut Vec<Action>) {
        match kind {
            TimerKind::Send => self.send_timer(p, now, out),
            TimerKind::Ping => self.ping_timer(p, now, out),
            TimerKind::Reply => self.reply_timer(p, now, out),
            TimerKind::Step => self.step_timer(p, now, out),
            TimerKind::Pong => self.pong_timer(p, now, out),
        }
    }

    /// A pong arrived whose payload is one of this connection's ping stamps: it
    /// answers the ping intended at `stamp_us` (µs) and every older one.
    pub fn pong(&mut self, p: &Program, stamp_us: u64, now: u64, out: &mut Vec<Action>) {
        let Some(timeout) = self.pong_timeout(p) else { return };
        if !self.has(PINGING) || self.pong_deadline_ns == NEVER {
            return;
        }
        let interval = self.ping_interval(p);
        // The newest ping sent was intended one interval before the next one.
        let newest_us = self.next_ping_ns.saturating_sub(interval) / 1_000;
        if stamp_us >= newest_us {
            self.pong_deadline_ns = NEVER;
            return;
        }
        // An older ping's pong: newer ones are outstanding, sent at some time before
        // now, so now + timeout is never too early (no false timeouts); later than
        // exact by at most the time that pong took.
        self.pong_deadline_ns = self.pong_deadline_ns.max(now.saturating_add(timeout));
        self.arm_pong(out);
    }

    /// The target or the network ended the open connection at `now`: under a reconnect
    /// policy it will come back (its time to recover starts now).
    pub fn dropped(&mut self, p: &Program, now: u64) {
        if p.reconnect.is_some() && !self.has(RECONNECTING) {
            self.set(RECONNECTING, true);
            self.recover_from_ns = now;
            self.attempt = 0;
        }
        self.stop_behaviours();
    }

    /// The connection's slot is free (every operation completed; after a drop, a
    /// failed reconnect attempt or loadgen's own close): the next attempt of a
    /// reconnecting connection, after a backoff drawn from `random`, or giving up.
    pub fn freed(&mut self, p: &Program, now: u64, random: u64, out: &mut Vec<Action>) {
        self.stop_behaviours();
        let Some(policy) = p.reconnect else { return };
        if !self.has(RECONNECTING) {
            return;
        }
        let attempt = u32::from(self.attempt);
        if policy.limit.is_some_and(|limit| attempt >= limit) {
            self.set(RECONNECTING, false);
            out.push(Action::GaveUp);
            return;
        }
        self.attempt = self.attempt.saturating_add(1);
        out.push(Action::Reconnect { at_ns: now + policy.delay_ns(attempt, random) });
    }

    /// Runs steps from `pc` until one waits or the program ends.
    fn advance(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        while let Some(step) = p.steps.get(usize::from(self.pc)) {
            let here = self.pc;
            self.pc += 1;
            match step {
                Step::SendText(_) => out.push(Action::SendText { step: here }),
                Step::SendViolation(_) => out.push(Action::SendViolation { step: here }),
                Step::SendSized { .. } => out.push(Action::SendSized { step: here }),
                Step::WaitFor { timeout, .. } => {
                    self.pc = here;
                    self.wait = Wait::Pattern;
                    self.step_deadline_ns = timeout.map_or(u64::MAX, |t| now.saturating_add(t.as_nanos() as u64));
                    if let Some(_t) = timeout {
                        out.push(Action::Arm { timer: TimerKind::Step, at_ns: self.step_deadline_ns });
                    }
                    return;
                }
                Step::Sleep(d) => {
                    self.wait = Wait::Sleep;
                    self.step_deadline_ns = now.saturating_add(d.as_nanos() as u64);
                    out.push(Action::Arm { timer: TimerKind::Step, at_ns: self.step_deadline_ns });
                    return;
                }
                Step::Ready => {
                    if !self.has(READY) {
                        self.set(READY, true);
                        out.push(Action::Ready { timed: here > 0 });
                        if self.has(RECONNECTING) {
                            self.set(RECONNECTING, false);
                            out.push(Action::Recovered { since_ns: self.recover_from_ns });
                        }
                    }
                }
                Step::Ping { interval, .. } => {
                    let interval = interval.as_nanos().max(1) as u64;
                    self.set(PINGING, true);
                    self.ping_step = here;
                    // A new ping schedule: what the old one had outstanding is not
                    // awaited (its pongs still time `ping_rtt`).
                    self.pong_deadline_ns = NEVER;
                    self.next_ping_ns = now + (u64::from(self.spread) * 7_919) % interval;
                    if !self.has(PING_ARMED) {
                        self.set(PING_ARMED, true);
                        out.push(Action::Arm { timer: TimerKind::Ping, at_ns: self.next_ping_ns });
                    }
                }
                Step::Traffic(t) => self.start_traffic(p, here, *t, now, out),
                Step::StopTraffic => {
                    if self.traffic(p) == Some(Traffic::Pool) {
                        out.push(Action::LeavePool);
                    }
                    self.traffic_step = NONE;
                    self.set(AWAITING, false);
                }
                Step::StopReading => {
                    if !self.has(READING_PAUSED) {
                        self.set(READING_PAUSED, true);
                        out.push(Action::PauseReading);
                    }
                }
                Step::ResumeReading => {
                    if self.has(READING_PAUSED) {
                        self.set(READING_PAUSED, false);
                        out.push(Action::ResumeReading);
                        if let Some(timeout) = self.pong_timeout(p)
                            && self.pong_deadline_ns != NEVER
                        {
                            // Pongs could not be read meanwhile: they get a full
                            // timeout from now.
                            self.pong_deadline_ns = self.pong_deadline_ns.max(now.saturating_add(timeout));
                            self.arm_pong(out);
                        }
                    }
                }
                Step::Close { code } => {
                    self.pc = p.steps.len() as u16;
                    self.stop_behaviours();
                    out.push(Action::Close { code: *code });
                    return;
                }
            }
        }
    }

    fn start_traffic(&mut self, p: &Program, step: u16, t: Traffic, now: u64, out: &mut Vec<Action>) {
        let before = self.traffic(p);
        if before == Some(Traffic::Pool) && t != Traffic::Pool {
            out.push(Action::LeavePool);
        }
        self.traffic_step = step;
        match t {
            Traffic::ClosedLoop { reply_timeout, .. } => {
                if !self.has(AWAITING) {
                    self.send_closed_loop(now, false, reply_timeout, out);
                }
            }
            Traffic::Paced { interval } => {
                let interval = interval.as_nanos().max(1) as u64;
                self.next_send_ns = now + (u64::from(self.spread) * 7_919) % interval;
                self.arm_send(out);
            }
            Traffic::Pool => {
                if before != Some(Traffic::Pool) {
                    out.push(Action::JoinPool);
                }
            }
        }
    }

    /// The closed loop's next message, intended at `intended_ns`, and its reply deadline.
    fn send_closed_loop(
        &mut self,
        intended_ns: u64,
        scheduled: bool,
        reply_timeout: Option<std::time::Duration>,
        out: &mut Vec<Action>,
    ) {
        self.set(AWAITING, true);
        self.inflight_ns = intended_ns;
        out.push(Action::SendProbe { intended_ns, scheduled });
        if let Some(timeout) = reply_timeout
            && !self.has(REPLY_ARMED)
        {
            self.set(REPLY_ARMED, true);
            out.push(Action::Arm { timer: TimerKind::Reply, at_ns: intended_ns + timeout.as_nanos() as u64 });
        }
    }

    fn arm_send(&mut self, out: &mut Vec<Action>) {
        if !self.has(SEND_ARMED) {
            self.set(SEND_ARMED, true);
            out.push(Action::Arm { timer: TimerKind::Send, at_ns: self.next_send_ns });
        }
    }

    fn send_timer(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        self.set(SEND_ARMED, false);
        match self.traffic(p) {
            Some(Traffic::Paced { interval }) => {
                if now < self.next_send_ns {
                    // Armed for an older schedule (traffic restarted): wait for this one.
                    self.arm_send(out);
                    return;
                }
                let intended_ns = self.next_send_ns;
                self.next_send_ns = intended_ns + interval.as_nanos().max(1) as u64;
                out.push(Action::SendProbe { intended_ns, scheduled: true });
                self.arm_send(out);
            }
            Some(Traffic::ClosedLoop { reply_timeout, .. }) if !self.has(AWAITING) => {
                if now < self.next_send_ns {
                    self.arm_send(out);
                    return;
                }
                // The think time is over.
                self.send_closed_loop(self.next_send_ns, true, reply_timeout, out);
            }
            _ => {}
        }
    }

    fn ping_timer(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        self.set(PING_ARMED, false);
        if !self.has(PINGING) {
            return;
        }
        if now < self.next_ping_ns {
            self.set(PING_ARMED, true);
            out.push(Action::Arm { timer: TimerKind::Ping, at_ns: self.next_ping_ns });
            return;
        }
        let interval = match p.steps.get(usize::from(self.ping_step)) {
            Some(Step::Ping { interval, .. }) => interval.as_nanos().max(1) as u64,
            _ => return,
        };
        let intended_ns = self.next_ping_ns;
        self.next_ping_ns = intended_ns.saturating_add(interval);
        self.set(PING_ARMED, true);
        out.push(Action::SendPing { intended_ns });
        out.push(Action::Arm { timer: TimerKind::Ping, at_ns: self.next_ping_ns });
        if let Some(timeout) = self.pong_timeout(p)
            && self.pong_deadline_ns == NEVER
        {
            // The oldest unanswered ping now: sent now (the host sends it at once).
            self.pong_deadline_ns = now.saturating_add(timeout);
            self.arm_pong(out);
        }
    }

    /// The interval of the pings on (ns, at least 1).
    fn ping_interval(&self, p: &Program) -> u64 {
        match p.steps.get(usize::from(self.ping_step)) {
            Some(Step::Ping { interval, .. }) => interval.as_nanos().max(1) as u64,
            _ => 1,
        }
    }

    /// The pong timeout of the pings on, in ns.
    fn pong_timeout(&self, p: &Program) -> Option<u64> {
        match p.steps.get(usize::from(self.ping_step)) {
            Some(Step::Ping { timeout: Some(t), .. }) => Some(t.as_nanos() as u64),
            _ => None,
        }
    }

    /// Arms the pong timer unless one is in the wheel (it fires no later than the
    /// deadline, which only moves later, and re-arms then).
    fn arm_pong(&mut self, out: &mut Vec<Action>) {
        if !self.has(PONG_ARMED) {
            self.set(PONG_ARMED, true);
            out.push(Action::Arm { timer: TimerKind::Pong, at_ns: self.pong_deadline_ns });
        }
    }

    fn pong_timer(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        self.set(PONG_ARMED, false);
        if !self.has(PINGING) || self.pong_deadline_ns == NEVER || self.has(READING_PAUSED) {
            // Answered, stopped, or not reading (resuming gives a new deadline).
            return;
        }
        if now < self.pong_deadline_ns {
            // Armed for an earlier deadline: wait for this one.
            self.arm_pong(out);
            return;
        }
        // The connection is dead to us: the program is over (the host drops it).
        self.pc = p.steps.len() as u16;
        self.stop_behaviours();
        out.push(Action::PongTimedOut);
    }

    fn reply_timer(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        self.set(REPLY_ARMED, false);
        let Some(Traffic::ClosedLoop { reply_timeout: Some(timeout), .. }) = self.traffic(p) else { return };
        if !self.has(AWAITING) {
            return;
        }
        let deadline = self.inflight_ns + timeout.as_nanos() as u64;
        if now < deadline {
            // A later message is in flight: wait for its deadline.
            self.set(REPLY_ARMED, true);
            out.push(Action::Arm { timer: TimerKind::Reply, at_ns: deadline });
            return;
        }
        // Counted when it comes (late) or not at all (unanswered); the loop goes on
        // with the next message, due now.
        self.set(AWAITING, false);
        out.push(Action::ReplyTimedOut);
        self.send_closed_loop(now, false, Some(timeout), out);
    }

    fn step_timer(&mut self, p: &Program, now: u64, out: &mut Vec<Action>) {
        if self.wait == Wait::None || now < self.step_deadline_ns {
            // Armed for a step already done, or for an earlier deadline than this one's.
            return;
        }
        match std::mem::take(&mut self.wait) {
            Wait::Sleep => self.advance(p, now, out),
            Wait::Pattern => {
                self.pc = p.steps.len() as u16;
                self.stop_behaviours();
                out.push(Action::Fail { error: "wait_timeout" });
            }
            Wait::None => {}
        }
    }

    /// The connection is ending: nothing more is sent or awaited (timers still in the
    /// wheel find nothing to do).
    fn stop_behaviours(&mut self) {
        self.traffic_step = NONE;
        self.set(PINGING, false);
        self.set(AWAITING, false);
        self.wait = Wait::None;
        self.pong_deadline_ns = NEVER;
    }
}
