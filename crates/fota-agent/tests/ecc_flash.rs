//! ECC flash (STM32L4/G4/H7 and others): a word whose program or erase was cut reads
//! back as an error, not as data. An unreadable record entry is skipped like one with a
//! bad CRC, at boot and when appending: the device never loops in reset because of one.

mod common;

use common::layouts;
use fota_agent::{Agent, AgentConfig, RecordState};
use fota_sim::flash::SimFlash;

type Ecc = SimFlash<4, 4096>;

const CAPACITY: usize = 128 * 1024;

fn ecc_flash() -> Ecc {
    Ecc::new(CAPACITY).with_ecc()
}

/// The layouts of the common tests at flash base 0 (SimFlash starts at address 0).
fn configs() -> Vec<(&'static str, AgentConfig)> {
    layouts()
        .into_iter()
        .map(|(name, c)| {
            let slots: Vec<_> = c
                .slots
                .iter()
                .map(|s| fota_protocol::SlotDesc {
                    addr: s.addr - common::BASE,
                    ..*s
                })
                .collect();
            (
                name,
                common::unchecked(AgentConfig::with_slots(
                    0,
                    &slots,
                    c.record_addr - common::BASE,
                    c.record_size,
                )),
            )
        })
        .collect()
}

fn boot_ok(flash: Ecc, config: &AgentConfig) -> (Agent<Ecc>, fota_agent::Boot) {
    match Agent::boot(flash, config.clone()) {
        Ok(x) => x,
        Err(e) => panic!("the boot failed (a device would reset and fail again): {e:?}"),
    }
}

/// A cut at every byte of the attempt's record entry, on ECC flash: the next boot works
/// and runs the previous configuration or the attempt, and the next append skips the
/// torn slot.
#[test]
fn a_torn_record_entry_is_skipped_at_boot_and_when_appending() {
    for (name, config) in configs() {
        let (agent, _) = boot_ok(ecc_flash(), &config);
        let start = agent.into_flash();
        for cut in 0..20u64 {
            let mut flash = start.clone();
            flash.set_seed(cut);
            flash.arm_power_cut(cut);
            let (mut agent, _) = boot_ok(flash, &config);
            assert!(agent.attempt(1, 0).is_err(), "{name} cut {cut}");
            let mut flash = agent.into_flash();
            flash.power_on();
            assert_eq!(flash.torn_words().len(), 1, "{name} cut {cut}");
            let (mut agent, boot) = boot_ok(flash, &config);
            assert!(!boot.factory && !boot.trial, "{name} cut {cut}: {boot:?}");
            assert_eq!(agent.get_record().unwrap().valid, 1);
            // The next record change goes after the torn slot and is found at boot.
            agent.attempt(1, 0).unwrap();
            assert_eq!(agent.record_state(), RecordState::Pending);
            let (_, boot) = boot_ok(agent.into_flash(), &config);
            assert!(boot.trial, "{name} cut {cut}");
            assert_eq!(boot.bc_slot, 1);
        }
    }
}

/// A torn word in the very first entry of a blank device (the factory record was cut):
/// the factory record is written again after it.
#[test]
fn a_torn_factory_record_is_written_again() {
    let config = &configs()[0].1;
    for cut in 0..20u64 {
        let mut flash = ecc_flash();
        flash.arm_power_cut(cut);
        let (agent, boot) = boot_ok(flash, config);
        assert!(boot.factory && boot.record_write_failed);
        let mut flash = agent.into_flash();
        flash.power_on();
        let (agent, boot) = boot_ok(flash, config);
        assert!(boot.factory && !boot.record_write_failed, "cut {cut}");
        assert_eq!(agent.get_record().unwrap().valid, 1);
        let (_, again) = boot_ok(agent.into_flash(), config);
        assert!(!again.factory);
    }
}

/// A record area where every entry slot is unreadable is a flash fault, not a blank
/// device: the boot says so rather than write a factory record over the history.
#[test]
fn a_wholly_unreadable_record_area_is_a_flash_error() {
    let config = &configs()[0].1;
    let (agent, _) = boot_ok(ecc_flash(), config);
    let mut flash = agent.into_flash();
    for off in (config.record_addr..config.record_addr + config.record_size).step_by(4) {
        flash.tear_word(off);
    }
    let before = flash.snapshot();
    match Agent::boot_or_return(flash, config.clone()) {
        Err((fota_agent::AgentError::Flash(addr), back)) => {
            assert_eq!(addr, config.record_addr);
            assert_eq!(back.snapshot(), before, "nothing written");
        }
        other => panic!("{:?}", other.map(|(_, b)| b)),
    }
}
