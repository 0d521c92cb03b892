//! What runs the machine: retained words, the clock, the watchdog, the fault handlers
//! and the agent link's state.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_rt::exception;
use fota_firmware::{ResetCause, Retained};

use super::layout::erase_ms;
use super::regs::*;
use super::uart::{uart_rx_interrupt, uart_write};

// ---- retained words: above the RAM any image uses, survive a reset ----------------------

pub(crate) const RETAINED: usize = 0x2000_FF00;
pub(crate) const RETAINED_MAGIC: u32 = 0x5245_544E;

pub(crate) fn retained_read() -> Retained {
    if rd(RETAINED) != RETAINED_MAGIC {
        return Retained::default();
    }
    Retained {
        cause: rd(RETAINED + 4),
        watchdog_streak: rd(RETAINED + 8),
        handoff: rd(RETAINED + 12),
    }
}

pub(crate) fn retained_write(r: Retained) {
    wr(RETAINED + 4, r.cause);
    wr(RETAINED + 8, r.watchdog_streak);
    wr(RETAINED + 12, r.handoff);
    wr(RETAINED, RETAINED_MAGIC);
}

// ---- clock ----------------------------------------------------------------------------

pub(crate) static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

// ---- watchdog: the first expiry raises the NMI, the second resets ---------------------

/// The watchdog's period: 1 s, or longer than the slowest unit of the agent (a sector
/// erase), which the agent's unit hook kicks only after.
pub(crate) fn watchdog_secs() -> u32 {
    1 + erase_ms().div_ceil(1000)
}

pub(crate) fn watchdog_arm() {
    wr(WD_LOCK, 0x1ACC_E551);
    // The period to the NMI, as much again to the reset.
    wr(WD_LOAD, SYSCLK_HZ.saturating_mul(watchdog_secs()));
    wr(WD_CTRL, 3);
    // Left unlocked: a locked CMSDK watchdog ignores the kick too.
}

#[exception]
unsafe fn NonMaskableInt() {
    // Record why, never kick: the second expiry resets the device.
    let r = retained_read();
    retained_write(Retained {
        cause: ResetCause::Watchdog as u32,
        ..r
    });
    uart_write(U1, b"NMI: watchdog expired; reset follows\n");
    loop {
        cortex_m::asm::nop();
    }
}

#[exception]
unsafe fn DefaultHandler(irq: i16) {
    if irq == UART0_RX_IRQ as i16 {
        uart_rx_interrupt();
    }
}

#[exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    uart_write(U1, b"HardFault; the watchdog resets\n");
    loop {
        cortex_m::asm::nop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Without the watchdog (boot stage) this stops; with it (VM) the device resets.
    uart_write(U1, b"panic\n");
    loop {
        cortex_m::asm::nop();
    }
}

/// The agent's unit hook: reload the watchdog (a plain function, no board).
pub(crate) fn kick() {
    wr(WD_INTCLR, 1);
}
