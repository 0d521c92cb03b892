//! Compressed and delta images for FOTA.
//!
//! The device side ([`Decoder`]) is `no_std`, allocates nothing and never panics on bad
//! input: it decodes a stream fed in pieces of any size, writes the image into the target
//! slot and reads its dictionary from flash (the base image of a delta, then the target's
//! bytes already written), so a dictionary as large as the image costs no RAM. Its RAM is
//! [`DECODER_RAM`] bytes.
//!
//! The host side (feature `encode`, on by default) makes the streams: [`encode::compress`]
//! for a full image and [`encode::delta`] against a base the device holds. Streams are
//! made of independent blocks, each with its target offset, so an interrupted update can
//! resume by sending only the blocks whose sectors differ.
//!
//! The format is specified byte for byte in `docs/CODECS.md`.
#![cfg_attr(not(feature = "stream"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod decode;
mod flash;
pub mod format;

#[cfg(feature = "encode")]
pub mod encode;
#[cfg(feature = "encode")]
pub mod hex;
#[cfg(feature = "stream")]
pub mod stream;

pub use decode::{DECODER_RAM, Decoder, Error, Summary, WRITE_CHUNK};
pub use flash::{Flash, OutOfRange, SliceFlash};
pub use format::{Header, HeaderError};

// The RAM figure published in docs/CODECS.md, checked on every target this builds for
// (the thumbv7em-none-eabihf build in CI included).
const _: () = assert!(DECODER_RAM == 5852);
