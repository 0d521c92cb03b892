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
    BLOCK_HEADER_LEN, BLOCK_LZMA, BLOCK_STORED, BlockHeader, HEADER_LEN, Header, HeaderError,
    MAX_BLOCK_LEN, MAX_LC_PLUS_LP, MAX_PB, Props, base_span,
};

mod error;
mod lzma;
mod range;
mod window;

pub use error::Error;

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
        if self.base_at == 0
            && let Some(crc) = flash.known_base_crc(h.base_len)
        {
            // Known without a read (`Flash::known_base_crc`): compared below as read.
            self.base_crc = crc;
            self.base_at = h.base_len;
        }
        while self.base_at < h.base_len && read < budget {
            let n = (h.base_len - self.base_at).min(WRITE_CHUNK);
            let buf = self.core.out.get_mut(..n as usize).ok_or(Error::Failed)?;
            flash.read_base(self.base_at, buf).map_err(Error::Flash)?;
            self.base_crc = crate::format::base_crc_more(self.base_crc, buf);
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
}

/// RAM of one [`Decoder`], in bytes (the same on every target: no pointers inside).
pub const DECODER_RAM: usize = core::mem::size_of::<Decoder>();
