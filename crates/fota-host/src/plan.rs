//! The update rules, without I/O: which slot an image may go to, which one the agent
//! will choose, whether a plan can go ahead.

use core::time::Duration;
use fota_protocol::Layout as _;

use fota_protocol::{Info, Record, RecordState, SlotDesc, SlotKind};

use crate::{HostError, Image};

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
    /// device to revert) before reporting it as still on trial, where the device declares
    /// no trial deadline (`Info` tag 7); a device that does is waited for by its deadline
    /// (`crate::update::outcome_wait`).
    pub wait_accept: Duration,
    /// Wait [`Plan::wait_accept`] even where the device declares its deadline: for a
    /// firmware known to confirm itself later than that (the user asked for this wait).
    pub wait_accept_always: bool,
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
    /// Who makes compressed and delta streams; `None`: the built-in encoder (feature
    /// `encode`; a build without it sends raw).
    pub encoder: Option<crate::codec::Encoder>,
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
            wait_accept_always: false,
            resume: true,
            codec: crate::codec::Codec::Auto,
            bases: Vec::new(),
            allow_downgrade: false,
            check_installed: false,
            encoder: None,
        }
    }
}

/// (current, last working, running) slot of `kind`.
fn slots_of(record: &Record, kind: SlotKind) -> (u32, u32, u32) {
    match kind {
        SlotKind::Vm => (record.vm_current, record.vm_last, record.running_vm),
        SlotKind::Bytecode => (record.bc_current, record.bc_last, record.running_bc),
    }
}

/// The slot the agent answers `find_bytecode_slot` / `find_vm_slot` with, worked out from
/// `Info` and `record` alone, as the agent works it out: the lowest-index slot of `kind`
/// that holds neither the current, the last working nor the running firmware (the
/// current slot of a pending attempt included), never the boot stage. For a VM where the
/// layout has a single VM slot, or none besides the boot stage, the current VM's slot:
/// the seed's way of saying the VM cannot be updated. `None`: the agent refuses with
/// `NoFreeSlot`.
pub fn agent_slot(info: &Info, record: &Record, kind: SlotKind) -> Option<SlotDesc> {
    let (current, last, running) = slots_of(record, kind);
    let boot_stage = |s: &SlotDesc| s.kind == SlotKind::Vm && info.boot_stage == Some(s.index);
    let mut slots: Vec<&SlotDesc> = info.slots.iter().filter(|s| s.kind == kind).collect();
    slots.sort_by_key(|s| s.index);
    if kind == SlotKind::Vm && (slots.len() == 1 || slots.iter().all(|s| boot_stage(s))) {
        return info.slot(kind, current).copied();
    }
    slots
        .into_iter()
        .find(|s| {
            let i = u32::from(s.index);
            !boot_stage(s) && i != current && i != last && i != running
        })
        .copied()
}

/// The record an update asks the agent with: a pending attempt that never ran is replaced
/// first (the record goes back to its last working configuration, which frees the
/// attempted slots), anything else stays as it is.
pub fn record_for_update(record: &Record) -> Record {
    let mut r = *record;
    if r.state == RecordState::Pending {
        r.bc_current = r.bc_last;
        r.vm_current = r.vm_last;
        r.state = RecordState::Confirmed;
    }
    r
}

/// The slot an update of `kind` will go to when the agent chooses (`find_bytecode_slot`
/// / `find_vm_slot`), worked out from `Info` and the record alone, for a preview before
/// asking: [`agent_slot`] once a pending attempt is replaced ([`record_for_update`]), so
/// it never names the current, the last working or the running slot. `None` if there is
/// none, or the layout cannot update `kind`.
pub fn free_slot(info: &Info, record: &Record, kind: SlotKind) -> Option<SlotDesc> {
    if kind == SlotKind::Vm && check_vm_updatable(info).is_err() {
        return None;
    }
    let slot = agent_slot(info, &record_for_update(record), kind)?;
    // The agent's answer for a VM that cannot be updated is a slot in use: not free.
    slot_role(info, record, kind, u32::from(slot.index))
        .is_none()
        .then_some(slot)
}

/// The slot an image of `kind` goes to: the one `choice` names if it may take an image
/// ([`slot_role`]), or the agent's choice ([`free_slot`]).
pub fn target_slot(
    info: &Info,
    record: &Record,
    kind: SlotKind,
    choice: SlotChoice,
) -> Result<SlotDesc, HostError> {
    if kind == SlotKind::Vm {
        check_vm_updatable(info)?;
    }
    match choice {
        SlotChoice::Index(index) => check_index(info, record, kind, index),
        SlotChoice::Auto => free_slot(info, record, kind).ok_or(HostError::NoFreeSlot),
    }
}

/// Where an image `name` of `len` bytes goes as `kind`, or why it cannot: the layout
/// cannot update `kind`, the slot chosen may not take it, no slot is free, or it does not
/// fit. From `Info` and the record alone, before anything is asked or written.
pub fn check_image(
    info: &Info,
    record: &Record,
    kind: SlotKind,
    choice: SlotChoice,
    name: &str,
    len: usize,
) -> Result<SlotDesc, HostError> {
    let slot = target_slot(info, record, kind, choice)?;
    fits(name, len, &slot)?;
    Ok(slot)
}

/// Why an image `name` of `len` bytes can never go to a slot of `kind` of this layout,
/// whatever the record says: a VM where the layout has a single VM slot, or larger than
/// every slot of `kind`.
pub fn check_for_layout(
    info: &Info,
    kind: SlotKind,
    name: &str,
    len: usize,
) -> Result<(), HostError> {
    if kind == SlotKind::Vm {
        check_vm_updatable(info)?;
    }
    let largest = info
        .slots
        .iter()
        .filter(|s| s.kind == kind)
        .max_by_key(|s| s.size);
    match largest {
        Some(slot) => fits(name, len, slot),
        None => Err(HostError::BadSlot {
            index: 0,
            why: format!("the layout has no {} slot", kind_name(kind)),
        }),
    }
}

/// Where each image of `plan` goes, or the first reason it cannot go ahead, from `Info`
/// and the record alone ([`check_image`] for each image; a pending attempt counts as
/// replaced, as the update replaces it first).
pub fn check_plan<'p>(
    info: &Info,
    record: &Record,
    plan: &'p Plan,
) -> Result<Vec<(SlotDesc, &'p Image)>, HostError> {
    let mut jobs = vec![(SlotKind::Bytecode, plan.bytecode_slot, &plan.bytecode)];
    if let Some(vm) = &plan.vm {
        jobs.push((SlotKind::Vm, plan.vm_slot, vm));
    }
    jobs.into_iter()
        .map(|(kind, choice, image)| {
            check_image(info, record, kind, choice, &image.name, image.len()).map(|s| (s, image))
        })
        .collect()
}

pub(crate) fn kind_name(kind: SlotKind) -> &'static str {
    kind.label()
}

pub(crate) fn image_len(image: &Image) -> Result<u32, HostError> {
    u32::try_from(image.len()).map_err(|_| HostError::ImageTooLarge {
        name: image.name.clone(),
        size: image.len(),
        slot_size: 0,
    })
}

pub(crate) fn check_fits(image: &Image, slot: &SlotDesc) -> Result<(), HostError> {
    fits(&image.name, image.len(), slot)
}

fn fits(name: &str, len: usize, slot: &SlotDesc) -> Result<(), HostError> {
    if len > slot.size as usize {
        return Err(HostError::ImageTooLarge {
            name: name.to_string(),
            size: len,
            slot_size: slot.size,
        });
    }
    Ok(())
}

pub(crate) fn check_vm_updatable(info: &Info) -> Result<(), HostError> {
    if info.count(SlotKind::Vm) < 2 {
        return Err(HostError::BadSlot {
            index: 1,
            why:
                "this device's layout has a single VM slot, so the VM cannot be updated (only the \
                  bytecode can)"
                    .into(),
        });
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

/// Slot `index` of `kind`, unless the layout lacks it.
pub fn slot_of(info: &Info, kind: SlotKind, index: u32) -> Result<SlotDesc, HostError> {
    info.slot(kind, index)
        .copied()
        .ok_or_else(|| HostError::BadSlot {
            index,
            why: format!(
                "the layout has {} {} slots (0 to {})",
                info.count(kind),
                kind_name(kind),
                info.count(kind).saturating_sub(1)
            ),
        })
}

/// Slot `index` of `kind`, unless the layout lacks it or it may not take an image
/// ([`slot_role`]).
pub(crate) fn check_index(
    info: &Info,
    record: &Record,
    kind: SlotKind,
    index: u32,
) -> Result<SlotDesc, HostError> {
    let slot = slot_of(info, kind, index)?;
    if let Some(role) = slot_role(info, record, kind, index) {
        return Err(HostError::BadSlot {
            index,
            why: role.describe(kind),
        });
    }
    Ok(slot)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SLOT: u32 = 0x1_0000;

    /// A layout of `vm` VM slots then `bc` bytecode slots, each 64 KiB.
    pub(crate) fn layout(vm: u8, bc: u8, boot_stage: Option<u8>) -> Info {
        let mut slots = heapless::Vec::new();
        let mut addr = 0;
        for (kind, count) in [(SlotKind::Vm, vm), (SlotKind::Bytecode, bc)] {
            for index in 0..count {
                let slot = SlotDesc {
                    kind,
                    index,
                    addr,
                    size: SLOT,
                };
                slots.push(slot).expect("room for the slots");
                addr += SLOT;
            }
        }
        Info {
            background_erase: false,
            protocol_version: fota_protocol::PROTOCOL_VERSION,
            agent_version: [0, 1, 0],
            name: heapless::String::new(),
            fota_supported: true,
            sector_size: 4096,
            write_granularity: 4,
            max_write: 256,
            max_in_flight: 4,
            max_baud: 115_200,
            record_addr: addr,
            record_size: 8192,
            slots,
            boot_stage,
            sector_erase_ms: None,
            baud_rates: heapless::Vec::new(),
            sectors: heapless::Vec::new(),
            codecs: heapless::Vec::new(),
            images: None,
            confirm_ms: None,
            rx_window: None,
            trial_left_ms: None,
            block_erases: heapless::Vec::new(),
        }
    }

    /// A valid record: (current, last, running) bytecode and VM slots.
    fn record(state: RecordState, bc: (u32, u32, u32), vm: (u32, u32, u32)) -> Record {
        Record {
            valid: 1,
            bc_current: bc.0,
            bc_last: bc.1,
            running_bc: bc.2,
            vm_current: vm.0,
            vm_last: vm.1,
            running_vm: vm.2,
            state,
            ..Record::default()
        }
    }

    fn index(slot: Option<SlotDesc>) -> Option<u8> {
        slot.map(|s| s.index)
    }

    #[test]
    fn three_slots_the_running_slot_is_never_offered() {
        // Bytecode 1 is current and last working (set without a restart); 0 still runs.
        let info = layout(1, 3, None);
        let r = record(RecordState::Confirmed, (1, 1, 0), (0, 0, 0));
        assert_eq!(index(agent_slot(&info, &r, SlotKind::Bytecode)), Some(2));
        assert_eq!(index(free_slot(&info, &r, SlotKind::Bytecode)), Some(2));
        assert_eq!(
            slot_role(&info, &r, SlotKind::Bytecode, 0),
            Some(SlotRole::Running)
        );
        let err = target_slot(&info, &r, SlotKind::Bytecode, SlotChoice::Index(0));
        assert!(
            matches!(err, Err(HostError::BadSlot { index: 0, .. })),
            "{err:?}"
        );
        // Running, current and last working on three different slots: none is free.
        let r = record(RecordState::Trial, (2, 1, 0), (0, 0, 0));
        assert_eq!(free_slot(&info, &r, SlotKind::Bytecode), None);
        let err = check_image(&info, &r, SlotKind::Bytecode, SlotChoice::Auto, "a.bin", 10);
        assert!(matches!(err, Err(HostError::NoFreeSlot)), "{err:?}");
    }

    #[test]
    fn three_slots_a_pending_attempt_is_replaced_before_the_agent_is_asked() {
        // Bytecode 0 pending, 1 last working, 2 running: the agent asked now has no free
        // slot, but the update replaces the attempt first, which frees slot 0.
        let info = layout(1, 3, None);
        let r = record(RecordState::Pending, (0, 1, 2), (0, 0, 0));
        assert_eq!(agent_slot(&info, &r, SlotKind::Bytecode), None);
        let after = record_for_update(&r);
        assert_eq!((after.bc_current, after.state), (1, RecordState::Confirmed));
        assert_eq!(index(free_slot(&info, &r, SlotKind::Bytecode)), Some(0));
        assert_eq!(
            index(agent_slot(&info, &after, SlotKind::Bytecode)),
            index(free_slot(&info, &r, SlotKind::Bytecode))
        );
    }

    #[test]
    fn the_lowest_free_index_wins_and_matches_the_agent_on_every_record() {
        // Every record of a four-slot layout: the preview names what the agent answers
        // once a pending attempt is replaced, and never a slot in use.
        let info = layout(1, 4, None);
        for state in [
            RecordState::Confirmed,
            RecordState::Pending,
            RecordState::Trial,
        ] {
            for c in 0..4 {
                for l in 0..4 {
                    for run in 0..4 {
                        let r = record(state, (c, l, run), (0, 0, 0));
                        let free = free_slot(&info, &r, SlotKind::Bytecode);
                        let agent = agent_slot(&info, &record_for_update(&r), SlotKind::Bytecode);
                        assert_eq!(free, agent, "{r:?}");
                        let used = [record_for_update(&r).bc_current, l, run];
                        let want = (0..4u8).find(|i| !used.contains(&u32::from(*i)));
                        assert_eq!(index(free), want, "{r:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_boot_stage_and_single_vm_layouts() {
        // VM 0 is the boot stage, VM 1 runs: VM 2 is the one free.
        let info = layout(3, 2, Some(0));
        let r = record(RecordState::Confirmed, (0, 0, 0), (1, 1, 1));
        assert_eq!(index(free_slot(&info, &r, SlotKind::Vm)), Some(2));
        assert_eq!(
            slot_role(&info, &r, SlotKind::Vm, 0),
            Some(SlotRole::BootStage)
        );
        // A single VM slot: the agent answers the current VM, and no VM image goes.
        let info = layout(1, 2, None);
        let r = record(RecordState::Confirmed, (0, 0, 0), (0, 0, 0));
        assert_eq!(index(agent_slot(&info, &r, SlotKind::Vm)), Some(0));
        assert_eq!(free_slot(&info, &r, SlotKind::Vm), None);
        let err = check_for_layout(&info, SlotKind::Vm, "vm.bin", 10);
        assert!(matches!(err, Err(HostError::BadSlot { .. })), "{err:?}");
        let err = check_image(&info, &r, SlotKind::Vm, SlotChoice::Auto, "vm.bin", 10);
        assert!(err.is_err_and(|e| e.to_string().contains("single VM slot")));
    }

    #[test]
    fn an_image_too_large_is_refused_before_anything() {
        let info = layout(1, 2, None);
        let r = record(RecordState::Confirmed, (0, 0, 0), (0, 0, 0));
        let len = SLOT as usize + 1;
        let err = check_image(
            &info,
            &r,
            SlotKind::Bytecode,
            SlotChoice::Auto,
            "big.bin",
            len,
        );
        assert!(
            matches!(err, Err(HostError::ImageTooLarge { size, slot_size: SLOT, .. }) if size == len),
            "{err:?}"
        );
        assert!(check_for_layout(&info, SlotKind::Bytecode, "big.bin", len).is_err());
        let ok = check_image(
            &info,
            &r,
            SlotKind::Bytecode,
            SlotChoice::Auto,
            "a.bin",
            100,
        );
        assert_eq!(ok.map(|s| s.index), Ok(1));
        let image = Image::new("a.bin", vec![1; 100]).expect("image");
        let mut plan = Plan::new(image);
        plan.bytecode_slot = SlotChoice::Index(0);
        let err = check_plan(&info, &r, &plan).map(|jobs| jobs.len());
        assert!(
            matches!(err, Err(HostError::BadSlot { index: 0, .. })),
            "{err:?}"
        );
        plan.bytecode_slot = SlotChoice::Auto;
        let jobs = check_plan(&info, &r, &plan).expect("plan");
        assert_eq!((jobs.len(), jobs[0].0.index), (1, 1));
    }
}
