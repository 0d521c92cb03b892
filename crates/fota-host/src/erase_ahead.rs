//! Erasing while streaming: the slot's sectors are erased one request each, interleaved
//! with the `WriteSlot` blocks in the same pipeline, a sector ahead of the stream, so the
//! flash erases sector k+1 while the blocks of sector k cross the line. An update then
//! takes about the slower of the link and the flash instead of their sum.
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
fn schedule(erase: &[bool], spans: &[usize], blocks: &[Block], written: &[bool]) -> Vec<Item> {
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
                "Erasing {} KiB of {kind} slot {}, each sector just ahead of the stream",
                erase_total / 1024,
                slot.index
            )
        },
    );

    let spans = block_spans(dev, &info, slot.addr, sectors, sector_ends, &erase, total);
    let slot_addr = slot.addr;
    let t = dev.now();
    let mut first_erase: Option<Duration> = None;
    let sent_before = dev.stats().write_bytes;
    let mut shown = 0u64;
    let mut erase_answers: Vec<u32> = Vec::new();
    let mut left: Option<HostError> = None;
    for _ in 0..ROUNDS {
        let items = schedule(&erase, &spans, &blocks, &written);
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
    if !schedule(&erase, &spans, &blocks, &written).is_empty() {
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
/// alone): the blocks crate::erase_plan picks among the sectors to `erase`, for `total`
/// image bytes sent raw.
fn block_spans<T: Transport>(
    dev: &mut Device<T>,
    info: &fota_protocol::Info,
    slot_addr: u32,
    sectors: &[(usize, usize)],
    sector_ends: &[usize],
    erase: &[bool],
    total: u64,
) -> Vec<usize> {
    let mut spans: Vec<usize> = (1..=sectors.len()).collect();
    if info.block_erases.is_empty() {
        return spans;
    }
    let index: Vec<usize> = (0..sectors.len()).filter(|&s| erase[s]).collect();
    let dirty: Vec<(u32, u32)> = index
        .iter()
        .map(|&s| {
            let size = (sector_ends[s] - sectors[s].0) as u32;
            (slot_addr + sectors[s].0 as u32, size)
        })
        .collect();
    let max_write = u64::from(info.max_write.max(1));
    let load = crate::erase_plan::Load {
        baud: dev.link().baud(),
        round_trip: dev.latency().unwrap_or_default(),
        line_bytes: total + total.div_ceil(max_write) * 18,
        program_bytes: total,
        spread: false,
    };
    for (a, b) in crate::erase_plan::units(info, &dirty, &load) {
        spans[index[a]] = index[b - 1] + 1;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream_erases::{StreamErases, StreamItem};

    const D: SectorState = SectorState::Dirty;
    const E: SectorState = SectorState::Erased;
    const K: SectorState = SectorState::Done;

    fn plan(sectors: &[(usize, usize)], state: &[SectorState], chunk: usize) -> Vec<(char, usize)> {
        let blocks = blocks_of(sectors, state, chunk);
        let erase: Vec<bool> = state.iter().map(|s| *s == D).collect();
        let spans: Vec<usize> = (1..=sectors.len()).collect();
        schedule(&erase, &spans, &blocks, &vec![false; blocks.len()])
            .into_iter()
            .map(|i| match i {
                Item::Erase(s) => ('E', s),
                Item::Write(k) => ('W', blocks[k].a),
            })
            .collect()
    }

    #[test]
    fn each_erase_goes_one_sector_ahead_of_the_blocks() {
        let sectors = [(0, 8), (8, 16), (16, 20)];
        assert_eq!(
            plan(&sectors, &[D, D, D], 4),
            [
                ('E', 0),
                ('E', 1),
                ('W', 0),
                ('W', 4),
                ('E', 2),
                ('W', 8),
                ('W', 12),
                ('W', 16),
            ]
        );
    }

    #[test]
    fn done_sectors_are_skipped_and_erased_ones_not_erased_again() {
        let sectors = [(0, 8), (8, 16), (16, 24), (24, 30)];
        // Sector 2's erase goes ahead of sector 1's block, the first one written.
        assert_eq!(
            plan(&sectors, &[K, E, D, K], 8),
            [('E', 2), ('W', 8), ('W', 16)]
        );
    }

    fn reply_written() -> Reply {
        Reply::Written { addr: 0, len: 0 }
    }

    fn not_erased() -> Reply {
        Reply::Error {
            code: ErrorCode::NotErased,
            detail: 0,
        }
    }

    #[test]
    fn a_block_answered_before_its_sectors_erase_is_sent_again() {
        // The erase of sector 0 was lost: its blocks were refused or written before the
        // resent erase ran. Every one of them goes again, after no new erase.
        let sectors = [(0, 8), (8, 16)];
        let blocks = blocks_of(&sectors, &[D, D], 4);
        let mut written = vec![false; blocks.len()];
        let mut round = Round::new(&[true, true], &[1, 2]);
        round
            .answer(
                Item::Erase(1),
                Reply::Erased { addr: 8, size: 8 },
                &blocks,
                &mut written,
            )
            .unwrap();
        round
            .answer(Item::Write(0), not_erased(), &blocks, &mut written)
            .unwrap();
        round
            .answer(Item::Write(1), reply_written(), &blocks, &mut written)
            .unwrap();
        round
            .answer(
                Item::Erase(0),
                Reply::Erased { addr: 0, size: 8 },
                &blocks,
                &mut written,
            )
            .unwrap();
        round
            .answer(Item::Write(2), reply_written(), &blocks, &mut written)
            .unwrap();
        round
            .answer(Item::Write(3), reply_written(), &blocks, &mut written)
            .unwrap();
        assert_eq!(written, [false, false, true, true]);
        assert_eq!(round.erase_next, [false, false]);
        assert_eq!(
            schedule(&round.erase_next, &[1, 2], &blocks, &written),
            [Item::Write(0), Item::Write(1)]
        );
    }

    #[test]
    fn a_block_refused_after_its_sectors_erase_erases_it_again() {
        let sectors = [(0, 8)];
        let blocks = blocks_of(&sectors, &[E], 4);
        let mut written = vec![false; blocks.len()];
        // Taken for erased by resume, no erase sent: a refusal means it must be erased.
        let mut round = Round::new(&[false], &[1]);
        round
            .answer(Item::Write(0), reply_written(), &blocks, &mut written)
            .unwrap();
        round
            .answer(Item::Write(1), not_erased(), &blocks, &mut written)
            .unwrap();
        assert_eq!(round.erase_next, [true]);
        assert!(round.refusal.is_some());
        // Other refusals stop the transfer.
        let stop = round.answer(
            Item::Write(0),
            Reply::Error {
                code: ErrorCode::OutOfSlot,
                detail: 0,
            },
            &blocks,
            &mut written,
        );
        assert!(stop.is_err());
    }

    #[test]
    fn stream_erases_precede_their_blocks_and_gate_the_frames() {
        // Sectors of 4 image bytes, blocks of 8 image bytes whose coded bodies are 5
        // bytes each (body offsets 0, 5, 10); frames of 4 body bytes. Four frames: every
        // erase is due within LEAD_FRAMES of the start, so all go first.
        let sectors = [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24)];
        let ends = [4, 8, 12, 16, 20, 24];
        let mut e = StreamErases::new(100, &sectors, &ends, &[D, K, D, D, D, E]);
        e.assign(&[(0, 8, 0), (8, 8, 5), (16, 8, 10)]);
        let items = e.schedule(0, 15, 4);
        use StreamItem::{Erase as X, Frame as F};
        assert_eq!(
            items,
            [
                X(0),
                X(1),
                X(2),
                X(3),
                F { a: 0, b: 4 },
                F { a: 4, b: 8 },
                F { a: 8, b: 12 },
                F { a: 12, b: 15 },
            ]
        );
        assert_eq!(e.request(3), Request::EraseSlot { addr: 116, size: 4 });
        // The second frame reaches block 1, whose sectors are 8..16 (erases 1 and 2).
        assert!(!e.ready(F { a: 4, b: 8 }, &[true, true, false, false]));
        assert!(e.ready(F { a: 4, b: 8 }, &[true, true, true, false]));
        assert!(e.ready(F { a: 0, b: 4 }, &[true, false, false, false]));
        // Restarted from a gap at body byte 8 with the first three answered: only the
        // last erase is sent again, before the frame that reaches block 2.
        e.take_answers(&[true, true, true, false]);
        assert_eq!(e.answers, 3);
        assert_eq!(
            e.schedule(8, 15, 4),
            [X(3), F { a: 8, b: 12 }, F { a: 12, b: 15 }]
        );
    }

    #[test]
    fn stream_erases_spread_evenly_ahead_of_their_blocks() {
        use crate::stream_erases::LEAD_FRAMES;
        // 64 sectors of 4 image bytes; blocks of two sectors whose bodies are 12 bytes:
        // three frames of 4 per block, 96 frames and 64 erases.
        let sectors: Vec<(usize, usize)> = (0..64).map(|s| (s * 4, s * 4 + 4)).collect();
        let ends: Vec<usize> = sectors.iter().map(|s| s.1).collect();
        let mut e = StreamErases::new(0, &sectors, &ends, &[D; 64]);
        let blocks: Vec<(u32, u32, usize)> = (0..32).map(|j| (j * 8, 8, j as usize * 12)).collect();
        e.assign(&blocks);
        let items = e.schedule(0, 32 * 12, 4);
        let frame_of = |i: usize| {
            items[..i]
                .iter()
                .filter(|x| matches!(x, StreamItem::Frame { .. }))
                .count()
        };
        let erases: Vec<(usize, usize)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, x)| match x {
                StreamItem::Erase(s) => Some((*s, frame_of(i))),
                StreamItem::Frame { .. } => None,
            })
            .collect();
        // Every erase once, in order.
        assert_eq!(
            erases.iter().map(|x| x.0).collect::<Vec<_>>(),
            (0..64).collect::<Vec<_>>()
        );
        for &(s, before) in &erases {
            // Sector s is block s / 2, whose first frame is 3 * (s / 2): the erase goes
            // LEAD_FRAMES frames before it, or first of all.
            let due = 3 * (s / 2);
            assert!(
                before == 0 || before + LEAD_FRAMES <= due,
                "erase {s} before frame {before}"
            );
        }
        // Past the start, never more than two erases between two frames (64 over 96).
        let mut run = 0;
        for x in items
            .iter()
            .skip_while(|x| matches!(x, StreamItem::Erase(_)))
        {
            run = if matches!(x, StreamItem::Erase(_)) {
                run + 1
            } else {
                0
            };
            assert!(run <= 2, "{items:?}");
        }
        // And the frames wait for their block's erases only: each frame is ready once
        // the erases before it are answered.
        let mut answered = vec![false; 64];
        for x in &items {
            match *x {
                StreamItem::Erase(s) => answered[s] = true,
                f @ StreamItem::Frame { .. } => assert!(e.ready(f, &answered)),
            }
        }
    }
}
