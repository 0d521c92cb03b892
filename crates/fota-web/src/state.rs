//! Everything the page shows, changed only through [`Action`]s.

use fota_host::protocol::Layout as _;
use std::rc::Rc;

use fota_host::protocol::{Info, Record, SlotDesc, SlotKind};
use fota_host::update::Report;
use fota_host::{HostError, Outcome, Phase, Progress, SlotChoice, Step};
use fota_image::host::{Firmware, Format, Layout, ReadOptions, place, read_firmware};
use fota_sim::images::ImageInfo;
use md5::Digest;
use yew::Reducible;

use crate::transport::OpenError;
use crate::transport::sim::SimLayout;

/// The baud rates a serial port can be opened at; the agent answers at 115200 after a
/// reset and faster rates are negotiated from there.
pub const BAUD_RATES: [u32; 6] = [9600, 57600, 115_200, 230_400, 460_800, 921_600];
/// Rates tried by baud negotiation, fastest first.
pub const NEGOTIATE: [u32; 3] = [921_600, 460_800, 230_400];
/// Most log lines kept (the oldest go first).
const LOG_LIMIT: usize = 5000;

/// How the page reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TransportKind {
    /// The simulated device inside the page.
    #[serde(rename = "sim")]
    Sim,
    /// A serial port through Web Serial.
    #[serde(rename = "serial")]
    Serial,
    /// A WebSocket to `fota bridge --ws` or `fota sim --ws`.
    #[serde(rename = "ws")]
    WebSocket,
}

impl TransportKind {
    pub fn key(self) -> &'static str {
        match self {
            TransportKind::Sim => "sim",
            TransportKind::Serial => "serial",
            TransportKind::WebSocket => "ws",
        }
    }

    pub fn from_key(key: &str) -> Option<TransportKind> {
        match key {
            "sim" => Some(TransportKind::Sim),
            "serial" => Some(TransportKind::Serial),
            "ws" => Some(TransportKind::WebSocket),
            _ => None,
        }
    }
}

/// The connection form (kept in local storage).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub transport: TransportKind,
    pub layout: SimLayout,
    pub baud: u32,
    pub negotiate: bool,
    pub ws_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            transport: TransportKind::Sim,
            layout: SimLayout::BytecodeOnly,
            baud: 115_200,
            negotiate: true,
            ws_url: "ws://127.0.0.1:9000".into(),
        }
    }
}

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

/// Something went wrong: what, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub help: String,
}

impl From<&HostError> for Problem {
    fn from(e: &HostError) -> Self {
        if *e == HostError::Cancelled {
            return Problem {
                message: "The update was cancelled.".into(),
                help: e.help(),
            };
        }
        Problem {
            message: sentence(e.to_string()),
            help: e.help(),
        }
    }
}

impl From<OpenError> for Problem {
    fn from(e: OpenError) -> Self {
        Problem {
            message: e.message,
            help: e.help,
        }
    }
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

/// A firmware image chosen by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub name: String,
    /// The bytes that go to the slot (for a file with addresses, from the slot's start,
    /// gaps filled with 0xFF).
    pub data: Rc<Vec<u8>>,
    pub md5: [u8; 16],
    /// The sample header, for the simulator's images.
    pub header: Option<ImageInfo>,
    /// What the file was (raw binary, Intel HEX, ELF, UF2).
    pub format: Format,
    /// A file with addresses (HEX, ELF, UF2), as read: placed in the slot its addresses
    /// select once the device's layout is known.
    pub firmware: Option<Rc<Firmware>>,
    /// The slot its addresses selected.
    pub placed: Option<SlotDesc>,
    /// Facts worth showing (`UF2 family ...`, `ELF for ARM`).
    pub notes: Vec<String>,
    /// What looks wrong but does not stop it ("this looks like a picture, not
    /// firmware"), shown before anything is written.
    pub warnings: Vec<String>,
}

impl ImageFile {
    /// Read a file as a build produced it (raw, Intel HEX, ELF or UF2, recognised from
    /// its content): the same readers as the `fota` CLI's.
    pub fn read(name: String, bytes: Vec<u8>) -> Result<ImageFile, Problem> {
        if bytes.is_empty() {
            // Refused when loaded, with the same words as every empty image.
            return Ok(ImageFile::raw(name, bytes));
        }
        let fw =
            read_firmware(&name, &bytes, &ReadOptions::default()).map_err(|e| image_problem(&e))?;
        if fw.has_addresses() {
            // Until it is placed: the data from its lowest address.
            let (placed, _) = fota_image::host::place_or_describe(&fw, None, false);
            let mut image = ImageFile::raw(name, placed.bytes);
            image.format = fw.format;
            image.notes = fw.notes.clone();
            image.warnings = fw.warnings.clone();
            image.firmware = Some(Rc::new(fw));
            Ok(image)
        } else {
            let mut image = ImageFile::raw(name, bytes);
            image.warnings = fw.warnings;
            image.notes = fw.notes;
            Ok(image)
        }
    }

    /// Bytes with no address (the samples, a raw binary).
    pub fn raw(name: String, data: Vec<u8>) -> ImageFile {
        let md5: [u8; 16] = md5::Md5::digest(&data).into();
        let header = fota_sim::images::parse_image(&data);
        ImageFile {
            name,
            data: Rc::new(data),
            md5,
            header,
            format: Format::Raw,
            firmware: None,
            placed: None,
            notes: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The file's format and where its addresses put it, for the image card.
    pub fn describe(&self) -> String {
        match (&self.firmware, self.placed) {
            (None, _) => self.format.to_string(),
            (Some(fw), Some(slot)) => format!(
                "{}, {} at 0x{:08X}: {} slot {}",
                self.format,
                size(fw.data_len()),
                fw.span().map_or(0, |(lo, _)| lo),
                kind_name(slot.kind),
                slot.index
            ),
            (Some(fw), None) => format!(
                "{}, {} at 0x{:08X}: its slot is chosen by its addresses once connected",
                self.format,
                size(fw.data_len()),
                fw.span().map_or(0, |(lo, _)| lo),
            ),
        }
    }
}

/// A reader's or placement's error, with its help. Not capitalised: these start with
/// the file's name.
fn image_problem(e: &fota_image::host::Error) -> Problem {
    let mut message = e.to_string();
    if !message.ends_with('.') {
        message.push('.');
    }
    Problem {
        message,
        help: e.help(),
    }
}

/// Capital first letter, full stop at the end.
fn sentence(mut message: String) -> String {
    if let Some(first) = message.get(..1) {
        message = first.to_uppercase() + &message[1..];
    }
    if !message.ends_with('.') {
        message.push('.');
    }
    message
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
}

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

    /// The slot an image of `kind` will go to, as far as the page can tell before the
    /// agent is asked: the chosen one, or the one the agent will offer (the host's rule,
    /// [`fota_host::free_slot`]).
    pub fn target(&self, kind: SlotKind) -> Option<SlotDesc> {
        let info = self.info()?;
        let record = self.record?;
        match self.choice(kind) {
            SlotChoice::Index(i) => info.slot(kind, i).copied(),
            SlotChoice::Auto => fota_host::free_slot(info, &record, kind),
        }
    }

    /// Why `image` cannot go to the device as `kind`, if it cannot.
    pub fn refusal(&self, kind: SlotKind, image: &ImageFile) -> Option<Problem> {
        if image.data.is_empty() {
            return Some((&HostError::EmptyImage(image.name.clone())).into());
        }
        let info = self.info()?;
        if kind == SlotKind::Vm && info.count(SlotKind::Vm) < 2 {
            return Some(Problem {
                message: format!(
                    "{} is a VM image, but this device's layout has a single VM slot.",
                    image.name
                ),
                help: "Only the bytecode can be updated on this device: choose a bytecode \
                       image (.bin) instead."
                    .into(),
            });
        }
        let size = self.target(kind).map(|s| s.size).or_else(|| {
            info.slots
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.size)
                .max()
        })?;
        if image.data.len() > size as usize {
            return Some(
                (&HostError::ImageTooLarge {
                    name: image.name.clone(),
                    size: image.data.len(),
                    slot_size: size,
                })
                    .into(),
            );
        }
        None
    }

    /// An image with addresses placed in the slot they select on the connected device's
    /// layout (its kind is that slot's); anything else as it is.
    pub fn place(
        &self,
        kind: SlotKind,
        image: ImageFile,
    ) -> Result<(SlotKind, ImageFile), Problem> {
        let (Some(fw), Some(info)) = (image.firmware.clone(), self.info()) else {
            return Ok((kind, image));
        };
        let to_image = |k: SlotKind| match k {
            SlotKind::Vm => fota_image::Kind::Vm,
            SlotKind::Bytecode => fota_image::Kind::Bytecode,
        };
        let layout = Layout::new(
            info.slots
                .iter()
                .map(|s| fota_image::Slot {
                    kind: to_image(s.kind),
                    index: s.index,
                    addr: s.addr,
                    size: s.size,
                })
                .collect(),
        );
        // Data outside every slot (a micro:bit HEX's UICR configuration words) is left
        // out with a warning, shown before anything is written.
        let placed = place(&fw, Some(&layout), None, true).map_err(|e| image_problem(&e))?;
        let slot = placed.slot.and_then(|p| {
            info.slots
                .iter()
                .find(|s| to_image(s.kind) == p.kind && s.index == p.index)
                .copied()
        });
        let Some(slot) = slot else {
            return Ok((kind, image));
        };
        let mut out = ImageFile::raw(image.name.clone(), placed.bytes);
        out.format = image.format;
        out.firmware = Some(fw);
        out.placed = Some(slot);
        out.notes = image.notes;
        out.warnings = image.warnings;
        out.warnings.extend(placed.warnings);
        Ok((slot.kind, out))
    }

    /// Take a loaded image: placed, checked, kept (or refused with a problem).
    fn take_image(&mut self, now_ms: u64, kind: SlotKind, image: ImageFile) -> bool {
        let placed =
            self.place(kind, image)
                .and_then(|(kind, image)| match self.refusal(kind, &image) {
                    Some(p) => Err(p),
                    None => Ok((kind, image)),
                });
        let (kind, image) = match placed {
            Ok(v) => v,
            Err(p) => {
                self.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                self.announce = p.message.clone();
                self.image_problem = Some(p);
                return false;
            }
        };
        self.log(
            now_ms,
            LogKind::App,
            format!(
                "{} image {} ({}): {}, MD5 {}",
                kind_name(kind),
                image.name,
                image.describe(),
                size(image.data.len() as u64),
                hex(&image.md5)
            ),
        );
        for w in &image.warnings {
            self.log(now_ms, LogKind::Event, format!("{}: {w}", image.name));
        }
        self.announce = format!("{} image {} loaded.", kind_name(kind), image.name);
        self.image_problem = None;
        // A file with addresses chooses its slot; the next file without goes back to the
        // automatic choice.
        let was_placed = self.image(kind).is_some_and(|i| i.placed.is_some());
        let choice = match image.placed {
            Some(slot) => Some(SlotChoice::Index(u32::from(slot.index))),
            None if was_placed => Some(SlotChoice::Auto),
            None => None,
        };
        if let Some(choice) = choice {
            match kind {
                SlotKind::Bytecode => self.bc_slot = choice,
                SlotKind::Vm => self.vm_slot = choice,
            }
        }
        match kind {
            SlotKind::Bytecode => self.bytecode = Some(image),
            SlotKind::Vm => self.vm = Some(image),
        }
        true
    }

    /// Whether the images chosen can be flashed now.
    pub fn ready_to_flash(&self) -> bool {
        let Some(bc) = &self.bytecode else {
            return false;
        };
        self.connection().is_some()
            && self.refusal(SlotKind::Bytecode, bc).is_none()
            && self
                .vm
                .as_ref()
                .is_none_or(|vm| self.refusal(SlotKind::Vm, vm).is_none())
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

    fn log(&mut self, at_ms: u64, kind: LogKind, text: String) {
        let log = Rc::make_mut(&mut self.log);
        if log.len() >= LOG_LIMIT {
            log.drain(..LOG_LIMIT / 10);
        }
        log.push(LogLine { at_ms, kind, text });
    }

    /// The reducer: `action` happened at `now_ms`.
    pub fn apply(&mut self, now_ms: u64, action: Action) {
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
                s.conn = Conn::Open(c);
                s.problem = None;
                s.record = None;
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
                s.stage = Stage::Connect;
            }
            Action::Record(r) => {
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
            Action::ClearImage(kind) => match kind {
                SlotKind::Bytecode => s.bytecode = None,
                SlotKind::Vm => s.vm = None,
            },
            Action::ChooseOther => {
                if !s.running() {
                    s.bytecode = None;
                    s.vm = None;
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
        }
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

/// What a reverted firmware printed about its own failure: its first lines (three at
/// most) that speak of a failure, else its last line.
pub fn why_reverted(lines: &[String]) -> Option<String> {
    const WORDS: [&str; 7] = [
        "fail", "error", "panic", "fault", "abort", "assert", "watchdog",
    ];
    let failing: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            WORDS.iter().any(|w| l.contains(w))
        })
        .take(3)
        .collect();
    if failing.is_empty() {
        lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .map(str::to_string)
    } else {
        Some(failing.join("\n"))
    }
}

/// A bridge address as typed (`127.0.0.1:9000`, `localhost:9000/?token=…`) made into a
/// WebSocket URL: `ws://` is added when no scheme is given, `http(s)://` becomes
/// `ws(s)://`.
pub fn ws_address(typed: &str) -> String {
    let t = typed.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("ws://") || lower.starts_with("wss://") {
        t.to_string()
    } else if let Some(rest) = lower.strip_prefix("http://").map(|_| &t[7..]) {
        format!("ws://{rest}")
    } else if let Some(rest) = lower.strip_prefix("https://").map(|_| &t[8..]) {
        format!("wss://{rest}")
    } else if t.is_empty() {
        String::new()
    } else {
        format!("ws://{t}")
    }
}

pub fn kind_name(kind: SlotKind) -> &'static str {
    match kind {
        SlotKind::Vm => "VM",
        SlotKind::Bytecode => "Bytecode",
    }
}

/// What a resume found on the device.
pub fn resumed_text(kept: u64, total: u64) -> String {
    format!(
        "{} of {} are already on the device and are not sent again",
        size(kept),
        size(total)
    )
}

/// `1.5 KiB`, `32 KiB`, `1.0 MiB`.
pub fn size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        let k = bytes as f64 / 1024.0;
        if k < 10.0 {
            format!("{k:.1} KiB")
        } else {
            format!("{k:.0} KiB")
        }
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
