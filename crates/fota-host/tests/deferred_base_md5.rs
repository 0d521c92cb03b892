//! The running slot's MD5 asked behind the opening's `Hello` for a delta's base is left
//! to come while the update goes on; whatever is sent next waits for it, so that the
//! device's time hashing the base never makes another request look lost.

use fota_host::codec::{Codec, Encoder};
use fota_host::protocol::SlotKind;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan};
use fota_host::{Device, Image, NullObserver, update};
use fota_sim::device::{DeviceConfig, DeviceFlash, LayoutKind, SimDevice};
use fota_sim::images;
use futures::executor::block_on;

/// The base the device runs and the image made from it: 200 KiB each.
const LEN: usize = 200 * 1024;

/// A device running `base` whose MD5 of it takes about 4 s: 64 KiB (the step of its
/// progress reports) in 1.3 s, less than a reply's timeout (1.65 s here), the whole
/// more.
fn device(base: &[u8]) -> Device<SimTransport<Virtual>> {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.md5_ns_per_byte = 20_000;
    let vm = images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 3000);
    let bytes = cfg.flash_with(&[(SlotKind::Vm, 0, &vm), (SlotKind::Bytecode, 0, base)]);
    let mut flash = DeviceFlash::from_image(bytes).expect("whole sectors");
    flash.set_timing(cfg.timing);
    let sim = SimDevice::from_flash(cfg, flash);
    Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver))
}

/// The base's MD5 left to the delta's stream as its first check, then no stream at all
/// (the plan's encoder fails: the image goes raw): the raw image's first requests wait
/// for that answer, its progress keeping the host waiting, rather than go out behind it
/// and time out while the device hashes (the raw image's pipeline took the answer left
/// to the stream's and dropped it, and nothing waited for it: 24 requests sent again).
#[test]
fn a_base_md5_left_to_the_stream_is_waited_for_when_no_stream_goes() {
    let base = images::sample_image(SlotKind::Bytecode, "blink", "1", true, LEN);
    let image = images::sample_image(SlotKind::Bytecode, "blink", "2", true, LEN);
    let mut dev = device(&base);
    let mut plan = Plan::new(Image::new("blink-2.bin", image).expect("image"));
    plan.restart = false;
    plan.resume = false;
    plan.codec = Codec::Delta;
    plan.bases = vec![Image::new("blink-1.bin", base).expect("image")];
    plan.encoder = Some(Encoder::new(|_, _| {
        Box::pin(async { Err("the encoder is offline".to_string()) })
    }));
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Attempted);
    assert_eq!(dev.stats().resent, 0, "requests sent again");
}
