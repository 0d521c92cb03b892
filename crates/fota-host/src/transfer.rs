//! Steps 3 and 4 of an update: the slot's sectors compared with the image, the dirty ones
//! erased, the image streamed.

use fota_protocol::{ErrorCode, Info, Op, Reply, Request, SlotDesc};

use crate::device::refused;
use crate::image::md5_of;
use crate::observer::progress64;
use crate::padded::{Padded, SectorState};
use crate::report::Report;
use crate::{Device, HostError, Image, Phase, Plan, Step, Transport};

/// Erase and write one image into one slot, skipping sectors that already hold it:
/// [`compare`] (resume), then [`stream`], which erases each dirty sector just ahead of
/// the stream.
pub(crate) async fn transfer<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    slot: &SlotDesc,
    image: &Image,
    plan: &Plan,
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
        dev, info, slot, image, plan, &padded, &sectors, &state, report,
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

/// Compare each sector of the slot with the image (the device's MD5 of it, pipelined):
/// which ones hold it already, which are erased, which must be erased.
async fn compare<T: Transport>(
    dev: &mut Device<T>,
    slot: &SlotDesc,
    image: &Image,
    padded: &Padded<'_>,
    sectors: &Sectors,
    report: &mut Report,
) -> Result<Vec<SectorState>, HostError> {
    let sectors = &sectors.parts;
    let mut state = vec![SectorState::Dirty; sectors.len()];
    let t = dev.now();
    dev.observer().step(
        Step::Erase,
        &format!(
            "Comparing {} sectors of the slot with {}",
            sectors.len(),
            image.name
        ),
    );
    let mut ranges = sectors.clone();
    if let Some(last) = ranges.last_mut() {
        last.1 = padded.len();
    }
    let erased: Vec<[u8; 16]> = ranges
        .iter()
        .map(|&(a, b)| md5_of(&vec![0xFF; b - a]))
        .collect();
    let wanted: Vec<[u8; 16]> = ranges.iter().map(|&(a, b)| padded.md5(a, b)).collect();
    let slot_addr = slot.addr;
    let make = move |i: usize| {
        let (a, b) = ranges[i];
        Request::ChecksumSlot {
            addr: slot_addr + a as u32,
            size: (b - a) as u32,
        }
    };
    let count = sectors.len();
    let ranges_len: Vec<usize> = sectors.iter().map(|&(a, b)| b - a).collect();
    let total_len = image.len() as u64;
    let mut done = 0u64;
    dev.pipeline(count, &make, &mut |obs, now, i, reply| {
        state[i] = match reply {
            Reply::Checksum(md5) if md5 == wanted[i] => SectorState::Done,
            Reply::Checksum(md5) if md5 == erased[i] => SectorState::Erased,
            Reply::Checksum(_) => SectorState::Dirty,
            // A sector the device cannot read (ECC flash: a word a power cut tore):
            // erasing it makes it readable again.
            Reply::Error {
                code: ErrorCode::FlashFailure,
                ..
            } => SectorState::Dirty,
            other => return Err(refused(Op::ChecksumSlot, &other)),
        };
        done += (ranges_len[i]) as u64;
        obs.progress(&progress64(Phase::Compare, done, total_len, now - t));
        Ok(())
    })
    .await?;
    report.compare_time += dev.now() - t;
    Ok(state)
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
        return crate::erase_ahead::erase_and_stream(
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
    };
    let erases =
        crate::stream_erases::StreamErases::new(slot.addr, &sectors.parts, &sectors.ends, state);
    prepared
        .send(dev, info, slot, &sectors.parts, &done, erases, report)
        .await
}
