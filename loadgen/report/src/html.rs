//! DIR/report.html: one self-contained HTML5 page rendered from the run's report
//! document and its timeseries lines (the objects of timeseries.jsonl, or the report's
//! own `timeseries[]`). No script and no network: inline CSS, charts as inline SVG
//! drawn here, a Content-Security-Policy that forbids fetching anything; it prints
//! (light colours, no chart split across pages).
//!
//! Top to bottom: the run (scenario, targets, start, duration, interrupted), the
//! verdict with its checks (failures first) and why a run is invalid, key figures, the
//! whole-run latency table with the percentile spectrum, charts over time with phase
//! bands and timeline markers, findings, the timeline, phases, refusals, close codes,
//! drops and errors by kind, then configuration, scenario, host and plan. See
//! docs/report-html.md.
//!
//! Everything shown comes from the documents: a section the report does not have is
//! left out (never drawn as zeros), every string from them is escaped, and a malformed
//! document renders what can be read, with a note saying what could not. It measures
//! and judges nothing itself.

mod axis;
mod charts;
mod svg;
mod tables;
#[cfg(test)]
mod tests;
mod text;

/// `&`, `<`, `>`, `"` and `'` as entities: safe as element text and as a quoted
/// attribute value (also used by `compare`'s page).
pub(crate) use text::esc as escape;

use serde_json::Value;

use self::charts::Timeline;
use self::text::{bytes, count, esc, percent, rate, seconds, sig3, utc};

/// The page's Content-Security-Policy: nothing may be fetched, inline styles only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = include_str!("html/style.css");

/// The page being built: sections in order and the table of contents.
#[derive(Default)]
struct Page {
    toc: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn section(&mut self, id: &str, title: &str, class: &str, inner: &str) {
        self.toc.push((id.into(), title.into()));
        self.body
            .push_str(&format!("<section id=\"{id}\" class=\"{class}\"><h2>{}</h2>\n{inner}</section>\n", esc(title)));
    }
}

/// Renders report.html from the run's report document and its timeseries lines (an
/// empty slice: the charts over time are left out, with a note).
pub fn render(report: &Value, timeseries: &[Value]) -> String {
    let mut notes: Vec<String> = Vec::new();
    if !report.is_object() {
        notes.push("The report document is not a JSON object: nothing of it can be shown.".into());
    }
    let histograms = charts::histograms(report, &mut notes);
    let timeline = Timeline::new(report, timeseries, &mut notes);
    let mut page = Page::default();

    let mut verdict_html = verdict(report, &mut notes);
    if let Some(checks) = tables::checks(report) {
        verdict_html.push_str("<h3>Checks</h3>\n");
        verdict_html.push_str(&checks);
    }
    page.section("verdict-section", "Verdict", "verdict-section", &verdict_html);
    if let Some(figures) = key_figures(report, timeseries) {
        page.section("key-figures", "Key figures", "", &figures);
    }

    let mut latency = tables::latency(report, &histograms).unwrap_or_default();
    match charts::spectrum(&histograms) {
        Some(figure) => latency.push_str(&figure.html()),
        None => {
            latency.push_str("<p class=\"note\">The report has no latency histograms: no percentile spectrum.</p>\n")
        }
    }
    if report["latency_us"].is_object() || !histograms.is_empty() {
        page.section("latency", "Latency over the whole run", "", &latency);
    }

    let over_time = match &timeline {
        Some(t) => t.figures().iter().map(charts::Figure::html).collect::<String>(),
        None => "<p class=\"note\">No per-second series was given (timeseries.jsonl or the report's \
                 <code>timeseries</code>): the charts over time are left out.</p>\n"
            .into(),
    };
    page.section("over-time", "Over time", "charts", &over_time);

    if let Some(t) = tables::findings(report) {
        page.section("findings", "Findings", "", &t);
    }
    if let Some(t) = tables::timeline(report) {
        page.section("timeline", "Timeline", "", &t);
    }
    if let Some(t) = tables::phases(report) {
        page.section("phases", "Phases", "", &t);
    }
    let breakdown = breakdowns(report);
    if !breakdown.is_empty() {
        page.section("breakdowns", "Refusals, closes, drops and errors", "", &breakdown);
    }
    let mut config = String::new();
    if let Some(t) = tables::key_values(&report["config"], &[]) {
        config.push_str(&format!("<h3>Configuration</h3>\n{t}"));
    }
    if let Some(t) = tables::key_values(&report["scenario"], &["target_cpu_s_by_second"]) {
        config.push_str(&format!("<h3>Scenario</h3>\n{t}"));
    }
    if let Some(t) = tables::key_values(&report["host"], &[]) {
        config.push_str(&format!("<h3>Host</h3>\n{t}"));
    }
    // The generator's io_uring line repeats the host's when there is one.
    let generator_skip: &[&str] = if report["host"]["io_uring"].is_string() {
        &["schedule_lag_us", "connect_lag_us", "io_uring"]
    } else {
        &["schedule_lag_us", "connect_lag_us"]
    };
    if let Some(t) = tables::key_values(&report["generator"], generator_skip) {
        config.push_str(&format!("<h3>Generator</h3>\n{t}"));
    }
    if let Some(t) = tables::warnings(report) {
        config.push_str(&format!("<h3>Plan warnings</h3>\n{t}"));
    }
    if let Some(t) = tables::key_values(&report["plan"], &["warnings"]) {
        config.push_str(&format!("<h3>Pre-flight plan</h3>\n{t}"));
    }
    if !config.is_empty() {
        page.section("configuration", "Configuration, host and plan", "config", &config);
    }
    if !notes.is_empty() {
        let list: String = notes.iter().map(|n| format!("<li>{}</li>", esc(n))).collect();
        page.section("notes", "Notes on this report", "notes", &format!("<ul>{list}</ul>\n"));
    }
    document(report, &page)
}

/// The whole HTML document around the sections.
fn document(report: &Value, page: &Page) -> String {
    let title = report["scenario"]["name"].as_str().unwrap_or("loadgen run");
    let toc: String = page.toc.iter().map(|(id, t)| format!("<a href=\"#{id}\">{}</a>", esc(t))).collect();
    let version = report["loadgen_version"].as_str().map(|v| format!(" {}", esc(v))).unwrap_or_default();
    let schema = report["schema_version"].as_u64().map(|v| format!(", report schema {v}")).unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"loadgen{version}\">\n\
         <title>{} – loadgen report</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n{}\
         <nav class=\"toc\" aria-label=\"sections\">{toc}</nav>\n{}\
         <footer>Rendered by loadgen{version} from report.json{schema}. Every figure is the run's own; \
         docs/metrics.md says what each means.</footer>\n</main>\n</body>\n</html>\n",
        esc(title),
        header(report),
        page.body
    )
}

/// Title, description and the facts of the run.
fn header(report: &Value) -> String {
    let scenario = &report["scenario"];
    let title = scenario["name"].as_str().unwrap_or("loadgen run");
    let interrupted = if report["interrupted"].as_bool() == Some(true) {
        "<span class=\"badge interrupted\">interrupted</span>"
    } else {
        ""
    };
    let mut s = format!(
        "<header class=\"run\"><div class=\"eyebrow\">loadgen report</div><h1>{}{interrupted}</h1>\n",
        esc(title)
    );
    if let Some(d) = scenario["description"].as_str() {
        s.push_str(&format!("<p class=\"description\">{}</p>\n", esc(d)));
    }
    let mut meta: Vec<(String, String)> = Vec::new();
    let targets: Vec<&str> =
        report["config"]["targets"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if let Some(t) = scenario["target"].as_str() {
        meta.push(("target".into(), t.into()));
    } else if !targets.is_empty() {
        let label = if targets.len() == 1 { "target" } else { "targets" };
        meta.push((label.into(), targets.join(", ")));
    }
    if let Some(f) = scenario["file"].as_str() {
        meta.push(("scenario file".into(), f.into()));
    }
    if let Some(t) = report["started_unix_s"].as_u64() {
        meta.push(("started".into(), utc(t)));
    }
    if let Some(d) = report["duration_s"].as_f64() {
        meta.push(("duration".into(), seconds(d)));
    }
    if let Some(n) = report["config"]["connections"].as_f64() {
        meta.push(("connections".into(), count(n)));
    }
    if let Some(w) = report["config"]["workers"].as_f64() {
        meta.push(("workers".into(), count(w)));
    }
    if let Some(h) = report["host"]["hostname"].as_str() {
        meta.push(("host".into(), h.into()));
    }
    s.push_str("<div class=\"meta\">");
    for (k, v) in meta {
        s.push_str(&format!("<span>{} <b>{}</b></span>", esc(&k), esc(&v)));
    }
    s.push_str("</div></header>\n");
    s
}

/// The verdict badge and what it rests on.
fn verdict(report: &Value, notes: &mut Vec<String>) -> String {
    let (word, class) = match report["verdict"].as_str() {
        Some("pass") => ("PASS", "verdict-pass"),
        Some("fail") => ("FAIL", "verdict-fail"),
        Some("invalid") => ("INVALID", "verdict-invalid"),
        _ => {
            notes.push("The report has no verdict (`verdict` is missing or not pass, fail or invalid).".into());
            ("NO VERDICT", "verdict-unknown")
        }
    };
    let checks: Vec<&Value> = report["checks"].as_array().into_iter().flatten().collect();
    let failed = checks.iter().filter(|c| c["passed"].as_bool() != Some(true)).count();
    let mut sentence = match (checks.len(), failed) {
        (0, _) => "The run had no checks.".to_string(),
        (n, 0) => format!("All {n} check{} held.", if n == 1 { "" } else { "s" }),
        (n, f) => format!("{f} of {n} check{} did not hold.", if n == 1 { "" } else { "s" }),
    };
    let because: Vec<&str> =
        report["invalid_because"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if word == "INVALID" {
        sentence.push_str(
            " The run is invalid: the generator was saturated or a check had no data, so its numbers partly measure loadgen, not the target.",
        );
    }
    let mut s = format!(
        "<div class=\"verdict-row\"><div id=\"verdict\" class=\"{class}\">{word}</div><div class=\"verdict-text\">{}",
        esc(&sentence)
    );
    if report["interrupted"].as_bool() == Some(true) {
        s.push_str("<span class=\"muted\">Interrupted: the report covers the part that ran.</span>");
    }
    let aborted = &report["aborted"];
    if aborted.is_object() {
        let at = aborted["at_s"].as_f64().map(|a| format!(" in second {a:.0}")).unwrap_or_default();
        s.push_str(&format!(
            "<span class=\"muted\">Aborted by check “{}”{at}: {}</span>",
            esc(aborted["check"].as_str().unwrap_or("?")),
            esc(aborted["detail"].as_str().unwrap_or(""))
        ));
    }
    s.push_str("</div></div>\n");
    if !because.is_empty() {
        let items: String = because.iter().map(|b| format!("<li>{}</li>", esc(b))).collect();
        s.push_str(&format!("<ul class=\"invalid-list\" aria-label=\"why the run is invalid\">{items}</ul>\n"));
    }
    s
}

/// One key figure: label, value, an optional line under it, and whether it is bad news.
struct KeyFigure {
    label: &'static str,
    value: String,
    sub: String,
    bad: bool,
}

fn key(label: &'static str, value: String, sub: String, bad: bool) -> KeyFigure {
    KeyFigure { label, value, sub, bad }
}

/// The run's headline counts, in groups; `None` when it has none of them.
fn key_figures(report: &Value, lines: &[Value]) -> Option<String> {
    let mut groups: Vec<(&str, Vec<KeyFigure>)> = Vec::new();
    let c = &report["connections"];
    if c.is_object() {
        let mut g = Vec::new();
        let n = |k: &str| c[k].as_f64();
        let attempted = n("attempted").unwrap_or(0.0);
        for (label, k) in
            [("attempted", "attempted"), ("established", "established"), ("failed", "failed"), ("dropped", "dropped")]
        {
            let Some(v) = n(k) else { continue };
            let share = if matches!(k, "failed" | "dropped") && attempted > 0.0 && v > 0.0 {
                format!("{} of attempts", percent(v / attempted))
            } else {
                String::new()
            };
            g.push(key(label, count(v), share, matches!(k, "failed" | "dropped") && v > 0.0));
        }
        if let Some(v) = n("peak_open") {
            g.push(key("peak open", count(v), String::new(), false));
        }
        if let Some(v) = n("reconnected") {
            let sub = n("reconnect_attempts").map(|a| format!("{} attempts", count(a))).unwrap_or_default();
            g.push(key("reconnected", count(v), sub, false));
        }
        if let Some(v) = n("reconnect_gave_up") {
            g.push(key("gave up reconnecting", count(v), String::new(), v > 0.0));
        }
        groups.push(("Connections", g));
    }
    let m = &report["messages"];
    if m.is_object() {
        let mut g = Vec::new();
        for (label, k, bad_when_positive) in [
            ("sent", "sent", false),
            ("received", "received", false),
            ("answered", "answered", false),
            ("unanswered", "unanswered", true),
            ("late", "late", true),
            ("lost", "lost", true),
            ("not sent", "not_sent", true),
            ("pushes received", "pushes_received", false),
        ] {
            let Some(v) = m[k].as_f64() else { continue };
            if !bad_when_positive && v == 0.0 && !matches!(k, "sent" | "received") {
                continue;
            }
            g.push(key(label, count(v), String::new(), bad_when_positive && v > 0.0));
        }
        groups.push(("Messages", g));
    }
    let mut t = Vec::new();
    // Only with message traffic (sends or pushes): a run whose only messages are the
    // replies to its connections' set-up has no rate worth a mean.
    let traffic = m["sent"].as_f64().unwrap_or(0.0) + m["pushes_received"].as_f64().unwrap_or(0.0) > 0.0;
    if let Some((mean, n, busiest)) = throughput(lines).filter(|_| traffic) {
        t.push(key("received/s", rate(mean.round()), format!("mean of {n} s with traffic"), false));
        t.push(key("busiest second", rate(busiest), "messages received".into(), false));
        let bytes_in: f64 = lines.iter().filter_map(|l| l["messages"]["bytes_received"].as_f64()).sum();
        let bytes_out: f64 = lines.iter().filter_map(|l| l["messages"]["bytes_sent"].as_f64()).sum();
        t.push(key("payload bytes", bytes(bytes_in), format!("received · {} sent", bytes(bytes_out)), false));
    }
    if !t.is_empty() {
        groups.push(("Throughput", t));
    }
    let gen_ = &report["generator"];
    let mut g = Vec::new();
    if let Some(cpu) = gen_["cpu_s"].as_f64() {
        let per_million = report["messages"]["received"].as_f64().filter(|r| *r > 0.0).map(|r| cpu / r * 1e6);
        let sub = per_million.map(|p| format!("{} CPU-s per million received", sig3(p))).unwrap_or_default();
        g.push(key("generator CPU", cpu_seconds(cpu), sub, false));
    }
    if let Some(rss) = gen_["peak_rss_bytes"].as_f64() {
        g.push(key("generator peak RSS", bytes(rss), String::new(), false));
    }
    if let Some(cpu) = report["scenario"]["target_cpu_s"].as_f64() {
        g.push(key("target CPU", cpu_seconds(cpu), "embedded target".into(), false));
    }
    if let Some(sat) = gen_["saturated"].as_bool() {
        let n = gen_["saturated_seconds"].as_array().map_or(0, Vec::len);
        let (value, sub) = if sat {
            ("saturated", format!("in {n} second{}", if n == 1 { "" } else { "s" }))
        } else {
            ("kept up", "never saturated".into())
        };
        g.push(key("generator", value.into(), sub, sat));
    }
    if !g.is_empty() {
        groups.push(("Cost and health", g));
    }
    groups.retain(|(_, g)| !g.is_empty());
    if groups.is_empty() {
        return None;
    }
    let mut s = String::from("<div class=\"figure-groups\">");
    for (title, figures) in groups {
        s.push_str(&format!(
            "<div class=\"figure-group\"><div class=\"group-title\">{}</div><div class=\"figures\">",
            esc(title)
        ));
        for f in figures {
            s.push_str(&format!(
                "<div class=\"figure{}\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"sub\">{}</div></div>",
                if f.bad { " bad" } else { "" },
                esc(f.label),
                esc(&f.value),
                esc(&f.sub)
            ));
        }
        s.push_str("</div></div>\n");
    }
    s.push_str("</div>\n");
    Some(s)
}

/// CPU time: `0.43 CPU-s`.
fn cpu_seconds(s: f64) -> String {
    format!("{} CPU-s", count((s * 100.0).round() / 100.0))
}

/// Received messages per second as the end-of-run summary takes it: the mean over the
/// seconds with traffic, leaving out the first and last of them when there are three
/// or more (traffic starts and stops within them). (mean, seconds averaged, busiest).
fn throughput(lines: &[Value]) -> Option<(f64, u64, f64)> {
    let mut seconds: Vec<(u64, f64, f64)> = lines
        .iter()
        .filter_map(|l| {
            let m = &l["messages"];
            Some((l["second"].as_u64()?, m["sent"].as_f64().unwrap_or(0.0), m["received"].as_f64().unwrap_or(0.0)))
        })
        .collect();
    seconds.sort_by_key(|s| s.0);
    let busy = |s: &&(u64, f64, f64)| s.1 + s.2 > 0.0;
    let first = seconds.iter().find(busy)?.0;
    let last = seconds.iter().rev().find(busy)?.0;
    let (from, to) = if last - first >= 2 { (first + 1, last - 1) } else { (first, last) };
    let received: f64 = seconds.iter().filter(|s| (from..=to).contains(&s.0)).map(|s| s.2).sum();
    let busiest = seconds.iter().map(|s| s.2).fold(0.0, f64::max);
    let n = to - from + 1;
    Some((received / n as f64, n, busiest))
}

/// Refusals by status, close codes, drops by cause and errors by kind.
fn breakdowns(report: &Value) -> String {
    let c = &report["connections"];
    let mut s = String::new();
    if let Some(t) = tables::refusals(report) {
        s.push_str(&format!("<h3>Upgrades refused</h3>\n{t}"));
    }
    if let Some(t) = tables::by_kind("close-codes", "close code", &c["close_codes"]) {
        s.push_str(&format!("<h3>Close codes of server closes</h3>\n{t}"));
    }
    if let Some(t) = tables::by_kind("drops", "cause", &c["dropped_by_cause"]) {
        s.push_str(&format!("<h3>Drops by cause</h3>\n{t}"));
    }
    if let Some(t) = tables::by_kind("errors", "error kind", &report["errors"]) {
        s.push_str(&format!("<h3>Errors by kind</h3>\n{t}"));
    }
    s
}
