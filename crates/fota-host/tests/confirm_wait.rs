//! After its restart an update waits for the device's own trial deadline (`Info` tag 7,
//! or what its clock says is left, tag 9) plus a stated margin, not a fixed time; a
//! firmware that runs on without calling `accept` is reported as still on trial, with
//! the firmware the next restart brings back. Times are the simulator's clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fota_host::protocol::{Info, RecordState};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{CONFIRM_MARGIN, MAX_CONFIRM_DEADLINE, Outcome, Plan, outcome_wait};
use fota_host::{Device, Image, Observer, Step, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use fota_sim::images;
use futures::executor::block_on;

/// The steps' details and the `Info`s the update reports.
#[derive(Clone, Default)]
struct Seen {
    steps: Arc<Mutex<Vec<(Step, String)>>>,
    infos: Arc<Mutex<Vec<Info>>>,
}

impl Observer for Seen {
    fn step(&mut self, step: Step, detail: &str) {
        self.steps
            .lock()
            .expect("lock")
            .push((step, detail.to_string()));
    }
    fn info(&mut self, info: &Info) {
        self.infos.lock().expect("lock").push(info.clone());
    }
}

fn device(seen: &Seen) -> Device<SimTransport<Virtual>> {
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    Device::new(SimTransport::new(sim, Virtual), Box::new(seen.clone()))
}

fn image(bytes: Vec<u8>) -> Image {
    Image::new("test.bin", bytes).expect("not empty")
}

/// The trial boot's time on the simulator's clock, and the `Info` read after it.
fn trial_boot(dev: &mut Device<SimTransport<Virtual>>) -> Duration {
    let boot = dev
        .link()
        .device()
        .boots()
        .iter()
        .rev()
        .find(|b| b.boot.trial)
        .expect("a trial boot")
        .at_ns;
    Duration::from_nanos(boot)
}

/// "Waiting up to 2.3 s ..." → 2.3 s.
fn announced_wait(seen: &Seen) -> Duration {
    let steps = seen.steps.lock().expect("lock");
    let detail = steps
        .iter()
        .find(|(s, d)| *s == Step::Outcome && d.starts_with("Waiting up to "))
        .map(|(_, d)| d.clone())
        .expect("the wait is announced");
    let n: f64 = detail["Waiting up to ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {detail:?}"));
    Duration::from_secs_f64(n)
}

#[test]
fn a_firmware_that_never_accepts_is_reported_on_trial_after_the_devices_deadline() {
    let seen = Seen::default();
    let mut dev = device(&seen);
    let confirm = Duration::from_millis(1_500);
    let plan = Plan::new(image(images::blink_v4_never_accepts()));
    assert!(plan.wait_accept >= Duration::from_secs(10), "the old wait");
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::OnTrial);
    let r = report.record;
    assert_eq!(r.state, RecordState::Trial);
    assert_eq!((r.bc_current, r.bc_last, r.running_bc), (1, 0, 1), "{r:?}");
    // Nothing reset it: one trial boot, still running.
    let boots = dev.link().device().boots();
    assert!(boots.last().is_some_and(|b| b.boot.trial), "{boots:?}");

    // The Info read after the restart carries the time left by the device's clock.
    let infos = seen.infos.lock().expect("lock").clone();
    let after = infos.last().expect("the Info after the restart");
    assert_eq!(after.confirm_ms, Some(1_500));
    let left = Duration::from_millis(u64::from(after.trial_left_ms.expect("tag 9")));
    assert!(left > Duration::ZERO && left < confirm, "{left:?}");

    // The wait: what is left plus the margin, announced, far below the old 10 s.
    let wait = announced_wait(&seen);
    let expected = left + CONFIRM_MARGIN;
    assert!(
        wait.abs_diff(expected) <= Duration::from_millis(50),
        "{wait:?} announced, {expected:?} expected"
    );
    // It ended once the device's deadline had passed, and not much later: the deadline,
    // the margin and one poll of the record.
    let boot = trial_boot(&mut dev);
    let end = dev.now();
    assert!(end >= boot + confirm, "ended before the deadline: {end:?}");
    assert!(
        end <= boot + confirm + CONFIRM_MARGIN + Duration::from_millis(400),
        "ended {:?} after the trial boot",
        end - boot
    );
    // The last word names what the next restart brings back, and the next steps.
    let steps = seen.steps.lock().expect("lock").clone();
    let (_, last) = steps.last().expect("steps");
    assert!(
        last.contains("has not confirmed itself") && last.contains("bytecode slot 0"),
        "{last}"
    );
    assert!(
        last.contains("Restart the device now") && last.contains("wait"),
        "{last}"
    );

    // Indeed: the next restart brings back the last working one.
    block_on(dev.restart()).expect("restart");
    let info = block_on(dev.wait_for_device()).expect("back");
    assert_eq!(info.trial_left_ms, None, "nothing on trial any more");
    let r = block_on(dev.get_record()).expect("record");
    assert_eq!(
        (r.state, r.bc_current, r.running_bc),
        (RecordState::Confirmed, 0, 0)
    );
}

#[test]
fn a_firmware_that_hangs_is_reported_reverted_within_the_deadline_and_margin() {
    let seen = Seen::default();
    let mut dev = device(&seen);
    let plan = Plan::new(image(images::blink_v3_broken()));
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Reverted);
    let boot = trial_boot(&mut dev);
    let end = dev.now();
    let confirm = Duration::from_millis(1_500);
    // The watchdog reset it at its deadline; the boot after it went back.
    let back = dev
        .link()
        .device()
        .boots()
        .last()
        .map(|b| Duration::from_nanos(b.at_ns))
        .expect("boots");
    assert!(back >= boot + confirm, "reset before the deadline");
    // A read sent as the watchdog fired goes unanswered for one reply timeout; then the
    // link is opened again and the record read.
    let reply = dev.timeouts.reply;
    assert!(
        end <= boot + confirm + reply + CONFIRM_MARGIN,
        "reported {:?} after the trial boot ({:?} after the device went back)",
        end - boot,
        end - back
    );
    assert!(announced_wait(&seen) <= confirm + CONFIRM_MARGIN);
}

#[test]
fn the_wait_follows_the_devices_clock_then_its_deadline_then_the_plan() {
    let plan = Plan::new(image(images::blink_v2()));
    let mut info = block_on(device(&Seen::default()).hello()).expect("hello");
    info.confirm_ms = None;
    info.trial_left_ms = None;
    let restarted = Duration::from_secs(100);
    let now = restarted + Duration::from_millis(260);
    // Declared nothing: the plan's own wait.
    let (wait, why) = outcome_wait(&info, Some(restarted), now, &plan);
    assert_eq!(wait, plan.wait_accept);
    assert!(why.contains("declares no deadline"), "{why}");
    // A deadline: from the restart request, plus the margin.
    info.confirm_ms = Some(1_500);
    let (wait, why) = outcome_wait(&info, Some(restarted), now, &plan);
    assert_eq!(wait, Duration::from_millis(1_500 - 260) + CONFIRM_MARGIN);
    assert!(
        why.contains("deadline of 1.5 s") && why.contains("plus 1.0 s"),
        "{why}"
    );
    // The device's own clock: what it says is left, plus the margin.
    info.trial_left_ms = Some(1_100);
    let (wait, why) = outcome_wait(&info, Some(restarted), now, &plan);
    assert_eq!(wait, Duration::from_millis(1_100) + CONFIRM_MARGIN);
    assert!(why.contains("1.1 s left by the device's clock"), "{why}");
    // Its deadline long passed (a trial found running): the margin only.
    info.trial_left_ms = Some(0);
    let (wait, _) = outcome_wait(&info, None, now, &plan);
    assert_eq!(wait, CONFIRM_MARGIN);
    // A deadline of weeks (wrong or hostile): ten minutes at most, by either tag.
    info.trial_left_ms = Some(u32::MAX);
    let (wait, _) = outcome_wait(&info, None, now, &plan);
    assert_eq!(wait, MAX_CONFIRM_DEADLINE + CONFIRM_MARGIN);
    info.trial_left_ms = None;
    info.confirm_ms = Some(u32::MAX);
    let (wait, _) = outcome_wait(&info, Some(restarted), now, &plan);
    assert!(wait <= MAX_CONFIRM_DEADLINE + CONFIRM_MARGIN, "{wait:?}");
    assert!(wait > MAX_CONFIRM_DEADLINE, "{wait:?}");
    info.trial_left_ms = Some(0);
    // The user's own wait, asked for: whatever the device declares.
    let mut plan = plan;
    plan.wait_accept = Duration::from_secs(20);
    plan.wait_accept_always = true;
    let (wait, why) = outcome_wait(&info, None, now, &plan);
    assert_eq!(wait, Duration::from_secs(20));
    assert!(why.contains("the wait asked for"), "{why}");
}
