//! The FOTA wire protocol, shared by the device agent, the browser and the command line.
//!
//! Every function of the original `fota` module (get_record, set_record,
//! find_bytecode_slot, find_vm_slot, erase_slot, write_slot, checksum_slot, restart,
//! accept, attempt) is one [`Request`] with one [`Reply`], plus a `Hello`/[`Info`]
//! exchange and a baud-rate switch.
//!
//! On the wire a message is `0x00 COBS(id:u16 | op:u8 | body | crc32:u32) 0x00`, all
//! integers little-endian. The byte-exact description, with golden frames, is
//! `docs/PROTOCOL.md`; the tests in `tests/golden.rs` check the same frames.
//!
//! `no_std`, no `alloc`, and no input can make it panic: decoding only ever returns an
//! error.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod frame;
mod message;
mod wire;

pub use frame::{
    Event, Frame, FrameError, FrameReader, crc32, encode_reply, encode_request, frame_len, is_text,
};
pub use message::{
    ATTEMPT_CHECKED_LEN, AcceptOutcome, BlockErase, CodecDesc, DecodeError, ErrorCode, ImageRules,
    Info, Layout, LayoutKind, MAX_BAUD_RATES, MAX_BLOCK_ERASES, MAX_CODECS, MAX_KEYS, MAX_NAME,
    MAX_SECTOR_RUNS, MAX_SLOTS, NO_BASE, Op, RUNNING_BYTECODE, RUNNING_VM, Record, RecordState,
    RecordUpdate, Reply, Request, SectorRun, SlotCheck, SlotDesc, SlotKind, codec, info_tag,
    pack_version, sector_at, sector_runs_valid, unpack_version,
};

/// Version of this protocol: what a host sends in `Hello` and an agent reports in
/// `Info`. An agent answers a `Hello` of any version from [`OLDEST_VERSION`] to this
/// one; another gets [`ErrorCode::VersionMismatch`] with the agent's version.
///
/// Version 2 added the record's state and the running slots to the `Record` reply, the
/// outcome to the `Accept` reply, the `BootStage` error, and extension fields to `Info`
/// (boot stage, sector erase time, baud rates); later fields are added as extensions,
/// which a reader skips when it does not know them, without a new version. Version 3
/// added the MD5 check an `Attempt` may carry ([`SlotCheck`], `ChecksumMismatch`), so
/// that a host sends it right behind the slot's `ChecksumSlot`.
pub const PROTOCOL_VERSION: u16 = 3;

/// The oldest version an agent of this crate answers, and a host speaks: a host of
/// version 3 that meets an agent of version 2 says `Hello` again with 2 and sends no
/// request of version 3.
pub const OLDEST_VERSION: u16 = 2;

/// Bytes of a frame's payload besides the body: id (2), op (1) and CRC-32 (4).
pub const FRAME_OVERHEAD: usize = 7;

/// Header bytes of a `WriteSlot` body before the data: the address.
pub const WRITE_HEADER: usize = 4;

/// The largest payload (id + op + body + CRC, before COBS) any side may send.
/// An agent advertises its own, usually smaller, limit in [`Info::max_write`].
pub const MAX_PAYLOAD: usize = 4096 + WRITE_HEADER + FRAME_OVERHEAD;

/// The baud rate every agent answers at after reset; faster rates are negotiated.
pub const DEFAULT_BAUD: u32 = 115_200;

/// The rates the reference hosts (the web app, the command line) try to raise the link
/// to, fastest first: the usual rates of USB-serial adapters above [`DEFAULT_BAUD`].
pub const NEGOTIATE_BAUDS: [u32; 3] = [921_600, 460_800, 230_400];

/// The request id no request carries: an agent answers a frame it could not decode (so
/// cannot attribute) under this id, and a host never gives it to a request.
pub const NO_ID: u16 = 0xFFFF;
