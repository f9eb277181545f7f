//! Probes in a server's own JSON messages, for servers not built for loadgen: the run
//! says where each message keeps its stream (a channel, a room), its sequence number
//! and its send time, as JSON pointers (`/data/seq`, RFC 6901 without escapes), and
//! the time's unit. A text message that has a sequence number and a send time there is
//! timed (`latency_us.delivery`) and checked for loss, duplicates and order per stream,
//! exactly as the reference target's envelope is.
//!
//! - `seq`: an unsigned integer.
//! - `sent`: the send time since the Unix epoch, an unsigned integer in µs, ms or s, or
//!   in seconds a decimal (`1796400000.25`).
//! - `stream` (optional): a string or an unsigned integer; streams are told apart by
//!   the FNV-1a hash of its text. Without it every message is one stream.
//!
//! Like `payload_json`, a scanner: nothing allocated, every byte read a few times at
//! most, never a panic on hostile text, `None` for what does not fit.
//!
//! [`MessageShape`] is what a run says about a server's messages: these pointers, a
//! regex for text (`payload_text`), or loadgen's own markers (`payload_marker`);
//! [`ShapeReader`] is a worker's reader of it (its own regex cache and capture slots).

use crate::payload::Probe;
use crate::payload_json::Scanner;

/// The unit of a message's send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// Microseconds.
    Micros,
    /// Milliseconds (JavaScript's `Date.now()`).
    Millis,
    /// Seconds, whole or decimal.
    Seconds,
}

/// Where a server's messages keep their numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonShape {
    /// The sequence number's path.
    pub seq: Vec<String>,
    /// The send time's path.
    pub sent: Vec<String>,
    /// The send time's unit.
    pub sent_unit: TimeUnit,
    /// The stream's path (absent: one stream).
    pub stream: Option<Vec<String>>,
}

/// The sender id of messages without a stream.
pub(crate) const ONE_STREAM: u32 = 0x5348_4150; // "SHAP"

impl JsonShape {
    /// `/a/b` as its keys; the error says what a pointer looks like.
    pub fn pointer(p: &str) -> Result<Vec<String>, String> {
        let Some(rest) = p.strip_prefix('/') else {
            return Err(format!("\"{p}\" is not a JSON pointer (like /seq or /data/seq)"));
        };
        let keys: Vec<String> = rest.split('/').map(str::to_string).collect();
        if keys.iter().any(|k| k.is_empty() || k.contains('~') || k.contains('"') || k.contains('\\')) {
            return Err(format!("\"{p}\": every key must be non-empty, without ~, quotes or backslashes"));
        }
        if keys.len() > 8 {
            return Err(format!("\"{p}\": at most 8 levels deep"));
        }
        Ok(keys)
    }

    /// Reads a message; `None` if it does not have this shape.
    pub fn decode(&self, text: &str) -> Option<Probe> {
        let b = text.as_bytes();
        let seq = at(b, &self.seq)?.unsigned()?;
        let mut s = at(b, &self.sent)?;
        let sent_unix_us = match self.sent_unit {
            TimeUnit::Micros => s.unsigned()?,
            TimeUnit::Millis => s.unsigned()?.checked_mul(1_000)?,
            TimeUnit::Seconds => seconds_us(&mut s)?,
        };
        let channel = match &self.stream {
            None => ONE_STREAM,
            Some(path) => {
                let mut v = at(b, path)?;
                let text = if v.peek()? == b'"' {
                    v.string()?
                } else {
                    let start = v.i;
                    v.unsigned()?;
                    &v.b[start..v.i]
                };
                fnv1a(text)
            }
        };
        Some(Probe { channel, seq, sent_unix_us, sender: u64::from(channel) })
    }
}

/// Where a server's messages keep stream, sequence number and send time.
#[derive(Clone, Debug, PartialEq)]
pub enum MessageShape {
    /// In its JSON, at these pointers.
    Json(JsonShape),
    /// In its text, in a regex's named groups.
    Text(crate::payload_text::TextShape),
    /// loadgen's own markers, published through the system and found anywhere in a
    /// text or binary message (`payload_marker`).
    Marker,
}

/// One worker's reader of a [`MessageShape`]: the regex's cache and capture slots are
/// its own, so reading a message allocates nothing.
pub struct ShapeReader {
    shape: MessageShape,
    locs: Option<regex::CaptureLocations>,
}

impl ShapeReader {
    /// A reader of `shape` (a clone: a regex clone has a cache of its own).
    pub fn new(shape: &MessageShape) -> Self {
        let locs = match shape {
            MessageShape::Text(t) => Some(t.locations()),
            _ => None,
        };
        Self { shape: shape.clone(), locs }
    }

    /// Calls `f` with each probe in a text message.
    pub fn text(&mut self, text: &str, mut f: impl FnMut(Probe)) {
        match (&self.shape, &mut self.locs) {
            (MessageShape::Json(j), _) => {
                if let Some(p) = j.decode(text) {
                    f(p);
                }
            }
            (MessageShape::Text(t), Some(locs)) => t.each(text, locs, f),
            (MessageShape::Text(_), None) => {}
            (MessageShape::Marker, _) => crate::payload_marker::scan(text.as_bytes(), f),
        }
    }

    /// Calls `f` with each probe in a binary message (markers only).
    pub fn binary(&mut self, payload: &[u8], f: impl FnMut(Probe)) {
        if matches!(self.shape, MessageShape::Marker) {
            crate::payload_marker::scan(payload, f);
        }
    }
}

/// A scanner at the value `path` names in the object `b`.
pub(crate) fn at<'a>(b: &'a [u8], path: &[String]) -> Option<Scanner<'a>> {
    let mut s = Scanner { b, i: 0 };
    for key in path {
        s.ws();
        s.eat(b'{')?;
        loop {
            s.ws();
            let k = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            if k == key.as_bytes() {
                break;
            }
            s.skip_value(0)?;
            s.ws();
            match s.next()? {
                b',' => continue,
                _ => return None,
            }
        }
    }
    Some(s)
}

/// Seconds, whole or with up to 6 decimals, as µs.
fn seconds_us(s: &mut Scanner<'_>) -> Option<u64> {
    let mut whole: u64 = 0;
    let start = s.i;
    while let Some(c @ b'0'..=b'9') = s.peek() {
        whole = whole.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        s.i += 1;
    }
    if s.i == start {
        return None;
    }
    let mut frac: u64 = 0;
    let mut digits = 0;
    if s.peek() == Some(b'.') {
        s.i += 1;
        while let Some(c @ b'0'..=b'9') = s.peek() {
            if digits < 6 {
                frac = frac * 10 + u64::from(c - b'0');
                digits += 1;
            }
            s.i += 1;
        }
    }
    while digits < 6 {
        frac *= 10;
        digits += 1;
    }
    whole.checked_mul(1_000_000)?.checked_add(frac)
}

/// FNV-1a, 32 bits (the reference target's channel ids use the same).
pub(crate) fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seq: &str, sent: &str, unit: TimeUnit, stream: Option<&str>) -> JsonShape {
        JsonShape {
            seq: JsonShape::pointer(seq).unwrap(),
            sent: JsonShape::pointer(sent).unwrap(),
            sent_unit: unit,
            stream: stream.map(|p| JsonShape::pointer(p).unwrap()),
        }
    }

    #[test]
    fn nested_fields_in_any_order_become_a_probe() {
        let s = shape("/data/id", "/data/ts", TimeUnit::Millis, Some("/room"));
        let p =
            s.decode(r#"{"type":"notice","data":{"text":"hi","ts":1796400000123,"id":42},"room":"ward-3"}"#).unwrap();
        assert_eq!((p.seq, p.sent_unix_us, p.channel), (42, 1_796_400_000_123_000, fnv1a(b"ward-3")));
        assert_eq!(p.sender, u64::from(p.channel));
        assert_eq!(fnv1a(b"broadcast"), 3_805_776_340, "the reference target's id of the same name");
        let secs = shape("/n", "/t", TimeUnit::Seconds, None);
        let p = secs.decode(r#"{"t": 1796400000.25, "n": 7}"#).unwrap();
        assert_eq!((p.seq, p.sent_unix_us, p.channel), (7, 1_796_400_000_250_000, ONE_STREAM));
        let room_id = shape("/n", "/t", TimeUnit::Micros, Some("/room"));
        assert_eq!(room_id.decode(r#"{"room":12,"n":1,"t":5}"#).unwrap().channel, fnv1a(b"12"));
    }

    #[test]
    fn messages_of_another_shape_and_hostile_text_are_not_probes() {
        let s = shape("/data/id", "/data/ts", TimeUnit::Millis, Some("/room"));
        for text in [
            r#"{"type":"welcome"}"#,
            r#"{"data":{"id":"42","ts":1},"room":"r"}"#,
            r#"{"data":{"id":1,"ts":-5},"room":"r"}"#,
            r#"{"data":{"id":1,"ts":2},"room":null}"#,
            r#"[1,2,3]"#,
            "",
            "{",
            r#"{"data":{"id":1,"ts":99999999999999999999},"room":"r"}"#,
        ] {
            assert_eq!(s.decode(text), None, "{text}");
        }
        let mut nested = String::new();
        for _ in 0..10_000 {
            nested.push_str("{\"a\":");
        }
        assert_eq!(s.decode(&nested), None);
        for bad in ["seq", "/", "/a//b", "/a~1b"] {
            assert!(JsonShape::pointer(bad).is_err(), "{bad}");
        }
    }
}
