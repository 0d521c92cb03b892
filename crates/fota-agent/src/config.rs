//! The flash layout and limits of one device: which slots exist, where the record lives.

use core::num::NonZeroU32;
use fota_protocol::Layout as _;

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{MAX_BAUD_RATES, MAX_NAME, MAX_SLOTS, SlotDesc, SlotKind};

use crate::record;

/// The largest flash write unit (`NorFlash::WRITE_SIZE`) the agent supports: its
/// comparison buffers are this long.
pub const MAX_WRITE_UNIT: usize = 256;

/// The largest flash read unit (`ReadNorFlash::READ_SIZE`) the agent supports.
pub const MAX_READ_UNIT: usize = 64;

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
    /// lists them.
    pub baud_rates: &'static [u32],
    /// The VM slot the part always starts (no remap), if any: the boot stage, which passes
    /// control to the VM the record names. It is never offered by `find_vm_slot`, erased
    /// or written. `None` where the boot picks any VM slot (the seed's layouts).
    pub boot_stage: Option<u8>,
    /// The worst-case time to erase one sector, in milliseconds, from the part's data
    /// sheet; hosts size their timeouts from it. 0: not declared (left out of `Info`).
    pub sector_erase_ms: u32,
}

/// Why a configuration cannot be used with a flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The record area does not start or end on a sector boundary.
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
}

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
    pub(crate) sector: NonZeroU32,
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
            baud_rates: &BAUD_RATES,
            boot_stage: None,
            sector_erase_ms: 0,
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
        if self.flash_base % sector != 0 {
            return Err(E::FlashBaseMisaligned);
        }
        let flash_end = u64::from(self.flash_base) + u64::from(g.capacity);
        let inside = |addr: u32, size: u32| {
            addr >= self.flash_base && u64::from(addr) + u64::from(size) <= flash_end
        };
        let aligned = |v: u32| v % sector == 0;

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
            if !aligned(s.addr) || !aligned(s.size) {
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
        if !aligned(self.record_addr) || !aligned(self.record_size) {
            return Err(E::RecordMisaligned);
        }
        if self.record_size / sector < 2 {
            return Err(E::RecordTooSmall);
        }
        if !inside(self.record_addr, self.record_size) {
            return Err(E::RecordOutsideFlash);
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
            write,
            stride,
        })
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
