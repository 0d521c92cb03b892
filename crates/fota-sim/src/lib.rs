//! The hardware of a simulated FOTA device, in simulated time.
//!
//! The device it models runs the Zerynth `fota` API (get_record, erase_slot, write_slot,
//! checksum_slot, attempt, accept, restart, ...) over a serial line. This crate holds the
//! parts that make such a device behave like a real one:
//!
//! * [`flash`]: a NOR flash with the rules of real parts (sector erase, aligned programs
//!   only over erased bytes, W25Q-series timing) and power cuts at any byte, with torn
//!   bytes and the cut that lands after an operation completed but before it returned;
//! * [`line`]: one direction of a UART (8N1 framing, adapter latency, baud changes), a
//!   receive FIFO that overruns, and seeded byte faults;
//! * [`images`]: sample firmware images whose header says whether the firmware accepts
//!   itself after an update, so revert-on-faulty-firmware can be tested.
//!
//! Nothing reads a clock, spawns a thread or touches a file: time is passed in as
//! nanoseconds of simulated time and randomness comes from seeds, so the same code runs
//! reproducibly in tests, in a CLI and in a browser (`wasm32-unknown-unknown`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod device;
pub mod flash;
pub mod images;
pub mod line;
