//! Frames in, frames out: the agent behind the wire protocol, in bounded steps.

use core::borrow::BorrowMut;

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{Event, FRAME_OVERHEAD, FrameError, FrameReader, Op, Request};

use crate::agent::{Agent, AgentError, Boot};
use crate::config::AgentConfig;
use crate::stream::{StreamJob, StreamState};
use crate::{RX_FRAME, RX_PAYLOAD};

mod baud;
mod cache;
mod dispatch;
mod events;
mod job;
mod reply;
mod work;

pub use events::*;
pub use reply::TX_FRAME;

use baud::BaudState;
use cache::{Key, ReplyCache};
use dispatch::{Handling, handle};
use job::{Job, Work};
use reply::{Answer, Out, frame_refusal};
use work::{stream_handling, stream_unit, work_unit};

/// Room a platform's receive queue keeps, besides its full frames, for the short
/// requests a host interleaves with `WriteSlot`s: eight frames of 18 bytes (an
/// `EraseSlot` or a `ChecksumSlot`). With `Info` tag 8 a host counts its window in bytes,
/// and a sector's erase (18 bytes) then no longer takes a 1 042-byte frame's room: five
/// blocks and the erases between them fit in [`rx_queue_bytes`]`(5)`.
pub const RX_SHORT_ROOM: usize = 8 * fota_protocol::frame_len(FRAME_OVERHEAD + 8);

/// The bytes of a receive queue for `frames` full request frames ([`RX_FRAME`] each) and
/// the short requests between them ([`RX_SHORT_ROOM`]): what a platform announces as
/// [`AgentConfig::rx_window`] (`Info` tag 8) and gives its UART ring, behind the request
/// the link's reader holds (see [`AgentConfig::rx_window`] for what the platform must
/// then do when a reply goes out).
pub const fn rx_queue_bytes(frames: u8) -> usize {
    let frames = if frames == 0 { 1 } else { frames as usize };
    frames * RX_FRAME + RX_SHORT_ROOM
}

/// The request id of replies to frames that could not be decoded.
pub use fota_protocol::NO_ID;

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
///         Some(LinkAction::Restart) => { uart.drain(); reset(); }
///         Some(LinkAction::SetBaud(b)) => { uart.drain(); uart.set_baud(b); link.reset_reader(); }
///         None => {}
///     }
/// }
/// ```
///
/// [`AgentLink::set_unit_hook`] installs a function called after every unit (each sector
/// erased, each block hashed, each record entry written), where a platform kicks its
/// watchdog: the main loop's own kick then only has to cover one unit. Requests are
/// still handled strictly one at a time in arrival order: bytes of the next request wait
/// in the platform's receive queue (`max_in_flight` frames of [`RX_FRAME`] bytes, or
/// [`AgentConfig::rx_window`] bytes) while a long one runs. With `rx_window` a host does
/// not count the request the link handles, so in a loop like the one above, which runs
/// `app.tick()` between a reply and the next step, the receive path must push back when
/// its queue is full, or `rx_window` be the queue less [`RX_FRAME`] (docs/PROTOCOL.md
/// 6.2).
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
    pub fn step(&mut self, bytes: &[u8], tx: &mut dyn FnMut(&[u8])) -> LinkStep {
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
        // Background erases: the next unit starts once the last is done.
        agent.pump_erases();
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
                // Background erases: the range this step writes is erased first, and
                // the erase running is suspended while the decoder reads and writes.
                let r = agent
                    .erase_guard(stream.writes_next())
                    .and_then(|suspended| {
                        let r = stream.step(agent, s, body.unwrap_or(&[]));
                        agent.resume_erase(suspended);
                        r
                    });
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
            return LinkStep {
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
                    return LinkStep {
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
                // A stream's request (the end of a stream programs its last unit) runs
                // with the erase running suspended (crate::background).
                let guard = match parsed {
                    Some(_) => agent.erase_guard(stream.writes_next()),
                    None => Ok(false),
                };
                let handling = match (guard, parsed) {
                    (Err(refusal), _) => Handling::Now(Err(refusal), None),
                    (Ok(suspended), Some(Request::StreamBegin { addr, base, header })) => {
                        let r = stream.begin(agent, addr, base, header);
                        agent.resume_erase(suspended);
                        stream_handling(r)
                    }
                    (Ok(suspended), Some(Request::StreamData { offset, data })) => {
                        let r = stream.data(agent, offset, f.body.len(), data);
                        agent.resume_erase(suspended);
                        stream_handling(r)
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
        LinkStep {
            consumed,
            handled,
            action,
        }
    }

    /// The baud-rate timers, from the firmware's main loop with a millisecond clock
    /// (it may wrap). Returns [`LinkAction::SetBaud`] when the link must go back to another
    /// rate: the previous one when a `SetBaud` was not confirmed by a request with a good
    /// CRC within [`BAUD_CONFIRM_MS`], the base rate after [`BAUD_IDLE_MS`] without a
    /// request (a long request in progress counts as activity). Call it every pass; a
    /// coarse clock (10 ms) is enough.
    pub fn tick(&mut self, now_ms: u32) -> Option<LinkAction> {
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

    /// Whether erases scheduled in the background are left to run or start
    /// ([`Agent::erases_pending`]): call [`AgentLink::step`] (even with no input) when
    /// the flash may have finished one, so that the next starts.
    pub fn erases_pending(&self) -> bool {
        self.agent.erases_pending()
    }

    /// Whether the long request in progress is a `ChecksumSlot`: the next step reads and
    /// hashes up to [`crate::CHECKSUM_UNIT`] bytes (a simulator charges the CPU's MD5
    /// time for them).
    pub fn is_hashing(&self) -> bool {
        let s = self.state.borrow();
        s.busy && matches!(s.job.work, Work::Checksum(_))
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

// The RAM figures the crate documentation gives for 32-bit Arm (thumbv7em, thumbv6m):
// the link's state with the decoder, and the decoder's part of it. Checked whenever the
// agent is built for such a target with the `codec` feature; with `images` as well, the
// image check's state adds 168 B.
#[cfg(all(feature = "codec", target_arch = "arm"))]
const _: () = {
    let images = if cfg!(feature = "images") { 168 } else { 0 };
    assert!(core::mem::size_of::<LinkState>() == 7672 + images);
    assert!(core::mem::size_of::<StreamState>() == 5868);
};
