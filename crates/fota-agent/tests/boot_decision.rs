//! The boot decision: attempt, trial boot, accept or revert; rebuilt from flash alone.

mod common;

use common::*;
use fota_agent::{Agent, RecordState};
use fota_protocol::Layout as _;
use fota_protocol::SlotKind;

#[test]
fn blank_flash_gets_the_factory_record() {
    for (name, config) in layouts() {
        let (agent, boot) = boot(blank(), &config);
        assert!(boot.factory, "{name}");
        assert!(
            !boot.trial && !boot.reverted && !boot.record_write_failed,
            "{name}"
        );
        assert_eq!((boot.vm_slot, boot.bc_slot), (0, 0), "{name}");
        assert_eq!(boot.vm_addr, slot_addr(&config, SlotKind::Vm, 0), "{name}");
        assert_eq!(
            boot.bc_addr,
            slot_addr(&config, SlotKind::Bytecode, 0),
            "{name}"
        );
        let r = agent.get_record().unwrap();
        assert_eq!(r.to_array()[..6], [1, 0, 0, 0, 0, 0], "{name}");
        assert_eq!(agent.record_state(), RecordState::Confirmed);
        // Written, not only assumed: the next boot finds it.
        let (_, again) = restart(agent, &config);
        assert!(!again.factory, "{name}");
    }
}

#[test]
fn attempt_then_restart_runs_the_new_configuration_as_a_trial() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 1).unwrap();
    assert_eq!(agent.record_state(), RecordState::Pending);
    let (agent, boot) = restart(agent, &config);
    assert!(boot.trial && !boot.reverted);
    assert_eq!((boot.vm_slot, boot.bc_slot), (1, 1));
    assert_eq!(boot.vm_addr, slot_addr(&config, SlotKind::Vm, 1));
    assert_eq!(boot.bc_addr, slot_addr(&config, SlotKind::Bytecode, 1));
    assert_eq!(agent.record_state(), RecordState::Trial);
    let r = agent.get_record().unwrap();
    assert_eq!(r.vm_index, 1, "fota[1] is the VM that runs");
    assert_eq!(
        (r.vm_current, r.vm_last, r.bc_current, r.bc_last),
        (1, 0, 1, 0)
    );
}

#[test]
fn a_second_restart_without_accept_reverts() {
    for (name, config) in layouts() {
        let vm = if config.count(SlotKind::Vm) == 2 {
            1
        } else {
            0
        };
        let (mut agent, _) = boot(blank(), &config);
        agent.attempt(1, vm).unwrap();
        let (agent, trial) = restart(agent, &config);
        assert!(trial.trial, "{name}");
        let (agent, back) = restart(agent, &config);
        assert!(back.reverted && !back.trial, "{name}");
        assert_eq!((back.vm_slot, back.bc_slot), (0, 0), "{name}");
        assert_eq!(agent.record_state(), RecordState::Confirmed, "{name}");
        let r = agent.get_record().unwrap();
        assert_eq!(
            (r.vm_current, r.vm_last, r.bc_current, r.bc_last),
            (0, 0, 0, 0),
            "{name}"
        );
        // And it stays there.
        let (_, later) = restart(agent, &config);
        assert!(!later.reverted && !later.trial, "{name}");
        assert_eq!((later.vm_slot, later.bc_slot), (0, 0), "{name}");
    }
}

#[test]
fn accept_during_the_trial_keeps_the_new_configuration() {
    for (name, config) in layouts() {
        let vm = if config.count(SlotKind::Vm) == 2 {
            1
        } else {
            0
        };
        let (mut agent, _) = boot(blank(), &config);
        agent.attempt(1, vm).unwrap();
        let (mut agent, _) = restart(agent, &config);
        agent.accept().unwrap();
        assert_eq!(agent.record_state(), RecordState::Confirmed, "{name}");
        let r = agent.get_record().unwrap();
        assert_eq!(
            (r.vm_current, r.vm_last, r.bc_current, r.bc_last),
            (vm, vm, 1, 1),
            "{name}"
        );
        for _ in 0..3 {
            let (a, b) = restart(agent, &config);
            agent = a;
            assert!(!b.trial && !b.reverted, "{name}");
            assert_eq!((u32::from(b.vm_slot), b.bc_slot), (vm, 1), "{name}");
        }
    }
}

#[test]
fn accept_while_pending_changes_nothing_and_the_attempt_stays() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let before = agent.flash().clone();
    agent.accept().unwrap();
    assert_eq!(agent.flash(), &before, "accept wrote while pending");
    assert_eq!(agent.record_state(), RecordState::Pending);
    let (_, boot) = restart(agent, &config);
    assert!(boot.trial);
    assert_eq!(boot.bc_slot, 1);
}

#[test]
fn accept_when_confirmed_writes_nothing() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let before = agent.flash().clone();
    agent.accept().unwrap();
    assert_eq!(agent.flash(), &before);
}

#[test]
fn attempting_the_last_working_configuration_means_confirmed() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(0, 0).unwrap();
    assert_eq!(agent.record_state(), RecordState::Confirmed);
    // Cancel a pending attempt the same way.
    agent.attempt(1, 0).unwrap();
    agent.attempt(0, 0).unwrap();
    assert_eq!(agent.record_state(), RecordState::Confirmed);
    let (_, boot) = restart(agent, &config);
    assert!(!boot.trial && !boot.reverted);
    assert_eq!(boot.bc_slot, 0);
}

#[test]
fn a_trial_can_be_abandoned_by_attempting_the_last_working_one() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let (mut agent, _) = restart(agent, &config);
    agent.attempt(0, 0).unwrap();
    // The trial firmware calling accept() afterwards must not make itself last working.
    agent.accept().unwrap();
    let r = agent.get_record().unwrap();
    assert_eq!((r.bc_current, r.bc_last), (0, 0));
    let (_, boot) = restart(agent, &config);
    assert_eq!(boot.bc_slot, 0);
    assert!(!boot.reverted && !boot.trial);
}

#[test]
fn set_record_with_current_unlike_last_is_tried_at_next_boot() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    agent
        .set_record(fota_protocol::RecordUpdate {
            vm_current: 1,
            vm_last: 0,
            bc_current: 0,
            bc_last: 0,
        })
        .unwrap();
    assert_eq!(agent.record_state(), RecordState::Pending);
    let (agent, boot) = restart(agent, &config);
    assert!(boot.trial);
    assert_eq!((boot.vm_slot, boot.bc_slot), (1, 0));
    let (_, boot) = restart(agent, &config);
    assert!(boot.reverted);
    assert_eq!(boot.vm_slot, 0);
}

#[test]
fn a_full_update_cycle_moves_between_slots() {
    // 0 -> 1 -> 0 -> 1 ..., each accepted: the record follows.
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    for round in 0..6u32 {
        let next = (round + 1) % 2;
        agent.attempt(next, next).unwrap();
        let (mut a, b) = restart(agent, &config);
        assert!(b.trial);
        a.accept().unwrap();
        let (a, b) = restart(a, &config);
        assert_eq!((u32::from(b.vm_slot), u32::from(b.bc_slot)), (next, next));
        agent = a;
    }
}

#[test]
fn boot_rebuilds_everything_from_flash_alone() {
    let config = vm_and_bc();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let image = agent.flash().clone();
    // Two agents booted from copies of the same flash agree on everything.
    let (a, boot_a) = boot(image.clone(), &config);
    let (b, boot_b) = boot(image, &config);
    assert_eq!(boot_a, boot_b);
    assert_eq!(a.get_record(), b.get_record());
    assert_eq!(a.flash(), b.flash());
}

#[test]
fn boot_or_return_hands_the_flash_back_on_a_bad_config() {
    let mut config = bc_only();
    config.record_size = SECTOR; // one sector: too small
    let flash = blank();
    let (err, back) = Agent::boot_or_return(flash.clone(), config).unwrap_err();
    assert_eq!(
        err,
        fota_agent::AgentError::Config(fota_agent::ConfigError::RecordTooSmall)
    );
    assert_eq!(back, flash);
}

#[test]
fn a_failed_trial_write_runs_the_last_working_configuration() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let mut flash = agent.into_flash();
    flash.fail_after = Some(0);
    let (agent, boot) = boot(flash, &config);
    assert!(boot.record_write_failed && !boot.trial);
    assert_eq!(
        boot.bc_slot, 0,
        "must not run an attempt it could not record as a trial"
    );
    assert_eq!(agent.record_state(), RecordState::Pending);
    let mut flash = agent.into_flash();
    flash.fail_after = None;
    let (_, boot) = common::boot(flash, &config);
    assert!(boot.trial);
    assert_eq!(boot.bc_slot, 1);
}

#[test]
fn a_failed_revert_write_still_runs_the_last_working_configuration() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let (agent, _) = restart(agent, &config);
    let mut flash = agent.into_flash();
    flash.fail_after = Some(0);
    let (mut agent, boot) = boot(flash, &config);
    assert!(boot.reverted && boot.record_write_failed);
    assert_eq!(boot.bc_slot, 0);
    // The record still says Trial (of slot 1); accept must not bless a config not running.
    agent.flash_mut().fail_after = None;
    agent.accept().unwrap();
    let r = agent.get_record().unwrap();
    assert_eq!(r.bc_last, 0);
    let (_, boot) = restart(agent, &config);
    assert!(boot.reverted);
    assert_eq!(boot.bc_slot, 0);
}

#[test]
fn unsupported_firmware_boots_slot_zero_without_touching_flash() {
    let config = bc_only().unsupported();
    let (agent, boot) = boot(blank(), &config);
    assert_eq!((boot.vm_slot, boot.bc_slot), (0, 0));
    assert_eq!(agent.flash(), &blank());
}

/// A trial is never re-armed: attempting the configuration that runs on trial (or
/// setting the record to the values it holds) changes nothing, so the next restart still
/// reverts. (The reproduction: `fota flash --no-restart`, `fota restart`,
/// `fota attempt --bc 1 --force`, `fota restart` used to leave bytecode slot 1 current.)
#[test]
fn a_trial_is_never_re_armed_by_attempt_or_set_record() {
    for (name, config) in layouts() {
        let vm = if config.count(SlotKind::Vm) == 2 {
            1
        } else {
            0
        };
        for how in ["attempt", "set_record"] {
            let (mut agent, _) = boot(blank(), &config);
            agent.attempt(1, vm).unwrap();
            let (mut agent, trial) = restart(agent, &config);
            assert!(trial.trial, "{name}");
            let before = agent.flash().clone();
            match how {
                "attempt" => agent.attempt(1, vm).unwrap(),
                _ => agent
                    .set_record(fota_protocol::RecordUpdate {
                        vm_current: vm,
                        vm_last: 0,
                        bc_current: 1,
                        bc_last: 0,
                    })
                    .unwrap(),
            }
            assert_eq!(
                agent.record_state(),
                RecordState::Trial,
                "{name}: {how} during the trial turned it back into Pending"
            );
            assert_eq!(agent.flash(), &before, "{name}: {how} wrote the record");
            let (agent, back) = restart(agent, &config);
            assert!(
                back.reverted && !back.trial,
                "{name}: after {how}, the restart did not revert: {back:?}"
            );
            assert_eq!((back.vm_slot, back.bc_slot), (0, 0), "{name}");
            let r = agent.get_record().unwrap();
            assert_eq!((r.bc_current, r.bc_last), (0, 0), "{name}: {how}");
        }
    }
}

/// fota[0] is 0 while the record in force is only in RAM: the factory record could not
/// be written on a blank flash.
#[test]
fn the_record_is_not_valid_when_the_factory_record_could_not_be_written() {
    let config = bc_only();
    let mut flash = blank();
    flash.fail_after = Some(0);
    let (agent, boot) = boot(flash, &config);
    assert!(boot.factory && boot.record_write_failed);
    let r = agent.get_record().unwrap();
    assert_eq!(
        r.valid, 0,
        "a record that is on no flash was reported valid"
    );
    // Once the write works, the next boot writes it and the record is valid.
    let mut flash = agent.into_flash();
    flash.fail_after = None;
    let (agent, boot) = common::boot(flash, &config);
    assert!(boot.factory && !boot.record_write_failed);
    assert_eq!(agent.get_record().unwrap().valid, 1);
}

/// `accept()` says what it did: accepted, or nothing to accept and why.
#[test]
fn accept_says_what_happened() {
    use fota_protocol::AcceptOutcome::*;
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    assert_eq!(agent.accept().unwrap(), AlreadyConfirmed);
    agent.attempt(1, 0).unwrap();
    assert_eq!(agent.accept().unwrap(), NotRestarted);
    let (mut agent, _) = restart(agent, &config);
    assert_eq!(agent.accept().unwrap(), Accepted);
    assert_eq!(agent.accept().unwrap(), AlreadyConfirmed);
    // A trial cancelled while it runs: the record is Confirmed on slot 0, slot 1 runs.
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let (mut agent, boot) = restart(agent, &config);
    assert!(boot.trial);
    agent.attempt(0, 0).unwrap();
    let before = agent.flash().clone();
    assert_eq!(agent.accept().unwrap(), NotRunning);
    assert_eq!(agent.flash(), &before, "nothing written");
}
