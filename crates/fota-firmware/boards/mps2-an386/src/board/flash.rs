//! NOR flash rules over QEMU's file-backed RAM.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::Ordering;

use super::layout::*;
use super::system::MILLIS;

// ---- flash: NOR rules over file-backed RAM ------------------------------------------------

/// Why the flash refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NorError {
    /// Offset or length not a multiple of the unit.
    Align,
    /// Outside the region.
    Bounds,
    /// Programming would have to turn a 0 bit into 1: erase first.
    NotErased,
}

impl NorFlashError for NorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            NorError::Align => NorFlashErrorKind::NotAligned,
            NorError::Bounds => NorFlashErrorKind::OutOfBounds,
            NorError::NotErased => NorFlashErrorKind::Other,
        }
    }
}

/// NOR flash over the PSRAM region. QEMU's RAM takes any write, so the rules of a real
/// part are enforced here: erase whole sectors to 0xFF, program whole 4-byte units and
/// only clear bits (a program that would set one is refused before anything changes,
/// where a real part would silently corrupt). With `fota qemu --erase-ms N` each sector
/// erase takes N ms, the CPU busy (as on a part whose flash stalls it), interrupts
/// still served.
pub struct PsramFlash(pub(crate) ());

impl PsramFlash {
    fn addr(offset: u32, len: usize) -> Result<usize, NorError> {
        match (offset as usize).checked_add(len) {
            Some(end) if end <= FLASH_SIZE as usize => Ok(FLASH_BASE as usize + offset as usize),
            _ => Err(NorError::Bounds),
        }
    }
}

impl ErrorType for PsramFlash {
    type Error = NorError;
}

impl ReadNorFlash for PsramFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorError> {
        let a = Self::addr(offset, bytes.len())?;
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: inside the PSRAM region checked above.
            *b = unsafe { read_volatile((a + i) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        FLASH_SIZE as usize
    }
}

impl NorFlash for PsramFlash {
    const WRITE_SIZE: usize = WRITE as usize;
    const ERASE_SIZE: usize = SECTOR as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorError> {
        if !from.is_multiple_of(SECTOR) || !to.is_multiple_of(SECTOR) || from > to {
            return Err(NorError::Align);
        }
        // The one-function change `fota bench --one-function` measures: an empty range
        // returns before the range check and the wait.
        #[cfg(feature = "one-function-change")]
        if from == to {
            return Ok(());
        }
        let a = Self::addr(from, (to - from) as usize)?;
        let ms = erase_ms();
        if ms > 0 {
            for _ in 0..(to - from) / SECTOR {
                let start = MILLIS.load(Ordering::Relaxed);
                while MILLIS.load(Ordering::Relaxed).wrapping_sub(start) < ms {
                    cortex_m::asm::nop();
                }
            }
        }
        for w in 0..(to - from) as usize / 4 {
            // SAFETY: inside the region.
            unsafe { write_volatile((a + 4 * w) as *mut u32, u32::MAX) };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorError> {
        if !offset.is_multiple_of(WRITE) || !bytes.len().is_multiple_of(WRITE as usize) {
            return Err(NorError::Align);
        }
        let a = Self::addr(offset, bytes.len())?;
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: inside the region.
            let old = unsafe { read_volatile((a + i) as *const u8) };
            if old & b != b {
                return Err(NorError::NotErased);
            }
        }
        for (i, &b) in bytes.iter().enumerate() {
            let p = (a + i) as *mut u8;
            // SAFETY: inside the region.
            unsafe { write_volatile(p, read_volatile(p) & b) };
        }
        Ok(())
    }
}
