//! Operation codes, decode errors and the error codes a device sends.

/// Operation codes. A reply to a request carries the request's code with bit 7 set;
/// [`Op::Progress`] and [`Op::Error`] may answer any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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

    /// The operation's name as docs/PROTOCOL.md gives it (`WriteSlot`), for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Hello => "Hello",
            Op::GetRecord => "GetRecord",
            Op::SetRecord => "SetRecord",
            Op::FindBytecodeSlot => "FindBytecodeSlot",
            Op::FindVmSlot => "FindVmSlot",
            Op::EraseSlot => "EraseSlot",
            Op::WriteSlot => "WriteSlot",
            Op::ChecksumSlot => "ChecksumSlot",
            Op::Restart => "Restart",
            Op::Accept => "Accept",
            Op::Attempt => "Attempt",
            Op::SetBaud => "SetBaud",
            Op::Goodbye => "Goodbye",
            Op::StreamBegin => "StreamBegin",
            Op::StreamData => "StreamData",
            Op::AttemptDowngrade => "AttemptDowngrade",
            Op::Progress => "Progress",
            Op::Error => "Error",
        }
    }
}

impl core::fmt::Display for Op {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a frame's body could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("the frame's body ends inside a field"),
            DecodeError::TrailingBytes => f.write_str("bytes follow the frame body's last field"),
            DecodeError::UnknownOp(op) => write!(f, "unknown operation code 0x{op:02X}"),
            DecodeError::BadValue => f.write_str("a field of the frame's body is out of range"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// What a device may refuse, as sent in an [`Op::Error`] reply.
///
/// Every refusal leaves flash and record exactly as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
    /// An `Attempt`'s check (protocol 3) failed: nothing written. Detail: 1 when the
    /// slot's MD5 differs from the one the request carries; 0 when the agent has no MD5
    /// of exactly that range (no `ChecksumSlot` of it from the slot's first byte, or a
    /// slot erased or programmed since).
    ChecksumMismatch = 28,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 28] = [
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
        ErrorCode::ChecksumMismatch,
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
            ErrorCode::ChecksumMismatch => {
                "the slot's MD5 is not the one the attempt carries (or was not just checked)"
            }
        }
    }
}

impl core::fmt::Display for ErrorCode {
    /// The one-line message ([`ErrorCode::message`]).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}
