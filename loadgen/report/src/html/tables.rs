//! The tables of the HTML report, each from one section of report.json: the checks
//! (failures first), the whole-run latency percentiles with the 95% confidence
//! interval of each p99, the phases, the scenario's timeline, the findings, counts by
//! kind (refusals by status, close codes, drops by cause, errors), and any object of
//! the report (configuration, scenario, host, plan) as key–value rows.
//!
//! Every function returns `None` (or nothing) when its section is absent or empty: a
//! table of zeros would look like a measurement. Every string is escaped here.

use serde_json::{Map, Value};

use super::charts::{metric_name, ordered_metrics};
use super::text::{bytes, count, esc, micros, percent, scalar};
use crate::buckets::{Buckets, Z_95};

/// A `<table>` with a header row; `cells` are HTML already.
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let classed: Vec<(&str, &[String])> = rows.iter().map(|r| ("", r.as_slice())).collect();
    classed_table(class, head, &classed)
}

/// As [`table`], each row with a class of its own (empty: none).
fn classed_table(class: &str, head: &[&str], rows: &[(&str, &[String])]) -> String {
    let mut s = format!("<div class=\"table-wrap\"><table class=\"{class}\"><thead><tr>");
    for h in head {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>");
    for (row_class, row) in rows {
        if row_class.is_empty() {
            s.push_str("<tr>");
        } else {
            s.push_str(&format!("<tr class=\"{row_class}\">"));
        }
        for cell in *row {
            s.push_str(&format!("<td>{cell}</td>"));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>\n");
    s
}

/// A number cell.
fn num(v: &Value) -> String {
    format!("<span class=\"num\">{}</span>", esc(&scalar(v)))
}

/// The checks, failed ones first (highlighted), each with what was observed.
pub fn checks(report: &Value) -> Option<String> {
    let list = report["checks"].as_array()?;
    if list.is_empty() {
        return Some("<p class=\"muted\">The run had nothing to check.</p>\n".into());
    }
    let mut ordered: Vec<&Value> = list.iter().collect();
    ordered.sort_by_key(|c| c["passed"].as_bool() == Some(true));
    let with_detail = list.iter().any(|c| c["detail"].is_string() || c["defence"].is_string());
    let mut head = vec!["", "check", "observed", "phase"];
    if with_detail {
        head.push("detail");
    }
    let rows: Vec<(&str, Vec<String>)> = ordered
        .into_iter()
        .map(|c| {
            let passed = c["passed"].as_bool() == Some(true);
            let mark = match (passed, c["observed"].is_null()) {
                (true, _) => "<span class=\"mark pass\">✓ held</span>",
                (false, true) => "<span class=\"mark invalid\">? no data</span>",
                (false, false) => "<span class=\"mark fail\">✗ failed</span>",
            };
            let name = c["name"].as_str().unwrap_or("unnamed check");
            let expr = c["expr"].as_str().unwrap_or("");
            let check = if expr.is_empty() || expr == name {
                format!("<code>{}</code>", esc(name))
            } else {
                format!("{}<br><code class=\"muted\">{}</code>", esc(name), esc(expr))
            };
            let observed = match c["observed"].as_f64() {
                Some(v) if expr.contains("latency_us") || expr.contains("_lag") => {
                    format!(
                        "<span class=\"num\">{}</span> <span class=\"muted\">({})</span>",
                        esc(&count(v)),
                        esc(&micros(v))
                    )
                }
                Some(v) => format!("<span class=\"num\">{}</span>", esc(&count(v))),
                None => "<span class=\"muted\">no data</span>".into(),
            };
            let mut row = vec![mark.to_string(), check, observed, esc(c["phase"].as_str().unwrap_or("run"))];
            if with_detail {
                let detail: Vec<String> = ["detail", "defence"]
                    .iter()
                    .filter_map(|k| Some(format!("<span class=\"muted\">{k}:</span> {}", esc(c[*k].as_str()?))))
                    .collect();
                row.push(detail.join("<br>"));
            }
            (if passed { "check-pass" } else { "check-fail" }, row)
        })
        .collect();
    let classed: Vec<(&str, &[String])> = rows.iter().map(|(c, r)| (*c, r.as_slice())).collect();
    Some(classed_table("checks", &head, &classed))
}

/// The whole run's latency percentiles per metric (the generator's lags last), with
/// the 95% confidence interval of the p99 from the histogram's sample count.
pub fn latency(report: &Value, histograms: &[(String, Buckets)]) -> Option<String> {
    let mut metrics: Vec<(String, &Value)> = Vec::new();
    if let Some(map) = report["latency_us"].as_object() {
        for key in ordered_metrics(map.keys().map(String::as_str).collect()) {
            metrics.push((key.to_string(), &map[key]));
        }
    }
    for (key, field) in [("schedule_lag", "schedule_lag_us"), ("connect_lag", "connect_lag_us")] {
        if report["generator"][field].is_object() {
            metrics.push((key.to_string(), &report["generator"][field]));
        }
    }
    metrics.retain(|(_, m)| m["count"].as_u64().unwrap_or(0) > 0);
    if metrics.is_empty() {
        return None;
    }
    let by_key = |key: &str| histograms.iter().find(|(k, _)| k == key).map(|(_, b)| b);
    let cell = |v: &Value| match v.as_f64() {
        Some(us) => format!("<span class=\"num\">{}</span>", esc(&micros(us))),
        None => "<span class=\"muted\">–</span>".into(),
    };
    let rows: Vec<Vec<String>> = metrics
        .iter()
        .map(|(key, m)| {
            let interval = match by_key(key) {
                Some(b) => {
                    let i = b.confidence(0.99, Z_95);
                    let low = i.low.map_or_else(|| "…".to_string(), |v| micros(v as f64));
                    let high = i.high.map_or_else(|| "… (too few samples)".to_string(), |v| micros(v as f64));
                    format!("<span class=\"num muted\">{} – {}</span>", esc(&low), esc(&high))
                }
                None => "<span class=\"muted\">–</span>".into(),
            };
            vec![
                format!("{} <code class=\"muted\">{}</code>", esc(&metric_name(key)), esc(key)),
                num(&m["count"]),
                cell(&m["p50"]),
                cell(&m["p90"]),
                format!("<strong>{}</strong>", cell(&m["p99"])),
                interval,
                cell(&m["p999"]),
                cell(&m["max"]),
            ]
        })
        .collect();
    Some(table("latency", &["metric", "samples", "p50", "p90", "p99", "p99, 95% interval", "p99.9", "max"], &rows))
}

/// The named phases with their counts and the p99 of each latency metric in them.
pub fn phases(report: &Value) -> Option<String> {
    let list = report["phases"].as_array().filter(|l| !l.is_empty())?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let to = p["to_s"].as_f64().map_or_else(|| "end".to_string(), |t| format!("{t:.0} s"));
            let from = p["from_s"].as_f64().map_or_else(|| "?".to_string(), |t| format!("{t:.0} s"));
            let c = &p["connections"];
            let m = &p["messages"];
            let p99: Vec<String> = p["latency_us"]
                .as_object()
                .map(|map| {
                    ordered_metrics(map.keys().map(String::as_str).collect())
                        .into_iter()
                        .filter_map(|k| Some(format!("{k} {}", micros(map[k]["p99"].as_f64()?))))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                format!("<strong>{}</strong>", esc(p["name"].as_str().unwrap_or("?"))),
                format!("{} – {}", esc(&from), esc(&to)),
                num(&p["seconds"]),
                opt_num(&c["attempted"]),
                opt_num(&c["established"]),
                opt_num(&c["failed"]),
                opt_num(&c["dropped"]),
                opt_num(&m["sent"]),
                opt_num(&m["received"]),
                esc(&p99.join(" · ")),
            ]
        })
        .collect();
    Some(table(
        "phases",
        &[
            "phase",
            "seconds",
            "collected",
            "attempted",
            "established",
            "failed",
            "dropped",
            "sent",
            "received",
            "p99 by metric",
        ],
        &rows,
    ))
}

/// A number cell, or a dash when absent (not a zero).
fn opt_num(v: &Value) -> String {
    if v.is_null() { "<span class=\"muted\">–</span>".into() } else { num(v) }
}

/// The scenario's timeline as carried out.
pub fn timeline(report: &Value) -> Option<String> {
    let list = report["faults"].as_array().filter(|l| !l.is_empty())?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            let at = |k: &str| {
                f[k].as_f64().map_or_else(|| "<span class=\"muted\">not applied</span>".into(), |v| format!("{v:.3} s"))
            };
            let ok = match f["ok"].as_bool() {
                Some(true) => "<span class=\"mark pass\">✓ ok</span>",
                Some(false) => "<span class=\"mark fail\">✗ failed</span>",
                None => "<span class=\"muted\">–</span>",
            };
            vec![
                at("at_s"),
                at("applied_s"),
                format!("<code>{}</code>", esc(f["action"].as_str().unwrap_or("?"))),
                esc(&scalar(&f["detail"])),
                ok.into(),
                format!("<code class=\"wrap\">{}</code>", esc(&scalar(&f["outcome"]))),
            ]
        })
        .collect();
    Some(table("timeline", &["due", "applied", "action", "detail", "accepted", "outcome"], &rows))
}

/// What the run found, most severe first as the report lists it.
pub fn findings(report: &Value) -> Option<String> {
    let list = report["findings"].as_array()?;
    if list.is_empty() {
        return Some("<p class=\"muted\">Nothing was found.</p>\n".into());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            let severity = f["severity"].as_str().unwrap_or("info");
            let class = match severity {
                "error" => "fail",
                "warning" => "warn",
                _ => "info",
            };
            let when = match (f["from_s"].as_f64(), f["to_s"].as_f64()) {
                (Some(a), Some(b)) if (b - a).abs() < 0.0005 => format!("{a:.2} s"),
                (Some(a), Some(b)) => format!("{a:.2} – {b:.2} s"),
                (Some(a), None) => format!("from {a:.2} s"),
                _ => "whole run".into(),
            };
            vec![
                format!("<span class=\"badge {class}\">{}</span>", esc(severity)),
                format!("<strong>{}</strong>", esc(&scalar(&f["title"]))),
                esc(&scalar(&f["evidence"])),
                format!("<span class=\"nowrap\">{}</span>", esc(&when)),
            ]
        })
        .collect();
    Some(table("findings", &["severity", "finding", "evidence", "when"], &rows))
}

/// Counts by kind, largest first, with each one's share; `None` when empty.
pub fn by_kind(class: &str, what: &str, map: &Value) -> Option<String> {
    let map = map.as_object().filter(|m| !m.is_empty())?;
    let mut entries: Vec<(&String, f64)> = map.iter().map(|(k, v)| (k, v.as_f64().unwrap_or(0.0))).collect();
    entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let total: f64 = entries.iter().map(|e| e.1).sum();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|(k, n)| {
            let share = if total > 0.0 { percent(n / total) } else { "–".into() };
            vec![
                format!("<code>{}</code>", esc(k)),
                format!("<span class=\"num\">{}</span>", esc(&count(*n))),
                esc(&share),
            ]
        })
        .collect();
    Some(table(class, &[what, "count", "share"], &rows))
}

/// Upgrades refused with an HTTP status, by status.
pub fn refusals(report: &Value) -> Option<String> {
    let map = report["connections"]["refused"].as_object().filter(|m| !m.is_empty())?;
    let rows: Vec<Vec<String>> = map
        .iter()
        .map(|(status, r)| {
            let retry = match (r["retry_after_min_s"].as_f64(), r["retry_after_max_s"].as_f64()) {
                (Some(lo), Some(hi)) => format!("{} – {} s", count(lo), count(hi)),
                _ => "–".into(),
            };
            vec![
                format!("<code>HTTP {}</code>", esc(status)),
                num(&r["count"]),
                opt_num(&r["retry_after_count"]),
                esc(&retry),
            ]
        })
        .collect();
    Some(table("refusals", &["status", "refused", "with Retry-After", "Retry-After range"], &rows))
}

/// The plan's warnings, each with its fix.
pub fn warnings(report: &Value) -> Option<String> {
    let list = report["plan"]["warnings"].as_array().filter(|l| !l.is_empty())?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            ["what", "found", "needed"]
                .iter()
                .map(|k| esc(&scalar(&w[*k])))
                .chain([format!("<code class=\"wrap\">{}</code>", esc(&scalar(&w["fix"])))])
                .collect()
        })
        .collect();
    Some(table("warnings", &["what", "found", "needed", "fix"], &rows))
}

/// An object of the report as key–value pairs: nested objects flattened with dotted
/// keys, arrays of objects as small tables; `skip` keys left out. `None` when it is
/// not an object or has nothing left.
pub fn key_values(value: &Value, skip: &[&str]) -> Option<String> {
    let map = value.as_object()?;
    let mut rows = Vec::new();
    flatten("", map, skip, &mut rows, 0);
    if rows.is_empty() {
        return None;
    }
    // A grid of pairs; a nested table or a long text takes the whole width.
    let mut s = String::from("<dl class=\"kv\">");
    for (k, v) in rows {
        let long = v.starts_with("<div class=\"table-wrap\">") || v.chars().count() > 64;
        let wide = if long { " class=\"wide\"" } else { "" };
        s.push_str(&format!("<div{wide}><dt><code>{}</code></dt><dd>{v}</dd></div>", esc(&k)));
    }
    s.push_str("</dl>\n");
    Some(s)
}

fn flatten(prefix: &str, map: &Map<String, Value>, skip: &[&str], rows: &mut Vec<(String, String)>, depth: usize) {
    const MAX_ROWS: usize = 32;
    for (k, v) in map {
        if depth == 0 && skip.contains(&k.as_str()) {
            continue;
        }
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) if depth < 4 && !inner.is_empty() => flatten(&key, inner, skip, rows, depth + 1),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                let mut columns: Vec<&str> = Vec::new();
                for item in items {
                    for c in item.as_object().into_iter().flatten().map(|(c, _)| c.as_str()) {
                        if !columns.contains(&c) {
                            columns.push(c);
                        }
                    }
                }
                let mut body: Vec<Vec<String>> = items
                    .iter()
                    .take(MAX_ROWS)
                    .map(|item| columns.iter().map(|c| esc(&scalar(&item[*c]))).collect())
                    .collect();
                if items.len() > MAX_ROWS {
                    body.push(vec![format!("… {} more", items.len() - MAX_ROWS)]);
                }
                rows.push((key, table("inner", &columns, &body)));
            }
            _ => {
                let mut text = esc(&scalar(v));
                if k.ends_with("_bytes")
                    && let Some(b) = v.as_f64()
                {
                    text.push_str(&format!(" <span class=\"muted\">({})</span>", esc(&bytes(b))));
                }
                rows.push((key, text));
            }
        }
    }
}
