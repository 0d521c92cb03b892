//! What a port implements: one [`Board`] per chip. `docs/PORTING.md` walks through it.

use embedded_storage::nor_flash::NorFlash;
use fota_agent::LinkState;

/// Why the device last reset, as kept in RAM that survives a reset (most chips also
/// have a reset-cause register; QEMU has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ResetCause {
    /// Power on, or nothing recorded.
    PowerOn = 0,
    /// The firmware asked for it (the host's `restart`, a program giving its trial up).
    Restart = 0x5253_5452,
    /// The watchdog expired: something hung.
    Watchdog = 0x574E_4D49,
}

impl ResetCause {
    /// The cause a retained word holds (anything unknown is a power on).
    pub fn from_word(w: u32) -> ResetCause {
        match w {
            x if x == ResetCause::Restart as u32 => ResetCause::Restart,
            x if x == ResetCause::Watchdog as u32 => ResetCause::Watchdog,
            _ => ResetCause::PowerOn,
        }
    }

    /// How the boot lines name it.
    pub fn name(self) -> &'static str {
        match self {
            ResetCause::PowerOn => "power-on",
            ResetCause::Restart => "restart",
            ResetCause::Watchdog => "watchdog",
        }
    }
}

/// A few words that survive a reset (not a power cut): written by the NMI/watchdog
/// handler, the restart path and the VM; read at the next boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Retained {
    /// [`ResetCause`] as a word.
    pub cause: u32,
    /// Watchdog resets in a row that did not change the configuration (a hang in the
    /// confirmed program): at [`crate::SAFE_MODE_AFTER`] the program is not started.
    pub watchdog_streak: u32,
    /// A VM in its bootloader role passed control to the VM slot in the low byte
    /// (`HANDOFF | index`); that VM clears it once it has taken the boot decision. Still
    /// set at the next boot: the new VM died before it could record its trial.
    pub handoff: u32,
}

/// The high bytes of [`Retained::handoff`] while a handoff is open.
pub const HANDOFF: u32 = 0x4B4F_0000;

/// One chip: flash, serial line, clock, watchdog, reset and the jump to a VM.
///
/// Every method is called from the main loop only (thread mode); interrupt handlers are
/// the board's business (a UART receive interrupt filling a ring, a watchdog NMI that
/// writes [`ResetCause::Watchdog`] and must not kick the watchdog).
pub trait Board {
    /// The flash that holds the slots and the record; offset 0 is
    /// `AgentConfig::flash_base`.
    type Flash: NorFlash;

    // ---- serial line (the update link and the program's text) ----------------------

    /// Copy received bytes into `buf`; returns how many (0 when none). Never blocks.
    /// No byte may be lost while the firmware is busy: the receive path must hold
    /// `max_in_flight` frames (the window Info announces), or push back.
    fn read(&mut self, buf: &mut [u8]) -> usize;
    /// Send bytes (may block until they are queued).
    fn write(&mut self, bytes: &[u8]);
    /// Wait until every byte written has left.
    fn flush(&mut self);
    /// Switch the line to `baud` (after `flush`).
    fn set_baud(&mut self, baud: u32);

    // ---- time, watchdog, sleep ------------------------------------------------------

    /// Milliseconds since boot; wraps.
    fn now_ms(&mut self) -> u32;
    /// Reload the watchdog. The main loop calls it between bounded steps.
    fn kick_watchdog(&mut self);
    /// A plain function that reloads the watchdog, which the agent calls after every unit
    /// of a long request (a sector erased, 4 KiB hashed) and every record entry written.
    /// The watchdog's period must exceed the slowest unit (the longest sector erase) plus
    /// one pass of the main loop. `None`: the main loop's kick is enough (units far
    /// shorter than the period).
    fn unit_hook(&self) -> Option<fn()>;
    /// Nothing to do for up to `ms` milliseconds: sleep until an interrupt (a received
    /// byte, the tick), or return at once.
    fn idle(&mut self, ms: u32);

    // ---- reset and boot --------------------------------------------------------------

    /// What the retained words say now.
    fn retained(&mut self) -> Retained;
    /// Write the retained words.
    fn set_retained(&mut self, r: Retained);
    /// Reset the device: record `cause` in the retained words, then reset.
    fn reset(&mut self, cause: ResetCause) -> !;
    /// Start the VM whose vector table is at `addr` (already checked): quiesce every
    /// interrupt source, point the vector table there, load its stack pointer and jump
    /// to its reset handler.
    fn start_vm(&mut self, addr: u32) -> !;
    /// The program hung: stop serving anything and let the watchdog reset the device.
    fn hang(&mut self) -> !;
    /// The RAM a VM's initial stack pointer may point into: `[start, end]`.
    fn ram(&self) -> (u32, u32);
    /// The flash, by value (the agent owns it from boot on).
    fn take_flash(&mut self) -> Option<Self::Flash>;
    /// The agent link's state (frame buffers, reply cache: about 1.7 KiB), in a `static`
    /// built at compile time (`LinkState::new` is a `const fn`), so that it is never
    /// built or moved on the stack. Asked for once, by the VM that serves.
    fn link_state(&mut self) -> Option<&'static mut LinkState>;
}
