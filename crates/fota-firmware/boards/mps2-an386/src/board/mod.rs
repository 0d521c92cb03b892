//! QEMU's mps2-an386 (Cortex-M4F at 25 MHz) as a FOTA board. Every binary includes this
//! file, so its interrupt handlers are always linked.
//!
//! | what                 | where                                                       |
//! |----------------------|-------------------------------------------------------------|
//! | boot stage           | SSRAM1 at 0x0 (the CPU boots there; QEMU loads it like a ROM) |
//! | RAM                  | 0x2000_0000, 64 KiB less 256 B; retained words at 0x2000_FF00 |
//! | flash (slots, record)| PSRAM at 0x2100_0000, 1 MiB used: QEMU's main RAM, file-backed |
//! | update link          | UART0 (0x4000_4000), RX interrupt 0, 115200 baud nominal    |
//! | debug console        | UART1 (0x4000_5000): stack high-water mark and counters     |
//! | watchdog             | CMSDK at 0x4000_8000: NMI after 1 s, reset after 2 s (longer with a slow erase) |
//! | options              | PSRAM 0x21F0_0100: a sector erase time `fota qemu --erase-ms` sets |

#![allow(dead_code)]

mod debug;
mod flash;
mod layout;
mod regs;
mod system;
mod uart;

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::peripheral::{NVIC, SCB, SYST, syst::SystClkSource};
use fota_agent::LinkState;
use fota_firmware::{Board, ResetCause, Retained};

use debug::*;
// Every binary includes the board, and each uses a part of what it exports.
#[allow(unused_imports)]
pub use flash::*;
#[allow(unused_imports)]
pub use layout::*;
use regs::*;
use system::*;
use uart::*;

// ---- the agent link's state: in .data, built by the startup code ---------------------

struct LinkCell(core::cell::UnsafeCell<LinkState>);

// SAFETY: handed out once, to the main loop (`LINK_TAKEN`); no interrupt touches it.
unsafe impl Sync for LinkCell {}

static LINK_STATE: LinkCell = LinkCell(core::cell::UnsafeCell::new(LinkState::new()));
static LINK_TAKEN: AtomicBool = AtomicBool::new(false);

// ---- the board ------------------------------------------------------------------------

/// The machine.
pub struct Qemu {
    flash: Option<PsramFlash>,
    /// Debug stats printed when the stack high-water mark grows.
    last_stack: u32,
    last_stats: u32,
    /// The VM's stack peak up to its first idle pass (the boot decision and the
    /// program's start) was printed.
    boot_reported: bool,
}

impl Qemu {
    /// Set the machine up: clock, UARTs, and for a VM the receive interrupt and the
    /// watchdog (the boot stage leaves both off).
    pub fn init(vm: bool) -> Qemu {
        let Some(mut p) = cortex_m::Peripherals::take() else {
            // Only taken here, once.
            loop {
                cortex_m::asm::nop();
            }
        };
        p.SYST.set_clock_source(SystClkSource::Core);
        p.SYST.set_reload(SYSCLK_HZ / 1000 - 1);
        p.SYST.clear_current();
        p.SYST.enable_interrupt();
        p.SYST.enable_counter();
        uart_init(U0, vm);
        uart_init(U1, false);
        if vm {
            watchdog_arm();
            // SAFETY: the handler above is ready; the ring is empty.
            unsafe { NVIC::unmask(Irq(UART0_RX_IRQ)) };
            // A byte that arrived while the interrupt was off (during the boot stage)
            // raised no interrupt and would block the line: collect it now.
            NVIC::pend(Irq(UART0_RX_IRQ));
        }
        // SAFETY: every enabled interrupt has its handler.
        unsafe { cortex_m::interrupt::enable() };
        Qemu {
            flash: Some(PsramFlash(())),
            last_stack: 0,
            last_stats: 0,
            boot_reported: false,
        }
    }

    /// The address this image's vector table was linked at (its slot, for a VM).
    pub fn own_address() -> u32 {
        unsafe extern "C" {
            static __vector_table: u32;
        }
        core::ptr::addr_of!(__vector_table) as u32
    }
}

impl Board for Qemu {
    type Flash = PsramFlash;

    fn read(&mut self, buf: &mut [u8]) -> usize {
        rx_read(buf)
    }

    fn write(&mut self, bytes: &[u8]) {
        uart_write(U0, bytes);
    }

    fn flush(&mut self) {
        while rd(U0 + U_STATE) & ST_TXFULL != 0 {}
    }

    fn set_baud(&mut self, baud: u32) {
        // QEMU's timing does not follow the divider; a real part's would.
        wr(U0 + U_BAUDDIV, SYSCLK_HZ / baud.max(1));
    }

    fn now_ms(&mut self) -> u32 {
        MILLIS.load(Ordering::Relaxed)
    }

    fn kick_watchdog(&mut self) {
        wr(WD_INTCLR, 1);
    }

    fn idle(&mut self, _ms: u32) {
        if !self.boot_reported {
            self.boot_reported = true;
            let (used, _) = stack_use();
            debug_num(b"stack: vm until it serves ", used);
            uart_write(U1, b" B; the stats that follow are the serving peak\n");
            repaint_stack();
            self.last_stack = 0;
        }
        // The 1 ms tick or a received byte wakes the core.
        cortex_m::asm::wfi();
        let now = MILLIS.load(Ordering::Relaxed);
        if now.wrapping_sub(self.last_stats) >= 1000 {
            self.last_stats = now;
            let (used, _) = stack_use();
            if used > self.last_stack {
                self.last_stack = used;
                debug_stats();
            }
        }
    }

    fn retained(&mut self) -> Retained {
        retained_read()
    }

    fn set_retained(&mut self, r: Retained) {
        retained_write(r);
    }

    fn reset(&mut self, cause: ResetCause) -> ! {
        debug_stats();
        retained_write(Retained {
            cause: cause as u32,
            ..retained_read()
        });
        SCB::sys_reset()
    }

    fn start_vm(&mut self, addr: u32) -> ! {
        let (used, _) = stack_use();
        debug_num(b"stack: before passing control on ", used);
        uart_write(U1, b" B\n");
        cortex_m::interrupt::disable();
        // SAFETY: interrupts are off; nothing else touches these registers now.
        unsafe {
            let nvic = &*NVIC::PTR;
            for i in 0..8 {
                nvic.icer[i].write(u32::MAX);
                nvic.icpr[i].write(u32::MAX);
            }
            (*SYST::PTR).csr.write(0);
        }
        // The UART stays enabled without its interrupt: a byte arriving now waits in
        // DATA (and QEMU holds the rest back) for the next image.
        wr(U0 + U_CTRL, C_TXEN | C_RXEN);
        self.kick_watchdog();
        // SAFETY: `addr` holds a checked vector table (stack pointer in RAM, reset
        // vector inside the slot); every interrupt source is off.
        unsafe {
            (*SCB::PTR).vtor.write(addr);
            cortex_m::asm::dsb();
            cortex_m::asm::isb();
            cortex_m::interrupt::enable();
            cortex_m::asm::bootload(addr as *const u32)
        }
    }

    fn hang(&mut self) -> ! {
        // Interrupts keep running (as in a real hang); nothing kicks the watchdog.
        loop {
            cortex_m::asm::nop();
        }
    }

    fn ram(&self) -> (u32, u32) {
        (0x2000_0000, RETAINED as u32)
    }

    fn take_flash(&mut self) -> Option<PsramFlash> {
        self.flash.take()
    }

    fn unit_hook(&self) -> Option<fn()> {
        Some(kick)
    }

    fn link_state(&mut self) -> Option<&'static mut LinkState> {
        if LINK_TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: handed out once (the flag above), to the main loop only.
        Some(unsafe { &mut *LINK_STATE.0.get() })
    }
}
