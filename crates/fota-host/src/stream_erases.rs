//! The erases a compressed stream needs, run ahead of it: the sectors of the next block
//! erased while a block streams (see crate::erase_ahead for the raw order).

use core::time::Duration;

use fota_protocol::Request;

use crate::erase_ahead::AHEAD;
use crate::padded::SectorState;

/// One request of a stream's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamItem {
    /// Erase sector `e` of the [`StreamErases`].
    Erase(usize),
    /// The `StreamData` frame of stream body bytes `a..b`.
    Frame {
        /// First body byte.
        a: usize,
        /// One past the last.
        b: usize,
    },
}

/// The sectors a compressed stream needs erased, and which of them the agent erased.
///
/// A stream's blocks each decode into their own image range (16 KiB by default), in
/// image order. The erases of the sectors that block j + 1 is first to write are
/// spread over the frames of block j, so the flash erases them while block j streams; a frame is sent only once every sector that a block it reaches
/// writes first has its erase answered. Since the agent works in order, the
/// decoder never writes a sector before its erase ran, and an `EraseSlot` is sent again
/// (after a lost answer, or a `StreamGap` that restarts the window) only while no frame
/// that writes into its sector was sent: it never erases what the decoder wrote.
#[derive(Debug)]
pub(crate) struct StreamErases {
    slot_addr: u32,
    /// The sectors to erase: (image offset of the first byte, bytes).
    sectors: Vec<(usize, usize)>,
    /// Whether the agent answered each erase.
    answered: Vec<bool>,
    /// For each sector, the block sent (an index among them) that first writes into it.
    group: Vec<usize>,
    /// Where each block sent starts in the stream's body.
    starts: Vec<usize>,
    /// Erases answered, for the report.
    pub(crate) answers: u32,
    /// How long the stream waited for the first erase to be answered.
    pub(crate) first_wait: Duration,
}

impl StreamErases {
    /// The sectors of `state` that are dirty. `sectors` are the image's parts per erase
    /// sector (image offsets), `sector_ends` where each sector ends.
    pub(crate) fn new(
        slot_addr: u32,
        sectors: &[(usize, usize)],
        sector_ends: &[usize],
        state: &[SectorState],
    ) -> StreamErases {
        let dirty: Vec<(usize, usize)> = (0..sectors.len())
            .filter(|&s| state[s] == SectorState::Dirty)
            .map(|s| (sectors[s].0, sector_ends[s] - sectors[s].0))
            .collect();
        StreamErases {
            slot_addr,
            answered: vec![false; dirty.len()],
            group: vec![0; dirty.len()],
            sectors: dirty,
            starts: Vec::new(),
            answers: 0,
            first_wait: Duration::ZERO,
        }
    }

    /// Bytes to erase.
    pub(crate) fn bytes(&self) -> u64 {
        self.sectors.iter().map(|&(_, n)| n as u64).sum()
    }

    /// The blocks the stream sends: (image offset, image length, start in the body).
    /// A sector no block writes (none: the host sends every block over a dirty sector)
    /// goes with the first block.
    pub(crate) fn assign(&mut self, blocks: &[(u32, u32, usize)]) {
        self.starts = blocks.iter().map(|b| b.2).collect();
        self.group = self
            .sectors
            .iter()
            .map(|&(start, _)| {
                blocks
                    .iter()
                    .position(|&(o, l, _)| o as usize + l as usize > start)
                    .unwrap_or(0)
            })
            .collect();
    }

    /// The last block that body bytes before `b` reach.
    fn last_block(&self, b: usize) -> usize {
        self.starts
            .iter()
            .take_while(|&&s| s < b)
            .count()
            .saturating_sub(1)
    }

    /// The requests that send body bytes `from..end` in frames of `chunk`, with the
    /// erases not answered yet (see the type's docs): before each frame, every erase of
    /// the blocks it reaches (those not placed yet), then the erases of the next block
    /// spread evenly over the frames left in this block, so that the window holds an
    /// erase and frames rather than erases alone, and the next block's erases are all
    /// sent before its first frame needs them.
    pub(crate) fn schedule(&self, from: usize, end: usize, chunk: usize) -> Vec<StreamItem> {
        let mut order: Vec<usize> = (0..self.sectors.len())
            .filter(|&e| !self.answered[e])
            .collect();
        order.sort_by_key(|&e| (self.group[e], e));
        let mut pending = order.into_iter().peekable();
        let mut frames: Vec<(usize, usize, usize)> = Vec::new();
        let mut a = from;
        while a < end {
            let b = (a + chunk.max(1)).min(end);
            frames.push((a, b, self.last_block(b)));
            a = b;
        }
        let mut items = Vec::new();
        for (i, &(a, b, last)) in frames.iter().enumerate() {
            while let Some(e) = pending.next_if(|&e| self.group[e] <= last) {
                items.push(StreamItem::Erase(e));
            }
            let frames_left = frames[i..].iter().take_while(|f| f.2 == last).count();
            let ahead = pending
                .clone()
                .take_while(|&e| self.group[e] <= last + AHEAD)
                .count();
            for _ in 0..ahead.div_ceil(frames_left.max(1)) {
                if let Some(e) = pending.next() {
                    items.push(StreamItem::Erase(e));
                }
            }
            items.push(StreamItem::Frame { a, b });
        }
        items.extend(pending.map(StreamItem::Erase));
        items
    }

    /// Whether `item` may be sent, given the erases `answered`: a frame once the
    /// erases of the sectors first written by the blocks it reaches are answered.
    pub(crate) fn ready(&self, item: StreamItem, answered: &[bool]) -> bool {
        match item {
            StreamItem::Erase(_) => true,
            StreamItem::Frame { b, .. } => {
                let last = self.last_block(b);
                self.group
                    .iter()
                    .zip(answered)
                    .all(|(&g, &done)| g > last || done)
            }
        }
    }

    /// The `EraseSlot` of sector `e`.
    pub(crate) fn request(&self, e: usize) -> Request<'static> {
        let (start, size) = self.sectors[e];
        Request::EraseSlot {
            addr: self.slot_addr + start as u32,
            size: size as u32,
        }
    }

    /// Which erases were answered.
    pub(crate) fn answered(&self) -> &[bool] {
        &self.answered
    }

    /// Take the answers of a window.
    pub(crate) fn take_answers(&mut self, answered: &[bool]) {
        for (mine, &now) in self.answered.iter_mut().zip(answered) {
            if now && !*mine {
                *mine = true;
                self.answers += 1;
            }
        }
    }
}
