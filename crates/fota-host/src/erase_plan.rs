//! Which dirty sectors to erase as whole blocks (`Info` tag 10), and for a raw image
//! where each erase goes among the writes, without I/O.
//!
//! A block erase does a block's sectors' work in a fraction of their time (a W25Q128JV:
//! 150 ms for 64 KiB against 16 x 45 ms), but the agent answers nothing while it runs:
//! its receive queue (`Info` tag 8) absorbs the line meanwhile, and once it is full the
//! line stalls for the rest of the erase. A 45 ms sector erase hides under a 5 KiB queue
//! at 921600 baud (58 ms of the line) when the round trip is short; a 150 ms block erase
//! stalls it about 90 ms. So a block erase pays where the flash sets the pace and costs
//! where the line does. The plan weighs it by a model.
//!
//! * A stream ([`units`]) spreads its erases over all its frames: the update takes the
//!   longer of the flash's work (each erase, every byte programmed) and the line's time
//!   for the bytes sent plus the stalls of the erases that outlast the queue. Blocks are
//!   taken one at a time, the one that shortens that most first, while one does (a tie
//!   takes the block: the same time, less flash work).
//! * A raw image ([`raw_plan`]) is modelled request by request (the host's window, the
//!   line, the agent's queue and work, the answers' latency), which also chooses where
//!   each erase goes: one sector ahead, or as early as the agent's backlog hides it, so
//!   that the flash's spare time behind a block (whose programs leave it mostly idle)
//!   erases the sectors further on. At 921600 baud and 1 ms that mixes a few blocks with
//!   sectors erased early (neither extreme reaches the line's pace); at 115200 baud, or
//!   with a 16 ms latency (whose round trip keeps most of the queue in flight, so even a
//!   sector erase stalls the line), every block.
//!
//! A device that declares no sector erase time (tag 2) gets no block: there is nothing
//! to weigh it against.

use core::time::Duration;

use fota_protocol::Info;

/// A typical SPI NOR flash's programming time, for a device whose `Info` does not say
/// it: 0.7 ms a 256-byte page (the W25Q128JV's typical page program), 2.7 µs a byte.
pub const DEFAULT_PROGRAM_NS_PER_BYTE: u64 = 700_000 / 256;

/// Round trips the line waits after an erase that outlasts the queue, for the answers
/// that let the host send again: 1.2, calibrated on the micro:bit runtime's streams at
/// 921600 baud (`fota bench --image`): with 1.0 the plan took too few blocks at 16 ms
/// (2.23 s measured against 2.17 s with 1.2 and 1.5), with 1.5 the default codec's model
/// ([`crate::codec::Pace`], which uses the same stall) came out 5 % over the measured
/// stream, with 1.2 within 2 %.
pub(crate) const STALL_ROUND_TRIPS: f64 = 1.2;

/// Add the erase of one unit of `sectors` sectors to `report`: by the declared time of
/// the block it is (`Info` tag 10), else by each sector's (tag 2).
pub(crate) fn count_unit(report: &mut crate::report::Report, info: &Info, sectors: u32) {
    let size = sectors.saturating_mul(info.sector_size);
    match info
        .block_erases
        .iter()
        .find(|b| sectors > 1 && b.size == size)
    {
        Some(b) => {
            report.erased_sectors += sectors;
            report.device_erase_time += Duration::from_millis(u64::from(b.ms));
        }
        None => crate::report::count_erases(report, info, sectors),
    }
}

/// What the model needs of the link and the transfer besides `Info`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Load {
    /// The line's baud rate (8N1); `None` on a link without one (the flash's work alone
    /// decides: every block that fits is taken).
    pub(crate) baud: Option<u32>,
    /// A request's round trip, as the host measured it (zero if not yet).
    pub(crate) round_trip: Duration,
    /// Bytes the transfer puts on the line (frames included).
    pub(crate) line_bytes: u64,
    /// Bytes it programs.
    pub(crate) program_bytes: u64,
    /// The erases are spread over the whole transfer (a stream's,
    /// crate::stream_erases), not each just ahead of the sector before its own (raw,
    /// crate::erase_ahead).
    pub(crate) spread: bool,
}

/// The blocks that may replace runs of `dirty` sectors (see [`units`]): `(first, end,
/// erase time in ns)`, index ranges into `dirty`, of every declared size (they overlap).
fn candidates(info: &Info, dirty: &[(u32, u32)]) -> Vec<(usize, usize, u64)> {
    let blocks: Vec<(u32, u64)> = info
        .block_erases
        .iter()
        .map(|b| (b.size, u64::from(b.ms) * 1_000_000))
        .collect();
    candidates_of(info.sector_size, &blocks, dirty)
}

/// [`candidates`] for sectors of `sector_size` and `blocks` of (bytes, erase time in ns).
fn candidates_of(
    sector_size: u32,
    blocks: &[(u32, u64)],
    dirty: &[(u32, u32)],
) -> Vec<(usize, usize, u64)> {
    let mut candidates: Vec<(usize, usize, u64)> = Vec::new();
    for &(size, ns) in blocks {
        // A device's figures are data: a block no larger than a sector is ignored, and
        // one of another size than whole sectors matches no run of them.
        if size <= sector_size || sector_size == 0 {
            continue;
        }
        let mut i = 0;
        while i < dirty.len() {
            let (addr, _) = dirty[i];
            if !addr.is_multiple_of(size) {
                i += 1;
                continue;
            }
            let mut end = u64::from(addr);
            let mut j = i;
            while j < dirty.len()
                && u64::from(dirty[j].0) == end
                && end < u64::from(addr) + u64::from(size)
            {
                end += u64::from(dirty[j].1);
                j += 1;
            }
            if end == u64::from(addr) + u64::from(size) {
                candidates.push((i, j, ns));
                i = j;
            } else {
                i += 1;
            }
        }
    }
    candidates
}

/// The erase units of `dirty` sectors, given as `(flash address, bytes)` in address
/// order: `(first, end)` index ranges into it, each one `EraseSlot`. A unit of more
/// than one sector is a block the device declares, aligned on its size, whose sectors
/// are all in `dirty` and follow each other with no gap (so it never reaches outside
/// what the transfer erases, which lies in one slot).
pub(crate) fn units(info: &Info, dirty: &[(u32, u32)], load: &Load) -> Vec<(usize, usize)> {
    let sector_ms = u64::from(info.sector_erase_ms.unwrap_or(0));
    let candidates = candidates(info, dirty);
    let sector_ns = sector_ms * 1_000_000;
    // The line's time a byte, and the queue's worth of the line.
    let (byte_ns, queue_ns) = match load.baud {
        Some(baud) if baud > 0 => {
            let byte = 10e9 / f64::from(baud);
            let queue = info.rx_window.map_or_else(
                || f64::from(info.max_in_flight) * (f64::from(info.max_write) + 18.0),
                f64::from,
            );
            (byte, queue * byte)
        }
        _ => (0.0, f64::INFINITY),
    };
    // After an erase the line waits about a round trip for the answers that let the host
    // send again; the queue holds the frame being handled besides its window.
    let rtt = load.round_trip.as_nanos() as f64 * STALL_ROUND_TRIPS;
    let held = (f64::from(info.max_write) + 18.0) * byte_ns;
    let stall = |erase_ns: u64| (erase_ns as f64 + rtt - queue_ns - held).max(0.0);
    let program = load.program_bytes as f64 * DEFAULT_PROGRAM_NS_PER_BYTE as f64;
    let line = load.line_bytes as f64 * byte_ns;
    let bytes: f64 = dirty.iter().map(|d| f64::from(d.1)).sum::<f64>().max(1.0);
    // The units of a choice of blocks, in order: (bytes, erase time).
    let layout = |chosen: &[usize]| {
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(dirty.len());
        let mut i = 0;
        while i < dirty.len() {
            match chosen.iter().map(|&c| candidates[c]).find(|c| c.0 == i) {
                Some((a, b, ns)) => {
                    out.push((dirty[a..b].iter().map(|d| f64::from(d.1)).sum(), ns));
                    i = b;
                }
                None => {
                    out.push((f64::from(dirty[i].1), sector_ns));
                    i += 1;
                }
            }
        }
        out
    };
    // The modelled time with the chosen blocks `chosen` (indexes into candidates).
    let time = |chosen: &[usize]| {
        let units = layout(chosen);
        if load.spread {
            // Erases spread over the whole stream: the flash's work overlaps the line's
            // anywhere; each erase stalls the line for what the queue does not hold.
            let erases: f64 = units.iter().map(|u| u.1 as f64).sum();
            let stalls: f64 = units.iter().map(|u| stall(u.1)).sum();
            return (program + erases).max(line + stalls);
        }
        // Each unit's erase just ahead of the unit before it: its bytes' line time
        // overlaps the next unit's erase and its own programs, no more.
        // The first erase runs while the queue fills: the line waits for what it does
        // not hold.
        let mut t = units.first().map_or(0.0, |u| stall(u.1));
        for (k, u) in units.iter().enumerate() {
            let next = units.get(k + 1).map_or(0, |n| n.1);
            let share = u.0 / bytes;
            t += (share * line + stall(next)).max(next as f64 + share * program);
        }
        t
    };
    let (chosen, _) = take_blocks(&candidates, sector_ns as f64, time);
    let mut out = Vec::with_capacity(dirty.len());
    let mut i = 0;
    while i < dirty.len() {
        let block = chosen.iter().map(|&c| candidates[c]).find(|c| c.0 == i);
        let end = block.map_or(i + 1, |c| c.1);
        out.push((i, end));
        i = end;
    }
    out
}

pub(crate) mod background;
mod raw;
pub(crate) use raw::{RawFlash, RawLink, raw_plan};

/// Whether two candidate blocks (first sector, end, erase time) share a sector.
pub(crate) fn overlaps(x: (usize, usize, u64), y: (usize, usize, u64)) -> bool {
    x.0 < y.1 && y.0 < x.1
}

/// Blocks taken one at a time from `candidates` (first sector, end, erase time), the one
/// whose choice `time` models fastest first, while one still shortens the modelled time
/// (or keeps it and saves the flash's work: `sector_ns` a sector erased alone). Returns
/// the indexes chosen and their modelled time.
pub(crate) fn take_blocks(
    candidates: &[(usize, usize, u64)],
    sector_ns: f64,
    mut time: impl FnMut(&[usize]) -> f64,
) -> (Vec<usize>, f64) {
    // Times within 0.1 ms are equal (sums in another order).
    const TIE: f64 = 1e5;
    let mut chosen: Vec<usize> = Vec::new();
    let mut best = time(&chosen);
    loop {
        let mut pick: Option<(usize, f64, f64)> = None;
        for c in 0..candidates.len() {
            if chosen
                .iter()
                .any(|&k| overlaps(candidates[k], candidates[c]))
            {
                continue;
            }
            chosen.push(c);
            let t = time(&chosen);
            chosen.pop();
            // A tie takes the block too (the same time, less of the flash's work), and
            // among equal times the block that saves the flash most.
            let (a, b, ns) = candidates[c];
            let saves = (b - a) as f64 * sector_ns - ns as f64;
            let better = pick.is_none_or(|p| t < p.1 - TIE || (t <= p.1 + TIE && saves > p.2));
            if t <= best + TIE && saves > 0.0 && better {
                pick = Some((c, t, saves));
            }
        }
        let Some((c, t, _)) = pick else { break };
        chosen.push(c);
        best = t;
    }
    (chosen, best)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::raw::RawPlan;
    use super::*;
    use fota_protocol::BlockErase;

    /// The simulated W25Q128JV device's Info: 4 KiB sectors of 45 ms, 32 and 64 KiB
    /// blocks of 120 and 150 ms, a 5,354-byte queue, 1 KiB writes.
    pub(crate) fn info(blocks: bool) -> Info {
        let mut i = crate::plan::tests::layout(1, 2, None);
        i.sector_erase_ms = Some(45);
        i.rx_window = Some(5354);
        i.max_write = 1024;
        if blocks {
            i.block_erases = heapless::Vec::from_slice(&[
                BlockErase {
                    size: 32 * 1024,
                    ms: 120,
                },
                BlockErase {
                    size: 64 * 1024,
                    ms: 150,
                },
            ])
            .expect("two fit");
        }
        i
    }

    /// 256 KiB of dirty sectors from a 64 KiB boundary.
    fn slot() -> Vec<(u32, u32)> {
        (0..64).map(|s| (0x1_0000 + s * 4096, 4096)).collect()
    }

    fn load(baud: Option<u32>, bytes: u64) -> Load {
        Load {
            baud,
            round_trip: Duration::from_millis(2),
            line_bytes: bytes,
            program_bytes: 256 * 1024,
            spread: true,
        }
    }

    fn sizes(units: &[(usize, usize)]) -> Vec<usize> {
        units.iter().map(|u| u.1 - u.0).filter(|&n| n > 1).collect()
    }

    #[test]
    fn no_block_erases_declared_means_one_unit_a_sector() {
        let u = units(&info(false), &slot(), &load(Some(921_600), 266_000));
        assert_eq!(u, (0..64).map(|s| (s, s + 1)).collect::<Vec<_>>());
    }

    #[test]
    fn the_line_bound_link_takes_every_block_that_hides_under_the_queue() {
        // At 115200 baud the queue is 465 ms of the line: every erase hides under it,
        // and the flash's work only shrinks with blocks.
        let u = units(&info(true), &slot(), &load(Some(115_200), 266_000));
        assert_eq!(sizes(&u), [16, 16, 16, 16]);
        // No rate known: the flash's work alone.
        let u = units(&info(true), &slot(), &load(None, 266_000));
        assert_eq!(sizes(&u), [16, 16, 16, 16]);
    }

    #[test]
    fn a_fast_line_takes_blocks_only_while_the_flash_sets_the_pace() {
        // Raw at 921600: the line 2.9 s, sectors alone 3.6 s of flash. One 64 KiB block
        // brings the flash to about the line; a second would stall the line more than
        // the flash gains.
        let u = units(&info(true), &slot(), &load(Some(921_600), 266_700));
        let blocks = sizes(&u);
        assert!(!blocks.is_empty() && blocks.len() <= 2, "{blocks:?}");
        // Compressed to 60 %: the line is shorter, more blocks pay.
        let u = units(&info(true), &slot(), &load(Some(921_600), 160_000));
        assert!(sizes(&u).len() > blocks.len(), "{u:?}");
        // Every sector is in exactly one unit, in order.
        let mut at = 0;
        for (a, b) in u {
            assert_eq!(a, at);
            at = b;
        }
        assert_eq!(at, 64);
    }

    #[test]
    fn blocks_only_where_aligned_and_whole() {
        // From 4 KiB past a 64 KiB boundary, with sector 20 clean: the only whole
        // aligned blocks are 32 KiB at 0x18000 (sectors 7..15), the 64 KiB one at 0x20000
        // would hold sector 20 and is not whole; 32 KiB at 0x28000 (sectors 23..31).
        let dirty: Vec<(u32, u32)> = (1..32)
            .filter(|&s| s != 20)
            .map(|s| (0x1_0000 + s * 4096, 4096))
            .collect();
        let u = units(&info(true), &dirty, &load(None, 0));
        let spans: Vec<(u32, u32)> = u
            .iter()
            .filter(|u| u.1 - u.0 > 1)
            .map(|&(a, b)| (dirty[a].0, dirty[b - 1].0 + 4096 - dirty[a].0))
            .collect();
        assert_eq!(spans, [(0x1_8000, 0x8000), (0x2_8000, 0x8000)]);
    }

    #[test]
    fn absurd_block_figures_are_ignored_or_weighed_not_trusted() {
        let mut i = info(false);
        i.block_erases = heapless::Vec::from_slice(&[
            BlockErase { size: 0, ms: 1 },
            BlockErase { size: 3000, ms: 1 },
        ])
        .expect("two fit");
        let u = units(&i, &slot(), &load(None, 0));
        assert_eq!(sizes(&u), Vec::<usize>::new());
        // A block slower than its sectors is never taken; one of u32::MAX bytes fits
        // nowhere.
        i.block_erases = heapless::Vec::from_slice(&[
            BlockErase {
                size: 64 * 1024,
                ms: u32::MAX,
            },
            BlockErase {
                size: u32::MAX,
                ms: 1,
            },
        ])
        .expect("two fit");
        let u = units(&i, &slot(), &load(Some(115_200), 266_000));
        assert_eq!(sizes(&u), Vec::<usize>::new());
    }

    /// A raw transfer of `kib` KiB from a 64 KiB boundary, every sector dirty, in
    /// writes of 1 KiB (the simulated agent's `max_write`).
    fn raw(kib: u32, baud: u32, latency_ms: u64) -> (RawPlan, Vec<(usize, u32)>) {
        let sectors: Vec<(u32, u32)> = (0..kib / 4).map(|s| (0x1_0000 + s * 4096, 4096)).collect();
        let writes: Vec<(usize, u32)> = (0..sectors.len()).flat_map(|s| [(s, 1024); 4]).collect();
        let link = RawLink {
            baud,
            round_trip: Duration::from_millis(2 * latency_ms),
        };
        let erase = vec![true; sectors.len()];
        let flash = RawFlash::of(&info(true)).expect("figures known");
        let plan = raw_plan(&flash, &sectors, &erase, &writes, link).expect("a baud");
        (plan, writes)
    }

    /// The plan's units as (first sector, sectors).
    fn raw_units(plan: &RawPlan) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut s = 0;
        while s < plan.spans.len() {
            out.push((s, plan.spans[s] - s));
            s = plan.spans[s];
        }
        out
    }

    /// Every unit's erase goes before the first write of its sectors, and the erases in
    /// the order of their units.
    fn check_order(plan: &RawPlan, writes: &[(usize, u32)]) {
        let mut last = 0;
        for (first, n) in raw_units(plan) {
            let lead = plan.lead[first];
            let own = writes
                .iter()
                .position(|w| (first..first + n).contains(&w.0));
            assert!(
                own.is_none_or(|k| lead <= k),
                "unit {first} erased after its writes"
            );
            assert!(lead >= last, "unit {first} out of order");
            last = lead;
        }
    }

    #[test]
    fn at_921600_baud_and_1_ms_the_raw_plan_mixes_blocks_and_early_sectors() {
        // Sectors alone leave the flash slower than the line (45 ms + 11 ms of programs a
        // sector against 45 ms of line); every 64 KiB block stalls the line about 90 ms
        // beyond the 58 ms the queue holds. The model takes some blocks, not all, and
        // sends the sector erases ahead of their writes where the flash has time.
        for kib in [256, 1024] {
            let (plan, writes) = raw(kib, 921_600, 1);
            let blocks = raw_units(&plan).iter().filter(|u| u.1 > 1).count();
            let all = kib as usize / 64;
            assert!(
                blocks > 0 && blocks < all,
                "{kib} KiB: {blocks} of {all} blocks"
            );
            check_order(&plan, &writes);
            // Some sector erases go more than a sector ahead of their writes.
            let early = raw_units(&plan)
                .iter()
                .filter(|u| u.1 == 1 && plan.lead[u.0] + 8 < 4 * u.0)
                .count();
            assert!(early > 0, "{kib} KiB: no sector erased early");
            // The model's time beats the line's (image and frames) by little: within 7 %.
            let line = f64::from(kib * 1024 + kib * 18) * 10.0 / 921_600.0;
            let t = plan.time.as_secs_f64();
            assert!(
                t > line && t < line * 1.07,
                "{kib} KiB: {t} s, line {line} s"
            );
        }
    }

    #[test]
    fn a_large_slot_is_planned_by_spread_blocks_within_the_budget() {
        // 4 MiB: 1,024 sectors, 64 blocks of 64 KiB and 128 of 32 KiB, 4,096 writes: the
        // greedy search would run the model some 500 million steps; the evenly spread
        // choices alone still find a mix.
        let (plan, writes) = raw(4096, 921_600, 1);
        let blocks = raw_units(&plan).iter().filter(|u| u.1 > 1).count();
        assert!(blocks > 0 && blocks < 64, "{blocks} of 64 blocks");
        check_order(&plan, &writes);
        let line = f64::from(4096 * 1024 + 4096 * 18) * 10.0 / 921_600.0;
        let t = plan.time.as_secs_f64();
        assert!(t < line * 1.07, "{t} s, line {line} s");
    }

    #[test]
    fn the_raw_plan_keeps_every_block_where_each_pays() {
        // At 115200 baud every erase hides under the queue (465 ms of the line): every
        // block only shortens the flash's work. At 921600 with 16 ms of latency the round
        // trip keeps 32 ms of the 58 ms queue in flight: a sector erase stalls the line
        // too, and a block's stall (about 124 ms) costs less than its 16 sectors'.
        for (baud, latency) in [(115_200, 1), (115_200, 16), (921_600, 16)] {
            let (plan, writes) = raw(256, baud, latency);
            assert_eq!(
                raw_units(&plan),
                [(0, 16), (16, 16), (32, 16), (48, 16)],
                "{baud} baud, {latency} ms"
            );
            check_order(&plan, &writes);
        }
    }

    #[test]
    fn the_raw_plan_needs_a_sector_erase_time() {
        let mut i = info(true);
        i.sector_erase_ms = None;
        assert_eq!(RawFlash::of(&i), None);
        let link = RawLink {
            baud: 921_600,
            round_trip: Duration::from_millis(2),
        };
        // No line rate (a network link): no plan either.
        let flash = RawFlash::of(&info(true)).expect("known");
        let one = [(0x1_0000, 4096)];
        let none = RawLink { baud: 0, ..link };
        assert_eq!(raw_plan(&flash, &one, &[true], &[(0, 1024)], none), None);
        // Without blocks, one unit a sector, each erased before its writes.
        let (plan, writes) = {
            let i = info(false);
            let sectors: Vec<(u32, u32)> = (0..8).map(|s| (s * 4096, 4096)).collect();
            let writes: Vec<(usize, u32)> = (0..8).map(|s| (s, 4096)).collect();
            let flash = RawFlash::of(&i).expect("known");
            let plan = raw_plan(&flash, &sectors, &[true; 8], &writes, link).expect("known");
            (plan, writes)
        };
        assert_eq!(plan.spans, (1..=8).collect::<Vec<_>>());
        check_order(&plan, &writes);
    }
}
