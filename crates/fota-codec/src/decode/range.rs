//! The range decoder: the coded input, and bits decoded with the adaptive
//! probabilities.

use super::{Core, Cursor, Error, Res, TOP};

impl Cursor<'_> {
    pub(super) fn remaining(&self) -> usize {
        (self.a.len() + self.b.len()).saturating_sub(self.pos)
    }

    pub(super) fn next(&mut self) -> u8 {
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

impl Core {
    pub(super) fn rc_init<E>(&mut self, cur: &mut Cursor) -> Res<(), E> {
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

    pub(super) fn bit(&mut self, cur: &mut Cursor, i: usize) -> u32 {
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

    pub(super) fn tree(&mut self, cur: &mut Cursor, base: usize, bits: u32) -> u32 {
        let mut m = 1u32;
        for _ in 0..bits {
            m = (m << 1) | self.bit(cur, base + m as usize);
        }
        m - (1 << bits)
    }

    /// Reverse bit tree whose node `m` (from 1) is the probability `base1 + m - 1`.
    pub(super) fn reverse(&mut self, cur: &mut Cursor, base1: usize, bits: u32) -> u32 {
        let mut m = 1u32;
        let mut sym = 0u32;
        for i in 0..bits {
            let b = self.bit(cur, base1 + m as usize - 1);
            m = (m << 1) | b;
            sym |= b << i;
        }
        sym
    }

    pub(super) fn direct(&mut self, cur: &mut Cursor, bits: u32) -> u32 {
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
}
