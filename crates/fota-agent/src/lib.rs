//! The device side of FOTA: the ten functions of the original `fota` module over an
//! `embedded-storage` NorFlash, a record that survives power loss at any instant, and a
//! link that answers wire-protocol frames.
//!
//! - [`AgentConfig`]: the flash layout (VM and bytecode slots, record area) and limits.
//! - [`Agent`]: boot decision plus `get_record`, `set_record`, `find_bytecode_slot`,
//!   `find_vm_slot`, `erase_slot`, `write_slot`, `checksum_slot`, `accept`, `attempt`
//!   (`restart` is the platform's: the link returns [`LinkAction::Restart`]).
//! - [`AgentLink`]: bytes in, reply frames out, in bounded steps that the firmware's main
//!   loop drives (see below).
//!
//! `no_std`, no `alloc`, no `unsafe`, and no input (request or flash content) makes it
//! panic: every refusal is an [`ErrorCode`](fota_protocol::ErrorCode) and changes nothing.
//!
//! # Running it in a firmware
//!
//! ```ignore
//! // The link's buffers: built at compile time (a const fn, all zeros: .bss), never on
//! // the stack. Hand out a `&'static mut` to it once.
//! static LINK_STATE: StaticCell<LinkState> = StaticCell::new(LinkState::new());
//!
//! // At reset, before anything else runs: the boot decision. (A boot stage that only
//! // passes control on takes it read-only: `Agent::plan(&mut flash, &config)`.)
//! let (agent, boot) = Agent::boot(flash, config)?;
//! start_vm_and_bytecode(boot.vm_addr, boot.bc_addr);    // the platform's own
//! let mut link = AgentLink::with_state(agent, LINK_STATE.take());
//! link.set_unit_hook(kick_watchdog);                     // after every sector, 4 KiB hashed
//!
//! // The firmware's main loop: its own work, then one bounded step of the agent.
//! loop {
//!     app.tick();
//!     kick_watchdog();
//!     // Step while bytes wait or a long request runs (it needs no input to go on).
//!     let step = link.step(uart.received(), &mut |frame| uart.send(frame));
//!     uart.consume(step.consumed);         // 0 while a long request runs: keep the bytes
//!     match step.action.or(link.tick(clock.now_ms())) {
//!         Some(LinkAction::Restart) => { uart.drain(); reset() }
//!         Some(LinkAction::SetBaud(b)) => { uart.drain(); uart.set_baud(b); link.reset_reader() }
//!         None => {}
//!     }
//!     if boot.trial && app.self_test_passed() { link.agent_mut().accept()?; }
//! }
//! ```
//!
//! Each [`AgentLink::step`] handles one frame (a short request, answered at once) or one
//! *unit* of a long request: one sector of an `EraseSlot` ([`Agent::erase_unit`]), or
//! [`CHECKSUM_UNIT`] bytes of a `ChecksumSlot` ([`Agent::checksum_unit`]). So the longest
//! the firmware's own work waits is one sector erase, or the handling of one frame (a
//! [`MAX_WRITE`]-byte write programmed and read back): an update never stops the running
//! firmware. [`AgentLink::set_unit_hook`] (or [`Agent::set_unit_hook`]) installs a
//! function called after every unit (and every record entry written), where the platform
//! kicks its watchdog: the watchdog's period must then exceed the slowest unit (a sector
//! erase) plus one pass of the main loop. The platform keeps a receive queue of
//! `max_in_flight` × [`RX_FRAME`] bytes at most: the next requests wait there while a
//! long one runs (docs/PORTING.md says what smaller rings lose).
//!
//! [`AgentLink::tick`] gives the link a millisecond clock: an unconfirmed baud switch
//! falls back after [`BAUD_CONFIRM_MS`], and a link left at a negotiated rate goes back to
//! the base rate after [`BAUD_IDLE_MS`] without a request (and at once on `Goodbye`). A
//! request sent again (its reply was late or lost) is answered from a cache of the last
//! [`REPLY_CACHE`] replies and not run twice. Flashes with sectors of several sizes are
//! described by [`AgentConfig::sectors`]; the rates a UART can make by [`UartClock`].
//!
//! # Slots in use, the boot stage
//!
//! A slot is *in use* when the record names it as current or last working, or this boot
//! runs from it. Slots in use are never erased or written; `find_*_slot` returns a slot
//! that is not in use, or `NoFreeSlot` (on a two-slot layout while an attempt is pending
//! or on trial: accept or revert first). On parts that always start the same VM slot
//! (no remap), [`AgentConfig::boot_stage`] names it: it is never offered, erased or
//! written (`BootStage`), and `Info` says which it is.
//!
//! # Writes of any length
//!
//! `write_slot` takes blocks of any length written in order; the slot holds exactly their
//! concatenation. The agent holds a write unit the last block left incomplete in RAM until
//! the next block continues it, or programs it with the erased value before any request
//! that reads or changes flash otherwise ([`Agent::write_slot`], [`Agent::flush_write`]).
//!
//! # Erases in the background
//!
//! With the `background` feature, a board whose flash driver implements
//! `BackgroundErase` (a SPI NOR's erase suspend) calls
//! `Agent::enable_background_erase`: an `EraseSlot` is then scheduled and answered at
//! once, the flash erases while the agent programs elsewhere (suspending the erase), and
//! every request waits for the erases of what it touches (module `background`). The main loop
//! keeps stepping the link while [`AgentLink::erases_pending`]. Without the feature the
//! agent waits for each erase and carries none of it (32 bytes of RAM and about 1.7 KB of
//! code on `thumbv7em` with it).
//!
//! # The boot decision
//!
//! "The previous VM behaves as a bootloader passing control to the new VM": whatever runs
//! first after reset calls [`Agent::boot`], which reads the record and says what to run
//! ([`Boot`]). The record holds an explicit [`RecordState`]:
//!
//! ```text
//!   attempt() / set_record()          boot                   boot (no accept)
//! Confirmed ------------------> Pending -------> Trial ----------------------> Confirmed
//!     ^                                           |     runs the new one       (current :=
//!     |               accept()                    |                             last working,
//!     +-------------------------------------------+                             runs it)
//! ```
//!
//! - `Confirmed`: run current (= last working).
//! - `Pending`: write `Trial`, then run current (the trial boot).
//! - `Trial`: the trial boot ended without `accept()`: write current := last working,
//!   `Confirmed`, and run it ([`Boot::reverted`]).
//! - no valid record (blank flash): write the factory record, slot 0 of each kind,
//!   `Confirmed`.
//!
//! # The record on flash
//!
//! The record area is a ring of two or more erase sectors holding a log of fixed-size
//! entries ([`record::LogEntry`], 20 bytes rounded up to the write size):
//! `magic "FOTA" | seq u32 | state | vm_current | vm_last | bc_current | bc_last | 3
//! reserved | CRC-32`. The entry in force is the valid one (magic, CRC, consistent state,
//! slot indexes that exist in the layout) with the highest `seq`.
//!
//! An update appends an entry with `seq + 1` in the first fully erased entry slot after
//! the newest entry of its sector. A slot that is not erased (a write torn by a power
//! cut) is skipped, never programmed over. When the sector has no erased slot left, the
//! next sector of the ring (which holds only older entries) is erased and the entry goes
//! to its first slot. The entry is read back after writing. Boot scans every slot of
//! every sector, skipping bad ones without stopping, so all state comes from flash alone.
//!
//! What a power cut leaves, at each point of an update:
//!
//! | cut ...                                   | at next boot                                 |
//! |-------------------------------------------|----------------------------------------------|
//! | before the entry write starts             | the previous entry is in force               |
//! | during the entry write (torn)             | its CRC fails: the previous entry is in force; the next update skips that slot |
//! | after the entry write, before it returns  | the new entry is in force (the update happened) |
//! | while erasing the next sector             | the newest entry is still in the full sector: in force; the next update erases again |
//! | after that erase, before the write        | same                                         |
//!
//! And in the boot decision itself:
//!
//! | cut while writing ...   | at next boot                                                |
//! |-------------------------|-------------------------------------------------------------|
//! | the factory record      | still blank: factory record again                           |
//! | `Pending` -> `Trial`    | `Pending` again: the trial boot starts over (new firmware has not run yet) |
//! | `Trial` -> `Confirmed`  | `Trial` again: reverts again                                 |
//!
//! If a record write fails during boot the agent runs the last working configuration,
//! never a trial it could not record ([`Boot::record_write_failed`]); if that was the
//! factory record, the record lives in RAM only and `get_record()` reports fota\[0\] = 0
//! (hosts then refuse to update).
//!
//! Equal sequence numbers (an append that failed and was retried in the next position):
//! the later position in the ring wins. On ECC flash, where a word a power cut tore
//! reads back as an error, an unreadable entry is skipped like one with a bad CRC, at
//! boot and when appending; only a record area where nothing can be read stops the boot
//! ([`AgentError::Flash`]).
//!
//! A configuration on trial is never armed for another trial: `attempt` or `set_record`
//! of the slots the record already names writes nothing, so after a trial boot a restart
//! without `accept()` always reverts. `accept()` says what it did
//! ([`AcceptOutcome`](fota_protocol::AcceptOutcome)).
//!
//! # RAM
//!
//! [`LinkState`] holds the receive buffer ([`RX_FRAME`] = 1042 bytes), one reply buffer
//! ([`TX_FRAME`] = 324 bytes), the counters, the long request in progress (an MD5 state;
//! with the `images` feature an image check, 216 bytes more), the cache of replies and
//! the baud timers: about 1,750 bytes on `thumbv7em` without `images`; the [`Agent`]
//! (configuration, record, a held partial write unit of up to [`MAX_WRITE_UNIT`] bytes)
//! 644 bytes with a zero-sized flash driver (20 more with `images`: the range of the
//! last checksum from a slot's first byte) (`size_of`, measured with a
//! `thumbv7em-none-eabihf` build). Serving a request takes about 2 KiB of stack below the
//! main loop (docs/PORTING.md has the firmware's figures). The platform's receive queue
//! comes on top: [`rx_queue_bytes`]`(max_in_flight)`, that many frames of [`RX_FRAME`]
//! bytes and [`RX_SHORT_ROOM`] for the erases between them, which the platform announces
//! in bytes ([`AgentConfig::rx_window`], `Info` tag 8) so that a host counts its window
//! in bytes: with the default of 5, 5,354 bytes, and the whole link about 7.6 KiB. That
//! keeps a 921600-baud line and the flash busy with 16 ms of adapter latency each way
//! (five blocks and the erase between them in flight; a window must cover a sector's
//! erase, two latencies, the page programs and the reply).
//!
//! With the `codec` feature (compressed and delta streams, docs/PROTOCOL.md 5.7) the
//! [`LinkState`] also holds the stream decoder ([`StreamState`]: 5,868 bytes, the probability
//! model, one 256-byte write chunk and a 48-byte input stash; its dictionary is the flash)
//! and `Info` may list codecs: 7,672 bytes on `thumbv7em`, 7,840 with the `images`
//! feature's image check (a `const` assertion checks these figures in every build for
//! 32-bit Arm). With the agent (624 bytes) and a receive queue
//! of 5 frames and the erases between them (5,354 bytes), the agent, its decoder and its
//! receive buffer take 13,634 bytes, and about 2 KiB of stack while serving: within 16 KiB. A stream step writes at
//! most [`STREAM_STEP`] bytes of flash (plus one LZMA symbol and one write chunk): a
//! `StreamData` frame is a long request, run one step per call of [`AgentLink::step`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
#[cfg(feature = "background")]
pub mod background;
mod codecs;
mod config;
mod flash;
#[cfg(feature = "images")]
mod images;
mod link;
#[cfg(feature = "images")]
mod policy;
pub mod record;
mod stream;

pub use agent::{
    Agent, AgentError, Boot, BootPlan, CHECKSUM_PROGRESS_STEP, CHECKSUM_UNIT, ChecksumOp, EraseOp,
    Refusal, RequestResult, Unit,
};
#[cfg(feature = "background")]
pub use background::BackgroundErase;
pub use config::{
    AgentConfig, BAUD_RATES, ConfigError, FlashGeometry, MAX_READ_UNIT, MAX_WRITE_UNIT, UartClock,
};
pub use link::{
    AgentLink, BAUD_CONFIRM_MS, BAUD_IDLE_MS, Handled, LinkAction, LinkState, LinkStats, LinkStep,
    NO_ID, REPLY_CACHE, RX_SHORT_ROOM, Received, TX_FRAME, rx_queue_bytes,
};
pub use record::RecordState;
pub use stream::{STREAM_STEP, StreamState};

#[cfg(feature = "images")]
pub use fota_image::{KeyId, TrustedKey};
#[cfg(feature = "images")]
pub use images::{CHECK_BUFFER, CHECK_STEPS, CheckOp};
#[cfg(feature = "images")]
pub use policy::ImagePolicy;

/// Most data bytes in one `write_slot`, and the seed's OTA chunk (fota\[8\]).
pub const MAX_WRITE: usize = 1024;

/// The longest request payload (id, op, body, CRC) the agent takes: a `WriteSlot` of
/// [`MAX_WRITE`] bytes. A longer one is answered `FrameTooLong` (detail: this) under id
/// [`NO_ID`], whatever its bytes.
pub const RX_PAYLOAD: usize =
    MAX_WRITE + fota_protocol::WRITE_HEADER + fota_protocol::FRAME_OVERHEAD;

/// The receive buffer of the frame reader: [`RX_PAYLOAD`] bytes COBS-encoded in the worst
/// case, plus the two delimiters (`frame_len`). Every request of up to [`RX_PAYLOAD`]
/// bytes fits, whatever its bytes.
pub const RX_FRAME: usize = fota_protocol::frame_len(RX_PAYLOAD);
