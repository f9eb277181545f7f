//! Test helpers: a seeded RNG, an RNG that yields a fixed mask key, and a decoder loop.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng, impls};

use crate::decoder::Decoder;
use crate::fuzzing::Outcome;

/// A seeded CSPRNG, as the engine uses (seeded by the OS there).
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Yields the same 4 bytes for every `next_u32`, to reproduce the RFC's masked examples.
pub struct FixedKey(pub [u8; 4]);

impl RngCore for FixedKey {
    fn next_u32(&mut self) -> u32 {
        u32::from_ne_bytes(self.0)
    }
    fn next_u64(&mut self) -> u64 {
        impls::next_u64_via_u32(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        impls::fill_bytes_via_next(self, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Decodes all of `bytes` (in chunks of `chunk`) into owned outcomes.
pub fn decode(decoder: &mut Decoder, bytes: &[u8], chunk: usize) -> Vec<Outcome> {
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            match decoder.decode(rest) {
                Ok((n, item)) => {
                    if let Some(item) = item {
                        out.push(crate::fuzzing::own(item));
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
