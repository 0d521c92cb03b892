//! Small helpers over `ReadNorFlash`: reads at any offset and length, erased checks.

use embedded_storage::nor_flash::ReadNorFlash;

/// The largest flash write unit (`NorFlash::WRITE_SIZE`) the agent supports: its
/// comparison buffers are this long.
pub const MAX_WRITE_UNIT: usize = 256;

/// The largest flash read unit (`ReadNorFlash::READ_SIZE`) the agent supports.
pub const MAX_READ_UNIT: usize = 64;

/// Block erases (`AgentConfig::block_erases`) ascending, each a multiple of the
/// `sector` above it, and only on a flash whose sectors are alike (no `runs`).
pub(crate) fn blocks_valid(
    blocks: &[fota_protocol::BlockErase],
    sector: u32,
    runs: &[fota_protocol::SectorRun],
) -> bool {
    let mut prev = sector;
    for b in blocks {
        if b.size <= prev || !b.size.is_multiple_of(sector) {
            return false;
        }
        prev = b.size;
    }
    blocks.is_empty() || runs.is_empty()
}

/// What an erased byte reads as.
pub(crate) const ERASED: u8 = 0xFF;

/// Whether every byte reads as erased.
pub(crate) fn is_erased(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == ERASED)
}

/// Read `out.len()` bytes from flash offset `offset`, whatever `F::READ_SIZE` is
/// (configuration validation keeps it a power of two up to [`MAX_READ_UNIT`]).
///
/// On failure returns the offset that could not be read. Not inlined: the agent reads
/// from a dozen places, and one copy keeps the firmware small.
#[inline(never)]
pub(crate) fn read<F: ReadNorFlash>(flash: &mut F, offset: u32, out: &mut [u8]) -> Result<(), u32> {
    let unit = F::READ_SIZE;
    let aligned =
        unit <= 1 || ((offset as usize).is_multiple_of(unit) && out.len().is_multiple_of(unit));
    if aligned {
        return flash.read(offset, out).map_err(|_| offset);
    }
    // Unaligned: go through one read unit at a time.
    let mut scratch = [0u8; MAX_READ_UNIT];
    let window = scratch.get_mut(..unit).ok_or(offset)?;
    let mut done = 0usize;
    while done < out.len() {
        let pos = u32::try_from(done)
            .ok()
            .and_then(|d| offset.checked_add(d))
            .ok_or(offset)?;
        let skip = pos as usize % unit;
        // `skip < unit`, so this cannot underflow.
        let start = pos - skip as u32;
        flash.read(start, window).map_err(|_| pos)?;
        let take = (unit - skip).min(out.len() - done);
        let src = window.get(skip..skip + take).ok_or(pos)?;
        out.get_mut(done..done + take)
            .ok_or(pos)?
            .copy_from_slice(src);
        done += take;
    }
    Ok(())
}
