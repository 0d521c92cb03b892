//! Answers sent ahead: the requests that ride behind another one (behind `Hello`,
//! behind a pipeline's last request, the `Attempt` behind the slot's MD5) and how a
//! call takes their answers instead of asking again.

use core::time::Duration;

use fota_protocol::{Op, Reply, Request};

use super::{Device, FRESH, advances};
use crate::{HostError, Observer, Transport};

impl<T: Transport> Device<T> {
    /// The answer to `op` sent ahead (see `ahead`), if it was and nothing was sent since:
    /// it is here, or a few replies' line time away. `None`: ask again.
    pub(crate) async fn answer_ahead(&mut self, op: Op) -> Result<Option<Reply>, HostError> {
        let Some(id) = self.take_fresh_ahead(op) else {
            return Ok(None);
        };
        let deadline = self.link.now() + Duration::from_millis(300) + self.line_time(256);
        while let Some((rid, reply)) = self.next_reply(deadline).await? {
            if rid == id {
                return Ok(match reply {
                    Reply::Progress { .. } | Reply::Error { .. } => None,
                    r => Some(r),
                });
            }
        }
        Ok(None)
    }

    /// Send `req` (a `ChecksumSlot` of [`fota_protocol::RUNNING_BYTECODE`]: the slot the
    /// device runs, protocol 3) behind the record and the free slot that ride behind the
    /// next session's `Hello`, so that the device hashes a delta's base while the
    /// opening's answers cross the line; its answer waits with theirs
    /// ([`Device::reply_ahead`]). An agent of version 2 refuses it, which changes
    /// nothing.
    pub(crate) fn check_in_opening(&mut self, req: Option<Request<'static>>) {
        self.opening_check = req;
    }

    /// The device's MD5 of the first `size` bytes of the bytecode slot it runs, if
    /// [`Device::check_in_opening`] asked for exactly that and its answer came (nothing
    /// sent since); `None`: ask otherwise.
    pub(crate) async fn running_md5(&mut self, size: u32) -> Result<Option<[u8; 16]>, HostError> {
        if let Some((n, md5)) = self.running_md5
            && n == size
        {
            return Ok(Some(md5));
        }
        let asked = Request::ChecksumSlot {
            addr: fota_protocol::RUNNING_BYTECODE,
            size,
        };
        if self.opening_sent.take() != Some(asked) {
            return Ok(None);
        }
        let md5 = match self.reply_ahead(Op::ChecksumSlot).await? {
            Some(Reply::Checksum(md5)) => Some(md5),
            _ => None,
        };
        self.running_md5 = md5.map(|m| (size, m));
        Ok(md5)
    }

    /// Leave the answer to the opening's `ChecksumSlot` of the running bytecode slot
    /// (`size` bytes, [`Device::check_in_opening`]) to come later instead of waiting for
    /// it now (protocol 3): a delta's stream takes it as its base check
    /// ([`Device::adopt_running_check`]), its first requests sent meanwhile; anything
    /// else sent first waits for it, as [`Device::running_md5`] would have.
    pub(crate) fn defer_running_md5(&mut self, size: u32) {
        let asked = Request::ChecksumSlot {
            addr: fota_protocol::RUNNING_BYTECODE,
            size,
        };
        if self.version < 3 || self.running_md5.is_some() || self.opening_sent != Some(asked) {
            return;
        }
        if let Some(id) = self.take_fresh_ahead(Op::ChecksumSlot) {
            self.opening_sent = None;
            self.deferred = Some((id, size));
        }
    }

    /// Whether the answer left to come by [`Device::defer_running_md5`] is the MD5 of
    /// `size` bytes of the running bytecode slot, at `addr`: then the next pipeline whose
    /// first request is `ChecksumSlot(addr, size)` takes that answer as its own (sent
    /// again as that request if lost), and `true`. Anything else sent first (the image
    /// goes raw after all) waits for that answer, as for one left to come.
    pub(crate) fn adopt_running_check(&mut self, addr: u32, size: u32) -> bool {
        match self.deferred {
            Some((id, n)) if n == size => {
                self.deferred = None;
                self.adopt = Some((id, Request::ChecksumSlot { addr, size }));
                true
            }
            _ => false,
        }
    }

    /// Wait for the answer [`Device::defer_running_md5`] left to come, if any: the
    /// running slot's MD5 then stands as if taken at once.
    ///
    /// An answer left to the next pipeline ([`Device::adopt_running_check`]) that is not
    /// taken there is waited for here too.
    pub(super) async fn settle_deferred(&mut self) -> Result<(), HostError> {
        if let Some((id, Request::ChecksumSlot { size, .. })) = self.adopt.take() {
            self.deferred = Some((id, size));
        }
        let Some((id, size)) = self.deferred.take() else {
            return Ok(());
        };
        if let Some(Reply::Checksum(md5)) = self.wait_ahead(id, &mut |_, _, _, _| {}).await? {
            self.running_md5 = Some((size, md5));
        }
        Ok(())
    }

    /// The protocol version the last `Hello` was answered in.
    pub fn protocol_version(&self) -> u16 {
        self.version
    }

    /// Send `attempt` (an `Attempt` or `AttemptDowngrade` carrying a [`SlotCheck`]) right
    /// behind the `ChecksumSlot` the next pipeline ends with
    /// ([`Device::send_after_pipeline`]); `None`: not. Only
    /// for an agent of protocol 3 (the caller checks [`Device::protocol_version`]): it
    /// writes the record only if the slot's MD5 is the one `attempt` carries, so the
    /// gate is the same as the host's own check of that MD5, without the round trip
    /// between the two.
    ///
    /// [`SlotCheck`]: fota_protocol::SlotCheck
    pub(crate) fn attempt_behind_checksum(&mut self, attempt: Option<Request<'static>>) {
        self.attempt_after = attempt;
        self.attempt_sent = false;
    }

    /// Whether the `Attempt` of [`Device::attempt_behind_checksum`] was sent: the agent
    /// may have written the record, whatever the host heard since.
    pub(crate) fn attempt_went_ahead(&self) -> bool {
        self.attempt_sent
    }

    /// The reply to the request of `op` sent ahead (see `ahead`), whatever it is (an
    /// error included), its progress keeping the host waiting as [`Device::call`]'s
    /// does; `None`: not sent ahead, something sent since, or no answer.
    pub(crate) async fn reply_ahead(&mut self, op: Op) -> Result<Option<Reply>, HostError> {
        match self.take_fresh_ahead(op) {
            Some(id) => self.wait_ahead(id, &mut |_, _, _, _| {}).await,
            None => Ok(None),
        }
    }

    /// The id of the request of `op` sent ahead, if it was and is fresh, taken out of
    /// those sent ahead with the ones before it (their answers are no longer wanted).
    fn take_fresh_ahead(&mut self, op: Op) -> Option<u16> {
        if self.link.now() >= self.ahead_at + FRESH {
            self.ahead.clear();
        }
        self.take_ahead(op)
    }

    /// [`Device::take_fresh_ahead`] however long ago it was sent.
    fn take_ahead(&mut self, op: Op) -> Option<u16> {
        let pos = self.ahead.iter().position(|a| a.1 == op)?;
        let id = self.ahead[pos].0;
        self.ahead.drain(..=pos);
        Some(id)
    }

    /// The reply to request `id` sent ahead, whatever it is (an error included); its
    /// progress goes to `on_progress` and keeps the host waiting only while it advances,
    /// as in `call_attempts`. `None`: no answer.
    async fn wait_ahead(
        &mut self,
        id: u16,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<Option<Reply>, HostError> {
        let mut deadline = self.link.now() + self.reply_timeout() + self.line_time(1100);
        let mut last_done = None;
        while let Some((rid, reply)) = self.next_reply(deadline).await? {
            if rid != id {
                continue;
            }
            match reply {
                Reply::Progress { done, total } => {
                    if advances(last_done, done, total) {
                        last_done = Some(done);
                        let now = self.link.now();
                        on_progress(self.observer.as_mut(), now, done, total);
                        deadline = now + self.reply_timeout();
                    }
                }
                r => return Ok(Some(r)),
            }
        }
        Ok(None)
    }

    /// Send `req` right behind the last request of the next pipeline (`None`: nothing),
    /// where [`Device::checksum_slot`] finds its answer. Only a read-only request: the
    /// agent runs it after every request of the pipeline (6.2), and anything sent after
    /// it (a request resent) makes the host ask again.
    pub(crate) fn send_after_pipeline(&mut self, req: Option<Request<'static>>) {
        self.after_pipeline = req;
    }

    /// The answer to `req` if it was sent behind a pipeline (see
    /// [`Device::send_after_pipeline`]) and nothing was sent since, its progress going to
    /// `on_progress` as [`Device::call`]'s does. `None`: it was not sent, something was
    /// sent since, it was refused or it did not come: ask again.
    pub(crate) async fn long_answer_ahead(
        &mut self,
        req: &Request<'_>,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<Option<Reply>, HostError> {
        if self.sent_after_pipeline.take().as_ref() != Some(req) {
            return Ok(None);
        }
        let Some(id) = self.take_ahead(req.op()) else {
            return Ok(None);
        };
        // Only the answers before it: an `Attempt` may follow it.
        Ok(match self.wait_ahead(id, on_progress).await? {
            Some(Reply::Error { .. }) => None,
            r => r,
        })
    }
}
