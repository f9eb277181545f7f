//! The one probe payload format, reused by every feature that measures delivery:
//! echo round trips, server push, Redis Pub/Sub probes.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "LGPROBE1"
//!      8     4  channel      (u32, big-endian)
//!     12     8  sequence     (u64, big-endian; per sender and channel)
//!     20     8  send time    (u64, big-endian; µs since the Unix epoch, CLOCK_REALTIME,
//!                            the *intended* send time when a schedule drives the sender)
//!     28     8  sender id    (u64, big-endian)
//!     36     …  padding      (to the requested message size)
//! ```
//!
//! Realtime microseconds let a receiver in another process on the same host compute
//! delivery latency; a sender measuring its own round trips converts back through the
//! same clock offset ([`crate::clock::Clock`]). This module only encodes and decodes.

/// Magic bytes at the start of every probe payload.
pub const MAGIC: [u8; 8] = *b"LGPROBE1";
/// Size of the fixed part; payloads are at least this long.
pub const HEADER_LEN: usize = 36;

/// The fields of a probe payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Channel (0 when the sender has one stream).
    pub channel: u32,
    /// Sequence number.
    pub seq: u64,
    /// Send time, µs since the Unix epoch.
    pub sent_unix_us: u64,
    /// Sender id (connection index, publisher id ...).
    pub sender: u64,
}

impl Probe {
    /// Writes the payload into `out` (cleared first), padded to `size` bytes (at least
    /// [`HEADER_LEN`]). Reuses `out`'s capacity.
    pub fn encode_into(&self, size: usize, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.sent_unix_us.to_be_bytes());
        out.extend_from_slice(&self.sender.to_be_bytes());
        out.resize(size.max(HEADER_LEN), 0);
    }

    /// Writes the fixed part over the first [`HEADER_LEN`] bytes of `buf` (which holds
    /// the padding already), so a sender reuses one buffer without touching the padding.
    pub fn write_header(&self, buf: &mut [u8]) {
        buf[..8].copy_from_slice(&MAGIC);
        buf[8..12].copy_from_slice(&self.channel.to_be_bytes());
        buf[12..20].copy_from_slice(&self.seq.to_be_bytes());
        buf[20..28].copy_from_slice(&self.sent_unix_us.to_be_bytes());
        buf[28..36].copy_from_slice(&self.sender.to_be_bytes());
    }

    /// Reads a payload; `None` if it is not a probe payload.
    pub fn decode(payload: &[u8]) -> Option<Self> {
        if payload.len() < HEADER_LEN || payload[..8] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(payload[i..i + 8].try_into().expect("8 bytes"));
        Some(Self {
            channel: u32::from_be_bytes(payload[8..12].try_into().expect("4 bytes")),
            seq: u64_at(12),
            sent_unix_us: u64_at(20),
            sender: u64_at(28),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_layout() {
        let p = Probe { channel: 7, seq: 42, sent_unix_us: 1_795_400_000_000_000, sender: 99 };
        let mut buf = Vec::new();
        p.encode_into(64, &mut buf);
        assert_eq!(buf.len(), 64);
        assert_eq!(&buf[..8], b"LGPROBE1");
        assert_eq!(&buf[8..12], &[0, 0, 0, 7]);
        assert_eq!(Probe::decode(&buf), Some(p));
        let mut reused = buf.clone();
        let q = Probe { seq: 43, ..p };
        q.write_header(&mut reused);
        assert_eq!(Probe::decode(&reused), Some(q));
        assert_eq!(reused[36..], buf[36..]);
        p.encode_into(0, &mut buf);
        assert_eq!(buf.len(), HEADER_LEN, "never shorter than the header");
    }

    #[test]
    fn foreign_payloads_are_not_probes() {
        assert_eq!(Probe::decode(b"hello"), None);
        assert_eq!(Probe::decode(&[0u8; 64]), None);
        let mut buf = Vec::new();
        Probe { channel: 0, seq: 0, sent_unix_us: 0, sender: 0 }.encode_into(40, &mut buf);
        assert_eq!(Probe::decode(&buf[..35]), None);
    }
}
