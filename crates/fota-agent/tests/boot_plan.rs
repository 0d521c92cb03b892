//! The boot decision read-only: `Agent::plan` says what `Agent::boot` would do, from
//! every state of the record, and writes nothing.

mod common;

use common::*;
use fota_agent::Agent;
use fota_protocol::RecordUpdate;

fn states() -> Vec<(&'static str, Flash)> {
    let config = vm_and_bc();
    let blank = blank();
    let (agent, _) = boot(blank.clone(), &config);
    let confirmed = agent.into_flash();
    let (mut agent, _) = boot(confirmed.clone(), &config);
    agent
        .set_record(RecordUpdate {
            vm_current: 1,
            vm_last: 0,
            bc_current: 1,
            bc_last: 0,
        })
        .unwrap();
    let pending = agent.into_flash();
    let (agent, _) = boot(pending.clone(), &config);
    let trial = agent.into_flash();
    vec![
        ("blank", blank),
        ("confirmed", confirmed),
        ("pending", pending),
        ("trial", trial),
    ]
}

#[test]
fn the_plan_is_the_boot_and_writes_nothing() {
    let config = vm_and_bc();
    for (name, flash) in states() {
        let mut probe = flash.clone();
        let plan = Agent::plan(&mut probe, &config).expect("a plan");
        assert_eq!(probe, flash, "{name}: the plan wrote");
        let (agent, real) = boot(flash, &config);
        assert_eq!(plan.boot, real, "{name}");
        assert_eq!(plan.writes, name != "confirmed", "{name}");
        let e = agent.record_entry();
        assert_eq!(
            (
                plan.record.state,
                plan.record.vm_current,
                plan.record.vm_last
            ),
            (e.state, e.vm_current, e.vm_last),
            "{name}"
        );
    }
}

#[test]
fn a_trial_plan_names_the_old_vm_as_last_working() {
    let config = vm_and_bc();
    let (_, mut pending) = states().swap_remove(2);
    let plan = Agent::plan(&mut pending, &config).unwrap();
    assert!(plan.boot.trial);
    assert_eq!((plan.boot.vm_slot, plan.record.vm_last), (1, 0));
}

#[test]
fn an_unreadable_record_or_a_bad_layout_is_an_error() {
    let mut config = vm_and_bc();
    let mut flash = blank();
    assert!(Agent::plan(&mut flash, &config).is_ok());
    config.record_size = SECTOR;
    assert!(matches!(
        Agent::plan(&mut flash, &config),
        Err(fota_agent::AgentError::Config(_))
    ));
}
