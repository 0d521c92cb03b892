//! A flash that can pretend: in dry mode erases and writes land in a small RAM overlay
//! and reads see them, so the agent's own boot decision can be run to learn what it
//! would start without changing the record. The stages that only pass control on (the
//! boot stage, a VM acting as bootloader) run it dry; the VM that runs takes it for real.
//! One type for both modes keeps a single copy of the agent in the image.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Writes the overlay holds: the boot decision appends one record entry.
const WRITES: usize = 2;

/// A flash that either passes everything through or, dry, keeps changes in RAM.
/// `W` bytes per overlaid write: at least one record entry on flash (20 bytes rounded up
/// to the write size).
#[derive(Debug)]
pub struct ShadowFlash<F, const W: usize = 32> {
    inner: F,
    dry: bool,
    erased: Option<(u32, u32)>,
    writes: [(u32, u16, [u8; W]); WRITES],
    used: usize,
}

/// The flash's own error, or the overlay is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowError<E> {
    /// From the flash.
    Flash(E),
    /// A dry-run change that does not fit the overlay.
    OverlayFull,
}

impl<E: NorFlashError> NorFlashError for ShadowError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            ShadowError::Flash(e) => e.kind(),
            ShadowError::OverlayFull => NorFlashErrorKind::Other,
        }
    }
}

impl<F: NorFlash, const W: usize> ShadowFlash<F, W> {
    /// Pass everything through.
    pub fn new(inner: F) -> Self {
        ShadowFlash {
            inner,
            dry: false,
            erased: None,
            writes: [(0, 0, [0xFF; W]); WRITES],
            used: 0,
        }
    }

    /// Start pretending: from now on nothing reaches the flash.
    pub fn dry(mut self) -> Self {
        self.dry = true;
        self
    }

    /// Drop everything pretended and pass through again.
    pub fn real(mut self) -> Self {
        self.dry = false;
        self.erased = None;
        self.used = 0;
        self
    }

    /// The flash.
    pub fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }
}

impl<F: NorFlash, const W: usize> ErrorType for ShadowFlash<F, W> {
    type Error = ShadowError<F::Error>;
}

impl<F: NorFlash, const W: usize> ReadNorFlash for ShadowFlash<F, W> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read(offset, bytes).map_err(ShadowError::Flash)?;
        if !self.dry {
            return Ok(());
        }
        let end = offset as u64 + bytes.len() as u64;
        let overlap = |from: u32, to: u64| (u64::from(from).max(offset as u64), to.min(end));
        if let Some((from, to)) = self.erased {
            let (a, b) = overlap(from, u64::from(to));
            for i in a..b {
                if let Some(x) = bytes.get_mut((i - offset as u64) as usize) {
                    *x = 0xFF;
                }
            }
        }
        for (at, len, data) in self.writes.iter().take(self.used) {
            let (a, b) = overlap(*at, u64::from(*at) + u64::from(*len));
            for i in a..b {
                let src = data.get((i - u64::from(*at)) as usize).copied();
                if let (Some(x), Some(s)) = (bytes.get_mut((i - offset as u64) as usize), src) {
                    *x &= s;
                }
            }
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl<F: NorFlash, const W: usize> NorFlash for ShadowFlash<F, W> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if !self.dry {
            return self.inner.erase(from, to).map_err(ShadowError::Flash);
        }
        if self.erased.is_some() {
            return Err(ShadowError::OverlayFull);
        }
        // Writes before the erase are gone with it.
        self.used = 0;
        self.erased = Some((from, to));
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !self.dry {
            return self.inner.write(offset, bytes).map_err(ShadowError::Flash);
        }
        let slot = self.writes.get_mut(self.used);
        match (slot, u16::try_from(bytes.len())) {
            (Some((at, len, data)), Ok(n)) if bytes.len() <= W => {
                *at = offset;
                *len = n;
                data.fill(0xFF);
                data[..bytes.len()].copy_from_slice(bytes);
                self.used += 1;
                Ok(())
            }
            _ => Err(ShadowError::OverlayFull),
        }
    }
}
