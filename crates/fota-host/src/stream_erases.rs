//! The erases a compressed stream needs, run ahead of it: the sectors of the next block
//! erased while a block streams (see crate::erase_ahead for the raw order).

use core::time::Duration;

use fota_protocol::Request;

use crate::padded::SectorState;

/// How many frames before the first frame of its block an erase goes, at least. It was
/// chosen when a frame waited for the answers to its block's erases (two windows and a
/// round trip: 14 idled the flash least on the micro:bit runtime at 921600 baud, 1 and
/// 16 ms; 5, 8, 11, 14, 18 measured). Frames no longer wait, the agent running its queue
/// in order; the lead still spreads the erases among the frames so that the agent's
/// queue holds frames to decode behind each erase, and the figures measured since with
/// it (README, the image tables) kept it.
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
/// while earlier blocks stream; a frame does not wait for the answers of the erases
/// ahead of it: the agent works in order, so the decoder writes a sector after its
/// erase ran, and where the erase was lost the agent refuses to program bytes that are
/// not erased (`NotErased`, before any is programmed) and the stream begins again
/// ([`StreamErases::restart`]). An `EraseSlot` is sent again (after a lost answer, or a
/// `StreamGap` that restarts the window) only while no frame went behind it: it never
/// erases what the decoder wrote.
#[derive(Debug)]
pub(crate) struct StreamErases {
    slot_addr: u32,
    /// The sectors to erase: (image offset of the first byte, bytes).
    sectors: Vec<(usize, usize)>,
    /// Whether the agent answered each erase.
    answered: Vec<bool>,
    /// Whether a frame went behind each erase: it is never sent again then (the
    /// decoder may have written its sector), see [`StreamErases::passed`].
    passed: Vec<bool>,
    /// The image's end, rounded up to its last sector's end (image offset).
    image_end: usize,
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
            passed: vec![false; dirty.len()],
            image_end: sector_ends.last().copied().unwrap_or(0),
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
        self.passed = vec![false; self.sectors.len()];
        self.group = vec![0; self.sectors.len()];
    }

    /// Where the image's last erase units fit in one block of the device's (`Info` tag
    /// 10) that reaches past the image's end but stays inside the slot (`slot_size`
    /// bytes), and that block erases faster than those units by the device's own figures,
    /// erase that block instead: a 42 KiB image at the start of a free slot is one 64 KiB
    /// block (150 ms on a W25Q128JV) rather than a 32 KiB block and three sectors (255
    /// ms). What lies past the image in the slot is nobody's (the agent erases only a slot
    /// no configuration uses), so erasing it loses nothing. Only a run of units that ends
    /// at the image's end and leaves no sector of the block in it undone (a resume keeps
    /// sectors that hold the image) is replaced. Where the line sets the pace even after
    /// it (`load`: the stream's bytes take longer on the line than the flash's erases and
    /// programs), the block must not stall the line more than the units it replaces: the
    /// agent reads nothing while it erases, and the receive queue (`Info` tag 8) absorbs
    /// only its line time of that. After [`StreamErases::use_blocks`].
    pub(crate) fn cover_past_end(
        &mut self,
        info: &fota_protocol::Info,
        slot_size: u32,
        load: &crate::erase_plan::Load,
    ) {
        let Some(sector_ms) = info.sector_erase_ms else {
            return; // nothing to weigh a block against
        };
        let Some(&(last_start, last_len)) = self.sectors.last() else {
            return;
        };
        if last_start + last_len != self.image_end {
            return;
        }
        let ms = |e: usize| -> u64 {
            let n = self.counts.get(e).copied().unwrap_or(1);
            let size = n.saturating_mul(info.sector_size);
            info.block_erases
                .iter()
                .find(|b| n > 1 && b.size == size)
                .map_or(u64::from(sector_ms) * u64::from(n), |b| u64::from(b.ms))
        };
        // The best block: (first unit it replaces, its start, its size, time saved).
        let mut best: Option<(usize, usize, u32, u64)> = None;
        for b in &info.block_erases {
            if b.size <= info.sector_size || info.sector_size == 0 {
                continue;
            }
            let abs = self.slot_addr as usize + last_start;
            let w_abs = abs - abs % b.size as usize;
            let Some(w) = w_abs.checked_sub(self.slot_addr as usize) else {
                continue; // it would start before the slot
            };
            if w + b.size as usize > slot_size as usize {
                continue; // it would reach past the slot
            }
            // The units from the block's start to the image's end, with no gap.
            let Some(first) = self.sectors.iter().position(|&(s, _)| s >= w) else {
                continue;
            };
            let straddles = first > 0 && {
                let (s, n) = self.sectors[first - 1];
                s + n > w
            };
            let gapless = self.sectors[first].0 == w
                && self.sectors[first..]
                    .windows(2)
                    .all(|p| p[0].0 + p[0].1 == p[1].0);
            if straddles || !gapless {
                continue;
            }
            let now: u64 = (first..self.sectors.len()).map(ms).sum();
            let saved = now.saturating_sub(u64::from(b.ms));
            if saved > 0 && best.is_none_or(|x| saved > x.3) {
                best = Some((first, w, b.size, saved));
            }
        }
        let Some((first, w, size, _)) = best else {
            return;
        };
        if let Some(baud) = load.baud.filter(|&b| b > 0) {
            let ms_of_bytes = |bytes: u64| bytes * 10_000 / u64::from(baud);
            let line_ms = ms_of_bytes(load.line_bytes);
            let queue_ms = ms_of_bytes(u64::from(info.rx_window.unwrap_or(0)));
            let block_ms = info
                .block_erases
                .iter()
                .find(|b| b.size == size)
                .map_or(0, |b| u64::from(b.ms));
            let kept: u64 = (0..first).map(ms).sum();
            let program_ms =
                load.program_bytes * crate::erase_plan::DEFAULT_PROGRAM_NS_PER_BYTE / 1_000_000;
            let flash_ms = kept + block_ms + program_ms;
            let stall = |ms: u64| ms.saturating_sub(queue_ms);
            let before: u64 = (first..self.sectors.len()).map(|e| stall(ms(e))).sum();
            if line_ms >= flash_ms && stall(block_ms) > before {
                return;
            }
        }
        self.sectors.truncate(first);
        self.sectors.push((w, size as usize));
        self.counts.truncate(first);
        self.counts.push(size / info.sector_size);
        self.answered = vec![false; self.sectors.len()];
        self.passed = vec![false; self.sectors.len()];
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
            .filter(|&e| !self.answered[e] && !self.passed[e])
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

    /// Whether the erases that `item` needs are all among `queued` (the erases ahead of
    /// it): for a frame, those of the sectors first written by the blocks it reaches.
    /// [`StreamErases::schedule`] keeps every frame behind them.
    #[cfg(test)]
    pub(crate) fn ready(&self, item: StreamItem, queued: &[bool]) -> bool {
        match item {
            StreamItem::Erase(_) => true,
            StreamItem::Frame { b, .. } => {
                let last = self.last_block(b);
                self.group
                    .iter()
                    .zip(queued)
                    .all(|(&g, &done)| g > last || done)
            }
        }
    }

    /// Note that frames went behind the erases `passed` (the items of a window up to the
    /// last frame sent): such an erase is not sent again, in this window or the next,
    /// answered or not. The agent runs requests in order, so it ran the erase before those
    /// frames, or lost it; if it lost it, the decoder meets bytes not erased and the
    /// agent refuses them (`NotErased`) before programming any, which
    /// [`StreamErases::restart`] answers. An erase sent again behind frames could run
    /// over what the decoder wrote of its sector.
    pub(crate) fn take_passed(&mut self, passed: &[bool]) {
        for (mine, &now) in self.passed.iter_mut().zip(passed) {
            *mine |= now;
        }
    }

    /// The stream begins again (the agent ended it: an erase it lost, a frame refused):
    /// every unit is erased again, ahead of the stream as at first.
    pub(crate) fn restart(&mut self) {
        self.answered.iter_mut().for_each(|a| *a = false);
        self.passed.iter_mut().for_each(|p| *p = false);
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

#[cfg(test)]
mod tests {
    use super::*;

    const D: SectorState = SectorState::Dirty;
    const K: SectorState = SectorState::Done;

    /// A link without a baud rate: the flash's work alone decides.
    const NO_LINE: crate::erase_plan::Load = crate::erase_plan::Load {
        baud: None,
        round_trip: core::time::Duration::ZERO,
        line_bytes: 0,
        program_bytes: 42_592,
        spread: true,
    };

    fn load(baud: u32, line_bytes: u64) -> crate::erase_plan::Load {
        crate::erase_plan::Load {
            baud: Some(baud),
            line_bytes,
            ..NO_LINE
        }
    }

    /// The simulated W25Q128JV's Info, with its blocks.
    fn info() -> fota_protocol::Info {
        crate::erase_plan::tests::info(true)
    }

    /// 11 sectors of 4 KiB (a 42,592-byte image) at the start of a slot at 0x50000:
    /// after the plan's 32 KiB block and three sectors.
    fn erases(state: &[SectorState]) -> StreamErases {
        let parts: Vec<(usize, usize)> = (0..11)
            .map(|s| (s * 4096, (s * 4096 + 4096).min(42_592)))
            .collect();
        let ends: Vec<usize> = (1..=11).map(|s| s * 4096).collect();
        let mut e = StreamErases::new(0x5_0000, &parts, &ends, state);
        // The plan's units as crate::erase_plan takes them for this image.
        e.sectors = vec![
            (0, 32 * 1024),
            (32 * 1024, 4096),
            (36 * 1024, 4096),
            (40 * 1024, 4096),
        ];
        e.counts = vec![8, 1, 1, 1];
        e.answered = vec![false; 4];
        e.passed = vec![false; 4];
        e.group = vec![0; 4];
        e
    }

    #[test]
    fn a_short_image_in_a_free_slot_is_one_block_past_its_end() {
        let mut e = erases(&[D; 11]);
        e.cover_past_end(&info(), 256 * 1024, &NO_LINE);
        assert_eq!(e.sectors, [(0, 64 * 1024)]);
        assert_eq!(e.counts, [16]);
        assert_eq!(
            e.request(0),
            Request::EraseSlot {
                addr: 0x5_0000,
                size: 64 * 1024
            }
        );
        // The slot ends before the block would: the plan stands.
        let mut e = erases(&[D; 11]);
        e.cover_past_end(&info(), 48 * 1024, &NO_LINE);
        assert_eq!(e.sectors.len(), 4);
    }

    #[test]
    fn a_block_never_erases_a_sector_that_holds_the_image() {
        // A resume kept sector 9: the units no longer reach the block without a gap.
        let mut state = [D; 11];
        state[9] = K;
        let mut e = erases(&state);
        e.sectors = vec![(0, 32 * 1024), (32 * 1024, 4096), (40 * 1024, 4096)];
        e.counts = vec![8, 1, 1];
        e.answered = vec![false; 3];
        e.passed = vec![false; 3];
        e.group = vec![0; 3];
        e.cover_past_end(&info(), 256 * 1024, &NO_LINE);
        assert_eq!(e.sectors.len(), 3);
        // The last sector kept: the units end before the image does.
        let mut state = [D; 11];
        state[10] = K;
        let mut e = erases(&state);
        e.sectors.pop();
        e.counts.pop();
        e.cover_past_end(&info(), 256 * 1024, &NO_LINE);
        assert_eq!(e.sectors.len(), 3);
    }

    #[test]
    fn a_block_that_saves_nothing_is_not_taken() {
        // Sectors of 10 ms: the 64 KiB block (150 ms) equals the 32 KiB block and three
        // sectors, and a 32 KiB block over the last three (30 ms) is slower.
        let mut i = info();
        i.sector_erase_ms = Some(10);
        let mut e = erases(&[D; 11]);
        e.cover_past_end(&i, 256 * 1024, &NO_LINE);
        assert_eq!(e.sectors.len(), 4);
        // A device that declares no sector erase time: nothing to weigh.
        i.sector_erase_ms = None;
        let mut e = erases(&[D; 11]);
        e.cover_past_end(&i, 256 * 1024, &NO_LINE);
        assert_eq!(e.sectors.len(), 4);
    }

    #[test]
    fn where_the_line_sets_the_pace_a_block_that_stalls_it_more_is_not_taken() {
        let mut i = info();
        i.rx_window = Some(5354);
        // A 968-byte patch at 115200 baud: the flash sets the pace, the block is taken.
        let mut e = erases(&[D; 11]);
        e.cover_past_end(&i, 256 * 1024, &load(115_200, 1_000));
        assert_eq!(e.sectors, [(0, 64 * 1024)]);
        // 140 KB at 921600 baud (1.5 s of line against 0.27 s of flash): the 64 KiB
        // block's 150 ms outlast the queue's 58 ms, the 32 KiB block's 120 ms too, by
        // less, the sectors not at all.
        let mut e = erases(&[D; 11]);
        e.cover_past_end(&i, 256 * 1024, &load(921_600, 140_000));
        assert_eq!(e.sectors.len(), 4);
        // At 115200 baud the queue (465 ms) absorbs either: the block is taken.
        let mut e = erases(&[D; 11]);
        e.cover_past_end(&i, 256 * 1024, &load(115_200, 140_000));
        assert_eq!(e.sectors, [(0, 64 * 1024)]);
    }
}
