//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash regressions
//! (`fuzz/regressions/<target>/`) through the same checks as the cargo-fuzz targets, so
//! every `cargo test` re-runs them on stable without libFuzzer. Each corpus must hold
//! enough files, and together they must reach every kind of decoder outcome, so this
//! cannot pass vacuously.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::ProtocolError as E;
use crate::fuzzing::{self, Outcome};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of `dir` (sorted by name), with its name; an absent directory is empty.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("readable corpus file")))
        .collect();
    out.sort();
    out
}

/// The corpus of `target`, which must exist and hold at least 10 files.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let files = files(&dir);
    assert!(files.len() >= 10, "{} holds {} files; the seed corpus is missing", dir.display(), files.len());
    files
}

/// Crash regressions of `target`; the directory may be absent or empty.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    files(&fuzz_dir().join("regressions").join(target))
}

/// Runs `check` on one input, naming the file if it panics.
fn replay(name: &str, data: &[u8], check: fn(&[u8])) {
    if std::panic::catch_unwind(|| check(data)).is_err() {
        panic!("{name} ({} bytes) fails its fuzz check: {data:02x?}", data.len());
    }
}

#[test]
fn frame_decoder_corpus_and_regressions_pass_the_fuzz_check() {
    for (name, data) in corpus("frame_decoder").iter().chain(&regressions("frame_decoder")) {
        replay(name, data, fuzzing::check_decoder);
    }
}

#[test]
fn handshake_corpus_and_regressions_pass_the_fuzz_check() {
    for (name, data) in corpus("handshake_response").iter().chain(&regressions("handshake_response")) {
        replay(name, data, fuzzing::check_handshake);
    }
}

/// The frame corpus reaches every kind of item, every protocol error the decoder has,
/// both roles and deflate with and without context takeover.
#[test]
fn frame_corpus_covers_the_decoder() {
    let mut kinds = BTreeSet::new();
    let mut errors = BTreeSet::new();
    let mut configs = BTreeSet::new();
    let mut inflated = false;
    for (_, data) in corpus("frame_decoder") {
        let Some(&cfg) = data.first() else { continue };
        let outcomes = fuzzing::decode_all(&data, usize::MAX);
        for o in &outcomes {
            match o {
                Outcome::Item(kind, ..) => {
                    kinds.insert(*kind);
                    if cfg & 4 != 0 {
                        inflated = true;
                    }
                }
                Outcome::Error(e) => {
                    kinds.insert("error");
                    errors.insert(e.name());
                }
            }
        }
        if !outcomes.is_empty() {
            configs.insert(cfg & 0b1101);
        }
    }
    assert_eq!(kinds, BTreeSet::from(["binary", "close", "error", "ping", "pong", "text"]));
    let all_errors = [
        E::MaskedFrame,
        E::UnmaskedFrame,
        E::ReservedBits,
        E::MisplacedCompressionBit,
        E::ReservedOpcode,
        E::ControlFrameTooLong,
        E::FragmentedControlFrame,
        E::UnexpectedContinuation,
        E::ExpectedContinuation,
        E::InvalidLength,
        E::MessageTooBig,
        E::InvalidUtf8,
        E::InvalidCloseCode,
        E::InvalidClosePayload,
        E::DecompressionFailed,
    ];
    let missing: Vec<&str> = all_errors.iter().map(|e| e.name()).filter(|n| !errors.contains(n)).collect();
    assert!(missing.is_empty(), "no corpus file reaches {missing:?}");
    assert!(inflated, "no corpus file decodes a compressed message");
    // Client and server role, each with deflate (with and without context takeover).
    for cfg in [0b0000, 0b0001, 0b0100, 0b0101, 0b1100] {
        assert!(configs.contains(&cfg), "no corpus file decodes anything with config {cfg:#06b}");
    }
}

/// The handshake corpus reaches an accepted 101 (with a subprotocol and with deflate),
/// each classified refusal the engine reacts to, and malformed answers.
#[test]
fn handshake_corpus_covers_the_parser() {
    let summaries: Vec<String> =
        corpus("handshake_response").iter().map(|(_, data)| fuzzing::parse_response_all(data, usize::MAX)).collect();
    let has = |needle: &str| summaries.iter().any(|s| s.contains(needle));
    assert!(has("done"), "no accepted 101");
    assert!(has("subprotocol: Some(\"chat\")"), "no 101 selecting the offered subprotocol");
    assert!(has("deflate: Some(DeflateParams"), "no 101 negotiating permessage-deflate");
    for status in [401, 403, 429, 503] {
        assert!(has(&format!("status: {status},")), "no {status} refusal");
    }
    for error in ["MalformedResponse", "BadAccept", "MissingUpgrade", "InvalidExtensionParams", "ResponseTooLarge"] {
        assert!(has(error), "no {error}");
    }
    assert!(has("partial"), "no incomplete head");
}
