//! The model by which `Codec::Auto` weighs a compressed or delta stream against the raw
//! image: the line's time for the bytes of each, the flash's time for the work, and the
//! time the flash idles waiting for the line (docs/CODECS.md, "Which one is sent").

use core::time::Duration;

use fota_protocol::{Info, Request};

use crate::{Device, HostError, Transport};

pub use crate::erase_plan::DEFAULT_PROGRAM_NS_PER_BYTE;

/// Bytes a request frame adds to the data it carries: the frame's header and CRC
/// (`FRAME_OVERHEAD`), the write's offset, COBS's code bytes (one per 254) and the
/// delimiter, rounded up.
const FRAME_EXTRA: u64 = 18;

/// What the host knows of the link and the flash when it chooses between the raw image
/// and a stream: the line's rate, the round trip it measured, and the flash as `Info`
/// declares it.
///
/// The choice is a model, not a rule: an update takes the longer of the line's time for
/// the bytes sent and the flash's time for the work (each sector erased, every byte
/// programmed, erase ahead overlapping the two), plus the time the flash idles waiting
/// for the line after each erase (the round trip, less what the agent already holds):
///
/// * raw: after each sector's erase the agent has the sector's writes queued; it idles
///   for the round trip beyond their programming time, once a sector, in proportion to
///   the frames that carry it;
/// * stream: its erases run well ahead of their blocks, spread over the frames
///   (`stream_erases::LEAD_FRAMES`), so no block waits for its erases' answers but the
///   first; the flash idles at the start (three round trips: `StreamBegin`'s answer, the
///   first block's erases' answers, the last frame's answer; and the first frame's time
///   on the line) and at the end, where the last `LEAD_FRAMES` frames cross the line
///   after the last erase and the flash waits for them beyond that erase and their
///   programming.
///
/// Where the line is slower than the flash, fewer bytes win; where the flash sets the
/// pace (921600 baud and a short round trip), the raw image, which never waits on an
/// erase answer, is ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// The line's baud rate (8N1); `None` when the link has none (a network link).
    pub baud: Option<u32>,
    /// A request's round trip as the host measured it (a small request).
    pub round_trip: Duration,
    /// One sector's erase (`Info` tag 2; zero when not declared).
    pub sector_erase: Duration,
    /// Programming time per byte, in nanoseconds.
    pub program_ns_per_byte: u64,
    /// Most data bytes in one frame (`Info::max_write`).
    pub max_write: u32,
    /// The bytes of request frames the agent queues (`Info` tag 8), when it declares them:
    /// the host then keeps that much in flight, an erase and the blocks after it.
    pub rx_window: Option<u32>,
    /// The block erases the device declares (`Info` tag 10), ascending: bytes and time
    /// of each. The host erases whole blocks where they pay (crate::erase_plan): the
    /// stream's model takes the best of all sectors and as many blocks of each size as
    /// pay, the raw image's is the host's raw plan itself where `rx_window` is declared.
    pub block_erases: [Option<(u32, Duration)>; 2],
    /// The agent erases in the background (`Info` tag 11): its erases run while the
    /// blocks stream, and only the first one holds the line up
    /// (crate::erase_plan::background).
    pub background_erase: bool,
}

/// The flash work of one update: what the model needs besides the bytes sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Image bytes to write.
    pub image: u64,
    /// Sectors to erase.
    pub sectors: u64,
    /// Bytes of an erase sector.
    pub sector_size: u32,
}

impl Pace {
    /// The line's time for `bytes` of data in frames of `max_write` bytes.
    fn line(&self, bytes: u64) -> Option<f64> {
        let baud = self.baud?;
        let frames = bytes.div_ceil(u64::from(self.max_write.max(1)));
        Some((bytes + frames * FRAME_EXTRA) as f64 * 10.0 / f64::from(baud.max(1)))
    }

    fn flash(&self, work: &Work) -> f64 {
        work.sectors as f64 * self.sector_erase.as_secs_f64()
            + work.image as f64 * self.program_ns_per_byte as f64 * 1e-9
    }

    /// Each block erase, smallest first: its time, its sectors, and how long it stalls
    /// the line beyond what the agent's queue holds. Empty without a line rate.
    fn blocks(&self, work: &Work) -> Vec<(f64, u64, f64)> {
        let mut out: Vec<(f64, u64, f64)> = (self.block_erases.iter().flatten())
            .filter_map(|&(size, erase)| {
                let e = erase.as_secs_f64();
                let k = u64::from(size / work.sector_size.max(1));
                Some((e, k, self.stall(e)?))
            })
            .filter(|b| b.1 > 1)
            .collect();
        out.sort_by_key(|b| b.1);
        out
    }

    /// How long an erase of `erase` seconds stalls the line beyond what the agent's
    /// queue holds (the model crate::erase_plan uses); `None` without a line rate.
    fn stall(&self, erase: f64) -> Option<f64> {
        let baud = self.baud?;
        if self.background_erase {
            // Its erases run while the frames arrive (crate::erase_plan::background).
            return Some(0.0);
        }
        // The queue, and the frame the agent holds besides.
        let held = u64::from(self.max_write) + FRAME_EXTRA;
        let queue =
            (u64::from(self.rx_window.unwrap_or(0)) + held) as f64 * 10.0 / f64::from(baud.max(1));
        // After the erase the line waits about a round trip for the answers that let the
        // host send again (crate::erase_plan::STALL_ROUND_TRIPS).
        let wait = self.round_trip.as_secs_f64() * crate::erase_plan::STALL_ROUND_TRIPS;
        Some((erase + wait - queue).max(0.0))
    }

    /// The modelled time of sending `work` raw; `None` when the link's rate is unknown.
    /// With block erases and a queue declared in bytes (tag 8), the plan the host sends
    /// by (crate::erase_plan::raw_plan: the transfer modelled request by request, with
    /// the blocks and the erases' places that make it shortest), from the first erase's
    /// answer on; otherwise sectors alone.
    pub fn raw(&self, work: &Work) -> Option<Duration> {
        if self.background_erase {
            return self.raw_background(work);
        }
        let sectors = self.raw_sectors(work)?;
        match self.raw_planned(work) {
            Some(planned) => Some(sectors.min(planned)),
            None => Some(sectors),
        }
    }

    /// [`Pace::raw`] by the host's plan, for a slot from a 64 KiB boundary (where the
    /// blocks fall in a slot is the device's; a W25Q-series part's slots start on one).
    fn raw_planned(&self, work: &Work) -> Option<Duration> {
        let baud = self.baud?;
        let blocks: Vec<(u32, Duration)> = self.block_erases.iter().flatten().copied().collect();
        if blocks.is_empty() || self.sector_erase.is_zero() {
            return None;
        }
        let size = work.sector_size.max(1);
        let flash = crate::erase_plan::RawFlash {
            sector_size: size,
            sector_erase: self.sector_erase,
            blocks,
            window: self.rx_window?,
            program_ns_per_byte: self.program_ns_per_byte,
        };
        let n = usize::try_from(work.sectors).ok()?;
        let sectors: Vec<(u32, u32)> = (0..n)
            .map(|s| {
                (
                    u32::try_from(s).unwrap_or(u32::MAX).saturating_mul(size),
                    size,
                )
            })
            .collect();
        let frame = u64::from(self.max_write.max(1));
        let mut writes = Vec::new();
        let mut left = work.image;
        for s in 0..n {
            let mut here = left.min(u64::from(size));
            left -= here;
            while here > 0 {
                let w = here.min(frame);
                writes.push((s, w as u32));
                here -= w;
            }
        }
        let link = crate::erase_plan::RawLink {
            baud,
            round_trip: self.round_trip,
        };
        let plan = crate::erase_plan::raw_plan(&flash, &sectors, &vec![true; n], &writes, link)?;
        // The first erase precedes the stream (its time is the Erase step's).
        let first = plan.spans.first().map_or(0, |&e| e);
        let first = if first > 1 {
            flash
                .blocks
                .iter()
                .find(|b| b.0 == size * first as u32)
                .map_or(self.sector_erase, |b| b.1)
        } else {
            self.sector_erase
        };
        Some(plan.time.saturating_sub(first + self.round_trip))
    }

    /// [`Pace::raw`] for an agent that erases in the background: the host's units
    /// (crate::erase_plan::background, for a slot from a 64 KiB boundary), the first
    /// one's wait beyond the queue, then the longer of the line and the flash's other
    /// work; from the first erase's answer on, as [`Pace::raw`] (which comes at once
    /// here, so the first unit's wait is in it).
    fn raw_background(&self, work: &Work) -> Option<Duration> {
        let baud = self.baud?;
        let size = work.sector_size.max(1);
        let n = usize::try_from(work.sectors).ok()?;
        let blocks: Vec<(u32, Duration)> = self.block_erases.iter().flatten().copied().collect();
        let sectors: Vec<(u32, u32)> = (0..n)
            .map(|s| {
                (
                    u32::try_from(s).unwrap_or(u32::MAX).saturating_mul(size),
                    size,
                )
            })
            .collect();
        let spans = crate::erase_plan::background::spans_of(
            size,
            self.sector_erase,
            &blocks,
            &sectors,
            &vec![true; n],
        );
        let unit = |s: usize| {
            let k = spans[s] - s;
            (blocks.iter())
                .find(|b| k > 1 && b.0 == size.saturating_mul(k as u32))
                .map_or(self.sector_erase, |b| b.1)
        };
        let mut units = Vec::new();
        let mut s = 0;
        while s < n {
            units.push(unit(s));
            s = spans[s];
        }
        let first = units.first().copied().unwrap_or_default();
        let frames = work.image.div_ceil(u64::from(self.max_write.max(1)));
        let held = u64::from(self.max_write) + FRAME_EXTRA;
        let queue_bytes = u64::from(self.rx_window.unwrap_or(0)) + held;
        let t = crate::erase_plan::background::Transfer {
            first,
            rest: units.iter().skip(1).sum(),
            line: Duration::from_secs_f64(self.line(work.image)?),
            program: Duration::from_nanos(work.image.saturating_mul(self.program_ns_per_byte)),
            frames,
            queue: Duration::from_secs_f64(queue_bytes as f64 * 10.0 / f64::from(baud.max(1))),
            round_trip: self.round_trip,
        };
        // The first unit's wait is the stream's here (its erase is answered at once).
        Some(t.time().saturating_sub(self.round_trip))
    }

    fn raw_sectors(&self, work: &Work) -> Option<Duration> {
        let line = self.line(work.image)?;
        let program_ns = self.program_ns_per_byte as f64 * 1e-9;
        // The flash idles after each sector for what of the round trip the work waiting
        // at the agent does not cover: a sector's blocks with a window of requests, an
        // erase and as many whole blocks as the queue holds with a window in bytes.
        let queued = match self.rx_window {
            Some(window) => {
                let frame = u64::from(self.max_write.max(1)) + FRAME_EXTRA;
                let blocks = u64::from(window) / frame;
                (blocks * u64::from(self.max_write)) as f64 * program_ns
                    + self.sector_erase.as_secs_f64()
            }
            None => f64::from(work.sector_size) * program_ns,
        };
        let idle = (self.round_trip.as_secs_f64() - queued).max(0.0);
        let flash = self.flash(work) + work.sectors as f64 * idle;
        Some(Duration::from_secs_f64(line.max(flash)))
    }

    /// The modelled time of sending `work` as a stream of `sent` bytes in `blocks`
    /// blocks; `None` when the link's rate is unknown. With block erases, the best of
    /// 0, 1, ... whole blocks erased: each does a block's sectors' work in its own time
    /// and stalls the line for what the queue does not hold.
    pub fn stream(&self, work: &Work, sent: u64, blocks: u64) -> Option<Duration> {
        let s = self.sector_erase.as_secs_f64();
        // Each choice: (flash time saved, line stalled), over the counts of each size.
        let mut choices = vec![(0.0, 0.0, 0u64)];
        for (e, k, stall) in self.blocks(work) {
            let mut more = Vec::new();
            for &(gain, stalls, used) in &choices {
                for n in 1..=(work.sectors - used) / k {
                    let g = gain + n as f64 * (k as f64 * s - e);
                    more.push((g, stalls + n as f64 * stall, used + n * k));
                }
            }
            choices.extend(more);
        }
        // A sector's erase stalls the line too where it outlasts a declared queue (a long
        // round trip; without tag 8 the raw image's model holds).
        let sector_stall = match self.rx_window {
            Some(_) => self.stall(s).unwrap_or(0.0),
            None => 0.0,
        };
        let mut best: Option<Duration> = None;
        for (gain, stalls, used) in choices {
            let stalls = stalls + (work.sectors - used) as f64 * sector_stall;
            let t = self.stream_with(work, sent, blocks, gain, stalls, used > 0)?;
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        best
    }

    /// [`Pace::stream`] with block erases that save the flash `gain` seconds and stall
    /// the line `stalls` (`any`: at least one).
    fn stream_with(
        &self,
        work: &Work,
        sent: u64,
        blocks: u64,
        gain: f64,
        stalls: f64,
        any: bool,
    ) -> Option<Duration> {
        let line = self.line(sent)?;
        let max_write = u64::from(self.max_write.max(1));
        let first = sent.div_ceil(blocks.max(1)).min(max_write);
        let start = 3.0 * self.round_trip.as_secs_f64() + self.line(first)?;
        // The frames after the last erase: the line's time for them beyond what the
        // flash does meanwhile (that erase, and programming what they decode into). A
        // stream of no more frames than that has all its erases before its first frame.
        let lead = crate::stream_erases::LEAD_FRAMES as u64 * max_write;
        let last = sent.min(lead);
        let erases = if sent <= lead { work.sectors } else { 1 };
        let decoded = (last as f64 * work.image as f64 / sent.max(1) as f64).min(work.image as f64);
        let busy = erases.min(work.sectors) as f64 * self.sector_erase.as_secs_f64()
            + decoded * self.program_ns_per_byte as f64 * 1e-9;
        let end = (self.line(last)? - busy).max(0.0);
        let flash = self.flash(work) - gain + start + end;
        // Where the line sets the pace, it waits at the start for the round trips and
        // the first block's erases (but the first sector's, which comes before the
        // Stream step).
        let per_block = (work.image.div_ceil(blocks.max(1)))
            .div_ceil(u64::from(work.sector_size.max(1)))
            .clamp(1, work.sectors.max(1));
        // With blocks, the first block's erase is one of them.
        let first = if any { 0 } else { per_block - 1 };
        let line = line
            + stalls
            + 3.0 * self.round_trip.as_secs_f64()
            + first as f64 * self.sector_erase.as_secs_f64();
        Some(Duration::from_secs_f64(line.max(flash)))
    }

    /// Whether the flash, not the line, sets the pace of the raw image.
    fn flash_bound(&self, work: &Work) -> bool {
        self.line(work.image)
            .is_some_and(|line| line < self.flash(work))
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// What the model says of a stream against the raw image.
pub(crate) enum Verdict {
    /// Send the raw image, for this reason.
    Raw(String),
    /// Send the stream; the modelled times in words (empty when there is no model).
    Stream(String),
}

/// A `Record` reply's body without extensions (docs/PROTOCOL.md 3.4).
const RECORD_BODY: usize = 45;

/// Raw or the stream (`sent` bytes in `blocks` blocks), by the model ([`Pace`]) of the
/// link and the flash as `info` and the link say, with the round trip of one small
/// request (`GetRecord`): the latency the opening measured and its frames' line time.
pub(crate) async fn judge<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    work: &Work,
    sent: u64,
    blocks: u64,
    what: &str,
) -> Result<Verdict, HostError> {
    let Some(baud) = dev.link().baud() else {
        return Ok(Verdict::Stream(
            "the link's rate is unknown: fewer bytes".into(),
        ));
    };
    // The link's latency as the opening's `Hello` measured it, plus a `GetRecord`'s
    // frames on the line: the round trip of one small request, without asking one (a
    // round trip the update would wait for). Measured on a `GetRecord` where no quick
    // call measured it yet.
    let round_trip = match dev.latency() {
        Some(latency) => {
            let ask = fota_protocol::frame_len(Request::GetRecord.payload_len());
            let answer = fota_protocol::frame_len(fota_protocol::FRAME_OVERHEAD + RECORD_BODY);
            latency + dev.line_time(ask + answer)
        }
        None => {
            let t = dev.now();
            dev.get_record().await?;
            dev.now() - t
        }
    };
    let pace = Pace {
        baud: Some(baud),
        round_trip,
        sector_erase: Duration::from_millis(u64::from(info.sector_erase_ms.unwrap_or(0))),
        program_ns_per_byte: DEFAULT_PROGRAM_NS_PER_BYTE,
        max_write: u32::from(info.max_write),
        rx_window: info.rx_window,
        block_erases: {
            let mut b = info
                .block_erases
                .iter()
                .map(|b| Some((b.size, Duration::from_millis(u64::from(b.ms)))));
            [b.next().flatten(), b.next().flatten()]
        },
        background_erase: info.background_erase,
    };
    Ok(pace.verdict(work, sent, blocks, what))
}

impl Pace {
    /// Raw or the stream, and why, in words.
    /// `what` names the stream ("compressed", "the delta").
    pub(crate) fn verdict(&self, work: &Work, sent: u64, blocks: u64, what: &str) -> Verdict {
        let (Some(raw), Some(stream)) = (self.raw(work), self.stream(work, sent, blocks)) else {
            return Verdict::Stream("the link's rate is unknown: fewer bytes".into());
        };
        let baud = self.baud.unwrap_or(0);
        if raw <= stream {
            let pace = if self.flash_bound(work) {
                format!("the flash, not the link, sets the pace at {baud} baud")
            } else {
                format!("the raw image is as fast at {baud} baud")
            };
            Verdict::Raw(format!(
                "{pace}: about {} raw, {} {what}, by the model",
                secs(raw),
                secs(stream)
            ))
        } else {
            Verdict::Stream(format!(
                "about {} against {} raw at {baud} baud",
                secs(stream),
                secs(raw)
            ))
        }
    }
}

#[cfg(test)]
mod tests;
