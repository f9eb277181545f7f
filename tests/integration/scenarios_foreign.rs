//! Scenarios against small servers not built for loadgen, written here (not the
//! reference target): a server of plain text lines read through `[messages] regex`,
//! and a chat-like server relaying what is POSTed to it inside its own JSON, measured
//! through loadgen's own markers injected by the timeline (`do = "inject"`). Each
//! passes when the server delivers everything and fails (`messages.lost`) when it
//! drops some.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{loadgen, stderr, temp_dir};

/// The WebSocket clients of a test server, each written under its own lock.
type Clients = Arc<Mutex<Vec<Arc<Mutex<TcpStream>>>>>;

/// A server-to-client text frame (unmasked).
fn text_frame(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut f = vec![0x81];
    if len < 126 {
        f.push(len as u8);
    } else {
        f.push(126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    }
    f.extend_from_slice(text.as_bytes());
    f
}

/// Reads a request head (to the blank line).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Answers the upgrade in `head`, adds the client and reads its frames on a thread of
/// its own until its close, which is answered.
fn accept_ws(mut s: TcpStream, head: &str, clients: &Clients) {
    let Some(key) = header(head, "sec-websocket-key") else { return };
    let accept = loadgen_proto::handshake::accept_key(key);
    let _ = write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \
         {accept}\r\n\r\n"
    );
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = s.try_clone().unwrap();
    let writer = Arc::new(Mutex::new(s));
    clients.lock().unwrap().push(writer.clone());
    std::thread::spawn(move || {
        let mut h = [0u8; 2];
        while reader.read_exact(&mut h).is_ok() {
            let mut len = usize::from(h[1] & 0x7f);
            if len == 126 {
                let mut ext = [0u8; 2];
                if reader.read_exact(&mut ext).is_err() {
                    return;
                }
                len = usize::from(u16::from_be_bytes(ext));
            }
            let mut rest = vec![0u8; len + 4];
            if reader.read_exact(&mut rest).is_err() {
                return;
            }
            if h[0] & 0x0f == 8 {
                let _ = writer.lock().unwrap().write_all(&[0x88, 0x00]);
                return;
            }
        }
    });
}

fn send_all(clients: &Clients, text: &str) {
    let frame = text_frame(text);
    for c in clients.lock().unwrap().iter() {
        let _ = c.lock().unwrap().write_all(&frame);
    }
}

/// A server of text lines: once `expect` clients are in, it sends each a greeting and
/// then `seq=N ts=MS room=R` for N in 0..40 on rooms `a` and `b` interleaved, 5 ms
/// apart, leaving out room b's numbers in `drop_b`.
fn line_server(expect: usize, drop_b: &'static [u64]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Clients = Arc::default();
    let joined = clients.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(expect) {
            let Ok(mut s) = s else { continue };
            let head = read_head(&mut s);
            accept_ws(s, &head, &joined);
        }
    });
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while clients.lock().unwrap().len() < expect && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        send_all(&clients, "welcome: 2 rooms today");
        for n in 0..40u64 {
            for room in ["a", "b"] {
                if room == "b" && drop_b.contains(&n) {
                    continue;
                }
                let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
                send_all(&clients, &format!("seq={n} ts={ms} room={room}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    addr
}

/// Runs scenario `text` (written into a fresh directory `name`); its exit code and
/// validated report.
fn run(name: &str, text: &str) -> (Option<i32>, serde_json::Value, String) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    std::fs::write(&file, text).unwrap();
    let out = dir.join("out");
    let o = loadgen(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--lag-threshold",
        "50ms",
        "--connect-lag-threshold",
        "200ms",
    ]);
    let r = crate::report_schema::validated(name, &out);
    let _ = std::fs::remove_dir_all(&dir);
    (o.status.code(), r, stderr(&o))
}

fn line_scenario(addr: SocketAddr) -> String {
    format!(
        r#"name = "lines"
[target]
url = "ws://{addr}/lines"
[load]
connections = 3
connect_rate = 100
hold = "2s"
[messages]
regex = 'seq=(?P<seq>\d+) ts=(?P<sent>\d+) room=(?P<stream>\w+)'
sent_unit = "ms"
[[groups]]
name = "readers"
connections = 3
steps = [{{ do = "ready" }}]
[[checks]]
name = "every line delivered"
expr = "messages.pushes_received == 3 * 80"
[[checks]]
name = "nothing lost"
expr = "messages.lost == 0"
[[checks]]
expr = "latency_us.delivery.p99 < 1s"
"#
    )
}

#[test]
fn a_text_server_is_measured_through_a_regex_and_its_losses_fail_the_run() {
    let (code, r, err) = run("regex-lines", &line_scenario(line_server(3, &[])));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["verdict"], "pass", "{}", r["checks"]);
    assert_eq!(r["latency_us"]["delivery"]["count"], 3 * 80, "{}", r["latency_us"]);
    // Two rooms interleaved, each numbered from 0: told apart, so neither duplicates
    // nor reorders; the greeting is a message, not a probe.
    assert_eq!((r["messages"]["duplicated"].as_u64(), r["messages"]["reordered"].as_u64()), (Some(0), Some(0)));
    assert_eq!(r["messages"]["received"], 3 * 81, "{}", r["messages"]);

    let (code, r, err) = run("regex-lines-drop", &line_scenario(line_server(3, &[7, 8, 30])));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(r["messages"]["lost"], 3 * 3, "{}", r["messages"]);
    assert_eq!(r["messages"]["pushes_received"], 3 * 77);
    assert!(err.lines().any(|l| l.starts_with("check failed: nothing lost: observed 9")), "{err}");
}

/// A chat server: WebSocket clients on any path; `POST /post` with `{"text":"..."}`
/// sends `{"type":"chat","from":"bot","n":K,"text":"..."}` to every client (the text
/// with its quotes escaped by serde_json), answering 200 either way but silently
/// dropping every `drop_every`-th post (0: none).
fn chat_server(clients_expected: usize, posts: usize, drop_every: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Clients = Arc::default();
    std::thread::spawn(move || {
        let mut n = 0usize;
        for s in listener.incoming().take(clients_expected + posts) {
            let Ok(mut s) = s else { continue };
            let head = read_head(&mut s);
            if header(&head, "sec-websocket-key").is_some() {
                accept_ws(s, &head, &clients);
                continue;
            }
            let len: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = s.read_exact(&mut body);
            let posted: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if head.starts_with("POST /post ") && posted["text"].is_string() {
                n += 1;
                if drop_every == 0 || !n.is_multiple_of(drop_every) {
                    let msg = serde_json::json!({ "type": "chat", "from": "bot", "n": n, "text": posted["text"] });
                    send_all(&clients, &msg.to_string());
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            } else {
                let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        }
    });
    addr
}

fn chat_scenario(addr: SocketAddr) -> String {
    format!(
        r#"name = "chat"
[target]
url = "ws://{addr}/chat"
[load]
connections = 4
connect_rate = 100
hold = "2s"
[[groups]]
name = "members"
connections = 4
steps = [{{ do = "ready" }}]
[[timeline]]
at = "500ms"
do = "inject"
via = "http"
path = "/post"
body = '{{"text":"\"quoted\" lgm1? no: {{marker}}\n"}}'
count = 50
interval = "10ms"
stream = "room1"
[[checks]]
name = "every post relayed"
expr = "messages.pushes_received == 4 * 50"
[[checks]]
name = "nothing lost"
expr = "messages.lost == 0"
[[checks]]
expr = "latency_us.delivery.p99 < 1s"
"#
    )
}

#[test]
fn markers_injected_through_a_chat_servers_post_path_are_found_in_its_own_json() {
    let (code, r, err) = run("inject-chat", &chat_scenario(chat_server(4, 50, 0)));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["verdict"], "pass", "{}", r["checks"]);
    assert_eq!(r["latency_us"]["delivery"]["count"], 4 * 50, "{}", r["latency_us"]);
    let inject = &r["faults"][0];
    assert_eq!((inject["action"].as_str(), inject["ok"].as_bool()), (Some("inject"), Some(true)), "{inject}");
    assert_eq!(inject["outcome"], "50 markers on room1 (seq 0–49): 50 answered 2xx", "{inject}");
    assert_eq!(inject["detail"], "50 markers on room1 via POST /post, one every 10ms");

    // Every 10th post dropped: 5 of 50 for each of 4 members; the last (seq 49) has
    // nothing after it, so a client cannot tell it from one still on its way: 4 gaps.
    let (code, r, err) = run("inject-chat-drop", &chat_scenario(chat_server(4, 50, 10)));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(r["messages"]["lost"], 4 * 4, "{}", r["messages"]);
    assert_eq!(r["messages"]["pushes_received"], 4 * 45);
    let failed: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["every post relayed", "nothing lost"], "{}", r["checks"]);
}

/// A relay: WebSocket clients on any path hear `{"event":"msg","data":PAYLOAD}` for
/// every message Redis delivers on channel `chat`, except the `drop`-th (from 1; 0:
/// none). Returns its address once it is subscribed.
fn redis_relay(redis_addr: String, clients_expected: usize, drop: usize) -> SocketAddr {
    use std::io::BufRead;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Clients = Arc::default();
    let joined = clients.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(clients_expected) {
            let Ok(mut s) = s else { continue };
            let head = read_head(&mut s);
            accept_ws(s, &head, &joined);
        }
    });
    let mut sub = TcpStream::connect(&redis_addr).unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    sub.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nchat\r\n").unwrap();
    let mut lines = std::io::BufReader::new(sub);
    let mut line = String::new();
    for _ in 0..6 {
        // *3, $9, subscribe, $4, chat, :1
        line.clear();
        lines.read_line(&mut line).unwrap();
    }
    assert_eq!(line.trim_end(), ":1", "subscribed");
    std::thread::spawn(move || {
        let mut n = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim_end() != "message" {
                continue;
            }
            // $4, chat, $N, the payload.
            for _ in 0..4 {
                line.clear();
                if lines.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
            }
            n += 1;
            if n != drop {
                send_all(&clients, &serde_json::json!({ "event": "msg", "data": line.trim_end() }).to_string());
            }
        }
    });
    addr
}

#[test]
fn markers_injected_through_redis_are_found_in_what_a_relay_sends() {
    let redis = loadgen_target::EmbeddedRedis::start().expect("redis-server (apt-get install redis-server)");
    let redis_url = redis.url().trim_end_matches('/').to_string();
    let redis_addr = redis_url.trim_start_matches("redis://").to_string();
    let scenario = |relay: SocketAddr| {
        format!(
            r#"name = "relay"
[target]
url = "ws://{relay}/"
[load]
connections = 2
connect_rate = 100
hold = "1500ms"
[[groups]]
name = "listeners"
connections = 2
steps = [{{ do = "ready" }}]
[[timeline]]
at = "400ms"
do = "inject"
via = "redis"
url = "{redis_url}"
channel = "chat"
body = "note {{marker}} end"
count = 60
interval = "5ms"
[[checks]]
name = "nothing lost"
expr = "messages.lost == 0"
[[checks]]
expr = "messages.pushes_received == 2 * 60"
"#
        )
    };
    let (code, r, err) = run("inject-redis", &scenario(redis_relay(redis_addr.clone(), 2, 0)));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r["latency_us"]["delivery"]["count"], 2 * 60, "{}", r["latency_us"]);
    let outcome = r["faults"][0]["outcome"].as_str().unwrap();
    assert_eq!(
        outcome,
        "60 markers on inject (seq 0–59): 60 published on chat, 60 subscriber deliveries by Redis's count"
    );
    let (code, r, err) = run("inject-redis-drop", &scenario(redis_relay(redis_addr, 2, 3)));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(r["messages"]["lost"], 2, "{}", r["messages"]);
}
