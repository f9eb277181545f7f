//! Entry points shared by the cargo-fuzz targets and the corpus-replay unit tests.
//! Each one checks a property, not just "no panic": decoding the same bytes in one
//! piece and one byte at a time must give the same outcome.

use crate::decoder::{Decoded, Decoder, Role};
use crate::deflate::{DeflateConfig, Inflater};
use crate::handshake::{HandshakeRequest, ResponseParser, ResponseProgress};

/// Outcome of decoding a stream, in an owned form that can be compared.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A decoded item, rendered as kind + bytes.
    Item(&'static str, Vec<u8>, Option<u16>),
    /// The decoder failed with this error.
    Error(crate::ProtocolError),
}

/// Converts a decoded item into an owned [`Outcome`].
pub fn own(d: Decoded<'_>) -> Outcome {
    match d {
        Decoded::Text(t) => Outcome::Item("text", t.as_bytes().to_vec(), None),
        Decoded::Binary(b) => Outcome::Item("binary", b.to_vec(), None),
        Decoded::Ping(p) => Outcome::Item("ping", p.to_vec(), None),
        Decoded::Pong(p) => Outcome::Item("pong", p.to_vec(), None),
        Decoded::Close { code, reason } => Outcome::Item("close", reason.as_bytes().to_vec(), code),
    }
}

/// Decodes `data` with a decoder configured from its first byte, feeding it in chunks
/// of `chunk` bytes, until the input is used up or an error.
pub fn decode_all(data: &[u8], chunk: usize) -> Vec<Outcome> {
    let Some((&cfg, stream)) = data.split_first() else { return Vec::new() };
    let role = if cfg & 1 == 0 { Role::Client } else { Role::Server };
    let max = if cfg & 2 == 0 { 1 << 16 } else { 64 };
    let mut decoder = Decoder::new(role, max);
    if cfg & 4 != 0 {
        decoder.set_inflater(Some(Inflater::new(cfg & 8 != 0)));
    }
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            match decoder.decode(rest) {
                Ok((n, item)) => {
                    if let Some(item) = item {
                        out.push(own(item));
                    }
                    rest = &rest[n..];
                }
                Err(e) => {
                    out.push(Outcome::Error(e));
                    return out;
                }
            }
        }
    }
    out
}

/// Fuzz property for the frame decoder: whole input and byte-at-a-time agree.
pub fn check_decoder(data: &[u8]) {
    let whole = decode_all(data, usize::MAX);
    let bytewise = decode_all(data, 1);
    assert_eq!(whole, bytewise, "split changed the outcome");
}

/// Feeds `data` as a handshake response in chunks of `chunk`; returns a summary.
pub fn parse_response_all(data: &[u8], chunk: usize) -> String {
    let mut req = HandshakeRequest::new("h", "/");
    req.subprotocols = vec!["chat".into()];
    req.deflate = Some(DeflateConfig::default());
    let mut parser = ResponseParser::new(&req, "dGhlIHNhbXBsZSBub25jZQ==", 4096);
    for piece in data.chunks(chunk.max(1)) {
        match parser.feed(piece) {
            Ok(ResponseProgress::Partial) => {}
            Ok(ResponseProgress::Done { accepted, .. }) => return format!("done {accepted:?}"),
            Err(e) => return format!("error {e:?}"),
        }
    }
    "partial".into()
}

/// Fuzz property for the handshake parser: whole input and byte-at-a-time agree.
pub fn check_handshake(data: &[u8]) {
    assert_eq!(parse_response_all(data, usize::MAX), parse_response_all(data, 1), "split changed the outcome");
}
