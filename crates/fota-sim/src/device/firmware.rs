//! The simulated firmware: its main loop's ticks, what it does after a boot (self-test,
//! `accept()`, or hang until the watchdog resets it) and its timers.

use std::sync::atomic::Ordering;

use fota_agent::{AgentLink, Boot, LinkAction};
use fota_protocol::Layout as _;
use fota_protocol::SlotKind;

use super::records::{BootRecord, LINK_TICK_NS};
use super::{Run, Running, SimDevice, TimedFlash};
use crate::images::{self, ImageHealth};

impl SimDevice {
    pub(super) fn finish_boot(&mut self) {
        let Run::Booting { mut flash, .. } = std::mem::replace(&mut self.run, Run::Gone) else {
            return;
        };
        flash.settle();
        let background = self.cfg.erase_suspend;
        match fota_agent::Agent::boot_or_return(flash, self.agent_cfg.clone()).map(
            |(mut agent, boot)| {
                if background {
                    agent.enable_background_erase();
                }
                (AgentLink::new(agent), boot)
            },
        ) {
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
                    // It keeps the watchdog fed: nothing resets it.
                    ImageHealth::NeverAccepts => (None, None),
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
                    ImageHealth::NeverAccepts if boot.trial => {
                        "app: running, it never calls accept(): on trial until the next restart\r\n"
                    }
                    ImageHealth::NeverAccepts => "app: running\r\n",
                    ImageHealth::Faulty => "app: self-test failed, hanging\r\n",
                    ImageHealth::NotAnImage => "app: no valid firmware in the slot, hanging\r\n",
                });
                self.to_host.send(self.now, log.as_bytes());
                self.ticks.boot(self.now);
                self.run = Run::Up(Box::new(Running {
                    link,
                    boot,
                    booted_at: self.now,
                    accept_at,
                    watchdog_at,
                }));
            }
            // A boot that cannot read its record area (power failed while reading it): the
            // device stays off with its flash as it is, until powered on again.
            Err((_, flash)) => self.run = Run::Off { flash },
        }
    }

    pub(super) fn health(&self, link: &mut AgentLink<TimedFlash>, boot: &Boot) -> ImageHealth {
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
            (ImageHealth::Faulty, _) | (_, ImageHealth::Faulty) => ImageHealth::Faulty,
            _ => ImageHealth::NeverAccepts,
        }
    }

    pub(super) fn firmware_timers(&mut self) -> bool {
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
    pub(super) fn link_tick(&mut self) -> bool {
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
            Some(LinkAction::SetBaud(b)) => {
                self.baud_switch = Some((self.to_host.idle_at().max(self.busy_until), b));
                true
            }
            _ => false,
        }
    }
}
