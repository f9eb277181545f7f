//! The charts of the HTML report, each from the run's own figures: over time (one
//! point per second of the timeseries lines: connections, message rates, latency
//! percentiles per metric, errors by kind, the generator's lag with its saturated
//! seconds shaded, the embedded target's CPU), every one with the run's phases as bands
//! and its timeline events as markers; and the whole-run percentile spectrum of every
//! histogram in report.json.
//!
//! A chart whose figures the run does not have is left out, and a second without a
//! reading is a gap in its line, never a zero. Drawing is svg.rs's; this module only
//! picks the series.

use serde_json::Value;

use super::axis::{Axis, Unit};
use super::svg::{self, Band, Bar, Line, Marker, PALETTE, Plot, Point};
use super::text::{count, esc, micros, seconds};
use crate::buckets::Buckets;

/// Spectrum points per halving of 1 − q (`Buckets::spectrum`'s `ticks`).
pub const SPECTRUM_TICKS: u32 = 4;

/// Latency metrics in the order the report shows them, with their names for people.
pub const METRICS: &[(&str, &str)] = &[
    ("message_rtt", "message round trip"),
    ("message_rtt_corrected", "message round trip, corrected for coordinated omission"),
    ("delivery", "delivery (server push)"),
    ("delivery_critical", "delivery of critical messages"),
    ("ping_rtt", "ping round trip"),
    ("recover", "recovery after a drop"),
    ("ready", "ready (on-open steps done)"),
    ("handshake", "WebSocket handshake"),
    ("tls_handshake", "TLS handshake"),
    ("connect", "TCP connect"),
    ("handshake_closed", "attack upgrade closed by the server"),
];

/// The generator's own lag histograms (drawn dashed in the spectrum).
const GENERATOR_METRICS: &[(&str, &str)] =
    &[("schedule_lag", "schedule lag (generator)"), ("connect_lag", "connect lag (generator)")];

/// The name for people of latency metric `key` (the key itself when unknown).
pub fn metric_name(key: &str) -> String {
    METRICS
        .iter()
        .chain(GENERATOR_METRICS)
        .find(|(k, _)| *k == key)
        .map_or_else(|| key.to_string(), |(_, n)| (*n).into())
}

/// `keys` in the report's order of metrics, unknown ones after, alphabetically.
pub fn ordered_metrics(mut keys: Vec<&str>) -> Vec<&str> {
    let rank = |k: &str| METRICS.iter().chain(GENERATOR_METRICS).position(|(m, _)| *m == k).unwrap_or(usize::MAX);
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    keys.dedup();
    keys
}

/// One chart with its title and caption.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Element id (anchor).
    pub id: String,
    /// Title, plain text.
    pub title: String,
    /// The `<svg class="chart">` element.
    pub svg: String,
    /// Caption, HTML (its dynamic parts escaped by whoever built it).
    pub caption: String,
}

impl Figure {
    fn new(id: &str, title: &str, plot: &Plot, caption: String) -> Figure {
        Figure { id: id.into(), title: title.into(), svg: svg::draw(plot), caption }
    }

    /// The `<figure>` element.
    pub fn html(&self) -> String {
        format!(
            "<figure id=\"{}\" class=\"chart-figure\">{}<figcaption><strong>{}.</strong> {}</figcaption></figure>\n",
            esc(&self.id),
            self.svg,
            esc(&self.title),
            self.caption
        )
    }
}

/// An id made of `[a-z0-9_-]` from `key`.
fn id_part(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .collect()
}

/// The seconds of the run with what is drawn over every time chart.
pub struct Timeline<'a> {
    seconds: Vec<(u64, &'a Value)>,
    x_max: f64,
    phases: Vec<Band>,
    markers: Vec<Marker>,
    cpu_by_second: &'a [Value],
}

impl<'a> Timeline<'a> {
    /// From the report document and its timeseries lines; `None` when no line has a
    /// `second` (a note says how many were unreadable).
    pub fn new(report: &'a Value, lines: &'a [Value], notes: &mut Vec<String>) -> Option<Timeline<'a>> {
        let mut seconds: Vec<(u64, &Value)> = lines.iter().filter_map(|l| Some((l["second"].as_u64()?, l))).collect();
        if seconds.len() < lines.len() {
            notes.push(format!("{} timeseries line(s) without a `second` were left out.", lines.len() - seconds.len()));
        }
        seconds.sort_by_key(|&(s, _)| s);
        let x_max = seconds.last()?.0 as f64 + 1.0;
        let phases = phase_bands(report, &seconds, x_max);
        let markers = event_markers(report, &seconds, x_max);
        let cpu_by_second =
            report["scenario"]["target_cpu_s_by_second"].as_array().map(Vec::as_slice).unwrap_or_default();
        Some(Timeline { seconds, x_max, phases, markers, cpu_by_second })
    }

    fn plot(&self, aria: &str, y: Axis) -> Plot {
        let mut plot = Plot::new(aria, Axis::time(self.x_max), y);
        plot.phases = self.phases.clone();
        plot.markers = self.markers.clone();
        plot
    }

    /// One point per second (at its middle) of `value`; `None` where it has none.
    fn series(&self, value: impl Fn(&Value) -> Option<f64>, tip: impl Fn(u64, f64) -> String) -> Vec<Option<Point>> {
        self.seconds
            .iter()
            .map(|&(s, line)| {
                value(line).filter(|v| v.is_finite()).map(|y| Point {
                    x: s as f64 + 0.5,
                    y,
                    tip: tip(s, y),
                    attrs: String::new(),
                })
            })
            .collect()
    }

    /// Every chart over time this run's seconds allow, in the report's order.
    pub fn figures(&self) -> Vec<Figure> {
        let mut out = vec![self.connections()];
        out.extend(self.messages());
        out.extend(self.latency_metrics().into_iter().filter_map(|k| self.latency(k)));
        out.extend(self.errors());
        out.extend(self.lag());
        out.extend(self.target_cpu());
        out
    }

    fn connections(&self) -> Figure {
        let open = self
            .series(|l| l["connections"]["open"].as_f64(), |s, v| format!("second {s}: {} open at its end", count(v)));
        // Per-second counts; `dropped` and `reconnect_attempts` are absent when 0.
        let per_second = [
            ("established", "established/s", PALETTE[2]),
            ("failed", "failed/s", PALETTE[4]),
            ("dropped", "dropped/s", PALETTE[1]),
            ("reconnect_attempts", "reconnect attempts/s", PALETTE[3]),
        ];
        let value = |l: &Value, key: &str| {
            let c = l["connections"].as_object()?;
            Some(c.get(key).and_then(Value::as_f64).unwrap_or(0.0))
        };
        let shown: Vec<_> = per_second
            .iter()
            .filter(|(key, ..)| {
                *key == "established" || self.seconds.iter().any(|(_, l)| value(l, key).unwrap_or(0.0) > 0.0)
            })
            .collect();
        let mut max = open.iter().flatten().map(|p| p.y).fold(0.0, f64::max);
        let mut bars = Vec::with_capacity(self.seconds.len());
        for &(s, l) in &self.seconds {
            let parts: Vec<(f64, &'static str, String)> = shown
                .iter()
                .map(|(key, label, colour)| {
                    let v = value(l, key).unwrap_or(0.0);
                    max = max.max(v);
                    (v, *colour, format!("second {s}: {} {}", count(v), label.trim_end_matches("/s")))
                })
                .collect();
            bars.push(Bar { x0: s as f64, x1: s as f64 + 1.0, parts });
        }
        let mut plot = self.plot("Connections over time", Axis::linear(max, Unit::Count, "connections"));
        plot.lines = vec![line("open", PALETTE[0], false, open)];
        plot.bars = bars;
        plot.grouped = true;
        plot.bar_legend = shown.iter().map(|(_, label, colour)| ((*label).to_string(), *colour)).collect();
        let quiet: Vec<&str> =
            ["failed", "dropped"].into_iter().filter(|k| !shown.iter().any(|(key, ..)| key == k)).collect();
        let mut caption = "The line: connections open at the end of each second. The bars: connections established, failed and dropped, and reconnect attempts started, in each second.".to_string();
        if !quiet.is_empty() {
            caption.push_str(&format!(" No connection {} in any second.", quiet.join(" or ")));
        }
        Figure::new("chart-connections", "Connections", &plot, caption)
    }

    fn messages(&self) -> Option<Figure> {
        let m = |key: &'static str| {
            move |l: &Value| l["messages"].as_object().map(|o| o.get(key).and_then(Value::as_f64).unwrap_or(0.0))
        };
        let sent = self.series(m("sent"), |s, v| format!("second {s}: {} sent", count(v)));
        let received = self.series(m("received"), |s, v| format!("second {s}: {} received", count(v)));
        let traffic = sent.iter().chain(&received).flatten().any(|p| p.y > 0.0);
        if !traffic {
            return None;
        }
        // Sent dashed over received: with echo traffic the two coincide and both stay visible.
        let mut lines = vec![line("received/s", PALETTE[2], false, received), line("sent/s", PALETTE[0], true, sent)];
        for (key, colour) in [("late", PALETTE[6]), ("lost", PALETTE[4])] {
            let points = self.series(m(key), move |s, v| format!("second {s}: {} {key}", count(v)));
            if points.iter().flatten().any(|p| p.y > 0.0) {
                lines.push(line(&format!("{key}/s"), colour, false, points));
            }
        }
        let mut plot =
            self.plot("Messages per second", Axis::linear(max_y(&lines), Unit::Count, "messages per second"));
        plot.lines = lines;
        let caption = "Data messages sent and received in each second (whole messages; control frames excluded), with echoes back after the reply timeout (late) and sequence numbers found missing (lost) when there were any.".into();
        Some(Figure::new("chart-messages", "Message rates", &plot, caption))
    }

    /// The latency metrics with samples in at least one second, in the report's order.
    fn latency_metrics(&self) -> Vec<&'a str> {
        let mut keys = Vec::new();
        for (_, l) in &self.seconds {
            if let Some(map) = l["latency_us"].as_object() {
                keys.extend(map.iter().filter(|(_, v)| v["count"].as_u64().unwrap_or(0) > 0).map(|(k, _)| k.as_str()));
            }
        }
        ordered_metrics(keys)
    }

    fn latency(&self, key: &str) -> Option<Figure> {
        let name = metric_name(key);
        let at = |q: &'static str| {
            move |l: &Value| {
                let m = &l["latency_us"][key];
                (m["count"].as_u64().unwrap_or(0) > 0).then(|| m[q].as_f64()).flatten()
            }
        };
        let tip = |q: &'static str| move |s: u64, v: f64| format!("second {s}: {q} {}", micros(v));
        let lines = vec![
            line("p50", PALETTE[0], false, self.series(at("p50"), tip("p50"))),
            line("p99", PALETTE[1], false, self.series(at("p99"), tip("p99"))),
            line("max", PALETTE[3], true, self.series(at("max"), tip("max"))),
        ];
        let (lo, hi) = y_range(&lines)?;
        let mut plot =
            self.plot(&format!("Latency over time: {name}"), Axis::log_micros(lo, hi, "latency (log scale)"));
        plot.lines = lines;
        let caption = format!(
            "p50, p99 and max of <code>{}</code> in each second, from the intended time of the action (no coordinated omission); seconds without samples are gaps.",
            esc(key)
        );
        Some(Figure::new(&format!("chart-latency-{}", id_part(key)), &format!("Latency: {name}"), &plot, caption))
    }

    fn errors(&self) -> Option<Figure> {
        let mut totals: Vec<(&str, f64)> = Vec::new();
        for (_, l) in &self.seconds {
            for (kind, n) in l["errors"].as_object().into_iter().flatten() {
                let n = n.as_f64().unwrap_or(0.0);
                match totals.iter_mut().find(|(k, _)| *k == kind.as_str()) {
                    Some(t) => t.1 += n,
                    None => totals.push((kind.as_str(), n)),
                }
            }
        }
        totals.retain(|&(_, n)| n > 0.0);
        if totals.is_empty() {
            return None;
        }
        totals.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        const SHOWN: usize = 7;
        let colour_of = |i: usize| if i < SHOWN { PALETTE[(i + 4) % PALETTE.len()] } else { "#64748b" };
        let mut bars = Vec::new();
        let mut max: f64 = 0.0;
        for &(s, l) in &self.seconds {
            let mut parts: Vec<(f64, &'static str, String)> = Vec::new();
            let mut other = 0.0;
            for (i, (kind, _)) in totals.iter().enumerate() {
                let n = l["errors"][*kind].as_f64().unwrap_or(0.0);
                if i < SHOWN {
                    parts.push((n, colour_of(i), format!("second {s}: {} {kind}", count(n))));
                } else {
                    other += n;
                }
            }
            if other > 0.0 {
                parts.push((other, colour_of(SHOWN), format!("second {s}: {} of other kinds", count(other))));
            }
            max = max.max(parts.iter().map(|p| p.0).sum());
            bars.push(Bar { x0: s as f64, x1: s as f64 + 1.0, parts });
        }
        let mut plot = self.plot("Errors per second by kind", Axis::linear(max, Unit::Count, "errors per second"));
        plot.bars = bars;
        plot.bar_legend =
            totals.iter().take(SHOWN).enumerate().map(|(i, (k, _))| ((*k).to_string(), colour_of(i))).collect();
        if totals.len() > SHOWN {
            plot.bar_legend.push(("other kinds".into(), colour_of(SHOWN)));
        }
        let caption = "Errors of each second, stacked by kind (the kinds are listed in docs/metrics.md).".into();
        Some(Figure::new("chart-errors", "Errors by kind", &plot, caption))
    }

    fn lag(&self) -> Option<Figure> {
        let at = |field: &'static str, q: &'static str| {
            move |l: &Value| {
                let m = &l[field];
                (m["count"].as_u64().unwrap_or(0) > 0).then(|| m[q].as_f64()).flatten()
            }
        };
        let tip = |what: &'static str| move |s: u64, v: f64| format!("second {s}: {what} {}", micros(v));
        let mut lines = Vec::new();
        for (field, name, colour) in
            [("schedule_lag_us", "schedule lag", PALETTE[0]), ("connect_lag_us", "connect lag", PALETTE[1])]
        {
            let p99 = self.series(
                at(field, "p99"),
                tip(if field == "schedule_lag_us" { "schedule lag p99" } else { "connect lag p99" }),
            );
            if p99.iter().all(Option::is_none) {
                continue;
            }
            let max = self.series(
                at(field, "max"),
                tip(if field == "schedule_lag_us" { "schedule lag max" } else { "connect lag max" }),
            );
            lines.push(line(&format!("{name} p99"), colour, false, p99));
            lines.push(line(&format!("{name} max"), colour, true, max));
        }
        let (lo, hi) = y_range(&lines)?;
        let mut plot = self.plot("Generator lag over time", Axis::log_micros(lo, hi, "lag (log scale)"));
        plot.lines = lines;
        plot.shaded = self
            .seconds
            .iter()
            .filter(|(_, l)| l["saturated"].as_bool() == Some(true))
            .map(|&(s, l)| {
                let reasons: Vec<&str> =
                    l["saturation_reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                let why = if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) };
                Band {
                    x0: s as f64,
                    x1: s as f64 + 1.0,
                    label: String::new(),
                    tip: format!("second {s} saturated{why}"),
                }
            })
            .collect();
        let caption = "How late the generator acted: schedule lag (actual − intended submission of every send and ping) and connect lag (of every connection start), p99 and max per second. Shaded seconds were judged saturated: their figures partly measure loadgen, not the target.".into();
        Some(Figure::new("chart-lag", "Generator lag", &plot, caption))
    }

    fn target_cpu(&self) -> Option<Figure> {
        let cpu = self.cpu_by_second;
        let points = self.series(
            |l| l["target_cpu_s"].as_f64().or_else(|| cpu.get(usize::try_from(l["second"].as_u64()?).ok()?)?.as_f64()),
            |s, v| format!("second {s}: {} CPU-seconds", count((v * 1000.0).round() / 1000.0)),
        );
        if points.iter().all(Option::is_none) {
            return None;
        }
        let lines = vec![line("target CPU", PALETTE[5], false, points)];
        let mut plot = self.plot(
            "Embedded target CPU per second",
            Axis::linear(max_y(&lines), Unit::Cores, "CPU-seconds per second (cores)"),
        );
        plot.lines = lines;
        let caption = "CPU the embedded target's processes (supervisor, workers, HAProxy; not Redis) used in each second, crashed workers included.".into();
        Some(Figure::new("chart-target-cpu", "Target CPU", &plot, caption))
    }
}

fn line(label: &str, colour: &'static str, dashed: bool, points: Vec<Option<Point>>) -> Line {
    Line { label: label.into(), colour, dashed, points }
}

fn max_y(lines: &[Line]) -> f64 {
    lines.iter().flat_map(|l| l.points.iter().flatten()).map(|p| p.y).fold(0.0, f64::max)
}

/// Smallest and largest y of `lines`; `None` when they have no point.
fn y_range(lines: &[Line]) -> Option<(f64, f64)> {
    let ys = || lines.iter().flat_map(|l| l.points.iter().flatten()).map(|p| p.y);
    let lo = ys().reduce(f64::min)?;
    Some((lo, ys().fold(lo, f64::max)))
}

/// The run's phases as bands: report `phases[]` (`to_s` absent: to the end), else the
/// `phases` names of the lines.
fn phase_bands(report: &Value, seconds: &[(u64, &Value)], x_max: f64) -> Vec<Band> {
    let mut bands: Vec<Band> = Vec::new();
    for p in report["phases"].as_array().into_iter().flatten() {
        let (Some(name), Some(from)) = (p["name"].as_str(), p["from_s"].as_f64()) else { continue };
        let to = p["to_s"].as_f64().unwrap_or(x_max).min(x_max);
        if from < x_max && to > from {
            bands.push(Band {
                x0: from.max(0.0),
                x1: to,
                label: name.into(),
                tip: format!("phase {name}: {from:.0}–{to:.0} s"),
            });
        }
    }
    if bands.is_empty() {
        for &(s, l) in seconds {
            for name in l["phases"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                match bands.iter_mut().find(|b| b.label == name && b.x1 == s as f64) {
                    Some(b) => b.x1 = s as f64 + 1.0,
                    None => {
                        bands.push(Band { x0: s as f64, x1: s as f64 + 1.0, label: name.into(), tip: String::new() })
                    }
                }
            }
        }
        for b in &mut bands {
            b.tip = format!("phase {}: {:.0}–{:.0} s", b.label, b.x0, b.x1);
        }
    }
    bands.sort_by(|a, b| a.x0.total_cmp(&b.x0).then(b.x1.total_cmp(&a.x1)));
    bands
}

/// The timeline's events as markers: report `faults[]` (when applied, else when due),
/// else the `events` of the lines.
fn event_markers(report: &Value, seconds: &[(u64, &Value)], x_max: f64) -> Vec<Marker> {
    let from_report: Vec<&Value> = report["faults"].as_array().into_iter().flatten().collect();
    let from_lines: Vec<&Value> =
        seconds.iter().flat_map(|(_, l)| l["events"].as_array().into_iter().flatten()).collect();
    let events = if from_report.is_empty() { from_lines } else { from_report };
    let mut markers: Vec<Marker> = events
        .into_iter()
        .filter_map(|e| {
            let at = e["applied_s"].as_f64().or_else(|| e["at_s"].as_f64())?;
            let action = e["action"].as_str().unwrap_or("event");
            let mut tip = format!("{action} at {}", seconds_label(at));
            if let Some(detail) = e["detail"].as_str() {
                tip.push_str(&format!(": {detail}"));
            }
            match e["ok"].as_bool() {
                Some(true) => tip.push_str(" (ok)"),
                Some(false) => tip.push_str(" (FAILED)"),
                None => {}
            }
            if let Some(outcome) = e["outcome"].as_str() {
                tip.push_str(&format!(" → {outcome}"));
            }
            (0.0..=x_max).contains(&at).then(|| Marker { x: at, label: action.into(), tip })
        })
        .collect();
    markers.sort_by(|a, b| a.x.total_cmp(&b.x));
    markers
}

fn seconds_label(at: f64) -> String {
    if at < 1.0 { format!("{at:.3} s") } else { seconds(at) }
}

/// The histograms of report.json with samples, in the report's order of metrics (the
/// generator's lags last); a histogram that cannot be read is left out with a note.
pub fn histograms(report: &Value, notes: &mut Vec<String>) -> Vec<(String, Buckets)> {
    let Some(map) = report["histograms"].as_object() else { return Vec::new() };
    let mut out = Vec::new();
    for key in ordered_metrics(map.keys().map(String::as_str).collect()) {
        match Buckets::of_metric(report, key) {
            Ok(Some(b)) if b.count() > 0 => out.push((key.to_string(), b)),
            Ok(_) => {}
            Err(e) => notes.push(format!("histogram `{key}` left out: {e}.")),
        }
    }
    out
}

/// Where the spectrum puts quantile `q` of a histogram of `count` samples:
/// log10(1 / (1 − q)), the maximum (q = 1) at log10(count).
pub fn spectrum_x(q: f64, count: u64) -> f64 {
    if q >= 1.0 { (count.max(1) as f64).log10() } else { -(1.0 - q).log10() }
}

/// The percentile spectrum of every histogram; `None` when there is none.
pub fn spectrum(histograms: &[(String, Buckets)]) -> Option<Figure> {
    let mut lines = Vec::new();
    let mut x_hi: f64 = 0.0;
    for (colour, (key, b)) in histograms.iter().enumerate() {
        let generator = GENERATOR_METRICS.iter().any(|(k, _)| k == key);
        let name = metric_name(key);
        let points: Vec<Option<Point>> = b
            .spectrum(SPECTRUM_TICKS)
            .into_iter()
            .map(|(q, v)| {
                let x = spectrum_x(q, b.count());
                x_hi = x_hi.max(x);
                let what = if q >= 1.0 { "max".to_string() } else { format!("p{}", percentile(q)) };
                Some(Point {
                    x,
                    y: v as f64,
                    tip: format!("{name}: {what} {}", micros(v as f64)),
                    attrs: format!(" data-metric=\"{}\" data-q=\"{q}\" data-us=\"{v}\"", esc(key)),
                })
            })
            .collect();
        lines.push(line(&name, PALETTE[colour % PALETTE.len()], generator, points));
    }
    let (lo, hi) = y_range(&lines)?;
    let mut plot = Plot::new(
        "Latency percentile spectrum",
        Axis::percentiles(x_hi),
        Axis::log_micros(lo, hi, "latency (log scale)"),
    );
    plot.lines = lines;
    let caption = format!(
        "Whole-run latency at every percentile, from the merged histograms (1 µs to one hour, three significant digits): {} points per halving of the tail, up to the resolution of the sample count, then the maximum. Dashed: the generator's own lag.",
        SPECTRUM_TICKS
    );
    Some(Figure::new("chart-spectrum", "Percentile spectrum", &plot, caption))
}

/// `q` as a percentile number: 0.99 → `99`, 0.9990234 → `99.902`.
pub fn percentile(q: f64) -> String {
    let text = format!("{:.3}", q * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
