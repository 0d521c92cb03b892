//! The image trailer, byte for byte (docs/IMAGE.md is the specification).
//!
//! An image is the firmware exactly as linked (the *payload*, which for a VM starts with
//! its vector table) followed at once by a trailer:
//!
//! | offset | size | field                                                        |
//! |-------:|-----:|--------------------------------------------------------------|
//! |      0 |    8 | magic `FOTA-IMG`                                             |
//! |      8 |    1 | format version, 1                                            |
//! |      9 |    1 | kind: 0 VM, 1 bytecode                                       |
//! |     10 |    2 | flags, 0 (a reader refuses others)                           |
//! |     12 |    4 | payload length = offset of the trailer in the slot           |
//! |     16 |    4 | slot address the payload is linked for, `0xFFFFFFFF` any     |
//! |     20 |    8 | version: major u16, minor u16, patch u32                     |
//! |     28 |   32 | name, UTF-8, NUL-padded                                      |
//! |     60 |   32 | SHA-256 of the payload and of trailer bytes 0..60            |
//! |     92 |    4 | signature count n, at most [`MAX_SIGNATURES`]                |
//! |     96 | 72 n | n times: key id (8), Ed25519 signature (64) of bytes 0..92   |
//!
//! All integers are little-endian.

use sha2::{Digest, Sha256};

use crate::ImageError;
use crate::consts::{
    ANY_SLOT, FIXED_LEN, FORMAT_VERSION, HASHED_HEADER_LEN, MAGIC, MAX_SIGNATURES, NAME_LEN,
    SIGNATURE_ENTRY_LEN, SIGNED_LEN,
};
use crate::ids::{KeyId, Kind, Version};

const OFF_VERSION: usize = 8;
const OFF_KIND: usize = 9;
const OFF_FLAGS: usize = 10;
/// Offset of the payload length in the trailer: the first field a reader checks.
pub(crate) const OFF_LEN: usize = 12;
const OFF_SLOT: usize = 16;
const OFF_FW_VERSION: usize = 20;
const OFF_NAME: usize = 28;
const OFF_HASH: usize = 60;
const OFF_COUNT: usize = 92;

/// The signed part of a trailer: everything a device decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// VM or bytecode.
    pub kind: Kind,
    /// Bytes of payload before the trailer.
    pub payload_len: u32,
    /// The slot address the payload is linked for, or [`ANY_SLOT`].
    pub slot_addr: u32,
    /// Firmware version (the anti-rollback counter).
    pub version: Version,
    /// Name, UTF-8, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// SHA-256 of the payload followed by trailer bytes 0..60.
    pub sha256: [u8; 32],
}

impl Header {
    /// The name up to its first NUL, if it is UTF-8.
    pub fn name(&self) -> Option<&str> {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..end]).ok()
    }

    /// Whether the payload may run from a slot at `addr`.
    pub const fn runs_at(&self, addr: u32) -> bool {
        self.slot_addr == ANY_SLOT || self.slot_addr == addr
    }

    /// The 92 signed bytes (the hash as it is in `self`).
    pub fn encode(&self) -> [u8; SIGNED_LEN] {
        let mut b = [0u8; SIGNED_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[OFF_VERSION] = FORMAT_VERSION;
        b[OFF_KIND] = self.kind as u8;
        // Flags stay zero.
        b[OFF_LEN..OFF_LEN + 4].copy_from_slice(&self.payload_len.to_le_bytes());
        b[OFF_SLOT..OFF_SLOT + 4].copy_from_slice(&self.slot_addr.to_le_bytes());
        b[OFF_FW_VERSION..OFF_FW_VERSION + 2].copy_from_slice(&self.version.major.to_le_bytes());
        b[OFF_FW_VERSION + 2..OFF_FW_VERSION + 4]
            .copy_from_slice(&self.version.minor.to_le_bytes());
        b[OFF_FW_VERSION + 4..OFF_FW_VERSION + 8]
            .copy_from_slice(&self.version.patch.to_le_bytes());
        b[OFF_NAME..OFF_NAME + NAME_LEN].copy_from_slice(&self.name);
        b[OFF_HASH..OFF_HASH + 32].copy_from_slice(&self.sha256);
        b
    }

    /// The header in `bytes` (at least [`SIGNED_LEN`] of them). Checks the magic, the
    /// format version, the kind and the flags; not the hash.
    pub fn decode(bytes: &[u8]) -> Result<Header, ImageError> {
        let b: &[u8; SIGNED_LEN] = bytes
            .get(..SIGNED_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(ImageError::Truncated)?;
        if b[..8] != MAGIC {
            return Err(ImageError::BadMagic);
        }
        if b[OFF_VERSION] != FORMAT_VERSION {
            return Err(ImageError::UnsupportedFormat(b[OFF_VERSION]));
        }
        let kind = Kind::from_u8(b[OFF_KIND]).ok_or(ImageError::UnknownKind(b[OFF_KIND]))?;
        let flags = u16::from_le_bytes([b[OFF_FLAGS], b[OFF_FLAGS + 1]]);
        if flags != 0 {
            return Err(ImageError::UnsupportedFlags(flags));
        }
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&b[OFF_NAME..OFF_NAME + NAME_LEN]);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&b[OFF_HASH..OFF_HASH + 32]);
        Ok(Header {
            kind,
            payload_len: le32(b, OFF_LEN),
            slot_addr: le32(b, OFF_SLOT),
            version: Version {
                major: u16::from_le_bytes([b[OFF_FW_VERSION], b[OFF_FW_VERSION + 1]]),
                minor: u16::from_le_bytes([b[OFF_FW_VERSION + 2], b[OFF_FW_VERSION + 3]]),
                patch: le32(b, OFF_FW_VERSION + 4),
            },
            name,
            sha256,
        })
    }

    /// The hash this header must carry for `payload`: SHA-256 of the payload and of the
    /// header's first 60 bytes.
    pub fn hash_of(&self, payload: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(payload);
        h.update(&self.encode()[..HASHED_HEADER_LEN]);
        h.finalize().into()
    }
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

/// One signature of a trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureEntry {
    /// The signing key's id.
    pub key_id: KeyId,
    /// Ed25519 signature of the trailer's first [`SIGNED_LEN`] bytes.
    pub signature: [u8; 64],
}

impl SignatureEntry {
    /// The entry in the first [`SIGNATURE_ENTRY_LEN`] bytes of `b`.
    pub fn decode(b: &[u8]) -> Option<SignatureEntry> {
        let b = b.get(..SIGNATURE_ENTRY_LEN)?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&b[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[8..]);
        Some(SignatureEntry {
            key_id: KeyId(key_id),
            signature,
        })
    }

    /// The entry's bytes.
    pub fn encode(&self) -> [u8; SIGNATURE_ENTRY_LEN] {
        let mut b = [0u8; SIGNATURE_ENTRY_LEN];
        b[..8].copy_from_slice(&self.key_id.0);
        b[8..].copy_from_slice(&self.signature);
        b
    }
}

/// The fixed part of a trailer: the header and the signature count.
pub fn encode_fixed(header: &Header, signatures: u32) -> [u8; FIXED_LEN] {
    let mut b = [0u8; FIXED_LEN];
    b[..SIGNED_LEN].copy_from_slice(&header.encode());
    b[OFF_COUNT..OFF_COUNT + 4].copy_from_slice(&signatures.to_le_bytes());
    b
}

/// A trailer parsed from bytes, borrowing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer<'a> {
    /// The signed header.
    pub header: Header,
    signed: &'a [u8],
    entries: &'a [u8],
}

impl<'a> Trailer<'a> {
    /// The trailer at the start of `bytes` (which may go on past it). Checks its form,
    /// not its hash or signatures.
    pub fn parse(bytes: &'a [u8]) -> Result<Trailer<'a>, ImageError> {
        let header = Header::decode(bytes)?;
        let count = signature_count(bytes).ok_or(ImageError::Truncated)?;
        let n = check_count(count)?;
        let len = FIXED_LEN + n * SIGNATURE_ENTRY_LEN;
        let entries = bytes.get(FIXED_LEN..len).ok_or(ImageError::Truncated)?;
        Ok(Trailer {
            header,
            signed: &bytes[..SIGNED_LEN],
            entries,
        })
    }

    /// Bytes of the trailer.
    pub fn len(&self) -> usize {
        FIXED_LEN + self.entries.len()
    }

    /// Never true: a trailer has at least its fixed part.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bytes the signatures cover.
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.signed
    }

    /// How many signatures it carries.
    pub fn signature_count(&self) -> usize {
        self.entries.len() / SIGNATURE_ENTRY_LEN
    }

    /// The signatures, in order.
    pub fn signatures(&self) -> impl Iterator<Item = SignatureEntry> + 'a {
        self.entries
            .chunks_exact(SIGNATURE_ENTRY_LEN)
            .filter_map(SignatureEntry::decode)
    }
}

/// The signature count of the fixed part in `b`, if `b` holds it.
pub(crate) fn signature_count(b: &[u8]) -> Option<u32> {
    b.get(OFF_COUNT..OFF_COUNT + 4).map(|_| le32(b, OFF_COUNT))
}

/// `count` as a number of entries, if a trailer may carry that many.
pub(crate) fn check_count(count: u32) -> Result<usize, ImageError> {
    if count as usize > MAX_SIGNATURES {
        return Err(ImageError::TooManySignatures(count));
    }
    Ok(count as usize)
}

/// An image found in bytes that start at a slot's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The firmware as linked.
    pub payload: &'a [u8],
    /// Its trailer.
    pub trailer: Trailer<'a>,
    /// Bytes after the trailer (erased flash, padding: not part of the image).
    pub rest: &'a [u8],
}

impl ImageRef<'_> {
    /// Bytes of payload and trailer.
    pub fn len(&self) -> usize {
        self.payload.len() + self.trailer.len()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether the hash in the trailer is the payload's.
    pub fn hash_matches(&self) -> bool {
        self.trailer.header.hash_of(self.payload) == self.trailer.header.sha256
    }
}

/// Finds the image in `bytes` (a slot's contents from its first byte, or an image file):
/// the first place that holds the magic and a payload length equal to its own offset.
/// Checks the trailer's form, not its hash or signatures ([`crate::verify_bytes`] does).
pub fn find_image(bytes: &[u8]) -> Result<ImageRef<'_>, ImageError> {
    let at = locate(bytes)?;
    let trailer = Trailer::parse(&bytes[at..])?;
    Ok(ImageRef {
        payload: &bytes[..at],
        trailer,
        rest: &bytes[at + trailer.len()..],
    })
}

/// The offset of the trailer in `bytes`: the first magic followed by its own offset as
/// payload length (whether the trailer there is valid or not).
pub fn locate_trailer(bytes: &[u8]) -> Result<usize, ImageError> {
    locate(bytes)
}

fn locate(bytes: &[u8]) -> Result<usize, ImageError> {
    let mut from = 0;
    while let Some(i) = bytes.get(from..).and_then(find_magic) {
        let at = from + i;
        match candidate(bytes, at) {
            Some(true) => return Ok(at),
            Some(false) => from = at + 1,
            None => return Err(ImageError::Truncated),
        }
    }
    Err(ImageError::NoTrailer)
}

/// Where the magic first starts in `s`.
pub(crate) fn find_magic(s: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s.get(from..)?.iter().position(|&b| b == MAGIC[0]) {
        let at = from + i;
        match s.get(at..at + MAGIC.len()) {
            Some(w) if w == MAGIC => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// Whether the magic at `at` starts the trailer: its payload length is `at`. `None` when
/// the bytes end before the length field.
pub(crate) fn candidate(bytes: &[u8], at: usize) -> Option<bool> {
    bytes
        .get(at + OFF_LEN..at + OFF_LEN + 4)
        .map(|_| le32(bytes, at + OFF_LEN) as usize == at)
}
