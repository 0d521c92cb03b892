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

pub(crate) fn kind_name(kind: SlotKind) -> &'static str {
    match kind {
        SlotKind::Vm => "VM",
        SlotKind::Bytecode => "bytecode",
    }
}

pub(crate) fn image_len(image: &Image) -> Result<u32, HostError> {
    u32::try_from(image.len()).map_err(|_| HostError::ImageTooLarge {
        name: image.name.clone(),
        size: image.len(),
        slot_size: 0,
    })
}

pub(crate) fn check_fits(image: &Image, slot: &SlotDesc) -> Result<(), HostError> {
    if image.len() > slot.size as usize {
        return Err(HostError::ImageTooLarge {
            name: image.name.clone(),
            size: image.len(),
            slot_size: slot.size,
        });
    }
    Ok(())
}

pub(crate) fn check_vm_updatable(info: &Info) -> Result<(), HostError> {
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
pub(crate) fn check_plan_after_replacing(
    info: &Info,
    record: &Record,
    plan: &Plan,
) -> Result<(), HostError> {
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
pub(crate) fn check_index(
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
