//! An agent that erases in the background (`Info` tag 11, the simulated W25Q128JV's
//! default) reports an erase that fails on the next request that needs its range: the
//! host erases again and sends again, and where the flash keeps failing ends the update
//! with that refusal, clearly, having changed nothing but the target slot.

use fota_host::protocol::{ErrorCode, Layout as _, Op, SlotKind};
use fota_host::update::Plan;
use fota_host::{HostError, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

mod support;

#[test]
fn an_erase_that_keeps_failing_in_the_background_ends_the_update_with_its_refusal() {
    let cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    assert!(
        cfg.erase_suspend,
        "the default device erases in the background"
    );
    let mut sim = SimDevice::new(cfg);
    let slot = *sim
        .agent_config()
        .slot(SlotKind::Bytecode, 1)
        .expect("the free slot");
    let before = sim.flash_bytes().to_vec();
    // The slot's second sector refuses every erase (worn out).
    let off = slot.addr - sim.agent_config().flash_base;
    sim.flash_mut().wear_out(off + 4096, 4096);
    let mut dev = support::host(sim);
    let info = block_on(dev.hello()).expect("hello");
    assert!(info.background_erase, "Info tag 11");
    let mut plan = Plan::new(support::program("p.bin", "2", 64 * 1024));
    plan.restart = false;
    plan.resume = false;
    let err = block_on(update(&mut dev, &plan)).expect_err("the flash fails");
    // The erase is answered at once; its failure is the answer to a later request.
    match &err {
        HostError::Refused {
            op: Op::WriteSlot | Op::EraseSlot,
            code: ErrorCode::FlashFailure,
            detail,
        } => assert!((slot.addr..slot.addr + slot.size).contains(detail), "{err}"),
        other => panic!("ended {other:?}"),
    }
    assert!(
        err.help().contains("flash failed to erase or program"),
        "{}",
        err.help()
    );
    let sim = dev.link().device();
    // Nothing but the target slot changed; the record still runs the old bytecode.
    let after = sim.flash_bytes();
    let in_slot = |i: usize| (off as usize..(off + slot.size) as usize).contains(&i);
    let record = sim.agent_config().record_addr - sim.agent_config().flash_base;
    let record = record as usize..(record + sim.agent_config().record_size) as usize;
    assert!(
        (0..after.len())
            .filter(|&i| !in_slot(i) && !record.contains(&i))
            .all(|i| after[i] == before[i]),
        "a byte outside the slot changed"
    );
    let r = sim.record().expect("running");
    assert_eq!((r.bc_current, r.valid), (0, 1));
    // The host tried again: the failure was answered in more than one round.
    let refused = sim.link_stats().expect("running").refused;
    assert!(refused >= 2, "{refused} refusals");
}
