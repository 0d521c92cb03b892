//! Images a device refuses, checked by the host before anything is written (rows of
//! `docs/BAD_INPUTS.md`, "Images the device refuses"): unsigned, unknown key, bad
//! signature, damaged, linked for another slot, raw where only packed images go, a
//! downgrade, an image already installed. Each test checks what the user gets and that
//! flash and record are as they were (but for the slot a device-side refusal's write
//! touched).

use std::time::Duration;

use fota_agent::ImagePolicy;
use fota_host::protocol::{ErrorCode, Layout as _, Op, SlotKind, pack_version};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan};
use fota_host::{Device, HostError, Image, NullObserver, update};
use fota_image::host::{PackOptions, SigningKey, pack};
use fota_image::{Kind, Version};
use fota_sim::device::{DeviceConfig, DeviceFlash, LayoutKind, SimDevice};
use fota_sim::flash::FlashTiming;
use fota_sim::images;
use futures::executor::block_on;

type Host = Device<SimTransport<Virtual>>;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32]).expect("key")
}

fn config(images: ImagePolicy) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.vm_slot_size = 8 * 1024;
    cfg.bc_slot_size = 12 * 1024;
    cfg.images = images;
    cfg
}

fn signed_policy(keys: &[&SigningKey]) -> ImagePolicy {
    let trusted: Vec<_> = keys.iter().map(|k| k.public().trusted()).collect();
    ImagePolicy::signed(Box::leak(trusted.into_boxed_slice()))
}

/// A device with a raw VM and a raw bytecode in slot 0, booted.
fn host_for(cfg: DeviceConfig) -> Host {
    let vm = images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 3000);
    let bc = images::sample_image(SlotKind::Bytecode, "blink", "1", true, 2500);
    let bytes = cfg.flash_with(&[(SlotKind::Vm, 0, &vm), (SlotKind::Bytecode, 0, &bc)]);
    let flash = DeviceFlash::from_image(bytes)
        .expect("whole sectors")
        .with_timing(FlashTiming::INSTANT);
    let sim = SimDevice::from_flash(cfg, flash);
    Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver))
}

/// A healthy sample bytecode `blink <tag>`, packed as `version` for any bytecode slot.
fn packed(tag: &str, version: (u16, u16, u32), slot_addr: u32, keys: &[&SigningKey]) -> Image {
    let raw = images::sample_image(SlotKind::Bytecode, "blink", tag, true, 5000);
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr,
        version: Version::new(version.0, version.1, version.2),
        name: format!("blink {tag}"),
    };
    let bytes = pack("blink.img", &raw, &opts, keys).expect("packs");
    Image::new(format!("blink-{tag}.img"), bytes).expect("not empty")
}

fn any() -> u32 {
    fota_image::ANY_SLOT
}

#[derive(Debug, PartialEq)]
struct State {
    flash: Vec<u8>,
    record: Option<fota_host::protocol::Record>,
}

fn snap(dev: &mut Host) -> State {
    let d = dev.link().device();
    State {
        flash: d.flash_bytes().to_vec(),
        record: d.record(),
    }
}

fn plan(image: Image) -> Plan {
    let mut p = Plan::new(image);
    p.wait_accept = Duration::from_secs(5);
    p
}

/// Refused before anything is written: the error, its help, and nothing changed.
fn refused_before_writing(dev: &mut Host, p: &Plan) -> HostError {
    let before = snap(dev);
    let e = block_on(update(dev, p)).expect_err("refused");
    assert!(!e.to_string().is_empty() && !e.help().is_empty());
    assert_eq!(snap(dev), before, "{e}: flash or record changed");
    e
}

#[test]
fn unsigned_image_on_a_device_that_requires_signatures() {
    let k = key(1);
    let mut dev = host_for(config(signed_policy(&[&k])));
    for image in [
        packed("2", (1, 0, 0), any(), &[]),
        Image::new(
            "raw.bin",
            images::sample_image(SlotKind::Bytecode, "blink", "2", true, 5000),
        )
        .expect("image"),
    ] {
        let e = refused_before_writing(&mut dev, &plan(image));
        assert!(
            matches!(
                e,
                HostError::ImageRefused {
                    code: ErrorCode::Unsigned,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("runs only signed images"), "{e}");
        assert!(e.help().contains("fota image sign"), "{}", e.help());
    }
}

#[test]
fn image_signed_by_an_unknown_key() {
    let k = key(1);
    let mut dev = host_for(config(signed_policy(&[&k])));
    let e = refused_before_writing(&mut dev, &plan(packed("2", (1, 0, 0), any(), &[&key(2)])));
    assert!(
        matches!(
            e,
            HostError::ImageRefused {
                code: ErrorCode::UnknownKey,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&key(2).id().to_string())
            && e.to_string().contains(&k.id().to_string()),
        "{e}"
    );
}

/// The host knows the device's key ids, not its keys: a signature that does not verify
/// is found by the device, at attempt, after the MD5 matched. Nothing is switched: the
/// record is as it was; only the free slot holds the image.
#[test]
fn image_with_a_bad_signature() {
    let k = key(1);
    let mut dev = host_for(config(signed_policy(&[&k])));
    let image = packed("2", (1, 0, 0), any(), &[&k]);
    let mut bytes = image.data().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let image = Image::new(image.name, bytes).expect("image");
    let before = snap(&mut dev);
    let e = block_on(update(&mut dev, &plan(image))).expect_err("refused");
    match &e {
        HostError::Refused {
            op: Op::Attempt,
            code: ErrorCode::BadSignature,
            detail,
        } => assert_eq!(*detail, 12 * 1024 + 12 * 1024 + 8 * 1024 - 12 * 1024),
        other => panic!("{other:?}"),
    }
    assert!(
        e.help().contains("changed after it was signed"),
        "{}",
        e.help()
    );
    let after = snap(&mut dev);
    assert_eq!(after.record, before.record, "nothing switched");
}

#[test]
fn damaged_image() {
    let mut dev = host_for(config(ImagePolicy::OPEN));
    let image = packed("2", (1, 0, 0), any(), &[]);
    let mut bytes = image.data().to_vec();
    bytes[100] ^= 0xFF;
    let image = Image::new(image.name, bytes).expect("image");
    let e = refused_before_writing(&mut dev, &plan(image));
    assert!(
        matches!(
            e,
            HostError::ImageRefused {
                code: ErrorCode::BadImage,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("SHA-256 does not match"), "{e}");
}

#[test]
fn image_linked_for_another_slot() {
    let mut dev = host_for(config(ImagePolicy::OPEN));
    let bc0 = dev
        .link()
        .device()
        .agent_config()
        .slot(SlotKind::Bytecode, 0)
        .expect("slot")
        .addr;
    // Linked for slot 0, which runs: the free slot is slot 1.
    let e = refused_before_writing(&mut dev, &plan(packed("2", (1, 0, 0), bc0, &[])));
    assert!(
        e.to_string()
            .contains(&format!("linked for the slot at {bc0:#x}")),
        "{e}"
    );
}

#[test]
fn raw_image_on_a_device_that_takes_packed_images_only() {
    let mut dev = host_for(config(ImagePolicy {
        allow_raw: false,
        ..ImagePolicy::OPEN
    }));
    let raw = images::sample_image(SlotKind::Bytecode, "blink", "2", true, 5000);
    let e = refused_before_writing(&mut dev, &plan(Image::new("raw.bin", raw).expect("image")));
    assert!(e.to_string().contains("takes only packed images"), "{e}");
}

/// Version 2.0.0 accepted (the minimum becomes 2.0.0); then 1.5.0 is a downgrade: refused
/// with what to do; taken when confirmed, and the minimum follows it down. A device that
/// never allows downgrades refuses it even confirmed.
#[test]
fn downgrade() {
    for allow in [true, false] {
        let policy = ImagePolicy {
            allow_downgrade: allow,
            ..ImagePolicy::OPEN
        };
        let mut dev = host_for(config(policy));
        let r = block_on(update(&mut dev, &plan(packed("2", (2, 0, 0), any(), &[]))))
            .expect("first update");
        assert_eq!(r.outcome, Outcome::Accepted);
        let info = block_on(dev.hello()).expect("hello");
        assert_eq!(
            info.images.as_ref().map(|r| r.bc_minimum),
            Some(pack_version(2, 0, 0))
        );
        let older = packed("3", (1, 5, 0), any(), &[]);
        let e = refused_before_writing(&mut dev, &plan(older.clone()));
        match &e {
            HostError::Downgrade {
                image,
                minimum,
                allowed,
                ..
            } => {
                assert_eq!((image.as_str(), minimum.as_str()), ("1.5.0", "2.0.0"));
                assert_eq!(*allowed, allow);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string()
                .contains("downgrade from version 2.0.0 to 1.5.0"),
            "{e}"
        );
        let mut confirmed = plan(older);
        confirmed.allow_downgrade = true;
        if allow {
            assert!(e.help().contains("--allow-downgrade"), "{}", e.help());
            let r = block_on(update(&mut dev, &confirmed)).expect("confirmed downgrade");
            assert_eq!(r.outcome, Outcome::Accepted);
            let info = block_on(dev.hello()).expect("hello");
            assert_eq!(
                info.images.as_ref().map(|r| r.bc_minimum),
                Some(pack_version(1, 5, 0))
            );
        } else {
            assert!(
                e.help().contains("never takes an older version"),
                "{}",
                e.help()
            );
            let e = refused_before_writing(&mut dev, &confirmed);
            assert!(
                matches!(e, HostError::Downgrade { allowed: false, .. }),
                "{e:?}"
            );
        }
    }
}

#[test]
fn image_already_installed() {
    let mut dev = host_for(config(ImagePolicy::OPEN));
    let image = packed("2", (1, 0, 0), any(), &[]);
    let r = block_on(update(&mut dev, &plan(image.clone()))).expect("update");
    assert_eq!(r.outcome, Outcome::Accepted);
    let mut again = plan(image.clone());
    again.check_installed = true;
    let e = refused_before_writing(&mut dev, &again);
    assert!(
        matches!(e, HostError::AlreadyInstalled { index: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("already installed"), "{e}");
    assert!(e.help().contains("--reinstall"), "{}", e.help());
    // Without the check (--reinstall) it goes to the other slot.
    let r = block_on(update(&mut dev, &plan(image))).expect("reinstall");
    assert_eq!(r.outcome, Outcome::Accepted);
}

/// What a file is, before anything is written: the facts the CLI and the web app show.
#[test]
fn image_facts_say_what_a_file_is() {
    let k = key(1);
    let img = packed("2", (1, 2, 3), any(), &[&k]);
    let f = fota_host::ImageFacts::of(img.data());
    assert_eq!(
        f.summary(),
        format!(
            "\"blink 2\", version 1.2.3, bytecode image, for any slot of its kind, signed by {}",
            k.id()
        )
    );
    let raw = fota_host::ImageFacts::of(&[1, 2, 3]);
    assert_eq!(
        raw.summary(),
        "raw image (no FOTA trailer: no version, unsigned)"
    );
}

/// Intel HEX (I32HEX) of `data` at `addr`.
fn hex(addr: u32, data: &[u8]) -> Vec<u8> {
    fn record(kind: u8, at: u16, bytes: &[u8]) -> String {
        let mut sum: u8 = (bytes.len() as u8)
            .wrapping_add((at >> 8) as u8)
            .wrapping_add(at as u8)
            .wrapping_add(kind);
        let mut line = format!(":{:02X}{at:04X}{kind:02X}", bytes.len());
        for b in bytes {
            sum = sum.wrapping_add(*b);
            line += &format!("{b:02X}");
        }
        line + &format!("{:02X}\n", sum.wrapping_neg())
    }
    let mut out = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let a = addr + (i * 16) as u32;
        out += &record(4, 0, &((a >> 16) as u16).to_be_bytes());
        out += &record(0, a as u16, chunk);
    }
    out += &record(1, 0, &[]);
    out.into_bytes()
}

/// `fota flash` (and the web app) read a HEX, ELF or UF2 into the slot its addresses
/// select: a HEX linked for bytecode slot 1 goes there and runs; the same file given as
/// the VM, or one linked outside every slot, is refused before anything is written,
/// saying which slot it is linked for and which would fit.
#[test]
fn a_firmware_file_goes_to_the_slot_it_is_linked_for() {
    let mut dev = host_for(config(ImagePolicy::OPEN));
    let info = block_on(dev.hello()).expect("hello");
    let bc1 = info.slot(SlotKind::Bytecode, 1).expect("slot").addr;
    let app = images::sample_image(SlotKind::Bytecode, "blink", "7", true, 3000);
    let file = hex(bc1, &app);
    let p = fota_host::prepare("app.hex", &file, &info, SlotKind::Bytecode).expect("reads");
    assert_eq!(
        p.slot.map(|s| (s.kind, s.index)),
        Some((SlotKind::Bytecode, 1))
    );
    assert_eq!(p.image.data(), app, "the slot's bytes from its start");
    assert_eq!(p.format.to_string(), "Intel HEX");
    let mut plan = plan(p.image);
    plan.bytecode_slot = fota_host::update::SlotChoice::Index(1);
    let r = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(r.outcome, Outcome::Accepted);

    let before = snap(&mut dev);
    let e = fota_host::prepare("app.hex", &file, &info, SlotKind::Vm).expect_err("not a VM");
    assert!(
        e.to_string().contains(&format!(
            "linked for bytecode slot 1 at {bc1:#x}, not a VM slot"
        )),
        "{e}"
    );
    assert!(e.help().contains("bytecode image"), "{}", e.help());
    let e = fota_host::prepare(
        "far.hex",
        &hex(0x0100_0000, &app),
        &info,
        SlotKind::Bytecode,
    )
    .expect_err("outside every slot");
    assert!(matches!(e, HostError::ImageFile { .. }), "{e:?}");
    assert!(e.to_string().contains("0x01000000"), "{e}");
    assert!(!e.help().is_empty());
    assert_eq!(snap(&mut dev), before, "nothing written");
}

/// Every test here is a row of `docs/BAD_INPUTS.md`, and every row naming this file
/// names a test here.
#[test]
fn the_catalogue_names_these_image_tests() {
    let doc = include_str!("../../../docs/BAD_INPUTS.md");
    let source = include_str!("bad_images.rs");
    let tests: Vec<&str> = source
        .split("#[test]\nfn ")
        .skip(1)
        .filter_map(|s| s.split('(').next())
        .filter(|n| *n != "the_catalogue_names_these_image_tests")
        .collect();
    assert!(tests.len() >= 8, "{tests:?}");
    for name in &tests {
        assert!(
            doc.contains(&format!("`bad_images.rs::{name}`")),
            "the catalogue lacks {name}"
        );
    }
    for line in doc.lines().filter(|l| l.contains("bad_images.rs::")) {
        let name = line
            .split("bad_images.rs::")
            .nth(1)
            .and_then(|s| s.split('`').next())
            .unwrap_or_default();
        assert!(tests.contains(&name), "the catalogue names {name}, no test");
    }
}
