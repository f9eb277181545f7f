//! Interop servers for the integration tests: independent WebSocket
//! implementations (Python `websockets`, Node `ws`) started as child processes.
//!
//! The servers live in `tests/interop/` (see its README for the modes) and are
//! installed by `cargo xtask test` (phase `interop-setup`). Where they come from:
//!
//! - Python: the interpreter in `LOADGEN_INTEROP_PYTHON`, else
//!   `<workspace>/target/interop/venv/bin/python`; script
//!   `<workspace>/tests/interop/python/server.py`.
//! - Node: `node` on `PATH`, with `server.js` and `node_modules/ws` in
//!   `LOADGEN_INTEROP_NODE_DIR`, else `<workspace>/tests/interop/node`.
//!
//! A test calls [`require_or_skip`] first: with `LOADGEN_REQUIRE_INTEROP=1`
//! (set by `cargo xtask test`) a missing server is a failure, otherwise the
//! test is skipped with a note on stderr.

// Not every test uses every helper; this module is shared by all of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

/// How long a server may take to print its `PORT n` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Which independent implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Impl {
    /// Python `websockets` (asyncio server).
    Python,
    /// Node `ws`.
    Node,
}

impl Impl {
    /// Both implementations, for tests that run against each.
    pub const ALL: [Impl; 2] = [Impl::Python, Impl::Node];

    /// Short name for messages: `python-websockets` or `node-ws`.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Python => "python-websockets",
            Impl::Node => "node-ws",
        }
    }
}

/// The workspace root (this file is compiled as part of `loadgen/cli`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_interpreter() -> PathBuf {
    match std::env::var_os("LOADGEN_INTEROP_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join("target/interop/venv/bin/python"),
    }
}

fn python_script() -> PathBuf {
    workspace_root().join("tests/interop/python/server.py")
}

fn node_dir() -> PathBuf {
    match std::env::var_os("LOADGEN_INTEROP_NODE_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join("tests/interop/node"),
    }
}

/// The command (program and leading arguments) that runs `imp`'s server.
fn server_command(imp: Impl) -> (PathBuf, PathBuf) {
    match imp {
        Impl::Python => (python_interpreter(), python_script()),
        Impl::Node => (PathBuf::from("node"), node_dir().join("server.js")),
    }
}

fn probe(imp: Impl) -> Result<(), String> {
    let (program, script) = server_command(imp);
    if !script.is_file() {
        return Err(format!("{} not found", script.display()));
    }
    let check: &[&str] = match imp {
        Impl::Python => {
            if !program.exists() {
                return Err(format!("{} not found", program.display()));
            }
            &["-c", "import websockets"]
        }
        Impl::Node => {
            let ws = node_dir().join("node_modules/ws/package.json");
            if !ws.is_file() {
                return Err(format!("{} not found", ws.display()));
            }
            &["--version"]
        }
    };
    let out = Command::new(&program)
        .args(check)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} {}` failed ({}): {}",
            program.display(),
            check.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Whether `imp`'s server is installed; the error says what is missing.
/// The answer is computed once per test binary.
pub fn available(imp: Impl) -> Result<(), String> {
    static PYTHON: OnceLock<Result<(), String>> = OnceLock::new();
    static NODE: OnceLock<Result<(), String>> = OnceLock::new();
    let cell = match imp {
        Impl::Python => &PYTHON,
        Impl::Node => &NODE,
    };
    cell.get_or_init(|| probe(imp)).clone()
}

/// True when `imp` is available. Otherwise: panics if `LOADGEN_REQUIRE_INTEROP=1`,
/// else prints a skip note to stderr and returns false (the caller returns).
pub fn require_or_skip(imp: Impl) -> bool {
    let what = format!("interop server {}", imp.name());
    needed_or_skip(&what, available(imp).err())
}

/// A peer a test needs (an interop server, a browser) that `cargo xtask test`
/// installs: `true` when it is there (`missing` is `None`); else a panic under
/// `LOADGEN_REQUIRE_INTEROP=1`, or a note and `false` (the test skips).
pub fn needed_or_skip(what: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    if std::env::var("LOADGEN_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("{what} required (LOADGEN_REQUIRE_INTEROP=1) but unavailable: {why}; `cargo xtask test` installs it");
    }
    eprintln!("skipped: {what} unavailable ({why}); `cargo xtask test` installs it");
    false
}

/// A running interop server; killed (and reaped) on drop.
pub struct InteropServer {
    child: Child,
    /// Held open so the server (started with `--exit-on-stdin-eof`) exits if
    /// this process dies without running `Drop`.
    _stdin: Option<ChildStdin>,
    port: u16,
    imp: Impl,
    mode: String,
    stderr: Arc<Mutex<String>>,
}

impl InteropServer {
    /// Starts `imp`'s server in `mode` (see `tests/interop/README.md`), with
    /// permessage-deflate if `deflate`, and waits for its port.
    pub fn start(imp: Impl, mode: &str, deflate: bool) -> Result<InteropServer, String> {
        available(imp)?;
        let (program, script) = server_command(imp);
        let mut cmd = Command::new(&program);
        cmd.arg(&script)
            .args(["--mode", mode, "--exit-on-stdin-eof"])
            .current_dir(workspace_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if deflate {
            cmd.arg("--deflate");
        }
        let what = format!("{} --mode {mode}{}", imp.name(), if deflate { " --deflate" } else { "" });
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {what} ({}): {e}", program.display()))?;
        let stdin = child.stdin.take();

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }

        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the server can never block on a full pipe.
            for _ in lines {}
        });

        let mut server = InteropServer { child, _stdin: stdin, port: 0, imp, mode: mode.to_string(), stderr };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => return Err(server.fail(&what, &format!("reading stdout: {e}"))),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(server.fail(&what, "exited before printing `PORT n`"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(server.fail(&what, &format!("no `PORT n` line within {START_TIMEOUT:?}")));
            }
        };
        match line.trim().strip_prefix("PORT ").and_then(|p| p.parse::<u16>().ok()) {
            Some(port) if port != 0 => server.port = port,
            _ => return Err(server.fail(&what, &format!("unexpected first line {line:?}"))),
        }
        Ok(server)
    }

    /// Kills the child and describes the failure, with its stderr.
    fn fail(&mut self, what: &str, why: &str) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        // Give the stderr reader a moment to collect the last words.
        thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr.lock().unwrap().trim().to_string();
        format!("interop server {what}: {why} ({status}); stderr: {stderr}")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// Which implementation this is.
    pub fn imp(&self) -> Impl {
        self.imp
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for InteropServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let stderr = self.stderr();
            if !stderr.trim().is_empty() {
                eprintln!(
                    "--- stderr of interop server {} --mode {} ---\n{}",
                    self.imp.name(),
                    self.mode,
                    stderr.trim_end()
                );
            }
        }
    }
}
