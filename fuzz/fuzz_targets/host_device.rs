//! A hostile or broken device (a simulated device whose replies the input drops, alters,
//! replaces and floods, or raw bytes) against the host's `update()` and single calls, with
//! the properties of `hostile::host_against_device` and a bound on memory.
#![no_main]

use fota_fuzz::hostile;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static METER: hostile::Meter = hostile::Meter;

/// The most a run may hold at once (the simulated device, the images, the host).
const MEMORY_LIMIT: usize = 2 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let (_, peak) = hostile::peak_during(|| hostile::host_against_device(data));
    assert!(peak <= MEMORY_LIMIT, "the run held {peak} bytes at once");
});
