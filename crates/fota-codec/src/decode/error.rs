//! Why a stream was refused.

use crate::format::HeaderError;

/// Why a stream was refused. After any error the decoder refuses further input
/// ([`Error::Failed`]): start a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The flash refused a read or a write.
    Flash(E),
    /// The stream header is not one this decoder reads.
    Header(HeaderError),
    /// The image is larger than the target slot.
    ImageTooLarge {
        /// The header's image length.
        image_len: u32,
        /// The target slot's size.
        slot_len: u32,
    },
    /// A delta whose base is larger than the base the caller can read.
    BaseTooLarge {
        /// The header's base length.
        base_len: u32,
        /// The largest base the caller allows.
        max: u32,
    },
    /// The base in flash is not the image the delta was made from.
    BaseMismatch {
        /// CRC-32 the stream was made for.
        expected: u32,
        /// CRC-32 of the base in flash.
        found: u32,
    },
    /// A block kind this decoder does not know.
    BlockKind(u8),
    /// A block that is empty, longer than [`MAX_BLOCK_LEN`](crate::format::MAX_BLOCK_LEN), or reaches beyond the image.
    BlockOutOfRange {
        /// The block's offset.
        offset: u32,
        /// The block's decoded length.
        len: u32,
    },
    /// A block that starts before the end of the previous one (each byte is written once).
    BlockOrder {
        /// The block's offset.
        offset: u32,
        /// End of the previous block.
        previous_end: u32,
    },
    /// A stored block whose coded length differs from its decoded length.
    StoredLength {
        /// The block's offset.
        offset: u32,
    },
    /// The coded data is invalid (at this image offset).
    Corrupt {
        /// Image offset of the byte being decoded.
        offset: u32,
    },
    /// A match that refers to bytes before the start of the dictionary.
    DistanceTooFar {
        /// Image offset of the match.
        offset: u32,
    },
    /// A match that would write past the end of its block.
    Expands {
        /// Image offset of the match.
        offset: u32,
    },
    /// The stream ended inside its header or inside a block.
    Truncated,
    /// Input after an error.
    Failed,
}

impl<E: core::fmt::Display> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Flash(e) => write!(f, "flash error: {e}"),
            Error::Header(HeaderError::BadMagic) => f.write_str("not a compressed image stream"),
            Error::Header(HeaderError::Version(v)) => {
                write!(f, "compressed stream version {v} is not supported")
            }
            Error::Header(HeaderError::Codec(c)) => write!(f, "codec {c} is not supported"),
            Error::Header(HeaderError::Props(p)) => {
                write!(
                    f,
                    "LZMA properties {p:#04x} need more decoder RAM than this agent has"
                )
            }
            Error::Header(HeaderError::Reserved) => f.write_str("reserved header bits are set"),
            Error::ImageTooLarge {
                image_len,
                slot_len,
            } => write!(
                f,
                "the stream expands to {image_len} bytes, more than the slot's {slot_len}"
            ),
            Error::BaseTooLarge { base_len, max } => {
                write!(
                    f,
                    "the delta's base has {base_len} bytes; at most {max} are available"
                )
            }
            Error::BaseMismatch { expected, found } => write!(
                f,
                "the delta was made for another base (CRC {expected:#010x}, flash has {found:#010x})"
            ),
            Error::BlockKind(k) => write!(f, "unknown block kind {k}"),
            Error::BlockOutOfRange { offset, len } => write!(
                f,
                "block of {len} bytes at offset {offset} is empty, too long or beyond the image"
            ),
            Error::BlockOrder {
                offset,
                previous_end,
            } => write!(
                f,
                "block at offset {offset} starts before the previous block's end {previous_end}"
            ),
            Error::StoredLength { offset } => {
                write!(
                    f,
                    "stored block at offset {offset} has a wrong coded length"
                )
            }
            Error::Corrupt { offset } => write!(f, "corrupt compressed data at offset {offset}"),
            Error::DistanceTooFar { offset } => {
                write!(
                    f,
                    "a match at offset {offset} refers before the dictionary's start"
                )
            }
            Error::Expands { offset } => {
                write!(
                    f,
                    "a match at offset {offset} writes past the end of its block"
                )
            }
            Error::Truncated => f.write_str("the compressed stream is truncated"),
            Error::Failed => f.write_str("the decoder stopped at an earlier error"),
        }
    }
}

impl<E: core::fmt::Debug + core::fmt::Display> core::error::Error for Error<E> {}
