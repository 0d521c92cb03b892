//! The host side: compressed and delta streams (needs std).
//!
//! Each block is a raw LZMA stream made by `lzma-rust2` (a maintained pure-Rust port of
//! XZ for Java, so it also runs in the browser) whose preset dictionary is everything the
//! device's dictionary holds when the block starts: the base, its padding, and the image
//! before the block. Blocks are independent of each other's coder state, so any subset
//! of them, in order, decodes onto a slot whose earlier bytes are already right.

use std::io::Write;

use lzma_rust2::{LzmaOptions, LzmaWriter};

use crate::flash::{OutOfRange, SliceFlash};
use crate::format::{
    BLOCK_HEADER_LEN, BLOCK_LZMA, BLOCK_STORED, BlockHeader, Header, MAX_BLOCK_LEN, Props,
    base_crc, base_span,
};
use crate::{Decoder, Error};

pub use crate::stream::{Block, Stream};

/// How to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Decoded bytes per block: the granularity of resume. A multiple of the flash sector
    /// keeps a resumed update to whole blocks; larger blocks compress a little better.
    pub block_size: u32,
    /// LZMA's model parameters (`lc + lp <= 1`, `pb <= 2` for the device's decoder).
    pub props: Props,
    /// LZMA's "nice length" (8..=273): longer searches compress better, slower.
    pub nice_len: u32,
}

/// The default parameters: 16 KiB blocks; lc 0, lp 1, pb 1 suit 16-bit-aligned code
/// such as Thumb-2 (see docs/CODECS.md for the measurements behind them).
pub const DEFAULT_OPTIONS: Options = Options {
    block_size: 16 * 1024,
    props: Props {
        lc: 0,
        lp: 1,
        pb: 1,
    },
    nice_len: 273,
};

impl Default for Options {
    fn default() -> Self {
        DEFAULT_OPTIONS
    }
}

/// Why a stream could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// The image (or base) is larger than 4 GiB.
    TooLarge,
    /// A block size of 0 or above [`MAX_BLOCK_LEN`].
    BlockSize(u32),
    /// LZMA parameters the device's decoder cannot use.
    Props(Props),
    /// The LZMA encoder failed.
    Lzma(String),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::TooLarge => f.write_str("image larger than 4 GiB"),
            EncodeError::BlockSize(s) => {
                write!(f, "block size {s} is outside 1..={MAX_BLOCK_LEN}")
            }
            EncodeError::Props(p) => write!(
                f,
                "LZMA parameters lc={} lp={} pb={} need more decoder RAM than devices have",
                p.lc, p.lp, p.pb
            ),
            EncodeError::Lzma(e) => write!(f, "LZMA encoder: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Compresses a whole image.
pub fn compress(image: &[u8], options: &Options) -> Result<Stream, EncodeError> {
    encode(None, image, options)
}

/// A delta from `base` (an image the device holds) to `image`.
pub fn delta(base: &[u8], image: &[u8], options: &Options) -> Result<Stream, EncodeError> {
    encode(Some(base), image, options)
}

fn encode(base: Option<&[u8]>, image: &[u8], o: &Options) -> Result<Stream, EncodeError> {
    let image_len = u32::try_from(image.len()).map_err(|_| EncodeError::TooLarge)?;
    let base_bytes = base.unwrap_or(&[]);
    let base_len = u32::try_from(base_bytes.len()).map_err(|_| EncodeError::TooLarge)?;
    if o.block_size == 0 || o.block_size > MAX_BLOCK_LEN {
        return Err(EncodeError::BlockSize(o.block_size));
    }
    if !o.props.supported() {
        return Err(EncodeError::Props(o.props));
    }
    let span = usize::try_from(base_span(base_len)).map_err(|_| EncodeError::TooLarge)?;
    let header = Header {
        props: o.props.to_byte(),
        delta: base.is_some(),
        image_len,
        base_len,
        base_crc: base.map_or(0, base_crc),
    };
    // The device's dictionary: base, 0xFF up to the aligned span, then the image.
    let mut dict = Vec::with_capacity(span + image.len());
    dict.extend_from_slice(base_bytes);
    dict.resize(span, 0xFF);
    dict.extend_from_slice(image);

    let mut blocks = Vec::new();
    for (i, data) in image.chunks(o.block_size as usize).enumerate() {
        let offset = (i * o.block_size as usize) as u32;
        let coded = lzma_block(&dict[..span + offset as usize], data, o)?;
        let (kind, coded) = if coded.len() < data.len() {
            (BLOCK_LZMA, coded)
        } else {
            (BLOCK_STORED, data.to_vec())
        };
        let bh = BlockHeader {
            kind,
            offset,
            decoded_len: data.len() as u32,
            coded_len: coded.len() as u32,
        };
        let mut bytes = Vec::with_capacity(BLOCK_HEADER_LEN + coded.len());
        bytes.extend_from_slice(&bh.to_bytes());
        bytes.extend_from_slice(&coded);
        blocks.push(Block {
            offset,
            len: data.len() as u32,
            bytes,
        });
    }
    Ok(Stream { header, blocks })
}

fn lzma_block(preset: &[u8], data: &[u8], o: &Options) -> Result<Vec<u8>, EncodeError> {
    let lz = |e: std::io::Error| EncodeError::Lzma(e.to_string());
    let mut opts = LzmaOptions::with_preset(9);
    opts.lc = o.props.lc.into();
    opts.lp = o.props.lp.into();
    opts.pb = o.props.pb.into();
    opts.nice_len = o
        .nice_len
        .clamp(LzmaOptions::NICE_LEN_MIN, LzmaOptions::NICE_LEN_MAX);
    let dict_size = (preset.len() + data.len()).max(4096);
    opts.dict_size = u32::try_from(dict_size).map_err(|_| EncodeError::TooLarge)?;
    if !preset.is_empty() {
        opts.preset_dict = Some(preset.to_vec());
    }
    let mut w =
        LzmaWriter::new(Vec::new(), &opts, false, false, Some(data.len() as u64)).map_err(lz)?;
    w.write_all(data).map_err(lz)?;
    w.finish().map_err(lz)
}

/// Decodes a whole stream in memory (the host's own check, tests): the image it
/// writes into a slot of `slot_len` bytes initially erased, with `base` as the base.
pub fn decode(stream: &[u8], base: &[u8], slot_len: u32) -> Result<Vec<u8>, Error<OutOfRange>> {
    let mut slot = vec![0xFF; slot_len as usize];
    let base_max = u32::try_from(base.len()).unwrap_or(u32::MAX);
    let mut decoder = Box::new(Decoder::new(slot_len, base_max));
    let mut flash = SliceFlash {
        base,
        target: &mut slot,
    };
    decoder.feed(&mut flash, stream)?;
    let summary = decoder.finish().map_err(|e| match e {
        Error::Failed => Error::Failed,
        _ => Error::Truncated,
    })?;
    slot.truncate(summary.header.image_len as usize);
    Ok(slot)
}
