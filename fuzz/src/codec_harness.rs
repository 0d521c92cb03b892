//! Properties of the image decoder (`fota-codec`) under hostile streams, shared by the
//! fuzz targets `codec_stream` and `codec_mutated` and by the proptest suite
//! (`crates/fota-codec/tests/hostile.rs` includes this file).
//!
//! Whatever the stream: no panic; writes only inside the image the header declared and
//! the slot; no byte written twice; reads only inside the base and the slot; the work of
//! one `feed` call bounded by its input; after an error, nothing more is accepted.

use std::sync::OnceLock;

use fota_codec::format::{BLOCK_HEADER_LEN, HEADER_LEN, MAX_BLOCK_LEN};
use fota_codec::{Decoder, Error, Flash};

/// A flash that checks every access instead of trusting the decoder.
pub struct Checked {
    pub base: Vec<u8>,
    pub target: Vec<u8>,
    pub written: Vec<bool>,
    /// Bytes read and written (the decoder's work on flash).
    pub moved: u64,
    /// Writes at or past this offset are a violation (the header's image length).
    pub limit: usize,
}

/// A violation found by [`Checked`] (it is also returned to the decoder as its error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation(pub &'static str, pub u32);

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} at {}", self.0, self.1)
    }
}

impl Checked {
    pub fn new(base: Vec<u8>, slot_len: usize) -> Checked {
        Checked {
            base,
            target: vec![0xFF; slot_len],
            written: vec![false; slot_len],
            moved: 0,
            limit: slot_len,
        }
    }
}

impl Flash for Checked {
    type Error = Violation;

    fn read_base(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Violation> {
        let at = offset as usize;
        let src = at
            .checked_add(buf.len())
            .and_then(|end| self.base.get(at..end))
            .ok_or(Violation("base read outside the base", offset))?;
        buf.copy_from_slice(src);
        self.moved += buf.len() as u64;
        Ok(())
    }

    fn read_target(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Violation> {
        let at = offset as usize;
        let src = at
            .checked_add(buf.len())
            .and_then(|end| self.target.get(at..end))
            .ok_or(Violation("target read outside the slot", offset))?;
        buf.copy_from_slice(src);
        self.moved += buf.len() as u64;
        Ok(())
    }

    fn write_target(&mut self, offset: u32, data: &[u8]) -> Result<(), Violation> {
        let at = offset as usize;
        let end = at
            .checked_add(data.len())
            .filter(|&e| e <= self.limit && e <= self.target.len())
            .ok_or(Violation("write outside the image", offset))?;
        if data.is_empty() || data.len() > fota_codec::WRITE_CHUNK as usize {
            return Err(Violation("write of a bad length", offset));
        }
        let first_chunk = at / fota_codec::WRITE_CHUNK as usize;
        let last_chunk = (end - 1) / fota_codec::WRITE_CHUNK as usize;
        if first_chunk != last_chunk {
            return Err(Violation("write across a write chunk", offset));
        }
        if self.written[at..end].iter().any(|&w| w) {
            return Err(Violation("byte written twice", offset));
        }
        self.written[at..end].fill(true);
        self.target[at..end].copy_from_slice(data);
        self.moved += data.len() as u64;
        Ok(())
    }
}

/// The most flash bytes one `feed` of `input` bytes may move: the base's CRC check once,
/// then per block started or continued, its length written and three reads per byte.
pub fn work_bound(input: usize, base_len: usize) -> u64 {
    let blocks = (input / BLOCK_HEADER_LEN + 1) as u64;
    blocks * 4 * u64::from(MAX_BLOCK_LEN) + base_len as u64
}

/// Feeds `stream` in the chunk sizes given (cycled; 0 means 1), checks every property,
/// and returns the decoder's verdict and the checked flash.
pub fn run(
    stream: &[u8],
    base: Vec<u8>,
    slot_len: usize,
    chunks: &[usize],
) -> (Result<(), Error<Violation>>, Checked) {
    let base_max = base.len() as u32;
    let mut flash = Checked::new(base, slot_len);
    let mut decoder = Box::new(Decoder::new(slot_len as u32, base_max));
    let mut rest = stream;
    let mut i = 0usize;
    let mut verdict = Ok(());
    while !rest.is_empty() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(rest.len())
            .max(1);
        let (now, later) = rest.split_at(n.min(rest.len()));
        i += 1;
        rest = later;
        let before = flash.moved;
        let had_header = decoder.header().is_some();
        let r = decoder.feed(&mut flash, now);
        if let Some(h) = decoder.header() {
            flash.limit = flash.limit.min(h.image_len as usize);
            assert!(
                h.image_len as usize <= slot_len,
                "accepted an image larger than the slot"
            );
        }
        let base_once = if had_header { 0 } else { flash.base.len() };
        assert!(
            flash.moved - before <= work_bound(now.len(), base_once),
            "{} flash bytes moved for {} input bytes",
            flash.moved - before,
            now.len()
        );
        if let Err(e) = r {
            if let Error::Flash(v) = e {
                panic!("the decoder broke a rule: {v}");
            }
            // Nothing more is accepted, and nothing more is written.
            let written = flash.written.clone();
            assert_eq!(decoder.feed(&mut flash, &[0u8; 64]), Err(Error::Failed));
            assert_eq!(flash.written, written);
            verdict = Err(e);
            break;
        }
    }
    if verdict.is_ok() {
        verdict = decoder.finish().map(|_| ()).map_err(|e| match e {
            Error::Failed => Error::Failed,
            _ => Error::Truncated,
        });
    }
    (verdict, flash)
}

/// A structured sample (instruction-like words, tables, text) and its streams, made once.
pub struct Sample {
    pub base: Vec<u8>,
    pub image: Vec<u8>,
    pub full: Vec<u8>,
    pub delta: Vec<u8>,
}

pub fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let mut base = Vec::new();
        for i in 0u32..2500 {
            let word = 0xF000_4000u32 | (i * 37 % 911) << 2 | (i % 3);
            base.extend_from_slice(&word.to_le_bytes());
            if i % 50 == 0 {
                base.extend_from_slice(b"firmware table entry\0");
            }
        }
        // The new image: the old one with a few words changed and a piece inserted.
        let mut image = base.clone();
        for i in (0..image.len()).step_by(997) {
            image[i] ^= 0x5A;
        }
        image.splice(4000..4000, b"a new function's bytes".iter().copied());
        let o = fota_codec::encode::Options {
            block_size: 2048,
            ..fota_codec::encode::DEFAULT_OPTIONS
        };
        let full = fota_codec::encode::compress(&image, &o).unwrap().to_bytes();
        let delta = fota_codec::encode::delta(&base, &image, &o)
            .unwrap()
            .to_bytes();
        Sample {
            base,
            image,
            full,
            delta,
        }
    })
}

/// Arbitrary bytes as a stream. The first byte picks the slot size, the chunking and
/// what comes first: nothing, a valid full-image header or a valid delta header (so the
/// fuzzer reaches the blocks), each declaring an image as large as the slot.
pub fn stream(data: &[u8]) -> Result<(), Error<Violation>> {
    let Some((&pick, rest)) = data.split_first() else {
        return Ok(());
    };
    let slot_len = [0usize, 1, 255, 4096, 65536][usize::from(pick & 7) % 5];
    let chunks = [usize::from(pick >> 3 & 7) + 1, 3, 49, 1];
    let s = sample();
    let mut stream = Vec::new();
    let header = match pick >> 6 {
        1 => Some(&s.full[..HEADER_LEN]),
        2 => Some(&s.delta[..HEADER_LEN]),
        _ => None,
    };
    if let Some(h) = header {
        stream.extend_from_slice(h);
        stream[8..12].copy_from_slice(&(slot_len as u32).to_le_bytes());
    }
    stream.extend_from_slice(rest);
    let (verdict, flash) = run(&stream, s.base.clone(), slot_len, &chunks);
    assert!(flash.written.iter().filter(|&&w| w).count() <= slot_len);
    verdict
}

/// A valid stream with some bytes changed, some removed or repeated: `data` is a list
/// of (position, operation) pairs. Checks the properties, and that an unchanged stream
/// decodes to the image.
pub fn mutated(data: &[u8]) -> Result<(), Error<Violation>> {
    let s = sample();
    let (src, base) = match data.first() {
        Some(b) if b & 1 == 1 => (&s.delta, s.base.clone()),
        _ => (&s.full, Vec::new()),
    };
    let mut stream = src.clone();
    for op in data.get(1..).unwrap_or(&[]).chunks(4) {
        if stream.is_empty() {
            break;
        }
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| op.get(i).copied().unwrap_or(0));
        let at = (usize::from(a) << 8 | usize::from(b)) * 7 % stream.len().max(1);
        match c % 4 {
            0 => stream[at] ^= d.max(1),
            1 => stream[at] = d,
            2 => {
                stream.drain(at..(at + usize::from(d % 16)).min(stream.len()));
            }
            _ => {
                let piece: Vec<u8> = stream[at..(at + usize::from(d)).min(stream.len())].to_vec();
                stream.splice(at..at, piece);
            }
        }
    }
    let slot_len = s.image.len().next_multiple_of(4096);
    let chunks = [data.len() % 61 + 1, 1, 1000];
    let (verdict, flash) = run(&stream, base, slot_len, &chunks);
    if stream == *src {
        assert_eq!(verdict, Ok(()));
        assert_eq!(&flash.target[..s.image.len()], &s.image[..]);
    }
    verdict
}
