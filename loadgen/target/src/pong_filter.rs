//! The `stop-pong` fault at the wire: tungstenite answers every ping by itself and
//! offers no switch to stop it, so this writer sits under the WebSocket and, once
//! armed (after the handshake), follows the server's outgoing frames and, while the
//! worker's `stop-pong` switch is on (it can change mid-connection: `POST
//! /admin/faults`), leaves out the pong frames (opcode 0xA) that start then, writing
//! every other frame unchanged. Unarmed it is a plain pass-through. It reads nothing
//! and knows nothing of messages.
//!
//! Server frames are unmasked (RFC 6455 §5.1) but a mask is followed anyway.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PONG: u8 = 0xA;

/// Where the writer is in the outgoing frame sequence.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    header: [u8; 14],
    have: usize,
    payload_left: u64,
    drop: bool,
}

impl Cursor {
    /// Bytes of the header still needed, once the first two are known.
    fn header_len(&self) -> usize {
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if self.header[1] & 0x80 != 0 { 4 } else { 0 }
    }

    fn at_frame_start(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    /// Consumes the next bytes of the current frame from `bytes`: how many, and whether
    /// they are to be left out. At a frame start, `bytes[0]` decides the frame.
    fn step(&mut self, bytes: &[u8], drop_pongs: bool) -> (usize, bool) {
        if self.at_frame_start() {
            self.drop = drop_pongs && bytes[0] & 0x0f == PONG;
        }
        let drop = self.drop;
        if self.payload_left > 0 {
            let n = (bytes.len() as u64).min(self.payload_left) as usize;
            self.payload_left -= n as u64;
            return (n, drop);
        }
        // In the header: take bytes one at a time until it is complete.
        let mut n = 0;
        while n < bytes.len() {
            self.header[self.have] = bytes[n];
            self.have += 1;
            n += 1;
            if self.have >= 2 && self.have == self.header_len() {
                let len = match self.header[1] & 0x7f {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes")),
                    l => u64::from(l),
                };
                self.have = 0;
                self.payload_left = len;
                break;
            }
        }
        (n, drop)
    }
}

/// The writer. `suppressed` counts the pongs left out.
#[derive(Debug)]
pub struct PongFilter<S> {
    inner: S,
    /// The switch, once armed.
    armed: Option<Arc<AtomicBool>>,
    cursor: Cursor,
    suppressed: Arc<AtomicU64>,
}

impl<S> PongFilter<S> {
    pub fn new(inner: S, suppressed: Arc<AtomicU64>) -> Self {
        Self { inner, armed: None, cursor: Cursor::default(), suppressed }
    }

    /// From now on, frames are followed and pongs left out while `switch` is on (call
    /// at a frame boundary: after the handshake).
    pub fn arm(&mut self, switch: Arc<AtomicBool>) {
        self.armed = Some(switch);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PongFilter<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PongFilter<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(switch) = this.armed.as_ref().filter(|_| !buf.is_empty()) else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        let on = switch.load(Ordering::Relaxed);
        // Skip the dropped bytes at the front; they count as written.
        let mut skipped = 0;
        while skipped < buf.len() {
            let mut probe = this.cursor;
            let was_start = probe.at_frame_start();
            let (n, drop) = probe.step(&buf[skipped..], on);
            if !drop {
                break;
            }
            if was_start {
                this.suppressed.fetch_add(1, Ordering::Relaxed);
            }
            this.cursor = probe;
            skipped += n;
        }
        if skipped > 0 {
            return Poll::Ready(Ok(skipped));
        }
        // The longest run of kept bytes, written in one go.
        let mut probe = this.cursor;
        let mut run = 0;
        while run < buf.len() {
            let mut next = probe;
            let (n, drop) = next.step(&buf[run..], on);
            if drop {
                break;
            }
            probe = next;
            run += n;
        }
        let written = match Pin::new(&mut this.inner).poll_write(cx, &buf[..run]) {
            Poll::Ready(Ok(w)) => w,
            other => return other,
        };
        let mut done = 0;
        while done < written {
            let (n, _) = this.cursor.step(&buf[done..written], on);
            done += n;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n < 65536 => {
                f.push(126);
                f.extend((n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend((n as u64).to_be_bytes());
            }
        }
        f.extend(payload);
        f
    }

    /// Writes `stream` through the filter in pieces of `chunk` bytes.
    async fn through(stream: &[u8], chunk: usize) -> (Vec<u8>, u64) {
        let count = Arc::new(AtomicU64::new(0));
        let mut f = PongFilter::new(Vec::new(), count.clone());
        f.write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").await.unwrap();
        f.arm(Arc::new(AtomicBool::new(true)));
        for piece in stream.chunks(chunk) {
            f.write_all(piece).await.unwrap();
        }
        (f.inner, count.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn pongs_are_left_out_in_any_split() {
        let big = vec![7u8; 70_000];
        let mid = vec![8u8; 300];
        let parts = [
            frame(0x1, b"hello"),
            frame(PONG, b"abc"),
            frame(0x9, b"p"),
            frame(PONG, &mid),
            frame(0x2, &big),
            frame(0x1, &mid),
        ];
        let stream: Vec<u8> = parts.concat();
        let mut expect = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        for (i, p) in parts.iter().enumerate() {
            if i != 1 && i != 3 {
                expect.extend(p);
            }
        }
        for chunk in [1, 2, 3, 7, 64, 1000, usize::MAX] {
            let (out, dropped) = through(&stream, chunk.min(stream.len())).await;
            assert_eq!(dropped, 2, "chunk {chunk}");
            assert!(out == expect, "chunk {chunk}: {} bytes vs {}", out.len(), expect.len());
        }
    }

    #[tokio::test]
    async fn the_switch_acts_from_the_next_frame() {
        let switch = Arc::new(AtomicBool::new(false));
        let mut f = PongFilter::new(Vec::new(), Arc::new(AtomicU64::new(0)));
        f.arm(switch.clone());
        let (pong, text) = (frame(PONG, b"abc"), frame(0x1, b"hi"));
        f.write_all(&pong).await.unwrap();
        switch.store(true, Ordering::Relaxed);
        f.write_all(&pong).await.unwrap();
        f.write_all(&text).await.unwrap();
        switch.store(false, Ordering::Relaxed);
        f.write_all(&pong).await.unwrap();
        assert_eq!(f.inner, [pong.clone(), text, pong].concat(), "only the pong sent while on is left out");
    }
}
