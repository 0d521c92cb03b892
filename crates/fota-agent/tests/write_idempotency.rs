//! write_slot may be resent after a lost reply: same data is fine, other data is refused.

mod common;

use common::*;
use fota_protocol::{ErrorCode, SlotKind};

#[test]
fn the_same_write_twice_succeeds_and_programs_once() {
    let config = bc_only();
    let (mut a, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let block = image(5, 1024);
    a.write_slot(addr, &block).unwrap();
    let writes = a.flash().writes;
    let snapshot = a.flash().data.clone();
    a.write_slot(addr, &block).unwrap();
    assert_eq!(
        a.flash().writes,
        writes,
        "an identical resend programs nothing"
    );
    assert!(a.flash().data == snapshot);
}

#[test]
fn different_data_over_a_written_block_is_not_erased() {
    let config = bc_only();
    let (mut a, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let block = image(5, 1024);
    a.write_slot(addr, &block).unwrap();
    let mut other = block.clone();
    other[700] ^= 0x01;
    let snapshot = a.flash().data.clone();
    let e = a.write_slot(addr, &other).unwrap_err();
    assert_eq!((e.code, e.detail), (ErrorCode::NotErased, addr + 700));
    assert!(a.flash().data == snapshot);
}

#[test]
fn a_partly_written_block_is_completed_by_a_resend() {
    // As after a power cut in the middle of a block: the first half is there.
    let config = bc_only();
    let (mut a, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let block = image(8, 1024);
    a.write_slot(addr, &block[..512]).unwrap();
    a.write_slot(addr, &block).unwrap();
    assert_eq!(a.flash().at(addr, 1024), &block[..]);
}

#[test]
fn erased_bytes_in_the_data_are_fine_over_erased_flash() {
    let config = bc_only();
    let (mut a, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let mut block = vec![0xFF; 256];
    block[128..132].copy_from_slice(&[1, 2, 3, 4]);
    a.write_slot(addr, &block).unwrap();
    assert_eq!(
        a.flash().writes,
        2,
        "one word programmed (plus the factory record)"
    );
    a.write_slot(addr, &block).unwrap();
    assert_eq!(a.flash().at(addr, 256), &block[..]);
}

#[test]
fn a_unit_already_equal_next_to_erased_units_is_skipped() {
    // Units: [equal][erased][equal][erased] -> two separate programming runs.
    let config = bc_only();
    let (mut a, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let block = image(2, 16);
    a.write_slot(addr, &block[0..4]).unwrap();
    a.write_slot(addr + 8, &block[8..12]).unwrap();
    a.write_slot(addr, &block).unwrap();
    assert_eq!(a.flash().at(addr, 16), &block[..]);
}
