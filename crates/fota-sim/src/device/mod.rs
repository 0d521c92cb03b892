//! A whole simulated device: the agent on a [`SimFlash`](crate::flash::SimFlash), behind a UART with a bounded
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

mod config;
mod firmware;
mod rates;
mod records;
mod timed;
mod uart;

pub use config::*;
use rates::take_line;
pub use records::{BootRecord, FirmwareTicks, LINK_TICK_NS, TICK_NS};
pub use timed::TimedFlash;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fota_agent::{AgentConfig, AgentLink, Boot, LinkAction};
use fota_protocol::{Record, SlotKind};

use crate::flash::FlashError;
use crate::images;
use crate::line::Line;

/// Processing time of one frame by the device's CPU, besides flash time.
const CPU_FRAME_NS: u64 = 20_000;

/// One step of the agent in which the flash worked, or a stretch between steps in which a
/// background erase ran ([`SimDevice::record_flash_busy`]): simulated nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashSpan {
    /// When the step began.
    pub start: u64,
    /// When the flash work of the step ended (its CPU time after it excluded).
    pub end: u64,
    /// Whether the step hashed for a `ChecksumSlot` (its MD5 time counts as busy).
    pub hashing: bool,
}

/// How long the flash idled while it wrote an image, from `spans` recorded over an
/// update: (idle, busy) in nanoseconds, between the end of the first step after any
/// leading checksum (the first sector's erase, which precedes any data; for a delta,
/// the first step of the base's check) and the end of the last step before the next
/// checksum (the image's last program). A gap between two steps is idle; the agent's
/// CPU time per frame (`CPU_FRAME_NS`) counts as idle too, since the flash does nothing
/// meanwhile. `None` when no step precedes a checksum.
pub fn flash_idle(spans: &[FlashSpan]) -> Option<(u64, u64)> {
    let spans = &spans[spans.iter().position(|s| !s.hashing)?..];
    let first = spans.first()?;
    let last = spans.iter().position(|s| s.hashing).unwrap_or(spans.len());
    let written = spans.get(1..last)?;
    if written.is_empty() {
        return None;
    }
    let busy: u64 = written.iter().map(|s| s.end - s.start).sum();
    let span = written.last()?.end - first.end;
    Some((span - busy, busy))
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
    /// When this boot started: the agent's clock counts from it (its trial deadline).
    booted_at: u64,
    accept_at: Option<u64>,
    watchdog_at: Option<u64>,
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
    /// See [`TimedFlash`]: set for the steps in which the agent hashes.
    hash_ns: Arc<AtomicU64>,
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
    /// The flash's busy spans, when recorded ([`SimDevice::record_flash_busy`]).
    flash_spans: Option<Vec<FlashSpan>>,
    /// The time up to which a background erase has been given its progress
    /// ([`crate::flash::SimFlash::advance`]), some of it perhaps still in `elapsed`.
    flash_clock: u64,
    /// See [`TimedFlash`]: time handed to the flash and not yet applied.
    elapsed: Arc<AtomicU64>,
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
        let hash_ns = Arc::new(AtomicU64::new(0));
        let elapsed = Arc::new(AtomicU64::new(0));
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
            hash_ns: hash_ns.clone(),
            run: Run::Booting {
                until: 0,
                flash: TimedFlash {
                    inner: flash,
                    busy,
                    hash_ns,
                    elapsed: elapsed.clone(),
                },
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
            flash_spans: None,
            flash_clock: 0,
            elapsed,
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

    /// Record from now on when the flash works (each step of the agent that erased,
    /// programmed or read it), so that a benchmark or a test can tell how long it idled
    /// during a transfer ([`SimDevice::flash_spans`], [`flash_idle`]). Off by default.
    pub fn record_flash_busy(&mut self) {
        self.flash_spans.get_or_insert_with(Vec::new);
    }

    /// The flash's busy spans recorded so far, in order and not overlapping.
    pub fn flash_spans(&self) -> &[FlashSpan] {
        self.flash_spans.as_deref().unwrap_or(&[])
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
                } else if r.link.erases_pending() {
                    // The main loop looks again when the erase running is done.
                    let left = r.link.agent().flash().sim().background_erase();
                    let unapplied = self.elapsed.load(Ordering::Relaxed);
                    let done =
                        (self.flash_clock + left.map_or(0, |e| e.2)).saturating_sub(unapplied);
                    consider(Some(done.max(self.busy_until).max(self.now)));
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
        // The time since the flash last worked: a background erase ran meanwhile (a busy
        // span of the flash's when recorded).
        let since = now.saturating_sub(self.flash_clock);
        if let Some(spans) = &mut self.flash_spans
            && let Some((_, _, left, false)) = r.link.agent().flash().sim().background_erase()
        {
            let run = left
                .saturating_sub(self.elapsed.load(Ordering::Relaxed))
                .min(since);
            if run > 0 {
                spans.push(FlashSpan {
                    start: self.flash_clock,
                    end: self.flash_clock + run,
                    hashing: false,
                });
            }
        }
        self.elapsed.fetch_add(since, Ordering::Relaxed);
        self.flash_clock = self.flash_clock.max(now);
        let unapplied = self.elapsed.load(Ordering::Relaxed);
        let erase_done =
            (r.link.agent().flash().sim().background_erase()).is_none_or(|e| e.2 <= unapplied);
        if self.rx.is_empty() && !r.link.is_busy() && !(r.link.erases_pending() && erase_done) {
            return false;
        }
        if self.reset_at.is_some() {
            // After a Restart frame the agent handles nothing: the device resets as soon
            // as the reply has left, and what arrived meanwhile is lost.
            return false;
        }
        // The firmware gives the agent its clock before each step (the time left on
        // trial that `Info` reports).
        let uptime = (now - r.booted_at) / 1_000_000;
        r.link
            .agent_mut()
            .set_uptime_ms(u32::try_from(uptime).unwrap_or(u32::MAX));
        self.busy.store(0, Ordering::Relaxed);
        let md5 = if r.link.is_hashing() {
            self.cfg.md5_ns_per_byte
        } else {
            0
        };
        self.hash_ns.store(md5, Ordering::Relaxed);
        let busy = self.busy.clone();
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let bytes = self.rx.make_contiguous();
        let step = r.link.step(bytes, &mut |frame| {
            out.push((busy.load(Ordering::Relaxed), frame.to_vec()))
        });
        self.rx.drain(..step.consumed.min(self.rx.len()));
        let flash_ns = self.busy.load(Ordering::Relaxed);
        if flash_ns > 0
            && let Some(spans) = &mut self.flash_spans
        {
            spans.push(FlashSpan {
                start: now,
                end: now + flash_ns,
                hashing: md5 > 0,
            });
        }
        // The flash's own operations of the step (a suspended erase does not progress
        // in them; one waited for was charged whole).
        self.flash_clock = now + flash_ns;
        let spent = flash_ns + CPU_FRAME_NS;
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
            Some(LinkAction::Restart) => {
                self.rx.clear();
                self.reset_at = Some(self.to_host.idle_at().max(self.busy_until));
            }
            Some(LinkAction::SetBaud(b)) => {
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
