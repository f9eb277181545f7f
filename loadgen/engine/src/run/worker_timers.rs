//! Timers of the worker loop, all from the one timer wheel: protocol deadlines
//! (handshake, close), the connection driver's timers (pings, pacing, think times,
//! reply deadlines, program steps: handed to the driver), HTTP `Retry-After` hold-offs
//! and reconnect attempts.

use super::super::conn::{Phase, Proto};
use super::super::ops::{Op, Tag};
use super::Worker;
use crate::driver::TimerKind;

impl Worker<'_> {
    pub(super) fn fire_timers(&mut self, now: u64) {
        let mut due = std::mem::take(&mut self.scratch);
        self.timers.advance(now, |token| due.push(token));
        for token in due.drain(..) {
            let Some(tag) = Tag::decode(token) else { continue };
            let Some(conn) = self.conns.get_mut(tag.conn as usize) else { continue };
            if conn.generation != tag.generation {
                continue;
            }
            if tag.op == Op::ReconnectTimer {
                // (The one timer of a free slot.)
                self.reconnect_due(tag.conn, now);
                continue;
            }
            if conn.phase == Phase::Free {
                continue;
            }
            match tag.op {
                // Protocol deadlines (handshake, close).
                Op::Close if matches!(conn.proto, Proto::Http(_)) => {
                    self.http_deadline(tag.conn, token, now);
                    continue;
                }
                Op::Close if conn.draining => {
                    // The server never finished sending back what was in flight.
                    conn.deadline_timer = None;
                    self.rec.error("close_timeout");
                    self.shutdown(tag.conn);
                }
                Op::Close => {
                    let handshaking = conn.phase == Phase::Handshaking;
                    let Some(client) = conn.client(&mut self.clients) else { continue };
                    if let Some(what) = client.handle_timeout(now / 1_000) {
                        let kind = match what {
                            loadgen_proto::Timeout::Handshake => "handshake_timeout",
                            loadgen_proto::Timeout::Close => "close_timeout",
                        };
                        self.rec.error(kind);
                        if handshaking {
                            self.rec.connection_failed();
                        }
                        // A close timeout of a close the server started is a drop too.
                        self.drop_conn(tag.conn, kind);
                    } else if let Some(next) = client.poll_timeout() {
                        self.timers.insert(next * 1_000, token);
                    }
                }
                // The driver's timers: pings, pacing and think times, reply deadlines,
                // program steps (it re-arms them).
                Op::PingTimer => self.driver_timer(tag.conn, TimerKind::Ping, now),
                Op::Send => self.driver_timer(tag.conn, TimerKind::Send, now),
                Op::ReplyTimer => self.driver_timer(tag.conn, TimerKind::Reply, now),
                Op::StepTimer => self.driver_timer(tag.conn, TimerKind::Step, now),
                Op::PongTimer => self.driver_timer(tag.conn, TimerKind::Pong, now),
                Op::SlowTimer => self.slow_byte(tag.conn, now),
                Op::RetryTimer => self.retry_hold_off_ended(tag.conn),
                _ => {}
            }
            self.conns[tag.conn as usize].park(&mut self.clients);
        }
        self.scratch = due;
    }
}
