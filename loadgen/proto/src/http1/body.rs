//! Body framing: `Content-Length`, chunked (RFC 9112 §7.1) and close-delimited bodies,
//! decoded incrementally with a few bytes of state. Data is returned as ranges of the
//! caller's input (streamed), appended to a buffer (collected) or only counted
//! (discarded). Chunk lines must end with CRLF; chunk extensions and trailer fields are
//! checked for forbidden bytes, bounded, and skipped.

use super::error::Http1Error;
use super::response::Framing;

/// Longest chunk-size line (digits, whitespace and extensions) accepted.
pub(crate) const MAX_CHUNK_LINE: u32 = 4096;

/// Where the decoder is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// The body is complete.
    #[default]
    Done,
    /// `remaining` bytes of a `Content-Length` body to go.
    Length,
    /// Until the connection closes.
    UntilClose,
    /// Before the first hex digit of a chunk size.
    SizeStart,
    /// In the hex digits (`remaining` accumulates the size).
    Size,
    /// Whitespace after the size, before `;` or CR.
    SizeWs,
    /// In chunk extensions.
    Ext,
    /// Expecting the LF that ends the chunk-size line.
    SizeLf,
    /// `remaining` bytes of chunk data to go.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Expecting the LF that ends a trailer field line.
    TrailerLf,
    /// Expecting the LF of the final CRLF.
    EndLf,
}

/// What one call to [`BodyDecoder::step`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Body bytes `data[start..end]` (streaming only).
    Data(usize, usize),
    /// The body is complete.
    Done,
    /// All of the input was consumed; more is needed.
    More,
}

/// Where decoded body bytes go.
pub(crate) enum Sink<'s> {
    /// Returned as [`Step::Data`] ranges.
    Stream,
    /// Appended here.
    Collect(&'s mut Vec<u8>),
    /// Only counted.
    Discard,
}

/// Incremental body decoder (24 bytes).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BodyDecoder {
    /// Bytes left (Length, Data) or the size being read (Size).
    remaining: u64,
    /// Body bytes so far (chunked, until close), against `limit`.
    seen: u64,
    /// Bytes of the current chunk-size line, or of the trailer section.
    line: u32,
    state: State,
}

impl BodyDecoder {
    /// A decoder for `framing`.
    pub(crate) fn new(framing: Framing) -> Self {
        let (state, remaining) = match framing {
            Framing::None | Framing::Length(0) => (State::Done, 0),
            Framing::Length(n) => (State::Length, n),
            Framing::Chunked => (State::SizeStart, 0),
            Framing::UntilClose => (State::UntilClose, 0),
        };
        Self { remaining, seen: 0, line: 0, state }
    }

    /// Whether the body ends when the connection does.
    pub(crate) fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Whether the body is complete (its end may not have been reported yet).
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done || (self.state == State::Length && self.remaining == 0)
    }

    /// Decodes from `data`: returns the bytes consumed and what happened. `limit` bounds
    /// the body (a `Content-Length` body was checked against it with the head);
    /// `max_trailers` bounds the trailer section.
    pub(crate) fn step(
        &mut self,
        data: &[u8],
        sink: &mut Sink<'_>,
        limit: u64,
        max_trailers: u32,
    ) -> Result<(usize, Step), Http1Error> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok((pos, Step::Done)),
                State::Length | State::Data | State::UntilClose => {
                    if self.state != State::UntilClose && self.remaining == 0 {
                        self.state = if self.state == State::Length { State::Done } else { State::DataCr };
                        continue;
                    }
                    let available = data.len() - pos;
                    if available == 0 {
                        return Ok((pos, Step::More));
                    }
                    let n = if self.state == State::UntilClose {
                        if self.seen.saturating_add(available as u64) > limit {
                            return Err(Http1Error::BodyTooLarge { limit });
                        }
                        self.seen += available as u64;
                        available
                    } else {
                        let n = self.remaining.min(available as u64) as usize;
                        self.remaining -= n as u64;
                        n
                    };
                    let (start, end) = (pos, pos + n);
                    pos = end;
                    match sink {
                        Sink::Stream => return Ok((pos, Step::Data(start, end))),
                        Sink::Collect(buf) => buf.extend_from_slice(&data[start..end]),
                        Sink::Discard => {}
                    }
                }
                _ => {
                    let Some(&b) = data.get(pos) else { return Ok((pos, Step::More)) };
                    pos += 1;
                    self.framing_byte(b, limit, max_trailers)?;
                }
            }
        }
    }

    /// One byte of chunk framing (size line, CRLF after data, trailers).
    fn framing_byte(&mut self, b: u8, limit: u64, max_trailers: u32) -> Result<(), Http1Error> {
        use State::*;
        let bad = Http1Error::BadChunk;
        if matches!(self.state, SizeStart | Size | SizeWs | Ext) {
            self.line += 1;
            if self.line > MAX_CHUNK_LINE {
                return Err(bad("chunk-size line too long"));
            }
        }
        if matches!(self.state, TrailerStart | TrailerLine | TrailerLf | EndLf) {
            self.line += 1;
            if self.line > max_trailers {
                return Err(Http1Error::TrailersTooLarge { limit: max_trailers });
            }
        }
        self.state = match (self.state, b) {
            (SizeStart | Size, _) if b.is_ascii_hexdigit() => {
                let digit = (b as char).to_digit(16).unwrap_or(0);
                self.remaining = self
                    .remaining
                    .checked_mul(16)
                    .and_then(|r| r.checked_add(u64::from(digit)))
                    .ok_or(bad("chunk size overflows 64 bits"))?;
                Size
            }
            (SizeStart, _) => return Err(bad("chunk size is not hexadecimal")),
            (Size | SizeWs, b' ' | b'\t') => SizeWs,
            (Size | SizeWs, b';') => Ext,
            (Size | SizeWs | Ext, b'\r') => SizeLf,
            (Size | SizeWs, _) => return Err(bad("invalid byte after the chunk size")),
            (Ext, b'\n') => return Err(bad("bare LF in a chunk-size line")),
            (Ext, _) if b == b'\t' || (b >= 0x20 && b != 0x7f) => Ext,
            (Ext, _) => return Err(bad("control character in a chunk extension")),
            (SizeLf, b'\n') => {
                self.line = 0;
                if self.remaining == 0 {
                    TrailerStart
                } else {
                    self.seen = self
                        .seen
                        .checked_add(self.remaining)
                        .filter(|&s| s <= limit)
                        .ok_or(Http1Error::BodyTooLarge { limit })?;
                    Data
                }
            }
            (SizeLf, _) => return Err(bad("CR without LF after the chunk size")),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(bad("chunk data longer than its size")),
            (DataLf, b'\n') => {
                self.line = 0;
                SizeStart
            }
            (DataLf, _) => return Err(bad("CR without LF after chunk data")),
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | TrailerLine, b'\n') => return Err(bad("bare LF in the trailer section")),
            (TrailerLine, b'\r') => TrailerLf,
            (TrailerStart | TrailerLine, _) if b == b'\t' || (b >= 0x20 && b != 0x7f) => TrailerLine,
            (TrailerStart | TrailerLine, _) => return Err(bad("control character in a trailer field")),
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerLf, _) => return Err(bad("CR without LF in the trailer section")),
            (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(bad("CR without LF at the end of the chunked body")),
            (Done | Length | UntilClose | Data, _) => self.state,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes all of `data` in pieces of `chunk` bytes, collecting.
    fn collect(framing: Framing, data: &[u8], chunk: usize) -> Result<(Vec<u8>, bool), Http1Error> {
        let mut d = BodyDecoder::new(framing);
        let mut out = Vec::new();
        for piece in data.chunks(chunk) {
            let (n, step) = d.step(piece, &mut Sink::Collect(&mut out), 1 << 20, 1024)?;
            if step == Step::Done {
                assert_eq!(n, piece.len(), "nothing after the body in these tests");
            }
        }
        let (_, step) = d.step(&[], &mut Sink::Collect(&mut out), 1 << 20, 1024)?;
        Ok((out, step == Step::Done))
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = b"4;name=value;q=\"a b\"\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
                     0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";
        for chunk in [1, 2, 7, body.len()] {
            let (out, done) = collect(Framing::Chunked, body, chunk).unwrap();
            assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
            assert!(done);
        }
    }

    #[test]
    fn streamed_ranges_point_into_the_input() {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let input = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT";
        let mut pos = 0;
        let mut got = Vec::new();
        loop {
            let (n, step) = d.step(&input[pos..], &mut Sink::Stream, 100, 100).unwrap();
            match step {
                Step::Data(s, e) => got.push(&input[pos + s..pos + e]),
                Step::Done => {
                    pos += n;
                    break;
                }
                Step::More => panic!("whole body given"),
            }
            pos += n;
        }
        assert_eq!(got, [&b"abc"[..], b"de"]);
        assert_eq!(&input[pos..], b"NEXT", "bytes after the body are not consumed");
    }

    #[test]
    fn malformed_chunks_are_typed() {
        let cases: [&[u8]; 14] = [
            b"x\r\n",
            b"-1\r\n",
            b"0x1\r\n",
            b"\r\n",
            b"1\nA\r\n",
            b"1;ext\nA\r\n",
            b"1\rA",
            b"1\r\nAB\r\n",
            b"1\r\nA\rX",
            b"1 2\r\n",
            b"1;a\x00b\r\n",
            b"0\r\nX: 1\n\r\n",
            b"0\r\n\rX",
            b"0\r\nX:\x01\r\n\r\n",
        ];
        for case in cases {
            assert!(matches!(collect(Framing::Chunked, case, 1), Err(Http1Error::BadChunk(_))), "{case:?}");
        }
        let overflow = b"10000000000000000\r\n";
        assert_eq!(collect(Framing::Chunked, overflow, 3), Err(Http1Error::BadChunk("chunk size overflows 64 bits")));
        let leading_zeros = [b"0".repeat(5000), b"1\r\n".to_vec()].concat();
        assert!(matches!(collect(Framing::Chunked, &leading_zeros, 64), Err(Http1Error::BadChunk(_))));
    }

    #[test]
    fn limits() {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let r = d.step(b"5\r\nhello\r\n6\r\n", &mut Sink::Discard, 10, 100);
        assert_eq!(r, Err(Http1Error::BodyTooLarge { limit: 10 }));
        let mut d = BodyDecoder::new(Framing::UntilClose);
        assert_eq!(d.step(&[0; 10], &mut Sink::Discard, 10, 100), Ok((10, Step::More)));
        assert_eq!(d.step(&[0; 1], &mut Sink::Discard, 10, 100), Err(Http1Error::BodyTooLarge { limit: 10 }));
        let mut d = BodyDecoder::new(Framing::Chunked);
        let trailers = [&b"0\r\n"[..], &b"X: y\r\n".repeat(10)].concat();
        assert_eq!(d.step(&trailers, &mut Sink::Discard, 10, 32), Err(Http1Error::TrailersTooLarge { limit: 32 }));
        let mut d = BodyDecoder::new(Framing::Length(3));
        let mut out = Vec::new();
        assert_eq!(d.step(b"abcdef", &mut Sink::Collect(&mut out), 3, 0), Ok((3, Step::Done)));
        assert_eq!(out, b"abc");
    }
}
