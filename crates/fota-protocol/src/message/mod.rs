//! Requests, replies and their bodies.

mod code;
mod info;
mod record;
mod reply;
mod request;

pub use code::{DecodeError, ErrorCode, Op};
pub use info::{
    BlockErase, CodecDesc, ImageRules, Info, Layout, LayoutKind, MAX_BAUD_RATES, MAX_BLOCK_ERASES,
    MAX_CODECS, MAX_KEYS, MAX_NAME, MAX_SECTOR_RUNS, MAX_SLOTS, SectorRun, SlotDesc, SlotKind,
    codec, info_tag, pack_version, sector_at, sector_runs_valid, unpack_version,
};
pub use record::{AcceptOutcome, Record, RecordState, RecordUpdate};
pub use reply::Reply;
pub use request::{ATTEMPT_CHECKED_LEN, NO_BASE, RUNNING_BYTECODE, RUNNING_VM, Request, SlotCheck};
