//! `loadgen serve --fault SPEC` and the refusal of a held port, as a user runs them:
//! exit codes, one-line errors, the fault counters in the summary line. The faults'
//! behaviour on the wire is tested in the engine (`serve::fault_tests`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn serve_output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen")).arg("serve").args(args).output().expect("loadgen runs")
}

/// Starts `loadgen serve`; returns it, the address from its first line, and the rest
/// of its stdout.
fn serve(args: &[&str]) -> (Child, String, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("loadgen serve starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ws://").and_then(|a| a.strip_suffix('/'));
    let addr = addr.unwrap_or_else(|| panic!("first line {line:?}")).to_owned();
    (child, addr, out)
}

fn one_line_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end().to_owned()
}

#[test]
fn bad_fault_specs_are_one_line_naming_the_problem_and_the_syntax() {
    let cases: [(&[&str], &str); 5] = [
        (&["--fault", "explode"], "error: invalid --fault \"explode\": unknown fault \"explode\"; accepted: stall=T/P"),
        (&["--fault", "stall=5s/1s"], "error: invalid --fault \"stall=5s/1s\": a stall of 5s every 1s never ends"),
        (&["--fault", "refuse=42"], "error: invalid --fault \"refuse=42\": \"42\" is not an HTTP status"),
        (&["--fault", "drop-echo=150"], "error: invalid --fault \"drop-echo=150\": \"150\" is not a percentage"),
        (
            &["--raw", "--fault", "no-upgrade-reply"],
            "error: invalid server configuration: fault no-upgrade-reply needs",
        ),
    ];
    for (flags, start) in cases {
        let line = one_line_error(&serve_output(flags));
        assert!(line.starts_with(start), "{flags:?}: {line}");
    }
    let line = one_line_error(&serve_output(&["--fault", "close-after=soon"]));
    assert!(line.contains("refuse=STATUS[:RETRY_AFTER_S], no-upgrade-reply, drop-echo=PERCENT"), "{line}");
    let help = Command::new(env!("CARGO_BIN_EXE_loadgen")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for spec in ["stall=T/P", "close-after=D", "reset-after=D", "close-all-at=T", "reset-all-at=T"] {
        assert!(help.contains(spec), "--help documents {spec}");
    }
    for spec in ["refuse=STATUS[:RETRY_AFTER_S]", "no-upgrade-reply", "drop-echo=PERCENT"] {
        assert!(help.contains(spec), "--help documents {spec}");
    }
}

#[test]
fn a_second_serve_on_a_held_port_exits_2_naming_it() {
    let (mut first, addr, _out) = serve(&["--duration", "30"]);
    let second = serve_output(&["--listen", &addr, "--duration", "1"]);
    let line = one_line_error(&second);
    assert_eq!(
        line,
        format!(
            "error: cannot listen on {addr}: address in use (another process holds it; pick another --listen port \
             or stop that process)"
        )
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

#[test]
fn fault_effects_appear_in_the_summary_line() {
    let (mut server, addr, mut out) =
        serve(&["--fault", "refuse=429:5", "--fault", "stall=200ms/400ms", "--duration", "1.2"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(UPGRADE).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429 ") && answer.contains("Retry-After: 5\r\n"), "{answer}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(server.wait().unwrap().code(), Some(0));
    let summary = rest.lines().find(|l| l.starts_with("summary: ")).unwrap_or_else(|| panic!("{rest}"));
    assert!(summary.contains(", faults refuse=429:5 stall=200ms/400ms: stalls "), "{summary}");
    assert!(summary.contains("refused by fault 1,") && summary.contains("refused 429=1"), "{summary}");
    assert!(!summary.contains("stalls 0,"), "stalls counted: {summary}");
}
