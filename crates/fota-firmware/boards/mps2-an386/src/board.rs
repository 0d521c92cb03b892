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

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use cortex_m::peripheral::{NVIC, SCB, SYST, syst::SystClkSource};
use cortex_m_rt::exception;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fota_agent::{AgentConfig, BAUD_RATES, LinkState, UartClock};
use fota_firmware::{Board, ResetCause, Retained};

// ---- layout ------------------------------------------------------------------------

/// Where the flash starts.
pub const FLASH_BASE: u32 = 0x2100_0000;
/// The flash the agent manages: both layouts fit in it.
pub const FLASH_SIZE: u32 = 1024 * 1024;
/// Erase sector, like an SPI NOR flash.
pub const SECTOR: u32 = 4096;
/// Program unit.
pub const WRITE: u32 = 4;
/// A VM slot.
pub const VM_SLOT: u32 = 128 * 1024;
/// A bytecode slot.
pub const BC_SLOT: u32 = 256 * 1024;

/// The two layouts of the seed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// VM | bytecode 0 | bytecode 1 | record.
    Bytecode,
    /// VM 0 | bytecode 0 | VM 1 | bytecode 1 | record.
    Vm,
}

/// UART0's divider: the CMSDK APB UART divides its 25 MHz clock by a whole number, at
/// least 16.
pub const UART_CLOCK: UartClock = UartClock {
    clock_hz: SYSCLK_HZ,
    oversampling: 1,
    fraction_bits: 0,
    min_divisor: 16,
};

/// The rates UART0 makes, worked out when the firmware is built.
const UART_RATES: ([u32; fota_protocol::MAX_BAUD_RATES], usize) = UART_CLOCK.rate_list(&BAUD_RATES);

/// The agent's configuration for a layout. VM slot 1 of the VM layout starts at
/// 0x2106_0000 (build.rs links `vm-vm-slot1` there).
pub fn config(layout: Layout) -> AgentConfig {
    let c = match layout {
        Layout::Bytecode => AgentConfig::bytecode_only(FLASH_BASE, VM_SLOT, BC_SLOT, SECTOR),
        Layout::Vm => AgentConfig::vm_and_bytecode(FLASH_BASE, VM_SLOT, BC_SLOT, SECTOR),
    };
    let mut c = c.named("qemu-mps2-an386");
    c.max_in_flight = MAX_IN_FLIGHT;
    // Only the rates the divider makes within 1.5 %: 1.5 and 2 Mbaud are not among them.
    c.baud_rates = heapless::Vec::from_slice(&UART_RATES.0[..UART_RATES.1]).unwrap_or_default();
    c.max_baud = 2_000_000;
    // PSRAM erases at once unless a slow sector is modelled; say 1 ms then.
    c.sector_erase_ms = erase_ms().max(1);
    c
}

// ---- options `fota qemu` leaves in the flash file, past the flash --------------------

const OPTIONS: usize = 0x21F0_0100;
const OPTIONS_MAGIC: u32 = 0x4F50_5453; // "STPO"

/// The modelled sector erase time, in milliseconds (0: as fast as RAM).
pub fn erase_ms() -> u32 {
    if rd(OPTIONS) == OPTIONS_MAGIC {
        rd(OPTIONS + 4).min(60_000)
    } else {
        0
    }
}

/// Requests the host may have in flight: Info announces it, the receive ring holds it.
pub const MAX_IN_FLIGHT: u8 = 5;

// ---- registers ------------------------------------------------------------------------

const SYSCLK_HZ: u32 = 25_000_000;

fn rd(a: usize) -> u32 {
    // SAFETY: `a` is one of this file's device register or RAM addresses.
    unsafe { read_volatile(a as *const u32) }
}

fn wr(a: usize, v: u32) {
    // SAFETY: as for `rd`.
    unsafe { write_volatile(a as *mut u32, v) }
}

const U0: usize = 0x4000_4000;
const U1: usize = 0x4000_5000;
const U_DATA: usize = 0x00;
const U_STATE: usize = 0x04; // bit 0 TX full, 1 RX full, 3 RX overrun
const U_CTRL: usize = 0x08; // bit 0 TX enable, 1 RX enable, 3 RX interrupt enable
const U_INT: usize = 0x0C; // write 1s: clear interrupts (bit 1: RX)
const U_BAUDDIV: usize = 0x10;
const ST_TXFULL: u32 = 1;
const ST_RXFULL: u32 = 2;
const ST_RXOVR: u32 = 8;
const C_TXEN: u32 = 1;
const C_RXEN: u32 = 2;
const C_RXINT: u32 = 8;
/// UART0 receive interrupt number.
const UART0_RX_IRQ: u16 = 0;

const WD: usize = 0x4000_8000;
const WD_LOAD: usize = WD;
const WD_CTRL: usize = WD + 0x08; // bit 0 interrupt (and counter) enable, bit 1 reset enable
const WD_INTCLR: usize = WD + 0x0C; // any write: clear and reload (the kick)
const WD_LOCK: usize = WD + 0xC00;

#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: a valid interrupt number of this machine.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

// ---- retained words: above the RAM any image uses, survive a reset ----------------------

const RETAINED: usize = 0x2000_FF00;
const RETAINED_MAGIC: u32 = 0x5245_544E;

fn retained_read() -> Retained {
    if rd(RETAINED) != RETAINED_MAGIC {
        return Retained::default();
    }
    Retained {
        cause: rd(RETAINED + 4),
        watchdog_streak: rd(RETAINED + 8),
        handoff: rd(RETAINED + 12),
    }
}

fn retained_write(r: Retained) {
    wr(RETAINED + 4, r.cause);
    wr(RETAINED + 8, r.watchdog_streak);
    wr(RETAINED + 12, r.handoff);
    wr(RETAINED, RETAINED_MAGIC);
}

// ---- UART0 receive ring: the interrupt fills it, the main loop drains it ----------------

/// The window Info announces (max_in_flight frames of the largest request) fits: a UART
/// without flow control loses nothing while the agent is busy with one request. QEMU
/// also pushes back (it takes the next byte from the host only once DATA was read), so
/// here a full ring pauses the line instead of losing bytes.
pub const RX_RING: usize = MAX_IN_FLIGHT as usize * fota_agent::RX_FRAME;

struct Ring {
    buf: core::cell::UnsafeCell<[u8; RX_RING]>,
}

// SAFETY: single producer (the RX interrupt writes at `RX_HEAD`) and single consumer
// (the main loop reads at `RX_TAIL`); the indexes are atomics with acquire/release.
unsafe impl Sync for Ring {}

static RX: Ring = Ring {
    buf: core::cell::UnsafeCell::new([0; RX_RING]),
};
static RX_HEAD: AtomicUsize = AtomicUsize::new(0);
static RX_TAIL: AtomicUsize = AtomicUsize::new(0);
static RX_PAUSED: AtomicBool = AtomicBool::new(false);
/// Most bytes the ring held at once.
static RX_PEAK: AtomicUsize = AtomicUsize::new(0);
/// Times the ring was full and the line paused.
static RX_PAUSES: AtomicU32 = AtomicU32::new(0);
/// Bytes the UART reports lost (must stay 0).
static RX_OVERRUNS: AtomicU32 = AtomicU32::new(0);

fn uart_rx_interrupt() {
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

fn rx_read(out: &mut [u8]) -> usize {
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

fn uart_init(base: usize, rx_interrupt: bool) {
    wr(base + U_BAUDDIV, SYSCLK_HZ / 115_200);
    wr(
        base + U_CTRL,
        C_TXEN | C_RXEN | if rx_interrupt { C_RXINT } else { 0 },
    );
}

fn uart_write(base: usize, bytes: &[u8]) {
    for &b in bytes {
        while rd(base + U_STATE) & ST_TXFULL != 0 {}
        wr(base + U_DATA, u32::from(b));
    }
}

// ---- clock ----------------------------------------------------------------------------

static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

// ---- watchdog: the first expiry raises the NMI, the second resets ---------------------

/// The watchdog's period: 1 s, or longer than the slowest unit of the agent (a sector
/// erase), which the agent's unit hook kicks only after.
fn watchdog_secs() -> u32 {
    1 + erase_ms().div_ceil(1000)
}

fn watchdog_arm() {
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

// ---- stack high-water mark (cortex-m-rt paints the stack with 0xCCCCCCCC) ------------

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// The agent's unit hook: reload the watchdog (a plain function, no board).
fn kick() {
    wr(WD_INTCLR, 1);
}

// ---- the agent link's state: in .data, built by the startup code ---------------------

struct LinkCell(core::cell::UnsafeCell<LinkState>);

// SAFETY: handed out once, to the main loop (`LINK_TAKEN`); no interrupt touches it.
unsafe impl Sync for LinkCell {}

static LINK_STATE: LinkCell = LinkCell(core::cell::UnsafeCell::new(LinkState::new()));
static LINK_TAKEN: AtomicBool = AtomicBool::new(false);

/// Bytes of stack used so far (deepest point), and the stack's size.
fn stack_use() -> (u32, u32) {
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
fn repaint_stack() {
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
fn debug_num(text: &[u8], v: u32) {
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

fn debug_stats() {
    let (used, size) = stack_use();
    debug_num(b"stats: stack high-water mark ", used);
    debug_num(b" B of ", size);
    debug_num(b" B; rx ring peak ", RX_PEAK.load(Ordering::Relaxed) as u32);
    debug_num(b" B of ", RX_RING as u32);
    debug_num(b" B, pauses ", RX_PAUSES.load(Ordering::Relaxed));
    debug_num(b", overruns ", RX_OVERRUNS.load(Ordering::Relaxed));
    uart_write(U1, b"\n");
}

// ---- flash: NOR rules over file-backed RAM ------------------------------------------------

/// Why the flash refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NorError {
    /// Offset or length not a multiple of the unit.
    Align,
    /// Outside the region.
    Bounds,
    /// Programming would have to turn a 0 bit into 1: erase first.
    NotErased,
}

impl NorFlashError for NorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            NorError::Align => NorFlashErrorKind::NotAligned,
            NorError::Bounds => NorFlashErrorKind::OutOfBounds,
            NorError::NotErased => NorFlashErrorKind::Other,
        }
    }
}

/// NOR flash over the PSRAM region. QEMU's RAM takes any write, so the rules of a real
/// part are enforced here: erase whole sectors to 0xFF, program whole 4-byte units and
/// only clear bits (a program that would set one is refused before anything changes,
/// where a real part would silently corrupt). With `fota qemu --erase-ms N` each sector
/// erase takes N ms, the CPU busy (as on a part whose flash stalls it), interrupts
/// still served.
pub struct PsramFlash(());

impl PsramFlash {
    fn addr(offset: u32, len: usize) -> Result<usize, NorError> {
        match (offset as usize).checked_add(len) {
            Some(end) if end <= FLASH_SIZE as usize => Ok(FLASH_BASE as usize + offset as usize),
            _ => Err(NorError::Bounds),
        }
    }
}

impl ErrorType for PsramFlash {
    type Error = NorError;
}

impl ReadNorFlash for PsramFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorError> {
        let a = Self::addr(offset, bytes.len())?;
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: inside the PSRAM region checked above.
            *b = unsafe { read_volatile((a + i) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        FLASH_SIZE as usize
    }
}

impl NorFlash for PsramFlash {
    const WRITE_SIZE: usize = WRITE as usize;
    const ERASE_SIZE: usize = SECTOR as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorError> {
        if !from.is_multiple_of(SECTOR) || !to.is_multiple_of(SECTOR) || from > to {
            return Err(NorError::Align);
        }
        let a = Self::addr(from, (to - from) as usize)?;
        let ms = erase_ms();
        if ms > 0 {
            for _ in 0..(to - from) / SECTOR {
                let start = MILLIS.load(Ordering::Relaxed);
                while MILLIS.load(Ordering::Relaxed).wrapping_sub(start) < ms {
                    cortex_m::asm::nop();
                }
            }
        }
        for w in 0..(to - from) as usize / 4 {
            // SAFETY: inside the region.
            unsafe { write_volatile((a + 4 * w) as *mut u32, u32::MAX) };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorError> {
        if !offset.is_multiple_of(WRITE) || !bytes.len().is_multiple_of(WRITE as usize) {
            return Err(NorError::Align);
        }
        let a = Self::addr(offset, bytes.len())?;
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: inside the region.
            let old = unsafe { read_volatile((a + i) as *const u8) };
            if old & b != b {
                return Err(NorError::NotErased);
            }
        }
        for (i, &b) in bytes.iter().enumerate() {
            let p = (a + i) as *mut u8;
            // SAFETY: inside the region.
            unsafe { write_volatile(p, read_volatile(p) & b) };
        }
        Ok(())
    }
}

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
