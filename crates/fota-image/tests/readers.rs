//! Reading firmware files (raw, Intel HEX, ELF, UF2) into slots of a layout.

mod common;

use fota_image::Kind;
use fota_image::host::{Arch, Error, Format, ReadOptions, Segment, place, read_firmware, uf2};

fn read(name: &str, bytes: &[u8]) -> Result<fota_image::host::Firmware, Error> {
    read_firmware(name, bytes, &ReadOptions::default())
}

#[test]
fn hex_elf_and_uf2_of_the_same_firmware_give_the_same_slot_bytes() {
    let layout = common::layout();
    let vm1 = common::slot("vm1");
    let code = common::vm_payload(vm1.addr, 40_000);
    let data = common::noise(3000, 5);
    // Code at the slot's start, initialised data 512 bytes after it (a gap).
    let data_at = vm1.addr + 40_000 + 512;
    let hex = common::make_hex(&[(vm1.addr, &code), (data_at, &data)]);
    // In the ELF the data runs in RAM (vaddr) and is stored in flash (paddr).
    let elf = common::make_elf(
        40,
        false,
        u64::from(vm1.addr) + 0x101,
        &[
            (u64::from(vm1.addr), u64::from(vm1.addr), &code),
            (0x2000_0000, u64::from(data_at), &data),
        ],
    );
    let uf2 = uf2::write(
        &[
            Segment {
                addr: vm1.addr,
                data: code.clone(),
            },
            Segment {
                addr: data_at,
                data: data.clone(),
            },
        ],
        Some(0x57755a57),
    );
    let mut expected = code.clone();
    expected.extend([0xFF; 512]);
    expected.extend(&data);
    for (name, bytes, format) in [
        ("fw.hex", hex.as_bytes(), Format::IntelHex),
        ("fw.elf", &elf[..], Format::Elf),
        ("fw.uf2", &uf2[..], Format::Uf2),
    ] {
        let fw = read(name, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fw.format, format, "{name}");
        assert!(fw.warnings.is_empty(), "{name}: {:?}", fw.warnings);
        let placed = place(&fw, Some(&layout), None, false).unwrap();
        assert_eq!(placed.slot, Some(vm1), "{name} selects its slot");
        assert_eq!(placed.base, vm1.addr);
        assert_eq!(placed.bytes, expected, "{name}");
        assert!(placed.warnings.is_empty(), "{name}: {:?}", placed.warnings);
    }
    let fw = read("fw.elf", &elf).unwrap();
    assert_eq!(fw.entry, Some(vm1.addr + 0x101));
}

#[test]
fn a_raw_binary_keeps_the_automatic_choice() {
    let bytes = common::vm_payload(0, 1000);
    let fw = read("app.bin", &bytes).unwrap();
    assert_eq!(fw.format, Format::Raw);
    let placed = place(&fw, Some(&common::layout()), None, false).unwrap();
    assert_eq!(placed.slot, None);
    assert_eq!(placed.bytes, bytes);
    // Asked for a slot: it goes there, if it fits.
    let bc0 = common::slot("bc0");
    assert_eq!(place(&fw, None, Some(bc0), false).unwrap().slot, Some(bc0));
    let big = read("big.bin", &common::noise(64 * 1024 + 1, 1)).unwrap();
    let vm0 = common::slot("vm0");
    assert!(matches!(
        place(&big, None, Some(vm0), false),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn a_file_linked_for_another_slot_is_refused_naming_both() {
    let layout = common::layout();
    let (vm0, vm1) = (common::slot("vm0"), common::slot("vm1"));
    let hex = common::make_hex(&[(vm0.addr, &common::vm_payload(vm0.addr, 2000))]);
    let fw = read("fw.hex", hex.as_bytes()).unwrap();
    let err = place(&fw, Some(&layout), Some(vm1), false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::WrongSlot { .. }), "{msg}");
    assert!(
        msg.contains("linked for VM slot 0 (0x00000000..0x00010000)"),
        "{msg}"
    );
    assert!(msg.contains("not for VM slot 1"), "{msg}");
    assert!(msg.contains("would fit: VM slot 0"), "{msg}");
    assert!(!err.help().is_empty());
}

#[test]
fn addresses_outside_every_slot_or_across_slots_are_refused() {
    let layout = common::layout();
    // Linked for an STM32's flash at 0x08000000, not this layout.
    let elf = common::make_elf(
        40,
        false,
        0,
        &[(0x0800_0000, 0x0800_0000, &common::noise(30_000, 2))],
    );
    let fw = read("stm32.elf", &elf).unwrap();
    let err = place(&fw, Some(&layout), None, false).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("stm32.elf is linked for 0x08000000..0x08007530, outside every slot"),
        "{msg}"
    );
    assert!(msg.contains("would fit: VM slot 0"), "{msg}");
    assert!(msg.contains("bytecode slot 1"), "{msg}");
    // Too large for any slot: says so.
    let elf = common::make_elf(
        40,
        false,
        0,
        &[(0x0800_0000, 0x0800_0000, &common::noise(300_000, 2))],
    );
    let msg = place(&read("big.elf", &elf).unwrap(), Some(&layout), None, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("none of the layout's slots holds 300000 bytes"),
        "{msg}"
    );
    // Across two slots.
    let hex = common::make_hex(&[(0xF000, &common::noise(0x2000, 3))]);
    let err = place(
        &read("x.hex", hex.as_bytes()).unwrap(),
        Some(&layout),
        None,
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::SpansSlots { .. }), "{err}");
    // In one slot and outside: refused, or the outside part left out on request.
    let hex = common::make_hex(&[
        (0x50000, &common::vm_payload(0x50000, 100)),
        (0x1000_10C0, &[1, 2, 3, 4]),
    ]);
    let fw = read("x.hex", hex.as_bytes()).unwrap();
    let msg = place(&fw, Some(&layout), None, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("has data at 0x100010c0..0x100010c4, outside every slot"),
        "{msg}"
    );
    let placed = place(&fw, Some(&layout), None, true).unwrap();
    assert_eq!(placed.slot, Some(common::slot("vm1")));
    assert_eq!(placed.bytes.len(), 100);
    assert!(
        placed.warnings[0].contains("left out 4 bytes at 0x100010c0"),
        "{:?}",
        placed.warnings
    );
}

#[test]
fn a_vm_that_does_not_start_its_slot_gets_a_warning() {
    let hex = common::make_hex(&[(0x50200, &common::noise(100, 1))]);
    let placed = place(
        &read("x.hex", hex.as_bytes()).unwrap(),
        Some(&common::layout()),
        None,
        false,
    )
    .unwrap();
    assert_eq!(placed.bytes[..0x200], [0xFF; 0x200]);
    assert!(
        placed.warnings[0].contains("512 bytes into VM slot 1"),
        "{:?}",
        placed.warnings
    );
    assert_eq!(placed.slot.map(|s| s.kind), Some(Kind::Vm));
}

#[test]
fn hex_errors_name_the_line() {
    let good = common::make_hex(&[(0x10000, &common::noise(64, 1))]);
    // A bad checksum on line 3.
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let l = &mut lines[2];
    let last = l.pop().unwrap();
    l.push(if last == '0' { '1' } else { '0' });
    let err = read("bad.hex", lines.join("\n").as_bytes()).unwrap_err();
    assert!(matches!(err, Error::HexChecksum { line: 3, .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("bad.hex, line 3: Intel HEX checksum is"),
        "{err}"
    );
    // Overlapping records.
    let overlap = common::make_hex(&[(0x10000, &[1; 32]), (0x10010, &[2; 16])]);
    let err = read("o.hex", overlap.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "o.hex: the record of line 3 and the record of line 5 both write address 0x00010010"
    );
    // No end record: cut off.
    let cut: String = good.lines().take(3).collect::<Vec<_>>().join("\n");
    let err = read("cut.hex", cut.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("without its end-of-file record"),
        "{err}"
    );
    // A damaged record.
    let err = read("d.hex", b":10000000zz\n:00000001FF\n").unwrap_err();
    assert!(matches!(err, Error::HexRecord { line: 1, .. }), "{err}");
    // Data after the end.
    let after = format!("{good}\n:0100000000FF\n");
    assert!(
        read("a.hex", after.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("after the end-of-file")
    );
}

#[test]
fn hex_segment_addresses_and_start_records() {
    // I16HEX: segment 0x1000 -> base 0x10000; a record that wraps at 64 KiB.
    let text = ":020000021000EC\n:04FFFE00AABBCCDDF1\n:0400000500001234B1\n:00000001FF\n";
    let fw = read("seg.hex", text.as_bytes()).unwrap();
    assert_eq!(
        fw.segments,
        vec![
            Segment {
                addr: 0x10000,
                data: vec![0xCC, 0xDD]
            },
            Segment {
                addr: 0x1FFFE,
                data: vec![0xAA, 0xBB]
            },
        ]
    );
    assert_eq!(fw.entry, Some(0x1234));
}

#[test]
fn elf_for_another_architecture_is_refused_clearly() {
    let code = common::noise(100, 1);
    let x86 = common::make_elf(62, true, 0x401000, &[(0x400000, 0x400000, &code)]);
    let err = read("a.out", &x86).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a.out is an ELF for x86-64 (a PC program) (64-bit), not for 32-bit ARM (Cortex-M)"
    );
    assert!(err.help().contains("thumbv7em-none-eabihf"));
    let riscv = common::make_elf(243, false, 0, &[(0, 0, &code)]);
    assert!(matches!(
        read("r.elf", &riscv),
        Err(Error::ElfArchitecture { .. })
    ));
    let opts = ReadOptions {
        arch: Arch::RiscV32,
        ..Default::default()
    };
    assert!(read_firmware("r.elf", &riscv, &opts).is_ok());
    // Nothing to load.
    let empty = common::make_elf(40, false, 0, &[]);
    assert!(matches!(
        read("e.elf", &empty),
        Err(Error::ElfNothingToLoad { .. })
    ));
    // Cut off.
    let good = common::make_elf(40, false, 0, &[(0, 0, &code)]);
    assert!(matches!(
        read("c.elf", &good[..good.len() - 10]),
        Err(Error::Malformed { .. })
    ));
    // Overlapping segments.
    let both = common::make_elf(40, false, 0, &[(0, 0, &code), (0x20000000, 50, &code)]);
    assert!(matches!(read("o.elf", &both), Err(Error::Overlap { .. })));
}

#[test]
fn uf2_family_and_damage() {
    let segs = [Segment {
        addr: 0x10000,
        data: common::noise(2000, 4),
    }];
    let rp2040 = uf2::write(&segs, Some(0xe48bff56));
    let stm32 = ReadOptions {
        uf2_family: Some(0x57755a57),
        ..Default::default()
    };
    let err = read_firmware("pico.uf2", &rp2040, &stm32).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pico.uf2 is a UF2 for family 0xe48bff56 (RP2040), not 0x57755a57 (STM32F4)"
    );
    let fw = read("pico.uf2", &rp2040).unwrap();
    assert!(fw.notes.iter().any(|n| n.contains("RP2040")));
    assert_eq!(fw.segments, segs);
    // Two families and none chosen.
    let mut two = rp2040.clone();
    two.extend(uf2::write(&segs, Some(0x57755a57)));
    assert!(matches!(
        read("two.uf2", &two),
        Err(Error::Uf2Families { .. })
    ));
    assert_eq!(
        read_firmware("two.uf2", &two, &stm32).unwrap().segments,
        segs
    );
    // Cut off, a damaged block, a missing block.
    assert!(
        read("c.uf2", &rp2040[..rp2040.len() - 1])
            .unwrap_err()
            .to_string()
            .contains("cut off")
    );
    let mut damaged = rp2040.clone();
    damaged[512 + 510] ^= 0xFF;
    assert!(
        read("d.uf2", &damaged)
            .unwrap_err()
            .to_string()
            .contains("block 1 is damaged")
    );
    let missing = [&rp2040[..512], &rp2040[1024..]].concat();
    assert!(
        read("m.uf2", &missing)
            .unwrap_err()
            .to_string()
            .contains("incomplete")
    );
    assert_eq!(uf2::parse_family("rp2040"), Some(0xe48bff56));
    assert_eq!(uf2::parse_family("0x57755a57"), Some(0x57755a57));
}

#[test]
fn files_that_are_not_firmware_get_a_warning_saying_why() {
    let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], &[0u8; 64]].concat();
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0u8; 64]].concat();
    let gif = [&b"GIF89a"[..], &[0u8; 64]].concat();
    let zip = [&b"PK\x03\x04"[..], &[0u8; 64]].concat();
    let gzip = [&[0x1F, 0x8B, 0x08][..], &[0u8; 64]].concat();
    let pdf = [&b"%PDF-1.7\n"[..], &[0u8; 64]].concat();
    let mut tar = vec![0u8; 1024];
    tar[..8].copy_from_slice(b"file.txt");
    tar[257..262].copy_from_slice(b"ustar");
    for (name, bytes, what) in [
        ("a.bin", &png[..], "a picture (image/png"),
        ("b.bin", &jpeg, "a picture (image/jpeg"),
        ("c.bin", &gif, "a picture (image/gif"),
        ("d.bin", &zip, "an archive"),
        ("e.bin", &gzip, "an archive"),
        ("f.bin", &pdf, "a document (application/pdf"),
        ("g.bin", &tar, "an archive"),
        (
            "notes.bin",
            b"Release notes\nversion 2 fixes the LED\n",
            "a text file (it starts \"Release notes\")",
        ),
        ("erased.bin", &[0xFF; 4096], "empty flash dump"),
    ] {
        let fw = read(name, bytes).unwrap();
        assert_eq!(fw.warnings.len(), 1, "{name}: {:?}", fw.warnings);
        assert!(fw.warnings[0].contains(what), "{name}: {}", fw.warnings[0]);
    }
    // Firmware does not.
    assert!(
        read("fw.bin", &common::vm_payload(0, 5000))
            .unwrap()
            .warnings
            .is_empty()
    );
    // Nor a packed image whose payload is text (a script).
    let script = b"from microbit import *\nwhile True:\n    display.scroll('Hi')\n";
    let opts = fota_image::host::PackOptions {
        kind: Kind::Bytecode,
        slot_addr: fota_image::ANY_SLOT,
        version: fota_image::Version::new(1, 0, 0),
        name: "hello".into(),
    };
    let packed = fota_image::host::pack("hello.py", script, &opts, &[]).unwrap();
    assert!(read("hello.img", &packed).unwrap().warnings.is_empty());
    assert!(!read("hello.py", script).unwrap().warnings.is_empty());
    // A name that disagrees with the content.
    let fw = read("fw.hex", &common::vm_payload(0, 5000)).unwrap();
    assert!(
        fw.warnings[0].contains("named like a Intel HEX file"),
        "{:?}",
        fw.warnings
    );
    assert!(matches!(read("empty.bin", &[]), Err(Error::Empty(_))));
}
