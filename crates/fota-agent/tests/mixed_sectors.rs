//! A flash whose sectors differ in size (an STM32F4: 16, 64 and 128 KiB): the layout is
//! checked against the real sectors, an erase covers whole real sectors, one per unit,
//! and `Info` describes them.

use fota_agent::{Agent, AgentConfig, ConfigError, Unit};
use fota_protocol::{ErrorCode, Layout as _, SectorRun, SlotKind};
use fota_sim::device::{DeviceConfig, LayoutKind, STM32F4_SECTORS};
use fota_sim::flash::SimFlash;

fn flash() -> SimFlash {
    SimFlash::new(1024 * 1024).with_sectors(&STM32F4_SECTORS)
}

fn config(layout: LayoutKind) -> AgentConfig {
    // The record and the erases are under test here, not slot contents.
    let mut config = DeviceConfig::stm32f4(layout).agent_config();
    config.images = fota_agent::ImagePolicy::NONE;
    config
}

#[test]
fn info_describes_the_sectors() {
    let (agent, _) = Agent::boot(flash(), config(LayoutKind::VmAndBytecode)).unwrap();
    let info = agent.info();
    assert_eq!(info.sector_size, 4096, "the driver's erase unit");
    assert_eq!(info.sectors.len(), 3);
    assert_eq!(info.sector_erase_ms, Some(2000));
    assert_eq!(info.sector_at(0x6_1000), (0x6_0000, 0x2_0000));
    assert_eq!(info.sector_at(0x1_2000), (0x1_0000, 0x1_0000));
    assert_eq!(info.sector_at(0x9000), (0x8000, 0x4000));
}

#[test]
fn an_erase_takes_whole_real_sectors_one_per_unit() {
    let cfg = config(LayoutKind::VmAndBytecode);
    let (mut agent, _) = Agent::boot(flash(), cfg.clone()).unwrap();
    let bc1 = cfg.slot(SlotKind::Bytecode, 1).unwrap().addr;
    // 200 KiB: two 128 KiB sectors.
    let mut op = agent.begin_erase(bc1, 200 * 1024).unwrap();
    assert_eq!(op.total(), 256 * 1024);
    let erases = agent.flash().total_erases();
    assert_eq!(
        agent.erase_unit(&mut op).unwrap(),
        Unit::More {
            done: 128 * 1024,
            total: 256 * 1024
        }
    );
    assert_eq!(
        agent.flash().total_erases() - erases,
        1,
        "one sector a unit"
    );
    assert_eq!(
        agent.erase_unit(&mut op).unwrap(),
        Unit::Done((bc1, 256 * 1024))
    );
    // Not at the start of a real sector: misaligned, though a multiple of 4 KiB.
    let e = agent.begin_erase(bc1 + 0x1000, 4096).unwrap_err();
    assert_eq!((e.code, e.detail), (ErrorCode::Misaligned, bc1 + 0x1000));
    // VM slot 1 is the 64 KiB sector 4.
    let vm1 = cfg.slot(SlotKind::Vm, 1).unwrap().addr;
    let mut progress = 0;
    let erased = agent.erase_slot(vm1, 1, &mut |_, _| progress += 1).unwrap();
    assert_eq!((erased, progress), ((vm1, 64 * 1024), 0));
}

#[test]
fn the_layout_is_checked_against_the_real_sectors() {
    let g = fota_agent::FlashGeometry::of(&flash()).unwrap();
    let good = config(LayoutKind::BytecodeOnly);
    assert_eq!(good.validate_geometry(&g), Ok(()));
    // A slot that ends inside a 128 KiB sector.
    let mut c = good.clone();
    c.slots[2].size = 0x3_0000;
    assert_eq!(
        c.validate_geometry(&g),
        Err(ConfigError::SlotMisaligned(c.slots[2].addr))
    );
    // A record area across a 16 KiB and the 64 KiB sector: not a ring of equal sectors.
    let mut c = good.clone();
    c.record_addr = 0xC000;
    c.record_size = 0x1_4000;
    assert_eq!(c.validate_geometry(&g), Err(ConfigError::RecordMisaligned));
    // Runs that overlap, or leave the flash.
    let mut c = good.clone();
    c.sectors[1] = SectorRun {
        addr: 0x8000,
        size: 0x1_0000,
        count: 1,
    };
    assert_eq!(c.validate_geometry(&g), Err(ConfigError::BadSectors));
    let mut c = good;
    c.sectors[2].count = 8;
    assert_eq!(c.validate_geometry(&g), Err(ConfigError::BadSectors));
}

/// The record lives in two 16 KiB sectors: filling the first moves the log to the second
/// (one 16 KiB erase), and a boot finds the newest entry.
#[test]
fn the_record_ring_uses_its_own_sectors() {
    let cfg = config(LayoutKind::BytecodeOnly);
    let (mut agent, _) = Agent::boot(flash(), cfg.clone()).unwrap();
    // 819 entries of 20 bytes fit a 16 KiB sector: go past it.
    for k in 0..1000u32 {
        agent.attempt(1 - (k % 2), 0).unwrap();
    }
    let state = agent.record_entry();
    let (again, _) = Agent::boot(agent.into_flash(), cfg).unwrap();
    assert_eq!(again.record_entry().seq, state.seq);
    assert!(
        again.flash().erase_count_at(0xC000) >= 1,
        "the second sector was used"
    );
}
