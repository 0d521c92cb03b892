//! What the decoder reads and writes: the agent implements [`Flash`] over its NorFlash.

/// The decoder's access to flash.
///
/// The decoder only asks for offsets inside what the stream header declared and the
/// limits given to [`crate::Decoder::new`] allowed, so an implementation can map these
/// offsets to slot addresses directly; it should still refuse anything else.
pub trait Flash {
    /// The implementation's error, handed back inside [`crate::Error::Flash`].
    type Error;

    /// Reads `buf.len()` bytes of the base image (a delta's old image) at `offset`.
    fn read_base(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Reads `buf.len()` bytes of the target slot at `offset` (bytes written before).
    fn read_target(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Programs `data` at `offset` of the target slot (erased beforehand by the caller).
    ///
    /// Writes come in increasing offsets, each byte at most once in a stream, and never
    /// cross a multiple of [`crate::WRITE_CHUNK`]; they start and end on such multiples
    /// except at the start and the end of a block.
    fn write_target(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error>;

    /// The CRC-32 of the base's first `len` bytes (as a delta header gives it), if the
    /// implementation knows it without reading them (a device that has just hashed them
    /// for another request, nothing written since): a delta's base check then reads
    /// nothing. `None` (the default): the base is read.
    fn known_base_crc(&mut self, len: u32) -> Option<u32> {
        let _ = len;
        None
    }
}

/// A [`Flash`] over memory: the base and the target slot as slices (host-side decoding,
/// tests). Accesses outside the slices are refused with [`OutOfRange`].
pub struct SliceFlash<'a> {
    /// The base image.
    pub base: &'a [u8],
    /// The target slot.
    pub target: &'a mut [u8],
}

/// An access outside a [`SliceFlash`]'s slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    /// The offset asked for.
    pub offset: u32,
}

impl core::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "access outside the slot at offset {}", self.offset)
    }
}

impl core::error::Error for OutOfRange {}

fn range(offset: u32, len: usize, size: usize) -> Result<core::ops::Range<usize>, OutOfRange> {
    let start = offset as usize;
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(OutOfRange { offset }),
    }
}

impl Flash for SliceFlash<'_> {
    type Error = OutOfRange;

    fn read_base(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let r = range(offset, buf.len(), self.base.len())?;
        buf.copy_from_slice(self.base.get(r).ok_or(OutOfRange { offset })?);
        Ok(())
    }

    fn read_target(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let r = range(offset, buf.len(), self.target.len())?;
        buf.copy_from_slice(self.target.get(r).ok_or(OutOfRange { offset })?);
        Ok(())
    }

    fn write_target(&mut self, offset: u32, data: &[u8]) -> Result<(), OutOfRange> {
        let r = range(offset, data.len(), self.target.len())?;
        self.target
            .get_mut(r)
            .ok_or(OutOfRange { offset })?
            .copy_from_slice(data);
        Ok(())
    }
}
