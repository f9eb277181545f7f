//! The text of the HTML report: escaping of every string taken from a report document
//! (scenario names, details, error kinds and server answers may hold markup), and how
//! numbers, latencies, durations, sizes and dates are written, the way the end-of-run
//! summary writes them (thousands separators; µs below 1 ms, ms with three significant
//! digits below 1 s, then s; binary sizes).
//!
//! It does not decide what is shown, nor draw anything.

use serde_json::Value;

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by entities: safe as element text and
/// as a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count with thousands separators (`50,000`); a value with a fraction keeps up to
/// two decimals (`12.5`).
pub fn count(n: f64) -> String {
    if !n.is_finite() {
        return "–".into();
    }
    let negative = n < 0.0;
    let n = (n.abs() * 100.0).round() / 100.0;
    let whole = n.trunc();
    let fraction = n - whole;
    let digits = format!("{whole:.0}");
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let mut out = if negative { format!("-{grouped}") } else { grouped };
    if fraction >= 0.005 {
        let decimals = format!("{fraction:.2}");
        let decimals = decimals.trim_start_matches('0').trim_end_matches('0');
        if decimals != "." {
            out.push_str(decimals);
        }
    }
    out
}

/// `x` with three significant digits (`1.48`, `12.5`, `129`).
pub fn sig3(x: f64) -> String {
    let a = x.abs();
    if a >= 99.95 {
        format!("{x:.0}")
    } else if a >= 9.995 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A latency given in µs: `870 µs`, `1.48 ms`, `2.35 s`.
pub fn micros(us: f64) -> String {
    if !us.is_finite() {
        return "–".into();
    }
    if us.abs() < 999.5 {
        format!("{us:.0} µs")
    } else if us.abs() < 999_500.0 {
        format!("{} ms", sig3(us / 1e3))
    } else {
        format!("{} s", sig3(us / 1e6))
    }
}

/// A length of time given in seconds: `4.03 s`, `2 min 5 s`, `1 h 2 min`.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "–".into();
    }
    if s < 1.0 {
        return micros(s * 1e6);
    }
    if s < 120.0 {
        return format!("{} s", sig3(s));
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total % 3600 / 60, total % 60);
    match (h, sec) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{m} min {sec} s"),
        _ => format!("{h} h {m} min"),
    }
}

/// A size in bytes, binary units (1 KiB = 1,024 B).
pub fn bytes(b: f64) -> String {
    if !b.is_finite() {
        return "–".into();
    }
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b.abs() < 1024.0 {
        return format!("{} B", count(b.round()));
    }
    let mut v = b / 1024.0;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{} {}", sig3(v), UNITS[unit])
}

/// Unix seconds as `2026-12-07 22:42:19 UTC`.
pub fn utc(unix_s: u64) -> String {
    format!("{} UTC", crate::junit::iso8601_utc(unix_s).replace('T', " "))
}

/// A JSON scalar as text (strings as they are, `null` as `–`, numbers as counts);
/// an array of scalars joined with commas (at most `ARRAY_SHOWN` items, then how many
/// more); an object or an array of objects as compact JSON. Not escaped.
pub fn scalar(v: &Value) -> String {
    const ARRAY_SHOWN: usize = 16;
    match v {
        Value::Null => "–".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => count(u as f64),
            (_, Some(i), _) => count(i as f64),
            (_, _, Some(f)) if f.abs() < 0.01 && f != 0.0 => format!("{f:.3e}"),
            (_, _, Some(f)) => count(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            if items.is_empty() {
                return "none".into();
            }
            let mut shown: Vec<String> = items.iter().take(ARRAY_SHOWN).map(scalar).collect();
            if items.len() > ARRAY_SHOWN {
                shown.push(format!("… ({} more)", items.len() - ARRAY_SHOWN));
            }
            shown.join(", ")
        }
        other => other.to_string(),
    }
}

/// A per-second rate: `1,234/s`.
pub fn rate(per_s: f64) -> String {
    format!("{}/s", count(per_s))
}

/// A ratio as a percentage with up to two decimals: `0.03%`, `12.5%`.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p != 0.0 && p.abs() < 0.01 {
        return "< 0.01%".into();
    }
    format!("{}%", count(p))
}
