//! Valid compressed and delta streams with bytes changed, removed and repeated, into the
//! image decoder over a flash that checks every access.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fota_fuzz::codec_harness::mutated(data);
});
