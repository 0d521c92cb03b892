//! Power cuts at every flash step of a whole update cycle, on both layouts.
//!
//! The cycle is the seed's update process as the host drives it, plus what the device does
//! by itself: find the free slot(s), erase, stream, checksum, attempt, restart (the boot
//! decision writes `Trial`), and the new firmware's `accept()` (`Confirmed`).
//!
//! For each scenario the cycle first runs without a cut and [`SimFlash::step_count`] gives
//! its number of steps `N` (one per programmed byte, one per erased byte). Then the same
//! cycle runs again from the same starting flash once per cut point `k` in `0..=N`: `k`
//! steps complete, the byte at the cut is torn, and `k == N` is the cut right after the
//! last operation completed but before it returned. When the power goes, the device is
//! powered on again with nothing but its flash (the agent is rebuilt by `Agent::boot`),
//! and for every seventh point a second cut hits that recovery (boot decision or the
//! firmware's accept). After each point:
//!
//! - the device boots a complete configuration, the old one or the new one: every slot
//!   it runs, and every slot the record names as last working, holds byte for byte the
//!   image that was written there (the images themselves pass `parse_image`: header,
//!   length and payload MD5);
//! - the record is valid (`get_record().valid == 1`), was never lost (no factory boot),
//!   and is `Confirmed` once the firmware has run;
//! - the host can finish: if the old configuration runs, the whole update is redone
//!   without a cut and must end with the new configuration accepted.
//!
//! The bulk of the points drive `fota_agent::Agent` over a `SimFlash` directly (no serial
//! line): that is the same code the device runs, minus the frame decoder. A smaller set of
//! points runs the real host (`fota_host::update`) over `SimTransport` against a
//! `SimDevice`, with a second `update` after power-on that must end `Accepted`.
//!
//! Coverage: the "fresh" scenarios are exhaustive over every step (every byte of every
//! erase and every write, torn bytes included). The "ring" scenarios start with the record
//! sector almost full so that the update also erases a record sector; their record
//! writes and the record-sector erase are exhaustive, while their slot erase/stream
//! points (the same operations the fresh scenarios sweep exhaustively) are sampled.
//! `FOTA_LONG_SWEEP=1` makes every scenario exhaustive and runs far more host-driven
//! points. `FOTA_CUT=<scenario>:<k>[:<k2>]` replays one point with a trace.
//!
//! Every scenario also runs on ECC flash (`.../ecc`: a word a cut tore, in a program or
//! an erase, reads back as an error, as on STM32L4/G4/H7): the record log skips such
//! entries, the host erases such sectors, and nothing ever loops in reset. Their record
//! points are exhaustive, their slot points sampled (exhaustive with `FOTA_LONG_SWEEP=1`).

use fota_protocol::Layout as _;
use std::time::Instant;

use embedded_storage::nor_flash::NorFlash;
use fota_agent::{Agent, AgentConfig, Boot, RecordState};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::Report;
use fota_host::update::{Outcome, Plan};
use fota_host::{Device, HostError, Image, NullObserver, update};
use fota_protocol::{RecordUpdate, SlotKind};
use fota_sim::device::{DeviceConfig, DeviceFlash, LayoutKind, SimDevice};
use fota_sim::flash::FlashTiming;
use fota_sim::images::{self, ImageHealth};
use futures::executor::block_on;

type Flash = DeviceFlash;

/// Small slots: two 4 KiB sectors each.
const SLOT: u32 = 8 * 1024;
/// The host's block size (the agent's `max_write`).
const BLOCK: usize = fota_agent::MAX_WRITE;
/// The simulated flash's sector.
const SECTOR: usize = fota_sim::device::SECTOR as usize;
/// Recovery budgets of the second cut: inside a record entry write (20 bytes), at its
/// end, after it, and inside / at the end of a record-sector erase (4096 + 20).
const SECOND: [u64; 16] = [
    0, 1, 3, 10, 19, 20, 21, 30, 40, 41, 2048, 4095, 4096, 4100, 4115, 4116,
];

fn long_sweep() -> bool {
    std::env::var_os("FOTA_LONG_SWEEP").is_some_and(|v| v != "0")
}

// ---- scenarios ---------------------------------------------------------------------------

/// A configuration: which VM and bytecode slots run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conf {
    vm: u8,
    bc: u8,
}

struct Scenario {
    name: String,
    dev_cfg: DeviceConfig,
    cfg: AgentConfig,
    /// The flash before the update: old images in the old slots, stale data in the
    /// target slots, a `Confirmed` record of the old configuration.
    start: Vec<u8>,
    old: Conf,
    new: Conf,
    /// What each slot of either configuration must hold: (kind, index, image).
    expect: Vec<(SlotKind, u8, Vec<u8>)>,
    /// Images the host writes, in its order: bytecode first, then the VM.
    jobs: Vec<(SlotKind, Vec<u8>)>,
    /// Whether the slot erase/stream points are swept exhaustively.
    exhaustive_slots: bool,
    /// ECC flash: torn words read as errors.
    ecc: bool,
    /// Images the host offers as delta bases (the running bytecode, for a delta).
    bases: Vec<Vec<u8>>,
}

/// A healthy sample image whose payload is firmware-like (it compresses, as code does),
/// `changes` bytes of it varied by `seed`.
/// An image the simulated firmware runs (header, payload MD5) whose payload is `payload`.
fn with_payload(kind: SlotKind, name: &str, version: &str, payload: &[u8]) -> Vec<u8> {
    let mut image = images::sample_image(kind, name, version, true, payload.len());
    let h = images::HEADER_LEN;
    image[h - 16..h].copy_from_slice(&fota_host::md5_of(payload));
    image[h..].copy_from_slice(payload);
    image
}

/// `len` bytes at the same offset of two consecutive MicroPython releases for the BBC
/// micro:bit (1.0.0 and 1.0.1: the runtimes uflash 1.2.3 and 1.2.4 embed, fetched by
/// crates/fota-codec/testdata/fetch.sh): real code, and the next release of it. `None`
/// (with a message; a failure in CI) when they were not fetched.
fn micropython_slices(offset: usize, len: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let dir = std::env::var_os("FOTA_TESTDATA").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/testdata"),
        std::path::PathBuf::from,
    );
    let runtime = |version: &str| -> Option<Vec<u8>> {
        let src = std::fs::read_to_string(dir.join(format!("uflash-{version}.py"))).ok()?;
        let start = src.find("_RUNTIME = \"\"\"")? + 14;
        let end = start + src[start..].find("\"\"\"")?;
        let (_, image) = fota_codec::hex::main_image(&src[start..end], 64 * 1024).ok()?;
        Some(image.get(offset..offset + len)?.to_vec())
    };
    let found = runtime("1.2.3").zip(runtime("1.2.4"));
    if found.is_none() {
        let msg = "uflash 1.2.3 and 1.2.4 (MicroPython 1.0.0 and 1.0.1): not found; run \
                   crates/fota-codec/testdata/fetch.sh";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED: {msg}");
    }
    found
}

fn compressible_image(kind: SlotKind, name: &str, version: &str, size: usize, seed: u8) -> Vec<u8> {
    let mut image = images::sample_image(kind, name, version, true, size);
    let words: [&[u8]; 4] = [
        b"ldr r0, [r1]; ",
        b"bl memcpy; ",
        b"push {r4, lr}; ",
        b"bx lr; ",
    ];
    let mut payload = Vec::with_capacity(size);
    let mut i = 0usize;
    while payload.len() < size {
        payload.extend_from_slice(words[(i * 7 + i / 11) % 4]);
        i += 1;
    }
    payload.truncate(size);
    for at in (0..size).step_by(997) {
        payload[at] ^= seed;
    }
    let md5 = fota_host::md5_of(&payload);
    let h = images::HEADER_LEN;
    image[h - 16..h].copy_from_slice(&md5);
    image[h..].copy_from_slice(&payload);
    image
}

impl Scenario {
    fn new(layout: LayoutKind, ring: bool, ecc: bool) -> Scenario {
        Scenario::build(layout, ring, ecc, None)
    }

    /// A bytecode update sent compressed (`delta` false) or as a delta from the running
    /// bytecode (`delta` true): compressible images, the old one offered as the base.
    fn streamed(delta: bool) -> Scenario {
        Scenario::build(LayoutKind::BytecodeOnly, false, false, Some(delta))
    }

    fn build(layout: LayoutKind, ring: bool, ecc: bool, codec: Option<bool>) -> Scenario {
        Scenario::build_with(layout, ring, ecc, codec, None)
    }

    /// A compressed (`delta` false) or delta update of real firmware: the payloads of the
    /// running image and of the new one are `real` (old, new).
    fn real(delta: bool, real: (&[u8], &[u8])) -> Scenario {
        let mut sc = Scenario::build_with(
            LayoutKind::BytecodeOnly,
            false,
            false,
            Some(delta),
            Some(real),
        );
        sc.name = sc.name.replace("fresh/", "real/");
        sc
    }

    fn build_with(
        layout: LayoutKind,
        ring: bool,
        ecc: bool,
        codec: Option<bool>,
        real: Option<(&[u8], &[u8])>,
    ) -> Scenario {
        let mut dev_cfg = DeviceConfig::new(layout);
        dev_cfg.vm_slot_size = SLOT;
        dev_cfg.bc_slot_size = SLOT;
        dev_cfg.ecc = ecc;
        let cfg = dev_cfg.agent_config();
        let two_vms = layout == LayoutKind::VmAndBytecode;

        let old_vm = images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 3000);
        let mut old_bc = images::sample_image(SlotKind::Bytecode, "blink", "1", true, 2500);
        // Two sectors, and a length that is not a multiple of the write size, so the last
        // block is padded with erased bytes.
        let mut new_bc = images::sample_image(SlotKind::Bytecode, "blink", "2", true, 4617);
        let mut bases = Vec::new();
        if let Some(delta) = codec {
            old_bc = compressible_image(SlotKind::Bytecode, "blink", "1", 4000, 1);
            new_bc = compressible_image(SlotKind::Bytecode, "blink", "2", 4617, 2);
            if let Some((old, new)) = real {
                old_bc = with_payload(SlotKind::Bytecode, "blink", "1", old);
                new_bc = with_payload(SlotKind::Bytecode, "blink", "2", new);
            }
            if delta {
                bases.push(old_bc.clone());
            }
        }
        let new_vm = images::sample_image(SlotKind::Vm, "zvm", "2.0", true, 1501);
        // What the target slots held before: a stale image over both sectors.
        let stale_bc = images::sample_image(SlotKind::Bytecode, "blink", "0", true, 7000);
        let stale_vm = images::sample_image(SlotKind::Vm, "zvm", "0.9", true, 7500);
        for img in [&old_vm, &old_bc, &new_bc, &new_vm] {
            assert!(images::parse_image(img).is_some_and(|i| i.healthy));
        }

        let mut flash = Flash::new(dev_cfg.flash_size()).with_timing(FlashTiming::INSTANT);
        let put = |flash: &mut Flash, kind: SlotKind, index: u32, image: &[u8]| {
            let slot = cfg.slot(kind, index).expect("slot");
            let mut data = image.to_vec();
            data.resize(image.len().div_ceil(4) * 4, 0xFF);
            flash.write(slot.addr, &data).expect("factory write");
        };
        put(&mut flash, SlotKind::Vm, 0, &old_vm);
        put(&mut flash, SlotKind::Bytecode, 0, &old_bc);
        // A real-firmware scenario's target slot is empty (a device as it leaves the
        // factory): its update is the stream and the record alone, every byte of which
        // its sweep cuts within the suite's time (an erase is 4096 steps; the scenarios
        // above cut erases).
        if real.is_none() {
            put(&mut flash, SlotKind::Bytecode, 1, &stale_bc);
        }
        if two_vms {
            put(&mut flash, SlotKind::Vm, 1, &stale_vm);
        }
        // The first boot writes the factory record (slot 0 of each kind).
        let (mut agent, boot) = Agent::boot(flash, cfg.clone()).expect("first boot");
        assert!(boot.factory);
        if ring {
            fill_ring(&mut agent, &cfg);
        }
        let start = agent.into_flash().snapshot();

        let old = Conf { vm: 0, bc: 0 };
        let new = Conf {
            vm: u8::from(two_vms),
            bc: 1,
        };
        let mut expect = vec![
            (SlotKind::Vm, 0, old_vm),
            (SlotKind::Bytecode, 0, old_bc),
            (SlotKind::Bytecode, 1, new_bc.clone()),
        ];
        let mut jobs = vec![(SlotKind::Bytecode, new_bc)];
        if two_vms {
            expect.push((SlotKind::Vm, 1, new_vm.clone()));
            jobs.push((SlotKind::Vm, new_vm));
        }
        let name = format!(
            "{}/{}{}",
            match layout {
                LayoutKind::BytecodeOnly => "bytecode-only",
                LayoutKind::VmAndBytecode => "vm+bytecode",
            },
            if ring { "ring" } else { "fresh" },
            match (ecc, codec) {
                (true, _) => "/ecc",
                (false, Some(true)) => "/delta",
                (false, Some(false)) => "/compressed",
                (false, None) => "",
            }
        );
        Scenario {
            name,
            dev_cfg,
            cfg,
            start,
            old,
            new,
            expect,
            jobs,
            exhaustive_slots: (!ring && !ecc) || long_sweep(),
            ecc,
            bases,
        }
    }

    fn all() -> Vec<Scenario> {
        let mut v = Vec::new();
        for ecc in [false, true] {
            for layout in [LayoutKind::BytecodeOnly, LayoutKind::VmAndBytecode] {
                for ring in [false, true] {
                    v.push(Scenario::new(layout, ring, ecc));
                }
            }
        }
        v
    }

    fn start_flash(&self) -> Flash {
        let flash = Flash::from_image(self.start.clone())
            .expect("snapshot")
            .with_timing(FlashTiming::INSTANT);
        if self.ecc { flash.with_ecc() } else { flash }
    }

    fn slot_addr(&self, kind: SlotKind, index: u8) -> u32 {
        self.cfg.slot(kind, u32::from(index)).expect("slot").addr
    }

    fn expected(&self, kind: SlotKind, index: u8) -> &[u8] {
        self.expect
            .iter()
            .find(|(k, i, _)| *k == kind && *i == index)
            .map(|(_, _, img)| img.as_slice())
            .expect("an expected image for every slot of both configurations")
    }

    /// Whether the slots of `conf` hold their images byte for byte.
    fn check_slots(&self, bytes: &[u8], conf: Conf, what: &str) -> Result<(), String> {
        for (kind, index) in [(SlotKind::Vm, conf.vm), (SlotKind::Bytecode, conf.bc)] {
            let want = self.expected(kind, index);
            let at = self.slot_addr(kind, index) as usize;
            let have = &bytes[at..at + want.len()];
            if have != want {
                let first = have.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                return Err(format!(
                    "{what}: {kind:?} slot {index} does not hold its image (first \
                     difference at +{first:#x}; health {:?})",
                    images::image_health(&bytes[at..at + SLOT as usize])
                ));
            }
        }
        Ok(())
    }
}

/// Append record entries until the newest is in slot 202 of the second record sector,
/// with the first sector full of older entries: the update's attempt then fills the last
/// slot and the boot decision erases the first sector to write `Trial`.
fn fill_ring(agent: &mut Agent<Flash>, cfg: &AgentConfig) {
    let per_sector = 4096 / 20;
    // The factory record is entry 1 (sector 0, slot 0).
    let target = per_sector + 203;
    let other = RecordUpdate {
        vm_current: 0,
        vm_last: 0,
        bc_current: 1,
        bc_last: 1,
    };
    let home = RecordUpdate {
        bc_current: 0,
        bc_last: 0,
        ..other
    };
    for i in 1..target {
        let u = if i % 2 == 1 { other } else { home };
        agent.set_record(u).expect("set_record");
    }
    let e = agent.record_entry();
    assert_eq!((e.bc_current, e.state), (0, RecordState::Confirmed));
    assert_eq!(e.seq as usize, target);
    let rec = cfg.record_addr as usize;
    let bytes = agent.flash().as_bytes();
    let slot = |sector: usize, i: usize| &bytes[rec + sector * 4096 + i * 20..][..20];
    assert!(slot(1, 202).iter().any(|&b| b != 0xFF));
    assert!(slot(1, 203).iter().all(|&b| b == 0xFF));
}

// ---- the cycle, on the agent directly -------------------------------------------------------

/// One flash-changing operation of the uncut cycle: its steps are `from..to`.
#[derive(Debug, Clone)]
struct Span {
    label: String,
    from: u64,
    to: u64,
    /// Record writes and erases: always swept exhaustively.
    record: bool,
}

/// Where cut point `k` lands.
fn locate(spans: &[Span], k: u64) -> String {
    let after = |k: u64| spans.iter().rev().find(|s| s.to == k);
    match spans.iter().find(|s| k >= s.from && k < s.to) {
        // An operation after another starts with the step that separates them.
        Some(s) if k == s.from && after(k).is_some() => {
            format!(
                "right after {} completed",
                after(k).map_or("", |p| &p.label)
            )
        }
        Some(s) if k == s.from + 1 && after(s.from).is_some() => {
            format!("{} (first byte torn)", s.label)
        }
        Some(s) if k == s.from => format!("{} (first step)", s.label),
        Some(s) => format!("{} + {} of {}", s.label, k - s.from, s.to - s.from),
        None => match spans.iter().rev().find(|s| s.to == k) {
            Some(s) => format!("right after {} completed", s.label),
            None => "after every operation (no cut)".into(),
        },
    }
}

/// Runs an operation on the agent; on a power loss, hands the flash back.
macro_rules! step {
    ($agent:ident, $spans:ident, $label:expr, $record:expr, $op:expr) => {{
        let from = $agent.flash().step_count();
        let r = $op;
        let to = $agent.flash().step_count();
        if let Some(spans) = $spans.as_deref_mut() {
            if to > from {
                spans.push(Span {
                    label: $label,
                    from,
                    to,
                    record: $record,
                });
            }
        }
        if !$agent.flash().is_powered() {
            return Err(Box::new($agent.into_flash()));
        }
        r
    }};
}

/// The simulated firmware after a boot: healthy images accept (the sample images used
/// here are all healthy, so "healthy" is "holds its image byte for byte").
fn firmware_accepts(sc: &Scenario, agent: &Agent<Flash>, boot: &Boot) -> bool {
    let conf = Conf {
        vm: boot.vm_slot,
        bc: boot.bc_slot,
    };
    boot.trial && sc.check_slots(agent.flash().as_bytes(), conf, "").is_ok()
}

/// The whole update cycle from `flash`, as the host and then the device run it. Returns
/// the agent after the new firmware accepted, or the flash when power was lost (boxed:
/// it is large).
fn cycle(
    sc: &Scenario,
    flash: Flash,
    mut spans: Option<&mut Vec<Span>>,
) -> Result<(Agent<Flash>, Boot), Box<Flash>> {
    let (mut agent, boot) = Agent::boot(flash, sc.cfg.clone()).expect("boot");
    assert!(
        agent.flash().is_powered(),
        "the starting state must not write at boot"
    );
    assert_eq!(
        (boot.vm_slot, boot.bc_slot),
        (sc.old.vm, sc.old.bc),
        "starting configuration"
    );
    let mut targets = Vec::new();
    for (kind, image) in &sc.jobs {
        let addr = match kind {
            SlotKind::Bytecode => agent.find_bytecode_slot(),
            SlotKind::Vm => agent.find_vm_slot(),
        }
        .expect("a free slot");
        let slot = *sc.cfg.slot_at(addr).expect("a slot");
        // The reference host's order (docs/PROTOCOL.md 6.7): each sector erased just
        // ahead of the blocks of the sector before it.
        let sectors = image.len().div_ceil(SECTOR);
        let mut erased = 0;
        for sector in 0..sectors {
            while erased < sectors && erased <= sector + 1 {
                let at = addr + (erased * SECTOR) as u32;
                let label = format!(
                    "erase_slot({kind:?} {} +{:#x})",
                    slot.index,
                    erased * SECTOR
                );
                step!(
                    agent,
                    spans,
                    label,
                    false,
                    agent.erase_slot(at, SECTOR as u32, &mut |_, _| {})
                )
                .expect("erase");
                erased += 1;
            }
            let end = ((sector + 1) * SECTOR).min(image.len());
            let mut from = sector * SECTOR;
            while from < end {
                let to = (from + BLOCK).min(end);
                let mut data = image[from..to].to_vec();
                data.resize(data.len().div_ceil(4) * 4, 0xFF);
                let at = addr + from as u32;
                let label = format!("write_slot({kind:?} {} +{from:#x})", slot.index);
                step!(agent, spans, label, false, agent.write_slot(at, &data)).expect("write");
                from = to;
            }
        }
        targets.push((slot, image));
    }
    for (slot, image) in &targets {
        let md5 = agent
            .checksum_slot(slot.addr, image.len() as u32, &mut |_, _| {})
            .expect("checksum");
        assert_eq!(md5, fota_sim_md5(image), "checksum of the written slot");
    }
    let bc = targets[0].0.index;
    let vm = targets.get(1).map_or(sc.old.vm, |t| t.0.index);
    step!(
        agent,
        spans,
        "attempt (record entry)".into(),
        true,
        agent.attempt(u32::from(bc), u32::from(vm))
    )
    .expect("attempt");

    // restart(): the boot decision writes Trial (and may erase a record sector).
    let flash = agent.into_flash();
    let from = flash.step_count();
    let (mut agent, boot) = Agent::boot(flash, sc.cfg.clone()).expect("boot");
    if let Some(spans) = spans.as_deref_mut() {
        let to = agent.flash().step_count();
        spans.push(Span {
            label: if to - from > 20 {
                "restart: boot decision (record sector erase, Trial entry)".into()
            } else {
                "restart: boot decision (Trial entry)".into()
            },
            from,
            to,
            record: true,
        });
    }
    if !agent.flash().is_powered() {
        return Err(Box::new(agent.into_flash()));
    }
    assert!(boot.trial, "the restart after attempt is a trial boot");
    assert!(firmware_accepts(sc, &agent, &boot), "the new firmware runs");
    step!(
        agent,
        spans,
        "accept (record entry)".into(),
        true,
        agent.accept()
    )
    .expect("accept");
    Ok((agent, boot))
}

fn fota_sim_md5(bytes: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}

/// Power on after a cut, with only the flash: boot, and let the firmware run (a trial of
/// a healthy image accepts). `second` arms one more cut for this recovery. Returns the
/// agent, its boot, and how many more cuts happened.
fn recover(sc: &Scenario, mut flash: Flash, mut second: Option<u64>) -> (Agent<Flash>, Boot, u32) {
    let mut cuts = 0;
    loop {
        flash.power_on();
        if let Some(k2) = second.take() {
            flash.arm_power_cut(k2);
        }
        let (mut agent, boot) = match Agent::boot(flash, sc.cfg.clone()) {
            Ok(x) => x,
            Err(e) => panic!("{}: boot failed after a power cut: {e:?}", sc.name),
        };
        if !agent.flash().is_powered() {
            cuts += 1;
            flash = agent.into_flash();
            continue;
        }
        if firmware_accepts(sc, &agent, &boot) {
            let _ = agent.accept();
            if !agent.flash().is_powered() {
                cuts += 1;
                flash = agent.into_flash();
                continue;
            }
        }
        agent.flash_mut().disarm_power_cut();
        return (agent, boot, cuts);
    }
}

/// The invariants after a recovery; then the host redoes the update if needed.
fn check_recovered(sc: &Scenario, agent: Agent<Flash>, boot: &Boot) -> Result<(), String> {
    if boot.factory {
        return Err("the record was lost: the device booted the factory record".into());
    }
    let running = Conf {
        vm: boot.vm_slot,
        bc: boot.bc_slot,
    };
    if running != sc.old && running != sc.new {
        return Err(format!("boots {running:?}, neither old nor new"));
    }
    let bytes = agent.flash().as_bytes();
    sc.check_slots(bytes, running, "the booted configuration")?;
    let rec = agent
        .get_record()
        .map_err(|r| format!("get_record: {r:?}"))?;
    if rec.valid != 1 {
        return Err(format!("invalid record {rec:?}"));
    }
    let e = agent.record_entry();
    if e.state != RecordState::Confirmed {
        return Err(format!(
            "record {e:?} is not Confirmed after the firmware ran"
        ));
    }
    let current = Conf {
        vm: e.vm_current,
        bc: e.bc_current,
    };
    let last = Conf {
        vm: e.vm_last,
        bc: e.bc_last,
    };
    if current != running {
        return Err(format!(
            "record {e:?} does not name what runs ({running:?})"
        ));
    }
    sc.check_slots(bytes, last, "the last working configuration")?;
    // A fresh boot of the same flash agrees with the agent's RAM.
    // A clone keeps the torn words of ECC flash (an image of the bytes would not).
    let mut copy = agent.flash().clone();
    copy.reset_steps();
    let (again, _) = Agent::boot(copy, sc.cfg.clone()).map_err(|e| format!("{e:?}"))?;
    if again.record_entry() != e {
        return Err(format!(
            "RAM record {e:?} differs from flash {:?}",
            again.record_entry()
        ));
    }
    if running == sc.new {
        return Ok(());
    }
    // The host redoes the whole update, without a cut.
    let flash = agent.into_flash();
    let (agent, _) = cycle(sc, flash, None).map_err(|_| "power lost with no cut armed")?;
    let e = agent.record_entry();
    let now = Conf {
        vm: e.vm_current,
        bc: e.bc_current,
    };
    if now != sc.new || e.state != RecordState::Confirmed {
        return Err(format!("redoing the update left {e:?}"));
    }
    sc.check_slots(agent.flash().as_bytes(), sc.new, "after the redo")
}

/// One cut point: the cycle with a cut after `k` steps (and `second` during recovery).
/// Returns whether a second cut happened, or the failure.
/// Returns whether a second cut happened and whether the cut tore the first byte of a
/// flash operation that followed a completed one, or the failure.
fn run_point(sc: &Scenario, k: u64, second: Option<u64>) -> Result<(bool, bool), String> {
    let mut flash = sc.start_flash();
    flash.set_seed(k ^ 0x5EED);
    flash.arm_power_cut(k);
    match cycle(sc, flash, None) {
        Ok((agent, boot)) => {
            // The budget outlasted the cycle: nothing was cut.
            check_recovered(sc, agent, &boot).map(|()| (false, false))
        }
        Err(flash) => {
            let first_byte = flash.cut_tore_first_byte();
            let (agent, boot, cuts) = recover(sc, *flash, second);
            check_recovered(sc, agent, &boot).map(|()| (cuts > 0, first_byte))
        }
    }
}

/// The uncut run: its spans and step count.
fn probe(sc: &Scenario) -> (Vec<Span>, u64) {
    let mut spans = Vec::new();
    let Ok((agent, _)) = cycle(sc, sc.start_flash(), Some(&mut spans)) else {
        panic!("{}: power lost without a cut", sc.name);
    };
    let e = agent.record_entry();
    assert_eq!((e.vm_current, e.bc_current), (sc.new.vm, sc.new.bc));
    assert_eq!(e.state, RecordState::Confirmed);
    (spans, agent.flash().step_count())
}

/// The cut points of a scenario: every point, or every record point and a sample of the
/// slot erase/stream points (both ends of every operation and of every write unit run
/// boundary kept).
fn points(sc: &Scenario, spans: &[Span], total: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for k in 0..=total {
        let keep = sc.exhaustive_slots
            || match spans.iter().find(|s| k >= s.from && k < s.to) {
                None => true,
                Some(s) if s.record => true,
                Some(s) => {
                    let stride = if sc.ecc { 13 } else { 97 };
                    k - s.from < 8 || s.to - k <= 8 || (k - s.from) % stride == 0
                }
            };
        if keep {
            v.push(k);
        }
    }
    v
}

#[derive(Default)]
struct Tally {
    points: u64,
    second_cuts: u64,
    /// Points that tore the first byte of an operation following a completed one.
    first_bytes: u64,
    failures: Vec<String>,
}

fn sweep(sc: &Scenario, tally: &mut Tally) {
    let (spans, total) = probe(sc);
    let pts = points(sc, &spans, total);
    let t = Instant::now();
    for &k in &pts {
        let second = (k % 7 == 0).then(|| SECOND[(k / 7) as usize % SECOND.len()]);
        match run_point(sc, k, second) {
            Ok((cut_again, first_byte)) => {
                tally.second_cuts += u64::from(cut_again);
                tally.first_bytes += u64::from(first_byte);
            }
            Err(e) => {
                if tally.failures.len() < 20 {
                    tally.failures.push(format!(
                        "{} cut step {k}{} ({}): {e}\n    reproduce: FOTA_CUT={}:{k}{} \
                         cargo test -p fota-sim --test powercut replay_one_point -- --nocapture",
                        sc.name,
                        second.map_or(String::new(), |s| format!(", second cut {s}")),
                        locate(&spans, k),
                        sc.name,
                        second.map_or(String::new(), |s| format!(":{s}")),
                    ));
                }
            }
        }
    }
    tally.points += pts.len() as u64;
    println!(
        "{:<20} {:>6} steps, {:>6} cut points ({}), {} ops, {:.1?}",
        sc.name,
        total,
        pts.len(),
        if sc.exhaustive_slots {
            "exhaustive"
        } else {
            "record exhaustive, slots sampled"
        },
        spans.len(),
        t.elapsed()
    );
}

#[test]
fn power_cut_at_every_step_of_the_update_cycle() {
    let t = Instant::now();
    let mut tally = Tally::default();
    for sc in Scenario::all() {
        sweep(&sc, &mut tally);
    }
    println!(
        "power cuts: {} cut points run, {} of them on the first byte of an operation that \
         followed another, {} cut again during recovery, {:.1?}",
        tally.points,
        tally.first_bytes,
        tally.second_cuts,
        t.elapsed()
    );
    assert!(
        tally.failures.is_empty(),
        "{} failing cut points:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    // The floor keeps the sweep from shrinking unnoticed (measured: see the output).
    assert!(tally.points >= 50_000, "only {} cut points", tally.points);
    // Every flash operation after the first is such a point where the sweep is
    // exhaustive, and where it samples, at the start of each operation (measured: 121).
    assert!(
        tally.first_bytes >= 100,
        "only {} first-byte cut points",
        tally.first_bytes
    );
    assert!(
        tally.second_cuts >= 800,
        "only {} second cuts",
        tally.second_cuts
    );
}

/// Every cut point names its operation, and the first and last points are the
/// boundaries: nothing done, and everything done but not reported.
#[test]
fn cut_points_cover_every_operation_of_the_cycle() {
    for sc in Scenario::all() {
        let (spans, total) = probe(&sc);
        let labels: Vec<&str> = spans.iter().map(|s| s.label.as_str()).collect();
        let has = |p: &str| labels.iter().any(|l| l.starts_with(p));
        assert!(has("erase_slot(Bytecode 1 +0x0)"), "{labels:?}");
        // The host's order: sector 1 is erased before the first block of sector 0.
        let pos = |p: &str| labels.iter().position(|l| l.starts_with(p));
        assert!(
            pos("erase_slot(Bytecode 1 +0x1000)") < pos("write_slot(Bytecode 1 +0x0)"),
            "{labels:?}"
        );
        // One image end for each image: the loops over them cannot run zero times.
        assert_eq!(image_ends(&sc, &spans).len(), sc.jobs.len(), "{labels:?}");
        assert!(has("write_slot(Bytecode 1"), "{labels:?}");
        assert!(has("attempt"), "{labels:?}");
        assert!(has("restart: boot decision"), "{labels:?}");
        assert!(has("accept"), "{labels:?}");
        if sc.jobs.len() == 2 {
            assert!(has("erase_slot(Vm 1 +") && has("write_slot(Vm 1"));
        }
        // Spans tile 0..total with no gap.
        let mut at = 0;
        for s in &spans {
            assert_eq!(s.from, at, "{}: gap before {}", sc.name, s.label);
            at = s.to;
        }
        assert_eq!(at, total);
        // The ring scenario's boot decision erases a record sector (4096 + one entry);
        // each operation after the first of the run starts with the step where its first
        // byte is torn.
        let boot = spans
            .iter()
            .find(|s| s.label.starts_with("restart"))
            .unwrap();
        let expected = if sc.name.contains("/ring") {
            1 + 4096 + 1 + 20
        } else {
            1 + 20
        };
        assert_eq!(boot.to - boot.from, expected, "{}", sc.name);
        assert_eq!(
            locate(&spans, total),
            "right after accept (record entry) completed"
        );
        assert!(locate(&spans, 0).starts_with("erase_slot(Bytecode 1 +0x0) (first step)"));
    }
}

/// Replays one point given by `FOTA_CUT=<scenario>:<k>[:<k2>]` with a trace (a no-op
/// without it).
#[test]
fn replay_one_point() {
    let Some(spec) = std::env::var_os("FOTA_CUT") else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default();
    let k: u64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("FOTA_CUT=name:k[:k2]");
    let second: Option<u64> = parts.next().and_then(|s| s.parse().ok());
    let sc = Scenario::all()
        .into_iter()
        .find(|s| s.name == name)
        .expect("scenario name, e.g. bytecode-only/fresh");
    let (spans, total) = probe(&sc);
    println!(
        "{name}: {total} steps; cut {k} lands at {}",
        locate(&spans, k)
    );
    for s in &spans {
        println!("  {:>6}..{:<6} {}", s.from, s.to, s.label);
    }
    let result = run_point(&sc, k, second);
    println!("result: {result:?}");
    assert!(result.is_ok(), "{result:?}");
}

// ---- host-driven points -------------------------------------------------------------------

type Host = Device<SimTransport<Virtual>>;

fn host_plan(sc: &Scenario) -> Plan {
    let image = |kind: SlotKind| {
        let (_, bytes) = sc.jobs.iter().find(|(k, _)| *k == kind)?;
        Image::new(format!("{kind:?}.bin"), bytes.clone()).ok()
    };
    let mut plan = Plan::new(image(SlotKind::Bytecode).expect("bytecode image"));
    plan.vm = image(SlotKind::Vm);
    plan.bases = sc
        .bases
        .iter()
        .filter_map(|b| Image::new("old.bin", b.clone()).ok())
        .collect();
    // The codec scenarios are about streams: not the default's choice, which may send a
    // small image raw.
    if sc.name.ends_with("/compressed") {
        plan.codec = fota_host::Codec::Lzma;
    } else if sc.name.ends_with("/delta") {
        plan.codec = fota_host::Codec::Delta;
    }
    plan
}

fn sim_device(sc: &Scenario) -> SimDevice {
    SimDevice::from_image(sc.dev_cfg.clone(), sc.start.clone()).expect("device")
}

/// The device whose flash lost power is off (see `sim_device_turns_off_*` below for the
/// two places where `SimDevice` itself does not notice yet).
fn settle_power(sim: &mut SimDevice) -> bool {
    if !sim.is_off() && !sim.flash().is_powered() {
        sim.cut_power();
    }
    sim.is_off()
}

/// Run the device until its firmware has settled after a boot (accept or watchdog).
fn run_a_while(sim: &mut SimDevice) {
    let cfg = sim.config().clone();
    let until = sim.now() + cfg.boot_ns + cfg.accept_after_ns + 100_000_000;
    sim.run_until(until, false);
}

/// How a host-driven point went, for the summary.
#[derive(Default)]
struct HostTally {
    points: u64,
    second_cuts: u64,
    /// How the interrupted `update` ended: error kind or outcome, and how often.
    first: std::collections::BTreeMap<String, u64>,
    failures: Vec<String>,
}

impl HostTally {
    /// Runs the host-driven points `pts` of `sc`, with a second cut during the recovery
    /// boot at every seventh of them (the fourth, the eleventh, ...). `spans`, the
    /// agent-level cycle's operations, name where a failing point lands.
    fn run(&mut self, sc: &Scenario, pts: &[u64], spans: Option<&[Span]>) {
        self.run_cutting_again(sc, pts, spans, |i| {
            (i % 7 == 3).then(|| SECOND[(i / 7) % SECOND.len()])
        });
    }

    /// As [`HostTally::run`], with a second cut during the recovery boot after each point
    /// `i` where `second(i)` says so.
    fn run_cutting_again(
        &mut self,
        sc: &Scenario,
        pts: &[u64],
        spans: Option<&[Span]>,
        second: impl Fn(usize) -> Option<u64>,
    ) {
        for (i, &k) in pts.iter().enumerate() {
            let second = second(i);
            match host_point(sc, k, second, &mut self.first) {
                Ok(again) => self.second_cuts += u64::from(again),
                Err(e) => self.failures.push(format!(
                    "{} host-driven cut step {k}{}{}: {e}",
                    sc.name,
                    second.map_or(String::new(), |s| format!(", second cut {s}")),
                    spans.map_or(String::new(), |spans| format!(" ({})", locate(spans, k)))
                )),
            }
        }
        self.points += pts.len() as u64;
    }

    /// Prints the counts of the sweep `what` (begun at `t`); fails if a point failed.
    fn finish(&self, what: &str, t: Instant) {
        println!(
            "{what}: {} cut points, {} cut again during recovery, {:.1?}; the interrupted \
             update ended: {:?}",
            self.points,
            self.second_cuts,
            t.elapsed(),
            self.first
        );
        assert!(
            self.failures.is_empty(),
            "{} failing points:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn ended(r: &Result<fota_host::update::Report, fota_host::HostError>) -> String {
    match r {
        Ok(report) => format!("Ok({:?})", report.outcome),
        Err(e) => {
            let s = format!("{e:?}");
            s.split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned()
        }
    }
}

/// `update` with `plan` by a new host connection over `sim`: how it ended, and the device.
fn update_on(sim: SimDevice, plan: &Plan) -> (Result<Report, HostError>, SimDevice) {
    let mut host: Host = Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver));
    let result = block_on(update(&mut host, plan));
    (result, host.into_link().into_device())
}

/// The update of `sc` with `plan` and no cut, which must end `outcome`: its report, and
/// the device after it.
fn uncut(sc: &Scenario, plan: &Plan, outcome: Outcome) -> (Report, SimDevice) {
    let (result, sim) = update_on(sim_device(sc), plan);
    let report = result.expect("update");
    assert_eq!(report.outcome, outcome, "{}", sc.name);
    (report, sim)
}

/// One host-driven point: `update` with a cut after `k` steps, power on (a second cut
/// `second` during that boot), check what boots, then a new host connection runs
/// `update` again, which must end `Accepted`. Returns whether the second cut happened.
fn host_point(
    sc: &Scenario,
    k: u64,
    second: Option<u64>,
    first_ends: &mut std::collections::BTreeMap<String, u64>,
) -> Result<bool, String> {
    let mut sim = sim_device(sc);
    sim.flash_mut().set_seed(k);
    sim.flash_mut().arm_power_cut(k);
    let (first, mut sim) = update_on(sim, &host_plan(sc));
    *first_ends.entry(ended(&first)).or_default() += 1;
    if sim.flash().power_cut_armed().is_some() {
        // The cut never came: the update must have gone through.
        sim.flash_mut().disarm_power_cut();
        return match first {
            Ok(r) if r.outcome == Outcome::Accepted => Ok(false),
            other => Err(format!("no cut, yet {other:?}")),
        };
    }
    let mut second = second;
    let mut cut_again = false;
    for round in 0..4 {
        if !settle_power(&mut sim) {
            break;
        }
        cut_again |= round > 0;
        sim.power_on();
        if let Some(k2) = second.take() {
            sim.flash_mut().arm_power_cut(k2);
        }
        run_a_while(&mut sim);
    }
    sim.flash_mut().disarm_power_cut();
    if !sim.is_running() {
        return Err("the device does not run after power-on".into());
    }
    let boot = sim.boots().last().copied().ok_or("no boot")?;
    let running = Conf {
        vm: boot.boot.vm_slot,
        bc: boot.boot.bc_slot,
    };
    if boot.boot.factory {
        return Err("the record was lost: factory boot".into());
    }
    if running != sc.old && running != sc.new {
        return Err(format!("boots {running:?}"));
    }
    if boot.health != ImageHealth::Healthy {
        return Err(format!("booted {running:?} with health {:?}", boot.health));
    }
    sc.check_slots(sim.flash_bytes(), running, "after power-on")?;
    let rec = sim.record().ok_or("no record")?;
    if rec.valid != 1 {
        return Err(format!("record {rec:?}"));
    }
    // Reconnect: a new host connection over the same device.
    let (again, sim) = update_on(sim, &host_plan(sc));
    let report = match again {
        Ok(r) if r.outcome == Outcome::Accepted => r,
        other => return Err(format!("the second update ended {other:?}")),
    };
    if report.record.valid != 1 || report.record.on_trial() {
        return Err(format!("record after the redo: {:?}", report.record));
    }
    let b = sim.boots().last().copied().ok_or("no boot")?;
    let conf = Conf {
        vm: b.boot.vm_slot,
        bc: b.boot.bc_slot,
    };
    // The redo may have gone to the other slots: they hold the new images now.
    for (kind, index) in [(SlotKind::Vm, conf.vm), (SlotKind::Bytecode, conf.bc)] {
        let at = sc.slot_addr(kind, index) as usize;
        let info = images::parse_image(&sim.flash_bytes()[at..at + SLOT as usize])
            .ok_or("the redo boots a slot that holds no valid image")?;
        let want = sc
            .jobs
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, img)| images::parse_image(img));
        if let Some(want) = want
            && info != want
        {
            return Err(format!("after the redo {kind:?} runs {info:?}"));
        }
    }
    Ok(cut_again)
}

/// The host-driven run without a cut: its step count.
fn host_probe(sc: &Scenario) -> u64 {
    let (_, sim) = uncut(sc, &host_plan(sc), Outcome::Accepted);
    sim.flash().step_count()
}

/// Where each erase of the cycle passes the end of the image it makes room for: the
/// cut points around it leave the image's last bytes erased but not the write unit that
/// pads it (see `host_resumes_after_a_cut_just_past_the_image_end_of_an_erase`).
fn image_ends(sc: &Scenario, spans: &[Span]) -> Vec<u64> {
    spans
        .iter()
        .filter_map(|s| {
            let kind = if s.label.starts_with("erase_slot(Bytecode") {
                SlotKind::Bytecode
            } else if s.label.starts_with("erase_slot(Vm") {
                SlotKind::Vm
            } else {
                return None;
            };
            // The sector's offset in the slot: "erase_slot(Kind N +0x...)".
            let offset = s
                .label
                .rsplit('+')
                .next()
                .and_then(|o| o.trim_end_matches(')').strip_prefix("0x"))
                .and_then(|o| usize::from_str_radix(o, 16).ok())?;
            let (_, image) = sc.jobs.iter().find(|(k, _)| *k == kind)?;
            // The sector the image ends in; after the step that starts an operation
            // that follows another (the first erase of the cycle has none).
            let into = image.len().checked_sub(offset).filter(|&n| n <= SECTOR)?;
            Some(s.from + u64::from(s.from > 0) + into as u64)
        })
        .collect()
}

/// Host-driven cut points: every byte of every record entry write, both ends of every
/// operation, the steps around the image's end in every erase, and a spread over the
/// slot erase / stream and record-sector erase steps.
fn host_points(sc: &Scenario, spans: &[Span], total: u64) -> Vec<u64> {
    let stride = if long_sweep() {
        7
    } else if sc.ecc {
        107
    } else {
        53
    };
    let ends = image_ends(sc, spans);
    (0..=total)
        .filter(|&k| match spans.iter().find(|s| k >= s.from && k < s.to) {
            None => true,
            Some(s) => {
                let (into, left) = (k - s.from, s.to - k);
                into < 4
                    || left <= 4
                    || (s.record && s.to - s.from <= 20)
                    || (s.record && left <= 24)
                    || ends.iter().any(|&e| k + 4 >= e && k <= e + 4)
                    || into % stride == 0
            }
        })
        .collect()
}

/// A cut in an erase just past the end of the image (its last bytes erased, the write
/// unit that pads it not): the host's resume compares only the image's bytes, finds them
/// erased, skips the erase, and its padded last block is refused with `NotErased` on
/// every later try, so the slot can never be updated with that image again.
#[test]
fn host_resumes_after_a_cut_just_past_the_image_end_of_an_erase() {
    let mut failures = Vec::new();
    for sc in Scenario::all()
        .into_iter()
        .filter(|s| s.name.contains("/fresh"))
    {
        let (spans, _) = probe(&sc);
        for end in image_ends(&sc, &spans) {
            for k in end..end + 3 {
                if let Err(e) = host_point(&sc, k, None, &mut Default::default()) {
                    failures.push(format!(
                        "{} cut step {k} ({}): {e}",
                        sc.name,
                        locate(&spans, k)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The simulated device's default: a W25Q128JV whose driver erases in the background
/// (`Info` tag 11), so these cuts land in an update whose erases run while the blocks
/// stream, suspended around each program (`fota_sim::flash::background`).
#[test]
fn power_cuts_during_a_host_driven_update_then_the_host_finishes() {
    let t = Instant::now();
    let mut tally = HostTally::default();
    for sc in Scenario::all() {
        assert!(sc.dev_cfg.erase_suspend, "{}: background erases", sc.name);
        let (spans, total) = probe(&sc);
        // The host does the same flash operations as the agent-level cycle.
        assert_eq!(host_probe(&sc), total, "{}", sc.name);
        let pts = host_points(&sc, &spans, total);
        let t0 = Instant::now();
        tally.run(&sc, &pts, Some(&spans));
        println!(
            "{:<20} host-driven: {total} steps, {} cut points, {:.1?}",
            sc.name,
            pts.len(),
            t0.elapsed()
        );
    }
    tally.finish("host-driven power cuts", t);
    assert!(
        tally.points >= 3_000,
        "only {} host-driven cut points",
        tally.points
    );
    assert!(
        tally.second_cuts >= 20,
        "only {} second cuts",
        tally.second_cuts
    );
}

/// The same host-driven cuts on a device whose driver waits for each erase (no `Info` tag
/// 11): the order of the requests on the flash differs (each erase done before its
/// answer), and every outcome must still be the old or the new image. A sparser spread
/// than the test above (both ends of every operation, every record byte).
#[test]
fn power_cuts_during_a_host_driven_update_without_background_erases() {
    let t = Instant::now();
    let mut tally = HostTally::default();
    for mut sc in Scenario::all().into_iter().filter(|s| !s.ecc) {
        sc.dev_cfg.erase_suspend = false;
        let (spans, total) = probe(&sc);
        assert_eq!(host_probe(&sc), total, "{}", sc.name);
        let pts: Vec<u64> = host_points(&sc, &spans, total)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 5 == 0)
            .map(|(_, k)| k)
            .collect();
        tally.run(&sc, &pts, Some(&spans));
    }
    tally.finish("host-driven power cuts, erases waited for", t);
    assert!(tally.points >= 300, "only {} cut points", tally.points);
}

// ---- SimDevice: a cut that hits the boot decision or the firmware's accept -----------------

/// Runs `update` up to its attempt (no restart), so the next boot writes `Trial`.
fn attempted_device(sc: &Scenario) -> SimDevice {
    let mut plan = host_plan(sc);
    plan.restart = false;
    uncut(sc, &plan, Outcome::Attempted).1
}

/// A cut during the boot decision's record write must leave the device off, as a cut
/// during a request does. (Today `SimDevice::finish_boot` keeps it running on a flash
/// without power: it answers from RAM and fails every flash request.)
#[test]
fn sim_device_turns_off_when_a_cut_hits_the_boot_decision() {
    let sc = Scenario::new(LayoutKind::BytecodeOnly, false, false);
    let mut sim = attempted_device(&sc);
    sim.flash_mut().arm_power_cut(5);
    sim.reset();
    run_a_while(&mut sim);
    assert!(!sim.flash().is_powered(), "the cut happened in the boot");
    assert!(
        sim.is_off(),
        "power was lost during the boot decision, yet the device runs (boot {:?})",
        sim.current_boot()
    );
}

/// Same for the firmware's own `accept()` after a trial boot.
#[test]
fn sim_device_turns_off_when_a_cut_hits_the_firmware_accept() {
    let sc = Scenario::new(LayoutKind::BytecodeOnly, false, false);
    let mut sim = attempted_device(&sc);
    sim.reset();
    // Let the boot decision write Trial, then cut inside the accept's entry.
    let until = sim.now() + sim.config().boot_ns + 1_000_000;
    sim.run_until(until, false);
    assert!(sim.current_boot().is_some_and(|b| b.trial));
    sim.flash_mut().arm_power_cut(7);
    run_a_while(&mut sim);
    assert!(!sim.flash().is_powered(), "the cut happened in accept");
    assert!(
        sim.is_off(),
        "power was lost during accept(), yet the device runs"
    );
}

/// The host-driven sweep of a compressed or delta scenario: the update without a cut,
/// which must end `Accepted` and send less than `1 / divisor` of the image's bytes; then
/// a cut at every `stride`th flash step of its cycle and at each of its last
/// [`TAIL_STEPS`], where a second cut hits the recovery boot.
fn streamed_sweep(sc: &Scenario, stride: u64, divisor: u64, tally: &mut HostTally) {
    let (report, sim) = uncut(sc, &host_plan(sc), Outcome::Accepted);
    let image_len = sc.jobs[0].1.len() as u64;
    assert!(
        report.sent_bytes * divisor < image_len,
        "{}: {} bytes sent for {image_len}",
        sc.name,
        report.sent_bytes
    );
    let total = sim.flash().step_count();
    // The recovery boot writes the flash only after a cut past the attempt (a cut in the
    // stream leaves a record with nothing to decide), so a second cut armed at every
    // seventh point of the stream would never fire: the record writes at the end of the
    // cycle (attempt, the trial boot, accept) are cut at every step, each with a second
    // cut armed in the recovery boot that follows.
    let tail_from = total.saturating_sub(TAIL_STEPS);
    let pts: Vec<u64> = (0..tail_from).filter(|&k| k % stride == 0).collect();
    let tail: Vec<u64> = (tail_from..=total).collect();
    let before = tally.second_cuts;
    tally.run(sc, &pts, None);
    tally.run_cutting_again(sc, &tail, None, |i| Some(SECOND[i % SECOND.len()]));
    let cut_again = tally.second_cuts - before;
    println!(
        "{:<28} {} bytes sent for {image_len}: {total} steps, {} cut points{}, {cut_again} \
         cut again during recovery",
        sc.name,
        report.sent_bytes,
        pts.len() + tail.len(),
        if stride == 1 { " (every one)" } else { "" }
    );
    assert!(
        cut_again >= 4,
        "{}: only {cut_again} second cuts during recovery",
        sc.name
    );
}

/// The steps at the end of a streamed cycle cut at every step, a second cut armed in
/// each recovery: the attempt's, the trial boot's and accept's record entries (20 bytes
/// each, `fota-agent`'s record.rs) and what follows them.
const TAIL_STEPS: u64 = 80;

/// Power cuts across a compressed and a delta update driven by the real host: at every
/// 11th flash step of the whole cycle (every step with `FOTA_LONG_SWEEP=1`; every byte
/// erased or programmed is a step, the decoder's writes included) and at every one of the
/// last steps (the record's writes), each with a second cut during the recovery boot
/// that follows. After each, the device boots the old configuration or the new one, complete,
/// with a valid record; then the host runs the update again (compressed or delta again,
/// resuming over the sectors that already hold the image) and it ends `Accepted`.
#[test]
fn power_cuts_during_a_compressed_and_a_delta_update_then_the_host_finishes() {
    // Every 11th flash step in the normal suite; every step with FOTA_LONG_SWEEP=1.
    let stride: u64 = if long_sweep() { 1 } else { 11 };
    let t = Instant::now();
    let mut tally = HostTally::default();
    for sc in [Scenario::streamed(false), Scenario::streamed(true)] {
        // It streams: it sends fewer than half the image's bytes.
        streamed_sweep(&sc, stride, 2, &mut tally);
    }
    tally.finish("compressed and delta power cuts", t);
    assert!(tally.points >= 500, "only {} points", tally.points);
}

/// Power cuts at every flash step (every byte erased or programmed, torn, and just after
/// the last) across a compressed and a delta update of real firmware, driven by the real
/// host: 1 KiB of MicroPython 1.0.1 for the micro:bit, sent compressed, and as a delta
/// from the same 1 KiB of 1.0.0 that the device runs. After each cut the device boots
/// the old configuration (or, past the attempt, the new one), every slot it runs holding
/// its image byte for byte, with a valid record; then the host flashes again and the
/// update ends `Accepted` with the new image in the slot byte for byte. A second cut hits
/// the recovery boot at every seventh point. The device's free slot is empty, as on a
/// device fresh from the factory, so the update erases nothing: the 4.6 KB sweep above
/// cuts the erases, two sectors and the erase ahead between them (every step with
/// `FOTA_LONG_SWEEP=1`).
#[test]
fn power_cuts_at_every_byte_of_a_compressed_and_a_delta_update_of_real_firmware() {
    // 64 KiB into the runtime: code (MicroPython's compiler), not the vector table.
    let Some((old, new)) = micropython_slices(64 * 1024, 1024) else {
        return;
    };
    let t = Instant::now();
    let mut tally = HostTally::default();
    for sc in [
        Scenario::real(false, (&old, &new)),
        Scenario::real(true, (&old, &new)),
    ] {
        // Every step.
        streamed_sweep(&sc, 1, 1, &mut tally);
    }
    tally.finish("real firmware, every byte", t);
}

/// An update whose slot erase is one block erase: bytecode slots of 32 KiB on the
/// W25Q128JV's timing, whose agent declares its 32 and 64 KiB block erases, so erasing
/// the target slot is a single 32 KiB block erase (32 768 steps). Cuts at every step of
/// the block erase's first and last 600 and every 37th step between, and at every 101st
/// step of the writes, the checksum and the attempt that follow: after each, the device
/// boots the old configuration byte for byte (the block erase touches nothing outside
/// the target slot), its record valid, and the whole update redone without a cut ends
/// with the new image in the slot and the new configuration on trial.
#[test]
fn power_cut_inside_a_block_erase() {
    let mut dev_cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    dev_cfg.vm_slot_size = 0x8000;
    dev_cfg.bc_slot_size = 0x8000;
    let mut cfg = dev_cfg.agent_config();
    cfg.images = fota_agent::ImagePolicy::NONE;
    assert_eq!(cfg.block_erases.len(), 2, "the agent declares block erases");
    let old_vm = images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 3000);
    let old_bc = images::sample_image(SlotKind::Bytecode, "blink", "1", true, 2500);
    let stale = images::sample_image(SlotKind::Bytecode, "blink", "0", true, 30_000);
    let new_bc = images::sample_image(SlotKind::Bytecode, "blink", "2", true, 30_500);
    // The timing with block erases (the other sweeps use INSTANT, which has none).
    let mut flash = Flash::new(dev_cfg.flash_size()).with_timing(FlashTiming::W25Q128JV);
    for (kind, index, image) in [
        (SlotKind::Vm, 0, &old_vm),
        (SlotKind::Bytecode, 0, &old_bc),
        (SlotKind::Bytecode, 1, &stale),
    ] {
        let slot = cfg.slot(kind, index).expect("slot");
        let mut data = image.to_vec();
        data.resize(image.len().div_ceil(4) * 4, 0xFF);
        flash.write(slot.addr, &data).expect("factory write");
    }
    let (agent, boot) = Agent::boot(flash, cfg.clone()).expect("first boot");
    assert!(boot.factory);
    let start = agent.into_flash().snapshot();
    let bc1 = *cfg.slot(SlotKind::Bytecode, 1).expect("bytecode 1");
    assert_eq!(bc1.addr % 0x8000, 0, "the slot is one aligned 32 KiB block");

    // The host's steps, as one function: erase (one block), write, checksum, attempt.
    let run = |flash: Flash| -> Result<Agent<Flash>, Box<Flash>> {
        let (mut agent, boot) = Agent::boot(flash, cfg.clone()).expect("boot");
        assert_eq!(
            (boot.vm_slot, boot.bc_slot),
            (0, 0),
            "the old configuration"
        );
        let ok = (|| {
            agent
                .erase_slot(bc1.addr, new_bc.len() as u32, &mut |_, _| {})
                .ok()?;
            for (i, chunk) in new_bc.chunks(1024).enumerate() {
                let mut data = chunk.to_vec();
                data.resize(chunk.len().div_ceil(4) * 4, 0xFF);
                agent.write_slot(bc1.addr + i as u32 * 1024, &data).ok()?;
            }
            let md5 = agent
                .checksum_slot(bc1.addr, new_bc.len() as u32, &mut |_, _| {})
                .ok()?;
            (md5 == fota_sim_md5(&new_bc)).then_some(())?;
            agent.attempt(1, 0).ok()
        })();
        match ok {
            Some(()) => Ok(agent),
            None => Err(Box::new(agent.into_flash())),
        }
    };
    let mut clean = Flash::from_image(start.clone()).expect("image");
    clean.set_timing(FlashTiming::W25Q128JV);
    clean.reset_steps();
    let done = run(clean).unwrap_or_else(|_| panic!("the uncut update"));
    assert_eq!(done.flash().block_erases_done(), 1, "one block erase");
    let total = done.flash().step_count();
    let block = 0x8000u64; // the first operation: its bytes are steps 0..32768
    let mut points: Vec<u64> = (0..600).chain(block - 600..block + 600).collect();
    points.extend((600..block - 600).step_by(37));
    points.extend((block + 600..=total).step_by(101));
    let bc0 = cfg.slot(SlotKind::Bytecode, 0).expect("bytecode 0").addr as usize;
    let vm0 = cfg.slot(SlotKind::Vm, 0).expect("vm 0").addr as usize;
    for &k in &points {
        let mut flash = Flash::from_image(start.clone()).expect("image");
        flash.set_timing(FlashTiming::W25Q128JV);
        flash.reset_steps();
        flash.arm_power_cut(k);
        let mut flash = match run(flash) {
            Ok(agent) => agent.into_flash(),
            Err(flash) => *flash,
        };
        flash.power_on();
        let (agent, boot) = Agent::boot(flash, cfg.clone()).expect("boot after the cut");
        assert!(!boot.factory, "cut {k}: the record was lost");
        let bytes = agent.flash().as_bytes();
        assert_eq!(
            &bytes[vm0..vm0 + old_vm.len()],
            &old_vm[..],
            "cut {k}: VM 0"
        );
        assert_eq!(
            &bytes[bc0..bc0 + old_bc.len()],
            &old_bc[..],
            "cut {k}: bytecode 0"
        );
        assert_eq!(agent.get_record().expect("record").valid, 1, "cut {k}");
        if boot.bc_slot == 1 {
            // The cut came after the attempt: the new image runs on trial.
            assert!(boot.trial, "cut {k}");
            assert_eq!(&bytes[bc1.addr as usize..][..new_bc.len()], &new_bc[..]);
            continue;
        }
        assert_eq!(boot.bc_slot, 0, "cut {k}");
        // Redo the whole update from this state, without a cut.
        let flash = agent.into_flash();
        let mut again = Flash::from_image(flash.snapshot()).expect("image");
        again.set_timing(FlashTiming::W25Q128JV);
        let agent = run(again).unwrap_or_else(|_| panic!("cut {k}: the redone update"));
        let (agent, boot) = Agent::boot(agent.into_flash(), cfg.clone()).expect("restart");
        assert!((boot.bc_slot, boot.trial) == (1, true), "cut {k}: {boot:?}");
        let bytes = agent.flash().as_bytes();
        assert_eq!(
            &bytes[bc1.addr as usize..][..new_bc.len()],
            &new_bc[..],
            "cut {k}"
        );
    }
    println!(
        "block erase sweep: {} cut points of {total} steps",
        points.len()
    );
    assert!(points.len() > 2500, "{} points", points.len());
}
