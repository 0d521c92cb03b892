//! What the link tells the platform: what to do after a frame, what a request did, and
//! counts of what it handled; the link's timing constants.

use fota_protocol::{ErrorCode, FrameError};

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
pub enum LinkAction {
    /// `restart()`: the `Restarting` reply has been handed to `tx`. Let it drain, then reset
    /// the device (and boot the agent again).
    Restart,
    /// Switch the UART to this rate: let what was sent drain first (a `BaudSet` or
    /// `Goodbye` reply goes out at the old rate), then switch and call
    /// [`AgentLink::reset_reader`](crate::AgentLink::reset_reader). [`AgentLink::step`](crate::AgentLink::step) returns it after `SetBaud` and
    /// `Goodbye`; [`AgentLink::tick`](crate::AgentLink::tick) when a new rate was not confirmed within
    /// [`BAUD_CONFIRM_MS`], or after [`BAUD_IDLE_MS`] without a request.
    SetBaud(u32),
}

/// What one [`AgentLink::step`](crate::AgentLink::step) did.
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
    /// A damaged or oversized frame, answered with an error under id [`NO_ID`](crate::NO_ID).
    BadFrame(FrameError),
    /// Text between frames: ignored.
    Text,
}

/// The result of [`AgentLink::step`](crate::AgentLink::step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStep {
    /// Input bytes consumed. Zero while a long request is in progress: the bytes wait
    /// (keep them and pass them again).
    pub consumed: usize,
    /// What was handled.
    pub handled: Handled,
    /// What the platform must do now.
    pub action: Option<LinkAction>,
}

/// The result of [`AgentLink::receive`](crate::AgentLink::receive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Input bytes consumed: all of them unless an action stopped the loop.
    pub consumed: usize,
    /// The action that stopped the loop, if any.
    pub action: Option<LinkAction>,
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
    pub(super) const ZERO: LinkStats = LinkStats {
        requests: 0,
        refused: 0,
        bad_frames: 0,
        text_chunks: 0,
        frames_sent: 0,
        progress_sent: 0,
        repeats: 0,
    };
}
