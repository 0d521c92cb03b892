//! Hostile and damaged streams: the fuzz targets' properties (`fuzz/src/codec_harness.rs`)
//! under proptest, and the errors a user meets (a patch for another base, a truncated
//! stream, a stream that expands beyond the slot).

#[path = "../../../fuzz/src/codec_harness.rs"]
mod codec_harness;

use codec_harness::{Violation, run, sample};
use fota_codec::format::{BLOCK_HEADER_LEN, BlockHeader, HEADER_LEN};
use fota_codec::{Error, HeaderError};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_streams(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = codec_harness::stream(&data);
    }

    #[test]
    fn arbitrary_streams_after_valid_header(pick in 0u8..0x40, tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        for kind in [0x40u8, 0x80] {
            let mut data = vec![pick | kind];
            data.extend_from_slice(&tail);
            let _ = codec_harness::stream(&data);
        }
    }

    #[test]
    fn mutated_streams(data in proptest::collection::vec(any::<u8>(), 1..40)) {
        let _ = codec_harness::mutated(&data);
    }

    /// Every chunking of a stream gives the same image and the same verdict.
    #[test]
    fn any_chunking_same_image(chunks in proptest::collection::vec(1usize..300, 1..20), delta in any::<bool>()) {
        let s = sample();
        let (stream, base) = if delta { (&s.delta, s.base.clone()) } else { (&s.full, Vec::new()) };
        let slot = s.image.len().next_multiple_of(4096);
        let (verdict, flash) = run(stream, base, slot, &chunks);
        prop_assert_eq!(verdict, Ok(()));
        prop_assert_eq!(&flash.target[..s.image.len()], &s.image[..]);
        prop_assert!(flash.target[s.image.len()..].iter().all(|&b| b == 0xFF));
    }
}

fn slot() -> usize {
    sample().image.len().next_multiple_of(4096)
}

#[test]
fn one_byte_at_a_time() {
    let s = sample();
    for (stream, base) in [(&s.full, vec![]), (&s.delta, s.base.clone())] {
        let (verdict, flash) = run(stream, base, slot(), &[1]);
        assert_eq!(verdict, Ok(()));
        assert_eq!(&flash.target[..s.image.len()], &s.image[..]);
    }
}

#[test]
fn patch_for_another_base_is_refused_before_any_write() {
    let s = sample();
    let mut other = s.base.clone();
    other[100] ^= 1;
    let (verdict, flash) = run(&s.delta, other, slot(), &[4096]);
    assert!(
        matches!(verdict, Err(Error::BaseMismatch { .. })),
        "{verdict:?}"
    );
    assert!(flash.written.iter().all(|&w| !w));
    // A base shorter than the patch's is refused too.
    let (verdict, _) = run(&s.delta, s.base[..1000].to_vec(), slot(), &[4096]);
    assert!(
        matches!(verdict, Err(Error::BaseTooLarge { .. })),
        "{verdict:?}"
    );
}

#[test]
fn truncated_streams_are_refused() {
    let s = sample();
    let blocks = block_starts(&s.full);
    for cut in 0..s.full.len() {
        let (verdict, flash) = run(&s.full[..cut], vec![], slot(), &[cut.max(1)]);
        if cut >= HEADER_LEN && blocks.contains(&cut) {
            // Cut between blocks: a valid stream of fewer blocks (the MD5 gate catches
            // the missing bytes); what was written is the image's start.
            assert_eq!(verdict, Ok(()), "cut at {cut}");
        } else {
            assert_eq!(verdict, Err(Error::Truncated), "cut at {cut}");
        }
        let n = flash.written.iter().take_while(|&&w| w).count();
        assert!(flash.written[n..].iter().all(|&w| !w));
        assert_eq!(flash.target[..n], s.image[..n]);
    }
}

/// Offsets in a stream where a block header starts (and where the stream ends).
fn block_starts(stream: &[u8]) -> Vec<usize> {
    let mut at = HEADER_LEN;
    let mut v = vec![at];
    while at + BLOCK_HEADER_LEN <= stream.len() {
        let b = BlockHeader::parse(stream[at..at + BLOCK_HEADER_LEN].try_into().unwrap());
        at += BLOCK_HEADER_LEN + b.coded_len as usize;
        v.push(at);
    }
    v
}

#[test]
fn stream_larger_than_the_slot_is_refused_before_any_write() {
    let s = sample();
    let small = s.image.len() - 1;
    let (verdict, flash) = run(&s.full, vec![], small, &[1000]);
    assert_eq!(
        verdict,
        Err(Error::ImageTooLarge {
            image_len: s.image.len() as u32,
            slot_len: small as u32
        })
    );
    assert!(flash.written.iter().all(|&w| !w));
}

#[test]
fn block_beyond_the_image_is_refused() {
    let s = sample();
    let mut stream = s.full.clone();
    // Shrink the declared image by one byte: the last block then reaches past it.
    let len = u32::from_le_bytes(stream[8..12].try_into().unwrap()) - 1;
    stream[8..12].copy_from_slice(&len.to_le_bytes());
    let (verdict, flash) = run(&stream, vec![], slot(), &[333]);
    assert!(
        matches!(verdict, Err(Error::BlockOutOfRange { .. })),
        "{verdict:?}"
    );
    assert!(flash.written[len as usize..].iter().all(|&w| !w));
}

#[test]
fn coded_data_that_expands_beyond_its_block_is_refused() {
    let s = sample();
    let starts = block_starts(&s.full);
    let mut expanded = 0;
    for &at in &starts[..starts.len() - 1] {
        let mut stream = s.full.clone();
        let mut b = BlockHeader::parse(stream[at..at + BLOCK_HEADER_LEN].try_into().unwrap());
        b.decoded_len -= 1;
        stream[at..at + BLOCK_HEADER_LEN].copy_from_slice(&b.to_bytes());
        let end = (b.offset + b.decoded_len) as usize;
        let (verdict, flash) = run(&stream, vec![], slot(), &[97]);
        match verdict {
            Err(Error::Expands { .. }) => expanded += 1,
            Err(Error::Corrupt { .. }) => {}
            other => panic!("block at {}: {other:?}", b.offset),
        }
        assert!(!flash.written[end], "wrote past the block's declared end");
    }
    assert!(expanded > 0, "no block ended in a match");
}

#[test]
fn overlapping_blocks_are_refused() {
    let s = sample();
    let starts = block_starts(&s.full);
    // The second block sent twice: it would write the same bytes again.
    let second = &s.full[starts[1]..starts[2]];
    let mut stream = s.full[..starts[2]].to_vec();
    stream.extend_from_slice(second);
    let (verdict, _) = run(&stream, vec![], slot(), &[500]);
    assert!(
        matches!(verdict, Err(Error::BlockOrder { .. })),
        "{verdict:?}"
    );
}

#[test]
fn header_errors() {
    let s = sample();
    let cases: [(usize, u8, Error<Violation>); 5] = [
        (0, b'X', Error::Header(HeaderError::BadMagic)),
        (2, 9, Error::Header(HeaderError::Version(9))),
        (3, 7, Error::Header(HeaderError::Codec(7))),
        (4, 3, Error::Header(HeaderError::Props(3))), // lc = 3: tables too large
        (6, 1, Error::Header(HeaderError::Reserved)),
    ];
    for (at, value, want) in cases {
        let mut stream = s.full.clone();
        stream[at] = value;
        assert_eq!(run(&stream, vec![], slot(), &[7]).0, Err(want));
    }
    // Every message says what is wrong in words.
    let msg = Error::<Violation>::BaseMismatch {
        expected: 1,
        found: 2,
    }
    .to_string();
    assert!(msg.contains("another base"), "{msg}");
}

/// A resumed update: the slot already holds some blocks; a stream of the header and the
/// other blocks completes it (back-references reach into the blocks already there).
#[test]
fn resume_with_a_subset_of_blocks() {
    let s = sample();
    let o = fota_codec::encode::Options {
        block_size: 2048,
        ..fota_codec::encode::DEFAULT_OPTIONS
    };
    for delta in [false, true] {
        let (stream, base) = if delta {
            (
                fota_codec::encode::delta(&s.base, &s.image, &o).unwrap(),
                s.base.clone(),
            )
        } else {
            (fota_codec::encode::compress(&s.image, &o).unwrap(), vec![])
        };
        let n = stream.blocks().len();
        assert!(n >= 6);
        // First try: every other block's bytes made it to the slot.
        let mut flash = codec_harness::Checked::new(base.clone(), slot());
        for b in stream.blocks().iter().step_by(2) {
            let r = b.offset as usize..(b.offset + b.len) as usize;
            flash.target[r.clone()].copy_from_slice(&s.image[r]);
        }
        let resend = stream.select(|offset, _| (offset / 2048) % 2 == 1);
        assert!(resend.len() < stream.len() * 2 / 3);
        let mut decoder = Box::new(fota_codec::Decoder::new(slot() as u32, base.len() as u32));
        decoder.feed(&mut flash, &resend).unwrap();
        decoder.finish().unwrap();
        assert_eq!(&flash.target[..s.image.len()], &s.image[..]);
    }
}

/// Found by fuzzing (in the harness): mutations that remove the whole stream.
#[test]
fn mutations_that_remove_the_whole_stream() {
    let mut data = vec![0u8];
    for _ in 0..2000 {
        data.extend_from_slice(&[0, 0, 2, 15]);
    }
    assert_eq!(
        codec_harness::mutated(&data),
        Err(fota_codec::Error::Truncated)
    );
}

/// A flash over slices that counts the bytes written and remembers the highest offset.
struct Watch<'a> {
    inner: fota_codec::SliceFlash<'a>,
    written: usize,
}

impl fota_codec::Flash for Watch<'_> {
    type Error = fota_codec::OutOfRange;
    fn read_base(&mut self, o: u32, b: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read_base(o, b)
    }
    fn read_target(&mut self, o: u32, b: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read_target(o, b)
    }
    fn write_target(&mut self, o: u32, d: &[u8]) -> Result<(), Self::Error> {
        self.written += d.len();
        self.inner.write_target(o, d)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Damaged streams fed in bounded steps, as the agent feeds them: no panic, no write
    /// outside the image, no step that writes more than its budget allows, and every
    /// call either consumes input, works, or stops.
    #[test]
    fn damaged_streams_in_bounded_steps(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        budget in 1u32..3000,
        frame in 1usize..1100,
        delta in any::<bool>(),
    ) {
        let s = sample();
        let (mut stream, base) = if delta { (s.delta.clone(), s.base.clone()) } else { (s.full.clone(), Vec::new()) };
        for (at, x) in flips {
            let i = at % stream.len();
            stream[i] ^= x;
        }
        let slot = s.image.len().next_multiple_of(4096);
        let mut target = vec![0xFFu8; slot];
        let mut d = fota_codec::Decoder::new(slot as u32, base.len() as u32);
        let mut flash = Watch { inner: fota_codec::SliceFlash { base: &base, target: &mut target }, written: 0 };
        'frames: for piece in stream.chunks(frame) {
            let mut rest = piece;
            let mut calls = 0;
            loop {
                let before = flash.written;
                match d.feed_bounded(&mut flash, rest, budget) {
                    Ok(used) => rest = &rest[used..],
                    Err(_) => break 'frames,
                }
                prop_assert!(flash.written - before <= budget as usize + 273 + 256);
                calls += 1;
                prop_assert!(calls <= 70_000, "no progress");
                if rest.is_empty() && !d.has_work() {
                    break;
                }
            }
        }
        let _ = d.finish();
        let image_len = u32::from_le_bytes(stream[8..12].try_into().unwrap()) as usize;
        let end = image_len.min(slot);
        prop_assert!(target[end..].iter().all(|&b| b == 0xFF), "written past the image");
    }
}
