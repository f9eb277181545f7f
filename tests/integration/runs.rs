//! What the tests of `loadgen run`'s verdict share: running it with the lenient
//! saturation thresholds, a fresh output directory, its report, and stopping the
//! `loadgen serve` it ran against.

use std::process::{Command, Output};

use crate::LENIENT;

/// `loadgen run ARGS`, judged on the target and not this host (see [`LENIENT`]).
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen")).arg("run").args(args).args(LENIENT).output().expect("loadgen runs")
}

/// An empty, unused directory for one run's report.
pub fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-runs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The report.json the run wrote into `dir`.
pub fn report(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json written")).unwrap()
}

/// The run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stops a `loadgen serve` child with SIGTERM and waits for it.
pub fn stop(mut server: std::process::Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
}
