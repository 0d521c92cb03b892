//! The properties both fuzz targets check, shared with the proptest suite
//! (`crates/fota-agent/tests/properties.rs` includes this file with `#[path]`), so that
//! `cargo test` checks the same properties as `cargo fuzz run`.
//!
//! - [`frame_decoder`]: arbitrary bytes into a `FrameReader`; every chunk between two
//!   zeros is classified exactly as a reference decoder (COBS, length, CRC-32, text)
//!   says; every frame's request and reply parse round-trips through the encoder.
//! - [`agent_requests`]: arbitrary request frames (and noise, damaged frames, power cuts
//!   and restarts) into an `AgentLink` over a `SimFlash`, long requests driven one
//!   bounded step at a time; after every request: no panic, no byte changed outside what
//!   the request named (the slot it addressed, and only a slot in use by no configuration
//!   and not the boot stage; the partial write unit an earlier write left; the record
//!   area only for set_record, attempt, accept and boot), a refusal changes nothing, the
//!   record in RAM is the one on flash, a trial is never turned back into a pending
//!   attempt, and the record is never lost.
#![allow(dead_code)]

use fota_agent::record::LogEntry;
use fota_agent::{AgentConfig, AgentLink, Handled, LinkAction, RX_FRAME, RX_PAYLOAD, RecordState};
use fota_protocol::Layout as _; // the slot look-ups of `AgentConfig`
use fota_protocol::{
    Event, FrameError, FrameReader, Reply, Request, SlotKind, encode_reply, encode_request,
    frame_len,
};
use fota_sim::flash::SimFlash;

// ---- input ---------------------------------------------------------------------------------

/// Reads fuzz input; returns zeros once it runs out, so every input is a valid script.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

// ---- frame decoder -------------------------------------------------------------------------

static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What a chunk between two zeros is, by the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Frame { id: u16, op: u8, body: Vec<u8> },
    Text,
    Error(FrameError),
}

/// Plain COBS decoding of a chunk (no zero inside).
pub fn cobs_decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        let code = src[i];
        if code == 0 {
            return None;
        }
        i += 1;
        let n = usize::from(code - 1);
        let block = src.get(i..i + n)?;
        out.extend_from_slice(block);
        i += n;
        if code != 0xFF && i < src.len() {
            out.push(0);
        }
    }
    Some(out)
}

fn is_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x1B | 0x20..=0x7E | 0x80..=0xFF))
}

/// The reference classification of a non-empty chunk that fits the reader.
pub fn classify(chunk: &[u8]) -> Expected {
    let verdict = match cobs_decode(chunk) {
        None => Err(FrameError::Cobs),
        Some(d) if d.len() < 7 => Err(FrameError::TooShort),
        Some(d) => {
            let (payload, crc) = d.split_at(d.len() - 4);
            if CRC32.checksum(payload).to_le_bytes() == crc {
                Ok(Expected::Frame {
                    id: u16::from_le_bytes([payload[0], payload[1]]),
                    op: payload[2],
                    body: payload[3..].to_vec(),
                })
            } else {
                Err(FrameError::Crc)
            }
        }
    };
    match verdict {
        Ok(frame) => frame,
        Err(_) if is_text(chunk) => Expected::Text,
        Err(e) => Expected::Error(e),
    }
}

/// Feed `data` to a reader of `N` bytes, one chunk (up to and including its zero) at a
/// time, and check every chunk against [`classify`]; check every frame's round trip.
/// Returns the number of frames decoded.
pub fn frame_decoder_with<const N: usize>(data: &[u8]) -> usize {
    let mut reader = FrameReader::<N>::new();
    let mut frames = 0;
    let mut start = 0;
    while start < data.len() {
        let end = data[start..]
            .iter()
            .position(|&b| b == 0)
            .map_or(data.len(), |p| start + p + 1);
        let piece = &data[start..end];
        let terminated = piece.last() == Some(&0);
        let chunk = if terminated {
            &piece[..piece.len() - 1]
        } else {
            piece
        };
        // Feed the piece, collecting the events (stalls: at most one call with no
        // progress in a row).
        let mut events = Vec::new();
        let mut rest = piece;
        let mut stalled = false;
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            assert!(used <= rest.len());
            if used == 0 {
                assert!(!stalled, "the reader made no progress twice in a row");
                assert!(event.is_some(), "no progress and no event");
            }
            stalled = used == 0;
            rest = &rest[used..];
            match event {
                Some(Event::Frame(f)) => {
                    frames += 1;
                    round_trip(f.id, f.op, f.body);
                    events.push(Expected::Frame {
                        id: f.id,
                        op: f.op,
                        body: f.body.to_vec(),
                    });
                }
                Some(Event::Text(t)) => {
                    assert!(!t.is_empty() && is_text(t));
                    events.push(Expected::Text);
                }
                Some(Event::Error(e)) => events.push(Expected::Error(e)),
                None => {}
            }
        }
        if terminated && !chunk.is_empty() && chunk.len() <= N {
            assert_eq!(events, [classify(chunk)], "chunk {chunk:02x?}");
        } else if terminated && chunk.len() > N {
            // Too long: text in pieces, or dropped whole; never a frame by accident of
            // the cut.
            assert!(
                events
                    .iter()
                    .all(|e| matches!(e, Expected::Text | Expected::Error(_)))
                    || is_text(&chunk[..N]),
                "{events:?}"
            );
        } else if chunk.is_empty() {
            assert!(events.is_empty(), "an empty chunk is no event: {events:?}");
        }
        start = end;
    }
    frames
}

/// Whatever parses re-encodes to the same frame.
fn round_trip(id: u16, op: u8, body: &[u8]) {
    let mut out = vec![0u8; frame_len(body.len() + 16)];
    if let Ok(req) = Request::parse(op, body) {
        assert_eq!(req.op() as u8, op);
        let n = encode_request(id, &req, &mut out).expect("a parsed request fits");
        let mut reader = FrameReader::<8192>::new();
        let (_, ev) = reader.feed(&out[..n]);
        let Some(Event::Frame(f)) = ev else {
            panic!("re-encoded {req:?} does not decode: {ev:?}");
        };
        assert_eq!((f.id, f.op, f.body), (id, op, body), "{req:?}");
    }
    if let Ok(reply) = Reply::parse(op, body) {
        assert_eq!(reply.op(), op);
        let n = encode_reply(id, &reply, &mut out).expect("a parsed reply fits");
        let mut reader = FrameReader::<8192>::new();
        let (_, ev) = reader.feed(&out[..n]);
        let Some(Event::Frame(f)) = ev else {
            panic!("re-encoded {reply:?} does not decode");
        };
        assert_eq!((f.id, f.op), (id, op));
        assert_eq!(Reply::parse(f.op, f.body).as_ref(), Ok(&reply));
    }
}

/// The frame decoder target: the first byte picks the reader size (the agent's, or a
/// small one that overflows often).
pub fn frame_decoder(data: &[u8]) -> usize {
    match data.split_first() {
        Some((b, rest)) if b & 1 == 0 => frame_decoder_with::<RX_FRAME>(rest),
        Some((_, rest)) => frame_decoder_with::<48>(rest),
        None => 0,
    }
}

/// One frame builder for both harnesses.
#[path = "frames.rs"]
mod frames;
pub use frames::raw_frame;

// ---- agent requests ------------------------------------------------------------------------

/// Small sectors so the record ring wraps within a few dozen requests.
pub const SECTOR: u32 = 256;
/// Absolute address of flash offset 0 (not 0, so offset/address mix-ups show).
pub const BASE: u32 = 0x0800_0000;
pub type Flash = SimFlash<4, 256>;

/// The two seed layouts, small: slots of two or three sectors, a two-sector record area,
/// and one spare sector after it that belongs to nothing.
pub fn layout(vm_and_bytecode: bool) -> (AgentConfig, usize) {
    let cfg = if vm_and_bytecode {
        // VM slot 0 is the boot stage: nothing may ever erase or write it.
        let mut cfg = AgentConfig::vm_and_bytecode(BASE, 2 * SECTOR, 3 * SECTOR, SECTOR);
        cfg.boot_stage = Some(0);
        cfg
    } else {
        AgentConfig::bytecode_only(BASE, 2 * SECTOR, 3 * SECTOR, SECTOR)
    };
    // The record is what these checks follow: slot contents are not checked (the image
    // checks have their own tests).
    let mut cfg = cfg;
    cfg.images = fota_agent::ImagePolicy::NONE;
    let size = (cfg.record_addr + cfg.record_size - BASE + SECTOR) as usize;
    (cfg, size)
}

/// The state the checks compare against.
struct World {
    cfg: AgentConfig,
    /// Always `Some` but while rebooting.
    slot: Option<AgentLink<Flash>>,
    /// A reader fed the same bytes as the link's, to know what the link is handling.
    mirror: Box<FrameReader<RX_FRAME>>,
    /// A boot has written a record with power on: no later boot may find none.
    established: bool,
    requests: u64,
    boots: u64,
    cuts: u64,
}

fn entry_eq_content(a: &LogEntry, b: &LogEntry) -> bool {
    a.same_content(b)
}

impl World {
    fn new(vm_and_bytecode: bool, seed: u64) -> World {
        let (cfg, size) = layout(vm_and_bytecode);
        let mut flash = Flash::new(size).with_timing(fota_sim::flash::FlashTiming::INSTANT);
        flash.set_seed(seed);
        let link = match AgentLink::boot(flash, cfg.clone()) {
            Ok((link, boot)) => {
                assert!(boot.factory, "a blank flash boots the factory record");
                link
            }
            Err(e) => panic!("boot of a blank flash failed: {e:?}"),
        };
        let mut w = World {
            cfg,
            slot: Some(link),
            mirror: Box::new(FrameReader::new()),
            established: false,
            requests: 0,
            boots: 1,
            cuts: 0,
        };
        w.established = w.link().agent().flash().is_powered();
        w.check_record("first boot");
        w
    }

    fn link(&self) -> &AgentLink<Flash> {
        self.slot.as_ref().expect("booted")
    }

    fn link_mut(&mut self) -> &mut AgentLink<Flash> {
        self.slot.as_mut().expect("booted")
    }

    fn flash(&self) -> &Flash {
        self.link().agent().flash()
    }

    fn record_range(&self) -> core::ops::Range<usize> {
        let start = (self.cfg.record_addr - BASE) as usize;
        start..start + self.cfg.record_size as usize
    }

    /// Restart (or power on after a cut): boot from flash alone, again until a boot
    /// completes with power on.
    fn reboot(&mut self, why: &str) {
        let record = self.record_range();
        loop {
            let before = self.flash().snapshot();
            let mut flash = self.slot.take().expect("booted").into_flash();
            flash.power_on();
            let (link, boot) = match AgentLink::boot(flash, self.cfg.clone()) {
                Ok(x) => x,
                Err(e) => panic!("{why}: boot failed: {e:?}"),
            };
            self.slot = Some(link);
            // A new link after reset: its reader starts empty.
            self.mirror.reset();
            self.boots += 1;
            // Boot writes the record area only.
            let after = self.flash().as_bytes();
            for (i, (a, b)) in before.iter().zip(after).enumerate() {
                assert!(
                    a == b || record.contains(&i),
                    "{why}: boot changed {:#x} outside the record area",
                    BASE as usize + i
                );
            }
            if boot.factory {
                assert!(
                    !self.established,
                    "{why}: the record was lost (boot found no valid record)"
                );
            }
            if self.flash().is_powered() {
                self.established = true;
                self.check_record(why);
                return;
            }
            self.cuts += 1;
        }
    }

    /// The record in RAM is valid and is the one on flash: a fresh boot of a copy of the
    /// flash takes the same decision from it.
    fn check_record(&self, why: &str) {
        let agent = self.link().agent();
        let rec = agent.get_record().expect("a FOTA agent has a record");
        assert_eq!(rec.valid, 1, "{why}");
        let e = agent.record_entry();
        assert_eq!(
            e.state == RecordState::Confirmed,
            !e.differs(),
            "{why}: inconsistent {e:?}"
        );
        for (kind, index) in [
            (SlotKind::Vm, e.vm_current),
            (SlotKind::Vm, e.vm_last),
            (SlotKind::Bytecode, e.bc_current),
            (SlotKind::Bytecode, e.bc_last),
        ] {
            assert!(
                self.cfg.slot(kind, u32::from(index)).is_some(),
                "{why}: {e:?} names a missing slot"
            );
        }
        let copy = Flash::from_image(self.flash().snapshot()).expect("same geometry");
        let (again, _) = fota_agent::Agent::boot(copy, self.cfg.clone()).expect("copy boots");
        let f = again.record_entry();
        let expected = match e.state {
            RecordState::Confirmed => e,
            RecordState::Pending => LogEntry {
                state: RecordState::Trial,
                ..e
            },
            RecordState::Trial => LogEntry::with_slots(e.vm_last, e.vm_last, e.bc_last, e.bc_last),
        };
        assert!(
            entry_eq_content(&f, &expected) && f.seq >= e.seq,
            "{why}: RAM record {e:?}, flash says {f:?} after a boot"
        );
    }

    /// Which flash offsets `req` may change, given the state before it: the range it
    /// names, and the partial write unit an earlier write left (programmed when a request
    /// needs the flash settled); and whether it may change the record area.
    fn allowed(&self, req: &Request<'_>) -> (Vec<core::ops::Range<usize>>, bool) {
        let agent = self.link().agent();
        let e = agent.record_entry();
        let booted = agent.booted();
        let free = |addr: u32| {
            let slot = self.cfg.slot_at(addr)?;
            let used = match slot.kind {
                SlotKind::Vm => [e.vm_current, e.vm_last, booted.vm_slot],
                SlotKind::Bytecode => [e.bc_current, e.bc_last, booted.bc_slot],
            };
            let boot_stage = slot.kind == SlotKind::Vm && self.cfg.boot_stage == Some(slot.index);
            (!used.contains(&slot.index) && !boot_stage).then_some(*slot)
        };
        let held: Vec<core::ops::Range<usize>> = agent
            .held_write()
            .map(|(addr, _)| {
                let at = (addr - BASE) as usize;
                at..at + 4
            })
            .into_iter()
            .collect();
        let with_held = |r: Option<core::ops::Range<usize>>| -> Vec<core::ops::Range<usize>> {
            r.into_iter().chain(held.iter().cloned()).collect()
        };
        let clip = |addr: u32, len: u64| {
            let slot = free(addr)?;
            let from = u64::from(addr);
            let to = (from + len).min(u64::from(slot.addr) + u64::from(slot.size));
            Some((from - u64::from(BASE)) as usize..(to - u64::from(BASE)) as usize)
        };
        match *req {
            Request::WriteSlot { addr, data } => (with_held(clip(addr, data.len() as u64)), false),
            Request::EraseSlot { addr, size } => {
                let len = u64::from(size).div_ceil(u64::from(SECTOR)) * u64::from(SECTOR);
                (with_held(clip(addr, len)), false)
            }
            Request::SetRecord(_) | Request::Attempt { .. } | Request::Accept => {
                (with_held(None), true)
            }
            _ => (with_held(None), false),
        }
    }

    /// Feed `bytes` to the link one step at a time, checking every handled frame.
    fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let before = self.flash().snapshot();
            let entry = self.link().agent().record_entry();
            // What the link is about to see, decoded by a reader of its own.
            let (m_used, m_event) = self.mirror.feed(rest);
            let frame = match m_event {
                // A request longer than the agent takes is answered as too long, whatever
                // its bytes.
                Some(Event::Frame(f))
                    if fota_protocol::FRAME_OVERHEAD + f.body.len() <= RX_PAYLOAD =>
                {
                    Some((f.id, f.op, f.body.to_vec()))
                }
                _ => None,
            };
            let request = frame
                .as_ref()
                .map(|(id, op, body)| (*id, *op, Request::parse(*op, body)));
            let parsed_text = request
                .as_ref()
                .map_or_else(String::new, |(_, _, r)| describe(r));
            let allowed = request
                .as_ref()
                .and_then(|(_, _, r)| r.as_ref().ok())
                .map(|r| self.allowed(r));
            let mut replies: Vec<Vec<u8>> = Vec::new();
            let step = self
                .link_mut()
                .step(rest, &mut |f| replies.push(f.to_vec()));
            assert_eq!(step.consumed, m_used, "the link and a reader disagree");
            rest = &rest[step.consumed..];
            // A long request: drive it one bounded unit at a time to its reply.
            let mut handled = step.handled;
            let mut units = 0u32;
            while let Handled::Started { .. } | Handled::Working { .. } = handled {
                assert!(self.link().is_busy(), "{parsed_text}: started but not busy");
                let unit = self
                    .link_mut()
                    .step(&[0x41, 0], &mut |f| replies.push(f.to_vec()));
                assert_eq!(unit.consumed, 0, "a busy link took input");
                handled = unit.handled;
                units += 1;
                assert!(units < 10_000, "{parsed_text}: never finished");
            }
            assert!(!self.link().is_busy());
            let powered = self.flash().is_powered();
            let after = self.flash().snapshot();
            let after = &after[..];
            let record = self.record_range();
            match handled {
                Handled::Request { id, op, refused } => {
                    self.requests += 1;
                    let (rid, rop, _) = request.expect("the mirror saw a frame");
                    let parsed = &parsed_text;
                    assert_eq!((id, op), (rid, rop));
                    let (range, record_ok) = allowed.unwrap_or((Vec::new(), false));
                    for (i, (a, b)) in before.iter().zip(after).enumerate() {
                        if a == b {
                            continue;
                        }
                        let ok = range.iter().any(|r| r.contains(&i))
                            || (record_ok && record.contains(&i));
                        assert!(
                            ok,
                            "{parsed} changed {:#x} (allowed {range:x?}, record {record_ok})",
                            BASE as usize + i
                        );
                    }
                    if !record_ok {
                        assert_eq!(
                            &before[record.clone()],
                            &after[record.clone()],
                            "{parsed} changed the record area"
                        );
                        if powered {
                            assert_eq!(
                                self.link().agent().record_entry(),
                                entry,
                                "{parsed} changed the record in RAM"
                            );
                        }
                    }
                    // The last reply answers the request; a refusal other than a flash
                    // failure changed nothing at all.
                    let last = replies.last().expect("every request is answered");
                    let mut r = FrameReader::<512>::new();
                    let (_, ev) = r.feed(last);
                    let Some(Event::Frame(f)) = ev else {
                        panic!("the agent sent a damaged reply")
                    };
                    assert_eq!(f.id, id);
                    let reply = f.reply().expect("the agent's reply parses");
                    match (&reply, refused) {
                        (Reply::Error { code, .. }, Some(c)) => {
                            assert_eq!(*code, c);
                            if c != fota_protocol::ErrorCode::FlashFailure {
                                assert!(
                                    before == after,
                                    "{parsed} was refused ({c:?}) but changed flash"
                                );
                            }
                        }
                        (Reply::Error { .. }, None) | (_, Some(_)) => {
                            panic!("{reply:?} does not match {refused:?}")
                        }
                        _ => {}
                    }
                    if let Reply::Error { code, .. } = reply
                        && code == fota_protocol::ErrorCode::FlashFailure
                    {
                        assert!(!powered, "a flash failure with power on: {parsed}");
                    }
                    if powered {
                        self.check_record(&format!("after {parsed}"));
                        // A configuration on trial is never armed for another trial boot.
                        let now = self.link().agent().record_entry();
                        if entry.state == RecordState::Trial && now.same_slots(&entry) {
                            assert_eq!(now.state, RecordState::Trial, "{parsed} re-armed a trial");
                        }
                    }
                }
                Handled::BadFrame(_) | Handled::Text | Handled::Nothing => {
                    assert!(before == after, "{handled:?} changed flash");
                    assert!(request.is_none(), "the mirror saw a frame the link did not");
                }
                Handled::Started { .. } | Handled::Working { .. } => {
                    unreachable!("driven to its reply above")
                }
            }
            if !powered {
                self.cuts += 1;
                self.reboot("power-on after a cut");
                continue;
            }
            if let Some(LinkAction::Restart) = step.action {
                self.reboot("restart()");
            }
        }
    }
}

/// A request in a line (a write's data as its length).
fn describe(r: &Result<Request<'_>, fota_protocol::DecodeError>) -> String {
    match r {
        Ok(Request::WriteSlot { addr, data }) => {
            format!("WriteSlot {{ addr: {addr:#x}, len: {} }}", data.len())
        }
        Ok(Request::EraseSlot { addr, size }) => {
            format!("EraseSlot {{ addr: {addr:#x}, size: {size:#x} }}")
        }
        other => format!("{other:?}"),
    }
}

/// An address worth trying: slot and record edges, the spare sector, extremes.
fn address(input: &mut Input<'_>, cfg: &AgentConfig) -> u32 {
    let mut edges = vec![
        BASE,
        0,
        u32::MAX - 3,
        cfg.record_addr,
        cfg.record_addr + cfg.record_size,
    ];
    for s in &cfg.slots {
        edges.extend([s.addr, s.addr + s.size]);
    }
    let pick = input.u8();
    if pick >= 0xF0 {
        return input.u32();
    }
    let base = edges[usize::from(pick) % edges.len()];
    let delta = u32::from(input.u8());
    match pick % 3 {
        0 => base,
        1 => base.wrapping_add(delta * 4),
        _ => base
            .wrapping_sub(delta * 4)
            .wrapping_add(u32::from(pick & 0x10 != 0)),
    }
}

fn size(input: &mut Input<'_>) -> u32 {
    match input.u8() {
        0..=63 => u32::from(input.u8()) * 4,
        64..=127 => SECTOR * u32::from(input.u8() % 5),
        128..=191 => u32::from(input.u16()),
        192..=250 => SECTOR * 3,
        _ => input.u32(),
    }
}

fn index(input: &mut Input<'_>) -> u32 {
    match input.u8() {
        0..=250 => u32::from(input.u8() % 3),
        _ => input.u32(),
    }
}

/// One command's bytes on the wire.
fn command(input: &mut Input<'_>, cfg: &AgentConfig, id: u16, data: &mut Vec<u8>) -> Vec<u8> {
    let tag = input.u8();
    let request = match tag % 16 {
        0 => Request::Hello {
            version: if tag & 0x80 != 0 {
                input.u16()
            } else {
                fota_protocol::PROTOCOL_VERSION
            },
        },
        1 => Request::GetRecord,
        2 => Request::SetRecord(fota_protocol::RecordUpdate {
            vm_current: index(input),
            vm_last: index(input),
            bc_current: index(input),
            bc_last: index(input),
        }),
        3 => Request::FindBytecodeSlot,
        4 => Request::FindVmSlot,
        5 | 6 => Request::EraseSlot {
            addr: address(input, cfg),
            size: size(input),
        },
        7..=9 => {
            let addr = address(input, cfg);
            let len = match input.u8() {
                0..=150 => usize::from(input.u8()) * 4,
                // Any length: the agent holds a partial write unit until the next write.
                151..=200 => usize::from(input.u8()) + usize::from(input.u8() % 4),
                201..=250 => 1024,
                _ => usize::from(input.u16() % 1100),
            };
            let fill = input.u8();
            data.clear();
            data.extend((0..len).map(|i| fill.wrapping_add((i / 4) as u8)));
            // Sometimes the same bytes a previous write used: idempotent resends.
            let raw = Request::WriteSlot { addr, data };
            return finish(input, id, &raw);
        }
        10 => Request::ChecksumSlot {
            addr: address(input, cfg),
            size: size(input),
        },
        11 => Request::Restart,
        12 => Request::Accept,
        13 => Request::Attempt {
            bc_slot: index(input),
            vm_slot: index(input),
            // Protocol 3's check, right or wrong, after a checksum or not.
            check: (input.u8() & 1 == 1).then(|| fota_protocol::SlotCheck {
                kind: if input.u8() & 1 == 0 {
                    fota_protocol::SlotKind::Vm
                } else {
                    fota_protocol::SlotKind::Bytecode
                },
                len: size(input),
                md5: {
                    let mut md5 = [0u8; 16];
                    let got = input.bytes(16);
                    md5[..got.len()].copy_from_slice(got);
                    md5
                },
            }),
        },
        14 => Request::SetBaud {
            baud: [115_200, 921_600, 2_000_000, input.u32()][usize::from(input.u8() % 4)],
        },
        _ => {
            // Raw: any op code and body (unknown commands, bad bodies), or noise.
            let n = usize::from(input.u8());
            let body = input.bytes(n).to_vec();
            return if tag & 0x40 != 0 {
                body // noise or text, zeros and all
            } else {
                raw_frame(id, input.u8(), &body)
            };
        }
    };
    finish(input, id, &request)
}

/// Encode, and now and then damage the frame on its way.
fn finish(input: &mut Input<'_>, id: u16, request: &Request<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame_len(request_len(request))];
    let n = encode_request(id, request, &mut out).expect("the buffer fits");
    out.truncate(n);
    match input.u8() {
        0..=239 => {}
        240..=247 => {
            let at = usize::from(input.u16()) % out.len();
            out[at] ^= input.u8() | 1;
        }
        248..=251 => {
            let cut = usize::from(input.u16()) % out.len();
            out.truncate(cut);
        }
        _ => {
            // Longer than the agent takes.
            out.pop();
            out.extend(std::iter::repeat_n(0x41, RX_FRAME));
            out.push(0);
        }
    }
    out
}

fn request_len(request: &Request<'_>) -> usize {
    request.payload_len()
}

/// What one run did, for the suite's counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Run {
    pub requests: u64,
    pub boots: u64,
    pub cuts: u64,
}

/// The agent target: a script of commands from `data` against a fresh device.
pub fn agent_requests(data: &[u8]) -> Run {
    let mut input = Input::new(data);
    let flags = input.u8();
    let seed = u64::from(input.u16());
    let mut world = World::new(flags & 1 == 1, seed);
    let cfg = world.cfg.clone();
    let mut scratch = Vec::new();
    let mut id = 1u16;
    let mut commands = 0;
    while !input.is_empty() && commands < 256 {
        commands += 1;
        if input.u8() >= 0xF8 {
            // A power cut somewhere in what follows (record writes are 20 steps, a
            // sector erase 256).
            let steps = u64::from(input.u16() % 1200);
            world
                .link_mut()
                .agent_mut()
                .flash_mut()
                .arm_power_cut(steps);
            continue;
        }
        let bytes = command(&mut input, &cfg, id, &mut scratch);
        id = id.wrapping_add(1) % 0xFFFF;
        world.feed(&bytes);
    }
    // An armed cut that never fired would fire in the next run's first step.
    world.link_mut().agent_mut().flash_mut().disarm_power_cut();
    world.reboot("final restart");
    Run {
        requests: world.requests,
        boots: world.boots,
        cuts: world.cuts,
    }
}
