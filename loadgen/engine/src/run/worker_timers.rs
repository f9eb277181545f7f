//! Timers of the worker loop: protocol deadlines (handshake, close), heartbeat pings
//! stamped with their intended time, per-connection message pacing and HTTP
//! `Retry-After` hold-offs, all from the one hashed timer wheel.

use super::super::MessageRate;
use super::super::conn::{Phase, Proto};
use super::super::ops::{Op, Tag};
use super::Worker;
use crate::stats::Metric;

impl Worker<'_> {
    pub(super) fn fire_timers(&mut self, now: u64) {
        let mut due = std::mem::take(&mut self.scratch);
        self.timers.advance(now, |token| due.push(token));
        let rate = self.message_rate();
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
                // Heartbeat pings, stamped with their intended time.
                Op::PingTimer => {
                    if conn.phase != Phase::Open || self.closing_all {
                        continue;
                    }
                    let intended = conn.next_ping_ns;
                    let interval = self.setup.config.ping_interval.map_or(u64::MAX, |d| d.as_nanos().max(1) as u64);
                    conn.next_ping_ns = intended.saturating_add(interval);
                    if conn.next_ping_ns < self.setup.end_ns {
                        self.timers.insert(conn.next_ping_ns, token);
                    }
                    self.rec.record_since(Metric::ScheduleLag, intended, now);
                    let id = conn.seq;
                    if let Some(client) = conn.client(&mut self.clients)
                        && client.ping(id, intended / 1_000, &mut self.rng).is_ok()
                    {
                        self.send_more(tag.conn);
                    }
                }
                // Paced sends (per-connection rate).
                Op::Send => {
                    let intended = conn.next_send_ns;
                    if let MessageRate::PerConnection(rate) = rate {
                        conn.next_send_ns = intended + (1e9 / rate) as u64;
                        if conn.next_send_ns < self.setup.end_ns {
                            self.timers.insert(conn.next_send_ns, token);
                        }
                    }
                    self.rec.record_since(Metric::ScheduleLag, intended, now);
                    self.send_probe(tag.conn, intended);
                }
                Op::RetryTimer => self.retry_hold_off_ended(tag.conn),
                // Closed loop: the reply to the message in flight is overdue.
                Op::ReplyTimer => {
                    let timeout = self.setup.config.reply_timeout.as_nanos() as u64;
                    if !conn.awaiting_echo || conn.phase != Phase::Open {
                        conn.reply_timer = false;
                        continue;
                    }
                    let deadline = conn.next_send_ns + timeout;
                    if now < deadline {
                        // A later message is in flight: wait for its deadline.
                        self.timers.insert(deadline, token);
                        continue;
                    }
                    conn.reply_timer = false;
                    conn.awaiting_echo = false;
                    self.rec.reply_timeout();
                    if !self.closing_all {
                        // Counted when it comes (late) or not at all (unanswered); the
                        // loop goes on with the next message, due now.
                        self.send_probe(tag.conn, now);
                    }
                }
                _ => {}
            }
            self.conns[tag.conn as usize].park(&mut self.clients);
        }
        self.scratch = due;
    }
}
