//! Requests from host to agent: their bodies, encoded and parsed.

use crate::wire::{Reader, Sink};

use super::{DecodeError, Op, RecordUpdate};

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
