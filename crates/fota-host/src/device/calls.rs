//! The seed's calls, one request each (hello, get_record, find_*_slot, erase_slot,
//! write_slot, checksum_slot, attempt, accept, restart...), and waiting for a device that
//! restarts.

use core::time::Duration;

use fota_protocol::{
    AcceptOutcome, ErrorCode, Info, Layout as _, OLDEST_VERSION, Op, PROTOCOL_VERSION, Record,
    RecordUpdate, Reply, Request, SlotCheck, SlotKind,
};

use super::{Device, Resend, unexpected};

use crate::{HostError, Observer, Transport};

impl<T: Transport> Device<T> {
    /// Check the protocol version and read the agent's description.
    pub async fn hello(&mut self) -> Result<Info, HostError> {
        // Said a moment ago, nothing sent since: the agent is where that hello left it
        // (a negotiation's hello at the new rate, then the update's).
        if let (Some(at), Some(info)) = (self.fresh_info_at, &self.info)
            && self.link.now() < at + super::FRESH
        {
            return Ok(info.clone());
        }
        // This host's version first; an agent of an older version it still speaks
        // (`OLDEST_VERSION`) refuses it with its own, and is greeted again in that one.
        let mut version = PROTOCOL_VERSION;
        let info = loop {
            // The record and a free bytecode slot come right behind the Info: what an
            // update reads next. Behind a refused hello their answers are dropped (the
            // next hello sends them again under new ids).
            if !self.switching || self.confirming {
                self.send_after = vec![Request::GetRecord, Request::FindBytecodeSlot];
                // Of version 3: not behind a hello of version 2.
                self.opening_sent = None;
                self.running_md5 = None;
                if version == PROTOCOL_VERSION {
                    self.opening_sent = self.opening_check.take();
                    self.send_after.extend(self.opening_sent);
                }
            }
            let reply = self.call(&Request::Hello { version }).await;
            self.send_after = Vec::new();
            match reply {
                Ok(Reply::Info(info)) => break info,
                Err(HostError::Refused {
                    code: ErrorCode::VersionMismatch,
                    detail,
                    ..
                }) => {
                    let device = u16::try_from(detail).unwrap_or(u16::MAX);
                    if (OLDEST_VERSION..version).contains(&device) {
                        version = device;
                        continue;
                    }
                    return Err(HostError::VersionMismatch {
                        device,
                        host: PROTOCOL_VERSION,
                    });
                }
                Err(e) => return Err(e),
                Ok(other) => return Err(unexpected(&other)),
            }
        };
        self.version = version;
        check_info(&info)?;
        // The name is shown in terminals and pages: printable only.
        let mut info = info;
        info.name = crate::text::printable_name(&info.name);
        self.info = Some(info.clone());
        self.fresh_info_at = Some(self.link.now());
        Ok(info)
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
        if let Some(Reply::Record(r)) = self.answer_ahead(Op::GetRecord).await? {
            self.observer.record(&r);
            return Ok(r);
        }
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
        // Asked right behind the last hello, nothing sent since: its answer stands.
        let reply = match self.answer_ahead(req.op()).await? {
            Some(r) => Ok(r),
            None => self.call(&req).await,
        };
        match reply {
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
            .call_with(
                &Request::EraseSlot { addr, size },
                Resend::Always,
                on_progress,
            )
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
        // Sent ahead behind the stream's last block (`send_after_pipeline`), for this
        // very range: its answer is on its way.
        if let Some(Reply::Checksum(md5)) = self
            .long_answer_ahead(&Request::ChecksumSlot { addr, size }, on_progress)
            .await?
        {
            return Ok(md5);
        }
        match self
            .call_with(
                &Request::ChecksumSlot { addr, size },
                Resend::Always,
                on_progress,
            )
            .await?
        {
            Reply::Checksum(md5) => Ok(md5),
            other => Err(unexpected(&other)),
        }
    }

    /// `attempt(bcslot, vmslot)`.
    pub async fn attempt(&mut self, bc_slot: u32, vm_slot: u32) -> Result<(), HostError> {
        self.attempt_checked(bc_slot, vm_slot, false, None).await
    }

    /// `attempt(bcslot, vmslot)` of an image older than the device's minimum version
    /// (`AttemptDowngrade`): only where the device allows downgrades and the user
    /// confirmed it.
    pub async fn attempt_downgrade(&mut self, bc_slot: u32, vm_slot: u32) -> Result<(), HostError> {
        self.attempt_checked(bc_slot, vm_slot, true, None).await
    }

    /// `attempt(bcslot, vmslot)` (`AttemptDowngrade` with `downgrade`), carrying `check`
    /// where the agent speaks protocol 3 (dropped otherwise: the caller has checked the
    /// slot's MD5 itself): the agent writes the record only if the slot holds that MD5
    /// by the `ChecksumSlot` just before. Sent ahead behind that `ChecksumSlot`
    /// ([`Device::attempt_behind_checksum`]), its answer is taken from there.
    pub async fn attempt_checked(
        &mut self,
        bc_slot: u32,
        vm_slot: u32,
        downgrade: bool,
        check: Option<SlotCheck>,
    ) -> Result<(), HostError> {
        let check = check.filter(|_| self.version >= 3);
        let req = attempt_request(bc_slot, vm_slot, downgrade, check);
        let op = req.op();
        let ahead = if check.is_some() {
            self.reply_ahead(op).await?
        } else {
            None
        };
        let reply = match ahead {
            Some(Reply::Attempted) => Ok(Reply::Attempted),
            Some(Reply::Error { code, detail }) => Err(super::refusal(op, code, detail)),
            // Not sent ahead, or its answer lost: ask (a copy of one the agent ran is
            // answered from its cache, or writes nothing: the record names it already).
            _ => {
                // An update reads the record back next (unless the `Attempt` carried
                // the slot's MD5): it comes with the answer.
                if check.is_none() {
                    self.send_after = vec![Request::GetRecord];
                }
                let reply = self.call(&req).await;
                self.send_after = Vec::new();
                reply
            }
        };
        match reply? {
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
        let noop = &mut |_: &mut dyn Observer, _, _, _| {};
        match self
            .call_attempts(&Request::Restart, Resend::OnDamage, noop)
            .await?
        {
            // No answer: lost, or the device reset before it could send it.
            Some(Reply::Restarting) | None => {}
            Some(other) => return Err(unexpected(&other)),
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
    // A receive queue (tag 8) must hold the largest request the agent takes: a
    // `WriteSlot` of `max_write` bytes.
    let largest = fota_protocol::frame_len(usize::from(i.max_write) + 11);
    if i.rx_window.is_some_and(|b| (b as usize) < largest) {
        return bad("receive window");
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

/// The `Attempt` (or `AttemptDowngrade`) request for these slots.
pub(crate) fn attempt_request(
    bc_slot: u32,
    vm_slot: u32,
    downgrade: bool,
    check: Option<SlotCheck>,
) -> Request<'static> {
    if downgrade {
        Request::AttemptDowngrade {
            bc_slot,
            vm_slot,
            check,
        }
    } else {
        Request::Attempt {
            bc_slot,
            vm_slot,
            check,
        }
    }
}
