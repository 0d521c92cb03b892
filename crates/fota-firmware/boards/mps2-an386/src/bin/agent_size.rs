//! The agent alone, serving over UART0: its boot decision, the link, the flash driver,
//! no VM role and no bytecode interpreter. Built to measure the agent's code size
//! (`crates/fota-cli/tests/code_size.rs`); it runs too, but `fota qemu` does not use it.
#![no_std]
#![no_main]

#[path = "../board.rs"]
mod board;

use fota_firmware::Board;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut qemu = board::Qemu::init(true);
    let config = board::config(board::Layout::Bytecode);
    let flash = qemu.take_flash();
    let agent = flash.and_then(|f| fota_agent::Agent::boot(f, config).ok());
    let (Some((agent, _)), Some(state)) = (agent, qemu.link_state()) else {
        qemu.hang()
    };
    let mut link = fota_firmware::link::Link::new(agent, state, qemu.unit_hook());
    loop {
        qemu.kick_watchdog();
        if !link.poll(&mut qemu) {
            qemu.idle(10);
        }
    }
}
