//! A connection to one device: requests with ids, replies matched to them, timeouts
//! that tell a dead device from a slow one, and windowed pipelines.

use core::time::Duration;
use std::collections::VecDeque;

use fota_protocol::{
    AcceptOutcome, DEFAULT_BAUD, ErrorCode, Event, FrameReader, Info, Layout as _, NO_ID, Op,
    PROTOCOL_VERSION, Record, RecordUpdate, Reply, Request, SlotKind, encode_request, frame_len,
};

use crate::{CancelToken, HostError, Observer, Transport};

/// Largest frame the host reads: any agent reply, and long log lines in pieces.
const READER_LEN: usize = 8 * 1024;

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

/// What [`Device::pipeline`] calls with each answer: the observer, the time, the
/// request's index and the reply.
pub(crate) type OnReply<'a> =
    dyn FnMut(&mut dyn Observer, Duration, usize, Reply) -> Result<(), HostError> + 'a;

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
        }
    }

    /// The silence after which a request is sent again: [`Timeouts::reply`] plus the
    /// device's worst-case sector erase time (`Info` tag 2), since one step of the agent
    /// may take that long before it can send anything (one sector of an erase, a record
    /// entry written into a sector it first erases).
    pub fn reply_timeout(&self) -> Duration {
        let erase = self
            .info
            .as_ref()
            .and_then(|i| i.sector_erase_ms)
            .map_or(Duration::ZERO, |ms| Duration::from_millis(u64::from(ms)));
        self.timeouts.reply + erase
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
        let n = encode_request(id, req, &mut self.out)
            .ok_or_else(|| HostError::Protocol("request too large to encode".into()))?;
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

    /// Send one request and wait for its reply, sending it again after silence. Progress
    /// frames keep it waiting and go to `on_progress`. `retry: false` sends once (for
    /// requests that must not run twice, like restart). A device that stops answering
    /// at a negotiated rate is looked for at its base rate (it goes back there after
    /// some idle time), and the request sent there.
    async fn call_with(
        &mut self,
        req: &Request<'_>,
        retry: bool,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<Reply, HostError> {
        match self.call_attempts(req, retry, on_progress).await {
            Err(HostError::NoAnswer) if retry && self.may_recover() => {
                // Boxed: finding the device again sends requests itself (a recursion).
                Box::pin(self.back_to_base()).await?;
                self.call_attempts(req, retry, on_progress).await
            }
            other => other,
        }
    }

    fn may_recover(&self) -> bool {
        self.base_baud.is_some() && !self.switching
    }

    /// The device stopped answering at the negotiated rate: it went back to its base rate
    /// (after some idle time, or a reset the host did not see). Say hello there and
    /// negotiate again.
    async fn back_to_base(&mut self) -> Result<(), HostError> {
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

    async fn call_attempts(
        &mut self,
        req: &Request<'_>,
        retry: bool,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<Reply, HostError> {
        let attempts = if retry {
            self.timeouts.attempts.max(1)
        } else {
            1
        };
        for attempt in 0..attempts {
            self.check_cancel()?;
            let id = self.take_id();
            if attempt > 0 {
                self.stats.resent += 1;
                self.observer
                    .event(&format!("no answer to {}, sending it again", req.op()));
            }
            self.send_request(id, req).await?;
            let mut deadline = self.link.now() + self.reply_timeout() + self.line_time(1100);
            let cap = deadline + progress_allowance(req);
            let mut last_done = None;
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
                    // The device saw a damaged frame: ours, most likely. Send again.
                    self.stats.bad_frames += 1;
                    break;
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
                    reply => return Ok(reply),
                }
            }
        }
        Err(HostError::NoAnswer)
    }

    pub(crate) async fn call(&mut self, req: &Request<'_>) -> Result<Reply, HostError> {
        self.call_with(req, true, &mut |_, _, _, _| {}).await
    }

    /// Check the protocol version and read the agent's description.
    pub async fn hello(&mut self) -> Result<Info, HostError> {
        let reply = self
            .call(&Request::Hello {
                version: PROTOCOL_VERSION,
            })
            .await;
        let info = match reply {
            Ok(Reply::Info(info)) => info,
            Err(HostError::Refused {
                code: ErrorCode::VersionMismatch,
                detail,
                ..
            }) => {
                return Err(HostError::VersionMismatch {
                    device: u16::try_from(detail).unwrap_or(u16::MAX),
                    host: PROTOCOL_VERSION,
                });
            }
            Err(e) => return Err(e),
            Ok(other) => return Err(unexpected(&other)),
        };
        check_info(&info)?;
        // The name is shown in terminals and pages: printable only.
        let mut info = info;
        info.name = crate::text::printable_name(&info.name);
        self.info = Some(info.clone());
        Ok(info)
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

    /// End the session: the agent forgets it (its cache of replies), programs a partial
    /// write unit it held, and goes back to its base rate, where the next host says hello.
    /// The reply comes at the current rate; the link then follows the agent. An agent
    /// without `Goodbye` (an older firmware) refuses it and nothing changes; a silent one
    /// goes back by itself after its idle time. Only a link error fails.
    pub async fn goodbye(&mut self) -> Result<(), HostError> {
        for _ in 0..2 {
            let id = self.take_id();
            let sent = self.send_request(id, &Request::Goodbye).await?;
            let deadline = self.link.now() + Duration::from_millis(300) + self.line_time(sent + 32);
            while let Some((rid, reply)) = self.next_reply(deadline).await? {
                if rid != id {
                    continue;
                }
                if let Reply::Goodbye(base) = reply {
                    // The reply left at the old rate; the agent switches after it.
                    if self.link.baud().is_some_and(|b| b != base) {
                        self.link.set_baud(base).await?;
                    }
                    self.reader.reset();
                    self.base_baud = None;
                }
                self.info = None;
                return Ok(());
            }
        }
        self.info = None;
        Ok(())
    }

    /// The agent's info, asking for it if not known yet.
    pub async fn ensure_info(&mut self) -> Result<Info, HostError> {
        match &self.info {
            Some(info) => Ok(info.clone()),
            None => self.hello().await,
        }
    }

    /// `get_record()`. The observer hears every record read ([`Observer::record`]).
    pub async fn get_record(&mut self) -> Result<Record, HostError> {
        match self.call(&Request::GetRecord).await? {
            Reply::Record(r) => {
                self.observer.record(&r);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// `set_record(newfota)`.
    pub async fn set_record(&mut self, update: RecordUpdate) -> Result<(), HostError> {
        match self.call(&Request::SetRecord(update)).await? {
            Reply::RecordSet => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// `find_bytecode_slot()`: the address of a free bytecode slot.
    pub async fn find_bytecode_slot(&mut self) -> Result<u32, HostError> {
        self.find_slot(SlotKind::Bytecode).await
    }

    /// `find_vm_slot()`: the address of a free VM slot (the current VM's address where
    /// the layout has one VM slot).
    pub async fn find_vm_slot(&mut self) -> Result<u32, HostError> {
        self.find_slot(SlotKind::Vm).await
    }

    /// The agent's choice of a free slot of `kind` (`find_bytecode_slot()` or
    /// `find_vm_slot()`).
    pub async fn find_slot(&mut self, kind: SlotKind) -> Result<u32, HostError> {
        let req = match kind {
            SlotKind::Bytecode => Request::FindBytecodeSlot,
            SlotKind::Vm => Request::FindVmSlot,
        };
        match self.call(&req).await {
            Ok(Reply::BytecodeSlot(a)) if kind == SlotKind::Bytecode => Ok(a),
            Ok(Reply::VmSlot(a)) if kind == SlotKind::Vm => Ok(a),
            Err(HostError::Refused {
                code: ErrorCode::NoFreeSlot,
                ..
            }) => Err(HostError::NoFreeSlot),
            Err(e) => Err(e),
            Ok(other) => Err(unexpected(&other)),
        }
    }

    /// `erase_slot(addr, size)`, reporting the device's progress to `on_progress`.
    pub async fn erase_slot(
        &mut self,
        addr: u32,
        size: u32,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<(u32, u32), HostError> {
        match self
            .call_with(&Request::EraseSlot { addr, size }, true, on_progress)
            .await?
        {
            Reply::Erased { addr, size } => Ok((addr, size)),
            other => Err(unexpected(&other)),
        }
    }

    /// `write_slot(addr, block)` for one block.
    pub async fn write_slot(&mut self, addr: u32, block: &[u8]) -> Result<(), HostError> {
        match self.call(&Request::WriteSlot { addr, data: block }).await? {
            Reply::Written { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// `checksum_slot(addr, size)`: the device's MD5.
    pub async fn checksum_slot(
        &mut self,
        addr: u32,
        size: u32,
        on_progress: &mut dyn FnMut(&mut dyn Observer, Duration, u32, u32),
    ) -> Result<[u8; 16], HostError> {
        match self
            .call_with(&Request::ChecksumSlot { addr, size }, true, on_progress)
            .await?
        {
            Reply::Checksum(md5) => Ok(md5),
            other => Err(unexpected(&other)),
        }
    }

    /// `attempt(bcslot, vmslot)`.
    pub async fn attempt(&mut self, bc_slot: u32, vm_slot: u32) -> Result<(), HostError> {
        match self.call(&Request::Attempt { bc_slot, vm_slot }).await? {
            Reply::Attempted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// `attempt(bcslot, vmslot)` of an image older than the device's minimum version
    /// (`AttemptDowngrade`): only where the device allows downgrades and the user
    /// confirmed it.
    pub async fn attempt_downgrade(&mut self, bc_slot: u32, vm_slot: u32) -> Result<(), HostError> {
        match self
            .call(&Request::AttemptDowngrade { bc_slot, vm_slot })
            .await?
        {
            Reply::Attempted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// `accept()`: what the device did (accepted, or nothing to accept and why).
    pub async fn accept(&mut self) -> Result<AcceptOutcome, HostError> {
        match self.call(&Request::Accept).await? {
            Reply::Accepted(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// `restart()`. Sent once: a second restart before the first boot finished would
    /// count as a failed trial. A lost answer is not an error; the caller reconnects and
    /// reads the record to see what runs.
    pub async fn restart(&mut self) -> Result<(), HostError> {
        // Sent again only when the device said it received a damaged frame and no
        // answer to this one came: a damaged frame never runs, so this cannot restart
        // twice. Silence is taken as a lost answer (the device may be resetting).
        for attempt in 0..self.timeouts.attempts.max(1) {
            self.check_cancel()?;
            let id = self.take_id();
            if attempt > 0 {
                self.stats.resent += 1;
                self.observer
                    .event("the device received Restart damaged, sending it again");
            }
            let sent = self.send_request(id, &Request::Restart).await?;
            let deadline = self.link.now() + self.reply_timeout() + self.line_time(sent);
            let mut damaged = false;
            let mut answered = false;
            while let Some((rid, reply)) = self.next_reply(deadline).await? {
                if rid == NO_ID {
                    self.stats.bad_frames += 1;
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
                    continue;
                }
                match reply {
                    Reply::Restarting => {
                        answered = true;
                        break;
                    }
                    Reply::Progress { .. } => {}
                    Reply::Error { code, detail } => {
                        return Err(refusal(Op::Restart, code, detail));
                    }
                    other => return Err(unexpected(&other)),
                }
            }
            if answered || !damaged {
                break;
            }
        }
        self.info = None;
        self.reader.reset();
        // The agent comes back from reset at its base rate.
        if let Some(base) = self.base_baud.take() {
            self.link.set_baud(base).await?;
        }
        Ok(())
    }

    /// Wait for the device to come back after a restart: reopen the link and say hello
    /// until it answers or [`Timeouts::reboot`] passes.
    pub async fn wait_for_device(&mut self) -> Result<Info, HostError> {
        let start = self.link.now();
        let deadline = start + self.timeouts.reboot;
        let saved = self.timeouts;
        self.timeouts.attempts = 1;
        self.timeouts.reply = Duration::from_millis(400);
        self.switching = true;
        let mut port_lost = false;
        let result = loop {
            self.check_cancel()?;
            let tried = self.link.now();
            match self.link.reconnect().await {
                Ok(()) => match self.hello().await {
                    Ok(info) => {
                        let secs = (self.link.now() - start).as_secs_f64();
                        self.observer.event(&if port_lost {
                            format!("the port came back and the device answers ({secs:.1} s)")
                        } else {
                            format!("the device answers again ({secs:.1} s)")
                        });
                        break Ok(info);
                    }
                    Err(HostError::NoAnswer | HostError::Link(_)) => {
                        // A device that reset by itself (a watchdog) is back at its base
                        // rate.
                        if let Some(base) = self.base_baud.take() {
                            self.link.set_baud(base).await?;
                            self.reader.reset();
                        }
                        // A hello that failed at once (the device said "damaged frame",
                        // the link dropped) is not sent again at once: one every 400 ms
                        // at most, so a confused device is not flooded with requests.
                        let next = tried + Duration::from_millis(400);
                        let now = self.link.now();
                        if now < next {
                            self.link.sleep(next - now).await;
                        }
                    }
                    Err(e) => break Err(e),
                },
                // The port is not back yet (a USB device re-enumerating): wait a little.
                Err(_) => {
                    port_lost = true;
                    self.link.sleep(Duration::from_millis(200)).await;
                }
            }
            if self.link.now() >= deadline {
                break Err(HostError::NoAnswer);
            }
        };
        self.timeouts = saved;
        self.switching = false;
        result
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
                .call_with(&Request::SetBaud { baud }, false, &mut |_, _, _, _| {})
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
            let confirmed = self.hello().await;
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
        let info = self.ensure_info().await?;
        let window = usize::from(info.max_in_flight.max(1));
        let frame = self.line_time(usize::from(info.max_write) + 32);
        let wait = self.reply_timeout() + frame * u32::try_from(window).unwrap_or(u32::MAX);
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut next = 0usize;
        let mut silent_rounds = 0u32;
        // Set when something is sent or answered; frames that answer nothing in flight
        // (late, duplicated, damaged) do not move it, so a device sending only those
        // cannot keep the host waiting.
        let mut deadline: Option<Duration> = None;
        while next < count || !in_flight.is_empty() {
            self.check_cancel()?;
            while in_flight.len() < window && next < count && ready(next) {
                let id = self.take_id();
                let req = make(next);
                self.send_request(id, &req).await?;
                let cap = self.link.now() + wait + progress_allowance(&req);
                in_flight.push_back(InFlight::new(next, id, 1, cap));
                next += 1;
                deadline = None;
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
        Ok(())
    }

    async fn resend<'r>(
        &mut self,
        in_flight: &mut VecDeque<InFlight>,
        index: usize,
        sends: u32,
        make: &dyn Fn(usize) -> Request<'r>,
        wait: Duration,
    ) -> Result<(), HostError> {
        if sends > self.timeouts.attempts.max(1) + 8 {
            return Err(HostError::NoAnswer);
        }
        let id = self.take_id();
        self.stats.resent += 1;
        let req = make(index);
        self.send_request(id, &req).await?;
        let cap = self.link.now() + wait + progress_allowance(&req);
        in_flight.push_back(InFlight::new(index, id, sends + 1, cap));
        Ok(())
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

/// Check the agent's description once, so that everything after it may trust the
/// geometry: sizes that are powers of two and fit, slots on sector boundaries that do
/// not wrap around the address space.
fn check_info(i: &Info) -> Result<(), HostError> {
    let bad = |what: &str| {
        Err(HostError::Protocol(format!(
            "the device describes itself wrongly: {what}"
        )))
    };
    let (sector, gran) = (i.sector_size, u32::from(i.write_granularity));
    if !sector.is_power_of_two() || sector > 1 << 20 {
        return bad("sector size");
    }
    if !fota_protocol::sector_runs_valid(&i.sectors, sector)
        || i.sectors.iter().any(|r| r.size > 1 << 24)
    {
        return bad("sector runs");
    }
    if !gran.is_power_of_two() || sector % gran != 0 {
        return bad("write granularity");
    }
    if i.max_write == 0 || u32::from(i.max_write) % gran != 0 {
        return bad("largest write");
    }
    if i.max_in_flight == 0 {
        return bad("requests in flight");
    }
    // Slots start and end on sector boundaries (of whatever size the sector there is).
    let boundary = |addr: u64| u32::try_from(addr).is_ok_and(|a| i.sector_at(a).0 == a);
    for s in &i.slots {
        let end = u64::from(s.addr) + u64::from(s.size);
        if s.size == 0 || !boundary(u64::from(s.addr)) || !boundary(end) {
            return bad("a slot");
        }
    }
    if let Some(vm) = i.boot_stage
        && i.slot(SlotKind::Vm, u32::from(vm)).is_none()
    {
        return bad("the boot stage");
    }
    Ok(())
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
}

impl InFlight {
    fn new(index: usize, id: u16, sends: u32, cap: Duration) -> Self {
        InFlight {
            index,
            id,
            sends,
            last_done: None,
            cap,
        }
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
