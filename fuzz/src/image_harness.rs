//! Properties of the image parser and verifier and of the firmware file readers
//! (`fota-image`), for any input. The fuzz targets `image_parser` and `image_readers`
//! run them on libFuzzer's inputs; `crates/fota-image/tests/properties.rs` includes this
//! file and runs them under proptest in the normal test suite.

use fota_image::host::{
    Arch, Error, Layout, PackOptions, ReadOptions, SigningKey, inspect, pack, place, read_firmware,
};
use fota_image::{
    ANY_SLOT, FIXED_LEN, ImageError, Kind, MAGIC, MIN_BUFFER, Policy, SliceReader, Slot, Step,
    TrustedKey, Verifier, Version, encode_fixed, find_image, verify_bytes,
};

/// The simulator's VM + bytecode layout.
pub fn layout() -> Layout {
    Layout::parse("vm0@0x0:64K,bc0@0x10000:256K,vm1@0x50000:64K,bc1@0x60000:256K")
        .unwrap_or_default()
}

/// Keys of seeds 1 to 3, made once: deriving a key costs a scalar multiplication.
fn key(n: u8) -> Option<&'static SigningKey> {
    static KEYS: std::sync::OnceLock<Vec<SigningKey>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        (1..=3)
            .filter_map(|n| SigningKey::from_seed([n; 32]).ok())
            .collect()
    });
    keys.get(usize::from(n).checked_sub(1)?)
}

fn trusted() -> &'static [TrustedKey] {
    static TRUSTED: std::sync::OnceLock<Vec<TrustedKey>> = std::sync::OnceLock::new();
    TRUSTED.get_or_init(|| {
        [1u8, 2]
            .iter()
            .filter_map(|&n| key(n))
            .map(|k| k.public().trusted())
            .collect()
    })
}

/// Runs a verification with buffers of `buf_len` bytes, step by step.
fn verify_stepwise(
    bytes: &[u8],
    slot: Slot,
    policy: &Policy<'_>,
    buf_len: usize,
) -> Result<fota_image::Verified, ImageError> {
    let mut reader = SliceReader(bytes);
    let mut buf = vec![0u8; buf_len];
    let mut v = Verifier::new(slot);
    let mut last = 0;
    // A step reads at least one new byte: the number of steps is bounded.
    for _ in 0..=slot.size as usize + 16 {
        match v.step(&mut reader, &mut buf, policy) {
            Ok(Step::Pending(n)) => {
                assert!(n >= last, "progress went back from {last} to {n}");
                last = n;
            }
            Ok(Step::Done(done)) => return Ok(done),
            Err(fota_image::VerifyError::Image(e)) => return Err(e),
            Err(other) => panic!("unexpected verifier error {other:?}"),
        }
    }
    panic!("the verifier did not finish");
}

/// The image parser and the verifier on arbitrary bytes (a slot's contents or a file):
/// no panic; a trailer found re-encodes to the same bytes; the verifier agrees with the
/// parser and gives the same result whatever its buffer size.
pub fn image_parser(data: &[u8]) {
    let found = find_image(data);
    if let Ok(img) = &found {
        let at = img.payload.len();
        assert_eq!(img.trailer.header.payload_len as usize, at);
        assert_eq!(at + img.trailer.len() + img.rest.len(), data.len());
        let count = img.trailer.signature_count() as u32;
        assert_eq!(
            &encode_fixed(&img.trailer.header, count)[..],
            &data[at..at + FIXED_LEN]
        );
        for (i, e) in img.trailer.signatures().enumerate() {
            let off = at + FIXED_LEN + i * 72;
            assert_eq!(&e.encode()[..], &data[off..off + 72]);
        }
    }
    let strict = Policy {
        trusted: trusted(),
        require_signature: true,
        minimum_version: Version::new(1, 0, 0),
    };
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX).max(1);
    for kind in [Kind::Vm, Kind::Bytecode] {
        for addr in [0u32, 0x10000] {
            let slot = Slot {
                kind,
                index: 0,
                addr,
                size,
            };
            for policy in [Policy::OPEN, strict] {
                let small = verify_stepwise(data, slot, &policy, MIN_BUFFER);
                let large = verify_stepwise(data, slot, &policy, 4096);
                assert_eq!(small, large, "the buffer size changed the result");
                assert_eq!(small, verify_bytes(data, slot, &policy));
                match (&found, &small) {
                    (Ok(img), Ok(v)) => {
                        assert_eq!(v.header, img.trailer.header);
                        assert!(img.hash_matches());
                        assert_eq!(v.image_len as usize, img.len());
                    }
                    (Err(e), Err(f)) => assert_eq!(e, f, "parser and verifier disagree"),
                    (Err(e), Ok(_)) => panic!("the verifier accepts what the parser refuses ({e})"),
                    (Ok(_), Err(_)) => {}
                }
            }
        }
    }
}

/// Packing any payload gives an image the verifier accepts, in any slot it is for.
pub fn pack_round_trip(payload: &[u8], signed: bool) {
    let Some(k) = key(3) else { return };
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: ANY_SLOT,
        version: Version::new(1, 2, 3),
        name: "p".into(),
    };
    let keys: Vec<&SigningKey> = if signed { vec![k] } else { vec![] };
    let image = match pack("p", payload, &opts, &keys) {
        Ok(i) => i,
        // Empty, or a payload that holds a trailer (or bytes that would read as the
        // start of one): refused, never packed into an image a device would misread.
        Err(e) => {
            match e {
                Error::Empty(_) => assert!(payload.is_empty()),
                Error::AlreadyPacked(_) => assert!(find_image(payload).is_ok()),
                Error::TrailerLookalike { offset, .. } => {
                    assert_eq!(payload.get(offset..offset + 8), Some(&MAGIC[..]), "{e}")
                }
                other => panic!("pack refused for another reason: {other}"),
            }
            return;
        }
    };
    let trusted = [k.public().trusted()];
    let policy = Policy {
        trusted: &trusted,
        require_signature: signed,
        minimum_version: Version::new(1, 0, 0),
    };
    let slot = Slot {
        kind: Kind::Bytecode,
        index: 1,
        addr: 0x60000,
        size: image.len() as u32 + 100,
    };
    let v =
        verify_bytes(&image, slot, &policy).unwrap_or_else(|e| panic!("packed image refused: {e}"));
    assert_eq!(v.signed_by.is_some(), signed);
    assert_eq!(&image[..payload.len()], payload);
}

/// The file readers on arbitrary bytes, named as each format: no panic; what they read
/// is sorted, non-empty, non-overlapping segments; placing it never panics and never
/// gives bytes outside the slot.
pub fn readers(data: &[u8]) {
    let layout = layout();
    for name in ["fw.bin", "fw.hex", "fw.elf", "fw.uf2"] {
        for opts in [
            ReadOptions::default(),
            ReadOptions {
                arch: Arch::Any,
                uf2_family: Some(0xe48bff56),
            },
        ] {
            let Ok(fw) = read_firmware(name, data, &opts) else {
                continue;
            };
            assert!(!fw.segments.is_empty());
            for w in fw.segments.windows(2) {
                assert!(
                    w[0].end() < u64::from(w[1].addr),
                    "segments overlap or touch"
                );
            }
            assert!(fw.segments.iter().all(|s| !s.data.is_empty()));
            for drop in [false, true] {
                if let Ok(p) = place(&fw, Some(&layout), None, drop) {
                    if let Some(slot) = p.slot {
                        assert_eq!(p.base, slot.addr);
                        assert!(p.bytes.len() as u64 <= u64::from(slot.size));
                    }
                    let _ = inspect(&fw, &p, &[]).lines();
                }
            }
            if let Ok(p) = place(&fw, None, None, false) {
                assert!(p.bytes.len() as u64 <= fota_image::host::MAX_SPAN);
            }
        }
    }
}
