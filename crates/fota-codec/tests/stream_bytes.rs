//! A stream read back from its bytes (the web app's encoder runs in another module and
//! hands over bytes) is the stream the encoder made, and broken bytes are refused.

use fota_codec::encode::{DEFAULT_OPTIONS, Options, compress, delta};
use fota_codec::stream::{Stream, StreamError};

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 7) as u8)
        .collect()
}

#[test]
fn bytes_read_back_into_the_same_blocks() {
    let small = Options {
        block_size: 4096,
        ..DEFAULT_OPTIONS
    };
    let base = image(10_000, 1);
    let new = image(13_000, 2);
    for s in [
        compress(&new, &small).unwrap(),
        delta(&base, &new, &small).unwrap(),
        compress(&[], &small).unwrap(),
    ] {
        let back = Stream::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        // Resume picks the same blocks from either.
        let keep = |offset: u32, _len: u32| offset >= 4096;
        assert_eq!(back.select(keep), s.select(keep));
    }
}

#[test]
fn broken_bytes_are_refused() {
    let small = Options {
        block_size: 4096,
        ..DEFAULT_OPTIONS
    };
    let s = compress(&image(13_000, 3), &small).unwrap();
    let bytes = s.to_bytes();
    assert_eq!(
        Stream::from_bytes(&bytes[..bytes.len() - 1]),
        Err(StreamError::Truncated)
    );
    assert_eq!(
        Stream::from_bytes(&bytes[..10]),
        Err(StreamError::Truncated)
    );
    assert!(matches!(
        Stream::from_bytes(&[0u8; 20]),
        Err(StreamError::Header(_))
    ));
    // Without its second block, the blocks no longer follow each other.
    let b = s.blocks();
    let mut gap = s.select(|o, _| o != b[1].offset);
    assert_eq!(Stream::from_bytes(&gap), Err(StreamError::Blocks));
    // Without its last block, they do not cover the image.
    gap = s.select(|o, _| o != b[b.len() - 1].offset);
    assert_eq!(Stream::from_bytes(&gap), Err(StreamError::Blocks));
}
