//! Where things are: the flash, the slots of both layouts, the UART rates, and the
//! options `fota qemu` leaves past the flash.

use fota_agent::{AgentConfig, BAUD_RATES, UartClock};

use super::regs::{SYSCLK_HZ, rd};

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
pub(crate) const UART_RATES: ([u32; fota_protocol::MAX_BAUD_RATES], usize) =
    UART_CLOCK.rate_list(&BAUD_RATES);

/// The agent's configuration for a layout. VM slot 1 of the VM layout starts at
/// 0x2106_0000 (build.rs links `vm-vm-slot1` there).
pub fn config(layout: Layout) -> AgentConfig {
    let c = match layout {
        Layout::Bytecode => AgentConfig::bytecode_only(FLASH_BASE, VM_SLOT, BC_SLOT, SECTOR),
        Layout::Vm => AgentConfig::vm_and_bytecode(FLASH_BASE, VM_SLOT, BC_SLOT, SECTOR),
    };
    let mut c = c.named("qemu-mps2-an386");
    c.max_in_flight = MAX_IN_FLIGHT;
    // The ring's bytes (Info tag 8): the host counts its window in bytes, so short
    // requests (erases, checksums) do not take a whole frame's room.
    c.rx_window = super::uart::RX_RING as u32;
    // Only the rates the divider makes within 1.5 %: 1.5 and 2 Mbaud are not among them.
    c.baud_rates = heapless::Vec::from_slice(&UART_RATES.0[..UART_RATES.1]).unwrap_or_default();
    c.max_baud = 2_000_000;
    // PSRAM erases at once unless a slow sector is modelled; say 1 ms then.
    c.sector_erase_ms = erase_ms().max(1);
    // A firmware that hangs before its accept() is reset by the watchdog: the NMI after
    // its period, the reset after as much again; the trial ends there.
    c.confirm_ms = super::system::watchdog_secs().saturating_mul(2_000);
    c
}

// ---- options `fota qemu` leaves in the flash file, past the flash --------------------

pub(crate) const OPTIONS: usize = 0x21F0_0100;
pub(crate) const OPTIONS_MAGIC: u32 = 0x4F50_5453; // "STPO"

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
