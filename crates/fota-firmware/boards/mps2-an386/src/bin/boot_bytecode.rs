//! The boot stage for the bytecode layout, at the boot address.
#![no_std]
#![no_main]

#[path = "../board/mod.rs"]
mod board;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut qemu = board::Qemu::init(false);
    fota_firmware::boot::boot_stage(&mut qemu, &board::config(board::Layout::Bytecode))
}
