//! Background erases (crate::background): the schedule, suspending around writes, and
//! waiting before anything else reads or changes flash.

use embedded_storage::nor_flash::NorFlash;

use super::{Agent, RequestResult};

#[cfg(feature = "background")]
use super::Refusal;
#[cfg(feature = "background")]
use crate::background::{BackgroundErase, Cmd, Schedule, driver};
#[cfg(feature = "background")]
use fota_protocol::ErrorCode;

#[cfg(feature = "background")]
impl<F: BackgroundErase> Agent<F> {
    /// Erase in the background from now on (see [`crate::background`]): `EraseSlot` is
    /// scheduled and answered at once, and `Info` says so. Call it once after boot, on a
    /// board whose flash driver implements [`BackgroundErase`].
    pub fn enable_background_erase(&mut self) {
        self.bg = Some(driver::<F>);
    }
}

#[cfg(feature = "background")]
impl<F: NorFlash> Agent<F> {
    /// Whether erases run in the background ([`Agent::enable_background_erase`]).
    pub fn background_erase(&self) -> bool {
        self.bg.is_some()
    }

    /// Whether scheduled erases are left to run or to start: the main loop keeps calling
    /// the link's step (or [`Agent::pump_erases`]) while this holds.
    pub fn erases_pending(&self) -> bool {
        self.sched.running() || self.sched.pending()
    }

    /// Schedule the erase of whole sectors from `addr` covering `size` bytes (the checks
    /// and refusals of [`Agent::erase_slot`]) and return the range at once: it is erased
    /// before any later request touches it. Without background erases, erases it now.
    pub fn schedule_erase(&mut self, addr: u32, size: u32) -> RequestResult<(u32, u32)> {
        if self.bg.is_none() {
            return self.erase_slot(addr, size, &mut |_, _| {});
        }
        // The checks, and a held unit elsewhere completed (in a range already erased,
        // so the erase running is suspended around it).
        let suspended = if self.held.is_some() {
            self.suspend_erase()?
        } else {
            false
        };
        let op = self.begin_erase(addr, size);
        self.resume_erase(suspended);
        let op = op?;
        let end = addr.saturating_add(op.total());
        if self.sched.tail() != Some(addr) && self.erases_pending() {
            // Not the continuation of the schedule: the earlier erases first.
            self.wait_erases(0, u32::MAX)?;
        }
        if !self.sched.pending() {
            self.sched.next = addr;
        }
        self.sched.end = end;
        if let (Ok(from), Ok(to)) = (self.offset(addr), self.offset(end)) {
            self.note(from, to, false);
        }
        self.changes.erased = self.changes.erased.wrapping_add(1);
        self.pump_erases();
        Ok((addr, op.total()))
    }

    /// Look at the erase running and start the next unit of the schedule when it is
    /// done: a bounded step (a status read, maybe one erase command).
    pub fn pump_erases(&mut self) {
        self.pump(!self.sched.quiet);
    }

    /// [`Agent::pump_erases`]; the next unit starts only if `start`.
    fn pump(&mut self, start: bool) {
        let Some(drive) = self.bg else {
            return;
        };
        if self.sched.running() {
            let (a, b) = self.sched.run;
            match drive(&mut self.flash, Cmd::Poll) {
                Ok(true) => return,
                Ok(false) => {
                    self.sched.run = (0, 0);
                    if let (Ok(from), Ok(to)) = (self.offset(a), self.offset(b)) {
                        self.note(from, to, true);
                    }
                    self.unit_done();
                }
                Err(()) => return self.erase_failed(a),
            }
        }
        if !self.sched.pending() || !start {
            return;
        }
        let at = self.sched.next;
        let end = self.sched.end;
        // Checked again before each unit, as a blocking erase does: a record change
        // since (a local attempt()) never lets it erase a slot in use.
        if self.free_range(at, u64::from(end), end - at).is_err() {
            return self.erase_failed(at);
        }
        let Ok(off) = self.offset(at) else {
            return self.erase_failed(at);
        };
        let (_, sector) = self.sector_at(at);
        let size = self.erase_size(off, sector, end - at);
        match drive(&mut self.flash, Cmd::Start(off, off.saturating_add(size))) {
            Ok(_) => {
                self.sched.run = (at, at.saturating_add(size));
                self.sched.next = at.saturating_add(size);
                self.changes.erased = self.changes.erased.wrapping_add(1);
            }
            Err(()) => self.erase_failed(at),
        }
    }

    /// The erase of the unit at `at` failed: the rest of the schedule is dropped, and the
    /// next request that needs the range hears of it.
    fn erase_failed(&mut self, at: u32) {
        let end = self.sched.end.max(self.sched.run.1).max(at);
        self.sched = Schedule {
            failed: (at, end),
            quiet: self.sched.quiet,
            ..Schedule::NONE
        };
    }

    /// Wait until no scheduled erase touches `addr..end` (starting the units before it
    /// in order); then report a failed erase in that range (or anywhere, for the whole
    /// flash) once.
    pub(crate) fn wait_erases(&mut self, addr: u32, end: u32) -> RequestResult<()> {
        let Some(drive) = self.bg else {
            return Ok(());
        };
        loop {
            // In a quiet section only a unit this range needs may start (it is waited
            // for at once).
            let needed = self.sched.pending() && self.sched.next < end;
            self.pump(!self.sched.quiet || needed);
            if !self.sched.touches(addr, end) {
                break;
            }
            if self.sched.running() {
                let at = self.sched.run.0;
                if drive(&mut self.flash, Cmd::Wait).is_err() {
                    self.erase_failed(at);
                }
            }
        }
        let (a, b) = self.sched.failed;
        if a < b && a < end && addr < b {
            self.sched.failed = (0, 0);
            return Err(Refusal::new(ErrorCode::FlashFailure, a));
        }
        Ok(())
    }

    /// Wait for every scheduled erase: before a request that reads or changes flash
    /// otherwise than a write elsewhere.
    pub(crate) fn settle_erases(&mut self) -> RequestResult<()> {
        self.wait_erases(0, u32::MAX)
    }

    /// [`Agent::settle_erases`], a failure kept for the request that needs its range
    /// (before a record entry: the record is not the erasing range, but the part takes
    /// no command while an erase runs).
    pub(crate) fn settle_erases_keeping_failure(&mut self) {
        if self.erases_pending() {
            let failed = self.sched.failed;
            let _ = self.settle_erases();
            self.sched.failed = failed;
        }
    }

    /// Begin a quiet section (the flash read or programmed outside the erasing range):
    /// the erase running, if any, is suspended and no unit starts until
    /// [`Agent::resume_erase`]. `true` if this call began it (not already in one) and its
    /// caller must end it.
    pub(crate) fn suspend_erase(&mut self) -> RequestResult<bool> {
        let Some(drive) = self.bg else {
            return Ok(false);
        };
        if self.sched.quiet {
            return Ok(false);
        }
        if self.sched.running() {
            let at = self.sched.run.0;
            if drive(&mut self.flash, Cmd::Suspend).is_err() {
                self.erase_failed(at);
                return Err(Refusal::new(ErrorCode::FlashFailure, at));
            }
        }
        self.sched.quiet = true;
        Ok(true)
    }

    /// End the quiet section [`Agent::suspend_erase`] began: the erase resumes (the part
    /// ignores a resume when none is suspended: one waited for meanwhile is done).
    pub(crate) fn resume_erase(&mut self, began: bool) {
        if let (true, Some(drive)) = (began, self.bg) {
            self.sched.quiet = false;
            if self.sched.running() {
                let at = self.sched.run.0;
                if drive(&mut self.flash, Cmd::Resume).is_err() {
                    self.erase_failed(at);
                }
            }
        }
    }

    /// Before work that writes `writes` (if any) and reads only what is written
    /// already (a stream's step): wait for the erases of that range, then suspend the
    /// erase running. `Ok(true)`: resume it afterwards ([`Agent::resume_erase`]).
    pub(crate) fn erase_guard(&mut self, writes: Option<(u32, u32)>) -> RequestResult<bool> {
        if self.bg.is_none() {
            return Ok(false);
        }
        if let Some((from, to)) = writes {
            self.wait_erases(from, to)?;
        }
        self.suspend_erase()
    }
}

/// Without the `background` feature: erases are waited for, and all of this is nothing
/// (no code, no RAM in a firmware that does not use it).
#[cfg(not(feature = "background"))]
impl<F: NorFlash> Agent<F> {
    /// Whether erases run in the background: never in this build.
    #[inline(always)]
    pub fn background_erase(&self) -> bool {
        false
    }

    /// Whether scheduled erases are left: never in this build.
    #[inline(always)]
    pub fn erases_pending(&self) -> bool {
        false
    }

    /// Erase now ([`Agent::erase_slot`]): this build has no background erases.
    pub fn schedule_erase(&mut self, addr: u32, size: u32) -> RequestResult<(u32, u32)> {
        self.erase_slot(addr, size, &mut |_, _| {})
    }

    /// Nothing to do in this build.
    #[inline(always)]
    pub fn pump_erases(&mut self) {}

    #[inline(always)]
    pub(crate) fn wait_erases(&mut self, _addr: u32, _end: u32) -> RequestResult<()> {
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn settle_erases(&mut self) -> RequestResult<()> {
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn settle_erases_keeping_failure(&mut self) {}

    #[inline(always)]
    pub(crate) fn suspend_erase(&mut self) -> RequestResult<bool> {
        Ok(false)
    }

    #[inline(always)]
    pub(crate) fn resume_erase(&mut self, _began: bool) {}

    #[inline(always)]
    pub(crate) fn erase_guard(&mut self, _writes: Option<(u32, u32)>) -> RequestResult<bool> {
        Ok(false)
    }
}
