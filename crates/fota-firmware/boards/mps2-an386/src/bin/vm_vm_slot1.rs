//! The VM for the vm layout, linked for its slot (see build.rs).
#![no_std]
#![no_main]

#[path = "../board/mod.rs"]
mod board;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut qemu = board::Qemu::init(true);
    let own = board::Qemu::own_address();
    fota_firmware::vm::run(&mut qemu, board::config(board::Layout::Vm), own)
}
