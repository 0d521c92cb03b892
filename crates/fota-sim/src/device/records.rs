//! What the simulated firmware leaves for tests and tools to read: its tick periods, the
//! record of each boot, and counts of its main loop's ticks.

use fota_agent::Boot;

use crate::images::ImageHealth;

/// Period of the simulated firmware's own work: its main loop ticks this often while the
/// agent leaves it the CPU.
pub const TICK_NS: u64 = 1_000_000;

/// How often the firmware gives the link its clock while the line runs at a negotiated
/// rate.
pub const LINK_TICK_NS: u64 = 10_000_000;

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
    pub(super) fn run_to(&mut self, now: u64) {
        if now >= self.last_ns + TICK_NS {
            let n = (now - self.last_ns) / TICK_NS;
            self.count += n;
            self.last_ns += n * TICK_NS;
        }
    }

    /// The agent held the CPU from `from` to `to`; the loop ticks right after.
    pub(super) fn held(&mut self, from: u64, to: u64) {
        self.run_to(from);
        self.longest_gap_ns = self.longest_gap_ns.max(to - self.last_ns);
        self.count += 1;
        self.last_ns = to;
    }

    /// A new boot: the firmware starts ticking now.
    pub(super) fn boot(&mut self, now: u64) {
        self.last_ns = now;
    }
}
