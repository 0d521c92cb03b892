//! Arbitrary bytes as a slot's contents or an image file: the trailer parser and the
//! device verifier (every buffer size, every policy) never panic and agree; a trailer
//! found re-encodes to the same bytes. The same bytes as a payload pack into an image
//! that verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/image_harness.rs"]
mod image_harness;

fuzz_target!(|data: &[u8]| {
    image_harness::image_parser(data);
    if data.len() < 4096 {
        // Signing costs milliseconds: sign one input in 16.
        image_harness::pack_round_trip(data, data.first().is_some_and(|b| b & 15 == 1));
    }
});
