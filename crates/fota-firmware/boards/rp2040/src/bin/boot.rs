//! The boot stage of the Pico, right after boot2.
#![no_std]
#![no_main]

#[path = "../board.rs"]
mod board;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut pico = board::Pico::init(false);
    let config = board::config();
    // A VM asked (through a reset) for another VM to be started: do it before anything
    // else runs.
    if let Some(addr) = pico.take_jump(&config) {
        board::Pico::jump(addr);
    }
    fota_firmware::boot::boot_stage(&mut pico, &config)
}
