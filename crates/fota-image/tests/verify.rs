//! The device-side verifier: every refusal, the policy, and its bounded steps over a
//! slot reader (as the agent will run it over its flash).

mod common;

use fota_image::host::{PackOptions, SigningKey, pack};
use fota_image::{
    ANY_SLOT, ImageError, Kind, MIN_BUFFER, Policy, SliceReader, Slot, SlotReader, Step,
    TrustedKey, Verifier, VerifyError, Version, verify_bytes, verify_slot,
};

fn image(
    kind: Kind,
    slot_addr: u32,
    len: usize,
    version: Version,
    keys: &[&SigningKey],
) -> Vec<u8> {
    let opts = PackOptions {
        kind,
        slot_addr,
        version,
        name: "app".into(),
    };
    pack(
        "app.bin",
        &common::vm_payload(slot_addr & 0x00FF_FFFF, len),
        &opts,
        keys,
    )
    .unwrap()
}

fn trusting(keys: &[&SigningKey]) -> Vec<TrustedKey> {
    keys.iter().map(|k| k.public().trusted()).collect()
}

fn policy(trusted: &[TrustedKey]) -> Policy<'_> {
    Policy {
        trusted,
        require_signature: true,
        minimum_version: Version::new(1, 0, 0),
    }
}

/// The slot's contents: the image, then erased flash.
fn in_slot(image: &[u8], slot: Slot) -> Vec<u8> {
    let mut s = vec![0xFF; slot.size as usize];
    s[..image.len()].copy_from_slice(image);
    s
}

#[test]
fn a_signed_image_verifies_in_its_slot() {
    let k = common::key(1);
    let slot = common::slot("vm1");
    let img = image(Kind::Vm, slot.addr, 30_000, Version::new(1, 2, 0), &[&k]);
    let t = trusting(&[&k]);
    let v = verify_bytes(&in_slot(&img, slot), slot, &policy(&t)).unwrap();
    assert_eq!(v.signed_by, Some(k.id()));
    assert_eq!(v.image_len as usize, img.len());
    assert_eq!(v.header.version, Version::new(1, 2, 0));
    assert_eq!(v.header.name(), Some("app"));
}

#[test]
fn every_refusal() {
    let (k, other) = (common::key(1), common::key(2));
    let t = trusting(&[&k]);
    let vm0 = common::slot("vm0");
    let vm1 = common::slot("vm1");
    let bc0 = common::slot("bc0");
    let good = image(Kind::Vm, vm1.addr, 5000, Version::new(1, 0, 0), &[&k]);
    let check = |img: &[u8], slot: Slot, p: &Policy<'_>| verify_bytes(&in_slot(img, slot), slot, p);

    // A payload byte changed: bad hash.
    let mut bad = good.clone();
    bad[100] ^= 1;
    assert_eq!(check(&bad, vm1, &policy(&t)), Err(ImageError::BadHash));
    // A header byte changed (the version): the hash covers it too.
    let mut bad = good.clone();
    bad[5000 + 20] ^= 1;
    assert_eq!(check(&bad, vm1, &policy(&t)), Err(ImageError::BadHash));
    // A signature byte changed: bad signature.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        check(&bad, vm1, &policy(&t)),
        Err(ImageError::BadSignature(k.id()))
    );
    // Signed by a key the device does not trust.
    let by_other = image(Kind::Vm, vm1.addr, 5000, Version::new(1, 0, 0), &[&other]);
    assert_eq!(
        check(&by_other, vm1, &policy(&t)),
        Err(ImageError::UnknownKey(other.id()))
    );
    // Unsigned where a signature is required; fine where it is not.
    let unsigned = image(Kind::Vm, vm1.addr, 5000, Version::new(1, 0, 0), &[]);
    assert_eq!(
        check(&unsigned, vm1, &policy(&t)),
        Err(ImageError::Unsigned)
    );
    let open = Policy {
        require_signature: false,
        ..policy(&t)
    };
    assert!(check(&unsigned, vm1, &open).is_ok());
    assert_eq!(check(&by_other, vm1, &open).unwrap().signed_by, None);
    // Linked for another slot.
    assert_eq!(
        check(&good, vm0, &policy(&t)),
        Err(ImageError::WrongSlot {
            linked_for: vm1.addr,
            slot: vm0.addr
        })
    );
    // The other kind of slot.
    assert_eq!(
        check(&good, bc0, &policy(&t)),
        Err(ImageError::WrongKind {
            image: Kind::Vm,
            slot: Kind::Bytecode
        })
    );
    // A downgrade.
    let old = image(Kind::Vm, vm1.addr, 5000, Version::new(0, 9, 9), &[&k]);
    assert_eq!(
        check(&old, vm1, &policy(&t)),
        Err(ImageError::Downgrade {
            image: Version::new(0, 9, 9),
            minimum: Version::new(1, 0, 0)
        })
    );
    // An erased slot, a raw image: no trailer.
    assert_eq!(check(&[], vm1, &policy(&t)), Err(ImageError::NoTrailer));
    assert_eq!(
        check(&common::vm_payload(vm1.addr, 4000), vm1, &policy(&t)),
        Err(ImageError::NoTrailer)
    );
    // A trailer cut off by the slot's end.
    let tight = Slot {
        size: good.len() as u32 - 1,
        ..vm1
    };
    assert_eq!(
        verify_bytes(&good, tight, &policy(&t)),
        Err(ImageError::Truncated)
    );
    // One signature by a trusted key is enough; unknown ones beside it are fine.
    let both = image(
        Kind::Vm,
        vm1.addr,
        5000,
        Version::new(1, 0, 0),
        &[&other, &k],
    );
    assert_eq!(
        check(&both, vm1, &policy(&t)).unwrap().signed_by,
        Some(k.id())
    );
}

#[test]
fn a_position_independent_image_runs_from_any_slot_of_its_kind() {
    let img = image(Kind::Bytecode, ANY_SLOT, 8000, Version::new(1, 0, 0), &[]);
    for name in ["bc0", "bc1"] {
        let slot = common::slot(name);
        assert!(verify_bytes(&in_slot(&img, slot), slot, &Policy::OPEN).is_ok());
    }
}

#[test]
fn an_older_longer_image_left_after_the_new_one_does_not_matter() {
    // The host erases only the sectors the new image needs: what follows the new
    // trailer is the rest of the old image. The verifier stops at the first trailer.
    let slot = common::slot("bc0");
    let old = image(
        Kind::Bytecode,
        ANY_SLOT,
        200_000,
        Version::new(1, 0, 0),
        &[],
    );
    let new = image(Kind::Bytecode, ANY_SLOT, 50_000, Version::new(1, 1, 0), &[]);
    let mut flash = in_slot(&old, slot);
    flash[..new.len()].copy_from_slice(&new);
    let v = verify_bytes(&flash, slot, &Policy::OPEN).unwrap();
    assert_eq!(v.header.version, Version::new(1, 1, 0));
    assert_eq!(v.image_len as usize, new.len());
}

/// Counts reads and their sizes, and can fail at a chosen read.
struct CountingReader<'a> {
    inner: SliceReader<'a>,
    reads: usize,
    largest: usize,
    fail_at: Option<usize>,
}

impl SlotReader for CountingReader<'_> {
    type Error = &'static str;
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), &'static str> {
        self.reads += 1;
        self.largest = self.largest.max(buf.len());
        if self.fail_at == Some(self.reads) {
            return Err("flash read error");
        }
        let _ = self.inner.read(offset, buf);
        Ok(())
    }
}

#[test]
fn steps_are_bounded_by_the_buffer_and_one_signature() {
    let (k1, k2) = (common::key(1), common::key(2));
    let slot = common::slot("bc1");
    let img = image(
        Kind::Bytecode,
        slot.addr,
        256 * 1024 - 1000,
        Version::new(2, 0, 0),
        &[&k1, &k2],
    );
    let flash = in_slot(&img, slot);
    let t = trusting(&[&k1, &k2]);
    for buf_len in [MIN_BUFFER, 100, 256, 4096] {
        let mut reader = CountingReader {
            inner: SliceReader(&flash),
            reads: 0,
            largest: 0,
            fail_at: None,
        };
        let mut buf = vec![0u8; buf_len];
        let mut v = Verifier::new(slot);
        let mut steps = 0;
        let mut last = 0;
        let done = loop {
            steps += 1;
            let reads_before = reader.reads;
            match v.step(&mut reader, &mut buf, &policy(&t)).unwrap() {
                Step::Pending(n) => {
                    assert!(n >= last, "progress never goes back");
                    last = n;
                }
                Step::Done(done) => break done,
            }
            // One buffer (plus at most a 4-byte look-ahead) or one trailer piece a step.
            assert!(reader.reads - reads_before <= 2);
        };
        assert!(reader.largest <= buf_len.max(96));
        assert_eq!(done.signed_by, Some(k1.id()));
        // Payload steps: about len / (buf - 7); plus trailer and two signatures.
        let expected = img.len().div_ceil(buf_len - 7);
        assert!(
            steps <= expected + 4,
            "{steps} steps for a {buf_len}-byte buffer"
        );
        // Spent: a further step is an error, not a second result.
        assert_eq!(
            v.step(&mut reader, &mut buf, &policy(&t)),
            Err(VerifyError::Finished)
        );
    }
}

#[test]
fn a_read_error_stops_the_verification_and_says_so() {
    let slot = common::slot("bc0");
    let img = image(Kind::Bytecode, ANY_SLOT, 3000, Version::new(1, 0, 0), &[]);
    let flash = in_slot(&img, slot);
    for fail_at in 1..=12 {
        let mut reader = CountingReader {
            inner: SliceReader(&flash),
            reads: 0,
            largest: 0,
            fail_at: Some(fail_at),
        };
        let r = verify_slot(&mut reader, slot, &Policy::OPEN, &mut [0u8; 256]);
        assert_eq!(
            r,
            Err(VerifyError::Read("flash read error")),
            "failing read {fail_at}"
        );
    }
    let mut tiny = [0u8; MIN_BUFFER - 1];
    let r = verify_slot(&mut SliceReader(&flash), slot, &Policy::OPEN, &mut tiny);
    assert_eq!(r, Err(VerifyError::BufferTooSmall));
}

#[test]
fn errors_display_a_sentence() {
    let e = ImageError::WrongSlot {
        linked_for: 0x50000,
        slot: 0,
    };
    assert_eq!(
        e.to_string(),
        "the image is linked for the slot at 0x00050000, not the one at 0x00000000"
    );
    let v: VerifyError<&str> = VerifyError::Read("timeout");
    assert_eq!(v.to_string(), "reading the slot failed: timeout");
    fn is_error<E: core::error::Error>(_: &E) {}
    is_error(&e);
    is_error(&v);
}
