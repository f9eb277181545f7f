//! Tests of the HTML report against two real reports (testdata/: a flag run with echo
//! traffic and pings, saturated in one second, verdict invalid; the worker-failover
//! scenario, a worker killed at 3 s, verdict pass), hostile strings, missing and
//! malformed sections, and the axes' ticks.

use serde_json::{Value, json};

use super::axis::{Axis, Unit};
use super::charts::{SPECTRUM_TICKS, spectrum_x};
use super::text::{bytes, count, esc, micros, seconds, utc};
use super::*;
use crate::buckets::Buckets;

fn echo() -> Value {
    serde_json::from_str(include_str!("testdata/echo.json")).unwrap()
}

fn failover() -> Value {
    serde_json::from_str(include_str!("testdata/failover.json")).unwrap()
}

/// The report rendered with its completed timeseries lines, as `loadgen run` does.
fn rendered(doc: &Value) -> String {
    render(doc, &crate::timeseries::lines(doc))
}

fn occurrences(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

fn verdict_text(html: &str) -> &str {
    let start = html.find("id=\"verdict\"").expect("a verdict element");
    let text = &html[start..];
    let open = text.find('>').unwrap() + 1;
    let close = text.find("</div>").unwrap();
    &text[open..close]
}

/// The ids of the chart figures, in order.
fn chart_ids(html: &str) -> Vec<&str> {
    html.match_indices("<figure id=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

#[test]
fn the_verdict_is_the_reports() {
    assert_eq!(verdict_text(&rendered(&echo())), "INVALID");
    assert_eq!(verdict_text(&rendered(&failover())), "PASS");
    let mut failed = failover();
    failed["verdict"] = json!("fail");
    failed["checks"][2]["passed"] = json!(false);
    failed["checks"][2]["detail"] = json!("3 gave up");
    let html = rendered(&failed);
    assert_eq!(verdict_text(&html), "FAIL");
    assert!(html.contains("1 of 4 checks did not hold."));
    // The failed check is listed first and highlighted.
    let first_row = &html[html.find("<table class=\"checks\">").unwrap()..];
    let first_row = &first_row[first_row.find("<tbody>").unwrap()..];
    assert!(first_row.starts_with("<tbody><tr class=\"check-fail\">"), "{}", &first_row[..200]);
    assert!(first_row[..first_row.find("</tr>").unwrap()].contains("nobody gave up"));
    assert!(html.contains("3 gave up"));
}

#[test]
fn the_invalid_run_says_why() {
    let html = rendered(&echo());
    assert!(html.contains("class=\"invalid-list\""));
    assert!(html.contains("schedule_lag: p99 above 1000 µs in 1 of 5 s (second 2; worst 1865 µs in second 2)"));
    assert!(!rendered(&failover()).contains("class=\"invalid-list\""));
}

#[test]
fn each_fixture_has_the_charts_its_data_allows() {
    // Echo: connections, messages, latency of connect, handshake, message_rtt and
    // ping_rtt, generator lag, spectrum; no errors, no target CPU.
    let echo_ids = [
        "chart-spectrum",
        "chart-connections",
        "chart-messages",
        "chart-latency-message_rtt",
        "chart-latency-ping_rtt",
        "chart-latency-handshake",
        "chart-latency-connect",
        "chart-lag",
    ];
    // Failover: no traffic but the ready replies, so messages; recover, ready,
    // handshake, connect; errors in second 3; connect lag; the embedded target's CPU.
    let failover_ids = [
        "chart-spectrum",
        "chart-connections",
        "chart-messages",
        "chart-latency-recover",
        "chart-latency-ready",
        "chart-latency-handshake",
        "chart-latency-connect",
        "chart-errors",
        "chart-lag",
        "chart-target-cpu",
    ];
    for (doc, ids) in [(echo(), &echo_ids[..]), (failover(), &failover_ids[..])] {
        // The same from timeseries.jsonl's lines and from the report's own seconds.
        let bare: Vec<Value> = doc["timeseries"].as_array().unwrap().clone();
        for html in [rendered(&doc), render(&doc, &bare)] {
            assert_eq!(chart_ids(&html), ids);
            assert_eq!(occurrences(&html, "<svg class=\"chart\" role=\"img\" aria-label=\""), ids.len());
            assert_eq!(occurrences(&html, "<figcaption>"), ids.len());
        }
    }
}

#[test]
fn without_a_timeseries_only_the_spectrum_is_drawn() {
    for doc in [echo(), failover()] {
        let html = render(&doc, &[]);
        assert_eq!(chart_ids(&html), ["chart-spectrum"]);
        assert_eq!(occurrences(&html, "class=\"chart\""), 1);
        assert!(html.contains("the charts over time are left out"));
    }
    let mut no_histograms = echo();
    no_histograms.as_object_mut().unwrap().remove("histograms");
    let html = render(&no_histograms, &[]);
    assert_eq!(occurrences(&html, "class=\"chart\""), 0);
    assert!(html.contains("no percentile spectrum"));
}

#[test]
fn hostile_strings_render_as_text() {
    let mut doc = failover();
    let script = "<script>alert('x')</script>";
    doc["findings"][0]["title"] = json!(script);
    doc["findings"][1]["evidence"] = json!("\"><img src=x onerror=alert(1)>");
    doc["scenario"]["name"] = json!("<b>bold</b> & co");
    doc["faults"][0]["detail"] = json!("</title><script>1</script>");
    doc["faults"][0]["action"] = json!("<kill>");
    doc["errors"] = json!({"<i>kind</i>": 3});
    doc["timeseries"][3]["errors"] = json!({"<i>kind</i>": 3});
    doc["checks"][0]["name"] = json!("<svg onload=alert(1)>");
    let html = rendered(&doc);
    for raw in [script, "<img", "<b>bold", "<i>kind", "<kill>", "<svg onload", "</title><script>"] {
        assert!(!html.contains(raw), "{raw} is in the page unescaped");
    }
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert!(html.contains(&esc(script)));
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;i&gt;kind&lt;/i&gt;"), "the error kind in the errors table and chart");
}

#[test]
fn nothing_is_fetched_from_anywhere() {
    for doc in [echo(), failover()] {
        let html = rendered(&doc);
        assert!(
            html.contains(&format!(
                "<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">"
            ))
        );
        assert_eq!(occurrences(&html, " src="), 0, "no element loads a source");
        for (i, _) in html.match_indices(" href=\"") {
            assert!(html[i + 7..].starts_with('#'), "a link off the page: {}", &html[i..i + 60]);
        }
        for needle in ["url(", "@import", "<link", "<script", "<iframe", "<img", "http://", "https://"] {
            assert!(!html.contains(needle), "{needle} in the page");
        }
    }
}

#[test]
fn the_spectrum_is_the_histograms() {
    let doc = echo();
    let html = rendered(&doc);
    let attr = |tag: &str, name: &str| -> String {
        let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        tag[start..start + tag[start..].find('"').unwrap()].to_string()
    };
    let circles: Vec<(String, f64, u64)> = html
        .match_indices("<circle ")
        .map(|(i, _)| &html[i..i + html[i..].find('>').unwrap()])
        .filter(|tag| tag.contains("data-metric="))
        .map(|tag| {
            (attr(tag, "data-metric"), attr(tag, "data-q").parse().unwrap(), attr(tag, "data-us").parse().unwrap())
        })
        .collect();
    let metrics = ["message_rtt", "ping_rtt", "handshake", "connect", "schedule_lag", "connect_lag"];
    let mut expected = Vec::new();
    for m in metrics {
        let b = Buckets::of_metric(&doc, m).unwrap().unwrap();
        let spectrum = b.spectrum(SPECTRUM_TICKS);
        assert!(spectrum.len() > 10, "{m}: {} points", spectrum.len());
        expected.extend(spectrum.into_iter().map(|(q, v)| (m.to_string(), q, v)));
    }
    assert_eq!(circles, expected);
    // The maximum sits at the sample count's resolution, right of every other point.
    assert_eq!(spectrum_x(1.0, 2000), 2000f64.log10());
    assert!((spectrum_x(0.99, 2000) - 2.0).abs() < 1e-9);
}

#[test]
fn axes_tick_in_the_unit_of_their_range() {
    let labels = |a: &Axis| a.ticks.iter().map(|t| t.label.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&Axis::linear(400.0, Unit::Count, "")), ["0", "100", "200", "300", "400"]);
    assert_eq!(labels(&Axis::linear(2_345.0, Unit::Count, "")), ["0", "500", "1,000", "1,500", "2,000", "2,500"]);
    assert_eq!(labels(&Axis::linear(12_345.0, Unit::Count, "")), ["0", "5k", "10k", "15k"]);
    assert_eq!(labels(&Axis::linear(0.0, Unit::Count, "")), ["0", "1"], "an all-zero series still has an axis");
    assert_eq!(labels(&Axis::linear(0.39, Unit::Cores, "")), ["0", "0.1", "0.2", "0.3", "0.4"]);
    assert_eq!(
        labels(&Axis::log_micros(150.0, 8_000.0, "")),
        ["100 µs", "200 µs", "500 µs", "1 ms", "2 ms", "5 ms", "10 ms"]
    );
    assert_eq!(labels(&Axis::log_micros(80.0, 2e6, "")), ["10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s"]);
    let t = Axis::time(10.0);
    assert_eq!((t.lo, t.hi), (0.0, 10.0));
    assert_eq!(labels(&t)[..3], ["0 s", "1 s", "2 s"]);
    assert_eq!(
        labels(&Axis::time(600.0)),
        ["0", "1 min", "2 min", "3 min", "4 min", "5 min", "6 min", "7 min", "8 min", "9 min", "10 min"]
    );
    assert_eq!(labels(&Axis::time(7_200.0))[1..3], ["15 min", "30 min"]);
    assert_eq!(labels(&Axis::percentiles(3.45)), ["0%", "50%", "90%", "99%", "99.9%", "99.99%"]);
    // In the page: the echo run's connections axis and its 5 s time axis.
    let html = rendered(&echo());
    let connections = &html[html.find("id=\"chart-connections\"").unwrap()..];
    let connections = &connections[..connections.find("</figure>").unwrap()];
    for label in ["0", "50", "100", "150", "200", "0 s", "1 s", "5 s"] {
        assert!(connections.contains(&format!("\">{label}</text>")), "tick {label}");
    }
}

#[test]
fn phases_and_timeline_events_are_drawn_on_every_time_chart() {
    let html = rendered(&failover());
    let time_charts = chart_ids(&html).len() - 1;
    assert_eq!(occurrences(&html, "<title>phase ramp: 0–1 s</title>"), time_charts);
    assert_eq!(occurrences(&html, "<title>phase hold: 1–9 s</title>"), time_charts);
    let tip = "kill_worker at 3.00 s: worker 0 (ok) → 200 {&quot;faults&quot;:[&quot;crash-worker-at=3.013&quot;],&quot;workers_notified&quot;:2}";
    assert_eq!(occurrences(&html, &format!("<title>{tip}</title>")), time_charts);
    // At 3.000169 s of a 10 s axis 852 px wide from x = 84.
    assert_eq!(occurrences(&html, "class=\"marker-line\" x1=\"339.6\""), time_charts);
    assert!(!rendered(&echo()).contains("class=\"marker-line\" x1="), "the echo run had no timeline");
}

#[test]
fn saturated_seconds_are_shaded_on_the_lag_chart() {
    let html = rendered(&echo());
    let lag = &html[html.find("id=\"chart-lag\"").unwrap()..];
    assert_eq!(occurrences(lag, "<rect class=\"saturated\""), 1);
    assert!(lag.contains("<title>second 2 saturated: schedule_lag: p99 1865 µs &gt; 1000 µs</title>"));
    assert_eq!(occurrences(&rendered(&failover()), "<rect class=\"saturated\""), 0);
}

#[test]
fn a_second_without_samples_is_a_gap_not_a_zero() {
    let second = |s: u64, rtt: Option<u64>| {
        let mut l = json!({"second": s, "connections": {"attempted": 0, "established": 0, "failed": 0, "closed": 0, "open": 5, "peak_open": 5},
                           "messages": {"sent": 10, "received": 10, "bytes_sent": 640, "bytes_received": 640}, "saturated": false});
        if let Some(v) = rtt {
            l["latency_us"] = json!({"message_rtt": {"count": 10, "p50": v, "p90": v, "p99": v, "p999": v, "max": v}});
        }
        l
    };
    let lines = [second(0, Some(300)), second(1, Some(400)), second(2, None), second(3, Some(500))];
    let doc = json!({"verdict": "pass", "checks": [], "messages": {"sent": 40, "received": 40}});
    let html = render(&doc, &lines);
    let chart = &html[html.find("id=\"chart-latency-message_rtt\"").unwrap()..];
    let chart = &chart[..chart.find("</figure>").unwrap()];
    // p50, p99 and max: one line each over seconds 0–1, second 3 alone.
    assert_eq!(occurrences(chart, "<polyline "), 3);
    assert_eq!(occurrences(chart, "<circle "), 9);
    assert!(!chart.contains("second 2:"));
    assert!(html.contains("<title>second 3: p99 500 µs</title>"));
}

#[test]
fn absent_sections_are_left_out() {
    let html = rendered(&echo());
    for id in ["findings", "timeline", "breakdowns", "chart-errors", "chart-target-cpu"] {
        assert!(!html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    let html = rendered(&failover());
    for id in ["findings", "timeline", "phases", "breakdowns"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("<code>server_closed_tcp</code>") && html.contains("<code>eof</code>"));
    // A run without messages: no message figures, no rates chart, no throughput.
    let mut doc = failover();
    doc.as_object_mut().unwrap().remove("messages");
    for l in doc["timeseries"].as_array_mut().unwrap() {
        l["messages"] = json!({"sent": 0, "received": 0, "bytes_sent": 0, "bytes_received": 0});
    }
    let html = rendered(&doc);
    assert!(!html.contains("id=\"chart-messages\""));
    assert!(!html.contains(">Messages</div>") && !html.contains(">Throughput</div>"));
    // Latency percentiles the run did not measure are not in the table.
    assert!(!html.contains("message round trip"));
}

#[test]
fn host_and_configuration_are_listed_whatever_their_keys() {
    let mut doc = echo();
    doc["host"] = json!({"hostname": "box-1", "kernel": "6.12.0", "cpus": 2, "memory_bytes": 8_589_934_592u64, "future_key": {"nested": true}});
    let html = rendered(&doc);
    for text in [
        "<code>kernel</code>",
        "6.12.0",
        "<code>future_key.nested</code>",
        "8,589,934,592 <span class=\"muted\">(8.00 GiB)</span>",
        "host <b>box-1</b>",
    ] {
        assert!(html.contains(text), "{text}");
    }
    assert!(html.contains("<code>traffic</code></dt><dd>Echo { message_size: 64, rate: Total(500.0) }"));
    assert!(
        html.contains("<code>memory.kernel_bytes</code></dt><dd>2,515,904 <span class=\"muted\">(2.40 MiB)</span>")
    );
    assert!(html.contains("sysctl -w net.ipv4.tcp_max_syn_backlog=65535"), "plan warnings with their fix");
}

#[test]
fn a_malformed_document_renders_what_it_can() {
    let junk = [json!(null), json!(7), json!("text"), json!([1, 2]), json!({}), json!({"a": [null]})];
    for j in &junk {
        let html = render(j, std::slice::from_ref(j));
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert_eq!(verdict_text(&html), "NO VERDICT");
    }
    let odd = json!({"verdict": "pass", "checks": 5, "histograms": {"message_rtt": {"buckets": 3}},
                     "phases": [{"name": 1}], "faults": [{"at_s": "x"}], "connections": [], "findings": {}});
    let html = render(&odd, &[json!("x"), json!({"second": "a"}), json!({"second": 0})]);
    assert_eq!(verdict_text(&html), "PASS");
    assert!(html.contains("histogram `message_rtt` left out"));
    assert!(html.contains("2 timeseries line(s) without a `second` were left out."));
    // Extreme numbers: no overflow, no endless axis.
    let huge = json!({"verdict": "pass", "phases": [{"name": "p", "from_s": 1e308}], "faults": [{"at_s": 1e300, "action": "x"}],
                      "latency_us": {"m": {"count": 1, "p50": 1e308, "p99": 0, "max": -5}}});
    let lines = [
        json!({"second": u64::MAX, "connections": {"open": 1e308}, "latency_us": {"m": {"count": 1, "p50": 1e308, "p99": 0.0, "max": -1}}}),
        json!({"second": 0, "messages": {"sent": 1e308, "received": -1}, "errors": {"e": 1e308}}),
    ];
    assert_eq!(verdict_text(&render(&huge, &lines)), "PASS");
    // Every top-level and second-level value of a real report replaced by junk.
    for doc in [echo(), failover()] {
        let lines = crate::timeseries::lines(&doc);
        for (key, value) in doc.as_object().unwrap() {
            let inner: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
            for j in &junk {
                let mut broken = doc.clone();
                broken[key] = j.clone();
                let _ = render(&broken, &lines);
                for k in &inner {
                    let mut broken = doc.clone();
                    broken[key][k] = j.clone();
                    let _ = render(&broken, &lines);
                }
            }
        }
        let mut broken_lines = lines.clone();
        for (i, l) in broken_lines.iter_mut().enumerate() {
            let key = ["connections", "messages", "latency_us", "errors", "schedule_lag_us"][i % 5];
            l[key] = junk[i % junk.len()].clone();
        }
        let _ = render(&doc, &broken_lines);
    }
}

#[test]
fn numbers_are_written_as_the_summary_writes_them() {
    assert_eq!(count(1_234_567.0), "1,234,567");
    assert_eq!(count(12.5), "12.5");
    assert_eq!(count(1.999), "2");
    assert_eq!(count(-1500.0), "-1,500");
    assert_eq!(micros(870.0), "870 µs");
    assert_eq!(micros(1_477.0), "1.48 ms");
    assert_eq!(micros(129_279.0), "129 ms");
    assert_eq!(micros(2_350_000.0), "2.35 s");
    assert_eq!(seconds(4.03259412), "4.03 s");
    assert_eq!(seconds(125.0), "2 min 5 s");
    assert_eq!(bytes(52_117_504.0), "49.7 MiB");
    assert_eq!(bytes(640.0), "640 B");
    assert_eq!(utc(1_796_683_339), "2026-12-07 22:42:19 UTC");
    assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

#[test]
fn the_header_names_the_run() {
    let html = rendered(&failover());
    assert!(html.contains("<title>worker-failover – loadgen report</title>"));
    assert!(html.contains("<h1>worker-failover</h1>"));
    assert!(html.contains("started <b>2026-12-07 22:42:23 UTC</b>"));
    assert!(html.contains("duration <b>10.0 s</b>"));
    let mut doc = echo();
    doc["interrupted"] = json!(true);
    let html = rendered(&doc);
    assert!(html.contains("<h1>loadgen run<span class=\"badge interrupted\">interrupted</span></h1>"));
    assert!(html.contains("target <b>ws://127.0.0.1:42351/</b>"));
}
