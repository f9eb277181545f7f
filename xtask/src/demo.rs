//! `cargo xtask demo [--quick]`: from a fresh machine to a `loadgen check`
//! report against the Node `ws` echo server, in one command.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitCode};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::Cmd;
use crate::deps;
use crate::interop::Interop;
use crate::phases::Phases;

/// How long the echo server may take to print its `PORT n` line.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the demo; the exit code is loadgen's.
pub fn run(root: &Path, quick: bool) -> Result<ExitCode> {
    let interop = Interop::new(root);
    let mut phases = Phases::new("cargo xtask demo (setup)");
    phases.run("deps", deps::ensure);
    phases.run("interop-setup", || interop.setup());
    phases.run("build", || Cmd::new("cargo").args(["build", "--release", "-p", "loadgen"]).dir(root).run());
    if !phases.finish() {
        return Ok(ExitCode::FAILURE);
    }

    let mut server = EchoServer::start(&interop)?;
    let url = format!("ws://127.0.0.1:{}/", server.port);
    println!("Node ws echo server (permessage-deflate) listening at {url}");
    let out_dir = root.join("target/demo");
    let mut check = Cmd::new(root.join("target/release/loadgen"))
        // The interop server negotiates permessage-deflate and understands the
        // close:/ping: commands, so every check of the suite runs.
        .args(["check", "--target", &url, "--deflate", "--server-commands", "--out"])
        .arg(&out_dir);
    if quick {
        check = check.arg("--quick");
    }
    let report = out_dir.join("report.json");
    // A report left by an earlier run must not pass for this one's.
    let _ = std::fs::remove_file(&report);
    let status = check.status();
    server.stop();
    let status = status?;
    println!("demo: loadgen check finished ({status})");
    if report.is_file() {
        println!("demo: the report is {}", report.display());
    } else {
        println!("demo: loadgen wrote no report at {}", report.display());
    }
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE, // killed by a signal
    })
}

/// The Node `ws` interop server in `echo --deflate` mode.
struct EchoServer {
    child: Child,
    port: u16,
}

impl EchoServer {
    fn start(interop: &Interop) -> Result<EchoServer> {
        let mut child = Cmd::new("node")
            .arg(interop.node_dir().join("server.js"))
            .args(["--mode", "echo", "--deflate", "--exit-on-stdin-eof"])
            .spawn_piped()?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let mut server = EchoServer { child, port: 0 };
        let line = match rx.recv_timeout(SERVER_START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                server.stop();
                bail!("the echo server exited before printing its port");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                server.stop();
                bail!("the echo server printed no port within {SERVER_START_TIMEOUT:?}");
            }
        };
        match line.trim().strip_prefix("PORT ").map(str::parse::<u16>) {
            Some(Ok(port)) => server.port = port,
            _ => {
                server.stop();
                bail!("unexpected first line from the echo server: {line:?}");
            }
        }
        Ok(server)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
