//! How a simulated device is built: its flash part, layout and timings.

use fota_agent::{AgentConfig, ImagePolicy};
use fota_protocol::Layout as _;
use fota_protocol::{SectorRun, SlotDesc, SlotKind};

use crate::flash::{FlashTiming, SimFlash};
use crate::line::Faults;

/// The flash of the simulated device: 4-byte writes, 4 KiB sectors.
pub type DeviceFlash = SimFlash<4, 4096>;

/// Sector size of the simulated flash.
pub const SECTOR: u32 = 4096;

/// The flash part the simulated device has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlashKind {
    /// A Winbond W25Q128JV SPI NOR flash: 4 KiB sectors, 45 ms to erase one; the slots
    /// are [`DeviceConfig::vm_slot_size`] and [`DeviceConfig::bc_slot_size`] bytes.
    #[default]
    W25q128jv,
    /// An STM32F4's 1 MiB internal flash: four 16 KiB sectors, one of 64 KiB and seven of
    /// 128 KiB, erased in up to 0.5, 1.1 and 2 s (the data sheet's maxima, x32
    /// parallelism), words programmed in 16 us. Its layout is fixed (see
    /// [`DeviceConfig::stm32f4`]).
    Stm32f4,
}

/// The STM32F4's sectors: (run, erase time in ns).
pub const STM32F4_SECTORS: [(SectorRun, u64); 3] = [
    (
        SectorRun {
            addr: 0,
            size: 16 * 1024,
            count: 4,
        },
        500_000_000,
    ),
    (
        SectorRun {
            addr: 0x1_0000,
            size: 64 * 1024,
            count: 1,
        },
        1_100_000_000,
    ),
    (
        SectorRun {
            addr: 0x2_0000,
            size: 128 * 1024,
            count: 7,
        },
        2_000_000_000,
    ),
];

/// Which of the seed's two layouts (the protocol crate's, shared with the web app and
/// the command line).
pub use fota_protocol::LayoutKind;

/// The agent's MD5 on a Cortex-M4 at 64 MHz (a micro:bit v2's nRF52833), per byte hashed:
/// about 14.3 cycles a byte, i.e. 224 ns (4.5 MB/s). Derived, not measured, from the
/// md-5 crate's compress function as built for thumbv7em-none-eabihf (the QEMU board's
/// release profile: opt-level "s", LTO), counted by the Cortex-M4 Technical Reference
/// Manual's timings (one cycle an ALU instruction, two a load or store and one more for
/// each one pipelined behind it, three an LDRD/STRD or a taken branch). Per 64-byte
/// block: the 64 unrolled steps, 546 ALU instructions (127 of them MOVW/MOVT of the
/// constants), 53 loads and 20 stores (the message words and spilled registers, 6
/// pipelined) and the loop's branch, 689 cycles; zeroing the 16-word message array
/// (`__aeabi_memclr4`, 80 cycles with its call) and copying the block into it (a loop of
/// 16 loads and stores, 130 cycles): 899 cycles. Each call (one per 256-byte read of the
/// flash, 4 blocks) adds about 70 cycles of prologue, epilogue and buffer bookkeeping:
/// 916 cycles a block. The agent's earlier hand-written MD5, its 64 steps in a loop,
/// took 43 cycles a byte (672 ns), three times as long, for 1.3 KB less flash. (QEMU's
/// emulated Cortex-M4 keeps no real time, so it cannot measure this.)
pub const CORTEX_M4_MD5_NS_PER_BYTE: u64 = 224;

/// How the simulated device is built.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// The layout.
    pub layout: LayoutKind,
    /// Size of each VM slot (a multiple of [`SECTOR`]).
    pub vm_slot_size: u32,
    /// Size of each bytecode slot (a multiple of [`SECTOR`]).
    pub bc_slot_size: u32,
    /// Baud rate after reset (both ends start here).
    pub baud: u32,
    /// One-way latency of the line (a USB-serial adapter adds 1 to 16 ms).
    pub latency_ns: u64,
    /// Fastest rate the agent may switch to.
    pub max_baud: u32,
    /// Requests the agent takes in flight; the UART receive buffer holds this many frames.
    pub max_in_flight: u8,
    /// False for a firmware without FOTA support.
    pub fota_supported: bool,
    /// Flash timing.
    pub timing: FlashTiming,
    /// Time from reset to the agent answering.
    pub boot_ns: u64,
    /// Time a healthy firmware takes to pass its self-test and accept.
    pub accept_after_ns: u64,
    /// Time after which the watchdog resets a hung (faulty) firmware.
    pub watchdog_ns: u64,
    /// Faults on the host-to-device direction.
    pub faults_to_device: Faults,
    /// Faults on the device-to-host direction.
    pub faults_to_host: Faults,
    /// The VM slot the part always starts, if any (the boot stage, never erased or
    /// written).
    pub boot_stage: Option<u8>,
    /// ECC flash: a word a power cut tore reads as an error (see [`SimFlash::with_ecc`]).
    pub ecc: bool,
    /// The flash part (and with it the layout's sector sizes).
    pub flash: FlashKind,
    /// Bytes of the UART receive buffer, if not the window the agent announces
    /// (`max_in_flight` x `RX_FRAME`): to see what a smaller one loses.
    pub rx_buffer_bytes: Option<usize>,
    /// Bytes of the receive queue, announced by `Info` tag 8 (at least
    /// [`fota_agent::RX_FRAME`]), if not [`fota_agent::rx_queue_bytes`]`(max_in_flight)`:
    /// a queue of any size, to put the host's window to the byte.
    pub rx_queue_bytes: Option<usize>,
    /// Whether `Info` declares the worst-case sector erase time (tag 2). False models an
    /// agent that does not, whose host cannot size its timeouts from it.
    pub announce_erase_time: bool,
    /// Whether `Info` declares the receive buffer in bytes (tag 8), so that a host keeps
    /// as many requests in flight as their frames fit in it. False models an agent that
    /// does not: its host keeps to `max_in_flight` requests.
    pub announce_rx_window: bool,
    /// Whether the agent erases whole blocks where the part offers block erases
    /// ([`FlashTiming::block_erases`]) and declares them (`Info` tag 10). False models an
    /// agent whose flash driver erases sectors only (the flash itself is the same).
    pub use_block_erases: bool,
    /// What `Info` declares of the block erases (tag 10) and the agent uses, if not the
    /// part's own: a wrong or hostile declaration, to see what a host makes of it (the
    /// flash erases in its own time whatever is declared).
    pub declared_block_erases: Option<&'static [fota_protocol::BlockErase]>,
    /// CPU time of the agent's MD5, per byte hashed (`ChecksumSlot`), on top of reading
    /// the flash: [`CORTEX_M4_MD5_NS_PER_BYTE`] by default.
    pub md5_ns_per_byte: u64,
    /// What the device requires of images (default: [`ImagePolicy::OPEN`], raw images
    /// taken; [`ImagePolicy::signed`] models a device that runs only signed images).
    pub images: ImagePolicy,
    /// Whether the flash driver erases in the background with the part's erase suspend
    /// (the W25Q128JV's 0x75/0x7A, [`crate::flash::background`]) and the agent says so
    /// (`Info` tag 11). On by default for the W25Q128JV; off models a driver that waits
    /// for each erase (and the STM32F4's internal flash, which has no suspend).
    pub erase_suspend: bool,
}

impl DeviceConfig {
    /// A device of `layout` with 64 KiB VM slots and 256 KiB bytecode slots, at 115200
    /// baud with 1 ms latency and the timing of a W25Q128JV.
    pub fn new(layout: LayoutKind) -> DeviceConfig {
        DeviceConfig {
            layout,
            vm_slot_size: 64 * 1024,
            bc_slot_size: 256 * 1024,
            baud: fota_protocol::DEFAULT_BAUD,
            latency_ns: 1_000_000,
            max_baud: 921_600,
            max_in_flight: 5,
            fota_supported: true,
            timing: FlashTiming::W25Q128JV,
            boot_ns: 200_000_000,
            accept_after_ns: 300_000_000,
            watchdog_ns: 1_500_000_000,
            faults_to_device: Faults::NONE,
            faults_to_host: Faults::NONE,
            boot_stage: None,
            ecc: false,
            flash: FlashKind::W25q128jv,
            rx_buffer_bytes: None,
            rx_queue_bytes: None,
            announce_erase_time: true,
            announce_rx_window: true,
            use_block_erases: true,
            declared_block_erases: None,
            md5_ns_per_byte: CORTEX_M4_MD5_NS_PER_BYTE,
            images: ImagePolicy::OPEN,
            erase_suspend: true,
        }
    }

    /// A device of `layout` on an STM32F4's internal flash, whose sectors are 16, 64 and
    /// 128 KiB: VM 0 in sectors 0-1 (32 KiB), the record in sectors 2-3 (two 16 KiB
    /// sectors), VM 1 in sector 4 (64 KiB, VM layout only), bytecode 0 in sectors 5-6 and
    /// bytecode 1 in sectors 7-8 (256 KiB each). Erasing a bytecode sector takes 2 s.
    pub fn stm32f4(layout: LayoutKind) -> DeviceConfig {
        DeviceConfig::new(layout).with_flash(FlashKind::Stm32f4)
    }

    /// The same device on another flash part ([`DeviceConfig::stm32f4`] for
    /// [`FlashKind::Stm32f4`]).
    pub fn with_flash(self, flash: FlashKind) -> DeviceConfig {
        match flash {
            FlashKind::W25q128jv => DeviceConfig {
                flash,
                timing: FlashTiming::W25Q128JV,
                erase_suspend: true,
                ..self
            },
            FlashKind::Stm32f4 => DeviceConfig {
                flash,
                timing: FlashTiming::STM32F4,
                erase_suspend: false,
                ..self
            },
        }
    }

    /// The runs of sectors larger than [`SECTOR`], with their erase times (ns).
    pub fn sector_runs(&self) -> &'static [(SectorRun, u64)] {
        match self.flash {
            FlashKind::W25q128jv => &[],
            FlashKind::Stm32f4 => &STM32F4_SECTORS,
        }
    }

    /// The agent's configuration for this device.
    pub fn agent_config(&self) -> AgentConfig {
        let mut cfg = match (self.flash, self.layout) {
            (FlashKind::W25q128jv, LayoutKind::BytecodeOnly) => {
                AgentConfig::bytecode_only(0, self.vm_slot_size, self.bc_slot_size, SECTOR)
            }
            (FlashKind::W25q128jv, LayoutKind::VmAndBytecode) => {
                AgentConfig::vm_and_bytecode(0, self.vm_slot_size, self.bc_slot_size, SECTOR)
            }
            (FlashKind::Stm32f4, layout) => {
                let slot = |kind, index, addr, size| SlotDesc {
                    kind,
                    index,
                    addr,
                    size,
                };
                let mut slots = vec![slot(SlotKind::Vm, 0, 0, 0x8000)];
                if layout == LayoutKind::VmAndBytecode {
                    slots.push(slot(SlotKind::Vm, 1, 0x1_0000, 0x1_0000));
                }
                slots.push(slot(SlotKind::Bytecode, 0, 0x2_0000, 0x4_0000));
                slots.push(slot(SlotKind::Bytecode, 1, 0x6_0000, 0x4_0000));
                let mut cfg = AgentConfig::with_slots(0, &slots, 0x8000, 0x8000);
                for (run, _) in STM32F4_SECTORS {
                    // Three runs; MAX_SECTOR_RUNS is four.
                    let _ = cfg.sectors.push(run);
                }
                cfg
            }
        }
        .named("fota-sim");
        cfg.max_in_flight = self.max_in_flight;
        cfg.max_baud = self.max_baud;
        cfg.base_baud = self.baud;
        cfg.boot_stage = self.boot_stage;
        cfg.images = self.images;
        // The modelled part's worst case: its slowest sector.
        let slowest = self
            .sector_runs()
            .iter()
            .map(|r| r.1)
            .fold(self.timing.sector_erase_ns, u64::max);
        if self.announce_rx_window {
            cfg.rx_window = u32::try_from(self.rx_window()).unwrap_or(u32::MAX);
        }
        if self.announce_erase_time {
            cfg.sector_erase_ms = u32::try_from(slowest.div_ceil(1_000_000)).unwrap_or(u32::MAX);
        }
        if let Some(declared) = self.declared_block_erases {
            cfg.block_erases = declared.iter().copied().take(2).collect();
        } else if self.use_block_erases {
            for &(size, ns) in self.timing.block_erases {
                let ms = u32::try_from(ns.div_ceil(1_000_000)).unwrap_or(u32::MAX);
                // Two at most on the modelled parts (MAX_BLOCK_ERASES).
                let _ = cfg
                    .block_erases
                    .push(fota_protocol::BlockErase { size, ms });
            }
        }
        // A firmware on trial that hangs before its accept() is reset by the watchdog,
        // which reverts it: the trial's deadline.
        cfg.confirm_ms = u32::try_from(self.watchdog_ns.div_ceil(1_000_000)).unwrap_or(u32::MAX);
        if !self.fota_supported {
            cfg = cfg.unsupported();
        }
        cfg
    }

    /// Bytes of flash the layout needs (the whole part, where its sectors are mapped).
    pub fn flash_size(&self) -> usize {
        let cfg = self.agent_config();
        let runs_end = self
            .sector_runs()
            .iter()
            .map(|r| r.0.end())
            .max()
            .unwrap_or(0);
        let slots_end = cfg
            .slots
            .iter()
            .map(|s| u64::from(s.addr) + u64::from(s.size))
            .max()
            .unwrap_or(0);
        let record_end = u64::from(cfg.record_addr) + u64::from(cfg.record_size);
        runs_end.max(slots_end).max(record_end) as usize
    }

    /// The contents of an erased flash for this layout, in whole sectors, with `images`
    /// factory-programmed at the start of their slots `(kind, index, bytes)`; an image
    /// longer than its slot is cut, one for a slot the layout lacks is left out.
    pub fn flash_with(&self, images: &[(SlotKind, u32, &[u8])]) -> Vec<u8> {
        let agent = self.agent_config();
        let mut bytes = vec![0xFF; self.flash_size().next_multiple_of(SECTOR as usize)];
        for &(kind, index, image) in images {
            let Some(slot) = agent.slot(kind, index) else {
                continue;
            };
            let at = slot.addr as usize;
            let len = image.len().min(slot.size as usize);
            if let Some(dst) = bytes.get_mut(at..at + len) {
                dst.copy_from_slice(&image[..len]);
            }
        }
        bytes
    }

    /// Bytes of the device's UART receive buffer: the window the agent announces
    /// (`max_in_flight` frames of `RX_FRAME` bytes) unless [`DeviceConfig::rx_buffer_bytes`]
    /// says otherwise.
    pub fn rx_buffer(&self) -> usize {
        self.rx_buffer_bytes.unwrap_or(self.rx_window())
    }

    /// The receive queue of the device's platform: `max_in_flight` frames of `RX_FRAME`
    /// bytes and room for the short requests between them
    /// ([`fota_agent::rx_queue_bytes`]) unless [`DeviceConfig::rx_queue_bytes`] says
    /// otherwise, announced in bytes by `Info` tag 8 (where
    /// [`DeviceConfig::announce_rx_window`]).
    pub fn rx_window(&self) -> usize {
        self.rx_queue_bytes
            .unwrap_or(fota_agent::rx_queue_bytes(self.max_in_flight))
    }
}
