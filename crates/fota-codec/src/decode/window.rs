//! The flash window: the dictionary read back from the flash (base image, then the bytes
//! already written), and the write buffer that fills the target slot.

use super::{Core, Error, READ_CHUNK, Res, WRITE_CHUNK};
use crate::flash::Flash;

impl Core {
    /// The byte `dist` (>= 1) positions back in the dictionary.
    pub(super) fn dict_byte<F: Flash>(&mut self, flash: &mut F, dist: u32) -> Res<u8, F::Error> {
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
    pub(super) fn copy<F: Flash>(
        &mut self,
        flash: &mut F,
        len: u32,
        overrun: bool,
    ) -> Res<(), F::Error> {
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

    pub(super) fn push<F: Flash>(&mut self, flash: &mut F, b: u8) -> Res<(), F::Error> {
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

    pub(super) fn flush<F: Flash>(&mut self, flash: &mut F) -> Res<(), F::Error> {
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
