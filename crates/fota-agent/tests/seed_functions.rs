//! The seed's functions on both layouts, in the order of its FOTA process.

mod common;

use common::*;
use fota_agent::{MAX_WRITE, RecordState};
use fota_protocol::Layout as _;
use fota_protocol::{ErrorCode, RecordUpdate, SlotKind};
use md5::{Digest, Md5};

#[test]
fn get_record_reports_the_nine_integers() {
    for (name, config) in layouts() {
        let (agent, _) = boot(blank(), &config);
        let r = agent.get_record().unwrap();
        assert_eq!(
            r.to_array(),
            [
                1,
                0,
                0,
                0,
                0,
                0,
                slot_addr(&config, SlotKind::Bytecode, 0),
                slot_addr(&config, SlotKind::Vm, 0),
                MAX_WRITE as u32,
            ],
            "{name}"
        );
    }
}

#[test]
fn get_record_addresses_follow_the_current_slots() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 1).unwrap();
    let r = agent.get_record().unwrap();
    assert_eq!(r.bc_addr, slot_addr(&config, SlotKind::Bytecode, 1));
    assert_eq!(r.vm_addr, slot_addr(&config, SlotKind::Vm, 1));
    assert_eq!(r.vm_index, 0, "still running VM 0 until restart");
    assert!(r.on_trial());
}

#[test]
fn set_record_changes_fields_two_to_five() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    let u = RecordUpdate {
        vm_current: 1,
        vm_last: 1,
        bc_current: 1,
        bc_last: 1,
    };
    agent.set_record(u).unwrap();
    let r = agent.get_record().unwrap();
    assert_eq!(
        (r.vm_current, r.vm_last, r.bc_current, r.bc_last),
        (1, 1, 1, 1)
    );
    assert_eq!(r.vm_index, 0, "fota[1] is not settable");
    assert_eq!(agent.record_state(), RecordState::Confirmed);
    let (agent, boot) = restart(agent, &config);
    assert_eq!((boot.vm_slot, boot.bc_slot), (1, 1));
    assert!(!boot.trial);
    assert_eq!(agent.get_record().unwrap().vm_index, 1);
}

#[test]
fn set_record_refuses_slots_the_layout_lacks() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let ok = RecordUpdate {
        vm_current: 0,
        vm_last: 0,
        bc_current: 1,
        bc_last: 0,
    };
    for (bad, index) in [
        (
            RecordUpdate {
                vm_current: 1,
                ..ok
            },
            1,
        ),
        (RecordUpdate { vm_last: 7, ..ok }, 7),
        (
            RecordUpdate {
                bc_current: 2,
                ..ok
            },
            2,
        ),
        (
            RecordUpdate {
                bc_last: u32::MAX,
                ..ok
            },
            u32::MAX,
        ),
    ] {
        let e = agent.set_record(bad).unwrap_err();
        assert_eq!((e.code, e.detail), (ErrorCode::BadSlotIndex, index));
    }
    agent.set_record(ok).unwrap();
}

#[test]
fn find_bytecode_slot_returns_the_other_slot() {
    for (name, config) in layouts() {
        let (agent, _) = boot(blank(), &config);
        assert_eq!(
            agent.find_bytecode_slot().unwrap(),
            slot_addr(&config, SlotKind::Bytecode, 1),
            "{name}"
        );
    }
}

#[test]
fn find_vm_slot_on_a_single_vm_layout_returns_the_current_vm() {
    let config = bc_only();
    let (agent, _) = boot(blank(), &config);
    let r = agent.get_record().unwrap();
    assert_eq!(
        agent.find_vm_slot().unwrap(),
        r.vm_addr,
        "seed: equal to fota[7]"
    );
}

#[test]
fn find_vm_slot_on_a_two_vm_layout_returns_the_other_vm() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    assert_eq!(
        agent.find_vm_slot().unwrap(),
        slot_addr(&config, SlotKind::Vm, 1)
    );
    agent.attempt(0, 1).unwrap();
    let (mut agent, _) = restart(agent, &config);
    agent.accept().unwrap();
    assert_eq!(
        agent.find_vm_slot().unwrap(),
        slot_addr(&config, SlotKind::Vm, 0)
    );
}

#[test]
fn find_slot_refuses_when_a_trial_holds_the_second_slot() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 1).unwrap();
    for e in [
        agent.find_bytecode_slot().unwrap_err(),
        agent.find_vm_slot().unwrap_err(),
    ] {
        assert_eq!((e.code, e.detail), (ErrorCode::NoFreeSlot, 1));
    }
    let (mut agent, _) = restart(agent, &config);
    assert_eq!(
        agent.find_bytecode_slot().unwrap_err().code,
        ErrorCode::NoFreeSlot
    );
    agent.accept().unwrap();
    assert_eq!(
        agent.find_bytecode_slot().unwrap(),
        slot_addr(&config, SlotKind::Bytecode, 0)
    );
}

#[test]
fn find_slot_never_returns_the_running_slot() {
    // Trial of bc 1 running, then attempt(0): current = last = 0, but 1 still runs.
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let (mut agent, _) = restart(agent, &config);
    agent.attempt(0, 0).unwrap();
    assert_eq!(
        agent.find_bytecode_slot().unwrap_err().code,
        ErrorCode::NoFreeSlot
    );
}

#[test]
fn erase_slot_erases_whole_sectors() {
    for (name, config) in layouts() {
        let (mut agent, _) = boot(blank(), &config);
        let addr = agent.find_bytecode_slot().unwrap();
        agent.flash_mut().poke(addr, &[0u8; SLOT as usize]);
        // 1 byte rounds up to one sector; 5000 bytes to two.
        assert_eq!(
            agent.erase_slot(addr, 1, &mut noop).unwrap(),
            (addr, SECTOR),
            "{name}"
        );
        assert!(
            agent
                .flash()
                .at(addr, SECTOR as usize)
                .iter()
                .all(|&b| b == 0xFF)
        );
        assert!(
            agent.flash().at(addr + SECTOR, 1) == [0],
            "{name}: erased too much"
        );
        assert_eq!(
            agent.erase_slot(addr, SECTOR + 904, &mut noop).unwrap(),
            (addr, 2 * SECTOR),
            "{name}"
        );
        assert!(
            agent
                .flash()
                .at(addr + SECTOR, SECTOR as usize)
                .iter()
                .all(|&b| b == 0xFF)
        );
        assert_eq!(
            agent.erase_slot(addr, SLOT, &mut noop).unwrap(),
            (addr, SLOT)
        );
        assert!(
            agent
                .flash()
                .at(addr, SLOT as usize)
                .iter()
                .all(|&b| b == 0xFF)
        );
    }
}

#[test]
fn erase_slot_reports_progress_between_sectors() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let addr = agent.find_bytecode_slot().unwrap();
    let mut seen = Vec::new();
    agent
        .erase_slot(addr, SLOT, &mut |d, t| seen.push((d, t)))
        .unwrap();
    assert_eq!(
        seen,
        [(SECTOR, SLOT), (2 * SECTOR, SLOT), (3 * SECTOR, SLOT)]
    );
}

#[test]
fn erase_slot_can_start_mid_slot() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let addr = agent.find_bytecode_slot().unwrap() + 2 * SECTOR;
    assert_eq!(
        agent.erase_slot(addr, 2 * SECTOR, &mut noop).unwrap(),
        (addr, 2 * SECTOR)
    );
}

#[test]
fn write_and_checksum_a_whole_slot() {
    for (name, config) in layouts() {
        let (mut agent, _) = boot(blank(), &config);
        let addr = agent.find_bytecode_slot().unwrap();
        let img = image(7, 10_000); // not a multiple of MAX_WRITE: a short last block
        agent.erase_slot(addr, img.len() as u32, &mut noop).unwrap();
        for (i, block) in img.chunks(MAX_WRITE).enumerate() {
            agent
                .write_slot(addr + (i * MAX_WRITE) as u32, block)
                .unwrap();
        }
        assert_eq!(agent.flash().at(addr, img.len()), &img[..], "{name}");
        let want: [u8; 16] = Md5::digest(&img).into();
        let got = agent
            .checksum_slot(addr, img.len() as u32, &mut noop)
            .unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn checksum_of_a_range_inside_a_slot() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let addr = agent.find_bytecode_slot().unwrap();
    let img = image(3, 4096);
    agent.write_slot(addr, &img[..1024]).unwrap();
    let want: [u8; 16] = Md5::digest(&img[100..1000]).into();
    assert_eq!(
        agent.checksum_slot(addr + 100, 900, &mut noop).unwrap(),
        want
    );
    // Erased bytes too, of any slot: in use or not.
    let vm = slot_addr(&config, SlotKind::Vm, 0);
    let want: [u8; 16] = Md5::digest(vec![0xFFu8; SLOT as usize]).into();
    assert_eq!(agent.checksum_slot(vm, SLOT, &mut noop).unwrap(), want);
}

#[test]
fn checksum_reports_progress_on_long_ranges() {
    let config = unchecked(AgentConfig::bytecode_only(BASE, SLOT, 64 * SECTOR, SECTOR));
    let (mut agent, _) = boot(Flash::new(1024 * 1024), &config);
    let addr = agent.find_bytecode_slot().unwrap();
    let size = 64 * SECTOR; // 256 KiB: 4 steps of 64 KiB, progress between them
    let mut seen = Vec::new();
    agent
        .checksum_slot(addr, size, &mut |d, t| seen.push((d, t)))
        .unwrap();
    let step = fota_agent::CHECKSUM_PROGRESS_STEP;
    assert_eq!(seen, [(step, size), (2 * step, size), (3 * step, size)]);
}

use fota_agent::AgentConfig;

#[test]
fn the_seed_process_for_bytecode_only() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let rec = agent.get_record().unwrap();
    assert!(!rec.on_trial());
    let addr = agent.find_bytecode_slot().unwrap();
    let img = image(42, 3 * 1024 + 512);
    agent.erase_slot(addr, img.len() as u32, &mut noop).unwrap();
    for (i, block) in img.chunks(rec.chunk as usize).enumerate() {
        agent
            .write_slot(addr + i as u32 * rec.chunk, block)
            .unwrap();
    }
    let want: [u8; 16] = Md5::digest(&img).into();
    assert_eq!(
        agent
            .checksum_slot(addr, img.len() as u32, &mut noop)
            .unwrap(),
        want
    );
    let index = config.slot_at(addr).unwrap().index;
    agent.attempt(u32::from(index), rec.vm_index).unwrap();
    let (mut agent, boot) = restart(agent, &config);
    assert_eq!(boot.bc_addr, addr);
    agent.accept().unwrap();
    let r = agent.get_record().unwrap();
    assert_eq!((r.bc_current, r.bc_last, r.bc_addr), (1, 1, addr));
}

#[test]
fn the_seed_process_for_vm_and_bytecode() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    let bc = agent.find_bytecode_slot().unwrap();
    let vm = agent.find_vm_slot().unwrap();
    assert_ne!(
        vm,
        agent.get_record().unwrap().vm_addr,
        "this layout updates VMs"
    );
    let (bc_img, vm_img) = (image(1, 5000), image(2, 9000));
    for (addr, img) in [(bc, &bc_img), (vm, &vm_img)] {
        agent.erase_slot(addr, img.len() as u32, &mut noop).unwrap();
        // A 4-byte-aligned tail: pad with 0xFF like a host would.
        let mut padded = img.clone();
        padded.resize(img.len().next_multiple_of(4), 0xFF);
        for (i, block) in padded.chunks(MAX_WRITE).enumerate() {
            agent
                .write_slot(addr + (i * MAX_WRITE) as u32, block)
                .unwrap();
        }
        let want: [u8; 16] = Md5::digest(img).into();
        assert_eq!(
            agent
                .checksum_slot(addr, img.len() as u32, &mut noop)
                .unwrap(),
            want
        );
    }
    let bc_index = config.slot_at(bc).unwrap().index;
    let vm_index = config.slot_at(vm).unwrap().index;
    agent
        .attempt(u32::from(bc_index), u32::from(vm_index))
        .unwrap();
    let (mut agent, boot) = restart(agent, &config);
    assert_eq!((boot.vm_addr, boot.bc_addr), (vm, bc));
    assert!(boot.trial);
    agent.accept().unwrap();
    let (_, boot) = restart(agent, &config);
    assert_eq!((boot.vm_addr, boot.bc_addr), (vm, bc));
    assert!(!boot.trial);
}

#[test]
fn attempt_refuses_slots_the_layout_lacks() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let e = agent.attempt(2, 0).unwrap_err();
    assert_eq!((e.code, e.detail), (ErrorCode::BadSlotIndex, 2));
    let e = agent.attempt(1, 1).unwrap_err();
    assert_eq!(
        (e.code, e.detail),
        (ErrorCode::BadSlotIndex, 1),
        "single VM slot"
    );
}

#[test]
fn info_describes_the_flash_and_layout() {
    let config = vm_and_bc();
    let (agent, _) = boot(blank(), &config);
    let info = agent.info();
    assert_eq!(info.sector_size, SECTOR);
    assert_eq!(info.write_granularity, 4);
    assert_eq!(info.max_write as usize, MAX_WRITE);
    assert_eq!(info.max_in_flight, config.max_in_flight);
    assert_eq!(info.slots.len(), 4);
    assert!(info.slots.windows(2).all(|w| w[0].addr < w[1].addr));
    assert_eq!(
        (info.record_addr, info.record_size),
        (config.record_addr, config.record_size)
    );
    assert_eq!(info.name.as_str(), config.name);
    assert!(info.fota_supported);
}

#[test]
fn other_flash_geometries_work() {
    // 16-byte write units, 2 KiB sectors, 4-byte reads.
    type Odd = RamFlash<16, 2048, 4>;
    let config = unchecked(AgentConfig::vm_and_bytecode(BASE, 8 * 2048, 8 * 2048, 2048));
    let (mut agent, _) = boot(Odd::new(CAPACITY), &config);
    let addr = agent.find_bytecode_slot().unwrap();
    let img = image(9, 3000);
    let mut padded = img.clone();
    padded.resize(3008, 0xFF);
    agent.erase_slot(addr, 3008, &mut noop).unwrap();
    agent.write_slot(addr, &padded[..1024]).unwrap();
    agent.write_slot(addr + 1024, &padded[1024..2048]).unwrap();
    agent.write_slot(addr + 2048, &padded[2048..]).unwrap();
    // A start inside a 16-byte unit that no earlier write left partly written.
    let e = agent.write_slot(addr + 4004, &[0; 8]).unwrap_err();
    assert_eq!(e.code, ErrorCode::Misaligned);
    // Unaligned reads for the checksum go through the 4-byte read unit.
    let want: [u8; 16] = Md5::digest(&img[3..2999]).into();
    assert_eq!(
        agent.checksum_slot(addr + 3, 2996, &mut noop).unwrap(),
        want
    );
    agent.attempt(1, 1).unwrap();
    let (_, boot) = restart(agent, &config);
    assert!(boot.trial);
}
