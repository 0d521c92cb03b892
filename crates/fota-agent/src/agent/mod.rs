//! The seed's ten functions over a NorFlash.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::Layout as _;
use fota_protocol::{DEFAULT_BAUD, ErrorCode, Info, PROTOCOL_VERSION, SlotDesc, SlotKind};

use crate::MAX_WRITE;
use crate::config::{AgentConfig, ConfigError, FlashGeometry, Geometry, MAX_WRITE_UNIT};
use crate::flash::{self, ERASED};
use crate::record::{Log, LogEntry, RecordState};
use md5::Md5;

mod background;
mod boot;
mod checksum;
mod record_fns;
mod refusal;
mod write;

pub use refusal::{AgentError, Refusal};

/// Bytes read from flash at a time by `write_slot` and `checksum_slot`.
const CHUNK: usize = 256;

/// `checksum_slot` reports progress after each this many bytes.
pub const CHECKSUM_PROGRESS_STEP: u32 = 64 * 1024;

/// Bytes one unit of a checksum hashes ([`Agent::checksum_unit`]): the bound on how long
/// the agent keeps the CPU from the firmware while hashing (4 KiB: about 1 ms of MD5 on a
/// Cortex-M4 at 64 MHz, plus the flash reads).
pub const CHECKSUM_UNIT: u32 = 4096;

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
    /// Flash offsets `[start, end)` this boot erased and has not programmed since (empty
    /// when `start >= end`): `write_slot` takes them for erased without reading them, so
    /// a block streamed behind its sector's erase costs the flash its program and its
    /// read-back only, not two more reads (a third of the block's flash time at 50 MHz
    /// SPI). RAM is lost with power, so this never outlives what it describes.
    erased_run: (u32, u32),
    /// The packed versions of the VM and bytecode images this trial boot runs (0: raw
    /// or not checked): `accept()` makes them the minimums.
    #[cfg(feature = "images")]
    trial_versions: [u32; 2],
    /// The last `checksum_slot` begun at a slot's first byte: (address, size, `changes`
    /// when it began, whether it ended with nothing changed); see `Agent::checked_len`
    /// and `Agent::check_attempted`.
    checked: Option<(u32, u32, Changes, bool)>,
    /// Its MD5, once it ended.
    checked_md5: [u8; 16],
    /// Whether its range holds no image trailer's magic: `attempt` then reads none of it
    /// (`Agent::check_unit`). Only while `checked` stands.
    #[cfg(feature = "images")]
    checked_raw: bool,
    /// Its range's CRC-32 (a delta header's) where it was asked of `RUNNING_*`: a
    /// `StreamBegin` from that base takes it (`Agent::checked_base_crc`). Here, not in
    /// the `ChecksumOp` of the link's state, whose size and zero start stay as they were.
    #[cfg(feature = "codec")]
    checked_crc: Option<u32>,
    /// The platform's clock, milliseconds since this boot started
    /// ([`Agent::set_uptime_ms`]); `None` until it gives it.
    uptime_ms: Option<u32>,
    /// The flash driver's background erase ([`Agent::enable_background_erase`]).
    #[cfg(feature = "background")]
    bg: Option<crate::background::Driver<F>>,
    /// The erases scheduled in the background.
    #[cfg(feature = "background")]
    sched: crate::background::Schedule,
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
    /// How many bytes of a trailer's magic end the bytes hashed; 8 once met whole.
    #[cfg(feature = "images")]
    magic: u8,
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
    /// The configuration, the flash and the unit hook, borrowed apart (image checks).
    #[cfg(feature = "images")]
    #[allow(clippy::type_complexity)]
    pub(crate) fn check_parts(&mut self) -> RequestResult<(&AgentConfig, &mut F, Option<fn()>)> {
        self.supported()?;
        self.settle_erases()?;
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
            confirm_ms: (self.config.confirm_ms != 0).then_some(self.config.confirm_ms),
            rx_window: (self.config.rx_window != 0).then_some(self.config.rx_window),
            trial_left_ms: self.trial_left_ms(),
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
            block_erases: self.config.block_erases.clone(),
            background_erase: self.background_erase(),
            codecs: crate::codecs::codecs(),
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
        // Whatever is done to it now, the agent no longer knows what is erased.
        self.erased_run = (0, 0);
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

    /// Fill `out` with the bytes at `addr + pos`: the erased value where `erased` (the
    /// range is known erased, see `erased_run`), else read from flash.
    #[inline(never)]
    fn read_unless_erased(
        &mut self,
        erased: bool,
        addr: u32,
        pos: usize,
        out: &mut [u8],
    ) -> RequestResult<()> {
        if erased {
            out.fill(crate::flash::ERASED);
            return Ok(());
        }
        self.read(addr, pos, out)
    }

    /// Whether the `len` bytes at `addr` (checked inside a slot) are known erased.
    #[inline(never)]
    fn known_erased(&self, addr: u32, len: usize) -> bool {
        let (start, end) = self.erased_run;
        let off = addr.wrapping_sub(self.config.flash_base);
        off >= start && off.checked_add(len as u32).is_some_and(|e| e <= end)
    }

    /// The flash offsets `from..to` were erased (`erased`: they join the known-erased
    /// run when they touch it, or replace it) or are being programmed or erased (they
    /// leave it, with its part after them when they fall inside it).
    #[inline(never)]
    fn note(&mut self, from: u32, to: u32, erased: bool) {
        let (start, end) = self.erased_run;
        let touch = start < end && from <= end && to >= start;
        self.erased_run = match (erased, touch) {
            (true, true) => (start.min(from), end.max(to)),
            (true, false) => (from, to),
            (false, true) if from <= start => (to, end),
            (false, true) => (start, from.min(end)),
            (false, false) => (start, end),
        };
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

// Chunks and blocks hold whole write units of any supported size.
const _: () =
    assert!(CHUNK.is_multiple_of(MAX_WRITE_UNIT) && MAX_WRITE.is_multiple_of(MAX_WRITE_UNIT));
const _: () = assert!(ERASED == 0xFF);

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
