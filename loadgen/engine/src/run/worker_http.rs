//! HTTP/1.1 keep-alive polling on the worker loop ([`super::super::Protocol::Http1`]):
//! a connection is a `loadgen_proto::Http1Client` (over TLS for https://); each due
//! "message" is a GET of the target's path, timed from its intended time to the end
//! of its response.
//!
//! Pacing with one request in flight per connection: a poll due while the previous
//! one is unanswered waits in a per-connection backlog and is sent when the response
//! ends, still timed from its own intended time (no coordinated omission). A 429 or
//! 503 with `Retry-After` holds the connection's polls off until then: polls due in the
//! hold-off are skipped and counted (`retry_after_skipped_poll`), a closed-loop poller
//! resumes when it ends. Statuses ≥ 400 are counted by code. Every intended poll is
//! counted once: sent, skipped for `Retry-After`, or `http_poll_not_sent` when its
//! connection ended first (server close, response timeout, end of the run). loadgen's
//! own close waits for a response in flight, up to the close timeout. Responses
//! time out after the run's handshake timeout (`http_response_timeout`); https:// waits
//! for its TLS handshake under the same deadline. A poller the server closes is
//! dropped (counted) and, under the run's reconnect policy, comes back with its cookies
//! and its `Retry-After` hold-off. What it does not do: pipelining, redirects, request
//! bodies.

use loadgen_proto::http1::Request as Http1Request;
use loadgen_proto::{Http1Client, Http1Config, Http1Event};

use super::super::conn::{HttpStream, Phase, Proto};
use super::super::ops::Op;
use super::super::{MessageRate, Traffic, template};
use super::Worker;
use super::recv::{FeedCtx, Outcome};
use crate::stats::Metric;

/// Most extra headers an HTTP poll carries (the CLI refuses more).
pub const MAX_HEADERS: usize = 32;

impl Worker<'_> {
    /// The TCP connection is up: an HTTP client starts. Plain http:// is open at once;
    /// https:// opens when its TLS handshake completes.
    pub(super) fn http_connected(&mut self, index: u32, now: u64) {
        let timeout_ns = self.setup.config.handshake_timeout.as_nanos() as u64;
        let conn = &mut self.conns[index as usize];
        let config = Http1Config {
            response_timeout_us: Some(timeout_ns / 1_000),
            secure_transport: conn.tls.is_some(),
            ..Http1Config::default()
        };
        let mut client = Http1Client::new(config);
        if let Some(jar) = conn.side.as_mut().and_then(|side| side.cookies.take()) {
            // A reconnect: the poller is the same user to the server.
            *client.jar_mut() = jar;
        }
        conn.proto = Proto::Http(Box::new(HttpStream {
            client,
            out: Vec::new(),
            body_bytes: 0,
            request_ns: 0,
            backlog: 0,
            backlog_ns: 0,
        }));
        if conn.tls.is_some() {
            // The TLS handshake has the WebSocket upgrade's deadline.
            conn.phase = Phase::Handshaking;
            conn.deadline_timer = Some(self.timers.insert(now + timeout_ns, conn.tag(index, Op::Close).encode()));
            self.send_more(index);
            return;
        }
        self.open_now(index, now);
    }

    /// A poll of `index` is due at `intended_ns`: sent now, kept in the backlog while a
    /// request is in flight, or skipped during a `Retry-After` hold-off.
    pub(super) fn poll_due(&mut self, index: u32, intended_ns: u64, now: u64) {
        let closed_loop = self.message_rate() == MessageRate::ClosedLoop;
        let conn = &mut self.conns[index as usize];
        if conn.phase != Phase::Open || !conn.driver.is_ready() || self.closing_all {
            return;
        }
        let Proto::Http(http) = &mut conn.proto else { return };
        if http.backlog == u16::MAX {
            self.rec.not_sent("http_poll_not_sent");
            return;
        }
        if now < conn.retry_at_ns {
            if !closed_loop {
                self.rec.error("retry_after_skipped_poll");
            } else if !conn.awaiting_echo {
                // A closed loop waits for the hold-off (one given before a reconnect
                // too); a second timer for the same time finds the poll already sent.
                self.timers.insert(conn.retry_at_ns, conn.tag(index, Op::RetryTimer).encode());
            }
            return;
        }
        if conn.awaiting_echo
            && let Proto::Http(http) = &mut conn.proto
        {
            if http.backlog == 0 {
                http.backlog_ns = intended_ns;
            }
            http.backlog += 1;
            return;
        }
        self.send_poll(index, intended_ns);
    }

    /// Writes the GET of the connection's target and submits it.
    fn send_poll(&mut self, index: u32, intended_ns: u64) {
        let now_ns = self.setup.clock.now_ns();
        let now_unix_s = self.setup.clock.unix_us(now_ns) / 1_000_000;
        let global = self.global_index(index);
        let token = template::token_of(self.setup.config.tokens.as_deref(), global);
        let spec = &self.requests[self.request_index(index)];
        let conn = &mut self.conns[index as usize];
        let target = &self.setup.config.targets[usize::from(conn.target)];
        let ids = template::Ids { i: global, token, since: conn.push_rx.highest() };
        let Proto::Http(http) = &mut conn.proto else { return };
        // The cohort's headers (and path) with its placeholders expanded for this
        // connection, written into one reused buffer: no allocation per poll.
        let headers_cfg = &spec.headers;
        let mut ends = [0usize; MAX_HEADERS + 1];
        let buf = &mut self.expand_buf;
        buf.clear();
        template::expand_path_into(&spec.path, ids, buf);
        ends[0] = buf.len();
        for (k, (_, value)) in headers_cfg.iter().take(MAX_HEADERS).enumerate() {
            template::expand_into(value, ids, buf);
            ends[k + 1] = buf.len();
        }
        let mut pairs = [("", ""); MAX_HEADERS];
        let n = headers_cfg.len().min(MAX_HEADERS);
        for k in 0..n {
            pairs[k] = (headers_cfg[k].0.as_str(), &buf[ends[k]..ends[k + 1]]);
        }
        let mut request = Http1Request::get(&target.host, &buf[..ends[0]]);
        request.headers = &pairs[..n];
        match http.client.send_request(&request, now_ns / 1_000, now_unix_s, &mut http.out) {
            Ok(()) => {
                http.request_ns = intended_ns;
                conn.awaiting_echo = true;
                http.body_bytes = 0;
                self.rec.message_sent(0);
                // The response deadline (one timer per request, cancelled at its end).
                let deadline_us = http.client.poll_timeout();
                let early = http.client.buffered() > 0;
                if let Some(deadline_us) = deadline_us {
                    if let Some(old) = conn.deadline_timer.take() {
                        self.timers.cancel(old);
                    }
                    let tag = conn.tag(index, Op::Close).encode();
                    conn.deadline_timer = Some(self.timers.insert(deadline_us * 1_000, tag));
                }
                self.send_more(index);
                if early {
                    // Bytes the server sent before the request: the client asks to be
                    // fed (an empty read) once the request is out.
                    self.feed_http_buffered(index);
                }
            }
            Err(_) => {
                let closed = http.client.state() != loadgen_proto::http1::Http1State::Idle;
                if closed {
                    self.rec.not_sent("http_poll_not_sent");
                } else {
                    self.rec.error("http_invalid_request");
                }
                self.drop_conn(index, if closed { "eof" } else { "http_invalid_request" });
            }
        }
    }

    /// Counts the polls waiting in a connection's backlog as not sent (it is ending).
    pub(super) fn drop_http_backlog(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        if let Proto::Http(http) = &mut conn.proto {
            for _ in 0..std::mem::take(&mut http.backlog) {
                self.rec.not_sent("http_poll_not_sent");
            }
        }
    }

    /// The HTTP deadline of `index` expired: TLS handshake (https://) or response.
    pub(super) fn http_deadline(&mut self, index: u32, token: u64, now: u64) {
        let conn = &mut self.conns[index as usize];
        conn.deadline_timer = None;
        let Proto::Http(http) = &mut conn.proto else { return };
        if conn.draining {
            // loadgen's close waited for a response that did not come in time.
            self.rec.error("close_timeout");
            self.shutdown(index);
        } else if conn.phase == Phase::Handshaking {
            self.rec.error("handshake_timeout");
            self.rec.connection_failed();
            self.shutdown(index);
        } else if let Some(what) = http.client.handle_timeout(now / 1_000) {
            self.rec.error(what.name());
            self.drop_conn(index, what.name());
        } else if let Some(next_us) = http.client.poll_timeout() {
            conn.deadline_timer = Some(self.timers.insert(next_us * 1_000, token));
        }
    }

    /// A response ended on `index` (`outcome` says how): honours `Retry-After`, then
    /// sends the next poll the backlog or the closed loop calls for.
    pub(super) fn http_response_done(&mut self, index: u32, outcome: &Outcome, now: u64) {
        let interval = match self.message_rate() {
            MessageRate::PerConnection(r) => Some((1e9 / r) as u64),
            _ => None,
        };
        let closed_loop = matches!(self.setup.config.traffic, Traffic::Echo { rate: MessageRate::ClosedLoop, .. });
        let conn = &mut self.conns[index as usize];
        conn.awaiting_echo = false;
        if let Some(timer) = conn.deadline_timer.take() {
            self.timers.cancel(timer);
        }
        if conn.draining && conn.phase == Phase::Open && !outcome.closed && outcome.error.is_none() {
            // loadgen's close waited for this response: the connection can go now.
            self.shutdown(index);
            return;
        }
        if self.closing_all || conn.phase != Phase::Open || outcome.closed || outcome.error.is_some() {
            // The connection is ending: what waits will not be sent (counted there).
            return;
        }
        if let Some(s) = outcome.retry_after_s {
            conn.retry_at_ns = now.saturating_add(s.saturating_mul(1_000_000_000));
            // Polls already due fall in the hold-off: skipped, like the ones to come.
            if let Proto::Http(http) = &mut conn.proto {
                for _ in 0..std::mem::take(&mut http.backlog) {
                    self.rec.error("retry_after_skipped_poll");
                }
            }
            if closed_loop && conn.retry_at_ns < self.setup.end_ns {
                self.timers.insert(conn.retry_at_ns, conn.tag(index, Op::RetryTimer).encode());
            }
            return;
        }
        if let Proto::Http(http) = &mut conn.proto
            && http.backlog > 0
        {
            http.backlog -= 1;
            let intended = http.backlog_ns;
            http.backlog_ns += interval.unwrap_or(0);
            self.send_poll(index, intended);
        } else {
            // A closed loop's next poll: now, or after the think time (the driver's).
            self.drive(index, now, |d, p, out| d.answered(p, now, out));
        }
    }

    /// A closed-loop poller's `Retry-After` hold-off ended: its next poll, intended now.
    pub(super) fn retry_hold_off_ended(&mut self, index: u32) {
        let conn = &self.conns[index as usize];
        if conn.phase == Phase::Open && !conn.awaiting_echo && !self.closing_all {
            let intended = conn.retry_at_ns;
            self.send_poll(index, intended);
        }
    }

    /// Open model over HTTP pollers: the next ready connection with no request in
    /// flight and no hold-off after `from` (round robin), if any.
    pub(super) fn idle_poller(&mut self, now: u64) -> Option<u32> {
        for _ in 0..self.pool.len() {
            let index = self.pool.next()?;
            let conn = &self.conns[index as usize];
            if !conn.awaiting_echo && conn.retry_at_ns <= now {
                return Some(index);
            }
        }
        None
    }
}

impl FeedCtx<'_> {
    /// Response bytes into the HTTP client: times each response from the intended time
    /// of its request, counts error statuses, notes `Retry-After` and a server close.
    pub(super) fn http(&mut self, http: &mut HttpStream, mut data: &[u8], outcome: &mut Outcome) {
        let now_unix_s = self.clock.unix_us(self.now) / 1_000_000;
        loop {
            let (used, event) = match http.client.receive(data, now_unix_s) {
                Ok(step) => step,
                Err(e) => {
                    outcome.error = Some(e.name());
                    return;
                }
            };
            data = &data[used..];
            match event {
                None => return,
                Some(Http1Event::Informational { .. }) => {}
                Some(Http1Event::ResponseHead(head)) => {
                    if let Some(kind) = status_error(head.status) {
                        self.rec.error(kind);
                    }
                    if matches!(head.status, 429 | 503) {
                        outcome.retry_after_s = head.retry_after_s;
                    }
                }
                Some(Http1Event::Body(bytes)) => http.body_bytes += bytes.len() as u64,
                Some(Http1Event::ResponseEnd { keep_alive, .. }) => {
                    self.rec.message_received(http.body_bytes);
                    self.rec.record_since(Metric::MessageRtt, http.request_ns, self.now);
                    self.rec.echo_received(self.now.saturating_sub(http.request_ns) > self.reply_timeout_ns);
                    outcome.echoes += 1;
                    outcome.current_echo = true;
                    if !keep_alive {
                        self.rec.error("http_connection_close");
                        outcome.closed = true;
                        outcome.drop_cause = Some("http_connection_close");
                        return;
                    }
                }
            }
        }
    }
}

/// The error kind a status counts as (`None` below 400).
fn status_error(status: u16) -> Option<&'static str> {
    Some(match status {
        0..=399 => return None,
        400 => "http_400",
        401 => "http_401",
        403 => "http_403",
        404 => "http_404",
        408 => "http_408",
        429 => "http_429",
        402..=499 => "http_4xx_other",
        500 => "http_500",
        502 => "http_502",
        503 => "http_503",
        504 => "http_504",
        _ => "http_5xx_other",
    })
}
