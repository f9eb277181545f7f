use serde_json::{Value, json};

use super::*;

fn report() -> Value {
    json!({
        "verdict": "fail",
        "loadgen_version": "0.1.0",
        "started_unix_s": 1_796_683_343u64,
        "duration_s": 9.999958,
        "interrupted": false,
        "scenario": {"name": "worker-failover", "file": "scenarios/worker-failover.toml"},
        "checks": [
            {"name": "the crash cut clients off", "expr": "connections.dropped > 0", "observed": 194.0, "passed": true, "phase": "run"},
            {"name": "recovered <fast> & \"soon\"", "expr": "latency_us.recover.max < 2000000", "observed": 2400000.5, "passed": false, "phase": "hold", "detail": "worker 0's clients"},
            {"name": "delivery p99", "expr": "latency_us.delivery.p99 < 100000", "passed": false, "phase": "run"},
        ],
    })
}

fn parse(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("well-formed XML: {e}\n{xml}"))
}

#[test]
fn each_check_is_a_case_and_failures_say_what_was_observed() {
    let xml = render(&report());
    let doc = parse(&xml);
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(suite.attribute("name"), Some("worker-failover"));
    assert_eq!(suite.attribute("tests"), Some("4"), "three checks and the generator case");
    assert_eq!(suite.attribute("failures"), Some("2"));
    assert_eq!(suite.attribute("errors"), Some("0"));
    assert_eq!(suite.attribute("time"), Some("10.000"));
    assert_eq!(suite.attribute("timestamp"), Some("2026-12-07T22:42:23"));
    let cases: Vec<_> = suite.children().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases[0].attribute("name"), Some("the crash cut clients off"));
    assert_eq!(cases[0].attribute("classname"), Some("loadgen.worker-failover.run"));
    assert!(cases[0].children().all(|c| !c.is_element()), "a passed check has no failure");
    assert_eq!(cases[1].attribute("name"), Some("recovered <fast> & \"soon\""), "names survive escaping");
    assert_eq!(cases[1].attribute("classname"), Some("loadgen.worker-failover.hold"));
    let failure = cases[1].children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("message"), Some("observed 2400000.5: latency_us.recover.max < 2000000"));
    assert!(failure.text().unwrap().contains("detail: worker 0's clients"));
    let no_data = cases[2].children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(no_data.attribute("message"), Some("no data: latency_us.delivery.p99 < 100000"));
    assert_eq!(cases[3].attribute("name"), Some("the generator kept up"));
    assert!(cases[3].children().all(|c| !c.is_element()));
    let property = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
    };
    assert_eq!(property("verdict"), Some("fail"));
    assert_eq!(property("scenario_file"), Some("scenarios/worker-failover.toml"));
}

#[test]
fn an_invalid_run_fails_the_generator_case_and_an_interrupted_one_errors() {
    let mut r = report();
    r["verdict"] = json!("invalid");
    r["invalid_because"] = json!(["second 3: schedule_lag: p99 4000 µs > 1000 µs"]);
    r["interrupted"] = json!(true);
    r["checks"] = json!([]);
    r["scenario"] = Value::Null;
    let xml = render(&r);
    let doc = parse(&xml);
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(suite.attribute("name"), Some("loadgen run"));
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures"), suite.attribute("errors")),
        (Some("2"), Some("1"), Some("1"))
    );
    let generator = doc.descendants().find(|n| n.attribute("name") == Some("the generator kept up")).unwrap();
    let failure = generator.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert!(failure.text().unwrap().contains("schedule_lag: p99 4000 µs"));
    let error = doc.descendants().find(|n| n.has_tag_name("error")).unwrap();
    assert!(error.attribute("message").unwrap().starts_with("interrupted"));
    r["aborted"] = json!({"check": "no drops", "at_s": 4, "detail": "connections.dropped 3 > 0"});
    let xml = render(&r);
    let error =
        parse(&xml).descendants().find(|n| n.has_tag_name("error")).map(|n| n.attribute("message").unwrap().to_owned());
    assert_eq!(error.as_deref(), Some("aborted by no drops"));
}

#[test]
fn hostile_text_cannot_break_the_xml() {
    let mut r = report();
    r["checks"][1]["detail"] = json!("]]></failure><testcase name=\"x\"/>\u{1}\u{7}");
    let xml = render(&r);
    let doc = parse(&xml);
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("testcase")).count(), 4);
    assert!(xml.contains("\u{FFFD}\u{FFFD}"), "control characters replaced");
}

#[test]
fn timestamps_are_utc_civil_dates() {
    assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00");
    assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00");
    assert_eq!(iso8601_utc(1_709_251_199), "2024-02-29T23:59:59");
    assert_eq!(iso8601_utc(4_102_444_800), "2100-01-01T00:00:00");
}
