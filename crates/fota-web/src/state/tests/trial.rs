//! The on-trial badge by the device's own clock (`Info` tag 9), and a firmware that runs
//! on without confirming itself shown as it is: still on trial, past its deadline, the
//! next restart bringing back the previous one.

use super::*;
use crate::components::images::Sample;

#[test]
fn the_badge_counts_down_by_the_devices_clock_then_says_it_was_not_confirmed() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    let report = b.update(Sample::NeverAccepts.image()).expect("update");
    assert_eq!(report.outcome, Outcome::OnTrial);
    assert_eq!(report.record.state, RecordState::Trial);
    // The update passed on the Info read after its restart: the device's own clock.
    let (at, left) = b.state.trial_left_at.expect("tag 9 seen");
    assert!(left > 0 && left < 1_500, "{left} ms left");
    b.apply(Action::Record(report.record));
    assert!(b.state.trial_since_ms.is_some());
    let clock = b.state.trial(at + 100).expect("on trial");
    assert!(clock.by_device);
    assert_eq!(clock.left_ms, Some(u64::from(left) - 100));
    assert!(!clock.overdue());
    assert!(
        clock.deadline().contains("left by the device's clock"),
        "{}",
        clock.deadline()
    );
    // Past it, the device still answering with the trial: not confirmed, not reverted.
    let past = b
        .state
        .trial(at + u64::from(left) + 1)
        .expect("still on trial");
    assert_eq!(past.left_ms, Some(0));
    assert!(past.overdue());
    assert_eq!(
        past.deadline(),
        ": it had to confirm within 1.5 s of its start and has not"
    );
    // The result says the same, and what the next restart brings back.
    let Some(Finish::Done { report, .. }) = &b.state.finish else {
        panic!("finished: {:?}", b.state.finish);
    };
    let text = report.outcome.describe_with(&report.record);
    assert!(
        text.contains("has not confirmed itself")
            && text.contains("next restart")
            && text.contains("(bytecode slot 0 with VM slot 0)"),
        "{text}"
    );
    // Restarted: the previous one is back, and the device's clock is forgotten.
    block_on(b.dev.restart()).expect("restart");
    let info = block_on(b.dev.wait_for_device()).expect("back");
    assert_eq!(info.trial_left_ms, None);
    b.apply(Action::InfoRead(Box::new(info)));
    assert_eq!(b.state.trial_left_at, None);
    let record = block_on(b.dev.get_record()).expect("record");
    assert_eq!(record.state, RecordState::Confirmed);
    b.apply(Action::Record(record));
    assert_eq!(b.state.trial(b.now), None);
}

#[test]
fn a_device_on_trial_at_connect_gives_its_clock_and_a_record_without_trial_drops_it() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    let mut info = b.state.info().cloned().expect("connected");
    info.trial_left_ms = Some(900);
    b.apply(Action::Disconnected);
    b.apply(Action::Connecting);
    b.apply(Action::Connected(Box::new(connection(info))));
    let at = b.now;
    assert_eq!(b.state.trial_left_at, Some((at, 900)));
    let mut trial = b.state.record.unwrap_or_default();
    trial.valid = 1;
    trial.state = RecordState::Trial;
    b.apply(Action::Record(trial));
    let clock = b.state.trial(at + 400).expect("on trial");
    assert_eq!((clock.left_ms, clock.by_device), (Some(500), true));
    trial.state = RecordState::Confirmed;
    b.apply(Action::Record(trial));
    assert_eq!(b.state.trial_left_at, None, "confirmed: no clock");
}

#[test]
fn without_the_devices_clock_the_deadline_is_known_passed_from_the_pages_own_view() {
    let clock = |elapsed_ms, left_ms, confirm_ms| TrialClock {
        elapsed_ms,
        left_ms,
        confirm_ms,
        by_device: false,
    };
    assert!(
        clock(2_000, None, Some(1_500)).overdue(),
        "seen on trial longer"
    );
    assert!(!clock(1_000, None, Some(1_500)).overdue());
    assert!(clock(10, Some(0), Some(1_500)).overdue());
    assert!(!clock(10, Some(5), Some(1_500)).overdue());
    assert!(
        !clock(60_000, Some(0), None).overdue(),
        "no deadline declared"
    );
    assert!(
        clock(2_000, None, Some(1_500))
            .deadline()
            .contains("had to confirm within 1.5 s of its start and has not")
    );
}
