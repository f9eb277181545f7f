//! A small blocking HTTP/1.1 client for the director's requests to the target
//! (`/admin/faults`, `/publish`, a user's publish path): one request per connection
//! (`Connection: close`), a `Content-Length` body, the answer read to its end or to
//! its `Content-Length`, everything bounded by a deadline.
//!
//! What it does not do: TLS, chunked bodies, redirects or keep-alive.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The largest answer read (the rest is cut off).
const MAX_ANSWER: usize = 1 << 20;

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, as text (lossy).
    pub body: String,
}

/// Sends one request to `addr` and reads the answer, all within `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<Answer, String> {
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or("").as_bytes());
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.write_all(&out).map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no complete answer from {addr} within {timeout:?}"));
        }
        stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&chunk[..n]);
                if answer.len() > MAX_ANSWER || complete(&answer) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(format!("no complete answer from {addr} within {timeout:?}"));
            }
            Err(e) => return Err(format!("reading from {addr}: {e}")),
        }
    }
    parse(&answer).ok_or_else(|| format!("{addr} answered something that is not HTTP"))
}

fn split(answer: &[u8]) -> Option<(&str, &[u8])> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((std::str::from_utf8(&answer[..end]).ok()?, &answer[end + 4..]))
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
    })
}

fn complete(answer: &[u8]) -> bool {
    split(answer).is_some_and(|(head, body)| content_length(head).is_some_and(|n| body.len() >= n))
}

fn parse(answer: &[u8]) -> Option<Answer> {
    let (head, body) = split(answer)?;
    let status = head.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    let body = match content_length(head) {
        Some(n) => &body[..n.min(body.len())],
        None => body,
    };
    Some(Answer { status, body: String::from_utf8_lossy(body).trim_end().to_string() })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn a_request_gets_its_status_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(2).any(|w| w == b"{}") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{\"ok\":1}\nEXTRA").unwrap();
            String::from_utf8(got).unwrap()
        });
        let a =
            request(addr, "POST", "/x", &[("Authorization", "Bearer t")], Some("{}"), Duration::from_secs(5)).unwrap();
        assert_eq!(a, Answer { status: 201, body: "{\"ok\":1}".into() });
        let sent = server.join().unwrap();
        assert!(sent.starts_with("POST /x HTTP/1.1\r\n") && sent.contains("Authorization: Bearer t\r\n"), "{sent}");
        assert!(sent.contains("Content-Length: 2\r\n"), "{sent}");
    }

    #[test]
    fn a_silent_or_absent_server_is_an_error_in_bounded_time() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let e = request(addr, "GET", "/", &[], None, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("no complete answer"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
        let e = request(addr, "GET", "/", &[], None, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
    }
}
