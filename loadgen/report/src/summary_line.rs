//! The one-line machine summary of `loadgen run --quiet`: a single JSON object on
//! stdout, for CI scripts (`loadgen run … --quiet | jq -e '.verdict == "pass"'`).
//!
//! Keys: `verdict` (`pass`, `fail`, `invalid`), `exit_code` (as the process exits),
//! `interrupted`, `duration_s`, `connections` (`attempted`, `established`, `failed`,
//! `dropped`), `messages` (`sent`, `received`, `lost`, `late`, `unanswered`),
//! `p99_us` (the p99 of every latency metric that had samples), `checks` (`total`,
//! `failed`), `failed_checks` (their names), `saturated` and `files` (the paths
//! written). A section the report does not have is absent, never zero. This module
//! reads the report document; it measures and judges nothing.

use serde_json::{Map, Value, json};

/// The summary line (no trailing newline) of report document `report`, exiting with
/// `exit_code`, having written `files` (kind → path, e.g. `report` → DIR/report.json).
pub fn render(report: &Value, exit_code: u8, files: &[(&str, String)]) -> String {
    let mut line = Map::new();
    line.insert("verdict".into(), report["verdict"].clone());
    line.insert("exit_code".into(), json!(exit_code));
    line.insert("interrupted".into(), report["interrupted"].clone());
    line.insert("duration_s".into(), report["duration_s"].clone());
    let pick = |section: &Value, keys: &[&str]| -> Option<Value> {
        let picked: Map<String, Value> = keys
            .iter()
            .filter_map(|&k| section.get(k).filter(|v| v.is_number()).map(|v| (k.to_string(), v.clone())))
            .collect();
        (!picked.is_empty()).then_some(Value::Object(picked))
    };
    if let Some(c) = pick(&report["connections"], &["attempted", "established", "failed", "dropped"]) {
        line.insert("connections".into(), c);
    }
    if let Some(m) = pick(&report["messages"], &["sent", "received", "lost", "late", "unanswered"]) {
        line.insert("messages".into(), m);
    }
    if let Some(lat) = report["latency_us"].as_object() {
        let p99: Map<String, Value> = lat
            .iter()
            .filter_map(|(k, v)| v.get("p99").filter(|p| p.is_u64()).map(|p| (k.clone(), p.clone())))
            .collect();
        if !p99.is_empty() {
            line.insert("p99_us".into(), Value::Object(p99));
        }
    }
    if let Some(checks) = report["checks"].as_array() {
        let failed: Vec<&Value> = checks.iter().filter(|c| c["passed"].as_bool() != Some(true)).collect();
        line.insert("checks".into(), json!({"total": checks.len(), "failed": failed.len()}));
        line.insert("failed_checks".into(), failed.iter().map(|c| c["name"].clone()).collect());
    }
    if let Some(saturated) = report["generator"]["saturated"].as_bool() {
        line.insert("saturated".into(), json!(saturated));
    }
    let files: Map<String, Value> = files.iter().map(|(k, p)| ((*k).to_string(), json!(p))).collect();
    line.insert("files".into(), Value::Object(files));
    line.retain(|_, v| !v.is_null());
    Value::Object(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_what_the_report_has_and_nothing_it_lacks() {
        let report = json!({
            "verdict": "fail", "interrupted": false, "duration_s": 4.5,
            "connections": {"attempted": 10, "established": 9, "failed": 1, "dropped": 0, "refused": {"429": {}}},
            "latency_us": {"connect": {"p99": 250, "count": 9}, "message_rtt": {"p99": 1200, "count": 90}},
            "checks": [{"name": "a", "passed": true}, {"name": "no failures", "passed": false}],
            "generator": {"saturated": false},
        });
        let line = render(&report, 1, &[("report", "out/report.json".into())]);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["connections"], json!({"attempted": 10, "established": 9, "failed": 1, "dropped": 0}));
        assert!(v.get("messages").is_none(), "no messages section, no zeros");
        assert_eq!(v["p99_us"], json!({"connect": 250, "message_rtt": 1200}));
        assert_eq!(v["checks"], json!({"total": 2, "failed": 1}));
        assert_eq!(v["failed_checks"], json!(["no failures"]));
        assert_eq!(v["saturated"], false);
        assert_eq!(v["files"]["report"], "out/report.json");
        let bare: Value = serde_json::from_str(&render(&json!({}), 3, &[])).unwrap();
        assert_eq!(bare, json!({"exit_code": 3, "files": {}}));
    }
}
