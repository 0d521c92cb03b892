//! A Raspberry Pi Pico (RP2040, 2 MiB QSPI flash) as a FOTA board, with embassy-rp.
//! Every binary includes this file.
//!
//! | what             | where                                                          |
//! |------------------|----------------------------------------------------------------|
//! | boot2 + boot stage | 0x1000_0000 (boot2, 256 B) and 0x1000_0100, up to 64 KiB     |
//! | VM slot 0        | 0x1001_0000, 256 KiB                                           |
//! | bytecode 0, 1    | 0x1005_0000 and 0x1009_0000, 256 KiB each                      |
//! | record           | 0x100D_0000, two 4 KiB sectors                                 |
//! | update link      | USB CDC-ACM (no baud rate; USB flow control pushes back)       |
//! | retained words   | the watchdog's scratch registers (survive a watchdog reset)   |
//! | watchdog         | 2 s, no early-warning stage on this chip                       |
//!
//! The main loop is synchronous; USB runs in an interrupt executor (SWI_IRQ_1), and
//! bytes cross between them through two pipes.

#![allow(dead_code)]

use core::sync::atomic::{AtomicBool, Ordering};

use embassy_executor::InterruptExecutor;
use embassy_rp::flash::{Blocking, Flash};
use embassy_rp::interrupt::{InterruptExt, Priority};
use embassy_rp::peripherals::{FLASH, USB};
use embassy_rp::usb::Driver;
use embassy_rp::watchdog::{ResetReason, Watchdog};
use embassy_rp::{bind_interrupts, interrupt};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::pipe::Pipe;
use embassy_time::{Duration, Instant};
use embassy_usb::UsbDevice;
use embassy_usb::class::cdc_acm::{CdcAcmClass, Receiver, Sender, State};
use fota_agent::{AgentConfig, LinkState};
use fota_firmware::{Board, ResetCause, Retained};
use fota_protocol::{Layout as _, SlotDesc, SlotKind};
use static_cell::StaticCell;

/// Bytes of QSPI flash on a Pico.
pub const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// Where the flash is mapped (XIP); offset 0 of the flash driver.
pub const FLASH_BASE: u32 = 0x1000_0000;
const SECTOR: u32 = 4096;
const VM0: u32 = 0x1001_0000;
const VM_SLOT: u32 = 256 * 1024;
const BC_SLOT: u32 = 256 * 1024;

/// The bytecode-only layout of the seed, after the boot stage's 64 KiB.
pub fn config() -> AgentConfig {
    let slot = |kind, index, addr, size| SlotDesc {
        kind,
        index,
        addr,
        size,
    };
    let bc0 = VM0 + VM_SLOT;
    let bc1 = bc0 + BC_SLOT;
    let record = bc1 + BC_SLOT;
    let mut c = AgentConfig::with_slots(
        FLASH_BASE,
        &[
            slot(SlotKind::Vm, 0, VM0, VM_SLOT),
            slot(SlotKind::Bytecode, 0, bc0, BC_SLOT),
            slot(SlotKind::Bytecode, 1, bc1, BC_SLOT),
        ],
        record,
        2 * SECTOR,
    )
    .named("rp2040-pico");
    // CDC-ACM has no line rate: nothing to negotiate.
    c.max_baud = fota_protocol::DEFAULT_BAUD;
    c.max_in_flight = MAX_IN_FLIGHT;
    // The pipe's bytes (Info tag 8): the host counts its window in bytes.
    c.rx_window = RX_WINDOW as u32;
    c
}

/// Requests the host may have in flight: Info announces it, the receive pipe holds it.
pub const MAX_IN_FLIGHT: u8 = 5;

// ---- USB CDC-ACM: an interrupt executor moves bytes between USB and two pipes -----------

/// The window Info announces (max_in_flight frames of the largest request). When it is
/// full the USB task stops reading packets and USB itself holds the host back.
const RX_WINDOW: usize = fota_agent::rx_queue_bytes(MAX_IN_FLIGHT);
static RX: Pipe<CriticalSectionRawMutex, RX_WINDOW> = Pipe::new();
static TX: Pipe<CriticalSectionRawMutex, 512> = Pipe::new();
/// A host has the port open (DTR): otherwise output is dropped, as a UART with nobody
/// listening would.
static CONNECTED: AtomicBool = AtomicBool::new(false);

static USB_EXECUTOR: InterruptExecutor = InterruptExecutor::new();

#[interrupt]
unsafe fn SWI_IRQ_1() {
    // SAFETY: the executor was started on this interrupt.
    unsafe { USB_EXECUTOR.on_interrupt() }
}

bind_interrupts!(struct Irqs {
    USBCTRL_IRQ => embassy_rp::usb::InterruptHandler<USB>;
});

type UsbDriver = Driver<'static, USB>;

#[embassy_executor::task]
async fn usb_device(mut device: UsbDevice<'static, UsbDriver>) -> ! {
    device.run().await
}

#[embassy_executor::task]
async fn usb_serial(mut tx: Sender<'static, UsbDriver>, mut rx: Receiver<'static, UsbDriver>) -> ! {
    loop {
        rx.wait_connection().await;
        CONNECTED.store(true, Ordering::Release);
        let receive = async {
            let mut buf = [0u8; 64];
            while let Ok(n) = rx.read_packet(&mut buf).await {
                RX.write_all(&buf[..n]).await;
            }
        };
        let send = async {
            let mut buf = [0u8; 64];
            loop {
                let n = TX.read(&mut buf).await;
                if tx.write_packet(&buf[..n]).await.is_err() {
                    break;
                }
                if n == buf.len() && TX.is_empty() && tx.write_packet(&[]).await.is_err() {
                    // A full packet ends a transfer only with a zero-length one after it.
                    break;
                }
            }
        };
        embassy_futures::select::select(receive, send).await;
        CONNECTED.store(false, Ordering::Release);
        TX.clear();
    }
}

/// Build the USB stack inside the interrupt executor: its parts are not `Send`, so
/// they are made where they run, by a task that only carries the peripheral there.
#[embassy_executor::task]
async fn usb_start(usb: embassy_rp::Peri<'static, USB>) {
    // SAFETY: awaited inside a task of the embassy interrupt executor, the case its
    // documentation names.
    let spawner = unsafe { embassy_executor::Spawner::for_current_executor() }.await;
    let driver = Driver::new(usb, Irqs);
    let mut config = embassy_usb::Config::new(0x2e8a, 0x000a);
    config.manufacturer = Some("FOTA");
    config.product = Some("FOTA agent (RP2040)");
    config.max_power = 100;
    config.max_packet_size_0 = 64;
    static CONFIG_DESC: StaticCell<[u8; 256]> = StaticCell::new();
    static BOS_DESC: StaticCell<[u8; 256]> = StaticCell::new();
    static CONTROL: StaticCell<[u8; 64]> = StaticCell::new();
    static STATE: StaticCell<State> = StaticCell::new();
    let mut builder = embassy_usb::Builder::new(
        driver,
        config,
        CONFIG_DESC.init([0; 256]),
        BOS_DESC.init([0; 256]),
        &mut [],
        CONTROL.init([0; 64]),
    );
    let class = CdcAcmClass::new(&mut builder, STATE.init(State::new()), 64);
    let device = builder.build();
    let (tx, rx) = class.split();
    // Spawned once each: their pools have room.
    if let Ok(t) = usb_device(device) {
        spawner.spawn(t);
    }
    if let Ok(t) = usb_serial(tx, rx) {
        spawner.spawn(t);
    }
}

fn start_usb(usb: embassy_rp::Peri<'static, USB>) {
    interrupt::SWI_IRQ_1.set_priority(Priority::P2);
    let spawner = USB_EXECUTOR.start(interrupt::SWI_IRQ_1);
    if let Ok(t) = usb_start(usb) {
        spawner.spawn(t);
    }
}

// ---- the board -------------------------------------------------------------------------

/// Watchdog scratch registers used for the retained words (4..7 are left to others).
const SCRATCH_MAGIC: usize = 0;
const SCRATCH_CAUSE: usize = 1;
const SCRATCH_STREAK: usize = 2;
const SCRATCH_HANDOFF: usize = 3;
/// A VM to start at the next boot (see `start_vm`): magic in 4, address in 5.
const SCRATCH_JUMP: usize = 4;
const SCRATCH_JUMP_ADDR: usize = 5;
const MAGIC: u32 = 0x5245_544E;
const JUMP_MAGIC: u32 = 0x4A55_4D50;

const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(2);

/// The agent's unit hook: reload the watchdog by its register (a plain function cannot
/// reach the `Watchdog`). `LOAD` counts microsecond ticks, twice per tick on the RP2040
/// (erratum RP2040-E1, which embassy-rp's `feed` also allows for).
fn kick() {
    const WATCHDOG_LOAD: usize = 0x4005_8000 + 0x04;
    let ticks = WATCHDOG_TIMEOUT.as_micros() as u32 * 2;
    // SAFETY: the watchdog's LOAD register; writing it only reloads the counter.
    unsafe { core::ptr::write_volatile(WATCHDOG_LOAD as *mut u32, ticks) };
}

// ---- the agent link's state: in .data, built by the startup code ---------------------

struct LinkCell(core::cell::UnsafeCell<LinkState>);

// SAFETY: handed out once, to the main loop (`LINK_TAKEN`); no interrupt touches it.
unsafe impl Sync for LinkCell {}

static LINK_STATE: LinkCell = LinkCell(core::cell::UnsafeCell::new(LinkState::new()));
/// Only the main loop asks (no compare-and-swap on thumbv6m, none needed).
static LINK_TAKEN: AtomicBool = AtomicBool::new(false);

/// The Pico.
pub struct Pico {
    flash: Option<Flash<'static, FLASH, Blocking, FLASH_SIZE>>,
    watchdog: Watchdog,
    serving: bool,
}

impl Pico {
    /// Set the chip up; a VM also starts USB and the watchdog.
    pub fn init(vm: bool) -> Pico {
        let p = embassy_rp::init(Default::default());
        let mut watchdog = Watchdog::new(p.WATCHDOG);
        if vm {
            start_usb(p.USB);
            watchdog.start(WATCHDOG_TIMEOUT);
        }
        Pico {
            flash: Some(Flash::new_blocking(p.FLASH)),
            watchdog,
            serving: vm,
        }
    }

    /// A VM that an earlier image asked to start (see [`Board::start_vm`]), if its
    /// vector table still checks out. The request is consumed either way.
    pub fn take_jump(&mut self, config: &AgentConfig) -> Option<u32> {
        if self.watchdog.get_scratch(SCRATCH_JUMP) != JUMP_MAGIC {
            return None;
        }
        self.watchdog.set_scratch(SCRATCH_JUMP, 0);
        let addr = self.watchdog.get_scratch(SCRATCH_JUMP_ADDR);
        let index = config.slot_at(addr).map(|s| s.index)?;
        let ram = self.ram();
        let flash = self.flash.as_mut()?;
        fota_firmware::boot::check_vm(flash, config, index, ram).ok()
    }

    /// The address this image's vector table was linked at.
    pub fn own_address() -> u32 {
        unsafe extern "C" {
            static __vector_table: u32;
        }
        core::ptr::addr_of!(__vector_table) as u32
    }

    /// Jump to the vector table at `addr` from a fresh reset (only the boot stage does
    /// this, before it set anything up).
    pub fn jump(addr: u32) -> ! {
        // SAFETY: only the boot stage calls it, with no USB and no task running; every
        // interrupt is switched off and cleared first; `addr` holds a checked table.
        unsafe {
            cortex_m::interrupt::disable();
            let nvic = &*cortex_m::peripheral::NVIC::PTR;
            nvic.icer[0].write(u32::MAX);
            nvic.icpr[0].write(u32::MAX);
            (*cortex_m::peripheral::SYST::PTR).csr.write(0);
            (*cortex_m::peripheral::SCB::PTR).vtor.write(addr);
            cortex_m::asm::dsb();
            cortex_m::asm::isb();
            cortex_m::interrupt::enable();
            cortex_m::asm::bootload(addr as *const u32)
        }
    }
}

impl Board for Pico {
    type Flash = Flash<'static, FLASH, Blocking, FLASH_SIZE>;

    fn read(&mut self, buf: &mut [u8]) -> usize {
        RX.try_read(buf).unwrap_or(0)
    }

    fn write(&mut self, mut bytes: &[u8]) {
        let start = Instant::now();
        while !bytes.is_empty() && CONNECTED.load(Ordering::Acquire) {
            match TX.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                // The USB task drains it from its interrupt; a host that stopped reading
                // for a second loses the rest, like a UART nobody listens to.
                Err(_) if start.elapsed() > Duration::from_secs(1) => break,
                Err(_) => {}
            }
        }
    }

    fn flush(&mut self) {
        let start = Instant::now();
        while !TX.is_empty()
            && CONNECTED.load(Ordering::Acquire)
            && start.elapsed() < Duration::from_secs(1)
        {}
    }

    fn set_baud(&mut self, _baud: u32) {
        // CDC-ACM: the rate is a number the host sets, not a clock.
    }

    fn now_ms(&mut self) -> u32 {
        Instant::now().as_millis() as u32
    }

    fn kick_watchdog(&mut self) {
        if self.serving {
            self.watchdog.feed(WATCHDOG_TIMEOUT);
        }
    }

    fn idle(&mut self, _ms: u32) {
        // No periodic tick here (embassy-time only raises alarms it was asked for):
        // return and let the main loop poll again.
        cortex_m::asm::nop();
    }

    fn retained(&mut self) -> Retained {
        let w = &mut self.watchdog;
        if w.get_scratch(SCRATCH_MAGIC) != MAGIC {
            return Retained::default();
        }
        // The chip knows whether its watchdog fired; that outranks what was written.
        let cause = match w.reset_reason() {
            Some(ResetReason::TimedOut) => ResetCause::Watchdog as u32,
            _ => w.get_scratch(SCRATCH_CAUSE),
        };
        Retained {
            cause,
            watchdog_streak: w.get_scratch(SCRATCH_STREAK),
            handoff: w.get_scratch(SCRATCH_HANDOFF),
        }
    }

    fn set_retained(&mut self, r: Retained) {
        let w = &mut self.watchdog;
        w.set_scratch(SCRATCH_CAUSE, r.cause);
        w.set_scratch(SCRATCH_STREAK, r.watchdog_streak);
        w.set_scratch(SCRATCH_HANDOFF, r.handoff);
        w.set_scratch(SCRATCH_MAGIC, MAGIC);
    }

    fn reset(&mut self, cause: ResetCause) -> ! {
        let r = self.retained();
        self.set_retained(Retained {
            cause: cause as u32,
            ..r
        });
        // A watchdog-forced reset keeps the scratch registers.
        self.watchdog.trigger_reset();
        loop {
            cortex_m::asm::nop();
        }
    }

    fn start_vm(&mut self, addr: u32) -> ! {
        if !self.serving {
            // The boot stage: nothing runs yet, jump at once.
            Pico::jump(addr);
        }
        // USB, clocks and the executor are running: rather than tear them down by hand,
        // reset and let the boot stage jump before it sets anything up.
        self.watchdog.set_scratch(SCRATCH_JUMP_ADDR, addr);
        self.watchdog.set_scratch(SCRATCH_JUMP, JUMP_MAGIC);
        self.watchdog.trigger_reset();
        loop {
            cortex_m::asm::nop();
        }
    }

    fn hang(&mut self) -> ! {
        loop {
            cortex_m::asm::nop();
        }
    }

    fn ram(&self) -> (u32, u32) {
        (0x2000_0000, 0x2004_2000)
    }

    fn take_flash(&mut self) -> Option<Self::Flash> {
        self.flash.take()
    }

    fn unit_hook(&self) -> Option<fn()> {
        self.serving.then_some(kick as fn())
    }

    fn link_state(&mut self) -> Option<&'static mut LinkState> {
        if LINK_TAKEN.load(Ordering::Acquire) {
            return None;
        }
        LINK_TAKEN.store(true, Ordering::Release);
        // SAFETY: handed out once (the flag above), to the main loop only.
        Some(unsafe { &mut *LINK_STATE.0.get() })
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The watchdog (armed in a VM) resets.
    loop {
        cortex_m::asm::nop();
    }
}
