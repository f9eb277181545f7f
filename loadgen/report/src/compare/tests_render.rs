//! The renderings of a comparison: the text table's order and alignment, the HTML
//! page's escaping and self-containment, the JSON form's absent values.

use serde_json::json;

use super::tests::{exponential, report};
use super::*;

fn regressed_pair() -> (Value, Value) {
    let old = report(&exponential(100_000, 1_000.0, 1.0));
    let mut new = report(&exponential(100_000, 1_000.0, 1.3));
    new["errors"] = json!({"server_closed_tcp": 2});
    (old, new)
}

#[test]
fn text_lists_the_regressions_first_then_an_aligned_table() {
    let (old, new) = regressed_pair();
    let text = compare(&old, &new, &Thresholds::default()).unwrap().with_labels("runs/a", "runs/b").text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "OLD: runs/a (pass, 10.00 s, loadgen 0.1.0)");
    let listed = lines.iter().position(|l| l.starts_with("regressions (4):")).expect(&text);
    let header = lines.iter().position(|l| l.starts_with("metric ")).expect(&text);
    assert!(listed < header, "{text}");
    assert!(lines[listed + 1].starts_with("  message_rtt p50 "), "{text}");
    assert!(lines[listed + 4].starts_with("  errors.server_closed_tcp: a new error class"), "{text}");
    // Every table row puts its status in the header's column.
    let status_at = lines[header].chars().count() - "status".len();
    let rows: Vec<&&str> =
        lines[header..].iter().filter(|l| l.ends_with(" REGRESSED") || l.ends_with(" same")).collect();
    assert!(rows.len() >= 5, "{text}");
    for l in rows {
        let col: String = l.chars().take(status_at).collect();
        assert_eq!(col.chars().count(), status_at, "{l}");
        let rest: String = l.chars().skip(status_at).collect();
        assert!(rest.starts_with("REGRESSED") || rest.starts_with("same"), "{l:?} in\n{text}");
    }
    assert!(text.trim_end().ends_with("result: REGRESSED (4 regressions)"), "{text}");
    let row = lines[header..].iter().find(|l| l.trim_start().starts_with("message_rtt p99 ")).unwrap();
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells.len(), 6, "{row}");
    assert!(cells[3].starts_with('+') && cells[3].ends_with('%'), "change: {row}");
    assert!(cells[4].contains(" → ") && cells[4].matches('–').count() == 2, "both intervals: {row}");
}

#[test]
fn html_is_self_contained_escaped_and_colour_coded() {
    let (old, mut new) = regressed_pair();
    new["checks"][0]["name"] = json!("<script>alert('x')</script> & co");
    let html = compare(&old, &new, &Thresholds::default()).unwrap().with_labels("a<b", "\"new\"").html();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://"),
        "no script, no network"
    );
    assert!(!html.contains("<link") && !html.contains("src="), "nothing loaded");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"), "check name escaped");
    assert!(html.contains("a&lt;b") && html.contains("&quot;new&quot;"), "labels escaped");
    assert!(html.contains("<td class=\"regressed\">REGRESSED</td>"), "colour-coded status");
    assert!(html.contains(".regressed{background:#fde2e1"), "its colour is inline");
    assert!(html.contains("<h2>Regressions (4)</h2>"));
    assert!(html.contains("<td>message_rtt p99</td>"));
}

#[test]
fn json_leaves_out_what_a_run_lacks() {
    let (old, mut new) = regressed_pair();
    new.as_object_mut().unwrap().remove("duration_s");
    let v = compare(&old, &new, &Thresholds::default()).unwrap().to_json();
    assert_eq!(v["regressed"], json!(true));
    assert_eq!(v["regressions"], json!(4));
    assert_eq!(v["thresholds"]["percentiles"], json!(["p50", "p99", "p999"]));
    assert_eq!(v["new"].get("duration_s"), None);
    let rows = v["rows"].as_array().unwrap();
    let rate = rows.iter().find(|r| r["metric"] == "messages received/s").unwrap();
    assert_eq!(rate["old"], json!(10_000.0), "100,000 in 10 s");
    assert_eq!(rate.get("new"), None, "no duration, no rate: absent, not 0");
    assert_eq!(rate["status"], "only_old");
    let p99 = rows.iter().find(|r| r["metric"] == "message_rtt p99").unwrap();
    assert_eq!(p99["status"], "regressed");
    assert_eq!(p99["unit"], "us");
    assert!(p99["old_ci"]["low"].is_u64() && p99["new_ci"]["high"].is_u64(), "{p99}");
    let err = rows.iter().find(|r| r["metric"] == "errors.server_closed_tcp").unwrap();
    assert_eq!((err["old"].clone(), err["new"].clone()), (json!(0), json!(2)));
    assert_eq!(err["new_per_million"], json!(20.0));
}
