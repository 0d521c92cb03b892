//! The seed's update process, step by step.

use core::time::Duration;
use fota_protocol::Layout as _;

use fota_protocol::{
    Info, Record, RecordState, RecordUpdate, Request, SlotCheck, SlotDesc, SlotKind,
};

use crate::device::attempt_request;

mod outcome;
use outcome::outcome_after;
pub use outcome::{CONFIRM_MARGIN, MAX_CONFIRM_DEADLINE, outcome_wait, watch_outcome};

use crate::observer::progress;
pub use crate::plan::{
    Plan, SlotChoice, SlotRole, agent_slot, check_for_layout, check_image, check_plan, free_slot,
    record_for_update, slot_of, slot_role, target_slot,
};
use crate::plan::{check_fits, check_index, check_vm_updatable, image_len, kind_name};
pub use crate::report::{Outcome, Report, Target};
use crate::transfer::transfer;
use crate::{Device, HostError, Image, Phase, Step, Transport};

/// Run the whole update of `plan` on `dev`.
///
/// On any error before attempt, the device still runs its current firmware and its
/// record is untouched. A cancel after attempt and before restart undoes the attempt.
pub async fn update<T: Transport>(dev: &mut Device<T>, plan: &Plan) -> Result<Report, HostError> {
    let start = dev.now();
    let mut report = Report::start();

    // 1. Record check.
    dev.observer()
        .step(Step::RecordCheck, "Reading the device's FOTA record");
    // A delta from the one base given, for the bytecode slot: the device's MD5 of the
    // bytecode slot it runs (where that base should be) rides behind the opening
    // (protocol 3), hashed while the opening's answers cross the line; the delta's base
    // check takes its answer (crate::codec::find_base).
    let base = match plan.bases.as_slice() {
        [base] if plan.vm.is_none() && base.data() != plan.bytecode.data() => {
            u32::try_from(base.len()).ok()
        }
        _ => None,
    };
    let delta = matches!(plan.codec, crate::Codec::Auto | crate::Codec::Delta);
    dev.check_in_opening(base.filter(|_| delta).map(|size| Request::ChecksumSlot {
        addr: fota_protocol::RUNNING_BYTECODE,
        size,
    }));
    let info = dev.hello().await;
    dev.check_in_opening(None);
    let info = info?;
    if !info.fota_supported {
        return Err(HostError::Unsupported);
    }
    let mut before = dev.get_record().await?;
    if before.valid == 0 {
        return Err(HostError::InvalidRecord);
    }
    dev.observer().step(
        Step::RecordCheck,
        &format!("Record valid: {}", describe(&before)),
    );

    match before.state {
        RecordState::Confirmed => {}
        // An earlier run of this plan stopped after its attempt (a lost restart, a pulled
        // cable), or its trial runs: the attempted slots hold the images. Finish it
        // instead of starting over.
        _ if attempted_holds(dev, &info, &before, plan).await? => {
            return finish_attempt(dev, &info, &before, plan, report, start).await;
        }
        RecordState::Pending => {
            // Never run: nothing is lost by going back to the last working configuration,
            // which frees the attempted slots for this image. Check first that the plan
            // can go ahead then, so that a plan that cannot changes nothing.
            check_plan(&info, &before, plan)?;
            dev.observer().step(
                Step::RecordCheck,
                &format!(
                    "An attempt of bytecode slot {} with VM slot {} is pending and has never \
                     run; {} replaces it",
                    before.bc_current, before.vm_current, plan.bytecode.name
                ),
            );
            dev.set_record(RecordUpdate {
                vm_current: before.vm_last,
                vm_last: before.vm_last,
                bc_current: before.bc_last,
                bc_last: before.bc_last,
            })
            .await?;
            before = dev.get_record().await?;
        }
        RecordState::Trial => {
            return Err(HostError::TrialRunning {
                bc_slot: before.bc_current,
                vm_slot: before.vm_current,
            });
        }
    }

    // 2. Slot choice.
    dev.observer()
        .step(Step::SlotChoice, "Choosing the slots for the new firmware");
    let bc_slot = choose_slot(dev, &info, &before, SlotKind::Bytecode, plan.bytecode_slot).await?;
    check_fits(&plan.bytecode, &bc_slot)?;
    let mut jobs = vec![(bc_slot, &plan.bytecode)];
    let mut vm_index = before.vm_current;
    if let Some(vm) = &plan.vm {
        check_vm_updatable(&info)?;
        let vm_slot = choose_slot(dev, &info, &before, SlotKind::Vm, plan.vm_slot).await?;
        check_fits(vm, &vm_slot)?;
        vm_index = u32::from(vm_slot.index);
        jobs.push((vm_slot, vm));
    }
    // The running slot's MD5 asked behind the `Hello`, for the delta's base check: its
    // answer is left to come, the stream's first requests sent meanwhile (the stream
    // takes it as its base check); anything else sent first waits for it.
    if let Some(size) = base.filter(|_| delta) {
        dev.defer_running_md5(size);
    }
    // Before anything is written: what each image is, and whether the device takes it.
    let downgrade = crate::vet::vet_jobs(dev, &info, &before, &jobs, plan).await?;
    for (slot, image) in &jobs {
        report.targets.push(Target {
            slot: *slot,
            len: image_len(image)?,
        });
        dev.observer().step(
            Step::SlotChoice,
            &format!(
                "{} ({} bytes) goes to {} slot {} at {:#x}",
                image.name,
                image.len(),
                kind_name(slot.kind),
                slot.index,
                slot.addr
            ),
        );
    }

    // 6 ahead of 3 to 5: with one image and an agent of protocol 3, the `Attempt` rides
    // right behind the `ChecksumSlot` that follows the stream, carrying the image's MD5:
    // the agent writes the record only if the slot's MD5 is that one (the gate of step
    // 5, kept: the host still compares the MD5's answer itself below), and the round
    // trip between the two is saved. Two images: each is checked first, as before.
    let bc_index = u32::from(bc_slot.index);
    let check = match jobs.as_slice() {
        [(slot, image)] => Some(SlotCheck {
            kind: slot.kind,
            len: image_len(image)?,
            md5: image.md5(),
        }),
        _ => None,
    };
    let ahead = check
        .filter(|_| dev.protocol_version() >= 3)
        .map(|c| attempt_request(bc_index, vm_index, downgrade, Some(c)));
    dev.attempt_behind_checksum(ahead);

    // 3 and 4. Erase and stream, sending only what differs.
    for (k, (slot, image)) in jobs.iter().enumerate() {
        let last = k + 1 == jobs.len();
        let sent = transfer(dev, &info, &before, slot, image, plan, last, &mut report).await;
        if let Err(e) = sent {
            let ahead = dev.attempt_went_ahead();
            dev.attempt_behind_checksum(None);
            if ahead {
                attempted_anyway(dev, &before, (bc_index, vm_index), e).await?;
            } else {
                return Err(e);
            }
        }
    }
    dev.attempt_behind_checksum(None);

    // 5. Checksum: a mismatch never reaches attempt. The image streamed last first: its
    // MD5 was asked for behind its last block (transfer).
    let t = dev.now();
    for (slot, image) in jobs.iter().rev() {
        dev.observer().step(
            Step::Checksum,
            &format!("Checking the MD5 of {} on the device", image.name),
        );
        let expected = image.md5();
        let t0 = dev.now();
        verify_slot(dev, slot, image, &mut |obs, now, done, total| {
            obs.progress(&progress(Phase::Checksum, done, total, now - t0))
        })
        .await?;
        dev.observer().step(
            Step::Checksum,
            &format!("MD5 {} matches", crate::image::hex(&expected)),
        );
        dev.observer().verified(&image.name, &expected);
    }
    report.checksum_time = dev.now() - t;

    // 6. Attempt and restart (its answer is on its way if it went behind the MD5).
    dev.observer().step(
        Step::Attempt,
        &format!("Trying bytecode slot {bc_index} with VM slot {vm_index} at the next restart"),
    );
    dev.attempt_checked(bc_index, vm_index, downgrade, check)
        .await?;
    // The record is Pending now (and an observer shows it before the restart): read
    // back, or, where the `Attempt` carried the slot's MD5 (protocol 3), the record the
    // attempt wrote by the protocol's rules (outcome::attempted_record), no answer
    // waited for.
    report.record = if check.is_some() && dev.protocol_version() >= 3 {
        let record = outcome::attempted_record(&before, &info, (bc_index, vm_index));
        dev.observer().record(&record);
        record
    } else {
        dev.get_record().await?
    };
    if !plan.restart {
        report.total_time = dev.now() - start;
        return Ok(report);
    }
    if dev.cancel_token().is_cancelled() {
        undo_attempt(dev, &before).await;
        return Err(HostError::Cancelled);
    }
    dev.observer()
        .step(Step::Restart, "Restarting the device into the new firmware");
    let restarted = dev.now();
    dev.restart().await?;
    let after = dev.wait_for_device().await?;

    // 7. Outcome.
    let (outcome, record) = outcome_after(
        dev,
        &before,
        (bc_index, vm_index),
        &after,
        Some(restarted),
        plan,
    )
    .await?;
    report.outcome = outcome;
    report.record = record;
    report.total_time = dev.now() - start;
    Ok(report)
}

/// After `error` in the transfer, once the `Attempt` went behind the stream's MD5: the
/// agent ran it after everything before it, and it may have written the record (the
/// slot's MD5 was the image's: the last answers were lost, say, and a request sent again
/// behind them found the stream over or the slot in use). `Ok` when the record now names
/// the attempted slots (the update goes on with its checks, which then ask again);
/// otherwise `error`. A cancel puts the record back as it was.
async fn attempted_anyway<T: Transport>(
    dev: &mut Device<T>,
    before: &Record,
    (bc_index, vm_index): (u32, u32),
    error: HostError,
) -> Result<(), HostError> {
    if matches!(error, HostError::Link(_) | HostError::NoAnswer) {
        return Err(error);
    }
    let cancelled = matches!(error, HostError::Cancelled);
    if cancelled {
        dev.cancel_token().reset();
    }
    let record = dev.get_record().await;
    let took = record.is_ok_and(|r| {
        (r.bc_current, r.vm_current) == (bc_index, vm_index)
            && (before.bc_current, before.vm_current) != (bc_index, vm_index)
    });
    if cancelled {
        if took {
            undo_attempt(dev, before).await;
        }
        dev.cancel_token().cancel();
        return Err(error);
    }
    if !took {
        return Err(error);
    }
    dev.observer().event(&format!(
        "the device checked the slot's MD5 and recorded the attempt before this: {error}"
    ));
    Ok(())
}

/// Put the record back as it was before an attempt the user cancelled.
async fn undo_attempt<T: Transport>(dev: &mut Device<T>, before: &Record) {
    let cancel = dev.cancel_token().clone();
    cancel.reset();
    let undo = RecordUpdate {
        vm_current: before.vm_current,
        vm_last: before.vm_last,
        bc_current: before.bc_current,
        bc_last: before.bc_last,
    };
    if let Err(e) = dev.set_record(undo).await {
        dev.observer().event(&format!(
            "could not undo the attempt ({e}); it runs at the next restart"
        ));
    }
    cancel.cancel();
}

/// The record in a line: the configuration, its state, what runs.
pub fn describe(r: &Record) -> String {
    let state = match r.state {
        RecordState::Confirmed => "confirmed".to_string(),
        RecordState::Pending => format!(
            "pending: tried at the next restart, bytecode slot {} and VM slot {} are the last \
             working ones",
            r.bc_last, r.vm_last
        ),
        RecordState::Trial => format!(
            "on trial: not accepted yet, a restart goes back to bytecode slot {} with VM slot {}",
            r.bc_last, r.vm_last
        ),
    };
    let runs = if r.runs_current() {
        String::new()
    } else {
        format!(
            "; running now: bytecode slot {} with VM slot {}",
            r.running_bc, r.running_vm
        )
    };
    format!(
        "bytecode slot {} with VM slot {}, {state}{runs}",
        r.bc_current, r.vm_current
    )
}

async fn choose_slot<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    record: &Record,
    kind: SlotKind,
    choice: SlotChoice,
) -> Result<SlotDesc, HostError> {
    match choice {
        SlotChoice::Auto => {
            let addr = dev.find_slot(kind).await?;
            match info.slot_at(addr) {
                Some(s) if s.kind == kind && s.addr == addr => Ok(*s),
                _ => Err(HostError::Protocol(format!(
                    "the agent offered {addr:#x}, which does not start a {} slot",
                    kind_name(kind)
                ))),
            }
        }
        SlotChoice::Index(index) => check_index(info, record, kind, index),
    }
}

/// Whether `slot` holds `image`: the device's MD5 of the image's length of the slot
/// against the image's, the check every attempt passes first (the update's, and the
/// `fota attempt` command's). `ChecksumMismatch` when they differ, `ImageTooLarge` when
/// the image cannot be in the slot at all.
pub async fn verify_slot<T: Transport>(
    dev: &mut Device<T>,
    slot: &SlotDesc,
    image: &Image,
    on_progress: &mut dyn FnMut(&mut dyn crate::Observer, Duration, u32, u32),
) -> Result<(), HostError> {
    check_fits(image, slot)?;
    let expected = image.md5();
    let device = dev
        .checksum_slot(slot.addr, image_len(image)?, on_progress)
        .await?;
    if device != expected {
        return Err(HostError::ChecksumMismatch { expected, device });
    }
    Ok(())
}

/// Whether the record's current slots are a new configuration holding `plan`'s images.
async fn attempted_holds<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    before: &Record,
    plan: &Plan,
) -> Result<bool, HostError> {
    let vm_new = before.vm_current != before.vm_last;
    let chosen = |choice: SlotChoice, index: u32| match choice {
        SlotChoice::Auto => true,
        SlotChoice::Index(i) => i == index,
    };
    if before.bc_current == before.bc_last
        || vm_new != plan.vm.is_some()
        || !chosen(plan.bytecode_slot, before.bc_current)
        || (vm_new && !chosen(plan.vm_slot, before.vm_current))
    {
        return Ok(false);
    }
    let mut jobs = vec![(SlotKind::Bytecode, before.bc_current, &plan.bytecode)];
    if let Some(vm) = &plan.vm {
        jobs.push((SlotKind::Vm, before.vm_current, vm));
    }
    for (kind, index, image) in jobs {
        let Some(slot) = info.slot(kind, index) else {
            return Ok(false);
        };
        match verify_slot(dev, slot, image, &mut |_, _, _, _| {}).await {
            Ok(()) => {}
            Err(HostError::ChecksumMismatch { .. } | HostError::ImageTooLarge { .. }) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Restart into an attempt that is already recorded, unless it runs already, and report
/// its outcome.
async fn finish_attempt<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    before: &Record,
    plan: &Plan,
    mut report: Report,
    start: Duration,
) -> Result<Report, HostError> {
    dev.observer().step(
        Step::Attempt,
        "The new firmware is already written, verified and attempted",
    );
    for (kind, index, image) in [
        (SlotKind::Bytecode, before.bc_current, Some(&plan.bytecode)),
        (SlotKind::Vm, before.vm_current, plan.vm.as_ref()),
    ] {
        if let (Some(image), Some(slot)) = (image, info.slot(kind, index)) {
            report.targets.push(Target {
                slot: *slot,
                len: image_len(image)?,
            });
            // `attempted_holds` compared the device's MD5 of the slot with the image.
            dev.observer().verified(&image.name, &image.md5());
        }
    }
    if !plan.restart && before.state == RecordState::Pending {
        report.record = *before;
        report.total_time = dev.now() - start;
        return Ok(report);
    }
    // Pending: it has never run, restart into it. On trial: it runs; a restart now would
    // revert it, so only wait for it to confirm itself.
    let (after, restarted) = if before.state == RecordState::Pending {
        dev.observer()
            .step(Step::Restart, "Restarting the device into the new firmware");
        let restarted = dev.now();
        dev.restart().await?;
        (dev.wait_for_device().await?, Some(restarted))
    } else {
        // On trial: its Info (read just now) says how long it has left.
        (info.clone(), None)
    };
    let (outcome, record) = outcome_after(
        dev,
        before,
        (before.bc_current, before.vm_current),
        &after,
        restarted,
        plan,
    )
    .await?;
    report.outcome = outcome;
    report.record = record;
    report.total_time = dev.now() - start;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use std::sync::Arc;

    use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
    use fota_sim::images;
    use futures::executor::block_on;

    use super::*;
    use crate::image::MD5_RUNS;
    use crate::sim::{SimTransport, Virtual};

    /// The images' bytes go from the caller to the device without a copy, and their MD5
    /// is the one computed when each image was made: the checks of an update (installed
    /// already, the base of a delta, the written slot, an attempt found written) hash no
    /// image again.
    #[test]
    fn an_update_hashes_no_image_again_and_copies_none() {
        let sim = SimDevice::new(DeviceConfig::new(LayoutKind::VmAndBytecode));
        let mut dev = Device::new(
            SimTransport::new(sim, Virtual),
            Box::new(crate::NullObserver),
        );
        let bc = Image::new("blink-v2.bin", images::blink_v2()).expect("image");
        let vm = Image::new("vm-v2.bin", images::vm_v2()).expect("image");
        let base = Image::new("blink-v1.bin", images::blink_v1()).expect("image");
        let made = MD5_RUNS.with(Cell::get);
        let mut plan = Plan::new(bc.clone());
        plan.vm = Some(vm.clone());
        plan.bases = vec![base];
        plan.check_installed = true;
        plan.restart = false;
        // Resume hashes each sector of the padded image, not the image: off here.
        plan.resume = false;
        assert!(Arc::ptr_eq(&plan.bytecode.shared(), &bc.shared()), "shared");
        let report = block_on(update(&mut dev, &plan)).expect("update");
        assert_eq!(report.outcome, Outcome::Attempted);
        // Again: the attempted slots hold the images (the device's MD5 says), so it
        // restarts into them.
        plan.restart = true;
        let report = block_on(update(&mut dev, &plan)).expect("finish");
        assert_eq!(report.outcome, Outcome::Accepted);
        assert_eq!(MD5_RUNS.with(Cell::get), made, "no MD5 computed");
        assert_eq!(Arc::strong_count(&vm.shared()), 3, "vm, plan.vm, this call");
    }
}
