//! Erasing while streaming: the slot's sectors are erased one request each (or a block
//! of them), interleaved with the `WriteSlot` blocks in the same pipeline ahead of the
//! stream, so the flash erases sector k+1 (or one further on) while the blocks of sector
//! k cross the line. An update then takes about the slower of the link and the flash
//! instead of their sum. Where each erase goes, and which are blocks, is the plan of
//! crate::erase_plan::raw_plan; without the figures it needs (a line rate, a sector's
//! erase time) each erase goes one sector ahead.
//!
//! The blocks do not wait for their sector's `EraseSlot` answer: the agent handles
//! requests in order (docs/PROTOCOL.md 6.2), so a block sent after its sector's erase
//! reaches the flash after it. What keeps it safe when frames are lost:
//! * the agent refuses a block over a range that is not erased (`NotErased`) before it
//!   programs a byte, and takes a block over units that already hold its bytes: no
//!   block ever programs over data, whatever happened to its sector's erase;
//! * a block counts as written only when its `Written` answer comes after the answer to
//!   its sector's last `EraseSlot`: a block answered before it (an erase that was lost
//!   and resent, or ran again) may have been erased and is sent again;
//! * a block refused with `NotErased` is sent again in a next round, after an erase of
//!   its sector if no erase of it was answered before the refusal (else the erase that
//!   is still on its way clears it); an erase refused with `FlashFailure` is tried again
//!   the same way. At most [`ROUNDS`] rounds, then the last refusal is the error;
//! * a power cut leaves sectors erased, written or part written, as erase-then-stream
//!   does; resume compares every sector again and sends what differs.
//!
//! Compressed streams erase ahead too ([`StreamErases`]), their frames not waiting
//! either; but a decoder's refusal ends its stream, so a frame refused with `NotErased`
//! (an erase ahead of it lost) begins the stream again with all its erases, and an
//! erase with frames behind it is never sent again.

use core::time::Duration;

use fota_protocol::{ErrorCode, Op, Reply, Request, SlotDesc};

use crate::device::refused;
use crate::observer::progress64;
use crate::padded::{Padded, SectorState};
use crate::report::Report;
use crate::{Device, HostError, Phase, Step, Transport};

/// How many sectors the erases run ahead of the stream: the erase of sector k + 1 is
/// sent before the first block of sector k, so it runs while sector k's blocks arrive.
pub(crate) const AHEAD: usize = 1;

/// Rounds of a raw transfer: the first sends everything; the others only what was
/// refused (`NotErased`) or may have been erased after it was written. A round after
/// the first happens only when frames were lost around an erase.
const ROUNDS: usize = 4;

/// One `WriteSlot` of the image: the bytes `a..b` (image offsets) in sector `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    s: usize,
    a: usize,
    b: usize,
}

/// One request of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Erase sector `s` (an index into the sectors).
    Erase(usize),
    /// Write block `k` (an index into the blocks).
    Write(usize),
}

/// The blocks of every sector not done, at most `chunk` bytes each, never across a
/// sector.
fn blocks_of(sectors: &[(usize, usize)], state: &[SectorState], chunk: usize) -> Vec<Block> {
    let mut blocks = Vec::new();
    for (s, &(start, end)) in sectors.iter().enumerate() {
        if state[s] == SectorState::Done {
            continue;
        }
        let mut a = start;
        while a < end {
            let b = (a + chunk).min(end);
            blocks.push(Block { s, a, b });
            a = b;
        }
    }
    blocks
}

/// Where the erase unit starting at sector `s` ends (one past its last sector): the
/// block of `spans[s]` (crate::erase_plan) when every sector of it is to be erased,
/// else `s` alone.
fn unit_end(erase: &[bool], spans: &[usize], s: usize) -> usize {
    let e = spans.get(s).copied().unwrap_or(s + 1);
    if e > s + 1 && erase.get(s..e).is_some_and(|r| r.iter().all(|&x| x)) {
        e
    } else {
        s + 1
    }
}

/// The order of one round: the blocks not written yet, sector by sector, with the erase
/// of the sector [`AHEAD`] further on (among those with work) just before them, and
/// the first sector's erase before everything; a block erase (`spans`) goes where its
/// first sector's would and stands for its sectors'. `erase[s]` implies that no block
/// of `s` is written.
fn schedule(
    erase: &[bool],
    spans: &[usize],
    blocks: &[Block],
    written: &[bool],
    lead: Option<&[usize]>,
) -> Vec<Item> {
    if let Some(lead) = lead {
        return placed(erase, spans, blocks, written, lead);
    }
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); erase.len()];
    for (k, block) in blocks.iter().enumerate() {
        if !written[k] {
            per[block.s].push(k);
        }
    }
    let work: Vec<usize> = (0..erase.len())
        .filter(|&s| erase[s] || !per[s].is_empty())
        .collect();
    let mut items = Vec::new();
    // The erases sent so far cover work[..erased], and every sector below `covered`.
    let mut erased = 0usize;
    let mut covered = 0usize;
    for (i, &s) in work.iter().enumerate() {
        while erased < work.len() && erased <= i + AHEAD {
            let x = work[erased];
            if erase[x] && x >= covered {
                items.push(Item::Erase(x));
                covered = unit_end(erase, spans, x);
            }
            erased += 1;
        }
        items.extend(per[s].iter().map(|&k| Item::Write(k)));
    }
    items
}

/// The order of a round whose erases the plan placed (crate::erase_plan::raw_plan): the
/// erase of each unit just before the block `lead[s]` of its first sector `s`, or before
/// the first block of its own sectors if that comes first, then the blocks in order.
fn placed(
    erase: &[bool],
    spans: &[usize],
    blocks: &[Block],
    written: &[bool],
    lead: &[usize],
) -> Vec<Item> {
    let mut units = Vec::new();
    let mut s = 0;
    while s < erase.len() {
        if erase[s] {
            units.push(s);
            s = unit_end(erase, spans, s);
        } else {
            s += 1;
        }
    }
    let mut items = Vec::new();
    let mut u = 0;
    for (k, block) in blocks.iter().enumerate() {
        if written[k] {
            continue;
        }
        while let Some(&x) = units.get(u) {
            if x > block.s && lead.get(x).is_none_or(|&l| l > k) {
                break;
            }
            items.push(Item::Erase(x));
            u += 1;
        }
        items.push(Item::Write(k));
    }
    items.extend(units[u..].iter().map(|&x| Item::Erase(x)));
    items
}

/// What the answers of one round leave for the next.
#[derive(Debug)]
struct Round {
    /// Sectors whose erase was sent this round.
    erasing: Vec<bool>,
    /// The block erases planned (see [`unit_end`]).
    spans: Vec<usize>,
    /// Sectors whose erase was answered `Erased` this round.
    erased: Vec<bool>,
    /// Sectors to erase in the next round.
    erase_next: Vec<bool>,
    /// The last refusal that a next round may mend (for the error if none does).
    refusal: Option<HostError>,
    /// Sectors erased (answers `Erased`), for the report.
    /// Erases answered `Erased`, for the report: the sectors of each unit.
    erase_answers: Vec<u32>,
}

impl Round {
    fn new(erase: &[bool], spans: &[usize]) -> Round {
        Round {
            erasing: erase.to_vec(),
            spans: spans.to_vec(),
            erased: vec![false; erase.len()],
            erase_next: vec![false; erase.len()],
            refusal: None,
            erase_answers: Vec::new(),
        }
    }

    /// Take the answer to `item`; `Err` stops the transfer.
    fn answer(
        &mut self,
        item: Item,
        reply: Reply,
        blocks: &[Block],
        written: &mut [bool],
    ) -> Result<(), HostError> {
        match (item, reply) {
            (Item::Erase(s), Reply::Erased { .. }) => {
                let end = unit_end(&self.erasing, &self.spans, s);
                self.erased[s..end].fill(true);
                self.erase_answers.push((end - s) as u32);
                // The agent works in order: a block of `s..end` answered before this
                // erase ran before it, and may be gone.
                for (k, block) in blocks.iter().enumerate() {
                    if (s..end).contains(&block.s) {
                        written[k] = false;
                    }
                }
            }
            (
                Item::Erase(s),
                ref r @ Reply::Error {
                    code: ErrorCode::FlashFailure,
                    ..
                },
            ) => {
                let end = unit_end(&self.erasing, &self.spans, s);
                self.erase_next[s..end].fill(true);
                self.refusal = Some(refused(Op::EraseSlot, r));
            }
            (Item::Erase(_), other) => return Err(refused(Op::EraseSlot, &other)),
            (Item::Write(k), Reply::Written { .. }) => written[k] = true,
            (
                Item::Write(k),
                ref r @ Reply::Error {
                    code: ErrorCode::NotErased,
                    ..
                },
            ) => {
                let s = blocks[k].s;
                written[k] = false;
                // Refused after its sector's erase ran (or with none sent): erase again.
                // Refused before: that erase was lost and is still on its way.
                if !self.erasing[s] || self.erased[s] {
                    self.erase_next[s] = true;
                }
                self.refusal = Some(refused(Op::WriteSlot, r));
            }
            (
                Item::Write(k),
                ref r @ Reply::Error {
                    code: ErrorCode::FlashFailure,
                    ..
                },
            ) => {
                // An agent that erases in the background (Info tag 11) reports an erase
                // that failed on the next write that needs it: erase again, write again.
                written[k] = false;
                self.erase_next[blocks[k].s] = true;
                self.refusal = Some(refused(Op::WriteSlot, r));
            }
            (Item::Write(_), other) => return Err(refused(Op::WriteSlot, &other)),
        }
        Ok(())
    }
}

/// Erase the dirty sectors of `slot` and write every sector not done, interleaved (see
/// the module docs). `sectors` are the image's parts per erase sector (offsets in the
/// image), `sector_ends` where each sector ends, `padded` the image padded to the write
/// granularity `gran`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn erase_and_stream<T: Transport>(
    dev: &mut Device<T>,
    slot: &SlotDesc,
    padded: &Padded<'_>,
    gran: usize,
    sectors: &[(usize, usize)],
    sector_ends: &[usize],
    state: &[SectorState],
    report: &mut Report,
) -> Result<(), HostError> {
    let info = dev.ensure_info().await?;
    let chunk = usize::from(info.max_write).max(1);
    let blocks = blocks_of(sectors, state, chunk);
    let mut written = vec![false; blocks.len()];
    let mut erase: Vec<bool> = state.iter().map(|s| *s == SectorState::Dirty).collect();
    let erase_total: u64 = (0..sectors.len())
        .filter(|&s| erase[s])
        .map(|s| (sector_ends[s] - sectors[s].0) as u64)
        .sum();
    let total: u64 = blocks.iter().map(|b| (b.b - b.a) as u64).sum();
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
                "Erasing {} KiB of {kind} slot {}, each erase ahead of its writes",
                erase_total / 1024,
                slot.index
            )
        },
    );

    let (spans, lead) = block_spans(
        dev,
        &info,
        slot.addr,
        sectors,
        sector_ends,
        &erase,
        &blocks,
        total,
    );
    let slot_addr = slot.addr;
    let t = dev.now();
    let mut first_erase: Option<Duration> = None;
    let sent_before = dev.stats().write_bytes;
    let mut shown = 0u64;
    let mut erase_answers: Vec<u32> = Vec::new();
    let mut left: Option<HostError> = None;
    for round in 0..ROUNDS {
        // The plan places the first round's erases; a later one (frames were lost) erases
        // one sector ahead.
        let placed = if round == 0 { lead.as_deref() } else { None };
        let items = schedule(&erase, &spans, &blocks, &written, placed);
        if items.is_empty() {
            left = None;
            break;
        }
        let make = |i: usize| match items[i] {
            Item::Erase(s) => Request::EraseSlot {
                addr: slot_addr + sectors[s].0 as u32,
                size: (sector_ends[unit_end(&erase, &spans, s) - 1] - sectors[s].0) as u32,
            },
            Item::Write(k) => Request::WriteSlot {
                addr: slot_addr + blocks[k].a as u32,
                data: padded.range(blocks[k].a, blocks[k].b.next_multiple_of(gran)),
            },
        };
        let mut round = Round::new(&erase, &spans);
        dev.pipeline(items.len(), &make, &mut |obs, now, i, reply| {
            if matches!(items[i], Item::Erase(_)) {
                first_erase.get_or_insert(now);
            }
            round.answer(items[i], reply, &blocks, &mut written)?;
            let done: u64 = blocks
                .iter()
                .zip(written.iter())
                .filter(|(_, w)| **w)
                .map(|(b, _)| (b.b - b.a) as u64)
                .sum();
            // Progress never goes back, even when a block must be sent again.
            shown = shown.max(done);
            obs.progress(&progress64(Phase::Stream, shown, total, now - t));
            Ok(())
        })
        .await?;
        erase_answers.extend(round.erase_answers);
        erase = round.erase_next;
        for (k, block) in blocks.iter().enumerate() {
            if erase[block.s] {
                written[k] = false;
            }
        }
        left = round.refusal;
        if left.is_some() {
            dev.observer().event(
                "a sector was not erased when its blocks arrived (a frame was lost): \
                 erasing it again and sending its blocks again",
            );
        }
    }
    if !schedule(&erase, &spans, &blocks, &written, None).is_empty() {
        return Err(left.unwrap_or_else(|| {
            HostError::Protocol("the slot's sectors could not be erased and written".into())
        }));
    }
    for n in erase_answers {
        crate::erase_plan::count_unit(report, &info, n);
    }
    // The time before the first erase is answered is erase alone; the rest overlaps.
    let streaming_from = first_erase.unwrap_or(t);
    report.erase_time += streaming_from - t;
    report.stream_time += dev.now() - streaming_from;
    report.sent_bytes += dev.stats().write_bytes - sent_before;
    Ok(())
}

/// For each sector, where the erase unit starting there ends (`s + 1`: the sector
/// alone), and where the plan sends each unit's erase (see [`placed`]; `None`: one
/// sector ahead): the plan of crate::erase_plan for the sectors to `erase` written by
/// `blocks`, `total` image bytes sent raw.
#[allow(clippy::too_many_arguments)]
fn block_spans<T: Transport>(
    dev: &mut Device<T>,
    info: &fota_protocol::Info,
    slot_addr: u32,
    sectors: &[(usize, usize)],
    sector_ends: &[usize],
    erase: &[bool],
    blocks: &[Block],
    total: u64,
) -> (Vec<usize>, Option<Vec<usize>>) {
    let mut spans: Vec<usize> = (1..=sectors.len()).collect();
    let whole: Vec<(u32, u32)> = (0..sectors.len())
        .map(|s| {
            let size = (sector_ends[s] - sectors[s].0) as u32;
            (slot_addr + sectors[s].0 as u32, size)
        })
        .collect();
    if info.background_erase {
        // Every erase first, the largest blocks: the agent runs them while the blocks
        // stream (crate::erase_plan::background).
        let spans = crate::erase_plan::background::spans(info, &whole, erase);
        return (spans, Some(vec![0; sectors.len()]));
    }
    let round_trip = dev.latency().unwrap_or_default();
    if let Some(baud) = dev.link().baud() {
        let writes: Vec<(usize, u32)> = blocks.iter().map(|b| (b.s, (b.b - b.a) as u32)).collect();
        let link = crate::erase_plan::RawLink { baud, round_trip };
        let flash = crate::erase_plan::RawFlash::of(info);
        if let Some(plan) =
            flash.and_then(|f| crate::erase_plan::raw_plan(&f, &whole, erase, &writes, link))
        {
            return (plan.spans, Some(plan.lead));
        }
    }
    if info.block_erases.is_empty() {
        return (spans, None);
    }
    let index: Vec<usize> = (0..sectors.len()).filter(|&s| erase[s]).collect();
    let dirty: Vec<(u32, u32)> = index.iter().map(|&s| whole[s]).collect();
    let max_write = u64::from(info.max_write.max(1));
    let load = crate::erase_plan::Load {
        baud: dev.link().baud(),
        round_trip,
        line_bytes: total + total.div_ceil(max_write) * 18,
        program_bytes: total,
        spread: false,
    };
    for (a, b) in crate::erase_plan::units(info, &dirty, &load) {
        spans[index[a]] = index[b - 1] + 1;
    }
    (spans, None)
}

#[cfg(test)]
mod tests;
