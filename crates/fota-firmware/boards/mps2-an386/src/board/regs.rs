//! The machine's registers: volatile access and the UART and watchdog maps.

use core::ptr::{read_volatile, write_volatile};

// ---- registers ------------------------------------------------------------------------

pub(crate) const SYSCLK_HZ: u32 = 25_000_000;

pub(crate) fn rd(a: usize) -> u32 {
    // SAFETY: `a` is one of this file's device register or RAM addresses.
    unsafe { read_volatile(a as *const u32) }
}

pub(crate) fn wr(a: usize, v: u32) {
    // SAFETY: as for `rd`.
    unsafe { write_volatile(a as *mut u32, v) }
}

pub(crate) const U0: usize = 0x4000_4000;
pub(crate) const U1: usize = 0x4000_5000;
pub(crate) const U_DATA: usize = 0x00;
pub(crate) const U_STATE: usize = 0x04; // bit 0 TX full, 1 RX full, 3 RX overrun
pub(crate) const U_CTRL: usize = 0x08; // bit 0 TX enable, 1 RX enable, 3 RX interrupt enable
pub(crate) const U_INT: usize = 0x0C; // write 1s: clear interrupts (bit 1: RX)
pub(crate) const U_BAUDDIV: usize = 0x10;
pub(crate) const ST_TXFULL: u32 = 1;
pub(crate) const ST_RXFULL: u32 = 2;
pub(crate) const ST_RXOVR: u32 = 8;
pub(crate) const C_TXEN: u32 = 1;
pub(crate) const C_RXEN: u32 = 2;
pub(crate) const C_RXINT: u32 = 8;
/// UART0 receive interrupt number.
pub(crate) const UART0_RX_IRQ: u16 = 0;

pub(crate) const WD: usize = 0x4000_8000;
pub(crate) const WD_LOAD: usize = WD;
pub(crate) const WD_CTRL: usize = WD + 0x08; // bit 0 interrupt (and counter) enable, bit 1 reset enable
pub(crate) const WD_INTCLR: usize = WD + 0x0C; // any write: clear and reload (the kick)
pub(crate) const WD_LOCK: usize = WD + 0xC00;

#[derive(Clone, Copy)]
pub(crate) struct Irq(pub(crate) u16);

// SAFETY: a valid interrupt number of this machine.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}
