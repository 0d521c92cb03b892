//! Everything the page shows, changed only through [`Action`]s.

use fota_host::protocol::Layout as _;
use std::rc::Rc;

use fota_host::protocol::{ImageRules, Info, LayoutKind, Record, RecordState, SlotDesc, SlotKind};
use fota_host::update::Report;
use fota_host::{HostError, Image, Outcome, Phase, Plan, Progress, SlotChoice, Step, Vetted};
use yew::Reducible;

mod format;
mod image;
mod load;
mod manifest;
mod offered;
mod reduce;
mod rules;
mod settings;
mod trial;

pub use format::{hex, kind_name, resumed_text, size, why_reverted};
pub use image::ImageFile;
pub use manifest::{Manifest, ManifestDoc, ManifestState, check_image, image_from};
pub use settings::{BAUD_RATES, NEGOTIATE, Settings, TransportKind, ws_address};

pub use trial::{TrialClock, seconds};

/// Most log lines kept (the oldest go first).
const LOG_LIMIT: usize = 5000;

/// The guided update's stages, as the stepper shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Stage {
    #[default]
    Connect,
    Record,
    Image,
    Slot,
    Transfer,
    Checksum,
    Attempt,
    Outcome,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Connect,
        Stage::Record,
        Stage::Image,
        Stage::Slot,
        Stage::Transfer,
        Stage::Checksum,
        Stage::Attempt,
        Stage::Outcome,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Connect => "Connect",
            Stage::Record => "Record check",
            Stage::Image => "Image",
            Stage::Slot => "Slot",
            Stage::Transfer => "Erase & stream",
            Stage::Checksum => "Checksum",
            Stage::Attempt => "Attempt & restart",
            Stage::Outcome => "Outcome",
        }
    }

    /// The stage a step of fota-host's update belongs to.
    pub fn of_step(step: Step) -> Stage {
        match step {
            Step::RecordCheck => Stage::Record,
            Step::SlotChoice => Stage::Slot,
            Step::Erase | Step::Stream => Stage::Transfer,
            Step::Checksum => Stage::Checksum,
            Step::Attempt | Step::Restart => Stage::Attempt,
            Step::Outcome => Stage::Outcome,
        }
    }
}

pub use fota_host::Problem;

/// A host error as the page says it: a sentence, and the cancel as a plain fact.
pub fn problem_of(e: &HostError) -> Problem {
    if *e == HostError::Cancelled {
        return Problem::new("The update was cancelled.", e.help());
    }
    Problem::from(e).sentence()
}

/// The connected device.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub kind: TransportKind,
    pub info: Info,
    pub link: String,
    pub baud: Option<u32>,
}

/// The connection's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Conn {
    #[default]
    Closed,
    Opening,
    Open(Box<Connection>),
}

/// The update in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub step: Step,
    pub detail: String,
    pub progress: Option<Progress>,
    /// Every image's MD5 on the device matched (reached attempt).
    pub verified: bool,
    pub cancelling: bool,
    /// Bytes found on the device already (resume), of all.
    pub resumed: Option<(u64, u64)>,
    pub started_ms: u64,
    /// What the device printed since the update restarted it: why the new firmware was
    /// reverted, if it was.
    pub after_restart: Vec<String>,
    /// When the update restarted the device (its wait for the new firmware's
    /// confirmation starts then).
    pub restarted_ms: Option<u64>,
}

/// How long an update waits after its restart for the new firmware to confirm itself
/// (fota-host's `Plan::wait_accept`): faulty firmware is restarted by its watchdog after a
/// few seconds, and the revert must have time to show.
pub const WAIT_ACCEPT_MS: u64 = 20_000;

/// Most device lines kept in [`Run::after_restart`].
const AFTER_RESTART_LIMIT: usize = 50;

/// The end of the last update.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// It ran to its end; `why` is the device's own line that explains a revert.
    Done {
        report: Box<Report>,
        why: Option<String>,
    },
    /// The user cancelled it during stage `at`: not an error.
    Cancelled { at: Stage, help: String },
    /// It stopped with an error during stage `at`.
    Failed { problem: Problem, at: Stage },
}

/// Why an update stopped before its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    pub problem: Problem,
    /// The link went away with it.
    pub lost: bool,
    /// The user asked for it.
    pub cancelled: bool,
}

impl From<&HostError> for Stopped {
    fn from(e: &HostError) -> Self {
        Stopped {
            problem: e.into(),
            lost: matches!(e, HostError::Link(_)),
            cancelled: *e == HostError::Cancelled,
        }
    }
}

/// How the stepper shows a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Done,
    Current,
    Todo,
    /// The last update stopped here with an error.
    Failed,
    /// The user cancelled the last update here.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// What the firmware printed.
    Device,
    /// A protocol event (retries, baud changes, resume).
    Event,
    /// A step of the update.
    Step,
    /// The page's own notes.
    App,
    /// An error.
    Error,
}

impl LogKind {
    pub fn tag(self) -> &'static str {
        match self {
            LogKind::Device => "device",
            LogKind::Event => "event",
            LogKind::Step => "step",
            LogKind::App => "app",
            LogKind::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at_ms: u64,
    pub kind: LogKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppState {
    pub settings: Settings,
    pub web_serial: bool,
    pub conn: Conn,
    pub record: Option<Record>,
    /// The record could not be read at the last try.
    pub record_stale: bool,
    pub stage: Stage,
    pub bytecode: Option<ImageFile>,
    pub vm: Option<ImageFile>,
    pub bc_slot: SlotChoice,
    pub vm_slot: SlotChoice,
    pub restart: bool,
    pub resume: bool,
    pub image_problem: Option<Problem>,
    pub problem: Option<Problem>,
    /// The heading of `problem`.
    pub problem_title: &'static str,
    pub run: Option<Run>,
    pub finish: Option<Finish>,
    pub log: Rc<Vec<LogLine>>,
    /// Text for the screen-reader live region.
    pub announce: String,
    pub dragging: bool,
    /// The firmware manifest named by `?manifest=`.
    pub manifest: Option<ManifestState>,
    /// The layout whose images were fetched from the manifest (once per layout).
    pub manifest_for: Option<LayoutKind>,
    /// Why the manifest's images were refused (nothing was written).
    pub manifest_problem: Option<Problem>,
    /// Whether the device runs the manifest's images already.
    pub installed: Option<Installed>,
    /// When the page first read a record whose running configuration is on trial.
    pub trial_since_ms: Option<u64>,
    /// The device's own trial clock (`Info` tag 9): when the page read it, and the
    /// milliseconds it then said were left to confirm.
    pub trial_left_at: Option<(u64, u32)>,
    /// The user confirmed installing an image older than the device's minimum version
    /// (where the device allows downgrades).
    pub allow_downgrade: bool,
    /// The user asked to write images the device runs already.
    pub reinstall: bool,
    /// The firmware on the device now, as the user gave it (bytecode, VM): the update
    /// sends a delta from it where the device holds it (checked by its MD5 first).
    pub prev_bc: Option<ImageFile>,
    pub prev_vm: Option<ImageFile>,
    /// fota-host's check of each chosen image (bytecode, VM) against the device's rules,
    /// kept while what it depends on stays the same.
    vetted: [Option<Vetting>; 2],
}

/// What [`fota_host::vet`] was asked, and what it answered.
#[derive(Debug, Clone, PartialEq)]
struct Vetting {
    name: String,
    md5: [u8; 16],
    slot: SlotDesc,
    rules: Option<ImageRules>,
    allow_downgrade: bool,
    result: Result<Vetted, HostError>,
}

/// Whether the device already runs the images a manifest offers (the device's MD5 of its
/// running slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// Asked; the device is hashing its running slots.
    Asking,
    /// The running slots hold the same images.
    Same,
    /// They do not (or the device could not tell): the update goes ahead.
    Different,
}

/// Everything that changes the state. Effects (connecting, reading files, the update
/// itself) happen outside and report back with these.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Settings(Settings),
    Connecting,
    Connected(Box<Connection>),
    ConnectFailed(Problem),
    /// The user stopped connecting.
    ConnectCancelled,
    BaudChanged(u32),
    /// The link went away while connected.
    Lost(Problem),
    Disconnected,
    Record(Record),
    RecordStale,
    Goto(Stage),
    ImageLoaded(SlotKind, ImageFile),
    ImageRefused(Problem),
    ClearImage(SlotKind),
    /// Leave the images just flashed (a revert) and choose others.
    ChooseOther,
    SlotChoice(SlotKind, SlotChoice),
    SetRestart(bool),
    SetResume(bool),
    UpdateStarted,
    Step(Step, String),
    Progress(Progress),
    Cancelling,
    UpdateDone(Result<Box<Report>, Stopped>),
    /// The device's MD5 of the written slot matched the image.
    Verified,
    /// Bytes of the image already on the device, of all.
    Resumed(u64, u64),
    Log(LogKind, String),
    ClearLog,
    Dragging(bool),
    /// `?manifest=URL`: loading it.
    ManifestLoading(String),
    ManifestLoaded(Box<Manifest>),
    ManifestFailed(Problem),
    /// Fetching the manifest's images for this layout.
    ManifestFetching(LayoutKind),
    /// The manifest's images for the device's layout, fetched and checked against its
    /// sizes and hashes.
    ManifestImages(Vec<(SlotKind, ImageFile)>),
    /// An image did not match the manifest (or could not be fetched): nothing loaded.
    ManifestRefused(Problem),
    /// Asking the device whether its running slots hold the chosen images.
    InstalledAsked,
    /// Its answer about `asked` (kind, length, MD5 of each image): `same` when the running
    /// slots hold them all. An answer about images since replaced is dropped.
    Installed {
        asked: Vec<(SlotKind, u32, [u8; 16])>,
        same: bool,
    },
    /// Fetch the manifest's images again (after a refusal or a failed fetch).
    ManifestRetry,
    /// Write the images although the device runs them already.
    Reinstall,
    /// The user confirmed (or took back) a downgrade.
    AllowDowngrade(bool),
    /// The firmware on the device now, for a delta, read from a file.
    PreviousLoaded(SlotKind, ImageFile),
    ClearPrevious(SlotKind),
    /// The device's `Info` read again (after an update or an accept: its minimum
    /// versions change).
    InfoRead(Box<Info>),
}

/// An action with the time it happened (ms on the page's clock): the reducer reads no
/// clock, so it runs the same in a native test.
#[derive(Debug, Clone, PartialEq)]
pub struct At(pub u64, pub Action);

impl AppState {
    pub fn new(settings: Settings, web_serial: bool) -> AppState {
        AppState {
            settings,
            web_serial,
            restart: true,
            resume: true,
            ..AppState::default()
        }
    }

    pub fn connection(&self) -> Option<&Connection> {
        match &self.conn {
            Conn::Open(c) => Some(c),
            _ => None,
        }
    }

    pub fn info(&self) -> Option<&Info> {
        self.connection().map(|c| &c.info)
    }

    pub fn image(&self, kind: SlotKind) -> Option<&ImageFile> {
        match kind {
            SlotKind::Bytecode => self.bytecode.as_ref(),
            SlotKind::Vm => self.vm.as_ref(),
        }
    }

    fn choice(&self, kind: SlotKind) -> SlotChoice {
        match kind {
            SlotKind::Bytecode => self.bc_slot,
            SlotKind::Vm => self.vm_slot,
        }
    }

    /// Whether the device's layout can take a VM image (two VM slots or more).
    pub fn takes_vm(&self) -> bool {
        self.info().is_some_and(|i| i.count(SlotKind::Vm) >= 2)
    }

    /// The firmware the user said the device runs now, for a delta.
    pub fn previous(&self, kind: SlotKind) -> Option<&ImageFile> {
        match kind {
            SlotKind::Bytecode => self.prev_bc.as_ref(),
            SlotKind::Vm => self.prev_vm.as_ref(),
        }
    }

    /// The update of the chosen images with the chosen options, as fota-host runs it.
    pub fn plan(&self, wait_accept_ms: u64) -> Result<Plan, Problem> {
        let image = |f: &ImageFile| {
            Image::new(f.name.clone(), f.data.clone()).map_err(|e| Problem::from(&e))
        };
        let bc = self.bytecode.as_ref().ok_or_else(|| Problem {
            message: "No bytecode image is chosen.".into(),
            help: "Choose the bytecode image first.".into(),
        })?;
        let mut plan = Plan::new(image(bc)?);
        plan.vm = self.vm.as_ref().map(image).transpose()?;
        plan.bytecode_slot = self.bc_slot;
        plan.vm_slot = self.vm_slot;
        plan.restart = self.restart;
        plan.resume = self.resume;
        plan.wait_accept = core::time::Duration::from_millis(wait_accept_ms);
        plan.allow_downgrade = self.allow_downgrade;
        plan.check_installed = !self.reinstall;
        plan.bases = [&self.prev_bc, &self.prev_vm]
            .into_iter()
            .flatten()
            .map(image)
            .collect::<Result<_, _>>()?;
        Ok(plan)
    }

    /// Whether to ask the device if it runs the chosen images already: loaded, fit,
    /// and the record leaves nothing to decide (valid, confirmed, the current
    /// configuration runs). A manifest's images are asked about in the record step, a
    /// user's files once chosen.
    pub fn installed_check_due(&self) -> bool {
        if self.manifest_ready() {
            return true;
        }
        matches!(self.stage, Stage::Image | Stage::Slot)
            && !self.running()
            && self.finish.is_none()
            && self.installed.is_none()
            && !self.reinstall
            && self.record.is_some_and(|r| {
                r.valid != 0 && r.state == RecordState::Confirmed && r.runs_current()
            })
            && self.ready_to_flash()
    }

    /// What the installed check is about: the manifest's firmware, or the files' names.
    pub fn installed_name(&self) -> String {
        if self.manifest_images_loaded()
            && let Some(m) = self.manifest()
        {
            return format!("{} {}", m.name, m.version);
        }
        [&self.bytecode, &self.vm]
            .into_iter()
            .flatten()
            .map(|i| i.name.clone())
            .collect::<Vec<_>>()
            .join(" and ")
    }

    pub fn running(&self) -> bool {
        self.run.is_some()
    }

    /// How the stepper shows each of [`Stage::ALL`]: only the stages that ran are done;
    /// after a cancel or an error, the stage it stopped in says so and the later ones
    /// stay to come.
    pub fn marks(&self) -> [Mark; 8] {
        let plain = |at: Stage| {
            Stage::ALL.map(|stage| match stage.cmp(&at) {
                core::cmp::Ordering::Less => Mark::Done,
                core::cmp::Ordering::Equal => Mark::Current,
                core::cmp::Ordering::Greater => Mark::Todo,
            })
        };
        if let Some(run) = &self.run {
            return plain(Stage::of_step(run.step));
        }
        if self.stage != Stage::Outcome {
            return plain(self.stage);
        }
        let stopped = |at: Stage, mark: Mark| {
            Stage::ALL.map(|stage| {
                if stage == at {
                    mark
                } else if stage < at {
                    Mark::Done
                } else if stage == Stage::Outcome {
                    Mark::Current
                } else {
                    Mark::Todo
                }
            })
        };
        match &self.finish {
            Some(Finish::Done { .. }) => [Mark::Done; 8],
            Some(Finish::Cancelled { at, .. }) => stopped(*at, Mark::Cancelled),
            Some(Finish::Failed { at, .. }) => stopped(*at, Mark::Failed),
            None => plain(self.stage),
        }
    }

    /// The configuration on trial at `now_ms`, if one is: for how long, and how long it
    /// still has to confirm itself: by the device's own clock where it reported it
    /// (`Info` tag 9), else counted from the update's restart against the device's
    /// deadline, or the update's own wait where the device declares none.
    pub fn trial(&self, now_ms: u64) -> Option<TrialClock> {
        let since = self.trial_since_ms?;
        let confirm_ms = self.info().and_then(|i| i.confirm_ms);
        let window = confirm_ms.map_or(WAIT_ACCEPT_MS, u64::from);
        let by_device = self
            .trial_left_at
            .map(|(at, left)| (at + u64::from(left)).saturating_sub(now_ms));
        let left_ms = by_device.or_else(|| {
            self.run
                .as_ref()
                .and_then(|r| r.restarted_ms)
                .map(|t| (t + window).saturating_sub(now_ms))
        });
        Some(TrialClock {
            elapsed_ms: now_ms.saturating_sub(since),
            left_ms,
            confirm_ms,
            by_device: by_device.is_some(),
        })
    }

    fn log(&mut self, at_ms: u64, kind: LogKind, text: String) {
        let log = Rc::make_mut(&mut self.log);
        if log.len() >= LOG_LIMIT {
            log.drain(..LOG_LIMIT / 10);
        }
        log.push(LogLine { at_ms, kind, text });
    }
}

impl Reducible for AppState {
    type Action = At;

    fn reduce(self: Rc<Self>, At(now_ms, action): At) -> Rc<Self> {
        let mut s = Rc::unwrap_or_clone(self);
        s.apply(now_ms, action);
        Rc::new(s)
    }
}

#[cfg(test)]
mod tests;
