//! Verification of the image in a slot, in bounded steps.
//!
//! A device reads its slot through a [`SlotReader`] (the agent wraps its NorFlash in
//! one) and calls [`Verifier::step`] as often as it likes: each step reads and hashes at
//! most one buffer of the slot, or checks one signature, so the firmware never waits
//! long. [`verify_slot`] runs the steps to the end; [`verify_bytes`] does the same on
//! bytes in memory (the host, tests).

use core::convert::Infallible;

use ed25519_compact::{PublicKey, Signature};
use sha2::{Digest, Sha256};

use crate::consts::{FIXED_LEN, HASHED_HEADER_LEN, MAGIC, MIN_BUFFER, SIGNATURE_ENTRY_LEN};
use crate::format::{
    Header, OFF_LEN, SignatureEntry, check_count, find_magic, le32, signature_count,
};
use crate::ids::{KeyId, Kind, Version};
use crate::{ImageError, VerifyError};

/// Random-access reads of one slot.
pub trait SlotReader {
    /// What a failed read reports.
    type Error;

    /// Fills `buf` with the slot's bytes from `offset` (counted from the slot's first
    /// byte). The verifier never reads past the slot's size.
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// A slot held in memory. Reads past its end fill with erased bytes (0xFF), as flash
/// after an image would.
#[derive(Debug, Clone, Copy)]
pub struct SliceReader<'a>(pub &'a [u8]);

impl SlotReader for SliceReader<'_> {
    type Error = Infallible;

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Infallible> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|at| self.0.get(at))
                .copied()
                .unwrap_or(0xFF);
        }
        Ok(())
    }
}

/// A slot of a flash layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// VM or bytecode.
    pub kind: Kind,
    /// Index among the slots of its kind, from 0.
    pub index: u8,
    /// First address.
    pub addr: u32,
    /// Size in bytes.
    pub size: u32,
}

impl Slot {
    /// Whether `addr` lies in the slot.
    pub const fn contains(&self, addr: u32) -> bool {
        addr >= self.addr && addr - self.addr < self.size
    }

    /// One past the last address (saturating at 2^32).
    pub const fn end(&self) -> u64 {
        self.addr as u64 + self.size as u64
    }
}

impl core::fmt::Display for Slot {
    /// `VM slot 0 (0x00000000..0x00010000)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} slot {} ({:#010x}..{:#010x})",
            self.kind,
            self.index,
            self.addr,
            self.end()
        )
    }
}

/// A public key a device trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedKey {
    /// Its id, as signatures name it.
    pub id: KeyId,
    /// The Ed25519 public key.
    pub public: [u8; 32],
}

impl TrustedKey {
    /// Trust `public`.
    pub fn new(public: [u8; 32]) -> TrustedKey {
        TrustedKey {
            id: KeyId::of(&public),
            public,
        }
    }
}

/// What a device requires of an image.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The keys whose signatures count.
    pub trusted: &'a [TrustedKey],
    /// Refuse images that no trusted key signed.
    pub require_signature: bool,
    /// Refuse images older than this (0.0.0: any).
    pub minimum_version: Version,
}

impl Policy<'_> {
    /// Hash checked; signatures by trusted keys checked if there are any; unsigned images
    /// and any version allowed.
    pub const OPEN: Policy<'static> = Policy {
        trusted: &[],
        require_signature: false,
        minimum_version: Version::new(0, 0, 0),
    };
}

/// An image that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Its header.
    pub header: Header,
    /// Bytes of payload and trailer.
    pub image_len: u32,
    /// How many signatures the trailer carries.
    pub signatures: u8,
    /// The first trusted key whose signature verified, if any.
    pub signed_by: Option<KeyId>,
}

/// Where a verification stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More steps needed. Field: bytes of the slot read so far.
    Pending(u32),
    /// The image verified.
    Done(Verified),
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading and hashing the payload, looking for the trailer.
    Scan,
    /// The trailer starts here.
    Trailer(u32),
    /// Checking signature `next` of `count`.
    Signatures {
        header: Header,
        at: u32,
        count: u8,
        next: u8,
        signed_by: Option<KeyId>,
        first_unknown: Option<KeyId>,
    },
    /// Finished (with a result or an error): further steps report an error.
    Finished,
}

/// Verifies the image in one slot, a bounded step at a time. RAM: this value (about
/// 250 bytes) and the caller's read buffer.
#[derive(Debug, Clone)]
pub struct Verifier {
    slot: Slot,
    pos: u32,
    hasher: Sha256,
    phase: Phase,
}

impl Verifier {
    /// Start verifying `slot`.
    pub fn new(slot: Slot) -> Verifier {
        Verifier {
            slot,
            pos: 0,
            hasher: Sha256::new(),
            phase: Phase::Scan,
        }
    }

    /// One step: reads and hashes at most `buf.len()` bytes of the slot (`buf` must hold
    /// at least [`MIN_BUFFER`]), or checks one signature. After `Done` or an error the
    /// verifier is spent: start a new one to verify again.
    pub fn step<R: SlotReader>(
        &mut self,
        reader: &mut R,
        buf: &mut [u8],
        policy: &Policy<'_>,
    ) -> Result<Step, VerifyError<R::Error>> {
        if buf.len() < MIN_BUFFER {
            return Err(VerifyError::BufferTooSmall);
        }
        let result = match self.phase {
            Phase::Scan => self.scan(reader, buf),
            Phase::Trailer(at) => self.trailer(reader, at),
            Phase::Signatures {
                header,
                at,
                count,
                next,
                signed_by,
                first_unknown,
            } => self.signature(
                reader,
                policy,
                header,
                at,
                (count, next),
                signed_by,
                first_unknown,
            ),
            Phase::Finished => Err(VerifyError::Finished),
        };
        if !matches!(result, Ok(Step::Pending(_))) {
            self.phase = Phase::Finished;
        }
        result
    }

    fn scan<R: SlotReader>(
        &mut self,
        reader: &mut R,
        buf: &mut [u8],
    ) -> Result<Step, VerifyError<R::Error>> {
        let size = self.slot.size;
        let want = (size - self.pos).min(u32::try_from(buf.len()).unwrap_or(u32::MAX)) as usize;
        if want < MAGIC.len() {
            return Err(ImageError::NoTrailer.into());
        }
        let chunk = &mut buf[..want];
        reader.read(self.pos, chunk).map_err(VerifyError::Read)?;
        let mut from = 0;
        while let Some(i) = chunk.get(from..).and_then(find_magic) {
            let j = from + i;
            let at = self.pos + j as u32;
            let len_field = match chunk.get(j + OFF_LEN..j + OFF_LEN + 4) {
                Some(_) => le32(chunk, j + OFF_LEN),
                None => {
                    if u64::from(at) + OFF_LEN as u64 + 4 > u64::from(size) {
                        return Err(ImageError::Truncated.into());
                    }
                    let mut b = [0u8; 4];
                    reader
                        .read(at + OFF_LEN as u32, &mut b)
                        .map_err(VerifyError::Read)?;
                    u32::from_le_bytes(b)
                }
            };
            if len_field == at {
                self.hasher.update(&chunk[..j]);
                self.phase = Phase::Trailer(at);
                return Ok(Step::Pending(at));
            }
            from = j + 1;
        }
        // A magic may start in the last 7 bytes: read them again with the next chunk.
        let upto = want - (MAGIC.len() - 1);
        self.hasher.update(&chunk[..upto]);
        self.pos += upto as u32;
        Ok(Step::Pending(self.pos))
    }

    fn trailer<R: SlotReader>(
        &mut self,
        reader: &mut R,
        at: u32,
    ) -> Result<Step, VerifyError<R::Error>> {
        let size = u64::from(self.slot.size);
        // The checks in the order `Trailer::parse` makes them, so that a slot and the
        // same bytes in a file get the same answer.
        let avail = (size - u64::from(at)).min(FIXED_LEN as u64) as usize;
        let mut fixed = [0u8; FIXED_LEN];
        let fixed = &mut fixed[..avail];
        reader.read(at, fixed).map_err(VerifyError::Read)?;
        let header = Header::decode(fixed)?;
        let count = check_count(signature_count(fixed).ok_or(ImageError::Truncated)?)?;
        let end = u64::from(at) + (FIXED_LEN + count * SIGNATURE_ENTRY_LEN) as u64;
        if end > size {
            return Err(ImageError::Truncated.into());
        }
        let mut hasher = core::mem::take(&mut self.hasher);
        hasher.update(&fixed[..HASHED_HEADER_LEN]);
        let digest: [u8; 32] = hasher.finalize().into();
        if digest != header.sha256 {
            return Err(ImageError::BadHash.into());
        }
        if header.kind != self.slot.kind {
            return Err(ImageError::WrongKind {
                image: header.kind,
                slot: self.slot.kind,
            }
            .into());
        }
        if !header.runs_at(self.slot.addr) {
            return Err(ImageError::WrongSlot {
                linked_for: header.slot_addr,
                slot: self.slot.addr,
            }
            .into());
        }
        self.phase = Phase::Signatures {
            header,
            at,
            count: count as u8,
            next: 0,
            signed_by: None,
            first_unknown: None,
        };
        Ok(Step::Pending(end as u32))
    }

    #[allow(clippy::too_many_arguments)]
    fn signature<R: SlotReader>(
        &mut self,
        reader: &mut R,
        policy: &Policy<'_>,
        header: Header,
        at: u32,
        (count, next): (u8, u8),
        mut signed_by: Option<KeyId>,
        mut first_unknown: Option<KeyId>,
    ) -> Result<Step, VerifyError<R::Error>> {
        let end = at + (FIXED_LEN + usize::from(count) * SIGNATURE_ENTRY_LEN) as u32;
        if next < count {
            let mut b = [0u8; SIGNATURE_ENTRY_LEN];
            let offset = at + (FIXED_LEN + usize::from(next) * SIGNATURE_ENTRY_LEN) as u32;
            reader.read(offset, &mut b).map_err(VerifyError::Read)?;
            let entry = SignatureEntry::decode(&b).ok_or(ImageError::Truncated)?;
            match policy.trusted.iter().find(|k| k.id == entry.key_id) {
                Some(key) => {
                    if !signature_valid(&key.public, &header, &entry.signature) {
                        return Err(ImageError::BadSignature(entry.key_id).into());
                    }
                    signed_by = signed_by.or(Some(entry.key_id));
                }
                None => first_unknown = first_unknown.or(Some(entry.key_id)),
            }
            self.phase = Phase::Signatures {
                header,
                at,
                count,
                next: next + 1,
                signed_by,
                first_unknown,
            };
            return Ok(Step::Pending(end));
        }
        if policy.require_signature && signed_by.is_none() {
            return Err(match first_unknown {
                Some(id) => ImageError::UnknownKey(id),
                None => ImageError::Unsigned,
            }
            .into());
        }
        if header.version < policy.minimum_version {
            return Err(ImageError::Downgrade {
                image: header.version,
                minimum: policy.minimum_version,
            }
            .into());
        }
        Ok(Step::Done(Verified {
            header,
            image_len: end,
            signatures: count,
            signed_by,
        }))
    }
}

/// Whether `signature` is `public`'s Ed25519 signature of `header`.
pub fn signature_valid(public: &[u8; 32], header: &Header, signature: &[u8; 64]) -> bool {
    PublicKey::new(*public)
        .verify(header.encode(), &Signature::new(*signature))
        .is_ok()
}

/// Verifies the image in `slot` from start to end, reading through `buf`.
pub fn verify_slot<R: SlotReader>(
    reader: &mut R,
    slot: Slot,
    policy: &Policy<'_>,
    buf: &mut [u8],
) -> Result<Verified, VerifyError<R::Error>> {
    let mut v = Verifier::new(slot);
    loop {
        if let Step::Done(verified) = v.step(reader, buf, policy)? {
            return Ok(verified);
        }
    }
}

/// Verifies an image held in memory as `slot` would hold it (`bytes` from the slot's
/// first byte; bytes past them read as erased). The same steps as on a device.
pub fn verify_bytes(bytes: &[u8], slot: Slot, policy: &Policy<'_>) -> Result<Verified, ImageError> {
    let mut buf = [0u8; 256];
    verify_slot(&mut SliceReader(bytes), slot, policy, &mut buf).map_err(|e| match e {
        VerifyError::Image(e) => e,
        VerifyError::Read(never) => match never {},
        // The buffer is large enough and the verifier fresh.
        VerifyError::BufferTooSmall | VerifyError::Finished => ImageError::Truncated,
    })
}
