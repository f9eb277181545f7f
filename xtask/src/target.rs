//! `loadgen serve` as a child of xtask: the target of the demo and the benchmarks.
//! Started in a process group of its own (a Ctrl-C at the terminal does not stop it
//! under a run that is still closing its connections), ready once it printed its
//! `listening on ws://ADDR/` (or `tcp://ADDR`) line, stopped with SIGINT (it then
//! prints its summary line) and killed only if it does not stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::Cmd;
use crate::signal;

/// How long `loadgen serve` may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to stop after SIGINT before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Server {
    child: Child,
    /// `ws://127.0.0.1:PORT/` or `tcp://127.0.0.1:PORT`, as printed.
    pub url: String,
    /// Prints the server's later stdout lines (its summary) with a prefix.
    printer: Option<JoinHandle<()>>,
    stopped: bool,
}

impl Server {
    /// Starts `cmd` (a `loadgen serve ...` command line, possibly under `taskset`) and
    /// waits for its `listening on` line. Later stdout lines are printed after `prefix`.
    pub fn start(cmd: Cmd, prefix: &'static str) -> Result<Server> {
        let mut child = cmd.own_process_group().spawn_with(Stdio::piped())?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = mpsc::channel();
        let printer = thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for line in lines.map_while(Result::ok) {
                println!("{prefix}{line}");
            }
        });
        let mut server = Server { child, url: String::new(), printer: Some(printer), stopped: false };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                server.stop();
                bail!("loadgen serve exited before printing its address (its error is above)");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                server.stop();
                bail!("loadgen serve printed no address within {START_TIMEOUT:?}");
            }
        };
        match parse_listening(&line) {
            Some(url) => server.url = url.to_string(),
            None => {
                server.stop();
                bail!("unexpected first line from loadgen serve: {line:?} (expected `listening on ws://ADDR/`)");
            }
        }
        Ok(server)
    }

    /// The port of [`Server::url`].
    pub fn port(&self) -> Option<u16> {
        port_of(&self.url)
    }

    /// Stops it (SIGINT, then SIGKILL after [`STOP_TIMEOUT`]) and waits for its
    /// summary line to be printed. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = signal::send(self.child.id(), signal::SIGINT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                eprintln!("loadgen serve did not stop within {STOP_TIMEOUT:?} of SIGINT; killing it");
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        if let Some(p) = self.printer.take() {
            let _ = p.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `listening on ws://127.0.0.1:PORT/` → `ws://127.0.0.1:PORT/` (also `tcp://`).
pub fn parse_listening(line: &str) -> Option<&str> {
    let url = line.trim().strip_prefix("listening on ")?;
    if !(url.starts_with("ws://") || url.starts_with("tcp://")) {
        return None;
    }
    port_of(url).map(|_| url)
}

/// The hard RLIMIT_NOFILE of this process (children inherit it), from
/// /proc/self/limits; `None` if unreadable, `u64::MAX` if unlimited.
pub fn nofile_hard() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files  <soft>  <hard>  files"
    let hard = line.split_whitespace().nth(4)?;
    if hard == "unlimited" { Some(u64::MAX) } else { hard.parse().ok() }
}

/// `loadgen serve --threads` for `connections`: each thread's direct-descriptor
/// table holds at most RLIMIT_NOFILE − 256 connections; SO_REUSEPORT spreads
/// connections by hash, not evenly, so each thread is planned with a margin.
pub fn serve_threads_for(connections: u64) -> u64 {
    connections.div_ceil(planned_per_thread()).clamp(1, 1024)
}

/// The most connections one `loadgen serve` process can be planned for under its own
/// open-file limit: each thread also spends ordinary descriptors (its listener, its
/// ring and a few more; counted as 4), and 64 stay spare.
pub fn serve_max_connections() -> u64 {
    let hard = nofile_hard().unwrap_or(1024).min(1 << 24);
    let threads = (hard.saturating_sub(64) / 4).min(1024);
    threads * planned_per_thread()
}

fn planned_per_thread() -> u64 {
    per_thread_for(nofile_hard().unwrap_or(1024))
}

/// Connections planned per `loadgen serve` thread under the hard RLIMIT_NOFILE `hard`.
fn per_thread_for(hard: u64) -> u64 {
    let cap = hard.min(1 << 24).saturating_sub(256) as f64;
    // SO_REUSEPORT spreads connections by hash: a thread's share m varies by about √m,
    // so keep m + 4√m within the cap, and at most 80% of it.
    let root = (-4.0 + (16.0 + 4.0 * cap).sqrt()) / 2.0;
    ((root * root).min(cap * 0.8) as u64).max(8)
}

/// The port of `ws://HOST:PORT/...` or `tcp://HOST:PORT`.
pub fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        assert_eq!(parse_listening("listening on ws://127.0.0.1:41234/\n"), Some("ws://127.0.0.1:41234/"));
        assert_eq!(parse_listening("listening on tcp://127.0.0.1:9090"), Some("tcp://127.0.0.1:9090"));
        assert_eq!(port_of("ws://127.0.0.1:41234/"), Some(41234));
        assert_eq!(parse_listening("PORT 80"), None);
        assert_eq!(parse_listening("listening on ws://127.0.0.1/"), None);
    }

    #[test]
    fn per_thread_margin() {
        // RLIMIT_NOFILE 20,000: 80% of 19,744; 300: 24 + 4√24 ≤ 44.
        let per = per_thread_for;
        assert_eq!(per(20_000), 15_795);
        assert_eq!(per(300), 24);
    }

    #[test]
    fn threads_cover_the_connections() {
        let per_thread = planned_per_thread();
        assert_eq!(serve_threads_for(1), 1);
        assert_eq!(serve_threads_for(per_thread), 1);
        assert_eq!(serve_threads_for(per_thread + 1), 2);
    }
}
