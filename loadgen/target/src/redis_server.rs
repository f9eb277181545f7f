//! The embedded Redis: a `redis-server` child on a free loopback port, with no
//! persistence (`--save "" --appendonly no`), bound to 127.0.0.1 only, stopped
//! (SIGTERM, then SIGKILL after 2 s) when dropped, and set to die with its parent
//! thread (PR_SET_PDEATHSIG) so a killed test or CLI leaves no server behind: start it
//! from a thread that lives as long as it should.
//!
//! Ready means it answered `INFO server` with its own process id (so a server of
//! someone else that won a race for the port is never mistaken for it). A port lost to
//! such a race is retried with another. A missing binary is
//! [`TargetError::RedisServerNotFound`], with the install hint.
//!
//! The same machinery starts a replica ([`EmbeddedRedis::start_replica_of`]) and a
//! `redis-sentinel` ([`EmbeddedRedis::start_sentinel`]), for the Sentinel tests.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TargetError;

/// How long the server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up.
const ATTEMPTS: usize = 5;

/// A running `redis-server` child.
#[derive(Debug)]
pub struct EmbeddedRedis {
    child: Option<Child>,
    port: u16,
    url: String,
    log: PathBuf,
    program: PathBuf,
    kind: Kind,
}

/// What the child is.
#[derive(Debug, Clone)]
enum Kind {
    /// A server, with these arguments after the usual ones.
    Server(Vec<String>),
    /// A `redis-sentinel` monitoring the master `name` at 127.0.0.1:`port` (quorum 1).
    Sentinel { name: String, master_port: u16 },
    /// A cluster node (not yet in a cluster) with its bus on `bus`.
    ClusterNode { bus: u16 },
}

enum Failed {
    /// The port was taken: try another.
    Retry(String),
    Fatal(TargetError),
}

impl EmbeddedRedis {
    /// Starts `redis-server` from PATH.
    pub fn start() -> Result<Self, TargetError> {
        Self::start_program(Path::new("redis-server"))
    }

    /// Starts the `redis-server` at `program`.
    pub fn start_program(program: &Path) -> Result<Self, TargetError> {
        Self::start_kind(program, Kind::Server(Vec::new()))
    }

    /// Starts a `redis-server` from PATH replicating the one on 127.0.0.1:`master_port`.
    pub fn start_replica_of(master_port: u16) -> Result<Self, TargetError> {
        let args = vec!["--replicaof".into(), "127.0.0.1".into(), master_port.to_string()];
        Self::start_kind(Path::new("redis-server"), Kind::Server(args))
    }

    /// Starts a `redis-sentinel` from PATH that monitors the master `name` on
    /// 127.0.0.1:`master_port` with a quorum of 1, declaring it down after 1 s. Its
    /// configuration file (which Sentinel rewrites) is a temporary file, removed on stop.
    pub fn start_sentinel(name: &str, master_port: u16) -> Result<Self, TargetError> {
        Self::start_kind(Path::new("redis-sentinel"), Kind::Sentinel { name: name.into(), master_port })
    }

    /// Starts a `redis-server` from PATH with cluster mode on, its cluster bus on a free
    /// port of its own (`cluster-port`) and a node timeout of 2 s; its `nodes.conf` is a
    /// temporary file, removed on stop. `redis-cli --cluster create` makes the cluster.
    pub fn start_cluster_node() -> Result<Self, TargetError> {
        Self::start_kind(Path::new("redis-server"), Kind::ClusterNode { bus: free_port()? })
    }

    fn start_kind(program: &Path, kind: Kind) -> Result<Self, TargetError> {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port()?;
            match try_start(program, port, &kind) {
                Ok(r) => return Ok(r),
                Err(Failed::Retry(why)) => last = why,
                Err(Failed::Fatal(e)) => return Err(e),
            }
        }
        Err(TargetError::RedisServerStart(format!("no free port after {ATTEMPTS} attempts ({last})")))
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (until stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server has exited by itself: its pid and how it ended (then it is
    /// reaped, and [`EmbeddedRedis::restart`] starts it again).
    pub fn exited(&mut self) -> Option<(u32, String)> {
        let child = self.child.as_mut()?;
        let pid = child.id();
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some((pid, crate::supervisor::describe(status)))
            }
            _ => None,
        }
    }

    /// Stops the server and starts it again on the same port, empty (no persistence):
    /// what a Redis restart looks like to the workers. Retried for up to 5 s while the
    /// port is not free yet.
    pub fn restart(&mut self) -> Result<(), TargetError> {
        self.stop();
        let mut last = String::new();
        for _ in 0..50 {
            match try_start(&self.program, self.port, &self.kind) {
                Ok(mut fresh) => {
                    self.child = fresh.child.take();
                    self.log = std::mem::take(&mut fresh.log);
                    return Ok(());
                }
                Err(Failed::Retry(why)) => {
                    last = why;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(Failed::Fatal(e)) => return Err(e),
            }
        }
        Err(TargetError::RedisServerStart(format!("not restarted on port {}: {last}", self.port)))
    }

    /// Stops the server (SIGTERM, SIGKILL after 2 s) and removes its log. Idempotent.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(2));
        }
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(std::env::temp_dir().join(rdb_file(self.port)));
        match self.kind {
            Kind::Sentinel { .. } => drop(std::fs::remove_file(sentinel_conf(self.port))),
            Kind::ClusterNode { .. } => drop(std::fs::remove_file(nodes_conf(self.port))),
            Kind::Server(_) => {}
        }
    }
}

impl Drop for EmbeddedRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaped.
pub(crate) fn terminate(mut child: Child, grace: Duration) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // SAFETY: kill(2) on our own child's pid, which is not reaped yet (so not reused).
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Makes the child die with the thread that spawned it.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

fn free_port() -> Result<u16, TargetError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| TargetError::io("finding a free port", e))?;
    l.local_addr().map(|a| a.port()).map_err(|e| TargetError::io("finding a free port", e))
}

/// The configuration file of the sentinel on `port`.
fn sentinel_conf(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("loadgen-sentinel-{}-{port}.conf", std::process::id()))
}

/// Where the server on `port` would write an RDB file (a replica does, for its full
/// sync, whatever `--save` says): the temporary directory, removed on stop.
fn rdb_file(port: u16) -> String {
    format!("loadgen-redis-{}-{port}.rdb", std::process::id())
}

/// The `nodes.conf` of the cluster node on `port`.
fn nodes_conf(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("loadgen-nodes-{}-{port}.conf", std::process::id()))
}

fn try_start(program: &Path, port: u16, kind: &Kind) -> Result<EmbeddedRedis, Failed> {
    let log = std::env::temp_dir().join(format!("loadgen-redis-{}-{port}.log", std::process::id()));
    let mut cmd = Command::new(program);
    if !matches!(kind, Kind::Sentinel { .. }) {
        // Never a dump.rdb in the working directory.
        cmd.arg("--dir").arg(std::env::temp_dir()).arg("--dbfilename").arg(rdb_file(port));
    }
    match kind {
        Kind::Server(extra) => {
            cmd.arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(extra);
        }
        Kind::ClusterNode { bus } => {
            let conf = nodes_conf(port);
            let _ = std::fs::remove_file(&conf);
            cmd.arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-port")
                .arg(bus.to_string())
                .arg("--cluster-config-file")
                .arg(conf);
        }
        Kind::Sentinel { name, master_port } => {
            let conf = sentinel_conf(port);
            let text = format!(
                "sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 10000\n\
                 sentinel parallel-syncs {name} 1\n"
            );
            std::fs::write(&conf, text).map_err(|e| Failed::Fatal(TargetError::io("writing sentinel.conf", e)))?;
            cmd.arg(&conf).arg("--port").arg(port.to_string()).args(["--bind", "127.0.0.1", "--daemonize", "no"]);
        }
    }
    cmd.arg("--logfile").arg(&log).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failed::Fatal(match kind {
                Kind::Server(_) | Kind::ClusterNode { .. } => TargetError::RedisServerNotFound,
                Kind::Sentinel { .. } => TargetError::RedisSentinelNotFound,
            }));
        }
        Err(e) => {
            let why = format!("cannot run {}: {e}", program.display());
            return Err(Failed::Fatal(TargetError::RedisServerStart(why)));
        }
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis =
        EmbeddedRedis { child: Some(child), port, url, log, program: program.to_path_buf(), kind: kind.clone() };
    let pid = redis.pid().expect("just started");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(Ok(Some(status))) = redis.child.as_mut().map(Child::try_wait) {
            redis.child = None;
            let tail = log_tail(&redis.log);
            redis.stop();
            if tail.contains("Address already in use") {
                return Err(Failed::Retry(format!("port {port} in use")));
            }
            return Err(Failed::Fatal(TargetError::RedisServerStart(format!("it exited with {status}: {tail}"))));
        }
        match server_pid(port) {
            Some(p) if p == pid => return Ok(redis),
            Some(_) => {
                redis.stop();
                return Err(Failed::Retry(format!("port {port} answered by another redis-server")));
            }
            None => {}
        }
        if Instant::now() >= deadline {
            redis.stop();
            let why = format!("no answer on port {port} within {} s", READY_TIMEOUT.as_secs());
            return Err(Failed::Fatal(TargetError::RedisServerStart(why)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of the server's log, on one line.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() { "no log".into() } else { tail }
}

/// The `process_id` in the `INFO server` answer on `port`, if a Redis answers.
fn server_pid(port: u16) -> Option<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // A bulk string: `$LEN\r\n` then LEN bytes.
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if !text.starts_with('$') {
            return None; // -LOADING or another error: not ready
        }
        let (len, rest) = text[1..].split_once("\r\n")?;
        let len: usize = len.parse().ok()?;
        if rest.len() >= len {
            let pid = rest.lines().find_map(|l| l.strip_prefix("process_id:"))?;
            return pid.trim().parse().ok();
        }
    }
}
