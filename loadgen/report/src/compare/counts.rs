//! The counted rows of a comparison: throughput (messages per second, connections
//! established, peak open) and every error class, absolute and per million messages.
//! report.json leaves a section out when nothing happened in it (`errors` without
//! errors, `messages` when nothing was sent or received), so a count missing beside a
//! section the other run has is a true 0; a rate needs the run's `duration_s` and is
//! absent without it. It reads the two documents only.

use serde_json::Value;

use super::text::{count, per_million, rate, signed_pct};
use super::{Figure, Row, Section, Status, Thresholds};

/// Appends the throughput rows and the notes on runs of different length or shape.
pub(super) fn throughput(
    old: &Value,
    new: &Value,
    thresholds: &Thresholds,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let (od, nd) = (duration(old), duration(new));
    if let (Some(od), Some(nd)) = (od, nd)
        && (od - nd).abs() > 0.02 * od.max(nd)
    {
        notes.push(format!(
            "the runs lasted {od:.2} s (OLD) and {nd:.2} s (NEW): per-second rates cover different shares of \
             ramp-up, hold and ramp-down"
        ));
    }
    let differences = config_differences(old, new);
    if !differences.is_empty() {
        notes.push(format!("configured differently: {}", differences.join("; ")));
    }
    let has_messages = old["messages"].is_object() || new["messages"].is_object();
    if has_messages {
        for (key, label) in [("received", "messages received/s"), ("sent", "messages sent/s")] {
            let per_s = |doc: &Value, d: Option<f64>| {
                let n = section_count(doc, "messages", key)?;
                d.map(|d| Figure::PerSecond(n as f64 / d))
            };
            rows.push(drop_row(label, per_s(old, od), per_s(new, nd), thresholds));
        }
    }
    if old["connections"].is_object() || new["connections"].is_object() {
        for key in ["established", "peak_open"] {
            let c = |doc: &Value| section_count(doc, "connections", key).map(Figure::Count);
            rows.push(drop_row(&format!("connections.{key}"), c(old), c(new), thresholds));
        }
    }
}

/// `duration_s` when positive.
fn duration(doc: &Value) -> Option<f64> {
    doc["duration_s"].as_f64().filter(|d| *d > 0.0)
}

/// `doc.section.key`: the number; 0 when the whole section is absent (nothing of it
/// happened); `None` when the section is there without it.
fn section_count(doc: &Value, section: &str, key: &str) -> Option<u64> {
    match &doc[section] {
        Value::Null => Some(0),
        s => s[key].as_u64(),
    }
}

fn drop_row(metric: &str, old: Option<Figure>, new: Option<Figure>, thresholds: &Thresholds) -> Row {
    let (o, n) = (old.as_ref().and_then(Figure::number), new.as_ref().and_then(Figure::number));
    let row = Row::new(Section::Throughput, metric, old, new);
    let t = thresholds.max_throughput_drop_pct;
    let (o, n) = match (o, n) {
        (Some(o), Some(n)) => (o, n),
        (Some(_), None) => return row.judged_as(Status::OnlyOld, format!("{metric}: NEW lacks it or its duration_s")),
        (None, Some(_)) => return row.judged_as(Status::OnlyNew, format!("{metric}: OLD lacks it or its duration_s")),
        (None, None) => return row.judged_as(Status::Same, "neither run can tell"),
    };
    let show = |v: f64| if metric.ends_with("/s") { rate(v) } else { count(v as u64) };
    let values = format!("{metric} {} → {}", show(o), show(n));
    if o == n {
        return row.judged_as(Status::Same, format!("{metric} unchanged"));
    }
    if o == 0.0 {
        return row.judged_as(Status::Changed, format!("{values}: OLD had none"));
    }
    let change = (n - o) / o * 100.0;
    let values = format!("{values} ({})", signed_pct(change));
    if -change > t {
        row.judged_as(Status::Regressed, format!("{values}: a drop of more than the {t}% allowed"))
    } else if change > t {
        row.judged_as(Status::Improved, format!("{values}: up by more than {t}%"))
    } else {
        row.judged_as(Status::WithinNoise, format!("{values}: within the {t}% allowed"))
    }
}

/// Settings whose difference changes what the runs measure.
const CONFIG_KEYS: [&str; 9] = [
    "protocol",
    "connections",
    "connect_rate",
    "hold_s",
    "workers",
    "traffic",
    "ping_interval_s",
    "reply_timeout_s",
    "think_time_s",
];

fn config_differences(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let shown = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_string(),
        other => other.to_string(),
    };
    for key in CONFIG_KEYS {
        let (o, n) = (&old["config"][key], &new["config"][key]);
        if o != n {
            out.push(format!("{key} {} → {}", shown(o), shown(n)));
        }
    }
    let (o, n) = (&old["scenario"]["name"], &new["scenario"]["name"]);
    if o != n {
        out.push(format!("scenario {} → {}", shown(o), shown(n)));
    }
    out
}

/// Every error class of a run: (report path, count), counts above 0.
fn error_classes(doc: &Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut push = |path: String, v: &Value| {
        if let Some(n) = v.as_u64().filter(|n| *n > 0) {
            out.push((path, n));
        }
    };
    let c = &doc["connections"];
    for key in ["failed", "dropped", "reconnect_gave_up"] {
        push(format!("connections.{key}"), &c[key]);
    }
    for (cause, n) in c["dropped_by_cause"].as_object().into_iter().flatten() {
        push(format!("connections.dropped_by_cause.{cause}"), n);
    }
    for (status, r) in c["refused"].as_object().into_iter().flatten() {
        push(format!("connections.refused.{status}"), &r["count"]);
    }
    for (kind, n) in doc["errors"].as_object().into_iter().flatten() {
        push(format!("errors.{kind}"), n);
    }
    for key in ["lost", "late", "unanswered", "not_sent", "duplicated", "reordered", "reply_timeouts"] {
        push(format!("messages.{key}"), &doc["messages"][key]);
    }
    out
}

/// The messages a run carried, the base of its error rates: the larger of sent and
/// received (echo traffic sends as many as it receives; a push run only receives).
fn message_base(doc: &Value) -> Option<u64> {
    let m = &doc["messages"];
    let base = m["sent"].as_u64()?.max(m["received"].as_u64()?);
    (base > 0).then_some(base)
}

/// Appends a row for every error class either run has.
pub(super) fn errors(old: &Value, new: &Value, thresholds: &Thresholds, rows: &mut Vec<Row>) {
    let (oc, nc) = (error_classes(old), error_classes(new));
    let mut names: Vec<&String> = oc.iter().chain(nc.iter()).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    let (ob, nb) = (message_base(old), message_base(new));
    let find = |list: &[(String, u64)], name: &str| list.iter().find(|(n, _)| n == name).map_or(0, |&(_, c)| c);
    for name in names {
        let (o, n) = (find(&oc, name), find(&nc, name));
        rows.push(error_row(name, o, n, ob, nb, thresholds));
    }
}

fn error_row(name: &str, o: u64, n: u64, ob: Option<u64>, nb: Option<u64>, thresholds: &Thresholds) -> Row {
    let mut row = Row::new(Section::Errors, name, Some(Figure::Count(o)), Some(Figure::Count(n)));
    let scale = |c: u64, base: Option<u64>| base.map(|b| c as f64 * 1e6 / b as f64);
    row.old_per_million = scale(o, ob);
    row.new_per_million = scale(n, nb);
    let t = thresholds.max_error_increase_per_million;
    if o == 0 {
        let why = format!("{name}: a new error class in NEW ({})", with_rate(n, row.new_per_million));
        return row.judged_as(Status::Regressed, why);
    }
    if n == 0 {
        let why = format!("{name}: none in NEW (OLD {})", with_rate(o, row.old_per_million));
        return row.judged_as(Status::Improved, why);
    }
    let values = format!("{name} {} → {}", with_rate(o, row.old_per_million), with_rate(n, row.new_per_million));
    match (row.old_per_million, row.new_per_million) {
        (Some(op), Some(np)) => {
            let grown = np - op;
            if grown > t {
                let allowed = if t > 0.0 { format!("more than the {} allowed", per_million(t)) } else { "any".into() };
                row.judged_as(Status::Regressed, format!("{values}: the rate grew by {allowed}"))
            } else if -grown > t {
                row.judged_as(Status::Improved, format!("{values}: the rate fell"))
            } else if grown == 0.0 {
                row.judged_as(Status::Same, format!("{values}: the same rate"))
            } else {
                let within = format!("{values}: within the {} allowed", per_million(t));
                row.judged_as(Status::WithinNoise, within)
            }
        }
        // Without messages in both runs there is no rate: any growth of the count counts.
        _ if n > o => row.judged_as(Status::Regressed, format!("{values}: more of them, and no messages to scale by")),
        _ if n < o => row.judged_as(Status::Improved, format!("{values}: fewer of them")),
        _ => row.judged_as(Status::Same, format!("{values}: the same count")),
    }
}

fn with_rate(c: u64, pm: Option<f64>) -> String {
    match pm {
        Some(pm) => format!("{}, {}", count(c), per_million(pm)),
        None => count(c),
    }
}
