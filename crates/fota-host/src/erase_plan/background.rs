//! The erases of a raw image for an agent that erases in the background (`Info` tag 11,
//! docs/PROTOCOL.md 3.3): its `EraseSlot`s are answered at once and run while the
//! blocks stream, the agent suspending the erase to program elsewhere, so an erase no
//! longer stalls the line and the flash's work hides under it.
//!
//! The plan: every erase is sent first, ahead of the first block (the agent schedules
//! ranges that follow each other and erases them in order, a unit at a time, so the
//! erase of block k + 1 runs while block k's frames arrive); each unit is the largest
//! declared block that fits in the dirty sectors, sectors only where no block fits. The
//! first unit is the smallest block that starts the range: the first frames wait for it,
//! and the blocks after it run ahead of the line anyway (a W25Q128JV's 32 KiB block in
//! 120 ms, then 64 KiB blocks in 150 ms each, against about 0.7 s of a 921600-baud line
//! per 64 KiB).

use core::time::Duration;

use fota_protocol::Info;

/// For each sector, one past the last sector of the erase unit that starts there (`s +
/// 1`: the sector alone): the units described in the module docs, over `sectors`
/// (`(flash address, bytes)`, in order) of which those marked in `erase` are erased.
pub(crate) fn spans(info: &Info, sectors: &[(u32, u32)], erase: &[bool]) -> Vec<usize> {
    let blocks: Vec<(u32, Duration)> = (info.block_erases.iter())
        .map(|b| (b.size, Duration::from_millis(u64::from(b.ms))))
        .collect();
    let sector_erase = Duration::from_millis(u64::from(info.sector_erase_ms.unwrap_or(0)));
    spans_of(info.sector_size, sector_erase, &blocks, sectors, erase)
}

/// [`spans`] for sectors of `sector` bytes erased in `sector_erase` and `blocks`
/// (bytes, erase time). A block is taken only where its declared time is below its
/// sectors' (a device's figures are data: a block declared slower, or a device that
/// declares no sector time, gets sectors).
pub(crate) fn spans_of(
    sector: u32,
    sector_erase: Duration,
    blocks: &[(u32, Duration)],
    sectors: &[(u32, u32)],
    erase: &[bool],
) -> Vec<usize> {
    let blocks: Vec<(u32, Duration)> = (blocks.iter().copied())
        .filter(|&(size, t)| {
            let n = size.checked_div(sector).unwrap_or(0);
            t < sector_erase.saturating_mul(n)
        })
        .collect();
    let mut spans: Vec<usize> = (1..=sectors.len()).collect();
    // The sectors from `s` that one block of `size` would cover, if they are all to be
    // erased, contiguous and of `sector` bytes.
    let fits = |s: usize, size: u32| -> Option<usize> {
        let (addr, _) = sectors[s];
        if sector == 0 || size <= sector || !addr.is_multiple_of(size) {
            return None;
        }
        let n = (size / sector) as usize;
        let run = sectors.get(s..s + n)?;
        let whole = run.iter().enumerate().all(|(i, &(a, len))| {
            len == sector && u64::from(a) == u64::from(addr) + i as u64 * u64::from(sector)
        }) && erase[s..s + n].iter().all(|&e| e);
        whole.then_some(s + n)
    };
    let mut first = true;
    let mut s = 0;
    while s < sectors.len() {
        if !erase[s] {
            s += 1;
            continue;
        }
        let mut sizes: Vec<u32> = blocks.iter().map(|b| b.0).collect();
        sizes.sort_unstable();
        if !first {
            sizes.reverse();
        }
        let end = sizes
            .iter()
            .find_map(|&size| fits(s, size))
            .unwrap_or(s + 1);
        spans[s] = end;
        first = false;
        s = end;
    }
    spans
}

/// The modelled time of a raw transfer to a background-erasing agent, from its first
/// request to the last answer: the first unit's erase (the first frames wait for it,
/// the line stalling beyond what the queue holds), then the longer of the line's time
/// for `line_bytes` and the flash's work after the first unit (the other erases,
/// `program_bytes` programmed at `program_ns` a byte, a suspend per frame), and a round
/// trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Transfer {
    /// The first unit's erase.
    pub(crate) first: Duration,
    /// The other units' erases.
    pub(crate) rest: Duration,
    /// The line's time for the bytes sent.
    pub(crate) line: Duration,
    /// The flash's programming time.
    pub(crate) program: Duration,
    /// The frames sent (each suspends the erase running once).
    pub(crate) frames: u64,
    /// The queue's worth of the line (the bytes it holds, and the frame being handled).
    pub(crate) queue: Duration,
    /// A request's round trip.
    pub(crate) round_trip: Duration,
}

/// A suspend and resume around a frame's programs: the W25Q128JV's tSUS (20 µs) and the
/// erase time a resume may cost (20 µs), the figures of the simulated part
/// (`fota_sim::flash::background`).
const SUSPEND_NS: u64 = 40_000;

impl Transfer {
    pub(crate) fn time(&self) -> Duration {
        let wait = self
            .round_trip
            .mul_f64(crate::erase_plan::STALL_ROUND_TRIPS);
        let stall = (self.first + wait).saturating_sub(self.queue);
        let flash = self.rest + self.program + Duration::from_nanos(SUSPEND_NS * self.frames);
        stall + self.line.max(flash) + self.round_trip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulated W25Q128JV's Info (crate::erase_plan::tests::info), with tag 11.
    fn info() -> Info {
        let mut i = crate::erase_plan::tests::info(true);
        i.background_erase = true;
        i
    }

    /// `n` sectors of 4 KiB from `from`.
    fn sectors(from: u32, n: u32) -> Vec<(u32, u32)> {
        (0..n).map(|s| (from + s * 4096, 4096)).collect()
    }

    /// The units of `spans`: (first sector, sectors).
    fn units(spans: &[usize], erase: &[bool]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut s = 0;
        while s < spans.len() {
            if erase[s] {
                out.push((s, spans[s] - s));
                s = spans[s];
            } else {
                s += 1;
            }
        }
        out
    }

    #[test]
    fn the_first_unit_is_the_smallest_block_and_the_rest_the_largest() {
        // 256 KiB from a 64 KiB boundary: a 32 KiB block first (the first frames wait
        // 120 ms for it, not 150), then a 32 KiB block to the next 64 KiB boundary, then
        // 64 KiB blocks.
        let erase = vec![true; 64];
        let planned = spans(&info(), &sectors(0x50000, 64), &erase);
        assert_eq!(
            units(&planned, &erase),
            [(0, 8), (8, 8), (16, 16), (32, 16), (48, 16)]
        );
    }

    #[test]
    fn sectors_only_where_no_block_fits() {
        // A sector already there (not erased) in the first block, and a range that ends
        // 12 KiB past a 64 KiB boundary: blocks where every sector is to erase.
        let mut erase = vec![true; 19];
        erase[3] = false;
        let planned = spans(&info(), &sectors(0x50000, 19), &erase);
        assert_eq!(
            units(&planned, &erase),
            [
                (0, 1),
                (1, 1),
                (2, 1),
                (4, 1),
                (5, 1),
                (6, 1),
                (7, 1),
                (8, 8),
                (16, 1),
                (17, 1),
                (18, 1)
            ]
        );
        // Unaligned: the range starts 4 KiB into a block.
        let erase = vec![true; 20];
        let planned = spans(&info(), &sectors(0x51000, 20), &erase);
        let mut want: Vec<(usize, usize)> = (0..7).map(|s| (s, 1)).collect();
        // The 32 KiB block at 0x58000; no block fits from 0x60000 to the end.
        want.push((7, 8));
        want.extend((15..20).map(|s| (s, 1)));
        assert_eq!(units(&planned, &erase), want);
    }

    #[test]
    fn a_block_declared_slower_than_its_sectors_is_not_taken() {
        let mut i = info();
        i.block_erases[0].ms = 45 * 8;
        i.block_erases[1].ms = u32::MAX;
        let erase = vec![true; 16];
        let planned = spans(&i, &sectors(0x50000, 16), &erase);
        assert_eq!(
            units(&planned, &erase),
            (0..16).map(|s| (s, 1)).collect::<Vec<_>>()
        );
        // No sector time declared: nothing to weigh a block against.
        i.sector_erase_ms = None;
        i.block_erases[0].ms = 1;
        let planned = spans(&i, &sectors(0x50000, 16), &erase);
        assert_eq!(units(&planned, &erase).len(), 16);
    }

    #[test]
    fn only_the_first_erase_holds_the_line_up() {
        // 256 KiB at 921600 baud, 16 ms each way, a 5,354-byte queue: the line's 2.89 s,
        // and the first 32 KiB block's 120 ms less the 70 ms the queue and the frame
        // being handled hold, plus the round trip the line waits after it.
        let t = Transfer {
            first: Duration::from_millis(120),
            rest: Duration::from_millis(570),
            line: Duration::from_millis(2894),
            program: Duration::from_millis(717),
            frames: 256,
            queue: Duration::from_millis(69),
            round_trip: Duration::from_millis(32),
        };
        let stall = 120 + 38 - 69;
        assert_eq!(t.time().as_millis(), 2894 + stall + 32);
        // Where the flash's work is longer than the line, it sets the pace.
        let slow = Transfer {
            line: Duration::from_millis(500),
            ..t
        };
        assert_eq!(slow.time().as_millis(), stall + 570 + 717 + 10 + 32);
    }
}
