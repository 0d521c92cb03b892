//! Bad firmware files and images: what the user gets, message and help, for each row of
//! the "Firmware files and images" table of docs/BAD_INPUTS.md (checked below by
//! `the_catalogue_names_these_tests`). Messages are `fota_image::host::Error`'s
//! `Display`, as `fota image` and the host show them after "error: ".

/// The catalogue check, shared with fota-host's bad_inputs.rs.
#[path = "support/catalogue.rs"]
mod catalogue;
mod common;

use fota_image::host::{Error, PackOptions, ReadOptions, Segment, pack, place, read_firmware, uf2};
use fota_image::{ANY_SLOT, Kind, Policy, Slot, TrustedKey, Version, verify_bytes};

fn read(name: &str, bytes: &[u8]) -> Result<fota_image::host::Firmware, Error> {
    read_firmware(name, bytes, &ReadOptions::default())
}

/// A signed VM image for VM slot 1 (0x50000), 4000 bytes of payload.
fn signed_image() -> Vec<u8> {
    let opts = PackOptions {
        kind: Kind::Vm,
        slot_addr: 0x50000,
        version: Version::new(1, 0, 0),
        name: "app".into(),
    };
    pack(
        "app.img",
        &common::vm_payload(0x50000, 4000),
        &opts,
        &[&common::key(1)],
    )
    .unwrap()
}

/// Verifies as `fota image verify` does, as an error the user sees.
fn verify_as_user(
    image: &[u8],
    slot: Slot,
    trusted: &[TrustedKey],
    minimum: Version,
) -> Result<(), Error> {
    let policy = Policy {
        trusted,
        require_signature: !trusted.is_empty(),
        minimum_version: minimum,
    };
    verify_bytes(image, slot, &policy)
        .map(|_| ())
        .map_err(|error| Error::Image {
            name: "app.img".into(),
            error,
        })
}

fn check(err: Error, message: &str, help_starts: &str) {
    assert_eq!(err.to_string(), message);
    assert!(err.help().starts_with(help_starts), "help: {}", err.help());
}

fn trusted_key_1() -> Vec<TrustedKey> {
    vec![common::key(1).public().trusted()]
}

#[test]
fn truncated_image() {
    let img = signed_image();
    let slot = Slot {
        size: 4000 + 50,
        ..common::slot("vm1")
    };
    let err = verify_as_user(&img[..4050], slot, &[], Version::default()).unwrap_err();
    check(
        err,
        "app.img: the image trailer is cut off",
        "The image is damaged or was cut off",
    );
}

#[test]
fn wrong_magic() {
    let mut img = signed_image();
    img[4000] = b'X';
    let err = verify_as_user(&img, common::slot("vm1"), &[], Version::default()).unwrap_err();
    check(
        err,
        "app.img: no FOTA image trailer: a raw image",
        "Pack the firmware first",
    );
}

#[test]
fn bad_hash() {
    let mut img = signed_image();
    img[10] ^= 1;
    let err = verify_as_user(
        &img,
        common::slot("vm1"),
        &trusted_key_1(),
        Version::default(),
    )
    .unwrap_err();
    check(
        err,
        "app.img: the image's SHA-256 does not match: it is damaged or incomplete",
        "The image is damaged or was cut off",
    );
}

#[test]
fn bad_signature() {
    let mut img = signed_image();
    let n = img.len();
    img[n - 5] ^= 1;
    let err = verify_as_user(
        &img,
        common::slot("vm1"),
        &trusted_key_1(),
        Version::default(),
    )
    .unwrap_err();
    let id = common::key(1).id();
    check(
        err,
        &format!("app.img: the signature by trusted key {id} does not verify"),
        "The image was changed after it was signed",
    );
}

#[test]
fn unknown_key() {
    let img = signed_image();
    let other = vec![common::key(2).public().trusted()];
    let err = verify_as_user(&img, common::slot("vm1"), &other, Version::default()).unwrap_err();
    let id = common::key(1).id();
    check(
        err,
        &format!("app.img: signed by key {id}, which this device does not trust"),
        "Sign the image with a key the device trusts",
    );
}

#[test]
fn unsigned_image_where_a_signature_is_required() {
    let opts = PackOptions {
        kind: Kind::Vm,
        slot_addr: 0x50000,
        version: Version::new(1, 0, 0),
        name: "app".into(),
    };
    let img = pack("app.img", &common::vm_payload(0x50000, 4000), &opts, &[]).unwrap();
    let err = verify_as_user(
        &img,
        common::slot("vm1"),
        &trusted_key_1(),
        Version::default(),
    )
    .unwrap_err();
    check(
        err,
        "app.img: the image is not signed and a signature is required",
        "Sign the image",
    );
}

#[test]
fn image_for_another_slot() {
    let err = verify_as_user(
        &signed_image(),
        common::slot("vm0"),
        &trusted_key_1(),
        Version::default(),
    )
    .unwrap_err();
    check(
        err,
        "app.img: the image is linked for the slot at 0x00050000, not the one at 0x00000000",
        "Use the build linked for the free slot",
    );
}

#[test]
fn image_for_the_other_kind_of_slot() {
    let bc1 = Slot {
        addr: 0x50000,
        ..common::slot("bc1")
    };
    let err =
        verify_as_user(&signed_image(), bc1, &trusted_key_1(), Version::default()).unwrap_err();
    check(
        err,
        "app.img: a VM image cannot go into a bytecode slot",
        "Give a VM image for a VM slot",
    );
}

#[test]
fn downgrade() {
    let err = verify_as_user(
        &signed_image(),
        common::slot("vm1"),
        &trusted_key_1(),
        Version::new(1, 1, 0),
    )
    .unwrap_err();
    check(
        err,
        "app.img: version 1.0.0 is older than 1.1.0, the oldest this device accepts",
        "Install a version at least as new as the minimum",
    );
}

#[test]
fn firmware_file_linked_for_another_slot() {
    let hex = common::make_hex(&[(0x0, &common::vm_payload(0, 2000))]);
    let fw = read("app.hex", hex.as_bytes()).unwrap();
    let err = place(
        &fw,
        Some(&common::layout()),
        Some(common::slot("vm1")),
        false,
    )
    .unwrap_err();
    check(
        err,
        "app.hex is linked for VM slot 0 (0x00000000..0x00010000), not for VM slot 1 \
         (0x00050000..0x00060000); slots it would fit: VM slot 0 (0x00000000..0x00010000), \
         bytecode slot 0 (0x00010000..0x00050000), VM slot 1 (0x00050000..0x00060000), \
         bytecode slot 1 (0x00060000..0x000a0000)",
        "Build the firmware linked for the slot that is free",
    );
}

#[test]
fn firmware_file_outside_every_slot() {
    let elf = common::make_elf(
        40,
        false,
        0,
        &[(0x0800_0000, 0x0800_0000, &common::noise(20_000, 1))],
    );
    let fw = read("stm32.elf", &elf).unwrap();
    let err = place(&fw, Some(&common::layout()), None, false).unwrap_err();
    check(
        err,
        "stm32.elf is linked for 0x08000000..0x08004e20, outside every slot of the layout; slots \
         the firmware would fit: VM slot 0 (0x00000000..0x00010000), bytecode slot 0 \
         (0x00010000..0x00050000), VM slot 1 (0x00050000..0x00060000), bytecode slot 1 \
         (0x00060000..0x000a0000)",
        "Link the firmware for a slot of this layout",
    );
}

#[test]
fn firmware_file_across_two_slots() {
    let hex = common::make_hex(&[(0xF000, &common::noise(0x2000, 3))]);
    let fw = read("big.hex", hex.as_bytes()).unwrap();
    let err = place(&fw, Some(&common::layout()), None, false).unwrap_err();
    check(
        err,
        "big.hex writes into several slots: VM slot 0 (0x00000000..0x00010000), bytecode slot 0 \
         (0x00010000..0x00050000)",
        "Firmware goes into one slot",
    );
}

#[test]
fn hex_with_a_bad_checksum() {
    let text = ":10000000000102030405060708090A0B0C0D0E0F77\n:00000001FF\n";
    let err = read("app.hex", text.as_bytes()).unwrap_err();
    check(
        err,
        "app.hex, line 1: Intel HEX checksum is 77, the record's bytes give 78",
        "The HEX file is damaged",
    );
}

#[test]
fn hex_with_overlapping_records() {
    let hex = common::make_hex(&[(0x10000, &[1; 32]), (0x10010, &[2; 16])]);
    let err = read("app.hex", hex.as_bytes()).unwrap_err();
    check(
        err,
        "app.hex: the record of line 3 and the record of line 5 both write address 0x00010010",
        "The file writes the same flash twice",
    );
}

#[test]
fn hex_cut_off() {
    let hex = common::make_hex(&[(0x10000, &[1; 64])]);
    let cut: String = hex.lines().take(3).map(|l| format!("{l}\n")).collect();
    let err = read("app.hex", cut.as_bytes()).unwrap_err();
    check(
        err,
        "app.hex: the file ends without its end-of-file record (:00000001FF): it is cut off",
        "The Intel HEX file is damaged or incomplete",
    );
}

#[test]
fn elf_for_another_architecture() {
    let elf = common::make_elf(62, true, 0x401000, &[(0x400000, 0x400000, &[0x90; 64])]);
    let err = read("app", &elf).unwrap_err();
    check(
        err,
        "app is an ELF for x86-64 (a PC program) (64-bit), not for 32-bit ARM (Cortex-M)",
        "Build for the device's target (for a Cortex-M4F: thumbv7em-none-eabihf)",
    );
}

#[test]
fn elf_object_file() {
    let mut elf = common::make_elf(40, false, 0, &[]);
    elf[16] = 1; // e_type ET_REL
    let err = read("main.o", &elf).unwrap_err();
    check(
        err,
        "main.o has no loadable segments: it is an object file (.o), not a linked program",
        "Give the linked firmware ELF",
    );
}

#[test]
fn uf2_for_another_family() {
    let file = uf2::write(
        &[Segment {
            addr: 0x10000,
            data: vec![1; 600],
        }],
        Some(0xe48bff56),
    );
    let opts = ReadOptions {
        uf2_family: Some(0xada52840),
        ..Default::default()
    };
    let err = read_firmware("pico.uf2", &file, &opts).unwrap_err();
    check(
        err,
        "pico.uf2 is a UF2 for family 0xe48bff56 (RP2040), not 0xada52840 (nRF52840)",
        "This UF2 is for another chip",
    );
}

#[test]
fn uf2_cut_off() {
    let file = uf2::write(
        &[Segment {
            addr: 0x10000,
            data: vec![1; 2000],
        }],
        None,
    );
    let err = read("app.uf2", &file[..1024]).unwrap_err();
    check(
        err,
        "app.uf2: 2 of its 8 blocks are there: the file is incomplete",
        "The UF2 file is damaged or incomplete",
    );
}

#[test]
fn a_text_file() {
    let fw = read(
        "README.bin",
        b"# Blink\nBuild with make, flash build/blink.bin\n",
    )
    .unwrap();
    assert_eq!(
        fw.warnings,
        vec!["this looks like a text file (it starts \"# Blink\"), not firmware".to_string()]
    );
}

#[test]
fn a_picture_or_an_archive() {
    let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], &[0u8; 64]].concat();
    let fw = read("photo.bin", &png).unwrap();
    assert_eq!(
        fw.warnings,
        vec!["this looks like a picture (image/png, .png), not firmware".to_string()]
    );
    let zip = [&b"PK\x03\x04"[..], &[0u8; 64]].concat();
    let fw = read("firmware.zip", &zip).unwrap();
    assert_eq!(
        fw.warnings,
        vec!["this looks like an archive (compressed or bundled files) (application/zip, .zip), not firmware".to_string()]
    );
}

#[test]
fn packing_an_image_again() {
    let err = pack(
        "app.img",
        &signed_image(),
        &PackOptions {
            kind: Kind::Vm,
            slot_addr: ANY_SLOT,
            version: Version::default(),
            name: String::new(),
        },
        &[],
    )
    .unwrap_err();
    check(
        err,
        "app.img is already a packed image (it has a trailer)",
        "Sign it with `fota image sign`",
    );
}

#[test]
fn firmware_holding_a_damaged_trailer() {
    // The start of a trailer (magic, its own offset as length) with a bad count.
    let mut payload = common::noise(400, 8);
    payload[300..308].copy_from_slice(&fota_image::MAGIC);
    payload[308] = 1;
    payload[312..316].copy_from_slice(&300u32.to_le_bytes());
    payload[392..396].copy_from_slice(&99u32.to_le_bytes());
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: ANY_SLOT,
        version: Version::default(),
        name: String::new(),
    };
    let err = pack("fw.bin", &payload, &opts, &[]).unwrap_err();
    check(
        err,
        "fw.bin holds bytes at offset 300 that read as the start of an image trailer: a device would stop there",
        "The firmware carries a FOTA image (or a damaged one) inside it as data",
    );
}

#[test]
fn the_catalogue_names_these_tests() {
    let tests = catalogue::catalogue_names_tests(
        "bad_files.rs",
        include_str!("bad_files.rs"),
        include_str!("../../../docs/BAD_INPUTS.md"),
        &["the_catalogue_names_these_tests"],
    );
    assert!(tests.len() >= 20, "{tests:?}");
}
