//! The transfer's unit tests.

use core::time::Duration;

use fota_protocol::SlotKind;
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use fota_sim::images;
use futures::executor::block_on;

use super::*;
use crate::sim::{SimTransport, Virtual};

/// On an erased slot at 16 ms each way, [`compare`] against what it replaced, one
/// MD5 a sector in one pipeline: its verdicts, requests and virtual time.
fn erased_slot(baud: u32, old: bool) -> (Vec<SectorState>, u64, Duration) {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.latency_ns = 16_000_000;
    let link = SimTransport::new(SimDevice::new(cfg), Virtual);
    let mut dev = Device::new(link, Box::new(crate::NullObserver));
    assert_eq!(block_on(dev.negotiate_baud(&[baud])).expect("baud"), baud);
    let info = block_on(dev.hello()).expect("hello");
    let slot = *info
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::Bytecode)
        .nth(1)
        .expect("bytecode slot 1");
    // A last sector 1000 bytes short of whole.
    let len = slot.size as usize - 1000;
    let body = len - images::HEADER_LEN;
    let bytes = images::sample_image(SlotKind::Bytecode, "new", "2", true, body);
    let image = Image::new("new.bin", bytes).expect("image");
    let gran = usize::from(info.write_granularity);
    let padded = Padded::new(image.data(), gran, usize::from(info.max_write));
    let sectors = Sectors::of(&info, &slot, image.len());
    let mut report = Report::start();
    let (frames, t) = (dev.stats().frames_sent, dev.now());
    let state = if old {
        let mut ranges = sectors.parts.clone();
        if let Some(last) = ranges.last_mut() {
            last.1 = padded.len();
        }
        let sums = block_on(checksums(&mut dev, &slot, &ranges)).expect("checksums");
        let erased = |&(a, b): &(usize, usize)| md5_of(&vec![0xFF; b - a]);
        (sums.iter().zip(&ranges))
            .map(|(sum, r)| match sum {
                Some(md5) if *md5 == erased(r) => SectorState::Erased,
                _ => SectorState::Dirty,
            })
            .collect()
    } else {
        let run = compare(&mut dev, &slot, &image, &padded, &sectors, &mut report);
        block_on(run).expect("compare")
    };
    (state, dev.stats().frames_sent - frames, dev.now() - t)
}

/// An erased slot (a device's first update) costs the comparison no more requests
/// and no more time than one MD5 a sector did, at 115200 and 921600 baud: the device
/// hashes whole sectors from the first request on, while the probe of the last
/// sector crosses the line, then whole runs.
#[test]
fn an_erased_slot_compares_no_slower_than_one_md5_a_sector() {
    for baud in [115_200, 921_600] {
        let (state, n, t) = erased_slot(baud, false);
        let (old_state, old_n, old_t) = erased_slot(baud, true);
        assert!(state.iter().all(|s| *s == SectorState::Erased), "{state:?}");
        assert_eq!(state, old_state);
        // Half: the head holds the sectors the device hashes in a round trip, one
        // request each, 29-31 of 64 with md-5's 224 ns a byte (19-21 at 672 ns).
        assert!(n * 2 <= old_n, "{baud}: {n} requests, one a sector {old_n}");
        assert!(t <= old_t, "{baud}: {t:?}, one MD5 a sector {old_t:?}");
    }
}
