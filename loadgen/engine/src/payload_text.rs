//! Probes in a server's own text messages, for servers that send lines rather than
//! JSON (`seq=42 ts=1796400000123 room=ward-3`): a regular expression (the `regex`
//! crate's syntax) with named groups `seq` (an unsigned integer), `sent` (the send time
//! since the Unix epoch in the run's unit: µs, ms, or seconds with up to 6 decimals)
//! and, optionally, `stream` (any text; streams are told apart by its FNV-1a hash, as
//! with JSON pointers). Every match in a message is a probe; a message without one, or
//! whose numbers do not parse, is not.
//!
//! Matching reuses the caller's `CaptureLocations` (one per worker) and the regex's
//! cache (each worker holds its own clone), so nothing is allocated per message.
//!
//! What it does not do: JSON (`payload_shape`), or judge what it finds.

use regex::{CaptureLocations, Regex};

use crate::payload::Probe;
use crate::payload_shape::{ONE_STREAM, TimeUnit, fnv1a};

/// The largest compiled regex (the `regex` crate's own default is 10 MiB).
const SIZE_LIMIT: usize = 1 << 20;

/// Where a server's text messages keep their numbers.
#[derive(Clone, Debug)]
pub struct TextShape {
    regex: Regex,
    seq: usize,
    sent: usize,
    stream: Option<usize>,
    sent_unit: TimeUnit,
}

impl PartialEq for TextShape {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_str() == other.regex.as_str() && self.sent_unit == other.sent_unit
    }
}

impl TextShape {
    /// Compiles `pattern`; the error (one line) says what is wrong with it.
    pub fn new(pattern: &str, sent_unit: TimeUnit) -> Result<Self, String> {
        let regex = regex::RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).build().map_err(|e| one_line(&e))?;
        let (mut seq, mut sent, mut stream) = (None, None, None);
        for (k, name) in regex.capture_names().enumerate() {
            match name {
                None => {}
                Some("seq") => seq = Some(k),
                Some("sent") => sent = Some(k),
                Some("stream") => stream = Some(k),
                Some(other) => {
                    return Err(format!(
                        "the group (?P<{other}>…) is not seq, sent or stream (write (?:…) for a group that \
                         is none of them)"
                    ));
                }
            }
        }
        let missing = |g: &str| format!("no group (?P<{g}>…): name the groups seq and sent (stream is optional)");
        Ok(Self {
            seq: seq.ok_or_else(|| missing("seq"))?,
            sent: sent.ok_or_else(|| missing("sent"))?,
            stream,
            regex,
            sent_unit,
        })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    /// Capture slots for [`TextShape::each`] (one set per worker, reused).
    pub fn locations(&self) -> CaptureLocations {
        self.regex.capture_locations()
    }

    /// Calls `f` with the probe of each match in `text`.
    pub fn each(&self, text: &str, locs: &mut CaptureLocations, mut f: impl FnMut(Probe)) {
        let mut from = 0;
        while from <= text.len() {
            let Some(m) = self.regex.captures_read_at(locs, text, from) else { return };
            if let Some(p) = self.probe(text, locs) {
                f(p);
            }
            // An empty match moves on by one character.
            from = if m.end() > m.start() {
                m.end()
            } else {
                m.end() + text[m.end()..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }

    fn probe(&self, text: &str, locs: &CaptureLocations) -> Option<Probe> {
        let group = |k: usize| locs.get(k).map(|(a, b)| &text.as_bytes()[a..b]);
        let seq = digits(group(self.seq)?)?;
        let sent = group(self.sent)?;
        let sent_unix_us = match self.sent_unit {
            TimeUnit::Micros => digits(sent)?,
            TimeUnit::Millis => digits(sent)?.checked_mul(1_000)?,
            TimeUnit::Seconds => seconds_us(sent)?,
        };
        let channel = match self.stream {
            None => ONE_STREAM,
            Some(k) => fnv1a(group(k)?),
        };
        Some(Probe { channel, seq, sent_unix_us, sender: u64::from(channel) })
    }
}

/// The `regex` crate's (multi-line) error on one line.
fn one_line(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            let what = text.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or("invalid syntax");
            format!("not a regular expression: {what}")
        }
        regex::Error::CompiledTooBig(limit) => format!("too large once compiled (over {limit} bytes): simplify it"),
        other => other.to_string().replace('\n', " "),
    }
}

/// Only ASCII digits, at most `u64::MAX`.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |v, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        v.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// Seconds, whole or with up to 6 decimals (more are cut), as µs.
fn seconds_us(b: &[u8]) -> Option<u64> {
    let (whole, frac) = match b.iter().position(|&c| c == b'.') {
        Some(dot) => (&b[..dot], &b[dot + 1..]),
        None => (b, &b[b.len()..]),
    };
    if b.last() == Some(&b'.') || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut us: u64 = 0;
    for k in 0..6 {
        us = us * 10 + frac.get(k).map_or(0, |&c| u64::from(c - b'0'));
    }
    digits(whole)?.checked_mul(1_000_000)?.checked_add(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r"seq=(?P<seq>\d+) ts=(?P<sent>[0-9.]+) room=(?P<stream>\S+)";

    fn all(shape: &TextShape, text: &str) -> Vec<(u64, u64, u32)> {
        let mut locs = shape.locations();
        let mut got = Vec::new();
        shape.each(text, &mut locs, |p| got.push((p.seq, p.sent_unix_us, p.channel)));
        got
    }

    #[test]
    fn lines_of_text_become_probes_per_stream() {
        let s = TextShape::new(LINE, TimeUnit::Millis).unwrap();
        assert_eq!(all(&s, "seq=42 ts=1796400000123 room=ward-3"), [(42, 1_796_400_000_123_000, fnv1a(b"ward-3"))]);
        assert_eq!(
            all(&s, "seq=1 ts=5 room=a\nseq=2 ts=6 room=b"),
            [(1, 5_000, fnv1a(b"a")), (2, 6_000, fnv1a(b"b"))],
            "every match is a probe"
        );
        let secs = TextShape::new(r"(?P<sent>\S+) #(?P<seq>\d+)", TimeUnit::Seconds).unwrap();
        assert_eq!(all(&secs, "1796400000.25 #7"), [(7, 1_796_400_000_250_000, ONE_STREAM)]);
        assert_eq!(all(&secs, "1796400000 #7"), [(7, 1_796_400_000_000_000, ONE_STREAM)]);
        assert_eq!(all(&secs, "1796400000.1234567 #7"), [(7, 1_796_400_000_123_456, ONE_STREAM)]);
        let us = TextShape::new(r"(?P<seq>\d+)@(?P<sent>\d+)", TimeUnit::Micros).unwrap();
        assert_eq!(all(&us, "3@1796400000123456"), [(3, 1_796_400_000_123_456, ONE_STREAM)]);
        // The same locations serve message after message.
        let mut locs = s.locations();
        for k in 0..100u64 {
            let mut n = 0;
            s.each(&format!("seq={k} ts=1 room=r"), &mut locs, |p| {
                assert_eq!(p.seq, k);
                n += 1;
            });
            assert_eq!(n, 1);
        }
    }

    #[test]
    fn other_text_and_malformed_numbers_are_not_probes() {
        let s = TextShape::new(LINE, TimeUnit::Millis).unwrap();
        for text in [
            "",
            "welcome to the chat",
            "seq=1 ts= room=r",
            "seq=99999999999999999999 ts=1 room=r",
            "seq=1 ts=99999999999999999999 room=r",
            "seq=1 ts=1.5 room=r", // decimals only in seconds
        ] {
            assert!(all(&s, text).is_empty(), "{text}");
        }
        let secs = TextShape::new(r"(?P<seq>\d+) (?P<sent>\S+)", TimeUnit::Seconds).unwrap();
        for text in ["1 1.", "1 .5", "1 1.2.3", "1 x"] {
            assert!(all(&secs, text).is_empty(), "{text}");
        }
        // An optional group that did not take part: no probe.
        let opt = TextShape::new(r"(?P<seq>\d+)(?: at (?P<sent>\d+))?", TimeUnit::Micros).unwrap();
        assert!(all(&opt, "12").is_empty());
        // Empty matches move on and end.
        let empty = TextShape::new(r"(?P<seq>\d*)(?P<sent>\d*)", TimeUnit::Micros).unwrap();
        assert!(all(&empty, "héllo").is_empty());
    }

    #[test]
    fn a_bad_pattern_is_refused_on_one_line() {
        for (pattern, says) in [
            (r"seq=(?P<seq>\d+", "not a regular expression: unclosed group"),
            (r"(?P<seq>\d+) (?P<when>\d+)", "the group (?P<when>…) is not seq, sent or stream"),
            (r"(?P<seq>\d+)", "no group (?P<sent>…)"),
            (r"(?P<sent>\d+)", "no group (?P<seq>…)"),
            (r"(?P<seq>\d+)(?P<sent>\w{1000}){1000}", "too large once compiled"),
        ] {
            let e = TextShape::new(pattern, TimeUnit::Millis).unwrap_err();
            assert!(e.starts_with(says), "{pattern}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
