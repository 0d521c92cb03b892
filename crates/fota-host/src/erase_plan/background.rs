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
    spans_of(info.sector_size, &blocks, sectors, erase)
}

/// [`spans`] for sectors of `sector` bytes and `blocks` (bytes, erase time).
pub(crate) fn spans_of(
    sector: u32,
    blocks: &[(u32, Duration)],
    sectors: &[(u32, u32)],
    erase: &[bool],
) -> Vec<usize> {
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
