//! LZMA symbols: literals, matches and repeats, from the probability model and the
//! state.

use super::{
    ALIGN, Core, Cursor, Decoder, Error, IN_REQUIRED, IS_MATCH, IS_REP, IS_REP0, IS_REP0_LONG,
    IS_REP1, IS_REP2, LEN_CHOICE, LEN_CHOICE2, LEN_HIGH, LEN_LOW, LEN_MID, LITERAL, MATCH_LEN,
    MATCH_LEN_MIN, POS_SLOT, POS_STATES, REP_LEN, Res, SPEC_POS,
};
use crate::flash::Flash;
use crate::format::Props;

impl Decoder {
    /// Decodes LZMA symbols from `input` (at most the block's coded bytes), stopping once
    /// `budget` bytes are written. Returns the input bytes consumed and the bytes written.
    pub(super) fn lzma<F: Flash>(
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
    pub(super) fn len(&mut self, cur: &mut Cursor, base: usize, pos_state: usize) -> u32 {
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
}
