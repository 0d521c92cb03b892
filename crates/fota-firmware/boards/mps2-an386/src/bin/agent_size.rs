//! The agent alone, serving over UART0: its boot decision, the link, the flash driver,
//! no VM role and no bytecode interpreter. Built to measure the agent's code size
//! (`crates/fota-cli/tests/code_size.rs`); it runs too, but `fota qemu` does not use it.
#![no_std]
#![no_main]

#[path = "../board/mod.rs"]
mod board;

use fota_firmware::Board;

/// The agent's size on this target (it lives in `main`'s frame, beside the link state and
/// the receive ring in `.bss`): `crates/fota-cli/tests/code_size.rs` reads it from the ELF
/// for the agent's RAM figure, which `size_of` on a 64-bit build machine would get wrong.
#[used]
#[unsafe(no_mangle)]
static AGENT_BYTES: usize = core::mem::size_of::<fota_agent::Agent<board::PsramFlash>>();

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
