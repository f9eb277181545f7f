//! Handshake response parser: any bytes as the server's answer; parsing them whole and
//! one byte at a time must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    loadgen_proto::fuzzing::check_handshake(data);
});
