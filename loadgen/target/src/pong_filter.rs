//! The pong faults at the wire: tungstenite answers every ping by itself and offers no
//! switch to stop or delay it, so this writer sits under the WebSocket and, once armed
//! (after the handshake), follows the server's outgoing frames. While the worker's
//! `stop-pong` switch is on it leaves out the pong frames (opcode 0xA) that start then;
//! while `pong-jitter=MS` is on it holds each pong frame, before its first byte, for a
//! delay drawn uniformly from 0 to MS milliseconds, and the connection's later frames
//! wait behind it (a busy server's writer). Both switches can change mid-connection
//! (`POST /admin/faults`); `stop-pong` wins. Every other frame is written unchanged;
//! unarmed it is a plain pass-through. It reads nothing and knows nothing of messages.
//!
//! Server frames are unmasked (RFC 6455 §5.1) but a mask is followed anyway.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

const PONG: u8 = 0xA;

/// The pong faults a worker applies now, read by its connections' filters at every
/// pong frame.
#[derive(Debug, Default)]
pub struct PongFaults {
    stop: AtomicBool,
    jitter_ms: AtomicU64,
}

impl PongFaults {
    /// `stop-pong` on or off, and `pong-jitter`'s bound (`None`: off).
    pub fn set(&self, stop: bool, jitter: Option<Duration>) {
        self.stop.store(stop, Ordering::Relaxed);
        self.jitter_ms.store(jitter.map_or(0, |d| d.as_millis() as u64), Ordering::Relaxed);
    }

    pub fn stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The jitter's bound in ms (0: off).
    pub fn jitter_ms(&self) -> u64 {
        self.jitter_ms.load(Ordering::Relaxed)
    }
}

/// The counts the filters keep, shared by a worker's connections.
#[derive(Debug, Default)]
pub struct PongCounts {
    /// Pongs left out (`stop-pong`).
    pub suppressed: AtomicU64,
    /// Pongs held (`pong-jitter`; a zero delay drawn is not counted).
    pub delayed: AtomicU64,
    /// The delays they were held for, in total (ms).
    pub delayed_ms: AtomicU64,
}

/// Each filter's jitter draws start from its own seed, so runs repeat in distribution
/// and connections do not move in step.
static NEXT_SEED: AtomicU64 = AtomicU64::new(0x5eed);

/// splitmix64: small, fast, and good enough for drawing delays.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

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

/// The writer.
#[derive(Debug)]
pub struct PongFilter<S> {
    inner: S,
    /// The switches, once armed.
    armed: Option<Arc<PongFaults>>,
    cursor: Cursor,
    counts: Arc<PongCounts>,
    /// The pong frame at the cursor is being held.
    hold: Option<Pin<Box<Sleep>>>,
    /// The pong frame at the cursor has had its hold (none drawn, or it is over).
    released: bool,
    rng: u64,
}

impl<S> PongFilter<S> {
    pub fn new(inner: S, counts: Arc<PongCounts>) -> Self {
        let mut rng = NEXT_SEED.fetch_add(1, Ordering::Relaxed);
        splitmix(&mut rng);
        Self { inner, armed: None, cursor: Cursor::default(), counts, hold: None, released: false, rng }
    }

    /// From now on, frames are followed and the pong faults of `faults` applied (call
    /// at a frame boundary: after the handshake).
    pub fn arm(&mut self, faults: Arc<PongFaults>) {
        self.armed = Some(faults);
    }

    /// Holds the pong frame that starts `buf` (at a frame start) for a drawn delay,
    /// once: `Pending` while it lasts.
    fn poll_hold(&mut self, cx: &mut Context<'_>, buf: &[u8], jitter_ms: u64) -> Poll<()> {
        if jitter_ms == 0 || self.released || !self.cursor.at_frame_start() || buf[0] & 0x0f != PONG {
            return Poll::Ready(());
        }
        if self.hold.is_none() {
            let ms = splitmix(&mut self.rng) % (jitter_ms + 1);
            if ms > 0 {
                self.counts.delayed.fetch_add(1, Ordering::Relaxed);
                self.counts.delayed_ms.fetch_add(ms, Ordering::Relaxed);
                self.hold = Some(Box::pin(tokio::time::sleep(Duration::from_millis(ms))));
            }
        }
        if let Some(hold) = self.hold.as_mut() {
            ready!(hold.as_mut().poll(cx));
            self.hold = None;
        }
        self.released = true;
        Poll::Ready(())
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
        let Some(faults) = this.armed.as_ref().filter(|_| !buf.is_empty()) else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        let on = faults.stop();
        let jitter_ms = if on { 0 } else { faults.jitter_ms() };
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
                this.counts.suppressed.fetch_add(1, Ordering::Relaxed);
            }
            this.cursor = probe;
            skipped += n;
        }
        if skipped > 0 {
            return Poll::Ready(Ok(skipped));
        }
        ready!(this.poll_hold(cx, buf, jitter_ms));
        // The longest run of kept bytes, written in one go (up to the next pong frame
        // under jitter: each is held on its own).
        let mut probe = this.cursor;
        let mut run = 0;
        while run < buf.len() {
            if jitter_ms > 0 && run > 0 && probe.at_frame_start() && buf[run] & 0x0f == PONG {
                break;
            }
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
        if written > 0 {
            this.released = false;
        }
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

    fn switches(stop: bool, jitter_ms: u64) -> Arc<PongFaults> {
        let f = Arc::new(PongFaults::default());
        f.set(stop, (jitter_ms > 0).then(|| Duration::from_millis(jitter_ms)));
        f
    }

    /// Writes `stream` through the filter in pieces of `chunk` bytes.
    async fn through(stream: &[u8], chunk: usize) -> (Vec<u8>, u64) {
        let counts = Arc::new(PongCounts::default());
        let mut f = PongFilter::new(Vec::new(), counts.clone());
        f.write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").await.unwrap();
        f.arm(switches(true, 0));
        for piece in stream.chunks(chunk) {
            f.write_all(piece).await.unwrap();
        }
        (f.inner, counts.suppressed.load(Ordering::Relaxed))
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
        let switch = switches(false, 0);
        let mut f = PongFilter::new(Vec::new(), Arc::new(PongCounts::default()));
        f.arm(switch.clone());
        let (pong, text) = (frame(PONG, b"abc"), frame(0x1, b"hi"));
        f.write_all(&pong).await.unwrap();
        switch.set(true, None);
        f.write_all(&pong).await.unwrap();
        f.write_all(&text).await.unwrap();
        switch.set(false, None);
        f.write_all(&pong).await.unwrap();
        assert_eq!(f.inner, [pong.clone(), text, pong].concat(), "only the pong sent while on is left out");
    }

    /// Under `pong-jitter=MS` (virtual time), each pong frame, alone or in one buffer
    /// with others, is held for a delay from 0 to MS before its first byte, the frames
    /// after it wait, nothing is lost or changed, and the holds add up to the time taken.
    #[tokio::test(start_paused = true)]
    async fn jitter_holds_each_pong_within_its_bound() {
        let (pong, text) = (frame(PONG, b"abc"), frame(0x1, b"hi"));
        let counts = Arc::new(PongCounts::default());
        let mut f = PongFilter::new(Vec::new(), counts.clone());
        f.arm(switches(false, 400));
        let start = tokio::time::Instant::now();
        let mut holds = Vec::new();
        for _ in 0..200 {
            let before = tokio::time::Instant::now();
            f.write_all(&[text.clone(), pong.clone()].concat()).await.unwrap();
            holds.push(before.elapsed());
        }
        // Three pongs in one buffer: three holds.
        let before_three = counts.delayed_ms.load(Ordering::Relaxed);
        let t3 = tokio::time::Instant::now();
        f.write_all(&[pong.clone(), pong.clone(), text.clone(), pong.clone()].concat()).await.unwrap();
        let three_ms = counts.delayed_ms.load(Ordering::Relaxed) - before_three;
        assert_eq!(t3.elapsed(), Duration::from_millis(three_ms), "each of the three pongs held on its own");
        let expect: Vec<u8> =
            [[text.clone(), pong.clone()].concat().repeat(200), [pong.clone(), pong.clone(), text, pong].concat()]
                .concat();
        assert!(f.inner == expect, "every frame written, unchanged, in order");
        let max = holds.iter().max().unwrap();
        assert!(*max <= Duration::from_millis(400), "a hold past the bound: {max:?}");
        assert!(*max >= Duration::from_millis(300), "200 draws from 0..=400 ms never passed 300: {max:?}");
        let mean = holds.iter().sum::<Duration>() / 200;
        assert!((150..=250).contains(&mean.as_millis()), "uniform from 0 to 400 ms has a mean near 200: {mean:?}");
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(counts.delayed_ms.load(Ordering::Relaxed)),
            "the time taken is the holds counted"
        );
        assert!(counts.delayed.load(Ordering::Relaxed) >= 195 && counts.suppressed.load(Ordering::Relaxed) == 0);
    }

    /// `stop-pong` wins over `pong-jitter`, and jitter off holds nothing.
    #[tokio::test(start_paused = true)]
    async fn stop_wins_and_off_holds_nothing() {
        let pong = frame(PONG, b"abc");
        let counts = Arc::new(PongCounts::default());
        let mut f = PongFilter::new(Vec::new(), counts.clone());
        let switch = switches(true, 400);
        f.arm(switch.clone());
        let start = tokio::time::Instant::now();
        f.write_all(&pong).await.unwrap();
        assert!(f.inner.is_empty() && start.elapsed().is_zero(), "left out at once");
        switch.set(false, None);
        f.write_all(&pong).await.unwrap();
        assert!(f.inner == pong && start.elapsed().is_zero(), "written at once");
        assert_eq!(counts.delayed.load(Ordering::Relaxed), 0);
    }
}
