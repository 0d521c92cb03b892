//! Layout constructors and validation.

mod common;

use common::*;
use fota_agent::{Agent, AgentConfig, AgentError, ConfigError, FlashGeometry};
use fota_protocol::{SlotDesc, SlotKind};

fn geometry() -> FlashGeometry {
    FlashGeometry {
        sector: SECTOR,
        write_size: 4,
        read_size: 1,
        capacity: CAPACITY as u32,
    }
}

#[test]
fn bytecode_only_layout_is_vm_bc0_bc1_record() {
    let c = AgentConfig::bytecode_only(BASE, 2 * SECTOR, 3 * SECTOR, SECTOR);
    let order: Vec<_> = c
        .slots
        .iter()
        .map(|s| (s.kind, s.index, s.addr, s.size))
        .collect();
    assert_eq!(
        order,
        [
            (SlotKind::Vm, 0, BASE, 2 * SECTOR),
            (SlotKind::Bytecode, 0, BASE + 2 * SECTOR, 3 * SECTOR),
            (SlotKind::Bytecode, 1, BASE + 5 * SECTOR, 3 * SECTOR),
        ]
    );
    assert_eq!(
        (c.record_addr, c.record_size),
        (BASE + 8 * SECTOR, 2 * SECTOR)
    );
    c.validate_geometry(&geometry()).unwrap();
}

#[test]
fn vm_and_bytecode_layout_is_vm0_bc0_vm1_bc1_record() {
    let c = AgentConfig::vm_and_bytecode(BASE, 2 * SECTOR, SECTOR, SECTOR);
    let order: Vec<_> = c.slots.iter().map(|s| (s.kind, s.index, s.addr)).collect();
    assert_eq!(
        order,
        [
            (SlotKind::Vm, 0, BASE),
            (SlotKind::Bytecode, 0, BASE + 2 * SECTOR),
            (SlotKind::Vm, 1, BASE + 3 * SECTOR),
            (SlotKind::Bytecode, 1, BASE + 5 * SECTOR),
        ]
    );
    assert_eq!(c.record_addr, BASE + 6 * SECTOR);
    c.validate(&blank()).unwrap();
}

#[test]
fn validation_rejects_broken_layouts() {
    let ok = vm_and_bc();
    let g = geometry();
    let vm1 = slot_addr(&ok, SlotKind::Vm, 1);
    let check = |what: &str, c: AgentConfig, want: ConfigError| {
        assert_eq!(c.validate_geometry(&g), Err(want), "{what}");
    };
    let with_slot = |i: usize, f: &dyn Fn(&mut SlotDesc)| {
        let mut c = ok.clone();
        f(&mut c.slots[i]);
        c
    };
    check(
        "overlap",
        with_slot(2, &|s| s.addr -= SECTOR),
        ConfigError::SlotsOverlap(vm1 - SECTOR),
    );
    check(
        "slot misaligned",
        with_slot(2, &|s| s.addr += 4),
        ConfigError::SlotMisaligned(vm1 + 4),
    );
    check(
        "size misaligned",
        with_slot(2, &|s| s.size += 1),
        ConfigError::SlotMisaligned(vm1),
    );
    check(
        "empty slot",
        with_slot(2, &|s| s.size = 0),
        ConfigError::EmptySlot(vm1),
    );
    check(
        "slot below the flash",
        with_slot(0, &|s| s.addr = BASE - 2 * SECTOR),
        ConfigError::SlotOutsideFlash(BASE - 2 * SECTOR),
    );
    check(
        "slot past the flash",
        with_slot(2, &|s| s.addr = BASE + CAPACITY as u32 - SECTOR),
        ConfigError::SlotOutsideFlash(BASE + CAPACITY as u32 - SECTOR),
    );
    check(
        "duplicate index",
        with_slot(2, &|s| s.index = 0),
        ConfigError::BadSlotIndexes(SlotKind::Vm),
    );
    check(
        "index gap",
        with_slot(3, &|s| s.index = 2),
        ConfigError::BadSlotIndexes(SlotKind::Bytecode),
    );
    check(
        "no vm",
        with_slot(0, &|s| s.kind = SlotKind::Bytecode),
        ConfigError::BadSlotIndexes(SlotKind::Vm),
    );
    let mut c = ok.clone();
    c.slots.retain(|s| s.kind == SlotKind::Vm);
    check("no bytecode", c, ConfigError::NoSlot(SlotKind::Bytecode));

    let mut c = ok.clone();
    c.record_size = SECTOR;
    check("record too small", c, ConfigError::RecordTooSmall);
    let mut c = ok.clone();
    c.record_addr += 16;
    check("record misaligned", c, ConfigError::RecordMisaligned);
    let mut c = ok.clone();
    c.record_size = 2 * SECTOR + 8;
    check("record size misaligned", c, ConfigError::RecordMisaligned);
    let mut c = ok.clone();
    c.record_addr = vm1;
    check(
        "record over a slot",
        c,
        ConfigError::RecordOverlapsSlot(vm1),
    );
    let mut c = ok.clone();
    c.record_addr = BASE + CAPACITY as u32 - SECTOR;
    check("record past the flash", c, ConfigError::RecordOutsideFlash);
    let mut c = ok.clone();
    c.name = "a name that is much longer than thirty-two bytes";
    check("name", c, ConfigError::NameTooLong);
    let mut c = ok.clone();
    c.max_in_flight = 0;
    check("in flight", c, ConfigError::NoInFlight);
    let mut c = AgentConfig::vm_and_bytecode(BASE + 512, SLOT, SLOT, SECTOR);
    c.flash_base = BASE + 512;
    check("base", c, ConfigError::FlashBaseMisaligned);
}

#[test]
fn validation_rejects_unsupported_flash_geometry() {
    let c = vm_and_bc();
    for g in [
        FlashGeometry {
            sector: 0,
            ..geometry()
        },
        FlashGeometry {
            write_size: 3,
            ..geometry()
        },
        FlashGeometry {
            write_size: 512,
            ..geometry()
        },
        FlashGeometry {
            read_size: 128,
            ..geometry()
        },
        FlashGeometry {
            read_size: 0,
            ..geometry()
        },
    ] {
        assert_eq!(
            c.validate_geometry(&g),
            Err(ConfigError::UnsupportedFlash),
            "{g:?}"
        );
    }
}

#[test]
fn overflowing_constructor_arguments_fail_validation_not_panic() {
    let c = AgentConfig::bytecode_only(u32::MAX - SECTOR + 1, u32::MAX, u32::MAX, u32::MAX);
    assert!(c.validate_geometry(&geometry()).is_err());
    let c = AgentConfig::vm_and_bytecode(0, u32::MAX, 1, 0);
    assert!(c.validate_geometry(&geometry()).is_err());
}

#[test]
fn boot_refuses_a_bad_config_without_touching_flash() {
    let mut c = bc_only();
    c.slots[1].addr = c.slots[0].addr;
    let (err, flash) = Agent::boot_or_return(blank(), c).unwrap_err();
    assert!(matches!(
        err,
        AgentError::Config(ConfigError::SlotsOverlap(_))
    ));
    assert_eq!(flash, blank());
}

#[test]
fn a_layout_may_list_slots_in_any_order() {
    let ok = vm_and_bc();
    let mut c = ok.clone();
    c.slots.reverse();
    c.validate(&blank()).unwrap();
    let (a, _) = boot(blank(), &c);
    let info = a.info();
    assert!(
        info.slots.windows(2).all(|w| w[0].addr < w[1].addr),
        "Info lists by address"
    );
    assert_eq!(
        a.find_bytecode_slot().unwrap(),
        slot_addr(&ok, SlotKind::Bytecode, 1)
    );
}

#[test]
fn config_errors_name_what_to_fix() {
    let mut c = bc_only();
    c.slots[1].addr = c.slots[0].addr;
    let at = format!("{:#010x}", c.slots[1].addr);
    let (err, _) = Agent::boot_or_return(blank(), c).unwrap_err();
    let AgentError::Config(inner) = err else {
        panic!("{err:?}")
    };
    assert!(inner.to_string().contains(&at), "{inner}");
    assert!(err.to_string().ends_with(&inner.to_string()), "{err}");
    let source = std::error::Error::source(&err).map(|s| s.to_string());
    assert_eq!(source, Some(inner.to_string()));
    assert_eq!(
        ConfigError::NoSlot(SlotKind::Bytecode).to_string(),
        "the layout has no bytecode slot"
    );
}
