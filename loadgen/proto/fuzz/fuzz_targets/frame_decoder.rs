//! Frame decoder: the first byte configures the decoder (role, size limit, deflate),
//! the rest is a byte stream; decoding it whole and one byte at a time must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    loadgen_proto::fuzzing::check_decoder(data);
});
