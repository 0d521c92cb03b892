//! Image checks (feature `images`): a slot becomes current only when its image verifies,
//! signatures where the device requires them, the minimum version kept in the record,
//! and a boot that never starts a slot whose image does not verify.

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use fota_agent::{Agent, AgentConfig, AgentLink, Handled, ImagePolicy, TrustedKey, Unit};
use fota_image::host::{PackOptions, SigningKey, pack};
use fota_image::{Kind, Version};
use fota_protocol::{
    ErrorCode, Layout as _, RecordState, RecordUpdate, Reply, Request, SlotKind, encode_request,
    pack_version,
};
use fota_sim::flash::{FlashError, SimFlash};

type Flash = SimFlash<4, 4096>;

const VM: u32 = 8 * 1024;
const BC: u32 = 16 * 1024;

fn config(images: ImagePolicy) -> AgentConfig {
    let mut c = AgentConfig::vm_and_bytecode(0, VM, BC, 4096);
    c.images = images;
    c
}

/// `VM | BC0 | BC1 | record`.
fn bc_only(images: ImagePolicy) -> AgentConfig {
    let mut c = AgentConfig::bytecode_only(0, VM, BC, 4096);
    c.images = images;
    c
}

fn flash() -> Flash {
    Flash::new((2 * VM + 2 * BC + 2 * 4096) as usize)
}

fn addr(c: &AgentConfig, kind: SlotKind, index: u32) -> u32 {
    c.slot(kind, index).expect("slot").addr
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32]).expect("a key")
}

fn trust(keys: &[&SigningKey]) -> &'static [TrustedKey] {
    Box::leak(
        keys.iter()
            .map(|k| k.public().trusted())
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// A bytecode payload of `len` bytes, packed for `at` (any bytecode slot when `None`).
fn bc_image(seed: u8, len: usize, version: (u16, u16, u32), keys: &[&SigningKey]) -> Vec<u8> {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect();
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: fota_image::ANY_SLOT,
        version: Version::new(version.0, version.1, version.2),
        name: "app".into(),
    };
    pack("app", &payload, &opts, keys).expect("packs")
}

fn boot(flash: Flash, c: &AgentConfig) -> (Agent<Flash>, fota_agent::Boot) {
    Agent::boot(flash, c.clone()).expect("boots")
}

fn restart(a: Agent<Flash>, c: &AgentConfig) -> (Agent<Flash>, fota_agent::Boot) {
    boot(a.into_flash(), c)
}

/// Erase the slot at `at` and write `bytes` there, as the host does.
fn put(a: &mut Agent<Flash>, at: u32, size: u32, bytes: &[u8]) {
    a.erase_slot(at, size, &mut |_, _| {}).expect("erases");
    for (i, chunk) in bytes.chunks(1024).enumerate() {
        a.write_slot(at + (i * 1024) as u32, chunk).expect("writes");
    }
}

/// Program `bytes` (a multiple of 4) into erased flash at `at`, behind the agent (slots
/// in use cannot be written through it): the factory's images.
fn poke(a: &mut Agent<Flash>, at: u32, bytes: &[u8]) {
    a.flash_mut()
        .write(at, bytes)
        .expect("erased flash takes the bytes");
}

fn refusal(code: ErrorCode, detail: u32) -> fota_agent::Refusal {
    fota_agent::Refusal { code, detail }
}

/// Install `image` in bytecode slot 1, attempt, restart and accept.
fn update_bc1(a: Agent<Flash>, c: &AgentConfig, image: &[u8]) -> Agent<Flash> {
    let mut a = a;
    put(&mut a, addr(c, SlotKind::Bytecode, 1), BC, image);
    a.attempt(1, 0).expect("attempted");
    let (mut a, b) = restart(a, c);
    assert!(b.trial && b.bc_slot == 1);
    a.accept().expect("accepted");
    a
}

#[test]
fn set_record_and_attempt_refuse_an_erased_slot_and_change_nothing() {
    let c = config(ImagePolicy::OPEN);
    let (mut a, _) = boot(flash(), &c);
    let before = a.record_entry();
    let bc1 = addr(&c, SlotKind::Bytecode, 1);
    let u = RecordUpdate {
        vm_current: 0,
        vm_last: 0,
        bc_current: 1,
        bc_last: 1,
    };
    assert_eq!(a.set_record(u), Err(refusal(ErrorCode::BadImage, bc1)));
    assert_eq!(a.attempt(1, 0), Err(refusal(ErrorCode::BadImage, bc1)));
    assert_eq!(a.record_entry(), before);
    // And the slots the record already names are not checked again: setting them writes
    // nothing and succeeds.
    a.set_record(RecordUpdate {
        vm_current: 0,
        vm_last: 0,
        bc_current: 0,
        bc_last: 0,
    })
    .expect("the record's own slots");
}

#[test]
fn a_packed_image_is_verified_and_a_damaged_one_refused() {
    let c = config(ImagePolicy::OPEN);
    let (mut a, _) = boot(flash(), &c);
    let bc1 = addr(&c, SlotKind::Bytecode, 1);
    let mut bad = bc_image(1, 5000, (1, 0, 0), &[]);
    bad[1234] ^= 0x40;
    put(&mut a, bc1, BC, &bad);
    assert_eq!(a.attempt(1, 0), Err(refusal(ErrorCode::BadImage, bc1)));
    // Cut off before its trailer: a half-written packed image is refused where raw images
    // are not taken.
    let good = bc_image(1, 5000, (1, 0, 0), &[]);
    let strict = config(ImagePolicy {
        allow_raw: false,
        ..ImagePolicy::OPEN
    });
    let (mut s, _) = restart(a, &strict);
    put(&mut s, bc1, BC, &good[..4096]);
    assert_eq!(s.attempt(1, 0), Err(refusal(ErrorCode::BadImage, bc1)));
    put(&mut s, bc1, BC, &good);
    s.attempt(1, 0).expect("a whole image verifies");
    assert_eq!(s.record_state(), RecordState::Pending);
}

#[test]
fn raw_images_are_taken_where_allowed() {
    let c = config(ImagePolicy::OPEN);
    let (mut a, _) = boot(flash(), &c);
    let bc1 = addr(&c, SlotKind::Bytecode, 1);
    put(&mut a, bc1, BC, &[0x12; 3000]);
    a.attempt(1, 0).expect("a raw image on an open device");
    let info = a.info();
    let rules = info.images.expect("the device says what it takes");
    assert!(rules.allow_raw && !rules.require_signatures && rules.keys.is_empty());
}

#[test]
fn a_device_that_requires_signatures_refuses_every_other_image() {
    let signer = key(7);
    let stranger = key(8);
    let c = config(ImagePolicy::signed(trust(&[&signer])));
    let (mut a, _) = boot(flash(), &c);
    let bc1 = addr(&c, SlotKind::Bytecode, 1);
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (vec![0x12; 3000], ErrorCode::Unsigned),
        (bc_image(2, 3000, (1, 0, 0), &[]), ErrorCode::Unsigned),
        (
            bc_image(2, 3000, (1, 0, 0), &[&stranger]),
            ErrorCode::UnknownKey,
        ),
        (
            {
                let mut img = bc_image(2, 3000, (1, 0, 0), &[&signer]);
                let last = img.len() - 1;
                img[last] ^= 1; // the signature's last byte
                img
            },
            ErrorCode::BadSignature,
        ),
    ];
    for (image, code) in cases {
        put(&mut a, bc1, BC, &image);
        assert_eq!(a.attempt(1, 0), Err(refusal(code, bc1)), "{code:?}");
        assert_eq!(a.record_state(), RecordState::Confirmed);
    }
    put(
        &mut a,
        bc1,
        BC,
        &bc_image(2, 3000, (1, 0, 0), &[&stranger, &signer]),
    );
    a.attempt(1, 0)
        .expect("signed by a trusted key (and another)");
    let rules = a.info().images.expect("rules");
    assert!(rules.require_signatures && !rules.allow_raw && !rules.allow_downgrade);
    assert_eq!(rules.keys.as_slice(), &[signer.id().0]);
}

#[test]
fn accepting_raises_the_minimum_version_and_older_images_are_refused() {
    let c = config(ImagePolicy::OPEN);
    let (a, _) = boot(flash(), &c);
    let a = update_bc1(a, &c, &bc_image(3, 4000, (1, 2, 3), &[]));
    let e = a.record_entry();
    assert_eq!(e.bc_minimum, pack_version(1, 2, 3));
    assert_eq!(e.vm_minimum, 0, "the VM was not updated");
    assert_eq!(
        a.info().images.expect("rules").bc_minimum,
        pack_version(1, 2, 3)
    );
    // The minimum survives a restart (it is in the record on flash).
    let (mut a, _) = restart(a, &c);
    assert_eq!(a.record_entry().bc_minimum, pack_version(1, 2, 3));
    let bc0 = addr(&c, SlotKind::Bytecode, 0);
    put(&mut a, bc0, BC, &bc_image(4, 4000, (1, 2, 2), &[]));
    assert_eq!(a.attempt(0, 0), Err(refusal(ErrorCode::Downgrade, bc0)));
    // A raw image cannot show its version: refused too.
    put(&mut a, bc0, BC, &[0x33; 100]);
    assert_eq!(a.attempt(0, 0), Err(refusal(ErrorCode::Downgrade, bc0)));
    // The same version again, or a newer one, is taken.
    put(&mut a, bc0, BC, &bc_image(4, 4000, (1, 2, 3), &[]));
    a.attempt(0, 0).expect("same version");
}

#[test]
fn a_downgrade_needs_the_request_and_a_device_that_allows_it() {
    let c = config(ImagePolicy::OPEN);
    let (a, _) = boot(flash(), &c);
    let a = update_bc1(a, &c, &bc_image(3, 4000, (2, 0, 0), &[]));
    let (mut a, _) = restart(a, &c);
    let bc0 = addr(&c, SlotKind::Bytecode, 0);
    put(&mut a, bc0, BC, &bc_image(4, 4000, (1, 9, 0), &[]));
    let mut op = a.begin_attempt(0, 0, true).expect("starts");
    while let Unit::More { .. } = a.check_unit(&mut op).expect("verifies") {}
    assert_eq!(a.record_state(), RecordState::Pending);
    // Accepted, the downgraded image's version is the new minimum.
    let (mut a, b) = restart(a, &c);
    assert!(
        b.trial,
        "the boot checks no minimum where downgrades are allowed"
    );
    a.accept().expect("accepted");
    assert_eq!(a.record_entry().bc_minimum, pack_version(1, 9, 0));

    // A device that never allows downgrades refuses even when asked.
    let signer = key(9);
    let strict = config(ImagePolicy::signed(trust(&[&signer])));
    let (a, _) = boot(flash(), &strict);
    let a = update_bc1(a, &strict, &bc_image(3, 4000, (2, 0, 0), &[&signer]));
    let (mut a, _) = restart(a, &strict);
    put(&mut a, bc0, BC, &bc_image(4, 4000, (1, 9, 0), &[&signer]));
    let mut op = a.begin_attempt(0, 0, true).expect("starts");
    let refused = loop {
        match a.check_unit(&mut op) {
            Ok(Unit::More { .. }) => {}
            Ok(Unit::Done(())) => panic!("a downgrade on a device that refuses them"),
            Err(r) => break r,
        }
    };
    assert_eq!(refused, refusal(ErrorCode::Downgrade, bc0));
}

/// A record that names an erased slot as current (written by an agent that did not
/// check, or behind its back): the boot goes back to the last working configuration,
/// once, and never tries it again.
#[test]
fn the_boot_never_starts_a_slot_whose_image_does_not_verify() {
    for layout_vm in [false, true] {
        let c = config(ImagePolicy::OPEN);
        let unchecked = config(ImagePolicy::NONE);
        let (mut a, _) = boot(flash(), &unchecked);
        // Slot 0 of each kind holds a working raw image.
        poke(&mut a, 0, &[0x20; 64]);
        poke(&mut a, addr(&c, SlotKind::Bytecode, 0), &[0x21; 64]);
        let vm = u32::from(layout_vm);
        a.attempt(1, vm).expect("no check on this agent");
        assert_eq!(a.record_state(), RecordState::Pending);
        let mut f = a.into_flash();
        let plan = Agent::plan(&mut f, &c).expect("plans");
        assert!(plan.boot.reverted && !plan.boot.trial, "{plan:?}");
        let (a, b) = boot(f, &c);
        assert!(b.reverted && !b.trial, "{b:?}");
        assert_eq!((b.vm_slot, b.bc_slot), (0, 0));
        assert_eq!(a.record_state(), RecordState::Confirmed);
        let (_, again) = restart(a, &c);
        assert!(!again.reverted && !again.trial && again.bc_slot == 0);
    }
}

/// Where the boot runs: `(vm, bc)` and the record in force after a boot on `bytes`.
fn boot_copy(bytes: Vec<u8>, c: &AgentConfig) -> (Agent<Flash>, fota_agent::Boot) {
    boot(Flash::from_image(bytes).expect("same geometry"), c)
}

/// Power cuts at every byte the update programs or erases from the attempt (the image
/// verified, the record written) through the trial boot to the accept that raises the
/// minimum version: the device always runs a configuration whose images verify, and the
/// minimum is the old one or the accepted image's, never anything else.
#[test]
fn power_cuts_during_attempt_boot_and_accept_leave_a_working_configuration() {
    for c in [config(ImagePolicy::OPEN), bc_only(ImagePolicy::OPEN)] {
        sweep_update(&c);
    }
}

fn sweep_update(c: &AgentConfig) {
    let c = c.clone();
    let image = bc_image(5, 6000, (3, 1, 4), &[]);
    let (mut a, _) = boot(flash(), &c);
    let bc1 = addr(&c, SlotKind::Bytecode, 1);
    put(&mut a, bc1, BC, &image);
    poke(&mut a, addr(&c, SlotKind::Bytecode, 0), &[0x44; 100]);
    let start = a.into_flash().snapshot();
    let layout = c.count(SlotKind::Vm);

    // The update as the device lives it; a cut stops it where it falls (every later
    // operation fails), and the power comes back.
    let update = |mut f: Flash| -> Flash {
        if let Ok((mut a, _)) = Agent::boot(f.clone(), c.clone()) {
            let _ = a.attempt(1, 0);
            f = a.into_flash();
            if f.is_powered()
                && let Ok((mut a, _)) = Agent::boot(f.clone(), c.clone())
            {
                let _ = a.accept();
                f = a.into_flash();
            }
        }
        f.power_on();
        f
    };
    let mut probe = Flash::from_image(start.clone()).expect("image");
    probe.reset_steps();
    let total = update(probe).step_count();
    assert!(total > 0);
    let mut new_seen = 0;
    for cut in 0..=total {
        let mut f = Flash::from_image(start.clone()).expect("image");
        f.arm_power_cut(cut);
        let left = update(f);
        let (a, b) = boot_copy(left.snapshot(), &c);
        let e = a.record_entry();
        assert!(
            e.bc_minimum == 0 || e.bc_minimum == pack_version(3, 1, 4),
            "cut {cut}: minimum {:#x}",
            e.bc_minimum
        );
        if e.bc_minimum != 0 {
            assert_eq!(
                (e.bc_last, b.bc_slot),
                (1, 1),
                "cut {cut}: raised only when accepted"
            );
            new_seen += 1;
        } else {
            assert!(b.bc_slot == 0 || b.trial, "cut {cut}: {b:?}");
        }
    }
    println!(
        "{layout} VM slot(s): {} cut points (bytes programmed or erased), {new_seen} after \
         the accept",
        total + 1
    );
    assert!(new_seen > 0, "the sweep reached the accepted state");
}

/// A flash whose power is cut after `reads_left` more reads: every operation after
/// fails. Verification only reads, so this is where a cut during it falls.
#[derive(Debug)]
struct ReadCut {
    inner: Flash,
    reads_left: Option<u32>,
    reads: u32,
    /// Reads done before the first program or erase.
    first_write_at: Option<u32>,
}

impl ErrorType for ReadCut {
    type Error = FlashError;
}

impl ReadNorFlash for ReadCut {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.reads += 1;
        if let Some(n) = self.reads_left.as_mut() {
            if *n == 0 {
                self.inner.cut_power();
            } else {
                *n -= 1;
            }
        }
        self.inner.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl NorFlash for ReadCut {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.first_write_at.get_or_insert(self.reads);
        self.inner.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.first_write_at.get_or_insert(self.reads);
        self.inner.write(offset, bytes)
    }
}

/// A cut at every read of the verification (both layouts' slots: a VM and a bytecode
/// image attempted together): the attempt fails and the next boot runs the old
/// configuration, with the record as it was.
#[test]
fn a_power_cut_at_any_read_of_the_verification_leaves_the_old_configuration() {
    let signer = key(11);
    let policy = ImagePolicy::signed(trust(&[&signer]));
    for (c, vm) in [(config(policy), 1), (bc_only(policy), 0)] {
        read_cuts(&c, vm, &signer);
    }
}

/// Attempt bytecode 1 (and VM 1 where `vm` is 1), cut at every read of it.
fn read_cuts(c: &AgentConfig, vm: u32, signer: &SigningKey) {
    let c = c.clone();
    let unchecked = AgentConfig {
        images: ImagePolicy::NONE,
        ..c.clone()
    };
    let (mut a, _) = boot(flash(), &unchecked);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    if vm == 1 {
        let vm1 = addr(&c, SlotKind::Vm, 1);
        let vm_image = pack(
            "vm",
            &payload,
            &PackOptions {
                kind: Kind::Vm,
                slot_addr: vm1,
                version: Version::new(1, 0, 0),
                name: "vm".into(),
            },
            &[signer],
        )
        .expect("packs");
        put(&mut a, vm1, VM, &vm_image);
    }
    put(
        &mut a,
        addr(&c, SlotKind::Bytecode, 1),
        BC,
        &bc_image(6, 5000, (1, 0, 0), &[signer]),
    );
    let start = a.into_flash().snapshot();
    let before = boot_copy(start.clone(), &c).0.record_entry();

    // Reads of a boot and an attempt without a cut.
    let mut probe = ReadCut {
        inner: Flash::from_image(start.clone()).expect("image"),
        reads_left: None,
        reads: 0,
        first_write_at: None,
    };
    let (mut a, _) = Agent::boot(&mut probe, c.clone()).expect("boots");
    let boot_reads = a.flash().reads;
    a.attempt(1, vm).expect("the images verify");
    // Up to the record write: the reads of the verification (and of the record's
    // append, which looks for an erased place before it programs one).
    let total = a.flash().first_write_at.expect("the record was written");
    assert!(total > boot_reads + 10, "{boot_reads} {total}");
    drop(a);
    for cut in boot_reads..total {
        let mut f = ReadCut {
            inner: Flash::from_image(start.clone()).expect("image"),
            reads_left: None,
            reads: 0,
            first_write_at: None,
        };
        let (mut a, _) = Agent::boot(&mut f, c.clone()).expect("boots");
        a.flash_mut().reads_left = Some(cut - boot_reads);
        assert!(a.attempt(1, vm).is_err(), "cut at read {cut}");
        drop(a);
        f.inner.power_on();
        let (a, b) = boot_copy(f.inner.snapshot(), &c);
        assert_eq!((b.vm_slot, b.bc_slot, b.trial), (0, 0, false), "cut {cut}");
        assert_eq!(a.record_entry(), before, "cut {cut}");
    }
    println!(
        "{} VM slot(s): {} read cut points in the verification",
        c.count(SlotKind::Vm),
        total - boot_reads
    );
}

/// Over the link an attempt is a long request: the images are verified a bounded unit
/// per step, then the reply comes.
#[test]
fn the_link_verifies_in_bounded_steps() {
    let signer = key(12);
    let c = config(ImagePolicy::signed(trust(&[&signer])));
    let (mut a, _) = boot(flash(), &c);
    put(
        &mut a,
        addr(&c, SlotKind::Bytecode, 1),
        BC,
        &bc_image(7, 15000, (1, 0, 0), &[&signer]),
    );
    let mut link = AgentLink::new(a);
    let mut buf = [0u8; 64];
    let n = encode_request(
        5,
        &Request::Attempt {
            bc_slot: 1,
            vm_slot: 0,
            check: None,
        },
        &mut buf,
    )
    .expect("fits");
    let mut sent = Vec::new();
    let first = link.step(&buf[..n], &mut |f| sent.extend_from_slice(f));
    assert_eq!(first.handled, Handled::Started { id: 5, op: 0x0B });
    let mut units = 0;
    loop {
        let s = link.step(&[], &mut |f| sent.extend_from_slice(f));
        match s.handled {
            Handled::Working { .. } => units += 1,
            Handled::Request { refused, .. } => {
                assert_eq!(refused, None);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // 15 KiB in 4 KiB units, the trailer and the signature each in their own.
    assert!(units >= 5, "{units} units");
    let mut reader = fota_protocol::FrameReader::<512>::new();
    let (_, ev) = reader.feed(&sent);
    match ev {
        Some(fota_protocol::Event::Frame(f)) => {
            assert_eq!(Reply::parse(f.op, f.body), Ok(Reply::Attempted))
        }
        other => panic!("{other:?}"),
    }
}

/// On ECC flash a word a power cut tore after the image's end (an erase cut short that
/// the host's resume does not redo) cannot be read: the image before it is taken as raw
/// where raw images are, and refused where only packed images are.
#[test]
fn a_torn_word_after_a_raw_image_ends_the_scan() {
    let c = config(ImagePolicy::OPEN);
    let (mut a, _) = boot(flash().with_ecc(), &c);
    let bc1 = addr(&c, SlotKind::Bytecode, 1);
    put(&mut a, bc1, BC, &[0x5A; 3000]);
    a.flash_mut().tear_word(bc1 + 9000);
    a.attempt(1, 0).expect("raw image, torn word after it");
    let strict = config(ImagePolicy {
        allow_raw: false,
        ..ImagePolicy::OPEN
    });
    let (mut a, _) = boot(flash().with_ecc(), &strict);
    put(&mut a, bc1, BC, &[0x5A; 3000]);
    a.flash_mut().tear_word(bc1 + 9000);
    assert_eq!(a.attempt(1, 0), Err(refusal(ErrorCode::BadImage, bc1)));
}
