//! Requests, replies and their bodies.

use crate::wire::{Reader, Sink};

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

/// Operation codes. A reply to a request carries the request's code with bit 7 set;
/// [`Op::Progress`] and [`Op::Error`] may answer any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Protocol version check and agent description.
    Hello = 0x01,
    /// `get_record()`.
    GetRecord = 0x02,
    /// `set_record(newfota)`.
    SetRecord = 0x03,
    /// `find_bytecode_slot()`.
    FindBytecodeSlot = 0x04,
    /// `find_vm_slot()`.
    FindVmSlot = 0x05,
    /// `erase_slot(addr, size)`.
    EraseSlot = 0x06,
    /// `write_slot(addr, block)`.
    WriteSlot = 0x07,
    /// `checksum_slot(addr, size)`.
    ChecksumSlot = 0x08,
    /// `restart()`.
    Restart = 0x09,
    /// `accept()`.
    Accept = 0x0A,
    /// `attempt(bcslot, vmslot)`.
    Attempt = 0x0B,
    /// Switch the link to another baud rate.
    SetBaud = 0x0C,
    /// The host is done: the agent forgets the session and goes back to its base rate.
    Goodbye = 0x0D,
    /// Start a compressed or delta stream into a slot.
    StreamBegin = 0x0E,
    /// The next bytes of the stream (none: its end).
    StreamData = 0x0F,
    /// `attempt(bcslot, vmslot)` of an image older than the device's minimum version, on
    /// a device whose rules allow downgrades. Answered like `Attempt` (`0x8B`).
    AttemptDowngrade = 0x10,
    /// Progress of a long operation (a reply, with the id of the request it concerns).
    Progress = 0xFE,
    /// The request failed (a reply).
    Error = 0xFF,
}

impl Op {
    /// The code a reply to this request carries.
    pub const fn reply(self) -> u8 {
        match self {
            Op::Progress | Op::Error => self as u8,
            // One reply for both ways of attempting.
            Op::AttemptDowngrade => Op::Attempt as u8 | 0x80,
            _ => self as u8 | 0x80,
        }
    }

    /// The request operation for a code, if it is one.
    pub const fn from_request(code: u8) -> Option<Op> {
        Some(match code {
            0x01 => Op::Hello,
            0x02 => Op::GetRecord,
            0x03 => Op::SetRecord,
            0x04 => Op::FindBytecodeSlot,
            0x05 => Op::FindVmSlot,
            0x06 => Op::EraseSlot,
            0x07 => Op::WriteSlot,
            0x08 => Op::ChecksumSlot,
            0x09 => Op::Restart,
            0x0A => Op::Accept,
            0x0B => Op::Attempt,
            0x0C => Op::SetBaud,
            0x0D => Op::Goodbye,
            0x0E => Op::StreamBegin,
            0x0F => Op::StreamData,
            #[cfg(feature = "images")]
            0x10 => Op::AttemptDowngrade,
            _ => return None,
        })
    }
}

/// Why a frame's body could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The body ended before a field did.
    Truncated,
    /// Bytes were left after the last field.
    TrailingBytes,
    /// The operation code is not one this protocol version knows.
    UnknownOp(u8),
    /// A field held a value outside its range (an unknown error code, slot kind, bad
    /// UTF-8 in a name, too many slots).
    BadValue,
}

/// What a device may refuse, as sent in an [`Op::Error`] reply.
///
/// Every refusal leaves flash and record exactly as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The firmware has no FOTA support (the seed's `UnsupportedError`).
    Unsupported = 1,
    /// The address range is not inside one slot. Detail: the first bad address.
    OutOfSlot = 2,
    /// The slot holds the current or the last working firmware. Detail: slot address.
    SlotInUse = 3,
    /// A length or size is zero, too large or runs past the slot end. Detail: the length.
    BadLength = 4,
    /// The address or length is not a multiple of the write granularity. Detail: address.
    Misaligned = 5,
    /// The flash reported a failure. Detail: the address.
    FlashFailure = 6,
    /// A frame failed its COBS decoding or CRC check; the request is lost, send it again.
    BadFrame = 7,
    /// The operation code is unknown to this agent. Detail: the code.
    UnknownCommand = 8,
    /// The host speaks another protocol version. Detail: the agent's version.
    VersionMismatch = 9,
    /// The agent cannot take this request now (too many in flight); retry later.
    Busy = 10,
    /// No slot is free: a trial is running on a two-slot layout. Accept or revert first.
    NoFreeSlot = 11,
    /// The target bytes are neither erased nor equal to the data. Detail: the address.
    NotErased = 12,
    /// A slot index does not exist in this layout (attempt / set_record). Detail: index.
    BadSlotIndex = 13,
    /// The range touches the FOTA record area. Detail: the address.
    RecordArea = 14,
    /// The frame is longer than the agent can receive. Detail: the agent's limit.
    FrameTooLong = 15,
    /// The baud rate is not supported. Detail: the fastest rate supported.
    BadBaud = 16,
    /// The request was well framed but its body was malformed. Detail: the op code.
    BadRequest = 17,
    /// The slot is the boot stage (the VM slot the part always starts), which is never
    /// erased or written. Detail: the slot address.
    BootStage = 18,
    /// The agent does not decode this stream: unknown format, codec or parameters, or
    /// no codec at all. Detail: the header byte that was refused (its offset).
    StreamFormat = 19,
    /// A delta whose base is not what the base slot holds (or is larger than it).
    /// Detail: the CRC-32 of the base slot's bytes (0 when it is too large).
    BaseMismatch = 20,
    /// The stream is damaged or hostile (a bad block, a match out of range, a stream
    /// that ends inside a block). Detail: the image offset being decoded.
    StreamCorrupt = 21,
    /// Stream data out of order, or no stream begun. Detail: the stream offset the agent
    /// expects next (`0xFFFFFFFF`: no stream).
    StreamGap = 22,
    /// The slot's image does not verify: blank, damaged or incomplete (bad hash, cut-off
    /// trailer), an unknown format, linked for another slot or kind, or a raw image where
    /// the device requires packed ones. Detail: the slot address.
    BadImage = 23,
    /// The image is not signed and the device requires a signature. Detail: the slot
    /// address.
    Unsigned = 24,
    /// The image is signed only by keys the device does not trust. Detail: the slot
    /// address.
    UnknownKey = 25,
    /// A signature by a trusted key does not verify. Detail: the slot address.
    BadSignature = 26,
    /// The image is older than the device's minimum version (or has no version and the
    /// device has one), and downgrades were not asked for or are not allowed. Detail: the
    /// slot address.
    Downgrade = 27,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::Unsupported,
        ErrorCode::OutOfSlot,
        ErrorCode::SlotInUse,
        ErrorCode::BadLength,
        ErrorCode::Misaligned,
        ErrorCode::FlashFailure,
        ErrorCode::BadFrame,
        ErrorCode::UnknownCommand,
        ErrorCode::VersionMismatch,
        ErrorCode::Busy,
        ErrorCode::NoFreeSlot,
        ErrorCode::NotErased,
        ErrorCode::BadSlotIndex,
        ErrorCode::RecordArea,
        ErrorCode::FrameTooLong,
        ErrorCode::BadBaud,
        ErrorCode::BadRequest,
        ErrorCode::BootStage,
        ErrorCode::StreamFormat,
        ErrorCode::BaseMismatch,
        ErrorCode::StreamCorrupt,
        ErrorCode::StreamGap,
        ErrorCode::BadImage,
        ErrorCode::Unsigned,
        ErrorCode::UnknownKey,
        ErrorCode::BadSignature,
        ErrorCode::Downgrade,
    ];

    /// The code for a byte, if it is one.
    pub fn from_u8(v: u8) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| *c as u8 == v)
    }

    /// One line saying what went wrong.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::Unsupported => "the firmware on the device has no FOTA support",
            ErrorCode::OutOfSlot => "the address range is not inside a single slot",
            ErrorCode::SlotInUse => "the slot holds the current or the last working firmware",
            ErrorCode::BadLength => "the length is zero, too large, or runs past the slot end",
            ErrorCode::Misaligned => "the address or length is not aligned to the write size",
            ErrorCode::FlashFailure => "the flash reported a failure",
            ErrorCode::BadFrame => "a frame was damaged on the link",
            ErrorCode::UnknownCommand => "the agent does not know this command",
            ErrorCode::VersionMismatch => "the agent speaks another protocol version",
            ErrorCode::Busy => "the agent is busy",
            ErrorCode::NoFreeSlot => "no slot is free: a trial configuration is running",
            ErrorCode::NotErased => "the target is not erased (erase the slot first)",
            ErrorCode::BadSlotIndex => "no slot with that index in this layout",
            ErrorCode::RecordArea => "the range touches the FOTA record area",
            ErrorCode::FrameTooLong => "the frame is longer than the agent accepts",
            ErrorCode::BadBaud => "the baud rate is not supported by the device",
            ErrorCode::BadRequest => "the request body is malformed",
            ErrorCode::BootStage => "the slot is the boot stage, which is never erased or written",
            ErrorCode::StreamFormat => "the agent does not decode this compressed stream",
            ErrorCode::BaseMismatch => "the delta was made for another base than the device holds",
            ErrorCode::StreamCorrupt => "the compressed stream is damaged",
            ErrorCode::StreamGap => "stream data out of order, or no stream begun",
            ErrorCode::BadImage => {
                "the slot's image does not verify (blank, damaged or incomplete)"
            }
            ErrorCode::Unsigned => "the image is not signed and the device requires a signature",
            ErrorCode::UnknownKey => "the image is signed by no key the device trusts",
            ErrorCode::BadSignature => "a signature by a trusted key does not verify",
            ErrorCode::Downgrade => "the image is older than the device's minimum version",
        }
    }
}

/// The kind of firmware a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotKind {
    /// A virtual machine (the firmware proper).
    Vm = 0,
    /// Bytecode run by a VM.
    Bytecode = 1,
}

/// One slot of the flash layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// [`ErrorCode::Unsupported`].
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

/// Where the update process stands, as the record stores it (and, from protocol 2, as
/// the `Record` reply says). The byte values are those of the record on flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RecordState {
    /// The current configuration is the last working one: nothing to try.
    #[default]
    Confirmed = b'C',
    /// `attempt()` (or `set_record()`) chose a new configuration that has not booted yet.
    /// The next boot runs it and writes [`RecordState::Trial`].
    Pending = b'P',
    /// The new configuration booted once and was not accepted yet. The next boot reverts
    /// to the last working configuration unless `accept()` comes first.
    Trial = b'T',
}

impl RecordState {
    /// The state for a byte, if it is one.
    pub fn from_u8(v: u8) -> Option<RecordState> {
        [
            RecordState::Confirmed,
            RecordState::Pending,
            RecordState::Trial,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }
}

/// What `accept()` did: the `Accept` reply says it, from protocol 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AcceptOutcome {
    /// The configuration on trial, which runs, became the last working one.
    Accepted = 0,
    /// Nothing to accept: the running configuration already is the last working one.
    AlreadyConfirmed = 1,
    /// Nothing to accept: an attempt is pending and the device has not restarted into it
    /// yet (the next restart tries it).
    NotRestarted = 2,
    /// Nothing to accept: the record's trial is not what runs (its trial boot could not
    /// be recorded); the next restart goes back to the last working configuration.
    NotRunning = 3,
}

impl AcceptOutcome {
    /// The outcome for a byte, if it is one.
    pub fn from_u8(v: u8) -> Option<AcceptOutcome> {
        [
            AcceptOutcome::Accepted,
            AcceptOutcome::AlreadyConfirmed,
            AcceptOutcome::NotRestarted,
            AcceptOutcome::NotRunning,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }

    /// In plain words.
    pub const fn describe(self) -> &'static str {
        match self {
            AcceptOutcome::Accepted => {
                "accepted: the running configuration is now the last working one"
            }
            AcceptOutcome::AlreadyConfirmed => {
                "nothing to accept: the running configuration already is the last working one"
            }
            AcceptOutcome::NotRestarted => {
                "nothing to accept: the attempt has not been restarted into yet"
            }
            AcceptOutcome::NotRunning => {
                "nothing to accept: the configuration on trial is not the one running"
            }
        }
    }
}

/// The FOTA record: the 9 integers of the seed's `get_record()`, and from protocol 2 the
/// record's state and the slots running now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    /// fota\[0\]: 0 if the record is not valid.
    pub valid: u32,
    /// fota\[1\]: index of the VM slot running now (the FOTA VM).
    pub vm_index: u32,
    /// fota\[2\]: slot of the current VM.
    pub vm_current: u32,
    /// fota\[3\]: slot of the last working VM.
    pub vm_last: u32,
    /// fota\[4\]: slot of the current bytecode.
    pub bc_current: u32,
    /// fota\[5\]: slot of the last working bytecode.
    pub bc_last: u32,
    /// fota\[6\]: flash address of the current bytecode.
    pub bc_addr: u32,
    /// fota\[7\]: flash address of the current VM.
    pub vm_addr: u32,
    /// fota\[8\]: the OTA chunk: the preferred `write_slot` block size.
    pub chunk: u32,
    /// Where the update process stands.
    pub state: RecordState,
    /// The VM slot running now (equal to fota\[1\]).
    pub running_vm: u32,
    /// The bytecode slot running now.
    pub running_bc: u32,
}

impl Record {
    /// As the seed's tuple.
    pub const fn to_array(&self) -> [u32; 9] {
        [
            self.valid,
            self.vm_index,
            self.vm_current,
            self.vm_last,
            self.bc_current,
            self.bc_last,
            self.bc_addr,
            self.vm_addr,
            self.chunk,
        ]
    }

    /// From the seed's tuple alone (what a protocol 1 agent sent): the state follows the
    /// slots (`Confirmed` when current equals last working, else `Pending`), the running
    /// slots are fota\[1\] and the current bytecode.
    pub const fn from_array(a: [u32; 9]) -> Record {
        let state = if a[2] != a[3] || a[4] != a[5] {
            RecordState::Pending
        } else {
            RecordState::Confirmed
        };
        Record {
            state,
            running_vm: a[1],
            running_bc: a[4],
            valid: a[0],
            vm_index: a[1],
            vm_current: a[2],
            vm_last: a[3],
            bc_current: a[4],
            bc_last: a[5],
            bc_addr: a[6],
            vm_addr: a[7],
            chunk: a[8],
        }
    }

    /// Whether a new configuration is pending or on trial (current is not the last
    /// working configuration).
    pub const fn on_trial(&self) -> bool {
        self.vm_current != self.vm_last || self.bc_current != self.bc_last
    }

    /// Whether the configuration the record names as current is running now.
    pub const fn runs_current(&self) -> bool {
        self.running_vm == self.vm_current && self.running_bc == self.bc_current
    }
}

/// The seed's `set_record(newfota)` argument: the four fields a program may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordUpdate {
    /// fota\[2\]: the VM slot for the next restart.
    pub vm_current: u32,
    /// fota\[3\]: the last working VM slot.
    pub vm_last: u32,
    /// fota\[4\]: the bytecode slot for the next restart.
    pub bc_current: u32,
    /// fota\[5\]: the last working bytecode slot.
    pub bc_last: u32,
}

/// A request from host to agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Check the protocol version; the agent answers [`Reply::Info`].
    Hello {
        /// The host's [`crate::PROTOCOL_VERSION`].
        version: u16,
    },
    /// `get_record()`.
    GetRecord,
    /// `set_record(newfota)`.
    SetRecord(RecordUpdate),
    /// `find_bytecode_slot()`.
    FindBytecodeSlot,
    /// `find_vm_slot()`.
    FindVmSlot,
    /// `erase_slot(addr, size)`: erases whole sectors covering `size` bytes from `addr`.
    EraseSlot {
        /// First address; must start an erase sector.
        addr: u32,
        /// Bytes to erase, rounded up to whole sectors.
        size: u32,
    },
    /// `write_slot(addr, block)`.
    WriteSlot {
        /// Where the block goes.
        addr: u32,
        /// The block.
        data: &'a [u8],
    },
    /// `checksum_slot(addr, size)`: MD5 of `size` bytes from `addr`.
    ChecksumSlot {
        /// First address.
        addr: u32,
        /// Bytes to hash.
        size: u32,
    },
    /// `restart()`: the agent replies, then resets.
    Restart,
    /// `accept()`.
    Accept,
    /// `attempt(bcslot, vmslot)`.
    Attempt {
        /// Bytecode slot index to try at the next restart.
        bc_slot: u32,
        /// VM slot index to try at the next restart.
        vm_slot: u32,
    },
    /// `attempt(bcslot, vmslot)` that allows images older than the device's minimum
    /// version, where the device's rules allow downgrades (the user confirmed it).
    AttemptDowngrade {
        /// Bytecode slot index to try at the next restart.
        bc_slot: u32,
        /// VM slot index to try at the next restart.
        vm_slot: u32,
    },
    /// Switch baud rate: the agent replies at the old rate, then switches. It goes back to
    /// the old rate unless a valid frame arrives at the new one within one second.
    SetBaud {
        /// The new rate.
        baud: u32,
    },
    /// The host is done with the device: the agent forgets the session (its cache of
    /// recent replies), programs a held partial write unit, and goes back to its base
    /// baud rate after the reply.
    Goodbye,
    /// Start a compressed or delta stream (docs/CODECS.md) into the slot at `addr`.
    StreamBegin {
        /// First address of the target slot (erased beforehand where it differs).
        addr: u32,
        /// First address of the slot holding a delta's base; [`NO_BASE`] for none.
        base: u32,
        /// The stream's header (20 bytes for the format of docs/CODECS.md).
        header: &'a [u8],
    },
    /// The stream's bytes after its header, from stream offset `offset`; empty `data`
    /// ends the stream.
    StreamData {
        /// Offset of `data` in the stream, counted after the header.
        offset: u32,
        /// The bytes.
        data: &'a [u8],
    },
}

/// `StreamBegin`'s `base` when the stream has no base.
pub const NO_BASE: u32 = 0xFFFF_FFFF;

/// A reply from agent to host.
// `Info` is inline: without an allocator there is nothing to box it in.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer to `Hello`.
    Info(Info),
    /// Answer to `GetRecord`.
    Record(Record),
    /// `SetRecord` done.
    RecordSet,
    /// Answer to `FindBytecodeSlot`: a slot address.
    BytecodeSlot(u32),
    /// Answer to `FindVmSlot`: a slot address.
    VmSlot(u32),
    /// `EraseSlot` done: what was erased (whole sectors).
    Erased {
        /// First erased address.
        addr: u32,
        /// Bytes erased.
        size: u32,
    },
    /// `WriteSlot` done (or the bytes were already there).
    Written {
        /// Address of the block.
        addr: u32,
        /// Its length.
        len: u32,
    },
    /// Answer to `ChecksumSlot`: the MD5.
    Checksum([u8; 16]),
    /// `Restart` accepted: the device resets after this frame.
    Restarting,
    /// `Accept` done: what it did.
    Accepted(AcceptOutcome),
    /// `Attempt` done.
    Attempted,
    /// `SetBaud` accepted: the rate the agent switches to after this frame.
    BaudSet(u32),
    /// `Goodbye` done: the rate the agent is at after this frame (its base rate).
    Goodbye(u32),
    /// `StreamBegin` done: the header is accepted (and a delta's base checked).
    StreamBegun {
        /// Bytes of the image the stream decodes to.
        image_len: u32,
    },
    /// `StreamData` done: where the stream stands.
    Streamed {
        /// Stream bytes (after the header) taken so far: the next `offset` expected.
        received: u32,
        /// Image bytes written so far.
        written: u32,
    },
    /// A long operation goes on: `done` of `total` units (bytes).
    Progress {
        /// Units done.
        done: u32,
        /// Units in all.
        total: u32,
    },
    /// The request failed; nothing was changed.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A value that says where (see each [`ErrorCode`]).
        detail: u32,
    },
}

impl Request<'_> {
    /// The operation code.
    pub const fn op(&self) -> Op {
        match self {
            Request::Hello { .. } => Op::Hello,
            Request::GetRecord => Op::GetRecord,
            Request::SetRecord(_) => Op::SetRecord,
            Request::FindBytecodeSlot => Op::FindBytecodeSlot,
            Request::FindVmSlot => Op::FindVmSlot,
            Request::EraseSlot { .. } => Op::EraseSlot,
            Request::WriteSlot { .. } => Op::WriteSlot,
            Request::ChecksumSlot { .. } => Op::ChecksumSlot,
            Request::Restart => Op::Restart,
            Request::Accept => Op::Accept,
            Request::Attempt { .. } => Op::Attempt,
            Request::AttemptDowngrade { .. } => Op::AttemptDowngrade,
            Request::SetBaud { .. } => Op::SetBaud,
            Request::Goodbye => Op::Goodbye,
            Request::StreamBegin { .. } => Op::StreamBegin,
            Request::StreamData { .. } => Op::StreamData,
        }
    }

    /// Bytes of this request's payload: id, op, body and CRC (before COBS).
    pub fn payload_len(&self) -> usize {
        struct Count(usize);
        impl Sink for Count {
            fn put(&mut self, bytes: &[u8]) {
                self.0 += bytes.len();
            }
        }
        let mut c = Count(0);
        self.write_body(&mut c);
        c.0 + crate::FRAME_OVERHEAD
    }

    pub(crate) fn write_body(&self, s: &mut impl Sink) {
        match *self {
            Request::Hello { version } => s.u16(version),
            Request::SetRecord(u) => {
                s.u32(u.vm_current);
                s.u32(u.vm_last);
                s.u32(u.bc_current);
                s.u32(u.bc_last);
            }
            Request::EraseSlot { addr, size } | Request::ChecksumSlot { addr, size } => {
                s.u32(addr);
                s.u32(size);
            }
            Request::WriteSlot { addr, data } => {
                s.u32(addr);
                s.put(data);
            }
            Request::Attempt { bc_slot, vm_slot }
            | Request::AttemptDowngrade { bc_slot, vm_slot } => {
                s.u32(bc_slot);
                s.u32(vm_slot);
            }
            Request::SetBaud { baud } => s.u32(baud),
            Request::StreamBegin { addr, base, header } => {
                s.u32(addr);
                s.u32(base);
                s.put(header);
            }
            Request::StreamData { offset, data } => {
                s.u32(offset);
                s.put(data);
            }
            Request::GetRecord
            | Request::FindBytecodeSlot
            | Request::FindVmSlot
            | Request::Restart
            | Request::Accept
            | Request::Goodbye => {}
        }
    }

    /// Parse a request body for operation code `op`.
    pub fn parse(op: u8, body: &[u8]) -> Result<Request<'_>, DecodeError> {
        let mut r = Reader::new(body);
        let req = match Op::from_request(op).ok_or(DecodeError::UnknownOp(op))? {
            Op::Hello => Request::Hello { version: r.u16()? },
            Op::GetRecord => Request::GetRecord,
            Op::SetRecord => Request::SetRecord(RecordUpdate {
                vm_current: r.u32()?,
                vm_last: r.u32()?,
                bc_current: r.u32()?,
                bc_last: r.u32()?,
            }),
            Op::FindBytecodeSlot => Request::FindBytecodeSlot,
            Op::FindVmSlot => Request::FindVmSlot,
            Op::EraseSlot => Request::EraseSlot {
                addr: r.u32()?,
                size: r.u32()?,
            },
            Op::WriteSlot => Request::WriteSlot {
                addr: r.u32()?,
                data: r.rest(),
            },
            Op::ChecksumSlot => Request::ChecksumSlot {
                addr: r.u32()?,
                size: r.u32()?,
            },
            Op::Restart => Request::Restart,
            Op::Accept => Request::Accept,
            Op::Attempt => Request::Attempt {
                bc_slot: r.u32()?,
                vm_slot: r.u32()?,
            },
            Op::AttemptDowngrade => Request::AttemptDowngrade {
                bc_slot: r.u32()?,
                vm_slot: r.u32()?,
            },
            Op::SetBaud => Request::SetBaud { baud: r.u32()? },
            Op::Goodbye => Request::Goodbye,
            #[cfg(feature = "codec")]
            Op::StreamBegin => Request::StreamBegin {
                addr: r.u32()?,
                base: r.u32()?,
                header: r.rest(),
            },
            #[cfg(feature = "codec")]
            Op::StreamData => Request::StreamData {
                offset: r.u32()?,
                data: r.rest(),
            },
            #[cfg(not(feature = "codec"))]
            Op::StreamBegin | Op::StreamData => return Err(DecodeError::UnknownOp(op)),
            Op::Progress | Op::Error => return Err(DecodeError::UnknownOp(op)),
        };
        r.end()?;
        Ok(req)
    }
}

impl Reply {
    /// The operation code this reply carries.
    pub const fn op(&self) -> u8 {
        match self {
            Reply::Info(_) => Op::Hello.reply(),
            Reply::Record(_) => Op::GetRecord.reply(),
            Reply::RecordSet => Op::SetRecord.reply(),
            Reply::BytecodeSlot(_) => Op::FindBytecodeSlot.reply(),
            Reply::VmSlot(_) => Op::FindVmSlot.reply(),
            Reply::Erased { .. } => Op::EraseSlot.reply(),
            Reply::Written { .. } => Op::WriteSlot.reply(),
            Reply::Checksum(_) => Op::ChecksumSlot.reply(),
            Reply::Restarting => Op::Restart.reply(),
            Reply::Accepted(_) => Op::Accept.reply(),
            Reply::Attempted => Op::Attempt.reply(),
            Reply::BaudSet(_) => Op::SetBaud.reply(),
            Reply::Goodbye(_) => Op::Goodbye.reply(),
            Reply::StreamBegun { .. } => Op::StreamBegin.reply(),
            Reply::Streamed { .. } => Op::StreamData.reply(),
            Reply::Progress { .. } => Op::Progress.reply(),
            Reply::Error { .. } => Op::Error.reply(),
        }
    }

    pub(crate) fn write_body(&self, s: &mut impl Sink) {
        match self {
            Reply::Info(i) => {
                s.u16(i.protocol_version);
                s.put(&i.agent_version);
                s.u8(u8::from(i.fota_supported));
                s.u32(i.sector_size);
                s.u16(i.write_granularity);
                s.u16(i.max_write);
                s.u8(i.max_in_flight);
                s.u32(i.max_baud);
                s.u32(i.record_addr);
                s.u32(i.record_size);
                // Both lengths fit a byte: MAX_SLOTS and MAX_NAME are below 256.
                s.u8(i.slots.len() as u8);
                for slot in &i.slots {
                    s.u8(slot.kind as u8);
                    s.u8(slot.index);
                    s.u32(slot.addr);
                    s.u32(slot.size);
                }
                s.u8(i.name.len() as u8);
                s.put(i.name.as_bytes());
                // Extensions: tag, length, value.
                if let Some(vm) = i.boot_stage {
                    s.u8(info_tag::BOOT_STAGE);
                    s.u8(1);
                    s.u8(vm);
                }
                if let Some(ms) = i.sector_erase_ms {
                    s.u8(info_tag::SECTOR_ERASE_MS);
                    s.u8(4);
                    s.u32(ms);
                }
                if !i.baud_rates.is_empty() {
                    s.u8(info_tag::BAUD_RATES);
                    // At most MAX_BAUD_RATES (8) rates: 32 bytes.
                    s.u8((i.baud_rates.len() * 4) as u8);
                    for &b in &i.baud_rates {
                        s.u32(b);
                    }
                }
                if !i.sectors.is_empty() {
                    s.u8(info_tag::SECTORS);
                    // At most MAX_SECTOR_RUNS (4) runs: 48 bytes.
                    s.u8((i.sectors.len() * 12) as u8);
                    for r in &i.sectors {
                        s.u32(r.addr);
                        s.u32(r.size);
                        s.u32(r.count);
                    }
                }
                #[cfg(feature = "codec")]
                if !i.codecs.is_empty() {
                    s.u8(info_tag::CODECS);
                    // At most MAX_CODECS (4) codecs: 20 bytes.
                    s.u8((i.codecs.len() * 5) as u8);
                    for c in &i.codecs {
                        s.u8(c.id);
                        s.u32(c.ram);
                    }
                }
                #[cfg(feature = "images")]
                if let Some(rules) = &i.images {
                    s.u8(info_tag::IMAGES);
                    // At most MAX_KEYS (4) keys: 41 bytes.
                    s.u8((9 + rules.keys.len() * 8) as u8);
                    s.u8(u8::from(rules.require_signatures)
                        | u8::from(rules.allow_raw) << 1
                        | u8::from(rules.allow_downgrade) << 2);
                    s.u32(rules.vm_minimum);
                    s.u32(rules.bc_minimum);
                    for k in &rules.keys {
                        s.put(k);
                    }
                }
            }
            Reply::Record(rec) => {
                for v in rec.to_array() {
                    s.u32(v);
                }
                s.u8(rec.state as u8);
                s.u32(rec.running_vm);
                s.u32(rec.running_bc);
            }
            Reply::Accepted(outcome) => s.u8(*outcome as u8),
            Reply::BytecodeSlot(a) | Reply::VmSlot(a) | Reply::BaudSet(a) | Reply::Goodbye(a) => {
                s.u32(*a)
            }
            Reply::Erased { addr, size } => {
                s.u32(*addr);
                s.u32(*size);
            }
            Reply::Written { addr, len } => {
                s.u32(*addr);
                s.u32(*len);
            }
            Reply::Checksum(md5) => s.put(md5),
            Reply::StreamBegun { image_len } => s.u32(*image_len),
            Reply::Streamed { received, written } => {
                s.u32(*received);
                s.u32(*written);
            }
            Reply::Progress { done, total } => {
                s.u32(*done);
                s.u32(*total);
            }
            Reply::Error { code, detail } => {
                s.u8(*code as u8);
                s.u32(*detail);
            }
            Reply::RecordSet | Reply::Restarting | Reply::Attempted => {}
        }
    }

    /// Parse a reply body for operation code `op`.
    pub fn parse(op: u8, body: &[u8]) -> Result<Reply, DecodeError> {
        let mut r = Reader::new(body);
        let reply = match op {
            0xFE => Reply::Progress {
                done: r.u32()?,
                total: r.u32()?,
            },
            0xFF => Reply::Error {
                code: ErrorCode::from_u8(r.u8()?).ok_or(DecodeError::BadValue)?,
                detail: r.u32()?,
            },
            _ if op & 0x80 == 0 => return Err(DecodeError::UnknownOp(op)),
            _ => match Op::from_request(op & 0x7F).ok_or(DecodeError::UnknownOp(op))? {
                Op::Hello => Reply::Info(parse_info(&mut r)?),
                Op::GetRecord => {
                    let mut a = [0u32; 9];
                    for v in &mut a {
                        *v = r.u32()?;
                    }
                    let state = RecordState::from_u8(r.u8()?).ok_or(DecodeError::BadValue)?;
                    let record = Record {
                        state,
                        running_vm: r.u32()?,
                        running_bc: r.u32()?,
                        ..Record::from_array(a)
                    };
                    // No extension is defined for the record yet: skip any.
                    r.extensions(|_, _| Ok(()))?;
                    Reply::Record(record)
                }
                Op::SetRecord => Reply::RecordSet,
                Op::FindBytecodeSlot => Reply::BytecodeSlot(r.u32()?),
                Op::FindVmSlot => Reply::VmSlot(r.u32()?),
                Op::EraseSlot => Reply::Erased {
                    addr: r.u32()?,
                    size: r.u32()?,
                },
                Op::WriteSlot => Reply::Written {
                    addr: r.u32()?,
                    len: r.u32()?,
                },
                Op::ChecksumSlot => Reply::Checksum(r.array()?),
                Op::Restart => Reply::Restarting,
                Op::Accept => {
                    Reply::Accepted(AcceptOutcome::from_u8(r.u8()?).ok_or(DecodeError::BadValue)?)
                }
                Op::Attempt => Reply::Attempted,
                // Answered with Attempt's code (0x8B): 0x90 is no reply.
                Op::AttemptDowngrade => return Err(DecodeError::UnknownOp(op)),
                Op::SetBaud => Reply::BaudSet(r.u32()?),
                Op::Goodbye => Reply::Goodbye(r.u32()?),
                Op::StreamBegin => Reply::StreamBegun {
                    image_len: r.u32()?,
                },
                Op::StreamData => Reply::Streamed {
                    received: r.u32()?,
                    written: r.u32()?,
                },
                Op::Progress | Op::Error => return Err(DecodeError::UnknownOp(op)),
            },
        };
        r.end()?;
        Ok(reply)
    }
}

fn parse_info(r: &mut Reader<'_>) -> Result<Info, DecodeError> {
    let protocol_version = r.u16()?;
    let agent_version = r.array()?;
    let fota_supported = r.u8()? & 1 == 1;
    let sector_size = r.u32()?;
    let write_granularity = r.u16()?;
    let max_write = r.u16()?;
    let max_in_flight = r.u8()?;
    let max_baud = r.u32()?;
    let record_addr = r.u32()?;
    let record_size = r.u32()?;
    let n = r.u8()?;
    let mut slots = heapless::Vec::new();
    for _ in 0..n {
        let kind = match r.u8()? {
            0 => SlotKind::Vm,
            1 => SlotKind::Bytecode,
            _ => return Err(DecodeError::BadValue),
        };
        let slot = SlotDesc {
            kind,
            index: r.u8()?,
            addr: r.u32()?,
            size: r.u32()?,
        };
        slots.push(slot).map_err(|_| DecodeError::BadValue)?;
    }
    let len = r.u8()? as usize;
    let name = core::str::from_utf8(r.bytes(len)?).map_err(|_| DecodeError::BadValue)?;
    let name = heapless::String::try_from(name).map_err(|_| DecodeError::BadValue)?;
    let mut boot_stage = None;
    let mut sector_erase_ms = None;
    let mut baud_rates = heapless::Vec::new();
    let mut sectors = heapless::Vec::new();
    let mut codecs = heapless::Vec::new();
    let mut images = None;
    r.extensions(|tag, value| {
        let mut v = Reader::new(value);
        match tag {
            info_tag::BOOT_STAGE => boot_stage = Some(v.u8()?),
            info_tag::SECTOR_ERASE_MS => sector_erase_ms = Some(v.u32()?),
            info_tag::BAUD_RATES => {
                baud_rates.clear();
                while !v.is_empty() {
                    baud_rates
                        .push(v.u32()?)
                        .map_err(|_| DecodeError::BadValue)?;
                }
            }
            info_tag::SECTORS => {
                sectors.clear();
                while !v.is_empty() {
                    let run = SectorRun {
                        addr: v.u32()?,
                        size: v.u32()?,
                        count: v.u32()?,
                    };
                    sectors.push(run).map_err(|_| DecodeError::BadValue)?;
                }
            }
            info_tag::CODECS => {
                codecs.clear();
                while !v.is_empty() {
                    let c = CodecDesc {
                        id: v.u8()?,
                        ram: v.u32()?,
                    };
                    codecs.push(c).map_err(|_| DecodeError::BadValue)?;
                }
            }
            info_tag::IMAGES => {
                let flags = v.u8()?;
                let mut rules = ImageRules {
                    require_signatures: flags & 1 != 0,
                    allow_raw: flags & 2 != 0,
                    allow_downgrade: flags & 4 != 0,
                    vm_minimum: v.u32()?,
                    bc_minimum: v.u32()?,
                    keys: heapless::Vec::new(),
                };
                while !v.is_empty() {
                    let id: [u8; 8] = v.array()?;
                    rules.keys.push(id).map_err(|_| DecodeError::BadValue)?;
                }
                images = Some(rules);
            }
            _ => return Ok(()), // a later protocol's field: skipped
        }
        // A known field of the wrong length is malformed.
        v.end().map_err(|_| DecodeError::BadValue)
    })?;
    Ok(Info {
        images,
        boot_stage,
        sector_erase_ms,
        baud_rates,
        sectors,
        codecs,
        protocol_version,
        agent_version,
        name,
        fota_supported,
        sector_size,
        write_granularity,
        max_write,
        max_in_flight,
        max_baud,
        record_addr,
        record_size,
        slots,
    })
}
