//! How much of a slot the check before `attempt` reads (feature `images`): a raw image
//! the host has just verified (its MD5 of the slot's first bytes, the check before every
//! attempt) only that far, where raw images are taken; the whole slot otherwise, and
//! always in the boot decision.

use fota_agent::{Agent, AgentConfig, ImagePolicy, Unit};
use fota_image::host::{PackOptions, SigningKey, pack};
use fota_image::{Kind, Version};
use fota_protocol::{ErrorCode, Layout as _, RecordState, SlotKind};
use fota_sim::flash::SimFlash;

type Flash = SimFlash<4, 4096>;

const VM: u32 = 8 * 1024;
const BC: u32 = 16 * 1024;
/// The raw image's length: a slot and a bit.
const LEN: usize = 5000;

fn config(images: ImagePolicy) -> AgentConfig {
    let mut c = AgentConfig::bytecode_only(0, VM, BC, 4096);
    c.images = images;
    c
}

fn boot(c: &AgentConfig) -> Agent<Flash> {
    let flash = Flash::new((2 * VM + 2 * BC + 2 * 4096) as usize);
    Agent::boot(flash, c.clone()).expect("boots").0
}

fn bc1(c: &AgentConfig) -> u32 {
    c.slot(SlotKind::Bytecode, 1).expect("slot").addr
}

fn raw_image() -> Vec<u8> {
    (0..LEN).map(|i| (i as u8).wrapping_mul(7) | 1).collect()
}

/// Erase the slot and write `bytes`, as the host does (only the sectors it needs).
fn put(a: &mut Agent<Flash>, at: u32, bytes: &[u8]) {
    let sectors = (bytes.len() as u32).div_ceil(4096) * 4096;
    a.erase_slot(at, sectors, &mut |_, _| {}).expect("erases");
    for (i, chunk) in bytes.chunks(1024).enumerate() {
        a.write_slot(at + (i * 1024) as u32, chunk).expect("writes");
    }
    a.flush_write().expect("flushes");
}

/// The attempt of bytecode slot 1, run to its end: the bytes it would read, and how
/// it ended.
fn attempt(a: &mut Agent<Flash>) -> (u32, Result<(), ErrorCode>) {
    let mut op = a.begin_attempt(1, 0, false).expect("starts");
    let total = op.total();
    loop {
        match a.check_unit(&mut op) {
            Ok(Unit::More { .. }) => {}
            Ok(Unit::Done(())) => return (total, Ok(())),
            Err(r) => return (total, Err(r.code)),
        }
    }
}

/// An agent booted on `c` with the raw image in bytecode slot 1, hashed from the slot's
/// first byte to the image's end, as the host checks it before `attempt`.
fn written_and_checked(c: &AgentConfig) -> Agent<Flash> {
    let mut a = boot(c);
    put(&mut a, bc1(c), &raw_image());
    a.checksum_slot(bc1(c), LEN as u32, &mut |_, _| {})
        .expect("hashes");
    a
}

#[test]
fn a_raw_image_the_host_verified_is_read_only_as_far_as_its_end() {
    let c = config(ImagePolicy::OPEN);
    let mut a = written_and_checked(&c);
    assert_eq!(attempt(&mut a), (LEN as u32, Ok(())));
    assert_eq!(a.record_entry().state, RecordState::Pending);
    assert_eq!(a.record_entry().bc_current, 1);
}

#[test]
fn without_that_check_or_after_a_change_the_whole_slot_is_read() {
    let c = config(ImagePolicy::OPEN);
    // No checksum since the image was written.
    let mut a = boot(&c);
    put(&mut a, bc1(&c), &raw_image());
    assert_eq!(attempt(&mut a), (BC, Ok(())));
    // A checksum that does not start at the slot's first byte says nothing of its end.
    let mut a = boot(&c);
    put(&mut a, bc1(&c), &raw_image());
    a.checksum_slot(bc1(&c) + 4, LEN as u32 - 4, &mut |_, _| {})
        .expect("hashes");
    assert_eq!(attempt(&mut a).0, BC);
    // Flash written after the checksum: it no longer describes the slot.
    let mut a = written_and_checked(&c);
    a.write_slot(bc1(&c) + 8192, &[0x55; 16]).expect("writes");
    assert_eq!(attempt(&mut a).0, BC);
    // Another slot checked last.
    let mut a = boot(&c);
    put(&mut a, bc1(&c), &raw_image());
    let bc0 = c.slot(SlotKind::Bytecode, 0).expect("slot").addr;
    a.checksum_slot(bc0, LEN as u32, &mut |_, _| {})
        .expect("hashes");
    assert_eq!(attempt(&mut a).0, BC);
    // The power went: RAM forgot it.
    let a = written_and_checked(&c);
    let mut a = Agent::boot(a.into_flash(), c.clone()).expect("boots").0;
    assert_eq!(attempt(&mut a).0, BC);
}

#[test]
fn a_packed_image_inside_that_length_keeps_its_whole_check() {
    let c = config(ImagePolicy::OPEN);
    let payload = raw_image();
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: fota_image::ANY_SLOT,
        version: Version::new(1, 0, 0),
        name: "app".into(),
    };
    let mut image = pack("app", &payload, &opts, &[]).expect("packs");
    let len = image.len() as u32;
    // Intact: verified, the trailer found inside the length checked.
    let mut a = boot(&c);
    put(&mut a, bc1(&c), &image);
    a.checksum_slot(bc1(&c), len, &mut |_, _| {})
        .expect("hashes");
    assert_eq!(attempt(&mut a), (len, Ok(())));
    // One payload byte changed: its hash no longer matches, refused as before.
    image[100] ^= 0x40;
    let mut a = boot(&c);
    put(&mut a, bc1(&c), &image);
    a.checksum_slot(bc1(&c), len, &mut |_, _| {})
        .expect("hashes");
    assert_eq!(attempt(&mut a), (len, Err(ErrorCode::BadImage)));
}

#[test]
fn a_device_that_takes_no_raw_image_reads_the_whole_slot() {
    let key = SigningKey::from_seed([9; 32]).expect("a key");
    let trusted: &'static [fota_agent::TrustedKey] =
        Box::leak(vec![key.public().trusted()].into_boxed_slice());
    let c = config(ImagePolicy::signed(trusted));
    let mut a = written_and_checked(&c);
    assert_eq!(attempt(&mut a), (BC, Err(ErrorCode::Unsigned)));
}

/// The boot decision knows no length: it reads the whole slot. A raw image written over
/// a longer packed one whose trailer's sector the host did not erase is taken by the
/// attempt (the bytes after a raw image are not part of it) and then refused by the
/// boot, which finds that trailer and a hash that does not match: the device goes back
/// to the last working firmware, confirmed, with no reset loop.
#[test]
fn the_boot_decision_still_reads_the_whole_slot() {
    let c = config(ImagePolicy::OPEN);
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: fota_image::ANY_SLOT,
        version: Version::new(1, 0, 0),
        name: "old".into(),
    };
    let old: Vec<u8> = (0..12_000u32).map(|i| (i % 251) as u8).collect();
    let old = pack("old", &old, &opts, &[]).expect("packs");
    let mut a = boot(&c);
    put(&mut a, bc1(&c), &old);
    put(&mut a, bc1(&c), &raw_image());
    a.checksum_slot(bc1(&c), LEN as u32, &mut |_, _| {})
        .expect("hashes");
    assert_eq!(attempt(&mut a), (LEN as u32, Ok(())));
    let (a, boot) = Agent::boot(a.into_flash(), c.clone()).expect("boots");
    assert_eq!((boot.bc_slot, boot.trial), (0, false));
    assert_eq!(a.record_entry().state, RecordState::Confirmed);
    assert_eq!(a.record_entry().bc_current, 0);
}

/// The flash time `attempt` of bytecode slot 1 takes, and how it ended.
fn attempt_time(a: &mut Agent<Flash>) -> (u64, Result<(), ErrorCode>) {
    a.flash_mut().take_busy_ns();
    let (_, r) = attempt(a);
    (a.flash_mut().take_busy_ns(), r)
}

/// A raw image whose `checksum_slot` (from the slot's first byte, nothing changed since)
/// met no trailer's magic is not read again by `attempt`: no trailer can be in it. One
/// holding the magic (inside a 256-byte read, across two) is read as far as its end as
/// before, and taken (no trailer's length field names it); one whose magic ends it is
/// refused as before (a trailer cut short); a magic cut by the range's end is no magic
/// in it.
#[test]
fn a_raw_image_hashed_without_a_magic_is_not_read_again() {
    let c = config(ImagePolicy::OPEN);
    let mut a = written_and_checked(&c);
    let whole = a.flash().timing().read_ns(LEN);
    let (ns, r) = attempt_time(&mut a);
    assert_eq!(r, Ok(()));
    assert!(
        ns < whole / 10,
        "{ns} ns of flash, a read of the image {whole} ns"
    );
    assert_eq!(a.record_entry().bc_current, 1);
    for (at, verdict) in [
        (1000usize, Ok(())),
        (252, Ok(())),
        (255, Ok(())),
        (256, Ok(())),
        (LEN - 8, Err(ErrorCode::BadImage)),
    ] {
        let mut image = raw_image();
        image[at..at + 8].copy_from_slice(&fota_image::MAGIC);
        let mut a = boot(&c);
        put(&mut a, bc1(&c), &image);
        a.checksum_slot(bc1(&c), LEN as u32, &mut |_, _| {})
            .expect("hashes");
        let (ns, r) = attempt_time(&mut a);
        assert_eq!(r, verdict, "magic at {at}");
        assert!(ns >= whole, "magic at {at}: {ns} ns, the image {whole} ns");
    }
    let mut image = raw_image();
    image[LEN - 4..].copy_from_slice(&fota_image::MAGIC[..4]);
    let mut a = boot(&c);
    put(&mut a, bc1(&c), &image);
    a.checksum_slot(bc1(&c), LEN as u32, &mut |_, _| {})
        .expect("hashes");
    let (ns, r) = attempt_time(&mut a);
    assert_eq!(r, Ok(()));
    assert!(ns < whole / 10, "a cut magic: {ns} ns");
    // Changed since: read again, as before.
    let mut a = written_and_checked(&c);
    a.write_slot(bc1(&c) + 8192, &[0x55; 16]).expect("writes");
    assert!(attempt_time(&mut a).0 >= whole);
}
