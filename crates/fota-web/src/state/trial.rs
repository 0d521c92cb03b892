//! A configuration on trial as the record panel shows it, and short times.

/// A configuration on trial, as the record panel shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialClock {
    /// Since the page first saw it on trial.
    pub elapsed_ms: u64,
    /// During an update, counted from its restart: how long the firmware still has to
    /// confirm itself (the device's own deadline, [`TrialClock::confirm_ms`]) or, where the
    /// device declares none, how long the update still waits for it.
    pub left_ms: Option<u64>,
    /// The device's trial deadline (`Info` tag 7): a firmware that has not accepted this
    /// long after its start is reverted. `None`: not declared.
    pub confirm_ms: Option<u32>,
}

impl TrialClock {
    /// What the "on trial" badge says after its elapsed time: the device's deadline and
    /// what is left of it, or the update's own wait where the device declares none.
    pub fn deadline(&self) -> String {
        match (self.confirm_ms, self.left_ms) {
            (Some(within), Some(0)) => format!(
                ": it had to confirm within {} of its start; without its accept() the device reverts it",
                seconds(u64::from(within))
            ),
            (Some(within), Some(left)) => format!(
                ": it must confirm within {}, {} left (without its accept() the device reverts it)",
                seconds(u64::from(within)),
                seconds(left)
            ),
            (Some(within), None) => format!(
                ": it has not confirmed itself yet and must within {} of its start (without its accept() the device reverts it)",
                seconds(u64::from(within))
            ),
            (None, Some(0)) => ": the update stops waiting for its confirmation now".to_string(),
            (None, Some(left)) => format!(
                ": it has {} left to confirm itself before this update stops waiting (a restart without its accept() reverts it)",
                seconds(left)
            ),
            (None, None) => {
                ": it has not confirmed itself yet (a restart without its accept() reverts it)"
                    .to_string()
            }
        }
    }
}

/// Milliseconds as a short time: tenths of a second below 10 s ("1.5 s", "2 s"), whole
/// seconds up to a minute, then minutes and seconds.
pub fn seconds(ms: u64) -> String {
    if ms < 10_000 {
        let tenths = ms.div_ceil(100);
        if tenths.is_multiple_of(10) {
            format!("{} s", tenths / 10)
        } else {
            format!("{}.{} s", tenths / 10, tenths % 10)
        }
    } else {
        let s = ms.div_ceil(1000);
        if s >= 60 {
            format!("{} min {:02} s", s / 60, s % 60)
        } else {
            format!("{s} s")
        }
    }
}
