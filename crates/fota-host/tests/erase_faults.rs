//! Erase-ahead when the frames around an erase are lost: the host sends each sector's
//! blocks right after its `EraseSlot` without waiting for the answer (raw images), or
//! after it (streams), so a lost or damaged erase, or a lost answer to one, must still
//! end with the image in the slot and never a block programmed over old data.
//!
//! Each case updates a slot that holds an older image (every sector is dirty), with one
//! `EraseSlot` request dropped or damaged, or one `Erased` answer dropped, for every
//! erase of the update in turn; the update must end `Accepted` with the slot holding
//! the image byte for byte, and the recovery must show (blocks sent again, or the erase
//! sent again).

use std::time::Duration;

use fota_host::protocol::Layout as _;
use fota_host::protocol::{Event, FrameReader, SlotKind};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan};
use fota_host::{Codec, Device, Image, LinkError, NullObserver, Transport, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use fota_sim::images;

mod support;

const ERASE: u8 = 0x06;
const WRITE: u8 = 0x07;
const STREAM_DATA: u8 = 0x0F;
const ERASED: u8 = 0x86;
const ERROR: u8 = 0xFF;
/// Error codes (docs/PROTOCOL.md 4).
const NOT_ERASED: usize = 12;
const FLASH_FAILURE: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The n-th `EraseSlot` request (1-based) never reaches the device.
    DropErase(u32),
    /// The n-th `EraseSlot` request arrives with a byte flipped.
    DamageErase(u32),
    /// The n-th `Erased` answer never reaches the host.
    DropErased(u32),
    /// The n-th request of this op never reaches the device.
    DropRequest(u8, u32),
    /// The n-th reply of this op (the request's op with bit 7 set) never reaches the
    /// host.
    DropReply(u8, u32),
}

impl Fault {
    /// The three faults of the n-th erase: its request lost or damaged, its answer lost.
    fn each_on_erase(n: u32) -> [Fault; 3] {
        [
            Fault::DropErase(n),
            Fault::DamageErase(n),
            Fault::DropErased(n),
        ]
    }
}

/// No fault (no erase is the 0th).
const NONE: Fault = Fault::DropErase(0);

/// A `SimTransport` that applies one [`Fault`] and counts what the host sends.
struct Faulty {
    inner: SimTransport<Virtual>,
    fault: Fault,
    erases: u32,
    answers: u32,
    /// Requests sent, per op code.
    sent: [u32; 256],
    /// `WriteSlot` requests sent before the last `EraseSlot`.
    writes_before_last_erase: u32,
    /// Replies received, per op code (dropped ones included).
    got: [u32; 256],
    /// Bytes from the device not yet cut into frames.
    pending: Vec<u8>,
    /// Whole frames (and text) for the host.
    ready: Vec<u8>,
    /// Error replies received, per error code.
    errors: [u32; 256],
}

impl Faulty {
    fn new(inner: SimTransport<Virtual>, fault: Fault) -> Self {
        Faulty {
            inner,
            fault,
            erases: 0,
            answers: 0,
            sent: [0; 256],
            writes_before_last_erase: 0,
            got: [0; 256],
            pending: Vec::new(),
            ready: Vec::new(),
            errors: [0; 256],
        }
    }
}

fn op_of(bytes: &[u8]) -> Option<u8> {
    frame_of(bytes).map(|f| f.0)
}

/// The op of the first frame in `bytes`, and the first byte of its body (an error's code).
fn frame_of(bytes: &[u8]) -> Option<(u8, Option<u8>)> {
    let mut reader = FrameReader::<4096>::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, event) = reader.feed(rest);
        rest = &rest[used..];
        if let Some(Event::Frame(f)) = event {
            return Some((f.op, f.body.first().copied()));
        }
    }
    None
}

impl Transport for Faulty {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let op = op_of(bytes);
        if let Some(op) = op {
            self.sent[usize::from(op)] += 1;
        }
        let mut bytes = bytes.to_vec();
        if let (Fault::DropRequest(o, n), Some(op)) = (self.fault, op)
            && o == op
            && self.sent[usize::from(op)] == n
        {
            return Ok(());
        }
        if op == Some(ERASE) {
            self.writes_before_last_erase = self.sent[usize::from(WRITE)];
            self.erases += 1;
            match self.fault {
                Fault::DropErase(n) if n == self.erases => return Ok(()),
                Fault::DamageErase(n) if n == self.erases => {
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0x10;
                }
                _ => {}
            }
        }
        self.inner.send(&bytes).await
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        if self.ready.is_empty() {
            let mut tmp = [0u8; 4096];
            let n = self.inner.recv(&mut tmp, timeout).await?;
            self.pending.extend_from_slice(&tmp[..n]);
            // Frames end with a zero byte: pass each whole one on, or drop it.
            while let Some(end) = self.pending.iter().position(|&b| b == 0) {
                let frame: Vec<u8> = self.pending.drain(..=end).collect();
                let mut framed = vec![0u8];
                framed.extend_from_slice(&frame);
                let got = frame_of(&framed);
                if let Some((ERROR, Some(code))) = got {
                    self.errors[usize::from(code)] += 1;
                }
                if let Some((op, _)) = got {
                    self.got[usize::from(op)] += 1;
                    if self.fault == Fault::DropReply(op, self.got[usize::from(op)]) {
                        continue;
                    }
                }
                if got.map(|f| f.0) == Some(ERASED) {
                    self.answers += 1;
                    if self.fault == Fault::DropErased(self.answers) {
                        continue;
                    }
                }
                self.ready.extend_from_slice(&frame);
            }
        }
        let n = self.ready.len().min(buf.len());
        buf[..n].copy_from_slice(&self.ready[..n]);
        self.ready.drain(..n);
        Ok(n)
    }

    pass_through_to_inner!();
}

const SLOT: u32 = 64 * 1024;

/// A device whose bytecode slot 1 holds an older image of `len` bytes.
/// The device; `blocks`: its agent erases whole 32 and 64 KiB blocks (`Info` tag 10),
/// else sector by sector.
fn device(len: usize, blocks: bool) -> SimDevice {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.bc_slot_size = SLOT;
    cfg.use_block_erases = blocks;
    device_with(cfg, len)
}

/// [`device`] from a configuration.
fn device_with(cfg: DeviceConfig, len: usize) -> SimDevice {
    let payload = len - images::HEADER_LEN;
    // The factory images run (healthy: no watchdog reset during the update).
    let older = images::sample_image(SlotKind::Bytecode, "app", "1.0", true, payload);
    let bytes = support::factory_bytes(&cfg, &[(SlotKind::Bytecode, 1, &older)]);
    SimDevice::from_image(cfg, bytes).expect("whole sectors")
}

/// The new image, `len` bytes: firmware-like bytes that compress (a stream), or the
/// simulator's random sample (raw).
fn new_image(len: usize, compressible: bool) -> Vec<u8> {
    if !compressible {
        let payload = len - images::HEADER_LEN;
        return images::sample_image(SlotKind::Bytecode, "app", "2.0", true, payload);
    }
    support::firmware_bytes(len)
}

struct Run {
    report: fota_host::Report,
    outcome: Outcome,
    holds: bool,
    erases_sent: u32,
    writes_sent: u32,
    frames_sent: u32,
    writes_before_last_erase: u32,
    /// `NotErased` refusals received (a block or a frame that met bytes not erased).
    not_erased: u32,
    /// `FlashFailure` answers received (the flash refused a program: never here).
    flash_failures: u32,
}

fn run(fault: Fault, codec: Codec, image: &[u8]) -> Run {
    run_on(fault, codec, image, false)
}

fn run_on(fault: Fault, codec: Codec, image: &[u8], blocks: bool) -> Run {
    run_sim(fault, codec, image, device(image.len(), blocks))
}

fn run_sim(fault: Fault, codec: Codec, image: &[u8], sim: SimDevice) -> Run {
    let link = Faulty::new(SimTransport::new(sim, Virtual), fault);
    let mut dev = Device::new(link, Box::new(NullObserver));
    let mut plan = Plan::new(Image::new("app.bin", image.to_vec()).expect("image"));
    plan.codec = codec;
    plan.restart = false;
    let report = futures::executor::block_on(update(&mut dev, &plan))
        .unwrap_or_else(|e| panic!("{fault:?} {codec:?}: {e}"));
    let link = dev.into_link();
    let sim = link.inner.device();
    let slot = sim
        .agent_config()
        .slot(SlotKind::Bytecode, 1)
        .expect("slot 1");
    let at = slot.addr as usize;
    Run {
        report: report.clone(),
        outcome: report.outcome,
        holds: sim.flash_bytes()[at..at + image.len()] == image[..],
        erases_sent: link.sent[usize::from(ERASE)],
        writes_sent: link.sent[usize::from(WRITE)],
        frames_sent: link.sent[usize::from(STREAM_DATA)],
        writes_before_last_erase: link.writes_before_last_erase,
        not_erased: link.errors[NOT_ERASED],
        flash_failures: link.errors[FLASH_FAILURE],
    }
}

#[test]
fn raw_update_survives_each_erase_or_its_answer_lost() {
    let len = 40 * 1024; // 10 sectors, 40 blocks of 1 KiB
    let image = new_image(len, false);
    let clean = run(NONE, Codec::None, &image);
    assert!(clean.holds && clean.outcome == Outcome::Attempted);
    assert_eq!(clean.erases_sent, 10);
    // The report says what the erases took: ten sectors at the 45 ms the device declares,
    // of which the update waited for the first alone.
    assert_eq!(clean.report.erased_sectors, 10);
    assert_eq!(clean.report.device_erase_time, Duration::from_millis(450));
    assert!(clean.report.erase_time < Duration::from_millis(100));
    assert!(
        clean
            .report
            .describe_erases()
            .starts_with("erased 10 sectors (0.45 s of flash time"),
        "{}",
        clean.report.describe_erases()
    );
    let blocks = clean.writes_sent;
    let mut cases = 0;
    let mut resent = Vec::new();
    for n in 1..=10 {
        for fault in Fault::each_on_erase(n) {
            let r = run(fault, Codec::None, &image);
            assert_eq!(r.outcome, Outcome::Attempted, "{fault:?}");
            assert!(r.holds, "{fault:?}: the slot does not hold the image");
            // The erase went again, and its sector's blocks (refused, or written before
            // the erase ran again) too; a lost answer may cost only the erase again.
            assert!(
                r.erases_sent > 10,
                "{fault:?}: the erase was not sent again"
            );
            assert!(r.writes_sent >= blocks, "{fault:?}");
            if r.writes_sent > blocks {
                resent.push(fault);
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 30);
    // An erase whose loss shows before its sector's blocks are sent is simply sent again
    // first; the first sector's erase (its copy goes after the first blocks) and the
    // last ones' make blocks go again, refused or erased after they were written.
    eprintln!("blocks sent again after {resent:?}");
    for kind in [
        Fault::DropErase(1),
        Fault::DamageErase(1),
        Fault::DropErased(1),
    ] {
        assert!(
            resent.contains(&kind),
            "{kind:?} sent no block again: {resent:?}"
        );
    }
}

/// A stream's frames go right behind the erases of their sectors, without waiting for
/// the answers. A lost or damaged erase: the decoder meets the old image's bytes, the
/// agent refuses them (`NotErased`) before programming any, and the stream begins again
/// with its erases. A lost answer: the frames behind the erase show that it ran, and it
/// is never sent again (it would erase what the decoder wrote).
#[test]
fn stream_update_survives_each_erase_or_its_answer_lost() {
    let len = 40 * 1024;
    let image = new_image(len, true);
    let clean = run(NONE, Codec::Lzma, &image);
    assert!(clean.holds && clean.outcome == Outcome::Attempted);
    assert_eq!(clean.erases_sent, 10);
    assert_eq!(clean.report.erased_sectors, 10);
    assert!(clean.frames_sent > 1 && clean.writes_sent == 0);
    assert_eq!(clean.not_erased, 0);
    let mut cases = 0;
    for n in 1..=10 {
        for fault in Fault::each_on_erase(n) {
            let r = run(fault, Codec::Lzma, &image);
            assert_eq!(r.outcome, Outcome::Attempted, "{fault:?}");
            assert!(r.holds, "{fault:?}: the slot does not hold the image");
            assert_eq!(r.writes_sent, 0, "{fault:?}: fell back to raw");
            assert_eq!(
                r.flash_failures, 0,
                "{fault:?}: the flash was asked to program over old data"
            );
            if let Fault::DropErased(_) = fault {
                assert_eq!(r.erases_sent, 10, "{fault:?}: the erase went again");
                assert_eq!(r.not_erased, 0, "{fault:?}");
            } else {
                // Frames were queued behind the lost erase: refused, not programmed.
                assert!(r.not_erased > 0, "{fault:?}: no frame met the old bytes");
                assert!(
                    r.erases_sent > 10,
                    "{fault:?}: the erase was not sent again"
                );
                assert!(r.frames_sent > clean.frames_sent, "{fault:?}");
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 30);
}

/// The same faults where the erases are block erases: 40 KiB from a 64 KiB boundary is
/// one 32 KiB block and two sectors (three erases). Losing a block's erase, its
/// request damaged or its answer, costs the block again and the blocks written into it,
/// raw or streamed, and the slot still ends holding the image.
#[test]
fn an_update_survives_each_block_erase_or_its_answer_lost() {
    let len = 40 * 1024;
    for (codec, compressible) in [(Codec::None, false), (Codec::Lzma, true)] {
        let image = new_image(len, compressible);
        let clean = run_on(NONE, codec, &image, true);
        assert!(clean.holds && clean.outcome == Outcome::Attempted);
        let erases = if codec == Codec::None {
            assert_eq!(clean.erases_sent, 3, "{codec:?}: a block and two sectors");
            assert_eq!(clean.report.erased_sectors, 10);
            // One 32 KiB block at its declared 120 ms and two sectors of 45 ms.
            assert_eq!(clean.report.device_erase_time, Duration::from_millis(210));
            3
        } else {
            // The stream erases the whole free 64 KiB slot in one block: 150 ms against
            // the 210 ms of a 32 KiB block and two sectors.
            assert_eq!(clean.erases_sent, 1, "{codec:?}: one 64 KiB block");
            assert_eq!(clean.report.erased_sectors, 16);
            assert_eq!(clean.report.device_erase_time, Duration::from_millis(150));
            1
        };
        let mut cases = 0;
        for n in 1..=erases {
            for fault in Fault::each_on_erase(n) {
                let r = run_on(fault, codec, &image, true);
                assert_eq!(r.outcome, Outcome::Attempted, "{codec:?} {fault:?}");
                assert!(
                    r.holds,
                    "{codec:?} {fault:?}: the slot does not hold the image"
                );
                assert_eq!(r.flash_failures, 0, "{codec:?} {fault:?}");
                let again = r.erases_sent > erases;
                if codec == Codec::Lzma && matches!(fault, Fault::DropErased(_)) {
                    // The frames behind it show it ran: never erased again.
                    assert!(!again, "{codec:?} {fault:?}: erased again");
                } else {
                    assert!(again, "{codec:?} {fault:?}: not sent again");
                }
                cases += 1;
            }
        }
        assert_eq!(cases, 3 * erases);
    }
}

/// A delta's base MD5 goes ahead of its stream, `StreamBegin` right behind it, neither
/// waited for: losing either, or its answer, still ends with the image in the slot, sent
/// as the delta (the MD5 asked again; a `StreamBegin` never sent again behind frames, the
/// stream begun again where the agent had none).
#[test]
fn a_delta_survives_its_base_md5_or_its_stream_begin_lost() {
    const CHECKSUM: u8 = 0x08;
    const STREAM_BEGIN: u8 = 0x0E;
    let v2 = support::program("big-2.bin", "2", 60_000);
    let v3 = support::program("big-3.bin", "3", 60_000);
    let faults = [
        NONE,
        Fault::DropRequest(CHECKSUM, 1),
        Fault::DropReply(CHECKSUM | 0x80, 1),
        Fault::DropRequest(STREAM_BEGIN, 1),
        Fault::DropReply(STREAM_BEGIN | 0x80, 1),
    ];
    for fault in faults {
        // The device runs v2 (its first update, accepted).
        let mut first = support::host_with(
            SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly)),
            Box::new(NullObserver),
        );
        futures::executor::block_on(update(&mut first, &Plan::new(v2.clone())))
            .expect("first update");
        let link = Faulty::new(
            SimTransport::new(first.into_link().into_device(), Virtual),
            fault,
        );
        let mut dev = Device::new(link, Box::new(NullObserver));
        let mut plan = Plan::new(v3.clone());
        plan.bases = vec![v2.clone()];
        plan.codec = Codec::Delta;
        plan.restart = false;
        // Every sector erased: the base's MD5 is the first `ChecksumSlot`.
        plan.resume = false;
        let report = futures::executor::block_on(update(&mut dev, &plan))
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(report.outcome, Outcome::Attempted, "{fault:?}");
        let link = dev.into_link();
        let slot = report.targets[0].slot;
        let at = slot.addr as usize;
        assert_eq!(
            &link.inner.device().flash_bytes()[at..at + v3.len()],
            v3.data(),
            "{fault:?}: the slot does not hold the image"
        );
        assert!(
            report.sent_bytes < 4000,
            "{fault:?}: {} bytes: no delta",
            report.sent_bytes
        );
        assert_eq!(link.errors[FLASH_FAILURE], 0, "{fault:?}");
        let checks = link.sent[usize::from(CHECKSUM)];
        if matches!(
            fault,
            Fault::DropRequest(CHECKSUM, _) | Fault::DropReply(0x88, _)
        ) {
            // The base's MD5 asked again, and the slot's at the end (again, where the
            // base's went after it).
            assert!(checks >= 3, "{fault:?}: {checks}");
        } else if fault == NONE {
            // The base's and the slot's, once each.
            assert_eq!(checks, 2, "{fault:?}");
        } else {
            assert!(checks >= 2, "{fault:?}: {checks}");
        }
        if fault == Fault::DropRequest(STREAM_BEGIN, 1) {
            // The frames met no stream: it began again.
            assert_eq!(link.sent[usize::from(STREAM_BEGIN)], 2, "{fault:?}");
        } else {
            assert_eq!(link.sent[usize::from(STREAM_BEGIN)], 1, "{fault:?}");
        }
    }
}

/// The same faults where the host's plan sends sector erases well ahead of their blocks
/// (crates/fota-host/src/erase_plan/raw.rs): a raw image of 128 KiB at 921600 baud with
/// 1 ms of latency, whose plan takes its first 64 KiB as a block and erases the other
/// sectors early, behind the block's writes. A lost erase far ahead of its blocks, or
/// its answer, still ends with the image in the slot.
#[test]
fn a_raw_update_whose_erases_go_far_ahead_survives_each_one_lost() {
    let len = 128 * 1024;
    let image = new_image(len, false);
    let sim = || {
        let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
        cfg.bc_slot_size = 256 * 1024;
        cfg.baud = 921_600;
        cfg.max_baud = 921_600;
        device_with(cfg, len)
    };
    let clean = run_sim(NONE, Codec::None, &image, sim());
    assert!(clean.holds && clean.outcome == Outcome::Attempted);
    eprintln!(
        "{} erases, {} of {} writes before the last",
        clean.erases_sent, clean.writes_before_last_erase, clean.writes_sent
    );
    // Some blocks and some sectors.
    let erases = clean.erases_sent;
    assert!(erases > 2 && erases < 32, "{erases} erases");
    // The last erase goes more than a sector (four writes) ahead of the last sector's.
    assert!(
        clean.writes_before_last_erase + 8 < clean.writes_sent,
        "the last erase after {} of {} writes",
        clean.writes_before_last_erase,
        clean.writes_sent
    );
    let mut cases = 0;
    for n in 1..=erases {
        for fault in Fault::each_on_erase(n) {
            let r = run_sim(fault, Codec::None, &image, sim());
            assert_eq!(r.outcome, Outcome::Attempted, "{fault:?}");
            assert!(r.holds, "{fault:?}: the slot does not hold the image");
            assert!(r.erases_sent > erases, "{fault:?}: not sent again");
            cases += 1;
        }
    }
    assert!(cases >= 9, "{cases} cases");
}
