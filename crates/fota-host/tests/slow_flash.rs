//! Flash with slow, mixed-size sectors (an STM32F4: 16, 64 and 128 KiB, erased in up to
//! 0.5, 1.1 and 2 s): the host sizes its timeouts from `Info`, waits on progress frames,
//! and a request it sends again is answered without running twice.

use std::time::Duration;

use fota_host::protocol::{Layout as _, SlotKind};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan};
use fota_host::{Device, Image, NullObserver, Observer, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use fota_sim::images;
use futures::executor::block_on;

type Dev = Device<SimTransport<Virtual>>;

fn stm32f4(layout: LayoutKind) -> DeviceConfig {
    DeviceConfig::stm32f4(layout)
}

fn device(cfg: DeviceConfig, observer: Box<dyn Observer>) -> Dev {
    Device::new(SimTransport::new(SimDevice::new(cfg), Virtual), observer)
}

/// A device whose free slots hold older firmware (an update that was reverted): they
/// must be erased before the new one goes in.
fn used_device(cfg: DeviceConfig) -> Dev {
    let old_bc = images::blink_v3_broken();
    let old_vm = images::sample_image(SlotKind::Vm, "zvm", "0.9", true, 16 * 1024);
    let flash = cfg.flash_with(&[
        (
            SlotKind::Vm,
            0,
            &images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 16 * 1024),
        ),
        (SlotKind::Bytecode, 0, &images::blink_v1()),
        (SlotKind::Vm, 1, &old_vm),
        (SlotKind::Bytecode, 1, &[old_bc.as_slice(); 8].concat()),
    ]);
    let sim = SimDevice::from_image(cfg, flash).expect("a whole flash");
    Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver))
}

/// A healthy program of `size` bytes (the `big` sample: it checks itself and accepts).
fn program(size: usize) -> Image {
    let src = fota_bytecode::samples::healthy_of_size("2", size);
    let bytes = fota_bytecode::assemble(&src).expect("the sample assembles");
    Image::new("big.bin", bytes).expect("not empty")
}

/// The whole update on 128 KiB sectors that take 2 s each to erase, in both layouts: no
/// request is sent twice (the host waits one sector's time plus its margin between
/// progress frames), and the update is accepted. Prints the figures the README quotes.
#[test]
fn a_whole_update_on_128_kib_sectors_with_2_s_erases() {
    for layout in [LayoutKind::BytecodeOnly, LayoutKind::VmAndBytecode] {
        let mut dev = used_device(stm32f4(layout));
        let info = block_on(dev.hello()).expect("hello");
        assert_eq!(info.sector_erase_ms, Some(2000), "the slowest sector");
        assert_eq!(info.largest_sector(), 128 * 1024);
        assert_eq!(
            dev.reply_timeout(),
            Duration::from_millis(3500),
            "1.5 s beyond the slowest sector"
        );
        block_on(dev.negotiate_baud(&[921_600])).expect("negotiate");
        // 200 KiB: two 128 KiB sectors of bytecode slot 1.
        let mut plan = Plan::new(program(200 * 1024));
        let vm = layout == LayoutKind::VmAndBytecode;
        if vm {
            // VM slot 1 is the 64 KiB sector 4 (1.1 s).
            plan.vm = Some(Image::new("vm.bin", images::vm_v2()).expect("image"));
        }
        let start = dev.now();
        let report = block_on(update(&mut dev, &plan)).expect("update");
        assert_eq!(report.outcome, Outcome::Accepted, "{layout:?}");
        let stats = dev.stats();
        assert_eq!(stats.resent, 0, "{layout:?}: a request was sent twice");
        // The erases overlap the stream: together they take at least the erases' time.
        let (sectors, at_least) = if vm { (3, 5.1) } else { (2, 4.0) };
        let erase_s = (report.erase_time + report.stream_time).as_secs_f64();
        assert!(
            erase_s >= at_least,
            "{layout:?}: {sectors} sectors erased and written in {erase_s:.2} s"
        );
        println!(
            "{layout:?} on STM32F4 sectors, a 200 KiB program{} at 921600 baud: update \
             {:.1} s (erase and stream {erase_s:.1} s for {sectors} sectors, of which stream \
             {:.1} s), reply \
             timeout {:.1} s, {} requests sent again",
            if vm { " and a 48 KiB VM" } else { "" },
            (dev.now() - start).as_secs_f64(),
            report.stream_time.as_secs_f64(),
            dev.reply_timeout().as_secs_f64(),
            stats.resent,
        );
    }
}

/// How the host waits on a slow erase: a progress frame after each 2 s sector, each well
/// within the reply timeout, which the first frame restarts.
#[test]
fn the_host_waits_on_progress_between_2_s_sectors() {
    let mut dev = used_device(stm32f4(LayoutKind::BytecodeOnly));
    let info = block_on(dev.hello()).expect("hello");
    let slot = *info.slot(SlotKind::Bytecode, 1).expect("slot 1");
    let t0 = dev.now();
    let mut frames = vec![t0];
    block_on(dev.erase_slot(slot.addr, slot.size, &mut |_, now, _, _| frames.push(now)))
        .expect("erase");
    frames.push(dev.now());
    let gaps: Vec<f64> = frames
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert_eq!(gaps.len(), 2, "one progress frame between the two sectors");
    let longest = gaps.iter().copied().fold(0.0, f64::max);
    assert!(longest < dev.reply_timeout().as_secs_f64(), "{gaps:?}");
    assert!(longest >= 2.0, "{gaps:?}");
    assert_eq!(dev.stats().resent, 0);
    println!(
        "erase of 256 KiB (two 128 KiB sectors): {:.2} s; silences {gaps:.2?} s against a \
         reply timeout of {:.1} s",
        (dev.now() - t0).as_secs_f64(),
        dev.reply_timeout().as_secs_f64()
    );
}

/// A host that cannot size its timeout (the agent declares no erase time) sends an
/// erase of two 2-second sectors again while it runs: each copy is answered, and the
/// sectors are erased once.
#[test]
fn a_resent_erase_is_answered_and_runs_once() {
    let cfg = DeviceConfig {
        announce_erase_time: false,
        ..stm32f4(LayoutKind::BytecodeOnly)
    };
    let mut dev = device(cfg, Box::new(NullObserver));
    let info = block_on(dev.hello()).expect("hello");
    assert_eq!(info.sector_erase_ms, None);
    assert_eq!(dev.reply_timeout(), Duration::from_millis(1500));
    let slot = *info.slot(SlotKind::Bytecode, 1).expect("slot 1");
    let erases = dev.link().device().flash().total_erases();
    let t0 = dev.now();
    let erased = block_on(dev.erase_slot(slot.addr, 200 * 1024, &mut |_, _, _, _| {}))
        .expect("the erase is answered");
    assert_eq!(erased, (slot.addr, 256 * 1024), "two whole 128 KiB sectors");
    let took = dev.now() - t0;
    let stats = dev.stats();
    assert!(stats.resent >= 1, "the host never sent it again ({took:?})");
    assert_eq!(
        dev.link().device().flash().total_erases() - erases,
        2,
        "{} copies sent; each sector must be erased once",
        stats.resent + 1
    );
    assert!(
        dev.link()
            .device()
            .link_stats()
            .is_some_and(|s| s.repeats >= 1),
        "the copies were answered from the cache"
    );
    // The next request is answered at once: nothing queued behind.
    let t1 = dev.now();
    block_on(dev.get_record()).expect("record");
    assert!(dev.now() - t1 < Duration::from_millis(100));
}
