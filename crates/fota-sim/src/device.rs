//! A whole simulated device: the agent on a [`SimFlash`], behind a UART with a bounded
//! receive buffer, booting through the boot decision and running a simulated firmware.
//!
//! The firmware looks at the images it booted ([`crate::images`]): a healthy one passes
//! its self-test and calls `accept()` shortly after boot; a faulty one hangs, and the
//! watchdog resets the device, so the boot decision brings back the last working
//! configuration, as on a real part.
//!
//! Everything runs in simulated time: the host side calls [`SimDevice::host_send`],
//! [`SimDevice::run_until`] and [`SimDevice::host_take`]; [`SimDevice::next_event`]
//! tells when something happens next so a host in virtual time can jump there.

use fota_protocol::Layout as _;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use fota_agent::{Action, AgentConfig, AgentLink, Boot, ImagePolicy};
use fota_protocol::{Record, SectorRun, SlotDesc, SlotKind};

use crate::flash::{FlashError, FlashTiming, SimFlash};
use crate::images::{self, ImageHealth};
use crate::link::{Faults, Line};

/// The flash of the simulated device: 4-byte writes, 4 KiB sectors.
pub type DeviceFlash = SimFlash<4, 4096>;

/// Sector size of the simulated flash.
pub const SECTOR: u32 = 4096;

/// Processing time of one frame by the device's CPU, besides flash time.
const CPU_FRAME_NS: u64 = 20_000;

/// Period of the simulated firmware's own work: its main loop ticks this often while the
/// agent leaves it the CPU.
pub const TICK_NS: u64 = 1_000_000;

/// How often the firmware gives the link its clock while the line runs at a negotiated
/// rate.
pub const LINK_TICK_NS: u64 = 10_000_000;

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
    /// Whether `Info` declares the worst-case sector erase time (tag 2). False models an
    /// agent that does not, whose host cannot size its timeouts from it.
    pub announce_erase_time: bool,
    /// What the device requires of images (default: [`ImagePolicy::OPEN`], raw images
    /// taken; [`ImagePolicy::signed`] models a device that runs only signed images).
    pub images: ImagePolicy,
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
            announce_erase_time: true,
            images: ImagePolicy::OPEN,
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
                ..self
            },
            FlashKind::Stm32f4 => DeviceConfig {
                flash,
                timing: FlashTiming::STM32F4,
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
        if self.announce_erase_time {
            cfg.sector_erase_ms = u32::try_from(slowest.div_ceil(1_000_000)).unwrap_or(u32::MAX);
        }
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
        self.rx_buffer_bytes
            .unwrap_or(usize::from(self.max_in_flight.max(1)) * fota_agent::RX_FRAME)
    }
}

/// A [`SimFlash`] that reports its busy time to the device as each operation ends, so
/// that replies sent during a long erase (progress) leave at the right time.
#[derive(Debug)]
pub struct TimedFlash {
    inner: DeviceFlash,
    busy: Arc<AtomicU64>,
}

impl TimedFlash {
    fn account(&mut self) {
        let ns = self.inner.take_busy_ns();
        self.busy.fetch_add(ns, Ordering::Relaxed);
    }

    /// The flash model.
    pub fn sim(&self) -> &DeviceFlash {
        &self.inner
    }

    /// The flash model, to arm a power cut.
    pub fn sim_mut(&mut self) -> &mut DeviceFlash {
        &mut self.inner
    }
}

impl ErrorType for TimedFlash {
    type Error = FlashError;
}

impl ReadNorFlash for TimedFlash {
    const READ_SIZE: usize = DeviceFlash::READ_SIZE;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let r = self.inner.read(offset, bytes);
        self.account();
        r
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl NorFlash for TimedFlash {
    const WRITE_SIZE: usize = DeviceFlash::WRITE_SIZE;
    const ERASE_SIZE: usize = DeviceFlash::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let r = self.inner.erase(from, to);
        self.account();
        r
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let r = self.inner.write(offset, bytes);
        self.account();
        r
    }
}

/// What the device is doing.
enum Run {
    /// Running the agent and the firmware.
    Up(Box<Running>),
    /// Resetting: the agent answers from `until` on.
    Booting { until: u64, flash: TimedFlash },
    /// Power is off (after a cut): nothing happens until [`SimDevice::power_on`].
    Off { flash: TimedFlash },
    /// Only while switching states.
    Gone,
}

struct Running {
    link: AgentLink<TimedFlash>,
    boot: Boot,
    accept_at: Option<u64>,
    watchdog_at: Option<u64>,
}

/// One boot of the device, for tests and the demo's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRecord {
    /// When it booted.
    pub at_ns: u64,
    /// The boot decision's outcome.
    pub boot: Boot,
    /// Whether the firmware it runs accepts itself.
    pub health: ImageHealth,
}

/// A simulated device.
pub struct SimDevice {
    cfg: DeviceConfig,
    agent_cfg: AgentConfig,
    now: u64,
    to_device: Line,
    to_host: Line,
    rx: VecDeque<u8>,
    rx_cap: usize,
    overruns: u64,
    busy_until: u64,
    busy: Arc<AtomicU64>,
    run: Run,
    host_baud: u32,
    device_baud: u32,
    reset_at: Option<u64>,
    baud_switch: Option<(u64, u32)>,
    /// When the firmware next gives the link its clock ([`AgentLink::tick`]).
    tick_at: u64,
    boots: Vec<BootRecord>,
    /// Bytes still in flight that were sent at an earlier rate: (last arrival, rate).
    epochs_to_device: VecDeque<(u64, u32)>,
    epochs_to_host: VecDeque<(u64, u32)>,
    garble_mismatch: bool,
    ticks: FirmwareTicks,
}

/// The simulated firmware's main loop: it ticks every [`TICK_NS`] while the CPU is free,
/// and once right after each piece of agent work (the loop alternates between its own work
/// and the agent's). The longest gap between two ticks is how long an update stopped the
/// running firmware.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FirmwareTicks {
    /// Ticks since power-on.
    pub count: u64,
    /// When the last tick happened.
    pub last_ns: u64,
    /// The longest gap between two ticks within one boot.
    pub longest_gap_ns: u64,
}

impl FirmwareTicks {
    /// The loop ran freely up to `now`.
    fn run_to(&mut self, now: u64) {
        if now >= self.last_ns + TICK_NS {
            let n = (now - self.last_ns) / TICK_NS;
            self.count += n;
            self.last_ns += n * TICK_NS;
        }
    }

    /// The agent held the CPU from `from` to `to`; the loop ticks right after.
    fn held(&mut self, from: u64, to: u64) {
        self.run_to(from);
        self.longest_gap_ns = self.longest_gap_ns.max(to - self.last_ns);
        self.count += 1;
        self.last_ns = to;
    }

    /// A new boot: the firmware starts ticking now.
    fn boot(&mut self, now: u64) {
        self.last_ns = now;
    }
}

impl SimDevice {
    /// A factory-fresh device: VM "zvm" 1.0 in VM slot 0, bytecode "blink" v1 in
    /// bytecode slot 0, booted and running.
    pub fn new(cfg: DeviceConfig) -> SimDevice {
        let vm = images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 16 * 1024);
        let bc = images::blink_v1();
        let bytes = cfg.flash_with(&[(SlotKind::Vm, 0, &vm), (SlotKind::Bytecode, 0, &bc)]);
        // `flash_with` sizes the flash in whole sectors, which is all `from_image` checks.
        let flash = DeviceFlash::from_image(bytes)
            .expect("flash_with returns whole sectors")
            .with_timing(cfg.timing);
        Self::from_flash(cfg, flash)
    }

    /// A device whose flash holds `flash` (a saved state): boots it. `cfg.ecc` turns the
    /// flash's ECC mode on.
    pub fn from_flash(cfg: DeviceConfig, mut flash: DeviceFlash) -> SimDevice {
        if cfg.ecc {
            flash.set_ecc(true);
        }
        flash.set_sectors(cfg.sector_runs());
        let busy = Arc::new(AtomicU64::new(0));
        let agent_cfg = cfg.agent_config();
        let mut dev = SimDevice {
            now: 0,
            to_device: Line::new(cfg.baud, cfg.latency_ns).with_faults(cfg.faults_to_device),
            to_host: Line::new(cfg.baud, cfg.latency_ns).with_faults(cfg.faults_to_host),
            rx: VecDeque::new(),
            rx_cap: cfg.rx_buffer(),
            overruns: 0,
            busy_until: 0,
            busy: busy.clone(),
            run: Run::Booting {
                until: 0,
                flash: TimedFlash { inner: flash, busy },
            },
            host_baud: cfg.baud,
            device_baud: cfg.baud,
            reset_at: None,
            baud_switch: None,
            tick_at: 0,
            boots: Vec::new(),
            epochs_to_device: VecDeque::new(),
            epochs_to_host: VecDeque::new(),
            garble_mismatch: true,
            ticks: FirmwareTicks::default(),
            agent_cfg,
            cfg,
        };
        dev.finish_boot();
        dev
    }

    /// A device restored from a saved flash image (see [`SimDevice::flash_bytes`]).
    pub fn from_image(cfg: DeviceConfig, bytes: Vec<u8>) -> Result<SimDevice, FlashError> {
        let mut flash = DeviceFlash::from_image(bytes)?;
        flash.set_timing(cfg.timing);
        Ok(Self::from_flash(cfg, flash))
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    /// The agent's configuration (layout, record area).
    pub fn agent_config(&self) -> &AgentConfig {
        &self.agent_cfg
    }

    /// Simulated time, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The flash model.
    pub fn flash(&self) -> &DeviceFlash {
        match &self.run {
            Run::Up(r) => r.link.agent().flash().sim(),
            Run::Booting { flash, .. } | Run::Off { flash } => flash.sim(),
            Run::Gone => unreachable!("the device is between two states only inside a method"),
        }
    }

    /// The flash model, to arm a power cut.
    pub fn flash_mut(&mut self) -> &mut DeviceFlash {
        match &mut self.run {
            Run::Up(r) => r.link.agent_mut().flash_mut().sim_mut(),
            Run::Booting { flash, .. } | Run::Off { flash } => flash.sim_mut(),
            Run::Gone => unreachable!("the device is between two states only inside a method"),
        }
    }

    /// The flash contents (to save a state).
    pub fn flash_bytes(&self) -> &[u8] {
        self.flash().as_bytes()
    }

    /// The record as the running agent sees it (`None` while not running).
    pub fn record(&self) -> Option<Record> {
        match &self.run {
            Run::Up(r) => r.link.agent().get_record().ok(),
            _ => None,
        }
    }

    /// What the running firmware booted (`None` while not running).
    pub fn current_boot(&self) -> Option<Boot> {
        match &self.run {
            Run::Up(r) => Some(r.boot),
            _ => None,
        }
    }

    /// Whether the agent is up (not resetting, not powered off).
    pub fn is_running(&self) -> bool {
        matches!(self.run, Run::Up(_))
    }

    /// Whether power is off after a cut.
    pub fn is_off(&self) -> bool {
        matches!(self.run, Run::Off { .. })
    }

    /// Every boot so far.
    pub fn boots(&self) -> &[BootRecord] {
        &self.boots
    }

    /// The simulated firmware's tick counter and the longest gap between its ticks.
    pub fn firmware_ticks(&self) -> FirmwareTicks {
        let mut t = self.ticks;
        if self.is_running() {
            t.run_to(self.now.max(self.busy_until));
        }
        t
    }

    /// Start measuring the longest gap between firmware ticks afresh from now.
    pub fn reset_tick_gap(&mut self) {
        self.ticks.longest_gap_ns = 0;
        self.ticks.run_to(self.now);
    }

    /// The agent link's counters for this boot (`None` while not running).
    pub fn link_stats(&self) -> Option<fota_agent::LinkStats> {
        match &self.run {
            Run::Up(r) => Some(r.link.stats()),
            _ => None,
        }
    }

    /// Bytes lost because the receive buffer was full.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The device's UART rate now.
    pub fn device_baud(&self) -> u32 {
        self.device_baud
    }

    /// The host's UART rate now.
    pub fn host_baud(&self) -> u32 {
        self.host_baud
    }

    /// Set the host's UART rate (bytes between ends at different rates are garbled).
    pub fn set_host_baud(&mut self, baud: u32) {
        if baud != self.host_baud {
            let last = self.to_device.idle_at() + self.to_device.latency_ns();
            self.epochs_to_device.push_back((last, self.host_baud));
        }
        self.host_baud = baud;
        self.to_device.set_baud(baud);
    }

    fn set_device_baud(&mut self, baud: u32) {
        if baud != self.device_baud {
            let last = self.to_host.idle_at() + self.to_host.latency_ns();
            self.epochs_to_host.push_back((last, self.device_baud));
        }
        self.device_baud = baud;
        self.to_host.set_baud(baud);
    }

    /// Whether bytes between ends at different rates arrive as noise (true, as on a
    /// UART), or intact (a pseudo-terminal or a WebSocket, where the host end has no
    /// rate and simply follows the agent's).
    pub fn set_garble_mismatch(&mut self, garble: bool) {
        self.garble_mismatch = garble;
    }

    /// Set the line latency.
    pub fn set_latency_ns(&mut self, ns: u64) {
        self.to_device.set_latency_ns(ns);
        self.to_host.set_latency_ns(ns);
    }

    /// Set the faults on both directions.
    pub fn set_faults(&mut self, to_device: Faults, to_host: Faults) {
        self.to_device.set_faults(to_device);
        self.to_host.set_faults(to_host);
    }

    /// The host sends bytes now.
    pub fn host_send(&mut self, bytes: &[u8]) {
        self.to_device.send(self.now, bytes);
    }

    /// Bytes that have reached the host by now.
    pub fn host_take(&mut self) -> Vec<u8> {
        take_line(
            &mut self.to_host,
            &mut self.epochs_to_host,
            self.device_baud,
            self.host_baud,
            self.now,
            self.garble_mismatch,
        )
    }

    /// Whether bytes for the host have arrived by now.
    pub fn host_has_data(&self) -> bool {
        self.to_host.next_arrival().is_some_and(|t| t <= self.now)
    }

    /// Cut the power now: RAM is lost, flash keeps what it holds.
    pub fn cut_power(&mut self) {
        let flash = match std::mem::replace(&mut self.run, Run::Gone) {
            Run::Up(r) => r.link.into_flash(),
            Run::Booting { flash, .. } | Run::Off { flash } => flash,
            Run::Gone => return,
        };
        self.rx.clear();
        self.to_device.clear();
        self.to_host.clear();
        self.epochs_to_device.clear();
        self.epochs_to_host.clear();
        self.reset_at = None;
        self.baud_switch = None;
        self.run = Run::Off { flash };
    }

    /// Power on after a cut: the device boots from what flash holds.
    pub fn power_on(&mut self) {
        if let Run::Off { mut flash } = std::mem::replace(&mut self.run, Run::Gone) {
            flash.inner.power_on();
            self.set_device_baud(self.cfg.baud);
            self.run = Run::Booting {
                until: self.now + self.cfg.boot_ns,
                flash,
            };
        }
    }

    /// Reset now (as the reset button would).
    pub fn reset(&mut self) {
        self.reset_at = Some(self.now);
        self.run_until(self.now, false);
    }

    fn finish_boot(&mut self) {
        let Run::Booting { flash, .. } = std::mem::replace(&mut self.run, Run::Gone) else {
            return;
        };
        match fota_agent::Agent::boot_or_return(flash, self.agent_cfg.clone())
            .map(|(agent, boot)| (AgentLink::new(agent), boot))
        {
            Ok((link, _)) if !link.agent().flash().sim().is_powered() => {
                // Power failed during the boot decision's record write: the device is off.
                self.run = Run::Off {
                    flash: link.into_flash(),
                };
            }
            Ok((mut link, boot)) => {
                let health = self.health(&mut link, &boot);
                self.boots.push(BootRecord {
                    at_ns: self.now,
                    boot,
                    health,
                });
                let (accept_at, watchdog_at) = match health {
                    ImageHealth::Healthy => (
                        boot.trial.then_some(self.now + self.cfg.accept_after_ns),
                        None,
                    ),
                    _ => (None, Some(self.now + self.cfg.watchdog_ns)),
                };
                let mut log = format!(
                    "boot: VM slot {} @{:#x}, bytecode slot {} @{:#x}{}{}\r\n",
                    boot.vm_slot,
                    boot.vm_addr,
                    boot.bc_slot,
                    boot.bc_addr,
                    if boot.trial { ", on trial" } else { "" },
                    if boot.reverted {
                        ", reverted to the last working configuration"
                    } else {
                        ""
                    },
                );
                log.push_str(match health {
                    ImageHealth::Healthy if boot.trial => "app: running, self-test in progress\r\n",
                    ImageHealth::Healthy => "app: running\r\n",
                    ImageHealth::Faulty => "app: self-test failed, hanging\r\n",
                    ImageHealth::NotAnImage => "app: no valid firmware in the slot, hanging\r\n",
                });
                self.to_host.send(self.now, log.as_bytes());
                self.ticks.boot(self.now);
                self.run = Run::Up(Box::new(Running {
                    link,
                    boot,
                    accept_at,
                    watchdog_at,
                }));
            }
            // A boot that cannot read its record area (power failed while reading it): the
            // device stays off with its flash as it is, until powered on again.
            Err((_, flash)) => self.run = Run::Off { flash },
        }
    }

    fn health(&self, link: &mut AgentLink<TimedFlash>, boot: &Boot) -> ImageHealth {
        let flash = link.agent().flash().sim().as_bytes();
        let region = |addr: u32, kind: SlotKind| {
            let size = self
                .agent_cfg
                .slot_at(addr)
                .filter(|s| s.kind == kind)
                .map_or(0, |s| s.size as usize);
            let start = addr as usize;
            flash.get(start..start + size).unwrap_or(&[])
        };
        let bc = images::image_health(region(boot.bc_addr, SlotKind::Bytecode));
        let vm = images::image_health(region(boot.vm_addr, SlotKind::Vm));
        if !self.cfg.fota_supported {
            return ImageHealth::Healthy;
        }
        match (vm, bc) {
            (ImageHealth::Healthy, ImageHealth::Healthy) => ImageHealth::Healthy,
            (ImageHealth::NotAnImage, _) | (_, ImageHealth::NotAnImage) => ImageHealth::NotAnImage,
            _ => ImageHealth::Faulty,
        }
    }

    /// When something happens next (a byte arrives, the device finishes a frame, a timer
    /// fires), if anything is scheduled.
    pub fn next_event(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: u64| n.min(t)));
            }
        };
        consider(self.to_device.next_arrival());
        // Bytes already at the host wait for it to take them: not an event.
        consider(self.to_host.next_arrival().filter(|&t| t > self.now));
        consider(self.reset_at);
        consider(self.baud_switch.map(|b| b.0));
        match &self.run {
            Run::Up(r) => {
                if !self.rx.is_empty() || r.link.is_busy() {
                    consider(Some(self.busy_until.max(self.now)));
                }
                consider(r.accept_at.map(|t| t.max(self.busy_until)));
                consider(r.watchdog_at);
                // At a negotiated rate the link's timers run: the main loop gives it the
                // clock every few milliseconds.
                if r.link.baud() != self.cfg.baud {
                    consider(Some(self.tick_at.max(self.now)));
                }
            }
            Run::Booting { until, .. } => consider(Some(*until)),
            Run::Off { .. } | Run::Gone => {}
        }
        next
    }

    /// Run the device until `until_ns`; with `stop_on_output`, stop as soon as bytes for
    /// the host have arrived. Returns the time reached.
    pub fn run_until(&mut self, until_ns: u64, stop_on_output: bool) -> u64 {
        loop {
            self.process_now();
            if stop_on_output && self.host_has_data() {
                return self.now;
            }
            match self.next_event() {
                // Every event due at `now` was handled above, so the next one is later.
                Some(t) if t <= until_ns && t > self.now => self.now = t,
                _ => {
                    self.now = self.now.max(until_ns);
                    self.process_now();
                    return self.now;
                }
            }
        }
    }

    /// Handle everything due at `now`.
    fn process_now(&mut self) {
        loop {
            let mut did = false;
            // Bytes reaching the device's UART.
            let arrived = take_line(
                &mut self.to_device,
                &mut self.epochs_to_device,
                self.host_baud,
                self.device_baud,
                self.now,
                self.garble_mismatch,
            );
            if !arrived.is_empty() {
                did = true;
                if matches!(self.run, Run::Up(_)) {
                    for b in arrived {
                        if self.rx.len() < self.rx_cap {
                            self.rx.push_back(b);
                        } else {
                            self.overruns += 1;
                        }
                    }
                }
            }
            if self.reset_at.is_some_and(|t| t <= self.now) {
                self.reset_at = None;
                self.restart_now();
                did = true;
            }
            if let Some((t, baud)) = self.baud_switch
                && t <= self.now
            {
                self.baud_switch = None;
                self.set_device_baud(baud);
                if let Run::Up(r) = &mut self.run {
                    r.link.reset_reader();
                }
                did = true;
            }
            did |= self.link_tick();
            if let Run::Booting { until, .. } = &self.run
                && *until <= self.now
            {
                self.finish_boot();
                did = true;
            }
            did |= self.firmware_timers();
            did |= self.agent_step();
            if !did {
                return;
            }
        }
    }

    fn firmware_timers(&mut self) -> bool {
        let now = self.now;
        let Run::Up(r) = &mut self.run else {
            return false;
        };
        if r.accept_at.is_some_and(|t| t <= now) && now >= self.busy_until {
            r.accept_at = None;
            self.busy.store(0, Ordering::Relaxed);
            let ok = r.link.agent_mut().accept().is_ok();
            // The record write keeps the CPU: the firmware's own call, its own stall.
            self.busy_until = now + self.busy.load(Ordering::Relaxed);
            self.ticks.held(now, self.busy_until);
            if !r.link.agent().flash().sim().is_powered() {
                // Power failed while accept() wrote the record: the device is off.
                self.cut_power();
                return true;
            }
            let line: &[u8] = if ok {
                b"app: self-test passed, accept()\r\n"
            } else {
                b"app: accept() failed\r\n"
            };
            self.to_host.send(now, line);
            return true;
        }
        if r.watchdog_at.is_some_and(|t| t <= now) {
            r.watchdog_at = None;
            self.to_host
                .send(now, b"watchdog: firmware hung, resetting\r\n");
            self.reset_at = Some(now);
            return true;
        }
        false
    }

    /// The link's clock, from the main loop every [`LINK_TICK_NS`]: it may go back to
    /// another rate (a `SetBaud` not confirmed, or no request for `BAUD_IDLE_MS`).
    fn link_tick(&mut self) -> bool {
        if self.now < self.tick_at || self.baud_switch.is_some() {
            return false;
        }
        self.tick_at = self.now + LINK_TICK_NS;
        let Run::Up(r) = &mut self.run else {
            return false;
        };
        // The agent's millisecond clock (it wraps, as a firmware's does).
        let ms = (self.now / 1_000_000) as u32;
        match r.link.tick(ms) {
            Some(Action::SetBaud(b)) => {
                self.baud_switch = Some((self.to_host.idle_at().max(self.busy_until), b));
                true
            }
            _ => false,
        }
    }

    /// One step of the agent, as the firmware's main loop calls it: one frame handled,
    /// or one unit (a sector erase, a block hashed) of a long request.
    fn agent_step(&mut self) -> bool {
        let now = self.now;
        if self.busy_until > now {
            return false;
        }
        let Run::Up(r) = &mut self.run else {
            return false;
        };
        if self.rx.is_empty() && !r.link.is_busy() {
            return false;
        }
        if self.reset_at.is_some() {
            // After a Restart frame the agent handles nothing: the device resets as soon
            // as the reply has left, and what arrived meanwhile is lost.
            return false;
        }
        self.busy.store(0, Ordering::Relaxed);
        let busy = self.busy.clone();
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let bytes = self.rx.make_contiguous();
        let step = r.link.step(bytes, &mut |frame| {
            out.push((busy.load(Ordering::Relaxed), frame.to_vec()))
        });
        self.rx.drain(..step.consumed.min(self.rx.len()));
        let spent = self.busy.load(Ordering::Relaxed) + CPU_FRAME_NS;
        for (at, frame) in out {
            self.to_host.send(now + at + CPU_FRAME_NS, &frame);
        }
        self.busy_until = now + spent;
        self.ticks.held(now, self.busy_until);
        if !r.link.agent().flash().sim().is_powered() {
            // The flash lost power in this operation: the whole device is off.
            self.cut_power();
            return true;
        }
        match step.action {
            Some(Action::Restart) => {
                self.rx.clear();
                self.reset_at = Some(self.to_host.idle_at().max(self.busy_until));
            }
            Some(Action::SetBaud(b)) => {
                self.baud_switch = Some((self.to_host.idle_at().max(self.busy_until), b));
            }
            None => {}
        }
        true
    }

    fn restart_now(&mut self) {
        let flash = match std::mem::replace(&mut self.run, Run::Gone) {
            Run::Up(r) => r.link.into_flash(),
            Run::Booting { flash, .. } => flash,
            Run::Off { flash } => {
                self.run = Run::Off { flash };
                return;
            }
            Run::Gone => return,
        };
        self.rx.clear();
        self.baud_switch = None;
        self.set_device_baud(self.cfg.baud);
        self.busy_until = self.now;
        self.run = Run::Booting {
            until: self.now + self.cfg.boot_ns,
            flash,
        };
    }
}

/// Bytes that reached the far end of `line` by `now`, garbled where they were sent at a
/// rate other than the receiver's.
fn take_line(
    line: &mut Line,
    epochs: &mut VecDeque<(u64, u32)>,
    send_baud: u32,
    recv_baud: u32,
    now: u64,
    garble_mismatch: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(&(end, baud)) = epochs.front() {
        let mut seg = line.deliver(now.min(end));
        if garble_mismatch && baud != recv_baud {
            garble(&mut seg);
        }
        out.extend(seg);
        if end > now {
            return out;
        }
        epochs.pop_front();
    }
    let mut seg = line.deliver(now);
    if garble_mismatch && send_baud != recv_baud {
        garble(&mut seg);
    }
    out.extend(seg);
    out
}

/// What a byte sent at one baud rate looks like when read at another: noise.
fn garble(bytes: &mut [u8]) {
    for b in bytes {
        *b = b.rotate_left(3) ^ 0x5A;
    }
}
