//! The trailer byte for byte: the golden image of docs/IMAGE.md, round trips, and every
//! format error.

mod common;

use fota_image::host::{PackOptions, pack, sign};
use fota_image::{
    ANY_SLOT, FIXED_LEN, Header, ImageError, Kind, MAGIC, MAX_SIGNATURES, SIGNATURE_ENTRY_LEN,
    Trailer, Version, find_image,
};

/// The example of docs/IMAGE.md: 16 bytes of payload, packed as a VM for the slot at
/// 0x00010000, version 1.2.3, named "golden", signed with the key of seed 32 x 0x42.
fn golden_image() -> Vec<u8> {
    let payload: Vec<u8> = (0u8..16).collect();
    let opts = PackOptions {
        kind: Kind::Vm,
        slot_addr: 0x0001_0000,
        version: Version::new(1, 2, 3),
        name: "golden".into(),
    };
    let key = common::key(0x42);
    pack("golden.bin", &payload, &opts, &[&key]).expect("packs")
}

/// The hex dump between the `golden-image` markers of docs/IMAGE.md.
fn documented_golden() -> Vec<u8> {
    let doc = include_str!("../../../docs/IMAGE.md");
    let start = doc
        .find("<!-- golden-image -->")
        .expect("the doc has the golden image");
    let end = doc
        .find("<!-- /golden-image -->")
        .expect("the golden image ends");
    let mut bytes = Vec::new();
    for line in doc[start..end].lines() {
        // `0010: 00 01 02 ...` lines; everything else is fences and prose.
        let Some((offset, rest)) = line.split_once(": ") else {
            continue;
        };
        if offset.len() != 4 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        assert_eq!(
            usize::from_str_radix(offset, 16).unwrap(),
            bytes.len(),
            "offsets in the dump run on"
        );
        for h in rest.split_whitespace() {
            bytes.push(u8::from_str_radix(h, 16).expect("hex byte"));
        }
    }
    bytes
}

#[test]
fn the_golden_image_is_the_documented_bytes() {
    let image = golden_image();
    assert_eq!(image.len(), 16 + FIXED_LEN + SIGNATURE_ENTRY_LEN);
    let doc = documented_golden();
    if doc != image {
        // Print the dump to paste into the doc.
        for (i, chunk) in image.chunks(16).enumerate() {
            let h: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            println!("{:04x}: {}", i * 16, h.join(" "));
        }
        panic!("docs/IMAGE.md's golden image differs from what pack makes (dump above)");
    }
    // And the fields are where the table says.
    assert_eq!(&image[16..24], b"FOTA-IMG");
    assert_eq!(image[24], 1, "format version");
    assert_eq!(image[25], 0, "kind VM");
    assert_eq!(&image[28..32], &16u32.to_le_bytes(), "payload length");
    assert_eq!(
        &image[32..36],
        &0x0001_0000u32.to_le_bytes(),
        "slot address"
    );
    assert_eq!(&image[36..44], &[1, 0, 2, 0, 3, 0, 0, 0], "version 1.2.3");
    assert_eq!(&image[44..50], b"golden");
    assert_eq!(&image[108..112], &1u32.to_le_bytes(), "one signature");
    assert_eq!(&image[112..120], &common::key(0x42).id().0, "key id");
}

#[test]
fn pack_then_parse_gives_back_every_field() {
    for (kind, slot, len) in [
        (Kind::Vm, 0x0005_0000, 1),
        (Kind::Bytecode, ANY_SLOT, 4097),
        (Kind::Bytecode, 0x0006_0000, 200_000),
    ] {
        let payload = common::noise(len, len as u32);
        let opts = PackOptions {
            kind,
            slot_addr: slot,
            version: Version::new(3, 65535, 4_000_000_000),
            name: "a name of exactly 32 bytes......".into(),
        };
        let (k1, k2) = (common::key(1), common::key(2));
        let image = pack("x.bin", &payload, &opts, &[&k1, &k2]).unwrap();
        let found = find_image(&image).unwrap();
        assert_eq!(found.payload, &payload[..]);
        assert!(found.rest.is_empty());
        assert!(found.hash_matches());
        let h = found.trailer.header;
        assert_eq!(
            (h.kind, h.slot_addr, h.payload_len),
            (kind, slot, len as u32)
        );
        assert_eq!(h.version, opts.version);
        assert_eq!(h.name(), Some(opts.name.as_str()));
        let ids: Vec<_> = found.trailer.signatures().map(|s| s.key_id).collect();
        assert_eq!(ids, vec![k1.id(), k2.id()]);
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }
}

#[test]
fn signing_twice_with_the_same_key_changes_nothing_and_a_second_key_adds_one() {
    let image = golden_image();
    let (same, added) = sign("g", &image, &common::key(0x42)).unwrap();
    assert!(!added);
    assert_eq!(same, image);
    let (two, added) = sign("g", &image, &common::key(7)).unwrap();
    assert!(added);
    assert_eq!(two.len(), image.len() + SIGNATURE_ENTRY_LEN);
    assert_eq!(find_image(&two).unwrap().trailer.signature_count(), 2);
}

#[test]
fn a_payload_that_ends_in_erased_bytes_keeps_them() {
    // The trailer follows the payload at once: trailing 0xFF of the firmware are payload.
    let mut payload = common::noise(100, 9);
    payload.extend([0xFF; 37]);
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: ANY_SLOT,
        version: Version::default(),
        name: String::new(),
    };
    let image = pack("p", &payload, &opts, &[]).unwrap();
    assert_eq!(find_image(&image).unwrap().payload.len(), 137);
}

#[test]
fn format_errors() {
    let image = golden_image();
    let at = 16;
    // A truncated header: every cut inside the trailer once its magic is whole (a cut
    // inside the magic leaves a raw image: nothing says a trailer was meant).
    for cut in at..at + 8 {
        assert_eq!(
            find_image(&image[..cut]).unwrap_err(),
            ImageError::NoTrailer,
            "cut at {cut}"
        );
    }
    for cut in at + 8..image.len() {
        assert_eq!(
            find_image(&image[..cut]).unwrap_err(),
            ImageError::Truncated,
            "cut at {cut}"
        );
    }
    // Wrong magic where a trailer must start.
    let mut bad = image.clone();
    bad[at] = b'X';
    assert_eq!(
        Trailer::parse(&bad[at..]).unwrap_err(),
        ImageError::BadMagic
    );
    assert_eq!(find_image(&bad).unwrap_err(), ImageError::NoTrailer);
    // Unknown format version, kind, flags; too many signatures.
    let field = |off: usize, v: &[u8]| {
        let mut b = image.clone();
        b[at + off..at + off + v.len()].copy_from_slice(v);
        find_image(&b).unwrap_err()
    };
    assert_eq!(field(8, &[2]), ImageError::UnsupportedFormat(2));
    assert_eq!(field(9, &[7]), ImageError::UnknownKind(7));
    assert_eq!(field(10, &[1, 0]), ImageError::UnsupportedFlags(1));
    let n = MAX_SIGNATURES as u32 + 1;
    assert_eq!(
        field(92, &n.to_le_bytes()),
        ImageError::TooManySignatures(n)
    );
    // A signature count that runs past the end.
    assert_eq!(field(92, &2u32.to_le_bytes()), ImageError::Truncated);
    // Nothing at all.
    assert_eq!(find_image(&[]).unwrap_err(), ImageError::NoTrailer);
    assert_eq!(
        find_image(&[0xFF; 4096]).unwrap_err(),
        ImageError::NoTrailer
    );
}

#[test]
fn a_magic_inside_the_payload_is_not_a_trailer() {
    // Firmware that carries the magic as data (a tool that handles images, say): only
    // a magic followed by its own offset as payload length starts the trailer.
    let mut payload = common::noise(300, 3);
    payload[40..48].copy_from_slice(&MAGIC);
    payload[120..128].copy_from_slice(&MAGIC);
    payload[132..136].copy_from_slice(&7u32.to_le_bytes());
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: ANY_SLOT,
        version: Version::default(),
        name: "m".into(),
    };
    let image = pack("m", &payload, &opts, &[]).unwrap();
    assert_eq!(find_image(&image).unwrap().payload.len(), 300);
}

#[test]
fn a_payload_holding_a_damaged_trailer_is_not_packed() {
    // Found by fuzzing: a payload with a magic followed by its own offset and a
    // garbage signature count. A device stops at the first such place, so packing it
    // would make an image that never verifies.
    let mut payload = common::noise(400, 8);
    payload[300..308].copy_from_slice(&MAGIC);
    payload[308] = 1;
    payload[312..316].copy_from_slice(&300u32.to_le_bytes());
    payload[392..396].copy_from_slice(&0x5f5f_5f5fu32.to_le_bytes());
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: ANY_SLOT,
        version: Version::default(),
        name: "x".into(),
    };
    let err = pack("fw.bin", &payload, &opts, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "fw.bin holds bytes at offset 300 that read as the start of an image trailer: a \
         device would stop there"
    );
    // A magic followed by another length is payload, and packs.
    payload[312..316].copy_from_slice(&7u32.to_le_bytes());
    assert!(pack("fw.bin", &payload, &opts, &[]).is_ok());
}

#[test]
fn a_file_and_a_slot_cut_inside_the_header_get_the_same_error() {
    // Found by fuzzing: the parser found an unknown format version where the verifier
    // said "truncated" first. Both check in the same order now.
    let mut image = golden_image();
    image[24] = 0; // format version 0
    for cut in 16 + 8..image.len() {
        let bytes = &image[..cut];
        let slot = fota_image::Slot {
            kind: Kind::Vm,
            index: 0,
            addr: 0x0001_0000,
            size: cut as u32,
        };
        let parsed = find_image(bytes).unwrap_err();
        let verified =
            fota_image::verify_bytes(bytes, slot, &fota_image::Policy::OPEN).unwrap_err();
        assert_eq!(parsed, verified, "cut at {cut}");
    }
}

#[test]
fn versions_parse_and_order() {
    let v: Version = "1.2.3".parse().unwrap();
    assert_eq!(v, Version::new(1, 2, 3));
    assert_eq!("v2".parse::<Version>().unwrap(), Version::new(2, 0, 0));
    assert!("1.2.3.4".parse::<Version>().is_err());
    assert!("70000.0.0".parse::<Version>().is_err());
    assert!("x".parse::<Version>().is_err());
    assert!(Version::new(1, 10, 0) > Version::new(1, 9, 99));
    assert_eq!(Version::from_u64(v.as_u64()), v);
    assert!(Version::new(2, 0, 0).as_u64() > Version::new(1, 65535, u32::MAX).as_u64());
}

#[test]
fn hex_is_two_lower_case_digits_a_byte() {
    let bytes = [0x00, 0x0a, 0xab, 0xff];
    assert_eq!(fota_image::Hex(&bytes).to_string(), "000aabff");
    assert_eq!(fota_image::host::hex(&bytes), "000aabff");
    assert_eq!(fota_image::host::hex(&[]), "");
    let id = fota_image::KeyId([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    assert_eq!(id.to_string(), "0123456789abcdef");
}
