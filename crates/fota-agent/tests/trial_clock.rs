//! The time left on trial (`Info` tag 9): by the platform's clock, only while a firmware
//! runs on trial, never below zero.

mod common;

use common::*;

#[test]
fn info_reports_the_time_left_on_trial_by_the_platforms_clock() {
    let mut config = bc_only();
    config.confirm_ms = 1_500;
    let (mut agent, _) = boot(blank(), &config);
    agent.set_uptime_ms(100);
    assert_eq!(
        agent.info().trial_left_ms,
        None,
        "confirmed: nothing on trial"
    );
    agent.attempt(1, 0).unwrap();
    assert_eq!(agent.info().trial_left_ms, None, "pending: not running yet");
    let (mut agent, boot) = restart(agent, &config);
    assert!(boot.trial);
    assert_eq!(agent.info().trial_left_ms, None, "no clock given yet");
    agent.set_uptime_ms(0);
    assert_eq!(agent.info().trial_left_ms, Some(1_500));
    agent.set_uptime_ms(674);
    assert_eq!(agent.info().trial_left_ms, Some(826));
    assert_eq!(agent.info().confirm_ms, Some(1_500));
    // Past the deadline a firmware that still runs is still on trial: 0, not absent.
    agent.set_uptime_ms(9_000);
    assert_eq!(agent.info().trial_left_ms, Some(0));
    agent.accept().unwrap();
    assert_eq!(agent.info().trial_left_ms, None, "accepted");
}

#[test]
fn no_time_left_without_a_deadline_or_after_the_trial_was_given_up() {
    let config = bc_only();
    assert_eq!(config.confirm_ms, 0);
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let (mut agent, _) = restart(agent, &config);
    agent.set_uptime_ms(10);
    assert_eq!(agent.info().trial_left_ms, None, "no deadline declared");

    let mut config = bc_only();
    config.confirm_ms = 2_000;
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let (mut agent, _) = restart(agent, &config);
    agent.set_uptime_ms(10);
    assert_eq!(agent.info().trial_left_ms, Some(1_990));
    // The last working one attempted while the trial runs: nothing to accept any more.
    agent.attempt(0, 0).unwrap();
    assert_eq!(agent.info().trial_left_ms, None);
}
