//! Frames in, frames out: the agent behind the wire protocol.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{
    DecodeError, ErrorCode, Event, FRAME_OVERHEAD, FrameError, FrameReader, MAX_NAME, MAX_SLOTS,
    PROTOCOL_VERSION, Reply, Request, encode_reply, frame_len,
};

use crate::RX_FRAME;
use crate::agent::{Agent, AgentError, Boot, Refusal};
use crate::config::AgentConfig;

/// Body bytes of the largest `Info` reply: the fixed fields, [`MAX_SLOTS`] slots of 10
/// bytes and a [`MAX_NAME`]-byte name.
const INFO_BODY_MAX: usize =
    2 + 3 + 1 + 4 + 2 + 2 + 1 + 4 + 4 + 4 + 1 + MAX_SLOTS * 10 + 1 + MAX_NAME;

/// The longest reply frame the agent sends (the largest `Info`), delimiters included.
pub const TX_FRAME: usize = frame_len(INFO_BODY_MAX + FRAME_OVERHEAD);

/// The request id of replies to frames that could not be decoded.
pub const NO_ID: u16 = 0xFFFF;

/// The baud rates `SetBaud` may ask for (up to the configured `max_baud`).
pub const BAUD_RATES: [u32; 7] = [
    115_200, 230_400, 460_800, 921_600, 1_000_000, 1_500_000, 2_000_000,
];

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
    /// A request frame was handled and answered.
    Request {
        /// Its id.
        id: u16,
        /// Its operation code.
        op: u8,
        /// The error code it was answered with, if it was refused.
        refused: Option<ErrorCode>,
    },
    /// A damaged or oversized frame, answered with an error under id [`NO_ID`].
    BadFrame(FrameError),
    /// Text between frames: ignored.
    Text,
}

/// The result of [`AgentLink::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
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

/// The agent behind a byte stream: decodes request frames, runs them, encodes replies.
///
/// RAM: the frame reader ([`RX_FRAME`] bytes plus two words), one reply buffer
/// ([`TX_FRAME`] bytes), the counters and the [`Agent`] (configuration and record, well
/// under 300 bytes besides the flash driver): 1432 bytes on `thumbv7em`, the flash driver
/// not counted. Request handling needs under 1 KiB of stack (a 256-byte read buffer, the MD5
/// state, an `Info`). The platform's receive queue (`max_in_flight` frames of
/// [`RX_FRAME`] bytes) comes on top.
#[derive(Debug)]
pub struct AgentLink<F> {
    agent: Agent<F>,
    reader: FrameReader<RX_FRAME>,
    tx_buf: [u8; TX_FRAME],
    stats: LinkStats,
}

impl<F: NorFlash> AgentLink<F> {
    /// A link around a booted agent.
    pub fn new(agent: Agent<F>) -> Self {
        AgentLink {
            agent,
            reader: FrameReader::new(),
            tx_buf: [0; TX_FRAME],
            stats: LinkStats::default(),
        }
    }

    /// Boot an agent ([`Agent::boot`]) and put a link around it.
    pub fn boot(flash: F, config: AgentConfig) -> Result<(Self, Boot), AgentError> {
        let (agent, boot) = Agent::boot(flash, config)?;
        Ok((AgentLink::new(agent), boot))
    }

    /// Take bytes until one event (a frame, a damaged frame or a text chunk) has been
    /// handled, or the input runs out. Replies go to `tx`, one frame per call, progress
    /// frames first. Call again with `&bytes[step.consumed..]`.
    pub fn step(&mut self, bytes: &[u8], tx: &mut dyn FnMut(&[u8])) -> Step {
        let AgentLink {
            agent,
            reader,
            tx_buf,
            stats,
        } = self;
        let (consumed, event) = reader.feed(bytes);
        let mut out = Out {
            buf: tx_buf,
            tx,
            stats,
        };
        let (handled, action) = match event {
            None => (Handled::Nothing, None),
            Some(Event::Text(_)) => {
                out.stats.text_chunks = out.stats.text_chunks.wrapping_add(1);
                (Handled::Text, None)
            }
            Some(Event::Error(e)) => {
                out.stats.bad_frames = out.stats.bad_frames.wrapping_add(1);
                let refusal = match e {
                    FrameError::TooLong => Refusal {
                        code: ErrorCode::FrameTooLong,
                        detail: RX_FRAME as u32,
                    },
                    FrameError::Cobs => bad_frame(1),
                    FrameError::TooShort => bad_frame(2),
                    FrameError::Crc => bad_frame(3),
                };
                out.send(NO_ID, &refusal.reply());
                (Handled::BadFrame(e), None)
            }
            Some(Event::Frame(f)) => {
                out.stats.requests = out.stats.requests.wrapping_add(1);
                let (result, action) = handle(agent, &mut out, f.id, f.op, f.body);
                let refused = match &result {
                    Ok(_) => None,
                    Err(r) => {
                        out.stats.refused = out.stats.refused.wrapping_add(1);
                        Some(r.code)
                    }
                };
                let reply = result.unwrap_or_else(|r| r.reply());
                out.send(f.id, &reply);
                let handled = Handled::Request {
                    id: f.id,
                    op: f.op,
                    refused,
                };
                (handled, action)
            }
        };
        Step {
            consumed,
            handled,
            action,
        }
    }

    /// Handle all of `bytes`, stopping early only for an action (the bytes after it belong
    /// to the time after the restart or baud switch).
    pub fn receive(&mut self, bytes: &[u8], tx: &mut dyn FnMut(&[u8])) -> Received {
        let mut consumed = 0;
        while let Some(rest) = bytes.get(consumed..) {
            if rest.is_empty() {
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
            if step.consumed == 0 {
                // The reader always takes at least one byte; stay safe anyway.
                break;
            }
        }
        Received {
            consumed,
            action: None,
        }
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

const fn bad_frame(kind: u32) -> Refusal {
    Refusal {
        code: ErrorCode::BadFrame,
        detail: kind,
    }
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
}

/// Run one request; returns the reply (or refusal) and the action for the platform.
fn handle<F: NorFlash>(
    agent: &mut Agent<F>,
    out: &mut Out<'_>,
    id: u16,
    op: u8,
    body: &[u8],
) -> (Result<Reply, Refusal>, Option<Action>) {
    let request = match Request::parse(op, body) {
        Ok(r) => r,
        Err(DecodeError::UnknownOp(op)) => {
            return (Err(refuse(ErrorCode::UnknownCommand, u32::from(op))), None);
        }
        Err(_) => return (Err(refuse(ErrorCode::BadRequest, u32::from(op))), None),
    };
    let mut progress = |done: u32, total: u32| out.send(id, &Reply::Progress { done, total });
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
        Request::EraseSlot { addr, size } => agent
            .erase_slot(addr, size, &mut progress)
            .map(|(addr, size)| Reply::Erased { addr, size }),
        Request::WriteSlot { addr, data } => {
            agent.write_slot(addr, data).map(|()| Reply::Written {
                addr,
                // write_slot refuses anything longer than MAX_WRITE.
                len: data.len() as u32,
            })
        }
        Request::ChecksumSlot { addr, size } => agent
            .checksum_slot(addr, size, &mut progress)
            .map(Reply::Checksum),
        Request::Accept => agent.accept().map(|()| Reply::Accepted),
        Request::Attempt { bc_slot, vm_slot } => {
            agent.attempt(bc_slot, vm_slot).map(|()| Reply::Attempted)
        }
        Request::Restart if supported => return (Ok(Reply::Restarting), Some(Action::Restart)),
        Request::SetBaud { baud } if supported => {
            let max = agent.config().max_baud;
            return if baud <= max && BAUD_RATES.contains(&baud) {
                (Ok(Reply::BaudSet(baud)), Some(Action::SetBaud(baud)))
            } else {
                (Err(refuse(ErrorCode::BadBaud, max)), None)
            };
        }
        Request::Restart | Request::SetBaud { .. } => Err(refuse(ErrorCode::Unsupported, 0)),
    };
    (result, None)
}

const fn refuse(code: ErrorCode, detail: u32) -> Refusal {
    Refusal { code, detail }
}
