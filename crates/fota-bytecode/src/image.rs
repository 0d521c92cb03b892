//! The program image: a 64-byte header, then the code. `docs/BYTECODE.md` is the
//! specification; this module is its implementation.
//!
//! | offset | size | field                                                     |
//! |-------:|-----:|-----------------------------------------------------------|
//! |      0 |    4 | magic `b"FBC1"`                                           |
//! |      4 |    2 | format version, `1`                                       |
//! |      6 |    2 | flags, `0`                                                |
//! |      8 |    4 | code length in bytes                                      |
//! |     12 |    4 | CRC-32 of bytes 0..12, 16..64 and the code                |
//! |     16 |   16 | version, UTF-8, NUL-padded                                |
//! |     32 |   32 | name, UTF-8, NUL-padded                                   |
//! |     64 |    … | code                                                      |

/// The first four bytes of every program image.
pub const MAGIC: [u8; 4] = *b"FBC1";
/// The format this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Header bytes before the code.
pub const HEADER_LEN: usize = 64;
/// Longest version text, in bytes.
pub const MAX_VERSION: usize = 16;
/// Longest name, in bytes.
pub const MAX_NAME: usize = 32;

const OFF_LEN: usize = 8;
const OFF_CRC: usize = 12;
const OFF_VERSION: usize = 16;
const OFF_NAME: usize = 32;

/// CRC-32/ISO-HDLC, the CRC of the wire protocol and of the record.
pub(crate) static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Where a program's bytes are read from: a slice, or a flash slot read in pieces.
pub trait Source {
    /// Fill `buf` from byte `offset` of the image; false if it cannot be read (out of
    /// range or a flash error).
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> bool;
}

impl Source for &[u8] {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> bool {
        let start = offset as usize;
        match start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// Why an image is not a program this VM can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// The header could not be read.
    Unreadable,
    /// No `FBC1` magic: not a program (erased flash, another kind of image).
    NotAProgram,
    /// A format version this VM does not know. Field: the version.
    UnknownFormat(u16),
    /// The code is longer than the slot (or than `u32`). Field: the code length.
    TooLong(u32),
    /// The CRC does not match: a torn or damaged image.
    Damaged,
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::Unreadable => write!(f, "the image cannot be read"),
            ImageError::NotAProgram => write!(f, "no program (no FBC1 header)"),
            ImageError::UnknownFormat(v) => write!(f, "program format {v} is not known"),
            ImageError::TooLong(n) => write!(f, "code length {n} does not fit the slot"),
            ImageError::Damaged => write!(f, "the program's CRC does not match"),
        }
    }
}

impl core::error::Error for ImageError {}

/// A checked header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes of code after the header.
    pub code_len: u32,
    /// The CRC-32 the header carries (and the image matches).
    pub crc: u32,
    version: [u8; MAX_VERSION],
    name: [u8; MAX_NAME],
}

impl Header {
    /// The version text (empty if it is not UTF-8).
    pub fn version(&self) -> &str {
        padded(&self.version)
    }

    /// The program's name (empty if it is not UTF-8).
    pub fn name(&self) -> &str {
        padded(&self.name)
    }

    /// Header plus code: the bytes an update writes.
    pub fn image_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.code_len)
    }
}

fn padded(field: &[u8]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field
        .get(..end)
        .and_then(|t| core::str::from_utf8(t).ok())
        .unwrap_or("")
}

/// Read and check the program at the start of `src`, which is at most `max_len` bytes
/// long (a slot's size): magic, format, length and the CRC over the whole image.
pub fn check<S: Source + ?Sized>(src: &mut S, max_len: u32) -> Result<Header, ImageError> {
    let mut h = [0u8; HEADER_LEN];
    if !src.read(0, &mut h) {
        return Err(ImageError::Unreadable);
    }
    if h[..4] != MAGIC {
        return Err(ImageError::NotAProgram);
    }
    let format = u16::from_le_bytes([h[4], h[5]]);
    if format != FORMAT_VERSION {
        return Err(ImageError::UnknownFormat(format));
    }
    let code_len = le32(&h, OFF_LEN);
    let crc = le32(&h, OFF_CRC);
    if u64::from(code_len) + HEADER_LEN as u64 > u64::from(max_len) {
        return Err(ImageError::TooLong(code_len));
    }
    let mut digest = CRC32.digest();
    digest.update(&h[..OFF_CRC]);
    digest.update(&h[OFF_VERSION..]);
    let mut buf = [0u8; 128];
    let mut done = 0u32;
    while done < code_len {
        let n = (code_len - done).min(buf.len() as u32) as usize;
        let chunk = &mut buf[..n];
        if !src.read(HEADER_LEN as u32 + done, chunk) {
            return Err(ImageError::Unreadable);
        }
        digest.update(chunk);
        done += n as u32;
    }
    if digest.finalize() != crc {
        return Err(ImageError::Damaged);
    }
    let mut version = [0u8; MAX_VERSION];
    version.copy_from_slice(&h[OFF_VERSION..OFF_NAME]);
    let mut name = [0u8; MAX_NAME];
    name.copy_from_slice(&h[OFF_NAME..HEADER_LEN]);
    Ok(Header {
        code_len,
        crc,
        version,
        name,
    })
}

fn le32(h: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

/// Build an image from code (host side): the header with its CRC, then the code.
/// `name` and `version` are cut to fit at a character boundary.
#[cfg(feature = "std")]
pub fn build(name: &str, version: &str, code: &[u8]) -> Result<Vec<u8>, String> {
    let code_len = u32::try_from(code.len())
        .map_err(|_| format!("{} bytes of code do not fit the header", code.len()))?;
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[OFF_LEN..OFF_CRC].copy_from_slice(&code_len.to_le_bytes());
    let version = cut(version, MAX_VERSION);
    let name = cut(name, MAX_NAME);
    h[OFF_VERSION..OFF_VERSION + version.len()].copy_from_slice(version.as_bytes());
    h[OFF_NAME..OFF_NAME + name.len()].copy_from_slice(name.as_bytes());
    let mut digest = CRC32.digest();
    digest.update(&h[..OFF_CRC]);
    digest.update(&h[OFF_VERSION..]);
    digest.update(code);
    h[OFF_CRC..OFF_VERSION].copy_from_slice(&digest.finalize().to_le_bytes());
    let mut image = Vec::with_capacity(HEADER_LEN + code.len());
    image.extend_from_slice(&h);
    image.extend_from_slice(code);
    Ok(image)
}

#[cfg(feature = "std")]
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
