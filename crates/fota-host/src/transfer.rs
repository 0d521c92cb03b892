//! Steps 3 and 4 of an update: the slot's sectors compared with the image, the dirty ones
//! erased, the image streamed.

use fota_protocol::{ErrorCode, Info, Op, Record, Reply, Request, SlotDesc};

use crate::device::refused;
use crate::image::md5_of;
use crate::observer::progress64;
use std::cell::RefCell;

use crate::padded::{Padded, SectorState};
use crate::report::Report;
use crate::{Device, HostError, Image, Phase, Plan, Step, Transport};

/// Erase and write one image into one slot, skipping sectors that already hold it:
/// [`compare`] (resume), then [`stream`], which erases each dirty sector just ahead of
/// the stream. `record`: the device's record, read at the update's start (what runs).
/// `checksum_after`: the device's MD5 of the slot comes next (step 5).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn transfer<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    record: &Record,
    slot: &SlotDesc,
    image: &Image,
    plan: &Plan,
    checksum_after: bool,
    report: &mut Report,
) -> Result<(), HostError> {
    // `Device::hello` checked the geometry: sector runs that tile the slot from its start,
    // a write granularity that is a power of two dividing the largest write.
    let gran = usize::from(info.write_granularity);
    // What the stream writes: the image padded with erased bytes (0xFF) to the write
    // granularity. Resume compares the same bytes (a cut while erasing can leave the
    // image's last bytes erased but not the padding after them).
    let padded = Padded::new(image.data(), gran, usize::from(info.max_write).max(1));
    let sectors = Sectors::of(info, slot, image.len());
    // Per sector: does it hold the image already, is it erased?
    let state = if plan.resume {
        compare(dev, slot, image, &padded, &sectors, report).await?
    } else {
        vec![SectorState::Dirty; sectors.parts.len()]
    };
    let skipped: usize = sectors
        .parts
        .iter()
        .zip(&state)
        .filter(|(_, s)| **s == SectorState::Done)
        .map(|(&(a, b), _)| b - a)
        .sum();
    report.skipped_bytes += skipped as u64;
    if skipped > 0 {
        dev.observer()
            .resumed(&image.name, skipped as u64, image.len() as u64);
    }
    stream(
        dev,
        info,
        record,
        slot,
        image,
        plan,
        &padded,
        &sectors,
        &state,
        checksum_after,
        report,
    )
    .await
}

/// The slot's erase sectors an image touches. Their sizes may differ (an STM32F4).
struct Sectors {
    /// Per sector, as offsets in the image: (start, end of the image's part).
    parts: Vec<(usize, usize)>,
    /// Per sector, where it ends (an offset from the slot's start).
    ends: Vec<usize>,
}

impl Sectors {
    fn of(info: &Info, slot: &SlotDesc, len: usize) -> Sectors {
        let mut parts: Vec<(usize, usize)> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        let mut at = 0usize;
        while at < len {
            let addr = slot
                .addr
                .saturating_add(u32::try_from(at).unwrap_or(u32::MAX));
            let (start, size) = info.sector_at(addr);
            let end = (start as usize - slot.addr as usize) + size as usize;
            parts.push((at, end.min(len)));
            ends.push(end);
            at = end;
        }
        Sectors { parts, ends }
    }
}

/// The bytes at the end of each sector that the probes of [`compare`] hash.
const PROBE: usize = 256;

/// The most sectors one `ChecksumSlot` of [`compare`]'s runs hashes: in the probes'
/// pipeline a run is sent once the probes of its chunk of this many sectors are
/// answered, so that the device hashes it while the next chunk's answers cross the line.
const RUN: usize = 8;

/// What [`compare`] takes a device's MD5 to cost, per byte read and hashed, to size the
/// whole-sector MD5s it asks for before any answer is back: a Cortex-M4's MD5 (the md-5
/// crate's, 0.22 µs a byte: fota-sim's `CORTEX_M4_MD5_NS_PER_BYTE`) over a SPI NOR flash
/// read (0.16 µs a byte).
const HASH_NS_PER_BYTE: u64 = 384;

/// The link's latency there and back that [`compare`] assumes before any call measured
/// it: a USB-serial adapter's 16 ms each way, the slowest usual.
const DEFAULT_LATENCY: core::time::Duration = core::time::Duration::from_millis(32);

/// Compare each sector of the slot with the image: which ones hold it already, which are
/// erased, which must be erased. Every verdict is exact, as exact as comparing MD5s of
/// whole sectors: a sector is `Done` only when the device's MD5 of all of it equals the
/// image's, `Erased` only when it equals that of `0xFF`s (docs/PROTOCOL.md 6.7, step 3).
///
/// It costs little where the slot holds something else (an older image: the common
/// case), and about one read and hash of the slot, as one MD5 a sector did, where it is
/// erased or holds the image; in one pipeline:
///
/// 1. The MD5 of the last [`PROBE`] bytes of the last sector (behind the first sector's
///    whole MD5, so that the device starts hashing at once): a slot whose last sector
///    is erased (or holds the image) is most likely erased (or written) all through,
///    since the stream fills the slot from its start. Behind it, before its answer can
///    be back, the whole MD5 of each next sector, as many as the device hashes in the
///    link's round trip (`Device::latency`): their verdicts are exact, and the device
///    works while the answer crosses the line instead of waiting for it. That costs a
///    slot holding something else about a round trip of hashing more than probes alone
///    would, and saves an erased slot the probes, which are all it would hash twice.
/// 2. If the last sector's probe says erased (or the image): one MD5 of each run of
///    [`RUN`] sectors after those, equal to the erased MD5 (or the image's) of the run
///    → every sector of it is erased (or done), equal MD5s of the run meaning equal
///    bytes in each of its sectors.
/// 3. Otherwise the MD5 of the last [`PROBE`] bytes of each other sector: one that
///    differs from both the image's bytes there and erased bytes proves the sector
///    neither holds the image nor is erased (`Dirty` for certain, at a sixteenth of a
///    4 KiB sector's read and hash; the probe is at the sector's end because a sector an
///    interrupted update left part written shows erased bytes there). Consecutive
///    sectors whose probes say the same (the image, or erased) are checked as one run,
///    within chunks of [`RUN`] sectors, sent as soon as the probes of its chunk are
///    answered, so the device hashes runs while the other probes' answers cross the line.
/// 4. A run whose MD5 differs (a sector torn in it) gets each of its sectors hashed
///    whole, one sector a request, in a second pipeline.
async fn compare<T: Transport>(
    dev: &mut Device<T>,
    slot: &SlotDesc,
    image: &Image,
    padded: &Padded<'_>,
    sectors: &Sectors,
    report: &mut Report,
) -> Result<Vec<SectorState>, HostError> {
    let t = dev.now();
    dev.observer().step(
        Step::Erase,
        &format!(
            "Comparing {} sectors of the slot with {}",
            sectors.parts.len(),
            image.name
        ),
    );
    // What the stream writes into each sector: the image's part, the padding after the
    // image's end included.
    let mut ranges = sectors.parts.clone();
    if let Some(last) = ranges.last_mut() {
        last.1 = padded.len();
    }
    let count = ranges.len();
    let total = image.len() as u64;
    let mut progress = Progress {
        start: t,
        total,
        done: 0,
    };
    let mut state: Vec<Option<SectorState>> = vec![None; count];
    let probes: Vec<(usize, usize)> = ranges
        .iter()
        .map(|&(a, b)| (b.saturating_sub(PROBE).max(a), b))
        .collect();
    let erased_md5 = |a: usize, b: usize| md5_of(&vec![0xFF; b - a]);
    let verdict = |md5: Option<[u8; 16]>, a: usize, b: usize| match md5 {
        Some(md5) if md5 == padded.md5(a, b) => SectorState::Done,
        Some(md5) if md5 == erased_md5(a, b) => SectorState::Erased,
        _ => SectorState::Dirty,
    };

    // The head: the first sectors whose whole MD5s the device hashes in the time the
    // last sector's probe's answer takes to come back and a request to reach it (the
    // latency, both frames' line time, the probe's hash). All of them when the rest is
    // a sector or none: its probe would decide nothing.
    let budget = dev.latency().unwrap_or(DEFAULT_LATENCY)
        + dev.line_time(64)
        + core::time::Duration::from_nanos(PROBE as u64 * HASH_NS_PER_BYTE);
    let budget_bytes = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX) / HASH_NS_PER_BYTE;
    // The first sector goes before the probe: its time counts as well.
    let budget_bytes = budget_bytes + ranges.first().map_or(0, |&(a, b)| (b - a) as u64);
    let mut head = 0usize;
    let mut hashed = 0u64;
    while head < count && hashed < budget_bytes {
        hashed += (ranges[head].1 - ranges[head].0) as u64;
        head += 1;
    }
    if head + 1 >= count {
        head = count;
    }
    let last = count.saturating_sub(1);
    // The pipeline's requests: the first sector's whole MD5 (so that the device starts
    // hashing as soon as it can), the last sector's probe (none if the head is all),
    // the other sectors of the head, then one slot per sector after the head (a run's
    // MD5 at each chunk's start if the probe said erased or the image, else the
    // sector's probe), then one per sector after the head again (the runs after the
    // probes).
    let p = usize::from(head < count);
    let after = count - head;
    let (a_at, b_at) = (p + head, p + head + after);
    // Per sector, what its probe says: `Some(Done)` the image, `Some(Erased)` erased
    // (to be confirmed by a run, unless the probe is the whole sector), `Some(Dirty)`
    // neither, or unreadable.
    let guess: RefCell<Vec<Option<SectorState>>> = RefCell::new(vec![None; count]);
    // Whether the last sector's probe says erased or the image (runs, no probes).
    let uniform = || {
        matches!(
            guess.borrow()[last],
            Some(SectorState::Done | SectorState::Erased)
        )
    };
    // The runs after the probes: consecutive sectors whose probe says the same, not
    // across a chunk of [`RUN`] sectors from the head's end. `None`: no run starts at `j`.
    let run_at = |guess: &[Option<SectorState>], j: usize| -> Option<(usize, SectorState)> {
        let g = guess[j].filter(|g| *g != SectorState::Dirty)?;
        if probes[j] == ranges[j] {
            return None; // the probe was the whole sector
        }
        let starts = (j - head).is_multiple_of(RUN)
            || guess[j - 1] != Some(g)
            || probes[j - 1] == ranges[j - 1];
        if !starts {
            return None;
        }
        let chunk_end = head + ((j - head) / RUN + 1) * RUN;
        let mut end = j + 1;
        while end < count.min(chunk_end) && guess[end] == Some(g) && probes[end] != ranges[end] {
            end += 1;
        }
        Some((end, g))
    };
    let ready = |i: usize| {
        if i < a_at {
            return true;
        }
        let guess = guess.borrow();
        if guess[last].is_none() {
            return false; // what follows depends on the last sector's probe
        }
        if i < b_at || uniform() {
            return true;
        }
        let j = i - b_at + head;
        let from = head + (j - head) / RUN * RUN;
        guess[from..(from + RUN).min(count)]
            .iter()
            .all(Option::is_some)
    };
    // What request `i` asks: the range, and what kind of answer it is.
    #[derive(Clone, Copy)]
    enum Ask {
        Probe(usize),
        Whole(usize),
        Run(usize, usize),
    }
    let ask = |i: usize| -> Option<Ask> {
        if p == 1 && i == 1 {
            return Some(Ask::Probe(last));
        }
        if i < a_at {
            return Some(Ask::Whole(if i == 0 { 0 } else { i - p }));
        }
        if i < b_at {
            let j = i - a_at + head;
            if uniform() {
                let starts = (j - head).is_multiple_of(RUN);
                // The last sector's probe needs no second hash: the run stops short of
                // it (and there is nothing left to ask if it was the whole sector).
                let none_left = j == last && probes[last] == ranges[last];
                return (starts && !none_left).then(|| Ask::Run(j, (j + RUN).min(count)));
            }
            return (j != last).then_some(Ask::Probe(j));
        }
        if uniform() {
            return None;
        }
        let j = i - b_at + head;
        let (end, _) = run_at(&guess.borrow(), j)?;
        Some(Ask::Run(j, end))
    };
    let span = |ask: Ask| match ask {
        Ask::Probe(j) => probes[j],
        Ask::Whole(j) => ranges[j],
        Ask::Run(j, end) if end == count && p == 1 && uniform() => (ranges[j].0, probes[last].0),
        Ask::Run(j, end) => (ranges[j].0, ranges[end - 1].1),
    };
    let slot_addr = slot.addr;
    let make = |i: usize| {
        let (a, b) = span(ask(i)?);
        Some(Request::ChecksumSlot {
            addr: slot_addr + a as u32,
            size: (b - a) as u32,
        })
    };
    dev.pipeline_some(b_at + after, &make, &ready, &mut |obs, now, i, reply| {
        let md5 = match reply {
            Reply::Checksum(md5) => Some(md5),
            // Unreadable (ECC flash: a word a power cut tore): erasing makes it readable.
            Reply::Error {
                code: ErrorCode::FlashFailure,
                ..
            } => None,
            other => return Err(refused(Op::ChecksumSlot, &other)),
        };
        let Some(ask) = ask(i) else {
            return Ok(());
        };
        let (a, b) = span(ask);
        match ask {
            Ask::Probe(j) => {
                let g = verdict(md5, a, b);
                guess.borrow_mut()[j] = Some(g);
                // A probe that covers the whole sector is its verdict; so is a dirty one.
                if probes[j] == ranges[j] || g == SectorState::Dirty {
                    state[j] = Some(g);
                }
            }
            Ask::Whole(j) => state[j] = Some(verdict(md5, a, b)),
            Ask::Run(j, end) => {
                // Equal to the image's MD5 of the run, or the erased one: so is each of
                // its sectors (whatever the probes said), the last one's probe saying
                // the same where the run stops short of it. Otherwise each is hashed
                // whole.
                let got = verdict(md5, a, b);
                let tail = if b < ranges[end - 1].1 {
                    guess.borrow()[last]
                } else {
                    Some(got)
                };
                if got != SectorState::Dirty && tail == Some(got) {
                    state[j..end].fill(Some(got));
                }
            }
        }
        progress.settled(obs, now, &ranges, &state);
        Ok(())
    })
    .await?;

    // 4. Each sector of a run that differed, whole.
    let rest: Vec<usize> = (0..count).filter(|&i| state[i].is_none()).collect();
    let rest_ranges: Vec<(usize, usize)> = rest.iter().map(|&i| ranges[i]).collect();
    let sums = checksums(dev, slot, &rest_ranges).await?;
    for (k, &i) in rest.iter().enumerate() {
        let (a, b) = ranges[i];
        state[i] = Some(verdict(sums[k], a, b));
    }
    let now = dev.now();
    progress.settled(dev.observer(), now, &ranges, &state);
    report.compare_time += dev.now() - t;
    Ok(state
        .into_iter()
        .map(|s| s.unwrap_or(SectorState::Dirty))
        .collect())
}

/// The compare's progress: the bytes of the sectors it has settled.
struct Progress {
    start: core::time::Duration,
    total: u64,
    done: u64,
}

impl Progress {
    fn settled(
        &mut self,
        obs: &mut dyn crate::Observer,
        now: core::time::Duration,
        ranges: &[(usize, usize)],
        state: &[Option<SectorState>],
    ) {
        let done: u64 = ranges
            .iter()
            .zip(state)
            .filter(|(_, s)| s.is_some())
            .map(|(&(a, b), _)| (b - a) as u64)
            .sum::<u64>()
            .min(self.total);
        if done > self.done || done == self.total {
            self.done = done;
            obs.progress(&progress64(
                Phase::Compare,
                done,
                self.total,
                now - self.start,
            ));
        }
    }
}

/// The device's MD5 of each range (offsets in the slot), pipelined; `None` where the
/// device cannot read the range (`FlashFailure`: an ECC word a power cut tore).
async fn checksums<T: Transport>(
    dev: &mut Device<T>,
    slot: &SlotDesc,
    ranges: &[(usize, usize)],
) -> Result<Vec<Option<[u8; 16]>>, HostError> {
    let mut sums = vec![None; ranges.len()];
    if ranges.is_empty() {
        return Ok(sums);
    }
    let slot_addr = slot.addr;
    let make = |i: usize| {
        let (a, b) = ranges[i];
        Request::ChecksumSlot {
            addr: slot_addr + a as u32,
            size: (b - a) as u32,
        }
    };
    dev.pipeline(ranges.len(), &make, &mut |_, _, i, reply| {
        sums[i] = match reply {
            Reply::Checksum(md5) => Some(md5),
            Reply::Error {
                code: ErrorCode::FlashFailure,
                ..
            } => None,
            other => return Err(refused(Op::ChecksumSlot, &other)),
        };
        Ok(())
    })
    .await?;
    Ok(sums)
}

/// Send the sectors not done: compressed or delta where the agent decodes it
/// (crate::codec), raw otherwise; either way each dirty sector is erased just ahead of
/// the blocks that write it while the others stream (crate::erase_ahead).
#[allow(clippy::too_many_arguments)]
async fn stream<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    record: &Record,
    slot: &SlotDesc,
    image: &Image,
    plan: &Plan,
    padded: &Padded<'_>,
    sectors: &Sectors,
    state: &[SectorState],
    checksum_after: bool,
    report: &mut Report,
) -> Result<(), HostError> {
    let gran = usize::from(info.write_granularity);
    let done: Vec<bool> = state.iter().map(|s| *s == SectorState::Done).collect();
    // A delta's first base is taken before the device's MD5 of it is back: that MD5 is
    // asked for ahead of the stream, in its pipeline (crate::codec::BaseSearch). If it is
    // not the base, the next candidates are checked as before.
    let mut search = crate::codec::BaseSearch {
        skip: 0,
        speculate: true,
    };
    loop {
        let prepared = crate::codec::prepare_stream(
            dev,
            info,
            record,
            slot,
            image,
            plan.codec,
            &plan.bases,
            plan.encoder.as_ref(),
            &sectors.parts,
            &done,
            search,
        )
        .await?;
        // The device's MD5 of the slot (step 5) rides behind the stream's or the raw
        // image's last request when it comes next: a round trip saved, and the same check
        // (the agent runs it after every request before it; one sent again after it makes
        // the host ask again).
        if checksum_after {
            let size = crate::plan::image_len(image)?;
            dev.send_after_pipeline(Some(Request::ChecksumSlot {
                addr: slot.addr,
                size,
            }));
        }
        // Compressed or delta where the agent decodes it (crate::codec), raw otherwise;
        // either way each dirty sector is erased just ahead of the stream
        // (crate::erase_ahead).
        let Some(prepared) = prepared else {
            let streamed = crate::erase_ahead::erase_and_stream(
                dev,
                slot,
                padded,
                gran,
                &sectors.parts,
                &sectors.ends,
                state,
                report,
            )
            .await;
            dev.send_after_pipeline(None);
            return streamed;
        };
        let erases = crate::stream_erases::StreamErases::new(
            slot.addr,
            &sectors.parts,
            &sectors.ends,
            state,
        );
        let sent = prepared
            .send(dev, info, slot, &sectors.parts, &done, erases, report)
            .await;
        dev.send_after_pipeline(None);
        match sent {
            Ok(true) => return Ok(()),
            Ok(false) if search.speculate && search.skip == 0 => {
                dev.observer().event(
                    "the delta's base is not on the device (checked by its MD5): looking \
                     for another",
                );
                search = crate::codec::BaseSearch {
                    skip: 1,
                    speculate: false,
                };
            }
            Ok(false) => {
                return Err(HostError::Protocol(
                    "the delta's base was checked, yet the device's MD5 of it changed".into(),
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
