//! `loadgen run --metrics-addr`: the live Prometheus endpoint scraped while a real run
//! goes on and after it ended (`--metrics-linger`), its figures held against the
//! run's report.json. One small bounded run against `loadgen serve --mode echo`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::progress::{Server, loadgen, run_args};

/// `GET /metrics` on `addr`: (content type, body); `None` when nothing answers.
fn scrape(addr: SocketAddr) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: loadgen\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ctype =
        head.lines().find_map(|l| l.strip_prefix("Content-Type: ").or_else(|| l.strip_prefix("content-type: ")))?;
    Some((ctype.to_string(), body.to_string()))
}

/// The value of the sample `name` (with its labels, exactly as exposed).
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_addr_serves_the_run_live_and_its_final_figures() {
    let server = Server::start();
    let out = std::env::temp_dir().join(format!("loadgen-it-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut child = loadgen()
        .args(run_args(&server.url, &out))
        .args(["--progress", "plain", "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "3s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen run starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(url) = line.trim().strip_prefix("metrics: http://") {
            addr = url.strip_suffix("/metrics").and_then(|a| a.parse::<SocketAddr>().ok());
            break;
        }
        line.clear();
    }
    let addr = addr.unwrap_or_else(|| panic!("no `metrics:` line on stderr (last: {line:?})"));
    // Drain the rest of stderr so the child never blocks on it.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut saw_open, mut last) = (false, None);
    while Instant::now() < deadline {
        if let Some((ctype, body)) = scrape(addr) {
            assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8", "{body}");
            let version = format!("loadgen_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
            assert_eq!(sample(&body, &version), Some(1.0), "{body}");
            saw_open |= sample(&body, "loadgen_connections_open") == Some(50.0);
            let finished = sample(&body, "loadgen_run_finished") == Some(1.0);
            last = Some(body);
            if finished {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = last.expect("the endpoint answered");
    assert_eq!(sample(&body, "loadgen_run_finished"), Some(1.0), "the end is exposed while lingering: {body}");
    assert!(saw_open, "50 open connections were seen live");
    let status = child.wait().unwrap();
    let rest = drain.join().unwrap();
    assert!(status.success(), "exit {status:?}: {rest}");
    assert!(rest.contains("metrics: serving the final figures"), "{rest}");
    assert!(scrape(addr).is_none(), "the port closes when loadgen exits");

    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(sample(&body, "loadgen_run_verdict{verdict=\"pass\"}"), Some(1.0), "{body}");
    let received = r["messages"]["received"].as_f64().unwrap();
    assert!(received > 0.0);
    assert_eq!(sample(&body, "loadgen_messages_received_total"), Some(received), "{body}");
    assert_eq!(sample(&body, "loadgen_connections_established_total"), Some(50.0), "{body}");
    let rtt = r["latency_us"]["message_rtt"]["count"].as_f64().unwrap();
    assert_eq!(sample(&body, "loadgen_latency_seconds_count{metric=\"message_rtt\"}"), Some(rtt), "{body}");
    assert_eq!(
        sample(&body, "loadgen_latency_seconds_bucket{le=\"+Inf\",metric=\"message_rtt\"}"),
        Some(rtt),
        "{body}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
