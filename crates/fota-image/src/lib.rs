//! FOTA firmware images: the firmware exactly as linked, followed by a trailer that
//! names its kind, the slot it is linked for, its version and name, its SHA-256, and
//! zero or more Ed25519 signatures. The byte-exact format is `docs/IMAGE.md`.
//!
//! Without features (`default-features = false`) the crate is `no_std`, without `alloc`,
//! and no input makes it panic: a device parses trailers and verifies a slot with
//! [`Verifier`], a bounded step at a time, through a [`SlotReader`] over its flash.
//!
//! ```
//! use fota_image::{ImageError, Kind, Policy, SliceReader, Slot, Step, Verifier, VerifyError};
//!
//! // A device reads its flash; here the slot is in memory, erased.
//! let flash = [0xFFu8; 4096];
//! let slot = Slot { kind: Kind::Bytecode, index: 0, addr: 0x1_0000, size: 4096 };
//! let mut verifier = Verifier::new(slot);
//! let mut buf = [0u8; 256];
//! let result = loop {
//!     match verifier.step(&mut SliceReader(&flash), &mut buf, &Policy::OPEN) {
//!         Ok(Step::Pending(_read)) => { /* the firmware's own work between steps */ }
//!         Ok(Step::Done(verified)) => break Ok(verified),
//!         Err(e) => break Err(e),
//!     }
//! };
//! assert_eq!(result, Err(VerifyError::Image(ImageError::NoTrailer)));
//! ```
//!
//! Over an `embedded-storage` flash the reader is a few lines: `read(offset, buf)` is
//! `flash.read(slot_offset + offset, buf)` (for a flash whose `READ_SIZE` is 1; else read
//! aligned and copy).
//!
//! With `std` (the default) it also reads what builds produce (raw binaries, Intel HEX,
//! ELF, UF2) into the bytes of a slot of a layout, signs, packs and inspects images: see
//! [`host`]. It builds for wasm32 too (the web app). `keygen` adds key generation from the
//! operating system's random number generator.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod consts;
mod error;
mod format;
mod ids;
mod verify;

#[cfg(feature = "protocol")]
mod protocol;

#[cfg(feature = "std")]
pub mod host;

pub use consts::{
    ANY_SLOT, FIXED_LEN, FORMAT_VERSION, HASHED_HEADER_LEN, MAGIC, MAX_SIGNATURES, MAX_TRAILER_LEN,
    MIN_BUFFER, NAME_LEN, SIGNATURE_ENTRY_LEN, SIGNED_LEN,
};
pub use error::{ImageError, VerifyError};
pub use format::{
    Header, ImageRef, SignatureEntry, Trailer, encode_fixed, find_image, locate_trailer,
};
pub use ids::{BadVersion, Hex, KeyId, Kind, Version};
pub use verify::{
    Policy, SliceReader, Slot, SlotReader, Step, TrustedKey, Verified, Verifier, signature_valid,
    verify_bytes, verify_slot,
};
