//! The flash layout and limits of one device: which slots exist, where the record lives.

use core::num::NonZeroU32;
use fota_protocol::Layout as _;

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{
    BlockErase, DEFAULT_BAUD, MAX_BAUD_RATES, MAX_BLOCK_ERASES, MAX_NAME, MAX_SECTOR_RUNS,
    MAX_SLOTS, SectorRun, SlotDesc, SlotKind,
};

pub use crate::flash::{MAX_READ_UNIT, MAX_WRITE_UNIT};
use crate::record;

/// The usual UART rates, the default of [`AgentConfig::baud_rates`].
pub const BAUD_RATES: [u32; 7] = [
    115_200, 230_400, 460_800, 921_600, 1_000_000, 1_500_000, 2_000_000,
];

/// The layout and limits of a device.
///
/// Build one with [`AgentConfig::bytecode_only`] or [`AgentConfig::vm_and_bytecode`] and
/// adjust the public fields; [`Agent::boot`](crate::Agent::boot) checks it with
/// [`AgentConfig::validate`] before touching the flash.
///
/// All addresses are absolute (as the seed's `get_record()` reports them); the flash
/// driver sees offsets from [`AgentConfig::flash_base`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Agent name reported by `Hello` (at most [`MAX_NAME`] bytes).
    pub name: &'static str,
    /// Agent version, major.minor.patch.
    pub version: [u8; 3],
    /// False for firmware without FOTA support: every request but `Hello` is then refused
    /// with `Unsupported` and the flash is never touched.
    pub fota_supported: bool,
    /// Address of flash offset 0.
    pub flash_base: u32,
    /// The VM and bytecode slots.
    pub slots: heapless::Vec<SlotDesc, MAX_SLOTS>,
    /// First address of the record area (sector aligned).
    pub record_addr: u32,
    /// Size of the record area: a whole number of sectors, at least two.
    pub record_size: u32,
    /// Requests a host may send before waiting for replies. The platform's receive queue
    /// must hold this many full frames ([`crate::RX_FRAME`] bytes each) while the agent is
    /// busy erasing.
    pub max_in_flight: u8,
    /// The fastest baud rate the platform's UART can switch to: rates of
    /// [`AgentConfig::baud_rates`] above it are not offered.
    pub max_baud: u32,
    /// The rates the platform's UART can make (within its tolerance), ascending, at most
    /// [`MAX_BAUD_RATES`]. `SetBaud` accepts these (up to `max_baud`) and no other; `Info`
    /// lists them. [`UartClock::rates`] computes them from the UART's clock and divider.
    pub baud_rates: heapless::Vec<u32, MAX_BAUD_RATES>,
    /// The rate the UART runs at after reset, and goes back to after a `Goodbye` or
    /// [`crate::BAUD_IDLE_MS`] without a request at another rate.
    pub base_baud: u32,
    /// Runs of erase sectors that are not `NorFlash::ERASE_SIZE` bytes, ascending (mixed
    /// sizes: an STM32F4's 16, 64, 128 KiB; empty: all alike). The driver erases whole
    /// sectors of either kind, the agent one per unit; no block erases with them.
    pub sectors: heapless::Vec<SectorRun, MAX_SECTOR_RUNS>,
    /// The VM slot the part always starts (no remap), if any: the boot stage, which passes
    /// control to the VM the record names. It is never offered by `find_vm_slot`, erased
    /// or written. `None` where the boot picks any VM slot (the seed's layouts).
    pub boot_stage: Option<u8>,
    /// The worst-case time to erase one sector (the largest, on a flash with mixed
    /// sector sizes), in milliseconds, from the part's data sheet; hosts size their
    /// timeouts from it. 0: not declared (left out of `Info`).
    pub sector_erase_ms: u32,
    /// Block erases its driver does in one command, ascending (`Info` tag 10, PORTING.md).
    pub block_erases: heapless::Vec<BlockErase, MAX_BLOCK_ERASES>,
    /// How long a new firmware on trial has to call `accept`, in milliseconds from its
    /// start, before the device reverts it (its watchdog's or trial timer's deadline);
    /// hosts show it and wait for it. 0: not declared (left out of `Info`).
    pub confirm_ms: u32,
    /// Bytes of request frames (whole frames on the wire, delimiters included) the
    /// platform's receive queue holds behind the request the agent is busy with (that one
    /// is in the link's reader, not in the queue): `Info` tag 8, the host's window in
    /// bytes, in which an erase (18 bytes) does not take a whole frame's room, and which
    /// leaves the oldest request in flight out. So the next request must be out of the
    /// queue by the time the host sees a reply (docs/PROTOCOL.md 6.2): the platform calls
    /// [`crate::AgentLink::step`] again right after a step that answered a request, or
    /// its receive path pushes back when the queue is full (USB, a UART with RTS/CTS),
    /// or it declares its queue less [`crate::RX_FRAME`]. At least [`crate::RX_FRAME`]
    /// where declared. 0: not declared (the host keeps to `max_in_flight` requests; the
    /// queue must then hold that many full frames).
    pub rx_window: u32,
    /// What the device requires of the images it runs (feature `images`; default
    /// [`crate::ImagePolicy::OPEN`]).
    #[cfg(feature = "images")]
    pub images: crate::policy::ImagePolicy,
}

/// Why a configuration cannot be used with a flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// The name is longer than [`MAX_NAME`] bytes.
    NameTooLong,
    /// The flash geometry is outside what the agent supports: erase size zero or above
    /// 4 GiB, write size not a power of two up to [`MAX_WRITE_UNIT`] (or larger than a
    /// sector), read size not a power of two up to [`MAX_READ_UNIT`], or a sector too
    /// small for one record entry.
    UnsupportedFlash,
    /// The layout has no slot of this kind.
    NoSlot(SlotKind),
    /// The indexes of this kind are not exactly 0, 1, 2, ... (each once).
    BadSlotIndexes(SlotKind),
    /// A slot has size zero. Field: its address.
    EmptySlot(u32),
    /// A slot does not start or end on a sector boundary. Field: its address.
    SlotMisaligned(u32),
    /// A slot lies (partly) outside the flash. Field: its address.
    SlotOutsideFlash(u32),
    /// Two slots overlap. Field: the address of the later one.
    SlotsOverlap(u32),
    /// The record area does not start or end on a sector boundary, or its sectors are not
    /// all the same size.
    RecordMisaligned,
    /// The record area is smaller than two sectors.
    RecordTooSmall,
    /// The record area lies (partly) outside the flash.
    RecordOutsideFlash,
    /// The record area overlaps a slot. Field: the slot's address.
    RecordOverlapsSlot(u32),
    /// `max_in_flight` is zero.
    NoInFlight,
    /// `flash_base` is not a multiple of the sector size (so absolute addresses and flash
    /// offsets would disagree on alignment).
    FlashBaseMisaligned,
    /// The boot stage is not a VM slot of the layout. Field: the index.
    BadBootStage(u8),
    /// The baud rates are not ascending, include zero, or are more than
    /// [`MAX_BAUD_RATES`].
    BadBaudRates,
    /// The sector runs are not ascending, overlap, leave the flash, or are not whole
    /// numbers of `ERASE_SIZE` units aligned to it.
    BadSectors,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::NameTooLong => write!(f, "the name is longer than {MAX_NAME} bytes"),
            ConfigError::UnsupportedFlash => f.write_str("the flash geometry is not supported"),
            ConfigError::NoSlot(k) => write!(f, "the layout has no {k} slot"),
            ConfigError::BadSlotIndexes(k) => {
                write!(f, "the {k} slots are not numbered 0, 1, 2... once each")
            }
            ConfigError::EmptySlot(a) => write!(f, "the slot at {a:#010x} is empty"),
            ConfigError::SlotMisaligned(a) => {
                write!(f, "the slot at {a:#010x} is not aligned to sectors")
            }
            ConfigError::SlotOutsideFlash(a) => {
                write!(f, "the slot at {a:#010x} lies outside the flash")
            }
            ConfigError::SlotsOverlap(a) => {
                write!(f, "the slot at {a:#010x} overlaps the one before")
            }
            ConfigError::RecordMisaligned => {
                f.write_str("the record area is not aligned to sectors of one size")
            }
            ConfigError::RecordTooSmall => f.write_str("the record area is under two sectors"),
            ConfigError::RecordOutsideFlash => {
                f.write_str("the record area lies outside the flash")
            }
            ConfigError::RecordOverlapsSlot(a) => {
                write!(f, "the record area overlaps the slot at {a:#010x}")
            }
            ConfigError::NoInFlight => f.write_str("max_in_flight is zero"),
            ConfigError::FlashBaseMisaligned => {
                f.write_str("flash_base is not a multiple of the sector size")
            }
            ConfigError::BadBootStage(i) => write!(f, "the boot stage {i} is not a VM slot"),
            ConfigError::BadBaudRates => {
                f.write_str("the baud rates are not ascending, include zero, or are too many")
            }
            ConfigError::BadSectors => f.write_str("the sector runs do not describe the flash"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// The geometry of a flash, as the configuration is checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashGeometry {
    /// Erase sector size (`NorFlash::ERASE_SIZE`).
    pub sector: u32,
    /// Write unit (`NorFlash::WRITE_SIZE`).
    pub write_size: u32,
    /// Read unit (`ReadNorFlash::READ_SIZE`).
    pub read_size: u32,
    /// Bytes of flash (`ReadNorFlash::capacity()`).
    pub capacity: u32,
}

impl FlashGeometry {
    /// The geometry of `flash`; fails if a size does not fit a `u32`.
    pub fn of<F: NorFlash>(flash: &F) -> Result<FlashGeometry, ConfigError> {
        let conv = |v: usize| u32::try_from(v).map_err(|_| ConfigError::UnsupportedFlash);
        Ok(FlashGeometry {
            sector: conv(F::ERASE_SIZE)?,
            write_size: conv(F::WRITE_SIZE)?,
            read_size: conv(F::READ_SIZE)?,
            capacity: conv(flash.capacity())?,
        })
    }
}

/// The checked geometry the agent works with: divisors that cannot be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// The driver's erase unit (`ERASE_SIZE`); sectors outside the configured runs.
    pub(crate) sector: NonZeroU32,
    /// The sectors of the record area.
    pub(crate) record_sector: NonZeroU32,
    pub(crate) write: NonZeroU32,
    pub(crate) stride: NonZeroU32,
}

fn slot(kind: SlotKind, index: u8, addr: u32, size: u32) -> SlotDesc {
    SlotDesc {
        kind,
        index,
        addr,
        size,
    }
}

fn slot_list(list: &[SlotDesc]) -> heapless::Vec<SlotDesc, MAX_SLOTS> {
    let mut v = heapless::Vec::new();
    for s in list {
        // The constructors pass at most four slots; MAX_SLOTS is eight.
        let _ = v.push(*s);
    }
    v
}

impl AgentConfig {
    /// The seed's layout for bytecode updates only: `VM | BC0 | BC1 | record`, packed from
    /// `flash_base`, with a two-sector record area.
    ///
    /// Sizes must be multiples of `sector`; [`AgentConfig::validate`] says if not.
    pub fn bytecode_only(flash_base: u32, vm_size: u32, bc_slot_size: u32, sector: u32) -> Self {
        let bc0 = flash_base.saturating_add(vm_size);
        let bc1 = bc0.saturating_add(bc_slot_size);
        let rec = bc1.saturating_add(bc_slot_size);
        Self::with_slots(
            flash_base,
            &[
                slot(SlotKind::Vm, 0, flash_base, vm_size),
                slot(SlotKind::Bytecode, 0, bc0, bc_slot_size),
                slot(SlotKind::Bytecode, 1, bc1, bc_slot_size),
            ],
            rec,
            sector.saturating_mul(2),
        )
    }

    /// The seed's layout for VM and bytecode updates: `VM0 | BC0 | VM1 | BC1 | record`,
    /// packed from `flash_base`, with a two-sector record area.
    pub fn vm_and_bytecode(
        flash_base: u32,
        vm_slot_size: u32,
        bc_slot_size: u32,
        sector: u32,
    ) -> Self {
        let bc0 = flash_base.saturating_add(vm_slot_size);
        let vm1 = bc0.saturating_add(bc_slot_size);
        let bc1 = vm1.saturating_add(vm_slot_size);
        let rec = bc1.saturating_add(bc_slot_size);
        Self::with_slots(
            flash_base,
            &[
                slot(SlotKind::Vm, 0, flash_base, vm_slot_size),
                slot(SlotKind::Bytecode, 0, bc0, bc_slot_size),
                slot(SlotKind::Vm, 1, vm1, vm_slot_size),
                slot(SlotKind::Bytecode, 1, bc1, bc_slot_size),
            ],
            rec,
            sector.saturating_mul(2),
        )
    }

    /// Any layout: the slots (at most [`MAX_SLOTS`]; more are dropped and the
    /// configuration then fails validation for a missing index) and the record area.
    pub fn with_slots(
        flash_base: u32,
        slots: &[SlotDesc],
        record_addr: u32,
        record_size: u32,
    ) -> Self {
        AgentConfig {
            name: "fota-agent",
            version: [0, 1, 0],
            fota_supported: true,
            flash_base,
            slots: slot_list(slots),
            record_addr,
            record_size,
            max_in_flight: 5,
            max_baud: 921_600,
            baud_rates: heapless::Vec::from_array(BAUD_RATES),
            base_baud: DEFAULT_BAUD,
            sectors: heapless::Vec::new(),
            boot_stage: None,
            sector_erase_ms: 0,
            block_erases: heapless::Vec::new(),
            confirm_ms: 0,
            rx_window: 0,
            #[cfg(feature = "images")]
            images: crate::policy::ImagePolicy::OPEN,
        }
    }

    /// The rates `SetBaud` accepts: [`AgentConfig::baud_rates`] up to `max_baud`.
    pub fn offered_baud_rates(&self) -> impl Iterator<Item = u32> + '_ {
        let max = self.max_baud;
        self.baud_rates.iter().copied().filter(move |&b| b <= max)
    }

    /// Same configuration with another name.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Same configuration for firmware without FOTA support.
    pub fn unsupported(mut self) -> Self {
        self.fota_supported = false;
        self
    }

    /// The erase sector holding `addr`, `(first address, size)`, on a flash whose erase
    /// unit is `erase_size` (its `NorFlash::ERASE_SIZE`). (Not inlined: several callers.)
    #[inline(never)]
    pub fn sector_at(&self, erase_size: u32, addr: u32) -> (u32, u32) {
        fota_protocol::sector_at(&self.sectors, erase_size, addr)
    }

    /// Whether `[addr, end)` touches the record area.
    pub(crate) fn touches_record(&self, addr: u32, end: u64) -> bool {
        let rec = u64::from(self.record_addr);
        let rec_end = rec + u64::from(self.record_size);
        u64::from(addr) < rec_end && end > rec
    }

    /// Check the configuration against `flash`.
    pub fn validate<F: NorFlash>(&self, flash: &F) -> Result<(), ConfigError> {
        self.validate_geometry(&FlashGeometry::of(flash)?)
            .map(|_| ())
    }

    /// Check the configuration against a flash geometry.
    pub fn validate_geometry(&self, g: &FlashGeometry) -> Result<(), ConfigError> {
        self.checked_geometry(g).map(|_| ())
    }

    pub(crate) fn checked_geometry(&self, g: &FlashGeometry) -> Result<Geometry, ConfigError> {
        use ConfigError as E;
        if self.name.len() > MAX_NAME {
            return Err(E::NameTooLong);
        }
        if self.max_in_flight == 0 {
            return Err(E::NoInFlight);
        }
        if self.baud_rates.len() > MAX_BAUD_RATES
            || self.baud_rates.first() == Some(&0)
            || self.baud_rates.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(E::BadBaudRates);
        }
        let unit_ok = |v: u32, max: usize| v.is_power_of_two() && v as usize <= max;
        let sector = NonZeroU32::new(g.sector).ok_or(E::UnsupportedFlash)?;
        let write = NonZeroU32::new(g.write_size).ok_or(E::UnsupportedFlash)?;
        if !unit_ok(g.write_size, MAX_WRITE_UNIT)
            || !unit_ok(g.read_size, MAX_READ_UNIT)
            || g.sector % write != 0
        {
            return Err(E::UnsupportedFlash);
        }
        let stride = record::stride(write);
        if stride.get() > g.sector {
            return Err(E::UnsupportedFlash);
        }
        if self.base_baud == 0 {
            return Err(E::BadBaudRates);
        }
        if self.flash_base % sector != 0 {
            return Err(E::FlashBaseMisaligned);
        }
        let flash_end = u64::from(self.flash_base) + u64::from(g.capacity);
        let inside = |addr: u32, size: u32| {
            addr >= self.flash_base && u64::from(addr) + u64::from(size) <= flash_end
        };
        if !fota_protocol::sector_runs_valid(&self.sectors, sector.get())
            || self
                .sectors
                .iter()
                .any(|r| r.addr < self.flash_base || r.end() > flash_end)
            || !crate::flash::blocks_valid(&self.block_erases, sector.get(), &self.sectors)
        {
            return Err(E::BadSectors);
        }
        // A sector boundary: where a sector starts, or the end of the flash.
        let boundary = |v: u64| {
            v == flash_end || u32::try_from(v).is_ok_and(|v| self.sector_at(sector.get(), v).0 == v)
        };
        let aligned = |addr: u32, size: u32| {
            boundary(u64::from(addr)) && boundary(u64::from(addr) + u64::from(size))
        };

        for kind in [SlotKind::Vm, SlotKind::Bytecode] {
            let n = self.count(kind);
            if n == 0 {
                return Err(E::NoSlot(kind));
            }
            for i in 0..n {
                // Exactly one slot per index 0..n: with n slots of the kind, n distinct
                // indexes below n.
                let hits = self
                    .slots
                    .iter()
                    .filter(|s| s.kind == kind && usize::from(s.index) == i)
                    .count();
                if hits != 1 {
                    return Err(E::BadSlotIndexes(kind));
                }
            }
        }
        if let Some(vm) = self.boot_stage
            && self.slot(SlotKind::Vm, u32::from(vm)).is_none()
        {
            return Err(E::BadBootStage(vm));
        }
        for s in &self.slots {
            if s.size == 0 {
                return Err(E::EmptySlot(s.addr));
            }
            if !aligned(s.addr, s.size) {
                return Err(E::SlotMisaligned(s.addr));
            }
            if !inside(s.addr, s.size) {
                return Err(E::SlotOutsideFlash(s.addr));
            }
        }
        for (i, a) in self.slots.iter().enumerate() {
            for b in self.slots.iter().skip(i + 1) {
                if overlap(a.addr, a.size, b.addr, b.size) {
                    return Err(E::SlotsOverlap(a.addr.max(b.addr)));
                }
            }
        }
        if !inside(self.record_addr, self.record_size) {
            return Err(E::RecordOutsideFlash);
        }
        if !aligned(self.record_addr, self.record_size) {
            return Err(E::RecordMisaligned);
        }
        // The log is a ring of equal sectors.
        let (_, rec_sector) = self.sector_at(sector.get(), self.record_addr);
        let record_sector = NonZeroU32::new(rec_sector).ok_or(E::RecordMisaligned)?;
        if self.record_size % record_sector != 0 {
            return Err(E::RecordMisaligned);
        }
        let record_sectors = self.record_size / record_sector;
        for k in 0..record_sectors {
            let at = self.record_addr + k * rec_sector;
            if self.sector_at(sector.get(), at) != (at, rec_sector) {
                return Err(E::RecordMisaligned);
            }
        }
        if record_sectors < 2 {
            return Err(E::RecordTooSmall);
        }
        if let Some(s) = self
            .slots
            .iter()
            .find(|s| overlap(s.addr, s.size, self.record_addr, self.record_size))
        {
            return Err(E::RecordOverlapsSlot(s.addr));
        }
        Ok(Geometry {
            sector,
            record_sector,
            write,
            stride,
        })
    }
}

/// How a UART makes its rate: `clock_hz / (oversampling x divisor)`, where the divisor
/// is a whole number of `1 / 2^fraction_bits` steps, at least `min_divisor` steps. The
/// agent offers only the rates the UART makes within a tolerance ([`UartClock::rates`]):
/// both ends of a line may be off by about 1.5 % each before 8N1 framing fails.
///
/// | UART | `oversampling` | `fraction_bits` | `min_divisor` |
/// |------|----------------|-----------------|---------------|
/// | ARM CMSDK APB UART (`BAUDDIV`, at least 16) | 1 | 0 | 16 |
/// | ARM PL011 (RP2040: `IBRD` + 6-bit `FBRD`) | 16 | 6 | 64 |
/// | STM32 USART, 16x oversampling (`BRR`, 4-bit fraction) | 16 | 4 | 16 |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartClock {
    /// The UART's input clock.
    pub clock_hz: u32,
    /// Samples per bit the divided clock is taken over.
    pub oversampling: u32,
    /// Fractional bits of the divisor.
    pub fraction_bits: u32,
    /// The smallest divisor the UART takes, in `1 / 2^fraction_bits` steps.
    pub min_divisor: u32,
}

impl UartClock {
    /// The tolerance [`UartClock::rates`] offers within: 1.5 %, in parts per million.
    pub const TOLERANCE_PPM: u32 = 15_000;

    /// The rate the UART makes when asked for `baud` (the nearest divisor), or `None` if
    /// no divisor it takes comes near. 32-bit arithmetic only (a 64-bit division would
    /// pull a kilobyte of run-time support into the firmware); `fraction_bits` up to 6.
    pub const fn actual(&self, baud: u32) -> Option<u32> {
        let f = if self.fraction_bits < 6 {
            self.fraction_bits
        } else {
            6
        };
        let os = if self.oversampling == 0 {
            1
        } else {
            self.oversampling
        };
        let Some(per) = os.checked_mul(baud) else {
            return None;
        };
        if per == 0 {
            return None;
        }
        // D = round(clock * 2^f / per), without forming clock * 2^f.
        let (q, r) = (self.clock_hz / per, self.clock_hz % per);
        let Some(div) = (q << f).checked_add(((r << f) + per / 2) / per) else {
            return None;
        };
        if div == 0 || div < self.min_divisor {
            return None;
        }
        // actual = clock * 2^f / (oversampling * D), the same way.
        let Some(den) = os.checked_mul(div) else {
            return None;
        };
        let (q, r) = (self.clock_hz / den, self.clock_hz % den);
        (q << f).checked_add((r << f) / den)
    }

    /// Whether the UART makes `baud` within `tolerance_ppm` parts per million.
    pub const fn makes(&self, baud: u32, tolerance_ppm: u32) -> bool {
        match self.actual(baud) {
            Some(a) => {
                a.abs_diff(baud).saturating_mul(1000) <= (baud / 1000).saturating_mul(tolerance_ppm)
            }
            None => false,
        }
    }

    /// The rates of `candidates` (ascending) the UART makes within
    /// [`UartClock::TOLERANCE_PPM`], and how many: a `const fn`, so that a board
    /// computes its list when it is built, not in the firmware
    /// (`AgentConfig::baud_rates = Vec::from_slice(&list[..n])`).
    pub const fn rate_list(&self, candidates: &[u32]) -> ([u32; MAX_BAUD_RATES], usize) {
        let mut out = [0u32; MAX_BAUD_RATES];
        let (mut i, mut n) = (0, 0);
        while i < candidates.len() && n < MAX_BAUD_RATES {
            if self.makes(candidates[i], Self::TOLERANCE_PPM) {
                out[n] = candidates[i];
                n += 1;
            }
            i += 1;
        }
        (out, n)
    }

    /// [`UartClock::rate_list`] as [`AgentConfig::baud_rates`] takes it.
    pub fn rates(&self, candidates: &[u32]) -> heapless::Vec<u32, MAX_BAUD_RATES> {
        let (list, n) = self.rate_list(candidates);
        heapless::Vec::from_slice(list.get(..n).unwrap_or(&[])).unwrap_or_default()
    }
}

fn overlap(a: u32, a_size: u32, b: u32, b_size: u32) -> bool {
    let (a, b) = (u64::from(a), u64::from(b));
    a < b + u64::from(b_size) && b < a + u64::from(a_size)
}

impl fota_protocol::Layout for AgentConfig {
    fn slots(&self) -> &[SlotDesc] {
        &self.slots
    }
}
