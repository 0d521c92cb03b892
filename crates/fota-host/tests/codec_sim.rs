//! Compressed and delta updates against the simulated device: the host picks the method,
//! says it in one sentence, sends fewer bytes, and the device's MD5 gate still decides.

use fota_host::codec::Codec;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan};
use fota_host::{Device, Image, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

mod support;

use support::{Lines, firmware};

fn device(lines: &Lines) -> Device<SimTransport<Virtual>> {
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    support::host_with(sim, Box::new(lines.clone()))
}

/// A healthy program of `size` bytes (it checks its own image and accepts itself).
fn program(version: &str, size: usize) -> Image {
    support::program(format!("big-{version}.bin"), version, size)
}

#[test]
fn a_compressed_update_sends_less_and_says_so() {
    let lines = Lines::default();
    let mut dev = device(&lines);
    let image = firmware(100_000);
    let mut plan = Plan::new(image.clone());
    // Not a program the simulated firmware runs: stop after the MD5 check and attempt.
    plan.restart = false;
    let report = block_on(update(&mut dev, &plan)).expect("update");
    let said = lines.take();
    let sentence = said
        .iter()
        .find(|l| l.starts_with("event: sending"))
        .unwrap_or_else(|| panic!("no sentence: {said:?}"));
    assert!(sentence.contains(": compressed (about "), "{sentence}");
    assert!(
        said.iter()
            .any(|l| l.starts_with("step: Sending") && l.contains("KiB for 98 KiB")),
        "{said:?}"
    );
    assert!(
        report.sent_bytes * 3 < image.len() as u64,
        "{} bytes sent for {}",
        report.sent_bytes,
        image.len()
    );
    assert_eq!(report.outcome, Outcome::Attempted);
}

#[test]
fn a_delta_from_the_running_firmware() {
    let lines = Lines::default();
    let mut dev = device(&lines);
    let v2 = program("2", 100_000);
    block_on(update(&mut dev, &Plan::new(v2.clone()))).expect("first update");
    lines.take();
    // v3 differs from v2 in its version string: a delta from the running v2.
    let v3 = program("3", 100_000);
    let mut plan = Plan::new(v3.clone());
    plan.bases = vec![program("1", 100_000), v2.clone()];
    let report = block_on(update(&mut dev, &plan)).expect("delta update");
    assert_eq!(report.outcome, Outcome::Accepted);
    let said = lines.take();
    let sentence = said
        .iter()
        .find(|l| l.starts_with("event: sending"))
        .unwrap_or_else(|| panic!("no sentence: {said:?}"));
    assert!(
        sentence.contains("delta from the running firmware (big-2.bin)"),
        "{sentence}"
    );
    assert!(report.sent_bytes < 2000, "{} bytes sent", report.sent_bytes);
}

#[test]
fn a_base_the_device_does_not_hold_falls_back_to_compressed() {
    let lines = Lines::default();
    let mut dev = device(&lines);
    // 200 KB: the erases queued behind the wrong base's `StreamBegin` (0.6 s of flash)
    // outlast a reply timeout; the host waits for their answers before it goes on.
    let mut plan = Plan::new(program("3", 200_000));
    plan.codec = Codec::Delta;
    plan.bases = vec![program("9", 200_000)];
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(dev.stats().resent, 0, "a request went unanswered in time");
    let said = lines.take();
    assert!(
        said.iter()
            .any(|l| l.contains("none of the base images is on the device")),
        "{said:?}"
    );
    assert!(said.iter().any(|l| l.ends_with(": compressed")), "{said:?}");
    // The device's MD5 of the running slot, asked behind the `Hello` (protocol 3), said
    // the base is not there before any stream began against it (an agent of version 2
    // has the base checked at the head of the delta's pipeline, which then stops).
    assert!(
        !said
            .iter()
            .any(|l| l.contains("the delta's base is not on the device (checked by its MD5)")),
        "{said:?}"
    );
}

#[test]
fn codec_none_sends_raw() {
    let lines = Lines::default();
    let mut dev = device(&lines);
    let image = program("2", 60_000);
    let mut plan = Plan::new(image.clone());
    plan.codec = "none".parse().expect("a codec");
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(report.sent_bytes >= image.len() as u64);
    let said = lines.take();
    assert!(
        said.iter()
            .any(|l| l.starts_with("event: sending 59 KiB for 59 KiB: uncompressed (--codec none)")),
        "{said:?}"
    );
}

/// The whole update of `image` at `baud` with `latency_ms` one way (every sector erased:
/// resume off), with `codec`.
fn whole_update(
    image: &Image,
    baud: u32,
    latency_ms: u64,
    blocks: bool,
    codec: Codec,
    lines: &Lines,
) -> std::time::Duration {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.latency_ns = latency_ms * 1_000_000;
    cfg.use_block_erases = blocks;
    let sim = SimDevice::new(cfg);
    let mut dev = support::host_with(sim, Box::new(lines.clone()));
    let got = block_on(dev.negotiate_baud(&[baud])).expect("baud");
    assert_eq!(got, baud);
    let mut plan = Plan::new(image.clone());
    plan.restart = false;
    plan.resume = false;
    plan.codec = codec;
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Attempted);
    report.total_time
}

#[test]
fn the_default_picks_what_is_measured_fastest_and_says_why() {
    // An agent that erases sectors only: 200 KB to erase (45 ms a 4 KiB sector) take
    // longer than sending them at 921600 baud: the flash sets the pace. With 1 ms each
    // way and with 16 ms the raw image, which never waits for an erase's answer and whose
    // sector erases go ahead of their writes as far as the agent's queue (Info tag 8)
    // hides them, is faster than the stream, whose last frames cross the line after the
    // last erase (with 16 ms by about 1 %: the stream's frames do not wait for the
    // erases' answers either, and its `StreamBegin` goes in the same pipeline). With the
    // W25Q128JV's block erases (Info tag 10) the
    // flash does the same erases in a fifth of the time, and fewer bytes win at 921600
    // too. At 115200 the line sets the pace and fewer bytes win. Each setting is
    // measured raw and compressed, and the default must take the faster (its own update
    // costs one more round trip, to measure it).
    let image = firmware(200_000);
    let lines = Lines::default();
    let settings = [
        (921_600, 1, false, "raw"),
        (921_600, 16, false, "raw"),
        (921_600, 1, true, "compressed"),
        (921_600, 16, true, "compressed"),
        (115_200, 1, true, "compressed"),
    ];
    for (baud, latency, blocks, expected) in settings {
        let raw = whole_update(&image, baud, latency, blocks, Codec::None, &lines);
        let lzma = whole_update(&image, baud, latency, blocks, Codec::Lzma, &lines);
        lines.take();
        let auto = whole_update(&image, baud, latency, blocks, Codec::Auto, &lines);
        let said = lines.take();
        let sentence = said
            .iter()
            .find(|l| l.starts_with("event: sending"))
            .unwrap_or_else(|| panic!("no sentence: {said:?}"));
        let best = raw.min(lzma);
        let fastest = if raw <= lzma { "raw" } else { "compressed" };
        assert_eq!(
            fastest, expected,
            "{baud}/{latency} ms: raw {raw:?}, compressed {lzma:?}"
        );
        if fastest == "raw" {
            assert!(
                sentence.contains(&format!(
                    "uncompressed (the flash, not the link, sets the pace at {baud} baud: about"
                )),
                "{sentence}"
            );
        } else {
            assert!(sentence.contains(": compressed (about "), "{sentence}");
            assert!(
                sentence.contains(&format!("raw at {baud} baud)")),
                "{sentence}"
            );
        }
        // One GetRecord more: a round trip and its answer's ~80 bytes on the line.
        assert!(
            auto <= best + std::time::Duration::from_millis(2 * latency + 10),
            "{baud}/{latency} ms: auto {auto:?}, raw {raw:?}, compressed {lzma:?}"
        );
    }
}
