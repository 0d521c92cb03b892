//! The erases a compressed stream needs, run ahead of it: the sectors of the next block
//! erased while a block streams (see crate::erase_ahead for the raw order).

use core::time::Duration;

use fota_protocol::Request;

use crate::padded::SectorState;

/// How many frames before the first frame of its block an erase goes, at least: a
/// frame waits for the answers to its block's erases, the host sends a frame about a
/// window (five frames) before the agent decodes it, and the erase's answer must cross
/// the line back (a round trip at 16 ms is about three frames at 921600 baud); erases
/// placed later come back while the agent has the previous block's last frames alone
/// to decode, and the flash idles for about a round trip at every block's start. 14
/// (two windows and a round trip) idled the flash least on the micro:bit runtime at
/// 921600 baud, 1 and 16 ms (5, 8, 11, 14, 18 measured).
pub(crate) const LEAD_FRAMES: usize = 14;

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
/// image order. The erases of the sectors that each block is first to write are spread
/// over the frames before it ([`StreamErases::schedule`]), so the flash erases them
/// while earlier blocks stream; a frame is sent only once every sector that a block it
/// reaches writes first has its erase answered. Since the agent works in order, the
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
    /// The sectors of each erase (more than one: a block).
    counts: Vec<u32>,
    /// The sectors of each erase answered, for the report.
    answered_units: Vec<u32>,
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
        let dirty_len = dirty.len();
        StreamErases {
            slot_addr,
            answered: vec![false; dirty.len()],
            group: vec![0; dirty.len()],
            sectors: dirty,
            starts: Vec::new(),
            answers: 0,
            counts: vec![1; dirty_len],
            answered_units: Vec::new(),
            first_wait: Duration::ZERO,
        }
    }

    /// Erase whole blocks where crate::erase_plan picks them for this `load`: the
    /// sectors of each become one erase. Before [`StreamErases::assign`].
    pub(crate) fn use_blocks(
        &mut self,
        info: &fota_protocol::Info,
        load: &crate::erase_plan::Load,
    ) {
        if info.block_erases.is_empty() {
            return;
        }
        let dirty: Vec<(u32, u32)> = self
            .sectors
            .iter()
            .map(|&(start, n)| (self.slot_addr + start as u32, n as u32))
            .collect();
        let units = crate::erase_plan::units(info, &dirty, load);
        self.sectors = units
            .iter()
            .map(|&(a, b)| {
                let start = self.sectors[a].0;
                let end = self.sectors[b - 1].0 + self.sectors[b - 1].1;
                (start, end - start)
            })
            .collect();
        self.counts = units.iter().map(|&(a, b)| (b - a) as u32).collect();
        self.answered = vec![false; self.sectors.len()];
        self.group = vec![0; self.sectors.len()];
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
    /// erases not answered yet (see the type's docs) spread evenly over the frames, one
    /// every few frames, so that each erase hides the line's time for the frames queued
    /// behind it and the window never holds erases alone nor a long run of frames with no
    /// erase (the agent decodes a frame faster than the line brings it: after such a run
    /// the flash waits for the line). Each erase goes at least [`LEAD_FRAMES`] frames
    /// before the first frame of its block (the erases of the first blocks before the
    /// first frame), so that its answer is back before that frame is due.
    pub(crate) fn schedule(&self, from: usize, end: usize, chunk: usize) -> Vec<StreamItem> {
        let mut order: Vec<usize> = (0..self.sectors.len())
            .filter(|&e| !self.answered[e])
            .collect();
        order.sort_by_key(|&e| (self.group[e], e));
        let mut frames: Vec<(usize, usize, usize)> = Vec::new();
        let mut a = from;
        while a < end {
            let b = (a + chunk.max(1)).min(end);
            frames.push((a, b, self.last_block(b)));
            a = b;
        }
        let n = frames.len();
        // The first frame that reaches block `g` (n when none does).
        let need = |g: usize| frames.iter().position(|f| f.2 >= g).unwrap_or(n);
        // Before which frame each erase goes: evenly spaced, LEAD_FRAMES earlier, and
        // never after its deadline; in the erases' order (a suffix minimum keeps the
        // positions non-decreasing and every deadline met).
        let k = order.len();
        let mut at: Vec<usize> = order
            .iter()
            .enumerate()
            .map(|(m, &e)| {
                let even = (m * n / k.max(1)).saturating_sub(LEAD_FRAMES);
                even.min(need(self.group[e]).saturating_sub(LEAD_FRAMES))
            })
            .collect();
        for m in (0..at.len().saturating_sub(1)).rev() {
            at[m] = at[m].min(at[m + 1]);
        }
        let mut items = Vec::with_capacity(n + k);
        let mut next = 0usize;
        for (i, &(a, b, _)) in frames.iter().enumerate() {
            while next < k && at[next] <= i {
                items.push(StreamItem::Erase(order[next]));
                next += 1;
            }
            items.push(StreamItem::Frame { a, b });
        }
        items.extend(order[next..].iter().map(|&e| StreamItem::Erase(e)));
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
        for (e, (mine, &now)) in self.answered.iter_mut().zip(answered).enumerate() {
            if now && !*mine {
                *mine = true;
                self.answers += 1;
                self.answered_units
                    .push(self.counts.get(e).copied().unwrap_or(1));
            }
        }
    }

    /// Add the erases answered to `report`: sectors, and the device's time by its own
    /// figures (crate::erase_plan::count_unit).
    pub(crate) fn count(&self, report: &mut crate::report::Report, info: &fota_protocol::Info) {
        for &n in &self.answered_units {
            crate::erase_plan::count_unit(report, info, n);
        }
    }
}
