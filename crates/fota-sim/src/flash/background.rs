//! Erases that run in the background, with erase suspend: a SPI NOR's 0x75 Suspend and
//! 0x7A Resume (W25Q128JV and most W25Q, GD25Q, MX25 parts).
//!
//! [`SimFlash::start_erase`] begins an erase and returns at once; the part erases while
//! the device does other work. The model follows the data sheet:
//!
//! * **Time.** An erase takes the same time as a blocking one ([`FlashTiming`]'s sector
//!   or block erase), and it progresses only while it runs: [`SimFlash::advance`] gives
//!   it the time that passed outside the flash's own operations (a device model calls it
//!   with its clock), [`SimFlash::wait_erase`] charges what is left as busy time.
//!   Suspended, it does not progress.
//! * **Suspend** ([`SimFlash::suspend_erase`]): the part takes up to tSUS to stop (W25Q128JV
//!   AC characteristics: 20 µs max), charged as busy time, with no progress. Winbond's
//!   data sheets (W25Q32BV 7.2.27, the same text in the W25Q128JV's) also require the
//!   Suspend "not issued earlier than a minimum of time of tSUS following the preceding
//!   Resume"; they give no figure for how much of the erase is done in that time. Other
//!   parts do: Microchip's SST26 require 1 000 µs from Resume to the next Suspend (tLRS),
//!   Eon's EN25S 1 ms. So the model is conservative: a suspend less than
//!   [`EraseSuspend::min_run_ns`] (1 ms) after the last resume first waits until then,
//!   the erase progressing meanwhile, so an erase suspended for every page still
//!   finishes.
//! * **Resume** ([`SimFlash::resume_erase`]): the erase goes on; the part sets BUSY again
//!   within 200 ns, but whether the interrupted erase pulse is redone is not given, so
//!   each resume costs the erase [`EraseSuspend::resume_ns`] (20 µs, a guess on the
//!   safe side) of extra time.
//! * **Refusals**, as on the part: while an erase runs and is not suspended, every
//!   program, read or erase fails with [`FlashError::Busy`] (the part ignores them; a
//!   driver must suspend first); while it is suspended, a program or read that touches
//!   the range being erased fails with [`FlashError::Erasing`] (programs there are
//!   ignored, reads return undefined data), and another erase with [`FlashError::Busy`]
//!   (erase commands are not allowed during Erase Suspend).
//!
//! # Power cuts
//!
//! The step model of the parent module covers the new order: the erase's bytes are
//! applied when it starts, one step each, a cut among them tearing it exactly as a
//! blocking erase is torn (bytes before the cut erased, the one at the cut torn, the
//! rest as they were); its *time* is charged as it progresses. So a cut at any step of
//! an update with background erases leaves one of: the erase torn and nothing after it
//! done; or the erase's range erased and the programs that ran while it was (in
//! reality) still going on done, up to a torn one. What the model does not produce is
//! the real part's "range partly erased *and* later programs elsewhere done" (a cut
//! during a resumed erase). That outcome differs from the modelled ones only inside the
//! range being erased, which lies ahead of everything the update has written (an agent
//! never programs it before the erase is done): after any cut the update resumes by
//! comparing every sector's MD5 with the image, and a sector the cut left partly erased
//! differs and is erased and written again, exactly as one the model tears. The slot
//! being erased is one no configuration uses, so what the erase left there never runs.
//! After a cut the erase is forgotten (a power cycle resets the part and its suspend
//! state).

#[cfg(doc)]
use super::FlashTiming;
use super::{FlashError, SimFlash};

/// An erase in progress ([`SimFlash::start_erase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Running {
    /// The flash range being erased.
    pub(super) from: u32,
    pub(super) to: u32,
    /// Erase time still to run.
    left_ns: u64,
    suspended: bool,
    /// Time run since the last resume (or the start).
    since_resume_ns: u64,
}

/// The figures of a part's erase suspend and resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseSuspend {
    /// Time from the Suspend command until the part takes other commands (tSUS, max).
    pub suspend_ns: u64,
    /// Extra erase time each resume costs (the interrupted pulse redone).
    pub resume_ns: u64,
    /// The least time an erase must run after a Resume before the next Suspend.
    pub min_run_ns: u64,
}

impl EraseSuspend {
    /// A W25Q128JV: tSUS 20 µs max; 20 µs of erase lost per resume and 1 ms from a
    /// Resume to the next Suspend (conservative figures: see the module docs).
    pub const W25Q128JV: EraseSuspend = EraseSuspend {
        suspend_ns: 20_000,
        resume_ns: 20_000,
        min_run_ns: 1_000_000,
    };
}

impl Default for EraseSuspend {
    fn default() -> Self {
        EraseSuspend::W25Q128JV
    }
}

/// The background erase's part of a [`SimFlash`]: the figures and the erase running.
#[derive(Debug, Clone, Default)]
pub(super) struct Background {
    pub(super) figures: EraseSuspend,
    pub(super) running: Option<Running>,
    /// Suspends done (statistics).
    suspends: u64,
}

impl Background {
    /// Whether a program or read of `start..end` may run now (see the module docs).
    pub(super) fn check(&self, start: usize, end: usize) -> Result<(), FlashError> {
        match self.running {
            None => Ok(()),
            Some(r) if !r.suspended => Err(FlashError::Busy),
            Some(r) if start < r.to as usize && (r.from as usize) < end => {
                Err(FlashError::Erasing {
                    offset: (start as u32).max(r.from),
                })
            }
            Some(_) => Ok(()),
        }
    }
}

impl<const WRITE: usize, const SECTOR: usize> SimFlash<WRITE, SECTOR> {
    /// The same flash with these erase suspend figures (builder style).
    pub fn with_erase_suspend(mut self, figures: EraseSuspend) -> Self {
        self.bg.figures = figures;
        self
    }

    /// The erase suspend figures.
    pub fn erase_suspend(&self) -> EraseSuspend {
        self.bg.figures
    }

    /// Begin erasing `from..to` (the same ranges as [`NorFlash::erase`]) and return at
    /// once: the erase runs in the background (see the module docs). Its bytes are
    /// erased now (a cut among them tears it); its time runs with [`SimFlash::advance`].
    /// Fails with [`FlashError::Busy`] while another erase runs or is suspended.
    ///
    /// [`NorFlash::erase`]: embedded_storage::nor_flash::NorFlash::erase
    pub fn start_erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.check_power()?;
        if self.bg.running.is_some() {
            return Err(FlashError::Busy);
        }
        let units = self.plan_erase(from, to)?;
        let ns = self.apply_erase(&units, false)?;
        if ns > 0 {
            self.bg.running = Some(Running {
                from,
                to,
                left_ns: ns,
                suspended: false,
                since_resume_ns: 0,
            });
        }
        Ok(())
    }

    /// Let `ns` of time pass outside the flash's own operations: a running erase
    /// progresses by it.
    pub fn advance(&mut self, ns: u64) {
        if let Some(r) = &mut self.bg.running
            && !r.suspended
        {
            r.left_ns = r.left_ns.saturating_sub(ns);
            r.since_resume_ns = r.since_resume_ns.saturating_add(ns);
        }
    }

    /// The background erase (`from`, `to`, erase time left, suspended), if one runs or
    /// is suspended (one whose time has run out counts until polled).
    pub fn background_erase(&self) -> Option<(u32, u32, u64, bool)> {
        self.bg
            .running
            .map(|r| (r.from, r.to, r.left_ns, r.suspended))
    }

    /// Suspends done so far.
    pub fn suspends(&self) -> u64 {
        self.bg.suspends
    }

    /// Whether the background erase still runs (the status register's BUSY, or SUS):
    /// `false` once it is done (then it is forgotten) or when none was started.
    pub fn poll_erase(&mut self) -> Result<bool, FlashError> {
        self.check_power()?;
        match self.bg.running {
            Some(r) if r.left_ns > 0 || r.suspended => Ok(true),
            _ => {
                self.bg.running = None;
                Ok(false)
            }
        }
    }

    /// Suspend the background erase (0x75), so that other ranges can be programmed and
    /// read. Nothing happens when none runs or it is suspended already, as on the part.
    pub fn suspend_erase(&mut self) -> Result<(), FlashError> {
        self.check_power()?;
        let figures = self.bg.figures;
        let Some(r) = &mut self.bg.running else {
            return Ok(());
        };
        if r.suspended {
            return Ok(());
        }
        // Too soon after a resume: wait, the erase running meanwhile.
        let wait = figures
            .min_run_ns
            .saturating_sub(r.since_resume_ns)
            .min(r.left_ns);
        r.left_ns -= wait;
        r.since_resume_ns += wait;
        self.busy_ns += wait;
        if r.left_ns == 0 {
            // It ended while we waited: nothing to suspend.
            self.bg.running = None;
            return Ok(());
        }
        r.suspended = true;
        self.busy_ns += figures.suspend_ns;
        self.bg.suspends += 1;
        Ok(())
    }

    /// Resume the suspended erase (0x7A). Nothing happens when none is suspended.
    pub fn resume_erase(&mut self) -> Result<(), FlashError> {
        self.check_power()?;
        let figures = self.bg.figures;
        if let Some(r) = &mut self.bg.running
            && r.suspended
        {
            r.suspended = false;
            r.since_resume_ns = 0;
            r.left_ns += figures.resume_ns;
        }
        Ok(())
    }

    /// Wait for the background erase to end (resuming it if suspended): its time left is
    /// charged as busy time.
    pub fn wait_erase(&mut self) -> Result<(), FlashError> {
        self.resume_erase()?;
        if let Some(r) = self.bg.running.take() {
            self.busy_ns += r.left_ns;
        }
        Ok(())
    }

    /// Forget the background erase (the part lost power).
    pub(super) fn drop_erase(&mut self) {
        self.bg.running = None;
    }
}

/// The agent's view of the part's erase suspend (crate `fota-agent`'s optional
/// capability), so that update code runs on the model with background erases.
impl<const WRITE: usize, const SECTOR: usize> fota_agent::BackgroundErase
    for SimFlash<WRITE, SECTOR>
{
    fn start_erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        SimFlash::start_erase(self, from, to)
    }
    fn erase_running(&mut self) -> Result<bool, FlashError> {
        self.poll_erase()
    }
    fn suspend_erase(&mut self) -> Result<(), FlashError> {
        SimFlash::suspend_erase(self)
    }
    fn resume_erase(&mut self) -> Result<(), FlashError> {
        SimFlash::resume_erase(self)
    }
    fn wait_erase(&mut self) -> Result<(), FlashError> {
        SimFlash::wait_erase(self)
    }
}

#[cfg(test)]
mod tests;
