//! A faulty VM for VM slot 1 of the VM layout: it crashes at start, before it can take
//! the boot decision. The tests flash it to prove such a VM is reverted.
#![no_std]
#![no_main]

#[path = "../board/mod.rs"]
mod board;

use fota_firmware::Board;

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut qemu = board::Qemu::init(true);
    qemu.write(b"vm: faulty build: stuck at start\r\n");
    qemu.hang()
}
