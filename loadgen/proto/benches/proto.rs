//! Micro-benchmarks of the per-frame hot paths of `loadgen-proto`: masking, encoding,
//! decoding and permessage-deflate. Figures go in docs/benchmarks.md, never into timed
//! tests. Run with `cargo bench -p loadgen-proto --bench proto` (or `cargo xtask bench`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loadgen_proto::deflate::{Deflater, Inflater};
use loadgen_proto::mask::apply_mask;
use loadgen_proto::{Decoded, Decoder, Encoder, MessageKind, Role};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

const SMALL: usize = 64;
const LARGE: usize = 16 << 10;

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn size_name(len: usize) -> String {
    if len >= 1024 { format!("{}KiB", len >> 10) } else { format!("{len}B") }
}

/// XOR masking of a payload already in cache.
fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for len in [SMALL, LARGE] {
        let mut buf = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("apply_mask", size_name(len)), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box([0x37, 0xfa, 0x21, 0x3d]), 0))
        });
    }
    group.finish();
}

/// `len` payload bytes placed so that `dst` (where the encoder will write them) lies
/// `distance` bytes after them modulo 4096. glibc copies of 4 KiB and more use
/// `rep movsb`, which on some CPUs (AMD Zen 3 here) is many times slower when the
/// destination is 8..=24 bytes ahead of the source modulo 4096; pinning the distance
/// keeps the figures from depending on where the allocator put the buffers.
fn placed_payload(len: usize, dst: *const u8, distance: usize) -> (Vec<u8>, usize) {
    let mut backing = vec![0u8; len + 4096];
    let offset = (dst as usize + 4 * 4096 - distance - backing.as_ptr() as usize) % 4096;
    backing[offset..offset + len].copy_from_slice(&payload(len));
    (backing, offset)
}

/// A client-role (masked) binary frame appended to a reused buffer, key from a
/// seeded ChaCha8 (the engine's per-core CSPRNG). The 16 KiB case runs twice: with
/// source and destination far apart modulo 4096, and 16 bytes apart (see
/// [`placed_payload`]).
fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (len, distance, name) in [(SMALL, 2048, "64B"), (LARGE, 2048, "16KiB"), (LARGE, 16, "16KiB_near")] {
        let mut enc = Encoder::new(Role::Client, None);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out: Vec<u8> = Vec::with_capacity(len + 14);
        let header = if len <= 125 { 6 } else { 8 };
        let (backing, offset) = placed_payload(len, out.as_ptr().wrapping_add(header), distance);
        let data = &backing[offset..offset + len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("client_binary", name), |b| {
            b.iter(|| {
                out.clear();
                enc.message(&mut out, MessageKind::Binary, black_box(data), &mut rng).unwrap();
                black_box(out.len())
            })
        });
        assert_eq!(out.len(), len + header, "the frame was written where the payload was placed for");
    }
    group.finish();
}

/// A client-role decoder reading one whole unmasked (server) binary frame per call.
fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for len in [SMALL, LARGE] {
        let mut frame = Vec::new();
        Encoder::new(Role::Server, None)
            .message(&mut frame, MessageKind::Binary, &payload(len), &mut ChaCha8Rng::seed_from_u64(2))
            .unwrap();
        let mut dec = Decoder::new(Role::Client, 1 << 20);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("client_binary", size_name(len)), |b| {
            b.iter(|| {
                let (n, item) = dec.decode(black_box(&frame)).unwrap();
                let Some(Decoded::Binary(p)) = item else { panic!("expected a binary message") };
                black_box((n, p.len()))
            })
        });
    }
    group.finish();
}

/// JSON-like text messages of about 1 KiB that differ in their values, as a load test
/// sends them.
fn json_messages() -> Vec<Vec<u8>> {
    (0..16u32)
        .map(|i| {
            let mut s = format!("{{\"id\":{i},\"op\":\"update\",\"seq\":{},\"items\":[", 1_000_003 * i);
            let mut j = 0u32;
            while s.len() < 1000 {
                s.push_str(&format!(
                    "{{\"sku\":\"A{:05}\",\"price\":{}.{:02},\"qty\":{},\"tags\":[\"new\",\"sale\"]}},",
                    (i * 7919 + j * 104_729) % 100_000,
                    (i + j * 13) % 500,
                    (i * j) % 100,
                    j % 9
                ));
                j += 1;
            }
            s.pop();
            s.push_str("]}");
            s.into_bytes()
        })
        .collect()
}

/// permessage-deflate with context takeover (15-bit window, level 1 as the client
/// uses by default), messages taken in turn.
fn deflate(c: &mut Criterion) {
    let msgs = json_messages();
    let mut group = c.benchmark_group("deflate");
    group.throughput(Throughput::Bytes(msgs[0].len() as u64));
    let mut def = Deflater::new(15, false, 1);
    let mut z = Vec::with_capacity(2048);
    let mut i = 0;
    group.bench_function("compress_1KiB_json", |b| {
        b.iter(|| {
            z.clear();
            def.compress(black_box(&msgs[i % msgs.len()]), &mut z, true);
            i += 1;
            black_box(z.len())
        })
    });
    let mut def = Deflater::new(15, false, 1);
    let mut inf = Inflater::new(false);
    let mut plain = Vec::with_capacity(2048);
    let mut i = 0;
    group.bench_function("roundtrip_1KiB_json", |b| {
        b.iter(|| {
            let msg = &msgs[i % msgs.len()];
            i += 1;
            z.clear();
            def.compress(black_box(msg), &mut z, true);
            plain.clear();
            inf.decompress(&z, &mut plain, 1 << 20).unwrap();
            debug_assert_eq!(&plain, msg);
            black_box(plain.len())
        })
    });
    group.finish();
}

criterion_group!(benches, mask, encode, decode, deflate);
criterion_main!(benches);
