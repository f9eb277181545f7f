//! The embedded target's `redis-server`, kept by a thread of its own for the length of
//! the run. `EmbeddedRedis` starts its server with `PR_SET_PDEATHSIG`, which fires
//! when the *thread* that started it ends: a restart done from a short-lived timeline
//! thread would kill the new server as soon as that thread returned. So the keeper
//! thread starts, restarts and stops the server, on request, and lives until stopped.

use std::sync::mpsc;

use loadgen_target::EmbeddedRedis;

enum Request {
    Restart(mpsc::Sender<Result<String, String>>),
    Stop(mpsc::Sender<()>),
}

/// A handle on the kept server (cloned freely).
#[derive(Clone, Debug)]
pub struct RedisKeeper {
    url: String,
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Restart(_) => "Restart",
            Self::Stop(_) => "Stop",
        })
    }
}

impl RedisKeeper {
    /// Starts `redis-server` on a free loopback port in a keeper thread.
    pub fn start() -> Result<Self, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("redis-keeper".into())
            .spawn(move || {
                let mut server = match EmbeddedRedis::start() {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(s.url().to_string()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                for request in rx {
                    match request {
                        Request::Restart(reply) => {
                            let r = server.restart().map(|()| format!("restarted on port {}", server.port()));
                            let _ = reply.send(r.map_err(|e| e.to_string()));
                        }
                        Request::Stop(reply) => {
                            server.stop();
                            let _ = reply.send(());
                            return;
                        }
                    }
                }
                // Every handle dropped: stop with them.
                server.stop();
            })
            .map_err(|e| format!("cannot start a thread for redis-server: {e}"))?;
        let url = ready_rx.recv().map_err(|_| "the redis-server keeper ended".to_string())??;
        Ok(Self { url, tx })
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server and starts it again on its port, empty.
    pub fn restart(&self) -> Result<String, String> {
        let (reply, answer) = mpsc::channel();
        self.tx.send(Request::Restart(reply)).map_err(|_| "the embedded Redis was stopped".to_string())?;
        answer.recv().map_err(|_| "the embedded Redis keeper ended".to_string())?
    }

    /// Stops the server (idempotent).
    pub fn stop(&self) {
        let (reply, done) = mpsc::channel();
        if self.tx.send(Request::Stop(reply)).is_ok() {
            let _ = done.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn ping(url: &str) -> bool {
        let addr = url.trim_start_matches("redis://").trim_end_matches('/');
        let Ok(mut s) = TcpStream::connect(addr) else { return false };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    #[test]
    fn a_restart_from_a_short_lived_thread_keeps_the_new_server_running() {
        let keeper = RedisKeeper::start().expect("redis-server (apt-get install redis-server)");
        assert!(ping(keeper.url()));
        let k = keeper.clone();
        std::thread::spawn(move || k.restart()).join().unwrap().expect("restarted");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(ping(keeper.url()), "the restarted server outlives the thread that asked");
        keeper.stop();
        assert!(!ping(keeper.url()));
        keeper.stop();
    }
}
