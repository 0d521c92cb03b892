//! Arbitrary bytes into the frame reader (the agent's size, or a small one), every chunk
//! checked against a reference COBS + CRC-32 decoder, every decoded frame's request and
//! reply parse round-tripped through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fota_fuzz::harness::frame_decoder(data);
});
