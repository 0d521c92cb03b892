//! A compressed or delta stream as blocks (needs std): what the encoder makes, and what
//! a host that has the stream's bytes from elsewhere (the web app's encoder runs in a
//! separately loaded module) reads back to resume by blocks.

use crate::format::{BLOCK_HEADER_LEN, BlockHeader, HEADER_LEN, Header, HeaderError};

/// One encoded block: its place in the image and its bytes (block header included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Image offset of the block's first byte.
    pub offset: u32,
    /// Decoded length.
    pub len: u32,
    /// The block header and the coded bytes, as sent.
    pub bytes: Vec<u8>,
}

/// An encoded image: a header and blocks in image order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    pub(crate) header: Header,
    pub(crate) blocks: Vec<Block>,
}

impl Stream {
    /// The stream header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The blocks, in image order, covering the whole image.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Length of the whole stream in bytes.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.blocks.iter().map(|b| b.bytes.len()).sum::<usize>()
    }

    /// Whether the stream is only a header (an empty image).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Reads a whole stream back into its blocks (the stream's bytes made by an encoder
    /// elsewhere, the web app's worker): checks the header, that each block follows the
    /// one before it in the image, and that they cover the image exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Stream, StreamError> {
        let (head, mut rest) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(StreamError::Truncated)?;
        let header = Header::parse(head).map_err(StreamError::Header)?;
        let mut blocks = Vec::new();
        let mut at = 0u32;
        while !rest.is_empty() {
            let (bh, after) = rest
                .split_first_chunk::<BLOCK_HEADER_LEN>()
                .ok_or(StreamError::Truncated)?;
            let bh = BlockHeader::parse(bh);
            if bh.offset != at || bh.decoded_len == 0 {
                return Err(StreamError::Blocks);
            }
            let coded = usize::try_from(bh.coded_len).map_err(|_| StreamError::Truncated)?;
            if after.len() < coded {
                return Err(StreamError::Truncated);
            }
            let len = BLOCK_HEADER_LEN + coded;
            blocks.push(Block {
                offset: bh.offset,
                len: bh.decoded_len,
                bytes: rest[..len].to_vec(),
            });
            rest = &rest[len..];
            at = at.checked_add(bh.decoded_len).ok_or(StreamError::Blocks)?;
        }
        if at != header.image_len {
            return Err(StreamError::Blocks);
        }
        Ok(Stream { header, blocks })
    }

    /// The whole stream.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.select(|_, _| true)
    }

    /// The header and the blocks for which `keep(offset, len)` holds: what a resumed
    /// update sends when the slot already holds the other blocks' bytes.
    pub fn select(&self, mut keep: impl FnMut(u32, u32) -> bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.header.to_bytes());
        for b in &self.blocks {
            if keep(b.offset, b.len) {
                out.extend_from_slice(&b.bytes);
            }
        }
        out
    }
}

/// Why bytes are not a whole stream ([`Stream::from_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// It ends inside the header or a block.
    Truncated,
    /// A header this crate cannot decode.
    Header(HeaderError),
    /// Blocks out of order, overlapping, or not covering the image.
    Blocks,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Truncated => f.write_str("the stream is cut short"),
            StreamError::Header(e) => write!(f, "the stream header is not valid ({e:?})"),
            StreamError::Blocks => {
                f.write_str("the stream's blocks do not cover the image in order")
            }
        }
    }
}

impl std::error::Error for StreamError {}
