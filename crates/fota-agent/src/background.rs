//! Erases in the background: an optional capability of the board's flash driver, beside
//! `embedded-storage`'s `NorFlash`.
//!
//! A SPI NOR erases a 64 KiB block in about 150 ms (W25Q128JV); an agent that waits for it
//! reads nothing from the line meanwhile, and once its receive queue is full the line
//! stalls. A part with erase suspend (0x75 Suspend, 0x7A Resume on W25Q, GD25Q and MX25
//! parts) erases while the agent programs and reads elsewhere. A board whose driver
//! implements [`BackgroundErase`] turns it on with
//! [`Agent::enable_background_erase`](crate::Agent::enable_background_erase); then:
//!
//! * an `EraseSlot` is checked, scheduled and answered at once; its answer means "done
//!   before any later request touches this range". Ranges scheduled back to back (each
//!   starting where the last ends) queue up; the agent erases them one unit (a sector or
//!   a block) at a time, starting the next unit from its main-loop steps;
//! * a `WriteSlot` into a range still to erase waits for the erases up to it; one
//!   elsewhere suspends the erase running, programs, and resumes it;
//! * every other request that reads or changes flash (checksum, attempt, set record,
//!   accept, streams, restart) first waits for every scheduled erase;
//! * an erase that fails drops the rest of the schedule and is reported as
//!   `FlashFailure` (detail: the address of the unit) on the next request that needs
//!   it: a write into its range, or any request that waits for every erase.
//!
//! A board without it (the QEMU firmware's) keeps the blocking erase, one unit per step.
//! The agent never programs a unit it has not seen erased: writes wait for their unit's
//! erase, and the `NotErased` check of `write_slot` stays the safety net.

use embedded_storage::nor_flash::NorFlash;

/// A flash whose erases can run in the background, with erase suspend: what a SPI NOR
/// driver offers with the part's 0x75 (Suspend) and 0x7A (Resume) commands and its
/// status register's BUSY and SUS bits. Offsets are flash offsets, as `NorFlash`'s.
///
/// The agent starts at most one erase at a time, polls it, suspends it around a program
/// or a read of another range, resumes it, and waits for it before it touches the range
/// (see the [module docs](self)).
pub trait BackgroundErase: NorFlash {
    /// Begin erasing `from..to` (the ranges `NorFlash::erase` takes; the agent passes one
    /// sector or one declared block) and return at once.
    fn start_erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error>;
    /// Whether the erase begun last still runs (suspended counts): `false` once done.
    fn erase_running(&mut self) -> Result<bool, Self::Error>;
    /// Suspend the erase running (nothing if none runs), so that the agent can program
    /// or read outside its range. Returns once the part takes other commands (tSUS).
    fn suspend_erase(&mut self) -> Result<(), Self::Error>;
    /// Resume the suspended erase (nothing if none is suspended).
    fn resume_erase(&mut self) -> Result<(), Self::Error>;
    /// Wait until the erase running is done (resuming it if suspended).
    fn wait_erase(&mut self) -> Result<(), Self::Error>;
}

/// A command to the driver (one function pointer keeps the agent generic over any
/// `NorFlash`, with or without the capability).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    Start(u32, u32),
    Poll,
    Suspend,
    Resume,
    Wait,
}

/// The driver of a [`BackgroundErase`] flash: `Ok(true)` only for a `Poll` of an erase
/// that still runs.
pub(crate) type Driver<F> = fn(&mut F, Cmd) -> Result<bool, ()>;

/// [`Driver`] for `F`.
pub(crate) fn driver<F: BackgroundErase>(flash: &mut F, cmd: Cmd) -> Result<bool, ()> {
    let r = match cmd {
        Cmd::Start(from, to) => flash.start_erase(from, to).map(|()| false),
        Cmd::Poll => flash.erase_running(),
        Cmd::Suspend => flash.suspend_erase().map(|()| false),
        Cmd::Resume => flash.resume_erase().map(|()| false),
        Cmd::Wait => flash.wait_erase().map(|()| false),
    };
    r.map_err(|_| ())
}

/// The erases scheduled (addresses): the unit running, the range still to start, and a
/// failure not yet reported. All zeros: nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// The unit the flash erases now, `run.0..run.1` (empty: none).
    pub(crate) run: (u32, u32),
    /// The range scheduled and not started, `next..end` (empty: none).
    pub(crate) next: u32,
    pub(crate) end: u32,
    /// An erase that failed: its range `failed.0..failed.1` (empty: none).
    pub(crate) failed: (u32, u32),
    /// The agent is in a section that reads or programs the flash (the unit running, if
    /// any, suspended): no unit starts until it ends, unless the section waits for it.
    pub(crate) quiet: bool,
}

impl Schedule {
    pub(crate) const NONE: Schedule = Schedule {
        run: (0, 0),
        next: 0,
        end: 0,
        failed: (0, 0),
        quiet: false,
    };

    pub(crate) fn running(&self) -> bool {
        self.run.0 < self.run.1
    }

    pub(crate) fn pending(&self) -> bool {
        self.next < self.end
    }

    /// Whether an erase runs or waits to start that overlaps `addr..end`.
    pub(crate) fn touches(&self, addr: u32, end: u32) -> bool {
        let over = |a: u32, b: u32| a < b && a < end && addr < b;
        over(self.run.0, self.run.1) || over(self.next, self.end)
    }

    /// Where scheduled work ends (for a range that continues it), if any.
    pub(crate) fn tail(&self) -> Option<u32> {
        if self.pending() {
            Some(self.end)
        } else if self.running() {
            Some(self.run.1)
        } else {
            None
        }
    }
}
