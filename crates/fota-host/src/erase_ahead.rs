//! Erasing while streaming: the slot's sectors are erased one request each, interleaved
//! with the `WriteSlot` blocks in the same pipeline, a sector ahead of the stream, so the
//! flash erases sector k+1 while the blocks of sector k cross the line. An update then
//! takes about the slower of the link and the flash instead of their sum.
//!
//! What keeps it safe:
//! * a block of a sector that needs erasing is sent only once the agent has answered
//!   that sector's `EraseSlot` (the agent handles requests in order, so a write never
//!   reaches a sector whose erase has not completed, even when frames are lost and
//!   resent);
//! * an `EraseSlot` is resent only while it is unanswered, and then no block of its
//!   sector has been sent yet: a resend never erases data already written;
//! * a power cut leaves sectors erased, written or part written, as erase-then-stream
//!   does; resume compares every sector again and sends what differs.

use core::cell::RefCell;

use fota_protocol::{Op, Reply, Request, SlotDesc};

use crate::device::refused;
use crate::transfer::{Padded, SectorState, progress64};
use crate::update::Report;
use crate::{Device, HostError, Phase, Step, Transport};

/// How many sectors the erases run ahead of the stream: the erase of sector k + 1 is
/// sent before the first block of sector k, so it runs while sector k's blocks arrive.
const AHEAD: usize = 1;

/// One request of the interleaved run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Erase sector `s` (an index into the sectors).
    Erase(usize),
    /// Write the image bytes `a..b` (offsets in the image), in sector `s`.
    Write { s: usize, a: usize, b: usize },
}

/// The order of the requests: each sector's blocks, with the erase of the sector
/// [`AHEAD`] further on sent just before them (and the first one before everything).
fn schedule(sectors: &[(usize, usize)], state: &[SectorState], chunk: usize) -> Vec<Item> {
    let work: Vec<usize> = (0..sectors.len())
        .filter(|&s| state[s] != SectorState::Done)
        .collect();
    let dirty = |s: usize| state[s] == SectorState::Dirty;
    let mut items = Vec::new();
    // The erases sent so far cover work[..erased].
    let mut erased = 0usize;
    for (i, &s) in work.iter().enumerate() {
        while erased < work.len() && erased <= i + AHEAD {
            if dirty(work[erased]) {
                items.push(Item::Erase(work[erased]));
            }
            erased += 1;
        }
        let (mut a, end) = sectors[s];
        while a < end {
            let b = (a + chunk).min(end);
            items.push(Item::Write { s, a, b });
            a = b;
        }
    }
    items
}

/// Erase the dirty sectors of `slot` and write every sector not done, interleaved (see
/// the module docs). `sectors` are the image's parts per erase sector (offsets in the
/// image), `sector_ends` where each sector ends, `padded` the image padded to the write
/// granularity `gran`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn erase_and_stream<T: Transport>(
    dev: &mut Device<T>,
    slot: &SlotDesc,
    name: &str,
    padded: &Padded<'_>,
    gran: usize,
    sectors: &[(usize, usize)],
    sector_ends: &[usize],
    state: &[SectorState],
    report: &mut Report,
) -> Result<(), HostError> {
    let chunk = usize::from(dev.ensure_info().await?.max_write).max(1);
    let items = schedule(sectors, state, chunk);
    let erase_total: u64 = (0..sectors.len())
        .filter(|&s| state[s] == SectorState::Dirty)
        .map(|s| (sector_ends[s] - sectors[s].0) as u64)
        .sum();
    let total: u64 = items
        .iter()
        .map(|i| match *i {
            Item::Write { a, b, .. } => (b - a) as u64,
            Item::Erase(_) => 0,
        })
        .sum();
    let kind = slot.kind.label();
    dev.observer().step(
        Step::Erase,
        &if erase_total == 0 {
            format!(
                "Nothing to erase in {kind} slot {}: it is ready",
                slot.index
            )
        } else {
            format!(
                "Erasing {} KiB of {kind} slot {}, each sector just ahead of the stream",
                erase_total / 1024,
                slot.index
            )
        },
    );
    dev.observer().step(
        Step::Stream,
        &format!("Sending {} KiB of {name}", total.div_ceil(1024)),
    );

    let erased = RefCell::new(vec![false; sectors.len()]);
    let slot_addr = slot.addr;
    let make = |i: usize| match items[i] {
        Item::Erase(s) => Request::EraseSlot {
            addr: slot_addr + sectors[s].0 as u32,
            size: (sector_ends[s] - sectors[s].0) as u32,
        },
        Item::Write { a, b, .. } => Request::WriteSlot {
            addr: slot_addr + a as u32,
            data: padded.range(a, b.next_multiple_of(gran)),
        },
    };
    // A block waits for its sector's erase to be answered.
    let ready = |i: usize| match items[i] {
        Item::Erase(_) => true,
        Item::Write { s, .. } => state[s] != SectorState::Dirty || erased.borrow()[s],
    };
    let t = dev.now();
    let mut first_erase: Option<core::time::Duration> = None;
    let sent_before = dev.stats().write_bytes;
    let mut done = 0u64;
    dev.pipeline_when(items.len(), &make, &ready, &mut |obs, now, i, reply| {
        match (items[i], reply) {
            (Item::Erase(s), Reply::Erased { .. }) => {
                erased.borrow_mut()[s] = true;
                first_erase.get_or_insert(now);
            }
            (Item::Erase(_), other) => return Err(refused(Op::EraseSlot, &other)),
            (Item::Write { a, b, .. }, Reply::Written { .. }) => {
                done += (b - a) as u64;
                obs.progress(&progress64(Phase::Stream, done, total, now - t));
            }
            (Item::Write { .. }, other) => return Err(refused(Op::WriteSlot, &other)),
        }
        Ok(())
    })
    .await?;
    // The time before the first erase is answered is erase alone; the rest overlaps.
    let streaming_from = first_erase.unwrap_or(t);
    report.erase_time += streaming_from - t;
    report.stream_time += dev.now() - streaming_from;
    report.sent_bytes += dev.stats().write_bytes - sent_before;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: SectorState = SectorState::Dirty;
    const E: SectorState = SectorState::Erased;
    const K: SectorState = SectorState::Done;

    fn w(s: usize, a: usize, b: usize) -> Item {
        Item::Write { s, a, b }
    }

    #[test]
    fn each_erase_goes_one_sector_ahead_of_the_blocks() {
        let sectors = [(0, 8), (8, 16), (16, 20)];
        let items = schedule(&sectors, &[D, D, D], 4);
        assert_eq!(
            items,
            [
                Item::Erase(0),
                Item::Erase(1),
                w(0, 0, 4),
                w(0, 4, 8),
                Item::Erase(2),
                w(1, 8, 12),
                w(1, 12, 16),
                w(2, 16, 20),
            ]
        );
    }

    #[test]
    fn done_sectors_are_skipped_and_erased_ones_not_erased_again() {
        let sectors = [(0, 8), (8, 16), (16, 24), (24, 30)];
        let items = schedule(&sectors, &[K, E, D, K], 8);
        // Sector 2's erase goes ahead of sector 1's block, the first one written.
        assert_eq!(items, [Item::Erase(2), w(1, 8, 16), w(2, 16, 24)]);
        // Every block of a dirty sector comes after its erase.
        for (i, item) in items.iter().enumerate() {
            if let Item::Write { s, .. } = *item
                && s == 2
            {
                assert!(items[..i].contains(&Item::Erase(2)));
            }
        }
    }
}
