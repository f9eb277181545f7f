//! The raw-TCP mode's per-connection protocol: the same probe payloads as the
//! WebSocket mode ([`crate::payload`]), back to back on the byte stream, with no
//! framing, no masking and no handshake. It measures the ceiling of this engine on
//! this host: what the WebSocket mode costs on top is the difference.
//!
//! The stream is cut into messages of the run's fixed message size; only the first
//! [`HEADER_LEN`] bytes of each incoming message are kept (inline, no heap), which is
//! all a round trip needs. What it does not do: variable-size messages, text, pings.

use crate::payload::{HEADER_LEN, Probe};

/// One raw-TCP connection.
#[derive(Debug)]
pub struct RawStream {
    /// Bytes queued and not yet handed to a send (no heap until the first message).
    out: Vec<u8>,
    message_size: u32,
    /// Bytes of the current incoming message seen so far.
    rx_off: u32,
    header: [u8; HEADER_LEN],
}

impl RawStream {
    /// A stream of `message_size`-byte messages (at least the probe header).
    pub fn new(message_size: usize) -> Self {
        let message_size = message_size.clamp(HEADER_LEN, u32::MAX as usize) as u32;
        Self { out: Vec::new(), message_size, rx_off: 0, header: [0; HEADER_LEN] }
    }

    /// Queues one message (the caller's probe payload of the message size).
    pub fn queue(&mut self, payload: &[u8]) {
        self.out.extend_from_slice(payload);
    }

    /// Bytes waiting to be written.
    pub fn pending_transmit(&self) -> &[u8] {
        &self.out
    }

    /// Marks `n` bytes of [`RawStream::pending_transmit`] as handed to a send.
    pub fn advance_transmit(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Consumes received bytes; calls `on_message` once per completed message with its
    /// probe header (`None` if the message did not start with one).
    pub fn receive(&mut self, mut input: &[u8], mut on_message: impl FnMut(Option<Probe>)) {
        let header_len = HEADER_LEN as u32;
        while !input.is_empty() {
            let n = if self.rx_off < header_len {
                let n = (header_len - self.rx_off).min(input.len() as u32);
                let at = self.rx_off as usize;
                self.header[at..at + n as usize].copy_from_slice(&input[..n as usize]);
                n
            } else {
                (self.message_size - self.rx_off).min(input.len() as u32)
            };
            self.rx_off += n;
            input = &input[n as usize..];
            if self.rx_off == self.message_size {
                self.rx_off = 0;
                on_message(Probe::decode(&self.header));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(n: u64, size: usize) -> Vec<u8> {
        let mut all = Vec::new();
        let mut one = Vec::new();
        for seq in 0..n {
            Probe { channel: 1, seq, sent_unix_us: 1_000 + seq, sender: 9 }.encode_into(size, &mut one);
            all.extend_from_slice(&one);
        }
        all
    }

    #[test]
    fn messages_are_found_in_any_split() {
        for size in [36, 37, 64, 1000] {
            let stream = probes(25, size);
            for chunk in [1, 2, 35, 36, 37, 63, 64, 65, 999, 4096] {
                let mut rx = RawStream::new(size);
                let mut seen = Vec::new();
                for piece in stream.chunks(chunk) {
                    rx.receive(piece, |p| seen.push(p.expect("a probe").seq));
                }
                assert_eq!(seen, (0..25).collect::<Vec<_>>(), "size {size}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn foreign_bytes_count_as_messages_without_a_probe() {
        let mut rx = RawStream::new(40);
        let mut seen = Vec::new();
        rx.receive(&[7u8; 100], |p| seen.push(p));
        assert_eq!(seen, [None, None], "two whole 40-byte messages, 20 bytes pending");
    }

    #[test]
    fn transmit_queue_drains_in_order() {
        let mut tx = RawStream::new(36);
        assert!(tx.pending_transmit().is_empty());
        tx.queue(b"abc");
        tx.queue(b"def");
        tx.advance_transmit(2);
        assert_eq!(tx.pending_transmit(), b"cdef");
        tx.advance_transmit(10);
        assert!(tx.pending_transmit().is_empty());
    }
}
