//! Windowed pipelines: a run of requests with as many of them unanswered at once as the
//! agent's receive queue holds: the bytes of `Info` tag 8 where the agent declares it,
//! else `max_in_flight` requests.

use core::time::Duration;
use std::collections::VecDeque;

use fota_protocol::{NO_ID, Reply, Request};

use super::{Device, advances, progress_allowance};
use crate::{HostError, Observer, Transport};

/// What [`Device::pipeline`] calls with each answer: the observer, the time, the
/// request's index and the reply.
pub(crate) type OnReply<'a> =
    dyn FnMut(&mut dyn Observer, Duration, usize, Reply) -> Result<(), HostError> + 'a;

impl<T: Transport> Device<T> {
    /// Send a run of requests with up to the agent's `max_in_flight` of them unanswered
    /// at once, calling `on_reply(index, reply)` as answers come, error replies included
    /// (return [`refused`]'s error to stop there). A request whose answer does not come is
    /// sent again (every request used here is idempotent on the agent).
    pub(crate) async fn pipeline<'r>(
        &mut self,
        count: usize,
        make: &dyn Fn(usize) -> Request<'r>,
        on_reply: &mut OnReply<'_>,
    ) -> Result<(), HostError> {
        self.pipeline_when(count, make, &|_| true, on_reply).await
    }

    /// [`Device::pipeline`], sending request `i` only once `ready(i)` (for instance once
    /// an earlier request it depends on was answered). `ready(i)` must hold whenever every
    /// request before `i` has been answered.
    pub(crate) async fn pipeline_when<'r>(
        &mut self,
        count: usize,
        make: &dyn Fn(usize) -> Request<'r>,
        ready: &dyn Fn(usize) -> bool,
        on_reply: &mut OnReply<'_>,
    ) -> Result<(), HostError> {
        self.pipeline_some(count, &|i| Some(make(i)), ready, on_reply)
            .await
    }

    /// [`Device::pipeline_when`], where `make(i)` may say that request `i` is not needed
    /// (`None`: nothing is sent for it, and `on_reply` hears nothing of it). What
    /// `make(i)` says must not change once `ready(i)` held (a request is made again to be
    /// sent again).
    pub(crate) async fn pipeline_some<'r>(
        &mut self,
        count: usize,
        make: &dyn Fn(usize) -> Option<Request<'r>>,
        ready: &dyn Fn(usize) -> bool,
        on_reply: &mut OnReply<'_>,
    ) -> Result<(), HostError> {
        let info = self.ensure_info().await?;
        let window = Window::of(&info);
        let queued = match window.bytes {
            Some(bytes) => self.line_time(bytes),
            None => {
                let frame = self.line_time(usize::from(info.max_write) + 32);
                frame * u32::try_from(window.requests).unwrap_or(u32::MAX)
            }
        };
        let wait = self.reply_timeout() + queued;
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut next = 0usize;
        let mut silent_rounds = 0u32;
        // Set when something is sent or answered; frames that answer nothing in flight
        // (late, duplicated, damaged) do not move it, so a device sending only those
        // cannot keep the host waiting.
        let mut deadline: Option<Duration> = None;
        let mut tail_sent = false;
        // Whether every request sent before the oldest in flight is known answered: not
        // at first (a request sent ahead of the pipeline may still be in the agent's
        // queue), and from the first answer to one of the pipeline's own on (the agent
        // answers in order). Only then may the window leave the oldest out.
        let mut settled = false;
        // The answer to a request sent earlier, taken for the first one's
        // (`adopt_running_check`): that one is not sent. A pipeline that begins with
        // another request leaves it to be waited for when it sends (`settle_deferred`).
        let adopted = self
            .adopt
            .filter(|(_, req)| count > 0 && ready(0) && make(0).as_ref() == Some(req));
        if let Some((id, req)) = adopted {
            self.adopt = None;
            let cap = self.link.now() + wait + progress_allowance(&req);
            in_flight.push_back(InFlight::new(0, id, 1, cap, wire_len(&req)));
            next = 1;
        }
        while next < count || !in_flight.is_empty() {
            self.check_cancel()?;
            while next < count && ready(next) {
                let Some(req) = make(next) else {
                    next += 1;
                    continue;
                };
                let wire = wire_len(&req);
                if !window.admits(&in_flight, wire, settled) {
                    break;
                }
                let id = self.take_id();
                self.send_request(id, &req).await?;
                let cap = self.link.now() + wait + progress_allowance(&req);
                in_flight.push_back(InFlight::new(next, id, 1, cap, wire));
                next += 1;
                deadline = None;
            }
            if next == count
                && let Some(req) = self.after_pipeline
                && window.admits_all(&in_flight, &tail(req, self.attempt_after), settled)
            {
                // Behind the last request, once the agent's queue has room for it (as
                // for any request of the window): the agent runs it after all the others.
                // An `Attempt` carrying its MD5 right behind it
                // (`attempt_behind_checksum`).
                self.after_pipeline = None;
                let id = self.take_id();
                self.send_request(id, &req).await?;
                let mut ahead = vec![(id, req.op())];
                if let Some(attempt) = self.attempt_after.take() {
                    let id = self.take_id();
                    self.send_request(id, &attempt).await?;
                    ahead.push((id, attempt.op()));
                    self.attempt_sent = true;
                }
                self.ahead = ahead;
                self.sent_after_pipeline = Some(req);
                tail_sent = true;
            }
            if in_flight.is_empty() && next == count {
                break; // the last requests were not needed (`pipeline_some`)
            }
            if in_flight.is_empty() && next < count {
                // Nothing left to wait for, yet the next request is not ready: a bug of
                // the caller's `ready`, not something more waiting would mend.
                return Err(HostError::Protocol(format!(
                    "request {next} of the pipeline can never be sent"
                )));
            }
            let until = *deadline.get_or_insert_with(|| self.link.now() + wait);
            match self.next_reply(until).await? {
                Some((rid, reply)) => {
                    if rid == NO_ID {
                        // A request arrived damaged; the agent could not say which. The
                        // requests after it are still answered, so the gap shows it.
                        self.stats.bad_frames += 1;
                        continue;
                    }
                    let Some(pos) = in_flight.iter().position(|f| f.id == rid) else {
                        continue; // a duplicate or late answer
                    };
                    if let Reply::Progress { done, total } = reply {
                        // A long request (a checksum of a large sector) is under way: wait
                        // on while its progress advances, up to what it can take.
                        let f = &mut in_flight[pos];
                        if advances(f.last_done, done, total) {
                            f.last_done = Some(done);
                            deadline = Some((self.link.now() + wait).min(f.cap));
                        }
                        continue;
                    }
                    silent_rounds = 0;
                    deadline = None;
                    settled = true;
                    // The agent answers in order: anything older than this answer was lost.
                    // An error reply goes to `on_reply` too, which decides whether it
                    // stops the pipeline (see `refused`).
                    let lost: Vec<InFlight> = in_flight.drain(..pos).collect();
                    let Some(answered) = in_flight.pop_front() else {
                        continue;
                    };
                    let now = self.link.now();
                    on_reply(self.observer.as_mut(), now, answered.index, reply)?;
                    for f in lost {
                        self.resend(&mut in_flight, f.index, f.sends, make, wait)
                            .await?;
                    }
                }
                None => {
                    silent_rounds += 1;
                    deadline = None;
                    // The copies sent before may still be queued at a slow agent: the
                    // first one sent again is not known to be the oldest there.
                    settled = false;
                    if silent_rounds >= self.timeouts.attempts.max(1) {
                        if !self.may_recover() {
                            return Err(HostError::NoAnswer);
                        }
                        // Gone back to its base rate: find it there, then resend all.
                        Box::pin(self.back_to_base()).await?;
                        silent_rounds = 0;
                    }
                    self.observer
                        .event("no answer in time, sending the window again");
                    let all: Vec<InFlight> = in_flight.drain(..).collect();
                    for f in all {
                        self.resend(&mut in_flight, f.index, f.sends, make, wait)
                            .await?;
                    }
                }
            }
        }
        if tail_sent {
            // Its answer follows the pipeline's last: fresh from here.
            self.ahead_at = self.link.now();
        }
        Ok(())
    }

    async fn resend<'r>(
        &mut self,
        in_flight: &mut VecDeque<InFlight>,
        index: usize,
        sends: u32,
        make: &dyn Fn(usize) -> Option<Request<'r>>,
        wait: Duration,
    ) -> Result<(), HostError> {
        if sends > self.timeouts.attempts.max(1) + 8 {
            return Err(HostError::NoAnswer);
        }
        // Only requests sent are resent, and what `make` says of them does not change.
        let Some(req) = make(index) else {
            return Ok(());
        };
        let id = self.take_id();
        self.stats.resent += 1;
        self.send_request(id, &req).await?;
        let cap = self.link.now() + wait + progress_allowance(&req);
        let wire = wire_len(&req);
        in_flight.push_back(InFlight::new(index, id, sends + 1, cap, wire));
        Ok(())
    }
}

/// A request of a pipeline waiting for its answer.
struct InFlight {
    /// Its index in the run.
    index: usize,
    /// The id it was sent with.
    id: u16,
    /// How many times it was sent.
    sends: u32,
    /// The last progress it reported.
    last_done: Option<u32>,
    /// How long its progress may keep the pipeline waiting.
    cap: Duration,
    /// Its frame's bytes on the wire (at most), delimiters included.
    wire: usize,
}

impl InFlight {
    fn new(index: usize, id: u16, sends: u32, cap: Duration, wire: usize) -> Self {
        InFlight {
            index,
            id,
            sends,
            last_done: None,
            cap,
            wire,
        }
    }
}

/// The most a request's frame takes on the wire, both delimiters included.
pub(crate) fn wire_len(req: &Request<'_>) -> usize {
    fota_protocol::frame_len(req.payload_len())
}

/// How much a pipeline keeps unanswered (docs/PROTOCOL.md 6.2): where the agent declares
/// its receive queue in bytes (`Info` tag 8), as many requests as their frames fit in
/// it, so that an 18-byte erase or checksum does not take a 1 KiB block's room;
/// otherwise `max_in_flight` requests. One request may always be in flight.
///
/// With tag 8 the oldest request in flight is not counted once every request sent before
/// it is known answered (`settled`), so it is the one the agent handles (in its frame buffer, out of
/// the queue: the agent takes the next frame out of its queue when it sends a reply,
/// before that reply can reach the host), or it is still on the line, or its answer is
/// on its way back. Only the requests behind it can be in the queue. It is excluded by
/// its own bytes, never by a whole frame's: an 18-byte erase being handled frees 18
/// bytes, not the room of a 1 KiB block that would then overflow the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The bytes of `Info` tag 8, if declared.
    pub(crate) bytes: Option<usize>,
    /// `max_in_flight` (at least 1).
    pub(crate) requests: usize,
}

impl Window {
    pub(crate) fn of(info: &fota_protocol::Info) -> Window {
        Window {
            bytes: info
                .rx_window
                .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
            requests: usize::from(info.max_in_flight.max(1)),
        }
    }

    /// Whether a request of `wire` bytes may join those in flight; `settled`: every request
    /// sent before the oldest in flight is known answered, so that one is left out.
    fn admits(&self, in_flight: &VecDeque<InFlight>, wire: usize, settled: bool) -> bool {
        if in_flight.is_empty() {
            return true;
        }
        match self.bytes {
            Some(budget) => {
                let oldest = usize::from(settled);
                let used: usize = in_flight.iter().skip(oldest).map(|f| f.wire).sum();
                used.saturating_add(wire) <= budget
            }
            None => in_flight.len() < self.requests,
        }
    }

    /// Whether requests of `wires` bytes may all join those in flight at once.
    fn admits_all(&self, in_flight: &VecDeque<InFlight>, wires: &[usize], settled: bool) -> bool {
        if in_flight.is_empty() {
            return true;
        }
        match self.bytes {
            Some(_) => self.admits(in_flight, wires.iter().sum(), settled),
            None => in_flight.len() + wires.len() <= self.requests,
        }
    }
}

/// The wire lengths of the requests sent behind a pipeline: `req`, and `attempt` where
/// there is one.
fn tail(req: Request<'_>, attempt: Option<Request<'_>>) -> Vec<usize> {
    let mut t = vec![wire_len(&req)];
    if let Some(a) = attempt {
        t.push(wire_len(&a));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(wires: &[usize]) -> VecDeque<InFlight> {
        wires
            .iter()
            .enumerate()
            .map(|(i, &w)| InFlight::new(i, i as u16 + 1, 1, Duration::ZERO, w))
            .collect()
    }

    const BYTES: Window = Window {
        bytes: Some(5354),
        requests: 5,
    };

    #[test]
    fn the_oldest_request_is_left_out_by_its_own_bytes() {
        // An erase being handled, five blocks behind it: 5 210 bytes counted, 144 left.
        let f = flight(&[18, 1042, 1042, 1042, 1042, 1042]);
        assert!(BYTES.admits(&f, 144, true));
        assert!(
            !BYTES.admits(&f, 145, true),
            "one byte more than the queue holds"
        );
        // Not a whole frame's room for the erase: no sixth block behind it.
        assert!(!BYTES.admits(&f, 1042, true));
        // A block being handled, four behind it: a fifth fits, with 144 bytes to spare.
        let f = flight(&[1042, 1042, 1042, 1042, 1042]);
        assert!(BYTES.admits(&f, 1042 + 144, true));
        assert!(!BYTES.admits(&f, 1042 + 145, true));
        // Before any answer to the pipeline's own requests, a request sent ahead of it may
        // be the one the agent handles: every request in flight counts.
        assert!(BYTES.admits(&f, 144, false));
        assert!(!BYTES.admits(&f, 145, false));
        let f = flight(&[18, 1042, 1042, 1042, 1042, 1042]);
        assert!(BYTES.admits(&f, 126, false));
        assert!(!BYTES.admits(&f, 127, false));
    }

    #[test]
    fn one_request_may_always_go_and_without_tag_8_requests_are_counted() {
        assert!(BYTES.admits(&flight(&[]), 100_000, true));
        assert!(BYTES.admits(&flight(&[1042]), 5354, true));
        assert!(!BYTES.admits(&flight(&[1042]), 5355, true));
        let requests = Window {
            bytes: None,
            requests: 5,
        };
        assert!(requests.admits(&flight(&[1042; 4]), 1042, true));
        assert!(!requests.admits(&flight(&[18; 5]), 18, true));
    }
}
