//! `write_slot` over sectors this boot erased takes them for erased without reading them
//! (its blank check and its pre-read), and reads every block back; over flash it did not
//! erase, or flash changed behind its back, it reads first and refuses what is not
//! erased. Measured by the flash model's busy time (W25Q128JV: 0.7 ms a page program,
//! 160 ns a byte read plus 800 ns a command).

mod common;

use common::layouts;
use fota_agent::{Agent, AgentConfig};
use fota_protocol::{ErrorCode, SlotKind};
use fota_sim::flash::{FlashTiming, SimFlash};

type Flash = SimFlash<4, 4096>;

/// The layouts of the common tests at flash base 0 (SimFlash starts at address 0).
fn config() -> AgentConfig {
    let (_, c) = layouts()[0].clone();
    let slots: Vec<_> = c
        .slots
        .iter()
        .map(|s| fota_protocol::SlotDesc {
            addr: s.addr - common::BASE,
            ..*s
        })
        .collect();
    common::unchecked(AgentConfig::with_slots(
        0,
        &slots,
        c.record_addr - common::BASE,
        c.record_size,
    ))
}

fn boot() -> (Agent<Flash>, u32) {
    let config = config();
    let addr = config
        .slots
        .iter()
        .find(|s| s.kind == SlotKind::Bytecode && s.index == 1)
        .expect("bytecode slot 1")
        .addr;
    let flash = Flash::new(1024 * 1024).with_timing(FlashTiming::W25Q128JV);
    let (mut agent, _) = Agent::boot(flash, config).expect("boot");
    agent.flash_mut().take_busy_ns();
    (agent, addr)
}

const PROGRAM_1K: u64 = 4 * 700_000;

#[test]
fn a_block_behind_its_sectors_erase_is_programmed_and_read_back_only() {
    let (mut agent, addr) = boot();
    agent.erase_slot(addr, 8192, &mut |_, _| {}).expect("erase");
    let block = common::image(3, 1024);
    // (`flash()` reads the busy time without changing anything.)
    let before = agent.flash().busy_ns();
    agent.write_slot(addr, &block).expect("write");
    // Four page programs and the read-back, 256 bytes at a time.
    assert_eq!(
        agent.flash().busy_ns() - before,
        PROGRAM_1K + 4 * (800 + 160 * 256)
    );
    // The next block of the same sectors: the same.
    let before = agent.flash().busy_ns();
    agent.write_slot(addr + 1024, &block).expect("write");
    assert_eq!(
        agent.flash().busy_ns() - before,
        PROGRAM_1K + 4 * (800 + 160 * 256)
    );
    // A resend of the first block is read (it is no longer erased) and programs nothing.
    let before = agent.flash().busy_ns();
    agent.write_slot(addr, &block).expect("resend");
    assert_eq!(
        agent.flash().busy_ns() - before,
        3 * 4 * (800 + 160 * 256),
        "read to check, read to compare, read back"
    );
}

#[test]
fn flash_not_erased_by_this_boot_is_read_before_it_is_programmed() {
    let (mut agent, addr) = boot();
    // Erased at the factory, not by this boot: checked by reading.
    let block = common::image(4, 1024);
    let before = agent.flash().busy_ns();
    agent.write_slot(addr, &block).expect("write");
    assert_eq!(
        agent.flash().busy_ns() - before,
        PROGRAM_1K + 3 * 4 * (800 + 160 * 256)
    );
}

#[test]
fn flash_changed_behind_the_agents_back_is_read_again() {
    let (mut agent, addr) = boot();
    agent.erase_slot(addr, 4096, &mut |_, _| {}).expect("erase");
    // Programmed by someone else after the erase: the agent must see it.
    use embedded_storage::nor_flash::NorFlash;
    agent
        .flash_mut()
        .write(addr + 2048, &[0u8; 4])
        .expect("program");
    let block = common::image(5, 4096);
    agent
        .write_slot(addr + 1024, &block[..1024])
        .expect("the kilobyte before it is still erased");
    let e = agent
        .write_slot(addr + 2048, &block[2048..3072])
        .expect_err("not erased");
    assert_eq!((e.code, e.detail), (ErrorCode::NotErased, addr + 2048));
}
