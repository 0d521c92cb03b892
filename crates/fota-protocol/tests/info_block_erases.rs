//! `Info` tag 10, the flash's block erases (docs/PROTOCOL.md 3.3): its bytes on the wire,
//! what a reader does with a damaged one, and how a reader that predates it (or any
//! reader, for a tag it does not know) skips it.

use fota_protocol::{BlockErase, Info, info_tag};

mod support;
use support::{body_of, parse};

fn info(blocks: &[(u32, u32)]) -> Info {
    Info {
        background_erase: false,
        block_erases: blocks
            .iter()
            .map(|&(size, ms)| BlockErase { size, ms })
            .collect(),
        ..support::sample_info()
    }
}

#[test]
fn tag_10_lists_size_and_time_of_each_block_erase() {
    assert_eq!(info_tag::BLOCK_ERASES, 10);
    let bare = body_of(info(&[]));
    let w25q = [(32 * 1024, 120), (64 * 1024, 150)];
    let with = body_of(info(&w25q));
    // The same body, then tag 10, length 16, and (size, ms) twice, little-endian: the
    // bytes docs/PROTOCOL.md 3.3 gives.
    assert_eq!(with[..bare.len()], bare[..]);
    assert_eq!(
        with[bare.len()..],
        [
            0x0A, 0x10, 0x00, 0x80, 0x00, 0x00, 0x78, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x96, 0x00, 0x00, 0x00
        ]
    );
    let read = parse(&with).expect("tag 10");
    assert_eq!(read.block_erases, info(&w25q).block_erases);
    assert!(parse(&bare).expect("no tag 10").block_erases.is_empty());
}

#[test]
fn a_damaged_tag_10_is_malformed() {
    let bare = body_of(info(&[]));
    for bad in [
        &[0x0A, 0x04, 0, 0x80, 0, 0][..], // half a block
        &[0x0A, 0x0C, 0, 0x80, 0, 0, 0x78, 0, 0, 0, 1, 2, 3, 4], // a block and a half
        &[
            0x0A, 0x18, 0, 0x80, 0, 0, 0x78, 0, 0, 0, 0, 0, 1, 0, 0x96, 0, 0, 0, 0, 0, 2, 0, 1, 1,
        ], // three
        &[0x0A, 0x08, 0, 0x80, 0, 0],     // runs past the end of the body
    ] {
        let mut body = bare.clone();
        body.extend_from_slice(bad);
        assert!(parse(&body).is_err(), "{bad:02X?} must be refused");
    }
}

#[test]
fn a_reader_skips_tag_10_as_any_tag_it_does_not_know() {
    // What a host that predates tag 10 sees: an extension it does not know, which it
    // skips by its length. The same rule, shown with an unknown tag in tag 10's place
    // and after it: the fields around it are read as they are.
    let bare = body_of(info(&[]));
    let with = body_of(info(&[(64 * 1024, 150)]));
    let tag10 = &with[bare.len()..];
    let mut unknown = tag10.to_vec();
    unknown[0] = 0x7E;
    for tail in [tag10.to_vec(), unknown] {
        let mut body = bare.clone();
        body.extend_from_slice(&tail);
        body.extend_from_slice(&[0x7F, 0x02, 9, 9, 0x08, 0x04, 0x00, 0x20, 0x00, 0x00]);
        let read = parse(&body).expect("skips what it does not know");
        assert_eq!(read.rx_window, Some(0x2000));
        assert_eq!(read.sector_erase_ms, Some(45));
    }
}
