//! A NOR flash model that enforces the rules of real parts and can lose power at any byte.
//!
//! [`SimFlash`] is a byte array at base address 0 that implements the `embedded-storage`
//! [`ReadNorFlash`] and [`NorFlash`] traits, so update code generic over those traits runs
//! on it unchanged. It is deliberately strict, because a lenient RAM flash hides the bugs
//! that brick devices:
//!
//! * erase works on whole aligned sectors and sets them to `0xFF`;
//! * a program needs an offset and length aligned to the write size and may only go over
//!   erased (`0xFF`) bytes; anything else fails and changes nothing (there is no
//!   `MultiwriteNorFlash`: programming a word twice is a bug here, as on many MCUs);
//! * every operation costs simulated time ([`FlashTiming`]), collected with
//!   [`SimFlash::take_busy_ns`].
//!
//! # Power cuts
//!
//! Every programmed byte is one *step*, and erasing a sector is `SECTOR` steps (one per
//! byte, from the start of the sector), and one step separates an operation that
//! completed from the next one (below). [`SimFlash::arm_power_cut`]`(k)` lets `k` more
//! steps complete; then:
//!
//! * a program has written the bytes before the cut, the byte at the cut is *torn* (some of
//!   its bits cleared toward the new value: `old & (new | random)`), the rest is untouched;
//! * an erase has set the bytes before the cut to `0xFF`, the byte at the cut is torn
//!   toward `0xFF` (`old | random`), the rest of the sector is unchanged;
//! * if the budget runs out exactly at the end of an operation, the data is complete but
//!   the call still returns [`FlashError::PowerLoss`]: the cut came after the operation
//!   finished but before the caller learnt it (a case MCUboot's simulator never tried);
//! * the step between an operation that completed (or a sector of an erase) and the
//!   next one is the point where the next one's *first* byte is torn: without it, a cut
//!   could land just after an operation or inside the next from its second byte on,
//!   never on the next one's first byte.
//!
//! After a cut every operation fails with [`FlashError::PowerLoss`] until
//! [`SimFlash::power_on`]. The flash keeps only its bytes; a device model must rebuild all
//! of its RAM state from them on power-on, which is the point of the exercise.
//!
//! A test counts the steps of an operation sequence with [`SimFlash::step_count`] on a
//! run without a cut, then re-runs it once per cut point with [`for_each_cut`].
//!
//! Real parts erase a sector all at once and a cut leaves cells half-erased anywhere in
//! it; the byte-by-byte model gives the same outcomes that matter to update code (some
//! bytes erased, some not, one in between) while staying reproducible.
//!
//! # ECC flash
//!
//! Many MCU flashes (STM32L4, G4, H7 and others) store an error-correcting code with each
//! program word and report a read error, instead of data, for a word whose program or
//! erase was interrupted. [`SimFlash::with_ecc`] models that: the word (`WRITE` bytes)
//! holding the byte a cut tore, in a program or in an erase, is *torn*; reading any byte
//! of it fails with [`FlashError::Ecc`], and programming it fails with
//! [`FlashError::NotErased`], until an erase of its sector completes. Words a cut did not
//! reach read normally. Torn words are kept in RAM only: [`SimFlash::snapshot`] holds the
//! bytes, not the torn marks (a clone keeps both).
//!
//! # Mixed sector sizes
//!
//! [`SimFlash::with_sectors`] makes runs of the flash erase in larger sectors, each with
//! its own erase time, like an STM32F4's 16, 64 and 128 KiB sectors (0.5 to 2 s each).
//! `SECTOR` is then the smallest erase unit (`NorFlash::ERASE_SIZE`); an erase must start
//! and end on the boundaries of the real sectors, and erases them whole.
//!
//! # Block erases
//!
//! Where the timing lists block erases ([`FlashTiming::block_erases`]: a W25Q128JV's
//! 32 KiB in 120 ms and 64 KiB in 150 ms), an erase range that covers a whole aligned
//! block of `SECTOR`-byte sectors erases it with one block erase, the largest that fits,
//! timed as such; the rest of the range goes by sectors. A block erase is one operation
//! of as many steps as its bytes, cut like a sector's: the bytes before the cut erased,
//! the byte at the cut torn, the rest of the block as it was (so any sector of it may be
//! erased, torn or untouched), and every sector of it counts as erased once.
//!
//! # Background erases
//!
//! [`SimFlash::start_erase`] begins an erase that runs while the device does other work,
//! with a SPI NOR's erase suspend and resume around programs and reads elsewhere: see
//! the [`background`] module (its timing, its refusals and how the power-cut model
//! covers it). Nothing changes for code that does not call it.
//!
//! # Worn flash
//!
//! [`SimFlash::wear_out`] makes a range fail every program and erase that touches it
//! (the call fails and changes nothing), as a worn-out or write-protected region does.

pub mod background;

pub use background::EraseSuspend;

use std::collections::BTreeSet;
use std::fmt;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fota_protocol::SectorRun;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Errors of [`SimFlash`]. Every error but [`FlashError::PowerLoss`] leaves the flash
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashError {
    /// The range leaves the flash, or an erase's `from` is after its `to`.
    OutOfBounds,
    /// The offset or length is not a multiple of the write size (program) or of the
    /// sector size (erase).
    NotAligned,
    /// A program would go over a byte that is not erased; nothing was written.
    NotErased {
        /// Address of the first byte in the range that is not `0xFF`.
        offset: u32,
    },
    /// Power failed during or right after this operation, or is still off. The flash may
    /// hold a partly done operation; call [`SimFlash::power_on`] and rebuild state from
    /// the flash contents.
    PowerLoss,
    /// ECC mode: the word holding this byte was torn by a cut (a program or an erase that
    /// did not complete); it cannot be read until its sector is erased.
    Ecc {
        /// Address of the first unreadable byte of the range.
        offset: u32,
    },
    /// The range touches a region [`SimFlash::wear_out`] made fail; nothing was changed.
    Worn {
        /// Address of the first worn byte of the range.
        offset: u32,
    },
    /// A background erase runs and is not suspended ([`background`]): the part takes no
    /// other program, read or erase; nothing was changed.
    Busy,
    /// A background erase of this range is suspended: the part does not program or read
    /// the range being erased; nothing was changed.
    Erasing {
        /// Address of the first byte of the range that is being erased.
        offset: u32,
    },
    /// [`SimFlash::from_image`] got a length that is not a whole number of sectors.
    BadImageLength {
        /// The length given.
        len: usize,
    },
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::OutOfBounds => f.write_str("flash range out of bounds"),
            FlashError::NotAligned => f.write_str("flash range not aligned"),
            FlashError::NotErased { offset } => {
                write!(f, "program over a byte that is not erased at {offset:#x}")
            }
            FlashError::PowerLoss => f.write_str("power lost"),
            FlashError::Ecc { offset } => {
                write!(f, "uncorrectable ECC error (torn word) at {offset:#x}")
            }
            FlashError::Worn { offset } => write!(f, "worn flash at {offset:#x}"),
            FlashError::Busy => f.write_str("flash busy with an erase that is not suspended"),
            FlashError::Erasing { offset } => {
                write!(f, "flash range at {offset:#x} is being erased (suspended)")
            }
            FlashError::BadImageLength { len } => {
                write!(
                    f,
                    "flash image of {len} bytes is not a whole number of sectors"
                )
            }
        }
    }
}

impl std::error::Error for FlashError {}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// How long flash operations take, in nanoseconds of simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashTiming {
    /// Erasing one sector.
    pub sector_erase_ns: u64,
    /// Bytes of a program page: a program is issued one page at a time.
    pub page_size: u32,
    /// Programming a full page; a partial page costs its share (rounded up).
    pub page_program_ns: u64,
    /// Fixed cost of each read (command, address and dummy bytes on the bus).
    pub read_setup_ns: u64,
    /// Each byte read.
    pub read_ns_per_byte: u64,
    /// Block erases the part offers besides its sector erase, `(bytes, nanoseconds)`,
    /// ascending by size: an erase whose range covers a whole aligned block of
    /// `SECTOR`-byte sectors erases it in one command, in that time (see
    /// [`SimFlash::erase`](NorFlash::erase)). Empty: sector erases only.
    pub block_erases: &'static [(u32, u64)],
}

impl FlashTiming {
    /// Typical figures of a Winbond W25Q128JV SPI NOR flash: 4 KiB sector erase 45 ms
    /// (tSE), 32 KiB block erase 120 ms (tBE1, command 0x52), 64 KiB block erase 150 ms
    /// (tBE2, command 0xD8), 256-byte page program 0.7 ms (tPP), and Fast Read on a
    /// 50 MHz single-bit SPI bus (160 ns a byte, plus 5 bytes of command, address and
    /// dummy cycles).
    pub const W25Q128JV: FlashTiming = FlashTiming {
        sector_erase_ns: 45_000_000,
        block_erases: &[(32 * 1024, 120_000_000), (64 * 1024, 150_000_000)],
        page_size: 256,
        page_program_ns: 700_000,
        read_setup_ns: 800,
        read_ns_per_byte: 160,
    };

    /// An STM32F4's internal flash (x32 parallelism): a 32-bit word programmed in 16 us
    /// (typical), reads at the core's speed (about 5 ns a byte). Its sectors' erase times
    /// depend on their size: see [`SimFlash::with_sectors`]; `sector_erase_ns` is the
    /// 16 KiB sector's maximum (0.5 s).
    pub const STM32F4: FlashTiming = FlashTiming {
        sector_erase_ns: 500_000_000,
        page_size: 4,
        page_program_ns: 16_000,
        read_setup_ns: 0,
        read_ns_per_byte: 5,
        block_erases: &[],
    };

    /// Everything takes no time (for tests about contents only).
    pub const INSTANT: FlashTiming = FlashTiming {
        sector_erase_ns: 0,
        page_size: 256,
        page_program_ns: 0,
        read_setup_ns: 0,
        read_ns_per_byte: 0,
        block_erases: &[],
    };

    /// Time to program `len` bytes from `offset`, split at page boundaries as a driver
    /// must (a page program wraps within its page on real parts).
    pub fn program_ns(&self, offset: u32, len: usize) -> u64 {
        let page = u64::from(self.page_size.max(1));
        let mut at = u64::from(offset);
        let end = at + len as u64;
        let mut total = 0u64;
        while at < end {
            let chunk = (page - at % page).min(end - at);
            total += (self.page_program_ns * chunk).div_ceil(page);
            at += chunk;
        }
        total
    }

    /// The erases of `len` bytes from `offset` (a boundary of `sector`-byte sectors),
    /// rounded up to whole sectors, when each is the largest of `blocks` (`(bytes, ns)`, ascending: the
    /// part's own [`FlashTiming::block_erases`] for its fastest) that starts there and
    /// fits, else a sector: `(erase time, number of erases, the first one's time)`.
    pub fn erase_plan_ns(
        &self,
        sector: u32,
        offset: u32,
        len: usize,
        blocks: &[(u32, u64)],
    ) -> (u64, u64, u64) {
        let sector = u64::from(sector.max(1));
        let mut at = u64::from(offset);
        let end = at + (len as u64).div_ceil(sector) * sector;
        let (mut total, mut count, mut first) = (0u64, 0u64, None);
        while at < end {
            let (size, ns) = blocks
                .iter()
                .rev()
                .map(|&(size, ns)| (u64::from(size), ns))
                .find(|&(size, _)| size > 0 && at % size == 0 && at + size <= end)
                .unwrap_or((sector, self.sector_erase_ns));
            total += ns;
            count += 1;
            first.get_or_insert(ns);
            at += size;
        }
        (total, count, first.unwrap_or(0))
    }

    /// Time to read `len` bytes in one command.
    pub fn read_ns(&self, len: usize) -> u64 {
        self.read_setup_ns + self.read_ns_per_byte * len as u64
    }
}

impl Default for FlashTiming {
    fn default() -> Self {
        FlashTiming::W25Q128JV
    }
}

/// Seed of the torn-bit generator unless [`SimFlash::set_seed`] says otherwise.
pub const DEFAULT_SEED: u64 = 0x5EED_F1A5;

/// Receives every change of the flash as it is made, `(offset, bytes now there)`, in the
/// order the part makes them: a program word by word, an erase [`ERASE_PIECE`] bytes at
/// a time (see [`SimFlash::set_write_through`]).
pub type WriteThrough = std::sync::Arc<std::sync::Mutex<dyn FnMut(u32, &[u8]) + Send>>;

/// Bytes of an erase handed to a [`WriteThrough`] at a time.
pub const ERASE_PIECE: usize = 256;

/// A NOR flash of `WRITE`-byte program granularity and `SECTOR`-byte erase sectors.
///
/// The sizes are const generics because `NorFlash` needs them as associated consts. The
/// defaults model a 4 KiB-sector SPI NOR (W25Q series) driven in 4-byte words, as MCU
/// internal flashes require, so alignment bugs show up; use `SimFlash<1, 4096>` for a part
/// that programs single bytes, or `SimFlash<8, 2048>` for an STM32G4-like internal flash.
///
/// See the [module docs](self) for the rules and the power-cut model.
#[derive(Clone)]
pub struct SimFlash<const WRITE: usize = 4, const SECTOR: usize = 4096> {
    mem: Vec<u8>,
    timing: FlashTiming,
    erase_counts: Vec<u32>,
    bytes_programmed: u64,
    busy_ns: u64,
    steps: u64,
    /// An operation completed since the last [`reset_steps`](Self::reset_steps): the next
    /// one starts with the step that separates them.
    closed: bool,
    /// Steps left before the cut, if one is armed.
    cut_after: Option<u64>,
    powered: bool,
    seed: u64,
    rng: ChaCha8Rng,
    /// ECC mode: reading a torn word fails.
    ecc: bool,
    /// Indexes (offset / `WRITE`) of the words a cut tore, in ECC mode.
    torn: BTreeSet<usize>,
    /// Ranges where every program and erase fails.
    worn: Vec<core::ops::Range<usize>>,
    /// Runs of sectors larger than `SECTOR`, each with its erase time in nanoseconds.
    big: Vec<(SectorRun, u64)>,
    /// Sector erases begun (a sector of a run counts once, a block erase once).
    erases: u64,
    /// Block erases begun.
    block_erases: u64,
    /// Where changes go as they are made, if anywhere.
    write_through: Option<WriteThrough>,
    /// The last cut tore the first byte of an operation that followed a completed one.
    first_byte_cut: bool,
    /// The erase running in the background, if any, and the part's suspend figures.
    bg: background::Background,
}

/// What an armed cut allows of an operation of `n` steps.
enum Allowance {
    /// All steps; power stays on.
    All,
    /// All steps, then power fails before the call returns.
    AllThenCut,
    /// This many steps complete, the next one is torn, power fails.
    Partial(usize),
}

impl<const WRITE: usize, const SECTOR: usize> SimFlash<WRITE, SECTOR> {
    /// Compile-time checks of the geometry; referenced from every constructor.
    const GEOMETRY_OK: () = {
        assert!(WRITE > 0, "write size must be at least 1");
        assert!(SECTOR > 0, "sector size must be at least 1");
        assert!(
            SECTOR.is_multiple_of(WRITE),
            "sector size must be a multiple of the write size"
        );
    };

    /// An erased flash (all `0xFF`) of `capacity` bytes with the W25Q128JV timing.
    ///
    /// # Panics
    /// If `capacity` is not a whole number of sectors or exceeds the 32-bit address space:
    /// that is a bug in the caller's layout, not a runtime condition.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity.is_multiple_of(SECTOR),
            "capacity {capacity} is not a multiple of the {SECTOR}-byte sector"
        );
        Self::build(vec![0xFF; capacity])
    }

    /// A flash holding `image` (for instance a [`snapshot`](Self::snapshot) or a file a
    /// CLI saved), powered on, with fresh statistics.
    pub fn from_image(image: Vec<u8>) -> Result<Self, FlashError> {
        if !image.len().is_multiple_of(SECTOR) || u32::try_from(image.len()).is_err() {
            return Err(FlashError::BadImageLength { len: image.len() });
        }
        Ok(Self::build(image))
    }

    fn build(mem: Vec<u8>) -> Self {
        let () = Self::GEOMETRY_OK;
        // The trait API takes u32 offsets; a larger flash could not be addressed.
        assert!(u32::try_from(mem.len()).is_ok(), "flash larger than 4 GiB");
        let sectors = mem.len() / SECTOR;
        SimFlash {
            mem,
            timing: FlashTiming::default(),
            erase_counts: vec![0; sectors],
            bytes_programmed: 0,
            busy_ns: 0,
            steps: 0,
            closed: false,
            write_through: None,
            first_byte_cut: false,
            cut_after: None,
            powered: true,
            seed: DEFAULT_SEED,
            rng: ChaCha8Rng::seed_from_u64(DEFAULT_SEED),
            ecc: false,
            torn: BTreeSet::new(),
            worn: Vec::new(),
            big: Vec::new(),
            erases: 0,
            block_erases: 0,
            bg: background::Background::default(),
        }
    }

    /// The same flash with runs of larger sectors (builder style): see
    /// [`SimFlash::set_sectors`].
    pub fn with_sectors(mut self, runs: &[(SectorRun, u64)]) -> Self {
        self.set_sectors(runs);
        self
    }

    /// Make each run erase in sectors of its own size, taking its own time (nanoseconds a
    /// sector). Runs must be ascending, whole multiples of `SECTOR` and not overlap
    /// (`fota_protocol::sector_runs_valid`); others are dropped.
    pub fn set_sectors(&mut self, runs: &[(SectorRun, u64)]) {
        let only: Vec<SectorRun> = runs.iter().map(|r| r.0).collect();
        self.big = if fota_protocol::sector_runs_valid(&only, SECTOR as u32) {
            runs.to_vec()
        } else {
            Vec::new()
        };
    }

    /// The runs of larger sectors and their erase times.
    pub fn sector_runs(&self) -> &[(SectorRun, u64)] {
        &self.big
    }

    /// The erase sector holding `offset` (`start`, `size`) and its erase time.
    pub fn sector_at(&self, offset: u32) -> (u32, u32, u64) {
        let runs: Vec<SectorRun> = self.big.iter().map(|r| r.0).collect();
        let (start, size) = fota_protocol::sector_at(&runs, SECTOR as u32, offset);
        let ns = self
            .big
            .iter()
            .find(|(r, _)| r.size == size && u64::from(offset) < r.end() && offset >= r.addr)
            .map_or(self.timing.sector_erase_ns, |r| r.1);
        (start, size, ns)
    }

    /// The largest block erase of the timing that starts at `at`, ends by `to` and holds
    /// only `SECTOR`-byte sectors: `(bytes, nanoseconds)`.
    fn block_at(&self, at: u32, to: u32) -> Option<(u32, u64)> {
        self.timing
            .block_erases
            .iter()
            .rev()
            .copied()
            .find(|&(size, _)| {
                let end = u64::from(at) + u64::from(size);
                size > 0
                    && at.is_multiple_of(size)
                    && end <= u64::from(to)
                    && !self
                        .big
                        .iter()
                        .any(|(r, _)| u64::from(r.addr) < end && r.end() > u64::from(at))
            })
    }

    /// Erases done as one block erase (a cut one counts).
    pub fn block_erases_done(&self) -> u64 {
        self.block_erases
    }

    /// The same flash in ECC mode (builder style): see the [module docs](self).
    pub fn with_ecc(mut self) -> Self {
        self.ecc = true;
        self
    }

    /// Turns ECC mode on or off. Off forgets the torn words.
    pub fn set_ecc(&mut self, ecc: bool) {
        self.ecc = ecc;
        if !ecc {
            self.torn.clear();
        }
    }

    /// Whether reading a torn word fails.
    pub fn ecc(&self) -> bool {
        self.ecc
    }

    /// Addresses of the words a cut tore (ECC mode), lowest first.
    pub fn torn_words(&self) -> Vec<u32> {
        self.torn.iter().map(|&w| (w * WRITE) as u32).collect()
    }

    /// Tear the word holding `offset` by hand (ECC mode), as a cut would have.
    pub fn tear_word(&mut self, offset: u32) {
        if self.ecc {
            self.torn.insert(offset as usize / WRITE);
        }
    }

    /// Make every program and erase touching `offset..offset + len` fail from now on.
    pub fn wear_out(&mut self, offset: u32, len: usize) {
        let start = offset as usize;
        self.worn.push(start..start.saturating_add(len));
    }

    /// The first worn byte of `range`, if any.
    fn worn_in(&self, range: &core::ops::Range<usize>) -> Option<u32> {
        self.worn
            .iter()
            .filter(|w| w.start < range.end && range.start < w.end)
            .map(|w| w.start.max(range.start) as u32)
            .min()
    }

    /// The first torn word overlapping `range` (ECC mode), as a byte address.
    fn torn_in(&self, range: &core::ops::Range<usize>) -> Option<u32> {
        if !self.ecc || range.is_empty() {
            return None;
        }
        let first = range.start / WRITE;
        let last = (range.end - 1) / WRITE;
        self.torn
            .range(first..=last)
            .next()
            .map(|&w| ((w * WRITE).max(range.start)) as u32)
    }

    /// Replaces the timing model (builder style).
    pub fn with_timing(mut self, timing: FlashTiming) -> Self {
        self.timing = timing;
        self
    }

    /// The timing model.
    pub fn timing(&self) -> FlashTiming {
        self.timing
    }

    /// Replaces the timing model.
    pub fn set_timing(&mut self, timing: FlashTiming) {
        self.timing = timing;
    }

    /// Reseeds the generator of torn bits, so a run is reproducible whatever came before.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// The seed last given to [`set_seed`](Self::set_seed) (or [`DEFAULT_SEED`]).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Capacity in bytes.
    pub fn len(&self) -> usize {
        self.mem.len()
    }

    /// Whether the flash has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.mem.is_empty()
    }

    /// Number of erase sectors.
    pub fn sector_count(&self) -> usize {
        self.erase_counts.len()
    }

    /// The contents, read without cost and even with the power off (a probe on the chip).
    pub fn as_bytes(&self) -> &[u8] {
        &self.mem
    }

    /// A copy of the contents, to persist or to build another flash with
    /// [`from_image`](Self::from_image).
    pub fn snapshot(&self) -> Vec<u8> {
        self.mem.clone()
    }

    // ---- power ----

    /// Lets `after_steps` more steps complete, then cuts the power (see the
    /// [module docs](self)). Replaces any cut already armed.
    pub fn arm_power_cut(&mut self, after_steps: u64) {
        self.cut_after = Some(after_steps);
        self.first_byte_cut = false;
    }

    /// Cancels an armed cut that has not happened yet.
    pub fn disarm_power_cut(&mut self) {
        self.cut_after = None;
    }

    /// Steps left before an armed cut, if any.
    pub fn power_cut_armed(&self) -> Option<u64> {
        self.cut_after
    }

    /// Cuts the power now, between operations (nothing is torn).
    pub fn cut_power(&mut self) {
        self.powered = false;
        self.drop_erase();
        self.cut_after = None;
    }

    /// Restores power after a cut. The contents stay as the cut left them.
    pub fn power_on(&mut self) {
        self.powered = true;
        self.drop_erase();
    }

    /// Whether operations can run.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Steps (programmed bytes, erased bytes, and one between each completed operation
    /// and the next) since creation or [`reset_steps`](Self::reset_steps). A torn byte
    /// is not counted.
    pub fn step_count(&self) -> u64 {
        self.steps
    }

    /// Restarts [`step_count`](Self::step_count) from 0.
    pub fn reset_steps(&mut self) {
        self.steps = 0;
        self.closed = false;
    }

    /// Whether the last cut tore the first byte of an operation that followed a completed
    /// one (the cut points the step between operations adds).
    pub fn cut_tore_first_byte(&self) -> bool {
        self.first_byte_cut
    }

    /// Hand every change to `sink` as it is made (`None`: stop), so that a copy kept
    /// elsewhere (a file) changes as the flash does and a process killed in the middle of
    /// an operation leaves that operation part done there, as a power cut does.
    pub fn set_write_through(&mut self, sink: Option<WriteThrough>) {
        self.write_through = sink;
    }

    /// Give the bytes of `range` to the write-through sink, `piece` bytes a call.
    fn pass_through(&self, range: core::ops::Range<usize>, piece: usize) {
        let Some(sink) = &self.write_through else {
            return;
        };
        // A sink that panicked once still gets the rest: the copy stays as close as it can.
        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = range.start;
        while at < range.end {
            let end = (at + piece).min(range.end);
            // `at` is inside the flash, whose size fits in u32.
            sink(at as u32, &self.mem[at..end]);
            at = end;
        }
    }

    // ---- statistics ----

    /// Busy time accumulated since the last call, which a device model adds to its clock.
    pub fn take_busy_ns(&mut self) -> u64 {
        core::mem::take(&mut self.busy_ns)
    }

    /// Busy time accumulated and not yet taken.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns
    }

    /// How many times each `SECTOR`-byte unit has been erased (a cut erase counts: its
    /// cells wore). A larger sector counts once in each of its units.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erase_counts
    }

    /// How many times the sector holding `offset` has been erased (0 if out of range).
    pub fn erase_count_at(&self, offset: u32) -> u32 {
        self.erase_counts
            .get(offset as usize / SECTOR)
            .copied()
            .unwrap_or(0)
    }

    /// Erases in total (a larger sector counts once, a block erase once; a cut one
    /// counts).
    pub fn total_erases(&self) -> u64 {
        self.erases
    }

    /// Bytes programmed in total (torn bytes not counted).
    pub fn bytes_programmed(&self) -> u64 {
        self.bytes_programmed
    }

    // ---- internals ----

    fn check_power(&self) -> Result<(), FlashError> {
        if self.powered {
            Ok(())
        } else {
            Err(FlashError::PowerLoss)
        }
    }

    /// `offset..offset+len` as a checked index range.
    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, FlashError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.mem.len() => Ok(start..end),
            _ => Err(FlashError::OutOfBounds),
        }
    }

    /// Consumes the budget of an operation of `n` steps (`n > 0`).
    fn allow(&mut self, n: usize) -> Allowance {
        // The step between the last completed operation and this one (see `closed`).
        let after_op = self.closed;
        if self.closed {
            self.steps += 1;
            self.closed = false;
        }
        let Some(left) = self.cut_after else {
            return Allowance::All;
        };
        let n64 = n as u64;
        if left > n64 {
            // The operation and the step that closes it: a budget left at 0 tears the
            // first byte of the next operation.
            self.cut_after = Some(left - n64 - 1);
            return Allowance::All;
        }
        self.cut_after = None;
        self.powered = false;
        if left == n64 {
            Allowance::AllThenCut
        } else {
            self.first_byte_cut = left == 0 && after_op;
            // left < n, which fits in usize.
            Allowance::Partial(left as usize)
        }
    }

    fn random_byte(&mut self) -> u8 {
        self.rng.next_u32() as u8
    }

    fn program(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        self.check_power()?;
        let range = self.range(offset, data.len())?;
        if !(offset as usize).is_multiple_of(WRITE) || !data.len().is_multiple_of(WRITE) {
            return Err(FlashError::NotAligned);
        }
        self.bg.check(range.start, range.end)?;
        if let Some(i) = self.mem[range.clone()].iter().position(|&b| b != 0xFF) {
            // i < data.len() and the range is in bounds, so this fits in u32.
            return Err(FlashError::NotErased {
                offset: offset + i as u32,
            });
        }
        // A torn word's code bits are partly programmed: the part refuses it as it
        // refuses a word that is not erased.
        if let Some(at) = self.torn_in(&range) {
            return Err(FlashError::NotErased { offset: at });
        }
        if data.is_empty() {
            return Ok(());
        }
        if let Some(at) = self.worn_in(&range) {
            return Err(FlashError::Worn { offset: at });
        }
        let done = match self.allow(data.len()) {
            Allowance::All | Allowance::AllThenCut => data.len(),
            Allowance::Partial(k) => k,
        };
        let start = range.start;
        self.mem[start..start + done].copy_from_slice(&data[..done]);
        if done < data.len() {
            // Some bits of the byte at the cut reached their new value, some did not.
            let mask = self.random_byte();
            let old = self.mem[start + done];
            self.mem[start + done] = old & (data[done] | mask);
            if self.ecc {
                self.torn.insert((start + done) / WRITE);
            }
        }
        self.pass_through(start..(start + done + 1).min(range.end), WRITE);
        self.steps += done as u64;
        self.closed = done == data.len();
        self.bytes_programmed += done as u64;
        self.busy_ns += self.timing.program_ns(offset, done);
        self.check_power()
    }

    fn erase_range(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.check_power()?;
        if self.bg.running.is_some() {
            return Err(FlashError::Busy);
        }
        let units = self.plan_erase(from, to)?;
        self.apply_erase(&units, true).map(|_| ())
    }

    /// The erase units of `from..to` (`(start, bytes, ns)`): each real sector whole, or
    /// the largest block erase that fits. Fails, changing nothing, on a range that
    /// leaves the flash, cuts a sector or touches worn flash.
    fn plan_erase(&self, from: u32, to: u32) -> Result<Vec<(usize, usize, u64)>, FlashError> {
        if from > to || to as usize > self.mem.len() {
            return Err(FlashError::OutOfBounds);
        }
        // The real sectors the range covers, each whole.
        let mut sectors = Vec::new();
        let mut at = from;
        while at < to {
            let (start, size, ns) = self.sector_at(at);
            if start != at || u64::from(at) + u64::from(size) > u64::from(to) {
                return Err(FlashError::NotAligned);
            }
            let (size, ns) = self.block_at(at, to).unwrap_or((size, ns));
            sectors.push((at as usize, size as usize, ns));
            at += size;
        }
        if let Some(at) = self.worn_in(&(from as usize..to as usize)) {
            return Err(FlashError::Worn { offset: at });
        }
        Ok(sectors)
    }

    /// Erase the bytes of `units` (from [`Self::plan_erase`]), one step a byte, a cut
    /// tearing one; returns their erase time, also charged as busy time if `charge`
    /// (a blocking erase; a background one's time runs as it progresses).
    fn apply_erase(
        &mut self,
        units: &[(usize, usize, u64)],
        charge: bool,
    ) -> Result<u64, FlashError> {
        let mut time = 0u64;
        for &(start, size, ns) in units {
            self.erases += 1;
            if size > SECTOR && self.sector_at(start as u32).1 as usize != size {
                self.block_erases += 1;
            }
            for c in &mut self.erase_counts[start / SECTOR..(start + size) / SECTOR] {
                *c += 1;
            }
            let done = match self.allow(size) {
                Allowance::All | Allowance::AllThenCut => size,
                Allowance::Partial(k) => k,
            };
            self.mem[start..start + done].fill(0xFF);
            if self.ecc {
                // Words wholly erased read again; the one at the cut is torn.
                let erased = start / WRITE..(start + done) / WRITE;
                self.torn.retain(|w| !erased.contains(w));
            }
            if done < size {
                // Erasing sets bits: some bits of the byte at the cut got there.
                let mask = self.random_byte();
                self.mem[start + done] |= mask;
                if self.ecc {
                    self.torn.insert((start + done) / WRITE);
                }
            }
            self.pass_through(start..(start + done + 1).min(start + size), ERASE_PIECE);
            self.steps += done as u64;
            self.closed = done == size;
            let t = (ns * done as u64).div_ceil(size as u64);
            time += t;
            if charge {
                self.busy_ns += t;
            }
            self.check_power()?;
        }
        Ok(time)
    }

    fn read_into(&mut self, offset: u32, out: &mut [u8]) -> Result<(), FlashError> {
        self.check_power()?;
        let range = self.range(offset, out.len())?;
        self.bg.check(range.start, range.end)?;
        if let Some(at) = self.torn_in(&range) {
            return Err(FlashError::Ecc { offset: at });
        }
        out.copy_from_slice(&self.mem[range]);
        self.busy_ns += self.timing.read_ns(out.len());
        Ok(())
    }
}

impl<const WRITE: usize, const SECTOR: usize> fmt::Debug for SimFlash<WRITE, SECTOR> {
    // The contents would drown any log; show the geometry and state instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFlash")
            .field("capacity", &self.mem.len())
            .field("write_size", &WRITE)
            .field("sector_size", &SECTOR)
            .field("powered", &self.powered)
            .field("cut_after", &self.cut_after)
            .field("steps", &self.steps)
            .field("total_erases", &self.total_erases())
            .field("bytes_programmed", &self.bytes_programmed)
            .field("ecc", &self.ecc)
            .field("torn_words", &self.torn.len())
            .finish_non_exhaustive()
    }
}

impl<const WRITE: usize, const SECTOR: usize> ErrorType for SimFlash<WRITE, SECTOR> {
    type Error = FlashError;
}

impl<const WRITE: usize, const SECTOR: usize> ReadNorFlash for SimFlash<WRITE, SECTOR> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.read_into(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const WRITE: usize, const SECTOR: usize> NorFlash for SimFlash<WRITE, SECTOR> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.erase_range(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.program(offset, bytes)
    }
}

/// Calls `run(cut_at)` for every cut point `0..=steps_total`: `steps_total` is the
/// [`SimFlash::step_count`] of a run without a cut, and `cut_at == steps_total` is the
/// cut right after the last operation completed, before it returned.
///
/// ```
/// use embedded_storage::nor_flash::NorFlash;
/// use fota_sim::flash::{for_each_cut, SimFlash};
///
/// let run = |flash: &mut SimFlash| flash.write(0, &[1, 2, 3, 4]);
/// let mut probe = SimFlash::new(4096);
/// run(&mut probe).unwrap();
/// for_each_cut(probe.step_count(), |cut_at| {
///     let mut flash = SimFlash::new(4096);
///     flash.arm_power_cut(cut_at);
///     assert!(run(&mut flash).is_err());
///     flash.power_on();
///     // ...reboot from `flash.as_bytes()` and check the invariants here.
/// });
/// ```
pub fn for_each_cut(steps_total: u64, mut run: impl FnMut(u64)) {
    for cut_at in 0..=steps_total {
        run(cut_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Flash = SimFlash<4, 4096>;

    fn flash(sectors: usize) -> Flash {
        Flash::new(sectors * 4096)
    }

    fn pattern(len: usize) -> Vec<u8> {
        // No 0xFF bytes, so "written" and "erased" are always distinguishable.
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn new_flash_is_erased() {
        let f = flash(2);
        assert_eq!(f.len(), 8192);
        assert!(f.as_bytes().iter().all(|&b| b == 0xFF));
        assert_eq!(f.sector_count(), 2);
    }

    #[test]
    fn write_then_read_back() {
        let mut f = flash(1);
        f.write(8, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut buf = [0u8; 10];
        f.read(6, &mut buf).unwrap();
        assert_eq!(buf, [0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(f.bytes_programmed(), 8);
        assert_eq!(f.step_count(), 8);
    }

    #[test]
    fn program_over_non_erased_fails_and_changes_nothing() {
        let mut f = flash(1);
        f.write(4, &[0, 0, 0, 0]).unwrap();
        let before = f.snapshot();
        // The range starts on erased bytes and runs into the programmed word.
        assert_eq!(
            f.write(0, &[9; 8]),
            Err(FlashError::NotErased { offset: 4 })
        );
        assert_eq!(f.snapshot(), before);
        // Even rewriting the same value or 0xFF counts as programming twice.
        assert_eq!(
            f.write(4, &[0, 0, 0, 0]),
            Err(FlashError::NotErased { offset: 4 })
        );
        assert_eq!(f.snapshot(), before);
        assert_eq!(f.step_count(), 4);
        assert_eq!(
            f.write(4, &[0, 0, 0, 0]).unwrap_err().kind(),
            NorFlashErrorKind::Other
        );
    }

    #[test]
    fn misaligned_program_fails() {
        let mut f = flash(1);
        assert_eq!(f.write(2, &[0; 4]), Err(FlashError::NotAligned));
        assert_eq!(f.write(0, &[0; 3]), Err(FlashError::NotAligned));
        assert_eq!(
            f.write(2, &[0; 4]).unwrap_err().kind(),
            NorFlashErrorKind::NotAligned
        );
        assert!(f.as_bytes().iter().all(|&b| b == 0xFF));
        assert_eq!(f.step_count(), 0);
    }

    #[test]
    fn out_of_bounds_fails() {
        let mut f = flash(1);
        assert_eq!(f.write(4096, &[0; 4]), Err(FlashError::OutOfBounds));
        assert_eq!(f.write(4092, &[0; 8]), Err(FlashError::OutOfBounds));
        assert_eq!(f.write(u32::MAX - 3, &[0; 8]), Err(FlashError::OutOfBounds));
        assert_eq!(f.read(4090, &mut [0; 8]), Err(FlashError::OutOfBounds));
        assert_eq!(f.erase(0, 8192), Err(FlashError::OutOfBounds));
        assert_eq!(f.erase(4096, 0), Err(FlashError::OutOfBounds));
        assert_eq!(
            f.erase(0, 8192).unwrap_err().kind(),
            NorFlashErrorKind::OutOfBounds
        );
    }

    #[test]
    fn misaligned_erase_fails() {
        let mut f = flash(2);
        f.write(0, &[0; 4]).unwrap();
        assert_eq!(f.erase(0, 100), Err(FlashError::NotAligned));
        assert_eq!(f.erase(100, 4096), Err(FlashError::NotAligned));
        assert_eq!(f.as_bytes()[0], 0);
        assert_eq!(f.total_erases(), 0);
    }

    #[test]
    fn erase_sets_sectors_to_ff_and_counts() {
        let mut f = flash(3);
        let data = pattern(3 * 4096);
        f.write(0, &data).unwrap();
        f.erase(4096, 3 * 4096).unwrap();
        assert_eq!(&f.as_bytes()[..4096], &data[..4096]);
        assert!(f.as_bytes()[4096..].iter().all(|&b| b == 0xFF));
        assert_eq!(f.erase_counts(), &[0, 1, 1]);
        assert_eq!(f.erase_count_at(5000), 1);
        assert_eq!(f.total_erases(), 2);
        // An erased word can be programmed again.
        f.write(4096, &[1, 2, 3, 4]).unwrap();
        // Empty erase is allowed and does nothing.
        f.erase(4096, 4096).unwrap();
        assert_eq!(f.total_erases(), 2);
    }

    #[test]
    fn steps_count_programmed_and_erased_bytes() {
        let mut f = flash(2);
        f.write(0, &[0; 16]).unwrap();
        f.erase(0, 8192).unwrap();
        // Each of the three operations (the write, two sector erases) after the first
        // adds the step that separates it from the one before.
        assert_eq!(f.step_count(), 16 + 1 + 4096 + 1 + 4096);
        f.reset_steps();
        assert_eq!(f.step_count(), 0);
    }

    #[test]
    fn cut_at_every_step_of_a_program() {
        let data = pattern(64);
        for cut in 0..data.len() as u64 {
            let mut f = flash(1);
            f.set_seed(cut);
            f.arm_power_cut(cut);
            assert_eq!(f.write(32, &data), Err(FlashError::PowerLoss), "cut {cut}");
            let mem = f.as_bytes();
            let k = cut as usize;
            assert_eq!(&mem[32..32 + k], &data[..k], "prefix written, cut {cut}");
            let torn = mem[32 + k];
            // Only bits that the new value clears can have been cleared.
            assert_eq!(torn & data[k], data[k], "torn byte keeps new-value 1s");
            assert!(
                mem[32 + k + 1..].iter().all(|&b| b == 0xFF),
                "rest untouched"
            );
            assert!(mem[..32].iter().all(|&b| b == 0xFF));
            assert_eq!(f.step_count(), cut);
            assert!(!f.is_powered());
        }
    }

    #[test]
    fn torn_program_bytes_vary_with_seed() {
        // Torn bytes are somewhere between old and new, not always one of them.
        let mut seen = std::collections::HashSet::new();
        for seed in 0..64 {
            let mut f = flash(1);
            f.set_seed(seed);
            f.arm_power_cut(0);
            let _ = f.write(0, &[0, 0, 0, 0]);
            seen.insert(f.as_bytes()[0]);
        }
        assert!(seen.len() > 8, "only {} torn values", seen.len());
    }

    #[test]
    fn cut_at_every_step_of_an_erase() {
        // A small sector keeps the test fast while still cutting at every byte.
        type Small = SimFlash<4, 64>;
        let data: Vec<u8> = pattern(128);
        for cut in 0..64u64 {
            let mut f = Small::new(128);
            f.write(0, &data).unwrap();
            f.set_seed(cut);
            f.reset_steps();
            f.arm_power_cut(cut);
            assert_eq!(f.erase(0, 64), Err(FlashError::PowerLoss));
            let mem = f.as_bytes();
            let k = cut as usize;
            assert!(
                mem[..k].iter().all(|&b| b == 0xFF),
                "prefix erased, cut {cut}"
            );
            // Erasing only sets bits.
            assert_eq!(mem[k] & data[k], data[k], "torn byte keeps old 1s");
            assert_eq!(
                &mem[k + 1..64],
                &data[k + 1..64],
                "rest of sector unchanged"
            );
            assert_eq!(&mem[64..], &data[64..], "other sector untouched");
            assert_eq!(f.step_count(), cut);
            assert_eq!(f.erase_counts(), &[1, 0]);
        }
    }

    #[test]
    fn cut_in_second_sector_of_a_multi_sector_erase() {
        type Small = SimFlash<4, 64>;
        let data = pattern(192);
        let mut f = Small::new(192);
        f.write(0, &data).unwrap();
        f.reset_steps();
        // The first sector, the step after it, 10 bytes of the second.
        f.arm_power_cut(64 + 1 + 10);
        assert_eq!(f.erase(0, 192), Err(FlashError::PowerLoss));
        let mem = f.as_bytes();
        assert!(mem[..74].iter().all(|&b| b == 0xFF));
        assert_eq!(&mem[75..128], &data[75..128]);
        assert_eq!(&mem[128..], &data[128..], "third sector never started");
        assert_eq!(f.erase_counts(), &[1, 1, 0]);
    }

    #[test]
    fn cut_exactly_at_end_completes_but_reports_power_loss() {
        let data = pattern(16);
        let mut f = flash(1);
        f.arm_power_cut(16);
        assert_eq!(f.write(0, &data), Err(FlashError::PowerLoss));
        assert_eq!(&f.as_bytes()[..16], &data[..]);
        assert!(f.as_bytes()[16..].iter().all(|&b| b == 0xFF));

        type Small = SimFlash<4, 64>;
        let mut f = Small::new(64);
        f.write(0, &pattern(64)).unwrap();
        f.arm_power_cut(64);
        assert_eq!(f.erase(0, 64), Err(FlashError::PowerLoss));
        assert!(f.as_bytes().iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn cut_spans_operations() {
        let mut f = flash(1);
        f.arm_power_cut(10);
        f.write(0, &[0; 8]).unwrap();
        // 8 bytes and the step after the write.
        assert_eq!(f.power_cut_armed(), Some(1));
        assert_eq!(f.write(8, &pattern(8)), Err(FlashError::PowerLoss));
        assert_eq!(&f.as_bytes()[8..9], &pattern(8)[..1]);
        assert_eq!(f.step_count(), 10);
    }

    #[test]
    fn after_a_cut_everything_fails_until_power_on() {
        let mut f = flash(2);
        f.arm_power_cut(0);
        assert_eq!(f.write(0, &[0; 4]), Err(FlashError::PowerLoss));
        let after_cut = f.snapshot();
        assert_eq!(f.write(4096, &[0; 4]), Err(FlashError::PowerLoss));
        assert_eq!(f.erase(4096, 8192), Err(FlashError::PowerLoss));
        assert_eq!(f.read(0, &mut [0; 4]), Err(FlashError::PowerLoss));
        // Even bad arguments report the power loss first.
        assert_eq!(f.write(1, &[0; 3]), Err(FlashError::PowerLoss));
        assert_eq!(f.snapshot(), after_cut);
        assert_eq!(f.erase_counts(), &[0, 0]);
        f.power_on();
        f.write(4096, &[0; 4]).unwrap();
        let mut buf = [0xAA; 4];
        f.read(4096, &mut buf).unwrap();
        assert_eq!(buf, [0; 4]);
        // The cut fired once; it does not fire again.
        assert_eq!(f.power_cut_armed(), None);
    }

    #[test]
    fn cut_power_between_operations_tears_nothing() {
        let mut f = flash(1);
        f.write(0, &[1, 2, 3, 4]).unwrap();
        let before = f.snapshot();
        f.cut_power();
        assert_eq!(f.write(4, &[0; 4]), Err(FlashError::PowerLoss));
        assert_eq!(f.snapshot(), before);
    }

    #[test]
    fn disarm_cancels_a_cut() {
        let mut f = flash(1);
        f.arm_power_cut(2);
        f.disarm_power_cut();
        f.write(0, &[0; 8]).unwrap();
        assert!(f.is_powered());
    }

    #[test]
    fn zero_length_operations_take_no_step_and_trigger_no_cut() {
        let mut f = flash(1);
        f.arm_power_cut(0);
        f.write(0, &[]).unwrap();
        f.erase(0, 0).unwrap();
        assert!(f.is_powered());
        assert_eq!(f.power_cut_armed(), Some(0));
    }

    #[test]
    fn busy_time_follows_the_timing_model() {
        let mut f = flash(2);
        assert_eq!(f.timing(), FlashTiming::W25Q128JV);
        f.erase(0, 8192).unwrap();
        assert_eq!(f.take_busy_ns(), 2 * 45_000_000);
        assert_eq!(f.take_busy_ns(), 0, "taking resets");
        f.write(0, &[0; 256]).unwrap();
        assert_eq!(f.take_busy_ns(), 700_000);
        // 8 bytes across a page boundary: two page programs of 4 bytes each.
        f.write(252 + 256, &[0; 8]).unwrap();
        assert_eq!(f.take_busy_ns(), 2 * (700_000 * 4_u64).div_ceil(256));
        f.read(0, &mut [0; 1000]).unwrap();
        assert_eq!(f.take_busy_ns(), 800 + 160 * 1000);
        // A failed call costs nothing.
        let _ = f.write(0, &[0; 4]);
        assert_eq!(f.busy_ns(), 0);
    }

    #[test]
    fn busy_time_of_a_cut_operation_is_the_part_done() {
        let mut f = flash(1);
        f.arm_power_cut(2048);
        let _ = f.erase(0, 4096);
        assert_eq!(f.take_busy_ns(), 45_000_000 / 2);
    }

    #[test]
    fn instant_timing_costs_nothing() {
        let mut f = flash(1).with_timing(FlashTiming::INSTANT);
        f.erase(0, 4096).unwrap();
        f.write(0, &[0; 64]).unwrap();
        f.read(0, &mut [0; 64]).unwrap();
        assert_eq!(f.take_busy_ns(), 0);
    }

    #[test]
    fn snapshot_round_trip() {
        let mut f = flash(2);
        f.write(100, &pattern(40)).unwrap();
        let image = f.snapshot();
        let g = Flash::from_image(image.clone()).unwrap();
        assert_eq!(g.as_bytes(), &image[..]);
        assert!(g.is_powered());
        assert_eq!(g.step_count(), 0);
        assert_eq!(
            Flash::from_image(vec![0xFF; 100]).unwrap_err(),
            FlashError::BadImageLength { len: 100 }
        );
    }

    #[test]
    fn same_seed_same_tears() {
        let run = |seed| {
            let mut f = flash(1);
            f.set_seed(seed);
            f.arm_power_cut(3);
            let _ = f.write(0, &[0; 8]);
            f.snapshot()
        };
        assert_eq!(run(7), run(7));
    }

    #[test]
    fn ecc_a_cut_program_tears_its_word_until_the_sector_is_erased() {
        for cut in 0..12u64 {
            let mut f = flash(2).with_ecc();
            f.set_seed(cut);
            f.arm_power_cut(cut);
            assert_eq!(f.write(8, &pattern(12)), Err(FlashError::PowerLoss));
            f.power_on();
            let word = 8 + (cut as u32 / 4) * 4;
            assert_eq!(f.torn_words(), [word], "cut {cut}");
            // The words before it were written whole and read back.
            let mut done = vec![0u8; (word - 8) as usize];
            f.read(8, &mut done).unwrap();
            assert_eq!(done, pattern(12)[..done.len()]);
            // Any read that touches the torn word fails, programming it fails.
            assert_eq!(
                f.read(word + 3, &mut [0; 1]),
                Err(FlashError::Ecc { offset: word + 3 })
            );
            assert_eq!(
                f.read(0, &mut [0; 64]),
                Err(FlashError::Ecc { offset: word })
            );
            assert!(matches!(
                f.write(word, &[0; 4]),
                Err(FlashError::NotErased { .. })
            ));
            // The other sector is not affected.
            f.read(4096, &mut [0; 64]).unwrap();
            f.erase(0, 4096).unwrap();
            assert!(f.torn_words().is_empty());
            f.read(0, &mut [0; 64]).unwrap();
        }
    }

    #[test]
    fn ecc_a_cut_erase_tears_the_word_at_the_cut_only() {
        type Small = SimFlash<4, 64>;
        for cut in [0u64, 1, 13, 40, 63] {
            let mut f = Small::new(128).with_ecc();
            f.write(0, &pattern(128)).unwrap();
            f.arm_power_cut(cut);
            assert_eq!(f.erase(0, 64), Err(FlashError::PowerLoss));
            f.power_on();
            let word = (cut as u32 / 4) * 4;
            assert_eq!(f.torn_words(), [word], "cut {cut}");
            if word > 0 {
                f.read(0, &mut vec![0; word as usize]).unwrap();
            }
            f.read(word + 4, &mut vec![0; (124 - word) as usize])
                .unwrap();
            assert!(f.read(word, &mut [0; 4]).is_err());
        }
        // Without ECC nothing is torn: the torn byte reads as whatever it holds.
        let mut f = Small::new(128);
        f.arm_power_cut(5);
        let _ = f.write(0, &pattern(16));
        f.power_on();
        assert!(f.torn_words().is_empty());
        f.read(0, &mut [0; 16]).unwrap();
    }

    #[test]
    fn a_worn_range_refuses_programs_and_erases_and_changes_nothing() {
        let mut f = flash(3);
        f.wear_out(4096, 4096);
        let before = f.snapshot();
        assert_eq!(
            f.write(4092, &[0; 8]),
            Err(FlashError::Worn { offset: 4096 })
        );
        assert_eq!(f.erase(0, 8192), Err(FlashError::Worn { offset: 4096 }));
        assert_eq!(f.snapshot(), before);
        assert_eq!(f.step_count(), 0);
        f.write(0, &[1; 4]).unwrap();
        f.erase(8192, 12288).unwrap();
        f.read(4096, &mut [0; 16]).unwrap();
    }

    #[test]
    fn for_each_cut_visits_every_point() {
        let mut seen = Vec::new();
        for_each_cut(3, |c| seen.push(c));
        assert_eq!(seen, [0, 1, 2, 3]);
    }

    #[test]
    fn sequence_cut_at_every_step_leaves_old_or_new_or_torn() {
        // Erase a sector then program it, cutting at every step of the sequence: the
        // invariant a device relies on is that bytes before the cut are final.
        type Small = SimFlash<4, 64>;
        let old = pattern(64);
        let new: Vec<u8> = old.iter().map(|b| b ^ 0x55).collect();
        let run = |f: &mut Small| -> Result<(), FlashError> {
            f.erase(0, 64)?;
            f.write(0, &new)
        };
        let mut probe = Small::new(64);
        probe.write(0, &old).unwrap();
        probe.reset_steps();
        run(&mut probe).unwrap();
        let total = probe.step_count();
        // 64 erased bytes, the step between the erase and the program, 64 programmed.
        assert_eq!(total, 129);
        let mut first_byte_torn = 0;
        for_each_cut(total, |cut| {
            let mut f = Small::new(64);
            f.write(0, &old).unwrap();
            f.reset_steps();
            f.set_seed(cut);
            f.arm_power_cut(cut);
            assert_eq!(run(&mut f), Err(FlashError::PowerLoss));
            f.power_on();
            let mem = f.as_bytes();
            if cut == total {
                assert_eq!(mem, &new[..]);
            } else if cut == 64 {
                // Right after the erase completed.
                assert!(mem.iter().all(|&b| b == 0xFF), "cut {cut}");
            } else if cut > 64 {
                let k = (cut - 65) as usize;
                assert_eq!(&mem[..k], &new[..k]);
                // The byte at the cut lies between erased and new (only cleared bits).
                assert_eq!(mem[k] & new[k], new[k], "cut {cut}: only bits new clears");
                assert!(mem[k + 1..].iter().all(|&b| b == 0xFF));
                if k == 0 && mem[0] != 0xFF && mem[0] != new[0] {
                    first_byte_torn += 1;
                }
            } else {
                let k = cut as usize;
                assert!(mem[..k].iter().all(|&b| b == 0xFF));
                assert_eq!(&mem[k + 1..], &old[k + 1..]);
            }
        });
        // The program's first byte is a cut point of its own, and the cut tears it
        // (with this seed, strictly between erased and the new value).
        assert_eq!(
            first_byte_torn, 1,
            "the first programmed byte was never torn"
        );
    }

    #[test]
    fn write_through_follows_every_word_and_erase_piece_in_order() {
        use std::sync::{Arc, Mutex};
        type Calls = Vec<(u32, Vec<u8>)>;
        let calls: Arc<Mutex<Calls>> = Arc::default();
        let mut f = flash(2);
        let copy = Arc::new(Mutex::new(f.snapshot()));
        let (c, k) = (calls.clone(), copy.clone());
        let sink: WriteThrough = Arc::new(Mutex::new(move |at: u32, bytes: &[u8]| {
            c.lock().unwrap().push((at, bytes.to_vec()));
            k.lock().unwrap()[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        }));
        f.set_write_through(Some(sink));
        let data = pattern(64);
        f.write(4096, &data).unwrap();
        // A program goes word by word, in address order: a kill between two leaves
        // the words before it written and the rest not, as a cut does.
        let got = calls.lock().unwrap().clone();
        assert_eq!(got.len(), 16);
        for (i, (at, bytes)) in got.iter().enumerate() {
            assert_eq!(*at, 4096 + 4 * i as u32);
            assert_eq!(bytes[..], data[4 * i..4 * i + 4]);
        }
        calls.lock().unwrap().clear();
        f.erase(4096, 8192).unwrap();
        let got = calls.lock().unwrap().clone();
        assert_eq!(got.len(), 4096 / ERASE_PIECE);
        assert!(got.iter().all(|(_, b)| b.iter().all(|&x| x == 0xFF)));
        // A cut mid-program: the copy holds the torn byte too.
        f.write(0, &data).unwrap();
        f.arm_power_cut(10);
        assert_eq!(f.write(64, &data), Err(FlashError::PowerLoss));
        assert_eq!(&copy.lock().unwrap()[..], f.as_bytes());
    }

    #[test]
    fn aligned_whole_blocks_are_erased_as_blocks_in_their_time() {
        let mut f = flash(64);
        f.write(0, &pattern(64 * 4096)).unwrap();
        f.take_busy_ns();
        // One 64 KiB block: 150 ms, one erase, every sector of it counted once.
        f.erase(0, 0x1_0000).unwrap();
        assert_eq!(f.take_busy_ns(), 150_000_000);
        assert_eq!((f.total_erases(), f.block_erases_done()), (1, 1));
        assert!(f.erase_counts()[..16].iter().all(|&c| c == 1));
        assert!(f.as_bytes()[..0x1_0000].iter().all(|&b| b == 0xFF));
        assert_eq!(f.as_bytes()[0x1_0000], pattern(0x1_0001)[0x1_0000]);
        // Off a 64 KiB boundary: sectors up to a 32 KiB boundary, a 32 KiB block, then
        // a sector: 7 x 45 + 120 + 45 ms.
        f.erase(0x1_1000, 0x2_1000).unwrap();
        assert_eq!(f.take_busy_ns(), 7 * 45_000_000 + 120_000_000 + 45_000_000);
        assert_eq!((f.total_erases(), f.block_erases_done()), (10, 2));
        assert_eq!(f.erase_count_at(0x1_0000), 0);
        assert_eq!(f.erase_count_at(0x2_0000), 1);
        // A range that covers no whole block: sectors, as before.
        f.erase(0x3_0000, 0x3_7000).unwrap();
        assert_eq!(f.take_busy_ns(), 7 * 45_000_000);
        assert_eq!(f.block_erases_done(), 2);
        // A part without block erases erases sectors only.
        let mut plain = flash(16).with_timing(FlashTiming::STM32F4);
        plain.erase(0, 0x1_0000).unwrap();
        assert_eq!((plain.total_erases(), plain.block_erases_done()), (16, 0));
        assert!(FlashTiming::INSTANT.block_erases.is_empty());
    }

    #[test]
    fn a_cut_inside_a_block_erase_tears_it_as_one_erase() {
        type Small = SimFlash<4, 64>;
        const BLOCKS: &[(u32, u64)] = &[(256, 1_000)];
        let timing = FlashTiming {
            block_erases: BLOCKS,
            ..FlashTiming::W25Q128JV
        };
        let data = pattern(512);
        // A whole block erase is one operation of 256 steps (not 4 x 64 + 3).
        let mut f = Small::new(512).with_timing(timing);
        f.write(0, &data).unwrap();
        f.reset_steps();
        f.erase(0, 256).unwrap();
        assert_eq!(f.step_count(), 256);
        for cut in [0usize, 1, 63, 64, 65, 200, 255] {
            let mut f = Small::new(512).with_timing(timing);
            f.write(0, &data).unwrap();
            f.reset_steps();
            f.take_busy_ns();
            f.arm_power_cut(cut as u64);
            assert_eq!(f.erase(0, 256), Err(FlashError::PowerLoss), "cut {cut}");
            let mem = f.as_bytes();
            assert!(
                mem[..cut].iter().all(|&b| b == 0xFF),
                "prefix erased, cut {cut}"
            );
            // The byte at the cut is torn toward 0xFF: its set bits stay set.
            assert_eq!(
                mem[cut] & data[cut],
                data[cut],
                "torn toward 0xFF, cut {cut}"
            );
            assert_eq!(
                &mem[cut + 1..256],
                &data[cut + 1..256],
                "rest intact, cut {cut}"
            );
            assert_eq!(&mem[256..], &data[256..], "the next block untouched");
            // Every sector of the block wore, as a block erase wears them all.
            assert_eq!(f.erase_counts(), &[1, 1, 1, 1, 0, 0, 0, 0]);
            assert_eq!(f.block_erases_done(), 1);
            // Its time: the share done.
            assert_eq!(f.busy_ns(), (1_000 * cut as u64).div_ceil(256));
        }
    }

    #[test]
    fn the_fastest_erase_plan_of_a_range() {
        let t = FlashTiming::W25Q128JV;
        // 256 KiB from a 64 KiB boundary: four 64 KiB blocks.
        assert_eq!(
            t.erase_plan_ns(4096, 0, 256 * 1024, t.block_erases),
            (600_000_000, 4, 150_000_000)
        );
        // 238 KiB (the micro:bit runtime): three blocks of 64, one of 32, 4 sectors (the
        // last one partly used).
        assert_eq!(
            t.erase_plan_ns(4096, 0, 243_852, t.block_erases),
            (
                3 * 150_000_000 + 120_000_000 + 4 * 45_000_000,
                8,
                150_000_000
            )
        );
        // 64 KiB blocks only (esptool's stub), and sectors only.
        let only64 = &t.block_erases[1..];
        assert_eq!(
            t.erase_plan_ns(4096, 0, 243_852, only64),
            (3 * 150_000_000 + 12 * 45_000_000, 15, 150_000_000)
        );
        assert_eq!(
            t.erase_plan_ns(4096, 4096, 65_536, &[]),
            (16 * 45_000_000, 16, 45_000_000)
        );
    }
}
