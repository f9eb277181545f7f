//! The probe payload as a JSON text envelope, for servers that speak JSON (the
//! reference target `loadgen serve --mode notify`, or a user's server that wraps its
//! notifications):
//!
//! ```text
//! {"lgprobe":1,"channel":7,"seq":42,"sent_us":1795400000000000,"sender":7, ...}
//! ```
//!
//! `lgprobe` (must be 1), `channel` (u32), `seq`, `sent_us` (intended publish time, µs
//! since the Unix epoch) and `sender` (the stream's id: a receiver checks sequence
//! numbers per sender) are required, in any order; other members (a channel name, a
//! worker id, a body of any shape) are skipped. Only the top-level object is read.
//! `"critical":true` marks a critical message ([`decode_json_envelope`] says so), timed
//! apart as well as with the others.
//!
//! A scanner, not a JSON parser: it allocates nothing, reads each byte at most a few
//! times, never panics on hostile text, and says `None` for anything that is not an
//! envelope (not an object, a required member missing or not an unsigned integer,
//! malformed text).

use crate::payload::Probe;

/// Text that could be an envelope starts like this (after whitespace).
const KEY: &[u8] = b"\"lgprobe\"";

/// Reads an envelope; `None` if `text` is not one.
pub fn decode_json(text: &str) -> Option<Probe> {
    decode_json_envelope(text).map(|(p, _)| p)
}

/// Reads an envelope and whether it is marked `"critical":true`.
pub fn decode_json_envelope(text: &str) -> Option<(Probe, bool)> {
    let b = text.as_bytes();
    // Cheap refusal of the common case (other text messages).
    if b.len() < 60 || !b.windows(KEY.len()).any(|w| w == KEY) {
        return None;
    }
    let mut s = Scanner { b, i: 0 };
    s.ws();
    s.eat(b'{')?;
    let (mut version, mut channel, mut seq, mut sent, mut sender) = (None, None, None, None, None);
    let mut critical = false;
    s.ws();
    if s.peek()? == b'}' {
        return None;
    }
    loop {
        s.ws();
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        if key == b"critical" && s.b[s.i..].starts_with(b"true") {
            critical = true;
            s.i += 4;
        } else {
            let slot = match key {
                b"lgprobe" => Some(&mut version),
                b"channel" => Some(&mut channel),
                b"seq" => Some(&mut seq),
                b"sent_us" => Some(&mut sent),
                b"sender" => Some(&mut sender),
                _ => None,
            };
            match slot {
                Some(slot) => *slot = Some(s.unsigned()?),
                None => s.skip_value(0)?,
            }
        }
        s.ws();
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    if version? != 1 {
        return None;
    }
    let probe = Probe { channel: u32::try_from(channel?).ok()?, seq: seq?, sent_unix_us: sent?, sender: sender? };
    Some((probe, critical))
}

/// Deepest nesting skipped inside an envelope's other members.
const MAX_DEPTH: u32 = 64;

pub(crate) struct Scanner<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(crate) fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    pub(crate) fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    pub(crate) fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string's raw bytes (escapes kept as they are: keys of interest have none).
    pub(crate) fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => return Some(&self.b[start..self.i - 1]),
                b'\\' => {
                    self.next()?;
                }
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    /// An unsigned integer (no sign, fraction or exponent), at most `u64::MAX`.
    pub(crate) fn unsigned(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        if self.i == start || (self.b[start] == b'0' && self.i - start > 1) {
            return None;
        }
        matches!(self.peek(), Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r')).then_some(v)
    }

    /// Skips one value of any kind.
    pub(crate) fn skip_value(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let close = if self.next()? == b'{' { b'}' } else { b']' };
                self.ws();
                if self.peek()? == close {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if close == b'}' {
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        c if c == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    const FULL: &str = r#"{"lgprobe":1,"channel":7,"seq":42,"sent_us":1795400000000000,"sender":7,"worker":2,"ch":"person:u-1","body":{"text":"shift at 06:00","tags":["a","b\"c"],"n":-1.5e3,"ok":true,"none":null}}"#;

    #[test]
    fn a_critical_mark_is_read_and_anything_else_is_not_critical() {
        let want = Probe { channel: 7, seq: 42, sent_unix_us: 1_795_400_000_000_000, sender: 7 };
        let critical = FULL.replacen('}', "},\"critical\":true", 1);
        let critical = format!("{}}}", &critical[..critical.len() - 1]);
        assert_eq!(decode_json_envelope(&critical), Some((want, true)), "{critical}");
        assert_eq!(decode_json_envelope(FULL), Some((want, false)));
        let not = FULL.replacen("\"worker\":2", "\"critical\":false", 1);
        assert_eq!(decode_json_envelope(&not), Some((want, false)));
        let broken = FULL.replacen("\"worker\":2", "\"critical\":truex", 1);
        assert_eq!(decode_json_envelope(&broken), None);
    }

    #[test]
    fn envelopes_decode_in_any_order_with_any_other_members() {
        let want = Probe { channel: 7, seq: 42, sent_unix_us: 1_795_400_000_000_000, sender: 7 };
        assert_eq!(decode_json(FULL), Some(want));
        let reordered = r#" { "body" : [1, {"x": [[]]}], "sender":7 , "sent_us":1795400000000000,
            "seq":42, "ch":"person:u-1", "channel":7, "lgprobe":1 } "#;
        assert_eq!(decode_json(reordered), Some(want));
    }

    #[test]
    fn anything_else_is_not_an_envelope() {
        for text in [
            "hello",
            r#"{"type":"notification","lgprobe_like":"no","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
            // Wrong version, a missing member, signed, fractional, too large, malformed.
            r#"{"lgprobe":2,"channel":7,"seq":42,"sent_us":1795400000000000,"sender":7,"pad":"xxxxx"}"#,
            r#"{"lgprobe":1,"channel":7,"seq":42,"sent_us":1795400000000000,"pad":"xxxxxxxxxxxxxxxxx"}"#,
            r#"{"lgprobe":1,"channel":7,"seq":-42,"sent_us":1795400000000000,"sender":7,"pad":"xxx"}"#,
            r#"{"lgprobe":1,"channel":7,"seq":4.2,"sent_us":1795400000000000,"sender":7,"pad":"xxx"}"#,
            r#"{"lgprobe":1,"channel":4294967296,"seq":42,"sent_us":1795400000000000,"sender":7,"p":1}"#,
            r#"{"lgprobe":1,"channel":7,"seq":99999999999999999999,"sent_us":1795400000000000,"sender":7}"#,
            r#"{"lgprobe":1,"channel":7,"seq":042,"sent_us":1795400000000000,"sender":7,"pad":"xxxxx"}"#,
            r#"{"lgprobe":1,"channel":7,"seq":42,"sent_us":1795400000000000,"sender":7,"body":{"a":}"#,
            r#"["lgprobe",1,"channel",7,"seq",42,"sent_us",1795400000000000,"sender",7,"xxxxxx"]"#,
        ] {
            assert_eq!(decode_json(text), None, "{text}");
        }
    }

    #[test]
    fn hostile_text_never_panics() {
        // Every prefix of a valid envelope, deep nesting, and random mutations.
        for end in 0..=FULL.len() {
            if let Some(prefix) = FULL.get(..end) {
                let _ = decode_json(prefix);
            }
        }
        let deep = format!(r#"{{"lgprobe":1,"body":{}{},"channel":1}}"#, "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(decode_json(&deep), None, "nesting is bounded");
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut bytes = FULL.as_bytes().to_vec();
        for _ in 0..20_000 {
            let at = (rng.next_u32() as usize) % bytes.len();
            let alphabet = b"{}[]\":,\\0123456789 lgpx";
            bytes[at] = alphabet[(rng.next_u32() as usize) % alphabet.len()];
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = decode_json(text);
            }
        }
    }
}
