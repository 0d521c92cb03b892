//! The reducer, natively: every action, and whole updates against the simulated device
//! (fota-host's update in virtual time) whose observer feeds the reducer exactly as the
//! page's connection task does.

use std::cell::RefCell;
use std::rc::Rc;

use fota_host::protocol::{Info, Record, RecordState, SlotKind};
use fota_host::sim::SimTransport;
use fota_host::{
    CancelToken, Device, HostError, Observer, Outcome, Phase, Plan, Progress, SlotChoice, Step,
};
use fota_image::host::Format;
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

use super::*;

/// Records what a connection task would dispatch.
#[derive(Clone, Default)]
struct Recorder {
    actions: Rc<RefCell<Vec<Action>>>,
    /// Cancel when streaming passes this fraction.
    cancel_at: Rc<RefCell<Option<(f64, CancelToken)>>>,
}

impl Observer for Recorder {
    fn step(&mut self, step: Step, detail: &str) {
        self.actions
            .borrow_mut()
            .push(Action::Step(step, detail.into()));
    }
    fn progress(&mut self, p: &Progress) {
        self.actions.borrow_mut().push(Action::Progress(*p));
        if let Some((at, token)) = &*self.cancel_at.borrow()
            && p.phase == Phase::Stream
            && p.fraction() >= *at
            && !token.is_cancelled()
        {
            token.cancel();
            self.actions.borrow_mut().push(Action::Cancelling);
        }
    }
    fn verified(&mut self, _image: &str, _md5: &[u8; 16]) {
        self.actions.borrow_mut().push(Action::Verified);
    }
    fn resumed(&mut self, _image: &str, kept: u64, total: u64) {
        self.actions.borrow_mut().push(Action::Resumed(kept, total));
    }
    fn record(&mut self, record: &Record) {
        self.actions.borrow_mut().push(Action::Record(*record));
    }
    fn info(&mut self, info: &Info) {
        self.actions
            .borrow_mut()
            .push(Action::InfoRead(Box::new(info.clone())));
    }
    fn device_log(&mut self, line: &str) {
        self.actions
            .borrow_mut()
            .push(Action::Log(LogKind::Device, line.into()));
    }
    fn event(&mut self, line: &str) {
        self.actions
            .borrow_mut()
            .push(Action::Log(LogKind::Event, line.into()));
    }
}

struct Bench {
    state: AppState,
    dev: Device<SimTransport>,
    rec: Recorder,
    now: u64,
}

impl Bench {
    /// Connected to a factory-fresh simulated device, its record read.
    fn new(layout: LayoutKind) -> Bench {
        Bench::with(DeviceConfig::new(layout))
    }

    fn with(config: DeviceConfig) -> Bench {
        let rec = Recorder::default();
        let link = SimTransport::new(SimDevice::new(config), Default::default());
        let mut dev = Device::new(link, Box::new(rec.clone()));
        let info = block_on(dev.connect(&[])).expect("connect");
        let record = block_on(dev.get_record()).expect("record");
        let mut b = Bench {
            state: AppState::new(Settings::default(), false),
            dev,
            rec,
            now: 0,
        };
        b.apply(Action::Connecting);
        b.apply(Action::Connected(Box::new(connection(info))));
        b.apply(Action::Record(record));
        b.rec.actions.borrow_mut().clear();
        b
    }

    fn apply(&mut self, action: Action) {
        self.now += 10;
        self.state.apply(self.now, action);
    }

    /// Feed the reducer what the device reported since the last call.
    fn drain(&mut self) {
        let actions: Vec<Action> = self.rec.actions.borrow_mut().drain(..).collect();
        for a in actions {
            self.apply(a);
        }
    }

    /// Load `image`, walk through the steps and run the update as the page does.
    fn update(&mut self, image: ImageFile) -> Result<Box<Report>, Stopped> {
        self.apply(Action::Goto(Stage::Image));
        self.apply(Action::ImageLoaded(SlotKind::Bytecode, image.clone()));
        self.apply(Action::Goto(Stage::Slot));
        assert!(self.state.ready_to_flash());
        self.apply(Action::UpdateStarted);
        assert!(self.state.running());
        let mut plan = Plan::new(
            fota_host::Image::new(image.name.clone(), image.data.clone()).expect("image"),
        );
        plan.wait_accept = core::time::Duration::from_secs(20);
        let token = self
            .rec
            .cancel_at
            .borrow()
            .as_ref()
            .map_or_else(CancelToken::new, |(_, t)| t.clone());
        self.dev.set_cancel(token);
        let result = block_on(fota_host::update(&mut self.dev, &plan));
        self.drain();
        let result = result.map(Box::new).map_err(|e| Stopped::from(&e));
        self.apply(Action::UpdateDone(result.clone()));
        result
    }
}

fn connection(info: Info) -> Connection {
    Connection {
        kind: TransportKind::Sim,
        info,
        link: "simulated device".into(),
        baud: Some(115_200),
    }
}

fn sample(healthy: bool) -> ImageFile {
    if healthy {
        ImageFile::raw("blink-v2.bin".into(), fota_sim::images::blink_v2())
    } else {
        ImageFile::raw(
            "blink-v3-broken.bin".into(),
            fota_sim::images::blink_v3_broken(),
        )
    }
}

use Mark::{Cancelled, Current, Done, Failed, Todo};

#[test]
fn a_healthy_image_is_accepted_and_every_stage_is_done() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    assert_eq!(b.state.marks()[1], Current, "record check after connecting");
    let report = b.update(sample(true)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(b.state.stage, Stage::Outcome);
    assert!(!b.state.running());
    assert_eq!(b.state.marks(), [Done; 8]);
    assert!(matches!(
        &b.state.finish,
        Some(Finish::Done { why: None, .. })
    ));
    assert_eq!(b.state.record, Some(report.record));
    assert!(b.state.announce.starts_with("Update finished."));
    // Every line carries the time its action came with; none from a clock.
    let log = b.state.log.clone();
    assert!(log.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
    assert!(log.iter().any(|l| l.kind == LogKind::Step));
}

#[test]
fn a_revert_says_why_from_the_device_log_and_offers_another_image() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    let report = b.update(sample(false)).expect("update");
    assert_eq!(report.outcome, Outcome::Reverted);
    let Some(Finish::Done { why, .. }) = &b.state.finish else {
        panic!("no outcome: {:?}", b.state.finish);
    };
    let why = why.as_deref().expect("a reason");
    assert!(why.contains("self-test failed"), "{why}");
    assert!(why.lines().count() <= 3, "{why}");
    // Its button leaves the faulty image: the next update cannot be the same one.
    b.apply(Action::ChooseOther);
    assert_eq!(b.state.stage, Stage::Image);
    assert!(b.state.bytecode.is_none() && b.state.finish.is_none());
    assert!(!b.state.ready_to_flash());
}

#[test]
fn a_cancel_marks_only_the_stages_that_ran_and_is_no_error() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.rec.cancel_at.replace(Some((0.3, CancelToken::new())));
    let stopped = b.update(sample(true)).expect_err("cancelled");
    assert!(stopped.cancelled && !stopped.lost);
    assert_eq!(
        b.state.marks(),
        [Done, Done, Done, Done, Cancelled, Todo, Todo, Current],
        "erase & stream cancelled; checksum and attempt never ran"
    );
    let Some(Finish::Cancelled { at, help }) = &b.state.finish else {
        panic!("not a cancel: {:?}", b.state.finish);
    };
    assert_eq!(*at, Stage::Transfer);
    assert!(help.contains("still runs its current firmware"), "{help}");
    assert!(b.state.problem.is_none(), "a cancel is not an error");
    assert!(!b.state.log.iter().any(|l| l.kind == LogKind::Error));
    // The device kept its firmware; trying again resumes.
    assert_eq!(
        b.state.record.map(|r| r.state),
        Some(RecordState::Confirmed)
    );
    b.rec.cancel_at.replace(None);
    b.apply(Action::UpdateStarted);
    let plan = Plan::new(
        fota_host::Image::new("blink-v2.bin".to_string(), fota_sim::images::blink_v2())
            .expect("image"),
    );
    b.dev.set_cancel(CancelToken::new());
    let report = block_on(fota_host::update(&mut b.dev, &plan)).expect("resumed");
    b.drain();
    assert!(b.state.run.as_ref().is_some_and(|r| r.resumed.is_some()));
    assert!(report.skipped_bytes > 0);
    b.apply(Action::UpdateDone(Ok(Box::new(report))));
    assert_eq!(b.state.marks(), [Done; 8]);
}

#[test]
fn cancelling_marks_the_run_once_and_only_while_running() {
    let mut s = AppState::default();
    s.apply(1, Action::Cancelling);
    assert!(s.run.is_none() && s.log.is_empty());
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::Goto(Stage::Image));
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    b.apply(Action::UpdateStarted);
    let lines = b.state.log.len();
    b.apply(Action::Cancelling);
    b.apply(Action::Cancelling);
    assert!(b.state.run.as_ref().is_some_and(|r| r.cancelling));
    assert_eq!(b.state.log.len(), lines + 1);
}

#[test]
fn an_error_marks_the_stage_it_stopped_in() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::Goto(Stage::Image));
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    b.apply(Action::UpdateStarted);
    b.apply(Action::Step(Step::Erase, "erasing".into()));
    b.apply(Action::Step(Step::Stream, "sending".into()));
    b.apply(Action::Step(Step::Checksum, "md5".into()));
    assert_eq!(
        b.state.marks(),
        [Done, Done, Done, Done, Done, Current, Todo, Todo]
    );
    let e = HostError::ChecksumMismatch {
        expected: [0; 16],
        device: [1; 16],
    };
    b.apply(Action::UpdateDone(Err(Stopped::from(&e))));
    assert_eq!(
        b.state.marks(),
        [Done, Done, Done, Done, Done, Failed, Todo, Current]
    );
    assert!(matches!(
        &b.state.finish,
        Some(Finish::Failed {
            at: Stage::Checksum,
            ..
        })
    ));
    assert!(b.state.log.iter().any(|l| l.kind == LogKind::Error));
    assert!(b.state.connection().is_some());
}

#[test]
fn a_link_lost_during_an_update_goes_back_to_connect_with_the_problem() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::Goto(Stage::Image));
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    b.apply(Action::UpdateStarted);
    b.apply(Action::Step(Step::Stream, "sending".into()));
    let e = HostError::Link(fota_host::LinkError::Disconnected("unplugged".into()));
    b.apply(Action::UpdateDone(Err(Stopped::from(&e))));
    assert_eq!(b.state.stage, Stage::Connect);
    assert_eq!(b.state.conn, Conn::Closed);
    assert_eq!(b.state.problem_title, "The update stopped");
    assert!(b.state.problem.is_some());
    assert_eq!(b.state.marks()[0], Current);
    assert!(b.state.marks()[1..].iter().all(|m| *m == Todo));
    // Connecting again offers to resume (the images are kept).
    let info = b.state.info().cloned();
    assert!(info.is_none());
}

#[test]
fn connect_actions() {
    let mut s = AppState::new(Settings::default(), true);
    assert!(s.web_serial && s.restart && s.resume);
    s.apply(1, Action::Connecting);
    assert_eq!(s.conn, Conn::Opening);
    let p = Problem {
        message: "No port.".into(),
        help: "Plug it in.".into(),
    };
    s.apply(2, Action::ConnectFailed(p.clone()));
    assert_eq!(s.conn, Conn::Closed);
    assert_eq!(s.problem, Some(p.clone()));
    assert_eq!(s.problem_title, "Could not connect");
    assert_eq!(
        s.log.last().map(|l| (l.at_ms, l.kind)),
        Some((2, LogKind::Error))
    );
    // A new try clears the last problem; cancelling it is no error.
    s.apply(3, Action::Connecting);
    assert!(s.problem.is_none());
    s.apply(3, Action::ConnectCancelled);
    assert_eq!(
        (s.stage, &s.conn, &s.problem),
        (Stage::Connect, &Conn::Closed, &None)
    );
    assert_eq!(s.announce, "Connecting cancelled.");
    s.apply(3, Action::Connecting);
    let b = Bench::new(LayoutKind::BytecodeOnly);
    let info = b.state.info().cloned().expect("info");
    s.apply(4, Action::Connected(Box::new(connection(info))));
    assert_eq!(s.stage, Stage::Record);
    assert!(s.record.is_none(), "read again for this device");
    s.apply(5, Action::BaudChanged(921_600));
    assert_eq!(s.connection().and_then(|c| c.baud), Some(921_600));
    s.apply(6, Action::RecordStale);
    assert!(s.record_stale);
    let record = b.state.record.expect("record");
    s.apply(7, Action::Record(record));
    assert!(!s.record_stale);
    s.apply(8, Action::Lost(p));
    assert_eq!((s.stage, &s.conn), (Stage::Connect, &Conn::Closed));
    assert_eq!(s.problem_title, "The connection was lost");
    assert!(s.record_stale);
    s.apply(9, Action::Disconnected);
    assert!(s.record.is_none());
    assert_eq!(s.announce, "Disconnected.");
}

#[test]
fn navigation_needs_a_connection_and_waits_for_the_run() {
    let mut s = AppState::default();
    s.apply(1, Action::Goto(Stage::Slot));
    assert_eq!(s.stage, Stage::Connect, "no step without a device");
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::Goto(Stage::Image));
    assert_eq!(
        b.state.marks(),
        [Done, Done, Current, Todo, Todo, Todo, Todo, Todo]
    );
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    b.apply(Action::UpdateStarted);
    b.apply(Action::Goto(Stage::Image));
    assert_eq!(b.state.stage, Stage::Record, "no navigation during the run");
}

#[test]
fn image_actions() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    assert_eq!(
        b.state.stage,
        Stage::Image,
        "a file dropped on the record step"
    );
    assert!(b.state.ready_to_flash());
    let last = b.state.log.last().expect("log").text.clone();
    assert!(last.contains("KiB, MD5 "), "{last}");
    b.apply(Action::ClearImage(SlotKind::Bytecode));
    assert!(!b.state.ready_to_flash());
    // A VM image on a layout with one VM slot, an empty file, one too large: refused.
    b.apply(Action::ImageLoaded(SlotKind::Vm, sample(true)));
    assert!(b.state.vm.is_none());
    assert!(
        b.state
            .image_problem
            .as_ref()
            .is_some_and(|p| p.message.contains("single VM slot"))
    );
    b.apply(Action::ImageLoaded(
        SlotKind::Bytecode,
        ImageFile::raw("empty.bin".into(), vec![]),
    ));
    assert!(b.state.bytecode.is_none());
    b.apply(Action::ImageLoaded(
        SlotKind::Bytecode,
        ImageFile::raw("big.bin".into(), vec![0xA5; 16 << 20]),
    ));
    assert!(b.state.bytecode.is_none());
    let p = b.state.image_problem.clone().expect("refused");
    b.apply(Action::ImageRefused(p.clone()));
    assert_eq!(b.state.image_problem, Some(p));
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    assert!(b.state.image_problem.is_none());
}

#[test]
fn a_vm_image_on_the_vm_layout() {
    let mut b = Bench::new(LayoutKind::VmAndBytecode);
    assert!(b.state.takes_vm());
    b.apply(Action::ImageLoaded(
        SlotKind::Vm,
        ImageFile::raw("zvm.bin".into(), fota_sim::images::vm_v2()),
    ));
    assert!(b.state.vm.is_some());
    assert!(b.state.target(SlotKind::Vm).is_some());
}

#[test]
fn options_and_slot_choice() {
    let mut s = AppState::new(Settings::default(), false);
    s.apply(1, Action::SetRestart(false));
    s.apply(2, Action::SetResume(false));
    assert!(!s.restart && !s.resume);
    s.apply(
        3,
        Action::SlotChoice(SlotKind::Bytecode, SlotChoice::Index(1)),
    );
    s.apply(4, Action::SlotChoice(SlotKind::Vm, SlotChoice::Index(0)));
    assert_eq!(
        (s.bc_slot, s.vm_slot),
        (SlotChoice::Index(1), SlotChoice::Index(0))
    );
    let settings = Settings {
        ws_url: "ws://10.0.0.2:9000".into(),
        ..Settings::default()
    };
    s.apply(5, Action::Settings(settings.clone()));
    assert_eq!(s.settings, settings);
    s.apply(6, Action::Dragging(true));
    assert!(s.dragging);
    s.apply(7, Action::Log(LogKind::App, "hello".into()));
    assert_eq!(s.log.len(), 1);
    s.apply(8, Action::ClearLog);
    assert!(s.log.is_empty());
}

#[test]
fn update_started_needs_a_ready_image() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::UpdateStarted);
    assert!(!b.state.running());
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    b.apply(Action::UpdateStarted);
    let run = b.state.run.clone().expect("running");
    assert_eq!(run.started_ms, b.now, "the time the action came with");
    b.apply(Action::Progress(Progress {
        phase: Phase::Stream,
        done: 10,
        total: 20,
        per_second: 100.0,
        eta: None,
    }));
    assert_eq!(b.state.announce, "Sending: 50 percent.");
    b.apply(Action::Verified);
    assert!(b.state.run.as_ref().is_some_and(|r| r.verified));
    b.apply(Action::Resumed(4096, 32768));
    assert_eq!(
        b.state.run.as_ref().and_then(|r| r.resumed),
        Some((4096, 32768))
    );
    assert_eq!(
        b.state.log.last().map(|l| l.text.as_str()),
        Some(
            "4.0 KiB of 32 KiB are already on the device and are not sent again; 4096 of 32768 bytes"
        )
    );
}

#[test]
fn the_log_keeps_its_newest_lines() {
    let mut s = AppState::default();
    for i in 0..(LOG_LIMIT as u64 + 1) {
        s.apply(i, Action::Log(LogKind::Event, format!("line {i}")));
    }
    assert!(s.log.len() <= LOG_LIMIT);
    assert_eq!(s.log.last().map(|l| l.at_ms), Some(LOG_LIMIT as u64));
}

#[test]
fn why_reverted_prefers_a_failure_line() {
    let lines: Vec<String> = [
        "app: starting",
        "app: self-test failed, hanging",
        "app: idle",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        why_reverted(&lines).as_deref(),
        Some("app: self-test failed, hanging")
    );
    let two: Vec<String> = [
        "app: self-test failed",
        "watchdog: hung, resetting",
        "boot: ok",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        why_reverted(&two).as_deref(),
        Some("app: self-test failed\nwatchdog: hung, resetting")
    );
    let plain: Vec<String> = vec!["app: starting".into(), " ".into()];
    assert_eq!(why_reverted(&plain).as_deref(), Some("app: starting"));
    assert_eq!(why_reverted(&[]), None);
}

#[test]
fn bridge_addresses_get_their_scheme() {
    assert_eq!(ws_address("127.0.0.1:9000"), "ws://127.0.0.1:9000");
    assert_eq!(
        ws_address(" localhost:9000/?token=ab "),
        "ws://localhost:9000/?token=ab"
    );
    assert_eq!(ws_address("ws://127.0.0.1:9000"), "ws://127.0.0.1:9000");
    assert_eq!(ws_address("WSS://host:443"), "WSS://host:443");
    assert_eq!(ws_address("http://host:9000"), "ws://host:9000");
    assert_eq!(ws_address("https://host"), "wss://host");
    assert_eq!(ws_address(""), "");
}

#[test]
fn sizes() {
    assert_eq!(size(512), "512 B");
    assert_eq!(size(1536), "1.5 KiB");
    assert_eq!(size(32 * 1024), "32 KiB");
    assert_eq!(size(3 << 20), "3.0 MiB");
}

/// `data` as an Intel HEX file from `addr`.
fn hex_file(addr: u32, data: &[u8]) -> Vec<u8> {
    use ihex::Record;
    let mut records = Vec::new();
    let mut at = addr;
    for chunk in data.chunks(16) {
        if at & 0xFFFF == 0 || records.is_empty() {
            records.push(Record::ExtendedLinearAddress((at >> 16) as u16));
        }
        records.push(Record::Data {
            offset: (at & 0xFFFF) as u16,
            value: chunk.to_vec(),
        });
        at += chunk.len() as u32;
    }
    records.push(Record::EndOfFile);
    ihex::create_object_file_representation(&records)
        .expect("hex")
        .into_bytes()
}

fn slot_addr(b: &Bench, kind: SlotKind, index: u32) -> u32 {
    b.state
        .info()
        .and_then(|i| i.slot(kind, index))
        .expect("slot")
        .addr
}

#[test]
fn a_hex_file_goes_to_the_slot_its_addresses_select() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    let blink = fota_sim::images::blink_v2();
    let at = slot_addr(&b, SlotKind::Bytecode, 1);
    let image = ImageFile::read("blink.hex".into(), hex_file(at, &blink)).expect("reads");
    assert_eq!(image.format, Format::IntelHex);
    assert!(image.warnings.is_empty(), "{:?}", image.warnings);
    b.apply(Action::Goto(Stage::Image));
    // Dropped on the page (no zone): its addresses decide.
    b.apply(Action::ImageLoaded(SlotKind::Vm, image));
    assert!(
        b.state.image_problem.is_none(),
        "{:?}",
        b.state.image_problem
    );
    let placed = b.state.bytecode.clone().expect("a bytecode image");
    assert_eq!(
        placed.placed.map(|s| (s.kind, s.index)),
        Some((SlotKind::Bytecode, 1))
    );
    assert_eq!(*placed.data, blink);
    assert_eq!(b.state.bc_slot, SlotChoice::Index(1));
    assert!(
        placed.describe().starts_with("Intel HEX, 32 KiB at 0x"),
        "{}",
        placed.describe()
    );
    assert!(b.state.ready_to_flash());
    // Its addresses chose the slot: another choice would write it where it does not run.
    b.apply(Action::SlotChoice(SlotKind::Bytecode, SlotChoice::Index(0)));
    assert_eq!(b.state.bc_slot, SlotChoice::Index(1));
    // A sample after it goes back to the automatic slot.
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    assert_eq!(b.state.bc_slot, SlotChoice::Auto);
}

#[test]
fn a_hex_file_loaded_before_connecting_is_placed_on_connect() {
    let b = Bench::new(LayoutKind::BytecodeOnly);
    let at = slot_addr(&b, SlotKind::Bytecode, 1);
    let mut s = AppState::default();
    let image = ImageFile::read(
        "blink.hex".into(),
        hex_file(at, &fota_sim::images::blink_v2()),
    )
    .expect("reads");
    s.apply(1, Action::ImageLoaded(SlotKind::Bytecode, image));
    assert!(s.bytecode.as_ref().is_some_and(|i| i.placed.is_none()));
    assert!(
        s.bytecode
            .as_ref()
            .is_some_and(|i| i.describe().contains("once connected"))
    );
    let c = b.state.connection().cloned().expect("connection");
    s.apply(2, Action::Connected(Box::new(c)));
    assert_eq!(
        s.bytecode.as_ref().and_then(|i| i.placed).map(|p| p.index),
        Some(1)
    );
}

#[test]
fn a_file_across_two_slots_is_refused_with_help() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    let at = slot_addr(&b, SlotKind::Bytecode, 1) - 16;
    let image = ImageFile::read("across.hex".into(), hex_file(at, &[0x5A; 64])).expect("reads");
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, image));
    assert!(b.state.bytecode.is_none());
    let p = b.state.image_problem.clone().expect("refused");
    assert!(p.message.starts_with("across.hex"), "{p:?}");
    assert!(!p.help.is_empty());
}

#[test]
fn a_broken_hex_file_is_refused_with_its_line() {
    let mut text = String::from_utf8(hex_file(0x50000, &[1, 2, 3, 4])).expect("text");
    text = text.replacen(":04", ":05", 1);
    let p = ImageFile::read("broken.hex".into(), text.into_bytes()).expect_err("refused");
    assert!(p.message.starts_with("broken.hex, line 2: "), "{p:?}");
    assert!(!p.help.is_empty());
}

#[test]
fn a_picture_is_flagged_before_anything_is_written() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(4096, 7);
    let image = ImageFile::read("photo.bin".into(), png).expect("reads");
    assert_eq!(image.format, Format::Raw);
    assert!(
        image.warnings.iter().any(|w| w.contains("picture")),
        "{:?}",
        image.warnings
    );
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, image));
    assert!(b.state.log.iter().any(|l| l.text.contains("picture")));
}

#[test]
fn the_microbit_micropython_hex_is_read_and_placed() {
    let Ok(src) = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/testdata/uflash-1.2.4.py"),
    ) else {
        eprintln!("skipped: target/testdata/uflash-1.2.4.py is not there");
        return;
    };
    let start = src.find("_RUNTIME = \"\"\"").expect("_RUNTIME") + 14;
    let len = src[start..].find("\"\"\"").expect("end");
    let hex = src.as_bytes()[start..start + len].to_vec();
    let image = ImageFile::read("micropython.hex".into(), hex).expect("reads");
    assert_eq!(image.format, Format::IntelHex);
    let fw = image.firmware.clone().expect("addresses");
    assert_eq!(fw.span().map(|(lo, _)| lo), Some(0), "linked at 0");
    // On the simulator's usual layout (64 KiB VM slots) it is too large: a clear refusal.
    let mut small = Bench::new(LayoutKind::VmAndBytecode);
    small.apply(Action::ImageLoaded(SlotKind::Bytecode, image.clone()));
    let p = small.state.image_problem.clone().expect("refused");
    assert!(p.message.contains("writes into several slots"), "{p:?}");
    // On a layout whose VM slot holds it (256 KiB), it goes to VM slot 0 (its addresses),
    // whatever zone it was dropped on; the UICR words outside every slot are left out
    // with a warning.
    let mut config = DeviceConfig::new(LayoutKind::VmAndBytecode);
    config.vm_slot_size = 256 * 1024;
    let mut b = Bench::with(config);
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, image));
    assert!(
        b.state.image_problem.is_none(),
        "{:?}",
        b.state.image_problem
    );
    let vm = b.state.vm.clone().expect("placed as the VM");
    assert_eq!(
        vm.placed.map(|s| (s.kind, s.index, s.addr)),
        Some((SlotKind::Vm, 0, 0))
    );
    assert_eq!(b.state.vm_slot, SlotChoice::Index(0));
    assert!(vm.data.len() > 200 * 1024 && vm.data.len() <= 256 * 1024);
    assert!(
        vm.warnings.iter().any(|w| w.contains("outside every slot")),
        "{:?}",
        vm.warnings
    );
    assert!(b.state.bytecode.is_none());
    // VM slot 0 runs the factory VM: protected, said before anything is written.
    let p = b.state.blocker(SlotKind::Vm).expect("slot 0 runs");
    assert!(p.message.contains("VM slot 0"), "{p:?}");
    assert!(!b.state.ready_to_flash());
}

mod facts;
mod manifests;
mod trial;

#[test]
fn the_record_panel_clocks_a_trial_and_the_updates_wait_for_it() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    let confirmed = b.state.record.expect("record");
    assert_eq!(b.state.trial(b.now), None);
    let mut trial = confirmed;
    trial.state = RecordState::Trial;
    assert!(trial.runs_current());
    b.apply(Action::Record(trial));
    let since = b.now;
    assert_eq!(b.state.trial_since_ms, Some(since));
    // Read again: the same trial, its clock goes on.
    b.apply(Action::Record(trial));
    assert_eq!(b.state.trial_since_ms, Some(since));
    // The simulated device declares its deadline (Info tag 7): its watchdog's 1.5 s.
    assert_eq!(
        b.state.trial(since + 4_000),
        Some(TrialClock {
            elapsed_ms: 4_000,
            left_ms: None,
            confirm_ms: Some(1_500),
            by_device: false,
        })
    );
    // During an update: from its restart, the time it still waits for the confirmation.
    b.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    b.apply(Action::Goto(Stage::Slot));
    b.apply(Action::UpdateStarted);
    b.apply(Action::Step(Step::Restart, "restarting".into()));
    let restarted = b.now;
    assert_eq!(
        b.state.run.as_ref().and_then(|r| r.restarted_ms),
        Some(restarted)
    );
    // The device's deadline counts down from the restart.
    let clock = b.state.trial(restarted + 300).expect("on trial");
    assert_eq!(clock.left_ms, Some(1_200));
    assert_eq!(
        clock.deadline(),
        ": it must confirm within 1.5 s, 1.2 s left (a firmware that hangs before it does is reset by the watchdog and reverted)"
    );
    let over = b.state.trial(restarted + 1_501).expect("on trial");
    assert_eq!(over.left_ms, Some(0));
    assert!(
        over.deadline().contains("had to confirm within 1.5 s"),
        "{over:?}"
    );
    // A device that declares no deadline: the update's own wait instead.
    let Conn::Open(c) = &mut b.state.conn else {
        panic!("connected");
    };
    c.info.confirm_ms = None;
    let clock = b.state.trial(restarted + 5_000).expect("on trial");
    assert_eq!(clock.confirm_ms, None);
    assert_eq!(clock.left_ms, Some(WAIT_ACCEPT_MS - 5_000));
    assert_eq!(
        clock.deadline(),
        ": it has 15 s left to confirm itself before this update stops waiting (a restart without its accept() reverts it)"
    );
    assert_eq!(
        b.state
            .trial(restarted + WAIT_ACCEPT_MS + 1)
            .and_then(|c| c.left_ms),
        Some(0)
    );
    // A restarted step again does not move the start of the wait.
    b.apply(Action::Step(Step::Restart, "again".into()));
    assert_eq!(
        b.state.run.as_ref().and_then(|r| r.restarted_ms),
        Some(restarted)
    );
    // Accepted: no trial any more.
    b.apply(Action::Record(confirmed));
    assert_eq!(b.state.trial_since_ms, None);
    assert_eq!(b.state.trial(b.now), None);
    // A trial that is not what runs (a pending attempt's record) has no clock; nor has a
    // device that went away.
    let mut pending = trial;
    pending.running_bc = trial.bc_last;
    pending.bc_current = trial.bc_last + 1;
    b.apply(Action::Record(pending));
    assert_eq!(b.state.trial_since_ms, None);
    b.apply(Action::Record(trial));
    assert!(b.state.trial_since_ms.is_some());
    b.apply(Action::Disconnected);
    assert_eq!(b.state.trial_since_ms, None);
}
