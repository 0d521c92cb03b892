//! The seed's update process, step by step.

use core::time::Duration;
use fota_protocol::Layout as _;

use fota_protocol::{
    ErrorCode, Info, Op, Record, RecordState, RecordUpdate, Reply, Request, SlotDesc, SlotKind,
};

use crate::device::refused;
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
    /// How to send the images: compressed or delta where the device decodes them.
    pub codec: crate::codec::Codec,
    /// Images the device may hold (earlier releases): a delta from the one it holds is
    /// sent, checked first by the device's MD5 of its slot.
    pub bases: Vec<Image>,
    /// The user confirmed installing an image older than the device's minimum version
    /// (where the device allows downgrades).
    pub allow_downgrade: bool,
    /// Stop with [`HostError::AlreadyInstalled`] when the device already runs the image
    /// (one checksum of the running slot first; the CLI and the web app ask for it).
    pub check_installed: bool,
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
            codec: crate::codec::Codec::Auto,
            bases: Vec::new(),
            allow_downgrade: false,
            check_installed: false,
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
    /// Time the update waited for erases alone: the first sector's, before the stream
    /// could start (the others run while the stream goes on, and count in
    /// `stream_time`).
    pub erase_time: Duration,
    /// Sectors the device erased (an erase sent again after a lost frame counts again).
    pub erased_sectors: u32,
    /// What those erases took the device by its own figure (`Info` tag 2, its slowest
    /// sector's erase time, times `erased_sectors`): flash time, most of it hidden behind
    /// the stream. Zero when the device declares no erase time.
    pub device_erase_time: Duration,
    /// Time spent streaming, the erases that overlap it included.
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
        erased_sectors: 0,
        device_erase_time: Duration::ZERO,
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
            check_plan_after_replacing(&info, &before, plan)?;
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

    // 3 and 4. Erase and stream, sending only what differs.
    for (slot, image) in &jobs {
        transfer(dev, &info, slot, image, plan, &mut report).await?;
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
    if downgrade {
        dev.attempt_downgrade(bc_index, vm_index).await?;
    } else {
        dev.attempt(bc_index, vm_index).await?;
    }
    // Read back: the record is Pending now (and an observer shows it before the restart).
    report.record = dev.get_record().await?;
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

/// (current, last working, running) slot of `kind`.
fn slots_of(record: &Record, kind: SlotKind) -> (u32, u32, u32) {
    match kind {
        SlotKind::Vm => (record.vm_current, record.vm_last, record.running_vm),
        SlotKind::Bytecode => (record.bc_current, record.bc_last, record.running_bc),
    }
}

/// The slot an update of `kind` will go to when the agent chooses (`find_bytecode_slot`
/// / `find_vm_slot`), worked out from `Info` and the record alone, for a preview before
/// asking: the lowest-index slot of `kind` that may take an image ([`slot_role`]).
/// `None` if there is none.
pub fn free_slot(info: &Info, record: &Record, kind: SlotKind) -> Option<SlotDesc> {
    let mut free: Vec<SlotDesc> = info
        .slots
        .iter()
        .filter(|s| s.kind == kind && slot_role(info, record, kind, u32::from(s.index)).is_none())
        .copied()
        .collect();
    free.sort_by_key(|s| s.index);
    free.first().copied()
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

fn check_vm_updatable(info: &Info) -> Result<(), HostError> {
    if info.count(SlotKind::Vm) < 2 {
        return Err(HostError::BadSlot {
            index: 1,
            why: "this device's layout has a single VM slot, so the VM cannot be updated".into(),
        });
    }
    Ok(())
}

/// Whether `plan` can go ahead once the pending attempt of `record` is replaced (the
/// record back at its last working configuration), checked before anything changes.
fn check_plan_after_replacing(info: &Info, record: &Record, plan: &Plan) -> Result<(), HostError> {
    let mut jobs = vec![(SlotKind::Bytecode, plan.bytecode_slot, &plan.bytecode)];
    if let Some(vm) = &plan.vm {
        check_vm_updatable(info)?;
        jobs.push((SlotKind::Vm, plan.vm_slot, vm));
    }
    for (kind, choice, image) in jobs {
        let slot = match choice {
            SlotChoice::Index(index) => check_index(info, record, kind, index)?,
            SlotChoice::Auto => free_slot(info, record, kind).ok_or(HostError::NoFreeSlot)?,
        };
        check_fits(image, &slot)?;
    }
    Ok(())
}

/// Why a slot may not take a new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRole {
    /// The VM slot the part always starts: never erased or written.
    BootStage,
    /// The record's current slot (confirmed or on trial).
    Current,
    /// The last working slot.
    LastWorking,
    /// The slot running now.
    Running,
}

impl SlotRole {
    /// In plain words, for "slot N cannot take this image: ...".
    pub fn describe(self, kind: SlotKind) -> String {
        match self {
            SlotRole::BootStage => "it is the boot stage, which is never erased or written".into(),
            SlotRole::Current => format!("it holds the current {}", kind_name(kind)),
            SlotRole::LastWorking => format!("it holds the last working {}", kind_name(kind)),
            SlotRole::Running => format!("it holds the running {}", kind_name(kind)),
        }
    }
}

/// Why slot `index` of `kind` may not take a new image, if it may not: the boot stage, or
/// a slot that holds the current, the last working or the running firmware. The current
/// slot of a *pending* attempt is free: it never ran, and an update replaces it.
pub fn slot_role(info: &Info, record: &Record, kind: SlotKind, index: u32) -> Option<SlotRole> {
    let (current, last, running) = slots_of(record, kind);
    if kind == SlotKind::Vm && info.boot_stage.is_some_and(|b| u32::from(b) == index) {
        Some(SlotRole::BootStage)
    } else if index == current && record.state != RecordState::Pending {
        Some(SlotRole::Current)
    } else if index == last {
        Some(SlotRole::LastWorking)
    } else if index == running {
        Some(SlotRole::Running)
    } else {
        None
    }
}

/// Slot `index` of `kind`, unless the layout lacks it or it may not take an image
/// ([`slot_role`]).
fn check_index(
    info: &Info,
    record: &Record,
    kind: SlotKind,
    index: u32,
) -> Result<SlotDesc, HostError> {
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
    if let Some(role) = slot_role(info, record, kind, index) {
        return Err(HostError::BadSlot {
            index,
            why: role.describe(kind),
        });
    }
    Ok(*slot)
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
        SlotChoice::Index(index) => check_index(info, record, kind, index),
    }
}

fn progress(phase: Phase, done: u32, total: u32, elapsed: Duration) -> Progress {
    progress64(phase, u64::from(done), u64::from(total), elapsed)
}

pub(crate) fn progress64(phase: Phase, done: u64, total: u64, elapsed: Duration) -> Progress {
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
    plan: &Plan,
    report: &mut Report,
) -> Result<(), HostError> {
    let resume = plan.resume;
    // `Device::hello` checked the geometry: sector runs that tile the slot from its start,
    // a write granularity that is a power of two dividing the largest write.
    let gran = usize::from(info.write_granularity);
    // What the stream writes: the image padded with erased bytes (0xFF) to the write
    // granularity. Resume compares the same bytes (a cut while erasing can leave the
    // image's last bytes erased but not the padding after them).
    let mut padded = image.data.clone();
    padded.resize(image.len().next_multiple_of(gran), 0xFF);
    // The slot's erase sectors the image touches, as offsets in the image: (start, end
    // of the image's part, end of the sector). Their sizes may differ (an STM32F4).
    let mut sectors: Vec<(usize, usize)> = Vec::new();
    let mut sector_ends: Vec<usize> = Vec::new();
    let mut at = 0usize;
    while at < image.len() {
        let addr = slot
            .addr
            .saturating_add(u32::try_from(at).unwrap_or(u32::MAX));
        let (start, size) = info.sector_at(addr);
        let end = (start as usize - slot.addr as usize) + size as usize;
        sectors.push((at, end.min(image.len())));
        sector_ends.push(end);
        at = end;
    }
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
        let erased: Vec<[u8; 16]> = ranges
            .iter()
            .map(|&(a, b)| md5_of(&vec![0xFF; b - a]))
            .collect();
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
        let ranges_len: Vec<usize> = sectors.iter().map(|&(a, b)| b - a).collect();
        let total_len = image.len() as u64;
        let mut done = 0u64;
        dev.pipeline(count, &make, &mut |obs, now, i, reply| {
            state[i] = match reply {
                Reply::Checksum(md5) if md5 == wanted[i] => SectorState::Done,
                Reply::Checksum(md5) if md5 == erased[i] => SectorState::Erased,
                Reply::Checksum(_) => SectorState::Dirty,
                // A sector the device cannot read (ECC flash: a word a power cut tore):
                // erasing it makes it readable again.
                Reply::Error {
                    code: ErrorCode::FlashFailure,
                    ..
                } => SectorState::Dirty,
                other => return Err(refused(Op::ChecksumSlot, &other)),
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

    // Compressed or delta where the agent decodes it (crate::codec), raw otherwise; either
    // way each dirty sector is erased just ahead of the stream (crate::erase_ahead).
    let done: Vec<bool> = state.iter().map(|s| *s == SectorState::Done).collect();
    let prepared = crate::codec::prepare_stream(
        dev,
        info,
        slot,
        image,
        plan.codec,
        &plan.bases,
        &sectors,
        &done,
    )
    .await?;
    let Some(prepared) = prepared else {
        // Erase the dirty sectors while the others stream.
        return crate::erase_ahead::erase_and_stream(
            dev,
            slot,
            &padded,
            gran,
            &sectors,
            &sector_ends,
            &state,
            report,
        )
        .await;
    };
    let erases = crate::erase_ahead::StreamErases::new(slot.addr, &sectors, &sector_ends, &state);
    prepared
        .send(dev, info, slot, &sectors, &done, erases, report)
        .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectorState {
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
    if !plan.restart && before.state == RecordState::Pending {
        report.record = *before;
        report.total_time = dev.now() - start;
        return Ok(report);
    }
    // Pending: it has never run, restart into it. On trial: it runs; a restart now would
    // revert it, so only wait for it to confirm itself.
    if before.state == RecordState::Pending {
        dev.observer()
            .step(Step::Restart, "Restarting the device into the new firmware");
        dev.restart().await?;
        dev.wait_for_device().await?;
    }
    dev.observer().step(
        Step::Outcome,
        "Waiting for the new firmware to confirm itself",
    );
    let (outcome, record) = watch_outcome(
        dev,
        before,
        before.bc_current,
        before.vm_current,
        plan.wait_accept,
    )
    .await?;
    dev.observer().step(Step::Outcome, outcome.describe());
    report.outcome = outcome;
    report.record = record;
    report.total_time = dev.now() - start;
    Ok(report)
}
