//! The boot decision: which configuration runs after a reset, and the record entry that
//! says so.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::SlotKind;

use super::{
    Agent, AgentError, Boot, BootPlan, Changes, record_log, scan_log, slot_addr,
    unsupported_geometry,
};
use crate::config::{AgentConfig, FlashGeometry};
use crate::record::{LogEntry, RecordState};

/// What the boot decision does with the record in force: one pure function, so the
/// read-only plan ([`Agent::plan`]) and the real boot ([`Agent::boot`]) cannot disagree.
struct Decision {
    /// The entry the boot appends, if any.
    write: Option<LogEntry>,
    /// The VM and bytecode slots that run when that write succeeds (or none is needed).
    run: (u8, u8),
    /// The slots that run when the write fails: the last working configuration, never
    /// a trial that could not be recorded.
    fallback: (u8, u8),
    trial: bool,
    reverted: bool,
    factory: bool,
}

fn decision(found: Option<LogEntry>, images_ok: bool) -> Decision {
    let Some(e) = found else {
        return Decision {
            write: Some(LogEntry::factory()),
            run: (0, 0),
            fallback: (0, 0),
            trial: false,
            reverted: false,
            factory: true,
        };
    };
    let current = (e.vm_current, e.bc_current);
    let last = (e.vm_last, e.bc_last);
    match e.state {
        RecordState::Confirmed => Decision {
            write: None,
            run: current,
            fallback: current,
            trial: false,
            reverted: false,
            factory: false,
        },
        // The trial boot: without a Trial on flash a crash would retry the new firmware
        // forever, so a failed write runs the last working one and decides again.
        RecordState::Pending if images_ok => Decision {
            write: Some(LogEntry {
                state: RecordState::Trial,
                ..e
            }),
            run: current,
            fallback: last,
            trial: true,
            reverted: false,
            factory: false,
        },
        // The trial boot ended without accept(), or the attempted images do not verify:
        // back to the last working one.
        RecordState::Trial | RecordState::Pending => Decision {
            write: Some(
                LogEntry::with_slots(e.vm_last, e.vm_last, e.bc_last, e.bc_last)
                    .keeping_minimums(&e),
            ),
            run: last,
            fallback: last,
            trial: false,
            reverted: true,
            factory: false,
        },
    }
}

impl<F: NorFlash> Agent<F> {
    /// Start the agent after a reset: check `config`, read the record and take the boot
    /// decision:
    ///
    /// | record on flash | written by boot                    | runs              |
    /// |-----------------|------------------------------------|-------------------|
    /// | none valid      | factory: slot 0 / slot 0, Confirmed| slot 0 / slot 0   |
    /// | Confirmed       | nothing                            | current           |
    /// | Pending         | same slots, Trial                  | current (trial)   |
    /// | Trial           | current := last working, Confirmed | last working      |
    ///
    /// With `fota_supported == false` the flash is not touched and slot 0 of each kind
    /// runs.
    pub fn boot(flash: F, config: AgentConfig) -> Result<(Agent<F>, Boot), AgentError> {
        Self::boot_or_return(flash, config).map_err(|(e, _)| e)
    }

    /// [`Agent::boot`], handing the flash back on error (for a simulator that retries).
    pub fn boot_or_return(
        flash: F,
        config: AgentConfig,
    ) -> Result<(Agent<F>, Boot), (AgentError, F)> {
        let geo = match FlashGeometry::of(&flash).and_then(|g| {
            if config.fota_supported {
                config.checked_geometry(&g)
            } else {
                unsupported_geometry(&config, &g)
            }
        }) {
            Ok(g) => g,
            Err(e) => return Err((AgentError::Config(e), flash)),
        };
        let log = record_log(&config, &geo);
        let mut agent = Agent {
            flash,
            geo,
            log,
            entry: LogEntry::factory(),
            committed: false,
            held: None,
            hook: None,
            changes: Changes::default(),
            erased_run: (0, 0),
            #[cfg(feature = "images")]
            trial_versions: [0; 2],
            checked: None,
            checked_md5: [0; 16],
            #[cfg(feature = "images")]
            checked_raw: false,
            #[cfg(feature = "codec")]
            checked_crc: None,
            boot: Boot::NONE,
            uptime_ms: None,
            #[cfg(feature = "background")]
            bg: None,
            #[cfg(feature = "background")]
            sched: crate::background::Schedule::NONE,
            config,
        };
        if !agent.config.fota_supported {
            agent.set_running(0, 0);
            let boot = agent.boot;
            return Ok((agent, boot));
        }
        match agent.decide() {
            Ok(()) => {
                let boot = agent.boot;
                Ok((agent, boot))
            }
            Err(addr) => Err((AgentError::Flash(addr), agent.flash)),
        }
    }

    /// What the boot decision would do now, without writing anything: the record is
    /// read (never written), nothing is kept. The same checks and the same decision as
    /// [`Agent::boot`], which a boot stage can take without building an agent.
    pub fn plan(flash: &mut F, config: &AgentConfig) -> Result<BootPlan, AgentError> {
        let g = FlashGeometry::of(flash)?;
        let mut boot = Boot::NONE;
        if !config.fota_supported {
            unsupported_geometry(config, &g)?;
            boot.run(config, 0, 0);
            return Ok(BootPlan {
                boot,
                record: LogEntry::factory(),
                writes: false,
            });
        }
        let geo = config.checked_geometry(&g)?;
        let mut log = record_log(config, &geo);
        let found = scan_log(&mut log, flash, config).map_err(AgentError::Flash)?;
        let d = decision(found, pending_images(flash, config, found, None).is_some());
        boot.run(config, d.run.0, d.run.1);
        boot.trial = d.trial;
        boot.reverted = d.reverted;
        boot.factory = d.factory;
        Ok(BootPlan {
            boot,
            record: d.write.or(found).unwrap_or(LogEntry::factory()),
            writes: d.write.is_some(),
        })
    }

    /// The boot decision (see [`decision`]). Errors: the address of a failed read.
    fn decide(&mut self) -> Result<(), u32> {
        let found = self.scan()?;
        let checked = pending_images(&mut self.flash, &self.config, found, self.hook);
        #[cfg(feature = "images")]
        {
            self.trial_versions = checked.unwrap_or([0; 2]);
        }
        let d = decision(found, checked.is_some());
        self.entry = found.unwrap_or(LogEntry::factory());
        self.committed = found.is_some();
        self.boot.factory = d.factory;
        self.boot.reverted = d.reverted;
        let written = match d.write {
            Some(e) => self.append(e).is_ok(),
            None => true,
        };
        self.boot.record_write_failed = !written;
        self.boot.trial = d.trial && written;
        let (vm, bc) = if written { d.run } else { d.fallback };
        self.set_running(vm, bc);
        Ok(())
    }

    fn set_running(&mut self, vm: u8, bc: u8) {
        self.boot.run(&self.config, vm, bc);
    }

    /// The platform's clock: milliseconds since this boot started, the start of its trial
    /// deadline ([`AgentConfig::confirm_ms`]). A platform that gives it from its main loop
    /// (before it serves requests) lets `Info` say how long a firmware on trial still has
    /// to call `accept` (tag 9), by the device's own clock rather than a host's guess.
    pub fn set_uptime_ms(&mut self, ms: u32) {
        self.uptime_ms = Some(ms);
    }

    /// How long the firmware on trial still has to call `accept`, in milliseconds by the
    /// platform's clock (0: its deadline passed and it still runs, unconfirmed). `None`
    /// when nothing runs on trial (confirmed, or a trial cancelled while it runs), when
    /// the platform declares no deadline or has not given its clock.
    pub fn trial_left_ms(&self) -> Option<u32> {
        let up = self.uptime_ms?;
        let e = &self.entry;
        let on_trial = self.boot.trial
            && e.state == RecordState::Trial
            && (e.vm_current, e.bc_current) == (self.boot.vm_slot, self.boot.bc_slot);
        (on_trial && self.config.confirm_ms != 0).then(|| self.config.confirm_ms.saturating_sub(up))
    }
}

impl Boot {
    /// Nothing decided yet: slot 0 of each kind, no flag.
    const NONE: Boot = Boot {
        vm_slot: 0,
        vm_addr: 0,
        bc_slot: 0,
        bc_addr: 0,
        trial: false,
        reverted: false,
        factory: false,
        record_write_failed: false,
    };

    /// Run VM slot `vm` and bytecode slot `bc` of `config`.
    fn run(&mut self, config: &AgentConfig, vm: u8, bc: u8) {
        self.vm_slot = vm;
        self.bc_slot = bc;
        self.vm_addr = slot_addr(config, SlotKind::Vm, vm);
        self.bc_addr = slot_addr(config, SlotKind::Bytecode, bc);
    }
}

/// The packed versions of the images a pending record would try, or `None` when one
/// does not verify (the boot then reverts). Without the `images` feature nothing is
/// checked.
#[allow(unused_variables)]
fn pending_images<F: NorFlash>(
    flash: &mut F,
    config: &AgentConfig,
    found: Option<LogEntry>,
    hook: Option<fn()>,
) -> Option<[u32; 2]> {
    match found {
        #[cfg(feature = "images")]
        Some(e) if e.state == RecordState::Pending => {
            crate::images::check_pending(flash, config, &e, hook)
        }
        _ => Some([0; 2]),
    }
}
