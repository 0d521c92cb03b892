//! The seed's update process, step by step.

use core::time::Duration;
use fota_protocol::Layout as _;

use fota_protocol::{Info, Record, RecordUpdate, Reply, Request, SlotDesc, SlotKind};

use crate::image::md5_of;
use crate::{Device, HostError, Image, Phase, Progress, Step, Transport};

/// Which slot an image goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotChoice {
    /// The agent's choice (find_bytecode_slot / find_vm_slot).
    #[default]
    Auto,
    /// This slot index; refused if it is the current or the last working one.
    Index(u32),
}

/// What to flash and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The new bytecode.
    pub bytecode: Image,
    /// A new VM too (layouts with two VM slots only).
    pub vm: Option<Image>,
    /// Slot for the bytecode.
    pub bytecode_slot: SlotChoice,
    /// Slot for the VM.
    pub vm_slot: SlotChoice,
    /// Restart into the new configuration after attempt (else it runs at the next
    /// restart).
    pub restart: bool,
    /// After the restart, how long to wait for the new firmware to accept (or for the
    /// device to revert) before reporting it as still on trial.
    pub wait_accept: Duration,
    /// Compare the slot's sectors with the image first and send only those that differ
    /// (resume after an interruption).
    pub resume: bool,
}

impl Plan {
    /// Flash `bytecode` to an automatic slot, restart, wait up to 10 s for the outcome.
    pub fn new(bytecode: Image) -> Plan {
        Plan {
            bytecode,
            vm: None,
            bytecode_slot: SlotChoice::Auto,
            vm_slot: SlotChoice::Auto,
            restart: true,
            wait_accept: Duration::from_secs(10),
            resume: true,
        }
    }
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written, verified and attempted, not restarted: it runs from the next restart.
    Attempted,
    /// The new configuration runs, on trial: not accepted (yet).
    OnTrial,
    /// The new firmware accepted itself: it is now the last working configuration.
    Accepted,
    /// The new firmware did not accept and the device went back to the previous one.
    Reverted,
}

impl Outcome {
    /// What the device runs now, in plain words.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Attempted => {
                "The new firmware is written and verified; it will be tried at the next restart."
            }
            Outcome::OnTrial => {
                "The new firmware is running on trial: it has not confirmed itself yet. A \
                 restart before it does brings back the previous firmware."
            }
            Outcome::Accepted => {
                "The new firmware is running and has confirmed itself: the update is complete."
            }
            Outcome::Reverted => {
                "The new firmware did not confirm itself, so the device went back to the \
                 previous firmware, which is running now."
            }
        }
    }
}

/// Where an image went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The slot.
    pub slot: SlotDesc,
    /// Image size.
    pub len: u32,
}

/// What an update did, with timings for the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The record at the end.
    pub record: Record,
    /// Where the images went.
    pub targets: Vec<Target>,
    /// Image bytes that were already on the device and were not sent again.
    pub skipped_bytes: u64,
    /// Image bytes sent (resends included).
    pub sent_bytes: u64,
    /// Time spent comparing sectors (resume).
    pub compare_time: Duration,
    /// Time spent erasing.
    pub erase_time: Duration,
    /// Time spent streaming.
    pub stream_time: Duration,
    /// Time spent on the final checksum.
    pub checksum_time: Duration,
    /// Time from the first request to the outcome.
    pub total_time: Duration,
}

/// Run the whole update of `plan` on `dev`.
///
/// On any error before attempt, the device still runs its current firmware and its
/// record is untouched. A cancel after attempt and before restart undoes the attempt.
pub async fn update<T: Transport>(dev: &mut Device<T>, plan: &Plan) -> Result<Report, HostError> {
    let start = dev.now();
    let mut report = Report {
        outcome: Outcome::Attempted,
        record: Record::default(),
        targets: Vec::new(),
        skipped_bytes: 0,
        sent_bytes: 0,
        compare_time: Duration::ZERO,
        erase_time: Duration::ZERO,
        stream_time: Duration::ZERO,
        checksum_time: Duration::ZERO,
        total_time: Duration::ZERO,
    };

    // 1. Record check.
    dev.observer()
        .step(Step::RecordCheck, "Reading the device's FOTA record");
    let info = dev.hello().await?;
    if !info.fota_supported {
        return Err(HostError::Unsupported);
    }
    let before = dev.get_record().await?;
    if before.valid == 0 {
        return Err(HostError::InvalidRecord);
    }
    dev.observer().step(
        Step::RecordCheck,
        &format!(
            "Record valid: current VM slot {}, bytecode slot {}{}",
            before.vm_current,
            before.bc_current,
            if before.on_trial() {
                " (a new configuration is on trial or pending)"
            } else {
                " (accepted)"
            }
        ),
    );

    // An earlier run of this plan stopped after its attempt (a lost restart, a pulled
    // cable): the attempted slots hold the images. Finish it instead of refusing.
    if before.on_trial() && attempted_holds(dev, &info, &before, plan).await? {
        return finish_attempt(dev, &info, &before, plan, report, start).await;
    }

    // 2. Slot choice.
    dev.observer()
        .step(Step::SlotChoice, "Choosing the slots for the new firmware");
    let bc_slot = choose_slot(dev, &info, &before, SlotKind::Bytecode, plan.bytecode_slot).await?;
    check_fits(&plan.bytecode, &bc_slot)?;
    let mut jobs = vec![(bc_slot, &plan.bytecode)];
    let mut vm_index = before.vm_current;
    if let Some(vm) = &plan.vm {
        if info.count(SlotKind::Vm) < 2 {
            return Err(HostError::BadSlot {
                index: 1,
                why: "this device's layout has a single VM slot, so the VM cannot be updated"
                    .into(),
            });
        }
        let vm_slot = choose_slot(dev, &info, &before, SlotKind::Vm, plan.vm_slot).await?;
        check_fits(vm, &vm_slot)?;
        vm_index = u32::from(vm_slot.index);
        jobs.push((vm_slot, vm));
    }
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

    // 3 and 4. Erase and stream, sending only what differs.
    for (slot, image) in &jobs {
        transfer(dev, &info, slot, image, plan.resume, &mut report).await?;
    }

    // 5. Checksum: a mismatch never reaches attempt.
    let t = dev.now();
    for (slot, image) in &jobs {
        dev.observer().step(
            Step::Checksum,
            &format!("Checking the MD5 of {} on the device", image.name),
        );
        let expected = image.md5();
        let len = image_len(image)?;
        let t0 = dev.now();
        let device = dev
            .checksum_slot(slot.addr, len, &mut |obs, now, done, total| {
                obs.progress(&progress(Phase::Checksum, done, total, now - t0))
            })
            .await?;
        if device != expected {
            return Err(HostError::ChecksumMismatch { expected, device });
        }
        dev.observer().step(
            Step::Checksum,
            &format!("MD5 {} matches", crate::image::hex(&expected)),
        );
        dev.observer().verified(&image.name, &expected);
    }
    report.checksum_time = dev.now() - t;

    // 6. Attempt and restart.
    let bc_index = u32::from(bc_slot.index);
    dev.observer().step(
        Step::Attempt,
        &format!("Trying bytecode slot {bc_index} with VM slot {vm_index} at the next restart"),
    );
    dev.attempt(bc_index, vm_index).await?;
    if !plan.restart {
        report.record = dev.get_record().await?;
        report.total_time = dev.now() - start;
        return Ok(report);
    }
    if dev.cancel_token().is_cancelled() {
        undo_attempt(dev, &before).await;
        return Err(HostError::Cancelled);
    }
    dev.observer()
        .step(Step::Restart, "Restarting the device into the new firmware");
    dev.restart().await?;
    dev.wait_for_device().await?;

    // 7. Outcome.
    dev.observer().step(
        Step::Outcome,
        "Waiting for the new firmware to confirm itself",
    );
    let (outcome, record) =
        watch_outcome(dev, &before, bc_index, vm_index, plan.wait_accept).await?;
    dev.observer().step(Step::Outcome, outcome.describe());
    report.outcome = outcome;
    report.record = record;
    report.total_time = dev.now() - start;
    Ok(report)
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

/// Read the record until the new configuration is accepted or reverted, or `wait` passes.
/// A device that restarts meanwhile (a watchdog reset of faulty firmware) is waited for.
pub async fn watch_outcome<T: Transport>(
    dev: &mut Device<T>,
    before: &Record,
    bc_index: u32,
    vm_index: u32,
    wait: Duration,
) -> Result<(Outcome, Record), HostError> {
    let deadline = dev.now() + wait;
    loop {
        let lost = match dev.get_record().await {
            Ok(record) => {
                let runs_new = record.bc_current == bc_index && record.vm_current == vm_index;
                let was_trial = bc_index != before.bc_last || vm_index != before.vm_last;
                if runs_new && !record.on_trial() {
                    return Ok((Outcome::Accepted, record));
                }
                if !runs_new && !record.on_trial() && was_trial {
                    return Ok((Outcome::Reverted, record));
                }
                if dev.now() >= deadline {
                    return Ok((Outcome::OnTrial, record));
                }
                // The device may reset between two reads too (a watchdog): the same as
                // a read that fails.
                match dev.idle(Duration::from_millis(250)).await {
                    Ok(()) => continue,
                    Err(e @ (HostError::NoAnswer | HostError::Link(_))) => e,
                    Err(e) => return Err(e),
                }
            }
            Err(e @ (HostError::NoAnswer | HostError::Link(_))) => e,
            Err(e) => return Err(e),
        };
        // A device that says hello but never gives its record must not keep the host
        // here for ever: past the wait and a reboot's time, say so.
        if dev.now() >= deadline + dev.timeouts.reboot {
            return Err(lost);
        }
        dev.wait_for_device().await?;
    }
}

fn kind_name(kind: SlotKind) -> &'static str {
    match kind {
        SlotKind::Vm => "VM",
        SlotKind::Bytecode => "bytecode",
    }
}

fn image_len(image: &Image) -> Result<u32, HostError> {
    u32::try_from(image.len()).map_err(|_| HostError::ImageTooLarge {
        name: image.name.clone(),
        size: image.len(),
        slot_size: 0,
    })
}

fn check_fits(image: &Image, slot: &SlotDesc) -> Result<(), HostError> {
    if image.len() > slot.size as usize {
        return Err(HostError::ImageTooLarge {
            name: image.name.clone(),
            size: image.len(),
            slot_size: slot.size,
        });
    }
    Ok(())
}

async fn choose_slot<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    record: &Record,
    kind: SlotKind,
    choice: SlotChoice,
) -> Result<SlotDesc, HostError> {
    let (current, last) = match kind {
        SlotKind::Vm => (record.vm_current, record.vm_last),
        SlotKind::Bytecode => (record.bc_current, record.bc_last),
    };
    match choice {
        SlotChoice::Auto => {
            let addr = match kind {
                SlotKind::Vm => dev.find_vm_slot().await?,
                SlotKind::Bytecode => dev.find_bytecode_slot().await?,
            };
            match info.slot_at(addr) {
                Some(s) if s.kind == kind && s.addr == addr => Ok(*s),
                _ => Err(HostError::Protocol(format!(
                    "the agent offered {addr:#x}, which does not start a {} slot",
                    kind_name(kind)
                ))),
            }
        }
        SlotChoice::Index(index) => {
            let Some(slot) = info.slot(kind, index) else {
                return Err(HostError::BadSlot {
                    index,
                    why: format!(
                        "the layout has {} {} slots (0 to {})",
                        info.count(kind),
                        kind_name(kind),
                        info.count(kind).saturating_sub(1)
                    ),
                });
            };
            if index == current || index == last {
                return Err(HostError::BadSlot {
                    index,
                    why: format!(
                        "it holds the {} {}",
                        if index == current {
                            "current"
                        } else {
                            "last working"
                        },
                        kind_name(kind)
                    ),
                });
            }
            Ok(*slot)
        }
    }
}

fn progress(phase: Phase, done: u32, total: u32, elapsed: Duration) -> Progress {
    progress64(phase, u64::from(done), u64::from(total), elapsed)
}

fn progress64(phase: Phase, done: u64, total: u64, elapsed: Duration) -> Progress {
    let secs = elapsed.as_secs_f64();
    let per_second = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = (per_second > 0.0)
        .then(|| Duration::from_secs_f64(total.saturating_sub(done) as f64 / per_second));
    Progress {
        phase,
        done,
        total,
        per_second,
        eta,
    }
}

/// Erase and write one image into one slot, skipping sectors that already hold it.
async fn transfer<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    slot: &SlotDesc,
    image: &Image,
    resume: bool,
    report: &mut Report,
) -> Result<(), HostError> {
    // `Device::hello` checked the geometry: sizes are non-zero powers of two, the largest
    // write is a multiple of the write granularity.
    let sector = info.sector_size as usize;
    let gran = usize::from(info.write_granularity);
    // What the stream writes: the image padded with erased bytes (0xFF) to the write
    // granularity. Resume compares the same bytes (a cut while erasing can leave the
    // image's last bytes erased but not the padding after them).
    let mut padded = image.data.clone();
    padded.resize(image.len().next_multiple_of(gran), 0xFF);
    let sectors: Vec<(usize, usize)> = (0..image.len())
        .step_by(sector)
        .map(|s| (s, (s + sector).min(image.len())))
        .collect();
    // Per sector: does it hold the image already, is it erased?
    let mut state = vec![SectorState::Dirty; sectors.len()];
    if resume {
        let t = dev.now();
        dev.observer().step(
            Step::Erase,
            &format!(
                "Comparing {} sectors of the slot with {}",
                sectors.len(),
                image.name
            ),
        );
        let mut ranges = sectors.clone();
        if let Some(last) = ranges.last_mut() {
            last.1 = padded.len();
        }
        let erased = md5_of(&vec![0xFF; sector]);
        let erased_tail = md5_of(&vec![0xFF; padded.len() - ranges.last().map_or(0, |s| s.0)]);
        let wanted: Vec<[u8; 16]> = ranges.iter().map(|&(a, b)| md5_of(&padded[a..b])).collect();
        let slot_addr = slot.addr;
        let make = move |i: usize| {
            let (a, b) = ranges[i];
            Request::ChecksumSlot {
                addr: slot_addr + a as u32,
                size: (b - a) as u32,
            }
        };
        let count = sectors.len();
        let last = count.saturating_sub(1);
        let ranges_len: Vec<usize> = sectors.iter().map(|&(a, b)| b - a).collect();
        let total_len = image.len() as u64;
        let mut done = 0u64;
        dev.pipeline(count, &make, &mut |obs, now, i, reply| {
            let Reply::Checksum(md5) = reply else {
                return Err(HostError::Protocol(format!("{reply:?} to a checksum")));
            };
            let blank = if i == last { erased_tail } else { erased };
            state[i] = if md5 == wanted[i] {
                SectorState::Done
            } else if md5 == blank {
                SectorState::Erased
            } else {
                SectorState::Dirty
            };
            done += (ranges_len[i]) as u64;
            obs.progress(&progress64(Phase::Compare, done, total_len, now - t));
            Ok(())
        })
        .await?;
        report.compare_time += dev.now() - t;
    }
    let skipped: usize = sectors
        .iter()
        .zip(&state)
        .filter(|(_, s)| **s == SectorState::Done)
        .map(|(&(a, b), _)| b - a)
        .sum();
    report.skipped_bytes += skipped as u64;
    if skipped > 0 {
        dev.observer()
            .resumed(&image.name, skipped as u64, image.len() as u64);
    }

    // Erase runs of dirty sectors, one request a run.
    let t = dev.now();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, s) in state.iter().enumerate() {
        if *s == SectorState::Dirty {
            match runs.last_mut() {
                Some(run) if run.1 == i => run.1 = i + 1,
                _ => runs.push((i, i + 1)),
            }
        }
    }
    let erase_total: u64 = runs.iter().map(|r| ((r.1 - r.0) * sector) as u64).sum();
    let what = if erase_total == 0 {
        format!(
            "Nothing to erase in {} slot {}: it is ready",
            kind_name(slot.kind),
            slot.index
        )
    } else {
        format!(
            "Erasing {} KiB of {} slot {}",
            erase_total / 1024,
            kind_name(slot.kind),
            slot.index
        )
    };
    dev.observer().step(Step::Erase, &what);
    let mut erased_before = 0u64;
    for (a, b) in runs {
        let addr = slot.addr + (a * sector) as u32;
        let size = ((b - a) * sector) as u32;
        let base = erased_before;
        dev.erase_slot(addr, size, &mut |obs, now, done, _| {
            obs.progress(&progress64(
                Phase::Erase,
                // Within this run, whatever total the device names.
                base + u64::from(done.min(size)),
                erase_total,
                now - t,
            ))
        })
        .await?;
        erased_before += u64::from(size);
        let p = progress64(Phase::Erase, erased_before, erase_total, dev.now() - t);
        dev.observer().progress(&p);
    }
    report.erase_time += dev.now() - t;

    // Stream the sectors that are not done, in blocks of the agent's chunk.
    let chunk = usize::from(info.max_write);
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    for (&(a, b), s) in sectors.iter().zip(&state) {
        if *s != SectorState::Done {
            let mut p = a;
            while p < b {
                let e = (p + chunk).min(b);
                blocks.push((p, e));
                p = e;
            }
        }
    }
    let total: u64 = blocks.iter().map(|&(a, b)| (b - a) as u64).sum();
    dev.observer().step(
        Step::Stream,
        &format!("Sending {} KiB of {}", total.div_ceil(1024), image.name),
    );
    let slot_addr = slot.addr;
    let make = |i: usize| {
        let (a, b) = blocks[i];
        Request::WriteSlot {
            addr: slot_addr + a as u32,
            data: &padded[a..b.next_multiple_of(gran)],
        }
    };
    let t = dev.now();
    let sent_before = dev.stats().write_bytes;
    let mut done = 0u64;
    dev.pipeline(blocks.len(), &make, &mut |obs, now, i, reply| {
        if !matches!(reply, Reply::Written { .. }) {
            return Err(HostError::Protocol(format!("{reply:?} to a write")));
        }
        done += (blocks[i].1 - blocks[i].0) as u64;
        obs.progress(&progress64(Phase::Stream, done, total, now - t));
        Ok(())
    })
    .await?;
    report.stream_time += dev.now() - t;
    report.sent_bytes += dev.stats().write_bytes - sent_before;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectorState {
    /// Holds the image's bytes already.
    Done,
    /// Erased: only needs writing.
    Erased,
    /// Must be erased and written.
    Dirty,
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
        if image.len() > slot.size as usize {
            return Ok(false);
        }
        let md5 = dev
            .checksum_slot(slot.addr, image_len(image)?, &mut |_, _, _, _| {})
            .await?;
        if md5 != image.md5() {
            return Ok(false);
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
    if !plan.restart {
        report.record = *before;
        report.total_time = dev.now() - start;
        return Ok(report);
    }
    // It may run on trial already (and accept soon), or wait for a restart.
    let (mut outcome, mut record) = watch_outcome(
        dev,
        before,
        before.bc_current,
        before.vm_current,
        plan.wait_accept,
    )
    .await?;
    if outcome == Outcome::OnTrial {
        dev.observer()
            .step(Step::Restart, "Restarting the device into the new firmware");
        dev.restart().await?;
        dev.wait_for_device().await?;
        (outcome, record) = watch_outcome(
            dev,
            before,
            before.bc_current,
            before.vm_current,
            plan.wait_accept,
        )
        .await?;
    }
    dev.observer().step(Step::Outcome, outcome.describe());
    report.outcome = outcome;
    report.record = record;
    report.total_time = dev.now() - start;
    Ok(report)
}
