//! The VM of the Pico, linked for VM slot 0 (see build.rs).
#![no_std]
#![no_main]

#[path = "../board.rs"]
mod board;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut pico = board::Pico::init(true);
    let own = board::Pico::own_address();
    fota_firmware::vm::run(&mut pico, board::config(), own)
}
