//! The record an attempt wrote as the host works it out ([`attempted_record`]) against
//! the device's own `GetRecord` after that attempt: every record state a device can be
//! in (confirmed, pending, on trial, reverted), every pair of slots attempted (those the
//! record names, the last working ones, the others), `Attempt` and `AttemptDowngrade`,
//! on both layouts; and the record an update reports where its `Attempt` carried the
//! slot's MD5.

use fota_protocol::{Info, Record, RecordState, RecordUpdate, SlotKind};
use fota_sim::device::{DeviceConfig, DeviceFlash, LayoutKind, SimDevice};
use fota_sim::flash::FlashTiming;
use fota_sim::images;
use futures::executor::block_on;

use super::attempted_record;
use crate::sim::{SimTransport, Virtual};
use crate::update::{Outcome, Plan, update};
use crate::{Device, Image, NullObserver};

type Host = Device<SimTransport<Virtual>>;

fn config(layout: LayoutKind) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(layout);
    cfg.vm_slot_size = 8 * 1024;
    cfg.bc_slot_size = 12 * 1024;
    // Downgrades allowed: `AttemptDowngrade` is taken, not refused.
    cfg.images = fota_agent::ImagePolicy {
        allow_downgrade: true,
        ..fota_agent::ImagePolicy::OPEN
    };
    cfg
}

/// A device of `layout` whose every slot holds a healthy image that never accepts (a
/// trial stays a trial until the next restart), booted.
fn host(layout: LayoutKind) -> Host {
    let cfg = config(layout);
    let vm = images::never_accepting_image(SlotKind::Vm, "zvm", "1.0", 3000);
    let bc = images::never_accepting_image(SlotKind::Bytecode, "blink", "1", 2500);
    let slots = cfg.agent_config().slots.clone();
    let fill: Vec<(SlotKind, u32, &[u8])> = slots
        .iter()
        .map(|s| {
            let bytes: &[u8] = match s.kind {
                SlotKind::Vm => &vm,
                SlotKind::Bytecode => &bc,
            };
            (s.kind, u32::from(s.index), bytes)
        })
        .collect();
    let flash = DeviceFlash::from_image(cfg.flash_with(&fill))
        .expect("whole sectors")
        .with_timing(FlashTiming::INSTANT);
    let sim = SimDevice::from_flash(cfg, flash);
    Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver))
}

fn count(info: &Info, kind: SlotKind) -> u32 {
    info.slots.iter().filter(|s| s.kind == kind).count() as u32
}

/// How the record is brought to its state before an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// `SetRecord` alone: confirmed or pending.
    Set,
    /// Then a restart: a pending record boots on trial.
    Trial,
    /// Then another: the trial, never accepted, is reverted.
    Reverted,
}

/// Restart the device and wait for it.
fn restart(dev: &mut Host) {
    block_on(dev.restart()).expect("restart");
    block_on(dev.wait_for_device()).expect("back");
}

/// Every `(vm_current, vm_last, bc_current, bc_last)` of a layout with `vms` VM and
/// `bcs` bytecode slots.
fn records(vms: u32, bcs: u32) -> Vec<RecordUpdate> {
    let mut all = Vec::new();
    for vm_current in 0..vms {
        for vm_last in 0..vms {
            for bc_current in 0..bcs {
                for bc_last in 0..bcs {
                    all.push(RecordUpdate {
                        vm_current,
                        vm_last,
                        bc_current,
                        bc_last,
                    });
                }
            }
        }
    }
    all
}

/// What the attempts met: the states before them and the kinds of attempt.
#[derive(Default)]
struct Met {
    states: Vec<RecordState>,
    same_slots: usize,
    last_working: usize,
    downgrades: usize,
}

#[test]
fn the_worked_out_record_is_the_devices_own_after_every_attempt() {
    let mut met = Met::default();
    for layout in LayoutKind::ALL {
        let mut dev = host(layout);
        let info = block_on(dev.hello()).expect("hello");
        let (vms, bcs) = (count(&info, SlotKind::Vm), count(&info, SlotKind::Bytecode));
        let attempts: Vec<(u32, u32, bool)> = (0..bcs)
            .flat_map(|b| (0..vms).flat_map(move |v| [(b, v, false), (b, v, true)]))
            .collect();
        for set in records(vms, bcs) {
            for reach in [Reach::Set, Reach::Trial, Reach::Reverted] {
                for &(bc, vm, downgrade) in &attempts {
                    let Some(before) = reach_state(&mut dev, set, reach) else {
                        continue;
                    };
                    let asked = block_on(dev.attempt_checked(bc, vm, downgrade, None));
                    let after = block_on(dev.get_record()).expect("record");
                    if let Err(e) = asked {
                        // Refused: nothing written.
                        assert_eq!(after, before, "{e}");
                        continue;
                    }
                    let info = block_on(dev.ensure_info()).expect("info");
                    assert_eq!(
                        attempted_record(&before, &info, (bc, vm)),
                        after,
                        "{layout:?}: attempt of bytecode {bc}, VM {vm} (downgrade: \
                         {downgrade}) from {before:?}"
                    );
                    let current = (bc, vm) == (before.bc_current, before.vm_current);
                    met.states.push(before.state);
                    met.same_slots += usize::from(current);
                    met.last_working +=
                        usize::from(!current && (bc, vm) == (before.bc_last, before.vm_last));
                    met.downgrades += usize::from(downgrade);
                }
            }
        }
    }
    // Every state met, and each kind of attempt.
    for state in [
        RecordState::Confirmed,
        RecordState::Pending,
        RecordState::Trial,
    ] {
        assert!(met.states.contains(&state), "{state:?} never met");
    }
    assert!(met.same_slots > 0 && met.last_working > 0 && met.downgrades > 0);
}

/// The record after `set` (and the restarts of `reach`), `None` where `reach` does not
/// apply (no trial to boot from a confirmed record).
fn reach_state(dev: &mut Host, set: RecordUpdate, reach: Reach) -> Option<Record> {
    let now = block_on(dev.get_record()).expect("record");
    // A trial stays a trial under the same slots: back to a confirmed record first.
    if now.state == RecordState::Trial {
        block_on(dev.set_record(RecordUpdate {
            vm_current: now.vm_last,
            vm_last: now.vm_last,
            bc_current: now.bc_last,
            bc_last: now.bc_last,
        }))
        .expect("back");
    }
    block_on(dev.set_record(set)).expect("set");
    let pending = block_on(dev.get_record()).expect("record").state == RecordState::Pending;
    match reach {
        Reach::Set => {}
        _ if !pending => return None,
        Reach::Trial => restart(dev),
        Reach::Reverted => {
            restart(dev);
            restart(dev);
        }
    }
    let before = block_on(dev.get_record()).expect("record");
    let want = match reach {
        Reach::Set => before.state,
        Reach::Trial => RecordState::Trial,
        Reach::Reverted => RecordState::Confirmed,
    };
    // A trial the device could not boot is not one to attempt from.
    (before.state == want).then_some(before)
}

/// An update whose `Attempt` carries the slot's MD5 reports the record it worked out:
/// the device's own, on both layouts, from a fresh device, from a pending attempt it
/// replaces, after an accepted update (other slots current and running) and after a
/// reverted one.
#[test]
fn an_updates_worked_out_record_is_the_devices() {
    for layout in LayoutKind::ALL {
        let sim = SimDevice::new(DeviceConfig::new(layout));
        let mut dev = Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver));
        let v2 = Image::new("blink-v2.bin", images::blink_v2()).expect("image");
        let other = |tag: &str| {
            let bytes = images::sample_image(SlotKind::Bytecode, "blink", tag, true, 5000);
            Image::new(format!("blink-{tag}.bin"), bytes).expect("image")
        };
        let broken = Image::new("blink-v3.bin", images::blink_v3_broken()).expect("image");
        let attempted = |dev: &mut Host, image: &Image| {
            let mut plan = Plan::new(image.clone());
            plan.restart = false;
            let report = block_on(update(dev, &plan)).expect("update");
            assert_eq!(report.outcome, Outcome::Attempted);
            assert_eq!(dev.protocol_version(), fota_protocol::PROTOCOL_VERSION);
            let device = dev.link().device().record();
            assert_eq!(Some(report.record), device, "{layout:?}: {}", image.name);
        };
        // Fresh, then replacing the pending attempt.
        attempted(&mut dev, &v2);
        attempted(&mut dev, &other("5"));
        // Accepted: slot 1 runs; then an update from there.
        let report = block_on(update(&mut dev, &Plan::new(v2.clone()))).expect("update");
        assert_eq!(report.outcome, Outcome::Accepted);
        attempted(&mut dev, &other("6"));
        // A faulty image reverted; then an update from there.
        let report = block_on(update(&mut dev, &Plan::new(broken))).expect("update");
        assert_eq!(report.outcome, Outcome::Reverted);
        attempted(&mut dev, &other("7"));
    }
}
