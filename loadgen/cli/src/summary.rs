//! The end-of-run summary of `loadgen run`: a table a person reads once the run is over
//! (connections, latency percentiles per metric, throughput, the generator's own cost,
//! one saturation verdict, the io_uring line), plus the formatting helpers the progress
//! display and `loadgen doctor` share: thousands separators, latency units chosen per
//! value (µs, ms, s), byte sizes (B, KiB, MiB, GiB) and a column-aligned table.
//! It also turns "no connection was established" into one error line naming the cause
//! and its fix.
//!
//! What it does not do: measure anything (every number comes from the engine's
//! `RunOutcome`, the same figures report.json carries; docs/metrics.md explains each),
//! write report.json, or decide exit codes.

use std::collections::BTreeMap;
use std::io::Write;

use loadgen_engine::report::{Outcome, Verdict};
use loadgen_engine::run::RunOutcome;
use loadgen_engine::stats::{Metric, Percentiles, RunStats, SecondStats};

/// `n` with thousands separators (the pre-flight plan's format).
pub use loadgen_engine::preflight::thousands;

/// Three significant digits (at least the integer part, with separators).
fn three_digits(v: f64) -> String {
    if v < 9.995 {
        format!("{v:.2}")
    } else if v < 99.95 {
        format!("{v:.1}")
    } else {
        thousands(v.round() as u64)
    }
}

/// A latency in µs with the unit that suits it: "850 µs", "1.25 ms", "12.5 ms",
/// "250 ms", "1.50 s", "3,600 s".
pub fn latency(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 999_500 {
        format!("{} ms", three_digits(us as f64 / 1e3))
    } else {
        format!("{} s", three_digits(us as f64 / 1e6))
    }
}

/// A size in bytes, binary units as in the pre-flight plan: "512 B", "3.4 KiB",
/// "45.2 MiB", "1.2 GiB".
pub fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if f < 1023.95 * K {
        format!("{:.1} KiB", f / K)
    } else if f < 1023.95 * K * K {
        format!("{:.1} MiB", f / (K * K))
    } else {
        format!("{:.1} GiB", f / (K * K * K))
    }
}

/// A rate per second: one decimal below 10, whole numbers with separators above.
pub fn rate(per_s: f64) -> String {
    if !per_s.is_finite() || per_s <= 0.0 {
        "0".into()
    } else if per_s < 10.0 {
        format!("{per_s:.1}")
    } else {
        thousands(per_s.round() as u64)
    }
}

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right.
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// A table whose columns are padded to their widest cell (widths in characters, so
/// "µs" counts as two).
#[derive(Debug, Default)]
pub struct Table {
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column alignments.
    pub fn new(align: &[Align]) -> Self {
        Self { align: align.to_vec(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are empty).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The rows as lines, columns separated by two spaces, trailing spaces removed.
    pub fn lines(&self) -> Vec<String> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |c: usize| self.rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols).map(width).collect();
        self.rows
            .iter()
            .map(|r| {
                let cells: Vec<String> = (0..cols)
                    .map(|c| {
                        let cell = r.get(c).map_or("", String::as_str);
                        let pad = " ".repeat(widths[c] - cell.chars().count());
                        match self.align.get(c).copied().unwrap_or(Align::Left) {
                            Align::Left => format!("{cell}{pad}"),
                            Align::Right => format!("{pad}{cell}"),
                        }
                    })
                    .collect();
                cells.join("  ").trim_end().to_string()
            })
            .collect()
    }
}

/// Error kinds that end a connection attempt before it is open (connect and upgrade).
/// Other kinds (on open connections, or the generator's own) are listed separately.
const ATTEMPT_ERRORS: &[&str] = &[
    "connect_refused",
    "connect_timeout",
    "no_source_port",
    "socket_error",
    "bind_error",
    "connect_error",
    "handshake_timeout",
    "closed_during_handshake",
    "rejected",
    "redirect",
    "unauthorized",
    "forbidden",
    "not_found",
    "too_many_requests",
    "service_unavailable",
    "client_error",
    "server_error",
    "not_upgraded",
    "malformed_response",
    "response_too_large",
    "missing_upgrade",
    "missing_connection",
    "bad_accept",
    "unrequested_subprotocol",
    "unrequested_extension",
    "invalid_extension_params",
    "invalid_request",
    "tls_bad_certificate",
    "tls_handshake_failure",
    "tls_decrypt",
    "tls_protocol",
    "tls_alert",
    "tls_closed",
    "tls_config",
    "tls_other",
];

/// Whether `kind` is a failed connection attempt (see [`ATTEMPT_ERRORS`]).
pub fn is_attempt_error(kind: &str) -> bool {
    ATTEMPT_ERRORS.contains(&kind)
}

/// "kind n · kind n", largest first.
fn by_kind<'a>(errors: impl Iterator<Item = (&'a &'static str, &'a u64)>) -> String {
    let mut v: Vec<(&str, u64)> = errors.map(|(k, n)| (*k, *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect::<Vec<_>>().join(" · ")
}

/// Rows of the latency table, in the order a connection lives them (by the metrics'
/// stable names, so a metric added to the engine still shows, last, under its name).
const ROWS: &[(&str, &str)] = &[
    ("connect", "connect"),
    ("tls_handshake", "TLS handshake"),
    ("handshake", "handshake"),
    ("ready", "ready"),
    ("message_rtt", "message round trip"),
    ("message_rtt_corrected", "  corrected for coordinated omission"),
    ("ping_rtt", "ping round trip"),
    ("delivery", "delivery"),
    ("delivery_critical", "  critical messages alone"),
    ("recover", "time to recover (reconnects)"),
    ("schedule_lag", "schedule lag (generator)"),
];

/// The latency table: one row per metric with samples.
pub fn latency_table(stats: &RunStats) -> Option<Table> {
    let mut t =
        Table::new(&[Align::Left, Align::Right, Align::Right, Align::Right, Align::Right, Align::Right, Align::Right]);
    t.row(["latency", "p50", "p90", "p99", "p99.9", "max", "samples"]);
    let rank = |m: &Metric| ROWS.iter().position(|(n, _)| *n == m.name()).unwrap_or(ROWS.len());
    let mut metrics = Metric::ALL.to_vec();
    metrics.sort_by_key(rank);
    let mut any = false;
    let corrected = stats.corrected_rtt();
    let mut row = |label: &str, p: Percentiles| {
        t.row([
            label.to_string(),
            latency(p.p50),
            latency(p.p90),
            latency(p.p99),
            latency(p.p999),
            latency(p.max),
            thousands(p.count),
        ]);
    };
    for m in metrics {
        if m == Metric::ConnectLag {
            continue;
        }
        let Some(p) = Percentiles::from_nonempty(stats.histogram(m)) else { continue };
        any |= m != Metric::ScheduleLag;
        let label = ROWS.iter().find(|(n, _)| *n == m.name()).map_or(m.name(), |(_, l)| *l);
        if m == Metric::MessageRtt && corrected.is_some() {
            row("message round trip (closed loop)", p);
            if let Some(c) = corrected.as_ref().and_then(Percentiles::from_nonempty) {
                row(ROWS.iter().find(|(n, _)| *n == "message_rtt_corrected").map_or("", |(_, l)| *l), c);
            }
            continue;
        }
        row(label, p);
    }
    if let Some(p) = Percentiles::from_nonempty(stats.histogram(Metric::ConnectLag)) {
        row("connect lag (generator)", p);
    }
    any.then_some(t)
}

/// Received messages per second: the mean over the seconds with traffic, leaving out
/// the first and last of them when there are three or more (they are partial: traffic
/// starts and stops within them). Returns (mean, seconds averaged, busiest second).
fn throughput(stats: &RunStats) -> Option<(f64, u64, u64)> {
    let busy = |s: &&SecondStats| s.messages.sent + s.messages.received > 0;
    let first = stats.seconds.iter().find(busy)?.second;
    let last = stats.seconds.iter().rev().find(busy)?.second;
    let (from, to) = if last - first >= 2 { (first + 1, last - 1) } else { (first, last) };
    let received: u64 =
        stats.seconds.iter().filter(|s| (from..=to).contains(&s.second)).map(|s| s.messages.received).sum();
    let peak = stats.seconds.iter().map(|s| s.messages.received).max().unwrap_or(0);
    let n = to - from + 1;
    Some((received as f64 / n as f64, n, peak))
}

/// Writes the summary. Write errors (a closed pipe) are ignored.
pub fn write(w: &mut dyn Write, o: &RunOutcome, verdict: &Verdict, interrupted: bool) {
    let _ = write_inner(w, o, verdict, interrupted);
}

fn write_inner(w: &mut dyn Write, o: &RunOutcome, judged: &Verdict, interrupted: bool) -> std::io::Result<()> {
    let s = &o.stats;
    let t = &s.totals;
    let how = if interrupted { ", interrupted" } else { "" };
    writeln!(w)?;
    writeln!(w, "summary ({:.1} s{how})", o.elapsed.as_secs_f64())?;
    let mut rows = Table::new(&[Align::Left, Align::Left]);
    rows.row([
        "connections".to_string(),
        format!(
            "{} attempted · {} established · {} failed · {} dropped · {} peak open · {} open when the hold ended",
            thousands(t.attempted),
            thousands(t.established),
            thousands(t.failed),
            thousands(t.dropped),
            thousands(s.peak_open),
            thousands(t.open_at_end)
        ),
    ]);
    let failed = by_kind(s.errors.iter().filter(|(k, _)| is_attempt_error(k)));
    if !failed.is_empty() {
        rows.row(["  failed by kind".to_string(), failed]);
    }
    if !s.refusals.is_empty() {
        let refused: Vec<String> = s
            .refusals
            .iter()
            .map(|(status, c)| {
                let retry = match c.retry_after_count {
                    0 => String::new(),
                    _ if c.retry_after_min_s == c.retry_after_max_s => {
                        format!(", Retry-After {} s", c.retry_after_min_s)
                    }
                    _ => format!(", Retry-After {}–{} s", c.retry_after_min_s, c.retry_after_max_s),
                };
                format!("HTTP {status} × {}{retry}", thousands(c.count))
            })
            .collect();
        rows.row(["  refused".to_string(), refused.join(" · ")]);
    }
    if t.reconnect_attempts > 0 {
        let recover = Percentiles::from_nonempty(s.histogram(Metric::Recover))
            .map(|p| format!(" · time to recover p50 {} p99 {}", latency(p.p50), latency(p.p99)))
            .unwrap_or_default();
        rows.row([
            "  reconnects".to_string(),
            format!(
                "{} attempts · {} recovered · {} gave up{recover}",
                thousands(t.reconnect_attempts),
                thousands(t.reconnected),
                thousands(t.reconnect_gave_up)
            ),
        ]);
        if t.reconnected_same_server + t.reconnected_other_server > 0 {
            rows.row([
                "  landed on".to_string(),
                format!(
                    "the same server {} · another server {}",
                    thousands(t.reconnected_same_server),
                    thousands(t.reconnected_other_server)
                ),
            ]);
        }
    }
    if !s.drops.is_empty() {
        let mut line = by_kind(s.drops.iter());
        if !s.close_codes.is_empty() {
            let codes: Vec<String> = s.close_codes.iter().map(|(c, n)| format!("{c} × {}", thousands(*n))).collect();
            line.push_str(&format!(" (close codes {})", codes.join(", ")));
        }
        rows.row(["  dropped by cause".to_string(), line]);
    }
    if t.messages_sent + t.messages_received + t.not_sent > 0 {
        let mut parts = vec![
            format!("{} answered", thousands(t.answered)),
            format!("{} late", thousands(t.late)),
            format!("{} unanswered", thousands(t.unanswered)),
            format!("{} not sent", thousands(t.not_sent)),
            format!("{} lost", thousands(t.lost)),
            format!("{} duplicated", thousands(t.duplicated)),
            format!("{} reordered", thousands(t.reordered)),
        ];
        if t.pushes_received > 0 {
            parts.push(format!("{} pushes received", thousands(t.pushes_received)));
        }
        if t.reply_timeouts > 0 {
            parts.push(format!("{} reply timeouts", thousands(t.reply_timeouts)));
        }
        rows.row(["messages".to_string(), parts.join(" · ")]);
    }
    for line in rows.lines() {
        writeln!(w, "{line}")?;
    }
    if let Some(table) = latency_table(s) {
        writeln!(w)?;
        for line in table.lines() {
            writeln!(w, "{line}")?;
        }
        if s.closed_loop_think_us.is_some() {
            writeln!(
                w,
                "(every latency from the intended time of the action; in the closed loop a message is due when the \
                 previous reply arrives, so a stall also holds back the sends it prevented: the corrected row counts them)"
            )?;
        } else {
            writeln!(w, "(every latency from the intended time of the action)")?;
        }
    }
    writeln!(w)?;
    let mut rows = Table::new(&[Align::Left, Align::Left]);
    if let Some((per_s, n, peak)) = throughput(s) {
        let full = if n == 1 { "second" } else { "full seconds" };
        rows.row([
            "throughput".to_string(),
            format!(
                "{} sent · {} received · {}/s received (mean of {} {full} with traffic; busiest {}/s)",
                thousands(t.messages_sent),
                thousands(t.messages_received),
                rate(per_s),
                thousands(n),
                thousands(peak)
            ),
        ]);
    }
    rows.row(["generator".to_string(), generator_cost(o)]);
    if t.tls_full_handshakes + t.tls_resumed_handshakes > 0 {
        let mut line = format!(
            "{} full · {} resumed handshakes",
            thousands(t.tls_full_handshakes),
            thousands(t.tls_resumed_handshakes)
        );
        if let Some(per) = o.memory.tls_bytes.checked_div(o.memory.tls_sessions) {
            line.push_str(&format!(" · {} per held session", bytes(per)));
        }
        rows.row(["tls".to_string(), line]);
    }
    if o.memory.deflate_contexts > 0 {
        let mut line = format!(
            "{} compression contexts · {} (estimated)",
            thousands(o.memory.deflate_contexts),
            bytes(o.memory.deflate_bytes)
        );
        if let Some(per) = o.memory.deflate_bytes.checked_div(s.peak_open) {
            line.push_str(&format!(" · {} per held connection", bytes(per)));
        }
        rows.row(["deflate".to_string(), line]);
    }
    let other = by_kind(s.errors.iter().filter(|(k, _)| !is_attempt_error(k)));
    if !other.is_empty() {
        rows.row(["other errors".to_string(), other]);
    }
    rows.row(["generator health".to_string(), verdict(s)]);
    rows.row(["verdict".to_string(), run_verdict(judged)]);
    for line in rows.lines() {
        writeln!(w, "{line}")?;
    }
    writeln!(w, "io_uring: {}", o.ring_flags)?;
    Ok(())
}

/// CPU-seconds, per million round trips, peak RSS and bytes per held connection.
fn generator_cost(o: &RunOutcome) -> String {
    let u = &o.usage;
    let s = &o.stats;
    let mut parts = Vec::new();
    if let Some(cpu) = u.cpu_s {
        parts.push(format!("{cpu:.2} CPU-s"));
        if s.totals.messages_received > 0 {
            let per_m = cpu / s.totals.messages_received as f64 * 1e6;
            parts.push(format!("{} CPU-s per million messages received", three_digits(per_m)));
        }
    }
    if let Some(peak) = u.peak_rss_bytes {
        parts.push(format!("peak RSS {}", bytes(peak)));
        // As report.json's generator.bytes_per_connection.
        if let Some(per) = peak.saturating_sub(u.baseline_rss_bytes.unwrap_or(0)).checked_div(s.peak_open) {
            parts.push(format!("{} per held connection", bytes(per)));
        }
    }
    if parts.is_empty() { "CPU and memory unknown (/proc unreadable)".into() } else { parts.join(" · ") }
}

/// One line: pass, fail (the failed checks) or invalid (why).
pub fn run_verdict(v: &Verdict) -> String {
    match v.outcome {
        Outcome::Pass => format!("PASS ({} checks held)", v.checks.len()),
        Outcome::Fail => format!("FAIL: {}", v.failures().collect::<Vec<_>>().join("; ")),
        Outcome::Invalid => {
            let failed: Vec<&str> = v.failures().collect();
            let also = if failed.is_empty() { String::new() } else { format!("; also failed: {}", failed.join("; ")) };
            let why = if v.checks.iter().any(|c| c.observed.is_none()) {
                let names: Vec<&str> =
                    v.checks.iter().filter(|c| c.observed.is_none()).map(|c| c.name.as_str()).collect();
                format!("no data for {}", names.join(", "))
            } else {
                "the generator was saturated, so the numbers are partly loadgen's".to_string()
            };
            format!("INVALID: {why}{also}")
        }
    }
}

/// One line: whether the generator kept up, and if not why.
pub fn verdict(s: &RunStats) -> String {
    let reasons = s.saturation_reasons();
    if reasons.is_empty() {
        format!(
            "the generator kept up: no saturated second (schedule-lag p99 ≤ {}, no completion-queue overflow, \
             receive buffers never ran dry)",
            latency(s.policy.lag_threshold_us())
        )
    } else {
        let n = s.seconds.iter().filter(|x| x.saturated).count();
        format!(
            "GENERATOR SATURATED in {n} of {} s: {} (those seconds partly measure loadgen, not the target)",
            s.seconds.len(),
            reasons.join("; ")
        )
    }
}

/// One line for a run that established no connection: the most frequent error, what it
/// means and the fix.
pub fn no_connection_error(errors: &BTreeMap<&'static str, u64>, targets: &[String]) -> String {
    let to = targets.join(", ");
    let Some((&kind, &n)) = errors.iter().max_by_key(|(_, n)| **n) else {
        return format!("no connection was established to {to} and no error was recorded; is the target listening?");
    };
    let fix = match kind {
        "connect_refused" => format!("nothing listens at {to}: start the server, or fix the port in --target"),
        "connect_timeout" => format!("{to} does not answer: check the address and any firewall in between"),
        "no_source_port" => "no free source port: widen the range (`sysctl -w net.ipv4.ip_local_port_range=\"1024 \
                             65535\"`) or add --source-addr"
            .into(),
        "handshake_timeout" => "the server accepted TCP but never answered the WebSocket upgrade: is --target a \
                                WebSocket endpoint?"
            .into(),
        "closed_during_handshake" | "connection_reset" => {
            "the server closed the connection during the upgrade: is --target a WebSocket endpoint (ws://, not a TLS \
             port)?"
                .into()
        }
        "not_found" => "the server refused the upgrade with 404: fix the path in --target".into(),
        "unauthorized" | "forbidden" => {
            "the server refused the upgrade with 401/403: it wants credentials or an allowed origin; use an endpoint \
             that accepts this client"
                .into()
        }
        "too_many_requests" | "service_unavailable" => {
            "the server refused the upgrade with 429/503 (overloaded or rate-limited): lower --connect-rate or retry \
             later"
                .into()
        }
        "redirect" => "the server redirects the upgrade: put the final URL in --target".into(),
        "not_upgraded" | "client_error" | "server_error" | "rejected" => {
            "the server answered without upgrading to WebSocket: is --target a WebSocket endpoint?".into()
        }
        "bad_accept" | "missing_upgrade" | "missing_connection" | "malformed_response" | "response_too_large" => {
            "the server's upgrade response is not valid RFC 6455: is --target a WebSocket server?".into()
        }
        _ => "see the errors in the summary and report.json".into(),
    };
    format!("no connection was established ({kind} × {}): {fix}", thousands(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(50_000), "50,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn latency_units_follow_the_value() {
        assert_eq!(latency(0), "0 µs");
        assert_eq!(latency(999), "999 µs");
        assert_eq!(latency(1_000), "1.00 ms");
        assert_eq!(latency(1_250), "1.25 ms");
        assert_eq!(latency(12_500), "12.5 ms");
        assert_eq!(latency(250_000), "250 ms");
        assert_eq!(latency(999_400), "999 ms");
        assert_eq!(latency(999_600), "1.00 s");
        assert_eq!(latency(1_500_000), "1.50 s");
        assert_eq!(latency(3_600_000_000), "3,600 s");
    }

    #[test]
    fn byte_sizes_and_rates() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(3_516), "3.4 KiB");
        assert_eq!(bytes(1_048_575), "1.0 MiB");
        assert_eq!(bytes(45 << 20), "45.0 MiB");
        assert_eq!(bytes(7_600_000_000), "7.1 GiB");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(2.54), "2.5");
        assert_eq!(rate(49_999.6), "50,000");
        assert_eq!(rate(f64::NAN), "0");
    }

    #[test]
    fn table_columns_align() {
        let mut t = Table::new(&[Align::Left, Align::Right, Align::Right]);
        t.row(["latency", "p50", "max"]);
        t.row(["connect", "850 µs", "1.25 ms"]);
        t.row(["message round trip", "12.5 ms", "3,600 s"]);
        let lines = t.lines();
        assert_eq!(lines[0], "latency                 p50      max");
        assert_eq!(lines[1], "connect              850 µs  1.25 ms");
        assert_eq!(lines[2], "message round trip  12.5 ms  3,600 s");
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{lines:#?}");
    }

    #[test]
    fn table_trims_trailing_padding_of_short_rows() {
        let mut t = Table::new(&[Align::Left, Align::Left]);
        t.row(["connections", "1 attempted"]);
        t.row(["x"]);
        assert_eq!(t.lines(), vec!["connections  1 attempted".to_string(), "x".to_string()]);
    }

    #[test]
    fn no_connection_errors_name_the_cause_and_the_fix_on_one_line() {
        let targets = vec!["ws://127.0.0.1:9/".to_string()];
        let e = no_connection_error(&BTreeMap::from([("connect_refused", 5), ("handshake_timeout", 1)]), &targets);
        assert!(e.contains("connect_refused × 5") && e.contains("start the server"), "{e}");
        let e = no_connection_error(&BTreeMap::from([("forbidden", 3)]), &targets);
        assert!(e.contains("forbidden") && e.contains("401/403"), "{e}");
        for e in [e, no_connection_error(&BTreeMap::new(), &targets)] {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn throughput_leaves_out_the_partial_first_and_last_seconds() {
        let second = |n: u64, received: u64| {
            let mut s = SecondStats {
                second: n,
                connections: Default::default(),
                messages: Default::default(),
                latency_us: Default::default(),
                schedule_lag_us: None,
                connect_lag_us: None,
                cq_overflow: 0,
                buffer_ring_exhausted: 0,
                saturated: false,
                saturation_reasons: Vec::new(),
                errors: BTreeMap::new(),
            };
            s.messages.received = received;
            s.messages.sent = received;
            s
        };
        let mut stats = RunStats::default();
        assert_eq!(throughput(&stats), None);
        stats.seconds = vec![second(0, 0), second(1, 300), second(2, 1000), second(3, 1000), second(4, 10)];
        assert_eq!(throughput(&stats), Some((1000.0, 2, 1000)));
        stats.seconds.truncate(3);
        assert_eq!(throughput(&stats), Some((650.0, 2, 1000)), "two busy seconds: both count");
    }

    #[test]
    fn failed_attempts_are_told_apart_from_other_errors() {
        assert!(is_attempt_error("connect_refused") && is_attempt_error("forbidden"));
        assert!(!is_attempt_error("server_closed") && !is_attempt_error("no_open_connection_for_message"));
        let errors = BTreeMap::from([("a", 1), ("b", 7), ("c", 7)]);
        assert_eq!(by_kind(errors.iter()), "b 7 · c 7 · a 1");
    }
}
