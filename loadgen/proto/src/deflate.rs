//! permessage-deflate (RFC 7692): the client's offer, validation of the server's
//! answer, and per-message compression and decompression with or without context
//! takeover. Buffers are reused across messages; nothing here allocates per frame
//! once the buffers have grown to the working size.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::{HandshakeError, ProtocolError, RequestError};

/// The four octets a sender strips from the end of each compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// What the client offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask the server not to keep its compression context between messages.
    pub server_no_context_takeover: bool,
    /// Promise not to keep our compression context between messages.
    pub client_no_context_takeover: bool,
    /// Ask the server to use at most this LZ77 window (8..=15).
    pub server_max_window_bits: Option<u8>,
    /// Offer `client_max_window_bits` (with this value if `Some`, bare otherwise),
    /// which lets the server limit our window.
    pub client_max_window_bits: Option<u8>,
    /// Compression level 0..=9 (1 favours CPU, the usual choice for load generation).
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 1,
        }
    }
}

impl DeflateConfig {
    pub(crate) fn validate(&self) -> Result<(), RequestError> {
        for bits in [self.server_max_window_bits, self.client_max_window_bits].into_iter().flatten() {
            if !(8..=15).contains(&bits) {
                return Err(RequestError::InvalidWindowBits);
            }
        }
        Ok(())
    }

    /// The `Sec-WebSocket-Extensions` value of the offer.
    pub fn offer(&self) -> String {
        let mut s = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        match self.client_max_window_bits {
            Some(bits) => s.push_str(&format!("; client_max_window_bits={bits}")),
            None => s.push_str("; client_max_window_bits"),
        }
        s
    }
}

/// Parameters in force after the server accepted permessage-deflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its context after each message.
    pub server_no_context_takeover: bool,
    /// We reset our compression context after each message.
    pub client_no_context_takeover: bool,
    /// The server's window (what our inflater must accept).
    pub server_max_window_bits: u8,
    /// Our window.
    pub client_max_window_bits: u8,
}

/// Validates the server's `permessage-deflate` element (the part after the name).
pub fn parse_response(params: &str, offer: &DeflateConfig) -> Result<DeflateParams, HandshakeError> {
    let mut out = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: offer.client_no_context_takeover,
        server_max_window_bits: 15,
        client_max_window_bits: offer.client_max_window_bits.unwrap_or(15),
    };
    let mut seen = [false; 4];
    for raw in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = match raw.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (raw, None),
        };
        let slot = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err(HandshakeError::InvalidExtensionParams("unknown parameter")),
        };
        if std::mem::replace(&mut seen[slot], true) {
            return Err(HandshakeError::InvalidExtensionParams("duplicate parameter"));
        }
        match slot {
            0 | 1 if value.is_some() => {
                return Err(HandshakeError::InvalidExtensionParams("no_context_takeover takes no value"));
            }
            0 => out.server_no_context_takeover = true,
            1 => out.client_no_context_takeover = true,
            2 => {
                let bits = window_bits(value)?;
                if offer.server_max_window_bits.is_some_and(|asked| bits > asked) {
                    return Err(HandshakeError::InvalidExtensionParams("server window larger than requested"));
                }
                out.server_max_window_bits = bits;
            }
            _ => {
                // RFC 7692 §7.1.2.2: only if offered, and then it must carry a value.
                if offer.client_max_window_bits.is_none() && value.is_none() {
                    return Err(HandshakeError::InvalidExtensionParams("client_max_window_bits needs a value"));
                }
                let bits = window_bits(value)?;
                if offer.client_max_window_bits.is_some_and(|ours| bits > ours) {
                    return Err(HandshakeError::InvalidExtensionParams("client window larger than offered"));
                }
                out.client_max_window_bits = bits;
            }
        }
    }
    if offer.server_no_context_takeover && !out.server_no_context_takeover {
        // The server may ignore our request; RFC 7692 lets us decline, but we accept it:
        // decompression works either way (we simply keep the context).
    }
    Ok(out)
}

fn window_bits(value: Option<&str>) -> Result<u8, HandshakeError> {
    let v = value.ok_or(HandshakeError::InvalidExtensionParams("window bits need a value"))?;
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with('0') {
        return Err(HandshakeError::InvalidExtensionParams("window bits not a number"));
    }
    match v.parse::<u8>() {
        Ok(bits @ 8..=15) => Ok(bits),
        _ => Err(HandshakeError::InvalidExtensionParams("window bits outside 8..=15")),
    }
}

/// Compresses outgoing messages.
pub struct Deflater {
    inner: Compress,
    no_context_takeover: bool,
    window_bits: u8,
    level: u32,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("no_context_takeover", &self.no_context_takeover).finish()
    }
}

impl Deflater {
    /// A compressor for our side of the negotiated parameters.
    pub fn new(window_bits: u8, no_context_takeover: bool, level: u32) -> Self {
        // zlib cannot produce a raw deflate stream with an 8-bit window; stored blocks
        // (level 0) never refer back and so respect any window.
        let requested = (window_bits, level);
        let (level, bits) = if window_bits < 9 { (0, 9) } else { (level.min(9), window_bits) };
        Self {
            inner: Compress::new_with_window_bits(Compression::new(level), false, bits),
            no_context_takeover,
            window_bits: requested.0,
            level: requested.1,
        }
    }

    /// Whether this compressor was made by `Deflater::new` with these arguments, so it
    /// can be reused (after a reset) for a connection that negotiated the same.
    pub fn matches(&self, window_bits: u8, no_context_takeover: bool, level: u32) -> bool {
        (self.window_bits, self.no_context_takeover, self.level) == (window_bits, no_context_takeover, level)
    }

    /// Whether the context is reset after every message (nothing is carried over).
    pub fn no_context_takeover(&self) -> bool {
        self.no_context_takeover
    }

    /// Forgets the compression history.
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Bytes this compressor holds, from zlib's documented formula (zconf.h): a window
    /// of 2^(w+2) bytes plus 2^(memLevel+9) for the hash chains (memLevel 8), plus
    /// about 6 KB of state. zlib-rs allocates the same structures.
    pub fn memory_estimate(&self) -> usize {
        let bits = if self.window_bits < 9 { 9 } else { u32::from(self.window_bits.min(15)) };
        (1 << (bits + 2)) + (1 << (8 + 9)) + 6 * 1024
    }

    /// Appends the compressed form of `input` to `out`. With `fin`, ends the message:
    /// the trailing `00 00 FF FF` is stripped and, without context takeover, the
    /// context is reset. Without `fin` (a fragment of a streamed message) the sync
    /// flush marker stays, as RFC 7692 §7.2.1 allows.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, fin: bool) {
        let start = out.len();
        let before_in = self.inner.total_in();
        loop {
            out.reserve(input.len() / 2 + 64);
            let consumed = (self.inner.total_in() - before_in) as usize;
            let status = self
                .inner
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .expect("deflate never fails on valid state");
            let done = (self.inner.total_in() - before_in) as usize == input.len();
            // A sync flush is complete when input is consumed and output space remained.
            if done && out.len() < out.capacity() {
                break;
            }
            debug_assert!(status != Status::StreamEnd);
        }
        if fin {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - 4);
            }
            if out.len() == start {
                // Nothing new since the last flush: zlib writes nothing, but the receiver
                // appends 00 00 FF FF at a byte boundary, which needs the 3-bit header of
                // an empty stored block before it. RFC 7692 §7.2.3.6: send one 0x00.
                out.push(0x00);
            }
            if self.no_context_takeover {
                self.inner.reset();
            }
        }
    }
}

/// Decompresses incoming messages.
pub struct Inflater {
    inner: Decompress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("no_context_takeover", &self.no_context_takeover).finish()
    }
}

impl Inflater {
    /// A decompressor for the peer's side of the negotiated parameters. The window is
    /// always 15 bits: inflating with a larger window than the sender's is valid.
    pub fn new(no_context_takeover: bool) -> Self {
        Self { inner: Decompress::new_with_window_bits(false, 15), no_context_takeover }
    }

    /// Whether the context is reset after every message (nothing is carried over).
    pub fn no_context_takeover(&self) -> bool {
        self.no_context_takeover
    }

    /// Bytes this decompressor holds, from zlib's documented formula: a 2^15-byte window
    /// plus about 7 KB of state.
    pub fn memory_estimate(&self) -> usize {
        (1 << 15) + 7 * 1024
    }

    /// Reuses this decompressor for a connection that negotiated `no_context_takeover`.
    pub fn reset(&mut self, no_context_takeover: bool) {
        self.inner.reset(false);
        self.no_context_takeover = no_context_takeover;
    }

    /// Inflates one whole compressed message (`compressed` without the stripped tail;
    /// the tail is appended here) into `out`, failing with `MessageTooBig` as soon as
    /// `out` would exceed `max_len` (so a deflate bomb costs at most `max_len`).
    pub fn decompress(&mut self, compressed: &[u8], out: &mut Vec<u8>, max_len: usize) -> Result<(), ProtocolError> {
        self.feed(compressed, out, max_len)?;
        self.feed(&TAIL, out, max_len)?;
        if self.no_context_takeover {
            self.inner.reset(false);
        }
        Ok(())
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, max_len: usize) -> Result<(), ProtocolError> {
        let start_in = self.inner.total_in();
        loop {
            if out.len() == out.capacity() {
                if out.len() > max_len {
                    return Err(ProtocolError::MessageTooBig);
                }
                out.reserve(out.capacity().max(256).min(max_len + 1 - out.len()));
            }
            let consumed = (self.inner.total_in() - start_in) as usize;
            let before_out = out.len();
            let status = match self.inner.decompress_vec(&input[consumed..], out, FlushDecompress::Sync) {
                Ok(status) => status,
                // Output written before the corrupt point still counts: if it already
                // passed the limit, the limit was hit first, however the output was
                // chunked (the error must not depend on buffer capacities).
                Err(_) if out.len() > max_len => return Err(ProtocolError::MessageTooBig),
                Err(_) => return Err(ProtocolError::DecompressionFailed),
            };
            if out.len() > max_len {
                return Err(ProtocolError::MessageTooBig);
            }
            let consumed_now = (self.inner.total_in() - start_in) as usize;
            if status == Status::StreamEnd {
                // A final block (BFINAL) ends the stream; RFC 7692 §7.2.3.4 allows it.
                // Whatever follows starts a fresh stream.
                self.inner.reset(false);
                if consumed_now == input.len() {
                    return Ok(());
                }
                return self.feed(&input[consumed_now..], out, max_len);
            }
            if consumed_now == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if consumed_now == consumed && out.len() == before_out && out.len() < out.capacity() {
                return Err(ProtocolError::DecompressionFailed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_lists_requested_parameters() {
        let cfg = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(12),
            level: 1,
        };
        assert_eq!(
            cfg.offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
        assert_eq!(DeflateConfig::default().offer(), "permessage-deflate; client_max_window_bits");
    }

    #[test]
    fn response_parameters_are_validated() {
        let offer = DeflateConfig::default();
        let p = parse_response("; server_no_context_takeover; client_max_window_bits=\"10\"", &offer).unwrap();
        assert!(p.server_no_context_takeover);
        assert_eq!(p.client_max_window_bits, 10);
        assert_eq!(p.server_max_window_bits, 15);
        for bad in [
            "; foo",
            "; server_max_window_bits=7",
            "; server_max_window_bits=16",
            "; server_max_window_bits=010",
            "; server_max_window_bits",
            "; server_no_context_takeover; server_no_context_takeover",
            "; client_no_context_takeover=1",
            "; client_max_window_bits",
        ] {
            assert!(parse_response(bad, &offer).is_err(), "{bad}");
        }
        let strict = DeflateConfig { server_max_window_bits: Some(10), client_max_window_bits: Some(9), ..offer };
        assert!(parse_response("; server_max_window_bits=11", &strict).is_err());
        assert!(parse_response("; client_max_window_bits=10", &strict).is_err());
        assert_eq!(parse_response("", &strict).unwrap().client_max_window_bits, 9);
    }

    #[test]
    fn rfc7692_hello_examples() {
        // §7.2.3.1: "Hello" compressed is c2 f2 48 cd c9 c9 07 00 (after the 0x?? header).
        let mut inf = Inflater::new(false);
        let mut out = Vec::new();
        inf.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 1024).unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.2: the second "Hello" with context takeover refers back to the first.
        out.clear();
        inf.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 1024).unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.3: a stored (uncompressed) block.
        let mut inf = Inflater::new(false);
        out.clear();
        inf.decompress(&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00], &mut out, 1024).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn context_takeover_shrinks_repeats_and_roundtrips() {
        for no_ctx in [false, true] {
            for bits in [8, 9, 12, 15] {
                let mut def = Deflater::new(bits, no_ctx, 6);
                let mut inf = Inflater::new(no_ctx);
                let msg = b"the quick brown fox jumps over the lazy dog, again and again".repeat(4);
                let mut sizes = Vec::new();
                for _ in 0..3 {
                    let mut z = Vec::new();
                    def.compress(&msg, &mut z, true);
                    sizes.push(z.len());
                    let mut out = Vec::new();
                    inf.decompress(&z, &mut out, 1 << 20).unwrap();
                    assert_eq!(out, msg);
                }
                if !no_ctx && bits >= 9 {
                    assert!(sizes[1] < sizes[0], "takeover must shrink repeats: {sizes:?}");
                } else {
                    assert_eq!(sizes[1], sizes[0], "no takeover: every message alike");
                }
            }
        }
    }

    #[test]
    fn bombs_stop_at_the_limit_and_garbage_fails() {
        let mut def = Deflater::new(15, false, 9);
        let mut z = Vec::new();
        def.compress(&vec![0u8; 10 << 20], &mut z, true);
        assert!(z.len() < 20 << 10);
        let mut out = Vec::new();
        assert_eq!(Inflater::new(false).decompress(&z, &mut out, 1 << 20), Err(ProtocolError::MessageTooBig));
        assert!(out.capacity() <= (2 << 20) + 4096, "bounded growth: {}", out.capacity());
        let mut out = Vec::new();
        assert_eq!(
            Inflater::new(false).decompress(&[0xff, 0xff, 0xff, 0x00], &mut out, 1024),
            Err(ProtocolError::DecompressionFailed)
        );
    }
}
