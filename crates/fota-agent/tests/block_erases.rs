//! A flash with block erases (a W25Q128JV's 32 and 64 KiB): an agent whose configuration
//! declares them erases a whole aligned block of a range in one unit, never past the
//! range (so never outside its slot), says so in `Info` (tag 10), and one that does not
//! declare them erases sector by sector as before.

use embedded_storage::nor_flash::{NorFlash as _, ReadNorFlash as _};
use fota_agent::{Agent, AgentConfig, ConfigError, Unit};
use fota_protocol::{BlockErase, ErrorCode, Layout as _, SlotDesc, SlotKind};
use fota_sim::device::{DeviceConfig, LayoutKind};
use fota_sim::flash::SimFlash;
use md5::Digest as _;

fn device() -> DeviceConfig {
    DeviceConfig::new(LayoutKind::BytecodeOnly)
}

fn config(blocks: bool) -> AgentConfig {
    let mut d = device();
    d.use_block_erases = blocks;
    let mut config = d.agent_config();
    // Erases are under test here, not slot contents.
    config.images = fota_agent::ImagePolicy::NONE;
    config
}

fn boot(config: &AgentConfig) -> Agent<SimFlash> {
    let flash = SimFlash::new(device().flash_size());
    Agent::boot(flash, config.clone()).expect("boot").0
}

/// Erase `addr..addr + size` unit by unit: the bytes each unit erased, and the flash's
/// busy time.
fn units(agent: &mut Agent<SimFlash>, addr: u32, size: u32) -> (Vec<u32>, u64) {
    agent.flash_mut().take_busy_ns();
    let mut op = agent.begin_erase(addr, size).expect("begin");
    let mut sizes = Vec::new();
    let mut done = 0;
    loop {
        match agent.erase_unit(&mut op).expect("unit") {
            Unit::More { done: now, .. } => {
                sizes.push(now - done);
                done = now;
            }
            Unit::Done((_, total)) => {
                sizes.push(total - done);
                break;
            }
        }
    }
    (sizes, agent.flash_mut().take_busy_ns())
}

#[test]
fn info_lists_the_block_erases() {
    let agent = boot(&config(true));
    let info = agent.info();
    assert_eq!(
        info.block_erases.as_slice(),
        [
            BlockErase {
                size: 32 * 1024,
                ms: 120
            },
            BlockErase {
                size: 64 * 1024,
                ms: 150
            }
        ]
    );
    assert!(boot(&config(false)).info().block_erases.is_empty());
}

#[test]
fn a_slot_is_erased_a_block_a_unit_where_blocks_fit() {
    let cfg = config(true);
    let mut agent = boot(&cfg);
    let bc1 = cfg.slot(SlotKind::Bytecode, 1).expect("slot").addr;
    assert_eq!(bc1 % 0x1_0000, 0, "the slot starts on a 64 KiB boundary");
    // The whole 256 KiB slot: four 64 KiB blocks, 150 ms each.
    let (sizes, ns) = units(&mut agent, bc1, 256 * 1024);
    assert_eq!(sizes, [0x1_0000; 4]);
    assert_eq!(ns, 4 * 150_000_000);
    assert_eq!(agent.flash().block_erases_done(), 4);
    // From 4 KiB in, 188 KiB: sectors to the 32 KiB boundary, a 32 KiB block to the
    // 64 KiB one, then two 64 KiB blocks.
    let (sizes, ns) = units(&mut agent, bc1 + 0x1000, 0x2_F000);
    assert_eq!(
        sizes,
        [
            0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x8000, 0x1_0000, 0x1_0000
        ]
    );
    assert_eq!(ns, 7 * 45_000_000 + 120_000_000 + 2 * 150_000_000);
    // The erased range is known erased: a write lands, the checksum of the rest reads
    // as erased.
    agent
        .write_slot(bc1 + 0x1_0000, &[1, 2, 3, 4])
        .expect("write");
    let sum = agent
        .checksum_slot(bc1 + 0x2_0000, 0x1_0000, &mut |_, _| {})
        .expect("checksum");
    let erased: [u8; 16] = md5::Md5::digest([0xFF; 0x1_0000]).into();
    assert_eq!(sum, erased);
    let mut head = [0u8; 8];
    agent
        .flash_mut()
        .read(bc1 + 0x1_0000, &mut head)
        .expect("read");
    assert_eq!(head, [1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF]);
}

#[test]
fn without_block_erases_declared_every_unit_is_a_sector() {
    let cfg = config(false);
    let mut agent = boot(&cfg);
    let bc1 = cfg.slot(SlotKind::Bytecode, 1).expect("slot").addr;
    let (sizes, ns) = units(&mut agent, bc1, 256 * 1024);
    assert_eq!(sizes, [0x1000; 64]);
    assert_eq!(ns, 64 * 45_000_000);
    assert_eq!(agent.flash().block_erases_done(), 0);
}

#[test]
fn a_block_never_reaches_past_the_range_or_the_slot() {
    // Bytecode slot 1 of 24 KiB at a 64 KiB boundary, slot 2's first sector right
    // after it: no 32 KiB block fits in the slot, whatever the erase asks.
    let slot = |kind, index, addr, size| SlotDesc {
        kind,
        index,
        addr,
        size,
    };
    let slots = [
        slot(SlotKind::Vm, 0, 0, 0x1_0000),
        slot(SlotKind::Bytecode, 0, 0x1_0000, 0x1_0000),
        slot(SlotKind::Bytecode, 1, 0x2_0000, 0x6000),
        slot(SlotKind::Bytecode, 2, 0x2_6000, 0x1_A000),
    ];
    let mut cfg = AgentConfig::with_slots(0, &slots, 0x4_0000, 0x2000);
    cfg.block_erases = config(true).block_erases;
    cfg.images = fota_agent::ImagePolicy::NONE;
    let mut flash = SimFlash::new(0x4_2000);
    flash.write(0x2_6000, &[0; 16]).expect("slot 2's data");
    let mut agent = Agent::boot(flash, cfg).expect("boot").0;
    let (sizes, _) = units(&mut agent, 0x2_0000, 0x6000);
    assert_eq!(sizes, [0x1000; 6]);
    assert_eq!(agent.flash().block_erases_done(), 0);
    let mut left = [0xAA; 16];
    agent.flash_mut().read(0x2_6000, &mut left).expect("read");
    assert_eq!(left, [0; 16], "the next slot is untouched");
    // A range past the slot is refused before anything is erased.
    let e = agent.begin_erase(0x2_0000, 0x8000).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadLength);
    // A range shorter than a block inside a slot that holds one: sectors.
    let (sizes, _) = units(&mut agent, 0x2_8000, 0x7000);
    assert_eq!(sizes, [0x1000; 7]);
}

#[test]
fn block_erases_are_checked_against_the_sector() {
    let g =
        fota_agent::FlashGeometry::of(&SimFlash::<4, 4096>::new(device().flash_size())).unwrap();
    let good = config(true);
    assert_eq!(good.validate_geometry(&g), Ok(()));
    for bad in [
        [(4096, 45), (0x1_0000, 150)],        // a "block" of one sector
        [(0x1_0000, 150), (0x8000, 120)],     // not ascending
        [(0x8000, 120), (0x8000 + 100, 150)], // not a whole number of sectors
    ] {
        let mut c = good.clone();
        c.block_erases = bad
            .iter()
            .map(|&(size, ms)| BlockErase { size, ms })
            .collect();
        assert_eq!(
            c.validate_geometry(&g),
            Err(ConfigError::BadSectors),
            "{bad:?}"
        );
    }
    // Not on a flash with sectors of several sizes (an STM32F4 has no block erase).
    let stm32 =
        SimFlash::<4, 4096>::new(1024 * 1024).with_sectors(&fota_sim::device::STM32F4_SECTORS);
    let g = fota_agent::FlashGeometry::of(&stm32).unwrap();
    let mut c = DeviceConfig::stm32f4(LayoutKind::BytecodeOnly).agent_config();
    assert_eq!(c.validate_geometry(&g), Ok(()));
    c.block_erases = good.block_erases.clone();
    assert_eq!(c.validate_geometry(&g), Err(ConfigError::BadSectors));
}
