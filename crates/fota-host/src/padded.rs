//! What a transfer writes and where it stands: the image padded to the write
//! granularity (without a copy), and the state of each of the slot's sectors.

/// What the stream writes: the image padded with erased bytes (0xFF) to the write
/// granularity, without a copy of the image: only its end, from before the last write
/// block, is copied and padded.
pub(crate) struct Padded<'a> {
    image: &'a [u8],
    /// Where `tail` starts in the image (a multiple of the granularity).
    tail_at: usize,
    /// The image from `tail_at`, padded.
    tail: Vec<u8>,
}

impl<'a> Padded<'a> {
    /// `image` padded to `gran`, for writes of at most `block` bytes that start on
    /// multiples of `gran` (`erase_ahead` writes the largest write, `Info::max_write`).
    pub(crate) fn new(image: &'a [u8], gran: usize, block: usize) -> Padded<'a> {
        let gran = gran.max(1);
        // A block that reaches past the image ends there: it starts after
        // `len - block - gran`, so at or after `tail_at`.
        let tail_at = image.len().saturating_sub(block + gran) / gran * gran;
        let mut tail = image[tail_at..].to_vec();
        tail.resize(image.len().next_multiple_of(gran) - tail_at, 0xFF);
        Padded {
            image,
            tail_at,
            tail,
        }
    }

    /// Its length: the image's, rounded up to the granularity.
    pub(crate) fn len(&self) -> usize {
        self.tail_at + self.tail.len()
    }

    /// Bytes `a..b`: a write block (see [`Padded::new`]).
    pub(crate) fn range(&self, a: usize, b: usize) -> &[u8] {
        if b <= self.image.len() {
            &self.image[a..b]
        } else {
            &self.tail[a - self.tail_at..b - self.tail_at]
        }
    }

    /// MD5 of bytes `a..b`, any range (a sector's, for resume).
    pub(crate) fn md5(&self, a: usize, b: usize) -> [u8; 16] {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        let split = self.tail_at.clamp(a, b);
        h.update(&self.image[a..split]);
        if b > split {
            h.update(&self.tail[split - self.tail_at..b - self.tail_at]);
        }
        h.finalize().into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectorState {
    /// Holds the image's bytes already.
    Done,
    /// Erased: only needs writing.
    Erased,
    /// Must be erased and written.
    Dirty,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::md5_of;

    /// The padded view is the image copied and padded, for every block a stream sends
    /// and every range resume hashes.
    #[test]
    fn padding_without_a_copy_reads_as_the_padded_copy() {
        for len in [1usize, 3, 4, 5, 255, 256, 257, 1000, 1024, 4097] {
            for (gran, block) in [(1, 1), (4, 16), (8, 256), (16, 256), (256, 256)] {
                let image: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mut copy = image.clone();
                copy.resize(len.next_multiple_of(gran), 0xFF);
                let p = Padded::new(&image, gran, block);
                assert_eq!(p.len(), copy.len(), "{len} {gran} {block}");
                let mut a = 0;
                while a < len {
                    let b = (a + block).min(len);
                    let end = b.next_multiple_of(gran);
                    assert_eq!(p.range(a, end), &copy[a..end], "{len} {gran} {block} {a}");
                    a = b;
                }
                for (a, b) in [(0, copy.len()), (0, len / 2), (len / 2, copy.len())] {
                    assert_eq!(p.md5(a, b), md5_of(&copy[a..b]), "{len} {gran} {a}..{b}");
                }
                assert!(p.tail.len() <= block + 2 * gran, "only the end is copied");
            }
        }
    }
}
