//! Baud rates: finding a device at the rate an earlier session left it, switching to a
//! faster one both sides support, and finding it again at its base rate.

use core::time::Duration;

use fota_protocol::{DEFAULT_BAUD, Info, Reply, Request};

use super::{Device, Resend};
use crate::{HostError, Transport};

impl<T: Transport> Device<T> {
    pub(super) fn may_recover(&self) -> bool {
        self.base_baud.is_some() && !self.switching
    }

    /// The device stopped answering at the negotiated rate: it went back to its base rate
    /// (after some idle time, or a reset the host did not see). Say hello there and
    /// negotiate again.
    pub(super) async fn back_to_base(&mut self) -> Result<(), HostError> {
        let Some(base) = self.base_baud.take() else {
            return Ok(());
        };
        let was = self.link.baud().unwrap_or(DEFAULT_BAUD);
        self.observer.event(&format!(
            "no answer at {was} baud: looking for the device at its base rate, {base}"
        ));
        self.link.set_baud(base).await?;
        self.reader.reset();
        self.switching = true;
        let found = self.hello().await;
        self.switching = false;
        found?;
        let candidates = self.candidates.clone();
        if !candidates.is_empty() {
            self.negotiate_baud(&candidates).await?;
        }
        Ok(())
    }

    /// Say hello at the link's rate and, if the device does not answer, at each of
    /// `other_rates` too (the rate the last session negotiated: a device whose host went
    /// away without [`Device::goodbye`] stays there until its idle time runs out), then
    /// at the link's rate again. Found at another rate, the link stays there, and the
    /// rate it started at is the one the device comes back at after a reset.
    pub async fn connect(&mut self, other_rates: &[u32]) -> Result<Info, HostError> {
        let start = self.link.baud().unwrap_or(DEFAULT_BAUD);
        let others: Vec<u32> = other_rates
            .iter()
            .copied()
            .filter(|&r| r != start)
            .collect();
        if others.is_empty() || self.link.baud().is_none() {
            return self.hello().await;
        }
        let saved = self.timeouts;
        self.switching = true;
        // Half the tries at the start rate, a quick probe at each other rate, then the
        // rest at the start rate (a device still busy with a long request answers late).
        let first = (saved.attempts / 2).max(1);
        self.timeouts.attempts = first;
        let mut found = self.hello().await;
        if matches!(found, Err(HostError::NoAnswer)) {
            self.timeouts.reply = Duration::from_millis(300);
            self.timeouts.attempts = 2;
            for rate in others {
                self.link.set_baud(rate).await?;
                self.reader.reset();
                found = self.hello().await;
                if found.is_ok() {
                    self.observer.event(&format!(
                        "the device answers at {rate} baud, where an earlier session left it"
                    ));
                    self.base_baud = Some(start);
                    break;
                }
                if !matches!(found, Err(HostError::NoAnswer)) {
                    break;
                }
            }
            if matches!(found, Err(HostError::NoAnswer)) {
                self.link.set_baud(start).await?;
                self.reader.reset();
                self.timeouts = saved;
                self.timeouts.attempts = saved.attempts.saturating_sub(first).max(1);
                found = self.hello().await;
            }
        }
        self.timeouts = saved;
        self.switching = false;
        found
    }

    /// Switch to the fastest baud rate both sides support, from `candidates` (fastest
    /// first), confirming each with a round trip; falls back to the rate in use when a
    /// confirmation fails. Returns the rate in force.
    pub async fn negotiate_baud(&mut self, candidates: &[u32]) -> Result<u32, HostError> {
        self.candidates = candidates.to_vec();
        self.switching = true;
        let r = self.negotiate(candidates).await;
        self.switching = false;
        r
    }

    async fn negotiate(&mut self, candidates: &[u32]) -> Result<u32, HostError> {
        let info = self.ensure_info().await?;
        let current = self.link.baud().unwrap_or(DEFAULT_BAUD);
        for &baud in candidates {
            // The agent lists the rates its UART can make; it offers no other.
            let listed = info.baud_rates.is_empty() || info.baud_rates.contains(&baud);
            if baud <= current || baud > info.max_baud || !listed {
                continue;
            }
            match self
                .call_with(
                    &Request::SetBaud { baud },
                    Resend::Never,
                    &mut |_, _, _, _| {},
                )
                .await
            {
                Ok(Reply::BaudSet(b)) if b == baud => {}
                Ok(_) | Err(HostError::Refused { .. }) => continue,
                Err(HostError::NoAnswer) => {
                    // The answer was lost: the agent may have switched. It comes back to
                    // this rate by itself after a second without a frame at the new one.
                    self.observer.event(&format!(
                        "no answer to the switch to {baud} baud, staying at {current}"
                    ));
                    self.idle(Duration::from_millis(1200)).await?;
                    self.reader.reset();
                    self.hello().await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.link.set_baud(baud).await?;
            self.reader.reset();
            self.base_baud.get_or_insert(current);
            let saved = self.timeouts;
            self.timeouts.reply = Duration::from_millis(300);
            self.timeouts.attempts = 2;
            self.confirming = true;
            let confirmed = self.hello().await;
            self.confirming = false;
            self.timeouts = saved;
            match confirmed {
                Ok(_) => {
                    self.observer
                        .event(&format!("link switched to {baud} baud"));
                    return Ok(baud);
                }
                Err(HostError::NoAnswer) => {
                    // The agent goes back to the old rate by itself after a second without
                    // a valid frame at the new one.
                    self.observer
                        .event(&format!("{baud} baud did not work, back to {current}"));
                    self.link.set_baud(current).await?;
                    self.reader.reset();
                    if self.base_baud == Some(current) {
                        self.base_baud = None;
                    }
                    let until = self.link.now() + Duration::from_millis(1200);
                    let _ = self.next_reply(until).await;
                    self.hello().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(current)
    }
}
