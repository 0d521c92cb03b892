//! checksum_slot: the MD5 of a range of a slot, one unit at a time.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::ErrorCode;
use fota_protocol::Layout as _;

use super::{
    Agent, CHECKSUM_PROGRESS_STEP, CHECKSUM_UNIT, CHUNK, ChecksumOp, Refusal, RequestResult, Unit,
};
use md5::{Digest, Md5};

impl<F: NorFlash> Agent<F> {
    /// `checksum_slot(addr, size)`: MD5 of `size` bytes from `addr`, inside one slot (any
    /// slot, in use or not; never the record area). `progress` gets `(bytes done, bytes
    /// in all)` every [`CHECKSUM_PROGRESS_STEP`] bytes. Reads only (a partial write unit
    /// held in RAM is programmed first, see [`Agent::write_slot`]).
    ///
    /// This hashes everything before it returns; a firmware that must keep running drives
    /// [`Agent::begin_checksum`] and [`Agent::checksum_unit`] from its main loop instead.
    pub fn checksum_slot(
        &mut self,
        addr: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> RequestResult<[u8; 16]> {
        let mut op = self.begin_checksum(addr, size)?;
        let mut reported = 0;
        loop {
            match self.checksum_unit(&mut op)? {
                Unit::More { done, total } => {
                    if reported / CHECKSUM_PROGRESS_STEP != done / CHECKSUM_PROGRESS_STEP {
                        progress(done, total);
                    }
                    reported = done;
                }
                Unit::Done(md5) => return Ok(md5),
            }
        }
    }

    /// Check a `checksum_slot(addr, size)` request and start it; nothing is hashed yet.
    /// `addr` may be [`fota_protocol::RUNNING_VM`] or [`fota_protocol::RUNNING_BYTECODE`]
    /// (protocol 3): the first address of the slot of that kind this boot runs.
    pub fn begin_checksum(&mut self, addr: u32, size: u32) -> RequestResult<ChecksumOp> {
        self.supported()?;
        #[cfg(feature = "codec")]
        let keep_crc = matches!(
            addr,
            fota_protocol::RUNNING_VM | fota_protocol::RUNNING_BYTECODE
        );
        let addr = match addr {
            fota_protocol::RUNNING_VM => self.boot.vm_addr,
            fota_protocol::RUNNING_BYTECODE => self.boot.bc_addr,
            a => a,
        };
        if size == 0 {
            return Err(Refusal::new(ErrorCode::BadLength, 0));
        }
        let end = u64::from(addr) + u64::from(size);
        self.slot_range(addr, end, size)?;
        // Background erases: every scheduled one is done before a byte is read.
        self.settle_erases()?;
        self.flush_write()?;
        let first = self.slot_starting_at(addr).is_some();
        self.checked = first.then_some((addr, size, self.changes, false));
        #[cfg(feature = "codec")]
        {
            self.checked_crc = (first && keep_crc).then_some(0);
        }
        Ok(ChecksumOp {
            addr,
            size,
            done: 0,
            md5: Md5::new(),
            #[cfg(feature = "images")]
            magic: 0,
        })
    }

    /// Hash the next [`CHECKSUM_UNIT`] bytes of `op` (fewer at the end): one bounded unit.
    pub fn checksum_unit(&mut self, op: &mut ChecksumOp) -> RequestResult<Unit<[u8; 16]>> {
        self.supported()?;
        let mut buf = [0u8; CHUNK];
        let stop = op.size.min(op.done.saturating_add(CHECKSUM_UNIT));
        let mut result = Ok(());
        while op.done < stop {
            let n = (stop - op.done).min(CHUNK as u32);
            let Some(chunk) = buf.get_mut(..n as usize) else {
                break;
            };
            if let Err(r) = self.read(op.addr, op.done as usize, chunk) {
                result = Err(r);
                break;
            }
            op.md5.update(&*chunk);
            #[cfg(feature = "images")]
            scan_magic(&mut op.magic, chunk);
            #[cfg(feature = "codec")]
            if let Some(crc) = &mut self.checked_crc {
                *crc = fota_codec::format::base_crc_more(*crc, chunk);
            }
            op.done += n;
        }
        self.unit_done();
        result?;
        if op.done < op.size {
            return Ok(Unit::More {
                done: op.done,
                total: op.size,
            });
        }
        let md5: [u8; 16] = op.md5.finalize_reset().into();
        // The whole range hashed with nothing changed since it began: see `checked_len`
        // and `check_attempted`.
        if let Some((addr, size, since, done)) = &mut self.checked {
            *done = (*addr, *size, *since) == (op.addr, op.size, self.changes);
            if *done {
                self.checked_md5 = md5;
                #[cfg(feature = "images")]
                {
                    self.checked_raw = usize::from(op.magic) < fota_image::MAGIC.len();
                }
            }
        }
        Ok(Unit::Done(md5))
    }

    /// An `Attempt`'s check (protocol 3): the slot of `check.kind` it attempts
    /// (`bc_slot` or `vm_slot`) holds `check.md5` over its first `check.len` bytes, by
    /// the MD5 of the last `checksum_slot` if that one hashed exactly this range, began
    /// at the slot's first byte and nothing was erased or programmed (or a record entry
    /// written) since it began. The agent hashes nothing here: a host sends the
    /// `ChecksumSlot` first (the check it makes itself), the `Attempt` right behind it.
    /// `ChecksumMismatch` (detail 1: another MD5; 0: no such checksum) changes nothing.
    pub fn check_attempted(
        &mut self,
        bc_slot: u32,
        vm_slot: u32,
        check: &fota_protocol::SlotCheck,
    ) -> RequestResult<()> {
        self.supported()?;
        // The indexes first, in `attempt`'s order: the same refusal as without a check.
        self.index(fota_protocol::SlotKind::Bytecode, bc_slot)?;
        self.index(fota_protocol::SlotKind::Vm, vm_slot)?;
        let index = match check.kind {
            fota_protocol::SlotKind::Vm => vm_slot,
            fota_protocol::SlotKind::Bytecode => bc_slot,
        };
        let slot = *self
            .config
            .slot(check.kind, index)
            .ok_or(Refusal::new(ErrorCode::BadSlotIndex, index))?;
        match self.checked {
            Some((addr, size, since, true))
                if addr == slot.addr && size == check.len && since == self.changes =>
            {
                if self.checked_md5 == check.md5 {
                    Ok(())
                } else {
                    Err(Refusal::new(ErrorCode::ChecksumMismatch, 1))
                }
            }
            _ => Err(Refusal::new(ErrorCode::ChecksumMismatch, 0)),
        }
    }

    /// The CRC-32 (a delta header's, fota-codec) of the first `len` bytes of the slot at
    /// `base`, if the last `checksum_slot` hashed exactly them, asked of the running
    /// slot, with nothing erased or programmed since it began.
    #[cfg(feature = "codec")]
    pub(crate) fn checked_base_crc(&self, base: u32, len: u32) -> Option<u32> {
        match self.checked {
            Some((addr, size, since, true)) if (addr, size, since) == (base, len, self.changes) => {
                self.checked_crc
            }
            _ => None,
        }
    }

    /// Whether the range [`Agent::checked_len`] gives for `slot` holds no image trailer's
    /// magic: no trailer can start there (an image that has one has it inside).
    #[cfg(feature = "images")]
    pub(crate) fn checked_raw(&self, slot: &fota_protocol::SlotDesc) -> Option<u32> {
        self.checked_len(slot).filter(|_| self.checked_raw)
    }

    /// How many bytes from `slot`'s first byte the last `checksum_slot` hashed, if it
    /// began there and nothing erased or programmed the flash since it began: what the
    /// host has just compared with its image (the check before every attempt), so an
    /// image it sent without a trailer ends there.
    #[cfg(feature = "images")]
    pub(crate) fn checked_len(&self, slot: &fota_protocol::SlotDesc) -> Option<u32> {
        match self.checked {
            Some((addr, size, since, true)) if addr == slot.addr && since == self.changes => {
                Some(size.min(slot.size))
            }
            _ => None,
        }
    }
}

/// Follow the image trailer's magic through `bytes` hashed after those `matched` counts
/// (how many of the magic's bytes end them; 8 once it was met whole). The magic's eight
/// bytes all differ, so a byte that breaks a partial match can only start a new one.
#[cfg(feature = "images")]
fn scan_magic(matched: &mut u8, bytes: &[u8]) {
    let magic = fota_image::MAGIC;
    for &b in bytes {
        let Some(&want) = magic.get(usize::from(*matched)) else {
            return;
        };
        *matched = if b == want {
            *matched + 1
        } else {
            u8::from(b == magic[0])
        };
    }
}
