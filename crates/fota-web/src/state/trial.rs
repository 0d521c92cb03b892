//! A configuration on trial as the record panel shows it, and short times.

/// A configuration on trial, as the record panel shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialClock {
    /// Since the page first saw it on trial.
    pub elapsed_ms: u64,
    /// How long the firmware still has to confirm itself: by the device's own clock
    /// ([`TrialClock::by_device`]), else, during an update, counted from its restart (the
    /// device's deadline, [`TrialClock::confirm_ms`], or where the device declares none,
    /// how long the update still waits for it).
    pub left_ms: Option<u64>,
    /// The device's trial deadline (`Info` tag 7): a firmware that hangs this long after
    /// its start without accepting is reset by the watchdog and reverted. `None`: not
    /// declared.
    pub confirm_ms: Option<u32>,
    /// [`TrialClock::left_ms`] comes from the device's own clock (`Info` tag 9), not from
    /// the page's estimate.
    pub by_device: bool,
}

impl TrialClock {
    /// What the "on trial" badge says after its elapsed time: the device's deadline and
    /// what is left of it, or the update's own wait where the device declares none.
    pub fn deadline(&self) -> String {
        let clock = if self.by_device {
            " by the device's clock"
        } else {
            ""
        };
        match (self.confirm_ms, self.left_ms) {
            (Some(within), _) if self.overdue() => format!(
                ": it had to confirm within {} of its start and has not",
                seconds(u64::from(within))
            ),
            (Some(within), Some(left)) => format!(
                ": it must confirm within {}, {} left{clock} (a firmware that hangs before it does is reset by the watchdog and reverted)",
                seconds(u64::from(within)),
                seconds(left)
            ),
            (Some(within), None) => format!(
                ": it has not confirmed itself yet and must within {} of its start (a firmware that hangs before it does is reset by the watchdog and reverted)",
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

    /// The device's deadline has passed and the firmware has not confirmed itself: one
    /// that still runs stays on trial (nothing reverts a firmware that keeps running)
    /// until the next restart brings back the last working one. Known from the time
    /// left, or, without it, from the page having seen it on trial for longer than the
    /// deadline.
    pub fn overdue(&self) -> bool {
        self.confirm_ms.is_some_and(|within| match self.left_ms {
            Some(left) => left == 0,
            None => self.elapsed_ms >= u64::from(within),
        })
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
