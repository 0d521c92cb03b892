//! Slot writes: erase_slot, and write_slot with its held write units (a write that
//! ends inside a unit keeps the unit in RAM until the next write completes it).

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::ErrorCode;

use super::overlay_held;
use super::{Agent, CHUNK, EraseOp, Held, Refusal, RequestResult, Unit};
use crate::config::MAX_WRITE_UNIT;
use crate::flash::ERASED;
use crate::{MAX_WRITE, flash};

impl<F: NorFlash> Agent<F> {
    /// `erase_slot(addr, size)`: erase whole sectors from `addr` (a sector start) covering
    /// `size` bytes; returns the erased `(addr, size)`. The range must lie in one slot
    /// that is in use by no configuration (current, last working, running) and is not the
    /// boot stage. `progress` gets `(bytes done, bytes in all)` between sectors.
    ///
    /// This runs the whole erase before it returns; a firmware that must keep running
    /// drives [`Agent::begin_erase`] and [`Agent::erase_unit`] from its main loop instead
    /// (the link does).
    ///
    /// Power loss: the sectors erased so far stay erased; the slot is unused, so nothing
    /// that runs is affected. Erase again.
    pub fn erase_slot(
        &mut self,
        addr: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> RequestResult<(u32, u32)> {
        let mut op = self.begin_erase(addr, size)?;
        loop {
            match self.erase_unit(&mut op)? {
                Unit::More { done, total } => progress(done, total),
                Unit::Done(erased) => return Ok(erased),
            }
        }
    }

    /// Check an `erase_slot(addr, size)` request and start it; nothing is erased yet.
    /// Refusals are those of [`Agent::erase_slot`].
    pub fn begin_erase(&mut self, addr: u32, size: u32) -> RequestResult<EraseOp> {
        self.supported()?;
        if size == 0 {
            return Err(Refusal::new(ErrorCode::BadLength, 0));
        }
        if self.sector_at(addr).0 != addr {
            return Err(Refusal::new(ErrorCode::Misaligned, addr));
        }
        // Slots and the record area start and end on sector boundaries, so the range and
        // the whole sectors it touches lie in the same slot and miss the record alike.
        let want = u64::from(addr) + u64::from(size);
        self.free_range(addr, want, size)?;
        // The end of the last sector the range touches (inside the slot: no overflow).
        let mut end = u64::from(addr);
        while end < want {
            let (start, len) = self.sector_at(u32::try_from(end).unwrap_or(u32::MAX));
            end = u64::from(start) + u64::from(len);
        }
        let total = u32::try_from(end - u64::from(addr))
            .map_err(|_| Refusal::new(ErrorCode::BadLength, size))?;
        // A partial write unit held in the range is erased with it; one elsewhere is
        // completed first.
        match self.held {
            Some(h) if h.addr >= addr && u64::from(h.addr) < end => self.held = None,
            _ => self.flush_write()?,
        }
        Ok(EraseOp {
            addr,
            total,
            done: 0,
        })
    }

    /// Erase the next sector of `op`, or the next whole block where the flash declares
    /// block erases ([`crate::AgentConfig::block_erases`]) and one fits in what is left
    /// of the range: one bounded unit of work (one sector's or one block's erase time).
    /// The range is checked again first, so a record change between units (a local
    /// `attempt()`) can never let it erase a slot in use.
    pub fn erase_unit(&mut self, op: &mut EraseOp) -> RequestResult<Unit<(u32, u32)>> {
        self.supported()?;
        if op.done >= op.total {
            return Ok(Unit::Done((op.addr, op.total)));
        }
        let end = u64::from(op.addr) + u64::from(op.total);
        self.free_range(op.addr, end, op.total)?;
        let at = op.addr.saturating_add(op.done);
        let (_, sector) = self.sector_at(at);
        let off = self.offset(at)?;
        let sector = self.erase_size(off, sector, op.total - op.done);
        let to = off
            .checked_add(sector)
            .ok_or(Refusal::new(ErrorCode::FlashFailure, at))?;
        // Not known erased while it runs: a cut or a failure leaves it anything.
        self.note(off, to, false);
        let erased = self.flash.erase(off, to);
        self.changes.erased = self.changes.erased.wrapping_add(1);
        self.unit_done();
        erased.map_err(|_| Refusal::new(ErrorCode::FlashFailure, at))?;
        self.note(off, to, true);
        op.done = op.done.saturating_add(sector);
        Ok(if op.done < op.total {
            Unit::More {
                done: op.done,
                total: op.total,
            }
        } else {
            Unit::Done((op.addr, op.total))
        })
    }

    /// Bytes of one erase unit at flash offset `off`, `left` bytes of the range to go:
    /// the largest declared block that starts at `off` and fits in `left` (so it never
    /// leaves the range, which lies in one slot); otherwise the sector there (`sector`
    /// bytes). A configuration with block erases has sectors of one size (validation).
    pub(super) fn erase_size(&self, off: u32, sector: u32, left: u32) -> u32 {
        let mut size = sector;
        // Ascending: the last that fits is the largest.
        for b in &self.config.block_erases {
            if off.is_multiple_of(b.size) && b.size <= left {
                size = b.size;
            }
        }
        size
    }

    /// `write_slot(addr, block)`: program 1..=[`MAX_WRITE`] bytes at `addr`, inside one
    /// unused slot that is not the boot stage.
    ///
    /// Blocks of any length written in order make the slot hold exactly their
    /// concatenation. A block that does not end on a write unit boundary leaves that unit
    /// partly written: the agent holds its bytes in RAM until the next block continues it
    /// (a block that starts where this one ended), or, before any request that reads or
    /// changes the flash otherwise (checksum, erase, attempt, set_record, accept, restart)
    /// or a block that leaves another unit partly written, programs it with the erased
    /// value (0xFF) in the rest of the unit ([`Agent::flush_write`]). A block must start
    /// on a write unit boundary or where the held bytes end; otherwise only a repeat of
    /// bytes already written is accepted (`Misaligned`).
    ///
    /// Idempotent, so a host may resend after a lost reply: a write unit that already
    /// holds the data is skipped, an erased one is programmed, anything else is refused
    /// with `NotErased` (detail: its address) before a single byte is programmed.
    ///
    /// Power loss: the units programmed so far stay, held bytes are lost; resending the
    /// blocks from the last unit boundary completes the image.
    ///
    /// With background erases ([`crate::background`]) a block into a range still to
    /// erase waits for the erases up to it; elsewhere the erase running is suspended
    /// while the block is programmed and read back.
    pub fn write_slot(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        if !self.background_erase() {
            return self.write_now(addr, data);
        }
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        // From the held unit's start: a block that continues it programs it whole.
        let from = self.held.map_or(addr, |h| h.addr.min(addr));
        self.wait_erases(from, addr.saturating_add(len))?;
        let suspended = self.suspend_erase()?;
        let written = self.write_now(addr, data);
        self.resume_erase(suspended);
        written
    }

    /// [`Agent::write_slot`] with no erase running in its range.
    fn write_now(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        self.supported()?;
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if data.is_empty() || data.len() > MAX_WRITE {
            return Err(Refusal::new(ErrorCode::BadLength, len));
        }
        let end = u64::from(addr) + u64::from(len);
        self.free_range(addr, end, len)?;
        let unit = self.geo.write.get();
        let first = addr - addr % unit;
        let continues = self.held.filter(|h| h.addr == first && addr <= h.end());
        if !addr.is_multiple_of(unit) && continues.is_none() {
            // Neither on a unit boundary nor continuing the held bytes: only a repeat of
            // bytes already written (a resend after a lost reply) is accepted.
            return if self.holds(addr, data) {
                Ok(())
            } else {
                Err(Refusal::new(ErrorCode::Misaligned, addr))
            };
        }
        // The write in three parts: the held unit it continues (`head`), whole units
        // (`body`), and a unit it leaves partly written (`last`).
        let head_len = if addr.is_multiple_of(unit) {
            0
        } else {
            ((first + unit - addr) as usize).min(data.len())
        };
        let (head, rest) = data.split_at(head_len);
        let body_addr = addr.saturating_add(head_len as u32);
        let body_len = rest.len() - rest.len() % unit as usize;
        let (body, last) = rest.split_at(body_len);
        let last_addr = body_addr.saturating_add(body_len as u32);

        // Checks first, so that a refusal programs nothing.
        let head_plan = match continues {
            Some(h) => Some(self.plan_held(h, addr, head)?),
            None => None,
        };
        self.check_body(body_addr, body)?;
        let last_plan = if last.is_empty() {
            None
        } else {
            self.plan_last(last_addr, last)?
        };

        // A new partial unit elsewhere: complete the one held before it.
        let keeps_held =
            |p: &Option<Held>| p.is_some_and(|p| self.held.is_some_and(|h| h.addr == p.addr));
        let new_partial = match (&head_plan, &last_plan) {
            (_, Some(p)) => Some(*p),
            (Some(PlanHeld::Hold(p)), None) => Some(*p),
            _ => None,
        };
        let consumed = matches!(head_plan, Some(PlanHeld::Complete(_)))
            || self.body_covers_held(body_addr, body.len());
        if new_partial.is_some() && !keeps_held(&new_partial) && !consumed {
            self.flush_write()?;
        }
        if let Some(PlanHeld::Complete(h)) = head_plan {
            self.held = None;
            self.program_unit(h.addr, h.bytes.get(..unit as usize).unwrap_or(&[]))?;
        }
        if self.body_covers_held(body_addr, body.len()) {
            self.held = None;
        }
        self.program_body(body_addr, body)?;
        if let Some(p) = new_partial {
            self.held = Some(p);
        }
        Ok(())
    }

    /// The partial write unit held in RAM, if any: its address and how many of its bytes
    /// are written.
    pub fn held_write(&self) -> Option<(u32, usize)> {
        self.held.map(|h| (h.addr, h.len))
    }

    /// Program the partial write unit held in RAM (see [`Agent::write_slot`]), with the
    /// erased value in the rest of the unit. Nothing to do if none is held. On failure
    /// the held bytes are dropped (as a power cut would): the slot's checksum shows it.
    pub fn flush_write(&mut self) -> RequestResult<()> {
        let Some(mut h) = self.held.take() else {
            return Ok(());
        };
        let unit = self.geo.write.get() as usize;
        let bytes = h.bytes.get_mut(..unit).unwrap_or(&mut []);
        if let Some(rest) = bytes.get_mut(h.len..) {
            rest.fill(ERASED);
        }
        if flash::is_erased(bytes) {
            return Ok(()); // nothing to program: the unit stays erased
        }
        let copy = h;
        self.program_unit(copy.addr, copy.bytes.get(..unit).unwrap_or(&[]))
    }

    /// Whether `[addr, addr + data.len())` already holds `data` (flash, and the held
    /// bytes over it).
    fn holds(&mut self, addr: u32, data: &[u8]) -> bool {
        let mut buf = [0u8; CHUNK];
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let Some(have) = buf.get_mut(..want.len()) else {
                return false;
            };
            if self.read(addr, pos, have).is_err() {
                return false;
            }
            let at = addr.saturating_add(pos as u32);
            if let Some(h) = self.held {
                overlay_held(&h, at, have);
            }
            if want != &*have {
                return false;
            }
        }
        true
    }

    /// The held unit `h`, continued by `data` from `addr`: complete, or held longer.
    fn plan_held(&mut self, h: Held, addr: u32, data: &[u8]) -> RequestResult<PlanHeld> {
        let unit = self.geo.write.get() as usize;
        let mut raw = [0u8; MAX_WRITE_UNIT];
        let raw = raw.get_mut(..unit).unwrap_or(&mut []);
        if self.read(h.addr, 0, raw).is_err() || !flash::is_erased(raw) {
            // The unit was programmed behind the agent's back (or cannot be read).
            return Err(Refusal::new(ErrorCode::NotErased, h.addr));
        }
        let mut next = h;
        let from = (addr - h.addr) as usize;
        for (k, &b) in data.iter().enumerate() {
            let p = from + k;
            if p < h.len && h.bytes.get(p) != Some(&b) {
                // Differs from bytes already written.
                return Err(Refusal::new(ErrorCode::NotErased, h.addr));
            }
            if let Some(slot) = next.bytes.get_mut(p) {
                *slot = b;
            }
        }
        next.len = h.len.max(from + data.len());
        Ok(if next.len >= unit {
            PlanHeld::Complete(next)
        } else {
            PlanHeld::Hold(next)
        })
    }

    /// A write's last unit, only partly covered by `data` from its start `addr`: held if
    /// the unit is erased, nothing to do if it already holds `data`.
    fn plan_last(&mut self, addr: u32, data: &[u8]) -> RequestResult<Option<Held>> {
        let unit = self.geo.write.get() as usize;
        let mut raw = [0u8; MAX_WRITE_UNIT];
        let raw = raw.get_mut(..unit).unwrap_or(&mut []);
        if self.read(addr, 0, raw).is_err() {
            return Err(Refusal::new(ErrorCode::NotErased, addr));
        }
        if !flash::is_erased(raw) {
            // Programmed already: only the same bytes are a success (a resend).
            return if raw.get(..data.len()) == Some(data) {
                Ok(None)
            } else {
                Err(Refusal::new(ErrorCode::NotErased, addr))
            };
        }
        let mut h = Held {
            addr,
            len: data.len(),
            bytes: [ERASED; MAX_WRITE_UNIT],
        };
        if let Some(old) = self.held.filter(|o| o.addr == addr) {
            // A resend that starts at the held unit: it must agree with what is held.
            let n = old.len.min(data.len());
            if old.bytes.get(..n) != data.get(..n) {
                return Err(Refusal::new(ErrorCode::NotErased, addr));
            }
            h = old;
            h.len = old.len.max(data.len());
        }
        if let Some(dst) = h.bytes.get_mut(..data.len()) {
            dst.copy_from_slice(data);
        }
        Ok(Some(h))
    }

    /// Whether the held unit lies inside whole units `[addr, addr + len)` of a write.
    fn body_covers_held(&self, addr: u32, len: usize) -> bool {
        self.held
            .is_some_and(|h| h.addr >= addr && u64::from(h.addr) < u64::from(addr) + len as u64)
    }

    /// Every whole unit of `data` at `addr` must be equal or erased (and agree with held
    /// bytes), else nothing is programmed.
    fn check_body(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        let unit = self.geo.write.get() as usize;
        let known = self.known_erased(addr, data.len());
        let mut buf = [0u8; CHUNK];
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let have = buf
                .get_mut(..want.len())
                .ok_or(Refusal::new(ErrorCode::FlashFailure, addr))?;
            let chunk_read = self.read_unless_erased(known, addr, pos, have).is_ok();
            for (j, w) in want.chunks(unit).enumerate() {
                let at = addr.saturating_add((pos + j * unit) as u32);
                let h = have
                    .get_mut(j * unit..j * unit + w.len())
                    .ok_or(Refusal::new(ErrorCode::FlashFailure, at))?;
                // A chunk that cannot be read is looked at unit by unit, so that the
                // refusal names the unit that cannot be read (a torn word on ECC flash).
                if !chunk_read && self.read(at, 0, h).is_err() {
                    return Err(Refusal::new(ErrorCode::NotErased, at));
                }
                if let Some(held) = self.held.filter(|x| x.addr == at)
                    && held.bytes.get(..held.len) != w.get(..held.len)
                {
                    return Err(Refusal::new(ErrorCode::NotErased, at));
                }
                if w != &*h && !flash::is_erased(h) {
                    return Err(Refusal::new(ErrorCode::NotErased, at));
                }
            }
        }
        Ok(())
    }

    /// Program the whole units of `data` at `addr` that differ (a run of units per write),
    /// then read everything back.
    fn program_body(&mut self, addr: u32, data: &[u8]) -> RequestResult<()> {
        let unit = self.geo.write.get() as usize;
        let flash_failure =
            |at: usize| Refusal::new(ErrorCode::FlashFailure, addr.saturating_add(at as u32));
        let known = self.known_erased(addr, data.len());
        let mut buf = [0u8; CHUNK];
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let have = buf.get_mut(..want.len()).ok_or(flash_failure(pos))?;
            self.read_unless_erased(known, addr, pos, have)?;
            let mut j = 0;
            while j < want.len() {
                let differs = |k: usize| want.get(k..k + unit) != have.get(k..k + unit);
                if !differs(j) {
                    j += unit;
                    continue;
                }
                let start = j;
                while j < want.len() && differs(j) {
                    j += unit;
                }
                let run = want.get(start..j).ok_or(flash_failure(pos + start))?;
                let off = self.offset(addr.saturating_add((pos + start) as u32))?;
                self.changes.programmed = self.changes.programmed.wrapping_add(1);
                self.note(off, off.saturating_add(run.len() as u32), false);
                self.flash
                    .write(off, run)
                    .map_err(|_| flash_failure(pos + start))?;
            }
        }
        // Read back: a write that did not stick is a flash failure, not success.
        for (i, want) in data.chunks(CHUNK).enumerate() {
            let pos = i * CHUNK;
            let have = buf.get_mut(..want.len()).ok_or(flash_failure(pos))?;
            self.read(addr, pos, have)?;
            if let Some(k) = want.iter().zip(have.iter()).position(|(w, h)| w != h) {
                return Err(flash_failure(pos + k));
            }
        }
        Ok(())
    }

    /// Program one whole unit at `addr` (erased, checked by the caller) and read it back.
    fn program_unit(&mut self, addr: u32, bytes: &[u8]) -> RequestResult<()> {
        let fail = Refusal::new(ErrorCode::FlashFailure, addr);
        if flash::is_erased(bytes) {
            return Ok(());
        }
        let off = self.offset(addr)?;
        self.changes.programmed = self.changes.programmed.wrapping_add(1);
        self.note(off, off.saturating_add(bytes.len() as u32), false);
        self.flash.write(off, bytes).map_err(|_| fail)?;
        let mut back = [0u8; MAX_WRITE_UNIT];
        let back = back.get_mut(..bytes.len()).ok_or(fail)?;
        self.read(addr, 0, back)?;
        if back != bytes {
            return Err(fail);
        }
        Ok(())
    }
}

/// What continuing a held unit does to it.
#[derive(Debug, Clone, Copy)]
enum PlanHeld {
    /// The unit is complete: program it.
    Complete(Held),
    /// Still partly written: hold it longer.
    Hold(Held),
}
