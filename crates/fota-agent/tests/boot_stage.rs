//! A part that always starts the same VM slot (no remap): that slot is the boot stage.
//! The layout says which; `find_vm_slot`, `erase_slot` and `write_slot` never offer or
//! touch it, and `Info` names it.

mod common;

use common::*;
use fota_agent::{AgentConfig, ConfigError};
use fota_protocol::{ErrorCode, SlotKind};

fn staged(vm: u8) -> AgentConfig {
    let mut config = vm_and_bc();
    config.boot_stage = Some(vm);
    config
}

#[test]
fn the_boot_stage_is_never_offered_erased_or_written() {
    let config = staged(0);
    let vm0 = slot_addr(&config, SlotKind::Vm, 0);
    let vm1 = slot_addr(&config, SlotKind::Vm, 1);
    let (mut agent, _) = boot(blank(), &config);
    assert_eq!(agent.info().boot_stage, Some(0));
    // VM 1 runs and is confirmed; VM 0 is in use by nothing but is the boot stage.
    agent.attempt(0, 1).unwrap();
    let (mut agent, _) = restart(agent, &config);
    agent.accept().unwrap();
    let r = agent.get_record().unwrap();
    assert_eq!((r.vm_current, r.vm_last, r.running_vm), (1, 1, 1));
    let before = agent.flash().clone();
    let e = agent.find_vm_slot().unwrap_err();
    assert_eq!(e.code, ErrorCode::NoFreeSlot, "VM 0 must not be offered");
    let e = agent.erase_slot(vm0, SECTOR, &mut noop).unwrap_err();
    assert_eq!((e.code, e.detail), (ErrorCode::BootStage, vm0));
    let e = agent.write_slot(vm0 + 64, &[1, 2, 3, 4]).unwrap_err();
    assert_eq!((e.code, e.detail), (ErrorCode::BootStage, vm0));
    assert_eq!(agent.flash(), &before);
    // It may still be read, and named as the VM to run.
    agent.checksum_slot(vm0, 64, &mut noop).unwrap();
    agent.attempt(0, 0).unwrap();
    let (mut agent, boot) = restart(agent, &config);
    assert_eq!(boot.vm_slot, 0);
    agent.accept().unwrap();
    let (agent, _) = restart(agent, &config);
    // With VM 0 running and confirmed, VM 1 is the free one.
    assert_eq!(agent.find_vm_slot().unwrap(), vm1);
}

#[test]
fn without_a_boot_stage_every_free_vm_slot_is_offered() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(0, 1).unwrap();
    let (mut agent, _) = restart(agent, &config);
    agent.accept().unwrap();
    let (agent, _) = restart(agent, &config);
    assert_eq!(
        agent.find_vm_slot().unwrap(),
        slot_addr(&config, SlotKind::Vm, 0)
    );
    assert_eq!(agent.info().boot_stage, None);
}

#[test]
fn a_layout_whose_only_other_vm_slot_is_the_boot_stage_cannot_update_its_vm() {
    // One VM slot besides the boot stage... is none: find_vm_slot answers the current
    // VM's address (fota[7]), the seed's way of saying the VM cannot be updated.
    let mut config = bc_only();
    config.boot_stage = Some(0);
    let (agent, _) = boot(blank(), &config);
    let r = agent.get_record().unwrap();
    assert_eq!(agent.find_vm_slot().unwrap(), r.vm_addr);
}

#[test]
fn a_boot_stage_that_is_not_a_vm_slot_is_a_config_error() {
    let config = staged(2);
    let e = fota_agent::Agent::boot(blank(), config).unwrap_err();
    assert_eq!(
        e,
        fota_agent::AgentError::Config(ConfigError::BadBootStage(2))
    );
}
