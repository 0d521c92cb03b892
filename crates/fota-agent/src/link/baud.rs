//! The baud rate as the agent sees it: a new rate on trial, and the way back to the base
//! rate.

use super::{BAUD_CONFIRM_MS, BAUD_IDLE_MS, LinkAction};

/// The baud rate as the agent sees it, and its two timers.
#[derive(Debug, Clone, Copy)]
pub(super) struct BaudState {
    /// The rate now (0 until the link knows its base rate).
    pub(super) current: u32,
    /// A `SetBaud` not confirmed yet: the rate before (0: none), the request count after
    /// it, and the deadline once a tick has seen it.
    pub(super) trial_old: u32,
    pub(super) trial_requests: u32,
    pub(super) trial_deadline: Option<u32>,
    /// The last tick that saw activity, and the counters then.
    pub(super) active_at: Option<u32>,
    pub(super) requests_seen: u32,
}

impl BaudState {
    pub(super) const START: BaudState = BaudState {
        current: 0,
        trial_old: 0,
        trial_requests: 0,
        trial_deadline: None,
        active_at: None,
        requests_seen: 0,
    };

    pub(super) fn tick(
        &mut self,
        now: u32,
        base: u32,
        requests: u32,
        busy: bool,
    ) -> Option<LinkAction> {
        let due = |deadline: u32| (now.wrapping_sub(deadline) as i32) >= 0;
        if requests != self.requests_seen || busy || self.active_at.is_none() {
            self.requests_seen = requests;
            self.active_at = Some(now);
        }
        if self.trial_old != 0 {
            if requests != self.trial_requests {
                self.trial_old = 0; // a request at the new rate: it works
            } else {
                let deadline = *self
                    .trial_deadline
                    .get_or_insert(now.wrapping_add(BAUD_CONFIRM_MS));
                if !due(deadline) {
                    return None;
                }
                let old = self.trial_old;
                self.trial_old = 0;
                self.current = old;
                self.active_at = Some(now);
                return Some(LinkAction::SetBaud(old));
            }
        }
        let since = self.active_at.unwrap_or(now);
        if self.current != base && self.current != 0 && due(since.wrapping_add(BAUD_IDLE_MS)) {
            self.current = base;
            return Some(LinkAction::SetBaud(base));
        }
        None
    }
}
