//! Bad input to `loadgen run` is refused before any load (issue 16): exit code 2, one
//! line on stderr starting with `error:` that names the problem and the fix, no panic,
//! and no connection attempted (the target is a listener of ours that must see none).

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use crate::cli::{loadgen, report, serve, stderr, temp_dir};

/// A loopback listener nothing should connect to, and its ws:// URL.
fn silent_target() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

fn assert_nothing_connected(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("a refused run must not connect: {other:?}"),
    }
}

/// Exit 2, exactly one stderr line starting with `error:` and containing `needle`.
fn assert_refused(o: &Output, args: &[&str], needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
}

#[test]
fn bad_run_flags_exit_2_on_one_line_before_any_connection() {
    let (listener, url) = silent_target();
    let out = temp_dir("bad-flags");
    let cases: &[(&[&str], &str)] = &[
        // Sizes.
        (&["--echo", "--message-size", "2000000000"], "larger than --max-message-size 16777216"),
        (
            &["--echo", "--message-size", "1MiB", "--max-message-size", "1KiB"],
            "raise --max-message-size to at least 1048576",
        ),
        (&["--echo", "--message-size", "18446744073709551615"], "the largest message loadgen sends"),
        (&["--echo", "--message-size", "18446744073709551616"], "too large"),
        (&["--echo", "--message-size", "10"], "at least 36 (the probe header)"),
        (&["--echo", "--message-size", "64 parsecs"], "unknown unit"),
        (&["--max-message-size", "0"], "--max-message-size must be at least 1 byte"),
        (&["--max-message-size", "-1"], "is negative"),
        // Headers.
        (&["--header", "Authorization Bearer x"], "has no ':'; write it as 'Name: value'"),
        (&["--header", "Bad Name: x"], "is not a header name"),
        (&["--header", "X-A: one\r\nX-Smuggled: two"], "control character"),
        (&["--header", "Host: evil.example"], "loadgen writes this header itself"),
        (&["--header", "sec-websocket-key: x"], "loadgen writes this header itself"),
        // Durations.
        (&["--duration", "0s"], "--duration must be longer than 0 (e.g. 10s)"),
        (&["--duration", "0"], "--duration must be longer than 0 (e.g. 10s)"),
        (&["--duration", "-1s"], "negative"),
        (&["--duration", "1e400s"], "unknown unit"),
        (&["--duration", "inf"], "is not a duration"),
        (&["--duration", "99999999999999999999s"], "longer than 365 days"),
        (&["--ping-interval", "0s"], "--ping-interval must be at least 1ms"),
        (&["--ping-interval", "1e400s"], "unknown unit"),
        (&["--handshake-timeout", "0s"], "--handshake-timeout must be at least 1ms (default 10s)"),
        (&["--handshake-timeout", "inf"], "is not a duration"),
        (&["--handshake-timeout", "-1s"], "negative"),
        (&["--close-timeout", "0ms"], "--close-timeout must be at least 1ms (default 2s)"),
        (&["--close-timeout", "99999999999999999999h"], "longer than 365 days"),
        // Rates and ramps.
        (&["--connect-rate", "1e-300"], "raise --connect-rate to at least"),
        (&["--connect-rate", "inf"], "--connect-rate must be a positive number"),
        (&["--connect-rate", "-5"], "--connect-rate must be a positive number"),
        (&["--connect-rate", "1e12"], "give at most 1e9"),
        (&["--connections", "4000000000", "--connect-rate", "1"], "would take 127 years to open"),
        (&["--close-rate", "inf"], "--close-rate must be a positive number"),
        (&["--close-rate", "0.001"], "give --close-rate 0.028 or more"),
        (&["--connect-rate", "0.01"], "by default the connect rate"),
        (&["--echo", "--rate", "1e300"], "give at most 1e9"),
        (&["--echo", "--rate", "0.01", "--duration", "1s"], "intends no message at all"),
        (&["--echo", "--rate", "NaN"], "--rate must be a positive number"),
        (&["--echo", "--rate-per-conn", "1e-12"], "give at least 3.2e-8"),
        (&["--echo", "--rate-per-conn", "1e300"], "give at most 10000000"),
        (&["--echo", "--rate-per-conn", "0"], "--rate-per-conn must be a positive number"),
        // Counts.
        (&["--workers", "0"], "--workers"),
        (&["--workers", "5000"], "1..=1024"),
        (&["--echo", "--echo-connections", "500"], "--echo-connections 500 is more than --connections 100"),
        (&["--connections", "0"], "--connections"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["run", "--target", &url, "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        assert_refused(&loadgen(&args), &args, needle);
    }
    assert_nothing_connected(&listener);
    assert!(!out.exists(), "a run refused on its flags writes nothing");
}

/// The run that planned 4 MiB and then grew to 11 GiB (and aborted for larger sizes):
/// 100 connections × 2 GB messages are refused by the memory plan, with the size that fits.
#[test]
fn huge_messages_are_refused_by_the_memory_plan_before_any_connection() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let available_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    if available_kb > 700 << 20 {
        eprintln!("skipped: this host has {} GiB available, enough for 100 × 2 GB messages", available_kb >> 20);
        return;
    }
    let (listener, url) = silent_target();
    let out = temp_dir("huge-messages");
    let args = [
        "run",
        "--target",
        &url,
        "--echo",
        "--message-size",
        "2000000000",
        "--max-message-size",
        "4000000000",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = loadgen(&args);
    assert_refused(&o, &args, "pre-flight refused the run (1 problem): memory:");
    let err = stderr(&o);
    assert!(err.contains("for messages of 2,000,000,000 bytes"), "{err}");
    assert!(err.contains("fix: send smaller messages: at most ") && err.contains("(--message-size)"), "{err}");
    // The same through doctor, which explains it on several lines.
    let d = loadgen(&["doctor", "--connections", "100", "--target", &url, "--message-size", "2G"]);
    assert_eq!(d.status.code(), Some(2), "{}", stderr(&d));
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(text.contains("refused: memory") && text.contains("send smaller messages"), "{text}");
    assert_nothing_connected(&listener);
    assert!(!out.exists(), "refused before the report directory is made");
}

#[test]
fn an_unwritable_out_is_refused_before_the_run() {
    let (listener, url) = silent_target();
    let dir = temp_dir("unwritable-out");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    // Below a regular file (ENOTDIR) and in /proc (no files can be made there): both fail
    // for root too, which ignores permission bits.
    let under_file = file.join("sub");
    for out in [under_file.as_path(), Path::new("/proc/self")] {
        let args = ["run", "--target", &url, "--connections", "3", "--duration", "30s", "--out", out.to_str().unwrap()];
        let o = loadgen(&args);
        let expected = format!("error: cannot write the report into {}: ", out.display());
        assert_refused(&o, &args, &expected);
        assert!(stderr(&o).trim_end().ends_with("(choose another --out)"), "{}", stderr(&o));
    }
    assert!(!under_file.exists());
    assert_nothing_connected(&listener);
}

/// --handshake-timeout reaches the engine: against a server that accepts TCP and never
/// answers the upgrade, connections time out after 300 ms instead of the default 10 s
/// (which would outlast the 1 s hold: `unfinished_at_end`).
#[test]
fn handshake_timeout_flag_is_applied() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut streams = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while streams.len() < 4 && std::time::Instant::now() < until {
            match listener.accept() {
                Ok((s, _)) => streams.push(s),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        // Hold the sockets open (silent) until the client has given up.
        std::thread::sleep(std::time::Duration::from_secs(3));
        streams.len()
    });
    let out = temp_dir("handshake-timeout");
    let o = loadgen(&[
        "run",
        "--lag-threshold",
        "100ms",
        "--connect-lag-threshold",
        "500ms",
        "--target",
        &url,
        "--connections",
        "4",
        "--duration",
        "1s",
        "--handshake-timeout",
        "300ms",
        "--close-timeout",
        "500ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "nothing established: {}", stderr(&o));
    assert!(stderr(&o).contains("handshake_timeout"), "{}", stderr(&o));
    let r = report(&out);
    assert_eq!(r["errors"]["handshake_timeout"], 4, "{}", r["errors"]);
    assert!(r["errors"].get("unfinished_at_end").is_none(), "{}", r["errors"]);
    assert_eq!(held.join().unwrap(), 4);
}

/// --max-message-size reaches the engine: pushes larger than it are refused (close 1009).
#[test]
fn max_message_size_flag_is_applied() {
    let (mut server, url) = serve(&["--mode", "push", "--push-rate", "200", "--message-size", "100"]);
    let out = temp_dir("max-message-size");
    let o = loadgen(&[
        "run",
        "--lag-threshold",
        "100ms",
        "--connect-lag-threshold",
        "500ms",
        "--target",
        &url,
        "--connections",
        "2",
        "--duration",
        "1s",
        "--idle",
        "--max-message-size",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
    // The client closes with 1009: the connections are dropped, so the run fails.
    assert_eq!(o.status.code(), Some(1), "exit {:?}: {}", o.status, stderr(&o));
    let r = report(&out);
    assert_eq!(r["connections"]["established"], 2, "{r}");
    assert!(r["errors"]["message_too_big"].as_u64().is_some_and(|n| n >= 1), "{}", r["errors"]);
    assert_eq!(r["connections"]["dropped_by_cause"]["message_too_big"], 2, "{}", r["connections"]);
}

/// docs/scenarios.md lists exactly the flags of `loadgen run --help`, with the same
/// defaults: a default in backticks must be clap's, prose (`the connect rate`) means
/// clap shows none.
#[test]
fn run_flags_in_docs_match_run_help() {
    let help = loadgen(&["run", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let options = help.split_once("Options:").expect("an Options section").1;
    let options = options.split_once("Examples:").map_or(options, |(o, _)| o);
    let mut from_help: Vec<(String, Option<String>)> = Vec::new();
    for line in options.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent <= 6 && trimmed.starts_with('-') {
            let long = trimmed.split([',', ' ']).map(str::trim).find(|w| w.starts_with("--")).expect("a long flag");
            from_help.push((long.to_string(), None));
        } else if let Some(default) = trimmed.strip_prefix("[default: ").and_then(|d| d.strip_suffix(']')) {
            from_help.last_mut().expect("a default after its flag").1 = Some(default.to_string());
        }
    }
    from_help.retain(|(flag, _)| flag != "--help");
    assert!(from_help.len() >= 25, "{from_help:?}");

    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scenarios.md")).unwrap();
    let section = doc.split_once("### `loadgen run` flags").expect("a run flags section in docs/scenarios.md").1;
    let section = section.split_once("\n#").map_or(section, |(s, _)| s);
    let mut from_doc: Vec<(String, Option<String>)> = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `-")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let long = cells[0].split('`').find(|w| w.starts_with("--")).expect("a long flag in the first cell");
        let flag = long.split_whitespace().next().unwrap().to_string();
        let default = cells[1].split('`').nth(1).map(str::to_string);
        from_doc.push((flag, default));
    }
    let names = |v: &[(String, Option<String>)]| {
        let mut n: Vec<String> = v.iter().map(|(f, _)| f.clone()).collect();
        n.sort();
        n
    };
    let (help_names, doc_names) = (names(&from_help), names(&from_doc));
    let missing: Vec<_> = help_names.iter().filter(|f| !doc_names.contains(f)).collect();
    let extra: Vec<_> = doc_names.iter().filter(|f| !help_names.contains(f)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not in docs: {missing:?}; not in --help: {extra:?}");
    assert_eq!(doc_names.len(), from_doc.len(), "each flag once in the docs");
    for (flag, default) in &from_help {
        let documented = &from_doc.iter().find(|(f, _)| f == flag).unwrap().1;
        assert_eq!(documented, default, "default of {flag}: docs/scenarios.md vs --help");
    }
}
