//! Every refused request answers the right code and changes nothing: the whole flash is
//! compared byte for byte, and the record too.

mod common;

use common::*;
use fota_agent::{Agent, MAX_WRITE, Refusal};
use fota_protocol::{ErrorCode, RecordUpdate, SlotKind};

/// Run `op`, which must be refused with `code` (and `detail` if given), and check that
/// neither flash nor record changed.
fn refused<T: std::fmt::Debug>(
    agent: &mut Agent<Flash>,
    what: &str,
    code: ErrorCode,
    detail: Option<u32>,
    op: impl FnOnce(&mut Agent<Flash>) -> Result<T, Refusal>,
) {
    let flash = agent.flash().data.clone();
    let record = agent.get_record();
    let entry = agent.record_entry();
    let (erases, writes) = (agent.flash().erases, agent.flash().writes);
    let got = op(agent);
    let e = match got {
        Ok(v) => panic!("{what}: accepted ({v:?}), expected {code:?}"),
        Err(e) => e,
    };
    assert_eq!(e.code, code, "{what}");
    if let Some(d) = detail {
        assert_eq!(e.detail, d, "{what}: detail");
    }
    assert!(agent.flash().data == flash, "{what}: flash changed");
    assert_eq!(
        (agent.flash().erases, agent.flash().writes),
        (erases, writes),
        "{what}"
    );
    assert_eq!(agent.get_record(), record, "{what}: record changed");
    assert_eq!(agent.record_entry(), entry, "{what}: record entry changed");
}

/// VM+bytecode layout, fresh, with a pattern in every slot so that a stray erase shows.
fn filled() -> (Agent<Flash>, fota_agent::AgentConfig) {
    let config = vm_and_bc();
    let mut flash = blank();
    for s in &config.slots {
        flash.poke(s.addr, &image(s.index + 10 * s.kind as u8, s.size as usize));
    }
    let (agent, _) = boot(flash, &config);
    (agent, config)
}

#[test]
fn erase_refusals() {
    let (mut a, c) = filled();
    let bc0 = slot_addr(&c, SlotKind::Bytecode, 0);
    let vm0 = slot_addr(&c, SlotKind::Vm, 0);
    let vm1 = slot_addr(&c, SlotKind::Vm, 1);
    let bc1 = slot_addr(&c, SlotKind::Bytecode, 1);
    let rec = c.record_addr;
    use ErrorCode::*;
    let cases: Vec<(&str, u32, u32, ErrorCode, u32)> = vec![
        ("current bytecode slot", bc0, SECTOR, SlotInUse, bc0),
        ("current vm slot", vm0, SECTOR, SlotInUse, vm0),
        (
            "current slot, mid-slot",
            bc0 + SECTOR,
            SECTOR,
            SlotInUse,
            bc0,
        ),
        ("record area", rec, SECTOR, RecordArea, rec),
        (
            "record area, second sector",
            rec + SECTOR,
            1,
            RecordArea,
            rec + SECTOR,
        ),
        ("running into the record", bc1, SLOT + 1, RecordArea, rec),
        (
            "across a slot end",
            vm1 + 3 * SECTOR,
            2 * SECTOR,
            BadLength,
            2 * SECTOR,
        ),
        ("whole flash", vm1, u32::MAX, RecordArea, rec),
        ("misaligned", vm1 + 4, SECTOR, Misaligned, vm1 + 4),
        ("zero size", vm1, 0, BadLength, 0),
        ("below the flash", 0, SECTOR, OutOfSlot, 0),
        (
            "top of the address space",
            0xFFFF_F000,
            u32::MAX,
            OutOfSlot,
            0xFFFF_F000,
        ),
        (
            "after the record",
            rec + 2 * SECTOR,
            SECTOR,
            OutOfSlot,
            rec + 2 * SECTOR,
        ),
    ];
    for (what, addr, size, code, detail) in cases {
        refused(&mut a, what, code, Some(detail), |a| {
            a.erase_slot(addr, size, &mut |_, _| panic!("progress on a refusal"))
        });
    }
}

#[test]
fn erase_of_last_working_slot_during_a_trial_is_refused() {
    let (mut a, c) = filled();
    a.attempt(1, 1).unwrap();
    let (mut a, _) = restart(a, &c);
    for (kind, what) in [
        (SlotKind::Bytecode, "last working bc"),
        (SlotKind::Vm, "last working vm"),
    ] {
        let last = slot_addr(&c, kind, 0);
        refused(&mut a, what, ErrorCode::SlotInUse, Some(last), |a| {
            a.erase_slot(last, SECTOR, &mut noop)
        });
        let cur = slot_addr(&c, kind, 1);
        refused(&mut a, what, ErrorCode::SlotInUse, Some(cur), |a| {
            a.erase_slot(cur, SECTOR, &mut noop)
        });
    }
}

#[test]
fn pending_attempt_slots_are_in_use() {
    let (mut a, c) = filled();
    a.attempt(1, 0).unwrap();
    let bc1 = slot_addr(&c, SlotKind::Bytecode, 1);
    refused(&mut a, "pending bc", ErrorCode::SlotInUse, Some(bc1), |a| {
        a.erase_slot(bc1, SECTOR, &mut noop)
    });
    refused(&mut a, "pending bc", ErrorCode::SlotInUse, Some(bc1), |a| {
        a.write_slot(bc1, &[0; 4])
    });
}

#[test]
fn write_refusals() {
    let (mut a, c) = filled();
    let bc0 = slot_addr(&c, SlotKind::Bytecode, 0);
    let vm1 = slot_addr(&c, SlotKind::Vm, 1);
    let bc1 = slot_addr(&c, SlotKind::Bytecode, 1);
    let rec = c.record_addr;
    // Free slots erased, so only the guard under test can refuse.
    a.erase_slot(vm1, SLOT, &mut noop).unwrap();
    a.erase_slot(bc1, SLOT, &mut noop).unwrap();
    let big = vec![0u8; MAX_WRITE + 4];
    let block = vec![0x5Au8; 64];
    use ErrorCode::*;
    let cases: Vec<(&str, u32, &[u8], ErrorCode, u32)> = vec![
        ("current slot", bc0, &block, SlotInUse, bc0),
        ("record area", rec, &block, RecordArea, rec),
        ("end of slot into record", rec - 32, &block, RecordArea, rec),
        ("across a slot end", bc1 - 32, &block, BadLength, 64),
        // A start that is neither on a write unit nor where the previous write ended (a
        // length that is not a multiple of the unit is fine: see write_any_length.rs).
        ("misaligned address", vm1 + 2, &block, Misaligned, vm1 + 2),
        ("zero length", vm1, &[], BadLength, 0),
        ("too long", vm1, &big, BadLength, big.len() as u32),
        (
            "outside the flash",
            0x2000_0000,
            &block,
            OutOfSlot,
            0x2000_0000,
        ),
        (
            "top of the address space",
            u32::MAX - 3,
            &block[..4],
            OutOfSlot,
            u32::MAX - 3,
        ),
    ];
    for (what, addr, data, code, detail) in cases {
        refused(&mut a, what, code, Some(detail), |a| {
            a.write_slot(addr, data)
        });
    }
}

#[test]
fn write_onto_programmed_bytes_is_refused_before_anything_is_programmed() {
    let (mut a, c) = filled();
    let vm1 = slot_addr(&c, SlotKind::Vm, 1);
    a.erase_slot(vm1, SECTOR, &mut noop).unwrap();
    // The first 512 bytes are erased, then one programmed word at 512.
    a.write_slot(vm1 + 512, &[1, 2, 3, 4]).unwrap();
    refused(
        &mut a,
        "not erased",
        ErrorCode::NotErased,
        Some(vm1 + 512),
        |a| a.write_slot(vm1, &[0x77; 1024]),
    );
}

#[test]
fn checksum_refusals() {
    let (mut a, c) = filled();
    let vm1 = slot_addr(&c, SlotKind::Vm, 1);
    let bc1 = slot_addr(&c, SlotKind::Bytecode, 1);
    let rec = c.record_addr;
    use ErrorCode::*;
    let cases: Vec<(&str, u32, u32, ErrorCode, u32)> = vec![
        ("record area", rec, 16, RecordArea, rec),
        ("into the record", bc1, SLOT + 1, RecordArea, rec),
        ("zero size", vm1, 0, BadLength, 0),
        ("across a slot end", vm1 + 100, SLOT, BadLength, SLOT),
        ("outside the flash", 0x1000, 16, OutOfSlot, 0x1000),
        ("huge", vm1, u32::MAX, RecordArea, rec),
    ];
    for (what, addr, size, code, detail) in cases {
        refused(&mut a, what, code, Some(detail), |a| {
            a.checksum_slot(addr, size, &mut noop)
        });
    }
}

#[test]
fn bad_slot_indexes_are_refused() {
    let (mut a, _) = filled();
    refused(
        &mut a,
        "attempt bc",
        ErrorCode::BadSlotIndex,
        Some(2),
        |a| a.attempt(2, 0),
    );
    refused(
        &mut a,
        "attempt vm",
        ErrorCode::BadSlotIndex,
        Some(9),
        |a| a.attempt(0, 9),
    );
    refused(
        &mut a,
        "set_record",
        ErrorCode::BadSlotIndex,
        Some(5),
        |a| {
            a.set_record(RecordUpdate {
                vm_current: 0,
                vm_last: 0,
                bc_current: 0,
                bc_last: 5,
            })
        },
    );
}

#[test]
fn no_free_slot_is_refused_without_change() {
    let (mut a, _) = filled();
    a.attempt(1, 1).unwrap();
    refused(&mut a, "find bc", ErrorCode::NoFreeSlot, Some(1), |a| {
        a.find_bytecode_slot()
    });
    refused(&mut a, "find vm", ErrorCode::NoFreeSlot, Some(1), |a| {
        a.find_vm_slot()
    });
}

#[test]
fn unsupported_firmware_refuses_everything() {
    let config = vm_and_bc().unsupported();
    let (mut a, _) = boot(blank(), &config);
    let bc1 = slot_addr(&config, SlotKind::Bytecode, 1);
    let u = ErrorCode::Unsupported;
    refused(&mut a, "get_record", u, None, |a| a.get_record());
    refused(&mut a, "set_record", u, None, |a| {
        a.set_record(RecordUpdate {
            vm_current: 0,
            vm_last: 0,
            bc_current: 0,
            bc_last: 0,
        })
    });
    refused(&mut a, "find bc", u, None, |a| a.find_bytecode_slot());
    refused(&mut a, "find vm", u, None, |a| a.find_vm_slot());
    refused(&mut a, "erase", u, None, |a| {
        a.erase_slot(bc1, SECTOR, &mut noop)
    });
    refused(&mut a, "write", u, None, |a| a.write_slot(bc1, &[0; 4]));
    refused(&mut a, "checksum", u, None, |a| {
        a.checksum_slot(bc1, 4, &mut noop)
    });
    refused(&mut a, "accept", u, None, |a| a.accept());
    refused(&mut a, "attempt", u, None, |a| a.attempt(1, 1));
    assert!(!a.info().fota_supported);
}

#[test]
fn flash_failures_map_to_flash_failure_with_the_address() {
    let (mut a, c) = filled();
    let vm1 = slot_addr(&c, SlotKind::Vm, 1);
    a.flash_mut().fail_after = Some(1);
    let e = a.erase_slot(vm1, 2 * SECTOR, &mut noop).unwrap_err();
    assert_eq!((e.code, e.detail), (ErrorCode::FlashFailure, vm1 + SECTOR));
    a.flash_mut().fail_after = Some(0);
    let e = a.write_slot(vm1, &[1; 8]).unwrap_err();
    assert_eq!((e.code, e.detail), (ErrorCode::FlashFailure, vm1));
    let before = a.get_record();
    let e = a.attempt(1, 1).unwrap_err();
    assert_eq!(e.code, ErrorCode::FlashFailure);
    assert_eq!(
        a.get_record(),
        before,
        "a failed record write keeps the old record"
    );
    a.flash_mut().fail_after = None;
    a.attempt(1, 1).unwrap();
    let (_, boot) = restart(a, &c);
    assert!(boot.trial);
}
