//! loadgen's own marked payload, for systems loadgen reaches only through their own
//! publish path (an HTTP endpoint, a Redis channel): the run's director publishes a
//! marker inside whatever the system takes, and the engine finds it in whatever
//! message carries it to the clients (the system's own JSON, a line of text).
//!
//! ```text
//! lgm1.<stream>.<seq>.<sent_us>        lgm1.room1.42.1796400000123456
//! ```
//!
//! - `stream`: 1 to 64 of `A-Z a-z 0-9 _ -` (told apart by its FNV-1a hash, as the
//!   reference target's channel ids are);
//! - `seq`: decimal, from 0 per stream, no leading zeros;
//! - `sent_us`: exactly 16 decimal digits, the intended send time in µs since the Unix
//!   epoch (16 digits cover the years 2001 to 2286);
//! - then the end of the message or any byte that is not an ASCII letter or digit.
//!
//! Nothing in it is escaped by JSON, URLs, HTML or shells, so it survives being
//! embedded in a JSON string (`{"text":"said: lgm1.r.3.1796400000000000!"}`) or a line
//! of text, and a cut-off marker (fewer digits) is never read as a wrong time. A message
//! may carry several. Scanning allocates nothing and never panics on hostile bytes.
//!
//! What it does not do: send markers (the director), or judge them (`run`'s streams).

use crate::payload::Probe;
use crate::payload_shape::fnv1a;

/// What every marker starts with.
pub const PREFIX: &str = "lgm1.";

/// Digits of the send time.
const SENT_DIGITS: usize = 16;

/// The longest stream name.
pub const MAX_STREAM: usize = 64;

/// Whether `name` may be a marker's stream; the error says what one looks like.
pub fn check_stream(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_STREAM || !name.bytes().all(stream_byte) {
        return Err(format!(
            "\"{name}\" is not a marker stream: 1 to {MAX_STREAM} letters, digits, _ or - (like room1)"
        ));
    }
    Ok(())
}

/// Appends the marker of message `seq` of `stream`, sent (intended) at `sent_unix_us`.
/// `stream` must pass [`check_stream`].
pub fn write(stream: &str, seq: u64, sent_unix_us: u64, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{PREFIX}{stream}.{seq}.{sent_unix_us:0SENT_DIGITS$}");
}

/// The stream id a marker's stream name is told apart by.
pub fn stream_id(name: &[u8]) -> u32 {
    fnv1a(name)
}

/// Calls `f` with each well-formed marker in `bytes`, in order.
pub fn scan(bytes: &[u8], mut f: impl FnMut(Probe)) {
    let prefix = PREFIX.as_bytes();
    let mut i = 0;
    while let Some(at) = find(&bytes[i..], prefix) {
        let start = i + at + prefix.len();
        match parse(&bytes[start..]) {
            Some((probe, len)) => {
                f(probe);
                i = start + len;
            }
            None => i = start,
        }
    }
}

/// The first marker in `bytes`, if any.
pub fn first(bytes: &[u8]) -> Option<Probe> {
    let mut found = None;
    scan(bytes, |p| {
        found = found.or(Some(p));
    });
    found
}

fn stream_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Where `needle` (5 bytes, starting with `l`) first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = hay[from..].iter().position(|&c| c == needle[0]) {
        let i = from + at;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// `<stream>.<seq>.<sent_us>` and its length, after the prefix.
fn parse(b: &[u8]) -> Option<(Probe, usize)> {
    let stream_len = b.iter().take(MAX_STREAM + 1).position(|&c| !stream_byte(c))?;
    if stream_len == 0 || stream_len > MAX_STREAM || b[stream_len] != b'.' {
        return None;
    }
    let mut i = stream_len + 1;
    let seq_start = i;
    let mut seq: u64 = 0;
    while let Some(c @ b'0'..=b'9') = b.get(i).copied() {
        seq = seq.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        i += 1;
    }
    let seq_len = i - seq_start;
    if seq_len == 0 || (b[seq_start] == b'0' && seq_len > 1) || b.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    let digits = b.get(i..i + SENT_DIGITS)?;
    let mut sent: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        sent = sent * 10 + u64::from(c - b'0');
    }
    i += SENT_DIGITS;
    if b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let channel = stream_id(&b[..stream_len]);
    Some((Probe { channel, seq, sent_unix_us: sent, sender: u64::from(channel) }, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(stream: &str, seq: u64, sent: u64) -> String {
        let mut s = String::new();
        write(stream, seq, sent, &mut s);
        s
    }

    #[test]
    fn a_marker_reads_back_alone_inside_json_and_text() {
        let m = marker("room-1", 42, 1_796_400_000_123_456);
        assert_eq!(m, "lgm1.room-1.42.1796400000123456");
        let want = Probe {
            channel: stream_id(b"room-1"),
            seq: 42,
            sent_unix_us: 1_796_400_000_123_456,
            sender: u64::from(stream_id(b"room-1")),
        };
        assert_eq!(first(m.as_bytes()), Some(want));
        // Inside the system's own JSON, with escapes right around it.
        let json = format!(r#"{{"from":"bot","text":"\"{m}\"\n\\","ts":1}}"#);
        assert_eq!(first(json.as_bytes()), Some(want));
        // serde_json's own escaping leaves it whole.
        let escaped = serde_json::to_string(&format!("say \"{m}\"\t")).unwrap();
        assert!(escaped.contains(&m), "{escaped}");
        assert_eq!(first(escaped.as_bytes()), Some(want));
        assert_eq!(first(format!("<b>{m}</b>. ok").as_bytes()), Some(want));
        // Several in one message, in order; an early time is zero-padded.
        let text = format!("{} and {}", marker("a", 0, 5), marker("b_2", 7, 1_796_400_000_000_001));
        let mut got = Vec::new();
        scan(text.as_bytes(), |p| got.push((p.channel, p.seq, p.sent_unix_us)));
        assert_eq!(got, [(stream_id(b"a"), 0, 5), (stream_id(b"b_2"), 7, 1_796_400_000_000_001)]);
        assert_eq!(marker("a", 0, 5), "lgm1.a.0.0000000000000005");
    }

    #[test]
    fn malformed_or_cut_off_markers_are_not_read() {
        for text in [
            "",
            "lgm1.",
            "lgm1.room.1.179640000012345",   // 15 digits: cut off
            "lgm1.room.1.17964000001234567", // 17 digits
            "lgm1.room.1.1796400000123456x", // glued to a letter
            "lgm1.room.01.1796400000123456", // leading zero
            "lgm1.room..1796400000123456",
            "lgm1.room.x.1796400000123456",
            "lgm1..1.1796400000123456",
            "lgm1.ro om.1.1796400000123456",
            "lgm1.room.99999999999999999999.1796400000123456", // seq beyond u64
            "lgm2.room.1.1796400000123456",
            "LGM1.room.1.1796400000123456",
        ] {
            assert_eq!(first(text.as_bytes()), None, "{text}");
        }
        let long = format!("lgm1.{}.1.1796400000123456", "s".repeat(MAX_STREAM + 1));
        assert_eq!(first(long.as_bytes()), None);
        // A broken marker does not hide a good one after it.
        let text = "lgm1.room.1.17 then lgm1.room.2.1796400000123456";
        assert_eq!(first(text.as_bytes()).map(|p| p.seq), Some(2));
        // Hostile bytes: no panic, nothing read.
        let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        assert_eq!(first(&noise), None);
        assert_eq!(first(b"lgm1.lgm1.lgm1.l"), None);
    }

    #[test]
    fn stream_names_are_checked() {
        assert!(check_stream("room_1-a").is_ok());
        for bad in ["", "a.b", "a b", "ü", &"x".repeat(MAX_STREAM + 1)] {
            let e = check_stream(bad).unwrap_err();
            assert!(e.contains("letters, digits, _ or -"), "{e}");
        }
    }
}
