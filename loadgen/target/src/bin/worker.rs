//! `loadgen-target-worker`: a worker process of the reference target, configured by
//! the `LOADGEN_TARGET_WORKER` environment variable (JSON). The supervisor starts the
//! `loadgen` binary itself in production; this binary lets the crate's own tests
//! supervise real worker processes without building the CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Ok(config) = std::env::var(loadgen_target::WORKER_ENV) else {
        eprintln!(
            "error: {} is not set; this program is started by the target's supervisor",
            loadgen_target::WORKER_ENV
        );
        return ExitCode::from(2);
    };
    match loadgen_target::run_worker_process(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
