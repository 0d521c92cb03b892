//! Steps 3 and 4 of an update: the slot's sectors compared with the image, the dirty ones
//! erased, the image streamed.

use fota_protocol::{ErrorCode, Info, Op, Reply, Request, SlotDesc};

use crate::device::refused;
use crate::image::md5_of;
use crate::observer::progress64;
use std::cell::RefCell;

use crate::padded::{Padded, SectorState};
use crate::report::Report;
use crate::{Device, HostError, Image, Phase, Plan, Step, Transport};

/// Erase and write one image into one slot, skipping sectors that already hold it:
/// [`compare`] (resume), then [`stream`], which erases each dirty sector just ahead of
/// the stream. `checksum_after`: the device's MD5 of the slot comes next (step 5).
pub(crate) async fn transfer<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
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

/// The bytes at the end of each sector that the first pass of [`compare`] hashes.
const PROBE: usize = 256;

/// The most sectors one `ChecksumSlot` of [`compare`]'s second pass hashes: a run is sent
/// once the probes of its chunk of this many sectors are answered, so that the device
/// hashes it while the next chunk's answers cross the line.
const RUN: usize = 8;

/// Compare each sector of the slot with the image: which ones hold it already, which are
/// erased, which must be erased. Every verdict is exact, as exact as comparing MD5s of
/// whole sectors: a sector is `Done` only when the device's MD5 of all of it equals the
/// image's, `Erased` only when it equals that of `0xFF`s.
///
/// It costs little where the slot holds something else (an older image: the common
/// case), in two pipelines (docs/PROTOCOL.md 6.7, step 3):
///
/// 1. The MD5 of the last [`PROBE`] bytes of each sector. A probe that differs from both
///    the image's bytes there and erased bytes proves the sector neither holds the image
///    nor is erased (different MD5s mean different bytes): `Dirty`, for certain, at a
///    sixteenth of a 4 KiB sector's read and hash. The probe is at the sector's end
///    because the stream fills a sector from its start: a sector an interrupted update
///    left part written shows erased bytes there, not the image's.
/// 2. Every other sector still needs its whole MD5. Consecutive ones whose probe says
///    the same (the image, or erased) are checked as one run, one `ChecksumSlot` for the
///    run, up to [`RUN`] sectors, in the same pipeline as the probes as soon as their
///    probes are answered: equal to the image's MD5 (or the erased one) of the run, every
///    sector of it is done (or erased), since equal MD5s of the run mean equal bytes in
///    each of its sectors. So a resume (a prefix of sectors done) and an erased slot cost
///    about one read and hash of what they hold, as before, plus the probes' answers on
///    the line (which the device's hashing of the runs mostly hides).
/// 3. A run whose MD5 differs (a sector torn in it) gets each of its sectors hashed
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

    // 1 and 2 in one pipeline: the probes (requests 0..count), then a run's MD5 (request
    // count + j for the run that starts at sector j), sent as soon as the probes of its
    // chunk of sectors are answered, so that the device hashes runs while the other
    // probes' answers are still on the line.
    let probes: Vec<(usize, usize)> = ranges
        .iter()
        .map(|&(a, b)| (b.saturating_sub(PROBE).max(a), b))
        .collect();
    let erased_md5 = |a: usize, b: usize| md5_of(&vec![0xFF; b - a]);
    // Per sector, what its probe says: `Some(Done)` the image, `Some(Erased)` erased
    // (both to be confirmed by a run, unless the probe is the whole sector), `Some(Dirty)`
    // neither, or unreadable.
    let guess: RefCell<Vec<Option<SectorState>>> = RefCell::new(vec![None; count]);
    // The runs: consecutive sectors whose probe says the same, not across a chunk of
    // [`RUN`] sectors (a run is sent once its chunk's probes are answered). `None`: no
    // run starts at `j`.
    let run_at = |guess: &[Option<SectorState>], j: usize| -> Option<(usize, SectorState)> {
        let g = guess[j].filter(|g| *g != SectorState::Dirty)?;
        if probes[j] == ranges[j] {
            return None; // the probe was the whole sector
        }
        let starts =
            j.is_multiple_of(RUN) || guess[j - 1] != Some(g) || probes[j - 1] == ranges[j - 1];
        if !starts {
            return None;
        }
        let chunk_end = (j / RUN + 1) * RUN;
        let mut end = j + 1;
        while end < count.min(chunk_end) && guess[end] == Some(g) && probes[end] != ranges[end] {
            end += 1;
        }
        Some((end, g))
    };
    let ready = |i: usize| {
        if i < count {
            return true;
        }
        let j = i - count;
        let chunk = (j / RUN * RUN)..((j / RUN + 1) * RUN).min(count);
        let guess = guess.borrow();
        guess[chunk].iter().all(Option::is_some)
    };
    let slot_addr = slot.addr;
    let make = |i: usize| {
        let (a, b) = if i < count {
            probes[i]
        } else {
            let j = i - count;
            let (end, _) = run_at(&guess.borrow(), j)?;
            (ranges[j].0, ranges[end - 1].1)
        };
        Some(Request::ChecksumSlot {
            addr: slot_addr + a as u32,
            size: (b - a) as u32,
        })
    };
    dev.pipeline_some(2 * count, &make, &ready, &mut |obs, now, i, reply| {
        let md5 = match reply {
            Reply::Checksum(md5) => Some(md5),
            // Unreadable (ECC flash: a word a power cut tore): erasing makes it readable.
            Reply::Error {
                code: ErrorCode::FlashFailure,
                ..
            } => None,
            other => return Err(refused(Op::ChecksumSlot, &other)),
        };
        if i < count {
            let (a, b) = probes[i];
            let g = match md5 {
                Some(md5) if md5 == padded.md5(a, b) => SectorState::Done,
                Some(md5) if md5 == erased_md5(a, b) => SectorState::Erased,
                _ => SectorState::Dirty,
            };
            guess.borrow_mut()[i] = Some(g);
            // A probe that covers the whole sector is its verdict; so is a dirty one.
            if probes[i] == ranges[i] || g == SectorState::Dirty {
                state[i] = Some(g);
            }
        } else {
            let j = i - count;
            let Some((end, kind)) = run_at(&guess.borrow(), j) else {
                return Ok(());
            };
            let (a, b) = (ranges[j].0, ranges[end - 1].1);
            if md5.is_some_and(|md5| md5 == expected(padded, kind, a, b)) {
                state[j..end].fill(Some(kind));
            }
        }
        progress.settled(obs, now, &ranges, &state);
        Ok(())
    })
    .await?;

    // 3. Each sector of a run that differed, whole.
    let rest: Vec<usize> = (0..count).filter(|&i| state[i].is_none()).collect();
    let rest_ranges: Vec<(usize, usize)> = rest.iter().map(|&i| ranges[i]).collect();
    let sums = checksums(dev, slot, &rest_ranges).await?;
    for (k, &i) in rest.iter().enumerate() {
        let (a, b) = ranges[i];
        state[i] = Some(match sums[k] {
            Some(md5) if md5 == padded.md5(a, b) => SectorState::Done,
            Some(md5) if md5 == md5_of(&vec![0xFF; b - a]) => SectorState::Erased,
            _ => SectorState::Dirty,
        });
    }
    let now = dev.now();
    progress.settled(dev.observer(), now, &ranges, &state);
    report.compare_time += dev.now() - t;
    Ok(state
        .into_iter()
        .map(|s| s.unwrap_or(SectorState::Dirty))
        .collect())
}

/// The MD5 a range `a..b` of the slot has when it is in state `kind`.
fn expected(padded: &Padded<'_>, kind: SectorState, a: usize, b: usize) -> [u8; 16] {
    match kind {
        SectorState::Erased => md5_of(&vec![0xFF; b - a]),
        _ => padded.md5(a, b),
    }
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
    let prepared = crate::codec::prepare_stream(
        dev,
        info,
        slot,
        image,
        plan.codec,
        &plan.bases,
        plan.encoder.as_ref(),
        &sectors.parts,
        &done,
    )
    .await?;
    // Compressed or delta where the agent decodes it (crate::codec), raw otherwise; either
    // way each dirty sector is erased just ahead of the stream (crate::erase_ahead).
    let Some(prepared) = prepared else {
        // The device's MD5 of the slot (step 5) rides behind the last block when it comes
        // next: a round trip saved, and the same check (the agent runs it after every
        // block; a block sent again after it makes the host ask again).
        if checksum_after {
            let size = crate::plan::image_len(image)?;
            dev.send_after_pipeline(Some(Request::ChecksumSlot {
                addr: slot.addr,
                size,
            }));
        }
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
    let erases =
        crate::stream_erases::StreamErases::new(slot.addr, &sectors.parts, &sectors.ends, state);
    prepared
        .send(dev, info, slot, &sectors.parts, &done, erases, report)
        .await
}
