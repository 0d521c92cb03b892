//! A hostile or broken device against the host: the properties of the `host_device` fuzz
//! target, shared with the proptest suite (`crates/fota-host/tests/hostile_device.rs`
//! includes this file with `#[path]`), so that `cargo test` checks what `cargo fuzz run`
//! checks.
//!
//! The device is either raw bytes (the input, sent over and over), or a real simulated
//! device (`fota-sim`: the agent, its flash, a firmware that accepts or not) with the
//! input as a man in the middle on its replies: it drops, repeats, alters (any byte of a
//! body, the op, the id), replaces and reorders them, injects text, garbage and progress,
//! cuts the link, and can turn into an endless flood (progress, wrong ids, damaged frames,
//! text) or endless silence. Against it the host runs `update()` (from a fresh device or
//! an attempt left pending), or a run of single calls. Whatever the device does:
//!
//! - the host does not panic;
//! - it finishes within [`TIME_LIMIT`] of device time and [`CALL_LIMIT`] link calls
//!   (memory: [`Meter`] measures the allocation peak; the callers bound it);
//! - it reports an image verified only after the device answered a checksum of the
//!   image's length with the image's MD5, and sends `Attempt` only after that, or
//!   carrying that MD5 and length (protocol 3: the agent then checks it);
//! - an update that succeeds has verified its images, and reports the outcome
//!   (accepted, reverted, on trial) with a record the device sent that says so, or
//!   `Attempted` only after the device answered the attempt (or the attempt was already
//!   in the device's record, verified);
//! - device text reaches the observer printable (no control or bidirectional-override
//!   characters) and bounded; progress is never past its total.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use fota_host::protocol::{Event, FrameReader, Op, Record, Reply, Request, SlotKind, encode_reply};
use fota_host::update::{Outcome, Plan, SlotChoice};
use fota_host::{Device, HostError, Image, LinkError, Observer, Progress, Transport};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};

/// Device time after which a host still waiting counts as hung.
pub const TIME_LIMIT: Duration = Duration::from_secs(3600);
/// Link calls (send, recv, sleep, reconnect) after which a host counts as spinning.
pub const CALL_LIMIT: u64 = 3_000_000;
/// Longest device log line the observer may get, in characters (the host's cut, plus its
/// note of how much was cut).
pub const MAX_SHOWN_LINE: usize = fota_host::text::MAX_LOG_LINE + 40;

// ---- input ---------------------------------------------------------------------------------

/// Reads the input; zeros once it runs out, and a zero always means "behave": an empty
/// input is an honest device.
pub struct Script {
    data: Vec<u8>,
    at: usize,
}

impl Script {
    pub fn new(data: &[u8]) -> Script {
        Script {
            data: data.to_vec(),
            at: 0,
        }
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at = self.at.saturating_add(1);
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
    /// What is left, for the raw device.
    fn rest(&self) -> &[u8] {
        self.data.get(self.at..).unwrap_or(&[])
    }
}

// ---- memory --------------------------------------------------------------------------------

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// A global allocator that counts the bytes this thread holds and their peak. Install it
/// with `#[global_allocator] static A: Meter = Meter;` in the test or target.
pub struct Meter;

fn account(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes to the system allocator unchanged; the counters are plain
// thread-local integers that never allocate.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }
    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Run `f` and return its result with the most bytes it held at once beyond what was
/// held before (meaningful where [`Meter`] is the global allocator).
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, usize::try_from(peak - base).unwrap_or(0))
}

// ---- what the device said ------------------------------------------------------------------

/// What the device sent and the host asked, as far as the properties need it.
#[derive(Default)]
struct Evidence {
    /// The host's requests by id (the latest request with each id).
    requests: HashMap<u16, Asked>,
    /// (size asked, MD5 answered) of every Checksum reply sent for a ChecksumSlot.
    checksums: HashSet<(u32, [u8; 16])>,
    /// Every record the device sent.
    records: HashSet<[u32; 9]>,
    /// Attempted replies sent.
    attempted: u32,
    /// The images an Attempt must be preceded by a verification of (update runs).
    guard: Vec<(u32, [u8; 16])>,
    /// Attempt requests the host sent.
    attempts_sent: u32,
    /// The newest request id.
    last_id: u16,
}

#[derive(Debug, Clone, Copy)]
enum Asked {
    Checksum { size: u32 },
    Other(Op),
}

impl Evidence {
    fn verified(&self, len: u32, md5: &[u8; 16]) -> bool {
        self.checksums.contains(&(len, *md5))
    }

    /// A frame the host was handed.
    fn sent(&mut self, id: u16, op: u8, body: &[u8]) {
        let Ok(reply) = Reply::parse(op, body) else {
            return;
        };
        match reply {
            Reply::Checksum(md5) => {
                if let Some(Asked::Checksum { size }) = self.requests.get(&id) {
                    self.checksums.insert((*size, md5));
                }
            }
            Reply::Record(r) => {
                self.records.insert(r.to_array());
            }
            Reply::Attempted => self.attempted += 1,
            _ => {}
        }
    }

    /// A request frame the host sends.
    fn asked(&mut self, id: u16, req: &Request<'_>) {
        self.last_id = id;
        let asked = match req {
            Request::ChecksumSlot { size, .. } => Asked::Checksum { size: *size },
            other => Asked::Other(other.op()),
        };
        self.requests.insert(id, asked);
        if let Request::Attempt { check, .. } = req {
            self.attempts_sent += 1;
            for (len, md5) in &self.guard {
                // Or it carries that MD5 (protocol 3): the agent then writes the record
                // only if the slot holds it.
                let carried = check.is_some_and(|c| c.len == *len && c.md5 == *md5);
                assert!(
                    carried || self.verified(*len, md5),
                    "the host sent Attempt before the device confirmed the MD5 of the \
                     {len}-byte image, and without it"
                );
            }
        }
    }
}

// ---- the device ------------------------------------------------------------------------------

/// An endless behaviour the device switched to.
#[derive(Debug, Clone, Copy)]
enum Flood {
    /// Progress for the newest request, `done` growing by `step` each time.
    Progress { step: u32, total: u32 },
    /// Valid replies under an id the host never used.
    WrongId,
    /// "Damaged frame" errors under id 0xFFFF.
    BadFrame,
    /// Log text without end.
    Text,
    /// Nothing at all, ever again.
    Silence,
}

/// What the middle does with one frame of the device.
enum Act {
    Pass,
    Drop,
    Twice,
    /// XOR one byte of the body (non-zero mask).
    Flip(usize, u8),
    /// Another op.
    Op(u8),
    /// Another id.
    Id(u16),
    /// A frame of the script's own (under the frame's id when `id` is `None`).
    Own {
        id: Option<u16>,
        op: u8,
        body: Vec<u8>,
        then_real: bool,
    },
    /// Text (escapes, long lines, anything) before the frame.
    Text(Vec<u8>),
    /// Progress frames under the frame's id.
    Progress {
        count: u32,
        done: u32,
        total: u32,
        then_real: bool,
    },
    /// The frame damaged on the way (CRC or COBS broken).
    Damage(usize, u8),
    /// The frame comes this many nanoseconds late.
    Late(u64),
    /// The cable goes: this many calls fail, then this many reconnects.
    Cut {
        calls: u32,
        reconnects: u32,
    },
    /// From now on, forever (every so many nanoseconds).
    Flood(Flood, u64),
    /// From now on, every reply with this op is dropped (a request the device stopped
    /// answering), or has this byte of its body changed (a lie it keeps telling).
    Always {
        op: u8,
        flip: Option<(usize, u8)>,
    },
}

fn choose(s: &mut Script) -> Act {
    match s.u8() % 16 {
        1 => Act::Drop,
        2 => Act::Twice,
        3 => Act::Flip(usize::from(s.u8()), s.u8().max(1)),
        4 => Act::Op(s.u8()),
        5 => Act::Id(s.u16()),
        6 => {
            let which = s.u8();
            let id = match which % 3 {
                0 => None,
                1 => Some(0xFFFF),
                _ => Some(s.u16()),
            };
            let op = s.u8();
            let n = usize::from(s.u8() % 64);
            Act::Own {
                id,
                op,
                body: s.bytes(n),
                then_real: which & 0x80 != 0,
            }
        }
        7 => {
            let n = usize::from(s.u8()) * usize::from(s.u8() % 8 + 1);
            Act::Text(s.bytes(n))
        }
        8 => Act::Progress {
            count: u32::from(s.u8() % 32),
            done: s.u32(),
            total: s.u32(),
            then_real: s.u8() & 1 == 0,
        },
        9 => Act::Damage(usize::from(s.u16()), s.u8().max(1)),
        10 => Act::Late(u64::from(s.u16() % 4000) * 1_000_000),
        11 => Act::Cut {
            calls: u32::from(s.u8() % 8) + 1,
            reconnects: u32::from(s.u8() % 8),
        },
        12 => {
            let kind = match s.u8() % 5 {
                0 => Flood::Progress {
                    step: s.u32() % 65_536 + 1,
                    total: s.u32(),
                },
                1 => Flood::WrongId,
                2 => Flood::BadFrame,
                3 => Flood::Text,
                _ => Flood::Silence,
            };
            Act::Flood(kind, (u64::from(s.u16() % 2000) + 1) * 1_000_000)
        }
        13 => {
            // A reply op (request op | 0x80, 1 to 12), progress or error.
            let op = match s.u8() % 14 {
                12 => 0xFE,
                13 => 0xFF,
                n => 0x81 + n,
            };
            let flip = s.u8();
            Act::Always {
                op,
                flip: (flip != 0).then(|| (usize::from(s.u8()), flip)),
            }
        }
        _ => Act::Pass,
    }
}

/// The host's end of the hostile device's line.
pub struct HostileLink {
    dev: SimDevice,
    script: Script,
    /// Raw device: these bytes, over and over (`None`: the simulated device).
    raw: Option<(Vec<u8>, usize)>,
    from_dev: Box<FrameReader<2048>>,
    /// Reads what the host is handed, for the evidence.
    seen: Box<FrameReader<8192>>,
    to_dev: Box<FrameReader<{ fota_host::protocol::MAX_PAYLOAD + 64 }>>,
    queue: VecDeque<u8>,
    start: u64,
    calls: u64,
    /// Calls that fail before the link works again, and reconnects that fail.
    down: u32,
    reconnect_fails: u32,
    flood: Option<(Flood, u64, u64)>, // kind, every ns, next at
    flood_count: u32,
    /// Replies (by op) dropped, or altered, from now on.
    always: Vec<(u8, Option<(usize, u8)>)>,
    evidence: Rc<RefCell<Evidence>>,
}

impl HostileLink {
    fn tick(&mut self) {
        self.calls += 1;
        assert!(
            self.calls <= CALL_LIMIT,
            "the host made {CALL_LIMIT} link calls without finishing: it spins"
        );
        let elapsed = Duration::from_nanos(self.dev.now() - self.start);
        assert!(
            elapsed <= TIME_LIMIT,
            "the host still waits after {elapsed:?} of device time: it hangs"
        );
    }

    /// Advance device time to `t` (with `early`, only until something is queued for the
    /// host), passing what the device sends through the middle.
    fn advance(&mut self, t: u64, early: bool) {
        loop {
            self.dev.run_until(t, true);
            let out = self.dev.host_take();
            if !out.is_empty() && self.raw.is_none() {
                self.intercept(&out);
            }
            if self.dev.now() >= t || (early && !self.queue.is_empty()) {
                return;
            }
        }
    }

    fn push_frame(&mut self, id: u16, op: u8, body: &[u8]) {
        self.queue.extend(raw_frame(id, op, body));
    }

    fn push_reply(&mut self, id: u16, reply: &Reply) {
        let mut buf = [0u8; 512];
        if let Some(n) = encode_reply(id, reply, &mut buf) {
            self.queue.extend(&buf[..n]);
        }
    }

    /// What the host is handed, read as the host reads it: every frame in it is
    /// something the device said (whatever path put it there: a reply, text that holds a
    /// valid frame, raw bytes).
    fn witness(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, event) = self.seen.feed(rest);
            rest = &rest[used..];
            if let Some(Event::Frame(f)) = event {
                let (id, op, body) = (f.id, f.op, f.body.to_vec());
                self.evidence.borrow_mut().sent(id, op, &body);
            }
        }
    }

    /// The device's bytes, through the middle: each frame is passed, dropped, repeated,
    /// altered or replaced as the script says, with text and garbage around it.
    fn intercept(&mut self, bytes: &[u8]) {
        if matches!(self.flood, Some((Flood::Silence, ..))) {
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, event) = self.from_dev.feed(rest);
            rest = &rest[used..];
            let frame = match event {
                Some(Event::Frame(f)) => (f.id, f.op, f.body.to_vec()),
                Some(Event::Text(t)) => {
                    let t = t.to_vec();
                    self.queue.extend(t);
                    self.queue.push_back(0);
                    continue;
                }
                Some(Event::Error(_)) | None => continue,
            };
            self.mitm(frame);
        }
    }

    fn mitm(&mut self, (id, op, mut body): (u16, u8, Vec<u8>)) {
        for &(muted, flip) in &self.always {
            if muted != op {
                continue;
            }
            match flip {
                None => return,
                Some((at, x)) if !body.is_empty() => {
                    let i = at % body.len();
                    body[i] ^= x;
                }
                Some(_) => {}
            }
        }
        match choose(&mut self.script) {
            Act::Pass => self.push_frame(id, op, &body),
            Act::Drop => {}
            Act::Twice => {
                self.push_frame(id, op, &body);
                self.push_frame(id, op, &body);
            }
            Act::Flip(at, x) => {
                // One byte of the body changed: any field of any reply can lie.
                let mut body = body;
                if !body.is_empty() {
                    let i = at % body.len();
                    body[i] ^= x;
                }
                self.push_frame(id, op, &body);
            }
            Act::Op(new_op) => self.push_frame(id, new_op, &body),
            Act::Id(new_id) => self.push_frame(new_id, op, &body),
            Act::Own {
                id: own,
                op: own_op,
                body: own_body,
                then_real,
            } => {
                let fid = own.unwrap_or(id);
                self.push_frame(fid, own_op, &own_body);
                if then_real {
                    self.push_frame(id, op, &body);
                }
            }
            Act::Text(text) => {
                self.queue.extend(text);
                self.push_frame(id, op, &body);
            }
            Act::Progress {
                count,
                done,
                total,
                then_real,
            } => {
                for k in 0..count {
                    let done = done.wrapping_add(k);
                    self.push_reply(id, &Reply::Progress { done, total });
                }
                if then_real {
                    self.push_frame(id, op, &body);
                }
            }
            Act::Damage(at, x) => {
                let mut raw = raw_frame(id, op, &body);
                let len = raw.len();
                if len > 2 {
                    // Another byte, never a zero (that would split the frame instead).
                    let i = 1 + at % (len - 2);
                    let old = raw[i];
                    raw[i] = match old ^ x {
                        0 if old == 1 => 2,
                        0 => 1,
                        new => new,
                    };
                }
                self.queue.extend(raw);
            }
            Act::Late(ns) => {
                let until = self.dev.now() + ns;
                self.dev.run_until(until, false);
                self.push_frame(id, op, &body);
            }
            Act::Cut { calls, reconnects } => {
                self.down = calls;
                self.reconnect_fails = reconnects;
                self.queue.clear();
            }
            Act::Always { op: which, flip } => {
                if self.always.len() < 16 {
                    self.always.push((which, flip));
                }
                self.push_frame(id, op, &body);
            }
            Act::Flood(kind, every) => {
                let now = self.dev.now();
                self.flood = Some((kind, every, now + every));
                if matches!(kind, Flood::Silence) {
                    self.queue.clear();
                } else {
                    self.push_frame(id, op, &body);
                }
            }
        }
    }

    /// Emit what a flood emits at `now`.
    fn flood_once(&mut self, kind: Flood) {
        self.flood_count = self.flood_count.wrapping_add(1);
        let k = self.flood_count;
        let last = self.evidence.borrow().last_id;
        match kind {
            Flood::Progress { step, total } => self.push_reply(
                last,
                &Reply::Progress {
                    done: step.saturating_mul(k),
                    total,
                },
            ),
            Flood::WrongId => self.push_reply(
                last.wrapping_add(1000),
                &Reply::Accepted(fota_host::protocol::AcceptOutcome::Accepted),
            ),
            Flood::BadFrame => self.push_reply(
                0xFFFF,
                &Reply::Error {
                    code: fota_host::protocol::ErrorCode::BadFrame,
                    detail: 3,
                },
            ),
            Flood::Text => {
                self.queue
                    .extend(b"\x1b[2K\r\xe2\x80\xae all good, accepted ".iter());
                if k.is_multiple_of(64) {
                    self.queue.push_back(b'\n');
                }
            }
            Flood::Silence => {}
        }
    }

    fn next_raw(&mut self) {
        if let Some((bytes, at)) = &mut self.raw {
            if bytes.is_empty() {
                return;
            }
            // A chunk of the raw stream, sized by its own first byte.
            let n = usize::from(bytes[*at % bytes.len()] % 64) + 1;
            for _ in 0..n {
                self.queue.push_back(bytes[*at % bytes.len()]);
                *at = (*at + 1) % bytes.len();
            }
        }
    }

    fn line_ns(&self, n: usize) -> u64 {
        let baud = u64::from(self.dev.host_baud().max(1200));
        (n as u64) * 10 * 1_000_000_000 / baud
    }
}

impl Transport for HostileLink {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.tick();
        if self.down > 0 {
            self.down -= 1;
            return Err(LinkError::Disconnected("the hostile cable is out".into()));
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, event) = self.to_dev.feed(rest);
            rest = &rest[used..];
            if let Some(Event::Frame(f)) = event
                && let Ok(req) = f.request()
            {
                self.evidence.borrow_mut().asked(f.id, &req);
            }
        }
        if self.raw.is_none() {
            self.dev.host_send(bytes);
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.tick();
        if self.down > 0 {
            self.down -= 1;
            return Err(LinkError::Disconnected("the hostile cable is out".into()));
        }
        let until = self
            .dev
            .now()
            .saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
        loop {
            if !self.queue.is_empty() {
                let n = self.queue.len().min(buf.len());
                for (slot, b) in buf.iter_mut().zip(self.queue.drain(..n)) {
                    *slot = b;
                }
                self.witness(&buf[..n]);
                // The bytes take their time on the line.
                let t = self.dev.now() + self.line_ns(n);
                self.advance(t, false);
                return Ok(n);
            }
            let now = self.dev.now();
            if now >= until {
                return Ok(0);
            }
            if self.raw.is_some() {
                // A raw device sends a chunk every millisecond.
                let t = now + 1_000_000;
                self.advance(t.min(until), false);
                if self.dev.now() >= t {
                    self.next_raw();
                }
                continue;
            }
            let stop = match self.flood {
                Some((Flood::Silence, ..)) | None => until,
                Some((_, _, at)) => at.clamp(now + 1, until),
            };
            self.advance(stop, true);
            if let Some((kind, every, at)) = self.flood
                && !matches!(kind, Flood::Silence)
                && self.dev.now() >= at
            {
                self.flood = Some((kind, every, at + every));
                self.flood_once(kind);
            }
        }
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.dev.now())
    }

    async fn sleep(&mut self, d: Duration) {
        self.tick();
        let t = self
            .dev
            .now()
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.advance(t, false);
    }

    async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.dev.set_host_baud(baud);
        Ok(())
    }

    fn baud(&self) -> Option<u32> {
        Some(self.dev.host_baud())
    }

    async fn reconnect(&mut self) -> Result<(), LinkError> {
        self.tick();
        if self.reconnect_fails > 0 {
            self.reconnect_fails -= 1;
            let t = self.dev.now() + 50_000_000;
            self.advance(t, false);
            return Err(LinkError::Disconnected("the port is not back".into()));
        }
        self.down = 0;
        Ok(())
    }
}

/// One frame builder for both harnesses.
#[path = "frames.rs"]
mod frames;
pub use frames::raw_frame;

// ---- the host's side -------------------------------------------------------------------------

/// What the host told its observer.
#[derive(Default)]
struct Told {
    verified: Vec<(String, [u8; 16])>,
    lines: u64,
}

struct Recorder(Rc<RefCell<Told>>);

impl Observer for Recorder {
    fn progress(&mut self, p: &Progress) {
        assert!(
            p.done <= p.total,
            "progress past its total: {} of {} ({:?})",
            p.done,
            p.total,
            p.phase
        );
    }
    fn verified(&mut self, image: &str, md5: &[u8; 16]) {
        self.0.borrow_mut().verified.push((image.to_string(), *md5));
    }
    fn device_log(&mut self, line: &str) {
        assert!(
            line.chars().count() <= MAX_SHOWN_LINE,
            "a device line of {} characters reached the screen",
            line.chars().count()
        );
        assert!(
            !line.chars().any(|c| (c.is_control() && c != '\t')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
            "device text with control characters reached the screen: {line:?}"
        );
        self.0.borrow_mut().lines += 1;
    }
}

/// A small device, so that a run is quick: slots just large enough for the factory
/// firmware (a 16 KiB VM, a 24 KiB bytecode).
fn config(layout: LayoutKind, supported: bool) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(layout);
    cfg.vm_slot_size = 20 * 1024;
    cfg.bc_slot_size = 32 * 1024;
    cfg.fota_supported = supported;
    cfg
}

fn image(kind: SlotKind, name: &str, healthy: bool, len: usize) -> Image {
    let bytes = fota_sim::images::sample_image(kind, name, "2", healthy, len);
    Image::new(format!("{name}.bin"), bytes).expect("a sample image is not empty")
}

/// The whole property: run the host against the device `data` describes. Returns how
/// the update ended (`None` for a run of single calls).
pub fn host_against_device(data: &[u8]) -> Option<Result<Outcome, HostError>> {
    let mut s = Script::new(data);
    let setup = s.u8();
    let layout = if setup & 1 == 0 {
        LayoutKind::BytecodeOnly
    } else {
        LayoutKind::VmAndBytecode
    };
    let raw = setup & 0x0E == 0x0E; // 1 in 8: a raw byte stream
    let supported = setup & 0x30 != 0x30;
    let healthy = setup & 0x40 == 0;
    let pending = setup & 0x80 != 0; // an attempt of this same plan left pending
    let cfg = config(layout, supported);

    let bc_len = match s.u16() {
        // Now and then one that does not fit the slot.
        0xFFFF => 33 * 1024,
        n => usize::from(n % 12_000) + 1,
    };
    let with_vm = layout == LayoutKind::VmAndBytecode && s.u8() & 1 == 1;
    let mut plan = Plan::new(image(SlotKind::Bytecode, "bc", healthy, bc_len));
    if with_vm {
        plan.vm = Some(image(
            SlotKind::Vm,
            "vm",
            true,
            usize::from(s.u16() % 6000) + 1,
        ));
    }
    let flags = s.u8();
    plan.restart = flags & 1 == 0;
    plan.resume = flags & 2 == 0;
    plan.wait_accept = match s.u16() {
        0 => Duration::from_secs(10),
        ms => Duration::from_millis(u64::from(ms % 20_000)),
    };
    if flags & 4 != 0 {
        plan.bytecode_slot = SlotChoice::Index(u32::from(s.u8() % 4));
    }
    let negotiate = flags & 8 != 0;
    let single_calls = flags & 0x10 != 0;

    let mut sim = SimDevice::new(cfg.clone());
    if pending && supported {
        // An earlier run of the same plan stopped after attempt: the honest device
        // holds it, so this run takes the path that finishes it.
        let mut first = plan.clone();
        first.restart = false;
        let mut honest = Device::new(
            fota_host::sim::SimTransport::new(sim, fota_host::sim::Virtual),
            Box::new(fota_host::NullObserver),
        );
        let _ = futures::executor::block_on(fota_host::update(&mut honest, &first));
        sim = honest.into_link().into_device();
    }

    let evidence = Rc::new(RefCell::new(Evidence::default()));
    let start = sim.now();
    let raw_bytes = raw.then(|| (s.rest().to_vec(), 0usize));
    let link = HostileLink {
        dev: sim,
        script: s,
        raw: raw_bytes,
        from_dev: Box::new(FrameReader::new()),
        seen: Box::new(FrameReader::new()),
        to_dev: Box::new(FrameReader::new()),
        queue: VecDeque::new(),
        start,
        calls: 0,
        down: 0,
        reconnect_fails: 0,
        flood: None,
        flood_count: 0,
        always: Vec::new(),
        evidence: evidence.clone(),
    };
    let told = Rc::new(RefCell::new(Told::default()));
    let mut dev = Device::new(link, Box::new(Recorder(told.clone())));

    if single_calls {
        futures::executor::block_on(single(&mut dev, &evidence));
        return None;
    }
    {
        let mut ev = evidence.borrow_mut();
        ev.guard
            .push((plan.bytecode.len() as u32, plan.bytecode.md5()));
        if let Some(vm) = &plan.vm {
            ev.guard.push((vm.len() as u32, vm.md5()));
        }
    }
    let result = futures::executor::block_on(async {
        if negotiate {
            dev.negotiate_baud(&[921_600, 460_800, 230_400]).await?;
        }
        fota_host::update(&mut dev, &plan).await
    });
    check_outcome(&plan, &result, &evidence.borrow(), &told.borrow());
    Some(result.map(|r| r.outcome))
}

/// What an update reported against what the device said.
fn check_outcome(
    plan: &Plan,
    result: &Result<fota_host::Report, HostError>,
    ev: &Evidence,
    told: &Told,
) {
    let images: Vec<&Image> = std::iter::once(&plan.bytecode)
        .chain(plan.vm.as_ref())
        .collect();
    for (name, md5) in &told.verified {
        let Some(img) = images.iter().find(|i| i.name == *name) else {
            panic!("verified an image that is not in the plan: {name}");
        };
        assert_eq!(*md5, img.md5(), "verified {name} with another MD5");
        assert!(
            ev.verified(img.len() as u32, md5),
            "reported {name} verified, but the device never answered its MD5"
        );
    }
    let Ok(report) = result else { return };
    for img in &images {
        assert!(
            told.verified.iter().any(|(n, _)| *n == img.name),
            "the update succeeded ({:?}) without verifying {}",
            report.outcome,
            img.name
        );
    }
    let from_device = ev.records.contains(&report.record.to_array());
    match report.outcome {
        Outcome::Accepted | Outcome::Reverted | Outcome::OnTrial => {
            assert!(
                from_device,
                "{:?} with a record the device never sent: {:?}",
                report.outcome, report.record
            );
        }
        Outcome::Attempted => assert!(
            ev.attempted > 0 || (!plan.restart && ev.attempts_sent == 0),
            "reported attempted without the device's answer"
        ),
    }
    match report.outcome {
        Outcome::Accepted | Outcome::Reverted => assert!(
            !report.record.on_trial(),
            "{:?} with a record still on trial: {:?}",
            report.outcome,
            report.record
        ),
        _ => {}
    }
}

/// A run of single calls chosen by the script (it is the link's now, so read the choices
/// first).
async fn single(dev: &mut Device<HostileLink>, evidence: &Rc<RefCell<Evidence>>) {
    let choices: Vec<(u8, u32, u32)> = {
        let s = &mut dev.link().script;
        let n = s.u8() % 8 + 1;
        (0..n).map(|_| (s.u8(), s.u32(), s.u32())).collect()
    };
    for (op, a, b) in choices {
        let r: Result<(), HostError> = match op % 11 {
            0 => dev.hello().await.map(|_| ()),
            1 => dev.get_record().await.map(|_| ()),
            2 => {
                let got = dev
                    .checksum_slot(a % 0x2_0000, b % 0x8000, &mut |_, _, _, _| {})
                    .await;
                if let Ok(md5) = got {
                    assert!(
                        evidence.borrow().verified(b % 0x8000, &md5),
                        "checksum_slot returned an MD5 the device never sent"
                    );
                }
                got.map(|_| ())
            }
            3 => dev
                .erase_slot(a % 0x2_0000, b % 0x8000, &mut |_, _, _, _| {})
                .await
                .map(|_| ()),
            4 => dev.attempt(a % 4, b % 4).await,
            5 => dev.accept().await.map(|_| ()),
            6 => dev.restart().await,
            7 => dev.wait_for_device().await.map(|_| ()),
            8 => dev.negotiate_baud(&[921_600, 230_400]).await.map(|_| ()),
            9 => dev.idle(Duration::from_millis(u64::from(a % 5000))).await,
            _ => {
                let before = Record::default();
                fota_host::update::watch_outcome(
                    dev,
                    &before,
                    a % 4,
                    b % 4,
                    Duration::from_millis(u64::from(a % 20_000)),
                )
                .await
                .map(|_| ())
            }
        };
        let _ = r;
    }
}
