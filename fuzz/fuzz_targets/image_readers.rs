//! Arbitrary bytes as a firmware file named .bin, .hex, .elf and .uf2: the raw, Intel
//! HEX, ELF and UF2 readers and the slot placement never panic, and what they read is
//! well-formed (sorted, non-overlapping segments; slot bytes inside the slot).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/image_harness.rs"]
mod image_harness;

fuzz_target!(|data: &[u8]| {
    image_harness::readers(data);
});
