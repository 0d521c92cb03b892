//! Frames in, frames out: the agent behind the wire protocol, in bounded steps.

use core::borrow::BorrowMut;

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{
    AcceptOutcome, DecodeError, ErrorCode, Event, FRAME_OVERHEAD, FrameError, FrameReader,
    MAX_BAUD_RATES, MAX_NAME, MAX_SECTOR_RUNS, MAX_SLOTS, Op, PROTOCOL_VERSION, Reply, Request,
    encode_reply, frame_len,
};

use crate::agent::{
    Agent, AgentError, Boot, CHECKSUM_PROGRESS_STEP, Changes, ChecksumOp, EraseOp, Refusal, Unit,
};
use crate::config::AgentConfig;
use crate::stream::{StreamJob, StreamOutcome, StreamState};
use crate::{RX_FRAME, RX_PAYLOAD};

/// Body bytes of the largest `Info` reply: the fixed fields, [`MAX_SLOTS`] slots of 10
/// bytes, a [`MAX_NAME`]-byte name, and the extensions (boot stage 3 bytes, sector erase
/// time 6, [`MAX_BAUD_RATES`] rates 2 + 4 each, [`MAX_SECTOR_RUNS`] sector runs 2 + 12
/// each, image rules 2 + 9 + 8 per key, and with the `codec` feature the codecs).
const INFO_BODY_MAX: usize = 2
    + 3
    + 1
    + 4
    + 2
    + 2
    + 1
    + 4
    + 4
    + 4
    + 1
    + MAX_SLOTS * 10
    + 1
    + MAX_NAME
    + 3
    + 6
    + 2
    + MAX_BAUD_RATES * 4
    + 2
    + MAX_SECTOR_RUNS * 12
    + 2
    + 9
    + fota_protocol::MAX_KEYS * 8
    + CODECS_FIELD;

/// The codecs field of `Info` (tag 5): only an agent built with its decoder sends it.
const CODECS_FIELD: usize = if cfg!(feature = "codec") {
    2 + fota_protocol::MAX_CODECS * 5
} else {
    0
};

/// The longest reply frame the agent sends (the largest `Info`), delimiters included.
pub const TX_FRAME: usize = frame_len(INFO_BODY_MAX + FRAME_OVERHEAD);

/// The request id of replies to frames that could not be decoded.
pub const NO_ID: u16 = 0xFFFF;

/// How long a new baud rate has to prove itself: without a request frame with a good CRC
/// within this time of a `SetBaud`, the agent goes back to the rate before.
pub const BAUD_CONFIRM_MS: u32 = 1000;

/// How long the agent stays at a negotiated rate without a request: then it goes back to
/// its base rate ([`crate::AgentConfig::base_baud`]), where a host that starts afresh
/// says hello. A host that stopped without `Goodbye` (killed, unplugged) finds the agent
/// at the base rate after this long.
pub const BAUD_IDLE_MS: u32 = 10_000;

/// Recent replies the agent keeps to answer a resent request without running it again.
pub const REPLY_CACHE: usize = 6;

/// What the platform must do after a frame was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `restart()`: the `Restarting` reply has been handed to `tx`. Let it drain, then reset
    /// the device (and boot the agent again).
    Restart,
    /// Switch the UART to this rate: let what was sent drain first (a `BaudSet` or
    /// `Goodbye` reply goes out at the old rate), then switch and call
    /// [`AgentLink::reset_reader`]. [`AgentLink::step`] returns it after `SetBaud` and
    /// `Goodbye`; [`AgentLink::tick`] when a new rate was not confirmed within
    /// [`BAUD_CONFIRM_MS`], or after [`BAUD_IDLE_MS`] without a request.
    SetBaud(u32),
}

/// What one [`AgentLink::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The input ran out inside a frame: nothing handled yet.
    Nothing,
    /// A request frame was handled and answered (for a long request: its last unit was
    /// done and the final reply sent).
    Request {
        /// Its id.
        id: u16,
        /// Its operation code.
        op: u8,
        /// The error code it was answered with, if it was refused.
        refused: Option<ErrorCode>,
    },
    /// A long request (`EraseSlot`, `ChecksumSlot`) was checked and started; nothing of
    /// it is done yet. The next steps do it, one unit each.
    Started {
        /// Its id.
        id: u16,
        /// Its operation code.
        op: u8,
    },
    /// One unit of the long request in progress was done (one sector erased, or
    /// [`crate::CHECKSUM_UNIT`] bytes hashed); more follow.
    Working {
        /// The request's id.
        id: u16,
        /// Bytes done.
        done: u32,
        /// Bytes in all.
        total: u32,
    },
    /// A damaged or oversized frame, answered with an error under id [`NO_ID`].
    BadFrame(FrameError),
    /// Text between frames: ignored.
    Text,
}

/// The result of [`AgentLink::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed. Zero while a long request is in progress: the bytes wait
    /// (keep them and pass them again).
    pub consumed: usize,
    /// What was handled.
    pub handled: Handled,
    /// What the platform must do now.
    pub action: Option<Action>,
}

/// The result of [`AgentLink::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Input bytes consumed: all of them unless an action stopped the loop.
    pub consumed: usize,
    /// The action that stopped the loop, if any.
    pub action: Option<Action>,
}

/// Counters for a simulator or a debug console (they wrap around).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Request frames with a good CRC handled (answered or refused).
    pub requests: u32,
    /// Requests answered with an error.
    pub refused: u32,
    /// Damaged or oversized frames.
    pub bad_frames: u32,
    /// Text chunks ignored.
    pub text_chunks: u32,
    /// Frames handed to `tx`, progress included.
    pub frames_sent: u32,
    /// Progress frames handed to `tx`.
    pub progress_sent: u32,
    /// Resent requests answered from the cache of recent replies, without running them
    /// again.
    pub repeats: u32,
}

impl LinkStats {
    const ZERO: LinkStats = LinkStats {
        requests: 0,
        refused: 0,
        bad_frames: 0,
        text_chunks: 0,
        frames_sent: 0,
        progress_sent: 0,
        repeats: 0,
    };
}

/// The long request in progress.
#[derive(Debug, Clone)]
struct Job {
    id: u16,
    work: Work,
    /// Its key in the cache of replies.
    key: Key,
}

impl Job {
    /// No request (all zeros).
    const IDLE: Job = Job {
        id: 0,
        work: Work::Erase(EraseOp::EMPTY),
        key: Key::NONE,
    };
}

#[derive(Debug, Clone)]
enum Work {
    Erase(EraseOp),
    Checksum(ChecksumOp),
    Stream(StreamJob),
    /// `Attempt`, `AttemptDowngrade` or `SetRecord` while the images are verified.
    #[cfg(feature = "images")]
    Check(crate::images::CheckOp),
}

/// Everything the link keeps besides the agent: the frame reader ([`RX_FRAME`] bytes),
/// the reply buffer ([`TX_FRAME`] bytes), the long request in progress (an MD5 state),
/// the cache of recent replies, the baud-rate timers and the counters.
///
/// [`LinkState::new`] is a `const fn`, so a firmware can keep it in a `static` (in
/// `.bss`, built by the startup code, never on the stack) and give the link a
/// `&'static mut` to it ([`AgentLink::with_state`]): only the [`Agent`] is moved into
/// the link. [`AgentLink::new`] keeps a `LinkState` inside the link instead.
#[derive(Debug)]
pub struct LinkState {
    reader: FrameReader<RX_FRAME>,
    tx_buf: [u8; TX_FRAME],
    stats: LinkStats,
    /// The long request in progress, when `busy`. (A flag, not an `Option`: so that a new
    /// state is all zeros and a `static` of it lands in `.bss`, not in flash.)
    job: Job,
    busy: bool,
    cache: ReplyCache,
    baud: BaudState,
    /// A compressed stream in progress (empty without the `codec` feature).
    stream: StreamState,
}

impl Default for LinkState {
    fn default() -> Self {
        LinkState::new()
    }
}

impl LinkState {
    /// An empty state.
    pub const fn new() -> LinkState {
        LinkState {
            reader: FrameReader::new(),
            tx_buf: [0; TX_FRAME],
            stats: LinkStats::ZERO,
            job: Job::IDLE,
            busy: false,
            cache: ReplyCache::EMPTY,
            baud: BaudState::START,
            stream: StreamState::new(),
        }
    }

    /// Make it as new (a state reused for another link), without building a new one.
    fn clear(&mut self, base_baud: u32) {
        self.reader.reset();
        self.stats = LinkStats::ZERO;
        self.busy = false;
        self.stream.end();
        self.cache = ReplyCache::EMPTY;
        self.baud = BaudState {
            current: base_baud,
            ..BaudState::START
        };
    }
}

/// The agent behind a byte stream: decodes request frames, runs them, encodes replies,
/// in steps that each take a bounded time, so that the firmware keeps running during an
/// update ("without stopping the current firmware execution until the very end").
///
/// # Driving it from the firmware's main loop
///
/// Each [`AgentLink::step`] does one bounded piece of work and returns:
///
/// - with no long request in progress, it takes received bytes until one frame is
///   complete and handles it: a short request (everything but `EraseSlot` and
///   `ChecksumSlot`, a `WriteSlot` of up to [`crate::MAX_WRITE`] bytes included) is
///   answered at once; a long one is checked and started ([`Handled::Started`]);
/// - while a long request is in progress, it does one unit of it (one sector erase, or
///   [`crate::CHECKSUM_UNIT`] bytes hashed), sends a `Progress` frame where the protocol
///   says so, and after the last unit the final reply. It consumes no input meanwhile
///   (`consumed == 0`): keep the bytes and pass them again. Call `step` while
///   [`AgentLink::is_busy`], even with no new input.
///
/// So the longest a step keeps the CPU is one sector erase or the handling of one frame,
/// and the firmware runs its own work between steps:
///
/// ```ignore
/// loop {
///     app.tick();                          // the firmware's own work
///     watchdog.kick();
///     let step = link.step(uart.received(), &mut |frame| uart.send(frame));
///     uart.consume(step.consumed);         // unconsumed bytes stay queued
///     let action = step.action.or(link.tick(clock.now_ms()));
///     match action {
///         Some(Action::Restart) => { uart.drain(); reset(); }
///         Some(Action::SetBaud(b)) => { uart.drain(); uart.set_baud(b); link.reset_reader(); }
///         None => {}
///     }
/// }
/// ```
///
/// [`AgentLink::set_unit_hook`] installs a function called after every unit (each sector
/// erased, each block hashed, each record entry written), where a platform kicks its
/// watchdog: the main loop's own kick then only has to cover one unit. Requests are
/// still handled strictly one at a time in arrival order: bytes of the next request wait
/// in the platform's receive queue (`max_in_flight` frames of [`RX_FRAME`] bytes) while a
/// long one runs.
///
/// # Resent requests
///
/// A host resends a request whose reply it did not get in time (a slow erase, a reply
/// lost on the line). The link keeps the replies of the last [`REPLY_CACHE`] requests
/// that changed flash or the record, or read a checksum (`EraseSlot`, `WriteSlot`,
/// `ChecksumSlot`, `SetRecord`, `Attempt`, `Accept`), keyed by operation and body (not
/// by id): the same request again, under any id, is answered with the same reply and not
/// run again, as long as nothing changed the flash since (for a `WriteSlot`: nothing was
/// erased since). A resend that arrives while the first copy still runs waits in the
/// receive queue and is answered from the cache when it is done. Refusals are not kept
/// (a `FlashFailure` can be retried). `Hello` and `Goodbye` forget the cache.
///
/// # Baud rate
///
/// [`AgentLink::tick`], called from the main loop with a millisecond clock, goes back to
/// the previous rate when a `SetBaud` was not confirmed by a request within
/// [`BAUD_CONFIRM_MS`], and to the base rate after [`BAUD_IDLE_MS`] without a request at
/// another rate; `Goodbye` goes back at once.
///
/// RAM: the [`LinkState`] and the [`Agent`] (configuration, record, a held partial write
/// unit of up to [`crate::MAX_WRITE_UNIT`] bytes): see the crate documentation for the
/// figures. Request handling needs under 1 KiB of stack (a 256-byte read buffer, an
/// `Info`).
#[derive(Debug)]
pub struct AgentLink<F, S = LinkState> {
    agent: Agent<F>,
    state: S,
}

impl<F: NorFlash> AgentLink<F> {
    /// A link around a booted agent, its state inside it.
    pub fn new(agent: Agent<F>) -> Self {
        AgentLink::with_state(agent, LinkState::new())
    }

    /// Boot an agent ([`Agent::boot`]) and put a link around it.
    pub fn boot(flash: F, config: AgentConfig) -> Result<(Self, Boot), AgentError> {
        let (agent, boot) = Agent::boot(flash, config)?;
        Ok((AgentLink::new(agent), boot))
    }
}

impl<F: NorFlash, S: BorrowMut<LinkState>> AgentLink<F, S> {
    /// A link around a booted agent, its state in `state` (a `&'static mut LinkState` the
    /// firmware keeps in a `static`, say); the state is reset first.
    pub fn with_state(agent: Agent<F>, mut state: S) -> Self {
        let base = agent.config().base_baud;
        state.borrow_mut().clear(base);
        AgentLink { agent, state }
    }

    /// Do one bounded piece of work (see the type's documentation): one unit of the long
    /// request in progress, or else take bytes until one event (a frame, a damaged frame
    /// or a text chunk) has been handled, or the input runs out. Replies go to `tx`, one
    /// frame per call. Call again with `&bytes[step.consumed..]`.
    ///
    /// Never inlined: a request's temporaries (an `Info`, a reply, the checksum state)
    /// then live in this call's frame while it runs, not for ever in the main loop's.
    #[inline(never)]
    pub fn step(&mut self, bytes: &[u8], tx: &mut dyn FnMut(&[u8])) -> Step {
        let agent = &mut self.agent;
        let LinkState {
            reader,
            tx_buf,
            stats,
            job,
            busy,
            cache,
            baud,
            stream,
        } = self.state.borrow_mut();
        let mut out = Out {
            buf: tx_buf,
            tx,
            stats,
        };
        if *busy {
            // (`cfg!`: an agent without the decoder carries none of this code.)
            let stream_job = match &mut job.work {
                Work::Stream(s) if cfg!(feature = "codec") => Some(s),
                _ => None,
            };
            let (handled, done) = if let Some(s) = stream_job {
                let body = match s {
                    StreamJob::Data { len, .. } => reader.last_body(usize::from(*len)),
                    StreamJob::Begin { .. } => None,
                };
                let r = stream.step(agent, s, body.unwrap_or(&[]));
                stream_unit(agent, &mut out, job.id, r)
            } else {
                work_unit(agent, &mut out, job)
            };
            if let Some(answer) = done {
                cache.keep(job.key, answer, agent.changes());
            }
            if matches!(handled, Handled::Request { .. }) {
                *busy = false;
            }
            return Step {
                consumed: 0,
                handled,
                action: None,
            };
        }
        let (consumed, event) = reader.feed(bytes);
        let (handled, action) = match event {
            None => (Handled::Nothing, None),
            Some(Event::Text(_)) => {
                out.stats.text_chunks = out.stats.text_chunks.wrapping_add(1);
                (Handled::Text, None)
            }
            Some(Event::Error(e)) => {
                out.stats.bad_frames = out.stats.bad_frames.wrapping_add(1);
                out.send(agent, NO_ID, Answer::Error(frame_refusal(e)));
                (Handled::BadFrame(e), None)
            }
            // Longer than any request the agent takes, though it fit the buffer: the same
            // answer as a frame that did not fit, so that it never depends on the bytes
            // (COBS makes a frame's length on the wire depend on its zeros).
            Some(Event::Frame(f)) if FRAME_OVERHEAD + f.body.len() > RX_PAYLOAD => {
                out.stats.bad_frames = out.stats.bad_frames.wrapping_add(1);
                out.send(
                    agent,
                    NO_ID,
                    Answer::Error(frame_refusal(FrameError::TooLong)),
                );
                (Handled::BadFrame(FrameError::TooLong), None)
            }
            Some(Event::Frame(f)) => {
                out.stats.requests = out.stats.requests.wrapping_add(1);
                let key = Key::of(f.op, f.body);
                if let Some(answer) = cache.find(key, agent.changes()) {
                    // A resend of a request just done: the same answer, nothing run.
                    out.stats.repeats = out.stats.repeats.wrapping_add(1);
                    out.send(agent, f.id, answer);
                    let handled = Handled::Request {
                        id: f.id,
                        op: f.op,
                        refused: None,
                    };
                    return Step {
                        consumed,
                        handled,
                        action: None,
                    };
                }
                if f.op == Op::Hello as u8 || f.op == Op::Goodbye as u8 {
                    // A new session, or the end of one: no resend can follow.
                    *cache = ReplyCache::EMPTY;
                }
                if f.op == Op::Hello as u8 {
                    stream.end();
                }
                let streamed = cfg!(feature = "codec")
                    && (f.op == Op::StreamBegin as u8 || f.op == Op::StreamData as u8);
                let parsed = if streamed {
                    Request::parse(f.op, f.body).ok()
                } else {
                    None
                };
                let handling = match parsed {
                    Some(Request::StreamBegin { addr, base, header }) => {
                        stream_handling(stream.begin(agent, addr, base, header))
                    }
                    Some(Request::StreamData { offset, data }) => {
                        stream_handling(stream.data(agent, offset, f.body.len(), data))
                    }
                    _ => handle(agent, baud, out.stats.requests, f.op, f.body),
                };
                match handling {
                    Handling::Long(work) => {
                        *job = Job {
                            id: f.id,
                            work,
                            key,
                        };
                        *busy = true;
                        (Handled::Started { id: f.id, op: f.op }, None)
                    }
                    Handling::Now(result, action) => {
                        if let Ok(answer) = result {
                            cache.keep(key, answer, agent.changes());
                        }
                        let refused = out.finish(agent, f.id, result);
                        let handled = Handled::Request {
                            id: f.id,
                            op: f.op,
                            refused,
                        };
                        (handled, action)
                    }
                }
            }
        };
        Step {
            consumed,
            handled,
            action,
        }
    }

    /// The baud-rate timers, from the firmware's main loop with a millisecond clock
    /// (it may wrap). Returns [`Action::SetBaud`] when the link must go back to another
    /// rate: the previous one when a `SetBaud` was not confirmed by a request with a good
    /// CRC within [`BAUD_CONFIRM_MS`], the base rate after [`BAUD_IDLE_MS`] without a
    /// request (a long request in progress counts as activity). Call it every pass; a
    /// coarse clock (10 ms) is enough.
    pub fn tick(&mut self, now_ms: u32) -> Option<Action> {
        let base = self.agent.config().base_baud;
        let LinkState {
            stats, busy, baud, ..
        } = self.state.borrow_mut();
        baud.tick(now_ms, base, stats.requests, *busy)
    }

    /// The rate the link runs at, as far as the agent knows (the base rate until a
    /// `SetBaud`).
    pub fn baud(&self) -> u32 {
        self.state.borrow().baud.current
    }

    /// Handle all of `bytes`, long requests to the end, stopping early only for an
    /// action (the bytes after it belong to the time after the restart or baud switch).
    /// This keeps the CPU for as long as the work takes; a firmware that must keep
    /// running calls [`AgentLink::step`] from its main loop instead.
    pub fn receive(&mut self, bytes: &[u8], tx: &mut dyn FnMut(&[u8])) -> Received {
        let mut consumed = 0;
        loop {
            let rest = bytes.get(consumed..).unwrap_or(&[]);
            if rest.is_empty() && !self.is_busy() {
                break;
            }
            let step = self.step(rest, tx);
            consumed += step.consumed;
            if step.action.is_some() {
                return Received {
                    consumed,
                    action: step.action,
                };
            }
            if step.consumed == 0 && !self.is_busy() && step.handled == Handled::Nothing {
                // The reader always takes at least one byte; stay safe anyway.
                break;
            }
        }
        Received {
            consumed,
            action: None,
        }
    }

    /// Whether a long request (`EraseSlot`, `ChecksumSlot`) is in progress: the next
    /// [`AgentLink::step`] works on it, whatever the input.
    pub fn is_busy(&self) -> bool {
        self.state.borrow().busy
    }

    /// Call `hook` after every unit of a long request and every record entry written
    /// (see [`Agent::set_unit_hook`]): where a platform kicks its watchdog.
    pub fn set_unit_hook(&mut self, hook: fn()) {
        self.agent.set_unit_hook(hook);
    }

    /// Forget a partly received frame (after a baud switch or a reconnect).
    pub fn reset_reader(&mut self) {
        self.state.borrow_mut().reader.reset();
    }

    /// Bytes of a frame received so far, not yet ended.
    pub fn pending(&self) -> usize {
        self.state.borrow().reader.pending()
    }

    /// The counters.
    pub fn stats(&self) -> LinkStats {
        self.state.borrow().stats
    }

    /// The agent.
    pub fn agent(&self) -> &Agent<F> {
        &self.agent
    }

    /// The agent, mutably (the firmware's own `accept()`, say). The cache of replies
    /// notices what it changes on flash.
    pub fn agent_mut(&mut self) -> &mut Agent<F> {
        &mut self.agent
    }

    /// The agent, without the link.
    pub fn into_agent(self) -> Agent<F> {
        self.agent
    }

    /// The flash (to boot again, as after a reset).
    pub fn into_flash(self) -> F {
        self.agent.into_flash()
    }
}

/// The baud rate as the agent sees it, and its two timers.
#[derive(Debug, Clone, Copy)]
struct BaudState {
    /// The rate now (0 until the link knows its base rate).
    current: u32,
    /// A `SetBaud` not confirmed yet: the rate before (0: none), the request count after
    /// it, and the deadline once a tick has seen it.
    trial_old: u32,
    trial_requests: u32,
    trial_deadline: Option<u32>,
    /// The last tick that saw activity, and the counters then.
    active_at: Option<u32>,
    requests_seen: u32,
}

impl BaudState {
    const START: BaudState = BaudState {
        current: 0,
        trial_old: 0,
        trial_requests: 0,
        trial_deadline: None,
        active_at: None,
        requests_seen: 0,
    };

    fn tick(&mut self, now: u32, base: u32, requests: u32, busy: bool) -> Option<Action> {
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
                return Some(Action::SetBaud(old));
            }
        }
        let since = self.active_at.unwrap_or(now);
        if self.current != base && self.current != 0 && due(since.wrapping_add(BAUD_IDLE_MS)) {
            self.current = base;
            return Some(Action::SetBaud(base));
        }
        None
    }
}

/// The cache key of a request: its operation, body length and body CRC. Only requests
/// worth answering again without running them have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    op: u8,
    len: u16,
    crc: u32,
}

impl Key {
    fn of(op: u8, body: &[u8]) -> Key {
        let cached = matches!(
            Op::from_request(op),
            Some(
                Op::EraseSlot
                    | Op::WriteSlot
                    | Op::ChecksumSlot
                    | Op::SetRecord
                    | Op::Attempt
                    | Op::AttemptDowngrade
                    | Op::Accept
            )
        );
        if !cached {
            return Key::NONE;
        }
        Key {
            op,
            // The link refuses bodies longer than RX_PAYLOAD: fits a u16.
            len: u16::try_from(body.len()).unwrap_or(u16::MAX),
            crc: fota_protocol::crc32(body),
        }
    }

    /// Not cached (op 0 is no request).
    const NONE: Key = Key {
        op: 0,
        len: 0,
        crc: 0,
    };
}

/// A reply as the link handles it: every `Reply`, but an `Info`'s or a `Record`'s body is
/// made from the agent only when the frame is encoded (an `Info` is some 280 bytes): the
/// handling path's frames stay small, and the cache keeps answers as they are.
/// `Erased` comes first: an empty cache entry holds `Erased { 0, 0 }`, all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Erased { addr: u32, size: u32 },
    Info,
    Record,
    RecordSet,
    BytecodeSlot(u32),
    VmSlot(u32),
    Written { addr: u32, len: u32 },
    Checksum([u8; 16]),
    Restarting,
    Accepted(AcceptOutcome),
    Attempted,
    BaudSet(u32),
    Goodbye(u32),
    Progress { done: u32, total: u32 },
    StreamBegun { image_len: u32 },
    Streamed { received: u32, written: u32 },
    Error(Refusal),
}

/// The replies of the last [`REPLY_CACHE`] requests that have a [`Key`], with what the
/// flash had seen when each was done.
#[derive(Debug, Clone, Copy)]
struct ReplyCache {
    /// An entry whose key is `Key::NONE` is empty (so that a new cache is all zeros).
    entries: [(Key, Changes, Answer); REPLY_CACHE],
    next: usize,
}

impl ReplyCache {
    const EMPTY: ReplyCache = ReplyCache {
        entries: [(
            Key::NONE,
            Changes::NONE,
            Answer::Erased { addr: 0, size: 0 },
        ); REPLY_CACHE],
        next: 0,
    };

    /// The reply to `key`, if it was done and nothing it depends on changed since: for a
    /// write, nothing erased (other writes do not undo it); for the rest, no change at
    /// all (a checksum or an erase is stale after any write, a record reply after any
    /// record change).
    fn find(&self, key: Key, now: Changes) -> Option<Answer> {
        if key == Key::NONE {
            return None;
        }
        self.entries.iter().find_map(|&(k, then, answer)| {
            let fresh = match answer {
                Answer::Written { .. } => then.erased == now.erased,
                _ => then == now,
            };
            (k == key && fresh).then_some(answer)
        })
    }

    fn keep(&mut self, key: Key, answer: Answer, now: Changes) {
        if key == Key::NONE {
            return;
        }
        // Only requests with a key get here, and their successes are small answers.
        if let Some(slot) = self.entries.get_mut(self.next % REPLY_CACHE) {
            *slot = (key, now, answer);
        }
        self.next = (self.next + 1) % REPLY_CACHE;
    }
}

/// The answer to a chunk that is not a request frame.
const fn frame_refusal(e: FrameError) -> Refusal {
    let (code, detail) = match e {
        FrameError::TooLong => (ErrorCode::FrameTooLong, RX_PAYLOAD as u32),
        FrameError::Cobs => (ErrorCode::BadFrame, 1),
        FrameError::TooShort => (ErrorCode::BadFrame, 2),
        FrameError::Crc => (ErrorCode::BadFrame, 3),
    };
    Refusal { code, detail }
}

/// Where replies go.
struct Out<'a> {
    buf: &'a mut [u8; TX_FRAME],
    tx: &'a mut dyn FnMut(&[u8]),
    stats: &'a mut LinkStats,
}

impl Out<'_> {
    /// Encode and send one frame. Not inlined: the `Reply` (and an `Info`) it builds
    /// lives in this frame only while it is encoded.
    #[inline(never)]
    fn send<F: NorFlash>(&mut self, agent: &Agent<F>, id: u16, answer: Answer) {
        let reply = match answer {
            Answer::Info => Reply::Info(agent.info()),
            Answer::Record => match agent.get_record() {
                Ok(r) => Reply::Record(r),
                Err(e) => e.reply(),
            },
            Answer::RecordSet => Reply::RecordSet,
            Answer::BytecodeSlot(a) => Reply::BytecodeSlot(a),
            Answer::VmSlot(a) => Reply::VmSlot(a),
            Answer::Erased { addr, size } => Reply::Erased { addr, size },
            Answer::Written { addr, len } => Reply::Written { addr, len },
            Answer::Checksum(md5) => Reply::Checksum(md5),
            Answer::Restarting => Reply::Restarting,
            Answer::Accepted(o) => Reply::Accepted(o),
            Answer::Attempted => Reply::Attempted,
            Answer::BaudSet(b) => Reply::BaudSet(b),
            Answer::Goodbye(b) => Reply::Goodbye(b),
            Answer::Progress { done, total } => Reply::Progress { done, total },
            Answer::StreamBegun { image_len } => Reply::StreamBegun { image_len },
            Answer::Streamed { received, written } => Reply::Streamed { received, written },
            Answer::Error(r) => r.reply(),
        };
        // TX_FRAME holds the largest reply; a test encodes it.
        let Some(n) = encode_reply(id, &reply, self.buf.as_mut_slice()) else {
            return;
        };
        if let Some(frame) = self.buf.get(..n) {
            (self.tx)(frame);
            self.stats.frames_sent = self.stats.frames_sent.wrapping_add(1);
            if matches!(answer, Answer::Progress { .. }) {
                self.stats.progress_sent = self.stats.progress_sent.wrapping_add(1);
            }
        }
    }

    /// Send the final reply of request `id`; returns the refusal's code, if refused.
    fn finish<F: NorFlash>(
        &mut self,
        agent: &Agent<F>,
        id: u16,
        result: Result<Answer, Refusal>,
    ) -> Option<ErrorCode> {
        let (answer, refused) = match result {
            Ok(a) => (a, None),
            Err(r) => {
                self.stats.refused = self.stats.refused.wrapping_add(1);
                (Answer::Error(r), Some(r.code))
            }
        };
        self.send(agent, id, answer);
        refused
    }
}

/// One unit of the long request `job`: progress where the protocol says so, the final
/// reply after the last unit (also returned when it is a success, for the cache).
#[inline(never)]
fn work_unit<F: NorFlash>(
    agent: &mut Agent<F>,
    out: &mut Out<'_>,
    job: &mut Job,
) -> (Handled, Option<Answer>) {
    let (op, result) = match &mut job.work {
        Work::Erase(e) => {
            let r = agent.erase_unit(e).map(|u| match u {
                // After each sector but the last.
                Unit::More { done, total } => Err((done, total, true)),
                Unit::Done((addr, size)) => Ok(Answer::Erased { addr, size }),
            });
            (Op::EraseSlot, r)
        }
        Work::Checksum(c) => {
            let before = c.done();
            let r = agent.checksum_unit(c).map(|u| match u {
                // Each time `done` crosses a multiple of CHECKSUM_PROGRESS_STEP.
                Unit::More { done, total } => Err((
                    done,
                    total,
                    before / CHECKSUM_PROGRESS_STEP != done / CHECKSUM_PROGRESS_STEP,
                )),
                Unit::Done(md5) => Ok(Answer::Checksum(md5)),
            });
            (Op::ChecksumSlot, r)
        }
        // Run by `stream_unit` (it needs the stream state); never here.
        Work::Stream(_) => (Op::StreamData, Err(refuse(ErrorCode::StreamGap, u32::MAX))),
        #[cfg(feature = "images")]
        Work::Check(c) => {
            let before = c.done();
            let r = agent.check_unit(c).map(|u| match u {
                Unit::More { done, total } => Err((
                    done,
                    total,
                    before / CHECKSUM_PROGRESS_STEP != done / CHECKSUM_PROGRESS_STEP,
                )),
                Unit::Done(()) => Ok(match c.op() {
                    Op::SetRecord => Answer::RecordSet,
                    _ => Answer::Attempted,
                }),
            });
            (c.op(), r)
        }
    };
    match result {
        Ok(Err((done, total, report))) => {
            if report {
                out.send(agent, job.id, Answer::Progress { done, total });
            }
            let handled = Handled::Working {
                id: job.id,
                done,
                total,
            };
            (handled, None)
        }
        Ok(Ok(answer)) => {
            out.send(agent, job.id, answer);
            let handled = Handled::Request {
                id: job.id,
                op: op as u8,
                refused: None,
            };
            (handled, Some(answer))
        }
        Err(refusal) => {
            let handled = Handled::Request {
                id: job.id,
                op: op as u8,
                refused: out.finish(agent, job.id, Err(refusal)),
            };
            (handled, None)
        }
    }
}

/// A stream request's first answer, as the link handles it.
fn stream_handling(r: Result<(StreamOutcome, Option<StreamJob>), Refusal>) -> Handling {
    match r {
        Ok((_, Some(job))) => Handling::Long(Work::Stream(job)),
        Ok((outcome, None)) => Handling::Now(Ok(stream_answer(outcome)), None),
        Err(refusal) => Handling::Now(Err(refusal), None),
    }
}

fn stream_answer(outcome: StreamOutcome) -> Answer {
    match outcome {
        StreamOutcome::Begun { image_len } => Answer::StreamBegun { image_len },
        StreamOutcome::Streamed { received, written } => Answer::Streamed { received, written },
        // Not an answer: callers only pass finished outcomes.
        StreamOutcome::More => Answer::Error(refuse(ErrorCode::StreamGap, u32::MAX)),
    }
}

/// One step of a stream request: no reply until its last step.
fn stream_unit<F: NorFlash>(
    agent: &mut Agent<F>,
    out: &mut Out<'_>,
    id: u16,
    r: Result<StreamOutcome, Refusal>,
) -> (Handled, Option<Answer>) {
    let op = |o: Op| o as u8;
    match r {
        Ok(StreamOutcome::More) => (
            Handled::Working {
                id,
                done: 0,
                total: 0,
            },
            None,
        ),
        Ok(outcome) => {
            let answer = stream_answer(outcome);
            let code = match outcome {
                StreamOutcome::Begun { .. } => op(Op::StreamBegin),
                _ => op(Op::StreamData),
            };
            out.send(agent, id, answer);
            let handled = Handled::Request {
                id,
                op: code,
                refused: None,
            };
            (handled, None)
        }
        Err(refusal) => {
            let handled = Handled::Request {
                id,
                op: op(Op::StreamData),
                refused: out.finish(agent, id, Err(refusal)),
            };
            (handled, None)
        }
    }
}

/// How a request is handled. (Not boxed: no allocator; it lives only while a request is
/// handled, and the work goes straight into the link's state.)
#[allow(clippy::large_enum_variant)]
enum Handling {
    /// Answered now: the reply (or refusal) and the action for the platform.
    Now(Result<Answer, Refusal>, Option<Action>),
    /// A long request, checked and started.
    Long(Work),
}

/// Run one short request, or check and start a long one. `requests`: the request
/// counter after this one (a `SetBaud` waits for it to move). Not inlined: its frame
/// (a write's buffers) is gone before the reply is encoded, so the two never add up.
#[inline(never)]
fn handle<F: NorFlash>(
    agent: &mut Agent<F>,
    baud: &mut BaudState,
    requests: u32,
    op: u8,
    body: &[u8],
) -> Handling {
    let request = match Request::parse(op, body) {
        Ok(r) => r,
        Err(DecodeError::UnknownOp(op)) => {
            return Handling::Now(Err(refuse(ErrorCode::UnknownCommand, u32::from(op))), None);
        }
        Err(_) => {
            return Handling::Now(Err(refuse(ErrorCode::BadRequest, u32::from(op))), None);
        }
    };
    let supported = agent.config().fota_supported;
    let result = match request {
        Request::Hello { version } if version == PROTOCOL_VERSION => Ok(Answer::Info),
        Request::Hello { .. } => Err(refuse(
            ErrorCode::VersionMismatch,
            u32::from(PROTOCOL_VERSION),
        )),
        Request::GetRecord => agent.get_record().map(|_| Answer::Record),
        #[cfg(feature = "images")]
        Request::SetRecord(u) => match agent.begin_set_record(u) {
            Ok(c) => return Handling::Long(Work::Check(c)),
            Err(r) => Err(r),
        },
        #[cfg(not(feature = "images"))]
        Request::SetRecord(u) => agent.set_record(u).map(|()| Answer::RecordSet),
        Request::FindBytecodeSlot => agent.find_bytecode_slot().map(Answer::BytecodeSlot),
        Request::FindVmSlot => agent.find_vm_slot().map(Answer::VmSlot),
        Request::EraseSlot { addr, size } => match agent.begin_erase(addr, size) {
            Ok(e) => return Handling::Long(Work::Erase(e)),
            Err(r) => Err(r),
        },
        Request::WriteSlot { addr, data } => {
            agent.write_slot(addr, data).map(|()| Answer::Written {
                addr,
                // write_slot refuses anything longer than MAX_WRITE.
                len: data.len() as u32,
            })
        }
        Request::ChecksumSlot { addr, size } => match agent.begin_checksum(addr, size) {
            Ok(c) => return Handling::Long(Work::Checksum(c)),
            Err(r) => Err(r),
        },
        Request::Accept => agent.accept().map(Answer::Accepted),
        #[cfg(feature = "images")]
        Request::Attempt { bc_slot, vm_slot } | Request::AttemptDowngrade { bc_slot, vm_slot } => {
            let downgrade = matches!(request, Request::AttemptDowngrade { .. });
            match agent.begin_attempt(bc_slot, vm_slot, downgrade) {
                Ok(c) => return Handling::Long(Work::Check(c)),
                Err(r) => Err(r),
            }
        }
        // Without image checks there is no minimum version: a downgrade is an attempt.
        #[cfg(not(feature = "images"))]
        Request::Attempt { bc_slot, vm_slot } | Request::AttemptDowngrade { bc_slot, vm_slot } => {
            agent.attempt(bc_slot, vm_slot).map(|()| Answer::Attempted)
        }
        Request::Restart if supported => {
            // A partial write unit held in RAM would be lost in the reset: program it
            // (a failure here loses it, as a power cut would; the reset goes ahead).
            let _ = agent.flush_write();
            return Handling::Now(Ok(Answer::Restarting), Some(Action::Restart));
        }
        Request::SetBaud { baud: rate } if supported => {
            let offered = agent.config().offered_baud_rates().any(|b| b == rate);
            return if offered {
                let old = if baud.current == 0 {
                    agent.config().base_baud
                } else {
                    baud.current
                };
                baud.trial_old = old;
                baud.trial_requests = requests;
                baud.trial_deadline = None;
                baud.current = rate;
                Handling::Now(Ok(Answer::BaudSet(rate)), Some(Action::SetBaud(rate)))
            } else {
                let max = agent
                    .config()
                    .offered_baud_rates()
                    .last()
                    .unwrap_or(fota_protocol::DEFAULT_BAUD);
                Handling::Now(Err(refuse(ErrorCode::BadBaud, max)), None)
            };
        }
        Request::Restart | Request::SetBaud { .. } => Err(refuse(ErrorCode::Unsupported, 0)),
        // Handled by the link before this (they need the stream state).
        Request::StreamBegin { .. } | Request::StreamData { .. } => {
            Err(refuse(ErrorCode::UnknownCommand, u32::from(op)))
        }
        Request::Goodbye => {
            // Nothing is left half done for the next host: a held unit is programmed.
            let _ = agent.flush_write();
            let base = agent.config().base_baud;
            let switch = baud.current != base && baud.current != 0;
            baud.current = base;
            baud.trial_old = 0;
            return Handling::Now(
                Ok(Answer::Goodbye(base)),
                switch.then_some(Action::SetBaud(base)),
            );
        }
    };
    Handling::Now(result, None)
}

const fn refuse(code: ErrorCode, detail: u32) -> Refusal {
    Refusal { code, detail }
}
