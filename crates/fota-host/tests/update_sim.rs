//! The seed's whole update process against the simulated device, through the protocol,
//! in virtual time.

use fota_host::protocol::Layout as _;
use std::time::Duration;

use fota_host::protocol::RecordState;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan, SlotChoice};
use fota_host::{Device, HostError, Image, NullObserver, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use fota_sim::images;
use futures::executor::block_on;

mod support;

fn device(layout: LayoutKind) -> Device<SimTransport<Virtual>> {
    let sim = SimDevice::new(DeviceConfig::new(layout));
    Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver))
}

fn image(bytes: Vec<u8>) -> Image {
    Image::new("test.bin", bytes).expect("not empty")
}

#[test]
fn bytecode_update_is_accepted_and_survives_a_second_restart() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let plan = Plan::new(image(images::blink_v2()));
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    let r = report.record;
    assert_eq!((r.bc_current, r.bc_last), (1, 1), "{r:?}");
    // A second restart after accept keeps the new configuration.
    block_on(dev.restart()).expect("restart");
    block_on(dev.wait_for_device()).expect("back");
    let r = block_on(dev.get_record()).expect("record");
    assert_eq!((r.bc_current, r.bc_last, r.valid), (1, 1, 1));
    let boots = dev.link().device().boots();
    assert_eq!(boots.last().map(|b| b.boot.bc_slot), Some(1));
}

#[test]
fn a_faulty_bytecode_is_reverted() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let plan = Plan::new(image(images::blink_v3_broken()));
    let report = block_on(update(&mut dev, &plan)).expect("update runs");
    assert_eq!(report.outcome, Outcome::Reverted);
    assert_eq!((report.record.bc_current, report.record.bc_last), (0, 0));
    let boots = dev.link().device().boots();
    assert!(boots.iter().any(|b| b.boot.trial && b.boot.bc_slot == 1));
    assert!(
        boots
            .last()
            .is_some_and(|b| b.boot.reverted && b.boot.bc_slot == 0)
    );
}

#[test]
fn vm_and_bytecode_update_is_accepted() {
    let mut dev = device(LayoutKind::VmAndBytecode);
    let mut plan = Plan::new(image(images::blink_v2()));
    plan.vm = Some(image(images::vm_v2()));
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    let r = report.record;
    assert_eq!(
        (r.vm_current, r.vm_last, r.bc_current, r.bc_last),
        (1, 1, 1, 1),
        "{r:?}"
    );
    assert_eq!(r.vm_index, 1, "the new VM runs");
    let cfg = dev.link().device().agent_config().clone();
    assert_eq!(
        r.vm_addr,
        cfg.slot(fota_host::protocol::SlotKind::Vm, 1)
            .expect("vm1")
            .addr
    );
}

#[test]
fn vm_layout_reverts_both_when_the_bytecode_is_faulty() {
    let mut dev = device(LayoutKind::VmAndBytecode);
    let mut plan = Plan::new(image(images::blink_v3_broken()));
    plan.vm = Some(image(images::vm_v2()));
    let report = block_on(update(&mut dev, &plan)).expect("update runs");
    assert_eq!(report.outcome, Outcome::Reverted);
    let r = report.record;
    assert_eq!((r.vm_current, r.bc_current), (0, 0));
}

#[test]
fn no_restart_leaves_the_attempt_pending_for_the_next_restart() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let mut plan = Plan::new(image(images::blink_v2()));
    plan.restart = false;
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Attempted);
    assert_eq!((report.record.bc_current, report.record.bc_last), (1, 0));
    // The device still runs slot 0 until it restarts.
    assert_eq!(
        dev.link().device().current_boot().map(|b| b.bc_slot),
        Some(0)
    );
}

#[test]
fn the_current_slot_is_refused_and_nothing_changes() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let before = dev.link().device().flash_bytes().to_vec();
    let mut plan = Plan::new(image(images::blink_v2()));
    plan.bytecode_slot = SlotChoice::Index(0);
    let err = block_on(update(&mut dev, &plan)).expect_err("slot 0 is current");
    assert!(
        matches!(err, HostError::BadSlot { index: 0, .. }),
        "{err:?}"
    );
    assert_eq!(dev.link().device().flash_bytes(), &before[..]);
}

#[test]
fn an_image_larger_than_the_slot_is_refused_before_anything_is_written() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let before = dev.link().device().flash_bytes().to_vec();
    let plan = Plan::new(image(vec![0x42; 256 * 1024 + 1]));
    let err = block_on(update(&mut dev, &plan)).expect_err("too large");
    assert!(matches!(err, HostError::ImageTooLarge { .. }), "{err:?}");
    assert_eq!(dev.link().device().flash_bytes(), &before[..]);
}

#[test]
fn an_empty_image_cannot_be_made() {
    assert!(matches!(
        Image::new("empty.bin", vec![]),
        Err(HostError::EmptyImage(_))
    ));
}

#[test]
fn a_device_without_fota_support_is_reported() {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.fota_supported = false;
    let mut dev = Device::new(
        SimTransport::new(SimDevice::new(cfg), Virtual),
        Box::new(NullObserver),
    );
    let err =
        block_on(update(&mut dev, &Plan::new(image(images::blink_v2())))).expect_err("no fota");
    assert_eq!(err, HostError::Unsupported);
}

#[test]
fn a_second_update_while_an_attempt_is_pending_replaces_it() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let mut plan = Plan::new(image(images::blink_v2()));
    plan.restart = false;
    block_on(update(&mut dev, &plan)).expect("first");
    // Another image: the pending attempt never ran, so it is replaced.
    let mut other = Plan::new(image(images::blink_v3_broken()));
    other.restart = false;
    let report = block_on(update(&mut dev, &other)).expect("replaced");
    assert_eq!(report.outcome, Outcome::Attempted);
    let r = report.record;
    assert_eq!(
        (r.bc_current, r.bc_last, r.state),
        (1, 0, RecordState::Pending)
    );
    let slot = report.targets[0].slot.addr;
    let md5 = block_on(dev.checksum_slot(slot, report.targets[0].len, &mut |_, _, _, _| {}))
        .expect("md5");
    assert_eq!(md5, fota_host::md5_of(&images::blink_v3_broken()));
    // The same image again finishes the recorded attempt: nothing is sent.
    let again = block_on(update(&mut dev, &other)).expect("resume");
    assert_eq!(again.outcome, Outcome::Attempted);
    assert_eq!(again.sent_bytes, 0);
}

#[test]
fn flashing_the_same_image_again_sends_nothing() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let mut plan = Plan::new(image(images::blink_v2()));
    plan.restart = false;
    let first = block_on(update(&mut dev, &plan)).expect("first");
    assert!(first.sent_bytes >= images::blink_v2().len() as u64);
    // Undo the attempt so slot 1 is free again, then flash the same image.
    block_on(dev.set_record(fota_host::protocol::RecordUpdate {
        vm_current: 0,
        vm_last: 0,
        bc_current: 0,
        bc_last: 0,
    }))
    .expect("undo");
    let second = block_on(update(&mut dev, &plan)).expect("second");
    assert_eq!(second.sent_bytes, 0, "{second:?}");
    assert_eq!(second.skipped_bytes, images::blink_v2().len() as u64);
}

#[test]
fn negotiated_baud_is_used_and_restored_after_restart() {
    let mut dev = device(LayoutKind::BytecodeOnly);
    let baud = block_on(dev.negotiate_baud(&[921_600, 460_800])).expect("negotiate");
    assert_eq!(baud, 921_600);
    assert_eq!(dev.link().device().device_baud(), 921_600);
    let report = block_on(update(&mut dev, &Plan::new(image(images::blink_v2())))).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    // After the restart both ends are back at 115200.
    assert_eq!(dev.link().device().host_baud(), 115_200);
    let _ = Duration::ZERO;
}

/// Cancels the update once the stream passed half way.
struct CancelHalfWay(fota_host::CancelToken);

impl fota_host::Observer for CancelHalfWay {
    fn progress(&mut self, p: &fota_host::Progress) {
        if p.phase == fota_host::Phase::Stream && p.fraction() >= 0.5 {
            self.0.cancel();
        }
    }
}

#[test]
fn cancel_in_the_stream_leaves_the_current_firmware_and_the_next_flash_resumes() {
    let token = fota_host::CancelToken::new();
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let mut dev = Device::new(
        SimTransport::new(sim, Virtual),
        Box::new(CancelHalfWay(token.clone())),
    );
    dev.set_cancel(token.clone());
    let before = dev.link().device().record().expect("running");
    let big = images::sample_image(
        fota_host::protocol::SlotKind::Bytecode,
        "big",
        "2",
        true,
        128 * 1024,
    );
    let plan = Plan::new(image(big.clone()));
    let err = block_on(update(&mut dev, &plan)).expect_err("cancelled");
    assert_eq!(err, HostError::Cancelled);
    assert!(!err.help().is_empty());
    // Still running the old firmware, record untouched and valid.
    assert_eq!(dev.link().device().record(), Some(before));
    assert_eq!(
        dev.link().device().current_boot().map(|b| b.bc_slot),
        Some(0)
    );
    // Flash again: only the missing part is sent.
    token.reset();
    let mut dev = Device::new(dev.into_link(), Box::new(NullObserver));
    let report = block_on(update(&mut dev, &plan)).expect("resumed");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(report.skipped_bytes >= 48 * 1024, "{report:?}");
    assert!(report.sent_bytes <= 80 * 1024, "{report:?}");
}

#[test]
fn cancel_after_attempt_undoes_the_attempt() {
    struct CancelAtAttempt(fota_host::CancelToken);
    impl fota_host::Observer for CancelAtAttempt {
        fn step(&mut self, step: fota_host::Step, _detail: &str) {
            if step == fota_host::Step::Attempt {
                self.0.cancel();
            }
        }
    }
    let token = fota_host::CancelToken::new();
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let mut dev = Device::new(
        SimTransport::new(sim, Virtual),
        Box::new(CancelAtAttempt(token.clone())),
    );
    dev.set_cancel(token.clone());
    let err =
        block_on(update(&mut dev, &Plan::new(image(images::blink_v2())))).expect_err("cancelled");
    assert_eq!(err, HostError::Cancelled);
    let r = dev.link().device().record().expect("running");
    assert_eq!(
        (r.bc_current, r.bc_last, r.valid),
        (0, 0, 1),
        "attempt undone: {r:?}"
    );
}

#[test]
fn a_long_erase_is_slow_not_dead_and_a_dead_device_is_reported() {
    // An agent that erases by sectors and waits for them (no background erases): 64
    // units, each answered with progress.
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.use_block_erases = false;
    cfg.erase_suspend = false;
    let sim = SimDevice::new(cfg);
    let mut dev = Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver));
    block_on(dev.hello()).expect("hello");
    let slot = dev
        .link()
        .device()
        .agent_config()
        .slot(fota_host::protocol::SlotKind::Bytecode, 1)
        .copied()
        .expect("slot 1");
    let t0 = dev.now();
    // 64 sectors of 45 ms: far longer than the reply timeout, but the device reports progress.
    let mut progress_frames = 0;
    block_on(dev.erase_slot(slot.addr, slot.size, &mut |_, _, _, _| progress_frames += 1))
        .expect("erase");
    let took = dev.now() - t0;
    assert!(took > dev.timeouts.reply, "the erase took {took:?}");
    assert!(progress_frames >= 32, "{progress_frames} progress frames");
    // Power off: no answer, after the retries.
    dev.link().device_mut().cut_power();
    let err = block_on(dev.get_record()).expect_err("dead");
    assert_eq!(err, HostError::NoAnswer);
}

/// Records the order of what the observer hears.
struct Trace(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

impl fota_host::Observer for Trace {
    fn step(&mut self, step: fota_host::Step, _detail: &str) {
        self.0.borrow_mut().push(format!("{step:?}"));
    }
    fn verified(&mut self, _image: &str, md5: &[u8; 16]) {
        self.0
            .borrow_mut()
            .push(format!("verified {}", fota_host::hex(md5)));
    }
    fn resumed(&mut self, _image: &str, kept: u64, total: u64) {
        self.0.borrow_mut().push(format!("resumed {kept}/{total}"));
    }
}

#[test]
fn the_observer_hears_verified_before_attempt_and_resumed_on_a_resume() {
    let trace = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let mut dev = Device::new(
        SimTransport::new(sim, Virtual),
        Box::new(Trace(trace.clone())),
    );
    let img = image(images::blink_v2());
    let mut plan = Plan::new(img.clone());
    plan.restart = false;
    block_on(update(&mut dev, &plan)).expect("first");
    let seen = trace.borrow().clone();
    let verified = seen
        .iter()
        .position(|s| s.starts_with("verified"))
        .expect("verified");
    let attempt = seen.iter().position(|s| s == "Attempt").expect("attempt");
    assert!(verified < attempt, "{seen:?}");
    assert!(seen[verified].ends_with(&fota_host::hex(&img.md5())));
    assert!(
        !seen.iter().any(|s| s.starts_with("resumed")),
        "nothing was on the device: {seen:?}"
    );

    // Undo the attempt and flash again: all of it is on the device already.
    block_on(dev.set_record(fota_host::protocol::RecordUpdate {
        vm_current: 0,
        vm_last: 0,
        bc_current: 0,
        bc_last: 0,
    }))
    .expect("undo");
    trace.borrow_mut().clear();
    block_on(update(&mut dev, &plan)).expect("second");
    let len = img.len();
    assert!(
        trace.borrow().contains(&format!("resumed {len}/{len}")),
        "{:?}",
        trace.borrow()
    );
}

#[test]
fn a_device_that_describes_itself_wrongly_is_refused_before_anything_is_sent() {
    let good = {
        let mut dev = device(LayoutKind::BytecodeOnly);
        block_on(dev.hello()).expect("info")
    };
    type Lie = Box<dyn Fn(&mut fota_host::protocol::Info)>;
    let lies: Vec<(&str, Lie)> = vec![
        ("sector size", Box::new(|i| i.sector_size = 0xFFFF_FFFF)),
        ("sector size", Box::new(|i| i.sector_size = 3000)),
        ("write granularity", Box::new(|i| i.write_granularity = 3)),
        ("largest write", Box::new(|i| i.max_write = 1023)),
        ("requests in flight", Box::new(|i| i.max_in_flight = 0)),
        ("a slot", Box::new(|i| i.slots[1].addr = 0xFFFF_F000)),
        ("a slot", Box::new(|i| i.slots[2].size = 100)),
    ];
    for (what, lie) in lies {
        let mut info = good.clone();
        lie(&mut info);
        let mut dev = support::info_only(info);
        let err =
            block_on(update(&mut dev, &Plan::new(image(images::blink_v2())))).expect_err(what);
        assert!(
            matches!(&err, HostError::Protocol(m) if m.contains(what)),
            "{what}: {err:?}"
        );
        // The hello, and the two read-only requests that ride behind it (GetRecord,
        // FindBytecodeSlot; docs/PROTOCOL.md 6.6): nothing that reads or changes flash.
        assert_eq!(dev.stats().frames_sent, 3, "only the hello was sent");
    }
}

/// Collects the device's log lines.
struct DeviceLog(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

impl fota_host::Observer for DeviceLog {
    fn device_log(&mut self, line: &str) {
        self.0.borrow_mut().push(line.to_string());
    }
}

#[test]
fn text_the_firmware_prints_between_frames_reaches_the_observer_as_lines() {
    let lines = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let mut dev = Device::new(
        SimTransport::new(sim, Virtual),
        Box::new(DeviceLog(lines.clone())),
    );
    let report = block_on(update(
        &mut dev,
        &Plan::new(image(images::blink_v3_broken())),
    ))
    .expect("update");
    assert_eq!(report.outcome, Outcome::Reverted);
    let lines = lines.borrow();
    // Whole lines, in order, without their line ends, between the protocol's frames.
    let expect = [
        "boot: VM slot 0 @0x0, bytecode slot 1 @0x50000, on trial",
        "app: self-test failed, hanging",
        "watchdog: firmware hung, resetting",
        "boot: VM slot 0 @0x0, bytecode slot 0 @0x10000, reverted to the last working configuration",
        "app: running",
    ];
    let mut at = 0;
    for line in lines.iter() {
        assert!(
            !line.contains('\r') && !line.contains('\n') && !line.contains('\0'),
            "{line:?}"
        );
        if at < expect.len() && line == expect[at] {
            at += 1;
        }
    }
    assert_eq!(
        at,
        expect.len(),
        "missing {:?} in {lines:?}",
        expect.get(at)
    );
}

/// "The FOTA process can be performed WITHOUT stopping the current firmware execution
/// until the very end": the simulated firmware ticks every millisecond while the agent
/// leaves it the CPU. Over whole updates into dirty slots (erase, stream, checksum,
/// attempt, restart, outcome), the longest gap between two ticks of the running firmware
/// stays within one erase unit (a sector's, or a block's where the agent declares block
/// erases: the simulated W25Q128JV's 64 KiB in 150 ms) plus the handling of one frame.
#[test]
fn an_update_never_stops_the_running_firmware_for_longer_than_one_sector_erase() {
    use fota_host::protocol::SlotKind;
    for layout in [LayoutKind::BytecodeOnly, LayoutKind::VmAndBytecode] {
        let mut dev = device(layout);
        let big = |kind: SlotKind, v: &str, len: usize| {
            image(images::sample_image(kind, "big", v, true, len))
        };
        let plan = |v: &str| {
            let mut p = Plan::new(big(SlotKind::Bytecode, v, 200 * 1024));
            if layout == LayoutKind::VmAndBytecode {
                p.vm = Some(big(SlotKind::Vm, v, 40 * 1024));
            }
            p
        };
        // Two updates first, so that the next one goes to a slot full of old data.
        block_on(update(&mut dev, &plan("2"))).expect("first");
        block_on(update(&mut dev, &plan("3"))).expect("second");
        dev.link().device_mut().reset_tick_gap();
        let t0 = dev.link().device().firmware_ticks();
        let counts = dev.link().device().flash().erase_counts().to_vec();
        let report = block_on(update(&mut dev, &plan("4"))).expect("update");
        assert_eq!(report.outcome, Outcome::Accepted);
        // Every sector of the 200 KiB was erased during the update (while it streamed),
        // some of them by block erases.
        let now = dev.link().device().flash().erase_counts();
        let erased = now.iter().zip(&counts).filter(|(a, b)| a > b).count();
        assert!(dev.link().device().flash().block_erases_done() > 0);
        assert!(
            erased >= 50,
            "{layout:?}: {erased} sectors erased: {report:?}"
        );
        let t = dev.link().device().firmware_ticks();
        let timing = dev.link().device().config().timing;
        // One frame: the largest write programmed and read back three times, plus the
        // firmware's own tick.
        let max_write = usize::from(block_on(dev.hello()).expect("info").max_write);
        let frame = timing.program_ns(0, max_write)
            + 3 * timing.read_ns(max_write)
            + fota_sim::device::TICK_NS;
        let unit = (timing.block_erases.iter().map(|b| b.1)).fold(timing.sector_erase_ns, u64::max);
        let bound = unit + frame;
        println!(
            "{layout:?}: {} firmware ticks over {:.2} s of update; longest stall {:.1} ms \
             (bound {:.1} ms: the longest erase unit {:.1} ms + one frame {:.1} ms); erase {:.2} s",
            t.count - t0.count,
            report.total_time.as_secs_f64(),
            t.longest_gap_ns as f64 / 1e6,
            bound as f64 / 1e6,
            unit as f64 / 1e6,
            frame as f64 / 1e6,
            report.erase_time.as_secs_f64(),
        );
        assert!(
            t.longest_gap_ns <= bound,
            "{layout:?}: the firmware stopped for {} ms",
            t.longest_gap_ns / 1_000_000
        );
        // It really ran meanwhile: about one tick a millisecond of the update (the reboot
        // into the new firmware excepted).
        let busy_ms = report.total_time.as_millis() as u64;
        assert!(
            t.count - t0.count > busy_ms / 2,
            "{} ticks",
            t.count - t0.count
        );
    }
}

/// Bytes that follow a `Restart` frame are dropped: the agent handles nothing after it
/// (the device resets once the reply has left), so a `GetRecord` sent in the same write
/// is not answered; after the reset the agent answers again.
#[test]
fn bytes_after_a_restart_frame_are_dropped() {
    use fota_host::Transport;
    use fota_host::protocol::{Event, FrameReader, Reply, Request, encode_request};
    let mut dev = device(LayoutKind::BytecodeOnly);
    let mut bytes = vec![0u8; 64];
    let n = encode_request(1, &Request::Restart, &mut bytes).expect("fits");
    let mut out = bytes[..n].to_vec();
    let m = encode_request(2, &Request::GetRecord, &mut bytes).expect("fits");
    out.extend_from_slice(&bytes[..m]);
    let link = dev.link();
    block_on(link.send(&out)).expect("send");
    let mut reader = FrameReader::<512>::new();
    let mut ids = Vec::new();
    let mut buf = [0u8; 512];
    let until = link.now() + Duration::from_secs(2);
    while link.now() < until {
        let n = block_on(link.recv(&mut buf, Duration::from_millis(50))).expect("recv");
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, ev) = reader.feed(rest);
            if let Some(Event::Frame(f)) = ev {
                ids.push((f.id, f.reply().expect("reply")));
            }
            rest = &rest[used..];
        }
    }
    assert_eq!(
        ids,
        [(1, Reply::Restarting)],
        "only the Restart is answered"
    );
    assert!(block_on(dev.wait_for_device()).is_ok());
    block_on(dev.get_record()).expect("answers after the reset");
}

/// The observer hears every record the update reads, so a view of the record (the web
/// app's panel and flash map) follows it live: Confirmed at the record check, Pending
/// after attempt, Trial after the restart, then Confirmed on the new slot (accepted) or
/// back on the old one (reverted).
#[test]
fn the_observer_follows_the_record_through_attempt_trial_and_accept_or_revert() {
    use fota_host::protocol::{Record, RecordState};
    use std::cell::RefCell;
    use std::rc::Rc;
    #[derive(Clone, Default)]
    struct Records(Rc<RefCell<Vec<Record>>>);
    impl fota_host::Observer for Records {
        fn record(&mut self, r: &Record) {
            self.0.borrow_mut().push(*r);
        }
    }
    for (bytes, accepted) in [
        (images::blink_v2(), true),
        (images::blink_v3_broken(), false),
    ] {
        let seen = Records::default();
        let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
        // A self-test that takes two seconds, so that the trial is seen before it ends.
        cfg.accept_after_ns = 2_000_000_000;
        let sim = SimDevice::new(cfg);
        let mut dev = Device::new(SimTransport::new(sim, Virtual), Box::new(seen.clone()));
        block_on(update(&mut dev, &Plan::new(image(bytes)))).expect("update");
        // What the panel shows, step by step (repeats of the same record dropped).
        let mut states: Vec<(RecordState, u32, u32)> = Vec::new();
        for r in seen.0.borrow().iter() {
            let s = (r.state, r.bc_current, r.running_bc);
            if states.last() != Some(&s) {
                states.push(s);
            }
        }
        let end = if accepted {
            (RecordState::Confirmed, 1, 1)
        } else {
            (RecordState::Confirmed, 0, 0)
        };
        let expected = [
            (RecordState::Confirmed, 0, 0),
            (RecordState::Pending, 1, 0),
            (RecordState::Trial, 1, 1),
            end,
        ];
        assert_eq!(states, expected, "accepted: {accepted}");
    }
}
