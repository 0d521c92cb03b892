//! The fuzz targets' properties (fuzz/src/image_harness.rs) under proptest: random bytes,
//! and valid images and files with bytes changed, cut or inserted.

mod common;

#[path = "../../../fuzz/src/image_harness.rs"]
mod image_harness;

use fota_image::Kind;
use fota_image::Version;
use fota_image::host::{PackOptions, Segment, pack, uf2};
use proptest::prelude::*;

/// A signed image in a slot-sized buffer, to mutate.
fn valid_image(len: usize, seed: u32) -> Vec<u8> {
    let opts = PackOptions {
        kind: Kind::Vm,
        slot_addr: 0x10000,
        version: Version::new(1, 0, 0),
        name: "v".into(),
    };
    let k = common::key(1);
    let mut img = pack("v", &common::vm_payload(0x10000, len), &opts, &[&k]).unwrap();
    img.extend(common::noise(seed as usize % 300, seed));
    img
}

/// Changes: (position, new byte) overwrites, then a cut.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let n = bytes.len();
    for &(at, b) in edits {
        if n > 0 {
            bytes[at % n] = b;
        }
    }
    if let Some(c) = cut {
        bytes.truncate(c % (n + 1));
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_and_verifier_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        image_harness::image_parser(&data);
    }

    #[test]
    fn the_parser_and_verifier_never_panic_on_damaged_images(
        len in 1usize..400,
        seed in any::<u32>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        image_harness::image_parser(&mutate(valid_image(len, seed), &edits, cut));
    }

    #[test]
    fn any_payload_packs_into_an_image_that_verifies(payload in proptest::collection::vec(any::<u8>(), 0..2000), signed in any::<bool>()) {
        image_harness::pack_round_trip(&payload, signed);
    }

    #[test]
    fn the_readers_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
        image_harness::readers(&data);
    }

    #[test]
    fn the_readers_never_panic_on_damaged_files(
        which in 0u8..3,
        seed in any::<u32>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let code = common::vm_payload(0x50000, 700 + seed as usize % 700);
        let file = match which {
            0 => common::make_hex(&[(0x50000, &code), (0x1000_10C0, &[1, 2, 3])]).into_bytes(),
            1 => common::make_elf(40, false, 0x50101, &[(0x50000, 0x50000, &code), (0x2000_0000, 0x50000 + 2048, &code[..64])]),
            _ => uf2::write(&[Segment { addr: 0x50000, data: code.clone() }], Some(0xe48bff56)),
        };
        image_harness::readers(&mutate(file, &edits, cut));
    }
}
