//! The update's last step: how long the new firmware's outcome is waited for, and the
//! record read until it is known (accepted, reverted, still on trial).

use core::time::Duration;

use fota_protocol::{Info, Record};

use crate::plan::Plan;
use crate::report::Outcome;
use crate::{Device, HostError, Step, Transport};

/// What the host adds to the device's trial deadline (`Info` tag 7, or what is left of
/// it, tag 9) before it reports a trial that has not confirmed itself: the restart and
/// the boot, the link opened again at its base rate, and one more read of the record.
pub const CONFIRM_MARGIN: Duration = Duration::from_secs(1);

/// The longest trial deadline the host waits for, whatever the device declares (`Info`
/// tags 7 and 9 are u32s of milliseconds, up to 49 days): a firmware's self-test takes
/// seconds, and a device declaring more than ten minutes is wrong or hostile; `--wait`
/// (the plan's own wait) still waits as long as the user asks.
pub const MAX_CONFIRM_DEADLINE: Duration = Duration::from_secs(600);

/// How long after `now` the outcome is waited for, and why, in words: the time the
/// device's own clock leaves the firmware on trial (`Info` tag 9), else its deadline
/// (tag 7) from the restart request at `restarted`, plus [`CONFIRM_MARGIN`]; the plan's
/// own wait where the device declares no deadline, or where the plan asks for it
/// ([`Plan::wait_accept_always`]).
pub fn outcome_wait(
    info: &Info,
    restarted: Option<Duration>,
    now: Duration,
    plan: &Plan,
) -> (Duration, String) {
    // A deadline beyond MAX_CONFIRM_DEADLINE counts as that much.
    let ms = |ms: u32| Duration::from_millis(u64::from(ms)).min(MAX_CONFIRM_DEADLINE);
    let margin = format!("plus {} for the restart and the link", secs(CONFIRM_MARGIN));
    if plan.wait_accept_always {
        return (plan.wait_accept, "the wait asked for".to_string());
    }
    match (info.trial_left_ms, info.confirm_ms) {
        (Some(left), Some(within)) => (
            ms(left) + CONFIRM_MARGIN,
            format!(
                "it must confirm within {} of its start and has {} left by the device's clock, {margin}",
                secs(ms(within)),
                secs(ms(left))
            ),
        ),
        (Some(left), None) => (
            ms(left) + CONFIRM_MARGIN,
            format!("{} left by the device's clock, {margin}", secs(ms(left))),
        ),
        (None, Some(within)) => {
            let end = restarted.unwrap_or(now) + ms(within) + CONFIRM_MARGIN;
            (
                end.saturating_sub(now),
                format!("the device's deadline of {}, {margin}", secs(ms(within))),
            )
        }
        (None, None) => (
            plan.wait_accept,
            "the device declares no deadline".to_string(),
        ),
    }
}

/// A duration as "2.5 s".
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// After the restart (or on a trial already running): say how long the outcome is
/// waited for, wait for it and say it.
pub(super) async fn outcome_after<T: Transport>(
    dev: &mut Device<T>,
    before: &Record,
    (bc_index, vm_index): (u32, u32),
    info: &Info,
    restarted: Option<Duration>,
    plan: &Plan,
) -> Result<(Outcome, Record), HostError> {
    let (wait, why) = outcome_wait(info, restarted, dev.now(), plan);
    dev.observer().info(info);
    dev.observer().step(
        Step::Outcome,
        &format!(
            "Waiting up to {} for the new firmware to confirm itself ({why})",
            secs(wait)
        ),
    );
    let (outcome, record) = watch_outcome(dev, before, bc_index, vm_index, wait).await?;
    dev.observer()
        .step(Step::Outcome, &outcome.describe_with(&record));
    Ok((outcome, record))
}

/// Read the record until the new configuration is accepted or reverted, or `wait` passes.
/// A device that restarts meanwhile (a watchdog reset of faulty firmware) is waited for.
pub async fn watch_outcome<T: Transport>(
    dev: &mut Device<T>,
    before: &Record,
    bc_index: u32,
    vm_index: u32,
    wait: Duration,
) -> Result<(Outcome, Record), HostError> {
    let deadline = dev.now() + wait;
    loop {
        let lost = match dev.get_record().await {
            Ok(record) => {
                let runs_new = record.bc_current == bc_index && record.vm_current == vm_index;
                let was_trial = bc_index != before.bc_last || vm_index != before.vm_last;
                if runs_new && !record.on_trial() {
                    return Ok((Outcome::Accepted, record));
                }
                if !runs_new && !record.on_trial() && was_trial {
                    return Ok((Outcome::Reverted, record));
                }
                if dev.now() >= deadline {
                    return Ok((Outcome::OnTrial, record));
                }
                // The device may reset between two reads too (a watchdog): the same as
                // a read that fails.
                match dev.idle(Duration::from_millis(250)).await {
                    Ok(()) => continue,
                    Err(e @ (HostError::NoAnswer | HostError::Link(_))) => e,
                    Err(e) => return Err(e),
                }
            }
            Err(e @ (HostError::NoAnswer | HostError::Link(_))) => e,
            Err(e) => return Err(e),
        };
        // A device that says hello but never gives its record must not keep the host
        // here for ever: past the wait and a reboot's time, say so.
        if dev.now() >= deadline + dev.timeouts.reboot {
            return Err(lost);
        }
        dev.wait_for_device().await?;
    }
}

/// The record after an `Attempt` of `(bc_index, vm_index)` the device answered
/// `Attempted`, from the record `before` it (read at the update's start, nothing written
/// since) and the slots of `info`, as docs/PROTOCOL.md 6.7 defines the attempt: the
/// attempted slots become current, the last working ones stay, the state is `Pending`
/// where current and last working differ; an attempt of the slots the record already
/// names writes nothing. What the device runs does not change before a restart. The
/// update takes it instead of reading the record again where its `Attempt` carried the
/// slot's MD5 (protocol 3): a round trip's answer less to wait for.
pub(crate) fn attempted_record(
    before: &Record,
    info: &Info,
    (bc_index, vm_index): (u32, u32),
) -> Record {
    use fota_protocol::{Layout as _, RecordState, SlotKind};
    if (bc_index, vm_index) == (before.bc_current, before.vm_current) {
        return *before;
    }
    let addr = |kind, index| info.slot(kind, index).map_or(0, |s| s.addr);
    let state = if (bc_index, vm_index) != (before.bc_last, before.vm_last) {
        RecordState::Pending
    } else {
        RecordState::Confirmed
    };
    Record {
        vm_current: vm_index,
        bc_current: bc_index,
        bc_addr: addr(SlotKind::Bytecode, bc_index),
        vm_addr: addr(SlotKind::Vm, vm_index),
        state,
        ..*before
    }
}

#[cfg(test)]
mod tests;
