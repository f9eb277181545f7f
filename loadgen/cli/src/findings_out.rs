//! The findings of a scenario run (report.json `findings`, most severe first) as lines
//! after the summary: what was found and its evidence, so that a terminal shows what
//! held and what is missing without opening the report. Formats only; the judge
//! (`loadgen_scenario::judge`) draws the findings.

use std::io::Write;

use serde_json::Value;

/// Writes `doc`'s findings, if any: one line each, severity first, then its evidence
/// and the seconds it covers.
pub fn write(w: &mut dyn Write, doc: &Value) {
    let Some(findings) = doc["findings"].as_array().filter(|f| !f.is_empty()) else { return };
    let _ = writeln!(w, "findings");
    for f in findings {
        let _ = writeln!(w, "  {}", line(f));
    }
}

fn line(f: &Value) -> String {
    let severity = f["severity"].as_str().unwrap_or("info");
    let mut text = format!("{severity:<7} {}", f["title"].as_str().unwrap_or("?"));
    if let Some(evidence) = f["evidence"].as_str().filter(|e| !e.is_empty()) {
        text.push_str(" — ");
        text.push_str(evidence);
    }
    match (f["from_s"].as_f64(), f["to_s"].as_f64()) {
        (Some(a), Some(b)) if (b - a).abs() < 1e-9 => text.push_str(&format!(" (at {a:.1} s)")),
        (Some(a), Some(b)) => text.push_str(&format!(" ({a:.1}–{b:.1} s)")),
        _ => {}
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn findings_read_as_one_line_each_with_their_evidence_and_time() {
        let doc = json!({ "findings": [
            { "severity": "error", "title": "defence missing: Origin check", "evidence": "observed 0, expected 10" },
            { "severity": "info", "title": "timeline: kill_worker", "evidence": "", "from_s": 3.0, "to_s": 3.0 },
            { "severity": "warning", "title": "drops", "evidence": "12 dropped", "from_s": 3.0, "to_s": 5.0 },
        ]});
        let mut out = Vec::new();
        super::write(&mut out, &doc);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "findings\n  error   defence missing: Origin check — observed 0, expected 10\n  info    timeline: \
             kill_worker (at 3.0 s)\n  warning drops — 12 dropped (3.0–5.0 s)\n"
        );
        let mut none = Vec::new();
        super::write(&mut none, &json!({ "findings": [] }));
        assert!(none.is_empty());
    }
}
