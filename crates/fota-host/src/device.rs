//! A connection to one device: requests with ids, replies matched to them, timeouts
//! that tell a dead device from a slow one. The seed's calls are in [`calls`], windowed
//! pipelines in [`pipeline`], baud rates in [`baud`], answers sent ahead in [`ahead`].

mod ahead;
mod baud;
mod calls;
pub(crate) use calls::attempt_request;
mod pipeline;

use core::time::Duration;

use fota_protocol::{
    DEFAULT_BAUD, ErrorCode, Event, FrameReader, Info, NO_ID, Op, Reply, Request, encode_request,
    frame_len,
};

use crate::{CancelToken, HostError, Observer, Transport};

/// How long an answer sent ahead, or a hello's `Info`, stands while nothing is sent: well
/// within the agent's 10 s idle return to its base rate (docs/PROTOCOL.md 7.1), and
/// long enough for the host's own steps between two requests.
pub(crate) const FRESH: Duration = Duration::from_secs(2);

/// Largest frame the host reads: any agent reply, and long log lines in pieces.
const READER_LEN: usize = 8 * 1024;

/// The longest sector erase the host waits for, whatever the device declares (`Info`
/// tag 2 is a u32 of milliseconds): the slowest NOR sectors erase in a few seconds
/// (an STM32F4's 128 KiB sector: 2 s typical, 4 s at most), so a device declaring more
/// than a minute is wrong or hostile, and waiting out its figure would hang the host.
pub const MAX_SECTOR_ERASE: Duration = Duration::from_secs(60);

/// How long to wait for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Silence after which a request is sent again, on top of the device's worst-case
    /// sector erase time when its `Info` declares one (see [`Device::reply_timeout`]).
    /// Any frame of progress from the device restarts it, so a slow erase never times
    /// out while the device works.
    pub reply: Duration,
    /// Sends of one request before the device counts as gone.
    pub attempts: u32,
    /// How long a device may take to come back after a restart.
    pub reboot: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            reply: Duration::from_millis(1500),
            attempts: 4,
            reboot: Duration::from_secs(15),
        }
    }
}

/// When a call sends its request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// After silence or a damaged-frame report, up to [`Timeouts::attempts`] sends (every
    /// request the agent may run twice).
    Always,
    /// Never: sent once (a switch of rate, which the agent may have made unanswered).
    Never,
    /// Only after the device reported a damaged frame and no answer came; silence is a
    /// lost answer, not an error (restart: a damaged frame never runs, so a restart
    /// never runs twice, and a device that resets answers nothing).
    OnDamage,
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes sent on the link.
    pub bytes_sent: u64,
    /// Bytes received from the link.
    pub bytes_received: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames sent again (lost or damaged on the way).
    pub resent: u64,
    /// Damaged frames received, or reported by the device.
    pub bad_frames: u64,
    /// Image bytes carried by write requests (resends included).
    pub write_bytes: u64,
}

/// A connection to a device through a [`Transport`].
pub struct Device<T: Transport> {
    link: T,
    observer: Box<dyn Observer>,
    reader: Box<FrameReader<READER_LEN>>,
    pending: Vec<u8>,
    pending_at: usize,
    next_id: u16,
    info: Option<Info>,
    cancel: CancelToken,
    /// Timeouts in force.
    pub timeouts: Timeouts,
    stats: Stats,
    out: Vec<u8>,
    /// The rate the link was at before a negotiated switch: a device comes back from
    /// reset at this rate.
    base_baud: Option<u32>,
    /// The rates the last negotiation chose from (fastest first), to negotiate again
    /// after the device went back to its base rate.
    candidates: Vec<u32>,
    /// Switching rates (negotiation, reconnection): a silent device must not start
    /// another switch.
    switching: bool,
    /// Read-only requests to send right behind the next call's request (a `GetRecord`
    /// behind a `Hello` or an `Attempt`): their answers then come with the call's, a
    /// round trip saved each.
    send_after: Vec<Request<'static>>,
    /// A read-only request for the next session's first `Hello` to carry behind the
    /// record and the free slot (the MD5 of the running slot a delta's base should be
    /// in): see [`Device::check_in_opening`].
    opening_check: Option<Request<'static>>,
    /// That request once sent behind a `Hello` (its answer is in `ahead` while nothing
    /// was sent since).
    opening_sent: Option<Request<'static>>,
    /// Its answer once taken: (bytes hashed, MD5). What runs does not change before a
    /// restart, and its slot takes no write, so it stands for the session.
    running_md5: Option<(u32, [u8; 16])>,
    /// That request's id and size once its answer is left to come later
    /// ([`Device::defer_running_md5`]): the stream's pipeline takes it as its base check,
    /// or anything else sent first waits for it.
    deferred: Option<(u16, u32)>,
    /// A request sent earlier whose answer the next pipeline takes as the answer to its
    /// first request when that is this request ([`Device::adopt_running_check`]);
    /// otherwise waited for, as `deferred`, before anything else is sent.
    adopt: Option<(u16, Request<'static>)>,
    /// The ids of read-only requests sent right behind the last call's request, in
    /// order, nothing sent since: [`Device::get_record`] and [`Device::find_slot`] take
    /// their answers instead of asking again.
    ahead: Vec<(u16, Op)>,
    /// A read-only request to send right behind the last request of the next pipeline
    /// (the MD5 of a slot behind the last block streamed into it): its answer then
    /// waits in `ahead`, a round trip saved.
    after_pipeline: Option<Request<'static>>,
    /// That request once sent (its id is in `ahead` while nothing was sent since).
    sent_after_pipeline: Option<Request<'static>>,
    /// An `Attempt` carrying the MD5 of that request's range (protocol 3), to send
    /// right behind it, the record read behind both: the agent writes the record only if
    /// the slot's MD5 is the one it carries, and the host checks the MD5's answer itself
    /// as before (see [`Device::attempt_behind_checksum`]).
    attempt_after: Option<Request<'static>>,
    /// Whether that `Attempt` went (the agent may have run it, whatever came back).
    attempt_sent: bool,
    /// The protocol version the last `Hello` was answered in ([`PROTOCOL_VERSION`] or
    /// an older one the agent speaks).
    version: u16,
    /// When they were sent: used for [`FRESH`] only (a host that paused may find the
    /// agent gone back to its base rate, which only a request shows).
    ahead_at: Duration,
    /// When the last `Hello` was answered, nothing sent since: a `Hello` now would find
    /// the agent as it is (a new session already), so its `Info` stands.
    fresh_info_at: Option<Duration>,
    /// The hello that confirms a new rate: what a session does next follows it, so it
    /// sends the record read ahead like a session's first hello (other hellos while
    /// switching rates or waiting for a reset device are probes and send nothing more).
    confirming: bool,
    /// The last quick call's round trip less its frames' time on the line: the link's own
    /// latency there and back (see [`Device::latency`]).
    latency: Option<Duration>,
}

impl<T: Transport> Device<T> {
    /// A connection over `link`; nothing is sent until the first request.
    pub fn new(link: T, observer: Box<dyn Observer>) -> Self {
        Device {
            link,
            observer,
            reader: Box::new(FrameReader::new()),
            pending: Vec::new(),
            pending_at: 0,
            next_id: 1,
            info: None,
            cancel: CancelToken::new(),
            timeouts: Timeouts::default(),
            stats: Stats::default(),
            out: vec![0; frame_len(fota_protocol::MAX_PAYLOAD)],
            base_baud: None,
            candidates: Vec::new(),
            switching: false,
            send_after: Vec::new(),
            opening_check: None,
            opening_sent: None,
            running_md5: None,
            deferred: None,
            adopt: None,
            ahead: Vec::new(),
            after_pipeline: None,
            sent_after_pipeline: None,
            attempt_after: None,
            attempt_sent: false,
            version: fota_protocol::PROTOCOL_VERSION,
            ahead_at: Duration::ZERO,
            fresh_info_at: None,
            confirming: false,
            latency: None,
        }
    }

    /// The link's latency there and back as the last quick call measured it (`Hello`,
    /// `GetRecord`, `Find*Slot`): its round trip less the time its request and its
    /// answer took on the line. `None` before the first was answered.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// The silence after which a request is sent again: [`Timeouts::reply`] plus the
    /// device's worst-case sector erase time (`Info` tag 2), since one step of the agent
    /// may take that long before it can send anything (one sector of an erase, a record
    /// entry written into a sector it first erases), or its slowest block erase (`Info`
    /// tag 10) where it declares block erases: an erase covering a block is one step.
    /// An erase the device declares beyond [`MAX_SECTOR_ERASE`] counts as that much.
    pub fn reply_timeout(&self) -> Duration {
        let ms = self.info.as_ref().map_or(0, |i| {
            let blocks = i.block_erases.iter().map(|b| b.ms);
            blocks.fold(i.sector_erase_ms.unwrap_or(0), u32::max)
        });
        let erase = Duration::from_millis(u64::from(ms));
        self.timeouts.reply + erase.min(MAX_SECTOR_ERASE)
    }

    /// The rate the device comes back at after a reset, when the link was switched to
    /// another one (`None`: the link is at the rate it started at).
    pub fn base_baud(&self) -> Option<u32> {
        self.base_baud
    }

    /// Use `token` to stop long operations (see [`CancelToken`]).
    pub fn set_cancel(&mut self, token: CancelToken) {
        self.cancel = token;
    }

    /// The cancel token in force.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The observer, to report steps.
    pub fn observer(&mut self) -> &mut dyn Observer {
        self.observer.as_mut()
    }

    /// The link.
    pub fn link(&mut self) -> &mut T {
        &mut self.link
    }

    /// Give the link back.
    pub fn into_link(self) -> T {
        self.link
    }

    /// The agent's info from the last [`Device::hello`].
    pub fn info(&self) -> Option<&Info> {
        self.info.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The link's clock.
    pub fn now(&self) -> Duration {
        self.link.now()
    }

    fn check_cancel(&self) -> Result<(), HostError> {
        if self.cancel.is_cancelled() {
            Err(HostError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn take_id(&mut self) -> u16 {
        let id = self.next_id;
        // NO_ID is what the agent uses for a damaged frame it cannot attribute.
        self.next_id = if id >= NO_ID - 1 { 1 } else { id + 1 };
        id
    }

    /// Encode and send one request; returns the frame's length on the wire.
    async fn send_request(&mut self, id: u16, req: &Request<'_>) -> Result<usize, HostError> {
        // The running slot's MD5 left to come: taken first (nothing sent must make its
        // answer look late), whether left for later or for a pipeline that sends
        // something else first (its stream not sent after all: the image goes raw).
        self.settle_deferred().await?;
        let n = encode_request(id, req, &mut self.out)
            .ok_or_else(|| HostError::Protocol("request too large to encode".into()))?;
        // Anything sent may change what a record read ahead or a hello said.
        self.ahead.clear();
        self.fresh_info_at = None;
        self.link.send(&self.out[..n]).await?;
        self.stats.bytes_sent += n as u64;
        self.stats.frames_sent += 1;
        if let Request::WriteSlot { data, .. } = req {
            self.stats.write_bytes += data.len() as u64;
        }
        Ok(n)
    }

    /// The time a frame of `len` bytes takes on the line, one way.
    pub(crate) fn line_time(&self, len: usize) -> Duration {
        let baud = self.link.baud().unwrap_or(DEFAULT_BAUD).max(1200);
        Duration::from_micros((len as u64 * 10 * 1_000_000) / u64::from(baud))
    }

    /// The next reply frame, or `None` when `deadline` passes first. Log text goes to
    /// the observer; damaged frames are counted and dropped.
    async fn next_reply(&mut self, deadline: Duration) -> Result<Option<(u16, Reply)>, HostError> {
        let mut buf = [0u8; 4096];
        loop {
            while self.pending_at < self.pending.len() {
                let (used, event) = self.reader.feed(&self.pending[self.pending_at..]);
                self.pending_at += used;
                match event {
                    Some(Event::Frame(frame)) => match frame.reply() {
                        Ok(reply) => return Ok(Some((frame.id, reply))),
                        Err(e) => self.observer.event(&format!("unreadable reply: {e}")),
                    },
                    Some(Event::Text(text)) => crate::text::log_lines(self.observer.as_mut(), text),
                    Some(Event::Error(e)) => {
                        self.stats.bad_frames += 1;
                        self.observer
                            .event(&format!("damaged frame from device: {e}"));
                    }
                    None => {}
                }
            }
            self.pending.clear();
            self.pending_at = 0;
            let now = self.link.now();
            if now >= deadline {
                return Ok(None);
            }
            // Wait in short slices so that a quiet log line is shown promptly.
            let slice = (deadline - now).min(Duration::from_millis(50));
            let n = self.link.recv(&mut buf, slice).await?;
            if n == 0 {
                if let Some(text) = self.reader.flush_text() {
                    crate::text::log_lines(self.observer.as_mut(), text);
                }
                continue;
            }
            self.stats.bytes_received += n as u64;
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Send one request and wait for its reply, sending it again as `resend` says.
    /// Progress frames keep it waiting and go to `on_progress`. With [`Resend::Always`],
    /// a device that stops answering at a negotiated rate is looked for at its base rate
    /// (it goes back there after some idle time), and the request sent there.
    async fn call_with(
        &mut self,
        req: &Request<'_>,
        resend: Resend,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<Reply, HostError> {
        let first = self.call_attempts(req, resend, on_progress).await;
        let answer = match first {
            Ok(None) if resend == Resend::Always && self.may_recover() => {
                // Boxed: finding the device again sends requests itself (a recursion).
                Box::pin(self.back_to_base()).await?;
                self.call_attempts(req, resend, on_progress).await?
            }
            other => other?,
        };
        answer.ok_or(HostError::NoAnswer)
    }

    /// The one retry loop of every call: send `req`, wait for its answer, send it again
    /// as `resend` says. `None`: no answer came.
    pub(super) async fn call_attempts(
        &mut self,
        req: &Request<'_>,
        resend: Resend,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<Option<Reply>, HostError> {
        let attempts = if resend == Resend::Never {
            1
        } else {
            self.timeouts.attempts.max(1)
        };
        for attempt in 0..attempts {
            self.check_cancel()?;
            let id = self.take_id();
            if attempt > 0 {
                self.stats.resent += 1;
                self.observer.event(&if resend == Resend::OnDamage {
                    format!("the device received {} damaged, sending it again", req.op())
                } else {
                    format!("no answer to {}, sending it again", req.op())
                });
            }
            let sent_at = self.link.now();
            let sent = self.send_request(id, req).await?;
            let after = if attempt == 0 {
                core::mem::take(&mut self.send_after)
            } else {
                Vec::new()
            };
            let mut ahead = Vec::new();
            for extra in &after {
                // Read only and 10 to 18 bytes each: any agent's queue holds them behind
                // the request (docs/PROTOCOL.md 6.6), and the agent answers them right
                // after.
                let rid = self.take_id();
                self.send_request(rid, extra).await?;
                ahead.push((rid, extra.op()));
            }
            self.ahead = ahead;
            self.ahead_at = self.link.now();
            let mut deadline = self.link.now() + self.reply_timeout() + self.line_time(1100);
            let cap = deadline + progress_allowance(req);
            let mut last_done = None;
            let mut damaged = false;
            while let Some((rid, reply)) = self.next_reply(deadline).await? {
                if let Reply::Error {
                    code: ErrorCode::FrameTooLong,
                    detail,
                } = reply
                    && rid == NO_ID
                    && req.payload_len() > detail as usize
                {
                    // Not damage: our request is longer than the agent takes (`detail`
                    // bytes of payload). Sending it again cannot help.
                    return Err(refusal(req.op(), ErrorCode::FrameTooLong, detail));
                }
                if rid == NO_ID {
                    // The device saw a damaged frame: ours, most likely.
                    self.stats.bad_frames += 1;
                    if resend != Resend::OnDamage {
                        break; // send again
                    }
                    // Its answer may still come if the damaged frame was another one.
                    damaged |= matches!(
                        reply,
                        Reply::Error {
                            code: ErrorCode::BadFrame,
                            ..
                        }
                    );
                    continue;
                }
                if rid != id {
                    continue; // a late answer to an earlier try
                }
                match reply {
                    Reply::Progress { done, total } => {
                        // Only progress that advances within its total keeps the request
                        // alive, and never past what the request can take: a device that
                        // keeps sending progress cannot keep the host waiting for ever.
                        if advances(last_done, done, total) {
                            last_done = Some(done);
                            let now = self.link.now();
                            on_progress(self.observer.as_mut(), now, done, total);
                            deadline = (now + self.reply_timeout()).min(cap);
                        }
                    }
                    Reply::Error { code, detail } => {
                        return Err(refusal(req.op(), code, detail));
                    }
                    reply => {
                        // Only requests the agent answers at once measure the link (not
                        // an erase, a checksum or a record written).
                        let quick = matches!(
                            req,
                            Request::Hello { .. }
                                | Request::GetRecord
                                | Request::FindBytecodeSlot
                                | Request::FindVmSlot
                        );
                        if quick {
                            // The answer's frame, as the agent encodes it.
                            let back = fota_protocol::encode_reply(id, &reply, &mut self.out);
                            let line = sent + back.unwrap_or(0);
                            let took = self.link.now() - sent_at;
                            self.latency = Some(took.saturating_sub(self.line_time(line)));
                        }
                        return Ok(Some(reply));
                    }
                }
            }
            if resend == Resend::OnDamage && !damaged {
                break; // silence: taken as a lost answer
            }
        }
        Ok(None)
    }

    pub(crate) async fn call(&mut self, req: &Request<'_>) -> Result<Reply, HostError> {
        self.call_with(req, Resend::Always, &mut |_, _, _, _| {})
            .await
    }

    /// Read and drop what the device sends for `how_long` (log lines still reach the
    /// observer). Used to wait without a runtime's sleep.
    pub async fn idle(&mut self, how_long: Duration) -> Result<(), HostError> {
        let until = self.link.now() + how_long;
        while self.link.now() < until {
            if self.next_reply(until).await?.is_none() {
                break;
            }
        }
        Ok(())
    }
}

/// How much longer than the reply timeout a request's progress may keep the host
/// waiting: 2 s per 4 KiB erased or hashed (5 times the slowest sector erase of common
/// NOR flash, 400 ms per 4 KiB, and more than an MCU's internal flash needs); none for
/// other requests, which send no progress.
fn progress_allowance(req: &Request<'_>) -> Duration {
    match req {
        Request::EraseSlot { size, .. } | Request::ChecksumSlot { size, .. } => {
            Duration::from_secs(2) * size.div_ceil(4096)
        }
        _ => Duration::ZERO,
    }
}

/// Whether a progress frame moves on: `done` grows and stays within `total`.
fn advances(last_done: Option<u32>, done: u32, total: u32) -> bool {
    done <= total && last_done.is_none_or(|d| done > d)
}

pub(crate) fn refusal(op: Op, code: ErrorCode, detail: u32) -> HostError {
    match code {
        ErrorCode::Unsupported => HostError::Unsupported,
        code => HostError::Refused { op, code, detail },
    }
}

/// The error for an `Error` reply to `op`, or a protocol error for any other unexpected
/// reply.
pub(crate) fn refused(op: Op, reply: &Reply) -> HostError {
    match *reply {
        Reply::Error { code, detail } => refusal(op, code, detail),
        ref other => unexpected(other),
    }
}

fn unexpected(reply: &Reply) -> HostError {
    HostError::Protocol(format!("{reply:?}"))
}
