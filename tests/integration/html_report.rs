//! report.html in a real browser: a small `loadgen run` (100 connections, a 2 s hold,
//! echo at 300 messages/s) against `loadgen serve --mode echo` on port 0, its page
//! rendered from the run's report.json and timeseries.jsonl, then opened in headless
//! Chromium driven over the DevTools protocol (blocking tungstenite on a std TcpStream):
//! the verdict as the page shows it, as many non-empty `svg.chart` elements as the
//! run's data implies, no console error, exception or error log entry, nothing
//! fetched; and a full-page screenshot written to
//! `<target>/test-output/html_report/report.png` for people to look at.
//!
//! Without `chromium` on PATH the test is skipped with a note, or fails when
//! `LOADGEN_REQUIRE_INTEROP=1` (`cargo xtask test` installs it). Every wait is bounded;
//! Chromium runs in its own process group, killed with its user-data dir on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::report_schema::Serve;

/// The most the run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// The most Chromium may take to start, and the page to load.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most one DevTools command may take to be answered.
const CDP_TIMEOUT: Duration = Duration::from_secs(30);
/// Viewport of the page: a laptop's width.
const VIEWPORT: (u32, u32) = (1280, 900);

/// `chromium` on PATH, or why not.
fn chromium() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .ok_or_else(|| "`chromium` is not on PATH".to_string())
}

/// Chromium's path; `None` (after a note) when it is missing and not required.
fn require_chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    let missing = found.as_ref().err().map(|why| format!("{why} (Debian package chromium)"));
    if crate::servers::needed_or_skip("chromium", missing) { found.ok() } else { None }
}

/// Where this test leaves its page and screenshot: `<target>/test-output/html_report`.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-output/html_report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium with its DevTools endpoint; the whole process group is killed
/// and the profile removed on drop.
struct Chromium {
    child: Child,
    profile: PathBuf,
    /// `host:port` of the DevTools HTTP and WebSocket endpoint.
    devtools: String,
}

impl Chromium {
    fn start(program: &Path) -> Chromium {
        let profile = std::env::temp_dir().join(format!("loadgen-it-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(program)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args([
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(Ok(url.trim().to_string()));
                }
                seen.push(line);
                if seen.len() > 200 {
                    seen.remove(0);
                }
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        let mut browser = Chromium { child, profile, devtools: String::new() };
        let url = match rx.recv_timeout(BROWSER_TIMEOUT) {
            Ok(Ok(url)) => url,
            Ok(Err(stderr)) => panic!("chromium exited before its DevTools endpoint was up; stderr:\n{stderr}"),
            Err(_) => panic!("chromium did not print its DevTools endpoint within {BROWSER_TIMEOUT:?}"),
        };
        // ws://127.0.0.1:PORT/devtools/browser/ID
        browser.devtools = url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string();
        browser
    }

    /// The WebSocket URL of the page target (the `about:blank` tab), from /json/list.
    fn page_target(&self) -> String {
        let deadline = Instant::now() + BROWSER_TIMEOUT;
        loop {
            let list = http_get_json(&self.devtools, "/json/list");
            let page = list.as_array().into_iter().flatten().find(|t| t["type"] == "page");
            if let Some(url) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                return url.to_string();
            }
            assert!(Instant::now() < deadline, "no page target in /json/list: {list}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // SAFETY: the group was created for this child (process_group(0)): only its
        // processes are signalled.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// GET `path` from `host:port` over plain HTTP/1.1; the body (`Content-Length` long:
/// Chromium keeps the connection open) as JSON.
fn http_get_json(addr: &str, path: &str) -> Value {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to DevTools at {addr}: {e}"));
    s.set_read_timeout(Some(CDP_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
                .and_then(Result::ok);
            if n == 0 || length.is_some_and(|len| body.len() >= len) {
                return serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"));
            }
        }
        assert!(n > 0, "GET {path}: connection closed mid-response: {}", String::from_utf8_lossy(&response));
    }
}

/// One DevTools session over a WebSocket: commands answered in order, events kept.
struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: Vec<Value>,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let addr = url.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        let stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(CDP_TIMEOUT)).unwrap();
        let (ws, _) = tungstenite::client(url, stream).unwrap_or_else(|e| panic!("DevTools handshake with {url}: {e}"));
        // From now on short reads, so that every wait checks its own deadline.
        ws.get_ref().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Cdp { ws, next_id: 0, events: Vec::new() }
    }

    /// The next message, or a panic naming `what` once `deadline` has passed.
    fn next_message(&mut self, deadline: Instant, what: &str) -> Value {
        loop {
            assert!(Instant::now() < deadline, "DevTools: {what} not answered in time");
            match self.ws.read() {
                Ok(Message::Text(text)) => return serde_json::from_str(text.as_str()).unwrap(),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("DevTools connection failed waiting for {what}: {e}"),
            }
        }
    }

    /// Sends a command and returns its result (events meanwhile are kept).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(command)).unwrap_or_else(|e| panic!("DevTools: cannot send {method}: {e}"));
        let deadline = Instant::now() + CDP_TIMEOUT;
        loop {
            let msg = self.next_message(deadline, method);
            if msg["id"].as_u64() == Some(id) {
                assert!(msg["error"].is_null(), "DevTools {method} failed: {}", msg["error"]);
                return msg["result"].clone();
            }
            self.events.push(msg);
        }
    }

    /// Waits for event `method` (one already received counts).
    fn wait_event(&mut self, method: &str, timeout: Duration) -> Value {
        if let Some(e) = self.events.iter().find(|e| e["method"] == method) {
            return e.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.next_message(deadline, method);
            self.events.push(msg.clone());
            if msg["method"] == method {
                return msg;
            }
        }
    }

    /// The errors the page reported: console errors, uncaught exceptions, error log
    /// entries (a blocked fetch is one).
    fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") => e["params"]["type"] == "error",
                Some("Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .map(Value::to_string)
            .collect()
    }
}

/// How many charts the page must hold for this run's documents: connections whenever
/// there are seconds, then one for each thing they measured, and the spectrum when
/// the report has histograms. Counted here from the data, independently of the renderer.
fn charts_implied(report: &Value, lines: &[Value]) -> usize {
    let any = |f: &dyn Fn(&Value) -> bool| lines.iter().any(f);
    let positive = |v: &Value| v.as_f64().is_some_and(|n| n > 0.0);
    let mut latency_metrics: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["latency_us"].as_object())
        .flat_map(|m| m.iter().filter(|(_, v)| positive(&v["count"])).map(|(k, _)| k.as_str()))
        .collect();
    latency_metrics.sort_unstable();
    latency_metrics.dedup();
    let over_time = usize::from(!lines.is_empty())
        + usize::from(any(&|l| positive(&l["messages"]["sent"]) || positive(&l["messages"]["received"])))
        + latency_metrics.len()
        + usize::from(any(&|l| l["errors"].as_object().is_some_and(|e| e.values().any(positive))))
        + usize::from(any(&|l| positive(&l["schedule_lag_us"]["count"]) || positive(&l["connect_lag_us"]["count"])))
        + usize::from(any(&|l| l["target_cpu_s"].is_number()));
    let spectrum = report["histograms"].as_object().is_some_and(|h| h.values().any(|m| positive(&m["count"])));
    over_time + usize::from(spectrum)
}

#[test]
fn the_report_page_renders_in_a_real_browser() {
    let Some(program) = require_chromium_or_skip() else { return };
    let out = std::env::temp_dir().join(format!("loadgen-it-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let server = Serve::start(&["--mode", "echo"]);
    let mut run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .args(crate::LENIENT)
        .args(["--target", &server.url, "--connections", "100", "--duration", "2s", "--echo", "--rate", "300"])
        .args(["--quiet", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen run starts");
    let deadline = Instant::now() + RUN_TIMEOUT;
    while run.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("loadgen run did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stderr = String::new();
    run.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(run.wait().unwrap().code(), Some(0), "the run passes; stderr:\n{stderr}");
    drop(server);

    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let lines = loadgen_report::timeseries::read(&out.join("timeseries.jsonl")).expect("timeseries.jsonl written");
    assert!(lines.len() >= 3, "{} seconds", lines.len());
    let html = loadgen_report::html::render(&report, &lines);
    let written = std::fs::read_to_string(out.join("report.html")).unwrap_or_default();
    assert_eq!(written, html, "report.html as loadgen run wrote it is the page its files render to");
    let page = output_dir().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let expected_charts = charts_implied(&report, &lines);
    // Connections, messages, connect, handshake and message_rtt latency, lag, spectrum.
    assert!(expected_charts >= 7, "the run measured too little: {expected_charts} charts");

    let browser = Chromium::start(&program);
    let mut cdp = Cdp::connect(&browser.page_target());
    for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(domain, json!({}));
    }
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false}),
    );
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let navigated = cdp.call("Page.navigate", json!({"url": url}));
    assert!(navigated["errorText"].is_null(), "navigation failed: {navigated}");
    cdp.wait_event("Page.loadEventFired", BROWSER_TIMEOUT);

    let probe = "JSON.stringify({\
        verdict: document.getElementById('verdict')?.textContent ?? null,\
        charts: document.querySelectorAll('svg.chart').length,\
        empty_charts: [...document.querySelectorAll('svg.chart')].filter(s => {\
            const r = s.getBoundingClientRect(); return !(r.width > 0 && r.height > 0); }).length,\
        resources: performance.getEntriesByType('resource').length,\
        title: document.title })";
    let result = cdp.call("Runtime.evaluate", json!({"expression": probe, "returnByValue": true}));
    let seen: Value =
        serde_json::from_str(result["result"]["value"].as_str().expect("the probe returns a string")).unwrap();
    assert_eq!(seen["verdict"], "PASS", "{seen}");
    assert_eq!(seen["charts"], expected_charts, "{seen}");
    assert_eq!(seen["empty_charts"], 0, "every chart has a size: {seen}");
    assert_eq!(seen["resources"], 0, "the page fetched something: {seen}");
    assert_eq!(seen["title"], "loadgen run – loadgen report");

    let metrics = cdp.call("Page.getLayoutMetrics", json!({}));
    let size = if metrics["cssContentSize"].is_object() { &metrics["cssContentSize"] } else { &metrics["contentSize"] };
    let (width, height) = (size["width"].as_f64().unwrap(), size["height"].as_f64().unwrap());
    let shot = cdp.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true,
               "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
    );
    use base64::Engine as _;
    let png =
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("screenshot data")).unwrap();
    let errors = cdp.errors();
    assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
    let path = output_dir().join("report.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.canonicalize().unwrap_or(path.clone()).display());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let dimension = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(dimension(16), width.round() as u32, "as wide as the page");
    assert_eq!(dimension(20), height.round() as u32, "as high as the page");
    // The viewport's width less a scrollbar at most.
    assert!(width > f64::from(VIEWPORT.0) - 24.0 && height > 2_000.0, "{width}×{height}: the page is laid out");
    assert!(png.len() > 50_000, "{} bytes: a real picture, not a blank one", png.len());

    // The same page as it prints (@media print), for people to look at.
    cdp.call("Emulation.setEmulatedMedia", json!({"media": "print"}));
    let print = cdp.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
    let print =
        base64::engine::general_purpose::STANDARD.decode(print["data"].as_str().expect("screenshot data")).unwrap();
    assert_eq!(&print[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::write(output_dir().join("report-print.png"), &print).unwrap();
    let errors = cdp.errors();
    assert!(errors.is_empty(), "the page reported errors in print media:\n{}", errors.join("\n"));
    drop(browser);
    let _ = std::fs::remove_dir_all(&out);
}
