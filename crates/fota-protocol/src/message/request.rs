//! Requests from host to agent: their bodies, encoded and parsed.

use crate::wire::{Reader, Sink};

use super::{DecodeError, Op, RecordUpdate, SlotKind};

/// A request from host to agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Check the protocol version; the agent answers [`Reply::Info`](crate::Reply::Info).
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
        /// Protocol 3: the MD5 one of the two slots must hold, or nothing is written
        /// (`ChecksumMismatch`); `None` encodes the 8-byte body of version 2.
        check: Option<SlotCheck>,
    },
    /// `attempt(bcslot, vmslot)` that allows images older than the device's minimum
    /// version, where the device's rules allow downgrades (the user confirmed it).
    AttemptDowngrade {
        /// Bytecode slot index to try at the next restart.
        bc_slot: u32,
        /// VM slot index to try at the next restart.
        vm_slot: u32,
        /// As `Attempt`'s.
        check: Option<SlotCheck>,
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

/// What an `Attempt` (protocol 3) asks the agent to check before it writes the record:
/// the MD5 of the first `len` bytes of the attempted slot of kind `kind` (the slot
/// `bc_slot` or `vm_slot` names). The agent compares it with the MD5 of the last
/// `ChecksumSlot` if that one covered exactly this range from the slot's first byte
/// and nothing was erased or programmed since; it hashes nothing itself (so a host
/// sends the `ChecksumSlot` right before, the check the host makes anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCheck {
    /// Which of the attempted slots.
    pub kind: SlotKind,
    /// Bytes from the slot's first byte.
    pub len: u32,
    /// Their MD5.
    pub md5: [u8; 16],
}

/// The body of an `Attempt` with a [`SlotCheck`]: 8 + 1 + 4 + 16 bytes.
pub const ATTEMPT_CHECKED_LEN: usize = 29;

/// `ChecksumSlot`'s `addr` for the first address of the VM slot the device runs
/// (protocol 3): a host asks for it before it knows the device's slots (behind `Hello`).
/// An agent of version 2 refuses it (`OutOfSlot`).
pub const RUNNING_VM: u32 = 0xFFFF_FFF0;

/// `ChecksumSlot`'s `addr` for the first address of the bytecode slot the device runs
/// (protocol 3), as [`RUNNING_VM`].
pub const RUNNING_BYTECODE: u32 = 0xFFFF_FFF1;

/// `StreamBegin`'s `base` when the stream has no base.
pub const NO_BASE: u32 = 0xFFFF_FFFF;

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
            Request::Attempt {
                bc_slot,
                vm_slot,
                check,
            }
            | Request::AttemptDowngrade {
                bc_slot,
                vm_slot,
                check,
            } => {
                s.u32(bc_slot);
                s.u32(vm_slot);
                if let Some(c) = check {
                    s.u8(c.kind as u8);
                    s.u32(c.len);
                    s.put(&c.md5);
                }
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
                check: slot_check(&mut r, body.len())?,
            },
            Op::AttemptDowngrade => Request::AttemptDowngrade {
                bc_slot: r.u32()?,
                vm_slot: r.u32()?,
                check: slot_check(&mut r, body.len())?,
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

/// An `Attempt` body's [`SlotCheck`]: none in an 8-byte body (version 2), one in a body
/// of [`ATTEMPT_CHECKED_LEN`] bytes; any other length is malformed (`r.end()` says so).
fn slot_check(r: &mut Reader<'_>, body_len: usize) -> Result<Option<SlotCheck>, DecodeError> {
    if body_len != ATTEMPT_CHECKED_LEN {
        return Ok(None);
    }
    let kind = match r.u8()? {
        0 => SlotKind::Vm,
        1 => SlotKind::Bytecode,
        _ => return Err(DecodeError::BadValue),
    };
    let len = r.u32()?;
    let md5 = r.array::<16>()?;
    Ok(Some(SlotCheck { kind, len, md5 }))
}
