//! The bytecode the FOTA firmware's VM runs from the current bytecode slot: a small
//! program that prints, sleeps, checks the device, confirms itself with `accept`, fails
//! or hangs. Enough for a healthy program that tests itself and accepts, and for faulty
//! ones that the watchdog and the boot decision must revert.
//!
//! - [`image`]: the 64-byte header (magic, length, CRC, name, version) and its check.
//! - [`insn`]: the instructions and their encoding.
//! - [`Machine`]: the interpreter, run a bounded number of instructions at a time
//!   so the firmware keeps serving updates in between ("an update never stops the
//!   running firmware").
//! - with `std`: [`assemble`], [`dry_run`] and [`samples`].
//!
//! The specification is `docs/BYTECODE.md`. `no_std`, no `alloc`, no `unsafe`; no program
//! (however damaged) makes the interpreter panic: it fails the program instead.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod image;
pub mod insn;
mod machine;

#[cfg(feature = "std")]
mod asm;
#[cfg(feature = "std")]
mod dry;
#[cfg(feature = "std")]
pub mod samples;

pub use image::{Header, ImageError, Source, check};
pub use insn::Check;
pub use machine::{Fault, Host, Machine, State};

#[cfg(feature = "std")]
pub use asm::{AsmError, assemble};
#[cfg(feature = "std")]
pub use dry::{Verdict, dry_run};
