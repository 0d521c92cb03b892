//! Log lines on the update link without `core::fmt` (which would cost several KiB of
//! code): text, decimals and hex into a fixed buffer, sent as one line between frames.
//! The builder works through `&mut`: a line is never copied (by value, each step of a
//! chain copied its 124 bytes, and a function that logs a lot kept a slot for each).

use crate::board::Board;

const LEN: usize = 120;

/// One line being built; longer text is cut.
pub struct Line {
    buf: [u8; LEN],
    len: usize,
}

impl Line {
    /// An empty line.
    pub fn new() -> Line {
        Line {
            buf: [0; LEN],
            len: 0,
        }
    }

    /// Append bytes; anything that is not printable ASCII becomes `?` (a 0x00 would
    /// end a frame on the host's side).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Line {
        for &c in b {
            if let Some(x) = self.buf.get_mut(self.len) {
                *x = if (0x20..0x7F).contains(&c) { c } else { b'?' };
                self.len += 1;
            }
        }
        self
    }

    /// Append text.
    pub fn s(&mut self, s: &str) -> &mut Line {
        self.bytes(s.as_bytes())
    }

    /// Append a decimal number.
    pub fn u(&mut self, mut v: u32) -> &mut Line {
        let mut d = [0u8; 10];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.bytes(&d[i..])
    }

    /// Append `0x` and eight hex digits.
    pub fn hex(&mut self, v: u32) -> &mut Line {
        let mut d = *b"0x00000000";
        for (i, x) in d[2..].iter_mut().enumerate() {
            let nib = (v >> (28 - 4 * i)) & 0xF;
            *x = b"0123456789abcdef"[nib as usize];
        }
        self.bytes(&d)
    }

    /// Send it with a line end.
    pub fn send<B: Board + ?Sized>(&mut self, board: &mut B) {
        board.write(&self.buf[..self.len]);
        board.write(b"\r\n");
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}
