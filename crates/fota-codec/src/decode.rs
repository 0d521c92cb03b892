//! The streaming decoder: no alloc, no panic, bounded RAM and bounded work per byte.
//!
//! Written by hand because no crate does this: the LZMA decoders on crates.io (lzma-rs,
//! lzma-rust2) keep their whole dictionary in RAM, allocated, and an agent with 16 KiB
//! of RAM cannot hold a dictionary as large as an image. Here the dictionary is the
//! flash: the base image (a delta's old image) followed by the target slot's bytes
//! already written, read back through [`Flash`]. Only the probability model (5.5 KiB),
//! one write chunk and a few input bytes live in RAM.
//!
//! The symbol decoding follows the LZMA specification (Igor Pavlov's LZMA SDK,
//! `lzma-specification.txt`); the encoder is `lzma-rust2` on the host.

use crate::flash::Flash;
use crate::format::{
    BLOCK_HEADER_LEN, BLOCK_LZMA, BLOCK_STORED, BlockHeader, CRC32, HEADER_LEN, Header,
    HeaderError, MAX_BLOCK_LEN, MAX_LC_PLUS_LP, MAX_PB, Props, base_span,
};

/// Size of the decoder's write buffer: writes to the target never cross a multiple of it.
pub const WRITE_CHUNK: u32 = 256;

/// The most input bytes one LZMA symbol can consume: at most 48 binary decisions (a match
/// with the longest length and a 30-bit distance: 2 state bits, 10 length bits, 6 slot
/// bits, 26 direct and 4 align bits), and the range coder takes at most one byte per
/// decision. A symbol is only started with this many bytes at hand, unless the block's
/// coded bytes are all there.
const IN_REQUIRED: usize = 48;

/// Bytes read from flash at a time when a match copies from it.
const READ_CHUNK: usize = 32;

// The probability model, laid out in one array (sizes for lc + lp <= 1 and pb <= 2).
const STATES: usize = 12;
const POS_STATES: usize = 1 << MAX_PB;
const IS_MATCH: usize = 0;
const IS_REP: usize = IS_MATCH + STATES * POS_STATES;
const IS_REP0: usize = IS_REP + STATES;
const IS_REP1: usize = IS_REP0 + STATES;
const IS_REP2: usize = IS_REP1 + STATES;
const IS_REP0_LONG: usize = IS_REP2 + STATES;
const POS_SLOT: usize = IS_REP0_LONG + STATES * POS_STATES;
const SPEC_POS: usize = POS_SLOT + 4 * 64;
const ALIGN: usize = SPEC_POS + 114;
const LEN_CHOICE: usize = 0;
const LEN_CHOICE2: usize = 1;
const LEN_LOW: usize = 2;
const LEN_MID: usize = LEN_LOW + POS_STATES * 8;
const LEN_HIGH: usize = LEN_MID + POS_STATES * 8;
const LEN_SIZE: usize = LEN_HIGH + 256;
const MATCH_LEN: usize = ALIGN + 16;
const REP_LEN: usize = MATCH_LEN + LEN_SIZE;
const LITERAL: usize = REP_LEN + LEN_SIZE;
const PROBS: usize = LITERAL + (0x300 << MAX_LC_PLUS_LP);

const PROB_INIT: u16 = 1024;
const TOP: u32 = 1 << 24;
const MATCH_LEN_MIN: u32 = 2;

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
    /// A block that is empty, longer than [`MAX_BLOCK_LEN`], or reaches beyond the image.
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

/// What a finished stream did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The stream's header.
    pub header: Header,
    /// Number of blocks decoded.
    pub blocks: u32,
    /// Number of bytes written to the target.
    pub written: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Header,
    /// A delta's base is being read for its CRC (work without input).
    Base,
    BlockHeader,
    Stored,
    Lzma,
    Failed,
}

/// The decoder's state apart from the input stash (so both can be borrowed at once).
struct Core {
    probs: [u16; PROBS],
    out: [u8; WRITE_CHUNK as usize],
    /// Bytes in `out`: the image bytes `[pos - out_len, pos)`.
    out_len: u32,
    /// Image offset of the next byte to write.
    pos: u32,
    /// End of the current block.
    block_end: u32,
    /// Dictionary geometry: the base's length and where the target starts.
    base_len: u32,
    base_span: u32,
    props: Props,
    range: u32,
    code: u32,
    rc_ready: bool,
    state: u8,
    reps: [u32; 4],
}

/// Input bytes not yet used: a stash from the previous call, then the new bytes.
struct Cursor<'a> {
    a: &'a [u8],
    b: &'a [u8],
    pos: usize,
    overrun: bool,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        (self.a.len() + self.b.len()).saturating_sub(self.pos)
    }

    fn next(&mut self) -> u8 {
        let byte = if self.pos < self.a.len() {
            self.a.get(self.pos).copied()
        } else {
            self.b.get(self.pos - self.a.len()).copied()
        };
        self.pos += 1;
        byte.unwrap_or_else(|| {
            self.overrun = true;
            0
        })
    }
}

/// The streaming decoder of compressed and delta images.
///
/// Feed it the stream in pieces of any size ([`Decoder::feed`]); it writes the image
/// through [`Flash::write_target`] and reads its dictionary through the other
/// [`Flash`] methods. [`Decoder::finish`] checks that the stream ended where it may.
pub struct Decoder {
    core: Core,
    stash: [u8; IN_REQUIRED],
    stash_len: u8,
    hdr: [u8; HEADER_LEN],
    hdr_len: u8,
    stage: Stage,
    /// The stream's header, valid when `have_header` (a flag, not an `Option`: so that a
    /// new decoder is all zeros and a `static` holding one stays in `.bss`).
    header: Header,
    have_header: bool,
    slot_len: u32,
    base_max: u32,
    /// Coded bytes of the current block not received yet.
    coded_unread: u32,
    block_offset: u32,
    previous_end: u32,
    blocks: u32,
    written: u32,
    /// The base's CRC check: bytes read so far, and the CRC-32 of them (finalized form).
    base_at: u32,
    base_crc: u32,
}

type Res<T, E> = Result<T, Error<E>>;

impl Decoder {
    /// A decoder for a target slot of `slot_len` bytes and a base of at most `base_max`
    /// bytes (0 when no base can be read: deltas with a base are then refused).
    pub const fn new(slot_len: u32, base_max: u32) -> Decoder {
        Decoder {
            core: Core {
                // Set at each LZMA block's start: zero here keeps a new decoder all zeros
                // (a `static` of it stays in `.bss`).
                probs: [0; PROBS],
                out: [0; WRITE_CHUNK as usize],
                out_len: 0,
                pos: 0,
                block_end: 0,
                base_len: 0,
                base_span: 0,
                props: Props {
                    lc: 0,
                    lp: 0,
                    pb: 0,
                },
                range: 0,
                code: 0,
                rc_ready: false,
                state: 0,
                reps: [0; 4],
            },
            stash: [0; IN_REQUIRED],
            stash_len: 0,
            hdr: [0; HEADER_LEN],
            hdr_len: 0,
            stage: Stage::Header,
            header: Header {
                props: 0,
                delta: false,
                image_len: 0,
                base_len: 0,
                base_crc: 0,
            },
            have_header: false,
            slot_len,
            base_max,
            coded_unread: 0,
            block_offset: 0,
            previous_end: 0,
            blocks: 0,
            written: 0,
            base_at: 0,
            base_crc: 0,
        }
    }

    /// Make the decoder as new for another stream, in place (a device keeps one decoder
    /// in a `static` and never builds a second one on its stack). The probability model
    /// is reset at each block's start, so it is left as it is here.
    pub fn reset(&mut self, slot_len: u32, base_max: u32) {
        let c = &mut self.core;
        c.out_len = 0;
        c.pos = 0;
        c.block_end = 0;
        c.base_len = 0;
        c.base_span = 0;
        c.props = Props {
            lc: 0,
            lp: 0,
            pb: 0,
        };
        c.range = 0;
        c.code = 0;
        c.rc_ready = false;
        c.state = 0;
        c.reps = [0; 4];
        self.stash_len = 0;
        self.hdr_len = 0;
        self.stage = Stage::Header;
        self.have_header = false;
        self.slot_len = slot_len;
        self.base_max = base_max;
        self.coded_unread = 0;
        self.block_offset = 0;
        self.previous_end = 0;
        self.blocks = 0;
        self.written = 0;
        self.base_at = 0;
        self.base_crc = 0;
    }

    /// The stream's header, once it was read and accepted.
    pub fn header(&self) -> Option<Header> {
        self.header_opt()
    }

    /// Bytes written to the target so far.
    pub fn written(&self) -> u32 {
        self.written
    }

    /// Decodes `input`, the next bytes of the stream, writing what it decodes.
    ///
    /// Work is bounded by the input: the stream header (when it is a delta) reads the
    /// base once to check its CRC; after that each block writes at most
    /// [`MAX_BLOCK_LEN`] bytes and reads at most three bytes of flash per byte written.
    pub fn feed<F: Flash>(&mut self, flash: &mut F, input: &[u8]) -> Res<(), F::Error> {
        let used = self.feed_bounded(flash, input, u32::MAX)?;
        if used == input.len() {
            Ok(())
        } else {
            // An unlimited budget takes every byte; stay safe anyway.
            self.stage = Stage::Failed;
            Err(Error::Failed)
        }
    }

    /// Decodes from `input` until it is used up or about `budget` bytes of flash were
    /// written (or read, for a delta's base check); returns the input bytes consumed.
    /// Call again with the rest (and, while [`Decoder::has_work`], even with no input).
    ///
    /// This is how a device keeps each step of its main loop short: one call does at most
    /// `budget` bytes of flash work, plus one LZMA symbol (273 bytes) and one write
    /// chunk ([`WRITE_CHUNK`]) beyond it.
    pub fn feed_bounded<F: Flash>(
        &mut self,
        flash: &mut F,
        input: &[u8],
        budget: u32,
    ) -> Res<usize, F::Error> {
        if self.stage == Stage::Failed {
            return Err(Error::Failed);
        }
        let r = self.feed_inner(flash, input, budget.max(1));
        if r.is_err() {
            self.stage = Stage::Failed;
        }
        r
    }

    /// Whether the decoder has work to do without more input: a delta's base check, or
    /// the symbols of a block whose coded bytes have all arrived.
    pub fn has_work(&self) -> bool {
        match self.stage {
            Stage::Base => true,
            Stage::Lzma => self.coded_unread == 0,
            _ => false,
        }
    }

    /// Ends the stream: an error if it stopped inside its header or a block.
    pub fn finish(&mut self) -> Res<Summary, core::convert::Infallible> {
        match (self.stage, self.header_opt()) {
            (Stage::BlockHeader, Some(header)) if self.hdr_len == 0 => Ok(Summary {
                header,
                blocks: self.blocks,
                written: self.written,
            }),
            (Stage::Failed, _) => Err(Error::Failed),
            _ => Err(Error::Truncated),
        }
    }

    fn feed_inner<F: Flash>(
        &mut self,
        flash: &mut F,
        all: &[u8],
        budget: u32,
    ) -> Res<usize, F::Error> {
        let mut input = all;
        let mut work = 0u32;
        while work < budget {
            match self.stage {
                Stage::Base => work = work.saturating_add(self.check_base(flash, budget - work)?),
                Stage::Lzma if !input.is_empty() || self.coded_unread == 0 => {
                    let (used, wrote) = self.lzma(flash, input, budget - work)?;
                    input = input.get(used..).unwrap_or(&[]);
                    work = work.saturating_add(wrote);
                }
                _ if input.is_empty() => break,
                Stage::Header => {
                    input = self.fill_hdr(input, HEADER_LEN);
                    if usize::from(self.hdr_len) == HEADER_LEN {
                        self.start_stream()?;
                    }
                }
                Stage::BlockHeader => {
                    input = self.fill_hdr(input, BLOCK_HEADER_LEN);
                    if usize::from(self.hdr_len) == BLOCK_HEADER_LEN {
                        self.start_block()?;
                    }
                }
                Stage::Stored => {
                    let left = self.core.block_end - self.core.pos;
                    let take = input.len().min(left as usize).min((budget - work) as usize);
                    let (now, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
                    for &b in now {
                        self.core.push(flash, b)?;
                    }
                    input = rest;
                    work = work.saturating_add(take as u32);
                    if self.core.pos == self.core.block_end {
                        self.end_block(flash)?;
                    }
                }
                Stage::Lzma => break,
                Stage::Failed => return Err(Error::Failed),
            }
        }
        Ok(all.len() - input.len())
    }

    /// Reads up to about `budget` bytes of the base for its CRC; at the end, compares it
    /// with the header's, so that a patch for another base is refused before anything is
    /// written. Returns the bytes read.
    fn check_base<F: Flash>(&mut self, flash: &mut F, budget: u32) -> Res<u32, F::Error> {
        let Some(h) = self.header_opt() else {
            return Err(Error::Failed);
        };
        let mut read = 0u32;
        while self.base_at < h.base_len && read < budget {
            let n = (h.base_len - self.base_at).min(WRITE_CHUNK);
            let buf = self.core.out.get_mut(..n as usize).ok_or(Error::Failed)?;
            flash.read_base(self.base_at, buf).map_err(Error::Flash)?;
            // The CRC resumed from its finalized value (ISO-HDLC: reflected, final XOR).
            let mut digest = CRC32.digest_with_initial((self.base_crc ^ u32::MAX).reverse_bits());
            digest.update(buf);
            self.base_crc = digest.finalize();
            self.base_at += n;
            read += n;
        }
        if self.base_at >= h.base_len {
            if self.base_crc != h.base_crc {
                return Err(Error::BaseMismatch {
                    expected: h.base_crc,
                    found: self.base_crc,
                });
            }
            self.stage = Stage::BlockHeader;
        }
        Ok(read.max(1))
    }

    fn header_opt(&self) -> Option<Header> {
        self.have_header.then_some(self.header)
    }

    fn fill_hdr<'a>(&mut self, input: &'a [u8], want: usize) -> &'a [u8] {
        let have = usize::from(self.hdr_len);
        let take = want.saturating_sub(have).min(input.len());
        if let (Some(dst), Some(src)) = (self.hdr.get_mut(have..have + take), input.get(..take)) {
            dst.copy_from_slice(src);
        }
        self.hdr_len = (have + take) as u8;
        input.get(take..).unwrap_or(&[])
    }

    fn start_stream<E>(&mut self) -> Res<(), E> {
        let h = Header::parse(&self.hdr).map_err(Error::Header)?;
        if h.image_len > self.slot_len {
            return Err(Error::ImageTooLarge {
                image_len: h.image_len,
                slot_len: self.slot_len,
            });
        }
        if h.delta && h.base_len > self.base_max {
            return Err(Error::BaseTooLarge {
                base_len: h.base_len,
                max: self.base_max,
            });
        }
        let span = base_span(h.base_len);
        self.core.base_len = h.base_len;
        // Deltas whose base and image together pass 4 GiB are not representable anyway.
        self.core.base_span = u32::try_from(span).map_err(|_| Error::BaseTooLarge {
            base_len: h.base_len,
            max: self.base_max,
        })?;
        self.core.props =
            Props::from_byte(h.props).ok_or(Error::Header(HeaderError::Props(h.props)))?;
        self.header = h;
        self.have_header = true;
        self.hdr_len = 0;
        // A delta reads its whole base once, in bounded pieces, before any write.
        self.base_at = 0;
        self.base_crc = 0;
        self.stage = if h.delta {
            Stage::Base
        } else {
            Stage::BlockHeader
        };
        Ok(())
    }

    fn start_block<E>(&mut self) -> Res<(), E> {
        let mut raw = [0u8; BLOCK_HEADER_LEN];
        if let Some(src) = self.hdr.get(..BLOCK_HEADER_LEN) {
            raw.copy_from_slice(src);
        }
        self.hdr_len = 0;
        let b = BlockHeader::parse(&raw);
        let image_len = self.header_opt().map_or(0, |h| h.image_len);
        let end = u64::from(b.offset) + u64::from(b.decoded_len);
        if b.decoded_len == 0 || b.decoded_len > MAX_BLOCK_LEN || end > u64::from(image_len) {
            return Err(Error::BlockOutOfRange {
                offset: b.offset,
                len: b.decoded_len,
            });
        }
        if b.offset < self.previous_end {
            return Err(Error::BlockOrder {
                offset: b.offset,
                previous_end: self.previous_end,
            });
        }
        let c = &mut self.core;
        c.pos = b.offset;
        c.block_end = end as u32;
        c.out_len = 0;
        self.coded_unread = b.coded_len;
        self.block_offset = b.offset;
        self.stash_len = 0;
        match b.kind {
            BLOCK_STORED => {
                if b.coded_len != b.decoded_len {
                    return Err(Error::StoredLength { offset: b.offset });
                }
                self.stage = Stage::Stored;
            }
            BLOCK_LZMA => {
                // The range coder's first five bytes at least.
                if b.coded_len < 5 {
                    return Err(Error::Corrupt { offset: b.offset });
                }
                c.probs = [PROB_INIT; PROBS];
                c.state = 0;
                c.reps = [0; 4];
                c.rc_ready = false;
                c.range = u32::MAX;
                c.code = 0;
                self.stage = Stage::Lzma;
            }
            k => return Err(Error::BlockKind(k)),
        }
        Ok(())
    }

    fn end_block<F: Flash>(&mut self, flash: &mut F) -> Res<(), F::Error> {
        self.core.flush(flash)?;
        self.written += self.core.block_end - self.block_offset;
        self.previous_end = self.core.block_end;
        self.blocks += 1;
        self.stage = Stage::BlockHeader;
        Ok(())
    }

    /// Decodes LZMA symbols from `input` (at most the block's coded bytes), stopping once
    /// `budget` bytes are written. Returns the input bytes consumed and the bytes written.
    fn lzma<F: Flash>(
        &mut self,
        flash: &mut F,
        input: &[u8],
        budget: u32,
    ) -> Res<(usize, u32), F::Error> {
        let take = input.len().min(self.coded_unread as usize);
        let chunk = input.get(..take).unwrap_or(input);
        let last = self.coded_unread as usize == take;
        let stash_len = usize::from(self.stash_len);
        let mut cur = Cursor {
            a: self.stash.get(..stash_len).unwrap_or(&[]),
            b: chunk,
            pos: 0,
            overrun: false,
        };
        let core = &mut self.core;
        let start = core.pos;
        while core.pos < core.block_end
            && (last || cur.remaining() >= IN_REQUIRED)
            && core.pos - start < budget
        {
            if core.rc_ready {
                core.symbol(flash, &mut cur)?;
            } else {
                core.rc_init(&mut cur)?;
            }
            if cur.overrun {
                return Err(Error::Corrupt { offset: core.pos });
            }
        }
        let wrote = core.pos - start;
        if core.pos == core.block_end {
            // The block is complete: its coded bytes must be exactly used up.
            if !last || cur.remaining() != 0 || core.code != 0 {
                return Err(Error::Corrupt { offset: core.pos });
            }
            self.coded_unread = 0;
            self.end_block(flash)?;
            return Ok((take, wrote));
        }
        let mut keep = [0u8; IN_REQUIRED];
        if !last && cur.remaining() < IN_REQUIRED {
            // Keep the bytes not used yet (fewer than IN_REQUIRED) for the next call.
            let n = cur.remaining();
            for slot in keep.iter_mut().take(n) {
                *slot = cur.next();
            }
            self.stash = keep;
            self.stash_len = n as u8;
            self.coded_unread -= take as u32;
            return Ok((take, wrote));
        }
        // Stopped by the budget: the stash keeps what it still holds, and the input bytes
        // not used are handed back.
        let used_b = if cur.pos < stash_len {
            let n = stash_len - cur.pos;
            for slot in keep.iter_mut().take(n) {
                *slot = cur.next();
            }
            self.stash = keep;
            self.stash_len = n as u8;
            0
        } else {
            self.stash_len = 0;
            cur.pos - stash_len
        };
        self.coded_unread -= used_b as u32;
        Ok((used_b, wrote))
    }
}

impl Core {
    fn rc_init<E>(&mut self, cur: &mut Cursor) -> Res<(), E> {
        let first = cur.next();
        let mut code = 0u32;
        for _ in 0..4 {
            code = (code << 8) | u32::from(cur.next());
        }
        if first != 0 || code == u32::MAX {
            return Err(Error::Corrupt { offset: self.pos });
        }
        self.code = code;
        self.range = u32::MAX;
        self.rc_ready = true;
        Ok(())
    }

    #[inline(always)]
    fn normalize(&mut self, cur: &mut Cursor) {
        if self.range < TOP {
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(cur.next());
        }
    }

    fn bit(&mut self, cur: &mut Cursor, i: usize) -> u32 {
        let Some(p) = self.probs.get_mut(i) else {
            // Indices are computed from bounded values and always in range; a bit that
            // cannot be decoded ends the stream as corrupt.
            cur.overrun = true;
            return 0;
        };
        let prob = u32::from(*p);
        let bound = (self.range >> 11) * prob;
        let bit = if self.code < bound {
            self.range = bound;
            *p = (prob + ((2048 - prob) >> 5)) as u16;
            0
        } else {
            self.range -= bound;
            self.code -= bound;
            *p = (prob - (prob >> 5)) as u16;
            1
        };
        self.normalize(cur);
        bit
    }

    fn tree(&mut self, cur: &mut Cursor, base: usize, bits: u32) -> u32 {
        let mut m = 1u32;
        for _ in 0..bits {
            m = (m << 1) | self.bit(cur, base + m as usize);
        }
        m - (1 << bits)
    }

    /// Reverse bit tree whose node `m` (from 1) is the probability `base1 + m - 1`.
    fn reverse(&mut self, cur: &mut Cursor, base1: usize, bits: u32) -> u32 {
        let mut m = 1u32;
        let mut sym = 0u32;
        for i in 0..bits {
            let b = self.bit(cur, base1 + m as usize - 1);
            m = (m << 1) | b;
            sym |= b << i;
        }
        sym
    }

    fn direct(&mut self, cur: &mut Cursor, bits: u32) -> u32 {
        let mut r = 0u32;
        for _ in 0..bits {
            self.range >>= 1;
            let b = if self.code >= self.range {
                self.code -= self.range;
                1
            } else {
                0
            };
            r = (r << 1) | b;
            self.normalize(cur);
        }
        r
    }

    fn len(&mut self, cur: &mut Cursor, base: usize, pos_state: usize) -> u32 {
        if self.bit(cur, base + LEN_CHOICE) == 0 {
            self.tree(cur, base + LEN_LOW + pos_state * 8, 3)
        } else if self.bit(cur, base + LEN_CHOICE2) == 0 {
            8 + self.tree(cur, base + LEN_MID + pos_state * 8, 3)
        } else {
            16 + self.tree(cur, base + LEN_HIGH, 8)
        }
    }

    fn distance(&mut self, cur: &mut Cursor, len: u32) -> u32 {
        let len_state = len.min(3) as usize;
        let slot = self.tree(cur, POS_SLOT + len_state * 64, 6);
        if slot < 4 {
            return slot;
        }
        let direct = (slot >> 1) - 1;
        let mut dist = (2 | (slot & 1)) << direct;
        if slot < 14 {
            let base1 = SPEC_POS + (dist - slot) as usize;
            dist = dist.wrapping_add(self.reverse(cur, base1, direct));
        } else {
            dist = dist.wrapping_add(self.direct(cur, direct - 4) << 4);
            dist = dist.wrapping_add(self.reverse(cur, ALIGN + 1, 4));
        }
        dist
    }

    /// Position of the next byte in the dictionary (for LZMA's position contexts).
    fn dict_pos(&self) -> u32 {
        self.base_span.wrapping_add(self.pos)
    }

    fn symbol<F: Flash>(&mut self, flash: &mut F, cur: &mut Cursor) -> Res<(), F::Error> {
        let pb_mask = (1u32 << self.props.pb) - 1;
        let pos_state = (self.dict_pos() & pb_mask) as usize;
        let state = usize::from(self.state);
        if self.bit(cur, IS_MATCH + state * POS_STATES + pos_state) == 0 {
            return self.literal(flash, cur);
        }
        let len;
        if self.bit(cur, IS_REP + state) == 0 {
            len = self.len(cur, MATCH_LEN, pos_state);
            self.state = if state < 7 { 7 } else { 10 };
            let dist = self.distance(cur, len);
            self.reps = [dist, self.reps[0], self.reps[1], self.reps[2]];
        } else if self.bit(cur, IS_REP0 + state) == 0 {
            if self.bit(cur, IS_REP0_LONG + state * POS_STATES + pos_state) == 0 {
                self.state = if state < 7 { 9 } else { 11 };
                return self.copy(flash, 1, cur.overrun);
            }
            len = self.len(cur, REP_LEN, pos_state);
            self.state = if state < 7 { 8 } else { 11 };
        } else {
            let [r0, r1, r2, r3] = self.reps;
            self.reps = if self.bit(cur, IS_REP1 + state) == 0 {
                [r1, r0, r2, r3]
            } else if self.bit(cur, IS_REP2 + state) == 0 {
                [r2, r0, r1, r3]
            } else {
                [r3, r0, r1, r2]
            };
            len = self.len(cur, REP_LEN, pos_state);
            self.state = if state < 7 { 8 } else { 11 };
        }
        self.copy(flash, len + MATCH_LEN_MIN, cur.overrun)
    }

    fn literal<F: Flash>(&mut self, flash: &mut F, cur: &mut Cursor) -> Res<(), F::Error> {
        let Props { lc, lp, .. } = self.props;
        let prev = if lc == 0 || (self.pos == 0 && self.base_span == 0) {
            0
        } else {
            self.dict_byte(flash, 1)?
        };
        let lp_mask = (1u32 << lp) - 1;
        let ctx = ((self.dict_pos() & lp_mask) << lc) + (u32::from(prev) >> (8 - lc));
        let base = LITERAL + 0x300 * ctx as usize;
        let mut sym = 1u32;
        if self.state >= 7 {
            let mut mb = u32::from(self.dict_byte(flash, self.reps[0].wrapping_add(1))?);
            loop {
                let match_bit = (mb >> 7) & 1;
                mb <<= 1;
                let b = self.bit(cur, base + 0x100 + ((match_bit << 8) + sym) as usize);
                sym = (sym << 1) | b;
                if match_bit != b || sym >= 0x100 {
                    break;
                }
            }
        }
        while sym < 0x100 {
            sym = (sym << 1) | self.bit(cur, base + sym as usize);
        }
        self.state = match self.state {
            0..4 => 0,
            s @ 4..10 => s - 3,
            s => s - 6,
        };
        if cur.overrun {
            return Ok(());
        }
        self.push(flash, sym as u8)
    }

    /// The byte `dist` (>= 1) positions back in the dictionary.
    fn dict_byte<F: Flash>(&mut self, flash: &mut F, dist: u32) -> Res<u8, F::Error> {
        let mut b = [0u8; 1];
        self.fetch(flash, dist, &mut b)?;
        Ok(b[0])
    }

    /// Reads `buf.len()` dictionary bytes starting `dist` positions back; `buf` must not
    /// reach past the flushed target when it starts in the target, nor past the base's
    /// span when it starts in the base (callers size it so).
    fn fetch<F: Flash>(&mut self, flash: &mut F, dist: u32, buf: &mut [u8]) -> Res<(), F::Error> {
        let n = buf.len() as u32;
        if dist == 0 {
            return Err(Error::Corrupt { offset: self.pos });
        }
        if dist <= self.out_len {
            let i = (self.out_len - dist) as usize;
            let src = self
                .out
                .get(i..i + buf.len())
                .ok_or(Error::Corrupt { offset: self.pos })?;
            buf.copy_from_slice(src);
        } else if dist <= self.pos {
            let t = self.pos - dist;
            debug_assert!(t + n <= self.pos - self.out_len);
            flash.read_target(t, buf).map_err(Error::Flash)?;
        } else {
            let back = dist - self.pos;
            if back > self.base_span {
                return Err(Error::DistanceTooFar { offset: self.pos });
            }
            let at = self.base_span - back;
            if at >= self.base_len {
                buf.fill(0xFF);
            } else {
                debug_assert!(at + n <= self.base_len);
                flash.read_base(at, buf).map_err(Error::Flash)?;
            }
        }
        Ok(())
    }

    /// Copies a match of `len` bytes from `reps[0] + 1` positions back.
    fn copy<F: Flash>(&mut self, flash: &mut F, len: u32, overrun: bool) -> Res<(), F::Error> {
        if overrun {
            return Ok(());
        }
        if len > self.block_end - self.pos {
            return Err(Error::Expands { offset: self.pos });
        }
        let dist = self.reps[0].wrapping_add(1);
        let mut left = len;
        let mut buf = [0u8; READ_CHUNK];
        while left > 0 {
            // The largest piece that lies in one place (RAM, target flash, base, padding).
            let room = if dist <= self.out_len {
                1
            } else if dist <= self.pos {
                dist - self.out_len
            } else {
                let back = dist - self.pos;
                let at = self.base_span.saturating_sub(back);
                if at >= self.base_len {
                    self.base_span - at
                } else {
                    self.base_len - at
                }
            };
            let n = left.min(room).min(READ_CHUNK as u32);
            let piece = buf
                .get_mut(..n as usize)
                .ok_or(Error::Corrupt { offset: self.pos })?;
            self.fetch(flash, dist, piece)?;
            for &b in piece.iter() {
                self.push(flash, b)?;
            }
            left -= n;
        }
        Ok(())
    }

    fn push<F: Flash>(&mut self, flash: &mut F, b: u8) -> Res<(), F::Error> {
        if let Some(slot) = self.out.get_mut(self.out_len as usize) {
            *slot = b;
        }
        self.out_len += 1;
        self.pos += 1;
        if self.pos.is_multiple_of(WRITE_CHUNK) || self.out_len >= WRITE_CHUNK {
            self.flush(flash)?;
        }
        Ok(())
    }

    fn flush<F: Flash>(&mut self, flash: &mut F) -> Res<(), F::Error> {
        if self.out_len > 0 {
            let data = self.out.get(..self.out_len as usize).ok_or(Error::Failed)?;
            flash
                .write_target(self.pos - self.out_len, data)
                .map_err(Error::Flash)?;
            self.out_len = 0;
        }
        Ok(())
    }
}

/// RAM of one [`Decoder`], in bytes (the same on every target: no pointers inside).
pub const DECODER_RAM: usize = core::mem::size_of::<Decoder>();
