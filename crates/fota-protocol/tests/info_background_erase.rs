//! `Info` tag 11, erases in the background (docs/PROTOCOL.md 3.3): no value, its bytes
//! on the wire both ways, and what a reader does with a damaged one.

use fota_protocol::{Info, info_tag};

mod support;
use support::{body_of, parse};

fn info(background_erase: bool) -> Info {
    Info {
        background_erase,
        ..support::sample_info()
    }
}

#[test]
fn tag_11_has_no_value_and_comes_after_the_other_fields() {
    assert_eq!(info_tag::BACKGROUND_ERASE, 11);
    let bare = body_of(info(false));
    let with = body_of(info(true));
    // The same body, then tag 11 with length 0: `0B 00`, as docs/PROTOCOL.md 3.3 gives.
    assert_eq!(with[..bare.len()], bare[..]);
    assert_eq!(with[bare.len()..], [0x0B, 0x00]);
    assert!(parse(&with).expect("tag 11").background_erase);
    assert!(!parse(&bare).expect("no tag 11").background_erase);
}

#[test]
fn a_tag_11_with_a_value_is_malformed_and_a_reader_skips_what_it_does_not_know() {
    let bare = body_of(info(false));
    let mut body = bare.clone();
    body.extend_from_slice(&[0x0B, 0x01, 0x01]);
    assert!(parse(&body).is_err(), "tag 11 carries no value");
    // A later tag before tag 11: skipped, tag 11 still read.
    let mut body = bare.clone();
    body.extend_from_slice(&[0x7E, 0x02, 1, 2, 0x0B, 0x00]);
    assert!(parse(&body).expect("skips 0x7E").background_erase);
}
