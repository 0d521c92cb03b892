//! The reducer: what each action does to the state. Pure: the time comes with the action.

use fota_host::protocol::RecordState;

use super::*;

impl AppState {
    /// The reducer: `action` happened at `now_ms`.
    pub fn apply(&mut self, now_ms: u64, action: Action) {
        self.act(now_ms, action);
        // The device's rules, checked again on what changed (image, slot, rules).
        self.revet();
    }

    fn act(&mut self, now_ms: u64, action: Action) {
        let s = self;
        match action {
            Action::Settings(settings) => s.settings = settings,
            Action::Connecting => {
                s.conn = Conn::Opening;
                s.problem = None;
                s.announce = "Connecting…".into();
            }
            Action::Connected(c) => {
                s.log(
                    now_ms,
                    LogKind::App,
                    format!(
                        "connected to {} over {}: agent {} v{}.{}.{}",
                        c.info.name,
                        c.link,
                        c.info.name,
                        c.info.agent_version[0],
                        c.info.agent_version[1],
                        c.info.agent_version[2]
                    ),
                );
                s.announce = format!("Connected to {}.", c.info.name);
                s.trial_left_at = c.info.trial_left_ms.map(|ms| (now_ms, ms));
                s.conn = Conn::Open(c);
                s.problem = None;
                s.record = None;
                s.installed = None;
                // A finished update belongs to the last connection; a stopped one stays,
                // for its resume.
                if matches!(s.finish, Some(Finish::Done { .. })) {
                    s.finish = None;
                }
                s.stage = Stage::Record;
                s.image_problem = None;
                // Files with addresses loaded before: placed on this device's layout.
                for kind in [SlotKind::Bytecode, SlotKind::Vm] {
                    let held = match kind {
                        SlotKind::Bytecode => s.bytecode.take(),
                        SlotKind::Vm => s.vm.take(),
                    };
                    if let Some(image) = held {
                        if image.firmware.is_some() {
                            s.take_image(now_ms, kind, image);
                        } else {
                            match kind {
                                SlotKind::Bytecode => s.bytecode = Some(image),
                                SlotKind::Vm => s.vm = Some(image),
                            }
                        }
                    }
                }
            }
            Action::ConnectFailed(p) => {
                s.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                s.announce = p.message.clone();
                s.conn = Conn::Closed;
                s.problem = Some(p);
                s.problem_title = "Could not connect";
                s.stage = Stage::Connect;
            }
            Action::ConnectCancelled => {
                s.log(now_ms, LogKind::App, "connecting cancelled".into());
                s.announce = "Connecting cancelled.".into();
                s.conn = Conn::Closed;
                s.problem = None;
                s.stage = Stage::Connect;
            }
            Action::BaudChanged(baud) => {
                if let Conn::Open(c) = &mut s.conn {
                    c.baud = Some(baud);
                }
            }
            Action::Lost(p) => {
                s.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                s.announce = p.message.clone();
                s.conn = Conn::Closed;
                s.run = None;
                s.problem = Some(p);
                s.problem_title = "The connection was lost";
                s.stage = Stage::Connect;
                s.record_stale = true;
            }
            Action::Disconnected => {
                s.log(now_ms, LogKind::App, "disconnected".into());
                s.announce = "Disconnected.".into();
                s.conn = Conn::Closed;
                s.run = None;
                s.record = None;
                s.installed = None;
                s.trial_since_ms = None;
                s.trial_left_at = None;
                s.stage = Stage::Connect;
            }
            Action::Record(r) => {
                let trial = r.valid != 0 && r.state == RecordState::Trial && r.runs_current();
                s.trial_since_ms = match (trial, s.trial_since_ms) {
                    (true, Some(t)) => Some(t),
                    (true, None) => Some(now_ms),
                    (false, _) => None,
                };
                if !trial {
                    s.trial_left_at = None;
                }
                s.record = Some(r);
                s.record_stale = false;
            }
            Action::RecordStale => s.record_stale = true,
            Action::Goto(stage) => {
                if !s.running() && (stage == Stage::Connect || s.connection().is_some()) {
                    s.stage = stage;
                    s.problem = None;
                    if stage <= Stage::Image {
                        s.finish = None;
                    }
                }
            }
            Action::ImageLoaded(kind, image) => {
                if s.take_image(now_ms, kind, image)
                    && s.connection().is_some()
                    && !s.running()
                    && s.stage != Stage::Image
                {
                    s.stage = Stage::Image;
                    s.finish = None;
                }
            }
            Action::ImageRefused(p) => {
                s.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                s.announce = p.message.clone();
                s.image_problem = Some(p);
            }
            Action::ClearImage(kind) => {
                match kind {
                    SlotKind::Bytecode => s.bytecode = None,
                    SlotKind::Vm => s.vm = None,
                }
                s.images_changed();
            }
            Action::ChooseOther => {
                if !s.running() {
                    s.bytecode = None;
                    s.vm = None;
                    s.images_changed();
                    s.finish = None;
                    s.image_problem = None;
                    s.stage = if s.connection().is_some() {
                        Stage::Image
                    } else {
                        Stage::Connect
                    };
                }
            }
            // A file with addresses goes where they say: its slot is not a choice.
            Action::SlotChoice(kind, _) if s.image(kind).is_some_and(|i| i.placed.is_some()) => {}
            Action::SlotChoice(kind, choice) => match kind {
                SlotKind::Bytecode => s.bc_slot = choice,
                SlotKind::Vm => s.vm_slot = choice,
            },
            Action::SetRestart(v) => s.restart = v,
            Action::SetResume(v) => s.resume = v,
            Action::UpdateStarted => {
                if s.running() || !s.ready_to_flash() {
                    return;
                }
                s.problem = None;
                s.finish = None;
                s.stage = Stage::Record;
                s.run = Some(Run {
                    step: Step::RecordCheck,
                    detail: "Starting".into(),
                    progress: None,
                    verified: false,
                    cancelling: false,
                    resumed: None,
                    started_ms: now_ms,
                    after_restart: Vec::new(),
                    restarted_ms: None,
                });
                s.announce = "Update started.".into();
            }
            Action::Step(step, detail) => {
                s.log(
                    now_ms,
                    LogKind::Step,
                    format!("{}: {}", step.label(), detail),
                );
                if let Some(run) = &mut s.run {
                    if step == Step::Restart && run.restarted_ms.is_none() {
                        run.restarted_ms = Some(now_ms);
                    }
                    if step != run.step {
                        run.progress = None;
                        s.announce = format!("{}: {}", step.label(), detail);
                    }
                    run.step = step;
                    run.detail = detail;
                    s.stage = Stage::of_step(step);
                }
            }
            Action::Progress(p) => {
                if let Some(run) = &mut s.run {
                    let before = run.progress.map_or(0, |old| {
                        if old.phase == p.phase {
                            (old.fraction() * 4.0) as u32
                        } else {
                            0
                        }
                    });
                    let now = (p.fraction() * 4.0) as u32;
                    if now > before && p.phase == Phase::Stream {
                        s.announce = format!("Sending: {} percent.", now * 25);
                    }
                    run.progress = Some(p);
                }
            }
            Action::Cancelling => {
                if let Some(run) = &mut s.run
                    && !run.cancelling
                {
                    run.cancelling = true;
                    s.announce = "Cancelling at the next safe point.".into();
                    s.log(
                        now_ms,
                        LogKind::App,
                        "cancel asked: stopping at the next safe point".into(),
                    );
                }
            }
            Action::UpdateDone(result) => {
                let run = s.run.take();
                // The device holds other images now: asked again, written again only
                // when asked again.
                s.installed = None;
                s.reinstall = false;
                let at = run.as_ref().map_or(s.stage, |r| Stage::of_step(r.step));
                match result {
                    Ok(report) => {
                        s.log(
                            now_ms,
                            LogKind::App,
                            format!(
                                "update finished: {:?}. {}",
                                report.outcome,
                                report.outcome.describe()
                            ),
                        );
                        s.announce = format!("Update finished. {}", report.outcome.describe());
                        let why = (report.outcome == Outcome::Reverted)
                            .then(|| run.as_ref().and_then(|r| why_reverted(&r.after_restart)))
                            .flatten();
                        s.record = Some(report.record);
                        s.stage = Stage::Outcome;
                        s.finish = Some(Finish::Done { report, why });
                    }
                    Err(Stopped {
                        problem,
                        cancelled: true,
                        lost: false,
                    }) => {
                        s.log(now_ms, LogKind::App, "update cancelled".into());
                        s.announce = format!("Update cancelled. {}", problem.help);
                        s.stage = Stage::Outcome;
                        s.finish = Some(Finish::Cancelled {
                            at,
                            help: problem.help,
                        });
                    }
                    Err(Stopped { problem, lost, .. }) => {
                        s.log(
                            now_ms,
                            LogKind::Error,
                            format!("update stopped: {} {}", problem.message, problem.help),
                        );
                        s.announce =
                            format!("Update stopped. {} {}", problem.message, problem.help);
                        s.finish = Some(Finish::Failed {
                            problem: problem.clone(),
                            at,
                        });
                        if lost {
                            s.conn = Conn::Closed;
                            s.stage = Stage::Connect;
                            s.problem = Some(problem);
                            s.problem_title = "The update stopped";
                        } else {
                            s.stage = Stage::Outcome;
                        }
                    }
                }
            }
            Action::Verified => {
                if let Some(run) = &mut s.run {
                    run.verified = true;
                }
            }
            Action::Resumed(kept, total) => {
                if let Some(run) = &mut s.run {
                    run.resumed = Some((kept, total));
                }
                s.log(
                    now_ms,
                    LogKind::Event,
                    format!("{}; {kept} of {total} bytes", resumed_text(kept, total)),
                );
            }
            Action::Log(kind, text) => {
                if kind == LogKind::Device
                    && let Some(run) = &mut s.run
                    && run.step >= Step::Restart
                {
                    if run.after_restart.len() >= AFTER_RESTART_LIMIT {
                        run.after_restart.remove(0);
                    }
                    run.after_restart.push(text.clone());
                }
                s.log(now_ms, kind, text)
            }
            Action::ClearLog => s.log = Rc::new(Vec::new()),
            Action::Dragging(v) => s.dragging = v,
            Action::ManifestLoading(url) => {
                s.log(
                    now_ms,
                    LogKind::App,
                    format!("loading the firmware manifest {url}"),
                );
                s.manifest = Some(ManifestState::Loading(url));
                s.manifest_for = None;
                s.manifest_problem = None;
            }
            Action::ManifestLoaded(m) => {
                s.log(
                    now_ms,
                    LogKind::App,
                    format!(
                        "manifest: {} {}, images for the {} layout{}",
                        m.name,
                        m.version,
                        m.layouts().join(" and "),
                        if m.layouts().len() == 1 { "" } else { "s" }
                    ),
                );
                s.announce = format!("Firmware {} {} offered.", m.name, m.version);
                s.manifest = Some(ManifestState::Loaded(m));
            }
            Action::ManifestFailed(p) => {
                s.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                s.announce = p.message.clone();
                s.manifest = Some(ManifestState::Failed(p));
            }
            Action::ManifestFetching(layout) => {
                s.manifest_for = Some(layout);
                s.manifest_problem = None;
                let Some(m) = s.manifest() else { return };
                if m.for_layout(layout).is_empty() {
                    let p = Problem {
                        message: format!(
                            "{} {} has no image for this device's layout ({}): it offers the {} layout.",
                            m.name,
                            m.version,
                            layout.key(),
                            m.layouts().join(" and ")
                        ),
                        help: "Connect a device of a layout the manifest offers, or choose an \
                               image file yourself."
                            .into(),
                    };
                    s.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                    s.manifest_problem = Some(p);
                } else {
                    s.log(
                        now_ms,
                        LogKind::App,
                        format!(
                            "fetching the {} layout's images of the manifest",
                            layout.key()
                        ),
                    );
                }
            }
            Action::ManifestImages(images) => {
                s.installed = None;
                for (kind, image) in images {
                    if !s.take_image(now_ms, kind, image) {
                        s.manifest_problem = s.image_problem.clone();
                    }
                }
            }
            Action::InstalledAsked => {
                if s.installed_check_due() {
                    s.installed = Some(Installed::Asking);
                    s.log(
                        now_ms,
                        LogKind::App,
                        "asking the device whether it runs this firmware already".into(),
                    );
                }
            }
            Action::Installed { asked, same } => {
                if s.installed != Some(Installed::Asking) || asked != s.installed_query() {
                    return;
                }
                let name = s.installed_name();
                if same {
                    s.installed = Some(Installed::Same);
                    s.log(
                        now_ms,
                        LogKind::App,
                        format!(
                            "{name} is already installed: the running slots hold the same images"
                        ),
                    );
                    s.announce = format!("{name} is already installed.");
                } else {
                    s.installed = Some(Installed::Different);
                    // Nothing to decide: on to the slot, where the user confirms the start.
                    if s.stage == Stage::Record && !s.running() && s.finish.is_none() {
                        s.stage = Stage::Slot;
                        s.problem = None;
                        s.announce = format!(
                            "The record is valid and {name} matches its manifest: start the update when ready."
                        );
                    }
                }
            }
            Action::ManifestRetry => {
                if s.manifest_problem.is_some() && !s.running() {
                    s.log(
                        now_ms,
                        LogKind::App,
                        "fetching the manifest's images again".into(),
                    );
                    s.manifest_problem = None;
                    s.manifest_for = None;
                }
            }
            Action::Reinstall => {
                s.reinstall = true;
                s.installed = None;
                s.log(
                    now_ms,
                    LogKind::App,
                    "writing the images again although the device runs them".into(),
                );
                if s.stage == Stage::Record && !s.running() {
                    s.stage = Stage::Slot;
                }
            }
            Action::AllowDowngrade(allow) => {
                if !s.running() {
                    s.allow_downgrade = allow;
                    if allow {
                        s.log(now_ms, LogKind::App, "downgrade confirmed".into());
                    }
                }
            }
            Action::PreviousLoaded(kind, image) => match s.place(kind, image) {
                Ok((kind, image)) => {
                    s.log(
                        now_ms,
                        LogKind::App,
                        format!(
                            "firmware on the device now ({}): {} ({}), {}, MD5 {}: the update \
                             sends a delta from it if the device holds it",
                            kind_name(kind).to_ascii_lowercase(),
                            image.name,
                            image.describe(),
                            size(image.data.len() as u64),
                            hex(&image.md5)
                        ),
                    );
                    match kind {
                        SlotKind::Bytecode => s.prev_bc = Some(image),
                        SlotKind::Vm => s.prev_vm = Some(image),
                    }
                }
                Err(p) => {
                    s.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                    s.announce = p.message.clone();
                    s.image_problem = Some(p);
                }
            },
            Action::ClearPrevious(kind) => match kind {
                SlotKind::Bytecode => s.prev_bc = None,
                SlotKind::Vm => s.prev_vm = None,
            },
            Action::InfoRead(info) => {
                if let Conn::Open(c) = &mut s.conn {
                    // The device's own trial clock, as it stood now.
                    s.trial_left_at = info.trial_left_ms.map(|ms| (now_ms, ms));
                    c.info = *info;
                }
            }
            Action::ManifestRefused(p) => {
                s.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                s.announce = p.message.clone();
                s.manifest_problem = Some(p);
            }
        }
    }
}
