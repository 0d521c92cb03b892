//! What runs on the device's CPU, for any board: the boot stage, the VM (the agent
//! serving updates and the bytecode program, from one main loop) and the [`Board`]
//! trait a port implements. `docs/PORTING.md` is the guide; `boards/` holds the ports
//! (QEMU's mps2-an386, RP2040).
//!
//! - [`boot::boot_stage`]: at the chip's boot address; plans the agent's boot decision
//!   (reads the record, writes nothing) and starts the last working VM, checking its
//!   vector table first.
//! - [`vm::run`]: the VM, linked for each VM slot. It passes control to a new VM on
//!   trial (bootloader role), or takes the decision for real and serves.
//! - [`link::Link`]: the glue between the main loop and `fota_agent::AgentLink`.
//! - [`app::App`]: the program in the bytecode slot, run a bounded number of
//!   instructions per pass, so the program keeps running while an update streams.
//!
//! `no_std`, no `alloc`, no `unsafe`: the board does the unsafe parts.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod board;
pub mod boot;
pub mod link;
pub mod text;
pub mod vm;

pub use board::{Board, ResetCause, Retained};
pub use vm::SAFE_MODE_AFTER;
