//! The seed's ten functions over a NorFlash.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::Layout as _;
use fota_protocol::{
    AcceptOutcome, DEFAULT_BAUD, ErrorCode, Info, PROTOCOL_VERSION, Record, RecordUpdate, Reply,
    SlotDesc, SlotKind,
};

use crate::MAX_WRITE;
use crate::config::{AgentConfig, ConfigError, FlashGeometry, Geometry, MAX_WRITE_UNIT};
use crate::flash::{self, ERASED};
use crate::md5::Md5;
use crate::record::{Log, LogEntry, RecordState};

/// Bytes read from flash at a time by `write_slot` and `checksum_slot`.
const CHUNK: usize = 256;

/// `checksum_slot` reports progress after each this many bytes.
pub const CHECKSUM_PROGRESS_STEP: u32 = 64 * 1024;

/// Bytes one unit of a checksum hashes ([`Agent::checksum_unit`]): the bound on how long
/// the agent keeps the CPU from the firmware while hashing (4 KiB: about 1 ms of MD5 on a
/// Cortex-M4 at 64 MHz, plus the flash reads).
pub const CHECKSUM_UNIT: u32 = 4096;

/// A refused or failed request: what the wire protocol sends as `Reply::Error`.
///
/// A refusal (every code but [`ErrorCode::FlashFailure`]) leaves flash and record exactly
/// as they were. A flash failure may leave the range it names partly done; the record
/// stays valid either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// What went wrong.
    pub code: ErrorCode,
    /// Where: an address, a length, a slot index (see each [`ErrorCode`]).
    pub detail: u32,
}

impl Refusal {
    pub(crate) const fn new(code: ErrorCode, detail: u32) -> Refusal {
        Refusal { code, detail }
    }

    /// The reply that carries this refusal.
    pub const fn reply(&self) -> Reply {
        Reply::Error {
            code: self.code,
            detail: self.detail,
        }
    }
}

/// Why [`Agent::boot`] could not start the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration does not fit the flash: a firmware build mistake.
    Config(ConfigError),
    /// The record area could not be read. Field: the address. The platform should not
    /// guess a configuration: reset and try again.
    Flash(u32),
}

impl From<ConfigError> for AgentError {
    fn from(e: ConfigError) -> Self {
        AgentError::Config(e)
    }
}

/// What the platform must run after [`Agent::boot`]: the outcome of the boot decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// VM slot to run (the seed's fota\[1\] for as long as this boot lasts).
    pub vm_slot: u8,
    /// Its address.
    pub vm_addr: u32,
    /// Bytecode slot to run.
    pub bc_slot: u8,
    /// Its address.
    pub bc_addr: u32,
    /// This is the trial boot of an attempted configuration: the new firmware must call
    /// `accept()`, or the next restart goes back to the last working configuration.
    pub trial: bool,
    /// The previous boot was a trial that was not accepted: this boot went back to the
    /// last working configuration.
    pub reverted: bool,
    /// The flash held no valid record: the factory record (slot 0 of each kind) was
    /// written.
    pub factory: bool,
    /// Writing the record failed during the boot decision. The agent then runs the last
    /// working configuration (never an untracked trial) and the next boot decides again.
    pub record_write_failed: bool,
}

/// The device side of FOTA: the record, the slots and the flash that holds them.
///
/// Every method that changes flash checks all its arguments first, so a refused request
/// changes nothing. All state is rebuilt from flash by [`Agent::boot`].
#[derive(Debug)]
pub struct Agent<F> {
    flash: F,
    config: AgentConfig,
    geo: Geometry,
    log: Log,
    /// The record in force (as on flash).
    entry: LogEntry,
    /// The record in force was read from flash or written to it: fota\[0\]. False while
    /// it lives in RAM only (a factory record that could not be written, say).
    committed: bool,
    /// What this boot runs.
    boot: Boot,
    /// The partial write unit of a `write_slot` whose end was not on a unit boundary.
    held: Option<Held>,
    /// Called after every unit of a long operation (a platform's watchdog kick).
    hook: Option<fn()>,
    /// What changed flash since boot, for the link's cache of recent replies.
    changes: Changes,
    /// The packed versions of the VM and bytecode images this trial boot runs (0: raw
    /// or not checked): `accept()` makes them the minimums.
    #[cfg(feature = "images")]
    trial_versions: [u32; 2],
}

/// Counters of what changed the flash: a cached reply is valid only while they stand
/// still (or, for a write's reply, while nothing was erased).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Erases and record entries written.
    pub(crate) erased: u32,
    /// Program operations on a slot.
    pub(crate) programmed: u32,
}

impl Changes {
    pub(crate) const NONE: Changes = Changes {
        erased: 0,
        programmed: 0,
    };
}

/// What the boot decision does with the record in force: one pure function, so the
/// read-only plan ([`Agent::plan`]) and the real boot ([`Agent::boot`]) cannot disagree.
struct Decision {
    /// The entry the boot appends, if any.
    write: Option<LogEntry>,
    /// The VM and bytecode slots that run when that write succeeds (or none is needed).
    run: (u8, u8),
    /// The slots that run when the write fails: the last working configuration, never
    /// a trial that could not be recorded.
    fallback: (u8, u8),
    trial: bool,
    reverted: bool,
    factory: bool,
}

fn decision(found: Option<LogEntry>, images_ok: bool) -> Decision {
    let Some(e) = found else {
        return Decision {
            write: Some(LogEntry::factory()),
            run: (0, 0),
            fallback: (0, 0),
            trial: false,
            reverted: false,
            factory: true,
        };
    };
    let current = (e.vm_current, e.bc_current);
    let last = (e.vm_last, e.bc_last);
    match e.state {
        RecordState::Confirmed => Decision {
            write: None,
            run: current,
            fallback: current,
            trial: false,
            reverted: false,
            factory: false,
        },
        // The trial boot: without a Trial on flash a crash would retry the new firmware
        // forever, so a failed write runs the last working one and decides again.
        RecordState::Pending if images_ok => Decision {
            write: Some(LogEntry {
                state: RecordState::Trial,
                ..e
            }),
            run: current,
            fallback: last,
            trial: true,
            reverted: false,
            factory: false,
        },
        // The trial boot ended without accept(), or the attempted images do not verify:
        // back to the last working one.
        RecordState::Trial | RecordState::Pending => Decision {
            write: Some(
                LogEntry::with_slots(e.vm_last, e.vm_last, e.bc_last, e.bc_last)
                    .keeping_minimums(&e),
            ),
            run: last,
            fallback: last,
            trial: false,
            reverted: true,
            factory: false,
        },
    }
}

/// What the boot decision would do now, read from flash without writing anything
/// ([`Agent::plan`]). A boot stage, or a VM acting as bootloader, learns from it which VM
/// to start; only the firmware that runs takes the decision for real ([`Agent::boot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootPlan {
    /// What [`Agent::boot`] would return if its record write succeeds
    /// (`record_write_failed` is false).
    pub boot: Boot,
    /// The record entry in force after the decision: the one the boot would write, or
    /// the one on flash (its `seq` is not meaningful).
    pub record: LogEntry,
    /// The decision writes a record entry (factory record, trial boot, revert).
    pub writes: bool,
}

/// The start of a write unit that a `write_slot` left incomplete: kept in RAM until the
/// next write continues it, or programmed with the erased value after it
/// ([`Agent::flush_write`]).
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Address of the write unit.
    addr: u32,
    /// Bytes of it written so far (less than a unit).
    len: usize,
    bytes: [u8; MAX_WRITE_UNIT],
}

impl Held {
    /// The address after the last byte held.
    fn end(&self) -> u32 {
        // len < unit, and the unit lies inside a slot: no overflow.
        self.addr.saturating_add(self.len as u32)
    }
}

/// What a seed function returns: its value, or why it was refused.
pub type RequestResult<T> = Result<T, Refusal>;

/// An `erase_slot` in progress: [`Agent::begin_erase`] checks the request,
/// [`Agent::erase_unit`] erases one sector at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseOp {
    addr: u32,
    total: u32,
    done: u32,
}

impl EraseOp {
    /// Nothing to erase.
    pub(crate) const EMPTY: EraseOp = EraseOp {
        addr: 0,
        total: 0,
        done: 0,
    };

    /// Bytes erased so far.
    pub fn done(&self) -> u32 {
        self.done
    }

    /// Bytes to erase in all (whole sectors).
    pub fn total(&self) -> u32 {
        self.total
    }
}

/// A `checksum_slot` in progress: [`Agent::begin_checksum`] checks the request,
/// [`Agent::checksum_unit`] hashes [`CHECKSUM_UNIT`] bytes at a time.
#[derive(Debug, Clone)]
pub struct ChecksumOp {
    addr: u32,
    size: u32,
    done: u32,
    md5: Md5,
}

impl ChecksumOp {
    /// Bytes hashed so far.
    pub fn done(&self) -> u32 {
        self.done
    }

    /// Bytes to hash in all.
    pub fn total(&self) -> u32 {
        self.size
    }
}

/// What one unit of a long operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit<T> {
    /// More units follow: `done` of `total` bytes.
    More {
        /// Bytes done.
        done: u32,
        /// Bytes in all.
        total: u32,
    },
    /// The operation is complete; its result.
    Done(T),
}

impl<F: NorFlash> Agent<F> {
    /// Start the agent after a reset: check `config`, read the record and take the boot
    /// decision:
    ///
    /// | record on flash | written by boot                    | runs              |
    /// |-----------------|------------------------------------|-------------------|
    /// | none valid      | factory: slot 0 / slot 0, Confirmed| slot 0 / slot 0   |
    /// | Confirmed       | nothing                            | current           |
    /// | Pending         | same slots, Trial                  | current (trial)   |
    /// | Trial           | current := last working, Confirmed | last working      |
    ///
    /// With `fota_supported == false` the flash is not touched and slot 0 of each kind
    /// runs.
    pub fn boot(flash: F, config: AgentConfig) -> Result<(Agent<F>, Boot), AgentError> {
        Self::boot_or_return(flash, config).map_err(|(e, _)| e)
    }

    /// [`Agent::boot`], handing the flash back on error (for a simulator that retries).
    pub fn boot_or_return(
        flash: F,
        config: AgentConfig,
    ) -> Result<(Agent<F>, Boot), (AgentError, F)> {
        let geo = match FlashGeometry::of(&flash).and_then(|g| {
            if config.fota_supported {
                config.checked_geometry(&g)
            } else {
                unsupported_geometry(&config, &g)
            }
        }) {
            Ok(g) => g,
            Err(e) => return Err((AgentError::Config(e), flash)),
        };
        let log = record_log(&config, &geo);
        let mut agent = Agent {
            flash,
            geo,
            log,
            entry: LogEntry::factory(),
            committed: false,
            held: None,
            hook: None,
            changes: Changes::default(),
            #[cfg(feature = "images")]
            trial_versions: [0; 2],
            boot: Boot {
                vm_slot: 0,
                vm_addr: 0,
                bc_slot: 0,
                bc_addr: 0,
                trial: false,
                reverted: false,
                factory: false,
                record_write_failed: false,
            },
            config,
        };
        if !agent.config.fota_supported {
            agent.set_running(0, 0);
            let boot = agent.boot;
            return Ok((agent, boot));
        }
        match agent.decide() {
            Ok(()) => {
                let boot = agent.boot;
                Ok((agent, boot))
            }
            Err(addr) => Err((AgentError::Flash(addr), agent.flash)),
        }
    }

    /// What the boot decision would do now, without writing anything: the record is
    /// read (never written), nothing is kept. The same checks and the same decision as
    /// [`Agent::boot`], which a boot stage can take without building an agent.
    pub fn plan(flash: &mut F, config: &AgentConfig) -> Result<BootPlan, AgentError> {
        let g = FlashGeometry::of(flash)?;
        let slots = |vm: u8, bc: u8, boot: &mut Boot| {
            boot.vm_slot = vm;
            boot.bc_slot = bc;
            boot.vm_addr = slot_addr(config, SlotKind::Vm, vm);
            boot.bc_addr = slot_addr(config, SlotKind::Bytecode, bc);
        };
        let mut boot = Boot {
            vm_slot: 0,
            vm_addr: 0,
            bc_slot: 0,
            bc_addr: 0,
            trial: false,
            reverted: false,
            factory: false,
            record_write_failed: false,
        };
        if !config.fota_supported {
            unsupported_geometry(config, &g)?;
            slots(0, 0, &mut boot);
            return Ok(BootPlan {
                boot,
                record: LogEntry::factory(),
                writes: false,
            });
        }
        let geo = config.checked_geometry(&g)?;
        let mut log = record_log(config, &geo);
        let found = scan_log(&mut log, flash, config).map_err(AgentError::Flash)?;
        let d = decision(found, pending_images(flash, config, found, None).is_some());
        slots(d.run.0, d.run.1, &mut boot);
        boot.trial = d.trial;
        boot.reverted = d.reverted;
        boot.factory = d.factory;
        Ok(BootPlan {
            boot,
            record: d.write.or(found).unwrap_or(LogEntry::factory()),
            writes: d.write.is_some(),
        })
    }

    /// The boot decision (see [`decision`]). Errors: the address of a failed read.
    fn decide(&mut self) -> Result<(), u32> {
        let found = self.scan()?;
        let checked = pending_images(&mut self.flash, &self.config, found, self.hook);
        #[cfg(feature = "images")]
        {
            self.trial_versions = checked.unwrap_or([0; 2]);
        }
        let d = decision(found, checked.is_some());
        self.entry = found.unwrap_or(LogEntry::factory());
        self.committed = found.is_some();
        self.boot.factory = d.factory;
        self.boot.reverted = d.reverted;
        let written = match d.write {
            Some(e) => self.append(e).is_ok(),
            None => true,
        };
        self.boot.record_write_failed = !written;
        self.boot.trial = d.trial && written;
        let (vm, bc) = if written { d.run } else { d.fallback };
        self.set_running(vm, bc);
        Ok(())
    }

    fn set_running(&mut self, vm: u8, bc: u8) {
        self.boot.vm_slot = vm;
        self.boot.bc_slot = bc;
        self.boot.vm_addr = self.slot_addr(SlotKind::Vm, vm);
        self.boot.bc_addr = self.slot_addr(SlotKind::Bytecode, bc);
    }

    fn slot_addr(&self, kind: SlotKind, index: u8) -> u32 {
        slot_addr(&self.config, kind, index)
    }

    /// Read the log; the newest entry that fits this layout is in force.
    fn scan(&mut self) -> Result<Option<LogEntry>, u32> {
        scan_log(&mut self.log, &mut self.flash, &self.config)
    }

    /// Append an entry and make it the record in force. On failure the log is read again
    /// so that RAM matches flash (a failed write may have landed after all); when that
    /// finds no record either, the one in RAM is not on flash: fota\[0\] becomes 0.
    fn append(&mut self, entry: LogEntry) -> Result<(), u32> {
        let base = self.config.flash_base;
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

    fn supported(&self) -> RequestResult<()> {
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

    /// `erase_slot(addr, size)`: erase whole sectors from `addr` (a sector start) covering
    /// `size` bytes; returns the erased `(addr, size)`. The range must lie in one slot
    /// that is in use by no configuration (current, last working, running) and is not the
    /// boot stage. `progress` gets `(bytes done, bytes in all)` between sectors.
    ///
    /// This runs the whole erase before it returns; a firmware that must keep running
    /// drives [`Agent::begin_erase`] and [`Agent::erase_unit`] from its main loop instead
    /// (the link does).
    ///
    /// Power loss: the sectors erased so far stay erased; the slot is unused, so nothing
    /// that runs is affected. Erase again.
    pub fn erase_slot(
        &mut self,
        addr: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> RequestResult<(u32, u32)> {
        let mut op = self.begin_erase(addr, size)?;
        loop {
            match self.erase_unit(&mut op)? {
                Unit::More { done, total } => progress(done, total),
                Unit::Done(erased) => return Ok(erased),
            }
        }
    }

    /// Check an `erase_slot(addr, size)` request and start it; nothing is erased yet.
    /// Refusals are those of [`Agent::erase_slot`].
    pub fn begin_erase(&mut self, addr: u32, size: u32) -> RequestResult<EraseOp> {
        self.supported()?;
        if size == 0 {
            return Err(Refusal::new(ErrorCode::BadLength, 0));
        }
        if self.sector_at(addr).0 != addr {
            return Err(Refusal::new(ErrorCode::Misaligned, addr));
        }
        // Slots and the record area start and end on sector boundaries, so the range and
        // the whole sectors it touches lie in the same slot and miss the record alike.
        let want = u64::from(addr) + u64::from(size);
        self.free_range(addr, want, size)?;
        // The end of the last sector the range touches (inside the slot: no overflow).
        let mut end = u64::from(addr);
        while end < want {
            let (start, len) = self.sector_at(u32::try_from(end).unwrap_or(u32::MAX));
            end = u64::from(start) + u64::from(len);
        }
        let total = u32::try_from(end - u64::from(addr))
            .map_err(|_| Refusal::new(ErrorCode::BadLength, size))?;
        // A partial write unit held in the range is erased with it; one elsewhere is
        // completed first.
        match self.held {
            Some(h) if h.addr >= addr && u64::from(h.addr) < end => self.held = None,
            _ => self.flush_write()?,
        }
        Ok(EraseOp {
            addr,
            total,
            done: 0,
        })
    }

    /// Erase the next sector of `op`: one bounded unit of work (one sector erase time).
    /// The range is checked again first, so a record change between units (a local
    /// `attempt()`) can never let it erase a slot in use.
    pub fn erase_unit(&mut self, op: &mut EraseOp) -> RequestResult<Unit<(u32, u32)>> {
        self.supported()?;
        if op.done >= op.total {
            return Ok(Unit::Done((op.addr, op.total)));
        }
        let end = u64::from(op.addr) + u64::from(op.total);
        self.free_range(op.addr, end, op.total)?;
        let at = op.addr.saturating_add(op.done);
        let (_, sector) = self.sector_at(at);
        let off = self.offset(at)?;
        let to = off
            .checked_add(sector)
            .ok_or(Refusal::new(ErrorCode::FlashFailure, at))?;
        let erased = self.flash.erase(off, to);
        self.changes.erased = self.changes.erased.wrapping_add(1);
        self.unit_done();
        erased.map_err(|_| Refusal::new(ErrorCode::FlashFailure, at))?;
        op.done = op.done.saturating_add(sector);
        Ok(if op.done < op.total {
            Unit::More {
                done: op.done,
                total: op.total,
            }
        } else {
            Unit::Done((op.addr, op.total))
        })
    }

    /// `write_slot(addr, block)`: program 1..=[`MAX_WRITE`] bytes at `addr`, inside one
    /// unused slot that is not the boot stage.
    ///
    /// Blocks of any length written in order make the slot hold exactly their
    /// concatenation. A block that does not end on a write unit boundary leaves that unit
    /// partly written: the agent holds its bytes in RAM until the next block continues it
    /// (a block that starts where this one ended), or, before any request that reads or
    /// changes the flash otherwise (checksum, erase, attempt, set_record, accept, restart)
    /// or a block that leaves another unit partly written, programs it with the erased
    /// value (0xFF) in the rest of the unit ([`Agent::flush_write`]). A block must start
    /// on a write unit boundary or where the held bytes end; otherwise only a repeat of
    /// bytes already written is accepted (`Misaligned`).
    ///
    /// Idempotent, so a host may resend after a lost reply: a write unit that already
    /// holds the data is skipped, an erased one is programmed, anything else is refused
    /// with `NotErased` (detail: its address) before a single byte is programmed.
    ///
    /// Power loss: the units programmed so far stay, held bytes are lost; resending the
    /// blocks from the last unit boundary completes the image.
    pub fn write_slot(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        self.supported()?;
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if data.is_empty() || data.len() > MAX_WRITE {
            return Err(Refusal::new(ErrorCode::BadLength, len));
        }
        let end = u64::from(addr) + u64::from(len);
        self.free_range(addr, end, len)?;
        let unit = self.geo.write.get();
        let first = addr - addr % unit;
        let continues = self.held.filter(|h| h.addr == first && addr <= h.end());
        if !addr.is_multiple_of(unit) && continues.is_none() {
            // Neither on a unit boundary nor continuing the held bytes: only a repeat of
            // bytes already written (a resend after a lost reply) is accepted.
            return if self.holds(addr, data) {
                Ok(())
            } else {
                Err(Refusal::new(ErrorCode::Misaligned, addr))
            };
        }
        // The write in three parts: the held unit it continues (`head`), whole units
        // (`body`), and a unit it leaves partly written (`last`).
        let head_len = if addr.is_multiple_of(unit) {
            0
        } else {
            ((first + unit - addr) as usize).min(data.len())
        };
        let (head, rest) = data.split_at(head_len);
        let body_addr = addr.saturating_add(head_len as u32);
        let body_len = rest.len() - rest.len() % unit as usize;
        let (body, last) = rest.split_at(body_len);
        let last_addr = body_addr.saturating_add(body_len as u32);

        // Checks first, so that a refusal programs nothing.
        let head_plan = match continues {
            Some(h) => Some(self.plan_held(h, addr, head)?),
            None => None,
        };
        self.check_body(body_addr, body)?;
        let last_plan = if last.is_empty() {
            None
        } else {
            self.plan_last(last_addr, last)?
        };

        // A new partial unit elsewhere: complete the one held before it.
        let keeps_held =
            |p: &Option<Held>| p.is_some_and(|p| self.held.is_some_and(|h| h.addr == p.addr));
        let new_partial = match (&head_plan, &last_plan) {
            (_, Some(p)) => Some(*p),
            (Some(PlanHeld::Hold(p)), None) => Some(*p),
            _ => None,
        };
        let consumed = matches!(head_plan, Some(PlanHeld::Complete(_)))
            || self.body_covers_held(body_addr, body.len());
        if new_partial.is_some() && !keeps_held(&new_partial) && !consumed {
            self.flush_write()?;
        }
        if let Some(PlanHeld::Complete(h)) = head_plan {
            self.held = None;
            self.program_unit(h.addr, h.bytes.get(..unit as usize).unwrap_or(&[]))?;
        }
        if self.body_covers_held(body_addr, body.len()) {
            self.held = None;
        }
        self.program_body(body_addr, body)?;
        if let Some(p) = new_partial {
            self.held = Some(p);
        }
        Ok(())
    }

    /// The partial write unit held in RAM, if any: its address and how many of its bytes
    /// are written.
    pub fn held_write(&self) -> Option<(u32, usize)> {
        self.held.map(|h| (h.addr, h.len))
    }

    /// Program the partial write unit held in RAM (see [`Agent::write_slot`]), with the
    /// erased value in the rest of the unit. Nothing to do if none is held. On failure
    /// the held bytes are dropped (as a power cut would): the slot's checksum shows it.
    pub fn flush_write(&mut self) -> RequestResult<()> {
        let Some(mut h) = self.held.take() else {
            return Ok(());
        };
        let unit = self.geo.write.get() as usize;
        let bytes = h.bytes.get_mut(..unit).unwrap_or(&mut []);
        if let Some(rest) = bytes.get_mut(h.len..) {
            rest.fill(ERASED);
        }
        if flash::is_erased(bytes) {
            return Ok(()); // nothing to program: the unit stays erased
        }
        let copy = h;
        self.program_unit(copy.addr, copy.bytes.get(..unit).unwrap_or(&[]))
    }

    /// Whether `[addr, addr + data.len())` already holds `data` (flash, and the held
    /// bytes over it).
    fn holds(&mut self, addr: u32, data: &[u8]) -> bool {
        let mut buf = [0u8; CHUNK];
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let Some(have) = buf.get_mut(..want.len()) else {
                return false;
            };
            if self.read(addr, pos, have).is_err() {
                return false;
            }
            let at = addr.saturating_add(pos as u32);
            if let Some(h) = self.held {
                overlay_held(&h, at, have);
            }
            if want != &*have {
                return false;
            }
        }
        true
    }

    /// The held unit `h`, continued by `data` from `addr`: complete, or held longer.
    fn plan_held(&mut self, h: Held, addr: u32, data: &[u8]) -> RequestResult<PlanHeld> {
        let unit = self.geo.write.get() as usize;
        let mut raw = [0u8; MAX_WRITE_UNIT];
        let raw = raw.get_mut(..unit).unwrap_or(&mut []);
        if self.read(h.addr, 0, raw).is_err() || !flash::is_erased(raw) {
            // The unit was programmed behind the agent's back (or cannot be read).
            return Err(Refusal::new(ErrorCode::NotErased, h.addr));
        }
        let mut next = h;
        let from = (addr - h.addr) as usize;
        for (k, &b) in data.iter().enumerate() {
            let p = from + k;
            if p < h.len && h.bytes.get(p) != Some(&b) {
                // Differs from bytes already written.
                return Err(Refusal::new(ErrorCode::NotErased, h.addr));
            }
            if let Some(slot) = next.bytes.get_mut(p) {
                *slot = b;
            }
        }
        next.len = h.len.max(from + data.len());
        Ok(if next.len >= unit {
            PlanHeld::Complete(next)
        } else {
            PlanHeld::Hold(next)
        })
    }

    /// A write's last unit, only partly covered by `data` from its start `addr`: held if
    /// the unit is erased, nothing to do if it already holds `data`.
    fn plan_last(&mut self, addr: u32, data: &[u8]) -> RequestResult<Option<Held>> {
        let unit = self.geo.write.get() as usize;
        let mut raw = [0u8; MAX_WRITE_UNIT];
        let raw = raw.get_mut(..unit).unwrap_or(&mut []);
        if self.read(addr, 0, raw).is_err() {
            return Err(Refusal::new(ErrorCode::NotErased, addr));
        }
        if !flash::is_erased(raw) {
            // Programmed already: only the same bytes are a success (a resend).
            return if raw.get(..data.len()) == Some(data) {
                Ok(None)
            } else {
                Err(Refusal::new(ErrorCode::NotErased, addr))
            };
        }
        let mut h = Held {
            addr,
            len: data.len(),
            bytes: [ERASED; MAX_WRITE_UNIT],
        };
        if let Some(old) = self.held.filter(|o| o.addr == addr) {
            // A resend that starts at the held unit: it must agree with what is held.
            let n = old.len.min(data.len());
            if old.bytes.get(..n) != data.get(..n) {
                return Err(Refusal::new(ErrorCode::NotErased, addr));
            }
            h = old;
            h.len = old.len.max(data.len());
        }
        if let Some(dst) = h.bytes.get_mut(..data.len()) {
            dst.copy_from_slice(data);
        }
        Ok(Some(h))
    }

    /// Whether the held unit lies inside whole units `[addr, addr + len)` of a write.
    fn body_covers_held(&self, addr: u32, len: usize) -> bool {
        self.held
            .is_some_and(|h| h.addr >= addr && u64::from(h.addr) < u64::from(addr) + len as u64)
    }

    /// Every whole unit of `data` at `addr` must be equal or erased (and agree with held
    /// bytes), else nothing is programmed.
    fn check_body(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        let unit = self.geo.write.get() as usize;
        let mut buf = [0u8; CHUNK];
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let have = buf
                .get_mut(..want.len())
                .ok_or(Refusal::new(ErrorCode::FlashFailure, addr))?;
            let chunk_read = self.read(addr, pos, have).is_ok();
            for (j, w) in want.chunks(unit).enumerate() {
                let at = addr.saturating_add((pos + j * unit) as u32);
                let h = have
                    .get_mut(j * unit..j * unit + w.len())
                    .ok_or(Refusal::new(ErrorCode::FlashFailure, at))?;
                // A chunk that cannot be read is looked at unit by unit, so that the
                // refusal names the unit that cannot be read (a torn word on ECC flash).
                if !chunk_read && self.read(at, 0, h).is_err() {
                    return Err(Refusal::new(ErrorCode::NotErased, at));
                }
                if let Some(held) = self.held.filter(|x| x.addr == at)
                    && held.bytes.get(..held.len) != w.get(..held.len)
                {
                    return Err(Refusal::new(ErrorCode::NotErased, at));
                }
                if w != &*h && !flash::is_erased(h) {
                    return Err(Refusal::new(ErrorCode::NotErased, at));
                }
            }
        }
        Ok(())
    }

    /// Program the whole units of `data` at `addr` that differ (a run of units per write),
    /// then read everything back.
    fn program_body(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        let unit = self.geo.write.get() as usize;
        let flash_failure =
            |at: usize| Refusal::new(ErrorCode::FlashFailure, addr.saturating_add(at as u32));
        let mut buf = [0u8; CHUNK];
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let have = buf.get_mut(..want.len()).ok_or(flash_failure(pos))?;
            self.read(addr, pos, have)?;
            let mut j = 0;
            while j < want.len() {
                let differs = |k: usize| want.get(k..k + unit) != have.get(k..k + unit);
                if !differs(j) {
                    j += unit;
                    continue;
                }
                let start = j;
                while j < want.len() && differs(j) {
                    j += unit;
                }
                let run = want.get(start..j).ok_or(flash_failure(pos + start))?;
                let off = self.offset(addr.saturating_add((pos + start) as u32))?;
                self.changes.programmed = self.changes.programmed.wrapping_add(1);
                self.flash
                    .write(off, run)
                    .map_err(|_| flash_failure(pos + start))?;
            }
        }
        // Read back: a write that did not stick is a flash failure, not success.
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let have = buf.get_mut(..want.len()).ok_or(flash_failure(pos))?;
            self.read(addr, pos, have)?;
            if let Some(k) = want.iter().zip(have.iter()).position(|(w, h)| w != h) {
                return Err(flash_failure(pos + k));
            }
        }
        Ok(())
    }

    /// Program one whole unit at `addr` (erased, checked by the caller) and read it back.
    fn program_unit(&mut self, addr: u32, bytes: &[u8]) -> RequestResult<()> {
        let fail = Refusal::new(ErrorCode::FlashFailure, addr);
        if flash::is_erased(bytes) {
            return Ok(());
        }
        let off = self.offset(addr)?;
        self.changes.programmed = self.changes.programmed.wrapping_add(1);
        self.flash.write(off, bytes).map_err(|_| fail)?;
        let mut back = [0u8; MAX_WRITE_UNIT];
        let back = back.get_mut(..bytes.len()).ok_or(fail)?;
        self.read(addr, 0, back)?;
        if back != bytes {
            return Err(fail);
        }
        Ok(())
    }

    /// `checksum_slot(addr, size)`: MD5 of `size` bytes from `addr`, inside one slot (any
    /// slot, in use or not; never the record area). `progress` gets `(bytes done, bytes
    /// in all)` every [`CHECKSUM_PROGRESS_STEP`] bytes. Reads only (a partial write unit
    /// held in RAM is programmed first, see [`Agent::write_slot`]).
    ///
    /// This hashes everything before it returns; a firmware that must keep running drives
    /// [`Agent::begin_checksum`] and [`Agent::checksum_unit`] from its main loop instead.
    pub fn checksum_slot(
        &mut self,
        addr: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> RequestResult<[u8; 16]> {
        let mut op = self.begin_checksum(addr, size)?;
        let mut reported = 0;
        loop {
            match self.checksum_unit(&mut op)? {
                Unit::More { done, total } => {
                    if reported / CHECKSUM_PROGRESS_STEP != done / CHECKSUM_PROGRESS_STEP {
                        progress(done, total);
                    }
                    reported = done;
                }
                Unit::Done(md5) => return Ok(md5),
            }
        }
    }

    /// Check a `checksum_slot(addr, size)` request and start it; nothing is hashed yet.
    pub fn begin_checksum(&mut self, addr: u32, size: u32) -> RequestResult<ChecksumOp> {
        self.supported()?;
        if size == 0 {
            return Err(Refusal::new(ErrorCode::BadLength, 0));
        }
        let end = u64::from(addr) + u64::from(size);
        self.slot_range(addr, end, size)?;
        self.flush_write()?;
        Ok(ChecksumOp {
            addr,
            size,
            done: 0,
            md5: Md5::new(),
        })
    }

    /// Hash the next [`CHECKSUM_UNIT`] bytes of `op` (fewer at the end): one bounded unit.
    pub fn checksum_unit(&mut self, op: &mut ChecksumOp) -> RequestResult<Unit<[u8; 16]>> {
        self.supported()?;
        let mut buf = [0u8; CHUNK];
        let stop = op.size.min(op.done.saturating_add(CHECKSUM_UNIT));
        let mut result = Ok(());
        while op.done < stop {
            let n = (stop - op.done).min(CHUNK as u32);
            let Some(chunk) = buf.get_mut(..n as usize) else {
                break;
            };
            if let Err(r) = self.read(op.addr, op.done as usize, chunk) {
                result = Err(r);
                break;
            }
            op.md5.update(&*chunk);
            op.done += n;
        }
        self.unit_done();
        result?;
        Ok(if op.done < op.size {
            Unit::More {
                done: op.done,
                total: op.size,
            }
        } else {
            Unit::Done(core::mem::replace(&mut op.md5, Md5::new()).finalize())
        })
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

    /// The configuration, the flash and the unit hook, borrowed apart (image checks).
    #[cfg(feature = "images")]
    #[allow(clippy::type_complexity)]
    pub(crate) fn check_parts(&mut self) -> RequestResult<(&AgentConfig, &mut F, Option<fn()>)> {
        self.supported()?;
        Ok((&self.config, &mut self.flash, self.hook))
    }

    /// Call `hook` after every unit of a long operation (each sector erased, each
    /// [`CHECKSUM_UNIT`] hashed), for instance to kick a watchdog during a blocking
    /// [`Agent::erase_slot`]. It must return quickly and must not call into the agent.
    pub fn set_unit_hook(&mut self, hook: fn()) {
        self.hook = Some(hook);
    }

    pub(crate) fn unit_done(&self) {
        if let Some(hook) = self.hook {
            hook();
        }
    }

    // ---- other accessors -----------------------------------------------------------

    /// The agent's description for `Hello`.
    pub fn info(&self) -> Info {
        // In address order: at most eight slots with distinct addresses, picked one by
        // one (a sort would pull in core's sort code, kilobytes for eight items).
        let mut slots = heapless::Vec::new();
        let mut after = None;
        for _ in 0..self.config.slots.len() {
            let next = self
                .config
                .slots
                .iter()
                .filter(|s| after.is_none_or(|a| s.addr > a))
                .min_by_key(|s| s.addr);
            if let Some(s) = next {
                let _ = slots.push(*s);
                after = Some(s.addr);
            }
        }
        let mut baud_rates = heapless::Vec::new();
        for b in self.config.offered_baud_rates() {
            // Validation keeps the list within MAX_BAUD_RATES.
            let _ = baud_rates.push(b);
        }
        Info {
            max_baud: baud_rates.last().copied().unwrap_or(DEFAULT_BAUD),
            baud_rates,
            boot_stage: self.config.boot_stage,
            sector_erase_ms: (self.config.sector_erase_ms != 0)
                .then_some(self.config.sector_erase_ms),
            protocol_version: PROTOCOL_VERSION,
            agent_version: self.config.version,
            // Validation keeps the name within MAX_NAME; an empty name otherwise.
            name: heapless::String::try_from(self.config.name).unwrap_or_default(),
            fota_supported: self.config.fota_supported,
            sector_size: self.geo.sector.get(),
            write_granularity: u16::try_from(self.geo.write.get()).unwrap_or(u16::MAX),
            max_write: MAX_WRITE as u16,
            max_in_flight: self.config.max_in_flight,
            record_addr: self.config.record_addr,
            record_size: self.config.record_size,
            slots,
            sectors: self.config.sectors.clone(),
            codecs: crate::stream::codecs(),
            #[cfg(feature = "images")]
            images: self.image_rules(),
            #[cfg(not(feature = "images"))]
            images: None,
        }
    }

    // ---- compressed streams (crate::stream) -------------------------------------------

    /// The slot a stream of `image_len` bytes may be decoded into from `addr`: the start
    /// of a slot that `write_slot` may write, large enough.
    #[cfg_attr(not(feature = "codec"), allow(dead_code))]
    pub(crate) fn stream_target(&self, addr: u32, image_len: u32) -> RequestResult<SlotDesc> {
        self.supported()?;
        let slot = self
            .slot_starting_at(addr)
            .ok_or(Refusal::new(ErrorCode::OutOfSlot, addr))?;
        if image_len > slot.size {
            return Err(Refusal::new(ErrorCode::BadLength, image_len));
        }
        let end = u64::from(addr) + u64::from(image_len.max(1));
        self.free_range(addr, end, image_len)
    }

    /// The slot that starts at `addr`, if one does (a delta's base: any slot may be read).
    #[cfg_attr(not(feature = "codec"), allow(dead_code))]
    pub(crate) fn slot_starting_at(&self, addr: u32) -> Option<SlotDesc> {
        self.config
            .slot_at(addr)
            .filter(|s| s.addr == addr)
            .copied()
    }

    /// Read what the flash holds at `addr`, with the partial write unit held in RAM over
    /// it: the bytes a decoder wrote before, as its dictionary.
    #[cfg_attr(not(feature = "codec"), allow(dead_code))]
    pub(crate) fn read_written(&mut self, addr: u32, out: &mut [u8]) -> RequestResult<()> {
        self.read(addr, 0, out)?;
        if let Some(h) = self.held {
            overlay_held(&h, addr, out);
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// What this boot runs (the boot decision).
    pub fn booted(&self) -> &Boot {
        &self.boot
    }

    /// The state stored in the record in force.
    pub fn record_state(&self) -> RecordState {
        self.entry.state
    }

    /// The record entry in force, as on flash.
    pub fn record_entry(&self) -> LogEntry {
        self.entry
    }

    /// Whether the record in force was read from flash or written to it (fota\[0\]).
    pub fn record_committed(&self) -> bool {
        self.committed
    }

    /// The flash.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash, mutably (for a simulator). The agent keeps its record in RAM: change
    /// the record area behind its back and only the next boot sees it.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Give the flash back (to boot again, as after a reset).
    pub fn into_flash(self) -> F {
        self.flash
    }

    // ---- guards ----------------------------------------------------------------------

    fn index(&self, kind: SlotKind, index: u32) -> RequestResult<u8> {
        self.config
            .slot(kind, index)
            .map(|s| s.index)
            .ok_or(Refusal::new(ErrorCode::BadSlotIndex, index))
    }

    /// Slot indexes of `kind` that hold something: current, last working, running.
    fn in_use(&self, slot: &SlotDesc) -> bool {
        let e = &self.entry;
        let used = match slot.kind {
            SlotKind::Vm => [e.vm_current, e.vm_last, self.boot.vm_slot],
            SlotKind::Bytecode => [e.bc_current, e.bc_last, self.boot.bc_slot],
        };
        used.contains(&slot.index)
    }

    fn is_boot_stage(&self, slot: &SlotDesc) -> bool {
        slot.kind == SlotKind::Vm && self.config.boot_stage == Some(slot.index)
    }

    fn free_slot(&self, kind: SlotKind) -> RequestResult<u32> {
        // Lowest index first: validation keeps the indexes of a kind 0, 1, 2, ...
        (0..self.config.count(kind) as u32)
            .filter_map(|i| self.config.slot(kind, i))
            .find(|s| !self.in_use(s) && !self.is_boot_stage(s))
            .map(|s| s.addr)
            .ok_or_else(|| {
                let current = match kind {
                    SlotKind::Vm => self.entry.vm_current,
                    SlotKind::Bytecode => self.entry.bc_current,
                };
                Refusal::new(ErrorCode::NoFreeSlot, u32::from(current))
            })
    }

    /// `[addr, end)` must avoid the record area and lie in one slot. `len` is the
    /// detail of `BadLength`.
    fn slot_range(&self, addr: u32, end: u64, len: u32) -> RequestResult<SlotDesc> {
        if self.config.touches_record(addr, end) {
            return Err(Refusal::new(
                ErrorCode::RecordArea,
                addr.max(self.config.record_addr),
            ));
        }
        let slot = *self
            .config
            .slot_at(addr)
            .ok_or(Refusal::new(ErrorCode::OutOfSlot, addr))?;
        if end > u64::from(slot.addr) + u64::from(slot.size) {
            return Err(Refusal::new(ErrorCode::BadLength, len));
        }
        Ok(slot)
    }

    /// [`Agent::slot_range`], and the slot must be in use by no configuration and not
    /// be the boot stage.
    fn free_range(&self, addr: u32, end: u64, len: u32) -> RequestResult<SlotDesc> {
        let slot = self.slot_range(addr, end, len)?;
        if self.is_boot_stage(&slot) {
            return Err(Refusal::new(ErrorCode::BootStage, slot.addr));
        }
        if self.in_use(&slot) {
            return Err(Refusal::new(ErrorCode::SlotInUse, slot.addr));
        }
        Ok(slot)
    }

    /// The erase sector holding `addr`: `(first address, size)`.
    fn sector_at(&self, addr: u32) -> (u32, u32) {
        self.config.sector_at(self.geo.sector.get(), addr)
    }

    /// What changed the flash so far (for the link's cache of replies).
    pub(crate) fn changes(&self) -> Changes {
        self.changes
    }

    /// Flash offset of an address already checked to be inside a slot.
    fn offset(&self, addr: u32) -> RequestResult<u32> {
        addr.checked_sub(self.config.flash_base)
            .ok_or(Refusal::new(ErrorCode::OutOfSlot, addr))
    }

    /// Read `out.len()` bytes at `addr + pos`. (Not inlined: a dozen callers.)
    #[inline(never)]
    fn read(&mut self, addr: u32, pos: usize, out: &mut [u8]) -> RequestResult<()> {
        let at = u32::try_from(pos)
            .ok()
            .and_then(|p| addr.checked_add(p))
            .ok_or(Refusal::new(ErrorCode::OutOfSlot, addr))?;
        let off = self.offset(at)?;
        let base = self.config.flash_base;
        flash::read(&mut self.flash, off, out)
            .map_err(|o| Refusal::new(ErrorCode::FlashFailure, base.wrapping_add(o)))
    }
}

/// The packed versions of the images a pending record would try, or `None` when one
/// does not verify (the boot then reverts). Without the `images` feature nothing is
/// checked.
#[allow(unused_variables)]
fn pending_images<F: NorFlash>(
    flash: &mut F,
    config: &AgentConfig,
    found: Option<LogEntry>,
    hook: Option<fn()>,
) -> Option<[u32; 2]> {
    match found {
        #[cfg(feature = "images")]
        Some(e) if e.state == RecordState::Pending => {
            crate::images::check_pending(flash, config, &e, hook)
        }
        _ => Some([0; 2]),
    }
}

/// The record log of a checked configuration.
fn record_log(config: &AgentConfig, geo: &Geometry) -> Log {
    let offset = config.record_addr.wrapping_sub(config.flash_base);
    Log::new(offset, config.record_size, geo.record_sector, geo.stride)
}

/// Read the log; the newest entry that fits `config`'s layout is in force. Errors: the
/// address of a failed read.
fn scan_log<F: NorFlash>(
    log: &mut Log,
    flash: &mut F,
    config: &AgentConfig,
) -> Result<Option<LogEntry>, u32> {
    let fits = |e: &LogEntry| {
        let vm = |i: u8| config.slot(SlotKind::Vm, u32::from(i)).is_some();
        let bc = |i: u8| config.slot(SlotKind::Bytecode, u32::from(i)).is_some();
        vm(e.vm_current) && vm(e.vm_last) && bc(e.bc_current) && bc(e.bc_last)
    };
    let base = config.flash_base;
    log.scan(flash, fits).map_err(|off| base.wrapping_add(off))
}

/// The address of slot `index` of `kind`. Indexes come from validated entries; 0 only
/// for a layout without the slot, which validation rejects.
fn slot_addr(config: &AgentConfig, kind: SlotKind, index: u8) -> u32 {
    config.slot(kind, u32::from(index)).map_or(0, |s| s.addr)
}

/// For firmware without FOTA support: only the flash geometry is needed (for `Info`).
fn unsupported_geometry(config: &AgentConfig, g: &FlashGeometry) -> Result<Geometry, ConfigError> {
    use core::num::NonZeroU32;
    if config.name.len() > fota_protocol::MAX_NAME {
        return Err(ConfigError::NameTooLong);
    }
    let sector = NonZeroU32::new(g.sector).ok_or(ConfigError::UnsupportedFlash)?;
    let write = NonZeroU32::new(g.write_size).ok_or(ConfigError::UnsupportedFlash)?;
    Ok(Geometry {
        sector,
        record_sector: sector,
        write,
        stride: crate::record::stride(write),
    })
}

/// What continuing a held unit does to it.
#[derive(Debug, Clone, Copy)]
enum PlanHeld {
    /// The unit is complete: program it.
    Complete(Held),
    /// Still partly written: hold it longer.
    Hold(Held),
}

/// Put the held bytes of `h` over `buf`, which holds flash from `at`.
fn overlay_held(h: &Held, at: u32, buf: &mut [u8]) {
    for (k, &b) in h.bytes.iter().take(h.len).enumerate() {
        let p = u64::from(h.addr) + k as u64;
        if let Some(slot) = p
            .checked_sub(u64::from(at))
            .and_then(|i| buf.get_mut(usize::try_from(i).ok()?))
        {
            *slot = b;
        }
    }
}

// Chunks and blocks hold whole write units of any supported size.
const _: () =
    assert!(CHUNK.is_multiple_of(MAX_WRITE_UNIT) && MAX_WRITE.is_multiple_of(MAX_WRITE_UNIT));
const _: () = assert!(ERASED == 0xFF);
