//! The worker as host of the connection driver ([`crate::driver`]): it feeds a
//! connection's driver its events with the time, and carries out the actions that come
//! back (sends, timers on the wheel, the message pool, pausing reads, closes,
//! reconnects), measuring on the way (schedule lag of scheduled sends and pings,
//! `ready`, `recover`).
//!
//! What comes due after the end of the hold is not carried out: pacing and ping
//! timers past the end are not armed, and nothing is sent once the ramp-down began.

use rand_core::RngCore;

use super::super::conn::{Phase, Proto};
use super::super::ops::{self, Op};
use super::{BGID, Worker};
use crate::driver::{Action, Driver, Program, Step, TimerKind};
use crate::stats::Metric;

impl Worker<'_> {
    /// Feeds connection `index`'s driver one event (`event` calls the driver with the
    /// connection's program), then carries out what it asked for.
    pub(super) fn drive(&mut self, index: u32, now: u64, event: impl FnOnce(&mut Driver, &Program, &mut Vec<Action>)) {
        let mut out = std::mem::take(&mut self.actions);
        let conn = &mut self.conns[index as usize];
        let program = &self.programs[usize::from(conn.driver.program())];
        event(&mut conn.driver, program, &mut out);
        self.carry_out(index, &mut out, now);
        self.actions = out;
    }

    /// Carries out `actions` of connection `index` (and empties it).
    pub(super) fn carry_out(&mut self, index: u32, actions: &mut Vec<Action>, now: u64) {
        for action in actions.drain(..) {
            self.act(index, action, now);
        }
    }

    /// A timer of the driver fired.
    pub(super) fn driver_timer(&mut self, index: u32, kind: TimerKind, now: u64) {
        let conn = &self.conns[index as usize];
        if conn.phase != Phase::Open || self.closing_all {
            return;
        }
        self.drive(index, now, |d, p, out| d.timer(p, kind, now, out));
    }

    /// The connection's slot is free: a reconnecting connection's next attempt.
    pub(super) fn driver_freed(&mut self, index: u32, now: u64) {
        if self.closing_all {
            return;
        }
        let random = self.rng.next_u64();
        self.drive(index, now, |d, p, out| d.freed(p, now, random, out));
    }

    fn act(&mut self, index: u32, action: Action, now: u64) {
        let end_ns = self.setup.end_ns;
        let conn = &mut self.conns[index as usize];
        // After the end (or once the connection is ending) nothing new starts.
        let live = conn.phase == Phase::Open && !self.closing_all;
        match action {
            Action::SendText { step } if live => {
                let program = &self.programs[usize::from(conn.driver.program())];
                let Some(Step::SendText(text)) = program.steps.get(usize::from(step)) else { return };
                let Some(client) = conn.client(&mut self.clients) else { return };
                if client.send_text(text, &mut self.rng).is_err() {
                    self.rec.error("on_open_send_failed");
                    return;
                }
                self.rec.message_sent(text.len() as u64);
                self.send_more(index);
            }
            Action::SendProbe { intended_ns, scheduled } if live => {
                if scheduled {
                    self.rec.record_since(Metric::ScheduleLag, intended_ns, now);
                }
                self.send_probe(index, intended_ns);
            }
            Action::SendPing { intended_ns } if live => {
                self.rec.record_since(Metric::ScheduleLag, intended_ns, now);
                let id = conn.seq;
                if let Some(client) = conn.client(&mut self.clients)
                    && client.ping(id, intended_ns / 1_000, &mut self.rng).is_ok()
                {
                    self.send_more(index);
                }
            }
            Action::Arm { timer, at_ns } => {
                let op = match timer {
                    TimerKind::Send => Op::Send,
                    TimerKind::Ping => Op::PingTimer,
                    TimerKind::Reply => Op::ReplyTimer,
                    TimerKind::Step => Op::StepTimer,
                    TimerKind::Pong => Op::PongTimer,
                };
                if matches!(timer, TimerKind::Send | TimerKind::Ping | TimerKind::Pong) && at_ns >= end_ns {
                    // Due after the end of the hold: it would never go out.
                    return;
                }
                self.timers.insert(at_ns, conn.tag(index, op).encode());
            }
            Action::Ready { timed } => {
                if timed {
                    self.rec.record_since(Metric::Ready, conn.intended_ns, now);
                }
            }
            Action::Recovered { since_ns } => {
                self.rec.record_since(Metric::Recover, since_ns, now);
                self.rec.reconnected();
            }
            Action::JoinPool if live => self.pool.join(&mut self.conns, index),
            Action::LeavePool => self.pool.leave(&mut self.conns, index),
            Action::PauseReading => {
                if conn.recv_armed && !conn.cancel_pending && conn.phase == Phase::Open {
                    conn.cancel_pending = true;
                    let target = conn.tag(index, Op::Recv);
                    self.io.push(ops::cancel(target, conn.tag(index, Op::Cancel)));
                }
            }
            Action::ResumeReading => self.resume_reading(index),
            Action::Close { code } => self.close_one(index, code, now),
            Action::Fail { error } => {
                self.rec.error(error);
                self.close_one(index, 1000, now);
            }
            Action::ReplyTimedOut => self.rec.reply_timeout(),
            Action::Reconnect { at_ns } => {
                if self.closing_all || conn.phase != Phase::Free {
                    return;
                }
                conn.intended_ns = at_ns;
                self.timers.insert(at_ns, conn.tag(index, Op::ReconnectTimer).encode());
            }
            Action::GaveUp => self.rec.reconnect_gave_up(),
            Action::PongTimedOut => {
                self.rec.pong_timeout();
                // Dead to us: a drop (the reconnect policy applies), no close handshake.
                self.drop_conn(index, "pong_timeout");
            }
            Action::SendViolation { step } if live => {
                let program = &self.programs[usize::from(conn.driver.program())];
                let Some(Step::SendViolation(violation)) = program.steps.get(usize::from(step)) else { return };
                let violation = *violation;
                let Some(client) = conn.client(&mut self.clients) else { return };
                if client.send_violation(violation, &mut self.rng).is_err() {
                    self.rec.error("violation_send_failed");
                    return;
                }
                // Not a message; reading goes on, so the server's answer is observed.
                self.send_more(index);
            }
            Action::SendSized { step } if live => {
                let program = &self.programs[usize::from(conn.driver.program())];
                let Some(&Step::SendSized { len }) = program.steps.get(usize::from(step)) else { return };
                let Some(client) = conn.client(&mut self.clients) else { return };
                if client.send_filled_text(len, &mut self.rng).is_err() {
                    self.rec.error("sized_send_failed");
                    return;
                }
                self.rec.message_sent(len as u64);
                self.send_more(index);
            }
            Action::SendText { .. }
            | Action::SendViolation { .. }
            | Action::SendSized { .. }
            | Action::SendProbe { .. }
            | Action::SendPing { .. }
            | Action::JoinPool => {}
        }
    }

    /// Arms the receive again if it is not armed (reading resumed, or loadgen is
    /// closing a connection whose program stopped reading: the close needs its reply).
    pub(super) fn resume_reading(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        if conn.recv_armed || conn.cancel_pending || matches!(conn.phase, Phase::Free | Phase::Closing) {
            // (A cancel in flight: its completion re-arms, as reading is no longer paused.)
            return;
        }
        if matches!(conn.proto, Proto::None) {
            return;
        }
        conn.recv_armed = true;
        self.io.push(ops::recv_multi(self.io.slot(index), BGID, conn.tag(index, Op::Recv)));
    }

    /// Whether the receive of `index` should stay unarmed (its program stopped reading
    /// and loadgen is not closing it).
    pub(super) fn reading_paused(&self, index: u32) -> bool {
        let conn = &self.conns[index as usize];
        conn.driver.reading_paused() && !conn.closing_by_us && !self.closing_all
    }
}
