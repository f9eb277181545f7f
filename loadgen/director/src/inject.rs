//! Carries out a timeline's `inject` event: loadgen's own markers
//! (`loadgen_engine::payload_marker`) published through the system's own path, one
//! message each, `{marker}` in the body (and an HTTP path) replaced by the marker of
//! its number and its intended send time (the event's start + k × interval, as Unix
//! µs: a late send still carries the time it was due, so the clients' delivery latency
//! includes the lateness).
//!
//! - `http`: one request per message to the target's address (`Connection: close`);
//!   answers other than 2xx are counted and the rest still sent; a transport error
//!   (refused, no answer) ends the event.
//! - `redis`: one TCP connection, `AUTH` when the URL has a password, then
//!   `PUBLISH channel message` per message in RESP; Redis's answer (how many
//!   subscribers got it) is summed.
//!
//! What it does not do: read what arrives (the engine), or decide what is due.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loadgen_scenario::{InjectVia, MARKER_FIELD};

use crate::http;

/// How long one message may take to be taken.
const PER_MESSAGE: Duration = Duration::from_secs(5);

/// An `inject` event's messages.
pub struct Injection<'a> {
    /// Where they go in.
    pub via: &'a InjectVia,
    /// The markers' stream.
    pub stream: &'a str,
    /// The first sequence number.
    pub first_seq: u64,
    /// How many.
    pub count: u64,
    /// Gap between them.
    pub interval: Option<Duration>,
    /// The message, `{marker}` in it.
    pub body: &'a str,
}

/// Sends them (to `target` over HTTP, or to the Redis of the URL); stops early when
/// `stop` is set. The outcome in a few words, or what went wrong.
pub fn run(inj: &Injection<'_>, target: SocketAddr, stop: &AtomicBool) -> Result<String, String> {
    let mut sink: Box<dyn Sink> = match inj.via {
        InjectVia::Http { method, path } => {
            Box::new(HttpSink { target, method, path, answered: 0, refused: 0, first_refusal: None })
        }
        InjectVia::Redis { addr, user, password, channel } => {
            Box::new(RedisSink::connect(addr, user.as_deref(), password.as_deref(), channel)?)
        }
    };
    let (t0, unix0) = (Instant::now(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default());
    let mut marker = String::with_capacity(96);
    for k in 0..inj.count {
        let offset = inj.interval.map_or(Duration::ZERO, |i| i.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX)));
        let due = t0 + offset;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(format!("stopped after {k} of {}: the run ended ({})", inj.count, sink.summary()));
            }
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
        // Without an interval a message is due when the previous one was taken.
        let intended = if inj.interval.is_some() {
            unix0 + offset
        } else {
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
        };
        marker.clear();
        loadgen_engine::payload_marker::write(inj.stream, inj.first_seq + k, intended.as_micros() as u64, &mut marker);
        let body = inj.body.replace(MARKER_FIELD, &marker);
        sink.send(&marker, &body)
            .map_err(|e| format!("message {} of {}: {e} ({})", k + 1, inj.count, sink.summary()))?;
    }
    let last = inj.first_seq + inj.count - 1;
    let summary = sink.summary();
    match sink.failure() {
        None => Ok(format!("{} markers on {} (seq {}–{last}): {summary}", inj.count, inj.stream, inj.first_seq)),
        Some(f) => Err(format!("{summary}; first refusal: {f}")),
    }
}

/// The event in a few words.
pub fn detail(via: &InjectVia, stream: &str, count: u64, interval: Option<Duration>) -> String {
    let how = match via {
        InjectVia::Http { method, path } => format!("{method} {path}"),
        InjectVia::Redis { addr, channel, .. } => format!("PUBLISH {channel} on {addr}"),
    };
    let pace = interval.map_or(String::new(), |i| format!(", one every {i:?}"));
    format!("{count} marker{} on {stream} via {how}{pace}", if count == 1 { "" } else { "s" })
}

/// Where the messages go.
trait Sink {
    /// Sends one message; an error ends the event.
    fn send(&mut self, marker: &str, body: &str) -> Result<(), String>;
    /// What was taken, so far.
    fn summary(&self) -> String;
    /// Why the event is not a success although every message went out.
    fn failure(&self) -> Option<String>;
}

struct HttpSink<'a> {
    target: SocketAddr,
    method: &'a str,
    path: &'a str,
    answered: u64,
    refused: u64,
    first_refusal: Option<String>,
}

impl Sink for HttpSink<'_> {
    fn send(&mut self, marker: &str, body: &str) -> Result<(), String> {
        let path = self.path.replace(MARKER_FIELD, marker);
        let a = http::request(self.target, self.method, &path, &[], Some(body), PER_MESSAGE)?;
        if (200..300).contains(&a.status) {
            self.answered += 1;
        } else {
            self.refused += 1;
            if self.first_refusal.is_none() {
                self.first_refusal = Some(format!("{} {}", a.status, a.body.chars().take(200).collect::<String>()));
            }
        }
        Ok(())
    }

    fn summary(&self) -> String {
        match self.refused {
            0 => format!("{} answered 2xx", self.answered),
            n => format!("{} answered 2xx, {n} refused", self.answered),
        }
    }

    fn failure(&self) -> Option<String> {
        self.first_refusal.clone()
    }
}

struct RedisSink<'a> {
    out: TcpStream,
    replies: BufReader<TcpStream>,
    channel: &'a str,
    published: u64,
    receivers: u64,
}

impl<'a> RedisSink<'a> {
    fn connect(addr: &str, user: Option<&str>, password: Option<&str>, channel: &'a str) -> Result<Self, String> {
        let to = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr} has no address"))?;
        let out = TcpStream::connect_timeout(&to, PER_MESSAGE).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = out.set_nodelay(true);
        out.set_read_timeout(Some(PER_MESSAGE)).map_err(|e| e.to_string())?;
        out.set_write_timeout(Some(PER_MESSAGE)).map_err(|e| e.to_string())?;
        let replies = BufReader::new(out.try_clone().map_err(|e| e.to_string())?);
        let mut sink = Self { out, replies, channel, published: 0, receivers: 0 };
        if let Some(pw) = password {
            let reply = match user {
                Some(u) => sink.command(&["AUTH", u, pw]),
                None => sink.command(&["AUTH", pw]),
            };
            reply.map_err(|e| format!("AUTH on {addr}: {e}"))?;
        }
        Ok(sink)
    }

    /// One command in RESP and its one-line answer (`+OK`, `:3`).
    fn command(&mut self, args: &[&str]) -> Result<String, String> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.out.write_all(req.as_bytes()).map_err(|e| format!("sending to Redis: {e}"))?;
        let mut line = String::new();
        match self.replies.read_line(&mut line) {
            Ok(0) => Err("Redis closed the connection".into()),
            Ok(_) if line.starts_with('-') => Err(line.trim_end().trim_start_matches('-').to_string()),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(format!("no answer from Redis: {e}")),
        }
    }
}

impl Sink for RedisSink<'_> {
    fn send(&mut self, _marker: &str, body: &str) -> Result<(), String> {
        let channel = self.channel;
        let reply = self.command(&["PUBLISH", channel, body])?;
        let n = reply.strip_prefix(':').and_then(|n| n.parse::<u64>().ok());
        self.receivers += n.ok_or_else(|| format!("PUBLISH answered {reply:?}"))?;
        self.published += 1;
        Ok(())
    }

    fn summary(&self) -> String {
        format!(
            "{} published on {}, {} subscriber deliveries by Redis's count",
            self.published, self.channel, self.receivers
        )
    }

    fn failure(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::Mutex;

    use loadgen_engine::payload_marker;

    use super::*;

    /// A server answering 200 to requests whose marker's seq is not `refuse`, 503 to
    /// that one; records the bodies.
    fn server(refuse: u64) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.ends_with(b"}") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                let seq = payload_marker::first(body.as_bytes()).map(|p| p.seq);
                let status = if seq == Some(refuse) { "503 Busy" } else { "200 OK" };
                seen.lock().unwrap().push(body);
                let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        (addr, got)
    }

    fn unix_us() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
    }

    #[test]
    fn markers_go_out_over_http_numbered_and_stamped_with_their_intended_time() {
        let (addr, got) = server(u64::MAX);
        let via = InjectVia::Http { method: "POST".into(), path: "/post".into() };
        let inj = Injection {
            via: &via,
            stream: "room1",
            first_seq: 3,
            count: 5,
            interval: Some(Duration::from_millis(20)),
            body: r#"{"text":"hi {marker}!"}"#,
        };
        let before = unix_us();
        let outcome = run(&inj, addr, &AtomicBool::new(false)).unwrap();
        assert_eq!(outcome, "5 markers on room1 (seq 3–7): 5 answered 2xx");
        let bodies = got.lock().unwrap().clone();
        assert_eq!(bodies.len(), 5);
        let probes: Vec<_> = bodies.iter().map(|b| payload_marker::first(b.as_bytes()).unwrap()).collect();
        assert_eq!(probes.iter().map(|p| p.seq).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
        assert!(bodies[0].starts_with(r#"{"text":"hi lgm1.room1.3."#) && bodies[0].ends_with(r#"!"}"#), "{bodies:?}");
        let first = probes[0].sent_unix_us;
        assert!(first >= before && first < before + 1_000_000, "{first} vs {before}");
        for (k, p) in probes.iter().enumerate() {
            // Intended times: exactly the interval apart (the clock read once).
            let want = first + k as u64 * 20_000;
            assert!(p.sent_unix_us.abs_diff(want) <= 1, "{k}: {} vs {want}", p.sent_unix_us);
            assert_eq!(p.channel, payload_marker::stream_id(b"room1"));
        }
        assert_eq!(detail(&via, "room1", 5, inj.interval), "5 markers on room1 via POST /post, one every 20ms");
    }

    #[test]
    fn refusals_are_counted_and_an_unreachable_path_ends_the_event() {
        let (addr, got) = server(1);
        let via = InjectVia::Http { method: "POST".into(), path: "/post".into() };
        let inj =
            Injection { via: &via, stream: "r", first_seq: 0, count: 3, interval: None, body: r#"{"m":"{marker}"}"# };
        let e = run(&inj, addr, &AtomicBool::new(false)).unwrap_err();
        assert_eq!(e, "2 answered 2xx, 1 refused; first refusal: 503 ok");
        assert_eq!(got.lock().unwrap().len(), 3, "the rest are still sent");
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = run(&inj, closed, &AtomicBool::new(false)).unwrap_err();
        assert!(e.starts_with("message 1 of 3: cannot connect"), "{e}");
        // The end of the run stops an event under way, paced or not.
        let e = run(&inj, addr, &AtomicBool::new(true)).unwrap_err();
        assert!(e.starts_with("stopped after 0 of 3: the run ended"), "{e}");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::Relaxed);
        });
        let stopped = Injection { interval: Some(Duration::from_secs(60)), ..inj };
        let started = Instant::now();
        let e = run(&stopped, addr, &stop).unwrap_err();
        assert!(e.starts_with("stopped after 1 of 3: the run ended"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn markers_are_published_on_a_real_redis_channel() {
        let redis = loadgen_target::EmbeddedRedis::start().expect("redis-server (apt-get install redis-server)");
        let addr = redis.url().trim_start_matches("redis://").trim_end_matches('/').to_string();
        // A subscriber on the channel, reading what Redis relays.
        let mut sub = TcpStream::connect(&addr).unwrap();
        sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sub.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nchat\r\n").unwrap();
        let mut reader = BufReader::new(sub);
        let mut lines = Vec::new();
        while lines.len() < 6 {
            let mut l = String::new();
            reader.read_line(&mut l).unwrap();
            lines.push(l);
        }
        assert_eq!(lines[5].trim_end(), ":1", "subscribed: {lines:?}");
        let via = InjectVia::Redis { addr: addr.clone(), user: None, password: None, channel: "chat".into() };
        let inj = Injection {
            via: &via,
            stream: "room-r",
            first_seq: 0,
            count: 4,
            interval: Some(Duration::from_millis(5)),
            body: "say {marker}",
        };
        let outcome = run(&inj, addr.parse().unwrap(), &AtomicBool::new(false)).unwrap();
        assert_eq!(
            outcome,
            "4 markers on room-r (seq 0–3): 4 published on chat, 4 subscriber deliveries by Redis's count"
        );
        let mut seqs = Vec::new();
        let mut all = String::new();
        while seqs.len() < 4 {
            let mut l = String::new();
            reader.read_line(&mut l).unwrap();
            all.push_str(&l);
            if let Some(p) = payload_marker::first(l.as_bytes()) {
                assert!(l.starts_with("say lgm1.room-r."), "{l}");
                seqs.push(p.seq);
            }
        }
        assert_eq!(seqs, [0, 1, 2, 3], "{all}");
        // A password Redis does not expect is refused on one line.
        let with_pw =
            InjectVia::Redis { addr: addr.clone(), user: None, password: Some("x".into()), channel: "c".into() };
        let e = run(&Injection { via: &with_pw, ..inj }, addr.parse().unwrap(), &AtomicBool::new(false)).unwrap_err();
        assert!(e.starts_with(&format!("AUTH on {addr}: ")) && !e.contains('\n'), "{e}");
    }
}
