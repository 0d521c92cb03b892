//! The seed's record functions: get_record, set_record, find_bytecode_slot, find_vm_slot,
//! accept and attempt, over the record log.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::Layout as _;
use fota_protocol::{AcceptOutcome, ErrorCode, Record, RecordUpdate, SlotKind};

#[cfg(feature = "images")]
use super::Unit;
use super::{Agent, Refusal, RequestResult, scan_log, slot_addr};
use crate::MAX_WRITE;
use crate::record::{LogEntry, RecordState};

impl<F: NorFlash> Agent<F> {
    pub(super) fn slot_addr(&self, kind: SlotKind, index: u8) -> u32 {
        slot_addr(&self.config, kind, index)
    }

    /// Read the log; the newest entry that fits this layout is in force.
    pub(super) fn scan(&mut self) -> Result<Option<LogEntry>, u32> {
        scan_log(&mut self.log, &mut self.flash, &self.config)
    }

    /// Append an entry and make it the record in force. On failure the log is read again
    /// so that RAM matches flash (a failed write may have landed after all); when that
    /// finds no record either, the one in RAM is not on flash: fota\[0\] becomes 0.
    pub(super) fn append(&mut self, entry: LogEntry) -> Result<(), u32> {
        let base = self.config.flash_base;
        // The record's flash is not the erasing range, but the part takes no command
        // while an erase runs: the scheduled erases end first (a failure among them is
        // kept for the request that needs that range).
        self.settle_erases_keeping_failure();
        let appended = self.log.append(&mut self.flash, entry);
        self.changes.erased = self.changes.erased.wrapping_add(1);
        // An append may erase a record sector: as long as a slot's, on some parts.
        self.unit_done();
        match appended {
            Ok(written) => {
                self.entry = written;
                self.committed = true;
                Ok(())
            }
            Err(off) => {
                match self.scan() {
                    Ok(Some(e)) => {
                        self.entry = e;
                        self.committed = true;
                    }
                    _ => self.committed = false,
                }
                Err(base.wrapping_add(off))
            }
        }
    }

    /// Write `entry` unless the record already names the same slots. The state is not
    /// compared: a configuration on trial is never turned back into a pending one (that
    /// would let it run again after its trial boot), so once it has booted, the next
    /// restart without `accept()` reverts, whatever was asked meanwhile.
    fn update(&mut self, entry: LogEntry) -> RequestResult<()> {
        if entry.same_slots(&self.entry) {
            return Ok(());
        }
        self.append(entry)
            .map_err(|addr| Refusal::new(ErrorCode::FlashFailure, addr))
    }

    pub(super) fn supported(&self) -> RequestResult<()> {
        if self.config.fota_supported {
            Ok(())
        } else {
            Err(Refusal::new(ErrorCode::Unsupported, 0))
        }
    }

    // ---- the seed's functions ------------------------------------------------------

    /// `get_record()`: the seed's nine integers.
    pub fn get_record(&self) -> RequestResult<Record> {
        self.supported()?;
        let e = &self.entry;
        Ok(Record {
            valid: u32::from(self.committed),
            state: e.state,
            running_vm: u32::from(self.boot.vm_slot),
            running_bc: u32::from(self.boot.bc_slot),
            vm_index: u32::from(self.boot.vm_slot),
            vm_current: u32::from(e.vm_current),
            vm_last: u32::from(e.vm_last),
            bc_current: u32::from(e.bc_current),
            bc_last: u32::from(e.bc_last),
            bc_addr: self.slot_addr(SlotKind::Bytecode, e.bc_current),
            vm_addr: self.slot_addr(SlotKind::Vm, e.vm_current),
            chunk: MAX_WRITE as u32,
        })
    }

    /// `set_record(newfota)`: set fota\[2\]..fota\[5\]. The state becomes `Pending` when
    /// current differs from last working (the next boot tries it), `Confirmed`
    /// otherwise. Refused with `BadSlotIndex` (detail: the index) if a slot does not
    /// exist.
    ///
    /// Setting the values the record already holds writes nothing (a trial stays a
    /// trial). With the `images` feature every slot it names that the record does not
    /// already name must hold an image that verifies (`BadImage`, `Unsigned`,
    /// `UnknownKey`, `BadSignature`, `Downgrade`: see [`crate::ImagePolicy`]); without
    /// it no slot content is checked, as in the seed.
    pub fn set_record(&mut self, u: RecordUpdate) -> RequestResult<()> {
        #[cfg(feature = "images")]
        {
            let mut op = self.begin_set_record(u)?;
            self.run_check(&mut op)
        }
        #[cfg(not(feature = "images"))]
        {
            let entry = self.set_record_entry(u)?;
            self.update(entry)
        }
    }

    /// The entry a `set_record(u)` writes, after its checks (a held write is flushed).
    pub(crate) fn set_record_entry(&mut self, u: RecordUpdate) -> RequestResult<LogEntry> {
        self.supported()?;
        let vm_current = self.index(SlotKind::Vm, u.vm_current)?;
        let vm_last = self.index(SlotKind::Vm, u.vm_last)?;
        let bc_current = self.index(SlotKind::Bytecode, u.bc_current)?;
        let bc_last = self.index(SlotKind::Bytecode, u.bc_last)?;
        self.flush_write()?;
        Ok(
            LogEntry::with_slots(vm_current, vm_last, bc_current, bc_last)
                .keeping_minimums(&self.entry),
        )
    }

    /// `find_bytecode_slot()`: the address of a bytecode slot that holds neither the
    /// current, the last working nor the running bytecode. `NoFreeSlot` (detail: the
    /// current slot index) when a trial occupies the second slot: accept or revert first.
    pub fn find_bytecode_slot(&self) -> RequestResult<u32> {
        self.supported()?;
        self.free_slot(SlotKind::Bytecode)
    }

    /// `find_vm_slot()`: like [`Agent::find_bytecode_slot`] for VMs, never the boot
    /// stage. Where the layout has no VM slot besides the boot stage (a single VM slot,
    /// say) it returns the current VM's address (fota\[7\]): as the seed says, that
    /// means this device cannot update its VM.
    pub fn find_vm_slot(&self) -> RequestResult<u32> {
        self.supported()?;
        let updatable = self
            .config
            .slots
            .iter()
            .filter(|s| s.kind == SlotKind::Vm && !self.is_boot_stage(s))
            .count();
        if self.config.count(SlotKind::Vm) == 1 || updatable == 0 {
            return Ok(self.slot_addr(SlotKind::Vm, self.entry.vm_current));
        }
        self.free_slot(SlotKind::Vm)
    }

    /// `accept()`: end a trial by making the running configuration the last working one
    /// (`Trial` becomes `Confirmed` with last := current). Says what it did:
    ///
    /// - [`AcceptOutcome::Accepted`]: the record was on `Trial` and its configuration
    ///   runs: it is now the last working one.
    /// - [`AcceptOutcome::AlreadyConfirmed`]: `Confirmed`, and what runs is current:
    ///   nothing to accept.
    /// - [`AcceptOutcome::NotRestarted`]: `Pending` (an attempt that has not booted yet):
    ///   the attempt stays pending, the next restart still tries it. (If the running
    ///   configuration was itself an unaccepted trial when the new attempt was made, it is
    ///   not accepted now: only a configuration that is current when accept() runs can
    ///   become the last working one.)
    /// - [`AcceptOutcome::NotRunning`]: what runs is not the record's current
    ///   configuration (a trial cancelled meanwhile, or one whose trial boot could not be
    ///   recorded): nothing is written.
    pub fn accept(&mut self) -> RequestResult<AcceptOutcome> {
        self.supported()?;
        let e = self.entry;
        let running_is_current =
            e.vm_current == self.boot.vm_slot && e.bc_current == self.boot.bc_slot;
        let outcome = match e.state {
            RecordState::Pending => AcceptOutcome::NotRestarted,
            _ if !running_is_current => AcceptOutcome::NotRunning,
            RecordState::Confirmed => AcceptOutcome::AlreadyConfirmed,
            RecordState::Trial => AcceptOutcome::Accepted,
        };
        if outcome == AcceptOutcome::Accepted {
            self.flush_write()?;
            #[allow(unused_mut)]
            let mut next =
                LogEntry::with_slots(e.vm_current, e.vm_current, e.bc_current, e.bc_current)
                    .keeping_minimums(&e);
            // Anti-rollback: the accepted images' versions become the minimums (a raw
            // image, version 0, leaves its minimum as it was).
            #[cfg(feature = "images")]
            {
                let [vm, bc] = self.trial_versions;
                if e.vm_current != e.vm_last && vm != 0 {
                    next.vm_minimum = vm;
                }
                if e.bc_current != e.bc_last && bc != 0 {
                    next.bc_minimum = bc;
                }
            }
            self.update(next)?;
        }
        Ok(outcome)
    }

    /// `attempt(bcslot, vmslot)`: try bytecode slot `bc_slot` with VM slot `vm_slot` at the
    /// next restart (state `Pending`); the last working configuration stays as it is, so
    /// a restart after the trial boot goes back to it unless `accept()` comes first.
    /// Attempting the last working configuration itself means "stay there"
    /// (`Confirmed`, no trial). `BadSlotIndex` (detail: the index) if either slot does
    /// not exist (a VM index other than 0 on a single-VM layout, say).
    ///
    /// Attempting the configuration the record already names writes nothing: in
    /// particular a configuration on trial stays on trial (the next restart without
    /// `accept()` reverts it; it is never armed for another trial boot).
    ///
    /// With the `images` feature the images of the slots it makes current are verified
    /// first, to the end (the link does it in bounded units: [`Agent::begin_attempt`]).
    pub fn attempt(&mut self, bc_slot: u32, vm_slot: u32) -> RequestResult<()> {
        #[cfg(feature = "images")]
        {
            let mut op = self.begin_attempt(bc_slot, vm_slot, false)?;
            self.run_check(&mut op)
        }
        #[cfg(not(feature = "images"))]
        {
            let entry = self.attempt_entry(bc_slot, vm_slot)?;
            self.update(entry)
        }
    }

    /// Run a check to its end.
    #[cfg(feature = "images")]
    fn run_check(&mut self, op: &mut crate::images::CheckOp) -> RequestResult<()> {
        loop {
            if let Unit::Done(()) = self.check_unit(op)? {
                return Ok(());
            }
        }
    }

    /// The entry an `attempt(bc_slot, vm_slot)` writes, after its checks.
    pub(crate) fn attempt_entry(&mut self, bc_slot: u32, vm_slot: u32) -> RequestResult<LogEntry> {
        self.supported()?;
        let bc = self.index(SlotKind::Bytecode, bc_slot)?;
        let vm = self.index(SlotKind::Vm, vm_slot)?;
        self.flush_write()?;
        let e = self.entry;
        Ok(LogEntry::with_slots(vm, e.vm_last, bc, e.bc_last).keeping_minimums(&e))
    }

    /// Write `entry` unless the record already names its slots (see `update`).
    #[cfg(feature = "images")]
    pub(crate) fn update_entry(&mut self, entry: LogEntry) -> RequestResult<()> {
        self.update(entry)
    }
}
