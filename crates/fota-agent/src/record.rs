//! The persistent FOTA record: an append-only log of fixed-size entries in the record
//! area, which is a ring of erase sectors. See the crate documentation for the scheme and
//! what each power cut leaves behind.

use core::num::NonZeroU32;

use embedded_storage::nor_flash::NorFlash;

use crate::flash::MAX_WRITE_UNIT;
use crate::flash::{self, ERASED};

/// First four bytes of an entry without minimum versions (format 1): `"FOTA"`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FOTA");

/// First byte of an entry with minimum versions (format 2): `'V'`.
pub const MAGIC_V2: u8 = b'V';

/// Bytes of an encoded entry. On flash each entry takes [`ENTRY_LEN`] rounded up to the
/// flash write size; the padding stays erased.
pub const ENTRY_LEN: usize = 20;

/// Where the update process stands, as stored in the record: the protocol's own type
/// (the `Record` reply carries the same byte).
pub use fota_protocol::RecordState;

/// One entry of the record log: the seed's fota\[2\]..fota\[5\], the state, and the
/// minimum image versions (anti-rollback).
///
/// Two formats of the same 20 bytes, little-endian. Format 1, written while both
/// minimums are 0 (so a record without anti-rollback is what older agents wrote and
/// read):
///
/// | bytes  | field                                   |
/// |--------|-----------------------------------------|
/// | 0..4   | [`MAGIC`]                               |
/// | 4..8   | `seq`: one more than the previous entry |
/// | 8      | `state` (`'C'`, `'P'` or `'T'`)         |
/// | 9..13  | vm_current, vm_last, bc_current, bc_last|
/// | 13..16 | reserved, `0xFF`                        |
/// | 16..20 | CRC-32 of bytes 0..16                   |
///
/// Format 2, once a minimum version is set (slot indexes are below 8, so a nibble each):
///
/// | bytes  | field                                           |
/// |--------|-------------------------------------------------|
/// | 0      | [`MAGIC_V2`]                                    |
/// | 1      | `state`                                         |
/// | 2..6   | `seq`                                           |
/// | 6      | vm_current (bits 0..4), vm_last (bits 4..8)     |
/// | 7      | bc_current, bc_last (the same)                  |
/// | 8..12  | VM minimum version, packed (`fota_protocol::pack_version`) |
/// | 12..16 | bytecode minimum version, packed                |
/// | 16..20 | CRC-32 of bytes 0..16                           |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry {
    /// Sequence number: the valid entry with the highest one is in force.
    pub seq: u32,
    /// Where the update process stands.
    pub state: RecordState,
    /// VM slot for the next boot (fota\[2\]).
    pub vm_current: u8,
    /// Last working VM slot (fota\[3\]).
    pub vm_last: u8,
    /// Bytecode slot for the next boot (fota\[4\]).
    pub bc_current: u8,
    /// Last working bytecode slot (fota\[5\]).
    pub bc_last: u8,
    /// The oldest VM image version the device accepts, packed (0: any).
    pub vm_minimum: u32,
    /// The oldest bytecode image version the device accepts, packed (0: any).
    pub bc_minimum: u32,
}

impl LogEntry {
    /// The record of a blank device: slot 0 of each kind, confirmed.
    pub const fn factory() -> LogEntry {
        LogEntry {
            seq: 0,
            state: RecordState::Confirmed,
            vm_current: 0,
            vm_last: 0,
            bc_current: 0,
            bc_last: 0,
            vm_minimum: 0,
            bc_minimum: 0,
        }
    }

    /// An entry for these slots: `Pending` if current differs from last working,
    /// `Confirmed` otherwise (`seq` is set when it is appended).
    pub const fn with_slots(vm_current: u8, vm_last: u8, bc_current: u8, bc_last: u8) -> LogEntry {
        let state = if vm_current != vm_last || bc_current != bc_last {
            RecordState::Pending
        } else {
            RecordState::Confirmed
        };
        LogEntry {
            seq: 0,
            state,
            vm_current,
            vm_last,
            bc_current,
            bc_last,
            vm_minimum: 0,
            bc_minimum: 0,
        }
    }

    /// The same entry with the minimum versions of `other`.
    pub const fn keeping_minimums(self, other: &LogEntry) -> LogEntry {
        LogEntry {
            vm_minimum: other.vm_minimum,
            bc_minimum: other.bc_minimum,
            ..self
        }
    }

    /// Whether the current configuration differs from the last working one.
    pub const fn differs(&self) -> bool {
        self.vm_current != self.vm_last || self.bc_current != self.bc_last
    }

    /// Same content, ignoring `seq`.
    pub fn same_content(&self, other: &LogEntry) -> bool {
        LogEntry { seq: 0, ..*self } == LogEntry { seq: 0, ..*other }
    }

    /// Same four slot indexes, whatever the state and `seq`.
    pub fn same_slots(&self, other: &LogEntry) -> bool {
        (self.vm_current, self.vm_last, self.bc_current, self.bc_last)
            == (
                other.vm_current,
                other.vm_last,
                other.bc_current,
                other.bc_last,
            )
    }

    /// The bytes on flash.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [ERASED; ENTRY_LEN];
        let mut head = [ERASED; 16];
        // Without image checks nothing enforces a minimum: entries are written in format
        // 1 and the minimums are dropped (an agent with checks starts again from 0).
        let v1 = !cfg!(feature = "images") || (self.vm_minimum == 0 && self.bc_minimum == 0);
        if v1 {
            head[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            head[4..8].copy_from_slice(&self.seq.to_le_bytes());
            head[8] = self.state as u8;
            head[9] = self.vm_current;
            head[10] = self.vm_last;
            head[11] = self.bc_current;
            head[12] = self.bc_last;
        } else {
            head[0] = MAGIC_V2;
            head[1] = self.state as u8;
            head[2..6].copy_from_slice(&self.seq.to_le_bytes());
            head[6] = (self.vm_current & 0x0F) | self.vm_last << 4;
            head[7] = (self.bc_current & 0x0F) | self.bc_last << 4;
            head[8..12].copy_from_slice(&self.vm_minimum.to_le_bytes());
            head[12..16].copy_from_slice(&self.bc_minimum.to_le_bytes());
        }
        b[..16].copy_from_slice(&head);
        // The wire protocol's CRC-32, through its function: one table in the image.
        b[16..].copy_from_slice(&fota_protocol::crc32(&head).to_le_bytes());
        b
    }

    /// The entry in `bytes`, if they hold a whole, consistent one: magic (of either
    /// format), CRC, a known state, and `Confirmed` exactly when current equals last
    /// working.
    pub fn decode(bytes: &[u8]) -> Option<LogEntry> {
        let b: &[u8; ENTRY_LEN] = bytes.get(..ENTRY_LEN)?.try_into().ok()?;
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if fota_protocol::crc32(&b[..16]) != word(16) {
            return None;
        }
        let e = if b[0] == MAGIC_V2 {
            LogEntry {
                seq: word(2),
                state: RecordState::from_u8(b[1])?,
                vm_current: b[6] & 0x0F,
                vm_last: b[6] >> 4,
                bc_current: b[7] & 0x0F,
                bc_last: b[7] >> 4,
                vm_minimum: word(8),
                bc_minimum: word(12),
            }
        } else if word(0) == MAGIC {
            LogEntry {
                seq: word(4),
                state: RecordState::from_u8(b[8])?,
                vm_current: b[9],
                vm_last: b[10],
                bc_current: b[11],
                bc_last: b[12],
                vm_minimum: 0,
                bc_minimum: 0,
            }
        } else {
            return None;
        };
        e.consistent()
    }

    /// `Confirmed` exactly when current equals last working.
    fn consistent(self) -> Option<LogEntry> {
        ((self.state == RecordState::Confirmed) != self.differs()).then_some(self)
    }
}

/// Flash bytes one entry takes: [`ENTRY_LEN`] rounded up to the write size.
pub(crate) fn stride(write: NonZeroU32) -> NonZeroU32 {
    let w = write.get();
    let units = (ENTRY_LEN as u32).div_ceil(w);
    // At least one unit of a nonzero size: never zero; fall back to `write` regardless.
    NonZeroU32::new(units.saturating_mul(w)).unwrap_or(write)
}

/// A position in the log: sector of the record area, entry slot in that sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) sector: u32,
    pub(crate) slot: u32,
}

/// The log's place on flash and where its newest entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Log {
    /// Flash offset of the record area.
    offset: u32,
    sectors: u32,
    sector: NonZeroU32,
    stride: NonZeroU32,
    per_sector: u32,
    /// The newest entry with a good CRC (whether or not it fits the layout): the next
    /// entry goes after it and takes its `seq + 1`.
    newest: Option<(Pos, u32)>,
}

impl Log {
    pub(crate) fn new(offset: u32, size: u32, sector: NonZeroU32, stride: NonZeroU32) -> Log {
        Log {
            offset,
            sectors: size / sector,
            sector,
            stride,
            per_sector: sector.get() / stride,
            newest: None,
        }
    }

    fn entry_offset(&self, pos: Pos) -> Option<u32> {
        self.offset
            .checked_add(pos.sector.checked_mul(self.sector.get())?)?
            .checked_add(pos.slot.checked_mul(self.stride.get())?)
    }

    /// Read every entry slot; remember the newest good entry and return the newest one
    /// `fits` accepts (the record in force).
    ///
    /// An entry slot that cannot be read (ECC flash reports a torn word as a read error)
    /// is skipped like one with a bad CRC. Only when no entry slot at all can be read is
    /// it an error (the flash offset): that is a flash fault, not a blank record area,
    /// and writing a factory record over it could lose the history.
    pub(crate) fn scan<F: NorFlash>(
        &mut self,
        flash: &mut F,
        fits: impl Fn(&LogEntry) -> bool,
    ) -> Result<Option<LogEntry>, u32> {
        self.newest = None;
        let mut best: Option<(LogEntry, Pos)> = None;
        let mut unreadable: Option<u32> = None;
        let mut readable = false;
        for sector in 0..self.sectors {
            // Never stop at a bad slot: a torn write leaves one in the middle.
            for slot in 0..self.per_sector {
                let pos = Pos { sector, slot };
                let off = self.entry_offset(pos).ok_or(self.offset)?;
                let mut buf = [0u8; ENTRY_LEN];
                if let Err(at) = flash::read(flash, off, &mut buf) {
                    unreadable.get_or_insert(at);
                    continue;
                }
                readable = true;
                let Some(e) = LogEntry::decode(&buf) else {
                    continue;
                };
                let newer = match self.newest {
                    None => true,
                    Some((p, seq)) => self.later(flash, (e.seq, pos), (seq, p)),
                };
                if newer {
                    self.newest = Some((pos, e.seq));
                }
                let better = match best {
                    None => true,
                    Some((b, p)) => self.later(flash, (e.seq, pos), (b.seq, p)),
                };
                if fits(&e) && better {
                    best = Some((e, pos));
                }
            }
        }
        if !readable {
            return Err(unreadable.unwrap_or(self.offset));
        }
        Ok(best.map(|(e, _)| e))
    }

    /// Whether entry `a` (its `seq` and position) was written after entry `b`. A higher
    /// `seq` is later. Equal numbers come from an append that failed and was retried in
    /// the next position: the later position in the ring wins. In one sector that is the
    /// higher slot; across sectors it is the sector erased more recently, the one whose
    /// oldest valid entry is the newer (the ring fills a sector before it moves on).
    fn later<F: NorFlash>(&self, flash: &mut F, a: (u32, Pos), b: (u32, Pos)) -> bool {
        if a.0 != b.0 {
            return a.0 > b.0;
        }
        if a.1.sector == b.1.sector {
            return a.1.slot > b.1.slot;
        }
        self.oldest_seq(flash, a.1.sector) >= self.oldest_seq(flash, b.1.sector)
    }

    /// The lowest `seq` of the valid entries in `sector` (`u32::MAX` if none).
    fn oldest_seq<F: NorFlash>(&self, flash: &mut F, sector: u32) -> u32 {
        let mut oldest = u32::MAX;
        for slot in 0..self.per_sector {
            let Some(off) = self.entry_offset(Pos { sector, slot }) else {
                continue;
            };
            let mut buf = [0u8; ENTRY_LEN];
            if flash::read(flash, off, &mut buf).is_ok()
                && let Some(e) = LogEntry::decode(&buf)
            {
                oldest = oldest.min(e.seq);
            }
        }
        oldest
    }

    /// Append `entry` (its `seq` is replaced) after the newest one; returns what was
    /// written. Never programs a slot that is not fully erased: a slot left half
    /// programmed by a power cut is skipped. When the sector has no erased slot left, the
    /// next sector of the ring is erased and the entry goes to its start.
    ///
    /// On error (the flash offset) the caller must [`Log::scan`] again: the flash may hold
    /// more than this `Log` knows.
    pub(crate) fn append<F: NorFlash>(
        &mut self,
        flash: &mut F,
        entry: LogEntry,
    ) -> Result<LogEntry, u32> {
        let seq = match self.newest {
            // Four billion updates wear any flash out first; refuse rather than wrap.
            Some((_, seq)) => seq.checked_add(1).ok_or(self.offset)?,
            None => 1,
        };
        let entry = LogEntry { seq, ..entry };
        let mut buf = [ERASED; MAX_WRITE_UNIT];
        let stride = self.stride.get() as usize;
        let unit = buf.get_mut(..stride).ok_or(self.offset)?;

        let (sector, first) = match self.newest {
            Some((p, _)) => (p.sector, p.slot.saturating_add(1)),
            None => (0, 0),
        };
        let mut target = None;
        for slot in first..self.per_sector {
            let pos = Pos { sector, slot };
            let off = self.entry_offset(pos).ok_or(self.offset)?;
            // A slot that cannot be read (a torn word on ECC flash) is not erased: skip it.
            if flash::read(flash, off, unit).is_ok() && flash::is_erased(unit) {
                target = Some(pos);
                break;
            }
        }
        let pos = match target {
            Some(p) => p,
            None => {
                // Full: the next sector only holds older entries; start it afresh.
                let next = (sector + 1) % self.sectors.max(1);
                let pos = Pos {
                    sector: next,
                    slot: 0,
                };
                let from = self.entry_offset(pos).ok_or(self.offset)?;
                let to = from.checked_add(self.sector.get()).ok_or(from)?;
                flash.erase(from, to).map_err(|_| from)?;
                pos
            }
        };
        let off = self.entry_offset(pos).ok_or(self.offset)?;
        unit.fill(ERASED);
        unit.get_mut(..ENTRY_LEN)
            .ok_or(off)?
            .copy_from_slice(&entry.encode());
        flash.write(off, unit).map_err(|_| off)?;
        // Read back: a write that did not stick must not count as done.
        let mut check = [0u8; ENTRY_LEN];
        flash::read(flash, off, &mut check)?;
        if LogEntry::decode(&check) != Some(entry) {
            return Err(off);
        }
        self.newest = Some((pos, seq));
        Ok(entry)
    }
}
