//! Tests of the raw transfer's order and its answers (the parent module), and of a
//! stream's erases.

use super::*;
use crate::stream_erases::{StreamErases, StreamItem};

const D: SectorState = SectorState::Dirty;
const E: SectorState = SectorState::Erased;
const K: SectorState = SectorState::Done;

fn plan(sectors: &[(usize, usize)], state: &[SectorState], chunk: usize) -> Vec<(char, usize)> {
    let blocks = blocks_of(sectors, state, chunk);
    let erase: Vec<bool> = state.iter().map(|s| *s == D).collect();
    let spans: Vec<usize> = (1..=sectors.len()).collect();
    schedule(&erase, &spans, &blocks, &vec![false; blocks.len()], None)
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

#[test]
fn placed_erases_go_where_the_plan_says_and_never_after_their_blocks() {
    // Four sectors of 8 bytes, blocks of 4; sectors 0-1 one block erase, 2 and 3 alone.
    let sectors = [(0, 8), (8, 16), (16, 24), (24, 32)];
    let blocks = blocks_of(&sectors, &[D, D, D, D], 4);
    let erase = [true; 4];
    let spans = [2, 2, 3, 4];
    let names = |items: Vec<Item>| -> Vec<(char, usize)> {
        items
            .into_iter()
            .map(|i| match i {
                Item::Erase(s) => ('E', s),
                Item::Write(k) => ('W', k),
            })
            .collect()
    };
    // Sector 2's erase placed late (block 6, past its own blocks 4 and 5: it goes
    // before block 4 all the same), sector 3's early (before block 5, not its own 6).
    let lead = [0, 8, 6, 5];
    let written = vec![false; blocks.len()];
    assert_eq!(
        names(schedule(&erase, &spans, &blocks, &written, Some(&lead))),
        [
            ('E', 0),
            ('W', 0),
            ('W', 1),
            ('W', 2),
            ('W', 3),
            ('E', 2),
            ('W', 4),
            ('E', 3),
            ('W', 5),
            ('W', 6),
            ('W', 7),
        ]
    );
    // Units go in order: sector 3's early lead waits for sector 2's erase.
    let lead = [0, 8, 1, 1];
    assert_eq!(
        names(schedule(&erase, &spans, &blocks, &written, Some(&lead)))[..4],
        [('E', 0), ('W', 0), ('E', 2), ('E', 3)]
    );
    // Blocks already written are skipped; an erase of a sector with none left still
    // goes, at the end.
    let mut written = vec![true; blocks.len()];
    written[1] = false;
    assert_eq!(
        names(schedule(
            &erase,
            &spans,
            &blocks,
            &written,
            Some(&[0, 8, 9, 9])
        )),
        [('E', 0), ('W', 1), ('E', 2), ('E', 3)]
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
        schedule(&round.erase_next, &[1, 2], &blocks, &written, None),
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
