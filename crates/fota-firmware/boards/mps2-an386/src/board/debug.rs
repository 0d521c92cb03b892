//! The debug console (UART1): the stack high-water mark and the receive ring's counters.

use core::sync::atomic::Ordering;

use super::regs::*;
use super::uart::*;

// ---- stack high-water mark (cortex-m-rt paints the stack with 0xCCCCCCCC) ------------

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}
/// Bytes of stack used so far (deepest point), and the stack's size.
pub(crate) fn stack_use() -> (u32, u32) {
    let lo = core::ptr::addr_of!(_stack_end) as usize;
    let hi = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = lo;
    while p < hi && rd(p) == 0xCCCC_CCCC {
        p += 4;
    }
    ((hi - p) as u32, (hi - lo) as u32)
}

/// Paint the free stack again (below the current stack pointer, less a margin for this
/// function), so that the high-water marks after it measure what came later: the main
/// loop serving updates, not the boot that came first. Interrupts are off meanwhile, so
/// no exception frame is below the stack pointer.
pub(crate) fn repaint_stack() {
    cortex_m::interrupt::free(|_| {
        let lo = core::ptr::addr_of!(_stack_end) as usize;
        let sp = cortex_m::register::msp::read() as usize;
        let mut p = lo;
        while p + 64 < sp {
            wr(p, 0xCCCC_CCCC);
            p += 4;
        }
    });
}

/// A debug line on UART1: `text` then a decimal.
pub(crate) fn debug_num(text: &[u8], v: u32) {
    uart_write(U1, text);
    let mut d = [0u8; 10];
    let mut i = d.len();
    let mut v = v;
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    uart_write(U1, &d[i..]);
}

pub(crate) fn debug_stats() {
    let (used, size) = stack_use();
    debug_num(b"stats: stack high-water mark ", used);
    debug_num(b" B of ", size);
    debug_num(b" B; rx ring peak ", RX_PEAK.load(Ordering::Relaxed) as u32);
    debug_num(b" B of ", RX_RING as u32);
    debug_num(b" B, pauses ", RX_PAUSES.load(Ordering::Relaxed));
    debug_num(b", overruns ", RX_OVERRUNS.load(Ordering::Relaxed));
    uart_write(U1, b"\n");
}
