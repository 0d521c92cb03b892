//! Little-endian field reading and writing.
//!
//! Written by hand on purpose: the layout is fixed-width little-endian so that a C agent
//! can read it with plain shifts; a general serializer (postcard's varints, say) would
//! make the C side harder for no gain on messages this small.

use crate::message::DecodeError;

/// Where encoded bytes go (the COBS + CRC frame writer).
/// The field writers are never inlined: an `Info` alone writes some fifty fields, and a
/// call is a third of an inlined `put` in a firmware's flash.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
    #[inline(never)]
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    #[inline(never)]
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    #[inline(never)]
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
}

/// Reads fields from a body, failing (never panicking) when it is too short.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Whether every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The extension fields that end a body: `tag:u8 len:u8 value[len]` up to the end.
    /// `each(tag, value)` sees every one, in order; a field that runs past the end of the
    /// body makes it malformed.
    pub(crate) fn extensions(
        &mut self,
        mut each: impl FnMut(u8, &'a [u8]) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        while !self.buf.is_empty() {
            let tag = self.u8()?;
            let len = usize::from(self.u8()?);
            each(tag, self.bytes(len)?)?;
        }
        Ok(())
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    /// The body must be fully consumed: extra bytes mean a different message.
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}
