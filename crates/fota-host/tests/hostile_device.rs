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

/// A device declaring absurd block erases (`Info` tag 10, u32s of bytes and
/// milliseconds): a "block" of nearly 4 GiB that fits nowhere, and a 64 KiB block that
/// takes weeks. The host never asks for either (the first fits in no slot, the second is
/// slower than its sectors), waits at most `MAX_SECTOR_ERASE` beyond its reply timeout
/// for any answer, and the update goes through with sector erases in the flash's own
/// time.
#[test]
fn a_device_declaring_absurd_block_erases_is_updated_with_sector_erases() {
    use fota_host::protocol::{BlockErase, SlotKind};
    use fota_host::sim::{SimTransport, Virtual};
    use fota_host::update::{Plan, update};
    use fota_host::{Device, Image, NullObserver};
    use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
    use futures::executor::block_on;

    static ABSURD: [BlockErase; 2] = [
        BlockErase {
            size: 64 * 1024,
            ms: u32::MAX,
        },
        BlockErase {
            size: 0xFFFF_F000,
            ms: 1,
        },
    ];
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.declared_block_erases = Some(&ABSURD);
    // The host's plan is under test: an agent that erases in the background (Info tag
    // 11) erases whole declared blocks of the ranges it is given back to back, whatever
    // the host's units (crate fota_agent::background); this one waits for each erase.
    cfg.erase_suspend = false;
    let sim = SimDevice::new(cfg);
    let mut dev = Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver));
    let baud = block_on(dev.negotiate_baud(&[921_600])).expect("baud");
    assert_eq!(baud, 921_600);
    let info = block_on(dev.hello()).expect("hello");
    assert_eq!(info.block_erases.as_slice(), ABSURD, "declared as given");
    // MAX_SECTOR_ERASE: 60 s.
    let most = dev.timeouts.reply + std::time::Duration::from_secs(60);
    assert!(dev.reply_timeout() <= most, "{:?}", dev.reply_timeout());
    // A whole 256 KiB slot: four aligned 64 KiB blocks the plan could take.
    let body = 256 * 1024 - fota_sim::images::HEADER_LEN - 64;
    let bytes = fota_sim::images::sample_image(SlotKind::Bytecode, "big", "2", true, body);
    let mut plan = Plan::new(Image::new("big.bin", bytes).expect("image"));
    plan.codec = fota_host::Codec::None;
    plan.restart = false;
    // No comparison first: every sector is erased.
    plan.resume = false;
    let t = dev.now();
    let report = block_on(update(&mut dev, &plan)).expect("the update goes through");
    assert_eq!(report.outcome, Outcome::Attempted);
    let flash = dev.link().device().flash();
    assert_eq!(flash.block_erases_done(), 0, "no block erase asked");
    assert!(flash.total_erases() >= 64, "every sector erased");
    // 64 sectors of 45 ms and the line: seconds, not weeks.
    assert!(dev.now() - t < std::time::Duration::from_secs(10));
}
