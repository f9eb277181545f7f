//! Server-side programs: what a connection accepted by `loadgen serve` does, held as
//! data ([`ServeProgram`]: the mode's reply, the answer to a valid upgrade, the
//! per-connection faults), and what a server thread does on a schedule
//! ([`ThreadSchedule`]: stalls, closing or resetting everyone at a time, and the push
//! schedule [`PushSchedule`]). Both are sans-IO, like the client's [`super::Driver`]:
//! events go in with their times (and, for dropped echoes, a random draw from the
//! host), actions come out. The serve loop (`serve::worker`) hosts them on the same
//! reactor, timer wheel and clock as the client; the tests here run on virtual time.
//!
//! A served connection needs no state of its own beyond its codec: its behaviour is a
//! function of the program and the event, so a program is shared by every connection
//! of a server and [`ServeProgram`]'s methods take `&self`.
//!
//! What it does not do: parse HTTP or frames, queue bytes, submit operations, sleep
//! (a stall is an action with its end; the host sleeps), or pick which connection a
//! push goes to (round robin is the host's).

use std::time::Duration;

/// What a connection does with the messages it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send each message back (raw TCP: the bytes as they came).
    Echo,
    /// Read and count.
    Sink,
    /// Read and count; the thread pushes messages on its schedule.
    Push,
}

/// The answer to a valid upgrade request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpgradeAnswer {
    /// 101 Switching Protocols.
    #[default]
    Accept,
    /// This status (and a `Retry-After` header), then close.
    Refuse {
        /// HTTP status.
        status: u16,
        /// `Retry-After` in seconds, when given.
        retry_after_s: Option<u32>,
    },
    /// Never answer (the client's handshake timeout decides).
    NoReply,
}

/// What to do with one received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageAction {
    /// Send it back.
    Echo,
    /// An echo dropped on purpose (fault `drop-echo`): counted, not sent.
    Drop,
    /// Count it only.
    Keep,
}

/// The timers of a served connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeTimer {
    /// The connection's close is due (`close-after`).
    Close,
    /// The connection's reset is due (`reset-after`).
    Reset,
    /// A close the server started was not answered in time.
    Grace,
}

/// What a served connection's program asks its host to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeAction {
    /// Arm timer `kind` for `at_ns`.
    Arm {
        /// Which timer.
        kind: ServeTimer,
        /// When (ns on the host's clock).
        at_ns: u64,
    },
    /// Close gracefully: WebSocket close with `code` (raw TCP: flush, then FIN).
    Close {
        /// Close code.
        code: u16,
    },
    /// Reset the connection (RST; output not yet sent is discarded).
    Reset,
    /// Give up on the close handshake: shut down and close the slot now.
    Abort,
}

/// The close code of a server going away (RFC 6455 §7.4.1).
pub const GOING_AWAY: u16 = 1001;

/// A served connection's behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServeProgram {
    /// The mode.
    pub reply: Reply,
    /// What a valid upgrade gets.
    pub upgrade: UpgradeAnswer,
    /// Echoes dropped when a draw is below this (out of 2^64); `None`: none.
    drop_below: Option<u64>,
    /// Every echo dropped.
    drop_all: bool,
    /// Close each connection this long after it opened.
    pub close_after: Option<Duration>,
    /// Reset each connection this long after it opened.
    pub reset_after: Option<Duration>,
    /// How long a client gets to answer the server's close.
    pub close_grace: Duration,
}

impl ServeProgram {
    /// A program that replies as `reply`, accepts every upgrade and has no faults.
    pub fn new(reply: Reply, close_grace: Duration) -> Self {
        Self {
            reply,
            upgrade: UpgradeAnswer::Accept,
            drop_below: None,
            drop_all: false,
            close_after: None,
            reset_after: None,
            close_grace,
        }
    }

    /// Drops `percent` (0 to 100, clamped) of echoes.
    pub fn dropping_echoes(mut self, percent: f64) -> Self {
        let share = (percent / 100.0).clamp(0.0, 1.0);
        self.drop_below = Some((share * 18_446_744_073_709_551_616.0) as u64);
        self.drop_all = share >= 1.0;
        self
    }

    /// Whether the host needs random draws for [`Self::message`].
    pub fn draws(&self) -> bool {
        self.drop_below.is_some() && self.reply == Reply::Echo
    }

    /// Whether opened connections arm timers.
    pub fn timed(&self) -> bool {
        self.close_after.is_some() || self.reset_after.is_some()
    }

    /// A connection opened (upgraded; raw TCP: accepted) at `now_ns`: the timers it
    /// arms.
    pub fn opened(&self, now_ns: u64, out: &mut Vec<ServeAction>) {
        if let Some(d) = self.close_after {
            out.push(ServeAction::Arm { kind: ServeTimer::Close, at_ns: now_ns + d.as_nanos() as u64 });
        }
        if let Some(d) = self.reset_after {
            out.push(ServeAction::Arm { kind: ServeTimer::Reset, at_ns: now_ns + d.as_nanos() as u64 });
        }
    }

    /// A whole data message arrived; `draw` is a fresh random number when
    /// [`Self::draws`] (else ignored).
    pub fn message(&self, draw: u64) -> MessageAction {
        match self.reply {
            Reply::Echo => match self.drop_below {
                Some(below) if self.drop_all || draw < below => MessageAction::Drop,
                _ => MessageAction::Echo,
            },
            Reply::Sink | Reply::Push => MessageAction::Keep,
        }
    }

    /// Timer `kind` of an open (for `Grace`: closing) connection fired at `now_ns`.
    /// The host fires a connection's timers only while it is in that phase, so a
    /// close-after and a reset-after of one connection act once between them.
    pub fn timer(&self, kind: ServeTimer, now_ns: u64, out: &mut Vec<ServeAction>) {
        match kind {
            ServeTimer::Close => {
                out.push(ServeAction::Close { code: GOING_AWAY });
                out.push(ServeAction::Arm {
                    kind: ServeTimer::Grace,
                    at_ns: now_ns + self.close_grace.as_nanos() as u64,
                });
            }
            ServeTimer::Reset => out.push(ServeAction::Reset),
            ServeTimer::Grace => out.push(ServeAction::Abort),
        }
    }
}

/// What a server thread does at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadAction {
    /// Handle nothing until `until_ns` (fault `stall`): no reads, writes or accepts.
    Stall {
        /// When the stall ends.
        until_ns: u64,
    },
    /// Close every open connection (`close-all-at`).
    CloseAll,
    /// Reset every connection (`reset-all-at`).
    ResetAll,
}

/// A server thread's timed events, on the host's clock (ns since the server started,
/// the same on every thread, so every thread stalls on one schedule).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadSchedule {
    /// Stall length and period (ns).
    stall: Option<(u64, u64)>,
    next_stall: Option<u64>,
    close_all_at: Option<u64>,
    reset_all_at: Option<u64>,
}

impl ThreadSchedule {
    /// Stalls for `length` every `every`, the first at `every`.
    pub fn stalling(mut self, length: Duration, every: Duration) -> Self {
        let (length, every) = (length.as_nanos() as u64, (every.as_nanos() as u64).max(1));
        self.stall = Some((length, every));
        self.next_stall = Some(every);
        self
    }

    /// Closes everyone at `at`.
    pub fn closing_all_at(mut self, at: Duration) -> Self {
        self.close_all_at = Some(at.as_nanos() as u64);
        self
    }

    /// Resets everyone at `at`.
    pub fn resetting_all_at(mut self, at: Duration) -> Self {
        self.reset_all_at = Some(at.as_nanos() as u64);
        self
    }

    /// The earliest pending event.
    pub fn next_deadline(&self) -> Option<u64> {
        [self.next_stall, self.close_all_at, self.reset_all_at].into_iter().flatten().min()
    }

    /// The next action due at `now_ns`, if any (call until `None`). A stall comes
    /// first and alone: after it the host reads its clock again. A period missed
    /// entirely (the thread was descheduled, or stalled past it) is not stalled twice.
    pub fn due(&mut self, now_ns: u64) -> Option<ThreadAction> {
        if let (Some((length, every)), Some(at)) = (self.stall, self.next_stall)
            && now_ns >= at
        {
            let until_ns = now_ns + length;
            let mut next = at + every;
            while next <= until_ns {
                next += every;
            }
            self.next_stall = Some(next);
            return Some(ThreadAction::Stall { until_ns });
        }
        if self.close_all_at.is_some_and(|t| now_ns >= t) {
            self.close_all_at = None;
            return Some(ThreadAction::CloseAll);
        }
        if self.reset_all_at.is_some_and(|t| now_ns >= t) {
            self.reset_all_at = None;
            return Some(ThreadAction::ResetAll);
        }
        None
    }
}

/// Push mode's schedule: message k is due at base + k / rate and carries that
/// intended time. Nothing is skipped: after a stall every message that fell due is
/// handed out at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PushSchedule {
    rate: f64,
    base_ns: u64,
    sent: u64,
}

impl PushSchedule {
    /// `rate` messages a second (> 0), starting at `now_ns`.
    pub fn new(rate: f64, now_ns: u64) -> Self {
        Self { rate, base_ns: now_ns, sent: 0 }
    }

    /// Starts over at `now_ns` (nobody was there to push to).
    pub fn restart(&mut self, now_ns: u64) {
        self.base_ns = now_ns;
        self.sent = 0;
    }

    /// The intended time of the next message if it is due at `now_ns` (and counts it
    /// as handed out).
    pub fn next_due(&mut self, now_ns: u64) -> Option<u64> {
        let at = self.intended_ns(self.sent);
        (at <= now_ns).then(|| {
            self.sent += 1;
            at
        })
    }

    /// When the next message is due.
    pub fn next_deadline(&self) -> u64 {
        self.intended_ns(self.sent)
    }

    /// Messages handed out since the (re)start.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    fn intended_ns(&self, k: u64) -> u64 {
        self.base_ns + (k as f64 * 1e9 / self.rate) as u64
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
