//! Incremental UTF-8 validation across fragment and read boundaries.
//!
//! A text message may be split anywhere, including inside a code point. The validator
//! keeps at most three pending bytes and fails as soon as a byte sequence can no
//! longer be completed into valid UTF-8 (RFC 6455 §8.1 asks to fail fast).

/// The bytes cannot be (completed into) valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Streaming validator; `feed` chunks, then `finish` at the end of the message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Forgets any partial code point (start of a new message).
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Validates the next chunk. `Err(InvalidUtf8)` means the message cannot be valid UTF-8.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let need = sequence_len(self.pending[0]).ok_or(InvalidUtf8)?;
            while usize::from(self.pending_len) < need {
                let Some((&b, rest)) = chunk.split_first() else {
                    // Still incomplete: check the prefix is not already impossible.
                    return check_prefix(&self.pending[..usize::from(self.pending_len)]);
                };
                self.pending[usize::from(self.pending_len)] = b;
                self.pending_len += 1;
                chunk = rest;
            }
            std::str::from_utf8(&self.pending[..need]).map_err(|_| InvalidUtf8)?;
            self.pending_len = 0;
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &chunk[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                check_prefix(tail)
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the message: a dangling partial code point is an error.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }
}

fn sequence_len(first: u8) -> Option<usize> {
    match first {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

/// Whether an incomplete sequence can still become valid, by completing it with the
/// smallest allowed continuation bytes and asking the standard validator.
fn check_prefix(prefix: &[u8]) -> Result<(), InvalidUtf8> {
    let need = sequence_len(prefix[0]).ok_or(InvalidUtf8)?;
    let mut probe = [0u8; 4];
    probe[..prefix.len()].copy_from_slice(prefix);
    for slot in probe.iter_mut().take(need).skip(prefix.len()) {
        *slot = 0x80;
    }
    // E0 needs A0..BF next and F0 needs 90..BF; try the lowest legal second byte too.
    if std::str::from_utf8(&probe[..need]).is_ok() {
        return Ok(());
    }
    if prefix.len() == 1 {
        probe[1] = match prefix[0] {
            0xe0 => 0xa0,
            0xf0 => 0x90,
            _ => return Err(InvalidUtf8),
        };
        return std::str::from_utf8(&probe[..need]).map(|_| ()).map_err(|_| InvalidUtf8);
    }
    Err(InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_split(bytes: &[u8], at: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut prev = 0;
        for &cut in at {
            v.feed(&bytes[prev..cut])?;
            prev = cut;
        }
        v.feed(&bytes[prev..])?;
        v.finish()
    }

    #[test]
    fn agrees_with_std_for_every_single_split() {
        let samples: [&[u8]; 8] = [
            "κόσμε".as_bytes(),
            "a€𝄞z".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xe0\x80\xaf",
            b"\xc0\xaf",
            b"ok\xf0\x9f\x98",
            "plain ascii".as_bytes(),
        ];
        for s in samples {
            let expected = std::str::from_utf8(s).is_ok();
            for cut in 0..=s.len() {
                assert_eq!(validate_split(s, &[cut]).is_ok(), expected, "{s:?} cut {cut}");
            }
            let all: Vec<usize> = (1..s.len()).collect();
            assert_eq!(validate_split(s, &all).is_ok(), expected, "{s:?} byte by byte");
        }
    }

    #[test]
    fn fails_fast_on_impossible_prefix() {
        let mut v = Utf8Validator::default();
        // ED A0 starts a surrogate: invalid before the third byte arrives.
        assert!(v.feed(b"\xed\xa0").is_err());
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xf4\x90").is_err());
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xf0").is_ok());
        assert!(v.feed(b"\x80").is_err());
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xe0").is_ok());
        assert!(v.feed(b"\xa0").is_ok());
        assert!(v.finish().is_err());
    }
}
