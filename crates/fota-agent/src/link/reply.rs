//! Replies: the size of the largest one, answers as the link keeps them, and their
//! encoding into frames.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{
    AcceptOutcome, ErrorCode, FRAME_OVERHEAD, FrameError, MAX_BAUD_RATES, MAX_NAME,
    MAX_SECTOR_RUNS, MAX_SLOTS, Reply, encode_reply, frame_len,
};

use super::LinkStats;
use crate::RX_PAYLOAD;
use crate::agent::{Agent, Refusal};

/// Body bytes of the largest `Info` reply: the fixed fields, [`MAX_SLOTS`] slots of 10
/// bytes, a [`MAX_NAME`]-byte name, and the extensions (boot stage 3 bytes, sector erase
/// time 6, [`MAX_BAUD_RATES`] rates 2 + 4 each, [`MAX_SECTOR_RUNS`] sector runs 2 + 12
/// each, image rules 2 + 9 + 8 per key, trial deadline 6, receive window 6, time left on
/// trial 6, and with the `codec` feature the codecs).
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
    + 6
    + 6 // tag 8: the receive window
    + 6 // tag 9: the time left on trial
    + 2 + fota_protocol::MAX_BLOCK_ERASES * 8 // tag 10: the block erases
    + CODECS_FIELD;

/// The codecs field of `Info` (tag 5): only an agent built with its decoder sends it.
const CODECS_FIELD: usize = if cfg!(feature = "codec") {
    2 + fota_protocol::MAX_CODECS * 5
} else {
    0
};

/// The longest reply frame the agent sends (the largest `Info`), delimiters included.
pub const TX_FRAME: usize = frame_len(INFO_BODY_MAX + FRAME_OVERHEAD);

/// A reply as the link handles it: every `Reply`, but an `Info`'s or a `Record`'s body is
/// made from the agent only when the frame is encoded (an `Info` is some 280 bytes): the
/// handling path's frames stay small, and the cache keeps answers as they are.
/// `Erased` comes first: an empty cache entry holds `Erased { 0, 0 }`, all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
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

/// The answer to a chunk that is not a request frame.
pub(super) const fn frame_refusal(e: FrameError) -> Refusal {
    let (code, detail) = match e {
        FrameError::TooLong => (ErrorCode::FrameTooLong, RX_PAYLOAD as u32),
        FrameError::Cobs => (ErrorCode::BadFrame, 1),
        FrameError::TooShort => (ErrorCode::BadFrame, 2),
        FrameError::Crc => (ErrorCode::BadFrame, 3),
    };
    Refusal { code, detail }
}

/// Where replies go.
pub(super) struct Out<'a> {
    pub(super) buf: &'a mut [u8; TX_FRAME],
    pub(super) tx: &'a mut dyn FnMut(&[u8]),
    pub(super) stats: &'a mut LinkStats,
}

impl Out<'_> {
    /// Encode and send one frame. Not inlined: the `Reply` (and an `Info`) it builds
    /// lives in this frame only while it is encoded.
    #[inline(never)]
    pub(super) fn send<F: NorFlash>(&mut self, agent: &Agent<F>, id: u16, answer: Answer) {
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
    pub(super) fn finish<F: NorFlash>(
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
