//! The embedded target: `loadgen serve --mode MODE --listen 127.0.0.1:0` started as a
//! child process for the length of a run, on a free port read from its first line
//! (`listening on ws://ADDR/`).
//!
//! In notify mode the director starts the target's `redis-server` itself (a free
//! loopback port, no persistence) and hands it over with `--redis`, so that the
//! timeline can restart it on the same port; the admin token is generated here and
//! given with `--admin-token`. Every line the target writes to stderr (worker exits
//! and restarts, warnings) is kept with the second it came at, as evidence for the
//! run's findings.
//!
//! The child has its own process group (a terminal's Ctrl-C reaches only the run,
//! which stops the target after writing its report) and gets SIGTERM if the run dies
//! (`PR_SET_PDEATHSIG`). [`EmbeddedTarget::stop`] sends SIGTERM and waits for the
//! graceful drain, then SIGKILL.
//!
//! What it does not do: decide what the target is asked (the scenario), or talk to it
//! (the timeline).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadgen_scenario::Embedded;

use crate::DirectorError;
use crate::redis_keeper::RedisKeeper;

/// How long the target may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping target may drain (notify: 5 s of drain plus 2 s) before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The target's stderr lines, with the seconds since it started.
#[derive(Clone, Debug, Default)]
pub struct TargetLog(Arc<Mutex<Vec<(f64, String)>>>);

impl TargetLog {
    /// The lines so far.
    pub fn lines(&self) -> Vec<(f64, String)> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn push(&self, at: f64, line: String) {
        if let Ok(mut l) = self.0.lock() {
            // Bounded: a target that logs without end does not grow the run.
            if l.len() < 10_000 {
                l.push((at, line));
            }
        }
    }
}

/// A running embedded target.
pub struct EmbeddedTarget {
    child: Option<Child>,
    addr: SocketAddr,
    admin_token: String,
    mode: String,
    redis: Option<RedisKeeper>,
    log: TargetLog,
    started: Instant,
}

impl EmbeddedTarget {
    /// Starts `program serve --mode …` (the loadgen binary) as `spec` says, sized for
    /// `connections`; `auth_secret` is the scenario's token secret (notify mode's
    /// `--auth-secret`).
    pub fn start(
        program: &Path,
        spec: &Embedded,
        connections: u32,
        auth_secret: Option<&str>,
    ) -> Result<Self, DirectorError> {
        let admin_token = random_hex(16)?;
        let mut cmd = Command::new(program);
        cmd.args(["serve", "--mode", &spec.mode, "--listen", "127.0.0.1:0"]);
        let mut redis = None;
        if spec.mode == "notify" {
            let server = RedisKeeper::start().map_err(DirectorError::Redis)?;
            cmd.args(["--redis", server.url(), "--admin-token", &admin_token]);
            cmd.args(["--expect-connections", &connections.to_string()]);
            if let Some(w) = spec.workers {
                cmd.args(["--workers", &w.to_string()]);
            }
            for f in &spec.faults {
                cmd.args(["--fault", f]);
            }
            if let Some(secret) = auth_secret {
                cmd.args(["--auth-secret", secret]);
            }
            redis = Some(server);
        } else if let Some(w) = spec.workers {
            cmd.args(["--threads", &w.to_string()]);
        }
        cmd.args(&spec.serve);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| DirectorError::TargetStart(format!("cannot run {} serve: {e}", program.display())))?;
        let started = Instant::now();
        let log = TargetLog::default();
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.push(started.elapsed().as_secs_f64(), line);
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        // Nobody listens any more: keep draining so the target never
                        // blocks on a full pipe.
                        continue;
                    }
                }
            });
        }
        let mut target = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token,
            mode: spec.mode.clone(),
            redis,
            log,
            started,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => match listening_addr(&line) {
                Some(addr) => target.addr = addr,
                None => {
                    target.stop();
                    return Err(DirectorError::TargetStart(format!(
                        "its first line was {line:?}, not \"listening on ws://ADDR/\""
                    )));
                }
            },
            Err(_) => {
                target.stop();
                // Give the stderr reader a moment to collect the target's own error line.
                std::thread::sleep(Duration::from_millis(100));
                let why = target
                    .log
                    .lines()
                    .iter()
                    .rev()
                    .find(|(_, l)| l.starts_with("error"))
                    .map(|(_, l)| l.trim_start_matches("error: ").to_string())
                    .unwrap_or_else(|| format!("no address printed within {START_TIMEOUT:?}"));
                return Err(DirectorError::TargetStart(why));
            }
        }
        Ok(target)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The `/admin/faults` token (notify mode).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Its `loadgen serve` mode.
    pub fn mode(&self) -> &str {
        &self.mode
    }

    /// The Redis it uses (notify mode), for the timeline to restart.
    pub fn redis(&self) -> Option<RedisKeeper> {
        self.redis.clone()
    }

    /// CPU seconds the target's processes (supervisor, workers, HAProxy; not Redis)
    /// have used so far, reaped ones included; `None` once stopped or without /proc.
    pub fn cpu_s(&self) -> Option<f64> {
        crate::cpu::tree_cpu_s(self.child.as_ref()?.id())
    }

    /// When it was started: the zero of its log's times.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Its stderr so far.
    pub fn log(&self) -> TargetLog {
        self.log.clone()
    }

    /// Stops the target (SIGTERM to its process group, SIGKILL after the drain
    /// period), then its Redis. Idempotent. Returns how it exited, for the report.
    pub fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain syscalls on the child's process group.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    // SAFETY: as above.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                    }
                    break child.wait().ok();
                }
            }
        };
        if let Some(redis) = self.redis.take() {
            redis.stop();
        }
        status.map(|s| s.to_string())
    }
}

impl Drop for EmbeddedTarget {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address of a `listening on ws://ADDR/` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("listening on ")?;
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    rest.trim_end_matches('/').parse().ok()
}

fn random_hex(bytes: usize) -> Result<String, DirectorError> {
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| DirectorError::TargetStart("no system randomness for the admin token".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_the_listening_line() {
        assert_eq!(listening_addr("listening on ws://127.0.0.1:4242/"), Some("127.0.0.1:4242".parse().unwrap()));
        assert_eq!(listening_addr("listening on tcp://127.0.0.1:7"), Some("127.0.0.1:7".parse().unwrap()));
        assert_eq!(listening_addr("redis redis://127.0.0.1:1/"), None);
        assert_eq!(random_hex(16).unwrap().len(), 32);
    }
}
