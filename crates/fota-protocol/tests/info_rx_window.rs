//! `Info` tag 8, the receive window in bytes (docs/PROTOCOL.md 3.3): its bytes on the
//! wire, both ways, and what a reader does with a damaged or missing one.

use fota_protocol::{Info, info_tag};

mod support;
use support::{body_of, parse};

/// The golden frames' `Info` (docs/PROTOCOL.md section 10), with tag 8 as given: its
/// other extensions (tags 2 and 3) come before tag 8.
fn info(rx_window: Option<u32>) -> Info {
    Info {
        background_erase: false,
        rx_window,
        ..support::sample_info()
    }
}

#[test]
fn tag_8_is_a_u32_of_bytes_after_the_other_fields() {
    assert_eq!(info_tag::RX_WINDOW, 8);
    let bare = body_of(info(None));
    let with = body_of(info(Some(5210)));
    // The same body, then tag 8, length 4, 5 210 = 0x0000145A little-endian: the bytes
    // docs/PROTOCOL.md 3.3 gives.
    assert_eq!(with[..bare.len()], bare[..]);
    assert_eq!(with[bare.len()..], [0x08, 0x04, 0x5A, 0x14, 0x00, 0x00]);
    assert_eq!(parse(&with).expect("tag 8").rx_window, Some(5210));
    assert_eq!(parse(&bare).expect("no tag 8").rx_window, None);
    // The largest value survives.
    let max = body_of(info(Some(u32::MAX)));
    assert_eq!(parse(&max).expect("tag 8").rx_window, Some(u32::MAX));
}

#[test]
fn a_tag_8_of_another_length_is_malformed_and_unknown_tags_are_skipped() {
    let bare = body_of(info(None));
    for bad in [
        &[0x08, 0x02, 0x5A, 0x14][..],
        &[0x08, 0x05, 0x5A, 0x14, 0, 0, 0],
        &[0x08, 0x04, 0x5A, 0x14], // runs past the end of the body
    ] {
        let mut body = bare.clone();
        body.extend_from_slice(bad);
        assert!(parse(&body).is_err(), "{bad:02X?} must be refused");
    }
    // A later tag (here 0x7E) before tag 8: skipped, tag 8 still read.
    let mut body = bare.clone();
    body.extend_from_slice(&[0x7E, 0x03, 1, 2, 3, 0x08, 0x04, 0x00, 0x20, 0x00, 0x00]);
    assert_eq!(parse(&body).expect("skips 0x7E").rx_window, Some(0x2000));
}
