use core::fmt;

use crate::{KeyId, Kind, Version};

/// Why an image is not one a device may run. Every check of the format and of the
/// verification has its own variant, so a device can report it as a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// No trailer: the bytes are a raw image (or erased, or not an image at all).
    NoTrailer,
    /// The trailer is cut off: the slot or the file ends inside it.
    Truncated,
    /// The bytes where a trailer must start do not start with the magic.
    BadMagic,
    /// A trailer format this reader does not know. Field: its version byte.
    UnsupportedFormat(u8),
    /// A kind code that is neither VM (0) nor bytecode (1). Field: the code.
    UnknownKind(u8),
    /// Flags this reader does not know (reserved, must be 0). Field: the flags.
    UnsupportedFlags(u16),
    /// More signatures than [`crate::MAX_SIGNATURES`]. Field: the count.
    TooManySignatures(u32),
    /// The hash in the trailer is not the hash of the image: it is damaged or was not
    /// written completely.
    BadHash,
    /// The image is for the other kind of slot.
    WrongKind {
        /// The image's kind.
        image: Kind,
        /// The slot's kind.
        slot: Kind,
    },
    /// The payload is linked for another slot address.
    WrongSlot {
        /// The address it is linked for.
        linked_for: u32,
        /// The address of the slot it is in.
        slot: u32,
    },
    /// A signature by a trusted key does not verify.
    BadSignature(KeyId),
    /// Signed, but by no key the device trusts. Field: the first signature's key.
    UnknownKey(KeyId),
    /// Not signed, and the device requires a signature.
    Unsigned,
    /// Older than the oldest version the device still accepts.
    Downgrade {
        /// The image's version.
        image: Version,
        /// The oldest version allowed.
        minimum: Version,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NoTrailer => f.write_str("no FOTA image trailer: a raw image"),
            ImageError::Truncated => f.write_str("the image trailer is cut off"),
            ImageError::BadMagic => f.write_str("no image trailer magic where one must start"),
            ImageError::UnsupportedFormat(v) => {
                write!(
                    f,
                    "image trailer format {v} is not supported (this reader knows 1)"
                )
            }
            ImageError::UnknownKind(k) => write!(f, "unknown image kind {k}"),
            ImageError::UnsupportedFlags(x) => write!(f, "unknown image flags {x:#06x}"),
            ImageError::TooManySignatures(n) => write!(
                f,
                "{n} signatures, more than the {} a trailer may carry",
                crate::MAX_SIGNATURES
            ),
            ImageError::BadHash => {
                f.write_str("the image's SHA-256 does not match: it is damaged or incomplete")
            }
            ImageError::WrongKind { image, slot } => {
                write!(f, "a {image} image cannot go into a {slot} slot")
            }
            ImageError::WrongSlot { linked_for, slot } => write!(
                f,
                "the image is linked for the slot at {linked_for:#010x}, not the one at {slot:#010x}"
            ),
            ImageError::BadSignature(id) => {
                write!(f, "the signature by trusted key {id} does not verify")
            }
            ImageError::UnknownKey(id) => {
                write!(f, "signed by key {id}, which this device does not trust")
            }
            ImageError::Unsigned => {
                f.write_str("the image is not signed and a signature is required")
            }
            ImageError::Downgrade { image, minimum } => write!(
                f,
                "version {image} is older than {minimum}, the oldest this device accepts"
            ),
        }
    }
}

impl core::error::Error for ImageError {}

/// Why verifying a slot stopped: the image, or the flash read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError<E> {
    /// The image is not one the device may run.
    Image(ImageError),
    /// Reading the slot failed.
    Read(E),
    /// The read buffer is shorter than [`crate::MIN_BUFFER`].
    BufferTooSmall,
    /// The verifier already finished (with a result or an error); start a new one.
    Finished,
}

impl<E> From<ImageError> for VerifyError<E> {
    fn from(e: ImageError) -> Self {
        VerifyError::Image(e)
    }
}

impl<E: fmt::Display> fmt::Display for VerifyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Image(e) => e.fmt(f),
            VerifyError::Read(e) => write!(f, "reading the slot failed: {e}"),
            VerifyError::BufferTooSmall => write!(
                f,
                "the verifier's read buffer must hold at least {} bytes",
                crate::MIN_BUFFER
            ),
            VerifyError::Finished => f.write_str("this verification already finished"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for VerifyError<E> {}
