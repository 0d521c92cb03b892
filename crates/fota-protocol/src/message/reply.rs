//! Replies from agent to host: their bodies, encoded and parsed.

use crate::wire::{Reader, Sink};

use super::{
    AcceptOutcome, BlockErase, CodecDesc, DecodeError, ErrorCode, ImageRules, Info, Op, Record,
    RecordState, SectorRun, SlotDesc, SlotKind, info_tag,
};

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
                if let Some(ms) = i.confirm_ms {
                    s.u8(info_tag::CONFIRM_MS);
                    s.u8(4);
                    s.u32(ms);
                }
                if let Some(bytes) = i.rx_window {
                    s.u8(info_tag::RX_WINDOW);
                    s.u8(4);
                    s.u32(bytes);
                }
                if let Some(ms) = i.trial_left_ms {
                    s.u8(info_tag::TRIAL_LEFT_MS);
                    s.u8(4);
                    s.u32(ms);
                }
                if !i.block_erases.is_empty() {
                    s.u8(info_tag::BLOCK_ERASES);
                    // At most MAX_BLOCK_ERASES (2) blocks: 16 bytes.
                    s.u8((i.block_erases.len() * 8) as u8);
                    for b in &i.block_erases {
                        s.u32(b.size);
                        s.u32(b.ms);
                    }
                }
                if i.background_erase {
                    s.u8(info_tag::BACKGROUND_ERASE);
                    s.u8(0);
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
    let mut confirm_ms = None;
    let mut rx_window = None;
    let mut trial_left_ms = None;
    let mut block_erases = heapless::Vec::new();
    let mut background_erase = false;
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
            info_tag::CONFIRM_MS => confirm_ms = Some(v.u32()?),
            info_tag::RX_WINDOW => rx_window = Some(v.u32()?),
            info_tag::TRIAL_LEFT_MS => trial_left_ms = Some(v.u32()?),
            info_tag::BACKGROUND_ERASE => background_erase = true,
            info_tag::BLOCK_ERASES => {
                block_erases.clear();
                while !v.is_empty() {
                    let b = BlockErase {
                        size: v.u32()?,
                        ms: v.u32()?,
                    };
                    block_erases.push(b).map_err(|_| DecodeError::BadValue)?;
                }
            }
            _ => return Ok(()), // a later protocol's field: skipped
        }
        // A known field of the wrong length is malformed.
        v.end().map_err(|_| DecodeError::BadValue)
    })?;
    Ok(Info {
        background_erase,
        images,
        confirm_ms,
        rx_window,
        trial_left_ms,
        block_erases,
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
