//! Frames in, frames out: the agent behind the wire protocol, in bounded steps.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{
    DecodeError, ErrorCode, Event, FRAME_OVERHEAD, FrameError, FrameReader, MAX_BAUD_RATES,
    MAX_NAME, MAX_SLOTS, Op, PROTOCOL_VERSION, Reply, Request, encode_reply, frame_len,
};

use crate::agent::{
    Agent, AgentError, Boot, CHECKSUM_PROGRESS_STEP, ChecksumOp, EraseOp, Refusal, Unit,
};
use crate::config::AgentConfig;
use crate::{RX_FRAME, RX_PAYLOAD};

/// Body bytes of the largest `Info` reply: the fixed fields, [`MAX_SLOTS`] slots of 10
/// bytes, a [`MAX_NAME`]-byte name, and the extensions (boot stage 3 bytes, sector erase
/// time 6, [`MAX_BAUD_RATES`] rates 2 + 4 each).
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
    + MAX_BAUD_RATES * 4;

/// The longest reply frame the agent sends (the largest `Info`), delimiters included.
pub const TX_FRAME: usize = frame_len(INFO_BODY_MAX + FRAME_OVERHEAD);

/// The request id of replies to frames that could not be decoded.
pub const NO_ID: u16 = 0xFFFF;

/// What the platform must do after a frame was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `restart()`: the `Restarting` reply has been handed to `tx`. Let it drain, then reset
    /// the device (and boot the agent again).
    Restart,
    /// The `BaudSet` reply has been handed to `tx` at the old rate. Let it drain, switch
    /// the UART to this rate, and go back to the old rate unless a valid frame arrives
    /// within one second (watch [`LinkStats::requests`]).
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
}

/// The long request in progress.
#[derive(Debug, Clone)]
struct Job {
    id: u16,
    work: Work,
}

#[derive(Debug, Clone)]
enum Work {
    Erase(EraseOp),
    Checksum(ChecksumOp),
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
///   (`consumed == 0`): keep the bytes and pass them again.
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
///     match step.action {
///         Some(Action::Restart) => { uart.drain(); reset(); }
///         Some(Action::SetBaud(b)) => { uart.drain(); uart.set_baud(b); link.reset_reader(); }
///         None => {}
///     }
/// }
/// ```
///
/// [`AgentLink::is_busy`] says whether a long request is in progress (a firmware may then
/// call `step` again sooner). [`AgentLink::set_unit_hook`] installs a function called
/// after every unit, for a platform that must act between units even when the agent is
/// driven by the blocking [`AgentLink::receive`] (a watchdog kick, say). Requests are
/// still handled strictly one at a time in arrival order: bytes of the next request wait
/// in the platform's receive queue (`max_in_flight` frames of [`RX_FRAME`] bytes) while a
/// long one runs.
///
/// RAM: the frame reader ([`RX_FRAME`] bytes plus two words), one reply buffer
/// ([`TX_FRAME`] bytes), the counters, the long request in progress (an MD5 state) and
/// the [`Agent`] (configuration, record, a held partial write unit of up to
/// [`crate::MAX_WRITE_UNIT`] bytes): see the crate documentation for the figure. Request
/// handling needs under 1 KiB of stack (a 256-byte read buffer, an `Info`).
#[derive(Debug)]
pub struct AgentLink<F> {
    agent: Agent<F>,
    reader: FrameReader<RX_FRAME>,
    tx_buf: [u8; TX_FRAME],
    stats: LinkStats,
    job: Option<Job>,
}

impl<F: NorFlash> AgentLink<F> {
    /// A link around a booted agent.
    pub fn new(agent: Agent<F>) -> Self {
        AgentLink {
            agent,
            reader: FrameReader::new(),
            tx_buf: [0; TX_FRAME],
            stats: LinkStats::default(),
            job: None,
        }
    }

    /// Boot an agent ([`Agent::boot`]) and put a link around it.
    pub fn boot(flash: F, config: AgentConfig) -> Result<(Self, Boot), AgentError> {
        let (agent, boot) = Agent::boot(flash, config)?;
        Ok((AgentLink::new(agent), boot))
    }

    /// Do one bounded piece of work (see the type's documentation): one unit of the long
    /// request in progress, or else take bytes until one event (a frame, a damaged frame
    /// or a text chunk) has been handled, or the input runs out. Replies go to `tx`, one
    /// frame per call. Call again with `&bytes[step.consumed..]`.
    pub fn step(&mut self, bytes: &[u8], tx: &mut dyn FnMut(&[u8])) -> Step {
        let AgentLink {
            agent,
            reader,
            tx_buf,
            stats,
            job,
        } = self;
        let mut out = Out {
            buf: tx_buf,
            tx,
            stats,
        };
        if let Some(j) = job {
            let handled = work_unit(agent, &mut out, j);
            if matches!(handled, Handled::Request { .. }) {
                *job = None;
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
                out.send(NO_ID, &frame_refusal(e).reply());
                (Handled::BadFrame(e), None)
            }
            // Longer than any request the agent takes, though it fit the buffer: the same
            // answer as a frame that did not fit, so that it never depends on the bytes
            // (COBS makes a frame's length on the wire depend on its zeros).
            Some(Event::Frame(f)) if FRAME_OVERHEAD + f.body.len() > RX_PAYLOAD => {
                out.stats.bad_frames = out.stats.bad_frames.wrapping_add(1);
                out.send(NO_ID, &frame_refusal(FrameError::TooLong).reply());
                (Handled::BadFrame(FrameError::TooLong), None)
            }
            Some(Event::Frame(f)) => {
                out.stats.requests = out.stats.requests.wrapping_add(1);
                match handle(agent, f.op, f.body) {
                    Handling::Long(work) => {
                        *job = Some(Job { id: f.id, work });
                        (Handled::Started { id: f.id, op: f.op }, None)
                    }
                    Handling::Now(result, action) => {
                        let refused = out.finish(f.id, result);
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
    /// [`AgentLink::step`] works on it.
    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    /// Call `hook` after every unit of a long request (see [`Agent::set_unit_hook`]).
    pub fn set_unit_hook(&mut self, hook: fn()) {
        self.agent.set_unit_hook(hook);
    }

    /// Forget a partly received frame (after a baud switch or a reconnect).
    pub fn reset_reader(&mut self) {
        self.reader.reset();
    }

    /// Bytes of a frame received so far, not yet ended.
    pub fn pending(&self) -> usize {
        self.reader.pending()
    }

    /// The counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The agent.
    pub fn agent(&self) -> &Agent<F> {
        &self.agent
    }

    /// The agent, mutably.
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
    fn send(&mut self, id: u16, reply: &Reply) {
        // TX_FRAME holds the largest reply; a test encodes it.
        let Some(n) = encode_reply(id, reply, self.buf.as_mut_slice()) else {
            return;
        };
        if let Some(frame) = self.buf.get(..n) {
            (self.tx)(frame);
            self.stats.frames_sent = self.stats.frames_sent.wrapping_add(1);
            if matches!(reply, Reply::Progress { .. }) {
                self.stats.progress_sent = self.stats.progress_sent.wrapping_add(1);
            }
        }
    }

    /// Send the final reply of request `id`; returns the refusal's code, if refused.
    fn finish(&mut self, id: u16, result: Result<Reply, Refusal>) -> Option<ErrorCode> {
        let refused = match &result {
            Ok(_) => None,
            Err(r) => {
                self.stats.refused = self.stats.refused.wrapping_add(1);
                Some(r.code)
            }
        };
        let reply = result.unwrap_or_else(|r| r.reply());
        self.send(id, &reply);
        refused
    }
}

/// One unit of the long request `job`: progress where the protocol says so, the final
/// reply after the last unit.
fn work_unit<F: NorFlash>(agent: &mut Agent<F>, out: &mut Out<'_>, job: &mut Job) -> Handled {
    let (op, result) = match &mut job.work {
        Work::Erase(e) => {
            let r = agent.erase_unit(e).map(|u| match u {
                // After each sector but the last.
                Unit::More { done, total } => Err((done, total, true)),
                Unit::Done((addr, size)) => Ok(Reply::Erased { addr, size }),
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
                Unit::Done(md5) => Ok(Reply::Checksum(md5)),
            });
            (Op::ChecksumSlot, r)
        }
    };
    match result {
        Ok(Err((done, total, report))) => {
            if report {
                out.send(job.id, &Reply::Progress { done, total });
            }
            Handled::Working {
                id: job.id,
                done,
                total,
            }
        }
        Ok(Ok(reply)) => Handled::Request {
            id: job.id,
            op: op as u8,
            refused: out.finish(job.id, Ok(reply)),
        },
        Err(refusal) => Handled::Request {
            id: job.id,
            op: op as u8,
            refused: out.finish(job.id, Err(refusal)),
        },
    }
}

/// How a request is handled.
enum Handling {
    /// Answered now: the reply (or refusal) and the action for the platform.
    Now(Result<Reply, Refusal>, Option<Action>),
    /// A long request, checked and started.
    Long(Work),
}

/// Run one short request, or check and start a long one.
fn handle<F: NorFlash>(agent: &mut Agent<F>, op: u8, body: &[u8]) -> Handling {
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
        Request::Hello { version } if version == PROTOCOL_VERSION => Ok(Reply::Info(agent.info())),
        Request::Hello { .. } => Err(refuse(
            ErrorCode::VersionMismatch,
            u32::from(PROTOCOL_VERSION),
        )),
        Request::GetRecord => agent.get_record().map(Reply::Record),
        Request::SetRecord(u) => agent.set_record(u).map(|()| Reply::RecordSet),
        Request::FindBytecodeSlot => agent.find_bytecode_slot().map(Reply::BytecodeSlot),
        Request::FindVmSlot => agent.find_vm_slot().map(Reply::VmSlot),
        Request::EraseSlot { addr, size } => match agent.begin_erase(addr, size) {
            Ok(e) => return Handling::Long(Work::Erase(e)),
            Err(r) => Err(r),
        },
        Request::WriteSlot { addr, data } => {
            agent.write_slot(addr, data).map(|()| Reply::Written {
                addr,
                // write_slot refuses anything longer than MAX_WRITE.
                len: data.len() as u32,
            })
        }
        Request::ChecksumSlot { addr, size } => match agent.begin_checksum(addr, size) {
            Ok(c) => return Handling::Long(Work::Checksum(c)),
            Err(r) => Err(r),
        },
        Request::Accept => agent.accept().map(Reply::Accepted),
        Request::Attempt { bc_slot, vm_slot } => {
            agent.attempt(bc_slot, vm_slot).map(|()| Reply::Attempted)
        }
        Request::Restart if supported => {
            // A partial write unit held in RAM would be lost in the reset: program it
            // (a failure here loses it, as a power cut would; the reset goes ahead).
            let _ = agent.flush_write();
            return Handling::Now(Ok(Reply::Restarting), Some(Action::Restart));
        }
        Request::SetBaud { baud } if supported => {
            let offered = agent.config().offered_baud_rates().any(|b| b == baud);
            return if offered {
                Handling::Now(Ok(Reply::BaudSet(baud)), Some(Action::SetBaud(baud)))
            } else {
                let max = agent.info().max_baud;
                Handling::Now(Err(refuse(ErrorCode::BadBaud, max)), None)
            };
        }
        Request::Restart | Request::SetBaud { .. } => Err(refuse(ErrorCode::Unsupported, 0)),
    };
    Handling::Now(result, None)
}

const fn refuse(code: ErrorCode, detail: u32) -> Refusal {
    Refusal { code, detail }
}
