//! Arbitrary bytes into the image decoder (after no header, a valid full-image header or
//! a valid delta header), over a flash that checks every access.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fota_fuzz::codec_harness::stream(data);
});
