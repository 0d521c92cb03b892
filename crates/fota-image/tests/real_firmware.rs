//! Real firmware: the MicroPython runtime for the BBC micro:bit as Debian ships it
//! (package `firmware-microbit-micropython`, which `.ci/tools.sh` installs), and the same
//! firmware converted here to UF2 and ELF.

mod common;

use fota_image::host::{
    Error, Format, Layout, PackOptions, ReadOptions, Segment, inspect, pack, place, read_firmware,
    uf2,
};
use fota_image::{Kind, Policy, Version, verify_bytes};

const MICROBIT_HEX: &str = "/usr/share/firmware-microbit-micropython/firmware.hex";

/// The file, or `None` with a message when this machine lacks the package.
fn microbit() -> Option<Vec<u8>> {
    match std::fs::read(MICROBIT_HEX) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!(
                "SKIPPED: {MICROBIT_HEX}: {e}. Install Debian's firmware-microbit-micropython \
                 (.ci/tools.sh does) to run this test."
            );
            None
        }
    }
}

/// The micro:bit's nRF51822: 256 KiB of flash at 0, as one VM slot.
fn microbit_layout() -> Layout {
    Layout::parse("vm0@0x0:256K").unwrap()
}

#[test]
fn the_microbit_micropython_hex_reads_as_238_kib_of_flash() {
    let Some(bytes) = microbit() else { return };
    assert!(bytes.len() > 600_000, "about 660 KB of text");
    let fw = read_firmware("firmware.hex", &bytes, &ReadOptions::default()).unwrap();
    assert_eq!(fw.format, Format::IntelHex);
    assert!(fw.warnings.is_empty(), "{:?}", fw.warnings);
    // The firmware from 0, plus 28 bytes in the nRF51's UICR (configuration registers).
    assert_eq!(fw.segments.len(), 2);
    let flash = &fw.segments[0];
    assert_eq!(flash.addr, 0);
    assert!(
        (230 * 1024..250 * 1024).contains(&flash.data.len()),
        "{}",
        flash.data.len()
    );
    assert_eq!(fw.segments[1].addr, 0x1000_10C0);
    // A Cortex-M vector table: initial SP in RAM, reset vector = the HEX's start address.
    let word = |i: usize| u32::from_le_bytes(flash.data[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(0) & 0xFFF0_0000, 0x2000_0000);
    assert_eq!(Some(word(1)), fw.entry);

    // Placed in the micro:bit's flash: the UICR data is outside every slot.
    let layout = microbit_layout();
    let err = place(&fw, Some(&layout), None, false).unwrap_err();
    assert!(matches!(err, Error::OutsideSlots { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("has data at 0x100010c0..0x100010dc"),
        "{err}"
    );
    let placed = place(&fw, Some(&layout), None, true).unwrap();
    assert_eq!(placed.slot.map(|s| (s.kind, s.addr)), Some((Kind::Vm, 0)));
    assert_eq!(placed.bytes, flash.data);
    assert!(placed.warnings[0].contains("left out 28 bytes"));
    // In the simulator's layout it is too large for a 64 KiB VM slot.
    let err = place(&fw, Some(&common::layout()), None, true).unwrap_err();
    assert!(
        matches!(err, Error::SpansSlots { .. } | Error::TooLarge { .. }),
        "{err}"
    );
}

#[test]
fn the_microbit_firmware_packs_signs_and_verifies_and_survives_uf2_and_elf() {
    let Some(bytes) = microbit() else { return };
    let opts = ReadOptions::default();
    let layout = microbit_layout();
    let fw = read_firmware("firmware.hex", &bytes, &opts).unwrap();
    let placed = place(&fw, Some(&layout), None, true).unwrap();
    let slot = placed.slot.unwrap();
    let key = common::key(9);
    let pack_opts = PackOptions {
        kind: Kind::Vm,
        slot_addr: slot.addr,
        version: Version::new(1, 0, 0),
        name: "micropython".into(),
    };
    let image = pack("firmware.hex", &placed.bytes, &pack_opts, &[&key]).unwrap();
    let trusted = [key.public().trusted()];
    let policy = Policy {
        trusted: &trusted,
        require_signature: true,
        ..Policy::OPEN
    };
    let v = verify_bytes(&image, slot, &policy).unwrap();
    assert_eq!(v.signed_by, Some(key.id()));
    assert_eq!(v.header.payload_len as usize, placed.bytes.len());

    // The packed image as UF2 and as ELF reads back to the same slot bytes.
    let segs = [Segment {
        addr: 0,
        data: image.clone(),
    }];
    let as_uf2 = uf2::write(&segs, None);
    let as_elf = common::make_elf(40, false, u64::from(fw.entry.unwrap()), &[(0, 0, &image)]);
    for (name, file) in [("micropython.uf2", as_uf2), ("micropython.elf", as_elf)] {
        let back = read_firmware(name, &file, &opts).unwrap();
        let placed = place(&back, Some(&layout), None, false).unwrap();
        assert_eq!(placed.bytes, image, "{name}");
        let report = inspect(&back, &placed, &[key.public()]);
        let t = report.trailer.as_ref().unwrap();
        assert!(t.hash_ok);
        assert_eq!(t.signatures[0].valid, Some(true));
        assert_eq!(t.header.name(), Some("micropython"));
    }
}
