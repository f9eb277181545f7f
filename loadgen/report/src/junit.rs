//! `--junit FILE`: the run's verdict as JUnit XML, the format CI systems (GitLab,
//! Jenkins, GitHub test reporters) show as test results.
//!
//! One `<testsuite>` per run, named after the scenario (or `loadgen run`): each check of
//! the report (`checks[]`) is a `<testcase>` (classname `loadgen.<suite>.<phase>`), a
//! check that did not hold has a `<failure>` with what was observed; one more case,
//! `the generator kept up`, fails when the run is `invalid` (the generator was
//! saturated: `invalid_because`), and a run that was interrupted or aborted by a check
//! gets an `<error>` case saying so. The suite's `time` is the run's duration and its
//! `timestamp` the run's start (UTC). This module reads the report document; it judges
//! nothing itself.

use std::fmt::Write;

use serde_json::Value;

/// Renders the JUnit XML of report document `report`.
pub fn render(report: &Value) -> String {
    let suite = report["scenario"]["name"].as_str().unwrap_or("loadgen run");
    let mut cases: Vec<Case> = Vec::new();
    for check in report["checks"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let name = check["name"].as_str().unwrap_or("unnamed check");
        let expr = check["expr"].as_str().unwrap_or("");
        let phase = check["phase"].as_str().unwrap_or("run");
        let failure = (check["passed"].as_bool() != Some(true)).then(|| {
            let observed = match check["observed"].as_f64() {
                Some(v) => format!("observed {}", number(v)),
                None => "no data".to_string(),
            };
            let message = if expr.is_empty() || expr == name { observed } else { format!("{observed}: {expr}") };
            let mut body = format!("check: {name}\nexpr: {expr}\nphase: {phase}\n{message}\n");
            for key in ["detail", "defence"] {
                if let Some(text) = check[key].as_str() {
                    let _ = writeln!(body, "{key}: {text}");
                }
            }
            Outcome { kind: "failure", message, body }
        });
        cases.push(Case { class: phase.to_string(), name: name.to_string(), outcome: failure });
    }
    let invalid: Vec<&str> =
        report["invalid_because"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let saturated = report["verdict"].as_str() == Some("invalid") || !invalid.is_empty();
    cases.push(Case {
        class: "generator".into(),
        name: "the generator kept up".into(),
        outcome: saturated.then(|| Outcome {
            kind: "failure",
            message: "the generator was saturated: the run is invalid".into(),
            body: invalid.iter().map(|w| format!("{w}\n")).collect(),
        }),
    });
    if let Some(why) = report["aborted"]["detail"].as_str() {
        let check = report["aborted"]["check"].as_str().unwrap_or("a check");
        cases.push(Case {
            class: "run".into(),
            name: "the run completed".into(),
            outcome: Some(Outcome { kind: "error", message: format!("aborted by {check}"), body: format!("{why}\n") }),
        });
    } else if report["interrupted"].as_bool() == Some(true) {
        cases.push(Case {
            class: "run".into(),
            name: "the run completed".into(),
            outcome: Some(Outcome {
                kind: "error",
                message: "interrupted: the report covers the part that ran".into(),
                body: String::new(),
            }),
        });
    }
    let failures = cases.iter().filter(|c| c.outcome.as_ref().is_some_and(|o| o.kind == "failure")).count();
    let errors = cases.iter().filter(|c| c.outcome.as_ref().is_some_and(|o| o.kind == "error")).count();
    let time = report["duration_s"].as_f64().map(|d| format!("{d:.3}")).unwrap_or_else(|| "0".into());
    let stamp = report["started_unix_s"].as_u64().map(iso8601_utc);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"loadgen\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time}\">",
        cases.len()
    );
    let _ = write!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time}\"",
        escape(suite),
        cases.len()
    );
    if let Some(stamp) = stamp {
        let _ = write!(x, " timestamp=\"{stamp}\"");
    }
    x.push_str(">\n    <properties>\n");
    for (key, value) in [
        ("verdict", report["verdict"].as_str()),
        ("loadgen_version", report["loadgen_version"].as_str()),
        ("scenario_file", report["scenario"]["file"].as_str()),
    ] {
        if let Some(value) = value {
            let _ = writeln!(x, "      <property name=\"{key}\" value=\"{}\"/>", escape(value));
        }
    }
    x.push_str("    </properties>\n");
    for case in &cases {
        let class = format!("loadgen.{}.{}", class_word(suite), class_word(&case.class));
        let _ = write!(x, "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"", escape(&class), escape(&case.name));
        match &case.outcome {
            None => x.push_str("/>\n"),
            Some(o) => {
                let _ = writeln!(
                    x,
                    ">\n      <{kind} message=\"{}\" type=\"{kind}\">{}</{kind}>\n    </testcase>",
                    escape(&o.message),
                    escape(&o.body),
                    kind = o.kind
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

struct Case {
    class: String,
    name: String,
    outcome: Option<Outcome>,
}

struct Outcome {
    kind: &'static str,
    message: String,
    body: String,
}

/// A value as the checks print it: integers without a fraction.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// A name as one dotted classname word: letters, digits, `-` and `_`; others `_`.
fn class_word(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// XML text and attribute escaping; characters XML 1.0 cannot hold become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS` (UTC; JUnit timestamps carry no zone).
pub fn iso8601_utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let rem = unix_s % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests;
