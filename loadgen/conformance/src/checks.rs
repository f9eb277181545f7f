//! The conformance suite: each check opens its own connection so one failure does not
//! hide the next, and records what it observed. The echo measurement runs last.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use loadgen_proto::{ClientConfig, DeflateConfig, Initiator, MessageKind, PingStamp};

use crate::connection::{ConnectOptions, Connection, OwnedEvent};
use crate::report::{CheckResult, EchoSummary, Percentiles, Report, latency_histogram};
use crate::{DriverError, Target};

/// What to check and how hard to push.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// `ws://` URL of an echo server.
    pub target: String,
    /// Offer permessage-deflate and require it to be negotiated.
    pub deflate: bool,
    /// The target understands loadgen's interop commands (`close:CODE:REASON`,
    /// `ping:PAYLOAD`), so server-initiated close and ping can be checked.
    pub server_commands: bool,
    /// Fewer sizes and a shorter echo measurement.
    pub quick: bool,
    /// Connections of the echo measurement (one thread each); 0 skips it.
    pub connections: usize,
    /// Round trips per connection in the echo measurement.
    pub round_trips: usize,
    /// Echo message size in bytes.
    pub message_size: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            target: String::new(),
            deflate: false,
            server_commands: false,
            quick: false,
            connections: 8,
            round_trips: 2_000,
            message_size: 64,
        }
    }
}

type CheckFn = Box<dyn Fn(&Ctx) -> Result<String, DriverError>>;

struct Ctx {
    target: Target,
    options: CheckOptions,
}

impl Ctx {
    fn connect_with(&self, client: ClientConfig, deflate: Option<DeflateConfig>) -> Result<Connection, DriverError> {
        let opts = ConnectOptions { client, deflate, ..ConnectOptions::default() };
        Connection::open(&self.target, &opts)
    }

    fn connect(&self) -> Result<Connection, DriverError> {
        self.connect_with(ClientConfig::default(), self.options.deflate.then(DeflateConfig::default))
    }
}

/// Runs the suite. `progress` sees each result as it completes. Fails early only if
/// the target cannot be reached at all.
pub fn run(options: &CheckOptions, progress: &mut dyn FnMut(&CheckResult)) -> Result<Report, DriverError> {
    let started = Instant::now();
    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ctx = Ctx { target: Target::parse(&options.target)?, options: options.clone() };
    // Reachability first: an unreachable target is a runtime error, not a failed check.
    let probe = ctx.connect()?;
    let deflate = probe.client().accepted().and_then(|a| a.deflate).map(|d| format!("{d:?}"));
    drop(probe);

    let mut checks = Vec::new();
    for (name, check) in catalogue(options) {
        let t0 = Instant::now();
        let (passed, detail) = match check(&ctx) {
            Ok(detail) => (true, detail),
            Err(e) => (false, format!("{}: {e}", e.kind())),
        };
        let result = CheckResult { name, passed, detail, millis: t0.elapsed().as_secs_f64() * 1e3 };
        progress(&result);
        checks.push(result);
    }
    let echo = (options.connections > 0).then(|| echo_load(&ctx));
    let passed = checks.iter().filter(|c| c.passed).count();
    Ok(Report {
        schema_version: 1,
        loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
        target: options.target.clone(),
        started_unix_s,
        duration_s: started.elapsed().as_secs_f64(),
        deflate,
        failed: checks.len() - passed,
        passed,
        checks,
        echo,
    })
}

fn catalogue(options: &CheckOptions) -> Vec<(String, CheckFn)> {
    let mut list: Vec<(String, CheckFn)> = vec![("handshake".into(), Box::new(check_handshake))];
    let sizes: &[usize] =
        if options.quick { &[0, 125, 126, 65_536] } else { &[0, 1, 125, 126, 65_535, 65_536, 1 << 20] };
    for &size in sizes {
        list.push((format!("echo_text_{size}"), Box::new(move |c: &Ctx| echo_sized(c, MessageKind::Text, size))));
        list.push((format!("echo_binary_{size}"), Box::new(move |c: &Ctx| echo_sized(c, MessageKind::Binary, size))));
    }
    list.push(("fragmented_send".into(), Box::new(check_fragmented_send)));
    list.push(("streamed_fragments_with_pings".into(), Box::new(check_streamed_with_pings)));
    list.push(("ping_pong".into(), Box::new(check_ping_pong)));
    list.push(("client_close".into(), Box::new(check_client_close)));
    if options.server_commands {
        list.push(("server_ping".into(), Box::new(check_server_ping)));
        list.push(("server_close".into(), Box::new(check_server_close)));
    }
    if options.deflate {
        list.push(("deflate_compresses".into(), Box::new(check_deflate_compresses)));
        list.push(("deflate_no_context_takeover".into(), Box::new(check_deflate_no_context_takeover)));
    }
    list
}

/// A payload of exactly `size` bytes; text mixes 1- to 4-byte code points.
fn payload(kind: MessageKind, size: usize) -> Vec<u8> {
    match kind {
        MessageKind::Binary => (0..size).map(|i| (i * 31 + 7) as u8).collect(),
        MessageKind::Text => {
            let mut s = String::with_capacity(size);
            let pattern = ['a', 'é', '€', '𝄞', 'z'];
            let mut i = 0;
            while s.len() < size {
                let ch = pattern[i % pattern.len()];
                if s.len() + ch.len_utf8() > size {
                    s.push('.');
                } else {
                    s.push(ch);
                }
                i += 1;
            }
            s.into_bytes()
        }
    }
}

/// Waits for the echo of `sent`, skipping pings and pongs.
fn expect_echo(conn: &mut Connection, kind: MessageKind, sent: &[u8]) -> Result<(), DriverError> {
    loop {
        match conn.next_event_within(Duration::from_secs(10))? {
            OwnedEvent::Ping(_) | OwnedEvent::Pong(_) => continue,
            OwnedEvent::Text(t) if kind == MessageKind::Text && t.as_bytes() == sent => return Ok(()),
            OwnedEvent::Binary(b) if kind == MessageKind::Binary && b == sent => return Ok(()),
            other => return Err(DriverError::Unexpected(format!("echo differs: {}", describe(&other)))),
        }
    }
}

fn describe(ev: &OwnedEvent) -> String {
    match ev {
        OwnedEvent::Text(t) => format!("text of {} bytes", t.len()),
        OwnedEvent::Binary(b) => format!("binary of {} bytes", b.len()),
        OwnedEvent::Ping(p) => format!("ping of {} bytes", p.len()),
        OwnedEvent::Pong(p) => format!("pong of {} bytes", p.len()),
        OwnedEvent::Closed { code, reason, .. } => format!("close {code:?} {reason:?}"),
    }
}

fn echo_sized(ctx: &Ctx, kind: MessageKind, size: usize) -> Result<String, DriverError> {
    let mut conn = ctx.connect()?;
    let data = payload(kind, size);
    let t0 = Instant::now();
    conn.send(kind, &data)?;
    expect_echo(&mut conn, kind, &data)?;
    let rtt = t0.elapsed();
    conn.close(1000, "")?;
    Ok(format!("{size} bytes echoed in {:.0} µs", rtt.as_secs_f64() * 1e6))
}

fn check_handshake(ctx: &Ctx) -> Result<String, DriverError> {
    let conn = ctx.connect()?;
    let accepted = conn.client().accepted().expect("open connection has a response");
    if ctx.options.deflate && accepted.deflate.is_none() {
        return Err(DriverError::Unexpected("permessage-deflate was offered but not negotiated".into()));
    }
    Ok(format!(
        "101 in {:.0} µs (connect {:.0} µs); deflate: {}",
        conn.handshake_time.as_secs_f64() * 1e6,
        conn.connect_time.as_secs_f64() * 1e6,
        accepted.deflate.map_or("no".into(), |d| format!("{d:?}"))
    ))
}

fn check_fragmented_send(ctx: &Ctx) -> Result<String, DriverError> {
    let client = ClientConfig { fragment_size: Some(1000), ..ClientConfig::default() };
    let mut conn = ctx.connect_with(client, ctx.options.deflate.then(DeflateConfig::default))?;
    let big = payload(MessageKind::Binary, 64 << 10);
    conn.send(MessageKind::Binary, &big)?;
    expect_echo(&mut conn, MessageKind::Binary, &big)?;
    let client = ClientConfig { fragment_size: Some(1), ..ClientConfig::default() };
    let mut conn = ctx.connect_with(client, None)?;
    let text = "fragments split € and 𝄞 across frames";
    conn.send(MessageKind::Text, text.as_bytes())?;
    expect_echo(&mut conn, MessageKind::Text, text.as_bytes())?;
    Ok("64 KiB in 1000-byte fragments and text in 1-byte fragments echoed".into())
}

fn check_streamed_with_pings(ctx: &Ctx) -> Result<String, DriverError> {
    let mut conn = ctx.connect()?;
    let pieces: [&[u8]; 4] = [b"Hel", b"lo ", b"wor", b"ld"];
    let pings = conn.send_streamed_with_pings(MessageKind::Text, &pieces)?;
    let (mut pongs, mut echoed) = (0, false);
    while pongs < pings || !echoed {
        match conn.next_event_within(Duration::from_secs(10))? {
            OwnedEvent::Pong(p) if PingStamp::parse(&p).is_some() => pongs += 1,
            OwnedEvent::Text(t) if t == "Hello world" => echoed = true,
            OwnedEvent::Ping(_) => {}
            other => return Err(DriverError::Unexpected(describe(&other))),
        }
    }
    Ok(format!("{pings} pings between fragments answered; message reassembled"))
}

fn check_ping_pong(ctx: &Ctx) -> Result<String, DriverError> {
    let mut conn = ctx.connect()?;
    let n = if ctx.options.quick { 20 } else { 200 };
    let mut hist = latency_histogram();
    for id in 0..n {
        conn.ping(id)?;
        loop {
            match conn.next_event_within(Duration::from_secs(5))? {
                OwnedEvent::Pong(p) => {
                    let stamp = PingStamp::parse(&p)
                        .ok_or_else(|| DriverError::Unexpected("pong payload differs from the ping's".into()))?;
                    if stamp.id != id {
                        return Err(DriverError::Unexpected(format!(
                            "pong for ping {} while waiting for {id}",
                            stamp.id
                        )));
                    }
                    hist.saturating_record(conn.clock_us().saturating_sub(stamp.sent_us));
                    break;
                }
                OwnedEvent::Ping(_) => {}
                other => return Err(DriverError::Unexpected(describe(&other))),
            }
        }
    }
    let p = Percentiles::from_histogram(&hist);
    Ok(format!("{n} pongs; rtt p50 {} µs, p99 {} µs, max {} µs", p.p50, p.p99, p.max))
}

fn expect_close(conn: &mut Connection, code: u16, reason: &str, by: Initiator) -> Result<(), DriverError> {
    loop {
        match conn.next_event_within(Duration::from_secs(10))? {
            OwnedEvent::Closed { code: got, reason: r, initiator } => {
                return if got == Some(code) && r == reason && initiator == by {
                    Ok(())
                } else {
                    Err(DriverError::Unexpected(format!("close {got:?} {r:?} by {initiator:?}")))
                };
            }
            OwnedEvent::Ping(_) | OwnedEvent::Pong(_) => {}
            other => return Err(DriverError::Unexpected(describe(&other))),
        }
    }
}

fn check_client_close(ctx: &Ctx) -> Result<String, DriverError> {
    let mut conn = ctx.connect()?;
    let t0 = Instant::now();
    conn.close(1000, "done")?;
    expect_close(&mut conn, 1000, "", Initiator::Client).or_else(|e| match e {
        // Servers may echo the reason too; accept any reason with code 1000.
        DriverError::Unexpected(s) if s.starts_with("close Some(1000)") => Ok(()),
        other => Err(other),
    })?;
    Ok(format!("server answered close 1000 in {:.0} µs", t0.elapsed().as_secs_f64() * 1e6))
}

fn check_server_ping(ctx: &Ctx) -> Result<String, DriverError> {
    let mut conn = ctx.connect()?;
    conn.send(MessageKind::Text, b"ping:heartbeat-42")?;
    match conn.next_event_within(Duration::from_secs(5))? {
        OwnedEvent::Ping(p) if p == b"heartbeat-42" => {}
        other => return Err(DriverError::Unexpected(describe(&other))),
    }
    conn.send(MessageKind::Text, b"still here")?;
    expect_echo(&mut conn, MessageKind::Text, b"still here")?;
    Ok("server ping answered with its payload; echo continues".into())
}

fn check_server_close(ctx: &Ctx) -> Result<String, DriverError> {
    let mut conn = ctx.connect()?;
    conn.send(MessageKind::Text, b"close:4001:maintenance")?;
    expect_close(&mut conn, 4001, "maintenance", Initiator::Server)?;
    Ok("server close 4001 \"maintenance\" received and echoed".into())
}

fn check_deflate_compresses(ctx: &Ctx) -> Result<String, DriverError> {
    let mut conn = ctx.connect()?;
    let text = "{\"type\":\"notification\",\"unit\":7,\"body\":\"shift starts in 40 minutes\"}".repeat(100);
    let before = (conn.bytes_sent, conn.bytes_received);
    for _ in 0..3 {
        conn.send(MessageKind::Text, text.as_bytes())?;
        expect_echo(&mut conn, MessageKind::Text, text.as_bytes())?;
    }
    let sent = conn.bytes_sent - before.0;
    let received = conn.bytes_received - before.1;
    let raw = 3 * text.len() as u64;
    if sent * 4 > raw || received * 4 > raw {
        return Err(DriverError::Unexpected(format!(
            "not compressed: sent {sent} B, received {received} B for {raw} B"
        )));
    }
    Ok(format!("{raw} B of text crossed as {sent} B up and {received} B down"))
}

fn check_deflate_no_context_takeover(ctx: &Ctx) -> Result<String, DriverError> {
    let offer = DeflateConfig {
        client_no_context_takeover: true,
        server_no_context_takeover: true,
        client_max_window_bits: Some(10),
        ..DeflateConfig::default()
    };
    let mut conn = ctx.connect_with(ClientConfig::default(), Some(offer))?;
    let d = conn.client().accepted().and_then(|a| a.deflate);
    let Some(d) = d else { return Err(DriverError::Unexpected("deflate not negotiated".into())) };
    let text = "no context takeover: every message stands alone ".repeat(30);
    for _ in 0..3 {
        conn.send(MessageKind::Text, text.as_bytes())?;
        expect_echo(&mut conn, MessageKind::Text, text.as_bytes())?;
    }
    Ok(format!("negotiated {d:?}; 3 independent messages echoed"))
}

fn echo_load(ctx: &Ctx) -> EchoSummary {
    let o = &ctx.options;
    let round_trips = if o.quick { o.round_trips.min(500) } else { o.round_trips };
    let started = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.connections).map(|i| s.spawn(move || echo_worker(ctx, i, round_trips))).collect();
        handles.into_iter().map(|h| h.join().expect("echo worker does not panic")).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut rtt = latency_histogram();
    let mut connect = rtt.clone();
    let mut handshake = rtt.clone();
    let mut errors = BTreeMap::new();
    for r in results {
        rtt.add(&r.rtt).expect("same configuration");
        if let Some((c, h)) = r.setup {
            connect.saturating_record(c);
            handshake.saturating_record(h);
        }
        if let Some(kind) = r.error {
            *errors.entry(kind.to_owned()).or_insert(0) += 1;
        }
    }
    EchoSummary {
        connections: o.connections,
        message_size: o.message_size,
        round_trips: rtt.len(),
        round_trips_per_s: rtt.len() as f64 / elapsed.max(1e-9),
        rtt_us: Percentiles::from_histogram(&rtt),
        connect_us: Percentiles::from_histogram(&connect),
        handshake_us: Percentiles::from_histogram(&handshake),
        errors,
    }
}

struct WorkerResult {
    rtt: Histogram<u64>,
    setup: Option<(u64, u64)>,
    error: Option<&'static str>,
}

fn echo_worker(ctx: &Ctx, index: usize, round_trips: usize) -> WorkerResult {
    let mut out = WorkerResult { rtt: latency_histogram(), setup: None, error: None };
    let mut conn = match ctx.connect() {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e.kind());
            return out;
        }
    };
    out.setup = Some((conn.connect_time.as_micros() as u64, conn.handshake_time.as_micros() as u64));
    let mut data = payload(MessageKind::Binary, ctx.options.message_size.max(8));
    for i in 0..round_trips {
        data[..8].copy_from_slice(&((index << 32 | i) as u64).to_be_bytes());
        let t0 = Instant::now();
        let result =
            conn.send(MessageKind::Binary, &data).and_then(|()| expect_echo(&mut conn, MessageKind::Binary, &data));
        if let Err(e) = result {
            out.error = Some(e.kind());
            return out;
        }
        out.rtt.saturating_record(t0.elapsed().as_micros() as u64);
    }
    let _ = conn.close(1000, "");
    out
}
