//! Verifies a signed 256 KiB image as the agent would (256-byte reads through a
//! `SlotReader`, one bounded step at a time) and prints what it cost: Thumb-2
//! instructions in total and for the longest step (QEMU `-icount shift=0` makes its
//! 25 MHz timer tick once per 40 instructions), the stack the steps used, and the
//! verifier's own size.
#![no_std]
#![no_main]

#[cfg(not(feature = "baseline"))]
use core::convert::Infallible;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
#[cfg(not(feature = "baseline"))]
use fota_image::{Kind, Policy, Slot, SlotReader, Step, TrustedKey, Verifier, Version};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[cfg(not(feature = "baseline"))]
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/image.bin"));
#[cfg(not(feature = "baseline"))]
static PUBLIC: &[u8; 32] = include_bytes!(concat!(env!("OUT_DIR"), "/public.bin"));

/// CMSDK timer 0: a 32-bit down-counter at the 25 MHz system clock.
const TIMER0: usize = 0x4000_0000;

fn timer_start() {
    // SAFETY: the timer's registers exist on mps2-an386; nothing else uses them.
    unsafe {
        core::ptr::write_volatile((TIMER0 + 0x8) as *mut u32, u32::MAX); // RELOAD
        core::ptr::write_volatile((TIMER0 + 0x4) as *mut u32, u32::MAX); // VALUE
        core::ptr::write_volatile(TIMER0 as *mut u32, 1); // CTRL: enable
    }
}

/// Instructions since the timer started (40 per tick under `-icount shift=0`).
fn instructions() -> u64 {
    // SAFETY: as above.
    let value = unsafe { core::ptr::read_volatile((TIMER0 + 0x4) as *const u32) };
    u64::from(u32::MAX - value) * 40
}

const PAINT: u32 = 0x5AA5_C33C;
const PAINTED: usize = 24 * 1024;

/// Fills the stack below the current frame with a pattern.
#[inline(never)]
fn paint() -> usize {
    let sp = cortex_m::register::msp::read() as usize;
    let low = sp - PAINTED;
    for a in (low..sp - 256).step_by(4) {
        // SAFETY: RAM below the current stack pointer, unused.
        unsafe { core::ptr::write_volatile(a as *mut u32, PAINT) };
    }
    sp
}

/// Bytes of stack used below `sp` since `paint`.
fn stack_used(sp: usize) -> usize {
    let low = sp - PAINTED;
    let mut a = low;
    // SAFETY: the painted range.
    while a < sp - 256 && unsafe { core::ptr::read_volatile(a as *const u32) } == PAINT {
        a += 4;
    }
    sp - a
}

#[cfg(not(feature = "baseline"))]
struct Memory;

#[cfg(not(feature = "baseline"))]
impl SlotReader for Memory {
    type Error = Infallible;
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Infallible> {
        // As a memory-mapped flash read: a copy, erased bytes past the image.
        let image = core::hint::black_box(IMAGE);
        let from = (offset as usize).min(image.len());
        let n = buf.len().min(image.len() - from);
        buf[..n].copy_from_slice(&image[from..from + n]);
        buf[n..].fill(0xFF);
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    timer_start();
    let sp = paint();
    let t0 = instructions();
    let (steps, longest, ok, verifier_size) = run();
    let total = instructions() - t0;
    let stack = stack_used(sp);
    hprintln!(
        "verified={} total_instructions={} steps={} longest_step_instructions={} stack_bytes={} verifier_bytes={} buffer_bytes=256",
        ok,
        total,
        steps,
        longest,
        stack,
        verifier_size
    );
    debug::exit(debug::EXIT_SUCCESS);
    loop {}
}

#[cfg(not(feature = "baseline"))]
#[inline(never)]
fn run() -> (u32, u64, bool, usize) {
    let trusted = [TrustedKey::new(*PUBLIC)];
    let policy = Policy {
        trusted: &trusted,
        require_signature: true,
        minimum_version: Version::new(1, 0, 0),
    };
    let slot = Slot {
        kind: Kind::Bytecode,
        index: 0,
        addr: 0x0001_0000,
        size: 260 * 1024,
    };
    let mut buf = [0u8; 256];
    let mut v = Verifier::new(slot);
    let (mut steps, mut longest) = (0u32, 0u64);
    loop {
        let t = instructions();
        let r = v.step(&mut Memory, &mut buf, &policy);
        longest = longest.max(instructions() - t);
        steps += 1;
        match r {
            Ok(Step::Pending(_)) => {}
            Ok(Step::Done(_)) => return (steps, longest, true, core::mem::size_of::<Verifier>()),
            Err(_) => return (steps, longest, false, core::mem::size_of::<Verifier>()),
        }
    }
}

#[cfg(feature = "baseline")]
#[inline(never)]
fn run() -> (u32, u64, bool, usize) {
    (core::hint::black_box(0), 0, false, 0)
}
