//! The seed's ten functions over a NorFlash.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::Layout as _;
use fota_protocol::{
    ErrorCode, Info, PROTOCOL_VERSION, Record, RecordUpdate, Reply, SlotDesc, SlotKind,
};
use md5::{Digest, Md5};

use crate::MAX_WRITE;
use crate::config::{AgentConfig, ConfigError, FlashGeometry, Geometry, MAX_WRITE_UNIT};
use crate::flash::{self, ERASED};
use crate::record::{Log, LogEntry, RecordState};

/// Bytes read from flash at a time by `write_slot` and `checksum_slot`.
const CHUNK: usize = 256;

/// `checksum_slot` reports progress after each this many bytes.
pub const CHECKSUM_PROGRESS_STEP: u32 = 64 * 1024;

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
    const fn new(code: ErrorCode, detail: u32) -> Refusal {
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
    /// What this boot runs.
    boot: Boot,
}

/// What a seed function returns: its value, or why it was refused.
pub type RequestResult<T> = Result<T, Refusal>;

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
        let log_offset = config.record_addr.wrapping_sub(config.flash_base);
        let log = Log::new(log_offset, config.record_size, geo.sector, geo.stride);
        let mut agent = Agent {
            flash,
            geo,
            log,
            entry: LogEntry::factory(),
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

    /// The boot decision. Errors: the address of a failed read.
    fn decide(&mut self) -> Result<(), u32> {
        let found = self.scan()?;
        let Some(entry) = found else {
            self.entry = LogEntry::factory();
            self.boot.factory = true;
            self.boot.record_write_failed = self.append(LogEntry::factory()).is_err();
            self.set_running(0, 0);
            return Ok(());
        };
        self.entry = entry;
        match entry.state {
            RecordState::Confirmed => self.set_running(entry.vm_current, entry.bc_current),
            RecordState::Pending => {
                let trial = LogEntry {
                    state: RecordState::Trial,
                    ..entry
                };
                if self.append(trial).is_ok() {
                    self.boot.trial = true;
                    self.set_running(entry.vm_current, entry.bc_current);
                } else {
                    // Without a Trial on flash a crash would retry the new firmware
                    // forever: run the last working one and decide again next boot.
                    self.boot.record_write_failed = true;
                    self.set_running(entry.vm_last, entry.bc_last);
                }
            }
            RecordState::Trial => {
                let back = LogEntry::with_slots(
                    entry.vm_last,
                    entry.vm_last,
                    entry.bc_last,
                    entry.bc_last,
                );
                self.boot.reverted = true;
                self.boot.record_write_failed = self.append(back).is_err();
                self.set_running(entry.vm_last, entry.bc_last);
            }
        }
        Ok(())
    }

    fn set_running(&mut self, vm: u8, bc: u8) {
        self.boot.vm_slot = vm;
        self.boot.bc_slot = bc;
        self.boot.vm_addr = self.slot_addr(SlotKind::Vm, vm);
        self.boot.bc_addr = self.slot_addr(SlotKind::Bytecode, bc);
    }

    fn slot_addr(&self, kind: SlotKind, index: u8) -> u32 {
        // Indexes come from validated entries; 0 only for a layout without the slot,
        // which validation rejects.
        self.config
            .slot(kind, u32::from(index))
            .map_or(0, |s| s.addr)
    }

    /// Read the log; the newest entry that fits this layout is in force.
    fn scan(&mut self) -> Result<Option<LogEntry>, u32> {
        let config = &self.config;
        let fits = |e: &LogEntry| {
            let vm = |i: u8| config.slot(SlotKind::Vm, u32::from(i)).is_some();
            let bc = |i: u8| config.slot(SlotKind::Bytecode, u32::from(i)).is_some();
            vm(e.vm_current) && vm(e.vm_last) && bc(e.bc_current) && bc(e.bc_last)
        };
        let base = self.config.flash_base;
        self.log
            .scan(&mut self.flash, fits)
            .map_err(|off| base.wrapping_add(off))
    }

    /// Append an entry and make it the record in force. On failure the log is read again
    /// so that RAM matches flash (a failed write may have landed after all).
    fn append(&mut self, entry: LogEntry) -> Result<(), u32> {
        let base = self.config.flash_base;
        match self.log.append(&mut self.flash, entry) {
            Ok(written) => {
                self.entry = written;
                Ok(())
            }
            Err(off) => {
                if let Ok(Some(e)) = self.scan() {
                    self.entry = e;
                }
                Err(base.wrapping_add(off))
            }
        }
    }

    /// Write `entry` unless the record already says the same.
    fn update(&mut self, entry: LogEntry) -> RequestResult<()> {
        if entry.same_content(&self.entry) {
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
            valid: 1,
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
    pub fn set_record(&mut self, u: RecordUpdate) -> RequestResult<()> {
        self.supported()?;
        let vm_current = self.index(SlotKind::Vm, u.vm_current)?;
        let vm_last = self.index(SlotKind::Vm, u.vm_last)?;
        let bc_current = self.index(SlotKind::Bytecode, u.bc_current)?;
        let bc_last = self.index(SlotKind::Bytecode, u.bc_last)?;
        self.update(LogEntry::with_slots(
            vm_current, vm_last, bc_current, bc_last,
        ))
    }

    /// `find_bytecode_slot()`: the address of a bytecode slot that holds neither the
    /// current, the last working nor the running bytecode. `NoFreeSlot` (detail: the
    /// current slot index) when a trial occupies the second slot: accept or revert first.
    pub fn find_bytecode_slot(&self) -> RequestResult<u32> {
        self.supported()?;
        self.free_slot(SlotKind::Bytecode)
    }

    /// `find_vm_slot()`: like [`Agent::find_bytecode_slot`] for VMs. Where the layout
    /// has a single VM slot it returns the current VM's address (fota\[7\]): as the seed
    /// says, that means this device cannot update its VM.
    pub fn find_vm_slot(&self) -> RequestResult<u32> {
        self.supported()?;
        if self.config.count(SlotKind::Vm) == 1 {
            return Ok(self.slot_addr(SlotKind::Vm, self.entry.vm_current));
        }
        self.free_slot(SlotKind::Vm)
    }

    /// `erase_slot(addr, size)`: erase whole sectors from `addr` (a sector start) covering
    /// `size` bytes; returns the erased `(addr, size)`. The range must lie in one slot
    /// that is in use by no configuration (current, last working, running). `progress`
    /// gets `(bytes done, bytes in all)` between sectors.
    ///
    /// Power loss: the sectors erased so far stay erased; the slot is unused, so nothing
    /// that runs is affected. Erase again.
    pub fn erase_slot(
        &mut self,
        addr: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> RequestResult<(u32, u32)> {
        self.supported()?;
        if size == 0 {
            return Err(Refusal::new(ErrorCode::BadLength, 0));
        }
        if addr % self.geo.sector != 0 {
            return Err(Refusal::new(ErrorCode::Misaligned, addr));
        }
        let sector = self.geo.sector.get();
        let total = u64::from(size).div_ceil(u64::from(sector)) * u64::from(sector);
        let end = u64::from(addr) + total;
        self.free_range(addr, end, size)?;
        // `end` is inside the slot, so `total` fits a u32.
        let total = u32::try_from(total).map_err(|_| Refusal::new(ErrorCode::BadLength, size))?;
        let mut done = 0u32;
        while done < total {
            let at = addr.saturating_add(done);
            let off = self.offset(at)?;
            let to = off
                .checked_add(sector)
                .ok_or(Refusal::new(ErrorCode::FlashFailure, at))?;
            self.flash
                .erase(off, to)
                .map_err(|_| Refusal::new(ErrorCode::FlashFailure, at))?;
            done = done.saturating_add(sector);
            if done < total {
                progress(done, total);
            }
        }
        Ok((addr, total))
    }

    /// `write_slot(addr, block)`: program 1..=[`MAX_WRITE`] bytes at `addr`; address and
    /// length multiples of the flash write size, inside one unused slot.
    ///
    /// Idempotent, so a host may resend after a lost reply: a write unit that already
    /// holds the data is skipped, an erased one is programmed, anything else is refused
    /// with `NotErased` (detail: its address) before a single byte is programmed.
    ///
    /// Power loss: the units programmed so far stay; resending the block completes it.
    pub fn write_slot(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        self.supported()?;
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if data.is_empty() || data.len() > MAX_WRITE {
            return Err(Refusal::new(ErrorCode::BadLength, len));
        }
        if addr % self.geo.write != 0 || len % self.geo.write != 0 {
            return Err(Refusal::new(ErrorCode::Misaligned, addr));
        }
        let end = u64::from(addr) + u64::from(len);
        self.free_range(addr, end, len)?;
        let unit = self.geo.write.get() as usize;
        let flash_failure =
            |at: usize| Refusal::new(ErrorCode::FlashFailure, addr.saturating_add(at as u32));

        // Pass 1: every unit must be equal or erased, else nothing is programmed.
        let mut buf = [0u8; CHUNK];
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let have = buf.get_mut(..want.len()).ok_or(flash_failure(pos))?;
            self.read(addr, pos, have)?;
            for (j, (w, h)) in want.chunks(unit).zip(have.chunks(unit)).enumerate() {
                if w != h && !flash::is_erased(h) {
                    let at = addr.saturating_add((pos + j * unit) as u32);
                    return Err(Refusal::new(ErrorCode::NotErased, at));
                }
            }
        }
        // Pass 2: program the erased units that differ, a run of units per write.
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

    /// `checksum_slot(addr, size)`: MD5 of `size` bytes from `addr`, inside one slot (any
    /// slot, in use or not; never the record area). `progress` gets `(bytes done, bytes
    /// in all)` every [`CHECKSUM_PROGRESS_STEP`] bytes. Reads only.
    pub fn checksum_slot(
        &mut self,
        addr: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> RequestResult<[u8; 16]> {
        self.supported()?;
        if size == 0 {
            return Err(Refusal::new(ErrorCode::BadLength, 0));
        }
        let end = u64::from(addr) + u64::from(size);
        self.slot_range(addr, end, size)?;
        let mut md5 = Md5::new();
        let mut buf = [0u8; CHUNK];
        let mut done = 0u32;
        while done < size {
            let n = (size - done).min(CHUNK as u32);
            let chunk = buf
                .get_mut(..n as usize)
                .ok_or(Refusal::new(ErrorCode::FlashFailure, addr))?;
            self.read(addr, done as usize, chunk)?;
            md5.update(&*chunk);
            let before = done;
            done += n;
            if done < size && before / CHECKSUM_PROGRESS_STEP != done / CHECKSUM_PROGRESS_STEP {
                progress(done, size);
            }
        }
        Ok(md5.finalize().into())
    }

    /// `accept()`: end a trial by making the running configuration the last working one
    /// (`Trial` becomes `Confirmed` with last := current).
    ///
    /// In any other state it changes nothing and succeeds:
    /// - `Confirmed`: the running configuration already is the last working one.
    /// - `Pending` (an attempt that has not booted yet): the running configuration is the
    ///   last working one and the attempt stays pending: the next restart still tries it.
    ///   (If the running configuration was itself an unaccepted trial when the new attempt
    ///   was made, it is not accepted now: only a configuration that is current when
    ///   accept() runs can become the last working one.)
    pub fn accept(&mut self) -> RequestResult<()> {
        self.supported()?;
        let e = self.entry;
        let running_is_current =
            e.vm_current == self.boot.vm_slot && e.bc_current == self.boot.bc_slot;
        if e.state != RecordState::Trial || !running_is_current {
            return Ok(());
        }
        self.update(LogEntry::with_slots(
            e.vm_current,
            e.vm_current,
            e.bc_current,
            e.bc_current,
        ))
    }

    /// `attempt(bcslot, vmslot)`: try bytecode slot `bc_slot` with VM slot `vm_slot` at the
    /// next restart (state `Pending`); the last working configuration stays as it is, so
    /// a restart after the trial boot goes back to it unless `accept()` comes first.
    /// Attempting the last working configuration itself means "stay there"
    /// (`Confirmed`, no trial). `BadSlotIndex` (detail: the index) if either slot does
    /// not exist (a VM index other than 0 on a single-VM layout, say).
    pub fn attempt(&mut self, bc_slot: u32, vm_slot: u32) -> RequestResult<()> {
        self.supported()?;
        let bc = self.index(SlotKind::Bytecode, bc_slot)?;
        let vm = self.index(SlotKind::Vm, vm_slot)?;
        let e = self.entry;
        self.update(LogEntry::with_slots(vm, e.vm_last, bc, e.bc_last))
    }

    // ---- other accessors -----------------------------------------------------------

    /// The agent's description for `Hello`.
    pub fn info(&self) -> Info {
        let mut slots = self.config.slots.clone();
        slots.sort_unstable_by_key(|s| s.addr);
        Info {
            protocol_version: PROTOCOL_VERSION,
            agent_version: self.config.version,
            // Validation keeps the name within MAX_NAME; an empty name otherwise.
            name: heapless::String::try_from(self.config.name).unwrap_or_default(),
            fota_supported: self.config.fota_supported,
            sector_size: self.geo.sector.get(),
            write_granularity: u16::try_from(self.geo.write.get()).unwrap_or(u16::MAX),
            max_write: MAX_WRITE as u16,
            max_in_flight: self.config.max_in_flight,
            max_baud: self.config.max_baud,
            record_addr: self.config.record_addr,
            record_size: self.config.record_size,
            slots,
        }
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

    fn free_slot(&self, kind: SlotKind) -> RequestResult<u32> {
        let mut slots = self.config.slots.clone();
        slots.sort_unstable_by_key(|s| s.index);
        slots
            .iter()
            .find(|s| s.kind == kind && !self.in_use(s))
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

    /// [`Agent::slot_range`], and the slot must be in use by no configuration.
    fn free_range(&self, addr: u32, end: u64, len: u32) -> RequestResult<SlotDesc> {
        let slot = self.slot_range(addr, end, len)?;
        if self.in_use(&slot) {
            return Err(Refusal::new(ErrorCode::SlotInUse, slot.addr));
        }
        Ok(slot)
    }

    /// Flash offset of an address already checked to be inside a slot.
    fn offset(&self, addr: u32) -> RequestResult<u32> {
        addr.checked_sub(self.config.flash_base)
            .ok_or(Refusal::new(ErrorCode::OutOfSlot, addr))
    }

    /// Read `out.len()` bytes at `addr + pos`.
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
        write,
        stride: crate::record::stride(write),
    })
}

// Chunks and blocks hold whole write units of any supported size.
const _: () =
    assert!(CHUNK.is_multiple_of(MAX_WRITE_UNIT) && MAX_WRITE.is_multiple_of(MAX_WRITE_UNIT));
const _: () = assert!(ERASED == 0xFF);
