//! Property tests: whatever the messages, the fragment size, the compression settings
//! and the way the byte stream is cut into reads, what one end encodes the other end
//! decodes identically and in order. Both directions (masked client frames into a
//! server-role decoder, unmasked server frames into a client-role decoder), the
//! streaming API with control frames between the pieces, and the [`Client`] end to end
//! against a tiny in-test server. Also: any frame-shaped bytes, valid or not, decode to
//! the same items and error however they are cut. The `regression_*` tests at the end
//! pin bugs these properties found.
//!
//! Case counts are modest so the suite stays fast on two cores; set `PROPTEST_CASES`
//! to run deeper. Failures are not persisted to files (the shrunk input is printed).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::support::rng;
use crate::client::{Client, ClientConfig, Event, Initiator, State};
use crate::decoder::{Decoder, Role};
use crate::deflate::{DeflateConfig, DeflateParams, Deflater, Inflater};
use crate::encoder::{Encoder, MessageKind};
use crate::frame::Opcode;
use crate::fuzzing::{Outcome, own};
use crate::handshake::{HandshakeRequest, accept_key};

/// Size limit of the decoders under test: far above any generated message.
const MAX: usize = 1 << 20;

/// `cases` unless `PROPTEST_CASES` says otherwise; no failure files in the source tree.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 2048, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// A data message; `recipe` says how a large one was made, so a failure report stays
/// readable (the bytes themselves are printed only when short).
#[derive(Clone)]
struct Msg {
    kind: MessageKind,
    bytes: Vec<u8>,
    recipe: String,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.bytes.len() <= 96 {
            match self.kind {
                MessageKind::Text => write!(f, "Text({:?})", String::from_utf8_lossy(&self.bytes)),
                MessageKind::Binary => write!(f, "Binary({:02x?})", self.bytes),
            }
        } else {
            write!(f, "{:?}[{} bytes: {}]", self.kind, self.bytes.len(), self.recipe)
        }
    }
}

impl Msg {
    fn text(s: String, recipe: String) -> Self {
        Self { kind: MessageKind::Text, bytes: s.into_bytes(), recipe }
    }

    fn binary(bytes: Vec<u8>, recipe: String) -> Self {
        Self { kind: MessageKind::Binary, bytes, recipe }
    }

    fn expected(&self) -> Outcome {
        let kind = match self.kind {
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
        };
        Outcome::Item(kind, self.bytes.clone(), None)
    }
}

/// Payload lengths covering the 7-bit, 16-bit and 64-bit length forms and their edges.
fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0..=125usize,
        3 => 126..=4096usize,
        1 => 4097..=65535usize,
        1 => 65536..=70_000usize,
    ]
}

/// `len` bytes in one of four styles: random, low-entropy (compresses well), zeros
/// (compresses extremely well), and a ramp.
fn fill(len: usize, seed: u64, style: u8) -> Vec<u8> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0u8; len];
    match style % 4 {
        0 => r.fill_bytes(&mut out),
        1 => {
            let alphabet: Vec<u8> = (0..8).map(|_| r.next_u32() as u8).collect();
            for b in &mut out {
                *b = alphabet[(r.next_u32() % 8) as usize];
            }
        }
        2 => {}
        _ => {
            for (i, b) in out.iter_mut().enumerate() {
                *b = i as u8;
            }
        }
    }
    out
}

fn binary_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..=200).prop_map(|b| Msg::binary(b, "arbitrary".into())),
        3 => (payload_len(), any::<u64>(), any::<u8>())
            .prop_map(|(len, seed, style)| Msg::binary(fill(len, seed, style), format!("fill({len}, {seed}, {style})"))),
    ]
}

fn text_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        3 => any::<String>().prop_map(|s| Msg::text(s, "arbitrary".into())),
        2 => (vec(any::<char>(), 1..24), payload_len()).prop_map(|(chars, target)| {
            let mut s = String::with_capacity(target + 4);
            for c in chars.iter().cycle() {
                if s.len() >= target {
                    break;
                }
                s.push(*c);
            }
            Msg::text(s, format!("cycle({chars:?}) to {target} bytes"))
        }),
    ]
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![text_msg(), binary_msg()]
}

/// Fragment size for the encoder: none, tiny, or anything up to beyond the largest
/// message.
fn fragment() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        2 => Just(None),
        1 => (1..=8usize).prop_map(Some),
        2 => (9..=80_000usize).prop_map(Some),
    ]
}

/// permessage-deflate on both ends: (window bits, no context takeover, level).
fn deflate() -> impl Strategy<Value = Option<(u8, bool, u32)>> {
    option::of((8u8..=15, any::<bool>(), 0u32..=9))
}

fn ping_payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=125)
}

// ---------------------------------------------------------------------------------------
// Splitting a byte stream into reads
// ---------------------------------------------------------------------------------------

/// How a byte stream is cut into reads.
#[derive(Clone, Debug)]
enum Split {
    /// One read.
    Whole,
    /// Reads of exactly this many bytes (1: one byte at a time).
    Chunks(usize),
    /// Reads of 1..=max bytes drawn from a seeded RNG.
    Random { seed: u64, max: usize },
    /// Cuts at these positions (mapped onto the stream's length).
    Cuts(Vec<Index>),
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        1 => Just(Split::Whole),
        1 => Just(Split::Chunks(1)),
        1 => (2..=20usize).prop_map(Split::Chunks),
        2 => (any::<u64>(), prop_oneof![1..=16usize, 17..=20_000usize]).prop_map(|(seed, max)| Split::Random { seed, max }),
        2 => vec(any::<Index>(), 0..24).prop_map(Split::Cuts),
    ]
}

fn pieces<'a>(stream: &'a [u8], split: &Split) -> Vec<&'a [u8]> {
    match split {
        Split::Whole => vec![stream],
        Split::Chunks(n) => stream.chunks(*n).collect(),
        Split::Random { seed, max } => {
            let mut r = ChaCha8Rng::seed_from_u64(*seed);
            let mut out = Vec::new();
            let mut rest = stream;
            while !rest.is_empty() {
                let n = (1 + r.next_u64() as usize % max).min(rest.len());
                out.push(&rest[..n]);
                rest = &rest[n..];
            }
            out
        }
        Split::Cuts(cuts) => {
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            at.push(0);
            at.push(stream.len());
            at.sort_unstable();
            at.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
        }
    }
}

/// Decodes `pieces` in order (each one handed to the decoder as one read, the way a
/// socket loop does), checking the documented contract of `decode` on every call.
fn decode_pieces(dec: &mut Decoder, pieces: &[&[u8]]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            match dec.decode(rest) {
                Ok((n, item)) => {
                    assert!(n <= rest.len(), "consumed {n} of {}", rest.len());
                    match item {
                        Some(item) => out.push(own(item)),
                        None => assert_eq!(n, rest.len(), "(n, None) must mean the whole input was absorbed"),
                    }
                    assert!(n > 0, "no progress on {} bytes", rest.len());
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

/// A short description of an outcome (kind, length, first bytes) for failure reports.
fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Item(kind, bytes, code) => {
            let head = &bytes[..bytes.len().min(16)];
            format!(
                "{kind}[{} bytes {head:02x?}{}] code {code:?}",
                bytes.len(),
                if bytes.len() > 16 { ".." } else { "" }
            )
        }
        Outcome::Error(e) => format!("error {e:?}"),
    }
}

/// Compares outcome lists and reports the first difference compactly.
fn same(got: &[Outcome], want: &[Outcome]) -> Result<(), TestCaseError> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let first_diff = match (g, w) {
                (Outcome::Item(_, a, _), Outcome::Item(_, b, _)) => a.iter().zip(b).position(|(x, y)| x != y),
                _ => None,
            };
            return Err(TestCaseError::fail(format!(
                "item {i} differs (first differing byte {first_diff:?}):\n   got {}\n  want {}",
                describe(g),
                describe(w)
            )));
        }
    }
    if got.len() != want.len() {
        let extra: Vec<String> = got.iter().skip(want.len()).map(describe).collect();
        let missing: Vec<String> = want.iter().skip(got.len()).map(describe).collect();
        return Err(TestCaseError::fail(format!(
            "got {} items, want {}; extra {extra:?}; missing {missing:?}",
            got.len(),
            want.len()
        )));
    }
    Ok(())
}

fn ends(client_sends: bool, fragment: Option<usize>, deflate: Option<(u8, bool, u32)>) -> (Encoder, Decoder) {
    let (enc_role, dec_role) = if client_sends { (Role::Client, Role::Server) } else { (Role::Server, Role::Client) };
    let mut enc = Encoder::new(enc_role, fragment);
    let mut dec = Decoder::new(dec_role, MAX);
    if let Some((bits, no_ctx, level)) = deflate {
        enc.set_deflater(Some(Deflater::new(bits, no_ctx, level)));
        dec.set_inflater(Some(Inflater::new(no_ctx)));
    }
    (enc, dec)
}

// ---------------------------------------------------------------------------------------
// Encoder -> decoder
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(128))]

    /// Whole messages, fragmented or not, compressed or not, in either direction, read
    /// in any pieces: every message comes out identical, in order, with its kind.
    #[test]
    fn messages_roundtrip_through_any_split(
        msgs in vec(msg(), 1..7),
        client_sends in any::<bool>(),
        fragment in fragment(),
        deflate in deflate(),
        split in split(),
        seed in any::<u64>(),
    ) {
        let (mut enc, mut dec) = ends(client_sends, fragment, deflate);
        let mut r = rng(seed);
        let mut wire = Vec::new();
        for m in &msgs {
            enc.message(&mut wire, m.kind, &m.bytes, &mut r).unwrap();
        }
        let want: Vec<Outcome> = msgs.iter().map(Msg::expected).collect();
        same(&decode_pieces(&mut dec, &pieces(&wire, &split)), &want)?;
        prop_assert!(dec.at_frame_boundary());
    }

    /// The same, encoding into a reused buffer that is decoded and cleared after every
    /// message (steady state of a connection): state carried across messages (deflate
    /// context, partial headers) must not leak between them.
    #[test]
    fn messages_roundtrip_one_write_at_a_time(
        msgs in vec(msg(), 1..7),
        client_sends in any::<bool>(),
        fragment in fragment(),
        deflate in deflate(),
        split in split(),
        seed in any::<u64>(),
    ) {
        let (mut enc, mut dec) = ends(client_sends, fragment, deflate);
        let mut r = rng(seed);
        let mut wire = Vec::new();
        for m in &msgs {
            wire.clear();
            enc.message(&mut wire, m.kind, &m.bytes, &mut r).unwrap();
            same(&decode_pieces(&mut dec, &pieces(&wire, &split)), &[m.expected()])?;
            prop_assert!(dec.at_frame_boundary());
        }
    }
}

/// A frame as a fuzzer might write it: any FIN/RSV/opcode/mask, a payload that is
/// text, binary or a close body, and sometimes a length that lies.
fn soup_frame() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        vec(any::<u8>(), 0..=140),
        any::<String>().prop_map(String::into_bytes),
        (0u16..5000, any::<String>()).prop_map(|(code, reason)| [&code.to_be_bytes()[..], reason.as_bytes()].concat()),
    ];
    (
        any::<bool>(),
        0u8..8,
        prop_oneof![4 => 0u8..3, 3 => 8u8..11, 1 => 0u8..16],
        any::<Option<[u8; 4]>>(),
        body,
        -2i64..=2,
        0u8..4,
    )
        .prop_map(|(fin, rsv, opcode, mask, body, lie, form)| {
            let rsv = if rsv < 5 { 0 } else { rsv };
            let len = if lie != 0 && form == 0 { (body.len() as i64 + lie).max(0) as u64 } else { body.len() as u64 };
            let h = crate::frame::FrameHeader { fin: fin || opcode >= 8, rsv, opcode, mask, payload_len: len };
            let (buf, n) = h.encode_with_length_form(match form {
                1 => Some(2),
                2 => Some(8),
                _ => None,
            });
            let mut out = buf[..n].to_vec();
            let mut body = body;
            if let Some(key) = mask {
                crate::mask::apply_mask(&mut body, key, 0);
            }
            out.extend_from_slice(&body);
            out
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever the bytes (valid or not, any decoder configuration), how they are cut
    /// into reads changes nothing: the same items, then the same error if any. The fuzz
    /// property (`fuzzing::check_decoder`: whole vs. byte at a time), generalised to any
    /// split and run on frame-shaped input on every `cargo test`.
    #[test]
    fn any_bytes_decode_the_same_however_split(
        cfg in any::<u8>(),
        frames in vec(soup_frame(), 1..8),
        split in split(),
    ) {
        let stream = frames.concat();
        let mut data = vec![cfg];
        data.extend_from_slice(&stream);
        let whole = crate::fuzzing::decode_all(&data, usize::MAX);
        let role = if cfg & 1 == 0 { Role::Client } else { Role::Server };
        let mut dec = Decoder::new(role, if cfg & 2 == 0 { 1 << 16 } else { 64 });
        if cfg & 4 != 0 {
            dec.set_inflater(Some(Inflater::new(cfg & 8 != 0)));
        }
        same(&decode_pieces(&mut dec, &pieces(&stream, &split)), &whole)?;
    }
}

/// Bytes that are almost UTF-8: a string with a few bytes overwritten or inserted
/// (surrogates, overlongs, stray continuation bytes, truncated sequences all appear).
fn nearly_utf8() -> impl Strategy<Value = Vec<u8>> {
    (any::<String>(), vec((any::<Index>(), any::<u8>(), any::<bool>()), 0..3)).prop_map(|(s, edits)| {
        let mut b = s.into_bytes();
        for (at, byte, insert) in edits {
            let i = at.index(b.len() + 1);
            if insert || i == b.len() {
                b.insert(i, byte);
            } else {
                b[i] = byte;
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// A text message cut into fragments anywhere (and read in any pieces) is accepted
    /// exactly when the whole is valid UTF-8, as `std::str::from_utf8` says: the
    /// incremental validator agrees with the standard one across every boundary.
    #[test]
    fn fragmented_text_is_accepted_iff_valid_utf8(
        bytes in nearly_utf8(),
        cuts in vec(any::<Index>(), 0..6),
        client_sends in any::<bool>(),
        split in split(),
    ) {
        let (mut enc, mut dec) = ends(client_sends, None, None);
        let r = &mut rng(3);
        let mut wire = Vec::new();
        let parts = pieces(&bytes, &Split::Cuts(cuts));
        enc.begin_fragmented(&mut wire, MessageKind::Text, parts[0], r).unwrap();
        let rest: &[&[u8]] = if parts.len() > 1 { &parts[1..] } else { &[&[]] };
        for (j, part) in rest.iter().enumerate() {
            enc.continue_fragmented(&mut wire, part, j + 1 == rest.len(), r).unwrap();
        }
        let want = match std::str::from_utf8(&bytes) {
            Ok(_) => Outcome::Item("text", bytes.clone(), None),
            Err(_) => Outcome::Error(crate::ProtocolError::InvalidUtf8),
        };
        same(&decode_pieces(&mut dec, &pieces(&wire, &split)), &[want])?;
    }
}

/// One message sent with the streaming API: its pieces and the control frames
/// (ping when `true`, pong otherwise) sent after each piece but the last.
#[derive(Clone, Debug)]
struct Streamed {
    msg: Msg,
    cuts: Vec<Index>,
    controls: Vec<Vec<(bool, Vec<u8>)>>,
}

fn streamed() -> impl Strategy<Value = Streamed> {
    (msg(), vec(any::<Index>(), 0..6), vec(vec((any::<bool>(), ping_payload()), 0..=2), 7))
        .prop_map(|(msg, cuts, controls)| Streamed { msg, cuts, controls })
}

proptest! {
    #![proptest_config(config(128))]

    /// `begin_fragmented`/`continue_fragmented` with pings and pongs between the pieces
    /// (pieces cut anywhere, even inside a UTF-8 sequence, and possibly empty): the
    /// control frames arrive in between, in order, and the message after its last piece.
    #[test]
    fn streamed_messages_with_interleaved_controls_roundtrip(
        msgs in vec(streamed(), 1..4),
        between in vec(ping_payload(), 0..3),
        client_sends in any::<bool>(),
        deflate in deflate(),
        split in split(),
        seed in any::<u64>(),
    ) {
        let (mut enc, mut dec) = ends(client_sends, None, deflate);
        let mut r = rng(seed);
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (i, s) in msgs.iter().enumerate() {
            let parts = pieces(&s.msg.bytes, &Split::Cuts(s.cuts.clone()));
            enc.begin_fragmented(&mut wire, s.msg.kind, parts[0], &mut r).unwrap();
            let rest: &[&[u8]] = if parts.len() > 1 { &parts[1..] } else { &[&[]] };
            for (j, part) in rest.iter().enumerate() {
                for (ping, payload) in &s.controls[j] {
                    let (op, kind) = if *ping { (Opcode::Ping, "ping") } else { (Opcode::Pong, "pong") };
                    enc.control(&mut wire, op, payload, &mut r).unwrap();
                    want.push(Outcome::Item(kind, payload.clone(), None));
                }
                enc.continue_fragmented(&mut wire, part, j + 1 == rest.len(), &mut r).unwrap();
            }
            want.push(s.msg.expected());
            if let Some(payload) = between.get(i) {
                enc.control(&mut wire, Opcode::Ping, payload, &mut r).unwrap();
                want.push(Outcome::Item("ping", payload.clone(), None));
            }
        }
        same(&decode_pieces(&mut dec, &pieces(&wire, &split)), &want)?;
        prop_assert!(dec.at_frame_boundary());
    }
}

// ---------------------------------------------------------------------------------------
// Client end to end
// ---------------------------------------------------------------------------------------

/// What the client offers and what the in-test server answers for permessage-deflate.
#[derive(Clone, Debug)]
struct Negotiation {
    offer: DeflateConfig,
    /// Server answers `server_no_context_takeover`.
    server_nct: bool,
    /// Server answers `client_no_context_takeover`.
    client_nct: bool,
    /// Server answers `server_max_window_bits=` (at most what was asked).
    server_bits: Option<u8>,
    /// Server answers `client_max_window_bits=` (at most what was offered).
    client_bits: Option<u8>,
    /// Server's own compression level.
    server_level: u32,
}

impl Negotiation {
    fn answer(&self) -> String {
        let mut s = String::from("Sec-WebSocket-Extensions: permessage-deflate");
        if self.server_nct {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_nct {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(b) = self.server_bits {
            s.push_str(&format!("; server_max_window_bits={b}"));
        }
        if let Some(b) = self.client_bits {
            s.push_str(&format!("; client_max_window_bits={b}"));
        }
        s + "\r\n"
    }

    fn params(&self) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: self.server_nct,
            client_no_context_takeover: self.offer.client_no_context_takeover || self.client_nct,
            server_max_window_bits: self.server_bits.unwrap_or(15),
            client_max_window_bits: self.client_bits.or(self.offer.client_max_window_bits).unwrap_or(15),
        }
    }
}

fn negotiation() -> impl Strategy<Value = Negotiation> {
    let bits = || option::of(8u8..=15);
    (any::<[bool; 4]>(), bits(), bits(), bits(), bits(), 0u32..=9, 0u32..=9).prop_map(
        |([snct, cnct, server_nct, client_nct], asked_s, offered_c, answer_s, answer_c, level, server_level)| {
            let offer = DeflateConfig {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: asked_s,
                client_max_window_bits: offered_c,
                level,
            };
            Negotiation {
                // A server may reset its context unasked; asked, this one always does.
                server_nct: server_nct || snct,
                client_nct,
                server_bits: answer_s.map(|b| asked_s.map_or(b, |a| b.min(a))),
                client_bits: answer_c.map(|b| offered_c.map_or(b, |o| b.min(o))),
                server_level,
                offer,
            }
        },
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Open,
    Item(Outcome),
    Closed(Option<u16>, String, Initiator),
}

fn own_event(e: Event<'_>) -> Ev {
    match e {
        Event::Open => Ev::Open,
        Event::Text(t) => Ev::Item(Outcome::Item("text", t.as_bytes().to_vec(), None)),
        Event::Binary(b) => Ev::Item(Outcome::Item("binary", b.to_vec(), None)),
        Event::Ping(p) => Ev::Item(Outcome::Item("ping", p.to_vec(), None)),
        Event::Pong(p) => Ev::Item(Outcome::Item("pong", p.to_vec(), None)),
        Event::Closed { code, reason, initiator } => Ev::Closed(code, reason.to_owned(), initiator),
    }
}

/// Hands `bytes` to the client in the reads `split` makes; collects its events.
fn client_reads(c: &mut Client, bytes: &[u8], split: &Split, r: &mut ChaCha8Rng) -> Vec<Ev> {
    let mut events = Vec::new();
    for piece in pieces(bytes, split) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (n, ev) = c.receive(rest, r).expect("the in-test server sends only valid frames");
            assert!(n <= rest.len());
            assert!(n > 0 || ev.is_some(), "no progress");
            events.extend(ev.map(own_event));
            rest = &rest[n..];
        }
    }
    events
}

/// Drains the client's pending transmit in the writes `split` makes (partial writes
/// acknowledged with `advance_transmit`); returns the bytes.
fn client_writes(c: &mut Client, split: &Split) -> Vec<u8> {
    let pending = c.pending_transmit().to_vec();
    let mut written = Vec::new();
    for piece in pieces(&pending, split) {
        assert_eq!(c.pending_transmit(), &pending[written.len()..], "pending shrinks by what was written");
        written.extend_from_slice(piece);
        c.advance_transmit(piece.len());
    }
    assert!(c.pending_transmit().is_empty());
    written
}

/// The server end: a server-role decoder and encoder, set up from the negotiation.
struct TinyServer {
    dec: Decoder,
    enc: Encoder,
    rng: ChaCha8Rng,
}

impl TinyServer {
    /// Reads the upgrade request, returns the server and its 101 answer.
    fn accept(request: &[u8], deflate: Option<&Negotiation>, fragment: Option<usize>, seed: u64) -> (Self, Vec<u8>) {
        let request = std::str::from_utf8(request).expect("the upgrade request is ASCII");
        assert!(request.starts_with("GET /ws HTTP/1.1\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n"), "{request}");
        let key = request.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).expect("request carries a key");
        let mut dec = Decoder::new(Role::Server, MAX);
        let mut enc = Encoder::new(Role::Server, fragment);
        let mut extensions = String::new();
        if let Some(n) = deflate {
            let offer = format!("Sec-WebSocket-Extensions: {}\r\n", n.offer.offer());
            assert!(request.contains(&offer), "offer {offer:?} missing from {request}");
            let p = n.params();
            enc.set_deflater(Some(Deflater::new(
                p.server_max_window_bits,
                p.server_no_context_takeover,
                n.server_level,
            )));
            dec.set_inflater(Some(Inflater::new(p.client_no_context_takeover)));
            extensions = n.answer();
        }
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extensions}\r\n",
            accept_key(key)
        );
        (Self { dec, enc, rng: rng(seed ^ 0x5e5e) }, answer.into_bytes())
    }
}

/// Everything one end-to-end run uses.
#[derive(Clone, Debug)]
struct Session {
    seed: u64,
    to_client: Vec<Msg>,
    to_server: Vec<Msg>,
    pings: Vec<Vec<u8>>,
    fragment: Option<usize>,
    deflate: Option<Negotiation>,
    reads: Split,
    writes: Split,
}

fn session() -> impl Strategy<Value = Session> {
    (
        any::<u64>(),
        vec(msg(), 0..5),
        vec(msg(), 0..5),
        vec(ping_payload(), 0..3),
        fragment(),
        option::of(negotiation()),
        split(),
        split(),
    )
        .prop_map(|(seed, to_client, to_server, pings, fragment, deflate, reads, writes)| Session {
            seed,
            to_client,
            to_server,
            pings,
            fragment,
            deflate,
            reads,
            writes,
        })
}

proptest! {
    #![proptest_config(config(64))]

    /// A `Client` against a tiny server: the 101 with the server's first frames in the
    /// same bytes, messages and pings both ways through arbitrary reads and partial
    /// writes, with and without negotiated permessage-deflate, then a server-initiated
    /// close echoed by the client.
    #[test]
    fn client_end_to_end(s in session()) {
        let mut r = rng(s.seed);
        let mut request = HandshakeRequest::new("127.0.0.1:9", "/ws");
        request.deflate = s.deflate.as_ref().map(|n| n.offer.clone());
        let config = ClientConfig { fragment_size: s.fragment, ..ClientConfig::default() };
        let mut c = Client::new(config, &request, 0, &mut r).unwrap();
        prop_assert_eq!(c.state(), State::Handshaking);

        let upgrade = client_writes(&mut c, &s.writes);
        let (mut server, mut wire) = TinyServer::accept(&upgrade, s.deflate.as_ref(), s.fragment, s.seed);
        let mut want = Vec::new();
        for p in &s.pings {
            server.enc.control(&mut wire, Opcode::Ping, p, &mut server.rng).unwrap();
            want.push(Outcome::Item("ping", p.clone(), None));
        }
        for m in &s.to_client {
            server.enc.message(&mut wire, m.kind, &m.bytes, &mut server.rng).unwrap();
            want.push(m.expected());
        }
        let mut got = client_reads(&mut c, &wire, &s.reads, &mut r).into_iter();
        prop_assert_eq!(got.next(), Some(Ev::Open));
        let got: Vec<Outcome> =
            got.map(|e| match e { Ev::Item(o) => o, other => panic!("unexpected {other:?}") }).collect();
        same(&got, &want)?;
        prop_assert_eq!(c.state(), State::Open);
        prop_assert_eq!(c.accepted().and_then(|a| a.deflate), s.deflate.as_ref().map(Negotiation::params));

        // Pongs were queued while reading; the client's messages follow them.
        let mut want: Vec<Outcome> = s.pings.iter().map(|p| Outcome::Item("pong", p.clone(), None)).collect();
        for m in &s.to_server {
            c.send(m.kind, &m.bytes, &mut r).unwrap();
            want.push(m.expected());
        }
        let sent = client_writes(&mut c, &s.writes);
        same(&decode_pieces(&mut server.dec, &pieces(&sent, &s.reads)), &want)?;

        let mut close = Vec::new();
        server.enc.close(&mut close, Some(1000), "done", &mut server.rng).unwrap();
        let got = client_reads(&mut c, &close, &s.reads, &mut r);
        prop_assert_eq!(got, vec![Ev::Closed(Some(1000), "done".into(), Initiator::Server)]);
        prop_assert_eq!(c.state(), State::Closed);
        let echo = client_writes(&mut c, &s.writes);
        same(&decode_pieces(&mut server.dec, &[&echo]), &[Outcome::Item("close", vec![], Some(1000))])?;
    }
}

// ---------------------------------------------------------------------------------------
// Regressions found by the properties above (fixed)
// ---------------------------------------------------------------------------------------

/// Encodes `msgs` with a context-takeover deflater and decodes them back.
fn deflate_roundtrip(msgs: &[&[u8]]) -> (Vec<u8>, Vec<Outcome>) {
    let (mut enc, mut dec) = ends(false, None, Some((15, false, 1)));
    let mut wire = Vec::new();
    for m in msgs {
        enc.message(&mut wire, MessageKind::Binary, m, &mut rng(0)).unwrap();
    }
    let out = decode_pieces(&mut dec, &[&wire]);
    (wire, out)
}

/// Was a bug: with permessage-deflate and context takeover,
/// an empty message sent after another message is encoded as an empty payload
/// (`c2 00`): zlib returns `Z_BUF_ERROR` and writes nothing on a second sync flush
/// without new input, so `Deflater::compress` has no `00 00 ff ff` tail to strip. The
/// receiver appends `00 00 ff ff` at a byte boundary, which starts a stored block
/// (LEN = 0xff00) that swallows the next messages: `["Hello", "", "", "Hello"]`
/// decodes as `["Hello", "", [00 ff ff], [02 13 00 00 00 00 ff ff]]`, silently.
/// RFC 7692 §7.2.3.6 encodes an empty message as the single octet `00`, as
/// `Deflater::compress` now does.
#[test]
fn regression_empty_message_after_another_with_context_takeover() {
    let (wire, out) = deflate_roundtrip(&[b"Hello", b"", b"", b"Hello"]);
    let want: Vec<Outcome> =
        [&b"Hello"[..], b"", b"", b"Hello"].iter().map(|m| Outcome::Item("binary", m.to_vec(), None)).collect();
    assert_eq!(out, want, "wire {wire:02x?}");
}

/// Was a bug (same cause): a streamed message whose final piece is empty keeps the sync
/// marker of the previous piece unstripped; the receiver's appended tail then opens a
/// stored block and the next message inflates to garbage (here: `InvalidUtf8` on the
/// second empty text message, `41 05 00 00 00 ff ff 80 00 41 00 80 00`).
#[test]
fn regression_streamed_message_ending_with_an_empty_piece_with_context_takeover() {
    let (mut enc, mut dec) = ends(false, None, Some((15, false, 1)));
    let mut wire = Vec::new();
    let r = &mut rng(0);
    for _ in 0..2 {
        enc.begin_fragmented(&mut wire, MessageKind::Text, b"", r).unwrap();
        enc.continue_fragmented(&mut wire, b"", true, r).unwrap();
    }
    let out = decode_pieces(&mut dec, &[&wire]);
    assert_eq!(out, [Outcome::Item("text", vec![], None), Outcome::Item("text", vec![], None)], "wire {wire:02x?}");
}

/// Was a bug: the size limit is
/// documented as applying "after decompression", but the decoder also applies it to the
/// compressed payload, so a message whose compressed form is larger than the message is
/// refused although it fits. Smallest case: RFC 7692 §7.2.3.3's stored-block "Hello"
/// (`c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00`) into a client-role decoder limited to 5
/// bytes: expected `Text("Hello")`, actual `Err(MessageTooBig)`. Random (incompressible)
/// 64-byte messages into a 64-byte limit fail the same way at every level.
#[test]
fn regression_size_limit_is_applied_to_the_compressed_payload() {
    let wire = [0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    let mut dec = Decoder::new(Role::Client, 5);
    dec.set_inflater(Some(Inflater::new(false)));
    assert_eq!(decode_pieces(&mut dec, &[&wire]), [Outcome::Item("text", b"Hello".to_vec(), None)]);
}

// ---------------------------------------------------------------------------------------
// Fixed bugs
// ---------------------------------------------------------------------------------------

/// Regression (found by `cargo fuzz`, input
/// `fuzz/regressions/frame_decoder/crash-inflate-error-depends-on-buffer-capacity`):
/// whether a compressed message that inflates past the limit and then turns corrupt
/// failed with `MessageTooBig` (1009) or `DecompressionFailed` (1007) depended on the
/// capacity the decoder's message buffer kept from earlier messages, hence on how those
/// were cut into reads. Here: a one-byte binary message, then 70 000 zeros deflated
/// (85 bytes) followed by `ff ff ff ff`, into a client-role decoder limited to 64 KiB:
/// in one read the first message is borrowed (buffer capacity stays 0), byte by byte it
/// is buffered (capacity 8). Both must fail with `MessageTooBig`, as the limit is
/// passed before the corrupt bytes.
#[test]
fn inflate_error_does_not_depend_on_earlier_buffer_capacity() {
    let mut z = Vec::new();
    Deflater::new(15, false, 9).compress(&vec![0u8; 70_000], &mut z, true);
    z.extend_from_slice(&[0xff; 4]);
    let mut data = vec![0x04, 0x82, 0x01, 0xbc, 0xc2, z.len() as u8];
    data.extend_from_slice(&z);
    let whole = crate::fuzzing::decode_all(&data, usize::MAX);
    let bytewise = crate::fuzzing::decode_all(&data, 1);
    assert_eq!(whole, bytewise, "input {data:02x?}");
    assert_eq!(whole.last(), Some(&Outcome::Error(crate::ProtocolError::MessageTooBig)));
}
