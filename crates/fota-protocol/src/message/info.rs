//! The agent's description of itself (`Info`), its slots, sectors, codecs and image rules.

/// Most slots a layout may describe in [`Info`].
pub const MAX_SLOTS: usize = 8;
/// Longest agent name, in bytes of UTF-8.
pub const MAX_NAME: usize = 32;
/// Most baud rates an agent lists in [`Info::baud_rates`].
pub const MAX_BAUD_RATES: usize = 8;
/// Most runs of sectors of another size an agent lists in [`Info::sectors`] (an
/// STM32F4's flash needs three: 16, 64 and 128 KiB sectors).
pub const MAX_SECTOR_RUNS: usize = 4;
/// Most codecs an agent lists in [`Info::codecs`].
pub const MAX_CODECS: usize = 4;
/// Most block erases an agent lists in [`Info::block_erases`] (a W25Q-series part has
/// two: 32 and 64 KiB).
pub const MAX_BLOCK_ERASES: usize = 2;

/// A block erase the flash offers besides its sector erase (`Info` tag 10): one command
/// that erases `size` aligned bytes, every sector of them, in `ms` milliseconds (the
/// worst case the agent declares, as for its sector erase, tag 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockErase {
    /// Bytes of a block: a multiple of the sector size, blocks start on multiples of it.
    pub size: u32,
    /// Milliseconds to erase one block.
    pub ms: u32,
}

/// Codecs a compressed stream may use (`Info` tag 5, `StreamBegin`): the stream format of
/// docs/CODECS.md.
pub mod codec {
    /// LZMA whose dictionary is the flash already written: a compressed image.
    pub const LZMA: u8 = 1;
    /// The same decoder with a base image (a slot the device holds) in front of its
    /// dictionary: a delta.
    pub const LZMA_DELTA: u8 = 2;
}

/// A codec the agent decodes, and the RAM its decoder takes (`Info` tag 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CodecDesc {
    /// Its id ([`codec`]).
    pub id: u8,
    /// Bytes of RAM its decoder state takes on the device.
    pub ram: u32,
}

/// Tags of the extension fields that follow the fixed fields of an `Info` body
/// (docs/PROTOCOL.md, 3.3). A reader skips tags it does not know.
pub mod info_tag {
    /// `u8`: the VM slot that is the boot stage (never erased or written).
    pub const BOOT_STAGE: u8 = 1;
    /// `u32`: the worst-case time to erase one sector, in milliseconds.
    pub const SECTOR_ERASE_MS: u8 = 2;
    /// `u32` each, ascending: the baud rates `SetBaud` accepts.
    pub const BAUD_RATES: u8 = 3;
    /// `addr:u32, size:u32, count:u32` each, ascending: runs of erase sectors whose size
    /// is not `sector_size` (a flash with mixed sector sizes).
    pub const SECTORS: u8 = 4;
    /// `id:u8, ram:u32` each: the codecs `StreamBegin` accepts ([`super::codec`]).
    pub const CODECS: u8 = 5;
    /// What the device requires of firmware images ([`crate::ImageRules`]): `flags:u8,
    /// vm_minimum:u32, bc_minimum:u32`, then 8-byte ids of the keys it trusts.
    pub const IMAGES: u8 = 6;
    /// `u32`: how long, in milliseconds from its start, a firmware on trial has to call
    /// `accept` before the device reverts it (its trial deadline, a watchdog's reset).
    pub const CONFIRM_MS: u8 = 7;
    /// `u32`: the bytes of request frames (whole frames on the wire, both delimiters
    /// included) the host may have sent and not yet seen answered: the agent's receive
    /// queue counted in bytes, so that short requests (an erase) do not take a whole
    /// frame's room of `max_in_flight`.
    pub const RX_WINDOW: u8 = 8;
    /// `u32`: how long the firmware on trial still has to call `accept`, in milliseconds
    /// by the device's own clock when it answered (0: its deadline has passed); sent only
    /// while a firmware runs on trial.
    pub const TRIAL_LEFT_MS: u8 = 9;
    /// `size:u32, ms:u32` each, ascending by size: the block erases the flash offers
    /// ([`super::BlockErase`]); the agent erases a whole aligned block of a range in one
    /// command, and an `EraseSlot` covering blocks takes their time, not their sectors'.
    pub const BLOCK_ERASES: u8 = 10;
    /// No value (length 0): the agent erases in the background. An `EraseSlot` is
    /// answered once scheduled, and its range is erased before any later request touches
    /// it (docs/PROTOCOL.md 3.3, 6.2).
    pub const BACKGROUND_ERASE: u8 = 11;
}

/// Most trusted keys an agent lists in [`ImageRules::keys`].
pub const MAX_KEYS: usize = 4;

/// What a device requires of the firmware images it runs (`Info` tag 6; docs/IMAGE.md).
/// An agent that sends no such field checks nothing: any image, raw or packed, any
/// version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRules {
    /// Images must carry a signature by one of [`ImageRules::keys`].
    pub require_signatures: bool,
    /// Raw images (no trailer: no hash, no version) may be attempted.
    pub allow_raw: bool,
    /// An older image may be attempted with `AttemptDowngrade`.
    pub allow_downgrade: bool,
    /// The oldest VM image version accepted, packed (see [`pack_version`]).
    pub vm_minimum: u32,
    /// The oldest bytecode image version accepted, packed.
    pub bc_minimum: u32,
    /// Ids of the trusted keys (first 8 bytes of SHA-256 of each public key).
    pub keys: heapless::Vec<[u8; 8], MAX_KEYS>,
}

/// A version `major.minor.patch` as the record stores a minimum: `major << 24 |
/// minor << 16 | patch`, each field saturated to its width (8, 8, 16 bits) so that the
/// stored value never exceeds the version (a field above its width stores the largest
/// version below it: the protection then starts a little lower, never higher).
pub const fn pack_version(major: u16, minor: u16, patch: u32) -> u32 {
    if major > 0xFF {
        return u32::MAX;
    }
    if minor > 0xFF {
        return (major as u32) << 24 | 0x00FF_FFFF;
    }
    let patch = if patch > 0xFFFF { 0xFFFF } else { patch };
    (major as u32) << 24 | (minor as u32) << 16 | patch
}

/// The fields of a packed version: `(major, minor, patch)`.
pub const fn unpack_version(v: u32) -> (u16, u16, u32) {
    ((v >> 24) as u16, ((v >> 16) & 0xFF) as u16, v & 0xFFFF)
}

/// The kind of firmware a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum SlotKind {
    /// A virtual machine (the firmware proper).
    Vm = 0,
    /// Bytecode run by a VM.
    Bytecode = 1,
}

impl SlotKind {
    /// Its name inside a sentence: "VM", "bytecode".
    pub const fn label(self) -> &'static str {
        match self {
            SlotKind::Vm => "VM",
            SlotKind::Bytecode => "bytecode",
        }
    }

    /// Its name at the start of a heading or a sentence: "VM", "Bytecode".
    pub const fn title(self) -> &'static str {
        match self {
            SlotKind::Vm => "VM",
            SlotKind::Bytecode => "Bytecode",
        }
    }
}

impl core::fmt::Display for SlotKind {
    /// The label ([`SlotKind::label`]).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.label())
    }
}

/// The seed's two flash layouts, as the simulator builds them and the web app and the
/// command line name them (`bytecode`, `vm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LayoutKind {
    /// `VM | BC0 | BC1 | record`: bytecode updates only.
    #[cfg_attr(feature = "serde", serde(rename = "bytecode"))]
    BytecodeOnly,
    /// `VM0 | BC0 | VM1 | BC1 | record`: VM and bytecode updates.
    #[cfg_attr(feature = "serde", serde(rename = "vm"))]
    VmAndBytecode,
}

impl LayoutKind {
    /// Both, in the order a user is offered them.
    pub const ALL: [LayoutKind; 2] = [LayoutKind::BytecodeOnly, LayoutKind::VmAndBytecode];

    /// Its key in settings and on the command line: `bytecode` or `vm`.
    pub const fn key(self) -> &'static str {
        match self {
            LayoutKind::BytecodeOnly => "bytecode",
            LayoutKind::VmAndBytecode => "vm",
        }
    }

    /// The layout of a key ([`LayoutKind::key`]), if it is one.
    pub fn from_key(key: &str) -> Option<LayoutKind> {
        LayoutKind::ALL.into_iter().find(|l| l.key() == key)
    }
}

impl core::fmt::Display for LayoutKind {
    /// The key ([`LayoutKind::key`]).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.key())
    }
}

/// One slot of the flash layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlotDesc {
    /// VM or bytecode.
    pub kind: SlotKind,
    /// Index among the slots of its kind, from 0 (the seed's slot numbers).
    pub index: u8,
    /// First flash address.
    pub addr: u32,
    /// Size in bytes (a whole number of erase sectors).
    pub size: u32,
}

impl SlotDesc {
    /// Whether `addr` lies inside this slot.
    pub const fn contains(&self, addr: u32) -> bool {
        addr >= self.addr && (addr - self.addr) < self.size
    }
}

/// `count` erase sectors of `size` bytes from `addr`: a part of a flash whose sectors
/// are not all alike (an STM32F4 has 16, 64 and 128 KiB sectors). Elsewhere the sectors
/// are `sector_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SectorRun {
    /// First address of the first sector.
    pub addr: u32,
    /// Bytes of each sector.
    pub size: u32,
    /// Sectors in the run.
    pub count: u32,
}

impl SectorRun {
    /// The address after the last sector.
    pub const fn end(&self) -> u64 {
        self.addr as u64 + self.size as u64 * self.count as u64
    }
}

/// The erase sector holding `addr`, as `(first address, size)`: from `runs` (ascending,
/// see [`sector_runs_valid`]) where one covers `addr`, otherwise the `sector`-byte sector
/// aligned to `sector`. `sector` must not be zero (it is taken as 1 then).
pub fn sector_at(runs: &[SectorRun], sector: u32, addr: u32) -> (u32, u32) {
    for r in runs {
        if u64::from(addr) >= u64::from(r.addr) && u64::from(addr) < r.end() && r.size > 0 {
            let start = addr - (addr - r.addr) % r.size;
            return (start, r.size);
        }
    }
    let sector = sector.max(1);
    (addr - addr % sector, sector)
}

/// Whether `runs` describe sectors a reader can trust: each a whole number of
/// `sector`-byte units, aligned to `sector`, at least one sector long, inside the 32-bit
/// address space, ascending and not overlapping.
pub fn sector_runs_valid(runs: &[SectorRun], sector: u32) -> bool {
    let mut prev_end = 0u64;
    for r in runs {
        let ok = sector != 0
            && r.size != 0
            && r.count != 0
            && r.size % sector == 0
            && r.addr % sector == 0
            && u64::from(r.addr) >= prev_end
            && r.end() <= 1 << 32;
        if !ok {
            return false;
        }
        prev_end = r.end();
    }
    true
}

/// The agent's description of itself, the answer to `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The agent's protocol version.
    pub protocol_version: u16,
    /// Agent version, major.minor.patch.
    pub agent_version: [u8; 3],
    /// Agent name (UTF-8, at most [`MAX_NAME`] bytes).
    pub name: heapless::String<MAX_NAME>,
    /// False where the firmware has no FOTA support: every other request then gets
    /// [`ErrorCode::Unsupported`](crate::ErrorCode::Unsupported).
    pub fota_supported: bool,
    /// Erase sector size in bytes.
    pub sector_size: u32,
    /// Writes must start at and be a multiple of this many bytes.
    pub write_granularity: u16,
    /// Most data bytes in one `WriteSlot`.
    pub max_write: u16,
    /// How many requests the agent can hold in flight (its receive buffer holds this many
    /// full frames).
    pub max_in_flight: u8,
    /// The fastest baud rate the agent can switch to.
    pub max_baud: u32,
    /// First address of the FOTA record area.
    pub record_addr: u32,
    /// Size of the FOTA record area.
    pub record_size: u32,
    /// The slots, in address order.
    pub slots: heapless::Vec<SlotDesc, MAX_SLOTS>,
    /// The VM slot the part always starts (no remap): the boot stage, which passes
    /// control to the VM the record names. It is never offered, erased or written.
    /// `None`: any VM slot can be updated.
    pub boot_stage: Option<u8>,
    /// The worst-case time to erase one sector, in milliseconds, if the agent declares it.
    pub sector_erase_ms: Option<u32>,
    /// The baud rates `SetBaud` accepts, ascending (the agent never offers others).
    pub baud_rates: heapless::Vec<u32, MAX_BAUD_RATES>,
    /// Runs of erase sectors whose size is not [`Info::sector_size`], ascending (empty
    /// when every sector is alike).
    pub sectors: heapless::Vec<SectorRun, MAX_SECTOR_RUNS>,
    /// The codecs `StreamBegin` accepts, with their RAM (empty: send uncompressed).
    pub codecs: heapless::Vec<CodecDesc, MAX_CODECS>,
    /// What the device requires of images (`None`: an agent that checks none).
    pub images: Option<ImageRules>,
    /// How long a firmware on trial has to call `accept`, in milliseconds from its start,
    /// before the device reverts it (`None`: not declared).
    pub confirm_ms: Option<u32>,
    /// The bytes of request frames the host may have in flight, whole frames on the wire
    /// counted (tag 8; `None`: not declared, `max_in_flight` requests at most).
    pub rx_window: Option<u32>,
    /// While a firmware runs on trial: how long it still has to call `accept`, in
    /// milliseconds by the device's clock when it answered (0: the deadline passed and it
    /// still runs, unconfirmed). `None`: nothing on trial, or not reported.
    pub trial_left_ms: Option<u32>,
    /// The block erases the flash offers, ascending by size (tag 10; empty: sector
    /// erases only).
    pub block_erases: heapless::Vec<BlockErase, MAX_BLOCK_ERASES>,
    /// The agent erases in the background (tag 11): an `EraseSlot` is answered once
    /// scheduled, and erased before any later request touches its range, while later
    /// writes elsewhere go on.
    pub background_erase: bool,
}

impl Info {
    /// Whether the agent decodes streams of codec `id`.
    pub fn supports(&self, id: u8) -> bool {
        self.codecs.iter().any(|c| c.id == id)
    }

    /// The erase sector holding `addr`: `(first address, size)`.
    pub fn sector_at(&self, addr: u32) -> (u32, u32) {
        sector_at(&self.sectors, self.sector_size, addr)
    }

    /// The largest erase sector of the flash.
    pub fn largest_sector(&self) -> u32 {
        self.sectors
            .iter()
            .map(|r| r.size)
            .fold(self.sector_size, u32::max)
    }
}

/// Look-ups in a list of slots (a layout), shared by the agent's configuration and
/// [`Info`].
pub trait Layout {
    /// The slots.
    fn slots(&self) -> &[SlotDesc];

    /// The slot of `kind` with `index`. (Not inlined: the agent looks slots up in many
    /// places, and one copy keeps its firmware small.)
    #[inline(never)]
    fn slot(&self, kind: SlotKind, index: u32) -> Option<&SlotDesc> {
        self.slots()
            .iter()
            .find(|s| s.kind == kind && u32::from(s.index) == index)
    }

    /// The slot containing `addr`.
    #[inline(never)]
    fn slot_at(&self, addr: u32) -> Option<&SlotDesc> {
        self.slots().iter().find(|s| s.contains(addr))
    }

    /// How many slots of `kind` the layout has.
    fn count(&self, kind: SlotKind) -> usize {
        self.slots().iter().filter(|s| s.kind == kind).count()
    }
}

impl Layout for Info {
    fn slots(&self) -> &[SlotDesc] {
        &self.slots
    }
}
