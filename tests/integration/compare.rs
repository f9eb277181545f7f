//! `loadgen compare` on real runs, as a user runs it: two bounded runs of `loadgen run`
//! (50 connections, 500 echoes/s, a 2 s hold), one against `loadgen serve --mode echo`
//! and one against the same server stalling 100 ms in every 500 ms (a GC pause that
//! raises the message round trip's p99 from under a millisecond to ~100 ms). Then the
//! exit codes (1 on the regression, naming message_rtt; 0 for a run against itself),
//! `--html` and `--json`, and bad inputs (exit 2, one line on stderr).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use crate::report_schema::Serve;
use crate::runs::{out_dir, report};

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `loadgen run` against `url` into a fresh directory named `name` (started, not waited for).
fn start_run(url: &str, name: &str) -> (Child, PathBuf) {
    let dir = out_dir(&format!("compare-{name}"));
    let child = loadgen()
        .args(["run", "--target", url, "--connections", "50", "--duration", "2s", "--echo", "--rate", "500"])
        .args(["--quiet", "--out"])
        .arg(&dir)
        .args(crate::LENIENT)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen run starts");
    (child, dir)
}

/// The two runs (OLD: a healthy server, NEW: the stalling one), made once for every test.
fn runs() -> &'static (PathBuf, PathBuf) {
    static RUNS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUNS.get_or_init(|| {
        let healthy = Serve::start(&["--mode", "echo"]);
        let stalling = Serve::start(&["--mode", "echo", "--fault", "stall=100ms/500ms"]);
        let (a, a_dir) = start_run(&healthy.url, "healthy");
        let (b, b_dir) = start_run(&stalling.url, "stalling");
        for (run, dir) in [(a, &a_dir), (b, &b_dir)] {
            let out = run.wait_with_output().unwrap();
            assert!(dir.join("report.json").exists(), "{}: {}", dir.display(), text(&out.stderr));
        }
        drop((healthy, stalling));
        let p99 = |d: &PathBuf| report(d)["latency_us"]["message_rtt"]["p99"].as_u64().expect("message_rtt p99");
        let (old, new) = (p99(&a_dir), p99(&b_dir));
        assert!(new > 5 * old, "the stalls raise p99 several-fold: {old} µs → {new} µs");
        (a_dir, b_dir)
    })
}

fn compare(args: &[&std::ffi::OsStr]) -> Output {
    loadgen().arg("compare").args(args).output().expect("loadgen compare runs")
}

#[test]
fn a_stalling_server_regresses_message_rtt_and_exits_1() {
    let (a, b) = runs();
    let out = compare(&[a.as_os_str(), b.as_os_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let listed: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("regressions ("))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let rtt = listed.iter().find(|l| l.starts_with("  message_rtt p99 ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(rtt.contains("beyond noise: 95% intervals apart"), "{rtt}");
    let mut table = stdout.lines().skip_while(|l| !l.starts_with("metric "));
    let row = table.find(|l| l.starts_with("  message_rtt p99 ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.ends_with("REGRESSED"), "the table row: {row}");
    assert!(stdout.contains(&format!("OLD: {}", a.join("report.json").display())), "{stdout}");
    assert!(stdout.trim_end().lines().last().unwrap().starts_with("result: REGRESSED ("), "{stdout}");
}

#[test]
fn a_run_against_itself_exits_0() {
    let (a, _) = runs();
    let out = compare(&[a.as_os_str(), a.join("report.json").as_os_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("REGRESSED") && !stdout.contains("regressions ("), "{stdout}");
    assert!(stdout.trim_end().ends_with("result: no regression beyond the thresholds"), "{stdout}");
}

#[test]
fn html_and_json_carry_the_same_table() {
    let (a, b) = runs();
    let html = out_dir("compare-html").join("a-vs-b.html");
    std::fs::create_dir_all(html.parent().unwrap()).unwrap();
    let out = compare(&[a.as_os_str(), b.as_os_str(), "--html".as_ref(), html.as_os_str(), "--json".as_ref()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim_end(), format!("html: {}", html.display()));
    let page = std::fs::read_to_string(&html).expect("--html written");
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<table>"), "{page}");
    assert!(page.contains("<td>message_rtt p99</td>") && page.contains("<td class=\"regressed\">REGRESSED</td>"));
    assert!(!page.contains("<script") && !page.contains("http"), "self-contained");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON document");
    assert_eq!(v["regressed"], true);
    let rows = v["rows"].as_array().unwrap();
    let p99 = rows.iter().find(|r| r["metric"] == "message_rtt p99").expect("message_rtt p99 row");
    assert_eq!(p99["status"], "regressed");
    let (new_low, old_high) = (p99["new_ci"]["low"].as_u64(), p99["old_ci"]["high"].as_u64());
    assert!(new_low.zip(old_high).is_some_and(|(low, high)| low > high), "intervals apart: {p99}");
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let (a, _) = runs();
    let dir = out_dir("compare-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let not_json = dir.join("not-json.json");
    std::fs::write(&not_json, "this is not json").unwrap();
    let not_report = dir.join("not-report.json");
    std::fs::write(&not_report, r#"{"hello": "world"}"#).unwrap();
    let missing = dir.join("missing");
    let cases: [(Vec<&std::ffi::OsStr>, &str); 5] = [
        (vec![missing.as_os_str(), a.as_os_str()], "error: cannot read OLD "),
        (vec![a.as_os_str(), not_json.as_os_str()], "error: NEW "),
        (vec![not_report.as_os_str(), a.as_os_str()], "error: "),
        (vec![a.as_os_str(), a.as_os_str(), "--max-latency-increase".as_ref(), "ten".as_ref()], "error: invalid value"),
        (vec![a.as_os_str(), a.as_os_str(), "--percentiles".as_ref(), "p95".as_ref()], "error: invalid value"),
    ];
    let wants =
        ["give a run's --out directory", "is not JSON", "is not a loadgen run report", "such as 10", "such as p50"];
    for ((args, start), want) in cases.into_iter().zip(wants) {
        let out = compare(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with(start) && err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}
