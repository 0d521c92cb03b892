//! `write_slot` takes blocks of any length written in order: the slot then holds exactly
//! their concatenation, whatever the flash's write unit.

mod common;

use common::*;
use fota_protocol::SlotKind;

fn md5(bytes: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}

#[test]
fn blocks_of_any_length_in_order_make_the_image() {
    let config = bc_only();
    let image = image(3, 3001);
    for sizes in [
        &[1usize, 2, 3, 5, 7, 11][..],
        &[1023, 1, 1024, 953],
        &[4, 3, 4, 3],
    ] {
        let (mut agent, _) = boot(blank(), &config);
        let addr = slot_addr(&config, SlotKind::Bytecode, 1);
        agent.erase_slot(addr, SLOT, &mut noop).unwrap();
        let mut at = 0usize;
        let mut i = 0;
        while at < image.len() {
            let n = sizes[i % sizes.len()].min(image.len() - at);
            agent
                .write_slot(addr + at as u32, &image[at..at + n])
                .unwrap_or_else(|e| panic!("block {i} ({n} bytes at +{at}): {e:?}"));
            at += n;
            i += 1;
        }
        let sum = agent
            .checksum_slot(addr, image.len() as u32, &mut noop)
            .unwrap();
        assert_eq!(sum, md5(&image), "sizes {sizes:?}");
        assert_eq!(agent.flash().at(addr, image.len()), &image[..]);
        // The rest of the partial last word is the erased value.
        let tail = image.len().next_multiple_of(4);
        assert!(
            agent
                .flash()
                .at(addr + image.len() as u32, tail - image.len() + 8)
                .iter()
                .all(|&b| b == 0xFF)
        );
    }
}

#[test]
fn a_resent_block_of_any_length_is_accepted_again_and_changes_nothing() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    agent.erase_slot(addr, SLOT, &mut noop).unwrap();
    let img = image(5, 40);
    // Blocks of 7, 13 and 20 bytes; each resent right after (a lost reply), and the first
    // once more at the end.
    agent.write_slot(addr, &img[..7]).unwrap();
    agent.write_slot(addr, &img[..7]).unwrap();
    agent.write_slot(addr + 7, &img[7..20]).unwrap();
    let before = agent.flash().clone();
    agent.write_slot(addr + 7, &img[7..20]).unwrap();
    assert_eq!(agent.flash(), &before, "a resend programs nothing");
    agent.write_slot(addr + 20, &img[20..]).unwrap();
    agent.write_slot(addr, &img[..7]).unwrap();
    let sum = agent.checksum_slot(addr, 40, &mut noop).unwrap();
    assert_eq!(sum, md5(&img));
}

#[test]
fn the_partial_unit_is_completed_with_the_erased_value_at_checksum_and_attempt() {
    let config = bc_only();
    for settle in [
        "checksum",
        "attempt",
        "set_record",
        "erase elsewhere",
        "new partial",
    ] {
        let (mut agent, _) = boot(blank(), &config);
        let addr = slot_addr(&config, SlotKind::Bytecode, 1);
        agent.erase_slot(addr, SLOT, &mut noop).unwrap();
        agent.write_slot(addr, &[1, 2, 3, 4, 5, 6]).unwrap();
        // Bytes 4 and 5 are held in RAM, not yet on flash.
        assert_eq!(agent.held_write(), Some((addr + 4, 2)), "{settle}");
        assert_eq!(
            agent.flash().at(addr, 8),
            &[1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        match settle {
            "checksum" => {
                agent.checksum_slot(addr, 6, &mut noop).unwrap();
            }
            "attempt" => agent.attempt(1, 0).unwrap(),
            "set_record" => agent
                .set_record(fota_protocol::RecordUpdate {
                    vm_current: 0,
                    vm_last: 0,
                    bc_current: 0,
                    bc_last: 0,
                })
                .unwrap(),
            "erase elsewhere" => {
                agent.erase_slot(addr + SECTOR, SECTOR, &mut noop).unwrap();
            }
            _ => agent.write_slot(addr + 64, &[9, 9]).unwrap(),
        }
        assert_eq!(
            agent.flash().at(addr, 8),
            &[1, 2, 3, 4, 5, 6, 0xFF, 0xFF],
            "{settle}"
        );
        if settle == "new partial" {
            assert_eq!(agent.held_write(), Some((addr + 64, 2)));
        } else {
            assert_eq!(agent.held_write(), None, "{settle}");
            // The unit is programmed: continuing it now is refused, nothing changes.
            let before = agent.flash().clone();
            let e = agent.write_slot(addr + 6, &[7, 8]).unwrap_err();
            let expected = if settle == "attempt" {
                fota_protocol::ErrorCode::SlotInUse // and the slot is attempted now
            } else {
                fota_protocol::ErrorCode::Misaligned
            };
            assert_eq!(e.code, expected, "{settle}");
            assert_eq!(agent.flash(), &before);
        }
    }
}

#[test]
fn an_erase_of_the_held_unit_drops_it() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    agent.erase_slot(addr, SLOT, &mut noop).unwrap();
    agent.write_slot(addr, &[1, 2, 3]).unwrap();
    agent.erase_slot(addr, SECTOR, &mut noop).unwrap();
    assert_eq!(agent.held_write(), None);
    assert!(agent.flash().at(addr, 8).iter().all(|&b| b == 0xFF));
    // A fresh start at the unit works.
    agent.write_slot(addr, &[4, 5, 6, 7, 8]).unwrap();
    let sum = agent.checksum_slot(addr, 5, &mut noop).unwrap();
    assert_eq!(sum, md5(&[4, 5, 6, 7, 8]));
}

#[test]
fn a_block_that_contradicts_the_held_bytes_is_refused_and_changes_nothing() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    agent.erase_slot(addr, SLOT, &mut noop).unwrap();
    agent.write_slot(addr, &[1, 2, 3, 4, 5, 6]).unwrap();
    let before = agent.flash().clone();
    // Starts inside the held bytes with other values.
    let e = agent.write_slot(addr + 5, &[0x66, 7, 8]).unwrap_err();
    assert_eq!(e.code, fota_protocol::ErrorCode::NotErased);
    // Rewrites the whole held unit with other values.
    let e = agent.write_slot(addr + 4, &[9, 9, 9, 9]).unwrap_err();
    assert_eq!(e.code, fota_protocol::ErrorCode::NotErased);
    assert_eq!(agent.flash(), &before);
    assert_eq!(agent.held_write(), Some((addr + 4, 2)));
    // Overlapping the held bytes with the same values and going on is fine.
    agent.write_slot(addr + 5, &[6, 7, 8, 9]).unwrap();
    let sum = agent.checksum_slot(addr, 9, &mut noop).unwrap();
    assert_eq!(sum, md5(&[1, 2, 3, 4, 5, 6, 7, 8, 9]));
}

#[test]
fn wide_write_units_take_blocks_of_any_length_too() {
    // 16-byte units (an STM32H7-like flash word would be 32).
    type Wide = RamFlash<16, 4096, 1>;
    let config = bc_only();
    let img = image(11, 2500);
    let (mut agent, _) = boot(Wide::new(CAPACITY), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    agent.erase_slot(addr, SLOT, &mut noop).unwrap();
    let mut at = 0;
    for (i, n) in [5usize, 1000, 17, 1, 3, 999, 475]
        .iter()
        .cycle()
        .enumerate()
    {
        if at >= img.len() {
            break;
        }
        let n = (*n).min(img.len() - at);
        agent
            .write_slot(addr + at as u32, &img[at..at + n])
            .unwrap_or_else(|e| panic!("block {i}: {e:?}"));
        at += n;
    }
    let sum = agent
        .checksum_slot(addr, img.len() as u32, &mut noop)
        .unwrap();
    assert_eq!(sum, md5(&img));
}
