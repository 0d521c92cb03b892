//! The sector comparison an update runs first (resume): its verdicts are exact whatever
//! the slot holds, it costs one request a sector where the slot holds something else,
//! and fewer where the slot is erased.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use fota_host::protocol::SlotKind;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Plan, Report};
use fota_host::{Device, HostError, Image, LinkError, Step, Transport, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SECTOR, SimDevice};
use fota_sim::images;
use futures::executor::block_on;

const S: usize = SECTOR as usize;

/// The link, counting the frames the host sends (one `send` a frame).
/// It can also damage one `WriteSlot` frame on its way (the `n`th frame longer than 100
/// bytes), and keeps the length of every frame sent.
struct Counting {
    link: SimTransport<Virtual>,
    sent: Rc<Cell<u64>>,
    damage_write: Option<u64>,
    writes: u64,
    lens: Rc<RefCell<Vec<usize>>>,
}

impl Transport for Counting {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.sent.set(self.sent.get() + 1);
        self.lens.borrow_mut().push(bytes.len());
        if bytes.len() > 100 {
            self.writes += 1;
            if Some(self.writes) == self.damage_write {
                let mut bad = bytes.to_vec();
                bad[bytes.len() / 2] ^= 0x10;
                return self.link.send(&bad).await;
            }
        }
        self.link.send(bytes).await
    }
    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.link.recv(buf, timeout).await
    }
    fn now(&self) -> Duration {
        self.link.now()
    }
    async fn sleep(&mut self, d: Duration) {
        self.link.sleep(d).await
    }
    async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.link.set_baud(baud).await
    }
    fn baud(&self) -> Option<u32> {
        self.link.baud()
    }
}

/// What the update said besides its report: its events (a sector found not erased when
/// its blocks arrived would show here), and the frames sent from the start of the
/// comparison to the start of the stream.
struct Heard {
    sent: Rc<Cell<u64>>,
    events: Rc<RefCell<Vec<String>>>,
    compare: Rc<Cell<(Option<u64>, Option<u64>)>>,
}

impl fota_host::Observer for Heard {
    fn event(&mut self, line: &str) {
        self.events.borrow_mut().push(line.to_string());
    }
    fn step(&mut self, step: Step, detail: &str) {
        let (from, to) = self.compare.get();
        if step == Step::Erase && detail.starts_with("Comparing") {
            self.compare.set((Some(self.sent.get()), to));
        } else if step == Step::Erase && from.is_some() && to.is_none() {
            self.compare.set((from, Some(self.sent.get())));
        }
    }
}

/// The image: 8 whole sectors and 1000 bytes of a ninth.
fn new_image() -> Vec<u8> {
    image_of(8)
}

/// An image of `whole` sectors and 1000 bytes of one more.
fn image_of(whole: usize) -> Vec<u8> {
    let len = whole * S + 1000;
    images::sample_image(
        SlotKind::Bytecode,
        "new",
        "2",
        true,
        len - images::HEADER_LEN,
    )
}

/// An update of `image` into bytecode slot 1, which holds `slot` beforehand: its report,
/// the events it gave, and the requests the comparison sent.
fn update_over(slot: &[u8], image: &[u8]) -> (Report, Vec<String>, u64) {
    let (report, events, compare, _, _) = run_update(slot, image, None);
    (report.expect("update"), events, compare)
}

/// What [`update_over`] gives, the update's result as it is, with the `damage_write`th
/// block damaged on the line; also the lengths of the frames sent, and the frames sent
/// again.
fn run_update(
    slot: &[u8],
    image: &[u8],
    damage_write: Option<u64>,
) -> (Result<Report, HostError>, Vec<String>, u64, Vec<usize>, u64) {
    let cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    let current = images::blink_v1();
    // A device that runs: a VM in its VM slot, a program in bytecode slot 0.
    let vm = images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 16 * 1024);
    let flash = cfg.flash_with(&[
        (SlotKind::Vm, 0, &vm),
        (SlotKind::Bytecode, 0, &current),
        (SlotKind::Bytecode, 1, slot),
    ]);
    let sim = SimDevice::from_image(cfg, flash).expect("flash");
    let sent = Rc::new(Cell::new(0));
    let heard = Heard {
        sent: sent.clone(),
        events: Rc::default(),
        compare: Rc::default(),
    };
    let (events, compare) = (heard.events.clone(), heard.compare.clone());
    let lens = Rc::new(RefCell::new(Vec::new()));
    let link = Counting {
        link: SimTransport::new(sim, Virtual),
        sent,
        damage_write,
        writes: 0,
        lens: lens.clone(),
    };
    let mut dev = Device::new(link, Box::new(heard));
    let mut plan = Plan::new(Image::new("new.bin", image.to_vec()).expect("image"));
    plan.restart = false;
    plan.codec = fota_host::Codec::None;
    let report = block_on(update(&mut dev, &plan));
    let (Some(from), Some(to)) = compare.get() else {
        panic!("no comparison seen");
    };
    let events = events.borrow().clone();
    let lens = lens.borrow().clone();
    (report, events, to - from, lens, dev.stats().resent)
}

/// The device's MD5 of the slot rides behind the last block, the `Attempt` carrying the
/// image's MD5 behind it; a block sent again after them (here the last
/// but one, damaged on the line) makes their answers stale (the agent refused that
/// attempt: the slot's MD5 was another), and the host asks again instead of taking
/// them: the update goes through (a stale MD5 would stop it before `attempt`), with one
/// more checksum and attempt than a clean run (the record is not read after either:
/// the checked attempt's record follows from the one read at the start).
#[test]
fn the_md5_sent_behind_the_last_block_is_asked_again_after_a_block_sent_again() {
    let image = new_image();
    let older = images::sample_image(SlotKind::Bytecode, "old", "1", true, 9 * S);
    let blocks = (8 * S / 1024 + 1) as u64;
    // The short frames after the first block: erases, the checksum(s), attempt, record.
    let short_after_blocks = |lens: &[usize]| {
        let first = lens.iter().position(|&l| l > 100).expect("blocks");
        lens[first..].iter().filter(|&&l| l <= 100).count()
    };
    let (clean, _, _, lens, resent) = run_update(&older, &image, None);
    clean.expect("clean update");
    assert_eq!(resent, 0);
    let clean_short = short_after_blocks(&lens);
    let (damaged, events, _, lens, resent) = run_update(&older, &image, Some(blocks - 1));
    let report = damaged.expect("the update goes through");
    assert!(resent >= 1, "the damaged block was sent again: {events:?}");
    assert_eq!(report.erased_sectors, 9);
    assert_eq!(
        short_after_blocks(&lens),
        clean_short + 2,
        "the checksum and the attempt asked again, nothing else"
    );
}

/// Sectors whose last bytes (what the first pass hashes) say "the image" or "erased"
/// while the rest of the sector says otherwise are erased and written all the same.
#[test]
fn a_sector_that_differs_only_outside_its_probe_is_rewritten() {
    let image = new_image();
    let mut slot = vec![0xFF; 9 * S];
    let older = images::sample_image(SlotKind::Bytecode, "old", "1", true, 9 * S);
    // 0: the image (done); 1: the image but its first byte (dirty); 2: erased;
    // 3: erased but its first byte (dirty); 4, 5: an older image (dirty);
    // 6, 7: the image (done); 8: erased (the image's last 1000 bytes go there).
    slot[..2 * S].copy_from_slice(&image[..2 * S]);
    slot[S] ^= 0x5A;
    slot[3 * S] = 0x00;
    slot[4 * S..6 * S].copy_from_slice(&older[4 * S..6 * S]);
    slot[6 * S..8 * S].copy_from_slice(&image[6 * S..8 * S]);
    assert_eq!(
        &slot[S + 1..2 * S],
        &image[S + 1..2 * S],
        "only outside the probe"
    );

    let (report, events, _) = update_over(&slot, &image);
    // The update's MD5 gate passed (a sector wrongly skipped fails it), sectors 0, 6 and
    // 7 were kept, and exactly 1, 3, 4 and 5 were erased: none met a write unerased
    // (a sector wrongly taken as erased would, and be mended in a second round).
    assert_eq!(report.skipped_bytes, 3 * S as u64, "{report:?}");
    assert_eq!(report.erased_sectors, 4, "{report:?}");
    assert!(
        !events.iter().any(|e| e.contains("not erased")),
        "{events:?}"
    );
}

/// An erased sector whose probe is erased but whose first bytes are not is erased; one
/// that is erased all through is only written.
#[test]
fn an_erased_probe_over_a_written_head_is_not_taken_as_erased() {
    let image = new_image();
    let mut slot = vec![0xFF; 9 * S];
    // An update cut while writing sector 0: its first kilobyte written, the rest erased.
    slot[..1024].copy_from_slice(&image[..1024]);
    let (report, events, _) = update_over(&slot, &image);
    assert_eq!(report.skipped_bytes, 0);
    assert_eq!(report.erased_sectors, 1, "only sector 0: {report:?}");
    assert!(
        !events.iter().any(|e| e.contains("not erased")),
        "{events:?}"
    );
}

/// Where the slot holds something else, the comparison is one request a sector (the
/// whole MD5 of the first sectors, which the device hashes while the last sector's probe
/// crosses the line, then a short probe a sector); where the last sector is erased, one
/// request a run of up to 8 sectors after those first ones; where the slot is half done,
/// the done sectors after the first ones take one request together.
#[test]
fn the_comparison_costs_a_request_a_sector_or_one_a_run() {
    let image = new_image();
    let older = images::sample_image(SlotKind::Bytecode, "old", "1", true, 9 * S);
    let (report, _, n) = update_over(&older, &image);
    assert_eq!(report.skipped_bytes, 0);
    assert_eq!(n, 9, "an older image: a request a sector");
    // 24 sectors: the device hashes the first 9 or so whole in the round trip the host
    // waits for the last sector's probe, so the host asks for those whole.
    let long = image_of(23);
    let erased = vec![0xFF; 24 * S];
    let (report, _, n) = update_over(&erased, &long);
    assert_eq!(report.erased_sectors, 0, "{report:?}");
    assert!(n < 24, "an erased slot: fewer requests than sectors ({n})");
    // Half done (an update cut after sector 4), the rest an older image: the done
    // sectors after the first ones are one run, and only they are hashed whole.
    let mut half = older.clone();
    half[..5 * S].copy_from_slice(&image[..5 * S]);
    let (report, _, n) = update_over(&half, &image);
    assert_eq!(report.skipped_bytes, 5 * S as u64, "{report:?}");
    assert!(
        n == 9 || n == 9 + 1,
        "a resume: a request a sector, one run ({n})"
    );
}
