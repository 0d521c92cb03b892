//! The UARTs: UART0's receive ring (the interrupt fills it, the main loop drains it)
//! and plain writes.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use cortex_m::peripheral::NVIC;

use super::layout::MAX_IN_FLIGHT;
use super::regs::*;

// ---- UART0 receive ring: the interrupt fills it, the main loop drains it ----------------

/// The window Info announces in bytes (tag 8: max_in_flight frames of the largest
/// request and room for the erases between them, behind the request the agent handles)
/// fits. The host does not count that request, and the main loop runs the program
/// between a reply and the next poll, so the next request may still be here when the
/// host sends more: QEMU pushes back (it takes the next byte from the host only once
/// DATA was read), so a full ring pauses the line instead of losing bytes. A UART without
/// flow control would announce this ring less RX_FRAME (docs/PROTOCOL.md 6.2).
pub const RX_RING: usize = fota_agent::rx_queue_bytes(MAX_IN_FLIGHT);

pub(crate) struct Ring {
    buf: core::cell::UnsafeCell<[u8; RX_RING]>,
}

// SAFETY: single producer (the RX interrupt writes at `RX_HEAD`) and single consumer
// (the main loop reads at `RX_TAIL`); the indexes are atomics with acquire/release.
unsafe impl Sync for Ring {}

pub(crate) static RX: Ring = Ring {
    buf: core::cell::UnsafeCell::new([0; RX_RING]),
};
pub(crate) static RX_HEAD: AtomicUsize = AtomicUsize::new(0);
pub(crate) static RX_TAIL: AtomicUsize = AtomicUsize::new(0);
pub(crate) static RX_PAUSED: AtomicBool = AtomicBool::new(false);
/// Most bytes the ring held at once.
pub(crate) static RX_PEAK: AtomicUsize = AtomicUsize::new(0);
/// Times the ring was full and the line paused.
pub(crate) static RX_PAUSES: AtomicU32 = AtomicU32::new(0);
/// Bytes the UART reports lost (must stay 0).
pub(crate) static RX_OVERRUNS: AtomicU32 = AtomicU32::new(0);

pub(crate) fn uart_rx_interrupt() {
    // Clear first: a byte arriving after this raises it again.
    wr(U0 + U_INT, 2);
    loop {
        let st = rd(U0 + U_STATE);
        if st & ST_RXOVR != 0 {
            RX_OVERRUNS.fetch_add(1, Ordering::Relaxed);
            wr(U0 + U_STATE, ST_RXOVR);
        }
        if st & ST_RXFULL == 0 {
            break;
        }
        let head = RX_HEAD.load(Ordering::Relaxed);
        let used = head.wrapping_sub(RX_TAIL.load(Ordering::Acquire));
        if used >= RX_RING {
            // Full: leave the byte in DATA, so QEMU stops taking bytes from the host,
            // until the main loop has drained some and re-enables the interrupt.
            wr(U0 + U_CTRL, rd(U0 + U_CTRL) & !C_RXINT);
            RX_PAUSED.store(true, Ordering::Release);
            RX_PAUSES.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let byte = rd(U0 + U_DATA) as u8;
        // SAFETY: only this interrupt writes, at a slot the consumer has released.
        unsafe { (*RX.buf.get())[head % RX_RING] = byte };
        RX_HEAD.store(head.wrapping_add(1), Ordering::Release);
        if used + 1 > RX_PEAK.load(Ordering::Relaxed) {
            RX_PEAK.store(used + 1, Ordering::Relaxed);
        }
    }
}

pub(crate) fn rx_read(out: &mut [u8]) -> usize {
    let tail = RX_TAIL.load(Ordering::Relaxed);
    let head = RX_HEAD.load(Ordering::Acquire);
    let n = head.wrapping_sub(tail).min(out.len());
    for (i, b) in out.iter_mut().take(n).enumerate() {
        // SAFETY: slots between tail and head were published by the interrupt.
        *b = unsafe { (*RX.buf.get())[tail.wrapping_add(i) % RX_RING] };
    }
    RX_TAIL.store(tail.wrapping_add(n), Ordering::Release);
    if n > 0 && RX_PAUSED.load(Ordering::Acquire) {
        cortex_m::interrupt::free(|_| {
            RX_PAUSED.store(false, Ordering::Release);
            wr(U0 + U_CTRL, rd(U0 + U_CTRL) | C_RXINT);
        });
        // The byte left in DATA raises no new edge: ask for the interrupt by hand.
        NVIC::pend(Irq(UART0_RX_IRQ));
    }
    n
}

pub(crate) fn uart_init(base: usize, rx_interrupt: bool) {
    wr(base + U_BAUDDIV, SYSCLK_HZ / 115_200);
    wr(
        base + U_CTRL,
        C_TXEN | C_RXEN | if rx_interrupt { C_RXINT } else { 0 },
    );
}

pub(crate) fn uart_write(base: usize, bytes: &[u8]) {
    for &b in bytes {
        while rd(base + U_STATE) & ST_TXFULL != 0 {}
        wr(base + U_DATA, u32::from(b));
    }
}
