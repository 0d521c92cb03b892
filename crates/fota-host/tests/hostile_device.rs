//! The `host_device` fuzz target's properties (`fuzz/`, cargo-fuzz) as proptest tests,
//! so that a plain `cargo test` checks them too. The device and the checks are in
//! `fuzz/src/hostile.rs`, included here unchanged: a simulated device whose replies a
//! script drops, repeats, alters, replaces and floods (or a raw byte stream) against
//! `update()` and the host's single calls. Whatever it does, the host does not panic,
//! finishes in bounded device time and memory, reports "verified", "accepted",
//! "reverted" or "on trial" only when the device's replies said so, attempts nothing
//! unverified, and shows device text printable and bounded.
//!
//! `PROPTEST_CASES=n` runs more cases.

#[path = "../../../fuzz/src/hostile.rs"]
mod hostile;

use fota_host::Outcome;
use proptest::prelude::*;

#[global_allocator]
static METER: hostile::Meter = hostile::Meter;

/// The most a run may hold at once: the simulated device (its flash, its lines), the
/// images, and the host. Nothing the device sends may make it grow.
const MEMORY_LIMIT: usize = 2 * 1024 * 1024;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Scripts: mostly-honest devices (a few decisions in a run of zeros) and fully hostile
/// ones (random bytes).
fn script() -> impl Strategy<Value = Vec<u8>> {
    let sparse = (
        proptest::collection::vec(any::<u8>(), 8),
        proptest::collection::vec((0usize..400, any::<u8>()), 0..12),
    )
        .prop_map(|(head, pokes)| {
            let mut data = head;
            data.resize(400, 0);
            for (at, b) in pokes {
                data[at] = b;
            }
            data
        });
    prop_oneof![
        2 => sparse,
        1 => proptest::collection::vec(any::<u8>(), 0..600),
    ]
}

fn run(data: &[u8]) -> Option<Result<Outcome, fota_host::HostError>> {
    let (ended, peak) = hostile::peak_during(|| hostile::host_against_device(data));
    assert!(
        peak <= MEMORY_LIMIT,
        "the run held {peak} bytes at once (limit {MEMORY_LIMIT})"
    );
    ended
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_hostile_device_cannot_crash_hang_or_mislead_the_host(data in script()) {
        let _ = run(&data);
    }
}

/// An honest device (an empty script) gets a whole, accepted update: the harness's
/// device is a real one, so the properties above are checked on the paths that matter.
#[test]
fn an_empty_script_is_an_honest_device() {
    assert_eq!(run(&[]), Some(Ok(Outcome::Accepted)));
    // A faulty firmware: reverted.
    assert_eq!(run(&[0x40]), Some(Ok(Outcome::Reverted)));
    // The VM + bytecode layout, the bytecode and a VM.
    assert_eq!(run(&[0x01, 0, 0, 1]), Some(Ok(Outcome::Accepted)));
}

/// Found by the property above: a device whose `Info` (altered by the script) declares a
/// sector erase of weeks made the host wait that long for the answer to `SetBaud`; the
/// host now waits at most `MAX_SECTOR_ERASE` for a declared erase.
#[test]
fn a_device_declaring_an_endless_sector_erase_does_not_hang_the_host() {
    let _ = run(&[
        43, 0, 0, 1, 0, 0, 12, 0, 0, 0, 51, 14, 0, 229, 0, 0, 115, 81, 55, 83, 0,
    ]);
}
