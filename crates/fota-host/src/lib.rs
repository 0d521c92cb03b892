//! The host side of a FOTA update, shared by the web app and the `fota` command line.
//!
//! [`Device`] speaks the protocol over any [`Transport`] (a serial port, a WebSocket,
//! Web Serial, an in-process simulated device); [`update`] drives the seed's update
//! process on top of it, step by step, reporting to an [`Observer`]:
//!
//! 1. record check, 2. slot choice, 3. and 4. erase and stream (windowed, each sector
//!    erased just ahead of the stream), 5. checksum (the
//!    device's MD5 against ours: a mismatch never reaches attempt), 6. attempt and restart,
//! 7. outcome (on trial, accepted, or reverted).
//!
//! Everything is async but tied to no runtime: the transport supplies waiting and time,
//! so the same code runs under tokio, in the browser, and in virtual time against the
//! simulator.

pub mod codec;
mod device;
mod encoder;
mod erase_ahead;
mod erase_plan;
mod error;
mod image;
mod observer;
mod padded;
mod plan;
mod problem;
mod report;
#[cfg(feature = "sim")]
pub mod sim;
mod stream_erases;
pub mod text;
mod transfer;
mod transport;
pub mod update;
pub mod vet;

pub use codec::Codec;
pub use device::{Device, Stats, Timeouts};
pub use error::{HostError, LinkError};
pub use image::{Image, hex, md5_of};
pub use observer::{CancelToken, NullObserver, Observer, Phase, Progress, Step};
pub use problem::Problem;
pub use transport::Transport;
pub use update::{
    Outcome, Plan, Report, SlotChoice, SlotRole, agent_slot, check_for_layout, check_image,
    check_plan, free_slot, record_for_update, slot_of, slot_role, target_slot, update, verify_slot,
};
pub use vet::{ImageFacts, Prepared, Vetted, describe_rules, prepare, vet};

pub use fota_protocol as protocol;
