//! The stream format, byte for byte (docs/CODECS.md is its specification).
//!
//! A stream is one [`Header`] followed by [`BlockHeader`]s, each followed by its coded
//! bytes. All integers are little-endian.

/// The first two bytes of every stream: "FZ".
pub const MAGIC: [u8; 2] = *b"FZ";
/// The format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// The only codec of version 1: LZMA whose dictionary is the flash (base, then target).
pub const CODEC_LZMA: u8 = 1;
/// Header flag: the stream is a delta; a base image is part of the dictionary.
pub const FLAG_DELTA: u8 = 1;

/// Length of the stream header.
pub const HEADER_LEN: usize = 20;
/// Length of a block header.
pub const BLOCK_HEADER_LEN: usize = 13;

/// Block kind: the coded bytes are the decoded bytes.
pub const BLOCK_STORED: u8 = 0;
/// Block kind: the coded bytes are a raw LZMA stream (no header, no end marker).
pub const BLOCK_LZMA: u8 = 1;

/// Largest decoded length of one block. It bounds the work of one block, and so the
/// work a single input byte can cause.
pub const MAX_BLOCK_LEN: u32 = 64 * 1024;

/// The base is followed in the dictionary by 0xFF bytes up to this alignment, so that
/// the target starts at an aligned dictionary position (LZMA's position contexts then
/// see the target's own alignment).
pub const BASE_ALIGN: u32 = 16;

/// Largest `lc + lp` the decoder accepts (its literal tables are sized for it).
pub const MAX_LC_PLUS_LP: u8 = 1;
/// Largest `pb` the decoder accepts.
pub const MAX_PB: u8 = 2;

/// The stream header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// LZMA properties byte: `(pb * 5 + lp) * 9 + lc`.
    pub props: u8,
    /// Whether a base image is part of the dictionary.
    pub delta: bool,
    /// Length of the decoded image.
    pub image_len: u32,
    /// Length of the base image (0 unless `delta`).
    pub base_len: u32,
    /// CRC-32 (ISO-HDLC, as the protocol's frames) of the base image (0 unless `delta`).
    pub base_crc: u32,
}

/// LZMA's three model parameters, from a properties byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Props {
    /// Literal context bits (high bits of the previous byte).
    pub lc: u8,
    /// Literal position bits.
    pub lp: u8,
    /// Position bits of the match models.
    pub pb: u8,
}

impl Props {
    /// Decodes a properties byte; `None` when it is out of LZMA's range.
    pub const fn from_byte(b: u8) -> Option<Props> {
        if b >= 9 * 5 * 5 {
            return None;
        }
        Some(Props {
            lc: b % 9,
            lp: (b / 9) % 5,
            pb: b / 45,
        })
    }

    /// The properties byte.
    pub const fn to_byte(self) -> u8 {
        (self.pb * 5 + self.lp) * 9 + self.lc
    }

    /// Whether this crate's decoder can use these parameters.
    pub const fn supported(self) -> bool {
        self.lc + self.lp <= MAX_LC_PLUS_LP && self.pb <= MAX_PB
    }
}

/// Base length rounded up to [`BASE_ALIGN`]: where the target starts in the dictionary.
pub const fn base_span(base_len: u32) -> u64 {
    let a = BASE_ALIGN as u64;
    (base_len as u64).div_ceil(a) * a
}

impl Header {
    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = VERSION;
        b[3] = CODEC_LZMA;
        b[4] = self.props;
        b[5] = if self.delta { FLAG_DELTA } else { 0 };
        b[8..12].copy_from_slice(&self.image_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.base_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.base_crc.to_le_bytes());
        b
    }

    /// Parses and checks a header (what this crate can decode, not any limit of a slot).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        if b[0..2] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if b[2] != VERSION {
            return Err(HeaderError::Version(b[2]));
        }
        if b[3] != CODEC_LZMA {
            return Err(HeaderError::Codec(b[3]));
        }
        match Props::from_byte(b[4]) {
            Some(p) if p.supported() => {}
            _ => return Err(HeaderError::Props(b[4])),
        }
        if b[5] & !FLAG_DELTA != 0 || b[6] != 0 || b[7] != 0 {
            return Err(HeaderError::Reserved);
        }
        let delta = b[5] & FLAG_DELTA != 0;
        let h = Header {
            props: b[4],
            delta,
            image_len: le32(&b[8..12]),
            base_len: le32(&b[12..16]),
            base_crc: le32(&b[16..20]),
        };
        if !delta && (h.base_len != 0 || h.base_crc != 0) {
            return Err(HeaderError::Reserved);
        }
        Ok(h)
    }
}

/// A header this crate cannot decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Not "FZ": not a compressed stream.
    BadMagic,
    /// A format version this crate does not know.
    Version(u8),
    /// A codec this crate does not know.
    Codec(u8),
    /// LZMA parameters out of range or beyond this decoder's tables.
    Props(u8),
    /// Reserved bits set, or base fields in a stream that is not a delta.
    Reserved,
}

/// A block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// [`BLOCK_STORED`] or [`BLOCK_LZMA`].
    pub kind: u8,
    /// Where the block's first decoded byte goes in the image.
    pub offset: u32,
    /// Number of decoded bytes (1..=[`MAX_BLOCK_LEN`]).
    pub decoded_len: u32,
    /// Number of coded bytes that follow this header.
    pub coded_len: u32,
}

impl BlockHeader {
    /// The block header's bytes.
    pub fn to_bytes(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut b = [0u8; BLOCK_HEADER_LEN];
        b[0] = self.kind;
        b[1..5].copy_from_slice(&self.offset.to_le_bytes());
        b[5..9].copy_from_slice(&self.decoded_len.to_le_bytes());
        b[9..13].copy_from_slice(&self.coded_len.to_le_bytes());
        b
    }

    /// Reads a block header (its values are checked by the decoder).
    pub fn parse(b: &[u8; BLOCK_HEADER_LEN]) -> BlockHeader {
        BlockHeader {
            kind: b[0],
            offset: le32(&b[1..5]),
            decoded_len: le32(&b[5..9]),
            coded_len: le32(&b[9..13]),
        }
    }
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(a)
}

/// The CRC of a base image, as the header carries it.
pub(crate) static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 of a whole base image (host side and tests).
pub fn base_crc(base: &[u8]) -> u32 {
    CRC32.checksum(base)
}

/// The CRC-32 of a base's bytes so far (`crc`, 0 for none) continued over `more`: the
/// CRC resumed from its finalized value (ISO-HDLC: reflected, final XOR).
#[inline(never)]
pub fn base_crc_more(crc: u32, more: &[u8]) -> u32 {
    let mut digest = CRC32.digest_with_initial((crc ^ u32::MAX).reverse_bits());
    digest.update(more);
    digest.finalize()
}
